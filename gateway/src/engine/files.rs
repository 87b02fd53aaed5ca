//! Files in conversations: a received file becomes a message like any
//! other, durable first, then pushed to the widget and forwarded to the
//! agent in charge (the bridges turn its attachment into a signed link).
//!
//! The bytes are already in the file store when these methods run; the
//! caller deletes them when the outcome says they are not needed.

use tracing::{info, instrument};

use super::view::AttachmentView;
use super::{
    event, message_of, Channel, Engine, EngineError, EngineResult, EventBody, MessageView,
};
use crate::domain::{BatchId, ConversationId, FileId, Party};
use crate::files::NewAttachment;
use crate::store::{ConversationRow, FileInsert, FileQuota, FileRow};

/// What became of an attachment.
#[derive(Debug, Clone)]
pub enum AttachOutcome {
    /// Stored as a new message.
    Stored(MessageView),
    /// Already stored under the same client id: that message. The new
    /// bytes are not needed.
    Existing(MessageView),
    /// The batch is full. The new bytes are not needed.
    BatchFull { limit: u32 },
    /// The conversation holds as many files, or bytes, as its channel
    /// allows. The new bytes are not needed.
    ConversationFull { files: u32, bytes: u64 },
}

/// What a visitor may send in a conversation of `channel`.
fn visitor_quota(channel: &Channel) -> FileQuota {
    let limits = &channel.config.limits;
    FileQuota {
        per_batch: limits.max_files_per_batch,
        files: limits.max_files_per_conversation,
        bytes: limits.max_bytes_per_conversation,
    }
}

impl Engine {
    /// Why one more visitor file in `batch` would be refused, if it would
    /// (to refuse it before its bytes arrive;
    /// [`attach_visitor_file`](Self::attach_visitor_file) is what enforces
    /// the limits).
    pub async fn visitor_file_refusal(
        &self,
        row: &ConversationRow,
        batch: &BatchId,
    ) -> EngineResult<Option<AttachOutcome>> {
        let quota = visitor_quota(&*self.channel_of(row)?);
        let usage = self
            .inner
            .store
            .file_usage(row.id, batch.as_str(), "visitor")
            .await?;
        Ok(quota
            .check(&usage, 1)
            .err()
            .map(|full| refusal_of(full, &quota)))
    }

    /// The message a client already stored under `client_id`, if any.
    pub async fn message_by_client_id(
        &self,
        id: ConversationId,
        client_id: &str,
    ) -> EngineResult<Option<MessageView>> {
        self.inner
            .store
            .event_by_client_id(id, client_id)
            .await?
            .as_ref()
            .map(message_of)
            .transpose()
    }

    /// Stores a visitor's file as a message of the conversation, unless its
    /// batch already holds `max_per_batch` files, and forwards it to the
    /// agent in charge.
    #[instrument(skip(self, file), fields(conversation = %id, file = %file.id))]
    pub async fn attach_visitor_file(
        &self,
        id: ConversationId,
        file: NewAttachment,
    ) -> EngineResult<AttachOutcome> {
        let row = self.row(id).await?;
        let quota = visitor_quota(&*self.channel_of(&row)?);
        if row.state.is_final() {
            return Err(EngineError::ConversationEnded);
        }
        let client_id = file.client_id.as_ref().map(|c| c.as_str().to_owned());
        let message = MessageView::new(
            Party::Visitor,
            row.visitor_name.clone(),
            file.name.as_str().to_owned(),
        )
        .with_client_id(client_id.clone())
        .with_attachment(AttachmentView {
            id: file.id,
            name: file.name.as_str().to_owned(),
            size: file.size,
            content_type: file.content_type.clone(),
        });
        let stored_row = FileRow {
            id: file.id,
            conversation_id: id,
            batch_id: file.batch_id.as_str().to_owned(),
            storage_key: file.storage_key.as_str().to_owned(),
            name: file.name.into_string(),
            size: i64::try_from(file.size).unwrap_or(i64::MAX),
            content_type: file.content_type,
            sender: "visitor".to_owned(),
            created_at: 0,
        };
        let _in_order = self.outbound(id).await;
        let recipients = self.recipients(&row).await;
        let mut new = event(EventBody::Message { message });
        new.client_id = client_id;
        new.deliver_to = recipients.iter().map(|a| a.extension.to_string()).collect();
        let stored = match self
            .inner
            .store
            .insert_file(&stored_row, &new, &quota)
            .await?
        {
            FileInsert::Stored(stored) => stored,
            FileInsert::Duplicate(existing) => {
                return Ok(AttachOutcome::Existing(message_of(&existing)?))
            }
            full @ (FileInsert::BatchFull | FileInsert::ConversationFull) => {
                return Ok(refusal_of(full, &quota))
            }
            FileInsert::NoConversation => return Err(EngineError::UnknownConversation),
        };
        let message = message_of(&stored)?;
        self.announce(id, std::slice::from_ref(&stored));
        metrics::counter!("frontdesk_files_total", "from" => "visitor").increment(1);
        info!(size = stored_row.size, content_type = %stored_row.content_type, "visitor sent a file");
        if !recipients.is_empty() {
            self.forward(&self.summary(&row)?, &message, &recipients)
                .await;
        }
        Ok(AttachOutcome::Stored(message))
    }

    /// A stored file's row (for downloads).
    pub async fn file(&self, file_id: &FileId) -> EngineResult<Option<FileRow>> {
        Ok(self.inner.store.file(file_id).await?)
    }
}

/// The outcome a full quota means.
fn refusal_of(full: FileInsert, quota: &FileQuota) -> AttachOutcome {
    match full {
        FileInsert::BatchFull => AttachOutcome::BatchFull {
            limit: quota.per_batch,
        },
        _ => AttachOutcome::ConversationFull {
            files: quota.files,
            bytes: quota.bytes,
        },
    }
}
