//! The task that owns the component connection.
//!
//! tokio-xmpp does not reconnect by itself, so this task does: it connects,
//! reports [`Event::Connected`], probes every known agent (servers do not
//! re-send presence to a component that reconnects), then serves the stream
//! until it dies, reports [`Event::Disconnected`] and reconnects with capped
//! exponential backoff and jitter.
//!
//! # Liveness
//! A TCP connection to a hung server can stay "open" for a long time. After
//! `ping_interval` of silence the task sends a XEP-0199 ping; if a ping
//! stays unanswered for `ping_timeout` *and nothing else arrived on the
//! stream since it was sent*, the stream is declared dead. A server that
//! speaks is alive even when the answer itself went astray: ejabberd routes
//! what it sends to the component domain (IQ answers to our own pings
//! included: its router, not the stream, answers them) to any of the
//! connections for that domain, at random unless `domain_balancing` says
//! otherwise, so with several gateway nodes a ping is mostly answered on
//! another node's connection. Ping ids name the node
//! ([`ComponentConfig::node_tag`](crate::ComponentConfig)); an answer to
//! another node's ping becomes [`Event::StrayPong`], which the gateway hands
//! to that node ([`Command::PingAnswered`]), so acknowledgements stay
//! prompt. When an answer is neither seen nor handed back, its ping is
//! simply sent again.
//!
//! # Delivery
//! Outboxed commands (messages, error replies) are acknowledged with
//! [`Event::Sent`] only after the server has *processed* them: after writing
//! them the task sends a ping, and since a server handles one stream's
//! stanzas in order, the ping's answer proves everything before it was
//! routed. Commands not yet acknowledged when the stream dies are sent again,
//! first and in their original order, after the reconnect (at-least-once;
//! the stanza id stays the same). Commands that arrive while disconnected
//! wait in order, except chat states, which would be stale.
//!
//! # Standby
//! A server that takes one connection per component domain (Prosody) is
//! served by one gateway node at a time: the others start with
//! [`ComponentConfig::start_online`](crate::ComponentConfig) `false` and
//! hold no connection until [`Command::SetOnline`] `(true)`; `(false)`
//! hands the connection back (closed politely, outboxed commands
//! forgotten: the gateway's outbox re-submits them to the new holder).
//!
//! # Shutdown
//! The task ends when the shutdown token is cancelled, when the command
//! sender is dropped, or when the event receiver is dropped; it then closes
//! the stream politely.

use std::collections::VecDeque;
use std::future::Future;
use std::time::Duration;

use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tokio_xmpp::xmlstream::Timeouts;
use tracing::Instrument;
use xmpp_parsers::iq::Iq;
use xmpp_parsers::stanza::Stanza;

use crate::command::Command;
use crate::config::{ComponentConfig, ConfigError};
use crate::event::Event;
use crate::inbound::{Directory, Outcome};
use crate::outgoing;
use crate::stream::{Connection, Incoming, Tls};

/// Capacity of the event channel; when the gateway lags, the component stops
/// reading the stream (TCP backpressure) rather than buffering without bound.
const EVENT_CAPACITY: usize = 1024;

/// Starts the component task.
///
/// Returns the task's handle and the receiver of its events. The task runs
/// until `shutdown` is cancelled or `commands`' sender is dropped.
pub fn spawn(
    config: ComponentConfig,
    commands: mpsc::Receiver<Command>,
    shutdown: CancellationToken,
) -> Result<(JoinHandle<()>, mpsc::Receiver<Event>), ConfigError> {
    config.validate()?;
    let tls = config.tls.as_ref().map(Tls::new).transpose()?;
    let (events_tx, events_rx) = mpsc::channel(EVENT_CAPACITY);
    let span = tracing::info_span!("xmpp_component", domain = %config.domain);
    let mut driver = Driver {
        dir: {
            let mut dir = Directory::new(
                config.domain.clone(),
                config.software_name.clone(),
                config.software_version.clone(),
                config.max_stanza_bytes,
            );
            dir.set_upload_limit(config.upload_max_bytes);
            dir
        },
        config,
        tls,
        commands,
        events: events_tx,
        shutdown,
        queue: VecDeque::new(),
        received: VecDeque::new(),
        in_flight: VecDeque::new(),
        next_seq: 0,
        next_ping: 0,
        online: false,
    };
    driver.online = driver.config.start_online;
    Ok((tokio::spawn(driver.run().instrument(span)), events_rx))
}

/// Why a write failed.
enum WriteError {
    /// The XML encoder refused the stanza itself; retrying cannot help.
    Unencodable(String),
    /// The connection failed or stalled.
    Connection(String),
}

impl WriteError {
    fn into_reason(self) -> String {
        match self {
            WriteError::Unencodable(r) | WriteError::Connection(r) => r,
        }
    }
}

/// Why a session ended.
enum Stop {
    /// Shutdown requested (or the gateway went away): do not reconnect.
    Shutdown,
    /// The stream died: reconnect.
    Lost(String),
    /// [`Command::SetOnline`] `(false)`: close, and wait to be asked back.
    Standby,
}

/// An unanswered ping: `covers` is the highest outboxed sequence number
/// written before it.
struct PendingPing {
    id: String,
    sent_at: Instant,
    covers: Option<u64>,
}

struct Driver {
    config: ComponentConfig,
    tls: Option<Tls>,
    dir: Directory,
    commands: mpsc::Receiver<Command>,
    events: mpsc::Sender<Event>,
    shutdown: CancellationToken,
    /// Commands waiting for the live stream, in order.
    queue: VecDeque<Command>,
    /// Commands taken in while an event waited for room (see
    /// [`Driver::emit`]), not handled yet, in order.
    received: VecDeque<Command>,
    /// Outboxed commands written but not yet acknowledged, with their
    /// sequence numbers.
    in_flight: VecDeque<(u64, Command)>,
    next_seq: u64,
    next_ping: u64,
    /// Whether to hold a connection (see [`Command::SetOnline`]).
    online: bool,
}

/// Every ping id starts so; then comes the node tag.
const PING_PREFIX: &str = "fd-ping-";

impl Driver {
    async fn run(mut self) {
        let mut backoff = self.config.backoff();
        let timeouts = Timeouts {
            // Our own pings detect silence; the library's timeouts are only a
            // backstop, longer than ours.
            read_timeout: self.config.ping_interval + self.config.ping_timeout,
            response_timeout: self.config.ping_timeout * 2,
        };
        loop {
            if !self.online && self.wait_online().await.is_none() {
                return;
            }
            let server = self.config.server.clone();
            let domain = self.config.domain.clone();
            let secret = self.config.secret.clone();
            let tls = self.tls.clone();
            let connect = Connection::connect(
                &server,
                tls.as_ref(),
                &domain,
                &secret,
                timeouts,
                self.config.ping_timeout,
            );
            let Some(result) = self.while_offline(connect).await else {
                return;
            };
            let mut conn = match result {
                Ok(conn) => conn,
                Err(error) => {
                    let delay = backoff.next_delay(&mut rand::rng());
                    tracing::warn!(%error, ?delay, server = %self.config.server, "component connection failed");
                    if self
                        .while_offline(tokio::time::sleep(delay))
                        .await
                        .is_none()
                    {
                        return;
                    }
                    continue;
                }
            };
            if !self.online {
                close(conn).await;
                continue;
            }
            let connected_at = Instant::now();
            tracing::info!(server = %self.config.server, "component connected");
            if !self.emit(Event::Connected).await {
                close(conn).await;
                return;
            }
            match self.session(&mut conn).await {
                Stop::Shutdown => {
                    close(conn).await;
                    return;
                }
                Stop::Standby => {
                    close(conn).await;
                    self.requeue_in_flight();
                    let reason = "handed over to another node".to_owned();
                    if !self.emit(Event::Disconnected { reason }).await {
                        return;
                    }
                }
                Stop::Lost(reason) => {
                    tracing::warn!(%reason, "component stream lost");
                    drop(conn);
                    // Only a session that stayed up resets the backoff, so a
                    // server that accepts and drops at once is not hammered.
                    if connected_at.elapsed() >= self.config.ping_interval {
                        backoff.reset();
                    }
                    self.requeue_in_flight();
                    if !self.emit(Event::Disconnected { reason }).await {
                        return;
                    }
                    let delay = backoff.next_delay(&mut rand::rng());
                    if self
                        .while_offline(tokio::time::sleep(delay))
                        .await
                        .is_none()
                    {
                        return;
                    }
                }
            }
        }
    }

    /// Accepts commands until asked to go online; `None` on shutdown.
    async fn wait_online(&mut self) -> Option<()> {
        tracing::info!("component on standby");
        self.accept_received();
        while !self.online {
            tokio::select! {
                biased;
                _ = self.shutdown.cancelled() => return None,
                cmd = self.commands.recv() => self.accept(cmd?, false),
            }
        }
        Some(())
    }

    /// Drives `fut` while accepting commands; `None` on shutdown.
    async fn while_offline<F: Future>(&mut self, fut: F) -> Option<F::Output> {
        tokio::pin!(fut);
        self.accept_received();
        loop {
            tokio::select! {
                biased;
                _ = self.shutdown.cancelled() => return None,
                out = &mut fut => return Some(out),
                cmd = self.commands.recv() => match cmd {
                    Some(cmd) => self.accept(cmd, false),
                    None => return None,
                },
            }
        }
    }

    /// Takes a command from the gateway; `connected` decides whether
    /// ephemeral ones are kept.
    fn accept(&mut self, command: Command, connected: bool) {
        match command {
            Command::SetAgents(agents) => {
                let added = self.dir.set_agents(agents);
                if connected {
                    self.queue
                        .extend(added.into_iter().map(|agent| Command::Probe { agent }));
                }
            }
            Command::SetNick { address, nick } => self.dir.set_nick(address, nick),
            Command::ForgetVisitor(address) => self.dir.forget(&address),
            Command::SetUploadLimit(limit) => self.dir.set_upload_limit(limit),
            Command::SetOnline(online) => {
                self.online = online;
                if !online {
                    self.in_flight.clear();
                    self.queue.retain(|c| c.outbox_id().is_none());
                }
            }
            // Answers only matter to a live session (see `session`).
            Command::PingAnswered { .. } => {}
            ephemeral if ephemeral.is_ephemeral() && !connected => {
                tracing::debug!(command = ephemeral.name(), "dropped while disconnected");
            }
            Command::SendMessage(m) => {
                if let Some(nick) = &m.nick {
                    self.dir.set_nick(m.from.clone(), nick.clone());
                }
                self.queue.push_back(Command::SendMessage(m));
            }
            other => self.queue.push_back(other),
        }
    }

    /// Unacknowledged commands go back to the front of the queue, in order;
    /// queued ephemeral ones (chat states, upload answers) are dropped.
    fn requeue_in_flight(&mut self) {
        let mut queue: VecDeque<Command> = self.in_flight.drain(..).map(|(_, c)| c).collect();
        queue.extend(self.queue.drain(..).filter(|c| !c.is_ephemeral()));
        self.queue = queue;
    }

    /// Hands `event` to the gateway; `false` if the gateway is gone.
    ///
    /// While the gateway is behind (the channel is full) its commands are
    /// still taken in, into `received`, which the loops handle first and in
    /// order. A gateway task waiting for room in the command channel may be
    /// what the gateway's reader of events waits for (it holds the order of
    /// sends, or fills a lane the reader waits on): a component that
    /// stopped reading commands until that reader read an event was a
    /// cycle that stalled the bridge under load.
    async fn emit(&mut self, event: Event) -> bool {
        let mut commands_open = true;
        loop {
            tokio::select! {
                biased;
                permit = self.events.reserve() => {
                    return match permit {
                        Ok(permit) => {
                            permit.send(event);
                            true
                        }
                        Err(_) => false,
                    };
                }
                command = self.commands.recv(), if commands_open => match command {
                    Some(command) => self.received.push_back(command),
                    // The loops see the closed channel next and stop.
                    None => commands_open = false,
                },
            }
        }
    }

    /// Handles, outside a session, the commands `emit` took in.
    fn accept_received(&mut self) {
        while let Some(command) = self.received.pop_front() {
            self.accept(command, false);
        }
    }

    /// Handles a command during a session; the reason to stop, if any.
    async fn on_command(
        &mut self,
        command: Command,
        pings: &mut VecDeque<PendingPing>,
    ) -> Option<Stop> {
        match command {
            Command::PingAnswered { id } => {
                if pings.iter().any(|p| p.id == id) && !self.ping_answered(pings, &id).await {
                    return Some(Stop::Shutdown);
                }
            }
            command => {
                self.accept(command, true);
                if !self.online {
                    return Some(Stop::Standby);
                }
            }
        }
        None
    }

    async fn write(&self, conn: &mut Connection, stanza: Stanza) -> Result<(), String> {
        self.try_write(conn, stanza)
            .await
            .map_err(WriteError::into_reason)
    }

    async fn try_write(&self, conn: &mut Connection, stanza: Stanza) -> Result<(), WriteError> {
        match tokio::time::timeout(self.config.ping_timeout, conn.send(stanza)).await {
            Ok(Ok(())) => Ok(()),
            Ok(Err(e)) if e.kind() == std::io::ErrorKind::InvalidInput => Err(
                WriteError::Unencodable(format!("stanza cannot be encoded: {e}")),
            ),
            Ok(Err(e)) => Err(WriteError::Connection(format!("write failed: {e}"))),
            Err(_) => Err(WriteError::Connection("write timed out".to_owned())),
        }
    }

    fn ping_id(&mut self) -> String {
        self.next_ping += 1;
        format!("{PING_PREFIX}{}-{}", self.config.node_tag, self.next_ping)
    }

    fn is_own_ping(&self, id: &str) -> bool {
        is_ping_of(id, &self.config.node_tag)
    }

    async fn send_ping(
        &mut self,
        conn: &mut Connection,
        pings: &mut VecDeque<PendingPing>,
        covers: Option<u64>,
    ) -> Result<(), String> {
        let id = self.ping_id();
        let iq = outgoing::ping(self.dir.domain(), &self.config.ping_target(), id.clone());
        self.write(conn, iq.into()).await?;
        pings.push_back(PendingPing {
            id,
            sent_at: Instant::now(),
            covers,
        });
        Ok(())
    }

    async fn session(&mut self, conn: &mut Connection) -> Stop {
        let mut pings: VecDeque<PendingPing> = VecDeque::new();
        let mut covered: Option<u64> = None;
        let mut last_rx = Instant::now();
        let probes: Vec<Stanza> = self
            .dir
            .agents()
            .map(|agent| {
                outgoing::presence_to(
                    self.dir.domain(),
                    xmpp_parsers::presence::Type::Probe,
                    agent,
                )
                .into()
            })
            .collect();
        for probe in probes {
            if let Err(reason) = self.write(conn, probe).await {
                return Stop::Lost(reason);
            }
        }
        loop {
            while let Some(command) = self.received.pop_front() {
                if let Some(stop) = self.on_command(command, &mut pings).await {
                    return stop;
                }
            }
            while let Some(command) = self.queue.pop_front() {
                let Some(stanza) = outgoing::command_stanza(self.dir.domain(), &command) else {
                    continue;
                };
                match self.try_write(conn, stanza).await {
                    Ok(()) => {}
                    Err(WriteError::Unencodable(reason)) => {
                        // Text is cleaned in `outgoing`, so this should not
                        // happen; retrying it would fail forever. The
                        // stream may hold half a stanza: reconnect.
                        tracing::error!(
                            command = command.name(),
                            outbox_id = ?command.outbox_id(),
                            %reason,
                            "dropping a command that cannot be encoded"
                        );
                        return Stop::Lost(reason);
                    }
                    Err(WriteError::Connection(reason)) => {
                        self.queue.push_front(command);
                        return Stop::Lost(reason);
                    }
                }
                if command.outbox_id().is_some() {
                    self.in_flight.push_back((self.next_seq, command));
                    self.next_seq += 1;
                }
            }
            // One acknowledgement ping in flight at a time: under load, one
            // ping then covers every stanza written while it was out.
            let last_written = self.in_flight.back().map(|(seq, _)| *seq);
            let barrier_out = pings.iter().any(|p| p.covers.is_some());
            if last_written.is_some() && last_written > covered && !barrier_out {
                if let Err(reason) = self.send_ping(conn, &mut pings, last_written).await {
                    return Stop::Lost(reason);
                }
                covered = last_written;
            }
            let deadline = match pings.front() {
                Some(ping) => ping.sent_at + self.config.ping_timeout,
                None => last_rx + self.config.ping_interval,
            };
            tokio::select! {
                biased;
                _ = self.shutdown.cancelled() => return Stop::Shutdown,
                incoming = conn.next() => {
                    if !matches!(incoming, Incoming::Idle) {
                        last_rx = Instant::now();
                    }
                    if let Err(stop) = self.on_incoming(conn, incoming, &mut pings).await {
                        return stop;
                    }
                }
                cmd = self.commands.recv() => match cmd {
                    Some(cmd) => {
                        if let Some(stop) = self.on_command(cmd, &mut pings).await {
                            return stop;
                        }
                    }
                    None => return Stop::Shutdown,
                },
                _ = tokio::time::sleep_until(deadline) => {
                    if let Some(ping) = pings.front() {
                        if last_rx <= ping.sent_at {
                            return Stop::Lost(format!(
                                "no answer to ping {} within {:?}",
                                ping.id, self.config.ping_timeout
                            ));
                        }
                        // The server spoke since, so the stream lives; the
                        // answer went astray (another node's connection,
                        // not handed back). Ping again for what it covered.
                        tracing::debug!(ping = %ping.id, "ping answer astray; the stream is alive");
                        pings.clear();
                        covered = None;
                        continue;
                    }
                    if let Err(reason) = self.send_ping(conn, &mut pings, None).await {
                        return Stop::Lost(reason);
                    }
                }
            }
        }
    }

    async fn on_incoming(
        &mut self,
        conn: &mut Connection,
        incoming: Incoming,
        pings: &mut VecDeque<PendingPing>,
    ) -> Result<(), Stop> {
        match incoming {
            Incoming::Stanza(stanza, size) => {
                if let Stanza::Iq(Iq::Result { id, .. } | Iq::Error { id, .. }) = &*stanza {
                    if pings.iter().any(|p| &p.id == id) {
                        let id = id.clone();
                        if !self.ping_answered(pings, &id).await {
                            return Err(Stop::Shutdown);
                        }
                        return Ok(());
                    }
                    if id.starts_with(PING_PREFIX) {
                        if !self.is_own_ping(id)
                            && !self.emit(Event::StrayPong { id: id.clone() }).await
                        {
                            return Err(Stop::Shutdown);
                        }
                        return Ok(());
                    }
                }
                let outcomes = self.dir.handle(*stanza, size);
                self.apply(conn, outcomes).await
            }
            Incoming::Invalid {
                kind,
                header,
                error,
            } => {
                let outcomes = self.dir.handle_invalid(kind, &header, &error);
                self.apply(conn, outcomes).await
            }
            Incoming::Ignored(what) => {
                tracing::debug!(%what, "ignored stream element");
                Ok(())
            }
            Incoming::Idle => {
                tracing::trace!("stream idle");
                Ok(())
            }
            Incoming::Closed(reason) => Err(Stop::Lost(reason)),
        }
    }

    /// A ping was answered: it and every older ping are done, and every
    /// outboxed command they cover is acknowledged. `false` if the gateway
    /// is gone.
    async fn ping_answered(&mut self, pings: &mut VecDeque<PendingPing>, id: &str) -> bool {
        let mut acked: Option<u64> = None;
        while let Some(ping) = pings.pop_front() {
            acked = acked.max(ping.covers);
            if ping.id == id {
                break;
            }
        }
        let Some(acked) = acked else {
            return true;
        };
        while self.in_flight.front().is_some_and(|(seq, _)| *seq <= acked) {
            let Some((_, command)) = self.in_flight.pop_front() else {
                break;
            };
            if let Some(outbox_id) = command.outbox_id() {
                if !self.emit(Event::Sent { outbox_id }).await {
                    return false;
                }
            }
        }
        true
    }

    async fn apply(&mut self, conn: &mut Connection, outcomes: Vec<Outcome>) -> Result<(), Stop> {
        for outcome in outcomes {
            match outcome {
                Outcome::Emit(event) => {
                    if !self.emit(event).await {
                        return Err(Stop::Shutdown);
                    }
                }
                Outcome::Reply(stanza) => self.write(conn, *stanza).await.map_err(Stop::Lost)?,
            }
        }
        Ok(())
    }
}

/// Whether `id` is a ping id of the component tagged `tag` (answered or
/// not): `fd-ping-TAG-N`.
fn is_ping_of(id: &str, tag: &str) -> bool {
    id.strip_prefix(PING_PREFIX)
        .and_then(|rest| rest.strip_prefix(tag))
        .and_then(|rest| rest.strip_prefix('-'))
        .is_some_and(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()))
}

/// Closes the stream politely, without waiting long for a hung server.
async fn close(conn: Connection) {
    match tokio::time::timeout(Duration::from_secs(2), conn.close()).await {
        Ok(Ok(())) => tracing::info!("component stream closed"),
        Ok(Err(error)) => tracing::debug!(%error, "closing the component stream failed"),
        Err(_) => tracing::debug!("closing the component stream timed out"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ping_ids_tell_this_node_from_the_others() {
        assert!(is_ping_of("fd-ping-abc-12", "abc"));
        assert!(
            !is_ping_of("fd-ping-abcd-12", "abc"),
            "a longer tag is another node"
        );
        assert!(!is_ping_of("fd-ping-ab-12", "abc"));
        assert!(!is_ping_of("fd-ping-abc-", "abc"));
        assert!(!is_ping_of("fd-ping-abc-1x", "abc"));
        assert!(!is_ping_of("q1", "abc"));
    }
}
