//! The visitor API: the one module the widget mirrors.
//!
//! Request and response types here are the wire contract (documented as
//! OpenAPI by `openapi.rs`, summarised in `docs/visitor-api.md`). Handlers
//! only extract, check the token and origin, call the engine and map its
//! answer; the engine holds every rule. A message has two doors, this
//! module's POST and the event stream's `message` frame (`events.rs`):
//! both check it with [`admit_message`].

use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::routing::{get, post};
use axum::{Json, Router};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use super::client::ClientAddr;
use super::error::{ApiError, ApiResult};
use super::extract::{ApiJson, AuthorizedVisitor, MaybeOrigin};
use super::ratelimit::limit_per_ip;
use super::ApiState;
use crate::config::{Alternative, ChannelLimits, ChannelMode};
use crate::domain::{
    ClientKey, ClientMessageId, ConversationId, Email, MessageBody, PageUrl, Party, VisitorName,
};
use crate::engine::{Channel, ConversationView, EngineError, MessageView, NewVisitor, Routed};

pub fn router(state: ApiState) -> Router {
    Router::new()
        .route("/api/v1/channels/{key}", get(channel_info))
        .route(
            "/api/v1/channels/{key}/conversations",
            post(start_conversation),
        )
        .route("/api/v1/conversations/{id}", get(get_conversation))
        .route("/api/v1/conversations/{id}/choice", post(choose_option))
        .route(
            "/api/v1/conversations/{id}/messages",
            post(post_message).get(list_messages),
        )
        .route("/api/v1/conversations/{id}/close", post(close_conversation))
        .route_layer(axum::middleware::from_fn_with_state(
            state.limiters.clone(),
            limit_per_ip,
        ))
        .with_state(state)
}

// ---- wire types ------------------------------------------------------------

/// Public information a widget needs before the visitor types anything.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct ChannelInfo {
    pub key: String,
    pub name: String,
    pub mode: ChannelMode,
    /// Whether live chat is open right now.
    pub open: bool,
    /// Next opening instant when closed (RFC 3339, UTC).
    pub next_open: Option<DateTime<Utc>>,
    /// IANA time zone of the channel's schedule.
    pub timezone: String,
    pub language: String,
    pub languages: Vec<String>,
    pub closed: ClosedInfo,
    pub options: Vec<OptionInfo>,
    pub limits: LimitsInfo,
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct ClosedInfo {
    /// The admin's out-of-hours text; `{next_open}` is for the widget to fill.
    pub text: String,
    pub alternatives: Vec<Alternative>,
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct OptionInfo {
    pub id: String,
    pub label: String,
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct LimitsInfo {
    pub max_file_bytes: u64,
    pub max_files_per_batch: u32,
    pub max_message_chars: usize,
    pub max_name_chars: usize,
    pub max_files_per_conversation: u32,
    pub max_bytes_per_conversation: u64,
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct StartRequest {
    pub name: String,
    pub email: String,
    #[serde(default)]
    pub page_url: Option<String>,
    #[serde(default)]
    pub language: Option<String>,
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct StartResponse {
    pub conversation_id: ConversationId,
    /// Secret for this conversation: send as `Authorization: Bearer …`.
    pub token: String,
    pub conversation: ConversationView,
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct ChoiceRequest {
    pub option_id: String,
}

#[derive(Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct MessageRequest {
    /// Chosen by the client; a retry with the same id never duplicates.
    pub client_id: String,
    pub body: String,
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct MessageList {
    pub messages: Vec<MessageView>,
}

#[derive(Debug, Deserialize, IntoParams)]
pub struct HistoryQuery {
    /// Only messages with a greater `seq`.
    #[serde(default)]
    pub after_seq: i64,
}

/// The body of every error response.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct ErrorBody {
    pub error: String,
    pub message: String,
}

// ---- validation ------------------------------------------------------------

impl StartRequest {
    /// The visitor as the engine takes them: name, e-mail and page parsed
    /// into domain values (an empty `page_url` is none), `client` for the
    /// per-client caps.
    pub fn validate(self, client: Option<ClientKey>) -> ApiResult<NewVisitor> {
        Ok(NewVisitor {
            name: VisitorName::parse(&self.name)?,
            email: Email::parse(&self.email)?,
            page_url: self
                .page_url
                .filter(|u| !u.is_empty())
                .map(|u| PageUrl::parse(&u))
                .transpose()?,
            language: self.language.unwrap_or_default(),
            client,
        })
    }
}

impl MessageRequest {
    /// The client id and the text, within the channel's `max_chars`.
    pub fn validate(self, max_chars: usize) -> ApiResult<(ClientMessageId, MessageBody)> {
        let client_id = ClientMessageId::try_from(self.client_id)?;
        let body = MessageBody::parse(&self.body, max_chars)?;
        Ok((client_id, body))
    }
}

/// The checks a visitor's message passes before the engine stores it,
/// whichever door it came in by (the POST, or a `message` frame on the
/// event stream): the channel's `max_message_chars`, then the
/// conversation's message rate. The caller has checked the token.
pub(super) fn admit_message(
    state: &ApiState,
    id: ConversationId,
    channel_key: &str,
    request: MessageRequest,
) -> ApiResult<(ClientMessageId, MessageBody)> {
    let channel = state.engine.channel(channel_key)?;
    let (client_id, body) = request.validate(channel.config.limits.max_message_chars)?;
    state.limiters.message(id)?;
    Ok((client_id, body))
}

// ---- helpers ---------------------------------------------------------------

fn channel_info_of(channel: &Channel) -> ChannelInfo {
    let now = Utc::now();
    let config = &channel.config;
    let routed = channel.route_at(now);
    let open = !matches!(routed, Routed::Closed(_));
    // The widget shows what a chat started now gets: a route to a queue
    // skips the menu, a route to the menu shows it, a closure its text.
    let mode = match routed {
        Routed::Queue(_) => ChannelMode::Live,
        Routed::Menu => ChannelMode::Chatbot,
        Routed::Closed(_) => config.mode,
    };
    let closed = match routed {
        Routed::Closed(closure) => closure,
        _ => &config.closed,
    };
    let ChannelLimits {
        max_file_bytes,
        max_files_per_batch,
        max_message_chars,
        max_files_per_conversation,
        max_bytes_per_conversation,
    } = config.limits.clone();
    ChannelInfo {
        key: config.key.to_string(),
        name: config.name.clone(),
        mode,
        open,
        next_open: if open {
            None
        } else {
            channel.schedule.next_open(now)
        },
        timezone: channel.schedule.timezone().name().to_owned(),
        language: config.language.clone(),
        languages: config.languages.clone(),
        closed: ClosedInfo {
            text: closed.text.clone(),
            alternatives: closed.alternatives.clone(),
        },
        options: match mode {
            ChannelMode::Chatbot => config
                .options
                .iter()
                .map(|o| OptionInfo {
                    id: o.id.clone(),
                    label: o.label.clone(),
                })
                .collect(),
            ChannelMode::Live => Vec::new(),
        },
        limits: LimitsInfo {
            max_file_bytes,
            max_files_per_batch,
            max_message_chars,
            max_name_chars: VisitorName::MAX_CHARS,
            max_files_per_conversation,
            max_bytes_per_conversation,
        },
    }
}

fn check_origin(channel: &Channel, origin: &Option<String>) -> ApiResult<()> {
    match origin {
        Some(origin) if !channel.allows_origin(origin) => Err(ApiError::origin_not_allowed()),
        _ => Ok(()),
    }
}

// ---- handlers --------------------------------------------------------------

#[utoipa::path(get, path = "/api/v1/channels/{key}", tag = "visitor",
    params(("key" = String, Path, description = "Channel key from the embed snippet")),
    responses((status = 200, body = ChannelInfo), (status = 404, body = ErrorBody)))]
pub async fn channel_info(
    State(state): State<ApiState>,
    Path(key): Path<String>,
    MaybeOrigin(origin): MaybeOrigin,
) -> ApiResult<Json<ChannelInfo>> {
    let channel = state.engine.enabled_channel(&key)?;
    check_origin(&channel, &origin)?;
    Ok(Json(channel_info_of(&channel)))
}

#[utoipa::path(post, path = "/api/v1/channels/{key}/conversations", tag = "visitor",
    params(("key" = String, Path, description = "Channel key")),
    request_body = StartRequest,
    responses((status = 201, body = StartResponse),
        (status = 409, description = "Closed: `closed`, with `next_open` and the out-of-hours info", body = ErrorBody),
        (status = 422, description = "`empty_field`, `invalid_email`, `too_long`", body = ErrorBody),
        (status = 403, body = ErrorBody), (status = 429, body = ErrorBody)))]
pub async fn start_conversation(
    State(state): State<ApiState>,
    client: ClientAddr,
    Path(key): Path<String>,
    MaybeOrigin(origin): MaybeOrigin,
    ApiJson(request): ApiJson<StartRequest>,
) -> ApiResult<(StatusCode, Json<StartResponse>)> {
    let channel = state.engine.enabled_channel(&key)?;
    check_origin(&channel, &origin)?;
    let visitor = request.validate(Some(ClientKey::of(&client.key().to_string())))?;
    state.limiters.new_conversation(client)?;
    match state.engine.start_conversation(&key, visitor).await {
        Ok((conversation, token)) => Ok((
            StatusCode::CREATED,
            Json(StartResponse {
                conversation_id: conversation.id,
                token: token.reveal().to_owned(),
                conversation,
            }),
        )),
        Err(e @ EngineError::Closed { .. }) => {
            let info = channel_info_of(&channel);
            Err(ApiError::from(e).with(
                "closed",
                serde_json::to_value(&info.closed).unwrap_or_default(),
            ))
        }
        Err(e) => Err(e.into()),
    }
}

#[utoipa::path(get, path = "/api/v1/conversations/{id}", tag = "visitor",
    params(("id" = String, Path)), security(("visitor_token" = [])),
    responses((status = 200, body = ConversationView), (status = 401, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn get_conversation(
    State(state): State<ApiState>,
    AuthorizedVisitor { id, .. }: AuthorizedVisitor,
) -> ApiResult<Json<ConversationView>> {
    Ok(Json(state.engine.view(id).await?))
}

#[utoipa::path(post, path = "/api/v1/conversations/{id}/choice", tag = "visitor",
    params(("id" = String, Path)), security(("visitor_token" = [])), request_body = ChoiceRequest,
    responses((status = 200, body = ConversationView), (status = 409, body = ErrorBody), (status = 422, body = ErrorBody)))]
pub async fn choose_option(
    State(state): State<ApiState>,
    AuthorizedVisitor { id, .. }: AuthorizedVisitor,
    ApiJson(request): ApiJson<ChoiceRequest>,
) -> ApiResult<Json<ConversationView>> {
    Ok(Json(
        state.engine.choose_option(id, &request.option_id).await?,
    ))
}

#[utoipa::path(post, path = "/api/v1/conversations/{id}/messages", tag = "visitor",
    params(("id" = String, Path)), security(("visitor_token" = [])), request_body = MessageRequest,
    responses((status = 201, description = "Stored", body = MessageView),
        (status = 200, description = "Already stored under this client_id", body = MessageView),
        (status = 409, description = "`conversation_ended`", body = ErrorBody),
        (status = 422, description = "`empty_message`, `too_long`", body = ErrorBody),
        (status = 429, body = ErrorBody)))]
pub async fn post_message(
    State(state): State<ApiState>,
    AuthorizedVisitor { id, identity }: AuthorizedVisitor,
    ApiJson(request): ApiJson<MessageRequest>,
) -> ApiResult<(StatusCode, Json<MessageView>)> {
    let (client_id, body) = admit_message(&state, id, &identity.channel_key, request)?;
    let (message, created) = state
        .engine
        .post_visitor_message(id, client_id, body)
        .await?;
    let status = if created {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    Ok((status, Json(message)))
}

#[utoipa::path(get, path = "/api/v1/conversations/{id}/messages", tag = "visitor",
    params(("id" = String, Path), HistoryQuery), security(("visitor_token" = [])),
    responses((status = 200, body = MessageList), (status = 401, body = ErrorBody)))]
pub async fn list_messages(
    State(state): State<ApiState>,
    AuthorizedVisitor { id, .. }: AuthorizedVisitor,
    Query(query): Query<HistoryQuery>,
) -> ApiResult<Json<MessageList>> {
    let messages = state.engine.messages(id, query.after_seq, 1000).await?;
    Ok(Json(MessageList { messages }))
}

#[utoipa::path(post, path = "/api/v1/conversations/{id}/close", tag = "visitor",
    params(("id" = String, Path)), security(("visitor_token" = [])),
    responses((status = 200, body = ConversationView), (status = 401, body = ErrorBody)))]
pub async fn close_conversation(
    State(state): State<ApiState>,
    AuthorizedVisitor { id, .. }: AuthorizedVisitor,
) -> ApiResult<Json<ConversationView>> {
    Ok(Json(state.engine.close(id, Party::Visitor).await?))
}
