//! The chat engine: the domain core between visitors and agents.
//!
//! It owns the conversation state machine, queueing and offers, and writes
//! every change through the store before anyone is told of it. It knows
//! nothing of HTTP, XMPP or SIP: visitors reach it through the API layer,
//! agents through an [`AgentChannel`] (outbound) and the `agent_*` methods
//! (inbound), which the protocol bridges call.

pub mod agents;
pub mod channels;
pub mod commands;
pub mod hub;
pub mod loopback;
pub mod state;
pub mod view;

mod agent_files;
mod dispatch;
mod files;
mod overflow;

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};

use chrono::{DateTime, Utc};
use pbx_adapter::queue::{AgentConfig, PbxDirectory};
use pbx_adapter::{AgentExtension, QueueExtension};
use serde_json::json;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::{info, instrument, warn};
use uuid::Uuid;

pub use agent_files::{
    AgentFileOutcome, GrantedSlot, SlotId, SlotRefusal, SlotUnusable, UploadTicket,
};
pub use agents::{AgentChannel, AgentChannelError, Offer};
pub use channels::{Channel, Channels};
pub use commands::{describe_visitor, AgentCommand};
pub use hub::{Hub, Signal};
pub use state::{ConversationState, InvalidTransition};
pub use view::{
    AgentView, ConversationSummary, ConversationView, EventBody, EventView, MessageView,
    ReceiptStatus, VisitorView,
};

use crate::domain::{
    ClientMessageId, ConversationId, Email, InvalidInput, MessageBody, Party, VisitorName,
    VisitorToken,
};
use crate::store::{
    now_ms, ConversationRow, ConversationUpdate, NewConversation, NewEvent, Store, StoreError,
    StoredEvent,
};

#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    #[error("unknown channel")]
    UnknownChannel,
    #[error("unknown conversation")]
    UnknownConversation,
    #[error("the channel is closed")]
    Closed { next_open: Option<DateTime<Utc>> },
    #[error(transparent)]
    Invalid(#[from] InvalidInput),
    #[error("unknown chatbot option")]
    UnknownOption,
    #[error("the conversation is {0}, which does not allow this")]
    InvalidState(ConversationState),
    #[error("the conversation has ended")]
    ConversationEnded,
    #[error("this conversation is not yours")]
    NotYourConversation,
    #[error(transparent)]
    Transition(#[from] InvalidTransition),
    #[error(transparent)]
    Store(#[from] StoreError),
}

pub type EngineResult<T> = Result<T, EngineError>;

/// What an agent's presence means for chats.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AgentStatus {
    /// Takes new offers.
    Available,
    /// Keeps their chats, takes no new offers (away, do not disturb).
    Busy,
    /// Gone: their chats go back to the queue.
    Offline,
}

/// What a visitor gives to start a conversation, already validated.
pub struct NewVisitor {
    pub name: VisitorName,
    pub email: Email,
    pub page_url: Option<String>,
    pub language: String,
}

/// Cheap to clone; every clone is the same engine.
#[derive(Clone)]
pub struct Engine {
    inner: Arc<Inner>,
}

struct Inner {
    store: Store,
    hub: Hub,
    channels: Channels,
    directory: Arc<PbxDirectory>,
    agents: Arc<dyn AgentChannel>,
    live: Mutex<LiveState>,
    dispatch_lock: tokio::sync::Mutex<()>,
    /// Woken whenever an agent's status changes.
    status_changed: tokio::sync::Notify,
    tasks: TaskTracker,
    shutdown: CancellationToken,
    /// Agents' HTTP File Upload slots (see `agent_files`).
    uploads: agent_files::UploadSlots,
}

/// What this node keeps in memory only: rebuilt at start-up (offers are
/// re-made from the `queued` state after a restart).
#[derive(Default)]
struct LiveState {
    status: HashMap<AgentExtension, AgentStatus>,
    offers: HashMap<ConversationId, PendingOffer>,
    declined: HashMap<ConversationId, HashSet<AgentExtension>>,
    positions: HashMap<ConversationId, u32>,
    /// Max-wait timers of waiting conversations.
    wait_timers: HashMap<ConversationId, tokio::task::AbortHandle>,
    /// Chats transferred to one agent: offered to them only, once.
    directed: HashMap<ConversationId, AgentExtension>,
    /// When each agent's last chat ended (for wrap-up and leastrecent).
    last_chat_ended: HashMap<AgentExtension, DateTime<Utc>>,
    /// Chats each agent took since start-up (for fewestcalls).
    chats_taken: HashMap<AgentExtension, u64>,
    strategy_memory: pbx_adapter::queue::StrategyMemory,
}

struct PendingOffer {
    agents: Vec<AgentExtension>,
    timer: tokio::task::AbortHandle,
}

impl Engine {
    pub fn new(
        store: Store,
        channels: Channels,
        directory: Arc<PbxDirectory>,
        agents: Arc<dyn AgentChannel>,
    ) -> Engine {
        Engine {
            inner: Arc::new(Inner {
                store,
                hub: Hub::default(),
                channels,
                directory,
                agents,
                live: Mutex::new(LiveState::default()),
                dispatch_lock: tokio::sync::Mutex::new(()),
                status_changed: tokio::sync::Notify::new(),
                tasks: TaskTracker::new(),
                shutdown: CancellationToken::new(),
                uploads: agent_files::UploadSlots::default(),
            }),
        }
    }

    pub fn store(&self) -> &Store {
        &self.inner.store
    }

    pub fn hub(&self) -> &Hub {
        &self.inner.hub
    }

    pub fn channels(&self) -> &Channels {
        &self.inner.channels
    }

    pub fn directory(&self) -> &PbxDirectory {
        &self.inner.directory
    }

    /// Puts conversations that were waiting when the gateway stopped back
    /// in their queues, then offers them again. Active chats stay active.
    pub async fn recover(&self) -> EngineResult<()> {
        let offered = self
            .inner
            .store
            .conversations_in_states(&[ConversationState::Offered.as_str()])
            .await?;
        for row in &offered {
            let update = ConversationUpdate {
                state: Some(ConversationState::Queued.as_str().to_owned()),
                ..Default::default()
            };
            self.inner
                .store
                .transition(
                    row.id,
                    Some(ConversationState::Offered.as_str()),
                    &update,
                    &[],
                )
                .await?;
        }
        info!(requeued = offered.len(), "recovered waiting conversations");
        self.dispatch_all().await;
        Ok(())
    }

    /// Stops offer timers; in-flight engine calls finish on their own.
    pub async fn shutdown(&self) {
        self.inner.shutdown.cancel();
        self.inner.tasks.close();
        self.inner.tasks.wait().await;
    }

    // ---- visitors -------------------------------------------------------

    /// Starts a conversation, or refuses with `Closed` outside hours (the
    /// attempt is still recorded, in state `closed_out_of_hours`).
    #[instrument(skip_all, fields(channel = %channel_key))]
    pub async fn start_conversation(
        &self,
        channel_key: &str,
        visitor: NewVisitor,
    ) -> EngineResult<(ConversationView, VisitorToken)> {
        let channel = self
            .inner
            .channels
            .get(channel_key)
            .ok_or(EngineError::UnknownChannel)?;
        let now = Utc::now();
        let id = ConversationId::new();
        let token = VisitorToken::generate();
        let language = channel.pick_language(&visitor.language);
        let open = channel.schedule.is_open(now);
        let target = if !open {
            ConversationState::ClosedOutOfHours
        } else if channel.config.mode == crate::config::ChannelMode::Chatbot {
            ConversationState::ChatbotMenu
        } else {
            ConversationState::Queued
        };
        ConversationState::Started.transition(target)?;
        let queue = (target == ConversationState::Queued).then(|| {
            channel
                .config
                .queue
                .clone()
                .expect("validated: live channels have a queue")
        });
        let new = NewConversation {
            id,
            channel_key: channel_key.to_owned(),
            token_hash: token.hash(),
            state: target.as_str().to_owned(),
            visitor_name: visitor.name.as_str().to_owned(),
            visitor_email: visitor.email.as_str().to_owned(),
            page_url: visitor.page_url,
            language,
            queue_extension: queue.as_ref().map(ToString::to_string),
            ended: target.is_final(),
        };
        let events = [event(EventBody::State { state: target })];
        self.inner.store.create_conversation(&new, &events).await?;
        if !open {
            info!(conversation = %id, "conversation refused outside opening hours");
            return Err(EngineError::Closed {
                next_open: channel.schedule.next_open(now),
            });
        }
        metrics::counter!("frontdesk_conversations_started_total").increment(1);
        info!(conversation = %id, state = %target, "conversation started");
        if let Some(queue) = queue {
            self.dispatch(&queue).await;
        }
        Ok((self.view(id).await?, token))
    }

    /// Loads a conversation and checks the visitor's token.
    pub async fn authenticate(
        &self,
        id: ConversationId,
        token: &VisitorToken,
    ) -> EngineResult<Option<ConversationRow>> {
        let row = self
            .inner
            .store
            .conversation(id)
            .await?
            .ok_or(EngineError::UnknownConversation)?;
        Ok(row.token_hash.matches(token).then_some(row))
    }

    pub async fn view(&self, id: ConversationId) -> EngineResult<ConversationView> {
        let row = self.row(id).await?;
        let position = self.position_of(id);
        Ok(ConversationView {
            id,
            channel: row.channel_key.clone(),
            state: row.parsed_state()?,
            visitor: VisitorView {
                name: row.visitor_name.clone(),
                email: row.visitor_email.clone(),
            },
            agent: row.agent_name.clone().map(|name| AgentView { name }),
            queue_position: position.filter(|_| row.parsed_state().is_ok_and(|s| s.is_waiting())),
            last_seq: row.last_seq,
        })
    }

    /// The visitor picked a chatbot option: show its welcome text, then
    /// queue the conversation for the option's queue.
    #[instrument(skip(self), fields(conversation = %id))]
    pub async fn choose_option(
        &self,
        id: ConversationId,
        option_id: &str,
    ) -> EngineResult<ConversationView> {
        let row = self.row(id).await?;
        let state = row.parsed_state()?;
        if state.is_final() {
            return Err(EngineError::ConversationEnded);
        }
        if state != ConversationState::ChatbotMenu {
            return Err(EngineError::InvalidState(state));
        }
        let channel = self.channel_of(&row)?;
        let option = channel
            .config
            .options
            .iter()
            .find(|o| o.id == option_id)
            .ok_or(EngineError::UnknownOption)?;
        let next = state.transition(ConversationState::Queued)?;
        let welcome = MessageView {
            id: Uuid::now_v7(),
            client_id: None,
            seq: 0,
            sender: Party::System,
            author: channel.config.name.clone(),
            body: option.welcome.clone(),
            created_at: Utc::now(),
            attachment: None,
        };
        let update = ConversationUpdate {
            state: Some(next.as_str().to_owned()),
            option_id: Some(Some(option.id.clone())),
            queue_extension: Some(Some(option.queue.to_string())),
            queued_at: Some(Some(now_ms())),
            ..Default::default()
        };
        let events = [
            event(EventBody::Message { message: welcome }),
            event(EventBody::State { state: next }),
        ];
        self.commit(id, Some(state), &update, &events).await?;
        info!(option = %option.id, queue = %option.queue, "chatbot option chosen");
        self.dispatch(&option.queue).await;
        self.view(id).await
    }

    /// Stores a visitor's message (once per `client_id`) and forwards it
    /// to the agent in charge. Returns the message and whether it was new.
    #[instrument(skip(self, body), fields(conversation = %id))]
    pub async fn post_visitor_message(
        &self,
        id: ConversationId,
        client_id: ClientMessageId,
        body: MessageBody,
    ) -> EngineResult<(MessageView, bool)> {
        let row = self.row(id).await?;
        if let Some(existing) = self
            .inner
            .store
            .event_by_client_id(id, client_id.as_str())
            .await?
        {
            return Ok((message_of(&existing)?, false));
        }
        if row.parsed_state()?.is_final() {
            return Err(EngineError::ConversationEnded);
        }
        let message = MessageView {
            id: Uuid::now_v7(),
            client_id: Some(client_id.as_str().to_owned()),
            seq: 0,
            sender: Party::Visitor,
            author: row.visitor_name.clone(),
            body: body.into_string(),
            created_at: Utc::now(),
            attachment: None,
        };
        let mut new = event(EventBody::Message { message });
        new.client_id = Some(client_id.as_str().to_owned());
        let (stored, created) = self.inner.store.append_idempotent(id, &new).await?;
        let message = message_of(&stored)?;
        if !created {
            return Ok((message, false));
        }
        self.inner.hub.publish(id, Signal::Committed(stored.seq));
        metrics::counter!("frontdesk_messages_total", "from" => "visitor").increment(1);
        // The agent in charge gets it; while an offer rings, every ringing
        // agent does, so whoever answers has seen everything.
        let recipients = match self.assigned_agent(&row) {
            Some(agent) => vec![agent],
            None => {
                let ringing = self.live().offers.get(&id).map(|o| o.agents.clone());
                self.agent_configs(&ringing.unwrap_or_default())
            }
        };
        if !recipients.is_empty() {
            let summary = self.summary(&row)?;
            for agent in &recipients {
                if let Err(e) = self.inner.agents.deliver(agent, &summary, &message).await {
                    warn!(error = %e, agent = %agent.extension, "could not forward a visitor message");
                }
            }
        }
        Ok((message, true))
    }

    /// Messages of a conversation after `after_seq`, in order.
    pub async fn messages(
        &self,
        id: ConversationId,
        after_seq: i64,
        limit: i64,
    ) -> EngineResult<Vec<MessageView>> {
        let events = self
            .inner
            .store
            .events_of_kind(id, "message", after_seq, limit)
            .await?;
        events.iter().map(message_of).collect()
    }

    /// Durable events after `after_seq`, in order.
    pub async fn events_after(
        &self,
        id: ConversationId,
        after_seq: i64,
        limit: i64,
    ) -> EngineResult<Vec<EventView>> {
        let events = self.inner.store.events_after(id, after_seq, limit).await?;
        Ok(events
            .iter()
            .map(EventView::try_from)
            .collect::<Result<_, _>>()?)
    }

    pub async fn visitor_typing(&self, id: ConversationId, composing: bool) -> EngineResult<()> {
        let row = self.row(id).await?;
        if let Some(agent) = self.assigned_agent(&row) {
            let summary = self.summary(&row)?;
            if let Err(e) = self
                .inner
                .agents
                .visitor_typing(&agent, &summary, composing)
                .await
            {
                warn!(conversation = %id, error = %e, "could not forward typing");
            }
        }
        Ok(())
    }

    /// Ends a conversation (idempotent once ended).
    #[instrument(skip(self), fields(conversation = %id))]
    pub async fn close(&self, id: ConversationId, by: Party) -> EngineResult<ConversationView> {
        let row = self.row(id).await?;
        let state = row.parsed_state()?;
        if state.is_final() {
            return self.view(id).await;
        }
        let next = state.transition(ConversationState::Ended)?;
        let reason = match by {
            Party::Visitor => "the visitor ended the chat",
            Party::Agent => "the agent ended the chat",
            Party::System => "the chat was ended",
        };
        let update = ConversationUpdate {
            state: Some(next.as_str().to_owned()),
            ended_at: Some(Some(now_ms())),
            ..Default::default()
        };
        let events = [
            event(EventBody::State { state: next }),
            event(EventBody::Closed {
                by,
                reason: reason.to_owned(),
            }),
        ];
        if self
            .commit(id, Some(state), &update, &events)
            .await?
            .is_none()
        {
            // Someone else moved it first; report what it is now.
            return self.view(id).await;
        }
        info!(by = ?by, "conversation ended");
        let summary = self.summary(&row)?;
        if let Some(offer) = self.take_offer(id) {
            let agents = self.agent_configs(&offer);
            self.withdraw(&summary, &agents, None).await;
        }
        if let Some(agent) = self.assigned_agent(&row) {
            if by != Party::Agent {
                if let Err(e) = self.inner.agents.ended(&agent, &summary, by).await {
                    warn!(error = %e, "could not tell the agent the chat ended");
                }
            }
        }
        self.forget(id);
        if let Some(agent) = row.agent_extension.as_deref().and_then(|a| a.parse().ok()) {
            self.live().last_chat_ended.insert(agent, Utc::now());
        }
        if let Some(queue) = self.queue_of(&row) {
            self.dispatch(&queue).await;
        }
        self.view(id).await
    }

    // ---- agents -----------------------------------------------------------

    /// An agent's presence changed. `Offline` re-queues their chats;
    /// `Busy` and `Offline` both stop new offers and count their ringing
    /// offers as declined; `Available` triggers offers.
    #[instrument(skip(self))]
    pub async fn set_agent_status(&self, agent: &AgentExtension, status: AgentStatus) {
        let previous = {
            let mut live = self.live();
            let previous = live
                .status
                .get(agent)
                .copied()
                .unwrap_or(AgentStatus::Offline);
            live.status.insert(agent.clone(), status);
            previous
        };
        if previous == status {
            return;
        }
        self.inner.status_changed.notify_waiters();
        info!(?status, "agent status changed");
        if status == AgentStatus::Offline {
            self.requeue_chats_of(agent).await;
        }
        if status != AgentStatus::Available {
            self.decline_offers_of(agent).await;
        }
        self.dispatch_all().await;
    }

    /// Shorthand: available, or offline.
    pub async fn set_agent_available(&self, agent: &AgentExtension, available: bool) {
        let status = if available {
            AgentStatus::Available
        } else {
            AgentStatus::Offline
        };
        self.set_agent_status(agent, status).await;
    }

    pub fn is_available(&self, agent: &AgentExtension) -> bool {
        self.live().status.get(agent) == Some(&AgentStatus::Available)
    }

    /// Resolves once `agent` is available (for bridges' readiness checks
    /// and tests; wrap it in a timeout).
    pub async fn until_available(&self, agent: &AgentExtension) {
        loop {
            let changed = self.inner.status_changed.notified();
            if self.is_available(agent) {
                return;
            }
            changed.await;
        }
    }

    /// An agent accepts an offered conversation (explicitly, or by replying
    /// first). Returns the view; `NotYourConversation` if it was not offered
    /// to them or someone else took it.
    #[instrument(skip(self), fields(conversation = %id))]
    pub async fn agent_accept(
        &self,
        id: ConversationId,
        agent: &AgentExtension,
    ) -> EngineResult<ConversationView> {
        let row = self.row(id).await?;
        let state = row.parsed_state()?;
        if state.is_final() {
            return Err(EngineError::ConversationEnded);
        }
        if state == ConversationState::Active
            && row.agent_extension.as_deref() == Some(agent.as_str())
        {
            return self.view(id).await;
        }
        let offered_to_them = self
            .live()
            .offers
            .get(&id)
            .is_some_and(|o| o.agents.contains(agent));
        if state != ConversationState::Offered || !offered_to_them {
            return Err(EngineError::NotYourConversation);
        }
        let config = self
            .inner
            .directory
            .agent(agent)
            .cloned()
            .ok_or(EngineError::NotYourConversation)?;
        let next = state.transition(ConversationState::Active)?;
        let update = ConversationUpdate {
            state: Some(next.as_str().to_owned()),
            agent: Some(Some((agent.to_string(), config.name.clone()))),
            ..Default::default()
        };
        let events = [
            event(EventBody::State { state: next }),
            event(EventBody::AgentJoined {
                agent: AgentView {
                    name: config.name.clone(),
                },
            }),
        ];
        if self
            .commit(id, Some(state), &update, &events)
            .await?
            .is_none()
        {
            return Err(EngineError::NotYourConversation);
        }
        info!(agent = %agent, "agent took the conversation");
        let summary = self.summary(&row)?;
        if let Some(offer) = self.take_offer(id) {
            let others: Vec<AgentConfig> = self
                .agent_configs(&offer)
                .into_iter()
                .filter(|a| &a.extension != agent)
                .collect();
            self.withdraw(&summary, &others, Some(&config.name)).await;
        }
        self.forget(id);
        *self.live().chats_taken.entry(agent.clone()).or_insert(0) += 1;
        if let Some(queue) = self.queue_of(&row) {
            self.dispatch(&queue).await;
        }
        self.view(id).await
    }

    /// An agent's message to the visitor. A first reply to an offer takes
    /// the conversation.
    #[instrument(skip(self, body), fields(conversation = %id))]
    pub async fn agent_message(
        &self,
        id: ConversationId,
        agent: &AgentExtension,
        body: &str,
    ) -> EngineResult<MessageView> {
        let row = self.row(id).await?;
        let channel = self.channel_of(&row)?;
        let body = MessageBody::parse(body, channel.config.limits.max_message_chars)?;
        let row = self.claim_for_agent(row, agent).await?;
        let message = MessageView {
            id: Uuid::now_v7(),
            client_id: None,
            seq: 0,
            sender: Party::Agent,
            author: row.agent_name.clone().unwrap_or_default(),
            body: body.into_string(),
            created_at: Utc::now(),
            attachment: None,
        };
        let stored = self
            .commit(
                id,
                None,
                &ConversationUpdate::default(),
                &[event(EventBody::Message { message })],
            )
            .await?
            .ok_or(EngineError::UnknownConversation)?;
        metrics::counter!("frontdesk_messages_total", "from" => "agent").increment(1);
        message_of(&stored[0])
    }

    /// What an agent sends into a conversation needs it to be theirs: a
    /// first reply to an offer takes it; then it must be active and
    /// assigned to them. Returns the up-to-date row.
    pub(crate) async fn claim_for_agent(
        &self,
        row: ConversationRow,
        agent: &AgentExtension,
    ) -> EngineResult<ConversationRow> {
        let id = row.id;
        if row.parsed_state()? == ConversationState::Offered {
            self.agent_accept(id, agent).await?;
        }
        let row = self.row(id).await?;
        let state = row.parsed_state()?;
        if state.is_final() {
            return Err(EngineError::ConversationEnded);
        }
        if state != ConversationState::Active
            || row.agent_extension.as_deref() != Some(agent.as_str())
        {
            return Err(EngineError::NotYourConversation);
        }
        Ok(row)
    }

    /// The agent is typing (ephemeral: not stored).
    pub fn agent_typing(&self, id: ConversationId, composing: bool) {
        self.inner.hub.publish(id, Signal::AgentTyping(composing));
    }

    /// The agent's client confirmed delivery or display of visitor messages
    /// up to `up_to_seq`.
    pub async fn agent_receipt(
        &self,
        id: ConversationId,
        status: ReceiptStatus,
        up_to_seq: i64,
    ) -> EngineResult<()> {
        self.commit(
            id,
            None,
            &ConversationUpdate::default(),
            &[event(EventBody::Receipt { status, up_to_seq })],
        )
        .await?;
        Ok(())
    }

    /// The agent ends the chat from their client.
    pub async fn agent_end(
        &self,
        id: ConversationId,
        agent: &AgentExtension,
    ) -> EngineResult<ConversationView> {
        let row = self.row(id).await?;
        if row.agent_extension.as_deref() != Some(agent.as_str()) {
            return Err(EngineError::NotYourConversation);
        }
        self.close(id, Party::Agent).await
    }

    // ---- internals --------------------------------------------------------

    fn live(&self) -> std::sync::MutexGuard<'_, LiveState> {
        self.inner.live.lock().expect("engine state lock poisoned")
    }

    async fn row(&self, id: ConversationId) -> EngineResult<ConversationRow> {
        self.inner
            .store
            .conversation(id)
            .await?
            .ok_or(EngineError::UnknownConversation)
    }

    fn channel_of(&self, row: &ConversationRow) -> EngineResult<Arc<Channel>> {
        self.inner
            .channels
            .get(&row.channel_key)
            .ok_or(EngineError::UnknownChannel)
    }

    fn queue_of(&self, row: &ConversationRow) -> Option<QueueExtension> {
        row.queue_extension.as_deref().and_then(|q| q.parse().ok())
    }

    fn assigned_agent(&self, row: &ConversationRow) -> Option<AgentConfig> {
        if row.parsed_state().ok()? != ConversationState::Active {
            return None;
        }
        let ext: AgentExtension = row.agent_extension.as_deref()?.parse().ok()?;
        self.inner.directory.agent(&ext).cloned()
    }

    fn summary(&self, row: &ConversationRow) -> EngineResult<ConversationSummary> {
        let channel = self.channel_of(row)?;
        let option_label = row.option_id.as_deref().and_then(|id| {
            channel
                .config
                .options
                .iter()
                .find(|o| o.id == id)
                .map(|o| o.label.clone())
        });
        Ok(ConversationSummary {
            id: row.id,
            channel_key: row.channel_key.clone(),
            channel_name: channel.config.name.clone(),
            visitor_name: row.visitor_name.clone(),
            visitor_email: row.visitor_email.clone(),
            page_url: row.page_url.clone(),
            language: row.language.clone(),
            option_label,
            queue: row.queue_extension.clone(),
        })
    }

    fn position_of(&self, id: ConversationId) -> Option<u32> {
        self.live().positions.get(&id).copied()
    }

    fn agent_configs(&self, agents: &[AgentExtension]) -> Vec<AgentConfig> {
        agents
            .iter()
            .filter_map(|a| self.inner.directory.agent(a).cloned())
            .collect()
    }

    /// Removes a pending offer and stops its timer.
    fn take_offer(&self, id: ConversationId) -> Option<Vec<AgentExtension>> {
        let offer = self.live().offers.remove(&id)?;
        offer.timer.abort();
        Some(offer.agents)
    }

    /// Drops what this node remembers of a conversation that no longer
    /// waits (taken or ended).
    fn forget(&self, id: ConversationId) {
        let mut live = self.live();
        live.positions.remove(&id);
        live.declined.remove(&id);
        live.directed.remove(&id);
        if let Some(timer) = live.wait_timers.remove(&id) {
            timer.abort();
        }
    }

    async fn withdraw(
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

    /// Commits a transition and its events, then signals subscribers.
    async fn commit(
        &self,
        id: ConversationId,
        expect: Option<ConversationState>,
        update: &ConversationUpdate,
        events: &[NewEvent],
    ) -> EngineResult<Option<Vec<StoredEvent>>> {
        let stored = self
            .inner
            .store
            .transition(id, expect.map(|s| s.as_str()), update, events)
            .await?;
        if let Some(last) = stored.as_ref().and_then(|s| s.last()) {
            self.inner.hub.publish(id, Signal::Committed(last.seq));
        }
        Ok(stored)
    }

    /// The agent left: their active chats go back to the queue (nothing is
    /// lost: the history is in the store and is replayed to the next agent).
    async fn requeue_chats_of(&self, agent: &AgentExtension) {
        let active = match self
            .inner
            .store
            .conversations_in_states(&[ConversationState::Active.as_str()])
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
    async fn decline_offers_of(&self, agent: &AgentExtension) {
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

    async fn requeue_from_agent(&self, row: &ConversationRow) -> EngineResult<()> {
        let name = row.agent_name.clone().unwrap_or_default();
        let update = ConversationUpdate {
            state: Some(ConversationState::Queued.as_str().to_owned()),
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
        info!(conversation = %row.id, "agent left: conversation re-queued");
        Ok(())
    }

    /// One agent declined, could not be reached, or went away during an
    /// offer: the others keep ringing; when none is left, it moves on.
    pub async fn offer_declined(&self, id: ConversationId, agent: &AgentExtension) {
        let remaining = {
            let mut live = self.live();
            live.declined.entry(id).or_default().insert(agent.clone());
            match live.offers.get_mut(&id) {
                Some(offer) => {
                    offer.agents.retain(|a| a != agent);
                    offer.agents.len()
                }
                None => return,
            }
        };
        if remaining == 0 {
            self.offer_expired(id, false).await;
        }
    }

    /// Nobody took the offer in time (called by its own timer, which
    /// must not be aborted under its feet, or when the last ringing agent
    /// declined): back to the queue, next agents.
    async fn offer_expired(&self, id: ConversationId, from_timer: bool) {
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
            state: Some(ConversationState::Queued.as_str().to_owned()),
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

    async fn dispatch_all(&self) {
        let queues: Vec<QueueExtension> = self
            .inner
            .directory
            .queues()
            .iter()
            .map(|q| q.extension.clone())
            .collect();
        for queue in queues {
            self.dispatch(&queue).await;
        }
    }
}

fn event(body: EventBody) -> NewEvent {
    NewEvent::new(
        body.kind(),
        serde_json::to_value(&body).unwrap_or_else(|e| json!({ "error": e.to_string() })),
    )
}

fn message_of(stored: &StoredEvent) -> EngineResult<MessageView> {
    match EventView::try_from(stored)?.body {
        EventBody::Message { message } => Ok(message),
        other => Err(EngineError::Store(StoreError::Corrupt(format!(
            "event {} is a {}, not a message",
            stored.seq,
            other.kind()
        )))),
    }
}
