//! Starting the real gateway for a test: in-process on a port-0 listener
//! (with the loopback agent channel, so the test plays the agents through
//! the engine's own entry points), or as a separate `frontdesk serve`
//! process for crash and restart tests.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use frontdesk::config::Config;
use frontdesk::engine::loopback::{AgentCall, LoopbackAgents};
use frontdesk::engine::Engine;
use frontdesk::server::Gateway;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::sync::{mpsc, oneshot};

use crate::config::{test_config, test_config_toml};
use crate::database::TestDb;

/// A gateway running inside the test process.
pub struct TestGateway {
    pub url: String,
    pub engine: Engine,
    agent_calls: mpsc::UnboundedReceiver<AgentCall>,
    stop: Option<oneshot::Sender<()>>,
    task: tokio::task::JoinHandle<anyhow::Result<()>>,
    db: Option<TestDb>,
}

impl TestGateway {
    /// The standard test configuration on a fresh database.
    pub async fn spawn() -> TestGateway {
        Self::spawn_with(|_| {}).await
    }

    pub async fn spawn_with(adjust: impl FnOnce(&mut Config)) -> TestGateway {
        Self::spawn_on(new_db().await, adjust).await
    }

    /// Starts with the bridges the configuration names (real XMPP agents
    /// instead of the loopback channel).
    pub async fn spawn_bridged(adjust: impl FnOnce(&mut Config)) -> TestGateway {
        Self::start(new_db().await, adjust, false).await
    }

    /// Starts on an existing database and data directory (a restart in
    /// the same test), with the loopback agent channel.
    pub async fn spawn_on(db: TestDb, adjust: impl FnOnce(&mut Config)) -> TestGateway {
        Self::start(db, adjust, true).await
    }

    async fn start(db: TestDb, adjust: impl FnOnce(&mut Config), loopback: bool) -> TestGateway {
        init_test_logging();
        let mut config = test_config(&db);
        adjust(&mut config);
        let listener = bind(&mut config).await;
        let (gateway, agent_calls) = if loopback {
            let (agents, agent_calls) = LoopbackAgents::new();
            let gateway = Gateway::start_with_agents(&config, Arc::new(agents)).await;
            (gateway, agent_calls)
        } else {
            let (_unused, agent_calls) = mpsc::unbounded_channel();
            (Gateway::start(&config).await, agent_calls)
        };
        let gateway = gateway.expect("gateway did not start");
        let engine = gateway.engine.clone();
        let url = format!("http://{}", listener.local_addr().expect("bound"));
        let (stop, stopped) = oneshot::channel();
        let task = tokio::spawn(gateway.run_until(listener, async move {
            let _ = stopped.await;
        }));
        TestGateway {
            url,
            engine,
            agent_calls,
            stop: Some(stop),
            task,
            db: Some(db),
        }
    }

    /// A second node on this gateway's (PostgreSQL) database, with
    /// `[cluster]` on (start the first one with it on too, for the dispatch
    /// lease and shared presence to hold between them).
    pub async fn spawn_sharing(&self, adjust: impl FnOnce(&mut Config)) -> TestGateway {
        let db = self.db.as_ref().expect("running on its database");
        Self::spawn_on(db.sharing().expect("a shareable database"), |config| {
            config.cluster.enabled = true;
            adjust(config);
        })
        .await
    }

    /// The gateway's data directory (uploaded files, signing key).
    pub fn data_dir(&self) -> &Path {
        self.db
            .as_ref()
            .expect("running on its database")
            .data_dir()
    }

    /// The next call the engine made to the agent side.
    pub async fn next_agent_call(&mut self) -> AgentCall {
        tokio::time::timeout(Duration::from_secs(10), self.agent_calls.recv())
            .await
            .expect("no agent call within 10 s")
            .expect("agent channel closed")
    }

    /// Waits for the next offer, skipping other calls.
    pub async fn next_offer(&mut self) -> frontdesk::engine::Offer {
        loop {
            if let AgentCall::Offer(offer) = self.next_agent_call().await {
                return offer;
            }
        }
    }

    /// Makes every configured agent available.
    pub async fn all_agents_available(&self) {
        let agents: Vec<_> = (self.engine.agents().into_iter())
            .map(|a| a.extension)
            .collect();
        for agent in agents {
            self.engine.set_agent_available(&agent, true).await;
        }
    }

    /// Graceful stop; keeps the database and data directory for a
    /// restart ([`TestGateway::spawn_on`]).
    pub async fn stop_keep_db(mut self) -> TestDb {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        (&mut self.task)
            .await
            .expect("gateway task panicked")
            .expect("gateway failed");
        self.db.take().expect("running on its database")
    }

    /// Graceful stop, then drops the database and data directory.
    pub async fn stop(self) {
        let db = self.stop_keep_db().await;
        db.drop_db().await.expect("cannot drop the test database");
    }
}

async fn new_db() -> TestDb {
    TestDb::create()
        .await
        .expect("cannot create a test database")
}

/// Binds a free loopback port and makes it the configured address, so the
/// links the gateway signs name the real port.
async fn bind(config: &mut Config) -> tokio::net::TcpListener {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("cannot bind a port");
    config.server.listen = listener.local_addr().expect("bound");
    listener
}

/// Logs go to the test's captured output when `FRONTDESK_TEST_LOG` is set.
pub fn init_test_logging() {
    if std::env::var_os("FRONTDESK_TEST_LOG").is_some() {
        frontdesk::telemetry::init(frontdesk::config::LogFormat::Human);
    }
}

/// The names of the files (not folders) directly in `dir`, sorted; none
/// when it does not exist.
pub fn files_in(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .map(|entries| {
            entries
                .filter_map(Result::ok)
                .filter(|e| e.path().is_file())
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default();
    names.sort();
    names
}

/// The `frontdesk` binary built by `cargo build` in this workspace.
pub fn frontdesk_binary() -> PathBuf {
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../target"));
    let bin = target.join("debug/frontdesk");
    assert!(
        bin.exists(),
        "{} is missing: run `cargo build -p frontdesk` first",
        bin.display()
    );
    bin
}

/// A `frontdesk serve` child process.
pub struct GatewayProcess {
    pub url: String,
    child: tokio::process::Child,
    /// What it wrote to stderr, when captured ([`GatewayProcess::spawn_logged`]).
    logs: Option<(Arc<std::sync::Mutex<String>>, tokio::task::JoinHandle<()>)>,
}

impl GatewayProcess {
    /// Starts `frontdesk serve` with the test configuration on `db` and its
    /// data directory (the config file is written next to the data, so a
    /// second call restarts on the same data).
    pub async fn spawn_on(db: &TestDb) -> anyhow::Result<GatewayProcess> {
        let config = db.file("frontdesk.toml");
        std::fs::write(&config, test_config_toml(&db.url(), db.data_dir()))?;
        Self::spawn(&config).await
    }

    /// Starts `frontdesk serve --config CONFIG` on a port-0 listener and
    /// waits for its "listening on" line.
    pub async fn spawn(config_path: &Path) -> anyhow::Result<GatewayProcess> {
        Self::spawn_binary(&frontdesk_binary(), config_path).await
    }

    /// Same, with a given `frontdesk` binary (e.g. a release build).
    /// It logs warnings and errors to the test's stderr, or what
    /// `FRONTDESK_TEST_GATEWAY_LOG` says (a `RUST_LOG` filter, to look into
    /// a failing test).
    pub async fn spawn_binary(binary: &Path, config_path: &Path) -> anyhow::Result<GatewayProcess> {
        let filter = std::env::var("FRONTDESK_TEST_GATEWAY_LOG").unwrap_or_else(|_| "warn".into());
        Self::start(binary, config_path, &[("RUST_LOG", &filter)], false).await
    }

    /// Starts `frontdesk serve --config CONFIG` with `env` added, keeping
    /// what it logs (stderr) for [`GatewayProcess::stop_with_logs`].
    pub async fn spawn_logged(
        config_path: &Path,
        env: &[(&str, &str)],
    ) -> anyhow::Result<GatewayProcess> {
        Self::start(&frontdesk_binary(), config_path, env, true).await
    }

    async fn start(
        binary: &Path,
        config_path: &Path,
        env: &[(&str, &str)],
        keep_logs: bool,
    ) -> anyhow::Result<GatewayProcess> {
        let mut child = tokio::process::Command::new(binary)
            .arg("serve")
            .arg("--config")
            .arg(config_path)
            .envs(env.iter().copied())
            .stdout(Stdio::piped())
            .stderr(if keep_logs {
                Stdio::piped()
            } else {
                Stdio::inherit()
            })
            .kill_on_drop(true)
            .spawn()
            .context("cannot start frontdesk")?;
        let logs = match child.stderr.take() {
            Some(stderr) => {
                let text = Arc::new(std::sync::Mutex::new(String::new()));
                let sink = text.clone();
                let reader = tokio::spawn(async move {
                    let mut lines = BufReader::new(stderr).lines();
                    while let Ok(Some(line)) = lines.next_line().await {
                        let mut text = sink.lock().expect("log buffer");
                        text.push_str(&line);
                        text.push('\n');
                    }
                });
                Some((text, reader))
            }
            None => None,
        };
        let stdout = child.stdout.take().context("no stdout")?;
        let mut lines = BufReader::new(stdout).lines();
        let url = tokio::time::timeout(Duration::from_secs(30), async {
            while let Some(line) = lines.next_line().await? {
                if let Some(url) = line.strip_prefix("listening on ") {
                    return Ok(url.trim().to_owned());
                }
            }
            anyhow::bail!("frontdesk exited before listening")
        })
        .await
        .context("frontdesk did not start within 30 s")??;
        // Keep draining stdout so the child never blocks on a full pipe.
        tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
        Ok(GatewayProcess { url, child, logs })
    }

    /// SIGKILL, then everything the process logged (for a process started
    /// with [`GatewayProcess::spawn_logged`]; empty otherwise).
    pub async fn stop_with_logs(mut self) -> anyhow::Result<String> {
        self.child.kill().await?;
        let Some((text, reader)) = self.logs.take() else {
            return Ok(String::new());
        };
        tokio::time::timeout(Duration::from_secs(10), reader)
            .await
            .context("stderr still open 10 s after the kill")??;
        let text = text.lock().expect("log buffer").clone();
        Ok(text)
    }

    /// SIGKILL: no chance to flush or say goodbye.
    pub async fn kill(mut self) -> anyhow::Result<()> {
        self.child.kill().await?;
        Ok(())
    }

    /// SIGTERM, then waits for the process to exit (a graceful stop: it
    /// stops accepting, closes WebSockets with 1001 and finishes what is
    /// in flight); SIGKILLs it and fails when it still runs after `within`.
    pub async fn terminate(mut self, within: Duration) -> anyhow::Result<std::process::ExitStatus> {
        let pid = self.child.id().context("the process has already exited")?;
        let signalled = tokio::process::Command::new("kill")
            .args(["-TERM", &pid.to_string()])
            .status()
            .await?;
        anyhow::ensure!(signalled.success(), "cannot send SIGTERM to {pid}");
        match tokio::time::timeout(within, self.child.wait()).await {
            Ok(status) => Ok(status?),
            Err(_) => {
                self.child.kill().await?;
                anyhow::bail!("frontdesk {pid} still ran {within:?} after SIGTERM")
            }
        }
    }

    pub fn pid(&self) -> Option<u32> {
        self.child.id()
    }
}
