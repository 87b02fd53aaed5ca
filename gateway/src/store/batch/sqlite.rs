//! The SQLite writer: one thread of its own with one connection (rusqlite,
//! on the same libsqlite3 as sqlx), storing each batch in one `BEGIN
//! IMMEDIATE` transaction.
//!
//! Why a thread and a second driver: sqlx runs each SQLite statement on
//! the connection's worker thread, so every statement (and the begin and
//! commit) is a hand-off there and back; profiles of a few hundred
//! messages a second showed those wake-ups as most of the gateway's CPU.
//! Here a batch is one hand-off in (the queue) and one out per caller
//! (its answer), and the statements in between are plain calls into
//! SQLite: prepared once and cached, one row each, which in-process costs
//! less than building a statement per batch size. SQLite has one writer
//! at a time anyway; this thread takes the write lock like any other
//! connection (`busy_timeout` waits for the pool's writers).

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use rusqlite::{params, Connection, OpenFlags, OptionalExtension, TransactionBehavior};
use tokio::sync::mpsc;

use super::super::conversations::COLUMNS;
use super::super::creation::{self, Create, Created};
use super::{
    client_id_of, fail_all, outcome, plan, shared_error, split, take_waiting, waiting, Appended,
    NewRow, Outbox, Request, Sorted, Together, MAX_BATCH,
};
use crate::domain::{ConversationId, ConversationState, TokenHash};
use crate::store::turns::Turns;
use crate::store::{
    conversation_id, now_ms, sqlite_path, ConversationRow, NewEvent, Store, StoreError,
    StoreResult, StoredEvent,
};

/// The shortest time between two commits: a request that comes sooner
/// after one waits out the rest of it, with whatever else arrives. At a
/// steady 500 to 2,000 messages a second most commits held one or two
/// messages, and each commit (its fsync, the thread's wake-ups) cost more
/// than the messages in it; with 2 ms, CPU per message fell by 40 % at
/// both rates and the p99 did not rise (docs/benchmarks.md, change 13). A
/// request after a quiet moment does not wait.
const COMMIT_GAP: Duration = Duration::from_millis(2);

/// How long a statement waits for another connection's write lock.
const BUSY_TIMEOUT: Duration = Duration::from_secs(10);

/// How often, at most, the writer nudges the checkpointer after a commit.
/// SQLite's own checkpoint (every 1,000 WAL pages, by the connection that
/// commits) ran on this thread after a commit and before its answers:
/// 21 % of the writer's time at saturation, reading the WAL back and
/// writing and syncing the database file, while the next batch waited.
/// On a thread of its own, once a second (fewer copies of the same hot
/// pages than every 100 ms), saturation rose by 8 to 30 % over several
/// runs and the p99 at 2,000 messages a second fell (docs/benchmarks.md,
/// change 14).
const CHECKPOINT_EVERY: Duration = Duration::from_secs(1);

pub(super) fn start(store: &Store, requests: mpsc::Receiver<Request>) -> StoreResult<()> {
    let path = sqlite_path(&store.url).ok_or_else(|| {
        StoreError::UnsupportedUrl(format!("{} (an in-memory SQLite database)", store.url))
    })?;
    // Opened here, so a file that cannot be written fails the start.
    let connection = open(&path)?;
    let turns = store.turns.clone();
    // One nudge waits at most: the checkpointer catches up with everything
    // committed before it starts, so more would add nothing.
    let (nudge, nudges) = std::sync::mpsc::sync_channel(1);
    let checkpointer_path = path.clone();
    spawn("sqlite-checkpointer", move || {
        checkpoint_when_nudged(checkpointer_path, nudges)
    })?;
    spawn("sqlite-writer", move || {
        write_batches(path, Some(connection), requests, turns, nudge)
    })
}

fn spawn(name: &str, run: impl FnOnce() + Send + 'static) -> StoreResult<()> {
    std::thread::Builder::new()
        .name(name.into())
        .spawn(run)
        .map(drop)
        .map_err(|e| StoreError::Database(sqlx::Error::Io(e)))
}

fn open(path: &Path) -> StoreResult<Connection> {
    let flags = OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX;
    let connection = Connection::open_with_flags(path, flags)?;
    connection.busy_timeout(BUSY_TIMEOUT)?;
    // The pool's connections set the same (`Store::connect`); WAL is a
    // property of the file, already set by them.
    connection.execute_batch("PRAGMA synchronous = FULL; PRAGMA foreign_keys = ON;")?;
    connection.pragma_update(None, "wal_autocheckpoint", crate::store::WAL_BACKSTOP_PAGES)?;
    Ok(connection)
}

/// Copies the WAL back into the database file whenever the writer nudges
/// it, on a connection of its own, until the writer stops. A passive
/// checkpoint waits for nobody: the writer goes on committing meanwhile.
fn checkpoint_when_nudged(path: PathBuf, nudges: std::sync::mpsc::Receiver<()>) {
    let mut connection: Option<Connection> = None;
    while nudges.recv().is_ok() {
        let conn = match connection.take() {
            Some(conn) => Ok(conn),
            None => open(&path),
        };
        let checkpointed = conn.and_then(|conn| {
            conn.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |_| Ok(()))?;
            Ok(conn)
        });
        match checkpointed {
            Ok(conn) => connection = Some(conn),
            Err(e) => {
                tracing::warn!(error = %e, "a SQLite checkpoint failed; the next nudge tries again")
            }
        }
    }
}

/// Takes the waiting requests (at least one), stores them, answers them,
/// until the queue closes. After a failure the connection is opened anew
/// for the next batch.
fn write_batches(
    path: PathBuf,
    mut connection: Option<Connection>,
    mut requests: mpsc::Receiver<Request>,
    turns: Turns,
    checkpoint: std::sync::mpsc::SyncSender<()>,
) {
    let mut batch = Vec::with_capacity(MAX_BATCH);
    let mut last_commit: Option<Instant> = None;
    let mut last_nudge = Instant::now();
    while let Some(first) = requests.blocking_recv() {
        // Under load, at most one commit per `COMMIT_GAP`: whatever
        // arrives in the meantime shares the next one.
        let due = last_commit.map(|at| at + COMMIT_GAP);
        if let Some(wait) = due.and_then(|due| due.checked_duration_since(Instant::now())) {
            std::thread::sleep(wait);
        }
        batch.push(first);
        take_waiting(&mut requests, &mut batch);
        metrics::histogram!("frontdesk_message_batch_size").record(batch.len() as f64);
        let conn = match connection.take() {
            Some(conn) => Ok(conn),
            None => open(&path),
        };
        // In turn with the pool's writers (`turns.rs`), for the whole
        // batch and any retries.
        let turn = turns.take_blocking();
        connection = match conn {
            Ok(mut conn) => write_batch(&mut conn, std::mem::take(&mut batch)).then_some(conn),
            Err(e) => {
                fail_all(std::mem::take(&mut batch), &e);
                None
            }
        };
        drop(turn);
        if last_nudge.elapsed() >= CHECKPOINT_EVERY {
            // Full means a nudge is already waiting.
            let _ = checkpoint.try_send(());
            last_nudge = Instant::now();
        }
        last_commit = Some(Instant::now());
    }
}

/// Stores a batch; false if anything failed.
fn write_batch(conn: &mut Connection, batch: Vec<Request>) -> bool {
    let Sorted {
        creates,
        messages,
        replies,
        outbox,
    } = split(batch);
    let e = match store_together(conn, &creates.creates, &messages, &outbox) {
        Ok(together) => {
            creates.answer(together.created);
            for (reply, result) in replies.into_iter().zip(together.appended) {
                let _ = reply.send(Ok(result));
            }
            outbox.answer(&Ok(together.kept));
            return true;
        }
        Err(e) => e,
    };
    if e.is_unavailable() {
        creates.fail(&e);
        for reply in replies {
            let _ = reply.send(Err(shared_error(&e)));
        }
        outbox.answer(&Err(e));
        return false;
    }
    tracing::debug!(error = %e, size = messages.len() + creates.creates.len(), "a batch failed: storing its requests one by one");
    for (create, reply) in creates.creates.iter().zip(creates.replies) {
        let alone = store_together(conn, std::slice::from_ref(create), &[], &Outbox::default());
        let _ = reply.send(alone.map(|mut together| together.created.remove(0)));
    }
    for ((id, event), reply) in messages.iter().zip(replies) {
        let _ = reply.send(store_alone(conn, *id, event));
    }
    if !outbox.is_empty() {
        let alone = store_together(conn, &[], &[], &outbox).map(|together| together.kept);
        outbox.answer(&alone);
    }
    false
}

/// One request in a transaction of its own; a copy stored first answers
/// with that copy.
fn store_alone(
    conn: &mut Connection,
    id: ConversationId,
    event: &NewEvent,
) -> StoreResult<Appended> {
    let alone = [(id, event.clone())];
    match store_together(conn, &[], &alone, &Outbox::default()) {
        Ok(mut together) => Ok(together.appended.remove(0)),
        Err(e) if super::super::is_unique_violation(&e) => {
            let copy = copy_of(conn, id, client_id_of(event))?;
            copy.map(Appended::Existing).ok_or_else(|| {
                StoreError::Corrupt("client id conflict without a stored event".into())
            })
        }
        Err(e) => Err(e),
    }
}

/// Creates the conversations, stores every request and writes the outbox
/// rows in one transaction, or does none of it.
fn store_together(
    conn: &mut Connection,
    creates: &[Create],
    requests: &[(ConversationId, NewEvent)],
    outbox: &Outbox,
) -> StoreResult<Together> {
    // Take the write lock first: a transaction that reads and then writes
    // could otherwise find its snapshot stale and fail at once.
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
    let now = now_ms();
    let created = (creates.iter())
        .map(|create| create_one(&tx, create, now))
        .collect::<StoreResult<Vec<_>>>()?;
    let mut stored_before = HashMap::new();
    for (id, event) in requests {
        let client_id = client_id_of(event);
        if let Some(copy) = copy_of(&tx, *id, client_id)? {
            stored_before.insert((*id, client_id), copy);
        }
    }
    let planned = plan(requests, &stored_before);
    let mut moved = HashMap::with_capacity(planned.new_per_conversation.len());
    for (id, count) in &planned.new_per_conversation {
        if let Some(row) = take_seqs(&tx, *id, *count, now)? {
            moved.insert(*id, row);
        }
    }
    let mut ringing = HashMap::new();
    for id in waiting(&moved) {
        let agents: Option<String> = (tx
            .prepare_cached("SELECT agents FROM offers WHERE conversation_id = ?1")?)
        .query_row([&id], |row| row.get(0))
        .optional()?;
        if let Some(agents) = agents {
            ringing.insert(
                conversation_id(&id)?,
                crate::store::dispatch::agents_of(&agents)?,
            );
        }
    }
    let (appended, rows) = outcome(requests, &planned, &moved, &ringing, now);
    insert(&tx, &rows, now)?;
    let kept = write_outbox(&tx, outbox, now)?;
    tx.commit()?;
    Ok(Together {
        created,
        appended,
        kept,
    })
}

/// Creates one conversation (`creation.rs`): its row, its place in its
/// line when queued, its events under seqs 1..n.
fn create_one(conn: &Connection, create: &Create, now: i64) -> StoreResult<Created> {
    let new = &create.new;
    let id = new.id.to_string();
    // Where it joins: after the line's last one, read before its row.
    let mut place = None;
    if let (Some(_), Some(queue)) = (&create.queued, &new.queue_extension) {
        let tail = (conn.prepare_cached(&creation::line_tail())?)
            .query_row([queue], |row| {
                Ok(creation::Tail {
                    position: row.get(0)?,
                    queued_at: row.get(1)?,
                    created_at: row.get(2)?,
                    id: row.get(3)?,
                })
            })
            .optional()?;
        let ahead = match creation::ahead_from(tail.as_ref()) {
            Some(ahead) => ahead,
            None => (conn.prepare_cached(&creation::count_line())?)
                .query_row([queue], |row| row.get(0))?,
        };
        place = Some((ahead, creation::queued_at_after(tail.as_ref(), now, &id)));
    }
    let queued_at = match place {
        Some((_, queued_at)) => Some(queued_at),
        None => new.queue_extension.as_ref().map(|_| now),
    };
    conn.prepare_cached(&creation::insert_rows(1))?
        .execute(params![
            id,
            new.channel_key,
            new.token_hash.0,
            new.state.as_str(),
            new.visitor_name,
            new.visitor_email,
            new.page_url,
            new.language,
            new.queue_extension,
            queued_at,
            new.ended.then_some(now),
            creation::event_count(create),
            now,
            now,
            new.client_key,
        ])?;
    let mut joined = None;
    if let (Some(queued), Some((ahead, _))) = (&create.queued, place) {
        let told = creation::position_after(ahead);
        (conn.prepare_cached(&creation::insert_waiting(1))?).execute(params![id, told])?;
        if let Some(timer) = &queued.timer {
            (conn.prepare_cached(&crate::store::dispatch::insert_timers_once(1))?)
                .execute(params![timer.kind, timer.subject, timer.due_at, timer.arg])?;
        }
        let head: Option<(String, Option<String>)> = (conn
            .prepare_cached(&creation::line_head())?)
        .query_row(
            params![new.queue_extension, ConversationState::Queued.as_str()],
            |row| Ok((row.get(0)?, row.get(1)?)),
        )
        .optional()?;
        let head = head
            .map(|(id, directed)| creation::head_from(&id, directed.as_deref()))
            .transpose()?;
        joined = Some(creation::Joined {
            position: told,
            head,
        });
    }
    let position = joined.as_ref().map(|j| j.position);
    let events = creation::all_events(create, position);
    let rows: Vec<NewRow<'_>> = (1..)
        .zip(&events)
        .map(|(seq, event)| NewRow {
            id: new.id,
            seq,
            event,
            deliver_to: event.deliver_to.clone(),
        })
        .collect();
    insert(conn, &rows, now)?;
    let stored = (rows.iter())
        .map(|row| StoredEvent::stored(new.id, row.seq, row.event, now))
        .collect();
    Ok((stored, joined))
}

/// The stored event of a conversation with this client id, if any.
fn copy_of(
    conn: &Connection,
    id: ConversationId,
    client_id: &str,
) -> StoreResult<Option<StoredEvent>> {
    let mut statement = conn.prepare_cached(
        "SELECT seq, kind, payload, created_at FROM events \
         WHERE conversation_id = ?1 AND client_id = ?2",
    )?;
    let found = statement
        .query_row(params![id.to_string(), client_id], |row| {
            Ok((
                row.get::<_, i64>(0)?,
                row.get::<_, String>(1)?,
                row.get::<_, String>(2)?,
                row.get::<_, i64>(3)?,
            ))
        })
        .optional()?;
    let Some((seq, kind, payload, created_at)) = found else {
        return Ok(None);
    };
    Ok(Some(StoredEvent {
        conversation_id: id,
        seq,
        kind,
        payload: serde_json::from_str(&payload)
            .map_err(|e| StoreError::Corrupt(format!("event payload: {e}")))?,
        client_id: Some(client_id.to_owned()),
        created_at,
    }))
}

/// Moves the conversation's seq counter on by `count` unless it has
/// ended; the conversation as it is now, or `None` if it ended (or is
/// gone).
fn take_seqs(
    conn: &Connection,
    id: ConversationId,
    count: i64,
    now: i64,
) -> StoreResult<Option<ConversationRow>> {
    let mut statement = conn.prepare_cached(&format!(
        "UPDATE conversations SET last_seq = last_seq + ?1, updated_at = ?2 \
         WHERE id = ?3 AND state <> ?4 AND state <> ?5 RETURNING {COLUMNS}"
    ))?;
    let mut rows = statement.query(params![
        count,
        now,
        id.to_string(),
        ConversationState::Ended.as_str(),
        ConversationState::ClosedOutOfHours.as_str(),
    ])?;
    match rows.next()? {
        Some(row) => Ok(Some(conversation_from(row)?)),
        None => Ok(None),
    }
}

fn conversation_from(row: &rusqlite::Row<'_>) -> StoreResult<ConversationRow> {
    let id: String = row.get("id")?;
    let state: String = row.get("state")?;
    Ok(ConversationRow {
        id: conversation_id(&id)?,
        channel_key: row.get("channel_key")?,
        token_hash: TokenHash(row.get("token_hash")?),
        state: state.parse().map_err(StoreError::Corrupt)?,
        visitor_name: row.get("visitor_name")?,
        visitor_email: row.get("visitor_email")?,
        page_url: row.get("page_url")?,
        language: row.get("language")?,
        option_id: row.get("option_id")?,
        queue_extension: row.get("queue_extension")?,
        agent_extension: row.get("agent_extension")?,
        agent_name: row.get("agent_name")?,
        last_seq: row.get("last_seq")?,
        delivered_seq: row.get("delivered_seq")?,
        read_seq: row.get("read_seq")?,
        created_at: row.get("created_at")?,
        queued_at: row.get("queued_at")?,
        ended_at: row.get("ended_at")?,
    })
}

/// Inserts the new events and their outbox rows.
fn insert(conn: &Connection, rows: &[NewRow<'_>], now: i64) -> StoreResult<()> {
    let mut event = conn.prepare_cached(
        "INSERT INTO events (conversation_id, seq, kind, payload, client_id, created_at) \
         VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
    )?;
    let mut delivery = conn.prepare_cached(
        "INSERT INTO agent_deliveries (conversation_id, seq, agent_extension, created_at) \
         VALUES (?1, ?2, ?3, ?4)",
    )?;
    for row in rows {
        let id = row.id.to_string();
        event.execute(params![
            id,
            row.seq,
            row.event.kind,
            row.event.payload.to_string(),
            row.event.client_id,
            now,
        ])?;
        for agent in &row.deliver_to {
            delivery.execute(params![id, row.seq, agent, now])?;
        }
    }
    Ok(())
}

/// Keeps the XMPP outbox rows (whether each was kept), then deletes the
/// deliveries and rows the bridges are done with.
fn write_outbox(conn: &Connection, outbox: &Outbox, now: i64) -> StoreResult<Vec<bool>> {
    let mut kept = Vec::with_capacity(outbox.keeps.len());
    if !outbox.keeps.is_empty() {
        let mut keep = conn.prepare_cached(
            "INSERT INTO xmpp_outbox (id, payload, created_at, node) \
             SELECT ?1, ?2, ?3, ?4 WHERE ?5 IS NULL OR EXISTS (SELECT 1 FROM agent_deliveries \
               WHERE conversation_id = ?5 AND seq = ?6 AND agent_extension = ?7) \
             ON CONFLICT (id) DO NOTHING",
        )?;
        for row in &outbox.keeps {
            let delivery = row.delivery.as_ref();
            let changed = keep.execute(params![
                row.id,
                row.payload,
                now,
                row.node,
                delivery.map(|d| d.conversation.to_string()),
                delivery.map(|d| d.seq),
                delivery.map(|d| d.agent_extension.as_str()),
            ])?;
            kept.push(changed == 1);
        }
    }
    if !outbox.deliveries_done.is_empty() {
        let mut delivery = conn.prepare_cached(
            "DELETE FROM agent_deliveries \
             WHERE conversation_id = ?1 AND seq = ?2 AND agent_extension = ?3",
        )?;
        for row in &outbox.deliveries_done {
            delivery.execute(params![
                row.conversation.to_string(),
                row.seq,
                row.agent_extension
            ])?;
        }
    }
    if !outbox.xmpp_done.is_empty() {
        let mut done = conn.prepare_cached("DELETE FROM xmpp_outbox WHERE id = ?1")?;
        for id in &outbox.xmpp_done {
            done.execute([id])?;
        }
    }
    Ok(kept)
}

/// A SQLite failure as the sqlx one it would have been, so the store's
/// one classification (`is_unavailable`, `is_unique_violation`) serves
/// both drivers.
#[derive(Debug)]
struct SqliteFailure {
    /// The extended result code.
    code: i32,
    message: String,
}

impl std::fmt::Display for SqliteFailure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "(code: {}) {}", self.code, self.message)
    }
}

impl std::error::Error for SqliteFailure {}

impl sqlx::error::DatabaseError for SqliteFailure {
    fn message(&self) -> &str {
        &self.message
    }

    fn code(&self) -> Option<std::borrow::Cow<'_, str>> {
        Some(self.code.to_string().into())
    }

    fn as_error(&self) -> &(dyn std::error::Error + Send + Sync + 'static) {
        self
    }

    fn as_error_mut(&mut self) -> &mut (dyn std::error::Error + Send + Sync + 'static) {
        self
    }

    fn into_error(self: Box<Self>) -> Box<dyn std::error::Error + Send + Sync + 'static> {
        self
    }

    fn kind(&self) -> sqlx::error::ErrorKind {
        use rusqlite::ffi;
        use sqlx::error::ErrorKind;
        match self.code {
            ffi::SQLITE_CONSTRAINT_UNIQUE | ffi::SQLITE_CONSTRAINT_PRIMARYKEY => {
                ErrorKind::UniqueViolation
            }
            ffi::SQLITE_CONSTRAINT_FOREIGNKEY => ErrorKind::ForeignKeyViolation,
            ffi::SQLITE_CONSTRAINT_NOTNULL => ErrorKind::NotNullViolation,
            ffi::SQLITE_CONSTRAINT_CHECK => ErrorKind::CheckViolation,
            _ => ErrorKind::Other,
        }
    }
}

impl From<rusqlite::Error> for StoreError {
    fn from(e: rusqlite::Error) -> Self {
        match e {
            rusqlite::Error::SqliteFailure(failure, message) => {
                StoreError::Database(sqlx::Error::Database(Box::new(SqliteFailure {
                    code: failure.extended_code,
                    message: message.unwrap_or_else(|| failure.to_string()),
                })))
            }
            rusqlite::Error::FromSqlConversionFailure(..)
            | rusqlite::Error::InvalidColumnType(..)
            | rusqlite::Error::InvalidColumnName(_)
            | rusqlite::Error::IntegralValueOutOfRange(..) => {
                StoreError::Database(sqlx::Error::Decode(Box::new(e)))
            }
            other => StoreError::Database(sqlx::Error::AnyDriverError(Box::new(other))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sqlite_failures_keep_the_store_s_classification() {
        let failure = |extended_code| {
            StoreError::from(rusqlite::Error::SqliteFailure(
                rusqlite::ffi::Error {
                    code: rusqlite::ErrorCode::Unknown,
                    extended_code,
                },
                None,
            ))
        };
        assert!(crate::store::is_unique_violation(&failure(
            rusqlite::ffi::SQLITE_CONSTRAINT_UNIQUE
        )));
        assert!(failure(rusqlite::ffi::SQLITE_BUSY).is_unavailable());
        assert!(failure(rusqlite::ffi::SQLITE_LOCKED_SHAREDCACHE).is_unavailable());
        assert!(!failure(rusqlite::ffi::SQLITE_CONSTRAINT_UNIQUE).is_unavailable());
    }
}
