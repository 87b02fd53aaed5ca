//! Fifty chats exchanging messages both ways through HAProxy and three
//! nodes on one PostgreSQL, answered by real XMPP clients on ejabberd,
//! while something breaks: a node is SIGKILLed, every node is restarted
//! in turn, or PostgreSQL itself restarts. Every acknowledged message must
//! reach the other side exactly once, every visitor's WebSocket (which
//! reconnects through HAProxy) must see every event once and in order, and
//! what visitors see fail on the way is judged per fault
//! (`frontdesk_tests::traffic` drives and checks the traffic). PostgreSQL
//! only: each test is skipped unless `FRONTDESK_TEST_DB=postgres`.

use std::time::Duration;

use frontdesk_tests::cluster::{Cluster, ClusterOptions};
use frontdesk_tests::config::ALLOWED_ORIGIN;
use frontdesk_tests::database::several_nodes_run;
use frontdesk_tests::postgres::PgServer;
use frontdesk_tests::traffic::{echo_agents, EchoAgents, Report, Traffic, TrafficOptions};
use frontdesk_tests::xmpp_server::XmppServer;
use pbx_adapter::queue::Strategy;

const CONVERSATIONS: usize = 50;
const MESSAGES: usize = 10;

fn traffic() -> TrafficOptions {
    TrafficOptions {
        conversations: CONVERSATIONS,
        messages: MESSAGES,
        interval: Duration::from_millis(1000),
        // 50 starts over 5 s: some chats are still being offered when the
        // fault comes.
        stagger: Duration::from_millis(100),
        channel: "live".into(),
        origin: ALLOWED_ORIGIN.into(),
    }
}

/// Three nodes on ejabberd (a component connection each), agents 101
/// and 102 answering as echo clients, the live channel's queue taking
/// turns between them with room for every chat.
async fn three_nodes(ejabberd: &XmppServer, postgres: Option<&PgServer>) -> (Cluster, EchoAgents) {
    let mut options = ClusterOptions::new(3).xmpp(ejabberd).adjust(|_, config| {
        for queue in &mut config.queues {
            queue.strategy = Strategy::Rrmemory;
            queue.max_chats_per_agent = CONVERSATIONS as u32;
        }
    });
    if let Some(postgres) = postgres {
        options = options.postgres(postgres);
    }
    let cluster = Cluster::start(options).await.unwrap();
    let agents = vec![
        ejabberd.agent("101").await.unwrap(),
        ejabberd.agent("102").await.unwrap(),
    ];
    let agents = echo_agents(agents).await.unwrap();
    (cluster, agents)
}

/// Fails the test with every problem the traffic had.
fn assert_nothing_lost(report: &Report) {
    let problems = report.problems(MESSAGES);
    assert!(
        problems.is_empty(),
        "{} problems, e.g.:\n{}",
        problems.len(),
        problems
            .iter()
            .take(30)
            .cloned()
            .collect::<Vec<_>>()
            .join("\n")
    );
}

/// SIGKILL one node in the middle of the traffic: its requests in flight
/// fail (the visitors' retries carry them), its WebSockets drop (they
/// reconnect to the others), the stanzas it had not confirmed are sent
/// again by another node, the offers it was making are made again; and
/// nothing is lost or doubled.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fifty_chats_lose_and_double_nothing_when_a_node_is_killed() {
    if !several_nodes_run() {
        return;
    }
    let ejabberd = XmppServer::ejabberd_for_agents().await;
    let (mut cluster, agents) = three_nodes(&ejabberd, None).await;
    let run = Traffic::start(&cluster.url(), &traffic());
    tokio::time::sleep(Duration::from_secs(4)).await;
    cluster.kill(1).await.unwrap();
    eprintln!("node 1 killed {:?} into the traffic", run.elapsed());
    let report = run.finish(agents).await;
    eprintln!("{}", report.summary());
    for error in report.errors().iter().take(10) {
        eprintln!("  {error}");
    }
    assert_nothing_lost(&report);
    assert!(
        report.reconnects() > 0,
        "the killed node's WebSockets reconnected elsewhere"
    );
    cluster.stop().await.unwrap();
}

/// SIGTERM each node in turn (and start it again) under the traffic: the
/// draining node leaves HAProxy's rotation before it stops, so visitors
/// see no failed request at all, only WebSockets closed with 1001 that
/// reconnect; and nothing is lost or doubled.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rolling_restart_under_fifty_chats_fails_no_visitor_request() {
    if !several_nodes_run() {
        return;
    }
    let ejabberd = XmppServer::ejabberd_for_agents().await;
    let (mut cluster, agents) = three_nodes(&ejabberd, None).await;
    let run = Traffic::start(&cluster.url(), &traffic());
    tokio::time::sleep(Duration::from_secs(2)).await;
    for i in 0..3 {
        let status = cluster.terminate(i).await.unwrap();
        assert!(status.success(), "node {i} stopped cleanly: {status:?}");
        cluster.restart(i).await.unwrap();
        cluster
            .wait_until_routed(i, Duration::from_secs(20))
            .await
            .unwrap();
        eprintln!("node {i} restarted, {:?} into the traffic", run.elapsed());
    }
    let report = run.finish(agents).await;
    eprintln!("{}", report.summary());
    assert_nothing_lost(&report);
    assert_eq!(report.errors(), Vec::<String>::new(), "no failed request");
    let closes: Vec<Option<u16>> = report
        .visitors
        .iter()
        .flat_map(|v| v.closes.iter().copied())
        .collect();
    assert!(
        closes.iter().all(|code| *code == Some(1001)),
        "sockets closed only as going away: {closes:?}"
    );
    cluster.stop().await.unwrap();
}

/// Stop PostgreSQL for a few seconds under the traffic: visitors get the
/// retryable 503 `unavailable` (from a node, or from HAProxy once every
/// node is out), never another error; agents' messages wait for their
/// receipt; once the database is back everything resumes by itself and
/// nothing is lost or doubled.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fifty_chats_resume_losing_nothing_after_postgres_restarts() {
    if !several_nodes_run() {
        return;
    }
    let mut postgres = PgServer::start_new().await.unwrap();
    let ejabberd = XmppServer::ejabberd_for_agents().await;
    let (cluster, agents) = three_nodes(&ejabberd, Some(&postgres)).await;
    let run = Traffic::start(&cluster.url(), &traffic());
    tokio::time::sleep(Duration::from_secs(6)).await;
    postgres.stop().await.unwrap();
    eprintln!("PostgreSQL stopped {:?} into the traffic", run.elapsed());
    tokio::time::sleep(Duration::from_secs(5)).await;
    postgres.start().await.unwrap();
    eprintln!("PostgreSQL started {:?} into the traffic", run.elapsed());
    let report = run.finish(agents).await;
    eprintln!("{}", report.summary());
    assert_nothing_lost(&report);
    let errors = report.errors();
    assert!(!errors.is_empty(), "visitors met the outage");
    let unclear: Vec<&String> = errors
        .iter()
        .filter(|e| !(e.contains("503 Service Unavailable") && e.contains("\"unavailable\"")))
        .filter(|e| !e.contains("websocket"))
        .collect();
    assert!(
        unclear.is_empty(),
        "every failed request said 503 unavailable: {unclear:?}"
    );
    cluster.stop().await.unwrap();
    drop(postgres);
}
