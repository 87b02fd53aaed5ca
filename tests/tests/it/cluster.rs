//! Several gateway nodes on one PostgreSQL behind HAProxy
//! (`frontdesk_tests::cluster`): what holds already with N nodes, and
//! the harness the scale-out tests are written on. PostgreSQL only: each
//! test is skipped unless `FRONTDESK_TEST_DB=postgres`.

use std::collections::HashSet;
use std::time::{Duration, Instant};

use frontdesk_tests::admin::{chatbot_channel, Admin};
use frontdesk_tests::cluster::{Cluster, ClusterOptions};
use frontdesk_tests::config::ALLOWED_ORIGIN;
use frontdesk_tests::database::several_nodes_run;
use frontdesk_tests::haproxy::{Haproxy, ServerState};
use frontdesk_tests::postgres::PgServer;
use frontdesk_tests::visitor::Visitor;
use frontdesk_tests::xmpp_server::{Account, XmppKind, XmppServer};
use reqwest::StatusCode;
use serde_json::Value;

const PASSWORD: &str = "correct horse battery staple";

/// `GET path` through HAProxy: the status and the node that answered
/// (none when HAProxy answered itself).
async fn get_via(
    cluster: &Cluster,
    http: &reqwest::Client,
    path: &str,
) -> (StatusCode, Option<usize>) {
    let reply = http
        .get(format!("{}{path}", cluster.url()))
        .header("origin", ALLOWED_ORIGIN)
        .send()
        .await
        .expect("HAProxy answers");
    (reply.status(), Haproxy::served_by(reply.headers()))
}

/// The nodes that answer `count` requests in a row through HAProxy, each
/// of which must succeed.
async fn nodes_answering(cluster: &Cluster, http: &reqwest::Client, count: usize) -> Vec<usize> {
    let mut nodes = Vec::new();
    for n in 0..count {
        let (status, node) = get_via(cluster, http, "/api/v1/channels/live").await;
        assert_eq!(status, StatusCode::OK, "request {n}");
        nodes.push(node.expect("a node answered"));
    }
    nodes
}

/// Polls `url` until it answers `status`, within `within`; how long it
/// took.
async fn wait_for_status(url: &str, status: StatusCode, within: Duration) -> Duration {
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(5))
        .build()
        .unwrap();
    let started = Instant::now();
    loop {
        let now = http.get(url).send().await.map(|r| r.status());
        if now.as_ref().ok() == Some(&status) {
            return started.elapsed();
        }
        assert!(
            started.elapsed() < within,
            "{url} still answers {now:?}, not {status}, after {within:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn consecutive_requests_through_haproxy_reach_every_node_in_turn() {
    if !several_nodes_run() {
        return;
    }
    let cluster = Cluster::start(ClusterOptions::new(3)).await.unwrap();
    let ids: HashSet<&str> = (0..3).map(|i| cluster.node_id(i)).collect();
    assert_eq!(ids.len(), 3, "every node has its own node_id");

    let mut seen = Vec::new();
    for _ in 0..6 {
        seen.push(cluster.which_node().await.unwrap());
    }
    for window in seen.windows(3) {
        let distinct: HashSet<_> = window.iter().collect();
        assert_eq!(distinct.len(), 3, "three requests in a row: {seen:?}");
    }
    cluster.stop().await.unwrap();
}

/// A conversation started on one node is written to on the others, and
/// its WebSocket, upgraded through HAProxy, replays all of it (from the
/// store: live signals do not cross nodes yet).
#[tokio::test]
async fn a_websocket_through_haproxy_replays_what_every_node_stored() {
    if !several_nodes_run() {
        return;
    }
    let cluster = Cluster::start(ClusterOptions::new(3)).await.unwrap();
    let on = |i: usize| Visitor::new(cluster.node_url(i)).with_origin(ALLOWED_ORIGIN);
    let session = on(0).start("live", "Jane Doe").await.unwrap();
    for (i, client_id) in [(1, "c-1"), (2, "c-2")] {
        let said = on(i)
            .say(&session, client_id, &format!("hello from node {i}"))
            .await
            .unwrap();
        assert_eq!(said.status, StatusCode::CREATED, "{:?}", said.body);
    }

    let through = Visitor::new(&cluster.url()).with_origin(ALLOWED_ORIGIN);
    let mut events = through.events(&session, 0).await.unwrap();
    let first = events.next_event().await.unwrap();
    assert_eq!(first["type"], "state");
    let mut bodies = Vec::new();
    while bodies.len() < 2 {
        let message = events
            .next_matching(Duration::from_secs(10), |e| {
                e["type"] == "message" && e["message"]["sender"] == "visitor"
            })
            .await
            .unwrap();
        bodies.push(message["message"]["body"].as_str().unwrap().to_owned());
    }
    assert_eq!(bodies, ["hello from node 1", "hello from node 2"]);
    events.close().await;
    cluster.stop().await.unwrap();
}

/// A session opened on one node works on another (sessions are rows),
/// and a directory change made there reaches every node by NOTIFY (the
/// poll is set far beyond the wait).
#[tokio::test]
async fn an_admin_change_through_one_node_is_seen_on_the_others() {
    if !several_nodes_run() {
        return;
    }
    let cluster = Cluster::start(
        ClusterOptions::new(3).adjust(|_, config| config.server.directory_poll_ms = 600_000),
    )
    .await
    .unwrap();
    cluster
        .create_admin("ada", "admin", PASSWORD)
        .await
        .unwrap();
    let on_first = Admin::log_in(cluster.node_url(0), "ada", PASSWORD)
        .await
        .unwrap();
    for i in 0..3 {
        let missing = Visitor::new(cluster.node_url(i))
            .channel("web")
            .await
            .unwrap();
        assert_eq!(missing.status, StatusCode::NOT_FOUND, "node {i}");
    }

    let on_second = on_first.at(cluster.node_url(1));
    let (status, body) = on_second
        .put("/api/v1/admin/channels/web", &chatbot_channel("web", "Hi"))
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT, "{body}");

    for i in [0, 2] {
        let took = wait_for_status(
            &format!("{}/api/v1/channels/web", cluster.node_url(i)),
            StatusCode::OK,
            Duration::from_secs(10),
        )
        .await;
        eprintln!("node {i} saw the change after {took:?}");
    }
    let http = reqwest::Client::new();
    let mut served = HashSet::new();
    for _ in 0..3 {
        let (status, node) = get_via(&cluster, &http, "/api/v1/channels/web").await;
        assert_eq!(status, StatusCode::OK);
        served.insert(node.expect("a node answered"));
    }
    assert_eq!(served.len(), 3, "every node serves the new channel");
    cluster.stop().await.unwrap();
}

/// A SIGKILLed node is out of HAProxy's rotation within a few seconds;
/// meanwhile and after, every request through HAProxy succeeds (a refused
/// connection is re-sent to another node); restarted, it is back with a
/// new node_id.
#[tokio::test]
async fn a_killed_node_is_taken_out_and_requests_keep_succeeding() {
    if !several_nodes_run() {
        return;
    }
    let mut cluster = Cluster::start(ClusterOptions::new(3)).await.unwrap();
    let http = reqwest::Client::new();
    let old_id = cluster.node_id(1).to_owned();

    let killed_at = Instant::now();
    cluster.kill(1).await.unwrap();
    let mut requests = 0;
    // Requests go on until HAProxy has taken the node out.
    while cluster.haproxy().state(1).await.unwrap() != ServerState::Down {
        let (status, _) = get_via(&cluster, &http, "/api/v1/channels/live").await;
        assert_eq!(status, StatusCode::OK, "request {requests} after the kill");
        requests += 1;
        assert!(
            killed_at.elapsed() < Duration::from_secs(5),
            "node 1 still in rotation 5 s after the kill"
        );
    }
    eprintln!(
        "node 1 out after {:?} and {requests} requests",
        killed_at.elapsed()
    );
    let after = nodes_answering(&cluster, &http, 6).await;
    assert_eq!(
        after.iter().collect::<HashSet<_>>(),
        [0, 2].iter().collect::<HashSet<_>>(),
        "the two live nodes share the requests: {after:?}"
    );

    cluster.restart(1).await.unwrap();
    assert_ne!(cluster.node_id(1), old_id, "a new process");
    // HAProxy's round robin does not restart its rotation when a server
    // comes back: three requests may miss it, a few more do not.
    let mut seen = HashSet::new();
    for _ in 0..30 {
        seen.insert(cluster.which_node().await.unwrap());
        if seen.len() == 3 {
            break;
        }
    }
    assert_eq!(
        seen.len(),
        3,
        "the restarted node is back in rotation: {seen:?}"
    );
    cluster.stop().await.unwrap();
}

/// A node stopped with SIGTERM exits cleanly and leaves the rotation; the
/// other serves meanwhile, and it is back once started again.
#[tokio::test]
async fn a_node_stopped_with_sigterm_leaves_the_rotation_and_comes_back() {
    if !several_nodes_run() {
        return;
    }
    let mut cluster = Cluster::start(ClusterOptions::new(2)).await.unwrap();
    let http = reqwest::Client::new();
    let status = cluster.terminate(0).await.unwrap();
    assert!(status.success(), "node 0 exited with {status}");
    cluster
        .wait_until_out(0, Duration::from_secs(5))
        .await
        .unwrap();
    assert_eq!(nodes_answering(&cluster, &http, 4).await, [1, 1, 1, 1]);

    cluster.restart(0).await.unwrap();
    let mut both = nodes_answering(&cluster, &http, 2).await;
    both.sort();
    assert_eq!(both, [0, 1], "node 0 is back in rotation");
    cluster.stop().await.unwrap();
}

/// A node stopped with SIGTERM while visitors' requests keep coming
/// through HAProxy first drains (not ready, still serving), so no request
/// fails: the rolling restart's promise, one node at a time.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_draining_node_fails_no_request_on_its_way_out() {
    if !several_nodes_run() {
        return;
    }
    let mut cluster = Cluster::start(ClusterOptions::new(2)).await.unwrap();
    let url = format!("{}/api/v1/channels/live", cluster.url());
    let stop = tokio_util::sync::CancellationToken::new();
    let load = tokio::spawn({
        let stop = stop.clone();
        async move {
            let http = reqwest::Client::new();
            let (mut ok, mut failed) = (0u32, Vec::new());
            while !stop.is_cancelled() {
                let reply = http.get(&url).header("origin", ALLOWED_ORIGIN).send().await;
                match reply.map(|r| r.status()) {
                    Ok(StatusCode::OK) => ok += 1,
                    other => failed.push(format!("{other:?}")),
                }
            }
            (ok, failed)
        }
    });
    tokio::time::sleep(Duration::from_millis(300)).await;
    for node in [0, 1] {
        let status = cluster.terminate(node).await.unwrap();
        assert!(status.success(), "node {node} exited with {status}");
        cluster.restart(node).await.unwrap();
        cluster
            .wait_until_routed(node, Duration::from_secs(10))
            .await
            .unwrap();
    }
    stop.cancel();
    let (ok, failed) = load.await.unwrap();
    assert!(ok > 20, "requests kept flowing: {ok}");
    assert!(
        failed.is_empty(),
        "{} of {} failed: {failed:?}",
        failed.len(),
        ok as usize + failed.len()
    );
    cluster.stop().await.unwrap();
}

/// With PostgreSQL stopped, every node's `/readyz` says so (and HAProxy
/// takes them all out); once it is back, every node is ready again and
/// serves visitors, with no restart.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_node_is_unready_while_postgres_is_away_and_recovers_by_itself() {
    if !several_nodes_run() {
        return;
    }
    let mut postgres = PgServer::start_new().await.unwrap();
    let cluster = Cluster::start(ClusterOptions::new(3).postgres(&postgres))
        .await
        .unwrap();
    for i in 0..3 {
        let ready = reqwest::get(format!("{}/readyz", cluster.node_url(i)))
            .await
            .unwrap();
        assert_eq!(ready.status(), StatusCode::OK, "node {i} before the stop");
    }

    postgres.stop().await.unwrap();
    for i in 0..3 {
        let url = format!("{}/readyz", cluster.node_url(i));
        let took = wait_for_status(
            &url,
            StatusCode::SERVICE_UNAVAILABLE,
            Duration::from_secs(10),
        )
        .await;
        let body: Value = reqwest::get(&url).await.unwrap().json().await.unwrap();
        assert_eq!(body["status"], "database_unreachable", "node {i}");
        eprintln!("node {i} not ready after {took:?}");
    }
    for i in 0..3 {
        cluster
            .wait_until_out(i, Duration::from_secs(10))
            .await
            .unwrap();
    }
    let http = reqwest::Client::new();
    let (status, node) = get_via(&cluster, &http, "/healthz").await;
    assert_eq!(
        (status, node),
        (StatusCode::SERVICE_UNAVAILABLE, None),
        "HAProxy has no node to send to"
    );

    postgres.start().await.unwrap();
    for i in 0..3 {
        let url = format!("{}/readyz", cluster.node_url(i));
        let took = wait_for_status(&url, StatusCode::OK, Duration::from_secs(30)).await;
        eprintln!("node {i} ready again after {took:?}");
        cluster
            .wait_until_routed(i, Duration::from_secs(10))
            .await
            .unwrap();
    }
    let visitor = Visitor::new(&cluster.url()).with_origin(ALLOWED_ORIGIN);
    for n in 0..3 {
        visitor
            .start("live", &format!("Visitor {n}"))
            .await
            .expect("visitors are served again");
    }
    cluster.stop().await.unwrap();
    drop(postgres);
}

/// ejabberd takes a component connection from every node for the one
/// component domain, and losing one node leaves the others connected.
/// (Pings are an hour apart here; `xmpp_nodes` runs the default 2 s,
/// answered mostly on other nodes' connections, with no reconnect.)
#[tokio::test]
async fn every_node_holds_a_component_connection_to_one_ejabberd() {
    if !several_nodes_run() {
        return;
    }
    let ejabberd = XmppServer::start(
        XmppKind::Ejabberd,
        &[Account::new("101"), Account::new("102")],
    )
    .await
    .unwrap();
    // Start returns once each node is connected; then all are at once.
    let options = ClusterOptions::new(3)
        .xmpp(&ejabberd)
        .xmpp_ping_interval(Duration::from_secs(3600));
    let mut cluster = Cluster::start(options).await.unwrap();
    for i in 0..3 {
        assert_eq!(cluster.xmpp_connected(i).await, Some(true), "node {i}");
    }
    cluster.kill(0).await.unwrap();
    cluster.restart(0).await.unwrap();
    for i in 0..3 {
        assert_eq!(cluster.xmpp_connected(i).await, Some(true), "node {i}");
    }
    cluster.stop().await.unwrap();
}
