//! What the component reports to the gateway.
//!
//! Only traffic from allowlisted agents becomes an event; strangers are
//! answered by the component itself and never reach the gateway.

use xmpp_parsers::jid::{BareJid, Jid};

use crate::address::VisitorAddress;
use crate::command::{ChatState, OutboxId};

/// The availability of one of an agent's clients (the gateway takes the
/// most available of an agent's clients as the agent's).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Availability {
    /// No connected client, or the server says the agent is offline.
    Unavailable,
    /// `<show>dnd</show>`.
    DoNotDisturb,
    /// `<show>xa</show>` (extended away).
    ExtendedAway,
    /// `<show>away</show>`.
    Away,
    /// Plain available presence, or `<show>chat</show>`.
    Available,
}

impl Availability {
    /// Whether an agent in this state gets new chat offers by default
    /// (the gateway may apply its own policy).
    pub fn takes_offers(self) -> bool {
        self == Availability::Available
    }
}

/// Something that happened on the XMPP side.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// The component stream is up (first connection or reconnection).
    Connected,
    /// The component stream is down (or handed over, after
    /// [`crate::Command::SetOnline`] `(false)`); commands are held until
    /// `Connected`. The probes sent after the next `Connected` report
    /// every agent's clients again.
    Disconnected {
        /// Why, for logs and the live view.
        reason: String,
    },
    /// The server processed the outboxed command `outbox_id`.
    Sent {
        /// The acknowledged outbox row.
        outbox_id: OutboxId,
    },
    /// An agent wrote to a visitor.
    AgentMessage {
        /// The agent (full JID when the client sent one).
        from: Jid,
        /// The visitor address written to.
        to: VisitorAddress,
        /// Stanza id, for receipts and markers.
        id: Option<String>,
        /// Message text (never an agent command interpretation: that is the
        /// gateway's job).
        body: String,
        /// Whether the agent asked for a XEP-0184 receipt.
        receipt_requested: bool,
        /// Whether the message is XEP-0333 markable.
        markable: bool,
        /// A file link the agent shared (XEP-0066), if any.
        oob_url: Option<String>,
    },
    /// An agent's typing state changed.
    AgentChatState {
        /// The agent.
        from: Jid,
        /// The visitor address.
        to: VisitorAddress,
        /// The new state.
        state: ChatState,
    },
    /// An agent's client received a visitor message (XEP-0184).
    AgentReceipt {
        /// The agent.
        from: Jid,
        /// The visitor address.
        to: VisitorAddress,
        /// Id of the visitor message.
        id: String,
    },
    /// An agent displayed visitor messages up to `id` (XEP-0333).
    AgentDisplayed {
        /// The agent.
        from: Jid,
        /// The visitor address.
        to: VisitorAddress,
        /// Id of the visitor message.
        id: String,
    },
    /// A message from a visitor address bounced (type `error`), e.g. the
    /// agent's account does not exist.
    DeliveryFailed {
        /// The agent the message was for.
        agent: Jid,
        /// The visitor address it came from.
        from: VisitorAddress,
        /// Id of the bounced message.
        id: Option<String>,
        /// The stanza error condition, e.g. `service-unavailable`.
        condition: String,
    },
    /// What one of an agent's clients says of its availability, each time
    /// a presence arrives (a probe's answer repeats a known state: the
    /// client is still there). Not aggregated over clients: with several
    /// component connections (ejabberd), an agent's clients' presences
    /// reach different ones.
    AgentPresence {
        /// The agent.
        agent: BareJid,
        /// The client (resource); `None` with [`Availability::Unavailable`]:
        /// every client of the agent is gone (unavailable from the bare JID,
        /// a presence error, a cancelled subscription).
        resource: Option<String>,
        /// Its availability.
        availability: Availability,
    },
    /// The answer to another gateway node's ping reached this connection:
    /// ejabberd spreads what it routes to the component domain, IQ answers
    /// included, over every connection. The gateway hands it to the node
    /// whose ping it is, which gives it back with
    /// [`crate::Command::PingAnswered`].
    StrayPong {
        /// The ping's id (it names the node's [`crate::ComponentConfig::node_tag`]).
        id: String,
    },
    /// An allowlisted agent asks for an HTTP File Upload (XEP-0363) slot on
    /// the component domain. Answer with [`crate::Command::UploadSlot`] or
    /// [`crate::Command::UploadRefused`] (same `iq_id`), promptly: clients
    /// time out. Requests from strangers, or while uploads are not offered,
    /// are refused by the component and never become events; sizes over the
    /// advertised limit are refused too.
    UploadSlotRequest {
        /// The agent (full JID).
        from: Jid,
        /// Id of the request IQ, to answer.
        iq_id: String,
        /// The file name the client proposes (unsanitised: display only).
        filename: String,
        /// The announced size in bytes.
        size: u64,
        /// The announced media type, if any (a hint, not to be trusted).
        content_type: Option<String>,
    },
    /// The component's presence subscription to an agent was approved
    /// (`subscribed`) or refused/cancelled (`unsubscribed`).
    SubscriptionChanged {
        /// The agent.
        agent: BareJid,
        /// Whether the component may now see the agent's presence.
        subscribed: bool,
    },
}
