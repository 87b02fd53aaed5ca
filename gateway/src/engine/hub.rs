//! Live fan-out of conversation activity to connected widgets.
//!
//! The hub carries only *signals*: "seq N is committed" and ephemeral
//! typing. A subscriber that hears of seq N reads the events it has not
//! seen from the store, so a lagging or reconnecting subscriber can never
//! see a gap or a duplicate: the database is the only source of events.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use tokio::sync::broadcast;

use crate::domain::ConversationId;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Signal {
    /// Events up to this seq are committed.
    Committed(i64),
    /// The agent is (or stopped) typing. Not stored, never replayed.
    AgentTyping(bool),
}

#[derive(Clone)]
pub struct Hub {
    senders: Arc<Mutex<HashMap<ConversationId, broadcast::Sender<Signal>>>>,
    /// Bumped by every commit and agent status change: the console's live
    /// view re-reads when it moves.
    activity: Arc<tokio::sync::watch::Sender<u64>>,
}

impl Default for Hub {
    fn default() -> Self {
        Hub {
            senders: Arc::default(),
            activity: Arc::new(tokio::sync::watch::Sender::new(0)),
        }
    }
}

impl Hub {
    /// Something a live view shows changed on this node.
    pub fn touch(&self) {
        self.activity.send_modify(|n| *n = n.wrapping_add(1));
    }

    /// Follows [`touch`](Self::touch).
    pub fn activity(&self) -> tokio::sync::watch::Receiver<u64> {
        self.activity.subscribe()
    }

    pub fn subscribe(&self, id: ConversationId) -> broadcast::Receiver<Signal> {
        let mut senders = self.senders.lock().expect("hub lock poisoned");
        senders
            .entry(id)
            .or_insert_with(|| broadcast::channel(64).0)
            .subscribe()
    }

    pub fn publish(&self, id: ConversationId, signal: Signal) {
        if matches!(signal, Signal::Committed(_)) {
            self.touch();
        }
        let mut senders = self.senders.lock().expect("hub lock poisoned");
        if let Some(sender) = senders.get(&id) {
            if sender.send(signal).is_err() {
                // Nobody listens any more: forget the conversation.
                senders.remove(&id);
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

    #[test]
    fn unwatched_conversations_are_forgotten() {
        let hub = Hub::default();
        let a = ConversationId::new();
        drop(hub.subscribe(a));
        hub.publish(a, Signal::Committed(1));
        assert_eq!(hub.watched(), 0);
    }
}
