//! A queue's waiting line, read in its order through one index.
//!
//! The line is every conversation of a queue that is queued or ringing,
//! oldest `queued_at` first (then `created_at`, then the id, so two chats
//! of the same millisecond still have one order on every node). Migration
//! `queue_order` indexes exactly these rows; each query here names the
//! same states as literals, which is what lets SQLite and PostgreSQL use
//! that partial index. So a new chat counts who is ahead of it, dispatch
//! reads the head of the line a page at a time, and the position task
//! ranks one queue, each as a range of the index, never as a scan of
//! every open conversation.

use std::collections::HashMap;

use sqlx::Row;

use super::conversations::{from_row, COLUMNS};
use super::events::{insert_events, NewEvent, StoredEvent};
use super::{conversation_id, now_ms, ConversationRow, Store, StoreResult};
use crate::domain::{ConversationId, ConversationState};

/// The waiting states, as the index's predicate spells them.
pub(super) const WAITING: &str = "state IN ('queued', 'offered')";

/// Where a conversation stands in its line: the order's columns.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LineKey {
    pub queued_at: i64,
    pub created_at: i64,
    pub id: String,
}

impl LineKey {
    pub fn of(row: &ConversationRow) -> LineKey {
        LineKey {
            queued_at: row.queued_at.unwrap_or(row.created_at),
            created_at: row.created_at,
            id: row.id.to_string(),
        }
    }
}

/// One conversation of a line as the position task sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ranked {
    pub id: ConversationId,
    /// The position last told (`waiting_state.position`).
    pub told: Option<u32>,
    /// Whether a timer of the kind asked about is set for it.
    pub timed: bool,
    pub queued_at: i64,
}

/// The first chat of a line that no agent has been offered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Head {
    pub id: ConversationId,
    /// A transfer directs it to this one agent.
    pub directed: bool,
}

impl Store {
    /// Up to `limit` conversations of `queue`'s line after `after` (from
    /// its head without), in order.
    pub async fn line_page(
        &self,
        queue: &str,
        after: Option<&LineKey>,
        limit: i64,
    ) -> StoreResult<Vec<ConversationRow>> {
        let after_clause = if after.is_some() {
            "AND (queued_at, created_at, id) > ($3, $4, $5)"
        } else {
            ""
        };
        let sql = format!(
            "SELECT {COLUMNS} FROM conversations WHERE queue_extension = $1 AND {WAITING} \
             {after_clause} ORDER BY queued_at, created_at, id LIMIT $2"
        );
        let mut query = sqlx::query(&sql).bind(queue.to_owned()).bind(limit);
        if let Some(key) = after {
            query = query
                .bind(key.queued_at)
                .bind(key.created_at)
                .bind(key.id.clone());
        }
        let rows = query.fetch_all(&self.pool).await?;
        rows.iter().map(from_row).collect()
    }

    /// `queue`'s whole line in order, one query: each conversation with
    /// the position it was last told and whether a `timer_kind` timer is
    /// set for it.
    pub async fn line_ranked(&self, queue: &str, timer_kind: &str) -> StoreResult<Vec<Ranked>> {
        let rows = sqlx::query(&format!(
            "SELECT c.id, c.queued_at, c.created_at, w.position, t.subject AS timed \
             FROM conversations c \
             LEFT JOIN waiting_state w ON w.conversation_id = c.id \
             LEFT JOIN timers t ON t.kind = $2 AND t.subject = c.id \
             WHERE c.queue_extension = $1 AND c.{WAITING} \
             ORDER BY c.queued_at, c.created_at, c.id"
        ))
        .bind(queue.to_owned())
        .bind(timer_kind.to_owned())
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| {
                let id: String = r.try_get("id")?;
                let position: Option<i64> = r.try_get("position")?;
                let timed: Option<String> = r.try_get("timed")?;
                let created_at: i64 = r.try_get("created_at")?;
                let queued_at: Option<i64> = r.try_get("queued_at")?;
                Ok(Ranked {
                    id: conversation_id(&id)?,
                    told: position.and_then(|p| u32::try_from(p).ok()),
                    timed: timed.is_some(),
                    queued_at: queued_at.unwrap_or(created_at),
                })
            })
            .collect()
    }

    /// Records and tells new positions in `queue`, in one transaction:
    /// each conversation still waiting there whose stored position
    /// differs gets it and one `position_event`. The conversation's row
    /// is locked first (PostgreSQL), so a chat that left the line
    /// meanwhile is left alone. Returns the events stored, by
    /// conversation.
    pub async fn tell_positions(
        &self,
        queue: &str,
        positions: &[(ConversationId, u32)],
        position_event: impl Fn(u32) -> NewEvent,
    ) -> StoreResult<Vec<StoredEvent>> {
        let now = now_ms();
        let mut tx = self.write_tx().await?;
        let mut told = Vec::with_capacity(positions.len());
        for (id, position) in positions {
            let still_waiting = sqlx::query(&format!(
                "UPDATE conversations SET updated_at = updated_at \
                 WHERE id = $1 AND queue_extension = $2 AND {WAITING}"
            ))
            .bind(id.to_string())
            .bind(queue.to_owned())
            .execute(&mut **tx)
            .await?
            .rows_affected()
                == 1;
            if !still_waiting {
                continue;
            }
            let changed = sqlx::query(
                "INSERT INTO waiting_state (conversation_id, position) VALUES ($1, $2) \
                 ON CONFLICT (conversation_id) DO UPDATE SET position = excluded.position \
                 WHERE waiting_state.position IS NULL \
                 OR waiting_state.position <> excluded.position",
            )
            .bind(id.to_string())
            .bind(i64::from(*position))
            .execute(&mut **tx)
            .await?
            .rows_affected()
                == 1;
            if changed {
                let event = position_event(*position);
                told.extend(insert_events(&mut tx, self, *id, &[event], now).await?);
            }
        }
        tx.commit().await?;
        Ok(told)
    }

    /// How many chats each agent has active (in every queue).
    pub async fn active_chats_by_agent(&self) -> StoreResult<HashMap<String, u32>> {
        let rows = sqlx::query(
            "SELECT agent_extension, COUNT(*) AS n FROM conversations \
             WHERE state = $1 AND agent_extension IS NOT NULL GROUP BY agent_extension",
        )
        .bind(ConversationState::Active.as_str())
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| {
                let n: i64 = r.try_get("n")?;
                Ok((r.try_get("agent_extension")?, u32::try_from(n).unwrap_or(0)))
            })
            .collect()
    }
}
