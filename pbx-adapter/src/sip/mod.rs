//! The SIP side of Frontdesk: a SIP user agent through which agents answer
//! website visitors from their softphones with SIP MESSAGE (RFC 3428).
//!
//! Like the XMPP crate, this module is a typed edge: the gateway sends
//! [`SipCommand`]s and receives [`SipEvent`]s over channels, and it knows
//! nothing of HTTP, the database or the chat engine. Visitors have
//! addresses on the gateway's domain (`sip:visitor-<id>@chat.pbx.example.com`);
//! the PBX's proxy (Kamailio, Asterisk, FreeSWITCH…) routes that domain to
//! the gateway, and every request the gateway sends goes through that proxy
//! (outbound proxy), which may challenge it (digest, 401/407).
//!
//! Layers, each in its own module:
//! - `config`: [`SipConfig`], validated before anything is bound;
//! - `inbound`: what an incoming request means, and whom to believe about
//!   agents (pure, fuzzed);
//! - `recent`: agent MESSAGEs seen lately, so a copy is answered, not
//!   reported twice;
//! - `iscomposing`: RFC 3994 typing documents (quick-xml);
//! - `split`: cutting long texts for UDP-only setups;
//! - `ua`: the task owning the stack, the transactions and the probes.
//!
//! # Why rsipstack
//! rsipstack 0.7 provides RFC 3261 non-INVITE client and server
//! transactions with the RFC's timers (E/F/J, retransmissions over UDP),
//! digest authentication, and UDP, TCP and TLS (tokio-rustls) transports;
//! it was seen here sending MESSAGE and OPTIONS through Kamailio (with 407
//! challenges) and receiving MESSAGE as a server, which is all this bridge
//! needs. rsip 0.4 only parses and builds messages: we would have had to
//! write and test the transaction layer and the transports ourselves.
//! rsipstack carries its own SIP types (`rsipstack::sip`); they stay inside
//! this module — the public API speaks [`crate::queue::SipUri`] and plain
//! strings.
//!
//! # Delivery and size
//! A [`SipCommand::SendMessage`] ends in exactly one [`SipEvent::Sent`]
//! (every part got a 2xx) or [`SipEvent::SendFailed`] (a final error
//! response — 404 not registered, 480, 408 from a dead contact, 5xx — or no
//! response at all). Bodies over 1300 bytes (RFC 3428 §4) never go over
//! UDP: they take the first TCP/TLS listener, or are split into several
//! MESSAGEs when only UDP is configured.
//!
//! # Receiving
//! A MESSAGE from an allowlisted agent becomes [`SipEvent::AgentMessage`]
//! with a [`MessageReply`]: the agent's UA gets 200 only when the gateway
//! has stored the message and calls [`MessageReply::accept`] (or the status
//! it chose with [`MessageReply::refuse`]). Anyone else gets 403 and only
//! a log line.
//!
//! "An agent" is decided on where the request came from, not on what it
//! says: only the proxy authenticates agents, so only requests whose
//! transport source is the proxy's address (or one of
//! [`SipConfig::trusted_hosts`]) are read at all, and the agent is their
//! `From` or, with [`IdentitySource::PAssertedIdentity`], the proxy's RFC
//! 3325 assertion. Everything else — any method, from any other address —
//! gets 403 and reaches nobody (see `inbound` for why, and for OPTIONS).
//!
//! A retransmitted MESSAGE is answered with the first copy's final status
//! and reported once: rsipstack absorbs copies of the same transaction
//! (same branch) and replays its answer for 32 s; `recent` does the same
//! for copies under another branch (same Call-ID, CSeq and From tag).
//!
//! # Availability: OPTIONS probes rather than reg-event
//! Each allowlisted agent is probed with OPTIONS through the proxy every
//! [`SipConfig::probe_interval`] (by one user agent of several sharing the
//! agents: [`SipCommand::SetProbing`]): an answer from the UA means reachable;
//! 404/480 (not registered), 408 or no answer (registered but dead) mean
//! unreachable. We chose probing over subscribing to the registration
//! event package (RFC 3680) because every proxy and softphone handles
//! OPTIONS, while reg-event needs the `pua`/`presence_reginfo` modules in
//! Kamailio (a database for presence) or `res_pjsip_publish_asterisk`-like
//! setups elsewhere, and a registration alone does not prove the phone is
//! still alive (a laptop closed without unregistering stays registered
//! until expiry; an OPTIONS probe notices within one interval).
//!
//! # Malformed input
//! Parsing is rsipstack's; the meaning of a request is decided by the pure
//! `inbound::parse_and_classify` (bytes and the source they came from),
//! which a property test feeds random bytes and sources on every
//! `cargo test`, and which the cargo-fuzz target drives on the stable
//! toolchain (`RUSTC_BOOTSTRAP=1` lets cargo-fuzz pass its `-Z` flags):
//! `scripts/fuzz 60 sip_parse`, or by hand
//! `cd pbx-adapter/fuzz && RUSTC_BOOTSTRAP=1 cargo fuzz run sip_parse -- -max_total_time=60`.

#![cfg(feature = "sip")]

mod command;
mod config;
mod event;
pub mod inbound;
pub mod iscomposing;
mod recent;
mod split;
mod ua;

pub use command::{OutboxId, SipCommand};
pub use config::{Listener, SipConfig, SipConfigError, SipCredentials, SipTransport, TlsMaterial};
pub use event::{MessageReply, SipEvent, Verdict};
pub use inbound::{IdentitySource, IpNet, TrustedHost, TrustedHostError};
pub use split::split_body;
pub use ua::{spawn, SipError, FAILED_WITH_AN_EARLIER, TEXT_PLAIN};
