//! Putting chats back in their queue: an offer that rang out or was
//! declined by everyone, an agent who went offline (their active chats),
//! and the bookkeeping of what this node remembers about a waiting chat.
//! Nothing is lost on the way: the history is in the store and is shown to
//! the next agent with the new offer.

use pbx_adapter::queue::AgentConfig;
use pbx_adapter::{AgentExtension, QueueExtension};
use tracing::{info, warn};

use super::{event, AgentView, ConversationSummary, Engine, EngineResult, EventBody};
use crate::domain::{ConversationId, ConversationState};
use crate::store::{now_ms, ConversationRow, ConversationUpdate};

impl Engine {
    /// Removes a pending offer and stops its timer.
    pub(super) fn take_offer(&self, id: ConversationId) -> Option<Vec<AgentExtension>> {
        let offer = self.live().offers.remove(&id)?;
        offer.timer.abort();
        Some(offer.agents)
    }

    /// Drops what this node remembers of a conversation that no longer
    /// waits (taken or ended).
    pub(super) fn forget(&self, id: ConversationId) {
        let mut live = self.live();
        live.positions.remove(&id);
        live.declined.remove(&id);
        live.directed.remove(&id);
        if let Some(timer) = live.wait_timers.remove(&id) {
            timer.abort();
        }
    }

    pub(super) async fn withdraw(
        &self,
        summary: &ConversationSummary,
        agents: &[AgentConfig],
        taken_by: Option<&str>,
    ) {
        if agents.is_empty() {
            return;
        }
        if let Err(e) = self.inner.agents.withdraw(summary, agents, taken_by).await {
            warn!(conversation = %summary.id, error = %e, "could not withdraw an offer");
        }
    }

    /// The agent left: their active chats go back to the queue (nothing is
    /// lost: the history is in the store and is replayed to the next agent).
    pub(super) async fn requeue_chats_of(&self, agent: &AgentExtension) {
        let active = match self
            .inner
            .store
            .conversations_in_states(&[ConversationState::Active])
            .await
        {
            Ok(rows) => rows,
            Err(e) => {
                warn!(error = %e, "cannot list active chats of a departed agent");
                return;
            }
        };
        for row in active
            .iter()
            .filter(|r| r.agent_extension.as_deref() == Some(agent.as_str()))
        {
            if let Err(e) = self.requeue_from_agent(row).await {
                warn!(conversation = %row.id, error = %e, "could not re-queue a chat");
            }
        }
    }

    /// The agent's ringing offers count as declined.
    pub(super) async fn decline_offers_of(&self, agent: &AgentExtension) {
        let declined: Vec<ConversationId> = {
            let live = self.live();
            live.offers
                .iter()
                .filter(|(_, o)| o.agents.contains(agent))
                .map(|(id, _)| *id)
                .collect()
        };
        for id in declined {
            self.offer_declined(id, agent).await;
        }
    }

    pub(super) async fn requeue_from_agent(&self, row: &ConversationRow) -> EngineResult<()> {
        let name = row.agent_name.clone().unwrap_or_default();
        let update = ConversationUpdate {
            state: Some(ConversationState::Queued),
            agent: Some(None),
            queued_at: Some(Some(row.queued_at.unwrap_or_else(now_ms))),
            ..Default::default()
        };
        let events = [
            event(EventBody::AgentLeft {
                agent: AgentView { name },
            }),
            event(EventBody::State {
                state: ConversationState::Queued,
            }),
        ];
        self.commit(row.id, Some(ConversationState::Active), &update, &events)
            .await?;
        self.drop_deliveries(row.id, None).await;
        info!(conversation = %row.id, "agent left: conversation re-queued");
        Ok(())
    }

    /// Nobody took the offer in time (called by its own timer, which
    /// must not be aborted under its feet, or when the last ringing agent
    /// declined): back to the queue, next agents.
    pub(super) async fn offer_expired(&self, id: ConversationId, from_timer: bool) {
        let offer = self.live().offers.remove(&id);
        let Some(offer) = offer else {
            return;
        };
        if !from_timer {
            offer.timer.abort();
        }
        let agents = offer.agents;
        {
            let mut live = self.live();
            live.declined
                .entry(id)
                .or_default()
                .extend(agents.iter().cloned());
            // A transfer to one agent who did not answer falls back to the queue.
            live.directed.remove(&id);
        }
        let update = ConversationUpdate {
            state: Some(ConversationState::Queued),
            ..Default::default()
        };
        let events = [event(EventBody::State {
            state: ConversationState::Queued,
        })];
        match self
            .commit(id, Some(ConversationState::Offered), &update, &events)
            .await
        {
            Ok(Some(_)) => {
                info!(conversation = %id, "offer expired: back in the queue");
                self.drop_deliveries(id, None).await;
                if let Ok(row) = self.row(id).await {
                    if let Ok(summary) = self.summary(&row) {
                        let configs = self.agent_configs(&agents);
                        self.withdraw(&summary, &configs, None).await;
                    }
                    if let Some(queue) = self.queue_of(&row) {
                        self.dispatch(&queue).await;
                    }
                }
            }
            Ok(None) => {}
            Err(e) => warn!(conversation = %id, error = %e, "could not expire an offer"),
        }
    }

    pub(super) async fn dispatch_all(&self) {
        let queues: Vec<QueueExtension> = self
            .directory()
            .pbx()
            .queues()
            .iter()
            .map(|q| q.extension.clone())
            .collect();
        for queue in queues {
            self.dispatch(&queue).await;
        }
    }
}
