//! What agents do, called by the protocol bridges: presence, taking an
//! offer (explicitly or by replying first), messages, typing, receipts,
//! ending a chat, declining an offer.

use pbx_adapter::queue::AgentConfig;
use pbx_adapter::AgentExtension;
use std::collections::HashMap;

use tracing::{info, instrument, warn};

use super::{
    agent_message_view, event, message_of, AgentStatus, AgentView, ConversationView, Engine,
    EngineError, EngineResult, EventBody, MessageView, ReceiptStatus, Signal,
};
use crate::domain::{ConversationId, ConversationState, MessageBody, Party};
use crate::store::{is_unique_violation, now_ms, ConversationRow, ConversationUpdate};

/// The presence source of [`Engine::set_agent_status`] (one per agent).
const DEFAULT_SOURCE: &str = "bridge";

/// Where an agent message's protocol identity is kept (`client_id`):
/// `agent EXT HASH`, a SHA-256 of the identity, so any length fits.
fn agent_request_key(agent: &AgentExtension, request: &str) -> String {
    use sha2::{Digest, Sha256};
    let digest = Sha256::digest(request.as_bytes());
    format!("agent {agent} {}", hex::encode(&digest[..16]))
}

impl Engine {
    /// An agent's presence changed. `Offline` re-queues their chats;
    /// `Busy` and `Offline` both stop new offers and count their ringing
    /// offers as declined; `Available` triggers offers.
    #[instrument(skip(self))]
    pub async fn set_agent_status(&self, agent: &AgentExtension, status: AgentStatus) {
        self.set_agent_presence(agent, DEFAULT_SOURCE, status).await;
    }

    /// What one `source` (a bridge, a node's component connection) says
    /// of an agent; the agent is as available as their most available
    /// source says, in the store every node reads.
    #[instrument(skip(self))]
    pub async fn set_agent_presence(
        &self,
        agent: &AgentExtension,
        source: &str,
        status: AgentStatus,
    ) {
        let store = &self.inner.store;
        let before = self.status_of(agent).await;
        if let Err(e) = store
            .set_presence(agent.as_str(), source, status.as_str(), now_ms())
            .await
        {
            warn!(error = %e, "cannot record an agent's presence");
            return;
        }
        let after = self.status_of(agent).await;
        self.live().status.insert(agent.clone(), after);
        if before == after {
            return;
        }
        self.inner.status_changed.notify_waiters();
        self.inner.hub.touch();
        info!(status = ?after, "agent status changed");
        if after == AgentStatus::Offline {
            self.requeue_chats_of(agent).await;
        }
        if after != AgentStatus::Available {
            self.decline_offers_of(agent).await;
        }
        self.dispatch_all().await;
    }

    /// Every agent's status, from the store (missing: offline).
    pub(super) async fn statuses(&self) -> EngineResult<HashMap<AgentExtension, AgentStatus>> {
        let mut statuses: HashMap<AgentExtension, AgentStatus> = HashMap::new();
        for (agent, _source, status) in self.inner.store.presence_all().await? {
            let (Ok(agent), Some(status)) = (agent.parse(), AgentStatus::parse(&status)) else {
                continue;
            };
            let best = statuses.entry(agent).or_insert(AgentStatus::Offline);
            *best = (*best).max(status);
        }
        Ok(statuses)
    }

    async fn status_of(&self, agent: &AgentExtension) -> AgentStatus {
        match self.statuses().await {
            Ok(statuses) => statuses.get(agent).copied().unwrap_or(AgentStatus::Offline),
            Err(_) => AgentStatus::Offline,
        }
    }

    /// Shorthand: available, or offline.
    pub async fn set_agent_available(&self, agent: &AgentExtension, available: bool) {
        let status = if available {
            AgentStatus::Available
        } else {
            AgentStatus::Offline
        };
        self.set_agent_status(agent, status).await;
    }

    pub fn is_available(&self, agent: &AgentExtension) -> bool {
        self.live().status.get(agent) == Some(&AgentStatus::Available)
    }

    /// Resolves once `agent` is available (for bridges' readiness checks
    /// and tests; wrap it in a timeout).
    pub async fn until_available(&self, agent: &AgentExtension) {
        loop {
            let changed = self.inner.status_changed.notified();
            if self.is_available(agent) {
                return;
            }
            changed.await;
        }
    }

    /// An agent accepts an offered conversation (explicitly, or by replying
    /// first). Returns the view; `NotYourConversation` if it was not offered
    /// to them or someone else took it.
    #[instrument(skip(self), fields(conversation = %id))]
    pub async fn agent_accept(
        &self,
        id: ConversationId,
        agent: &AgentExtension,
    ) -> EngineResult<ConversationView> {
        let row = self.row(id).await?;
        let state = row.state;
        if state.is_final() {
            return Err(EngineError::ConversationEnded);
        }
        if state == ConversationState::Active
            && row.agent_extension.as_deref() == Some(agent.as_str())
        {
            return self.view(id).await;
        }
        let offered_to_them = self.rings_for(id, agent).await;
        if state != ConversationState::Offered || !offered_to_them {
            return Err(EngineError::NotYourConversation);
        }
        let config = self
            .directory()
            .pbx()
            .agent(agent)
            .cloned()
            .ok_or(EngineError::NotYourConversation)?;
        let next = state.transition(ConversationState::Active)?;
        let update = ConversationUpdate {
            state: Some(next),
            agent: Some(Some((agent.to_string(), config.name.clone()))),
            ..Default::default()
        };
        let events = [
            event(EventBody::State { state: next }),
            event(EventBody::AgentJoined {
                agent: AgentView {
                    name: config.name.clone(),
                },
            }),
        ];
        if self
            .commit(id, Some(state), &update, &events)
            .await?
            .is_none()
        {
            return Err(EngineError::NotYourConversation);
        }
        info!(agent = %agent, "agent took the conversation");
        let summary = self.summary(&row)?;
        if let Some(offer) = self.take_offer(id).await {
            let others: Vec<AgentConfig> = self
                .agent_configs(&offer)
                .into_iter()
                .filter(|a| &a.extension != agent)
                .collect();
            self.withdraw(&summary, &others, Some(&config.name)).await;
        }
        self.forget(id).await;
        self.drop_deliveries(id, Some(agent)).await;
        if let Err(e) = self.inner.store.record_chat_taken(agent.as_str()).await {
            warn!(error = %e, "cannot count a chat taken");
        }
        if let Some(queue) = self.queue_of(&row) {
            self.dispatch(&queue).await;
        }
        self.view(id).await
    }

    /// An agent's message to the visitor. A first reply to an offer takes
    /// the conversation.
    pub async fn agent_message(
        &self,
        id: ConversationId,
        agent: &AgentExtension,
        body: &str,
    ) -> EngineResult<MessageView> {
        self.agent_message_once(id, agent, body, None).await
    }

    /// An agent's message to the visitor, stored once per `request` (the
    /// protocol's identity of the message, which every copy of it shares):
    /// a copy the agent's client sent again because the first got no
    /// answer gets the first one back, even from a gateway restarted in
    /// between. The key is kept in the event's `client_id` column, never
    /// in what the visitor reads, and has a space, which visitors'
    /// `client_id`s cannot. A copy with another text (a client reusing
    /// ids) is stored as a message of its own.
    #[instrument(skip(self, body, request), fields(conversation = %id))]
    pub async fn agent_message_once(
        &self,
        id: ConversationId,
        agent: &AgentExtension,
        body: &str,
        request: Option<&str>,
    ) -> EngineResult<MessageView> {
        let row = self.row(id).await?;
        let channel = self.channel_of(&row)?;
        let body = MessageBody::parse(body, channel.config.limits.max_message_chars)?;
        let mut key = request.map(|r| agent_request_key(agent, r));
        if let Some(k) = &key {
            if let Some(first) = self.inner.store.event_by_client_id(id, k).await? {
                match message_of(&first) {
                    Ok(message) if message.body == body.as_str() => {
                        info!(agent = %agent, "a copy of an agent message; stored once");
                        return Ok(message);
                    }
                    _ => key = None,
                }
            }
        }
        let row = self.claim_for_agent(row, agent).await?;
        let message = agent_message_view(&row, body.into_string());
        let mut new = event(EventBody::Message { message });
        new.client_id = key.clone();
        let stored = match self
            .commit(id, None, &ConversationUpdate::default(), &[new])
            .await
        {
            Ok(stored) => stored.ok_or(EngineError::UnknownConversation)?,
            // A concurrent copy was stored first.
            Err(EngineError::Store(e)) if key.is_some() && is_unique_violation(&e) => {
                let key = key.as_deref().unwrap_or_default();
                let first = self.inner.store.event_by_client_id(id, key).await?;
                return message_of(&first.ok_or(EngineError::Store(e))?);
            }
            Err(e) => return Err(e),
        };
        metrics::counter!("frontdesk_messages_total", "from" => "agent").increment(1);
        message_of(&stored[0])
    }

    /// What an agent sends into a conversation needs it to be theirs: a
    /// first reply to an offer takes it; then it must be active and
    /// assigned to them. Returns the up-to-date row.
    pub(crate) async fn claim_for_agent(
        &self,
        row: ConversationRow,
        agent: &AgentExtension,
    ) -> EngineResult<ConversationRow> {
        let id = row.id;
        if row.state == ConversationState::Offered {
            self.agent_accept(id, agent).await?;
        }
        let row = self.row(id).await?;
        let state = row.state;
        if state.is_final() {
            return Err(EngineError::ConversationEnded);
        }
        if state != ConversationState::Active
            || row.agent_extension.as_deref() != Some(agent.as_str())
        {
            return Err(EngineError::NotYourConversation);
        }
        Ok(row)
    }

    /// The agent in charge (or one the offer rings for) is typing
    /// (ephemeral: not stored). Anyone else's typing is refused with
    /// `NotYourConversation`.
    pub async fn agent_typing(
        &self,
        id: ConversationId,
        agent: &AgentExtension,
        composing: bool,
    ) -> EngineResult<()> {
        let row = self.row(id).await?;
        if !self.concerns(&row, agent).await {
            return Err(EngineError::NotYourConversation);
        }
        self.inner.hub.publish(id, Signal::AgentTyping(composing));
        Ok(())
    }

    /// The agent's client confirmed delivery or display of visitor messages
    /// up to `up_to_seq`. Only the agent in charge (or one the offer rings
    /// for) is heard; the seq is clamped to the conversation's last one, and a
    /// receipt that confirms nothing new is not stored.
    pub async fn agent_receipt(
        &self,
        id: ConversationId,
        agent: &AgentExtension,
        status: ReceiptStatus,
        up_to_seq: i64,
    ) -> EngineResult<()> {
        let row = self.row(id).await?;
        if !self.concerns(&row, agent).await {
            return Err(EngineError::NotYourConversation);
        }
        let up_to_seq = up_to_seq.min(row.last_seq);
        // Reading implies delivery. Two racing receipts may both be stored;
        // the widget keeps the highest.
        let update = match status {
            ReceiptStatus::Delivered if up_to_seq > row.delivered_seq => ConversationUpdate {
                delivered_seq: Some(up_to_seq),
                ..Default::default()
            },
            ReceiptStatus::Read if up_to_seq > row.read_seq => ConversationUpdate {
                delivered_seq: Some(up_to_seq.max(row.delivered_seq)),
                read_seq: Some(up_to_seq),
                ..Default::default()
            },
            _ => return Ok(()),
        };
        self.commit(
            id,
            None,
            &update,
            &[event(EventBody::Receipt { status, up_to_seq })],
        )
        .await?;
        Ok(())
    }

    /// The agent ends the chat from their client.
    pub async fn agent_end(
        &self,
        id: ConversationId,
        agent: &AgentExtension,
    ) -> EngineResult<ConversationView> {
        let row = self.row(id).await?;
        if !self.is_assigned_to(&row, agent) {
            return Err(EngineError::NotYourConversation);
        }
        self.close(id, Party::Agent).await
    }

    /// One agent declined, could not be reached, or went away during an
    /// offer: the others keep ringing; when none is left, it moves on.
    pub async fn offer_declined(&self, id: ConversationId, agent: &AgentExtension) {
        let store = &self.inner.store;
        if let Err(e) = store.add_declines(id, &[agent.to_string()]).await {
            warn!(conversation = %id, error = %e, "cannot record a declined offer");
        }
        match store.offer_without(id, agent.as_str()).await {
            Ok(Some(remaining)) if remaining.is_empty() => self.offer_expired(id).await,
            Ok(Some(_)) => self.agents_freed(std::slice::from_ref(agent)),
            Ok(None) => {}
            Err(e) => warn!(conversation = %id, error = %e, "cannot withdraw a declined offer"),
        }
    }
}
