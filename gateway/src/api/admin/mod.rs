//! The admin console (`/admin`) and its JSON API (`/api/v1/admin/…`).
//!
//! The console is server-rendered HTML (askama templates in
//! `gateway/templates/admin/`) with one small script that sends its forms
//! to the JSON API, so the console and API clients share every handler and
//! every validation. Sessions live in the database (see `sessions.rs`);
//! who may do what is in `auth.rs`.

mod accounts;
pub mod auth;
mod console;
mod directory;
mod i18n;
mod live;
pub mod openapi;
mod sessions;
mod transcripts;

use std::num::NonZeroU32;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::{Json, Router};
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};
use serde::Deserialize;
use tower_sessions::cookie::SameSite;
use tower_sessions::{Expiry, Session, SessionManagerLayer};
use url::Url;

use crate::api::client::ClientAddr;
use crate::api::error::ApiError;
use crate::engine::Engine;

pub use auth::{create_user, set_password, CreateUserError, Role};

/// How long a console session lasts without being used.
const SESSION_IDLE: time::Duration = time::Duration::hours(8);

/// What the admin handlers share.
#[derive(Clone)]
pub struct AdminState {
    pub engine: Engine,
    /// The file store (transcripts' downloads, GDPR erasure).
    pub files: crate::files::Files,
    /// Where the gateway is reached (embed code, console links).
    pub public_url: Url,
    /// `public_url`'s origin, which a state-changing request's `Origin`
    /// must equal.
    pub origin: String,
    /// Cancelled on shutdown: live streams end.
    pub shutdown: tokio_util::sync::CancellationToken,
    /// Failed logins per client address and per user name.
    logins: Arc<DefaultKeyedRateLimiter<String>>,
}

impl AdminState {
    pub fn new(
        engine: Engine,
        files: crate::files::Files,
        public_url: Url,
        shutdown: tokio_util::sync::CancellationToken,
    ) -> AdminState {
        let origin = public_url.origin().ascii_serialization();
        // 10 attempts, then one more every 6 s.
        let quota = Quota::with_period(Duration::from_secs(6))
            .expect("a positive period")
            .allow_burst(NonZeroU32::new(10).expect("non-zero"));
        AdminState {
            engine,
            files,
            public_url,
            shutdown,
            origin,
            logins: Arc::new(RateLimiter::keyed(quota)),
        }
    }

    /// Refuses a login attempt when this client or this user name tried
    /// too often.
    fn login_allowed(&self, client: ClientAddr, username: &str) -> Result<(), ApiError> {
        for key in [format!("ip:{}", client.key()), format!("user:{username}")] {
            if self.logins.check_key(&key).is_err() {
                return Err(ApiError::rate_limited(6));
            }
        }
        Ok(())
    }
}

/// The console and admin API routes, behind the session layer.
pub fn router(state: AdminState) -> Router {
    let secure = !(state.public_url.scheme() == "http"
        && state.public_url.host_str().is_some_and(|h| {
            h == "localhost"
                || h.parse::<std::net::IpAddr>()
                    .is_ok_and(|ip| ip.is_loopback())
        }));
    let sessions =
        SessionManagerLayer::new(sessions::DbSessions::new(state.engine.store().clone()))
            .with_name("frontdesk_admin")
            .with_http_only(true)
            .with_same_site(SameSite::Strict)
            .with_secure(secure)
            .with_path("/")
            .with_expiry(Expiry::OnInactivity(SESSION_IDLE));
    Router::new()
        .route("/api/v1/admin/login", post(login_json))
        .route("/api/v1/admin/logout", post(logout_json))
        .merge(accounts::router())
        .merge(directory::router())
        .merge(transcripts::router())
        .merge(live::router())
        .merge(console::router().layer(axum::middleware::from_fn(i18n::remember)))
        .with_state(state)
        .layer(sessions)
}

#[derive(Deserialize)]
pub(crate) struct Credentials {
    username: String,
    password: String,
}

/// Logs `credentials` in on `session`: a fresh session id (no fixation), a
/// new CSRF token. Returns the CSRF token.
async fn log_in(
    state: &AdminState,
    session: &Session,
    client: ClientAddr,
    credentials: &Credentials,
) -> Result<String, ApiError> {
    state.login_allowed(client, &credentials.username)?;
    let user = auth::verify_login(
        state.engine.store(),
        &credentials.username,
        &credentials.password,
    )
    .await?;
    let Some(user) = user else {
        tracing::info!(client = %client.ip, "console login refused");
        return Err(ApiError::new(
            StatusCode::UNAUTHORIZED,
            "bad_credentials",
            "Wrong user name or password.",
        ));
    };
    let fail = |e: tower_sessions::session::Error| {
        tracing::error!(error = %e, "cannot store the console session");
        ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "unavailable",
            "Cannot log in right now; try again.",
        )
    };
    session.cycle_id().await.map_err(fail)?;
    let csrf = auth::random_secret();
    session
        .insert(auth::USER_ID, &user.id)
        .await
        .map_err(fail)?;
    session.insert(auth::CSRF, &csrf).await.map_err(fail)?;
    session
        .insert(auth::EPOCH, user.session_epoch)
        .await
        .map_err(fail)?;
    tracing::info!(user = %user.username, "console login");
    Ok(csrf)
}

async fn login_json(
    State(state): State<AdminState>,
    session: Session,
    client: ClientAddr,
    Json(credentials): Json<Credentials>,
) -> Result<Response, ApiError> {
    let csrf = log_in(&state, &session, client, &credentials).await?;
    Ok(Json(serde_json::json!({ "csrf": csrf })).into_response())
}

async fn logout_json(
    State(_state): State<AdminState>,
    session: Session,
    _principal: auth::Principal,
) -> StatusCode {
    if let Err(e) = session.flush().await {
        tracing::warn!(error = %e, "cannot delete the console session");
    }
    StatusCode::NO_CONTENT
}
