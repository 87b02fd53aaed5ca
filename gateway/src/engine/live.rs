//! What the console's live view shows (spec M5): chats waiting with their
//! queue position and waiting time, offers ringing, each agent's chats and
//! availability.
//!
//! Built on demand from the store (states, assignments) and this node's
//! memory (presence, ringing offers, positions); the console asks again
//! when [`Hub::activity`](super::Hub::activity) moves. Presence and offers
//! are per node until the dispatcher's state moves to the database.

use serde::Serialize;

use super::{AgentStatus, Engine, EngineResult};
use crate::domain::ConversationState;

/// One chat not yet answered.
#[derive(Debug, Clone, Serialize)]
pub struct WaitingChat {
    pub id: String,
    pub channel_key: String,
    pub queue: Option<String>,
    /// `queued` or `offered` (ringing).
    pub state: &'static str,
    /// 1 = next to be offered in its queue.
    pub position: Option<u32>,
    pub visitor_name: String,
    /// When it joined the queue (Unix milliseconds).
    pub waiting_since: i64,
    /// Extensions its offer rings right now.
    pub ringing: Vec<String>,
}

/// One chat an agent has.
#[derive(Debug, Clone, Serialize)]
pub struct AgentChat {
    pub id: String,
    pub channel_key: String,
    pub visitor_name: String,
    pub since: i64,
}

/// An agent and what they are doing.
#[derive(Debug, Clone, Serialize)]
pub struct AgentLive {
    pub extension: String,
    pub name: String,
    /// `available`, `busy` (away, do not disturb) or `offline`.
    pub status: &'static str,
    pub chats: Vec<AgentChat>,
}

#[derive(Debug, Clone, Serialize)]
pub struct LiveView {
    pub waiting: Vec<WaitingChat>,
    pub agents: Vec<AgentLive>,
}

impl Engine {
    /// The live view of the whole gateway (the API keeps a tenant's part).
    pub async fn live_view(&self) -> EngineResult<LiveView> {
        let rows = self.open_conversations().await?;
        let directory = self.directory();
        let statuses = self.statuses().await?;
        let positions = self.inner.store.positions().await?;
        let offers = self.inner.store.offers_all().await?;
        let mut waiting = Vec::new();
        let mut agents: Vec<AgentLive> = (directory.pbx().agents().iter())
            .map(|a| AgentLive {
                extension: a.extension.to_string(),
                name: a.name.clone(),
                status: statuses
                    .get(&a.extension)
                    .copied()
                    .unwrap_or(AgentStatus::Offline)
                    .as_str(),
                chats: Vec::new(),
            })
            .collect();
        for row in rows {
            if row.state == ConversationState::Active {
                let agent = row.agent_extension.as_deref();
                if let Some(agent) = agents
                    .iter_mut()
                    .find(|a| Some(a.extension.as_str()) == agent)
                {
                    agent.chats.push(AgentChat {
                        id: row.id.to_string(),
                        channel_key: row.channel_key,
                        visitor_name: row.visitor_name,
                        since: row.queued_at.unwrap_or(row.created_at),
                    });
                }
                continue;
            }
            waiting.push(WaitingChat {
                id: row.id.to_string(),
                channel_key: row.channel_key,
                queue: row.queue_extension,
                state: row.state.as_str(),
                position: positions.get(&row.id).copied(),
                visitor_name: row.visitor_name,
                waiting_since: row.queued_at.unwrap_or(row.created_at),
                ringing: offers.get(&row.id).cloned().unwrap_or_default(),
            });
        }
        Ok(LiveView { waiting, agents })
    }
}
