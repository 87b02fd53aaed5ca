//! The SIP user agent (`pbx_adapter::sip`) against a real Kamailio (proxy
//! and registrar of the PBX domain) and agents played by sipp: MESSAGE both
//! ways over UDP and TCP, long messages, unregistered and dead agents,
//! reachability probes, digest challenges, strangers (by From and by
//! source address), copies of a request, typing indications, malformed
//! input, and the order and Call-IDs of a burst to one agent.

use std::net::SocketAddr;
use std::time::Duration;

use frontdesk_tests::kamailio::{SippAgent, GATEWAY_AUTH_USER, GATEWAY_DOMAIN};
use frontdesk_tests::net::free_udp_tcp_addr;
use frontdesk_tests::sip::{uri, visitor_uri, SipPbx, UserAgent, WAIT};
use frontdesk_tests::softphone::Softphone;
use pbx_adapter::sip::{SipCommand, SipConfig, SipCredentials, SipEvent, SipTransport};

async fn pbx() -> SipPbx {
    SipPbx::start().await.expect("kamailio did not start")
}

/// Kamailio, agent 101's softphone (registered over UDP, answering) and a
/// user agent over `transports` that allows it.
async fn one_agent(transports: &[SipTransport]) -> (SipPbx, SippAgent, UserAgent) {
    let pbx = pbx().await;
    let agent = pbx.agent("101", false).await.unwrap();
    let ua = UserAgent::start(&pbx, transports, &[&agent.aor()], |_| {}).await;
    (pbx, agent, ua)
}

fn is_sent(id: i64) -> impl Fn(&SipEvent) -> bool {
    move |e| matches!(e, SipEvent::Sent { outbox_id } if *outbox_id == id)
}

fn is_failed(id: i64) -> impl Fn(&SipEvent) -> bool {
    move |e| matches!(e, SipEvent::SendFailed { outbox_id, .. } if *outbox_id == id)
}

fn is_agent_message(e: &SipEvent) -> bool {
    matches!(e, SipEvent::AgentMessage { .. })
}

/// Visitor → agent, then agent → visitor (stored: 200; refused: the
/// gateway's status), through Kamailio.
async fn round_trip(tcp: bool) {
    let pbx = SipPbx::start_with(|o| {
        if tcp {
            o.gateway_transport = Some("tcp");
        }
    })
    .await
    .expect("kamailio did not start");
    let agent = pbx.agent("101", tcp).await.unwrap();
    let transports: &[SipTransport] = if tcp {
        &[SipTransport::Tcp]
    } else {
        &[SipTransport::Udp, SipTransport::Tcp]
    };
    let mut ua = UserAgent::start(&pbx, transports, &[&agent.aor()], |_| {}).await;
    let proto = if tcp { "proto=tcp" } else { "proto=udp" };

    ua.send(
        1,
        "visitor-a1",
        &agent.aor(),
        "Hello, I need help with my order",
    )
    .await;
    ua.expect(is_sent(1)).await;
    let got = agent
        .wait_for(
            &["MESSAGE sip:101@", "Hello, I need help with my order"],
            WAIT,
        )
        .await
        .unwrap();
    assert!(got.contains("visitor-a1@chat.localhost"), "{got}");
    assert!(
        got.contains("Content-Type: text/plain;charset=UTF-8"),
        "{got}"
    );
    pbx.kamailio
        .wait_for_log(&["MESSAGE from=sip:visitor-a1@chat.localhost", proto], WAIT)
        .await
        .unwrap();

    // The agent's phone gets 200 only once the gateway has stored it.
    let sending = {
        let to = visitor_uri("visitor-a1");
        async move {
            agent
                .send_message(&to, "text/plain", "Hi, agent here")
                .await
                .map(|s| (s, agent))
        }
    };
    let sending = tokio::spawn(sending);
    let SipEvent::AgentMessage {
        from,
        to_user,
        body,
        request,
        respond,
    } = ua.expect(is_agent_message).await
    else {
        unreachable!()
    };
    assert_eq!(from, uri("sip:101@pbx.localhost"));
    assert_eq!(to_user, "visitor-a1");
    // Call-ID, CSeq and From tag: what a re-sent copy shares.
    let request = request.expect("the request's identity");
    assert_eq!(request.split(' ').nth(1), Some("1"), "{request}");
    assert_eq!(body.trim_end(), "Hi, agent here");
    assert!(
        !sending.is_finished(),
        "answered before the gateway decided"
    );
    respond.accept();
    let (status, agent) = sending.await.unwrap().unwrap();
    assert_eq!(status, 200);
    pbx.kamailio
        .wait_for_log(
            &["MESSAGE from=sip:101@pbx.localhost", "visitor-a1", proto],
            WAIT,
        )
        .await
        .unwrap();

    // A refusal reaches the phone as the gateway's status.
    let to = visitor_uri("visitor-gone");
    let sending =
        tokio::spawn(async move { agent.send_message(&to, "text/plain", "Still there?").await });
    let SipEvent::AgentMessage { respond, .. } = ua.expect(is_agent_message).await else {
        unreachable!()
    };
    respond.refuse(480);
    assert_eq!(sending.await.unwrap().unwrap(), 480);
    ua.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn messages_flow_both_ways_over_udp() {
    round_trip(false).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn messages_flow_both_ways_over_tcp() {
    round_trip(true).await;
}

fn long_text(len: usize) -> String {
    let mut text = String::from("START ");
    let mut n = 0;
    while text.len() < len - 4 {
        text.push_str(&format!("word{n} "));
        n += 1;
    }
    text.push_str("END");
    text
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn long_message_goes_over_tcp_and_short_over_udp() {
    let (pbx, agent, mut ua) = one_agent(&[SipTransport::Udp, SipTransport::Tcp]).await;
    let text = long_text(2000);
    ua.send(1, "visitor-long", &agent.aor(), &text).await;
    ua.expect(is_sent(1)).await;
    let got = agent
        .wait_for(&["MESSAGE sip:101@", "START", "END"], WAIT)
        .await
        .unwrap();
    assert!(got.contains(&text), "the long text arrived cut: {got}");
    pbx.kamailio
        .wait_for_log(
            &["MESSAGE from=sip:visitor-long@chat.localhost", "proto=tcp"],
            WAIT,
        )
        .await
        .unwrap();
    ua.send(2, "visitor-short", &agent.aor(), "short").await;
    ua.expect(is_sent(2)).await;
    pbx.kamailio
        .wait_for_log(
            &["MESSAGE from=sip:visitor-short@chat.localhost", "proto=udp"],
            WAIT,
        )
        .await
        .unwrap();
    ua.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn long_message_is_split_when_only_udp_is_configured() {
    let (_pbx, agent, mut ua) = one_agent(&[SipTransport::Udp]).await;
    let text = long_text(3000);
    ua.send(1, "visitor-split", &agent.aor(), &text).await;
    ua.expect(is_sent(1)).await;
    agent
        .wait_for(&["MESSAGE sip:101@", "END"], WAIT)
        .await
        .unwrap();
    let parts = agent.received().matches("MESSAGE sip:101@").count();
    assert!(
        parts >= 3,
        "expected the text in at least 3 parts, got {parts}"
    );
    let first = agent
        .wait_for(&["MESSAGE sip:101@", "START"], WAIT)
        .await
        .unwrap();
    assert!(
        !first.contains("END"),
        "the first part holds everything: {first}"
    );
    ua.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unregistered_agent_fails_and_is_unreachable() {
    let pbx = pbx().await;
    let mut ua = UserAgent::start(&pbx, &[SipTransport::Udp], &[], |_| {}).await;
    ua.send(5, "visitor-b1", "sip:102@pbx.localhost", "anyone?")
        .await;
    let SipEvent::SendFailed { status, .. } = ua.expect(is_failed(5)).await else {
        unreachable!()
    };
    assert_eq!(status, Some(404));
    ua.command(SipCommand::Probe {
        agent: uri("sip:102@pbx.localhost"),
    })
    .await;
    let event = ua
        .expect(|e| matches!(e, SipEvent::AgentReachable { .. }))
        .await;
    assert!(matches!(
        event,
        SipEvent::AgentReachable {
            reachable: false,
            ..
        }
    ));
    ua.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn probes_tell_live_dead_and_unregistered_agents_apart() {
    let pbx = pbx().await;
    let mut live = pbx.agent("101", false).await.unwrap();
    let _dead = SippAgent::register_only(&pbx.kamailio, "103", false)
        .await
        .unwrap();
    let mut ua = UserAgent::start(
        &pbx,
        &[SipTransport::Udp],
        &[&live.aor(), "sip:103@pbx.localhost"],
        |c| c.probe_interval = Duration::from_secs(1),
    )
    .await;
    let reach = |who: &'static str, ok: bool| {
        move |e: &SipEvent| {
            matches!(e, SipEvent::AgentReachable { agent, reachable }
                if agent.user() == who && *reachable == ok)
        }
    };
    // First interval probes always report.
    ua.expect(reach("101", true)).await;
    ua.expect(reach("103", false)).await;

    // A message to the dead contact fails with the proxy's timeout.
    ua.send(9, "visitor-c1", "sip:103@pbx.localhost", "hello?")
        .await;
    let SipEvent::SendFailed { status, .. } = ua.expect(is_failed(9)).await else {
        unreachable!()
    };
    assert_eq!(status, Some(408));

    // The live agent unregisters mid-chat: the next probes say so.
    live.stop_answering();
    live.register(0).await.unwrap();
    ua.expect(reach("101", false)).await;
    ua.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn digest_challenges_are_answered() {
    let password = "s3cret-pw";
    let pbx = SipPbx::start_with(|o| o.gateway_password = Some(password.to_owned()))
        .await
        .expect("kamailio did not start");
    let agent = pbx.agent("101", false).await.unwrap();
    let credentials = |pw: &str| SipCredentials {
        username: GATEWAY_AUTH_USER.to_owned(),
        password: pw.to_owned(),
    };
    let mut ua = UserAgent::start(&pbx, &[SipTransport::Udp], &[&agent.aor()], |c| {
        c.credentials = Some(credentials(password))
    })
    .await;
    ua.send(1, "visitor-d1", &agent.aor(), "authenticated hello")
        .await;
    ua.expect(is_sent(1)).await;
    agent
        .wait_for(&["authenticated hello"], WAIT)
        .await
        .unwrap();
    pbx.kamailio
        .wait_for_log(
            &["challenge MESSAGE from sip:visitor-d1@chat.localhost"],
            WAIT,
        )
        .await
        .unwrap();
    ua.stop().await;

    // A wrong password is not retried for ever and tells the truth.
    let mut ua = UserAgent::start(&pbx, &[SipTransport::Udp], &[&agent.aor()], |c| {
        c.credentials = Some(credentials("wrong"))
    })
    .await;
    ua.send(2, "visitor-d2", &agent.aor(), "nope").await;
    let SipEvent::SendFailed { status, .. } = ua.expect(is_failed(2)).await else {
        unreachable!()
    };
    assert_eq!(status, Some(407));
    ua.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn strangers_get_403_and_no_event() {
    let (pbx, agent, mut ua) = one_agent(&[SipTransport::Udp]).await;
    let stranger = pbx.agent("999", false).await.unwrap();
    let status = stranger
        .send_message(&visitor_uri("visitor-e1"), "text/plain", "let me in")
        .await
        .unwrap();
    assert_eq!(status, 403);
    // The next agent message is the first one the gateway hears of.
    let to = visitor_uri("visitor-e1");
    let sending = tokio::spawn(async move { agent.send_message(&to, "text/plain", "legit").await });
    let SipEvent::AgentMessage { body, respond, .. } = ua
        .expect(|e| !matches!(e, SipEvent::AgentReachable { .. }))
        .await
    else {
        panic!("the stranger's message was reported")
    };
    assert_eq!(body.trim_end(), "legit");
    respond.accept();
    assert_eq!(sending.await.unwrap().unwrap(), 200);
    ua.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn typing_indications_flow_both_ways() {
    let (_pbx, agent, mut ua) = one_agent(&[SipTransport::Udp]).await;
    ua.command(SipCommand::Composing {
        from_user: "visitor-f1".into(),
        to: uri(&agent.aor()),
        active: true,
    })
    .await;
    let got = agent
        .wait_for(
            &[
                "Content-Type: application/im-iscomposing+xml",
                "<state>active</state>",
            ],
            WAIT,
        )
        .await
        .unwrap();
    assert!(got.contains("visitor-f1@chat.localhost"), "{got}");

    let doc = r#"<?xml version="1.0" encoding="UTF-8"?><isComposing xmlns="urn:ietf:params:xml:ns:im-iscomposing"><state>active</state><contenttype>text/plain</contenttype></isComposing>"#;
    let status = agent
        .send_message(
            &visitor_uri("visitor-f1"),
            "application/im-iscomposing+xml",
            doc,
        )
        .await
        .unwrap();
    assert_eq!(status, 200);
    let event = ua
        .expect(|e| matches!(e, SipEvent::AgentComposing { .. }))
        .await;
    let SipEvent::AgentComposing {
        from,
        to_user,
        active,
    } = event
    else {
        unreachable!()
    };
    assert_eq!(from.user(), "101");
    assert_eq!(to_user, "visitor-f1");
    assert!(active);
    ua.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_input_does_not_kill_the_user_agent() {
    use tokio::io::AsyncWriteExt;
    let (_pbx, agent, mut ua) = one_agent(&[SipTransport::Udp, SipTransport::Tcp]).await;
    let garbage: Vec<Vec<u8>> = vec![
        b"\x00\x01\x02\xff\xfe".to_vec(),
        b"MESSAGE sip:visitor-x@chat.localhost SIP/2.0\r\n\r\n".to_vec(),
        b"MESSAGE sip:visitor-x@chat.localhost SIP/2.0\r\nVia: nonsense\r\nFrom: <<<\r\nContent-Length: 99999\r\n\r\nx".to_vec(),
        b"SIP/2.0 200 OK\r\nVia: SIP/2.0/UDP 1.2.3.4;branch=z9hG4bKx\r\n\r\n".to_vec(),
        "INVITE ☃ SIP/2.0\r\n\r\n".as_bytes().to_vec(),
        vec![b'A'; 70_000],
    ];
    let udp = tokio::net::UdpSocket::bind("127.0.0.1:0").await.unwrap();
    for g in &garbage {
        let _ = udp.send_to(&g[..g.len().min(60_000)], ua.addr).await;
    }
    // The stack binds its TCP listener when it starts serving, just after
    // spawn returns: wait until it accepts.
    frontdesk_tests::net::wait_for_port(ua.addr.port(), WAIT)
        .await
        .unwrap();
    for g in &garbage {
        let mut tcp = tokio::net::TcpStream::connect(ua.addr).await.unwrap();
        let _ = tcp.write_all(g).await;
        let _ = tcp.shutdown().await;
    }
    // Still serving both ways.
    ua.send(1, "visitor-g1", &agent.aor(), "still alive").await;
    ua.expect(is_sent(1)).await;
    agent.wait_for(&["still alive"], WAIT).await.unwrap();
    let to = visitor_uri("visitor-g1");
    let sending =
        tokio::spawn(async move { agent.send_message(&to, "text/plain", "me too").await });
    let SipEvent::AgentMessage { respond, .. } = ua.expect(is_agent_message).await else {
        unreachable!()
    };
    respond.accept();
    assert_eq!(sending.await.unwrap().unwrap(), 200);
    assert!(ua.is_running());
    ua.stop().await;
}

/// TLS end to end without Kamailio (Debian's kamailio ships TLS in a
/// separate package): one user agent uses another's TLS listener as its
/// outbound proxy, with the test certificate in `tests/sip/tls/` (for
/// `localhost` and 127.0.0.1) as the only trusted root.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_transport_carries_messages() {
    use pbx_adapter::sip::TlsMaterial;
    frontdesk_tests::gateway::init_test_logging();
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("sip/tls");
    let cert = std::fs::read(dir.join("cert.pem")).unwrap();
    let material = TlsMaterial {
        cert_pem: cert.clone(),
        key_pem: std::fs::read(dir.join("key.pem")).unwrap(),
        ca_pem: Some(cert),
    };
    let (a_addr, b_addr) = (free_udp_tcp_addr().unwrap(), free_udp_tcp_addr().unwrap());
    let start = |domain: &str, own: SocketAddr, proxy: SocketAddr, allow: &'static str| {
        let mut config = SipConfig::new(domain, proxy.to_string());
        config = config.listen(SipTransport::Tls, own);
        config.tls = Some(material.clone());
        async move { UserAgent::start_on(config, own, &[allow]).await }
    };
    let mut b = start(
        "agents.localhost",
        b_addr,
        a_addr,
        "sip:visitor-t1@chat.localhost",
    )
    .await;
    let mut a = start(
        GATEWAY_DOMAIN,
        a_addr,
        b_addr,
        "sip:nobody@agents.localhost",
    )
    .await;
    a.send(
        1,
        "visitor-t1",
        "sip:visitor-b@agents.localhost",
        "over TLS",
    )
    .await;
    let SipEvent::AgentMessage {
        from,
        to_user,
        body,
        respond,
        ..
    } = b.expect(is_agent_message).await
    else {
        unreachable!()
    };
    assert_eq!(from, uri("sip:visitor-t1@chat.localhost"));
    assert_eq!(to_user, "visitor-b");
    assert_eq!(body, "over TLS");
    respond.accept();
    a.expect(is_sent(1)).await;
    a.stop().await;
    b.stop().await;
}

/// A steady stream of visitor messages through Kamailio to one agent: every
/// one is confirmed, none is lost or duplicated, and the confirmation
/// latency is printed (figures for docs/benchmarks.md).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_steady_stream_is_delivered_completely() {
    const COUNT: i64 = 300;
    const RATE_PER_SEC: u64 = 100;
    let (_pbx, agent, mut ua) = one_agent(&[SipTransport::Udp]).await;
    let mut sent_at = std::collections::HashMap::new();
    let mut latencies = Vec::new();
    let mut pace = tokio::time::interval(Duration::from_micros(1_000_000 / RATE_PER_SEC));
    let started = tokio::time::Instant::now();
    let mut next = 1;
    while latencies.len() < COUNT as usize {
        tokio::select! {
            _ = pace.tick(), if next <= COUNT => {
                sent_at.insert(next, tokio::time::Instant::now());
                ua.send(next, "visitor-load", &agent.aor(), &format!("message number {next}")).await;
                next += 1;
            }
            event = tokio::time::timeout(WAIT, ua.events.recv()) => match event {
                Ok(Some(SipEvent::Sent { outbox_id })) => {
                    let at = sent_at.remove(&outbox_id).expect("confirmed once");
                    latencies.push(at.elapsed());
                }
                Ok(Some(SipEvent::SendFailed { outbox_id, status, reason })) => {
                    panic!("message {outbox_id} failed: {status:?} {reason}")
                }
                Ok(Some(_)) => {}
                Ok(None) => panic!("UA task ended"),
                Err(_) => panic!("stalled with {} confirmed", latencies.len()),
            }
        }
    }
    let elapsed = started.elapsed();
    latencies.sort();
    let p = |q: f64| latencies[((latencies.len() - 1) as f64 * q) as usize];
    eprintln!(
        "SIP visitor→agent via Kamailio (UDP): {COUNT} messages at {RATE_PER_SEC}/s in {elapsed:?}; \
         confirmation latency p50 {:?} p99 {:?} max {:?}",
        p(0.5),
        p(0.99),
        latencies.last().unwrap()
    );
    let last = format!("message number {COUNT}");
    agent.wait_for(&[&last], WAIT).await.unwrap();
    let received = agent.received();
    for n in [1, COUNT / 2, COUNT] {
        let needle = format!("message number {n}\n");
        assert_eq!(
            received.matches(&needle).count(),
            1,
            "message {n} not received exactly once"
        );
    }
    ua.stop().await;
}

/// A burst of messages from one visitor to one agent, all commanded at
/// once, arrives in the order commanded (one transaction at a time: UDP,
/// retransmissions and Kamailio's parallel workers would reorder
/// concurrent ones), each under the Call-ID its message id gives; the
/// same message id sent again (a forward repeated after a gateway
/// restart) keeps its Call-ID, so the phone can tell the copy.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_burst_to_one_agent_arrives_in_order_under_stable_call_ids() {
    const COUNT: i64 = 100;
    let pbx = pbx().await;
    let phone = Softphone::start(&pbx.kamailio, "101").await.unwrap();
    let mut ua = UserAgent::start(&pbx, &[SipTransport::Udp], &[&phone.aor()], |_| {}).await;
    for n in 1..=COUNT {
        let id = format!("fd-burst-{n}");
        ua.send_as(
            n,
            "visitor-burst",
            &phone.aor(),
            &format!("burst {n}"),
            Some(&id),
        )
        .await;
    }
    let mut confirmed = Vec::new();
    while confirmed.len() < COUNT as usize {
        match ua
            .expect(|e| matches!(e, SipEvent::Sent { .. } | SipEvent::SendFailed { .. }))
            .await
        {
            SipEvent::Sent { outbox_id } => confirmed.push(outbox_id),
            other => panic!("{other:?}"),
        }
    }
    assert_eq!(confirmed, (1..=COUNT).collect::<Vec<_>>());
    // First arrivals (UDP retransmissions arrive again under one Call-ID).
    let mut seen = std::collections::HashSet::new();
    let arrived: Vec<(String, String)> = phone
        .received()
        .into_iter()
        .filter(|m| seen.insert(m.call_id.clone()))
        .map(|m| (m.call_id, m.body))
        .collect();
    let expected: Vec<(String, String)> = (1..=COUNT)
        .map(|n| {
            (
                format!("fd-burst-{n}@{GATEWAY_DOMAIN}"),
                format!("burst {n}"),
            )
        })
        .collect();
    assert_eq!(arrived, expected);

    ua.send_as(
        COUNT + 1,
        "visitor-burst",
        &phone.aor(),
        "burst 1",
        Some("fd-burst-1"),
    )
    .await;
    ua.expect(is_sent(COUNT + 1)).await;
    let copies = phone
        .received()
        .into_iter()
        .filter(|m| m.call_id == format!("fd-burst-1@{GATEWAY_DOMAIN}"))
        .count();
    assert!(copies >= 2, "the copy came under another Call-ID");
    ua.stop().await;
}

/// When a message to an agent fails, the ones waiting behind it fail with
/// it at once, rather than arrive after a gap or each wait for its own
/// timeout.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn messages_behind_a_failed_one_fail_with_it() {
    let pbx = pbx().await;
    // Registered, but nobody answers: the proxy gives up with 408.
    let dead = SippAgent::register_only(&pbx.kamailio, "101", false)
        .await
        .unwrap();
    let mut ua = UserAgent::start(&pbx, &[SipTransport::Udp], &[&dead.aor()], |_| {}).await;
    for n in 1..=3 {
        ua.send(n, "visitor-gap", &dead.aor(), &format!("gap {n}"))
            .await;
    }
    let SipEvent::SendFailed { status, .. } = ua.expect(is_failed(1)).await else {
        unreachable!()
    };
    assert_eq!(status, Some(408));
    for n in 2..=3 {
        let SipEvent::SendFailed { status, reason, .. } = ua.expect(is_failed(n)).await else {
            unreachable!()
        };
        assert_eq!(status, None);
        assert!(reason.contains("earlier message"), "{reason}");
    }
    ua.stop().await;
}

/// A MESSAGE as an agent's phone (or the proxy) would send it, straight to
/// the user agent over UDP from `socket`.
fn raw_message(socket: SocketAddr, branch: &str, call_id: &str, from: &str, body: &str) -> String {
    format!(
        "MESSAGE sip:visitor-r1@{GATEWAY_DOMAIN} SIP/2.0\r\n\
         Via: SIP/2.0/UDP {socket};branch={branch};rport\r\n\
         From: <{from}>;tag=ft-{call_id}\r\nTo: <sip:visitor-r1@{GATEWAY_DOMAIN}>\r\n\
         Call-ID: {call_id}\r\nCSeq: 7 MESSAGE\r\nMax-Forwards: 70\r\n\
         Content-Type: text/plain\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    )
}

/// A UDP socket on `ip` sending raw requests to the user agent and
/// reading its answers.
struct RawPeer {
    socket: tokio::net::UdpSocket,
    ua: SocketAddr,
}

impl RawPeer {
    async fn bind(ip: &str, ua: SocketAddr) -> RawPeer {
        let socket = tokio::net::UdpSocket::bind((ip, 0)).await.unwrap();
        RawPeer { socket, ua }
    }

    fn addr(&self) -> SocketAddr {
        self.socket.local_addr().unwrap()
    }

    async fn send(&self, branch: &str, call_id: &str, from: &str, body: &str) {
        let text = raw_message(self.addr(), branch, call_id, from, body);
        self.socket.send_to(text.as_bytes(), self.ua).await.unwrap();
    }

    /// The next final response: (status, Via branch).
    async fn final_response(&self) -> (u16, String) {
        let mut buf = vec![0u8; 65_535];
        loop {
            let (len, _) = tokio::time::timeout(WAIT, self.socket.recv_from(&mut buf))
                .await
                .expect("no answer in time")
                .unwrap();
            let text = String::from_utf8_lossy(&buf[..len]).into_owned();
            let status: u16 = text
                .strip_prefix("SIP/2.0 ")
                .and_then(|r| r.get(..3))
                .and_then(|s| s.parse().ok())
                .unwrap_or_else(|| panic!("not a response: {text}"));
            if status < 200 {
                continue;
            }
            let branch = text
                .split("branch=")
                .nth(1)
                .and_then(|r| r.split([';', '\r', ',']).next())
                .unwrap_or_default()
                .to_owned();
            return (status, branch);
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn requests_from_anywhere_but_the_proxy_get_403_and_no_event() {
    let (_pbx, agent, mut ua) = one_agent(&[SipTransport::Udp]).await;
    let addr = ua.addr;
    // Another host (127.0.0.2) writing as the allowlisted agent 101, even
    // naming the proxy in Via: 403, and nothing reaches the gateway.
    let stranger = RawPeer::bind("127.0.0.2", addr).await;
    stranger
        .send("z9hG4bK-s1", "stranger-1", &agent.aor(), "I am 101")
        .await;
    assert_eq!(stranger.final_response().await.0, 403);
    let options = format!(
        "OPTIONS sip:{GATEWAY_DOMAIN} SIP/2.0\r\nVia: SIP/2.0/UDP {};branch=z9hG4bK-s2\r\n\
         From: <sip:scan@example.com>;tag=x\r\nTo: <sip:{GATEWAY_DOMAIN}>\r\nCall-ID: scan-1\r\n\
         CSeq: 1 OPTIONS\r\nMax-Forwards: 70\r\nContent-Length: 0\r\n\r\n",
        stranger.addr()
    );
    stranger
        .socket
        .send_to(options.as_bytes(), addr)
        .await
        .unwrap();
    assert_eq!(stranger.final_response().await.0, 403);
    // The same from the proxy's address is the first message reported.
    let proxy_host = RawPeer::bind("127.0.0.1", addr).await;
    proxy_host
        .send("z9hG4bK-p1", "proxied-1", &agent.aor(), "relayed")
        .await;
    let SipEvent::AgentMessage { body, respond, .. } = ua
        .expect(|e| !matches!(e, SipEvent::AgentReachable { .. }))
        .await
    else {
        panic!("a stranger's request was reported")
    };
    assert_eq!(body, "relayed");
    respond.accept();
    assert_eq!(proxy_host.final_response().await.0, 200);
    ua.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn copies_of_a_message_are_answered_like_the_first_and_reported_once() {
    let (_pbx, agent, mut ua) = one_agent(&[SipTransport::Udp]).await;
    let addr = ua.addr;
    let proxy = RawPeer::bind("127.0.0.1", addr).await;
    // Before the gateway decides: the original, a retransmission (same
    // branch) and a copy under a new branch (same Call-ID, CSeq, tag).
    for branch in ["z9hG4bK-a", "z9hG4bK-a", "z9hG4bK-b"] {
        proxy.send(branch, "copied-1", &agent.aor(), "once").await;
    }
    // Then another message: the next event after the first must be it.
    proxy
        .send("z9hG4bK-c", "other-1", &agent.aor(), "next")
        .await;
    let is_message = |e: &SipEvent| matches!(e, SipEvent::AgentMessage { .. });
    let SipEvent::AgentMessage { body, respond, .. } = ua.expect(is_message).await else {
        unreachable!()
    };
    assert_eq!(body, "once");
    let SipEvent::AgentMessage {
        body,
        respond: next,
        ..
    } = ua.expect(is_message).await
    else {
        unreachable!()
    };
    assert_eq!(body, "next", "a copy was reported as a new message");
    // The gateway's verdict answers the original and the copy.
    respond.refuse(480);
    next.accept();
    let mut answers = vec![
        proxy.final_response().await,
        proxy.final_response().await,
        proxy.final_response().await,
    ];
    answers.sort();
    let expected = [(200, "z9hG4bK-c"), (480, "z9hG4bK-a"), (480, "z9hG4bK-b")];
    assert_eq!(answers, expected.map(|(s, b)| (s, b.to_owned())));
    // After the answer: retransmissions (a branch answered already) get
    // the same final response.
    for branch in ["z9hG4bK-a", "z9hG4bK-b"] {
        proxy.send(branch, "copied-1", &agent.aor(), "once").await;
        assert_eq!(proxy.final_response().await, (480, branch.to_owned()));
    }
    // A copy of the accepted message under a new branch is answered 200
    // and not reported again; a copy of the refused one is decided again
    // (a phone re-sends because the first failed, and the refusal may not
    // hold any more).
    proxy
        .send("z9hG4bK-d", "other-1", &agent.aor(), "next")
        .await;
    assert_eq!(proxy.final_response().await, (200, "z9hG4bK-d".to_owned()));
    proxy
        .send("z9hG4bK-e", "copied-1", &agent.aor(), "once")
        .await;
    let SipEvent::AgentMessage { body, respond, .. } = ua.expect(is_message).await else {
        unreachable!()
    };
    assert_eq!(body, "once", "a copy of an accepted message was reported");
    respond.accept();
    assert_eq!(proxy.final_response().await, (200, "z9hG4bK-e".to_owned()));
    ua.stop().await;
}
