//! What the fault tests share (`tests/tests/it/faults.rs` and
//! `durability.rs`): a `frontdesk serve` process bridged to a real XMPP
//! server and a real Kamailio, the current address of a gateway that is
//! being killed and restarted, visitors and agents that send numbered
//! messages and retry each until it is acknowledged (as the widget does
//! with its `client_id`, and a client re-sending the same stanza or SIP
//! request), a widget-like follower of a conversation's events that
//! reconnects with the last seq it saw, and the check that every
//! acknowledged message arrived exactly once and in order.
//!
//! Messages are `"<tag> <n>"`; the check reads only messages with its
//! tag, so offer cards, notices and command replies are ignored.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use frontdesk::config::Config;
use serde_json::{json, Value};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::config::test_config;
use crate::database::TestDb;
use crate::gateway::GatewayProcess;
use crate::kamailio::PBX_DOMAIN;
use crate::sip::SipPbx;
use crate::softphone::{OutgoingId, Softphone};
use crate::visitor::{Session, StreamItem, Visitor};
use crate::xmpp_server::{XmppAgent, XmppServer, COMPONENT_DOMAIN, HOST};

/// How long a fault test waits for anything that should happen.
pub const PATIENCE: Duration = Duration::from_secs(120);

/// The channel whose queue (601) holds the SIP agent 103.
pub const SIP_CHANNEL: &str = "sip";

/// The test configuration bridged to `xmpp` (agents 101 and 102 are
/// `101@localhost` and `102@localhost`, in the live channel's queue 600)
/// and to `sip` (agent 103 is `sip:103@pbx.localhost`, alone in queue 601
/// behind the [`SIP_CHANNEL`] channel), as TOML for a gateway process.
pub fn bridged_config(db: &TestDb, xmpp: Option<&XmppServer>, sip: Option<&SipPbx>) -> String {
    bridged_config_with(db, xmpp, sip, |_| {})
}

/// [`bridged_config`], changed by `adjust` before it is written.
pub fn bridged_config_with(
    db: &TestDb,
    xmpp: Option<&XmppServer>,
    sip: Option<&SipPbx>,
    adjust: impl FnOnce(&mut Config),
) -> String {
    let mut config = test_config(db);
    if xmpp.is_some() {
        config.agents[0].xmpp = Some(jid("101"));
        config.agents[1].xmpp = Some(jid("102"));
    }
    if let Some(pbx) = sip {
        config.agents[2].sip = Some(format!("sip:103@{PBX_DOMAIN}").parse().expect("a SIP URI"));
        let mut channel = config.channels[0].clone();
        channel.key = SIP_CHANNEL.to_owned().try_into().expect("a channel key");
        channel.queue = Some("601".parse().expect("a queue extension"));
        config.channels.push(channel);
        config.sip = Some(pbx.bridge_config());
    }
    adjust(&mut config);
    let mut text = toml::to_string(&config).expect("the configuration serialises");
    // Secrets serialise as "[redacted]": the section is written by hand.
    if let Some(server) = xmpp {
        text.push_str(&format!(
            "\n[xmpp]\ndomain = \"{COMPONENT_DOMAIN}\"\nserver = \"{}\"\nsecret = \"{}\"\n\
             ping_interval_secs = 2\nreconnect_max_secs = 1\n",
            server.component_addr(),
            server.secret
        ));
    }
    text
}

fn jid(user: &str) -> frontdesk_xmpp::BareJid {
    frontdesk_xmpp::BareJid::new(&format!("{user}@{HOST}")).expect("a JID")
}

/// Starts (or restarts, on the same database and data) a gateway process
/// with [`bridged_config`].
pub async fn spawn_bridged(
    db: &TestDb,
    xmpp: Option<&XmppServer>,
    sip: Option<&SipPbx>,
) -> anyhow::Result<GatewayProcess> {
    spawn_config(db, &bridged_config(db, xmpp, sip)).await
}

/// Starts (or restarts) a gateway process on `config`, written next to
/// `db`'s data.
pub async fn spawn_config(db: &TestDb, config: &str) -> anyhow::Result<GatewayProcess> {
    let path = db.file("frontdesk-bridged.toml");
    std::fs::write(&path, config)?;
    GatewayProcess::spawn(&path).await
}

/// The base URL of the gateway now running, for clients that outlive
/// its restarts (each process listens on a new port).
#[derive(Clone)]
pub struct GatewayUrl(Arc<Mutex<String>>);

impl GatewayUrl {
    pub fn new(url: &str) -> GatewayUrl {
        GatewayUrl(Arc::new(Mutex::new(url.to_owned())))
    }

    pub fn get(&self) -> String {
        self.0.lock().expect("url lock").clone()
    }

    pub fn set(&self, url: &str) {
        *self.0.lock().expect("url lock") = url.to_owned();
    }

    pub fn visitor(&self) -> Visitor {
        Visitor::new(&self.get())
    }
}

/// The text of message `n` with `tag`.
pub fn numbered(tag: &str, n: usize) -> String {
    format!("{tag} {n}")
}

/// `n` if `text` is message `n` with `tag`.
pub fn number_of(tag: &str, text: &str) -> Option<usize> {
    text.strip_prefix(tag)?.strip_prefix(' ')?.parse().ok()
}

/// A counter of acknowledged messages and a pause switch, shared between
/// a sender and the test that kills things around it.
#[derive(Clone, Default)]
pub struct Progress {
    acked: Arc<AtomicUsize>,
    held: Arc<AtomicBool>,
}

impl Progress {
    pub fn acked(&self) -> usize {
        self.acked.load(Ordering::SeqCst)
    }

    /// Counts one more acknowledged message.
    pub fn ack(&self) {
        self.acked.fetch_add(1, Ordering::SeqCst);
    }

    /// While held, the sender waits before its next message.
    pub fn hold(&self, held: bool) {
        self.held.store(held, Ordering::SeqCst);
    }

    async fn wait_while_held(&self) {
        while self.held.load(Ordering::SeqCst) {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    /// Waits until at least `count` messages were acknowledged.
    pub async fn wait_for(&self, count: usize, what: &str) {
        let deadline = tokio::time::Instant::now() + PATIENCE;
        while self.acked() < count {
            assert!(
                tokio::time::Instant::now() < deadline,
                "{what}: only {} of {count} messages acknowledged",
                self.acked()
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }
}

/// The sum of several senders' acknowledged messages.
pub fn total_acked(progress: &[&Progress]) -> usize {
    progress.iter().map(|p| p.acked()).sum()
}

/// Waits until several senders together had at least `count` messages
/// acknowledged; returns how many they had.
pub async fn wait_for_total(progress: &[&Progress], count: usize, what: &str) -> usize {
    let deadline = tokio::time::Instant::now() + PATIENCE;
    loop {
        let acked = total_acked(progress);
        if acked >= count {
            return acked;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "{what}: only {acked} of {count} messages acknowledged"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

/// A visitor sends messages `0..count` with `tag`, one at a time, each
/// retried with the same `client_id` until the gateway acknowledges it
/// (201, or 200 for a retry of a stored one), through whichever gateway
/// runs. Returns the acknowledged seq of each, in order. Only a 201, 200,
/// 503 or a failed connection is expected; anything else fails the test.
pub fn visitor_sends(
    url: GatewayUrl,
    session: Session,
    tag: &str,
    count: usize,
    progress: Progress,
) -> JoinHandle<Vec<i64>> {
    let tag = tag.to_owned();
    tokio::spawn(async move {
        let mut seqs = Vec::with_capacity(count);
        for n in 0..count {
            progress.wait_while_held().await;
            let client_id = format!("{tag}-{n}");
            let text = numbered(&tag, n);
            let deadline = tokio::time::Instant::now() + PATIENCE;
            let seq = loop {
                match url.visitor().say(&session, &client_id, &text).await {
                    Ok(reply) if reply.status == 201 || reply.status == 200 => {
                        break reply.body["seq"].as_i64().expect("a seq");
                    }
                    Ok(reply) if reply.status == 503 => {}
                    Ok(reply) => panic!("message {n} of {tag}: {} {}", reply.status, reply.body),
                    Err(_) => {}
                }
                assert!(
                    tokio::time::Instant::now() < deadline,
                    "message {n} of {tag} never acknowledged"
                );
                tokio::time::sleep(Duration::from_millis(50)).await;
            };
            seqs.push(seq);
            progress.ack();
        }
        seqs
    })
}

/// What a [`Follower`] saw.
#[derive(Default)]
struct Followed {
    last_seq: i64,
    events: Vec<Value>,
    reconnects: usize,
    /// Seqs that were not the last one plus one (a gap or a duplicate).
    out_of_line: Vec<(i64, i64)>,
}

/// Follows a conversation's event stream as the widget does: from seq 0,
/// and after every lost connection again from the last seq seen, through
/// whichever gateway runs.
pub struct Follower {
    state: Arc<Mutex<Followed>>,
    stop: CancellationToken,
    task: JoinHandle<()>,
}

impl Follower {
    pub fn start(url: GatewayUrl, session: Session) -> Follower {
        let state: Arc<Mutex<Followed>> = Arc::default();
        let stop = CancellationToken::new();
        let task = tokio::spawn({
            let (state, stop) = (state.clone(), stop.clone());
            async move {
                loop {
                    let since = state.lock().expect("follower lock").last_seq;
                    let stream = url.visitor().events(&session, since).await;
                    if let Ok(mut stream) = stream {
                        loop {
                            let item = tokio::select! {
                                _ = stop.cancelled() => return,
                                item = stream.next_item(Duration::from_secs(3600)) => item,
                            };
                            match item {
                                Ok(StreamItem::Event(event)) => {
                                    let mut followed = state.lock().expect("follower lock");
                                    if let Some(seq) = event["seq"].as_i64() {
                                        if seq != followed.last_seq + 1 {
                                            let expected = followed.last_seq + 1;
                                            followed.out_of_line.push((expected, seq));
                                        }
                                        followed.last_seq = followed.last_seq.max(seq);
                                        followed.events.push(event);
                                    }
                                }
                                Ok(StreamItem::Closed(_)) | Err(_) => break,
                            }
                        }
                        state.lock().expect("follower lock").reconnects += 1;
                    }
                    tokio::select! {
                        _ = stop.cancelled() => return,
                        _ = tokio::time::sleep(Duration::from_millis(100)) => {}
                    }
                }
            }
        });
        Follower { state, stop, task }
    }

    /// Waits until the stream reached `seq`, then stops; the durable
    /// events seen (each once, in seq order, or the test fails).
    pub async fn finish_at(self, seq: i64) -> FollowedEvents {
        let deadline = tokio::time::Instant::now() + PATIENCE;
        loop {
            let last = self.state.lock().expect("follower lock").last_seq;
            if last >= seq {
                break;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "the visitor's event stream stopped at seq {last} of {seq}"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        self.stop.cancel();
        let _ = self.task.await;
        let followed = std::mem::take(&mut *self.state.lock().expect("follower lock"));
        assert!(
            followed.out_of_line.is_empty(),
            "the event stream skipped or repeated events (expected, got): {:?}",
            followed.out_of_line
        );
        FollowedEvents {
            events: followed.events,
            reconnects: followed.reconnects,
        }
    }
}

/// The durable events a visitor's widget received.
pub struct FollowedEvents {
    pub events: Vec<Value>,
    pub reconnects: usize,
}

impl FollowedEvents {
    /// The messages from `sender` (`visitor`, `agent`), as (seq, body).
    pub fn messages_from(&self, sender: &str) -> Vec<(String, String)> {
        self.events
            .iter()
            .filter(|e| e["type"] == "message" && e["message"]["sender"] == sender)
            .map(|e| {
                (
                    e["seq"].to_string(),
                    e["message"]["body"].as_str().unwrap_or_default().to_owned(),
                )
            })
            .collect()
    }
}

/// The last seq of a conversation now.
pub async fn last_seq(url: &GatewayUrl, session: &Session) -> i64 {
    let view = url
        .visitor()
        .conversation(session)
        .await
        .expect("the gateway answers");
    view.body["last_seq"].as_i64().expect("a last_seq")
}

/// Waits until the conversation is active (an agent took it).
pub async fn wait_until_active(visitor: &Visitor, session: &Session) {
    let deadline = tokio::time::Instant::now() + PATIENCE;
    loop {
        let view = visitor
            .conversation(session)
            .await
            .expect("the gateway answers");
        if view.body["state"] == "active" {
            return;
        }
        assert!(tokio::time::Instant::now() < deadline, "{}", view.body);
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Polls `/metrics` until the gateway says its XMPP component is (or is
/// not) connected.
pub async fn wait_for_xmpp_connected(url: &str, connected: bool) {
    let line = format!("frontdesk_xmpp_connected {}", u8::from(connected));
    let deadline = tokio::time::Instant::now() + PATIENCE;
    loop {
        let metrics = match reqwest::get(format!("{url}/metrics")).await {
            Ok(response) => response.text().await.unwrap_or_default(),
            Err(_) => String::new(),
        };
        if metrics.lines().any(|l| l == line) {
            return;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the gateway never reported `{line}`: {:?}",
            metrics
                .lines()
                .filter(|l| l.contains("xmpp"))
                .collect::<Vec<_>>()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// What one direction of an exchange came to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Tally {
    /// Acknowledged messages, every one received once.
    pub messages: usize,
    /// Extra copies the receiver got under an id it had already seen
    /// (re-sent stanzas or requests, which clients deduplicate on).
    pub copies: usize,
}

/// Checks one direction from the receiving end: every message of
/// `0..sent` with `tag` (each acknowledged to its sender) is among
/// `received` (`(id, text)` in arrival order), under one id only; first
/// arrivals are in sending order, and nothing else with the tag arrived.
/// With `copies_allowed` a message may arrive again under the same id (an
/// agent's client deduplicates on stanza ids and Call-IDs); without, every
/// message is there exactly once (a conversation's transcript).
pub fn check_exactly_once(
    what: &str,
    tag: &str,
    sent: usize,
    received: &[(String, String)],
    copies_allowed: bool,
) -> Tally {
    let mut id_of: HashMap<usize, String> = HashMap::new();
    let mut seen_ids: HashSet<String> = HashSet::new();
    let mut order: Vec<usize> = Vec::new();
    let mut copies = 0;
    for (id, text) in received {
        let Some(n) = number_of(tag, text) else {
            continue;
        };
        assert!(n < sent, "{what}: message {n} arrived but was never sent");
        match id_of.get(&n) {
            None => {
                assert!(
                    seen_ids.insert(id.clone()),
                    "{what}: id {id} carried two messages"
                );
                id_of.insert(n, id.clone());
                order.push(n);
            }
            Some(first) => {
                assert_eq!(
                    first, id,
                    "{what}: message {n} arrived twice, as two different messages"
                );
                assert!(copies_allowed, "{what}: message {n} arrived twice");
                copies += 1;
            }
        }
    }
    let missing: Vec<usize> = (0..sent).filter(|n| !id_of.contains_key(n)).collect();
    assert!(
        missing.is_empty(),
        "{what}: {} acknowledged messages lost, first {:?}",
        missing.len(),
        &missing[..missing.len().min(10)]
    );
    let expected: Vec<usize> = (0..sent).collect();
    if order != expected {
        let at = order
            .iter()
            .zip(&expected)
            .position(|(a, b)| a != b)
            .unwrap_or(0);
        panic!(
            "{what}: out of order from position {at}: {:?}",
            &order[at..(at + 10).min(order.len())]
        );
    }
    Tally {
        messages: sent,
        copies,
    }
}

/// How long an XMPP agent waits for the receipt of its message before
/// sending it again.
const RECEIPT_WAIT: Duration = Duration::from_secs(4);

/// What an XMPP agent's run came to.
pub struct XmppAgentRun {
    pub agent: XmppAgent,
    /// Messages from the visitor address, `(stanza id, body)`, in order.
    pub received: Vec<(String, String)>,
    /// Messages it sent and got a receipt for.
    pub acked: usize,
    /// Sends of a message again (no receipt in time, or an error back).
    pub resent: usize,
}

/// An XMPP agent in a chat with the visitor at `address`: sends messages
/// `0..count` with `tag`, one at a time, each with a receipt request and
/// sent again under the same stanza id until the gateway's receipt comes
/// (an error reply means the gateway was away: try again shortly); and
/// records what arrives from the visitor. Ends once its messages are
/// acknowledged and messages `0..expected.1` with tag `expected.0` have
/// arrived, or [`PATIENCE`] after its own messages were done (the check
/// then says what is missing).
pub fn xmpp_agent_exchange(
    mut agent: XmppAgent,
    address: String,
    tag: &str,
    count: usize,
    expected: (&str, usize),
    progress: Progress,
) -> JoinHandle<XmppAgentRun> {
    let tag = tag.to_owned();
    let (expected_tag, expected_count) = (expected.0.to_owned(), expected.1);
    tokio::spawn(async move {
        let mut received = Vec::new();
        let mut arrived: HashSet<usize> = HashSet::new();
        let mut next = 0;
        let mut resent = 0;
        // When to send the next message (again), unless one is in flight.
        let mut due = tokio::time::Instant::now();
        let mut in_flight = false;
        let mut deadline = tokio::time::Instant::now() + PATIENCE * 3;
        loop {
            let now = tokio::time::Instant::now();
            if next < count && !in_flight && due <= now {
                progress.wait_while_held().await;
                let send = json!({
                    "cmd": "send", "to": address, "body": numbered(&tag, next),
                    "id": format!("{tag}-{next}"), "request_receipt": true,
                });
                agent.command(send).await.expect("the agent takes commands");
                in_flight = true;
                due = tokio::time::Instant::now() + RECEIPT_WAIT;
            }
            if next >= count && arrived.len() >= expected_count {
                break;
            }
            if now > deadline {
                assert!(next >= count, "{tag}: stuck at message {next} of {count}");
                break;
            }
            let Some(event) = agent
                .next_event(Duration::from_millis(50))
                .await
                .expect("the agent runs")
            else {
                if in_flight && due <= tokio::time::Instant::now() {
                    // No receipt in time: the same stanza again.
                    in_flight = false;
                    resent += 1;
                }
                continue;
            };
            if event["event"] != "message" {
                continue;
            }
            let current = format!("{tag}-{next}");
            let from_visitor = event["from"]
                .as_str()
                .is_some_and(|f| f.starts_with(&address));
            if in_flight && event["received"] == current.as_str() {
                in_flight = false;
                next += 1;
                due = tokio::time::Instant::now();
                progress.ack();
                if next == count {
                    deadline = tokio::time::Instant::now() + PATIENCE;
                }
            } else if in_flight
                && event["id"] == current.as_str()
                && event["error_condition"].is_string()
            {
                in_flight = false;
                resent += 1;
                due = tokio::time::Instant::now() + Duration::from_millis(300);
            } else if from_visitor && event["error_condition"].is_null() {
                if let Some(body) = event["body"].as_str() {
                    if let Some(n) = number_of(&expected_tag, body) {
                        arrived.insert(n);
                    }
                    let id = event["id"].as_str().unwrap_or_default().to_owned();
                    received.push((id, body.to_owned()));
                }
            }
        }
        XmppAgentRun {
            agent,
            received,
            acked: next,
            resent,
        }
    })
}

/// A SIP agent writes messages `0..count` with `tag` to the visitor URI
/// `to`, one at a time, each sent again as the same request (Call-ID,
/// CSeq, From tag) until it gets a 200. Returns how many attempts failed.
pub fn sip_agent_sends(
    phone: Arc<Softphone>,
    to: String,
    tag: &str,
    count: usize,
    progress: Progress,
) -> JoinHandle<usize> {
    let tag = tag.to_owned();
    tokio::spawn(async move {
        let mut failed = 0;
        for n in 0..count {
            progress.wait_while_held().await;
            let id = OutgoingId::fresh();
            let text = numbered(&tag, n);
            let deadline = tokio::time::Instant::now() + PATIENCE;
            let mut statuses = Vec::new();
            loop {
                let status = phone.send(&to, &text, &id, Duration::from_secs(10)).await;
                if status == Some(200) {
                    break;
                }
                failed += 1;
                statuses.push(status);
                assert!(
                    tokio::time::Instant::now() < deadline,
                    "{tag}: message {n} never accepted: {statuses:?}"
                );
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
            progress.ack();
        }
        failed
    })
}

/// Waits until `phone` received messages `0..count` with `tag` from
/// `from`, or [`PATIENCE`] passed (the check then says what is missing).
pub async fn sip_wait_for_all(phone: &Softphone, from: &str, tag: &str, count: usize) {
    let deadline = tokio::time::Instant::now() + PATIENCE;
    while tokio::time::Instant::now() < deadline {
        let arrived: HashSet<usize> = sip_received_from(phone, from)
            .iter()
            .filter_map(|(_, body)| number_of(tag, body))
            .collect();
        if arrived.len() >= count {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// What a softphone received from `from` (a visitor URI), as `(Call-ID,
/// body)`.
pub fn sip_received_from(phone: &Softphone, from: &str) -> Vec<(String, String)> {
    phone
        .received()
        .into_iter()
        .filter(|m| m.from == from && m.content_type.starts_with("text/plain"))
        .map(|m| (m.call_id, m.body))
        .collect()
}

/// A small deterministic generator for kill moments, seeded from
/// `FRONTDESK_FAULT_SEED` or at random (the seed is printed, so a failing
/// run can be replayed).
pub struct Rng(u64);

impl Rng {
    pub fn from_env() -> Rng {
        let seed = std::env::var("FRONTDESK_FAULT_SEED")
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or_else(|| uuid::Uuid::new_v4().as_u64_pair().0);
        eprintln!("fault seed: FRONTDESK_FAULT_SEED={seed}");
        Rng(seed.max(1))
    }

    /// A number in `0..n` (xorshift64*).
    pub fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D) % n.max(1)
    }
}

/// The number a `FRONTDESK_FAULT_…` variable holds, or `default`.
pub fn env_number(name: &str, default: usize) -> usize {
    match std::env::var(name) {
        Ok(value) => value
            .parse()
            .unwrap_or_else(|_| panic!("{name}={value:?} is not a number")),
        Err(_) => default,
    }
}
