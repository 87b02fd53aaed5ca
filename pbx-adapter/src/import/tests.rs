//! Edge cases of the Asterisk importer, each on a small configuration
//! written to a directory of its own.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};

use proptest::prelude::*;

use super::asterisk::import_dir;
use super::*;
use crate::queue::{MemberConfig, Strategy};

/// A directory under the system temp dir, removed when dropped.
struct TempDir(PathBuf);

impl TempDir {
    fn new() -> TempDir {
        static COUNTER: AtomicUsize = AtomicUsize::new(0);
        let path = std::env::temp_dir().join(format!(
            "frontdesk-import-{}-{}",
            std::process::id(),
            COUNTER.fetch_add(1, Ordering::Relaxed)
        ));
        std::fs::create_dir_all(&path).unwrap();
        TempDir(path)
    }

    fn write(&self, name: &str, text: &str) -> &Self {
        std::fs::write(self.0.join(name), text).unwrap();
        self
    }

    fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        // Best effort: a leftover temp dir is harmless.
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn import(files: &[(&str, &str)]) -> Import {
    let dir = TempDir::new();
    for (name, text) in files {
        dir.write(name, text);
    }
    import_dir(dir.path()).unwrap_or_else(|e| panic!("{e}"))
}

fn texts(import: &Import) -> Vec<String> {
    import.problems.iter().map(|p| p.to_string()).collect()
}

fn members(queue: &QueueConfig) -> Vec<(&str, u32)> {
    queue
        .members
        .iter()
        .map(|m| (m.agent.as_str(), m.penalty))
        .collect()
}

#[test]
fn templates_apply_in_order_and_own_lines_override() {
    let import = import(&[(
        "queues.conf",
        "[base](!)\nstrategy = rrmemory\ntimeout = 40\nmember => PJSIP/1,0,One\n\
         [slow](!)\ntimeout = 60\nwrapuptime = 5\n\
         [700](base,slow)\nstrategy = linear\nmember => PJSIP/2\n",
    )]);
    let [queue] = &import.queues[..] else {
        panic!("{:?}", import.queues)
    };
    assert_eq!(queue.extension.as_str(), "700");
    assert_eq!(queue.strategy, Strategy::Linear);
    assert_eq!(queue.ring_timeout_secs, 60);
    assert_eq!(queue.wrapup_secs, 5);
    assert_eq!(members(queue), [("1", 0), ("2", 0)]);
    assert_eq!(import.agents[0].name, "One");
    // Only extensions.conf is missing.
    assert_eq!(
        texts(&import),
        ["extensions.conf: not found: no schedules imported, and named queues keep their name as extension"]
    );
}

#[test]
fn broken_sections_are_reported_and_the_rest_is_read() {
    let import = import(&[
        (
            "queues.conf",
            "orphan = 1\n\
             [701](+)\nmember => PJSIP/1\n\
             [702](nosuchtemplate)\nmember => PJSIP/2\n\
             [703\nmember => PJSIP/3\nmember => PJSIP/4\n\
             [704](!\n\
             [705] junk\nmember => PJSIP/5\n\
             ;-- never closed\n",
        ),
        ("extensions.conf", ""),
    ]);
    let queues: Vec<&str> = import.queues.iter().map(|q| q.extension.as_str()).collect();
    assert_eq!(queues, ["701", "702", "705"]);
    assert_eq!(
        texts(&import),
        [
            "queues.conf: a `;--` block comment is never closed with `--;`",
            "queues.conf:1: `orphan` is outside any usable [section]; ignored",
            "queues.conf:2: [701](+) adds to a section [701] that does not exist before it",
            "queues.conf:4: [702] inherits from [nosuchtemplate], which is not defined before it \
             (Asterisk refuses the whole file); imported without it",
            "queues.conf:6: section header without a closing `]` (Asterisk refuses the whole \
             file); the lines up to the next section are skipped",
            "queues.conf:9: section [704]: options without a closing `)` (Asterisk refuses the \
             whole file); the section is skipped",
            "queues.conf:10: unexpected `junk` after section header [705]; ignored",
        ]
    );
}

#[test]
fn includes_globs_loops_and_exec() {
    let import = import(&[
        (
            "queues.conf",
            "#include queues_*.conf\n#include \"missing.conf\"\n#tryinclude optional.conf\n\
             #exec /usr/local/bin/make-queues\n#include loop.conf\n#bogus x\n",
        ),
        ("queues_a.conf", "[710]\nmember => PJSIP/10\n"),
        ("queues_b.conf", "[711]\nmember => PJSIP/11\n"),
        ("loop.conf", "#include <loop.conf>\n"),
        ("extensions.conf", ""),
    ]);
    let queues: Vec<&str> = import.queues.iter().map(|q| q.extension.as_str()).collect();
    assert_eq!(queues, ["710", "711"]);
    assert_eq!(
        texts(&import),
        [
            "loop.conf:1: `#include loop.conf` loops back or nests too deep; not read again",
            "queues.conf:2: `#include missing.conf`: no such file in the import directory",
            "queues.conf:4: `#exec /usr/local/bin/make-queues` runs a program on the PBX; not \
             run, its output is not imported",
            "queues.conf:6: unknown directive `#bogus`; ignored",
        ]
    );
}

#[test]
fn queue_options_that_change_routing_are_reported() {
    let import = import(&[
        (
            "queues.conf",
            "[general]\nautofill = no\n\
             [720]\ntimeout = 0\nwrapuptime = soon\njoinempty = strict\ndefaultrule = ramp\n\
             autopause = all\nweight = 2\nannounce-position = yes\nmusicclass = jazz\n\
             frobnicate = 1\nmember => SIP/101\nmember => PJSIP/101,3\n\
             member => Local/102@from-queue/n,0,Bea,,,20,yes\n\
             member => Local/0612345678@outbound-calls/n\n\
             member => Local/0698765432#@from-queue/n,0,Mobile\n\
             member => PJSIP/103,0,Cy,PJSIP/103,no\n",
        ),
        ("extensions.conf", ""),
    ]);
    let queue = &import.queues[0];
    assert_eq!(queue.ring_timeout_secs, 15, "Asterisk's default is kept");
    assert_eq!(queue.wrapup_secs, 0);
    assert_eq!(members(queue), [("101", 0), ("102", 0), ("103", 0)]);
    assert_eq!(
        texts(&import),
        [
            "queues.conf:2: autofill=no (one waiting caller at a time) is not imported; Frontdesk \
             offers every waiting chat as agents free up",
            "queues.conf:4: queue 720: timeout 0 rings members without limit on the PBX; \
             Frontdesk needs a limit, kept 15 s",
            "queues.conf:5: queue 720: wrapuptime `soon` is not a number of seconds; kept 0 s",
            "queues.conf:6: queue 720: joinempty=strict is not imported; Frontdesk keeps a \
             visitor waiting until max_wait_secs",
            "queues.conf:7: queue 720: penalty rule `ramp` (queuerules.conf) is not imported",
            "queues.conf:8: queue 720: autopause=all is not imported; Frontdesk never pauses an \
             agent by itself",
            "queues.conf:9: queue 720: weight=2 is not imported; Frontdesk does not rank queues \
             sharing agents",
            "queues.conf:10: `announce-position = yes` is not imported: it sets what a caller \
             hears while waiting",
            "queues.conf:11: `musicclass = jazz` is not imported: it sets what a caller hears \
             while waiting",
            "queues.conf:12: queue 720: unknown option `frobnicate`; ignored",
            "queues.conf:13: queue 720: member `SIP/101` is a chan_sip phone (removed from \
             Asterisk 21); imported as agent 101, who chats at the address you give",
            "queues.conf:14: queue 720: agent 101 is already a member; this line is ignored",
            "queues.conf:15: queue 720: member `Local/102@from-queue/n`: its own wrap-up time 20 \
             s is not imported; the queue's applies",
            "queues.conf:15: queue 720: member `Local/102@from-queue/n` starts paused on the PBX; \
             Frontdesk offers it chats whenever it is available",
            "queues.conf:16: queue 720: member `Local/0612345678@outbound-calls/n` forwards to the \
             phone number 0612345678; a phone cannot take a chat, so it is left out; member not \
             imported",
            "queues.conf:17: queue 720: member `Local/0698765432#@from-queue/n` forwards to the \
             phone number 0698765432; a phone cannot take a chat, so it is left out; member not \
             imported",
            "queues.conf:18: queue 720: member `PJSIP/103`: state interface `PJSIP/103` is not \
             imported; Frontdesk follows the agent's own chat presence, not a phone's state",
            "queues.conf:18: queue 720: member `PJSIP/103`: ringinuse=no is not imported; \
             Frontdesk offers chats by the agent's chat load, not by whether a phone is in use",
        ]
    );
}

#[test]
fn named_queues_take_their_extension_from_the_dialplan() {
    let import = import(&[
        (
            "queues.conf",
            "[sales]\nmember => PJSIP/101\n[sales]\nmember => PJSIP/102\n\
             [support]\n[billing]\n[sales team]\n",
        ),
        (
            "extensions.conf",
            "[internal]\nexten => 600,1,Queue(sales)\nexten => 700,1,Queue(Sales,t,,,120)\n\
             exten => 601,1,Queue(support,,,,90)\n same => n,Goto(601,1)\n\
             exten => _6XX,1,Queue(billing)\nexten => s,1,Queue(billing)\n\
             exten => 602,1,Queue(billing,,,,soon)\n",
        ),
    ]);
    let queues: Vec<(&str, &str, Option<u32>)> = import
        .queues
        .iter()
        .map(|q| (q.extension.as_str(), q.name.as_str(), q.max_wait_secs))
        .collect();
    assert_eq!(
        queues,
        [
            ("sales", "sales", None),
            ("601", "support", Some(90)),
            ("602", "billing", None)
        ]
    );
    assert_eq!(members(&import.queues[0]), [("101", 0)]);
    assert_eq!(
        texts(&import),
        [
            "extensions.conf:3: queue sales: callers may wait for different times depending on \
             how they dial it; max_wait_secs not imported",
            "extensions.conf:3: Queue() options `t` change what a caller hears or may do; they \
             have no chat equivalent",
            "extensions.conf:4: queue 601: after 90 s the PBX continues the dialplan after \
             Queue(); Frontdesk shows the contact alternatives (set `overflow` to move the chat \
             to another queue)",
            "extensions.conf:8: queue 602: Queue() timeout `soon` is not a number of seconds; \
             not imported",
            "queues.conf:1: queue [sales]: it is dialled at several extensions (600, 700); \
             imported with `sales` as its extension",
            "queues.conf:3: queue [sales] is defined again; Asterisk uses the first one, so does \
             the import",
            "queues.conf:7: queue [sales team]: no `Queue(sales team)` in extensions.conf tells \
             its extension, and its name is no extension (an extension may only hold digits, \
             letters, '*', '#', '-' or '_', got \"sales team\"); not imported",
        ]
    );
}

#[test]
fn clashes_the_directory_would_refuse_are_reported() {
    let import = import(&[("queues.conf", "[101]\nmember => PJSIP/101\n")]);
    assert!(
        texts(&import).contains(
            &"(imported queues and agents): extension 101 is used by both a queue and an agent; \
              transfers to it would be ambiguous"
                .to_owned()
        ),
        "{:?}",
        texts(&import)
    );
}

#[test]
fn dialplan_routing_keeps_precedence_defaults_and_closures() {
    let import = import(&[
        (
            "queues.conf",
            "[support]\nmember => PJSIP/101\n[600]\nmember => PJSIP/102\n",
        ),
        (
            "extensions.conf",
            "same => n,GotoIfTime(*,*,*,*?x)\n\
             [from-pstn]\n\
             include => holidays,*,*,25,dec\n\
             include => hours,08:00-12:00,mon-fri,*,*,America/New_York\n\
             include => hours,13:00-17:00,mon-fri,*,*,America/New_York\n\
             include => closed\n\
             [holidays]\n\
             exten => s,1,Playback(xmas)\n\
             same => n,Hangup()\n\
             [hours]\n\
             exten => s,1,Goto(tc,s,1)\n\
             [closed]\n\
             exten => s,1,VoiceMail(100@default)\n\
             [tc]\n\
             exten => s,1,GotoIfTime(12:00-12:30,*,*,*,America/New_York?lunch)\n\
             same => n,Queue(support)\n\
             same => n(lunch),Queue(600)\n\
             [from-sip]\n\
             exten => s,1,GotoIfTime(${HOURS}?open)\n\
             same => n(open),Queue(support)\n\
             [ivr]\n\
             exten => s,1,GotoIfTime(*,sat-sun,*,*,Mars/Olympus?x)\n\
             same => n,Queue(support)\n\
             same => n(x),Hangup()\n\
             [unused]\n\
             exten => s,1,GotoIfTime(*,*,*,*?tpl)\n\
             same => n(tpl),Hangup()\n",
        ),
    ]);
    assert_eq!(import.routings.len(), 1, "{:#?}", import.routings);
    let r = &import.routings[0];
    assert_eq!(r.entries, ["from-pstn", "from-pstn,s"]);
    let cfg = &r.schedule;
    assert_eq!(cfg.timezone, None);
    let routes: Vec<(Vec<&str>, String)> = cfg
        .routes
        .iter()
        .map(|r| {
            (
                r.when.iter().map(String::as_str).collect(),
                r.to.to_string(),
            )
        })
        .collect();
    assert_eq!(
        routes,
        [
            (vec!["*,*,25,dec"], "closed (holidays)".to_owned()),
            (
                vec!["12:00-12:00,mon-fri,*,*,America/New_York"],
                "queue 600".to_owned()
            ),
            (
                vec![
                    "08:00-12:00,mon-fri,*,*,America/New_York",
                    "13:00-17:00,mon-fri,*,*,America/New_York"
                ],
                "queue support".to_owned()
            ),
        ]
    );
    assert_eq!(
        cfg.default,
        Some(crate::schedule::Destination::Closed(None))
    );
    assert_eq!(
        r.closures,
        [ImportedClosure {
            name: "holidays".into(),
            sound: Some("xmas".into())
        }]
    );
    crate::schedule::Schedule::from_config(cfg).unwrap();
    assert_eq!(
        texts(&import),
        [
            "extensions.conf:1: `same` is outside any usable [section]; ignored",
            "extensions.conf:13: VoiceMail(100@default) takes a voice message; the chat shows its \
             closed text and alternatives instead",
            "extensions.conf:19: calls to from-sip,s are not routed by the import: time \
             condition `${HOURS}` uses dialplan variables, which only the PBX can evaluate",
            "extensions.conf:22: calls to ivr,s are not routed by the import: time condition \
             `*,sat-sun,*,*,Mars/Olympus`: unknown time zone `Mars/Olympus` (expected an IANA \
             name such as Europe/Paris)",
            "queues.conf:1: queue [support]: no `Queue(support)` in extensions.conf tells its \
             extension; imported with `support` as its extension",
        ]
    );
    let toml = import.to_toml();
    assert!(
        toml.contains("# Routing of calls to from-pstn, as the PBX routes them"),
        "{toml}"
    );
    assert!(toml.contains("# [channels.closures.holidays]\n# text = \"TODO: what the PBX announces with `xmas`\"\n"), "{toml}");
    let report = import.report();
    assert!(report.contains("  from-pstn (time zone: not set, give the PBX's):\n    *,*,25,dec → closed (holidays)\n"), "{report}");
}

#[test]
fn report_and_toml_of_an_empty_import() {
    let import = Import::default();
    assert_eq!(
        import.report(),
        "Imported 0 queue(s), 0 agent(s), 0 routing(s) and 0 schedule(s); 0 problem(s).\n"
    );
    assert_eq!(
        import.to_toml(),
        "# Imported from the PBX by `frontdesk pbx import`. Read the import report first.\n"
    );
    let problem = Problem::new("timegroups_details", 7, "bad");
    assert_eq!(problem.to_string(), "timegroups_details:7: bad");
}

#[test]
fn toml_of_a_queue_without_members_and_with_overflow() {
    let mut queue = QueueConfig::new(
        "600".parse().unwrap(),
        "Sales \"EU\"",
        Strategy::Wrandom,
        [],
    );
    queue.max_wait_secs = Some(60);
    queue.overflow = Some(crate::queue::Overflow::Queue("601".parse().unwrap()));
    let mut other = queue.clone();
    other.extension = "601".parse().unwrap();
    other.overflow = None;
    other.members.push(MemberConfig {
        agent: "101".parse().unwrap(),
        penalty: 4,
    });
    let import = Import {
        queues: vec![queue, other],
        ..Import::default()
    };
    #[derive(serde::Deserialize)]
    struct File {
        queues: Vec<QueueConfig>,
    }
    let file: File = toml::from_str(&import.to_toml()).unwrap();
    assert_eq!(file.queues, import.queues);
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

    /// Whatever the files hold, the import finishes and reports.
    #[test]
    fn never_panics(
        queues in proptest::collection::vec(
            prop_oneof![
                Just("[q](!)".to_owned()), Just("[600](q)".to_owned()), Just("[x](+)".to_owned()),
                Just("member => ".to_owned()), Just("strategy = ".to_owned()), Just("#include ".to_owned()),
                "[ -~]{0,30}",
            ],
            0..12,
        ),
        dialplan in proptest::collection::vec(
            prop_oneof![
                Just("[ctx]".to_owned()), Just("exten => s,1,GotoIfTime(".to_owned()),
                Just("same => n,Queue(".to_owned()), Just("include => a,".to_owned()),
                "[ -~]{0,30}", "\\PC{0,10}",
            ],
            0..12,
        ),
    ) {
        let imported = import(&[
            ("queues.conf", &queues.concat()),
            ("extensions.conf", &dialplan.join("\n")),
        ]);
        let _ = imported.report();
        let _ = imported.to_toml();
    }
}

#[test]
fn the_queue_a_dialplan_goes_on_to_after_the_wait_is_the_overflow() {
    let import = import(&[
        (
            "queues.conf",
            "[support]\nmember => PJSIP/101\n[sales]\nmember => PJSIP/102\n[billing]\n",
        ),
        (
            "extensions.conf",
            "[internal]\n\
             exten => 601,1,Queue(support,,,,60)\n\
              same => n,Set(X=1)\n\
              same => n,Queue(sales)\n\
             exten => 600,1,Queue(sales,,,,30)\n\
             exten => 602,1,Queue(billing,,,,30)\n\
              same => n,Goto(ext-queues,999,1)\n",
        ),
    ]);
    // `Queue(sales)` is dialled from two extensions, so `sales` keeps its
    // name as extension (reported elsewhere).
    let sales = import
        .queues
        .iter()
        .find(|q| q.name == "sales")
        .unwrap()
        .clone();
    let support = import.queues.iter().find(|q| q.name == "support").unwrap();
    assert_eq!(support.max_wait_secs, Some(60));
    assert_eq!(
        support.overflow,
        Some(crate::queue::Overflow::Queue(sales.extension.clone()))
    );
    assert_eq!(sales.overflow, None);
    let texts = texts(&import);
    assert!(
        texts.contains(
            &"extensions.conf:2: queue 601: after 60 s the PBX sends callers on to queue sales; \
              imported as its overflow"
                .to_owned()
        ),
        "{texts:?}"
    );
    assert!(
        texts
            .iter()
            .any(|t| t.contains("sends callers on to queue `999`, which the import did not find")),
        "{texts:?}"
    );
}
