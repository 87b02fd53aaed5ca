//! Putting chats back in their queue: an offer that rang out or was
//! declined by everyone, an agent who went offline (their active chats),
//! and the bookkeeping of what is kept of a waiting chat (in the store).
//! Nothing is lost on the way: the history is in the store and is shown to
//! the next agent with the new offer.

use pbx_adapter::queue::AgentConfig;
use pbx_adapter::{AgentExtension, QueueExtension};
use tracing::{info, warn};

use super::{event, timers, AgentView, ConversationSummary, Engine, EngineResult, EventBody};
use crate::domain::{ConversationId, ConversationState};
use crate::store::{now_ms, ConversationRow, ConversationUpdate};

impl Engine {
    /// Removes the pending offer and its timer; only one caller, on any
    /// node, gets the agents it rang for (whose queues are dispatched
    /// soon: they are free again).
    pub(super) async fn take_offer(&self, id: ConversationId) -> Option<Vec<AgentExtension>> {
        let agents = match self.inner.store.take_offer(id).await {
            Ok(agents) => agents?,
            Err(e) => {
                warn!(conversation = %id, error = %e, "cannot take an offer");
                return None;
            }
        };
        self.cancel_timer(timers::OFFER, &id.to_string()).await;
        let agents: Vec<AgentExtension> = agents.iter().filter_map(|a| a.parse().ok()).collect();
        self.agents_freed(&agents);
        Some(agents)
    }

    /// Drops what was kept of a conversation while it waited (it was
    /// taken, ended, or moved to another queue): its position, declines,
    /// transfer target and max-wait timer.
    pub(super) async fn forget(&self, id: ConversationId) {
        if let Err(e) = self.inner.store.forget_waiting(id).await {
            warn!(conversation = %id, error = %e, "cannot forget a waiting conversation");
        }
        self.cancel_timer(timers::MAX_WAIT, &id.to_string()).await;
    }

    /// An agent's chat ended (or was handed on): stamped for wrap-up and
    /// leastrecent, with a timer that dispatches again when the longest
    /// wrap-up of their queues is over, and their queues dispatched soon
    /// (they may take another chat now).
    pub(super) async fn chat_ended_for(&self, agent: &AgentExtension) {
        self.agents_freed(std::slice::from_ref(agent));
        if let Err(e) = self
            .inner
            .store
            .record_chat_ended(agent.as_str(), now_ms())
            .await
        {
            warn!(error = %e, "cannot record when an agent's chat ended");
        }
        let wrapup = (self.directory().pbx().queues_of(agent).iter())
            .map(|q| q.wrapup_secs)
            .max()
            .unwrap_or(0);
        if wrapup > 0 {
            let after = std::time::Duration::from_secs(wrapup.into());
            self.set_timer(timers::WRAPUP, agent.as_str(), after, None)
                .await;
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
        let offers = match self.inner.store.offers_all().await {
            Ok(offers) => offers,
            Err(e) => {
                warn!(error = %e, "cannot list the offers of a departed agent");
                return;
            }
        };
        for (id, agents) in offers {
            if agents.iter().any(|a| a == agent.as_str()) {
                self.offer_declined(id, agent).await;
            }
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

    /// Nobody took the offer in time (its timer fired, on any node), or
    /// the last ringing agent declined: back to the queue, next agents.
    pub(super) async fn offer_expired(&self, id: ConversationId) {
        let Some(agents) = self.take_offer(id).await else {
            return;
        };
        let names: Vec<String> = agents.iter().map(ToString::to_string).collect();
        let store = &self.inner.store;
        // A transfer to one agent who did not answer falls back to the queue.
        let kept = match store.add_declines(id, &names).await {
            Ok(()) => store.set_directed(id, None).await,
            Err(e) => Err(e),
        };
        if let Err(e) = kept {
            warn!(conversation = %id, error = %e, "cannot record who let an offer ring out");
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
