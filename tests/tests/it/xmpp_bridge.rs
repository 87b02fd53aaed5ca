//! The XMPP bridge end to end: a visitor on the real HTTP API and
//! WebSocket, the real gateway with its XEP-0114 component, a throwaway
//! Prosody (ejabberd for the component link over TLS), and agents that are
//! real XMPP clients (slixmpp).

use std::time::Duration;

use frontdesk_tests::gateway::TestGateway;
use frontdesk_tests::visitor::{EventStream, Session, Visitor};
use frontdesk_tests::xmpp_server::{Account, XmppAgent, XmppServer, COMPONENT_DOMAIN};
use serde_json::{json, Value};

const WAIT: Duration = Duration::from_secs(20);

/// Prosody with agents 101 and 102 (pre-approved subscriptions), and a
/// gateway whose agents 101/102 are those accounts.
pub(crate) async fn setup() -> (XmppServer, TestGateway) {
    let prosody = XmppServer::prosody(&[
        Account::new("101").preapproved(),
        Account::new("102").preapproved(),
        Account::new("stranger"),
    ])
    .await
    .unwrap();
    let xmpp = prosody.bridge_config();
    let gw = TestGateway::spawn_bridged(move |config| {
        config.agents[0].xmpp = Some("101@localhost".parse().unwrap());
        config.agents[1].xmpp = Some("102@localhost".parse().unwrap());
        config.xmpp = Some(xmpp);
    })
    .await;
    (prosody, gw)
}

/// Waits until the engine sees both agents available (their presence
/// reached the component).
async fn agents_online(gw: &TestGateway) {
    for ext in ["101", "102"] {
        agents_online_one(gw, ext).await;
    }
}

async fn agents_online_one(gw: &TestGateway, ext: &str) {
    let ext = ext.parse().unwrap();
    tokio::time::timeout(WAIT, gw.engine.until_available(&ext))
        .await
        .unwrap_or_else(|_| panic!("agent {ext} never became available"));
}

async fn next_message(agent: &mut XmppAgent, from_prefix: &str) -> Value {
    agent.expect_message_from(from_prefix).await.unwrap()
}

async fn body_from(agent: &mut XmppAgent, address: &str, needle: &str) -> Value {
    let address = address.to_owned();
    let needle = needle.to_owned();
    agent
        .expect(WAIT, move |e| {
            e["event"] == "message"
                && e["from"].as_str().is_some_and(|f| f.starts_with(&address))
                && e["body"].as_str().is_some_and(|b| b.contains(&needle))
        })
        .await
        .unwrap()
}

async fn start_chat(gw: &TestGateway, name: &str) -> (Visitor, Session, EventStream, String) {
    let visitor = Visitor::new(&gw.url);
    let (session, events) = visitor.start_following("live", name).await.unwrap();
    let address = format!("{}@{COMPONENT_DOMAIN}", session.agent_localpart());
    (visitor, session, events, address)
}

#[tokio::test]
async fn agents_answer_visitors_from_an_ordinary_xmpp_client() {
    let (prosody, gw) = setup().await;
    let mut alice = prosody.agent("101").await.unwrap();
    let mut bob = prosody.agent("102").await.unwrap();
    agents_online(&gw).await;

    let (visitor, session, mut events, address) = start_chat(&gw, "Jane Doe").await;

    // Ring-all: both agents get a first message introducing the visitor,
    // from the visitor's own address, with her name as nick.
    for agent in [&mut alice, &mut bob] {
        let card = next_message(agent, &address).await;
        assert_eq!(card["nick"], "Jane Doe");
        let text = card["body"].as_str().unwrap();
        assert!(text.contains("Jane Doe <jane@example.com>"), "{text}");
        assert!(text.contains("Queue: 600"), "{text}");
        assert!(
            text.contains("Page: https://allowed.example/pricing"),
            "{text}"
        );
    }
    // A message typed while the offer rings reaches every ringing agent.
    visitor
        .say(&session, "c-1", "Is anyone there?")
        .await
        .unwrap();
    let mut ringing_stanza_id = String::new();
    for agent in [&mut alice, &mut bob] {
        let message = body_from(agent, &address, "Is anyone there?").await;
        assert_eq!(message["receipt_request"], true);
        ringing_stanza_id = message["id"].as_str().unwrap().to_owned();
    }

    // Alice replies first: she takes the chat, Bob is told.
    alice
        .command(json!({"cmd": "send", "to": address, "body": "Hi Jane, Alice here.", "id": "a-1", "request_receipt": true}))
        .await
        .unwrap();
    let joined = events.next_of_type("agent_joined").await.unwrap();
    assert_eq!(joined["agent"]["name"], "Alice Martin");
    let reply = events.next_of_type("message").await.unwrap();
    assert_eq!(reply["message"]["body"], "Hi Jane, Alice here.");
    // The gateway confirms it stored Alice's message (XEP-0184).
    let address_for_receipt = address.clone();
    alice
        .expect(WAIT, move |e| {
            e["event"] == "message"
                && e["received"] == "a-1"
                && e["from"]
                    .as_str()
                    .is_some_and(|f| f.starts_with(&address_for_receipt))
        })
        .await
        .unwrap();
    body_from(&mut bob, &address, "Alice Martin took this chat").await;

    // Bob's late answer does not reach the visitor; he is told why.
    bob.send(&address, "I can help too", "b-1").await.unwrap();
    let bounced = bob
        .expect(WAIT, |e| e["event"] == "message" && e["type"] == "error")
        .await
        .unwrap();
    assert!(bounced["error_text"]
        .as_str()
        .unwrap_or_default()
        .contains("another agent"));

    // Nor may he look at the visitor's details, type into her chat or mark
    // her messages read: refused, and nothing reaches her.
    bob.send(&address, "/info", "b-2").await.unwrap();
    let refused = bob
        .expect(WAIT, |e| e["event"] == "message" && e["type"] == "error")
        .await
        .unwrap();
    let text = refused["error_text"].as_str().unwrap_or_default();
    assert!(text.contains("another agent"), "{text}");
    assert!(!text.contains("jane@example.com"), "{text}");
    bob.command(json!({"cmd": "chatstate", "to": address, "state": "paused"}))
        .await
        .unwrap();
    let ringing_id = ringing_stanza_id.clone();
    bob.command(json!({"cmd": "displayed", "to": address, "id": ringing_id}))
        .await
        .unwrap();

    // Typing both ways, then delivery and read marks for the visitor.
    alice
        .command(json!({"cmd": "chatstate", "to": address, "state": "composing"}))
        .await
        .unwrap();
    assert_eq!(
        events.next_of_type("typing").await.unwrap()["state"],
        "composing"
    );
    events
        .send(json!({"type": "typing", "state": "composing"}))
        .await
        .unwrap();
    alice
        .expect(WAIT, |e| {
            e["event"] == "message" && e["chatstate"] == "composing"
        })
        .await
        .unwrap();
    let sent = visitor
        .say(&session, "c-2", "My sink leaks.")
        .await
        .unwrap();
    let seq = sent.body["seq"].as_i64().unwrap();
    let message = body_from(&mut alice, &address, "My sink leaks.").await;
    let stanza_id = message["id"].as_str().unwrap().to_owned();
    alice
        .command(json!({"cmd": "receipt", "to": address, "id": stanza_id}))
        .await
        .unwrap();
    let receipt = events.next_of_type("receipt").await.unwrap();
    assert_eq!(
        (receipt["status"].as_str(), receipt["up_to_seq"].as_i64()),
        (Some("delivered"), Some(seq))
    );
    alice
        .command(json!({"cmd": "displayed", "to": address, "id": stanza_id}))
        .await
        .unwrap();
    let read = events.next_of_type("receipt").await.unwrap();
    assert_eq!(read["status"], "read");

    // The agent ends the chat from the chat window.
    alice.send(&address, "/end", "a-2").await.unwrap();
    body_from(&mut alice, &address, "Chat ended").await;
    let closed = events.next_of_type("closed").await.unwrap();
    assert_eq!(closed["by"], "agent");
    alice
        .send(&address, "are you still there?", "a-3")
        .await
        .unwrap();
    let late = alice
        .expect(WAIT, |e| e["event"] == "message" && e["type"] == "error")
        .await
        .unwrap();
    assert!(late["error_text"]
        .as_str()
        .unwrap_or_default()
        .contains("ended"));
    gw.stop().await;
}

#[tokio::test]
async fn agent_commands_work_from_the_chat_window() {
    let (prosody, gw) = setup().await;
    let mut alice = prosody.agent("101").await.unwrap();
    let mut bob = prosody.agent("102").await.unwrap();
    agents_online(&gw).await;
    let (_visitor, _session, mut events, address) = start_chat(&gw, "Jane Doe").await;
    next_message(&mut alice, &address).await;
    alice.send(&address, "Hello!", "a-1").await.unwrap();
    events.next_of_type("agent_joined").await.unwrap();

    alice.send(&address, "/help", "a-2").await.unwrap();
    body_from(&mut alice, &address, "/transfer <queue or agent extension>").await;
    alice.send(&address, "/info", "a-3").await.unwrap();
    body_from(&mut alice, &address, "Jane Doe <jane@example.com>").await;
    alice.send(&address, "/queue", "a-4").await.unwrap();
    body_from(&mut alice, &address, "600 Sales: 0 waiting").await;
    alice.send(&address, "/dance", "a-5").await.unwrap();
    body_from(&mut alice, &address, "Unknown command /dance").await;
    // None of that reached the visitor.
    let history = _visitor.messages(&_session).await.unwrap();
    let bodies: Vec<&str> = history.body["messages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["body"].as_str().unwrap())
        .collect();
    assert_eq!(bodies, ["Hello!"]);

    // Transfer to Bob (agent 102): the visitor is told, Bob is offered it.
    alice.send(&address, "/transfer 102", "a-6").await.unwrap();
    body_from(&mut alice, &address, "Transferred to Bob Durand").await;
    events.next_of_type("agent_left").await.unwrap();
    let card = body_from(&mut bob, &address, "New chat waiting").await;
    assert_eq!(card["nick"], "Jane Doe");
    bob.send(&address, "Bob here.", "b-1").await.unwrap();
    let joined = events.next_of_type("agent_joined").await.unwrap();
    assert_eq!(joined["agent"]["name"], "Bob Durand");
    gw.stop().await;
}

/// The bridge handles chats side by side (issue 15): two agents answering
/// three chats each, every message sent without waiting, interleaved
/// across chats. Each visitor gets their agent's messages in the order
/// sent, each once, and each agent a receipt for every one (stored first).
#[tokio::test]
async fn agents_answering_many_chats_at_once_keep_each_chats_order() {
    const CHATS: usize = 6;
    const MESSAGES: usize = 15;
    let (prosody, gw) = setup().await;
    let mut alice = prosody.agent("101").await.unwrap();
    let mut bob = prosody.agent("102").await.unwrap();
    agents_online(&gw).await;

    // Chat i is taken by Alice when i is even, by Bob when odd (three
    // each: the queue's default limit per agent).
    let mut chats = Vec::new();
    for i in 0..CHATS {
        let (visitor, session, mut events, address) = start_chat(&gw, &format!("V{i}")).await;
        let owner = if i % 2 == 0 { &mut alice } else { &mut bob };
        body_from(owner, &address, "New chat waiting").await;
        owner
            .send(&address, &format!("take-{i}"), &format!("t-{i}"))
            .await
            .unwrap();
        events.next_of_type("agent_joined").await.unwrap();
        chats.push((visitor, session, events, address));
    }

    for n in 0..MESSAGES {
        for (i, (_, _, _, address)) in chats.iter().enumerate() {
            let owner = if i % 2 == 0 { &mut alice } else { &mut bob };
            owner
                .command(json!({"cmd": "send", "to": address, "body": format!("m{i}-{n}"), "id": format!("x-{i}-{n}"), "request_receipt": true}))
                .await
                .unwrap();
        }
    }

    let expected = |i: usize| {
        (0..MESSAGES)
            .map(|n| format!("m{i}-{n}"))
            .collect::<Vec<_>>()
    };
    for (i, (visitor, session, events, _)) in chats.iter_mut().enumerate() {
        let prefix = format!("m{i}-");
        let mut got = Vec::new();
        while got.len() < MESSAGES {
            let event = events
                .next_matching(WAIT, |e| {
                    e["type"] == "message"
                        && e["message"]["body"]
                            .as_str()
                            .is_some_and(|b| b.starts_with("m"))
                })
                .await
                .unwrap();
            let body = event["message"]["body"].as_str().unwrap().to_owned();
            assert!(body.starts_with(&prefix), "chat {i} got {body}");
            got.push(body);
        }
        assert_eq!(got, expected(i), "chat {i}: order as sent");
        // Stored once each: the transcript holds exactly these, in order.
        let history = visitor.messages(session).await.unwrap();
        let stored: Vec<String> = history.body["messages"]
            .as_array()
            .unwrap()
            .iter()
            .filter_map(|m| m["body"].as_str())
            .filter(|b| b.starts_with(&prefix))
            .map(str::to_owned)
            .collect();
        assert_eq!(stored, expected(i), "chat {i}: stored once each");
    }

    // Every message was acknowledged to its agent.
    for (parity, agent) in [(0, &mut alice), (1, &mut bob)] {
        let mut waiting: std::collections::HashSet<String> = (0..CHATS)
            .filter(|i| i % 2 == parity)
            .flat_map(|i| (0..MESSAGES).map(move |n| format!("x-{i}-{n}")))
            .collect();
        while !waiting.is_empty() {
            let receipt = agent
                .expect(WAIT, |e| {
                    e["event"] == "message" && e["received"].is_string()
                })
                .await
                .unwrap();
            waiting.remove(receipt["received"].as_str().unwrap());
        }
    }
    gw.stop().await;
}

#[tokio::test]
async fn an_agent_going_offline_mid_chat_hands_it_back_to_the_queue() {
    let (prosody, gw) = setup().await;
    let mut alice = prosody.agent("101").await.unwrap();
    let mut bob = prosody.agent("102").await.unwrap();
    agents_online(&gw).await;
    let (visitor, session, mut events, address) = start_chat(&gw, "Jane").await;
    next_message(&mut alice, &address).await;
    alice.send(&address, "Hi, Alice here", "a-1").await.unwrap();
    events.next_of_type("agent_joined").await.unwrap();
    visitor
        .say(&session, "c-1", "before the drop")
        .await
        .unwrap();
    body_from(&mut alice, &address, "before the drop").await;

    alice.command(json!({"cmd": "quit"})).await.unwrap();
    let left = events.next_of_type("agent_left").await.unwrap();
    assert_eq!(left["agent"]["name"], "Alice Martin");
    // Bob gets the offer and the history: nothing typed is lost.
    body_from(&mut bob, &address, "New chat waiting").await;
    body_from(&mut bob, &address, "before the drop").await;
    gw.stop().await;
}

#[tokio::test]
async fn a_prosody_restart_mid_chat_loses_nothing() {
    let (mut prosody, gw) = setup().await;
    let mut alice = prosody.agent("101").await.unwrap();
    agents_online_one(&gw, "101").await;
    let (visitor, session, mut events, address) = start_chat(&gw, "Jane").await;
    next_message(&mut alice, &address).await;
    alice.send(&address, "Hi", "a-1").await.unwrap();
    events.next_of_type("agent_joined").await.unwrap();

    // Alice's client goes with the server (a reconnecting client would
    // race the new one below for the messages).
    drop(alice);
    prosody.kill();
    // The visitor keeps writing while the XMPP server is down.
    for i in 1..=3 {
        let reply = visitor
            .say(&session, &format!("c-{i}"), &format!("during outage {i}"))
            .await
            .unwrap();
        assert_eq!(reply.status, 201);
    }
    prosody.restart().await.unwrap();
    let mut alice = prosody.agent("101").await.unwrap();
    for i in 1..=3 {
        body_from(&mut alice, &address, &format!("during outage {i}")).await;
    }
    gw.stop().await;
}

#[tokio::test]
async fn a_visitors_file_reaches_the_agent_as_a_link_it_can_download() {
    let (prosody, gw) = setup().await;
    let mut alice = prosody.agent("101").await.unwrap();
    agents_online_one(&gw, "101").await;
    let (visitor, session, mut events, address) = start_chat(&gw, "Jane").await;
    next_message(&mut alice, &address).await;
    alice
        .send(&address, "Hi, send me a photo", "a-1")
        .await
        .unwrap();
    events.next_of_type("agent_joined").await.unwrap();

    let png = [
        &[0x89u8, b'P', b'N', b'G', 0x0d, 0x0a, 0x1a, 0x0a][..],
        &[0u8; 64][..],
    ]
    .concat();
    let uploaded = visitor
        .upload(&session, "leak.png", png.clone())
        .await
        .unwrap();
    assert_eq!(uploaded.status, 201, "{}", uploaded.body);

    let message = body_from(&mut alice, &address, "leak.png").await;
    let url = message["oob_url"]
        .as_str()
        .expect("an out-of-band URL")
        .to_owned();
    assert!(
        message["body"].as_str().unwrap().contains(&url),
        "the link is in the body too"
    );
    // The agent's client downloads it with the signed link alone.
    let download = reqwest::get(&url).await.unwrap();
    assert_eq!(download.status(), 200);
    assert_eq!(download.bytes().await.unwrap().to_vec(), png);
    gw.stop().await;
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

async fn upload_event(agent: &mut XmppAgent, tag: &str) -> Value {
    let tag = tag.to_owned();
    agent
        .expect(WAIT, move |e| e["event"] == "upload" && e["tag"] == tag)
        .await
        .unwrap()
}

#[tokio::test]
async fn an_agent_sends_the_visitor_a_file_with_http_upload() {
    let (prosody, gw) = setup().await;
    let mut alice = prosody.agent("101").await.unwrap();
    agents_online_one(&gw, "101").await;
    let (visitor, session, mut events, address) = start_chat(&gw, "Jane").await;
    next_message(&mut alice, &address).await;
    alice.send(&address, "Hi Jane", "a-1").await.unwrap();
    events.next_of_type("agent_joined").await.unwrap();
    events.next_of_type("message").await.unwrap();

    let pdf = [&b"%PDF-1.4\n"[..], &[0x42u8; 3000][..], &b"\n%%EOF\n"[..]].concat();
    alice
        .command(
            json!({"cmd": "upload", "tag": "u1", "service": COMPONENT_DOMAIN,
            "to": address, "filename": "quote 2026.pdf", "data_hex": hex(&pdf),
            "content_type": "application/pdf", "id": "a-file"}),
        )
        .await
        .unwrap();
    let upload = upload_event(&mut alice, "u1").await;
    assert_eq!(upload["type"], "result", "{upload}");
    assert_eq!(upload["advertised"], true);
    assert_eq!(upload["max_file_size"], 5_242_880);
    assert_eq!(upload["put_status"], 201, "{upload}");

    // The visitor sees the agent's file message with its attachment…
    let shown = events.next_of_type("message").await.unwrap();
    let message = &shown["message"];
    assert_eq!(message["sender"], "agent", "{shown}");
    let attachment = &message["attachment"];
    assert_eq!(attachment["name"], "quote 2026.pdf");
    assert_eq!(attachment["size"], pdf.len());
    assert_eq!(attachment["content_type"], "application/pdf");
    // …and downloads it with their own token.
    let file_id = attachment["id"].as_str().unwrap();
    let download = reqwest::Client::new()
        .get(format!(
            "{}/api/v1/conversations/{}/files/{file_id}",
            gw.url, session.id
        ))
        .bearer_auth(&session.token)
        .send()
        .await
        .unwrap();
    assert_eq!(download.status(), 200);
    let disposition = download.headers()["content-disposition"]
        .to_str()
        .unwrap()
        .to_owned();
    assert!(disposition.starts_with("attachment"), "{disposition}");
    assert_eq!(download.bytes().await.unwrap().to_vec(), pdf);
    let history = visitor.messages(&session).await.unwrap();
    let last = history.body["messages"]
        .as_array()
        .unwrap()
        .last()
        .unwrap()
        .clone();
    assert_eq!(last["attachment"]["id"], file_id);

    // The agent's other devices fetch it with the GET URL (a signed link).
    let get_url = upload["get_url"].as_str().unwrap();
    let fetched = reqwest::get(get_url).await.unwrap();
    assert_eq!(fetched.status(), 200);
    assert_eq!(fetched.bytes().await.unwrap().to_vec(), pdf);
    // A slot is used once.
    let again = reqwest::Client::new()
        .put(upload["put_url"].as_str().unwrap())
        .body(pdf.clone())
        .send()
        .await
        .unwrap();
    assert!(
        [404, 409].contains(&again.status().as_u16()),
        "{}",
        again.status()
    );
    gw.stop().await;
}

#[tokio::test]
async fn http_upload_checks_size_type_and_who_asks() {
    let (prosody, gw) = setup().await;
    let mut alice = prosody.agent("101").await.unwrap();
    let mut stranger = prosody.agent("stranger").await.unwrap();
    agents_online_one(&gw, "101").await;

    // Announcing one byte over the limit: file-too-large, with the limit.
    alice
        .command(
            json!({"cmd": "upload", "tag": "big", "service": COMPONENT_DOMAIN,
            "filename": "huge.bin", "size": 5_242_881}),
        )
        .await
        .unwrap();
    let big = upload_event(&mut alice, "big").await;
    assert_eq!(big["type"], "error", "{big}");
    assert_eq!(big["stage"], "slot");
    assert_eq!(big["condition"], "not-acceptable");
    assert_eq!(big["max_file_size"], 5_242_880);

    // Someone who is not an agent may not upload.
    stranger
        .command(
            json!({"cmd": "upload", "tag": "s", "service": COMPONENT_DOMAIN,
            "filename": "x.txt", "data_hex": hex(b"hello")}),
        )
        .await
        .unwrap();
    let refused = upload_event(&mut stranger, "s").await;
    assert_eq!(refused["type"], "error", "{refused}");
    assert_eq!(refused["stage"], "slot");
    assert_eq!(refused["condition"], "forbidden");

    // A name that runs code where it is opened is refused with the slot,
    // before any byte is sent.
    alice
        .command(
            json!({"cmd": "upload", "tag": "name", "service": COMPONENT_DOMAIN,
            "filename": "page.html", "data_hex": hex(b"hello")}),
        )
        .await
        .unwrap();
    let named = upload_event(&mut alice, "name").await;
    assert_eq!(named["stage"], "slot", "{named}");
    assert_eq!(named["condition"], "not-acceptable", "{named}");

    // The PUT goes through the visitors' checks: a denied type is refused
    // with the same JSON error, and the slot is spent.
    alice
        .command(
            json!({"cmd": "upload", "tag": "html", "service": COMPONENT_DOMAIN,
            "filename": "page.txt", "data_hex": hex(b"<html><script>alert(1)</script></html>")}),
        )
        .await
        .unwrap();
    let html = upload_event(&mut alice, "html").await;
    assert_eq!(html["stage"], "put", "{html}");
    assert_eq!(html["put_status"], 415, "{html}");
    let body: Value = serde_json::from_str(html["put_body"].as_str().unwrap()).unwrap();
    assert_eq!(body["error"], "file_type_not_allowed");

    // More bytes than announced: 413 as soon as they pass the announced size.
    alice
        .command(
            json!({"cmd": "upload", "tag": "short", "service": COMPONENT_DOMAIN,
            "filename": "a.txt", "size": 3}),
        )
        .await
        .unwrap();
    let slot = upload_event(&mut alice, "short").await;
    assert_eq!(slot["type"], "result", "{slot}");
    let over = reqwest::Client::new()
        .put(slot["put_url"].as_str().unwrap())
        .body(b"hello".to_vec())
        .send()
        .await
        .unwrap();
    assert_eq!(over.status(), 413);
    let body: Value = over.json().await.unwrap();
    assert_eq!(body["error"], "file_too_large");
    assert_eq!(body["limit_bytes"], 3);

    // A link to someone else's upload service is just text for the visitor.
    let (_visitor, _session, mut events, address) = start_chat(&gw, "Jane").await;
    next_message(&mut alice, &address).await;
    alice
        .send(&address, "https://files.example.net/abc/photo.png", "a-1")
        .await
        .unwrap();
    events.next_of_type("agent_joined").await.unwrap();
    let text = events.next_of_type("message").await.unwrap();
    assert_eq!(
        text["message"]["body"],
        "https://files.example.net/abc/photo.png"
    );
    assert!(text["message"]["attachment"].is_null(), "{text}");
    gw.stop().await;
}

#[tokio::test]
async fn the_gateway_reaches_ejabberd_over_tls_and_a_chat_flows() {
    let pki = frontdesk_tests::tls::TestPki::generate("Frontdesk test CA").unwrap();
    let ejabberd = XmppServer::ejabberd_with_component_tls(
        &[Account::new("101")],
        &pki.server_chain_and_key(),
    )
    .await
    .unwrap_or_else(|e| panic!("ejabberd did not start: {e:#}"));
    let mut xmpp = ejabberd.bridge_config();
    // The certificate is checked for the host of `server` (127.0.0.1).
    xmpp.tls = true;
    xmpp.tls_ca_file = Some(pki.ca_file());
    let gw = TestGateway::spawn_bridged(move |config| {
        config.agents[0].xmpp = Some("101@localhost".parse().unwrap());
        config.xmpp = Some(xmpp);
    })
    .await;
    // The agent's client approves the gateway's presence subscription.
    let mut alice = ejabberd.agent("101").await.unwrap();
    agents_online_one(&gw, "101").await;
    let (visitor, session, mut events, address) = start_chat(&gw, "Jane").await;
    body_from(&mut alice, &address, "New chat waiting").await;
    alice
        .send(&address, "Hello over TLS", "tls-1")
        .await
        .unwrap();
    let message = events.next_of_type("message").await.unwrap();
    assert_eq!(message["message"]["body"], "Hello over TLS");
    visitor.say(&session, "c-1", "Thanks").await.unwrap();
    body_from(&mut alice, &address, "Thanks").await;
    gw.stop().await;
}
