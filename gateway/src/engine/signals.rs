//! The relay that carries the hub's signals between gateway nodes sharing
//! one PostgreSQL database (see `hub.rs` for what crosses and
//! `store/signals.rs` for the wire form).
//!
//! Two tasks, owned by the engine's tracker and stopped by its shutdown
//! token: one NOTIFYs what this node's hub queues (typing, activity;
//! commits were announced by their own transaction), one LISTENs on a
//! connection of its own and hands the other nodes' signals to the local
//! hub, skipping this node's own. NOTIFY is not durable: whatever is sent
//! while the listener is down is lost to it. So every time it connects
//! (the first time too) it tells every local subscriber to re-read
//! ([`Signal::Resync`]), after LISTEN is in place: a commit is then either
//! read by that re-read or announced to the new connection, never neither.
//!
//! A lost connection is rebuilt after [`RECONNECT_FIRST`], doubling up to
//! [`RECONNECT_MAX`] while the database refuses; a quiet connection is
//! pinged every [`PING_EVERY`], so one that died without a word (a
//! dropped route, a NAT that forgot it) is noticed too. On SQLite nothing
//! runs: one node, and its hub is in-process.

use std::time::Duration;

use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use tracing::{debug, info, warn};

use super::hub::RELAY_QUEUE;
use super::{Engine, Hub, Signal};
use crate::store::{Notice, SignalListener, Store};

/// The wait before the first attempt to listen again after a loss.
pub const RECONNECT_FIRST: Duration = Duration::from_secs(1);

/// The longest wait between attempts while the database refuses.
pub const RECONNECT_MAX: Duration = Duration::from_secs(30);

/// How long the listener may hear nothing before it checks its connection.
pub const PING_EVERY: Duration = Duration::from_secs(30);

/// How long that check may take.
const PING_TIMEOUT: Duration = Duration::from_secs(5);

impl Engine {
    /// Starts carrying signals to and from the other nodes (PostgreSQL;
    /// nothing on SQLite). Called once, at start-up.
    pub fn relay_signals(&self) {
        let store = self.inner.store.clone();
        if !store.shares_signals() {
            return;
        }
        let hub = self.inner.hub.clone();
        let (relay, outgoing) = mpsc::channel(RELAY_QUEUE);
        hub.relay_to(relay);
        let shutdown = self.inner.shutdown.clone();
        self.inner
            .tasks
            .spawn(send(store.clone(), outgoing, shutdown.clone()));
        self.inner.tasks.spawn(listen(store, hub, shutdown));
    }
}

/// NOTIFYs what this node's hub queued for the others, in order.
async fn send(store: Store, mut outgoing: mpsc::Receiver<Notice>, shutdown: CancellationToken) {
    loop {
        let notice = tokio::select! {
            _ = shutdown.cancelled() => break,
            notice = outgoing.recv() => match notice {
                Some(notice) => notice,
                None => break,
            },
        };
        if let Err(e) = store.notify(&notice).await {
            // Typing and activity are ephemeral: the next one will do.
            debug!(error = %e, "a signal did not reach the other nodes");
        }
    }
}

/// Why [`follow`] returned.
enum Stop {
    Shutdown,
    Lost(String),
}

/// Listens for the other nodes' signals for as long as the engine runs.
async fn listen(store: Store, hub: Hub, shutdown: CancellationToken) {
    let mut delay = RECONNECT_FIRST;
    loop {
        let connected = tokio::select! {
            _ = shutdown.cancelled() => return,
            connected = store.signal_listener() => connected,
        };
        match connected {
            Ok(Some(mut listener)) => {
                hub.set_listening(true);
                metrics::gauge!("frontdesk_signals_listening").set(1.0);
                // Whatever was committed while nobody listened is read now.
                hub.resync_all();
                info!("listening for the other nodes' signals");
                delay = RECONNECT_FIRST;
                let stop = follow(&hub, &mut listener, &shutdown).await;
                hub.set_listening(false);
                metrics::gauge!("frontdesk_signals_listening").set(0.0);
                match stop {
                    Stop::Shutdown => return,
                    Stop::Lost(why) => {
                        warn!(error = %why, "lost the other nodes' signals; listening again")
                    }
                }
            }
            Ok(None) => return,
            Err(e) => {
                warn!(error = %e, retry_in = ?delay, "cannot listen for the other nodes' signals");
            }
        }
        tokio::select! {
            _ = shutdown.cancelled() => return,
            () = tokio::time::sleep(delay) => {}
        }
        delay = (delay * 2).min(RECONNECT_MAX);
    }
}

/// Hands every notice to the hub until the connection is lost.
async fn follow(hub: &Hub, listener: &mut SignalListener, shutdown: &CancellationToken) -> Stop {
    loop {
        // `next` is cancel-safe, so leaving it for a ping or the shutdown
        // loses nothing.
        let heard = tokio::select! {
            _ = shutdown.cancelled() => return Stop::Shutdown,
            heard = tokio::time::timeout(PING_EVERY, listener.next()) => heard,
        };
        match heard {
            Ok(Ok(Some(notice))) => hand_over(hub, notice),
            Ok(Ok(None)) => return Stop::Lost("the connection closed".into()),
            Ok(Err(e)) => return Stop::Lost(e.to_string()),
            Err(_quiet) => match tokio::time::timeout(PING_TIMEOUT, listener.ping()).await {
                Ok(Ok(())) => {}
                Ok(Err(e)) => return Stop::Lost(e.to_string()),
                Err(_) => return Stop::Lost("no answer to a ping".into()),
            },
        }
    }
}

fn hand_over(hub: &Hub, notice: Notice) {
    match notice {
        Notice::Committed { conversation, seq } => {
            hub.deliver(conversation, Signal::Committed(seq));
        }
        Notice::Typing {
            conversation,
            composing,
        } => hub.deliver(conversation, Signal::AgentTyping(composing)),
        Notice::Activity => hub.bump(),
    }
}
