//! Feeds arbitrary bytes as the JSON body of each visitor request the API
//! accepts (start a conversation, post a message, choose an option):
//! deserialised as the `ApiJson` extractor does and validated as the
//! handlers do, into the domain values (`VisitorName`, `Email`, `PageUrl`,
//! `ClientMessageId`, `MessageBody`). Nothing may panic; a refusal is a 400
//! or 422; what is accepted is within its limits and carries no control,
//! bidi or invisible character. See `frontdesk::api::fuzzing`.
//!
//! Run for a bounded time (stable toolchain, see `scripts/fuzz`):
//! `scripts/fuzz 60 visitor_json`

#![no_main]

use frontdesk::api::fuzzing::{visitor_body, BodyKind};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    for kind in [BodyKind::Start, BodyKind::Message, BodyKind::Choice] {
        if let Err(broken) = visitor_body(kind, data) {
            panic!("{kind:?}: {broken}");
        }
    }
});
