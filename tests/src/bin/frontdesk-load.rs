//! `frontdesk-load`: opens N visitor conversations over the real API and
//! WebSocket, sends M messages in each at a set rate, and prints
//! throughput and latency percentiles:
//! - ack: POST of a message until its 201 (the message is committed);
//! - echo: POST start until the message event arrives on the visitor's own
//!   WebSocket (commit, fan-out, delivery).
//!
//! With `--spawn sqlite|postgres` it starts a `frontdesk serve` process on
//! a fresh database first (the binary next to this one), so a benchmark is
//! one command. Figures go in docs/benchmarks.md.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::Context;
use clap::Parser;
use frontdesk_tests::config::test_config_toml;
use frontdesk_tests::database::TestDb;
use frontdesk_tests::gateway::GatewayProcess;
use frontdesk_tests::visitor::{StreamItem, Visitor};
use hdrhistogram::Histogram;

#[derive(Parser)]
#[command(about = "Load generator for the Frontdesk visitor API")]
struct Args {
    /// Gateway base URL (ignored with --spawn).
    #[arg(long, default_value = "http://127.0.0.1:8080")]
    url: String,
    /// Start a gateway process on a fresh database of this engine.
    #[arg(long, value_parser = ["sqlite", "postgres"])]
    spawn: Option<String>,
    /// Channel key to open conversations on.
    #[arg(long, default_value = "live")]
    channel: String,
    /// Concurrent visitor conversations.
    #[arg(long, short = 'n', default_value_t = 50)]
    conversations: usize,
    /// Messages per conversation.
    #[arg(long, short = 'm', default_value_t = 20)]
    messages: usize,
    /// Messages per second in each conversation.
    #[arg(long, default_value_t = 2.0)]
    rate: f64,
}

#[derive(Default)]
struct Figures {
    ack: Option<Histogram<u64>>,
    echo: Option<Histogram<u64>>,
    errors: u64,
}

fn histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, 60_000_000, 3).expect("valid histogram bounds")
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let mut spawned = None;
    let url = match &args.spawn {
        Some(engine) => {
            std::env::set_var("FRONTDESK_TEST_DB", engine);
            let db = TestDb::create().await?;
            let dir = tempfile::tempdir()?;
            let config = dir.path().join("frontdesk.toml");
            std::fs::write(&config, test_config_toml(&db.url()))?;
            let binary = sibling_binary("frontdesk")?;
            let gateway = GatewayProcess::spawn_binary(&binary, &config).await?;
            let url = gateway.url.clone();
            spawned = Some((gateway, db, dir));
            url
        }
        None => args.url.clone(),
    };
    println!(
        "frontdesk-load: {} conversations x {} messages at {}/s each against {url}",
        args.conversations, args.messages, args.rate
    );
    let figures = Arc::new(Mutex::new(Figures {
        ack: Some(histogram()),
        echo: Some(histogram()),
        errors: 0,
    }));
    let started = Instant::now();
    let mut tasks = Vec::new();
    for n in 0..args.conversations {
        let visitor = Visitor::new(&url);
        let figures = figures.clone();
        let channel = args.channel.clone();
        let (messages, rate) = (args.messages, args.rate);
        tasks.push(tokio::spawn(async move {
            if let Err(e) = one_visitor(&visitor, &channel, n, messages, rate, &figures).await {
                eprintln!("visitor {n}: {e:#}");
                figures.lock().expect("figures lock").errors += 1;
            }
        }));
    }
    for task in tasks {
        task.await?;
    }
    let elapsed = started.elapsed();
    let figures = std::mem::take(&mut *figures.lock().expect("figures lock"));
    let ack = figures.ack.as_ref().expect("ack histogram");
    let echo = figures.echo.as_ref().expect("echo histogram");
    println!(
        "messages acknowledged: {} in {:.2} s",
        ack.len(),
        elapsed.as_secs_f64()
    );
    println!(
        "throughput: {:.1} messages/s",
        ack.len() as f64 / elapsed.as_secs_f64()
    );
    for (name, h) in [("ack", ack), ("echo", echo)] {
        println!(
            "{name:>5} latency ms: p50 {:.2}  p95 {:.2}  p99 {:.2}  max {:.2}",
            h.value_at_quantile(0.50) as f64 / 1000.0,
            h.value_at_quantile(0.95) as f64 / 1000.0,
            h.value_at_quantile(0.99) as f64 / 1000.0,
            h.max() as f64 / 1000.0,
        );
    }
    println!("errors: {}", figures.errors);
    if let Some((gateway, db, _dir)) = spawned {
        gateway.kill().await?;
        db.drop_db().await?;
    }
    anyhow::ensure!(figures.errors == 0, "{} visitors failed", figures.errors);
    Ok(())
}

async fn one_visitor(
    visitor: &Visitor,
    channel: &str,
    n: usize,
    messages: usize,
    rate: f64,
    figures: &Mutex<Figures>,
) -> anyhow::Result<()> {
    let session = visitor.start(channel, &format!("Load visitor {n}")).await?;
    let mut events = visitor.events(&session, 0).await?;
    let sent_at: Arc<Mutex<HashMap<String, Instant>>> = Arc::default();
    // Read our own stream concurrently and time each message's echo.
    let reader = {
        let sent_at = sent_at.clone();
        async move {
            let mut echoed = Vec::with_capacity(messages);
            while echoed.len() < messages {
                match events.next_item(Duration::from_secs(30)).await? {
                    StreamItem::Event(event) if event["type"] == "message" => {
                        let client_id = event["message"]["client_id"].as_str().unwrap_or_default();
                        if let Some(at) = sent_at.lock().expect("sent lock").get(client_id) {
                            echoed.push(at.elapsed());
                        }
                    }
                    StreamItem::Event(_) => {}
                    StreamItem::Closed(code) => anyhow::bail!("stream closed ({code:?})"),
                }
            }
            events.close().await;
            Ok::<_, anyhow::Error>(echoed)
        }
    };
    let writer = async {
        let mut acks = Vec::with_capacity(messages);
        let mut tick = tokio::time::interval(Duration::from_secs_f64(1.0 / rate));
        for i in 0..messages {
            tick.tick().await;
            let client_id = format!("load-{n}-{i}");
            sent_at
                .lock()
                .expect("sent lock")
                .insert(client_id.clone(), Instant::now());
            let start = Instant::now();
            let reply = visitor
                .say(&session, &client_id, "load test message")
                .await?;
            anyhow::ensure!(reply.status == 201, "message refused: {}", reply.body);
            acks.push(start.elapsed());
        }
        Ok::<_, anyhow::Error>(acks)
    };
    let (acks, echoes) = tokio::try_join!(writer, reader).context("visitor run")?;
    let mut figures = figures.lock().expect("figures lock");
    for d in acks {
        figures
            .ack
            .as_mut()
            .expect("ack")
            .record(d.as_micros() as u64)?;
    }
    for d in echoes {
        figures
            .echo
            .as_mut()
            .expect("echo")
            .record(d.as_micros() as u64)?;
    }
    Ok(())
}

/// A binary built next to this one (same profile).
fn sibling_binary(name: &str) -> anyhow::Result<PathBuf> {
    let me = std::env::current_exe()?;
    let path = me.with_file_name(name);
    anyhow::ensure!(
        path.exists(),
        "{} is missing: build it with the same profile (cargo build --release -p frontdesk)",
        path.display()
    );
    Ok(path)
}
