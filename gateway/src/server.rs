//! Wiring: from a validated config to a running gateway.
//!
//! `Gateway::start` builds the store, engine and routes, and serves on a
//! listener the caller bound (port 0 in tests). `run_until` serves until a
//! shutdown future resolves, then shuts down gracefully: stop accepting,
//! close WebSockets with 1001 so widgets reconnect elsewhere, let in-flight
//! requests finish, stop timers, close the pool.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use axum::extract::ConnectInfo;
use axum::Router;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tower_http::trace::TraceLayer;
use tracing::info;

use crate::api::{self, ApiState};
use crate::config::Config;
use crate::engine::loopback::LoopbackAgents;
use crate::engine::{AgentChannel, Channels, Engine};
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
    limiters: api::ratelimit::Limiters,
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
                bridges::xmpp::start(xmpp, store.clone(), files.clone(), shutdown.clone())
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
        let directory =
            pbx_adapter::queue::PbxDirectory::new(config.queues.clone(), config.agents.clone())
                .context("invalid queues or agents")?;
        let channels = Channels::new(&config.channels).map_err(anyhow::Error::msg)?;
        let limits = crate::engine::EngineLimits {
            max_waiting_per_queue: config.waiting.max_per_queue,
        };
        let engine = Engine::new(store.clone(), channels, Arc::new(directory), agents, limits);
        engine
            .recover()
            .await
            .context("cannot recover conversations")?;
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
        };
        let app = Router::new()
            .merge(api::visitor_api(
                state,
                files.clone(),
                config.limits.max_body_bytes,
            ))
            .merge(api::openapi::router())
            .merge(ops::router(store.clone()))
            .merge(assets::router(
                config.channels.iter().map(|c| c.key.to_string()).collect(),
            ))
            .layer(axum::middleware::from_fn(api::record_latency))
            .layer(TraceLayer::new_for_http());
        Ok(Gateway {
            engine,
            store,
            files,
            app,
            shutdown,
            grace: Duration::from_secs(config.server.shutdown_grace_secs),
            limiters,
            bridges: Vec::new(),
        })
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
        let channels: Vec<crate::config::ChannelConfig> = (self.engine.channels().iter())
            .map(|c| c.config.clone())
            .collect();
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
                            let swept = crate::files::retention::sweep(&files, &store, &channels, now);
                            if let Err(e) = swept.await {
                                tracing::warn!(error = %e, "retention sweep failed");
                            }
                        }
                        _ = shutdown.cancelled() => break,
                    }
                }
            }
        });
        let serve = serve(listener, self.app.clone(), {
            let shutdown = shutdown.clone();
            async move {
                signal.await;
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

/// What `axum::serve(..).with_graceful_shutdown(..)` does, plus a bounded
/// HTTP/1 read buffer, which `axum::serve` does not expose: accepts until
/// `signal` resolves, then lets the open connections finish their
/// requests (upgraded WebSockets are no longer connections here; they
/// close on the shutdown token).
async fn serve(
    listener: TcpListener,
    app: Router,
    signal: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    use hyper_util::rt::{TokioExecutor, TokioIo};
    use hyper_util::server::conn::auto;
    use hyper_util::server::graceful::GracefulShutdown;
    use hyper_util::service::TowerToHyperService;
    use tower::Layer;

    let mut builder = auto::Builder::new(TokioExecutor::new());
    builder.http1().max_buf_size(HTTP1_MAX_BUF);
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
        // Chat traffic is small writes: without TCP_NODELAY, Nagle and
        // delayed ACKs add up to 40 ms to WebSocket events.
        if let Err(e) = tcp.set_nodelay(true) {
            tracing::debug!(error = %e, "cannot set TCP_NODELAY");
        }
        // What `into_make_service_with_connect_info` adds: rate limits key
        // on the peer's address.
        let service = axum::Extension(ConnectInfo(peer)).layer(app.clone());
        let connection = builder
            .serve_connection_with_upgrades(TokioIo::new(tcp), TowerToHyperService::new(service))
            .into_owned();
        let connection = graceful.watch(connection);
        tokio::spawn(async move {
            if let Err(e) = connection.await {
                tracing::trace!(error = %e, %peer, "connection ended with an error");
            }
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
    let store = Store::connect(&config.database_url(), config.database.max_connections)
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
