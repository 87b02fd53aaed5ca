//! Queue dispatch: who waits where, and who gets offered what.
//!
//! Run whenever something changes a queue (a visitor joins or leaves it, an
//! agent comes or goes, an offer is taken or expires). Everything it
//! decides with is in the store (presence, what rings, declines, what each
//! agent did last, the strategies' memory), and one dispatch runs at a
//! time in the whole cluster (a lease when `[cluster]` is on), so the strategies
//! behave as one queue however many nodes serve it; transitions are still
//! guarded by the expected state, so a lease that lapsed cannot move one
//! conversation twice.
//!
//! It reads the queue's line from its head, a page at a time, and stops at
//! the first chat no agent can take (later ones must not overtake it), so
//! its cost follows the offers it makes, not the length of the line; the
//! line's positions and max waits are the upkeep task's (`upkeep.rs`).
//! A chat that joins behind one still waiting unoffered is not dispatched
//! at all (see [`Engine::joined`]).

use std::collections::{HashMap, HashSet};
use std::time::Duration;

use chrono::Utc;
use pbx_adapter::queue::{
    choose_offer, MemberConfig, MemberStatus, OfferDecision, QueueConfig, Strategy, StrategyMemory,
};
use pbx_adapter::{AgentExtension, QueueExtension};
use tracing::{info, warn};

use super::{event, timers, AgentStatus, Engine, EventBody, Offer};
use crate::domain::{ConversationId, ConversationState};
use crate::store::{
    now_ms, AgentActivity, ConversationRow, ConversationUpdate, Joined, LineKey, NewConversation,
    NewEvent, StoredEvent,
};

/// How many of a conversation's latest messages an offer carries (the
/// agent who takes a chat reads what was said; a chat that went back to
/// the queue gets its undelivered messages to the next agent this way).
const OFFER_HISTORY: i64 = 1000;

/// How long the dispatch lease holds if its node dies while dispatching.
const DISPATCH_LEASE_MS: i64 = 10_000;
/// The dispatch lease's name: one dispatch at a time in the whole cluster,
/// so an agent in two queues never rings for two chats at once.
const DISPATCH_LEASE: &str = "dispatch";
/// How many chats of a line one read brings (more than a queue has agents
/// to offer to, so one page usually decides).
const LINE_PAGE: i64 = 50;
/// Where the strategies' memory is kept (`dispatch_memory`).
const STRATEGY_MEMORY: &str = "strategy";

/// What one dispatch decides with, read from the store once.
struct Facts {
    statuses: HashMap<AgentExtension, AgentStatus>,
    activity: HashMap<String, AgentActivity>,
    /// Agents some offer rings for now (in any queue).
    ringing: HashSet<String>,
    memory: StrategyMemory,
    memory_changed: bool,
    active_chats: HashMap<AgentExtension, u32>,
}

impl Engine {
    /// Makes the offers the queue's strategy allows right now (and marks
    /// its positions to be told).
    pub(super) async fn dispatch(&self, queue: &QueueExtension) {
        let _one_at_a_time = self.inner.dispatch_lock.lock().await;
        let Some(config) = self.directory().pbx().queue(queue).cloned() else {
            warn!(queue = %queue, "dispatch for an unknown queue");
            return;
        };
        self.positions_moved(queue);
        if !self.take_dispatch_lease().await {
            self.dispatch_later(queue);
            return;
        }
        if let Err(e) = self.dispatch_locked(&config).await {
            warn!(queue = %queue, error = %e, "dispatch failed");
            self.dispatch_later(queue);
        }
        self.release_dispatch_lease().await;
    }

    /// Creates a chat that joins `queue` at once: its position, the event
    /// that tells it and its max wait are committed with it.
    pub(super) async fn create_queued(
        &self,
        new: &NewConversation,
        events: &[NewEvent],
        queue: &QueueExtension,
    ) -> super::EngineResult<(Vec<StoredEvent>, Joined)> {
        let timer = self.max_wait_timer(queue, new.id);
        fn position_event(position: u32) -> NewEvent {
            event(EventBody::QueuePosition { position })
        }
        let created = (self.inner.store)
            .create_queued_conversation(new, events, position_event, timer.as_ref())
            .await?;
        if timer.is_some() {
            self.inner.timers_changed.notify_waiters();
        }
        Ok(created)
    }

    /// A chat `id` joined `queue`'s line, its position already told, and
    /// found the head of the line as it joined.
    /// Dispatching it would offer nothing new while a chat ahead of it
    /// still waits unoffered and is not directed to one agent: the last
    /// dispatch found no agent for that head, and everything that can free
    /// one dispatches the queue again (presence, an offer taken, declined
    /// or rung out, a chat ended or handed on, wrap-up over, a directory
    /// change); a dispatch under way when this chat came reads the line
    /// again after its last offer. Otherwise it dispatches as any change.
    pub(super) async fn joined(&self, queue: &QueueExtension, id: ConversationId, joined: Joined) {
        // It joined at the end of the line, its position the last one's
        // plus one, read once every chat that joined before it had
        // committed (SQLite's one writer; on PostgreSQL a lock on the
        // line, `store/batch/postgres.rs`; `store/creation.rs`
        // `queued_at_after`): it is exact unless one ahead left since the
        // last ranking, and a leave marks the queue itself, as does a
        // ranking that wrote (one it raced with may have read the line
        // before this chat).
        let head = joined.head;
        if matches!(head, Some(head) if head.id != id && !head.directed) {
            return;
        }
        self.dispatch(queue).await;
    }

    async fn dispatch_locked(&self, config: &QueueConfig) -> super::EngineResult<()> {
        let mut facts = None;
        let mut after = None;
        // Until a page comes back empty: a chat that joined while offers
        // were made is read too.
        'line: loop {
            let page = (self.inner.store)
                .line_page(config.extension.as_str(), after.as_ref(), LINE_PAGE)
                .await?;
            let Some(last) = page.last() else { break };
            after = Some(LineKey::of(last));
            for row in page.iter().filter(|r| r.state == ConversationState::Queued) {
                let facts = match &mut facts {
                    Some(facts) => facts,
                    None => facts.insert(self.facts().await?),
                };
                if !self.offer_one(config, row, facts).await? {
                    break 'line;
                }
            }
        }
        match facts {
            Some(facts) if facts.memory_changed => {
                let json = serde_json::to_string(&facts.memory).unwrap_or_default();
                self.inner.store.set_memory(STRATEGY_MEMORY, &json).await?;
            }
            _ => {}
        }
        Ok(())
    }

    async fn facts(&self) -> super::EngineResult<Facts> {
        let store = &self.inner.store;
        Ok(Facts {
            statuses: self.statuses().await?,
            activity: store.activity_all().await?,
            ringing: store.offers_all().await?.into_values().flatten().collect(),
            memory: match store.memory(STRATEGY_MEMORY).await? {
                Some(json) => serde_json::from_str(&json).unwrap_or_default(),
                None => StrategyMemory::default(),
            },
            memory_changed: false,
            active_chats: (store.active_chats_by_agent().await?.into_iter())
                .filter_map(|(agent, n)| Some((agent.parse().ok()?, n)))
                .collect(),
        })
    }

    /// Waits for the cluster's dispatch lease (alone on its store, the
    /// local lock is the lease). False if the database cannot be reached.
    async fn take_dispatch_lease(&self) -> bool {
        if !self.inner.limits.clustered {
            return true;
        }
        let mut pause = Duration::from_millis(2);
        let deadline =
            tokio::time::Instant::now() + Duration::from_millis(DISPATCH_LEASE_MS as u64);
        loop {
            let now = now_ms();
            match (self.inner.store)
                .try_lease(
                    DISPATCH_LEASE,
                    &self.inner.node,
                    now + DISPATCH_LEASE_MS,
                    now,
                )
                .await
            {
                Ok(true) => return true,
                Ok(false) if tokio::time::Instant::now() < deadline => {
                    tokio::time::sleep(pause).await;
                    pause = (pause * 2).min(Duration::from_millis(50));
                }
                Ok(false) => {
                    warn!("the dispatch lease stayed taken: dispatching later");
                    return false;
                }
                Err(e) => {
                    warn!(error = %e, "cannot take the dispatch lease");
                    return false;
                }
            }
        }
    }

    async fn release_dispatch_lease(&self) {
        if !self.inner.limits.clustered {
            return;
        }
        if let Err(e) = (self.inner.store)
            .release_lease(DISPATCH_LEASE, &self.inner.node)
            .await
        {
            warn!(error = %e, "cannot release the dispatch lease");
        }
    }

    /// Offers one queued conversation. Returns false when no agent at all
    /// can take an offer now, so later visitors do not overtake.
    async fn offer_one(
        &self,
        queue: &QueueConfig,
        row: &ConversationRow,
        facts: &mut Facts,
    ) -> super::EngineResult<bool> {
        let now = Utc::now();
        let store = &self.inner.store;
        let directed = store.directed(row.id).await?;
        // A chat transferred to one agent rings that agent only.
        let directed_queue;
        let queue = match directed.as_deref().and_then(|a| a.parse().ok()) {
            Some(agent) => {
                directed_queue = QueueConfig {
                    strategy: Strategy::Ringall,
                    members: vec![MemberConfig { agent, penalty: 0 }],
                    ..queue.clone()
                };
                &directed_queue
            }
            None => queue,
        };
        let statuses: Vec<MemberStatus> = queue
            .members
            .iter()
            .map(|m| {
                let activity = facts.activity.get(m.agent.as_str());
                MemberStatus {
                    agent: m.agent.clone(),
                    available: facts.statuses.get(&m.agent) == Some(&AgentStatus::Available)
                        && !facts.ringing.contains(m.agent.as_str()),
                    active_chats: facts.active_chats.get(&m.agent).copied().unwrap_or(0),
                    last_chat_ended_at: activity
                        .and_then(|a| a.last_chat_ended_at)
                        .and_then(chrono::DateTime::from_timestamp_millis),
                    wrapup_until: None,
                    chats_taken_total: activity.map_or(0, |a| a.chats_taken.max(0) as u64),
                }
            })
            .collect();
        let declined: Vec<AgentExtension> = (store.declines(row.id).await?.iter())
            .filter_map(|a| a.parse().ok())
            .collect();
        let before = facts.memory.clone();
        let mut decision = choose_offer(
            queue,
            &statuses,
            &declined,
            &mut facts.memory,
            now,
            &mut rand::rng(),
        );
        if decision == OfferDecision::EveryoneTried {
            // Every free agent let it ring out: start a new round, as
            // a PBX queue rings its members again.
            store.clear_declines(row.id).await?;
            decision = choose_offer(
                queue,
                &statuses,
                &[],
                &mut facts.memory,
                now,
                &mut rand::rng(),
            );
        }
        facts.memory_changed |= facts.memory != before;
        let agents = match decision {
            OfferDecision::Offer(agents) if !agents.is_empty() => agents,
            _ => return Ok(false),
        };
        let _in_order = self.outbound(row.id).await;
        let names: Vec<String> = agents.iter().map(ToString::to_string).collect();
        // The offer row first: an agent who answers the instant the
        // conversation reads `offered` finds it.
        store.put_offer(row.id, &names, now_ms()).await?;
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
            Ok(None) => {
                store.take_offer(row.id).await?;
                return Ok(true);
            }
            Err(e) => {
                warn!(conversation = %row.id, error = %e, "cannot mark a conversation offered");
                store.take_offer(row.id).await?;
                return Ok(true);
            }
        }
        facts.ringing.extend(names);
        let ring = Duration::from_secs(queue.ring_timeout_secs.into());
        self.set_timer(timers::OFFER, &row.id.to_string(), ring, None)
            .await;
        info!(conversation = %row.id, agents = ?agents, "offering the conversation");
        let offer = match self.build_offer(row, &agents).await {
            Ok(offer) => offer,
            Err(e) => {
                warn!(conversation = %row.id, error = %e, "cannot build an offer");
                return Ok(true);
            }
        };
        if let Err(e) = self.inner.agents.offer(offer).await {
            warn!(conversation = %row.id, error = %e, "offer could not be sent");
        }
        Ok(true)
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
}
