//! Time-based routing (spec M3): the first route that holds decides where
//! a new chat goes (a queue, the menu, a named closure), through the
//! widget's own API.

use chrono::{Duration, Utc};
use frontdesk::config::ChannelConfig;
use frontdesk_tests::config::ALLOWED_ORIGIN;
use frontdesk_tests::gateway::TestGateway;
use frontdesk_tests::visitor::Visitor;

/// A channel of the test directory with a routing schedule.
fn channel(toml_text: &str) -> ChannelConfig {
    toml::from_str(toml_text).unwrap_or_else(|e| panic!("{e}"))
}

#[tokio::test]
async fn the_first_route_that_holds_picks_the_queue() {
    // The first route never holds (30 February); the second always does
    // and sends to Support (601), not the channel's own queue (600).
    let routed = channel(&format!(
        r#"
        key = "routed"
        name = "Acme Plumbing"
        mode = "live"
        queue = "600"
        allowed_origins = ["{origin}"]
        [schedule]
        timezone = "Europe/Paris"
        default = "closed"
        [[schedule.routes]]
        when = "*,*,30,feb"
        to = "closed"
        [[schedule.routes]]
        when = "*,*,*,*"
        to = {{ queue = "601" }}
        "#,
        origin = ALLOWED_ORIGIN
    ));
    let mut gw = TestGateway::spawn_with(|c| c.channels.push(routed)).await;
    gw.all_agents_available().await;
    let visitor = Visitor::new(&gw.url);
    let info = visitor.channel("routed").await.unwrap();
    assert_eq!(info.body["open"], true, "{:?}", info.body);
    assert_eq!(info.body["mode"], "live");
    visitor.start("routed", "Jane").await.unwrap();
    let offer = gw.next_offer().await;
    assert_eq!(offer.conversation.queue.as_deref(), Some("601"));
    assert_eq!(offer.agents[0].extension.to_string(), "103");
    gw.stop().await;
}

#[tokio::test]
async fn a_holiday_route_closes_with_its_own_text() {
    let today = Utc::now().date_naive();
    let holiday = channel(&format!(
        r#"
        key = "holiday"
        name = "Acme Plumbing"
        mode = "chatbot"
        allowed_origins = ["{origin}"]
        options = [{{ id = "help", label = "Help", welcome = "Hi", queue = "601" }}]
        [schedule]
        timezone = "UTC"
        [[schedule.routes]]
        holidays = ["{from}..{to} Winter break"]
        to = {{ closed = "winter" }}
        [[schedule.routes]]
        when = "*,*,*,*"
        to = "menu"
        [closures.winter]
        text = "Closed for the winter break, back {{next_open}}."
        alternatives = [{{ kind = "email", label = "Write to us", value = "help@example.com" }}]
        "#,
        origin = ALLOWED_ORIGIN,
        from = today - Duration::days(1),
        to = today + Duration::days(1),
    ));
    let gw = TestGateway::spawn_with(|c| c.channels.push(holiday)).await;
    let visitor = Visitor::new(&gw.url);
    let expected = (today + Duration::days(2))
        .and_hms_opt(0, 0, 0)
        .unwrap()
        .and_utc();
    let info = visitor.channel("holiday").await.unwrap();
    assert_eq!(info.body["open"], false, "{:?}", info.body);
    assert_eq!(
        info.body["closed"]["text"],
        "Closed for the winter break, back {next_open}."
    );
    let next_open: chrono::DateTime<Utc> =
        info.body["next_open"].as_str().unwrap().parse().unwrap();
    assert_eq!(next_open, expected);

    let reply = visitor
        .try_start("holiday", "Jane", "jane@example.com")
        .await
        .unwrap();
    assert_eq!((reply.status.as_u16(), reply.error()), (409, "closed"));
    assert_eq!(
        reply.body["closed"]["alternatives"][0]["value"],
        "help@example.com"
    );
    gw.stop().await;
}
