//! The live view (spec M5) as JSON and as a Server-Sent Events stream: a
//! fresh snapshot whenever something changes on this node (a commit, an
//! agent's presence), at most four a second, and at least every 10 s.

use std::convert::Infallible;
use std::time::Duration;

use axum::extract::State;
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use futures::stream::{self, Stream};

use super::auth::Principal;
use super::transcripts::tenant_channels;
use super::AdminState;
use crate::api::error::ApiError;
use crate::engine::live::LiveView;
use crate::store::ItemKind;

pub fn router() -> Router<AdminState> {
    Router::new()
        .route("/api/v1/admin/live", get(snapshot))
        .route("/api/v1/admin/live/stream", get(stream))
}

/// The tenant's part of the live view.
async fn view(state: &AdminState, principal: &Principal) -> Result<LiveView, ApiError> {
    let mut view = state.engine.live_view().await.map_err(ApiError::from)?;
    let channels = tenant_channels(state, principal);
    let directory = state.engine.directory();
    view.waiting.retain(|w| channels.contains(&w.channel_key));
    view.agents.retain(|a| {
        directory
            .meta(ItemKind::Agent, &a.extension)
            .is_some_and(|m| m.tenant == principal.tenant)
    });
    for agent in &mut view.agents {
        agent.chats.retain(|c| channels.contains(&c.channel_key));
    }
    Ok(view)
}

async fn snapshot(
    State(state): State<AdminState>,
    principal: Principal,
) -> Result<Response, ApiError> {
    Ok(Json(view(&state, &principal).await?).into_response())
}

async fn stream(
    State(state): State<AdminState>,
    principal: Principal,
) -> Sse<impl Stream<Item = Result<Event, Infallible>>> {
    let activity = state.engine.hub().activity();
    let events = stream::unfold(
        (state, principal, activity, true),
        |(state, principal, mut activity, first)| async move {
            if !first {
                let wait = async {
                    tokio::time::sleep(Duration::from_millis(250)).await;
                    let _ = tokio::time::timeout(Duration::from_secs(10), activity.changed()).await;
                };
                tokio::select! {
                    _ = wait => {}
                    _ = state.shutdown.cancelled() => return None,
                }
            }
            let event = match view(&state, &principal).await {
                Ok(view) => Event::default()
                    .event("live")
                    .data(serde_json::to_string(&view).unwrap_or_default()),
                Err(e) => {
                    tracing::warn!(error = %e.message, "live view unavailable");
                    Event::default().event("unavailable").data("")
                }
            };
            Some((Ok(event), (state, principal, activity, false)))
        },
    );
    Sse::new(events).keep_alive(KeepAlive::default())
}
