//! Files agents send visitors through HTTP File Upload (XEP-0363).
//!
//! An agent's ordinary XMPP client asks the component for a slot, PUTs the
//! bytes to the gateway, then sends the download link as a message in the
//! chat. The slot is requested on the component domain, not in a chat, so
//! the file cannot belong to a conversation until that message arrives.
//!
//! With several nodes, the one whose component got the request, the one
//! HAProxy sends the PUT to and the one the agent's message reaches may
//! all differ, so slots are rows (`upload_slots`, see the store's
//! `uploads.rs`), and the file store is one all nodes share. A slot is a
//! capability: a random id in the PUT URL (the row keeps only its
//! SHA-256), usable once (the PUT takes it with a compare-and-set, so of
//! two racing PUTs on two nodes one wins), within [`SLOT_TTL`], bound to
//! the agent who asked (only their message can claim the file).
//!
//! The PUT names the storage key in the row before a byte is written and
//! commits the bytes under it once they are complete and accepted; the
//! file then waits for the message that claims it, for [`CLAIM_WINDOW`].
//! Until then the row is the file's only reference, and any node's sweep
//! deletes expired rows and the bytes they name: an upload never sent, a
//! slot never used, and the slot of a PUT whose node died (a live PUT
//! renews its slot every [`PUT_RENEW_EVERY`]; one silent for [`PUT_LEASE`]
//! counts as dead). So no file outlives its slot unclaimed, whatever node
//! crashes where.

use std::time::{Duration, Instant};

use pbx_adapter::AgentExtension;
use rand::RngCore;
use sha2::{Digest, Sha256};
use tracing::{info, instrument, warn};

use super::view::AttachmentView;
use super::{
    agent_message_view, event, message_of, Engine, EngineError, EngineResult, EventBody,
    MessageView,
};
use crate::domain::{ConversationId, FileId};
use crate::files::{DangerousName, DisplayName, FileStore, Files, Received, StorageKey};
use crate::store::{now_ms, FileInsert, FileQuota, FileRow, NewUploadSlot, SlotStart, StoreError};

/// How long a granted slot waits for its PUT to start.
pub const SLOT_TTL: Duration = Duration::from_secs(300);

/// How long an uploaded file waits for the message that sends it.
pub const CLAIM_WINDOW: Duration = Duration::from_secs(1800);

/// How long a PUT holds its slot without renewing it.
pub const PUT_LEASE: Duration = Duration::from_secs(300);

/// How often a PUT renews its slot while the bytes stream.
pub const PUT_RENEW_EVERY: Duration = Duration::from_secs(60);

/// Most slots one agent may hold at once (granted or uploaded, not yet
/// sent): bounds the files waiting whatever a client does.
pub const MAX_OPEN_SLOTS_PER_AGENT: usize = 10;

/// An upload slot's id: 128 random bits, hex; the capability in the PUT URL.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct SlotId(String);

impl SlotId {
    fn generate() -> SlotId {
        let mut bytes = [0u8; 16];
        rand::rng().fill_bytes(&mut bytes);
        SlotId(hex::encode(bytes))
    }

    /// Accepts only what [`SlotId::generate`] makes.
    pub fn parse(raw: &str) -> Option<SlotId> {
        (raw.len() == 32 && raw.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')))
            .then(|| SlotId(raw.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// What the database keeps of it.
    fn hash(&self) -> String {
        hex::encode(Sha256::digest(self.0.as_bytes()))
    }
}

/// A granted slot, for the bridge to turn into PUT and GET URLs.
#[derive(Debug, Clone)]
pub struct GrantedSlot {
    pub id: SlotId,
    /// The id the file will have once sent (the GET URL names it).
    pub file_id: FileId,
    /// The announced size: the PUT must be exactly this long.
    pub size: u64,
}

/// Why a slot is not granted.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SlotRefusal {
    #[error("the file is larger than {limit} bytes")]
    TooLarge { limit: u64 },
    #[error("the file is empty")]
    Empty,
    #[error("too many uploads are waiting to be sent")]
    TooManyOpen,
    #[error(transparent)]
    DangerousName(#[from] DangerousName),
}

/// Why a PUT cannot use a slot.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum SlotUnusable {
    #[error("no such upload slot, or it expired")]
    Unknown,
    #[error("this upload slot was already used")]
    Used,
}

/// What [`Engine::attach_agent_file`] did.
#[derive(Debug, Clone)]
pub enum AgentFileOutcome {
    /// Stored and shown to the visitor.
    Attached(MessageView),
    /// No upload of this agent waits under that id (someone else's link, an
    /// expired or already sent upload): the message is ordinary text.
    NotAnUpload,
    /// The file is over the limit of this conversation's channel (slots
    /// allow the largest limit of all channels).
    TooLarge { limit: u64 },
}

/// What a PUT may write: the slot's announced size.
#[derive(Debug, Clone)]
pub struct UploadTicket {
    pub slot: SlotId,
    pub size: u64,
    /// The file name the agent's client asked the slot for.
    pub filename: String,
    /// Where its bytes go once complete (named in the slot's row first).
    key: StorageKey,
    renewed: Instant,
}

/// An instant `after` from now, in the store's milliseconds.
fn ms_after(now: i64, after: Duration) -> i64 {
    now.saturating_add(i64::try_from(after.as_millis()).unwrap_or(i64::MAX))
}

impl Engine {
    /// The largest file any channel accepts (what slots and the component's
    /// `max-file-size` allow); 0 when no channel takes files.
    pub fn largest_file_limit(&self) -> u64 {
        self.channels()
            .iter()
            .map(|c| c.config.limits.max_file_bytes)
            .max()
            .unwrap_or(0)
    }

    /// Grants `agent` a slot for a file of `size` bytes named `filename`
    /// (the client's name, sanitised when the file is sent). The outer
    /// error: the database could not be asked.
    pub async fn open_upload_slot(
        &self,
        agent: &AgentExtension,
        filename: &str,
        size: u64,
    ) -> EngineResult<Result<GrantedSlot, SlotRefusal>> {
        let limit = self.largest_file_limit();
        if size > limit {
            return Ok(Err(SlotRefusal::TooLarge { limit }));
        }
        if size == 0 {
            return Ok(Err(SlotRefusal::Empty));
        }
        // Refused now rather than after the bytes (the content is not known
        // yet, so only the name can be judged here).
        if let Err(e) = DisplayName::for_content(Some(filename), None) {
            return Ok(Err(e.into()));
        }
        let granted = GrantedSlot {
            id: SlotId::generate(),
            file_id: FileId::new(),
            size,
        };
        let now = now_ms();
        let row = NewUploadSlot {
            id_hash: granted.id.hash(),
            agent: agent.as_str().to_owned(),
            file_id: granted.file_id,
            filename: filename.to_owned(),
            size,
            expires_at: ms_after(now, SLOT_TTL),
        };
        let inserted = (self.inner.store)
            .insert_upload_slot(&row, MAX_OPEN_SLOTS_PER_AGENT, now)
            .await?;
        Ok(if inserted {
            Ok(granted)
        } else {
            Err(SlotRefusal::TooManyOpen)
        })
    }

    /// A PUT starts on `slot`: it may be used once, before it expires, by
    /// one PUT on any node.
    pub async fn begin_upload(
        &self,
        slot: &SlotId,
    ) -> EngineResult<Result<UploadTicket, SlotUnusable>> {
        let key = StorageKey::generate();
        let now = now_ms();
        let started = (self.inner.store)
            .start_upload(&slot.hash(), key.as_str(), ms_after(now, PUT_LEASE), now)
            .await?;
        Ok(match started {
            SlotStart::Started { size, filename } => Ok(UploadTicket {
                slot: slot.clone(),
                size,
                filename,
                key,
                renewed: Instant::now(),
            }),
            SlotStart::Unknown => Err(SlotUnusable::Unknown),
            SlotStart::Used => Err(SlotUnusable::Used),
        })
    }

    /// Called as the PUT's bytes come: every [`PUT_RENEW_EVERY`], its slot
    /// is renewed, so no node's sweep takes a PUT still streaming for a
    /// dead one. A failure only logs (the lease has minutes left).
    pub async fn keep_upload(&self, ticket: &mut UploadTicket) {
        if ticket.renewed.elapsed() < PUT_RENEW_EVERY {
            return;
        }
        ticket.renewed = Instant::now();
        let until = ms_after(now_ms(), PUT_LEASE);
        if let Err(e) = self
            .inner
            .store
            .renew_upload(&ticket.slot.hash(), until)
            .await
        {
            warn!(error = %e, "cannot renew an upload slot");
        }
    }

    /// The PUT on `ticket`'s slot completed: the bytes go to the file store
    /// (`bytes`) under the key the slot names, and wait there for the
    /// message that sends them, under the name they were received with
    /// (the slot's file name, made to fit the content). `Unknown` when the
    /// slot was swept meanwhile (its bytes are deleted again).
    pub async fn finish_upload(
        &self,
        ticket: &UploadTicket,
        file: Received,
        bytes: &dyn FileStore,
    ) -> EngineResult<Result<(), SlotUnusable>> {
        let (name, content_type, size) = (
            file.name.clone(),
            file.sniffed.media_type.clone(),
            file.size,
        );
        file.commit_under(&ticket.key)
            .await
            .map_err(EngineError::FileStore)?;
        let until = ms_after(now_ms(), CLAIM_WINDOW);
        let completed = (self.inner.store)
            .complete_upload(
                &ticket.slot.hash(),
                name.as_str(),
                &content_type,
                size,
                until,
            )
            .await?;
        if completed {
            return Ok(Ok(()));
        }
        bytes
            .delete(&ticket.key)
            .await
            .map_err(EngineError::FileStore)?;
        Ok(Err(SlotUnusable::Unknown))
    }

    /// The PUT on `ticket`'s slot failed: the slot is spent (the client
    /// asks for a new one), and whatever of its bytes was committed goes.
    pub async fn abort_upload(
        &self,
        ticket: &UploadTicket,
        bytes: &dyn FileStore,
    ) -> EngineResult<()> {
        if let Some(key) = self.inner.store.drop_upload(&ticket.slot.hash()).await? {
            if let Some(key) = StorageKey::parse(&key) {
                bytes.delete(&key).await.map_err(EngineError::FileStore)?;
            }
        }
        Ok(())
    }

    /// [`abort_upload`](Self::abort_upload) for a PUT that was cancelled
    /// where nothing can wait (dropped with its request), as an engine task.
    pub fn abort_upload_later(&self, ticket: UploadTicket, files: Files) {
        let engine = self.clone();
        self.inner.tasks.spawn(async move {
            if let Err(e) = engine.abort_upload(&ticket, files.store()).await {
                warn!(error = %e, "cannot release the slot of a cancelled upload");
            }
        });
    }

    /// Deletes expired slots (on every node's behalf: racing sweeps each
    /// take their own rows) and the bytes of uploads never sent; returns
    /// how many slots went. The XMPP bridge calls it regularly.
    pub async fn sweep_upload_slots(&self, bytes: &dyn FileStore) -> EngineResult<usize> {
        let keys = self
            .inner
            .store
            .remove_expired_upload_slots(now_ms())
            .await?;
        for key in keys.iter().flatten().filter_map(|k| StorageKey::parse(k)) {
            if let Err(e) = bytes.delete(&key).await {
                warn!(error = %e, "cannot delete an upload that was never sent");
            }
        }
        Ok(keys.len())
    }

    /// `agent` sent the link of their upload `file_id` in conversation
    /// `id`: stores the file with the conversation and shows it to the
    /// visitor as the agent's message (a first reply to an offer takes the
    /// chat, as for text). The upload stays available for another try when
    /// the chat is not theirs or has ended. `bytes` is the file store the
    /// file is in (and removed from, should its row not be stored).
    #[instrument(skip(self, bytes), fields(conversation = %id, file = %file_id))]
    pub async fn attach_agent_file(
        &self,
        id: ConversationId,
        agent: &AgentExtension,
        file_id: FileId,
        bytes: &dyn FileStore,
    ) -> EngineResult<AgentFileOutcome> {
        let store = &self.inner.store;
        let Some(size) = store
            .uploaded_size(agent.as_str(), &file_id, now_ms())
            .await?
        else {
            return Ok(AgentFileOutcome::NotAnUpload);
        };
        let row = self.row(id).await?;
        let limit = self.channel_of(&row)?.config.limits.max_file_bytes;
        if size > limit {
            return Ok(AgentFileOutcome::TooLarge { limit });
        }
        let row = self.claim_for_agent(row, agent).await?;
        // Take the file out; a concurrent claim of the same upload (on any
        // node) finds nothing and the message is plain text.
        let Some(file) = store
            .take_upload(agent.as_str(), &file_id, now_ms())
            .await?
        else {
            return Ok(AgentFileOutcome::NotAnUpload);
        };
        let Some(key) = StorageKey::parse(&file.storage_key) else {
            return Err(EngineError::Store(StoreError::Corrupt(
                "an upload slot without a storage key".into(),
            )));
        };
        let message = agent_message_view(&row, file.name.clone()).with_attachment(AttachmentView {
            id: file_id,
            name: file.name.clone(),
            size,
            content_type: file.content_type.clone(),
        });
        let file_row = FileRow {
            id: file_id,
            conversation_id: id,
            batch_id: format!("agent-{file_id}"),
            storage_key: key.as_str().to_owned(),
            name: file.name,
            size: i64::try_from(size).unwrap_or(i64::MAX),
            content_type: file.content_type,
            sender: "agent".to_owned(),
            created_at: 0,
        };
        let new = event(EventBody::Message { message });
        // Agents are not held to the visitors' quota: one file, one batch.
        let quota = FileQuota {
            per_batch: 1,
            files: u32::MAX,
            bytes: u64::MAX,
        };
        let stored = match store.insert_file(&file_row, &new, &quota).await {
            Ok(FileInsert::Stored(stored)) => stored,
            other => {
                // Not stored: its bytes must not stay behind.
                if let Err(e) = bytes.delete(&key).await {
                    warn!(error = %e, "cannot delete an agent file that was not stored");
                }
                return match other {
                    Ok(FileInsert::NoConversation) => Err(EngineError::UnknownConversation),
                    Err(e) => Err(e.into()),
                    Ok(_) => Err(EngineError::Store(StoreError::Corrupt(
                        "an agent file's batch was not empty".into(),
                    ))),
                };
            }
        };
        let message = message_of(&stored)?;
        self.announce(id, std::slice::from_ref(&stored));
        metrics::counter!("frontdesk_files_total", "from" => "agent").increment(1);
        info!(size, content_type = %file_row.content_type, "agent sent a file");
        Ok(AgentFileOutcome::Attached(message))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slot_ids_are_random_and_strictly_parsed() {
        let a = SlotId::generate();
        assert_ne!(a, SlotId::generate());
        assert_eq!(SlotId::parse(a.as_str()), Some(a));
        assert_eq!(SlotId::parse("../../etc/passwd"), None);
        assert_eq!(SlotId::parse(&"A".repeat(32)), None);
        assert_eq!(SlotId::parse(&"a".repeat(31)), None);
    }

    #[test]
    fn the_database_keeps_a_hash_of_the_slot_id_only() {
        let id = SlotId::generate();
        let hash = id.hash();
        assert_eq!(hash.len(), 64);
        assert!(!hash.contains(id.as_str()));
        assert_eq!(hash, id.clone().hash());
    }

    #[test]
    fn a_put_renews_its_slot_well_within_its_lease() {
        assert!(PUT_RENEW_EVERY * 2 < PUT_LEASE);
        assert_eq!(ms_after(1_000, Duration::from_secs(2)), 3_000);
        assert_eq!(ms_after(i64::MAX, SLOT_TTL), i64::MAX);
    }
}
