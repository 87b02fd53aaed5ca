//! Download links for agents: `GET /files/{id}?expires=…&sig=…`.
//!
//! Agents' chat clients cannot send the visitor's token, so their links
//! carry an HMAC-SHA256 over the file id and the expiry instant. Anyone
//! holding a link can download until it expires; changing any part of it
//! breaks the signature. The key is configured, or generated once and kept
//! in the data dir (0600) so links survive restarts; it is only read or
//! created when first needed.

use std::io;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use hmac::{Hmac, Mac};
use rand::RngCore;
use sha2::Sha256;

use crate::domain::FileId;

type HmacSha256 = Hmac<Sha256>;

/// Why a link was refused. Both answer 403; the difference is for logs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum LinkError {
    #[error("the link's signature does not match")]
    BadSignature,
    #[error("the link has expired")]
    Expired,
}

/// The query string of a signed link.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Signature {
    /// Unix seconds.
    pub expires: i64,
    /// Hex HMAC.
    pub sig: String,
}

pub struct UrlSigner {
    key: KeySource,
}

enum KeySource {
    Fixed(Arc<[u8]>),
    Persisted {
        path: PathBuf,
        loaded: Mutex<Option<Arc<[u8]>>>,
    },
}

impl UrlSigner {
    /// Signs with `key` (at least 32 bytes, checked by the config).
    pub fn with_key(key: &[u8]) -> UrlSigner {
        UrlSigner {
            key: KeySource::Fixed(key.into()),
        }
    }

    /// Signs with the key kept in `path`, created on first use.
    pub fn persisted(path: PathBuf) -> UrlSigner {
        UrlSigner {
            key: KeySource::Persisted {
                path,
                loaded: Mutex::new(None),
            },
        }
    }

    fn key(&self) -> io::Result<Arc<[u8]>> {
        match &self.key {
            KeySource::Fixed(key) => Ok(key.clone()),
            KeySource::Persisted { path, loaded } => {
                let mut loaded = loaded.lock().expect("signing key lock poisoned");
                if let Some(key) = loaded.as_ref() {
                    return Ok(key.clone());
                }
                let key: Arc<[u8]> = load_or_create_key(path)?.into();
                *loaded = Some(key.clone());
                Ok(key)
            }
        }
    }

    fn mac(&self, id: &FileId, expires: i64) -> io::Result<HmacSha256> {
        let mut mac = HmacSha256::new_from_slice(&self.key()?)
            .map_err(|e| io::Error::other(e.to_string()))?;
        mac.update(id.to_string().as_bytes());
        mac.update(b"\n");
        mac.update(expires.to_string().as_bytes());
        Ok(mac)
    }

    /// A signature valid until `expires` (Unix seconds).
    pub fn sign(&self, id: &FileId, expires: i64) -> io::Result<Signature> {
        let sig = hex::encode(self.mac(id, expires)?.finalize().into_bytes());
        Ok(Signature { expires, sig })
    }

    /// Checks a presented link at `now` (Unix seconds), in constant time.
    pub fn verify(
        &self,
        id: &FileId,
        presented: &Signature,
        now: i64,
    ) -> io::Result<Result<(), LinkError>> {
        let Ok(sig) = hex::decode(&presented.sig) else {
            return Ok(Err(LinkError::BadSignature));
        };
        if self.mac(id, presented.expires)?.verify_slice(&sig).is_err() {
            return Ok(Err(LinkError::BadSignature));
        }
        if presented.expires < now {
            return Ok(Err(LinkError::Expired));
        }
        Ok(Ok(()))
    }
}

fn load_or_create_key(path: &std::path::Path) -> io::Result<Vec<u8>> {
    match std::fs::read_to_string(path) {
        Ok(text) => {
            let key = text.trim();
            if key.len() < 32 {
                return Err(io::Error::other(format!(
                    "{} holds a key shorter than 32 characters",
                    path.display()
                )));
            }
            return Ok(key.as_bytes().to_vec());
        }
        Err(e) if e.kind() != io::ErrorKind::NotFound => return Err(e),
        Err(_) => {}
    }
    if let Some(parent) = path.parent() {
        crate::fsutil::create_private_dir_all(parent)?;
    }
    let mut bytes = [0u8; 32];
    rand::rng().fill_bytes(&mut bytes);
    let key = hex::encode(bytes);
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    match options.open(path) {
        Ok(mut file) => {
            io::Write::write_all(&mut file, key.as_bytes())?;
            file.sync_all()?;
            tracing::info!(path = %path.display(), "generated the file link signing key");
            Ok(key.into_bytes())
        }
        // Another node or task created it first: use theirs.
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => load_or_create_key(path),
        Err(e) => Err(e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signatures_bind_the_file_and_the_expiry() {
        let signer = UrlSigner::with_key(&[7u8; 32]);
        let id = FileId::new();
        let signed = signer.sign(&id, 2_000).unwrap();
        assert_eq!(signer.verify(&id, &signed, 1_000).unwrap(), Ok(()));
        assert_eq!(
            signer.verify(&id, &signed, 2_001).unwrap(),
            Err(LinkError::Expired)
        );
        let later = Signature {
            expires: 9_000,
            ..signed.clone()
        };
        assert_eq!(
            signer.verify(&id, &later, 1_000).unwrap(),
            Err(LinkError::BadSignature)
        );
        assert_eq!(
            signer.verify(&FileId::new(), &signed, 1_000).unwrap(),
            Err(LinkError::BadSignature)
        );
        let garbage = Signature {
            sig: "zz".into(),
            ..signed
        };
        assert_eq!(
            signer.verify(&id, &garbage, 1_000).unwrap(),
            Err(LinkError::BadSignature)
        );
    }

    #[test]
    fn a_persisted_key_is_created_private_and_reused() {
        let dir = std::env::temp_dir().join(format!("frontdesk-key-{}", FileId::new()));
        let path = dir.join("file-signing.key");
        let id = FileId::new();
        let first = UrlSigner::persisted(path.clone()).sign(&id, 5).unwrap();
        assert!(path.exists());
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&path).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        let again = UrlSigner::persisted(path).sign(&id, 5).unwrap();
        assert_eq!(first, again);
        std::fs::remove_dir_all(dir).unwrap();
    }
}
