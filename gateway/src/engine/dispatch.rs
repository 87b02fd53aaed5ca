//! Queue dispatch: who waits where, and who gets offered what.
//!
//! Run whenever something changes a queue (a visitor joins or leaves it, an
//! agent comes or goes, an offer is taken or expires). One dispatch at a
//! time per node; transitions are guarded by the expected state in the
//! store, so two nodes cannot both move one conversation.

use std::collections::HashMap;
use std::time::Duration;

use chrono::Utc;
use pbx_adapter::queue::{
    choose_offer, MemberConfig, MemberStatus, OfferDecision, QueueConfig, Strategy,
};
use pbx_adapter::{AgentExtension, QueueExtension};
use tracing::{info, warn};

use super::{event, Engine, EventBody, Offer, PendingOffer};
use crate::domain::{ConversationId, ConversationState};
use crate::store::{ConversationRow, ConversationUpdate};

/// How many of a conversation's latest messages an offer carries (the
/// agent who takes a chat reads what was said; a chat that went back to
/// the queue gets its undelivered messages to the next agent this way).
const OFFER_HISTORY: i64 = 1000;

impl Engine {
    /// Updates queue positions and makes the offers the queue's strategy
    /// allows right now.
    pub(super) async fn dispatch(&self, queue: &QueueExtension) {
        let _one_at_a_time = self.inner.dispatch_lock.lock().await;
        let Some(config) = self.directory().pbx().queue(queue).cloned() else {
            warn!(queue = %queue, "dispatch for an unknown queue");
            return;
        };
        let rows = match self
            .inner
            .store
            .conversations_in_states(&[
                ConversationState::Queued,
                ConversationState::Offered,
                ConversationState::Active,
            ])
            .await
        {
            Ok(rows) => rows,
            Err(e) => {
                warn!(queue = %queue, error = %e, "cannot read the queue");
                return;
            }
        };
        let active_chats = count_active_chats(&rows);
        let waiting: Vec<&ConversationRow> = rows
            .iter()
            .filter(|r| r.queue_extension.as_deref() == Some(queue.as_str()))
            .filter(|r| r.state.is_waiting())
            .collect();
        self.publish_positions(&waiting).await;
        for row in &waiting {
            self.arm_max_wait(&config, row);
        }
        for row in waiting
            .iter()
            .filter(|r| r.state == ConversationState::Queued)
        {
            if !self.offer_one(&config, row, &active_chats).await {
                break;
            }
        }
    }

    /// Emits a `queue_position` event to each waiting visitor whose
    /// position changed.
    async fn publish_positions(&self, waiting: &[&ConversationRow]) {
        for (index, row) in waiting.iter().enumerate() {
            let position = index as u32 + 1;
            let changed = {
                let mut live = self.live();
                live.positions.insert(row.id, position) != Some(position)
            };
            if changed {
                let result = self
                    .commit(
                        row.id,
                        None,
                        &ConversationUpdate::default(),
                        &[event(EventBody::QueuePosition { position })],
                    )
                    .await;
                if let Err(e) = result {
                    warn!(conversation = %row.id, error = %e, "cannot publish a queue position");
                }
            }
        }
    }

    /// Offers one queued conversation. Returns false when no agent at all
    /// can take an offer now, so later visitors do not overtake.
    async fn offer_one(
        &self,
        queue: &QueueConfig,
        row: &ConversationRow,
        active_chats: &HashMap<AgentExtension, u32>,
    ) -> bool {
        let now = Utc::now();
        let directed_queue;
        let decision = {
            let mut live = self.live();
            // A chat transferred to one agent rings that agent only.
            let queue = match live.directed.get(&row.id) {
                Some(agent) => {
                    directed_queue = QueueConfig {
                        strategy: Strategy::Ringall,
                        members: vec![MemberConfig {
                            agent: agent.clone(),
                            penalty: 0,
                        }],
                        ..queue.clone()
                    };
                    &directed_queue
                }
                None => queue,
            };
            let ringing: Vec<AgentExtension> = live
                .offers
                .values()
                .flat_map(|o| o.agents.iter().cloned())
                .collect();
            let statuses: Vec<MemberStatus> = queue
                .members
                .iter()
                .map(|m| MemberStatus {
                    agent: m.agent.clone(),
                    available: live.status.get(&m.agent) == Some(&super::AgentStatus::Available)
                        && !ringing.contains(&m.agent),
                    active_chats: active_chats.get(&m.agent).copied().unwrap_or(0),
                    last_chat_ended_at: live.last_chat_ended.get(&m.agent).copied(),
                    wrapup_until: None,
                    chats_taken_total: live.chats_taken.get(&m.agent).copied().unwrap_or(0),
                })
                .collect();
            let declined: Vec<AgentExtension> = live
                .declined
                .get(&row.id)
                .map(|d| d.iter().cloned().collect())
                .unwrap_or_default();
            let mut decision = choose_offer(
                queue,
                &statuses,
                &declined,
                &mut live.strategy_memory,
                now,
                &mut rand::rng(),
            );
            if decision == OfferDecision::EveryoneTried {
                // Every free agent let it ring out: start a new round, as
                // a PBX queue rings its members again.
                live.declined.remove(&row.id);
                decision = choose_offer(
                    queue,
                    &statuses,
                    &[],
                    &mut live.strategy_memory,
                    now,
                    &mut rand::rng(),
                );
            }
            decision
        };
        let agents = match decision {
            OfferDecision::Offer(agents) if !agents.is_empty() => agents,
            _ => return false,
        };
        let _in_order = self.outbound(row.id).await;
        let update = ConversationUpdate {
            state: Some(ConversationState::Offered),
            ..Default::default()
        };
        let events = [event(EventBody::State {
            state: ConversationState::Offered,
        })];
        match self
            .commit(row.id, Some(ConversationState::Queued), &update, &events)
            .await
        {
            Ok(Some(_)) => {}
            Ok(None) => return true,
            Err(e) => {
                warn!(conversation = %row.id, error = %e, "cannot mark a conversation offered");
                return true;
            }
        }
        let timer =
            self.start_offer_timer(row.id, Duration::from_secs(queue.ring_timeout_secs.into()));
        self.live().offers.insert(
            row.id,
            PendingOffer {
                agents: agents.clone(),
                timer,
            },
        );
        info!(conversation = %row.id, agents = ?agents, "offering the conversation");
        let offer = match self.build_offer(row, &agents).await {
            Ok(offer) => offer,
            Err(e) => {
                warn!(conversation = %row.id, error = %e, "cannot build an offer");
                return true;
            }
        };
        if let Err(e) = self.inner.agents.offer(offer).await {
            warn!(conversation = %row.id, error = %e, "offer could not be sent");
        }
        true
    }

    /// The latest messages of a conversation, in order.
    async fn latest_messages(
        &self,
        id: ConversationId,
        limit: i64,
    ) -> super::EngineResult<Vec<super::MessageView>> {
        let events = self
            .inner
            .store
            .last_events_of_kind(id, "message", limit)
            .await?;
        events.iter().map(super::message_of).collect()
    }

    async fn build_offer(
        &self,
        row: &ConversationRow,
        agents: &[AgentExtension],
    ) -> super::EngineResult<Offer> {
        Ok(Offer {
            conversation: self.summary(row)?,
            agents: self.agent_configs(agents),
            history: self.latest_messages(row.id, OFFER_HISTORY).await?,
        })
    }

    fn start_offer_timer(&self, id: ConversationId, after: Duration) -> tokio::task::AbortHandle {
        let engine = self.clone();
        let shutdown = self.inner.shutdown.clone();
        self.inner
            .tasks
            .spawn(async move {
                tokio::select! {
                    _ = tokio::time::sleep(after) => engine.offer_expired(id, true).await,
                    _ = shutdown.cancelled() => {}
                }
            })
            .abort_handle()
    }
}

fn count_active_chats(rows: &[ConversationRow]) -> HashMap<AgentExtension, u32> {
    let mut counts = HashMap::new();
    for row in rows {
        if row.state != ConversationState::Active {
            continue;
        }
        if let Some(agent) = row.agent_extension.as_deref().and_then(|a| a.parse().ok()) {
            *counts.entry(agent).or_insert(0) += 1;
        }
    }
    counts
}
