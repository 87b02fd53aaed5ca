//! The conversation event stream (WebSocket).
//!
//! The Origin is checked at the handshake; the token comes in the first
//! frame (browsers cannot set headers on a WebSocket, and URLs end up in
//! logs). The session then replays every durable event after the client's
//! `since` and follows live signals from the hub, reading events from the
//! store each time, so the stream has no gap and no duplicate whatever the
//! timing of reconnects.
//!
//! The first frame must come within 10 s (else close 4408); a bad token
//! closes 4401. The server pings every 25 s and closes with 1001 on
//! shutdown. Visitor typing is forwarded to the agent; `read` frames are
//! accepted and only logged for now.

use std::time::Duration;

use axum::extract::ws::{CloseFrame, Message, Utf8Bytes, WebSocket, WebSocketUpgrade};
use axum::extract::{Path, State};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use serde::Deserialize;
use serde_json::json;
use tokio::sync::broadcast::error::RecvError;
use tracing::{debug, info_span, warn, Instrument};

use super::error::ApiError;
use super::extract::MaybeOrigin;
use super::ApiState;
use crate::domain::{ConversationId, VisitorToken};
use crate::engine::{EngineError, Signal};

/// Close codes the widget acts on.
pub mod close_code {
    pub const GOING_AWAY: u16 = 1001;
    pub const UNAUTHORIZED: u16 = 4401;
    pub const FORBIDDEN: u16 = 4403;
    pub const AUTH_TIMEOUT: u16 = 4408;
}

const AUTH_TIMEOUT: Duration = Duration::from_secs(10);
const HEARTBEAT: Duration = Duration::from_secs(25);
const PAGE: i64 = 500;

pub fn router(state: ApiState) -> Router {
    Router::new()
        .route("/api/v1/conversations/{id}/events", get(events))
        .with_state(state)
}

#[derive(Debug, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
enum ClientFrame {
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
}

#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
enum TypingState {
    Composing,
    Paused,
}

async fn events(
    State(state): State<ApiState>,
    Path(id): Path<String>,
    MaybeOrigin(origin): MaybeOrigin,
    upgrade: WebSocketUpgrade,
) -> Response {
    let Ok(id) = id.parse::<ConversationId>() else {
        return ApiError::from(EngineError::UnknownConversation).into_response();
    };
    let row = match state.engine.store().conversation(id).await {
        Ok(Some(row)) => row,
        Ok(None) => return ApiError::from(EngineError::UnknownConversation).into_response(),
        Err(e) => return ApiError::from(EngineError::from(e)).into_response(),
    };
    let allowed = state
        .engine
        .channels()
        .get(&row.channel_key)
        .is_some_and(|c| origin.as_deref().is_none_or(|o| c.allows_origin(o)));
    if !allowed {
        return ApiError::origin_not_allowed().into_response();
    }
    upgrade
        .max_message_size(16 * 1024)
        .on_upgrade(move |socket| {
            session(state, id, socket).instrument(info_span!("websocket", conversation = %id))
        })
}

async fn session(state: ApiState, id: ConversationId, mut socket: WebSocket) {
    let since = match authenticate(&state, id, &mut socket).await {
        Ok(since) => since,
        Err(code) => {
            close(&mut socket, code, "authentication failed").await;
            return;
        }
    };
    metrics::gauge!("frontdesk_websocket_sessions").increment(1.0);
    let result = follow(&state, id, &mut socket, since).await;
    metrics::gauge!("frontdesk_websocket_sessions").decrement(1.0);
    match result {
        Ok(Some(code)) => close(&mut socket, code, "server going away").await,
        Ok(None) => {}
        Err(e) => debug!(error = %e, "websocket ended"),
    }
}

/// Waits for the auth frame; returns the client's `since`.
async fn authenticate(
    state: &ApiState,
    id: ConversationId,
    socket: &mut WebSocket,
) -> Result<i64, u16> {
    let frame = tokio::time::timeout(AUTH_TIMEOUT, socket.recv())
        .await
        .map_err(|_| close_code::AUTH_TIMEOUT)?;
    let Some(Ok(Message::Text(text))) = frame else {
        return Err(close_code::UNAUTHORIZED);
    };
    let Ok(ClientFrame::Auth { token, since }) = serde_json::from_str(&text) else {
        return Err(close_code::UNAUTHORIZED);
    };
    let token = VisitorToken::from_presented(&token);
    match state.engine.authenticate(id, &token).await {
        Ok(Some(_)) => Ok(since.max(0)),
        _ => Err(close_code::UNAUTHORIZED),
    }
}

/// Streams events until the client leaves or the server shuts down
/// (then returns the close code to send).
async fn follow(
    state: &ApiState,
    id: ConversationId,
    socket: &mut WebSocket,
    since: i64,
) -> Result<Option<u16>, axum::Error> {
    // Subscribe before the catch-up read, so nothing committed in between
    // is missed: the next signal triggers a read from `last` anyway.
    let mut signals = state.engine.hub().subscribe(id);
    let mut last = since;
    send_events_after(state, id, socket, &mut last).await?;
    let mut heartbeat = tokio::time::interval(HEARTBEAT);
    heartbeat.tick().await;
    loop {
        tokio::select! {
            signal = signals.recv() => match signal {
                Ok(Signal::Committed(seq)) if seq > last => {
                    send_events_after(state, id, socket, &mut last).await?;
                }
                Ok(Signal::Committed(_)) => {}
                Ok(Signal::AgentTyping(composing)) => {
                    let state = if composing { "composing" } else { "paused" };
                    let frame = json!({ "type": "typing", "state": state }).to_string();
                    socket.send(Message::Text(frame.into())).await?;
                }
                Err(RecvError::Lagged(_)) => {
                    send_events_after(state, id, socket, &mut last).await?;
                }
                Err(RecvError::Closed) => return Ok(Some(close_code::GOING_AWAY)),
            },
            frame = socket.recv() => match frame {
                Some(Ok(Message::Text(text))) => handle_client_frame(state, id, &text).await,
                Some(Ok(Message::Close(_))) | None => return Ok(None),
                Some(Ok(_)) => {}
                Some(Err(e)) => return Err(e),
            },
            _ = heartbeat.tick() => {
                socket.send(Message::Ping(Default::default())).await?;
            }
            _ = state.shutdown.cancelled() => return Ok(Some(close_code::GOING_AWAY)),
        }
    }
}

async fn handle_client_frame(state: &ApiState, id: ConversationId, text: &str) {
    match serde_json::from_str::<ClientFrame>(text) {
        Ok(ClientFrame::Typing { state: typing }) => {
            let composing = typing == TypingState::Composing;
            if let Err(e) = state.engine.visitor_typing(id, composing).await {
                warn!(error = %e, "typing not forwarded");
            }
        }
        Ok(ClientFrame::Read { up_to_seq }) => {
            debug!(up_to_seq, "visitor read messages");
        }
        Ok(ClientFrame::Auth { .. }) => {}
        Err(e) => debug!(error = %e, "ignored an unknown client frame"),
    }
}

async fn send_events_after(
    state: &ApiState,
    id: ConversationId,
    socket: &mut WebSocket,
    last: &mut i64,
) -> Result<(), axum::Error> {
    loop {
        let events = match state.engine.events_after(id, *last, PAGE).await {
            Ok(events) => events,
            Err(e) => {
                warn!(error = %e, "cannot read events");
                return Ok(());
            }
        };
        let page_len = events.len() as i64;
        for event in events {
            let frame = serde_json::to_string(&event).unwrap_or_default();
            socket.send(Message::Text(frame.into())).await?;
            *last = event.seq;
        }
        if page_len < PAGE {
            return Ok(());
        }
    }
}

async fn close(socket: &mut WebSocket, code: u16, reason: &'static str) {
    let frame = CloseFrame {
        code,
        reason: Utf8Bytes::from_static(reason),
    };
    if let Err(e) = socket.send(Message::Close(Some(frame))).await {
        debug!(error = %e, "close frame not sent");
    }
}
