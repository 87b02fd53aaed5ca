//! `frontdesk-slowloris`: how fast the gateway sheds connections that send
//! a partial request head and stop (issue 12: 300 of them were all still
//! open after 40 s).
//!
//! It starts a `frontdesk serve` process (`--gateway`, else the binary next
//! to this one) with the given header read timeout,
//! opens N connections from 127.0.0.1 that each send half a request head,
//! and times when the gateway closes each one, from the moment the last
//! head was sent. Connections over `max_connections_per_ip` are closed at
//! once (`--per-ip`, default 1000 so all N wait for the timeout). It gives
//! up on a connection 5 s after the timeout and counts it as still open.

use std::time::{Duration, Instant};

use clap::Parser;
use frontdesk_tests::bench::sibling_binary;
use frontdesk_tests::config::test_config_toml;
use frontdesk_tests::database::{DbEngine, TestDb};
use frontdesk_tests::gateway::GatewayProcess;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

#[derive(Parser)]
#[command(about = "Time for the gateway to close partial-head connections")]
struct Args {
    /// Connections that stop mid-head.
    #[arg(long, short = 'n', default_value_t = 300)]
    connections: usize,
    /// `server.header_read_timeout_secs` of the spawned gateway.
    #[arg(long, default_value_t = 10)]
    timeout: u64,
    /// `server.max_connections_per_ip` of the spawned gateway.
    #[arg(long, default_value_t = 1000)]
    per_ip: usize,
    /// The `frontdesk` binary to start (e.g. target/release/frontdesk).
    #[arg(long)]
    gateway: Option<std::path::PathBuf>,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let db = TestDb::create_on(DbEngine::Sqlite).await?;
    let limits = format!(
        "header_read_timeout_secs = {}\nmax_connections_per_ip = {}\n",
        args.timeout, args.per_ip
    );
    let toml = test_config_toml(&db.url(), db.data_dir()).replacen(
        "max_connections_per_ip = 4096\n",
        &limits,
        1,
    );
    let config = db.file("frontdesk.toml");
    std::fs::write(&config, toml)?;
    let binary = match args.gateway {
        Some(path) => path,
        None => sibling_binary("frontdesk")?,
    };
    let gateway = GatewayProcess::spawn_binary(&binary, &config).await?;
    let addr = gateway
        .url
        .trim_start_matches("http://")
        .trim_end_matches('/');

    let mut connections = Vec::with_capacity(args.connections);
    for _ in 0..args.connections {
        let mut tcp = TcpStream::connect(addr).await?;
        tcp.write_all(b"GET /healthz HTTP/1.1\r\nHost: bench\r\nX-Slow: ")
            .await?;
        connections.push(tcp);
    }
    let sent = Instant::now();
    let give_up = Duration::from_secs(args.timeout + 5);
    let closes = connections.into_iter().map(|mut tcp| async move {
        let mut buf = [0u8; 1024];
        let closed = tokio::time::timeout(give_up, async {
            loop {
                match tcp.read(&mut buf).await {
                    Ok(0) | Err(_) => return,
                    Ok(_) => {}
                }
            }
        });
        closed.await.ok().map(|()| sent.elapsed())
    });
    let results = futures::future::join_all(closes).await;
    let mut times: Vec<Duration> = results.iter().flatten().copied().collect();
    times.sort();
    let still_open = results.len() - times.len();
    let timeout = Duration::from_secs(args.timeout);
    let early = times.iter().filter(|t| **t < timeout / 2).count();
    let in_window = (times.iter())
        .filter(|t| **t >= timeout / 2 && **t <= timeout + Duration::from_secs(1))
        .count();
    let at = |q: f64| {
        let i = ((times.len() as f64 - 1.0) * q).round() as usize;
        times.get(i).map_or(f64::NAN, Duration::as_secs_f64)
    };
    println!(
        "{} partial-head connections, header timeout {} s, per-address cap {}",
        args.connections, args.timeout, args.per_ip
    );
    println!(
        "closed at once (under half the timeout): {early}; closed within timeout + 1 s: {in_window}; \
         later: {}; still open after timeout + 5 s: {still_open}",
        times.len() - early - in_window
    );
    println!(
        "close time after the last head was sent: min {:.3} s, p50 {:.3} s, max {:.3} s",
        at(0.0),
        at(0.5),
        at(1.0)
    );
    gateway.kill().await?;
    db.drop_db().await
}
