//! Waiting chats whose visitor left, full queues, and clients that would
//! fill them.
//!
//! A visitor who closes the tab while waiting leaves a chat nobody will
//! read: it would ring agents and hold a queue position for ever. Every
//! node refreshes `visitor_seen_at` of the chats whose widget it holds a
//! socket for, and ends (any node) the waiting chats not seen for
//! `waiting.abandoned_after_secs`, with a note the visitor reads if they
//! come back. The rows, not this node's memory, decide, so it holds with
//! several nodes on one database.

use std::time::Duration;

use tracing::{info, warn};

use super::{Engine, EngineError, EngineResult};
use crate::domain::{ClientKey, Party};
use crate::store::now_ms;

/// What the visitor reads when they come back to an abandoned chat.
const ABANDONED_NOTICE: &str = "This chat was closed because you left while waiting. \
     Start a new chat whenever you like.";

/// How many abandoned chats one sweep ends at most.
const SWEEP_BATCH: i64 = 100;

impl Engine {
    /// Starts the heartbeat and sweep of abandoned chats (stopped by
    /// `shutdown`). Nothing runs when `after` is zero.
    pub fn watch_abandoned(&self, after: Duration) {
        if after.is_zero() {
            return;
        }
        // Refresh well within the limit, so a connected visitor is never
        // taken for gone.
        let every = (after / 4).clamp(Duration::from_millis(200), Duration::from_secs(60));
        let (engine, shutdown) = (self.clone(), self.inner.shutdown.clone());
        self.inner.tasks.spawn(async move {
            let mut tick = tokio::time::interval(every);
            loop {
                tokio::select! {
                    _ = tick.tick() => engine.sweep_abandoned(after).await,
                    _ = shutdown.cancelled() => break,
                }
            }
        });
    }

    async fn sweep_abandoned(&self, after: Duration) {
        let now = now_ms();
        let followed = self.inner.hub.followed();
        if let Err(e) = self.inner.store.mark_visitors_seen(&followed, now).await {
            warn!(error = %e, "cannot record connected visitors");
            return;
        }
        let cutoff = now - i64::try_from(after.as_millis()).unwrap_or(i64::MAX);
        let abandoned = match self
            .inner
            .store
            .abandoned_waiting(cutoff, SWEEP_BATCH)
            .await
        {
            Ok(ids) => ids,
            Err(e) => {
                warn!(error = %e, "cannot look for abandoned chats");
                return;
            }
        };
        for id in abandoned {
            let ended = self
                .end(
                    id,
                    Party::System,
                    "abandoned",
                    Some(ABANDONED_NOTICE.to_owned()),
                )
                .await;
            match ended {
                Ok(_) => info!(conversation = %id, "ended a chat its visitor left"),
                Err(e) => warn!(conversation = %id, error = %e, "cannot end an abandoned chat"),
            }
        }
    }

    /// Refuses a new waiting chat to a client that has its most waiting.
    pub(super) async fn check_client_may_wait(&self, client: &ClientKey) -> EngineResult<()> {
        let most = self.inner.limits.max_waiting_per_client;
        if most == 0 {
            return Ok(());
        }
        if self.inner.store.waiting_of_client(client.as_str()).await? >= i64::from(most) {
            warn!("a client with too many waiting chats was refused another");
            return Err(EngineError::TooManyWaiting { limit: most });
        }
        Ok(())
    }

    /// Refuses a new chat in `queue` when it already holds its most.
    pub(super) async fn check_room_in(&self, queue: &str) -> EngineResult<()> {
        let most = self.inner.limits.max_waiting_per_queue;
        if most == 0 {
            return Ok(());
        }
        let waiting = self.inner.store.waiting_in_queue(queue).await?;
        if waiting >= i64::from(most) {
            warn!(queue, waiting, "queue full: a new chat was refused");
            return Err(EngineError::QueueFull);
        }
        Ok(())
    }
}
