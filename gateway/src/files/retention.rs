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
                let rows = store.files_of_conversation(*id).await?;
                let mut all_gone = true;
                for row in &rows {
                    let Some(key) = StorageKey::parse(&row.storage_key) else {
                        tracing::error!(file = %row.id, "stored file has an invalid storage key");
                        continue;
                    };
                    if let Err(e) = files.store().delete(&key).await {
                        tracing::warn!(file = %row.id, error = %e, "cannot delete an expired file");
                        all_gone = false;
                    }
                }
                if !all_gone {
                    continue;
                }
                if store.delete_conversation(*id).await? {
                    swept.conversations += 1;
                    swept.files += rows.len();
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
