//! Maximum wait: a visitor who has waited a queue's `max_wait_secs`
//! overflows, as a PBX call would, to another queue or to the channel's
//! contact alternatives (the same ones shown out of hours).

use std::time::Duration;

use pbx_adapter::queue::{Overflow, QueueConfig};
use tracing::{info, warn};

use super::{event, ConversationState, Engine, EventBody, MessageView};
use crate::domain::{ConversationId, Party};
use crate::store::{now_ms, ConversationRow, ConversationUpdate};

impl Engine {
    /// Starts the max-wait timer of a waiting conversation if its queue has
    /// one and it is not running yet. The deadline counts from `queued_at`,
    /// so it survives restarts.
    pub(super) fn arm_max_wait(&self, queue: &QueueConfig, row: &ConversationRow) {
        let Some((max_wait, _)) = queue.overflow_after() else {
            return;
        };
        if self.live().wait_timers.contains_key(&row.id) {
            return;
        }
        let waited = now_ms() - row.queued_at.unwrap_or(row.created_at);
        let remaining = max_wait.saturating_sub(Duration::from_millis(waited.max(0) as u64));
        let (engine, shutdown, id) = (self.clone(), self.inner.shutdown.clone(), row.id);
        let queue_ext = queue.extension.to_string();
        let timer = self
            .inner
            .tasks
            .spawn(async move {
                tokio::select! {
                    _ = tokio::time::sleep(remaining) => engine.overflow(id, &queue_ext).await,
                    _ = shutdown.cancelled() => {}
                }
            })
            .abort_handle();
        self.live().wait_timers.insert(row.id, timer);
    }

    /// Moves a conversation that waited too long to its queue's overflow.
    async fn overflow(&self, id: ConversationId, from_queue: &str) {
        self.live().wait_timers.remove(&id);
        let Ok(row) = self.row(id).await else { return };
        let state = row.state;
        if !state.is_waiting() || row.queue_extension.as_deref() != Some(from_queue) {
            return;
        }
        let Some(queue) = self
            .queue_of(&row)
            .and_then(|q| self.directory().pbx().queue(&q).cloned())
        else {
            return;
        };
        let Some((_, target)) = queue.overflow_after() else {
            return;
        };
        if let Some(agents) = self.take_offer(id) {
            if let Ok(summary) = self.summary(&row) {
                let configs = self.agent_configs(&agents);
                self.withdraw(&summary, &configs, None).await;
            }
        }
        let result = match target {
            Overflow::Queue(next) => self.overflow_to_queue(&row, state, next).await,
            Overflow::Alternatives => self.overflow_to_alternatives(&row, state).await,
        };
        if let Err(e) = result {
            warn!(conversation = %id, error = %e, "overflow failed");
        }
        self.dispatch(&queue.extension).await;
    }

    async fn overflow_to_queue(
        &self,
        row: &ConversationRow,
        state: ConversationState,
        next: &pbx_adapter::QueueExtension,
    ) -> super::EngineResult<()> {
        let update = ConversationUpdate {
            state: Some(ConversationState::Queued),
            queue_extension: Some(Some(next.to_string())),
            queued_at: Some(Some(now_ms())),
            ..Default::default()
        };
        let events = [event(EventBody::State {
            state: ConversationState::Queued,
        })];
        if self
            .commit(row.id, Some(state), &update, &events)
            .await?
            .is_some()
        {
            self.live().declined.remove(&row.id);
            info!(conversation = %row.id, to = %next, "waited too long: moved to the overflow queue");
            self.dispatch(next).await;
        }
        Ok(())
    }

    async fn overflow_to_alternatives(
        &self,
        row: &ConversationRow,
        state: ConversationState,
    ) -> super::EngineResult<()> {
        let channel = self.channel_of(row)?;
        let mut text = String::from("All our advisors are busy right now. You can also reach us:");
        for alternative in &channel.config.closed.alternatives {
            text.push_str(&format!("\n{}: {}", alternative.label, alternative.value));
        }
        let notice = MessageView::new(Party::System, channel.config.name.clone(), text);
        let update = ConversationUpdate {
            state: Some(ConversationState::Ended),
            ended_at: Some(Some(now_ms())),
            ..Default::default()
        };
        let events = [
            event(EventBody::Message { message: notice }),
            event(EventBody::State {
                state: ConversationState::Ended,
            }),
            event(EventBody::Closed {
                by: Party::System,
                reason: "no_agent_available".to_owned(),
            }),
        ];
        if self
            .commit(row.id, Some(state), &update, &events)
            .await?
            .is_some()
        {
            self.forget(row.id);
            info!(conversation = %row.id, "waited too long: offered the contact alternatives");
        }
        Ok(())
    }
}
