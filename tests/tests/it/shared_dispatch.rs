//! Dispatch with two gateway nodes on one PostgreSQL database (in-process
//! gateways with loopback agents, `[cluster]` on): a queue's strategy is
//! one queue's however many nodes serve it, an agent rings for one chat at
//! a time cluster-wide, an offer made on one node is taken on another, and
//! an offer whose node stopped rings out and is made again by the other.
//! PostgreSQL only (several nodes need it).

use std::time::{Duration, Instant};

use frontdesk::config::Config;
use frontdesk::engine::Offer;
use frontdesk_tests::database::several_nodes_run;
use frontdesk_tests::gateway::TestGateway;
use frontdesk_tests::visitor::Visitor;
use pbx_adapter::queue::{MemberConfig, Strategy};

const WAIT: Duration = Duration::from_secs(15);

/// Queue 600 (channel `live`) as a round robin over the three agents, a
/// short ring timeout, timers polled often.
fn round_robin(config: &mut Config) {
    config.cluster.enabled = true;
    config.server.timer_poll_ms = 100;
    let queue = &mut config.queues[0];
    queue.strategy = Strategy::Rrmemory;
    queue.ring_timeout_secs = 2;
    queue.members = ["101", "102", "103"]
        .iter()
        .map(|a| MemberConfig {
            agent: a.parse().unwrap(),
            penalty: 0,
        })
        .collect();
}

/// The next offer either node makes.
async fn next_offer(a: &mut TestGateway, b: &mut TestGateway) -> Offer {
    tokio::time::timeout(WAIT, async {
        tokio::select! {
            offer = a.next_offer() => offer,
            offer = b.next_offer() => offer,
        }
    })
    .await
    .expect("an offer from one of the nodes")
}

fn ringing(offer: &Offer) -> Vec<String> {
    offer
        .agents
        .iter()
        .map(|a| a.extension.to_string())
        .collect()
}

#[tokio::test]
async fn a_round_robin_goes_round_once_across_nodes_and_offers_are_taken_anywhere() {
    if !several_nodes_run() {
        return;
    }
    let mut one = TestGateway::spawn_with(round_robin).await;
    let mut two = one.spawn_sharing(round_robin).await;
    one.all_agents_available().await;
    let mut offered = Vec::new();
    for turn in 0..6 {
        // Visitors arrive on alternate nodes; the agent answers through
        // the other one.
        let (here, there) = if turn % 2 == 0 {
            (one.url.clone(), two.engine.clone())
        } else {
            (two.url.clone(), one.engine.clone())
        };
        let visitor = Visitor::new(&here);
        let session = visitor
            .start("live", &format!("Visitor {turn}"))
            .await
            .unwrap();
        let offer = next_offer(&mut one, &mut two).await;
        assert_eq!(offer.conversation.id.to_string(), session.id);
        let agents = ringing(&offer);
        assert_eq!(agents.len(), 1, "a round robin rings one agent: {agents:?}");
        let agent = agents[0].parse().unwrap();
        let taken = there.agent_accept(offer.conversation.id, &agent).await;
        assert!(taken.is_ok(), "taken through the other node: {taken:?}");
        assert!(visitor.close(&session).await.unwrap().status.is_success());
        offered.push(agents[0].clone());
    }
    assert_eq!(
        offered,
        ["101", "102", "103", "101", "102", "103"],
        "one round robin, not one per node"
    );
    two.stop().await;
    one.stop().await;
}

#[tokio::test]
async fn an_agent_rings_for_one_chat_at_a_time_across_nodes() {
    if !several_nodes_run() {
        return;
    }
    let single = |config: &mut Config| {
        round_robin(config);
        config.queues[0].members.truncate(1);
        config.queues[0].strategy = Strategy::Ringall;
    };
    let mut one = TestGateway::spawn_with(single).await;
    let mut two = one.spawn_sharing(single).await;
    one.all_agents_available().await;
    let (on_one, on_two) = (Visitor::new(&one.url), Visitor::new(&two.url));
    let (first, second) = tokio::join!(
        on_one.start("live", "First"),
        on_two.start("live", "Second"),
    );
    let (first, second) = (first.unwrap(), second.unwrap());
    let offer = next_offer(&mut one, &mut two).await;
    assert_eq!(ringing(&offer), ["101"]);
    // The other chat waits: no second offer while 101 rings.
    let again = tokio::time::timeout(Duration::from_millis(1500), async {
        tokio::select! {
            offer = one.next_offer() => offer,
            offer = two.next_offer() => offer,
        }
    })
    .await;
    match again {
        Err(_) => {}
        // The first offer rang out (2 s) and the other chat's turn came:
        // still one at a time.
        Ok(next) => assert_ne!(next.conversation.id, offer.conversation.id),
    }
    let states: Vec<String> = {
        let mut states = Vec::new();
        for (gateway, session) in [(&one, &first), (&two, &second)] {
            let view = Visitor::new(&gateway.url)
                .conversation(session)
                .await
                .unwrap();
            states.push(view.body["state"].as_str().unwrap().to_owned());
        }
        states
    };
    assert_eq!(
        states.iter().filter(|s| *s == "offered").count(),
        1,
        "one agent, one ringing chat: {states:?}"
    );
    two.stop().await;
    one.stop().await;
}

#[tokio::test]
async fn an_offer_whose_node_stopped_rings_out_and_is_made_again_by_another() {
    if !several_nodes_run() {
        return;
    }
    let mut one = TestGateway::spawn_with(round_robin).await;
    let mut two = one.spawn_sharing(round_robin).await;
    one.all_agents_available().await;
    let visitor = Visitor::new(&one.url);
    let session = visitor.start("live", "Left behind").await.unwrap();
    let first = one.next_offer().await;
    assert_eq!(first.conversation.id.to_string(), session.id);
    // The node that made the offer goes; its timer is a row the other
    // node's loop fires.
    let db = one.stop_keep_db().await;
    let stopped = Instant::now();
    let again = tokio::time::timeout(WAIT, two.next_offer())
        .await
        .expect("the other node made the offer again");
    let took = stopped.elapsed();
    assert_eq!(again.conversation.id, first.conversation.id);
    assert_ne!(
        ringing(&again),
        ringing(&first),
        "the round robin moved on past the agent who let it ring out"
    );
    println!(
        "takeover: a stopped node's offer (ring timeout 2 s) was made again by the other node {} ms after the stop",
        took.as_millis()
    );
    let view = Visitor::new(&two.url).conversation(&session).await.unwrap();
    assert_eq!(view.body["state"], "offered");
    two.stop().await;
    db.drop_db().await.unwrap();
}
