//! Rows of the `conversations` table.

use sqlx::any::AnyRow;
use sqlx::Row;

use super::events::{insert_events, NewEvent, StoredEvent};
use super::{
    conversation_id, conversation_ids, now_ms, ConversationIdentity, Store, StoreError, StoreResult,
};
use crate::domain::{ConversationId, ConversationState, TokenHash};

/// A conversation as stored: the columns, with the state and id already
/// parsed (an unknown value is a `Corrupt` error, not a string to re-parse).
#[derive(Debug, Clone)]
pub struct ConversationRow {
    pub id: ConversationId,
    pub channel_key: String,
    pub token_hash: TokenHash,
    pub state: ConversationState,
    pub visitor_name: String,
    pub visitor_email: String,
    pub page_url: Option<String>,
    pub language: String,
    pub option_id: Option<String>,
    pub queue_extension: Option<String>,
    pub agent_extension: Option<String>,
    pub agent_name: Option<String>,
    pub last_seq: i64,
    /// The highest seq the agent's client confirmed delivered, and read.
    pub delivered_seq: i64,
    pub read_seq: i64,
    pub created_at: i64,
    pub queued_at: Option<i64>,
    pub ended_at: Option<i64>,
}

/// What a new conversation starts with.
#[derive(Debug, Clone)]
pub struct NewConversation {
    pub id: ConversationId,
    pub channel_key: String,
    pub token_hash: TokenHash,
    pub state: ConversationState,
    pub visitor_name: String,
    pub visitor_email: String,
    pub page_url: Option<String>,
    pub language: String,
    /// The queue of a live chat, set with the row so a conversation is
    /// never queued without a queue.
    pub queue_extension: Option<String>,
    /// Set for conversations that start in a final state (out of hours),
    /// so retention sweeps them like ended chats.
    pub ended: bool,
    /// Who started it (see `ClientKey`), for the per-client waiting cap.
    pub client_key: Option<String>,
}

/// A value bound into a dynamically built statement.
pub(super) enum Value {
    Text(Option<String>),
    Int(Option<i64>),
}

/// A change of the mutable columns. `None` leaves a column as it is;
/// `Some(None)` clears it.
#[derive(Debug, Default, Clone)]
pub struct ConversationUpdate {
    pub state: Option<ConversationState>,
    pub option_id: Option<Option<String>>,
    pub queue_extension: Option<Option<String>>,
    pub agent: Option<Option<(String, String)>>,
    pub queued_at: Option<Option<i64>>,
    pub ended_at: Option<Option<i64>>,
    pub delivered_seq: Option<i64>,
    pub read_seq: Option<i64>,
}

pub(super) const COLUMNS: &str =
    "id, channel_key, token_hash, state, visitor_name, visitor_email, \
     page_url, language, option_id, queue_extension, agent_extension, agent_name, \
     last_seq, delivered_seq, read_seq, created_at, queued_at, ended_at";

pub(super) fn from_row(row: &AnyRow) -> StoreResult<ConversationRow> {
    let id: String = row.try_get("id")?;
    Ok(ConversationRow {
        id: conversation_id(&id)?,
        channel_key: row.try_get("channel_key")?,
        token_hash: TokenHash(row.try_get("token_hash")?),
        state: {
            let state: String = row.try_get("state")?;
            state.parse().map_err(StoreError::Corrupt)?
        },
        visitor_name: row.try_get("visitor_name")?,
        visitor_email: row.try_get("visitor_email")?,
        page_url: row.try_get("page_url")?,
        language: row.try_get("language")?,
        option_id: row.try_get("option_id")?,
        queue_extension: row.try_get("queue_extension")?,
        agent_extension: row.try_get("agent_extension")?,
        agent_name: row.try_get("agent_name")?,
        last_seq: row.try_get("last_seq")?,
        delivered_seq: row.try_get("delivered_seq")?,
        read_seq: row.try_get("read_seq")?,
        created_at: row.try_get("created_at")?,
        queued_at: row.try_get("queued_at")?,
        ended_at: row.try_get("ended_at")?,
    })
}

impl Store {
    /// What never changes about a conversation, from the cache when it is
    /// there (`identity.rs`); `None` if there is no such conversation.
    pub async fn identity(
        &self,
        id: ConversationId,
    ) -> StoreResult<Option<std::sync::Arc<ConversationIdentity>>> {
        if let Some(identity) = self.identities.get(id) {
            return Ok(Some(identity));
        }
        Ok(self
            .conversation(id)
            .await?
            .map(|row| self.identities.remember(&row)))
    }

    pub async fn conversation(&self, id: ConversationId) -> StoreResult<Option<ConversationRow>> {
        let row = sqlx::query(&format!(
            "SELECT {COLUMNS} FROM conversations WHERE id = $1"
        ))
        .bind(id.to_string())
        .fetch_optional(&self.pool)
        .await?;
        row.as_ref().map(from_row).transpose()
    }

    /// Conversations in any of `states`, oldest queued first.
    pub async fn conversations_in_states(
        &self,
        states: &[ConversationState],
    ) -> StoreResult<Vec<ConversationRow>> {
        let mut out = Vec::new();
        for state in states {
            let rows = sqlx::query(&format!(
                "SELECT {COLUMNS} FROM conversations WHERE state = $1 \
                 ORDER BY queued_at, created_at"
            ))
            .bind(state.as_str())
            .fetch_all(&self.pool)
            .await?;
            for row in &rows {
                out.push(from_row(row)?);
            }
        }
        out.sort_by_key(|c| (c.queued_at.unwrap_or(c.created_at), c.created_at));
        Ok(out)
    }

    /// Records that the visitors of `ids` are connected right now.
    pub async fn mark_visitors_seen(&self, ids: &[ConversationId], now: i64) -> StoreResult<()> {
        for chunk in ids.chunks(200) {
            let placeholders: Vec<String> = (2..chunk.len() + 2).map(|i| format!("${i}")).collect();
            let sql = format!(
                "UPDATE conversations SET visitor_seen_at = $1 WHERE id IN ({})",
                placeholders.join(", ")
            );
            let mut query = sqlx::query(&sql).bind(now);
            for id in chunk {
                query = query.bind(id.to_string());
            }
            query.execute(&mut *self.writer().await?).await?;
        }
        Ok(())
    }

    /// Chats still waiting (menu, queue, ringing) whose visitor has not
    /// been connected since `cutoff`, oldest first, at most `limit`.
    pub async fn abandoned_waiting(
        &self,
        cutoff: i64,
        limit: i64,
    ) -> StoreResult<Vec<ConversationId>> {
        let ids: Vec<String> = sqlx::query_scalar(
            "SELECT id FROM conversations WHERE state IN ($1, $2, $3) \
             AND COALESCE(visitor_seen_at, created_at) < $4 \
             ORDER BY created_at LIMIT $5",
        )
        .bind(ConversationState::ChatbotMenu.as_str())
        .bind(ConversationState::Queued.as_str())
        .bind(ConversationState::Offered.as_str())
        .bind(cutoff)
        .bind(limit)
        .fetch_all(&self.pool)
        .await?;
        conversation_ids(&ids)
    }

    /// How many chats started by `client_key` still wait (menu, queue,
    /// ringing).
    pub async fn waiting_of_client(&self, client_key: &str) -> StoreResult<i64> {
        Ok(sqlx::query_scalar(
            "SELECT COUNT(*) FROM conversations WHERE client_key = $1 AND state IN ($2, $3, $4)",
        )
        .bind(client_key)
        .bind(ConversationState::ChatbotMenu.as_str())
        .bind(ConversationState::Queued.as_str())
        .bind(ConversationState::Offered.as_str())
        .fetch_one(&self.pool)
        .await?)
    }

    /// How many chats wait in `queue` (queued or ringing): a range of the
    /// line's index (see `queues.rs`).
    pub async fn waiting_in_queue(&self, queue: &str) -> StoreResult<i64> {
        Ok(sqlx::query_scalar(&format!(
            "SELECT COUNT(*) FROM conversations WHERE queue_extension = $1 AND {}",
            super::queues::WAITING
        ))
        .bind(queue)
        .fetch_one(&self.pool)
        .await?)
    }

    /// Number of conversations per state, for metrics.
    pub async fn count_by_state(&self) -> StoreResult<Vec<(String, i64)>> {
        let rows = sqlx::query("SELECT state, COUNT(*) AS n FROM conversations GROUP BY state")
            .fetch_all(&self.pool)
            .await?;
        rows.iter()
            .map(|r| Ok((r.try_get("state")?, r.try_get("n")?)))
            .collect()
    }

    /// Applies `update` (if any) and appends `events`, in one transaction.
    /// With `expect_state`, nothing happens unless the conversation is in
    /// that state (returns `None`), which makes racing transitions safe on
    /// several nodes.
    pub async fn transition(
        &self,
        id: ConversationId,
        expect_state: Option<ConversationState>,
        update: &ConversationUpdate,
        events: &[NewEvent],
    ) -> StoreResult<Option<Vec<StoredEvent>>> {
        let now = now_ms();
        let mut sets = vec!["updated_at".to_owned()];
        let mut values = vec![Value::Int(Some(now))];
        let mut set = |col: &str, v: Value| {
            sets.push(col.to_owned());
            values.push(v);
        };
        if let Some(state) = &update.state {
            set("state", Value::Text(Some(state.as_str().to_owned())));
        }
        if let Some(v) = &update.option_id {
            set("option_id", Value::Text(v.clone()));
        }
        if let Some(v) = &update.queue_extension {
            set("queue_extension", Value::Text(v.clone()));
        }
        if let Some(v) = &update.agent {
            set(
                "agent_extension",
                Value::Text(v.as_ref().map(|a| a.0.clone())),
            );
            set("agent_name", Value::Text(v.as_ref().map(|a| a.1.clone())));
        }
        if let Some(v) = update.queued_at {
            set("queued_at", Value::Int(v));
        }
        if let Some(v) = update.ended_at {
            set("ended_at", Value::Int(v));
        }
        if let Some(v) = update.delivered_seq {
            set("delivered_seq", Value::Int(Some(v)));
        }
        if let Some(v) = update.read_seq {
            set("read_seq", Value::Int(Some(v)));
        }
        let assignments: Vec<String> = sets
            .iter()
            .enumerate()
            .map(|(i, col)| format!("{col} = ${}", i + 1))
            .collect();
        let mut sql = format!(
            "UPDATE conversations SET {} WHERE id = ${}",
            assignments.join(", "),
            values.len() + 1
        );
        values.push(Value::Text(Some(id.to_string())));
        if let Some(state) = expect_state {
            sql.push_str(&format!(" AND state = ${}", values.len() + 1));
            values.push(Value::Text(Some(state.as_str().to_owned())));
        }
        let query = bind_all(sqlx::query(&sql), values);
        let mut tx = self.write_tx().await?;
        let changed = query.execute(&mut **tx).await?.rows_affected();
        if changed == 0 {
            tx.rollback().await?;
            return Ok(None);
        }
        let stored = insert_events(&mut tx, self, id, events, now).await?;
        tx.commit().await?;
        Ok(Some(stored))
    }
}

/// Inserts the row of a new conversation inside `tx`, created (and, with
/// a queue, queued) at `now`.
/// Binds `values` in order.
pub(super) fn bind_all<'q>(
    mut query: sqlx::query::Query<'q, sqlx::Any, sqlx::any::AnyArguments<'q>>,
    values: Vec<Value>,
) -> sqlx::query::Query<'q, sqlx::Any, sqlx::any::AnyArguments<'q>> {
    for value in values {
        query = match value {
            Value::Text(v) => query.bind(v),
            Value::Int(v) => query.bind(v),
        };
    }
    query
}
