//! The agent delivery outbox (`agent_deliveries`): which stored visitor
//! messages an agent has not yet confirmed receiving.
//!
//! Rows are written by [`insert_events`](super::events) in the transaction
//! of the message they forward (see `NewEvent::deliver_to`), so "stored"
//! and "to be forwarded" are one fact: no crash can fall between them.

use sqlx::Row;

use super::batch::Forget;
use super::{conversation_id, Store, StoreResult};
use crate::domain::ConversationId;

/// One message (the event `seq` of `conversation`) for one agent.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct DeliveryRow {
    pub conversation: ConversationId,
    pub seq: i64,
    pub agent_extension: String,
}

impl Store {
    /// The agent's side confirmed (or gave up on) a delivery: forgotten in
    /// the next group commit (`batch`), returning once that committed.
    pub async fn delivery_done(&self, delivery: &DeliveryRow) -> StoreResult<()> {
        let what = Forget {
            delivery: Some(delivery.clone()),
            xmpp_row: None,
        };
        self.batcher().forget(what, true).await
    }

    /// What a bridge is done with, forgotten in the next group commit;
    /// returns once queued (a failure is logged, and at worst the message
    /// is sent again, under the same id).
    pub async fn forget_soon(&self, what: Forget) -> StoreResult<()> {
        self.batcher().forget(what, false).await
    }

    /// Drops what is left for everyone but `keep` in a conversation (the
    /// chat was taken by `keep`, or ended when `keep` is `None`).
    pub async fn deliveries_drop_others(
        &self,
        conversation: ConversationId,
        keep: Option<&str>,
    ) -> StoreResult<()> {
        let query = match keep {
            Some(agent) => sqlx::query(
                "DELETE FROM agent_deliveries WHERE conversation_id = $1 AND agent_extension <> $2",
            )
            .bind(conversation.to_string())
            .bind(agent.to_owned()),
            None => sqlx::query("DELETE FROM agent_deliveries WHERE conversation_id = $1")
                .bind(conversation.to_string()),
        };
        query.execute(&mut *self.writer().await?).await?;
        Ok(())
    }

    /// Every unconfirmed delivery stored before `before` (ms), in the
    /// order the messages were stored.
    pub async fn deliveries_pending(&self, before: i64) -> StoreResult<Vec<DeliveryRow>> {
        let rows = sqlx::query(
            "SELECT conversation_id, seq, agent_extension FROM agent_deliveries \
             WHERE created_at < $1 ORDER BY created_at, conversation_id, seq",
        )
        .bind(before)
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| {
                let id: String = r.try_get("conversation_id")?;
                Ok(DeliveryRow {
                    conversation: conversation_id(&id)?,
                    seq: r.try_get("seq")?,
                    agent_extension: r.try_get("agent_extension")?,
                })
            })
            .collect()
    }
}
