//! The widget's files and the demo page, compiled into the binary so a
//! gateway is one file to deploy. Built by `widget/` (its output is
//! committed, so `cargo build` never needs Node).
//!
//! `/demo` embeds the widget for the first channel of the configuration
//! (or `/demo?channel=KEY`), so whatever file a first run starts with, the
//! demo page talks to a channel that exists.

use std::sync::Arc;

use axum::extract::{Query, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::get;
use axum::Router;
use serde::Deserialize;

const WIDGET_JS: &str = include_str!("../../widget/dist/widget.js");
const DEMO_HTML: &str = include_str!("../../widget/demo.html");
/// Where `demo.html` names its channel.
const CHANNEL_PLACEHOLDER: &str = "{{channel}}";

/// Tells the demo page which channels exist now (in key order).
pub type ChannelKeys = Arc<dyn Fn() -> Vec<String> + Send + Sync>;

pub fn router(channel_keys: ChannelKeys) -> Router {
    Router::new()
        .route("/widget.js", get(widget_js))
        .route("/demo", get(demo))
        .route("/", get(|| async { Redirect::temporary("/demo") }))
        .with_state(channel_keys)
}

async fn widget_js() -> impl IntoResponse {
    (
        [
            (header::CONTENT_TYPE, "text/javascript; charset=utf-8"),
            // Short: a widget fix reaches every site within minutes.
            (header::CACHE_CONTROL, "public, max-age=300"),
            (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
        ],
        WIDGET_JS,
    )
}

#[derive(Deserialize)]
struct DemoQuery {
    channel: Option<String>,
}

async fn demo(State(keys): State<ChannelKeys>, Query(query): Query<DemoQuery>) -> Response {
    let keys = keys();
    let key = match &query.channel {
        Some(wanted) => keys.iter().find(|k| *k == wanted),
        None => keys.first(),
    };
    let html = |status, body: String| {
        (
            status,
            [(header::CONTENT_TYPE, "text/html; charset=utf-8")],
            body,
        )
            .into_response()
    };
    match key {
        // Keys are validated ([A-Za-z0-9_-]), so one is safe in an attribute.
        Some(key) => html(StatusCode::OK, DEMO_HTML.replace(CHANNEL_PLACEHOLDER, key)),
        None => html(StatusCode::NOT_FOUND, no_channel_page(&keys)),
    }
}

/// Says what to do when the demo has no channel to show.
fn no_channel_page(keys: &[String]) -> String {
    let advice = if keys.is_empty() {
        "This gateway has no channel yet. Add a <code>[[channels]]</code> table to its \
         configuration (see <code>frontdesk.example.toml</code>) and restart it."
            .to_owned()
    } else {
        let links: Vec<String> = keys
            .iter()
            .map(|k| format!("<li><a href=\"/demo?channel={k}\">{k}</a></li>"))
            .collect();
        format!(
            "No channel has that key. The configured channels are:<ul>{}</ul>",
            links.join("")
        )
    };
    format!(
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\">\
         <title>Frontdesk demo</title></head><body><main><h1>Frontdesk demo</h1>\
         <p>{advice}</p></main></body></html>"
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_demo_page_names_its_channel_in_one_place() {
        assert_eq!(DEMO_HTML.matches(CHANNEL_PLACEHOLDER).count(), 1);
    }
}
