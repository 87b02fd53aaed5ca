//! Past conversations for the console: search, read, export (JSON, CSV),
//! download their files, the follow-up list (out-of-hours attempts and
//! missed chats), and visitor data by e-mail (GDPR: find, export, erase).
//!
//! Everything is bounded to the caller's tenant's channels: another
//! tenant's conversation is `404`, like one that does not exist. Erasing
//! deletes file bytes first, then rows (see `files::retention::erase`), and
//! writes an audit entry that keeps a hash of the address, not the address.

use axum::extract::{FromRequestParts, Path, Query, State};
use axum::http::{header, request::Parts, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use chrono::{DateTime, NaiveDate, Utc};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::auth::Principal;
use super::AdminState;
use crate::api::error::ApiError;
use crate::config::FieldError;
use crate::domain::{ConversationId, ConversationState, FileId, Party};
use crate::engine::{EngineError, EventBody, EventView};
use crate::store::{AuditEntry, ConversationFilter, ConversationRow, ItemKind, StoreError};

/// Most conversations one export or erase takes.
const MAX_EXPORT: i64 = 1000;

pub fn router() -> Router<AdminState> {
    Router::new()
        .route("/api/v1/admin/conversations", get(search))
        .route("/api/v1/admin/conversations/export", get(export))
        .route("/api/v1/admin/conversations/{id}", get(transcript))
        .route("/api/v1/admin/files/{id}", get(download))
        .route("/api/v1/admin/follow-up", get(follow_up))
        .route("/api/v1/admin/visitors", get(visitor_data))
        .route("/api/v1/admin/visitors/erase", post(erase_visitor))
}

fn store_failed(e: StoreError) -> ApiError {
    EngineError::Store(e).into()
}

/// The caller's tenant's channel keys.
pub(super) fn tenant_channels(state: &AdminState, principal: &Principal) -> Vec<String> {
    let directory = state.engine.directory();
    (directory.spec().channels.iter())
        .map(|c| c.key.to_string())
        .filter(|key| {
            directory
                .meta(ItemKind::Channel, key)
                .is_some_and(|m| m.tenant == principal.tenant)
        })
        .collect()
}

/// The search form / query string.
#[derive(Debug, Default)]
pub struct SearchQuery {
    /// Part of the visitor's name or e-mail.
    pub q: Option<String>,
    /// `YYYY-MM-DD` (UTC), inclusive.
    pub from: Option<String>,
    pub to: Option<String>,
    pub channel: Option<String>,
    pub queue: Option<String>,
    pub agent: Option<String>,
    pub state: Option<String>,
    /// Comma-separated conversation ids (export of a selection); the
    /// query string may also repeat `ids`, as the console's ticked boxes do.
    pub ids: Option<String>,
    pub limit: Option<i64>,
    pub offset: Option<i64>,
    /// Exports: `json` (default) or `csv`.
    pub format: Option<String>,
}

/// Read by hand rather than with `Query`: a form's ticked boxes repeat
/// `ids` (`ids=a&ids=b`), which a derived query struct refuses.
impl<S: Send + Sync> FromRequestParts<S> for SearchQuery {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, ApiError> {
        let raw = parts.uri.query().unwrap_or_default().as_bytes();
        let mut query = SearchQuery::default();
        let mut ids = Vec::new();
        for (key, value) in url::form_urlencoded::parse(raw) {
            let value = value.into_owned();
            match &*key {
                "q" => query.q = Some(value),
                "from" => query.from = Some(value),
                "to" => query.to = Some(value),
                "channel" => query.channel = Some(value),
                "queue" => query.queue = Some(value),
                "agent" => query.agent = Some(value),
                "state" => query.state = Some(value),
                "format" => query.format = Some(value),
                "ids" => ids.push(value),
                "limit" => query.limit = Some(whole_number("limit", &value)?),
                "offset" => query.offset = Some(whole_number("offset", &value)?),
                _ => {}
            }
        }
        query.ids = (!ids.is_empty()).then(|| ids.join(","));
        Ok(query)
    }
}

fn whole_number(field: &str, raw: &str) -> Result<i64, ApiError> {
    (raw.trim().parse())
        .map_err(|_| super::directory::invalid(vec![FieldError::new(field, "a whole number")]))
}

fn day(raw: &Option<String>, field: &str, next: bool) -> Result<Option<i64>, ApiError> {
    let Some(raw) = raw.as_deref().filter(|r| !r.trim().is_empty()) else {
        return Ok(None);
    };
    let date = NaiveDate::parse_from_str(raw.trim(), "%Y-%m-%d").map_err(|_| {
        super::directory::invalid(vec![FieldError::new(field, "a date as YYYY-MM-DD")])
    })?;
    let date = if next {
        date.succ_opt().unwrap_or(date)
    } else {
        date
    };
    Ok(date
        .and_hms_opt(0, 0, 0)
        .map(|t| t.and_utc().timestamp_millis()))
}

fn blank_to_none(value: &Option<String>) -> Option<String> {
    value
        .as_deref()
        .map(str::trim)
        .filter(|v| !v.is_empty())
        .map(str::to_owned)
}

impl SearchQuery {
    pub(super) fn filter(&self, channels: Vec<String>) -> Result<ConversationFilter, ApiError> {
        let states = match blank_to_none(&self.state) {
            None => Vec::new(),
            Some(raw) => vec![raw.parse::<ConversationState>().map_err(|_| {
                super::directory::invalid(vec![FieldError::new(
                    "state",
                    "not a conversation state",
                )])
            })?],
        };
        Ok(ConversationFilter {
            channels,
            text: blank_to_none(&self.q),
            from_ms: day(&self.from, "from", false)?,
            to_ms: day(&self.to, "to", true)?,
            channel: blank_to_none(&self.channel),
            queue: blank_to_none(&self.queue),
            agent: blank_to_none(&self.agent),
            states,
            ids: (self.ids.as_deref().unwrap_or_default().split(','))
                .map(str::trim)
                .filter(|id| !id.is_empty())
                .map(str::to_owned)
                .collect(),
            limit: self.limit.unwrap_or(100),
            offset: self.offset.unwrap_or(0),
        })
    }
}

/// A conversation in a list.
#[derive(Debug, Serialize)]
pub struct Summary {
    pub id: String,
    pub channel_key: String,
    pub state: &'static str,
    pub visitor_name: String,
    pub visitor_email: String,
    pub page_url: Option<String>,
    pub language: String,
    pub queue: Option<String>,
    pub agent: Option<String>,
    pub agent_name: Option<String>,
    pub created_at: i64,
    pub queued_at: Option<i64>,
    pub ended_at: Option<i64>,
}

impl From<&ConversationRow> for Summary {
    fn from(row: &ConversationRow) -> Summary {
        Summary {
            id: row.id.to_string(),
            channel_key: row.channel_key.clone(),
            state: row.state.as_str(),
            visitor_name: row.visitor_name.clone(),
            visitor_email: row.visitor_email.clone(),
            page_url: row.page_url.clone(),
            language: row.language.clone(),
            queue: row.queue_extension.clone(),
            agent: row.agent_extension.clone(),
            agent_name: row.agent_name.clone(),
            created_at: row.created_at,
            queued_at: row.queued_at,
            ended_at: row.ended_at,
        }
    }
}

/// A whole conversation: its summary, every event, its files.
#[derive(Debug, Serialize)]
pub struct Transcript {
    #[serde(flatten)]
    pub summary: Summary,
    pub events: Vec<TimedEvent>,
}

#[derive(Debug, Serialize)]
pub struct TimedEvent {
    pub at: i64,
    #[serde(flatten)]
    pub event: EventView,
}

pub(super) async fn search_rows(
    state: &AdminState,
    principal: &Principal,
    query: &SearchQuery,
) -> Result<Vec<ConversationRow>, ApiError> {
    let filter = query.filter(tenant_channels(state, principal))?;
    (state.engine.store().search_conversations(&filter).await).map_err(store_failed)
}

async fn search(
    State(state): State<AdminState>,
    principal: Principal,
    query: SearchQuery,
) -> Result<Response, ApiError> {
    let rows = search_rows(&state, &principal, &query).await?;
    let list: Vec<Summary> = rows.iter().map(Summary::from).collect();
    Ok(Json(list).into_response())
}

fn unknown() -> ApiError {
    ApiError::new(
        StatusCode::NOT_FOUND,
        "not_found",
        "There is no such conversation.",
    )
}

/// The tenant's conversation `id`, or 404.
pub(super) async fn own_row(
    state: &AdminState,
    principal: &Principal,
    id: &str,
) -> Result<ConversationRow, ApiError> {
    let id: ConversationId = id.parse().map_err(|_| unknown())?;
    let row = (state.engine.store().conversation(id).await)
        .map_err(store_failed)?
        .ok_or_else(unknown)?;
    if !tenant_channels(state, principal).contains(&row.channel_key) {
        return Err(unknown());
    }
    Ok(row)
}

pub(super) async fn transcript_of(
    state: &AdminState,
    row: &ConversationRow,
) -> Result<Transcript, ApiError> {
    let stored =
        (state.engine.store().events_after(row.id, 0, i64::MAX).await).map_err(store_failed)?;
    let events = stored
        .iter()
        .map(|e| {
            Ok(TimedEvent {
                at: e.created_at,
                event: EventView::try_from(e)?,
            })
        })
        .collect::<Result<_, StoreError>>()
        .map_err(store_failed)?;
    Ok(Transcript {
        summary: Summary::from(row),
        events,
    })
}

async fn transcript(
    State(state): State<AdminState>,
    principal: Principal,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    let row = own_row(&state, &principal, &id).await?;
    Ok(Json(transcript_of(&state, &row).await?).into_response())
}

fn attachment(body: Vec<u8>, media_type: &'static str, name: &str) -> Response {
    let disposition = format!("attachment; filename=\"{name}\"");
    (
        [
            (header::CONTENT_TYPE, HeaderValue::from_static(media_type)),
            (
                header::CONTENT_DISPOSITION,
                HeaderValue::from_str(&disposition)
                    .unwrap_or(HeaderValue::from_static("attachment")),
            ),
            (header::CACHE_CONTROL, HeaderValue::from_static("no-store")),
        ],
        body,
    )
        .into_response()
}

fn rfc3339(ms: i64) -> String {
    DateTime::<Utc>::from_timestamp_millis(ms)
        .map(|t| t.to_rfc3339())
        .unwrap_or_default()
}

/// One CSV line per message, each with its conversation's columns.
fn csv_of(transcripts: &[Transcript]) -> Result<Vec<u8>, ApiError> {
    let mut out = csv::Writer::from_writer(Vec::new());
    let fail = |e: csv::Error| {
        tracing::error!(error = %e, "cannot write a CSV export");
        ApiError::internal()
    };
    out.write_record([
        "conversation_id",
        "channel",
        "state",
        "visitor_name",
        "visitor_email",
        "queue",
        "agent",
        "started_at",
        "message_at",
        "sender",
        "author",
        "text",
        "file",
    ])
    .map_err(fail)?;
    for t in transcripts {
        let s = &t.summary;
        for event in &t.events {
            let EventBody::Message { message } = &event.event.body else {
                continue;
            };
            let sender = serde_json::to_value(message.sender)
                .ok()
                .and_then(|v| v.as_str().map(str::to_owned))
                .unwrap_or_default();
            let file = message.attachment.as_ref().map(|a| a.name.clone());
            out.write_record([
                s.id.as_str(),
                &s.channel_key,
                s.state,
                &s.visitor_name,
                &s.visitor_email,
                s.queue.as_deref().unwrap_or_default(),
                s.agent.as_deref().unwrap_or_default(),
                &rfc3339(s.created_at),
                &message.created_at.to_rfc3339(),
                &sender,
                &message.author,
                &message.body,
                file.as_deref().unwrap_or_default(),
            ])
            .map_err(fail)?;
        }
    }
    out.into_inner().map_err(|e| fail(e.into_error().into()))
}

async fn export(
    State(state): State<AdminState>,
    principal: Principal,
    mut query: SearchQuery,
) -> Result<Response, ApiError> {
    query.limit = Some(query.limit.unwrap_or(MAX_EXPORT).min(MAX_EXPORT));
    let rows = search_rows(&state, &principal, &query).await?;
    let mut transcripts = Vec::with_capacity(rows.len());
    for row in &rows {
        transcripts.push(transcript_of(&state, row).await?);
    }
    match query.format.as_deref().unwrap_or("json") {
        "csv" => Ok(attachment(
            csv_of(&transcripts)?,
            "text/csv; charset=utf-8",
            "transcripts.csv",
        )),
        "json" => {
            let body = serde_json::to_vec_pretty(&transcripts).map_err(|_| ApiError::internal())?;
            Ok(attachment(body, "application/json", "transcripts.json"))
        }
        _ => Err(super::directory::invalid(vec![FieldError::new(
            "format",
            "json or csv",
        )])),
    }
}

async fn download(
    State(state): State<AdminState>,
    principal: Principal,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    let missing = || {
        ApiError::new(
            StatusCode::NOT_FOUND,
            "unknown_file",
            "There is no such file.",
        )
    };
    let file_id: FileId = id.parse().map_err(|_| missing())?;
    let row = (state.engine.store().file(&file_id).await)
        .map_err(store_failed)?
        .ok_or_else(missing)?;
    own_row(&state, &principal, &row.conversation_id.to_string())
        .await
        .map_err(|_| missing())?;
    crate::api::files::serve(&state.files, &row).await
}

/// Missed chats (ended before an agent took them) and out-of-hours
/// attempts, newest first: who to call back.
pub(super) async fn follow_up_rows(
    state: &AdminState,
    principal: &Principal,
) -> Result<(Vec<ConversationRow>, Vec<ConversationRow>), ApiError> {
    let store = state.engine.store();
    let mut filter = ConversationFilter {
        channels: tenant_channels(state, principal),
        states: vec![ConversationState::ClosedOutOfHours],
        limit: 200,
        ..Default::default()
    };
    let out_of_hours = store
        .search_conversations(&filter)
        .await
        .map_err(store_failed)?;
    filter.states = vec![ConversationState::Ended];
    let mut missed = store
        .search_conversations(&filter)
        .await
        .map_err(store_failed)?;
    missed.retain(|row| row.agent_extension.is_none());
    Ok((missed, out_of_hours))
}

async fn follow_up(
    State(state): State<AdminState>,
    principal: Principal,
) -> Result<Response, ApiError> {
    let (missed, out_of_hours) = follow_up_rows(&state, &principal).await?;
    let list = |rows: &[ConversationRow]| rows.iter().map(Summary::from).collect::<Vec<_>>();
    Ok(
        Json(serde_json::json!({ "out_of_hours": list(&out_of_hours), "missed": list(&missed) }))
            .into_response(),
    )
}

#[derive(Deserialize)]
pub struct EmailQuery {
    pub email: String,
}

fn email_hash(email: &str) -> String {
    hex::encode(Sha256::digest(email.trim().to_lowercase().as_bytes()))
}

/// Everything held about an e-mail address: each conversation with its
/// events (with `?download=1`, as a JSON file).
async fn visitor_data(
    State(state): State<AdminState>,
    principal: Principal,
    Query(query): Query<EmailQuery>,
) -> Result<Response, ApiError> {
    let rows = (state.engine.store())
        .conversations_of_email(&tenant_channels(&state, &principal), &query.email)
        .await
        .map_err(store_failed)?;
    let mut transcripts = Vec::with_capacity(rows.len());
    for row in &rows {
        transcripts.push(transcript_of(&state, row).await?);
    }
    let body = serde_json::json!({ "email": query.email.trim(), "conversations": transcripts });
    Ok(Json(body).into_response())
}

/// Erases everything held about an e-mail address in the tenant.
async fn erase_visitor(
    State(state): State<AdminState>,
    principal: Principal,
    Json(query): Json<EmailQuery>,
) -> Result<Response, ApiError> {
    principal.require_admin()?;
    let store = state.engine.store();
    let rows = (store.conversations_of_email(&tenant_channels(&state, &principal), &query.email))
        .await
        .map_err(store_failed)?;
    let (mut conversations, mut files, mut left) = (0, 0, 0);
    for row in &rows {
        // A chat still going is ended first, so its agent is told and no
        // offer or timer outlives the rows.
        if !row.state.is_final() {
            if let Err(e) = state.engine.close(row.id, Party::System).await {
                tracing::warn!(conversation = %row.id, error = %e, "cannot end a chat before erasing it");
                left += 1;
                continue;
            }
        }
        match crate::files::retention::erase(&state.files, store, row.id).await {
            Ok(Some(n)) => {
                conversations += 1;
                files += n;
            }
            Ok(None) => left += 1,
            Err(e) => return Err(store_failed(e)),
        }
    }
    store
        .audit(&AuditEntry {
            tenant: principal.tenant.clone(),
            actor: principal.name.clone(),
            action: "visitor.erase".into(),
            target: format!("visitor sha256:{}", &email_hash(&query.email)[..16]),
            detail: serde_json::json!({ "conversations": conversations, "files": files, "left": left }),
        })
        .await
        .map_err(store_failed)?;
    tracing::info!(conversations, files, left, "visitor data erased");
    let body = serde_json::json!({ "conversations": conversations, "files": files, "left": left });
    let status = if left == 0 {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    Ok((status, Json(body)).into_response())
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn query(uri: &str) -> Result<SearchQuery, ApiError> {
        let request = axum::http::Request::builder().uri(uri).body(()).unwrap();
        SearchQuery::from_request_parts(&mut request.into_parts().0, &()).await
    }

    #[tokio::test]
    async fn ticked_boxes_repeat_ids_and_each_may_be_a_list() {
        let q = query("/x?ids=a&format=csv&ids=b%2Cc&q=Jane+Doe&limit=5&ignored=1")
            .await
            .unwrap();
        assert_eq!(q.ids.as_deref(), Some("a,b,c"));
        assert_eq!(q.format.as_deref(), Some("csv"));
        assert_eq!(q.q.as_deref(), Some("Jane Doe"));
        assert_eq!(q.limit, Some(5));
        assert!(query("/x").await.unwrap().ids.is_none());
    }

    #[tokio::test]
    async fn a_limit_that_is_no_number_is_refused_at_its_field() {
        let e = query("/x?limit=ten").await.expect_err("refused");
        assert_eq!(e.status, StatusCode::UNPROCESSABLE_ENTITY);
        assert!(e.message.contains("limit"), "{}", e.message);
    }
}
