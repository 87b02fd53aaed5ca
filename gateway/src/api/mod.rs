//! The HTTP edge: visitor API, event stream, operations endpoints and the
//! widget's files. An adapter over the engine: it enforces the edge's own
//! rules (allowed origins, the visitor token, body and file size limits,
//! batch and rate limits) and leaves every conversation rule to the engine.

pub mod admin;
pub mod client;
pub mod error;
pub mod events;
pub mod extract;
pub mod files;
#[doc(hidden)]
pub mod fuzzing;
pub mod openapi;
pub mod ratelimit;
pub mod upload;
pub mod visitor;

use std::time::{Duration, Instant};

use axum::extract::{DefaultBodyLimit, MatchedPath, Request};
use axum::http::{header, HeaderValue, Method};
use axum::middleware::Next;
use axum::response::Response;
use axum::Router;
use tokio_util::sync::CancellationToken;
use tower_http::cors::{AllowOrigin, CorsLayer};

use crate::engine::Engine;
use ratelimit::Limiters;

/// What the visitor-facing handlers need, and nothing more.
#[derive(Clone)]
pub struct ApiState {
    pub engine: Engine,
    pub limiters: Limiters,
    /// Cancelled on shutdown: WebSocket sessions close with 1001.
    pub shutdown: CancellationToken,
    /// The open event streams, per conversation, and their limits.
    pub sockets: events::Sockets,
}

/// The visitor API, event stream and file routes, with CORS for the
/// channels' allowed origins and the JSON body limit (the upload route has
/// its own, sized for files).
pub fn visitor_api(state: ApiState, files: crate::files::Files, max_body_bytes: usize) -> Router {
    let engine = state.engine.clone();
    let cors = CorsLayer::new()
        .allow_origin(AllowOrigin::predicate(move |origin: &HeaderValue, _| {
            origin
                .to_str()
                .is_ok_and(|o| engine.channels().any_allows_origin(o))
        }))
        .allow_methods([Method::GET, Method::POST])
        .allow_headers([header::AUTHORIZATION, header::CONTENT_TYPE])
        .max_age(Duration::from_secs(600));
    Router::new()
        .merge(visitor::router(state.clone()))
        .merge(events::router(state.clone()))
        .merge(upload::router(state.clone(), files.clone()))
        .merge(files::router(state, files))
        .layer(DefaultBodyLimit::max(max_body_bytes))
        .layer(cors)
}

/// Records `frontdesk_http_request_duration_seconds` per route.
pub async fn record_latency(request: Request, next: Next) -> Response {
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map(|p| p.as_str().to_owned())
        .unwrap_or_else(|| "unmatched".to_owned());
    let method = request.method().to_string();
    let started = Instant::now();
    let response = next.run(request).await;
    metrics::histogram!(
        "frontdesk_http_request_duration_seconds",
        "method" => method,
        "route" => route,
        "status" => response.status().as_u16().to_string()
    )
    .record(started.elapsed().as_secs_f64());
    response
}
