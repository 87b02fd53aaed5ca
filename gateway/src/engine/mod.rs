//! The chat engine: the domain core between visitors and agents.
//!
//! It drives the conversation state machine, queueing and offers, and writes
//! every change through the store before anyone is told of it. It knows
//! nothing of HTTP, XMPP or SIP: visitors reach it through the API layer
//! (`visitor.rs`), agents through an [`AgentChannel`] (outbound)
//! and `agent.rs` (inbound), which the protocol bridges call.
//! `dispatch.rs` makes offers, `requeue.rs` puts chats back when offers expire
//! or agents leave, `overflow.rs` runs max-wait timers.
//!
//! This file holds the `Engine` itself, what it keeps in memory, and the
//! small helpers every operation shares (reading a row, committing a
//! transition and signalling it).

pub mod agent_channel;
pub mod channels;
pub mod commands;
pub mod directory;
pub mod hub;
pub mod live;
pub mod loopback;
pub mod view;

mod abandoned;
mod agent;
mod agent_files;
mod delivery;
mod dispatch;
mod files;
mod overflow;
mod requeue;
mod signals;
mod visitor;

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};

use chrono::{DateTime, Utc};
use pbx_adapter::queue::AgentConfig;
use pbx_adapter::{AgentExtension, QueueExtension};
use serde_json::json;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::info;

pub use agent_channel::{AgentChannel, AgentChannelError, Delivery, Notice, Offer};
pub use agent_files::{
    AgentFileOutcome, GrantedSlot, SlotId, SlotRefusal, SlotUnusable, UploadTicket,
};
pub use channels::{Channel, Channels};
pub use commands::{describe_visitor, AgentCommand};
pub use directory::{
    Actor, Directory, DirectoryError, DirectoryOp, Item, ItemMeta, DEFAULT_TENANT,
};
pub use files::AttachOutcome;
pub use hub::{Hub, Signal};
pub use view::{
    AgentView, ConversationSummary, ConversationView, EventBody, EventView, MessageView,
    ReceiptStatus, VisitorView,
};

use crate::domain::{
    ClientKey, ConversationId, ConversationState, Email, InvalidInput, InvalidTransition, PageUrl,
    Party, VisitorName,
};
use crate::store::{ConversationRow, ConversationUpdate, NewEvent, Store, StoreError, StoredEvent};

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
    #[error("the queue is full")]
    QueueFull,
    #[error("this client already has as many chats waiting as allowed")]
    TooManyWaiting { limit: u32 },
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
    /// The file store (the bytes of uploads) failed.
    #[error("file store: {0}")]
    FileStore(#[source] std::io::Error),
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
#[derive(Debug)]
pub struct NewVisitor {
    pub name: VisitorName,
    pub email: Email,
    pub page_url: Option<PageUrl>,
    pub language: String,
    /// Who starts it, for the per-client waiting cap (none: not capped).
    pub client: Option<ClientKey>,
}

/// Cheap to clone; every clone is the same engine.
#[derive(Clone)]
pub struct Engine {
    inner: Arc<Inner>,
}

struct Inner {
    store: Store,
    hub: Hub,
    /// The directory in force (see `directory.rs`).
    directory: arc_swap::ArcSwap<Directory>,
    /// Its version, for those who react to changes.
    directory_version: tokio::sync::watch::Sender<i64>,
    agents: Arc<dyn AgentChannel>,
    live: Mutex<LiveState>,
    dispatch_lock: tokio::sync::Mutex<()>,
    /// See [`Engine::outbound`].
    outbound: [tokio::sync::Mutex<()>; OUTBOUND_STRIPES],
    /// Woken whenever an agent's status changes.
    status_changed: tokio::sync::Notify,
    tasks: TaskTracker,
    shutdown: CancellationToken,
    limits: EngineLimits,
}

/// Bounds the engine enforces (from `[waiting]`).
#[derive(Debug, Clone, Copy, Default)]
pub struct EngineLimits {
    /// Most chats waiting in one queue; 0: no limit.
    pub max_waiting_per_queue: u32,
    /// Most chats one client may have waiting; 0: no limit.
    pub max_waiting_per_client: u32,
    /// How long a visitor token is valid after its chat started, in
    /// milliseconds; 0: for ever.
    pub visitor_token_ttl_ms: i64,
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

/// Locks behind [`Engine::outbound`]: conversations share one by hash, so
/// the set stays small and needs no cleaning.
const OUTBOUND_STRIPES: usize = 64;

struct PendingOffer {
    agents: Vec<AgentExtension>,
    timer: tokio::task::AbortHandle,
}

impl Engine {
    /// An engine with an empty directory: [`provision`](Self::provision)
    /// or [`reload_directory`](Self::reload_directory) fills it.
    pub fn new(store: Store, agents: Arc<dyn AgentChannel>, limits: EngineLimits) -> Engine {
        Engine {
            inner: Arc::new(Inner {
                store,
                hub: Hub::default(),
                directory: arc_swap::ArcSwap::from_pointee(Directory::empty()),
                directory_version: tokio::sync::watch::Sender::new(0),
                agents,
                live: Mutex::new(LiveState::default()),
                dispatch_lock: tokio::sync::Mutex::new(()),
                outbound: std::array::from_fn(|_| tokio::sync::Mutex::new(())),
                status_changed: tokio::sync::Notify::new(),
                tasks: TaskTracker::new(),
                shutdown: CancellationToken::new(),
                limits,
            }),
        }
    }

    pub fn store(&self) -> &Store {
        &self.inner.store
    }

    pub fn hub(&self) -> &Hub {
        &self.inner.hub
    }

    /// The channels in force now.
    pub fn channels(&self) -> Channels {
        self.directory().channels().clone()
    }

    /// Puts conversations that were waiting when the gateway stopped back
    /// in their queues, forwards to agents in charge what they never got,
    /// then offers the waiting ones again. Active chats stay active.
    pub async fn recover(&self) -> EngineResult<()> {
        let offered = self
            .inner
            .store
            .conversations_in_states(&[ConversationState::Offered])
            .await?;
        for row in &offered {
            let update = ConversationUpdate {
                state: Some(ConversationState::Queued),
                ..Default::default()
            };
            self.inner
                .store
                .transition(row.id, Some(ConversationState::Offered), &update, &[])
                .await?;
        }
        info!(requeued = offered.len(), "recovered waiting conversations");
        self.replay_deliveries().await?;
        self.dispatch_all().await;
        Ok(())
    }

    /// Stops offer timers; in-flight engine calls finish on their own.
    pub async fn shutdown(&self) {
        self.inner.shutdown.cancel();
        self.inner.tasks.close();
        self.inner.tasks.wait().await;
    }

    /// Held while a conversation's agents are told something in order: an
    /// offer (from the `offered` commit until its card and history are
    /// handed to the bridges) and a visitor message (from choosing its
    /// recipients until it is handed over). So a message stored during an
    /// offer reaches the agent after the offer's history, never before a
    /// message it follows. Never held across another conversation's.
    async fn outbound(&self, id: ConversationId) -> tokio::sync::MutexGuard<'_, ()> {
        let stripe = (id.as_uuid().as_u128() % OUTBOUND_STRIPES as u128) as usize;
        self.inner.outbound[stripe].lock().await
    }

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

    /// The channel named `key`.
    pub fn channel(&self, key: &str) -> EngineResult<Arc<Channel>> {
        self.directory()
            .channels()
            .get(key)
            .ok_or(EngineError::UnknownChannel)
    }

    /// The channel named `key` if it takes new chats (a disabled channel
    /// is unknown to new visitors; chats under way go on).
    pub fn enabled_channel(&self, key: &str) -> EngineResult<Arc<Channel>> {
        Some(self.channel(key)?)
            .filter(|c| c.config.enabled)
            .ok_or(EngineError::UnknownChannel)
    }

    fn channel_of(&self, row: &ConversationRow) -> EngineResult<Arc<Channel>> {
        self.channel(&row.channel_key)
    }

    fn queue_of(&self, row: &ConversationRow) -> Option<QueueExtension> {
        row.queue_extension.as_deref().and_then(|q| q.parse().ok())
    }

    fn assigned_agent(&self, row: &ConversationRow) -> Option<AgentConfig> {
        if row.state != ConversationState::Active {
            return None;
        }
        let ext: AgentExtension = row.agent_extension.as_deref()?.parse().ok()?;
        self.directory().pbx().agent(&ext).cloned()
    }

    /// What agents are shown of a conversation first (its visitor card).
    pub async fn summary_of(&self, id: ConversationId) -> EngineResult<ConversationSummary> {
        let row = self.row(id).await?;
        self.summary(&row)
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

    /// Whether `row` is assigned to `agent` (active, or ended while theirs).
    fn is_assigned_to(&self, row: &ConversationRow, agent: &AgentExtension) -> bool {
        row.agent_extension.as_deref() == Some(agent.as_str())
    }

    /// Whether `agent` may look at this conversation: it is theirs, or it
    /// is ringing for them right now.
    fn concerns(&self, row: &ConversationRow, agent: &AgentExtension) -> bool {
        match row.state {
            ConversationState::Active => self.is_assigned_to(row, agent),
            ConversationState::Offered => self
                .live()
                .offers
                .get(&row.id)
                .is_some_and(|o| o.agents.contains(agent)),
            _ => false,
        }
    }

    fn position_of(&self, id: ConversationId) -> Option<u32> {
        self.live().positions.get(&id).copied()
    }

    fn agent_configs(&self, agents: &[AgentExtension]) -> Vec<AgentConfig> {
        let directory = self.directory();
        agents
            .iter()
            .filter_map(|a| directory.pbx().agent(a).cloned())
            .collect()
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
            .transition(id, expect, update, events)
            .await?;
        if let Some(last) = stored.as_ref().and_then(|s| s.last()) {
            self.inner.hub.publish(id, Signal::Committed(last.seq));
        }
        Ok(stored)
    }
}

fn event(body: EventBody) -> NewEvent {
    NewEvent::new(
        body.kind(),
        serde_json::to_value(&body).unwrap_or_else(|e| json!({ "error": e.to_string() })),
    )
}

/// A message from the agent in charge of `row`, under their name.
fn agent_message_view(row: &ConversationRow, body: String) -> MessageView {
    MessageView::new(
        Party::Agent,
        row.agent_name.clone().unwrap_or_default(),
        body,
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
