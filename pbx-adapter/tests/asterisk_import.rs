//! `frontdesk pbx import asterisk` on the realistic sample configuration in
//! `tests/data/asterisk/`: the exact model it maps to, the exact problems
//! it reports, and TOML that the gateway's config types read back.

use std::path::{Path, PathBuf};

use pbx_adapter::import::asterisk::import_dir;
use pbx_adapter::import::{Import, ImportError, ImportedClosure, ImportedRouting};
use pbx_adapter::queue::{AgentConfig, MemberConfig, PbxDirectory, QueueConfig, Strategy};
use pbx_adapter::schedule::{Destination, RouteConfig, Schedule, ScheduleConfig};
use pbx_adapter::{AgentExtension, QueueExtension};

fn data_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/asterisk")
}

fn import() -> Import {
    import_dir(&data_dir()).unwrap_or_else(|e| panic!("{e}"))
}

fn q(s: &str) -> QueueExtension {
    s.parse().unwrap()
}

fn a(s: &str) -> AgentExtension {
    s.parse().unwrap()
}

fn queue(
    ext: &str,
    name: &str,
    strategy: Strategy,
    ring: u32,
    wrapup: u32,
    members: &[(&str, u32)],
) -> QueueConfig {
    let mut queue = QueueConfig::new(q(ext), name, strategy, []);
    queue.ring_timeout_secs = ring;
    queue.wrapup_secs = wrapup;
    queue.members = members
        .iter()
        .map(|(agent, penalty)| MemberConfig {
            agent: a(agent),
            penalty: *penalty,
        })
        .collect();
    queue
}

#[test]
fn queues_with_templates_members_and_dialplan_extensions() {
    let import = import();
    let mut sales = queue(
        "600",
        "sales",
        Strategy::Leastrecent,
        20,
        10,
        &[("101", 0), ("102", 1), ("103", 2), ("104", 0)],
    );
    sales.max_wait_secs = Some(300);
    let expected = vec![
        sales,
        // `fewestcals` is a typo: ringall, as Asterisk does; the template's
        // timeout and wrap-up are overridden; DAHDI/1 is left out; the
        // `(+)` section adds 203.
        queue(
            "601",
            "support",
            Strategy::Ringall,
            25,
            30,
            &[("201", 0), ("202", 1), ("101", 2), ("203", 0)],
        ),
        // From the #include; PJSIP/302 has a bad penalty.
        queue(
            "602",
            "602",
            Strategy::Ringall,
            15,
            0,
            &[("301", 0), ("303", 0)],
        ),
    ];
    assert_eq!(import.queues, expected);
}

#[test]
fn agents_come_from_members_without_chat_addresses() {
    let import = import();
    let agents: Vec<(&str, &str)> = import
        .agents
        .iter()
        .map(|agent| (agent.extension.as_str(), agent.name.as_str()))
        .collect();
    assert_eq!(
        agents,
        [
            ("101", "Alice Martin"),
            ("102", "Bob Durand"),
            ("103", "103"),
            ("104", "Durand, Chloé"),
            ("201", "David Petit"),
            ("202", "Emma Leroy"),
            ("203", "Farid Benali; night shift"),
            ("301", "Hugo Blanc"),
            ("303", "303"),
        ]
    );
    assert!(import
        .agents
        .iter()
        .all(|agent| agent.xmpp.is_none() && agent.sip.is_none()));
    let report = import.report();
    for agent in &import.agents {
        let line = format!(
            "  {} \"{}\": the PBX knows no chat address; add an `xmpp` JID or a `sip` URI",
            agent.extension, agent.name
        );
        assert!(report.contains(&line), "{line}\n{report}");
    }
}

fn route(when: &[&str], to: Destination) -> RouteConfig {
    RouteConfig {
        when: when.iter().map(|s| (*s).to_owned()).collect(),
        holidays: Vec::new(),
        holidays_ics: None,
        to,
    }
}

fn closure(name: &str, sound: &str) -> ImportedClosure {
    ImportedClosure {
        name: name.to_owned(),
        sound: Some(sound.to_owned()),
    }
}

#[test]
fn routings_keep_the_dialplan_precedence_defaults_and_closures() {
    let import = import();
    let named = |name: &str| Destination::Closed(Some(name.to_owned()));
    let queue = |ext: &str| Destination::Queue(q(ext));
    let routed = |routes: Vec<RouteConfig>, default: Destination| ScheduleConfig {
        routes,
        default: Some(default),
        ..ScheduleConfig::default()
    };
    let expected = vec![
        ImportedRouting {
            name: "from-pstn,0123456789".into(),
            entries: vec!["from-pstn,0123456789".into()],
            // The override toggle is walked as "not set"; Christmas comes
            // first, as in the dialplan, and closes with its own text.
            schedule: routed(
                vec![
                    route(&["*,*,25,dec"], named("tc-support-closed")),
                    route(
                        &[
                            "09:00-12:30,mon-fri,*,*,Europe/Paris",
                            "14:00-18:00,mon-fri,*,*,Europe/Paris",
                        ],
                        queue("601"),
                    ),
                ],
                Destination::Closed(None),
            ),
            closures: vec![closure("tc-support-closed", "office-closed")],
            closed_sound: Some("after-hours".into()),
        },
        ImportedRouting {
            name: "from-pstn,0123456788".into(),
            entries: vec!["from-pstn,0123456788".into()],
            // IFTIME() lunch break first; ExecIfTime(…?Goto) and the
            // [globals] OPEN_HOURS both go to queue 602; else support.
            schedule: routed(
                vec![
                    route(&["12:00-13:00,*,*,*"], Destination::Closed(None)),
                    route(
                        &["10:00-16:00,sat&sun,*,*", "10:00-16:00,sat-sun,*,*"],
                        queue("602"),
                    ),
                ],
                queue("601"),
            ),
            closures: vec![],
            closed_sound: None,
        },
        ImportedRouting {
            name: "from-sip-trunk".into(),
            entries: vec!["from-sip-trunk".into(), "from-sip-trunk,s".into()],
            // Timed includes in order: New Year's Day closes, then the
            // day hours (both separators), then the night context.
            schedule: routed(
                vec![
                    route(&["*,*,1,jan"], named("holidays")),
                    route(
                        &["08:30-18:00,mon-fri,*,*", "09:00-12:00|sat|*|*"],
                        queue("600"),
                    ),
                ],
                Destination::Closed(None),
            ),
            closures: vec![closure("holidays", "closed-holiday")],
            closed_sound: None,
        },
    ];
    assert_eq!(import.routings, expected);
    for r in &import.routings {
        Schedule::from_config(&r.schedule).unwrap_or_else(|e| panic!("{}: {e}", r.name));
    }
    // Christmas at 10:00 in Paris closes with the Christmas closure, an
    // ordinary Monday morning goes to support.
    let support = Schedule::from_config(&import.routings[0].schedule).unwrap();
    let at = |s: &str| s.parse::<chrono::DateTime<chrono::Utc>>().unwrap();
    assert_eq!(
        support.destination_at(at("2026-12-25T09:00:00Z")),
        &named("tc-support-closed")
    );
    assert_eq!(
        support.destination_at(at("2026-12-21T09:00:00Z")),
        &queue("601")
    );
    assert_eq!(
        support.destination_at(at("2026-12-21T20:00:00Z")),
        &Destination::Closed(None)
    );
}

#[test]
fn every_unmapped_construct_is_reported_with_file_and_line() {
    let import = import();
    let texts: Vec<String> = import.problems.iter().map(|p| p.to_string()).collect();
    let expected = [
        "extensions.conf:17: extension `0123456788/0600000000` picks a route by the caller's \
         number; a chat has no caller ID, so only the route for other callers is imported",
        "extensions.conf:33: Voicemail(100@default) takes a voice message; the chat shows its \
         closed text and alternatives instead",
        "extensions.conf:37: queue 600: after 300 s the PBX continues the dialplan after Queue(); \
         Frontdesk shows the contact alternatives (set `overflow` to move the chat to another \
         queue)",
        "extensions.conf:37: Queue() options `t` change what a caller hears or may do; they have \
         no chat equivalent",
        "extensions.conf:44: GotoIf($[\"${DB(TC/1)}\" = \"open\"]?…) tests an override toggle (a \
         feature code that forces a time condition open or closed); imported as the path taken \
         when it is false",
        "extensions.conf:55: ExecIfTime runs Playback() at certain times; it does not route, so \
         it is passed over",
        "extensions.conf:68: AddQueueMember(support,PJSIP/${CALLERID(num)}) makes dynamic members \
         (agents who log in by phone); they are not imported: add the agents as members, or let \
         them log in by chat presence",
        "queues.conf:15: `musicclass = default` is not imported: it sets what a caller hears \
         while waiting",
        "queues.conf:18: `retry = 5` is not imported: it times how phones ring and are redialled",
        "queues.conf:20: `announce-frequency = 60` is not imported: it sets what a caller hears \
         while waiting",
        "queues.conf:29: queue 600: member `SIP/103` is a chan_sip phone (removed from Asterisk \
         21); imported as agent 103, who chats at the address you give",
        "queues.conf:30: queue 600: member `Local/104@from-queue/n`: state interface \
         `hint:104@ext-local` is not imported; Frontdesk follows the agent's own chat presence, \
         not a phone's state",
        "queues.conf:35: queue 601: unknown strategy `fewestcals`; using ringall, as Asterisk does",
        "queues.conf:36: queue 601: member `Local/201@from-queue/n`: state interface `PJSIP/201` \
         is not imported; Frontdesk follows the agent's own chat presence, not a phone's state",
        "queues.conf:37: queue 601: member `Local/202@from-queue/n`: state interface `PJSIP/202` \
         is not imported; Frontdesk follows the agent's own chat presence, not a phone's state",
        "queues.conf:39: queue 601: member `DAHDI/1` is a phone line, not an extension that can \
         chat; member not imported",
        "queues.conf:40: queue 601: member `Local/0611223344@outbound/n` forwards to the phone \
         number 0611223344; a phone cannot take a chat, so it is left out; member not imported",
        "queues.conf:41: queue 601: maxlen=10 is not imported; Frontdesk does not limit how many \
         visitors wait",
        "queues_custom.conf:6: queue 602: member `PJSIP/302`: penalty `abc` is not a whole number \
         of 0 or more (Asterisk would silently read it as 0); member not imported",
        "queues_custom.conf:8: `this line is broken` is not `name = value` (Asterisk ignores it \
         too)",
    ];
    assert_eq!(texts, expected);
    let report = import.report();
    assert!(report.starts_with(&format!(
        "Imported 3 queue(s), 9 agent(s), 3 routing(s) and 0 schedule(s); {} problem(s).\n",
        expected.len()
    )));
    for problem in &import.problems {
        let line = format!("  {problem}\n");
        assert!(report.contains(&line), "{line}\n{report}");
    }
}

/// The part of the gateway's `frontdesk.toml` the fragment is pasted into.
#[derive(Debug, serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct Pasted {
    agents: Vec<AgentConfig>,
    queues: Vec<QueueConfig>,
    channels: Vec<Channel>,
}

#[derive(Debug, serde::Deserialize)]
struct Channel {
    schedule: ScheduleConfig,
    #[serde(default)]
    closures: std::collections::BTreeMap<String, Closure>,
}

#[derive(Debug, serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct Closure {
    text: String,
}

#[test]
fn toml_reads_back_into_the_config_types() {
    let import = import();
    let toml_text = import.to_toml();
    // The admin un-comments a schedule block under a channel: do it for
    // every one, each in a channel of its own.
    let mut pasted = String::new();
    let mut in_block = false;
    for line in toml_text.lines() {
        if line == "# [channels.schedule]" {
            in_block = true;
            pasted.push_str("[[channels]]\n[channels.schedule]\n");
        } else if line.is_empty() {
            in_block = false;
            pasted.push('\n');
        } else if in_block {
            let rest = line.strip_prefix('#').unwrap_or(line);
            pasted.push_str(rest.strip_prefix(' ').unwrap_or(rest));
            pasted.push('\n');
        } else if !line.starts_with('#') {
            pasted.push_str(line);
            pasted.push('\n');
        }
    }
    let read: Pasted = toml::from_str(&pasted).unwrap_or_else(|e| panic!("{e}\n{pasted}"));
    assert_eq!(read.agents, import.agents);
    assert_eq!(read.queues, import.queues);
    let schedules: Vec<ScheduleConfig> =
        import.routings.iter().map(|r| r.schedule.clone()).collect();
    let closures: Vec<Vec<String>> = import
        .routings
        .iter()
        .map(|r| r.closures.iter().map(|c| c.name.clone()).collect())
        .collect();
    assert_eq!(
        read.channels
            .iter()
            .map(|c| c.schedule.clone())
            .collect::<Vec<_>>(),
        schedules
    );
    assert_eq!(
        read.channels
            .iter()
            .map(|c| c.closures.keys().cloned().collect::<Vec<_>>())
            .collect::<Vec<_>>(),
        closures
    );
    assert!(read
        .channels
        .iter()
        .flat_map(|c| c.closures.values())
        .all(|c| c.text.starts_with("TODO: what the PBX announces with `")));
    assert_eq!(
        toml_text.matches("# TODO: add `xmpp").count(),
        import.agents.len()
    );
    assert!(toml_text.contains(
        "members = [\n    { agent = \"101\", penalty = 0 },\n    { agent = \"102\", penalty = 1 },"
    ));

    // Once the admin gives each agent an address, the directory is valid.
    let mut agents = import.agents.clone();
    for agent in &mut agents {
        agent.xmpp = Some(
            format!("agent{}@example.com", agent.extension)
                .parse()
                .unwrap(),
        );
    }
    PbxDirectory::new(import.queues.clone(), agents).unwrap_or_else(|e| panic!("{e}"));
}

#[test]
fn missing_directory_and_empty_directory_are_errors() {
    let missing = data_dir().join("no-such-dir");
    assert!(matches!(
        import_dir(&missing),
        Err(ImportError::Read { path, .. }) if path == missing
    ));
    let empty = std::env::temp_dir().join(format!("frontdesk-import-empty-{}", std::process::id()));
    std::fs::create_dir_all(&empty).unwrap();
    let result = import_dir(&empty);
    std::fs::remove_dir(&empty).unwrap();
    let err = result.unwrap_err();
    assert!(matches!(err, ImportError::NothingToImport(_)), "{err}");
    assert!(err
        .to_string()
        .ends_with("holds neither queues.conf nor extensions.conf"));
}
