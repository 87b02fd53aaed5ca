//! The dispatcher's shared state: presence, offers, declines, waiting
//! positions and transfers, what agents did last, the strategies' memory,
//! leases and durable timers (migration `dispatch_state`).
//!
//! It lives here, not in a node's memory, so that every gateway node on one
//! database routes with the same facts and any node can carry on what a
//! dead one started. Every write that two nodes could race on is a single
//! statement or a compare-and-set; none needs a lock held across calls
//! except the dispatch lease the engine takes.

use std::collections::HashMap;

use sqlx::Row;

use super::{conversation_id, Store, StoreError, StoreResult};
use crate::domain::ConversationId;

/// A durable timer: `kind` on `subject`, due at `due_at` (ms).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TimerRow {
    pub kind: String,
    pub subject: String,
    pub due_at: i64,
    pub arg: Option<String>,
}

/// What the strategies remember of one agent.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AgentActivity {
    pub last_chat_ended_at: Option<i64>,
    pub chats_taken: i64,
}

/// Inserts `count` timers (kind, subject, due, argument), each unless
/// one of its kind already runs for its subject.
pub(super) fn insert_timers_once(count: usize) -> String {
    format!(
        "INSERT INTO timers (kind, subject, due_at, arg) VALUES {} \
         ON CONFLICT (kind, subject) DO NOTHING",
        super::batch::placeholders(1, count, 4)
    )
}

fn agents_json(agents: &[String]) -> String {
    serde_json::to_string(agents).unwrap_or_else(|_| "[]".to_owned())
}

pub(super) fn agents_of(stored: &str) -> StoreResult<Vec<String>> {
    serde_json::from_str(stored).map_err(|e| StoreError::Corrupt(format!("offer agents: {e}")))
}

impl Store {
    // --- presence --------------------------------------------------------

    /// Records what `source` says of an agent (`offline` removes the row).
    pub async fn set_presence(
        &self,
        agent: &str,
        source: &str,
        status: &str,
        now: i64,
    ) -> StoreResult<()> {
        if status == "offline" {
            sqlx::query("DELETE FROM agent_presence WHERE agent_extension = $1 AND source = $2")
                .bind(agent.to_owned())
                .bind(source.to_owned())
                .execute(&mut *self.writer().await?)
                .await?;
            return Ok(());
        }
        sqlx::query(
            "INSERT INTO agent_presence (agent_extension, source, status, updated_at) \
             VALUES ($1, $2, $3, $4) \
             ON CONFLICT (agent_extension, source) \
             DO UPDATE SET status = excluded.status, updated_at = excluded.updated_at",
        )
        .bind(agent.to_owned())
        .bind(source.to_owned())
        .bind(status.to_owned())
        .bind(now)
        .execute(&mut *self.writer().await?)
        .await?;
        Ok(())
    }

    /// What `source` says of an agent (`None`: nothing, which is offline).
    pub async fn presence(&self, agent: &str, source: &str) -> StoreResult<Option<String>> {
        let row = sqlx::query(
            "SELECT status FROM agent_presence WHERE agent_extension = $1 AND source = $2",
        )
        .bind(agent.to_owned())
        .bind(source.to_owned())
        .fetch_optional(&self.pool)
        .await?;
        row.map(|r| r.try_get("status"))
            .transpose()
            .map_err(Into::into)
    }

    /// Every stored presence: (agent, source, status).
    pub async fn presence_all(&self) -> StoreResult<Vec<(String, String, String)>> {
        let rows = sqlx::query("SELECT agent_extension, source, status FROM agent_presence")
            .fetch_all(&self.pool)
            .await?;
        rows.iter()
            .map(|r| {
                Ok((
                    r.try_get("agent_extension")?,
                    r.try_get("source")?,
                    r.try_get("status")?,
                ))
            })
            .collect()
    }

    /// Forgets every stored presence (one node starting alone: its bridges
    /// report anew once connected).
    pub async fn clear_presence(&self) -> StoreResult<()> {
        sqlx::query("DELETE FROM agent_presence")
            .execute(&mut *self.writer().await?)
            .await?;
        Ok(())
    }

    /// Forgets every presence `source` reported (a node gone, a bridge
    /// reconnecting that will report anew).
    pub async fn clear_presence_source(&self, source: &str) -> StoreResult<u64> {
        let done = sqlx::query("DELETE FROM agent_presence WHERE source = $1")
            .bind(source.to_owned())
            .execute(&mut *self.writer().await?)
            .await?;
        Ok(done.rows_affected())
    }

    // --- what agents did last ------------------------------------------

    pub async fn activity_all(&self) -> StoreResult<HashMap<String, AgentActivity>> {
        let rows = sqlx::query(
            "SELECT agent_extension, last_chat_ended_at, chats_taken FROM agent_activity",
        )
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| {
                Ok((
                    r.try_get("agent_extension")?,
                    AgentActivity {
                        last_chat_ended_at: r.try_get("last_chat_ended_at")?,
                        chats_taken: r.try_get("chats_taken")?,
                    },
                ))
            })
            .collect()
    }

    /// An agent's chat ended at `at`.
    pub async fn record_chat_ended(&self, agent: &str, at: i64) -> StoreResult<()> {
        sqlx::query(
            "INSERT INTO agent_activity (agent_extension, last_chat_ended_at, chats_taken) \
             VALUES ($1, $2, 0) ON CONFLICT (agent_extension) \
             DO UPDATE SET last_chat_ended_at = excluded.last_chat_ended_at",
        )
        .bind(agent.to_owned())
        .bind(at)
        .execute(&mut *self.writer().await?)
        .await?;
        Ok(())
    }

    /// An agent took a chat.
    pub async fn record_chat_taken(&self, agent: &str) -> StoreResult<()> {
        sqlx::query(
            "INSERT INTO agent_activity (agent_extension, chats_taken) VALUES ($1, 1) \
             ON CONFLICT (agent_extension) \
             DO UPDATE SET chats_taken = agent_activity.chats_taken + 1",
        )
        .bind(agent.to_owned())
        .execute(&mut *self.writer().await?)
        .await?;
        Ok(())
    }

    // --- offers and declines -------------------------------------------

    /// The offer ringing for `conversation` now rings for `agents`.
    pub async fn put_offer(
        &self,
        conversation: ConversationId,
        agents: &[String],
        now: i64,
    ) -> StoreResult<()> {
        sqlx::query(
            "INSERT INTO offers (conversation_id, agents, created_at) VALUES ($1, $2, $3) \
             ON CONFLICT (conversation_id) \
             DO UPDATE SET agents = excluded.agents, created_at = excluded.created_at",
        )
        .bind(conversation.to_string())
        .bind(agents_json(agents))
        .bind(now)
        .execute(&mut *self.writer().await?)
        .await?;
        Ok(())
    }

    /// Who the offer of `conversation` rings for, if one rings.
    pub async fn offer_agents(
        &self,
        conversation: ConversationId,
    ) -> StoreResult<Option<Vec<String>>> {
        self.offer_agents_by(
            "SELECT agents FROM offers WHERE conversation_id = $1",
            conversation,
        )
        .await
    }

    /// Removes the offer of `conversation` and says who it rang for; only
    /// one caller, on any node, gets `Some`.
    pub async fn take_offer(
        &self,
        conversation: ConversationId,
    ) -> StoreResult<Option<Vec<String>>> {
        let stored: Option<String> =
            sqlx::query_scalar("DELETE FROM offers WHERE conversation_id = $1 RETURNING agents")
                .bind(conversation.to_string())
                .fetch_optional(&mut *self.writer().await?)
                .await?;
        stored.as_deref().map(agents_of).transpose()
    }

    /// The agents of the offer `sql` (binding the conversation) returns.
    async fn offer_agents_by(
        &self,
        sql: &'static str,
        conversation: ConversationId,
    ) -> StoreResult<Option<Vec<String>>> {
        let stored: Option<String> = sqlx::query_scalar(sql)
            .bind(conversation.to_string())
            .fetch_optional(&self.pool)
            .await?;
        stored.as_deref().map(agents_of).transpose()
    }

    /// Runs `sql` with the conversation as its one parameter.
    async fn for_conversation(
        &self,
        sql: &'static str,
        conversation: ConversationId,
    ) -> StoreResult<()> {
        sqlx::query(sql)
            .bind(conversation.to_string())
            .execute(&mut *self.writer().await?)
            .await?;
        Ok(())
    }

    /// Stops the offer ringing for `agent`: the agents it still rings
    /// for, or `None` if no offer rings (or not for them).
    pub async fn offer_without(
        &self,
        conversation: ConversationId,
        agent: &str,
    ) -> StoreResult<Option<Vec<String>>> {
        loop {
            let stored: Option<String> =
                sqlx::query_scalar("SELECT agents FROM offers WHERE conversation_id = $1")
                    .bind(conversation.to_string())
                    .fetch_optional(&self.pool)
                    .await?;
            let Some(stored) = stored else {
                return Ok(None);
            };
            let mut agents = agents_of(&stored)?;
            if !agents.iter().any(|a| a == agent) {
                return Ok(None);
            }
            agents.retain(|a| a != agent);
            let done = sqlx::query(
                "UPDATE offers SET agents = $3 WHERE conversation_id = $1 AND agents = $2",
            )
            .bind(conversation.to_string())
            .bind(stored)
            .bind(agents_json(&agents))
            .execute(&mut *self.writer().await?)
            .await?;
            if done.rows_affected() == 1 {
                return Ok(Some(agents));
            }
        }
    }

    /// Every offer ringing now.
    pub async fn offers_all(&self) -> StoreResult<HashMap<ConversationId, Vec<String>>> {
        let rows = sqlx::query("SELECT conversation_id, agents FROM offers")
            .fetch_all(&self.pool)
            .await?;
        rows.iter()
            .map(|r| {
                let id: String = r.try_get("conversation_id")?;
                let agents: String = r.try_get("agents")?;
                Ok((conversation_id(&id)?, agents_of(&agents)?))
            })
            .collect()
    }

    pub async fn add_declines(
        &self,
        conversation: ConversationId,
        agents: &[String],
    ) -> StoreResult<()> {
        for agent in agents {
            sqlx::query(
                "INSERT INTO offer_declines (conversation_id, agent_extension) VALUES ($1, $2) \
                 ON CONFLICT DO NOTHING",
            )
            .bind(conversation.to_string())
            .bind(agent.clone())
            .execute(&mut *self.writer().await?)
            .await?;
        }
        Ok(())
    }

    pub async fn declines(&self, conversation: ConversationId) -> StoreResult<Vec<String>> {
        Ok(sqlx::query_scalar(
            "SELECT agent_extension FROM offer_declines WHERE conversation_id = $1",
        )
        .bind(conversation.to_string())
        .fetch_all(&self.pool)
        .await?)
    }

    pub async fn clear_declines(&self, conversation: ConversationId) -> StoreResult<()> {
        self.for_conversation(
            "DELETE FROM offer_declines WHERE conversation_id = $1",
            conversation,
        )
        .await
    }

    // --- waiting conversations ------------------------------------------

    /// The queue positions last told, per conversation.
    pub async fn positions(&self) -> StoreResult<HashMap<ConversationId, u32>> {
        let rows = sqlx::query(
            "SELECT conversation_id, position FROM waiting_state WHERE position IS NOT NULL",
        )
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| {
                let id: String = r.try_get("conversation_id")?;
                let position: i64 = r.try_get("position")?;
                Ok((conversation_id(&id)?, u32::try_from(position).unwrap_or(0)))
            })
            .collect()
    }

    pub async fn position(&self, conversation: ConversationId) -> StoreResult<Option<u32>> {
        let position: Option<Option<i64>> =
            sqlx::query_scalar("SELECT position FROM waiting_state WHERE conversation_id = $1")
                .bind(conversation.to_string())
                .fetch_optional(&self.pool)
                .await?;
        Ok(position.flatten().and_then(|p| u32::try_from(p).ok()))
    }

    /// Records `position` unless it is the one stored: true if it changed.
    pub async fn set_position(
        &self,
        conversation: ConversationId,
        position: u32,
    ) -> StoreResult<bool> {
        let done = sqlx::query(
            "INSERT INTO waiting_state (conversation_id, position) VALUES ($1, $2) \
             ON CONFLICT (conversation_id) DO UPDATE SET position = excluded.position \
             WHERE waiting_state.position IS NULL OR waiting_state.position <> excluded.position",
        )
        .bind(conversation.to_string())
        .bind(i64::from(position))
        .execute(&mut *self.writer().await?)
        .await?;
        Ok(done.rows_affected() == 1)
    }

    /// The one agent a transfer directs the conversation to (or none).
    pub async fn set_directed(
        &self,
        conversation: ConversationId,
        agent: Option<&str>,
    ) -> StoreResult<()> {
        sqlx::query(
            "INSERT INTO waiting_state (conversation_id, directed_agent) VALUES ($1, $2) \
             ON CONFLICT (conversation_id) DO UPDATE SET directed_agent = excluded.directed_agent",
        )
        .bind(conversation.to_string())
        .bind(agent.map(str::to_owned))
        .execute(&mut *self.writer().await?)
        .await?;
        Ok(())
    }

    pub async fn directed(&self, conversation: ConversationId) -> StoreResult<Option<String>> {
        let agent: Option<Option<String>> = sqlx::query_scalar(
            "SELECT directed_agent FROM waiting_state WHERE conversation_id = $1",
        )
        .bind(conversation.to_string())
        .fetch_optional(&self.pool)
        .await?;
        Ok(agent.flatten())
    }

    /// Forgets what was kept of a conversation while it waited.
    pub async fn forget_waiting(&self, conversation: ConversationId) -> StoreResult<()> {
        self.for_conversation(
            "DELETE FROM waiting_state WHERE conversation_id = $1",
            conversation,
        )
        .await?;
        self.clear_declines(conversation).await
    }

    // --- the strategies' memory -----------------------------------------

    pub async fn memory(&self, name: &str) -> StoreResult<Option<String>> {
        Ok(
            sqlx::query_scalar("SELECT value FROM dispatch_memory WHERE name = $1")
                .bind(name.to_owned())
                .fetch_optional(&self.pool)
                .await?,
        )
    }

    pub async fn set_memory(&self, name: &str, value: &str) -> StoreResult<()> {
        sqlx::query(
            "INSERT INTO dispatch_memory (name, value) VALUES ($1, $2) \
             ON CONFLICT (name) DO UPDATE SET value = excluded.value",
        )
        .bind(name.to_owned())
        .bind(value.to_owned())
        .execute(&mut *self.writer().await?)
        .await?;
        Ok(())
    }

    // --- leases ----------------------------------------------------------

    /// Takes (or renews) the lease `name` for `holder` until `until`, if
    /// nobody else holds it past `now`. True if `holder` has it.
    pub async fn try_lease(
        &self,
        name: &str,
        holder: &str,
        until: i64,
        now: i64,
    ) -> StoreResult<bool> {
        let done = sqlx::query(
            "INSERT INTO leases (name, holder, until) VALUES ($1, $2, $3) \
             ON CONFLICT (name) DO UPDATE SET holder = excluded.holder, until = excluded.until \
             WHERE leases.until < $4 OR leases.holder = excluded.holder",
        )
        .bind(name.to_owned())
        .bind(holder.to_owned())
        .bind(until)
        .bind(now)
        .execute(&mut *self.writer().await?)
        .await?;
        Ok(done.rows_affected() == 1)
    }

    /// Gives the lease back (if `holder` still has it).
    pub async fn release_lease(&self, name: &str, holder: &str) -> StoreResult<()> {
        sqlx::query("DELETE FROM leases WHERE name = $1 AND holder = $2")
            .bind(name.to_owned())
            .bind(holder.to_owned())
            .execute(&mut *self.writer().await?)
            .await?;
        Ok(())
    }

    /// Who holds the lease `name`, and until when.
    pub async fn lease(&self, name: &str) -> StoreResult<Option<(String, i64)>> {
        let row = sqlx::query("SELECT holder, until FROM leases WHERE name = $1")
            .bind(name.to_owned())
            .fetch_optional(&self.pool)
            .await?;
        row.map(|r| Ok((r.try_get("holder")?, r.try_get("until")?)))
            .transpose()
    }

    // --- durable timers --------------------------------------------------

    /// Sets (or re-sets) a timer; a claim on its previous due time lapses.
    pub async fn set_timer(&self, timer: &TimerRow) -> StoreResult<()> {
        sqlx::query(
            "INSERT INTO timers (kind, subject, due_at, arg, claimed_until) \
             VALUES ($1, $2, $3, $4, NULL) ON CONFLICT (kind, subject) \
             DO UPDATE SET due_at = excluded.due_at, arg = excluded.arg, claimed_until = NULL",
        )
        .bind(timer.kind.clone())
        .bind(timer.subject.clone())
        .bind(timer.due_at)
        .bind(timer.arg.clone())
        .execute(&mut *self.writer().await?)
        .await?;
        Ok(())
    }

    /// Sets a timer unless one of that kind runs for the subject.
    pub async fn set_timer_once(&self, timer: &TimerRow) -> StoreResult<()> {
        sqlx::query(&insert_timers_once(1))
            .bind(timer.kind.clone())
            .bind(timer.subject.clone())
            .bind(timer.due_at)
            .bind(timer.arg.clone())
            .execute(&mut *self.writer().await?)
            .await?;
        Ok(())
    }

    pub async fn cancel_timer(&self, kind: &str, subject: &str) -> StoreResult<()> {
        sqlx::query("DELETE FROM timers WHERE kind = $1 AND subject = $2")
            .bind(kind.to_owned())
            .bind(subject.to_owned())
            .execute(&mut *self.writer().await?)
            .await?;
        Ok(())
    }

    /// When the next timer is due, if any.
    pub async fn next_timer_due(&self) -> StoreResult<Option<i64>> {
        Ok(sqlx::query_scalar("SELECT MIN(due_at) FROM timers")
            .fetch_one(&self.pool)
            .await?)
    }

    /// Claims up to `limit` timers due at `now` that nobody holds, each
    /// until `claim_until`: a compare-and-set per timer, so of several
    /// nodes claiming at once exactly one gets each.
    pub async fn claim_due_timers(
        &self,
        now: i64,
        claim_until: i64,
        limit: i64,
    ) -> StoreResult<Vec<TimerRow>> {
        let rows = sqlx::query(
            "SELECT kind, subject, due_at, arg FROM timers \
             WHERE due_at <= $1 AND (claimed_until IS NULL OR claimed_until < $1) \
             ORDER BY due_at LIMIT $2",
        )
        .bind(now)
        .bind(limit)
        .fetch_all(&self.pool)
        .await?;
        let mut claimed = Vec::with_capacity(rows.len());
        for r in &rows {
            let timer = TimerRow {
                kind: r.try_get("kind")?,
                subject: r.try_get("subject")?,
                due_at: r.try_get("due_at")?,
                arg: r.try_get("arg")?,
            };
            let done = sqlx::query(
                "UPDATE timers SET claimed_until = $4 \
                 WHERE kind = $1 AND subject = $2 AND due_at = $3 \
                 AND (claimed_until IS NULL OR claimed_until < $5)",
            )
            .bind(timer.kind.clone())
            .bind(timer.subject.clone())
            .bind(timer.due_at)
            .bind(claim_until)
            .bind(now)
            .execute(&mut *self.writer().await?)
            .await?;
            if done.rows_affected() == 1 {
                claimed.push(timer);
            }
        }
        Ok(claimed)
    }

    /// A claimed timer fired: it goes, unless it was re-set meanwhile.
    pub async fn timer_fired(&self, timer: &TimerRow) -> StoreResult<()> {
        sqlx::query("DELETE FROM timers WHERE kind = $1 AND subject = $2 AND due_at = $3")
            .bind(timer.kind.clone())
            .bind(timer.subject.clone())
            .bind(timer.due_at)
            .execute(&mut *self.writer().await?)
            .await?;
        Ok(())
    }
}
