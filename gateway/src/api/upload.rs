//! `PUT /upload/{slot}/{filename}`: the HTTP half of HTTP File Upload
//! (XEP-0363), through which agents' XMPP clients send visitors files.
//!
//! The XMPP bridge grants the slot; the random slot id in the URL is the
//! only credential (XEP-0363 clients send no other), so it is usable once
//! and for minutes only (see `engine::agent_files`). The body goes through
//! the same [`Intake`](crate::files::Intake) as visitors' uploads: streamed
//! chunk by chunk, refused the moment it passes the announced size, type
//! sniffed from the bytes and checked against the denylist, with the same
//! JSON errors (`413 file_too_large`, `415 file_type_not_allowed`). The file
//! then waits for the agent's message that sends it. Slots are rows, so the
//! PUT may reach any node (`404 unknown_slot`, `409 slot_used` on every
//! node alike), and a database away answers 503 `unavailable`. The
//! `{filename}` segment is only there because clients show it; the name
//! comes from the slot request.

use axum::body::Body;
use axum::extract::{DefaultBodyLimit, Path, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::put;
use axum::Router;
use futures::StreamExt;
use tracing::warn;

use super::error::{ApiError, ApiResult};
use super::visitor::ErrorBody;
use super::ApiState;
use crate::engine::{Engine, SlotId, SlotUnusable, UploadTicket};
use crate::files::{Files, IntakeError, Received};

/// What the upload handler needs.
#[derive(Clone)]
pub struct UploadState {
    pub api: ApiState,
    pub files: Files,
}

/// The upload route, under the per-IP request budget. Bodies are held to
/// the slot's announced size while they stream; the route's body limit is
/// only a backstop at the largest channel limit.
pub fn router(api: ApiState, files: Files) -> Router {
    let backstop = usize::try_from(api.engine.largest_file_limit())
        .unwrap_or(usize::MAX)
        .saturating_add(1);
    let limiters = api.limiters.clone();
    Router::new()
        .route(
            "/upload/{slot}/{filename}",
            put(upload).layer(DefaultBodyLimit::max(backstop)),
        )
        .route_layer(axum::middleware::from_fn_with_state(
            limiters,
            super::ratelimit::limit_per_ip,
        ))
        .with_state(UploadState { api, files })
}

fn file_too_large(limit: u64) -> ApiError {
    ApiError::new(
        StatusCode::PAYLOAD_TOO_LARGE,
        "file_too_large",
        "This file is larger than the size announced for this upload.",
    )
    .with("limit_bytes", limit)
}

/// Errors of a PUT: as for visitor uploads, except that "too large" means
/// larger than the size the agent announced.
fn intake_error(e: IntakeError) -> ApiError {
    match e {
        IntakeError::TooLarge { limit } => file_too_large(limit),
        other => super::files::intake_error(other),
    }
}

fn slot_error(e: SlotUnusable) -> ApiError {
    match e {
        SlotUnusable::Unknown => ApiError::new(
            StatusCode::NOT_FOUND,
            "unknown_slot",
            "No such upload slot, or it has expired. Ask for a new one.",
        ),
        SlotUnusable::Used => ApiError::new(
            StatusCode::CONFLICT,
            "slot_used",
            "This upload slot was already used. Ask for a new one.",
        ),
    }
}

/// A PUT in progress: if its request is dropped before it finished or
/// failed (client gone, request cancelled), its slot is released by an
/// engine task.
struct InFlight {
    engine: Engine,
    files: Files,
    ticket: Option<UploadTicket>,
}

impl Drop for InFlight {
    fn drop(&mut self) {
        if let Some(ticket) = self.ticket.take() {
            self.engine.abort_upload_later(ticket, self.files.clone());
        }
    }
}

#[utoipa::path(put, path = "/upload/{slot}/{filename}", tag = "agent",
    params(("slot" = String, Path), ("filename" = String, Path)),
    request_body(content = String, content_type = "application/octet-stream"),
    responses(
        (status = 201, description = "Uploaded; send the slot's GET URL in the chat"),
        (status = 404, description = "`unknown_slot` (or expired)", body = ErrorBody),
        (status = 409, description = "`slot_used`", body = ErrorBody),
        (status = 413, description = "`file_too_large`: over the announced size, with `limit_bytes`", body = ErrorBody),
        (status = 415, description = "`file_type_not_allowed`, with the sniffed `content_type`", body = ErrorBody),
        (status = 422, description = "`empty_file`, `size_mismatch` (shorter than announced)", body = ErrorBody),
        (status = 429, body = ErrorBody),
        (status = 503, description = "`unavailable`: the database is away; try again", body = ErrorBody)))]
pub async fn upload(
    State(state): State<UploadState>,
    Path((slot, _filename)): Path<(String, String)>,
    headers: HeaderMap,
    body: Body,
) -> ApiResult<Response> {
    let slot = SlotId::parse(&slot).ok_or_else(|| slot_error(SlotUnusable::Unknown))?;
    let engine = &state.api.engine;
    let ticket = engine.begin_upload(&slot).await?.map_err(slot_error)?;
    let mut in_flight = InFlight {
        engine: engine.clone(),
        files: state.files.clone(),
        ticket: Some(ticket),
    };
    let ticket = in_flight.ticket.as_mut().expect("just set");
    let received = receive(&state, ticket, &headers, body).await;
    let store = state.files.store();
    match received {
        Ok(file) => {
            let finished = engine.finish_upload(ticket, file, store).await?;
            // Finished or swept: nothing is left to release.
            in_flight.ticket = None;
            finished.map_err(slot_error)?;
            Ok(StatusCode::CREATED.into_response())
        }
        Err(refused) => {
            if let Some(ticket) = in_flight.ticket.take() {
                if let Err(e) = engine.abort_upload(&ticket, store).await {
                    warn!(error = %e, "cannot release the slot of a refused upload");
                }
            }
            Err(refused)
        }
    }
}

/// Streams the body through the intake, held to the slot's size.
async fn receive(
    state: &UploadState,
    ticket: &mut UploadTicket,
    headers: &HeaderMap,
    body: Body,
) -> ApiResult<Received> {
    let announced = ticket.size;
    let declared = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > announced) {
        return Err(file_too_large(announced));
    }
    let mut intake = state.files.intake(announced).await.map_err(intake_error)?;
    let mut stream = body.into_data_stream();
    while let Some(chunk) = stream.next().await {
        let chunk = chunk.map_err(|e| {
            ApiError::new(
                StatusCode::BAD_REQUEST,
                "invalid_upload",
                format!("The upload was interrupted: {e}"),
            )
        })?;
        intake.push(&chunk).await.map_err(intake_error)?;
        state.api.engine.keep_upload(ticket).await;
    }
    let file = intake
        .finish(Some(&ticket.filename))
        .await
        .map_err(intake_error)?;
    if file.size != announced {
        return Err(ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "size_mismatch",
            "The file is shorter than the size announced for this upload.",
        )
        .with("expected_bytes", announced)
        .with("received_bytes", file.size));
    }
    Ok(file)
}
