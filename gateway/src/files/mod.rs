//! Files visitors and agents send each other (spec F1–F4, E2, E3, A3).
//!
//! Files are where chat products leak memory, disk and security, so every
//! rule lives here, away from HTTP: an upload is streamed to the store chunk
//! by chunk and refused the moment it passes the channel's limit
//! ([`Intake`]); its type is sniffed from the bytes and checked against a
//! denylist ([`sniff`]); its name is only ever displayed, after sanitising
//! ([`name`]); its bytes get a random name in a [`FileStore`] that never
//! shows a partial file; agents download through expiring HMAC-signed links
//! ([`signing`]); and ended conversations go, files included, after the
//! channel's retention period ([`retention`]).

pub mod name;
pub mod retention;
pub mod signing;
pub mod sniff;
pub mod store;

use std::io;
use std::sync::Arc;

use url::Url;

use crate::config::{Config, Secret};
use crate::domain::{BatchId, ClientMessageId, FileId};
pub use name::{DangerousName, DisplayName};
pub use signing::{LinkError, Signature, UrlSigner};
pub use sniff::{Denylist, Sniffed};
pub use store::{DirectoryStore, FileStore, PendingFile, StorageKey, StoredBytes, PARTIAL_IDLE};

/// A received file, ready to become a message (see
/// `Engine::attach_visitor_file`).
#[derive(Debug, Clone)]
pub struct NewAttachment {
    pub id: FileId,
    pub storage_key: StorageKey,
    pub name: DisplayName,
    pub size: u64,
    pub content_type: String,
    pub batch_id: BatchId,
    /// The client's id for this upload: a retry returns the first message.
    pub client_id: Option<ClientMessageId>,
}

/// Everything file handling needs, cheap to clone.
#[derive(Clone)]
pub struct Files {
    inner: Arc<Inner>,
}

struct Inner {
    store: Arc<dyn FileStore>,
    signer: UrlSigner,
    denylist: Denylist,
    public_url: Url,
    link_ttl_secs: i64,
    min_free_bytes: u64,
}

impl Files {
    pub fn new(
        store: Arc<dyn FileStore>,
        signer: UrlSigner,
        denylist: Denylist,
        public_url: Url,
        link_ttl_secs: u64,
        min_free_bytes: u64,
    ) -> Files {
        Files {
            inner: Arc::new(Inner {
                store,
                signer,
                denylist,
                public_url,
                link_ttl_secs: i64::try_from(link_ttl_secs).unwrap_or(i64::MAX / 2),
                min_free_bytes,
            }),
        }
    }

    /// A directory store at `files.directory` (default `DATA_DIR/files`),
    /// links signed with `files.signing_key` or the key kept in
    /// `DATA_DIR/file-signing.key`.
    pub fn from_config(config: &Config) -> Files {
        let signer = match config.files.signing_key.as_ref().map(Secret::expose) {
            Some(key) if !key.is_empty() => UrlSigner::with_key(key.as_bytes()),
            _ => UrlSigner::persisted(config.server.data_dir.join("file-signing.key")),
        };
        Files::new(
            Arc::new(DirectoryStore::new(config.files_dir())),
            signer,
            Denylist::new(&config.files.denied_types),
            config.public_url(),
            config.files.link_ttl_secs,
            config.files.min_free_bytes,
        )
    }

    pub fn store(&self) -> &dyn FileStore {
        self.inner.store.as_ref()
    }

    /// Starts receiving a file of at most `limit` bytes, unless the store
    /// is down to its free-space floor (`files.min_free_bytes`): a full disk
    /// would fail uploads half-way and then the database, so uploads stop
    /// first, with a clear error, while chat goes on.
    pub async fn intake(&self, limit: u64) -> Result<Intake, IntakeError> {
        let floor = self.inner.min_free_bytes;
        if floor > 0 {
            let free = self.inner.store.available_space().await?;
            if free < floor.saturating_add(limit) {
                return Err(IntakeError::StorageFull);
            }
        }
        Ok(Intake {
            pending: self.inner.store.begin().await?,
            limit,
            size: 0,
            head: Vec::new(),
            sniffed: None,
            denylist: self.inner.denylist.clone(),
        })
    }

    /// The link an agent downloads `id` with, valid for `link_ttl_secs`:
    /// `PUBLIC_URL/files/{id}?expires=…&sig=…`.
    pub fn agent_link(&self, id: &FileId) -> io::Result<Url> {
        let expires = chrono::Utc::now()
            .timestamp()
            .saturating_add(self.inner.link_ttl_secs);
        self.agent_link_until(id, expires)
    }

    /// A link valid until `expires` (Unix seconds).
    pub fn agent_link_until(&self, id: &FileId, expires: i64) -> io::Result<Url> {
        let signature = self.inner.signer.sign(id, expires)?;
        let mut url = self
            .inner
            .public_url
            .join(&format!("files/{id}"))
            .map_err(|e| io::Error::other(e.to_string()))?;
        url.query_pairs_mut()
            .append_pair("expires", &signature.expires.to_string())
            .append_pair("sig", &signature.sig);
        Ok(url)
    }

    /// Checks an agent's link now.
    pub fn verify_link(
        &self,
        id: &FileId,
        presented: &Signature,
    ) -> io::Result<Result<(), LinkError>> {
        self.inner
            .signer
            .verify(id, presented, chrono::Utc::now().timestamp())
    }
}

/// Why an upload was refused.
#[derive(Debug, thiserror::Error)]
pub enum IntakeError {
    #[error("the file is larger than {limit} bytes")]
    TooLarge { limit: u64 },
    #[error("files of type {media_type} are not allowed")]
    Denied { media_type: String },
    #[error("the file is empty")]
    Empty,
    #[error(transparent)]
    DangerousName(#[from] DangerousName),
    #[error("the file store is full")]
    StorageFull,
    #[error("cannot store the file: {0}")]
    Io(io::Error),
}

impl From<io::Error> for IntakeError {
    /// A disk that fills up under an upload is a full store, not a failure.
    fn from(e: io::Error) -> Self {
        match e.kind() {
            io::ErrorKind::StorageFull | io::ErrorKind::QuotaExceeded => IntakeError::StorageFull,
            _ => IntakeError::Io(e),
        }
    }
}

/// A file being received: counts, sniffs and writes each chunk as it
/// comes, so memory stays flat whatever the file size. Dropping it (on any
/// error, or when the client goes away) leaves nothing in the store.
pub struct Intake {
    pending: Box<dyn PendingFile>,
    limit: u64,
    size: u64,
    head: Vec<u8>,
    sniffed: Option<Sniffed>,
    denylist: Denylist,
}

impl Intake {
    /// Takes the next chunk; refuses as soon as the total passes the limit
    /// or the first bytes show a denied type.
    pub async fn push(&mut self, chunk: &[u8]) -> Result<(), IntakeError> {
        self.size = self.size.saturating_add(chunk.len() as u64);
        if self.size > self.limit {
            return Err(IntakeError::TooLarge { limit: self.limit });
        }
        if self.sniffed.is_none() {
            let take = (sniff::SNIFF_BYTES - self.head.len()).min(chunk.len());
            self.head.extend_from_slice(&chunk[..take]);
            if self.head.len() >= sniff::SNIFF_BYTES {
                self.decide(false)?;
            }
        }
        self.pending.write(chunk).await?;
        Ok(())
    }

    fn decide(&mut self, complete: bool) -> Result<(), IntakeError> {
        let sniffed = sniff::sniff(&self.head, complete);
        if self.denylist.denies(&sniffed.media_type) {
            return Err(IntakeError::Denied {
                media_type: sniffed.media_type,
            });
        }
        self.sniffed = Some(sniffed);
        self.head = Vec::new();
        Ok(())
    }

    /// The whole file arrived; `client_name` is the name the client gave
    /// it, made to fit the content (see [`DisplayName::for_content`]).
    pub async fn finish(mut self, client_name: Option<&str>) -> Result<Received, IntakeError> {
        if self.size == 0 {
            return Err(IntakeError::Empty);
        }
        if self.sniffed.is_none() {
            self.decide(true)?;
        }
        let sniffed = self.sniffed.take().expect("decided above");
        let name = DisplayName::for_content(client_name, sniffed.extension.as_deref())?;
        Ok(Received {
            pending: self.pending,
            size: self.size,
            sniffed,
            name,
        })
    }
}

/// A complete, accepted file not yet in the store.
pub struct Received {
    pending: Box<dyn PendingFile>,
    pub size: u64,
    pub sniffed: Sniffed,
    /// The name to show and to download it under.
    pub name: DisplayName,
}

impl Received {
    /// Puts the file in the store under a new random key.
    pub async fn commit(self) -> io::Result<StorageKey> {
        let key = StorageKey::generate();
        self.commit_under(&key).await?;
        Ok(key)
    }

    /// Puts the file in the store under `key`, chosen beforehand (an
    /// agent's upload names it in its slot before the bytes arrive, so a
    /// crash between the two leaves nothing nobody knows of).
    pub async fn commit_under(self, key: &StorageKey) -> io::Result<()> {
        self.pending.commit(key).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn files(dir: &std::path::Path) -> Files {
        Files::new(
            Arc::new(DirectoryStore::new(dir)),
            UrlSigner::with_key(&[1u8; 32]),
            Denylist::new(&["text/html".to_owned()]),
            Url::parse("https://chat.example.com/base/").unwrap(),
            60,
            0,
        )
    }

    fn temp() -> std::path::PathBuf {
        std::env::temp_dir().join(format!("frontdesk-intake-{}", FileId::new()))
    }

    #[tokio::test]
    async fn the_limit_is_inclusive_and_checked_per_chunk() {
        let dir = temp();
        let files = files(&dir);
        let mut exact = files.intake(10).await.unwrap();
        exact.push(b"hello").await.unwrap();
        exact.push(b"world").await.unwrap();
        let received = exact.finish(Some("hello.txt")).await.unwrap();
        assert_eq!(received.size, 10);
        assert_eq!(received.sniffed.media_type, "text/plain");
        let key = received.commit().await.unwrap();
        assert!(files.store().open(&key).await.unwrap().is_some());

        let mut over = files.intake(10).await.unwrap();
        over.push(b"hello").await.unwrap();
        assert!(matches!(
            over.push(b"world!").await,
            Err(IntakeError::TooLarge { limit: 10 })
        ));
        drop(over);
        assert_eq!(std::fs::read_dir(dir.join("tmp")).unwrap().count(), 0);
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[tokio::test]
    async fn denied_and_empty_files_are_refused() {
        let dir = temp();
        let files = files(&dir);
        let mut html = files.intake(1000).await.unwrap();
        html.push(b"<html><script>alert(1)</script>").await.unwrap();
        assert!(matches!(
            html.finish(Some("page.txt")).await,
            Err(IntakeError::Denied { media_type }) if media_type == "text/html"
        ));
        let empty = files.intake(1000).await.unwrap();
        assert!(matches!(empty.finish(None).await, Err(IntakeError::Empty)));
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[tokio::test]
    async fn an_installer_is_not_renamed_to_run() {
        // The OLE2 header infer reports as an MSI installer, which the
        // default denylist does not name: sent as `invoice.pdf`, it must
        // not be offered back as `invoice.msi` (found by the fuzz properties).
        let dir = temp();
        let files = files(&dir);
        let mut intake = files.intake(1000).await.unwrap();
        intake
            .push(b"\xD0\xCF\x11\xE0\xA1\xB1\x1A\xE1\0\0\0\0")
            .await
            .unwrap();
        assert!(matches!(
            intake.finish(Some("invoice.pdf")).await,
            Err(IntakeError::DangerousName(DangerousName { extension })) if extension == "msi"
        ));
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn agent_links_live_under_the_public_url() {
        let files = files(std::path::Path::new("/nonexistent"));
        let id = FileId::new();
        let url = files.agent_link_until(&id, 1234).unwrap();
        assert!(url.as_str().starts_with(&format!(
            "https://chat.example.com/base/files/{id}?expires=1234&sig="
        )));
        let sig = url.query_pairs().find(|(k, _)| k == "sig").unwrap().1;
        let presented = Signature {
            expires: 1234,
            sig: sig.into_owned(),
        };
        assert_eq!(
            files.verify_link(&id, &presented).unwrap(),
            Err(LinkError::Expired)
        );
    }
}
