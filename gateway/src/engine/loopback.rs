//! An in-process agent channel: every call the engine makes to agents
//! becomes an [`AgentCall`] on a channel that the owner reads.
//!
//! Tests use it to play the agent side of a conversation through the same
//! engine entry points the XMPP and SIP bridges use. It is also what a
//! gateway runs with when no bridge is configured: calls are then logged.

use async_trait::async_trait;
use pbx_adapter::queue::AgentConfig;
use pbx_adapter::AgentExtension;
use tokio::sync::mpsc;

use super::agent_channel::{AgentChannel, AgentChannelError, Delivery, Notice, Offer};
use super::view::{ConversationSummary, MessageView};
use crate::domain::{ConversationId, Party};

#[derive(Debug, Clone)]
pub enum AgentCall {
    Offer(Offer),
    Withdraw {
        conversation: ConversationId,
        agents: Vec<AgentExtension>,
        taken_by: Option<String>,
    },
    Deliver {
        agent: AgentExtension,
        conversation: ConversationId,
        message: MessageView,
    },
    VisitorTyping {
        agent: AgentExtension,
        conversation: ConversationId,
        composing: bool,
    },
    Ended {
        agent: AgentExtension,
        conversation: ConversationId,
        by: Party,
    },
}

pub struct LoopbackAgents {
    calls: mpsc::UnboundedSender<AgentCall>,
}

impl LoopbackAgents {
    pub fn new() -> (LoopbackAgents, mpsc::UnboundedReceiver<AgentCall>) {
        let (calls, rx) = mpsc::unbounded_channel();
        (LoopbackAgents { calls }, rx)
    }

    fn send(&self, call: AgentCall) -> Result<(), AgentChannelError> {
        tracing::debug!(?call, "loopback agent call");
        // Nobody reading is fine: a gateway without bridges drops agent calls
        // after logging them, which is all an unbridged gateway can do.
        let _unread = self.calls.send(call);
        Ok(())
    }
}

#[async_trait]
impl AgentChannel for LoopbackAgents {
    async fn offer(&self, offer: Offer) -> Result<(), AgentChannelError> {
        self.send(AgentCall::Offer(offer))
    }

    async fn withdraw(
        &self,
        conversation: &ConversationSummary,
        agents: &[AgentConfig],
        taken_by: Option<&str>,
    ) -> Result<(), AgentChannelError> {
        self.send(AgentCall::Withdraw {
            conversation: conversation.id,
            agents: agents.iter().map(|a| a.extension.clone()).collect(),
            taken_by: taken_by.map(str::to_owned),
        })
    }

    async fn notify(
        &self,
        agent: &AgentConfig,
        conversation: &ConversationSummary,
        notice: Notice<'_>,
    ) -> Result<Delivery, AgentChannelError> {
        let (agent, conversation) = (agent.extension.clone(), conversation.id);
        let call = match notice {
            Notice::Message(message) => AgentCall::Deliver {
                agent,
                conversation,
                message: message.clone(),
            },
            Notice::Typing(composing) => AgentCall::VisitorTyping {
                agent,
                conversation,
                composing,
            },
            Notice::Ended(by) => AgentCall::Ended {
                agent,
                conversation,
                by,
            },
        };
        self.send(call).map(|()| Delivery::Done)
    }
}
