//! `frontdesk-upload-bench`: how much memory concurrent uploads cost the
//! gateway (issue 5: 20 concurrent 5 MB uploads, target under 20 MB of
//! peak RSS growth).
//!
//! It starts a `frontdesk serve` process (the binary next to this one, so
//! build both with the same profile) on a fresh database and data
//! directory, opens one visitor conversation per concurrent upload, then
//! for each round: resets the kernel's peak-RSS mark (`/proc/PID/clear_refs`
//! ← 5), reads `VmRSS`, sends N uploads of S bytes at once through the real
//! multipart endpoint, and reads `VmHWM` (peak) and `VmRSS` again. A
//! sampler also polls `VmRSS` every 5 ms as a cross-check. The growth that
//! matters is peak − before: what the uploads cost while in flight. Later
//! rounds show whether memory comes back (no leak, no unbounded cache).
//! Linux only (procfs).

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use clap::Parser;
use frontdesk_tests::bench::BenchGateway;
use frontdesk_tests::config::test_config_toml;
use frontdesk_tests::database::DbEngine;
use frontdesk_tests::visitor::{Session, Visitor};

#[derive(Parser)]
#[command(about = "Peak RSS growth of the gateway under concurrent uploads")]
struct Args {
    /// Database engine of the spawned gateway.
    #[arg(long, value_enum, default_value = "sqlite")]
    engine: DbEngine,
    /// Concurrent uploads.
    #[arg(long, short = 'n', default_value_t = 20)]
    uploads: usize,
    /// Bytes per upload (default: the 5 MB limit, accepted exactly).
    #[arg(long, default_value_t = 5 * 1024 * 1024)]
    size: usize,
    /// Rounds of N concurrent uploads.
    #[arg(long, default_value_t = 3)]
    rounds: usize,
}

/// `VmRSS` / `VmHWM` of a process, in KiB.
fn status_kib(pid: u32, field: &str) -> anyhow::Result<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    status
        .lines()
        .find_map(|l| l.strip_prefix(field)?.strip_prefix(':'))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .with_context(|| format!("no {field} in /proc/{pid}/status"))
}

/// Resets the peak-RSS mark (`VmHWM`) to the current RSS.
fn reset_peak(pid: u32) -> anyhow::Result<()> {
    std::fs::write(format!("/proc/{pid}/clear_refs"), "5")
        .context("cannot reset the peak RSS mark (/proc/PID/clear_refs)")
}

fn mib(kib: u64) -> f64 {
    kib as f64 / 1024.0
}

/// A PDF-looking body (sniffed as a PDF, not denied) of `size` bytes,
/// leaked once so every upload streams the same bytes without copies.
fn payload(size: usize) -> &'static [u8] {
    let mut bytes = vec![0x20u8; size];
    let head = b"%PDF-1.4\n";
    bytes[..head.len().min(size)].copy_from_slice(&head[..head.len().min(size)]);
    for (i, b) in bytes.iter_mut().enumerate().skip(head.len()) {
        *b = b'a' + (i % 26) as u8;
    }
    Box::leak(bytes.into_boxed_slice())
}

async fn upload(
    http: &reqwest::Client,
    base: &str,
    session: &Session,
    body: &'static [u8],
) -> anyhow::Result<reqwest::StatusCode> {
    let part = reqwest::multipart::Part::stream_with_length(body, body.len() as u64)
        .file_name("bench.pdf");
    let form = reqwest::multipart::Form::new().part("file", part);
    let response = http
        .post(format!("{base}/api/v1/conversations/{}/files", session.id))
        .bearer_auth(&session.token)
        .multipart(form)
        .send()
        .await?;
    Ok(response.status())
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let gateway = BenchGateway::start(args.engine, |db| {
        Ok(test_config_toml(&db.url(), db.data_dir()))
    })
    .await?;
    let pid = gateway.process.pid().context("the gateway has no pid")?;
    let base = gateway.url().trim_end_matches('/').to_owned();

    let visitor = Visitor::new(&base);
    let mut sessions = Vec::new();
    for i in 0..args.uploads {
        sessions.push(visitor.start("live", &format!("Uploader {i}")).await?);
    }
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(120))
        .build()?;
    let body = payload(args.size);
    // One small upload first, so one-time allocations (file store folder,
    // pools, TLS-free HTTP/1 buffers) are not counted as upload cost.
    let warm = upload(&http, &base, &sessions[0], payload(1024)).await?;
    anyhow::ensure!(warm.is_success(), "warm-up upload failed: {warm}");

    println!(
        "gateway pid {pid} ({}), {} concurrent uploads of {} bytes, {} rounds",
        args.engine, args.uploads, args.size, args.rounds
    );
    println!(
        "{:>5} {:>12} {:>12} {:>12} {:>14} {:>12} {:>9} {:>7}",
        "round",
        "RSS before",
        "peak (HWM)",
        "sampled max",
        "peak − before",
        "RSS after",
        "time",
        "ok"
    );
    let started_rss = status_kib(pid, "VmRSS")?;
    let mut worst_growth = 0;
    for round in 1..=args.rounds {
        reset_peak(pid)?;
        let before = status_kib(pid, "VmRSS")?;
        let sampled = Arc::new(AtomicU64::new(before));
        let stop = Arc::new(AtomicBool::new(false));
        let sampler = tokio::spawn({
            let (sampled, stop) = (sampled.clone(), stop.clone());
            async move {
                while !stop.load(Ordering::Relaxed) {
                    if let Ok(rss) = status_kib(pid, "VmRSS") {
                        sampled.fetch_max(rss, Ordering::Relaxed);
                    }
                    tokio::time::sleep(Duration::from_millis(5)).await;
                }
            }
        });
        let t0 = Instant::now();
        let tasks: Vec<_> = sessions
            .iter()
            .cloned()
            .map(|session| {
                let (http, base) = (http.clone(), base.clone());
                tokio::spawn(async move { upload(&http, &base, &session, body).await })
            })
            .collect();
        let mut ok = 0;
        for task in tasks {
            match task.await? {
                Ok(status) if status == reqwest::StatusCode::CREATED => ok += 1,
                Ok(status) => eprintln!("upload answered {status}"),
                Err(e) => eprintln!("upload failed: {e}"),
            }
        }
        let elapsed = t0.elapsed();
        stop.store(true, Ordering::Relaxed);
        sampler.await?;
        let peak = status_kib(pid, "VmHWM")?;
        let after = status_kib(pid, "VmRSS")?;
        let growth = peak.saturating_sub(before);
        worst_growth = worst_growth.max(growth);
        println!(
            "{round:>5} {:>9.1} MiB {:>8.1} MiB {:>8.1} MiB {:>10.1} MiB {:>8.1} MiB {:>7.2} s {:>3}/{}",
            mib(before),
            mib(peak),
            mib(sampled.load(Ordering::Relaxed)),
            mib(growth),
            mib(after),
            elapsed.as_secs_f64(),
            ok,
            args.uploads
        );
    }
    let end_rss = status_kib(pid, "VmRSS")?;
    println!(
        "worst peak growth {:.1} MiB; RSS {:.1} MiB before the first round, {:.1} MiB after the last",
        mib(worst_growth),
        mib(started_rss),
        mib(end_rss)
    );
    gateway.stop().await
}
