//! The SIP MESSAGE bridge end to end: a visitor on the real HTTP API and
//! WebSocket, the real gateway with its SIP user agent, a throwaway
//! Kamailio as the PBX's registrar and proxy, and an agent's softphone
//! played by sipp.

use std::net::SocketAddr;
use std::time::Duration;

use frontdesk::config::SipBridgeConfig;
use frontdesk_tests::gateway::TestGateway;
use frontdesk_tests::kamailio::{
    free_udp_tcp_port, Kamailio, KamailioOptions, SippAgent, GATEWAY_DOMAIN,
};
use frontdesk_tests::visitor::Visitor;

const WAIT: Duration = Duration::from_secs(20);

/// Kamailio routing chat.localhost to the gateway, and a gateway whose
/// agent 103 is `sip:103@pbx.localhost`, alone in the live channel's queue
/// (601) unless `adjust` changes the configuration further.
async fn setup_with(
    adjust: impl FnOnce(&mut frontdesk::config::Config) + Send,
) -> (Kamailio, TestGateway) {
    let addr: SocketAddr = format!("127.0.0.1:{}", free_udp_tcp_port().unwrap())
        .parse()
        .unwrap();
    let kamailio = Kamailio::start(KamailioOptions::new(addr)).await.unwrap();
    let proxy = kamailio.addr();
    let gw = TestGateway::spawn_bridged(move |config| {
        config.agents[2].sip = Some("sip:103@pbx.localhost".parse().unwrap());
        config.channels[0].queue = Some("601".parse().unwrap());
        let mut sip = SipBridgeConfig::new(GATEWAY_DOMAIN, proxy);
        sip.listen_udp = Some(addr);
        sip.listen_tcp = Some(addr);
        sip.probe_interval_secs = 1;
        config.sip = Some(sip);
        adjust(config);
    })
    .await;
    (kamailio, gw)
}

async fn setup() -> (Kamailio, TestGateway) {
    setup_with(|_| {}).await
}

async fn agent_available(gw: &TestGateway) {
    let ext = "103".parse().unwrap();
    tokio::time::timeout(WAIT, gw.engine.until_available(&ext))
        .await
        .expect("the SIP agent never became available");
}

#[tokio::test]
async fn a_sip_agent_chats_with_a_visitor_through_the_proxy() {
    let (kamailio, gw) = setup().await;
    let agent = SippAgent::start(&kamailio, "103", false).await.unwrap();
    agent_available(&gw).await;

    let visitor = Visitor::new(&gw.url);
    let session = visitor.start("live", "Jane Doe").await.unwrap();
    let mut events = visitor.events(&session, 0).await.unwrap();
    let id: uuid::Uuid = session.id.parse().unwrap();
    let visitor_uri = format!("sip:visitor-{}@{GATEWAY_DOMAIN}", id.simple());

    // The offer: a MESSAGE from the visitor's own address introducing her.
    let card = agent
        .wait_for(&["New chat waiting", "Jane Doe <jane@example.com>"], WAIT)
        .await
        .unwrap();
    assert!(
        card.contains(&format!("visitor-{}@{GATEWAY_DOMAIN}", id.simple())),
        "{card}"
    );

    // The agent replies from the softphone: 200 once stored, and the
    // visitor sees the agent join and the message.
    let status = agent
        .send_message(&visitor_uri, "text/plain", "Hello Jane, this is Chloé")
        .await
        .unwrap();
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
    let status = agent
        .send_message(&visitor_uri, "text/plain", "/info")
        .await
        .unwrap();
    assert_eq!(status, 200);
    agent
        .wait_for(&["Queue: 601", "Language: en"], WAIT)
        .await
        .unwrap();
    let status = agent
        .send_message(&visitor_uri, "text/plain", "/end")
        .await
        .unwrap();
    assert_eq!(status, 200);
    let closed = events.next_of_type("closed").await.unwrap();
    assert_eq!(closed["by"], "agent");

    // After the end, a message is refused and the agent is told why.
    let status = agent
        .send_message(&visitor_uri, "text/plain", "one more thing")
        .await
        .unwrap();
    assert_eq!(status, 403);
    agent
        .wait_for(&["This chat has ended"], WAIT)
        .await
        .unwrap();
    gw.stop().await;
}

#[tokio::test]
async fn a_stranger_is_refused() {
    let (kamailio, gw) = setup().await;
    let stranger = SippAgent::start(&kamailio, "999", false).await.unwrap();
    let visitor = Visitor::new(&gw.url);
    let session = visitor.start("live", "Jane").await.unwrap();
    let id: uuid::Uuid = session.id.parse().unwrap();
    let visitor_uri = format!("sip:visitor-{}@{GATEWAY_DOMAIN}", id.simple());
    let status = stranger
        .send_message(&visitor_uri, "text/plain", "let me in")
        .await
        .unwrap();
    assert_eq!(status, 403);
    let history = visitor.messages(&session).await.unwrap();
    assert_eq!(history.body["messages"], serde_json::json!([]));
    gw.stop().await;
}

#[tokio::test]
async fn an_unreachable_sip_agent_hands_the_chat_back_to_the_queue() {
    let (kamailio, gw) = setup().await;
    let mut agent = SippAgent::start(&kamailio, "103", false).await.unwrap();
    agent_available(&gw).await;
    let visitor = Visitor::new(&gw.url);
    let session = visitor.start("live", "Jane").await.unwrap();
    let mut events = visitor.events(&session, 0).await.unwrap();
    let id: uuid::Uuid = session.id.parse().unwrap();
    let visitor_uri = format!("sip:visitor-{}@{GATEWAY_DOMAIN}", id.simple());
    agent.wait_for(&["New chat waiting"], WAIT).await.unwrap();
    agent
        .send_message(&visitor_uri, "text/plain", "Hi")
        .await
        .unwrap();
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
    let (kamailio, gw) = setup_with(|config| {
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
    let dan = SippAgent::start(&kamailio, "104", false).await.unwrap();
    let ext = "104".parse().unwrap();
    tokio::time::timeout(WAIT, gw.engine.until_available(&ext))
        .await
        .expect("Dan never became available");
    assert!(!gw.engine.is_available(&"103".parse().unwrap()));

    let visitor = Visitor::new(&gw.url);
    let session = visitor.start("live", "Jane").await.unwrap();
    let mut events = visitor.events(&session, 0).await.unwrap();
    let id: uuid::Uuid = session.id.parse().unwrap();
    dan.wait_for(&["New chat waiting", "Jane"], WAIT)
        .await
        .unwrap();
    let status = dan
        .send_message(
            &format!("sip:visitor-{}@{GATEWAY_DOMAIN}", id.simple()),
            "text/plain",
            "Dan here",
        )
        .await
        .unwrap();
    assert_eq!(status, 200);
    let joined = events.next_of_type("agent_joined").await.unwrap();
    assert_eq!(joined["agent"]["name"], "Dan Moreau");
    gw.stop().await;
}
