//! The engine's outbound side: how it reaches agents.
//!
//! The XMPP and SIP bridges implement [`AgentChannel`]; the engine calls it
//! without knowing which protocol an agent uses. Inbound traffic (an agent
//! accepts, replies, types, leaves) comes back through `Engine` methods.

use async_trait::async_trait;
use pbx_adapter::queue::AgentConfig;

use super::view::{ConversationSummary, MessageView};
use crate::domain::Party;

/// A conversation offered to agents: who the visitor is and what they said
/// so far, so the first message an agent sees introduces the visitor.
#[derive(Debug, Clone)]
pub struct Offer {
    pub conversation: ConversationSummary,
    pub agents: Vec<AgentConfig>,
    pub history: Vec<MessageView>,
}

#[derive(Debug, thiserror::Error)]
#[error("agent channel: {0}")]
pub struct AgentChannelError(pub String);

/// What the engine tells one agent about a conversation of theirs.
#[derive(Debug, Clone, Copy)]
pub enum Notice<'a> {
    /// A visitor's message (or file) to forward.
    Message(&'a MessageView),
    /// The visitor started or stopped typing (ephemeral).
    Typing(bool),
    /// The conversation ended (`by` the visitor or the system).
    Ended(Party),
}

/// What became of a notice handed to [`AgentChannel::notify`] (anything
/// but a message is `Done` once sent).
/// The message stays in the delivery outbox (and is forwarded again after
/// a restart) until it is `Done`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Delivery {
    /// The agent's side has it, or the bridge gave up on it for good and
    /// dealt with the consequence (an offer declined, a chat re-queued).
    Done,
    /// Handed to the protocol: the bridge calls `Engine::delivered` once
    /// the other side confirmed it.
    Pending,
}

#[async_trait]
pub trait AgentChannel: Send + Sync + 'static {
    /// Offers a waiting conversation to `offer.agents`.
    async fn offer(&self, offer: Offer) -> Result<(), AgentChannelError>;

    /// Tells agents who were offered a conversation that it is no longer
    /// theirs to take (`taken_by` names who took it, if anyone did).
    async fn withdraw(
        &self,
        conversation: &ConversationSummary,
        agents: &[AgentConfig],
        taken_by: Option<&str>,
    ) -> Result<(), AgentChannelError>;

    /// Tells one agent (in charge of, or ringing for, `conversation`)
    /// what happened. For a message, an error leaves it in the delivery
    /// outbox, to be forwarded again at the next start.
    async fn notify(
        &self,
        agent: &AgentConfig,
        conversation: &ConversationSummary,
        notice: Notice<'_>,
    ) -> Result<Delivery, AgentChannelError>;
}
