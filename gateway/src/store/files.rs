//! Rows of the `files` table: what was uploaded, by whom, in which batch.

use sqlx::any::AnyRow;
use sqlx::Row;

use super::events::{insert_events, is_unique_violation, NewEvent, StoredEvent};
use super::{conversation_ids, now_ms, Store, StoreError, StoreResult};
use crate::domain::{ConversationId, FileId};

/// A file as stored. `storage_key` names its bytes in the file store.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileRow {
    pub id: FileId,
    pub conversation_id: ConversationId,
    pub batch_id: String,
    pub storage_key: String,
    pub name: String,
    pub size: i64,
    pub content_type: String,
    /// `visitor` or `agent`.
    pub sender: String,
    pub created_at: i64,
}

/// What [`Store::insert_file`] did.
#[derive(Debug, Clone)]
pub enum FileInsert {
    /// Stored, with the message event that carries it.
    Stored(StoredEvent),
    /// The client already stored an upload under this client id: its event.
    Duplicate(StoredEvent),
    /// The batch already holds the maximum number of files.
    BatchFull,
    /// The conversation already holds as many files, or as many bytes, as
    /// its quota allows.
    ConversationFull,
    /// The conversation no longer exists.
    NoConversation,
}

/// What one sender may put in a conversation: files per batch, and files
/// and bytes in all.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FileQuota {
    pub per_batch: u32,
    pub files: u32,
    pub bytes: u64,
}

impl FileQuota {
    /// Whether one more file of `size` bytes fits `usage`.
    pub fn check(&self, usage: &FileUsage, size: u64) -> Result<(), FileInsert> {
        if usage.in_batch >= i64::from(self.per_batch) {
            return Err(FileInsert::BatchFull);
        }
        let bytes = u64::try_from(usage.bytes).unwrap_or(0).saturating_add(size);
        if usage.files >= i64::from(self.files) || bytes > self.bytes {
            return Err(FileInsert::ConversationFull);
        }
        Ok(())
    }
}

/// The files one sender already put in a conversation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FileUsage {
    pub in_batch: i64,
    pub files: i64,
    pub bytes: i64,
}

const USAGE: &str = "SELECT \
     CAST(COALESCE(SUM(CASE WHEN batch_id = $2 THEN 1 ELSE 0 END), 0) AS BIGINT) AS in_batch, \
     CAST(COUNT(*) AS BIGINT) AS files, CAST(COALESCE(SUM(size), 0) AS BIGINT) AS bytes \
     FROM files WHERE conversation_id = $1 AND sender = $3";

fn usage_of(row: &AnyRow) -> StoreResult<FileUsage> {
    Ok(FileUsage {
        in_batch: row.try_get("in_batch")?,
        files: row.try_get("files")?,
        bytes: row.try_get("bytes")?,
    })
}

const COLUMNS: &str =
    "id, conversation_id, batch_id, storage_key, name, size, content_type, sender, created_at";

fn from_row(row: &AnyRow) -> StoreResult<FileRow> {
    let id: String = row.try_get("id")?;
    let conversation_id: String = row.try_get("conversation_id")?;
    Ok(FileRow {
        id: id
            .parse()
            .map_err(|_| StoreError::Corrupt(format!("file id {id:?}")))?,
        conversation_id: super::conversation_id(&conversation_id)?,
        batch_id: row.try_get("batch_id")?,
        storage_key: row.try_get("storage_key")?,
        name: row.try_get("name")?,
        size: row.try_get("size")?,
        content_type: row.try_get("content_type")?,
        sender: row.try_get("sender")?,
        created_at: row.try_get("created_at")?,
    })
}

impl Store {
    /// Stores a file's row and the message event that shows it, in one
    /// transaction, unless the sender's `quota` is full (see
    /// [`FileQuota::check`]). The conversation's row is locked first
    /// (PostgreSQL) or the database is (SQLite), so concurrent uploads are
    /// counted one after the other: the limits hold whatever the client does.
    pub async fn insert_file(
        &self,
        file: &FileRow,
        event: &NewEvent,
        quota: &FileQuota,
    ) -> StoreResult<FileInsert> {
        let id = file.conversation_id;
        if let Some(client_id) = event.client_id.as_deref() {
            if let Some(existing) = self.event_by_client_id(id, client_id).await? {
                return Ok(FileInsert::Duplicate(existing));
            }
        }
        let now = now_ms();
        let mut tx = self.write_tx().await?;
        let locked = sqlx::query("UPDATE conversations SET updated_at = $1 WHERE id = $2")
            .bind(now)
            .bind(id.to_string())
            .execute(&mut **tx)
            .await?
            .rows_affected();
        if locked == 0 {
            tx.rollback().await?;
            return Ok(FileInsert::NoConversation);
        }
        let usage = sqlx::query(USAGE)
            .bind(id.to_string())
            .bind(&file.batch_id)
            .bind(&file.sender)
            .fetch_one(&mut **tx)
            .await?;
        let size = u64::try_from(file.size).unwrap_or(0);
        if let Err(full) = quota.check(&usage_of(&usage)?, size) {
            tx.rollback().await?;
            return Ok(full);
        }
        sqlx::query(&format!(
            "INSERT INTO files ({COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)"
        ))
        .bind(file.id.to_string())
        .bind(id.to_string())
        .bind(&file.batch_id)
        .bind(&file.storage_key)
        .bind(&file.name)
        .bind(file.size)
        .bind(&file.content_type)
        .bind(&file.sender)
        .bind(now)
        .execute(&mut **tx)
        .await?;
        match insert_events(&mut tx, self, id, std::slice::from_ref(event), now).await {
            Ok(mut stored) => {
                tx.commit().await?;
                Ok(FileInsert::Stored(stored.remove(0)))
            }
            Err(e) if is_unique_violation(&e) => {
                tx.rollback().await?;
                let client_id = event.client_id.as_deref().unwrap_or_default();
                Ok(FileInsert::Duplicate(
                    self.first_stored(id, client_id).await?,
                ))
            }
            Err(e) => Err(e),
        }
    }

    /// The files `sender` already put in a conversation (and in `batch_id`).
    pub async fn file_usage(
        &self,
        id: ConversationId,
        batch_id: &str,
        sender: &str,
    ) -> StoreResult<FileUsage> {
        let row = sqlx::query(USAGE)
            .bind(id.to_string())
            .bind(batch_id)
            .bind(sender)
            .fetch_one(&self.pool)
            .await?;
        usage_of(&row)
    }

    pub async fn file(&self, file_id: &FileId) -> StoreResult<Option<FileRow>> {
        let row = sqlx::query(&format!("SELECT {COLUMNS} FROM files WHERE id = $1"))
            .bind(file_id.to_string())
            .fetch_optional(&self.pool)
            .await?;
        row.as_ref().map(from_row).transpose()
    }

    pub async fn files_of_conversation(&self, id: ConversationId) -> StoreResult<Vec<FileRow>> {
        let rows = sqlx::query(&format!(
            "SELECT {COLUMNS} FROM files WHERE conversation_id = $1 ORDER BY created_at"
        ))
        .bind(id.to_string())
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(from_row).collect()
    }

    /// Conversations of `channel_key` that ended before `cutoff_ms`, or
    /// never ended but saw no change since then (a chat left open and
    /// forgotten), oldest first, at most `limit`.
    pub async fn conversations_expired_before(
        &self,
        channel_key: &str,
        cutoff_ms: i64,
        limit: i64,
    ) -> StoreResult<Vec<ConversationId>> {
        let ids: Vec<String> = sqlx::query_scalar(
            "SELECT id FROM conversations WHERE channel_key = $1 \
             AND COALESCE(ended_at, updated_at) < $2 \
             ORDER BY COALESCE(ended_at, updated_at) LIMIT $3",
        )
        .bind(channel_key)
        .bind(cutoff_ms)
        .bind(limit)
        .fetch_all(&self.pool)
        .await?;
        conversation_ids(&ids)
    }

    /// Deletes a conversation with its events and file rows (the caller
    /// deletes the files' bytes first).
    pub async fn delete_conversation(&self, id: ConversationId) -> StoreResult<bool> {
        let mut tx = self.write_tx().await?;
        for table in ["files", "events"] {
            sqlx::query(&format!("DELETE FROM {table} WHERE conversation_id = $1"))
                .bind(id.to_string())
                .execute(&mut **tx)
                .await?;
        }
        let deleted = sqlx::query("DELETE FROM conversations WHERE id = $1")
            .bind(id.to_string())
            .execute(&mut **tx)
            .await?
            .rows_affected();
        tx.commit().await?;
        self.identities.forget(id);
        Ok(deleted > 0)
    }
}
