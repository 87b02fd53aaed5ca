//! Operations endpoints: liveness, readiness, Prometheus metrics.
//!
//! `/healthz` says the process serves, with a `node_id` (random, made when
//! the gateway starts) naming which node of several answered, and telling
//! a restarted process from the one before; `/readyz` that the database
//! answers within 2 s and every migration is applied (503 otherwise,
//! within those 2 s: a load balancer stops sending visitors while the
//! database is away, and sends them again once it answers, with no
//! restart), or `draining` once a cluster node got SIGTERM (it still
//! serves while the balancer moves requests away); `/metrics` is Prometheus text: `frontdesk_conversations{state}`,
//! `frontdesk_conversations_started_total`, `frontdesk_messages_total{from}`,
//! `frontdesk_websocket_sessions`, `frontdesk_http_request_duration_seconds`,
//! `frontdesk_xmpp_connected` (1 while the XMPP component is connected)
//! and, on PostgreSQL, `frontdesk_signals_listening` (1 while this node
//! hears the other nodes' signals).
//! One recorder per process.

use std::sync::{Arc, OnceLock};

use axum::extract::State;
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};
use serde_json::json;
use subtle::ConstantTimeEq;

use crate::domain::ConversationState;
use crate::store::Store;

/// The process-wide Prometheus recorder (installed once, shared by every
/// gateway a test process starts).
pub fn prometheus() -> PrometheusHandle {
    static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();
    HANDLE
        .get_or_init(|| {
            let recorder = PrometheusBuilder::new()
                .set_buckets_for_metric(
                    metrics_exporter_prometheus::Matcher::Suffix("duration_seconds".into()),
                    &[
                        0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0,
                    ],
                )
                .expect("static buckets are valid")
                .build_recorder();
            let handle = recorder.handle();
            if metrics::set_global_recorder(recorder).is_err() {
                tracing::warn!("a metrics recorder was already installed");
            }
            handle
        })
        .clone()
}

#[derive(Clone)]
struct OpsState {
    store: Store,
    prometheus: PrometheusHandle,
    /// The bearer token `/metrics` requires, if any.
    metrics_token: Option<Arc<str>>,
    /// This gateway's id in `/healthz`.
    node_id: Arc<str>,
    draining: Draining,
}

/// Set when the node starts draining (SIGTERM in a cluster): `/readyz`
/// answers 503 `draining` from then on, so the load balancer sends new
/// requests elsewhere while this node still finishes what it has.
#[derive(Clone, Default)]
pub struct Draining(Arc<std::sync::atomic::AtomicBool>);

impl Draining {
    pub fn start(&self) {
        self.0.store(true, std::sync::atomic::Ordering::SeqCst);
    }

    pub fn is_on(&self) -> bool {
        self.0.load(std::sync::atomic::Ordering::SeqCst)
    }
}

pub fn router(
    store: Store,
    metrics_token: Option<&str>,
    node_id: &str,
    draining: Draining,
) -> Router {
    Router::new()
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics_text))
        .with_state(OpsState {
            store,
            prometheus: prometheus(),
            metrics_token: metrics_token.filter(|t| !t.is_empty()).map(Arc::from),
            node_id: Arc::from(node_id),
            draining,
        })
}

/// Whether `headers` carry the metrics token (compared in constant time).
fn metrics_allowed(state: &OpsState, headers: &HeaderMap) -> bool {
    let Some(expected) = &state.metrics_token else {
        return true;
    };
    let presented = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .unwrap_or_default();
    bool::from(presented.as_bytes().ct_eq(expected.as_bytes()))
}

async fn healthz(State(state): State<OpsState>) -> impl IntoResponse {
    Json(json!({ "status": "ok", "node_id": &*state.node_id }))
}

/// How long `/readyz` waits for the database: a probe must hear "not
/// ready" quickly, not after the pool's acquire timeout.
const READY_WITHIN: std::time::Duration = std::time::Duration::from_secs(2);

async fn readyz(State(state): State<OpsState>) -> impl IntoResponse {
    if state.draining.is_on() {
        return (
            StatusCode::SERVICE_UNAVAILABLE,
            Json(json!({ "status": "draining" })),
        );
    }
    match state.store.ready(READY_WITHIN).await {
        Ok(true) => (StatusCode::OK, Json(json!({ "status": "ready" }))),
        Ok(false) => (
            StatusCode::SERVICE_UNAVAILABLE,
            Json(json!({ "status": "migrations_pending" })),
        ),
        Err(e) => {
            tracing::warn!(error = %e, "readiness check failed");
            (
                StatusCode::SERVICE_UNAVAILABLE,
                Json(json!({ "status": "database_unreachable" })),
            )
        }
    }
}

async fn metrics_text(State(state): State<OpsState>, headers: HeaderMap) -> Response {
    if !metrics_allowed(&state, &headers) {
        return (
            StatusCode::UNAUTHORIZED,
            [(header::WWW_AUTHENTICATE, "Bearer")],
            "metrics need the configured bearer token\n",
        )
            .into_response();
    }
    match state.store.count_by_state().await {
        Ok(counts) => {
            for s in ConversationState::ALL {
                let n = counts
                    .iter()
                    .find(|(name, _)| name == s.as_str())
                    .map_or(0, |(_, n)| *n);
                metrics::gauge!("frontdesk_conversations", "state" => s.as_str()).set(n as f64);
            }
        }
        Err(e) => tracing::warn!(error = %e, "cannot count conversations for metrics"),
    }
    (
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        state.prometheus.render(),
    )
        .into_response()
}
