//! `frontdesk pbx sync` as an admin runs it beside a running gateway, on
//! SQLite and PostgreSQL: the PBX's queues and agents land in the
//! directory read-only, a console channel that follows a PBX entry point
//! gets its routing, a change on the PBX shows as a diff, and a failed
//! read changes nothing.

use std::path::Path;
use std::process::Command;

use frontdesk::api::admin::{create_user, Role};
use frontdesk_tests::admin::{chatbot_channel, Admin};
use frontdesk_tests::config::test_config_toml;
use frontdesk_tests::database::TestDb;
use frontdesk_tests::gateway::{frontdesk_binary, TestGateway};
use reqwest::StatusCode;
use serde_json::Value;

const PASSWORD: &str = "correct horse battery staple";

/// Runs `frontdesk --config <config> pbx sync <args>`.
fn sync(config: &Path, args: &[&str]) -> (bool, String, String) {
    let out = Command::new(frontdesk_binary())
        .arg("--config")
        .arg(config)
        .args(["pbx", "sync"])
        .args(args)
        .env_remove("FRONTDESK_CONFIG")
        .output()
        .expect("frontdesk runs");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// A copy of the sample Asterisk configuration, to change as the PBX's
/// admin would.
fn pbx_copy() -> tempfile::TempDir {
    let from = Path::new(env!("CARGO_MANIFEST_DIR")).join("../pbx-adapter/tests/data/asterisk");
    let to = tempfile::tempdir().unwrap();
    for entry in std::fs::read_dir(&from).unwrap() {
        let entry = entry.unwrap();
        std::fs::copy(entry.path(), to.path().join(entry.file_name())).unwrap();
    }
    to
}

#[tokio::test]
async fn sync_brings_the_pbx_into_the_directory_and_shows_each_change() {
    let db = TestDb::create().await.unwrap();
    let config = db.data_dir().join("sync.toml");
    std::fs::write(&config, test_config_toml(&db.url(), db.data_dir())).unwrap();
    let gateway = TestGateway::spawn_on(db, |_| {}).await;
    create_user(gateway.engine.store(), "ada", PASSWORD, Role::Admin, None)
        .await
        .unwrap();
    let admin = Admin::log_in(&gateway.url, "ada", PASSWORD).await.unwrap();

    // A console channel that follows the PBX's main number.
    let mut web = chatbot_channel("web", "Hello");
    web["pbx_routing"] = "from-pstn,0123456789".into();
    // The PBX server's zone, which the dialplan does not say.
    web["schedule"] = serde_json::json!({ "timezone": "Europe/Paris" });
    let (status, body) = admin.post_json("/api/v1/admin/channels", web).await;
    assert_eq!(status, StatusCode::CREATED, "{body}");

    let pbx = pbx_copy();
    let dir = pbx.path().to_str().unwrap();
    let pattern = ["--xmpp-pattern", "{extension}@agents.example.com"];
    let (ok, out, err) = sync(
        &config,
        &[&["asterisk", "--dir", dir][..], &pattern[..]].concat(),
    );
    assert!(ok, "{out}\n{err}");
    // Queues 600 and 601 and agents 101-103 are frontdesk.toml's: kept.
    for line in [
        "+ agent 104 \"Durand, Chloé\"",
        "+ agent 301 \"Hugo Blanc\"",
        "+ queue 602 \"602\"",
        "~ channel web (routing of from-pstn,0123456789): default, routes, closure tc-support-closed (default text)",
    ] {
        assert!(out.lines().any(|l| l == line), "{line} missing from:\n{out}");
    }
    assert!(
        !out.contains("+ queue 600") && !out.contains("+ agent 101"),
        "{out}"
    );
    assert!(
        err.contains("note: queue 600 is managed in frontdesk.toml"),
        "{err}"
    );

    gateway.engine.reload_directory().await.unwrap();
    let (status, queue) = admin.get("/api/v1/admin/queues/602").await;
    assert_eq!(status, StatusCode::OK, "{queue}");
    assert_eq!(
        (queue["source"].as_str(), queue["read_only"].as_bool()),
        (Some("pbx"), Some(true))
    );
    let members: Vec<&str> = queue["members"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|m| m["agent"].as_str())
        .collect();
    assert_eq!(members, ["301", "303"]);
    let (_, agent) = admin.get("/api/v1/admin/agents/301").await;
    assert_eq!(agent["xmpp"], "301@agents.example.com", "{agent}");

    // The console may not change what the PBX owns, and says so.
    let mut changed = queue.clone();
    changed["name"] = "Renamed".into();
    let (status, reply) = admin.put("/api/v1/admin/queues/602", &changed).await;
    assert_eq!(status, StatusCode::CONFLICT, "{reply}");
    assert_eq!(reply["error"], "read_only", "{reply}");
    let page = admin
        .http
        .get(format!("{}/admin/queues/602", gateway.url))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        page.contains("This item comes from the PBX (frontdesk pbx sync)"),
        "{page}"
    );

    // The channel routes as the PBX does, and keeps what the admin set.
    let (_, channel) = admin.get("/api/v1/admin/channels/web").await;
    let routes = channel["schedule"]["routes"].as_array().unwrap();
    assert_eq!(routes.len(), 2, "{channel}");
    assert_eq!(routes[0]["to"]["closed"], "tc-support-closed");
    assert_eq!(routes[1]["to"]["queue"], "601");
    assert_eq!(channel["source"], "console");
    assert_eq!(channel["schedule"]["timezone"], "Europe/Paris", "{channel}");
    assert_eq!(channel["options"].as_array().map(Vec::len), Some(2));
    assert!(
        channel["closures"]["tc-support-closed"]["text"].is_string(),
        "{channel}"
    );

    // Nothing changed on the PBX: nothing to do.
    let (ok, out, _) = sync(
        &config,
        &[&["asterisk", "--dir", dir][..], &pattern[..]].concat(),
    );
    assert!(ok && out.lines().any(|l| l == "no change"), "{out}");

    // The PBX's admin changes queue 602's strategy, then removes it.
    let custom = pbx.path().join("queues_custom.conf");
    let text = std::fs::read_to_string(&custom).unwrap();
    std::fs::write(
        &custom,
        text.replace("strategy = ringall", "strategy = leastrecent"),
    )
    .unwrap();
    let (ok, out, err) = sync(
        &config,
        &[&["asterisk", "--dir", dir][..], &pattern[..]].concat(),
    );
    assert!(ok, "{err}");
    assert!(out.lines().any(|l| l == "~ queue 602: strategy"), "{out}");
    // A second channel follows the number whose routing uses queue 602:
    // removing 602 on the PBX is refused as a whole while a channel
    // routes there, and nothing changes.
    let mut weekend = chatbot_channel("weekend", "Hello");
    weekend["pbx_routing"] = "from-pstn,0123456788".into();
    let (status, body) = admin.post_json("/api/v1/admin/channels", weekend).await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let run = || {
        sync(
            &config,
            &[&["asterisk", "--dir", dir][..], &pattern[..]].concat(),
        )
    };
    let (ok, out, _) = run();
    assert!(ok, "{out}");
    assert!(
        out.lines()
            .any(|l| l.starts_with("~ channel weekend (routing of from-pstn,0123456788)")),
        "{out}"
    );
    std::fs::write(&custom, "; no more queues here\n").unwrap();
    let (ok, _, err) = run();
    assert!(!ok);
    assert!(
        err.contains("the directory refused the PBX's items; nothing changed")
            && err.contains("channels[key=weekend]")
            && err.contains("602"),
        "{err}"
    );
    assert!(
        err.contains(
            "note: channel weekend follows the PBX routing of `from-pstn,0123456788`, which the \
             PBX no longer has"
        ),
        "{err}"
    );
    let (status, body) = admin.delete("/api/v1/admin/channels/weekend").await;
    assert_eq!(status, StatusCode::NO_CONTENT, "{body}");
    let (ok, out, err) = run();
    assert!(ok, "{err}");
    for line in ["- queue 602", "- agent 301", "- agent 303"] {
        assert!(
            out.lines().any(|l| l == line),
            "{line} missing from:\n{out}"
        );
    }

    // A PBX that cannot be read changes nothing.
    gateway.engine.reload_directory().await.unwrap();
    let before = gateway.engine.directory().version();
    let (ok, _, err) = sync(&config, &["asterisk", "--dir", "/nonexistent/asterisk"]);
    assert!(!ok);
    assert!(
        err.contains("cannot read the PBX; nothing changed"),
        "{err}"
    );
    gateway.engine.reload_directory().await.unwrap();
    assert_eq!(gateway.engine.directory().version(), before);
    let (status, _): (StatusCode, Value) = admin.get("/api/v1/admin/queues/602").await;
    assert_eq!(status, StatusCode::NOT_FOUND);
}

/// `--every`: each round prints its diff; a round that cannot read the PBX
/// is reported and the next one tried.
#[tokio::test]
async fn sync_every_keeps_following_the_pbx_and_survives_a_failed_read() {
    use tokio::io::{AsyncBufReadExt, BufReader};
    let db = TestDb::create().await.unwrap();
    let config = db.data_dir().join("sync.toml");
    std::fs::write(&config, test_config_toml(&db.url(), db.data_dir())).unwrap();
    // Migrations run by the sync itself; no gateway is needed.
    let pbx = pbx_copy();
    let mut child = tokio::process::Command::new(frontdesk_binary())
        .arg("--config")
        .arg(&config)
        .args(["pbx", "sync", "asterisk", "--dir"])
        .arg(pbx.path())
        .args(["--every", "1s"])
        .env_remove("FRONTDESK_CONFIG")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let mut out = BufReader::new(child.stdout.take().unwrap()).lines();
    let mut err = BufReader::new(child.stderr.take().unwrap()).lines();
    expect_line(&mut out, "+ queue 602 \"602\"").await;
    expect_line(&mut out, "no change").await;
    let custom = pbx.path().join("queues_custom.conf");
    let text = std::fs::read_to_string(&custom).unwrap();
    std::fs::write(
        &custom,
        text.replace("strategy = ringall", "strategy = leastrecent"),
    )
    .unwrap();
    expect_line(&mut out, "~ queue 602: strategy").await;
    // The PBX's files go away: the round fails, the loop goes on.
    for name in ["queues.conf", "extensions.conf"] {
        std::fs::rename(
            pbx.path().join(name),
            pbx.path().join(format!("{name}.away")),
        )
        .unwrap();
    }
    expect_line(&mut err, "error: cannot read the PBX; nothing changed").await;
    for name in ["queues.conf", "extensions.conf"] {
        std::fs::rename(
            pbx.path().join(format!("{name}.away")),
            pbx.path().join(name),
        )
        .unwrap();
    }
    expect_line(&mut out, "no change").await;
    assert!(child.try_wait().unwrap().is_none(), "still running");
    child.kill().await.unwrap();
}

/// Reads `lines` until one starts with `wanted` (30 s at most).
async fn expect_line<R: tokio::io::AsyncBufRead + Unpin>(
    lines: &mut tokio::io::Lines<R>,
    wanted: &str,
) {
    let within = std::time::Duration::from_secs(30);
    tokio::time::timeout(within, async {
        while let Some(line) = lines.next_line().await.unwrap() {
            if line.starts_with(wanted) {
                return;
            }
        }
        panic!("the sync ended before printing {wanted:?}");
    })
    .await
    .unwrap_or_else(|_| panic!("no {wanted:?} within {within:?}"))
}
