//! Files agents send visitors through HTTP File Upload (XEP-0363).
//!
//! An agent's ordinary XMPP client asks the component for a slot, PUTs the
//! bytes to the gateway, then sends the download link as a message in the
//! chat. The slot is requested on the component domain, not in a chat, so
//! the file cannot belong to a conversation until that message arrives: in
//! between it waits here, in memory, as a complete but *uncommitted* upload
//! ([`Received`]). Nothing is in the file store until the message claims it
//! for a chat that is the agent's; an upload never claimed is dropped when
//! its slot expires, which deletes its bytes, and a restart leaves only a
//! partial file that the store's sweep removes. So no orphan file outlives
//! [`CLAIM_WINDOW`] plus the partial-file sweep.
//!
//! Slots are capabilities: a random id in the PUT URL, usable once, within
//! [`SLOT_TTL`], bound to the agent who asked (only their message can claim
//! the file). They live in this node's memory, so the PUT must reach the
//! node whose component answered the request (with Prosody one node holds
//! the component at a time).

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use pbx_adapter::AgentExtension;
use rand::RngCore;
use tracing::{info, instrument, warn};

use super::view::AttachmentView;
use super::{
    agent_message_view, event, message_of, Engine, EngineError, EngineResult, EventBody,
    MessageView, Signal,
};
use crate::domain::{ConversationId, FileId};
use crate::files::{DangerousName, DisplayName, FileStore, Received};
use crate::store::{FileInsert, FileQuota, FileRow, StoreError};

/// How long a granted slot waits for its PUT to start.
pub const SLOT_TTL: Duration = Duration::from_secs(300);

/// How long an uploaded file waits for the message that sends it. Kept
/// well under the store's partial-file idle time (an hour), so the sweep
/// never removes a file still waiting here.
pub const CLAIM_WINDOW: Duration = Duration::from_secs(1800);

/// Most slots one agent may hold at once (granted or uploaded, not yet
/// sent): bounds memory and open files whatever a client does.
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

enum SlotState {
    /// Granted; no PUT yet.
    Open,
    /// A PUT is streaming.
    Uploading,
    /// Complete, not yet sent in a chat.
    Uploaded {
        file: Received,
        name: DisplayName,
        claim_by: Instant,
    },
}

struct Slot {
    agent: AgentExtension,
    file_id: FileId,
    filename: String,
    size: u64,
    expires: Instant,
    state: SlotState,
}

impl Slot {
    fn expired(&self, now: Instant) -> bool {
        match &self.state {
            SlotState::Open => self.expires <= now,
            // A PUT in progress finishes or fails on its own.
            SlotState::Uploading => false,
            SlotState::Uploaded { claim_by, .. } => *claim_by <= now,
        }
    }
}

/// This node's upload slots. Dropping a slot drops an unsent file, which
/// deletes its bytes.
#[derive(Default)]
pub struct UploadSlots {
    slots: Mutex<HashMap<SlotId, Slot>>,
}

impl UploadSlots {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<SlotId, Slot>> {
        self.slots.lock().expect("upload slots lock poisoned")
    }

    /// Forgets expired slots and the files that waited in them; returns how
    /// many went.
    fn sweep(&self, now: Instant) -> usize {
        let expired: Vec<Slot> = {
            let mut slots = self.lock();
            let ids: Vec<SlotId> = slots
                .iter()
                .filter(|(_, s)| s.expired(now))
                .map(|(id, _)| id.clone())
                .collect();
            ids.iter().filter_map(|id| slots.remove(id)).collect()
        };
        // Dropped outside the lock: dropping an unsent file unlinks it.
        expired.len()
    }
}

/// What a PUT may write: the slot's announced size.
#[derive(Debug, Clone)]
pub struct UploadTicket {
    pub slot: SlotId,
    pub size: u64,
    /// The file name the agent's client asked the slot for.
    pub filename: String,
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
    /// (the client's name, sanitised when the file is sent).
    pub fn open_upload_slot(
        &self,
        agent: &AgentExtension,
        filename: &str,
        size: u64,
    ) -> Result<GrantedSlot, SlotRefusal> {
        let limit = self.largest_file_limit();
        if size > limit {
            return Err(SlotRefusal::TooLarge { limit });
        }
        if size == 0 {
            return Err(SlotRefusal::Empty);
        }
        // Refused now rather than after the bytes (the content is not known
        // yet, so only the name can be judged here).
        DisplayName::for_content(Some(filename), None)?;
        let now = Instant::now();
        self.inner.uploads.sweep(now);
        let mut slots = self.inner.uploads.lock();
        if slots.values().filter(|s| &s.agent == agent).count() >= MAX_OPEN_SLOTS_PER_AGENT {
            return Err(SlotRefusal::TooManyOpen);
        }
        let granted = GrantedSlot {
            id: SlotId::generate(),
            file_id: FileId::new(),
            size,
        };
        slots.insert(
            granted.id.clone(),
            Slot {
                agent: agent.clone(),
                file_id: granted.file_id,
                filename: filename.to_owned(),
                size,
                expires: now + SLOT_TTL,
                state: SlotState::Open,
            },
        );
        Ok(granted)
    }

    /// A PUT starts on `slot`: it may be used once, before it expires.
    pub fn begin_upload(&self, slot: &SlotId) -> Result<UploadTicket, SlotUnusable> {
        let now = Instant::now();
        self.inner.uploads.sweep(now);
        let mut slots = self.inner.uploads.lock();
        let entry = slots.get_mut(slot).ok_or(SlotUnusable::Unknown)?;
        if !matches!(entry.state, SlotState::Open) {
            return Err(SlotUnusable::Used);
        }
        entry.state = SlotState::Uploading;
        Ok(UploadTicket {
            slot: slot.clone(),
            size: entry.size,
            filename: entry.filename.clone(),
        })
    }

    /// The PUT on `ticket`'s slot completed: the file waits for the message
    /// that sends it, under the name it was received with (the slot's file
    /// name, made to fit the content).
    pub fn finish_upload(&self, ticket: UploadTicket, file: Received) {
        let mut slots = self.inner.uploads.lock();
        if let Some(slot) = slots.get_mut(&ticket.slot) {
            let name = file.name.clone();
            slot.state = SlotState::Uploaded {
                file,
                name,
                claim_by: Instant::now() + CLAIM_WINDOW,
            };
        }
    }

    /// The PUT on `ticket`'s slot failed: the slot is spent (the client
    /// asks for a new one).
    pub fn abort_upload(&self, ticket: UploadTicket) {
        let removed = self.inner.uploads.lock().remove(&ticket.slot);
        drop(removed);
    }

    /// Forgets expired slots and deletes files uploaded but never sent;
    /// returns how many slots went. The XMPP bridge calls it regularly.
    pub fn sweep_upload_slots(&self) -> usize {
        self.inner.uploads.sweep(Instant::now())
    }

    /// `agent` sent the link of their upload `file_id` in conversation
    /// `id`: stores the file with the conversation and shows it to the
    /// visitor as the agent's message (a first reply to an offer takes the
    /// chat, as for text). The upload stays available for another try when
    /// the chat is not theirs or has ended. `bytes` is the file store the
    /// file is committed to (and removed from, should its row not be
    /// stored).
    #[instrument(skip(self, bytes), fields(conversation = %id, file = %file_id))]
    pub async fn attach_agent_file(
        &self,
        id: ConversationId,
        agent: &AgentExtension,
        file_id: FileId,
        bytes: &dyn FileStore,
    ) -> EngineResult<AgentFileOutcome> {
        let waiting = {
            let slots = self.inner.uploads.lock();
            slots.iter().find_map(|(slot_id, s)| match &s.state {
                SlotState::Uploaded { file, .. } if s.file_id == file_id && &s.agent == agent => {
                    Some((slot_id.clone(), file.size))
                }
                _ => None,
            })
        };
        let Some((slot_id, size)) = waiting else {
            return Ok(AgentFileOutcome::NotAnUpload);
        };
        let row = self.row(id).await?;
        let limit = self.channel_of(&row)?.config.limits.max_file_bytes;
        if size > limit {
            return Ok(AgentFileOutcome::TooLarge { limit });
        }
        let row = self.claim_for_agent(row, agent).await?;
        // Take the file out; a concurrent claim of the same upload finds
        // nothing and the message is plain text.
        let Some(Slot {
            state: SlotState::Uploaded { file, name, .. },
            ..
        }) = self.inner.uploads.lock().remove(&slot_id)
        else {
            return Ok(AgentFileOutcome::NotAnUpload);
        };
        let content_type = file.sniffed.media_type.clone();
        let key = file.commit().await.map_err(EngineError::FileStore)?;
        let message =
            agent_message_view(&row, name.as_str().to_owned()).with_attachment(AttachmentView {
                id: file_id,
                name: name.as_str().to_owned(),
                size,
                content_type: content_type.clone(),
            });
        let file_row = FileRow {
            id: file_id,
            conversation_id: id,
            batch_id: format!("agent-{file_id}"),
            storage_key: key.as_str().to_owned(),
            name: name.into_string(),
            size: i64::try_from(size).unwrap_or(i64::MAX),
            content_type,
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
        let stored = match self.inner.store.insert_file(&file_row, &new, &quota).await {
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
        self.inner.hub.publish(id, Signal::Committed(stored.seq));
        metrics::counter!("frontdesk_files_total", "from" => "agent").increment(1);
        info!(size, content_type = %file_row.content_type, "agent sent a file");
        Ok(AgentFileOutcome::Attached(message))
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::files::{Denylist, DirectoryStore, Files, UrlSigner};

    fn files(dir: &std::path::Path) -> Files {
        Files::new(
            Arc::new(DirectoryStore::new(dir)),
            UrlSigner::with_key(&[7u8; 32]),
            Denylist::new(&[]),
            url::Url::parse("https://chat.example.com/").unwrap(),
            60,
            0,
        )
    }

    fn slot(state: SlotState, expires: Instant) -> Slot {
        Slot {
            agent: "101".parse().unwrap(),
            file_id: FileId::new(),
            filename: "a.txt".into(),
            size: 5,
            expires,
            state,
        }
    }

    #[test]
    fn slot_ids_are_random_and_strictly_parsed() {
        let a = SlotId::generate();
        assert_ne!(a, SlotId::generate());
        assert_eq!(SlotId::parse(a.as_str()), Some(a));
        assert_eq!(SlotId::parse("../../etc/passwd"), None);
        assert_eq!(SlotId::parse(&"A".repeat(32)), None);
        assert_eq!(SlotId::parse(&"a".repeat(31)), None);
    }

    #[tokio::test]
    async fn expired_slots_go_and_unsent_files_with_them() {
        let dir = std::env::temp_dir().join(format!("frontdesk-slots-{}", FileId::new()));
        let files = files(&dir);
        let mut intake = files.intake(5).await.unwrap();
        intake.push(b"hello").await.unwrap();
        let received = intake.finish(Some("a.txt")).await.unwrap();
        let now = Instant::now();
        let slots = UploadSlots::default();
        let uploaded = SlotState::Uploaded {
            file: received,
            name: DisplayName::sanitize("a.txt"),
            claim_by: now + CLAIM_WINDOW,
        };
        for (id, state) in [
            ("open", SlotState::Open),
            ("uploading", SlotState::Uploading),
            ("uploaded", uploaded),
        ] {
            slots
                .lock()
                .insert(SlotId(id.into()), slot(state, now + SLOT_TTL));
        }
        let partials = || std::fs::read_dir(dir.join("tmp")).unwrap().count();
        assert_eq!(partials(), 1, "the unsent file waits uncommitted");

        assert_eq!(slots.sweep(now), 0);
        assert_eq!(slots.sweep(now + SLOT_TTL), 1, "the unused slot expires");
        assert_eq!(slots.lock().len(), 2);
        assert_eq!(
            slots.sweep(now + CLAIM_WINDOW),
            1,
            "the unsent file expires"
        );
        assert_eq!(partials(), 0, "and its bytes are gone");
        let left: Vec<SlotId> = slots.lock().keys().cloned().collect();
        assert_eq!(
            left,
            [SlotId("uploading".into())],
            "a PUT in progress stays"
        );
        std::fs::remove_dir_all(dir).unwrap();
    }
}
