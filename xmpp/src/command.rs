//! What the gateway asks the component to do.
//!
//! Commands that carry an `outbox_id` come from the gateway's persisted
//! outbox: the component answers each with [`crate::Event::Sent`] once the
//! server has acknowledged processing it, and re-sends it after a reconnect
//! otherwise. Delivery is therefore at-least-once; the gateway re-submits
//! unacknowledged rows after its own restart.

use xmpp_parsers::jid::{BareJid, Jid};

use crate::address::VisitorAddress;

/// Identifier of a row in the gateway's outbox.
pub type OutboxId = i64;

/// XEP-0085 chat states, as shown by typing indicators.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ChatState {
    /// Paying attention to the conversation.
    Active,
    /// Typing.
    Composing,
    /// Stopped typing.
    Paused,
    /// Not paying attention.
    Inactive,
    /// Left the conversation.
    Gone,
}

/// A chat message from a visitor address to an agent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutgoingMessage {
    /// Outbox row to acknowledge with [`crate::Event::Sent`].
    pub outbox_id: OutboxId,
    /// The visitor address the message comes from.
    pub from: VisitorAddress,
    /// Visitor's display name (XEP-0172); the gateway sets it on the first
    /// message of a conversation. It is also remembered for presence answers.
    pub nick: Option<String>,
    /// The agent (bare or full JID).
    pub to: Jid,
    /// Message text.
    pub body: String,
    /// Stanza id, chosen by the gateway so receipts and markers can be
    /// matched to it; the same id is used when re-sending.
    pub id: String,
    /// A file link (XEP-0066). Clients preview it when `body` equals the URL.
    pub oob_url: Option<String>,
    /// Ask for a XEP-0184 receipt and mark the message XEP-0333 markable.
    pub request_receipt: bool,
}

/// Why an HTTP File Upload (XEP-0363) slot request is refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UploadRefusal {
    /// The announced size is over the limit: `not-acceptable` with the
    /// XEP-0363 `<file-too-large><max-file-size/></file-too-large>` element,
    /// so clients can tell the user the limit.
    FileTooLarge {
        /// The largest accepted size, in bytes.
        max_file_size: u64,
    },
    /// The request itself is unacceptable (e.g. an empty file or a name the
    /// gateway will not take): `not-acceptable`.
    NotAcceptable,
    /// The requester may not upload: `forbidden`.
    Forbidden,
    /// Too many slots are open; try again later: `resource-constraint`.
    ResourceConstraint,
    /// The upload service cannot take files right now:
    /// `service-unavailable`.
    Unavailable,
}

/// An instruction for the component.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command {
    /// Send a chat message (outboxed).
    SendMessage(OutgoingMessage),
    /// Send a standalone chat state (typing indicator). Dropped while
    /// disconnected: a stale "typing" is worse than none.
    ChatState {
        /// Visitor address.
        from: VisitorAddress,
        /// Agent.
        to: Jid,
        /// New state.
        state: ChatState,
    },
    /// The visitor's widget received an agent message: XEP-0184 `<received/>`.
    Receipt {
        /// Visitor address.
        from: VisitorAddress,
        /// Agent.
        to: Jid,
        /// Id of the agent's message.
        id: String,
    },
    /// The visitor read an agent message: XEP-0333 `<displayed/>`.
    Displayed {
        /// Visitor address.
        from: VisitorAddress,
        /// Agent.
        to: Jid,
        /// Id of the agent's message.
        id: String,
    },
    /// Refuse an agent's message politely, e.g. when the chat has ended or was
    /// taken by someone else (outboxed). Sent as a message of type `error`
    /// (condition `gone`, echoing the refused message's id so the agent's
    /// client marks that message as failed) carrying `text`.
    ErrorReply {
        /// Outbox row to acknowledge.
        outbox_id: OutboxId,
        /// Visitor address the agent wrote to.
        from: VisitorAddress,
        /// The agent.
        to: Jid,
        /// Id of the refused message, if it had one.
        id: Option<String>,
        /// Human-readable explanation.
        text: String,
    },
    /// Ask for a presence subscription to an agent (`subscribe` from the
    /// component domain). The agent's client approves once, or the admin
    /// pre-approves it in the server roster.
    Subscribe {
        /// The agent.
        agent: BareJid,
    },
    /// Ask the server for an agent's current presence.
    Probe {
        /// The agent.
        agent: BareJid,
    },
    /// Replace the allowlist of agents. Only these may talk to visitor
    /// addresses; they are probed now and after every reconnect.
    SetAgents(Vec<BareJid>),
    /// Remember a visitor's display name for presence answers without
    /// sending a message (e.g. before the first offer).
    SetNick {
        /// Visitor address.
        address: VisitorAddress,
        /// Display name.
        nick: String,
    },
    /// Forget a visitor address (conversation over): it now appears
    /// unavailable to agents that probe it.
    ForgetVisitor(VisitorAddress),
    /// Offer HTTP File Upload (XEP-0363) on the component domain with this
    /// largest file size in bytes, or stop offering it (`None`). Replaces
    /// [`crate::ComponentConfig::upload_max_bytes`].
    SetUploadLimit(Option<u64>),
    /// Grant an upload slot ([`crate::Event::UploadSlotRequest`]): the IQ
    /// result with the PUT and GET URLs. Dropped while disconnected: the
    /// request died with its stream, and the client asks again.
    UploadSlot {
        /// The agent who asked (full JID, as in the request).
        to: Jid,
        /// Id of the request IQ.
        iq_id: String,
        /// Where the client PUTs the file (no extra headers needed).
        put_url: String,
        /// Where the file can be fetched once uploaded; what the client
        /// then sends in its message.
        get_url: String,
    },
    /// Another gateway node received the answer to this component's ping
    /// `id` ([`crate::Event::StrayPong`] there): it counts as answered here.
    /// Ids that are not this component's pings are ignored.
    PingAnswered {
        /// The ping's id.
        id: String,
    },
    /// Whether the component holds a connection (`true`, the default, see
    /// [`crate::ComponentConfig::start_online`]). `false` closes the
    /// stream politely and stays away until `true`, and forgets every
    /// outboxed command queued or unacknowledged: the gateway's outbox
    /// hands them to whichever node holds the connection now.
    SetOnline(bool),
    /// Refuse an upload slot request with an IQ error. Dropped while
    /// disconnected, like [`Command::UploadSlot`].
    UploadRefused {
        /// The agent who asked.
        to: Jid,
        /// Id of the request IQ.
        iq_id: String,
        /// Why.
        condition: UploadRefusal,
        /// Human-readable explanation (may be empty).
        text: String,
    },
}

impl Command {
    /// The command's name, for logs: commands carry message bodies, nicks
    /// and signed links, which never go into a log.
    pub fn name(&self) -> &'static str {
        match self {
            Command::SendMessage(_) => "send_message",
            Command::ChatState { .. } => "chat_state",
            Command::Receipt { .. } => "receipt",
            Command::Displayed { .. } => "displayed",
            Command::ErrorReply { .. } => "error_reply",
            Command::Subscribe { .. } => "subscribe",
            Command::Probe { .. } => "probe",
            Command::SetAgents(_) => "set_agents",
            Command::SetNick { .. } => "set_nick",
            Command::ForgetVisitor(_) => "forget_visitor",
            Command::SetUploadLimit(_) => "set_upload_limit",
            Command::UploadSlot { .. } => "upload_slot",
            Command::UploadRefused { .. } => "upload_refused",
            Command::PingAnswered { .. } => "ping_answered",
            Command::SetOnline(_) => "set_online",
        }
    }

    /// The outbox row this command acknowledges, if it is outboxed.
    pub fn outbox_id(&self) -> Option<OutboxId> {
        match self {
            Command::SendMessage(m) => Some(m.outbox_id),
            Command::ErrorReply { outbox_id, .. } => Some(*outbox_id),
            _ => None,
        }
    }

    /// Whether the command only makes sense on the stream it answers (or
    /// describes a passing state): such commands are dropped, not held,
    /// while disconnected.
    pub(crate) fn is_ephemeral(&self) -> bool {
        matches!(
            self,
            Command::ChatState { .. } | Command::UploadSlot { .. } | Command::UploadRefused { .. }
        )
    }
}
