//! The API's readings of visitor input without a server, for the cargo-fuzz
//! targets in `gateway/fuzz` and the property tests: every byte a visitor's
//! browser sends passes through one of these before the engine sees it.
//!
//! - [`visitor_body`]: a JSON request body, deserialised as the `ApiJson`
//!   extractor does and validated as the handlers do (`StartRequest`,
//!   `MessageRequest`, `ChoiceRequest`);
//! - [`client_frame`]: a WebSocket text frame, read as the event stream
//!   reads it (`ClientFrame::parse`);
//! - [`upload`]: a multipart upload body, read by the upload handler's own
//!   `read_upload` (fields, the file part streamed through an `Intake` that
//!   sniffs, checks the denylist and names the file), into a store that
//!   keeps nothing.
//!
//! Each returns what the door accepted or refused, after checking what must
//! hold for any input; `Err(String)` is a broken invariant. What these do
//! not cover: the token, origin and rate checks and the engine's own rules
//! (they need a store), and the HTTP and WebSocket framing (hyper,
//! tungstenite).
//!
//! Hidden from the docs and not part of the gateway's API.

use std::io;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use async_trait::async_trait;
use axum::body::{Body, Bytes};
use axum::extract::{FromRequest, Multipart, Request};
use axum::http::{header, HeaderValue};
use url::Url;

use super::error::{ApiError, ApiResult};
use super::events::{ClientFrame, TypingState};
use super::extract::ApiJson;
use super::files::{read_upload, Upload, UploadFields};
use super::visitor::{ChoiceRequest, MessageRequest, StartRequest};
use crate::config::{ChannelLimits, FilesConfig};
use crate::domain::{text, ClientMessageId, Email, MessageBody, VisitorName};
use crate::engine::NewVisitor;
use crate::files::name::{DANGEROUS_EXTENSIONS, MAX_NAME_CHARS};
use crate::files::{Denylist, FileStore, Files, PendingFile, StorageKey, StoredBytes, UrlSigner};

/// The JSON bodies visitors post.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BodyKind {
    /// `POST /channels/{key}/conversations`.
    Start,
    /// `POST /conversations/{id}/messages`.
    Message,
    /// `POST /conversations/{id}/choice`.
    Choice,
}

/// What a body became once validated.
#[derive(Debug)]
pub enum Accepted {
    Visitor(NewVisitor),
    Message(ClientMessageId, MessageBody),
    /// The option id, checked by the engine against the channel's options.
    Choice(String),
}

/// The default channel's message limit, which bodies are held to.
pub fn max_message_chars() -> usize {
    ChannelLimits::default().max_message_chars
}

/// Reads `body` as a request of `kind` and validates it. Invariants: a
/// refusal is a 400 or 422 with a JSON body, never a server error; what is
/// accepted is non-empty, within its limits and free of the characters
/// `domain::text` drops (and `page_url` an http(s) URL).
pub fn visitor_body(kind: BodyKind, body: &[u8]) -> Result<ApiResult<Accepted>, String> {
    let accepted = match kind {
        BodyKind::Start => ApiJson::<StartRequest>::from_bytes(body)
            .and_then(|request| request.validate(None))
            .map(Accepted::Visitor),
        BodyKind::Message => ApiJson::<MessageRequest>::from_bytes(body)
            .and_then(|request| request.validate(max_message_chars()))
            .map(|(id, body)| Accepted::Message(id, body)),
        BodyKind::Choice => ApiJson::<ChoiceRequest>::from_bytes(body)
            .map(|request| Accepted::Choice(request.option_id)),
    };
    match &accepted {
        Ok(Accepted::Visitor(visitor)) => check_visitor(visitor)?,
        Ok(Accepted::Message(id, body)) => check_message(id, body)?,
        Ok(Accepted::Choice(_)) => {}
        Err(e) => check_refusal(e, &[400, 422])?,
    }
    Ok(accepted)
}

fn check_visitor(visitor: &NewVisitor) -> Result<(), String> {
    one_line("name", visitor.name.as_str(), VisitorName::MAX_CHARS)?;
    one_line("email", visitor.email.as_str(), Email::MAX_CHARS)?;
    if !visitor.email.as_str().contains('@') {
        return Err(format!("an e-mail without @: {:?}", visitor.email));
    }
    if let Some(url) = &visitor.page_url {
        let url = url.as_str();
        if !(url.starts_with("http://") || url.starts_with("https://")) {
            return Err(format!("a page URL that is not http(s): {url:?}"));
        }
        if url.chars().any(text::unsafe_in_one_line) {
            return Err(format!("a page URL with a hidden character: {url:?}"));
        }
    }
    Ok(())
}

fn check_message(id: &ClientMessageId, body: &MessageBody) -> Result<(), String> {
    let id = id.as_str();
    if id.is_empty() || id.len() > 64 || !id.bytes().all(|b| b.is_ascii_graphic()) {
        return Err(format!("an invalid client id accepted: {id:?}"));
    }
    let text = body.as_str();
    if text.trim().is_empty() || text.trim() != text {
        return Err(format!("an empty or untrimmed message accepted: {text:?}"));
    }
    if text.chars().count() > max_message_chars() {
        return Err(format!("a message over the limit: {} chars", text.len()));
    }
    if let Some(c) = text.chars().find(|c| text::unsafe_in_text(*c)) {
        return Err(format!("a message keeps {c:?}"));
    }
    Ok(())
}

/// A one-line field: non-empty, trimmed, at most `limit` characters, and
/// none that `domain::text` drops from one-line fields.
fn one_line(field: &str, value: &str, limit: usize) -> Result<(), String> {
    if value.is_empty() || value.trim() != value || value.chars().count() > limit {
        return Err(format!("{field} {value:?} is empty, untrimmed or too long"));
    }
    if let Some(c) = value.chars().find(|c| text::unsafe_in_one_line(*c)) {
        return Err(format!("{field} {value:?} keeps {c:?}"));
    }
    Ok(())
}

/// A refusal is one of `statuses` and has its stable code.
fn check_refusal(e: &ApiError, statuses: &[u16]) -> Result<(), String> {
    if !statuses.contains(&e.status.as_u16()) || e.code.is_empty() {
        return Err(format!(
            "visitor input refused with {} {}",
            e.status, e.code
        ));
    }
    Ok(())
}

/// A WebSocket text frame from the widget, as the session acts on it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Frame {
    Auth {
        token: String,
        since: i64,
    },
    Typing {
        composing: bool,
    },
    Read {
        up_to_seq: i64,
    },
    /// A message to store (checked as the POST's body is: `visitor_body`).
    Message {
        client_id: String,
        body: String,
    },
    /// A `message` frame that did not parse, answered `invalid_json`.
    MalformedMessage {
        client_id: String,
    },
}

/// Reads a text frame; `None`: ignored (or, as the first frame, refused
/// with 4401). Invariant: an `auth` frame's `since` is never negative.
pub fn client_frame(text: &str) -> Result<Option<Frame>, String> {
    let frame = match ClientFrame::parse(text) {
        Ok(ClientFrame::Auth { token, since }) => Frame::Auth { token, since },
        Ok(ClientFrame::Typing { state }) => Frame::Typing {
            composing: state == TypingState::Composing,
        },
        Ok(ClientFrame::Read { up_to_seq }) => Frame::Read { up_to_seq },
        Ok(ClientFrame::Message(MessageRequest { client_id, body })) => {
            Frame::Message { client_id, body }
        }
        Err(_) => match ClientFrame::malformed_message_id(text) {
            Some(client_id) => Frame::MalformedMessage { client_id },
            None => return Ok(None),
        },
    };
    if matches!(frame, Frame::Auth { since, .. } if since < 0) {
        return Err(format!("a negative since: {frame:?}"));
    }
    Ok(Some(frame))
}

/// A file the upload form accepted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Uploaded {
    pub name: String,
    pub size: u64,
    pub media_type: String,
    pub batch: Option<String>,
    pub client_id: Option<String>,
}

/// Reads `chunks` as a multipart body with this `content_type`, as the
/// upload handler does, for a file of at most `limit` bytes. Invariants: a
/// refusal is the client's fault (4xx), never a server error; an accepted
/// file is non-empty and within the limit, all of its bytes reached the
/// store, its type is not denied, and its name is short, has no path, no
/// hidden character, no reserved character, no dangerous extension, and
/// makes a valid `Content-Disposition`.
pub fn upload(
    content_type: &str,
    chunks: Vec<Bytes>,
    limit: u64,
) -> Result<ApiResult<Uploaded>, String> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .build()
        .map_err(|e| e.to_string())?;
    runtime.block_on(upload_async(content_type, chunks, limit))
}

async fn upload_async(
    content_type: &str,
    chunks: Vec<Bytes>,
    limit: u64,
) -> Result<ApiResult<Uploaded>, String> {
    let Ok(content_type) = HeaderValue::from_str(content_type) else {
        // hyper refuses such a header before any handler.
        return Ok(Err(refused_header()));
    };
    let stream = futures::stream::iter(chunks.into_iter().map(Ok::<_, io::Error>));
    let mut request = Request::new(Body::from_stream(stream));
    request
        .headers_mut()
        .insert(header::CONTENT_TYPE, content_type);
    let written = Arc::new(AtomicU64::new(0));
    let files = null_files(written.clone());
    let denylist = Denylist::new(&FilesConfig::default().denied_types);
    let read = async {
        let mut multipart = Multipart::from_request(request, &())
            .await
            .map_err(|_| refused_header())?;
        let mut fields = UploadFields::default();
        let no_answer = |_: &UploadFields| async { ApiResult::<Option<()>>::Ok(None) };
        match read_upload(&mut multipart, &files, limit, &mut fields, no_answer).await? {
            Upload::Received(file) => Ok((file, fields)),
            Upload::Answered(()) => Err(ApiError::internal()),
        }
    };
    let (file, fields) = match read.await {
        Ok(read) => read,
        Err(e) => {
            check_refusal(&e, &[400, 413, 415, 422])?;
            return Ok(Err(e));
        }
    };
    let uploaded = Uploaded {
        name: file.name.as_str().to_owned(),
        size: file.size,
        media_type: file.sniffed.media_type.clone(),
        batch: fields.batch.map(|b| b.as_str().to_owned()),
        client_id: fields.client_id.map(String::from),
    };
    if uploaded.size == 0 || uploaded.size > limit {
        return Err(format!("a file of {} bytes accepted", uploaded.size));
    }
    if written.load(Ordering::Relaxed) != uploaded.size {
        return Err(format!(
            "the store got {written:?} of {} bytes",
            uploaded.size
        ));
    }
    if denylist.denies(&uploaded.media_type) {
        return Err(format!("a denied type accepted: {}", uploaded.media_type));
    }
    check_file_name(&uploaded.name)?;
    if HeaderValue::from_str(&file.name.content_disposition()).is_err() {
        return Err(format!("{:?} makes an invalid header", uploaded.name));
    }
    Ok(Ok(uploaded))
}

fn refused_header() -> ApiError {
    ApiError::new(
        axum::http::StatusCode::BAD_REQUEST,
        "invalid_upload",
        "not multipart",
    )
}

/// What `DisplayName::for_content` promises about a name it made: a
/// clean one ([`check_clean_name`]) without a dangerous extension.
pub fn check_file_name(name: &str) -> Result<(), String> {
    check_clean_name(name)?;
    let extension = name.rsplit_once('.').map(|(_, e)| e.to_lowercase());
    if extension.is_some_and(|e| DANGEROUS_EXTENSIONS.contains(&e.as_str())) {
        return Err(format!("file name {name:?}: a dangerous extension"));
    }
    Ok(())
}

/// What `DisplayName::sanitize` promises: short, no path, no hidden or
/// reserved character, no leading or trailing dot or space.
pub fn check_clean_name(name: &str) -> Result<(), String> {
    let broken = |why: &str| Err(format!("file name {name:?}: {why}"));
    if name.is_empty() || name.chars().count() > MAX_NAME_CHARS {
        return broken("empty or too long");
    }
    if name.contains(['/', '\\', '<', '>', ':', '"', '|', '?', '*']) {
        return broken("a path or reserved character");
    }
    if name
        .chars()
        .any(|c| text::unsafe_in_one_line(c) || matches!(c, '\u{200C}' | '\u{200D}'))
    {
        return broken("a hidden character");
    }
    if name.starts_with(['.', ' ']) || name.ends_with(['.', ' ']) {
        return broken("a leading or trailing dot or space");
    }
    Ok(())
}

/// File handling over a store that counts what it is given and keeps
/// nothing (nothing here commits).
fn null_files(written: Arc<AtomicU64>) -> Files {
    Files::new(
        Arc::new(NullStore { written }),
        UrlSigner::with_key(&[7; 32]),
        Denylist::new(&FilesConfig::default().denied_types),
        Url::parse("https://chat.example/").expect("a valid URL"),
        60,
        0,
    )
}

struct NullStore {
    written: Arc<AtomicU64>,
}

struct NullPending {
    written: Arc<AtomicU64>,
}

#[async_trait]
impl PendingFile for NullPending {
    async fn write(&mut self, chunk: &[u8]) -> io::Result<()> {
        self.written
            .fetch_add(chunk.len() as u64, Ordering::Relaxed);
        Ok(())
    }

    async fn commit(self: Box<Self>, _: &StorageKey) -> io::Result<()> {
        Err(io::Error::other("the null store keeps nothing"))
    }
}

#[async_trait]
impl FileStore for NullStore {
    async fn begin(&self) -> io::Result<Box<dyn PendingFile>> {
        Ok(Box::new(NullPending {
            written: self.written.clone(),
        }))
    }

    async fn open(&self, _: &StorageKey) -> io::Result<Option<StoredBytes>> {
        Ok(None)
    }

    async fn delete(&self, _: &StorageKey) -> io::Result<()> {
        Ok(())
    }

    async fn remove_partials(&self) -> io::Result<usize> {
        Ok(0)
    }

    async fn available_space(&self) -> io::Result<u64> {
        Ok(u64::MAX)
    }
}

#[cfg(test)]
mod tests {
    //! The fuzz targets' properties on every `cargo test`: random bytes,
    //! inputs built from the characters and shapes that matter, and
    //! round trips of valid input.

    use proptest::prelude::*;
    use serde_json::json;

    use super::*;
    use crate::files::{sniff, DisplayName};

    /// Strings rich in what visitor text must not smuggle: controls,
    /// bidi controls, invisibles, separators, quotes, path characters.
    fn nasty() -> impl Strategy<Value = String> + Clone {
        let piece = prop_oneof![
            "[a-zA-Z0-9 .@/:]{0,8}",
            Just("\n".to_owned()),
            Just("\r\n\t\0\u{7f}\u{85}".to_owned()),
            Just("\u{202E}\u{2066}\u{2069}\u{200E}\u{061C}".to_owned()),
            Just("\u{200B}\u{2060}\u{FEFF}\u{3164}\u{180E}".to_owned()),
            Just("\u{200D}\u{200C}\u{2028}\u{2029}".to_owned()),
            Just("\"\\<>|?*%".to_owned()),
            Just("https://shop.example/".to_owned()),
            Just("jane@example.com".to_owned()),
            any::<String>(),
        ];
        prop::collection::vec(piece, 0..6).prop_map(|p| p.concat())
    }

    fn kinds() -> impl Strategy<Value = BodyKind> {
        prop::sample::select(vec![BodyKind::Start, BodyKind::Message, BodyKind::Choice])
    }

    fn body_ok(kind: BodyKind, body: &[u8]) -> Result<ApiResult<Accepted>, TestCaseError> {
        visitor_body(kind, body).map_err(TestCaseError::fail)
    }

    fn multipart(parts: &[(String, Option<String>, Vec<u8>)]) -> Vec<u8> {
        let mut body = Vec::new();
        for (name, file_name, content) in parts {
            body.extend_from_slice(b"--XyZ\r\nContent-Disposition: form-data; name=\"");
            body.extend_from_slice(name.as_bytes());
            body.push(b'"');
            if let Some(file_name) = file_name {
                body.extend_from_slice(b"; filename=\"");
                body.extend_from_slice(file_name.replace(['"', '\r', '\n'], "").as_bytes());
                body.push(b'"');
            }
            body.extend_from_slice(b"\r\n\r\n");
            body.extend_from_slice(content);
            body.extend_from_slice(b"\r\n");
        }
        body.extend_from_slice(b"--XyZ--\r\n");
        body
    }

    fn chunked(body: &[u8], size: usize) -> Vec<Bytes> {
        body.chunks(size.max(1))
            .map(Bytes::copy_from_slice)
            .collect()
    }

    const CONTENT_TYPE: &str = "multipart/form-data; boundary=XyZ";

    fn contents() -> impl Strategy<Value = Vec<u8>> {
        prop_oneof![
            Just(b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR".to_vec()),
            Just(b"%PDF-1.7\n%\xe2\xe3\xcf\xd3\n".to_vec()),
            Just(b"<!DOCTYPE html><html><body>x".to_vec()),
            Just(b"<svg onload=alert(1)>".to_vec()),
            Just(b"MZ\x90\0\x03\0\0\0\x04\0\0\0\xff\xff\0\0".to_vec()),
            Just(b"\xD0\xCF\x11\xE0\xA1\xB1\x1A\xE1\0\0\0\0".to_vec()),
            Just(b"#!/bin/sh\nrm -rf /\n".to_vec()),
            Just(Vec::new()),
            "[a-z \n]{1,64}".prop_map(String::into_bytes),
            prop::collection::vec(any::<u8>(), 1..256),
        ]
    }

    fn file_names() -> impl Strategy<Value = String> {
        prop_oneof![
            nasty(),
            Just("invoice.html".to_owned()),
            Just("tricky\u{202E}fdp.html".to_owned()),
            Just("../../etc/passwd".to_owned()),
            Just("photo.JPEG".to_owned()),
            Just("report.pdf.exe".to_owned()),
            Just(" .. ".to_owned()),
            "[a-z]{1,200}\\.(txt|pdf|png|svg|js|bat|docx)",
            // Long enough to be cut, with an extension too long to keep.
            "[a-z]{1,10}(\\.html|\\.| ){1,3}[a-z. ]{130,150}\\.[a-z0-9]{17,30}",
        ]
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(128))]

        #[test]
        fn random_bodies_keep_the_invariants(
            kind in kinds(),
            body in prop::collection::vec(any::<u8>(), 0..256),
        ) {
            let _ = body_ok(kind, &body)?;
        }

        #[test]
        fn built_bodies_keep_the_invariants(
            kind in kinds(),
            a in nasty(), b in nasty(), c in nasty(), d in prop::option::of(nasty()),
        ) {
            let bodies = [
                json!({ "name": a, "email": b, "page_url": c, "language": d }),
                json!({ "name": a, "email": "jane@example.com", "page_url": d }),
                json!({ "client_id": a, "body": b }),
                json!({ "client_id": "c-1", "body": c }),
                json!({ "option_id": a }),
            ];
            for body in bodies {
                let _ = body_ok(kind, body.to_string().as_bytes())?;
            }
        }

        /// What a visitor rightly types is taken as typed.
        #[test]
        fn valid_visitors_are_accepted_as_typed(
            name in "[A-Za-zÀ-ÿ]{1,20}( [A-Za-zÀ-ÿ'-]{1,20}){0,3}",
            email in "[a-z0-9_-]{1,16}@[a-z0-9]([a-z0-9-]{0,14}[a-z0-9])?\\.(com|fr|example)",
            url in prop::option::of("https://[a-z]{1,12}\\.example/[a-z0-9/_-]{0,30}"),
        ) {
            let body = json!({ "name": name, "email": email, "page_url": url });
            let got = body_ok(BodyKind::Start, body.to_string().as_bytes())?;
            let Ok(Accepted::Visitor(visitor)) = got else {
                return Err(TestCaseError::fail(format!("refused: {got:?}")));
            };
            prop_assert_eq!(visitor.name.as_str(), name.as_str());
            prop_assert_eq!(visitor.email.as_str(), email.as_str());
            prop_assert_eq!(visitor.page_url.map(|u| u.into_string()), url);
        }

        #[test]
        fn valid_messages_are_accepted_as_typed(
            client_id in "[!-~]{1,64}",
            text in "[^\\p{C}\\s]([^\\p{C}]|\n|\t){0,200}[^\\p{C}\\s]",
        ) {
            let safe: String = text.chars().filter(|c| !text::unsafe_in_text(*c)).collect();
            prop_assume!(safe == text && safe.trim() == safe);
            let body = json!({ "client_id": client_id, "body": text });
            let got = body_ok(BodyKind::Message, body.to_string().as_bytes())?;
            let Ok(Accepted::Message(id, body)) = got else {
                return Err(TestCaseError::fail(format!("refused: {got:?}")));
            };
            prop_assert_eq!(id.as_str(), client_id.as_str());
            prop_assert_eq!(body.as_str(), text.as_str());
        }

        #[test]
        fn random_frames_keep_the_invariants(text in nasty()) {
            client_frame(&text).map_err(TestCaseError::fail)?;
        }

        #[test]
        fn valid_frames_round_trip(token in nasty(), since in any::<i64>(), seq in any::<i64>()) {
            let frame = |value: serde_json::Value| {
                client_frame(&value.to_string()).map_err(TestCaseError::fail)
            };
            prop_assert_eq!(
                frame(json!({ "type": "auth", "token": token, "since": since }))?,
                Some(Frame::Auth { token: token.clone(), since: since.max(0) })
            );
            prop_assert_eq!(
                frame(json!({ "type": "auth", "token": token }))?,
                Some(Frame::Auth { token: token.clone(), since: 0 })
            );
            prop_assert_eq!(
                frame(json!({ "type": "typing", "state": "composing" }))?,
                Some(Frame::Typing { composing: true })
            );
            prop_assert_eq!(
                frame(json!({ "type": "read", "up_to_seq": seq }))?,
                Some(Frame::Read { up_to_seq: seq })
            );
            prop_assert_eq!(frame(json!({ "type": "typing", "state": token }))?, None);
            prop_assert_eq!(
                frame(json!({ "type": "message", "client_id": token, "body": token }))?,
                Some(Frame::Message { client_id: token.clone(), body: token.clone() })
            );
            prop_assert_eq!(
                frame(json!({ "type": "message", "client_id": token }))?,
                Some(Frame::MalformedMessage { client_id: token.clone() })
            );
            prop_assert_eq!(frame(json!({ "type": "message", "body": token }))?, None);
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]

        #[test]
        fn random_multipart_bodies_keep_the_invariants(
            body in prop::collection::vec(any::<u8>(), 0..512),
            chunk in 1usize..64,
        ) {
            let _ = upload(CONTENT_TYPE, chunked(&body, chunk), 1024).map_err(TestCaseError::fail)?;
        }

        #[test]
        fn built_uploads_keep_the_invariants(
            name in file_names(),
            content in contents(),
            batch in prop::option::of(nasty()),
            client_id in prop::option::of("[!-~]{1,70}"),
            chunk in 1usize..300,
            limit in 1u64..300,
        ) {
            let mut parts = Vec::new();
            if let Some(batch) = batch {
                parts.push(("batch_id".to_owned(), None, batch.into_bytes()));
            }
            if let Some(id) = client_id {
                parts.push(("client_id".to_owned(), None, id.into_bytes()));
            }
            parts.push(("file".to_owned(), Some(name), content));
            let body = multipart(&parts);
            let _ = upload(CONTENT_TYPE, chunked(&body, chunk), limit).map_err(TestCaseError::fail)?;
        }

        /// A plain text file with a plain name arrives as sent.
        #[test]
        fn plain_uploads_are_accepted(
            stem in "[a-z][a-z0-9_-]{0,30}",
            content in "[a-z][a-z \n]{0,200}",
            chunk in 1usize..100,
        ) {
            let parts = [("file".to_owned(), Some(format!("{stem}.txt")), content.clone().into_bytes())];
            let body = multipart(&parts);
            let got = upload(CONTENT_TYPE, chunked(&body, chunk), 1024).map_err(TestCaseError::fail)?;
            let Ok(file) = got else {
                return Err(TestCaseError::fail(format!("refused: {got:?}")));
            };
            prop_assert_eq!(file.name, format!("{stem}.txt"));
            prop_assert_eq!(file.size, content.len() as u64);
            prop_assert_eq!(file.media_type, "text/plain");
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(512))]

        #[test]
        fn display_names_keep_their_promises(
            raw in prop::option::of(file_names()),
            sniffed in prop::option::of(prop::sample::select(vec!["txt", "png", "pdf", "jpg", "svg", "exe", "msi", "html", ""])),
        ) {
            if let Ok(name) = DisplayName::for_content(raw.as_deref(), sniffed) {
                check_file_name(name.as_str()).map_err(TestCaseError::fail)?;
            }
            check_clean_name(DisplayName::sanitize(raw.as_deref().unwrap_or("")).as_str())
                .map_err(TestCaseError::fail)?;
        }

        #[test]
        fn sniffing_never_panics(head in prop::collection::vec(any::<u8>(), 0..600), complete in any::<bool>()) {
            let sniffed = sniff::sniff(&head, complete);
            prop_assert!(!sniffed.media_type.is_empty());
        }
    }
}
