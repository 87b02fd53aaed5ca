//! The console's pages: server-rendered, readable without script; saving
//! goes through the JSON API (`console.js`).
//!
//! A page asked for without a session redirects to the login page. The
//! login, logout and password forms are plain HTML forms (no script needed
//! to get in or out, or to change one's password; the latter two carry
//! the CSRF token as a form field). Every input carries the limits the
//! server enforces (`maxlength`, `min`, `max`, `required`), from the same
//! constants; the server stays the judge.
//!
//! No page may be framed (`frame-ancestors 'none'`) but the widget preview
//! (`/admin/channels/{key}/preview`), which only the console's own pages
//! may frame and which may open no connection at all (`connect-src
//! 'none'`): the widget in it, in preview mode, renders the draft the
//! channel editor sends it by `postMessage` and never calls the visitor API.

use askama::Template;
use axum::extract::{Form, Path, State};
use axum::http::{header, request::Parts, StatusCode};
use axum::response::{Html, IntoResponse, Redirect, Response};
use axum::routing::get;
use axum::Router;
use serde::Deserialize;
use tower_sessions::Session;

use super::auth::{self, Principal, Role};
use super::i18n::{Lang, Texts};
use super::{AdminState, Credentials};
use crate::config::embed_snippet;
use crate::store::{ItemKind, ItemSource};

const CONSOLE_JS: &str = include_str!("../../../assets/admin/console.js");
const CONSOLE_CSS: &str = include_str!("../../../assets/admin/console.css");

pub fn router() -> Router<AdminState> {
    Router::new()
        .route("/admin", get(|| async { Redirect::to("/admin/live") }))
        .route("/admin/login", get(login_page).post(login_form))
        .route("/admin/logout", axum::routing::post(logout_form))
        .route("/admin/channels", get(channels_page))
        .route("/admin/channels/{key}", get(channel_page))
        .route("/admin/channels/{key}/preview", get(preview_page))
        .route("/admin/audit", get(audit_page))
        .route("/admin/live", get(live_page))
        .route("/admin/transcripts", get(transcripts_page))
        .route("/admin/transcripts/{id}", get(transcript_page))
        .route("/admin/follow-up", get(follow_up_page))
        .route("/admin/visitors", get(visitors_page))
        .route("/admin/queues", get(queues_page))
        .route("/admin/queues/{key}", get(queue_page))
        .route("/admin/agents/{key}", get(agent_page))
        .route("/admin/users", get(users_page))
        .route("/admin/tokens", get(tokens_page))
        .route("/admin/tenants", get(tenants_page))
        .route("/admin/password", get(password_page).post(password_form))
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
    render(
        status,
        template,
        "DENY",
        "default-src 'self'; frame-ancestors 'none'; form-action 'self'",
    )
}

fn render(
    status: StatusCode,
    template: &impl Template,
    frame_options: &'static str,
    csp: &'static str,
) -> Response {
    match template.render() {
        Ok(html) => (
            status,
            [
                (header::CACHE_CONTROL, "no-store"),
                (header::X_FRAME_OPTIONS, frame_options),
                (header::CONTENT_SECURITY_POLICY, csp),
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

/// What every page's frame shows: who is logged in (and so which menu
/// entries), the CSRF token the script and the logout form send, and the
/// current section of the menu.
#[derive(Default)]
struct Chrome {
    user: Option<String>,
    csrf: Option<String>,
    section: &'static str,
    /// Admins and super-admins: API tokens.
    admin: bool,
    /// Tenants.
    superadmin: bool,
}

impl Chrome {
    fn of(viewer: &Principal, section: &'static str) -> Chrome {
        Chrome {
            user: Some(viewer.name.clone()),
            csrf: viewer.csrf.clone(),
            section,
            admin: can_edit(viewer),
            superadmin: viewer.role == Role::Superadmin,
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
    c: Chrome,
    t: &'static Texts,
    error: Option<String>,
    username: String,
}

async fn login_page(Lang(t): Lang) -> Response {
    page(
        StatusCode::OK,
        &LoginPage {
            c: Chrome::default(),
            t,
            error: None,
            username: String::new(),
        },
    )
}

async fn login_form(
    State(state): State<AdminState>,
    session: Session,
    client: crate::api::client::ClientAddr,
    Lang(t): Lang,
    parts: axum::http::HeaderMap,
    Form(credentials): Form<Credentials>,
) -> Response {
    let outcome = if auth::same_origin(&parts, &state) {
        super::log_in(&state, &session, client, &credentials).await
    } else {
        Err(crate::api::error::ApiError::new(
            StatusCode::FORBIDDEN,
            "csrf",
            "This login did not come from the console.",
        ))
    };
    match outcome {
        Ok(_) => Redirect::to("/admin/live").into_response(),
        Err(e) => page(
            e.status,
            &LoginPage {
                c: Chrome::default(),
                t,
                error: Some(said(t, &e)),
                username: credentials.username,
            },
        ),
    }
}

/// An API error as the console says it in its language.
fn said(t: &'static Texts, e: &crate::api::error::ApiError) -> String {
    match e.code {
        "bad_credentials" => t.bad_credentials.to_owned(),
        "rate_limited" => t.too_many_attempts.to_owned(),
        "csrf" => t.not_from_console.to_owned(),
        _ => e.message.clone(),
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
    chatbot: bool,
    enabled: bool,
    origin: &'static str,
}

/// Where an item is managed, as the lists show it.
fn origin(t: &Texts, source: ItemSource) -> &'static str {
    match source {
        ItemSource::File => "frontdesk.toml",
        ItemSource::Console => t.console,
        ItemSource::Pbx => t.pbx,
    }
}

/// Why an item is read-only here, if it is.
fn read_only_note(t: &Texts, source: Option<ItemSource>) -> &'static str {
    match source {
        Some(ItemSource::File) => t.read_only_note,
        Some(ItemSource::Pbx) => t.pbx_note,
        Some(ItemSource::Console) | None => "",
    }
}

#[derive(Template)]
#[template(path = "admin/channels.html")]
struct ChannelsPage {
    c: Chrome,
    t: &'static Texts,
    can_edit: bool,
    rows: Vec<ChannelRow>,
}

fn can_edit(principal: &Principal) -> bool {
    principal.role != Role::Supervisor
}

async fn channels_page(
    State(state): State<AdminState>,
    Viewer(viewer): Viewer,
    Lang(t): Lang,
) -> Response {
    let directory = state.engine.directory();
    let rows = (directory.spec().channels.iter())
        .filter_map(|c| {
            let meta = directory.meta(ItemKind::Channel, c.key.as_str())?;
            (meta.tenant == viewer.tenant).then(|| ChannelRow {
                key: c.key.to_string(),
                name: c.name.clone(),
                chatbot: c.mode == crate::config::ChannelMode::Chatbot,
                enabled: c.enabled,
                origin: origin(t, meta.source),
            })
        })
        .collect();
    page(
        StatusCode::OK,
        &ChannelsPage {
            c: Chrome::of(&viewer, "channels"),
            t,
            can_edit: can_edit(&viewer),
            rows,
        },
    )
}

#[derive(Template)]
#[template(path = "admin/channel.html")]
struct ChannelPage {
    c: Chrome,
    t: &'static Texts,
    key: String,
    is_new: bool,
    read_only: bool,
    /// Why it is read-only (empty when it is not).
    note: &'static str,
    can_edit: bool,
    /// The tenant's queues: (extension, name).
    queues: Vec<(String, String)>,
    embed: String,
    /// The key in the preview's path: the channel's, or `new`.
    preview_key: String,
}

/// The source of the viewer's tenant's channel `key` (`None` for `new`),
/// or 404 for any other key.
fn own_channel(
    state: &AdminState,
    viewer: &Principal,
    key: &str,
) -> Result<Option<ItemSource>, StatusCode> {
    if key == "new" {
        return Ok(None);
    }
    (state.engine.directory())
        .meta(ItemKind::Channel, key)
        .filter(|m| m.tenant == viewer.tenant)
        .map(|m| Some(m.source))
        .ok_or(StatusCode::NOT_FOUND)
}

async fn channel_page(
    State(state): State<AdminState>,
    Viewer(viewer): Viewer,
    Lang(t): Lang,
    Path(key): Path<String>,
) -> Response {
    let source = match own_channel(&state, &viewer, &key) {
        Ok(source) => source,
        Err(status) => return status.into_response(),
    };
    let is_new = source.is_none();
    let directory = state.engine.directory();
    let queues = (directory.spec().queues.iter())
        .filter(|q| directory.tenant_of_queue(q.extension.as_str()) == Some(viewer.tenant.as_str()))
        .map(|q| (q.extension.to_string(), q.name.clone()))
        .collect();
    page(
        StatusCode::OK,
        &ChannelPage {
            c: Chrome::of(&viewer, "channels"),
            t,
            key: if is_new { String::new() } else { key.clone() },
            is_new,
            read_only: source.is_some_and(|s| s != ItemSource::Console),
            note: read_only_note(t, source),
            can_edit: can_edit(&viewer),
            queues,
            embed: embed_snippet(&state.public_url, &key),
            preview_key: key,
        },
    )
}

#[derive(Template)]
#[template(path = "admin/preview.html")]
struct PreviewPage {
    t: &'static Texts,
    key: String,
}

/// The page the channel editor frames: the widget in preview mode, for a
/// channel of the viewer's tenant (or `new`), drawn from the editor's draft.
async fn preview_page(
    State(state): State<AdminState>,
    Viewer(viewer): Viewer,
    Lang(t): Lang,
    Path(key): Path<String>,
) -> Response {
    if let Err(status) = own_channel(&state, &viewer, &key) {
        return status.into_response();
    }
    render(
        StatusCode::OK,
        &PreviewPage { t, key },
        "SAMEORIGIN",
        "default-src 'self'; connect-src 'none'; frame-ancestors 'self'; form-action 'none'",
    )
}

#[derive(Template)]
#[template(path = "admin/audit.html")]
struct AuditPage {
    c: Chrome,
    t: &'static Texts,
    /// (when, who, what, on)
    rows: Vec<(String, String, String, String)>,
}

async fn audit_page(
    State(state): State<AdminState>,
    Viewer(viewer): Viewer,
    Lang(t): Lang,
) -> Response {
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
            c: Chrome::of(&viewer, "audit"),
            t,
            rows,
        },
    )
}

#[derive(Template)]
#[template(path = "admin/live.html")]
struct LivePage {
    c: Chrome,
    t: &'static Texts,
}

async fn live_page(Viewer(viewer): Viewer, Lang(t): Lang) -> Response {
    page(
        StatusCode::OK,
        &LivePage {
            c: Chrome::of(&viewer, "live"),
            t,
        },
    )
}

/// A conversation in a console table.
struct ListRow {
    id: String,
    started: String,
    visitor: String,
    email: String,
    channel: String,
    queue: String,
    agent: String,
    state: &'static str,
}

fn utc(ms: i64) -> String {
    chrono::DateTime::from_timestamp_millis(ms)
        .map(|t| t.format("%Y-%m-%d %H:%M:%S").to_string())
        .unwrap_or_default()
}

impl From<&crate::store::ConversationRow> for ListRow {
    fn from(r: &crate::store::ConversationRow) -> ListRow {
        ListRow {
            id: r.id.to_string(),
            started: utc(r.created_at),
            visitor: r.visitor_name.clone(),
            email: r.visitor_email.clone(),
            channel: r.channel_key.clone(),
            queue: r.queue_extension.clone().unwrap_or_default(),
            agent: (r.agent_name.clone())
                .map(|n| format!("{n} ({})", r.agent_extension.clone().unwrap_or_default()))
                .unwrap_or_default(),
            state: r.state.as_str(),
        }
    }
}

/// The search form's values, echoed back into it.
#[derive(Default)]
struct SearchEcho {
    q: String,
    from: String,
    to: String,
    channel: String,
    queue: String,
    agent: String,
    state: String,
}

#[derive(Template)]
#[template(path = "admin/transcripts.html")]
struct TranscriptsPage {
    c: Chrome,
    t: &'static Texts,
    error: Option<String>,
    q: SearchEcho,
    channels: Vec<String>,
    states: Vec<String>,
    rows: Vec<ListRow>,
}

async fn transcripts_page(
    State(state): State<AdminState>,
    Viewer(viewer): Viewer,
    Lang(t): Lang,
    query: super::transcripts::SearchQuery,
) -> Response {
    let (rows, error) = match super::transcripts::search_rows(&state, &viewer, &query).await {
        Ok(rows) => (rows.iter().map(ListRow::from).collect(), None),
        Err(e) => (Vec::new(), Some(e.message)),
    };
    let text = |v: &Option<String>| v.clone().unwrap_or_default();
    page(
        StatusCode::OK,
        &TranscriptsPage {
            c: Chrome::of(&viewer, "transcripts"),
            t,
            error,
            q: SearchEcho {
                q: text(&query.q),
                from: text(&query.from),
                to: text(&query.to),
                channel: text(&query.channel),
                queue: text(&query.queue),
                agent: text(&query.agent),
                state: text(&query.state),
            },
            channels: super::transcripts::tenant_channels(&state, &viewer),
            states: crate::domain::ConversationState::ALL
                .iter()
                .map(|s| s.as_str().to_owned())
                .collect(),
            rows,
        },
    )
}

struct Line {
    kind: &'static str,
    at: String,
    who: String,
    text: String,
    file: Option<String>,
}

#[derive(Template)]
#[template(path = "admin/transcript.html")]
struct TranscriptPage {
    c: Chrome,
    t: &'static Texts,
    id: String,
    visitor: String,
    email: String,
    channel: String,
    queue: String,
    agent: String,
    state: &'static str,
    page: String,
    started: String,
    ended: String,
    lines: Vec<Line>,
}

async fn transcript_page(
    State(state): State<AdminState>,
    Viewer(viewer): Viewer,
    Lang(t): Lang,
    Path(id): Path<String>,
) -> Response {
    let Ok(row) = super::transcripts::own_row(&state, &viewer, &id).await else {
        return StatusCode::NOT_FOUND.into_response();
    };
    let transcript = match super::transcripts::transcript_of(&state, &row).await {
        Ok(t) => t,
        Err(e) => return e.into_response(),
    };
    let lines = (transcript.events.iter())
        .map(|e| {
            let at = utc(e.at);
            match &e.event.body {
                crate::engine::EventBody::Message { message } => Line {
                    kind: "message",
                    at,
                    who: message.author.clone(),
                    text: message.body.clone(),
                    file: message.attachment.as_ref().map(|a| a.id.to_string()),
                },
                other => Line {
                    kind: "system",
                    at,
                    who: String::new(),
                    text: other.describe(),
                    file: None,
                },
            }
        })
        .collect();
    let list = ListRow::from(&row);
    page(
        StatusCode::OK,
        &TranscriptPage {
            c: Chrome::of(&viewer, "transcripts"),
            t,
            id: list.id,
            visitor: list.visitor,
            email: list.email,
            channel: list.channel,
            queue: list.queue,
            agent: list.agent,
            state: list.state,
            page: row.page_url.clone().unwrap_or_default(),
            started: list.started,
            ended: row.ended_at.map(utc).unwrap_or_default(),
            lines,
        },
    )
}

#[derive(Template)]
#[template(path = "admin/follow_up.html")]
struct FollowUpPage {
    c: Chrome,
    t: &'static Texts,
    missed: Vec<ListRow>,
    out_of_hours: Vec<ListRow>,
}

async fn follow_up_page(
    State(state): State<AdminState>,
    Viewer(viewer): Viewer,
    Lang(t): Lang,
) -> Response {
    let (missed, out_of_hours) = match super::transcripts::follow_up_rows(&state, &viewer).await {
        Ok(lists) => lists,
        Err(e) => return e.into_response(),
    };
    page(
        StatusCode::OK,
        &FollowUpPage {
            c: Chrome::of(&viewer, "follow-up"),
            t,
            missed: missed.iter().map(ListRow::from).collect(),
            out_of_hours: out_of_hours.iter().map(ListRow::from).collect(),
        },
    )
}

#[derive(Deserialize)]
struct EmailForm {
    email: Option<String>,
}

#[derive(Template)]
#[template(path = "admin/visitors.html")]
struct VisitorsPage {
    c: Chrome,
    t: &'static Texts,
    email: String,
    can_edit: bool,
    rows: Vec<ListRow>,
}

async fn visitors_page(
    State(state): State<AdminState>,
    Viewer(viewer): Viewer,
    Lang(t): Lang,
    axum::extract::Query(form): axum::extract::Query<EmailForm>,
) -> Response {
    let email = form.email.unwrap_or_default().trim().to_owned();
    let rows = if email.is_empty() {
        Vec::new()
    } else {
        let channels = super::transcripts::tenant_channels(&state, &viewer);
        match state
            .engine
            .store()
            .conversations_of_email(&channels, &email)
            .await
        {
            Ok(rows) => rows.iter().map(ListRow::from).collect(),
            Err(e) => {
                return crate::api::error::ApiError::from(crate::engine::EngineError::Store(e))
                    .into_response()
            }
        }
    };
    page(
        StatusCode::OK,
        &VisitorsPage {
            c: Chrome::of(&viewer, "visitors"),
            t,
            email,
            can_edit: can_edit(&viewer),
            rows,
        },
    )
}

struct QueueRow {
    extension: String,
    name: String,
    strategy: String,
    members: String,
    ring: u32,
    max_chats: u32,
    wrapup: u32,
    max_wait: String,
    origin: &'static str,
}

struct AgentRow {
    extension: String,
    name: String,
    xmpp: String,
    sip: String,
    origin: &'static str,
}

#[derive(Template)]
#[template(path = "admin/queues.html")]
struct QueuesPage {
    c: Chrome,
    t: &'static Texts,
    can_edit: bool,
    queues: Vec<QueueRow>,
    agents: Vec<AgentRow>,
}

async fn queues_page(
    State(state): State<AdminState>,
    Viewer(viewer): Viewer,
    Lang(t): Lang,
) -> Response {
    let directory = state.engine.directory();
    let mine = |kind, key: &str| {
        directory
            .meta(kind, key)
            .filter(|m| m.tenant == viewer.tenant)
            .map(|m| origin(t, m.source))
    };
    let queues = (directory.spec().queues.iter())
        .filter_map(|q| {
            let origin = mine(ItemKind::Queue, q.extension.as_str())?;
            let strategy = serde_json::to_value(q.strategy).ok()?;
            Some(QueueRow {
                extension: q.extension.to_string(),
                name: q.name.clone(),
                strategy: strategy.as_str().unwrap_or_default().to_owned(),
                members: (q.members.iter())
                    .map(|m| m.agent.to_string())
                    .collect::<Vec<_>>()
                    .join(", "),
                ring: q.ring_timeout_secs,
                max_chats: q.max_chats_per_agent,
                wrapup: q.wrapup_secs,
                max_wait: q
                    .max_wait_secs
                    .map(|s| format!("{s} s"))
                    .unwrap_or_default(),
                origin,
            })
        })
        .collect();
    let agents = (directory.spec().agents.iter())
        .filter_map(|a| {
            Some(AgentRow {
                origin: mine(ItemKind::Agent, a.extension.as_str())?,
                extension: a.extension.to_string(),
                name: a.name.clone(),
                xmpp: a.xmpp.as_ref().map(ToString::to_string).unwrap_or_default(),
                sip: a.sip.as_ref().map(ToString::to_string).unwrap_or_default(),
            })
        })
        .collect();
    page(
        StatusCode::OK,
        &QueuesPage {
            c: Chrome::of(&viewer, "queues"),
            t,
            can_edit: can_edit(&viewer),
            queues,
            agents,
        },
    )
}

/// One input of a generic item form, with the server's limits.
#[derive(Default)]
struct Field {
    name: &'static str,
    label: &'static str,
    /// `text`, `number`, `select`, `lines`.
    kind: &'static str,
    /// For `select`: (value, label).
    options: Vec<(&'static str, &'static str)>,
    /// For `lines`: how the script reads each line (`members`).
    lines: &'static str,
    required: bool,
    maxlength: Option<usize>,
    pattern: Option<&'static str>,
    min: Option<u32>,
    max: Option<u32>,
}

fn field(name: &'static str, label: &'static str, kind: &'static str) -> Field {
    Field {
        name,
        label,
        kind,
        ..Field::default()
    }
}

/// A text input of at most `max` characters.
fn text(name: &'static str, label: &'static str, max: usize) -> Field {
    Field {
        maxlength: Some(max),
        ..field(name, label, "text")
    }
}

/// A whole number from `min` (to the largest the server reads).
fn number(name: &'static str, label: &'static str, min: u32) -> Field {
    Field {
        min: Some(min),
        max: Some(u32::MAX),
        ..field(name, label, "number")
    }
}

/// An extension: required, as pbx-adapter reads them.
fn extension(t: &'static Texts) -> Field {
    Field {
        required: true,
        pattern: Some("[A-Za-z0-9*#_\\-]+"),
        ..text(
            "extension",
            t.extension,
            pbx_adapter::model::MAX_EXTENSION_CHARS,
        )
    }
}

fn required(field: Field) -> Field {
    Field {
        required: true,
        ..field
    }
}

#[derive(Template)]
#[template(path = "admin/item.html")]
struct ItemPage {
    c: Chrome,
    t: &'static Texts,
    title: String,
    kind: &'static str,
    api: &'static str,
    key: String,
    key_field: &'static str,
    is_new: bool,
    read_only: bool,
    /// Why it is read-only (empty when it is not).
    note: &'static str,
    can_edit: bool,
    fields: Vec<Field>,
}

async fn item_page(
    state: &AdminState,
    viewer: &Principal,
    t: &'static Texts,
    kind: ItemKind,
    key: String,
) -> Response {
    use crate::config::{MAX_ADDRESS_CHARS, MAX_NAME_CHARS};
    let directory = state.engine.directory();
    let is_new = key == "new";
    let meta = directory
        .meta(kind, &key)
        .filter(|m| m.tenant == viewer.tenant);
    if !is_new && meta.is_none() {
        return StatusCode::NOT_FOUND.into_response();
    }
    let (kind, noun, new_title, api, fields) = match kind {
        ItemKind::Queue => (
            "queue",
            t.queue,
            t.new_queue_title,
            "/api/v1/admin/queues/",
            vec![
                extension(t),
                required(text("name", t.name, MAX_NAME_CHARS)),
                Field {
                    options: (pbx_adapter::queue::Strategy::ALL.iter())
                        .map(|s| (s.as_str(), (t.strategy_name)(*s)))
                        .collect(),
                    ..field("strategy", t.strategy_label, "select")
                },
                Field {
                    lines: "members",
                    ..field("members", t.members_label, "lines")
                },
                number("ring_timeout_secs", t.ring_timeout_label, 1),
                number("max_chats_per_agent", t.max_chats_label, 1),
                number("wrapup_secs", t.wrapup_label, 0),
                number("max_wait_secs", t.max_wait_label, 1),
            ],
        ),
        _ => (
            "agent",
            t.agent,
            t.new_agent_title,
            "/api/v1/admin/agents/",
            vec![
                extension(t),
                required(text("name", t.agent_name_label, MAX_NAME_CHARS)),
                text("xmpp", t.xmpp_label, MAX_ADDRESS_CHARS),
                text("sip", t.sip_label, MAX_ADDRESS_CHARS),
            ],
        ),
    };
    page(
        StatusCode::OK,
        &ItemPage {
            c: Chrome::of(viewer, "queues"),
            t,
            title: if is_new {
                new_title.to_owned()
            } else {
                format!("{noun} {key}")
            },
            kind,
            api,
            key: if is_new { String::new() } else { key },
            key_field: "extension",
            is_new,
            read_only: meta.is_some_and(|m| m.source != ItemSource::Console),
            note: read_only_note(t, meta.map(|m| m.source)),
            can_edit: can_edit(viewer),
            fields,
        },
    )
}

async fn queue_page(
    State(state): State<AdminState>,
    Viewer(viewer): Viewer,
    Lang(t): Lang,
    Path(key): Path<String>,
) -> Response {
    item_page(&state, &viewer, t, ItemKind::Queue, key).await
}

async fn agent_page(
    State(state): State<AdminState>,
    Viewer(viewer): Viewer,
    Lang(t): Lang,
    Path(key): Path<String>,
) -> Response {
    item_page(&state, &viewer, t, ItemKind::Agent, key).await
}

/// A console user in the users table.
struct UserRow {
    id: String,
    username: String,
    /// `admin`, `supervisor`.
    role: String,
    created: String,
    is_self: bool,
}

fn role_label(t: &'static Texts, role: &str) -> &'static str {
    match Role::parse(role) {
        Some(Role::Admin) => t.role_admin,
        Some(Role::Supervisor) => t.role_supervisor,
        Some(Role::Superadmin) => t.role_superadmin,
        None => "",
    }
}

/// The roles the console gives: (value, label).
fn roles(t: &'static Texts) -> Vec<(&'static str, &'static str)> {
    vec![("admin", t.role_admin), ("supervisor", t.role_supervisor)]
}

#[derive(Template)]
#[template(path = "admin/users.html")]
struct UsersPage {
    c: Chrome,
    t: &'static Texts,
    can_edit: bool,
    tenant: String,
    /// Super-admins pick the tenant: (id, name).
    tenants: Vec<(String, String)>,
    roles: Vec<(&'static str, &'static str)>,
    rows: Vec<UserRow>,
    password_label: String,
    username_max: usize,
    password_min: usize,
}

impl UsersPage {
    fn role_label(&self, role: &str) -> &'static str {
        role_label(self.t, role)
    }
}

async fn users_page(
    State(state): State<AdminState>,
    Viewer(viewer): Viewer,
    Lang(t): Lang,
    axum::extract::Query(query): axum::extract::Query<super::accounts::TenantQuery>,
) -> Response {
    let (tenant, users) =
        match super::accounts::tenant_users(&state, &viewer, query.tenant.as_deref()).await {
            Ok(found) => found,
            Err(e) if e.status.is_client_error() => return StatusCode::NOT_FOUND.into_response(),
            Err(e) => return e.into_response(),
        };
    let tenants = if viewer.role == Role::Superadmin {
        match super::accounts::tenants(&state, &viewer).await {
            Ok(tenants) => tenants,
            Err(e) => return e.into_response(),
        }
    } else {
        Vec::new()
    };
    let rows = (users.iter())
        .map(|u| UserRow {
            id: u.id.clone(),
            username: u.username.clone(),
            role: u.role.clone(),
            created: utc(u.created_at),
            is_self: viewer.user_id.as_deref() == Some(u.id.as_str()),
        })
        .collect();
    page(
        StatusCode::OK,
        &UsersPage {
            c: Chrome::of(&viewer, "users"),
            t,
            can_edit: can_edit(&viewer),
            tenant,
            tenants,
            roles: roles(t),
            rows,
            password_label: t.with_limit(t.password_rule_label, "min", auth::MIN_PASSWORD_CHARS),
            username_max: auth::MAX_USERNAME_CHARS,
            password_min: auth::MIN_PASSWORD_CHARS,
        },
    )
}

/// An API token in the tokens table.
struct TokenRow {
    id: String,
    name: String,
    role: &'static str,
    created: String,
    created_by: String,
}

#[derive(Template)]
#[template(path = "admin/tokens.html")]
struct TokensPage {
    c: Chrome,
    t: &'static Texts,
    can_edit: bool,
    tenant: String,
    roles: Vec<(&'static str, &'static str)>,
    rows: Vec<TokenRow>,
    name_max: usize,
}

async fn tokens_page(
    State(state): State<AdminState>,
    Viewer(viewer): Viewer,
    Lang(t): Lang,
) -> Response {
    let rows = if can_edit(&viewer) {
        match super::accounts::tenant_tokens(&state, &viewer).await {
            Ok(tokens) => (tokens.iter())
                .map(|r| TokenRow {
                    id: r.id.clone(),
                    name: r.name.clone(),
                    role: role_label(t, &r.role),
                    created: utc(r.created_at),
                    created_by: r.created_by.clone(),
                })
                .collect(),
            Err(e) => return e.into_response(),
        }
    } else {
        Vec::new()
    };
    page(
        StatusCode::OK,
        &TokensPage {
            c: Chrome::of(&viewer, "tokens"),
            t,
            can_edit: can_edit(&viewer),
            tenant: viewer.tenant.clone(),
            roles: roles(t),
            rows,
            name_max: super::accounts::MAX_TOKEN_NAME_CHARS,
        },
    )
}

#[derive(Template)]
#[template(path = "admin/tenants.html")]
struct TenantsPage {
    c: Chrome,
    t: &'static Texts,
    /// (id, name)
    rows: Vec<(String, String)>,
    id_max: usize,
    name_max: usize,
}

/// Super-admins only; anyone else is told it is not theirs (403).
async fn tenants_page(
    State(state): State<AdminState>,
    Viewer(viewer): Viewer,
    Lang(t): Lang,
) -> Response {
    let rows = match super::accounts::tenants(&state, &viewer).await {
        Ok(rows) => rows,
        Err(e) => return e.status.into_response(),
    };
    page(
        StatusCode::OK,
        &TenantsPage {
            c: Chrome::of(&viewer, "tenants"),
            t,
            rows,
            id_max: super::accounts::MAX_TENANT_ID_CHARS,
            name_max: super::accounts::MAX_TENANT_NAME_CHARS,
        },
    )
}

#[derive(Template)]
#[template(path = "admin/password.html")]
struct PasswordPage {
    c: Chrome,
    t: &'static Texts,
    /// The outcome: (changed, what to say).
    outcome: Option<(bool, String)>,
    current_error: Option<String>,
    new_error: Option<String>,
    confirm_error: Option<String>,
    new_label: String,
    min: usize,
}

impl PasswordPage {
    fn new(viewer: &Principal, t: &'static Texts) -> PasswordPage {
        PasswordPage {
            c: Chrome::of(viewer, "password"),
            t,
            outcome: None,
            current_error: None,
            new_error: None,
            confirm_error: None,
            new_label: t.with_limit(t.new_password_label, "min", auth::MIN_PASSWORD_CHARS),
            min: auth::MIN_PASSWORD_CHARS,
        }
    }
}

async fn password_page(Viewer(viewer): Viewer, Lang(t): Lang) -> Response {
    page(StatusCode::OK, &PasswordPage::new(&viewer, t))
}

#[derive(Deserialize)]
struct PasswordForm {
    #[serde(rename = "_csrf")]
    csrf: String,
    current_password: String,
    new_password: String,
    confirm_password: String,
}

async fn password_form(
    State(state): State<AdminState>,
    session: Session,
    client: crate::api::client::ClientAddr,
    Viewer(viewer): Viewer,
    Lang(t): Lang,
    headers: axum::http::HeaderMap,
    Form(form): Form<PasswordForm>,
) -> Response {
    if !auth::same_origin(&headers, &state) || viewer.csrf.as_deref() != Some(form.csrf.as_str()) {
        return StatusCode::FORBIDDEN.into_response();
    }
    let mut shown = PasswordPage::new(&viewer, t);
    let change = super::accounts::PasswordChange {
        current_password: form.current_password,
        new_password: form.new_password,
        confirm_password: Some(form.confirm_password),
    };
    let outcome =
        super::accounts::change_password(&state, &session, &viewer, client, &change).await;
    let status = match outcome {
        Ok(()) => {
            shown.outcome = Some((true, t.password_changed.to_owned()));
            StatusCode::OK
        }
        Err(super::accounts::Refused::Fields(fields)) => {
            for error in &fields {
                let text = Some(t.field_error(error));
                match error.key.as_str() {
                    "current_password" => shown.current_error = text,
                    "new_password" => shown.new_error = text,
                    _ => shown.confirm_error = text,
                }
            }
            shown.outcome = Some((false, t.password_not_changed.to_owned()));
            StatusCode::UNPROCESSABLE_ENTITY
        }
        Err(super::accounts::Refused::Other(e)) => {
            shown.outcome = Some((false, said(t, &e)));
            e.status
        }
    };
    page(status, &shown)
}
