//! Feeds arbitrary bytes to the SIP user agent's parsing entry point:
//! rsipstack's message parser followed by our classification of the
//! request (source trust, From/P-Asserted-Identity, Request-URI and
//! Content-Type handling, RFC 3994 documents). Nothing may panic, and a
//! request from a source outside the trusted network is always refused
//! with 403.
//!
//! Input: the first byte picks the source (its low bit: inside or outside
//! the trusted 10.0.0.0/8), the transport and the identity header; the
//! next four are the source's last octets; the rest is the message.
//!
//! Run for a bounded time (stable toolchain, see `scripts/fuzz`):
//! `scripts/fuzz 60 sip_parse`, or by hand
//! `cd pbx-adapter/fuzz && RUSTC_BOOTSTRAP=1 cargo fuzz run sip_parse -- -max_total_time=60`

#![no_main]

use std::net::{IpAddr, Ipv4Addr, SocketAddr};

use libfuzzer_sys::fuzz_target;
use pbx_adapter::sip::inbound::{
    parse_and_classify, Allowlist, IdentitySource, Inbound, IpNet, Peer, Trust,
};
use pbx_adapter::sip::SipTransport;

fuzz_target!(|data: &[u8]| {
    let (Some(&flags), Some(octets)) = (data.first(), data.get(1..5)) else {
        return;
    };
    let message = &data[5..];
    let trusted = flags & 1 == 1;
    let ip = if trusted {
        Ipv4Addr::new(10, octets[1], octets[2], octets[3])
    } else {
        // Anything but 10.x.y.z.
        let first = if octets[0] == 10 { 11 } else { octets[0] };
        Ipv4Addr::new(first, octets[1], octets[2], octets[3])
    };
    let transport = match (flags >> 1) % 3 {
        0 => SipTransport::Udp,
        1 => SipTransport::Tcp,
        _ => SipTransport::Tls,
    };
    let identity = if flags & 0x10 == 0 {
        IdentitySource::From
    } else {
        IdentitySource::PAssertedIdentity
    };
    let trust = Trust {
        sources: vec![IpNet::new(IpAddr::from([10, 0, 0, 0]), 8).expect("a valid network")],
        identity,
        agent_transports: if flags & 0x20 == 0 {
            Vec::new()
        } else {
            vec![SipTransport::Tcp, SipTransport::Tls]
        },
    };
    let peer = Peer {
        addr: SocketAddr::from((ip, 5060)),
        transport,
    };
    let agents = Allowlist::new(["sip:101@pbx.localhost".parse().expect("a valid AOR")]);
    let got = parse_and_classify(message, &peer, "chat.localhost", &agents, &trust);
    if !trusted {
        assert!(
            matches!(got, None | Some(Inbound::Refuse { status: 403, .. })),
            "an untrusted source got {got:?}"
        );
    }
    let _ = pbx_adapter::sip::iscomposing::parse(message);
});
