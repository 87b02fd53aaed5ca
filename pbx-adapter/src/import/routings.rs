//! Walked entry points turned into channel routings: queue names resolved
//! to extensions, closed places turned into closures, identical routings
//! of several entry points merged, and what could not be walked reported.
//!
//! Only entry points that can reach a queue matter for chat; one that
//! always reaches the same queue needs no schedule (the channel's queue is
//! that queue) and is left out.

use std::collections::BTreeMap;

use crate::model::QueueExtension;
use crate::schedule::{Destination, RouteConfig, ScheduleConfig};

use super::walk::{common_zone, Entry, EntryRouting, Target};
use super::{ImportedClosure, ImportedRouting, Problem};

/// Builds the routings of `entries` (and, in `direct`, the entry points
/// that reach one queue at all times); `queues` maps a queue name (as
/// `Queue()` names it, case-insensitively) to its extension.
/// `source` names where the queues were read, for a routing that reaches
/// an unknown queue.
pub(crate) fn build(
    entries: Vec<Entry>,
    queues: &BTreeMap<String, QueueExtension>,
    source: &str,
    direct: &mut Vec<(String, QueueExtension)>,
    problems: &mut Vec<Problem>,
) -> Vec<ImportedRouting> {
    let mut kept: Vec<(String, String, EntryRouting)> = Vec::new();
    // Entry points that matter for chat, per context.
    let mut relevant: BTreeMap<String, usize> = BTreeMap::new();
    for entry in entries {
        if !entry.reaches_queue {
            continue;
        }
        *relevant.entry(entry.context.clone()).or_default() += 1;
        for note in entry.notes {
            if !problems.contains(&note) {
                problems.push(note);
            }
        }
        let name = entry_name(&entry.context, &entry.extension);
        match entry.routing {
            Ok(routing) => {
                if !routing.routes.is_empty() {
                    kept.push((entry.context, entry.extension, routing));
                } else if let Target::Queue(queue) = &routing.default {
                    // Always the same queue: a channel on it needs no schedule.
                    if let Some(ext) = queues.get(&queue.to_ascii_lowercase()) {
                        direct.push((name, ext.clone()));
                    }
                }
            }
            Err(u) => {
                let p = Problem::new(
                    u.file,
                    u.line,
                    format!("calls to {name} are not routed by the import: {}", u.why),
                );
                if !problems.contains(&p) {
                    problems.push(p);
                }
            }
        }
    }
    // Entry points with the same routing become one.
    let mut groups: Vec<(EntryRouting, Vec<(String, String)>)> = Vec::new();
    for (context, extension, routing) in kept {
        match groups.iter_mut().find(|(r, _)| *r == routing) {
            Some((_, entries)) => entries.push((context, extension)),
            None => groups.push((routing, vec![(context, extension)])),
        }
    }
    let count_in = |context: &str| relevant.get(context).copied().unwrap_or(0);
    let mut out = Vec::new();
    for (routing, entries) in &groups {
        // A context whose every entry point routes alike is named alone
        // (first); each `context,extension` is listed too, so a channel
        // that follows one keeps finding it when its neighbours change.
        let mut names: Vec<String> = Vec::new();
        for (c, _) in entries {
            let here = entries.iter().filter(|(c2, _)| c2 == c).count();
            if here == count_in(c) && !names.contains(c) {
                names.push(c.clone());
            }
        }
        for (c, e) in entries {
            let name = entry_name(c, e);
            if !names.contains(&name) {
                names.push(name);
            }
        }
        match to_schedule(routing, queues) {
            Ok((schedule, closures)) => out.push(ImportedRouting {
                name: names[0].clone(),
                entries: names,
                schedule,
                closed_sound: closed_sound(routing),
                closures,
            }),
            Err(why) => problems.push(Problem::new(
                source,
                0,
                format!(
                    "calls to {} are not routed by the import: {why}",
                    names.join(", ")
                ),
            )),
        }
    }
    out
}

/// `context,extension`, or the bare name of an entry point that is not a
/// dialplan extension (a FreePBX inbound route).
fn entry_name(context: &str, extension: &str) -> String {
    if extension.is_empty() {
        context.to_owned()
    } else {
        format!("{context},{extension}")
    }
}

/// The announcement of the place the channel's own closed text stands for.
fn closed_sound(routing: &EntryRouting) -> Option<String> {
    let main = match &routing.default {
        Target::Closed { sound, .. } => return sound.clone(),
        _ => routing
            .targets()
            .find(|t| matches!(t, Target::Closed { .. })),
    };
    match main {
        Some(Target::Closed { sound, .. }) => sound.clone(),
        _ => None,
    }
}

/// The schedule of one routing: the closed place of the default (or else
/// the first closed place) is the channel's own closed text, every other
/// one a named closure.
fn to_schedule(
    routing: &EntryRouting,
    queues: &BTreeMap<String, QueueExtension>,
) -> Result<(ScheduleConfig, Vec<ImportedClosure>), String> {
    let places: Vec<(&String, &Option<String>)> = routing
        .targets()
        .filter_map(|t| match t {
            Target::Closed { place, sound } => Some((place, sound)),
            _ => None,
        })
        .collect();
    let main_place = match &routing.default {
        Target::Closed { place, .. } => Some(place),
        _ => places.first().map(|(p, _)| *p),
    };
    let mut closures: Vec<ImportedClosure> = Vec::new();
    let mut destination = |t: &Target| -> Result<Destination, String> {
        Ok(match t {
            Target::Queue(name) => match queues.get(&name.to_ascii_lowercase()) {
                Some(ext) => Destination::Queue(ext.clone()),
                None => {
                    return Err(format!(
                        "it reaches Queue({name}), which queues.conf does not define"
                    ))
                }
            },
            Target::Menu(_) => Destination::Menu,
            Target::Closed { place, .. } if Some(place) == main_place => Destination::Closed(None),
            Target::Closed { place, sound } => {
                if !closures.iter().any(|c| &c.name == place) {
                    closures.push(ImportedClosure {
                        name: place.clone(),
                        sound: sound.clone(),
                    });
                }
                Destination::Closed(Some(place.clone()))
            }
        })
    };
    let mut routes = Vec::new();
    for (when, to) in &routing.routes {
        routes.push(RouteConfig {
            when: when.iter().map(|c| c.spec().to_owned()).collect(),
            holidays: Vec::new(),
            holidays_ics: None,
            to: destination(to)?,
        });
    }
    let default = destination(&routing.default)?;
    let schedule = ScheduleConfig {
        timezone: common_zone(routing).map(|tz| tz.name().to_owned()),
        routes,
        default: Some(default),
        ..ScheduleConfig::default()
    };
    Ok((schedule, closures))
}
