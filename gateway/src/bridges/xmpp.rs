//! The XMPP bridge: wires the `frontdesk-xmpp` component to the engine.
//!
//! Outbound, [`XmppAgents`] is the engine's [`AgentChannel`] for agents
//! with a JID: it turns offers, messages and endings into component
//! commands, each conversation speaking from its own visitor address.
//! Messages go through a persisted outbox (deleted once the XMPP server
//! confirmed them, or the agent's client sent its XEP-0184 receipt), so
//! neither an XMPP server restart nor a gateway crash loses what the
//! engine asked to send, and a message the agent's client acknowledged is
//! never sent again by a node taking over a dead one's outbox. Inbound, [`run_events`] turns the
//! component's events into engine calls: replies, typing, receipts,
//! presence, and agent commands. Stanzas about one chat (messages, files,
//! typing, receipts and markers, bounces) and upload slot requests go to
//! lanes (`super::lanes`, keyed by the visitor address or the agent): one
//! chat's in the order they arrived, different chats' side by side. The
//! connection's events, the server's confirmations and presence stay in
//! the reading loop, with `nodes`; an agent becoming less than available
//! first waits for the lanes to finish what came before it.
//!
//! Agents send files with their client's HTTP File Upload (XEP-0363): the
//! component advertises the largest channel file limit; a slot request
//! becomes an engine upload slot whose PUT URL is `PUBLIC_URL/upload/…`
//! (see `api::upload`) and whose GET URL is the file's signed agent link.
//! When the agent then sends that link in a chat of theirs (as clients do,
//! in the body and as an out-of-band URL), the file becomes their message
//! with an attachment, which the visitor downloads with their token. Any
//! other link is ordinary text.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use frontdesk_xmpp::{
    Availability, BareJid, ChatState, Command, ComponentConfig, Event, Jid, OutboxId,
    OutgoingMessage, UploadRefusal, VisitorAddress,
};
use pbx_adapter::queue::AgentConfig;
use serde::{Deserialize, Serialize};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use tracing::{debug, info, info_span, warn, Instrument};

use super::agent_text::{self, handle_agent_text, refusal, AgentTextOutcome, NO_CHAT};
use super::lanes::Lanes;
use crate::config::{XmppConfig, XmppConnection};
use crate::domain::{ConversationId, ConversationState, FileId, Party};
use crate::engine::{
    AgentChannel, AgentChannelError, AgentFileOutcome, AgentStatus, ConversationSummary, Delivery,
    Engine, EngineError, MessageView, Notice, Offer, ReceiptStatus, SlotId, SlotRefusal,
};
use crate::files::{DisplayName, Files, Signature};
use crate::store::{DeliveryRow, Forget, Store};

mod nodes;

/// The visitor address of a conversation: `visitor-<uuid hex>`.
pub fn visitor_address(id: ConversationId) -> VisitorAddress {
    VisitorAddress::new(super::visitor_user(id)).expect("a hex UUID forms a valid address")
}

/// The conversation behind a visitor address, if it is one of ours.
pub fn conversation_of(address: &VisitorAddress) -> Option<ConversationId> {
    super::conversation_of_user(address.as_str())
}

/// Stanza ids of visitor messages carry their seq, so receipts and
/// markers map back to "delivered/read up to seq N".
fn stanza_id(seq: i64) -> String {
    format!("m-{seq}")
}

fn seq_of(stanza_id: &str) -> Option<i64> {
    stanza_id.strip_prefix("m-")?.parse().ok()
}

/// How often expired upload slots (and files uploaded but never sent) are
/// cleared.
const UPLOAD_SWEEP_EVERY: Duration = Duration::from_secs(60);

/// The PUT URL of an upload slot: `PUBLIC_URL/upload/{slot}/{name}`, built
/// from the file's signed link `PUBLIC_URL/files/{id}?…` (so it follows the
/// public URL, path prefix included); the name is percent-encoded.
fn put_url(get_url: &url::Url, slot: &SlotId, name: &DisplayName) -> Option<url::Url> {
    let mut url = get_url.clone();
    url.set_query(None);
    url.path_segments_mut()
        .ok()?
        .pop()
        .pop()
        .push("upload")
        .push(slot.as_str())
        .push(name.as_str());
    Some(url)
}

/// A message as persisted in the outbox until the server confirms it.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct StoredMessage {
    from: String,
    nick: Option<String>,
    to: String,
    body: String,
    id: String,
    oob_url: Option<String>,
    request_receipt: bool,
    /// The visitor message's delivery it makes, cleared once confirmed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    delivery: Option<StoredDelivery>,
}

/// A [`DeliveryRow`] in an outbox payload.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct StoredDelivery {
    conversation: String,
    seq: i64,
    agent: String,
}

impl StoredDelivery {
    fn of(row: &DeliveryRow) -> Self {
        Self {
            conversation: row.conversation.to_string(),
            seq: row.seq,
            agent: row.agent_extension.clone(),
        }
    }

    fn row(&self) -> Option<DeliveryRow> {
        Some(DeliveryRow {
            conversation: self.conversation.parse().ok()?,
            seq: self.seq,
            agent_extension: self.agent.clone(),
        })
    }
}

/// A typing notice a node without the connection leaves for the holder
/// (sent if still fresh, never kept once sent).
#[derive(Debug, Serialize, Deserialize)]
struct StoredChatState {
    from: String,
    to: String,
    composing: bool,
    gone: bool,
    at: i64,
}

/// One outbox row's payload (a row of an earlier version is a message).
#[derive(Debug, Serialize, Deserialize)]
#[serde(untagged)]
enum Outboxed {
    Message(StoredMessage),
    ChatState(StoredChatState),
}

/// A typing notice older than this is not worth sending any more.
const CHAT_STATE_FRESH_MS: i64 = 10_000;

/// The outbox row of a visitor message's delivery: the same on every node
/// and at every replay, so it is kept (and sent) once.
fn delivery_row_id(delivery: &DeliveryRow) -> String {
    format!(
        "d-{}-{}-{}",
        delivery.conversation, delivery.seq, delivery.agent_extension
    )
}

/// The engine's agent channel for XMPP agents.
pub struct XmppAgents {
    commands: mpsc::Sender<Command>,
    store: Store,
    /// Signs the download links of visitors' files.
    files: Files,
    next_outbox: AtomicI64,
    /// Outbox ids sent but not yet confirmed → what to clear once they are.
    unconfirmed: Mutex<HashMap<OutboxId, Unconfirmed>>,
    /// This node, as outbox claimer and lease holder (new at every start).
    node: String,
    mode: XmppConnection,
    /// Whether this node hands stanzas to its own component (every node
    /// with `every_node`, the lease holder with `one_node`); else they go
    /// through the outbox to the node that holds the connection.
    sending: AtomicBool,
    /// Held while rows are claimed and handed to the component, so rows
    /// claimed together, or written just after, reach it in order.
    order: tokio::sync::Mutex<()>,
    /// Whether this node may take another node's lapsed lease for death
    /// and send its stanzas again. Kept by `nodes`.
    peers: nodes::Judgement,
    /// Alone: whether what the outbox held unclaimed (an earlier run's, or
    /// rows kept while not sending or before a reconnect) was taken over
    /// since; then a send needs no claim before it. Cleared by whatever
    /// can leave such rows.
    caught_up: AtomicBool,
}

/// Where a sent stanza is kept until the server confirms it: its outbox
/// row, and the visitor message's delivery it makes, if it does.
struct Unconfirmed {
    row: String,
    delivery: Option<DeliveryRow>,
}

/// Everything [`run_events`] needs, returned by [`start`].
pub struct XmppRuntime {
    pub agents: Arc<XmppAgents>,
    events: mpsc::Receiver<Event>,
    component: JoinHandle<()>,
    offers_when_away: bool,
    shutdown: CancellationToken,
}

/// Starts the component (it connects and reconnects on its own).
/// `clustered`: other nodes share the database (`[cluster] enabled`);
/// else every other node id in it is an earlier run of this one.
pub fn start(
    config: &XmppConfig,
    store: Store,
    files: Files,
    clustered: bool,
    shutdown: CancellationToken,
) -> anyhow::Result<XmppRuntime> {
    let domain = BareJid::new(&config.domain)
        .map_err(|e| anyhow::anyhow!("xmpp.domain {:?}: {e}", config.domain))?;
    let mut component = ComponentConfig::new(domain, &config.server, config.secret.expose());
    component.tls = config
        .component_tls()
        .map_err(|(key, message)| anyhow::anyhow!("{key}: {message}"))?;
    component.ping_interval = Duration::from_secs(config.ping_interval_secs.max(1));
    component.reconnect_max =
        Duration::from_secs(config.reconnect_max_secs.max(1)).max(component.reconnect_initial);
    let node = uuid::Uuid::new_v4().simple().to_string();
    component.node_tag = node.clone();
    // One node on SQLite: it always holds the connection. On PostgreSQL
    // with `one_node`, the lease decides (see `nodes`).
    let elected = config.connection == XmppConnection::OneNode
        && store.backend() == crate::store::Backend::Postgres;
    component.start_online = !elected;
    let alone = !clustered || store.backend() == crate::store::Backend::Sqlite;
    let (commands, commands_rx) = mpsc::channel(1024);
    let (handle, events) = frontdesk_xmpp::spawn(component, commands_rx, shutdown.clone())?;
    Ok(XmppRuntime {
        agents: Arc::new(XmppAgents {
            commands,
            store,
            files,
            next_outbox: AtomicI64::new(1),
            unconfirmed: Mutex::default(),
            node,
            mode: config.connection,
            sending: AtomicBool::new(!elected),
            order: tokio::sync::Mutex::new(()),
            // One node (SQLite, or no cluster): no peer to wait for.
            peers: nodes::Judgement::new(alone),
            caught_up: AtomicBool::new(false),
        }),
        events,
        component: handle,
        offers_when_away: config.offers_when_away,
        shutdown,
    })
}

impl XmppAgents {
    async fn command(&self, command: Command) -> Result<(), AgentChannelError> {
        self.commands
            .send(command)
            .await
            .map_err(|_| AgentChannelError("the XMPP component has stopped".into()))
    }

    /// See [`nodes::Judgement`].
    fn may_judge_peers(&self) -> bool {
        self.peers.may_judge()
    }

    /// Whether this node hands stanzas to its own component now.
    fn sending(&self) -> bool {
        self.sending.load(Ordering::SeqCst)
    }

    /// The node that keeps this row, if this one sends.
    fn claimer(&self) -> Option<&str> {
        self.sending().then_some(self.node.as_str())
    }

    /// Tells the node holding the connection that the outbox has rows for
    /// it (nothing to do when this node sends itself).
    async fn wake_holder(&self) {
        if let Err(e) = self.store.xmpp_notify(nodes::WAKE).await {
            debug!(error = %e, "cannot wake the connection holder; it finds the rows on its next round");
        }
    }

    fn encode(what: &Outboxed) -> Result<String, AgentChannelError> {
        serde_json::to_string(what)
            .map_err(|e| AgentChannelError(format!("cannot encode a message: {e}")))
    }

    /// Persists, then hands a message to the component (or to the node
    /// that holds the connection).
    async fn send(&self, message: StoredMessage) -> Result<(), AgentChannelError> {
        let row = uuid::Uuid::now_v7().to_string();
        let payload = Self::encode(&Outboxed::Message(message.clone()))?;
        self.store
            .xmpp_outbox_put(&row, &payload, self.claimer())
            .await
            .map_err(|e| AgentChannelError(format!("cannot persist a message: {e}")))?;
        if !self.sending() {
            self.fell_behind();
            self.wake_holder().await;
            return Ok(());
        }
        let _order = self.order.lock().await;
        self.older_first().await;
        self.dispatch_stored(row, message).await
    }

    /// With one connection for all nodes, what other nodes left for it
    /// goes before what this node sends now (a visitor's message written
    /// through another node just before must not be overtaken). Alone, the
    /// same for what an earlier run (killed with stanzas unsent) or this
    /// node before a reconnect left: between the connection coming back
    /// and the take-over, a new message would go first.
    ///
    /// Alone, once that take-over succeeded nothing can be left until
    /// [`fell_behind`](Self::fell_behind) says so, so sends stop claiming
    /// first (a write and a commit each, under `order`: it made every send
    /// to agents wait for the one before).
    async fn older_first(&self) {
        let shared = self.mode == XmppConnection::OneNode
            && self.store.backend() == crate::store::Backend::Postgres;
        let alone = self.peers.alone() && !shared;
        if alone && self.caught_up.load(Ordering::SeqCst) {
            return;
        }
        if shared || alone {
            // Set before the claim, so a row left while it runs (which
            // clears it) is claimed by the next send.
            self.caught_up.store(alone, Ordering::SeqCst);
            if let Err(e) = self.take_over_in_order().await {
                self.fell_behind();
                debug!(error = %e, "cannot take the outbox over first");
            }
        }
    }

    /// Rows may wait in the outbox unclaimed (kept while not sending, or
    /// the connection dropped): the next send takes them over first.
    fn fell_behind(&self) {
        self.caught_up.store(false, Ordering::SeqCst);
    }

    /// Keeps a visitor message for `delivery` in the outbox (once, under
    /// the delivery's own row id) and sends it if this node sends and
    /// nobody alive has it already.
    async fn send_delivery(
        &self,
        delivery: &DeliveryRow,
        mut message: StoredMessage,
    ) -> Result<(), AgentChannelError> {
        let row = delivery_row_id(delivery);
        message.delivery = Some(StoredDelivery::of(delivery));
        let payload = Self::encode(&Outboxed::Message(message.clone()))?;
        let persist = |e: crate::store::StoreError| {
            AgentChannelError(format!("cannot persist a message: {e}"))
        };
        let stored = self
            .store
            .xmpp_outbox_put_delivery(&row, &payload, self.claimer(), delivery)
            .await
            .map_err(persist)?;
        if !self.sending() {
            if stored {
                self.fell_behind();
                self.wake_holder().await;
            }
            return Ok(());
        }
        if !stored {
            if self.in_hand(&row) {
                return Ok(());
            }
            // Kept already: by a node that died (take it over), by a live
            // one (it sends it), or delivered meanwhile (gone).
            if !self.may_judge_peers()
                || !self
                    .store
                    .xmpp_outbox_claim_one(&row, &self.node)
                    .await
                    .map_err(persist)?
            {
                return Ok(());
            }
        }
        let _order = self.order.lock().await;
        self.older_first().await;
        self.dispatch_stored(row, message).await
    }

    /// Whether outbox row `row` is with this node's component already.
    fn in_hand(&self, row: &str) -> bool {
        self.unconfirmed
            .lock()
            .expect("outbox lock poisoned")
            .values()
            .any(|u| u.row == row)
    }

    async fn dispatch_stored(
        &self,
        row: String,
        message: StoredMessage,
    ) -> Result<(), AgentChannelError> {
        let bad = |what: &str| AgentChannelError(format!("stored message has a bad {what}"));
        let outbox_id = self.next_outbox.fetch_add(1, Ordering::Relaxed);
        let delivery = message.delivery.as_ref().and_then(StoredDelivery::row);
        let outgoing = OutgoingMessage {
            outbox_id,
            from: VisitorAddress::new(message.from).map_err(|_| bad("sender"))?,
            nick: message.nick,
            to: Jid::new(&message.to).map_err(|_| bad("recipient"))?,
            body: message.body,
            id: message.id,
            oob_url: message.oob_url,
            request_receipt: message.request_receipt,
        };
        self.unconfirmed
            .lock()
            .expect("outbox lock poisoned")
            .insert(outbox_id, Unconfirmed { row, delivery });
        self.command(Command::SendMessage(outgoing)).await
    }

    /// Claims and sends what nobody alive has: rows a node without the
    /// connection left, a dead node's unconfirmed ones, a previous run's.
    /// Typing notices are sent (if fresh) and cleared at once.
    async fn take_over(&self) -> anyhow::Result<usize> {
        let _order = self.order.lock().await;
        self.take_over_in_order().await
    }

    /// [`take_over`](Self::take_over), with `order` held.
    async fn take_over_in_order(&self) -> anyhow::Result<usize> {
        if !self.may_judge_peers() {
            return Ok(0);
        }
        let sole = self.mode == XmppConnection::OneNode;
        let claimed = self.store.xmpp_outbox_claim(&self.node, sole).await?;
        let count = claimed.len();
        for (row, payload) in claimed {
            if self.in_hand(&row) {
                continue;
            }
            match serde_json::from_str::<Outboxed>(&payload) {
                Ok(Outboxed::Message(message)) => self.dispatch_stored(row, message).await?,
                Ok(Outboxed::ChatState(notice)) => {
                    self.store.xmpp_outbox_done(&row).await?;
                    if crate::store::now_ms() - notice.at < CHAT_STATE_FRESH_MS {
                        if let (Ok(from), Ok(to)) =
                            (VisitorAddress::new(notice.from), Jid::new(&notice.to))
                        {
                            let state = match (notice.gone, notice.composing) {
                                (true, _) => ChatState::Gone,
                                (false, true) => ChatState::Composing,
                                (false, false) => ChatState::Paused,
                            };
                            self.command(Command::ChatState { from, to, state }).await?;
                        }
                    }
                }
                Err(e) => {
                    warn!(row, error = %e, "dropping an unreadable outbox entry");
                    self.store.xmpp_outbox_done(&row).await?;
                }
            }
        }
        Ok(count)
    }

    /// This node stops sending: what its component had unconfirmed goes
    /// back to the outbox for the node that sends now.
    async fn step_down(&self) {
        self.sending.store(false, Ordering::SeqCst);
        self.fell_behind();
        let _ = self.command(Command::SetOnline(false)).await;
        self.unconfirmed
            .lock()
            .expect("outbox lock poisoned")
            .clear();
        match self.store.xmpp_outbox_release(&self.node).await {
            Ok(0) => {}
            Ok(released) => {
                info!(released, "unconfirmed stanzas handed back to the outbox");
                self.wake_holder().await;
            }
            Err(e) => {
                warn!(error = %e, "cannot hand stanzas back; they are taken over once this node's lease lapses")
            }
        }
    }

    /// The server confirmed a stanza: what was kept for it.
    fn confirmed(&self, outbox_id: OutboxId) -> Option<Unconfirmed> {
        self.unconfirmed
            .lock()
            .expect("outbox lock poisoned")
            .remove(&outbox_id)
    }

    /// The file behind `link` if it is one of our signed file links (exact
    /// place, valid signature, not expired), as an upload's GET URL is.
    fn file_of_link(&self, link: &str) -> Option<FileId> {
        let url = url::Url::parse(link.trim()).ok()?;
        let id: FileId = url.path_segments()?.next_back()?.parse().ok()?;
        let query = |key: &str| {
            url.query_pairs()
                .find(|(k, _)| k == key)
                .map(|(_, v)| v.into_owned())
        };
        let presented = Signature {
            expires: query("expires")?.parse().ok()?,
            sig: query("sig")?,
        };
        let mut ours = self.files.agent_link_until(&id, presented.expires).ok()?;
        ours.set_query(None);
        let mut theirs = url.clone();
        theirs.set_query(None);
        let valid = matches!(self.files.verify_link(&id, &presented), Ok(Ok(())));
        (valid && ours == theirs).then_some(id)
    }

    /// A visitor's message as the agent gets it: its text, or for a file
    /// its name, size and a signed download link, also given as an
    /// out-of-band URL (XEP-0066) so clients preview images.
    fn visitor_message(
        &self,
        conversation: ConversationId,
        to: &BareJid,
        message: &MessageView,
    ) -> StoredMessage {
        let (body, oob_url) = match &message.attachment {
            Some(file) => match self.files.agent_link(&file.id) {
                Ok(url) => (
                    format!("{} ({} bytes): {url}", file.name, file.size),
                    Some(url.to_string()),
                ),
                Err(e) => {
                    warn!(error = %e, "cannot sign a file link");
                    (format!("{} (file; link unavailable)", file.name), None)
                }
            },
            None => (message.body.clone(), None),
        };
        StoredMessage {
            from: visitor_address(conversation).as_str().to_owned(),
            nick: None,
            to: to.to_string(),
            body,
            id: stanza_id(message.seq),
            oob_url,
            request_receipt: true,
            delivery: None,
        }
    }

    /// A plain text from a conversation's address to an agent.
    async fn tell(
        &self,
        conversation: ConversationId,
        nick: Option<&str>,
        to: &BareJid,
        body: String,
    ) -> Result<(), AgentChannelError> {
        self.send(StoredMessage {
            from: visitor_address(conversation).as_str().to_owned(),
            nick: nick.map(str::to_owned),
            to: to.to_string(),
            body,
            id: format!("n-{}", uuid::Uuid::now_v7().simple()),
            oob_url: None,
            request_receipt: false,
            delivery: None,
        })
        .await
    }

    async fn chat_state(&self, conversation: ConversationId, to: &BareJid, state: ChatState) {
        if !self.sending() {
            let notice = Outboxed::ChatState(StoredChatState {
                from: visitor_address(conversation).as_str().to_owned(),
                to: to.to_string(),
                composing: state == ChatState::Composing,
                gone: state == ChatState::Gone,
                at: crate::store::now_ms(),
            });
            let row = uuid::Uuid::now_v7().to_string();
            let stored = match Self::encode(&notice) {
                Ok(payload) => self
                    .store
                    .xmpp_outbox_put(&row, &payload, None)
                    .await
                    .is_ok(),
                Err(_) => false,
            };
            if stored {
                self.wake_holder().await;
            } else {
                debug!("chat state not handed to the connection holder");
            }
            return;
        }
        let command = Command::ChatState {
            from: visitor_address(conversation),
            to: Jid::from(to.clone()),
            state,
        };
        if let Err(e) = self.command(command).await {
            debug!(error = %e, "chat state not sent");
        }
    }
}

#[async_trait]
impl AgentChannel for XmppAgents {
    async fn offer(&self, offer: Offer) -> Result<(), AgentChannelError> {
        let summary = &offer.conversation;
        let card = agent_text::offer_card(summary);
        for agent in offer.agents.iter() {
            let Some(jid) = &agent.xmpp else { continue };
            self.tell(summary.id, Some(&summary.visitor_name), jid, card.clone())
                .await?;
            for message in offer.history.iter().filter(|m| m.sender == Party::Visitor) {
                self.send(self.visitor_message(summary.id, jid, message))
                    .await?;
            }
        }
        Ok(())
    }

    async fn withdraw(
        &self,
        conversation: &ConversationSummary,
        agents: &[AgentConfig],
        taken_by: Option<&str>,
    ) -> Result<(), AgentChannelError> {
        let text = agent_text::withdrawn(taken_by);
        for jid in agents.iter().filter_map(|a| a.xmpp.as_ref()) {
            self.tell(conversation.id, None, jid, text.clone()).await?;
        }
        Ok(())
    }

    async fn notify(
        &self,
        agent: &AgentConfig,
        conversation: &ConversationSummary,
        notice: Notice<'_>,
    ) -> Result<Delivery, AgentChannelError> {
        let Some(jid) = &agent.xmpp else {
            return Ok(Delivery::Done);
        };
        match notice {
            Notice::Message(message) => {
                // Kept in the engine's delivery outbox, not ours: cleared
                // when the server confirms it (`Event::Sent`), re-sent after
                // a restart.
                let delivery = DeliveryRow {
                    conversation: conversation.id,
                    seq: message.seq,
                    agent_extension: agent.extension.to_string(),
                };
                let stanza = self.visitor_message(conversation.id, jid, message);
                self.send_delivery(&delivery, stanza).await?;
                return Ok(Delivery::Pending);
            }
            Notice::Typing(composing) => {
                let state = if composing {
                    ChatState::Composing
                } else {
                    ChatState::Paused
                };
                self.chat_state(conversation.id, jid, state).await;
            }
            Notice::Ended(by) => {
                let text = agent_text::ended(by);
                self.tell(conversation.id, None, jid, text.to_owned())
                    .await?;
                self.chat_state(conversation.id, jid, ChatState::Gone).await;
            }
        }
        Ok(Delivery::Done)
    }
}

/// Reads the component's events and drives the engine until shutdown.
/// Also tells the component who the agents are, asks for presence
/// subscriptions not yet approved, and replays the persisted outbox.
pub fn run_events(runtime: XmppRuntime, engine: Engine) -> JoinHandle<()> {
    tokio::spawn(
        async move {
            let XmppRuntime {
                agents,
                mut events,
                component,
                offers_when_away,
                shutdown,
            } = runtime;
            let mut changes = engine.directory_changes();
            changes.mark_unchanged();
            if let Err(e) = introduce_agents(&agents, &engine).await {
                warn!(error = %e, "cannot set up agent subscriptions");
            }
            let mut nodes = nodes::Nodes::new(&agents, engine.store().backend());
            nodes.start(&agents, &engine).await;
            let (listener, mut signals) = nodes::listen(engine.store().clone(), shutdown.clone());
            let mut tick = tokio::time::interval(nodes::TICK);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            let bridge = Arc::new(Inbound {
                agents: agents.clone(),
                engine: engine.clone(),
                offers_when_away,
                error_ids: AtomicI64::new(-1),
            });
            let lanes = {
                let bridge = bridge.clone();
                Lanes::new(LANES, LANE_DEPTH, move |event| {
                    let bridge = bridge.clone();
                    async move { bridge.handle(event).await }
                })
            };
            let mut sweep = tokio::time::interval(UPLOAD_SWEEP_EVERY);
            let mut known: HashSet<BareJid> =
                engine.agents().into_iter().filter_map(|a| a.xmpp).collect();
            loop {
                tokio::select! {
                    event = events.recv() => match event {
                        Some(event) => {
                            match &event {
                                Event::Connected => nodes.connected(&agents).await,
                                Event::Disconnected { .. } => {
                                    agents.fell_behind();
                                    nodes.disconnected()
                                }
                                Event::StrayPong { id } => nodes.stray_pong(&agents, id).await,
                                _ => {}
                            }
                            match lane_of(&event) {
                                Some(key) => lanes.push(&key, event).await,
                                None => {
                                    if overtakes_lanes(&event) {
                                        lanes.fence().await;
                                    }
                                    bridge.handle(event).await
                                }
                            }
                        }
                        None => break,
                    },
                    _ = tick.tick() => nodes.tick(&agents, &engine).await,
                    Some(signal) = signals.recv() => nodes.signal(signal, &agents, &engine).await,
                    Ok(()) = changes.changed() => {
                        if let Err(e) = refresh_agents(&agents, &engine, &mut known).await {
                            warn!(error = %e, "cannot give the component the new agents");
                        }
                    }
                    _ = sweep.tick() => {
                        match engine.sweep_upload_slots(agents.files.store()).await {
                            Ok(0) => {}
                            Ok(swept) => debug!(slots = swept, "expired upload slots cleared"),
                            Err(e) => warn!(error = %e, "cannot sweep expired upload slots"),
                        }
                    }
                }
            }
            // What the lanes hold was read before the component stopped:
            // stored (and acknowledged, if the component still can) first.
            lanes.close().await;
            if let Err(e) = component.await {
                warn!(error = %e, "the XMPP component task failed");
            }
            nodes.stop(&agents).await;
            if let Err(e) = listener.await {
                warn!(error = %e, "the XMPP listener task failed");
            }
        }
        .instrument(info_span!("xmpp_bridge")),
    )
}

/// How many lanes agents' chat traffic is spread over, and how many
/// stanzas each queues before the reader waits for it.
const LANES: usize = 16;
const LANE_DEPTH: usize = 64;

/// The lane of a stanza about one conversation (its visitor address), or
/// of an agent's upload slot request (the agent): handled there, in order
/// with the others of its key. `None`: handled inline, in the reader's
/// order, between `nodes`' rounds: the connection's own events, the
/// server's confirmations (`Sent` takes a stanza from `unconfirmed` and
/// clears its outbox row in one go, so no take-over round of this loop
/// sees one without the other), and presence and subscriptions (cheap,
/// and one agent's in order).
fn lane_of(event: &Event) -> Option<String> {
    match event {
        Event::AgentMessage { to, .. }
        | Event::AgentChatState { to, .. }
        | Event::AgentReceipt { to, .. }
        | Event::AgentDisplayed { to, .. } => Some(to.as_str().to_owned()),
        Event::DeliveryFailed { from, .. } => Some(from.as_str().to_owned()),
        Event::UploadSlotRequest { from, .. } => Some(from.to_bare().to_string()),
        Event::Connected
        | Event::Disconnected { .. }
        | Event::Sent { .. }
        | Event::StrayPong { .. }
        | Event::AgentPresence { .. }
        | Event::SubscriptionChanged { .. } => None,
    }
}

/// Whether an inline event must wait for what the lanes hold: an agent
/// becoming less than available re-queues their chats and declines their
/// offers, which must not overtake the messages they sent before leaving.
fn overtakes_lanes(event: &Event) -> bool {
    matches!(event, Event::AgentPresence { availability, .. } if *availability != Availability::Available)
}

async fn introduce_agents(agents: &XmppAgents, engine: &Engine) -> anyhow::Result<()> {
    // Nicks live in the component's memory: give them back after a restart.
    let live = engine
        .store()
        .conversations_in_states(&[
            ConversationState::Queued,
            ConversationState::Offered,
            ConversationState::Active,
        ])
        .await?;
    for row in live {
        let command = Command::SetNick {
            address: visitor_address(row.id),
            nick: row.visitor_name,
        };
        agents.command(command).await?;
    }
    refresh_agents(agents, engine, &mut HashSet::new()).await
}

/// Gives the component the agents in force and the file size it may
/// offer, and asks for the presence of agents not in `known` (all of them
/// at start, the new ones after a directory change); `known` becomes the
/// agents in force.
async fn refresh_agents(
    agents: &XmppAgents,
    engine: &Engine,
    known: &mut HashSet<BareJid>,
) -> anyhow::Result<()> {
    let upload_limit = engine.largest_file_limit();
    let offer_uploads = Command::SetUploadLimit((upload_limit > 0).then_some(upload_limit));
    agents.command(offer_uploads).await?;
    let jids: Vec<BareJid> = (engine.agents().into_iter())
        .filter_map(|a| a.xmpp)
        .collect();
    agents.command(Command::SetAgents(jids.clone())).await?;
    let subscribed = engine.store().xmpp_subscribed_agents().await?;
    let new: Vec<BareJid> = jids
        .iter()
        .filter(|j| !known.contains(*j))
        .cloned()
        .collect();
    *known = jids.into_iter().collect();
    for jid in new {
        let command = if subscribed.contains(&jid.to_string()) {
            Command::Probe { agent: jid }
        } else {
            Command::Subscribe { agent: jid }
        };
        agents.command(command).await?;
    }
    Ok(())
}

struct Inbound {
    agents: Arc<XmppAgents>,
    engine: Engine,
    offers_when_away: bool,
    /// Error replies are not persisted; they use negative outbox ids.
    error_ids: AtomicI64,
}

impl Inbound {
    async fn handle(&self, event: Event) {
        match event {
            Event::Connected => {
                metrics::gauge!("frontdesk_xmpp_connected").set(1.0);
                metrics::counter!("frontdesk_xmpp_connections_total").increment(1);
                info!("XMPP component connected");
            }
            Event::Disconnected { reason } => {
                metrics::gauge!("frontdesk_xmpp_connected").set(0.0);
                warn!(%reason, "XMPP component disconnected; reconnecting");
            }
            Event::Sent { outbox_id } => {
                if let Some(kept) = self.agents.confirmed(outbox_id) {
                    // The delivery and its row together, in the next group
                    // commit: the reader does not wait for it.
                    let sent = Forget {
                        delivery: kept.delivery,
                        xmpp_row: Some(kept.row),
                    };
                    if let Err(e) = self.engine.store().forget_soon(sent).await {
                        warn!(error = %e, "cannot clear a sent outbox entry; it will be re-sent");
                    }
                }
            }
            // Handled in `run_events`, with the other nodes.
            Event::StrayPong { .. } => {}
            Event::AgentMessage {
                from,
                to,
                id,
                body,
                receipt_requested,
                oob_url,
                ..
            } => {
                self.agent_message(from, to, id, body, oob_url, receipt_requested)
                    .await
            }
            Event::UploadSlotRequest {
                from,
                iq_id,
                filename,
                size,
                ..
            } => self.slot_request(from, iq_id, &filename, size).await,
            Event::AgentChatState { from, to, state } => {
                if let Some((conversation, agent)) = self.resolve(&from, &to) {
                    let composing = match state {
                        ChatState::Composing => true,
                        ChatState::Paused | ChatState::Active | ChatState::Inactive => false,
                        ChatState::Gone => return,
                    };
                    if let Err(e) = self
                        .engine
                        .agent_typing(conversation, &agent, composing)
                        .await
                    {
                        debug!(%conversation, error = %e, "agent typing not forwarded");
                    }
                }
            }
            Event::AgentReceipt { from, to, id } => {
                self.receipt(&from, &to, &id, ReceiptStatus::Delivered)
                    .await
            }
            Event::AgentDisplayed { from, to, id } => {
                self.receipt(&from, &to, &id, ReceiptStatus::Read).await
            }
            Event::DeliveryFailed {
                agent,
                from,
                condition,
                ..
            } => {
                warn!(%agent, %condition, "an agent could not be reached");
                if let Some((conversation, extension)) = self.resolve(&agent, &from) {
                    self.engine.offer_declined(conversation, &extension).await;
                }
            }
            Event::AgentPresence {
                agent,
                resource,
                availability,
            } => self.presence(&agent, resource, availability).await,
            Event::SubscriptionChanged { agent, subscribed } => {
                info!(%agent, subscribed, "agent presence subscription changed");
                if let Err(e) = self
                    .engine
                    .store()
                    .xmpp_set_subscribed(&agent.to_string(), subscribed)
                    .await
                {
                    warn!(error = %e, "cannot record a subscription");
                }
            }
        }
    }

    /// One client of an agent reported its presence (whichever node's
    /// connection it reached): recorded as the source
    /// `xmpp:<bare JID>/<resource>`; the agent is as available as their
    /// most available source. No resource: every client of theirs is gone.
    async fn presence(
        &self,
        agent: &BareJid,
        resource: Option<String>,
        availability: Availability,
    ) {
        let Some(config) = self.engine.agent_by_jid(agent) else {
            return;
        };
        let extension = config.extension.clone();
        let status = match availability {
            Availability::Available => AgentStatus::Available,
            Availability::Away if self.offers_when_away => AgentStatus::Available,
            Availability::Unavailable => AgentStatus::Offline,
            _ => AgentStatus::Busy,
        };
        let bare = format!("{}{agent}", nodes::PRESENCE_SOURCE);
        match resource {
            Some(resource) => {
                let source = format!("{bare}/{resource}");
                self.engine
                    .set_agent_presence(&extension, &source, status)
                    .await;
            }
            None if status != AgentStatus::Offline => {
                self.engine
                    .set_agent_presence(&extension, &bare, status)
                    .await;
            }
            None => {
                let sources = self
                    .engine
                    .store()
                    .xmpp_presence_sources(extension.as_str(), &bare, i64::MAX)
                    .await;
                let sources = match sources {
                    Ok(sources) => sources,
                    Err(e) => {
                        warn!(error = %e, "cannot read an agent's clients");
                        return;
                    }
                };
                let theirs = sources
                    .into_iter()
                    .filter(|s| s.len() == bare.len() || s[bare.len()..].starts_with('/'));
                for source in theirs {
                    self.engine
                        .set_agent_presence(&extension, &source, AgentStatus::Offline)
                        .await;
                }
            }
        }
    }

    /// The conversation and agent extension behind a stanza's addresses.
    fn resolve(
        &self,
        agent: &Jid,
        address: &VisitorAddress,
    ) -> Option<(ConversationId, pbx_adapter::AgentExtension)> {
        let conversation = conversation_of(address)?;
        let config = self.engine.agent_by_jid(&agent.to_bare())?;
        Some((conversation, config.extension.clone()))
    }

    async fn agent_message(
        &self,
        from: Jid,
        to: VisitorAddress,
        id: Option<String>,
        body: String,
        oob_url: Option<String>,
        receipt_requested: bool,
    ) {
        let Some((conversation, agent)) = self.resolve(&from, &to) else {
            self.reply_error(&from, &to, id, NO_CHAT).await;
            return;
        };
        let span = info_span!("agent_message", conversation = %conversation, agent = %agent);
        async {
            // An upload's GET URL, in the out-of-band data or as the body.
            let link = [oob_url.as_deref(), Some(body.as_str())]
                .into_iter()
                .flatten()
                .find_map(|l| {
                    self.agents
                        .file_of_link(l)
                        .map(|f| (l.trim().to_owned(), f))
                });
            let file = match link {
                Some((link, file_id)) => {
                    self.agent_file(conversation, &agent, file_id, &link, &body)
                        .await
                }
                None => None,
            };
            let result = match file {
                Some(result) => result,
                None => match handle_agent_text(
                    &self.engine,
                    conversation,
                    &agent,
                    &body,
                    id.as_ref().map(|id| format!("xmpp {id}")).as_deref(),
                )
                .await
                {
                    AgentTextOutcome::Delivered => Ok(()),
                    AgentTextOutcome::Replied(reply) => {
                        self.reply_text(&from, conversation, reply).await;
                        Ok(())
                    }
                    AgentTextOutcome::Refused(why, _) | AgentTextOutcome::Unavailable(why) => {
                        Err(why)
                    }
                },
            };
            match result {
                Ok(()) => {
                    if let (true, Some(id)) = (receipt_requested, id) {
                        let receipt = Command::Receipt {
                            from: to.clone(),
                            to: from.clone(),
                            id,
                        };
                        if let Err(e) = self.agents.command(receipt).await {
                            debug!(error = %e, "receipt not sent");
                        }
                    }
                }
                Err(text) => self.reply_error(&from, &to, id, &text).await,
            }
        }
        .instrument(span)
        .await
    }

    /// The agent sent the link of their upload `file_id`: the file becomes
    /// their message (and any other text in `body` a second one). `None`
    /// when it is not an upload of theirs waiting to be sent: then the
    /// message is ordinary text.
    async fn agent_file(
        &self,
        conversation: ConversationId,
        agent: &pbx_adapter::AgentExtension,
        file_id: FileId,
        link: &str,
        body: &str,
    ) -> Option<Result<(), String>> {
        let store = self.agents.files.store();
        let outcome = self
            .engine
            .attach_agent_file(conversation, agent, file_id, store)
            .await;
        match outcome {
            Ok(AgentFileOutcome::NotAnUpload) => None,
            Ok(AgentFileOutcome::TooLarge { limit }) => Some(Err(format!(
                "This file is larger than this chat's limit ({limit} bytes); it was not delivered."
            ))),
            Ok(AgentFileOutcome::Attached(_)) => {
                let text = body.trim();
                if text.is_empty() || text == link {
                    return Some(Ok(()));
                }
                Some(
                    self.engine
                        .agent_message(conversation, agent, text)
                        .await
                        .map(|_| ())
                        .map_err(refusal),
                )
            }
            Err(e) => Some(Err(refusal(e))),
        }
    }

    /// Grants or refuses an agent's upload slot request.
    async fn slot_request(&self, from: Jid, iq_id: String, filename: &str, size: u64) {
        let command = match self.grant_slot(&from, filename, size).await {
            Ok((put_url, get_url)) => Command::UploadSlot {
                to: from,
                iq_id,
                put_url,
                get_url,
            },
            Err((condition, text)) => {
                info!(agent = %from, ?condition, "upload slot refused");
                Command::UploadRefused {
                    to: from,
                    iq_id,
                    condition,
                    text: text.to_owned(),
                }
            }
        };
        if let Err(e) = self.agents.command(command).await {
            debug!(error = %e, "upload slot answer not sent");
        }
    }

    async fn grant_slot(
        &self,
        from: &Jid,
        filename: &str,
        size: u64,
    ) -> Result<(String, String), (UploadRefusal, &'static str)> {
        let Some(config) = self.engine.agent_by_jid(&from.to_bare()) else {
            return Err((UploadRefusal::Forbidden, ""));
        };
        let unavailable = (
            UploadRefusal::Unavailable,
            "Uploads are unavailable right now.",
        );
        let slot = self
            .engine
            .open_upload_slot(&config.extension, filename, size)
            .await
            .map_err(|e| {
                warn!(error = %e, "cannot grant an upload slot");
                unavailable
            })?
            .map_err(|refusal| match refusal {
                SlotRefusal::TooLarge { limit } => (
                    UploadRefusal::FileTooLarge {
                        max_file_size: limit,
                    },
                    "The file is larger than the size limit.",
                ),
                SlotRefusal::Empty => (UploadRefusal::NotAcceptable, "The file is empty."),
                SlotRefusal::TooManyOpen => (
                    UploadRefusal::ResourceConstraint,
                    "Too many uploads are waiting to be sent; send them or try later.",
                ),
                SlotRefusal::DangerousName(_) => (
                    UploadRefusal::NotAcceptable,
                    "Files with this extension cannot be sent (it runs code when opened).",
                ),
            })?;
        let get_url = self.agents.files.agent_link(&slot.file_id).map_err(|e| {
            warn!(error = %e, "cannot sign an upload's link");
            unavailable
        })?;
        let put_url =
            put_url(&get_url, &slot.id, &DisplayName::sanitize(filename)).ok_or(unavailable)?;
        info!(agent = %config.extension, size, "upload slot granted");
        Ok((put_url.to_string(), get_url.to_string()))
    }

    async fn receipt(&self, from: &Jid, to: &VisitorAddress, id: &str, status: ReceiptStatus) {
        let (Some((conversation, agent)), Some(seq)) = (self.resolve(from, to), seq_of(id)) else {
            return;
        };
        match self
            .engine
            .agent_receipt(conversation, &agent, status, seq)
            .await
        {
            Ok(()) => {
                // The agent's client has that message: nothing is left to
                // send it again for, whichever node's server confirmation
                // is still on its way (or died with it). Only that one
                // message: receipts are per message, and an earlier one
                // may still be on its way through another node.
                let delivery = DeliveryRow {
                    conversation,
                    seq,
                    agent_extension: agent.to_string(),
                };
                let received = Forget {
                    xmpp_row: Some(delivery_row_id(&delivery)),
                    delivery: Some(delivery),
                };
                if let Err(e) = self.engine.store().forget_soon(received).await {
                    debug!(%conversation, error = %e, "cannot clear a received message's outbox entry");
                }
            }
            Err(EngineError::NotYourConversation) => {
                debug!(%conversation, "receipt from an agent not in charge ignored");
            }
            Err(e) => warn!(%conversation, error = %e, "cannot record a receipt"),
        }
    }

    async fn reply_text(&self, to: &Jid, conversation: ConversationId, text: String) {
        if let Err(e) = self
            .agents
            .tell(conversation, None, &to.to_bare(), text)
            .await
        {
            warn!(error = %e, "cannot answer an agent command");
        }
    }

    async fn reply_error(&self, to: &Jid, from: &VisitorAddress, id: Option<String>, text: &str) {
        let command = Command::ErrorReply {
            outbox_id: self.error_ids.fetch_sub(1, Ordering::Relaxed),
            from: from.clone(),
            to: to.clone(),
            id,
            text: text.to_owned(),
        };
        if let Err(e) = self.agents.command(command).await {
            debug!(error = %e, "error reply not sent");
        }
    }
}

/// What an agent is told when their message was not delivered.
#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn put_urls_follow_the_public_url_and_encode_the_name() {
        let get =
            url::Url::parse("https://chat.example.com/base/files/abc?expires=1&sig=s").unwrap();
        let slot = SlotId::parse("0123456789abcdef0123456789abcdef").unwrap();
        let url = put_url(&get, &slot, &DisplayName::sanitize("my photo#1?.png")).unwrap();
        assert_eq!(
            url.as_str(),
            "https://chat.example.com/base/upload/0123456789abcdef0123456789abcdef/my%20photo%231_.png"
        );
    }

    #[test]
    fn visitor_addresses_map_back_to_their_conversation() {
        let id = ConversationId::new();
        let address = visitor_address(id);
        assert!(address.as_str().starts_with("visitor-"));
        assert_eq!(conversation_of(&address), Some(id));
        assert_eq!(
            conversation_of(&VisitorAddress::new("visitor-nope").unwrap()),
            None
        );
    }

    #[test]
    fn stanza_ids_carry_the_seq() {
        assert_eq!(seq_of(&stanza_id(42)), Some(42));
        assert_eq!(seq_of("n-abc"), None);
    }
}
