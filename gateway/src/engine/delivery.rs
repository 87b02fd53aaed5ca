//! Forwarding visitors' messages to agents through the delivery outbox.
//!
//! A visitor message (or file) is stored together with one outbox row per
//! agent who must get it: the agent in charge, or every agent an offer is
//! ringing for (so whoever answers has seen everything). After the commit
//! the message goes to the bridge; the row is deleted when the bridge says
//! the other side has it ([`Delivery::Done`] at once, or later through
//! [`Engine::delivered`]). A gateway that crashes in between forwards what
//! is left at its next start ([`Engine::replay_deliveries`]), in order and
//! under the same stanza ids, before it makes any new offer. In a cluster,
//! where other nodes' deliveries are in flight, a node replays at start
//! only what is older than [`STALE_DELIVERY`], and one node at a time (a
//! durable timer, see `timers.rs`) sweeps what a dead node left the same
//! way every [`SWEEP_EVERY`]. What an agent
//! no longer needs (the chat was taken by someone else, ended or went back
//! to the queue, whose next offer shows the history) is dropped.

use std::time::Duration;

use pbx_adapter::queue::AgentConfig;
use pbx_adapter::AgentExtension;
use tracing::{info, warn};

use super::{message_of, ConversationSummary, Delivery, Engine, EngineResult, MessageView, Notice};
use crate::domain::ConversationId;
use crate::store::{now_ms, ConversationRow, DeliveryRow, StoredEvent};

/// How old an unconfirmed delivery must be before a cluster node takes it
/// for one a dead node left (a live node's bridge confirms in seconds, or
/// re-sends itself while its server is away).
pub(super) const STALE_DELIVERY: Duration = Duration::from_secs(60);
/// How often one cluster node sweeps stale deliveries.
pub(super) const SWEEP_EVERY: Duration = Duration::from_secs(20);

impl Engine {
    /// Who must get a new visitor message of `row`: the agent in charge,
    /// else every agent the offer rings for.
    pub(super) async fn recipients(&self, row: &ConversationRow) -> Vec<AgentConfig> {
        if let Some(agent) = self.assigned_agent(row) {
            return vec![agent];
        }
        if !row.state.is_waiting() {
            // Not with an agent and not in a queue (a chatbot menu, or
            // over): nothing can ring for it. A queued one is read too,
            // since its offer row is written just before it reads offered.
            return Vec::new();
        }
        let ringing = match self.inner.store.offer_agents(row.id).await {
            Ok(ringing) => ringing.unwrap_or_default(),
            Err(e) => {
                warn!(conversation = %row.id, error = %e, "cannot read who an offer rings for");
                Vec::new()
            }
        };
        let ringing: Vec<AgentExtension> = ringing.iter().filter_map(|a| a.parse().ok()).collect();
        self.agent_configs(&ringing)
    }

    /// The agents of `deliver_to` (the outbox rows just stored with
    /// `stored`) that the directory knows; the rows of any it no longer
    /// knows are cleared, as nothing can deliver them.
    pub(super) async fn known_recipients(
        &self,
        stored: &StoredEvent,
        deliver_to: &[String],
    ) -> Vec<AgentConfig> {
        let directory = self.directory();
        let mut known = Vec::with_capacity(deliver_to.len());
        for extension in deliver_to {
            let agent = (extension.parse::<AgentExtension>().ok())
                .and_then(|a| directory.pbx().agent(&a).cloned());
            match agent {
                Some(agent) => known.push(agent),
                None => {
                    let delivery = DeliveryRow {
                        conversation: stored.conversation_id,
                        seq: stored.seq,
                        agent_extension: extension.clone(),
                    };
                    self.delivered(&delivery).await;
                }
            }
        }
        known
    }

    /// Hands a stored message to the bridges for `agents`; rows the bridge
    /// is done with at once are cleared.
    pub(super) async fn forward(
        &self,
        summary: &ConversationSummary,
        message: &MessageView,
        agents: &[AgentConfig],
    ) {
        for agent in agents {
            let delivery = DeliveryRow {
                conversation: summary.id,
                seq: message.seq,
                agent_extension: agent.extension.to_string(),
            };
            let notice = Notice::Message(message);
            match self.inner.agents.notify(agent, summary, notice).await {
                Ok(Delivery::Done) => self.delivered(&delivery).await,
                Ok(Delivery::Pending) => {}
                Err(e) => warn!(
                    conversation = %summary.id,
                    agent = %agent.extension,
                    error = %e,
                    "could not forward a visitor message; it is forwarded at the next start"
                ),
            }
        }
    }

    /// A bridge's other side confirmed a forwarded message.
    pub async fn delivered(&self, delivery: &DeliveryRow) {
        if let Err(e) = self.inner.store.delivery_done(delivery).await {
            warn!(
                conversation = %delivery.conversation,
                error = %e,
                "cannot clear a delivered message; it may be forwarded again"
            );
        }
    }

    /// Forgets what is left to forward to anyone but `keep`.
    pub(super) async fn drop_deliveries(&self, id: ConversationId, keep: Option<&AgentExtension>) {
        let keep = keep.map(AgentExtension::as_str);
        if let Err(e) = self.inner.store.deliveries_drop_others(id, keep).await {
            warn!(conversation = %id, error = %e, "cannot drop stale deliveries");
        }
    }

    /// Forwards, in order, what a previous run (or, in a cluster, a node
    /// that died) stored but never saw delivered, to agents still in
    /// charge of their chat; drops the rest.
    pub(super) async fn replay_deliveries(&self) -> EngineResult<()> {
        let before = if self.inner.limits.clustered {
            now_ms() - i64::try_from(STALE_DELIVERY.as_millis()).unwrap_or(i64::MAX)
        } else {
            i64::MAX
        };
        let pending = self.inner.store.deliveries_pending(before).await?;
        let mut replayed = 0;
        for delivery in &pending {
            match self.replay_one(delivery).await {
                Ok(true) => replayed += 1,
                Ok(false) => self.delivered(delivery).await,
                Err(e) => warn!(
                    conversation = %delivery.conversation,
                    error = %e,
                    "cannot replay a delivery"
                ),
            }
        }
        info!(
            pending = pending.len(),
            replayed, "replayed undelivered messages"
        );
        Ok(())
    }

    /// Forwards one delivery again if its agent is still in charge;
    /// `false` when it is no longer needed.
    async fn replay_one(&self, delivery: &DeliveryRow) -> EngineResult<bool> {
        let row = self.row(delivery.conversation).await?;
        // Only an active chat has an assigned agent.
        let agent = match self.assigned_agent(&row) {
            Some(agent) if agent.extension.as_str() == delivery.agent_extension => agent,
            _ => return Ok(false),
        };
        let events = self
            .inner
            .store
            .events_after(delivery.conversation, delivery.seq - 1, 1)
            .await?;
        let Some(stored) = events.first().filter(|e| e.seq == delivery.seq) else {
            return Ok(false);
        };
        let message = message_of(stored)?;
        let summary = self.summary(&row)?;
        self.forward(&summary, &message, std::slice::from_ref(&agent))
            .await;
        Ok(true)
    }
}
