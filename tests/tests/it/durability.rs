//! Every acknowledged message is durable, and restarting the gateway never
//! drops a conversation: tested by killing a real `frontdesk serve`
//! process with SIGKILL mid-stream.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use frontdesk_tests::database::TestDb;
use frontdesk_tests::gateway::{GatewayProcess, TestGateway};
use frontdesk_tests::visitor::Visitor;

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
    let mut gw = TestGateway::spawn().await;
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
    let mut gw = TestGateway::spawn_on(db, |_| {}).await;
    let visitor = Visitor::new(&gw.url);

    for session in [&waiting, &active] {
        let view = visitor.conversation(session).await.unwrap();
        assert_eq!(view.body["state"], "active", "{}", view.body);
    }
    let view = visitor.conversation(&third).await.unwrap();
    assert_eq!(view.body["state"], "queued");
    // Agents come back: the waiting chat is offered again, history intact.
    gw.all_agents_available().await;
    let offer = gw.next_offer().await;
    assert_eq!(offer.conversation.id.to_string(), third.id);
    assert_eq!(offer.history[0].body, "anyone?");
    gw.stop().await;
}
