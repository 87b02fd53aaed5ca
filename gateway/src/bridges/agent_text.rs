//! What an agent typed, whatever their protocol: a command for the gateway
//! (`/end`, `/transfer`…) or a message for the visitor. Both bridges hand
//! agent text here and only render the outcome, so agents get the same
//! answers over XMPP and SIP.

use pbx_adapter::AgentExtension;
use tracing::warn;

use crate::domain::{ConversationId, Party};
use crate::engine::{describe_visitor, AgentCommand, ConversationSummary, Engine, EngineError};

/// What became of an agent's text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AgentTextOutcome {
    /// Stored and on its way to the visitor.
    Delivered,
    /// A command ran: show the agent this reply.
    Replied(String),
    /// Not delivered: tell the agent why (the text), and their protocol
    /// what kind of refusal it is.
    Refused(String, Refusal),
    /// Not stored because the database is unavailable for a moment: the
    /// agent's client may send it again (SIP: 503); tell them so.
    Unavailable(String),
}

/// Why an agent's text was not delivered, for a protocol-level answer
/// (a SIP status) next to the text.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// The chat is another agent's.
    NotYours,
    /// The chat has ended.
    Ended,
    /// No chat has this address.
    NoChat,
    /// The text itself is refused (empty once cleaned, too long).
    Invalid,
    /// The gateway failed (e.g. its database): worth a retry.
    Failed,
}

impl Refusal {
    pub fn of(e: &EngineError) -> Refusal {
        match e {
            EngineError::NotYourConversation => Refusal::NotYours,
            EngineError::ConversationEnded => Refusal::Ended,
            EngineError::UnknownConversation => Refusal::NoChat,
            EngineError::Invalid(_) => Refusal::Invalid,
            _ => Refusal::Failed,
        }
    }
}

/// Runs or stores what `agent` typed into `conversation`. `request` is
/// the protocol's identity of the message (the same for every copy of it:
/// a stanza id, a SIP request's Call-ID, CSeq and From tag), so a copy
/// re-sent because the first got no answer is stored once.
pub async fn handle_agent_text(
    engine: &Engine,
    conversation: ConversationId,
    agent: &AgentExtension,
    body: &str,
    request: Option<&str>,
) -> AgentTextOutcome {
    let result = match AgentCommand::parse(body) {
        Some(command) => engine
            .run_agent_command(conversation, agent, command)
            .await
            .map(AgentTextOutcome::Replied),
        None => {
            // `//text` sends `/text`.
            let text = body
                .strip_prefix('/')
                .filter(|t| t.starts_with('/'))
                .unwrap_or(body);
            engine
                .agent_message_once(conversation, agent, text, request)
                .await
                .map(|_| AgentTextOutcome::Delivered)
        }
    };
    result.unwrap_or_else(|e| match e {
        EngineError::Store(e) if e.is_unavailable() => {
            warn!(error = %e, "an agent message waits for the database");
            AgentTextOutcome::Unavailable(UNAVAILABLE.to_owned())
        }
        e => {
            let kind = Refusal::of(&e);
            AgentTextOutcome::Refused(refusal(e), kind)
        }
    })
}

/// Told to an agent whose message found the database unavailable.
pub const UNAVAILABLE: &str =
    "Your message could not be delivered right now. Please send it again in a few seconds.";

/// The agent-facing reason a message was not delivered.
pub fn refusal(e: EngineError) -> String {
    match e {
        EngineError::NotYourConversation => {
            "This chat is handled by another agent; your message was not delivered.".to_owned()
        }
        EngineError::ConversationEnded => {
            "This chat has ended; your message was not delivered.".to_owned()
        }
        EngineError::UnknownConversation => NO_CHAT.to_owned(),
        EngineError::Invalid(invalid) => format!("Your message was not delivered: {invalid}."),
        other => {
            warn!(error = %other, "an agent message failed");
            "Your message could not be delivered. Please try again.".to_owned()
        }
    }
}

/// The answer to text sent to an address that is no conversation.
pub const NO_CHAT: &str = "There is no chat at this address.";

/// The first message of an offer: who is waiting and how to take it.
pub fn offer_card(summary: &ConversationSummary) -> String {
    format!(
        "New chat waiting – reply to take it.\n{}",
        describe_visitor(summary, "waiting")
    )
}

/// Told to agents whose offer was withdrawn.
pub fn withdrawn(taken_by: Option<&str>) -> String {
    match taken_by {
        Some(name) => format!("{name} took this chat."),
        None => "This chat is no longer waiting for you.".to_owned(),
    }
}

/// Told to the agent when the chat ended without them ending it.
pub fn ended(by: Party) -> &'static str {
    match by {
        Party::Visitor => "The visitor ended the chat.",
        _ => "This chat has ended.",
    }
}
