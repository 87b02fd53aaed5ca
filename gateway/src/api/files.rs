//! File uploads and downloads over HTTP.
//!
//! - `POST /api/v1/conversations/{id}/files`: one file per request, in a
//!   multipart part named `file` (`curl -F file=@x`), with an optional
//!   `batch_id` and `client_id` (query or form fields). The body is read
//!   chunk by chunk into the file store and refused as soon as it passes the
//!   channel's limit, so memory does not grow with the file.
//! - `GET /api/v1/conversations/{id}/files/{file_id}`: the visitor's
//!   download, with their token.
//! - `GET /files/{file_id}?expires=…&sig=…`: an agent's signed link.
//!
//! Downloads are always attachments, never rendered by the browser on our
//! origin: `Content-Disposition: attachment`, `nosniff` and a sandboxing
//! CSP, whatever the file holds.

use std::future::Future;

use axum::body::Body;
use axum::extract::multipart::{Field, MultipartError, MultipartRejection};
use axum::extract::{DefaultBodyLimit, Multipart, Path, Query, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use chrono::Utc;
use serde::Deserialize;
use tokio_util::io::ReaderStream;
use utoipa::{IntoParams, ToSchema};

use super::error::{ApiError, ApiResult};
use super::extract::AuthorizedVisitor;
use super::ratelimit::limit_per_ip;
use super::visitor::ErrorBody;
use super::ApiState;
use crate::domain::{BatchId, ClientMessageId, ConversationId, FileId};
use crate::engine::{AttachOutcome, EngineError, MessageView};
use crate::files::{
    DisplayName, Files, IntakeError, NewAttachment, Received, Signature, StoredBytes,
};
use crate::store::FileRow;

/// Room for the multipart framing and the small form fields around a file.
pub const MULTIPART_OVERHEAD: usize = 64 * 1024;

/// What the file handlers need.
#[derive(Clone)]
pub struct FilesState {
    pub api: ApiState,
    pub files: Files,
}

impl axum::extract::FromRef<FilesState> for ApiState {
    fn from_ref(state: &FilesState) -> ApiState {
        state.api.clone()
    }
}

/// The file routes. The upload route accepts bodies up to the largest
/// channel file limit plus [`MULTIPART_OVERHEAD`]; each upload is held to
/// its own channel's limit while it streams.
pub fn router(api: ApiState, files: Files) -> Router {
    let largest = api.engine.largest_file_limit();
    let body_limit = usize::try_from(largest)
        .unwrap_or(usize::MAX)
        .saturating_add(MULTIPART_OVERHEAD);
    let limiters = api.limiters.clone();
    Router::new()
        .route(
            "/api/v1/conversations/{id}/files",
            post(upload).layer(DefaultBodyLimit::max(body_limit)),
        )
        .route(
            "/api/v1/conversations/{id}/files/{file_id}",
            get(visitor_download),
        )
        .route("/files/{file_id}", get(agent_download))
        .route_layer(axum::middleware::from_fn_with_state(limiters, limit_per_ip))
        .with_state(FilesState { api, files })
}

// ---- wire types ------------------------------------------------------------

/// The multipart form of an upload (fields may also be query parameters).
#[derive(Debug, ToSchema)]
pub struct UploadForm {
    /// The file; its name is kept (sanitised) for display only.
    #[schema(value_type = String, format = Binary)]
    pub file: Vec<u8>,
    /// The client's id for this "send" of several files.
    pub batch_id: Option<String>,
    /// The client's id for this upload: a retry returns the first message.
    pub client_id: Option<String>,
}

#[derive(Debug, Default, Deserialize, IntoParams)]
pub struct UploadQuery {
    /// Files sent together share a batch id (at most `max_files_per_batch`
    /// each); without one a file is a batch of its own.
    pub batch_id: Option<String>,
    /// Makes retries idempotent, like a message's `client_id`.
    pub client_id: Option<String>,
}

#[derive(Debug, Deserialize, IntoParams)]
pub struct LinkQuery {
    /// Unix seconds.
    pub expires: Option<i64>,
    /// Hex HMAC-SHA256 over the file id and `expires`.
    pub sig: Option<String>,
}

// ---- errors ------------------------------------------------------------------

fn file_too_large(limit: u64) -> ApiError {
    ApiError::new(
        StatusCode::PAYLOAD_TOO_LARGE,
        "file_too_large",
        format!(
            "This file is larger than the size limit ({}).",
            human_size(limit)
        ),
    )
    .with("limit_bytes", limit)
}

fn too_many_files(limit: u32) -> ApiError {
    ApiError::new(
        StatusCode::UNPROCESSABLE_ENTITY,
        "too_many_files",
        format!("Only {limit} files can be sent at once."),
    )
    .with("limit", limit)
}

/// A file the conversation has no room for.
fn attach_refusal(full: AttachOutcome) -> ApiError {
    match full {
        AttachOutcome::ConversationFull { files, bytes } => ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "conversation_files_full",
            format!(
                "This chat already holds as many files as it can ({files} files or {} MB).",
                bytes / (1024 * 1024)
            ),
        )
        .with("limit_files", files)
        .with("limit_bytes", bytes),
        AttachOutcome::BatchFull { limit } => too_many_files(limit),
        // Not refusals: never passed here.
        AttachOutcome::Stored(_) | AttachOutcome::Existing(_) => ApiError::internal(),
    }
}

fn invalid_upload(detail: &str) -> ApiError {
    ApiError::new(
        StatusCode::BAD_REQUEST,
        "invalid_upload",
        format!("Send one file as multipart/form-data in a part named \"file\" ({detail})."),
    )
}

fn unknown_file() -> ApiError {
    ApiError::new(StatusCode::NOT_FOUND, "unknown_file", "No such file.")
}

fn invalid_link() -> ApiError {
    ApiError::new(
        StatusCode::FORBIDDEN,
        "invalid_link",
        "This download link is invalid or has expired.",
    )
}

pub(super) fn storage_error(e: &std::io::Error) -> ApiError {
    tracing::error!(error = %e, "file store error");
    ApiError::internal()
}

pub(super) fn intake_error(e: IntakeError) -> ApiError {
    match e {
        IntakeError::TooLarge { limit } => file_too_large(limit),
        IntakeError::Denied { media_type } => ApiError::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "file_type_not_allowed",
            "Files of this type cannot be sent.",
        )
        .with("content_type", media_type),
        IntakeError::Empty => ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "empty_file",
            "This file is empty.",
        ),
        IntakeError::DangerousName(refused) => ApiError::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "file_type_not_allowed",
            format!("Files named *.{} cannot be sent.", refused.extension),
        )
        .with("extension", refused.extension),
        IntakeError::StorageFull => {
            tracing::error!("file store below its free-space floor: uploads refused");
            ApiError::new(
                StatusCode::INSUFFICIENT_STORAGE,
                "storage_full",
                "Files cannot be received right now. Please try again later.",
            )
        }
        IntakeError::Io(e) => storage_error(&e),
    }
}

/// A broken or oversized multipart body. Past the route's body limit the
/// file was too large anyway.
fn multipart_error(limit: u64) -> impl Fn(MultipartError) -> ApiError {
    move |e| {
        if e.status() == StatusCode::PAYLOAD_TOO_LARGE {
            file_too_large(limit)
        } else {
            invalid_upload(&e.body_text())
        }
    }
}

fn human_size(bytes: u64) -> String {
    if bytes >= 1024 * 1024 && bytes.is_multiple_of(1024 * 1024) {
        format!("{} MB", bytes / (1024 * 1024))
    } else {
        format!("{bytes} bytes")
    }
}

fn parse_batch(raw: &str) -> ApiResult<BatchId> {
    BatchId::parse(raw).ok_or_else(|| {
        ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "too_long",
            "The batch_id field must be 1 to 64 visible ASCII characters.",
        )
        .with("field", "batch_id")
        .with("limit", 64)
    })
}

/// A small text field, read with a bound (never the whole body).
async fn small_text(field: &mut Field<'_>, limit: u64) -> ApiResult<String> {
    let mut bytes = Vec::new();
    while let Some(chunk) = field.chunk().await.map_err(multipart_error(limit))? {
        bytes.extend_from_slice(&chunk);
        if bytes.len() > 256 {
            return Err(invalid_upload("form fields other than file are short"));
        }
    }
    String::from_utf8(bytes).map_err(|_| invalid_upload("form fields must be UTF-8"))
}

// ---- the form --------------------------------------------------------------

/// An upload's fields besides the file (from the query, then the form).
#[derive(Debug, Default)]
pub struct UploadFields {
    pub batch: Option<BatchId>,
    pub client_id: Option<ClientMessageId>,
}

/// How reading an upload form ended.
pub enum Upload<T> {
    /// The one file, complete and accepted, not yet in the store.
    Received(Received),
    /// `before_file` answered instead.
    Answered(T),
}

/// Reads an upload's multipart body: `batch_id` and `client_id` fields
/// (short, UTF-8) replace those in `fields`, other fields are skipped, and
/// the one `file` part is streamed through an [`Intake`](crate::files::Intake)
/// of `limit` bytes. `before_file` runs when the file part starts, before
/// any of its bytes are read, and may answer instead (an existing message,
/// a full batch). No file part is an error. The upload handler's whole
/// reading of the body, and what the `multipart` fuzz target drives.
pub async fn read_upload<T, F>(
    multipart: &mut Multipart,
    files: &Files,
    limit: u64,
    fields: &mut UploadFields,
    mut before_file: impl FnMut(&UploadFields) -> F,
) -> ApiResult<Upload<T>>
where
    F: Future<Output = ApiResult<Option<T>>>,
{
    let mut received: Option<Received> = None;
    while let Some(mut field) = multipart
        .next_field()
        .await
        .map_err(multipart_error(limit))?
    {
        match field.name() {
            Some("file") => {
                if received.is_some() {
                    return Err(invalid_upload("one file per request"));
                }
                if let Some(answer) = before_file(fields).await? {
                    return Ok(Upload::Answered(answer));
                }
                let raw_name = field.file_name().map(str::to_owned);
                let mut intake = files.intake(limit).await.map_err(intake_error)?;
                while let Some(chunk) = field.chunk().await.map_err(multipart_error(limit))? {
                    intake.push(&chunk).await.map_err(intake_error)?;
                }
                let file = intake.finish(raw_name.as_deref()).await;
                received = Some(file.map_err(intake_error)?);
            }
            Some("batch_id") => {
                fields.batch = Some(parse_batch(&small_text(&mut field, limit).await?)?)
            }
            Some("client_id") => {
                let text = small_text(&mut field, limit).await?;
                fields.client_id = Some(ClientMessageId::try_from(text)?)
            }
            _ => {
                while field
                    .chunk()
                    .await
                    .map_err(multipart_error(limit))?
                    .is_some()
                {}
            }
        }
    }
    received
        .map(Upload::Received)
        .ok_or_else(|| invalid_upload("no file part"))
}

// ---- handlers ----------------------------------------------------------------

#[utoipa::path(post, path = "/api/v1/conversations/{id}/files", tag = "visitor",
    params(("id" = String, Path), UploadQuery), security(("visitor_token" = [])),
    request_body(content = UploadForm, content_type = "multipart/form-data"),
    responses(
        (status = 201, description = "Stored: the file message", body = MessageView),
        (status = 200, description = "Already stored under this client_id", body = MessageView),
        (status = 400, description = "`invalid_upload`", body = ErrorBody),
        (status = 401, body = ErrorBody),
        (status = 409, description = "`conversation_ended`", body = ErrorBody),
        (status = 413, description = "`file_too_large`, with `limit_bytes`", body = ErrorBody),
        (status = 415, description = "`file_type_not_allowed`, with the sniffed `content_type`", body = ErrorBody),
        (status = 422, description = "`too_many_files` (with `limit`), `empty_file`", body = ErrorBody),
        (status = 429, body = ErrorBody)))]
pub async fn upload(
    State(state): State<FilesState>,
    AuthorizedVisitor { id, .. }: AuthorizedVisitor,
    Query(query): Query<UploadQuery>,
    multipart: Result<Multipart, MultipartRejection>,
) -> ApiResult<Response> {
    let row = state.api.engine.conversation_row(id).await?;
    if row.state.is_final() {
        return Err(EngineError::ConversationEnded.into());
    }
    let channel = state.api.engine.channel(&row.channel_key)?;
    let limits = &channel.config.limits;
    let limit = limits.max_file_bytes;
    let mut multipart = multipart.map_err(|e| invalid_upload(&e.body_text()))?;
    let mut fields = UploadFields {
        batch: query.batch_id.as_deref().map(parse_batch).transpose()?,
        client_id: query.client_id.map(ClientMessageId::try_from).transpose()?,
    };
    state.api.limiters.message(id)?;

    // Refuse what is known to fail before reading the file's bytes.
    let before_file = |fields: &UploadFields| {
        let (state, row, client_id) = (state.clone(), row.clone(), fields.client_id.clone());
        let batch = (fields.batch.clone()).unwrap_or_else(|| BatchId::unbatched(Utc::now()));
        async move {
            if let Some(existing) = existing_message(&state, id, &client_id).await? {
                return Ok(Some((StatusCode::OK, Json(existing)).into_response()));
            }
            match state.api.engine.visitor_file_refusal(&row, &batch).await? {
                Some(full) => Err(attach_refusal(full)),
                None => Ok(None),
            }
        }
    };
    let file = match read_upload(
        &mut multipart,
        &state.files,
        limit,
        &mut fields,
        before_file,
    )
    .await?
    {
        Upload::Received(file) => file,
        Upload::Answered(response) => return Ok(response),
    };
    let UploadFields { batch, client_id } = fields;
    let name = file.name.clone();
    let size = file.size;
    let content_type = file.sniffed.media_type.clone();
    let key = file.commit().await.map_err(|e| storage_error(&e))?;
    let attachment = NewAttachment {
        id: FileId::new(),
        storage_key: key.clone(),
        name,
        size,
        content_type,
        batch_id: batch.unwrap_or_else(|| BatchId::unbatched(Utc::now())),
        client_id,
    };
    let outcome = state.api.engine.attach_visitor_file(id, attachment).await;
    if !matches!(outcome, Ok(AttachOutcome::Stored(_))) {
        if let Err(e) = state.files.store().delete(&key).await {
            tracing::warn!(error = %e, "cannot delete an unneeded upload");
        }
    }
    match outcome? {
        AttachOutcome::Stored(message) => Ok((StatusCode::CREATED, Json(message)).into_response()),
        AttachOutcome::Existing(message) => Ok((StatusCode::OK, Json(message)).into_response()),
        full => Err(attach_refusal(full)),
    }
}

async fn existing_message(
    state: &FilesState,
    id: ConversationId,
    client_id: &Option<ClientMessageId>,
) -> ApiResult<Option<MessageView>> {
    match client_id {
        Some(client_id) => Ok(state
            .api
            .engine
            .message_by_client_id(id, client_id.as_str())
            .await?),
        None => Ok(None),
    }
}

#[utoipa::path(get, path = "/api/v1/conversations/{id}/files/{file_id}", tag = "visitor",
    params(("id" = String, Path), ("file_id" = String, Path)), security(("visitor_token" = [])),
    responses(
        (status = 200, description = "The file, as an attachment", content_type = "application/octet-stream"),
        (status = 401, body = ErrorBody),
        (status = 404, description = "`unknown_file`", body = ErrorBody)))]
pub async fn visitor_download(
    State(state): State<FilesState>,
    AuthorizedVisitor { id, .. }: AuthorizedVisitor,
    Path((_, file_id)): Path<(String, String)>,
) -> ApiResult<Response> {
    let file_id: FileId = file_id.parse().map_err(|_| unknown_file())?;
    let row = state
        .api
        .engine
        .file(&file_id)
        .await?
        .filter(|row| row.conversation_id == id)
        .ok_or_else(unknown_file)?;
    serve(&state.files, &row).await
}

#[utoipa::path(get, path = "/files/{file_id}", tag = "agent",
    params(("file_id" = String, Path), LinkQuery),
    responses(
        (status = 200, description = "The file, as an attachment", content_type = "application/octet-stream"),
        (status = 403, description = "`invalid_link`: tampered or expired", body = ErrorBody),
        (status = 404, description = "`unknown_file`", body = ErrorBody)))]
pub async fn agent_download(
    State(state): State<FilesState>,
    Path(file_id): Path<String>,
    Query(query): Query<LinkQuery>,
) -> ApiResult<Response> {
    let file_id: FileId = file_id.parse().map_err(|_| invalid_link())?;
    let (Some(expires), Some(sig)) = (query.expires, query.sig) else {
        return Err(invalid_link());
    };
    let presented = Signature { expires, sig };
    match state.files.verify_link(&file_id, &presented) {
        Ok(Ok(())) => {}
        Ok(Err(e)) => {
            tracing::info!(file = %file_id, reason = %e, "refused a file link");
            return Err(invalid_link());
        }
        Err(e) => return Err(storage_error(&e)),
    }
    let row = state
        .api
        .engine
        .file(&file_id)
        .await?
        .ok_or_else(unknown_file)?;
    serve(&state.files, &row).await
}

/// Streams a stored file with headers that keep browsers from rendering it.
pub(crate) async fn serve(files: &Files, row: &FileRow) -> ApiResult<Response> {
    let key = crate::files::StorageKey::parse(&row.storage_key).ok_or_else(|| {
        tracing::error!(file = %row.id, "stored file has an invalid storage key");
        ApiError::internal()
    })?;
    let Some(StoredBytes { reader, size }) = files
        .store()
        .open(&key)
        .await
        .map_err(|e| storage_error(&e))?
    else {
        tracing::error!(file = %row.id, "a file's bytes are missing from the store");
        return Err(unknown_file());
    };
    let mut headers = HeaderMap::new();
    let media_type = if row.content_type == "text/plain" {
        "text/plain; charset=utf-8"
    } else {
        row.content_type.as_str()
    };
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_str(media_type)
            .unwrap_or(HeaderValue::from_static("application/octet-stream")),
    );
    headers.insert(header::CONTENT_LENGTH, HeaderValue::from(size));
    let disposition = DisplayName::sanitize(&row.name).content_disposition();
    headers.insert(
        header::CONTENT_DISPOSITION,
        HeaderValue::from_str(&disposition)
            .unwrap_or(HeaderValue::from_static("attachment; filename=\"file\"")),
    );
    for (name, value) in [
        (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
        // Opened by mistake in a tab, it runs nothing and loads nothing.
        (
            header::CONTENT_SECURITY_POLICY,
            "sandbox; default-src 'none'",
        ),
        (header::CACHE_CONTROL, "private, no-store"),
        (header::REFERRER_POLICY, "no-referrer"),
    ] {
        headers.insert(name, HeaderValue::from_static(value));
    }
    Ok((headers, Body::from_stream(ReaderStream::new(reader))).into_response())
}
