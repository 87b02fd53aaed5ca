//! Two in-process gateway nodes on one PostgreSQL database: what one node
//! commits reaches a widget following the conversation on the other
//! (exactly once, in order, also across a lost signal listener), and an
//! agent's upload slot granted on one node is used once, on any node.
//! Several nodes share PostgreSQL only: on SQLite these tests say so and
//! pass.

use std::time::Duration;

use frontdesk::domain::ConversationId;
use frontdesk::engine::hub::Listening;
use frontdesk::engine::AgentFileOutcome;
use frontdesk::files::DirectoryStore;
use frontdesk::store::LISTENER_NAME;
use frontdesk_tests::config::ALLOWED_ORIGIN;
use frontdesk_tests::database::{postgres_admin_url, DbEngine};
use frontdesk_tests::gateway::TestGateway;
use frontdesk_tests::visitor::{EventStream, Session, Visitor};
use reqwest::StatusCode;
use serde_json::Value;
use sqlx::Connection;

const WAIT: Duration = Duration::from_secs(15);

fn on_postgres() -> bool {
    if matches!(DbEngine::from_env(), Ok(DbEngine::Postgres)) {
        return true;
    }
    eprintln!("skipped: several nodes share PostgreSQL only (FRONTDESK_TEST_DB=postgres)");
    false
}

fn ext(s: &str) -> pbx_adapter::AgentExtension {
    s.parse().unwrap()
}

/// Alice (agent 101, in charge) writes in the chat through `node`, as
/// when her stanza reaches that node.
async fn alice_says(node: &TestGateway, id: ConversationId, body: &str) {
    node.engine
        .agent_message(id, &ext("101"), body)
        .await
        .unwrap();
}

async fn alice_types(node: &TestGateway, id: ConversationId, composing: bool) {
    node.engine
        .agent_typing(id, &ext("101"), composing)
        .await
        .unwrap();
}

/// Waits until `node`'s listener for the other nodes' signals is in a
/// state `pred` accepts, and returns it.
async fn listening(node: &TestGateway, pred: impl Fn(&Listening) -> bool) -> Listening {
    let mut watch = node.engine.hub().listening();
    let seen = tokio::time::timeout(WAIT, watch.wait_for(|l| pred(l)))
        .await
        .expect("the signal listener never got there")
        .expect("the engine is gone");
    *seen
}

/// Two nodes, both hearing each other, and a chat started on the first
/// (whose agents are available there, so it alone offers) that Alice took.
async fn two_nodes_and_a_chat() -> (TestGateway, TestGateway, Session) {
    let first = TestGateway::spawn().await;
    let second = first.spawn_sharing(|_| {}).await;
    for node in [&first, &second] {
        listening(node, |l| l.connected).await;
    }
    first.all_agents_available().await;
    let visitor = Visitor::new(&first.url).with_origin(ALLOWED_ORIGIN);
    let session = visitor.start("live", "Jane").await.unwrap();
    first
        .engine
        .agent_accept(session.id.parse().unwrap(), &ext("101"))
        .await
        .unwrap();
    (first, second, session)
}

/// The next durable event, checked to follow `last` with no gap (so no
/// duplicate either), skipping nothing.
async fn next_after(events: &mut EventStream, last: &mut i64) -> Value {
    let event = events.next_event().await.unwrap();
    let seq = event["seq"]
        .as_i64()
        .unwrap_or_else(|| panic!("not a durable event: {event}"));
    assert_eq!(seq, *last + 1, "no gap, no duplicate: {event}");
    *last = seq;
    event
}

/// The next durable events are agent or visitor messages with `bodies`,
/// in order.
async fn expect_messages(events: &mut EventStream, last: &mut i64, bodies: &[&str]) {
    for body in bodies {
        let event = next_after(events, last).await;
        assert_eq!(event["type"], "message", "{event}");
        assert_eq!(event["message"]["body"], *body, "{event}");
    }
}

async fn expect_typing(events: &mut EventStream, state: &str) {
    let frame = events.next_event().await.unwrap();
    assert_eq!(frame["type"], "typing", "{frame}");
    assert_eq!(frame["state"], state, "{frame}");
}

/// Follows `session` on `node` from its first event up to Alice joining;
/// returns the stream and the joined event's seq.
async fn follow_from_start(node: &TestGateway, session: &Session) -> (EventStream, i64) {
    let visitor = Visitor::new(&node.url).with_origin(ALLOWED_ORIGIN);
    let mut events = visitor.events(session, 0).await.unwrap();
    let mut last = 0;
    loop {
        let event = next_after(&mut events, &mut last).await;
        if event["type"] == "agent_joined" {
            return (events, last);
        }
    }
}

#[tokio::test]
async fn what_one_node_commits_reaches_a_widget_on_the_other_once_and_in_order() {
    if !on_postgres() {
        return;
    }
    let (first, second, session) = two_nodes_and_a_chat().await;
    let id = session.id.parse().unwrap();
    let (mut on_second, joined) = follow_from_start(&second, &session).await;
    let mut on_first = Visitor::new(&first.url)
        .with_origin(ALLOWED_ORIGIN)
        .events(&session, joined)
        .await
        .unwrap();
    let (mut last_second, mut last_first) = (joined, joined);

    // Committed on the first node: Alice writes and types there.
    for body in ["one", "two", "three"] {
        alice_says(&first, id, body).await;
    }
    alice_types(&first, id, true).await;
    expect_messages(&mut on_second, &mut last_second, &["one", "two", "three"]).await;
    expect_typing(&mut on_second, "composing").await;
    expect_messages(&mut on_first, &mut last_first, &["one", "two", "three"]).await;
    expect_typing(&mut on_first, "composing").await;

    // And the other way: Jane writes through the second node's REST API,
    // Alice's next stanza reaches the second node.
    let through_second = Visitor::new(&second.url).with_origin(ALLOWED_ORIGIN);
    let said = through_second.say(&session, "v-1", "four").await.unwrap();
    assert_eq!(said.status, 201, "{:?}", said.body);
    alice_says(&second, id, "five").await;
    alice_types(&second, id, false).await;
    expect_messages(&mut on_first, &mut last_first, &["four", "five"]).await;
    expect_typing(&mut on_first, "paused").await;
    expect_messages(&mut on_second, &mut last_second, &["four", "five"]).await;
    expect_typing(&mut on_second, "paused").await;

    // Nothing came twice: the next thing on each socket is the next commit.
    alice_says(&first, id, "six").await;
    expect_messages(&mut on_second, &mut last_second, &["six"]).await;
    expect_messages(&mut on_first, &mut last_first, &["six"]).await;

    on_first.close().await;
    on_second.close().await;
    second.stop().await;
    first.stop().await;
}

#[tokio::test]
async fn a_node_whose_signal_listener_was_cut_misses_nothing_committed_meanwhile() {
    if !on_postgres() {
        return;
    }
    let (first, second, session) = two_nodes_and_a_chat().await;
    let id = session.id.parse().unwrap();
    let (mut on_second, mut last) = follow_from_start(&second, &session).await;
    let before = listening(&second, |l| l.connected).await;

    // The database drops the second node's listener (and only it).
    let name = format!("{LISTENER_NAME} {}", second.engine.store().node_id());
    let mut admin = sqlx::PgConnection::connect(&postgres_admin_url())
        .await
        .unwrap();
    let cut: Vec<bool> = sqlx::query_scalar(
        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = $1",
    )
    .bind(&name)
    .fetch_all(&mut admin)
    .await
    .unwrap();
    assert_eq!(cut, [true], "one listener named {name:?}");
    listening(&second, |l| !l.connected).await;

    // Committed on the first node while the second hears nothing.
    for body in ["while cut 1", "while cut 2", "while cut 3"] {
        alice_says(&first, id, body).await;
    }
    assert_eq!(
        *second.engine.hub().listening().borrow(),
        Listening {
            connected: false,
            connections: before.connections
        },
        "the commits fell in the gap"
    );

    // Once the listener is back, the widget on the second node has them all.
    expect_messages(
        &mut on_second,
        &mut last,
        &["while cut 1", "while cut 2", "while cut 3"],
    )
    .await;
    let after = listening(&second, |l| l.connected).await;
    assert_eq!(after.connections, before.connections + 1);
    // And live signals flow again, with nothing doubled.
    alice_says(&first, id, "live again").await;
    expect_messages(&mut on_second, &mut last, &["live again"]).await;

    on_second.close().await;
    second.stop().await;
    first.stop().await;
}

async fn put(node: &TestGateway, slot: &str, body: &[u8]) -> StatusCode {
    reqwest::Client::new()
        .put(format!("{}/upload/{slot}/notes.txt", node.url))
        .body(body.to_vec())
        .send()
        .await
        .unwrap()
        .status()
}

#[tokio::test]
async fn an_upload_slot_granted_on_one_node_is_used_once_on_any_node() {
    if !on_postgres() {
        return;
    }
    let first = TestGateway::spawn().await;
    // The nodes share their file store, as production nodes must.
    let files = first.data_dir().join("files");
    let second = first
        .spawn_sharing(|c| c.files.directory = Some(files.clone()))
        .await;
    listening(&second, |l| l.connected).await;
    first.all_agents_available().await;
    let visitor = Visitor::new(&first.url).with_origin(ALLOWED_ORIGIN);
    let session = visitor.start("live", "Jane").await.unwrap();
    let id = session.id.parse().unwrap();
    first.engine.agent_accept(id, &ext("101")).await.unwrap();
    let (mut events, mut last) = follow_from_start(&second, &session).await;

    // Granted where the agent's XMPP request arrived, PUT through another.
    let bytes = b"hello world";
    let slot = first
        .engine
        .open_upload_slot(&ext("101"), "notes.txt", bytes.len() as u64)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        put(&second, slot.id.as_str(), bytes).await,
        StatusCode::CREATED
    );
    for node in [&first, &second] {
        assert_eq!(
            put(node, slot.id.as_str(), bytes).await,
            StatusCode::CONFLICT,
            "a used slot is refused on every node"
        );
    }

    // Two PUTs racing on two nodes: one wins.
    let raced = first
        .engine
        .open_upload_slot(&ext("101"), "notes.txt", bytes.len() as u64)
        .await
        .unwrap()
        .unwrap();
    let (a, b) = tokio::join!(
        put(&first, raced.id.as_str(), bytes),
        put(&second, raced.id.as_str(), bytes)
    );
    let mut statuses = [a, b];
    statuses.sort();
    assert_eq!(statuses, [StatusCode::CREATED, StatusCode::CONFLICT]);

    // The agent's message with the link reaches the first node: the file
    // the second node received becomes the message the visitor sees.
    let outcome = first
        .engine
        .attach_agent_file(id, &ext("101"), slot.file_id, &DirectoryStore::new(&files))
        .await
        .unwrap();
    assert!(
        matches!(outcome, AgentFileOutcome::Attached(_)),
        "{outcome:?}"
    );
    let shown = next_after(&mut events, &mut last).await;
    let attachment = &shown["message"]["attachment"];
    assert_eq!(attachment["name"], "notes.txt", "{shown}");
    let download = reqwest::Client::new()
        .get(format!(
            "{}/api/v1/conversations/{}/files/{}",
            second.url,
            session.id,
            attachment["id"].as_str().unwrap()
        ))
        .bearer_auth(&session.token)
        .send()
        .await
        .unwrap();
    assert_eq!(download.status(), StatusCode::OK);
    assert_eq!(download.bytes().await.unwrap().as_ref(), bytes);
    // A sent upload's slot is gone everywhere.
    for node in [&first, &second] {
        assert_eq!(
            put(node, slot.id.as_str(), bytes).await,
            StatusCode::NOT_FOUND
        );
    }
    events.close().await;
    second.stop().await;
    first.stop().await;
}
