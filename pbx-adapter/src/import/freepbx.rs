//! Import from FreePBX's MySQL/MariaDB database (cargo feature `freepbx`).
//!
//! FreePBX keeps what its admin pages edit in its database and writes
//! Asterisk's files from it; reading the database gets the admin's own
//! names (a time group's description, a queue's `descr`), which the
//! generated files lose. Tables and columns are those of the FreePBX
//! `timeconditions` and `queues` modules:
//!
//! - `timegroups_groups (id, description)` and
//!   `timegroups_details (id, timegroupid, time)`: one schedule per time
//!   group, named by its description, whose open rules are the `time`
//!   texts (`09:00-17:00|mon-fri|*|*`, Asterisk's condition syntax). A
//!   time group with no valid time is not imported: a schedule without
//!   rules would be open all the time.
//! - `queues_config (extension, descr, maxwait, dest, …)` and
//!   `queues_details (id, keyword, data, flags)`: the same keywords as
//!   `queues.conf` (see the `queues` module), members in `flags` order,
//!   rows with `id = '-1'` applying to every queue as FreePBX writes them.
//!   `maxwait` is how long a caller may wait; a failover `dest` of
//!   `ext-queues,NNN,1` becomes an overflow to queue NNN, anything else the
//!   contact alternatives. Agents are named from the `users` table when it
//!   exists, as FreePBX names queue members.
//!
//! Problems name the table and, where the table has one, the row id.
//! FreePBX time *conditions* (`timeconditions`, which pick a time group
//! and may set a time zone) are not read: they route calls, and the admin
//! chooses which time group a chat channel follows.

use std::collections::HashMap;

use sqlx::mysql::MySqlConnection;
use sqlx::Connection;

use crate::model::QueueExtension;
use crate::queue::Overflow;
use crate::schedule::{ScheduleConfig, TimeCondition};

use super::queues::{self, AgentBook, Setting};
use super::{Import, ImportError, Problem};

/// Time groups only, from a `mysql://user:password@host:port/database` URL.
pub async fn import_timegroups(url: &str) -> Result<Import, ImportError> {
    let mut conn = MySqlConnection::connect(url).await?;
    let mut import = Import::default();
    read_timegroups(&mut conn, &mut import).await?;
    conn.close().await?;
    Ok(import)
}

/// Time groups, queues and their agents.
pub async fn import(url: &str) -> Result<Import, ImportError> {
    let mut conn = MySqlConnection::connect(url).await?;
    let mut import = Import::default();
    read_timegroups(&mut conn, &mut import).await?;
    read_queues(&mut conn, &mut import).await?;
    conn.close().await?;
    let mut problems = std::mem::take(&mut import.problems);
    super::asterisk::check_directory(&mut import, &mut problems);
    import.problems = problems;
    Ok(import)
}

async fn read_timegroups(
    conn: &mut MySqlConnection,
    import: &mut Import,
) -> Result<(), ImportError> {
    let rows: Vec<(i64, String, Option<i64>, Option<String>)> = sqlx::query_as(
        "SELECT CAST(g.id AS SIGNED), g.description, CAST(d.id AS SIGNED), d.time \
         FROM timegroups_groups g LEFT JOIN timegroups_details d ON d.timegroupid = g.id \
         ORDER BY g.id, d.id",
    )
    .fetch_all(&mut *conn)
    .await?;
    let mut groups: Vec<(i64, String, Vec<String>)> = Vec::new();
    for (group_id, description, detail_id, time) in rows {
        if groups.last().is_none_or(|(id, _, _)| *id != group_id) {
            let name = match description.trim() {
                "" => format!("time group {group_id}"),
                d => d.to_owned(),
            };
            groups.push((group_id, name, Vec::new()));
        }
        let (_, name, open) = groups.last_mut().expect("pushed above");
        let (Some(detail_id), Some(time)) = (detail_id, time) else {
            continue;
        };
        match time.parse::<TimeCondition>() {
            Ok(condition) => open.push(condition.spec().to_owned()),
            Err(e) => import.problems.push(Problem::new(
                "timegroups_details",
                usize::try_from(detail_id).unwrap_or(0),
                format!("time group `{name}`: `{time}`: {e}; not imported"),
            )),
        }
    }
    for (group_id, name, open) in groups {
        if open.is_empty() {
            import.problems.push(Problem::new(
                "timegroups_groups",
                usize::try_from(group_id).unwrap_or(0),
                format!(
                    "time group `{name}` has no valid time; not imported (a schedule without \
                     rules is always open)"
                ),
            ));
            continue;
        }
        import.schedules.push((
            name,
            ScheduleConfig {
                timezone: None,
                open,
                holidays: Vec::new(),
                holidays_ics: None,
                ..Default::default()
            },
        ));
    }
    Ok(())
}

/// `users.extension → users.name`, or nothing if FreePBX's core module
/// tables are not there.
async fn user_names(conn: &mut MySqlConnection) -> Result<HashMap<String, String>, ImportError> {
    let rows: Result<Vec<(String, Option<String>)>, sqlx::Error> =
        sqlx::query_as("SELECT extension, name FROM users")
            .fetch_all(&mut *conn)
            .await;
    match rows {
        Ok(rows) => Ok(rows
            .into_iter()
            .filter_map(|(ext, name)| Some((ext, name.filter(|n| !n.trim().is_empty())?)))
            .collect()),
        // ER_NO_SUCH_TABLE
        Err(sqlx::Error::Database(e)) if e.code().as_deref() == Some("42S02") => Ok(HashMap::new()),
        Err(e) => Err(e.into()),
    }
}

/// Escapes a value for one field of a `member` line.
fn escape_field(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        if matches!(c, ',' | '\\' | '"') {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

async fn read_queues(conn: &mut MySqlConnection, import: &mut Import) -> Result<(), ImportError> {
    let configs: Vec<(String, String, String, String)> = sqlx::query_as(
        "SELECT extension, COALESCE(descr, ''), COALESCE(maxwait, ''), COALESCE(dest, '') \
         FROM queues_config \
         ORDER BY CAST(extension AS UNSIGNED), extension",
    )
    .fetch_all(&mut *conn)
    .await?;
    let details: Vec<(String, String, String)> = sqlx::query_as(
        "SELECT id, keyword, data FROM queues_details ORDER BY id, flags, keyword, data",
    )
    .fetch_all(&mut *conn)
    .await?;
    let names = user_names(conn).await?;
    let mut book = AgentBook::default();
    let shared: Vec<&(String, String, String)> = details
        .iter()
        .filter(|(id, keyword, data)| id == "-1" && keyword != "account" && !data.is_empty())
        .collect();
    for (extension, descr, maxwait, dest) in &configs {
        let ext = match extension.parse::<QueueExtension>() {
            Ok(ext) => ext,
            Err(e) => {
                import.problems.push(Problem::new(
                    "queues_config",
                    0,
                    format!("queue `{extension}`: {e}; not imported"),
                ));
                continue;
            }
        };
        // As FreePBX writes queues_additional.conf: empty values are left
        // out, members get the user's name, the shared rows come last.
        let values: Vec<(&str, String)> = details
            .iter()
            .filter(|(id, _, data)| id == extension && !data.trim().is_empty())
            .chain(shared.iter().copied())
            .map(|(_, keyword, data)| {
                let mut value = data.clone();
                if keyword == "member" && queues::split_args(data).len() < 3 {
                    let user = data
                        .strip_prefix("Local/")
                        .and_then(|rest| rest.split('@').next())
                        .and_then(|user| names.get(user));
                    if let Some(name) = user {
                        if queues::split_args(data).len() < 2 {
                            value.push_str(",0");
                        }
                        value.push(',');
                        value.push_str(&escape_field(name));
                    }
                }
                (keyword.as_str(), value)
            })
            .collect();
        let settings: Vec<Setting<'_>> = values
            .iter()
            .map(|(key, value)| Setting {
                key,
                value,
                file: "queues_details",
                line: 0,
            })
            .collect();
        let name = match descr.trim() {
            "" => extension.clone(),
            d => d.to_owned(),
        };
        let mut queue = queues::map_queue(ext, name, &settings, &mut book, &mut import.problems);
        match maxwait.trim() {
            "" | "0" => {}
            text => match text.parse::<u32>() {
                Ok(secs) => {
                    queue.max_wait_secs = Some(secs);
                    let target = dest
                        .strip_prefix("ext-queues,")
                        .and_then(|rest| rest.split(',').next())
                        .and_then(|q| q.parse::<QueueExtension>().ok());
                    match target {
                        Some(target) if target != queue.extension => {
                            queue.overflow = Some(Overflow::Queue(target));
                        }
                        _ => import.problems.push(Problem::new(
                            "queues_config",
                            0,
                            format!(
                                "queue {extension}: after {secs} s the PBX sends callers to \
                                 `{dest}`; Frontdesk shows the contact alternatives"
                            ),
                        )),
                    }
                }
                Err(_) => import.problems.push(Problem::new(
                    "queues_config",
                    0,
                    format!("queue {extension}: maxwait `{text}` is not a number of seconds; not imported"),
                )),
            },
        }
        import.queues.push(queue);
    }
    import.agents = book.into_agents();
    Ok(())
}
