//! What a gateway logs (issue 12): a real `frontdesk serve` at debug level,
//! in both log formats, carries a chat to an XMPP agent (Prosody) and one
//! to a SIP agent (Kamailio and sipp), with a file and its signed link;
//! none of the message bodies, visitor tokens, link signatures or
//! configured secrets may appear in its output.

use std::time::Duration;

use frontdesk_tests::config::test_config_toml;
use frontdesk_tests::database::TestDb;
use frontdesk_tests::gateway::GatewayProcess;
use frontdesk_tests::kamailio::{GATEWAY_DOMAIN, PBX_DOMAIN};
use frontdesk_tests::sip::{session_uri, SipPbx};
use frontdesk_tests::visitor::Visitor;
use frontdesk_tests::xmpp_server::{Account, XmppServer, COMPONENT_DOMAIN};

const WAIT: Duration = Duration::from_secs(30);
const SIGNING_KEY: &str = "log-audit-signing-key-0123456789abcdef";
const METRICS_TOKEN: &str = "log-audit-metrics-token-42";
const SIP_PASSWORD: &str = "log-audit-sip-password-17";

/// A marker no log line contains by chance.
fn marker(what: &str) -> String {
    format!("{what}-{}", uuid::Uuid::new_v4().simple())
}

async fn chats_leave_no_secret_in_the_logs(format: &str) {
    let prosody = XmppServer::prosody(&[Account::new("101").preapproved()])
        .await
        .unwrap();
    let pbx = SipPbx::start().await.expect("kamailio did not start");
    let sip_agent = pbx.agent("103", false).await.unwrap();
    let db = TestDb::create().await.unwrap();
    // The test configuration, with agent 101 on this Prosody, agent 103 on
    // this Kamailio, and secrets to look for.
    let config = test_config_toml(&db.url(), db.data_dir())
        .replace("alice@pbx.example.com", "101@localhost")
        .replace("sip:103@pbx.example.com", &format!("sip:103@{PBX_DOMAIN}"));
    let config = format!(
        r#"{config}
[files]
signing_key = "{SIGNING_KEY}"

[xmpp]
domain = "{COMPONENT_DOMAIN}"
server = "{server}"
secret = "{secret}"

[sip]
domain = "{GATEWAY_DOMAIN}"
listen_udp = "{sip_listen}"
listen_tcp = "{sip_listen}"
outbound_proxy = "{proxy}"
username = "frontdesk"
password = "{SIP_PASSWORD}"
probe_interval_secs = 1
"#,
        server = prosody.component_addr(),
        secret = prosody.secret,
        sip_listen = pbx.gateway,
        proxy = pbx.kamailio.addr(),
    );
    let path = db.file("frontdesk.toml");
    std::fs::write(&path, config).unwrap();
    let gw = GatewayProcess::spawn_logged(
        &path,
        &[
            ("RUST_LOG", "debug"),
            ("FRONTDESK__SERVER__LOG_FORMAT", format),
            ("FRONTDESK__SERVER__METRICS_TOKEN", METRICS_TOKEN),
        ],
    )
    .await
    .unwrap();
    let mut secrets = vec![
        SIGNING_KEY.to_owned(),
        METRICS_TOKEN.to_owned(),
        SIP_PASSWORD.to_owned(),
        prosody.secret.clone(),
    ];

    // XMPP: the live channel's queue rings agent 101.
    let mut alice = prosody.agent("101").await.unwrap();
    let visitor = Visitor::new(&gw.url);
    let (session, mut events) = visitor.start_following("live", "Jane").await.unwrap();
    let address = format!("{}@{COMPONENT_DOMAIN}", session.agent_localpart());
    let offer = alice
        .expect(WAIT, |e| {
            e["event"] == "message" && e["from"].as_str().is_some_and(|f| f.starts_with(&address))
        })
        .await
        .unwrap();
    assert!(offer["body"].as_str().unwrap().contains("New chat waiting"));
    let (agent_says, visitor_says) = (marker("agent-xmpp-body"), marker("visitor-xmpp-body"));
    alice.send(&address, &agent_says, "log-1").await.unwrap();
    events
        .next_matching(WAIT, |e| e["message"]["body"] == agent_says.as_str())
        .await
        .unwrap();
    assert_eq!(
        visitor
            .say(&session, "c-1", &visitor_says)
            .await
            .unwrap()
            .status,
        201
    );
    alice.expect_message_from(&address).await.unwrap();
    let uploaded = visitor
        .upload(&session, "receipt.txt", b"a plain text receipt".to_vec())
        .await
        .unwrap();
    assert_eq!(uploaded.status, 201, "{}", uploaded.body);
    let link = alice
        .expect(WAIT, |e| e["oob_url"].is_string())
        .await
        .unwrap()["oob_url"]
        .as_str()
        .unwrap()
        .to_owned();
    // The link names the configured address (port 0): ask the real one.
    let link = url::Url::parse(&link).unwrap();
    let signature = link
        .query_pairs()
        .find(|(k, _)| k == "sig")
        .expect("a signed link")
        .1
        .into_owned();
    let local = format!("{}{}?{}", gw.url, link.path(), link.query().unwrap());
    assert_eq!(reqwest::get(&local).await.unwrap().status(), 200);
    // A tampered link is refused (and that refusal is logged).
    let tampered = local.replace(&signature, &"0".repeat(signature.len()));
    assert_eq!(reqwest::get(&tampered).await.unwrap().status(), 403);
    secrets.extend([agent_says, visitor_says, session.token.clone(), signature]);

    // SIP: the chatbot's "support" option goes to queue 601, agent 103.
    let (bot, mut bot_events) = visitor.start_following("bot", "Joe").await.unwrap();
    assert_eq!(visitor.choose(&bot, "support").await.unwrap().status, 200);
    sip_agent
        .wait_for(&["New chat waiting"], WAIT)
        .await
        .unwrap();
    let (agent_says, visitor_says) = (marker("agent-sip-body"), marker("visitor-sip-body"));
    let status = sip_agent
        .send_message(&session_uri(&bot), "text/plain", &agent_says)
        .await
        .unwrap();
    assert_eq!(status, 200);
    bot_events
        .next_matching(WAIT, |e| e["message"]["body"] == agent_says.as_str())
        .await
        .unwrap();
    assert_eq!(
        visitor
            .say(&bot, "c-1", &visitor_says)
            .await
            .unwrap()
            .status,
        201
    );
    sip_agent.wait_for(&[&visitor_says], WAIT).await.unwrap();
    secrets.extend([agent_says, visitor_says, bot.token.clone()]);

    // Metrics with their token, and a wrong visitor token.
    let metrics = reqwest::Client::new()
        .get(format!("{}/metrics", gw.url))
        .bearer_auth(METRICS_TOKEN)
        .send()
        .await
        .unwrap();
    assert_eq!(metrics.status(), 200);
    let wrong = frontdesk_tests::visitor::Session {
        id: session.id.clone(),
        token: marker("wrong-token"),
    };
    assert_eq!(visitor.say(&wrong, "c-2", "x").await.unwrap().status, 401);
    secrets.push(wrong.token);

    let logs = gw.stop_with_logs().await.unwrap();
    // The logs are there, at debug level, in the asked format.
    assert!(logs.contains("component connected"), "{logs}");
    assert!(logs.contains("refused a file link"), "{logs}");
    assert!(
        logs.contains("DEBUG") || logs.contains("\"level\":\"DEBUG\""),
        "{logs}"
    );
    if format == "json" {
        assert!(logs.lines().all(|l| l.starts_with('{')), "{logs}");
    }
    let leaked: Vec<&String> = secrets
        .iter()
        .filter(|s| logs.contains(s.as_str()))
        .collect();
    assert!(leaked.is_empty(), "the logs show {leaked:?}:\n{logs}");
    db.drop_db().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn human_debug_logs_show_no_body_token_link_or_secret() {
    chats_leave_no_secret_in_the_logs("human").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn json_debug_logs_show_no_body_token_link_or_secret() {
    chats_leave_no_secret_in_the_logs("json").await;
}
