//! The per-conversation event log.

use sqlx::any::AnyRow;
use sqlx::{Any, Row, Transaction};

use super::{now_ms, Store, StoreError, StoreResult};
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

fn from_row(conversation_id: ConversationId, row: &AnyRow) -> StoreResult<StoredEvent> {
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
        sqlx::query(
            "INSERT INTO events (conversation_id, seq, kind, payload, client_id, created_at) \
             VALUES ($1, $2, $3, $4, $5, $6)",
        )
        .bind(id.to_string())
        .bind(seq)
        .bind(event.kind)
        .bind(event.payload.to_string())
        .bind(event.client_id.as_deref())
        .bind(now)
        .execute(&mut **tx)
        .await?;
        for agent in &event.deliver_to {
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
        }
        stored.push(StoredEvent {
            conversation_id: id,
            seq,
            kind: event.kind.to_owned(),
            payload: event.payload.clone(),
            client_id: event.client_id.clone(),
            created_at: now,
        });
    }
    if let Some(last) = stored.last() {
        super::signals::notify_committed(tx, store, id, last.seq).await?;
    }
    Ok(stored)
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
        let row = sqlx::query(
            "SELECT seq, kind, payload, client_id, created_at FROM events \
             WHERE conversation_id = $1 AND client_id = $2",
        )
        .bind(id.to_string())
        .bind(client_id)
        .fetch_optional(&self.pool)
        .await?;
        row.as_ref().map(|r| from_row(id, r)).transpose()
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

    /// Appends one event with a client id, exactly once: a retry (even a
    /// concurrent one) returns the event first stored, with `false`.
    pub async fn append_idempotent(
        &self,
        id: ConversationId,
        event: &NewEvent,
    ) -> StoreResult<(StoredEvent, bool)> {
        let client_id = event
            .client_id
            .as_deref()
            .expect("append_idempotent needs a client id");
        if let Some(existing) = self.event_by_client_id(id, client_id).await? {
            return Ok((existing, false));
        }
        let mut tx = self.pool.begin().await?;
        match insert_events(&mut tx, self, id, std::slice::from_ref(event), now_ms()).await {
            Ok(mut stored) => {
                tx.commit().await?;
                Ok((stored.remove(0), true))
            }
            Err(e) if is_unique_violation(&e) => {
                tx.rollback().await?;
                Ok((self.first_stored(id, client_id).await?, false))
            }
            Err(e) => Err(e),
        }
    }
}

/// Whether an insert failed because a row with the same key exists (a
/// concurrent retry stored the same client id first).
pub fn is_unique_violation(e: &StoreError) -> bool {
    matches!(e, StoreError::Database(sqlx::Error::Database(db)) if db.is_unique_violation())
}
