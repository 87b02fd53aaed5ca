//! Import from FreePBX (cargo feature `freepbx`): its MySQL/MariaDB
//! database, its generated configuration files (`--conf-dir`, read by the
//! [`super::asterisk`] importer through `queues.conf` and `extensions.conf`,
//! which include `queues_additional.conf` and `extensions_additional.conf`),
//! or both.
//!
//! FreePBX keeps what its admin pages edit in its database and writes
//! Asterisk's files from it; reading the database gets the admin's own
//! names (a time group's description, a queue's `descr`) and each time
//! condition's zone, which the generated files lose. Tables and columns are
//! those of the FreePBX `core`, `timeconditions` and `queues` modules; a
//! table a module did not create (or an older column set) is reported and
//! the rest imported: one absent table never stops the import.
//!
//! - `timegroups_groups (id, description)` and
//!   `timegroups_details (id, timegroupid, time)`: each group's times
//!   (`09:00-17:00|mon-fri|*|*`, Asterisk's syntax).
//! - `timeconditions (timeconditions_id, displayname, time, truegoto,
//!   falsegoto, timezone, mode)`: "if the time group `time` holds (in
//!   `timezone`), go to `truegoto`, else `falsegoto`", destinations being
//!   FreePBX's `context,extension,priority` strings. Chained conditions,
//!   queues (`ext-queues,600,1`), announcements, hang-up, voicemail, IVRs
//!   and extensions are resolved into one routing per entry point; the
//!   override feature codes are reported (the import follows the times).
//! - `incoming (extension, cidnum, description, destination)`: the inbound
//!   routes, which are the entry points; without the table every time
//!   condition no other one chains to is one.
//! - `queues_config (extension, descr, maxwait, dest)` and
//!   `queues_details (id, keyword, data, flags)`: the same keywords as
//!   `queues.conf` (see the `queues` module), members in `flags` order,
//!   rows with `id = '-1'` applying to every queue as FreePBX writes them.
//!   `maxwait` is how long a caller may wait; a failover `dest` of
//!   `ext-queues,NNN,1` becomes an overflow to queue NNN, anything else the
//!   contact alternatives. Agents are named from `users` when it exists.
//!
//! Problems name the table and, where the table has one, the row id.

use std::collections::{BTreeMap, HashMap};
use std::path::Path;

use sqlx::mysql::{MySqlConnection, MySqlRow};
use sqlx::{Connection, Row};

use crate::model::QueueExtension;
use crate::queue::Overflow;
use crate::schedule::{ScheduleConfig, TimeCondition};

use super::queues::{self, AgentBook, Setting};
use super::routings;
use super::walk::{announced, finish, guard_at, Entry, Flow, Target, Unmapped};
use super::{Import, ImportError, Problem};

/// MySQL's "no such table" and "unknown column".
const ABSENT: [&str; 2] = ["42S02", "42S22"];

/// A query whose table (or column) may not exist: `Ok(None)` then, with
/// the problem reported.
fn optional<T>(
    result: Result<T, sqlx::Error>,
    table: &str,
    missing: &str,
    problems: &mut Vec<Problem>,
) -> Result<Option<T>, ImportError> {
    match result {
        Ok(v) => Ok(Some(v)),
        Err(sqlx::Error::Database(e)) if e.code().is_some_and(|c| ABSENT.contains(&c.as_ref())) => {
            problems.push(Problem::new(
                table,
                0,
                format!("not readable ({}); {missing}", e.message()),
            ));
            Ok(None)
        }
        Err(e) => Err(e.into()),
    }
}

/// A column as text, whatever its SQL type; `None` if absent or NULL.
fn text(row: &MySqlRow, column: &str) -> Option<String> {
    if let Ok(v) = row.try_get::<Option<String>, _>(column) {
        return v;
    }
    if let Ok(v) = row.try_get::<Option<i64>, _>(column) {
        return v.map(|n| n.to_string());
    }
    if let Ok(v) = row.try_get::<Option<i32>, _>(column) {
        return v.map(|n| n.to_string());
    }
    if let Ok(v) = row.try_get::<Option<u32>, _>(column) {
        return v.map(|n| n.to_string());
    }
    if let Ok(v) = row.try_get::<Option<Vec<u8>>, _>(column) {
        return v.map(|b| String::from_utf8_lossy(&b).into_owned());
    }
    None
}

fn row_id(id: &str) -> usize {
    id.parse().unwrap_or(0)
}

/// Time groups only, from a `mysql://user:password@host:port/database` URL.
pub async fn import_timegroups(url: &str) -> Result<Import, ImportError> {
    let mut conn = MySqlConnection::connect(url).await?;
    let mut import = Import::default();
    let groups = read_timegroups(&mut conn, &mut import.problems).await?;
    conn.close().await?;
    import.schedules = groups
        .iter()
        .map(|g| (g.name.clone(), g.schedule()))
        .collect();
    Ok(import)
}

/// Time groups, time conditions, inbound routes, queues and their agents
/// from the database.
pub async fn import(url: &str) -> Result<Import, ImportError> {
    import_from(Some(url), None).await
}

/// From the database, the generated files in `conf_dir`, or both: the
/// database's queues and routing when it has their tables, the files'
/// otherwise.
pub async fn import_from(
    url: Option<&str>,
    conf_dir: Option<&Path>,
) -> Result<Import, ImportError> {
    let files = conf_dir.map(super::asterisk::import_dir).transpose()?;
    let Some(url) = url else {
        return files.ok_or(ImportError::NothingToImport(Default::default()));
    };
    let mut conn = MySqlConnection::connect(url).await?;
    let db = read_database(&mut conn).await;
    conn.close().await?;
    let mut db = db?;
    let Some(files) = files else {
        let mut problems = std::mem::take(&mut db.import.problems);
        super::asterisk::check_directory(&mut db.import, &mut problems);
        db.import.problems = problems;
        return Ok(db.import);
    };
    let mut import = db.import;
    if !db.has_queues {
        import.queues = files.queues;
        import.agents = files.agents;
        import.queues_complete = files.queues_complete;
    }
    if !db.has_routing {
        import.routings = files.routings;
        import.direct = files.direct;
    }
    import.problems.extend(files.problems);
    Ok(import)
}

struct Database {
    import: Import,
    /// Whether the queue tables were there (else the files' queues count).
    has_queues: bool,
    /// Whether the time conditions were there.
    has_routing: bool,
}

async fn read_database(conn: &mut MySqlConnection) -> Result<Database, ImportError> {
    let mut import = Import::default();
    let problems = &mut import.problems;
    let groups = read_timegroups(conn, problems).await?;
    let conditions = read_timeconditions(conn, problems).await?;
    let incoming = read_incoming(conn, problems).await?;
    let announcements = read_announcements(conn, problems).await?;
    let has_queues = read_queues(conn, &mut import).await?;
    let has_routing = conditions.is_some();
    let conditions = conditions.unwrap_or_default();
    let queues = super::asterisk::queue_names(&import.queues);
    let entries = entries(
        &groups,
        &conditions,
        &announcements,
        incoming,
        &mut import.problems,
    );
    import.routings = routings::build(
        entries,
        &queues,
        "queues_config",
        &mut import.direct,
        &mut import.problems,
    );
    // Time groups no condition uses stay plain opening hours.
    import.schedules = groups
        .into_iter()
        .filter(|g| !conditions.iter().any(|c| c.group == g.id))
        .map(|g| (g.name.clone(), g.schedule()))
        .collect();
    Ok(Database {
        import,
        has_queues,
        has_routing,
    })
}

/// A time group with its valid times.
struct TimeGroup {
    id: String,
    name: String,
    times: Vec<String>,
}

impl TimeGroup {
    fn schedule(&self) -> ScheduleConfig {
        ScheduleConfig {
            open: self.times.clone(),
            ..ScheduleConfig::default()
        }
    }
}

async fn read_timegroups(
    conn: &mut MySqlConnection,
    problems: &mut Vec<Problem>,
) -> Result<Vec<TimeGroup>, ImportError> {
    /// Group id, description, detail id, time.
    type GroupRow = (i64, String, Option<i64>, Option<String>);
    let rows: Result<Vec<GroupRow>, _> = sqlx::query_as(
        "SELECT CAST(g.id AS SIGNED), g.description, CAST(d.id AS SIGNED), d.time \
         FROM timegroups_groups g LEFT JOIN timegroups_details d ON d.timegroupid = g.id \
         ORDER BY g.id, d.id",
    )
    .fetch_all(&mut *conn)
    .await;
    let Some(rows) = optional(
        rows,
        "timegroups_groups",
        "no time groups imported",
        problems,
    )?
    else {
        return Ok(Vec::new());
    };
    let mut groups: Vec<TimeGroup> = Vec::new();
    for (group_id, description, detail_id, time) in rows {
        if groups.last().is_none_or(|g| g.id != group_id.to_string()) {
            let name = match description.trim() {
                "" => format!("time group {group_id}"),
                d => d.to_owned(),
            };
            groups.push(TimeGroup {
                id: group_id.to_string(),
                name,
                times: Vec::new(),
            });
        }
        let group = groups.last_mut().expect("pushed above");
        let (Some(detail_id), Some(time)) = (detail_id, time) else {
            continue;
        };
        match time.parse::<TimeCondition>() {
            Ok(condition) => group.times.push(condition.spec().to_owned()),
            Err(e) => problems.push(Problem::new(
                "timegroups_details",
                usize::try_from(detail_id).unwrap_or(0),
                format!("time group `{}`: `{time}`: {e}; not imported", group.name),
            )),
        }
    }
    groups.retain(|g| {
        if g.times.is_empty() {
            problems.push(Problem::new(
                "timegroups_groups",
                row_id(&g.id),
                format!(
                    "time group `{}` has no valid time; not imported (a schedule without \
                     rules is always open)",
                    g.name
                ),
            ));
        }
        !g.times.is_empty()
    });
    Ok(groups)
}

/// One row of `timeconditions`.
#[derive(Debug, Clone)]
struct TimeConditionRow {
    id: String,
    name: String,
    group: String,
    if_true: String,
    if_false: String,
    /// `None` for FreePBX's "default" (the server's zone).
    zone: Option<String>,
    /// `calendar-group` conditions follow a calendar, not a time group.
    calendar: bool,
}

async fn read_timeconditions(
    conn: &mut MySqlConnection,
    problems: &mut Vec<Problem>,
) -> Result<Option<Vec<TimeConditionRow>>, ImportError> {
    let rows = sqlx::query("SELECT * FROM timeconditions ORDER BY timeconditions_id")
        .fetch_all(&mut *conn)
        .await;
    let Some(rows) = optional(
        rows,
        "timeconditions",
        "no time conditions: the routing comes from the files given with --conf-dir, if any",
        problems,
    )?
    else {
        return Ok(None);
    };
    let out = rows
        .iter()
        .map(|row| {
            let id = text(row, "timeconditions_id").unwrap_or_default();
            TimeConditionRow {
                name: text(row, "displayname")
                    .filter(|n| !n.trim().is_empty())
                    .unwrap_or_else(|| format!("time condition {id}")),
                group: text(row, "time").unwrap_or_default(),
                if_true: text(row, "truegoto").unwrap_or_default(),
                if_false: text(row, "falsegoto").unwrap_or_default(),
                zone: text(row, "timezone")
                    .map(|z| z.trim().to_owned())
                    .filter(|z| !z.is_empty() && !z.eq_ignore_ascii_case("default")),
                calendar: text(row, "mode").is_some_and(|m| m.starts_with("calendar")),
                id,
            }
        })
        .collect();
    Ok(Some(out))
}

/// One announcement: what it plays (its description) and where the call
/// goes next.
struct Announcement {
    id: String,
    description: String,
    next: String,
}

async fn read_announcements(
    conn: &mut MySqlConnection,
    problems: &mut Vec<Problem>,
) -> Result<Option<Vec<Announcement>>, ImportError> {
    let rows = sqlx::query("SELECT * FROM announcement")
        .fetch_all(&mut *conn)
        .await;
    let Some(rows) = optional(
        rows,
        "announcement",
        "an announcement's next destination is unknown, so it counts as closed",
        problems,
    )?
    else {
        return Ok(None);
    };
    Ok(Some(
        rows.iter()
            .map(|row| {
                let id = text(row, "announcement_id").unwrap_or_default();
                Announcement {
                    description: text(row, "description")
                        .filter(|d| !d.trim().is_empty())
                        .unwrap_or_else(|| format!("announcement {id}")),
                    next: text(row, "post_dest").unwrap_or_default(),
                    id,
                }
            })
            .collect(),
    ))
}

/// One inbound route.
struct InboundRoute {
    name: String,
    destination: String,
    caller_id: String,
    did: String,
}

async fn read_incoming(
    conn: &mut MySqlConnection,
    problems: &mut Vec<Problem>,
) -> Result<Option<Vec<InboundRoute>>, ImportError> {
    let rows = sqlx::query("SELECT * FROM incoming ORDER BY extension, cidnum")
        .fetch_all(&mut *conn)
        .await;
    let Some(rows) = optional(
        rows,
        "incoming",
        "no inbound routes: every time condition no other one chains to is an entry point",
        problems,
    )?
    else {
        return Ok(None);
    };
    let mut routes: Vec<InboundRoute> = rows
        .iter()
        .map(|row| {
            let did = text(row, "extension").unwrap_or_default();
            let caller_id = text(row, "cidnum").unwrap_or_default();
            let name = match text(row, "description").filter(|d| !d.trim().is_empty()) {
                Some(d) => format!("inbound route `{}`", d.trim()),
                None if did.is_empty() => "inbound route (any DID)".to_owned(),
                None => format!("inbound route {did}"),
            };
            InboundRoute {
                name,
                destination: text(row, "destination").unwrap_or_default(),
                caller_id,
                did,
            }
        })
        .collect();
    // Two routes of one description are told apart by their DID.
    let names: Vec<String> = routes.iter().map(|r| r.name.clone()).collect();
    for route in &mut routes {
        if names.iter().filter(|n| **n == route.name).count() > 1 {
            route.name = format!("{} ({})", route.name, route.did);
        }
    }
    Ok(Some(routes))
}

/// The entry points and where each routes.
fn entries(
    groups: &[TimeGroup],
    conditions: &[TimeConditionRow],
    announcements: &Option<Vec<Announcement>>,
    incoming: Option<Vec<InboundRoute>>,
    problems: &mut Vec<Problem>,
) -> Vec<Entry> {
    let starts: Vec<(String, String, String)> = match incoming {
        Some(routes) => routes
            .into_iter()
            .filter(|r| {
                if r.caller_id.trim().is_empty() {
                    return true;
                }
                problems.push(Problem::new(
                    "incoming",
                    0,
                    format!(
                        "{} (DID `{}`) only takes calls from {}; a chat has no caller ID, so it \
                         is not imported",
                        r.name, r.did, r.caller_id
                    ),
                ));
                false
            })
            .map(|r| (r.name, r.destination, "incoming".to_owned()))
            .collect(),
        None => conditions
            .iter()
            .filter(|c| {
                let me = format!("timeconditions,{},", c.id);
                !conditions
                    .iter()
                    .any(|o| o.if_true.starts_with(&me) || o.if_false.starts_with(&me))
            })
            .map(|c| {
                (
                    format!("time condition `{}`", c.name),
                    format!("timeconditions,{},1", c.id),
                    "timeconditions".to_owned(),
                )
            })
            .collect(),
    };
    starts
        .into_iter()
        .map(|(name, destination, table)| {
            let mut resolver = Resolver {
                groups,
                conditions,
                announcements: announcements.as_deref(),
                notes: Vec::new(),
                reaches_queue: false,
                path: Vec::new(),
            };
            let routing = resolver
                .resolve(&destination, &table, 0)
                .map(|flow| finish(flow, &name));
            // An inbound route that cannot be resolved is reported even
            // if no queue was met on the way.
            let reaches_queue = resolver.reaches_queue || routing.is_err();
            Entry {
                context: name,
                extension: String::new(),
                routing,
                reaches_queue,
                notes: resolver.notes,
            }
        })
        .collect()
}

/// Follows FreePBX destinations (`context,extension,priority`).
struct Resolver<'a> {
    groups: &'a [TimeGroup],
    conditions: &'a [TimeConditionRow],
    /// `None` when the table is missing.
    announcements: Option<&'a [Announcement]>,
    notes: Vec<Problem>,
    reaches_queue: bool,
    /// Time conditions being resolved, to stop loops.
    path: Vec<String>,
}

impl Resolver<'_> {
    fn note(&mut self, table: &str, row: usize, text: String) {
        let p = Problem::new(table, row, text);
        if !self.notes.contains(&p) {
            self.notes.push(p);
        }
    }

    /// `destination` as named in `table` at `row`.
    fn resolve(&mut self, destination: &str, table: &str, row: usize) -> Result<Flow, Unmapped> {
        let unmapped = |why: String| Unmapped {
            file: table.to_owned(),
            line: row,
            why,
        };
        let parts: Vec<&str> = destination.split(',').map(str::trim).collect();
        let (context, exten) = match parts[..] {
            [c, e, ..] => (c, e),
            _ => {
                return Err(unmapped(format!(
                    "destination `{destination}` is not context,extension,priority"
                )))
            }
        };
        let closed = |place: String| Ok(Flow::ends(Target::Closed { place, sound: None }));
        match context {
            "timeconditions" => self.condition(exten),
            "ext-queues" => {
                self.reaches_queue = true;
                Ok(Flow::ends(Target::Queue(exten.to_owned())))
            }
            "app-blackhole" => closed(match exten {
                "hangup" => "hangup".to_owned(),
                other => format!("blackhole-{other}"),
            }),
            c if c.starts_with("app-announcement-") => {
                let id = &c["app-announcement-".len()..];
                let place = format!("announcement-{id}");
                let Some(found) = self
                    .announcements
                    .and_then(|all| all.iter().find(|a| a.id == id))
                else {
                    return closed(place);
                };
                // It plays, then goes on: closed where it goes on to a
                // hang-up, with its own text.
                let key = format!("announcement {id}");
                if self.path.contains(&key) || self.path.len() > 64 {
                    return Err(unmapped(format!("announcement {id} leads back to itself")));
                }
                self.path.push(key);
                let next = self.resolve(&found.next, "announcement", row_id(id));
                self.path.pop();
                let here = Target::Closed {
                    place,
                    sound: Some(found.description.clone()),
                };
                Ok(announced(next?, here))
            }
            "ext-local" if exten.starts_with("vm") => {
                let mailbox = exten.trim_start_matches(|ch: char| ch.is_ascii_alphabetic());
                self.note(
                    table,
                    row,
                    format!(
                        "`{destination}` takes a voice message for {mailbox}; the chat shows a \
                         closed text and its alternatives instead"
                    ),
                );
                closed(format!("voicemail-{mailbox}"))
            }
            "ext-local" | "from-did-direct" => {
                self.note(
                    table,
                    row,
                    format!(
                        "`{destination}` rings extension {exten}, a phone; the chat is closed \
                         there (route to a queue with that agent instead)"
                    ),
                );
                closed(format!("extension-{exten}"))
            }
            c if c.starts_with("ivr-") => {
                self.note(
                    table,
                    row,
                    format!(
                        "`{destination}` is an IVR menu: the chat shows the channel's chatbot \
                         menu; give it the options this IVR offers callers"
                    ),
                );
                Ok(Flow::ends(Target::Menu(c.to_owned())))
            }
            "ext-group" => Err(unmapped(format!(
                "`{destination}` is ring group {exten}, which Frontdesk has no equivalent of \
                 (make it a queue)"
            ))),
            "app-daynight" => Err(unmapped(format!(
                "`{destination}` is a call flow control (a day/night switch toggled by a \
                 feature code), whose state only the PBX knows"
            ))),
            _ => Err(unmapped(format!(
                "destination `{destination}` has no Frontdesk equivalent"
            ))),
        }
    }

    fn condition(&mut self, id: &str) -> Result<Flow, Unmapped> {
        let unmapped = |why: String| Unmapped {
            file: "timeconditions".to_owned(),
            line: row_id(id),
            why,
        };
        let Some(tc) = self.conditions.iter().find(|c| c.id == id) else {
            return Err(unmapped(format!("time condition {id} does not exist")));
        };
        if self.path.iter().any(|p| p == id) || self.path.len() > 64 {
            return Err(unmapped(format!(
                "time condition `{}` chains back to itself",
                tc.name
            )));
        }
        if tc.calendar {
            return Err(unmapped(format!(
                "time condition `{}` follows a calendar, whose events only the PBX reads; \
                 give its days as holidays",
                tc.name
            )));
        }
        let Some(group) = self.groups.iter().find(|g| g.id == tc.group) else {
            return Err(unmapped(format!(
                "time condition `{}` uses time group {}, which has no valid time",
                tc.name, tc.group
            )));
        };
        let mut when = Vec::new();
        for spec in &group.times {
            let text = match &tc.zone {
                Some(zone) => with_zone(spec, zone),
                None => spec.clone(),
            };
            match text.parse::<TimeCondition>() {
                Ok(c) => when.push(c),
                Err(e) => {
                    return Err(unmapped(format!(
                        "time condition `{}`: `{text}`: {e}",
                        tc.name
                    )))
                }
            }
        }
        let row = row_id(id);
        self.note(
            "timeconditions",
            row,
            format!(
                "time condition `{}`: its override feature code (forcing it open or closed by \
                 phone) is not followed; the import follows its times",
                tc.name
            ),
        );
        self.path.push(id.to_owned());
        let if_true = self.resolve(&tc.if_true, "timeconditions", row);
        let if_false = self.resolve(&tc.if_false, "timeconditions", row);
        self.path.pop();
        Ok(guard_at(&when, if_true?, "timeconditions", row)?.then(if_false?))
    }
}

/// A time group's condition read in `zone`: FreePBX writes the fields
/// with `|`, and a zone needs `,` separators.
fn with_zone(spec: &str, zone: &str) -> String {
    let mut fields: Vec<&str> = spec.split(['|', ',']).collect();
    while fields.len() < 4 {
        fields.push("*");
    }
    fields.truncate(4);
    format!("{},{zone}", fields.join(","))
}

/// `users.extension → users.name`, or nothing if FreePBX's core module
/// tables are not there.
async fn user_names(
    conn: &mut MySqlConnection,
    problems: &mut Vec<Problem>,
) -> Result<HashMap<String, String>, ImportError> {
    let rows: Result<Vec<(String, Option<String>)>, sqlx::Error> =
        sqlx::query_as("SELECT extension, name FROM users")
            .fetch_all(&mut *conn)
            .await;
    let rows = optional(
        rows,
        "users",
        "agents are named by their extension",
        problems,
    )?;
    Ok(rows
        .unwrap_or_default()
        .into_iter()
        .filter_map(|(ext, name)| Some((ext, name.filter(|n| !n.trim().is_empty())?)))
        .collect())
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

/// Reads the queues; `false` when their tables are not there.
async fn read_queues(conn: &mut MySqlConnection, import: &mut Import) -> Result<bool, ImportError> {
    let configs: Result<Vec<(String, String, String, String)>, _> = sqlx::query_as(
        "SELECT extension, COALESCE(descr, ''), COALESCE(maxwait, ''), COALESCE(dest, '') \
         FROM queues_config \
         ORDER BY CAST(extension AS UNSIGNED), extension",
    )
    .fetch_all(&mut *conn)
    .await;
    let Some(configs) = optional(
        configs,
        "queues_config",
        "no queues from the database (the files' queues are used with --conf-dir)",
        &mut import.problems,
    )?
    else {
        return Ok(false);
    };
    let details: Result<Vec<(String, String, String)>, _> = sqlx::query_as(
        "SELECT id, keyword, data FROM queues_details ORDER BY id, flags, keyword, data",
    )
    .fetch_all(&mut *conn)
    .await;
    let details = optional(
        details,
        "queues_details",
        "queues imported without their settings and members",
        &mut import.problems,
    )?;
    import.queues_complete = details.is_some();
    let details = details.unwrap_or_default();
    let names = user_names(conn, &mut import.problems).await?;
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
                    let known = |q: &QueueExtension| configs.iter().any(|(e, ..)| e == q.as_str());
                    match target {
                        Some(target) if target != queue.extension && known(&target) => {
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
    import.agents = book.into_agents_named(&BTreeMap::new());
    Ok(true)
}
