//! The FreePBX importer against a real MariaDB: a fresh database with
//! FreePBX's tables and sample rows (one invalid time, one phone-line
//! member), imported, checked, and dropped.
//!
//! Needs the MariaDB of the development machines at 127.0.0.1:3306 (root,
//! empty password), or another server given by `FRONTDESK_TEST_MYSQL_URL`
//! (a URL without database). Run with `cargo test -p pbx-adapter --features
//! freepbx`.
#![cfg(feature = "freepbx")]

use pbx_adapter::import::{freepbx, Import, ImportedClosure, ImportedRouting, Problem};
use pbx_adapter::queue::{MemberConfig, Overflow, QueueConfig, Strategy};
use pbx_adapter::schedule::{Destination, RouteConfig, Schedule, ScheduleConfig};
use sqlx::mysql::MySqlConnection;
use sqlx::{Connection, Executor};

fn server_url() -> String {
    std::env::var("FRONTDESK_TEST_MYSQL_URL")
        .unwrap_or_else(|_| "mysql://root@127.0.0.1:3306".into())
}

/// FreePBX's own table definitions (timeconditions and queues modules,
/// core's `users`), with the sample rows.
const SCHEMA_AND_ROWS: &[&str] = &[
    "CREATE TABLE timegroups_groups (
        id int(11) NOT NULL AUTO_INCREMENT,
        description varchar(80) NOT NULL DEFAULT '',
        PRIMARY KEY (id),
        UNIQUE KEY display (description)
    ) DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci",
    "CREATE TABLE timegroups_details (
        id int(11) NOT NULL AUTO_INCREMENT,
        timegroupid int(11) NOT NULL DEFAULT 0,
        time varchar(100) NOT NULL DEFAULT '',
        PRIMARY KEY (id)
    ) DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci",
    "CREATE TABLE queues_config (
        extension varchar(20) NOT NULL DEFAULT '',
        descr varchar(35) NOT NULL DEFAULT '',
        grppre varchar(100) NOT NULL DEFAULT '',
        alertinfo varchar(254) NOT NULL DEFAULT '',
        ringing tinyint(1) NOT NULL DEFAULT 0,
        maxwait varchar(8) NOT NULL DEFAULT '',
        password varchar(20) NOT NULL DEFAULT '',
        ivr_id varchar(8) NOT NULL DEFAULT '0',
        dest varchar(50) NOT NULL DEFAULT '',
        cwignore tinyint(1) NOT NULL DEFAULT 0,
        queuewait tinyint(1) DEFAULT 0,
        use_queue_context tinyint(1) DEFAULT 0,
        togglehint tinyint(1) DEFAULT 0,
        qnoanswer tinyint(1) DEFAULT 0,
        callconfirm tinyint(1) DEFAULT 0,
        callconfirm_id int(11) DEFAULT NULL,
        qregex varchar(255) DEFAULT NULL,
        agentannounce_id int(11) DEFAULT NULL,
        joinannounce_id int(11) DEFAULT NULL,
        monitor_type varchar(5) DEFAULT NULL,
        monitor_heard int(11) DEFAULT NULL,
        monitor_spoken int(11) DEFAULT NULL,
        callback_id varchar(8) NOT NULL DEFAULT '',
        PRIMARY KEY (extension)
    ) DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci",
    "CREATE TABLE queues_details (
        id varchar(45) NOT NULL DEFAULT '-1',
        keyword varchar(30) NOT NULL DEFAULT '',
        data varchar(150) NOT NULL DEFAULT '',
        flags int(11) NOT NULL DEFAULT 0,
        PRIMARY KEY (id, keyword, data)
    ) DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci",
    "CREATE TABLE users (
        extension varchar(20) NOT NULL DEFAULT '',
        password varchar(20) DEFAULT NULL,
        name varchar(50) DEFAULT NULL,
        KEY extension (extension)
    ) DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci",
    "CREATE TABLE timeconditions (
        timeconditions_id int(11) NOT NULL AUTO_INCREMENT,
        displayname varchar(50) DEFAULT NULL,
        time int(11) DEFAULT NULL,
        truegoto varchar(50) DEFAULT NULL,
        falsegoto varchar(50) DEFAULT NULL,
        deptname varchar(50) DEFAULT NULL,
        generate_hint tinyint(1) DEFAULT 0,
        invert_hint tinyint(1) DEFAULT 0,
        fcc_password varchar(20) DEFAULT '',
        priority varchar(50) DEFAULT NULL,
        timezone varchar(255) DEFAULT NULL,
        mode varchar(20) DEFAULT 'time-group',
        calendar_id varchar(80) DEFAULT NULL,
        calendar_group_id varchar(80) DEFAULT NULL,
        PRIMARY KEY (timeconditions_id)
    ) DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci",
    "CREATE TABLE incoming (
        cidnum varchar(20) DEFAULT NULL,
        extension varchar(50) NOT NULL,
        destination varchar(50) DEFAULT NULL,
        privacyman tinyint(1) DEFAULT NULL,
        alertinfo varchar(255) DEFAULT NULL,
        ringing varchar(20) DEFAULT NULL,
        mohclass varchar(80) NOT NULL DEFAULT 'default',
        description varchar(80) DEFAULT NULL,
        grppre varchar(80) DEFAULT NULL,
        delay_answer int(2) DEFAULT NULL,
        pricid varchar(20) DEFAULT NULL,
        reversal varchar(10) DEFAULT '',
        rvolume varchar(2) DEFAULT '',
        indication_zone varchar(20) DEFAULT 'default',
        fanswer varchar(20) DEFAULT NULL
    ) DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci",
    "INSERT INTO timegroups_groups (id, description) VALUES
        (1, 'Office hours'), (2, 'Saturday morning'), (3, 'Broken'), (4, 'Unused'),
        (5, 'Holidays'), (6, 'Evenings')",
    "INSERT INTO timegroups_details (id, timegroupid, time) VALUES
        (1, 1, '09:00-12:30|mon-fri|*|*'),
        (2, 1, '14:00-18:00|mon-fri|*|*'),
        (3, 2, '09:00-12:00|sat|*|*'),
        (4, 2, '10:00-11:00|mon-funday|*|*'),
        (5, 3, '25:00-26:00|*|*|*'),
        (6, 5, '*|*|25|dec'),
        (7, 5, '*|*|1|jan'),
        (8, 6, '18:00-20:00|mon-fri|*|*')",
    // A holiday check first, chained into the office hours, chained into
    // Saturday morning; all in Paris time. And one calendar condition.
    "INSERT INTO timeconditions
        (timeconditions_id, displayname, time, truegoto, falsegoto, timezone, mode) VALUES
        (1, 'Holidays', 5, 'app-announcement-1,s,1', 'timeconditions,2,1', 'Europe/Paris', 'time-group'),
        (2, 'Office', 1, 'ext-queues,601,1', 'timeconditions,3,1', 'Europe/Paris', 'time-group'),
        (3, 'Saturday', 2, 'ext-queues,600,1', 'app-blackhole,hangup,1', 'Europe/Paris', 'time-group'),
        (4, 'Calendar', 1, 'ext-queues,600,1', 'app-blackhole,hangup,1', 'default', 'calendar-group')",
    "CREATE TABLE announcement (
        announcement_id int(11) NOT NULL AUTO_INCREMENT,
        description varchar(50) DEFAULT NULL,
        recording_id int(11) DEFAULT NULL,
        allow_skip int(11) DEFAULT NULL,
        post_dest varchar(255) DEFAULT NULL,
        return_ivr tinyint(1) NOT NULL DEFAULT 0,
        noanswer tinyint(1) NOT NULL DEFAULT 0,
        repeat_msg varchar(2) NOT NULL DEFAULT '',
        PRIMARY KEY (announcement_id)
    ) DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci",
    "INSERT INTO announcement (announcement_id, description, post_dest) VALUES
        (1, 'Closed for the holidays', 'app-blackhole,hangup,1'),
        (2, 'Welcome', 'ext-queues,601,1')",
    "INSERT INTO incoming (cidnum, extension, destination, description) VALUES
        ('', '0123456792', 'app-announcement-2,s,1', 'Welcome line'),
        ('', '0123456789', 'timeconditions,1,1', 'Main line'),
        ('0600000000', '0123456789', 'ext-queues,600,1', 'Boss'),
        ('', '0123456790', 'timeconditions,4,1', 'Calendar line'),
        ('', '0123456791', 'ext-group,700,1', NULL)",
    "INSERT INTO queues_config (extension, descr, maxwait, dest) VALUES
        ('600', 'Sales', '', 'app-blackhole,hangup,1'),
        ('601', 'Support', '120', 'ext-queues,600,1'),
        ('602', 'Billing', '60', 'app-blackhole,hangup,1')",
    "INSERT INTO queues_details (id, keyword, data, flags) VALUES
        ('600', 'strategy', 'rrmemory', 0),
        ('600', 'timeout', '20', 0),
        ('600', 'wrapuptime', '5', 0),
        ('600', 'music', 'default', 0),
        ('600', 'member', 'Local/102@from-queue/n,1', 1),
        ('600', 'member', 'Local/101@from-queue/n,0', 0),
        ('601', 'strategy', 'fewestcalls', 0),
        ('601', 'maxlen', '0', 0),
        ('601', 'joinempty', '', 0),
        ('601', 'member', 'Local/101@from-queue/n,0', 0),
        ('601', 'member', 'DAHDI/1,0', 1),
        ('602', 'member', 'Local/103@from-queue/n,2', 0),
        ('-1', 'account', '', 0),
        ('-1', 'autofill', 'yes', 0)",
    "INSERT INTO users (extension, name) VALUES ('101', 'Alice Martin'), ('102', 'Martin, Bob')",
];

/// A database of its own with `statements` run in it.
async fn database(statements: &[&str]) -> (String, String) {
    let server = server_url();
    let db = format!("frontdesk_import_{:016x}", rand::random::<u64>());
    let mut admin = MySqlConnection::connect(&server)
        .await
        .unwrap_or_else(|e| panic!("MariaDB at {server}: {e}"));
    admin
        .execute(format!("CREATE DATABASE {db}").as_str())
        .await
        .unwrap();
    admin.close().await.unwrap();
    let url = format!("{server}/{db}");
    let mut conn = MySqlConnection::connect(&url).await.unwrap();
    for statement in statements {
        conn.execute(*statement)
            .await
            .unwrap_or_else(|e| panic!("{statement}: {e}"));
    }
    conn.close().await.unwrap();
    (url, db)
}

async fn drop_database(db: &str) {
    let mut admin = MySqlConnection::connect(&server_url()).await.unwrap();
    admin
        .execute(format!("DROP DATABASE {db}").as_str())
        .await
        .unwrap();
    admin.close().await.unwrap();
}

/// Runs the imports on the sample database, which is dropped before the
/// results are returned (so a failed assertion leaves nothing behind).
async fn import_sample() -> (Import, Import) {
    let (url, db) = database(SCHEMA_AND_ROWS).await;
    let full = freepbx::import(&url).await;
    let groups = freepbx::import_timegroups(&url).await;
    drop_database(&db).await;
    (
        full.unwrap_or_else(|e| panic!("{e}")),
        groups.unwrap_or_else(|e| panic!("{e}")),
    )
}

fn schedule(open: &[&str]) -> ScheduleConfig {
    ScheduleConfig {
        timezone: None,
        open: open.iter().map(|s| (*s).to_owned()).collect(),
        holidays: Vec::new(),
        holidays_ics: None,
        ..Default::default()
    }
}

fn queue(
    ext: &str,
    name: &str,
    strategy: Strategy,
    ring: u32,
    members: &[(&str, u32)],
) -> QueueConfig {
    let mut q = QueueConfig::new(ext.parse().unwrap(), name, strategy, []);
    q.ring_timeout_secs = ring;
    q.members = members
        .iter()
        .map(|(agent, penalty)| MemberConfig {
            agent: agent.parse().unwrap(),
            penalty: *penalty,
        })
        .collect();
    q
}

#[tokio::test(flavor = "multi_thread", worker_threads = 1)]
async fn imports_time_groups_and_queues_from_the_database() {
    let (full, groups) = import_sample().await;
    // The time groups alone, as opening hours.
    let expected_schedules = vec![
        (
            "Office hours".to_owned(),
            schedule(&["09:00-12:30|mon-fri|*|*", "14:00-18:00|mon-fri|*|*"]),
        ),
        (
            "Saturday morning".to_owned(),
            schedule(&["09:00-12:00|sat|*|*"]),
        ),
        (
            "Holidays".to_owned(),
            schedule(&["*|*|25|dec", "*|*|1|jan"]),
        ),
        (
            "Evenings".to_owned(),
            schedule(&["18:00-20:00|mon-fri|*|*"]),
        ),
    ];
    // With the time conditions: only the group no condition uses.
    assert_eq!(full.schedules, expected_schedules[3..]);

    // The inbound route's chain of conditions, in its zone.
    let route = |when: &[&str], to: Destination| RouteConfig {
        when: when.iter().map(|s| (*s).to_owned()).collect(),
        holidays: Vec::new(),
        holidays_ics: None,
        to,
    };
    let q = |ext: &str| Destination::Queue(ext.parse().unwrap());
    assert_eq!(
        full.routings,
        [ImportedRouting {
            name: "inbound route `Main line`".into(),
            entries: vec!["inbound route `Main line`".into()],
            schedule: ScheduleConfig {
                timezone: Some("Europe/Paris".into()),
                routes: vec![
                    route(
                        &["*,*,25,dec,Europe/Paris", "*,*,1,jan,Europe/Paris"],
                        Destination::Closed(Some("announcement-1".into()))
                    ),
                    route(
                        &[
                            "09:00-12:30,mon-fri,*,*,Europe/Paris",
                            "14:00-18:00,mon-fri,*,*,Europe/Paris"
                        ],
                        q("601")
                    ),
                    route(&["09:00-12:00,sat,*,*,Europe/Paris"], q("600")),
                ],
                default: Some(Destination::Closed(None)),
                ..ScheduleConfig::default()
            },
            closures: vec![ImportedClosure {
                name: "announcement-1".into(),
                sound: Some("Closed for the holidays".into())
            }],
            closed_sound: None,
        }]
    );
    // The welcome announcement plays, then the call goes to queue 601.
    assert_eq!(
        full.direct,
        [(
            "inbound route `Welcome line`".to_owned(),
            "601".parse().unwrap()
        )]
    );
    let main = Schedule::from_config(&full.routings[0].schedule).unwrap();
    let at = |s: &str| s.parse::<chrono::DateTime<chrono::Utc>>().unwrap();
    // Friday 1 January 2027 at 10:00 in Paris is a holiday, the Monday
    // after at 10:00 is office hours, Saturday 9 January at 11:00 too.
    assert_eq!(
        main.destination_at(at("2027-01-01T09:00:00Z")),
        &Destination::Closed(Some("announcement-1".into()))
    );
    assert_eq!(main.destination_at(at("2027-01-04T09:00:00Z")), &q("601"));
    assert_eq!(main.destination_at(at("2027-01-09T10:00:00Z")), &q("600"));

    let timegroup_problems = vec![
        Problem {
            file: "timegroups_details".into(),
            line: 4,
            text: "time group `Saturday morning`: `10:00-11:00|mon-funday|*|*`: invalid weekday \
                   `funday` in `mon-funday`: expected sun, mon, tue, wed, thu, fri, sat or 1-7 \
                   (1 = Sunday); Asterisk would silently skip it; not imported"
                .into(),
        },
        Problem {
            file: "timegroups_details".into(),
            line: 5,
            text: "time group `Broken`: `25:00-26:00|*|*|*`: invalid time `25:00` in \
                   `25:00-26:00`: expected HH:MM between 00:00 and 23:59; Asterisk would \
                   silently skip it; not imported"
                .into(),
        },
        Problem {
            file: "timegroups_groups".into(),
            line: 3,
            text: "time group `Broken` has no valid time; not imported (a schedule without rules \
                   is always open)"
                .into(),
        },
        Problem {
            file: "timegroups_groups".into(),
            line: 4,
            text: "time group `Unused` has no valid time; not imported (a schedule without rules \
                   is always open)"
                .into(),
        },
    ];
    assert_eq!(groups.schedules, expected_schedules);
    assert_eq!(groups.problems, timegroup_problems);
    assert!(groups.queues.is_empty() && groups.agents.is_empty());

    let mut sales = queue(
        "600",
        "Sales",
        Strategy::Rrmemory,
        20,
        &[("101", 0), ("102", 1)],
    );
    sales.wrapup_secs = 5;
    let mut support = queue("601", "Support", Strategy::Fewestcalls, 15, &[("101", 0)]);
    support.max_wait_secs = Some(120);
    support.overflow = Some(Overflow::Queue("600".parse().unwrap()));
    let mut billing = queue("602", "Billing", Strategy::Ringall, 15, &[("103", 2)]);
    billing.max_wait_secs = Some(60);
    assert_eq!(full.queues, [sales, support, billing]);

    let agents: Vec<(&str, &str)> = full
        .agents
        .iter()
        .map(|a| (a.extension.as_str(), a.name.as_str()))
        .collect();
    assert_eq!(
        agents,
        [
            ("101", "Alice Martin"),
            ("102", "Martin, Bob"),
            ("103", "103")
        ]
    );

    let mut expected_problems = timegroup_problems;
    let p = |file: &str, line: usize, text: &str| Problem {
        file: file.into(),
        line,
        text: text.into(),
    };
    let toggle = |n: usize, name: &str| {
        p(
            "timeconditions",
            n,
            &format!(
                "time condition `{name}`: its override feature code (forcing it open or closed \
                 by phone) is not followed; the import follows its times"
            ),
        )
    };
    expected_problems.extend([
        p(
            "queues_details",
            0,
            "`music = default` is not imported: it sets what a caller hears while waiting",
        ),
        p(
            "queues_details",
            0,
            "queue 601: member `DAHDI/1` is a phone line, not an extension that can chat; member \
             not imported",
        ),
        p(
            "queues_config",
            0,
            "queue 602: after 60 s the PBX sends callers to `app-blackhole,hangup,1`; Frontdesk \
             shows the contact alternatives",
        ),
        p(
            "incoming",
            0,
            "inbound route `Boss` (DID `0123456789`) only takes calls from 0600000000; a chat \
             has no caller ID, so it is not imported",
        ),
        toggle(1, "Holidays"),
        toggle(2, "Office"),
        toggle(3, "Saturday"),
        p(
            "timeconditions",
            4,
            "calls to inbound route `Calendar line` are not routed by the import: time condition \
             `Calendar` follows a calendar, whose events only the PBX reads; give its days as \
             holidays",
        ),
        p(
            "incoming",
            0,
            "calls to inbound route 0123456791 are not routed by the import: `ext-group,700,1` \
             is ring group 700, which Frontdesk has no equivalent of (make it a queue)",
        ),
    ]);
    assert_eq!(full.problems, expected_problems);
    assert!(full.report().contains(
        "  timegroups_details:5: time group `Broken`: `25:00-26:00|*|*|*`: invalid time"
    ));
}

/// Only the queue module's tables: everything else is reported missing,
/// nothing aborts; with the generated files beside it, the routing comes
/// from them and the queues from the database.
#[tokio::test(flavor = "multi_thread", worker_threads = 1)]
async fn a_database_without_the_optional_tables_imports_what_is_there() {
    let queue_tables: Vec<&str> = SCHEMA_AND_ROWS
        .iter()
        .copied()
        .filter(|s| s.contains("queues_config") || s.contains("queues_details"))
        .collect();
    let (url, db) = database(&queue_tables).await;
    let alone = freepbx::import(&url).await;
    let files = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/freepbx");
    let both = freepbx::import_from(Some(&url), Some(&files)).await;
    drop_database(&db).await;
    let (alone, both) = (alone.unwrap(), both.unwrap());

    let names = |i: &Import| i.queues.iter().map(|q| q.name.clone()).collect::<Vec<_>>();
    assert_eq!(names(&alone), ["Sales", "Support", "Billing"]);
    assert!(alone.routings.is_empty() && alone.schedules.is_empty());
    let missing: Vec<(String, bool)> = alone
        .problems
        .iter()
        .filter(|p| p.text.starts_with("not readable ("))
        .map(|p| (p.file.clone(), p.text.contains("doesn't exist")))
        .collect();
    assert_eq!(
        missing,
        [
            ("timegroups_groups".to_owned(), true),
            ("timeconditions".to_owned(), true),
            ("incoming".to_owned(), true),
            ("announcement".to_owned(), true),
            ("users".to_owned(), true),
        ]
    );
    // Without `users`, members are named by extension.
    assert!(alone.agents.iter().all(|a| a.name == a.extension.as_str()));

    assert_eq!(names(&both), names(&alone));
    assert_eq!(both.routings.len(), 1);
    assert_eq!(both.routings[0].entries, ["from-trunk,0123456789"]);
    assert!(both
        .problems
        .iter()
        .any(|p| p.file == "extensions_additional.conf" && p.text.contains("override toggle")));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 1)]
async fn an_unreachable_database_is_an_error() {
    // A database name that cannot exist: the server refuses the login.
    let url = format!(
        "{}/frontdesk_no_such_db_{:x}",
        server_url(),
        rand::random::<u32>()
    );
    let err = freepbx::import_timegroups(&url).await.unwrap_err();
    assert!(err.to_string().starts_with("FreePBX database: "), "{err}");
}
