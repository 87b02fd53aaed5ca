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

/// What became of a visitor message handed to [`AgentChannel::deliver`].
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

    /// Forwards a visitor's message to the agent in charge (or ringing).
    /// An error leaves it in the outbox, to be forwarded again at the next
    /// start.
    async fn deliver(
        &self,
        agent: &AgentConfig,
        conversation: &ConversationSummary,
        message: &MessageView,
    ) -> Result<Delivery, AgentChannelError>;

    /// The visitor started or stopped typing.
    async fn visitor_typing(
        &self,
        agent: &AgentConfig,
        conversation: &ConversationSummary,
        composing: bool,
    ) -> Result<(), AgentChannelError>;

    /// The conversation ended (`by` the visitor, the agent or the system).
    async fn ended(
        &self,
        agent: &AgentConfig,
        conversation: &ConversationSummary,
        by: Party,
    ) -> Result<(), AgentChannelError>;
}
