//! Start-up and figures shared by the benchmark binaries
//! (`frontdesk-load`, `frontdesk-compare`, `frontdesk-upload-bench`,
//! `frontdesk-sip-bench`):
//! the `frontdesk` binary built next to them, a `frontdesk serve` process
//! on a fresh database and data directory, the configuration of a gateway
//! bridged to a throwaway Prosody's agents, visitor messages sent at a
//! steady rate, and latency histograms with their one-line summary.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;

use crate::config::server_toml;
use crate::database::{DbEngine, TestDb};
use crate::gateway::GatewayProcess;
use crate::visitor::{Session, Visitor};
use crate::xmpp_server::{XmppServer, COMPONENT_DOMAIN, HOST};

/// A binary built next to the running one (same profile).
pub fn sibling_binary(name: &str) -> anyhow::Result<PathBuf> {
    let path = std::env::current_exe()?.with_file_name(name);
    anyhow::ensure!(
        path.exists(),
        "{} is missing: build it with the same profile (cargo build --release -p frontdesk)",
        path.display()
    );
    Ok(path)
}

/// A `frontdesk serve` process (the binary next to this one) on a fresh
/// database and data directory, both gone after [`BenchGateway::stop`].
pub struct BenchGateway {
    pub process: GatewayProcess,
    db: TestDb,
}

impl BenchGateway {
    /// Writes the configuration `config` makes for the new database (its
    /// URL and data directory) and starts the gateway on it.
    pub async fn start(
        engine: DbEngine,
        config: impl FnOnce(&TestDb) -> anyhow::Result<String>,
    ) -> anyhow::Result<BenchGateway> {
        let db = TestDb::create_on(engine).await?;
        let process = spawn_gateway(&db, &config(&db)?).await?;
        Ok(BenchGateway { process, db })
    }

    pub fn url(&self) -> &str {
        &self.process.url
    }

    /// The database and data directory it runs on.
    pub fn db(&self) -> &TestDb {
        &self.db
    }

    /// Kills the gateway and drops its database.
    pub async fn stop(self) -> anyhow::Result<()> {
        self.process.kill().await?;
        self.db.drop_db().await
    }
}

/// Starts `frontdesk serve` (the binary next to this one) with `config`,
/// written next to `db`'s data.
pub async fn spawn_gateway(db: &TestDb, config: &str) -> anyhow::Result<GatewayProcess> {
    let path = db.file("frontdesk.toml");
    std::fs::write(&path, config)?;
    GatewayProcess::spawn_binary(&sibling_binary("frontdesk")?, &path).await
}

/// The gateway configuration: the XMPP bridge to `prosody`, agents
/// 101… as its accounts `agent1`…, all in queue 600 behind channel
/// `channel`.
pub fn xmpp_bridge_toml(
    db: &TestDb,
    prosody: &XmppServer,
    agents: &[String],
    strategy: &str,
    max_chats: usize,
    channel: &str,
) -> String {
    let mut text = server_toml(&db.url(), db.data_dir());
    text.push_str(&format!(
        r#"
[xmpp]
domain = "{COMPONENT_DOMAIN}"
server = "{server}"
secret = "{secret}"
ping_interval_secs = 10
"#,
        server = prosody.component_addr(),
        secret = prosody.secret,
    ));
    let mut members = Vec::new();
    for (i, user) in agents.iter().enumerate() {
        let extension = 101 + i;
        text.push_str(&format!(
            "\n[[agents]]\nextension = \"{extension}\"\nname = \"Agent {user}\"\nxmpp = \"{user}@{HOST}\"\n"
        ));
        members.push(format!("{{ agent = \"{extension}\" }}"));
    }
    text.push_str(&format!(
        r#"
[[queues]]
extension = "600"
name = "Load"
strategy = "{strategy}"
max_chats_per_agent = {max_chats}
members = [{members}]

[[channels]]
key = "{channel}"
name = "Load test"
mode = "live"
queue = "600"
allowed_origins = ["http://allowed.example"]
"#,
        members = members.join(", "),
    ));
    text
}

/// Microseconds from 1 µs to a minute, three significant digits.
pub fn histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, 60_000_000, 3).expect("valid histogram bounds")
}

/// `p50 …  p95 …  p99 …  max …` in milliseconds, of a histogram in
/// microseconds.
pub fn percentiles(h: &Histogram<u64>) -> String {
    let ms = |us: u64| us as f64 / 1000.0;
    format!(
        "p50 {:.2}  p95 {:.2}  p99 {:.2}  max {:.2}",
        ms(h.value_at_quantile(0.50)),
        ms(h.value_at_quantile(0.95)),
        ms(h.value_at_quantile(0.99)),
        ms(h.max()),
    )
}

/// Posts `messages` visitor messages at `rate` per second; `message(i)`
/// gives the i-th one's `(client_id, body)` and `sent(i)` is called just
/// before its POST. Returns each POST's time to its 201, in order.
pub async fn post_paced(
    visitor: &Visitor,
    session: &Session,
    messages: usize,
    rate: f64,
    message: impl Fn(usize) -> (String, String),
    mut sent: impl FnMut(usize),
) -> anyhow::Result<Vec<Duration>> {
    let mut acks = Vec::with_capacity(messages);
    let mut tick = tokio::time::interval(Duration::from_secs_f64(1.0 / rate));
    for i in 0..messages {
        tick.tick().await;
        let (client_id, body) = message(i);
        sent(i);
        let start = Instant::now();
        let reply = visitor.say(session, &client_id, &body).await?;
        anyhow::ensure!(reply.status == 201, "message refused: {}", reply.body);
        acks.push(start.elapsed());
    }
    Ok(acks)
}

/// A process's `field` (e.g. `VmRSS`) from `/proc/PID/status`, in KiB.
pub fn proc_status_kib(pid: u32, field: &str) -> anyhow::Result<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    status
        .lines()
        .find_map(|line| line.strip_prefix(field)?.strip_prefix(':'))
        .and_then(|rest| rest.split_whitespace().next()?.parse().ok())
        .ok_or_else(|| anyhow::anyhow!("no {field} in /proc/{pid}/status"))
}

/// CPU time a process (all its threads) has used, user plus system:
/// `utime + stime` of `/proc/PID/stat`, in microseconds.
pub fn proc_cpu_micros(pid: u32) -> anyhow::Result<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))?;
    // The command name (field 2) is in parentheses and may hold spaces;
    // fields 3… follow the last `)`: utime and stime are fields 14 and 15.
    let rest = stat
        .rsplit_once(')')
        .map(|(_, rest)| rest)
        .ok_or_else(|| anyhow::anyhow!("unreadable /proc/{pid}/stat"))?;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let ticks = |i: usize| -> anyhow::Result<u64> {
        Ok(fields
            .get(i)
            .ok_or_else(|| anyhow::anyhow!("short /proc/{pid}/stat"))?
            .parse()?)
    };
    let total = ticks(11)? + ticks(12)?;
    Ok(total * 1_000_000 / clock_ticks_per_second())
}

/// The unit of `/proc/PID/stat` times, from `getconf CLK_TCK` (the
/// workspace forbids the `unsafe` a direct `sysconf` call needs); 100, the
/// Linux value in practice, if that cannot run.
pub fn clock_ticks_per_second() -> u64 {
    static TICKS: std::sync::OnceLock<u64> = std::sync::OnceLock::new();
    *TICKS.get_or_init(|| {
        std::process::Command::new("getconf")
            .arg("CLK_TCK")
            .output()
            .ok()
            .and_then(|out| String::from_utf8(out.stdout).ok())
            .and_then(|text| text.trim().parse().ok())
            .filter(|&t: &u64| t > 0)
            .unwrap_or(100)
    })
}
