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
//! Layers, each in its own module:
//! - `stream`: TCP + XML stream + handshake, reads that
//!   tell a bad stanza from a dead connection;
//! - `inbound`: what an incoming stanza means (pure state machine);
//! - `outgoing`: typed stanzas built from commands (pure functions);
//! - [`component`]: the task that owns the connection and ties them
//!   together.

mod address;
mod backoff;
mod command;
pub mod component;
mod config;
mod event;
mod inbound;
mod outgoing;
mod stream;

pub use address::{AddressError, VisitorAddress};
pub use backoff::Backoff;
pub use command::{ChatState, Command, OutboxId, OutgoingMessage};
pub use component::spawn;
pub use config::{ComponentConfig, ConfigError};
pub use event::{Availability, Event};
pub use stream::ConnectError;
/// JID types used in commands and events, re-exported so the gateway needs
/// no direct dependency on the `jid` crate.
pub use xmpp_parsers::jid::{BareJid, FullJid, Jid};
