//! The conversation event stream (WebSocket).
//!
//! The Origin is checked at the handshake; the token comes in the first
//! frame (browsers cannot set headers on a WebSocket, and URLs end up in
//! logs). The session then replays every durable event after the client's
//! `since` and follows live signals from the hub (which hears every node's
//! commits), reading events from the store each time, so the stream has no
//! gap and no duplicate whatever the timing of reconnects.
//!
//! A browser cannot read the status of a refused handshake, so a refused
//! origin or an unknown conversation is upgraded and then closed with 4403
//! or 4404, which the widget takes as final; requests that are not
//! upgrades get the HTTP 403 / 404. Upgrades are rate limited per client
//! address (HTTP 429, before the upgrade; the widget backs off).
//!
//! The first frame must come within 10 s (else close 4408); a bad token
//! closes 4401, a database that cannot check it 1013 (try again later). Frames and messages are capped at the largest channel's
//! message length (×4 bytes of UTF-8, plus JSON room), checked on the frame
//! header, so a bigger frame closes 1009 before its payload is read. At
//! most `limits.websockets_per_conversation` authenticated sockets follow
//! one conversation: one more closes the oldest with 4409 (a visitor's
//! newest tab is the one they look at; the widget reconnects a 4409 tab
//! only when it is shown again). The server pings at most every 25 s; a
//! socket silent (no pong, no frame) for `server.websocket_idle_timeout_secs`
//! is closed, and one whose write waits longer than
//! `server.websocket_write_timeout_secs` (a client that stopped reading) is
//! dropped. Shutdown closes with 1001. Visitor typing is forwarded to the
//! agent; `read` frames are accepted and only logged for now.
//!
//! A visitor may send a message on its socket instead of a POST (issue 15:
//! one frame instead of an HTTP request and a token read). The frame
//! `{"type":"message","client_id","body"}` passes the POST's own checks
//! (`visitor::admit_message`: length, then the conversation's rate) and is
//! stored by the engine like a POST's; the answer comes after the commit,
//! `message_ack` with the message's `seq` and `created` (false: that
//! `client_id` was stored before, and `seq` is the first copy's), or
//! `message_error` with the REST error's code, message and extras
//! (`ApiError::into_body`). Frames are handled one at a time, in order, so
//! a socket's answers come in the order of its messages; the message's own
//! `message` event follows its hub signal and may reach the socket before
//! or after the ack. A message frame that does not parse is answered
//! `invalid_json` when its `client_id` can be read, else ignored like any
//! unknown frame. Bodies and tokens are never logged.

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::extract::ws::rejection::WebSocketUpgradeRejection;
use axum::extract::ws::{CloseFrame, Message, Utf8Bytes, WebSocket, WebSocketUpgrade};
use axum::extract::{Path, State};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Extension, Router};
use serde::Deserialize;
use serde_json::json;
use tokio::sync::broadcast::error::RecvError;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tracing::{debug, info_span, warn, Instrument};

use super::client::ClientAddr;
use super::error::ApiError;
use super::extract::MaybeOrigin;
use super::visitor::{admit_message, MessageRequest};
use super::ApiState;
use crate::config::Config;
use crate::domain::{ConversationId, VisitorToken};
use crate::engine::{EngineError, Signal};

/// Close codes the widget acts on.
pub mod close_code {
    pub const GOING_AWAY: u16 = 1001;
    pub const MESSAGE_TOO_BIG: u16 = 1009;
    /// The database is unavailable: reconnect later (RFC 6455's registry).
    pub const TRY_AGAIN_LATER: u16 = 1013;
    pub const UNAUTHORIZED: u16 = 4401;
    pub const FORBIDDEN: u16 = 4403;
    pub const UNKNOWN_CONVERSATION: u16 = 4404;
    pub const AUTH_TIMEOUT: u16 = 4408;
    /// A newer socket of the same conversation took this one's place.
    pub const SUPERSEDED: u16 = 4409;
}

const AUTH_TIMEOUT: Duration = Duration::from_secs(10);
const HEARTBEAT: Duration = Duration::from_secs(25);
const PAGE: i64 = 500;
/// Room for a client frame's JSON around its text.
const FRAME_OVERHEAD: usize = 1024;
/// Each socket's read buffer. tungstenite allocates 128 KiB by default for
/// every socket, most of what an idle visitor costs (issue 15); a
/// visitor's frames are small (auth, typing and read marks are under
/// 200 bytes), and the buffer grows for a larger one (a long message) up
/// to the frame limit. Every idle socket holds this much: 4 KiB was 3 KiB
/// more per idle session than 1 KiB, and 1 KiB was heaptrack's largest
/// allocation per session after the session task itself.
const READ_BUFFER: usize = 256;

/// The WebSocket limits, from `[server]` and `[limits]`.
#[derive(Debug, Clone, Copy)]
pub struct SocketLimits {
    pub idle_timeout: Duration,
    pub write_timeout: Duration,
    pub per_conversation: usize,
}

impl SocketLimits {
    pub fn from_config(config: &Config) -> SocketLimits {
        SocketLimits {
            idle_timeout: Duration::from_secs(config.server.websocket_idle_timeout_secs),
            write_timeout: Duration::from_secs(config.server.websocket_write_timeout_secs),
            per_conversation: config.limits.websockets_per_conversation,
        }
    }

    /// How often the server pings: every 25 s, and twice within the idle
    /// timeout.
    fn heartbeat(&self) -> Duration {
        HEARTBEAT.min(self.idle_timeout / 2)
    }
}

/// A socket's number and the token that tells it to close.
type Seats = VecDeque<(u64, CancellationToken)>;

/// The open, authenticated sockets of each conversation, oldest first.
#[derive(Clone)]
pub struct Sockets {
    limits: SocketLimits,
    open: Arc<Mutex<HashMap<ConversationId, Seats>>>,
    next: Arc<AtomicU64>,
}

impl Sockets {
    pub fn new(limits: SocketLimits) -> Sockets {
        Sockets {
            limits,
            open: Arc::default(),
            next: Arc::default(),
        }
    }

    /// Counts a socket of `id`; past the limit the oldest is told to close.
    fn join(&self, id: ConversationId) -> SocketSeat<'_> {
        let seat = self.next.fetch_add(1, Ordering::Relaxed);
        let superseded = CancellationToken::new();
        let mut open = self.open.lock().unwrap_or_else(|e| e.into_inner());
        let sockets = open.entry(id).or_default();
        sockets.push_back((seat, superseded.clone()));
        while sockets.len() > self.limits.per_conversation {
            if let Some((_, oldest)) = sockets.pop_front() {
                oldest.cancel();
            }
        }
        SocketSeat {
            sockets: self,
            id,
            seat,
            superseded,
        }
    }
}

/// A socket's place among its conversation's; freed when dropped.
struct SocketSeat<'a> {
    sockets: &'a Sockets,
    id: ConversationId,
    seat: u64,
    /// Cancelled when a newer socket takes this place.
    superseded: CancellationToken,
}

impl Drop for SocketSeat<'_> {
    fn drop(&mut self) {
        let mut open = (self.sockets.open.lock()).unwrap_or_else(|e| e.into_inner());
        if let Some(sockets) = open.get_mut(&self.id) {
            sockets.retain(|(seat, _)| *seat != self.seat);
            if sockets.is_empty() {
                open.remove(&self.id);
            }
        }
    }
}

/// The connection's place under the server's connection caps, put in each
/// request's extensions: a WebSocket keeps it until the session ends, so
/// open sockets count as connections.
#[derive(Clone)]
pub struct HeldConnection(pub Arc<dyn std::any::Any + Send + Sync>);

pub fn router(state: ApiState) -> Router {
    Router::new()
        .route("/api/v1/conversations/{id}/events", get(events))
        .with_state(state)
}

/// A text frame from the widget.
#[derive(Debug, Deserialize, PartialEq, Eq)]
#[serde(tag = "type", rename_all = "snake_case")]
pub(super) enum ClientFrame {
    Auth {
        token: String,
        #[serde(default)]
        since: i64,
    },
    Typing {
        state: TypingState,
    },
    Read {
        up_to_seq: i64,
    },
    /// A message to store, as the POST's body.
    Message(MessageRequest),
}

/// Enough of a `message` frame that did not parse to answer it: its
/// `client_id`.
#[derive(Deserialize)]
struct MessageFrameId {
    #[serde(rename = "type")]
    kind: String,
    client_id: String,
}

#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub(super) enum TypingState {
    Composing,
    Paused,
}

impl ClientFrame {
    /// Reads one text frame; an `auth` frame's `since` is at least 0.
    pub(super) fn parse(text: &str) -> Result<ClientFrame, serde_json::Error> {
        Ok(match serde_json::from_str(text)? {
            ClientFrame::Auth { token, since } => ClientFrame::Auth {
                token,
                since: since.max(0),
            },
            other => other,
        })
    }

    /// The `client_id` of a `message` frame that [`parse`](Self::parse)
    /// refused (no body, a body that is not a string), if it has one.
    pub(super) fn malformed_message_id(text: &str) -> Option<String> {
        serde_json::from_str::<MessageFrameId>(text)
            .ok()
            .filter(|frame| frame.kind == "message")
            .map(|frame| frame.client_id)
    }
}

async fn events(
    State(state): State<ApiState>,
    Path(id): Path<String>,
    MaybeOrigin(origin): MaybeOrigin,
    client: ClientAddr,
    held: Option<Extension<HeldConnection>>,
    upgrade: Result<WebSocketUpgrade, WebSocketUpgradeRejection>,
) -> Response {
    if let Err(e) = state.limiters.websocket_upgrade(client) {
        return e.into_response();
    }
    let admitted = admit(&state, &id, origin.as_deref()).await;
    let (upgrade, admitted) = match (upgrade, admitted) {
        (Ok(upgrade), Ok(id)) => (upgrade, Ok(id)),
        (Ok(upgrade), Err(Refusal::Close(_, code))) => (upgrade, Err(code)),
        (_, Err(Refusal::Close(e, _) | Refusal::Http(e))) => return e.into_response(),
        (Err(rejection), Ok(_)) => return rejection.into_response(),
    };
    // A frame carries at most one message of the channel's limit (4 bytes
    // a character at worst) plus its JSON; a refused socket only closes.
    let chars = match &admitted {
        Ok((_, chars)) => *chars,
        Err(_) => 0,
    };
    let max = chars.saturating_mul(4).saturating_add(FRAME_OVERHEAD);
    // Every event is flushed as it is sent, so the write buffer never
    // batches: 0 writes each frame at once instead of keeping room for it.
    let upgrade = upgrade
        .max_frame_size(max)
        .max_message_size(max)
        .read_buffer_size(READ_BUFFER)
        .write_buffer_size(0);
    match admitted.map(|(id, _)| id) {
        // The session runs in a task of its own: axum's upgrade task also
        // holds the handshake's state (the upgrade, the configuration,
        // the stream being wrapped) beside its callback's future for as
        // long as that runs, which every idle socket paid for (issue 15).
        Ok(id) => upgrade.on_upgrade(move |socket| {
            // Boxed: a future awaited inside another is stored in its
            // state as well (see `session`).
            let session = Box::pin(session(state, id, socket));
            let session = async move {
                session.await;
                drop(held);
            }
            .instrument(info_span!("websocket", conversation = %id, client = %client.ip));
            tokio::spawn(session);
            std::future::ready(())
        }),
        Err(code) => upgrade.on_upgrade(move |mut socket| async move {
            close(&mut socket, code, "refused", state.sockets.limits).await;
        }),
    }
}

/// Why a request for a conversation's stream is refused.
enum Refusal {
    /// Told to a WebSocket with a close code after the upgrade.
    Close(ApiError, u16),
    /// Answered with HTTP (the store failed: the widget should retry).
    Http(ApiError),
}

/// The conversation if it exists and `origin` may embed its channel, with
/// the channel's longest message in characters.
async fn admit(
    state: &ApiState,
    id: &str,
    origin: Option<&str>,
) -> Result<(ConversationId, usize), Refusal> {
    let unknown = || {
        let e = ApiError::from(EngineError::UnknownConversation);
        Refusal::Close(e, close_code::UNKNOWN_CONVERSATION)
    };
    let id = id.parse::<ConversationId>().map_err(|_| unknown())?;
    // The identity (cached) names the channel; nothing else is read.
    let identity = match state.engine.identity(id).await {
        Ok(identity) => identity,
        Err(EngineError::UnknownConversation) => return Err(unknown()),
        Err(e) => return Err(Refusal::Http(e.into())),
    };
    let channel = state.engine.channels().get(&identity.channel_key);
    match channel {
        Some(c) if origin.is_none_or(|o| c.allows_origin(o)) => {
            Ok((id, c.config.limits.max_message_chars))
        }
        _ => {
            let e = ApiError::origin_not_allowed();
            Err(Refusal::Close(e, close_code::FORBIDDEN))
        }
    }
}

async fn session(state: ApiState, id: ConversationId, mut socket: WebSocket) {
    let limits = state.sockets.limits;
    let (since, channel_key) = match Box::pin(authenticate(&state, id, &mut socket)).await {
        Ok(authenticated) => authenticated,
        Err(code) => {
            let reason = if code == close_code::TRY_AGAIN_LATER {
                "database unavailable"
            } else {
                "authentication failed"
            };
            close(&mut socket, code, reason, limits).await;
            return;
        }
    };
    let seat = state.sockets.join(id);
    metrics::gauge!("frontdesk_websocket_sessions").increment(1.0);
    let visitor = Visitor { id, channel_key };
    // Boxed, as the session is where it is spawned: each layer awaiting
    // the one under it inline also held a copy of its state (issue 15:
    // the spawned task was 4.3 KiB by heaptrack; boxed, it is 80 bytes,
    // the session 1.6 KiB and this loop 0.9 KiB, by `size_of_val`).
    let following = follow(&state, &visitor, &mut socket, since, &seat.superseded);
    let result = Box::pin(following).await;
    metrics::gauge!("frontdesk_websocket_sessions").decrement(1.0);
    match result {
        Ok(End::Close(code, reason)) => Box::pin(close(&mut socket, code, reason, limits)).await,
        Ok(End::ClientLeft) => {}
        Err(e) => debug!(error = %e, "websocket ended"),
    }
}

/// The conversation a socket follows, and its channel (whose limits its
/// messages are checked against).
struct Visitor {
    id: ConversationId,
    channel_key: String,
}

/// Waits for the auth frame; returns the client's `since` and the
/// conversation's channel.
async fn authenticate(
    state: &ApiState,
    id: ConversationId,
    socket: &mut WebSocket,
) -> Result<(i64, String), u16> {
    let frame = tokio::time::timeout(AUTH_TIMEOUT, socket.recv())
        .await
        .map_err(|_| close_code::AUTH_TIMEOUT)?;
    let text = match frame {
        Some(Ok(Message::Text(text))) => text,
        Some(Err(e)) if is_too_big(&e) => return Err(close_code::MESSAGE_TOO_BIG),
        _ => return Err(close_code::UNAUTHORIZED),
    };
    let Ok(ClientFrame::Auth { token, since }) = ClientFrame::parse(&text) else {
        return Err(close_code::UNAUTHORIZED);
    };
    let token = VisitorToken::from_presented(&token);
    match state.engine.authenticate(id, &token).await {
        Ok(Some(identity)) => Ok((since.max(0), identity.channel_key.clone())),
        // Not the token's fault: the widget reconnects (4401 is final).
        Err(EngineError::Store(e)) if e.is_unavailable() => Err(close_code::TRY_AGAIN_LATER),
        _ => Err(close_code::UNAUTHORIZED),
    }
}

/// Whether a read failed on a frame or message over the size limit.
/// tungstenite does not close the socket itself, and axum does not expose
/// its error type: the text is pinned by the `edge_limits` tests.
fn is_too_big(e: &axum::Error) -> bool {
    use std::error::Error;
    let mut error: Option<&dyn Error> = Some(e);
    while let Some(current) = error {
        if current.to_string().contains("Message too long") {
            return true;
        }
        error = current.source();
    }
    false
}

/// How a followed stream ends.
enum End {
    /// The client closed or went away.
    ClientLeft,
    /// The server closes with this code.
    Close(u16, &'static str),
}

/// Streams events until the client leaves, goes silent, is superseded by
/// a newer socket, or the server shuts down.
///
/// The work a frame or a signal starts (reading the store, storing a
/// message) runs in its own boxed future: inline, the largest of them
/// would size this loop's state, which every idle socket holds for its
/// whole life (7.6 KiB of an idle session's 12 KiB before, by heaptrack).
async fn follow(
    state: &ApiState,
    visitor: &Visitor,
    socket: &mut WebSocket,
    since: i64,
    superseded: &CancellationToken,
) -> Result<End, axum::Error> {
    let limits = state.sockets.limits;
    let id = visitor.id;
    // Subscribe before the catch-up read, so nothing committed in between
    // is missed: the next signal triggers a read from `last` anyway.
    let mut signals = state.engine.hub().subscribe(id);
    let mut last = since;
    if let Some(end) = Box::pin(send_events_after(state, id, socket, &mut last)).await? {
        return Ok(end);
    }
    // One timer for both the next ping and the silence limit (an
    // `Interval` beside a `Sleep` was a second timer and a boxed one, held
    // by every idle socket).
    let heartbeat = limits.heartbeat();
    let mut heard = Instant::now();
    let mut next_ping = heard + heartbeat;
    let timer = tokio::time::sleep_until(next_ping.min(heard + limits.idle_timeout));
    tokio::pin!(timer);
    loop {
        let due = next_ping.min(heard + limits.idle_timeout);
        if timer.deadline() != due {
            timer.as_mut().reset(due);
        }
        tokio::select! {
            signal = signals.recv() => match signal {
                Ok(Signal::Stored { seq, frame }) if seq == last + 1 => {
                    send(socket, Message::Text(frame.as_ref().into()), limits).await?;
                    last = seq;
                }
                Ok(Signal::Committed(seq) | Signal::Stored { seq, .. }) if seq > last => {
                    if let Some(end) = Box::pin(send_events_after(state, id, socket, &mut last)).await? {
                        return Ok(end);
                    }
                }
                Ok(Signal::Committed(_) | Signal::Stored { .. }) => {}
                Ok(Signal::Resync) | Err(RecvError::Lagged(_)) => {
                    if let Some(end) = Box::pin(send_events_after(state, id, socket, &mut last)).await? {
                        return Ok(end);
                    }
                }
                Ok(Signal::AgentTyping(composing)) => {
                    let state = if composing { "composing" } else { "paused" };
                    let frame = json!({ "type": "typing", "state": state }).to_string();
                    send(socket, Message::Text(frame.into()), limits).await?;
                }
                Err(RecvError::Closed) => return Ok(End::Close(close_code::GOING_AWAY, "server going away")),
            },
            frame = socket.recv() => {
                heard = Instant::now();
                match frame {
                    Some(Ok(Message::Text(text))) => {
                        if let Some(answer) = Box::pin(handle_client_frame(state, visitor, &text)).await {
                            send(socket, Message::Text(answer.into()), limits).await?;
                        }
                    }
                    Some(Ok(Message::Close(_))) | None => return Ok(End::ClientLeft),
                    Some(Ok(_)) => {}
                    Some(Err(e)) if is_too_big(&e) => {
                        return Ok(End::Close(close_code::MESSAGE_TOO_BIG, "frame too large"));
                    }
                    Some(Err(e)) => return Err(e),
                }
            },
            () = &mut timer => {
                let now = Instant::now();
                if now >= heard + limits.idle_timeout {
                    debug!("websocket silent: closing");
                    return Ok(End::Close(close_code::GOING_AWAY, "no pong"));
                }
                send(socket, Message::Ping(Default::default()), limits).await?;
                next_ping = now + heartbeat;
            }
            () = superseded.cancelled() => {
                return Ok(End::Close(close_code::SUPERSEDED, "opened in another tab"));
            }
            _ = state.shutdown.cancelled() => return Ok(End::Close(close_code::GOING_AWAY, "server going away")),
        }
    }
}

/// Sends one frame, giving up on a client that has not read for the
/// write timeout.
async fn send(
    socket: &mut WebSocket,
    message: Message,
    limits: SocketLimits,
) -> Result<(), axum::Error> {
    match tokio::time::timeout(limits.write_timeout, socket.send(message)).await {
        Ok(sent) => sent,
        Err(_) => Err(axum::Error::new(std::io::Error::new(
            std::io::ErrorKind::TimedOut,
            "websocket write timed out",
        ))),
    }
}

/// Acts on a frame after the auth one; returns the frame to answer with,
/// if any (a message's ack or error).
async fn handle_client_frame(state: &ApiState, visitor: &Visitor, text: &str) -> Option<String> {
    let id = visitor.id;
    match ClientFrame::parse(text) {
        Ok(ClientFrame::Typing { state: typing }) => {
            let composing = typing == TypingState::Composing;
            if let Err(e) = state.engine.visitor_typing(id, composing).await {
                warn!(error = %e, "typing not forwarded");
            }
        }
        Ok(ClientFrame::Read { up_to_seq }) => {
            debug!(up_to_seq, "visitor read messages");
        }
        Ok(ClientFrame::Message(request)) => {
            let client_id = request.client_id.clone();
            let stored = store_message(state, visitor, request).await;
            return Some(message_answer(&client_id, stored));
        }
        Ok(ClientFrame::Auth { .. }) => {}
        // Not the error's text: serde quotes the frame's values in it.
        Err(e) => match ClientFrame::malformed_message_id(text) {
            Some(client_id) => {
                debug!(kind = ?e.classify(), "refused a malformed message frame");
                let refused =
                    ApiError::invalid_json("The message frame needs a client_id and a body.");
                return Some(message_answer(&client_id, Err(refused)));
            }
            None => debug!(kind = ?e.classify(), "ignored an unknown client frame"),
        },
    }
    None
}

/// Checks and stores a message frame's message as the POST does; returns
/// its `seq` and whether it was new, once committed.
async fn store_message(
    state: &ApiState,
    visitor: &Visitor,
    request: MessageRequest,
) -> Result<(i64, bool), ApiError> {
    let (client_id, body) = admit_message(state, visitor.id, &visitor.channel_key, request)?;
    let (message, created) = state
        .engine
        .post_visitor_message(visitor.id, client_id, body)
        .await?;
    Ok((message.seq, created))
}

/// The `message_ack` or `message_error` frame answering the message
/// `client_id`.
fn message_answer(client_id: &str, stored: Result<(i64, bool), ApiError>) -> String {
    match stored {
        Ok((seq, created)) => json!({
            "type": "message_ack",
            "client_id": client_id,
            "seq": seq,
            "created": created,
        })
        .to_string(),
        Err(e) => {
            let mut frame = e.into_body();
            frame.insert("type".into(), json!("message_error"));
            frame.insert("client_id".into(), json!(client_id));
            serde_json::Value::Object(frame).to_string()
        }
    }
}

/// Sends the events after `last`, moving it on. When the store cannot be
/// read, the socket is closed with "try again later" (`Some`): the widget
/// reconnects from its last seq, where a socket kept open would miss what
/// it could not read until the next signal (and its token may have been
/// checked from the cache without the database).
async fn send_events_after(
    state: &ApiState,
    id: ConversationId,
    socket: &mut WebSocket,
    last: &mut i64,
) -> Result<Option<End>, axum::Error> {
    loop {
        let events = match state.engine.events_after(id, *last, PAGE).await {
            Ok(events) => events,
            Err(EngineError::Store(e)) if e.is_unavailable() => {
                warn!(conversation = %id, error = %e, "cannot read events: the widget will come back");
                let end = End::Close(close_code::TRY_AGAIN_LATER, "database unavailable");
                return Ok(Some(end));
            }
            Err(e) => {
                warn!(conversation = %id, error = %e, "cannot read events");
                return Ok(None);
            }
        };
        let page_len = events.len() as i64;
        for event in events {
            let frame = serde_json::to_string(&event).unwrap_or_default();
            send(socket, Message::Text(frame.into()), state.sockets.limits).await?;
            *last = event.seq;
        }
        if page_len < PAGE {
            return Ok(None);
        }
    }
}

/// Sends a close frame and waits (briefly) for the client's, so the
/// browser sees the code on a cleanly closed socket.
async fn close(socket: &mut WebSocket, code: u16, reason: &'static str, limits: SocketLimits) {
    let frame = CloseFrame {
        code,
        reason: Utf8Bytes::from_static(reason),
    };
    if let Err(e) = send(socket, Message::Close(Some(frame)), limits).await {
        debug!(error = %e, "close frame not sent");
        return;
    }
    let echo = async {
        while let Some(Ok(message)) = socket.recv().await {
            if matches!(message, Message::Close(_)) {
                break;
            }
        }
    };
    if tokio::time::timeout(limits.write_timeout, echo)
        .await
        .is_err()
    {
        debug!("no close frame back from the client");
    }
}
