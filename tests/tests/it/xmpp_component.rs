//! The XMPP component (`frontdesk-xmpp`) against a real Prosody and a real
//! XMPP client (slixmpp) playing the agent: connection, messages both ways,
//! chat states, receipts and markers, the allowlist, presence, disco,
//! malformed stanzas, and server restarts and hangs without message loss.
//! The round trip and the restart also run against ejabberd, which routes
//! components differently (`prosody::…` and `ejabberd::…` tests), and so
//! does the component link over TLS (ejabberd's `tls: true` listener).

use std::time::Duration;

use frontdesk_tests::tls::TestPki;
use frontdesk_tests::wait::{expect_event, stop_task};
use frontdesk_tests::xmpp_server::{Account, XmppAgent, XmppKind, XmppServer, COMPONENT_DOMAIN};
use frontdesk_xmpp::{
    Availability, BareJid, ChatState, Command, ComponentConfig, ComponentTls, ConnectError, Event,
    Jid, OutgoingMessage, VisitorAddress,
};
use serde_json::{json, Value};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

const WAIT: Duration = Duration::from_secs(10);

struct Bridge {
    commands: mpsc::Sender<Command>,
    events: mpsc::Receiver<Event>,
    shutdown: CancellationToken,
    task: Option<tokio::task::JoinHandle<()>>,
}

impl Bridge {
    async fn start(server: &XmppServer, agents: &[&str]) -> Bridge {
        Self::start_with(server, agents, |_| {}).await
    }

    async fn start_with(
        server: &XmppServer,
        agents: &[&str],
        adjust: impl FnOnce(&mut ComponentConfig),
    ) -> Bridge {
        frontdesk_tests::gateway::init_test_logging();
        let mut config = ComponentConfig::new(
            BareJid::new(COMPONENT_DOMAIN).unwrap(),
            server.component_addr(),
            &server.secret,
        );
        config.ping_interval = Duration::from_secs(1);
        config.ping_timeout = Duration::from_secs(2);
        config.reconnect_initial = Duration::from_millis(50);
        config.reconnect_max = Duration::from_millis(500);
        adjust(&mut config);
        let (commands, rx) = mpsc::channel(64);
        let shutdown = CancellationToken::new();
        let (task, events) = frontdesk_xmpp::spawn(config, rx, shutdown.clone()).unwrap();
        let mut bridge = Bridge {
            commands,
            events,
            shutdown,
            task: Some(task),
        };
        bridge
            .command(Command::SetAgents(
                agents.iter().map(|a| BareJid::new(a).unwrap()).collect(),
            ))
            .await;
        bridge.expect(|e| matches!(e, Event::Connected)).await;
        bridge
    }

    async fn command(&self, command: Command) {
        self.commands
            .send(command)
            .await
            .expect("component task gone");
    }

    /// The first event matching `pred`; others are skipped (and printed).
    async fn expect(&mut self, pred: impl Fn(&Event) -> bool) -> Event {
        self.expect_within(WAIT, pred).await
    }

    async fn expect_within(&mut self, within: Duration, pred: impl Fn(&Event) -> bool) -> Event {
        expect_event(&mut self.events, "the component task", within, pred).await
    }

    /// Events already received, without waiting.
    fn pending(&mut self) -> Vec<Event> {
        let mut out = Vec::new();
        while let Ok(e) = self.events.try_recv() {
            out.push(e);
        }
        out
    }

    async fn stop(mut self) {
        stop_task(&self.shutdown, self.task.take(), "the component task", WAIT).await;
    }
}

fn visitor(n: &str) -> VisitorAddress {
    VisitorAddress::new(format!("visitor-{n}")).unwrap()
}

fn visitor_jid(n: &str) -> String {
    format!("visitor-{n}@{COMPONENT_DOMAIN}")
}

fn message(outbox_id: i64, from: &VisitorAddress, to: &str, body: &str) -> Command {
    Command::SendMessage(OutgoingMessage {
        outbox_id,
        from: from.clone(),
        nick: None,
        to: Jid::new(to).unwrap(),
        body: body.to_owned(),
        id: format!("out-{outbox_id}"),
        oob_url: None,
        request_receipt: true,
    })
}

/// An agent's presence reported as `availability` (the tests have one
/// agent each).
fn presence(availability: Availability) -> impl Fn(&Event) -> bool {
    move |e| matches!(e, Event::AgentPresence { availability: a, .. } if *a == availability)
}

fn is_message_from(e: &Value, from: &str) -> bool {
    e["event"] == "message" && e["from"].as_str().is_some_and(|f| f.starts_with(from))
}

async fn prosody(accounts: &[Account]) -> XmppServer {
    server(XmppKind::Prosody, accounts).await
}

async fn server(kind: XmppKind, accounts: &[Account]) -> XmppServer {
    XmppServer::start(kind, accounts)
        .await
        .unwrap_or_else(|e| panic!("{kind:?} did not start: {e:#}"))
}

/// Each scenario named here is a test on both servers:
/// `prosody::NAME` and `ejabberd::NAME`.
macro_rules! on_both_servers {
    ($($name:ident),* $(,)?) => {
        mod prosody {
            $(#[tokio::test]
            async fn $name() {
                super::$name(super::XmppKind::Prosody).await
            })*
        }
        mod ejabberd {
            $(#[tokio::test]
            async fn $name() {
                super::$name(super::XmppKind::Ejabberd).await
            })*
        }
    };
}

on_both_servers!(
    messages_flow_both_ways_with_nick_receipt_request_and_markable,
    restart_loses_no_message_and_keeps_order,
);

async fn messages_flow_both_ways_with_nick_receipt_request_and_markable(kind: XmppKind) {
    let server = server(kind, &[Account::new("101")]).await;
    let mut agent = server.agent("101").await.unwrap();
    let mut bridge = Bridge::start(&server, &["101@localhost"]).await;
    let v = visitor("a1");

    bridge
        .command(Command::SendMessage(OutgoingMessage {
            outbox_id: 7,
            from: v.clone(),
            nick: Some("Jane Doe".into()),
            to: Jid::new("101@localhost").unwrap(),
            body: "Hello, I need help with my order".into(),
            id: "vmsg-1".into(),
            oob_url: Some("https://example.com/files/1.pdf".into()),
            request_receipt: true,
        }))
        .await;
    let got = agent.expect_message_from(&visitor_jid("a1")).await.unwrap();
    assert_eq!(got["body"], "Hello, I need help with my order");
    assert_eq!(got["nick"], "Jane Doe");
    assert_eq!(got["id"], "vmsg-1");
    assert_eq!(got["type"], "chat");
    assert_eq!(got["receipt_request"], true);
    assert_eq!(got["markable"], true);
    assert_eq!(got["chatstate"], "active");
    assert_eq!(got["oob_url"], "https://example.com/files/1.pdf");
    bridge.expect(|e| *e == Event::Sent { outbox_id: 7 }).await;

    // Follow-up messages carry no nick.
    bridge
        .command(message(8, &v, "101@localhost", "Order 42"))
        .await;
    let got = agent.expect_message_from(&visitor_jid("a1")).await.unwrap();
    assert_eq!(got["body"], "Order 42");
    assert!(got["nick"].is_null());

    agent
        .command(
            json!({"cmd": "send", "to": visitor_jid("a1"), "body": "Hi Jane, looking", "id": "ag-1",
            "request_receipt": true, "markable": true, "chatstate": "active"}),
        )
        .await
        .unwrap();
    let event = bridge
        .expect(|e| matches!(e, Event::AgentMessage { .. }))
        .await;
    let Event::AgentMessage {
        from,
        to,
        id,
        body,
        receipt_requested,
        markable,
        oob_url,
    } = event
    else {
        unreachable!()
    };
    assert_eq!(from.to_bare().as_str(), "101@localhost");
    assert_eq!(from.as_str(), agent.full_jid);
    assert_eq!(to, v);
    assert_eq!(id.as_deref(), Some("ag-1"));
    assert_eq!(body, "Hi Jane, looking");
    assert!(receipt_requested && markable);
    assert_eq!(oob_url, None);
    bridge.stop().await;
}

/// A burst is acknowledged and delivered complete and in order (one
/// acknowledgement ping covers many stanzas).
#[tokio::test]
async fn a_burst_of_messages_arrives_complete_and_in_order() {
    let server = prosody(&[Account::new("101")]).await;
    let mut agent = server.agent("101").await.unwrap();
    let mut bridge = Bridge::start(&server, &["101@localhost"]).await;
    let v = visitor("burst");
    let n = 200;
    let commands = bridge.commands.clone();
    let feeder = tokio::spawn(async move {
        for i in 1..=n {
            commands
                .send(message(i, &v, "101@localhost", &format!("m{i}")))
                .await
                .unwrap();
        }
    });
    let sent = sent_ids(&mut bridge, n as usize).await;
    assert_eq!(sent, (1..=n).collect::<Vec<_>>());
    feeder.await.unwrap();
    let bodies = bodies_from(&mut agent, "burst", n as usize).await;
    let expected: Vec<String> = (1..=n).map(|i| format!("m{i}")).collect();
    assert_eq!(bodies, expected);
    bridge.stop().await;
}

/// The gateway may fall behind reading events while it still sends
/// commands (under load a send waits for room in the command channel while
/// the task that reads events waits for that send): the component keeps
/// taking commands in while an event waits for room, so neither waits for
/// the other, and nothing is lost or reordered. Before, the bridge stalled
/// for good with 1,024 confirmations unread (the agents benchmark at
/// 500 msg/s).
#[tokio::test]
async fn commands_are_taken_in_while_the_gateway_reads_no_events() {
    let server = prosody(&[Account::new("101")]).await;
    let mut agent = server.agent("101").await.unwrap();
    let mut bridge = Bridge::start(&server, &["101@localhost"]).await;
    let v = visitor("behind");
    // More confirmations than the event channel holds (1,024): once they
    // are confirmed, one waits for room.
    let first: i64 = 1100;
    for i in 1..=first {
        bridge
            .command(message(i, &v, "101@localhost", &format!("m{i}")))
            .await;
    }
    let confirmed = agent
        .expect(Duration::from_secs(30), |e| {
            is_message_from(e, &visitor_jid("behind")) && e["body"] == format!("m{first}")
        })
        .await;
    assert!(confirmed.is_ok(), "the first messages did not arrive");
    tokio::time::sleep(Duration::from_secs(1)).await;
    // Then more commands than the command channel holds (64), no event
    // read until every one was taken.
    let n: i64 = first + 300;
    let commands = bridge.commands.clone();
    let feeder = tokio::spawn(async move {
        for i in first + 1..=n {
            commands
                .send(message(i, &v, "101@localhost", &format!("m{i}")))
                .await
                .unwrap();
        }
    });
    tokio::time::timeout(Duration::from_secs(30), feeder)
        .await
        .expect("the component stopped taking commands while an event waited for room")
        .unwrap();
    let sent = sent_ids(&mut bridge, n as usize).await;
    assert_eq!(sent, (1..=n).collect::<Vec<_>>());
    let bodies = bodies_from(&mut agent, "behind", (n - first) as usize).await;
    let expected: Vec<String> = (first + 1..=n).map(|i| format!("m{i}")).collect();
    assert_eq!(bodies, expected);
    bridge.stop().await;
}

/// The scripted agent's echo mode, which the load generator relies on.
#[tokio::test]
async fn an_echoing_agent_answers_every_message() {
    let server = prosody(&[Account::new("101")]).await;
    let mut agent = server.agent("101").await.unwrap();
    agent
        .command(json!({"cmd": "echo", "enabled": true, "prefix": "re: "}))
        .await
        .unwrap();
    let mut bridge = Bridge::start(&server, &["101@localhost"]).await;
    let v = visitor("k1");
    for i in 1..=3 {
        bridge
            .command(message(i, &v, "101@localhost", &format!("q{i}")))
            .await;
        let e = bridge
            .expect(|e| matches!(e, Event::AgentMessage { .. }))
            .await;
        assert!(
            matches!(&e, Event::AgentMessage { body, id: Some(id), .. } if *body == format!("re: q{i}") && *id == format!("echo-out-{i}")),
            "{e:?}"
        );
    }
    bridge.stop().await;
}

#[tokio::test]
async fn chat_states_receipts_and_markers_cross_both_ways() {
    let server = prosody(&[Account::new("101")]).await;
    let mut agent = server.agent("101").await.unwrap();
    let mut bridge = Bridge::start(&server, &["101@localhost"]).await;
    let v = visitor("b1");
    let to = Jid::new(&agent.full_jid).unwrap();

    // Visitor → agent: each arrives as a bodyless message.
    let vj = visitor_jid("b1");
    let state = |state| Command::ChatState {
        from: v.clone(),
        to: to.clone(),
        state,
    };
    let receipt = Command::Receipt {
        from: v.clone(),
        to: to.clone(),
        id: "ag-7".into(),
    };
    let displayed = Command::Displayed {
        from: v.clone(),
        to: to.clone(),
        id: "ag-7".into(),
    };
    for (command, field, value) in [
        (state(ChatState::Composing), "chatstate", "composing"),
        (receipt, "received", "ag-7"),
        (displayed, "displayed", "ag-7"),
    ] {
        bridge.command(command).await;
        let got = agent
            .expect(WAIT, |e| is_message_from(e, &vj))
            .await
            .unwrap();
        assert_eq!(got[field], value, "{got}");
        assert!(got["body"].is_null(), "{got}");
    }

    // Agent → visitor: the first event of each kind is the one sent.
    type Check = fn(&Event, &VisitorAddress) -> bool;
    let steps: [(Value, Check, Check); 4] = [
        (
            json!({"cmd": "chatstate", "to": vj, "state": "composing"}),
            |e, _| matches!(e, Event::AgentChatState { .. }),
            |e, v| matches!(e, Event::AgentChatState { to, state: ChatState::Composing, .. } if to == v),
        ),
        (
            json!({"cmd": "chatstate", "to": vj, "state": "paused"}),
            |e, _| matches!(e, Event::AgentChatState { .. }),
            |e, _| {
                matches!(
                    e,
                    Event::AgentChatState {
                        state: ChatState::Paused,
                        ..
                    }
                )
            },
        ),
        (
            json!({"cmd": "receipt", "to": vj, "id": "vmsg-3"}),
            |e, _| matches!(e, Event::AgentReceipt { .. }),
            |e, v| matches!(e, Event::AgentReceipt { id, to, .. } if id == "vmsg-3" && to == v),
        ),
        (
            json!({"cmd": "displayed", "to": vj, "id": "vmsg-3"}),
            |e, _| matches!(e, Event::AgentDisplayed { .. }),
            |e, _| matches!(e, Event::AgentDisplayed { id, .. } if id == "vmsg-3"),
        ),
    ];
    for (command, kind, check) in steps {
        agent.command(command).await.unwrap();
        let e = bridge.expect(|e| kind(e, &v)).await;
        assert!(check(&e, &v), "{e:?}");
    }
    bridge.stop().await;
}

#[tokio::test]
async fn a_stranger_gets_forbidden_and_nothing_reaches_the_gateway() {
    let server = prosody(&[Account::new("101"), Account::new("666")]).await;
    let mut stranger = server.agent("666").await.unwrap();
    let mut bridge = Bridge::start(&server, &["101@localhost"]).await;

    stranger
        .send(&visitor_jid("c1"), "let me in", "s-1")
        .await
        .unwrap();
    let bounce = stranger
        .expect(WAIT, |e| is_message_from(e, &visitor_jid("c1")))
        .await
        .unwrap();
    assert_eq!(bounce["type"], "error");
    assert_eq!(bounce["id"], "s-1");
    assert_eq!(bounce["error_condition"], "forbidden");

    // IQs to visitor addresses are refused too.
    stranger
        .command(json!({"cmd": "iq", "tag": "d", "to": visitor_jid("c1"), "ns": "http://jabber.org/protocol/disco#info"}))
        .await
        .unwrap();
    let iq = stranger.expect(WAIT, |e| e["event"] == "iq").await.unwrap();
    assert_eq!(iq["type"], "error");
    assert_eq!(iq["condition"], "forbidden");

    // The component answered both before we look: no event may exist.
    let leaked: Vec<Event> = bridge
        .pending()
        .into_iter()
        .filter(|e| !matches!(e, Event::AgentPresence { .. }))
        .collect();
    assert!(
        leaked.is_empty(),
        "stranger traffic reached the gateway: {leaked:?}"
    );
    bridge.stop().await;
}

#[tokio::test]
async fn agent_presence_is_reported_as_available_away_and_unavailable() {
    let server = prosody(&[Account::new("101").preapproved()]).await;
    let mut agent = server.agent("101").await.unwrap();
    let mut bridge = Bridge::start(&server, &["101@localhost"]).await;
    // The probe after connecting finds the agent online.
    bridge.expect(presence(Availability::Available)).await;
    agent
        .command(json!({"cmd": "presence", "show": "away"}))
        .await
        .unwrap();
    bridge.expect(presence(Availability::Away)).await;
    agent
        .command(json!({"cmd": "presence", "show": "dnd"}))
        .await
        .unwrap();
    bridge.expect(presence(Availability::DoNotDisturb)).await;
    agent
        .command(json!({"cmd": "presence", "show": "chat"}))
        .await
        .unwrap();
    bridge.expect(presence(Availability::Available)).await;
    agent
        .command(json!({"cmd": "presence", "type": "unavailable"}))
        .await
        .unwrap();
    bridge.expect(presence(Availability::Unavailable)).await;
    bridge.stop().await;
}

/// An agent whose client dies (no goodbye) becomes unavailable: what the
/// engine needs to re-queue their chats (A5).
#[tokio::test]
async fn an_agent_whose_client_dies_becomes_unavailable() {
    let server = prosody(&[Account::new("101").preapproved()]).await;
    let agent = server.agent("101").await.unwrap();
    let mut bridge = Bridge::start(&server, &["101@localhost"]).await;
    bridge.expect(presence(Availability::Available)).await;
    drop(agent);
    bridge.expect(presence(Availability::Unavailable)).await;
    bridge.stop().await;
}

#[tokio::test]
async fn subscription_request_is_approved_from_the_agents_client() {
    let server = prosody(&[Account::new("102")]).await;
    let _agent = server.agent("102").await.unwrap();
    let mut bridge = Bridge::start(&server, &["102@localhost"]).await;

    // Not subscribed yet: Prosody answers the probe after connecting with
    // nothing at all (no presence leak), so the gateway must subscribe.
    bridge
        .command(Command::Subscribe {
            agent: BareJid::new("102@localhost").unwrap(),
        })
        .await;
    let e = bridge
        .expect(|e| {
            matches!(
                e,
                Event::SubscriptionChanged {
                    subscribed: true,
                    ..
                }
            )
        })
        .await;
    assert!(
        matches!(&e, Event::SubscriptionChanged { agent, .. } if agent.as_str() == "102@localhost")
    );
    bridge.expect(presence(Availability::Available)).await;
    bridge.stop().await;
}

#[tokio::test]
async fn visitor_addresses_appear_available_with_the_visitors_name() {
    let server = prosody(&[Account::new("101")]).await;
    let mut agent = server.agent("101").await.unwrap();
    let bridge = Bridge::start(&server, &["101@localhost"]).await;
    bridge
        .command(Command::SetNick {
            address: visitor("d1"),
            nick: "Jane Doe".into(),
        })
        .await;
    agent
        .command(json!({"cmd": "subscribe", "to": visitor_jid("d1")}))
        .await
        .unwrap();
    let vj = visitor_jid("d1");
    agent
        .expect(WAIT, |e| {
            e["event"] == "presence" && e["from"] == vj && e["type"] == "subscribed"
        })
        .await
        .unwrap();
    let p = agent
        .expect(WAIT, |e| {
            e["event"] == "presence" && e["from"] == vj && e["type"] == "available"
        })
        .await
        .unwrap();
    assert_eq!(p["nick"], "Jane Doe");
    bridge.stop().await;
}

#[tokio::test]
async fn disco_version_ping_and_unsupported_iqs_are_answered() {
    let server = prosody(&[Account::new("101")]).await;
    let mut agent = server.agent("101").await.unwrap();
    let bridge = Bridge::start(&server, &["101@localhost"]).await;
    let mut ask = async |tag: &str, to: &str, ns: &str, name: &str| -> Value {
        agent
            .command(json!({"cmd": "iq", "tag": tag, "to": to, "ns": ns, "name": name}))
            .await
            .unwrap();
        let tag = tag.to_owned();
        agent
            .expect(WAIT, move |e| e["event"] == "iq" && e["tag"] == tag)
            .await
            .unwrap()
    };
    let features = |iq: &Value| -> Vec<String> {
        iq["children"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|c| c["name"] == "feature")
            .map(|c| c["attrs"]["var"].as_str().unwrap().to_owned())
            .collect()
    };

    let info = ask(
        "info",
        COMPONENT_DOMAIN,
        "http://jabber.org/protocol/disco#info",
        "query",
    )
    .await;
    assert_eq!(info["type"], "result");
    let mut f = features(&info);
    f.sort();
    assert_eq!(
        f,
        [
            "http://jabber.org/protocol/disco#info",
            "http://jabber.org/protocol/disco#items",
            "jabber:iq:version",
            "urn:xmpp:ping"
        ]
    );
    let items = ask(
        "items",
        COMPONENT_DOMAIN,
        "http://jabber.org/protocol/disco#items",
        "query",
    )
    .await;
    assert_eq!(items["type"], "result");
    assert_eq!(items["children"].as_array().unwrap().len(), 0);

    let vinfo = ask(
        "vinfo",
        &visitor_jid("e1"),
        "http://jabber.org/protocol/disco#info",
        "query",
    )
    .await;
    assert_eq!(vinfo["type"], "result");
    let f = features(&vinfo);
    for needed in [
        "http://jabber.org/protocol/chatstates",
        "urn:xmpp:receipts",
        "urn:xmpp:chat-markers:0",
        "jabber:x:oob",
    ] {
        assert!(f.iter().any(|x| x == needed), "{needed} missing in {f:?}");
    }
    assert!(!f.iter().any(|x| x == "jabber:iq:version"));

    let version = ask("ver", COMPONENT_DOMAIN, "jabber:iq:version", "query").await;
    assert_eq!(version["type"], "result");
    let name = version["children"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == "name")
        .unwrap();
    assert_eq!(name["text"], "Frontdesk");

    let ping = ask("ping", COMPONENT_DOMAIN, "urn:xmpp:ping", "ping").await;
    assert_eq!(ping["type"], "result");

    let unknown = ask("unknown", COMPONENT_DOMAIN, "urn:example:nothing", "query").await;
    assert_eq!(unknown["type"], "error");
    assert_eq!(unknown["condition"], "service-unavailable");
    let unknown = ask("vunknown", &visitor_jid("e1"), "jabber:iq:version", "query").await;
    assert_eq!(unknown["condition"], "service-unavailable");
    bridge.stop().await;
}

#[tokio::test]
async fn malformed_and_oversized_stanzas_are_refused_without_breaking_the_stream() {
    let server = prosody(&[Account::new("101").preapproved()]).await;
    let mut agent = server.agent("101").await.unwrap();
    let mut bridge =
        Bridge::start_with(&server, &["101@localhost"], |c| c.max_stanza_bytes = 2048).await;
    bridge.expect(presence(Availability::Available)).await;
    let vj = visitor_jid("f1");

    // A presence xmpp-parsers cannot parse (invalid <show>) goes to the
    // component: logged, not mistaken for a disconnect.
    agent
        .command(json!({"cmd": "raw", "xml": format!("<presence to='{COMPONENT_DOMAIN}'><show>sleeping</show></presence>")}))
        .await
        .unwrap();
    // A message with an invalid type gets bad-request.
    agent
        .command(json!({"cmd": "raw", "xml": format!("<message to='{vj}' type='bogus' id='bad-1'><body>x</body></message>")}))
        .await
        .unwrap();
    let bounce = agent
        .expect(WAIT, |e| is_message_from(e, &vj) && e["id"] == "bad-1")
        .await
        .unwrap();
    assert_eq!(bounce["type"], "error");
    assert_eq!(bounce["error_condition"], "bad-request");

    // Oversized: policy-violation, no event.
    agent.send(&vj, &"x".repeat(4000), "big-1").await.unwrap();
    let bounce = agent
        .expect(WAIT, |e| is_message_from(e, &vj) && e["id"] == "big-1")
        .await
        .unwrap();
    assert_eq!(bounce["error_condition"], "policy-violation");

    // The stream is still fine: a normal message arrives, nothing else did.
    agent.send(&vj, "still there?", "ok-1").await.unwrap();
    let e = bridge
        .expect(|e| matches!(e, Event::AgentMessage { .. } | Event::Disconnected { .. }))
        .await;
    assert!(
        matches!(&e, Event::AgentMessage { body, .. } if body == "still there?"),
        "{e:?}"
    );
    bridge.stop().await;
}

#[tokio::test]
async fn error_reply_reaches_the_agent_as_a_failed_message_with_text() {
    let server = prosody(&[Account::new("101")]).await;
    let mut agent = server.agent("101").await.unwrap();
    let mut bridge = Bridge::start(&server, &["101@localhost"]).await;
    bridge
        .command(Command::ErrorReply {
            outbox_id: 99,
            from: visitor("g1"),
            to: Jid::new(&agent.full_jid).unwrap(),
            id: Some("late-1".into()),
            text: "This chat has ended.".into(),
        })
        .await;
    let got = agent
        .expect(WAIT, |e| is_message_from(e, &visitor_jid("g1")))
        .await
        .unwrap();
    assert_eq!(got["type"], "error");
    assert_eq!(got["id"], "late-1");
    assert_eq!(got["error_condition"], "gone");
    assert_eq!(got["error_text"], "This chat has ended.");
    bridge.expect(|e| *e == Event::Sent { outbox_id: 99 }).await;
    bridge.stop().await;
}

/// Messages queued while the server is down are sent after the reconnect,
/// in order. The agent is offline during the flush so that the server's
/// offline storage, not a login race, decides what the agent gets: all of
/// them, in order, at its next login.
async fn restart_loses_no_message_and_keeps_order(kind: XmppKind) {
    let mut server = server(kind, &[Account::new("101").preapproved()]).await;
    let mut agent = server.agent("101").await.unwrap();
    let mut bridge = Bridge::start(&server, &["101@localhost"]).await;
    let v = visitor("h1");
    bridge
        .command(message(1, &v, "101@localhost", "before"))
        .await;
    bridge.expect(|e| *e == Event::Sent { outbox_id: 1 }).await;
    agent.expect_message_from(&visitor_jid("h1")).await.unwrap();
    drop(agent);

    server.kill();
    bridge
        .expect(|e| matches!(e, Event::Disconnected { .. }))
        .await;
    for i in 2..=6 {
        bridge
            .command(message(
                i,
                &v,
                "101@localhost",
                &format!("during outage {i}"),
            ))
            .await;
    }
    server.restart().await.unwrap();
    // ejabberd takes longer to come back than Prosody.
    bridge
        .expect_within(Duration::from_secs(20), |e| matches!(e, Event::Connected))
        .await;
    assert_eq!(sent_ids(&mut bridge, 5).await, [2, 3, 4, 5, 6]);

    let mut agent = server.agent("101").await.unwrap();
    let expected: Vec<String> = (2..=6).map(|i| format!("during outage {i}")).collect();
    assert_eq!(bodies_from(&mut agent, "h1", 5).await, expected);
    // Replies flow again.
    agent
        .send(&visitor_jid("h1"), "back", "ag-back")
        .await
        .unwrap();
    bridge
        .expect(|e| matches!(e, Event::AgentMessage { body, .. } if body == "back"))
        .await;
    bridge.stop().await;
}

async fn sent_ids(bridge: &mut Bridge, n: usize) -> Vec<i64> {
    let mut sent = Vec::new();
    while sent.len() < n {
        if let Event::Sent { outbox_id } = bridge.expect(|e| matches!(e, Event::Sent { .. })).await
        {
            sent.push(outbox_id);
        }
    }
    sent
}

async fn bodies_from(agent: &mut XmppAgent, v: &str, n: usize) -> Vec<String> {
    let mut bodies = Vec::new();
    while bodies.len() < n {
        let m = agent
            .expect(Duration::from_secs(20), |e| {
                is_message_from(e, &visitor_jid(v)) && e["body"].is_string()
            })
            .await
            .unwrap();
        bodies.push(m["body"].as_str().unwrap().to_owned());
    }
    bodies
}

/// A frozen server (SIGSTOP) keeps its sockets open: only pings notice.
/// The agent's own connection survives the freeze and the agent sends no new
/// presence, so seeing it available again proves the reconnect probed it.
#[tokio::test]
async fn a_hung_server_is_detected_by_pings_and_presence_is_probed_after_reconnect() {
    let server = prosody(&[Account::new("101").preapproved()]).await;
    let _agent = server.agent("101").await.unwrap();
    let mut bridge = Bridge::start(&server, &["101@localhost"]).await;
    bridge.expect(presence(Availability::Available)).await;
    server.pause().unwrap();
    // ping_interval 1 s + ping_timeout 2 s.
    bridge
        .expect_within(Duration::from_secs(8), |e| {
            matches!(e, Event::Disconnected { .. })
        })
        .await;
    // Queued while down.
    bridge
        .command(message(5, &visitor("i1"), "101@localhost", "queued"))
        .await;
    server.resume().unwrap();
    bridge
        .expect_within(Duration::from_secs(15), |e| matches!(e, Event::Connected))
        .await;
    bridge.expect(presence(Availability::Available)).await;
    bridge.expect(|e| *e == Event::Sent { outbox_id: 5 }).await;
    bridge.stop().await;
}

#[tokio::test]
async fn wrong_secret_never_connects_and_shutdown_still_works() {
    let server = prosody(&[]).await;
    let (commands, rx) = mpsc::channel(8);
    let shutdown = CancellationToken::new();
    let mut config = ComponentConfig::new(
        BareJid::new(COMPONENT_DOMAIN).unwrap(),
        server.component_addr(),
        "not-the-secret",
    );
    config.reconnect_initial = Duration::from_millis(20);
    let (task, mut events) = frontdesk_xmpp::spawn(config, rx, shutdown.clone()).unwrap();
    let outcome = tokio::time::timeout(Duration::from_millis(1500), events.recv()).await;
    assert!(outcome.is_err(), "unexpected event {outcome:?}");
    shutdown.cancel();
    tokio::time::timeout(WAIT, task).await.unwrap().unwrap();
    drop(commands);
}

/// ejabberd with `tls: true` on its component listener, serving a
/// certificate for `localhost` from a CA made for this test.
#[tokio::test]
async fn the_component_link_runs_over_tls_and_refuses_a_certificate_it_cannot_verify() {
    let pki = TestPki::generate("Frontdesk test CA").unwrap();
    let server = XmppServer::ejabberd_with_component_tls(
        &[Account::new("101")],
        &pki.server_chain_and_key(),
    )
    .await
    .unwrap_or_else(|e| panic!("ejabberd did not start: {e:#}"));
    let trusting = |ca_pem: Option<Vec<u8>>, name: &str| ComponentTls {
        server_name: name.to_owned(),
        ca_pem,
    };
    let mut agent = server.agent("101").await.unwrap();
    let tls = trusting(Some(pki.ca_pem()), "localhost");
    let mut bridge =
        Bridge::start_with(&server, &["101@localhost"], |c| c.tls = Some(tls.clone())).await;
    let v = visitor("tls1");
    bridge
        .command(message(1, &v, "101@localhost", "over TLS"))
        .await;
    let got = agent
        .expect_message_from(&visitor_jid("tls1"))
        .await
        .unwrap();
    assert_eq!(got["body"], "over TLS");
    bridge.expect(|e| *e == Event::Sent { outbox_id: 1 }).await;
    agent
        .send(&visitor_jid("tls1"), "back over TLS", "tls-back")
        .await
        .unwrap();
    let back = bridge
        .expect(|e| matches!(e, Event::AgentMessage { .. }))
        .await;
    assert!(
        matches!(&back, Event::AgentMessage { body, .. } if body == "back over TLS"),
        "{back:?}"
    );
    bridge.stop().await;

    // Another CA, the Mozilla roots (the default) and another name: each
    // refused at the handshake, saying why.
    let other = TestPki::generate("Another CA").unwrap();
    let refused = [
        (trusting(Some(other.ca_pem()), "localhost"), "UnknownIssuer"),
        (trusting(None, "localhost"), "UnknownIssuer"),
        (
            trusting(Some(pki.ca_pem()), "xmpp.example.com"),
            "not valid for name",
        ),
    ];
    let config = |tls: Option<ComponentTls>| {
        let mut config = ComponentConfig::new(
            BareJid::new(COMPONENT_DOMAIN).unwrap(),
            server.component_addr(),
            &server.secret,
        );
        config.tls = tls;
        config
    };
    for (tls, why) in refused {
        let error = frontdesk_xmpp::probe(&config(Some(tls.clone())))
            .await
            .expect_err("an unverifiable certificate was accepted");
        let text = error.to_string();
        assert!(matches!(error, ConnectError::Tls { .. }), "{tls:?}: {text}");
        assert!(text.contains(why), "{tls:?}: {text}");
        assert!(text.contains(&tls.server_name), "{text}");
    }
    // The same settings connect; plain XML to the TLS port does not.
    frontdesk_xmpp::probe(&config(Some(tls))).await.unwrap();
    assert!(frontdesk_xmpp::probe(&config(None)).await.is_err());
}
