//! What the gateway asks the SIP user agent to do.
//!
//! [`SipCommand::SendMessage`] carries the gateway's outbox id and is
//! answered by exactly one [`crate::sip::SipEvent::Sent`] or
//! [`crate::sip::SipEvent::SendFailed`]; the others are fire-and-forget.

use crate::queue::SipUri;

/// Identifier of a row in the gateway's outbox.
pub type OutboxId = i64;

/// An instruction for the user agent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SipCommand {
    /// Send a visitor's text to an agent as SIP MESSAGE
    /// (`text/plain;charset=UTF-8`). Bodies over the UDP-safe size go over
    /// TCP/TLS, or are split into several MESSAGEs if only UDP is
    /// configured; never dropped.
    SendMessage {
        /// Acknowledged by `Sent` (every part got a 2xx) or `SendFailed`.
        outbox_id: OutboxId,
        /// User part of the visitor address, e.g. `visitor-7f3a`
        /// (the host is the configured gateway domain).
        from_user: String,
        /// The agent's address of record.
        to: SipUri,
        /// Message text.
        body: String,
    },
    /// Send an RFC 3994 is-composing indication. Not reported back; a
    /// failure is only logged (a lost typing hint is harmless).
    Composing {
        from_user: String,
        to: SipUri,
        /// `true`: typing (`active`); `false`: stopped (`idle`).
        active: bool,
    },
    /// Probe an agent now with OPTIONS through the proxy; always answered
    /// with [`crate::sip::SipEvent::AgentReachable`].
    Probe { agent: SipUri },
    /// Replace the allowlist. Only these agents may write to visitor
    /// addresses (others get 403); they are probed on the configured
    /// interval, and a changed reachability is reported.
    SetAgents(Vec<SipUri>),
}
