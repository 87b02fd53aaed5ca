//! Maximum wait: a visitor who has waited a queue's `max_wait_secs`
//! overflows, as a PBX call would, to another queue or to the channel's
//! contact alternatives (the same ones shown out of hours).

use std::time::Duration;

use pbx_adapter::queue::{Overflow, QueueConfig};
use pbx_adapter::QueueExtension;
use tracing::{info, warn};

use super::{event, timers, ConversationState, Engine, EventBody, MessageView};
use crate::domain::{ConversationId, Party};
use crate::store::{now_ms, ConversationRow, ConversationUpdate, Ranked, TimerRow};

impl Engine {
    /// The max-wait timer of a chat joining `queue` now, if the queue has
    /// a max wait. The timer is a row (see `timers.rs`), so it survives
    /// restarts and node deaths.
    pub(super) fn max_wait_timer(
        &self,
        queue: &QueueExtension,
        id: ConversationId,
    ) -> Option<TimerRow> {
        let (max_wait, _) = self.directory().pbx().queue(queue)?.overflow_after()?;
        Some(TimerRow {
            kind: timers::MAX_WAIT.to_owned(),
            subject: id.to_string(),
            due_at: now_ms() + millis(max_wait),
            arg: Some(queue.to_string()),
        })
    }

    /// Sets the max-wait timer of each chat of `queue`'s line that has
    /// none (it moved queue, or came back to one). The deadline counts
    /// from `queued_at`.
    pub(super) async fn arm_max_wait(
        &self,
        queue: &QueueConfig,
        line: &[Ranked],
    ) -> super::EngineResult<()> {
        let Some((max_wait, _)) = queue.overflow_after() else {
            return Ok(());
        };
        let mut set_any = false;
        for waiting in line.iter().filter(|w| !w.timed) {
            let timer = TimerRow {
                kind: timers::MAX_WAIT.to_owned(),
                subject: waiting.id.to_string(),
                due_at: waiting.queued_at + millis(max_wait),
                arg: Some(queue.extension.to_string()),
            };
            self.inner.store.set_timer_once(&timer).await?;
            set_any = true;
        }
        if set_any {
            self.inner.timers_changed.notify_waiters();
        }
        Ok(())
    }

    /// Moves a conversation that waited too long in `from_queue` to that
    /// queue's overflow (its max-wait timer fired).
    pub(super) async fn overflow(&self, id: ConversationId, from_queue: &str) {
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
        if let Some(agents) = self.take_offer(id).await {
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
            self.forget(row.id).await;
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
            self.forget(row.id).await;
            info!(conversation = %row.id, "waited too long: offered the contact alternatives");
        }
        Ok(())
    }
}

fn millis(d: Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX / 2)
}
