//! What visitors do: start a conversation (or be refused out of hours),
//! pick a chatbot option, send messages, type, read the history, end the
//! chat. The API layer calls these after parsing the request into domain
//! values.

use std::sync::Arc;

use chrono::Utc;
use tracing::{info, instrument, warn};

use super::channels::Routed;
use super::{
    event, message_of, AgentView, ConversationView, Engine, EngineError, EngineResult, EventBody,
    EventView, MessageView, NewVisitor, Notice, VisitorView,
};
use crate::domain::{
    ClientMessageId, ConversationId, ConversationState, MessageBody, PageUrl, Party, VisitorToken,
};
use crate::store::{now_ms, Appended, ConversationIdentity, ConversationUpdate, NewConversation};

impl Engine {
    /// Starts a conversation where the channel's routing sends it now (a
    /// queue or the chatbot menu), or refuses with `Closed` (the attempt
    /// is still recorded, in state `closed_out_of_hours`).
    #[instrument(skip_all, fields(channel = %channel_key))]
    pub async fn start_conversation(
        &self,
        channel_key: &str,
        visitor: NewVisitor,
    ) -> EngineResult<(ConversationView, VisitorToken)> {
        let channel = self.enabled_channel(channel_key)?;
        let now = Utc::now();
        let id = ConversationId::new();
        let token = VisitorToken::generate();
        let language = channel.pick_language(&visitor.language);
        let (target, queue) = match channel.route_at(now) {
            Routed::Queue(queue) => (ConversationState::Queued, Some(queue)),
            Routed::Menu => (ConversationState::ChatbotMenu, None),
            Routed::Closed(_) => (ConversationState::ClosedOutOfHours, None),
        };
        let open = target != ConversationState::ClosedOutOfHours;
        ConversationState::Started.transition(target)?;
        if let Some(queue) = &queue {
            self.check_room_in(queue.as_str()).await?;
        }
        if let (true, Some(client)) = (target.is_waiting_for_agent(), &visitor.client) {
            self.check_client_may_wait(client).await?;
        }
        let new = NewConversation {
            id,
            channel_key: channel_key.to_owned(),
            token_hash: token.hash(),
            state: target,
            visitor_name: visitor.name.as_str().to_owned(),
            visitor_email: visitor.email.as_str().to_owned(),
            page_url: visitor.page_url.map(PageUrl::into_string),
            language,
            queue_extension: queue.as_ref().map(ToString::to_string),
            ended: target.is_final(),
            client_key: visitor.client.as_ref().map(|c| c.as_str().to_owned()),
        };
        let events = [event(EventBody::State { state: target })];
        let (stored, joined) = match &queue {
            Some(queue) => {
                let (stored, joined) = self.create_queued(&new, &events, queue).await?;
                (stored, Some(joined))
            }
            None => (
                self.inner.store.create_conversation(&new, &events).await?,
                None,
            ),
        };
        let position = joined.as_ref().map(|j| j.position);
        if !open {
            info!(conversation = %id, "conversation refused outside opening hours");
            return Err(EngineError::Closed {
                next_open: channel.schedule.next_open(now),
            });
        }
        metrics::counter!("frontdesk_conversations_started_total").increment(1);
        info!(conversation = %id, state = %target, "conversation started");
        if let (Some(queue), Some(joined)) = (queue, joined) {
            self.joined(&queue, id, joined).await;
        }
        // As committed, not read back: what dispatch changed since (an
        // offer) reaches the visitor as the events after `last_seq`.
        let view = ConversationView {
            id,
            channel: new.channel_key,
            state: target,
            visitor: VisitorView {
                name: new.visitor_name,
                email: new.visitor_email,
            },
            agent: None,
            queue_position: position,
            last_seq: stored.last().map_or(0, |e| e.seq),
        };
        Ok((view, token))
    }

    /// Checks the visitor's token of a conversation (and that it has not
    /// outlived `visitor_token_ttl`); reads nothing when its identity is
    /// cached.
    pub async fn authenticate(
        &self,
        id: ConversationId,
        token: &VisitorToken,
    ) -> EngineResult<Option<Arc<ConversationIdentity>>> {
        let identity = self.identity(id).await?;
        let ttl = self.inner.limits.visitor_token_ttl_ms;
        let fresh = ttl == 0 || now_ms() - identity.created_at <= ttl;
        Ok((fresh && identity.token_hash.matches(token)).then_some(identity))
    }

    pub async fn view(&self, id: ConversationId) -> EngineResult<ConversationView> {
        let row = self.row(id).await?;
        let position = self.position_of(id).await;
        Ok(ConversationView {
            id,
            channel: row.channel_key.clone(),
            state: row.state,
            visitor: VisitorView {
                name: row.visitor_name.clone(),
                email: row.visitor_email.clone(),
            },
            agent: row.agent_name.clone().map(|name| AgentView { name }),
            queue_position: position.filter(|_| row.state.is_waiting()),
            last_seq: row.last_seq,
        })
    }

    /// The visitor picked a chatbot option: show its welcome text, then
    /// queue the conversation for the option's queue.
    #[instrument(skip(self), fields(conversation = %id))]
    pub async fn choose_option(
        &self,
        id: ConversationId,
        option_id: &str,
    ) -> EngineResult<ConversationView> {
        let row = self.row(id).await?;
        let state = row.state;
        if state.is_final() {
            return Err(EngineError::ConversationEnded);
        }
        if state != ConversationState::ChatbotMenu {
            return Err(EngineError::InvalidState(state));
        }
        let channel = self.channel_of(&row)?;
        let option = channel
            .config
            .options
            .iter()
            .find(|o| o.id == option_id)
            .ok_or(EngineError::UnknownOption)?;
        let next = state.transition(ConversationState::Queued)?;
        self.check_room_in(option.queue.as_str()).await?;
        let welcome = MessageView::new(
            Party::System,
            channel.config.name.clone(),
            option.welcome.clone(),
        );
        let update = ConversationUpdate {
            state: Some(next),
            option_id: Some(Some(option.id.clone())),
            queue_extension: Some(Some(option.queue.to_string())),
            queued_at: Some(Some(now_ms())),
            ..Default::default()
        };
        let events = [
            event(EventBody::Message { message: welcome }),
            event(EventBody::State { state: next }),
        ];
        self.commit(id, Some(state), &update, &events).await?;
        info!(option = %option.id, queue = %option.queue, "chatbot option chosen");
        self.dispatch(&option.queue).await;
        self.view(id).await
    }

    /// Stores a visitor's message (once per `client_id`) and forwards it
    /// to the agent in charge. Returns the message and whether it was new.
    /// Nothing is read first: whether the chat is still open, and who it
    /// is for, are decided where it is stored, under the row's write lock
    /// (`store/batch.rs`); a retry of a message stored before the chat
    /// ended still gets it back.
    #[instrument(skip(self, body), fields(conversation = %id))]
    pub async fn post_visitor_message(
        &self,
        id: ConversationId,
        client_id: ClientMessageId,
        body: MessageBody,
    ) -> EngineResult<(MessageView, bool)> {
        let identity = self.identity(id).await?;
        let message = MessageView::new(
            Party::Visitor,
            identity.visitor_name.clone(),
            body.into_string(),
        )
        .with_client_id(Some(client_id.as_str().to_owned()));
        let _in_order = self.outbound(id).await;
        let mut new = event(EventBody::Message { message });
        new.client_id = Some(client_id.as_str().to_owned());
        let (stored, row, deliver_to) =
            match self.inner.store.append_visitor_message(id, new).await? {
                Appended::Created {
                    event,
                    conversation,
                    deliver_to,
                } => (event, conversation, deliver_to),
                Appended::Existing(first) => return Ok((message_of(&first)?, false)),
                Appended::Ended => return Err(EngineError::ConversationEnded),
            };
        let message = message_of(&stored)?;
        self.announce(id, std::slice::from_ref(&stored));
        metrics::counter!("frontdesk_messages_total", "from" => "visitor").increment(1);
        if !deliver_to.is_empty() {
            let recipients = self.known_recipients(&stored, &deliver_to).await;
            if !recipients.is_empty() {
                self.forward(&self.summary(&row)?, &message, &recipients)
                    .await;
            }
        }
        Ok((message, true))
    }

    /// Messages of a conversation after `after_seq`, in order.
    pub async fn messages(
        &self,
        id: ConversationId,
        after_seq: i64,
        limit: i64,
    ) -> EngineResult<Vec<MessageView>> {
        let events = self
            .inner
            .store
            .events_of_kind(id, "message", after_seq, limit)
            .await?;
        events.iter().map(message_of).collect()
    }

    /// Durable events after `after_seq`, in order.
    pub async fn events_after(
        &self,
        id: ConversationId,
        after_seq: i64,
        limit: i64,
    ) -> EngineResult<Vec<EventView>> {
        let events = self.inner.store.events_after(id, after_seq, limit).await?;
        Ok(events
            .iter()
            .map(EventView::try_from)
            .collect::<Result<_, _>>()?)
    }

    pub async fn visitor_typing(&self, id: ConversationId, composing: bool) -> EngineResult<()> {
        let row = self.row(id).await?;
        if let Some(agent) = self.assigned_agent(&row) {
            let summary = self.summary(&row)?;
            if let Err(e) = self
                .inner
                .agents
                .notify(&agent, &summary, Notice::Typing(composing))
                .await
            {
                warn!(conversation = %id, error = %e, "could not forward typing");
            }
        }
        Ok(())
    }

    /// Ends a conversation (idempotent once ended).
    #[instrument(skip(self), fields(conversation = %id))]
    pub async fn close(&self, id: ConversationId, by: Party) -> EngineResult<ConversationView> {
        let reason = match by {
            Party::Visitor => "the visitor ended the chat",
            Party::Agent => "the agent ended the chat",
            Party::System => "the chat was ended",
        };
        self.end(id, by, reason, None).await
    }

    /// Ends a conversation with `reason`, after a `notice` the visitor reads
    /// in the chat (if any); withdraws its offer, tells its agent.
    pub(super) async fn end(
        &self,
        id: ConversationId,
        by: Party,
        reason: &str,
        notice: Option<String>,
    ) -> EngineResult<ConversationView> {
        let row = self.row(id).await?;
        let state = row.state;
        if state.is_final() {
            return self.view(id).await;
        }
        let next = state.transition(ConversationState::Ended)?;
        let update = ConversationUpdate {
            state: Some(next),
            ended_at: Some(Some(now_ms())),
            ..Default::default()
        };
        let mut events = Vec::with_capacity(3);
        if let Some(text) = notice {
            let author = self.channel_of(&row)?.config.name.clone();
            let message = MessageView::new(Party::System, author, text);
            events.push(event(EventBody::Message { message }));
        }
        events.push(event(EventBody::State { state: next }));
        events.push(event(EventBody::Closed {
            by,
            reason: reason.to_owned(),
        }));
        if self
            .commit(id, Some(state), &update, &events)
            .await?
            .is_none()
        {
            // Someone else moved it first; report what it is now.
            return self.view(id).await;
        }
        info!(by = ?by, "conversation ended");
        let summary = self.summary(&row)?;
        if let Some(offer) = self.take_offer(id).await {
            let agents = self.agent_configs(&offer);
            self.withdraw(&summary, &agents, None).await;
        }
        if let Some(agent) = self.assigned_agent(&row) {
            if by != Party::Agent {
                let ended = Notice::Ended(by);
                if let Err(e) = self.inner.agents.notify(&agent, &summary, ended).await {
                    warn!(error = %e, "could not tell the agent the chat ended");
                }
            }
        }
        self.forget(id).await;
        self.drop_deliveries(id, None).await;
        if let Some(agent) = row.agent_extension.as_deref().and_then(|a| a.parse().ok()) {
            self.chat_ended_for(&agent).await;
        }
        if let Some(queue) = self.queue_of(&row) {
            self.dispatch(&queue).await;
        }
        self.view(id).await
    }
}
