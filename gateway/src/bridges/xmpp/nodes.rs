//! Several gateway nodes on one XMPP component domain.
//!
//! Two ways, chosen by `[xmpp] connection`:
//! - **`every_node`** (ejabberd): every node connects for the domain and
//!   ejabberd spreads what it routes there over the connections (at random
//!   by default, answers to our own pings included). Each node handles
//!   whatever reaches it against the shared store: presence is stored per
//!   client (source `xmpp:<full JID>`), a ping answer for another node is
//!   handed to it by NOTIFY (`pong:<id>`).
//! - **`one_node`** (Prosody, which refuses a second connection for a
//!   domain; the default): the node holding the `xmpp-connection` lease
//!   (renewed every [`TICK`], lapsing after [`CONNECTION_LEASE_MS`]) is the
//!   only one connected; the others leave their stanzas in the outbox
//!   unclaimed and wake it with NOTIFY (`outbox`). When it dies another node
//!   takes the lease and the connection; on SIGTERM it hands both back at
//!   once.
//!
//! In both, every node keeps an `xmpp-node:<node>` lease while it lives,
//! renewed by a task of its own ([`keep_node_lease`]): a bridge busy with
//! a burst of events is alive, and must not look dead to the others (they
//! would send its stanzas a second time).
//! Outbox rows are claimed by the node that sends them; a row whose node's
//! lease lapsed is claimed and sent again by a node that sends (so a row is
//! sent by one node, and re-sent by another when its node died before the
//! server confirmed it; at-least-once, under the same stanza id). With
//! `one_node` the holder claims every row not its own (whoever had them
//! lost the connection), oldest first, before sending anything new, so a
//! new holder keeps each chat's order. The node
//! that clears a lapsed lease (one `DELETE … RETURNING`, so one node) also
//! probes every agent again (`every_node`: the dead node's share of their
//! presences was lost with it). After every probe round, a client whose
//! presence was not refreshed within [`PRESENCE_SETTLE`] is forgotten, so
//! presence never stays stuck on a client that left while nobody listened.

use std::sync::Arc;
use std::time::Duration;

use frontdesk_xmpp::Command;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tracing::{debug, info, warn};

use super::XmppAgents;
use crate::config::XmppConnection;
use crate::engine::{AgentStatus, Engine};
use crate::store::{now_ms, Backend, NODE_LEASE_PREFIX};

/// How often leases are renewed and the outbox is looked at.
pub(super) const TICK: Duration = Duration::from_secs(1);
/// A node's own lease: lapsed this long after its last renewal.
const NODE_LEASE_MS: i64 = 4_000;
/// The connection holder's lease (`one_node`).
pub(super) const CONNECTION_LEASE_MS: i64 = 3_000;
const CONNECTION_LEASE: &str = "xmpp-connection";
/// How long probe answers may take; clients not heard of by then are gone.
/// Generous: forgetting a client that is there re-queues all its chats,
/// and under load the answers queue behind every node's other events.
const PRESENCE_SETTLE: Duration = Duration::from_secs(15);
/// Slack for the clocks of nodes that write presence rows.
const CLOCK_MARGIN_MS: i64 = 2_000;

/// NOTIFY payload: the outbox has rows for the connection holder (or the
/// lease was given back).
pub(super) const WAKE: &str = "outbox";
/// NOTIFY payload prefix: the answer to a node's ping, by id.
const PONG: &str = "pong:";

/// Presence sources of XMPP clients start so: `xmpp:<bare JID>[/<resource>]`.
pub(super) const PRESENCE_SOURCE: &str = "xmpp:";

/// What another node said.
pub(super) enum Signal {
    Wake,
    Pong(String),
}

/// Listens to the other nodes (PostgreSQL only; on SQLite the channel
/// stays silent), reconnecting after a lost listener; ends on `shutdown`.
pub(super) fn listen(
    store: crate::store::Store,
    shutdown: CancellationToken,
) -> (JoinHandle<()>, mpsc::Receiver<Signal>) {
    let (tx, rx) = mpsc::channel(256);
    let task = tokio::spawn(async move {
        if store.backend() != Backend::Postgres {
            shutdown.cancelled().await;
            return;
        }
        loop {
            let mut listener = match store.xmpp_listener().await {
                Ok(Some(listener)) => listener,
                Ok(None) => return,
                Err(e) => {
                    debug!(error = %e, "cannot listen to the other nodes yet");
                    tokio::select! {
                        _ = shutdown.cancelled() => return,
                        _ = tokio::time::sleep(TICK) => continue,
                    }
                }
            };
            loop {
                let note = tokio::select! {
                    _ = shutdown.cancelled() => return,
                    note = listener.recv() => note,
                };
                let signal = match note {
                    Ok(note) => match note.payload().strip_prefix(PONG) {
                        Some(id) => Signal::Pong(id.to_owned()),
                        None => Signal::Wake,
                    },
                    Err(e) => {
                        debug!(error = %e, "listener lost; listening again");
                        break;
                    }
                };
                if tx.send(signal).await.is_err() {
                    return;
                }
            }
        }
    });
    (task, rx)
}

/// Whether this node may take another node's lapsed lease for death (and
/// send its stanzas again): only while its own lease renewals succeed,
/// and once they have for longer than a lease lasts, so every live node
/// renewed theirs meanwhile. Not right after the database was away, when
/// every lease lapsed at once, nor while a renewal hangs on a database
/// that went away. On SQLite, or without `[cluster]`, there is no other
/// node.
pub(super) struct Judgement {
    alone: bool,
    /// Since when renewals succeed, and when the last one did.
    renewals: std::sync::Mutex<Option<(Instant, Instant)>>,
}

impl Judgement {
    pub(super) fn new(alone: bool) -> Self {
        Self {
            alone,
            renewals: std::sync::Mutex::new(None),
        }
    }

    /// No other node runs (SQLite, or no `[cluster]`).
    pub(super) fn alone(&self) -> bool {
        self.alone
    }

    pub(super) fn may_judge(&self) -> bool {
        if self.alone {
            return true;
        }
        let trust_after = Duration::from_millis(NODE_LEASE_MS as u64) + TICK;
        match *self.renewals.lock().expect("lease renewals lock") {
            Some((since, last)) => last.elapsed() < TICK * 2 && since.elapsed() >= trust_after,
            None => false,
        }
    }

    fn renewed(&self, ok: bool) {
        let mut renewals = self.renewals.lock().expect("lease renewals lock");
        // A renewal that took long (it waited for a database that went
        // away) starts a new stretch: other nodes waited as long.
        *renewals = match (ok, *renewals) {
            (true, Some((since, last))) if last.elapsed() <= TICK * 2 => {
                Some((since, Instant::now()))
            }
            (true, _) => Some((Instant::now(), Instant::now())),
            (false, _) => None,
        };
    }
}

/// Renews this node's `xmpp-node:` lease every [`TICK`] until `stop`,
/// apart from the bridge's loop (see the module docs), and keeps its
/// [`Judgement`].
fn keep_node_lease(agents: Arc<XmppAgents>, stop: CancellationToken) -> JoinHandle<()> {
    tokio::spawn(async move {
        let store = agents.store.clone();
        let me = agents.node.clone();
        let lease = format!("{NODE_LEASE_PREFIX}{me}");
        let mut tick = tokio::time::interval(TICK);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = stop.cancelled() => return,
                _ = tick.tick() => {}
            }
            let now = now_ms();
            let renewed = store.try_lease(&lease, &me, now + NODE_LEASE_MS, now).await;
            if let Err(e) = &renewed {
                warn!(error = %e, "cannot renew this node's lease");
            }
            agents.peers.renewed(renewed.is_ok());
        }
    })
}

/// This node's part in the cluster, driven by the bridge's loop.
pub(super) struct Nodes {
    /// The task renewing this node's lease, and its stop.
    lease: Option<(JoinHandle<()>, CancellationToken)>,
    /// Whether the `one_node` lease decides who connects.
    elected: bool,
    connected: bool,
    /// When this node last renewed the connection lease.
    held_at: Option<Instant>,
    /// A pending forgetting of clients not refreshed: when, and the time
    /// (ms) their presence must have been written after.
    expiry: Option<(Instant, i64)>,
}

impl Nodes {
    pub(super) fn new(agents: &XmppAgents, backend: Backend) -> Self {
        Self {
            lease: None,
            elected: agents.mode == XmppConnection::OneNode && backend == Backend::Postgres,
            connected: false,
            held_at: None,
            expiry: None,
        }
    }

    /// At start: on SQLite, or without `[cluster]`, one node runs, so
    /// every earlier run's node is dead (its lease may not have lapsed
    /// yet); then what they left is sent.
    pub(super) async fn start(&mut self, agents: &Arc<XmppAgents>, engine: &Engine) {
        if agents.peers.alone {
            if let Err(e) = engine.store().xmpp_lapse_node_leases().await {
                warn!(error = %e, "cannot forget earlier runs' leases");
            }
        }
        let stop = CancellationToken::new();
        self.lease = Some((keep_node_lease(agents.clone(), stop.clone()), stop));
        self.tick(agents, engine).await;
        if agents.sending() {
            take_over(agents).await;
        }
    }

    /// Renews the connection lease, takes over after dead nodes, sends what waits,
    /// forgets stale clients when due.
    pub(super) async fn tick(&mut self, agents: &XmppAgents, engine: &Engine) {
        // Also before the first connection, and on standby (0).
        metrics::gauge!("frontdesk_xmpp_connected").set(f64::from(u8::from(self.connected)));
        let store = engine.store();
        let now = now_ms();
        if self.elected {
            self.hold_connection(agents, now).await;
        }
        let lapsed = if agents.may_judge_peers() {
            store.xmpp_lapsed_nodes().await
        } else {
            Ok(Vec::new())
        };
        match lapsed {
            Ok(dead) if !dead.is_empty() => {
                info!(
                    nodes = dead.len(),
                    "gateway nodes gone; taking over after them"
                );
                if agents.mode == XmppConnection::EveryNode && self.connected {
                    reprobe(agents, engine).await;
                    self.expect_presence(now);
                }
            }
            Ok(_) => {}
            Err(e) => debug!(error = %e, "cannot look for lapsed nodes"),
        }
        if agents.sending() && self.connected {
            take_over(agents).await;
        }
        if let Some((due, before)) = self.expiry {
            if Instant::now() >= due {
                self.expiry = None;
                forget_stale_clients(engine, before).await;
            }
        }
    }

    /// `one_node`: takes or renews the connection lease, or steps down.
    async fn hold_connection(&mut self, agents: &XmppAgents, now: i64) {
        let store = &agents.store;
        let me = agents.node.as_str();
        match store
            .try_lease(CONNECTION_LEASE, me, now + CONNECTION_LEASE_MS, now)
            .await
        {
            Ok(true) => {
                self.held_at = Some(Instant::now());
                if !agents.sending() {
                    info!("this node holds the XMPP component connection");
                    agents
                        .sending
                        .store(true, std::sync::atomic::Ordering::SeqCst);
                    let _ = agents.command(Command::SetOnline(true)).await;
                }
            }
            Ok(false) => {
                if agents.sending() {
                    warn!("another node holds the XMPP component connection now");
                    agents.step_down().await;
                }
            }
            Err(e) => {
                // Without the database the lease cannot be renewed: give
                // the connection up before another node may take it.
                let lapsing = self.held_at.is_none_or(|at| {
                    at.elapsed() + TICK >= Duration::from_millis(CONNECTION_LEASE_MS as u64)
                });
                if agents.sending() && lapsing {
                    warn!(error = %e, "cannot renew the connection lease; handing the connection over");
                    agents.step_down().await;
                }
            }
        }
    }

    /// The component (re)connected: it probed every agent.
    pub(super) async fn connected(&mut self, agents: &XmppAgents) {
        self.connected = true;
        self.expect_presence(now_ms());
        if agents.sending() {
            take_over(agents).await;
        }
    }

    pub(super) fn disconnected(&mut self) {
        self.connected = false;
    }

    /// Another node's ping answer reached us: hand it over.
    pub(super) async fn stray_pong(&self, agents: &XmppAgents, id: &str) {
        if agents.mode != XmppConnection::EveryNode {
            return;
        }
        if let Err(e) = agents.store.xmpp_notify(&format!("{PONG}{id}")).await {
            debug!(error = %e, "cannot hand a ping answer over");
        }
    }

    pub(super) async fn signal(&mut self, signal: Signal, agents: &XmppAgents, engine: &Engine) {
        match signal {
            Signal::Pong(id) => {
                let _ = agents.command(Command::PingAnswered { id }).await;
            }
            Signal::Wake if agents.sending() => {
                if self.connected {
                    take_over(agents).await;
                }
            }
            // Perhaps the holder gave the lease back: try at once.
            Signal::Wake if self.elected => self.tick(agents, engine).await,
            Signal::Wake => {}
        }
    }

    /// Probes were just sent: forget, once they had time to come back,
    /// the clients they did not refresh.
    fn expect_presence(&mut self, now: i64) {
        let before = now - CLOCK_MARGIN_MS;
        let before = self.expiry.map_or(before, |(_, b)| b.max(before));
        self.expiry = Some((Instant::now() + PRESENCE_SETTLE, before));
    }

    /// Shutting down: hands back what this node has, and its leases.
    pub(super) async fn stop(&mut self, agents: &XmppAgents) {
        if let Some((task, stop)) = self.lease.take() {
            stop.cancel();
            let _ = task.await;
        }
        agents
            .sending
            .store(false, std::sync::atomic::Ordering::SeqCst);
        let store = &agents.store;
        let me = agents.node.as_str();
        if let Err(e) = store.xmpp_outbox_release(me).await {
            warn!(error = %e, "cannot hand unconfirmed stanzas back");
        }
        if self.elected {
            if let Err(e) = store.release_lease(CONNECTION_LEASE, me).await {
                warn!(error = %e, "cannot give the connection lease back");
            }
        }
        if let Err(e) = store
            .release_lease(&format!("{NODE_LEASE_PREFIX}{me}"), me)
            .await
        {
            debug!(error = %e, "cannot give this node's lease back");
        }
        agents.wake_holder().await;
    }
}

async fn take_over(agents: &XmppAgents) {
    match agents.take_over().await {
        Ok(0) => {}
        Ok(rows) => info!(rows, "sending stanzas other nodes left in the outbox"),
        Err(e) => warn!(error = %e, "cannot take over the outbox"),
    }
}

/// Asks the server for every agent's presence again.
async fn reprobe(agents: &XmppAgents, engine: &Engine) {
    for agent in engine.agents().into_iter().filter_map(|a| a.xmpp) {
        let _ = agents.command(Command::Probe { agent }).await;
    }
}

/// Every agent's XMPP client whose presence was written before `before`
/// (ms) is gone.
async fn forget_stale_clients(engine: &Engine, before: i64) {
    for agent in engine.agents() {
        if agent.xmpp.is_none() {
            continue;
        }
        let sources = match engine
            .store()
            .xmpp_presence_sources(agent.extension.as_str(), PRESENCE_SOURCE, before)
            .await
        {
            Ok(sources) => sources,
            Err(e) => {
                debug!(error = %e, "cannot read stale presence");
                continue;
            }
        };
        for source in sources {
            info!(agent = %agent.extension, "an XMPP client did not answer the probe; forgotten");
            engine
                .set_agent_presence(&agent.extension, &source, AgentStatus::Offline)
                .await;
        }
    }
}
