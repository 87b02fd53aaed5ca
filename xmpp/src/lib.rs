//! The XMPP side of Frontdesk: an external component (XEP-0114) through
//! which agents answer website visitors from any stock XMPP client.
//!
//! Each conversation has its own address on the component domain
//! ([`VisitorAddress`], e.g. `visitor-7f3a@chat.pbx.example.com`); the agent
//! sees an ordinary contact named after the visitor (XEP-0172 nick) and
//! simply replies.
//!
//! The crate is a typed edge and nothing more: the gateway sends
//! [`Command`]s and receives [`Event`]s over channels. It knows nothing of
//! HTTP, the database or the chat engine; it does own everything XMPP:
//! staying connected (pings, reconnection with backoff, presence probes
//! after a reconnect), holding commands while the server is away, the agent
//! allowlist, and answering disco, version, ping and subscription requests.
//!
//! # Files from agents (XEP-0363)
//! When the gateway gives an upload limit
//! ([`ComponentConfig::upload_max_bytes`] or [`Command::SetUploadLimit`]),
//! the component domain advertises HTTP File Upload with that
//! `max-file-size`, so an agent's client (Conversations, Gajim, Dino) can
//! send files. Slot requests from agents become
//! [`Event::UploadSlotRequest`]; the gateway creates the slot (it owns HTTP)
//! and answers with [`Command::UploadSlot`] or [`Command::UploadRefused`].
//!
//! Layers, each in its own module:
//! - `stream`: TCP (optionally TLS) + XML stream + handshake, reads that
//!   tell a bad stanza from a dead connection;
//! - `inbound`: what an incoming stanza means (pure state machine);
//! - `outgoing`: typed stanzas built from commands (pure functions);
//! - [`component`]: the task that owns the connection and ties them
//!   together.
//!
//! # Server setup
//! The XMPP server needs a component entry for the domain with a shared
//! secret, e.g. Prosody: `Component "chat.pbx.example.com"` with
//! `component_secret = "…"`; ejabberd: an `ejabberd_service` listener with
//! `hosts: {"chat.pbx.example.com": {password: "…"}}`.
//! With [`ComponentConfig::tls`] the component speaks direct TLS on that
//! port (ejabberd: `tls: true` on the listener; Prosody's component port
//! has none), verifying the server's certificate; [`probe`] connects once
//! and says why it could not.
//!
//! # Agent presence subscriptions (A5)
//! Offers need each agent's presence, which a server only shares with
//! subscribers. Two ways to get there, both ending in the server roster:
//! - **the agent approves once**: the gateway sends [`Command::Subscribe`];
//!   the agent's client shows an ordinary "chat.pbx.example.com wants to see
//!   your status" request; approving it yields
//!   [`Event::SubscriptionChanged`] `{ subscribed: true }` and presence
//!   follows;
//! - **the admin pre-approves** by putting the component domain into the
//!   agent's roster with subscription `from` or `both`: Prosody's roster
//!   store (what the integration tests write, see
//!   `tests/src/prosody.rs`) or a roster admin module, ejabberd's
//!   `ejabberdctl add_rosteritem` or a shared roster group. No client
//!   interaction; the approval survives reconnects and restarts.
//!
//! Servers do not answer a probe from an unsubscribed entity (Prosody stays
//! silent), so "no presence event" for an agent means "not subscribed or
//! offline"; the gateway keeps the subscription state it learned from
//! [`Event::SubscriptionChanged`].
//!
//! # Several gateway nodes
//! Prosody accepts one connection per component domain (a second one is
//! refused with `conflict`, which this crate treats as a failed attempt and
//! retries with backoff): the gateway elects one node, and the others run
//! their component on standby ([`ComponentConfig::start_online`],
//! [`Command::SetOnline`]). ejabberd accepts several connections and
//! spreads incoming stanzas among them at random, IQ answers to this
//! crate's own pings included; so presence is reported per client, never
//! aggregated ([`Event::AgentPresence`]), a ping id names its node
//! ([`ComponentConfig::node_tag`]), another node's answer becomes
//! [`Event::StrayPong`] for the gateway to hand over
//! ([`Command::PingAnswered`]), and a stream that speaks counts as alive
//! whatever became of one answer (see [`component`]).

mod address;
mod backoff;
mod command;
pub mod component;
mod config;
mod event;
#[doc(hidden)]
pub mod fuzzing;
mod inbound;
mod outgoing;
mod stream;

pub use address::{AddressError, VisitorAddress};
pub use backoff::Backoff;
pub use command::{ChatState, Command, OutboxId, OutgoingMessage, UploadRefusal};
pub use component::spawn;
pub use config::{ComponentConfig, ComponentTls, ConfigError};
pub use event::{Availability, Event};
pub use stream::{probe, ConnectError};
/// JID types used in commands and events, re-exported so the gateway needs
/// no direct dependency on the `jid` crate.
pub use xmpp_parsers::jid::{BareJid, FullJid, Jid};
