//! A throwaway HAProxy in front of gateway nodes, for HTTP and the event
//! WebSocket: its own config, temp dir and runtime socket, one free
//! loopback port. It
//! - balances round-robin per request (consecutive requests land on
//!   consecutive nodes; a kept-alive client connection is no exception);
//! - checks every node with `GET /readyz` every
//!   [`HaproxyOptions::check_interval`] and takes it out after
//!   [`HaproxyOptions::fall`] failures (250 ms and 2 by default: a dead
//!   node is out within about half a second, one whose database is away
//!   within the check timeout plus that), back in after
//!   [`HaproxyOptions::rise`] successes;
//! - re-sends a request whose connection to a node failed to another node
//!   (`retry-on conn-failure`, `option redispatch`), never one a node may
//!   have read;
//! - keeps an upgraded WebSocket open for [`HaproxyOptions::tunnel_timeout`]
//!   (an hour) of silence;
//! - answers the gateway's own 503 `unavailable` JSON (with `Retry-After`)
//!   when no node is in service, instead of its HTML page;
//! - names the node that answered in the `X-Served-By` response header
//!   (`node0`, `node1`, …: see [`Haproxy::served_by`]) and adds
//!   `X-Forwarded-For`.
//!
//! Servers are declared in maintenance, with no address yet;
//! [`Haproxy::set_server`] gives one its address and puts it in service,
//! through HAProxy's runtime API (a Unix socket in the temp dir), which
//! also sets weights, drains and disables ([`Haproxy::command`] sends any
//! other command). So a node may be restarted on a new port, and the
//! nodes may learn HAProxy's address (their public URL) before they start.
//!
//! HAProxy runs in the foreground in its own process group, logging to
//! `haproxy.log` in the temp dir; it is killed when dropped, and the
//! directory removed (kept, with its path printed, when the test panicked).

use std::net::SocketAddr;
use std::os::unix::process::CommandExt;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use anyhow::{bail, Context};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::net::{free_port, wait_for_port};

/// The backend's name in the config and in runtime commands.
pub const BACKEND: &str = "nodes";
/// The response header naming the server that answered.
pub const SERVED_BY: &str = "x-served-by";

/// What HAProxy answers when no node is ready (all down, or the database
/// away): the gateway's own 503 `unavailable`, code and retry hint, so a
/// client has one rule for both.
fn unavailable_body() -> String {
    serde_json::json!({
        "error": "unavailable",
        "message": "The chat is unavailable for a moment. Please try again in a few seconds.",
        "retry_after": 2,
    })
    .to_string()
}

/// How HAProxy checks and keeps connections.
#[derive(Debug, Clone)]
pub struct HaproxyOptions {
    /// Time between two health checks of a node (up, down or going
    /// either way).
    pub check_interval: Duration,
    /// How long one check may wait for `/readyz` to answer.
    pub check_timeout: Duration,
    /// Failed checks in a row that take a node out.
    pub fall: u32,
    /// Passed checks in a row that put it back.
    pub rise: u32,
    /// How long an upgraded connection (a WebSocket) may stay silent.
    pub tunnel_timeout: Duration,
}

impl Default for HaproxyOptions {
    fn default() -> Self {
        Self {
            check_interval: Duration::from_millis(250),
            check_timeout: Duration::from_secs(1),
            fall: 2,
            rise: 1,
            tunnel_timeout: Duration::from_secs(3600),
        }
    }
}

/// What HAProxy says of a server (`show stat`'s `status`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ServerState {
    /// In service (also while failing checks, until `fall` of them).
    Up,
    /// Out of service: its checks fail (also while passing checks, until
    /// `rise` of them).
    Down,
    /// Disabled by the runtime API or the config.
    Maint,
    /// Takes no new clients but those it already has.
    Drain,
    /// Anything else, as HAProxy wrote it.
    Other(String),
}

impl ServerState {
    fn parse(status: &str) -> ServerState {
        let word = status.split_whitespace().next().unwrap_or_default();
        match word {
            "UP" => ServerState::Up,
            "DOWN" => ServerState::Down,
            "MAINT" => ServerState::Maint,
            "DRAIN" => ServerState::Drain,
            _ => ServerState::Other(status.to_owned()),
        }
    }
}

/// One server's line of `show stat`.
#[derive(Debug, Clone)]
pub struct ServerStat {
    pub state: ServerState,
    /// `status` as HAProxy wrote it (`UP 1/2` while going down, …).
    pub status: String,
    pub weight: u32,
    /// Requests it was sent (`stot`: sessions, one per request here).
    pub sessions: u64,
}

/// A running HAProxy.
pub struct Haproxy {
    dir: PathBuf,
    child: Option<Child>,
    pub port: u16,
    servers: usize,
}

/// The server name of node `i`.
pub fn server_name(i: usize) -> String {
    format!("node{i}")
}

fn config(port: u16, servers: usize, socket: &std::path::Path, o: &HaproxyOptions) -> String {
    let ms = |d: Duration| d.as_millis().max(1);
    let mut lines = String::new();
    for i in 0..servers {
        // No address yet: HAProxy's own, never used while disabled.
        lines.push_str(&format!(
            "    server {} 127.0.0.1:{port} disabled\n",
            server_name(i)
        ));
    }
    format!(
        r#"# generated by frontdesk-tests (tests/src/haproxy.rs)
global
    log stderr format raw local0 info
    stats socket {socket} mode 600 level admin
    stats timeout 10s
    maxconn 4096

defaults
    mode http
    log global
    option httplog
    timeout connect 1s
    timeout client 60s
    timeout server 60s
    timeout http-request 10s
    timeout http-keep-alive 10s
    timeout tunnel {tunnel}ms
    timeout check {check_timeout}ms
    retries 3
    retry-on conn-failure
    option redispatch 1

frontend visitors
    bind 127.0.0.1:{port}
    option forwardfor
    default_backend {BACKEND}
    # No node ready (all down, or the database away): the gateway's own
    # retryable error, which the widget and API clients understand.
    http-error status 503 content-type application/json string "{UNAVAILABLE}" hdr Retry-After 2

backend {BACKEND}
    balance roundrobin
    option httpchk
    http-check send meth GET uri /readyz ver HTTP/1.1 hdr Host haproxy-check
    http-check expect status 200
    http-response set-header X-Served-By %s
    default-server check inter {inter}ms fastinter {inter}ms downinter {inter}ms rise {rise} fall {fall}
{lines}"#,
        socket = socket.display(),
        UNAVAILABLE = unavailable_body().replace('"', "\\\""),
        tunnel = ms(o.tunnel_timeout),
        check_timeout = ms(o.check_timeout),
        inter = ms(o.check_interval),
        rise = o.rise,
        fall = o.fall,
    )
}

impl Haproxy {
    /// Starts with `servers` servers in maintenance and no address
    /// ([`Haproxy::set_server`] puts each in service); returns once its
    /// port and runtime socket answer.
    pub async fn start(servers: usize, options: &HaproxyOptions) -> anyhow::Result<Haproxy> {
        let dir = std::env::temp_dir().join(format!(
            "frontdesk-haproxy-{}",
            uuid::Uuid::new_v4().simple()
        ));
        std::fs::create_dir_all(&dir)?;
        let port = free_port()?;
        let mut haproxy = Haproxy {
            dir,
            child: None,
            port,
            servers,
        };
        let text = config(port, servers, &haproxy.socket(), options);
        std::fs::write(haproxy.config_file(), text)?;
        let check = Command::new("haproxy")
            .args(["-c", "-q", "-f"])
            .arg(haproxy.config_file())
            .output()
            .context("cannot run haproxy: is it installed (scripts/setup)?")?;
        if !check.status.success() {
            bail!(
                "haproxy refuses its config: {}",
                String::from_utf8_lossy(&check.stderr)
            );
        }
        haproxy.launch().await?;
        Ok(haproxy)
    }

    /// Starts in front of `backends` (server `i` at `backends[i]`) and
    /// waits until every one is up.
    pub async fn in_front_of(
        backends: &[SocketAddr],
        options: &HaproxyOptions,
    ) -> anyhow::Result<Haproxy> {
        let haproxy = Haproxy::start(backends.len(), options).await?;
        for (i, addr) in backends.iter().enumerate() {
            haproxy.set_server(i, *addr).await?;
        }
        for i in 0..backends.len() {
            haproxy
                .wait_for_state(i, ServerState::Up, Duration::from_secs(10))
                .await?;
        }
        Ok(haproxy)
    }

    async fn launch(&mut self) -> anyhow::Result<()> {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.log())?;
        let child = Command::new("haproxy")
            .arg("-db")
            .arg("-f")
            .arg(self.config_file())
            .current_dir(&self.dir)
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log)
            .process_group(0)
            .spawn()
            .context("cannot start haproxy")?;
        self.child = Some(child);
        let ready = tokio::select! {
            ready = wait_for_port(self.port, Duration::from_secs(10)) => ready,
            exit = crate::process::exited(&mut self.child) => Err(anyhow::anyhow!("haproxy exited: {exit}")),
        };
        if let Err(e) = ready {
            self.kill();
            bail!("haproxy did not listen: {e}\n{}", self.log_text());
        }
        // The runtime socket comes up with the listeners; make sure.
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        while self.command("show info").await.is_err() {
            if tokio::time::Instant::now() > deadline {
                bail!(
                    "haproxy's runtime socket never answered\n{}",
                    self.log_text()
                );
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        Ok(())
    }

    /// `http://127.0.0.1:PORT`: where clients go.
    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// How many servers the backend has.
    pub fn servers(&self) -> usize {
        self.servers
    }

    /// Sends one runtime API command and returns HAProxy's answer (the
    /// socket answers one command per connection, then closes).
    pub async fn command(&self, command: &str) -> anyhow::Result<String> {
        let mut socket = tokio::net::UnixStream::connect(self.socket()).await?;
        socket.write_all(command.as_bytes()).await?;
        socket.write_all(b"\n").await?;
        let mut answer = String::new();
        tokio::time::timeout(Duration::from_secs(5), socket.read_to_string(&mut answer))
            .await
            .with_context(|| format!("haproxy did not answer {command:?}"))??;
        Ok(answer)
    }

    /// Sends a command that answers nothing on success.
    async fn command_ok(&self, command: &str) -> anyhow::Result<()> {
        let answer = self.command(command).await?;
        if !answer.trim().is_empty() {
            bail!("haproxy answered {command:?} with {answer:?}");
        }
        Ok(())
    }

    fn server(&self, i: usize) -> anyhow::Result<String> {
        if i >= self.servers {
            bail!("no server {i}: the backend has {}", self.servers);
        }
        Ok(format!("{BACKEND}/{}", server_name(i)))
    }

    /// Points server `i` at `addr` and puts it in service; it takes
    /// visitors once a check passes (see [`Haproxy::wait_for_state`]).
    pub async fn set_server(&self, i: usize, addr: SocketAddr) -> anyhow::Result<()> {
        let server = self.server(i)?;
        let answer = self
            .command(&format!(
                "set server {server} addr {} port {}",
                addr.ip(),
                addr.port()
            ))
            .await?;
        // It answers what changed, e.g. "IP changed from … to …".
        if !answer.contains("changed") && !answer.contains("no need to change") {
            bail!("haproxy did not take the address of {server}: {answer:?}");
        }
        self.set_state(i, "ready").await
    }

    /// Takes server `i` out at once (maintenance), as an admin would.
    pub async fn disable(&self, i: usize) -> anyhow::Result<()> {
        self.set_state(i, "maint").await
    }

    /// Puts server `i` back after [`Haproxy::disable`] or
    /// [`Haproxy::drain`] (checks decide from there).
    pub async fn enable(&self, i: usize) -> anyhow::Result<()> {
        self.set_state(i, "ready").await
    }

    /// Sends server `i` no new connections.
    pub async fn drain(&self, i: usize) -> anyhow::Result<()> {
        self.set_state(i, "drain").await
    }

    async fn set_state(&self, i: usize, state: &str) -> anyhow::Result<()> {
        let server = self.server(i)?;
        self.command_ok(&format!("set server {server} state {state}"))
            .await
    }

    /// Sets server `i`'s weight (0–256, 1 by default as configured
    /// servers have); 0 sends it nothing new.
    pub async fn set_weight(&self, i: usize, weight: u32) -> anyhow::Result<()> {
        let server = self.server(i)?;
        self.command_ok(&format!("set server {server} weight {weight}"))
            .await
    }

    /// What HAProxy says of every server, in order.
    pub async fn stats(&self) -> anyhow::Result<Vec<ServerStat>> {
        let csv = self.command("show stat").await?;
        let mut lines = csv.lines();
        let header: Vec<&str> = lines
            .next()
            .and_then(|h| h.strip_prefix("# "))
            .context("no header in show stat")?
            .split(',')
            .collect();
        let column = |name: &str| {
            header
                .iter()
                .position(|c| *c == name)
                .with_context(|| format!("no column {name} in show stat"))
        };
        let (px, sv, status, weight, stot) = (
            column("pxname")?,
            column("svname")?,
            column("status")?,
            column("weight")?,
            column("stot")?,
        );
        let mut found: Vec<Option<ServerStat>> = vec![None; self.servers];
        for line in lines {
            let fields: Vec<&str> = line.split(',').collect();
            if fields.get(px) != Some(&BACKEND) {
                continue;
            }
            let Some(i) = (0..self.servers).find(|i| fields.get(sv) == Some(&&*server_name(*i)))
            else {
                continue;
            };
            let field = |n: usize| fields.get(n).copied().unwrap_or_default();
            found[i] = Some(ServerStat {
                state: ServerState::parse(field(status)),
                status: field(status).to_owned(),
                weight: field(weight).parse().unwrap_or(0),
                sessions: field(stot).parse().unwrap_or(0),
            });
        }
        found
            .into_iter()
            .enumerate()
            .map(|(i, s)| s.with_context(|| format!("no server {} in show stat", server_name(i))))
            .collect()
    }

    /// Server `i`'s state now.
    pub async fn state(&self, i: usize) -> anyhow::Result<ServerState> {
        let mut stats = self.stats().await?;
        if i >= stats.len() {
            bail!("no server {i}");
        }
        Ok(stats.swap_remove(i).state)
    }

    /// Polls (HAProxy announces nothing) until server `i` is in `state`;
    /// returns how long that took.
    pub async fn wait_for_state(
        &self,
        i: usize,
        state: ServerState,
        within: Duration,
    ) -> anyhow::Result<Duration> {
        let started = tokio::time::Instant::now();
        loop {
            let now = self.state(i).await?;
            if now == state {
                return Ok(started.elapsed());
            }
            if started.elapsed() > within {
                bail!(
                    "{} is {now:?}, not {state:?}, after {within:?}",
                    server_name(i)
                );
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
    }

    /// The index of the server that answered, from its `X-Served-By`
    /// header (none when HAProxy answered itself, e.g. 503 with no server
    /// up).
    pub fn served_by(headers: &reqwest::header::HeaderMap) -> Option<usize> {
        headers
            .get(SERVED_BY)?
            .to_str()
            .ok()?
            .strip_prefix("node")?
            .parse()
            .ok()
    }

    /// HAProxy's log (one line per request, and every state change of a
    /// server, with the check that caused it).
    pub fn log(&self) -> PathBuf {
        self.dir.join("haproxy.log")
    }

    pub fn log_text(&self) -> String {
        std::fs::read_to_string(self.log()).unwrap_or_default()
    }

    /// The config file HAProxy read.
    pub fn config_file(&self) -> PathBuf {
        self.dir.join("haproxy.cfg")
    }

    fn socket(&self) -> PathBuf {
        self.dir.join("admin.sock")
    }

    /// Kills HAProxy.
    pub fn kill(&mut self) {
        if let Some(child) = self.child.take() {
            crate::process::kill_group(child);
        }
    }
}

impl Drop for Haproxy {
    fn drop(&mut self) {
        self.kill();
        if std::thread::panicking() {
            eprintln!("haproxy test directory kept: {}", self.dir.display());
        } else {
            let _ = std::fs::remove_dir_all(&self.dir);
        }
    }
}
