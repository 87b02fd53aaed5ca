//! The one error type of the HTTP API and its JSON shape.
//!
//! Every error body is `{"error": "<stable_code>", "message": "<human
//! text>", …}`. Codes are part of the API: the widget maps them to its
//! warnings. Internal and database errors are logged with their detail and
//! reach the client only as `internal` (500), or as `unavailable` (503 with
//! `Retry-After`) when the database is unreachable or restarting. A
//! message sent over the event stream is refused with the same fields in
//! a `message_error` frame (`api/events.rs`), so both doors speak one set
//! of codes.

use axum::http::{HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::{json, Map, Value};

use crate::domain::InvalidInput;
use crate::engine::EngineError;

/// The `Retry-After` of a 503 `unavailable`, in seconds.
pub const UNAVAILABLE_RETRY_AFTER_SECS: u64 = 2;

#[derive(Debug)]
pub struct ApiError {
    pub status: StatusCode,
    pub code: &'static str,
    pub message: String,
    pub extra: Map<String, Value>,
}

impl ApiError {
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        Self {
            status,
            code,
            message: message.into(),
            extra: Map::new(),
        }
    }

    pub fn with(mut self, key: &str, value: impl Into<Value>) -> Self {
        self.extra.insert(key.to_owned(), value.into());
        self
    }

    pub fn unauthorized() -> Self {
        Self::new(
            StatusCode::UNAUTHORIZED,
            "unauthorized",
            "Missing or invalid visitor token. Start a new chat.",
        )
    }

    pub fn origin_not_allowed() -> Self {
        Self::new(
            StatusCode::FORBIDDEN,
            "origin_not_allowed",
            "This website is not allowed to use this chat channel.",
        )
    }

    pub fn rate_limited(retry_after_secs: u64) -> Self {
        Self::new(
            StatusCode::TOO_MANY_REQUESTS,
            "rate_limited",
            "Too many requests. Please wait a moment and try again.",
        )
        .with("retry_after", retry_after_secs)
    }

    /// The database is unreachable or restarting: nothing was stored by
    /// this request (or it was, and a retry with the same `client_id` gets
    /// it back), so the client tries again shortly.
    pub fn unavailable() -> Self {
        Self::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "unavailable",
            "The chat is unavailable for a moment. Please try again in a few seconds.",
        )
        .with("retry_after", UNAVAILABLE_RETRY_AFTER_SECS)
    }

    /// A body the API could not read (bad JSON, a missing or mistyped
    /// field); `message` says what, without echoing the input.
    pub fn invalid_json(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "invalid_json", message)
    }

    pub fn internal() -> Self {
        Self::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal",
            "Something went wrong on our side. Please try again.",
        )
    }
}

impl From<InvalidInput> for ApiError {
    fn from(e: InvalidInput) -> Self {
        let status = StatusCode::UNPROCESSABLE_ENTITY;
        match e {
            InvalidInput::Empty { field: "message" } => {
                ApiError::new(status, "empty_message", "A message cannot be empty.")
            }
            InvalidInput::Empty { field } => ApiError::new(
                status,
                "empty_field",
                format!("The {field} field cannot be empty."),
            )
            .with("field", field),
            InvalidInput::TooLong { field, limit } => ApiError::new(
                status,
                "too_long",
                format!("The {field} field is longer than {limit} characters."),
            )
            .with("field", field)
            .with("limit", limit),
            InvalidInput::InvalidEmail => ApiError::new(
                status,
                "invalid_email",
                "Please enter a valid e-mail address.",
            )
            .with("field", "email"),
            InvalidInput::InvalidUrl { field } => ApiError::new(
                status,
                "invalid_url",
                format!("The {field} field must be an http or https URL."),
            )
            .with("field", field),
        }
    }
}

impl From<EngineError> for ApiError {
    fn from(e: EngineError) -> Self {
        match e {
            EngineError::UnknownChannel => ApiError::new(
                StatusCode::NOT_FOUND,
                "unknown_channel",
                "No such chat channel.",
            ),
            EngineError::UnknownConversation => ApiError::new(
                StatusCode::NOT_FOUND,
                "unknown_conversation",
                "No such conversation.",
            ),
            EngineError::Closed { next_open } => ApiError::new(
                StatusCode::CONFLICT,
                "closed",
                "Live chat is closed right now.",
            )
            .with("next_open", next_open.map(|t| t.to_rfc3339())),
            EngineError::Invalid(invalid) => invalid.into(),
            EngineError::QueueFull => ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "queue_full",
                "All our advisors are busy and the queue is full. Please try again in a few minutes.",
            )
            .with("retry_after", 60),
            EngineError::TooManyWaiting { limit } => ApiError::new(
                StatusCode::TOO_MANY_REQUESTS,
                "too_many_waiting",
                "You already have chats waiting for an advisor. Please use one of them.",
            )
            .with("limit", limit)
            .with("retry_after", 60),
            EngineError::UnknownOption => ApiError::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                "unknown_option",
                "No such option.",
            ),
            EngineError::InvalidState(state) => ApiError::new(
                StatusCode::CONFLICT,
                "invalid_state",
                format!("The conversation is {state}, which does not allow this."),
            )
            .with("state", state.as_str()),
            EngineError::ConversationEnded => ApiError::new(
                StatusCode::CONFLICT,
                "conversation_ended",
                "This chat has ended. Start a new chat to continue.",
            ),
            EngineError::NotYourConversation => {
                ApiError::new(StatusCode::FORBIDDEN, "forbidden", "Not allowed.")
            }
            EngineError::Transition(e) => {
                tracing::error!(error = %e, "invalid transition requested");
                ApiError::new(StatusCode::CONFLICT, "invalid_state", e.to_string())
            }
            EngineError::Store(e) if e.is_unavailable() => {
                tracing::warn!(error = %e, "the database is unavailable");
                ApiError::unavailable()
            }
            EngineError::Store(e) => {
                tracing::error!(error = %e, "storage error");
                ApiError::internal()
            }
            EngineError::FileStore(e) => {
                tracing::error!(error = %e, "file store error");
                ApiError::internal()
            }
        }
    }
}

impl ApiError {
    /// The error body's fields: `error`, `message` and the extras (the
    /// event stream puts them in its `message_error` frames).
    pub fn into_body(self) -> Map<String, Value> {
        let mut body = Map::new();
        body.insert("error".into(), json!(self.code));
        body.insert("message".into(), json!(self.message));
        body.extend(self.extra);
        body
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status = self.status;
        let retry_after = self.extra.get("retry_after").and_then(Value::as_u64);
        let body = self.into_body();
        let mut response = (status, Json(Value::Object(body))).into_response();
        if let Some(secs) = retry_after {
            if let Ok(v) = HeaderValue::from_str(&secs.to_string()) {
                response.headers_mut().insert("retry-after", v);
            }
        }
        response
    }
}

pub type ApiResult<T> = Result<T, ApiError>;
