//! Feeds arbitrary bytes to the XMPP component's inbound handling, as the
//! content of its stream from the server: each top-level element is parsed
//! into a typed stanza (or an invalid one with its raw header) and handled
//! by the real `inbound::Directory` (fixed: one allowlisted agent, uploads
//! offered, a 2 KiB stanza limit), and every reply is encoded as the
//! stream would write it. Nothing may panic, and `Handled::check` must
//! hold: events only from the allowlisted agent, none from an oversized
//! stanza, no answer to an error, answers only to the sender, every answer
//! encodable and valid. See `frontdesk_xmpp::fuzzing`.
//!
//! Run for a bounded time (stable toolchain, see `scripts/fuzz`):
//! `scripts/fuzz 60 xmpp_inbound`, or by hand `cd xmpp/fuzz &&
//! RUSTC_BOOTSTRAP=1 cargo fuzz run xmpp_inbound corpus/xmpp_inbound
//! seeds/xmpp_inbound -- -dict=xmpp_inbound.dict -max_total_time=60`

#![no_main]

use frontdesk_xmpp::fuzzing::Inbound;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    for handled in Inbound::new().feed(data) {
        if let Err(broken) = handled.check() {
            panic!("{broken}\n{handled:?}");
        }
    }
});
