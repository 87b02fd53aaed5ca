//! On SQLite, this process's writers take turns in the process, not in
//! SQLite's busy handler.
//!
//! SQLite has one writer at a time. A connection that finds the write
//! lock taken calls its busy handler, and SQLite's own (what
//! `busy_timeout` installs) sleeps 1, 2, 5, 10, 15, 20, 25, 25, 25, 50,
//! 50, then 100 ms between tries: a writer that found the lock held for a
//! millisecond slept for tens of them. With agents at 100 msg/s the
//! gateway slept there ~225 times a second, and those sleeps were the
//! 60–90 ms p99s (docs/benchmarks.md, change 10). So every write of the
//! store (a pooled transaction or statement, and the group-commit
//! thread's batches) first takes its [`Turn`] from one fair lock, and the
//! next writer starts the moment the last one is done. SQLite's busy
//! handler is left for other processes (a CLI command on the same file).
//!
//! A turn is taken before a pooled connection, never while holding one,
//! so writers waiting for their turn hold no connection a reader (or the
//! writer whose turn it is) needs. PostgreSQL has row locks and many
//! writers: no turns there.

use std::ops::{Deref, DerefMut};
use std::sync::Arc;

use sqlx::pool::PoolConnection;
use sqlx::{Any, AnyConnection, Transaction};
use tokio::sync::{Mutex, MutexGuard, OwnedMutexGuard};

use super::{Backend, Store, StoreResult};

/// The lock writers take turns with (SQLite only).
#[derive(Clone, Default)]
pub(super) struct Turns(Option<Arc<Mutex<()>>>);

impl Turns {
    pub(super) fn for_backend(backend: Backend) -> Turns {
        Turns((backend == Backend::Sqlite).then(Arc::default))
    }

    async fn take(&self) -> Turn {
        match &self.0 {
            Some(lock) => Turn(Some(lock.clone().lock_owned().await)),
            None => Turn(None),
        }
    }

    /// A turn for a thread outside the runtime (the group-commit thread).
    pub(super) fn take_blocking(&self) -> Option<MutexGuard<'_, ()>> {
        self.0.as_ref().map(|lock| lock.blocking_lock())
    }
}

/// One writer's turn, until dropped.
pub(super) struct Turn(#[allow(dead_code)] Option<OwnedMutexGuard<()>>);

/// A pooled write transaction, holding its turn until it commits or is
/// dropped (rolled back).
pub(super) struct WriteTx {
    tx: Transaction<'static, Any>,
    _turn: Turn,
}

impl WriteTx {
    pub(super) async fn commit(self) -> StoreResult<()> {
        self.tx.commit().await?;
        Ok(())
    }

    pub(super) async fn rollback(self) -> StoreResult<()> {
        self.tx.rollback().await?;
        Ok(())
    }
}

impl Deref for WriteTx {
    type Target = Transaction<'static, Any>;
    fn deref(&self) -> &Self::Target {
        &self.tx
    }
}

impl DerefMut for WriteTx {
    fn deref_mut(&mut self) -> &mut Self::Target {
        &mut self.tx
    }
}

/// A pooled connection for one write statement, holding its turn.
pub(super) struct Writer {
    conn: PoolConnection<Any>,
    _turn: Turn,
}

impl Deref for Writer {
    type Target = AnyConnection;
    fn deref(&self) -> &Self::Target {
        &self.conn
    }
}

impl DerefMut for Writer {
    fn deref_mut(&mut self) -> &mut Self::Target {
        &mut self.conn
    }
}

impl Store {
    /// A write transaction, in turn.
    pub(super) async fn write_tx(&self) -> StoreResult<WriteTx> {
        let turn = self.turns.take().await;
        let tx = self.pool.begin().await?;
        Ok(WriteTx { tx, _turn: turn })
    }

    /// A connection for one write statement, in turn: `execute(&mut
    /// *self.writer().await?)`.
    pub(super) async fn writer(&self) -> StoreResult<Writer> {
        let turn = self.turns.take().await;
        let conn = self.pool.acquire().await?;
        Ok(Writer { conn, _turn: turn })
    }
}
