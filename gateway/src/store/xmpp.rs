//! Persistent state of the XMPP bridge: its outbox, the agents'
//! subscription approvals, the presence its clients reported, and the
//! NOTIFY channel the nodes wake each other with.
//!
//! The outbox is shared by every gateway node: a row is *claimed* by the
//! node that hands it to its component connection (`node`), and a row
//! whose node is no longer alive (its `xmpp-node:NODE` lease lapsed) or
//! was never claimed (written by a node that does not hold the one
//! connection) is claimed by a live sending node with one `UPDATE`, so
//! exactly one node sends it, and another re-sends it when that one dies
//! before the server confirmed it.

use sqlx::Row;

use super::{now_ms, Backend, Store, StoreResult};
use crate::store::batch::Keep;
use crate::store::DeliveryRow;

/// The PostgreSQL channel the XMPP bridges of all nodes listen on.
const XMPP_CHANNEL: &str = "frontdesk_xmpp";

/// The lease every node with an XMPP bridge keeps while it lives.
pub const NODE_LEASE_PREFIX: &str = "xmpp-node:";

/// "The row's node is alive": it holds an unexpired node lease.
const NODE_ALIVE: &str = "EXISTS (SELECT 1 FROM leases \
     WHERE leases.name = 'xmpp-node:' || xmpp_outbox.node AND leases.until >= $2)";

impl Store {
    /// Keeps a stanza until the XMPP server confirmed it, claimed by
    /// `node` (`None`: for the node holding the connection), in the next
    /// group commit (`batch`). `false` when a row with this id exists
    /// already.
    pub async fn xmpp_outbox_put(
        &self,
        id: &str,
        payload: &str,
        node: Option<&str>,
    ) -> StoreResult<bool> {
        self.keep(Keep {
            id: id.to_owned(),
            payload: payload.to_owned(),
            node: node.map(str::to_owned),
            delivery: None,
        })
        .await
    }

    /// Like [`xmpp_outbox_put`](Self::xmpp_outbox_put) for the stanza of a
    /// visitor message, kept only while its delivery is still to be made
    /// (so a replay racing a confirmation on another node adds nothing).
    pub async fn xmpp_outbox_put_delivery(
        &self,
        id: &str,
        payload: &str,
        node: Option<&str>,
        delivery: &DeliveryRow,
    ) -> StoreResult<bool> {
        self.keep(Keep {
            id: id.to_owned(),
            payload: payload.to_owned(),
            node: node.map(str::to_owned),
            delivery: Some(delivery.clone()),
        })
        .await
    }

    async fn keep(&self, row: Keep) -> StoreResult<bool> {
        self.batcher().keep(row).await
    }

    /// Claims row `id` for `node` if nobody alive has it; `true` if
    /// `node` has it now.
    pub async fn xmpp_outbox_claim_one(&self, id: &str, node: &str) -> StoreResult<bool> {
        let done = sqlx::query(&format!(
            "UPDATE xmpp_outbox SET node = $1 \
             WHERE id = $3 AND (node IS NULL OR node = $1 OR NOT {NODE_ALIVE})"
        ))
        .bind(node.to_owned())
        .bind(now_ms())
        .bind(id.to_owned())
        .execute(&mut *self.writer().await?)
        .await?;
        Ok(done.rows_affected() == 1)
    }

    /// Claims for `node` every row nobody alive has (with `sole`, every
    /// row not its own: `node` is the one sender, and whoever claimed
    /// them before lost the connection), oldest first: `(id, payload)`.
    pub async fn xmpp_outbox_claim(
        &self,
        node: &str,
        sole: bool,
    ) -> StoreResult<Vec<(String, String)>> {
        let query = if sole {
            "UPDATE xmpp_outbox SET node = $1 WHERE node IS NULL OR node <> $1 \
             RETURNING id, payload, created_at"
                .to_owned()
        } else {
            format!(
                "UPDATE xmpp_outbox SET node = $1 \
                 WHERE node IS NULL OR (node <> $1 AND NOT {NODE_ALIVE}) \
                 RETURNING id, payload, created_at"
            )
        };
        let mut query = sqlx::query(&query).bind(node.to_owned());
        if !sole {
            query = query.bind(now_ms());
        }
        let rows = query.fetch_all(&mut *self.writer().await?).await?;
        let mut claimed = rows
            .iter()
            .map(|r| {
                Ok((
                    r.try_get::<i64, _>("created_at")?,
                    r.try_get("id")?,
                    r.try_get("payload")?,
                ))
            })
            .collect::<StoreResult<Vec<(i64, String, String)>>>()?;
        // In the order they were written (ids break ties: most are UUIDv7).
        claimed.sort();
        Ok(claimed.into_iter().map(|(_, id, p)| (id, p)).collect())
    }

    /// Gives back what `node` claimed (it no longer holds the connection).
    pub async fn xmpp_outbox_release(&self, node: &str) -> StoreResult<u64> {
        let done = sqlx::query("UPDATE xmpp_outbox SET node = NULL WHERE node = $1")
            .bind(node.to_owned())
            .execute(&mut *self.writer().await?)
            .await?;
        Ok(done.rows_affected())
    }

    pub async fn xmpp_outbox_done(&self, id: &str) -> StoreResult<()> {
        sqlx::query("DELETE FROM xmpp_outbox WHERE id = $1")
            .bind(id.to_owned())
            .execute(&mut *self.writer().await?)
            .await?;
        Ok(())
    }

    /// Every stored stanza, oldest first: `(id, payload, node)`.
    pub async fn xmpp_outbox_pending(&self) -> StoreResult<Vec<(String, String, Option<String>)>> {
        let rows = sqlx::query("SELECT id, payload, node FROM xmpp_outbox ORDER BY created_at, id")
            .fetch_all(&self.pool)
            .await?;
        rows.iter()
            .map(|r| Ok((r.try_get("id")?, r.try_get("payload")?, r.try_get("node")?)))
            .collect()
    }

    /// Forgets the node leases that lapsed, and returns whose they were:
    /// the caller (one node per lapsed lease) takes over after them.
    pub async fn xmpp_lapsed_nodes(&self) -> StoreResult<Vec<String>> {
        let rows = sqlx::query(
            "DELETE FROM leases WHERE substr(name, 1, 10) = $1 AND until < $2 RETURNING holder",
        )
        .bind(NODE_LEASE_PREFIX.to_owned())
        .bind(now_ms())
        .fetch_all(&mut *self.writer().await?)
        .await?;
        rows.iter().map(|r| Ok(r.try_get("holder")?)).collect()
    }

    /// Lets every node lease lapse at once: on SQLite, where one node runs,
    /// the nodes that hold them are earlier runs of it.
    pub async fn xmpp_lapse_node_leases(&self) -> StoreResult<()> {
        sqlx::query("UPDATE leases SET until = 0 WHERE substr(name, 1, 10) = $1")
            .bind(NODE_LEASE_PREFIX.to_owned())
            .execute(&mut *self.writer().await?)
            .await?;
        Ok(())
    }

    /// The presence sources of `agent` that start with `prefix` and were
    /// last written before `before` (ms).
    pub async fn xmpp_presence_sources(
        &self,
        agent: &str,
        prefix: &str,
        before: i64,
    ) -> StoreResult<Vec<String>> {
        let rows = sqlx::query(
            "SELECT source FROM agent_presence WHERE agent_extension = $1 \
             AND substr(source, 1, $2) = $3 AND updated_at < $4",
        )
        .bind(agent.to_owned())
        .bind(i32::try_from(prefix.chars().count()).unwrap_or(i32::MAX))
        .bind(prefix.to_owned())
        .bind(before)
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(|r| Ok(r.try_get("source")?)).collect()
    }

    /// Wakes the other nodes' XMPP bridges (PostgreSQL; nothing on SQLite,
    /// where one node runs).
    pub async fn xmpp_notify(&self, payload: &str) -> StoreResult<()> {
        if self.backend != Backend::Postgres {
            return Ok(());
        }
        sqlx::query("SELECT pg_notify($1, $2)")
            .bind(XMPP_CHANNEL)
            .bind(payload.to_owned())
            .execute(&mut *self.writer().await?)
            .await?;
        Ok(())
    }

    /// A connection listening to [`xmpp_notify`](Self::xmpp_notify)
    /// (PostgreSQL only).
    pub async fn xmpp_listener(&self) -> StoreResult<Option<sqlx::postgres::PgListener>> {
        if self.backend != Backend::Postgres {
            return Ok(None);
        }
        let mut listener = sqlx::postgres::PgListener::connect(&self.url).await?;
        listener.listen(XMPP_CHANNEL).await?;
        Ok(Some(listener))
    }

    pub async fn xmpp_set_subscribed(&self, agent_jid: &str, subscribed: bool) -> StoreResult<()> {
        let mut tx = self.write_tx().await?;
        sqlx::query("DELETE FROM xmpp_subscriptions WHERE agent_jid = $1")
            .bind(agent_jid)
            .execute(&mut **tx)
            .await?;
        sqlx::query(
            "INSERT INTO xmpp_subscriptions (agent_jid, subscribed, updated_at) VALUES ($1, $2, $3)",
        )
        .bind(agent_jid)
        .bind(i64::from(subscribed))
        .bind(now_ms())
        .execute(&mut **tx)
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
