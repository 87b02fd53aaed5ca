//! The `frontdesk` command as an admin uses it: serve, migrate,
//! check-config, embed-code, and the operations endpoints of a served
//! gateway.

use std::path::Path;
use std::process::Command;

use frontdesk_tests::config::test_config_toml;
use frontdesk_tests::database::TestDb;
use frontdesk_tests::gateway::{frontdesk_binary, GatewayProcess};
use frontdesk_tests::visitor::Visitor;

fn frontdesk(args: &[&str], env: &[(&str, &str)]) -> (bool, String, String) {
    let mut command = Command::new(frontdesk_binary());
    command.args(args).env_remove("FRONTDESK_CONFIG");
    for (k, v) in env {
        command.env(k, v);
    }
    let out = command.output().expect("frontdesk runs");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn write_config(dir: &Path, text: &str) -> String {
    let path = dir.join("frontdesk.toml");
    std::fs::write(&path, text).unwrap();
    path.display().to_string()
}

#[test]
fn version_and_help() {
    let (ok, out, _) = frontdesk(&["--version"], &[]);
    assert!(ok);
    assert_eq!(
        out.trim(),
        format!("frontdesk {}", env!("CARGO_PKG_VERSION"))
    );
    let (ok, out, _) = frontdesk(&["--help"], &[]);
    assert!(ok);
    for command in ["serve", "migrate", "check-config", "embed-code"] {
        assert!(out.contains(command), "{out}");
    }
}

#[test]
fn the_example_configuration_is_valid() {
    let example = Path::new(env!("CARGO_MANIFEST_DIR")).join("../frontdesk.example.toml");
    let (ok, out, err) = frontdesk(
        &["--config", example.to_str().unwrap(), "check-config"],
        &[],
    );
    assert!(ok, "{err}");
    assert!(out.starts_with("configuration is valid"), "{out}");
}

#[test]
fn config_errors_name_the_key_and_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let base = test_config_toml("sqlite://x.db", dir.path());

    // A value of the wrong type.
    let path = write_config(
        dir.path(),
        &base.replace("listen = \"127.0.0.1:0\"", "listen = \"not an address\""),
    );
    let (ok, _, err) = frontdesk(&["--config", &path, "check-config"], &[]);
    assert!(!ok);
    assert!(err.contains("listen") && err.contains(&path), "{err}");

    // A reference to a queue that does not exist.
    let path = write_config(
        dir.path(),
        &base.replace("queue = \"600\"", "queue = \"699\""),
    );
    let (ok, _, err) = frontdesk(&["--config", &path, "check-config"], &[]);
    assert!(!ok);
    assert!(
        err.contains("channels[key=live].queue") && err.contains("699") && err.contains(&path),
        "{err}"
    );

    // Several nodes on SQLite, one node's database.
    let path = write_config(dir.path(), &format!("{base}\n[cluster]\nenabled = true\n"));
    let (ok, _, err) = frontdesk(&["--config", &path, "check-config"], &[]);
    assert!(!ok);
    assert!(
        err.contains("cluster.enabled") && err.contains("PostgreSQL") && err.contains(&path),
        "{err}"
    );

    // An invalid business-hours rule, as Asterisk would silently skip it.
    let path = write_config(
        dir.path(),
        &base.replace(
            "open = [\"00:00-23:59,*,*,*\"]",
            "open = [\"25:00-26:00,*,*,*\"]",
        ),
    );
    let (ok, _, err) = frontdesk(&["--config", &path, "check-config"], &[]);
    assert!(!ok);
    assert!(
        err.contains("channels[key=closed].schedule") && err.contains("25:00"),
        "{err}"
    );

    // An unknown key is refused rather than ignored.
    let path = write_config(dir.path(), &format!("{base}\n[server2]\nx = 1\n"));
    let (ok, _, err) = frontdesk(&["--config", &path, "check-config"], &[]);
    assert!(!ok);
    assert!(err.contains("server2"), "{err}");

    // A missing file is named.
    let (ok, _, err) = frontdesk(&["--config", "/nonexistent/f.toml", "check-config"], &[]);
    assert!(!ok);
    assert!(err.contains("/nonexistent/f.toml"), "{err}");
}

#[test]
fn environment_variables_override_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let path = write_config(dir.path(), &test_config_toml("sqlite://x.db", dir.path()));
    let (ok, out, err) = frontdesk(
        &["--config", &path, "check-config"],
        &[("FRONTDESK__SERVER__LISTEN", "127.0.0.1:9999")],
    );
    assert!(ok, "{err}");
    assert!(out.contains("listen:    127.0.0.1:9999"), "{out}");
}

#[test]
fn embed_code_prints_the_snippet_for_a_channel() {
    let dir = tempfile::tempdir().unwrap();
    let text = test_config_toml("sqlite://x.db", dir.path()).replace(
        "shutdown_grace_secs = 5",
        "shutdown_grace_secs = 5\npublic_url = \"https://chat.acme.example/\"",
    );
    let path = write_config(dir.path(), &text);
    let (ok, out, err) = frontdesk(&["--config", &path, "embed-code", "--channel", "live"], &[]);
    assert!(ok, "{err}");
    assert_eq!(
        out.trim(),
        r#"<script async src="https://chat.acme.example/widget.js" data-key="live"></script>"#
    );
    let (ok, _, err) = frontdesk(&["--config", &path, "embed-code", "--channel", "nope"], &[]);
    assert!(!ok);
    assert!(err.contains("nope"), "{err}");
}

#[tokio::test]
async fn migrate_then_serve_answers_the_operations_endpoints() {
    let db = TestDb::create().await.unwrap();
    let path = write_config(db.data_dir(), &test_config_toml(&db.url(), db.data_dir()));
    let (ok, out, err) = frontdesk(&["--config", &path, "migrate"], &[]);
    assert!(ok, "{err}");
    assert!(out.contains("migrations applied"), "{out}");

    let gateway = GatewayProcess::spawn_on(&db).await.unwrap();
    let visitor = Visitor::new(&gateway.url);
    let health = visitor.get("/healthz", None).await.unwrap();
    assert_eq!(
        (health.status.as_u16(), health.body["status"].as_str()),
        (200, Some("ok"))
    );
    let ready = visitor.get("/readyz", None).await.unwrap();
    assert_eq!(
        (ready.status.as_u16(), ready.body["status"].as_str()),
        (200, Some("ready"))
    );

    visitor.start("live", "Jane").await.unwrap();
    let metrics = reqwest::get(format!("{}/metrics", gateway.url))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    for needle in [
        "frontdesk_conversations{state=\"queued\"} 1",
        "frontdesk_conversations_started_total 1",
        "frontdesk_http_request_duration_seconds_bucket",
        "route=\"/api/v1/channels/{key}/conversations\"",
    ] {
        assert!(
            metrics.contains(needle),
            "{needle} missing from:\n{metrics}"
        );
    }

    let openapi = visitor.get("/api/v1/openapi.json", None).await.unwrap();
    assert_eq!(openapi.body["openapi"], "3.1.0");
    for path in [
        "/api/v1/channels/{key}",
        "/api/v1/channels/{key}/conversations",
        "/api/v1/conversations/{id}/messages",
        "/api/v1/conversations/{id}/close",
    ] {
        assert!(
            openapi.body["paths"].get(path).is_some(),
            "{path} not documented"
        );
    }
    let widget = reqwest::get(format!("{}/widget.js", gateway.url))
        .await
        .unwrap();
    assert_eq!(widget.status(), 200);
    assert!(widget.headers()["content-type"]
        .to_str()
        .unwrap()
        .starts_with("text/javascript"));
    gateway.kill().await.unwrap();
    db.drop_db().await.unwrap();
}

#[test]
fn schedule_check_explains_and_gives_the_next_opening() {
    let dir = tempfile::tempdir().unwrap();
    let path = write_config(dir.path(), &test_config_toml("sqlite://x.db", dir.path()));
    let (ok, out, err) = frontdesk(
        &[
            "--config",
            &path,
            "schedule",
            "check",
            "--channel",
            "closed",
        ],
        &[],
    );
    assert!(ok, "{err}");
    assert!(out.starts_with("closed at "), "{out}");
    assert!(out.contains("holiday"), "{out}");
    let expected = (chrono::Utc::now().date_naive() + chrono::Duration::days(2))
        .and_hms_opt(0, 0, 0)
        .unwrap()
        .and_utc()
        .to_rfc3339();
    assert!(
        out.contains("next opening: ") && out.contains(&expected),
        "{out}"
    );

    let (ok, out, _) = frontdesk(
        &[
            "--config",
            &path,
            "schedule",
            "check",
            "--channel",
            "live",
            "--at",
            "2026-12-24T18:30:00+01:00",
        ],
        &[],
    );
    assert!(ok);
    assert!(out.starts_with("open at "), "{out}");
    assert!(out.contains("a chat started then goes to queue"), "{out}");

    // A disabled channel starts no chat, whatever its hours say.
    let disabled = test_config_toml("sqlite://x.db", dir.path()).replacen(
        "key = \"live\"",
        "key = \"live\"\nenabled = false",
        1,
    );
    let path = write_config(dir.path(), &disabled);
    let (ok, out, err) = frontdesk(
        &["--config", &path, "schedule", "check", "--channel", "live"],
        &[],
    );
    assert!(ok, "{err}");
    assert!(
        out.contains("the channel is disabled: no chat starts"),
        "{out}"
    );
}

#[test]
fn pbx_import_prints_toml_and_a_report() {
    let samples = Path::new(env!("CARGO_MANIFEST_DIR")).join("../pbx-adapter/tests/data/asterisk");
    let (ok, out, err) = frontdesk(
        &[
            "pbx",
            "import",
            "asterisk",
            "--dir",
            samples.to_str().unwrap(),
        ],
        &[],
    );
    assert!(ok, "{err}");
    assert!(err.contains("Imported 3 queue(s)"), "{err}");
    assert!(
        err.contains("extensions.conf:44: GotoIf(") && err.contains("override toggle"),
        "the override toggle is reported: {err}"
    );
    assert!(
        out.contains("[[queues]]") && out.contains("extension = \"600\""),
        "{out}"
    );
    assert!(
        out.contains("# Routing of calls to from-pstn,0123456789")
            && out.contains("# to = { closed = \"tc-support-closed\" }"),
        "{out}"
    );

    // FreePBX's generated files, without its database.
    let generated = Path::new(env!("CARGO_MANIFEST_DIR")).join("../pbx-adapter/tests/data/freepbx");
    let (ok, out, err) = frontdesk(
        &[
            "pbx",
            "import",
            "freepbx",
            "--conf-dir",
            generated.to_str().unwrap(),
        ],
        &[],
    );
    assert!(ok, "{err}");
    assert!(
        err.contains("from-trunk,0123456789 (time zone: Europe/Paris):"),
        "{err}"
    );
    assert!(out.contains("# timezone = \"Europe/Paris\""), "{out}");
    // Neither source: a usage error.
    let (ok, _, err) = frontdesk(&["pbx", "import", "freepbx"], &[]);
    assert!(!ok);
    assert!(err.contains("--url") && err.contains("--conf-dir"), "{err}");
}

#[test]
fn a_command_without_config_says_which_file_it_read_or_looked_for() {
    let dir = tempfile::tempdir().unwrap();
    let run = |args: &[&str]| {
        let out = Command::new(frontdesk_binary())
            .args(args)
            .current_dir(dir.path())
            .env_remove("FRONTDESK_CONFIG")
            .output()
            .expect("frontdesk runs");
        (
            out.status.success(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };
    let (ok, _, err) = run(&["embed-code", "--channel", "live"]);
    assert!(!ok);
    assert!(err.contains("./frontdesk.toml"), "{err}");
    assert!(err.contains("/etc/frontdesk/frontdesk.toml"), "{err}");
    assert!(err.contains("no channel with key \"live\""), "{err}");

    // A frontdesk.toml in the working directory is read, and named.
    let db = dir.path().join("fd.db");
    write_config(
        dir.path(),
        &test_config_toml(&format!("sqlite://{}", db.display()), dir.path()),
    );
    let (ok, out, err) = run(&["embed-code", "--channel", "live"]);
    assert!(ok, "{err}");
    assert!(
        err.contains("using the configuration in frontdesk.toml"),
        "{err}"
    );
    assert!(out.contains("data-key=\"live\""), "{out}");
}

#[tokio::test]
async fn the_example_configuration_serves_a_demo_page_for_its_own_channel() {
    let example = Path::new(env!("CARGO_MANIFEST_DIR")).join("../frontdesk.example.toml");
    let dir = tempfile::tempdir().unwrap();
    // The example as it is, on a free port and a data dir of the test's own.
    let config = std::fs::read_to_string(&example)
        .unwrap()
        .replace("listen = \"127.0.0.1:8080\"", "listen = \"127.0.0.1:0\"")
        .replace(
            "data_dir = \"data\"",
            &format!("data_dir = \"{}\"", dir.path().display()),
        );
    let path = dir.path().join("example.toml");
    std::fs::write(&path, config).unwrap();
    let gateway = GatewayProcess::spawn(&path).await.unwrap();
    let page = reqwest::get(format!("{}/demo", gateway.url))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(page.contains("data-key=\"website\""), "{page}");
    let bot = reqwest::get(format!("{}/demo?channel=website-bot", gateway.url))
        .await
        .unwrap();
    assert!(bot
        .text()
        .await
        .unwrap()
        .contains("data-key=\"website-bot\""));
    let unknown = reqwest::get(format!("{}/demo?channel=nope", gateway.url))
        .await
        .unwrap();
    assert_eq!(unknown.status(), 404);
    let advice = unknown.text().await.unwrap();
    assert!(advice.contains("/demo?channel=website"), "{advice}");
    // The channel the page embeds exists and answers the widget.
    let info = Visitor::new(&gateway.url).channel("website").await.unwrap();
    assert_eq!(info.status, 200, "{}", info.body);
    gateway.kill().await.unwrap();
}
