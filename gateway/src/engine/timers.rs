//! Durable timers: offers that ring out, visitors who waited too long,
//! agents whose wrap-up ends.
//!
//! A timer is a row (`store::TimerRow`), never a task: the node that sets
//! one wakes its own loop at once, and every node's loop also polls, so a
//! timer whose node died fires on another one, no later than a poll after
//! it was due. Each due timer is claimed with a compare-and-set (exactly
//! one node fires it); a node that dies after claiming leaves it to be
//! claimed again once its claim lapses. Firing is safe to repeat: what a
//! timer does is guarded by the conversation's expected state.

use std::time::Duration;

use tracing::{debug, warn};

use super::Engine;
use crate::domain::ConversationId;
use crate::store::{now_ms, TimerRow};

/// An offer rang out (subject: the conversation).
pub(super) const OFFER: &str = "offer";
/// A visitor waited the queue's most (subject: the conversation; arg: the
/// queue it waited in).
pub(super) const MAX_WAIT: &str = "max_wait";
/// An agent's wrap-up ends: their queues may offer again (subject: the
/// agent).
pub(super) const WRAPUP: &str = "wrapup";

/// In a cluster: sweep the deliveries a dead node left (subject
/// `cluster`); it sets itself again each time it fires.
pub(super) const DELIVERY_SWEEP: &str = "delivery_sweep";

/// How long a claim holds before another node may fire the timer.
const CLAIM_MS: i64 = 10_000;
/// Most timers one round fires.
const BATCH: i64 = 64;

impl Engine {
    /// Starts this node's timer loop (stopped by `shutdown`), polling at
    /// least every `poll` for timers other nodes set.
    pub fn run_timers(&self, poll: Duration) {
        let (engine, shutdown) = (self.clone(), self.inner.shutdown.clone());
        self.inner.tasks.spawn(async move {
            if engine.inner.limits.clustered {
                // Whichever node comes first starts the cluster's sweep.
                let sweep = TimerRow {
                    kind: DELIVERY_SWEEP.to_owned(),
                    subject: "cluster".to_owned(),
                    due_at: now_ms() + super::delivery::SWEEP_EVERY.as_millis() as i64,
                    arg: None,
                };
                if let Err(e) = engine.inner.store.set_timer_once(&sweep).await {
                    warn!(error = %e, "cannot start the delivery sweep");
                }
            }
            loop {
                let changed = engine.inner.timers_changed.notified();
                let wait = engine.fire_due_timers().await.min(poll);
                tokio::select! {
                    _ = tokio::time::sleep(wait) => {}
                    _ = changed => {}
                    _ = shutdown.cancelled() => break,
                }
            }
        });
    }

    /// Fires what is due; returns how long until the next timer.
    async fn fire_due_timers(&self) -> Duration {
        let now = now_ms();
        let claimed = match self
            .inner
            .store
            .claim_due_timers(now, now + CLAIM_MS, BATCH)
            .await
        {
            Ok(claimed) => claimed,
            Err(e) => {
                warn!(error = %e, "cannot read the timers");
                return Duration::from_secs(1);
            }
        };
        for timer in &claimed {
            self.fire(timer).await;
            if let Err(e) = self.inner.store.timer_fired(timer).await {
                warn!(kind = timer.kind, error = %e, "cannot clear a fired timer");
            }
        }
        if claimed.len() as i64 == BATCH {
            return Duration::ZERO;
        }
        match self.inner.store.next_timer_due().await {
            Ok(Some(due)) => Duration::from_millis((due - now_ms()).clamp(0, i64::MAX) as u64),
            Ok(None) => Duration::MAX,
            Err(_) => Duration::from_secs(1),
        }
    }

    async fn fire(&self, timer: &TimerRow) {
        debug!(kind = timer.kind, "timer due");
        match timer.kind.as_str() {
            OFFER | MAX_WAIT => {
                let Ok(id) = timer.subject.parse::<ConversationId>() else {
                    warn!(kind = timer.kind, "a timer names no conversation");
                    return;
                };
                if timer.kind == OFFER {
                    self.offer_expired(id).await;
                } else {
                    self.overflow(id, timer.arg.as_deref().unwrap_or_default())
                        .await;
                }
            }
            WRAPUP => self.dispatch_all().await,
            DELIVERY_SWEEP => {
                if let Err(e) = self.replay_deliveries().await {
                    warn!(error = %e, "cannot sweep stale deliveries");
                }
                self.set_timer(
                    DELIVERY_SWEEP,
                    "cluster",
                    super::delivery::SWEEP_EVERY,
                    None,
                )
                .await;
            }
            other => warn!(kind = other, "unknown timer kind"),
        }
    }

    /// Sets a timer `after` from now (replacing one of the same kind and
    /// subject) and wakes this node's loop.
    pub(super) async fn set_timer(
        &self,
        kind: &str,
        subject: &str,
        after: Duration,
        arg: Option<String>,
    ) {
        let timer = TimerRow {
            kind: kind.to_owned(),
            subject: subject.to_owned(),
            due_at: now_ms() + i64::try_from(after.as_millis()).unwrap_or(i64::MAX / 2),
            arg,
        };
        if let Err(e) = self.inner.store.set_timer(&timer).await {
            warn!(kind, error = %e, "cannot set a timer");
        }
        self.inner.timers_changed.notify_waiters();
    }

    pub(super) async fn cancel_timer(&self, kind: &str, subject: &str) {
        if let Err(e) = self.inner.store.cancel_timer(kind, subject).await {
            warn!(kind, error = %e, "cannot cancel a timer");
        }
    }
}
