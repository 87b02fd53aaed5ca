//! The widget's files and the demo page, compiled into the binary so a
//! gateway is one file to deploy. Built by `widget/` (its output is
//! committed, so `cargo build` never needs Node).

use axum::http::header;
use axum::response::{IntoResponse, Redirect};
use axum::routing::get;
use axum::Router;

const WIDGET_JS: &str = include_str!("../../widget/dist/widget.js");
const DEMO_HTML: &str = include_str!("../../widget/demo.html");

pub fn router() -> Router {
    Router::new()
        .route("/widget.js", get(widget_js))
        .route("/demo", get(demo))
        .route("/", get(|| async { Redirect::temporary("/demo") }))
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

async fn demo() -> impl IntoResponse {
    (
        [(header::CONTENT_TYPE, "text/html; charset=utf-8")],
        DEMO_HTML,
    )
}
