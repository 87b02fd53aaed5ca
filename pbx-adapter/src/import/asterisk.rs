//! Import from an Asterisk configuration directory (`/etc/asterisk` or a
//! copy of it): queues and agents from `queues.conf`, schedules from
//! `extensions.conf`. FreePBX's generated files (`queues_additional.conf`,
//! `extensions_additional.conf`) are read through the `#include` lines
//! that FreePBX puts in those two files.
//!
//! - Each `[section]` of `queues.conf` but `[general]` and templates is a
//!   queue, with templates applied as Asterisk applies them. `[general]`
//!   holds global options that Asterisk does not copy into queues, and
//!   neither do we (only its `autofill = no` matters, and is reported).
//!   A queue named
//!   by digits (`[600]`, FreePBX's way) keeps them as its extension; a
//!   named queue (`[support]`) gets the extension that dials
//!   `Queue(support)` in `extensions.conf`, when exactly one does.
//! - The fifth argument of that `Queue()` call (how long a caller may
//!   wait) becomes `max_wait_secs`; what the PBX does next is dialplan, so
//!   the chat goes to the contact alternatives, which the report says.
//! - Agents are the queue members. Their name is the member line's name
//!   field, or else their extension; the PBX knows neither their JID nor
//!   their SIP URI for chat, so the admin adds one.
//! - Schedules: see the `dialplan` module. No zone is known for conditions
//!   without a fifth field (Asterisk uses the server's local time), so the
//!   report and the TOML ask the admin for it.

use std::path::Path;

use crate::model::QueueExtension;
use crate::queue::{AgentConfigError, DirectoryProblem, PbxDirectory};

use super::conf::{self, ConfFile};
use super::dialplan::{self, Dialplan, QueueCall};
use super::queues::{self, AgentBook, Setting};
use super::{routings, walk, Import, ImportError, Problem};

/// Queue name (lower case, as `Queue()` names it) → extension.
pub(crate) fn queue_names(
    queues: &[crate::queue::QueueConfig],
) -> std::collections::BTreeMap<String, QueueExtension> {
    let mut out = std::collections::BTreeMap::new();
    for q in queues {
        out.insert(
            q.extension.as_str().to_ascii_lowercase(),
            q.extension.clone(),
        );
    }
    for q in queues {
        out.entry(q.name.to_ascii_lowercase())
            .or_insert_with(|| q.extension.clone());
    }
    out
}

/// Reads `queues.conf` and `extensions.conf` (and what they `#include`)
/// from `dir`. Fails only if `dir` cannot be read or holds neither file;
/// everything else that cannot be mapped is a [`Problem`] in the result.
pub fn import_dir(dir: &Path) -> Result<Import, ImportError> {
    std::fs::read_dir(dir).map_err(|source| ImportError::Read {
        path: dir.to_owned(),
        source,
    })?;
    let mut problems = Vec::new();
    let queues_conf = conf::read(dir, "queues.conf", &mut problems)?;
    let extensions_conf = conf::read(dir, "extensions.conf", &mut problems)?;
    if queues_conf.is_none() && extensions_conf.is_none() {
        return Err(ImportError::NothingToImport(dir.to_owned()));
    }
    let dialplan = match &extensions_conf {
        Some(conf) => dialplan::map(conf, &mut problems),
        None => {
            problems.push(Problem::new(
                "extensions.conf",
                0,
                "not found: no schedules imported, and named queues keep their name as extension",
            ));
            Dialplan::default()
        }
    };
    let mut import = Import::default();
    let names = phone_names(dir, &mut problems)?;
    match &queues_conf {
        Some(conf) => {
            let (queues, agents) = map_queues(conf, &dialplan, &names, &mut problems);
            import.queues = queues;
            import.agents = agents;
            import.queues_complete = true;
        }
        None => problems.push(Problem::new(
            "queues.conf",
            0,
            "not found: no queues or agents imported",
        )),
    }
    if let Some(conf) = &extensions_conf {
        let queues = queue_names(&import.queues);
        import.routings = routings::build(
            walk::Plan::new(conf).entries(),
            &queues,
            "queues.conf",
            &mut import.direct,
            &mut problems,
        );
    }
    check_directory(&mut import, &mut problems);
    // Stable: problems of one line stay in the order they were found.
    problems.sort_by(|a, b| (&a.file, a.line).cmp(&(&b.file, b.line)));
    import.problems = problems;
    Ok(import)
}

/// Reports what [`PbxDirectory::new`] would refuse in the imported queues
/// and agents, except the missing chat addresses the admin is told about
/// anyway.
pub(crate) fn check_directory(import: &mut Import, problems: &mut Vec<Problem>) {
    if let Err(invalid) = PbxDirectory::new(import.queues.clone(), import.agents.clone()) {
        for p in invalid.problems {
            if !matches!(p, DirectoryProblem::Agent(AgentConfigError::Unreachable(_))) {
                problems.push(Problem::new(
                    "(imported queues and agents)",
                    0,
                    p.to_string(),
                ));
            }
        }
    }
}

/// Extension → the name in its phone's `callerid` (`pjsip.conf` endpoints,
/// FreePBX's `pjsip.endpoint.conf`, `sip.conf` peers), for members whose
/// line gives no name.
fn phone_names(
    dir: &Path,
    problems: &mut Vec<Problem>,
) -> Result<std::collections::BTreeMap<String, String>, ImportError> {
    let mut names = std::collections::BTreeMap::new();
    for file in [
        "pjsip.conf",
        "pjsip.endpoint.conf",
        "sip.conf",
        "sip_additional.conf",
    ] {
        let Some(conf) = conf::read(dir, file, problems)? else {
            continue;
        };
        for section in conf.used_sections() {
            let value = |key: &str| {
                section
                    .lines
                    .iter()
                    .rev()
                    .find(|l| l.name.eq_ignore_ascii_case(key))
                    .map(|l| l.value.trim())
            };
            let is_pjsip = file.starts_with("pjsip");
            if is_pjsip && value("type").is_none_or(|t| !t.eq_ignore_ascii_case("endpoint")) {
                continue;
            }
            if let Some(name) = value("callerid").and_then(queues::callerid_name) {
                names.entry(section.name.clone()).or_insert(name);
            }
        }
    }
    Ok(names)
}

fn map_queues(
    conf: &ConfFile,
    dialplan: &Dialplan,
    names: &std::collections::BTreeMap<String, String>,
    problems: &mut Vec<Problem>,
) -> (
    Vec<crate::queue::QueueConfig>,
    Vec<crate::queue::AgentConfig>,
) {
    let mut book = AgentBook::default();
    let mut queues = Vec::new();
    let mut seen: Vec<&str> = Vec::new();
    // Queue index, and the queue its callers go on to.
    let mut onward: Vec<(usize, Onward)> = Vec::new();
    for section in conf.used_sections() {
        let name = section.name.as_str();
        if name.eq_ignore_ascii_case("general") {
            for line in &section.lines {
                let v = line.value.trim();
                if line.name.eq_ignore_ascii_case("autofill") && !v.eq_ignore_ascii_case("yes") {
                    problems.push(Problem::new(
                        &line.file,
                        line.line,
                        format!(
                            "autofill={v} (one waiting caller at a time) is not imported; \
                             Frontdesk offers every waiting chat as agents free up"
                        ),
                    ));
                }
            }
            continue;
        }
        if seen.iter().any(|s| s.eq_ignore_ascii_case(name)) {
            problems.push(Problem::new(
                &section.file,
                section.line,
                format!("queue [{name}] is defined again; Asterisk uses the first one, so does the import"),
            ));
            continue;
        }
        seen.push(name);
        let calls: Vec<&QueueCall> = dialplan
            .queue_calls
            .iter()
            .filter(|c| c.queue.eq_ignore_ascii_case(name))
            .collect();
        let Some(extension) = queue_extension(name, &calls, &section.file, section.line, problems)
        else {
            continue;
        };
        let settings: Vec<Setting<'_>> = section
            .lines
            .iter()
            .map(|l| Setting {
                key: &l.name,
                value: &l.value,
                file: &l.file,
                line: l.line,
            })
            .collect();
        let mut queue =
            queues::map_queue(extension, name.to_owned(), &settings, &mut book, problems);
        if let Some(then) = apply_max_wait(&mut queue, &calls, problems) {
            onward.push((queues.len(), then));
        }
        queues.push(queue);
    }
    // The queue the dialplan sends a caller on to is the chat's overflow.
    let by_name = queue_names(&queues);
    for (index, (then, call)) in onward {
        let queue = &mut queues[index];
        let q = queue.extension.clone();
        let secs = queue.max_wait_secs.unwrap_or_default();
        match by_name.get(&then.to_ascii_lowercase()) {
            Some(target) if *target != q => {
                queue.overflow = Some(crate::queue::Overflow::Queue(target.clone()));
                problems.push(Problem::new(
                    &call.0,
                    call.1,
                    format!(
                        "queue {q}: after {secs} s the PBX sends callers on to queue {target}; \
                         imported as its overflow"
                    ),
                ));
            }
            _ => problems.push(Problem::new(
                &call.0,
                call.1,
                format!(
                    "queue {q}: after {secs} s the PBX sends callers on to queue `{then}`, which \
                     the import did not find; Frontdesk shows the contact alternatives"
                ),
            )),
        }
    }
    (queues, book.into_agents_named(names))
}

/// The extension a queue is reached at.
fn queue_extension(
    name: &str,
    calls: &[&QueueCall],
    file: &str,
    line: usize,
    problems: &mut Vec<Problem>,
) -> Option<QueueExtension> {
    let mut dialled: Vec<&str> = calls.iter().map(|c| c.extension.as_str()).collect();
    dialled.sort_unstable();
    dialled.dedup();
    if !name.is_empty() && name.bytes().all(|b| b.is_ascii_digit()) {
        return name.parse().ok();
    }
    if let [only] = dialled[..] {
        if let Ok(ext) = only.parse() {
            return Some(ext);
        }
    }
    let why = if dialled.is_empty() {
        format!("no `Queue({name})` in extensions.conf tells its extension")
    } else {
        format!(
            "it is dialled at several extensions ({})",
            dialled.join(", ")
        )
    };
    match name.parse::<QueueExtension>() {
        Ok(ext) => {
            problems.push(Problem::new(
                file,
                line,
                format!("queue [{name}]: {why}; imported with `{name}` as its extension"),
            ));
            Some(ext)
        }
        Err(e) => {
            problems.push(Problem::new(
                file,
                line,
                format!("queue [{name}]: {why}, and its name is no extension ({e}); not imported"),
            ));
            None
        }
    }
}

/// The queue callers go on to after a queue's max wait, by name, and the
/// file and line that says so.
type Onward = (String, (String, usize));

/// Takes `max_wait_secs` from the `Queue()` calls when they agree, and
/// returns the queue they all send callers on to afterwards, if any (with
/// the file and line that says so).
fn apply_max_wait(
    queue: &mut crate::queue::QueueConfig,
    calls: &[&QueueCall],
    problems: &mut Vec<Problem>,
) -> Option<Onward> {
    let waits: Vec<&QueueCall> = calls
        .iter()
        .copied()
        .filter(|c| c.max_wait.is_some())
        .collect();
    let first = waits.first()?;
    let q = &queue.extension;
    if waits.len() != calls.len() || waits.iter().any(|c| c.max_wait != first.max_wait) {
        problems.push(Problem::new(
            &first.file,
            first.line,
            format!(
                "queue {q}: callers may wait for different times depending on how they dial it; \
                 max_wait_secs not imported"
            ),
        ));
        return None;
    }
    let text = first.max_wait.as_deref().unwrap_or_default();
    match text.parse::<u32>() {
        Ok(0) => None,
        Ok(secs) => {
            queue.max_wait_secs = Some(secs);
            let then = first.then.clone();
            if then.is_some() && calls.iter().all(|c| c.then == then) {
                return then.map(|t| (t, (first.file.clone(), first.line)));
            }
            problems.push(Problem::new(
                &first.file,
                first.line,
                format!(
                    "queue {q}: after {secs} s the PBX continues the dialplan after Queue(); \
                     Frontdesk shows the contact alternatives (set `overflow` to move the chat \
                     to another queue)"
                ),
            ));
            None
        }
        Err(_) => {
            problems.push(Problem::new(
                &first.file,
                first.line,
                format!(
                    "queue {q}: Queue() timeout `{text}` is not a number of seconds; not imported"
                ),
            ));
            None
        }
    }
}
