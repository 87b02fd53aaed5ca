//! Lanes: inbound protocol traffic handled concurrently, in order per key.
//!
//! A bridge's reader hands each job (one stanza, one SIP request) to the
//! lane of its key (a conversation, an agent): a fixed number of worker
//! tasks, each draining its own bounded queue one job at a time. Jobs of
//! one key therefore run in the order they were pushed; jobs of keys on
//! different lanes run at the same time (two keys may share a lane: then
//! they just wait for each other). Nothing grows with the traffic: when a
//! lane's queue is full, [`Lanes::push`] waits, which holds the reader
//! back (backpressure to the protocol's own buffers).
//!
//! [`Lanes::fence`] waits until every job pushed before it is done, for
//! the reader's own inline work that must not overtake earlier jobs (an
//! agent going offline after their last message). [`Lanes::close`] stops
//! taking jobs and awaits the workers once they ran everything queued:
//! nothing accepted is dropped at shutdown. A job that panics is logged
//! and its lane goes on with the next one.

use std::future::Future;
use std::hash::{BuildHasher, Hash, RandomState};
use std::panic::AssertUnwindSafe;
use std::sync::Arc;

use futures::FutureExt;
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;
use tracing::{error, warn};

/// What a lane's queue carries.
enum Item<J> {
    Job(J),
    /// Answered once every item before it on this lane is done.
    Fence(oneshot::Sender<()>),
}

/// A fixed set of ordered lanes running `handler` on each job.
pub struct Lanes<J> {
    queues: Vec<mpsc::Sender<Item<J>>>,
    workers: Vec<JoinHandle<()>>,
    hasher: RandomState,
}

impl<J: Send + 'static> Lanes<J> {
    /// `count` lanes (at least one), each queueing up to `depth` jobs (at
    /// least one), each job handled by `handler`.
    pub fn new<H, F>(count: usize, depth: usize, handler: H) -> Self
    where
        H: Fn(J) -> F + Send + Sync + 'static,
        F: Future<Output = ()> + Send + 'static,
    {
        let handler = Arc::new(handler);
        let (queues, workers) = (0..count.max(1))
            .map(|lane| {
                let (tx, rx) = mpsc::channel(depth.max(1));
                (tx, tokio::spawn(drain(lane, rx, handler.clone())))
            })
            .unzip();
        Self {
            queues,
            workers,
            hasher: RandomState::new(),
        }
    }

    /// Queues `job` on the lane of `key`, waiting while that lane is full.
    pub async fn push(&self, key: &impl Hash, job: J) {
        let lane = self.lane_of(key);
        if self.queues[lane].send(Item::Job(job)).await.is_err() {
            // Only if its worker ended, which it does only once closed.
            error!(lane, "a lane is gone; a job was dropped");
        }
    }

    /// Returns once every job pushed before this call is done.
    pub async fn fence(&self) {
        let mut answers = Vec::with_capacity(self.queues.len());
        for queue in &self.queues {
            let (tx, rx) = oneshot::channel();
            if queue.send(Item::Fence(tx)).await.is_ok() {
                answers.push(rx);
            }
        }
        for answer in answers {
            // An error: the worker is gone, and with it anything to wait for.
            let _ = answer.await;
        }
    }

    /// Takes no more jobs; returns once every queued one is done.
    pub async fn close(self) {
        drop(self.queues);
        for worker in self.workers {
            if let Err(e) = worker.await {
                warn!(error = %e, "a lane's worker failed");
            }
        }
    }

    fn lane_of(&self, key: &impl Hash) -> usize {
        // The modulo keeps the value below `len`, a `usize`.
        (self.hasher.hash_one(key) % self.queues.len() as u64) as usize
    }
}

/// One lane's worker: its jobs one at a time, until its queue is closed
/// and empty.
async fn drain<J, H, F>(lane: usize, mut queue: mpsc::Receiver<Item<J>>, handler: Arc<H>)
where
    H: Fn(J) -> F,
    F: Future<Output = ()>,
{
    while let Some(item) = queue.recv().await {
        match item {
            Item::Job(job) => {
                if AssertUnwindSafe(handler(job)).catch_unwind().await.is_err() {
                    error!(lane, "a lane's job panicked; the lane goes on");
                }
            }
            Item::Fence(done) => {
                let _ = done.send(());
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Mutex;
    use std::time::Duration;

    use tokio::sync::Notify;

    /// Jobs of one key run in the order pushed, whatever the interleaving
    /// with other keys, and every job runs once.
    #[tokio::test]
    async fn jobs_of_one_key_run_in_order() {
        let seen: Arc<Mutex<Vec<(u32, u32)>>> = Arc::default();
        let log = seen.clone();
        let lanes = Lanes::new(4, 2, move |(key, n): (u32, u32)| {
            let log = log.clone();
            async move {
                // Later jobs finish sooner: an unordered lane would show it.
                for _ in n..50 {
                    tokio::task::yield_now().await;
                }
                log.lock().unwrap().push((key, n));
            }
        });
        for n in 0..50 {
            for key in 0..10 {
                lanes.push(&key, (key, n)).await;
            }
        }
        lanes.close().await;
        let seen = seen.lock().unwrap();
        assert_eq!(seen.len(), 500);
        for key in 0..10 {
            let order: Vec<u32> = seen
                .iter()
                .filter(|(k, _)| *k == key)
                .map(|j| j.1)
                .collect();
            assert_eq!(order, (0..50).collect::<Vec<_>>(), "key {key}");
        }
    }

    /// A job stuck on one key does not hold back a key on another lane.
    #[tokio::test]
    async fn keys_on_different_lanes_overlap() {
        let release = Arc::new(Notify::new());
        let done = Arc::new(AtomicUsize::new(0));
        let (gate, count) = (release.clone(), done.clone());
        let lanes = Lanes::new(8, 4, move |blocked: bool| {
            let (gate, count) = (gate.clone(), count.clone());
            async move {
                if blocked {
                    gate.notified().await;
                }
                count.fetch_add(1, Ordering::SeqCst);
            }
        });
        let stuck = "stuck";
        lanes.push(&stuck, true).await;
        let other = (0..100)
            .map(|i| format!("other-{i}"))
            .find(|k| lanes.lane_of(k) != lanes.lane_of(&stuck))
            .unwrap();
        lanes.push(&other, false).await;
        tokio::time::timeout(Duration::from_secs(5), async {
            while done.load(Ordering::SeqCst) == 0 {
                tokio::task::yield_now().await;
            }
        })
        .await
        .expect("the other lane's job ran while the first was stuck");
        assert_eq!(done.load(Ordering::SeqCst), 1);
        release.notify_one();
        lanes.close().await;
        assert_eq!(done.load(Ordering::SeqCst), 2);
    }

    /// A full lane makes the pusher wait (bounded memory); closing runs
    /// everything that was queued; a fence waits for what came before it.
    #[tokio::test]
    async fn a_full_lane_holds_the_pusher_and_close_drains_it() {
        let release = Arc::new(Notify::new());
        let done = Arc::new(AtomicUsize::new(0));
        let (gate, count) = (release.clone(), done.clone());
        let lanes = Arc::new(Lanes::new(1, 2, move |first: bool| {
            let (gate, count) = (gate.clone(), count.clone());
            async move {
                if first {
                    gate.notified().await;
                }
                count.fetch_add(1, Ordering::SeqCst);
            }
        }));
        lanes.push(&0, true).await;
        // The worker holds the first; two more fill the queue.
        lanes.push(&0, false).await;
        lanes.push(&0, false).await;
        let full = tokio::time::timeout(Duration::from_millis(100), lanes.push(&0, false)).await;
        assert!(full.is_err(), "a full lane took another job");
        let fenced = {
            let lanes = lanes.clone();
            tokio::spawn(async move { lanes.fence().await })
        };
        release.notify_one();
        tokio::time::timeout(Duration::from_secs(5), fenced)
            .await
            .expect("the fence came through")
            .unwrap();
        assert_eq!(done.load(Ordering::SeqCst), 3);
        for _ in 0..2 {
            lanes.push(&0, false).await;
        }
        let lanes = Arc::into_inner(lanes).unwrap();
        lanes.close().await;
        assert_eq!(done.load(Ordering::SeqCst), 5);
    }

    #[tokio::test]
    async fn a_panicking_job_does_not_stop_its_lane() {
        let done = Arc::new(AtomicUsize::new(0));
        let count = done.clone();
        let lanes = Lanes::new(1, 4, move |boom: bool| {
            let count = count.clone();
            async move {
                assert!(!boom, "boom");
                count.fetch_add(1, Ordering::SeqCst);
            }
        });
        lanes.push(&0, true).await;
        lanes.push(&0, false).await;
        lanes.close().await;
        assert_eq!(done.load(Ordering::SeqCst), 1);
    }
}
