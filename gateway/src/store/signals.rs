//! The hub's signals between gateway nodes: `NOTIFY frontdesk_signals` on
//! PostgreSQL (SQLite serves one node, whose hub is in-process only).
//!
//! A commit's notification is sent by [`insert_events`](super::events) in
//! the transaction that appends the events, so PostgreSQL delivers it when
//! (and only if) they commit: "commit, then tell" holds across nodes
//! without a second round trip after the commit. Typing and the console's
//! activity tick are not stored and go through [`Store::notify`].
//!
//! Payloads are compact text (`<node> c <conversation> <seq>`,
//! `<node> t <conversation> 0|1`, `<node> a`): ids and numbers only, never
//! a body or a token, since every node's listener and `pg_stat_activity`
//! see them. `<node>` is this store's random id, so a node skips its own
//! notifications (its hub heard of them first) and a listener's connection
//! is named after it (`application_name`, for operators and tests).

use std::str::FromStr;
use std::sync::Arc;

use rand::RngCore;
use sqlx::postgres::{PgConnectOptions, PgListener, PgPoolOptions};
use sqlx::{Any, Transaction};

use super::{Backend, Store, StoreResult};
use crate::domain::ConversationId;

/// The PostgreSQL NOTIFY channel the hub's signals cross nodes on.
pub const SIGNALS_CHANNEL: &str = "frontdesk_signals";

/// The `application_name` prefix of a node's signal listener connection.
pub const LISTENER_NAME: &str = "frontdesk signals";

/// One signal as it crosses nodes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Notice {
    /// Events of the conversation up to `seq` are committed.
    Committed {
        conversation: ConversationId,
        seq: i64,
    },
    /// The agent of the conversation is (or stopped) typing.
    Typing {
        conversation: ConversationId,
        composing: bool,
    },
    /// Something the console's live view shows changed.
    Activity,
}

impl Notice {
    fn encode(&self, node: &str) -> String {
        match self {
            Notice::Committed { conversation, seq } => {
                format!("{node} c {} {seq}", conversation.short())
            }
            Notice::Typing {
                conversation,
                composing,
            } => format!("{node} t {} {}", conversation.short(), u8::from(*composing)),
            Notice::Activity => format!("{node} a"),
        }
    }

    /// The node that sent `payload` and what it says; `None` when it is not
    /// one of ours.
    pub fn parse(payload: &str) -> Option<(&str, Notice)> {
        let mut parts = payload.split(' ');
        let node = parts.next().filter(|n| !n.is_empty())?;
        let notice = match (parts.next()?, parts.next(), parts.next()) {
            ("c", Some(id), Some(seq)) => Notice::Committed {
                conversation: ConversationId::from_str(id).ok()?,
                seq: seq.parse().ok()?,
            },
            ("t", Some(id), Some(flag @ ("0" | "1"))) => Notice::Typing {
                conversation: ConversationId::from_str(id).ok()?,
                composing: flag == "1",
            },
            ("a", None, None) => Notice::Activity,
            _ => return None,
        };
        parts.next().is_none().then_some((node, notice))
    }
}

/// A random id for one store (one gateway node), 64 bits in hex.
pub(super) fn new_node_id() -> String {
    let mut bytes = [0u8; 8];
    rand::rng().fill_bytes(&mut bytes);
    hex::encode(bytes)
}

/// Announces, inside `tx`, that the conversation's events up to `seq` are
/// committed (PostgreSQL only; delivered at commit, dropped on rollback).
pub(super) async fn notify_committed(
    tx: &mut Transaction<'_, Any>,
    store: &Store,
    conversation: ConversationId,
    seq: i64,
) -> StoreResult<()> {
    if store.backend != Backend::Postgres {
        return Ok(());
    }
    let payload = Notice::Committed { conversation, seq }.encode(&store.node);
    sqlx::query("SELECT pg_notify($1, $2)")
        .bind(SIGNALS_CHANNEL)
        .bind(payload)
        .execute(&mut **tx)
        .await?;
    Ok(())
}

/// [`notify_committed`] for several conversations, in one statement.
pub(super) async fn notify_all_committed(
    tx: &mut Transaction<'_, Any>,
    store: &Store,
    committed: &[(ConversationId, i64)],
) -> StoreResult<()> {
    if store.backend != Backend::Postgres || committed.is_empty() {
        return Ok(());
    }
    let values: Vec<String> = (0..committed.len())
        .map(|i| format!("(${})", i + 2))
        .collect();
    let sql = format!(
        "SELECT pg_notify($1, payload) FROM (VALUES {}) AS committed (payload)",
        values.join(", ")
    );
    let mut query = sqlx::query(&sql).persistent(false).bind(SIGNALS_CHANNEL);
    for (conversation, seq) in committed {
        let notice = Notice::Committed {
            conversation: *conversation,
            seq: *seq,
        };
        query = query.bind(notice.encode(&store.node));
    }
    query.execute(&mut **tx).await?;
    Ok(())
}

impl Store {
    /// This store's node id (the `<node>` of its notifications).
    pub fn node_id(&self) -> &str {
        &self.node
    }

    /// Whether signals must cross nodes (PostgreSQL): else the hub is the
    /// only path and nothing here is used.
    pub fn shares_signals(&self) -> bool {
        self.backend == Backend::Postgres
    }

    /// Tells the other nodes of a signal that is not a commit (commits
    /// announce themselves). Nothing on SQLite.
    pub async fn notify(&self, notice: &Notice) -> StoreResult<()> {
        if self.backend != Backend::Postgres {
            return Ok(());
        }
        sqlx::query("SELECT pg_notify($1, $2)")
            .bind(SIGNALS_CHANNEL)
            .bind(notice.encode(&self.node))
            .execute(&mut *self.writer().await?)
            .await?;
        Ok(())
    }

    /// A connection of its own listening for the other nodes' signals,
    /// named `frontdesk signals <node>`; `None` on SQLite. It does not
    /// reconnect by itself: whoever holds it builds a new one when it is
    /// lost, and then re-reads what it may have missed.
    pub async fn signal_listener(&self) -> StoreResult<Option<SignalListener>> {
        if self.backend != Backend::Postgres {
            return Ok(None);
        }
        let options = PgConnectOptions::from_str(&self.url)?
            .application_name(&format!("{LISTENER_NAME} {}", self.node));
        let pool = PgPoolOptions::new()
            .max_connections(1)
            .max_lifetime(None)
            .idle_timeout(None)
            .connect_with(options)
            .await?;
        let mut listener = PgListener::connect_with(&pool).await?;
        listener.ignore_pool_close_event(true);
        listener.eager_reconnect(false);
        listener.listen(SIGNALS_CHANNEL).await?;
        Ok(Some(SignalListener {
            listener,
            node: self.node.clone(),
        }))
    }
}

/// One node's LISTEN connection for the other nodes' signals.
pub struct SignalListener {
    listener: PgListener,
    node: Arc<str>,
}

impl SignalListener {
    /// The next signal of another node (this node's own, and payloads not
    /// in our form, are skipped); `None` once the connection is lost.
    /// Cancel-safe: a notification is taken off the connection only whole.
    pub async fn next(&mut self) -> StoreResult<Option<Notice>> {
        loop {
            let Some(notification) = self.listener.try_recv().await? else {
                return Ok(None);
            };
            match Notice::parse(notification.payload()) {
                Some((node, _)) if node == &*self.node => {}
                Some((_, notice)) => return Ok(Some(notice)),
                None => tracing::debug!(
                    bytes = notification.payload().len(),
                    "ignored a signal in an unknown form"
                ),
            }
        }
    }

    /// Checks that the connection still answers (one that died without a
    /// word is otherwise only noticed when the OS gives up on it).
    pub async fn ping(&mut self) -> StoreResult<()> {
        sqlx::query("SELECT 1").execute(&mut self.listener).await?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn notices_round_trip_and_strangers_are_refused() {
        let conversation = ConversationId::new();
        for notice in [
            Notice::Committed {
                conversation,
                seq: 42,
            },
            Notice::Typing {
                conversation,
                composing: true,
            },
            Notice::Typing {
                conversation,
                composing: false,
            },
            Notice::Activity,
        ] {
            let payload = notice.encode("0123abcd");
            assert!(payload.len() < 64, "{payload}");
            assert_eq!(Notice::parse(&payload), Some(("0123abcd", notice)));
        }
        for stranger in [
            "",
            "n",
            "n x",
            "n c nope 1",
            &format!("n c {} x", conversation.short()),
            &format!("n t {} 2", conversation.short()),
            &format!("n c {} 1 extra", conversation.short()),
            "n a extra",
        ] {
            assert_eq!(Notice::parse(stranger), None, "{stranger:?}");
        }
    }
}
