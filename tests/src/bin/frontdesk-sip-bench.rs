//! `frontdesk-sip-bench`: visitor → SIP agent latency through the gateway
//! and a real Kamailio. Starts a throwaway Kamailio, a softphone agent
//! played by sipp (registered, answering 200), and a release `frontdesk
//! serve` with the SIP bridge on a fresh SQLite database; the agent takes a
//! chat, then the visitor sends M messages at a steady rate over the real
//! HTTP API. Latency is from the visitor's POST to the moment sipp received
//! the MESSAGE (the timestamp in its message trace; same machine, same
//! clock). Prints p50/p95/p99 and messages/s. Figures go in
//! docs/benchmarks.md.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::Context;
use clap::Parser;
use frontdesk_tests::config::test_config_toml;
use frontdesk_tests::database::TestDb;
use frontdesk_tests::gateway::GatewayProcess;
use frontdesk_tests::kamailio::{Kamailio, KamailioOptions, SippAgent, GATEWAY_DOMAIN};
use frontdesk_tests::net::free_udp_tcp_port;
use frontdesk_tests::visitor::Visitor;
use hdrhistogram::Histogram;

#[derive(Parser)]
#[command(about = "Visitor → SIP agent latency through the gateway and Kamailio")]
struct Args {
    /// Messages to send.
    #[arg(long, short = 'm', default_value_t = 200)]
    messages: usize,
    /// Messages per second.
    #[arg(long, default_value_t = 20.0)]
    rate: f64,
    /// Send over TCP between Kamailio and the agent (default UDP).
    #[arg(long)]
    tcp: bool,
}

fn now_micros() -> u128 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("after 1970")
        .as_micros()
}

/// sipp's trace separators carry the local wall-clock time of each message
/// (`----- 2026-11-25 18:24:43.980868`); this machine runs in UTC.
fn trace_receipts(trace: &str) -> HashMap<String, u128> {
    let mut receipts = HashMap::new();
    let mut stamp: Option<u128> = None;
    for line in trace.lines() {
        if let Some(rest) = line.strip_prefix("-----------------------------------------------") {
            stamp = chrono::NaiveDateTime::parse_from_str(rest.trim(), "%Y-%m-%d %H:%M:%S%.f")
                .ok()
                .map(|t| t.and_utc().timestamp_micros() as u128);
        } else if let (Some(at), Some(start)) = (stamp, line.find("sipbench-")) {
            let token: String = line[start..]
                .chars()
                .take_while(|c| c.is_ascii_alphanumeric() || *c == '-')
                .collect();
            receipts.entry(token).or_insert(at);
        }
    }
    receipts
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    std::env::set_var("FRONTDESK_TEST_DB", "sqlite");
    let sip_addr: SocketAddr = format!("127.0.0.1:{}", free_udp_tcp_port()?).parse()?;
    let kamailio = Kamailio::start(KamailioOptions::new(sip_addr)).await?;
    let agent = SippAgent::start(&kamailio, "103", args.tcp).await?;
    let db = TestDb::create().await?;
    let dir = tempfile::tempdir()?;
    let config = test_config_toml(&db.url(), db.data_dir())
        .replace("sip:103@pbx.example.com", "sip:103@pbx.localhost")
        .replace(
            "key = \"live\"\nname = \"Acme Plumbing\"\nmode = \"live\"\nqueue = \"600\"",
            "key = \"live\"\nname = \"Acme Plumbing\"\nmode = \"live\"\nqueue = \"601\"",
        );
    let config = format!(
        "{config}\n[sip]\ndomain = \"{GATEWAY_DOMAIN}\"\nlisten_udp = \"{sip_addr}\"\nlisten_tcp = \"{sip_addr}\"\noutbound_proxy = \"{}\"\nprobe_interval_secs = 1\n",
        kamailio.addr()
    );
    let config_path = dir.path().join("frontdesk.toml");
    std::fs::write(&config_path, config)?;
    let binary = std::env::current_exe()?.with_file_name("frontdesk");
    anyhow::ensure!(
        binary.exists(),
        "{} is missing: cargo build --release -p frontdesk",
        binary.display()
    );
    let gateway = GatewayProcess::spawn_binary(&binary, &config_path).await?;

    // A visitor arrives; the agent gets the offer and takes the chat.
    let visitor = Visitor::new(&gateway.url);
    let session = visitor.start("live", "Load visitor").await?;
    let id: uuid::Uuid = session.id.parse()?;
    let visitor_uri = format!("sip:visitor-{}@{GATEWAY_DOMAIN}", id.simple());
    agent
        .wait_for(&["New chat waiting"], Duration::from_secs(30))
        .await
        .context("the agent never got the offer")?;
    let status = agent
        .send_message(&visitor_uri, "text/plain", "taking it")
        .await?;
    anyhow::ensure!(status == 200, "the agent's reply got {status}");

    println!(
        "frontdesk-sip-bench: {} messages at {}/s, Kamailio→agent over {}",
        args.messages,
        args.rate,
        if args.tcp { "TCP" } else { "UDP" }
    );
    let mut sent = HashMap::new();
    let mut tick = tokio::time::interval(Duration::from_secs_f64(1.0 / args.rate));
    let started = Instant::now();
    for i in 0..args.messages {
        tick.tick().await;
        let token = format!("sipbench-{i}");
        sent.insert(token.clone(), now_micros());
        let reply = visitor.say(&session, &token, &token).await?;
        anyhow::ensure!(reply.status == 201, "message refused: {}", reply.body);
    }
    let last = format!("sipbench-{}", args.messages - 1);
    agent
        .wait_for(&[last.as_str()], Duration::from_secs(60))
        .await
        .context("the last message never reached the agent")?;
    let elapsed = started.elapsed();

    let receipts = trace_receipts(&agent.received());
    let mut latency = Histogram::<u64>::new_with_bounds(1, 60_000_000, 3)?;
    let mut missing = 0;
    for (token, at_send) in &sent {
        match receipts.get(token) {
            Some(at) => latency.record(at.saturating_sub(*at_send) as u64)?,
            None => missing += 1,
        }
    }
    println!(
        "delivered {} of {} in {:.2} s: {:.1} messages/s",
        latency.len(),
        args.messages,
        elapsed.as_secs_f64(),
        latency.len() as f64 / elapsed.as_secs_f64()
    );
    println!(
        "visitor→SIP agent latency ms: p50 {:.2}  p95 {:.2}  p99 {:.2}  max {:.2}",
        latency.value_at_quantile(0.50) as f64 / 1000.0,
        latency.value_at_quantile(0.95) as f64 / 1000.0,
        latency.value_at_quantile(0.99) as f64 / 1000.0,
        latency.max() as f64 / 1000.0,
    );
    println!("missing: {missing}");
    gateway.kill().await?;
    drop(agent);
    drop(kamailio);
    db.drop_db().await?;
    anyhow::ensure!(missing == 0, "{missing} messages never reached the agent");
    Ok(())
}
