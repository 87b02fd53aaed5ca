//! Wiring: from a validated config to a running gateway.
//!
//! `Gateway::start` builds the store, engine and routes, and serves on a
//! listener the caller bound (port 0 in tests). `run_until` serves until a
//! shutdown future resolves, then shuts down gracefully: stop accepting,
//! close WebSockets with 1001 so widgets reconnect elsewhere, let in-flight
//! requests finish, stop timers, close the pool.
//!
//! The accept loop holds connections to the `[server]` limits, all of which
//! defend the gateway against clients that hold resources without using
//! them: a total cap and a per-client-address cap (trusted proxies are not
//! counted; their clients are limited per request instead), over which a
//! new connection is closed at once, without reading it (a 503 would need
//! the request head the caps exist to stop waiting for); the header read
//! timeout, from accept to the first request head (hyper-util's protocol
//! detection has no timeout of its own, so a silent connection would wait
//! forever) and then hyper's own, between requests too, so it also closes a
//! kept-alive connection that sends no next request; HTTP/2 keep-alive
//! pings for cleartext HTTP/2 connections; and an idle timeout on every
//! request body.

use std::collections::HashMap;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::Context;
use axum::body::Body;
use axum::extract::ConnectInfo;
use axum::http::Request;
use axum::http::StatusCode;
use axum::Router;
use futures::StreamExt;
use pbx_adapter::sip::IpNet;
use tokio::net::TcpListener;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio_util::sync::CancellationToken;
use tower_http::classify::ServerErrorsFailureClass;
use tower_http::trace::TraceLayer;
use tracing::info;

use crate::api::{self, ApiState};
use crate::config::{Config, Secret};
use crate::engine::loopback::LoopbackAgents;
use crate::engine::{AgentChannel, Engine};
use crate::store::Store;
use crate::{assets, bridges, ops};

pub struct Gateway {
    pub engine: Engine,
    pub store: Store,
    /// Uploaded files; the bridges sign agents' download links with it.
    pub files: crate::files::Files,
    app: Router,
    shutdown: CancellationToken,
    grace: Duration,
    /// How long `/readyz` says "draining" before the node stops accepting.
    drain: Duration,
    draining: ops::Draining,
    limiters: api::ratelimit::Limiters,
    edge: EdgeLimits,
    /// Bridge tasks, stopped by `shutdown` and awaited on the way out.
    bridges: Vec<tokio::task::JoinHandle<()>>,
}

impl Gateway {
    /// Starts a gateway with the bridges its configuration names. Without
    /// any, agent calls are only logged.
    pub async fn start(config: &Config) -> anyhow::Result<Gateway> {
        let store = open_store(config).await?;
        let shutdown = CancellationToken::new();
        let files = crate::files::Files::from_config(config);
        let xmpp = match &config.xmpp {
            Some(xmpp) => Some(
                bridges::xmpp::start(
                    xmpp,
                    store.clone(),
                    files.clone(),
                    config.cluster.enabled,
                    shutdown.clone(),
                )
                .context("invalid [xmpp] configuration")?,
            ),
            None => None,
        };
        let sip = match &config.sip {
            Some(sip) => Some(
                bridges::sip::start(sip, files.clone(), shutdown.clone())
                    .await
                    .context("cannot start the SIP bridge")?,
            ),
            None => None,
        };
        let agents: Arc<dyn AgentChannel> = if xmpp.is_none() && sip.is_none() {
            Arc::new(LoopbackAgents::new().0)
        } else {
            Arc::new(bridges::AgentRouter {
                xmpp: xmpp
                    .as_ref()
                    .map(|x| x.agents.clone() as Arc<dyn AgentChannel>),
                sip: sip
                    .as_ref()
                    .map(|s| s.agents.clone() as Arc<dyn AgentChannel>),
            })
        };
        let mut gateway = Self::assemble(config, store, files, agents, shutdown).await?;
        let xmpp_running = xmpp.is_some();
        if let Some(runtime) = xmpp {
            let events = bridges::xmpp::run_events(runtime, gateway.engine.clone());
            gateway.bridges.push(events);
        }
        if let Some(runtime) = sip {
            let events = bridges::sip::run_events(runtime, gateway.engine.clone(), xmpp_running);
            gateway.bridges.push(events);
        }
        Ok(gateway)
    }

    /// Starts a gateway whose agent side is `agents` (tests play the agents
    /// through the loopback channel).
    pub async fn start_with_agents(
        config: &Config,
        agents: Arc<dyn AgentChannel>,
    ) -> anyhow::Result<Gateway> {
        let store = open_store(config).await?;
        let files = crate::files::Files::from_config(config);
        Self::assemble(config, store, files, agents, CancellationToken::new()).await
    }

    /// Builds the engine around `agents`, recovers waiting conversations,
    /// and the routes.
    async fn assemble(
        config: &Config,
        store: Store,
        files: crate::files::Files,
        agents: Arc<dyn AgentChannel>,
        shutdown: CancellationToken,
    ) -> anyhow::Result<Gateway> {
        let limits = crate::engine::EngineSettings {
            clustered: config.cluster.enabled,
            max_waiting_per_queue: config.waiting.max_per_queue,
            max_waiting_per_client: config.waiting.max_per_client,
            visitor_token_ttl_ms: i64::try_from(config.server.visitor_token_ttl_secs)
                .unwrap_or(i64::MAX / 1000)
                .saturating_mul(1000),
        };
        let engine = Engine::new(store.clone(), agents, limits);
        engine
            .provision(&config.directory_spec())
            .await
            .context("cannot provision the directory from the configuration")?;
        engine.watch_directory(Duration::from_millis(config.server.directory_poll_ms));
        engine.relay_signals();
        engine
            .recover()
            .await
            .context("cannot recover conversations")?;
        engine.run_timers(Duration::from_millis(config.server.timer_poll_ms));
        engine.keep_queues();
        engine.watch_abandoned(std::time::Duration::from_secs(
            config.waiting.abandoned_after_secs,
        ));
        let limiters = api::ratelimit::Limiters::new(&config.limits);
        files
            .store()
            .remove_partials()
            .await
            .context("cannot clean partial uploads from the file store")?;
        let state = ApiState {
            engine: engine.clone(),
            limiters: limiters.clone(),
            shutdown: shutdown.clone(),
            sockets: api::events::Sockets::new(api::events::SocketLimits::from_config(config)),
        };
        let proxies = api::client::Proxies::from_config(&config.server);
        let draining = ops::Draining::default();
        let app = Router::new()
            .merge(api::visitor_api(
                state,
                files.clone(),
                config.limits.max_body_bytes,
            ))
            .merge(api::openapi::router())
            .merge(api::admin::router(api::admin::AdminState::new(
                engine.clone(),
                files.clone(),
                config.public_url(),
                shutdown.clone(),
            )))
            .merge(ops::router(
                store.clone(),
                config.server.metrics_token.as_ref().map(Secret::expose),
                engine.node_id(),
                draining.clone(),
            ))
            .merge(assets::router({
                let engine = engine.clone();
                Arc::new(move || {
                    let directory = engine.directory();
                    let channels = &directory.spec().channels;
                    channels.iter().map(|c| c.key.to_string()).collect()
                })
            }))
            .layer(axum::middleware::from_fn(api::record_latency))
            .layer(
                TraceLayer::new_for_http()
                    .make_span_with(request_span)
                    .on_failure(log_failure),
            )
            .layer(axum::middleware::from_fn_with_state(
                proxies.clone(),
                api::client::resolve,
            ));
        Ok(Gateway {
            engine,
            store,
            files,
            app,
            shutdown,
            grace: Duration::from_secs(config.server.shutdown_grace_secs),
            drain: if config.cluster.enabled {
                Duration::from_millis(config.cluster.drain_ms)
            } else {
                Duration::ZERO
            },
            draining,
            limiters,
            edge: EdgeLimits::new(&config.server, proxies),
            bridges: Vec::new(),
        })
    }

    /// The engine (to provision the directory again on SIGHUP).
    pub fn engine(&self) -> Engine {
        self.engine.clone()
    }

    /// The routes, for callers that serve them themselves.
    pub fn router(&self) -> Router {
        self.app.clone()
    }

    /// Serves on `listener` until `signal` resolves, then shuts down.
    pub async fn run_until(
        self,
        listener: TcpListener,
        signal: impl Future<Output = ()> + Send + 'static,
    ) -> anyhow::Result<()> {
        let addr = listener.local_addr()?;
        info!(%addr, "frontdesk listening");
        let shutdown = self.shutdown.clone();
        let limiters = self.limiters.clone();
        let (files, store) = (self.files.clone(), self.store.clone());
        let engine = self.engine.clone();
        let housekeeping = tokio::spawn({
            let shutdown = shutdown.clone();
            async move {
                let mut every = tokio::time::interval(Duration::from_secs(60));
                let mut hourly = tokio::time::interval(Duration::from_secs(3600));
                loop {
                    tokio::select! {
                        _ = every.tick() => limiters.shrink(),
                        _ = hourly.tick() => {
                            let now = crate::store::now_ms();
                            let directory = engine.directory();
                            let channels = &directory.spec().channels;
                            let swept = crate::files::retention::sweep(&files, &store, channels, now);
                            if let Err(e) = swept.await {
                                tracing::warn!(error = %e, "retention sweep failed");
                            }
                        }
                        _ = shutdown.cancelled() => break,
                    }
                }
            }
        });
        let serve = serve(listener, self.app.clone(), self.edge.clone(), {
            let shutdown = shutdown.clone();
            let (draining, drain) = (self.draining.clone(), self.drain);
            async move {
                signal.await;
                if !drain.is_zero() {
                    // Still serving, but not ready: the load balancer's next
                    // checks send new visitors and sockets to other nodes.
                    info!(
                        drain_ms = drain.as_millis() as u64,
                        "draining: not ready any more"
                    );
                    draining.start();
                    tokio::time::sleep(drain).await;
                }
                info!("shutting down: closing WebSockets, finishing requests");
                shutdown.cancel();
            }
        });
        let grace = self.grace;
        let served = tokio::spawn(serve);
        shutdown.cancelled().await;
        match tokio::time::timeout(grace, served).await {
            Ok(result) => result.context("server task failed")??,
            Err(_) => tracing::warn!("requests still running after the grace period"),
        }
        housekeeping.await.context("housekeeping task failed")?;
        for bridge in self.bridges {
            if let Err(e) = bridge.await {
                tracing::warn!(error = %e, "a bridge task failed");
            }
        }
        self.engine.shutdown().await;
        self.store.close().await;
        info!("frontdesk stopped");
        Ok(())
    }
}

/// Largest HTTP/1 read buffer per connection. hyper's default (~408 KiB)
/// fills up when a fast client uploads and multer holds the chunks split
/// off it: 20 concurrent 5 MB uploads grew RSS by 25-28 MiB, 9 MiB with
/// 64 KiB (docs/benchmarks.md). It also caps a request's head, so not
/// smaller: 16 KiB saves 5 MiB more but is slower and tight for cookies.
const HTTP1_MAX_BUF: usize = 64 * 1024;

/// How often an idle cleartext HTTP/2 connection is pinged (a peer that
/// does not answer within the header read timeout is dropped).
const H2_PING: Duration = Duration::from_secs(25);

/// The default span of `TraceLayer`, with the client address. The path
/// only: a query can carry a link's signature, and an upload slot's id in
/// its path is the capability to write it, so neither is logged.
fn request_span<B>(request: &Request<B>) -> tracing::Span {
    let client = (request.extensions().get::<api::client::ClientAddr>()).map(|c| c.ip);
    tracing::debug_span!(
        "request",
        method = %request.method(),
        path = %loggable_path(request.uri().path()),
        client = ?client,
    )
}

/// `TraceLayer`'s failure log, with a 503 at DEBUG: it is the answer
/// meant for a draining node's readiness checks (every 250 ms from a load
/// balancer) and for requests while the database is away, which the
/// store already reports once where it notices.
fn log_failure(failure: ServerErrorsFailureClass, latency: Duration, _span: &tracing::Span) {
    let latency_ms = latency.as_millis();
    match failure {
        ServerErrorsFailureClass::StatusCode(StatusCode::SERVICE_UNAVAILABLE) => {
            tracing::debug!(latency_ms, "answered 503 service unavailable");
        }
        failure => tracing::error!(classification = %failure, latency_ms, "response failed"),
    }
}

/// `path` as logs may show it: upload slots' ids replaced.
fn loggable_path(path: &str) -> &str {
    if path.starts_with("/upload/") {
        "/upload/[slot]"
    } else {
        path
    }
}

/// The `[server]` limits the accept loop applies.
#[derive(Clone)]
struct EdgeLimits {
    header_read_timeout: Duration,
    body_idle_timeout: Duration,
    total: Arc<Semaphore>,
    per_ip: PerIp,
    proxies: api::client::Proxies,
}

impl EdgeLimits {
    fn new(server: &crate::config::ServerConfig, proxies: api::client::Proxies) -> EdgeLimits {
        EdgeLimits {
            header_read_timeout: Duration::from_secs(server.header_read_timeout_secs),
            body_idle_timeout: Duration::from_secs(server.body_idle_timeout_secs),
            total: Arc::new(Semaphore::new(server.max_connections)),
            per_ip: PerIp {
                max: server.max_connections_per_ip,
                open: Arc::default(),
            },
            proxies,
        }
    }

    /// A place for a connection from `peer`, or `None` (with the cap that
    /// refused it) when it must be closed.
    fn admit(&self, peer: SocketAddr) -> Result<Admitted, &'static str> {
        let total = (self.total.clone().try_acquire_owned()).map_err(|_| "total")?;
        let per_ip = if self.proxies.trusts(peer.ip()) {
            None
        } else {
            Some(
                self.per_ip
                    .take(api::client::limiter_key(peer.ip()))
                    .ok_or("per_ip")?,
            )
        };
        Ok(Admitted {
            _total: total,
            _per_ip: per_ip,
        })
    }
}

/// Open connections per client address.
#[derive(Clone)]
struct PerIp {
    max: usize,
    open: Arc<Mutex<HashMap<IpNet, usize>>>,
}

impl PerIp {
    fn take(&self, key: IpNet) -> Option<PerIpSlot> {
        let mut open = self.open.lock().unwrap_or_else(|e| e.into_inner());
        let count = open.entry(key).or_default();
        if *count >= self.max {
            return None;
        }
        *count += 1;
        Some(PerIpSlot {
            counter: self.clone(),
            key,
        })
    }
}

struct PerIpSlot {
    counter: PerIp,
    key: IpNet,
}

impl Drop for PerIpSlot {
    fn drop(&mut self) {
        let mut open = (self.counter.open.lock()).unwrap_or_else(|e| e.into_inner());
        if let Some(count) = open.get_mut(&self.key) {
            *count -= 1;
            if *count == 0 {
                open.remove(&self.key);
            }
        }
    }
}

/// A connection's places under both caps, released when the connection
/// and any WebSocket upgraded from it have ended.
struct Admitted {
    _total: OwnedSemaphorePermit,
    _per_ip: Option<PerIpSlot>,
}

/// A request body that fails when no data comes for `idle` (a stalled
/// upload), so its handler answers and the connection closes.
fn idle_limited<B>(request: Request<B>, idle: Duration) -> Request<Body>
where
    B: axum::body::HttpBody<Data = axum::body::Bytes> + Send + 'static,
    B::Error: Into<axum::BoxError>,
{
    request.map(|body| {
        let chunks =
            futures::stream::unfold(Some(Body::new(body).into_data_stream()), move |data| {
                next_chunk(data, idle)
            });
        Body::from_stream(chunks)
    })
}

/// The next chunk of `data`, or the idle error, for `stream::unfold`.
type Chunk = Result<axum::body::Bytes, axum::Error>;

async fn next_chunk(
    data: Option<axum::body::BodyDataStream>,
    idle: Duration,
) -> Option<(Chunk, Option<axum::body::BodyDataStream>)> {
    let mut data = data?;
    match tokio::time::timeout(idle, data.next()).await {
        Ok(Some(chunk)) => Some((chunk, Some(data))),
        Ok(None) => None,
        Err(_) => {
            let message = format!("no request body data for {} s", idle.as_secs());
            let error = std::io::Error::new(std::io::ErrorKind::TimedOut, message);
            Some((Err(axum::Error::new(error)), None))
        }
    }
}

/// What `axum::serve(..).with_graceful_shutdown(..)` does, plus a bounded
/// HTTP/1 read buffer, which `axum::serve` does not expose, and the
/// connection limits: accepts until `signal` resolves, then lets the open
/// connections finish their requests (upgraded WebSockets are no longer
/// connections here; they close on the shutdown token).
async fn serve(
    listener: TcpListener,
    app: Router,
    limits: EdgeLimits,
    signal: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
    use hyper_util::server::conn::auto;
    use hyper_util::server::graceful::GracefulShutdown;
    use hyper_util::service::TowerToHyperService;
    let mut builder = auto::Builder::new(TokioExecutor::new());
    builder
        .http1()
        .max_buf_size(HTTP1_MAX_BUF)
        .timer(TokioTimer::new())
        .header_read_timeout(limits.header_read_timeout);
    builder
        .http2()
        .timer(TokioTimer::new())
        .keep_alive_interval(H2_PING)
        .keep_alive_timeout(limits.header_read_timeout);
    let graceful = GracefulShutdown::new();
    let mut signal = std::pin::pin!(signal);
    loop {
        let (tcp, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(e) => {
                    accept_error(e).await;
                    continue;
                }
            },
            () = &mut signal => break,
        };
        let admitted = match limits.admit(peer) {
            Ok(admitted) => Arc::new(admitted),
            Err(cap) => {
                metrics::counter!("frontdesk_connections_refused_total", "cap" => cap).increment(1);
                tracing::debug!(%peer, cap, "connection refused: over the cap");
                continue;
            }
        };
        // Chat traffic is small writes: without TCP_NODELAY, Nagle and
        // delayed ACKs add up to 40 ms to WebSocket events.
        if let Err(e) = tcp.set_nodelay(true) {
            tracing::debug!(error = %e, "cannot set TCP_NODELAY");
        }
        // What `into_make_service_with_connect_info` adds: the client
        // address starts from the peer's.
        let held = api::events::HeldConnection(admitted.clone());
        let idle = limits.body_idle_timeout;
        let first_request = CancellationToken::new();
        let service = tower::ServiceBuilder::new()
            .layer(axum::Extension(ConnectInfo(peer)))
            .layer(axum::Extension(held))
            .map_request({
                let first_request = first_request.clone();
                move |request| {
                    first_request.cancel();
                    idle_limited(request, idle)
                }
            })
            .service(app.clone());
        let connection = builder
            .serve_connection_with_upgrades(TokioIo::new(tcp), TowerToHyperService::new(service))
            .into_owned();
        let connection = graceful.watch(connection);
        let head_timeout = limits.header_read_timeout;
        tokio::spawn(async move {
            let mut connection = std::pin::pin!(connection);
            let first_head = tokio::time::timeout(head_timeout, first_request.cancelled());
            let ended = tokio::select! {
                ended = &mut connection => Some(ended),
                came = first_head => match came {
                    // From here on, hyper's own timers.
                    Ok(()) => Some(connection.await),
                    Err(_) => None,
                },
            };
            match ended {
                Some(Err(e)) => {
                    tracing::trace!(error = %e, %peer, "connection ended with an error")
                }
                Some(Ok(())) => {}
                None => tracing::debug!(%peer, "no request head in time: connection closed"),
            }
            drop(admitted);
        });
    }
    drop(listener);
    graceful.shutdown().await;
    Ok(())
}

/// Like `axum::serve`: a peer that went away is routine; anything else
/// (out of file descriptors) is logged and retried after a pause.
async fn accept_error(e: std::io::Error) {
    use std::io::ErrorKind::{ConnectionAborted, ConnectionRefused, ConnectionReset};
    if matches!(
        e.kind(),
        ConnectionRefused | ConnectionAborted | ConnectionReset
    ) {
        return;
    }
    tracing::error!(error = %e, "accept failed");
    tokio::time::sleep(Duration::from_secs(1)).await;
}

async fn open_store(config: &Config) -> anyhow::Result<Store> {
    let acquire = Duration::from_secs(config.database.acquire_timeout_secs);
    let store = Store::connect(
        &config.database_url(),
        config.database.max_connections,
        acquire,
    )
    .await
    .context("cannot open the database")?;
    store.migrate().await.context("cannot apply migrations")?;
    Ok(store)
}

/// Resolves on Ctrl-C or SIGTERM.
pub async fn shutdown_signal() {
    let ctrl_c = async {
        if let Err(e) = tokio::signal::ctrl_c().await {
            tracing::error!(error = %e, "cannot listen for Ctrl-C");
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(e) => {
                tracing::error!(error = %e, "cannot listen for SIGTERM");
                std::future::pending::<()>().await;
            }
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {},
        _ = terminate => {},
    }
}
