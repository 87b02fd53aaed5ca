//! Feeds arbitrary text as a WebSocket text frame from the widget, read as
//! the event stream reads it (`ClientFrame::parse`: `auth`, `typing`,
//! `read`, `message`, a `message` without a body answered by its
//! `client_id`, anything else ignored). Nothing may panic and an `auth` frame's
//! `since` is never negative. Text frames are UTF-8 (tungstenite refuses
//! others before the gateway sees them), so other inputs are skipped. See
//! `frontdesk::api::fuzzing`.
//!
//! Run for a bounded time (stable toolchain, see `scripts/fuzz`):
//! `scripts/fuzz 60 ws_frame`

#![no_main]

use frontdesk::api::fuzzing::client_frame;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data) {
        if let Err(broken) = client_frame(text) {
            panic!("{broken}");
        }
    }
});
