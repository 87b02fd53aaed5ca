//! Creating a conversation: its row, its first events and, for a live
//! chat, its place in its queue's line (`waiting_state`) and its max-wait
//! timer, all in one transaction, which the group commit (`batch/`) shares
//! with whatever else is waiting to be written.
//!
//! Why in the group commit: a start used to be a write transaction of its
//! own, about ten statements and a commit (an fsync) one after the other
//! under SQLite's one write turn, so starts were capped near 530 a second
//! however many visitors came. Now the creates that arrive together share
//! one commit; on SQLite the writer thread runs their statements as plain
//! calls (`batch/sqlite.rs`); on PostgreSQL the writer tasks create all
//! of a batch's conversations in a fixed number of multi-row statements
//! (`batch/postgres.rs`).
//!
//! A queued create also reads the head of its line (the first chat no
//! agent has been offered), which tells the engine whether dispatching
//! can offer anything new: a read the start used to make on its own, one
//! more hand-off to the pool's connections.
//!
//! The statements are the same text for both drivers: `$N` placeholders
//! are numbered in the order of their first use, so rusqlite, which names
//! `$N` parameters in that order, binds them by position as sqlx does.
//! A new conversation's events take seqs 1..n directly (its `last_seq`
//! is set with the row): nobody can be subscribed to it yet, so no change
//! is announced either.

use super::events::StoredEvent;
use super::queues::WAITING;
use super::{
    conversation_id, now_ms, Head, NewConversation, NewEvent, Store, StoreResult, TimerRow,
};

/// One conversation to create.
pub(super) struct Create {
    pub new: NewConversation,
    pub events: Vec<NewEvent>,
    /// Set when it joins its queue's line at once.
    pub queued: Option<Queued>,
}

/// How a conversation created queued joins its line.
pub(super) struct Queued {
    /// The event telling the visitor their position.
    pub position_event: fn(u32) -> NewEvent,
    /// Its max wait, unless a timer of that kind runs for it.
    pub timer: Option<TimerRow>,
}

/// What a create stored: its events, and where it joined when queued.
pub(super) type Created = (Vec<StoredEvent>, Option<Joined>);

/// Where a chat created queued joined its line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Joined {
    /// The position it was told.
    pub position: u32,
    /// The line's head once it joined (itself, when nobody waits
    /// unoffered before it).
    pub head: Option<Head>,
}

/// A new conversation row's columns, in the order they are bound.
const ROW_COLUMNS: &str = "id, channel_key, token_hash, state, visitor_name, visitor_email, \
     page_url, language, queue_extension, queued_at, ended_at, last_seq, created_at, \
     updated_at, client_key";

/// How many values a new conversation row binds (its columns).
pub(super) const ROW_WIDTH: usize = 15;

/// Inserts `count` conversation rows, [`ROW_WIDTH`] values each, bound in
/// [`ROW_COLUMNS`] order (`last_seq` is the count of its events).
pub(super) fn insert_rows(count: usize) -> String {
    format!(
        "INSERT INTO conversations ({ROW_COLUMNS}) VALUES {}",
        super::batch::placeholders(1, count, ROW_WIDTH)
    )
}

/// Inserts `count` places in a line (a conversation and its position).
pub(super) fn insert_waiting(count: usize) -> String {
    format!(
        "INSERT INTO waiting_state (conversation_id, position) VALUES {}",
        super::batch::placeholders(1, count, 2)
    )
}

/// The last one in the line (`$1` the queue): its position, queued,
/// created and id; one step down the line's index, whatever its length.
pub(super) fn line_tail() -> String {
    format!(
        "SELECT w.position, COALESCE(c.queued_at, c.created_at), c.created_at, c.id \
         FROM conversations c \
         LEFT JOIN waiting_state w ON w.conversation_id = c.id \
         WHERE c.queue_extension = $1 AND c.{WAITING} \
         ORDER BY c.queued_at DESC, c.created_at DESC, c.id DESC LIMIT 1"
    )
}

/// How many wait in the line (`$1` the queue): counted only when its last
/// one has no position yet (it joined through a menu, a transfer or an
/// overflow, and the position task has not ranked it).
pub(super) fn count_line() -> String {
    format!("SELECT COUNT(*) FROM conversations WHERE queue_extension = $1 AND {WAITING}")
}

/// The last one in a line, as [`line_tail`] reads it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Tail {
    pub position: Option<i64>,
    pub queued_at: i64,
    pub created_at: i64,
    pub id: String,
}

/// What the last one in the line says: its position, or that the line
/// must be counted (`None`); nobody there is 0.
pub(super) fn ahead_from(tail: Option<&Tail>) -> Option<i64> {
    match tail {
        None => Some(0),
        Some(Tail {
            position: Some(position),
            ..
        }) if *position > 0 => Some(*position),
        Some(_) => None,
    }
}

/// When new chats, `first` (the lowest id) and those after it, join a
/// line whose last one is `tail`: `now`, unless that would not put them
/// after it (a chat of the same millisecond with a later id, committed
/// first, or one from a clock a little ahead), then a millisecond after
/// it. So a line's order is the order its chats joined in, and a new
/// chat's position (the last one's plus one) is its rank, where it would
/// otherwise sit ahead of some who were told a position before it.
pub(super) fn queued_at_after(tail: Option<&Tail>, now: i64, first: &str) -> i64 {
    match tail {
        Some(tail) if (now, now, first) <= (tail.queued_at, tail.created_at, tail.id.as_str()) => {
            tail.queued_at + 1
        }
        _ => now,
    }
}

/// The first chat of the line (`$1` the queue, `$2` the queued state)
/// no agent has been offered, and the agent a transfer directs it to.
pub(super) fn line_head() -> String {
    format!(
        "SELECT c.id, w.directed_agent FROM conversations c \
         LEFT JOIN waiting_state w ON w.conversation_id = c.id \
         WHERE c.queue_extension = $1 AND c.{WAITING} AND c.state = $2 \
         ORDER BY c.queued_at, c.created_at, c.id LIMIT 1"
    )
}

/// The head as [`line_head`] found it.
pub(super) fn head_from(id: &str, directed: Option<&str>) -> StoreResult<Head> {
    Ok(Head {
        id: conversation_id(id)?,
        directed: directed.is_some(),
    })
}

/// The position of one with `ahead` waiting before it.
pub(super) fn position_after(ahead: i64) -> u32 {
    u32::try_from(ahead + 1).unwrap_or(u32::MAX)
}

/// How many events a create stores (its position event included).
pub(super) fn event_count(create: &Create) -> i64 {
    (create.events.len() + usize::from(create.queued.is_some())) as i64
}

/// The create's events, its position event last when it has one.
pub(super) fn all_events(create: &Create, position: Option<u32>) -> Vec<NewEvent> {
    let mut all = create.events.clone();
    if let (Some(queued), Some(position)) = (&create.queued, position) {
        all.push((queued.position_event)(position));
    }
    all
}

impl Store {
    /// Inserts a conversation together with its first events, atomically,
    /// in the next group commit.
    pub async fn create_conversation(
        &self,
        new: &NewConversation,
        events: &[NewEvent],
    ) -> StoreResult<Vec<StoredEvent>> {
        let (stored, _) = self.create(new, events, None).await?;
        Ok(stored)
    }

    /// Inserts a conversation that joins its queue at once, with its first
    /// events, its position in the line (the position of the last one
    /// ahead of it, plus one) recorded and told by `position_event`, and
    /// `timer` (its max wait), all in one transaction, at the end of the
    /// line as every chat that joined before it committed it. That
    /// position is as right as the one it follows (between two passes of
    /// the position task, one ahead may have left, which marks the queue
    /// for the task). Also returns the line's head as the same
    /// transaction saw it.
    pub async fn create_queued_conversation(
        &self,
        new: &NewConversation,
        events: &[NewEvent],
        position_event: fn(u32) -> NewEvent,
        timer: Option<&TimerRow>,
    ) -> StoreResult<(Vec<StoredEvent>, Joined)> {
        let queued = Queued {
            position_event,
            timer: timer.cloned(),
        };
        let (stored, joined) = self.create(new, events, Some(queued)).await?;
        let joined = joined.ok_or_else(|| {
            super::StoreError::Corrupt("a queued create that joined no line".into())
        })?;
        Ok((stored, joined))
    }

    /// Creates in the next group commit, then remembers the identity of
    /// what committed (`identity.rs`).
    async fn create(
        &self,
        new: &NewConversation,
        events: &[NewEvent],
        queued: Option<Queued>,
    ) -> StoreResult<Created> {
        let create = Create {
            new: new.clone(),
            events: events.to_vec(),
            queued,
        };
        let created = self.batcher().create(create).await?;
        let created_at = created.0.first().map_or_else(now_ms, |e| e.created_at);
        self.identities.remember_new(new, created_at);
        Ok(created)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_new_chat_follows_the_last_one_ahead_or_counts_when_it_has_no_position() {
        let tail = |position| Tail {
            position,
            queued_at: 10,
            created_at: 10,
            id: "b".into(),
        };
        assert_eq!(ahead_from(None), Some(0), "nobody ahead");
        assert_eq!(ahead_from(Some(&tail(Some(4)))), Some(4));
        assert_eq!(ahead_from(Some(&tail(None))), None, "not ranked yet: count");
        assert_eq!(ahead_from(Some(&tail(Some(0)))), None, "never told: count");
        assert_eq!(position_after(0), 1);
        assert_eq!(position_after(i64::MAX - 1), u32::MAX);
    }

    #[test]
    fn new_chats_join_after_the_last_one_even_when_it_sorts_after_them() {
        let tail = Tail {
            position: Some(3),
            queued_at: 10,
            created_at: 10,
            id: "b".into(),
        };
        assert_eq!(queued_at_after(None, 10, "a"), 10, "an empty line");
        assert_eq!(queued_at_after(Some(&tail), 11, "a"), 11, "later");
        assert_eq!(
            queued_at_after(Some(&tail), 10, "c"),
            10,
            "same instant, later id"
        );
        assert_eq!(
            queued_at_after(Some(&tail), 10, "a"),
            11,
            "same instant, earlier id"
        );
        assert_eq!(queued_at_after(Some(&tail), 9, "c"), 11, "a clock behind");
    }
}
