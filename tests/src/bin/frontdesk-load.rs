//! `frontdesk-load`: opens N visitor conversations over the real API and
//! WebSocket, sends M messages in each at a set rate, and prints
//! throughput and latency percentiles:
//! - ack: POST of a message until its 201 (the message is committed);
//! - echo: POST start until the message event arrives on the visitor's own
//!   WebSocket (commit, fan-out, delivery).
//!
//! With `--spawn sqlite|postgres` it starts a `frontdesk serve` process on
//! a fresh database first (the binary next to this one), so a benchmark is
//! one command; `--spawn postgres --nodes N` starts N nodes on one database
//! behind HAProxy instead. Figures go in docs/benchmarks.md.
//!
//! With `--xmpp-agents K` (and `--spawn`) the conversations are answered by
//! K real XMPP clients in echo mode on a throwaway Prosody, through the
//! gateway's XMPP bridge, and the figures are visitor→agent, agent→visitor
//! and round-trip latency, next to Prosody's own client-to-client latency
//! measured in the same run (see [`xmpp_mode`]).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::Context;
use clap::Parser;
use frontdesk_tests::bench::{histogram, percentiles, post_paced, BenchGateway};
use frontdesk_tests::cluster::{Cluster, ClusterOptions};
use frontdesk_tests::config::test_config_toml;
use frontdesk_tests::database::DbEngine;
use frontdesk_tests::visitor::Visitor;
use hdrhistogram::Histogram;

#[derive(Parser)]
#[command(about = "Load generator for the Frontdesk visitor API")]
struct Args {
    /// Gateway base URL (ignored with --spawn).
    #[arg(long, default_value = "http://127.0.0.1:8080")]
    url: String,
    /// Start a gateway process on a fresh database of this engine.
    #[arg(long, value_enum)]
    spawn: Option<DbEngine>,
    /// With `--spawn postgres`: start this many gateway nodes on the one
    /// database, behind HAProxy, and load them through it (visitors'
    /// requests and WebSockets land on any node).
    #[arg(long, default_value_t = 1)]
    nodes: usize,
    /// Channel key to open conversations on.
    #[arg(long, default_value = "live")]
    channel: String,
    /// Concurrent visitor conversations [default: 50, or 20 with
    /// --xmpp-agents].
    #[arg(long, short = 'n')]
    conversations: Option<usize>,
    /// Messages per conversation.
    #[arg(long, short = 'm', default_value_t = 20)]
    messages: usize,
    /// Messages per second in each conversation.
    #[arg(long, default_value_t = 2.0)]
    rate: f64,
    /// Answer the conversations with K scripted XMPP agents (echo mode) on
    /// a throwaway Prosody, through the XMPP bridge; needs --spawn.
    #[arg(long, value_name = "K")]
    xmpp_agents: Option<usize>,
    /// Queue strategy of the XMPP agents' queue.
    #[arg(long, default_value = "rrmemory", value_parser = ["rrmemory", "ringall"])]
    strategy: String,
    /// Messages per second between the two plain Prosody accounts that
    /// measure Prosody's own client-to-client latency (with --xmpp-agents).
    #[arg(long, default_value_t = 10.0)]
    probe_rate: f64,
    /// Run Prosody with `network_settings = { nagle = false }` (TCP_NODELAY
    /// on its sockets) instead of its default, Nagle on.
    #[arg(long)]
    prosody_no_nagle: bool,
}

impl Args {
    fn conversations(&self) -> usize {
        self.conversations
            .unwrap_or(if self.xmpp_agents.is_some() { 20 } else { 50 })
    }
}

#[derive(Default)]
struct Figures {
    ack: Option<Histogram<u64>>,
    echo: Option<Histogram<u64>>,
    errors: u64,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    match args.xmpp_agents {
        Some(agents) => xmpp_mode::run(&args, agents).await,
        None => run_plain(&args).await,
    }
}

/// What `--spawn` started: one gateway, or several behind HAProxy.
enum Spawned {
    One(Box<BenchGateway>),
    Cluster(Box<Cluster>),
}

async fn run_plain(args: &Args) -> anyhow::Result<()> {
    let spawned = match (args.spawn, args.nodes) {
        (Some(DbEngine::Postgres), nodes) if nodes > 1 => {
            let cluster = Cluster::start(ClusterOptions::new(nodes)).await?;
            Some(Spawned::Cluster(Box::new(cluster)))
        }
        (_, nodes) if nodes > 1 => anyhow::bail!("--nodes needs --spawn postgres"),
        (Some(engine), _) => Some(Spawned::One(Box::new(
            BenchGateway::start(engine, |db| Ok(test_config_toml(&db.url(), db.data_dir())))
                .await?,
        ))),
        (None, _) => None,
    };
    let url = match &spawned {
        Some(Spawned::One(gateway)) => gateway.url().to_owned(),
        Some(Spawned::Cluster(cluster)) => cluster.url(),
        None => args.url.clone(),
    };
    println!(
        "frontdesk-load: {} conversations x {} messages at {}/s each against {url}",
        args.conversations(),
        args.messages,
        args.rate
    );
    let figures = Arc::new(Mutex::new(Figures {
        ack: Some(histogram()),
        echo: Some(histogram()),
        errors: 0,
    }));
    let started = Instant::now();
    let mut tasks = Vec::new();
    for n in 0..args.conversations() {
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
        println!("{name:>5} latency ms: {}", percentiles(h));
    }
    println!("errors: {}", figures.errors);
    match spawned {
        Some(Spawned::One(gateway)) => gateway.stop().await?,
        Some(Spawned::Cluster(cluster)) => cluster.stop().await?,
        None => {}
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
                let event = events
                    .next_matching(Duration::from_secs(30), |e| e["type"] == "message")
                    .await?;
                let client_id = event["message"]["client_id"].as_str().unwrap_or_default();
                if let Some(at) = sent_at.lock().expect("sent lock").get(client_id) {
                    echoed.push(at.elapsed());
                }
            }
            events.close().await;
            Ok::<_, anyhow::Error>(echoed)
        }
    };
    let client_id = |i: usize| format!("load-{n}-{i}");
    let writer = post_paced(
        visitor,
        &session,
        messages,
        rate,
        |i| (client_id(i), "load test message".to_owned()),
        |i| {
            sent_at
                .lock()
                .expect("sent lock")
                .insert(client_id(i), Instant::now());
        },
    );
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

/// Visitor ↔ XMPP agent latency through gateway + Prosody (issue 7).
///
/// Each conversation is taken by one of K echo agents (the agent echoes
/// the offer card, and its first reply takes the chat); only once the
/// visitor saw `agent_joined` does the timed part start. Every timed
/// message carries a unique token in its body, so the three points of its
/// trip can be matched: the visitor's POST start (wall clock here), the
/// agent client's receive time (`ts`, wall clock in the agent script) and
/// the echo's arrival on the visitor's WebSocket (wall clock here). All run
/// on one machine, so the wall clocks are the same clock.
///
/// Alongside, two plain accounts of the same Prosody (no gateway involved)
/// exchange timestamped messages, one of them in echo mode: Prosody's own
/// client-to-client latency under the same load, measured the same way.
mod xmpp_mode {
    use std::collections::HashMap;
    use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

    use anyhow::Context;
    use frontdesk_tests::bench::{
        histogram, percentiles, post_paced, spawn_gateway, xmpp_bridge_toml,
    };
    use frontdesk_tests::database::TestDb;
    use frontdesk_tests::visitor::Visitor;
    use frontdesk_tests::xmpp_server::{Account, XmppAgent, XmppServer};
    use hdrhistogram::Histogram;
    use serde_json::{json, Value};
    use tokio::task::JoinHandle;
    use tokio_util::sync::CancellationToken;

    use super::Args;

    /// Every timed body starts with this, so offer cards and notices are
    /// never mistaken for a sample.
    const TOKEN_MARK: &str = "load ";
    /// What the echo agents put before the body they answer.
    const ECHO_PREFIX: &str = "echo: ";
    const PROBE_SENDER: &str = "probesender";
    const PROBE_ECHO: &str = "probeecho";
    /// How long a visitor waits for any one event.
    const EVENT_WAIT: Duration = Duration::from_secs(30);
    /// After the load, how long the readers keep draining events already
    /// on their way.
    const DRAIN_IDLE: Duration = Duration::from_millis(500);

    /// Seconds since the Unix epoch, as the agent script's `ts`.
    fn wall_now() -> f64 {
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .expect("the clock is after 1970")
            .as_secs_f64()
    }

    /// One timed visitor message.
    struct VisitorSample {
        token: String,
        /// Wall clock at POST start.
        sent: f64,
        ack: Duration,
        /// Wall clock at the echo's arrival on the WebSocket.
        echoed: f64,
        round_trip: Duration,
    }

    /// Token → wall-clock receive time reported by an agent client.
    type Arrivals = HashMap<String, f64>;

    fn is_chat_message(event: &Value) -> bool {
        event["event"] == "message" && event["type"] == "chat" && event["body"].is_string()
    }

    /// Notes a timed message (or its echo) an agent client received.
    fn note(arrivals: &mut Arrivals, event: &Value) {
        let body = event["body"].as_str().unwrap_or_default();
        let body = body.strip_prefix(ECHO_PREFIX).unwrap_or(body);
        if let (true, Some(ts)) = (body.starts_with(TOKEN_MARK), event["ts"].as_f64()) {
            arrivals.entry(body.to_owned()).or_insert(ts);
        }
    }

    /// Reads an agent client's events until `stop`, then drains what is
    /// already on its way; the client is killed when the task ends.
    fn record_arrivals(
        mut agent: XmppAgent,
        stop: CancellationToken,
    ) -> JoinHandle<anyhow::Result<Arrivals>> {
        tokio::spawn(async move {
            let mut arrivals = Arrivals::new();
            loop {
                let event = tokio::select! {
                    _ = stop.cancelled() => break,
                    event = agent.expect(Duration::from_secs(3600), is_chat_message) => event?,
                };
                note(&mut arrivals, &event);
            }
            while let Ok(event) = agent.expect(DRAIN_IDLE, is_chat_message).await {
                note(&mut arrivals, &event);
            }
            Ok(arrivals)
        })
    }

    /// Restarts `prosody` with Nagle's algorithm off on its sockets. The
    /// harness has no setting for it, so this prepends the global option to
    /// the config it generated (kept next to its log) before any client or
    /// the gateway connected.
    async fn disable_nagle(prosody: &mut XmppServer) -> anyhow::Result<()> {
        let config = prosody.config_file();
        let text = std::fs::read_to_string(&config)
            .with_context(|| format!("cannot read {}", config.display()))?;
        std::fs::write(
            &config,
            format!("network_settings = {{ nagle = false }}\n{text}"),
        )?;
        prosody.restart().await
    }

    /// Runs the whole measurement; every process it starts is gone when it
    /// returns, error or not.
    pub async fn run(args: &Args, agents: usize) -> anyhow::Result<()> {
        anyhow::ensure!(agents > 0, "--xmpp-agents needs at least one agent");
        let engine = args
            .spawn
            .context("--xmpp-agents needs --spawn sqlite|postgres")?;
        let db = TestDb::create_on(engine).await?;
        let result = run_on(args, agents, &db).await;
        db.drop_db().await?;
        result
    }

    async fn run_on(args: &Args, agents: usize, db: &TestDb) -> anyhow::Result<()> {
        let conversations = args.conversations();
        let users: Vec<String> = (1..=agents).map(|i| format!("agent{i}")).collect();
        let mut accounts: Vec<Account> = users
            .iter()
            .map(|u| Account::new(u).preapproved())
            .collect();
        accounts.push(Account::new(PROBE_SENDER));
        accounts.push(Account::new(PROBE_ECHO));
        let mut prosody = XmppServer::prosody(&accounts).await?;
        if args.prosody_no_nagle {
            disable_nagle(&mut prosody).await?;
        }
        let echo = json!({"cmd": "echo", "enabled": true, "prefix": ECHO_PREFIX});

        // Agents log in before the gateway starts, so the component's
        // presence probes find them online.
        let mut clients =
            futures::future::try_join_all(users.iter().map(|u| prosody.agent(u))).await?;
        for client in &mut clients {
            client.command(echo.clone()).await?;
        }
        let probe_sender = prosody.agent(PROBE_SENDER).await?;
        let mut probe_echo = prosody.agent(PROBE_ECHO).await?;
        probe_echo.command(echo.clone()).await?;
        let probe_to = probe_echo.full_jid.clone();

        let stop = CancellationToken::new();
        let readers: Vec<_> = clients
            .into_iter()
            .map(|client| record_arrivals(client, stop.clone()))
            .collect();
        let probe_echo_reader = record_arrivals(probe_echo, stop.clone());

        let config = xmpp_bridge_toml(
            db,
            &prosody,
            &users,
            &args.strategy,
            conversations + 1,
            &args.channel,
        );
        let gateway = spawn_gateway(db, &config).await?;
        println!(
            "frontdesk-load (xmpp): {conversations} conversations x {} messages at {}/s each, \
             {agents} echo agents ({}), Prosody probe at {}/s, Prosody Nagle {}, against {} ({engine})",
            args.messages,
            args.rate,
            args.strategy,
            args.probe_rate,
            if args.prosody_no_nagle { "off" } else { "on (default)" },
            gateway.url,
            engine = args.spawn.map(|e| e.to_string()).unwrap_or_default(),
        );

        let started = Instant::now();
        let probe = tokio::spawn(probe(probe_sender, probe_to, args.probe_rate, stop.clone()));
        let mut tasks = Vec::new();
        for n in 0..conversations {
            let visitor = Visitor::new(&gateway.url);
            let channel = args.channel.clone();
            let (messages, rate) = (args.messages, args.rate);
            tasks.push(tokio::spawn(async move {
                one_visitor(&visitor, &channel, n, messages, rate)
                    .await
                    .with_context(|| format!("visitor {n}"))
            }));
        }
        let mut samples = Vec::new();
        let mut errors = 0usize;
        for task in tasks {
            match task.await? {
                Ok(mut s) => samples.append(&mut s),
                Err(e) => {
                    eprintln!("{e:#}");
                    errors += 1;
                }
            }
        }
        let elapsed = started.elapsed();
        stop.cancel();
        let (probe_sent, probe_back) = probe.await??;
        let mut at_agents = Arrivals::new();
        for reader in readers {
            at_agents.extend(reader.await??);
        }
        let at_probe_echo = probe_echo_reader.await??;
        gateway.kill().await?;
        drop(prosody);

        let mut ack = histogram();
        let mut to_agent = histogram();
        let mut to_visitor = histogram();
        let mut round_trip = histogram();
        let mut unmatched = 0usize;
        for s in &samples {
            ack.record(micros(s.ack.as_secs_f64()))?;
            round_trip.record(micros(s.round_trip.as_secs_f64()))?;
            match at_agents.get(&s.token) {
                Some(&at) => {
                    to_agent.record(micros(at - s.sent))?;
                    to_visitor.record(micros(s.echoed - at))?;
                }
                None => unmatched += 1,
            }
        }
        let mut probe_there = histogram();
        let mut probe_back_h = histogram();
        let mut probe_round_trip = histogram();
        let mut probe_lost = 0usize;
        for (token, sent) in &probe_sent {
            match (at_probe_echo.get(token), probe_back.get(token)) {
                (Some(&there), Some(&back)) => {
                    probe_there.record(micros(there - sent))?;
                    probe_back_h.record(micros(back - there))?;
                    probe_round_trip.record(micros(back - sent))?;
                }
                _ => probe_lost += 1,
            }
        }

        println!(
            "timed messages: {} in {:.2} s ({:.1} messages/s through the agents)",
            samples.len(),
            elapsed.as_secs_f64(),
            samples.len() as f64 / elapsed.as_secs_f64()
        );
        println!("gateway + Prosody (visitor API <-> XMPP agent client):");
        print_line("ack (POST -> 201)", &ack);
        print_line("visitor -> agent", &to_agent);
        print_line("agent -> visitor", &to_visitor);
        print_line("round trip", &round_trip);
        println!("Prosody alone (client -> client, same run):");
        print_line("one way (a -> b)", &probe_there);
        print_line("one way (b -> a)", &probe_back_h);
        print_line("round trip", &probe_round_trip);
        println!(
            "errors: {errors} visitors failed, {unmatched} messages not seen by an agent, \
             {probe_lost} of {} probe messages lost",
            probe_sent.len()
        );
        anyhow::ensure!(
            errors == 0 && unmatched == 0 && probe_lost == 0,
            "the run had errors"
        );
        Ok(())
    }

    /// Seconds as histogram microseconds (at least 1: the histogram's
    /// lower bound; the wall clocks are one clock, so never negative
    /// beyond rounding).
    fn micros(seconds: f64) -> u64 {
        (seconds * 1e6).round().max(1.0) as u64
    }

    fn print_line(name: &str, h: &Histogram<u64>) {
        println!("  {name:<20} n {:>5}  ms: {}", h.len(), percentiles(h));
    }

    /// One conversation: start, wait until an agent took it, then send
    /// `messages` timed messages at `rate` and time each agent echo.
    async fn one_visitor(
        visitor: &Visitor,
        channel: &str,
        n: usize,
        messages: usize,
        rate: f64,
    ) -> anyhow::Result<Vec<VisitorSample>> {
        let session = visitor.start(channel, &format!("Load visitor {n}")).await?;
        let mut events = visitor.events(&session, 0).await?;
        events
            .next_matching(EVENT_WAIT, |e| e["type"] == "agent_joined")
            .await?;
        let sent: std::sync::Mutex<HashMap<String, (f64, Instant)>> = Default::default();
        let reader = async {
            let mut echoes = HashMap::with_capacity(messages);
            while echoes.len() < messages {
                let event = events
                    .next_matching(EVENT_WAIT, |e| {
                        e["type"] == "message" && e["message"]["sender"] == "agent"
                    })
                    .await?;
                let body = event["message"]["body"].as_str().unwrap_or_default();
                let Some(token) = body.strip_prefix(ECHO_PREFIX) else {
                    continue;
                };
                let (now, at) = (wall_now(), Instant::now());
                if let Some(&(_, start)) = sent.lock().expect("sent lock").get(token) {
                    echoes.insert(token.to_owned(), (now, at - start));
                }
            }
            Ok::<_, anyhow::Error>(echoes)
        };
        let token = |i: usize| format!("{TOKEN_MARK}v{n}.{i}");
        let writer = post_paced(
            visitor,
            &session,
            messages,
            rate,
            |i| (format!("load-{n}-{i}"), token(i)),
            |i| {
                sent.lock()
                    .expect("sent lock")
                    .insert(token(i), (wall_now(), Instant::now()));
            },
        );
        let (acks, echoes) = tokio::try_join!(writer, reader)?;
        events.close().await;
        let sent = sent.into_inner().expect("sent lock");
        let mut samples = Vec::with_capacity(messages);
        for (i, ack) in acks.into_iter().enumerate() {
            let token = token(i);
            let (echoed, round_trip) = echoes[&token];
            samples.push(VisitorSample {
                sent: sent[&token].0,
                token,
                ack,
                echoed,
                round_trip,
            });
        }
        Ok(samples)
    }

    /// Prosody's own latency: sends a timed message to the echo account at
    /// `rate` until `stop`, noting when each echo came back (the sender
    /// client's `ts`). Returns token → send time and token → echo time.
    async fn probe(
        mut sender: XmppAgent,
        to: String,
        rate: f64,
        stop: CancellationToken,
    ) -> anyhow::Result<(Arrivals, Arrivals)> {
        let mut sent = Arrivals::new();
        let mut back = Arrivals::new();
        let mut tick = tokio::time::interval(Duration::from_secs_f64(1.0 / rate));
        let mut i = 0usize;
        loop {
            tokio::select! {
                _ = stop.cancelled() => break,
                _ = tick.tick() => {
                    let token = format!("{TOKEN_MARK}p{i}");
                    sent.insert(token.clone(), wall_now());
                    sender.send(&to, &token, &format!("p-{i}")).await?;
                    i += 1;
                }
                event = sender.expect(Duration::from_secs(3600), is_chat_message) => {
                    note(&mut back, &event?);
                }
            }
        }
        while back.len() < sent.len() {
            match sender.expect(EVENT_WAIT, is_chat_message).await {
                Ok(event) => note(&mut back, &event),
                Err(_) => break,
            }
        }
        Ok((sent, back))
    }
}
