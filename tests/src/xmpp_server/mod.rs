//! A throwaway XMPP server for tests, Prosody or ejabberd behind one type:
//! its own config, data directory and free loopback ports, a component
//! domain with a secret, and agent accounts. What differs per server (the
//! config it reads, how accounts are created, how it is started) lives in
//! [`prosody`] and [`ejabberd`]; starting, waiting for the ports,
//! killing, restarting on the same data, freezing and stopping are shared.
//! ejabberd routes components differently from Prosody (it accepts several
//! connections for one component domain and spreads stanzas among them),
//! so scenarios that depend on routing run against both.
//!
//! The server runs in its own process group, killed as a group when the
//! harness is dropped; the directory is kept (and its path printed) only
//! when the test panicked, for its log.
//!
//! [`XmppAgent`] drives a real XMPP client (slixmpp, `tests/agents/agent.py`)
//! logged into it, standing in for an agent's Gajim or Conversations.

mod agent;
mod ejabberd;
mod prosody;

use std::os::unix::process::CommandExt;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use anyhow::{bail, Context};

pub use agent::XmppAgent;

use crate::net::{free_port, wait_for_port};

/// The XMPP host the agents live on.
pub const HOST: &str = "localhost";
/// The component domain visitor addresses live on.
pub const COMPONENT_DOMAIN: &str = "chat.localhost";

/// Which server.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum XmppKind {
    Prosody,
    Ejabberd,
}

/// An agent account to create before start.
#[derive(Debug, Clone)]
pub struct Account {
    /// Localpart, e.g. `101`.
    pub user: String,
    /// Password.
    pub password: String,
    /// Pre-approve the component's presence subscription in the server
    /// roster (the admin route of A5), so no client needs to approve it
    /// (Prosody only).
    pub preapproved: bool,
}

impl Account {
    pub fn new(user: &str) -> Self {
        Self {
            user: user.to_owned(),
            password: format!("pw-{user}"),
            preapproved: false,
        }
    }

    pub fn preapproved(mut self) -> Self {
        self.preapproved = true;
        self
    }

    pub fn jid(&self) -> String {
        format!("{}@{HOST}", self.user)
    }
}

/// Settings a Prosody can be started with beyond the harness's own
/// ([`XmppServer::prosody_with`]); the default is the harness as every test
/// uses it.
#[derive(Debug, Clone, Default)]
pub struct ProsodyOptions {
    /// `network_settings = { nagle = false }`: `TCP_NODELAY` on Prosody's
    /// sockets instead of its default, Nagle on.
    pub no_nagle: bool,
    /// A `VirtualHost` of this name with `authentication = "anonymous"`,
    /// served over XMPP-over-WebSocket (RFC 7395, Prosody's
    /// `mod_websocket`) on a free loopback HTTP port: the do-it-yourself
    /// visitor host of a stock Prosody ([`XmppServer::websocket_url`]).
    pub anonymous_websocket_host: Option<String>,
    /// Loads `mod_limits` with the c2s rate raised far above any load (as
    /// a stock install has it loaded, with a rate meant for humans).
    pub raised_c2s_limits: bool,
    /// Prosody's minimum log level, `debug` when `None` (benchmarks use
    /// `warn`, so logging is not what they measure).
    pub log_level: Option<String>,
}

/// The server-specific half.
enum Flavor {
    Prosody,
    /// ejabberd's control script insists on running as the `ejabberd`
    /// user, with its own node name (and Erlang distribution port, in
    /// `ctl.cfg`), so no system epmd or service is involved.
    Ejabberd {
        node: String,
        uid: u32,
        gid: u32,
    },
}

/// A running (or stopped, between restarts) XMPP server.
pub struct XmppServer {
    flavor: Flavor,
    dir: PathBuf,
    child: Option<Child>,
    pub c2s_port: u16,
    pub component_port: u16,
    pub secret: String,
    pub accounts: Vec<Account>,
    /// The certificate and key (PEM) the component listener serves with
    /// direct TLS; plain TCP when `None` (ejabberd only).
    pub component_tls: Option<Vec<u8>>,
    /// The HTTP port of the WebSocket listener, with
    /// [`ProsodyOptions::anonymous_websocket_host`].
    pub http_port: Option<u16>,
    prosody_options: ProsodyOptions,
}

impl XmppServer {
    /// Writes the config and accounts and starts the server; returns once
    /// both the c2s and component ports accept connections and the
    /// accounts exist.
    pub async fn start(kind: XmppKind, accounts: &[Account]) -> anyhow::Result<XmppServer> {
        Self::start_on(kind, accounts, free_port()?, free_port()?).await
    }

    /// An ejabberd whose component listener speaks direct TLS (`tls: true`)
    /// with `cert_and_key_pem`.
    pub async fn ejabberd_with_component_tls(
        accounts: &[Account],
        cert_and_key_pem: &[u8],
    ) -> anyhow::Result<XmppServer> {
        Self::start_with(
            XmppKind::Ejabberd,
            accounts,
            free_port()?,
            free_port()?,
            Some(cert_and_key_pem.to_vec()),
        )
        .await
    }

    /// A Prosody (most tests need no other).
    pub async fn prosody(accounts: &[Account]) -> anyhow::Result<XmppServer> {
        Self::start(XmppKind::Prosody, accounts).await
    }

    /// An ejabberd with agents 101 and 102, as the cluster tests use it
    /// (a component connection from every node); panics if it cannot
    /// start.
    pub async fn ejabberd_for_agents() -> XmppServer {
        Self::start(
            XmppKind::Ejabberd,
            &[Account::new("101"), Account::new("102")],
        )
        .await
        .unwrap_or_else(|e| panic!("ejabberd did not start: {e:#}"))
    }

    /// A Prosody with `options` on top of the harness's settings.
    pub async fn prosody_with(
        accounts: &[Account],
        options: ProsodyOptions,
    ) -> anyhow::Result<XmppServer> {
        let http_port = match options.anonymous_websocket_host {
            Some(_) => Some(free_port()?),
            None => None,
        };
        Self::start_full(
            XmppKind::Prosody,
            accounts,
            free_port()?,
            free_port()?,
            None,
            http_port,
            options,
        )
        .await
    }

    /// Same, on given ports (the demo uses the standard client port 5222
    /// so desktop clients need no port setting).
    pub async fn start_on(
        kind: XmppKind,
        accounts: &[Account],
        c2s_port: u16,
        component_port: u16,
    ) -> anyhow::Result<XmppServer> {
        Self::start_with(kind, accounts, c2s_port, component_port, None).await
    }

    async fn start_with(
        kind: XmppKind,
        accounts: &[Account],
        c2s_port: u16,
        component_port: u16,
        component_tls: Option<Vec<u8>>,
    ) -> anyhow::Result<XmppServer> {
        Self::start_full(
            kind,
            accounts,
            c2s_port,
            component_port,
            component_tls,
            None,
            ProsodyOptions::default(),
        )
        .await
    }

    async fn start_full(
        kind: XmppKind,
        accounts: &[Account],
        c2s_port: u16,
        component_port: u16,
        component_tls: Option<Vec<u8>>,
        http_port: Option<u16>,
        prosody_options: ProsodyOptions,
    ) -> anyhow::Result<XmppServer> {
        if kind != XmppKind::Prosody && http_port.is_some() {
            bail!("the WebSocket listener is set up for Prosody only");
        }
        if component_tls.is_some() && kind != XmppKind::Ejabberd {
            bail!("component TLS is set up for ejabberd only");
        }
        let name = match kind {
            XmppKind::Prosody => "prosody",
            XmppKind::Ejabberd => "ejabberd",
        };
        let dir = std::env::temp_dir().join(format!(
            "frontdesk-{name}-{}",
            uuid::Uuid::new_v4().simple()
        ));
        std::fs::create_dir_all(&dir)?;
        let mut server = XmppServer {
            flavor: Flavor::Prosody,
            dir,
            child: None,
            c2s_port,
            component_port,
            secret: uuid::Uuid::new_v4().simple().to_string(),
            accounts: accounts.to_vec(),
            component_tls,
            http_port,
            prosody_options,
        };
        server.flavor = match kind {
            XmppKind::Prosody => {
                prosody::write_config(&server)?;
                Flavor::Prosody
            }
            XmppKind::Ejabberd => ejabberd::write_config(&server)?,
        };
        server.launch().await?;
        Ok(server)
    }

    pub fn kind(&self) -> XmppKind {
        match self.flavor {
            Flavor::Prosody => XmppKind::Prosody,
            Flavor::Ejabberd { .. } => XmppKind::Ejabberd,
        }
    }

    /// Starts the process, waits for its ports, then makes sure the
    /// accounts exist.
    async fn launch(&mut self) -> anyhow::Result<()> {
        let (mut command, within) = match &self.flavor {
            Flavor::Prosody => (prosody::command(self), Duration::from_secs(15)),
            Flavor::Ejabberd { .. } => (ejabberd::command(self), Duration::from_secs(30)),
        };
        let child = command
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .process_group(0)
            .spawn()
            .with_context(|| format!("cannot start {:?}", self.kind()))?;
        self.child = Some(child);
        let ports = [self.c2s_port, self.component_port]
            .into_iter()
            .chain(self.http_port);
        for port in ports {
            wait_for_port(port, within).await.with_context(|| {
                format!(
                    "{:?} did not listen; see {}",
                    self.kind(),
                    self.log().display()
                )
            })?;
        }
        if let Flavor::Ejabberd { .. } = self.flavor {
            ejabberd::register_accounts(self).await?;
        }
        Ok(())
    }

    /// The server's main process id (its process group's too), while it
    /// runs: for reading its CPU time and memory from `/proc`.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// The XMPP-over-WebSocket (RFC 7395) endpoint of the anonymous
    /// visitor host ([`ProsodyOptions::anonymous_websocket_host`]).
    pub fn websocket_url(&self) -> Option<String> {
        self.http_port
            .map(|port| format!("ws://127.0.0.1:{port}/xmpp-websocket"))
    }

    /// Kills the whole server process group (like a crash: no stream
    /// footers).
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = self.signal_group(&child, "-KILL");
            let _ = child.wait();
        }
    }

    /// Kills and starts again on the same ports and data.
    pub async fn restart(&mut self) -> anyhow::Result<()> {
        self.kill();
        self.launch().await
    }

    /// Freezes the server (SIGSTOP): connections stay open but nothing is
    /// answered, like a hung server.
    pub fn pause(&self) -> anyhow::Result<()> {
        self.signal("-STOP")
    }

    /// Thaws a paused server (SIGCONT).
    pub fn resume(&self) -> anyhow::Result<()> {
        self.signal("-CONT")
    }

    fn signal(&self, signal: &str) -> anyhow::Result<()> {
        let Some(child) = &self.child else {
            bail!("the server is not running");
        };
        self.signal_group(child, signal)
    }

    /// The group id is the main process's id (`process_group(0)`).
    fn signal_group(&self, child: &Child, signal: &str) -> anyhow::Result<()> {
        let group = format!("-{}", child.id());
        let status = Command::new("kill").args([signal, "--", &group]).status()?;
        if !status.success() {
            bail!("kill {signal} failed");
        }
        Ok(())
    }

    /// The gateway's `[xmpp]` section for this server: its component
    /// domain and secret, pings every 5 s, reconnects within 2 s (tests
    /// restart servers).
    pub fn bridge_config(&self) -> frontdesk::config::XmppConfig {
        frontdesk::config::XmppConfig {
            domain: COMPONENT_DOMAIN.to_owned(),
            server: self.component_addr(),
            secret: self.secret.clone().into(),
            ping_interval_secs: 5,
            offers_when_away: false,
            reconnect_max_secs: 2,
            tls: false,
            tls_ca_file: None,
            tls_server_name: None,
            connection: Default::default(),
        }
    }

    /// `host:port` of the component listener.
    pub fn component_addr(&self) -> String {
        format!("127.0.0.1:{}", self.component_port)
    }

    /// The server's log file.
    pub fn log(&self) -> PathBuf {
        match self.flavor {
            Flavor::Prosody => self.dir.join("prosody.log"),
            Flavor::Ejabberd { .. } => self.dir.join("ejabberd.log"),
        }
    }

    /// The config file the server reads (at every restart).
    pub fn config_file(&self) -> PathBuf {
        match self.flavor {
            Flavor::Prosody => self.dir.join("prosody.cfg.lua"),
            Flavor::Ejabberd { .. } => self.dir.join("ejabberd.yml"),
        }
    }

    /// Starts a scripted agent client logged in as `user` and waits until
    /// it is online.
    pub async fn agent(&self, user: &str) -> anyhow::Result<XmppAgent> {
        let account = self
            .accounts
            .iter()
            .find(|a| a.user == user)
            .with_context(|| format!("no account {user}"))?;
        XmppAgent::start(&account.jid(), &account.password, self.c2s_port).await
    }
}

impl Drop for XmppServer {
    fn drop(&mut self) {
        // A paused server is thawed first, so nothing is left stopped if
        // the kill fails.
        let _ = self.resume();
        self.kill();
        if std::thread::panicking() {
            eprintln!(
                "{:?} test directory kept: {}",
                self.kind(),
                self.dir.display()
            );
        } else {
            let _ = std::fs::remove_dir_all(&self.dir);
        }
    }
}
