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
//! calls (`batch/sqlite.rs`), on PostgreSQL the writer tasks do
//! ([`create_in`]).
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

use sqlx::{Any, Transaction};

use super::dispatch::INSERT_TIMER_ONCE;
use super::events::{insert_event_row, StoredEvent};
use super::queues::WAITING;
use super::{
    conversation_id, now_ms, Head, NewConversation, NewEvent, Store, StoreResult, TimerRow,
};
use crate::domain::ConversationState;

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

/// `$12`: `last_seq` (its events' count); `$13`: created and updated.
pub(super) const INSERT_ROW: &str =
    "INSERT INTO conversations (id, channel_key, token_hash, state, visitor_name, \
     visitor_email, page_url, language, queue_extension, queued_at, ended_at, last_seq, \
     created_at, updated_at, client_key) \
     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $13, $14)";

pub(super) const INSERT_WAITING: &str =
    "INSERT INTO waiting_state (conversation_id, position) VALUES ($1, $2)";

/// The position of the last one ahead in the line (`$1` the queue; `$2`,
/// `$3`, `$4` the new one's queued, created and id): one step down the
/// line's index, whatever its length.
pub(super) fn last_position_ahead() -> String {
    format!(
        "SELECT w.position FROM conversations c \
         LEFT JOIN waiting_state w ON w.conversation_id = c.id \
         WHERE c.queue_extension = $1 AND c.{WAITING} \
         AND (c.queued_at, c.created_at, c.id) < ($2, $3, $4) \
         ORDER BY c.queued_at DESC, c.created_at DESC, c.id DESC LIMIT 1"
    )
}

/// How many wait ahead (same parameters): counted only when the last one
/// ahead has no position yet (it joined through a menu, a transfer or an
/// overflow, and the position task has not ranked it).
pub(super) fn count_ahead() -> String {
    format!(
        "SELECT COUNT(*) FROM conversations WHERE queue_extension = $1 AND {WAITING} \
         AND (queued_at, created_at, id) < ($2, $3, $4)"
    )
}

/// What the last one ahead says: its position (`Some(Some(_))`), none
/// yet (`Some(None)`), or nobody ahead (`None`); `None` from this means
/// the ones ahead must be counted.
pub(super) fn ahead_from(last: Option<Option<i64>>) -> Option<i64> {
    match last {
        None => Some(0),
        Some(Some(position)) if position > 0 => Some(position),
        Some(_) => None,
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

/// Runs `create` inside `tx` (the sqlx drivers: PostgreSQL's writers).
pub(super) async fn create_in(
    tx: &mut Transaction<'_, Any>,
    create: &Create,
    now: i64,
) -> StoreResult<Created> {
    let new = &create.new;
    let id = new.id.to_string();
    sqlx::query(INSERT_ROW)
        .bind(id.clone())
        .bind(new.channel_key.clone())
        .bind(new.token_hash.0.clone())
        .bind(new.state.as_str())
        .bind(new.visitor_name.clone())
        .bind(new.visitor_email.clone())
        .bind(new.page_url.clone())
        .bind(new.language.clone())
        .bind(new.queue_extension.clone())
        .bind(new.queue_extension.as_ref().map(|_| now))
        .bind(new.ended.then_some(now))
        .bind(event_count(create))
        .bind(now)
        .bind(new.client_key.clone())
        .execute(&mut **tx)
        .await?;
    let mut joined = None;
    if let Some(queued) = &create.queued {
        let last: Option<Option<i64>> = sqlx::query_scalar(&last_position_ahead())
            .bind(new.queue_extension.clone())
            .bind(now)
            .bind(now)
            .bind(id.clone())
            .fetch_optional(&mut **tx)
            .await?;
        let ahead = match ahead_from(last) {
            Some(ahead) => ahead,
            None => {
                sqlx::query_scalar(&count_ahead())
                    .bind(new.queue_extension.clone())
                    .bind(now)
                    .bind(now)
                    .bind(id.clone())
                    .fetch_one(&mut **tx)
                    .await?
            }
        };
        let told = position_after(ahead);
        sqlx::query(INSERT_WAITING)
            .bind(id.clone())
            .bind(i64::from(told))
            .execute(&mut **tx)
            .await?;
        if let Some(timer) = &queued.timer {
            sqlx::query(INSERT_TIMER_ONCE)
                .bind(timer.kind.clone())
                .bind(timer.subject.clone())
                .bind(timer.due_at)
                .bind(timer.arg.clone())
                .execute(&mut **tx)
                .await?;
        }
        let head: Option<(String, Option<String>)> = sqlx::query_as(&line_head())
            .bind(new.queue_extension.clone())
            .bind(ConversationState::Queued.as_str())
            .fetch_optional(&mut **tx)
            .await?;
        let head = head
            .map(|(id, directed)| head_from(&id, directed.as_deref()))
            .transpose()?;
        joined = Some(Joined {
            position: told,
            head,
        });
    }
    let mut stored = Vec::new();
    let position = joined.as_ref().map(|j| j.position);
    for (seq, event) in (1..).zip(all_events(create, position)) {
        stored.push(insert_event_row(tx, new.id, seq, &event, now).await?);
    }
    Ok((stored, joined))
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
    /// `timer` (its max wait), all in one transaction. That position is as
    /// right as the one it follows: between two passes of the position
    /// task, one ahead may have left, and on PostgreSQL a chat started at
    /// the same instant may not be seen yet; the caller marks the queue for
    /// the task, which corrects both. Also returns the line's head as
    /// the same transaction saw it.
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
        assert_eq!(ahead_from(None), Some(0), "nobody ahead");
        assert_eq!(ahead_from(Some(Some(4))), Some(4));
        assert_eq!(ahead_from(Some(None)), None, "not ranked yet: count");
        assert_eq!(ahead_from(Some(Some(0))), None, "never told: count");
        assert_eq!(position_after(0), 1);
        assert_eq!(position_after(i64::MAX - 1), u32::MAX);
    }
}
