//! Where file bytes live: a trait, so an object store can come later, and
//! the directory implementation used today.
//!
//! Invariant: a file exists under its key only once it is complete. An
//! upload writes to a temporary name and is renamed on `commit`; dropping a
//! [`PendingFile`] without committing (the client went away, the limit was
//! passed, the type was refused, the task was cancelled) deletes it. Keys
//! are random and never derive from the client's name.

use std::io;
use std::path::{Path, PathBuf};
use std::pin::Pin;

use async_trait::async_trait;
use rand::RngCore;
use tokio::io::{AsyncRead, AsyncWriteExt};

/// How long a partial upload may go unwritten before it counts as
/// abandoned by a crashed process.
pub const PARTIAL_IDLE: std::time::Duration = std::time::Duration::from_secs(3600);

/// The name of a stored file in its store: 32 random hex digits.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct StorageKey(String);

impl StorageKey {
    pub fn generate() -> StorageKey {
        let mut bytes = [0u8; 16];
        rand::rng().fill_bytes(&mut bytes);
        StorageKey(hex::encode(bytes))
    }

    /// Accepts only what [`generate`](Self::generate) makes, so a stored
    /// key can never name a path outside the store.
    pub fn parse(raw: &str) -> Option<StorageKey> {
        (raw.len() == 32 && raw.bytes().all(|b| b.is_ascii_hexdigit()))
            .then(|| StorageKey(raw.to_ascii_lowercase()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// A file being received. Dropping it without [`commit`](Self::commit)
/// removes every trace of it.
#[async_trait]
pub trait PendingFile: Send {
    async fn write(&mut self, chunk: &[u8]) -> io::Result<()>;
    /// Makes the complete file durable under `key`.
    async fn commit(self: Box<Self>, key: &StorageKey) -> io::Result<()>;
}

/// A stored file opened for reading.
pub struct StoredBytes {
    pub reader: Pin<Box<dyn AsyncRead + Send>>,
    pub size: u64,
}

#[async_trait]
pub trait FileStore: Send + Sync + 'static {
    /// Starts receiving a new file.
    async fn begin(&self) -> io::Result<Box<dyn PendingFile>>;
    /// Opens a committed file; `None` if there is none under `key`.
    async fn open(&self, key: &StorageKey) -> io::Result<Option<StoredBytes>>;
    /// Deletes a committed file (deleting a missing one is not an error).
    async fn delete(&self, key: &StorageKey) -> io::Result<()>;
    /// Removes partial uploads a crashed process left behind: those not
    /// written to for [`PARTIAL_IDLE`] (a live upload writes all the time,
    /// so another node's uploads in a shared store are safe). Called at
    /// start-up and by the hourly sweep. Returns how many there were.
    async fn remove_partials(&self) -> io::Result<usize>;
    /// Bytes still free for new files (for the free-space floor).
    async fn available_space(&self) -> io::Result<u64>;
}

/// Files as plain files in one folder, partial uploads in `tmp/` inside it.
/// The folder is created on first use, so a gateway that never receives a
/// file writes nothing.
pub struct DirectoryStore {
    root: PathBuf,
}

impl DirectoryStore {
    pub fn new(root: impl Into<PathBuf>) -> DirectoryStore {
        DirectoryStore { root: root.into() }
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    fn tmp_dir(&self) -> PathBuf {
        self.root.join("tmp")
    }

    fn path_of(&self, key: &StorageKey) -> PathBuf {
        self.root.join(key.as_str())
    }
}

#[async_trait]
impl FileStore for DirectoryStore {
    async fn available_space(&self) -> io::Result<u64> {
        // The folder may not exist yet: ask about the nearest one that does.
        let mut dir = self.root.clone();
        while !dir.exists() {
            if !dir.pop() || dir.as_os_str().is_empty() {
                dir = PathBuf::from(".");
                break;
            }
        }
        tokio::task::spawn_blocking(move || {
            let stats = rustix::fs::statvfs(&dir)?;
            Ok(stats.f_bavail.saturating_mul(stats.f_frsize))
        })
        .await
        .map_err(io::Error::other)?
    }

    async fn remove_partials(&self) -> io::Result<usize> {
        let mut entries = match tokio::fs::read_dir(self.tmp_dir()).await {
            Ok(entries) => entries,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(0),
            Err(e) => return Err(e),
        };
        let mut removed = 0;
        while let Some(entry) = entries.next_entry().await? {
            let idle = entry
                .metadata()
                .await?
                .modified()?
                .elapsed()
                .unwrap_or_default();
            if idle >= PARTIAL_IDLE {
                tokio::fs::remove_file(entry.path()).await?;
                removed += 1;
            }
        }
        Ok(removed)
    }

    async fn begin(&self) -> io::Result<Box<dyn PendingFile>> {
        let tmp = self.tmp_dir();
        tokio::fs::create_dir_all(&tmp).await?;
        let path = tmp.join(format!("{}.part", StorageKey::generate().as_str()));
        let mut file = tokio::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&path)
            .await?;
        // tokio buffers up to 2 MiB per file by default: 20 uploads at once
        // would hold 40 MiB. 64 KiB keeps memory flat whatever the size.
        file.set_max_buf_size(64 * 1024);
        Ok(Box::new(DirectoryPending {
            file: Some(file),
            path,
            root: self.root.clone(),
            committed: false,
        }))
    }

    async fn open(&self, key: &StorageKey) -> io::Result<Option<StoredBytes>> {
        let file = match tokio::fs::File::open(self.path_of(key)).await {
            Ok(file) => file,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(e),
        };
        let size = file.metadata().await?.len();
        Ok(Some(StoredBytes {
            reader: Box::pin(file),
            size,
        }))
    }

    async fn delete(&self, key: &StorageKey) -> io::Result<()> {
        match tokio::fs::remove_file(self.path_of(key)).await {
            Err(e) if e.kind() != io::ErrorKind::NotFound => Err(e),
            _ => Ok(()),
        }
    }
}

struct DirectoryPending {
    file: Option<tokio::fs::File>,
    path: PathBuf,
    root: PathBuf,
    committed: bool,
}

#[async_trait]
impl PendingFile for DirectoryPending {
    async fn write(&mut self, chunk: &[u8]) -> io::Result<()> {
        match self.file.as_mut() {
            Some(file) => file.write_all(chunk).await,
            None => Err(io::Error::other("the upload is already closed")),
        }
    }

    async fn commit(mut self: Box<Self>, key: &StorageKey) -> io::Result<()> {
        let mut file = self
            .file
            .take()
            .ok_or_else(|| io::Error::other("the upload is already closed"))?;
        file.flush().await?;
        file.sync_all().await?;
        drop(file);
        tokio::fs::rename(&self.path, self.root.join(key.as_str())).await?;
        self.committed = true;
        Ok(())
    }
}

impl Drop for DirectoryPending {
    fn drop(&mut self) {
        if self.committed {
            return;
        }
        // Close before unlinking; a tiny synchronous unlink is fine here and
        // runs even when the task is being cancelled.
        self.file.take();
        if let Err(e) = std::fs::remove_file(&self.path) {
            if e.kind() != io::ErrorKind::NotFound {
                tracing::warn!(path = %self.path.display(), error = %e, "cannot remove a partial upload");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use tokio::io::AsyncReadExt;

    use super::*;

    fn files_in(dir: &Path) -> Vec<String> {
        let mut names: Vec<String> = std::fs::read_dir(dir)
            .map(|d| {
                d.filter_map(Result::ok)
                    .filter(|e| e.path().is_file())
                    .map(|e| e.file_name().to_string_lossy().into_owned())
                    .collect()
            })
            .unwrap_or_default();
        names.sort();
        names
    }

    #[tokio::test]
    async fn committed_files_appear_under_their_key_only() {
        let dir = tempfile_dir();
        let store = DirectoryStore::new(dir.join("files"));
        let mut pending = store.begin().await.unwrap();
        pending.write(b"hello ").await.unwrap();
        pending.write(b"world").await.unwrap();
        assert_eq!(files_in(&dir.join("files")), Vec::<String>::new());
        let key = StorageKey::generate();
        pending.commit(&key).await.unwrap();
        assert_eq!(files_in(&dir.join("files")), vec![key.as_str().to_owned()]);
        assert_eq!(files_in(&dir.join("files/tmp")), Vec::<String>::new());
        let mut opened = store.open(&key).await.unwrap().unwrap();
        assert_eq!(opened.size, 11);
        let mut text = String::new();
        opened.reader.read_to_string(&mut text).await.unwrap();
        assert_eq!(text, "hello world");
        store.delete(&key).await.unwrap();
        assert!(store.open(&key).await.unwrap().is_none());
        store.delete(&key).await.unwrap();
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[tokio::test]
    async fn a_dropped_upload_leaves_nothing() {
        let dir = tempfile_dir();
        let store = DirectoryStore::new(&dir);
        let mut pending = store.begin().await.unwrap();
        pending.write(&[7u8; 4096]).await.unwrap();
        assert_eq!(files_in(&dir.join("tmp")).len(), 1);
        drop(pending);
        assert_eq!(files_in(&dir.join("tmp")), Vec::<String>::new());
        assert_eq!(files_in(&dir), Vec::<String>::new());
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[tokio::test]
    async fn only_abandoned_partials_are_cleaned_up() {
        let dir = tempfile_dir();
        let store = DirectoryStore::new(&dir);
        assert_eq!(store.remove_partials().await.unwrap(), 0);
        std::fs::create_dir_all(dir.join("tmp")).unwrap();
        let stale = dir.join("tmp/stale.part");
        std::fs::write(&stale, b"half").unwrap();
        let old = std::time::SystemTime::now() - PARTIAL_IDLE - std::time::Duration::from_secs(5);
        std::fs::File::options()
            .write(true)
            .open(&stale)
            .unwrap()
            .set_modified(old)
            .unwrap();
        let mut live = store.begin().await.unwrap();
        live.write(b"in progress").await.unwrap();
        assert_eq!(store.remove_partials().await.unwrap(), 1);
        assert!(!stale.exists());
        assert_eq!(files_in(&dir.join("tmp")).len(), 1, "the live upload stays");
        drop(live);
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn storage_keys_cannot_name_paths() {
        assert!(StorageKey::parse("../../etc/passwd").is_none());
        assert!(StorageKey::parse(&"a".repeat(31)).is_none());
        let key = StorageKey::generate();
        assert_eq!(StorageKey::parse(key.as_str()), Some(key));
    }

    fn tempfile_dir() -> PathBuf {
        let dir = std::env::temp_dir().join(format!(
            "frontdesk-files-{}",
            StorageKey::generate().as_str()
        ));
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }
}
