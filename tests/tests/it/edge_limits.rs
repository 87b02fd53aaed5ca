//! The edge's defences against clients that hold resources without using
//! them (issue 12): header, keep-alive and body timeouts, connection caps,
//! WebSocket limits, and client addresses behind a trusted proxy. Timeouts
//! are configured small (1–2 s); every wait is for an event, with a bound.

use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant};

use frontdesk::config::Config;
use frontdesk_tests::config::ALLOWED_ORIGIN;
use frontdesk_tests::gateway::TestGateway;
use frontdesk_tests::visitor::{EventStream, Session, StreamItem, Visitor};
use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpSocket, TcpStream};

const LOCALHOST: [u8; 4] = [127, 0, 0, 1];
/// Another loopback address: another client as far as the gateway knows.
const OTHER_CLIENT: [u8; 4] = [127, 0, 0, 2];
const HEALTHZ: &[u8] = b"GET /healthz HTTP/1.1\r\nHost: test\r\n\r\n";

fn addr_of(gw: &TestGateway) -> SocketAddr {
    gw.url
        .trim_start_matches("http://")
        .parse()
        .expect("the test gateway listens on an IP address")
}

/// A TCP connection to the gateway from `from` (a loopback address).
async fn connect_from(gw: &TestGateway, from: [u8; 4]) -> TcpStream {
    let socket = TcpSocket::new_v4().unwrap();
    socket
        .bind(SocketAddr::from((from, 0)))
        .expect("loopback addresses other than 127.0.0.1 can be bound on Linux");
    socket.connect(addr_of(gw)).await.unwrap()
}

/// Reads until the gateway closes the connection (EOF or reset), within
/// `within`; returns what it sent first.
async fn closed_within(tcp: &mut TcpStream, within: Duration) -> Result<Vec<u8>, String> {
    let mut received = Vec::new();
    let read = tokio::time::timeout(within, async {
        let mut buf = [0u8; 4096];
        loop {
            match tcp.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(n) => received.extend_from_slice(&buf[..n]),
            }
        }
    });
    match read.await {
        Ok(()) => Ok(received),
        Err(_) => Err(format!(
            "still open after {within:?} (received {:?})",
            String::from_utf8_lossy(&received)
        )),
    }
}

/// Sends `GET /healthz` and reads the response head; `None` if the
/// gateway closed the connection instead of answering.
async fn healthz(tcp: &mut TcpStream) -> Option<String> {
    if tcp.write_all(HEALTHZ).await.is_err() {
        return None;
    }
    let mut response = Vec::new();
    let mut buf = [0u8; 1024];
    tokio::time::timeout(Duration::from_secs(5), async {
        while !response.windows(4).any(|w| w == b"\r\n\r\n") {
            match tcp.read(&mut buf).await {
                Ok(0) | Err(_) => return None,
                Ok(n) => response.extend_from_slice(&buf[..n]),
            }
        }
        Some(String::from_utf8_lossy(&response).into_owned())
    })
    .await
    .expect("an answer or a close within 5 s")
}

fn served(response: &Option<String>) -> bool {
    response
        .as_deref()
        .is_some_and(|r| r.starts_with("HTTP/1.1 200"))
}

#[tokio::test]
async fn partial_request_heads_and_silent_connections_are_closed_after_the_header_timeout() {
    let gw = TestGateway::spawn_with(|c| {
        c.server.header_read_timeout_secs = 1;
        c.server.max_connections_per_ip = 1000;
    })
    .await;
    let mut connections = Vec::new();
    for i in 0..50 {
        let mut tcp = connect_from(&gw, LOCALHOST).await;
        // Every fifth sends nothing at all, another stops inside the
        // HTTP/2 preface; the others stop mid-head.
        let partial: &[u8] = match i % 5 {
            0 => b"",
            1 => b"PRI * HTTP/2.0\r\n",
            _ => b"GET /healthz HTTP/1.1\r\nHost: test\r\nX-Slow: ",
        };
        tcp.write_all(partial).await.unwrap();
        connections.push(tcp);
    }
    let started = Instant::now();
    let closes = connections.iter_mut().map(|tcp| async move {
        let sent = closed_within(tcp, Duration::from_secs(4))
            .await
            .map_err(|e| format!("{} {e}", tcp.local_addr().unwrap()))?;
        // Closed, not answered: hyper gives up without a response or with
        // a 408 at most.
        let text = String::from_utf8_lossy(&sent).into_owned();
        if text.is_empty() || text.starts_with("HTTP/1.1 408") {
            Ok(())
        } else {
            Err(format!("answered {text:?}"))
        }
    });
    let results = futures::future::join_all(closes).await;
    let failed: Vec<_> = results
        .iter()
        .enumerate()
        .filter(|(_, r)| r.is_err())
        .map(|(i, _)| i)
        .collect();
    assert!(failed.is_empty(), "{failed:?}");
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "all closed within the 1 s timeout plus slack, took {:?}",
        started.elapsed()
    );
    gw.stop().await;
}

#[tokio::test]
async fn a_kept_alive_connection_is_closed_when_no_next_request_comes() {
    let gw = TestGateway::spawn_with(|c| c.server.header_read_timeout_secs = 1).await;
    let mut tcp = connect_from(&gw, LOCALHOST).await;
    assert!(served(&healthz(&mut tcp).await));
    let idle_since = Instant::now();
    closed_within(&mut tcp, Duration::from_secs(4))
        .await
        .unwrap();
    assert!(idle_since.elapsed() >= Duration::from_millis(900));
    gw.stop().await;
}

#[tokio::test]
async fn connections_over_the_per_address_cap_are_closed_and_other_addresses_are_not_affected() {
    let gw = TestGateway::spawn_with(|c| c.server.max_connections_per_ip = 3).await;
    let mut held = Vec::new();
    for _ in 0..3 {
        let mut tcp = connect_from(&gw, LOCALHOST).await;
        assert!(served(&healthz(&mut tcp).await));
        held.push(tcp);
    }
    let mut extra = connect_from(&gw, LOCALHOST).await;
    let answer = healthz(&mut extra).await;
    assert_eq!(
        answer, None,
        "the 4th connection from one address is closed"
    );

    let mut other = connect_from(&gw, OTHER_CLIENT).await;
    assert!(
        served(&healthz(&mut other).await),
        "127.0.0.2 has its own cap"
    );

    // A place frees when a connection ends.
    drop(held.pop());
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let mut again = connect_from(&gw, LOCALHOST).await;
        if served(&healthz(&mut again).await) {
            break;
        }
        assert!(Instant::now() < deadline, "the freed place was not reused");
        tokio::task::yield_now().await;
    }
    gw.stop().await;
}

#[tokio::test]
async fn connections_over_the_total_cap_are_closed() {
    let gw = TestGateway::spawn_with(|c| {
        c.server.max_connections = 2;
        c.server.max_connections_per_ip = 2;
    })
    .await;
    let mut first = connect_from(&gw, LOCALHOST).await;
    let mut second = connect_from(&gw, OTHER_CLIENT).await;
    assert!(served(&healthz(&mut first).await));
    assert!(served(&healthz(&mut second).await));
    let mut third = connect_from(&gw, [127, 0, 0, 3]).await;
    assert_eq!(healthz(&mut third).await, None);
    drop((first, second));
    gw.stop().await;
}

/// A multipart upload whose body stops after its first bytes.
async fn stalled_upload(gw: &TestGateway, session: &Session) -> TcpStream {
    let mut tcp = connect_from(gw, LOCALHOST).await;
    let boundary = "frontdesk-test-boundary";
    let part_head = format!(
        "--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"a.pdf\"\r\nContent-Type: application/pdf\r\n\r\n%PDF-1.4\n"
    );
    let head = format!(
        "POST /api/v1/conversations/{}/files HTTP/1.1\r\nHost: test\r\nAuthorization: Bearer {}\r\nContent-Type: multipart/form-data; boundary={boundary}\r\nContent-Length: 100000\r\n\r\n",
        session.id, session.token
    );
    tcp.write_all(head.as_bytes()).await.unwrap();
    tcp.write_all(part_head.as_bytes()).await.unwrap();
    tcp.write_all(&[b'a'; 2000]).await.unwrap();
    tcp
}

#[tokio::test]
async fn a_stalled_upload_body_is_cut_after_the_body_idle_timeout() {
    let gw = TestGateway::spawn_with(|c| {
        c.server.body_idle_timeout_secs = 1;
        c.server.header_read_timeout_secs = 30;
    })
    .await;
    let visitor = Visitor::new(&gw.url);
    let session = visitor.start("live", "Jane").await.unwrap();
    let mut tcp = stalled_upload(&gw, &session).await;
    let stalled_at = Instant::now();
    let sent = closed_within(&mut tcp, Duration::from_secs(4))
        .await
        .unwrap();
    let response = String::from_utf8_lossy(&sent);
    assert!(response.starts_with("HTTP/1.1 400"), "{response}");
    assert!(response.contains("invalid_upload"), "{response}");
    assert!(stalled_at.elapsed() >= Duration::from_millis(900));
    // Nothing was stored.
    let history = visitor.messages(&session).await.unwrap();
    assert_eq!(history.body["messages"], serde_json::json!([]));
    gw.stop().await;
}

/// A new visitor's event stream, authenticated (its first event read).
async fn following(gw: &TestGateway) -> EventStream {
    let visitor = Visitor::new(&gw.url).with_origin(ALLOWED_ORIGIN);
    let session = visitor.start("live", "Jane").await.unwrap();
    let mut events = visitor.events(&session, 0).await.unwrap();
    events.next_event().await.unwrap();
    events
}

/// Reads a stream until it closes; its close code.
async fn close_code(events: &mut EventStream) -> Option<u16> {
    loop {
        match events.next_item(Duration::from_secs(5)).await {
            Ok(StreamItem::Closed(code)) => return code,
            Ok(StreamItem::Event(_)) => continue,
            Err(e) => panic!("no close: {e}"),
        }
    }
}

#[tokio::test]
async fn an_oversized_websocket_frame_is_refused_with_1009_before_its_payload_arrives() {
    let gw = TestGateway::spawn().await;
    let mut events = following(&gw).await;
    // A masked text frame announcing 10 MiB, of which 1 KiB is sent: far
    // under the old 16 MiB frame limit, far over the message cap.
    let mut frame = vec![0x81, 0x80 | 127];
    frame.extend_from_slice(&(10u64 << 20).to_be_bytes());
    frame.extend_from_slice(&[1, 2, 3, 4]);
    frame.extend_from_slice(&[b'x'; 1024]);
    events.tcp().write_all(&frame).await.unwrap();
    assert_eq!(close_code(&mut events).await, Some(1009));
    gw.stop().await;
}

#[tokio::test]
async fn a_fourth_socket_for_one_conversation_closes_the_oldest_with_4409() {
    let gw = TestGateway::spawn_with(|c| c.limits.websockets_per_conversation = 3).await;
    let visitor = Visitor::new(&gw.url).with_origin(ALLOWED_ORIGIN);
    let session = visitor.start("live", "Jane").await.unwrap();
    let mut tabs = Vec::new();
    for _ in 0..4 {
        let mut events = visitor.events(&session, 0).await.unwrap();
        events.next_event().await.unwrap();
        tabs.push(events);
    }
    assert_eq!(close_code(&mut tabs[0]).await, Some(4409));
    // The three newest still follow the conversation.
    visitor.say(&session, "c1", "still there?").await.unwrap();
    for tab in &mut tabs[1..] {
        let message = tab.next_of_type("message").await.unwrap();
        assert_eq!(message["message"]["body"], "still there?");
    }
    gw.stop().await;
}

#[tokio::test]
async fn websocket_upgrades_over_the_per_address_rate_are_refused_with_429() {
    let gw = TestGateway::spawn_with(|c| c.limits.websocket_upgrades_per_minute_per_ip = 2).await;
    let visitor = Visitor::new(&gw.url).with_origin(ALLOWED_ORIGIN);
    let session = visitor.start("live", "Jane").await.unwrap();
    for _ in 0..2 {
        let mut events = visitor.events(&session, 0).await.unwrap();
        events.next_event().await.unwrap();
    }
    let refused = visitor.events(&session, 0).await.err().expect("refused");
    assert!(refused.to_string().contains("429"), "{refused}");
    gw.stop().await;
}

#[tokio::test]
async fn a_refused_origin_and_an_unknown_conversation_close_4403_and_4404_after_the_upgrade() {
    let gw = TestGateway::spawn().await;
    let allowed = Visitor::new(&gw.url).with_origin(ALLOWED_ORIGIN);
    let foreign = Visitor::new(&gw.url).with_origin("https://evil.example");
    let session = allowed.start("live", "Jane").await.unwrap();

    let mut refused = foreign.events(&session, 0).await.unwrap();
    assert_eq!(close_code(&mut refused).await, Some(4403));
    for unknown_id in [uuid::Uuid::new_v4().to_string(), "not-an-id".to_owned()] {
        let unknown = Session {
            id: unknown_id,
            token: session.token.clone(),
        };
        let mut events = allowed.events(&unknown, 0).await.unwrap();
        assert_eq!(close_code(&mut events).await, Some(4404));
    }

    // Requests that are not upgrades keep their HTTP status.
    let path = |id: &str| format!("/api/v1/conversations/{id}/events");
    let plain = foreign.get(&path(&session.id), None).await.unwrap();
    assert_eq!(
        (plain.status.as_u16(), plain.error()),
        (403, "origin_not_allowed")
    );
    let missing = allowed
        .get(&path(&uuid::Uuid::new_v4().to_string()), None)
        .await
        .unwrap();
    assert_eq!(missing.status.as_u16(), 404);
    gw.stop().await;
}

#[tokio::test]
async fn a_websocket_that_answers_no_ping_is_closed_after_the_idle_timeout() {
    let gw = TestGateway::spawn_with(|c| {
        c.server.websocket_idle_timeout_secs = 2;
        c.server.websocket_write_timeout_secs = 1;
    })
    .await;
    let mut events = following(&gw).await;
    // Read under the WebSocket, so no pong ever goes back.
    let silent_since = Instant::now();
    closed_within(events.tcp(), Duration::from_secs(6))
        .await
        .unwrap();
    assert!(silent_since.elapsed() >= Duration::from_millis(1900));
    gw.stop().await;
}

/// `GET /api/v1/channels/live` from `from`, with `X-Forwarded-For`.
async fn channel_status(gw: &TestGateway, from: [u8; 4], forwarded_for: &str) -> u16 {
    let http = reqwest::Client::builder()
        .local_address(IpAddr::from(from))
        .build()
        .unwrap();
    let response = http
        .get(format!("{}/api/v1/channels/live", gw.url))
        .header("x-forwarded-for", forwarded_for)
        .send()
        .await
        .unwrap();
    response.status().as_u16()
}

fn three_requests_per_minute_behind_localhost(config: &mut Config) {
    config.limits.requests_per_minute_per_ip = 3;
    config.server.trusted_proxies = vec!["127.0.0.1".parse().unwrap()];
}

#[tokio::test]
async fn behind_a_trusted_proxy_each_forwarded_client_has_its_own_rate_limit() {
    let gw = TestGateway::spawn_with(three_requests_per_minute_behind_localhost).await;
    // The proxy (127.0.0.1) forwards two visitors; a spoofed left-most
    // entry does not move the first one to another bucket.
    let first = ["203.0.113.1", "198.51.100.1, 203.0.113.1", "203.0.113.1"];
    for forwarded in first {
        assert_eq!(channel_status(&gw, LOCALHOST, forwarded).await, 200);
    }
    assert_eq!(channel_status(&gw, LOCALHOST, "203.0.113.1").await, 429);
    assert_eq!(channel_status(&gw, LOCALHOST, "203.0.113.2").await, 200);

    // 127.0.0.2 is no trusted proxy: its header is ignored, whatever it
    // says, and all its requests share its own bucket.
    for forwarded in ["192.0.2.1", "192.0.2.2", "192.0.2.3"] {
        assert_eq!(channel_status(&gw, OTHER_CLIENT, forwarded).await, 200);
    }
    assert_eq!(channel_status(&gw, OTHER_CLIENT, "192.0.2.4").await, 429);
    gw.stop().await;
}

#[tokio::test]
async fn the_conversation_budget_also_keys_on_the_forwarded_client() {
    let gw = TestGateway::spawn_with(|c| {
        c.limits.conversations_per_hour_per_ip = 1;
        c.server.trusted_proxies = vec!["127.0.0.0/8".parse().unwrap()];
    })
    .await;
    let start = |forwarded: &'static str| {
        let http = reqwest::Client::new();
        let url = format!("{}/api/v1/channels/live/conversations", gw.url);
        async move {
            let body: Value = serde_json::json!({ "name": "Jane", "email": "jane@example.com" });
            let response = http
                .post(url)
                .header("x-forwarded-for", forwarded)
                .json(&body)
                .send()
                .await
                .unwrap();
            response.status().as_u16()
        }
    };
    assert_eq!(start("2001:db8:1:2::1").await, 201);
    // Same /64: same budget.
    assert_eq!(start("2001:db8:1:2::ffff").await, 429);
    assert_eq!(start("2001:db8:1:3::1").await, 201);
    gw.stop().await;
}
