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
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::Context;
use clap::Parser;
use frontdesk_tests::bench::{histogram, percentiles, post_paced, BenchGateway};
use frontdesk_tests::config::test_config;
use frontdesk_tests::database::DbEngine;
use frontdesk_tests::sip::{session_uri, SipPbx};
use frontdesk_tests::visitor::Visitor;

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
    let pbx = SipPbx::start().await?;
    let agent = pbx.agent("103", args.tcp).await?;
    let gateway = BenchGateway::start(DbEngine::Sqlite, |db| {
        let mut config = test_config(db);
        pbx.configure_gateway(&mut config);
        Ok(toml::to_string(&config)?)
    })
    .await?;

    // A visitor arrives; the agent gets the offer and takes the chat.
    let visitor = Visitor::new(gateway.url());
    let session = visitor.start("live", "Load visitor").await?;
    agent
        .wait_for(&["New chat waiting"], Duration::from_secs(30))
        .await
        .context("the agent never got the offer")?;
    let status = agent
        .send_message(&session_uri(&session), "text/plain", "taking it")
        .await?;
    anyhow::ensure!(status == 200, "the agent's reply got {status}");

    println!(
        "frontdesk-sip-bench: {} messages at {}/s, Kamailio→agent over {}",
        args.messages,
        args.rate,
        if args.tcp { "TCP" } else { "UDP" }
    );
    let token = |i: usize| format!("sipbench-{i}");
    let mut sent = HashMap::new();
    let started = Instant::now();
    post_paced(
        &visitor,
        &session,
        args.messages,
        args.rate,
        |i| (token(i), token(i)),
        |i| {
            sent.insert(token(i), now_micros());
        },
    )
    .await?;
    let last = token(args.messages - 1);
    agent
        .wait_for(&[last.as_str()], Duration::from_secs(60))
        .await
        .context("the last message never reached the agent")?;
    let elapsed = started.elapsed();

    let receipts = trace_receipts(&agent.received());
    let mut latency = histogram();
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
    println!("visitor→SIP agent latency ms: {}", percentiles(&latency));
    println!("missing: {missing}");
    gateway.stop().await?;
    drop(agent);
    drop(pbx);
    anyhow::ensure!(missing == 0, "{missing} messages never reached the agent");
    Ok(())
}
