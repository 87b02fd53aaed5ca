//! The PostgreSQL writers: a few async tasks, each with a connection of
//! its own, taking turns at the queue; their commits overlap. A batch is
//! a fixed number of statements whatever its size (one read finds the
//! copies already stored, one update takes every conversation's new seqs
//! under the rows' locks, one read finds who waiting ones ring for, one
//! insert writes the events, one the outbox rows, one the notices).

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::{Duration, Instant};

use sqlx::AnyConnection;
use sqlx::{Any, Connection, Row, Transaction};
use tokio::sync::{mpsc, Mutex};

use super::{
    client_id_of, fail_all, outcome, placeholders, plan, shared_error, split, take_waiting,
    waiting, Appended, Keep, NewRow, Outbox, Request, Sorted, Together, MAX_BATCH,
};
use crate::domain::{ConversationId, ConversationState};
use crate::store::conversations::{self, COLUMNS};
use crate::store::creation::{self, Create, Created, Joined};
use crate::store::dispatch;
use crate::store::events::is_unique_violation;
use crate::store::{now_ms, ConversationRow, NewEvent, Store, StoreResult, StoredEvent, TimerRow};

/// Writer tasks (each holds a connection while it writes).
const WRITERS: usize = 3;

/// The shortest time between two batches taken from the queue (by any
/// writer): a batch due sooner waits out the rest of it, and takes
/// whatever else arrived meanwhile. At a steady 500 to 2,000 messages a
/// second most batches held one or two messages, and each commit (a round
/// trip, a WAL flush in the server) cost more than the messages in it;
/// with 4 ms, the gateway's and its backends' CPU per message fell by
/// 36 % at 500 and by 60 % at 2,000 messages a second, the p99 stayed
/// near 10 ms, and saturation did not fall (docs/benchmarks.md, change
/// 14). A batch after a quiet moment does not wait. Its known cost: at
/// 100 messages a second a batch is one request whatever the gap, so
/// the wait only adds latency (visitor → agent p99 6.7 → 14.3 ms there).
const BATCH_GAP: Duration = Duration::from_millis(4);

/// The writers' queue, and when a batch was last taken from it.
struct Queue {
    requests: mpsc::Receiver<Request>,
    last_taken: Option<Instant>,
}

impl Queue {
    /// Fills `batch` with the waiting requests (at least one, waiting for
    /// it), no sooner than `BATCH_GAP` after the last batch; false once
    /// the queue has closed.
    async fn take(&mut self, batch: &mut Vec<Request>) -> bool {
        if self.requests.recv_many(batch, MAX_BATCH).await == 0 {
            return false;
        }
        if let Some(due) = self.last_taken.map(|at| at + BATCH_GAP) {
            if due > Instant::now() {
                tokio::time::sleep_until(due.into()).await;
                take_waiting(&mut self.requests, batch);
            }
        }
        self.last_taken = Some(Instant::now());
        true
    }
}

pub(super) fn start(store: &Store, requests: mpsc::Receiver<Request>) {
    let queue = Arc::new(Mutex::new(Queue {
        requests,
        last_taken: None,
    }));
    for _ in 0..WRITERS {
        tokio::spawn(write_batches(store.clone(), queue.clone()));
    }
}

/// One writer: takes the waiting requests (at least one), stores them, and
/// answers them, until the queue closes. It keeps one connection of its
/// own between batches (a pooled one is pinged on every return, a round
/// trip per batch), and takes a fresh one after any error.
async fn write_batches(store: Store, queue: Arc<Mutex<Queue>>) {
    let mut batch = Vec::with_capacity(MAX_BATCH);
    let mut connection: Option<AnyConnection> = None;
    loop {
        // Held while waiting out the gap: the other writers would take
        // the same requests one by one otherwise.
        if !queue.lock().await.take(&mut batch).await {
            return;
        }
        metrics::histogram!("frontdesk_message_batch_size").record(batch.len() as f64);
        let conn = match connection.take() {
            Some(conn) => Ok(conn),
            None => store.pool.acquire().await.map(|c| c.detach()),
        };
        connection = match conn {
            Ok(conn) => write_batch(&store, conn, std::mem::take(&mut batch)).await,
            Err(e) => {
                fail_all(std::mem::take(&mut batch), &e.into());
                None
            }
        };
        batch.reserve(MAX_BATCH);
    }
}

/// Stores a batch on `conn`; gives the connection back unless something
/// failed (then the next batch takes a fresh one).
async fn write_batch(
    store: &Store,
    mut conn: AnyConnection,
    batch: Vec<Request>,
) -> Option<AnyConnection> {
    let Sorted {
        creates,
        messages,
        replies,
        outbox,
    } = split(batch);
    match store_together(store, &mut conn, &creates.creates, &messages, &outbox).await {
        Ok(together) => {
            creates.answer(together.created);
            for (reply, result) in replies.into_iter().zip(together.appended) {
                let _ = reply.send(Ok(result));
            }
            outbox.answer(&Ok(together.kept));
            return Some(conn);
        }
        Err(e) if e.is_unavailable() => {
            creates.fail(&e);
            for reply in replies {
                let _ = reply.send(Err(shared_error(&e)));
            }
            outbox.answer(&Err(e));
            return None;
        }
        // Whatever failed, each request now learns its own fate, on a
        // pooled connection.
        Err(e) => {
            tracing::debug!(error = %e, size = messages.len() + creates.creates.len(), "a batch failed: storing its requests one by one")
        }
    }
    drop(conn);
    for (create, reply) in creates.creates.iter().zip(creates.replies) {
        let _ = reply.send(create_alone(store, create).await);
    }
    for ((id, event), reply) in messages.iter().zip(replies) {
        let _ = reply.send(store_alone(store, *id, event).await);
    }
    if !outbox.is_empty() {
        let alone = match store.pool.acquire().await {
            Ok(mut conn) => store_together(store, &mut conn, &[], &[], &outbox).await,
            Err(e) => Err(e.into()),
        };
        outbox.answer(&alone.map(|together| together.kept));
    }
    None
}

/// One create in a transaction of its own.
async fn create_alone(store: &Store, create: &Create) -> StoreResult<Created> {
    let mut conn = store.pool.acquire().await?;
    let mut tx = conn.begin().await?;
    let mut created = create_all(&mut tx, std::slice::from_ref(create)).await?;
    tx.commit().await?;
    Ok(created.remove(0))
}

/// One request in a transaction of its own; a concurrent copy committed
/// first answers with that copy.
async fn store_alone(store: &Store, id: ConversationId, event: &NewEvent) -> StoreResult<Appended> {
    let mut conn = store.pool.acquire().await?;
    let alone = [(id, event.clone())];
    match store_together(store, &mut conn, &[], &alone, &Outbox::default()).await {
        Ok(mut together) => Ok(together.appended.remove(0)),
        Err(e) if is_unique_violation(&e) => {
            let client_id = event.client_id.as_deref().unwrap_or_default();
            Ok(Appended::Existing(store.first_stored(id, client_id).await?))
        }
        Err(e) => Err(e),
    }
}

/// Creates the conversations, stores every request and writes the outbox
/// rows in one transaction, or does none of it.
async fn store_together(
    store: &Store,
    conn: &mut AnyConnection,
    creates: &[Create],
    requests: &[(ConversationId, NewEvent)],
    outbox: &Outbox,
) -> StoreResult<Together> {
    let mut tx = conn.begin().await?;
    let now = now_ms();
    let created = create_all(&mut tx, creates).await?;
    if requests.is_empty() {
        let kept = write_outbox(&mut tx, outbox, now).await?;
        tx.commit().await?;
        return Ok(Together {
            created,
            appended: Vec::new(),
            kept,
        });
    }
    let stored_before = select_copies(&mut tx, requests).await?;
    let planned = plan(requests, &stored_before);
    let moved = take_seqs(&mut tx, &planned.new_per_conversation, now).await?;
    let ringing = ringing_for(&mut tx, &moved).await?;
    let (appended, rows) = outcome(requests, &planned, &moved, &ringing, now);
    insert_events(&mut tx, &rows, now).await?;
    insert_deliveries(&mut tx, &rows, now).await?;
    let committed: Vec<(ConversationId, i64)> =
        (moved.values()).map(|row| (row.id, row.last_seq)).collect();
    crate::store::signals::notify_all_committed(&mut tx, store, &committed).await?;
    let kept = write_outbox(&mut tx, outbox, now).await?;
    tx.commit().await?;
    Ok(Together {
        created,
        appended,
        kept,
    })
}

/// Creates `creates` (sorted by id) in `tx` with a fixed number of
/// statements whatever their number (`creation.rs`): per queue they join,
/// its lock and one read of its line's last one (two when it has no
/// position), after which theirs follow in id order; one insert of the
/// rows, one of their places, one of their timers; per queue, one read of
/// its line's head, the same for all of them (whoever of the batch joined
/// first or one ahead of it); one insert of every event.
async fn create_all(
    tx: &mut Transaction<'_, Any>,
    creates: &[Create],
) -> StoreResult<Vec<Created>> {
    if creates.is_empty() {
        return Ok(Vec::new());
    }
    let mut lines: BTreeMap<&str, Vec<usize>> = BTreeMap::new();
    for (nth, create) in creates.iter().enumerate() {
        if let (Some(_), Some(queue)) = (&create.queued, &create.new.queue_extension) {
            lines.entry(queue.as_str()).or_default().push(nth);
        }
    }
    for queue in lines.keys() {
        // Whoever else joins this line (another writer, another node)
        // waits for this commit, then finds these chats at its end: so a
        // start's position is exact here too, as on SQLite's one writer.
        // Taken in the lines' order, so two batches never wait for each
        // other.
        sqlx::query("SELECT pg_advisory_xact_lock(hashtextextended($1, 0))")
            .bind(format!("frontdesk line {queue}"))
            .execute(&mut **tx)
            .await?;
    }
    let now = now_ms();
    let mut places: Vec<Option<(u32, i64)>> = vec![None; creates.len()];
    for (queue, members) in &lines {
        let tail: Option<(Option<i64>, i64, i64, String)> = sqlx::query_as(&creation::line_tail())
            .bind(*queue)
            .fetch_optional(&mut **tx)
            .await?;
        let tail = tail.map(|(position, queued_at, created_at, id)| creation::Tail {
            position,
            queued_at,
            created_at,
            id,
        });
        let ahead = match creation::ahead_from(tail.as_ref()) {
            Some(ahead) => ahead,
            None => {
                sqlx::query_scalar(&creation::count_line())
                    .bind(*queue)
                    .fetch_one(&mut **tx)
                    .await?
            }
        };
        let first = creates[members[0]].new.id.to_string();
        let queued_at = creation::queued_at_after(tail.as_ref(), now, &first);
        for (behind, nth) in (0..).zip(members) {
            places[*nth] = Some((creation::position_after(ahead + behind), queued_at));
        }
    }
    insert_conversations(tx, creates, &places, now).await?;
    let joined = join_lines(tx, creates, &lines, &places).await?;
    let events: Vec<Vec<NewEvent>> = (creates.iter().zip(&joined))
        .map(|(create, joined)| creation::all_events(create, joined.as_ref().map(|j| j.position)))
        .collect();
    let rows: Vec<NewRow<'_>> = (creates.iter().zip(&events))
        .flat_map(|(create, events)| {
            (1..).zip(events).map(|(seq, event)| NewRow {
                id: create.new.id,
                seq,
                event,
                deliver_to: event.deliver_to.clone(),
            })
        })
        .collect();
    insert_events(tx, &rows, now).await?;
    insert_deliveries(tx, &rows, now).await?;
    let mut stored: Vec<Vec<StoredEvent>> = creates.iter().map(|_| Vec::new()).collect();
    let mut nth = 0;
    for row in &rows {
        while creates[nth].new.id != row.id {
            nth += 1;
        }
        stored[nth].push(StoredEvent::stored(row.id, row.seq, row.event, now));
    }
    Ok(stored.into_iter().zip(joined).collect())
}

/// The rows, queued ones with the time `places` gives them.
async fn insert_conversations(
    tx: &mut Transaction<'_, Any>,
    creates: &[Create],
    places: &[Option<(u32, i64)>],
    now: i64,
) -> StoreResult<()> {
    let sql = creation::insert_rows(creates.len());
    let mut query = sqlx::query(&sql).persistent(false);
    for (create, place) in creates.iter().zip(places) {
        let new = &create.new;
        let queued_at = match place {
            Some((_, queued_at)) => Some(*queued_at),
            None => new.queue_extension.as_ref().map(|_| now),
        };
        query = query
            .bind(new.id.to_string())
            .bind(new.channel_key.as_str())
            .bind(new.token_hash.0.as_str())
            .bind(new.state.as_str())
            .bind(new.visitor_name.as_str())
            .bind(new.visitor_email.as_str())
            .bind(new.page_url.as_deref())
            .bind(new.language.as_str())
            .bind(new.queue_extension.as_deref())
            .bind(queued_at)
            .bind(new.ended.then_some(now))
            .bind(creation::event_count(create))
            .bind(now)
            .bind(now)
            .bind(new.client_key.as_deref());
    }
    query.execute(&mut **tx).await?;
    Ok(())
}

/// Where each queued create joined its line (`None` for the others),
/// `lines` being the queued ones of each queue in order and `places`
/// their positions: writes their places and their timers, and reads each
/// line's head.
async fn join_lines(
    tx: &mut Transaction<'_, Any>,
    creates: &[Create],
    lines: &BTreeMap<&str, Vec<usize>>,
    places: &[Option<(u32, i64)>],
) -> StoreResult<Vec<Option<Joined>>> {
    let positions: Vec<Option<u32>> = places
        .iter()
        .map(|p| p.map(|(position, _)| position))
        .collect();
    let places: Vec<(String, i64)> = (creates.iter().zip(&positions))
        .filter_map(|(create, position)| Some((create.new.id.to_string(), i64::from((*position)?))))
        .collect();
    if places.is_empty() {
        return Ok(creates.iter().map(|_| None).collect());
    }
    let sql = creation::insert_waiting(places.len());
    let mut query = sqlx::query(&sql).persistent(false);
    for (id, position) in &places {
        query = query.bind(id.as_str()).bind(*position);
    }
    query.execute(&mut **tx).await?;
    let timers: Vec<&TimerRow> = (creates.iter())
        .filter_map(|create| create.queued.as_ref()?.timer.as_ref())
        .collect();
    if !timers.is_empty() {
        let sql = dispatch::insert_timers_once(timers.len());
        let mut query = sqlx::query(&sql).persistent(false);
        for timer in timers {
            query = query
                .bind(timer.kind.as_str())
                .bind(timer.subject.as_str())
                .bind(timer.due_at)
                .bind(timer.arg.as_deref());
        }
        query.execute(&mut **tx).await?;
    }
    let mut heads = HashMap::with_capacity(lines.len());
    for queue in lines.keys() {
        let head: Option<(String, Option<String>)> = sqlx::query_as(&creation::line_head())
            .bind(*queue)
            .bind(ConversationState::Queued.as_str())
            .fetch_optional(&mut **tx)
            .await?;
        let head = head
            .map(|(id, directed)| creation::head_from(&id, directed.as_deref()))
            .transpose()?;
        heads.insert(*queue, head);
    }
    Ok((creates.iter().zip(positions))
        .map(|(create, position)| {
            let queue = create.new.queue_extension.as_deref()?;
            Some(Joined {
                position: position?,
                head: heads.get(queue)?.clone(),
            })
        })
        .collect())
}

/// The copies of the batch's messages already stored, by conversation and
/// client id.
async fn select_copies<'r>(
    tx: &mut Transaction<'_, Any>,
    requests: &'r [(ConversationId, NewEvent)],
) -> StoreResult<HashMap<(ConversationId, &'r str), StoredEvent>> {
    let ids: Vec<String> = requests.iter().map(|(id, _)| id.to_string()).collect();
    let sql = format!(
        "SELECT conversation_id, seq, kind, payload, client_id, created_at FROM events \
         WHERE client_id IS NOT NULL AND (conversation_id, client_id) IN (VALUES {})",
        placeholders(1, requests.len(), 2)
    );
    let mut query = sqlx::query(&sql).persistent(false);
    for (id, (_, event)) in ids.iter().zip(requests) {
        query = query.bind(id.as_str()).bind(client_id_of(event));
    }
    let found = query.fetch_all(&mut **tx).await?;
    let mut copies = HashMap::new();
    for row in &found {
        let conversation: String = row.try_get("conversation_id")?;
        let conversation = crate::store::conversation_id(&conversation)?;
        let stored = crate::store::events::from_row(conversation, row)?;
        // Keyed by the request's own client id, so the map borrows it.
        if let Some((_, event)) = requests
            .iter()
            .find(|(id, event)| *id == conversation && event.client_id == stored.client_id)
        {
            copies.insert((conversation, client_id_of(event)), stored);
        }
    }
    Ok(copies)
}

/// Moves each conversation's seq counter on by its number of new messages
/// unless it has ended; the conversations that moved, as they are now.
async fn take_seqs(
    tx: &mut Transaction<'_, Any>,
    counts: &HashMap<ConversationId, i64>,
    now: i64,
) -> StoreResult<HashMap<ConversationId, ConversationRow>> {
    if counts.is_empty() {
        return Ok(HashMap::new());
    }
    let counts: Vec<(String, i64)> = counts.iter().map(|(id, n)| (id.to_string(), *n)).collect();
    let cases: Vec<String> = (0..counts.len())
        .map(|i| format!("WHEN ${} THEN ${}", 4 + 2 * i, 5 + 2 * i))
        .collect();
    let ids: Vec<String> = (0..counts.len())
        .map(|i| format!("${}", 4 + 2 * i))
        .collect();
    let sql = format!(
        "UPDATE conversations SET last_seq = last_seq + CASE id {} END, updated_at = $1 \
         WHERE id IN ({}) AND state <> $2 AND state <> $3 RETURNING {COLUMNS}",
        cases.join(" "),
        ids.join(", ")
    );
    let mut query = sqlx::query(&sql)
        .persistent(false)
        .bind(now)
        .bind(ConversationState::Ended.as_str())
        .bind(ConversationState::ClosedOutOfHours.as_str());
    for (id, count) in &counts {
        query = query.bind(id.as_str()).bind(*count);
    }
    let moved = query.fetch_all(&mut **tx).await?;
    let mut rows = HashMap::with_capacity(moved.len());
    for row in &moved {
        let row = conversations::from_row(row)?;
        rows.insert(row.id, row);
    }
    Ok(rows)
}

/// Who the offers of the waiting conversations among `moved` ring for.
async fn ringing_for(
    tx: &mut Transaction<'_, Any>,
    moved: &HashMap<ConversationId, ConversationRow>,
) -> StoreResult<HashMap<ConversationId, Vec<String>>> {
    let waiting = waiting(moved);
    if waiting.is_empty() {
        return Ok(HashMap::new());
    }
    let ids: Vec<String> = (1..=waiting.len()).map(|i| format!("${i}")).collect();
    let sql = format!(
        "SELECT conversation_id, agents FROM offers WHERE conversation_id IN ({})",
        ids.join(", ")
    );
    let mut query = sqlx::query(&sql).persistent(false);
    for id in &waiting {
        query = query.bind(id.as_str());
    }
    let mut ringing = HashMap::new();
    for row in query.fetch_all(&mut **tx).await? {
        let id: String = row.try_get("conversation_id")?;
        let agents: String = row.try_get("agents")?;
        ringing.insert(
            crate::store::conversation_id(&id)?,
            dispatch::agents_of(&agents)?,
        );
    }
    Ok(ringing)
}

async fn insert_events(
    tx: &mut Transaction<'_, Any>,
    rows: &[NewRow<'_>],
    now: i64,
) -> StoreResult<()> {
    if rows.is_empty() {
        return Ok(());
    }
    let sql = format!(
        "INSERT INTO events (conversation_id, seq, kind, payload, client_id, created_at) VALUES {}",
        placeholders(1, rows.len(), 6)
    );
    let mut query = sqlx::query(&sql).persistent(false);
    for NewRow { id, seq, event, .. } in rows {
        query = query
            .bind(id.to_string())
            .bind(*seq)
            .bind(event.kind)
            .bind(event.payload.to_string())
            .bind(event.client_id.clone())
            .bind(now);
    }
    query.execute(&mut **tx).await?;
    Ok(())
}

async fn insert_deliveries(
    tx: &mut Transaction<'_, Any>,
    rows: &[NewRow<'_>],
    now: i64,
) -> StoreResult<()> {
    let deliveries: Vec<(String, i64, &str)> = rows
        .iter()
        .flat_map(|row| {
            (row.deliver_to.iter()).map(move |agent| (row.id.to_string(), row.seq, agent.as_str()))
        })
        .collect();
    if deliveries.is_empty() {
        return Ok(());
    }
    let sql = format!(
        "INSERT INTO agent_deliveries (conversation_id, seq, agent_extension, created_at) VALUES {}",
        placeholders(1, deliveries.len(), 4)
    );
    let mut query = sqlx::query(&sql).persistent(false);
    for (id, seq, agent) in deliveries {
        query = query.bind(id).bind(seq).bind(agent).bind(now);
    }
    query.execute(&mut **tx).await?;
    Ok(())
}

/// Keeps the XMPP outbox rows (whether each was kept: the first of an
/// id, if its delivery is still to be made), then deletes the deliveries
/// and rows the bridges are done with.
async fn write_outbox(
    tx: &mut Transaction<'_, Any>,
    outbox: &Outbox,
    now: i64,
) -> StoreResult<Vec<bool>> {
    let kept = keep(tx, &outbox.keeps, now).await?;
    if !outbox.deliveries_done.is_empty() {
        let sql = format!(
            "DELETE FROM agent_deliveries \
             WHERE (conversation_id, seq, agent_extension) IN (VALUES {})",
            placeholders(1, outbox.deliveries_done.len(), 3)
        );
        let mut query = sqlx::query(&sql).persistent(false);
        for row in &outbox.deliveries_done {
            query = query
                .bind(row.conversation.to_string())
                .bind(row.seq)
                .bind(row.agent_extension.clone());
        }
        query.execute(&mut **tx).await?;
    }
    if !outbox.xmpp_done.is_empty() {
        let sql = format!(
            "DELETE FROM xmpp_outbox WHERE id IN ({})",
            (1..=outbox.xmpp_done.len())
                .map(|i| format!("${i}"))
                .collect::<Vec<_>>()
                .join(", ")
        );
        let mut query = sqlx::query(&sql).persistent(false);
        for id in &outbox.xmpp_done {
            query = query.bind(id.clone());
        }
        query.execute(&mut **tx).await?;
    }
    Ok(kept)
}

async fn keep(tx: &mut Transaction<'_, Any>, keeps: &[Keep], now: i64) -> StoreResult<Vec<bool>> {
    if keeps.is_empty() {
        return Ok(Vec::new());
    }
    let sql = format!(
        "INSERT INTO xmpp_outbox (id, payload, created_at, node) \
         SELECT v.id, v.payload, v.created_at, v.node \
         FROM (VALUES {}) AS v (id, payload, created_at, node, conversation_id, seq, agent) \
         WHERE v.conversation_id IS NULL OR EXISTS (SELECT 1 FROM agent_deliveries d \
           WHERE d.conversation_id = v.conversation_id AND d.seq = v.seq \
           AND d.agent_extension = v.agent) \
         ON CONFLICT (id) DO NOTHING RETURNING id",
        placeholders(1, keeps.len(), 7)
    );
    let mut query = sqlx::query(&sql).persistent(false);
    for row in keeps {
        let delivery = row.delivery.as_ref();
        query = query
            .bind(row.id.clone())
            .bind(row.payload.clone())
            .bind(now)
            .bind(row.node.clone())
            .bind(delivery.map(|d| d.conversation.to_string()))
            .bind(delivery.map(|d| d.seq))
            .bind(delivery.map(|d| d.agent_extension.clone()));
    }
    let mut inserted: std::collections::HashSet<String> = query
        .fetch_all(&mut **tx)
        .await?
        .iter()
        .map(|r| r.try_get("id"))
        .collect::<Result<_, _>>()?;
    // The first request of an id was the one kept.
    Ok(keeps.iter().map(|row| inserted.remove(&row.id)).collect())
}
