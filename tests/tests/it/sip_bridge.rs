//! The SIP MESSAGE bridge end to end: a visitor on the real HTTP API and
//! WebSocket, the real gateway with its SIP user agent, a throwaway
//! Kamailio as the PBX's registrar and proxy, and an agent's softphone
//! played by sipp.

use std::time::Duration;

use frontdesk_tests::gateway::TestGateway;
use frontdesk_tests::kamailio::{SippAgent, GATEWAY_DOMAIN};
use frontdesk_tests::sip::{session_uri, SipPbx};
use frontdesk_tests::visitor::{EventStream, Session, Visitor};

const WAIT: Duration = Duration::from_secs(20);

/// Kamailio routing chat.localhost to the gateway, and a gateway whose
/// agent 103 is `sip:103@pbx.localhost`, alone in the live channel's queue
/// (601) unless `adjust` changes the configuration further.
async fn setup_with(adjust: impl FnOnce(&mut frontdesk::config::Config)) -> (SipPbx, TestGateway) {
    let pbx = SipPbx::start().await.expect("kamailio did not start");
    let gw = TestGateway::spawn_bridged(|config| {
        pbx.configure_gateway(config);
        adjust(config);
    })
    .await;
    (pbx, gw)
}

async fn setup() -> (SipPbx, TestGateway) {
    setup_with(|_| {}).await
}

/// A visitor starts a live chat and follows its events; the SIP URI the
/// chat writes from.
async fn start_chat(gw: &TestGateway, name: &str) -> (Visitor, Session, EventStream, String) {
    let visitor = Visitor::new(&gw.url);
    let (session, events) = visitor.start_following("live", name).await.unwrap();
    let uri = session_uri(&session);
    (visitor, session, events, uri)
}

/// What the agent's phone got back for a text message to `to`.
async fn says(agent: &SippAgent, to: &str, text: &str) -> u16 {
    agent.send_message(to, "text/plain", text).await.unwrap()
}

async fn agent_available(gw: &TestGateway) {
    let ext = "103".parse().unwrap();
    tokio::time::timeout(WAIT, gw.engine.until_available(&ext))
        .await
        .expect("the SIP agent never became available");
}

#[tokio::test]
async fn a_sip_agent_chats_with_a_visitor_through_the_proxy() {
    let (pbx, gw) = setup().await;
    let agent = pbx.agent("103", false).await.unwrap();
    agent_available(&gw).await;

    let (visitor, session, mut events, visitor_uri) = start_chat(&gw, "Jane Doe").await;

    // The offer: a MESSAGE from the visitor's own address introducing her.
    let card = agent
        .wait_for(&["New chat waiting", "Jane Doe <jane@example.com>"], WAIT)
        .await
        .unwrap();
    assert!(
        card.contains(&format!("{}@{GATEWAY_DOMAIN}", session.agent_localpart())),
        "{card}"
    );

    // The agent replies from the softphone: 200 once stored, and the
    // visitor sees the agent join and the message.
    let status = says(&agent, &visitor_uri, "Hello Jane, this is Chloé").await;
    assert_eq!(status, 200);
    let joined = events.next_of_type("agent_joined").await.unwrap();
    assert_eq!(joined["agent"]["name"], "Chloé Petit");
    let message = events.next_of_type("message").await.unwrap();
    assert_eq!(message["message"]["body"], "Hello Jane, this is Chloé");

    // The visitor's messages reach the phone.
    visitor
        .say(&session, "c-1", "My boiler is cold")
        .await
        .unwrap();
    agent.wait_for(&["My boiler is cold"], WAIT).await.unwrap();

    // Agent commands work from the softphone too.
    let status = says(&agent, &visitor_uri, "/info").await;
    assert_eq!(status, 200);
    agent
        .wait_for(&["Queue: 601", "Language: en"], WAIT)
        .await
        .unwrap();
    let status = says(&agent, &visitor_uri, "/end").await;
    assert_eq!(status, 200);
    let closed = events.next_of_type("closed").await.unwrap();
    assert_eq!(closed["by"], "agent");

    // After the end, a message is refused (410 Gone) and the agent is told
    // why.
    let status = says(&agent, &visitor_uri, "one more thing").await;
    assert_eq!(status, 410);
    agent
        .wait_for(&["This chat has ended"], WAIT)
        .await
        .unwrap();
    gw.stop().await;
}

#[tokio::test]
async fn a_stranger_is_refused() {
    let (pbx, gw) = setup().await;
    let stranger = pbx.agent("999", false).await.unwrap();
    let (visitor, session, _events, visitor_uri) = start_chat(&gw, "Jane").await;
    let status = says(&stranger, &visitor_uri, "let me in").await;
    assert_eq!(status, 403);
    let history = visitor.messages(&session).await.unwrap();
    assert_eq!(history.body["messages"], serde_json::json!([]));
    gw.stop().await;
}

#[tokio::test]
async fn an_unreachable_sip_agent_hands_the_chat_back_to_the_queue() {
    let (pbx, gw) = setup().await;
    let mut agent = pbx.agent("103", false).await.unwrap();
    agent_available(&gw).await;
    let (visitor, session, mut events, visitor_uri) = start_chat(&gw, "Jane").await;
    agent.wait_for(&["New chat waiting"], WAIT).await.unwrap();
    says(&agent, &visitor_uri, "Hi").await;
    events.next_of_type("agent_joined").await.unwrap();

    // The phone dies (still registered): probes fail, the chat is re-queued.
    agent.stop_answering();
    let left = events.next_of_type("agent_left").await.unwrap();
    assert_eq!(left["agent"]["name"], "Chloé Petit");
    let view = visitor.conversation(&session).await.unwrap();
    assert_eq!(view.body["state"], "queued");
    gw.stop().await;
}

#[tokio::test]
async fn an_unregistered_sip_agent_is_skipped_for_the_next_one() {
    let (pbx, gw) = setup_with(|config| {
        config.agents.push(pbx_adapter::queue::AgentConfig {
            extension: "104".parse().unwrap(),
            name: "Dan Moreau".to_owned(),
            xmpp: None,
            sip: Some("sip:104@pbx.localhost".parse().unwrap()),
        });
        config.queues[1].strategy = pbx_adapter::queue::Strategy::Linear;
        config.queues[1]
            .members
            .push(pbx_adapter::queue::MemberConfig {
                agent: "104".parse().unwrap(),
                penalty: 0,
            });
    })
    .await;
    // Only Dan's phone is registered; Chloé (first in line) is not.
    let dan = pbx.agent("104", false).await.unwrap();
    let ext = "104".parse().unwrap();
    tokio::time::timeout(WAIT, gw.engine.until_available(&ext))
        .await
        .expect("Dan never became available");
    assert!(!gw.engine.is_available(&"103".parse().unwrap()));

    let (_visitor, _session, mut events, visitor_uri) = start_chat(&gw, "Jane").await;
    dan.wait_for(&["New chat waiting", "Jane"], WAIT)
        .await
        .unwrap();
    let status = says(&dan, &visitor_uri, "Dan here").await;
    assert_eq!(status, 200);
    let joined = events.next_of_type("agent_joined").await.unwrap();
    assert_eq!(joined["agent"]["name"], "Dan Moreau");
    gw.stop().await;
}

/// A chat taken by agent 103 through the proxy: the visitor, her session
/// and events (past `agent_joined` and the agent's "Hi"), her SIP URI, and
/// the agent's softphone.
async fn taken_chat(
    pbx: &SipPbx,
    gw: &TestGateway,
) -> (Visitor, Session, EventStream, String, SippAgent) {
    let agent = pbx.agent("103", false).await.unwrap();
    agent_available(gw).await;
    let (visitor, session, mut events, visitor_uri) = start_chat(gw, "Jane Doe").await;
    agent.wait_for(&["New chat waiting"], WAIT).await.unwrap();
    assert_eq!(says(&agent, &visitor_uri, "Hi").await, 200);
    events.next_of_type("agent_joined").await.unwrap();
    events.next_of_type("message").await.unwrap();
    (visitor, session, events, visitor_uri, agent)
}

/// The bodies of a conversation's messages, in order.
async fn bodies(visitor: &Visitor, session: &Session) -> Vec<String> {
    let history = visitor.messages(session).await.unwrap();
    history.body["messages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["body"].as_str().unwrap_or_default().to_owned())
        .collect()
}

/// Straight to the gateway (no proxy) from `host`: 127.0.0.1 is the
/// proxy's own address, any other 127.x.y.z a stranger's host.
async fn direct(
    agent: &SippAgent,
    gateway: std::net::SocketAddr,
    host: &str,
    to: &str,
    text: &str,
    header: Option<&str>,
) -> u16 {
    agent
        .send_direct(gateway, host, to, text, header)
        .await
        .unwrap()
}

#[tokio::test]
async fn a_stranger_forging_an_agents_from_gets_403_and_changes_nothing() {
    let (pbx, gw) = setup().await;
    let (visitor, session, mut events, visitor_uri, agent) = taken_chat(&pbx, &gw).await;
    // Another host (127.0.0.2) writes straight to the gateway as agent 103,
    // who has this chat: to her, to a made-up visitor address, a command.
    let made_up = format!(
        "sip:visitor-{}@{GATEWAY_DOMAIN}",
        uuid::Uuid::new_v4().simple()
    );
    for (to, text) in [
        (visitor_uri.as_str(), "I am the agent"),
        (made_up.as_str(), "hello?"),
        (visitor_uri.as_str(), "/end"),
    ] {
        let status = direct(&agent, pbx.gateway, "127.0.0.2", to, text, None).await;
        assert_eq!(status, 403, "{text}");
    }
    // A message through the proxy still works, and is the next event.
    assert_eq!(says(&agent, &visitor_uri, "Still me").await, 200);
    let next = events.next_event().await.unwrap();
    assert_eq!(next["type"], "message", "{next}");
    assert_eq!(next["message"]["body"], "Still me");
    assert_eq!(bodies(&visitor, &session).await, ["Hi", "Still me"]);
    let view = visitor.conversation(&session).await.unwrap();
    assert_eq!(view.body["state"], "active");
    // Nor was the real agent written to about the made-up address.
    visitor.say(&session, "c-1", "are you there").await.unwrap();
    agent.wait_for(&["are you there"], WAIT).await.unwrap();
    assert!(!agent
        .received()
        .contains(frontdesk::bridges::agent_text::NO_CHAT));
    gw.stop().await;
}

#[tokio::test]
async fn a_retransmitted_agent_message_is_answered_every_time_and_stored_once() {
    let (pbx, gw) = setup().await;
    let (visitor, session, mut events, visitor_uri, agent) = taken_chat(&pbx, &gw).await;
    // From the proxy's address: the message, a retransmission after its
    // 200, and a copy under a new branch.
    let statuses = agent
        .send_with_copies(pbx.gateway, &visitor_uri, "Only once")
        .await
        .unwrap();
    assert_eq!(statuses, [200, 200, 200]);
    assert_eq!(says(&agent, &visitor_uri, "Next").await, 200);
    for expected in ["Only once", "Next"] {
        let message = events.next_of_type("message").await.unwrap();
        assert_eq!(message["message"]["body"], expected);
    }
    assert_eq!(
        bodies(&visitor, &session).await,
        ["Hi", "Only once", "Next"]
    );
    gw.stop().await;
}

#[tokio::test]
async fn with_p_asserted_identity_only_the_proxys_assertion_names_the_agent() {
    let (pbx, gw) = setup_with(|config| {
        let sip = config.sip.as_mut().expect("a [sip] section");
        sip.identity = pbx_adapter::sip::IdentitySource::PAssertedIdentity;
    })
    .await;
    let agent = pbx.agent("103", false).await.unwrap();
    agent_available(&gw).await;
    let stranger = pbx.agent("999", false).await.unwrap();
    let (visitor, session, mut events, visitor_uri) = start_chat(&gw, "Jane Doe").await;
    agent.wait_for(&["New chat waiting"], WAIT).await.unwrap();
    let pai = Some("P-Asserted-Identity: <sip:103@pbx.localhost>");
    // Agent 103's From without an assertion, even from the proxy's
    // address, and the assertion from another host: 403.
    let status = direct(
        &agent,
        pbx.gateway,
        "127.0.0.1",
        &visitor_uri,
        "no PAI",
        None,
    )
    .await;
    assert_eq!(status, 403);
    let status = direct(
        &stranger,
        pbx.gateway,
        "127.0.0.2",
        &visitor_uri,
        "forged",
        pai,
    )
    .await;
    assert_eq!(status, 403);
    // The proxy's assertion names agent 103, whatever From says.
    let status = direct(
        &stranger,
        pbx.gateway,
        "127.0.0.1",
        &visitor_uri,
        "Asserted",
        pai,
    )
    .await;
    assert_eq!(status, 200);
    let joined = events.next_of_type("agent_joined").await.unwrap();
    assert_eq!(joined["agent"]["name"], "Chloé Petit");
    let message = events.next_of_type("message").await.unwrap();
    assert_eq!(message["message"]["body"], "Asserted");
    assert_eq!(bodies(&visitor, &session).await, ["Asserted"]);
    gw.stop().await;
}
