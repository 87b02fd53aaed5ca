//! Agents' HTTP File Upload slots (`upload_slots`), shared by every node.
//!
//! The engine (`engine/agent_files.rs`) decides what a slot allows; the
//! store makes each step one guarded statement, so nodes racing on the
//! same slot agree: a slot leaves `open` for exactly one PUT, a complete
//! upload is taken by exactly one message, and an expired row is deleted
//! (and its bytes named to the caller) by exactly one sweep. Slots are
//! found by a SHA-256 of their id, never by the id itself. Instants are
//! the caller's, so tests can move the clock.

use sqlx::Row;

use super::{Store, StoreResult};
use crate::domain::FileId;

/// A slot to grant.
#[derive(Debug, Clone)]
pub struct NewUploadSlot {
    pub id_hash: String,
    pub agent: String,
    pub file_id: FileId,
    /// The name the agent's client asked the slot for.
    pub filename: String,
    /// The announced size: the PUT must be exactly this long.
    pub size: u64,
    pub expires_at: i64,
}

/// What a PUT found when it tried to take a slot.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SlotStart {
    /// It is this PUT's: it may write `size` bytes.
    Started { size: u64, filename: String },
    /// No such slot, or it expired.
    Unknown,
    /// Another PUT took it first.
    Used,
}

/// A complete upload, as its row names it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UploadedFile {
    pub storage_key: String,
    /// Its display name (the slot's name, made to fit the content).
    pub name: String,
    pub content_type: String,
    pub size: u64,
}

fn size_of(stored: i64) -> u64 {
    u64::try_from(stored).unwrap_or(0)
}

fn stored_size(size: u64) -> i64 {
    i64::try_from(size).unwrap_or(i64::MAX)
}

impl Store {
    /// Grants a slot unless its agent already holds `max_per_agent` live
    /// ones (`false`). The count and the insert are one statement: SQLite
    /// runs it alone; on PostgreSQL two requests of one agent on two nodes
    /// at the same instant may both pass (the cap bounds what one client
    /// keeps waiting, not a race of two).
    pub async fn insert_upload_slot(
        &self,
        slot: &NewUploadSlot,
        max_per_agent: usize,
        now: i64,
    ) -> StoreResult<bool> {
        let done = sqlx::query(
            "INSERT INTO upload_slots (id_hash, agent_extension, file_id, filename, size, \
             state, expires_at, created_at) \
             SELECT $1, $2, $3, $4, $5, 'open', $6, $7 \
             WHERE (SELECT COUNT(*) FROM upload_slots \
                    WHERE agent_extension = $2 AND expires_at > $7) < $8",
        )
        .bind(&slot.id_hash)
        .bind(&slot.agent)
        .bind(slot.file_id.to_string())
        .bind(&slot.filename)
        .bind(stored_size(slot.size))
        .bind(slot.expires_at)
        .bind(now)
        .bind(i64::try_from(max_per_agent).unwrap_or(i64::MAX))
        .execute(&mut *self.writer().await?)
        .await?;
        Ok(done.rows_affected() == 1)
    }

    /// Takes an open, unexpired slot for one PUT (compare-and-set), which
    /// will commit its bytes under `storage_key`; the PUT keeps it until
    /// `until` unless it [renews](Self::renew_upload) it.
    pub async fn start_upload(
        &self,
        id_hash: &str,
        storage_key: &str,
        until: i64,
        now: i64,
    ) -> StoreResult<SlotStart> {
        let taken = sqlx::query(
            "UPDATE upload_slots SET state = 'uploading', storage_key = $2, expires_at = $3 \
             WHERE id_hash = $1 AND state = 'open' AND expires_at > $4 \
             RETURNING size, filename",
        )
        .bind(id_hash)
        .bind(storage_key)
        .bind(until)
        .bind(now)
        .fetch_optional(&mut *self.writer().await?)
        .await?;
        if let Some(row) = taken {
            return Ok(SlotStart::Started {
                size: size_of(row.try_get("size")?),
                filename: row.try_get("filename")?,
            });
        }
        let live: Option<i64> =
            sqlx::query_scalar("SELECT 1 FROM upload_slots WHERE id_hash = $1 AND expires_at > $2")
                .bind(id_hash)
                .bind(now)
                .fetch_optional(&self.pool)
                .await?;
        Ok(match live {
            Some(_) => SlotStart::Used,
            None => SlotStart::Unknown,
        })
    }

    /// A PUT still streams: its slot is not swept before `until`.
    pub async fn renew_upload(&self, id_hash: &str, until: i64) -> StoreResult<bool> {
        let done = sqlx::query(
            "UPDATE upload_slots SET expires_at = $2 WHERE id_hash = $1 AND state = 'uploading'",
        )
        .bind(id_hash)
        .bind(until)
        .execute(&mut *self.writer().await?)
        .await?;
        Ok(done.rows_affected() == 1)
    }

    /// The PUT's bytes are committed: the upload waits until `until` for
    /// the message that sends it. `false` when the slot is gone (swept).
    pub async fn complete_upload(
        &self,
        id_hash: &str,
        name: &str,
        content_type: &str,
        size: u64,
        until: i64,
    ) -> StoreResult<bool> {
        let done = sqlx::query(
            "UPDATE upload_slots SET state = 'uploaded', display_name = $2, content_type = $3, \
             size = $4, expires_at = $5 WHERE id_hash = $1 AND state = 'uploading'",
        )
        .bind(id_hash)
        .bind(name)
        .bind(content_type)
        .bind(stored_size(size))
        .bind(until)
        .execute(&mut *self.writer().await?)
        .await?;
        Ok(done.rows_affected() == 1)
    }

    /// A PUT failed: its slot is spent. Returns the key its bytes may have
    /// been committed under (when it stopped between the two), to delete.
    pub async fn drop_upload(&self, id_hash: &str) -> StoreResult<Option<String>> {
        let key: Option<Option<String>> = sqlx::query_scalar(
            "DELETE FROM upload_slots WHERE id_hash = $1 AND state = 'uploading' \
             RETURNING storage_key",
        )
        .bind(id_hash)
        .fetch_optional(&mut *self.writer().await?)
        .await?;
        Ok(key.flatten())
    }

    /// The size of `agent`'s complete, unexpired upload `file_id`.
    pub async fn uploaded_size(
        &self,
        agent: &str,
        file_id: &FileId,
        now: i64,
    ) -> StoreResult<Option<u64>> {
        let size: Option<i64> = sqlx::query_scalar(
            "SELECT size FROM upload_slots WHERE file_id = $1 AND agent_extension = $2 \
             AND state = 'uploaded' AND expires_at > $3",
        )
        .bind(file_id.to_string())
        .bind(agent)
        .bind(now)
        .fetch_optional(&self.pool)
        .await?;
        Ok(size.map(size_of))
    }

    /// Takes `agent`'s complete, unexpired upload `file_id` out of its
    /// slot, once: a concurrent taker (another node) gets `None`.
    pub async fn take_upload(
        &self,
        agent: &str,
        file_id: &FileId,
        now: i64,
    ) -> StoreResult<Option<UploadedFile>> {
        let row = sqlx::query(
            "DELETE FROM upload_slots WHERE file_id = $1 AND agent_extension = $2 \
             AND state = 'uploaded' AND expires_at > $3 \
             RETURNING storage_key, display_name, content_type, size",
        )
        .bind(file_id.to_string())
        .bind(agent)
        .bind(now)
        .fetch_optional(&mut *self.writer().await?)
        .await?;
        row.map(|r| {
            Ok(UploadedFile {
                storage_key: r
                    .try_get::<Option<String>, _>("storage_key")?
                    .unwrap_or_default(),
                name: r
                    .try_get::<Option<String>, _>("display_name")?
                    .unwrap_or_default(),
                content_type: r
                    .try_get::<Option<String>, _>("content_type")?
                    .unwrap_or_default(),
                size: size_of(r.try_get("size")?),
            })
        })
        .transpose()
    }

    /// Deletes every slot expired at `now` and returns the storage keys
    /// their bytes were (or may have been) committed under; nodes sweeping
    /// at once each get their own rows.
    pub async fn remove_expired_upload_slots(&self, now: i64) -> StoreResult<Vec<Option<String>>> {
        let keys = sqlx::query_scalar(
            "DELETE FROM upload_slots WHERE expires_at <= $1 RETURNING storage_key",
        )
        .bind(now)
        .fetch_all(&mut *self.writer().await?)
        .await?;
        Ok(keys)
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    /// A folder of the test's own, removed when dropped.
    struct Scratch(std::path::PathBuf);

    impl Drop for Scratch {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }

    async fn store() -> (Store, Scratch) {
        let dir = std::env::temp_dir().join(format!("frontdesk-uploads-{}", FileId::new()));
        let url = format!("sqlite://{}", dir.join("t.db").display());
        let store = Store::connect(&url, 2, Duration::from_secs(5))
            .await
            .unwrap();
        store.migrate().await.unwrap();
        (store, Scratch(dir))
    }

    fn slot(id: &str, expires_at: i64) -> NewUploadSlot {
        NewUploadSlot {
            id_hash: id.to_owned(),
            agent: "101".to_owned(),
            file_id: FileId::new(),
            filename: "a.txt".to_owned(),
            size: 5,
            expires_at,
        }
    }

    #[tokio::test]
    async fn a_slot_goes_to_one_put_then_to_one_message() {
        let (store, _dir) = store().await;
        let granted = slot("s1", 1_000);
        assert!(store.insert_upload_slot(&granted, 10, 0).await.unwrap());
        let started = store.start_upload("s1", "k1", 5_000, 10).await.unwrap();
        assert_eq!(
            started,
            SlotStart::Started {
                size: 5,
                filename: "a.txt".into()
            }
        );
        assert_eq!(
            store.start_upload("s1", "k2", 5_000, 20).await.unwrap(),
            SlotStart::Used
        );
        assert_eq!(
            store.start_upload("nope", "k3", 5_000, 20).await.unwrap(),
            SlotStart::Unknown
        );
        let file = granted.file_id;
        assert_eq!(store.uploaded_size("101", &file, 30).await.unwrap(), None);
        assert!(store
            .complete_upload("s1", "a.txt", "text/plain", 5, 9_000)
            .await
            .unwrap());
        assert_eq!(
            store.start_upload("s1", "k4", 5_000, 40).await.unwrap(),
            SlotStart::Used
        );
        assert_eq!(store.uploaded_size("102", &file, 50).await.unwrap(), None);
        assert_eq!(
            store.uploaded_size("101", &file, 50).await.unwrap(),
            Some(5)
        );
        let taken = store.take_upload("101", &file, 60).await.unwrap().unwrap();
        assert_eq!(taken.storage_key, "k1");
        assert_eq!(taken.content_type, "text/plain");
        assert_eq!(store.take_upload("101", &file, 60).await.unwrap(), None);
        assert_eq!(
            store.start_upload("s1", "k5", 5_000, 70).await.unwrap(),
            SlotStart::Unknown
        );
    }

    #[tokio::test]
    async fn expired_slots_are_swept_with_the_keys_of_their_bytes() {
        let (store, _dir) = store().await;
        for id in ["open", "uploading", "uploaded", "failed"] {
            assert!(store
                .insert_upload_slot(&slot(id, 100), 10, 0)
                .await
                .unwrap());
        }
        store
            .start_upload("uploading", "k1", 1_000, 10)
            .await
            .unwrap();
        store
            .start_upload("uploaded", "k2", 1_000, 10)
            .await
            .unwrap();
        store
            .complete_upload("uploaded", "a.txt", "text/plain", 5, 500)
            .await
            .unwrap();
        store.start_upload("failed", "k3", 1_000, 10).await.unwrap();
        assert_eq!(
            store.drop_upload("failed").await.unwrap(),
            Some("k3".into())
        );
        assert_eq!(store.drop_upload("failed").await.unwrap(), None);

        assert!(store
            .remove_expired_upload_slots(99)
            .await
            .unwrap()
            .is_empty());
        assert_eq!(
            store.remove_expired_upload_slots(100).await.unwrap(),
            [None],
            "the unused slot expires"
        );
        assert_eq!(
            store.start_upload("open", "k4", 1_000, 100).await.unwrap(),
            SlotStart::Unknown
        );
        assert_eq!(
            store.remove_expired_upload_slots(500).await.unwrap(),
            [Some("k2".to_owned())],
            "the unsent file expires, and its bytes are named"
        );
        assert!(store.renew_upload("uploading", 2_000).await.unwrap());
        assert!(
            store
                .remove_expired_upload_slots(1_500)
                .await
                .unwrap()
                .is_empty(),
            "a PUT that renews its slot stays"
        );
        assert_eq!(
            store.remove_expired_upload_slots(2_000).await.unwrap(),
            [Some("k1".to_owned())],
            "one that stopped renewing goes"
        );
    }

    #[tokio::test]
    async fn an_agent_holds_a_bounded_number_of_live_slots() {
        let (store, _dir) = store().await;
        for n in 0..3 {
            assert!(store
                .insert_upload_slot(&slot(&format!("s{n}"), 100), 3, 0)
                .await
                .unwrap());
        }
        assert!(!store
            .insert_upload_slot(&slot("s3", 100), 3, 0)
            .await
            .unwrap());
        let mut other = slot("s4", 100);
        other.agent = "102".into();
        assert!(store.insert_upload_slot(&other, 3, 0).await.unwrap());
        assert!(
            store
                .insert_upload_slot(&slot("s5", 300), 3, 100)
                .await
                .unwrap(),
            "expired slots do not count"
        );
    }
}
