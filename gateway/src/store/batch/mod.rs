//! Group commit for visitor messages: the messages that arrive together
//! are stored in one transaction (one fsync), and each is answered only
//! after that transaction committed.
//!
//! Why: a visitor message used to be its own transaction, so at a few
//! hundred messages a second the database spent its time on commits (and,
//! on SQLite, writers queued for the one write lock, sleeping on
//! `busy_timeout`). Now writers take whatever requests are waiting, up to
//! [`MAX_BATCH`], and store them together: on PostgreSQL a few async
//! writer tasks whose commits overlap (`postgres.rs`); on SQLite, which
//! has one writer anyway, one thread of its own holding one connection
//! (`sqlite.rs`), so a batch costs two thread hand-offs (in and out)
//! instead of two per statement through the async driver's worker thread.
//!
//! Each request is checked inside the transaction: a `client_id` already
//! stored answers with the first copy (also when the copy is earlier in the
//! same batch), and a conversation that has ended (a final state, read
//! under the row's write lock) refuses the message. Who a message is for
//! is decided there too, from the row as locked: the agent it is assigned
//! to when active, the agents its offer rings for while it waits, nobody
//! otherwise; they get it in the delivery outbox in the same transaction.
//! When a batch fails because the database is unavailable, every caller
//! gets that error (nothing was acknowledged; a retry with the same client
//! id finds what did commit). Any other failure (a concurrent copy of one
//! message committed first on another connection) rolls the batch back
//! and tries every request again alone, so one bad request never fails
//! its neighbours and a failure reaches only the caller it concerns.
//!
//! The same commits also write the XMPP bridge's outbox: the stanzas it
//! keeps until the server confirms them ([`Keep`], each caller answered
//! after the commit, as a message is) and what it is done with
//! ([`Forget`]: a delivery the agent's side has, the outbox row that
//! carried it). Those used to be transactions of their own: one per
//! stanza sent, and two per server confirmation and per receipt, awaited
//! one after the other in the XMPP reader, so everything the reader
//! handled after them waited for their commits. Keeps and forgets cannot
//! conflict with messages; a failed batch retries them together in a
//! transaction of their own.
//!
//! Conversations are created in the same commits (`creation.rs`): a start
//! used to be a transaction of its own, ten statements and an fsync
//! under the one write turn. Creates go first in a batch, in id order (so
//! chats created at the same instant take consecutive places in their
//! line); a failed batch retries each alone.
//!
//! The writers share this file's planning ([`plan`], [`outcome`]) and
//! differ only in how they run the statements.

mod postgres;
mod sqlite;

use std::collections::HashMap;

use tokio::sync::{mpsc, oneshot};

use super::creation::{Create, Created};
use super::{
    Backend, ConversationRow, DeliveryRow, NewEvent, Store, StoreError, StoreResult, StoredEvent,
};
use crate::domain::{ConversationId, ConversationState};

/// The most messages one transaction stores.
const MAX_BATCH: usize = 256;
/// Requests waiting for a writer; senders wait beyond this.
const QUEUE: usize = 4096;

/// What storing a visitor message did.
#[derive(Debug, Clone)]
pub enum Appended {
    /// Stored now, under a new seq, with the conversation as it is after
    /// it and the agents it was recorded for in the delivery outbox.
    Created {
        event: StoredEvent,
        conversation: Box<ConversationRow>,
        deliver_to: Vec<String>,
    },
    /// The `client_id` was stored before: the first copy.
    Existing(StoredEvent),
    /// The conversation is over (or gone): nothing was stored.
    Ended,
}

/// What the bridges are done with, forgotten in the next group commit:
/// a delivery the other side has (`agent_deliveries`), and the XMPP
/// outbox row that carried it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Forget {
    pub delivery: Option<DeliveryRow>,
    pub xmpp_row: Option<String>,
}

/// A stanza the XMPP bridge keeps (`xmpp_outbox`) until the server
/// confirms it, claimed by `node` (`None`: for the node holding the
/// connection); with `delivery`, kept only while that delivery is still
/// to be made (so a replay racing a confirmation adds nothing).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Keep {
    pub id: String,
    pub payload: String,
    pub node: Option<String>,
    pub delivery: Option<DeliveryRow>,
}

enum Request {
    Create {
        create: Box<Create>,
        reply: oneshot::Sender<StoreResult<Created>>,
    },
    Append {
        id: ConversationId,
        event: NewEvent,
        reply: oneshot::Sender<StoreResult<Appended>>,
    },
    Keep {
        row: Keep,
        /// Whether it was kept now (`false`: a row with its id exists, or
        /// its delivery is done).
        reply: oneshot::Sender<StoreResult<bool>>,
    },
    Forget {
        what: Forget,
        /// `None`: nobody waits (a failure is logged).
        reply: Option<oneshot::Sender<StoreResult<()>>>,
    },
}

/// The sending side of the writers' queue; the writers stop when the last
/// clone of it (in every `Store` clone) is gone.
#[derive(Clone)]
pub(super) struct Batcher {
    queue: mpsc::Sender<Request>,
}

impl Batcher {
    /// Starts the writers for `store` (which must not hold a batcher yet:
    /// the writers' own clone of it has none, so they never keep
    /// themselves alive).
    pub(super) fn start(store: &Store) -> StoreResult<Batcher> {
        let (queue, requests) = mpsc::channel(QUEUE);
        match store.backend {
            Backend::Sqlite => sqlite::start(store, requests)?,
            Backend::Postgres => postgres::start(store, requests),
        }
        Ok(Batcher { queue })
    }

    pub(super) async fn append(
        &self,
        id: ConversationId,
        event: NewEvent,
    ) -> StoreResult<Appended> {
        let (reply, answer) = oneshot::channel();
        self.queue
            .send(Request::Append { id, event, reply })
            .await
            .map_err(|_| gone())?;
        answer.await.map_err(|_| gone())?
    }

    /// Creates a conversation in the next group commit, once that
    /// committed: its events and, when queued, where it joined its line
    /// (its position and the line's head).
    pub(super) async fn create(&self, create: Create) -> StoreResult<Created> {
        let (reply, answer) = oneshot::channel();
        let create = Box::new(create);
        self.queue
            .send(Request::Create { create, reply })
            .await
            .map_err(|_| gone())?;
        answer.await.map_err(|_| gone())?
    }

    /// Keeps `row` in the next group commit, once that committed: whether
    /// it was kept.
    pub(super) async fn keep(&self, row: Keep) -> StoreResult<bool> {
        let (reply, answer) = oneshot::channel();
        self.queue
            .send(Request::Keep { row, reply })
            .await
            .map_err(|_| gone())?;
        answer.await.map_err(|_| gone())?
    }

    /// Forgets `what` in the next group commit; with `wait`, returns once
    /// that committed, else once it is queued.
    pub(super) async fn forget(&self, what: Forget, wait: bool) -> StoreResult<()> {
        let (reply, answer) = oneshot::channel();
        let reply = wait.then_some(reply);
        self.queue
            .send(Request::Forget { what, reply })
            .await
            .map_err(|_| gone())?;
        if !wait {
            return Ok(());
        }
        answer.await.map_err(|_| gone())?
    }
}

/// The writers are gone (the store is closing).
fn gone() -> StoreError {
    StoreError::Database(sqlx::Error::PoolClosed)
}

/// The same failure for every caller of a batch (sqlx errors do not
/// clone); an unavailable database stays unavailable.
fn shared_error(e: &StoreError) -> StoreError {
    let database = match e {
        StoreError::Database(sqlx::Error::PoolTimedOut) => sqlx::Error::PoolTimedOut,
        StoreError::Database(sqlx::Error::PoolClosed) => sqlx::Error::PoolClosed,
        other if other.is_unavailable() => {
            sqlx::Error::Io(std::io::Error::other(other.to_string()))
        }
        other => sqlx::Error::AnyDriverError(other.to_string().into()),
    };
    StoreError::Database(database)
}

/// A batch as the writers run it: the conversations to create, the
/// messages to store and whom each answers, and the bridges' outbox rows
/// to keep and forget.
struct Sorted {
    creates: Creates,
    messages: Vec<(ConversationId, NewEvent)>,
    replies: Vec<Reply>,
    outbox: Outbox,
}

type Reply = oneshot::Sender<StoreResult<Appended>>;

/// What a batch stored together: the creates' and the messages' answers,
/// and whether each keep was kept.
struct Together {
    created: Vec<Created>,
    appended: Vec<Appended>,
    kept: Vec<bool>,
}

/// The creates of a batch, in id order, and who waits for each.
#[derive(Default)]
struct Creates {
    creates: Vec<Create>,
    replies: Vec<oneshot::Sender<StoreResult<Created>>>,
}

impl Creates {
    fn answer(self, created: Vec<Created>) {
        for (reply, created) in self.replies.into_iter().zip(created) {
            let _ = reply.send(Ok(created));
        }
    }

    fn fail(self, e: &StoreError) {
        for reply in self.replies {
            let _ = reply.send(Err(shared_error(e)));
        }
    }
}

/// The outbox rows of a batch (kept first, then forgotten: a receipt for
/// a replayed message in the same batch leaves nothing behind), and who
/// waits for them.
#[derive(Default)]
struct Outbox {
    keeps: Vec<Keep>,
    kept: Vec<oneshot::Sender<StoreResult<bool>>>,
    deliveries_done: Vec<DeliveryRow>,
    xmpp_done: Vec<String>,
    forgotten: Vec<oneshot::Sender<StoreResult<()>>>,
}

impl Outbox {
    fn is_empty(&self) -> bool {
        self.keeps.is_empty() && self.deliveries_done.is_empty() && self.xmpp_done.is_empty()
    }

    /// Tells whoever waits, with whether each keep was kept (in order); a
    /// failed forget nobody waits for is logged.
    fn answer(self, result: &StoreResult<Vec<bool>>) {
        match result {
            Ok(kept) => {
                for (reply, kept) in self.kept.into_iter().zip(kept) {
                    let _ = reply.send(Ok(*kept));
                }
                for reply in self.forgotten {
                    let _ = reply.send(Ok(()));
                }
            }
            Err(e) => {
                if !self.deliveries_done.is_empty() || !self.xmpp_done.is_empty() {
                    tracing::warn!(error = %e, "cannot forget delivered messages; they may be sent again");
                }
                for reply in self.kept {
                    let _ = reply.send(Err(shared_error(e)));
                }
                for reply in self.forgotten {
                    let _ = reply.send(Err(shared_error(e)));
                }
            }
        }
    }
}

/// Moves the requests already waiting into `batch`, up to [`MAX_BATCH`],
/// without waiting for more.
fn take_waiting(requests: &mut mpsc::Receiver<Request>, batch: &mut Vec<Request>) {
    while batch.len() < MAX_BATCH {
        match requests.try_recv() {
            Ok(request) => batch.push(request),
            Err(_) => break,
        }
    }
}

/// Fails every request of a batch with `e` (no connection to run it on).
fn fail_all(batch: Vec<Request>, e: &StoreError) {
    let sorted = split(batch);
    sorted.creates.fail(e);
    for reply in sorted.replies {
        let _ = reply.send(Err(shared_error(e)));
    }
    sorted.outbox.answer(&Err(shared_error(e)));
}

/// `$first, $first+1, …` for `count` values, as `($a, $b), ($c, $d)`
/// groups of `width`.
pub(in crate::store) fn placeholders(first: usize, count: usize, width: usize) -> String {
    (0..count)
        .map(|row| {
            let group: Vec<String> = (0..width)
                .map(|col| format!("${}", first + row * width + col))
                .collect();
            format!("({})", group.join(", "))
        })
        .collect::<Vec<_>>()
        .join(", ")
}

/// Sorts a batch into creates (in id order), messages and outbox rows;
/// what is forgotten once
/// per key, in key order (so concurrent PostgreSQL writers take the rows'
/// locks in the same order).
fn split(batch: Vec<Request>) -> Sorted {
    let mut creates = Vec::new();
    let mut sorted = Sorted {
        creates: Creates::default(),
        messages: Vec::with_capacity(batch.len()),
        replies: Vec::with_capacity(batch.len()),
        outbox: Outbox::default(),
    };
    for request in batch {
        let outbox = &mut sorted.outbox;
        match request {
            Request::Create { create, reply } => creates.push((*create, reply)),
            Request::Append { id, event, reply } => {
                sorted.messages.push((id, event));
                sorted.replies.push(reply);
            }
            Request::Keep { row, reply } => {
                outbox.keeps.push(row);
                outbox.kept.push(reply);
            }
            Request::Forget { what, reply } => {
                outbox.deliveries_done.extend(what.delivery);
                outbox.xmpp_done.extend(what.xmpp_row);
                outbox.forgotten.extend(reply);
            }
        }
    }
    creates.sort_by_key(|(create, _)| create.new.id.as_uuid());
    for (create, reply) in creates {
        sorted.creates.creates.push(create);
        sorted.creates.replies.push(reply);
    }
    let outbox = &mut sorted.outbox;
    outbox.deliveries_done.sort_by(|a, b| {
        (a.conversation.as_uuid(), a.seq, &a.agent_extension).cmp(&(
            b.conversation.as_uuid(),
            b.seq,
            &b.agent_extension,
        ))
    });
    outbox.deliveries_done.dedup();
    outbox.xmpp_done.sort();
    outbox.xmpp_done.dedup();
    sorted
}

/// What each request of a batch becomes, decided in request order.
struct Planned {
    steps: Vec<Plan>,
    /// How many new messages each conversation gets.
    new_per_conversation: HashMap<ConversationId, i64>,
}

enum Plan {
    Existing(StoredEvent),
    /// The same message as the request at this index, earlier in the batch.
    CopyOf(usize),
    /// New: the `nth` new message of its conversation in this batch.
    New {
        nth: i64,
    },
}

/// Plans a batch: a copy stored before, a copy of an earlier request in
/// this batch, or new.
fn plan(
    requests: &[(ConversationId, NewEvent)],
    stored_before: &HashMap<(ConversationId, &str), StoredEvent>,
) -> Planned {
    let mut steps: Vec<Plan> = Vec::with_capacity(requests.len());
    let mut first_in_batch: HashMap<(ConversationId, &str), usize> = HashMap::new();
    let mut new_per_conversation: HashMap<ConversationId, i64> = HashMap::new();
    for (index, (id, event)) in requests.iter().enumerate() {
        let client_id = client_id_of(event);
        if let Some(first) = stored_before.get(&(*id, client_id)) {
            steps.push(Plan::Existing(first.clone()));
        } else if let Some(first) = first_in_batch.get(&(*id, client_id)) {
            steps.push(Plan::CopyOf(*first));
        } else {
            first_in_batch.insert((*id, client_id), index);
            let count = new_per_conversation.entry(*id).or_default();
            *count += 1;
            steps.push(Plan::New { nth: *count });
        }
    }
    Planned {
        steps,
        new_per_conversation,
    }
}

/// A new message to write: its conversation, seq, event and who gets it.
struct NewRow<'r> {
    id: ConversationId,
    seq: i64,
    event: &'r NewEvent,
    deliver_to: Vec<String>,
}

/// What each request's answer is, once the conversations that took new
/// seqs (`moved`, as they are now) and who their offers ring for are
/// known; and the rows to insert for the new ones.
fn outcome<'r>(
    requests: &'r [(ConversationId, NewEvent)],
    planned: &Planned,
    moved: &HashMap<ConversationId, ConversationRow>,
    ringing: &HashMap<ConversationId, Vec<String>>,
    now: i64,
) -> (Vec<Appended>, Vec<NewRow<'r>>) {
    let mut rows = Vec::new();
    let mut results: Vec<Appended> = Vec::with_capacity(requests.len());
    for ((id, event), step) in requests.iter().zip(&planned.steps) {
        let result = match step {
            Plan::Existing(first) => Appended::Existing(first.clone()),
            Plan::CopyOf(first) => match &results[*first] {
                Appended::Created { event, .. } => Appended::Existing(event.clone()),
                other => other.clone(),
            },
            Plan::New { nth } => match moved.get(id) {
                Some(conversation) => {
                    let seq = conversation.last_seq - planned.new_per_conversation[id] + nth;
                    let deliver_to = recipients(conversation, ringing);
                    rows.push(NewRow {
                        id: *id,
                        seq,
                        event,
                        deliver_to: deliver_to.clone(),
                    });
                    Appended::Created {
                        event: StoredEvent::stored(*id, seq, event, now),
                        conversation: Box::new(conversation.clone()),
                        deliver_to,
                    }
                }
                None => Appended::Ended,
            },
        };
        results.push(result);
    }
    (results, rows)
}

/// The ids of the waiting conversations among `moved` (whose offers the
/// writer reads).
fn waiting(moved: &HashMap<ConversationId, ConversationRow>) -> Vec<String> {
    (moved.values())
        .filter(|row| row.state.is_waiting())
        .map(|row| row.id.to_string())
        .collect()
}

/// Who a visitor's message is for: the agent it is assigned to when
/// active, who its offer rings for while it waits (a queued one too: its
/// offer row is written just before it reads offered), else nobody.
fn recipients(
    conversation: &ConversationRow,
    ringing: &HashMap<ConversationId, Vec<String>>,
) -> Vec<String> {
    match conversation.state {
        ConversationState::Active => conversation.agent_extension.iter().cloned().collect(),
        state if state.is_waiting() => (ringing.get(&conversation.id).cloned()).unwrap_or_default(),
        _ => Vec::new(),
    }
}

fn client_id_of(event: &NewEvent) -> &str {
    event
        .client_id
        .as_deref()
        .expect("visitor messages carry a client id")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn placeholders_number_rows_of_values_in_order() {
        assert_eq!(placeholders(1, 2, 2), "($1, $2), ($3, $4)");
        assert_eq!(placeholders(4, 1, 3), "($4, $5, $6)");
    }

    fn message(client_id: &str) -> NewEvent {
        NewEvent {
            client_id: Some(client_id.to_owned()),
            ..NewEvent::new("message", serde_json::json!({"body": client_id}))
        }
    }

    #[test]
    fn a_batch_is_planned_in_request_order_with_copies_pointing_at_the_first() {
        let (a, b) = (ConversationId::new(), ConversationId::new());
        let requests = vec![
            (a, message("x")),
            (b, message("x")),
            (a, message("y")),
            (a, message("x")),
        ];
        let planned = plan(&requests, &HashMap::new());
        assert!(matches!(planned.steps[0], Plan::New { nth: 1 }));
        assert!(matches!(planned.steps[1], Plan::New { nth: 1 }));
        assert!(matches!(planned.steps[2], Plan::New { nth: 2 }));
        assert!(matches!(planned.steps[3], Plan::CopyOf(0)));
        assert_eq!(planned.new_per_conversation[&a], 2);
        assert_eq!(planned.new_per_conversation[&b], 1);
    }

    #[test]
    fn final_states_are_the_two_the_writers_refuse() {
        let refused = [
            ConversationState::Ended,
            ConversationState::ClosedOutOfHours,
        ];
        for state in ConversationState::ALL {
            assert_eq!(state.is_final(), refused.contains(&state), "{state}");
        }
    }
}
