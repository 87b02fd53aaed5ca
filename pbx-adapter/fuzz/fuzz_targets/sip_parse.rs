//! Feeds arbitrary bytes to the SIP user agent's parsing entry point:
//! rsipstack's message parser followed by our classification of the
//! request (From/Request-URI/Content-Type handling, RFC 3994 documents).
//! Nothing may panic.
//!
//! Run for a bounded time (needs nightly and cargo-fuzz):
//! `cd pbx-adapter/fuzz && cargo +nightly fuzz run sip_parse -- -max_total_time=60`

#![no_main]

use libfuzzer_sys::fuzz_target;
use pbx_adapter::sip::inbound::{parse_and_classify, Allowlist};

fuzz_target!(|data: &[u8]| {
    let agents = Allowlist::new(["sip:101@pbx.localhost".parse().expect("a valid AOR")]);
    let _ = parse_and_classify(data, "chat.localhost", &agents);
    let _ = pbx_adapter::sip::iscomposing::parse(data);
});
