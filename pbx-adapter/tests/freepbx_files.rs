//! `frontdesk pbx import freepbx --conf-dir` on the generated files of a
//! FreePBX in `tests/data/freepbx/` (queues_additional.conf,
//! extensions_additional.conf, pjsip.endpoint.conf, as FreePBX writes
//! them): the chained time conditions, their override toggles, the
//! announcements and the external member.

use std::path::Path;

use pbx_adapter::import::asterisk::import_dir;
use pbx_adapter::import::{ImportedClosure, Problem};
use pbx_adapter::schedule::{Destination, Schedule};

fn import() -> pbx_adapter::import::Import {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/freepbx");
    import_dir(&dir).unwrap_or_else(|e| panic!("{e}"))
}

#[test]
fn chained_time_conditions_route_with_their_zone_and_announcements() {
    let import = import();
    assert_eq!(import.routings.len(), 1, "{:#?}", import.routings);
    let r = &import.routings[0];
    assert_eq!(r.entries, ["from-trunk,0123456789"]);
    let cfg = &r.schedule;
    // Every condition names Europe/Paris, so the schedule does too.
    assert_eq!(cfg.timezone.as_deref(), Some("Europe/Paris"));
    let holidays = Destination::Closed(Some("app-announcement-2-begin".into()));
    let routes: Vec<(Vec<&str>, &Destination)> = cfg
        .routes
        .iter()
        .map(|r| (r.when.iter().map(String::as_str).collect(), &r.to))
        .collect();
    let q600 = Destination::Queue("600".parse().unwrap());
    // TC 1 (office hours) chains into TC 2 (holidays): holidays within
    // office hours close, the rest of office hours go to queue 600.
    assert_eq!(
        routes,
        [
            (
                vec![
                    "09:00-17:00,mon-fri,25,dec,Europe/Paris",
                    "09:00-17:00,mon-fri,1,jan,Europe/Paris"
                ],
                &holidays
            ),
            (vec!["09:00-17:00,mon-fri,*,*,Europe/Paris"], &q600),
            (
                vec![
                    "09:00-12:00,sat,25,dec,Europe/Paris",
                    "09:00-12:00,sat,1,jan,Europe/Paris"
                ],
                &holidays
            ),
            (vec!["09:00-12:00,sat,*,*,Europe/Paris"], &q600),
        ]
    );
    assert_eq!(cfg.default, Some(Destination::Closed(None)));
    // The second DID goes straight to queue 601: no schedule needed.
    assert_eq!(
        import.direct,
        [("from-trunk,0123456790".to_owned(), "601".parse().unwrap())]
    );
    assert!(import
        .report()
        .contains("Always to one queue (a channel on it needs no schedule):\n  from-trunk,0123456790 → queue 601\n"));
    assert_eq!(r.closed_sound.as_deref(), Some("custom/after-hours"));
    assert_eq!(
        r.closures,
        [ImportedClosure {
            name: "app-announcement-2-begin".into(),
            sound: Some("custom/holidays".into())
        }]
    );
    let schedule = Schedule::from_config(cfg).unwrap();
    let at = |s: &str| s.parse::<chrono::DateTime<chrono::Utc>>().unwrap();
    // Friday 25 December 2026, 10:00 in Paris; Monday 21 December, 10:00
    // and 18:00.
    assert_eq!(
        schedule.destination_at(at("2026-12-25T09:00:00Z")),
        &holidays
    );
    assert_eq!(schedule.destination_at(at("2026-12-21T09:00:00Z")), &q600);
    assert_eq!(
        schedule.destination_at(at("2026-12-21T17:00:00Z")),
        &Destination::Closed(None)
    );
}

#[test]
fn queues_members_and_names_come_from_the_generated_files() {
    let import = import();
    let queues: Vec<(&str, Vec<&str>, Option<u32>)> = import
        .queues
        .iter()
        .map(|q| {
            (
                q.extension.as_str(),
                q.members.iter().map(|m| m.agent.as_str()).collect(),
                q.max_wait_secs,
            )
        })
        .collect();
    // QMAXWAIT set before Queue() is the max wait; the external number
    // is left out.
    assert_eq!(
        queues,
        [
            ("600", vec!["201", "202"], Some(300)),
            ("601", vec!["202", "203"], Some(120))
        ]
    );
    // After its max wait, queue 601 goes on to queue 600, as the dialplan does.
    assert_eq!(
        import.queues[1].overflow,
        Some(pbx_adapter::queue::Overflow::Queue("600".parse().unwrap()))
    );
    let agents: Vec<(&str, &str)> = import
        .agents
        .iter()
        .map(|a| (a.extension.as_str(), a.name.as_str()))
        .collect();
    // 201 and 203 are named from their PJSIP endpoint's callerid; 202's
    // member line names him.
    assert_eq!(
        agents,
        [
            ("201", "Alice Martin"),
            ("202", "Bob Durand"),
            ("203", "Durand, Chloé")
        ]
    );
    let p = |file: &str, line: usize, text: &str| Problem {
        file: file.to_owned(),
        line,
        text: text.to_owned(),
    };
    let toggle = |n: u32, state: &str| {
        format!(
            "GotoIf($[\"${{DB(TC/{n})}}\" = \"{state}\"]?…) tests an override toggle (a feature \
             code that forces a time condition open or closed); imported as the path taken when \
             it is false"
        )
    };
    assert_eq!(
        import.problems,
        [
            p("extensions_additional.conf", 42, &toggle(1, "true")),
            p("extensions_additional.conf", 43, &toggle(1, "false")),
            p("extensions_additional.conf", 52, &toggle(2, "true")),
            p("extensions_additional.conf", 53, &toggle(2, "false")),
            p(
                "extensions_additional.conf",
                90,
                "queue 600: after 300 s the PBX continues the dialplan after Queue(); Frontdesk \
                 shows the contact alternatives (set `overflow` to move the chat to another queue)"
            ),
            p(
                "extensions_additional.conf",
                95,
                "queue 601: after 120 s the PBX sends callers on to queue 600; imported as its \
                 overflow"
            ),
            p(
                "extensions_additional.conf",
                95,
                "Queue() options `t` change what a caller hears or may do; they have no chat \
                 equivalent"
            ),
            p(
                "queues_additional.conf",
                18,
                "`retry = 5` is not imported: it times how phones ring and are redialled"
            ),
            p(
                "queues_additional.conf",
                20,
                "`servicelevel = 60` is not imported: it feeds call statistics and manager events"
            ),
            p(
                "queues_additional.conf",
                27,
                "`music = default` is not imported: it sets what a caller hears while waiting"
            ),
            p(
                "queues_additional.conf",
                30,
                "queue 600: member `Local/0612345678#@from-queue/n` forwards to the phone number \
                 0612345678; a phone cannot take a chat, so it is left out; member not imported"
            ),
            p(
                "queues_additional.conf",
                38,
                "`retry = 5` is not imported: it times how phones ring and are redialled"
            ),
        ]
    );
}
