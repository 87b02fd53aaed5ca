//! Chat traffic both ways while a fault test breaks things, and the check
//! that nothing was lost, doubled or reordered.
//!
//! Each visitor starts a conversation through one base URL (HAProxy in
//! front of the nodes), follows it on the widget's WebSocket, reconnecting
//! from the last `seq` it saw whenever the socket drops (as the widget
//! does), and posts paced messages, each retried under its client id until
//! the gateway acknowledges it (a retry of an acknowledged message is
//! stored once). Echo agents ([`echo_agents`]: real XMPP clients in the
//! agent script's reliable echo mode) answer every message and re-send
//! each answer until the gateway's receipt says it is stored. Every agent
//! client's incoming visitor messages are counted by body.
//!
//! [`Traffic::finish`] waits until every visitor saw the echo of each of
//! its messages (or a deadline passed), and [`Report::problems`] lists
//! every broken promise: a WebSocket event seen twice, out of order or
//! missed (against the stored conversation, read over REST at the end), an
//! acknowledged visitor message not stored once, not delivered to an agent
//! exactly once (a copy under the same stanza id, which clients drop, is
//! counted apart: [`Report::resent_copies`]), or without its echo. What visitors saw fail on the way
//! (statuses, transport errors) is in [`Report::errors`], for the test to
//! judge: a killed node may fail a request that a retry then carries; a
//! rolling restart should fail none.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::visitor::{Reply, Session, StreamItem, Visitor};
use crate::xmpp_server::XmppAgent;

/// What the echo agents put before the body they answer.
pub const ECHO_PREFIX: &str = "echo: ";
/// Longest a visitor keeps retrying one request.
const RETRY_FOR: Duration = Duration::from_secs(90);
/// Pause between two tries of a request, or two WebSocket connects.
const RETRY_PAUSE: Duration = Duration::from_millis(200);

/// The traffic's shape.
#[derive(Debug, Clone)]
pub struct TrafficOptions {
    pub conversations: usize,
    /// Messages each visitor sends.
    pub messages: usize,
    /// Time between two messages of one visitor.
    pub interval: Duration,
    /// Time between two visitors' starts (so some chats are still being
    /// offered while the fault happens).
    pub stagger: Duration,
    pub channel: String,
    pub origin: String,
}

/// Visitor messages (stanza ids `m-…`) the agent clients received, all
/// clients together: body → `agent conversation-address stanza-id` of each
/// copy (and the echoes sent again, see [`Report::at_agents`]).
type AtAgents = Arc<Mutex<HashMap<String, Vec<String>>>>;

/// Puts `agents` in reliable echo mode and counts, from then on, every
/// visitor message they receive; the clients live as long as the returned
/// [`EchoAgents`].
pub async fn echo_agents(agents: Vec<XmppAgent>) -> anyhow::Result<EchoAgents> {
    let received = AtAgents::default();
    let stop = CancellationToken::new();
    let mut tasks = Vec::new();
    for mut agent in agents {
        agent
            .command(
                json!({"cmd": "echo", "enabled": true, "prefix": ECHO_PREFIX, "reliable": true}),
            )
            .await?;
        let (received, stop) = (received.clone(), stop.clone());
        tasks.push(tokio::spawn(async move {
            loop {
                let event = tokio::select! {
                    _ = stop.cancelled() => break,
                    event = agent.next_event(Duration::from_secs(3600)) => event,
                };
                match event {
                    Ok(Some(event)) if event["event"] == "resent" => {
                        if let (Some(to), Some(id)) = (event["to"].as_str(), event["id"].as_str()) {
                            received
                                .lock()
                                .expect("agent counts")
                                .entry(format!("resent {to} {id}"))
                                .or_default()
                                .push(agent.jid.clone());
                        }
                    }
                    Ok(Some(event)) => count_visitor_message(&received, &agent.jid, &event),
                    Ok(None) => {}
                    Err(_) => break,
                }
            }
            agent
        }));
    }
    Ok(EchoAgents {
        received,
        stop,
        tasks,
    })
}

fn count_visitor_message(received: &AtAgents, agent: &str, event: &Value) {
    let id = event["id"].as_str().filter(|id| id.starts_with("m-"));
    let from = event["from"]
        .as_str()
        .map(|f| f.split('/').next().unwrap_or(f));
    if let (true, Some(id), Some(from), Some(body)) = (
        event["event"] == "message",
        id,
        from,
        event["body"].as_str(),
    ) {
        received
            .lock()
            .expect("agent counts")
            .entry(body.to_owned())
            .or_default()
            .push(format!("{agent} {from} {id}"));
    }
}

/// The echo agents' clients and what they received.
pub struct EchoAgents {
    received: AtAgents,
    stop: CancellationToken,
    tasks: Vec<JoinHandle<XmppAgent>>,
}

impl EchoAgents {
    /// Stops counting and hands the clients back.
    pub async fn stop(self) -> Vec<XmppAgent> {
        self.stop.cancel();
        let mut agents = Vec::new();
        for task in self.tasks {
            if let Ok(agent) = task.await {
                agents.push(agent);
            }
        }
        agents
    }
}

/// Traffic under way.
pub struct Traffic {
    visitors: Vec<JoinHandle<VisitorLog>>,
    started: Instant,
}

/// Everything one visitor did and saw.
#[derive(Debug, Default)]
pub struct VisitorLog {
    pub n: usize,
    pub session: Option<Session>,
    /// Bodies the gateway acknowledged, in sending order.
    pub acknowledged: Vec<String>,
    /// `(seq, event)` of every WebSocket event with a `seq`, as seen.
    pub events: Vec<(i64, Value)>,
    /// Failed tries, as `what: status/error`.
    pub errors: Vec<String>,
    /// WebSocket connections after the first.
    pub reconnects: usize,
    /// Close codes of the sockets that dropped.
    pub closes: Vec<Option<u16>>,
    /// Why the visitor stopped short, if it did.
    pub gave_up: Option<String>,
    /// The stored conversation at the end (`sender`, `body`, `seq`).
    pub stored: Vec<(String, String, i64)>,
    /// When it saw its last echo (or gave up).
    pub finished: Option<Instant>,
}

impl Traffic {
    /// Starts the visitors against `base_url`.
    pub fn start(base_url: &str, options: &TrafficOptions) -> Traffic {
        let visitors = (0..options.conversations)
            .map(|n| {
                let visitor = Visitor::new(base_url).with_origin(&options.origin);
                let options = options.clone();
                tokio::spawn(async move {
                    tokio::time::sleep(options.stagger * n as u32).await;
                    one_visitor(visitor, n, options).await
                })
            })
            .collect();
        Traffic {
            visitors,
            started: Instant::now(),
        }
    }

    /// How long the traffic has run.
    pub fn elapsed(&self) -> Duration {
        self.started.elapsed()
    }

    /// Waits for every visitor, then takes the agents' counts.
    pub async fn finish(self, agents: EchoAgents) -> Report {
        let mut visitors = Vec::new();
        for task in self.visitors {
            visitors.push(task.await.unwrap_or_else(|e| VisitorLog {
                gave_up: Some(format!("visitor task failed: {e}")),
                ..VisitorLog::default()
            }));
        }
        // Messages reach an agent before their echo comes back, so every
        // delivery is counted by now.
        let at_agents = agents.received.lock().expect("agent counts").clone();
        let took = self.started.elapsed();
        agents.stop().await;
        Report {
            visitors,
            at_agents,
            took,
            started: self.started,
        }
    }
}

/// What the traffic ended with.
pub struct Report {
    pub visitors: Vec<VisitorLog>,
    /// Visitor message body → each copy an agent client got (`agent
    /// conversation-address stanza-id`); `resent ADDRESS ID` → each time an
    /// agent sent its echo again.
    pub at_agents: HashMap<String, Vec<String>>,
    pub took: Duration,
    started: Instant,
}

impl Report {
    /// Every failed try any visitor saw.
    pub fn errors(&self) -> Vec<String> {
        self.visitors
            .iter()
            .flat_map(|v| {
                v.errors
                    .iter()
                    .map(move |e| format!("visitor {}: {e}", v.n))
            })
            .collect()
    }

    pub fn reconnects(&self) -> usize {
        self.visitors.iter().map(|v| v.reconnects).sum()
    }

    /// Visitor messages that reached an agent's client more than once
    /// under one stanza id (see [`Report::problems`]).
    pub fn resent_copies(&self) -> usize {
        self.at_agents
            .iter()
            .filter(|(body, _)| !body.starts_with("resent "))
            .map(|(_, copies)| {
                let mut distinct = copies.clone();
                distinct.sort();
                distinct.dedup();
                copies.len() - distinct.len()
            })
            .sum()
    }

    pub fn acknowledged(&self) -> usize {
        self.visitors.iter().map(|v| v.acknowledged.len()).sum()
    }

    /// A line for the test's output.
    pub fn summary(&self) -> String {
        let mut finished: Vec<Duration> = self
            .visitors
            .iter()
            .filter_map(|v| v.finished.map(|at| at - self.started))
            .collect();
        finished.sort();
        let median = finished
            .get(finished.len() / 2)
            .copied()
            .unwrap_or_default();
        format!(
            "{} conversations, {} acknowledged visitor messages in {:?} (half the visitors \
             done after {median:?}); {} failed tries, {} reconnects, {} copies re-sent to an \
             agent under the same stanza id",
            self.visitors.len(),
            self.acknowledged(),
            self.took,
            self.errors().len(),
            self.reconnects(),
            self.resent_copies()
        )
    }

    /// Every broken promise, one line each (empty when all held).
    pub fn problems(&self, messages: usize) -> Vec<String> {
        let mut problems = Vec::new();
        for v in &self.visitors {
            let conversation = v.session.as_ref().map_or("-", |s| s.id.as_str());
            let mut say = |what: String| {
                problems.push(format!(
                    "visitor {} (conversation {conversation}): {what}",
                    v.n
                ))
            };
            if let Some(why) = &v.gave_up {
                say(format!("gave up: {why}"));
            }
            if v.acknowledged.len() != messages {
                say(format!(
                    "{} of {messages} messages acknowledged",
                    v.acknowledged.len()
                ));
            }
            // The socket: every seq once, in order, none missing.
            let seen: Vec<i64> = v.events.iter().map(|(seq, _)| *seq).collect();
            if let Some(pair) = seen.windows(2).find(|w| w[1] != w[0] + 1) {
                say(format!("socket went from seq {} to {}", pair[0], pair[1]));
            }
            if seen.first().is_some_and(|first| *first != 1) {
                say(format!("socket started at seq {:?}", seen.first()));
            }
            let stored_seqs: Vec<i64> = v.stored.iter().map(|(_, _, seq)| *seq).collect();
            let seen_messages: Vec<i64> = v
                .events
                .iter()
                .filter(|(_, e)| e["type"] == "message")
                .map(|(seq, _)| *seq)
                .collect();
            if seen_messages != stored_seqs {
                say(format!(
                    "socket messages at seqs {seen_messages:?}, stored at {stored_seqs:?}"
                ));
            }
            for body in &v.acknowledged {
                let stored = |sender: &str, text: &str| {
                    v.stored
                        .iter()
                        .filter(|(s, b, _)| s == sender && b == text)
                        .count()
                };
                let once = stored("visitor", body);
                if once != 1 {
                    say(format!("{body:?} stored {once} times"));
                }
                // A copy under the same stanza id from the same chat is one
                // message to the agent's client (Conversations drops it as
                // a duplicate): the at-least-once re-send of a
                // stanza a dead node had not seen confirmed. Copies are
                // counted in `resent_copies`.
                let copies = self.at_agents.get(body).map_or(&[][..], Vec::as_slice);
                let mut distinct = copies.to_vec();
                distinct.sort();
                distinct.dedup();
                if distinct.len() != 1 {
                    say(format!(
                        "{body:?} reached an agent {} times: {copies:?}",
                        distinct.len()
                    ));
                }
                let echo = stored("agent", &format!("{ECHO_PREFIX}{body}"));
                if echo != 1 {
                    let resent: Vec<usize> = copies
                        .iter()
                        .map(|copy| {
                            let mut parts = copy.split(' ').skip(1);
                            let (from, id) =
                                (parts.next().unwrap_or(""), parts.next().unwrap_or(""));
                            self.at_agents
                                .get(&format!("resent {from} echo-{id}"))
                                .map_or(0, Vec::len)
                        })
                        .collect();
                    say(format!(
                        "the echo of {body:?} stored {echo} times (the agent sent it again {resent:?} times)"                    ));
                }
            }
        }
        problems
    }
}

/// One visitor, start to end; never panics (a failure is its log's
/// `gave_up`).
async fn one_visitor(visitor: Visitor, n: usize, options: TrafficOptions) -> VisitorLog {
    let log = Arc::new(Mutex::new(VisitorLog {
        n,
        ..VisitorLog::default()
    }));
    let result = run_visitor(&visitor, n, &options, &log).await;
    log.lock().expect("visitor log").finished = Some(Instant::now());
    let mut log = Arc::try_unwrap(log)
        .map(|m| m.into_inner().expect("visitor log"))
        .unwrap_or_else(|arc| std::mem::take(&mut *arc.lock().expect("visitor log")));
    if let Err(e) = result {
        log.gave_up = Some(format!("{e:#}"));
    }
    if let Some(session) = &log.session {
        match stored(&visitor, session).await {
            Ok(stored) => log.stored = stored,
            Err(e) => log.gave_up = Some(format!("cannot read the stored conversation: {e:#}")),
        }
    }
    log
}

type Log = Arc<Mutex<VisitorLog>>;

fn note_error(log: &Log, what: &str, error: String) {
    log.lock()
        .expect("visitor log")
        .errors
        .push(format!("{what}: {error}"));
}

async fn run_visitor(
    visitor: &Visitor,
    n: usize,
    options: &TrafficOptions,
    log: &Log,
) -> anyhow::Result<()> {
    let session = retry(log, "start", || async {
        let reply = visitor
            .try_start(
                &options.channel,
                &format!("Visitor {n}"),
                "visitor@example.com",
            )
            .await
            .map_err(Failure::Again)?;
        check(&reply)?;
        Session::from_start(&reply.body).map_err(Failure::Final)
    })
    .await?;
    log.lock().expect("visitor log").session = Some(session.clone());

    let done = CancellationToken::new();
    let follower = tokio::spawn(follow(
        visitor.clone(),
        session.clone(),
        log.clone(),
        done.clone(),
    ));
    let deadline = Instant::now() + RETRY_FOR * 2;
    // Messages go once an agent took the chat (as a visitor types once
    // someone answers; earlier ones would wait in the queue all the same).
    wait_for(log, deadline, |l| {
        l.events.iter().any(|(_, e)| e["type"] == "agent_joined")
    })
    .await
    .map_err(|_| anyhow::anyhow!("no agent joined"))?;
    let mut tick = tokio::time::interval(options.interval);
    for i in 0..options.messages {
        tick.tick().await;
        let body = format!("traffic {n}.{i}");
        let client_id = format!("t-{n}-{i}");
        retry(log, &format!("message {i}"), || async {
            let reply = visitor
                .say(&session, &client_id, &body)
                .await
                .map_err(Failure::Again)?;
            check(&reply)
        })
        .await?;
        log.lock().expect("visitor log").acknowledged.push(body);
    }
    let echoes: Vec<String> = log
        .lock()
        .expect("visitor log")
        .acknowledged
        .iter()
        .map(|b| format!("{ECHO_PREFIX}{b}"))
        .collect();
    let waited = wait_for(log, deadline, |l| {
        echoes.iter().all(|echo| {
            l.events.iter().any(|(_, e)| {
                e["type"] == "message"
                    && e["message"]["sender"] == "agent"
                    && e["message"]["body"] == echo.as_str()
            })
        })
    })
    .await;
    done.cancel();
    let _ = follower.await;
    waited.map_err(|_| anyhow::anyhow!("not every echo arrived"))
}

/// Polls the log until `pred` holds, or fails at `deadline`.
async fn wait_for(
    log: &Log,
    deadline: Instant,
    pred: impl Fn(&VisitorLog) -> bool,
) -> Result<(), ()> {
    loop {
        if pred(&log.lock().expect("visitor log")) {
            return Ok(());
        }
        if Instant::now() > deadline {
            return Err(());
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Why a try failed.
enum Failure {
    /// Worth another try: no answer, a 5xx, a 429.
    Again(anyhow::Error),
    /// The request itself is wrong: trying again cannot help.
    Final(anyhow::Error),
}

/// A reply's status as a try's outcome.
fn check(reply: &Reply) -> Result<(), Failure> {
    let status = reply.status;
    if status.is_success() {
        return Ok(());
    }
    let error = anyhow::anyhow!("{status} {}", reply.body);
    if status.is_server_error() || status == reqwest::StatusCode::TOO_MANY_REQUESTS {
        Err(Failure::Again(error))
    } else {
        Err(Failure::Final(error))
    }
}

/// Tries `attempt` until it succeeds, noting each failure, for at most
/// [`RETRY_FOR`]; a final failure ends it at once.
async fn retry<T, F, Fut>(log: &Log, what: &str, attempt: F) -> anyhow::Result<T>
where
    F: Fn() -> Fut,
    Fut: std::future::Future<Output = Result<T, Failure>>,
{
    let deadline = Instant::now() + RETRY_FOR;
    loop {
        match attempt().await {
            Ok(value) => return Ok(value),
            Err(Failure::Final(e)) => {
                note_error(log, what, format!("{e:#}"));
                return Err(e.context(format!("{what}: refused")));
            }
            Err(Failure::Again(e)) => {
                note_error(log, what, format!("{e:#}"));
                if Instant::now() > deadline {
                    return Err(e.context(format!("{what}: still failing after {RETRY_FOR:?}")));
                }
            }
        }
        tokio::time::sleep(RETRY_PAUSE).await;
    }
}

/// Follows the conversation's WebSocket until `done`, reconnecting from
/// the last seq seen whenever it drops.
async fn follow(visitor: Visitor, session: Session, log: Log, done: CancellationToken) {
    let mut connects = 0usize;
    while !done.is_cancelled() {
        let since = log
            .lock()
            .expect("visitor log")
            .events
            .last()
            .map_or(0, |(seq, _)| *seq);
        let mut stream = match visitor.events(&session, since).await {
            Ok(stream) => stream,
            Err(e) => {
                note_error(&log, "websocket", format!("{e:#}"));
                tokio::time::sleep(RETRY_PAUSE).await;
                continue;
            }
        };
        connects += 1;
        if connects > 1 {
            log.lock().expect("visitor log").reconnects += 1;
        }
        loop {
            let item = tokio::select! {
                _ = done.cancelled() => break,
                item = stream.next_item(Duration::from_secs(3600)) => item,
            };
            match item {
                Ok(StreamItem::Event(event)) => {
                    if let Some(seq) = event["seq"].as_i64() {
                        log.lock().expect("visitor log").events.push((seq, event));
                    }
                }
                Ok(StreamItem::Closed(code)) => {
                    log.lock().expect("visitor log").closes.push(code);
                    break;
                }
                Err(e) => {
                    note_error(&log, "websocket", format!("{e:#}"));
                    break;
                }
            }
        }
        if !done.is_cancelled() {
            tokio::time::sleep(RETRY_PAUSE).await;
        }
    }
}

/// The stored messages of the conversation: (sender, body, seq).
async fn stored(
    visitor: &Visitor,
    session: &Session,
) -> anyhow::Result<Vec<(String, String, i64)>> {
    let reply = visitor.messages(session).await?;
    anyhow::ensure!(reply.status.is_success(), "{} {}", reply.status, reply.body);
    let list = reply.body["messages"]
        .as_array()
        .or(reply.body.as_array())
        .cloned()
        .unwrap_or_default();
    Ok(list
        .iter()
        .map(|m| {
            (
                m["sender"].as_str().unwrap_or_default().to_owned(),
                m["body"].as_str().unwrap_or_default().to_owned(),
                m["seq"].as_i64().unwrap_or(-1),
            )
        })
        .collect())
}
