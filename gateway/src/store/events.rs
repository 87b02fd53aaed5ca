//! The per-conversation event log.

use sqlx::any::AnyRow;
use sqlx::{Any, Row, Transaction};

use super::batch::Appended;
use super::{Store, StoreError, StoreResult};
use crate::domain::ConversationId;

/// An event to append. `client_id` makes visitor messages idempotent;
/// `deliver_to` names the agents (by extension) it must be forwarded to,
/// recorded in the delivery outbox in the same transaction.
#[derive(Debug, Clone)]
pub struct NewEvent {
    pub kind: &'static str,
    pub payload: serde_json::Value,
    pub client_id: Option<String>,
    pub deliver_to: Vec<String>,
}

impl NewEvent {
    pub fn new(kind: &'static str, payload: serde_json::Value) -> Self {
        Self {
            kind,
            payload,
            client_id: None,
            deliver_to: Vec::new(),
        }
    }
}

/// An event as committed, with its sequence number.
#[derive(Debug, Clone, PartialEq)]
pub struct StoredEvent {
    pub conversation_id: ConversationId,
    pub seq: i64,
    pub kind: String,
    pub payload: serde_json::Value,
    pub client_id: Option<String>,
    pub created_at: i64,
}

impl StoredEvent {
    /// What `event` became once stored under `seq` at `now`.
    pub(super) fn stored(
        conversation_id: ConversationId,
        seq: i64,
        event: &NewEvent,
        now: i64,
    ) -> Self {
        Self {
            conversation_id,
            seq,
            kind: event.kind.to_owned(),
            payload: event.payload.clone(),
            client_id: event.client_id.clone(),
            created_at: now,
        }
    }
}

pub(super) fn from_row(conversation_id: ConversationId, row: &AnyRow) -> StoreResult<StoredEvent> {
    let payload: String = row.try_get("payload")?;
    Ok(StoredEvent {
        conversation_id,
        seq: row.try_get("seq")?,
        kind: row.try_get("kind")?,
        payload: serde_json::from_str(&payload)
            .map_err(|e| StoreError::Corrupt(format!("event payload: {e}")))?,
        client_id: row.try_get("client_id")?,
        created_at: row.try_get("created_at")?,
    })
}

/// Appends events inside `tx`, taking each `seq` from the conversation's
/// counter. The counter update row-locks the conversation on PostgreSQL
/// (SQLite has one writer), so seqs are gapless even across nodes. On
/// PostgreSQL the last seq is announced to every node in the same
/// transaction (see `signals.rs`).
pub(super) async fn insert_events(
    tx: &mut Transaction<'_, Any>,
    store: &Store,
    id: ConversationId,
    events: &[NewEvent],
    now: i64,
) -> StoreResult<Vec<StoredEvent>> {
    let mut stored = Vec::with_capacity(events.len());
    for event in events {
        let seq: i64 = sqlx::query_scalar(
            "UPDATE conversations SET last_seq = last_seq + 1, updated_at = $2 \
             WHERE id = $1 RETURNING last_seq",
        )
        .bind(id.to_string())
        .bind(now)
        .fetch_one(&mut **tx)
        .await?;
        stored.push(insert_event_row(tx, id, seq, event, now).await?);
        for agent in &event.deliver_to {
            insert_delivery(tx, id, seq, agent, now).await?;
        }
    }
    if let Some(last) = stored.last() {
        super::signals::notify_committed(tx, store, id, last.seq).await?;
    }
    Ok(stored)
}

/// Inserts one event row under `seq` (already taken from the counter).
pub(super) async fn insert_event_row(
    tx: &mut Transaction<'_, Any>,
    id: ConversationId,
    seq: i64,
    event: &NewEvent,
    now: i64,
) -> StoreResult<StoredEvent> {
    let payload = event.payload.to_string();
    sqlx::query(
        "INSERT INTO events (conversation_id, seq, kind, payload, client_id, created_at) \
         VALUES ($1, $2, $3, $4, $5, $6)",
    )
    .bind(id.to_string())
    .bind(seq)
    .bind(event.kind)
    .bind(payload)
    .bind(event.client_id.as_deref())
    .bind(now)
    .execute(&mut **tx)
    .await?;
    Ok(StoredEvent::stored(id, seq, event, now))
}

/// Records in the outbox that `agent` must get event `seq`.
async fn insert_delivery(
    tx: &mut Transaction<'_, Any>,
    id: ConversationId,
    seq: i64,
    agent: &str,
    now: i64,
) -> StoreResult<()> {
    sqlx::query(
        "INSERT INTO agent_deliveries (conversation_id, seq, agent_extension, created_at) \
         VALUES ($1, $2, $3, $4)",
    )
    .bind(id.to_string())
    .bind(seq)
    .bind(agent)
    .bind(now)
    .execute(&mut **tx)
    .await?;
    Ok(())
}

/// The event stored under `client_id`, read through `executor` (the pool,
/// or a transaction that may have stored it itself).
async fn select_by_client_id<'c, E>(
    executor: E,
    id: ConversationId,
    client_id: &str,
) -> StoreResult<Option<StoredEvent>>
where
    E: sqlx::Executor<'c, Database = Any>,
{
    let row = sqlx::query(
        "SELECT seq, kind, payload, client_id, created_at FROM events \
         WHERE conversation_id = $1 AND client_id = $2",
    )
    .bind(id.to_string())
    .bind(client_id)
    .fetch_optional(executor)
    .await?;
    row.as_ref().map(|r| from_row(id, r)).transpose()
}

impl Store {
    /// Events with `seq > after`, in order, at most `limit`.
    pub async fn events_after(
        &self,
        id: ConversationId,
        after: i64,
        limit: i64,
    ) -> StoreResult<Vec<StoredEvent>> {
        let rows = sqlx::query(
            "SELECT seq, kind, payload, client_id, created_at FROM events \
             WHERE conversation_id = $1 AND seq > $2 ORDER BY seq LIMIT $3",
        )
        .bind(id.to_string())
        .bind(after)
        .bind(limit)
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(|r| from_row(id, r)).collect()
    }

    /// The last `limit` events of one kind, in order.
    pub async fn last_events_of_kind(
        &self,
        id: ConversationId,
        kind: &str,
        limit: i64,
    ) -> StoreResult<Vec<StoredEvent>> {
        let rows = sqlx::query(
            "SELECT seq, kind, payload, client_id, created_at FROM events \
             WHERE conversation_id = $1 AND kind = $2 ORDER BY seq DESC LIMIT $3",
        )
        .bind(id.to_string())
        .bind(kind)
        .bind(limit)
        .fetch_all(&self.pool)
        .await?;
        let mut events: Vec<StoredEvent> = rows
            .iter()
            .map(|r| from_row(id, r))
            .collect::<StoreResult<_>>()?;
        events.reverse();
        Ok(events)
    }

    /// Events of one kind (e.g. messages, for history), in order.
    pub async fn events_of_kind(
        &self,
        id: ConversationId,
        kind: &str,
        after: i64,
        limit: i64,
    ) -> StoreResult<Vec<StoredEvent>> {
        let rows = sqlx::query(
            "SELECT seq, kind, payload, client_id, created_at FROM events \
             WHERE conversation_id = $1 AND kind = $2 AND seq > $3 ORDER BY seq LIMIT $4",
        )
        .bind(id.to_string())
        .bind(kind)
        .bind(after)
        .bind(limit)
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(|r| from_row(id, r)).collect()
    }

    /// The event a client already stored under `client_id`, if any.
    pub async fn event_by_client_id(
        &self,
        id: ConversationId,
        client_id: &str,
    ) -> StoreResult<Option<StoredEvent>> {
        select_by_client_id(&self.pool, id, client_id).await
    }

    /// The event stored under `client_id` when an insert under the same id
    /// just failed as a duplicate: it must exist.
    pub(super) async fn first_stored(
        &self,
        id: ConversationId,
        client_id: &str,
    ) -> StoreResult<StoredEvent> {
        self.event_by_client_id(id, client_id)
            .await?
            .ok_or_else(|| StoreError::Corrupt("client id conflict without a stored event".into()))
    }

    /// Stores a visitor's message (an event with a client id) exactly
    /// once, in the next group commit (`batch.rs`): a retry, even a
    /// concurrent one, gets the first copy; an ended conversation stores
    /// nothing. Who it is for is decided there (the event's `deliver_to`
    /// is not read).
    pub async fn append_visitor_message(
        &self,
        id: ConversationId,
        event: NewEvent,
    ) -> StoreResult<Appended> {
        self.batcher().append(id, event).await
    }
}

/// Whether an insert failed because a row with the same key exists (a
/// concurrent retry stored the same client id first).
pub fn is_unique_violation(e: &StoreError) -> bool {
    matches!(e, StoreError::Database(sqlx::Error::Database(db)) if db.is_unique_violation())
}
