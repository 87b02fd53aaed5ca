//! The FreePBX importer against a real MariaDB: a fresh database with
//! FreePBX's tables and sample rows (one invalid time, one phone-line
//! member), imported, checked, and dropped.
//!
//! Needs the MariaDB of the development machines at 127.0.0.1:3306 (root,
//! empty password), or another server given by `FRONTDESK_TEST_MYSQL_URL`
//! (a URL without database). Run with `cargo test -p pbx-adapter --features
//! freepbx`.
#![cfg(feature = "freepbx")]

use pbx_adapter::import::{freepbx, Import, Problem};
use pbx_adapter::queue::{MemberConfig, Overflow, QueueConfig, Strategy};
use pbx_adapter::schedule::ScheduleConfig;
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
    "INSERT INTO timegroups_groups (id, description) VALUES
        (1, 'Office hours'), (2, 'Saturday morning'), (3, 'Broken'), (4, 'Unused')",
    "INSERT INTO timegroups_details (id, timegroupid, time) VALUES
        (1, 1, '09:00-12:30|mon-fri|*|*'),
        (2, 1, '14:00-18:00|mon-fri|*|*'),
        (3, 2, '09:00-12:00|sat|*|*'),
        (4, 2, '10:00-11:00|mon-funday|*|*'),
        (5, 3, '25:00-26:00|*|*|*')",
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

/// Runs the import on a database of its own, which is dropped before the
/// result is returned (so a failed assertion leaves nothing behind).
async fn import_sample() -> (Import, Import) {
    let server = server_url();
    let db = format!("frontdesk_import_{:016x}", rand::random::<u64>());
    let mut admin = MySqlConnection::connect(&server)
        .await
        .unwrap_or_else(|e| panic!("MariaDB at {server}: {e}"));
    admin
        .execute(format!("CREATE DATABASE {db}").as_str())
        .await
        .unwrap();
    let url = format!("{server}/{db}");
    let result = async {
        let mut conn = MySqlConnection::connect(&url).await?;
        for statement in SCHEMA_AND_ROWS {
            conn.execute(*statement).await?;
        }
        conn.close().await?;
        let full = freepbx::import(&url)
            .await
            .map_err(|e| sqlx::Error::Protocol(e.to_string()))?;
        let groups = freepbx::import_timegroups(&url)
            .await
            .map_err(|e| sqlx::Error::Protocol(e.to_string()))?;
        Ok::<_, sqlx::Error>((full, groups))
    }
    .await;
    admin
        .execute(format!("DROP DATABASE {db}").as_str())
        .await
        .unwrap();
    admin.close().await.unwrap();
    result.unwrap_or_else(|e| panic!("{e}"))
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

    let expected_schedules = vec![
        (
            "Office hours".to_owned(),
            schedule(&["09:00-12:30|mon-fri|*|*", "14:00-18:00|mon-fri|*|*"]),
        ),
        (
            "Saturday morning".to_owned(),
            schedule(&["09:00-12:00|sat|*|*"]),
        ),
    ];
    assert_eq!(full.schedules, expected_schedules);

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
    expected_problems.extend([
        Problem {
            file: "queues_details".into(),
            line: 0,
            text: "queue 601: member `DAHDI/1` is a phone line, not an extension that can chat; \
                   member not imported"
                .into(),
        },
        Problem {
            file: "queues_config".into(),
            line: 0,
            text: "queue 602: after 60 s the PBX sends callers to `app-blackhole,hangup,1`; \
                   Frontdesk shows the contact alternatives"
                .into(),
        },
    ]);
    assert_eq!(full.problems, expected_problems);
    assert!(full.report().contains(
        "  timegroups_details:5: time group `Broken`: `25:00-26:00|*|*|*`: invalid time"
    ));
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
