//! Import queues, agents and business hours from the PBX the admin already
//! configured, so nothing is entered twice (issue 8, "Import from the PBX").
//!
//! An import never writes Frontdesk's configuration itself: it produces an
//! [`Import`], whose [`Import::to_toml`] is a fragment the admin pastes into
//! `frontdesk.toml` after reading [`Import::report`]. That keeps the admin
//! in charge of the one thing the PBX cannot tell us (each agent's XMPP JID
//! or SIP URI) and of where each schedule applies.
//!
//! Every construct that cannot be mapped exactly is listed as a [`Problem`]
//! with the file (or table) and line (or row id) it came from; an import
//! never panics on bad input, and never silently drops something that
//! would make Frontdesk answer differently from the PBX.
//!
//! - [`asterisk`]: `queues.conf` and `extensions.conf` from a directory
//!   (plain Asterisk, and FreePBX's generated `*_additional.conf` files).
//! - `freepbx` (cargo feature `freepbx`): time groups and queues from
//!   FreePBX's MySQL/MariaDB database.
//! - `conf`: the Asterisk configuration-file syntax (sections, templates,
//!   `#include`, comments) shared by both files.
//! - `queues` and `dialplan`: the mapping of queue settings and of
//!   dialplan time conditions into Frontdesk's model.

pub mod asterisk;
mod conf;
mod dialplan;
#[cfg(feature = "freepbx")]
pub mod freepbx;
mod queues;
mod routings;
mod walk;

use std::fmt;
use std::path::PathBuf;

use serde::Serialize;

use crate::queue::{AgentConfig, QueueConfig};
use crate::schedule::ScheduleConfig;

/// Something in the PBX's configuration that was not imported, or not
/// imported exactly. `line` is 0 when the problem is about a whole file;
/// for a database import `file` names the table and `line` the row id.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    pub file: String,
    pub line: usize,
    pub text: String,
}

impl Problem {
    pub(crate) fn new(file: impl Into<String>, line: usize, text: impl Into<String>) -> Problem {
        Problem {
            file: file.into(),
            line,
            text: text.into(),
        }
    }
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.line == 0 {
            write!(f, "{}: {}", self.file, self.text)
        } else {
            write!(f, "{}:{}: {}", self.file, self.line, self.text)
        }
    }
}

/// Why an import could not run at all. Anything less than that is a
/// [`Problem`] in the [`Import`].
#[derive(Debug, thiserror::Error)]
pub enum ImportError {
    #[error("cannot read {}: {source}", path.display())]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{} holds neither queues.conf nor extensions.conf", .0.display())]
    NothingToImport(PathBuf),
    #[cfg(feature = "freepbx")]
    #[error("FreePBX database: {0}")]
    Database(#[from] sqlx::Error),
}

/// What an import found: Frontdesk's own config types, ready to be checked
/// by [`crate::queue::PbxDirectory::new`] and
/// [`crate::schedule::Schedule::from_config`], plus what could not be mapped.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Import {
    pub queues: Vec<QueueConfig>,
    /// Every agent named as a queue member. The PBX knows no XMPP JID or
    /// SIP URI for them, so both are `None` and the admin must add one.
    pub agents: Vec<AgentConfig>,
    /// Whether the queues were read whole (their file or tables, settings
    /// and members): when not, a sync leaves the stored queues and agents
    /// as they are rather than take a partial read for removals.
    pub queues_complete: bool,
    /// Where each inbound entry point routes a chat: an ordered routing
    /// of time conditions to queues, closures or the menu, with a default.
    pub routings: Vec<ImportedRouting>,
    /// Entry points that reach one queue at all times (a channel on that
    /// queue needs no schedule), by name.
    pub direct: Vec<(String, crate::model::QueueExtension)>,
    /// Named opening hours that no routing uses (FreePBX time groups read
    /// without their time conditions).
    pub schedules: Vec<(String, ScheduleConfig)>,
    pub problems: Vec<Problem>,
}

/// The routing of one inbound entry point of the PBX (a dialplan context
/// or extension where calls come in, a FreePBX inbound route), ready to
/// become a channel's `schedule`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImportedRouting {
    /// The first of `entries`.
    pub name: String,
    /// Every entry point that routes this way: `context` when all its
    /// extensions do, else `context,extension`.
    pub entries: Vec<String>,
    /// `routes` and `default`; `timezone` when every condition names the
    /// same zone.
    pub schedule: ScheduleConfig,
    /// The closures the routes name (`{ closed = "<name>" }`), each a
    /// place where the PBX hangs up; the channel's own closed text is the
    /// default's.
    pub closures: Vec<ImportedClosure>,
    /// What the PBX announces where the channel's own closed text applies.
    pub closed_sound: Option<String>,
}

impl ImportedRouting {
    /// Its name, and the other entry points that route this way (but the
    /// `name,extension` forms of a context named whole).
    pub fn label(&self) -> String {
        let prefix = format!("{},", self.name);
        let others: Vec<&str> = (self.entries.iter())
            .filter(|e| **e != self.name && !e.starts_with(&prefix))
            .map(String::as_str)
            .collect();
        if others.is_empty() {
            self.name.clone()
        } else {
            format!("{} (also {})", self.name, others.join(", "))
        }
    }
}

/// A place where the PBX stops a call, which becomes a named closure.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImportedClosure {
    pub name: String,
    /// The announcement the PBX plays there, if any, for the admin to
    /// write the text from.
    pub sound: Option<String>,
}

#[derive(Serialize)]
struct ClosureFragment {
    text: String,
}

#[derive(Serialize)]
struct ChannelFragment<'a> {
    schedule: &'a ScheduleConfig,
    #[serde(skip_serializing_if = "std::collections::BTreeMap::is_empty")]
    closures: std::collections::BTreeMap<&'a str, ClosureFragment>,
}

#[derive(Serialize)]
struct ChannelsFragment<'a> {
    channels: [ChannelFragment<'a>; 1],
}

#[derive(Serialize)]
struct AgentsFragment<'a> {
    agents: [&'a AgentConfig; 1],
}

#[derive(Serialize)]
struct QueuesFragment<'a> {
    queues: [&'a QueueConfig; 1],
}

fn comment_out(text: &str, out: &mut String) {
    for line in text.lines() {
        if line.is_empty() {
            out.push_str("#\n");
        } else {
            out.push_str("# ");
            out.push_str(line);
            out.push('\n');
        }
    }
}

/// A `[[queues]]` entry with its members as one inline table per line,
/// which reads better than a `[[queues.members]]` table per member.
fn queue_toml(queue: &QueueConfig) -> String {
    let text = serialize(&QueuesFragment { queues: [queue] });
    let Ok(mut doc) = text.parse::<toml_edit::DocumentMut>() else {
        return text;
    };
    let tables = doc
        .get_mut("queues")
        .and_then(|item| item.as_array_of_tables_mut());
    for table in tables.into_iter().flat_map(|t| t.iter_mut()) {
        let Some(toml_edit::Item::ArrayOfTables(members)) = table.remove("members") else {
            continue;
        };
        let mut array = toml_edit::Array::new();
        for member in members.iter() {
            array.push(member.clone().into_inline_table());
        }
        for value in array.iter_mut() {
            value.decor_mut().set_prefix("\n    ");
        }
        array.set_trailing_comma(true);
        array.set_trailing("\n");
        table.insert("members", toml_edit::value(array));
    }
    doc.to_string()
}

fn serialize<T: Serialize>(value: &T) -> String {
    // Our config types only hold strings, numbers, lists and tables, which
    // TOML can always represent.
    toml::to_string(value).unwrap_or_else(|e| format!("# (could not serialize: {e})\n"))
}

/// A routing as a commented-out `[channels.schedule]` block (and its
/// closures) to move under the channel it belongs to.
fn routing_toml(routing: &ImportedRouting) -> String {
    let mut out = format!(
        "# Routing of calls to {}, as the PBX routes them (first matching route wins).\n\
         # Paste this under the [[channels]] entry of the chat that should follow it,\n\
         # remove the `# `, and write each closure's text.\n",
        routing.label()
    );
    if routing.schedule.timezone.is_none() {
        out.push_str(
            "# Set `timezone` to the PBX server's zone: Asterisk reads conditions without\n\
             # a fifth field in local time, Frontdesk in UTC when `timezone` is absent.\n",
        );
    }
    let closures = routing
        .closures
        .iter()
        .map(|c| {
            let text = match &c.sound {
                Some(sound) => format!("TODO: what the PBX announces with `{sound}`"),
                None => "TODO: why the chat is closed here".to_owned(),
            };
            (c.name.as_str(), ClosureFragment { text })
        })
        .collect();
    let fragment = ChannelsFragment {
        channels: [ChannelFragment {
            schedule: &routing.schedule,
            closures,
        }],
    };
    if let Some(sound) = &routing.closed_sound {
        out.push_str(&format!(
            "# The channel's own closed text (`[channels.closed]`) stands for what the PBX\n\
             # announces with `{sound}`.\n"
        ));
    }
    let text = serialize(&fragment);
    let text = inline_destinations(&text).unwrap_or(text);
    let block: String = text
        .lines()
        .filter(|l| l.trim() != "[[channels]]")
        .map(|l| format!("{l}\n"))
        .collect();
    comment_out(block.trim_start(), &mut out);
    out
}

/// Makes `table.key`, when it is a table, an inline one.
fn inline(table: &mut toml_edit::Table, key: &str) {
    if let Some(toml_edit::Item::Table(t)) = table.get(key) {
        let inline = t.clone().into_inline_table();
        table.insert(key, toml_edit::value(inline));
    }
}

/// The routing fragment with each route's `to` as an inline table and
/// the empty `open`/`holidays` of a routed schedule left out.
fn inline_destinations(text: &str) -> Option<String> {
    let mut doc = text.parse::<toml_edit::DocumentMut>().ok()?;
    let channel = doc
        .get_mut("channels")?
        .as_array_of_tables_mut()?
        .iter_mut()
        .next()?;
    let schedule = channel.get_mut("schedule")?.as_table_mut()?;
    for key in ["open", "holidays"] {
        if schedule
            .get(key)
            .and_then(|v| v.as_array())
            .is_some_and(|a| a.is_empty())
        {
            schedule.remove(key);
        }
    }
    if let Some(routes) = schedule
        .get_mut("routes")
        .and_then(|r| r.as_array_of_tables_mut())
    {
        for route in routes.iter_mut() {
            inline(route, "to");
        }
    }
    inline(schedule, "default");
    Some(doc.to_string())
}

impl Import {
    /// TOML to paste into `frontdesk.toml`: `[[agents]]` and `[[queues]]`
    /// entries, and each schedule as a commented-out `[channels.schedule]`
    /// block to move under the channel it belongs to.
    pub fn to_toml(&self) -> String {
        let mut out = String::from(
            "# Imported from the PBX by `frontdesk pbx import`. Read the import report first.\n",
        );
        for agent in &self.agents {
            out.push('\n');
            if agent.xmpp.is_none() && agent.sip.is_none() {
                out.push_str(
                    "# TODO: add `xmpp = \"user@example.com\"` and/or `sip = \"sip:user@pbx.example.com\"`;\n\
                     # Frontdesk refuses an agent it cannot reach.\n",
                );
            }
            out.push_str(&serialize(&AgentsFragment { agents: [agent] }));
        }
        for queue in &self.queues {
            out.push('\n');
            out.push_str(&queue_toml(queue));
        }
        for routing in &self.routings {
            out.push('\n');
            out.push_str(&routing_toml(routing));
        }
        for (name, schedule) in &self.schedules {
            out.push('\n');
            out.push_str(&format!(
                "# Schedule `{name}`: the times when one of these PBX conditions holds.\n\
                 # If they are a channel's opening hours, paste this under its [[channels]]\n\
                 # entry and remove the `# `.\n"
            ));
            if schedule.timezone.is_none() {
                out.push_str(
                    "# Set `timezone` to the PBX server's zone: Asterisk reads conditions without\n\
                     # a fifth field in local time, Frontdesk in UTC when `timezone` is absent.\n",
                );
            }
            let mut block = String::from("[channels.schedule]\n");
            block.push_str(&serialize(schedule));
            comment_out(&block, &mut out);
        }
        out
    }

    /// A human-readable summary: what was imported, what the admin must
    /// still do, and every problem with its file and line.
    pub fn report(&self) -> String {
        let mut out = format!(
            "Imported {} queue(s), {} agent(s), {} routing(s) and {} schedule(s); {} problem(s).\n",
            self.queues.len(),
            self.agents.len(),
            self.routings.len(),
            self.schedules.len(),
            self.problems.len()
        );
        if !self.queues.is_empty() {
            out.push_str("\nQueues:\n");
            for q in &self.queues {
                let members: Vec<String> = q
                    .members
                    .iter()
                    .map(|m| format!("{} (penalty {})", m.agent, m.penalty))
                    .collect();
                out.push_str(&format!(
                    "  {} \"{}\": {}, ring timeout {} s, wrap-up {} s, members: {}\n",
                    q.extension,
                    q.name,
                    q.strategy,
                    q.ring_timeout_secs,
                    q.wrapup_secs,
                    if members.is_empty() {
                        "none".to_owned()
                    } else {
                        members.join(", ")
                    }
                ));
            }
        }
        if !self.agents.is_empty() {
            out.push_str("\nAgents:\n");
            for a in &self.agents {
                let todo = if a.xmpp.is_none() && a.sip.is_none() {
                    ": the PBX knows no chat address; add an `xmpp` JID or a `sip` URI"
                } else {
                    ""
                };
                out.push_str(&format!("  {} \"{}\"{todo}\n", a.extension, a.name));
            }
        }
        if !self.routings.is_empty() {
            out.push_str("\nRoutings (first matching route wins):\n");
            for r in &self.routings {
                out.push_str(&format!(
                    "  {} (time zone: {}):\n",
                    r.label(),
                    r.schedule
                        .timezone
                        .as_deref()
                        .unwrap_or("not set, give the PBX's")
                ));
                for route in &r.schedule.routes {
                    out.push_str(&format!("    {} → {}\n", route.when.join(" | "), route.to));
                }
                if let Some(default) = &r.schedule.default {
                    out.push_str(&format!("    otherwise → {default}\n"));
                }
            }
        }
        if !self.direct.is_empty() {
            out.push_str("\nAlways to one queue (a channel on it needs no schedule):\n");
            for (entry, queue) in &self.direct {
                out.push_str(&format!("  {entry} → queue {queue}\n"));
            }
        }
        if !self.schedules.is_empty() {
            out.push_str("\nSchedules:\n");
            for (name, s) in &self.schedules {
                out.push_str(&format!(
                    "  {name}: {} (time zone: {})\n",
                    s.open.join(" | "),
                    s.timezone.as_deref().unwrap_or("not set, give the PBX's")
                ));
            }
        }
        if !self.problems.is_empty() {
            out.push_str("\nNot imported, or not exactly:\n");
            for p in &self.problems {
                out.push_str(&format!("  {p}\n"));
            }
        }
        out
    }
}

#[cfg(test)]
mod tests;
