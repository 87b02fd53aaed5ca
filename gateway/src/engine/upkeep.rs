//! Queue upkeep off the request path: positions told, max waits armed,
//! and dispatches that can wait a moment.
//!
//! When a chat leaves a line (taken, ended, abandoned, overflowed, moved),
//! everyone behind it moves up. Telling each of them at once, for each
//! change, made every change cost a write per waiting visitor: with ten
//! thousand waiting, a burst of changes wrote millions of events. Instead
//! a change marks its queue, and this node's upkeep task ranks a marked
//! queue with one query at most once per [`POSITIONS_WINDOW`] (a short
//! [`POSITIONS_SETTLE`] after the first mark, so a burst is one pass) and
//! writes only the positions that moved, with their `queue_position`
//! events, a batch per transaction. A visitor hears at most one position
//! per window, and the last one they hear is their rank. Dispatch never
//! reads positions, so offers do not wait for this.
//!
//! The task is per node and marks are local: the node that made a change
//! (and dispatched) ranks its queue. Several nodes may rank one queue at
//! once; a write only changes a position that differs, and in a cluster a
//! node that wrote anything ranks that queue again one window later, so a
//! node that ranked from an older snapshot has its word corrected.
//!
//! The same pass arms the max wait of every waiting chat that has none
//! (a chat that moved queue, or came back to one), runs dispatches asked
//! for on agents freed in queues other than the one a change was in
//! (their queues' heads may now be offered), and retries a dispatch that
//! failed.

use std::collections::HashSet;
use std::time::Duration;

use pbx_adapter::{AgentExtension, QueueExtension};
use tokio::time::Instant;
use tracing::warn;

use super::{event, timers, Engine, EventBody, Signal};
use crate::domain::ConversationId;

/// At most one ranking of a queue per this long.
pub(super) const POSITIONS_WINDOW: Duration = Duration::from_millis(500);
/// How long after a first mark the pass runs (a burst of changes is one).
const POSITIONS_SETTLE: Duration = Duration::from_millis(100);
/// Positions written per transaction.
const POSITIONS_BATCH: usize = 200;

/// What waits for the next pass.
#[derive(Default)]
pub(super) struct Chores {
    positions: HashSet<QueueExtension>,
    dispatch: HashSet<QueueExtension>,
    /// When the first of these was asked for.
    since: Option<Instant>,
}

impl Chores {
    fn add(&mut self, set: fn(&mut Chores) -> &mut HashSet<QueueExtension>, q: QueueExtension) {
        set(self).insert(q);
        self.since.get_or_insert_with(Instant::now);
    }
}

impl Engine {
    /// Starts this node's upkeep task (stopped by `shutdown`).
    pub fn keep_queues(&self) {
        let (engine, shutdown) = (self.clone(), self.inner.shutdown.clone());
        self.inner.tasks.spawn(async move {
            let mut last_pass: Option<Instant> = None;
            loop {
                let woken = engine.inner.chores_due.notified();
                let Some(since) = engine.chores().since else {
                    tokio::select! {
                        _ = woken => continue,
                        _ = shutdown.cancelled() => break,
                    }
                };
                let mut due = since + POSITIONS_SETTLE;
                if let Some(last) = last_pass {
                    due = due.max(last + POSITIONS_WINDOW);
                }
                tokio::select! {
                    _ = tokio::time::sleep_until(due) => {}
                    _ = shutdown.cancelled() => break,
                }
                last_pass = Some(Instant::now());
                engine.upkeep_pass().await;
            }
        });
    }

    fn chores(&self) -> std::sync::MutexGuard<'_, Chores> {
        self.inner
            .chores
            .lock()
            .expect("upkeep chores lock poisoned")
    }

    fn add_chore(
        &self,
        set: fn(&mut Chores) -> &mut HashSet<QueueExtension>,
        queue: &QueueExtension,
    ) {
        self.chores().add(set, queue.clone());
        self.inner.chores_due.notify_one();
    }

    /// Someone joined, left or moved in `queue`'s line: rank it soon.
    pub(super) fn positions_moved(&self, queue: &QueueExtension) {
        self.add_chore(|c| &mut c.positions, queue);
    }

    /// Dispatches `queue` at the next pass (a dispatch that failed).
    pub(super) fn dispatch_later(&self, queue: &QueueExtension) {
        self.add_chore(|c| &mut c.dispatch, queue);
    }

    /// `agents` are free again (an offer stopped ringing for them, a chat
    /// of theirs ended): every queue of theirs is dispatched at the next
    /// pass, as a queue whose head waits for an agent is otherwise only
    /// dispatched when something happens in it.
    pub(super) fn agents_freed(&self, agents: &[AgentExtension]) {
        let directory = self.directory();
        for agent in agents {
            for queue in directory.pbx().queues_of(agent) {
                self.dispatch_later(&queue.extension);
            }
        }
    }

    async fn upkeep_pass(&self) {
        let chores = std::mem::take(&mut *self.chores());
        for queue in &chores.dispatch {
            self.dispatch(queue).await;
        }
        for queue in &chores.positions {
            if let Err(e) = self.rank(queue).await {
                warn!(queue = %queue, error = %e, "cannot tell queue positions");
                self.positions_moved(queue);
            }
        }
    }

    /// Ranks `queue`'s line (one query), tells each visitor whose position
    /// moved, and arms the max waits missing.
    async fn rank(&self, queue: &QueueExtension) -> super::EngineResult<()> {
        let store = &self.inner.store;
        let line = store.line_ranked(queue.as_str(), timers::MAX_WAIT).await?;
        if let Some(config) = self.directory().pbx().queue(queue).cloned() {
            self.arm_max_wait(&config, &line).await?;
        }
        let mut moved: Vec<(ConversationId, u32)> = (line.iter().zip(1u32..))
            .filter(|(ranked, position)| ranked.told != Some(*position))
            .map(|(ranked, position)| (ranked.id, position))
            .collect();
        // One order of row locks for every writer (PostgreSQL).
        moved.sort_by_key(|(id, _)| id.as_uuid());
        let mut wrote = false;
        for batch in moved.chunks(POSITIONS_BATCH) {
            let told = store
                .tell_positions(queue.as_str(), batch, |position| {
                    event(EventBody::QueuePosition { position })
                })
                .await?;
            for stored in &told {
                (self.inner.hub).publish(stored.conversation_id, Signal::Committed(stored.seq));
            }
            wrote |= !told.is_empty();
        }
        // A chat that started while this pass ran took its position from
        // one this pass has just moved: one more pass, which writes nothing
        // once the line is still.
        if wrote {
            self.positions_moved(queue);
        }
        Ok(())
    }
}
