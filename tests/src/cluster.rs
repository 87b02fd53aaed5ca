//! Several gateway nodes on one PostgreSQL database behind one HAProxy,
//! for the multi-node tests: N `frontdesk serve` children
//! ([`GatewayProcess`]), each on its own free loopback port and with its
//! own data directory ([`TestDb::sharing`]), all with the same
//! configuration ([`bridged_config_with`]'s: the test configuration, with
//! agents 101 and 102 on the XMPP server when the nodes connect as the
//! component to one throwaway ejabberd), one shared files directory and
//! signing key, the load
//! balancer's address as their public URL, and 127.0.0.1 as a trusted
//! proxy (HAProxy adds `X-Forwarded-For`); with [`ClusterOptions::sip`],
//! agent 103 is the SIP agent `sip:103@pbx.localhost` behind the `sip`
//! channel and node `i`'s user agent listens on the address the test
//! Kamailio's dispatcher has for node `i`. HAProxy ([`Haproxy`]) checks
//! each node's `/readyz` and balances round-robin; server `i` is node `i`.
//!
//! A test kills ([`Cluster::kill`], SIGKILL), stops ([`Cluster::terminate`],
//! SIGTERM) and starts again ([`Cluster::restart`], on the same data dir
//! and config, on a new port that HAProxy is told of) any node. Each node
//! answers `/healthz` with a `node_id`, new at every start;
//! [`Cluster::which_node`] reads it through HAProxy.
//!
//! Nodes start one after the other (each applies migrations, which
//! PostgreSQL serialises anyway). The database is dropped by
//! [`Cluster::stop`]; when a test fails before that, the nodes and
//! HAProxy are killed on drop and the database is left for `scripts/test`
//! to drop with the others.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::ExitStatus;
use std::time::Duration;

use anyhow::{bail, Context};
use frontdesk::config::{Config, XmppConnection};
use serde_json::Value;

use crate::chaos::{bridged_config_with, wait_for_xmpp_connected};
use crate::database::{postgres_admin_url, TestDb};
use crate::gateway::{frontdesk_binary, GatewayProcess};
use crate::haproxy::{Haproxy, HaproxyOptions, ServerState};
use crate::postgres::PgServer;
use crate::sip::SipPbx;
use crate::xmpp_server::XmppServer;

/// How long a node may take to stop after SIGTERM (the test
/// configuration's grace is 5 s).
const STOP_WITHIN: Duration = Duration::from_secs(20);
/// How long HAProxy may take to put a started node in service.
const ROUTED_WITHIN: Duration = Duration::from_secs(10);

/// A change to node `i`'s configuration.
type Adjust<'a> = Box<dyn Fn(usize, &mut Config) + 'a>;

/// What a [`Cluster`] is made of.
pub struct ClusterOptions<'a> {
    nodes: usize,
    xmpp: Option<&'a XmppServer>,
    xmpp_ping_interval: Option<Duration>,
    sip: Option<&'a SipPbx>,
    xmpp_connection: XmppConnection,
    postgres: Option<String>,
    haproxy: HaproxyOptions,
    adjust: Option<Adjust<'a>>,
}

impl<'a> ClusterOptions<'a> {
    /// `nodes` nodes, on a fresh database of the shared PostgreSQL test
    /// server (`FRONTDESK_TEST_PG`), no XMPP, HAProxy's defaults.
    pub fn new(nodes: usize) -> Self {
        Self {
            nodes,
            xmpp: None,
            xmpp_ping_interval: None,
            sip: None,
            xmpp_connection: XmppConnection::EveryNode,
            postgres: None,
            haproxy: HaproxyOptions::default(),
            adjust: None,
        }
    }

    /// Every node connects as the XMPP component to `server` (an ejabberd,
    /// which takes several connections for one component domain), with
    /// agents 101 and 102 at `101@localhost` and `102@localhost`;
    /// [`Cluster::start`] returns once every node is connected. With
    /// [`xmpp_connection`](Self::xmpp_connection) `one_node`, once the
    /// node holding the connection is.
    pub fn xmpp(mut self, server: &'a XmppServer) -> Self {
        self.xmpp = Some(server);
        self
    }

    /// Every node runs its SIP user agent behind `pbx`, which dispatches
    /// to one address per node ([`SipPbx::start_nodes`] with as many nodes),
    /// with agent 103 at `sip:103@pbx.localhost` in the `sip` channel's
    /// queue 601.
    pub fn sip(mut self, pbx: &'a SipPbx) -> Self {
        self.sip = Some(pbx);
        self
    }

    /// The nodes' `[xmpp] connection` (`every_node` unless set).
    pub fn xmpp_connection(mut self, connection: XmppConnection) -> Self {
        self.xmpp_connection = connection;
        self
    }

    /// How often each node pings the XMPP server (2 s unless set). With
    /// ejabberd, a node's ping is answered on whichever component
    /// connection ejabberd picks, often another node's, which hands the
    /// answer back through the database.
    pub fn xmpp_ping_interval(mut self, every: Duration) -> Self {
        self.xmpp_ping_interval = Some(every);
        self
    }

    /// The database on `server` (a throwaway PostgreSQL the test may
    /// stop) instead of the shared test server.
    pub fn postgres(mut self, server: &PgServer) -> Self {
        self.postgres = Some(server.url("postgres"));
        self
    }

    pub fn haproxy(mut self, options: HaproxyOptions) -> Self {
        self.haproxy = options;
        self
    }

    /// Changes node `i`'s configuration before it is written (once, at
    /// the first start; restarts reuse the file).
    pub fn adjust(mut self, adjust: impl Fn(usize, &mut Config) + 'a) -> Self {
        self.adjust = Some(Box::new(adjust));
        self
    }
}

/// One node: its data, its config file, and its process while it runs.
struct Node {
    db: TestDb,
    config: PathBuf,
    process: Option<GatewayProcess>,
    /// The URL and `/healthz` id of its latest process.
    url: String,
    node_id: String,
}

/// N gateway nodes behind HAProxy.
pub struct Cluster {
    // Fields drop in order: the nodes (killed), HAProxy, then the
    // database owner's directory (the shared files).
    nodes: Vec<Node>,
    haproxy: Haproxy,
    db: Option<TestDb>,
    xmpp: Option<XmppConnection>,
    http: reqwest::Client,
}

impl Cluster {
    /// Starts HAProxy, then each node, and returns once HAProxy routes to
    /// every node (and, with XMPP, every node's component is connected).
    pub async fn start(options: ClusterOptions<'_>) -> anyhow::Result<Cluster> {
        anyhow::ensure!(options.nodes > 0, "a cluster needs a node");
        let admin_url = options.postgres.clone().unwrap_or_else(postgres_admin_url);
        let db = TestDb::create_on_server(&admin_url).await?;
        let files = db.file("shared-files");
        std::fs::create_dir_all(&files)?;
        let signing_key = format!(
            "{}{}",
            uuid::Uuid::new_v4().simple(),
            uuid::Uuid::new_v4().simple()
        );
        let haproxy = Haproxy::start(options.nodes, &options.haproxy).await?;
        let mut nodes = Vec::with_capacity(options.nodes);
        for i in 0..options.nodes {
            let node_db = db.sharing()?;
            let text = node_config(&options, i, &node_db, &files, &haproxy.url(), &signing_key)?;
            let config = node_db.file("frontdesk.toml");
            std::fs::write(&config, text)?;
            nodes.push(Node {
                db: node_db,
                config,
                process: None,
                url: String::new(),
                node_id: String::new(),
            });
        }
        let mut cluster = Cluster {
            nodes,
            haproxy,
            db: Some(db),
            xmpp: options.xmpp.map(|_| options.xmpp_connection),
            http: reqwest::Client::builder()
                .timeout(Duration::from_secs(10))
                .build()?,
        };
        for i in 0..options.nodes {
            cluster.start_node(i).await?;
        }
        Ok(cluster)
    }

    /// Starts node `i`'s process on its config and data, learns its id,
    /// points HAProxy's server `i` at it and waits until it is routed to.
    async fn start_node(&mut self, i: usize) -> anyhow::Result<()> {
        let node = &mut self.nodes[i];
        anyhow::ensure!(node.process.is_none(), "node {i} already runs");
        let process = GatewayProcess::spawn(&node.config)
            .await
            .with_context(|| format!("node {i} did not start"))?;
        let addr: SocketAddr = process
            .url
            .strip_prefix("http://")
            .and_then(|a| a.parse().ok())
            .with_context(|| format!("node {i} listens on {}", process.url))?;
        let (status, body) = get_json(&self.http, &format!("{}/healthz", process.url)).await?;
        anyhow::ensure!(status.is_success(), "node {i}'s /healthz: {status}");
        node.node_id = body["node_id"]
            .as_str()
            .context("no node_id in /healthz")?
            .to_owned();
        node.url = process.url.clone();
        node.process = Some(process);
        self.haproxy.set_server(i, addr).await?;
        self.wait_until_routed(i, ROUTED_WITHIN).await?;
        match self.xmpp {
            Some(XmppConnection::EveryNode) => {
                wait_for_xmpp_connected(&self.nodes[i].url, true).await;
            }
            Some(XmppConnection::OneNode) => {
                // The node's bridge runs (it reports its connection, 0 on
                // standby), and some node holds the connection.
                let deadline = tokio::time::Instant::now() + ROUTED_WITHIN;
                while self.xmpp_connected(i).await.is_none() {
                    if tokio::time::Instant::now() > deadline {
                        bail!("node {i}'s XMPP bridge never reported");
                    }
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
                self.xmpp_holder_within(ROUTED_WITHIN * 2).await?;
            }
            None => {}
        }
        Ok(())
    }

    /// The running node whose component is connected (`one_node`: the
    /// holder), once there is one, within `within`.
    pub async fn xmpp_holder_within(&self, within: Duration) -> anyhow::Result<usize> {
        let deadline = tokio::time::Instant::now() + within;
        loop {
            for i in 0..self.nodes.len() {
                if self.is_running(i) && self.xmpp_connected(i).await == Some(true) {
                    return Ok(i);
                }
            }
            if tokio::time::Instant::now() > deadline {
                bail!("no node connected to the XMPP server within {within:?}");
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Node `i`'s `frontdesk_xmpp_connected` (`None`: no answer).
    pub async fn xmpp_connected(&self, i: usize) -> Option<bool> {
        self.metric(i, "frontdesk_xmpp_connected")
            .await
            .map(|v| v == 1.0)
    }

    /// A metric of node `i`'s `/metrics` (the line `NAME VALUE`, exactly).
    pub async fn metric(&self, i: usize, name: &str) -> Option<f64> {
        let text = self
            .http
            .get(format!("{}/metrics", self.nodes[i].url))
            .send()
            .await
            .ok()?
            .text()
            .await
            .ok()?;
        text.lines()
            .find_map(|l| l.strip_prefix(name)?.strip_prefix(' '))
            .and_then(|v| v.trim().parse().ok())
    }

    /// How many nodes (running or not).
    pub fn len(&self) -> usize {
        self.nodes.len()
    }

    pub fn is_empty(&self) -> bool {
        self.nodes.is_empty()
    }

    /// HAProxy's URL: where visitors, agents' links and the console go.
    pub fn url(&self) -> String {
        self.haproxy.url()
    }

    pub fn haproxy(&self) -> &Haproxy {
        &self.haproxy
    }

    /// Node `i`'s own URL (of its latest process: it changes at each
    /// restart, and names a dead port while the node is down).
    pub fn node_url(&self, i: usize) -> &str {
        &self.nodes[i].url
    }

    /// Node `i`'s `/healthz` id (of its latest process).
    pub fn node_id(&self, i: usize) -> &str {
        &self.nodes[i].node_id
    }

    /// Which node's latest process has `node_id`.
    pub fn node_with_id(&self, node_id: &str) -> Option<usize> {
        self.nodes.iter().position(|n| n.node_id == node_id)
    }

    /// Whether node `i`'s process runs (as far as the harness knows: it
    /// was started and not yet killed or stopped).
    pub fn is_running(&self, i: usize) -> bool {
        self.nodes[i].process.is_some()
    }

    /// Node `i`'s config file (for `frontdesk --config … <command>`).
    pub fn config_file(&self, i: usize) -> &Path {
        &self.nodes[i].config
    }

    /// Node `i`'s own data directory.
    pub fn data_dir(&self, i: usize) -> &Path {
        self.nodes[i].db.data_dir()
    }

    /// The files directory every node shares.
    pub fn files_dir(&self) -> PathBuf {
        self.owner().file("shared-files")
    }

    /// The URL of the database every node shares.
    pub fn database_url(&self) -> String {
        self.owner().url()
    }

    fn owner(&self) -> &TestDb {
        self.db.as_ref().expect("the cluster owns its database")
    }

    /// `GET /healthz` through HAProxy; the node that answered, after
    /// checking that HAProxy's `X-Served-By` and the node's `node_id`
    /// name the same one.
    pub async fn which_node(&self) -> anyhow::Result<usize> {
        let reply = self
            .http
            .get(format!("{}/healthz", self.url()))
            .send()
            .await?;
        let status = reply.status();
        let served_by = Haproxy::served_by(reply.headers());
        let body: Value = reply.json().await.unwrap_or(Value::Null);
        anyhow::ensure!(status.is_success(), "/healthz through HAProxy: {status}");
        let id = body["node_id"].as_str().context("no node_id in /healthz")?;
        let node = self
            .node_with_id(id)
            .with_context(|| format!("node_id {id} is no node's"))?;
        if served_by != Some(node) {
            bail!("HAProxy says {served_by:?} answered, the node_id says {node}");
        }
        Ok(node)
    }

    /// SIGKILLs node `i` (HAProxy is not told: its checks find out).
    pub async fn kill(&mut self, i: usize) -> anyhow::Result<()> {
        let process = self.nodes[i]
            .process
            .take()
            .with_context(|| format!("node {i} does not run"))?;
        process.kill().await
    }

    /// SIGTERMs node `i` and waits for it to exit (HAProxy's checks find
    /// out as it drains).
    pub async fn terminate(&mut self, i: usize) -> anyhow::Result<ExitStatus> {
        let process = self.nodes[i]
            .process
            .take()
            .with_context(|| format!("node {i} does not run"))?;
        process.terminate(STOP_WITHIN).await
    }

    /// Starts node `i` again on its data and config (SIGTERM and wait
    /// first if it runs), on a new port; returns once HAProxy routes to
    /// it (and its component is connected, with XMPP).
    pub async fn restart(&mut self, i: usize) -> anyhow::Result<()> {
        if self.is_running(i) {
            self.terminate(i).await?;
        }
        self.start_node(i).await
    }

    /// Waits until HAProxy has node `i` in service; how long that took.
    pub async fn wait_until_routed(&self, i: usize, within: Duration) -> anyhow::Result<Duration> {
        self.haproxy
            .wait_for_state(i, ServerState::Up, within)
            .await
    }

    /// Waits until HAProxy has taken node `i` out for failing its checks;
    /// how long that took.
    pub async fn wait_until_out(&self, i: usize, within: Duration) -> anyhow::Result<Duration> {
        self.haproxy
            .wait_for_state(i, ServerState::Down, within)
            .await
    }

    /// Makes a console account with `frontdesk admin create-user` (the
    /// database is shared: any node's session works on all of them).
    pub async fn create_admin(
        &self,
        username: &str,
        role: &str,
        password: &str,
    ) -> anyhow::Result<()> {
        let out = tokio::process::Command::new(frontdesk_binary())
            .arg("--config")
            .arg(self.config_file(0))
            .args([
                "admin",
                "create-user",
                "--username",
                username,
                "--role",
                role,
            ])
            .env("FRONTDESK_ADMIN_PASSWORD", password)
            .env("RUST_LOG", "warn")
            .stdin(std::process::Stdio::null())
            .output()
            .await?;
        anyhow::ensure!(
            out.status.success(),
            "frontdesk admin create-user {username}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        Ok(())
    }

    /// Stops every running node (SIGTERM; each must exit cleanly), then
    /// HAProxy, and drops the database.
    pub async fn stop(mut self) -> anyhow::Result<()> {
        for i in 0..self.nodes.len() {
            if self.is_running(i) {
                let status = self.terminate(i).await?;
                anyhow::ensure!(status.success(), "node {i} exited with {status}");
            }
        }
        self.haproxy.kill();
        let db = self.db.take().expect("the cluster owns its database");
        db.drop_db().await
    }
}

/// Node `i`'s configuration as TOML: the test (or XMPP-bridged)
/// configuration on its own data dir, the shared files and signing key,
/// HAProxy as its public URL and trusted proxy, then the test's changes.
fn node_config(
    options: &ClusterOptions<'_>,
    i: usize,
    db: &TestDb,
    files: &Path,
    public_url: &str,
    signing_key: &str,
) -> anyhow::Result<String> {
    let public_url: url::Url = public_url.parse()?;
    let proxy: frontdesk::config::Cidr = "127.0.0.1".parse().map_err(anyhow::Error::msg)?;
    let text = bridged_config_with(db, options.xmpp, options.sip, |config| {
        if let Some(pbx) = options.sip {
            config.sip = Some(pbx.node_bridge_config(i));
        }
        config.server.public_url = Some(public_url);
        config.server.trusted_proxies = vec![proxy];
        config.files.directory = Some(files.to_owned());
        config.cluster.enabled = true;
        // HAProxy checks every 250 ms and takes a node out after 2 fails.
        config.cluster.drain_ms = 1000;
        if let Some(adjust) = &options.adjust {
            adjust(i, config);
        }
    });
    // Secrets serialise as "[redacted]": the key is set in the TOML (as
    // the XMPP secret was, by hand).
    let mut table: toml::Table = text.parse()?;
    let section = table
        .entry("files")
        .or_insert_with(|| toml::Value::Table(toml::Table::new()));
    let Some(section) = section.as_table_mut() else {
        bail!("[files] is not a table");
    };
    section.insert(
        "signing_key".to_owned(),
        toml::Value::String(signing_key.to_owned()),
    );
    if let Some(every) = options.xmpp_ping_interval {
        if let Some(xmpp) = table.get_mut("xmpp").and_then(toml::Value::as_table_mut) {
            let secs = i64::try_from(every.as_secs().max(1))?;
            xmpp.insert("ping_interval_secs".to_owned(), toml::Value::Integer(secs));
        }
    }
    if let Some(xmpp) = table.get_mut("xmpp").and_then(toml::Value::as_table_mut) {
        xmpp.insert(
            "connection".to_owned(),
            toml::Value::String(options.xmpp_connection.as_str().to_owned()),
        );
    }
    Ok(toml::to_string(&table)?)
}

async fn get_json(
    http: &reqwest::Client,
    url: &str,
) -> anyhow::Result<(reqwest::StatusCode, Value)> {
    let reply = http.get(url).send().await?;
    let status = reply.status();
    Ok((status, reply.json().await.unwrap_or(Value::Null)))
}
