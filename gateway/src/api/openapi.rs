//! The OpenAPI 3.1 document of the visitor API, generated from the wire
//! types and handler annotations in `visitor.rs`, so it cannot drift; the
//! admin API's operations are added by `admin/openapi.rs`.

use axum::routing::get;
use axum::{Json, Router};
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi};

use super::{files, visitor};
use crate::engine::view::AttachmentView;
use crate::engine::{AgentView, ConversationView, EventBody, EventView, MessageView, VisitorView};

#[derive(OpenApi)]
#[openapi(
    info(title = "Frontdesk visitor API", description = "What the chat widget speaks. Events stream over a WebSocket at /api/v1/conversations/{id}/events: send {\"type\":\"auth\",\"token\":…,\"since\":N} first; every durable event then arrives as an EventView."),
    paths(
        visitor::channel_info,
        visitor::start_conversation,
        visitor::get_conversation,
        visitor::choose_option,
        visitor::post_message,
        visitor::list_messages,
        visitor::close_conversation,
        files::upload,
        files::visitor_download,
        files::agent_download,
    ),
    components(schemas(EventView, EventBody, AgentView, VisitorView, ConversationView, MessageView, AttachmentView)),
    modifiers(&BearerToken),
    tags((name = "visitor", description = "Visitor API v1"),
        (name = "agent", description = "Signed download links for agents' chat clients"),
        (name = "admin", description = "The admin console's API (session or API token)"))
)]
pub struct ApiDoc;

struct BearerToken;

impl Modify for BearerToken {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "visitor_token",
            SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).build()),
        );
    }
}

pub fn router() -> Router {
    Router::new().route(
        "/api/v1/openapi.json",
        get(|| async {
            let mut doc = ApiDoc::openapi();
            super::admin::openapi::add_to(&mut doc);
            Json(doc)
        }),
    )
}
