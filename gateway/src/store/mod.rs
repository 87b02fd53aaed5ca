//! Durable storage: conversations and their ordered event log.
//!
//! One `Store` talks to SQLite (the embedded default) or PostgreSQL (the
//! production engine several gateway nodes share) through sqlx's `Any`
//! driver, with the same SQL on both: identifiers are text, instants are
//! Unix milliseconds, placeholders are `$n`. The schema lives only in
//! `migrations/`.
//!
//! Invariant: whatever this module returns as stored is committed. The API
//! acknowledges a message only with a value that came back from here.

mod admin;
mod batch;
mod conversations;
mod creation;
mod deliveries;
mod directory;
mod dispatch;
mod events;
mod files;
mod identity;
mod queues;
mod signals;
mod transcripts;
mod turns;
mod uploads;
mod xmpp;

use std::str::FromStr;
use std::time::Duration;

use sqlx::any::{AnyConnectOptions, AnyPoolOptions};
use sqlx::migrate::Migrator;
use sqlx::{AnyPool, ConnectOptions, Executor};

pub use admin::{AdminUserRow, ApiTokenRow};
pub use batch::{Appended, Forget};
pub use conversations::{ConversationRow, ConversationUpdate, NewConversation};
pub use creation::Joined;
pub use deliveries::DeliveryRow;
pub use directory::{
    AuditEntry, AuditRow, DirectoryChange, DirectoryRows, ItemKind, ItemRow, ItemSource,
    DIRECTORY_CHANNEL,
};
pub use dispatch::{AgentActivity, TimerRow};
pub use events::{is_unique_violation, NewEvent, StoredEvent};
pub use files::{FileInsert, FileQuota, FileRow, FileUsage};
pub use identity::ConversationIdentity;
pub use queues::{Head, LineKey, Ranked};
pub use signals::{Notice, SignalListener, LISTENER_NAME, SIGNALS_CHANNEL};
pub use transcripts::ConversationFilter;
pub use uploads::{NewUploadSlot, SlotStart, UploadedFile};
pub use xmpp::NODE_LEASE_PREFIX;

static MIGRATOR: Migrator = sqlx::migrate!("../migrations");

/// Which database a [`Store`] runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("unsupported database URL {0:?}: use sqlite://PATH or postgres://…")]
    UnsupportedUrl(String),
    #[error("database error: {0}")]
    Database(#[from] sqlx::Error),
    #[error("migration failed: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    #[error("stored data is corrupt: {0}")]
    Corrupt(String),
}

impl StoreError {
    /// Whether the database could not be reached or is restarting (no
    /// connection within the acquire timeout, a connection refused or lost,
    /// a server shutting down or not accepting sessions yet, SQLite busy):
    /// the operation did not happen, or did and is found by a retry with
    /// the same client id, so trying again shortly is the answer.
    pub fn is_unavailable(&self) -> bool {
        match self {
            StoreError::Database(e) => database_unavailable(e),
            _ => false,
        }
    }
}

fn database_unavailable(e: &sqlx::Error) -> bool {
    match e {
        sqlx::Error::PoolTimedOut
        | sqlx::Error::PoolClosed
        | sqlx::Error::Io(_)
        | sqlx::Error::Tls(_)
        | sqlx::Error::Protocol(_)
        | sqlx::Error::WorkerCrashed => true,
        sqlx::Error::Database(db) => {
            let code = db.code().unwrap_or_default();
            if code.len() == 5 {
                // PostgreSQL SQLSTATE: connection exceptions (08…), admin,
                // crash or pending shutdown, starting up (57P01–57P03),
                // too many connections.
                code.starts_with("08") || matches!(&*code, "57P01" | "57P02" | "57P03" | "53300")
            } else {
                // SQLite result codes: BUSY (5) and LOCKED (6), extended.
                code.parse::<i32>().is_ok_and(|c| matches!(c & 0xff, 5 | 6))
            }
        }
        _ => false,
    }
}

pub type StoreResult<T> = Result<T, StoreError>;

#[derive(Clone)]
pub struct Store {
    pool: AnyPool,
    backend: Backend,
    /// Kept for the connections a pool cannot lend (PostgreSQL LISTEN).
    url: std::sync::Arc<str>,
    /// This node's random id, in its cross-node signals (`signals.rs`).
    node: std::sync::Arc<str>,
    /// The group commit of visitor messages (`batch.rs`); none in the
    /// writers' own clone.
    batcher: Option<batch::Batcher>,
    /// What never changes about a conversation, cached (`identity.rs`).
    identities: std::sync::Arc<identity::Identities>,
    /// On SQLite, the lock this process's writers take turns with
    /// (`turns.rs`).
    turns: turns::Turns,
}

/// How long a PostgreSQL connection sits idle in the pool before it is
/// pinged on checkout.
const PING_IDLE_AFTER: Duration = Duration::from_secs(1);

/// The WAL size (in pages) at which a committing connection checkpoints
/// by itself, as SQLite does at 1,000 by default: only a backstop now,
/// since the SQLite writer's checkpointer copies it back
/// (`batch/sqlite.rs`).
/// Under a steady load the WAL can only start over from its beginning
/// when a checkpoint has finished before the next write transaction
/// begins, which the checkpointer, racing the writer, may never manage;
/// at this size the writer's own checkpoint (between its transactions,
/// and cheap, since the checkpointer has copied nearly everything) lets
/// it start over.
const WAL_BACKSTOP_PAGES: i64 = 10_000;

impl Store {
    /// Opens a pool whose callers wait at most `acquire_timeout` for a
    /// connection (then [`StoreError::is_unavailable`]). SQLite files (and
    /// their folder) are created if missing and run in WAL mode with
    /// foreign keys on and a busy timeout, so concurrent writers wait
    /// instead of failing.
    pub async fn connect(
        url: &str,
        max_connections: u32,
        acquire_timeout: Duration,
    ) -> StoreResult<Store> {
        sqlx::any::install_default_drivers();
        let backend = if url.starts_with("sqlite:") {
            Backend::Sqlite
        } else if url.starts_with("postgres:") || url.starts_with("postgresql:") {
            Backend::Postgres
        } else {
            return Err(StoreError::UnsupportedUrl(url.to_owned()));
        };
        // A SQLite file is created when missing unless the URL says otherwise.
        let url = if backend == Backend::Sqlite && !url.contains("mode=") {
            let separator = if url.contains('?') { '&' } else { '?' };
            format!("{url}{separator}mode=rwc")
        } else {
            url.to_owned()
        };
        if backend == Backend::Sqlite {
            create_sqlite_parent_dir(&url);
        }
        let options = AnyConnectOptions::from_str(&url)?
            .log_slow_statements(log::LevelFilter::Warn, Duration::from_millis(500));
        let pool = AnyPoolOptions::new()
            .max_connections(max_connections)
            .acquire_timeout(acquire_timeout)
            // A SQLite connection is a file handle that cannot drop; a ping
            // per query was a round trip to its worker thread each time.
            // PostgreSQL's are tested when they sat idle, so one lost in a
            // database restart is replaced rather than failing the request
            // that took it; one in steady use was tested when it came back
            // (sqlx pings every connection on release), and a ping per
            // checkout as well was a third round trip per statement.
            .test_before_acquire(false)
            .before_acquire(move |conn, meta| {
                Box::pin(async move {
                    if backend == Backend::Postgres && meta.idle_for >= PING_IDLE_AFTER {
                        sqlx::Connection::ping(conn).await?;
                    }
                    Ok(true)
                })
            })
            .after_connect(move |conn, _meta| {
                Box::pin(async move {
                    if backend == Backend::Sqlite {
                        for pragma in [
                            "PRAGMA journal_mode = WAL",
                            "PRAGMA synchronous = FULL",
                            "PRAGMA foreign_keys = ON",
                            "PRAGMA busy_timeout = 10000",
                            // Each pooled connection has its own page cache
                            // (2 MiB by default, filling as the file grows);
                            // WAL drops it whenever another connection
                            // commits, and the OS caches the file anyway.
                            "PRAGMA cache_size = -512",
                        ] {
                            conn.execute(pragma).await?;
                        }
                        let backstop = format!("PRAGMA wal_autocheckpoint = {WAL_BACKSTOP_PAGES}");
                        conn.execute(backstop.as_str()).await?;
                    }
                    Ok(())
                })
            })
            .connect_with(options)
            .await?;
        if backend == Backend::Sqlite {
            make_sqlite_private(&url);
        }
        let mut store = Store {
            pool,
            backend,
            url: url.into(),
            node: signals::new_node_id().into(),
            batcher: None,
            identities: Default::default(),
            turns: turns::Turns::for_backend(backend),
        };
        store.batcher = Some(batch::Batcher::start(&store)?);
        Ok(store)
    }

    /// The group commit's queue (`batch`). Only the writers' own clone
    /// has none, and they write directly.
    fn batcher(&self) -> &batch::Batcher {
        (self.batcher.as_ref()).expect("only the writers' own store has no batcher")
    }

    pub fn backend(&self) -> Backend {
        self.backend
    }

    /// Applies pending migrations from `migrations/`.
    pub async fn migrate(&self) -> StoreResult<()> {
        MIGRATOR.run(&self.pool).await?;
        Ok(())
    }

    /// True when the database answers within `within` and every known
    /// migration is applied.
    pub async fn ready(&self, within: Duration) -> StoreResult<bool> {
        let count = sqlx::query_scalar("SELECT COUNT(*) FROM _sqlx_migrations WHERE success = $1")
            .bind(true)
            .fetch_one(&self.pool);
        let applied: i64 = tokio::time::timeout(within, count)
            .await
            .map_err(|_| StoreError::Database(sqlx::Error::PoolTimedOut))??;
        Ok(applied as usize >= MIGRATOR.iter().count())
    }

    pub async fn close(&self) {
        self.pool.close().await;
    }
}

/// The file of a SQLite URL (none for an in-memory database).
fn sqlite_path(url: &str) -> Option<std::path::PathBuf> {
    let path = url
        .trim_start_matches("sqlite://")
        .trim_start_matches("sqlite:");
    let path = path.split('?').next().unwrap_or_default();
    (!path.is_empty() && path != ":memory:").then(|| std::path::PathBuf::from(path))
}

/// Makes the database file and its WAL and shared-memory files 0600
/// (SQLite creates them with the umask's mode; later ones copy the
/// database file's).
fn make_sqlite_private(url: &str) {
    let Some(path) = sqlite_path(url) else { return };
    for suffix in ["", "-wal", "-shm"] {
        let mut file = path.clone().into_os_string();
        file.push(suffix);
        if let Err(e) = crate::fsutil::make_private(std::path::Path::new(&file)) {
            tracing::warn!(file = ?file, error = %e, "cannot make the database file private");
        }
    }
}

fn create_sqlite_parent_dir(url: &str) {
    let Some(path) = sqlite_path(url) else { return };
    if let Some(parent) = path.parent() {
        if !parent.as_os_str().is_empty() {
            // An error here resurfaces, better worded, when sqlx opens the file.
            if let Err(e) = crate::fsutil::create_private_dir_all(parent) {
                tracing::warn!(dir = %parent.display(), error = %e, "cannot create database folder");
            }
        }
    }
}

/// A stored conversation id, or `Corrupt`.
fn conversation_id(stored: &str) -> StoreResult<crate::domain::ConversationId> {
    stored
        .parse()
        .map_err(|_| StoreError::Corrupt(format!("conversation id {stored:?}")))
}

/// Stored conversation ids, or `Corrupt` at the first bad one.
fn conversation_ids(stored: &[String]) -> StoreResult<Vec<crate::domain::ConversationId>> {
    stored.iter().map(|id| conversation_id(id)).collect()
}

/// Milliseconds since the Unix epoch, the unit of every stored instant.
pub fn now_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}
