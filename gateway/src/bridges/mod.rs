//! Protocol bridges: where the engine meets the agents' protocols. Each
//! bridge implements the engine's `AgentChannel` for its agents and turns
//! its protocol crate's events into engine calls; [`AgentRouter`] sends
//! each agent's traffic to the bridge of the address they have.

pub mod agent_text;
pub mod lanes;
pub mod sip;
pub mod xmpp;

use std::sync::Arc;

use async_trait::async_trait;
use pbx_adapter::queue::AgentConfig;

use crate::domain::ConversationId;
use crate::engine::{
    AgentChannel, AgentChannelError, ConversationSummary, Delivery, Notice, Offer,
};

/// The user part of a conversation's address on every protocol:
/// `visitor-<uuid hex>`.
pub fn visitor_user(id: ConversationId) -> String {
    format!("visitor-{}", id.short())
}

/// The conversation behind a visitor address's user part.
pub fn conversation_of_user(user: &str) -> Option<ConversationId> {
    user.strip_prefix("visitor-")?.parse().ok()
}

/// Sends each agent's traffic to the bridge for their address: XMPP when
/// the agent has a JID and the XMPP bridge runs, else SIP.
pub struct AgentRouter {
    pub xmpp: Option<Arc<dyn AgentChannel>>,
    pub sip: Option<Arc<dyn AgentChannel>>,
}

impl AgentRouter {
    fn bridge_for(&self, agent: &AgentConfig) -> Option<&Arc<dyn AgentChannel>> {
        match (&agent.xmpp, &self.xmpp, &agent.sip, &self.sip) {
            (Some(_), Some(xmpp), _, _) => Some(xmpp),
            (_, _, Some(_), Some(sip)) => Some(sip),
            _ => None,
        }
    }

    /// `agents` split by bridge, in order.
    fn split(&self, agents: &[AgentConfig]) -> Vec<(&Arc<dyn AgentChannel>, Vec<AgentConfig>)> {
        let mut groups: Vec<(&Arc<dyn AgentChannel>, Vec<AgentConfig>)> = Vec::new();
        for agent in agents {
            let Some(bridge) = self.bridge_for(agent) else {
                tracing::warn!(agent = %agent.extension, "no running bridge reaches this agent");
                continue;
            };
            match groups.iter_mut().find(|(b, _)| Arc::ptr_eq(b, bridge)) {
                Some((_, group)) => group.push(agent.clone()),
                None => groups.push((bridge, vec![agent.clone()])),
            }
        }
        groups
    }
}

#[async_trait]
impl AgentChannel for AgentRouter {
    async fn offer(&self, offer: Offer) -> Result<(), AgentChannelError> {
        for (bridge, agents) in self.split(&offer.agents) {
            bridge
                .offer(Offer {
                    agents,
                    ..offer.clone()
                })
                .await?;
        }
        Ok(())
    }

    async fn withdraw(
        &self,
        conversation: &ConversationSummary,
        agents: &[AgentConfig],
        taken_by: Option<&str>,
    ) -> Result<(), AgentChannelError> {
        for (bridge, agents) in self.split(agents) {
            bridge.withdraw(conversation, &agents, taken_by).await?;
        }
        Ok(())
    }

    async fn notify(
        &self,
        agent: &AgentConfig,
        conversation: &ConversationSummary,
        notice: Notice<'_>,
    ) -> Result<Delivery, AgentChannelError> {
        match self.bridge_for(agent) {
            Some(bridge) => bridge.notify(agent, conversation, notice).await,
            // Nothing could ever deliver it.
            None => Ok(Delivery::Done),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn visitor_users_map_back_to_their_conversation() {
        let id = ConversationId::new();
        assert_eq!(conversation_of_user(&visitor_user(id)), Some(id));
        assert_eq!(conversation_of_user("visitor-nope"), None);
        assert_eq!(conversation_of_user("alice"), None);
    }
}
