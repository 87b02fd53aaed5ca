//! Driving `tests/agents/agent.py`, a real XMPP client, over JSON lines.

use std::path::Path;
use std::process::Stdio;
use std::time::Duration;

use anyhow::{bail, Context};
use serde_json::{json, Value};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::process::{Child, ChildStdin, Command};
use tokio::sync::mpsc;

/// How long [`XmppAgent::expect`] waits by default.
pub const EXPECT_TIMEOUT: Duration = Duration::from_secs(10);

/// A scripted agent client; killed when dropped.
pub struct XmppAgent {
    /// The agent's bare JID.
    pub jid: String,
    /// The full JID of the current session.
    pub full_jid: String,
    child: Child,
    stdin: ChildStdin,
    events: mpsc::UnboundedReceiver<Value>,
    reader: tokio::task::JoinHandle<()>,
}

impl XmppAgent {
    /// Logs in and waits for the `ready` event.
    pub async fn start(jid: &str, password: &str, port: u16) -> anyhow::Result<XmppAgent> {
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("agents/agent.py");
        let mut child = Command::new("/usr/bin/python3")
            // No `__pycache__` next to the script, in the source tree.
            .env("PYTHONDONTWRITEBYTECODE", "1")
            .arg(script)
            .args([
                "--jid",
                jid,
                "--password",
                password,
                "--port",
                &port.to_string(),
            ])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .kill_on_drop(true)
            .spawn()
            .context("cannot start the agent script")?;
        let stdin = child.stdin.take().context("no stdin")?;
        let stdout = child.stdout.take().context("no stdout")?;
        let (tx, events) = mpsc::unbounded_channel();
        let reader = tokio::spawn(async move {
            let mut lines = BufReader::new(stdout).lines();
            while let Ok(Some(line)) = lines.next_line().await {
                match serde_json::from_str::<Value>(&line) {
                    Ok(v) => {
                        if tx.send(v).is_err() {
                            break;
                        }
                    }
                    Err(e) => eprintln!("agent printed non-JSON {line:?}: {e}"),
                }
            }
        });
        let mut agent = XmppAgent {
            jid: jid.to_owned(),
            full_jid: String::new(),
            child,
            stdin,
            events,
            reader,
        };
        let ready = agent
            .expect(Duration::from_secs(20), |e| e["event"] == "ready")
            .await?;
        agent.full_jid = ready["jid"].as_str().unwrap_or_default().to_owned();
        Ok(agent)
    }

    /// Sends one command (see the script's docstring).
    pub async fn command(&mut self, command: Value) -> anyhow::Result<()> {
        let mut line = serde_json::to_vec(&command)?;
        line.push(b'\n');
        self.stdin.write_all(&line).await?;
        self.stdin.flush().await?;
        Ok(())
    }

    /// Sends a chat message.
    pub async fn send(&mut self, to: &str, body: &str, id: &str) -> anyhow::Result<()> {
        self.command(
            json!({"cmd": "send", "to": to, "body": body, "id": id, "chatstate": "active"}),
        )
        .await
    }

    /// Waits for the first event matching `pred`, skipping others.
    pub async fn expect(
        &mut self,
        within: Duration,
        pred: impl Fn(&Value) -> bool,
    ) -> anyhow::Result<Value> {
        let deadline = tokio::time::Instant::now() + within;
        loop {
            match tokio::time::timeout_at(deadline, self.events.recv()).await {
                Ok(Some(event)) if pred(&event) => return Ok(event),
                Ok(Some(_)) => continue,
                Ok(None) => bail!("agent {} exited", self.jid),
                Err(_) => bail!("agent {}: no matching event within {within:?}", self.jid),
            }
        }
    }

    /// The next event, whatever it is; `None` when none came within
    /// `within`.
    pub async fn next_event(&mut self, within: Duration) -> anyhow::Result<Option<Value>> {
        match tokio::time::timeout(within, self.events.recv()).await {
            Ok(Some(event)) => Ok(Some(event)),
            Ok(None) => bail!("agent {} exited", self.jid),
            Err(_) => Ok(None),
        }
    }

    /// Waits for a message event from `from` (bare JID prefix match) with
    /// a body.
    pub async fn expect_message_from(&mut self, from: &str) -> anyhow::Result<Value> {
        let from = from.to_owned();
        self.expect(EXPECT_TIMEOUT, move |e| {
            e["event"] == "message"
                && e["body"].is_string()
                && e["from"].as_str().is_some_and(|f| f.starts_with(&from))
        })
        .await
    }

    /// Whether the agent has no pending event matching `pred` right now
    /// (only meaningful after a later event proved ordering).
    pub fn drain_matching(&mut self, pred: impl Fn(&Value) -> bool) -> Vec<Value> {
        let mut found = Vec::new();
        while let Ok(e) = self.events.try_recv() {
            if pred(&e) {
                found.push(e);
            }
        }
        found
    }
}

impl Drop for XmppAgent {
    fn drop(&mut self) {
        self.reader.abort();
        let _ = self.child.start_kill();
    }
}
