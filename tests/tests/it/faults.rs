//! The fault suite: real visitors, a real XMPP agent (slixmpp on Prosody)
//! and a real SIP agent (a softphone behind Kamailio) exchanging numbered
//! messages both ways while the gateway is SIGKILLed at random moments,
//! while Prosody or Kamailio restarts, and while PostgreSQL restarts under
//! load. Each sender retries a message until it is acknowledged (the
//! visitor: 201/200 with its seq; the XMPP agent: the gateway's receipt;
//! the SIP agent: 200), and each receiver's record is checked: every
//! acknowledged message arrived, once (an agent may get a copy under the
//! same stanza id or Call-ID, which clients deduplicate on), in the order
//! it was sent.
//!
//! The size of the kill run is a parameter: `FRONTDESK_FAULT_MESSAGES`
//! (messages in all, split evenly over the four directions; default
//! 1,200) and `FRONTDESK_FAULT_KILLS` (default 4); `FRONTDESK_FAULT_SEED`
//! replays the kill moments of an earlier run (each run prints its seed).
//! `docs/faults.md` has the full run's command and figures.

use std::sync::Arc;
use std::time::{Duration, Instant};

use frontdesk_tests::chaos::{
    bridged_config_with, check_exactly_once, env_number, last_seq, number_of, numbered,
    sip_agent_sends, sip_received_from, sip_wait_for_all, spawn_bridged, spawn_config, total_acked,
    visitor_sends, wait_for_total, wait_for_xmpp_connected, wait_until_active, xmpp_agent_exchange,
    Follower, GatewayUrl, Progress, Rng, PATIENCE, SIP_CHANNEL,
};
use frontdesk_tests::database::TestDb;
use frontdesk_tests::gateway::{GatewayProcess, TestGateway};
use frontdesk_tests::postgres::PgServer;
use frontdesk_tests::sip::{session_uri, SipPbx};
use frontdesk_tests::softphone::{OutgoingId, Softphone};
use frontdesk_tests::visitor::{Session, StreamItem, Visitor};
use frontdesk_tests::xmpp_server::{Account, XmppAgent, XmppServer, COMPONENT_DOMAIN};

/// The visitor address of a session on the XMPP side.
fn xmpp_address(session: &Session) -> String {
    format!("{}@{COMPONENT_DOMAIN}", session.agent_localpart())
}

/// A visitor starts a chat on the live channel and XMPP agent 101 takes
/// it by answering the offer.
async fn xmpp_chat(url: &GatewayUrl, agent: &mut XmppAgent, name: &str) -> Session {
    let visitor = url.visitor();
    let session = visitor.start("live", name).await.unwrap();
    let address = xmpp_address(&session);
    let from = address.clone();
    agent
        .expect(PATIENCE, move |e| {
            e["event"] == "message"
                && e["from"].as_str().is_some_and(|f| f.starts_with(&from))
                && e["body"]
                    .as_str()
                    .is_some_and(|b| b.contains("New chat waiting"))
        })
        .await
        .unwrap();
    agent.send(&address, "taking it", "take").await.unwrap();
    wait_until_active(&visitor, &session).await;
    session
}

/// A visitor starts a chat on the SIP channel and the softphone takes it
/// by answering the offer.
async fn sip_chat(url: &GatewayUrl, phone: &Softphone, name: &str) -> Session {
    let visitor = url.visitor();
    let session = visitor.start(SIP_CHANNEL, name).await.unwrap();
    let uri = session_uri(&session);
    phone
        .wait_for(PATIENCE, |m| {
            m.from == uri && m.body.contains("New chat waiting")
        })
        .await
        .unwrap();
    let status = phone
        .send(
            &uri,
            "taking it",
            &OutgoingId::fresh(),
            Duration::from_secs(10),
        )
        .await;
    assert_eq!(status, Some(200));
    wait_until_active(&visitor, &session).await;
    session
}

/// Checks a conversation from the visitor's end: its event stream,
/// followed across restarts, holds the visitor's messages with `own.0`
/// exactly once, in order, at the seqs they were acknowledged with
/// (`own.1`), and every acknowledged agent message with `agent.0` (of
/// `agent.1`) exactly once, in order. Returns how often the stream
/// reconnected.
async fn check_visitor_end(
    url: &GatewayUrl,
    session: &Session,
    follower: Follower,
    own: (&str, &[i64]),
    agent: (&str, usize),
) -> usize {
    let (own_tag, own_seqs) = own;
    let followed = follower.finish_at(last_seq(url, session).await).await;
    let what = format!("{}: agent → visitor", agent.0);
    check_exactly_once(
        &what,
        agent.0,
        agent.1,
        &followed.messages_from("agent"),
        false,
    );
    let mine = followed.messages_from("visitor");
    check_exactly_once(own_tag, own_tag, own_seqs.len(), &mine, false);
    let seqs: Vec<i64> = mine
        .iter()
        .filter(|(_, body)| number_of(own_tag, body).is_some())
        .map(|(seq, _)| seq.parse().expect("a seq"))
        .collect();
    assert_eq!(
        seqs, own_seqs,
        "{own_tag}: the visitor was acknowledged with other seqs than the transcript's"
    );
    followed.reconnects
}

/// The fault scenario: two visitors, one chatting with an XMPP
/// agent and one with a SIP agent, and both agents, each send their share
/// of `FRONTDESK_FAULT_MESSAGES` while the gateway is SIGKILLed
/// `FRONTDESK_FAULT_KILLS` times at random moments spread over the run
/// and restarted on the same database. Checked from both ends: each agent
/// got every acknowledged visitor message once (copies only under the
/// same id) and in order; each visitor's event stream, followed across
/// the restarts as the widget does, holds every acknowledged agent
/// message and every one of their own exactly once, in order, at the seq
/// they were acknowledged with.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn visitors_and_real_agents_lose_and_duplicate_nothing_across_gateway_kills() {
    let total = env_number("FRONTDESK_FAULT_MESSAGES", 1200);
    let kills = env_number("FRONTDESK_FAULT_KILLS", 4);
    let per_direction = total / 4;
    assert!(per_direction >= 20 && kills >= 1, "too small a run");
    let mut rng = Rng::from_env();
    let started = Instant::now();

    let prosody = XmppServer::prosody(&[Account::new("101").preapproved()])
        .await
        .unwrap();
    let pbx = SipPbx::start().await.unwrap();
    let phone = Arc::new(Softphone::start(&pbx.kamailio, "103").await.unwrap());
    let mut xmpp_agent = prosody.agent("101").await.unwrap();
    let db = TestDb::create().await.unwrap();
    let mut gateway = spawn_bridged(&db, Some(&prosody), Some(&pbx))
        .await
        .unwrap();
    let url = GatewayUrl::new(&gateway.url);

    let xs = xmpp_chat(&url, &mut xmpp_agent, "Xavier").await;
    let ss = sip_chat(&url, &phone, "Sophie").await;
    let (x_address, s_uri) = (xmpp_address(&xs), session_uri(&ss));
    let x_follower = Follower::start(url.clone(), xs.clone());
    let s_follower = Follower::start(url.clone(), ss.clone());

    let progress: [Progress; 4] = Default::default();
    let [p_vx, p_vs, p_ax, p_as] = &progress;
    let vx = visitor_sends(url.clone(), xs.clone(), "vx", per_direction, p_vx.clone());
    let vs = visitor_sends(url.clone(), ss.clone(), "vs", per_direction, p_vs.clone());
    let ax = xmpp_agent_exchange(
        xmpp_agent,
        x_address.clone(),
        "ax",
        per_direction,
        ("vx", per_direction),
        p_ax.clone(),
    );
    let as_ = sip_agent_sends(
        phone.clone(),
        s_uri.clone(),
        "as",
        per_direction,
        p_as.clone(),
    );

    // Kill moments: one in each of `kills` equal stretches of the run,
    // at a random count of acknowledged messages within it.
    let all = [p_vx, p_vs, p_ax, p_as];
    let stretch = total / (kills + 1);
    let mut killed_at = Vec::new();
    for k in 0..kills {
        let at = stretch * (k + 1) - stretch / 2 + rng.below(stretch as u64) as usize;
        wait_for_total(&all, at, &format!("before kill {k}")).await;
        tokio::time::sleep(Duration::from_millis(rng.below(200))).await;
        let acked = total_acked(&all);
        gateway.kill().await.unwrap();
        killed_at.push(acked);
        assert!(acked < total, "kill {k} came after the traffic");
        gateway = spawn_bridged(&db, Some(&prosody), Some(&pbx))
            .await
            .unwrap();
        url.set(&gateway.url);
    }

    let vx_seqs = vx.await.unwrap();
    let vs_seqs = vs.await.unwrap();
    let sip_failures = as_.await.unwrap();
    let xmpp_run = ax.await.unwrap();
    sip_wait_for_all(&phone, &s_uri, "vs", per_direction).await;

    // From the agents' end.
    let to_xmpp = check_exactly_once(
        "visitor → XMPP agent",
        "vx",
        per_direction,
        &xmpp_run.received,
        true,
    );
    let to_sip = check_exactly_once(
        "visitor → SIP agent",
        "vs",
        per_direction,
        &sip_received_from(&phone, &s_uri),
        true,
    );
    // From the visitors' end.
    let mut reconnects = Vec::new();
    for (session, follower, own_seqs, own_tag, agent_tag) in [
        (&xs, x_follower, &vx_seqs, "vx", "ax"),
        (&ss, s_follower, &vs_seqs, "vs", "as"),
    ] {
        let seen = check_visitor_end(
            &url,
            session,
            follower,
            (own_tag, own_seqs),
            (agent_tag, per_direction),
        )
        .await;
        reconnects.push(seen);
    }
    eprintln!(
        "fault run: {total} messages ({per_direction} per direction), {kills} gateway kills at {killed_at:?} \
         acknowledged; lost 0, duplicated 0, order kept; copies under the same id: XMPP {}, SIP {}; \
         XMPP agent re-sends {}, SIP agent failed attempts {sip_failures}; widget reconnects {} and {}; \
         {:.1} s",
        to_xmpp.copies,
        to_sip.copies,
        xmpp_run.resent,
        reconnects[0],
        reconnects[1],
        started.elapsed().as_secs_f64()
    );
    assert_eq!(xmpp_run.acked, per_direction);
    gateway.kill().await.unwrap();
    db.drop_db().await.unwrap();
}

/// Messages each way in a peer restart test.
const EACH_WAY: usize = 150;

/// The visitor of `session` sends messages `v` and an agent (started by
/// `agent` with its progress) messages `a`, [`EACH_WAY`] each; `restart`
/// runs once a third of them are acknowledged. The visitor's seqs, what
/// the agent's task returned, and how many were acknowledged at the
/// restart.
async fn restart_mid_exchange<T>(
    url: &GatewayUrl,
    session: &Session,
    agent: impl FnOnce(Progress) -> tokio::task::JoinHandle<T>,
    restart: impl std::future::Future<Output = anyhow::Result<()>>,
) -> (Vec<i64>, T, usize) {
    let (to_agent, to_visitor) = (Progress::default(), Progress::default());
    let visitor = visitor_sends(
        url.clone(),
        session.clone(),
        "v",
        EACH_WAY,
        to_agent.clone(),
    );
    let agent = agent(to_visitor.clone());
    let both = [&to_agent, &to_visitor];
    wait_for_total(&both, 2 * EACH_WAY / 3, "before the restart").await;
    restart.await.unwrap();
    let restarted_at = total_acked(&both);
    assert!(
        restarted_at < 2 * EACH_WAY,
        "the restart came after the traffic"
    );
    (visitor.await.unwrap(), agent.await.unwrap(), restarted_at)
}

/// Prosody restarts (killed, started again on its data) while a visitor
/// and an XMPP agent exchange messages both ways. The gateway's component
/// reconnects by itself, the agent's client logs in again, and every
/// message acknowledged before, during and after the restart arrives once,
/// in order, at both ends (the agent's messages are sent again under the
/// same stanza id until the gateway's receipt comes).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_prosody_restart_mid_chat_loses_and_duplicates_nothing() {
    let mut prosody = XmppServer::prosody(&[Account::new("101").preapproved()])
        .await
        .unwrap();
    let mut agent = prosody.agent("101").await.unwrap();
    let db = TestDb::create().await.unwrap();
    let gateway = spawn_bridged(&db, Some(&prosody), None).await.unwrap();
    let url = GatewayUrl::new(&gateway.url);
    let session = xmpp_chat(&url, &mut agent, "Xavier").await;
    let address = xmpp_address(&session);
    let follower = Follower::start(url.clone(), session.clone());

    let (own_seqs, run, restarted_at) = restart_mid_exchange(
        &url,
        &session,
        |progress| xmpp_agent_exchange(agent, address, "a", EACH_WAY, ("v", EACH_WAY), progress),
        prosody.restart(),
    )
    .await;
    let tally = check_exactly_once("visitor → XMPP agent", "v", EACH_WAY, &run.received, true);
    check_visitor_end(&url, &session, follower, ("v", &own_seqs), ("a", EACH_WAY)).await;
    wait_for_xmpp_connected(&gateway.url, true).await;
    eprintln!(
        "prosody restart at {restarted_at} of {} acknowledged: lost 0, duplicated 0; \
         copies under the same id {}, agent re-sends {}",
        2 * EACH_WAY,
        tally.copies,
        run.resent
    );
    gateway.kill().await.unwrap();
    db.drop_db().await.unwrap();
}

/// Kamailio restarts (killed, started again: its registrations are gone
/// until the phone refreshes its own) while a visitor and a SIP agent
/// exchange messages both ways, with the gateway's user agent on UDP, or
/// on TCP only (its connection to the proxy dies with it). The gateway
/// needs no help to reach the proxy again, and every message acknowledged
/// before, during and after arrives once, in order, at both ends; should
/// the gateway find the agent unreachable meanwhile, the chat goes back
/// to the queue and comes back to the agent with its history, under the
/// same Call-IDs.
async fn kamailio_restart_mid_chat(tcp: bool) {
    let mut pbx = SipPbx::start_with(|options| {
        if tcp {
            options.gateway_transport = Some("tcp");
        }
    })
    .await
    .unwrap();
    let phone = Arc::new(Softphone::start(&pbx.kamailio, "103").await.unwrap());
    let db = TestDb::create().await.unwrap();
    let config = bridged_config_with(&db, None, Some(&pbx), |config| {
        if let (true, Some(sip)) = (tcp, config.sip.as_mut()) {
            sip.listen_udp = None;
        }
    });
    let gateway = spawn_config(&db, &config).await.unwrap();
    let url = GatewayUrl::new(&gateway.url);
    let session = sip_chat(&url, &phone, "Sophie").await;
    let uri = session_uri(&session);
    let follower = Follower::start(url.clone(), session.clone());

    let (own_seqs, failed, restarted_at) = restart_mid_exchange(
        &url,
        &session,
        |progress| sip_agent_sends(phone.clone(), uri.clone(), "a", EACH_WAY, progress),
        pbx.kamailio.restart(),
    )
    .await;
    sip_wait_for_all(&phone, &uri, "v", EACH_WAY).await;
    let tally = check_exactly_once(
        "visitor → SIP agent",
        "v",
        EACH_WAY,
        &sip_received_from(&phone, &uri),
        true,
    );
    check_visitor_end(&url, &session, follower, ("v", &own_seqs), ("a", EACH_WAY)).await;
    eprintln!(
        "kamailio restart ({}) at {restarted_at} of {} acknowledged: lost 0, duplicated 0; \
         copies under the same Call-ID {}, agent attempts that failed {failed}",
        if tcp { "TCP" } else { "UDP" },
        2 * EACH_WAY,
        tally.copies,
    );
    gateway.kill().await.unwrap();
    db.drop_db().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_kamailio_restart_mid_chat_loses_and_duplicates_nothing_over_udp() {
    kamailio_restart_mid_chat(false).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_kamailio_restart_mid_chat_loses_and_duplicates_nothing_over_tcp() {
    kamailio_restart_mid_chat(true).await;
}

/// The longest a visitor's request may take while the database is away:
/// the gateway answers once its pool gave up (`database.acquire_timeout_secs`,
/// 5 s), well before a client's own timeout.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(15);

/// What one visitor saw while PostgreSQL restarted.
#[derive(Default)]
struct Observed {
    /// `(seq, text)` of each acknowledged message, in order.
    acked: Vec<(String, String)>,
    /// 503 `unavailable` answers (each with a `Retry-After`).
    unavailable: usize,
    slowest: Duration,
    /// Anything else: a 500, another error, a failed connection.
    wrong: Vec<String>,
}

/// A visitor posting numbered messages until `stop`, each retried with
/// its `client_id` until acknowledged.
fn keep_posting(
    url: GatewayUrl,
    session: Session,
    tag: &'static str,
    progress: Progress,
    stop: tokio_util::sync::CancellationToken,
) -> tokio::task::JoinHandle<Observed> {
    tokio::spawn(async move {
        let mut seen = Observed::default();
        let visitor = url.visitor();
        for n in 0.. {
            if stop.is_cancelled() {
                break;
            }
            let text = numbered(tag, n);
            let deadline = tokio::time::Instant::now() + PATIENCE;
            loop {
                assert!(
                    tokio::time::Instant::now() < deadline,
                    "{tag}: message {n} never acknowledged"
                );
                let asked = Instant::now();
                let reply = visitor.say(&session, &format!("{tag}-{n}"), &text).await;
                seen.slowest = seen.slowest.max(asked.elapsed());
                match reply {
                    Ok(r) if r.status == 201 || r.status == 200 => {
                        seen.acked.push((r.body["seq"].to_string(), text));
                        progress.ack();
                        break;
                    }
                    Ok(r)
                        if r.status == 503
                            && r.error() == "unavailable"
                            && r.retry_after.is_some() =>
                    {
                        seen.unavailable += 1;
                    }
                    Ok(r) => seen
                        .wrong
                        .push(format!("{} {} {:?}", r.status, r.body, r.retry_after)),
                    Err(e) => seen.wrong.push(e.to_string()),
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
        seen
    })
}

/// Polls `/readyz` until it answers `status`; the body.
async fn readyz_until(url: &str, status: u16, within: Duration) -> serde_json::Value {
    let deadline = tokio::time::Instant::now() + within;
    loop {
        let visitor = frontdesk_tests::visitor::Visitor::new(url);
        if let Ok(reply) = visitor.get("/readyz", None).await {
            if reply.status == status {
                return reply.body;
            }
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "/readyz never answered {status} within {within:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// PostgreSQL (a throwaway server of the test's own, never the shared
/// one) stops while visitors post, and starts again. Meanwhile `/readyz`
/// says not ready, and visitors get 503 `unavailable` with a
/// `Retry-After`, within the request timeout: never a 500, never a hang.
/// Once it is back the gateway recovers by itself (no restart): `/readyz`
/// is ready, visitors are acknowledged again, and every message
/// acknowledged before, during (a retry of one stored just before) or
/// after is in each conversation exactly once, in order, at its seq.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_postgres_restart_under_load_is_a_pause_visitors_can_retry() {
    const VISITORS: usize = 3;
    let mut postgres = PgServer::start_new().await.unwrap();
    let db = TestDb::create_on_server(&postgres.url("postgres"))
        .await
        .unwrap();
    let gateway = GatewayProcess::spawn_on(&db).await.unwrap();
    let url = GatewayUrl::new(&gateway.url);
    readyz_until(&gateway.url, 200, PATIENCE).await;
    let stop = tokio_util::sync::CancellationToken::new();
    let mut visitors = Vec::new();
    for (n, tag) in ["p0", "p1", "p2"].into_iter().enumerate().take(VISITORS) {
        let session = url
            .visitor()
            .start("live", &format!("Visitor {n}"))
            .await
            .unwrap();
        let progress = Progress::default();
        let task = keep_posting(
            url.clone(),
            session.clone(),
            tag,
            progress.clone(),
            stop.clone(),
        );
        visitors.push((session, tag, progress, task));
    }
    for (_, tag, progress, _) in &visitors {
        progress.wait_for(10, tag).await;
    }

    postgres.stop().await.unwrap();
    let stopped = Instant::now();
    let body = readyz_until(&gateway.url, 503, REQUEST_TIMEOUT).await;
    let not_ready_after = stopped.elapsed();
    assert_eq!(body["status"], "database_unreachable");
    // A widget reconnecting meanwhile is not told its token is bad (4401
    // would stop it for good): the upgrade fails, or closes 1013.
    let session = &visitors[0].0;
    match url.visitor().events(session, 0).await {
        Err(_) => {}
        Ok(mut stream) => {
            let item = stream.next_item(REQUEST_TIMEOUT).await.unwrap();
            assert_eq!(item, StreamItem::Closed(Some(1013)));
        }
    }
    // Visitors keep posting into the outage for a while.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let during: Vec<usize> = visitors.iter().map(|(_, _, p, _)| p.acked()).collect();
    postgres.start().await.unwrap();
    let restarted = Instant::now();
    readyz_until(&gateway.url, 200, PATIENCE).await;
    let ready_after = restarted.elapsed();
    for ((_, tag, progress, _), before) in visitors.iter().zip(&during) {
        progress.wait_for(before + 10, tag).await;
    }
    stop.cancel();

    let mut unavailable = 0;
    let mut slowest = Duration::ZERO;
    let mut acked = 0;
    for (session, tag, _, task) in visitors {
        let seen = task.await.unwrap();
        assert!(seen.wrong.is_empty(), "{tag}: {:?}", seen.wrong);
        unavailable += seen.unavailable;
        slowest = slowest.max(seen.slowest);
        acked += seen.acked.len();
        let history = url.visitor().messages(&session).await.unwrap();
        let stored: Vec<(String, String)> = history.body["messages"]
            .as_array()
            .unwrap()
            .iter()
            .map(|m| {
                (
                    m["seq"].to_string(),
                    m["body"].as_str().unwrap_or_default().to_owned(),
                )
            })
            .collect();
        check_exactly_once(tag, tag, seen.acked.len(), &stored, false);
        let stored_tagged: Vec<&(String, String)> = stored
            .iter()
            .filter(|(_, body)| number_of(tag, body).is_some())
            .collect();
        let acked_refs: Vec<&(String, String)> = seen.acked.iter().collect();
        assert_eq!(
            stored_tagged, acked_refs,
            "{tag}: stored under other seqs than acknowledged"
        );
    }
    assert!(unavailable > 0, "no visitor request met the outage");
    assert!(
        slowest < REQUEST_TIMEOUT,
        "a request took {slowest:?} while the database was away"
    );
    eprintln!(
        "postgres restart: /readyz not ready {not_ready_after:?} after the stop, ready \
         {ready_after:?} after the start; {unavailable} answers 503 unavailable, slowest request \
         {slowest:?}; {acked} messages acknowledged, lost 0, duplicated 0"
    );
    gateway.kill().await.unwrap();
    db.drop_db().await.unwrap();
}

/// A widget whose token cannot be checked because the database went away
/// after its upgrade is told to come back (close 1013, try again later),
/// not that its token is bad (4401, after which the widget gives up).
#[tokio::test]
async fn a_widget_whose_token_cannot_be_checked_is_told_to_come_back() {
    use futures::{SinkExt, StreamExt};
    use tokio_tungstenite::tungstenite::Message;

    let gw = TestGateway::spawn().await;
    let session = Visitor::new(&gw.url).start("live", "Jane").await.unwrap();
    let events = format!(
        "{}/api/v1/conversations/{}/events",
        gw.url.replacen("http", "ws", 1),
        session.id
    );
    let (mut socket, _) = tokio_tungstenite::connect_async(events).await.unwrap();
    gw.engine.store().close().await;
    let auth = serde_json::json!({ "type": "auth", "token": session.token, "since": 0 });
    socket
        .send(Message::Text(auth.to_string().into()))
        .await
        .unwrap();
    let frame = tokio::time::timeout(REQUEST_TIMEOUT, socket.next())
        .await
        .expect("no close in time");
    let Some(Ok(Message::Close(Some(close)))) = frame else {
        panic!("not a close frame: {frame:?}")
    };
    assert_eq!(u16::from(close.code), 1013, "{close:?}");
    gw.stop().await;
}
