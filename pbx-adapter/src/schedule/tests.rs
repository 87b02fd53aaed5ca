//! Schedule-level tests: rules + holidays + DST + next_open.

use super::*;

fn utc(s: &str) -> DateTime<Utc> {
    s.parse().unwrap_or_else(|e| panic!("{s}: {e}"))
}

fn schedule(tz: &str, open: &[&str], holidays: &[&str]) -> Schedule {
    let cfg = ScheduleConfig {
        timezone: Some(tz.into()),
        open: open.iter().map(|s| s.to_string()).collect(),
        holidays: holidays.iter().map(|s| s.to_string()).collect(),
        holidays_ics: None,
        ..Default::default()
    };
    Schedule::from_config(&cfg).unwrap_or_else(|e| panic!("{e}"))
}

const OFFICE: &[&str] = &["09:00-12:30,mon-fri,*,*", "14:00-18:00,mon-fri,*,*"];

#[test]
fn always_open_and_empty_config() {
    for s in [
        Schedule::always_open(),
        Schedule::from_config(&ScheduleConfig::default()).unwrap(),
    ] {
        let t = utc("2026-11-29T03:17:42Z");
        assert!(s.is_open(t));
        assert_eq!(s.next_open(t), Some(t));
        assert_eq!(s.explain(t).reason, Reason::AlwaysOpen);
        assert_eq!(s.timezone(), Tz::UTC);
    }
}

#[test]
fn office_hours_and_explanations() {
    let s = schedule("Europe/Paris", OFFICE, &[]);
    // Wednesday 2026-11-25, Paris is UTC+1.
    let morning = s.explain(utc("2026-11-25T09:15:00Z"));
    assert!(morning.open);
    assert_eq!(
        morning.reason,
        Reason::Rule {
            index: 0,
            spec: OFFICE[0].into()
        }
    );
    assert_eq!(
        morning.to_string(),
        "open at Wed 2026-11-25 10:15 CET (Europe/Paris): open rule #1 `09:00-12:30,mon-fri,*,*` holds"
    );
    let lunch = s.explain(utc("2026-11-25T11:45:00Z"));
    assert!(!lunch.open);
    assert_eq!(lunch.reason, Reason::OutsideRules { rules: 2 });
    assert!(lunch
        .to_string()
        .starts_with("closed at Wed 2026-11-25 12:45 CET"));
    assert_eq!(
        s.next_open(utc("2026-11-25T11:45:00Z")),
        Some(utc("2026-11-25T13:00:00Z"))
    );
    let afternoon = s.explain(utc("2026-11-25T13:00:00Z"));
    assert!(matches!(afternoon.reason, Reason::Rule { index: 1, .. }));
    // 18:00 is the last open minute (inclusive end), 18:01 is closed.
    assert!(s.is_open(utc("2026-11-25T17:00:59Z")));
    assert!(!s.is_open(utc("2026-11-25T17:01:00Z")));
    // Friday evening -> Monday morning.
    assert_eq!(
        s.next_open(utc("2026-11-27T17:30:00Z")),
        Some(utc("2026-11-30T08:00:00Z"))
    );
}

#[test]
fn holidays_close_whatever_the_rules_say() {
    let s = schedule(
        "Europe/Paris",
        OFFICE,
        &["2026-12-25 Christmas", "2026-12-31..2027-01-01"],
    );
    // Christmas is a Friday; Thursday 24th 19:00 -> Monday 28th 09:00 CET.
    assert_eq!(
        s.next_open(utc("2026-12-24T18:00:00Z")),
        Some(utc("2026-12-28T08:00:00Z"))
    );
    let d = s.explain(utc("2026-12-25T10:00:00Z"));
    assert!(!d.open);
    assert_eq!(
        d.reason,
        Reason::Holiday {
            label: "Christmas (2026-12-25)".into()
        }
    );
    assert_eq!(
        d.to_string(),
        "closed at Fri 2026-12-25 11:00 CET (Europe/Paris): holiday Christmas (2026-12-25)"
    );
    // The holiday is the local day: 23:30 UTC on the 24th is already the 25th.
    assert!(!s.is_open(utc("2026-12-24T23:30:00Z")));
    assert!(s.is_open(utc("2026-12-24T16:59:00Z")));
    // Range: Thursday 31st and Friday 1st closed -> Monday 4th.
    assert_eq!(
        s.next_open(utc("2026-12-30T17:30:00Z")),
        Some(utc("2027-01-04T08:00:00Z"))
    );

    // Always-open schedule with a holiday: reopens when the day ends.
    let s = schedule("America/New_York", &[], &["2026-07-04"]);
    assert_eq!(
        s.next_open(utc("2026-07-04T12:00:00Z")),
        Some(utc("2026-07-05T04:00:00Z"))
    );
    assert!(s.is_open(utc("2026-07-04T03:59:59Z")));
}

#[test]
fn next_open_gives_up_after_the_horizon() {
    let never = schedule("UTC", &["*,*,30,feb"], &[]);
    assert_eq!(never.next_open(utc("2026-01-01T00:00:00Z")), None);
    let long_closure = schedule("UTC", &[], &["2026-01-01..2027-12-31"]);
    assert_eq!(long_closure.next_open(utc("2026-01-01T00:00:00Z")), None);
    let after_year = schedule("UTC", &[], &["2026-01-01..2026-12-31"]);
    assert_eq!(
        after_year.next_open(utc("2026-01-01T00:00:00Z")),
        Some(utc("2027-01-01T00:00:00Z"))
    );
    // A yearly condition found 364 days ahead, past many holidays.
    let once_a_year = schedule(
        "UTC",
        &["10:00,*,1,jan"],
        &["2026-03-01", "2026-06-01", "2026-09-01"],
    );
    assert_eq!(
        once_a_year.next_open(utc("2026-01-01T10:01:00Z")),
        Some(utc("2027-01-01T10:00:00Z"))
    );
}

#[test]
fn rule_time_zone_overrides_the_schedule_zone() {
    let s = schedule(
        "Europe/Paris",
        &["09:00-17:00,mon-fri,*,*,America/New_York"],
        &[],
    );
    // Monday 2026-11-30: 09:00 New York (EST) is 14:00 UTC.
    assert!(!s.is_open(utc("2026-11-30T13:59:00Z")));
    assert!(s.is_open(utc("2026-11-30T14:00:00Z")));
    assert_eq!(
        s.next_open(utc("2026-11-30T08:00:00Z")),
        Some(utc("2026-11-30T14:00:00Z"))
    );
    // Saturday 00:30 in Paris is still Friday 18:30 in New York: closed.
    assert!(s.is_open(utc("2026-11-27T22:00:00Z")));
    assert!(!s.is_open(utc("2026-11-28T22:30:00Z")));
}

mod dst {
    use super::*;

    // Paris: 2026-03-29 02:00 CET -> 03:00 CEST at 01:00 UTC;
    //        2026-10-25 03:00 CEST -> 02:00 CET at 01:00 UTC.
    #[test]
    fn paris_spring_gap_never_matches() {
        let s = schedule("Europe/Paris", &["02:00-02:59,*,*,*"], &[]);
        for minute in 0..120 {
            let t = utc("2026-03-29T00:00:00Z") + Duration::minutes(minute);
            assert!(!s.is_open(t), "{t}");
        }
        // Saturday night 01:30 CET -> Monday 02:00 CEST = 00:00 UTC.
        assert!(s.is_open(utc("2026-03-28T01:00:00Z")));
        assert_eq!(
            s.next_open(utc("2026-03-29T00:30:00Z")),
            Some(utc("2026-03-30T00:00:00Z"))
        );
    }

    #[test]
    fn paris_autumn_overlap_matches_twice() {
        let s = schedule("Europe/Paris", &["02:00-02:29,*,*,*"], &[]);
        assert!(s.is_open(utc("2026-10-25T00:00:00Z"))); // 02:00 CEST
        assert!(s.is_open(utc("2026-10-25T00:29:00Z")));
        assert!(!s.is_open(utc("2026-10-25T00:30:00Z")));
        assert!(s.is_open(utc("2026-10-25T01:00:00Z"))); // 02:00 CET
        assert_eq!(
            s.next_open(utc("2026-10-25T00:30:00Z")),
            Some(utc("2026-10-25T01:00:00Z"))
        );
        assert_eq!(
            s.next_open(utc("2026-10-25T01:30:00Z")),
            Some(utc("2026-10-26T01:00:00Z"))
        );
    }

    #[test]
    fn paris_office_hours_across_both_changes() {
        let s = schedule("Europe/Paris", OFFICE, &[]);
        // Friday 27 March after closing (CET) -> Monday 30 March 09:00 CEST.
        assert_eq!(
            s.next_open(utc("2026-03-27T17:30:00Z")),
            Some(utc("2026-03-30T07:00:00Z"))
        );
        // Friday 23 October after closing (CEST) -> Monday 26 October 09:00 CET.
        assert_eq!(
            s.next_open(utc("2026-10-23T16:30:00Z")),
            Some(utc("2026-10-26T08:00:00Z"))
        );
    }

    #[test]
    fn paris_holiday_on_a_dst_day() {
        let s = schedule("Europe/Paris", &[], &["2026-03-29", "2026-10-25"]);
        assert_eq!(
            s.next_open(utc("2026-03-28T23:00:00Z")),
            Some(utc("2026-03-29T22:00:00Z"))
        );
        assert_eq!(
            s.next_open(utc("2026-10-24T22:00:00Z")),
            Some(utc("2026-10-25T23:00:00Z"))
        );
    }

    // New York: 2026-03-08 02:00 EST -> 03:00 EDT at 07:00 UTC;
    //           2026-11-01 02:00 EDT -> 01:00 EST at 06:00 UTC.
    #[test]
    fn new_york_spring_gap() {
        let s = schedule("America/New_York", &["02:30,*,*,*"], &[]);
        assert_eq!(
            s.next_open(utc("2026-03-08T06:00:00Z")),
            Some(utc("2026-03-09T06:30:00Z"))
        );
        assert_eq!(
            s.next_open(utc("2026-03-07T00:00:00Z")),
            Some(utc("2026-03-07T07:30:00Z"))
        );
        // A range over the gap opens when the clocks resume at 03:00 EDT.
        let s = schedule("America/New_York", &["01:30-03:30,sun,*,*"], &[]);
        assert!(s.is_open(utc("2026-03-08T06:59:00Z"))); // 01:59 EST
        assert!(s.is_open(utc("2026-03-08T07:00:00Z"))); // 03:00 EDT
        assert!(s.is_open(utc("2026-03-08T07:30:00Z"))); // 03:30 EDT
        assert!(!s.is_open(utc("2026-03-08T07:31:00Z")));
    }

    #[test]
    fn new_york_autumn_overlap() {
        let s = schedule("America/New_York", &["01:30-01:30,*,*,*"], &[]);
        assert!(s.is_open(utc("2026-11-01T05:30:00Z"))); // EDT
        assert!(s.is_open(utc("2026-11-01T06:30:00Z"))); // EST
        assert_eq!(
            s.next_open(utc("2026-11-01T05:31:00Z")),
            Some(utc("2026-11-01T06:30:00Z"))
        );
        assert_eq!(
            s.next_open(utc("2026-11-01T06:31:00Z")),
            Some(utc("2026-11-02T06:30:00Z"))
        );
    }

    #[test]
    fn new_york_office_hours_across_the_change() {
        let s = schedule("America/New_York", &["09:00-17:00,mon-fri,*,*"], &[]);
        // Friday 6 March after 17:00 EST -> Monday 9 March 09:00 EDT.
        assert_eq!(
            s.next_open(utc("2026-03-06T22:30:00Z")),
            Some(utc("2026-03-09T13:00:00Z"))
        );
        assert_eq!(
            s.next_open(utc("2026-10-30T21:30:00Z")),
            Some(utc("2026-11-02T14:00:00Z"))
        );
    }
}

mod ics_file {
    use super::*;

    fn sample_path() -> PathBuf {
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/data/holidays-fr.ics")
    }

    fn sample() -> Schedule {
        let cfg = ScheduleConfig {
            timezone: Some("Europe/Paris".into()),
            open: OFFICE.iter().map(|s| s.to_string()).collect(),
            holidays: vec!["2026-05-14 Ascension".into()],
            holidays_ics: Some(sample_path()),
            ..Default::default()
        };
        Schedule::from_config(&cfg).unwrap_or_else(|e| panic!("{e}"))
    }

    #[test]
    fn all_day_events_close_the_local_day() {
        let s = sample();
        let d = s.explain(utc("2026-07-14T08:00:00Z"));
        assert!(!d.open);
        assert_eq!(
            d.reason,
            Reason::Holiday {
                label: "Fête nationale (2026-07-14, holidays-fr.ics)".into()
            }
        );
        // Yearly: next year too, and the day after is a normal day.
        assert!(!s.is_open(utc("2027-07-14T08:00:00Z")));
        assert!(s.is_open(utc("2026-07-15T08:00:00Z")));
        // Inline and file holidays together.
        assert!(!s.is_open(utc("2026-05-14T08:00:00Z")));
        assert!(!s.is_open(utc("2026-04-06T08:00:00Z")));
        assert!(
            s.is_open(utc("2027-04-06T08:00:00Z")),
            "Easter Monday 2026 only"
        );
    }

    #[test]
    fn multi_day_closure_and_escaped_folded_summary() {
        let s = sample();
        let d = s.explain(utc("2026-08-12T08:00:00Z"));
        let Reason::Holiday { label } = d.reason else {
            panic!("{d}");
        };
        assert_eq!(
            label,
            "Fermeture estivale, bureaux de Lyon et de Paris ; support par e-mail uniquement \
             (2026-08-10..2026-08-21, holidays-fr.ics)"
        );
        // Closed until Friday 21st included, then the weekend.
        assert_eq!(
            s.next_open(utc("2026-08-12T08:00:00Z")),
            Some(utc("2026-08-24T07:00:00Z"))
        );
    }

    #[test]
    fn timed_event_closes_part_of_a_day() {
        let s = sample();
        // Thursday 24 December 2026: closed 12:00-18:00 Paris time.
        assert!(s.is_open(utc("2026-12-24T10:59:00Z")));
        assert!(!s.is_open(utc("2026-12-24T11:00:00Z")));
        // The event ends at 18:00 sharp, and 18:00 is the rule's last
        // (inclusive) minute, so the channel opens for that one minute.
        assert_eq!(
            s.next_open(utc("2026-12-24T11:00:00Z")),
            Some(utc("2026-12-24T17:00:00Z"))
        );
        assert!(!s.is_open(utc("2026-12-24T17:01:00Z")));
    }

    #[test]
    fn cancelled_events_do_not_close() {
        let s = sample();
        assert!(s.is_open(utc("2026-11-06T14:00:00Z")));
    }

    #[test]
    fn from_config_with_text_matches_the_file() {
        let text = std::fs::read_to_string(sample_path()).unwrap();
        let cfg = ScheduleConfig {
            timezone: Some("Europe/Paris".into()),
            ..ScheduleConfig::default()
        };
        let s = Schedule::from_config_with_ics(&cfg, Some(("holidays-fr.ics", &text))).unwrap();
        assert!(!s.is_open(utc("2030-12-25T12:00:00Z")));
        assert!(
            s.is_open(utc("2031-12-25T12:00:00Z")),
            "Noël has UNTIL=20301231"
        );
        assert!(!s.is_open(utc("2199-05-01T12:00:00Z")));
    }
}

mod errors {
    use super::*;

    fn error(cfg: ScheduleConfig) -> ScheduleError {
        match Schedule::from_config(&cfg) {
            Ok(s) => panic!("accepted: {s:?}"),
            Err(e) => e,
        }
    }

    #[test]
    fn unknown_schedule_zone() {
        let e = error(ScheduleConfig {
            timezone: Some("Europe/Pariss".into()),
            ..Default::default()
        });
        assert!(matches!(&e, ScheduleError::UnknownTimezone(z) if z == "Europe/Pariss"));
        assert!(e.to_string().contains("`Europe/Pariss`"));
    }

    #[test]
    fn bad_rule_names_rule_and_item() {
        let e = error(ScheduleConfig {
            open: vec![
                "09:00-17:00,mon-fri,*,*".into(),
                "08:00-12:00,mon-funday,*,*".into(),
            ],
            ..Default::default()
        });
        assert_eq!(
            e.to_string(),
            "open rule `08:00-12:00,mon-funday,*,*`: invalid weekday `funday` in `mon-funday`: \
             expected sun, mon, tue, wed, thu, fri, sat or 1-7 (1 = Sunday); Asterisk would silently skip it"
        );
        let e = error(ScheduleConfig {
            open: vec!["25:00-26:00,*,*,*".into()],
            ..Default::default()
        });
        assert!(e.to_string().contains("`25:00`"), "{e}");
        let e = error(ScheduleConfig {
            open: vec!["*,*,*,*,Mars/Olympus".into()],
            ..Default::default()
        });
        assert!(e.to_string().contains("`Mars/Olympus`"), "{e}");
    }

    #[test]
    fn bad_holiday_is_named() {
        let e = error(ScheduleConfig {
            holidays: vec!["2026-12-32 Christmas".into()],
            ..Default::default()
        });
        assert!(e.to_string().contains("`2026-12-32`"), "{e}");
    }

    #[test]
    fn missing_or_broken_ics_file() {
        let missing = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/data/no-such.ics");
        let e = error(ScheduleConfig {
            holidays_ics: Some(missing),
            ..Default::default()
        });
        assert!(matches!(e, ScheduleError::IcsRead { .. }));
        assert!(e.to_string().contains("no-such.ics"), "{e}");
        let e = Schedule::from_config_with_ics(
            &ScheduleConfig::default(),
            Some((
                "bad.ics",
                "BEGIN:VCALENDAR\r\nBEGIN:VEVENT\r\nDTSTART;VALUE=DATE:2026122\r\nEND:VEVENT\r\nEND:VCALENDAR\r\n",
            )),
        )
        .unwrap_err();
        assert_eq!(
            e.to_string(),
            "holidays file bad.ics, line 3: DTSTART value `2026122` is neither a date (YYYYMMDD) nor a date-time (YYYYMMDDTHHMMSS[Z])"
        );
    }
}

#[test]
fn config_round_trips_and_refuses_unknown_keys() {
    let json = r#"{"timezone":"Europe/Paris","open":["09:00-17:00,mon-fri,*,*"],"holidays":["2026-12-25"]}"#;
    let cfg: ScheduleConfig = serde_json::from_str(json).unwrap();
    assert_eq!(cfg.holidays_ics, None);
    assert_eq!(cfg.open.len(), 1);
    let back: ScheduleConfig = serde_json::from_str(&serde_json::to_string(&cfg).unwrap()).unwrap();
    assert_eq!(back, cfg);
    let empty: ScheduleConfig = serde_json::from_str("{}").unwrap();
    assert_eq!(empty, ScheduleConfig::default());
    let err = serde_json::from_str::<ScheduleConfig>(r#"{"opne":[]}"#).unwrap_err();
    assert!(err.to_string().contains("opne"), "{err}");
}

mod routing {
    use super::*;

    fn routed(toml_text: &str) -> Result<Schedule, ScheduleError> {
        let cfg: ScheduleConfig = toml::from_str(toml_text).unwrap_or_else(|e| panic!("{e}"));
        Schedule::from_config(&cfg)
    }

    const PBX: &str = r#"
        timezone = "Europe/Paris"
        default = { queue = "601" }
        [[routes]]
        holidays = ["2026-12-25 Christmas"]
        to = { closed = "christmas" }
        [[routes]]
        when = "09:00-17:59,mon-fri,*,*"
        to = { queue = "600" }
        [[routes]]
        when = ["*,sat-sun,*,*"]
        to = "closed"
    "#;

    #[test]
    fn first_match_wins_and_the_default_applies() {
        let s = routed(PBX).unwrap();
        // Friday 2026-12-25 10:00 Paris: the holiday comes first.
        let xmas = s.explain(utc("2026-12-25T09:00:00Z"));
        assert_eq!(
            xmas.destination,
            Destination::Closed(Some("christmas".into()))
        );
        assert!(!xmas.open);
        assert_eq!(
            xmas.to_string(),
            "closed at Fri 2026-12-25 10:00 CET (Europe/Paris): route #1 holiday Christmas (2026-12-25), so closed (christmas)"
        );
        // Thursday 10:00: the day route.
        let day = s.explain(utc("2026-12-24T09:00:00Z"));
        assert_eq!(day.destination, Destination::Queue("600".parse().unwrap()));
        assert_eq!(
            day.reason,
            Reason::Route {
                index: 1,
                matched: Matched::Condition {
                    spec: "09:00-17:59,mon-fri,*,*".into()
                }
            }
        );
        // Thursday 20:00: nothing holds, the default (another queue).
        let evening = s.explain(utc("2026-12-24T19:00:00Z"));
        assert_eq!(
            evening.destination,
            Destination::Queue("601".parse().unwrap())
        );
        assert_eq!(evening.reason, Reason::Default { routes: 3 });
        assert!(evening
            .to_string()
            .ends_with("none of the 3 route(s) holds, so the default: queue 601"));
        // Saturday: closed until Monday 00:00, when the default opens.
        assert_eq!(
            s.next_open(utc("2026-12-26T12:00:00Z")),
            Some(utc("2026-12-27T23:00:00Z"))
        );
        // Christmas is a Friday: the holiday, then the weekend, close.
        assert_eq!(
            s.next_open(utc("2026-12-25T09:00:00Z")),
            Some(utc("2026-12-27T23:00:00Z"))
        );
    }

    #[test]
    fn a_routing_that_never_opens_has_no_next_open() {
        let s = routed(
            r#"
            [[routes]]
            when = "09:00-17:59,*,*,*"
            to = { closed = "moved" }
            "#,
        )
        .unwrap();
        assert_eq!(s.next_open(utc("2026-12-24T09:00:00Z")), None);
        assert!(!s.is_open(utc("2026-12-24T20:00:00Z")));
    }

    #[test]
    fn the_classic_form_is_the_two_entry_special_case() {
        let s = schedule("Europe/Paris", OFFICE, &["2026-12-25"]);
        assert_eq!(s.routes().len(), 2);
        assert_eq!(s.default_destination(), &Destination::Closed(None));
        assert_eq!(
            s.destination_at(utc("2026-12-24T09:00:00Z")),
            &Destination::Open
        );
        assert_eq!(
            s.destination_at(utc("2026-12-25T09:00:00Z")),
            &Destination::Closed(None)
        );
        assert_eq!(
            Schedule::always_open().default_destination(),
            &Destination::Open
        );
    }

    #[test]
    fn destinations_round_trip_and_bad_ones_are_explained() {
        let cfg: ScheduleConfig = toml::from_str(PBX).unwrap();
        let json = serde_json::to_string(&cfg).unwrap();
        assert!(json.contains(r#""to":{"closed":"christmas"}"#), "{json}");
        let back: ScheduleConfig = serde_json::from_str(&json).unwrap();
        assert_eq!(back, cfg);
        // A classic schedule serialises as before (no routes, no default).
        let classic = serde_json::to_string(&ScheduleConfig::default()).unwrap();
        assert!(
            !classic.contains("routes") && !classic.contains("default"),
            "{classic}"
        );
        for (bad, needle) in [
            (r#"to = "opened""#, "unknown destination `opened`"),
            (r#"to = { queues = "600" }"#, "unknown destination `queues`"),
            (r#"to = { queue = "" }"#, "destination `queue` is empty"),
            (r#"to = 5"#, r#"expected a destination: "open""#),
        ] {
            let text = format!("[[routes]]\nwhen = \"*,*,*,*\"\n{bad}\n");
            let e = toml::from_str::<ScheduleConfig>(&text).unwrap_err();
            assert!(e.to_string().contains(needle), "{bad}: {e}");
        }
    }

    #[test]
    fn structural_route_errors_are_named() {
        let e = routed("open = [\"*,*,*,*\"]\n[[routes]]\nwhen = \"*,*,*,*\"\nto = \"open\"\n")
            .unwrap_err();
        assert!(matches!(e, ScheduleError::RoutesWithOpen), "{e}");
        let e = routed("default = \"open\"\n").unwrap_err();
        assert!(matches!(e, ScheduleError::DefaultWithoutRoutes), "{e}");
        let e = routed("[[routes]]\nto = \"open\"\n").unwrap_err();
        assert_eq!(
            e.to_string(),
            "route #1 needs either `when` or `holidays`/`holidays_ics`, not neither"
        );
        let e = routed(
            "[[routes]]\nwhen = \"*,*,*,*\"\nto = \"open\"\n[[routes]]\nwhen = \"*,*,*,*\"\nholidays = [\"2026-12-25\"]\nto = \"open\"\n",
        )
        .unwrap_err();
        assert!(e.to_string().starts_with("route #2 needs"), "{e}");
        let e = routed("[[routes]]\nwhen = \"*,funday,*,*\"\nto = \"open\"\n").unwrap_err();
        assert!(
            e.to_string()
                .starts_with("route #1: open rule `*,funday,*,*`"),
            "{e}"
        );
    }
}
