//! Every error status of the visitor API, with its exact stable code.
//! Bad input gets a clear error and changes nothing.

use chrono::{Duration, Utc};
use frontdesk_tests::config::ALLOWED_ORIGIN;
use frontdesk_tests::gateway::TestGateway;
use frontdesk_tests::visitor::{Session, StreamItem, Visitor};
use serde_json::json;

#[tokio::test]
async fn missing_or_wrong_tokens_get_401() {
    let gw = TestGateway::spawn().await;
    let visitor = Visitor::new(&gw.url);
    let session = visitor.start("live", "Jane").await.unwrap();
    let path = format!("/api/v1/conversations/{}", session.id);

    let none = visitor.get(&path, None).await.unwrap();
    assert_eq!((none.status.as_u16(), none.error()), (401, "unauthorized"));
    let wrong = visitor.get(&path, Some("0123456789abcdef")).await.unwrap();
    assert_eq!(
        (wrong.status.as_u16(), wrong.error()),
        (401, "unauthorized")
    );
    let forged = Session {
        id: session.id.clone(),
        token: "f".repeat(64),
    };
    let post = visitor.say(&forged, "x", "hi").await.unwrap();
    assert_eq!((post.status.as_u16(), post.error()), (401, "unauthorized"));

    // The event stream closes with 4401 on a bad token.
    let mut events = visitor.events(&forged, 0).await.unwrap();
    let item = events
        .next_item(std::time::Duration::from_secs(10))
        .await
        .unwrap();
    assert_eq!(item, StreamItem::Closed(Some(4401)));

    // Nothing was stored by the refused calls.
    let history = visitor.messages(&session).await.unwrap();
    assert_eq!(history.body["messages"], json!([]));
    gw.stop().await;
}

#[tokio::test]
async fn a_foreign_origin_is_refused_on_rest_and_websocket() {
    let gw = TestGateway::spawn().await;
    let allowed = Visitor::new(&gw.url).with_origin(ALLOWED_ORIGIN);
    let foreign = Visitor::new(&gw.url).with_origin("https://evil.example");

    assert_eq!(allowed.channel("live").await.unwrap().status, 200);
    let info = foreign.channel("live").await.unwrap();
    assert_eq!(
        (info.status.as_u16(), info.error()),
        (403, "origin_not_allowed")
    );
    let start = foreign
        .try_start("live", "Jane", "jane@example.com")
        .await
        .unwrap();
    assert_eq!(
        (start.status.as_u16(), start.error()),
        (403, "origin_not_allowed")
    );

    let session = allowed.start("live", "Jane").await.unwrap();
    let say = foreign.say(&session, "c1", "hi").await.unwrap();
    assert_eq!(
        (say.status.as_u16(), say.error()),
        (403, "origin_not_allowed")
    );

    // WebSocket: upgraded, then closed with 4403 (a browser cannot read a
    // refused handshake's status), before any frame is read.
    let mut refused = foreign.events(&session, 0).await.unwrap();
    let item = refused
        .next_item(std::time::Duration::from_secs(10))
        .await
        .unwrap();
    assert_eq!(item, StreamItem::Closed(Some(4403)));
    assert!(allowed.events(&session, 0).await.is_ok());

    // CORS: preflights are answered only for allowed origins.
    let client = reqwest::Client::new();
    let preflight = |origin: &'static str| {
        client
            .request(
                reqwest::Method::OPTIONS,
                format!("{}/api/v1/channels/live/conversations", gw.url),
            )
            .header("origin", origin)
            .header("access-control-request-method", "POST")
            .header("access-control-request-headers", "content-type")
            .send()
    };
    let ok = preflight(ALLOWED_ORIGIN).await.unwrap();
    assert_eq!(ok.headers()["access-control-allow-origin"], ALLOWED_ORIGIN);
    let evil = preflight("https://evil.example").await.unwrap();
    assert!(evil.headers().get("access-control-allow-origin").is_none());
    gw.stop().await;
}

#[tokio::test]
async fn unknown_channels_and_conversations_get_404() {
    let gw = TestGateway::spawn().await;
    let visitor = Visitor::new(&gw.url);
    let channel = visitor.channel("nope").await.unwrap();
    assert_eq!(
        (channel.status.as_u16(), channel.error()),
        (404, "unknown_channel")
    );
    let start = visitor
        .try_start("nope", "Jane", "jane@example.com")
        .await
        .unwrap();
    assert_eq!(
        (start.status.as_u16(), start.error()),
        (404, "unknown_channel")
    );
    let ghost = Session {
        id: uuid::Uuid::new_v4().to_string(),
        token: "f".repeat(64),
    };
    let reply = visitor.conversation(&ghost).await.unwrap();
    assert_eq!(
        (reply.status.as_u16(), reply.error()),
        (404, "unknown_conversation")
    );
    let garbage = visitor
        .get("/api/v1/conversations/not-a-uuid", Some("x"))
        .await
        .unwrap();
    assert_eq!(
        (garbage.status.as_u16(), garbage.error()),
        (404, "unknown_conversation")
    );
    gw.stop().await;
}

#[tokio::test]
async fn starting_outside_hours_gets_409_closed_with_the_next_opening() {
    let gw = TestGateway::spawn().await;
    let visitor = Visitor::new(&gw.url);
    // The "closed" channel is open all day but today and tomorrow are
    // holidays: it opens the day after tomorrow at midnight UTC.
    let expected = (Utc::now().date_naive() + Duration::days(2))
        .and_hms_opt(0, 0, 0)
        .unwrap()
        .and_utc();

    let info = visitor.channel("closed").await.unwrap();
    assert_eq!(info.body["open"], false);
    let next_open: chrono::DateTime<Utc> =
        info.body["next_open"].as_str().unwrap().parse().unwrap();
    assert_eq!(next_open, expected);
    assert_eq!(info.body["closed"]["alternatives"][0]["kind"], "phone");

    let reply = visitor
        .try_start("closed", "Jane", "jane@example.com")
        .await
        .unwrap();
    assert_eq!((reply.status.as_u16(), reply.error()), (409, "closed"));
    let next_open: chrono::DateTime<Utc> =
        reply.body["next_open"].as_str().unwrap().parse().unwrap();
    assert_eq!(next_open, expected);
    assert_eq!(
        reply.body["closed"]["text"],
        "We are closed. Back {next_open}."
    );
    assert_eq!(
        reply.body["closed"]["alternatives"][0]["value"],
        "+33 1 23 45 67 89"
    );
    assert!(reply.body.get("token").is_none());
    gw.stop().await;
}

#[tokio::test]
async fn invalid_input_gets_422_with_the_field() {
    let gw = TestGateway::spawn().await;
    let visitor = Visitor::new(&gw.url);
    let cases = [
        ("", "jane@example.com", "empty_field", Some("name")),
        ("   ", "jane@example.com", "empty_field", Some("name")),
        ("Jane", "", "empty_field", Some("email")),
        ("Jane", "jane@", "invalid_email", Some("email")),
        ("Jane", "jane.example.com", "invalid_email", Some("email")),
    ];
    for (name, email, code, field) in cases {
        let reply = visitor.try_start("live", name, email).await.unwrap();
        assert_eq!(reply.status, 422, "{name:?} {email:?}: {}", reply.body);
        assert_eq!(reply.error(), code, "{name:?} {email:?}");
        assert_eq!(reply.body["field"].as_str(), field);
    }
    let long_name = "x".repeat(101);
    let reply = visitor
        .try_start("live", &long_name, "jane@example.com")
        .await
        .unwrap();
    assert_eq!((reply.status.as_u16(), reply.error()), (422, "too_long"));
    assert_eq!(reply.body["limit"], 100);

    let session = visitor.start("live", "Jane").await.unwrap();
    let empty = visitor.say(&session, "c1", "  \n ").await.unwrap();
    assert_eq!(
        (empty.status.as_u16(), empty.error()),
        (422, "empty_message")
    );
    let long = visitor
        .say(&session, "c2", &"y".repeat(4001))
        .await
        .unwrap();
    assert_eq!((long.status.as_u16(), long.error()), (422, "too_long"));
    assert_eq!(long.body["field"], "message");
    let history = visitor.messages(&session).await.unwrap();
    assert_eq!(
        history.body["messages"],
        json!([]),
        "refused messages are not stored"
    );

    let bad_json = visitor
        .post_raw("/api/v1/channels/live/conversations", b"{not json".to_vec())
        .await
        .unwrap();
    assert_eq!(
        (bad_json.status.as_u16(), bad_json.error()),
        (400, "invalid_json")
    );
    gw.stop().await;
}

#[tokio::test]
async fn visitor_fields_cannot_forge_lines_in_what_agents_see() {
    let gw = TestGateway::spawn().await;
    let visitor = Visitor::new(&gw.url);
    let start = |name: &str, page_url: &str| {
        let body = json!({ "name": name, "email": "jane@example.com", "page_url": page_url });
        let visitor = &visitor;
        async move {
            visitor
                .post("/api/v1/channels/live/conversations", None, &body)
                .await
                .unwrap()
        }
    };
    for page_url in [
        "https://allowed.example/a\nVerified: ID checked",
        "https://allowed.example/\u{202E}gpj.exe",
        "javascript:alert(1)",
        "file:///etc/passwd",
        "/pricing",
    ] {
        let reply = start("Jane", page_url).await;
        assert_eq!(reply.status, 422, "{page_url:?}: {}", reply.body);
        assert_eq!(reply.error(), "invalid_url", "{page_url:?}");
        assert_eq!(reply.body["field"], "page_url");
    }
    // A name keeps its text but loses what would forge a line or reorder
    // the card an agent reads.
    let reply = start(
        "Jane\nVerified: ID checked\u{202E}\u{200B}",
        "https://allowed.example/pricing",
    )
    .await;
    assert_eq!(reply.status, 201, "{}", reply.body);
    assert_eq!(
        reply.body["conversation"]["visitor"]["name"],
        "JaneVerified: ID checked"
    );
    let id = reply.body["conversation_id"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap();
    let summary = gw.engine.summary_of(id).await.unwrap();
    let card = frontdesk::bridges::agent_text::offer_card(&summary);
    assert!(
        card.lines().all(|line| !line.starts_with("Verified")),
        "{card}"
    );
    gw.stop().await;
}

#[tokio::test]
async fn an_oversized_body_gets_413() {
    let gw = TestGateway::spawn().await;
    let visitor = Visitor::new(&gw.url);
    let huge = json!({ "name": "x".repeat(70 * 1024), "email": "jane@example.com" });
    let reply = visitor
        .post_raw(
            "/api/v1/channels/live/conversations",
            serde_json::to_vec(&huge).unwrap(),
        )
        .await
        .unwrap();
    assert_eq!(
        (reply.status.as_u16(), reply.error()),
        (413, "payload_too_large")
    );
    gw.stop().await;
}

#[tokio::test]
async fn floods_get_429_with_retry_after() {
    let gw = TestGateway::spawn_with(|config| {
        config.limits.conversations_per_hour_per_ip = 2;
        config.limits.messages_per_minute_per_conversation = 3;
    })
    .await;
    let visitor = Visitor::new(&gw.url);
    let session = visitor.start("live", "One").await.unwrap();
    visitor.start("live", "Two").await.unwrap();
    let third = visitor
        .try_start("live", "Three", "jane@example.com")
        .await
        .unwrap();
    assert_eq!(
        (third.status.as_u16(), third.error()),
        (429, "rate_limited")
    );
    assert!(third.body["retry_after"].as_u64().unwrap() >= 1);

    for i in 0..3 {
        let reply = visitor.say(&session, &format!("m{i}"), "hi").await.unwrap();
        assert_eq!(reply.status, 201);
    }
    let flood = visitor.say(&session, "m3", "hi").await.unwrap();
    assert_eq!(
        (flood.status.as_u16(), flood.error()),
        (429, "rate_limited")
    );
    let history = visitor.messages(&session).await.unwrap();
    assert_eq!(history.body["messages"].as_array().unwrap().len(), 3);
    gw.stop().await;
}

#[tokio::test]
async fn a_visitor_token_expires_after_its_lifetime() {
    let gw = TestGateway::spawn_with(|c| c.server.visitor_token_ttl_secs = 1).await;
    let visitor = Visitor::new(&gw.url);
    let session = visitor.start("live", "Jane").await.unwrap();
    assert_eq!(visitor.messages(&session).await.unwrap().status, 200);
    // Let the lifetime pass (time itself is what is tested here).
    tokio::time::sleep(std::time::Duration::from_millis(1300)).await;
    let expired = visitor.messages(&session).await.unwrap();
    assert_eq!(expired.status, 401, "{}", expired.body);
    assert_eq!(expired.error(), "unauthorized");
    let late = visitor.say(&session, "c1", "still there?").await.unwrap();
    assert_eq!(late.status, 401);
    gw.stop().await;
}

#[tokio::test]
async fn metrics_need_the_bearer_token_when_one_is_configured() {
    let gw =
        TestGateway::spawn_with(|c| c.server.metrics_token = Some("s3cret-token".into())).await;
    let http = reqwest::Client::new();
    let url = format!("{}/metrics", gw.url);
    let anonymous = http.get(&url).send().await.unwrap();
    assert_eq!(anonymous.status(), 401);
    let wrong = http.get(&url).bearer_auth("guess").send().await.unwrap();
    assert_eq!(wrong.status(), 401);
    let allowed = http
        .get(&url)
        .bearer_auth("s3cret-token")
        .send()
        .await
        .unwrap();
    assert_eq!(allowed.status(), 200);
    assert!(allowed
        .text()
        .await
        .unwrap()
        .contains("frontdesk_conversations"));
    // Health and readiness stay open to probes.
    assert_eq!(
        http.get(format!("{}/readyz", gw.url))
            .send()
            .await
            .unwrap()
            .status(),
        200
    );
    gw.stop().await;
}
