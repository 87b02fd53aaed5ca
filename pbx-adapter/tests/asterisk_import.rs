//! `frontdesk pbx import asterisk` on the realistic sample configuration in
//! `tests/data/asterisk/`: the exact model it maps to, the exact problems
//! it reports, and TOML that the gateway's config types read back.

use std::path::{Path, PathBuf};

use pbx_adapter::import::asterisk::import_dir;
use pbx_adapter::import::{Import, ImportError, Problem};
use pbx_adapter::queue::{AgentConfig, MemberConfig, PbxDirectory, QueueConfig, Strategy};
use pbx_adapter::schedule::{Schedule, ScheduleConfig};
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
            ("301", "301"),
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

fn schedule(timezone: Option<&str>, open: &[&str]) -> ScheduleConfig {
    ScheduleConfig {
        timezone: timezone.map(str::to_owned),
        open: open.iter().map(|s| (*s).to_owned()).collect(),
        holidays: Vec::new(),
        holidays_ics: None,
        ..Default::default()
    }
}

#[test]
fn schedules_from_goto_if_time_and_timed_includes() {
    let import = import();
    let expected = vec![
        (
            "from-pstn>daytime".to_owned(),
            schedule(None, &["08:30-18:00,mon-fri,*,*", "09:00-12:00|sat|*|*"]),
        ),
        (
            "tc-support?closed".to_owned(),
            schedule(None, &["*,*,25,dec"]),
        ),
        (
            "tc-support?open".to_owned(),
            schedule(
                Some("Europe/Paris"),
                &[
                    "09:00-12:30,mon-fri,*,*,Europe/Paris",
                    "14:00-18:00,mon-fri,*,*,Europe/Paris",
                ],
            ),
        ),
        (
            "tc-weekend?:closed".to_owned(),
            schedule(None, &["10:00-16:00,sat&sun,*,*"]),
        ),
    ];
    assert_eq!(import.schedules, expected);
    for (name, cfg) in &import.schedules {
        Schedule::from_config(cfg).unwrap_or_else(|e| panic!("{name}: {e}"));
    }
}

#[test]
fn every_unmapped_construct_is_reported_with_file_and_line() {
    let import = import();
    let p = |file: &str, line: usize, text: &str| Problem {
        file: file.to_owned(),
        line,
        text: text.to_owned(),
    };
    let expected = vec![
        p(
            "extensions.conf",
            24,
            "queue 600: after 300 s the PBX continues the dialplan after Queue(); Frontdesk shows \
             the contact alternatives (set `overflow` to move the chat to another queue)",
        ),
        p(
            "extensions.conf",
            32,
            "`tc-support?open` is only reached when the GotoIfTime at extensions.conf:31 (to \
             `tc-support?closed`) has not jumped first; those times are not taken out of this \
             schedule (add them as dated `holidays` if they matter)",
        ),
        p(
            "extensions.conf",
            34,
            "GotoIfTime condition `25:00-26:00,sat,*,*`: invalid time `25:00` in `25:00-26:00`: \
             expected HH:MM between 00:00 and 23:59; Asterisk would silently skip it; not imported",
        ),
        p(
            "extensions.conf",
            40,
            "ExecIfTime(10:00-16:00,sat-sun,*,*?Playback(weekend-hours)) runs an application at \
             certain times; not imported (only GotoIfTime and timed includes become schedules)",
        ),
        p(
            "extensions.conf",
            41,
            "GotoIfTime(${OPEN_HOURS}?open) uses dialplan variables, which only the PBX can \
             evaluate; not imported",
        ),
        p(
            "queues.conf",
            35,
            "queue 601: unknown strategy `fewestcals`; using ringall, as Asterisk does",
        ),
        p(
            "queues.conf",
            39,
            "queue 601: member `DAHDI/1` is a phone line, not an extension that can chat; member \
             not imported",
        ),
        p(
            "queues.conf",
            40,
            "queue 601: maxlen=10 is not imported; Frontdesk does not limit how many visitors wait",
        ),
        p(
            "queues_custom.conf",
            6,
            "queue 602: member `PJSIP/302`: penalty `abc` is not a whole number of 0 or more \
             (Asterisk would silently read it as 0); member not imported",
        ),
        p(
            "queues_custom.conf",
            8,
            "`this line is broken` is not `name = value` (Asterisk ignores it too)",
        ),
    ];
    assert_eq!(import.problems, expected);
    let report = import.report();
    assert!(
        report.starts_with("Imported 3 queue(s), 9 agent(s) and 4 schedule(s); 10 problem(s).\n")
    );
    for problem in &expected {
        let line = format!("  {}:{}: {}\n", problem.file, problem.line, problem.text);
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
}

#[test]
fn toml_reads_back_into_the_config_types() {
    let import = import();
    let toml_text = import.to_toml();
    // The admin un-comments a schedule block under a channel: do it for
    // every one, each in a channel of its own.
    let mut pasted = String::new();
    for line in toml_text.lines() {
        if line == "# [channels.schedule]" {
            pasted.push_str("[[channels]]\n[channels.schedule]\n");
        } else if let Some(rest) = line.strip_prefix("# ") {
            if rest.starts_with("open = ")
                || rest.starts_with("timezone = ")
                || rest.starts_with("holidays = ")
            {
                pasted.push_str(rest);
                pasted.push('\n');
            }
        } else {
            pasted.push_str(line);
            pasted.push('\n');
        }
    }
    let read: Pasted = toml::from_str(&pasted).unwrap_or_else(|e| panic!("{e}\n{pasted}"));
    assert_eq!(read.agents, import.agents);
    assert_eq!(read.queues, import.queues);
    let schedules: Vec<ScheduleConfig> = import.schedules.iter().map(|(_, s)| s.clone()).collect();
    let read_schedules: Vec<ScheduleConfig> =
        read.channels.into_iter().map(|c| c.schedule).collect();
    assert_eq!(read_schedules, schedules);
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
