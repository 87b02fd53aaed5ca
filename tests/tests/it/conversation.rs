//! A visitor's whole conversation over the real HTTP API and WebSocket,
//! with the test playing the agents through the engine's bridge entry
//! points. Runs on SQLite and on PostgreSQL (`FRONTDESK_TEST_DB`).

use std::time::Duration;

use frontdesk::engine::loopback::AgentCall;
use frontdesk::engine::ReceiptStatus;
use frontdesk_tests::config::ALLOWED_ORIGIN;
use frontdesk_tests::gateway::TestGateway;
use frontdesk_tests::visitor::{StreamItem, Visitor};
use pbx_adapter::AgentExtension;
use serde_json::json;

fn ext(s: &str) -> AgentExtension {
    s.parse().unwrap()
}

#[tokio::test]
async fn a_live_chat_from_start_to_end() {
    let mut gw = TestGateway::spawn().await;
    gw.all_agents_available().await;
    let visitor = Visitor::new(&gw.url).with_origin(ALLOWED_ORIGIN);

    let info = visitor.channel("live").await.unwrap();
    assert_eq!(info.status, 200, "{:?}", info.body);
    assert_eq!(info.body["mode"], "live");
    assert_eq!(info.body["open"], true);
    assert_eq!(info.body["limits"]["max_file_bytes"], 5_242_880);

    let session = visitor.start("live", "Jane Doe").await.unwrap();
    let mut events = visitor.events(&session, 0).await.unwrap();
    let first = events.next_event().await.unwrap();
    assert_eq!(first["type"], "state");
    assert_eq!(first["state"], "queued");
    assert_eq!(
        events.next_of_type("queue_position").await.unwrap()["position"],
        1
    );

    // Ring-all: both members of queue 600 get the offer, introducing Jane.
    let offer = gw.next_offer().await;
    let offered: Vec<_> = offer
        .agents
        .iter()
        .map(|a| a.extension.to_string())
        .collect();
    assert_eq!(offered, ["101", "102"]);
    assert_eq!(offer.conversation.visitor_name, "Jane Doe");
    assert_eq!(offer.conversation.visitor_email, "jane@example.com");
    assert_eq!(offer.conversation.queue.as_deref(), Some("600"));

    let hello = visitor
        .say(&session, "c-1", "Hello, is anyone there?")
        .await
        .unwrap();
    assert_eq!(hello.status, 201, "{:?}", hello.body);
    assert_eq!(hello.body["sender"], "visitor");
    let hello_seq = hello.body["seq"].as_i64().unwrap();

    // Alice answers first and takes the chat; Bob is told it was taken.
    let id = offer.conversation.id;
    let reply = gw
        .engine
        .agent_message(id, &ext("101"), "Hi Jane, Alice here.")
        .await
        .unwrap();
    assert_eq!(reply.author, "Alice Martin");
    // While the offer rang, Jane's message went to both ringing agents.
    let mut ringing_delivered = Vec::new();
    loop {
        match gw.next_agent_call().await {
            AgentCall::Deliver { agent, message, .. } => {
                assert_eq!(message.body, "Hello, is anyone there?");
                ringing_delivered.push(agent.to_string());
            }
            AgentCall::Withdraw {
                agents, taken_by, ..
            } => {
                assert_eq!(agents, vec![ext("102")]);
                assert_eq!(taken_by.as_deref(), Some("Alice Martin"));
                break;
            }
            other => panic!("expected a withdraw, got {other:?}"),
        }
    }
    assert_eq!(ringing_delivered, ["101", "102"]);
    assert_eq!(
        gw.engine
            .agent_message(id, &ext("102"), "me too")
            .await
            .unwrap_err()
            .to_string(),
        "this conversation is not yours"
    );

    let joined = events.next_of_type("agent_joined").await.unwrap();
    assert_eq!(joined["agent"]["name"], "Alice Martin");
    let message = events.next_of_type("message").await.unwrap();
    assert_eq!(message["message"]["body"], "Hi Jane, Alice here.");
    assert_eq!(message["message"]["sender"], "agent");

    // Typing and read marks cross in real time.
    gw.engine.agent_typing(id, &ext("101"), true).await.unwrap();
    assert_eq!(
        events.next_of_type("typing").await.unwrap()["state"],
        "composing"
    );
    gw.engine
        .agent_receipt(id, &ext("101"), ReceiptStatus::Read, hello_seq)
        .await
        .unwrap();
    let receipt = events.next_of_type("receipt").await.unwrap();
    assert_eq!(receipt["status"], "read");
    assert_eq!(receipt["up_to_seq"], hello_seq);

    // Now active: the visitor's messages go straight to Alice.
    visitor
        .say(&session, "c-2", "My sink leaks.")
        .await
        .unwrap();
    events
        .send(json!({ "type": "typing", "state": "composing" }))
        .await
        .unwrap();
    let mut delivered = false;
    let mut typing = false;
    while !(delivered && typing) {
        match gw.next_agent_call().await {
            AgentCall::Deliver { agent, message, .. } => {
                assert_eq!(agent, ext("101"));
                assert_eq!(message.body, "My sink leaks.");
                delivered = true;
            }
            AgentCall::VisitorTyping { composing, .. } => {
                assert!(composing);
                typing = true;
            }
            other => panic!("unexpected agent call {other:?}"),
        }
    }

    // History holds every message once, in order.
    let history = visitor.messages(&session).await.unwrap();
    let bodies: Vec<_> = history.body["messages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["body"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(
        bodies,
        [
            "Hello, is anyone there?",
            "Hi Jane, Alice here.",
            "My sink leaks."
        ]
    );

    // The visitor ends the chat; Alice is told.
    let closed = visitor.close(&session).await.unwrap();
    assert_eq!(closed.status, 200);
    assert_eq!(closed.body["state"], "ended");
    let event = events.next_of_type("closed").await.unwrap();
    assert_eq!(event["by"], "visitor");
    match gw.next_agent_call().await {
        AgentCall::Ended { agent, by, .. } => {
            assert_eq!(agent, ext("101"));
            assert_eq!(by, frontdesk::domain::Party::Visitor);
        }
        other => panic!("expected ended, got {other:?}"),
    }
    let late = visitor
        .say(&session, "c-3", "one more thing")
        .await
        .unwrap();
    assert_eq!(late.status, 409);
    assert_eq!(late.error(), "conversation_ended");

    events.close().await;
    gw.stop().await;
}

#[tokio::test]
async fn a_chatbot_option_shows_its_welcome_and_routes_to_its_queue() {
    let mut gw = TestGateway::spawn().await;
    gw.all_agents_available().await;
    let visitor = Visitor::new(&gw.url);

    let info = visitor.channel("bot").await.unwrap();
    assert_eq!(info.body["mode"], "chatbot");
    assert_eq!(info.body["options"][1]["id"], "support");

    let session = visitor.start("bot", "Jane").await.unwrap();
    let view = visitor.conversation(&session).await.unwrap();
    assert_eq!(view.body["state"], "chatbot_menu");

    let wrong = visitor.choose(&session, "nope").await.unwrap();
    assert_eq!(wrong.status, 422);
    assert_eq!(wrong.error(), "unknown_option");

    let chosen = visitor.choose(&session, "support").await.unwrap();
    assert_eq!(chosen.status, 200, "{:?}", chosen.body);

    let mut events = visitor.events(&session, 0).await.unwrap();
    let welcome = events.next_of_type("message").await.unwrap();
    assert_eq!(welcome["message"]["sender"], "system");
    assert_eq!(
        welcome["message"]["body"],
        "Support will answer you in a moment."
    );
    assert_eq!(
        events.next_of_type("state").await.unwrap()["state"],
        "queued"
    );

    let offer = gw.next_offer().await;
    assert_eq!(offer.conversation.queue.as_deref(), Some("601"));
    assert_eq!(offer.conversation.option_label.as_deref(), Some("Get help"));
    assert_eq!(offer.agents[0].extension, ext("103"));

    let again = visitor.choose(&session, "sales").await.unwrap();
    assert_eq!(again.status, 409);
    assert_eq!(again.error(), "invalid_state");
    gw.stop().await;
}

#[tokio::test]
async fn a_retried_message_is_stored_once() {
    let gw = TestGateway::spawn().await;
    let visitor = Visitor::new(&gw.url);
    let session = visitor.start("live", "Jane").await.unwrap();

    let first = visitor.say(&session, "same-id", "Hello").await.unwrap();
    let retry = visitor.say(&session, "same-id", "Hello").await.unwrap();
    assert_eq!(first.status, 201);
    assert_eq!(retry.status, 200);
    assert_eq!(first.body, retry.body);

    // Concurrent retries too.
    let sends = (0..8).map(|_| visitor.say(&session, "racing", "Hi"));
    let replies = futures::future::join_all(sends).await;
    let created = replies
        .iter()
        .filter(|r| r.as_ref().unwrap().status == 201)
        .count();
    assert_eq!(created, 1);

    let history = visitor.messages(&session).await.unwrap();
    assert_eq!(history.body["messages"].as_array().unwrap().len(), 2);
    gw.stop().await;
}

/// Messages that arrive together are stored in one group commit: each is
/// still stored exactly once, in a gapless order per conversation, copies
/// in the same batch included; an ended chat refuses new ones and still
/// answers a retry of one it stored.
#[tokio::test]
async fn messages_arriving_together_are_each_stored_once() {
    const CHATS: usize = 8;
    const MESSAGES: usize = 10;
    let gw = TestGateway::spawn().await;
    let visitor = Visitor::new(&gw.url);
    let mut sessions = Vec::new();
    for i in 0..CHATS {
        sessions.push(visitor.start("live", &format!("V{i}")).await.unwrap());
    }
    // Every message twice, all at once, every chat at once.
    let sends = sessions.iter().flat_map(|session| {
        (0..MESSAGES).flat_map(move |m| {
            let id = format!("m{m}");
            let body = format!("{} says {m}", session.id);
            [(session, id.clone(), body.clone()), (session, id, body)]
        })
    });
    let replies = futures::future::join_all(sends.map(|(session, id, body)| {
        let visitor = &visitor;
        async move {
            (
                session.id.clone(),
                id.clone(),
                visitor.say(session, &id, &body).await.unwrap(),
            )
        }
    }))
    .await;
    let mut seen: std::collections::HashMap<(String, String), (i64, usize)> = Default::default();
    for (chat, id, reply) in &replies {
        assert!(
            [201, 200].contains(&reply.status.as_u16()),
            "{chat} {id}: {} {}",
            reply.status,
            reply.body
        );
        let seq = reply.body["seq"].as_i64().unwrap();
        let entry = seen.entry((chat.clone(), id.clone())).or_insert((seq, 0));
        assert_eq!(entry.0, seq, "both copies of {id} answer with one seq");
        entry.1 += usize::from(reply.status == 201);
    }
    assert!(
        seen.values().all(|(_, created)| *created == 1),
        "each message created exactly once: {seen:?}"
    );
    for session in &sessions {
        let history = visitor.messages(session).await.unwrap();
        let messages = history.body["messages"].as_array().unwrap();
        assert_eq!(messages.len(), MESSAGES, "{}", history.body);
        let seqs: Vec<i64> = messages
            .iter()
            .map(|m| m["seq"].as_i64().unwrap())
            .collect();
        assert!(seqs.windows(2).all(|w| w[0] < w[1]), "{seqs:?}");
        for m in messages {
            assert!(m["body"].as_str().unwrap().starts_with(&session.id));
        }
    }

    let ended = &sessions[0];
    visitor.close(ended).await.unwrap();
    let retry = visitor.say(ended, "m3", "again").await.unwrap();
    assert_eq!(retry.status, 200, "{}", retry.body);
    assert_eq!(retry.body["seq"], seen[&(ended.id.clone(), "m3".into())].0);
    let late = visitor.say(ended, "after-the-end", "hello?").await.unwrap();
    assert_eq!(late.status, 409, "{}", late.body);
    assert_eq!(late.error(), "conversation_ended");
    gw.stop().await;
}

/// Reads the stream until both the answer to the message frame
/// `client_id` and its `message` event arrived, in whichever order;
/// returns them.
async fn ack_and_event(
    events: &mut frontdesk_tests::visitor::EventStream,
    client_id: &str,
) -> (serde_json::Value, serde_json::Value) {
    let (mut ack, mut event) = (None, None);
    while ack.is_none() || event.is_none() {
        let item = events.next_event().await.unwrap();
        match item["type"].as_str() {
            Some("message_ack" | "message_error") if item["client_id"] == client_id => {
                assert!(ack.is_none(), "two answers to {client_id}: {item}");
                ack = Some(item);
            }
            Some("message") if item["message"]["client_id"] == client_id => {
                assert!(event.is_none(), "two events of {client_id}: {item}");
                event = Some(item);
            }
            _ => {}
        }
    }
    (ack.unwrap(), event.unwrap())
}

/// A message sent as a frame on the event socket (issue 15: one frame,
/// no HTTP request) is acknowledged once committed with its seq, arrives
/// as its `message` event, and is stored once per `client_id` whichever
/// door each copy took; answers come in the order of the frames.
#[tokio::test]
async fn messages_sent_on_the_event_socket_are_acknowledged_and_stored_once() {
    let gw = TestGateway::spawn().await;
    let visitor = Visitor::new(&gw.url).with_origin(ALLOWED_ORIGIN);
    let (session, mut events) = visitor.start_following("live", "Jane").await.unwrap();

    events
        .send_message("ws-1", "Hello over the socket")
        .await
        .unwrap();
    let (ack, event) = ack_and_event(&mut events, "ws-1").await;
    assert_eq!(ack["type"], "message_ack", "{ack}");
    assert_eq!(ack["created"], true);
    let seq = ack["seq"].as_i64().unwrap();
    assert_eq!(event["seq"], seq);
    assert_eq!(event["message"]["seq"], seq);
    assert_eq!(event["message"]["body"], "Hello over the socket");
    assert_eq!(event["message"]["sender"], "visitor");

    // The same client_id by POST: the first copy, not a second message.
    let retry = visitor
        .say(&session, "ws-1", "Hello over the socket")
        .await
        .unwrap();
    assert_eq!(retry.status, 200, "{}", retry.body);
    assert_eq!(retry.body["seq"], seq);

    // And the other way round: posted first, then sent on the socket.
    let posted = visitor.say(&session, "http-1", "Posted").await.unwrap();
    assert_eq!(posted.status, 201, "{}", posted.body);
    events.send_message("http-1", "Posted").await.unwrap();
    let again = events.answer_to("http-1").await.unwrap();
    assert_eq!(again["type"], "message_ack", "{again}");
    assert_eq!(again["created"], false);
    assert_eq!(again["seq"], posted.body["seq"]);

    // Twice on the socket, then several frames without waiting: each is
    // answered, in order, and the copy with the first's seq.
    events.send_message("ws-2", "Twice").await.unwrap();
    events.send_message("ws-2", "Twice").await.unwrap();
    for i in 0..5 {
        let id = format!("burst-{i}");
        events
            .send_message(&id, &format!("Burst {i}"))
            .await
            .unwrap();
    }
    let mut answers = Vec::new();
    while answers.len() < 7 {
        let item = events.next_event().await.unwrap();
        if item["type"] == "message_ack" || item["type"] == "message_error" {
            assert_eq!(item["type"], "message_ack", "{item}");
            answers.push(item);
        }
    }
    let ids: Vec<&str> = answers
        .iter()
        .map(|a| a["client_id"].as_str().unwrap())
        .collect();
    assert_eq!(
        ids,
        ["ws-2", "ws-2", "burst-0", "burst-1", "burst-2", "burst-3", "burst-4"]
    );
    assert_eq!(
        (answers[0]["created"].clone(), answers[1]["created"].clone()),
        (json!(true), json!(false))
    );
    assert_eq!(answers[0]["seq"], answers[1]["seq"]);
    let seqs: Vec<i64> = answers[1..]
        .iter()
        .map(|a| a["seq"].as_i64().unwrap())
        .collect();
    assert!(seqs.windows(2).all(|w| w[0] < w[1]), "{seqs:?}");

    let history = visitor.messages(&session).await.unwrap();
    let bodies: Vec<&str> = history.body["messages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["body"].as_str().unwrap())
        .collect();
    assert_eq!(
        bodies,
        [
            "Hello over the socket",
            "Posted",
            "Twice",
            "Burst 0",
            "Burst 1",
            "Burst 2",
            "Burst 3",
            "Burst 4"
        ]
    );
    gw.stop().await;
}

/// A message frame is refused as the POST would refuse it, with the REST
/// error's code (and its extras) in a `message_error`; the socket stays
/// open. A message frame without a `client_id` cannot be answered and is
/// ignored like any unknown frame.
#[tokio::test]
async fn a_message_frame_is_refused_with_the_rest_error_codes() {
    const PER_MINUTE: usize = 3;
    let gw = TestGateway::spawn_with(|config| {
        config.limits.messages_per_minute_per_conversation = PER_MINUTE as u32;
    })
    .await;
    let visitor = Visitor::new(&gw.url).with_origin(ALLOWED_ORIGIN);
    let info = visitor.channel("live").await.unwrap();
    let max = info.body["limits"]["max_message_chars"].as_u64().unwrap() as usize;
    let (session, mut events) = visitor.start_following("live", "Jane").await.unwrap();

    let refusal = |answer: &serde_json::Value| {
        assert_eq!(answer["type"], "message_error", "{answer}");
        assert!(answer["message"].as_str().is_some_and(|m| !m.is_empty()));
        answer["error"].as_str().unwrap().to_owned()
    };
    events
        .send_message("long", &"a".repeat(max + 1))
        .await
        .unwrap();
    let long = events.answer_to("long").await.unwrap();
    assert_eq!(refusal(&long), "too_long");
    assert_eq!(long["limit"], max);
    events.send_message("empty", "   ").await.unwrap();
    assert_eq!(
        refusal(&events.answer_to("empty").await.unwrap()),
        "empty_message"
    );
    events
        .send(json!({ "type": "message", "client_id": "no-body" }))
        .await
        .unwrap();
    assert_eq!(
        refusal(&events.answer_to("no-body").await.unwrap()),
        "invalid_json"
    );
    events
        .send(json!({ "type": "message", "body": "no client id" }))
        .await
        .unwrap();

    // Refused messages cost nothing of the rate; then the conversation's
    // budget is shared with the POST.
    for i in 0..PER_MINUTE {
        let id = format!("m{i}");
        events.send_message(&id, "hi").await.unwrap();
        let answer = events
            .next_matching(Duration::from_secs(10), |e| {
                e["type"] == "message_ack" || e["type"] == "message_error"
            })
            .await
            .unwrap();
        assert_eq!(
            (answer["type"].as_str(), answer["client_id"].as_str()),
            (Some("message_ack"), Some(id.as_str())),
            "the frame without a client_id went unanswered: {answer}"
        );
    }
    events.send_message("flood", "hi").await.unwrap();
    let flood = events.answer_to("flood").await.unwrap();
    assert_eq!(refusal(&flood), "rate_limited");
    assert!(flood["retry_after"].as_u64().unwrap() >= 1);
    let posted = visitor.say(&session, "flood", "hi").await.unwrap();
    assert_eq!(
        (posted.status.as_u16(), posted.error()),
        (429, "rate_limited")
    );
    let history = visitor.messages(&session).await.unwrap();
    assert_eq!(
        history.body["messages"].as_array().unwrap().len(),
        PER_MINUTE
    );

    // An ended chat: a new message is refused, a copy of a stored one
    // answered with the first.
    let (ended, mut events) = visitor.start_following("live", "John").await.unwrap();
    events.send_message("before", "Bye").await.unwrap();
    let before = events.answer_to("before").await.unwrap();
    assert_eq!(before["type"], "message_ack", "{before}");
    visitor.close(&ended).await.unwrap();
    events.next_of_type("closed").await.unwrap();
    events.send_message("after", "Hello?").await.unwrap();
    assert_eq!(
        refusal(&events.answer_to("after").await.unwrap()),
        "conversation_ended"
    );
    events.send_message("before", "Bye").await.unwrap();
    let copy = events.answer_to("before").await.unwrap();
    assert_eq!(
        (copy["type"].clone(), copy["created"].clone()),
        (json!("message_ack"), json!(false))
    );
    assert_eq!(copy["seq"], before["seq"]);
    gw.stop().await;
}

#[tokio::test]
async fn a_reconnecting_widget_gets_exactly_the_events_it_missed() {
    let gw = TestGateway::spawn().await;
    gw.all_agents_available().await;
    let visitor = Visitor::new(&gw.url);
    let session = visitor.start("live", "Jane").await.unwrap();
    let id = session.id.parse().unwrap();

    let mut events = visitor.events(&session, 0).await.unwrap();
    gw.engine.agent_accept(id, &ext("101")).await.unwrap();
    let joined = events.next_of_type("agent_joined").await.unwrap();
    let last_seen = joined["seq"].as_i64().unwrap();
    events.close().await;

    // While disconnected: three agent messages and one visitor message.
    for i in 1..=3 {
        gw.engine
            .agent_message(id, &ext("101"), &format!("missed {i}"))
            .await
            .unwrap();
    }
    visitor.say(&session, "v-1", "also missed").await.unwrap();

    let mut resumed = visitor.events(&session, last_seen).await.unwrap();
    let mut seqs = Vec::new();
    let mut bodies = Vec::new();
    for _ in 0..4 {
        let event = resumed.next_event().await.unwrap();
        seqs.push(event["seq"].as_i64().unwrap());
        bodies.push(event["message"]["body"].as_str().unwrap().to_owned());
    }
    assert_eq!(bodies, ["missed 1", "missed 2", "missed 3", "also missed"]);
    let expected: Vec<i64> = (last_seen + 1..=last_seen + 4).collect();
    assert_eq!(seqs, expected, "no gap and no duplicate");

    // Then live events continue from there, still without a gap.
    gw.engine
        .agent_message(id, &ext("101"), "live again")
        .await
        .unwrap();
    let live = resumed.next_event().await.unwrap();
    assert_eq!(live["seq"].as_i64().unwrap(), last_seen + 5);
    assert_eq!(live["message"]["body"], "live again");
    gw.stop().await;
}

#[tokio::test]
async fn an_agent_going_offline_mid_chat_requeues_it_to_another_agent() {
    let mut gw = TestGateway::spawn().await;
    gw.all_agents_available().await;
    let visitor = Visitor::new(&gw.url);
    let session = visitor.start("live", "Jane").await.unwrap();
    let id = session.id.parse().unwrap();
    gw.next_offer().await;
    gw.engine.agent_accept(id, &ext("101")).await.unwrap();
    visitor
        .say(&session, "v-1", "before the drop")
        .await
        .unwrap();

    let mut events = visitor.events(&session, 0).await.unwrap();
    gw.engine.set_agent_available(&ext("101"), false).await;
    let left = events.next_of_type("agent_left").await.unwrap();
    assert_eq!(left["agent"]["name"], "Alice Martin");

    // Bob gets the offer with the history so far: nothing typed is lost.
    let offer = gw.next_offer().await;
    assert_eq!(offer.agents.len(), 1);
    assert_eq!(offer.agents[0].extension, ext("102"));
    assert!(offer.history.iter().any(|m| m.body == "before the drop"));
    gw.engine.agent_accept(id, &ext("102")).await.unwrap();
    let joined = events.next_of_type("agent_joined").await.unwrap();
    assert_eq!(joined["agent"]["name"], "Bob Durand");
    gw.stop().await;
}

#[tokio::test]
async fn an_unanswered_offer_times_out_and_rings_again() {
    let mut gw = TestGateway::spawn_with(|config| {
        config.queues[0].ring_timeout_secs = 1;
    })
    .await;
    gw.all_agents_available().await;
    let visitor = Visitor::new(&gw.url);
    let session = visitor.start("live", "Jane").await.unwrap();
    let first = gw.next_offer().await;
    assert_eq!(first.agents.len(), 2);
    // Nobody answers: the offer is withdrawn and made again.
    let mut withdrawn = false;
    loop {
        match gw.next_agent_call().await {
            AgentCall::Withdraw { taken_by, .. } => {
                assert_eq!(taken_by, None);
                withdrawn = true;
            }
            AgentCall::Offer(again) => {
                assert!(withdrawn, "the old offer is withdrawn first");
                assert_eq!(again.conversation.id.to_string(), session.id);
                break;
            }
            other => panic!("unexpected {other:?}"),
        }
    }
    gw.stop().await;
}

#[tokio::test]
async fn queue_positions_move_up_as_chats_ahead_are_taken() {
    let mut gw = TestGateway::spawn().await;
    let visitor = Visitor::new(&gw.url);
    let first = visitor.start("live", "First").await.unwrap();
    let second = visitor.start("live", "Second").await.unwrap();
    let mut events = visitor.events(&second, 0).await.unwrap();
    assert_eq!(
        events.next_of_type("queue_position").await.unwrap()["position"],
        2
    );

    // Only Alice comes online: she is offered the first visitor.
    gw.engine.set_agent_available(&ext("101"), true).await;
    let offer = gw.next_offer().await;
    assert_eq!(offer.conversation.id.to_string(), first.id);
    gw.engine
        .agent_accept(offer.conversation.id, &ext("101"))
        .await
        .unwrap();
    assert_eq!(
        events.next_of_type("queue_position").await.unwrap()["position"],
        1
    );
    gw.stop().await;
}

/// Every `queue_position` a stream brings until `position` (each within
/// `within`), in order.
async fn positions_until(
    events: &mut frontdesk_tests::visitor::EventStream,
    position: u64,
    within: Duration,
) -> Vec<u64> {
    let mut seen = Vec::new();
    loop {
        let event = events
            .next_matching(within, |e| e["type"] == "queue_position")
            .await
            .unwrap();
        seen.push(event["position"].as_u64().unwrap());
        if seen.last() == Some(&position) {
            return seen;
        }
    }
}

#[tokio::test]
async fn queue_positions_are_told_at_start_and_coalesced_as_the_line_moves() {
    let gw = TestGateway::spawn().await;
    let visitor = Visitor::new(&gw.url);
    let mut line = Vec::new();
    for n in 1..=20u64 {
        let reply = visitor
            .try_start("live", &format!("Visitor {n}"), "v@example.com")
            .await
            .unwrap();
        assert_eq!(reply.status, 201, "{:?}", reply.body);
        assert_eq!(
            reply.body["conversation"]["queue_position"], n,
            "{:?}",
            reply.body
        );
        let session = frontdesk_tests::visitor::Session::from_start(&reply.body).unwrap();
        let mut events = visitor.events(&session, 0).await.unwrap();
        let first = events.next_event().await.unwrap();
        assert_eq!(first["state"], "queued");
        let told = events.next_event().await.unwrap();
        assert_eq!(told["type"], "queue_position");
        assert_eq!(told["position"], n);
        line.push((session, events));
    }

    // The first ten leave at once: the other ten move up by ten, told in
    // a pass or two, not once per visitor who left.
    let rest = line.split_off(10);
    let leaving = line.iter().map(|(session, _)| visitor.close(session));
    for closed in futures::future::join_all(leaving).await {
        assert_eq!(closed.unwrap().status, 200);
    }
    for (n, (session, events)) in (1..).zip(rest) {
        let mut events = events;
        let seen = positions_until(&mut events, n, Duration::from_secs(10)).await;
        assert!(seen.len() <= 3, "visitor now {n} was told {seen:?}");
        // Nothing more: the last position told is the rank.
        let after = events.next_item(Duration::from_millis(1200)).await;
        assert!(after.is_err(), "told more: {after:?}");
        let view = visitor.conversation(&session).await.unwrap();
        assert_eq!(view.body["queue_position"], n, "{:?}", view.body);
    }
    gw.stop().await;
}

/// Starts that arrive together are created in one group commit (on
/// PostgreSQL in a few multi-row statements for the whole batch): each
/// takes a place of its own in the line, and the last position each
/// visitor is told is its rank.
#[tokio::test]
async fn starts_arriving_together_each_take_a_place_of_their_own() {
    const STARTS: u64 = 30;
    let gw = TestGateway::spawn().await;
    let visitor = Visitor::new(&gw.url);
    let starts = (1..=STARTS).map(|n| {
        let visitor = &visitor;
        async move {
            let reply = (visitor.try_start("live", &format!("Visitor {n}"), "v@example.com"))
                .await
                .unwrap();
            assert_eq!(reply.status, 201, "{:?}", reply.body);
            let session = frontdesk_tests::visitor::Session::from_start(&reply.body).unwrap();
            let told = reply.body["conversation"]["queue_position"]
                .as_u64()
                .unwrap();
            (session, told)
        }
    });
    let line = futures::future::join_all(starts).await;
    // Each joined at the end of the line as the ones before it committed
    // it, so the positions told at once are 1..N, one each.
    let mut told: Vec<u64> = line.iter().map(|(_, told)| *told).collect();
    told.sort_unstable();
    assert_eq!(told, (1..=STARTS).collect::<Vec<_>>());
    // Wherever each started, the line settles on one rank each, and the
    // last position a visitor was told is that rank.
    let settled = line.iter().map(|(session, told)| {
        let visitor = &visitor;
        async move {
            let mut events = visitor.events(session, 0).await.unwrap();
            let mut last = None;
            while let Ok(event) = events
                .next_matching(Duration::from_millis(1500), |e| {
                    e["type"] == "queue_position"
                })
                .await
            {
                last = event["position"].as_u64();
            }
            let view = visitor.conversation(session).await.unwrap();
            let rank = view.body["queue_position"].as_u64().unwrap();
            assert_eq!(last, Some(rank), "{:?}", view.body);
            assert_eq!(rank, *told, "the position told at the start is its rank");
            rank
        }
    });
    let mut ranks = futures::future::join_all(settled).await;
    ranks.sort_unstable();
    assert_eq!(ranks, (1..=STARTS).collect::<Vec<_>>());
    gw.stop().await;
}

#[tokio::test]
async fn shutdown_closes_websockets_with_going_away() {
    let gw = TestGateway::spawn().await;
    let visitor = Visitor::new(&gw.url);
    let session = visitor.start("live", "Jane").await.unwrap();
    let mut events = visitor.events(&session, 0).await.unwrap();
    events.next_event().await.unwrap();
    let stopping = tokio::spawn(gw.stop());
    loop {
        match events.next_item(Duration::from_secs(10)).await.unwrap() {
            StreamItem::Closed(code) => {
                assert_eq!(code, Some(1001));
                break;
            }
            StreamItem::Event(_) => continue,
        }
    }
    stopping.await.unwrap();
}

#[tokio::test]
async fn a_visitor_who_waits_too_long_overflows_to_the_next_queue() {
    let mut gw = TestGateway::spawn_with(|config| {
        config.queues[0].max_wait_secs = Some(1);
        config.queues[0].overflow =
            Some(pbx_adapter::queue::Overflow::Queue("601".parse().unwrap()));
    })
    .await;
    // Nobody in queue 600 is available; Chloé (103) of queue 601 is.
    gw.engine.set_agent_available(&ext("103"), true).await;
    let visitor = Visitor::new(&gw.url);
    let session = visitor.start("live", "Jane").await.unwrap();
    let offer = gw.next_offer().await;
    assert_eq!(offer.conversation.id.to_string(), session.id);
    assert_eq!(offer.conversation.queue.as_deref(), Some("601"));
    assert_eq!(offer.agents[0].extension, ext("103"));
    gw.stop().await;
}

#[tokio::test]
async fn a_visitor_who_waits_too_long_gets_the_contact_alternatives() {
    let gw = TestGateway::spawn_with(|config| {
        config.queues[0].max_wait_secs = Some(1);
        config.channels[0].closed.alternatives = vec![frontdesk::config::Alternative {
            kind: frontdesk::config::AlternativeKind::Phone,
            label: "Call us".into(),
            value: "+33 1 23 45 67 89".into(),
        }];
    })
    .await;
    let visitor = Visitor::new(&gw.url);
    let session = visitor.start("live", "Jane").await.unwrap();
    let mut events = visitor.events(&session, 0).await.unwrap();
    let notice = events.next_of_type("message").await.unwrap();
    assert_eq!(notice["message"]["sender"], "system");
    let body = notice["message"]["body"].as_str().unwrap();
    assert!(body.contains("Call us: +33 1 23 45 67 89"), "{body}");
    let closed = events.next_of_type("closed").await.unwrap();
    assert_eq!(closed["by"], "system");
    assert_eq!(closed["reason"], "no_agent_available");
    gw.stop().await;
}

#[tokio::test]
async fn a_waiting_chat_whose_visitor_left_ends_with_a_note_for_their_return() {
    let gw = TestGateway::spawn_with(|config| config.waiting.abandoned_after_secs = 1).await;
    let visitor = Visitor::new(&gw.url);
    // One visitor keeps the widget open, the other closed the tab.
    let (present, present_events) = visitor.start_following("live", "Stays").await.unwrap();
    let gone = visitor.start("live", "Leaves").await.unwrap();

    let deadline = tokio::time::Instant::now() + Duration::from_secs(15);
    loop {
        let view = visitor.conversation(&gone).await.unwrap();
        if view.body["state"] == "ended" {
            break;
        }
        assert!(tokio::time::Instant::now() < deadline, "{}", view.body);
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // Back on the page, the visitor reads why.
    let mut events = visitor.events(&gone, 0).await.unwrap();
    let note = events.next_of_type("message").await.unwrap();
    assert_eq!(note["message"]["sender"], "system");
    assert!(
        note["message"]["body"]
            .as_str()
            .unwrap()
            .contains("you left while waiting"),
        "{note}"
    );
    assert_eq!(
        events.next_of_type("closed").await.unwrap()["reason"],
        "abandoned"
    );

    // Whoever kept the widget open still waits, well past the limit.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let view = visitor.conversation(&present).await.unwrap();
    assert_eq!(view.body["state"], "queued", "{}", view.body);
    present_events.close().await;
    gw.stop().await;
}

#[tokio::test]
async fn a_full_queue_refuses_new_chats_with_503() {
    let gw = TestGateway::spawn_with(|config| config.waiting.max_per_queue = 2).await;
    let visitor = Visitor::new(&gw.url);
    visitor.start("live", "One").await.unwrap();
    visitor.start("live", "Two").await.unwrap();
    let third = visitor
        .try_start("live", "Three", "three@example.com")
        .await
        .unwrap();
    assert_eq!(third.status, 503, "{}", third.body);
    assert_eq!(third.error(), "queue_full");
    assert_eq!(third.body["retry_after"], 60);
    gw.stop().await;
}

#[tokio::test]
async fn one_client_cannot_keep_more_than_its_share_of_chats_waiting() {
    let gw = TestGateway::spawn_with(|config| config.waiting.max_per_client = 2).await;
    let visitor = Visitor::new(&gw.url);
    let first = visitor.start("live", "One").await.unwrap();
    visitor.start("bot", "Two").await.unwrap();
    let third = visitor
        .try_start("live", "Three", "three@example.com")
        .await
        .unwrap();
    assert_eq!(third.status, 429, "{}", third.body);
    assert_eq!(third.error(), "too_many_waiting");
    assert_eq!(third.body["limit"], 2);
    // Once one of them is over, there is room again.
    visitor.close(&first).await.unwrap();
    visitor.start("live", "Three").await.unwrap();
    gw.stop().await;
}
