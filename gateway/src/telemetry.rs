//! Logging set-up: human-readable by default, JSON on request. The level
//! comes from `RUST_LOG` (default `info`), except for the libraries that
//! log raw protocol traffic, message bodies included: rsipstack's
//! transports (every SIP message at `info`, digest answers too),
//! tokio-xmpp's stream (every stanza at `trace`), and tungstenite and h2
//! (frames at `trace`). They are capped below those levels whatever
//! `RUST_LOG` says, so no log level shows a visitor's or agent's text, a
//! token or a signed link.

use tracing_subscriber::EnvFilter;

use crate::config::LogFormat;

/// Caps on the libraries that log raw traffic (see the module doc).
const RAW_TRAFFIC_CAPS: [&str; 4] = [
    "rsipstack::transport=warn",
    "tokio_xmpp=debug",
    "tungstenite=debug",
    "h2=debug",
];

pub fn init(format: LogFormat) {
    let filter = EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| EnvFilter::new("info,sqlx=warn,tower_http=warn,rsipstack=warn"));
    let filter = RAW_TRAFFIC_CAPS.iter().fold(filter, |filter, cap| {
        filter.add_directive(cap.parse().expect("a valid directive"))
    });
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_target(false)
        .with_writer(std::io::stderr);
    let result = match format {
        LogFormat::Human => builder.try_init(),
        LogFormat::Json => builder.json().flatten_event(true).try_init(),
    };
    if result.is_err() {
        // Already initialised (tests starting several gateways): keep it.
    }
}
