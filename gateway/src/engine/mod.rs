//! The chat engine: the domain core between visitors and agents.
//!
//! It drives the conversation state machine, queueing and offers, and writes
//! every change through the store before anyone is told of it. It knows
//! nothing of HTTP, XMPP or SIP: visitors reach it through the API layer
//! (`visitor.rs`), agents through an [`AgentChannel`] (outbound)
//! and `agent.rs` (inbound), which the protocol bridges call.
//! `dispatch.rs` makes offers, `requeue.rs` puts chats back when offers expire
//! or agents leave, `overflow.rs` runs max-wait timers, `upkeep.rs` tells
//! queue positions (coalesced) and runs dispatches that can wait.
//!
//! This file holds the `Engine` itself, its small cache of presence, and the
//! small helpers every operation shares (reading a row, committing a
//! transition and signalling it).

pub mod agent_channel;
pub mod channels;
pub mod commands;
pub mod directory;
pub mod hub;
pub mod live;
pub mod loopback;
pub mod pbx_sync;
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
mod timers;
mod upkeep;
mod visitor;

use std::collections::HashMap;
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
pub use channels::{Channel, Channels, Routed};
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
use crate::store::{
    ConversationIdentity, ConversationRow, ConversationUpdate, NewEvent, Store, StoreError,
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

/// What an agent's presence means for chats, least available first (an
/// agent is as available as their most available source says).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum AgentStatus {
    /// Gone: their chats go back to the queue.
    Offline,
    /// Keeps their chats, takes no new offers (away, do not disturb).
    Busy,
    /// Takes new offers.
    Available,
}

impl AgentStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            AgentStatus::Available => "available",
            AgentStatus::Busy => "busy",
            AgentStatus::Offline => "offline",
        }
    }

    pub fn parse(stored: &str) -> Option<AgentStatus> {
        [
            AgentStatus::Available,
            AgentStatus::Busy,
            AgentStatus::Offline,
        ]
        .into_iter()
        .find(|s| s.as_str() == stored)
    }
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
    /// This process, as lease holder and timer claimer (unique per start).
    node: String,
    /// Woken when this node sets a timer, so the timer loop sleeps anew.
    timers_changed: tokio::sync::Notify,
    /// See [`Engine::outbound`].
    outbound: [tokio::sync::Mutex<()>; OUTBOUND_STRIPES],

    /// Woken whenever an agent's status changes.
    status_changed: tokio::sync::Notify,
    /// What the upkeep task does next, and its wake-up (`upkeep.rs`).
    chores: Mutex<upkeep::Chores>,
    chores_due: tokio::sync::Notify,
    tasks: TaskTracker,
    shutdown: CancellationToken,
    limits: EngineSettings,
}

/// Bounds the engine enforces (from `[waiting]`), and whether other nodes
/// share its store (`[cluster]`).
#[derive(Debug, Clone, Copy, Default)]
pub struct EngineSettings {
    /// Other gateway nodes share this store: presence and ringing offers
    /// outlive this node's restart, and dispatch takes the cluster lease.
    pub clustered: bool,
    /// Most chats waiting in one queue; 0: no limit.
    pub max_waiting_per_queue: u32,
    /// Most chats one client may have waiting; 0: no limit.
    pub max_waiting_per_client: u32,
    /// How long a visitor token is valid after its chat started, in
    /// milliseconds; 0: for ever.
    pub visitor_token_ttl_ms: i64,
}

/// What this node keeps in memory: a cache of the agents' statuses it
/// has seen (for [`Engine::until_available`]). Everything dispatch decides
/// with is in the store (`store/dispatch.rs`), shared by every node.
#[derive(Default)]
struct LiveState {
    status: HashMap<AgentExtension, AgentStatus>,
}

/// Locks behind [`Engine::outbound`]: conversations share one by hash, so
/// the set stays small and needs no cleaning.
const OUTBOUND_STRIPES: usize = 1024;

impl Engine {
    /// An engine with an empty directory: [`provision`](Self::provision)
    /// or [`reload_directory`](Self::reload_directory) fills it.
    pub fn new(store: Store, agents: Arc<dyn AgentChannel>, limits: EngineSettings) -> Engine {
        let node = store.node_id().to_owned();
        Engine {
            inner: Arc::new(Inner {
                store,
                hub: Hub::default(),
                directory: arc_swap::ArcSwap::from_pointee(Directory::empty()),
                directory_version: tokio::sync::watch::Sender::new(0),
                agents,
                live: Mutex::new(LiveState::default()),
                dispatch_lock: tokio::sync::Mutex::new(()),
                node,
                timers_changed: tokio::sync::Notify::new(),
                outbound: std::array::from_fn(|_| tokio::sync::Mutex::new(())),
                status_changed: tokio::sync::Notify::new(),
                chores: Mutex::new(upkeep::Chores::default()),
                chores_due: tokio::sync::Notify::new(),
                tasks: TaskTracker::new(),
                shutdown: CancellationToken::new(),
                limits,
            }),
        }
    }

    /// This process's id among the nodes (lease holder, timer claimer,
    /// `/healthz`): new at every start.
    pub fn node_id(&self) -> &str {
        &self.inner.node
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

    /// Alone on its store, forgets the presence its bridges reported
    /// before it stopped (they report anew once connected) and puts
    /// conversations that were ringing back in their queues, to be offered
    /// again at once; in a cluster, where other nodes may be serving the
    /// same agents and ringing the same chats, presence stays and the
    /// offers' timers (rows) bring those chats back. Then forwards to agents in charge
    /// what they never got, and offers what waits. Active chats stay
    /// active.
    pub async fn recover(&self) -> EngineResult<()> {
        let mut requeued = 0;
        if !self.inner.limits.clustered {
            self.inner.store.clear_presence().await?;
            let offered = self
                .inner
                .store
                .conversations_in_states(&[ConversationState::Offered])
                .await?;
            for row in &offered {
                self.inner.store.take_offer(row.id).await?;
                self.cancel_timer(timers::OFFER, &row.id.to_string()).await;
                let update = ConversationUpdate {
                    state: Some(ConversationState::Queued),
                    ..Default::default()
                };
                self.inner
                    .store
                    .transition(row.id, Some(ConversationState::Offered), &update, &[])
                    .await?;
            }
            requeued = offered.len();
        }
        info!(requeued, "recovered waiting conversations");
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

    /// Every conversation waiting or under way (queued, offered, active).
    async fn open_conversations(&self) -> EngineResult<Vec<ConversationRow>> {
        Ok(self
            .inner
            .store
            .conversations_in_states(&[
                ConversationState::Queued,
                ConversationState::Offered,
                ConversationState::Active,
            ])
            .await?)
    }

    /// What never changes about a conversation (cached by the store).
    pub async fn identity(&self, id: ConversationId) -> EngineResult<Arc<ConversationIdentity>> {
        (self.inner.store.identity(id).await?).ok_or(EngineError::UnknownConversation)
    }

    /// A conversation as stored now.
    pub async fn conversation_row(&self, id: ConversationId) -> EngineResult<ConversationRow> {
        self.row(id).await
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
    async fn concerns(&self, row: &ConversationRow, agent: &AgentExtension) -> bool {
        match row.state {
            ConversationState::Active => self.is_assigned_to(row, agent),
            ConversationState::Offered => self.rings_for(row.id, agent).await,
            _ => false,
        }
    }

    /// Whether the offer of `id` rings for `agent` now.
    async fn rings_for(&self, id: ConversationId, agent: &AgentExtension) -> bool {
        match self.inner.store.offer_agents(id).await {
            Ok(agents) => agents.is_some_and(|a| a.iter().any(|a| a == agent.as_str())),
            Err(e) => {
                tracing::warn!(conversation = %id, error = %e, "cannot read an offer");
                false
            }
        }
    }

    async fn position_of(&self, id: ConversationId) -> Option<u32> {
        self.inner.store.position(id).await.ok().flatten()
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
        if let Some(stored) = &stored {
            self.announce(id, stored);
        }
        Ok(stored)
    }

    /// Tells this node's subscribers (the widgets' sockets) what was just
    /// committed: a single event with its frame, else the last seq.
    fn announce(&self, id: ConversationId, stored: &[StoredEvent]) {
        let signal = match stored {
            [] => return,
            [one] => match EventView::try_from(one).and_then(|view| {
                serde_json::to_string(&view).map_err(|e| StoreError::Corrupt(e.to_string()))
            }) {
                Ok(frame) => Signal::Stored {
                    seq: one.seq,
                    frame: frame.into(),
                },
                Err(_) => Signal::Committed(one.seq),
            },
            [.., last] => Signal::Committed(last.seq),
        };
        self.inner.hub.publish(id, signal);
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
