//! Every acknowledged message is durable, reaches the agent, and restarting
//! the gateway never drops a conversation: tested by killing a real
//! `frontdesk serve` process with SIGKILL mid-stream.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use frontdesk_tests::chaos::{
    check_exactly_once, number_of, spawn_bridged, visitor_sends, wait_for_xmpp_connected,
    wait_until_active, GatewayUrl, Progress,
};
use frontdesk_tests::database::TestDb;
use frontdesk_tests::gateway::{GatewayProcess, TestGateway};
use frontdesk_tests::visitor::Visitor;
use frontdesk_tests::xmpp_server::{Account, XmppServer, COMPONENT_DOMAIN};

const WAIT: Duration = Duration::from_secs(20);

const SENDERS: usize = 4;
const PER_SENDER: usize = 150;
const KILL_AFTER_ACKS: usize = 120;

#[tokio::test]
async fn sigkill_mid_stream_loses_no_acknowledged_message() {
    let db = TestDb::create().await.unwrap();
    let gateway = GatewayProcess::spawn_on(&db).await.unwrap();
    let visitor = Visitor::new(&gateway.url);
    let session = visitor.start("live", "Jane").await.unwrap();

    // Several senders stream messages; each records what was acknowledged.
    let acked: Arc<Mutex<HashMap<String, i64>>> = Arc::default();
    let (enough_tx, enough_rx) = tokio::sync::oneshot::channel::<()>();
    let enough_tx = Arc::new(Mutex::new(Some(enough_tx)));
    let mut senders = Vec::new();
    for s in 0..SENDERS {
        let visitor = visitor.clone();
        let session = session.clone();
        let acked = acked.clone();
        let enough_tx = enough_tx.clone();
        senders.push(tokio::spawn(async move {
            for i in 0..PER_SENDER {
                let client_id = format!("s{s}-m{i}");
                match visitor
                    .say(&session, &client_id, &format!("message {client_id}"))
                    .await
                {
                    Ok(reply) if reply.status == 201 || reply.status == 200 => {
                        let seq = reply.body["seq"].as_i64().unwrap();
                        let mut acked = acked.lock().unwrap();
                        acked.insert(client_id, seq);
                        if acked.len() >= KILL_AFTER_ACKS {
                            if let Some(tx) = enough_tx.lock().unwrap().take() {
                                let _ = tx.send(());
                            }
                        }
                    }
                    // The gateway died under us: stop this sender.
                    Ok(_) | Err(_) => return,
                }
            }
        }));
    }
    enough_rx.await.unwrap();
    gateway.kill().await.unwrap();
    for sender in senders {
        sender.await.unwrap();
    }
    let acked = acked.lock().unwrap().clone();
    assert!(acked.len() >= KILL_AFTER_ACKS);
    assert!(
        acked.len() < SENDERS * PER_SENDER,
        "the kill must land mid-stream"
    );

    // Restart on the same database and data directory.
    let gateway = GatewayProcess::spawn_on(&db).await.unwrap();
    let visitor = Visitor::new(&gateway.url);
    let history = visitor.messages(&session).await.unwrap();
    assert_eq!(history.status, 200, "the token still works after the crash");
    let mut stored: HashMap<String, i64> = HashMap::new();
    for message in history.body["messages"].as_array().unwrap() {
        let client_id = message["client_id"].as_str().unwrap().to_owned();
        let seq = message["seq"].as_i64().unwrap();
        assert!(
            stored.insert(client_id.clone(), seq).is_none(),
            "{client_id} stored twice"
        );
    }
    for (client_id, seq) in &acked {
        assert_eq!(
            stored.get(client_id),
            Some(seq),
            "acknowledged {client_id} lost or changed"
        );
    }

    // The widget retries everything it is unsure of: still exactly once.
    for s in 0..SENDERS {
        for i in 0..PER_SENDER {
            let client_id = format!("s{s}-m{i}");
            let reply = visitor
                .say(&session, &client_id, &format!("message {client_id}"))
                .await
                .unwrap();
            assert!(reply.status == 201 || reply.status == 200, "{}", reply.body);
        }
    }
    let history = visitor.messages(&session).await.unwrap();
    let messages = history.body["messages"].as_array().unwrap();
    assert_eq!(messages.len(), SENDERS * PER_SENDER);
    let seqs: Vec<i64> = messages
        .iter()
        .map(|m| m["seq"].as_i64().unwrap())
        .collect();
    assert!(seqs.windows(2).all(|w| w[0] < w[1]), "history is in order");

    gateway.kill().await.unwrap();
    db.drop_db().await.unwrap();
}

#[tokio::test]
async fn a_graceful_restart_keeps_waiting_and_active_conversations() {
    // On PostgreSQL an offer ringing at the stop rings on (other nodes may
    // serve its agents) until its timer: keep that short.
    let ring = |c: &mut frontdesk::config::Config| {
        for queue in &mut c.queues {
            queue.ring_timeout_secs = 2;
        }
    };
    let mut gw = TestGateway::spawn_with(ring).await;
    gw.all_agents_available().await;
    let visitor = Visitor::new(&gw.url);
    let waiting = visitor.start("live", "Waiting").await.unwrap();
    let active = visitor.start("live", "Active").await.unwrap();
    let first = gw.next_offer().await;
    assert_eq!(first.conversation.id.to_string(), waiting.id);
    gw.engine
        .agent_accept(first.conversation.id, &"101".parse().unwrap())
        .await
        .unwrap();
    let second = gw.next_offer().await;
    gw.engine
        .agent_accept(second.conversation.id, &"102".parse().unwrap())
        .await
        .unwrap();
    let third = visitor.start("live", "Still waiting").await.unwrap();
    visitor.say(&third, "c1", "anyone?").await.unwrap();

    let db = gw.stop_keep_db().await;
    let mut gw = TestGateway::spawn_on(db, ring).await;
    let visitor = Visitor::new(&gw.url);

    for session in [&waiting, &active] {
        let view = visitor.conversation(session).await.unwrap();
        assert_eq!(view.body["state"], "active", "{}", view.body);
    }
    // Still waiting. On SQLite (one node) the agents' presence is forgotten
    // until their bridges report it anew, so it stays queued; on PostgreSQL
    // presence is shared by every node and survives one node's restart, so
    // it may already ring again.
    let view = visitor.conversation(&third).await.unwrap();
    assert!(
        ["queued", "offered"].contains(&view.body["state"].as_str().unwrap()),
        "{}",
        view.body
    );
    // Agents come back: the waiting chat is offered again, history intact.
    gw.all_agents_available().await;
    let offer = gw.next_offer().await;
    assert_eq!(offer.conversation.id.to_string(), third.id);
    assert_eq!(offer.history[0].body, "anyone?");
    gw.stop().await;
}

/// A chat that goes back to the queue drops what no agent got yet from
/// the delivery outbox: its next offer carries it, as its latest
/// messages, however long the chat.
#[tokio::test]
async fn an_offer_carries_a_long_chats_latest_messages() {
    const MESSAGES: usize = 1010;
    let mut gw = TestGateway::spawn().await;
    let visitor = Visitor::new(&gw.url);
    let session = visitor.start("live", "Long").await.unwrap();
    let id: frontdesk::domain::ConversationId = session.id.parse().unwrap();
    for i in 0..MESSAGES {
        let client_id = format!("c{i}").try_into().unwrap();
        let body = frontdesk::domain::MessageBody::parse(&format!("m {i}"), 4000).unwrap();
        gw.engine
            .post_visitor_message(id, client_id, body)
            .await
            .unwrap();
    }
    gw.all_agents_available().await;
    let offer = gw.next_offer().await;
    let bodies: Vec<&str> = offer.history.iter().map(|m| m.body.as_str()).collect();
    assert_eq!(bodies.len(), 1000);
    assert_eq!(bodies.first(), Some(&"m 10"));
    assert_eq!(
        bodies.last(),
        Some(&"m 1009"),
        "the latest messages are missing"
    );
    gw.stop().await;
}

/// Messages the visitor streams to an XMPP agent in this test.
const STREAMED: usize = 120;
/// After how many acknowledged messages the gateway is SIGKILLed.
const KILL_AT: [usize; 3] = [25, 55, 95];

/// The fault scenario, bounded: a visitor streams messages to a
/// real XMPP agent (slixmpp on Prosody) while the gateway is SIGKILLed
/// mid-stream three times, once while Prosody is frozen so that stored
/// messages are waiting for their forward. Every acknowledged message
/// reaches the agent, in order, and none twice under different ids (a
/// re-sent stanza keeps its id, which clients deduplicate on).
#[tokio::test]
async fn an_xmpp_agent_gets_every_acknowledged_message_across_gateway_kills() {
    let prosody = XmppServer::prosody(&[Account::new("101").preapproved()])
        .await
        .unwrap();
    let mut agent = prosody.agent("101").await.unwrap();
    let db = TestDb::create().await.unwrap();
    let mut gateway = spawn_bridged(&db, Some(&prosody), None).await.unwrap();
    let url = GatewayUrl::new(&gateway.url);
    let visitor = url.visitor();
    let session = visitor.start("live", "Jane").await.unwrap();
    let address = format!("{}@{COMPONENT_DOMAIN}", session.agent_localpart());

    // The agent takes the chat by answering the offer.
    let from = address.clone();
    agent
        .expect(WAIT, move |e| {
            e["event"] == "message" && e["from"].as_str().is_some_and(|f| f.starts_with(&from))
        })
        .await
        .unwrap();
    agent.send(&address, "Hello Jane", "a-1").await.unwrap();
    wait_until_active(&visitor, &session).await;

    // The widget retries every message until the gateway acknowledges it.
    let progress = Progress::default();
    let sender = visitor_sends(
        url.clone(),
        session.clone(),
        "message",
        STREAMED,
        progress.clone(),
    );
    for (round, at) in KILL_AT.into_iter().enumerate() {
        progress.wait_for(at, "before a kill").await;
        let frozen = round == 1;
        if frozen {
            // Once the component gave the frozen server up, the next
            // messages are stored but cannot be forwarded: only the outbox
            // knows them when the gateway dies.
            progress.hold(true);
            prosody.pause().unwrap();
            wait_for_xmpp_connected(&gateway.url, false).await;
            let now = progress.acked();
            progress.hold(false);
            progress.wait_for(now + 10, "while Prosody is frozen").await;
        }
        gateway.kill().await.unwrap();
        if frozen {
            prosody.resume().unwrap();
        }
        gateway = spawn_bridged(&db, Some(&prosody), None).await.unwrap();
        url.set(&gateway.url);
    }
    sender.await.unwrap();

    // Everything acknowledged reaches the agent: collect until all arrived.
    let mut received = Vec::new();
    let mut arrived = std::collections::HashSet::new();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    while arrived.len() < STREAMED && tokio::time::Instant::now() < deadline {
        let Some(event) = agent.next_event(Duration::from_millis(100)).await.unwrap() else {
            continue;
        };
        let from_visitor = event["from"]
            .as_str()
            .is_some_and(|f| f.starts_with(&address));
        if let (true, "message", Some(body)) = (
            from_visitor,
            event["event"].as_str().unwrap_or_default(),
            event["body"].as_str(),
        ) {
            if let Some(n) = number_of("message", body) {
                arrived.insert(n);
            }
            let id = event["id"].as_str().unwrap_or_default().to_owned();
            received.push((id, body.to_owned()));
        }
    }
    check_exactly_once("visitor → XMPP agent", "message", STREAMED, &received, true);
    gateway.kill().await.unwrap();
    db.drop_db().await.unwrap();
}
