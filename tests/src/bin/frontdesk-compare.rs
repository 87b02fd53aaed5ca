//! `frontdesk-compare`: the do-it-yourself alternative, a stock Prosody,
//! next to the gateway on SQLite and PostgreSQL, under the same load shape,
//! printed as one side-by-side table (issue 15).
//!
//! - Prosody: a throwaway server (its own directory and free loopback
//!   ports) with an anonymous visitor host served over XMPP-over-WebSocket
//!   (RFC 7395, `mod_websocket`), Nagle off, `mod_limits` loaded with the
//!   c2s rate raised, logging at `warn`, and one agent account. Visitors
//!   are RFC 7395 clients (subprotocol `xmpp`, `<open/>`, SASL ANONYMOUS,
//!   resource binding) sending `<message type="chat">` to the agent's bare
//!   JID; the agent is a c2s client (tokio-xmpp) that receives them.
//! - Gateway: a release `frontdesk serve` on a fresh database (the
//!   benchmark configuration of `frontdesk-load`, no bridge, no bound on
//!   the waiting queue). Visitors are
//!   the widget's API: they start a conversation, open its event
//!   WebSocket and send their messages on it as `message` frames, as the
//!   widget does while its socket is open (`--gateway-send http`: one POST
//!   each, the widget's fallback); each is committed before its
//!   `message_ack` (a `message_error` counts as a send error) and echoed
//!   on that WebSocket as its `message` event.
//!
//! Every message body carries its scheduled send time (microseconds on
//! this process's monotonic clock); latency is receive time minus that, at
//! the receiving client: the Prosody agent, or the visitor's own event
//! WebSocket for the gateway. Stamping the *scheduled* time means a sender
//! that falls behind its schedule shows it in the latency, not only in the
//! achieved rate.
//!
//! Server CPU is `utime + stime` of the server process from
//! `/proc/PID/stat` (all threads), read before and after the measured
//! window; for PostgreSQL the database's client backends are read too and
//! shown on their own line. Memory is `VmRSS` from `/proc/PID/status`
//! before the sessions and after N idle ones; per session is the growth
//! divided by N (PostgreSQL backends' memory is not in it). The load
//! generator runs on the same machine, so what it costs is in the
//! machine's load but never in the server figures (its own CPU is printed
//! next to them). `FRONTDESK_COMPARE_PROSODY_LOG=debug` raises Prosody's
//! log level from `warn` when a Prosody run needs explaining.
//!
//! Modes: `relay` (K visitors sending to one agent at a total rate for a
//! duration), `idle` (N sessions opened, then held idle: memory per
//! session, and how fast they opened), `starts` (N sessions opened as fast
//! as `--concurrency` allows; for the gateway every one joins the same
//! waiting queue, so the last starts happen under a long queue), `soak`
//! (`relay` printing the server's RSS and CPU every `--sample-secs`, for a
//! long `--secs`), `agents` (see below), `all` (relay, then idle). Each
//! server is started fresh for each mode and is gone when its run ends.
//! Benchmarks print figures; nothing here asserts a timing.
//!
//! `agents`: the K visitors write to `--agents` agent clients (c2s, as
//! above, accounts `agent1`…) that answer each timed message at once with
//! an echo stamped with its own send time, so both directions are timed:
//! visitor → agent at the agent client, agent → visitor at the visitor.
//! On Prosody alone visitor n writes to agent `n mod A + 1` and the agent
//! answers the visitor's full JID. Through the gateway the same Prosody
//! (same options and accounts, each with the component's subscription
//! pre-approved) has the gateway's XEP-0114 component connected (`[xmpp]`,
//! agents 101… as those accounts in one `rrmemory` queue with enough chat
//! slots for all K); the agents log in first, answer each offer's card
//! (which takes the chat) and, as agents' clients do, each XEP-0184 receipt
//! request (`--agent-receipts false`: not); the window starts once every
//! visitor saw `agent_joined`. Visitors send `message` frames on their event
//! WebSocket and time the agent's echo as its `message` event there. CPU is
//! the gateway's (and its PostgreSQL backends') and, on its own line, that
//! Prosody's; the table gives each direction's p99 as a multiple of
//! Prosody's own in the same run.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use clap::{Parser, ValueEnum};
use futures::{SinkExt, StreamExt};
use hdrhistogram::Histogram;
use minidom::Element;
use tokio::net::TcpStream;
use tokio::task::JoinHandle;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::http::HeaderValue;
use tokio_tungstenite::tungstenite::Message as WsMessage;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};
use xmpp_parsers::bind::{BindQuery, BindResponse};
use xmpp_parsers::jid::BareJid;
use xmpp_parsers::sasl::{Auth, Mechanism};
use xmpp_parsers::websocket::Open;

use frontdesk_tests::bench::{
    histogram, proc_cpu_micros, proc_status_kib, xmpp_bridge_toml, BenchGateway,
};
use frontdesk_tests::config::test_config_toml;
use frontdesk_tests::database::{postgres_admin_url, DbEngine, TestDb};
use frontdesk_tests::visitor::{EventStream, Session, StreamItem, Visitor};
use frontdesk_tests::xmpp_server::{Account, ProsodyOptions, XmppServer, HOST};

/// The anonymous visitor host of the Prosody run.
const VISITOR_HOST: &str = "visitors.localhost";
/// The one agent account visitors write to on Prosody.
const AGENT: &str = "agent";
/// Every timed body starts with this, then the scheduled send time.
const MARK: &str = "cmp t=";
/// How long any one protocol step (a login step, an event) may take.
const STEP_WAIT: Duration = Duration::from_secs(30);
/// After the senders are done, how long without a new delivery ends the
/// drain (and at most how long the drain lasts).
const DRAIN_QUIET: Duration = Duration::from_secs(3);
const DRAIN_MAX: Duration = Duration::from_secs(60);

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Mode {
    Relay,
    Idle,
    Starts,
    /// `relay` with the server's RSS and CPU printed every
    /// `--sample-secs` (give it a long `--secs`).
    Soak,
    /// Visitors writing to agent clients that echo each message back,
    /// both directions timed (Prosody alone, then gateway + Prosody).
    Agents,
    All,
}

/// How the gateway's visitors send their messages.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum GatewaySend {
    /// A `message` frame on the event WebSocket, answered `message_ack`.
    Ws,
    /// `POST /api/v1/conversations/{id}/messages`, answered `201`.
    Http,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum ServerKind {
    Prosody,
    Sqlite,
    Postgres,
}

impl ServerKind {
    fn label(self) -> &'static str {
        match self {
            ServerKind::Prosody => "Prosody",
            ServerKind::Sqlite => "Frontdesk SQLite",
            ServerKind::Postgres => "Frontdesk PostgreSQL",
        }
    }
}

#[derive(Parser, Debug)]
#[command(about = "A stock Prosody next to the Frontdesk gateway, same load, one table")]
struct Args {
    /// What to measure.
    #[arg(long, value_enum, default_value = "relay")]
    mode: Mode,
    /// Servers to run, in this order.
    #[arg(
        long,
        value_enum,
        value_delimiter = ',',
        default_value = "prosody,sqlite,postgres"
    )]
    servers: Vec<ServerKind>,
    /// Visitors sending in `relay` and `agents`.
    #[arg(short = 'k', long, default_value_t = 100)]
    visitors: usize,
    /// Total messages per second offered in `relay` and `agents` (spread
    /// evenly over the visitors).
    #[arg(long, default_value_t = 500.0)]
    rate: f64,
    /// Length of the `relay` and `agents` send window, in seconds.
    #[arg(long, default_value_t = 20.0)]
    secs: f64,
    /// Sessions opened in `idle` and `starts`.
    #[arg(long, default_value_t = 1000)]
    sessions: usize,
    /// Session starts in flight at once in `idle` and `starts`.
    #[arg(long, default_value_t = 20)]
    concurrency: usize,
    /// In `idle`, how long the sessions sit idle before memory is read.
    #[arg(long, default_value_t = 5.0)]
    settle_secs: f64,
    /// In `relay` and `soak`, print the server's RSS and CPU every this
    /// many seconds (0: never; `soak` defaults to 10).
    #[arg(long)]
    sample_secs: Option<f64>,
    /// How the gateway's visitors send in `relay` and `soak`: frames on
    /// their event WebSocket, or a POST each.
    #[arg(long, value_enum, default_value = "ws")]
    gateway_send: GatewaySend,
    /// Agent clients in `agents` (at most one per visitor).
    #[arg(long, default_value_t = 10)]
    agents: usize,
    /// In `agents`, whether the agents' clients answer the gateway's
    /// XEP-0184 receipt requests (as Conversations, Gajim and Dino do).
    #[arg(long, action = clap::ArgAction::Set, default_value_t = true)]
    agent_receipts: bool,
}

// ---------------------------------------------------------------- clock

/// The monotonic origin every body timestamp counts from.
fn epoch() -> Instant {
    static EPOCH: OnceLock<Instant> = OnceLock::new();
    *EPOCH.get_or_init(Instant::now)
}

fn micros_since_epoch(at: Instant) -> u64 {
    at.saturating_duration_since(epoch()).as_micros() as u64
}

/// A timed body: the scheduled send time first, then some chat-like text
/// (the same bytes on every server).
fn timed_body(scheduled: Instant, visitor: usize, i: usize) -> String {
    format!(
        "{MARK}{} v={visitor} i={i} Hello, I have a question about my order",
        micros_since_epoch(scheduled)
    )
}

fn scheduled_at(body: &str) -> Option<u64> {
    body.strip_prefix(MARK)?.split(' ').next()?.parse().ok()
}

/// Deliveries seen by the receiving clients of one run.
struct Recorder {
    latency: Mutex<Histogram<u64>>,
    delivered: AtomicUsize,
    /// Microseconds since the epoch of the last delivery.
    last: AtomicU64,
}

impl Recorder {
    fn new() -> Arc<Recorder> {
        Arc::new(Recorder {
            latency: Mutex::new(histogram()),
            delivered: AtomicUsize::new(0),
            last: AtomicU64::new(0),
        })
    }

    /// Notes a timed body's latency; false (nothing noted) for any other.
    fn note(&self, body: &str) -> bool {
        let Some(scheduled) = scheduled_at(body) else {
            return false;
        };
        let now = micros_since_epoch(Instant::now());
        let _ = self
            .latency
            .lock()
            .expect("latency lock")
            .record(now.saturating_sub(scheduled).max(1));
        self.delivered.fetch_add(1, Ordering::Relaxed);
        self.last.fetch_max(now, Ordering::Relaxed);
        true
    }

    fn delivered(&self) -> usize {
        self.delivered.load(Ordering::Relaxed)
    }

    /// From `start` to the last delivery (at least 1 ms).
    fn window_since(&self, start: Instant) -> Duration {
        let last = Duration::from_micros(self.last.load(Ordering::Relaxed));
        let window = (epoch() + last).saturating_duration_since(start);
        window.max(Duration::from_millis(1))
    }

    /// Waits until `expected` messages arrived, or nothing arrived for
    /// [`DRAIN_QUIET`], or [`DRAIN_MAX`] passed.
    async fn drain(&self, expected: usize) {
        let started = Instant::now();
        let mut seen = self.delivered();
        let mut quiet_since = Instant::now();
        while seen < expected && started.elapsed() < DRAIN_MAX {
            tokio::time::sleep(Duration::from_millis(50)).await;
            let now = self.delivered();
            if now != seen {
                seen = now;
                quiet_since = Instant::now();
            } else if quiet_since.elapsed() > DRAIN_QUIET {
                break;
            }
        }
    }
}

// ------------------------------------------------------------- servers

/// CPU used so far by a server: its process, and for PostgreSQL the
/// database's client backends by pid.
struct CpuSample {
    server_us: u64,
    backends_us: HashMap<u32, u64>,
}

impl CpuSample {
    /// (server process, PostgreSQL backends) microseconds from `earlier`
    /// to `self`; a backend that appeared in between counts whole.
    fn since(&self, earlier: &CpuSample) -> (u64, u64) {
        let backends = self
            .backends_us
            .iter()
            .map(|(pid, us)| us.saturating_sub(*earlier.backends_us.get(pid).unwrap_or(&0)))
            .sum();
        (self.server_us.saturating_sub(earlier.server_us), backends)
    }
}

enum Server {
    Prosody(Box<XmppServer>),
    Gateway {
        gateway: Box<BenchGateway>,
        /// The PostgreSQL database name, for its backends.
        pg_database: Option<String>,
    },
}

/// The throwaway Prosody of every run: the anonymous visitor host over
/// RFC 7395, Nagle off, the c2s rate limit raised, logging at `warn`.
fn prosody_options() -> ProsodyOptions {
    ProsodyOptions {
        no_nagle: true,
        anonymous_websocket_host: Some(VISITOR_HOST.to_owned()),
        raised_c2s_limits: true,
        log_level: Some(
            std::env::var("FRONTDESK_COMPARE_PROSODY_LOG").unwrap_or_else(|_| "warn".to_owned()),
        ),
    }
}

impl Server {
    async fn start(kind: ServerKind) -> anyhow::Result<Server> {
        Ok(match kind {
            ServerKind::Prosody => {
                let server =
                    XmppServer::prosody_with(&[Account::new(AGENT)], prosody_options()).await?;
                Server::Prosody(Box::new(server))
            }
            ServerKind::Sqlite | ServerKind::Postgres => {
                // Every session waits in queue 600 (no agent takes it), so
                // the queue's own bound (500 by default) is lifted; the
                // connection caps (4,096) are raised to what the process's
                // file descriptors allow, for `idle` at 19,000 sessions.
                Server::gateway(kind, |db| {
                    let config = test_config_toml(&db.url(), db.data_dir());
                    let per_ip = "max_connections_per_ip = 4096\n";
                    anyhow::ensure!(config.contains("max_per_client = 0\n"));
                    anyhow::ensure!(config.contains(per_ip));
                    Ok(config
                        .replacen(
                            "max_per_client = 0\n",
                            "max_per_client = 0\nmax_per_queue = 0\n",
                            1,
                        )
                        .replacen(
                            per_ip,
                            "max_connections_per_ip = 20000\nmax_connections = 20000\n",
                            1,
                        ))
                })
                .await?
            }
        })
    }

    /// A gateway of `kind`'s engine on a fresh database, with the
    /// configuration `config` makes for it.
    async fn gateway(
        kind: ServerKind,
        config: impl FnOnce(&TestDb) -> anyhow::Result<String>,
    ) -> anyhow::Result<Server> {
        let engine = match kind {
            ServerKind::Sqlite => DbEngine::Sqlite,
            ServerKind::Postgres => DbEngine::Postgres,
            ServerKind::Prosody => bail!("Prosody is no gateway"),
        };
        let gateway = BenchGateway::start(engine, config).await?;
        let pg_database = (engine == DbEngine::Postgres).then(|| {
            let url = gateway.db().url();
            url.rsplit('/').next().unwrap_or_default().to_owned()
        });
        Ok(Server::Gateway {
            gateway: Box::new(gateway),
            pg_database,
        })
    }

    fn pid(&self) -> anyhow::Result<u32> {
        match self {
            Server::Prosody(server) => server.pid(),
            Server::Gateway { gateway, .. } => gateway.process.pid(),
        }
        .context("the server process is gone")
    }

    fn is_postgres(&self) -> bool {
        matches!(
            self,
            Server::Gateway {
                pg_database: Some(_),
                ..
            }
        )
    }

    fn rss_kib(&self) -> anyhow::Result<u64> {
        proc_status_kib(self.pid()?, "VmRSS")
    }

    async fn cpu(&self) -> anyhow::Result<CpuSample> {
        let server_us = proc_cpu_micros(self.pid()?)?;
        let mut backends_us = HashMap::new();
        if let Server::Gateway {
            pg_database: Some(name),
            ..
        } = self
        {
            use sqlx::Connection;
            let mut conn = sqlx::PgConnection::connect(&postgres_admin_url()).await?;
            let pids: Vec<i32> = sqlx::query_scalar(
                "SELECT pid FROM pg_stat_activity WHERE datname = $1 AND backend_type = 'client backend'",
            )
            .bind(name)
            .fetch_all(&mut conn)
            .await?;
            conn.close().await?;
            for pid in pids {
                let pid = pid as u32;
                // A backend may exit between the query and the read.
                if let Ok(us) = proc_cpu_micros(pid) {
                    backends_us.insert(pid, us);
                }
            }
        }
        Ok(CpuSample {
            server_us,
            backends_us,
        })
    }

    async fn stop(self) -> anyhow::Result<()> {
        match self {
            Server::Prosody(server) => drop(server),
            Server::Gateway { gateway, .. } => gateway.stop().await?,
        }
        Ok(())
    }
}

// ------------------------------------------- XMPP over WebSocket (visitor)

type Ws = WebSocketStream<MaybeTlsStream<TcpStream>>;

/// The client stanza namespace. Stanzas are built as plain elements: the
/// workspace builds xmpp-parsers with its `component` feature (for the
/// bridge), which puts its stanza types in `jabber:component:accept`.
const NS_CLIENT: &str = "jabber:client";

fn ncname(name: &str) -> minidom::rxml::NcName {
    minidom::rxml::NcName::try_from(name).expect("a valid XML name")
}

/// `<message type="chat" to=…><body>…</body></message>`.
fn chat_message(to: &str, body: String) -> Element {
    Element::builder("message", NS_CLIENT)
        .attr(ncname("to"), to)
        .attr(ncname("type"), "chat")
        .append(Element::builder("body", NS_CLIENT).append(body).build())
        .build()
}

/// Resource binding, the server choosing the resource.
fn bind_request() -> Element {
    Element::builder("iq", NS_CLIENT)
        .attr(ncname("type"), "set")
        .attr(ncname("id"), "bind")
        .append(Element::from(BindQuery::new(None)))
        .build()
}

/// The full JID of a resource binding result.
fn bound_jid(reply: &Element) -> anyhow::Result<String> {
    let bind = (reply.name() == "iq" && reply.attr("type") == Some("result"))
        .then(|| reply.get_child("bind", xmpp_parsers::ns::BIND))
        .flatten()
        .with_context(|| format!("resource binding failed: {}", String::from(reply)))?;
    Ok(BindResponse::try_from(bind.clone())?.jid.to_string())
}

async fn ws_send(ws: &mut Ws, element: Element) -> anyhow::Result<()> {
    ws.send(WsMessage::Text(String::from(&element).into()))
        .await?;
    Ok(())
}

/// The next top-level element (RFC 7395: one per text frame).
async fn ws_next(ws: &mut Ws) -> anyhow::Result<Element> {
    tokio::time::timeout(STEP_WAIT, async {
        loop {
            match ws.next().await {
                Some(Ok(WsMessage::Text(text))) => {
                    return text
                        .parse::<Element>()
                        .with_context(|| format!("not an XML element: {text}"));
                }
                Some(Ok(WsMessage::Close(frame))) => bail!("WebSocket closed: {frame:?}"),
                Some(Ok(_)) => continue,
                Some(Err(e)) => return Err(e.into()),
                None => bail!("WebSocket closed"),
            }
        }
    })
    .await
    .context("no XMPP element in time")?
}

/// Sends `<open/>` and reads the server's `<open/>` and stream features.
async fn ws_open_stream(ws: &mut Ws, host: &BareJid) -> anyhow::Result<Element> {
    ws_send(ws, Open::new(host.clone()).into()).await?;
    let open = ws_next(ws).await?;
    Open::try_from(open.clone()).with_context(|| format!("expected <open/>: {open:?}"))?;
    let features = ws_next(ws).await?;
    anyhow::ensure!(
        features.name() == "features",
        "expected stream features: {}",
        String::from(&features)
    );
    Ok(features)
}

/// An anonymous visitor session on Prosody over RFC 7395: stream, SASL
/// ANONYMOUS, stream restart, resource binding. Returns the socket and
/// the bound JID.
async fn xmpp_ws_login(url: &str, host: &BareJid) -> anyhow::Result<(Ws, String)> {
    let mut request = url.into_client_request()?;
    request
        .headers_mut()
        .insert("sec-websocket-protocol", HeaderValue::from_static("xmpp"));
    // Browsers set TCP_NODELAY on WebSockets; so does this client.
    let (mut ws, response) =
        tokio_tungstenite::connect_async_with_config(request, None, true).await?;
    anyhow::ensure!(
        response
            .headers()
            .get("sec-websocket-protocol")
            .is_some_and(|p| p == "xmpp"),
        "the server did not accept the xmpp subprotocol"
    );
    let features = ws_open_stream(&mut ws, host).await?;
    anyhow::ensure!(
        String::from(&features).contains("ANONYMOUS"),
        "no SASL ANONYMOUS offered: {}",
        String::from(&features)
    );
    let auth = Auth {
        mechanism: Mechanism::Anonymous,
        data: Vec::new(),
    };
    ws_send(&mut ws, auth.into()).await?;
    let outcome = ws_next(&mut ws).await?;
    anyhow::ensure!(
        outcome.name() == "success",
        "SASL ANONYMOUS failed: {}",
        String::from(&outcome)
    );
    ws_open_stream(&mut ws, host).await?;
    ws_send(&mut ws, bind_request()).await?;
    let jid = bound_jid(&ws_next(&mut ws).await?)?;
    Ok((ws, jid))
}

/// Reads (and drops) whatever a socket receives, so pings get their pongs,
/// until it closes or the task is aborted.
fn drain_ws(mut stream: impl futures::Stream + Unpin + Send + 'static) -> JoinHandle<()> {
    tokio::spawn(async move { while stream.next().await.is_some() {} })
}

type AgentStream = tokio_xmpp::xmlstream::XmlStream<tokio::io::BufStream<TcpStream>, Element>;

/// XEP-0184 message delivery receipts.
const NS_RECEIPTS: &str = "urn:xmpp:receipts";

async fn agent_next(stream: &mut AgentStream) -> anyhow::Result<Element> {
    use tokio_xmpp::xmlstream::ReadError;
    loop {
        match stream.next().await {
            Some(Ok(element)) => return Ok(element),
            Some(Err(ReadError::SoftTimeout)) => continue,
            Some(Err(e)) => bail!("agent stream: {e}"),
            None => bail!("agent stream closed"),
        }
    }
}

/// An agent logged in as `account`: a c2s client on Prosody's plain
/// loopback TCP port (an XML stream by tokio-xmpp's `xmlstream`, SASL
/// PLAIN, resource binding, initial presence so messages to its bare JID
/// reach it).
async fn agent_login(server: &XmppServer, account: &Account) -> anyhow::Result<AgentStream> {
    use std::borrow::Cow;
    use tokio_xmpp::xmlstream::{initiate_stream, StreamHeader, Timeouts};

    let header = || StreamHeader {
        to: Some(Cow::Borrowed(HOST)),
        from: None,
        id: None,
    };
    let login = async {
        let tcp = TcpStream::connect(("127.0.0.1", server.c2s_port)).await?;
        tcp.set_nodelay(true)?;
        let pending = initiate_stream(
            tokio::io::BufStream::new(tcp),
            NS_CLIENT,
            header(),
            Timeouts::default(),
        )
        .await?;
        let (_, mut stream) = pending.recv_features::<Element>().await?;
        let auth = Auth {
            mechanism: Mechanism::Plain,
            data: format!("\0{}\0{}", account.user, account.password).into_bytes(),
        };
        stream.send(&Element::from(auth)).await?;
        let outcome = agent_next(&mut stream).await?;
        anyhow::ensure!(
            outcome.name() == "success",
            "agent SASL PLAIN failed: {}",
            String::from(&outcome)
        );
        let pending = stream.initiate_reset().send_header(header()).await?;
        let (_, mut stream) = pending.recv_features::<Element>().await?;
        stream.send(&bind_request()).await?;
        bound_jid(&agent_next(&mut stream).await?)?;
        stream
            .send(&Element::builder("presence", NS_CLIENT).build())
            .await?;
        Ok::<_, anyhow::Error>(stream)
    };
    tokio::time::timeout(STEP_WAIT, login)
        .await
        .context("the agent did not log in in time")?
        .with_context(|| {
            let log = std::fs::read_to_string(server.log()).unwrap_or_default();
            format!("agent {} login; Prosody's log:\n{log}", account.user)
        })
}

/// What an echoing agent does beyond noting timed bodies (`agents`).
#[derive(Clone)]
struct Echo {
    /// Answer XEP-0184 receipt requests, as agents' clients do.
    receipts: bool,
    /// Error stanzas the agents received (a bounced or refused reply).
    errors: Arc<AtomicUsize>,
}

/// The agent `account` logged in; every timed body it receives is noted in
/// `recorder`, and with `echo` it answers (see [`echo_one`]).
async fn xmpp_agent(
    server: &XmppServer,
    account: &Account,
    recorder: Arc<Recorder>,
    echo: Option<Echo>,
) -> anyhow::Result<JoinHandle<()>> {
    let mut stream = agent_login(server, account).await?;
    let user = account.user.clone();
    Ok(tokio::spawn(async move {
        let mut greeted = std::collections::HashSet::new();
        while let Ok(element) = agent_next(&mut stream).await {
            if element.name() != "message" {
                continue;
            }
            let Some(echo) = &echo else {
                if let Some(body) = element.get_child("body", NS_CLIENT) {
                    recorder.note(&body.text());
                }
                continue;
            };
            let answered = echo_one(&mut stream, &element, &recorder, echo, &mut greeted).await;
            if let Err(e) = answered {
                eprintln!("agent {user}: {e:#}");
                return;
            }
        }
    }))
}

/// An echoing agent's answer to one message: its receipt first if one is
/// asked for (and `echo.receipts`), then for a timed body the same text
/// stamped with this send time; the first untimed body from an address
/// (the gateway's offer card) is answered with a greeting, which takes the
/// chat; any other untimed body is left unanswered.
async fn echo_one(
    stream: &mut AgentStream,
    message: &Element,
    recorder: &Recorder,
    echo: &Echo,
    greeted: &mut std::collections::HashSet<String>,
) -> anyhow::Result<()> {
    let from = message.attr("from").unwrap_or_default();
    if message.attr("type") == Some("error") {
        echo.errors.fetch_add(1, Ordering::Relaxed);
        eprintln!("agent: error stanza {}", String::from(message));
        return Ok(());
    }
    if let (true, Some(_), Some(id)) = (
        echo.receipts,
        message.get_child("request", NS_RECEIPTS),
        message.attr("id"),
    ) {
        let received = Element::builder("received", NS_RECEIPTS)
            .attr(ncname("id"), id)
            .build();
        let receipt = Element::builder("message", NS_CLIENT)
            .attr(ncname("to"), from)
            .append(received)
            .build();
        stream.send(&receipt).await?;
    }
    let Some(body) = message.get_child("body", NS_CLIENT).map(Element::text) else {
        return Ok(());
    };
    let reply = if recorder.note(&body) {
        let rest = body
            .strip_prefix(MARK)
            .and_then(|b| b.split_once(' '))
            .map_or("", |(_, rest)| rest);
        format!("{MARK}{} echo {rest}", micros_since_epoch(Instant::now()))
    } else if greeted.insert(from.split('/').next().unwrap_or_default().to_owned()) {
        "Hello, how can I help?".to_owned()
    } else {
        return Ok(());
    };
    stream.send(&chat_message(from, reply)).await?;
    Ok(())
}

// --------------------------------------------------------------- relay

struct RelayFigures {
    offered_rate: f64,
    sent: usize,
    delivered: usize,
    /// Send window start to last delivery.
    window: Duration,
    latency: Histogram<u64>,
    server_cpu_us: u64,
    backends_cpu_us: Option<u64>,
    rss_start_kib: u64,
    rss_end_kib: u64,
    send_errors: usize,
    /// This process (the load generator and the receiving clients), over
    /// the same window: it shares the machine's cores with the server.
    client_cpu_us: u64,
}

impl RelayFigures {
    fn achieved(&self) -> f64 {
        self.delivered as f64 / self.window.as_secs_f64()
    }
    fn cpu_per_message(&self, us: u64) -> f64 {
        us as f64 / self.delivered.max(1) as f64
    }
}

/// The send schedule of a run's K visitors, and its counters.
#[derive(Clone)]
struct Schedule {
    k: usize,
    per_visitor: usize,
    rate: f64,
    secs: f64,
    /// Messages sent (Prosody) or acknowledged (gateway).
    sent: Arc<AtomicUsize>,
    errors: Arc<AtomicUsize>,
}

impl Schedule {
    fn new(args: &Args) -> Schedule {
        let k = args.visitors.max(1);
        Schedule {
            k,
            per_visitor: ((args.rate * args.secs) / k as f64).round().max(1.0) as usize,
            rate: args.rate,
            secs: args.secs,
            sent: Arc::new(AtomicUsize::new(0)),
            errors: Arc::new(AtomicUsize::new(0)),
        }
    }

    /// The ticks of visitor `n`, evenly interleaved with the others' so
    /// the total rate is steady.
    fn ticks(&self, start: Instant, n: usize) -> tokio::time::Interval {
        let period = Duration::from_secs_f64(self.k as f64 / self.rate);
        let offset = period.mul_f64(n as f64 / self.k as f64);
        tokio::time::interval_at((start + offset).into(), period)
    }

    fn sent(&self) -> usize {
        self.sent.load(Ordering::Relaxed)
    }

    fn errors(&self) -> usize {
        self.errors.load(Ordering::Relaxed)
    }

    /// Waits for the senders' schedules from `start` to end (they then
    /// hold their sessions), plus a margin for those that fell behind,
    /// then for `recorder` to have seen what was sent.
    async fn finish(&self, start: Instant, recorder: &Recorder) {
        let schedule_end = start + Duration::from_secs_f64(self.secs);
        let expected = self.per_visitor * self.k;
        loop {
            tokio::time::sleep(Duration::from_millis(100)).await;
            let done = self.sent() + self.errors() >= expected;
            if done || Instant::now() > schedule_end + DRAIN_MAX {
                break;
            }
        }
        recorder.drain(self.sent()).await;
    }
}

/// The K visitors of `schedule` logged in on Prosody over RFC 7395; from
/// the returned start, visitor n sends its timed messages to `to(n)`. What
/// they receive is noted in `inbox` (read and dropped without one).
async fn xmpp_ws_visitors(
    xmpp: &XmppServer,
    schedule: &Schedule,
    to: impl Fn(usize) -> String,
    inbox: Option<Arc<Recorder>>,
    tasks: &mut Vec<JoinHandle<()>>,
) -> anyhow::Result<Instant> {
    let url = xmpp.websocket_url().context("no WebSocket listener")?;
    let host = BareJid::new(VISITOR_HOST)?;
    let sockets: Vec<(Ws, String)> = futures::stream::iter(0..schedule.k)
        .map(|_| xmpp_ws_login(&url, &host))
        .buffered(20)
        .collect::<Vec<_>>()
        .await
        .into_iter()
        .collect::<anyhow::Result<_>>()?;
    let start = Instant::now() + Duration::from_millis(500);
    for (n, (ws, _jid)) in sockets.into_iter().enumerate() {
        let (mut sink, stream) = ws.split();
        tasks.push(match &inbox {
            Some(inbox) => xmpp_ws_inbox(stream, inbox.clone()),
            None => drain_ws(stream),
        });
        let (to, schedule) = (to(n), schedule.clone());
        tasks.push(tokio::spawn(async move {
            let mut ticks = schedule.ticks(start, n);
            for i in 0..schedule.per_visitor {
                let scheduled = ticks.tick().await.into_std();
                let message = chat_message(&to, timed_body(scheduled, n, i));
                let frame = String::from(&message);
                if sink.send(WsMessage::Text(frame.into())).await.is_err() {
                    schedule.errors.fetch_add(1, Ordering::Relaxed);
                    break;
                }
                schedule.sent.fetch_add(1, Ordering::Relaxed);
            }
            // Keep the session until the run ends.
            std::future::pending::<()>().await;
        }));
    }
    Ok(start)
}

/// Reads a Prosody visitor's socket, noting the timed bodies of the
/// messages it receives.
fn xmpp_ws_inbox(
    mut stream: futures::stream::SplitStream<Ws>,
    inbox: Arc<Recorder>,
) -> JoinHandle<()> {
    tokio::spawn(async move {
        while let Some(Ok(frame)) = stream.next().await {
            let WsMessage::Text(text) = frame else {
                continue;
            };
            let Ok(element) = text.parse::<Element>() else {
                continue;
            };
            if element.name() == "message" {
                if let Some(body) = element.get_child("body", NS_CLIENT) {
                    inbox.note(&body.text());
                }
            }
        }
    })
}

/// K visitors on the gateway: each starts a conversation on channel
/// `live` and opens its event WebSocket; with `joined`, each also waits
/// until an agent took its chat (`agent_joined`).
async fn gateway_visitors(
    url: &str,
    k: usize,
    joined: bool,
) -> anyhow::Result<Vec<(Visitor, Session, EventStream)>> {
    futures::stream::iter(0..k)
        .map(|n| async move {
            let visitor = Visitor::new(url);
            let session = visitor.start("live", &format!("Visitor {n}")).await?;
            let mut events = visitor.events(&session, 0).await?;
            if joined {
                events
                    .next_matching(STEP_WAIT, |e| e["type"] == "agent_joined")
                    .await
                    .with_context(|| format!("visitor {n}: no agent took the chat"))?;
            }
            Ok((visitor, session, events))
        })
        .buffered(20)
        .collect::<Vec<_>>()
        .await
        .into_iter()
        .collect()
}

async fn relay(kind: ServerKind, args: &Args) -> anyhow::Result<RelayFigures> {
    let server = Server::start(kind).await?;
    let result = relay_on(&server, args).await;
    server.stop().await?;
    result
}

async fn relay_on(server: &Server, args: &Args) -> anyhow::Result<RelayFigures> {
    let schedule = Schedule::new(args);
    let (k, per_visitor) = (schedule.k, schedule.per_visitor);
    let recorder = Recorder::new();
    // Set up the K visitors (and the agent), then start every sender on
    // one schedule.
    let mut tasks = Vec::new();
    let start = match server {
        Server::Prosody(xmpp) => {
            let agent = xmpp_agent(xmpp, &xmpp.accounts[0], recorder.clone(), None).await?;
            tasks.push(agent);
            let agent = format!("{AGENT}@{HOST}");
            xmpp_ws_visitors(xmpp, &schedule, |_| agent.clone(), None, &mut tasks).await?
        }
        Server::Gateway { gateway, .. } => {
            let opened = gateway_visitors(gateway.url(), k, false).await?;
            let start = Instant::now() + Duration::from_millis(500);
            for (n, (visitor, session, mut events)) in opened.into_iter().enumerate() {
                if args.gateway_send == GatewaySend::Ws {
                    tasks.push(tokio::spawn(socket_visitor(
                        n,
                        (schedule.clone(), start),
                        events,
                        recorder.clone(),
                        "visitor",
                    )));
                    continue;
                }
                let recorder = recorder.clone();
                tasks.push(tokio::spawn(async move {
                    while let Ok(event) = events
                        .next_matching(Duration::from_secs(3600), |e| e["type"] == "message")
                        .await
                    {
                        recorder.note(event["message"]["body"].as_str().unwrap_or_default());
                    }
                }));
                let schedule = schedule.clone();
                tasks.push(tokio::spawn(async move {
                    let mut ticks = schedule.ticks(start, n);
                    for i in 0..per_visitor {
                        let scheduled = ticks.tick().await.into_std();
                        let body = timed_body(scheduled, n, i);
                        match visitor.say(&session, &format!("c-{n}-{i}"), &body).await {
                            Ok(reply) if reply.status == 201 => {
                                schedule.sent.fetch_add(1, Ordering::Relaxed);
                            }
                            Ok(reply) => {
                                eprintln!("visitor {n}: {} {}", reply.status, reply.body);
                                schedule.errors.fetch_add(1, Ordering::Relaxed);
                            }
                            Err(e) => {
                                eprintln!("visitor {n}: {e:#}");
                                schedule.errors.fetch_add(1, Ordering::Relaxed);
                            }
                        }
                    }
                    std::future::pending::<()>().await;
                }));
            }
            start
        }
    };
    tokio::time::sleep_until(start.into()).await;
    let cpu_before = server.cpu().await?;
    let client_before = proc_cpu_micros(std::process::id())?;
    let rss_start_kib = server.rss_kib()?;
    let sample_secs = args
        .sample_secs
        .unwrap_or(if args.mode == Mode::Soak { 10.0 } else { 0.0 });
    if sample_secs > 0.0 {
        tasks.push(sampler(server.pid()?, recorder.clone(), start, sample_secs));
    }
    schedule.finish(start, &recorder).await;
    let cpu_after = server.cpu().await?;
    let client_cpu_us = proc_cpu_micros(std::process::id())?.saturating_sub(client_before);
    let rss_end_kib = server.rss_kib()?;
    for task in tasks {
        task.abort();
    }
    let (server_cpu_us, backends_cpu_us) = cpu_after.since(&cpu_before);
    let latency = recorder.latency.lock().expect("latency lock").clone();
    Ok(RelayFigures {
        offered_rate: args.rate,
        sent: schedule.sent(),
        delivered: recorder.delivered(),
        window: recorder.window_since(start),
        latency,
        server_cpu_us,
        backends_cpu_us: server.is_postgres().then_some(backends_cpu_us),
        rss_start_kib,
        rss_end_kib,
        send_errors: schedule.errors(),
        client_cpu_us,
    })
}

/// A gateway visitor sending its messages of `schedule` (from `start`) as
/// `message` frames on its event socket, while reading the same socket:
/// the acks (`sent`), `message_error`s (`errors`), and the `message`
/// events of `sender` (`visitor`: its own messages' echo; `agent`: the
/// agent's answers), whose timed bodies are noted in `recorder`. Holds
/// the session once done.
async fn socket_visitor(
    n: usize,
    (schedule, start): (Schedule, Instant),
    mut events: EventStream,
    recorder: Arc<Recorder>,
    sender: &'static str,
) {
    let per_visitor = schedule.per_visitor;
    let mut ticks = schedule.ticks(start, n);
    let (sent, errors) = (&schedule.sent, &schedule.errors);
    let mut i = 0;
    loop {
        tokio::select! {
            tick = ticks.tick(), if i < per_visitor => {
                let body = timed_body(tick.into_std(), n, i);
                if let Err(e) = events.send_message(&format!("c-{n}-{i}"), &body).await {
                    eprintln!("visitor {n}: {e:#}");
                    errors.fetch_add(per_visitor - i, Ordering::Relaxed);
                    break;
                }
                i += 1;
            }
            item = events.next_item(Duration::from_secs(3600)) => match item {
                Ok(StreamItem::Event(event)) => match event["type"].as_str() {
                    Some("message") if event["message"]["sender"] == sender => {
                        recorder.note(event["message"]["body"].as_str().unwrap_or_default());
                    }
                    Some("message_ack") => {
                        sent.fetch_add(1, Ordering::Relaxed);
                    }
                    Some("message_error") => {
                        eprintln!("visitor {n}: {event}");
                        errors.fetch_add(1, Ordering::Relaxed);
                    }
                    _ => {}
                },
                Ok(StreamItem::Closed(code)) => {
                    eprintln!("visitor {n}: event stream closed ({code:?})");
                    errors.fetch_add(per_visitor - i, Ordering::Relaxed);
                    break;
                }
                Err(e) => {
                    eprintln!("visitor {n}: {e:#}");
                    errors.fetch_add(per_visitor - i, Ordering::Relaxed);
                    break;
                }
            },
        }
    }
    std::future::pending::<()>().await;
}

/// Prints, every `every` seconds, the messages delivered so far and the
/// server's RSS and CPU over the last interval (the soak's trace).
fn sampler(pid: u32, recorder: Arc<Recorder>, start: Instant, every: f64) -> JoinHandle<()> {
    tokio::spawn(async move {
        let period = Duration::from_secs_f64(every);
        let mut ticks = tokio::time::interval_at((start + period).into(), period);
        let mut last_cpu = proc_cpu_micros(pid).unwrap_or(0);
        loop {
            ticks.tick().await;
            let (Ok(cpu), Ok(rss)) = (proc_cpu_micros(pid), proc_status_kib(pid, "VmRSS")) else {
                return;
            };
            println!(
                "   t {:>6.0} s  delivered {:>8}  server RSS {:>7.1} MiB  CPU {:>5.1} % of one core",
                start.elapsed().as_secs_f64(),
                recorder.delivered(),
                rss as f64 / 1024.0,
                cpu.saturating_sub(last_cpu) as f64 / period.as_micros() as f64 * 100.0,
            );
            last_cpu = cpu;
        }
    })
}

// -------------------------------------------------------------- agents

struct AgentFigures {
    agents: usize,
    sent: usize,
    send_errors: usize,
    /// Error stanzas the agents received.
    agent_errors: usize,
    /// Visitor → agent, at the agent client.
    to_agent: Histogram<u64>,
    /// Agent → visitor (the echo), at the visitor.
    to_visitor: Histogram<u64>,
    /// Until all K conversations were active (gateway) or all K visitors
    /// logged in (Prosody).
    setup: Duration,
    /// Send window start to the last echo.
    window: Duration,
    /// The gateway, or Prosody alone.
    server_cpu_us: u64,
    backends_cpu_us: Option<u64>,
    /// The Prosody the gateway's component is connected to.
    prosody_cpu_us: Option<u64>,
    client_cpu_us: u64,
}

impl AgentFigures {
    /// Per visitor message (and its echo).
    fn cpu_per_message(&self, us: u64) -> f64 {
        us as f64 / self.to_visitor.len().max(1) as f64
    }
    fn percent_of_core(&self, us: u64) -> f64 {
        us as f64 / self.window.as_micros() as f64 * 100.0
    }
}

/// `agents` on one server: a Prosody with agent accounts `agent1`… whose
/// clients log in and echo (before any gateway starts, so its component's
/// presence probes find them online), then the visitors, on Prosody
/// itself or on a gateway bridged to it.
async fn agents(kind: ServerKind, args: &Args) -> anyhow::Result<AgentFigures> {
    let k = args.visitors.max(1);
    let users: Vec<String> = (1..=args.agents.clamp(1, k))
        .map(|i| format!("agent{i}"))
        .collect();
    let accounts: Vec<Account> = users
        .iter()
        .map(|u| Account::new(u).preapproved())
        .collect();
    let xmpp = XmppServer::prosody_with(&accounts, prosody_options()).await?;
    let to_agent = Recorder::new();
    let echo = Echo {
        receipts: args.agent_receipts,
        errors: Arc::new(AtomicUsize::new(0)),
    };
    let mut clients = Vec::new();
    for account in &xmpp.accounts {
        let client = xmpp_agent(&xmpp, account, to_agent.clone(), Some(echo.clone()));
        clients.push(client.await?);
    }
    let result = if kind == ServerKind::Prosody {
        let server = Server::Prosody(Box::new(xmpp));
        let result = agents_on(&server, None, args, &to_agent, &echo).await;
        server.stop().await?;
        result
    } else {
        // Chat slots for every visitor, whichever agent the round robin
        // gives it to.
        let slots = k.div_ceil(users.len()) + 1;
        let config = |db: &TestDb| {
            Ok(xmpp_bridge_toml(
                db, &xmpp, &users, "rrmemory", slots, "live",
            ))
        };
        let server = Server::gateway(kind, config).await?;
        let result = agents_on(&server, Some(&xmpp), args, &to_agent, &echo).await;
        server.stop().await?;
        result
    };
    for client in clients {
        client.abort();
    }
    result
}

async fn agents_on(
    server: &Server,
    beside: Option<&XmppServer>,
    args: &Args,
    to_agent: &Recorder,
    echo: &Echo,
) -> anyhow::Result<AgentFigures> {
    let schedule = Schedule::new(args);
    let agents = args.agents.clamp(1, schedule.k);
    let to_visitor = Recorder::new();
    let mut tasks = Vec::new();
    let setup_started = Instant::now();
    let start = match server {
        Server::Prosody(xmpp) => {
            let to = |n: usize| format!("agent{}@{HOST}", n % agents + 1);
            let inbox = Some(to_visitor.clone());
            xmpp_ws_visitors(xmpp, &schedule, to, inbox, &mut tasks).await?
        }
        Server::Gateway { gateway, .. } => {
            let opened = gateway_visitors(gateway.url(), schedule.k, true).await?;
            let start = Instant::now() + Duration::from_millis(500);
            for (n, (_visitor, _session, events)) in opened.into_iter().enumerate() {
                tasks.push(tokio::spawn(socket_visitor(
                    n,
                    (schedule.clone(), start),
                    events,
                    to_visitor.clone(),
                    "agent",
                )));
            }
            start
        }
    };
    let setup = setup_started.elapsed();
    let prosody_cpu = || -> anyhow::Result<Option<u64>> {
        beside
            .map(|xmpp| proc_cpu_micros(xmpp.pid().context("Prosody is gone")?))
            .transpose()
    };
    tokio::time::sleep_until(start.into()).await;
    let cpu_before = server.cpu().await?;
    let prosody_before = prosody_cpu()?;
    let client_before = proc_cpu_micros(std::process::id())?;
    schedule.finish(start, &to_visitor).await;
    let cpu_after = server.cpu().await?;
    let prosody_after = prosody_cpu()?;
    let client_cpu_us = proc_cpu_micros(std::process::id())?.saturating_sub(client_before);
    for task in tasks {
        task.abort();
    }
    let (server_cpu_us, backends_cpu_us) = cpu_after.since(&cpu_before);
    let histogram_of = |r: &Recorder| r.latency.lock().expect("latency lock").clone();
    Ok(AgentFigures {
        agents,
        sent: schedule.sent(),
        send_errors: schedule.errors(),
        agent_errors: echo.errors.load(Ordering::Relaxed),
        to_agent: histogram_of(to_agent),
        to_visitor: histogram_of(&to_visitor),
        setup,
        window: to_visitor.window_since(start),
        server_cpu_us,
        backends_cpu_us: server.is_postgres().then_some(backends_cpu_us),
        prosody_cpu_us: prosody_before
            .zip(prosody_after)
            .map(|(before, after)| after.saturating_sub(before)),
        client_cpu_us,
    })
}

/// `p50 / p90 / p99 / max` in milliseconds.
fn quantiles(h: &Histogram<u64>) -> String {
    format!(
        "{} / {} / {} / {}",
        ms(h.value_at_quantile(0.5)),
        ms(h.value_at_quantile(0.9)),
        ms(h.value_at_quantile(0.99)),
        ms(h.max())
    )
}

fn agents_label(kind: ServerKind) -> String {
    match kind {
        ServerKind::Prosody => "Prosody alone".to_owned(),
        _ => format!("{} + Prosody", kind.label()),
    }
}

fn agent_rows(
    args: &Args,
    servers: &[ServerKind],
    figures: &[anyhow::Result<AgentFigures>],
) -> Vec<(String, Vec<String>)> {
    let cell = |f: &dyn Fn(&AgentFigures) -> String| cells(figures, f);
    let baseline = servers
        .iter()
        .zip(figures)
        .find_map(|(kind, r)| (*kind == ServerKind::Prosody).then_some(r.as_ref().ok()))
        .flatten();
    let ratio = |h: &Histogram<u64>, base: &Histogram<u64>| {
        h.value_at_quantile(0.99) as f64 / base.value_at_quantile(0.99).max(1) as f64
    };
    vec![
        (
            "visitors → agents, msg/s offered".to_owned(),
            cell(&|f| format!("{} → {}, {:.0}", args.visitors, f.agents, args.rate)),
        ),
        (
            "sent / at agents / echoes at visitors (errors)".to_owned(),
            cell(&|f| {
                format!(
                    "{} / {} / {} ({})",
                    f.sent,
                    f.to_agent.len(),
                    f.to_visitor.len(),
                    f.send_errors + f.agent_errors
                )
            }),
        ),
        (
            "setup s (gateway: until all chats active)".to_owned(),
            cell(&|f| format!("{:.1}", f.setup.as_secs_f64())),
        ),
        (
            "visitor → agent p50 / p90 / p99 / max ms".to_owned(),
            cell(&|f| quantiles(&f.to_agent)),
        ),
        (
            "agent → visitor p50 / p90 / p99 / max ms".to_owned(),
            cell(&|f| quantiles(&f.to_visitor)),
        ),
        (
            "p99 ÷ Prosody's: visitor → agent / agent → visitor".to_owned(),
            cell(&|f| match baseline {
                Some(base) => format!(
                    "{:.2} / {:.2}",
                    ratio(&f.to_agent, &base.to_agent),
                    ratio(&f.to_visitor, &base.to_visitor)
                ),
                None => "–".to_owned(),
            }),
        ),
        (
            "server CPU µs/message (gateway, or Prosody alone)".to_owned(),
            cell(&|f| {
                format!(
                    "{:.0} ({:.0} % of one core)",
                    f.cpu_per_message(f.server_cpu_us),
                    f.percent_of_core(f.server_cpu_us)
                )
            }),
        ),
        (
            "+ PostgreSQL backends µs/message".to_owned(),
            cell(&|f| match f.backends_cpu_us {
                Some(us) => format!("{:.0}", f.cpu_per_message(us)),
                None => "–".to_owned(),
            }),
        ),
        (
            "+ Prosody beside the gateway µs/message".to_owned(),
            cell(&|f| match f.prosody_cpu_us {
                Some(us) => format!(
                    "{:.0} (total {:.0})",
                    f.cpu_per_message(us),
                    f.cpu_per_message(us + f.server_cpu_us + f.backends_cpu_us.unwrap_or_default())
                ),
                None => "–".to_owned(),
            }),
        ),
        (
            "load generator CPU, % of one core".to_owned(),
            cell(&|f| format!("{:.0}", f.percent_of_core(f.client_cpu_us))),
        ),
    ]
}

// ------------------------------------------------------------ sessions

struct SessionFigures {
    opened: usize,
    open_time: Duration,
    /// Starts per second early (5–15 % of the completions) and late (85–95
    /// %) in the run: the gateway's late starts join a queue already
    /// almost N long.
    early_rate: f64,
    late_rate: f64,
    start_latency: Histogram<u64>,
    start_cpu_us: u64,
    start_backends_cpu_us: Option<u64>,
    /// This process (the visitors) over the starts.
    client_cpu_us: u64,
    /// The server's and this process's CPU, % of one core, between the
    /// late rate's completions (from 100 ms samples).
    late_cpu: Option<(f64, f64)>,
    rss_before_kib: u64,
    /// After the settle time (idle mode only).
    rss_idle_kib: Option<u64>,
    /// Server CPU over the settle time, microseconds.
    idle_cpu_us: Option<u64>,
    settle: Duration,
}

impl SessionFigures {
    /// `us` of CPU over the starts, in milliseconds per start.
    fn ms_per_start(&self, us: u64) -> String {
        format!("{:.2}", us as f64 / 1000.0 / self.opened.max(1) as f64)
    }
    fn starts_per_second(&self) -> f64 {
        self.opened as f64 / self.open_time.as_secs_f64()
    }
    fn kib_per_session(&self) -> Option<f64> {
        self.rss_idle_kib
            .map(|after| (after as f64 - self.rss_before_kib as f64) / self.opened.max(1) as f64)
    }
}

/// One held session: a task draining its socket (aborting it closes it).
async fn open_session(
    server: &Server,
    shared_visitor: &Visitor,
    host: &BareJid,
    n: usize,
) -> anyhow::Result<JoinHandle<()>> {
    match server {
        Server::Prosody(xmpp) => {
            let url = xmpp.websocket_url().context("no WebSocket listener")?;
            let (ws, _jid) = xmpp_ws_login(&url, host).await?;
            Ok(drain_ws(ws))
        }
        Server::Gateway { .. } => {
            let session = shared_visitor
                .start("live", &format!("Visitor {n}"))
                .await?;
            let mut events = shared_visitor.events(&session, 0).await?;
            // The first durable event (the conversation's state) means the
            // socket is authenticated and live.
            events.next_event().await?;
            Ok(tokio::spawn(async move {
                while events
                    .next_item(Duration::from_secs(3600))
                    .await
                    .is_ok_and(|item| {
                        matches!(item, frontdesk_tests::visitor::StreamItem::Event(_))
                    })
                {}
            }))
        }
    }
}

async fn sessions(kind: ServerKind, args: &Args, idle: bool) -> anyhow::Result<SessionFigures> {
    let server = Server::start(kind).await?;
    let result = sessions_on(&server, args, idle).await;
    server.stop().await?;
    result
}

async fn sessions_on(server: &Server, args: &Args, idle: bool) -> anyhow::Result<SessionFigures> {
    // One HTTP client for every gateway visitor: its pool holds about
    // `--concurrency` keep-alive connections, so the gateway's memory is
    // that of the conversations and their WebSockets, not of a thousand
    // idle HTTP connections.
    let shared_visitor = match server {
        Server::Gateway { gateway, .. } => Visitor::new(gateway.url()),
        Server::Prosody(_) => Visitor::new("http://127.0.0.1:1"),
    };
    let host = BareJid::new(VISITOR_HOST)?;
    tokio::time::sleep(Duration::from_secs(1)).await;
    let rss_before_kib = server.rss_kib()?;
    let cpu_before = server.cpu().await?;
    let client_before = proc_cpu_micros(std::process::id())?;
    let started = Instant::now();
    // The server's and this process's CPU every 100 ms while the starts
    // run, to tell which of the two is busy late in the run.
    let samples = std::sync::Mutex::new(Vec::new());
    let sampling = async {
        let server_pid = server.pid()?;
        loop {
            let server_us = proc_cpu_micros(server_pid)?;
            let client_us = proc_cpu_micros(std::process::id())?;
            (samples.lock().unwrap()).push((Instant::now(), server_us, client_us));
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    };
    let opening = futures::stream::iter(0..args.sessions)
        .map(|n| {
            let (shared_visitor, host) = (&shared_visitor, &host);
            async move {
                let at = Instant::now();
                let held = open_session(server, shared_visitor, host, n)
                    .await
                    .with_context(|| format!("session {n}"))?;
                Ok((at, Instant::now(), held))
            }
        })
        .buffer_unordered(args.concurrency.max(1))
        .collect::<Vec<anyhow::Result<(Instant, Instant, JoinHandle<()>)>>>();
    let results = tokio::select! {
        results = opening => results,
        failed = sampling => return failed,
    };
    let open_time = started.elapsed();
    let cpu_opened = server.cpu().await?;
    let client_cpu_us = proc_cpu_micros(std::process::id())?.saturating_sub(client_before);
    let mut held = Vec::with_capacity(results.len());
    let mut start_latency = histogram();
    let mut failures = 0usize;
    let mut done_at = Vec::with_capacity(results.len());
    for result in results {
        match result {
            Ok((at, done, task)) => {
                start_latency.record(((done - at).as_micros() as u64).max(1))?;
                done_at.push(done);
                held.push(task);
            }
            Err(e) => {
                if failures < 5 {
                    eprintln!("{e:#}");
                }
                failures += 1;
            }
        }
    }
    let settle = Duration::from_secs_f64(args.settle_secs);
    let (rss_idle_kib, idle_cpu_us) = if idle {
        tokio::time::sleep(settle).await;
        let cpu_idle = server.cpu().await?;
        (Some(server.rss_kib()?), Some(cpu_idle.since(&cpu_opened).0))
    } else {
        (None, None)
    };
    for task in held.iter() {
        task.abort();
    }
    anyhow::ensure!(failures == 0, "{failures} sessions failed to start");
    let (start_cpu_us, backends) = cpu_opened.since(&cpu_before);
    // The rate between the 5th and 15th, and the 85th and 95th percent of
    // completions: early and late in the run, leaving out the ramp-up and
    // the final drain of the starts in flight.
    done_at.sort();
    let len = done_at.len();
    let rate_between = |from: usize, to: usize| {
        (to - from) as f64 / (done_at[to] - done_at[from]).as_secs_f64().max(1e-6)
    };
    let (early_rate, late_rate) = if len >= 20 {
        (
            rate_between(len * 5 / 100, len * 15 / 100),
            rate_between(len * 85 / 100, len * 95 / 100),
        )
    } else {
        (0.0, 0.0)
    };
    let late_cpu = if len >= 20 {
        late_cpu_percent(
            &samples.lock().unwrap(),
            done_at[len * 85 / 100],
            done_at[len * 95 / 100],
        )
    } else {
        None
    };
    Ok(SessionFigures {
        opened: held.len(),
        open_time,
        early_rate,
        late_rate,
        start_latency,
        start_cpu_us,
        start_backends_cpu_us: server.is_postgres().then_some(backends),
        client_cpu_us,
        late_cpu,
        rss_before_kib,
        rss_idle_kib,
        idle_cpu_us,
        settle,
    })
}

/// The server's and the client's CPU, % of one core, between the first
/// sample at or after `from` and the last at or before `to`.
fn late_cpu_percent(
    samples: &[(Instant, u64, u64)],
    from: Instant,
    to: Instant,
) -> Option<(f64, f64)> {
    let first = samples.iter().find(|(at, ..)| *at >= from)?;
    let last = samples.iter().rev().find(|(at, ..)| *at <= to)?;
    let micros = last.0.checked_duration_since(first.0)?.as_micros() as f64;
    if micros <= 0.0 {
        return None;
    }
    let percent = |later: u64, earlier: u64| later.saturating_sub(earlier) as f64 / micros * 100.0;
    Some((percent(last.1, first.1), percent(last.2, first.2)))
}

// --------------------------------------------------------------- report

/// One row's cells: `f` of each server's figures, or `failed`.
fn cells<T>(figures: &[anyhow::Result<T>], f: &dyn Fn(&T) -> String) -> Vec<String> {
    figures
        .iter()
        .map(|r| match r {
            Ok(fig) => f(fig),
            Err(_) => "failed".to_owned(),
        })
        .collect()
}

fn ms(us: u64) -> String {
    format!("{:.2}", us as f64 / 1000.0)
}

fn print_table(title: &str, header: &[String], rows: &[(String, Vec<String>)]) {
    println!("\n{title}\n");
    println!("| figure | {} |", header.join(" | "));
    println!("|---|{}", "---|".repeat(header.len()));
    for (name, cells) in rows {
        println!("| {name} | {} |", cells.join(" | "));
    }
}

fn relay_rows(args: &Args, figures: &[anyhow::Result<RelayFigures>]) -> Vec<(String, Vec<String>)> {
    let cell = |f: &dyn Fn(&RelayFigures) -> String| cells(figures, f);
    vec![
        (
            "offered msg/s (K visitors)".to_owned(),
            cell(&|f| format!("{:.0} ({})", f.offered_rate, args.visitors)),
        ),
        (
            "sent / delivered (errors)".to_owned(),
            cell(&|f| format!("{} / {} ({})", f.sent, f.delivered, f.send_errors)),
        ),
        (
            "achieved msg/s".to_owned(),
            cell(&|f| format!("{:.1}", f.achieved())),
        ),
        (
            "latency p50 / p99 / max ms".to_owned(),
            cell(&|f| {
                format!(
                    "{} / {} / {}",
                    ms(f.latency.value_at_quantile(0.5)),
                    ms(f.latency.value_at_quantile(0.99)),
                    ms(f.latency.max())
                )
            }),
        ),
        (
            "server CPU µs/message".to_owned(),
            cell(&|f| format!("{:.0}", f.cpu_per_message(f.server_cpu_us))),
        ),
        (
            "+ PostgreSQL backends µs/message".to_owned(),
            cell(&|f| match f.backends_cpu_us {
                Some(us) => format!(
                    "{:.0} (total {:.0})",
                    f.cpu_per_message(us),
                    f.cpu_per_message(us + f.server_cpu_us)
                ),
                None => "–".to_owned(),
            }),
        ),
        (
            "server CPU, % of one core".to_owned(),
            cell(&|f| {
                format!(
                    "{:.0}",
                    f.server_cpu_us as f64 / f.window.as_micros() as f64 * 100.0
                )
            }),
        ),
        (
            "load generator CPU, % of one core".to_owned(),
            cell(&|f| {
                format!(
                    "{:.0}",
                    f.client_cpu_us as f64 / f.window.as_micros() as f64 * 100.0
                )
            }),
        ),
        (
            "server RSS start → end MiB".to_owned(),
            cell(&|f| {
                format!(
                    "{:.1} → {:.1}",
                    f.rss_start_kib as f64 / 1024.0,
                    f.rss_end_kib as f64 / 1024.0
                )
            }),
        ),
    ]
}

fn session_rows(figures: &[anyhow::Result<SessionFigures>]) -> Vec<(String, Vec<String>)> {
    let cell = |f: &dyn Fn(&SessionFigures) -> String| cells(figures, f);
    let mut rows = vec![
        (
            "sessions opened".to_owned(),
            cell(&|f| f.opened.to_string()),
        ),
        (
            "starts/s".to_owned(),
            cell(&|f| format!("{:.1}", f.starts_per_second())),
        ),
        (
            "starts/s early / late (5–15 % / 85–95 % done)".to_owned(),
            cell(&|f| format!("{:.1} / {:.1}", f.early_rate, f.late_rate)),
        ),
        (
            "start latency p50 / p99 ms".to_owned(),
            cell(&|f| {
                format!(
                    "{} / {}",
                    ms(f.start_latency.value_at_quantile(0.5)),
                    ms(f.start_latency.value_at_quantile(0.99))
                )
            }),
        ),
        (
            "server CPU ms per start".to_owned(),
            cell(&|f| f.ms_per_start(f.start_cpu_us)),
        ),
        (
            "+ PostgreSQL backends ms per start".to_owned(),
            cell(&|f| match f.start_backends_cpu_us {
                Some(us) => f.ms_per_start(us),
                None => "–".to_owned(),
            }),
        ),
        (
            "load generator CPU ms per start".to_owned(),
            cell(&|f| f.ms_per_start(f.client_cpu_us)),
        ),
        (
            "late: CPU % of one core, server / load generator".to_owned(),
            cell(&|f| match f.late_cpu {
                Some((server, client)) => format!("{server:.0} / {client:.0}"),
                None => "–".to_owned(),
            }),
        ),
    ];
    let idle = figures
        .iter()
        .any(|r| r.as_ref().is_ok_and(|f| f.rss_idle_kib.is_some()));
    if idle {
        rows.extend([
            (
                "RSS before → idle MiB".to_owned(),
                cell(&|f| match f.rss_idle_kib {
                    Some(after) => format!(
                        "{:.1} → {:.1}",
                        f.rss_before_kib as f64 / 1024.0,
                        after as f64 / 1024.0
                    ),
                    None => "–".to_owned(),
                }),
            ),
            (
                "memory per idle session KiB".to_owned(),
                cell(&|f| match f.kib_per_session() {
                    Some(kib) => format!("{kib:.1}"),
                    None => "–".to_owned(),
                }),
            ),
            (
                "idle CPU, % of one core".to_owned(),
                cell(&|f| match f.idle_cpu_us {
                    Some(us) => format!("{:.1}", us as f64 / f.settle.as_micros() as f64 * 100.0),
                    None => "–".to_owned(),
                }),
            ),
        ]);
    }
    rows
}

/// Prints a run's one-line summary (`line`), or how it failed; true if
/// it failed.
fn print_summary<T>(result: &anyhow::Result<T>, line: impl FnOnce(&T) -> String) -> bool {
    match result {
        Ok(figures) => {
            println!("{}", line(figures));
            false
        }
        Err(e) => {
            println!("   failed: {e:#}");
            true
        }
    }
}

fn machine() -> String {
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|text| {
            text.lines().find_map(|l| {
                l.strip_prefix("model name")?
                    .split_once(':')
                    .map(|(_, v)| v.trim().to_owned())
            })
        })
        .unwrap_or_else(|| "unknown CPU".to_owned());
    let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
    let memory = proc_meminfo_gib().map_or("?".to_owned(), |g| format!("{g:.0}"));
    let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease")
        .map(|s| s.trim().to_owned())
        .unwrap_or_default();
    let prosody = std::process::Command::new("dpkg-query")
        .args(["-W", "-f", "${Version}", "prosody"])
        .output()
        .ok()
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .unwrap_or_else(|| "?".to_owned());
    let load = std::fs::read_to_string("/proc/loadavg")
        .map(|s| s.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_default();
    format!(
        "{cores} cores ({cpu}), {memory} GiB RAM, Linux {kernel}, Prosody {prosody}, load average {load}"
    )
}

fn proc_meminfo_gib() -> Option<f64> {
    let text = std::fs::read_to_string("/proc/meminfo").ok()?;
    let kib: f64 = text
        .lines()
        .find_map(|l| l.strip_prefix("MemTotal:"))?
        .split_whitespace()
        .next()?
        .parse()
        .ok()?;
    Some(kib / 1024.0 / 1024.0)
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    epoch();
    anyhow::ensure!(!args.servers.is_empty(), "no servers to run");
    anyhow::ensure!(
        args.rate > 0.0 && args.secs > 0.0,
        "--rate and --secs must be positive"
    );
    let command: Vec<String> = std::env::args().collect();
    println!("frontdesk-compare: {}", command.join(" "));
    println!("machine: {}", machine());
    println!(
        "CPU: utime+stime of the server process (/proc/PID/stat, {} ticks/s); memory: VmRSS (/proc/PID/status)",
        frontdesk_tests::bench::clock_ticks_per_second()
    );
    let mut failed = false;
    let labels: Vec<String> = args.servers.iter().map(|s| s.label().to_owned()).collect();
    if matches!(args.mode, Mode::Relay | Mode::Soak | Mode::All) {
        println!(
            "gateway visitors send: {}",
            match args.gateway_send {
                GatewaySend::Ws =>
                    "a `message` frame on their event WebSocket, answered `message_ack`",
                GatewaySend::Http => "a POST each, answered 201",
            }
        );
        let mut figures = Vec::new();
        for &kind in &args.servers {
            println!(
                "\n== {}, {}: {} visitors, {} msg/s total, {} s",
                if args.mode == Mode::Soak {
                    "soak"
                } else {
                    "relay"
                },
                kind.label(),
                args.visitors,
                args.rate,
                args.secs
            );
            let result = relay(kind, &args).await;
            failed |= print_summary(&result, |f| {
                format!(
                    "   sent {} delivered {} in {:.2} s ({:.1} msg/s), latency ms p50 {} p95 {} p99 {} max {}, server CPU {:.2} s ({:.0} µs/message){}",
                    f.sent,
                    f.delivered,
                    f.window.as_secs_f64(),
                    f.achieved(),
                    ms(f.latency.value_at_quantile(0.5)),
                    ms(f.latency.value_at_quantile(0.95)),
                    ms(f.latency.value_at_quantile(0.99)),
                    ms(f.latency.max()),
                    f.server_cpu_us as f64 / 1e6,
                    f.cpu_per_message(f.server_cpu_us),
                    f.backends_cpu_us
                        .map(|us| format!(", PostgreSQL backends {:.2} s", us as f64 / 1e6))
                        .unwrap_or_default(),
                )
            });
            figures.push(result);
        }
        print_table(
            &format!(
                "{}: {} visitors → one agent, {} msg/s offered for {} s",
                if args.mode == Mode::Soak {
                    "Soak"
                } else {
                    "Relay"
                },
                args.visitors,
                args.rate,
                args.secs
            ),
            &labels,
            &relay_rows(&args, &figures),
        );
    }
    if matches!(args.mode, Mode::Idle | Mode::Starts | Mode::All) {
        let idle = args.mode != Mode::Starts;
        let mut figures = Vec::new();
        for &kind in &args.servers {
            println!(
                "\n== {}, {}: {} sessions, {} starts in flight",
                if idle { "idle" } else { "starts" },
                kind.label(),
                args.sessions,
                args.concurrency
            );
            let result = sessions(kind, &args, idle).await;
            failed |= print_summary(&result, |f| {
                format!(
                    "   opened {} in {:.2} s ({:.1}/s), start latency ms p50 {} p99 {} max {}, server CPU {:.2} s for the starts, RSS {} KiB before{}",
                    f.opened,
                    f.open_time.as_secs_f64(),
                    f.starts_per_second(),
                    ms(f.start_latency.value_at_quantile(0.5)),
                    ms(f.start_latency.value_at_quantile(0.99)),
                    ms(f.start_latency.max()),
                    f.start_cpu_us as f64 / 1e6,
                    f.rss_before_kib,
                    f.rss_idle_kib
                        .map(|kib| format!(", {kib} KiB after {:.0} s idle", f.settle.as_secs_f64()))
                        .unwrap_or_default(),
                )
            });
            figures.push(result);
        }
        print_table(
            &format!(
                "Sessions: {} {}, {} starts in flight",
                args.sessions,
                if idle {
                    "opened then held idle"
                } else {
                    "opened"
                },
                args.concurrency
            ),
            &labels,
            &session_rows(&figures),
        );
    }
    if args.mode == Mode::Agents {
        let mut figures = Vec::new();
        for &kind in &args.servers {
            println!(
                "\n== agents, {}: {} visitors, {} agents, {} msg/s total, {} s, agents answer receipts: {}",
                agents_label(kind),
                args.visitors,
                args.agents.clamp(1, args.visitors.max(1)),
                args.rate,
                args.secs,
                args.agent_receipts
            );
            let result = agents(kind, &args).await;
            failed |= print_summary(&result, |f| {
                format!(
                    "   sent {} at agents {} echoes {} (errors {}) in {:.2} s, setup {:.1} s; \
                     ms p50/p90/p99/max visitor → agent {}, agent → visitor {}; \
                     CPU s: server {:.2}{}{}",
                    f.sent,
                    f.to_agent.len(),
                    f.to_visitor.len(),
                    f.send_errors + f.agent_errors,
                    f.window.as_secs_f64(),
                    f.setup.as_secs_f64(),
                    quantiles(&f.to_agent),
                    quantiles(&f.to_visitor),
                    f.server_cpu_us as f64 / 1e6,
                    f.backends_cpu_us
                        .map(|us| format!(", PostgreSQL backends {:.2}", us as f64 / 1e6))
                        .unwrap_or_default(),
                    f.prosody_cpu_us
                        .map(|us| format!(", Prosody {:.2}", us as f64 / 1e6))
                        .unwrap_or_default(),
                )
            });
            figures.push(result);
        }
        let labels: Vec<String> = args.servers.iter().map(|&s| agents_label(s)).collect();
        print_table(
            &format!(
                "Agents: {} visitors → {} echoing agents, {} msg/s offered for {} s",
                args.visitors,
                args.agents.clamp(1, args.visitors.max(1)),
                args.rate,
                args.secs
            ),
            &labels,
            &agent_rows(&args, &args.servers, &figures),
        );
    }
    anyhow::ensure!(!failed, "some runs failed");
    Ok(())
}
