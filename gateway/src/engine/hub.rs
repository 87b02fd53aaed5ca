//! Live fan-out of conversation activity to connected widgets, on every
//! node.
//!
//! The hub carries only *signals*: "seq N is committed", ephemeral typing,
//! and "re-read now". A subscriber that hears of seq N reads the events it
//! has not seen from the store, so a lagging or reconnecting subscriber can
//! never see a gap or a duplicate: the database is the only source of
//! events. The one shortcut: a single committed event travels with its
//! signal ([`Signal::Stored`]), and a subscriber whose last seq is the one
//! before it sends it as is (the common case, a message in a live chat,
//! costs no read); any other subscriber reads from the store as before.
//!
//! A widget's socket may be on one node while the commit happens on
//! another, so signals cross nodes (PostgreSQL; `signals.rs` runs the
//! relay): commits announce themselves from the store's transaction, and
//! what [`publish`](Hub::publish) and [`touch`](Hub::touch) hear that is
//! not a commit (typing, activity) is queued for the relay to NOTIFY.
//! What the relay hears from other nodes comes in through
//! [`deliver`](Hub::deliver), which never goes back out. When the relay's
//! connection was lost, it sends every subscriber [`Signal::Resync`]. On
//! SQLite (one node) no relay is set and none of this costs anything.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock};

use tokio::sync::{broadcast, mpsc, watch};

use crate::domain::ConversationId;
use crate::store::Notice;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Signal {
    /// Events up to this seq are committed.
    Committed(i64),
    /// The one event with this seq is committed, and here is its frame as
    /// a widget reads it (serialized once for every socket): a subscriber
    /// that has everything up to `seq - 1` sends it without reading the
    /// store; any other treats it as [`Signal::Committed`].
    Stored { seq: i64, frame: Arc<str> },
    /// The agent is (or stopped) typing. Not stored, never replayed.
    AgentTyping(bool),
    /// Signals may have been missed (this node's listener for the other
    /// nodes reconnected): read what is new now.
    Resync,
}

/// Whether this node hears the other nodes' signals.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Listening {
    /// The listener's connection is up.
    pub connected: bool,
    /// How many times it connected since start-up.
    pub connections: u64,
}

#[derive(Clone)]
pub struct Hub {
    senders: Arc<Mutex<HashMap<ConversationId, broadcast::Sender<Signal>>>>,
    /// Bumped by every commit and agent status change, here or on another
    /// node: the console's live view re-reads when it moves.
    activity: Arc<watch::Sender<u64>>,
    /// Signals for the other nodes, to the relay (set once it runs).
    relay: Arc<OnceLock<mpsc::Sender<Notice>>>,
    listening: Arc<watch::Sender<Listening>>,
}

/// Signals a conversation's subscriber may fall behind by before it hears
/// `Lagged` and reads from the store instead (which loses nothing): each
/// slot (64 bytes) costs every followed conversation memory, idle or not,
/// and a socket is rarely more than one or two signals behind (it handles
/// a frame or a signal at a time, each in milliseconds).
const SUBSCRIBER_QUEUE: usize = 8;

/// Signals waiting for the relay; beyond this, typing is dropped (it is
/// ephemeral, and the next one says the same).
pub(super) const RELAY_QUEUE: usize = 256;

impl Default for Hub {
    fn default() -> Self {
        Hub {
            senders: Arc::default(),
            activity: Arc::new(watch::Sender::new(0)),
            relay: Arc::default(),
            listening: Arc::new(watch::Sender::new(Listening::default())),
        }
    }
}

impl Hub {
    /// Something a live view shows changed on this node (the other nodes
    /// hear of it too).
    pub fn touch(&self) {
        self.bump();
        self.relay(Notice::Activity);
    }

    pub(super) fn bump(&self) {
        self.activity.send_modify(|n| *n = n.wrapping_add(1));
    }

    /// Follows [`touch`](Self::touch).
    pub fn activity(&self) -> watch::Receiver<u64> {
        self.activity.subscribe()
    }

    /// Follows this node's listener for the other nodes' signals (never
    /// connected on SQLite).
    pub fn listening(&self) -> watch::Receiver<Listening> {
        self.listening.subscribe()
    }

    pub(super) fn set_listening(&self, connected: bool) {
        self.listening.send_modify(|l| {
            if connected && !l.connected {
                l.connections += 1;
            }
            l.connected = connected;
        });
    }

    pub fn subscribe(&self, id: ConversationId) -> broadcast::Receiver<Signal> {
        let mut senders = self.senders.lock().expect("hub lock poisoned");
        senders
            .entry(id)
            .or_insert_with(|| broadcast::channel(SUBSCRIBER_QUEUE).0)
            .subscribe()
    }

    /// A signal from this node: to its subscribers and, for typing, to the
    /// other nodes (a commit was announced by its transaction).
    pub fn publish(&self, id: ConversationId, signal: Signal) {
        if let Signal::AgentTyping(composing) = signal {
            self.relay(Notice::Typing {
                conversation: id,
                composing,
            });
        }
        self.deliver(id, signal);
    }

    /// A signal for this node's subscribers only (the relay's way in).
    pub(super) fn deliver(&self, id: ConversationId, signal: Signal) {
        if matches!(signal, Signal::Committed(_) | Signal::Stored { .. }) {
            self.bump();
        }
        let mut senders = self.senders.lock().expect("hub lock poisoned");
        if let Some(sender) = senders.get(&id) {
            if sender.send(signal).is_err() {
                // Nobody listens any more: forget the conversation.
                senders.remove(&id);
            }
        }
    }

    /// Tells every subscriber to re-read, and the live view to refresh.
    pub(super) fn resync_all(&self) {
        self.bump();
        let mut senders = self.senders.lock().expect("hub lock poisoned");
        senders.retain(|_, sender| sender.send(Signal::Resync).is_ok());
    }

    /// Hands the relay what the other nodes must hear, once it runs.
    pub(super) fn relay_to(&self, relay: mpsc::Sender<Notice>) {
        let _ = self.relay.set(relay);
    }

    fn relay(&self, notice: Notice) {
        if let Some(relay) = self.relay.get() {
            if relay.try_send(notice).is_err() {
                tracing::debug!("signal relay busy: a typing or activity signal dropped");
            }
        }
    }

    /// The conversations someone follows right now.
    pub fn followed(&self) -> Vec<ConversationId> {
        let senders = self.senders.lock().expect("hub lock poisoned");
        senders
            .iter()
            .filter(|(_, sender)| sender.receiver_count() > 0)
            .map(|(id, _)| *id)
            .collect()
    }

    /// Number of conversations with at least one live subscriber.
    pub fn watched(&self) -> usize {
        self.senders.lock().expect("hub lock poisoned").len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn subscribers_hear_signals_of_their_conversation_only() {
        let hub = Hub::default();
        let a = ConversationId::new();
        let b = ConversationId::new();
        let mut rx = hub.subscribe(a);
        hub.publish(b, Signal::Committed(1));
        hub.publish(a, Signal::Committed(2));
        assert_eq!(rx.recv().await.unwrap(), Signal::Committed(2));
    }

    #[tokio::test]
    async fn a_stored_event_travels_with_its_signal_and_moves_the_live_view() {
        let hub = Hub::default();
        let a = ConversationId::new();
        let mut rx = hub.subscribe(a);
        let mut activity = hub.activity();
        activity.mark_unchanged();
        let frame: Arc<str> = r#"{"seq":3}"#.into();
        hub.publish(
            a,
            Signal::Stored {
                seq: 3,
                frame: frame.clone(),
            },
        );
        assert_eq!(rx.recv().await.unwrap(), Signal::Stored { seq: 3, frame });
        assert!(activity.has_changed().unwrap());
    }

    #[test]
    fn unwatched_conversations_are_forgotten() {
        let hub = Hub::default();
        let a = ConversationId::new();
        drop(hub.subscribe(a));
        hub.publish(a, Signal::Committed(1));
        assert_eq!(hub.watched(), 0);
    }

    #[tokio::test]
    async fn only_what_no_transaction_announces_goes_to_the_relay() {
        let hub = Hub::default();
        let (relay, mut relayed) = mpsc::channel(RELAY_QUEUE);
        hub.relay_to(relay);
        let a = ConversationId::new();
        let mut rx = hub.subscribe(a);
        hub.publish(a, Signal::Committed(1));
        hub.publish(a, Signal::AgentTyping(true));
        hub.touch();
        hub.deliver(a, Signal::AgentTyping(false));
        assert_eq!(
            relayed.recv().await,
            Some(Notice::Typing {
                conversation: a,
                composing: true
            })
        );
        assert_eq!(relayed.recv().await, Some(Notice::Activity));
        assert!(relayed.try_recv().is_err(), "what came in is not sent out");
        for expected in [
            Signal::Committed(1),
            Signal::AgentTyping(true),
            Signal::AgentTyping(false),
        ] {
            assert_eq!(rx.recv().await.unwrap(), expected);
        }
    }

    #[tokio::test]
    async fn a_resync_reaches_every_subscriber_and_the_live_view() {
        let hub = Hub::default();
        let (a, b) = (ConversationId::new(), ConversationId::new());
        let (mut rx_a, mut rx_b) = (hub.subscribe(a), hub.subscribe(b));
        drop(hub.subscribe(ConversationId::new()));
        let mut activity = hub.activity();
        activity.mark_unchanged();
        hub.resync_all();
        assert_eq!(rx_a.recv().await.unwrap(), Signal::Resync);
        assert_eq!(rx_b.recv().await.unwrap(), Signal::Resync);
        assert!(activity.has_changed().unwrap());
        assert_eq!(
            hub.watched(),
            2,
            "a conversation nobody follows is forgotten"
        );
    }
}
