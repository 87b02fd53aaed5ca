//! The task that owns the SIP stack: it binds the listeners, serves
//! rsipstack's endpoint, turns commands into client transactions (MESSAGE,
//! OPTIONS) through the outbound proxy, answers incoming requests as
//! [`crate::sip::inbound`] decides, and probes agents on an interval —
//! unless told not to ([`SipCommand::SetProbing`]: with several gateways
//! one of them probes for all). It keeps no reachability of its own: each
//! probe's result is reported, and the gateway compares it with what it
//! stored, which another gateway may have changed.
//!
//! It resolves the trusted sources once, at start (the outbound proxy's
//! addresses and the `trusted_hosts` names: a name whose address changes
//! needs a restart, or a CIDR range), and hands `inbound` the socket peer of
//! every request — the address the datagram or the TCP/TLS connection came
//! from, which rsipstack records on the transaction's connection — never a
//! header. Copies of an agent MESSAGE that rsipstack does not absorb (same
//! Call-ID, CSeq and From tag, another branch) are answered with the first
//! copy's status through [`crate::sip::recent`] while it is pending or once
//! it was accepted, so the gateway hears of each message once; a copy of a
//! refused one is decided again.
//!
//! Visitor messages to one agent go out in order, one transaction at a
//! time per visitor address and agent (a lane); when one fails, the ones
//! waiting behind it and every later one fail with it until the gateway
//! resumes the lane. A request whose TCP/TLS connection closes before an
//! answer goes out once more on a new connection.
//!
//! Every transaction runs in a task of one `JoinSet` owned by this task, so
//! cancelling the shutdown token stops the stack, the listeners and every
//! transaction; nothing is left detached.

use std::collections::{HashMap, HashSet, VecDeque};
use std::net::{SocketAddr, TcpListener};
use std::sync::Arc;
use std::time::Duration;

use rsipstack::dialog::authenticate::{handle_client_authenticate, Credential};
use rsipstack::sip::headers::CallId;
use rsipstack::sip::{
    typed, Header, HostWithPort, Method, Param, SipMessage, StatusCode, Transport, Uri,
};
use rsipstack::transaction::endpoint::EndpointInner;
use rsipstack::transaction::key::{TransactionKey, TransactionRole};
use rsipstack::transaction::{make_tag, Transaction};
use rsipstack::transport::tcp_listener::TcpListenerConnection;
use rsipstack::transport::tls::{TlsConfig, TlsListenerConnection};
use rsipstack::transport::udp::UdpConnection;
use rsipstack::transport::{SipAddr, TransportLayer};
use rsipstack::EndpointBuilder;
use tokio::sync::{mpsc, oneshot, watch};
use tokio::task::{JoinHandle, JoinSet};
use tokio_util::sync::CancellationToken;
use tracing::{debug, info, warn, Instrument};

use crate::queue::SipUri;
use crate::sip::command::SipCommand;
use crate::sip::config::{SipConfig, SipConfigError, SipTransport};
use crate::sip::event::{MessageReply, SipEvent, Verdict};
use crate::sip::inbound::{classify, Allowlist, Inbound, IpNet, Peer, Trust, TrustedHost};
use crate::sip::iscomposing;
use crate::sip::recent::{Recent, RequestId, CAPACITY, REMEMBER};
use crate::sip::split::split_body;

/// `Content-Type` of visitor messages.
pub const TEXT_PLAIN: &str = "text/plain;charset=UTF-8";
/// User part of the `From` of OPTIONS probes.
const PROBE_USER: &str = "frontdesk";
/// Challenges answered per request before giving up (a wrong password
/// must not loop).
const MAX_AUTH_ROUNDS: u8 = 2;

/// Why the user agent could not start.
#[derive(Debug, thiserror::Error)]
pub enum SipError {
    #[error(transparent)]
    Config(#[from] SipConfigError),
    #[error("cannot listen on {transport} {addr}: {source}")]
    Bind {
        transport: &'static str,
        addr: std::net::SocketAddr,
        source: std::io::Error,
    },
    #[error("cannot resolve {what} to trust its addresses: {source}")]
    Resolve {
        what: String,
        source: std::io::Error,
    },
    #[error("sip stack: {0}")]
    Stack(String),
}

impl From<rsipstack::Error> for SipError {
    fn from(e: rsipstack::Error) -> Self {
        SipError::Stack(e.to_string())
    }
}

fn wire_transport(t: SipTransport) -> Transport {
    match t {
        SipTransport::Udp => Transport::Udp,
        SipTransport::Tcp => Transport::Tcp,
        SipTransport::Tls => Transport::Tls,
    }
}

/// The sources trusted to speak for agents: every address the outbound
/// proxy and the `trusted_hosts` names resolve to now, and the networks.
async fn resolve_trust(config: &SipConfig) -> Result<Trust, SipError> {
    async fn lookup(what: String, target: (&str, u16)) -> Result<Vec<IpNet>, SipError> {
        let found = tokio::net::lookup_host(target)
            .await
            .map_err(|source| SipError::Resolve {
                what: what.clone(),
                source,
            })?;
        let nets: Vec<IpNet> = found.map(|a| IpNet::host(a.ip())).collect();
        if nets.is_empty() {
            let source = std::io::Error::other("no address");
            return Err(SipError::Resolve { what, source });
        }
        Ok(nets)
    }
    let (host, port) = crate::sip::config::split_host_port(&config.outbound_proxy)
        .ok_or_else(|| SipConfigError::Proxy(config.outbound_proxy.clone()))?;
    let what = format!("outbound proxy {}", config.outbound_proxy);
    let mut sources = lookup(what, (host, port)).await?;
    for host in &config.trusted_hosts {
        match host {
            TrustedHost::Net(net) => sources.push(*net),
            TrustedHost::Name(name) => {
                let what = format!("trusted host {name}");
                sources.extend(lookup(what, (name.as_str(), 0)).await?);
            }
        }
    }
    sources.sort_by_key(ToString::to_string);
    sources.dedup();
    Ok(Trust {
        sources,
        identity: config.identity,
        agent_transports: config.agent_transports.clone(),
    })
}

/// Where a server transaction's request came from: the socket peer of
/// its connection (UDP datagram source, TCP/TLS stream peer).
fn peer_of(tx: &Transaction) -> Option<Peer> {
    let connection = tx.connection.as_ref()?;
    let addr: SocketAddr = connection.get_remote_addr()?.get_socketaddr().ok()?;
    let transport = match connection.transport() {
        Transport::Udp => SipTransport::Udp,
        Transport::Tcp => SipTransport::Tcp,
        Transport::Tls => SipTransport::Tls,
        _ => return None,
    };
    Some(Peer { addr, transport })
}

/// Binds the listeners and starts the user agent. It runs until
/// `shutdown` is cancelled or `commands` is closed; events arrive on the
/// returned receiver.
pub async fn spawn(
    config: SipConfig,
    commands: mpsc::Receiver<SipCommand>,
    shutdown: CancellationToken,
) -> Result<(JoinHandle<()>, mpsc::Receiver<SipEvent>), SipError> {
    config.validate()?;
    let proxy = HostWithPort::try_from(config.outbound_proxy.as_str())
        .map_err(|_| SipConfigError::Proxy(config.outbound_proxy.clone()))?;
    let trust = resolve_trust(&config).await?;
    let stack_token = shutdown.child_token();
    let transport_layer = TransportLayer::new(stack_token.clone());
    let mut via_addrs = HashMap::new();
    for listener in &config.listeners {
        let bind_error = |source| SipError::Bind {
            transport: listener.transport.as_str(),
            addr: listener.bind,
            source,
        };
        let public = match listener.transport {
            SipTransport::Udp => {
                let udp = UdpConnection::create_connection(
                    listener.bind,
                    listener.advertised,
                    Some(stack_token.child_token()),
                )
                .await
                .map_err(|e| bind_error(std::io::Error::other(e.to_string())))?;
                let bound = udp.get_addr().clone();
                transport_layer.add_transport(udp.into());
                match listener.advertised {
                    Some(addr) => SipAddr::from(addr),
                    None => bound,
                }
            }
            SipTransport::Tcp | SipTransport::Tls => {
                // The stack binds stream listeners when it starts serving and
                // only logs a failure: find a taken port now instead.
                drop(TcpListener::bind(listener.bind).map_err(bind_error)?);
                if listener.transport == SipTransport::Tcp {
                    let tcp =
                        TcpListenerConnection::new(listener.bind, listener.advertised).await?;
                    transport_layer.add_transport(tcp.into());
                } else {
                    let material = config.tls.clone().unwrap_or_default();
                    let tls = TlsListenerConnection::new(
                        listener.bind,
                        listener.advertised,
                        TlsConfig {
                            cert: Some(material.cert_pem),
                            key: Some(material.key_pem),
                            ca_certs: material.ca_pem,
                            ..Default::default()
                        },
                    )
                    .await?;
                    transport_layer.add_transport(tls.into());
                }
                SipAddr::from(listener.public_addr())
            }
        };
        let mut public = public;
        public.r#type = Some(wire_transport(listener.transport));
        via_addrs.insert(listener.transport, public);
    }
    if let Some(material) = &config.tls {
        transport_layer.set_tls_config(TlsConfig {
            ca_certs: material.ca_pem.clone(),
            ..Default::default()
        });
    }
    let endpoint = EndpointBuilder::new()
        .with_user_agent(&config.user_agent)
        .with_transport_layer(transport_layer)
        .with_cancel_token(stack_token.clone())
        .with_allows(vec![Method::Message, Method::Options])
        .build();
    let incoming = endpoint.incoming_transactions()?;
    let (events_tx, events) = mpsc::channel(1024);
    let ua = Arc::new(Ua {
        endpoint: endpoint.inner.clone(),
        credential: config.credentials.as_ref().map(|c| Credential {
            username: c.username.clone(),
            password: c.password.clone(),
            realm: None,
            auth_username: None,
        }),
        config,
        proxy,
        trust,
        via_addrs,
        events: events_tx,
    });
    let task = tokio::spawn(
        run(
            ua,
            endpoint.inner,
            incoming,
            commands,
            shutdown,
            stack_token,
        )
        .instrument(tracing::info_span!("sip_ua")),
    );
    Ok((task, events))
}

/// What every transaction task needs.
struct Ua {
    endpoint: Arc<EndpointInner>,
    config: SipConfig,
    credential: Option<Credential>,
    proxy: HostWithPort,
    trust: Trust,
    via_addrs: HashMap<SipTransport, SipAddr>,
    events: mpsc::Sender<SipEvent>,
}

/// The end of a client transaction.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Outcome {
    /// A final response (≥ 200).
    Final { status: u16, reason: String },
    /// No final response: timeout, transport or stack error.
    NoResponse(String),
    /// The TCP/TLS connection the request went out on closed before an
    /// answer (the proxy restarted). rsipstack does not tell a transaction
    /// that its connection died (RFC 3261 §17.1.4 would), so the task
    /// watches the connection itself instead of waiting out the timeout.
    ConnectionLost,
}

impl Outcome {
    fn is_success(&self) -> bool {
        matches!(
            self,
            Outcome::Final {
                status: 200..=299,
                ..
            }
        )
    }
}

/// Whether an OPTIONS outcome means the agent's UA is reachable: only
/// answers that a UA itself gives count — 2xx, or a refusal that proves it
/// is alive (405/415/420/481/486/488/489/491, 501 from a UA without
/// OPTIONS, 600/603). Everything else — 404/480 (not registered), 408 or
/// no answer (registered but dead), 477/5xx from the proxy — does not.
pub(crate) fn probe_says_reachable(status: Option<u16>) -> bool {
    matches!(
        status,
        Some(200..=299 | 405 | 415 | 420 | 481 | 486 | 488 | 489 | 491 | 501 | 600 | 603)
    )
}

/// Reachability reports from probe tasks: (agent, reachable, asked for).
type ProbeResult = (SipUri, bool, bool);

/// How long a stopping user agent waits for the stack's own tasks to let
/// go of the sockets.
const RELEASE_WAIT: Duration = Duration::from_secs(2);

async fn run(
    ua: Arc<Ua>,
    endpoint: Arc<EndpointInner>,
    incoming: rsipstack::transaction::TransactionReceiver,
    commands: mpsc::Receiver<SipCommand>,
    shutdown: CancellationToken,
    stack_token: CancellationToken,
) {
    let transport = Arc::downgrade(&endpoint.transport_layer.inner);
    serve(ua, endpoint, incoming, commands, shutdown).await;
    stack_token.cancel();
    // rsipstack's listener tasks end on their own after the cancellation;
    // wait for them so the ports are free when the task has ended (a
    // restarted user agent binds the same addresses).
    let deadline = tokio::time::Instant::now() + RELEASE_WAIT;
    while transport.strong_count() > 0 && tokio::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    if transport.strong_count() > 0 {
        warn!("the SIP stack still holds its sockets after {RELEASE_WAIT:?}");
    }
    info!("SIP user agent stopped");
}

async fn serve(
    ua: Arc<Ua>,
    endpoint: Arc<EndpointInner>,
    mut incoming: rsipstack::transaction::TransactionReceiver,
    mut commands: mpsc::Receiver<SipCommand>,
    shutdown: CancellationToken,
) {
    let serve = endpoint.serve();
    tokio::pin!(serve);
    let mut tasks = JoinSet::new();
    let (probe_tx, mut probe_rx) = mpsc::unbounded_channel::<ProbeResult>();
    let (lane_tx, mut lane_rx) = mpsc::unbounded_channel::<(Lane, bool)>();
    let mut lanes = Lanes::default();
    let mut agents = Allowlist::default();
    let mut recent = Recent::new(REMEMBER, CAPACITY);
    // Interval probes in flight, so a slow one is not doubled.
    let mut probing: HashSet<SipUri> = HashSet::new();
    // Whether this user agent is the one that probes (see `SetProbing`).
    let mut prober = true;
    let mut ticker = tokio::time::interval(ua.config.probe_interval);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let trusted: Vec<String> = ua.trust.sources.iter().map(ToString::to_string).collect();
    info!(
        domain = %ua.config.domain,
        proxy = %ua.proxy,
        trusted = %trusted.join(", "),
        identity = ?ua.trust.identity,
        "SIP user agent started"
    );
    loop {
        tokio::select! {
            biased;
            _ = shutdown.cancelled() => break,
            result = &mut serve => {
                warn!(?result, "the SIP stack stopped");
                break;
            }
            command = commands.recv() => match command {
                None => break,
                Some(SipCommand::SetAgents(list)) => {
                    agents = Allowlist::new(list);
                    ticker.reset_immediately();
                }
                Some(SipCommand::SetProbing(on)) => {
                    if on && !prober {
                        ticker.reset_immediately();
                    }
                    prober = on;
                }
                Some(SipCommand::Probe { agent }) => {
                    tasks.spawn(probe(ua.clone(), agent, true, probe_tx.clone()));
                }
                Some(command @ SipCommand::SendMessage { .. }) => match lanes.push(command) {
                    Push::Send(lane, first) => {
                        tasks.spawn(send_in_lane(ua.clone(), first, lane, lane_tx.clone()));
                    }
                    Push::Queued => {}
                    Push::Fail(command) => {
                        tasks.spawn(report_dropped(ua.clone(), vec![command]));
                    }
                },
                Some(SipCommand::Resume { from_user, to }) => lanes.resume(&(from_user, to)),
                Some(command) => {
                    let ua = ua.clone();
                    tasks.spawn(async move {
                        send(ua, command).await;
                    });
                }
            },
            Some((lane, delivered)) = lane_rx.recv() => {
                let (next, dropped) = lanes.done(&lane, delivered, std::time::Instant::now());
                if !dropped.is_empty() {
                    tasks.spawn(report_dropped(ua.clone(), dropped));
                }
                if let Some(next) = next {
                    tasks.spawn(send_in_lane(ua.clone(), next, lane, lane_tx.clone()));
                }
            }
            Some(tx) = incoming.recv() => {
                answer(&ua, &agents, &mut recent, tx, &mut tasks).await;
            }
            Some((agent, ok, asked)) = probe_rx.recv() => {
                if !asked {
                    probing.remove(&agent);
                }
                // Every result is reported, changed or not: the gateway
                // compares it with what it stored, which another node's
                // failed message may have changed meanwhile.
                if asked || agents.find(&agent).is_some() {
                    let event = SipEvent::AgentReachable { agent, reachable: ok };
                    if ua.events.send(event).await.is_err() {
                        break;
                    }
                }
            }
            _ = ticker.tick() => {
                lanes.expire(std::time::Instant::now());
                for agent in agents.iter().filter(|_| prober) {
                    if probing.insert(agent.clone()) {
                        tasks.spawn(probe(ua.clone(), agent.clone(), false, probe_tx.clone()));
                    }
                }
            }
            Some(done) = tasks.join_next(), if !tasks.is_empty() => {
                if let Err(e) = done {
                    if e.is_panic() {
                        warn!(error = %e, "a SIP transaction task panicked");
                    }
                }
            }
        }
    }
    tasks.shutdown().await;
}

/// Answers an incoming request, reporting agent traffic to the gateway.
async fn answer(
    ua: &Arc<Ua>,
    agents: &Allowlist,
    recent: &mut Recent<FirstAnswer>,
    mut tx: Transaction,
    tasks: &mut JoinSet<()>,
) {
    let inbound = match peer_of(&tx) {
        Some(peer) => classify(&tx.original, &peer, &ua.config.domain, agents, &ua.trust),
        None => Inbound::Refuse {
            status: 403,
            why: "no source address".to_owned(),
        },
    };
    match inbound {
        Inbound::Message {
            from,
            to_user,
            body,
        } => {
            let id = RequestId::of(&tx.original);
            let now = std::time::Instant::now();
            // A copy of a refused request is decided again: the phone
            // re-sends because the first failed, and the refusal may not
            // hold any more (a chat offered again, a database back).
            let copy_of = id
                .as_ref()
                .and_then(|id| recent.get(id, now))
                .filter(|first| !matches!(*first.borrow(), Some(status) if status >= 300));
            if let Some(first) = copy_of {
                info!(%from, "a copy of an agent message (same Call-ID, CSeq and From tag); answering as the first");
                tasks.spawn(reply_as_first(tx, first, ua.config.reply_timeout));
                return;
            }
            let (first_tx, first) = watch::channel(None);
            if let Some(id) = &id {
                recent.insert(id.clone(), first, now);
            }
            let (tell, verdict) = oneshot::channel();
            let event = SipEvent::AgentMessage {
                from,
                to_user,
                body,
                request: id.as_ref().map(ToString::to_string),
                respond: MessageReply(tell),
            };
            // If the gateway is gone the handle is dropped: 500 below.
            let _ = ua.events.send(event).await;
            let within = ua.config.reply_timeout;
            tasks.spawn(reply_when_told(tx, verdict, within, first_tx));
        }
        Inbound::Composing {
            from,
            to_user,
            active,
        } => {
            tasks.spawn(async move { reply(&mut tx, 200).await });
            let _ = ua
                .events
                .send(SipEvent::AgentComposing {
                    from,
                    to_user,
                    active,
                })
                .await;
        }
        Inbound::Ok => {
            tasks.spawn(async move { reply(&mut tx, 200).await });
        }
        Inbound::Refuse { status, why } => {
            let from = tx
                .original
                .headers
                .iter()
                .find_map(|h| match h {
                    Header::From(f) => Some(f.value().to_owned()),
                    _ => None,
                })
                .unwrap_or_default();
            if status == 403 {
                warn!(%from, %why, "refused a SIP request from a non-agent");
            } else {
                info!(%from, status, %why, "refused a SIP request");
            }
            tasks.spawn(async move { reply(&mut tx, status).await });
        }
    }
}

/// The final status the first copy of an agent message got (`None` while
/// the gateway decides).
type FirstAnswer = watch::Receiver<Option<u16>>;

/// Answers a copy of an agent message with the first copy's status, once
/// it is known.
async fn reply_as_first(mut tx: Transaction, mut first: FirstAnswer, within: Duration) {
    let status = match tokio::time::timeout(within, first.wait_for(Option::is_some)).await {
        Ok(Ok(status)) => status.unwrap_or(500),
        Ok(Err(_)) | Err(_) => 500,
    };
    reply(&mut tx, status).await;
}

async fn reply(tx: &mut Transaction, status: u16) {
    if let Err(e) = tx.reply(StatusCode::from(status)).await {
        debug!(error = %e, status, "could not answer a SIP request");
    }
}

/// Waits for the gateway's verdict on an agent message, then answers it
/// and any copy waiting on `first`.
async fn reply_when_told(
    mut tx: Transaction,
    verdict: oneshot::Receiver<Verdict>,
    within: Duration,
    first: watch::Sender<Option<u16>>,
) {
    let status = match tokio::time::timeout(within, verdict).await {
        Ok(Ok(Verdict::Accept)) => 200,
        Ok(Ok(Verdict::Refuse(status))) => status,
        Ok(Err(_)) => {
            warn!("an agent message was dropped unanswered; answering 500");
            500
        }
        Err(_) => {
            warn!(
                ?within,
                "the gateway did not store an agent message in time; answering 500"
            );
            500
        }
    };
    first.send_replace(Some(status));
    reply(&mut tx, status).await;
}

/// Messages from one visitor address to one agent.
type Lane = (String, SipUri);

/// How long a lane stays failed when the gateway never resumes it (the
/// chat ended, or went to someone else): only to bound memory.
const FAILED_LANE_MEMORY: Duration = Duration::from_secs(600);

/// The messages waiting behind the one in flight, per lane. RFC 3428 gives
/// no order across MESSAGE transactions (UDP, retransmissions and a proxy's
/// parallel workers reorder them), so a lane sends one message at a time,
/// the next once the previous got its final answer. When one fails, the
/// lane fails: its waiting messages fail with it, and so does every later
/// one until the gateway resumes the lane ([`SipCommand::Resume`], once it
/// has dealt with the failure: the chat went back to the queue, whose next
/// offer repeats the history), so none arrives after a gap.
#[derive(Default)]
struct Lanes {
    busy: HashMap<Lane, VecDeque<SipCommand>>,
    failed: HashMap<Lane, std::time::Instant>,
}

/// What to do with a message just commanded.
enum Push {
    /// Its lane was idle: send it now.
    Send(Lane, SipCommand),
    /// Queued behind the lane's message in flight.
    Queued,
    /// Its lane failed and was not resumed: it fails too.
    Fail(SipCommand),
}

impl Lanes {
    fn push(&mut self, command: SipCommand) -> Push {
        let SipCommand::SendMessage { from_user, to, .. } = &command else {
            return Push::Fail(command);
        };
        let lane = (from_user.clone(), to.clone());
        if self.failed.contains_key(&lane) {
            return Push::Fail(command);
        }
        match self.busy.get_mut(&lane) {
            Some(waiting) => {
                waiting.push_back(command);
                Push::Queued
            }
            None => {
                self.busy.insert(lane.clone(), VecDeque::new());
                Push::Send(lane, command)
            }
        }
    }

    /// The lane's message in flight ended: the next one to send, and
    /// (when it failed) the waiting ones that fail with it.
    fn done(
        &mut self,
        lane: &Lane,
        delivered: bool,
        now: std::time::Instant,
    ) -> (Option<SipCommand>, Vec<SipCommand>) {
        let Some(waiting) = self.busy.get_mut(lane) else {
            return (None, Vec::new());
        };
        let dropped = if delivered {
            Vec::new()
        } else {
            self.failed.insert(lane.clone(), now);
            waiting.drain(..).collect()
        };
        let next = waiting.pop_front();
        if next.is_none() {
            self.busy.remove(lane);
        }
        (next, dropped)
    }

    /// The gateway dealt with the lane's failure: it may send again.
    fn resume(&mut self, lane: &Lane) {
        self.failed.remove(lane);
    }

    fn expire(&mut self, now: std::time::Instant) {
        self.failed
            .retain(|_, at| now.saturating_duration_since(*at) < FAILED_LANE_MEMORY);
    }
}

/// Sends one message of `lane`, then tells the main loop.
async fn send_in_lane(
    ua: Arc<Ua>,
    command: SipCommand,
    lane: Lane,
    done: mpsc::UnboundedSender<(Lane, bool)>,
) {
    let delivered = send(ua, command).await;
    let _ = done.send((lane, delivered));
}

/// The `reason` of a [`SipEvent::SendFailed`] for a message that was not
/// sent because one before it to the same agent failed.
pub const FAILED_WITH_AN_EARLIER: &str = "an earlier message to this agent was not delivered";

/// Reports messages that failed with an earlier one of their lane.
async fn report_dropped(ua: Arc<Ua>, dropped: Vec<SipCommand>) {
    info!(
        messages = dropped.len(),
        "SIP messages not sent: {FAILED_WITH_AN_EARLIER}"
    );
    for command in dropped {
        if let SipCommand::SendMessage { outbox_id, .. } = command {
            let event = SipEvent::SendFailed {
                outbox_id,
                status: None,
                reason: FAILED_WITH_AN_EARLIER.to_owned(),
            };
            let _ = ua.events.send(event).await;
        }
    }
}

/// Runs a command to its end; `true` when it was a message and every part
/// was answered 2xx.
async fn send(ua: Arc<Ua>, command: SipCommand) -> bool {
    match command {
        SipCommand::SendMessage {
            outbox_id,
            from_user,
            to,
            body,
            message_id,
        } => {
            let sent = send_text(&ua, &from_user, &to, &body, message_id.as_deref()).await;
            let delivered = sent.is_ok();
            let event = match sent {
                Ok(()) => SipEvent::Sent { outbox_id },
                Err((status, reason)) => {
                    info!(outbox_id, %to, ?status, %reason, "a SIP message was not delivered");
                    SipEvent::SendFailed {
                        outbox_id,
                        status,
                        reason,
                    }
                }
            };
            let _ = ua.events.send(event).await;
            delivered
        }
        SipCommand::Composing {
            from_user,
            to,
            active,
        } => {
            let body = iscomposing::build(active);
            let (transport, _) = ua.config.transport_for(body.len());
            let outcome = request(
                &ua,
                Method::Message,
                &from_user,
                &to,
                Some((iscomposing::CONTENT_TYPE, body)),
                transport,
                None,
            )
            .await;
            if !outcome.is_success() {
                debug!(%to, ?outcome, "typing indication not delivered");
            }
            false
        }
        SipCommand::Probe { .. }
        | SipCommand::SetAgents(_)
        | SipCommand::SetProbing(_)
        | SipCommand::Resume { .. } => false,
    }
}

/// The Call-ID of part `part` (from 0) of message `message_id`.
fn message_call_id(message_id: &str, part: usize, domain: &str) -> String {
    match part {
        0 => format!("{message_id}@{domain}"),
        n => format!("{message_id}.{}@{domain}", n + 1),
    }
}

/// Sends a text, split if it is too long for the only (UDP) transport.
async fn send_text(
    ua: &Ua,
    from_user: &str,
    to: &SipUri,
    body: &str,
    message_id: Option<&str>,
) -> Result<(), (Option<u16>, String)> {
    let (transport, must_split) = ua.config.transport_for(body.len());
    let parts = if must_split {
        split_body(body, ua.config.max_udp_body)
    } else {
        vec![body]
    };
    for (n, part) in parts.into_iter().enumerate() {
        let content = Some((TEXT_PLAIN, part.as_bytes().to_vec()));
        let call_id = message_id.map(|id| message_call_id(id, n, &ua.config.domain));
        let sent = request(
            ua,
            Method::Message,
            from_user,
            to,
            content,
            transport,
            call_id,
        );
        match sent.await {
            outcome if outcome.is_success() => {}
            Outcome::Final { status, reason } => return Err((Some(status), reason)),
            Outcome::NoResponse(reason) => return Err((None, reason)),
            Outcome::ConnectionLost => {
                return Err((None, "the connection to the proxy was lost".to_owned()))
            }
        }
    }
    Ok(())
}

/// Probes `agent` with OPTIONS and reports the result to the main loop.
async fn probe(
    ua: Arc<Ua>,
    agent: SipUri,
    asked: bool,
    results: mpsc::UnboundedSender<ProbeResult>,
) {
    let transport = ua.config.listeners[0].transport;
    let outcome = request(
        &ua,
        Method::Options,
        PROBE_USER,
        &agent,
        None,
        transport,
        None,
    )
    .await;
    let status = match &outcome {
        Outcome::Final { status, .. } => Some(*status),
        Outcome::NoResponse(_) | Outcome::ConnectionLost => None,
    };
    let ok = probe_says_reachable(status);
    debug!(%agent, ?outcome, reachable = ok, "probed an agent");
    let _ = results.send((agent, ok, asked));
}

/// How long a request whose connection was lost waits before it goes out
/// once more, on a new connection (a restarting proxy listens again).
const RECONNECT_AFTER: Duration = Duration::from_secs(1);

/// One non-INVITE client transaction through the proxy, answering up to
/// [`MAX_AUTH_ROUNDS`] digest challenges; under `call_id`, or a fresh one.
/// When its TCP/TLS connection closes before an answer, it is sent once
/// more, on a new connection, after [`RECONNECT_AFTER`] (a proxy that
/// relayed it before dying makes that a copy under the same Call-ID). All
/// of it is bounded by the request timeout.
async fn request(
    ua: &Ua,
    method: Method,
    from_user: &str,
    to: &SipUri,
    content: Option<(&str, Vec<u8>)>,
    transport: SipTransport,
    call_id: Option<String>,
) -> Outcome {
    let run = async {
        let mut lost_once = false;
        loop {
            let attempt = request_unbounded(
                ua,
                method,
                from_user,
                to,
                content.clone(),
                transport,
                call_id.clone(),
            );
            match attempt.await {
                Ok(Outcome::ConnectionLost) if !lost_once => {
                    lost_once = true;
                    info!(%to, "the connection to the proxy closed before an answer; sending again");
                    tokio::time::sleep(RECONNECT_AFTER).await;
                }
                Ok(outcome) => return outcome,
                Err(e) => return Outcome::NoResponse(e.to_string()),
            }
        }
    };
    match tokio::time::timeout(ua.config.request_timeout, run).await {
        Ok(outcome) => outcome,
        Err(_) => Outcome::NoResponse("no final response in time".to_owned()),
    }
}

/// The token rsipstack cancels when the stream connection `tx` went out
/// on closes (none for UDP).
fn stream_closed(tx: &Transaction) -> Option<CancellationToken> {
    tx.connection
        .as_ref()
        .filter(|c| c.is_reliable())
        .and_then(|c| c.cancel_token())
}

/// Resolves once `token` is cancelled; never without one.
async fn cancelled(token: Option<CancellationToken>) {
    match token {
        Some(token) => token.cancelled().await,
        None => std::future::pending().await,
    }
}

async fn request_unbounded(
    ua: &Ua,
    method: Method,
    from_user: &str,
    to: &SipUri,
    content: Option<(&str, Vec<u8>)>,
    transport: SipTransport,
    call_id: Option<String>,
) -> Result<Outcome, rsipstack::Error> {
    let bad = |what: String| rsipstack::Error::Error(what);
    let from_aor: SipUri = format!("sip:{from_user}@{}", ua.config.domain)
        .parse()
        .map_err(|e| bad(format!("bad visitor user {from_user:?}: {e}")))?;
    let via_addr = ua
        .via_addrs
        .get(&transport)
        .cloned()
        .ok_or_else(|| bad(format!("no {} listener", transport.as_str())))?;
    let from_uri = Uri::try_from(from_aor.to_string())?;
    let to_uri = Uri::try_from(to.to_string())?;
    let via = ua.endpoint.get_via(Some(via_addr), None)?;
    let from = typed::From {
        display_name: None,
        uri: from_uri,
        params: vec![Param::Tag(make_tag())],
    };
    let to_header = typed::To {
        display_name: None,
        uri: to_uri.clone(),
        params: vec![],
    };
    let call_id = call_id.map(CallId::new);
    let mut req = ua
        .endpoint
        .make_request(method, to_uri, via, from, to_header, 1, call_id);
    if let Some((content_type, body)) = content {
        req.headers.push(Header::ContentType(content_type.into()));
        req.body = body;
    }
    let key = TransactionKey::from_request(&req, TransactionRole::Client)?;
    let mut tx = Transaction::new_client(key, req, ua.endpoint.clone(), None);
    tx.destination = Some(SipAddr {
        r#type: Some(wire_transport(transport)),
        addr: ua.proxy.clone(),
    });
    tx.send().await?;
    let mut seq = 1;
    let mut auth_rounds = 0;
    loop {
        let closed = stream_closed(&tx);
        let message = tokio::select! {
            message = tx.receive() => message,
            () = cancelled(closed) => return Ok(Outcome::ConnectionLost),
        };
        let Some(message) = message else { break };
        let SipMessage::Response(resp) = message else {
            continue;
        };
        let status = resp.status_code.code();
        if status < 200 {
            continue;
        }
        if matches!(status, 401 | 407) && auth_rounds < MAX_AUTH_ROUNDS {
            if let Some(credential) = &ua.credential {
                auth_rounds += 1;
                seq += 1;
                tx = handle_client_authenticate(seq, &tx, resp, credential).await?;
                tx.send().await?;
                continue;
            }
        }
        return Ok(Outcome::Final {
            status,
            reason: resp.status_code.to_string(),
        });
    }
    Ok(Outcome::NoResponse(
        "the transaction ended without a final response".to_owned(),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn message(outbox_id: i64, from_user: &str, to: &str) -> SipCommand {
        SipCommand::SendMessage {
            outbox_id,
            from_user: from_user.to_owned(),
            to: to.parse().unwrap(),
            body: String::new(),
            message_id: None,
        }
    }

    fn id(command: &SipCommand) -> i64 {
        match command {
            SipCommand::SendMessage { outbox_id, .. } => *outbox_id,
            _ => unreachable!(),
        }
    }

    fn sent(push: Push) -> Option<(Lane, i64)> {
        match push {
            Push::Send(lane, command) => Some((lane, id(&command))),
            _ => None,
        }
    }

    #[test]
    fn a_lane_sends_one_at_a_time_and_fails_until_resumed() {
        let now = std::time::Instant::now();
        let mut lanes = Lanes::default();
        let (lane, first) = sent(lanes.push(message(1, "visitor-a", "sip:101@pbx"))).unwrap();
        assert_eq!(first, 1);
        assert!(matches!(
            lanes.push(message(2, "visitor-a", "sip:101@pbx")),
            Push::Queued
        ));
        assert!(matches!(
            lanes.push(message(3, "visitor-a", "sip:101@pbx")),
            Push::Queued
        ));
        // Another visitor, or another agent, is another lane.
        assert!(sent(lanes.push(message(4, "visitor-b", "sip:101@pbx"))).is_some());
        assert!(sent(lanes.push(message(5, "visitor-a", "sip:102@pbx"))).is_some());
        let (next, dropped) = lanes.done(&lane, true, now);
        assert_eq!(next.as_ref().map(id), Some(2));
        assert!(dropped.is_empty());
        let (next, dropped) = lanes.done(&lane, false, now);
        assert!(next.is_none());
        assert_eq!(dropped.iter().map(id).collect::<Vec<_>>(), [3]);
        // Failed: later messages fail too, until the gateway resumes it.
        assert!(matches!(
            lanes.push(message(6, "visitor-a", "sip:101@pbx")),
            Push::Fail(_)
        ));
        lanes.resume(&lane);
        assert_eq!(
            sent(lanes.push(message(7, "visitor-a", "sip:101@pbx"))).map(|(_, n)| n),
            Some(7)
        );
        // A failed lane never resumed is forgotten after a while.
        let (next, _) = lanes.done(&lane, false, now);
        assert!(next.is_none());
        lanes.expire(now + FAILED_LANE_MEMORY);
        assert!(sent(lanes.push(message(8, "visitor-a", "sip:101@pbx"))).is_some());
    }

    #[test]
    fn split_parts_keep_the_message_id_in_their_call_ids() {
        assert_eq!(message_call_id("fd-x-7-101", 0, "chat"), "fd-x-7-101@chat");
        assert_eq!(
            message_call_id("fd-x-7-101", 1, "chat"),
            "fd-x-7-101.2@chat"
        );
    }

    #[test]
    fn probe_outcomes() {
        for ok in [200, 202, 405, 486, 501, 603] {
            assert!(probe_says_reachable(Some(ok)), "{ok}");
        }
        for down in [403, 404, 407, 408, 410, 477, 480, 500, 503, 604] {
            assert!(!probe_says_reachable(Some(down)), "{down}");
        }
        assert!(!probe_says_reachable(None));
    }
}
