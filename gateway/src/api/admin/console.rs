//! The console's pages: server-rendered, readable without script; saving
//! goes through the JSON API (`console.js`).
//!
//! A page asked for without a session redirects to the login page. The
//! login and logout forms are plain HTML forms (no script needed to get
//! in or out); logout carries the CSRF token as a form field.

use askama::Template;
use axum::extract::{Form, Path, State};
use axum::http::{header, request::Parts, StatusCode};
use axum::response::{Html, IntoResponse, Redirect, Response};
use axum::routing::get;
use axum::Router;
use serde::Deserialize;
use tower_sessions::Session;

use super::auth::{self, Principal, Role};
use super::{AdminState, Credentials};
use crate::config::embed_snippet;
use crate::store::{ItemKind, ItemSource};

const CONSOLE_JS: &str = include_str!("../../../assets/admin/console.js");
const CONSOLE_CSS: &str = include_str!("../../../assets/admin/console.css");

pub fn router() -> Router<AdminState> {
    Router::new()
        .route("/admin", get(|| async { Redirect::to("/admin/channels") }))
        .route("/admin/login", get(login_page).post(login_form))
        .route("/admin/logout", axum::routing::post(logout_form))
        .route("/admin/channels", get(channels_page))
        .route("/admin/channels/{key}", get(channel_page))
        .route("/admin/audit", get(audit_page))
        .route(
            "/admin/console.js",
            get(|| asset(CONSOLE_JS, "text/javascript")),
        )
        .route("/admin/console.css", get(|| asset(CONSOLE_CSS, "text/css")))
}

async fn asset(body: &'static str, kind: &'static str) -> Response {
    (
        [
            (header::CONTENT_TYPE, format!("{kind}; charset=utf-8")),
            (header::CACHE_CONTROL, "no-cache".to_owned()),
            (header::X_CONTENT_TYPE_OPTIONS, "nosniff".to_owned()),
        ],
        body,
    )
        .into_response()
}

/// Renders a page, with the headers every console page carries.
fn page(status: StatusCode, template: &impl Template) -> Response {
    match template.render() {
        Ok(html) => (
            status,
            [
                (header::CACHE_CONTROL, "no-store"),
                (header::X_FRAME_OPTIONS, "DENY"),
                (
                    header::CONTENT_SECURITY_POLICY,
                    "default-src 'self'; frame-ancestors 'none'; form-action 'self'",
                ),
            ],
            Html(html),
        )
            .into_response(),
        Err(e) => {
            tracing::error!(error = %e, "cannot render a console page");
            StatusCode::INTERNAL_SERVER_ERROR.into_response()
        }
    }
}

/// The logged-in user, or a redirect to the login page.
struct Viewer(Principal);

impl axum::extract::FromRequestParts<AdminState> for Viewer {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, state: &AdminState) -> Result<Self, Response> {
        let to_login = || Redirect::to("/admin/login").into_response();
        let session = Session::from_request_parts(parts, state)
            .await
            .map_err(|_| to_login())?;
        auth::session_principal(state.engine.store(), &session)
            .await
            .map(Viewer)
            .map_err(|_| to_login())
    }
}

#[derive(Template)]
#[template(path = "admin/login.html")]
struct LoginPage {
    user: Option<String>,
    csrf: Option<String>,
    section: &'static str,
    error: Option<String>,
    username: String,
}

async fn login_page() -> Response {
    page(
        StatusCode::OK,
        &LoginPage {
            user: None,
            csrf: None,
            section: "",
            error: None,
            username: String::new(),
        },
    )
}

async fn login_form(
    State(state): State<AdminState>,
    session: Session,
    client: crate::api::client::ClientAddr,
    parts: axum::http::HeaderMap,
    Form(credentials): Form<Credentials>,
) -> Response {
    let origin_ok = parts
        .get(header::ORIGIN)
        .is_none_or(|o| o.to_str().is_ok_and(|o| o == state.origin));
    let outcome = if origin_ok {
        super::log_in(&state, &session, client, &credentials).await
    } else {
        Err(crate::api::error::ApiError::new(
            StatusCode::FORBIDDEN,
            "csrf",
            "This login did not come from the console.",
        ))
    };
    match outcome {
        Ok(_) => Redirect::to("/admin/channels").into_response(),
        Err(e) => page(
            e.status,
            &LoginPage {
                user: None,
                csrf: None,
                section: "",
                error: Some(e.message),
                username: credentials.username,
            },
        ),
    }
}

#[derive(Deserialize)]
struct LogoutForm {
    #[serde(rename = "_csrf")]
    csrf: String,
}

async fn logout_form(
    State(state): State<AdminState>,
    session: Session,
    Form(form): Form<LogoutForm>,
) -> Response {
    let Ok(principal) = auth::session_principal(state.engine.store(), &session).await else {
        return Redirect::to("/admin/login").into_response();
    };
    if principal.csrf.as_deref() != Some(form.csrf.as_str()) {
        return StatusCode::FORBIDDEN.into_response();
    }
    if let Err(e) = session.flush().await {
        tracing::warn!(error = %e, "cannot delete the console session");
    }
    Redirect::to("/admin/login").into_response()
}

struct ChannelRow {
    key: String,
    name: String,
    mode: &'static str,
    enabled: bool,
    read_only: bool,
}

#[derive(Template)]
#[template(path = "admin/channels.html")]
struct ChannelsPage {
    user: Option<String>,
    csrf: Option<String>,
    section: &'static str,
    can_edit: bool,
    rows: Vec<ChannelRow>,
}

fn can_edit(principal: &Principal) -> bool {
    principal.role != Role::Supervisor
}

async fn channels_page(State(state): State<AdminState>, Viewer(viewer): Viewer) -> Response {
    let directory = state.engine.directory();
    let rows = (directory.spec().channels.iter())
        .filter_map(|c| {
            let meta = directory.meta(ItemKind::Channel, c.key.as_str())?;
            (meta.tenant == viewer.tenant).then(|| ChannelRow {
                key: c.key.to_string(),
                name: c.name.clone(),
                mode: match c.mode {
                    crate::config::ChannelMode::Live => "Live chat",
                    crate::config::ChannelMode::Chatbot => "Chatbot",
                },
                enabled: c.enabled,
                read_only: meta.source == ItemSource::File,
            })
        })
        .collect();
    page(
        StatusCode::OK,
        &ChannelsPage {
            user: Some(viewer.name.clone()),
            csrf: viewer.csrf.clone(),
            section: "channels",
            can_edit: can_edit(&viewer),
            rows,
        },
    )
}

#[derive(Template)]
#[template(path = "admin/channel.html")]
struct ChannelPage {
    user: Option<String>,
    csrf: Option<String>,
    section: &'static str,
    key: String,
    is_new: bool,
    read_only: bool,
    can_edit: bool,
    /// The tenant's queues: (extension, name).
    queues: Vec<(String, String)>,
    embed: String,
}

async fn channel_page(
    State(state): State<AdminState>,
    Viewer(viewer): Viewer,
    Path(key): Path<String>,
) -> Response {
    let directory = state.engine.directory();
    let is_new = key == "new";
    let meta = directory
        .meta(ItemKind::Channel, &key)
        .filter(|m| m.tenant == viewer.tenant);
    if !is_new && meta.is_none() {
        return StatusCode::NOT_FOUND.into_response();
    }
    let queues = (directory.spec().queues.iter())
        .filter(|q| directory.tenant_of_queue(q.extension.as_str()) == Some(viewer.tenant.as_str()))
        .map(|q| (q.extension.to_string(), q.name.clone()))
        .collect();
    page(
        StatusCode::OK,
        &ChannelPage {
            user: Some(viewer.name.clone()),
            csrf: viewer.csrf.clone(),
            section: "channels",
            key: if is_new { String::new() } else { key.clone() },
            is_new,
            read_only: meta.is_some_and(|m| m.source == ItemSource::File),
            can_edit: can_edit(&viewer),
            queues,
            embed: embed_snippet(&state.public_url, &key),
        },
    )
}

#[derive(Template)]
#[template(path = "admin/audit.html")]
struct AuditPage {
    user: Option<String>,
    csrf: Option<String>,
    section: &'static str,
    /// (when, who, what, on)
    rows: Vec<(String, String, String, String)>,
}

async fn audit_page(State(state): State<AdminState>, Viewer(viewer): Viewer) -> Response {
    let rows = match state
        .engine
        .store()
        .audit_log(Some(&viewer.tenant), 500)
        .await
    {
        Ok(rows) => rows,
        Err(e) => {
            tracing::error!(error = %e, "cannot read the audit log");
            return StatusCode::SERVICE_UNAVAILABLE.into_response();
        }
    };
    let rows = rows
        .into_iter()
        .map(|r| {
            let when = chrono::DateTime::from_timestamp_millis(r.at)
                .map(|t| t.format("%Y-%m-%d %H:%M:%S").to_string())
                .unwrap_or_default();
            (when, r.actor, r.action, r.target)
        })
        .collect();
    page(
        StatusCode::OK,
        &AuditPage {
            user: Some(viewer.name.clone()),
            csrf: viewer.csrf.clone(),
            section: "audit",
            rows,
        },
    )
}
