//! Group commit for visitor messages: the messages that arrive together
//! are stored in one transaction (one fsync), and each is answered only
//! after that transaction committed.
//!
//! Why: a visitor message used to be its own transaction, so at a few
//! hundred messages a second the database spent its time on commits (and,
//! on SQLite, writers queued for the one write lock, sleeping on
//! `busy_timeout`). Now a few writer tasks (one on SQLite, which has one
//! writer anyway; several on PostgreSQL, whose commits overlap) each take
//! whatever requests are waiting, up to [`MAX_BATCH`], and store them
//! together.
//!
//! Each request is checked inside the transaction: a `client_id` already
//! stored answers with the first copy (also when the copy is earlier in the
//! same batch), and a conversation that has ended (a final state, read
//! under the row's write lock) refuses the message. Who a message is for
//! is decided there too, from the row as locked: the agent it is assigned
//! to when active, the agents its offer rings for while it waits, nobody
//! otherwise; they get it in the delivery outbox in the same transaction. When the batch fails
//! as a whole (a concurrent copy of one message committed first on another
//! connection, a lost connection) it is rolled back and every request is
//! tried again alone, so one bad request never fails its neighbours and a
//! failure reaches only the caller it concerns.

use std::collections::HashMap;
use std::sync::Arc;

use sqlx::AnyConnection;
use sqlx::{Any, Connection, Row, Transaction};
use tokio::sync::{mpsc, oneshot, Mutex};

use super::conversations::{self, COLUMNS};
use super::dispatch;
use super::events::is_unique_violation;
use super::{
    now_ms, Backend, ConversationRow, NewEvent, Store, StoreError, StoreResult, StoredEvent,
};
use crate::domain::{ConversationId, ConversationState};

/// The most messages one transaction stores.
const MAX_BATCH: usize = 256;
/// Requests waiting for a writer; senders wait beyond this.
const QUEUE: usize = 4096;
/// Writer tasks on PostgreSQL (each holds a pool connection while it
/// writes); SQLite gets one.
const POSTGRES_WRITERS: usize = 3;

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

struct Request {
    id: ConversationId,
    event: NewEvent,
    reply: oneshot::Sender<StoreResult<Appended>>,
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
    pub(super) fn start(store: &Store) -> Batcher {
        let (queue, requests) = mpsc::channel(QUEUE);
        let requests = Arc::new(Mutex::new(requests));
        let writers = match store.backend {
            Backend::Sqlite => 1,
            Backend::Postgres => POSTGRES_WRITERS,
        };
        for _ in 0..writers {
            tokio::spawn(write_batches(store.clone(), requests.clone()));
        }
        Batcher { queue }
    }

    pub(super) async fn append(
        &self,
        id: ConversationId,
        event: NewEvent,
    ) -> StoreResult<Appended> {
        let (reply, answer) = oneshot::channel();
        let gone = || StoreError::Database(sqlx::Error::PoolClosed);
        self.queue
            .send(Request { id, event, reply })
            .await
            .map_err(|_| gone())?;
        answer.await.map_err(|_| gone())?
    }
}

/// One writer: takes the waiting requests (at least one), stores them, and
/// answers them, until the queue closes. It keeps one connection of its
/// own between batches (a pooled one is pinged on every return, a round
/// trip per batch), and takes a fresh one after any error.
async fn write_batches(store: Store, requests: Arc<Mutex<mpsc::Receiver<Request>>>) {
    let mut batch = Vec::with_capacity(MAX_BATCH);
    let mut connection: Option<AnyConnection> = None;
    loop {
        {
            let mut requests = requests.lock().await;
            if requests.recv_many(&mut batch, MAX_BATCH).await == 0 {
                return;
            }
        }
        metrics::histogram!("frontdesk_message_batch_size").record(batch.len() as f64);
        let conn = match connection.take() {
            Some(conn) => Ok(conn),
            None => store.pool.acquire().await.map(|c| c.detach()),
        };
        connection = match conn {
            Ok(conn) => write_batch(&store, conn, std::mem::take(&mut batch)).await,
            Err(e) => {
                let e = std::sync::Arc::new(e);
                for request in batch.drain(..) {
                    let _ = request
                        .reply
                        .send(Err(StoreError::Database(shared_error(&e))));
                }
                None
            }
        };
        batch.reserve(MAX_BATCH);
    }
}

/// The same failure for every caller of a batch (sqlx errors do not clone).
fn shared_error(e: &sqlx::Error) -> sqlx::Error {
    match e {
        sqlx::Error::PoolTimedOut => sqlx::Error::PoolTimedOut,
        sqlx::Error::PoolClosed => sqlx::Error::PoolClosed,
        other => sqlx::Error::Io(std::io::Error::other(other.to_string())),
    }
}

/// Stores a batch on `conn`; gives the connection back unless something
/// failed (then the next batch takes a fresh one).
async fn write_batch(
    store: &Store,
    mut conn: AnyConnection,
    batch: Vec<Request>,
) -> Option<AnyConnection> {
    let (requests, replies): (Vec<_>, Vec<_>) = batch
        .into_iter()
        .map(|r| ((r.id, r.event), r.reply))
        .unzip();
    match store_together(store, &mut conn, &requests).await {
        Ok(results) => {
            for (reply, result) in replies.into_iter().zip(results) {
                let _ = reply.send(Ok(result));
            }
            return Some(conn);
        }
        // Whatever failed, each request now learns its own fate, on a
        // pooled connection.
        Err(e) => {
            tracing::debug!(error = %e, size = requests.len(), "a batch failed: storing its messages one by one")
        }
    }
    drop(conn);
    for ((id, event), reply) in requests.iter().zip(replies) {
        let _ = reply.send(store_alone(store, *id, event).await);
    }
    None
}

/// One request in a transaction of its own; a concurrent copy committed
/// first answers with that copy.
async fn store_alone(store: &Store, id: ConversationId, event: &NewEvent) -> StoreResult<Appended> {
    let mut conn = store.pool.acquire().await?;
    match store_together(store, &mut conn, std::slice::from_ref(&(id, event.clone()))).await {
        Ok(mut results) => Ok(results.remove(0)),
        Err(e) if is_unique_violation(&e) => {
            let client_id = event.client_id.as_deref().unwrap_or_default();
            Ok(Appended::Existing(store.first_stored(id, client_id).await?))
        }
        Err(e) => Err(e),
    }
}

/// Stores every request in one transaction, or none of them, in a fixed
/// number of statements whatever the batch's size: one read finds the
/// copies already stored, one update takes every conversation's new seqs
/// (and refuses ended ones, under the rows' write locks), one insert
/// writes the events, one the outbox rows.
async fn store_together(
    store: &Store,
    conn: &mut AnyConnection,
    requests: &[(ConversationId, NewEvent)],
) -> StoreResult<Vec<Appended>> {
    let mut tx = match store.backend {
        // Take the write lock first: a transaction that reads and then
        // writes could otherwise find its snapshot stale and fail at once.
        Backend::Sqlite => conn.begin_with("BEGIN IMMEDIATE").await?,
        Backend::Postgres => conn.begin().await?,
    };
    let now = now_ms();
    let stored_before = select_copies(&mut tx, requests).await?;
    // What each request becomes, decided in request order: a copy stored
    // before, a copy of an earlier request in this batch, or new.
    let mut plan: Vec<Plan> = Vec::with_capacity(requests.len());
    let mut first_in_batch: HashMap<(ConversationId, &str), usize> = HashMap::new();
    let mut new_per_conversation: HashMap<ConversationId, i64> = HashMap::new();
    for (index, (id, event)) in requests.iter().enumerate() {
        let client_id = client_id_of(event);
        if let Some(first) = stored_before.get(&(*id, client_id)) {
            plan.push(Plan::Existing(first.clone()));
        } else if let Some(first) = first_in_batch.get(&(*id, client_id)) {
            plan.push(Plan::CopyOf(*first));
        } else {
            first_in_batch.insert((*id, client_id), index);
            let count = new_per_conversation.entry(*id).or_default();
            *count += 1;
            plan.push(Plan::New { nth: *count });
        }
    }
    let moved = take_seqs(&mut tx, &new_per_conversation, now).await?;
    let ringing = ringing_for(&mut tx, &moved).await?;
    let mut rows = Vec::new();
    let mut results: Vec<Appended> = Vec::with_capacity(requests.len());
    for ((id, event), step) in requests.iter().zip(&plan) {
        let result = match step {
            Plan::Existing(first) => Appended::Existing(first.clone()),
            Plan::CopyOf(first) => match &results[*first] {
                Appended::Created { event, .. } => Appended::Existing(event.clone()),
                other => other.clone(),
            },
            Plan::New { nth } => match moved.get(id) {
                Some(conversation) => {
                    let seq = conversation.last_seq - new_per_conversation[id] + nth;
                    let deliver_to = recipients(conversation, &ringing);
                    rows.push((*id, seq, event, deliver_to.clone()));
                    Appended::Created {
                        event: StoredEvent {
                            conversation_id: *id,
                            seq,
                            kind: event.kind.to_owned(),
                            payload: event.payload.clone(),
                            client_id: event.client_id.clone(),
                            created_at: now,
                        },
                        conversation: Box::new(conversation.clone()),
                        deliver_to,
                    }
                }
                None => Appended::Ended,
            },
        };
        results.push(result);
    }
    insert_events(&mut tx, &rows, now).await?;
    insert_deliveries(&mut tx, &rows, now).await?;
    let committed: Vec<(ConversationId, i64)> =
        (moved.values()).map(|row| (row.id, row.last_seq)).collect();
    super::signals::notify_all_committed(&mut tx, store, &committed).await?;
    tx.commit().await?;
    Ok(results)
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

fn client_id_of(event: &NewEvent) -> &str {
    event
        .client_id
        .as_deref()
        .expect("visitor messages carry a client id")
}

/// `$first, $first+1, …` for `count` values, as `($a, $b), ($c, $d)`
/// groups of `width`.
fn placeholders(first: usize, count: usize, width: usize) -> String {
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

/// The copies of the batch's messages already stored, by conversation and
/// client id.
async fn select_copies<'r>(
    tx: &mut Transaction<'_, Any>,
    requests: &'r [(ConversationId, NewEvent)],
) -> StoreResult<HashMap<(ConversationId, &'r str), StoredEvent>> {
    let ids: Vec<String> = requests.iter().map(|(id, _)| id.to_string()).collect();
    let sql = format!(
        "SELECT conversation_id, seq, kind, payload, client_id, created_at FROM events \
         WHERE client_id IS NOT NULL AND (conversation_id, client_id) IN (VALUES {})",
        placeholders(1, requests.len(), 2)
    );
    let mut query = sqlx::query(&sql).persistent(false);
    for (id, (_, event)) in ids.iter().zip(requests) {
        query = query.bind(id.as_str()).bind(client_id_of(event));
    }
    let found = query.fetch_all(&mut **tx).await?;
    let mut copies = HashMap::new();
    for row in &found {
        let conversation: String = row.try_get("conversation_id")?;
        let conversation = super::conversation_id(&conversation)?;
        let stored = super::events::from_row(conversation, row)?;
        // Keyed by the request's own client id, so the map borrows it.
        if let Some((_, event)) = requests
            .iter()
            .find(|(id, event)| *id == conversation && event.client_id == stored.client_id)
        {
            copies.insert((conversation, client_id_of(event)), stored);
        }
    }
    Ok(copies)
}

/// Moves each conversation's seq counter on by its number of new messages
/// unless it has ended; the conversations that moved, as they are now.
async fn take_seqs(
    tx: &mut Transaction<'_, Any>,
    counts: &HashMap<ConversationId, i64>,
    now: i64,
) -> StoreResult<HashMap<ConversationId, ConversationRow>> {
    if counts.is_empty() {
        return Ok(HashMap::new());
    }
    let counts: Vec<(String, i64)> = counts.iter().map(|(id, n)| (id.to_string(), *n)).collect();
    let cases: Vec<String> = (0..counts.len())
        .map(|i| format!("WHEN ${} THEN ${}", 4 + 2 * i, 5 + 2 * i))
        .collect();
    let ids: Vec<String> = (0..counts.len())
        .map(|i| format!("${}", 4 + 2 * i))
        .collect();
    let sql = format!(
        "UPDATE conversations SET last_seq = last_seq + CASE id {} END, updated_at = $1 \
         WHERE id IN ({}) AND state <> $2 AND state <> $3 RETURNING {COLUMNS}",
        cases.join(" "),
        ids.join(", ")
    );
    let mut query = sqlx::query(&sql)
        .persistent(false)
        .bind(now)
        .bind(ConversationState::Ended.as_str())
        .bind(ConversationState::ClosedOutOfHours.as_str());
    for (id, count) in &counts {
        query = query.bind(id.as_str()).bind(*count);
    }
    let moved = query.fetch_all(&mut **tx).await?;
    let mut rows = HashMap::with_capacity(moved.len());
    for row in &moved {
        let row = conversations::from_row(row)?;
        rows.insert(row.id, row);
    }
    Ok(rows)
}

/// Who the offers of the waiting conversations among `moved` ring for.
async fn ringing_for(
    tx: &mut Transaction<'_, Any>,
    moved: &HashMap<ConversationId, ConversationRow>,
) -> StoreResult<HashMap<ConversationId, Vec<String>>> {
    let waiting: Vec<String> = (moved.values())
        .filter(|row| row.state.is_waiting())
        .map(|row| row.id.to_string())
        .collect();
    if waiting.is_empty() {
        return Ok(HashMap::new());
    }
    let ids: Vec<String> = (1..=waiting.len()).map(|i| format!("${i}")).collect();
    let sql = format!(
        "SELECT conversation_id, agents FROM offers WHERE conversation_id IN ({})",
        ids.join(", ")
    );
    let mut query = sqlx::query(&sql).persistent(false);
    for id in &waiting {
        query = query.bind(id.as_str());
    }
    let mut ringing = HashMap::new();
    for row in query.fetch_all(&mut **tx).await? {
        let id: String = row.try_get("conversation_id")?;
        let agents: String = row.try_get("agents")?;
        ringing.insert(super::conversation_id(&id)?, dispatch::agents_of(&agents)?);
    }
    Ok(ringing)
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

async fn insert_events(
    tx: &mut Transaction<'_, Any>,
    rows: &[(ConversationId, i64, &NewEvent, Vec<String>)],
    now: i64,
) -> StoreResult<()> {
    if rows.is_empty() {
        return Ok(());
    }
    let sql = format!(
        "INSERT INTO events (conversation_id, seq, kind, payload, client_id, created_at) VALUES {}",
        placeholders(1, rows.len(), 6)
    );
    let mut query = sqlx::query(&sql).persistent(false);
    for (id, seq, event, _) in rows {
        query = query
            .bind(id.to_string())
            .bind(*seq)
            .bind(event.kind)
            .bind(event.payload.to_string())
            .bind(event.client_id.clone())
            .bind(now);
    }
    query.execute(&mut **tx).await?;
    Ok(())
}

async fn insert_deliveries(
    tx: &mut Transaction<'_, Any>,
    rows: &[(ConversationId, i64, &NewEvent, Vec<String>)],
    now: i64,
) -> StoreResult<()> {
    let deliveries: Vec<(String, i64, &str)> = rows
        .iter()
        .flat_map(|(id, seq, _, deliver_to)| {
            (deliver_to.iter()).map(move |agent| (id.to_string(), *seq, agent.as_str()))
        })
        .collect();
    if deliveries.is_empty() {
        return Ok(());
    }
    let sql = format!(
        "INSERT INTO agent_deliveries (conversation_id, seq, agent_extension, created_at) VALUES {}",
        placeholders(1, deliveries.len(), 4)
    );
    let mut query = sqlx::query(&sql).persistent(false);
    for (id, seq, agent) in deliveries {
        query = query.bind(id).bind(seq).bind(agent).bind(now);
    }
    query.execute(&mut **tx).await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn placeholders_number_rows_of_values_in_order() {
        assert_eq!(placeholders(1, 2, 2), "($1, $2), ($3, $4)");
        assert_eq!(placeholders(4, 1, 3), "($4, $5, $6)");
    }

    #[test]
    fn final_states_are_the_two_the_update_refuses() {
        let refused = [
            ConversationState::Ended,
            ConversationState::ClosedOutOfHours,
        ];
        for state in ConversationState::ALL {
            assert_eq!(state.is_final(), refused.contains(&state), "{state}");
        }
    }
}
