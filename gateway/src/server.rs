//! Wiring: from a validated config to a running gateway.
//!
//! `Gateway::start` builds the store, engine and routes, and serves on a
//! listener the caller bound (port 0 in tests). `run_until` serves until a
//! shutdown future resolves, then shuts down gracefully: stop accepting,
//! close WebSockets with 1001 so widgets reconnect elsewhere, let in-flight
//! requests finish, stop timers, close the pool.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use axum::Router;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tower_http::trace::TraceLayer;
use tracing::info;

use crate::api::{self, ApiState};
use crate::config::Config;
use crate::engine::{AgentChannel, Channels, Engine};
use crate::store::Store;
use crate::{assets, ops};

pub struct Gateway {
    pub engine: Engine,
    pub store: Store,
    app: Router,
    shutdown: CancellationToken,
    grace: Duration,
    limiters: api::ratelimit::Limiters,
}

impl Gateway {
    /// Connects and migrates the database, builds the engine around
    /// `agents`, recovers waiting conversations.
    pub async fn start(config: &Config, agents: Arc<dyn AgentChannel>) -> anyhow::Result<Gateway> {
        let store = Store::connect(&config.database_url(), config.database.max_connections)
            .await
            .context("cannot open the database")?;
        store.migrate().await.context("cannot apply migrations")?;
        let directory =
            pbx_adapter::queue::PbxDirectory::new(config.queues.clone(), config.agents.clone())
                .context("invalid queues or agents")?;
        let channels = Channels::new(&config.channels).map_err(anyhow::Error::msg)?;
        let engine = Engine::new(store.clone(), channels, Arc::new(directory), agents);
        engine
            .recover()
            .await
            .context("cannot recover conversations")?;
        let shutdown = CancellationToken::new();
        let limiters = api::ratelimit::Limiters::new(&config.limits);
        let state = ApiState {
            engine: engine.clone(),
            limiters: limiters.clone(),
            shutdown: shutdown.clone(),
        };
        let app = Router::new()
            .merge(api::visitor_api(state, config.limits.max_body_bytes))
            .merge(api::openapi::router())
            .merge(ops::router(store.clone()))
            .merge(assets::router())
            .layer(axum::middleware::from_fn(api::record_latency))
            .layer(TraceLayer::new_for_http());
        Ok(Gateway {
            engine,
            store,
            app,
            shutdown,
            grace: Duration::from_secs(config.server.shutdown_grace_secs),
            limiters,
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
        let housekeeping = tokio::spawn({
            let shutdown = shutdown.clone();
            async move {
                let mut every = tokio::time::interval(Duration::from_secs(60));
                loop {
                    tokio::select! {
                        _ = every.tick() => limiters.shrink(),
                        _ = shutdown.cancelled() => break,
                    }
                }
            }
        });
        let serve = axum::serve(
            listener,
            self.app
                .clone()
                .into_make_service_with_connect_info::<SocketAddr>(),
        )
        .with_graceful_shutdown({
            let shutdown = shutdown.clone();
            async move {
                signal.await;
                info!("shutting down: closing WebSockets, finishing requests");
                shutdown.cancel();
            }
        });
        let grace = self.grace;
        let served = tokio::spawn(async move { serve.await });
        shutdown.cancelled().await;
        match tokio::time::timeout(grace, served).await {
            Ok(result) => result.context("server task failed")??,
            Err(_) => tracing::warn!("requests still running after the grace period"),
        }
        housekeeping.await.context("housekeeping task failed")?;
        self.engine.shutdown().await;
        self.store.close().await;
        info!("frontdesk stopped");
        Ok(())
    }
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
