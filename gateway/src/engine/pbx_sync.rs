//! `frontdesk pbx sync`: keeps the directory in line with the PBX.
//!
//! An import ([`pbx_adapter::import::Import`]) is turned into directory
//! operations against what is stored, and applied as one change (so a
//! failed read, or a result the directory would refuse, changes nothing):
//!
//! - queues the PBX defines are stored with source `pbx` (read-only in the
//!   console) and follow the PBX; those it no longer has are removed;
//! - agents: an agent the directory already has (from the console or the
//!   file, with the chat address the admin gave) is kept as it is; a new
//!   one is created from the address patterns (`{extension}@example.com`),
//!   and without a pattern it is left out, with its queue memberships,
//!   and reported: Frontdesk refuses an agent it cannot reach;
//! - a console channel whose `pbx_routing` names an imported entry point
//!   gets that routing as its schedule, and a closure (with the default
//!   text) for each the routes name that it lacks; the rest of the
//!   channel stays the admin's.
//!
//! Items the console or the file owns are never changed: a PBX queue whose
//! extension is taken by one is reported and skipped.

use std::collections::BTreeMap;

use pbx_adapter::import::Import;
use pbx_adapter::queue::{AgentConfig, QueueConfig};

use super::directory::{
    change_stored_directory, Actor, Directory, DirectoryError, DirectoryOp, Item,
};
use crate::config::{ChannelConfig, ClosedConfig};
use crate::store::{ItemKind, ItemSource, Store};

/// How a sync names the agents the PBX knows no chat address for.
#[derive(Debug, Clone, Default)]
pub struct SyncOptions {
    pub tenant: String,
    /// `{extension}` is replaced: `{extension}@chat.example.com`.
    pub xmpp_pattern: Option<String>,
    /// `sip:{extension}@pbx.example.com`.
    pub sip_pattern: Option<String>,
}

/// What a sync changed (`+` added, `~` changed, `-` removed) and what it
/// could not do.
#[derive(Debug, Clone, Default)]
pub struct SyncReport {
    pub changes: Vec<String>,
    pub notes: Vec<String>,
    /// The directory version written, if anything changed.
    pub version: Option<i64>,
}

/// The keys of two JSON objects whose values differ, for the diff.
fn changed_fields(old: &impl serde::Serialize, new: &impl serde::Serialize) -> Vec<String> {
    let (Ok(serde_json::Value::Object(a)), Ok(serde_json::Value::Object(b))) =
        (serde_json::to_value(old), serde_json::to_value(new))
    else {
        return vec!["(all)".into()];
    };
    let mut keys: Vec<String> = a.keys().chain(b.keys()).cloned().collect();
    keys.sort();
    keys.dedup();
    keys.into_iter().filter(|k| a.get(k) != b.get(k)).collect()
}

fn fill(pattern: &str, extension: &str) -> String {
    pattern.replace("{extension}", extension)
}

/// The agent a pattern gives for a new PBX agent, if any.
fn addressed(agent: &AgentConfig, options: &SyncOptions) -> Result<Option<AgentConfig>, String> {
    let ext = agent.extension.as_str();
    let mut agent = agent.clone();
    if let Some(p) = &options.xmpp_pattern {
        let jid = fill(p, ext);
        agent.xmpp = Some(
            jid.parse()
                .map_err(|e| format!("--xmpp-pattern gives `{jid}` for {ext}: {e}"))?,
        );
    }
    if let Some(p) = &options.sip_pattern {
        let uri = fill(p, ext);
        agent.sip = Some(
            uri.parse()
                .map_err(|e| format!("--sip-pattern gives `{uri}` for {ext}: {e}"))?,
        );
    }
    Ok((agent.xmpp.is_some() || agent.sip.is_some()).then_some(agent))
}

/// Who owns an item, and its tenant.
fn owner_of(current: &Directory, kind: ItemKind, key: &str) -> Option<(ItemSource, String)> {
    current
        .meta(kind, key)
        .map(|m| (m.source, m.tenant.clone()))
}

/// The operations that bring `current` in line with `import`, and the diff.
pub fn plan(
    current: &Directory,
    import: &Import,
    options: &SyncOptions,
) -> (Vec<DirectoryOp>, SyncReport) {
    let mut ops = Vec::new();
    let mut report = SyncReport::default();
    let owner = |kind: ItemKind, key: &str| owner_of(current, kind, key);
    let mine =
        |source: ItemSource, tenant: &str| source == ItemSource::Pbx && tenant == options.tenant;

    if !import.queues_complete {
        report.notes.push(
            "the PBX's queues could not be read whole (a missing file or table, see `frontdesk \
             pbx import`): the stored queues and agents are left as they are"
                .into(),
        );
        let (channel_ops, channel_report) = plan_channels(current, import, options, false);
        ops.extend(channel_ops);
        report.changes.extend(channel_report.changes);
        report.notes.extend(channel_report.notes);
        return (ops, report);
    }

    // Agents.
    let stored_agents: BTreeMap<&str, &AgentConfig> = current
        .spec()
        .agents
        .iter()
        .map(|a| (a.extension.as_str(), a))
        .collect();
    let mut reachable: Vec<String> = Vec::new();
    for agent in &import.agents {
        let ext = agent.extension.as_str();
        match (owner(ItemKind::Agent, ext), stored_agents.get(ext)) {
            (Some((source, tenant)), Some(old)) if mine(source, &tenant) => {
                // Keep the address it was given; follow the PBX's name.
                let new = AgentConfig {
                    name: agent.name.clone(),
                    ..(*old).clone()
                };
                if new != **old {
                    report.changes.push(format!(
                        "~ agent {ext}: {}",
                        changed_fields(old, &new).join(", ")
                    ));
                    ops.push(DirectoryOp::Put(Item::Agent(new)));
                }
                reachable.push(ext.to_owned());
            }
            (Some((_, tenant)), Some(_)) if tenant == options.tenant => {
                reachable.push(ext.to_owned())
            }
            (Some(_), _) => report
                .notes
                .push(format!("agent {ext} belongs to another tenant; not synced")),
            (None, _) => match addressed(agent, options) {
                Ok(Some(new)) => {
                    report
                        .changes
                        .push(format!("+ agent {ext} \"{}\"", new.name));
                    ops.push(DirectoryOp::Put(Item::Agent(new)));
                    reachable.push(ext.to_owned());
                }
                Ok(None) => report.notes.push(format!(
                    "agent {ext} \"{}\": the PBX knows no chat address; create it in the console \
                     or give --xmpp-pattern / --sip-pattern (left out of its queues until then)",
                    agent.name
                )),
                Err(e) => report.notes.push(e),
            },
        }
    }

    // Queues.
    let stored_queues: BTreeMap<&str, &QueueConfig> = current
        .spec()
        .queues
        .iter()
        .map(|q| (q.extension.as_str(), q))
        .collect();
    for queue in &import.queues {
        let ext = queue.extension.as_str();
        let mut new = queue.clone();
        new.members
            .retain(|m| reachable.iter().any(|r| r == m.agent.as_str()));
        match (owner(ItemKind::Queue, ext), stored_queues.get(ext)) {
            (Some((source, tenant)), Some(old)) if mine(source, &tenant) => {
                if **old != new {
                    report.changes.push(format!(
                        "~ queue {ext}: {}",
                        changed_fields(old, &new).join(", ")
                    ));
                    ops.push(DirectoryOp::Put(Item::Queue(new)));
                }
            }
            (Some((source, _)), _) => report.notes.push(format!(
                "queue {ext} is managed in {}; the PBX's queue {ext} is not synced",
                match source {
                    ItemSource::File => "frontdesk.toml",
                    ItemSource::Console => "the console",
                    ItemSource::Pbx => "another tenant",
                }
            )),
            (None, _) => {
                report
                    .changes
                    .push(format!("+ queue {ext} \"{}\"", new.name));
                ops.push(DirectoryOp::Put(Item::Queue(new)));
            }
        }
    }

    let (channel_ops, channel_report) = plan_channels(current, import, options, true);
    ops.extend(channel_ops);
    report.changes.extend(channel_report.changes);
    report.notes.extend(channel_report.notes);

    // What the PBX no longer has. Queues go before the agents they name.
    let imported = |kind: ItemKind, key: &str| match kind {
        ItemKind::Queue => import.queues.iter().any(|q| q.extension.as_str() == key),
        ItemKind::Agent => import.agents.iter().any(|a| a.extension.as_str() == key),
        ItemKind::Channel => true,
    };
    for kind in [ItemKind::Queue, ItemKind::Agent] {
        let keys: Vec<String> = match kind {
            ItemKind::Queue => current
                .spec()
                .queues
                .iter()
                .map(|q| q.extension.to_string())
                .collect(),
            _ => current
                .spec()
                .agents
                .iter()
                .map(|a| a.extension.to_string())
                .collect(),
        };
        for key in keys {
            let Some((source, tenant)) = owner(kind, &key) else {
                continue;
            };
            if !mine(source, &tenant) || imported(kind, &key) {
                continue;
            }
            // A queue the console or the file keeps may still name it.
            let kept_by = current.spec().queues.iter().find(|q| {
                kind == ItemKind::Agent
                    && q.members.iter().any(|m| m.agent.as_str() == key)
                    && owner(ItemKind::Queue, q.extension.as_str())
                        .is_some_and(|(s, _)| s != ItemSource::Pbx)
            });
            if let Some(queue) = kept_by {
                report.notes.push(format!(
                    "agent {key} is gone from the PBX but still a member of queue {}, which is \
                     not the PBX's; it is kept",
                    queue.extension
                ));
                continue;
            }
            report.changes.push(format!("- {} {key}", kind.as_str()));
            ops.push(DirectoryOp::Delete(kind, key));
        }
    }
    (ops, report)
}

/// The channels that follow a PBX entry point. `queues_synced`: whether
/// this sync also brings the PBX's queues (else only stored ones count).
fn plan_channels(
    current: &Directory,
    import: &Import,
    options: &SyncOptions,
    queues_synced: bool,
) -> (Vec<DirectoryOp>, SyncReport) {
    let mut ops = Vec::new();
    let mut report = SyncReport::default();
    let owner = |kind: ItemKind, key: &str| owner_of(current, kind, key);
    // The queues of the tenant once this sync is done: a routing naming
    // another one would make the whole change refused.
    let available: Vec<String> = current
        .spec()
        .queues
        .iter()
        .map(|q| q.extension.to_string())
        .filter(|q| {
            owner(ItemKind::Queue, q).is_some_and(|(source, tenant)| {
                tenant == options.tenant
                    && (source != ItemSource::Pbx
                        || !queues_synced
                        || import.queues.iter().any(|i| i.extension.as_str() == q))
            })
        })
        .chain(
            import
                .queues
                .iter()
                .filter(|q| queues_synced && owner(ItemKind::Queue, q.extension.as_str()).is_none())
                .map(|q| q.extension.to_string()),
        )
        .collect();

    // Channels that follow a PBX entry point.
    for channel in &current.spec().channels {
        let Some(entry) = &channel.pbx_routing else {
            continue;
        };
        let key = channel.key.as_str();
        let Some((source, tenant)) = owner(ItemKind::Channel, key) else {
            continue;
        };
        if tenant != options.tenant {
            continue;
        }
        let direct = import
            .direct
            .iter()
            .find(|(name, _)| name == entry)
            .map(|(_, queue)| {
                // Always one queue: one route that always holds.
                pbx_adapter::import::ImportedRouting {
                    name: entry.clone(),
                    entries: vec![entry.clone()],
                    schedule: pbx_adapter::schedule::ScheduleConfig {
                        routes: vec![pbx_adapter::schedule::RouteConfig {
                            when: vec!["*,*,*,*".into()],
                            holidays: Vec::new(),
                            holidays_ics: None,
                            to: pbx_adapter::schedule::Destination::Queue(queue.clone()),
                        }],
                        default: Some(pbx_adapter::schedule::Destination::Closed(None)),
                        ..Default::default()
                    },
                    closures: Vec::new(),
                    closed_sound: None,
                }
            });
        let Some(routing) = import
            .routings
            .iter()
            .find(|r| r.name == *entry || r.entries.iter().any(|e| e == entry))
            .or(direct.as_ref())
        else {
            report.notes.push(format!(
                "channel {key} follows the PBX routing of `{entry}`, which the PBX no longer has \
                 (or routes to one queue at all times); its schedule is kept"
            ));
            continue;
        };
        if source != ItemSource::Console {
            report.notes.push(format!(
                "channel {key} is managed in frontdesk.toml: paste the routing of `{entry}` there \
                 (`frontdesk pbx import`)"
            ));
            continue;
        }
        let missing: Vec<String> = routing
            .schedule
            .routes
            .iter()
            .map(|r| &r.to)
            .chain(routing.schedule.default.iter())
            .filter_map(|d| match d {
                pbx_adapter::schedule::Destination::Queue(q) => Some(q.to_string()),
                _ => None,
            })
            .filter(|q| !available.contains(q))
            .collect();
        if !missing.is_empty() {
            report.notes.push(format!(
                "channel {key}: the routing of `{entry}` goes to queue(s) {} that this tenant does \
                 not have; its schedule is kept",
                missing.join(", ")
            ));
            continue;
        }
        let add_closures: Vec<(String, ClosedConfig)> = routing
            .closures
            .iter()
            .filter(|c| !channel.closures.contains_key(&c.name))
            .map(|c| (c.name.clone(), ClosedConfig::default()))
            .collect();
        // Conditions without a zone of their own are read in the PBX
        // server's zone, which only the admin knows: the channel's stays.
        let mut schedule = routing.schedule.clone();
        if schedule.timezone.is_none() {
            schedule.timezone = channel.schedule.timezone.clone();
        }
        let mut followed: ChannelConfig = channel.clone();
        followed.schedule = schedule.clone();
        for (name, closure) in &add_closures {
            followed.closures.insert(name.clone(), closure.clone());
        }
        if followed.schedule == channel.schedule && add_closures.is_empty() {
            continue;
        }
        let mut what = changed_fields(&channel.schedule, &followed.schedule);
        what.extend(
            add_closures
                .iter()
                .map(|(n, _)| format!("closure {n} (default text)")),
        );
        report.changes.push(format!(
            "~ channel {key} (routing of {entry}): {}",
            what.join(", ")
        ));
        ops.push(DirectoryOp::FollowPbx {
            channel: key.to_owned(),
            entry: entry.clone(),
            schedule,
            add_closures,
        });
    }

    (ops, report)
}

/// A sync the directory refused, with what the plan noted on the way
/// (often why: a channel still routing to a queue the PBX removed).
#[derive(Debug, thiserror::Error)]
#[error("{source}")]
pub struct SyncError {
    pub source: DirectoryError,
    pub notes: Vec<String>,
}

/// Reads the stored directory, plans the sync and applies it as one
/// change (nothing when the PBX says what is stored).
pub async fn sync(
    store: &Store,
    import: &Import,
    options: &SyncOptions,
) -> Result<SyncReport, SyncError> {
    let refused = |source: DirectoryError, notes: &[String]| SyncError {
        source,
        notes: notes.to_vec(),
    };
    let rows = store
        .directory()
        .await
        .map_err(|e| refused(e.into(), &[]))?;
    let current = Directory::from_rows(&rows).map_err(|e| refused(e, &[]))?;
    let (ops, mut report) = plan(&current, import, options);
    if ops.is_empty() {
        return Ok(report);
    }
    let actor = Actor {
        name: "pbx sync".into(),
        tenant: options.tenant.clone(),
        source: ItemSource::Pbx,
    };
    let next = change_stored_directory(store, &actor, &ops)
        .await
        .map_err(|e| refused(e, &report.notes))?;
    report.version = Some(next.version());
    Ok(report)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::{DirectoryRows, ItemRow};

    fn row(kind: ItemKind, key: &str, spec: serde_json::Value, source: ItemSource) -> ItemRow {
        ItemRow {
            tenant: "default".into(),
            kind,
            key: key.into(),
            spec: spec.to_string(),
            source,
            updated_at: 1,
            updated_by: None,
        }
    }

    /// A PBX queue 602 with agent 301, who is also a member of the
    /// console's queue 600.
    fn stored() -> Directory {
        let agent =
            serde_json::json!({ "extension": "301", "name": "Hugo", "xmpp": "hugo@example.com" });
        let queue = |ext: &str| serde_json::json!({ "extension": ext, "name": ext, "strategy": "ringall", "members": [{ "agent": "301", "penalty": 0 }] });
        Directory::from_rows(&DirectoryRows {
            version: 1,
            items: vec![
                row(ItemKind::Agent, "301", agent, ItemSource::Pbx),
                row(ItemKind::Queue, "602", queue("602"), ItemSource::Pbx),
                row(ItemKind::Queue, "600", queue("600"), ItemSource::Console),
            ],
        })
        .unwrap()
    }

    fn options() -> SyncOptions {
        SyncOptions {
            tenant: "default".into(),
            ..SyncOptions::default()
        }
    }

    #[test]
    fn a_partial_read_removes_nothing() {
        let import = Import::default(); // queues_complete: false
        let (ops, report) = plan(&stored(), &import, &options());
        assert!(ops.is_empty(), "{ops:?}");
        assert!(
            report.notes[0].contains("could not be read whole"),
            "{report:?}"
        );
    }

    #[test]
    fn an_agent_a_console_queue_still_names_is_kept() {
        let import = Import {
            queues_complete: true,
            ..Import::default()
        };
        let (ops, report) = plan(&stored(), &import, &options());
        assert_eq!(report.changes, ["- queue 602"]);
        assert!(matches!(&ops[..], [DirectoryOp::Delete(ItemKind::Queue, q)] if q == "602"));
        assert!(
            report
                .notes
                .iter()
                .any(|n| n
                    .contains("agent 301 is gone from the PBX but still a member of queue 600")),
            "{report:?}"
        );
    }
}
