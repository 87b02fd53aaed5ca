//! The facts of a conversation fixed when it starts (its channel, the
//! visitor's token hash and name, when it started), cached, so that
//! checking a visitor's token and storing their message read nothing from
//! the store: a message used to cost a read of its conversation before its
//! write, in every request.
//!
//! Safe with several nodes: none of these facts ever changes once stored
//! (what does change, the state and who has the chat, is read where the
//! message is stored, under the row's write lock: `batch.rs`). A
//! conversation deleted here (retention) is forgotten at once; one deleted
//! by another node after [`TTL`] at most. The cache holds at most
//! [`CAPACITY`] entries (about 200 bytes each).

use std::sync::Arc;
use std::time::{Duration, Instant};

use quick_cache::sync::Cache;

use super::{ConversationRow, NewConversation};
use crate::domain::{ConversationId, TokenHash};

/// How long a cached identity is trusted without a read.
const TTL: Duration = Duration::from_secs(60);
/// The most conversations remembered at once.
const CAPACITY: usize = 100_000;

/// What never changes about a conversation.
#[derive(Debug)]
pub struct ConversationIdentity {
    pub id: ConversationId,
    pub channel_key: String,
    pub token_hash: TokenHash,
    pub visitor_name: String,
    /// Unix milliseconds.
    pub created_at: i64,
}

impl From<&ConversationRow> for ConversationIdentity {
    fn from(row: &ConversationRow) -> Self {
        ConversationIdentity {
            id: row.id,
            channel_key: row.channel_key.clone(),
            token_hash: row.token_hash.clone(),
            visitor_name: row.visitor_name.clone(),
            created_at: row.created_at,
        }
    }
}

pub(super) struct Identities {
    cache: Cache<ConversationId, (Arc<ConversationIdentity>, Instant)>,
}

impl Default for Identities {
    fn default() -> Self {
        Identities {
            cache: Cache::new(CAPACITY),
        }
    }
}

impl Identities {
    /// The identity remembered for `id`, unless it is older than [`TTL`].
    pub(super) fn get(&self, id: ConversationId) -> Option<Arc<ConversationIdentity>> {
        let (identity, since) = self.cache.get(&id)?;
        if since.elapsed() < TTL {
            return Some(identity);
        }
        self.cache.remove(&id);
        None
    }

    pub(super) fn forget(&self, id: ConversationId) {
        self.cache.remove(&id);
    }

    /// Remembers a conversation just created (at `created_at`), so that
    /// its first requests read nothing.
    pub(super) fn remember_new(&self, new: &NewConversation, created_at: i64) {
        let identity = ConversationIdentity {
            id: new.id,
            channel_key: new.channel_key.clone(),
            token_hash: new.token_hash.clone(),
            visitor_name: new.visitor_name.clone(),
            created_at,
        };
        self.cache
            .insert(new.id, (Arc::new(identity), Instant::now()));
    }

    /// Remembers what `row` says of its conversation.
    pub(super) fn remember(&self, row: &ConversationRow) -> Arc<ConversationIdentity> {
        let identity = Arc::new(ConversationIdentity::from(row));
        self.cache
            .insert(row.id, (identity.clone(), Instant::now()));
        identity
    }
}
