//! The SIP MESSAGE bridge: wires the `pbx_adapter::sip` user agent to the
//! engine, for agents who chat from a SIP softphone.
//!
//! Outbound, [`SipAgents`] is the engine's `AgentChannel` for agents with a
//! SIP URI: each conversation writes from `sip:visitor-…@DOMAIN` to the
//! agent's address of record through the PBX's proxy. A message the proxy
//! or the agent's phone refuses (408, 480, 404, 5xx) is not silently lost:
//! a ringing offer counts as declined, and an agent whose active chat
//! cannot be reached is treated as gone, so the chat goes back to the
//! queue with its history. The user agent sends a chat's messages to an
//! agent one at a time, in order, and after a failure none until the next
//! offer to that agent resumes them, so the agent never reads a message
//! after a gap; each visitor message keeps one Call-ID for that agent
//! (its forward, a replay after a restart, an offer's history), so the
//! phone can tell a copy. Inbound, [`run_events`] answers an agent's
//! MESSAGE with 200 only once the engine stored it, and a refused one with
//! the status that says why (403 another agent's chat, 404 no such chat,
//! 410 ended, 400 text refused, 500 the gateway failed, 503 the database
//! is away for a moment: only the last two are worth a retry). Agents'
//! MESSAGEs and typing are handled on lanes (`super::lanes`), one chat's
//! in the order they arrived and different chats' side by side; answers
//! to this node's own MESSAGEs and reachability stay in the reader, and a
//! lost agent waits for the lanes to finish what they sent before.
//!
//! Several nodes on one database each run this bridge and their user
//! agent behind the proxy's dispatcher, and any of them may get any agent
//! MESSAGE; what one node keeps in memory never decides for another:
//! - an agent message is stored once per request identity (Call-ID, CSeq,
//!   From tag) by the engine, in the database, so a copy the dispatcher
//!   sent to another node (the first one died, or timed out) gets the
//!   first one's answer there too; the user agent's own memory of recent
//!   requests only spares the database a copy that came back to it;
//! - a MESSAGE this node sent is answered to this node (responses follow
//!   `Via`), so `in_flight`, which turns that answer into the delivery
//!   outbox's confirmation, is this node's own business;
//! - agents' reachability is presence of the one source `sip` in the
//!   store, which the elected prober (`prober`) and a failed message on
//!   any node set, and every probe's result is compared with what is
//!   stored, not with what this node last heard;
//! - a failed message stops the chat's messages to that agent on the
//!   node that sent it; that node lets them go again once the chat is no
//!   longer the agent's (re-queued or declined), since the next offer,
//!   which repeats the history, may be made by another node.
//!
//! Who is an agent is the user agent's decision, before anything reaches
//! this bridge: only requests whose source address is the proxy's (or a
//! `[sip] trusted_hosts` entry) are read, and the agent is named by `From`
//! or, with `identity = "p-asserted-identity"`, by the proxy's assertion.
//! Anything else is answered 403 there, so a stranger can neither write
//! to a visitor nor make this bridge write to a real agent.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use pbx_adapter::queue::{AgentConfig, SipUri};
use pbx_adapter::sip::{
    Listener, OutboxId, SipCommand, SipConfig, SipCredentials, SipEvent, SipTransport,
    FAILED_WITH_AN_EARLIER,
};
use pbx_adapter::AgentExtension;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use tracing::{debug, info, info_span, warn, Instrument};

mod prober;

use super::agent_text::{self, handle_agent_text, AgentTextOutcome, Refusal, NO_CHAT};
use super::lanes::Lanes;
use super::{conversation_of_user, visitor_user};
use crate::config::SipBridgeConfig;
use crate::domain::{ConversationId, ConversationState, Party};
use crate::engine::{
    AgentChannel, AgentChannelError, AgentStatus, ConversationSummary, Delivery, Engine,
    MessageView, Notice, Offer,
};
use crate::files::Files;
use crate::store::DeliveryRow;

/// The engine's agent channel for SIP agents.
pub struct SipAgents {
    commands: mpsc::Sender<SipCommand>,
    files: Files,
    next_outbox: AtomicI64,
    /// Messages sent but not answered yet → who they were for.
    in_flight: Mutex<HashMap<OutboxId, InFlight>>,
}

/// A MESSAGE waiting for its final answer.
struct InFlight {
    conversation: ConversationId,
    agent: AgentExtension,
    /// The agent's address it went to.
    to: SipUri,
    /// The visitor message it forwards (kept in the engine's delivery
    /// outbox until the phone answers), if it is one.
    seq: Option<i64>,
}

pub struct SipRuntime {
    pub agents: Arc<SipAgents>,
    events: mpsc::Receiver<SipEvent>,
    user_agent: JoinHandle<()>,
    /// The gateway's: stops the user agent, and the probe election.
    shutdown: CancellationToken,
}

/// Starts the user agent on the configured sockets.
pub async fn start(
    config: &SipBridgeConfig,
    files: Files,
    shutdown: CancellationToken,
) -> anyhow::Result<SipRuntime> {
    let mut sip = SipConfig::new(&config.domain, &config.outbound_proxy);
    let listeners: [(SipTransport, Option<SocketAddr>); 2] = [
        (SipTransport::Udp, config.listen_udp),
        (SipTransport::Tcp, config.listen_tcp),
    ];
    sip.listeners = listeners
        .into_iter()
        .filter_map(|(transport, bind)| Some(Listener::new(transport, bind?)))
        .collect();
    anyhow::ensure!(
        !sip.listeners.is_empty(),
        "sip: set listen_udp and/or listen_tcp"
    );
    if let (Some(username), Some(password)) = (&config.username, &config.password) {
        sip.credentials = Some(SipCredentials {
            username: username.clone(),
            password: password.expose().to_owned(),
        });
    }
    sip.probe_interval = Duration::from_secs(config.probe_interval_secs.max(1));
    sip.trusted_hosts = config
        .trusted_hosts()
        .map_err(|e| anyhow::anyhow!("sip.trusted_hosts: {e}"))?;
    sip.identity = config.identity;
    sip.agent_transports = config.agent_transports.clone();
    let (commands, commands_rx) = mpsc::channel(1024);
    let (user_agent, events) = pbx_adapter::sip::spawn(sip, commands_rx, shutdown.clone()).await?;
    Ok(SipRuntime {
        agents: Arc::new(SipAgents {
            commands,
            files,
            next_outbox: AtomicI64::new(1),
            in_flight: Mutex::default(),
        }),
        events,
        user_agent,
        shutdown,
    })
}

impl SipAgents {
    async fn command(&self, command: SipCommand) -> Result<(), AgentChannelError> {
        self.commands
            .send(command)
            .await
            .map_err(|_| AgentChannelError("the SIP user agent has stopped".into()))
    }

    /// Sends a text from a conversation's address to an agent.
    async fn tell(
        &self,
        conversation: ConversationId,
        agent: &AgentConfig,
        body: String,
    ) -> Result<(), AgentChannelError> {
        self.send(conversation, agent, body, None, None).await
    }

    /// Sends a text; `seq` names the visitor message it forwards from the
    /// delivery outbox, `message` the visitor message it is (a forward or
    /// an offer's history), which gives it its stable Call-ID.
    async fn send(
        &self,
        conversation: ConversationId,
        agent: &AgentConfig,
        body: String,
        seq: Option<i64>,
        message: Option<i64>,
    ) -> Result<(), AgentChannelError> {
        let Some(to) = &agent.sip else {
            return Ok(());
        };
        let outbox_id = self.next_outbox.fetch_add(1, Ordering::Relaxed);
        let in_flight = InFlight {
            conversation,
            agent: agent.extension.clone(),
            to: to.clone(),
            seq,
        };
        self.in_flight
            .lock()
            .expect("in-flight lock poisoned")
            .insert(outbox_id, in_flight);
        self.command(SipCommand::SendMessage {
            outbox_id,
            from_user: visitor_user(conversation),
            to: to.clone(),
            body,
            message_id: message.map(|seq| message_id(conversation, seq, &agent.extension)),
        })
        .await
    }

    /// A visitor's message as a SIP agent reads it: the text, or for a
    /// file its name, size and signed download link.
    fn render(&self, message: &MessageView) -> String {
        match &message.attachment {
            Some(file) => match self.files.agent_link(&file.id) {
                Ok(url) => format!("{} ({} bytes): {url}", file.name, file.size),
                Err(e) => {
                    warn!(error = %e, "cannot sign a file link");
                    format!("{} (file; link unavailable)", file.name)
                }
            },
            None => message.body.clone(),
        }
    }

    fn answered(&self, outbox_id: OutboxId) -> Option<InFlight> {
        self.in_flight
            .lock()
            .expect("in-flight lock poisoned")
            .remove(&outbox_id)
    }
}

#[async_trait]
impl AgentChannel for SipAgents {
    async fn offer(&self, offer: Offer) -> Result<(), AgentChannelError> {
        let summary = &offer.conversation;
        let card = agent_text::offer_card(summary);
        for agent in offer.agents.iter() {
            let Some(to) = &agent.sip else { continue };
            // A failed message to this agent stopped the chat's messages to
            // them (so none arrived after a gap); this offer repeats the
            // history, so they may go again.
            self.command(SipCommand::Resume {
                from_user: visitor_user(summary.id),
                to: to.clone(),
            })
            .await?;
            self.tell(summary.id, agent, card.clone()).await?;
            for message in offer.history.iter().filter(|m| m.sender == Party::Visitor) {
                let body = self.render(message);
                self.send(summary.id, agent, body, None, Some(message.seq))
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
        for agent in agents {
            self.tell(conversation.id, agent, text.clone()).await?;
        }
        Ok(())
    }

    async fn notify(
        &self,
        agent: &AgentConfig,
        conversation: &ConversationSummary,
        notice: Notice<'_>,
    ) -> Result<Delivery, AgentChannelError> {
        let Some(to) = &agent.sip else {
            return Ok(Delivery::Done);
        };
        match notice {
            Notice::Message(message) => {
                // Kept in the engine's delivery outbox until the phone
                // answers; a MESSAGE the proxy or phone refuses re-queues or
                // re-offers the chat (see `run_events`), whose next offer
                // shows the history again.
                let body = self.render(message);
                let seq = Some(message.seq);
                self.send(conversation.id, agent, body, seq, seq).await?;
                return Ok(Delivery::Pending);
            }
            Notice::Typing(composing) => {
                self.command(SipCommand::Composing {
                    from_user: visitor_user(conversation.id),
                    to: to.clone(),
                    active: composing,
                })
                .await?
            }
            Notice::Ended(by) => {
                let text = agent_text::ended(by);
                self.tell(conversation.id, agent, text.to_owned()).await?
            }
        }
        Ok(Delivery::Done)
    }
}

/// The stable identity of visitor message `seq` of `conversation` for
/// `agent` (its MESSAGE's Call-ID, see `SipCommand::SendMessage`): the
/// same when a gateway restart forwards it again and when an offer's
/// history repeats it, so the phone can tell a copy, as XMPP clients do
/// by stanza id.
fn message_id(conversation: ConversationId, seq: i64, agent: &AgentExtension) -> String {
    // `#`, allowed in extensions, is not a Call-ID character.
    let agent = agent.as_str().replace('#', "%23");
    format!("fd-{}-{seq}-{agent}", conversation.short())
}

/// Whether the router sends this agent's traffic over SIP (an agent with a
/// JID goes over XMPP when that bridge runs): only those are probed and
/// have their status set from SIP.
fn routed_to_sip(agent: &AgentConfig, xmpp_running: bool) -> bool {
    agent.sip.is_some() && (agent.xmpp.is_none() || !xmpp_running)
}

/// Reads the user agent's events and drives the engine until shutdown.
pub fn run_events(runtime: SipRuntime, engine: Engine, xmpp_running: bool) -> JoinHandle<()> {
    tokio::spawn(
        async move {
            let SipRuntime {
                agents,
                mut events,
                user_agent,
                shutdown,
            } = runtime;
            let shared = prober::shared(&engine);
            if shared {
                // Before the agents: none is probed until this node is
                // elected.
                if let Err(e) = agents.command(SipCommand::SetProbing(false)).await {
                    warn!(error = %e, "cannot tell the SIP user agent to wait for the probe lease");
                }
            }
            let election = async {
                if shared {
                    prober::elect(&engine, &agents.commands, &shutdown).await;
                }
            };
            let bridge = serve_events(&agents, &engine, &mut events, xmpp_running);
            tokio::join!(election, bridge);
            if let Err(e) = user_agent.await {
                warn!(error = %e, "the SIP user agent task failed");
            }
        }
        .instrument(info_span!("sip_bridge")),
    )
}

/// Gives the user agent the agents in force (again after each directory
/// change) and handles its events, until it stops.
async fn serve_events(
    agents: &Arc<SipAgents>,
    engine: &Engine,
    events: &mut mpsc::Receiver<SipEvent>,
    xmpp_running: bool,
) {
    let mut changes = engine.directory_changes();
    changes.mark_changed();
    let lanes = {
        let (agents, engine) = (agents.clone(), engine.clone());
        Lanes::new(LANES, LANE_DEPTH, move |event| {
            let (agents, engine) = (agents.clone(), engine.clone());
            async move { handle(&agents, &engine, event).await }
        })
    };
    loop {
        tokio::select! {
            // First: the agents in force before any of their events.
            biased;
            Ok(()) = changes.changed() => {
                let uris: Vec<SipUri> = (engine.agents().into_iter())
                    .filter(|a| routed_to_sip(a, xmpp_running))
                    .filter_map(|a| a.sip)
                    .collect();
                if let Err(e) = agents.command(SipCommand::SetAgents(uris)).await {
                    warn!(error = %e, "cannot give the SIP user agent its agents");
                }
            }
            event = events.recv() => match event {
                Some(event) => match lane_of(&event) {
                    Some(key) => lanes.push(&key, event).await,
                    None => {
                        if matches!(event, SipEvent::AgentReachable { reachable: false, .. }) {
                            // Re-queues the agent's chats: not before the
                            // messages they sent until then.
                            lanes.fence().await;
                        }
                        handle(agents, engine, event).await
                    }
                },
                None => break,
            },
        }
    }
    // Requests read before the user agent stopped are answered (stored
    // first) before the bridge ends.
    lanes.close().await;
}

/// How many lanes agents' MESSAGEs are spread over, and how many each
/// queues before the reader waits for it.
const LANES: usize = 16;
const LANE_DEPTH: usize = 64;

/// The lane of a request about one conversation (its visitor address's
/// user part), handled there in order with the others of that chat.
/// `None`: handled inline, in the reader's order: answers to this node's
/// own MESSAGEs (`in_flight` and the delivery outbox) and reachability.
fn lane_of(event: &SipEvent) -> Option<String> {
    match event {
        SipEvent::AgentMessage { to_user, .. } | SipEvent::AgentComposing { to_user, .. } => {
            Some(to_user.clone())
        }
        SipEvent::Sent { .. } | SipEvent::SendFailed { .. } | SipEvent::AgentReachable { .. } => {
            None
        }
    }
}

async fn handle(agents: &SipAgents, engine: &Engine, event: SipEvent) {
    match event {
        SipEvent::Sent { outbox_id } => {
            if let Some(sent) = agents.answered(outbox_id) {
                delivered(engine, &sent).await;
            }
        }
        SipEvent::SendFailed {
            outbox_id,
            status,
            reason,
        } => {
            let Some(failed) = agents.answered(outbox_id) else {
                return;
            };
            let (conversation, agent) = (failed.conversation, &failed.agent);
            if reason == FAILED_WITH_AN_EARLIER {
                debug!(%conversation, %agent, "a SIP message failed with an earlier one");
            } else {
                warn!(%conversation, %agent, ?status, %reason, "a SIP agent could not be reached");
            }
            unreachable_agent(engine, conversation, agent).await;
            // Given up for good: the chat's next offer carries the history.
            delivered(engine, &failed).await;
            // That offer may come from another node, which cannot resume
            // this node's lane: once the chat is no longer the agent's,
            // whatever they get of it next starts with the history.
            if !still_theirs(engine, conversation, agent).await {
                let resume = SipCommand::Resume {
                    from_user: visitor_user(conversation),
                    to: failed.to.clone(),
                };
                if let Err(e) = agents.command(resume).await {
                    warn!(error = %e, "cannot resume an agent's messages");
                }
            }
        }
        SipEvent::AgentMessage {
            from,
            to_user,
            body,
            request,
            respond,
        } => {
            let Some(agent) = engine.agent_by_sip(&from) else {
                respond.refuse(403);
                return;
            };
            let Some(conversation) = conversation_of_user(&to_user) else {
                respond.refuse(404);
                tell_agent_directly(agents, &agent, &to_user, NO_CHAT).await;
                return;
            };
            let span = info_span!("agent_message", %conversation, agent = %agent.extension);
            async {
                let request = request.map(|r| format!("sip {r}"));
                let text = handle_agent_text(
                    engine,
                    conversation,
                    &agent.extension,
                    &body,
                    request.as_deref(),
                );
                match text.await {
                    AgentTextOutcome::Delivered => respond.accept(),
                    AgentTextOutcome::Replied(reply) => {
                        respond.accept();
                        if let Err(e) = agents.tell(conversation, &agent, reply).await {
                            warn!(error = %e, "cannot answer an agent command");
                        }
                    }
                    AgentTextOutcome::Refused(why, kind) => {
                        // Not stored: the agent's phone shows a failure, and
                        // a message says why.
                        respond.refuse(refusal_status(kind));
                        if let Err(e) = agents.tell(conversation, &agent, why).await {
                            warn!(error = %e, "cannot tell an agent why a message failed");
                        }
                    }
                    AgentTextOutcome::Unavailable(why) => {
                        // Not stored, for now: a failure the phone may retry.
                        respond.refuse(503);
                        if let Err(e) = agents.tell(conversation, &agent, why).await {
                            warn!(error = %e, "cannot tell an agent why a message failed");
                        }
                    }
                }
            }
            .instrument(span)
            .await
        }
        SipEvent::AgentComposing {
            from,
            to_user,
            active,
        } => {
            let agent = engine.agent_by_sip(&from).map(|a| a.extension.clone());
            if let (Some(agent), Some(conversation)) = (agent, conversation_of_user(&to_user)) {
                if let Err(e) = engine.agent_typing(conversation, &agent, active).await {
                    debug!(%conversation, error = %e, "agent typing not forwarded");
                }
            }
        }
        SipEvent::AgentReachable { agent, reachable } => {
            let Some(config) = engine.agent_by_sip(&agent) else {
                return;
            };
            let status = if reachable {
                AgentStatus::Available
            } else {
                AgentStatus::Offline
            };
            let extension = config.extension.clone();
            // Every probe is reported: only a change is written, against
            // what is stored (a failed message on any node changes it).
            let stored = engine
                .store()
                .presence(extension.as_str(), prober::SIP_SOURCE)
                .await;
            if let Ok(stored) = stored {
                let stored = stored.as_deref().and_then(AgentStatus::parse);
                if stored.unwrap_or(AgentStatus::Offline) == status {
                    return;
                }
            }
            info!(agent = %extension, reachable, "SIP agent reachability");
            engine
                .set_agent_presence(&extension, prober::SIP_SOURCE, status)
                .await;
        }
    }
}

/// The SIP status that tells an agent's phone why its MESSAGE was not
/// delivered: only a failure of the gateway's own is worth a retry.
fn refusal_status(kind: Refusal) -> u16 {
    match kind {
        Refusal::NotYours => 403,
        Refusal::NoChat => 404,
        Refusal::Ended => 410,
        Refusal::Invalid => 400,
        Refusal::Failed => 500,
    }
}

/// A message to the agent was refused or timed out: their ringing offer
/// counts as declined; if the chat was theirs, they are gone.
async fn unreachable_agent(engine: &Engine, conversation: ConversationId, agent: &AgentExtension) {
    let row = match engine.store().conversation(conversation).await {
        Ok(Some(row)) => row,
        Ok(None) => return,
        Err(e) => {
            warn!(%conversation, error = %e, "cannot look up a conversation");
            return;
        }
    };
    match row.state {
        ConversationState::Offered => engine.offer_declined(conversation, agent).await,
        ConversationState::Active if row.agent_extension.as_deref() == Some(agent.as_str()) => {
            engine
                .set_agent_presence(agent, prober::SIP_SOURCE, AgentStatus::Offline)
                .await;
        }
        _ => {}
    }
}

/// Whether the chat is still the agent's (theirs, or ringing for them):
/// then a failure was not dealt with (the database was away), and the
/// agent's lane stays stopped. In doubt, yes.
async fn still_theirs(
    engine: &Engine,
    conversation: ConversationId,
    agent: &AgentExtension,
) -> bool {
    let store = engine.store();
    let row = match store.conversation(conversation).await {
        Ok(Some(row)) => row,
        Ok(None) => return false,
        Err(_) => return true,
    };
    match row.state {
        ConversationState::Active => row.agent_extension.as_deref() == Some(agent.as_str()),
        ConversationState::Offered => match store.offer_agents(conversation).await {
            Ok(ringing) => ringing
                .unwrap_or_default()
                .iter()
                .any(|a| a == agent.as_str()),
            Err(_) => true,
        },
        _ => false,
    }
}

/// A text to an agent from an address that is no conversation.
async fn tell_agent_directly(agents: &SipAgents, agent: &AgentConfig, from_user: &str, text: &str) {
    let Some(to) = &agent.sip else { return };
    let outbox_id = agents.next_outbox.fetch_add(1, Ordering::Relaxed);
    let command = SipCommand::SendMessage {
        outbox_id,
        from_user: from_user.to_owned(),
        to: to.clone(),
        body: text.to_owned(),
        message_id: None,
    };
    if let Err(e) = agents.command(command).await {
        warn!(error = %e, "cannot answer an agent");
    }
}

/// Clears a forwarded visitor message from the engine's delivery outbox.
async fn delivered(engine: &Engine, answered: &InFlight) {
    if let Some(seq) = answered.seq {
        let delivery = DeliveryRow {
            conversation: answered.conversation,
            seq,
            agent_extension: answered.agent.to_string(),
        };
        engine.delivered(&delivery).await;
    }
}
