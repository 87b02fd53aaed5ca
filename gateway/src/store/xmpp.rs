//! Persistent state of the XMPP bridge: its outbox and the agents'
//! subscription approvals.

use sqlx::Row;

use super::{now_ms, Store, StoreResult};

impl Store {
    /// Keeps a stanza until the XMPP server confirmed it.
    pub async fn xmpp_outbox_put(&self, id: &str, payload: &str) -> StoreResult<()> {
        sqlx::query("INSERT INTO xmpp_outbox (id, payload, created_at) VALUES ($1, $2, $3)")
            .bind(id)
            .bind(payload)
            .bind(now_ms())
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    pub async fn xmpp_outbox_done(&self, id: &str) -> StoreResult<()> {
        sqlx::query("DELETE FROM xmpp_outbox WHERE id = $1")
            .bind(id)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// Unconfirmed stanzas, oldest first: `(id, payload)`.
    pub async fn xmpp_outbox_pending(&self) -> StoreResult<Vec<(String, String)>> {
        let rows = sqlx::query("SELECT id, payload FROM xmpp_outbox ORDER BY id")
            .fetch_all(&self.pool)
            .await?;
        rows.iter()
            .map(|r| Ok((r.try_get("id")?, r.try_get("payload")?)))
            .collect()
    }

    pub async fn xmpp_set_subscribed(&self, agent_jid: &str, subscribed: bool) -> StoreResult<()> {
        let mut tx = self.pool.begin().await?;
        sqlx::query("DELETE FROM xmpp_subscriptions WHERE agent_jid = $1")
            .bind(agent_jid)
            .execute(&mut *tx)
            .await?;
        sqlx::query(
            "INSERT INTO xmpp_subscriptions (agent_jid, subscribed, updated_at) VALUES ($1, $2, $3)",
        )
        .bind(agent_jid)
        .bind(i64::from(subscribed))
        .bind(now_ms())
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(())
    }

    /// Agents known to have approved the subscription.
    pub async fn xmpp_subscribed_agents(&self) -> StoreResult<Vec<String>> {
        let rows = sqlx::query("SELECT agent_jid FROM xmpp_subscriptions WHERE subscribed = 1")
            .fetch_all(&self.pool)
            .await?;
        rows.iter().map(|r| Ok(r.try_get("agent_jid")?)).collect()
    }
}
