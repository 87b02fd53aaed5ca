//! What the gateway asks the SIP user agent to do.
//!
//! [`SipCommand::SendMessage`] carries the gateway's outbox id and is
//! answered by exactly one [`crate::sip::SipEvent::Sent`] or
//! [`crate::sip::SipEvent::SendFailed`]; the others are fire-and-forget.
//! Messages from one visitor address to one agent go out in the order
//! they were commanded, one at a time, and none after one that failed
//! until [`SipCommand::Resume`] (see `ua`).

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
        /// A stable identity for this message, e.g. the gateway's
        /// delivery (conversation, seq, agent): sent as the Call-ID
        /// (`ID@DOMAIN`; part n ≥ 2 of a split body as `ID.n@DOMAIN`), the
        /// same on every forward of the message, so a phone seeing it
        /// again (re-sent after a gateway restart) can tell it is a copy.
        /// `None`: a fresh Call-ID.
        message_id: Option<String>,
    },
    /// Send an RFC 3994 is-composing indication. Not reported back; a
    /// failure is only logged (a lost typing hint is harmless).
    Composing {
        from_user: String,
        to: SipUri,
        /// `true`: typing (`active`); `false`: stopped (`idle`).
        active: bool,
    },
    /// The gateway dealt with a failed message from `from_user` to `to`
    /// (the chat went back to the queue, and its next offer repeats the
    /// history): messages between them may go again. After a failure and
    /// until this, every message of theirs fails at once
    /// ([`crate::sip::FAILED_WITH_AN_EARLIER`]), so none arrives after a
    /// gap.
    Resume { from_user: String, to: SipUri },
    /// Probe an agent now with OPTIONS through the proxy; always answered
    /// with [`crate::sip::SipEvent::AgentReachable`].
    Probe { agent: SipUri },
    /// Replace the allowlist. Only these agents may write to visitor
    /// addresses (others get 403); they are probed on the configured
    /// interval (while probing is on), and every result is reported.
    SetAgents(Vec<SipUri>),
    /// Whether this user agent probes the allowlisted agents on the
    /// interval (on at start). Gateways sharing one database and one set
    /// of agents elect one prober; the others answer and send as usual but
    /// leave probing to it. Turned on, it probes at once.
    SetProbing(bool),
}
