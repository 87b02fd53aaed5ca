//! The directory's rows (`directory_items`), its change signal
//! (`directory_version`, and NOTIFY on PostgreSQL) and the audit log.
//!
//! The store keeps items as opaque JSON: what they mean, and whether a set
//! of them is valid, is the engine's business. What the store guarantees is
//! the change protocol: a [`DirectoryChange`] bumps the version first, which
//! takes the row's lock (PostgreSQL) or the database's write lock (SQLite),
//! so two writers on two nodes never validate against the same old
//! directory and commit contradicting changes; and the version, the rows and
//! the audit entry commit together or not at all.

use sqlx::any::Any;
use sqlx::{Row, Transaction};

use super::{now_ms, Backend, Store, StoreError, StoreResult};

/// The PostgreSQL NOTIFY channel a directory change is announced on.
pub const DIRECTORY_CHANNEL: &str = "frontdesk_directory";

/// What kind of directory item a row holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum ItemKind {
    Channel,
    Queue,
    Agent,
}

impl ItemKind {
    pub fn as_str(self) -> &'static str {
        match self {
            ItemKind::Channel => "channel",
            ItemKind::Queue => "queue",
            ItemKind::Agent => "agent",
        }
    }

    fn parse(stored: &str) -> StoreResult<ItemKind> {
        match stored {
            "channel" => Ok(ItemKind::Channel),
            "queue" => Ok(ItemKind::Queue),
            "agent" => Ok(ItemKind::Agent),
            other => Err(StoreError::Corrupt(format!(
                "directory item kind {other:?}"
            ))),
        }
    }
}

/// Who owns an item.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ItemSource {
    /// Provisioned from `frontdesk.toml`: read-only in the console.
    File,
    /// Created in the console (or its API).
    Console,
    /// Imported by `frontdesk pbx sync`: read-only in the console, changed
    /// on the PBX.
    Pbx,
}

impl ItemSource {
    pub fn as_str(self) -> &'static str {
        match self {
            ItemSource::File => "file",
            ItemSource::Console => "console",
            ItemSource::Pbx => "pbx",
        }
    }

    fn parse(stored: &str) -> StoreResult<ItemSource> {
        match stored {
            "file" => Ok(ItemSource::File),
            "console" => Ok(ItemSource::Console),
            "pbx" => Ok(ItemSource::Pbx),
            other => Err(StoreError::Corrupt(format!(
                "directory item source {other:?}"
            ))),
        }
    }
}

/// One stored directory item.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ItemRow {
    pub tenant: String,
    pub kind: ItemKind,
    pub key: String,
    /// The item's config struct, as JSON.
    pub spec: String,
    pub source: ItemSource,
    pub updated_at: i64,
    pub updated_by: Option<String>,
}

/// The whole directory as of one version.
#[derive(Debug, Clone, Default)]
pub struct DirectoryRows {
    pub version: i64,
    pub items: Vec<ItemRow>,
}

/// One audit log entry.
#[derive(Debug, Clone)]
pub struct AuditEntry {
    pub tenant: String,
    pub actor: String,
    /// What was done: `channel.create`, `queue.update`, `provision`, …
    pub action: String,
    /// What it was done to (`channel web`).
    pub target: String,
    /// Free-form JSON detail (never a secret).
    pub detail: serde_json::Value,
}

/// A stored audit log entry.
#[derive(Debug, Clone, serde::Serialize)]
pub struct AuditRow {
    pub id: String,
    pub tenant: String,
    pub at: i64,
    pub actor: String,
    pub action: String,
    pub target: String,
    pub detail: serde_json::Value,
}

impl Store {
    /// A connection listening for directory changes (PostgreSQL only: on
    /// SQLite, nodes poll [`directory_version`](Self::directory_version)).
    pub async fn directory_listener(&self) -> StoreResult<Option<sqlx::postgres::PgListener>> {
        if self.backend != Backend::Postgres {
            return Ok(None);
        }
        let mut listener = sqlx::postgres::PgListener::connect(&self.url).await?;
        listener.listen(DIRECTORY_CHANNEL).await?;
        Ok(Some(listener))
    }

    /// Creates a tenant; `false` when its id is taken.
    pub async fn create_tenant(&self, id: &str, name: &str) -> StoreResult<bool> {
        let done = sqlx::query(
            "INSERT INTO tenants (id, name, created_at) VALUES ($1, $2, $3) \
             ON CONFLICT (id) DO NOTHING",
        )
        .bind(id.to_owned())
        .bind(name.to_owned())
        .bind(now_ms())
        .execute(&mut *self.writer().await?)
        .await?;
        Ok(done.rows_affected() == 1)
    }

    /// Every tenant: (id, name), by id.
    pub async fn tenants(&self) -> StoreResult<Vec<(String, String)>> {
        let rows = sqlx::query("SELECT id, name FROM tenants ORDER BY id")
            .fetch_all(&self.pool)
            .await?;
        rows.iter()
            .map(|r| Ok((r.try_get("id")?, r.try_get("name")?)))
            .collect()
    }

    /// The directory's current version (cheap: nodes poll it).
    pub async fn directory_version(&self) -> StoreResult<i64> {
        let version = sqlx::query_scalar("SELECT version FROM directory_version WHERE id = 1")
            .fetch_one(&self.pool)
            .await?;
        Ok(version)
    }

    /// Every item and the version they make up, read together.
    pub async fn directory(&self) -> StoreResult<DirectoryRows> {
        let mut tx = self.pool.begin().await?;
        let version = sqlx::query_scalar("SELECT version FROM directory_version WHERE id = 1")
            .fetch_one(&mut *tx)
            .await?;
        let items = read_items(&mut tx).await?;
        tx.commit().await?;
        Ok(DirectoryRows { version, items })
    }

    /// Starts a change: the version is bumped (and writers serialised)
    /// before anything is read, so what the caller validates against is
    /// what it commits on top of.
    pub async fn begin_directory_change(&self) -> StoreResult<DirectoryChange> {
        let mut tx = self.write_tx().await?;
        let version: i64 = sqlx::query_scalar(
            "UPDATE directory_version SET version = version + 1 WHERE id = 1 RETURNING version",
        )
        .fetch_one(&mut **tx)
        .await?;
        let items = read_items(&mut tx).await?;
        Ok(DirectoryChange {
            tx,
            backend: self.backend,
            rows: DirectoryRows { version, items },
        })
    }

    /// The audit log of `tenant` (all tenants: `None`), newest first.
    pub async fn audit_log(&self, tenant: Option<&str>, limit: i64) -> StoreResult<Vec<AuditRow>> {
        const COLUMNS: &str =
            "SELECT id, tenant_id, at, actor, action, target, detail FROM audit_log";
        let rows = match tenant {
            Some(tenant) => {
                sqlx::query(&format!(
                    "{COLUMNS} WHERE tenant_id = $1 ORDER BY at DESC, id DESC LIMIT $2"
                ))
                .bind(tenant.to_owned())
                .bind(limit)
                .fetch_all(&self.pool)
                .await?
            }
            None => {
                sqlx::query(&format!("{COLUMNS} ORDER BY at DESC, id DESC LIMIT $1"))
                    .bind(limit)
                    .fetch_all(&self.pool)
                    .await?
            }
        };
        rows.iter()
            .map(|r| {
                let detail: String = r.try_get("detail")?;
                Ok(AuditRow {
                    id: r.try_get("id")?,
                    tenant: r.try_get("tenant_id")?,
                    at: r.try_get("at")?,
                    actor: r.try_get("actor")?,
                    action: r.try_get("action")?,
                    target: r.try_get("target")?,
                    detail: serde_json::from_str(&detail)
                        .map_err(|e| StoreError::Corrupt(format!("audit detail: {e}")))?,
                })
            })
            .collect()
    }

    /// Writes an audit entry on its own (for actions outside a directory
    /// change, such as a GDPR erase or a login).
    pub async fn audit(&self, entry: &AuditEntry) -> StoreResult<()> {
        let mut tx = self.write_tx().await?;
        insert_audit(&mut tx, entry).await?;
        tx.commit().await?;
        Ok(())
    }
}

/// A directory change under way: see [`Store::begin_directory_change`].
/// Dropped without [`commit`](Self::commit), nothing happens.
pub struct DirectoryChange {
    /// Holds the writers' turn (`turns.rs`) until it commits.
    tx: super::turns::WriteTx,
    backend: Backend,
    rows: DirectoryRows,
}

impl DirectoryChange {
    /// The directory this change applies to, at its new version.
    pub fn rows(&self) -> &DirectoryRows {
        &self.rows
    }

    /// Creates or replaces an item.
    pub async fn put(&mut self, item: &ItemRow) -> StoreResult<()> {
        sqlx::query(
            "INSERT INTO directory_items \
             (tenant_id, kind, item_key, spec, source, updated_at, updated_by) \
             VALUES ($1, $2, $3, $4, $5, $6, $7) \
             ON CONFLICT (kind, item_key) DO UPDATE SET tenant_id = $1, spec = $4, \
             source = $5, updated_at = $6, updated_by = $7",
        )
        .bind(&item.tenant)
        .bind(item.kind.as_str())
        .bind(&item.key)
        .bind(&item.spec)
        .bind(item.source.as_str())
        .bind(item.updated_at)
        .bind(item.updated_by.clone())
        .execute(&mut **self.tx)
        .await?;
        Ok(())
    }

    /// Removes an item (no error when it is not there).
    pub async fn delete(&mut self, kind: ItemKind, key: &str) -> StoreResult<()> {
        sqlx::query("DELETE FROM directory_items WHERE kind = $1 AND item_key = $2")
            .bind(kind.as_str())
            .bind(key.to_owned())
            .execute(&mut **self.tx)
            .await?;
        Ok(())
    }

    /// Records who did it, in the same transaction.
    pub async fn audit(&mut self, entry: &AuditEntry) -> StoreResult<()> {
        insert_audit(&mut self.tx, entry).await
    }

    /// Commits the change and announces it to every node.
    pub async fn commit(mut self) -> StoreResult<i64> {
        if self.backend == Backend::Postgres {
            // Delivered to listeners when (and only if) the transaction commits.
            sqlx::query("SELECT pg_notify($1, $2)")
                .bind(DIRECTORY_CHANNEL)
                .bind(self.rows.version.to_string())
                .execute(&mut **self.tx)
                .await?;
        }
        self.tx.commit().await?;
        Ok(self.rows.version)
    }
}

async fn read_items(tx: &mut Transaction<'static, Any>) -> StoreResult<Vec<ItemRow>> {
    let rows = sqlx::query(
        "SELECT tenant_id, kind, item_key, spec, source, updated_at, updated_by \
         FROM directory_items ORDER BY kind, item_key",
    )
    .fetch_all(&mut **tx)
    .await?;
    rows.iter()
        .map(|r| {
            let kind: String = r.try_get("kind")?;
            let source: String = r.try_get("source")?;
            Ok(ItemRow {
                tenant: r.try_get("tenant_id")?,
                kind: ItemKind::parse(&kind)?,
                key: r.try_get("item_key")?,
                spec: r.try_get("spec")?,
                source: ItemSource::parse(&source)?,
                updated_at: r.try_get("updated_at")?,
                updated_by: r.try_get("updated_by")?,
            })
        })
        .collect()
}

async fn insert_audit(tx: &mut Transaction<'static, Any>, entry: &AuditEntry) -> StoreResult<()> {
    sqlx::query(
        "INSERT INTO audit_log (id, tenant_id, at, actor, action, target, detail) \
         VALUES ($1, $2, $3, $4, $5, $6, $7)",
    )
    .bind(uuid::Uuid::now_v7().to_string())
    .bind(&entry.tenant)
    .bind(now_ms())
    .bind(&entry.actor)
    .bind(&entry.action)
    .bind(&entry.target)
    .bind(entry.detail.to_string())
    .execute(&mut **tx)
    .await?;
    Ok(())
}
