//! A throwaway ejabberd for tests, next to [`crate::prosody`]: ejabberd
//! routes components differently (it accepts several connections for one
//! component domain and spreads stanzas among them), so the component's
//! round trip and reconnect are run against both.
//!
//! ejabberd's control script insists on running as the `ejabberd` user, so
//! the server runs as that user in its own process group (killed as a
//! group on drop), with its own config, spool, cookie home, node name and
//! Erlang distribution port, so no system epmd or service is involved.

use std::os::unix::process::CommandExt;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use anyhow::{bail, Context};

use crate::prosody::{free_port, wait_for_port, Account, XmppAgent, COMPONENT_DOMAIN, HOST};

/// A running (or stopped, between restarts) ejabberd.
pub struct Ejabberd {
    dir: PathBuf,
    node: String,
    uid: u32,
    gid: u32,
    child: Option<Child>,
    pub c2s_port: u16,
    pub component_port: u16,
    pub secret: String,
    pub accounts: Vec<Account>,
}

fn id_of(flag: &str) -> anyhow::Result<u32> {
    let out = Command::new("id").arg(flag).arg("ejabberd").output()?;
    if !out.status.success() {
        bail!("no ejabberd system user");
    }
    Ok(String::from_utf8(out.stdout)?.trim().parse()?)
}

impl Ejabberd {
    /// Writes the config, starts the server, registers `accounts`.
    pub async fn start(accounts: &[Account]) -> anyhow::Result<Ejabberd> {
        let id = uuid::Uuid::new_v4().simple().to_string();
        let dir = std::env::temp_dir().join(format!("frontdesk-ejabberd-{id}"));
        std::fs::create_dir_all(&dir)?;
        let (uid, gid) = (id_of("-u")?, id_of("-g")?);
        std::os::unix::fs::chown(&dir, Some(uid), Some(gid))?;
        let c2s_port = free_port()?;
        let component_port = free_port()?;
        let dist_port = free_port()?;
        let secret = uuid::Uuid::new_v4().simple().to_string();
        let config = format!(
            r#"hosts:
  - {HOST}
loglevel: info
certfiles: []
listen:
  -
    port: {c2s_port}
    ip: "127.0.0.1"
    module: ejabberd_c2s
    starttls: false
  -
    port: {component_port}
    ip: "127.0.0.1"
    module: ejabberd_service
    hosts:
      "{COMPONENT_DOMAIN}":
        password: "{secret}"
auth_method: internal
auth_password_format: plain
acl:
  local:
    user_regexp: ""
access_rules:
  local:
    allow: local
  c2s:
    allow: all
shaper_rules:
  c2s_shaper: none
modules:
  mod_disco: {{}}
  mod_ping: {{}}
  mod_roster: {{}}
  mod_offline: {{}}
  mod_version: {{}}
"#
        );
        std::fs::write(dir.join("ejabberd.yml"), config)?;
        std::fs::write(
            dir.join("ctl.cfg"),
            format!(
                "ERL_DIST_PORT={dist_port}\nEJABBERD_PID_PATH={}\n",
                dir.join("ejabberd.pid").display()
            ),
        )?;
        for entry in std::fs::read_dir(&dir)? {
            std::os::unix::fs::chown(entry?.path(), Some(uid), Some(gid))?;
        }
        let mut server = Ejabberd {
            dir,
            node: format!("fd{id}@localhost"),
            uid,
            gid,
            child: None,
            c2s_port,
            component_port,
            secret,
            accounts: accounts.to_vec(),
        };
        server.launch().await?;
        server.register_accounts().await?;
        Ok(server)
    }

    /// Registers the accounts, retrying while the node's control interface
    /// comes up (it can lag behind the listeners). After a SIGKILL ejabberd
    /// may have lost recent Mnesia writes, so a restart registers them again;
    /// "already registered" counts as success.
    async fn register_accounts(&self) -> anyhow::Result<()> {
        for account in &self.accounts {
            let deadline = tokio::time::Instant::now() + Duration::from_secs(15);
            loop {
                let out = self
                    .ctl()
                    .args(["register", &account.user, HOST, &account.password])
                    .output()?;
                let text = format!(
                    "{}{}",
                    String::from_utf8_lossy(&out.stdout),
                    String::from_utf8_lossy(&out.stderr)
                );
                if out.status.success() || text.contains("already registered") {
                    break;
                }
                if tokio::time::Instant::now() > deadline {
                    bail!("ejabberdctl register {} failed: {text}", account.user);
                }
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        }
        Ok(())
    }

    /// `ejabberdctl` with this instance's settings, as the ejabberd user.
    fn ctl(&self) -> Command {
        let mut cmd = Command::new("ejabberdctl");
        cmd.arg("-c")
            .arg(self.dir.join("ctl.cfg"))
            .arg("-n")
            .arg(&self.node)
            .arg("-f")
            .arg(self.dir.join("ejabberd.yml"))
            .arg("-s")
            .arg(self.dir.join("db"))
            .arg("-l")
            .arg(&self.dir)
            .env("HOME", &self.dir)
            .current_dir(&self.dir)
            .uid(self.uid)
            .gid(self.gid)
            .stdin(Stdio::null());
        cmd
    }

    async fn launch(&mut self) -> anyhow::Result<()> {
        let child = self
            .ctl()
            .arg("foreground")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .process_group(0)
            .spawn()
            .context("cannot start ejabberd")?;
        self.child = Some(child);
        for port in [self.c2s_port, self.component_port] {
            wait_for_port(port, Duration::from_secs(30))
                .await
                .with_context(|| format!("ejabberd did not listen; see {}", self.dir.display()))?;
        }
        Ok(())
    }

    /// Kills the whole server process group (like a crash).
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let group = format!("-{}", child.id());
            let _ = Command::new("kill").args(["-KILL", "--", &group]).status();
            let _ = child.wait();
        }
    }

    /// Kills and starts again on the same ports and spool.
    pub async fn restart(&mut self) -> anyhow::Result<()> {
        self.kill();
        self.launch().await?;
        self.register_accounts().await
    }

    /// `host:port` of the component listener.
    pub fn component_addr(&self) -> String {
        format!("127.0.0.1:{}", self.component_port)
    }

    /// Starts a scripted agent client logged in as `user`.
    pub async fn agent(&self, user: &str) -> anyhow::Result<XmppAgent> {
        let account = self
            .accounts
            .iter()
            .find(|a| a.user == user)
            .with_context(|| format!("no account {user}"))?;
        XmppAgent::start(&account.jid(), &account.password, self.c2s_port).await
    }
}

impl Drop for Ejabberd {
    fn drop(&mut self) {
        self.kill();
        if std::thread::panicking() {
            eprintln!("ejabberd test directory kept: {}", self.dir.display());
        } else {
            let _ = std::fs::remove_dir_all(&self.dir);
        }
    }
}
