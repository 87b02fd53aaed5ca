//! Console sessions kept in the database (tower-sessions' `SessionStore`
//! over [`Store`]): they survive a restart and any node can read them.

use async_trait::async_trait;
use tower_sessions::session::{Id, Record};
use tower_sessions::session_store::{Error, Result};
use tower_sessions::SessionStore;

use crate::store::Store;

#[derive(Clone)]
pub struct DbSessions {
    store: Store,
}

impl DbSessions {
    pub fn new(store: Store) -> DbSessions {
        DbSessions { store }
    }
}

impl std::fmt::Debug for DbSessions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("DbSessions")
    }
}

fn backend(e: impl std::fmt::Display) -> Error {
    Error::Backend(e.to_string())
}

fn encode(record: &Record) -> Result<(String, String, i64)> {
    let data = serde_json::to_string(&record.data).map_err(|e| Error::Encode(e.to_string()))?;
    let expires_ms =
        i64::try_from(record.expiry_date.unix_timestamp_nanos() / 1_000_000).map_err(backend)?;
    Ok((record.id.to_string(), data, expires_ms))
}

#[async_trait]
impl SessionStore for DbSessions {
    async fn create(&self, record: &mut Record) -> Result<()> {
        // A 128-bit random id colliding is all but impossible; still, never
        // hand one session's id to another.
        loop {
            let (id, data, expires) = encode(record)?;
            let created =
                (self.store.create_admin_session(&id, &data, expires).await).map_err(backend)?;
            if created {
                return Ok(());
            }
            record.id = Id::default();
        }
    }

    async fn save(&self, record: &Record) -> Result<()> {
        let (id, data, expires) = encode(record)?;
        (self.store.save_admin_session(&id, &data, expires).await).map_err(backend)
    }

    async fn load(&self, id: &Id) -> Result<Option<Record>> {
        let Some((data, expires_ms)) =
            (self.store.admin_session(&id.to_string()).await).map_err(backend)?
        else {
            return Ok(None);
        };
        let data = serde_json::from_str(&data).map_err(|e| Error::Decode(e.to_string()))?;
        let expiry_date =
            time::OffsetDateTime::from_unix_timestamp_nanos(i128::from(expires_ms) * 1_000_000)
                .map_err(|e| Error::Decode(e.to_string()))?;
        Ok(Some(Record {
            id: *id,
            data,
            expiry_date,
        }))
    }

    async fn delete(&self, id: &Id) -> Result<()> {
        (self.store.delete_admin_session(&id.to_string()).await).map_err(backend)
    }
}
