//! Agent commands typed in an ordinary chat window (`/end`, `/transfer`,
//! `/info`, `/queue`, `/help`). Parsed and run here, once, for every
//! protocol bridge; the bridge only sends the reply text back.

use pbx_adapter::queue::Destination;
use pbx_adapter::{AgentExtension, QueueExtension};
use tracing::info;

use super::{event, ConversationState, Engine, EngineError, EngineResult, EventBody, MessageView};
use crate::domain::{ConversationId, Party};
use crate::store::ItemKind;
use crate::store::{now_ms, ConversationUpdate};

/// A command an agent typed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AgentCommand {
    End,
    Transfer(String),
    Info,
    Queue,
    Help,
    /// Anything else starting with `/`: answered with the help text.
    Unknown(String),
}

impl AgentCommand {
    /// `None` when the text is an ordinary message for the visitor. A
    /// message starting with `//` is sent as text with one `/` removed.
    pub fn parse(text: &str) -> Option<AgentCommand> {
        let text = text.trim();
        let rest = text.strip_prefix('/')?;
        if rest.starts_with('/') || rest.is_empty() {
            return None;
        }
        let mut words = rest.split_whitespace();
        let name = words.next().unwrap_or_default().to_ascii_lowercase();
        let argument = words.collect::<Vec<_>>().join(" ");
        Some(match name.as_str() {
            "end" => AgentCommand::End,
            "transfer" if !argument.is_empty() => AgentCommand::Transfer(argument),
            "info" => AgentCommand::Info,
            "queue" => AgentCommand::Queue,
            "help" => AgentCommand::Help,
            _ => AgentCommand::Unknown(name),
        })
    }
}

pub const HELP: &str = "Commands:\n\
    /end – end this chat\n\
    /transfer <queue or agent extension> – hand this chat over\n\
    /info – who the visitor is\n\
    /queue – visitors waiting in your queues\n\
    /help – this list\n\
    Start a message with // to send a text that begins with /.";

impl Engine {
    /// Runs an agent's command on a conversation and returns the reply to
    /// show the agent.
    pub async fn run_agent_command(
        &self,
        id: ConversationId,
        agent: &AgentExtension,
        command: AgentCommand,
    ) -> EngineResult<String> {
        if command != AgentCommand::Help {
            // Only the agent in charge (or one it rings for) may act on or
            // look at a chat; after the end, its last agent still may.
            let row = self.row(id).await?;
            let theirs = self.concerns(&row, agent).await
                || (row.state.is_final() && self.is_assigned_to(&row, agent));
            if !theirs {
                return Err(EngineError::NotYourConversation);
            }
        }
        match command {
            AgentCommand::Help => Ok(HELP.to_owned()),
            AgentCommand::Unknown(name) => Ok(format!("Unknown command /{name}.\n{HELP}")),
            AgentCommand::End => {
                self.agent_end(id, agent).await?;
                Ok("Chat ended. The visitor has been told.".to_owned())
            }
            AgentCommand::Info => {
                let row = self.row(id).await?;
                let summary = self.summary(&row)?;
                Ok(describe_visitor(&summary, row.state.as_str()))
            }
            AgentCommand::Queue => Ok(self.describe_queues(agent).await?),
            AgentCommand::Transfer(target) => self.transfer(id, agent, target.trim()).await,
        }
    }

    /// Hands an active chat to another queue, or to one agent, and puts it
    /// back in line. The visitor is told; nothing typed is lost.
    async fn transfer(
        &self,
        id: ConversationId,
        agent: &AgentExtension,
        target: &str,
    ) -> EngineResult<String> {
        let row = self.row(id).await?;
        let state = row.state;
        if state != ConversationState::Active
            || row.agent_extension.as_deref() != Some(agent.as_str())
        {
            return Err(EngineError::NotYourConversation);
        }
        // Only the conversation's own tenant's queues and agents exist here.
        let directory = self.directory();
        let own_tenant = directory.tenant_of_channel(&row.channel_key);
        let destination = directory.pbx().resolve(target).filter(|d| {
            let (kind, key) = match d {
                Destination::Queue(q) => (ItemKind::Queue, q.extension.as_str()),
                Destination::Agent(a) => (ItemKind::Agent, a.extension.as_str()),
            };
            directory.meta(kind, key).map(|m| m.tenant.as_str()) == own_tenant
        });
        let (queue, direct_to, label): (QueueExtension, Option<AgentExtension>, String) =
            match destination {
                Some(Destination::Queue(queue)) => (
                    queue.extension.clone(),
                    None,
                    format!("queue {} ({})", queue.extension, queue.name),
                ),
                Some(Destination::Agent(target_agent)) if &target_agent.extension == agent => {
                    return Ok("You already have this chat.".to_owned())
                }
                Some(Destination::Agent(target_agent)) => {
                    let queue = directory
                        .pbx()
                        .queues_of(&target_agent.extension)
                        .first()
                        .map(|q| q.extension.clone())
                        .or_else(|| self.queue_of(&row))
                        .ok_or_else(|| EngineError::InvalidState(state))?;
                    (
                        queue,
                        Some(target_agent.extension.clone()),
                        format!("{} ({})", target_agent.name, target_agent.extension),
                    )
                }
                None => return Ok(format!("No queue or agent has extension {target}.")),
            };
        let notice = MessageView::new(
            Party::System,
            self.channel_of(&row)?.config.name.clone(),
            "You are being transferred to a colleague. Please stay with us.".to_owned(),
        );
        let update = ConversationUpdate {
            state: Some(ConversationState::Queued),
            agent: Some(None),
            queue_extension: Some(Some(queue.to_string())),
            queued_at: Some(Some(now_ms())),
            ..Default::default()
        };
        let events = [
            event(EventBody::AgentLeft {
                agent: super::AgentView {
                    name: row.agent_name.clone().unwrap_or_default(),
                },
            }),
            event(EventBody::Message { message: notice }),
            event(EventBody::State {
                state: ConversationState::Queued,
            }),
        ];
        if self
            .commit(id, Some(state), &update, &events)
            .await?
            .is_none()
        {
            return Err(EngineError::NotYourConversation);
        }
        let store = &self.inner.store;
        store.add_declines(id, &[agent.to_string()]).await?;
        store
            .set_directed(id, direct_to.as_ref().map(AgentExtension::as_str))
            .await?;
        self.chat_ended_for(agent).await;
        info!(conversation = %id, to = %label, "chat transferred");
        self.dispatch(&queue).await;
        Ok(format!("Transferred to {label}."))
    }

    async fn describe_queues(&self, agent: &AgentExtension) -> EngineResult<String> {
        let directory = self.directory();
        let queues = directory.pbx().queues_of(agent);
        if queues.is_empty() {
            return Ok("You are not a member of any queue.".to_owned());
        }
        let waiting = self
            .inner
            .store
            .conversations_in_states(&[ConversationState::Queued, ConversationState::Offered])
            .await?;
        let now = now_ms();
        let mut lines = Vec::new();
        for queue in queues {
            let here: Vec<_> = waiting
                .iter()
                .filter(|r| r.queue_extension.as_deref() == Some(queue.extension.as_str()))
                .collect();
            lines.push(format!(
                "{} {}: {} waiting",
                queue.extension,
                queue.name,
                here.len()
            ));
            for row in here {
                let minutes = (now - row.queued_at.unwrap_or(row.created_at)) / 60_000;
                lines.push(format!("  {} – waiting {minutes} min", row.visitor_name));
            }
        }
        Ok(lines.join("\n"))
    }
}

/// The visitor card an agent sees first (offer) and on `/info`.
pub fn describe_visitor(summary: &super::ConversationSummary, state: &str) -> String {
    let mut lines = vec![format!(
        "{} <{}>",
        summary.visitor_name, summary.visitor_email
    )];
    if let Some(page) = &summary.page_url {
        lines.push(format!("Page: {page}"));
    }
    if let Some(option) = &summary.option_label {
        lines.push(format!("Chose: {option}"));
    }
    if let Some(queue) = &summary.queue {
        lines.push(format!("Queue: {queue}"));
    }
    lines.push(format!("Language: {}", summary.language));
    lines.push(format!(
        "Channel: {} ({})",
        summary.channel_name, summary.channel_key
    ));
    lines.push(format!("State: {state}"));
    lines.join("\n")
}

#[cfg(test)]
mod tests {
    use super::AgentCommand::*;
    use super::*;

    #[test]
    fn commands_are_recognised_and_text_is_not() {
        assert_eq!(AgentCommand::parse("/end"), Some(End));
        assert_eq!(AgentCommand::parse("  /END "), Some(End));
        assert_eq!(
            AgentCommand::parse("/transfer 601"),
            Some(Transfer("601".into()))
        );
        assert_eq!(
            AgentCommand::parse("/transfer"),
            Some(Unknown("transfer".into()))
        );
        assert_eq!(AgentCommand::parse("/info"), Some(Info));
        assert_eq!(AgentCommand::parse("/queue"), Some(Queue));
        assert_eq!(AgentCommand::parse("/help"), Some(Help));
        assert_eq!(
            AgentCommand::parse("/frobnicate"),
            Some(Unknown("frobnicate".into()))
        );
        assert_eq!(AgentCommand::parse("hello /end"), None);
        assert_eq!(AgentCommand::parse("//end is a path"), None);
        assert_eq!(AgentCommand::parse("/"), None);
    }
}
