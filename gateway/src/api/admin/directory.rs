//! `/api/v1/admin/{channels,queues,agents}`: the directory, item by item.
//!
//! Every write goes through `Engine::change_directory`, so the console,
//! this API and `frontdesk.toml` share one validation; the answer to a
//! refused change lists each field at fault (`422 invalid`, `fields`), a
//! provisioned item answers `409 read_only`, and another tenant's item is
//! `404` like one that does not exist. `POST` on a collection only
//! creates (`409 key_in_use`); a `PUT` with the `If-Match` of its read only
//! replaces what was read (`412 changed_meanwhile`), so two admins never
//! silently overwrite each other.

use axum::extract::{Path, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use pbx_adapter::queue::{AgentConfig, QueueConfig};
use serde::Serialize;
use serde_json::Value;

use super::auth::Principal;
use super::AdminState;
use crate::api::error::ApiError;
use crate::config::{embed_snippet, ChannelConfig, FieldError};
use crate::engine::{Directory, DirectoryError, DirectoryOp, Item, ItemMeta};
use crate::store::{ItemKind, ItemSource};

pub fn router() -> Router<AdminState> {
    Router::new()
        .route(
            "/api/v1/admin/channels",
            get(list::<ChannelConfig>).post(create::<ChannelConfig>),
        )
        .route(
            "/api/v1/admin/channels/{key}",
            get(read::<ChannelConfig>)
                .put(put::<ChannelConfig>)
                .delete(remove::<ChannelConfig>),
        )
        .route("/api/v1/admin/channels/{key}/embed", get(embed))
        .route(
            "/api/v1/admin/queues",
            get(list::<QueueConfig>).post(create::<QueueConfig>),
        )
        .route(
            "/api/v1/admin/queues/{key}",
            get(read::<QueueConfig>)
                .put(put::<QueueConfig>)
                .delete(remove::<QueueConfig>),
        )
        .route(
            "/api/v1/admin/agents",
            get(list::<AgentConfig>).post(create::<AgentConfig>),
        )
        .route(
            "/api/v1/admin/agents/{key}",
            get(read::<AgentConfig>)
                .put(put::<AgentConfig>)
                .delete(remove::<AgentConfig>),
        )
        .route("/api/v1/admin/audit", get(audit))
        .route(
            "/api/v1/admin/schedule/check",
            axum::routing::post(check_schedule),
        )
}

/// What the handlers need to know of each kind of item.
trait Kind: Serialize + serde::de::DeserializeOwned + Send + Sync + 'static {
    const KIND: ItemKind;
    fn key(&self) -> &str;
    fn all(directory: &Directory) -> &[Self];
    fn into_item(self) -> Item;
}

impl Kind for ChannelConfig {
    const KIND: ItemKind = ItemKind::Channel;
    fn key(&self) -> &str {
        self.key.as_str()
    }
    fn all(directory: &Directory) -> &[Self] {
        &directory.spec().channels
    }
    fn into_item(self) -> Item {
        Item::Channel(Box::new(self))
    }
}

impl Kind for QueueConfig {
    const KIND: ItemKind = ItemKind::Queue;
    fn key(&self) -> &str {
        self.extension.as_str()
    }
    fn all(directory: &Directory) -> &[Self] {
        &directory.spec().queues
    }
    fn into_item(self) -> Item {
        Item::Queue(self)
    }
}

impl Kind for AgentConfig {
    const KIND: ItemKind = ItemKind::Agent;
    fn key(&self) -> &str {
        self.extension.as_str()
    }
    fn all(directory: &Directory) -> &[Self] {
        &directory.spec().agents
    }
    fn into_item(self) -> Item {
        Item::Agent(self)
    }
}

/// An item as the console shows it.
#[derive(Serialize)]
pub struct Entry<T> {
    #[serde(flatten)]
    pub item: T,
    /// `file` (read-only: managed in frontdesk.toml), `pbx` (read-only:
    /// kept in line with the PBX by `frontdesk pbx sync`) or `console`.
    pub source: &'static str,
    pub read_only: bool,
    pub updated_at: i64,
    pub updated_by: Option<String>,
}

fn entry<T>(item: T, meta: &ItemMeta) -> Entry<T> {
    Entry {
        item,
        source: meta.source.as_str(),
        read_only: meta.source != ItemSource::Console,
        updated_at: meta.updated_at,
        updated_by: meta.updated_by.clone(),
    }
}

/// The items of `T` the caller's tenant owns, with their meta.
fn visible<'a, T: Kind>(
    directory: &'a Directory,
    principal: &'a Principal,
) -> impl Iterator<Item = (&'a T, &'a ItemMeta)> + 'a {
    T::all(directory).iter().filter_map(move |item| {
        let meta = directory.meta(T::KIND, item.key())?;
        (meta.tenant == principal.tenant).then_some((item, meta))
    })
}

fn not_found(kind: ItemKind, key: &str) -> ApiError {
    ApiError::new(
        StatusCode::NOT_FOUND,
        "not_found",
        format!("There is no {} {key}.", kind.as_str()),
    )
}

/// The API's answer to a refused change.
pub fn directory_error(e: DirectoryError) -> ApiError {
    match e {
        DirectoryError::Invalid(fields) => invalid(fields),
        DirectoryError::ReadOnly { kind, key, owner } => ApiError::new(
            StatusCode::CONFLICT,
            "read_only",
            format!("{kind} {key} is managed in {owner}; change it there."),
        ),
        DirectoryError::NotFound { kind, key } => ApiError::new(
            StatusCode::NOT_FOUND,
            "not_found",
            format!("There is no {kind} {key}."),
        ),
        DirectoryError::KeyInUse { kind, key } => {
            let field = if kind == "channel" { "key" } else { "extension" };
            let message = format!("{key} is already in use: choose another one.");
            ApiError::new(StatusCode::CONFLICT, "key_in_use", message.clone()).with(
                "fields",
                serde_json::json!([{ "key": field, "message": message }]),
            )
        }
        DirectoryError::ChangedMeanwhile { kind, key } => ApiError::new(
            StatusCode::PRECONDITION_FAILED,
            "changed_meanwhile",
            format!("Someone else changed {kind} {key} since you opened it: reload it, then change it again."),
        ),
        DirectoryError::Store(e) => crate::engine::EngineError::Store(e).into(),
    }
}

pub fn invalid(fields: Vec<FieldError>) -> ApiError {
    let message = fields
        .first()
        .map_or_else(|| "Invalid.".to_owned(), ToString::to_string);
    ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, "invalid", message).with(
        "fields",
        serde_json::to_value(fields).unwrap_or(Value::Null),
    )
}

/// Reads a JSON body as `T`, with serde's message as a field error. What
/// a GET adds to an item (its source, who changed it) is ignored, so a
/// client can send back what it read.
fn parse<T: serde::de::DeserializeOwned>(mut body: Value) -> Result<T, ApiError> {
    if let Some(object) = body.as_object_mut() {
        for key in ["source", "read_only", "updated_at", "updated_by"] {
            object.remove(key);
        }
    }
    serde_json::from_value(body).map_err(|e| invalid(vec![FieldError::new("body", e.to_string())]))
}

fn key_mismatch(path: &str, body: &str) -> Result<(), ApiError> {
    if path == body {
        return Ok(());
    }
    Err(invalid(vec![FieldError::new(
        "key",
        format!("the body's key {body:?} differs from the URL's {path:?}"),
    )]))
}

async fn change(
    state: &AdminState,
    principal: &Principal,
    op: DirectoryOp,
) -> Result<std::sync::Arc<Directory>, ApiError> {
    principal.require_admin()?;
    state
        .engine
        .change_directory(&principal.actor(), &[op])
        .await
        .map_err(directory_error)
}

async fn list<T: Kind>(State(state): State<AdminState>, principal: Principal) -> Response {
    let directory = state.engine.directory();
    let entries: Vec<_> = visible::<T>(&directory, &principal)
        .map(|(item, meta)| entry(item, meta))
        .collect();
    Json(entries).into_response()
}

async fn read<T: Kind>(
    State(state): State<AdminState>,
    principal: Principal,
    Path(key): Path<String>,
) -> Result<Response, ApiError> {
    let directory = state.engine.directory();
    let (item, meta) = visible::<T>(&directory, &principal)
        .find(|(item, _)| item.key() == key)
        .ok_or_else(|| not_found(T::KIND, &key))?;
    let mut response = Json(entry(item, meta)).into_response();
    set_etag::<T>(&mut response, &directory, &key);
    Ok(response)
}

/// Creates an item; `409 key_in_use` if its key exists.
async fn create<T: Kind>(
    State(state): State<AdminState>,
    principal: Principal,
    Json(body): Json<Value>,
) -> Result<Response, ApiError> {
    let item: T = parse(body)?;
    let key = item.key().to_owned();
    let directory = change(&state, &principal, DirectoryOp::Create(item.into_item())).await?;
    let location = format!("/api/v1/admin/{}s/{key}", T::KIND.as_str());
    let mut response = (StatusCode::CREATED, [(header::LOCATION, location)]).into_response();
    set_etag::<T>(&mut response, &directory, &key);
    Ok(response)
}

/// Creates or replaces an item. `If-Match: "<revision>"` (the `ETag` of a
/// read) replaces only the item as it was read (`412 changed_meanwhile`
/// otherwise); `If-None-Match: *` only creates (`409 key_in_use`).
async fn put<T: Kind>(
    State(state): State<AdminState>,
    principal: Principal,
    Path(key): Path<String>,
    headers: HeaderMap,
    Json(body): Json<Value>,
) -> Result<Response, ApiError> {
    let item: T = parse(body)?;
    key_mismatch(&key, item.key())?;
    let item = item.into_item();
    let op = if let Some(tag) = headers.get(header::IF_MATCH) {
        let revision = tag
            .to_str()
            .ok()
            .and_then(|t| {
                t.trim()
                    .trim_start_matches("W/")
                    .trim_matches('"')
                    .parse()
                    .ok()
            })
            .ok_or_else(|| {
                ApiError::new(
                    StatusCode::BAD_REQUEST,
                    "bad_request",
                    "If-Match must be an ETag this API gave: a quoted revision.",
                )
            })?;
        DirectoryOp::Replace { item, revision }
    } else if headers
        .get(header::IF_NONE_MATCH)
        .is_some_and(|t| t.as_bytes() == b"*")
    {
        DirectoryOp::Create(item)
    } else {
        DirectoryOp::Put(item)
    };
    let directory = change(&state, &principal, op).await?;
    let mut response = StatusCode::NO_CONTENT.into_response();
    set_etag::<T>(&mut response, &directory, &key);
    Ok(response)
}

/// The item's revision as an `ETag`, for the next `If-Match`.
fn set_etag<T: Kind>(response: &mut Response, directory: &Directory, key: &str) {
    if let Some(meta) = directory.meta(T::KIND, key) {
        if let Ok(value) = HeaderValue::from_str(&format!("\"{}\"", meta.updated_at)) {
            response.headers_mut().insert(header::ETAG, value);
        }
    }
}

async fn remove<T: Kind>(
    State(state): State<AdminState>,
    principal: Principal,
    Path(key): Path<String>,
) -> Result<StatusCode, ApiError> {
    change(&state, &principal, DirectoryOp::Delete(T::KIND, key)).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// The `<script>` tag to paste before `</head>`.
async fn embed(
    State(state): State<AdminState>,
    principal: Principal,
    Path(key): Path<String>,
) -> Result<Response, ApiError> {
    let directory = state.engine.directory();
    let mine = directory
        .tenant_of_channel(&key)
        .is_some_and(|t| t == principal.tenant);
    if !mine {
        return Err(not_found(ItemKind::Channel, &key));
    }
    let html = embed_snippet(&state.public_url, &key);
    Ok(Json(serde_json::json!({ "html": html })).into_response())
}

/// The tenant's audit log, newest first.
async fn audit(
    State(state): State<AdminState>,
    principal: Principal,
) -> Result<Response, ApiError> {
    let rows = state
        .engine
        .store()
        .audit_log(Some(&principal.tenant), 500)
        .await
        .map_err(|e| ApiError::from(crate::engine::EngineError::Store(e)))?;
    Ok(Json(rows).into_response())
}

/// Checks business hours as typed in the console, with the config file's
/// rules and messages: open or closed now (or at `at`), why, and the next
/// opening (what `frontdesk schedule check` prints).
async fn check_schedule(
    _principal: Principal,
    Json(body): Json<Value>,
) -> Result<Response, ApiError> {
    let at = match body.get("at").and_then(Value::as_str) {
        Some(raw) => chrono::DateTime::parse_from_rfc3339(raw)
            .map(|t| t.with_timezone(&chrono::Utc))
            .map_err(|e| invalid(vec![FieldError::new("at", e.to_string())]))?,
        None => chrono::Utc::now(),
    };
    let mut config = body.get("schedule").cloned().unwrap_or(Value::Null);
    if config.is_null() {
        config = serde_json::json!({});
    }
    let config: pbx_adapter::schedule::ScheduleConfig = serde_json::from_value(config)
        .map_err(|e| invalid(vec![FieldError::new("schedule", e.to_string())]))?;
    if config.names_a_file() {
        return Err(invalid(vec![FieldError::new(
            "schedule.holidays_ics",
            "an iCalendar file on the server can only be named in frontdesk.toml",
        )]));
    }
    let schedule = pbx_adapter::schedule::Schedule::from_config(&config)
        .map_err(|e| invalid(vec![crate::config::schedule_error("schedule", &e)]))?;
    let decision = schedule.explain(at);
    let next_open = (!decision.open)
        .then(|| schedule.next_open(at))
        .flatten()
        .map(|t| t.with_timezone(&schedule.timezone()).to_rfc3339());
    Ok(Json(serde_json::json!({
        "open": decision.open,
        "explanation": decision.to_string(),
        "local_time": decision.local_time.to_rfc3339(),
        "timezone": decision.local_time.timezone().name(),
        "reason": reason_json(&decision.reason),
        "destination": decision.destination,
        "next_open": next_open,
    }))
    .into_response())
}

/// Why open or closed, for a client that words it itself.
fn reason_json(reason: &pbx_adapter::schedule::Reason) -> Value {
    use pbx_adapter::schedule::{Matched, Reason};
    match reason {
        Reason::AlwaysOpen => serde_json::json!({ "kind": "always_open" }),
        Reason::Rule { index, spec } => {
            serde_json::json!({ "kind": "rule", "rule": index + 1, "spec": spec })
        }
        Reason::Holiday { label } => serde_json::json!({ "kind": "holiday", "holiday": label }),
        Reason::OutsideRules { rules } => {
            serde_json::json!({ "kind": "outside_rules", "rules": rules })
        }
        Reason::Route { index, matched } => match matched {
            Matched::Condition { spec } => {
                serde_json::json!({ "kind": "route", "route": index + 1, "spec": spec })
            }
            Matched::Holiday { label } => {
                serde_json::json!({ "kind": "route", "route": index + 1, "holiday": label })
            }
        },
        Reason::Default { routes } => serde_json::json!({ "kind": "default", "routes": routes }),
    }
}
