//! Forgetting on schedule: an ended conversation is deleted, its files'
//! bytes first, once the channel's `retention_days` have passed, and so is
//! one that never ended but saw no change for as long; partial uploads a
//! crashed process abandoned go too.
//!
//! Bytes go before rows: if deleting bytes fails, the rows stay and the
//! next sweep tries again, so no file is ever left without a row that
//! points at it.

use super::{Files, StorageKey};
use crate::config::ChannelConfig;
use crate::store::{Store, StoreResult};

/// What one sweep removed.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Swept {
    pub conversations: usize,
    pub files: usize,
}

const DAY_MS: i64 = 24 * 3600 * 1000;
const BATCH: i64 = 100;

/// Deletes the conversations (and files) of `channels` that ended (or last
/// changed, if they never ended) more than their channel's
/// `retention_days` before `now_ms`.
pub async fn sweep(
    files: &Files,
    store: &Store,
    channels: &[ChannelConfig],
    now_ms: i64,
) -> StoreResult<Swept> {
    let mut swept = Swept::default();
    match files.store().remove_partials().await {
        Ok(0) => {}
        Ok(n) => tracing::info!(partials = n, "removed abandoned partial uploads"),
        Err(e) => tracing::warn!(error = %e, "cannot clean partial uploads"),
    }
    for channel in channels.iter().filter(|c| c.retention_days > 0) {
        let cutoff = now_ms.saturating_sub(i64::from(channel.retention_days) * DAY_MS);
        loop {
            let expired = store
                .conversations_expired_before(channel.key.as_str(), cutoff, BATCH)
                .await?;
            let mut progressed = false;
            for id in &expired {
                if let Some(files) = erase(files, store, *id).await? {
                    swept.conversations += 1;
                    swept.files += files;
                    progressed = true;
                }
            }
            if !progressed || (expired.len() as i64) < BATCH {
                break;
            }
        }
    }
    if swept.conversations > 0 {
        tracing::info!(
            conversations = swept.conversations,
            files = swept.files,
            "deleted conversations past their retention period"
        );
    }
    Ok(swept)
}

/// Deletes one conversation: its files' bytes, then its rows (events, file
/// rows, the conversation). Returns how many files went, or `None` when
/// some bytes could not be deleted (nothing else was, and a later call
/// tries again) or the conversation was already gone.
pub async fn erase(
    files: &Files,
    store: &Store,
    id: crate::domain::ConversationId,
) -> StoreResult<Option<usize>> {
    let rows = store.files_of_conversation(id).await?;
    for row in &rows {
        let Some(key) = StorageKey::parse(&row.storage_key) else {
            tracing::error!(file = %row.id, "stored file has an invalid storage key");
            continue;
        };
        if let Err(e) = files.store().delete(&key).await {
            tracing::warn!(conversation = %id, file = %row.id, error = %e, "cannot delete a file");
            return Ok(None);
        }
    }
    Ok(store.delete_conversation(id).await?.then_some(rows.len()))
}
