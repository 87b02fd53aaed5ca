//! The admin API through its real door (HTTP, session cookie, CSRF token,
//! API tokens), on SQLite and PostgreSQL: the directory changes without a
//! restart, with the config file's validation, and nobody crosses a role
//! or a tenant.

use std::time::Duration;

use frontdesk::api::admin::{create_user, Role};
use frontdesk::engine::loopback::AgentCall;
use frontdesk_tests::admin::{chatbot_channel as chatbot, Admin};
use frontdesk_tests::config::ALLOWED_ORIGIN;
use frontdesk_tests::gateway::TestGateway;
use frontdesk_tests::visitor::Visitor;
use reqwest::StatusCode;
use serde_json::{json, Value};

const PASSWORD: &str = "correct horse battery staple";

/// Makes a console account on `gateway` and logs it in.
async fn log_in(gateway: &TestGateway, username: &str, role: Role, tenant: Option<&str>) -> Admin {
    create_user(gateway.engine.store(), username, PASSWORD, role, tenant)
        .await
        .expect("user created");
    Admin::log_in(&gateway.url, username, PASSWORD)
        .await
        .expect("logged in")
}

/// Two admins cannot silently overwrite each other: a create refuses a key
/// in use, and an edit is of the revision it read.
#[tokio::test]
async fn creates_refuse_a_key_in_use_and_edits_refuse_a_stale_revision() {
    let gateway = TestGateway::spawn().await;
    let admin = log_in(&gateway, "ada", Role::Admin, None).await;
    let (status, body) = admin
        .post_json("/api/v1/admin/channels", chatbot("web", "First"))
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let (status, body) = admin
        .post_json("/api/v1/admin/channels", chatbot("web", "Second"))
        .await;
    assert_eq!(status, StatusCode::CONFLICT, "{body}");
    assert_eq!(body["error"], "key_in_use");
    assert_eq!(body["fields"][0]["key"], "key", "{body}");
    let create_only = |welcome: &str| {
        (admin
            .http
            .put(format!("{}/api/v1/admin/channels/web", admin.base)))
        .header("x-csrf-token", &admin.csrf)
        .header("if-none-match", "*")
        .json(&chatbot("web", welcome))
    };
    let reply = create_only("Third").send().await.unwrap();
    assert_eq!(reply.status(), StatusCode::CONFLICT);
    let (_, stored) = admin.get("/api/v1/admin/channels/web").await;
    assert_eq!(stored["options"][0]["welcome"], "First", "nothing replaced");

    // Two admins open the same channel; the first to save wins, the
    // second is told, and nothing of theirs is written.
    let url = format!("{}/api/v1/admin/channels/web", admin.base);
    let read = admin.http.get(&url).send().await.unwrap();
    let etag = read.headers()["etag"].to_str().unwrap().to_owned();
    let edit = |welcome: &str, tag: &str| {
        (admin.http.put(&url))
            .header("x-csrf-token", &admin.csrf)
            .header("if-match", tag)
            .json(&chatbot("web", welcome))
    };
    let first = edit("From Ada", &etag).send().await.unwrap();
    assert_eq!(first.status(), StatusCode::NO_CONTENT);
    let newer = first.headers()["etag"].to_str().unwrap().to_owned();
    assert_ne!(newer, etag);
    let second = edit("From Grace", &etag).send().await.unwrap();
    assert_eq!(second.status(), StatusCode::PRECONDITION_FAILED);
    let body: Value = second.json().await.unwrap();
    assert_eq!(body["error"], "changed_meanwhile");
    let (_, stored) = admin.get("/api/v1/admin/channels/web").await;
    assert_eq!(stored["options"][0]["welcome"], "From Ada");
    assert_eq!(
        edit("Again", &newer).send().await.unwrap().status(),
        StatusCode::NO_CONTENT
    );
    let reply = edit("Nonsense", "tomorrow").send().await.unwrap();
    assert_eq!(reply.status(), StatusCode::BAD_REQUEST);

    // Another tenant's item is, to an edit, one that does not exist.
    assert!(gateway
        .engine
        .store()
        .create_tenant("globex", "Globex")
        .await
        .unwrap());
    let theirs = log_in(&gateway, "gus", Role::Admin, Some("globex")).await;
    let reply = (theirs
        .http
        .put(format!("{}/api/v1/admin/channels/web", theirs.base)))
    .header("x-csrf-token", &theirs.csrf)
    .header("if-match", &newer)
    .json(&chatbot("web", "Poached"))
    .send()
    .await
    .unwrap();
    assert_eq!(reply.status(), StatusCode::NOT_FOUND);
    let (_, stored) = admin.get("/api/v1/admin/channels/web").await;
    assert_eq!(stored["options"][0]["welcome"], "Again");
}

#[tokio::test]
async fn a_channel_made_in_the_console_serves_visitors_without_a_restart() {
    let gateway = TestGateway::spawn().await;
    let admin = log_in(&gateway, "ada", Role::Admin, None).await;
    let visitor = Visitor::new(&gateway.url).with_origin(ALLOWED_ORIGIN);
    assert_eq!(
        visitor.channel("web").await.unwrap().status,
        StatusCode::NOT_FOUND
    );

    let (status, body) = admin
        .put("/api/v1/admin/channels/web", &chatbot("web", "Hello buyer"))
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT, "{body}");
    let info = visitor.channel("web").await.unwrap();
    assert_eq!(info.status, StatusCode::OK, "{}", info.body);
    let labels: Vec<&str> = (info.body["options"].as_array().unwrap().iter())
        .map(|o| o["label"].as_str().unwrap())
        .collect();
    assert_eq!(labels, ["Buy", "Get help"]);

    // The welcome text edited: the next visitor to pick it reads the new one.
    let (status, _) = admin
        .put("/api/v1/admin/channels/web", &chatbot("web", "New welcome"))
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let session = visitor.start("web", "Jane").await.unwrap();
    let chose = visitor.choose(&session, "buy").await.unwrap();
    assert!(chose.status.is_success(), "{}", chose.body);
    let messages = visitor.messages(&session).await.unwrap();
    assert!(
        messages.body.to_string().contains("New welcome"),
        "{}",
        messages.body
    );

    // The embed code names the gateway's widget and the channel.
    let (status, embed) = admin.get("/api/v1/admin/channels/web/embed").await;
    assert_eq!(status, StatusCode::OK);
    let html = embed["html"].as_str().unwrap();
    assert!(
        html.contains("/widget.js") && html.contains("data-key=\"web\""),
        "{html}"
    );

    // Disabled: new visitors no longer find it.
    let mut disabled = chatbot("web", "New welcome");
    disabled["enabled"] = json!(false);
    assert_eq!(
        admin.put("/api/v1/admin/channels/web", &disabled).await.0,
        StatusCode::NO_CONTENT
    );
    assert_eq!(
        visitor.channel("web").await.unwrap().status,
        StatusCode::NOT_FOUND
    );

    // And every change is in the audit log, by its author.
    let (_, audit) = admin.get("/api/v1/admin/audit").await;
    let entries = audit.as_array().unwrap();
    assert!(entries.len() >= 3, "{audit}");
    assert!(entries
        .iter()
        .all(|e| e["actor"] == "ada" || e["actor"] == "frontdesk.toml"));
    gateway.stop().await;
}

#[tokio::test]
async fn refused_changes_name_the_field_and_save_nothing() {
    let gateway = TestGateway::spawn().await;
    let admin = log_in(&gateway, "ada", Role::Admin, None).await;
    let version = gateway.engine.directory().version();

    let mut unknown_queue = chatbot("web", "Hi");
    unknown_queue["options"][1]["queue"] = json!("699");
    let cases = [
        (unknown_queue, "channels[key=web].options.queue"),
        (
            json!({ "key": "web", "name": "", "mode": "live", "queue": "600" }),
            "channels[key=web].name",
        ),
        (
            json!({ "key": "web", "name": "X", "mode": "live" }),
            "channels[key=web].queue",
        ),
        (
            json!({ "key": "web", "name": "X", "mode": "live", "queue": "600", "allowed_origins": ["https://a.example/path"] }),
            "channels[key=web].allowed_origins",
        ),
        (
            json!({ "key": "web", "name": "X", "mode": "live", "queue": "600", "schedule": { "open": ["25:00-26:00,*,*,*"] } }),
            "channels[key=web].schedule",
        ),
        (
            json!({ "key": "web", "name": "X", "mode": "live", "queue": "600", "schedule": { "holidays_ics": "/etc/passwd" } }),
            "channels[key=web].schedule.holidays_ics",
        ),
        (
            json!({ "key": "web", "name": "X", "mode": "telepathy" }),
            "body",
        ),
        (
            json!({ "key": "other", "name": "X", "mode": "live", "queue": "600" }),
            "key",
        ),
    ];
    for (body, field) in cases {
        let (status, reply) = admin.put("/api/v1/admin/channels/web", &body).await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}: {reply}");
        assert_eq!(reply["error"], "invalid");
        let fields: Vec<&str> = (reply["fields"].as_array().unwrap().iter())
            .map(|f| f["key"].as_str().unwrap())
            .collect();
        assert!(
            fields.contains(&field),
            "{body}: expected {field}, got {reply}"
        );
    }
    assert_eq!(
        admin.get("/api/v1/admin/channels/web").await.0,
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        gateway.engine.directory().version(),
        version,
        "nothing was committed"
    );

    // A queue member that is not an agent: refused by the same rules.
    let (status, reply) = admin
        .put(
            "/api/v1/admin/queues/602",
            &json!({ "extension": "602", "name": "Billing", "members": [{ "agent": "199" }] }),
        )
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{reply}");
    assert!(
        reply["message"].as_str().unwrap().contains("199"),
        "{reply}"
    );
    gateway.stop().await;
}

#[tokio::test]
async fn provisioned_items_are_read_only_in_the_console() {
    let gateway = TestGateway::spawn().await;
    let admin = log_in(&gateway, "ada", Role::Admin, None).await;
    let (status, live) = admin.get("/api/v1/admin/channels/live").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(live["source"], "file");
    assert_eq!(live["read_only"], true);
    let mut changed = live.clone();
    changed["name"] = json!("Renamed");
    let (status, reply) = admin.put("/api/v1/admin/channels/live", &changed).await;
    assert_eq!(status, StatusCode::CONFLICT, "{reply}");
    assert_eq!(reply["error"], "read_only");
    assert!(reply["message"]
        .as_str()
        .unwrap()
        .contains("frontdesk.toml"));
    assert_eq!(
        admin.delete("/api/v1/admin/queues/600").await.0,
        StatusCode::CONFLICT
    );
    let channel = gateway.engine.channel("live").unwrap();
    assert_eq!(channel.config.name, "Acme Plumbing");
    gateway.stop().await;
}

#[tokio::test]
async fn changes_need_the_csrf_token_the_same_origin_and_the_admin_role() {
    let gateway = TestGateway::spawn().await;
    let admin = log_in(&gateway, "ada", Role::Admin, None).await;
    let url = format!("{}/api/v1/admin/channels/web", gateway.url);
    let body = chatbot("web", "Hi");

    // The session cookie alone: refused.
    let reply = admin.http.put(&url).json(&body).send().await.unwrap();
    assert_eq!(reply.status(), StatusCode::FORBIDDEN);
    let reply = (admin.http.put(&url))
        .header("x-csrf-token", "0".repeat(64))
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(reply.status(), StatusCode::FORBIDDEN);
    // The right token from another site: refused.
    let reply = (admin.http.put(&url))
        .header("x-csrf-token", &admin.csrf)
        .header("origin", "https://evil.example")
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(reply.status(), StatusCode::FORBIDDEN);
    assert!(gateway.engine.channel("web").is_err(), "nothing was saved");

    // No session at all.
    let anonymous = reqwest::Client::new();
    let reply = anonymous
        .get(format!("{}/api/v1/admin/channels", gateway.url))
        .send()
        .await
        .unwrap();
    assert_eq!(reply.status(), StatusCode::UNAUTHORIZED);

    // A supervisor reads the configuration but cannot change it.
    let supervisor = log_in(&gateway, "sam", Role::Supervisor, None).await;
    assert_eq!(
        supervisor.get("/api/v1/admin/channels").await.0,
        StatusCode::OK
    );
    let (status, reply) = supervisor.put("/api/v1/admin/channels/web", &body).await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{reply}");
    assert_eq!(reply["error"], "forbidden");

    // An API token works without cookie or CSRF token, in its own role.
    let (status, token) = admin
        .send(
            reqwest::Method::POST,
            "/api/v1/admin/tokens",
            Some(&json!({ "name": "ci", "role": "admin" })),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{token}");
    let secret = token["token"].as_str().unwrap();
    let reply = (anonymous.put(&url))
        .bearer_auth(secret)
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(reply.status(), StatusCode::NO_CONTENT);
    let reply = (anonymous.get(format!("{}/api/v1/admin/channels", gateway.url)))
        .bearer_auth("fdt_not-a-token")
        .send()
        .await
        .unwrap();
    assert_eq!(reply.status(), StatusCode::UNAUTHORIZED);

    // A wrong password; and the rate limit after many (last: it also
    // holds back good logins from this address for a while).
    let login = format!("{}/api/v1/admin/login", gateway.url);
    let wrong = json!({ "username": "ada", "password": "not the password" });
    let reply = anonymous.post(&login).json(&wrong).send().await.unwrap();
    assert_eq!(reply.status(), StatusCode::UNAUTHORIZED);
    let mut limited = false;
    for _ in 0..15 {
        let reply = anonymous.post(&login).json(&wrong).send().await.unwrap();
        limited |= reply.status() == StatusCode::TOO_MANY_REQUESTS;
    }
    assert!(limited, "repeated failed logins are rate limited");

    // Logged out: the cookie opens nothing any more.
    let (status, _) = admin
        .send(reqwest::Method::POST, "/api/v1/admin/logout", None)
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    assert_eq!(
        admin.get("/api/v1/admin/channels").await.0,
        StatusCode::UNAUTHORIZED
    );
    gateway.stop().await;
}

/// Two tenants' admins: ada of the default tenant, gus of a new `globex`.
async fn ours_and_theirs(gateway: &TestGateway) -> (Admin, Admin) {
    let store = gateway.engine.store();
    assert!(store.create_tenant("globex", "Globex").await.unwrap());
    let ours = log_in(gateway, "ada", Role::Admin, None).await;
    let theirs = log_in(gateway, "gus", Role::Admin, Some("globex")).await;
    (ours, theirs)
}

#[tokio::test]
async fn one_tenant_cannot_see_or_touch_another() {
    let gateway = TestGateway::spawn().await;
    let (ours, theirs) = ours_and_theirs(&gateway).await;

    // Their own agent and queue, and a channel on it.
    let (status, reply) = theirs
        .put(
            "/api/v1/admin/agents/201",
            &json!({ "extension": "201", "name": "Gus", "xmpp": "gus@globex.example" }),
        )
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT, "{reply}");
    let queue =
        json!({ "extension": "700", "name": "Globex sales", "members": [{ "agent": "201" }] });
    assert_eq!(
        theirs.put("/api/v1/admin/queues/700", &queue).await.0,
        StatusCode::NO_CONTENT
    );
    let channel = json!({ "key": "globex", "name": "Globex", "mode": "live", "queue": "700" });
    assert_eq!(
        theirs
            .put("/api/v1/admin/channels/globex", &channel)
            .await
            .0,
        StatusCode::NO_CONTENT
    );

    // Neither lists nor reads the other's items: 404, never a leak.
    let (_, listed) = theirs.get("/api/v1/admin/channels").await;
    let keys: Vec<&str> = (listed.as_array().unwrap().iter())
        .map(|c| c["key"].as_str().unwrap())
        .collect();
    assert_eq!(keys, ["globex"]);
    assert_eq!(
        theirs.get("/api/v1/admin/channels/live").await.0,
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        theirs.get("/api/v1/admin/channels/live/embed").await.0,
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        ours.get("/api/v1/admin/queues/700").await.0,
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        ours.delete("/api/v1/admin/channels/globex").await.0,
        StatusCode::NOT_FOUND
    );
    let (_, audit) = ours.get("/api/v1/admin/audit").await;
    assert!(!audit.to_string().contains("gus"), "{audit}");

    // Nor refers to them: a channel on another tenant's queue, a queue with
    // another tenant's agent.
    let poach = json!({ "key": "poach", "name": "X", "mode": "live", "queue": "600" });
    assert_eq!(
        theirs.put("/api/v1/admin/channels/poach", &poach).await.0,
        StatusCode::UNPROCESSABLE_ENTITY
    );
    let poach = json!({ "extension": "701", "name": "X", "members": [{ "agent": "101" }] });
    assert_eq!(
        theirs.put("/api/v1/admin/queues/701", &poach).await.0,
        StatusCode::UNPROCESSABLE_ENTITY
    );
    // Nor overwrites them.
    let overwrite = json!({ "key": "live", "name": "Mine now", "mode": "live", "queue": "700" });
    assert!(theirs
        .put("/api/v1/admin/channels/live", &overwrite)
        .await
        .0
        .is_client_error());
    assert_eq!(
        gateway.engine.channel("live").unwrap().config.name,
        "Acme Plumbing"
    );
    gateway.stop().await;
}

#[tokio::test]
async fn the_console_pages_need_a_login_and_show_the_embed_code() {
    let gateway = TestGateway::spawn().await;
    let admin = log_in(&gateway, "ada", Role::Admin, None).await;
    let anonymous = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let reply = anonymous
        .get(format!("{}/admin/channels", gateway.url))
        .send()
        .await
        .unwrap();
    assert_eq!(reply.status(), StatusCode::SEE_OTHER);
    assert_eq!(reply.headers()["location"], "/admin/login");

    let page = (admin
        .http
        .get(format!("{}/admin/channels/live", gateway.url)))
    .send()
    .await
    .unwrap();
    assert_eq!(page.status(), StatusCode::OK);
    let csp = page.headers()["content-security-policy"]
        .to_str()
        .unwrap()
        .to_owned();
    assert!(csp.contains("frame-ancestors 'none'"), "{csp}");
    let html = page.text().await.unwrap();
    assert!(
        html.contains("managed in frontdesk.toml"),
        "provisioned channels say so"
    );
    assert!(
        html.contains("data-key=&quot;live&quot;") || html.contains("data-key=&#34;live&#34;"),
        "the embed code is shown, escaped"
    );
    assert!(
        html.contains(&admin.csrf),
        "the page carries the CSRF token for its script"
    );
    gateway.stop().await;
}

/// The channel editor's widget preview: a console page like the others
/// (login, tenant), which only the console itself may frame and which may
/// open no connection, so the widget in it cannot reach the visitor API.
#[tokio::test]
async fn the_widget_preview_is_framed_by_the_console_only_and_connects_nowhere() {
    let gateway = TestGateway::spawn().await;
    let (ours, theirs) = ours_and_theirs(&gateway).await;
    let anonymous = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let url = |key: &str| format!("{}/admin/channels/{key}/preview", gateway.url);

    let reply = anonymous.get(url("live")).send().await.unwrap();
    assert_eq!(reply.status(), StatusCode::SEE_OTHER);
    assert_eq!(reply.headers()["location"], "/admin/login");
    for key in ["live", "new"] {
        let page = ours.http.get(url(key)).send().await.unwrap();
        assert_eq!(page.status(), StatusCode::OK, "{key}");
        let header = |name: &str| page.headers()[name].to_str().unwrap().to_owned();
        let csp = header("content-security-policy");
        assert!(csp.contains("frame-ancestors 'self'"), "{csp}");
        assert!(csp.contains("connect-src 'none'"), "{csp}");
        assert!(!csp.contains("unsafe-inline"), "{csp}");
        assert_eq!(header("x-frame-options"), "SAMEORIGIN");
        let html = page.text().await.unwrap();
        assert!(
            html.contains(&format!(
                r#"src="/widget.js" data-key="{key}" data-preview"#
            )),
            "{html}"
        );
        assert!(!html.contains("<script>"), "no inline script");
    }
    assert_eq!(
        theirs.http.get(url("live")).send().await.unwrap().status(),
        StatusCode::NOT_FOUND,
        "another tenant's channel"
    );
    assert_eq!(
        ours.http.get(url("nowhere")).send().await.unwrap().status(),
        StatusCode::NOT_FOUND
    );

    // The editor frames it; the editor itself may still be framed by nothing.
    let editor = (ours.http)
        .get(format!("{}/admin/channels/live", gateway.url))
        .send()
        .await
        .unwrap();
    assert_eq!(editor.headers()["x-frame-options"], "DENY");
    assert!(editor.headers()["content-security-policy"]
        .to_str()
        .unwrap()
        .contains("frame-ancestors 'none'"));
    let html = editor.text().await.unwrap();
    assert!(
        html.contains(r#"<iframe id="preview-frame" src="/admin/channels/live/preview" title="Widget preview""#),
        "{html}"
    );
    let reply = ours
        .http
        .get(format!("{}/admin/channels/new?lang=fr", gateway.url));
    let french = reply.send().await.unwrap().text().await.unwrap();
    assert!(
        french.contains(r#"src="/admin/channels/new/preview" title="Aperçu du widget""#),
        "{french}"
    );
    gateway.stop().await;
}

/// Two gateways on one PostgreSQL: a change made through one is in force
/// on the other without a restart (NOTIFY, or at worst the next poll).
#[tokio::test]
async fn a_change_on_one_node_reaches_the_other() {
    if !frontdesk_tests::database::several_nodes_run() {
        return;
    }
    let first = TestGateway::spawn().await;
    let second = first
        .spawn_sharing(|c| c.server.directory_poll_ms = 60_000)
        .await;
    let admin = log_in(&first, "ada", Role::Admin, None).await;
    assert_eq!(
        admin
            .put("/api/v1/admin/channels/web", &chatbot("web", "Hi"))
            .await
            .0,
        StatusCode::NO_CONTENT
    );
    let visitor = Visitor::new(&second.url).with_origin(ALLOWED_ORIGIN);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        if visitor.channel("web").await.unwrap().status == StatusCode::OK {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the second node never saw the change"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    second.stop().await;
    first.stop().await;
}

fn ext(s: &str) -> pbx_adapter::AgentExtension {
    s.parse().unwrap()
}

#[tokio::test]
async fn the_live_view_shows_who_waits_and_who_chats() {
    let mut gateway = TestGateway::spawn().await;
    gateway.all_agents_available().await;
    let admin = log_in(&gateway, "ada", Role::Admin, None).await;
    let visitor = Visitor::new(&gateway.url).with_origin(ALLOWED_ORIGIN);
    let session = visitor.start("live", "Jane Waiting").await.unwrap();
    let offer = gateway.next_offer().await;

    let (status, live) = admin.get("/api/v1/admin/live").await;
    assert_eq!(status, StatusCode::OK);
    let waiting = &live["waiting"][0];
    assert_eq!(waiting["id"], session.id.as_str());
    assert_eq!(waiting["visitor_name"], "Jane Waiting");
    assert_eq!(waiting["queue"], "600");
    assert_eq!(waiting["position"], 1);
    assert_eq!(waiting["state"], "offered");
    assert_eq!(waiting["ringing"], json!(["101", "102"]));
    let alice = (live["agents"].as_array().unwrap().iter())
        .find(|a| a["extension"] == "101")
        .unwrap();
    assert_eq!(alice["status"], "available");

    // The stream sends a fresh view when Alice takes the chat.
    let mut stream = admin
        .http
        .get(format!("{}/api/v1/admin/live/stream", gateway.url))
        .send()
        .await
        .unwrap();
    assert_eq!(stream.status(), StatusCode::OK);
    let first = stream.chunk().await.unwrap().unwrap();
    assert!(String::from_utf8_lossy(&first).contains("Jane Waiting"));
    gateway
        .engine
        .agent_accept(offer.conversation.id, &ext("101"))
        .await
        .unwrap();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(15);
    let mut seen = String::new();
    while !seen.contains("\"chats\":[{") {
        let chunk = tokio::time::timeout_at(deadline, stream.chunk())
            .await
            .expect("the stream shows the taken chat")
            .unwrap()
            .unwrap();
        seen = String::from_utf8_lossy(&chunk).into_owned();
    }
    assert!(seen.contains("\"waiting\":[]"), "{seen}");
    gateway.stop().await;
}

#[tokio::test]
async fn transcripts_are_searched_read_exported_and_erased_per_visitor() {
    let mut gateway = TestGateway::spawn().await;
    gateway.all_agents_available().await;
    let admin = log_in(&gateway, "ada", Role::Admin, None).await;
    let visitor = Visitor::new(&gateway.url).with_origin(ALLOWED_ORIGIN);
    let session = visitor.start("live", "Jane Doe").await.unwrap();
    let offer = gateway.next_offer().await;
    let said = visitor
        .say(&session, "c-1", "My boiler, again")
        .await
        .unwrap();
    assert_eq!(said.status, StatusCode::CREATED);
    let upload = visitor
        .upload(&session, "boiler.txt", b"serial 1234".to_vec())
        .await
        .unwrap();
    assert!(upload.status.is_success(), "{}", upload.body);
    gateway
        .engine
        .agent_message(offer.conversation.id, &ext("101"), "On my way")
        .await
        .unwrap();
    // A second visitor who left before anyone answered: a missed chat.
    let other = Visitor::new(&gateway.url).with_origin(ALLOWED_ORIGIN);
    let missed = other.start("live", "Max Missed").await.unwrap();
    assert!(other.close(&missed).await.unwrap().status.is_success());

    let (status, found) = admin.get("/api/v1/admin/conversations?q=DOE").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(found.as_array().unwrap().len(), 1, "{found}");
    assert_eq!(found[0]["id"], session.id.as_str());
    let (_, none) = admin.get("/api/v1/admin/conversations?q=nobody").await;
    assert_eq!(none, json!([]));
    let (status, _) = admin
        .get("/api/v1/admin/conversations?from=yesterday")
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);

    let (status, transcript) = admin
        .get(&format!("/api/v1/admin/conversations/{}", session.id))
        .await;
    assert_eq!(status, StatusCode::OK);
    let text = transcript.to_string();
    assert!(
        text.contains("My boiler, again") && text.contains("On my way"),
        "{text}"
    );
    let file_id = (transcript["events"].as_array().unwrap().iter())
        .find_map(|e| e["message"]["attachment"]["id"].as_str())
        .expect("the file is in the transcript")
        .to_owned();
    let file = (admin
        .http
        .get(format!("{}/api/v1/admin/files/{file_id}", gateway.url)))
    .send()
    .await
    .unwrap();
    assert_eq!(file.status(), StatusCode::OK);
    assert!(file.headers()["content-disposition"]
        .to_str()
        .unwrap()
        .starts_with("attachment"));
    assert_eq!(file.bytes().await.unwrap().as_ref(), b"serial 1234");

    let csv = (admin.http.get(format!(
        "{}/api/v1/admin/conversations/export?format=csv&ids={}",
        gateway.url, session.id
    )))
    .send()
    .await
    .unwrap()
    .text()
    .await
    .unwrap();
    let mut lines = csv.lines();
    assert!(lines
        .next()
        .unwrap()
        .starts_with("conversation_id,channel,state"));
    assert!(
        csv.contains("My boiler, again") && csv.contains("boiler.txt"),
        "{csv}"
    );
    assert!(
        !csv.contains("Max Missed"),
        "only the selection is exported"
    );
    let (status, json_export) = admin
        .get("/api/v1/admin/conversations/export?format=json")
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(json_export.as_array().unwrap().len(), 2);

    let (_, follow_up) = admin.get("/api/v1/admin/follow-up").await;
    assert_eq!(
        follow_up["missed"][0]["visitor_name"], "Max Missed",
        "{follow_up}"
    );

    // GDPR: everything about jane@example.com, then gone.
    let (_, held) = admin
        .get("/api/v1/admin/visitors?email=JANE@example.com")
        .await;
    assert_eq!(
        held["conversations"].as_array().unwrap().len(),
        2,
        "both used the address"
    );
    let files_before = count_files(gateway.data_dir());
    assert!(files_before >= 1);
    let (status, erased) = admin
        .send(
            reqwest::Method::POST,
            "/api/v1/admin/visitors/erase",
            Some(&json!({ "email": "jane@example.com" })),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{erased}");
    assert_eq!(erased["conversations"], 2);
    assert_eq!(erased["files"], 1);
    // Jane's chat was still going: it was ended first, and its agent told.
    loop {
        if let AgentCall::Ended {
            conversation,
            agent,
            ..
        } = gateway.next_agent_call().await
        {
            assert_eq!(conversation, offer.conversation.id);
            assert_eq!(agent.as_str(), "101");
            break;
        }
    }
    assert_eq!(
        count_files(gateway.data_dir()),
        files_before - 1,
        "the bytes are gone too"
    );
    let (status, _) = admin
        .get(&format!("/api/v1/admin/conversations/{}", session.id))
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (_, audit) = admin.get("/api/v1/admin/audit").await;
    let erase = (audit.as_array().unwrap().iter())
        .find(|e| e["action"] == "visitor.erase")
        .expect("the erasure is audited");
    assert!(
        !erase.to_string().contains("jane@"),
        "the audit log keeps no address: {erase}"
    );

    // A supervisor may read transcripts but not erase.
    let supervisor = log_in(&gateway, "sam", Role::Supervisor, None).await;
    let (status, _) = supervisor
        .send(
            reqwest::Method::POST,
            "/api/v1/admin/visitors/erase",
            Some(&json!({ "email": "max@example.com" })),
        )
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    gateway.stop().await;
}

fn count_files(dir: &std::path::Path) -> usize {
    let files = dir.join("files");
    walk(&files)
}

fn walk(dir: &std::path::Path) -> usize {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return 0;
    };
    entries
        .flatten()
        .map(|e| {
            let path = e.path();
            if path.is_dir() {
                walk(&path)
            } else {
                1
            }
        })
        .sum()
}

#[tokio::test]
async fn another_tenants_transcripts_stay_hidden() {
    let gateway = TestGateway::spawn().await;
    gateway
        .engine
        .store()
        .create_tenant("globex", "Globex")
        .await
        .unwrap();
    let theirs = log_in(&gateway, "gus", Role::Admin, Some("globex")).await;
    let visitor = Visitor::new(&gateway.url).with_origin(ALLOWED_ORIGIN);
    let session = visitor.start("live", "Jane Doe").await.unwrap();
    assert_eq!(theirs.get("/api/v1/admin/conversations").await.1, json!([]));
    let (status, _) = theirs
        .get(&format!("/api/v1/admin/conversations/{}", session.id))
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (_, held) = theirs
        .get("/api/v1/admin/visitors?email=jane@example.com")
        .await;
    assert_eq!(held["conversations"], json!([]));
    let (status, erased) = theirs
        .send(
            reqwest::Method::POST,
            "/api/v1/admin/visitors/erase",
            Some(&json!({ "email": "jane@example.com" })),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(erased["conversations"], 0);
    assert!(gateway
        .engine
        .store()
        .conversation(session.id.parse().unwrap())
        .await
        .unwrap()
        .is_some());
    let (_, live) = theirs.get("/api/v1/admin/live").await;
    assert_eq!(live["waiting"], json!([]));
    assert_eq!(live["agents"], json!([]));
    gateway.stop().await;
}

#[tokio::test]
async fn the_console_speaks_french_when_asked_and_remembers_it() {
    let gateway = TestGateway::spawn().await;
    let admin = log_in(&gateway, "ada", Role::Admin, None).await;
    let page = |path: &str, lang: Option<&str>| {
        let mut request = admin.http.get(format!("{}{path}", gateway.url));
        if let Some(lang) = lang {
            request = request.header("accept-language", lang);
        }
        request.send()
    };
    let english = page("/admin/channels", None)
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(english.contains("<html lang=\"en\"") && english.contains("<h1>Channels</h1>"));
    let browser = page("/admin/channels", Some("fr-FR,fr;q=0.9"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        browser.contains("<html lang=\"fr\"") && browser.contains("<h1>Canaux</h1>"),
        "{browser}"
    );

    // ?lang=fr is remembered (the client's cookie jar keeps it).
    let chosen = page("/admin/login?lang=fr", None).await.unwrap();
    assert!(chosen.headers()["set-cookie"]
        .to_str()
        .unwrap()
        .starts_with("frontdesk_console_lang=fr"));
    let login = chosen.text().await.unwrap();
    assert!(login.contains("Connexion à Frontdesk"), "{login}");
    let live = page("/admin/live", None)
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        live.contains("<h1>En direct</h1>") && live.contains("Visiteurs en attente"),
        "{live}"
    );
    gateway.stop().await;
}

#[tokio::test]
async fn a_superadmin_makes_tenants_and_their_admins_but_an_admin_cannot() {
    let gateway = TestGateway::spawn().await;
    let root = log_in(&gateway, "root", Role::Superadmin, None).await;
    let ada = log_in(&gateway, "ada", Role::Admin, None).await;
    let tenant = json!({ "id": "globex", "name": "Globex" });
    assert_eq!(
        ada.post_json("/api/v1/admin/tenants", tenant.clone())
            .await
            .0,
        StatusCode::FORBIDDEN
    );
    assert_eq!(
        root.post_json("/api/v1/admin/tenants", tenant.clone())
            .await
            .0,
        StatusCode::CREATED
    );
    assert_eq!(
        root.post_json("/api/v1/admin/tenants", tenant).await.0,
        StatusCode::UNPROCESSABLE_ENTITY
    );
    let (_, tenants) = root.get("/api/v1/admin/tenants").await;
    assert_eq!(tenants.as_array().unwrap().len(), 2, "{tenants}");

    let gus =
        json!({ "username": "gus", "password": PASSWORD, "role": "admin", "tenant": "globex" });
    assert_eq!(
        ada.post_json("/api/v1/admin/users", gus.clone()).await.0,
        StatusCode::UNPROCESSABLE_ENTITY
    );
    assert_eq!(
        root.post_json("/api/v1/admin/users", gus).await.0,
        StatusCode::CREATED
    );
    let (status, reply) = ada
        .post_json(
            "/api/v1/admin/users",
            json!({ "username": "sam", "password": "short", "role": "supervisor" }),
        )
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(reply["fields"][0]["key"], "password");
    let sam = json!({ "username": "sam", "password": PASSWORD, "role": "supervisor" });
    assert_eq!(
        ada.post_json("/api/v1/admin/users", sam).await.0,
        StatusCode::CREATED
    );

    // Gus logs in and works in Globex only.
    let http = reqwest::Client::builder()
        .cookie_store(true)
        .build()
        .unwrap();
    let login = http
        .post(format!("{}/api/v1/admin/login", gateway.url))
        .json(&json!({ "username": "gus", "password": PASSWORD }))
        .send()
        .await
        .unwrap();
    assert_eq!(login.status(), StatusCode::OK);
    let channels: Value = http
        .get(format!("{}/api/v1/admin/channels", gateway.url))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(channels, json!([]));
    gateway.stop().await;
}

#[tokio::test]
async fn an_agents_transfer_cannot_reach_another_tenants_queue() {
    let mut gateway = TestGateway::spawn().await;
    gateway.all_agents_available().await;
    gateway
        .engine
        .store()
        .create_tenant("globex", "Globex")
        .await
        .unwrap();
    let theirs = log_in(&gateway, "gus", Role::Admin, Some("globex")).await;
    let agent = json!({ "extension": "201", "name": "Gus", "xmpp": "gus@globex.example" });
    assert_eq!(
        theirs.put("/api/v1/admin/agents/201", &agent).await.0,
        StatusCode::NO_CONTENT
    );
    let queue =
        json!({ "extension": "700", "name": "Globex sales", "members": [{ "agent": "201" }] });
    assert_eq!(
        theirs.put("/api/v1/admin/queues/700", &queue).await.0,
        StatusCode::NO_CONTENT
    );

    let visitor = Visitor::new(&gateway.url).with_origin(ALLOWED_ORIGIN);
    visitor.start("live", "Jane Doe").await.unwrap();
    let offer = gateway.next_offer().await;
    let id = offer.conversation.id;
    gateway.engine.agent_accept(id, &ext("101")).await.unwrap();
    let command = frontdesk::engine::AgentCommand::Transfer("700".into());
    let answer = gateway
        .engine
        .run_agent_command(id, &ext("101"), command)
        .await
        .unwrap();
    assert_eq!(answer, "No queue or agent has extension 700.");
    let command = frontdesk::engine::AgentCommand::Transfer("201".into());
    let answer = gateway
        .engine
        .run_agent_command(id, &ext("101"), command)
        .await
        .unwrap();
    assert_eq!(answer, "No queue or agent has extension 201.");
    let row = gateway
        .engine
        .store()
        .conversation(id)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(row.agent_extension.as_deref(), Some("101"), "still Alice's");
    // Within the tenant a transfer still works.
    let command = frontdesk::engine::AgentCommand::Transfer("601".into());
    let answer = gateway
        .engine
        .run_agent_command(id, &ext("101"), command)
        .await
        .unwrap();
    assert!(answer.starts_with("Transferred to queue 601"), "{answer}");
    gateway.stop().await;
}

#[tokio::test]
async fn queue_changes_apply_to_the_next_offer() {
    let mut gateway = TestGateway::spawn().await;
    gateway.all_agents_available().await;
    let admin = log_in(&gateway, "ada", Role::Admin, None).await;
    let agent = json!({ "extension": "104", "name": "Dora", "xmpp": "dora@pbx.example.com" });
    assert_eq!(
        admin.put("/api/v1/admin/agents/104", &agent).await.0,
        StatusCode::NO_CONTENT
    );
    gateway.engine.set_agent_available(&ext("104"), true).await;
    let queue = |member: &str| json!({ "extension": "602", "name": "Billing", "members": [{ "agent": member }] });
    assert_eq!(
        admin.put("/api/v1/admin/queues/602", &queue("104")).await.0,
        StatusCode::NO_CONTENT
    );
    let channel = json!({ "key": "billing", "name": "Acme", "mode": "live", "queue": "602", "allowed_origins": [ALLOWED_ORIGIN] });
    assert_eq!(
        admin
            .put("/api/v1/admin/channels/billing", &channel)
            .await
            .0,
        StatusCode::NO_CONTENT
    );

    let visitor = Visitor::new(&gateway.url).with_origin(ALLOWED_ORIGIN);
    visitor.start("billing", "First").await.unwrap();
    let offered = |offer: &frontdesk::engine::Offer| -> Vec<String> {
        offer
            .agents
            .iter()
            .map(|a| a.extension.to_string())
            .collect()
    };
    assert_eq!(offered(&gateway.next_offer().await), ["104"]);
    assert_eq!(
        admin.put("/api/v1/admin/queues/602", &queue("103")).await.0,
        StatusCode::NO_CONTENT
    );
    visitor.start("billing", "Second").await.unwrap();
    let next = gateway.next_offer().await;
    assert_eq!(next.conversation.visitor_name, "Second");
    assert_eq!(
        offered(&next),
        ["103"],
        "the new member gets the next offer"
    );
    gateway.stop().await;
}

/// The first refused field of a 422: (key, code).
fn first_field(reply: &Value) -> (&str, &str) {
    let field = &reply["fields"][0];
    (
        field["key"].as_str().unwrap_or_default(),
        field["code"].as_str().unwrap_or_default(),
    )
}

#[tokio::test]
async fn admins_list_re_role_and_delete_their_tenants_users_only() {
    let gateway = TestGateway::spawn().await;
    let store = gateway.engine.store();
    assert!(store.create_tenant("globex", "Globex").await.unwrap());
    let ada = log_in(&gateway, "ada", Role::Admin, None).await;
    let gus = log_in(&gateway, "gus", Role::Admin, Some("globex")).await;
    let root = log_in(&gateway, "root", Role::Superadmin, None).await;

    let sam = json!({ "username": "sam", "password": PASSWORD, "role": "supervisor" });
    assert_eq!(
        ada.post_json("/api/v1/admin/users", sam).await.0,
        StatusCode::CREATED
    );
    let (status, users) = ada.get("/api/v1/admin/users").await;
    assert_eq!(status, StatusCode::OK);
    let names: Vec<&str> = (users.as_array().unwrap().iter())
        .map(|u| u["username"].as_str().unwrap())
        .collect();
    assert_eq!(
        names,
        ["ada", "sam"],
        "the tenant's users by name, no one else's"
    );
    assert!(
        !users.to_string().contains("argon2"),
        "never a hash: {users}"
    );
    let sam_id = ada.user_id("sam").await;

    // A supervisor reads the list and changes nothing.
    let sam = Admin::session(&gateway.url, "sam", PASSWORD).await.unwrap();
    assert_eq!(sam.get("/api/v1/admin/users").await.0, StatusCode::OK);
    let ada_id = sam.user_id("ada").await;
    let eve = json!({ "username": "eve", "password": PASSWORD, "role": "admin" });
    for (status, _) in [
        sam.post_json("/api/v1/admin/users", eve).await,
        sam.patch(
            &format!("/api/v1/admin/users/{ada_id}"),
            json!({ "role": "supervisor" }),
        )
        .await,
        sam.delete(&format!("/api/v1/admin/users/{ada_id}")).await,
        sam.get("/api/v1/admin/tokens").await,
    ] {
        assert_eq!(status, StatusCode::FORBIDDEN);
    }

    // Made an admin, the same session can at once.
    let (status, reply) = ada
        .patch(
            &format!("/api/v1/admin/users/{sam_id}"),
            json!({ "role": "admin" }),
        )
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT, "{reply}");
    assert_eq!(sam.get("/api/v1/admin/tokens").await.0, StatusCode::OK);

    // Nobody locks themselves out, or makes a super-admin here.
    let (status, reply) = ada
        .patch(
            &format!("/api/v1/admin/users/{ada_id}"),
            json!({ "role": "supervisor" }),
        )
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(first_field(&reply), ("role", "user_self"));
    let (status, reply) = ada.delete(&format!("/api/v1/admin/users/{ada_id}")).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(first_field(&reply), ("id", "user_self"));
    let (_, reply) = ada
        .patch(
            &format!("/api/v1/admin/users/{sam_id}"),
            json!({ "role": "superadmin" }),
        )
        .await;
    assert_eq!(first_field(&reply), ("role", "role_not_allowed"));

    // Another tenant's admin: sees only their own, and ours are 404.
    assert_eq!(gus.user_id("gus").await.len(), ada_id.len());
    let (_, theirs) = gus.get("/api/v1/admin/users").await;
    assert_eq!(theirs.as_array().unwrap().len(), 1, "{theirs}");
    let (status, reply) = gus.get("/api/v1/admin/users?tenant=default").await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(first_field(&reply), ("tenant", "tenant_not_yours"));
    for (status, reply) in [
        gus.patch(
            &format!("/api/v1/admin/users/{sam_id}"),
            json!({ "role": "supervisor" }),
        )
        .await,
        gus.delete(&format!("/api/v1/admin/users/{sam_id}")).await,
        gus.delete("/api/v1/admin/users/no-such-user").await,
    ] {
        assert_eq!(status, StatusCode::NOT_FOUND, "{reply}");
        assert_eq!(reply["error"], "not_found");
    }

    // A super-admin manages any tenant's users; a deleted user's session ends at once.
    let (status, globex) = root.get("/api/v1/admin/users?tenant=globex").await;
    assert_eq!(status, StatusCode::OK);
    let gus_id = globex[0]["id"].as_str().unwrap();
    assert_eq!(
        root.delete(&format!("/api/v1/admin/users/{gus_id}"))
            .await
            .0,
        StatusCode::NO_CONTENT
    );
    assert_eq!(
        gus.get("/api/v1/admin/channels").await.0,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        ada.delete(&format!("/api/v1/admin/users/{sam_id}")).await.0,
        StatusCode::NO_CONTENT
    );
    assert_eq!(
        sam.get("/api/v1/admin/users").await.0,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        Admin::session(&gateway.url, "sam", PASSWORD).await.err(),
        Some(StatusCode::UNAUTHORIZED)
    );
    let (_, audit) = ada.get("/api/v1/admin/audit").await;
    let actions: Vec<&str> = (audit.as_array().unwrap().iter())
        .map(|e| e["action"].as_str().unwrap())
        .collect();
    for action in ["user.create", "user.update", "user.delete"] {
        assert!(actions.contains(&action), "{action} in {actions:?}");
    }
    gateway.stop().await;
}

#[tokio::test]
async fn a_password_change_needs_the_current_one_and_ends_the_other_sessions() {
    let gateway = TestGateway::spawn().await;
    let here = log_in(&gateway, "ada", Role::Admin, None).await;
    let elsewhere = Admin::session(&gateway.url, "ada", PASSWORD).await.unwrap();
    let new = "a much longer pass phrase";
    let change = |current: &str, new: &str, again: Option<&str>| {
        let mut body = json!({ "current_password": current, "new_password": new });
        if let Some(again) = again {
            body["confirm_password"] = json!(again);
        }
        body
    };
    let refusals = [
        (
            change("not it at all!", new, None),
            ("current_password", "password_wrong"),
        ),
        (
            change(PASSWORD, "short", None),
            ("new_password", "password_short"),
        ),
        (
            change(PASSWORD, new, Some("another one, mistyped")),
            ("confirm_password", "passwords_differ"),
        ),
    ];
    // (Logins and password changes share one rate limit: this test stays
    // within its burst of 10.)
    for (body, expected) in refusals {
        let (status, reply) = here.post_json("/api/v1/admin/password", body).await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{reply}");
        assert_eq!(first_field(&reply), expected, "{reply}");
        if expected.1 == "password_short" {
            assert_eq!(reply["fields"][0]["params"]["min"], "12", "{reply}");
        }
    }
    assert_eq!(
        elsewhere.get("/api/v1/admin/channels").await.0,
        StatusCode::OK,
        "nothing changed yet"
    );

    // Without the CSRF token: refused; an API token has no password.
    let url = format!("{}/api/v1/admin/password", gateway.url);
    let reply = (here.http.post(&url))
        .json(&change(PASSWORD, new, None))
        .send()
        .await
        .unwrap();
    assert_eq!(reply.status(), StatusCode::FORBIDDEN);
    let (_, token) = here
        .post_json(
            "/api/v1/admin/tokens",
            json!({ "name": "ci", "role": "admin" }),
        )
        .await;
    let reply = (reqwest::Client::new().post(&url))
        .bearer_auth(token["token"].as_str().unwrap())
        .json(&change(PASSWORD, new, None))
        .send()
        .await
        .unwrap();
    assert_eq!(reply.status(), StatusCode::FORBIDDEN);

    let (status, reply) = here
        .post_json("/api/v1/admin/password", change(PASSWORD, new, Some(new)))
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT, "{reply}");
    assert_eq!(
        here.get("/api/v1/admin/channels").await.0,
        StatusCode::OK,
        "this session goes on"
    );
    assert_eq!(
        elsewhere.get("/api/v1/admin/channels").await.0,
        StatusCode::UNAUTHORIZED,
        "the other one ended"
    );
    assert_eq!(
        Admin::session(&gateway.url, "ada", PASSWORD).await.err(),
        Some(StatusCode::UNAUTHORIZED)
    );
    let again = Admin::session(&gateway.url, "ada", new).await.unwrap();
    let user = (gateway.engine.store().admin_user_by_name("ada").await)
        .unwrap()
        .unwrap();
    assert!(
        user.password_hash.starts_with("$argon2id$"),
        "argon2id as before"
    );
    let (_, audit) = again.get("/api/v1/admin/audit").await;
    assert!(audit.to_string().contains("user.password"), "{audit}");
    assert!(
        !audit.to_string().contains(new),
        "no password in the audit log"
    );

    gateway.stop().await;
}

#[tokio::test]
async fn the_password_form_says_in_french_what_is_wrong_next_to_the_field() {
    let gateway = TestGateway::spawn().await;
    let again = log_in(&gateway, "ada", Role::Admin, None).await;
    let new = "a much longer pass phrase";
    let form = |current: &str, new: &str, confirm: &str| {
        let fields = [
            ("_csrf", again.csrf.as_str()),
            ("current_password", current),
            ("new_password", new),
            ("confirm_password", confirm),
        ];
        (again
            .http
            .post(format!("{}/admin/password?lang=fr", gateway.url)))
        .form(&fields)
    };
    let reply = form("wrong password!", new, new).send().await.unwrap();
    assert_eq!(reply.status(), StatusCode::UNPROCESSABLE_ENTITY);
    let html = reply.text().await.unwrap();
    assert!(
        html.contains("ce n&#39;est pas votre mot de passe actuel")
            || html.contains("ce n&#x27;est pas votre mot de passe actuel"),
        "{html}"
    );
    assert!(
        html.contains("aria-invalid=\"true\" aria-describedby=\"current-error\""),
        "{html}"
    );
    let newest = "the newest pass phrase of all";
    let reply = form(PASSWORD, newest, newest).send().await.unwrap();
    assert_eq!(reply.status(), StatusCode::OK);
    assert!(reply
        .text()
        .await
        .unwrap()
        .contains("Votre mot de passe est changé"));
    let forged = (again.http.post(format!("{}/admin/password", gateway.url)))
        .form(&[
            ("_csrf", "0"),
            ("current_password", newest),
            ("new_password", new),
            ("confirm_password", new),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(forged.status(), StatusCode::FORBIDDEN);
    assert!(Admin::session(&gateway.url, "ada", newest).await.is_ok());
    gateway.stop().await;
}

#[tokio::test]
async fn a_token_secret_is_shown_once_and_another_tenant_cannot_revoke_it() {
    let gateway = TestGateway::spawn().await;
    assert!(gateway
        .engine
        .store()
        .create_tenant("globex", "Globex")
        .await
        .unwrap());
    let ada = log_in(&gateway, "ada", Role::Admin, None).await;
    let gus = log_in(&gateway, "gus", Role::Admin, Some("globex")).await;
    let (status, created) = ada
        .post_json(
            "/api/v1/admin/tokens",
            json!({ "name": "crm", "role": "supervisor" }),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{created}");
    let secret = created["token"].as_str().unwrap();
    let id = created["id"].as_str().unwrap();
    assert_eq!(created["tenant"], "default");

    let (_, listed) = ada.get("/api/v1/admin/tokens").await;
    assert_eq!(listed[0]["name"], "crm");
    assert_eq!(listed[0]["created_by"], "ada");
    assert!(listed[0].get("token").is_none() && !listed.to_string().contains(&secret[4..]));
    let (_, page) = ada.page("/admin/tokens").await;
    assert!(
        page.contains("crm") && !page.contains(&secret[4..]),
        "{page}"
    );
    let (_, audit) = ada.get("/api/v1/admin/audit").await;
    assert!(!audit.to_string().contains(&secret[4..]));

    // Its role holds: a supervisor token reads, changes nothing.
    let anonymous = reqwest::Client::new();
    let with_token = |path: &str| {
        let request = (anonymous.get(format!("{}{path}", gateway.url))).bearer_auth(secret);
        async move { request.send().await.unwrap().status() }
    };
    assert_eq!(with_token("/api/v1/admin/channels").await, StatusCode::OK);
    assert_eq!(with_token("/api/v1/admin/users").await, StatusCode::OK);
    assert_eq!(
        with_token("/api/v1/admin/tokens").await,
        StatusCode::FORBIDDEN
    );

    // Refused names say why, with a code.
    let (_, reply) = ada
        .post_json(
            "/api/v1/admin/tokens",
            json!({ "name": "x".repeat(65), "role": "admin" }),
        )
        .await;
    assert_eq!(first_field(&reply), ("name", "too_long"));
    assert_eq!(reply["fields"][0]["params"]["max"], "64");
    let (_, reply) = ada
        .post_json(
            "/api/v1/admin/tokens",
            json!({ "name": "root", "role": "superadmin" }),
        )
        .await;
    assert_eq!(first_field(&reply), ("role", "token_role"));

    // Another tenant neither lists nor revokes it.
    let (_, theirs) = gus.get("/api/v1/admin/tokens").await;
    assert_eq!(theirs, json!([]));
    assert_eq!(
        gus.delete(&format!("/api/v1/admin/tokens/{id}")).await.0,
        StatusCode::NOT_FOUND
    );
    assert_eq!(with_token("/api/v1/admin/channels").await, StatusCode::OK);
    assert_eq!(
        ada.delete(&format!("/api/v1/admin/tokens/{id}")).await.0,
        StatusCode::NO_CONTENT
    );
    assert_eq!(
        with_token("/api/v1/admin/channels").await,
        StatusCode::UNAUTHORIZED
    );
    gateway.stop().await;
}

#[tokio::test]
async fn account_pages_follow_the_role_and_speak_french() {
    let gateway = TestGateway::spawn().await;
    let ada = log_in(&gateway, "ada", Role::Admin, None).await;
    let sam = log_in(&gateway, "sam", Role::Supervisor, None).await;
    let root = log_in(&gateway, "root", Role::Superadmin, None).await;

    let (status, users) = ada.page("/admin/users").await;
    assert_eq!(status, StatusCode::OK);
    assert!(users.contains("id=\"new-user\"") && users.contains("data-delete-user"));
    assert!(users.contains("maxlength=\"64\"") && users.contains("minlength=\"12\""));
    assert!(users.contains("href=\"/admin/tokens\"") && !users.contains("href=\"/admin/tenants\""));
    let (_, read_only) = sam.page("/admin/users").await;
    assert!(
        read_only.contains("ada") && read_only.contains("Only admins add, change or delete users.")
    );
    for editable in [
        "id=\"new-user\"",
        "data-delete-user",
        "data-change-role",
        "href=\"/admin/tokens\"",
    ] {
        assert!(
            !read_only.contains(editable),
            "a supervisor sees no {editable}"
        );
    }
    let (status, tokens) = sam.page("/admin/tokens").await;
    assert_eq!(status, StatusCode::OK);
    assert!(tokens.contains("Only admins manage API tokens.") && !tokens.contains("new-token"));
    assert_eq!(ada.page("/admin/tenants").await.0, StatusCode::FORBIDDEN);
    let (status, tenants) = root.page("/admin/tenants?lang=fr").await;
    assert_eq!(status, StatusCode::OK);
    assert!(tenants.contains("<h1>Organisations</h1>") && tenants.contains("<code>default</code>"));
    assert!(
        tenants.contains("Créer l&#39;organisation")
            || tenants.contains("Créer l&#x27;organisation"),
        "{tenants}"
    );

    // The queue form in French, with the server's limits on its inputs.
    let (_, queue) = ada.page("/admin/queues/new?lang=fr").await;
    for said in [
        "<h1>Nouvelle file</h1>",
        "Durée de sonnerie (secondes)",
        "Chats simultanés par agent, au plus",
        "ringall : tous les agents libres à la fois",
        "\"la file {queue} n",
    ] {
        assert!(queue.contains(said), "{said} in {queue}");
    }
    assert!(
        queue.contains("name=\"extension\" type=\"text\" required maxlength=\"32\""),
        "{queue}"
    );
    assert!(
        queue.contains("name=\"ring_timeout_secs\" type=\"number\" min=\"1\" max=\"4294967295\""),
        "{queue}"
    );
    let (_, agent) = ada.page("/admin/agents/new?lang=fr").await;
    assert!(agent.contains("Nom affiché aux visiteurs") && agent.contains("maxlength=\"2047\""));
    let (_, channel) = ada.page("/admin/channels/new").await;
    assert!(
        channel.contains("name=\"name\" required maxlength=\"120\""),
        "{channel}"
    );
    assert!(channel.contains("max=\"20000\"") && channel.contains("id=\"console-texts\""));
    let (_, password) = ada.page("/admin/password?lang=fr").await;
    assert!(
        password.contains("Mot de passe actuel")
            && password.contains("Nouveau mot de passe, à nouveau")
    );
    gateway.stop().await;
}

#[tokio::test]
async fn refused_fields_carry_a_stable_code_and_the_hours_check_its_reason() {
    let gateway = TestGateway::spawn().await;
    let admin = log_in(&gateway, "ada", Role::Admin, None).await;
    let (status, reply) = admin
        .put(
            "/api/v1/admin/queues/602",
            &json!({ "extension": "602", "name": "Billing", "ring_timeout_secs": 0 }),
        )
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(first_field(&reply), ("queues/agents", "ring_timeout_zero"));
    assert_eq!(reply["fields"][0]["params"]["queue"], "602");
    assert_eq!(
        reply["fields"][0]["message"], "queue 602: ring_timeout_secs must be at least 1",
        "the API keeps its English"
    );
    let (_, reply) = admin
        .put(
            "/api/v1/admin/channels/web",
            &json!({ "key": "web", "name": "X", "mode": "live", "queue": "699" }),
        )
        .await;
    assert_eq!(
        first_field(&reply),
        ("channels[key=web].queue", "queue_unknown")
    );
    assert_eq!(reply["fields"][0]["params"]["queue"], "699");

    let (status, hours) = admin
        .post_json(
            "/api/v1/admin/schedule/check",
            json!({ "schedule": { "timezone": "Europe/Paris", "open": ["09:00-18:00,mon-fri,*,*"],
                                  "holidays": ["2026-12-25 Christmas"] },
                    "at": "2026-12-25T10:00:00Z" }),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{hours}");
    assert_eq!(hours["open"], false);
    assert_eq!(hours["timezone"], "Europe/Paris");
    assert_eq!(hours["local_time"], "2026-12-25T11:00:00+01:00");
    assert_eq!(
        hours["reason"],
        json!({ "kind": "holiday", "holiday": "Christmas (2026-12-25)" })
    );
    assert!(hours["explanation"]
        .as_str()
        .unwrap()
        .starts_with("closed at Fri 2026-12-25 11:00"));
    gateway.stop().await;
}

/// Routes are checked like every field (their queues and closures must
/// exist) and the hours check says which route decides and where it goes.
#[tokio::test]
async fn routing_is_validated_and_explained_through_the_console_api() {
    let gateway = TestGateway::spawn().await;
    let admin = log_in(&gateway, "ada", Role::Admin, None).await;
    let routed = |queue: &str, closure: &str| {
        json!({ "key": "web", "name": "X", "mode": "live",
                "allowed_origins": [ALLOWED_ORIGIN],
                "schedule": { "timezone": "Europe/Paris",
                              "routes": [ { "holidays": ["2026-12-25 Christmas"], "to": { "closed": closure } },
                                          { "when": "09:00-17:59,mon-fri,*,*", "to": { "queue": queue } } ],
                              "default": "closed" },
                "closures": { "xmas": { "text": "Merry Christmas, back {next_open}.", "alternatives": [] } } })
    };
    let (status, reply) = admin
        .put("/api/v1/admin/channels/web", &routed("699", "easter"))
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{reply}");
    let fields: Vec<(&str, &str)> = reply["fields"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| (f["key"].as_str().unwrap(), f["code"].as_str().unwrap()))
        .collect();
    assert_eq!(
        fields,
        [
            ("channels[key=web].schedule", "closure_unknown"),
            ("channels[key=web].schedule", "queue_unknown"),
        ],
        "no route goes to the channel's own queue, so it needs none: {reply}"
    );
    let (status, reply) = admin
        .put("/api/v1/admin/channels/web", &routed("601", "xmas"))
        .await;
    assert!(status.is_success(), "{reply}");
    let (_, stored) = admin.get("/api/v1/admin/channels/web").await;
    assert_eq!(
        stored["schedule"]["routes"][1]["to"],
        json!({ "queue": "601" }),
        "{stored}"
    );

    let (status, hours) = admin
        .post_json(
            "/api/v1/admin/schedule/check",
            json!({ "schedule": routed("601", "xmas")["schedule"], "at": "2026-12-24T10:00:00Z" }),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{hours}");
    assert_eq!(hours["open"], true);
    assert_eq!(
        hours["reason"],
        json!({ "kind": "route", "route": 2, "spec": "09:00-17:59,mon-fri,*,*" })
    );
    assert_eq!(hours["destination"], json!({ "queue": "601" }));
    let (_, hours) = admin
        .post_json(
            "/api/v1/admin/schedule/check",
            json!({ "schedule": routed("601", "xmas")["schedule"], "at": "2026-12-25T10:00:00Z" }),
        )
        .await;
    assert_eq!(hours["destination"], json!({ "closed": "xmas" }));
    assert_eq!(hours["next_open"], "2026-12-28T09:00:00+01:00");
    gateway.stop().await;
}
