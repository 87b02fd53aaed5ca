//! SIP agents in front of several gateway nodes: two nodes on one
//! PostgreSQL, each running its user agent, behind a real Kamailio whose
//! dispatcher spreads the gateway domain over them (a hash of the
//! Call-ID, OPTIONS health probes, failover on 408/503/timeouts), with
//! the in-process softphone as agent 103. The agent writes as pager-mode
//! phones do, one Call-ID with a new CSeq per message, so every message
//! of theirs goes to the same node, and the test puts the visitor on the
//! other one. The visitor's end is read from its node's REST API (the
//! transcript in the store); waking a WebSocket on one node for a commit
//! on another is the hub's cross-node signal, not tested here.
//! PostgreSQL only: each test is skipped unless `FRONTDESK_TEST_DB=postgres`.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use frontdesk_tests::chaos::{
    check_exactly_once, numbered, sip_received_from, sip_wait_for_all, visitor_sends,
    wait_until_active, GatewayUrl, Progress, PATIENCE, SIP_CHANNEL,
};
use frontdesk_tests::cluster::{Cluster, ClusterOptions};
use frontdesk_tests::database::several_nodes_run;
use frontdesk_tests::sip::{session_uri, visitor_uri, SipPbx};
use frontdesk_tests::softphone::{OutgoingId, Softphone};
use frontdesk_tests::visitor::Session;

/// Messages each way.
const EACH_WAY: usize = 8;
/// How long one attempt of an agent MESSAGE waits for its final answer.
const ATTEMPT: Duration = Duration::from_secs(10);

/// Two nodes behind HAProxy and Kamailio's dispatcher, and agent 103's
/// registered softphone.
async fn two_nodes() -> (SipPbx, Cluster, Arc<Softphone>) {
    let pbx = SipPbx::start_nodes(2).await.unwrap();
    let cluster = Cluster::start(ClusterOptions::new(2).sip(&pbx))
        .await
        .unwrap();
    let phone = Arc::new(Softphone::start(&pbx.kamailio, "103").await.unwrap());
    (pbx, cluster, phone)
}

/// The node whose user agent listens at the address in `destination`
/// (a dispatcher URI or a `Via` sent-by).
fn node_at(pbx: &SipPbx, destination: &str) -> usize {
    pbx.nodes
        .iter()
        .position(|addr: &SocketAddr| destination.contains(&addr.to_string()))
        .unwrap_or_else(|| panic!("{destination} is no node's address"))
}

/// An agent writing in pager mode: one Call-ID and From tag, a new CSeq
/// per message; a message is sent again as the same request until it
/// gets a 200.
struct Pager {
    phone: Arc<Softphone>,
    call_id: String,
    from_tag: String,
    cseq: u32,
}

impl Pager {
    fn new(phone: Arc<Softphone>) -> Pager {
        let id = OutgoingId::fresh();
        Pager {
            phone,
            call_id: id.call_id,
            from_tag: id.from_tag,
            cseq: 0,
        }
    }

    fn next_id(&mut self) -> OutgoingId {
        self.cseq += 1;
        OutgoingId {
            call_id: self.call_id.clone(),
            cseq: self.cseq,
            from_tag: self.from_tag.clone(),
        }
    }

    /// One attempt of a new message: its final status.
    async fn send_once(&mut self, to: &str, text: &str) -> Option<u16> {
        let id = self.next_id();
        self.phone.send(to, text, &id, ATTEMPT).await
    }

    /// Sends `text` until it is accepted; how many attempts failed.
    async fn send(&mut self, to: &str, text: &str) -> usize {
        let id = self.next_id();
        let deadline = tokio::time::Instant::now() + PATIENCE;
        let mut failed = Vec::new();
        loop {
            match self.phone.send(to, text, &id, ATTEMPT).await {
                Some(200) => return failed.len(),
                status => failed.push(status),
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "{text:?} never accepted: {failed:?}"
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
}

/// Which node Kamailio sends the pager's Call-ID to: the agent writes to
/// an address that is no chat (the node answers 404) and the dispatcher's
/// log says where it went.
async fn pager_node(pbx: &SipPbx, pager: &mut Pager) -> usize {
    let status = pager
        .send_once(&visitor_uri("visitor-nobody"), "hello?")
        .await;
    assert_eq!(
        status,
        Some(404),
        "a node answers for an address of no chat"
    );
    let dispatches = pbx.kamailio.dispatches(&pager.call_id);
    let first = dispatches
        .first()
        .expect("the dispatcher logged where it went");
    node_at(pbx, first)
}

/// A visitor starts a chat on the SIP channel through `url` and the
/// agent takes it by answering the offer.
async fn sip_chat(url: &GatewayUrl, pager: &mut Pager, name: &str) -> Session {
    let visitor = url.visitor();
    let session = visitor.start(SIP_CHANNEL, name).await.unwrap();
    let uri = session_uri(&session);
    pager
        .phone
        .wait_for(PATIENCE, |m| {
            m.from == uri && m.body.contains("New chat waiting")
        })
        .await
        .unwrap();
    pager.send(&uri, "taking it").await;
    wait_until_active(&visitor, &session).await;
    session
}

/// A chat between agent 103, whose MESSAGEs Kamailio sends to one node,
/// and a visitor served by the other.
struct AcrossNodes {
    pbx: SipPbx,
    cluster: Cluster,
    phone: Arc<Softphone>,
    pager: Pager,
    /// The node the agent's MESSAGEs go to.
    agent_node: usize,
    /// The other node's URL, which the visitor uses.
    url: GatewayUrl,
    session: Session,
    /// The visitor's SIP address.
    uri: String,
}

async fn chat_across_nodes() -> AcrossNodes {
    let (pbx, cluster, phone) = two_nodes().await;
    let mut pager = Pager::new(phone.clone());
    let agent_node = pager_node(&pbx, &mut pager).await;
    let url = GatewayUrl::new(cluster.node_url(1 - agent_node));
    let session = sip_chat(&url, &mut pager, "Sophie").await;
    let uri = session_uri(&session);
    AcrossNodes {
        pbx,
        cluster,
        phone,
        pager,
        agent_node,
        url,
        session,
        uri,
    }
}

/// The visitor's messages `0..count` with tag `v` through `url` (those
/// already stored are acknowledged again with their seq).
fn visitor_says(
    url: &GatewayUrl,
    session: &Session,
    count: usize,
) -> tokio::task::JoinHandle<Vec<i64>> {
    visitor_sends(
        url.clone(),
        session.clone(),
        "v",
        count,
        Progress::default(),
    )
}

/// The agent's messages `range` with `tag`; failed attempts.
async fn agent_sends(
    pager: &mut Pager,
    to: &str,
    tag: &str,
    range: std::ops::Range<usize>,
) -> usize {
    let mut failed = 0;
    for n in range {
        failed += pager.send(to, &numbered(tag, n)).await;
    }
    failed
}

/// The transcript's messages from `sender` (`visitor`, `agent`), as
/// (seq, body), read through `url`.
async fn transcript(url: &GatewayUrl, session: &Session, sender: &str) -> Vec<(String, String)> {
    let messages = url.visitor().messages(session).await.unwrap();
    messages.body["messages"]
        .as_array()
        .expect("messages")
        .iter()
        .filter(|m| m["sender"] == sender)
        .map(|m| {
            let body = m["body"].as_str().unwrap_or_default().to_owned();
            (m["seq"].to_string(), body)
        })
        .collect()
}

/// Checks both ends: the phone got the visitor's `count` messages once
/// each (a copy only under the same Call-ID), in order; the transcript on
/// the visitor's node holds the agent's `count` and the visitor's own
/// exactly once, in order.
async fn check_both_ends(url: &GatewayUrl, session: &Session, phone: &Softphone, count: usize) {
    let uri = session_uri(session);
    sip_wait_for_all(phone, &uri, "v", count).await;
    check_exactly_once(
        "visitor → SIP agent",
        "v",
        count,
        &sip_received_from(phone, &uri),
        true,
    );
    check_exactly_once(
        "SIP agent → visitor",
        "a",
        count,
        &transcript(url, session, "agent").await,
        false,
    );
    check_exactly_once(
        "the visitor's own",
        "v",
        count,
        &transcript(url, session, "visitor").await,
        false,
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sip_agent_whose_messages_reach_one_node_chats_with_a_visitor_on_the_other() {
    if !several_nodes_run() {
        return;
    }
    let mut chat = chat_across_nodes().await;
    let (url, session, uri) = (chat.url.clone(), chat.session.clone(), chat.uri.clone());
    let (pbx, pager, agent_node) = (&chat.pbx, &mut chat.pager, chat.agent_node);

    let visitor = visitor_says(&url, &session, EACH_WAY);
    let failed = agent_sends(pager, &uri, "a", 0..EACH_WAY).await;
    visitor.await.unwrap();
    check_both_ends(&url, &session, &chat.phone, EACH_WAY).await;

    // Every agent MESSAGE went to the agent's node, none to the visitor's.
    let dispatches = pbx.kamailio.dispatches(&pager.call_id);
    assert_eq!(dispatches.len(), EACH_WAY + 2, "{dispatches:?}");
    assert!(
        dispatches.iter().all(|d| node_at(pbx, d) == agent_node),
        "{dispatches:?}"
    );
    assert_eq!(failed, 0, "no agent attempt failed with every node up");
    chat.cluster.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killing_the_node_kamailio_sends_to_fails_over_to_the_other_and_loses_nothing() {
    if !several_nodes_run() {
        return;
    }
    let mut chat = chat_across_nodes().await;
    let (pbx, pager, agent_node) = (&chat.pbx, &mut chat.pager, chat.agent_node);
    let (url, session, uri) = (chat.url.clone(), chat.session.clone(), chat.uri.clone());
    let visitor_node = 1 - agent_node;
    let half = EACH_WAY / 2;

    let visitor = visitor_says(&url, &session, half);
    agent_sends(pager, &uri, "a", 0..half).await;
    visitor.await.unwrap();

    chat.cluster.kill(agent_node).await.unwrap();
    let killed_at = Instant::now();
    // The agent's next MESSAGE: under the same Call-ID, the dispatcher's
    // hash still picks the dead node until its probes take it out, and
    // then tm's timer sends it on to the other node; after that, straight
    // there.
    let before = pbx.kamailio.dispatches(&pager.call_id).len();
    let failed = agent_sends(pager, &uri, "a", half..half + 1).await;
    let reached_in = killed_at.elapsed();
    let next = pbx.kamailio.dispatches(&pager.call_id)[before..].to_vec();
    assert_eq!(
        next.last().map(|d| node_at(pbx, d)),
        Some(visitor_node),
        "the agent's next MESSAGE ended at the surviving node: {next:?}"
    );
    let dead = pbx.nodes[agent_node].to_string();
    pbx.kamailio
        .wait_for_log(&["gateway node down", &dead], Duration::from_secs(15))
        .await
        .unwrap();

    let visitor = visitor_says(&url, &session, EACH_WAY);
    agent_sends(pager, &uri, "a", half + 1..EACH_WAY).await;
    let seqs = visitor.await.unwrap();
    assert_eq!(seqs.len(), EACH_WAY);
    check_both_ends(&url, &session, &chat.phone, EACH_WAY).await;
    eprintln!(
        "the agent's first MESSAGE after the kill reached the other node in {reached_in:?} \
         (dispatches {next:?}, failed attempts {failed})"
    );
    chat.cluster.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_copy_of_an_agent_message_on_the_other_node_is_stored_once() {
    if !several_nodes_run() {
        return;
    }
    let (pbx, cluster, phone) = two_nodes().await;
    let mut pager = Pager::new(phone.clone());
    let url = GatewayUrl::new(cluster.node_url(0));
    let session = sip_chat(&url, &mut pager, "Sophie").await;
    let uri = session_uri(&session);

    // The same request (Call-ID, CSeq, From tag) reaches node 0, then
    // node 1, as when a proxy gives up on the first node and fails over
    // after it had stored the message: both answer 200, it is stored once.
    let id = OutgoingId::fresh();
    for node in [0, 1] {
        let status = phone
            .send_via(pbx.nodes[node], &uri, &numbered("a", 0), &id, ATTEMPT)
            .await;
        assert_eq!(status, Some(200), "node {node}");
    }
    // And at once on both nodes.
    let id = OutgoingId::fresh();
    let text = numbered("a", 1);
    let (first, second) = tokio::join!(
        phone.send_via(pbx.nodes[0], &uri, &text, &id, ATTEMPT),
        phone.send_via(pbx.nodes[1], &uri, &text, &id, ATTEMPT),
    );
    assert_eq!((first, second), (Some(200), Some(200)));

    let bodies = transcript(&url, &session, "agent").await;
    check_exactly_once("SIP agent → visitor", "a", 2, &bodies, false);
    cluster.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_node_probes_each_sip_agent_and_another_takes_over_when_it_dies() {
    if !several_nodes_run() {
        return;
    }
    let (pbx, mut cluster, phone) = two_nodes().await;
    // With probes every second, five in a row from one node: the other
    // node probes nobody.
    let probes = phone
        .wait_for_probes(0, 5, Duration::from_secs(30))
        .await
        .unwrap();
    let prober = node_at(&pbx, &probes[0].sent_by);
    assert!(
        probes.iter().all(|p| node_at(&pbx, &p.sent_by) == prober),
        "more than one node probes: {probes:?}"
    );
    let span = probes[4].at - probes[0].at;
    assert!(
        span >= Duration::from_secs(3),
        "five probes in {span:?}: more than one per interval"
    );

    let seen = phone.probes().len();
    cluster.kill(prober).await.unwrap();
    let killed_at = Instant::now();
    let other = 1 - prober;
    let deadline = Duration::from_secs(15);
    let mut from = seen;
    let took_over = loop {
        let next = phone.wait_for_probes(from, 1, deadline).await.unwrap();
        from += 1;
        if node_at(&pbx, &next[0].sent_by) == other {
            break killed_at.elapsed();
        }
        assert!(killed_at.elapsed() < deadline, "no node took over probing");
    };
    let after = phone.wait_for_probes(from, 3, deadline).await.unwrap();
    assert!(
        after.iter().all(|p| node_at(&pbx, &p.sent_by) == other),
        "{after:?}"
    );
    eprintln!("node {other} took over probing {took_over:?} after node {prober} was killed");
    assert!(took_over < Duration::from_secs(10), "{took_over:?}");
    cluster.stop().await.unwrap();
}
