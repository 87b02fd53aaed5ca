//! Request extractors whose failures speak the API's error format.

use std::collections::HashMap;
use std::sync::Arc;

use axum::extract::rejection::JsonRejection;
use axum::extract::{FromRef, FromRequest, FromRequestParts, Path, Request};
use axum::http::request::Parts;
use axum::http::{header, StatusCode};
use serde::de::DeserializeOwned;

use super::error::ApiError;
use super::ApiState;
use crate::domain::{ConversationId, VisitorToken};
use crate::engine::EngineError;
use crate::store::ConversationIdentity;

/// `axum::Json`, but a bad body answers in the API's error shape:
/// 413 `payload_too_large` past the body limit, 400 `invalid_json` else.
pub struct ApiJson<T>(pub T);

impl<S, T> FromRequest<S> for ApiJson<T>
where
    T: DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, ApiError> {
        axum::Json::<T>::from_request(req, state)
            .await
            .map(|axum::Json(value)| ApiJson(value))
            .map_err(json_rejection)
    }
}

impl<T: DeserializeOwned> ApiJson<T> {
    /// A body already read, parsed as the extractor parses it (the
    /// fuzz targets and property tests call this).
    pub fn from_bytes(body: &[u8]) -> Result<T, ApiError> {
        axum::Json::<T>::from_bytes(body)
            .map(|axum::Json(value)| value)
            .map_err(json_rejection)
    }
}

fn json_rejection(rejection: JsonRejection) -> ApiError {
    match rejection {
        JsonRejection::BytesRejection(e) if e.status() == StatusCode::PAYLOAD_TOO_LARGE => {
            ApiError::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                "payload_too_large",
                "The request body is too large.",
            )
        }
        e => ApiError::invalid_json(format!("The request body is not valid: {}", e.body_text())),
    }
}

/// The visitor token from `Authorization: Bearer …` (never from the URL,
/// which ends up in logs and browser history).
pub struct Bearer(pub VisitorToken);

impl<S: Send + Sync> FromRequestParts<S> for Bearer {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, ApiError> {
        let value = parts
            .headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .ok_or_else(ApiError::unauthorized)?;
        let token = value
            .strip_prefix("Bearer ")
            .map(str::trim)
            .filter(|t| !t.is_empty() && t.len() <= 128)
            .ok_or_else(ApiError::unauthorized)?;
        Ok(Bearer(VisitorToken::from_presented(token)))
    }
}

/// The browser's `Origin` header, if it sent one.
pub struct MaybeOrigin(pub Option<String>);

impl<S: Send + Sync> FromRequestParts<S> for MaybeOrigin {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        Ok(MaybeOrigin(
            parts
                .headers
                .get(header::ORIGIN)
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned),
        ))
    }
}

/// The visitor of the conversation named by the path's `{id}`: their token
/// matched (else 401) and their browser's origin is allowed for the
/// conversation's channel (else 403). Every authenticated visitor route
/// takes this instead of checking by hand.
pub struct AuthorizedVisitor {
    pub id: ConversationId,
    /// What never changes about the conversation (channel, visitor).
    pub identity: Arc<ConversationIdentity>,
}

impl<S> FromRequestParts<S> for AuthorizedVisitor
where
    ApiState: FromRef<S>,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        let state = ApiState::from_ref(state);
        let unknown = || ApiError::from(EngineError::UnknownConversation);
        let Path(params) = Path::<HashMap<String, String>>::from_request_parts(parts, &())
            .await
            .map_err(|_| unknown())?;
        let id: ConversationId = params
            .get("id")
            .and_then(|raw| raw.parse().ok())
            .ok_or_else(unknown)?;
        let Bearer(token) = Bearer::from_request_parts(parts, &()).await?;
        let MaybeOrigin(origin) = match MaybeOrigin::from_request_parts(parts, &()).await {
            Ok(origin) => origin,
            Err(never) => match never {},
        };
        let identity = state
            .engine
            .authenticate(id, &token)
            .await?
            .ok_or_else(ApiError::unauthorized)?;
        let channel = state.engine.channel(&identity.channel_key)?;
        if origin.is_some_and(|o| !channel.allows_origin(&o)) {
            return Err(ApiError::origin_not_allowed());
        }
        Ok(AuthorizedVisitor { id, identity })
    }
}
