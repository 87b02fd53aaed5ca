//! Agents over XMPP with several gateway nodes on one PostgreSQL behind
//! HAProxy (`frontdesk_tests::cluster`): ejabberd with a component
//! connection from every node (`every_node`), and Prosody with one node
//! holding the one connection it allows (`one_node`). Real servers, real
//! XMPP agent clients, visitors through HAProxy. PostgreSQL only: each
//! test is skipped unless `FRONTDESK_TEST_DB=postgres`.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use frontdesk::config::XmppConnection;
use frontdesk_tests::cluster::{Cluster, ClusterOptions};
use frontdesk_tests::config::ALLOWED_ORIGIN;
use frontdesk_tests::database::several_nodes_run;
use frontdesk_tests::visitor::{Session, Visitor};
use frontdesk_tests::xmpp_server::{Account, XmppAgent, XmppServer, COMPONENT_DOMAIN};
use serde_json::{json, Value};

const WAIT: Duration = Duration::from_secs(20);

/// The visitor address of a conversation.
fn address_of(session: &Session) -> String {
    format!("{}@{COMPONENT_DOMAIN}", session.agent_localpart())
}

/// An agent's client and every visitor-message stanza (id `m-…`) it got,
/// counted by conversation address, id and body: nothing it receives is
/// skipped unseen while a test waits for something else.
struct Agent {
    client: XmppAgent,
    seen: HashMap<String, usize>,
}

impl Agent {
    fn new(client: XmppAgent) -> Self {
        Self {
            client,
            seen: HashMap::new(),
        }
    }

    /// Reads events until one matches `pred`, within `within`.
    async fn until(
        &mut self,
        within: Duration,
        pred: impl Fn(&Value) -> bool,
    ) -> anyhow::Result<Value> {
        let deadline = Instant::now() + within;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let Some(event) = self.client.next_event(left).await? else {
                anyhow::bail!("nothing matching within {within:?}");
            };
            if event["event"] == "message" {
                if let (Some(from), Some(id), Some(body)) = (
                    event["from"].as_str(),
                    event["id"].as_str().filter(|id| id.starts_with("m-")),
                    event["body"].as_str(),
                ) {
                    let chat = from.split('/').next().unwrap_or(from);
                    *self.seen.entry(format!("{chat} {id} {body}")).or_default() += 1;
                }
            }
            if pred(&event) {
                return Ok(event);
            }
        }
    }

    /// Waits for a message from `address` whose body contains `needle`.
    async fn body_from(&mut self, address: &str, needle: &str) -> Value {
        let (from, text) = (address.to_owned(), needle.to_owned());
        self.until(WAIT, move |e| {
            e["event"] == "message"
                && e["from"].as_str().is_some_and(|f| f.starts_with(&from))
                && e["body"].as_str().is_some_and(|b| b.contains(&text))
        })
        .await
        .unwrap_or_else(|e| panic!("no {needle:?} from {address}: {e}"))
    }

    /// Sends `body` as stanza `id` until the gateway's receipt says it is
    /// stored (what an agent's client relies on: a message without
    /// receipt was not delivered; a copy under the same id is stored once).
    async fn send_until_stored(&mut self, to: &str, body: &str, id: &str) {
        let deadline = Instant::now() + WAIT * 2;
        loop {
            self.client
                .command(json!({"cmd": "send", "to": to, "body": body, "id": id, "request_receipt": true}))
                .await
                .unwrap();
            let id_owned = id.to_owned();
            let got = self
                .until(Duration::from_secs(3), move |e| {
                    e["event"] == "message" && e["received"] == id_owned.as_str()
                })
                .await;
            if got.is_ok() {
                return;
            }
            assert!(Instant::now() < deadline, "{id} never confirmed");
        }
    }

    /// How many times the visitor message `body` of chat `address`
    /// reached the agent, after a marker said after it came (so the count
    /// is final: messages reach an agent in order).
    async fn count_after_marker(
        &mut self,
        visitor: &Visitor,
        session: &Session,
        marker: &str,
        body: &str,
    ) -> usize {
        let address = address_of(session);
        say(visitor, session, &format!("marker-{marker}"), marker).await;
        self.body_from(&address, marker).await;
        self.count(&address, body)
    }

    fn count(&self, address: &str, body: &str) -> usize {
        self.seen
            .iter()
            .filter(|(k, _)| k.starts_with(address) && k.ends_with(&format!(" {body}")))
            .map(|(_, n)| *n)
            .sum()
    }
}

/// Says `body` through HAProxy, retrying (same client id: stored once)
/// while a node is going away.
async fn say(visitor: &Visitor, session: &Session, client_id: &str, body: &str) {
    let deadline = Instant::now() + WAIT;
    loop {
        if let Ok(reply) = visitor.say(session, client_id, body).await {
            if reply.status.is_success() {
                return;
            }
        }
        assert!(Instant::now() < deadline, "{client_id} never accepted");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Every message body of the conversation by `sender`, in seq order.
async fn bodies(visitor: &Visitor, session: &Session, sender: &str) -> Vec<String> {
    let reply = visitor.messages(session).await.unwrap();
    let list = reply.body["messages"]
        .as_array()
        .or(reply.body.as_array())
        .cloned()
        .unwrap_or_default();
    list.iter()
        .filter(|m| m["sender"] == sender)
        .filter_map(|m| m["body"].as_str().map(str::to_owned))
        .collect()
}

/// The presence rows of agent `ext`: (source, status).
async fn presence(cluster: &Cluster, ext: &str) -> Vec<(String, String)> {
    let pool = sqlx::PgPool::connect(&cluster.database_url())
        .await
        .unwrap();
    let rows: Vec<(String, String)> = sqlx::query_as(
        "SELECT source, status FROM agent_presence WHERE agent_extension = $1 ORDER BY source",
    )
    .bind(ext)
    .fetch_all(&pool)
    .await
    .unwrap();
    pool.close().await;
    rows
}

/// Waits until agent `ext`'s statuses are `statuses` (one per client).
async fn presence_becomes(cluster: &Cluster, ext: &str, statuses: &[&str]) {
    let deadline = Instant::now() + WAIT;
    loop {
        let rows = presence(cluster, ext).await;
        let now: Vec<&str> = rows.iter().map(|(_, s)| s.as_str()).collect();
        if now == statuses {
            assert!(
                rows.iter()
                    .all(|(s, _)| s.starts_with(&format!("xmpp:{ext}@"))),
                "one source per client: {rows:?}"
            );
            return;
        }
        assert!(
            Instant::now() < deadline,
            "agent {ext}: {rows:?}, not {statuses:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// `frontdesk_messages_total{from="agent"}` on each running node.
async fn agent_messages_per_node(cluster: &Cluster) -> Vec<f64> {
    let mut counts = Vec::new();
    for i in 0..cluster.len() {
        if cluster.is_running(i) {
            let n = cluster
                .metric(i, "frontdesk_messages_total{from=\"agent\"}")
                .await;
            counts.push(n.unwrap_or(0.0));
        }
    }
    counts
}

/// ejabberd, three nodes, each with its own component connection: pings
/// every 2 s answered mostly on other nodes' connections cause no
/// reconnect; a conversation started through HAProxy is answered by an
/// agent whose stanzas land on every node, every event once and in
/// order; presence changes are stored per client whichever node gets
/// them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_node_on_ejabberd_stays_connected_and_any_node_handles_agents() {
    if !several_nodes_run() {
        return;
    }
    let ejabberd = XmppServer::ejabberd_for_agents().await;
    let started = Instant::now();
    let cluster = Cluster::start(ClusterOptions::new(3).xmpp(&ejabberd))
        .await
        .unwrap();
    let mut alice = Agent::new(ejabberd.agent("101").await.unwrap());
    let mut bob = Agent::new(ejabberd.agent("102").await.unwrap());
    presence_becomes(&cluster, "101", &["available"]).await;
    presence_becomes(&cluster, "102", &["available"]).await;

    let visitor = Visitor::new(&cluster.url()).with_origin(ALLOWED_ORIGIN);
    let (session, events) = visitor.start_following("live", "Jane Doe").await.unwrap();
    let address = address_of(&session);
    alice.body_from(&address, "Jane Doe").await;
    bob.body_from(&address, "Jane Doe").await;

    // Alice answers, one message after the other, while the cluster runs
    // for a while: each reply reaches the visitor once, in order.
    let mut sent = Vec::new();
    let mut n = 0;
    while n < 10 || started.elapsed() < Duration::from_secs(60) {
        n += 1;
        let body = format!("reply {n}");
        alice
            .send_until_stored(&address, &body, &format!("a-{n}"))
            .await;
        sent.push(body);
        say(
            &visitor,
            &session,
            &format!("c-{n}"),
            &format!("question {n}"),
        )
        .await;
        alice.body_from(&address, &format!("question {n}")).await;
        if n >= 40 {
            // A steady trickle, not a flood, for the rest of the minute.
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
    }
    assert_eq!(bodies(&visitor, &session, "agent").await, sent);
    // A WebSocket through HAProxy (to any node) has every event once, in
    // seq order. (Live signals from other nodes are the hub's business:
    // the one opened at the start sees what its node stored.)
    events.close().await;
    let mut events = visitor.events(&session, 0).await.unwrap();
    let (mut seqs, mut got) = (Vec::new(), Vec::new());
    while got.len() < sent.len() {
        let event = events
            .next_matching(WAIT, |e| {
                e["type"] == "message" && e["message"]["sender"] == "agent"
            })
            .await
            .unwrap();
        seqs.push(event["seq"].as_i64().unwrap());
        got.push(event["message"]["body"].as_str().unwrap().to_owned());
    }
    assert_eq!(got, sent, "every agent message once, in order");
    assert!(seqs.windows(2).all(|w| w[0] < w[1]), "{seqs:?}");
    let per_node = agent_messages_per_node(&cluster).await;
    eprintln!("agent messages stored per node: {per_node:?}");
    assert!(
        per_node.iter().filter(|n| **n > 0.0).count() >= 2,
        "agent stanzas reached several nodes: {per_node:?}"
    );
    // The visitor's messages reached Alice once each.
    alice
        .count_after_marker(&visitor, &session, "end-of-a", "question 1")
        .await;
    for q in 1..=n {
        assert_eq!(
            alice.count(&address, &format!("question {q}")),
            1,
            "question {q}"
        );
    }

    // Presence, whichever node each stanza reaches.
    for _ in 0..3 {
        bob.client
            .command(json!({"cmd": "presence", "show": "away"}))
            .await
            .unwrap();
        presence_becomes(&cluster, "102", &["busy"]).await;
        bob.client
            .command(json!({"cmd": "presence", "show": null}))
            .await
            .unwrap();
        presence_becomes(&cluster, "102", &["available"]).await;
    }
    // A second client of Bob's, then the first leaves: still available.
    let mut bob_phone = ejabberd.agent("102").await.unwrap();
    presence_becomes(&cluster, "102", &["available", "available"]).await;
    bob.client.command(json!({"cmd": "quit"})).await.unwrap();
    presence_becomes(&cluster, "102", &["available"]).await;
    bob_phone.command(json!({"cmd": "quit"})).await.unwrap();
    presence_becomes(&cluster, "102", &[]).await;

    eprintln!(
        "cluster up for {:?} with pings every 2 s",
        started.elapsed()
    );
    for i in 0..3 {
        assert_eq!(cluster.xmpp_connected(i).await, Some(true), "node {i}");
        assert_eq!(
            cluster.metric(i, "frontdesk_xmpp_connections_total").await,
            Some(1.0),
            "node {i} connected once, no reconnect"
        );
    }
    events.close().await;
    cluster.stop().await.unwrap();
}

/// ejabberd, three nodes: one is SIGKILLed while three chats exchange
/// messages both ways; every message reaches the other side, the
/// visitor's once in the store and the agent's once in Alice's client
/// (a message the dead node had not confirmed is re-sent by another under
/// its stanza id).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_ejabberd_connected_node_loses_and_doubles_nothing() {
    if !several_nodes_run() {
        return;
    }
    let ejabberd = XmppServer::ejabberd_for_agents().await;
    let mut cluster = Cluster::start(ClusterOptions::new(3).xmpp(&ejabberd))
        .await
        .unwrap();
    let mut alice = Agent::new(ejabberd.agent("101").await.unwrap());
    presence_becomes(&cluster, "101", &["available"]).await;
    let visitor = Visitor::new(&cluster.url()).with_origin(ALLOWED_ORIGIN);
    let mut chats = Vec::new();
    for c in 0..3 {
        let session = visitor
            .start("live", &format!("Visitor {c}"))
            .await
            .unwrap();
        let address = address_of(&session);
        alice.body_from(&address, &format!("Visitor {c}")).await;
        alice
            .send_until_stored(&address, &format!("hello {c}"), &format!("h-{c}"))
            .await;
        chats.push((session, address));
    }
    const ROUNDS: usize = 8;
    let mut killed_at = None;
    for r in 0..ROUNDS {
        if r == 3 {
            cluster.kill(1).await.unwrap();
            killed_at = Some(Instant::now());
        }
        for (c, (session, address)) in chats.iter().enumerate() {
            say(
                &visitor,
                session,
                &format!("v{c}-{r}"),
                &format!("visitor {c} round {r}"),
            )
            .await;
            let body = format!("agent {c} round {r}");
            alice
                .send_until_stored(address, &body, &format!("a{c}-{r}"))
                .await;
        }
    }
    eprintln!(
        "rounds after the kill took {:?}",
        killed_at.unwrap().elapsed()
    );
    for (c, (session, _)) in chats.iter().enumerate() {
        let mut expected = vec![format!("hello {c}")];
        expected.extend((0..ROUNDS).map(|r| format!("agent {c} round {r}")));
        assert_eq!(
            bodies(&visitor, session, "agent").await,
            expected,
            "chat {c}: every agent message stored once, in order"
        );
        alice
            .count_after_marker(&visitor, session, &format!("end-{c}"), "-")
            .await;
        let address = address_of(session);
        for r in 0..ROUNDS {
            let body = format!("visitor {c} round {r}");
            assert_eq!(alice.count(&address, &body), 1, "chat {c}: {body}");
        }
    }
    cluster.stop().await.unwrap();
}

/// Prosody (one connection per component domain), three nodes in
/// `one_node`: the holder is SIGKILLed; another node takes the connection
/// over within seconds and the visitor's messages stored meanwhile
/// (through the other nodes) reach the agent once each.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn prosody_one_node_fails_over_when_the_holder_dies() {
    if !several_nodes_run() {
        return;
    }
    let prosody = XmppServer::prosody(&[Account::new("101").preapproved(), Account::new("102")])
        .await
        .unwrap();
    let mut cluster = Cluster::start(
        ClusterOptions::new(3)
            .xmpp(&prosody)
            .xmpp_connection(XmppConnection::OneNode),
    )
    .await
    .unwrap();
    let holder = cluster.xmpp_holder_within(WAIT).await.unwrap();
    for i in (0..3).filter(|i| *i != holder) {
        assert_eq!(
            cluster.xmpp_connected(i).await,
            Some(false),
            "node {i} waits"
        );
    }
    let mut alice = Agent::new(prosody.agent("101").await.unwrap());
    presence_becomes(&cluster, "101", &["available"]).await;
    let visitor = Visitor::new(&cluster.url()).with_origin(ALLOWED_ORIGIN);
    let session = visitor.start("live", "Jane Doe").await.unwrap();
    let address = address_of(&session);
    alice.body_from(&address, "Jane Doe").await;
    alice.send_until_stored(&address, "Hi Jane", "a-0").await;
    // Messages written through the nodes that do not hold the connection.
    say(&visitor, &session, "c-0", "before the kill").await;
    alice.body_from(&address, "before the kill").await;

    cluster.kill(holder).await.unwrap();
    let killed_at = Instant::now();
    for n in 1..=5 {
        say(
            &visitor,
            &session,
            &format!("c-{n}"),
            &format!("queued {n}"),
        )
        .await;
    }
    let successor = cluster.xmpp_holder_within(WAIT).await.unwrap();
    let takeover = killed_at.elapsed();
    assert_ne!(successor, holder);
    alice.body_from(&address, "queued 1").await;
    let first_delivered = killed_at.elapsed();
    alice
        .count_after_marker(&visitor, &session, "end", "-")
        .await;
    for n in 1..=5 {
        let body = format!("queued {n}");
        assert_eq!(alice.count(&address, &body), 1, "{body}: {:?}", alice.seen);
    }
    eprintln!(
        "Prosody failover: node {successor} connected {takeover:?} after node {holder} was killed; \
         the first queued message reached the agent after {first_delivered:?}"
    );
    assert!(takeover < Duration::from_secs(10), "{takeover:?}");
    // The agent answers through the new holder.
    alice.send_until_stored(&address, "Still here", "a-1").await;

    // SIGTERM hands the connection over at once.
    let stopped_at = Instant::now();
    cluster.terminate(successor).await.unwrap();
    let next = cluster.xmpp_holder_within(WAIT).await.unwrap();
    eprintln!(
        "Prosody handover on SIGTERM: node {next} connected {:?} after the stop began",
        stopped_at.elapsed()
    );
    say(&visitor, &session, "c-9", "after the handover").await;
    alice.body_from(&address, "after the handover").await;
    cluster.stop().await.unwrap();
}
