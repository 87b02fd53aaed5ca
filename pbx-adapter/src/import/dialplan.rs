//! `Queue(name,…)` calls in `extensions.conf`: they tell which extension
//! dials a named queue, and the fifth argument is how long a caller may
//! wait. Where calls are routed (time conditions, includes, jumps) is the
//! `walk` module's job.

use super::conf::ConfFile;
use super::queues::split_args;
use super::walk::app_parts;
use super::Problem;

/// A `Queue(name,…)` application in the dialplan.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct QueueCall {
    pub queue: String,
    /// The literal extension it is dialled at (patterns are left out).
    pub extension: String,
    /// The fifth argument: seconds a caller may wait, if given.
    pub max_wait: Option<String>,
    /// The queue the dialplan sends a caller on to when `Queue()` returns
    /// (`Goto(ext-queues,600,1)` or `Queue(other)` next), by name.
    pub then: Option<String>,
    pub file: String,
    pub line: usize,
}

#[derive(Debug, Default)]
pub(crate) struct Dialplan {
    pub queue_calls: Vec<QueueCall>,
}

/// Patterns and Asterisk's special extensions (`s` start, `i` invalid,
/// `t` timeout, `h` hangup, …) are not dialled.
fn dialled(extension: &str) -> bool {
    const SPECIAL: &[&str] = &["s", "i", "t", "T", "h", "a", "o", "e", "fax", "talk"];
    !extension.starts_with('_') && !extension.contains('$') && !SPECIAL.contains(&extension)
}

/// What a step after `Queue()` does with a caller it returned.
enum Next {
    /// Bookkeeping that does not route (FreePBX clears flags first).
    Passed,
    Queue(String),
    Other,
}

fn next_queue(app: &str, args: &str) -> Next {
    match app.to_ascii_lowercase().as_str() {
        "set" | "noop" | "gosub" | "macro" | "execif" | "verbose" | "log" => Next::Passed,
        "queue" => match split_args(args).first().map(|q| q.trim()) {
            Some(q) if !q.is_empty() && !q.contains('$') => Next::Queue(q.to_owned()),
            _ => Next::Other,
        },
        "goto" => match split_args(args)
            .iter()
            .map(|a| a.trim())
            .collect::<Vec<_>>()[..]
        {
            ["ext-queues", q, _] if !q.contains('$') => Next::Queue(q.to_owned()),
            _ => Next::Other,
        },
        _ => Next::Other,
    }
}

/// Reads the queue calls of a dialplan.
pub(crate) fn map(conf: &ConfFile, problems: &mut Vec<Problem>) -> Dialplan {
    let mut queue_calls: Vec<QueueCall> = Vec::new();
    for section in conf.used_sections() {
        let context = section.name.as_str();
        if context.eq_ignore_ascii_case("general") || context.eq_ignore_ascii_case("globals") {
            continue;
        }
        let mut extension: Option<String> = None;
        // `Set(NAME=value)` seen in the current extension (FreePBX sets
        // QMAXWAIT just before its Queue() call).
        let mut set: Vec<(String, String)> = Vec::new();
        // The queue call of this extension whose next step is not seen yet.
        let mut pending: Option<usize> = None;
        for line in &section.lines {
            let app = match line.name.to_ascii_lowercase().as_str() {
                "exten" => {
                    let parts: Vec<&str> = line.value.splitn(3, ',').collect();
                    let [exten, _priority, app] = parts[..] else {
                        continue;
                    };
                    if extension.as_deref() != Some(exten.trim()) {
                        set.clear();
                        pending = None;
                    }
                    extension = Some(exten.trim().to_owned());
                    app
                }
                "same" => {
                    if extension.is_none() {
                        problems.push(Problem::new(
                            &line.file,
                            line.line,
                            "`same =>` without an `exten =>` before it",
                        ));
                        continue;
                    }
                    match line.value.split_once(',') {
                        Some((_priority, app)) => app,
                        None => continue,
                    }
                }
                _ => continue,
            };
            let (name, args) = app_parts(app);
            let Some(exten) = extension.as_deref() else {
                continue;
            };
            if let Some(i) = pending {
                match next_queue(name, args) {
                    Next::Passed => {}
                    Next::Queue(q) => {
                        queue_calls[i].then = Some(q);
                        pending = None;
                    }
                    Next::Other => pending = None,
                }
            }
            if name.eq_ignore_ascii_case("set") {
                if let Some((var, value)) = args.split_once('=') {
                    if !value.contains('$') {
                        set.push((var.trim().to_owned(), value.trim().to_owned()));
                    }
                }
                continue;
            }
            if name.eq_ignore_ascii_case("addqueuemember") {
                problems.push(Problem::new(
                    &line.file,
                    line.line,
                    format!(
                        "AddQueueMember({args}) makes dynamic members (agents who log in by phone); \
                         they are not imported: add the agents as members, or let them log in \
                         by chat presence"
                    ),
                ));
                continue;
            }
            if !name.eq_ignore_ascii_case("queue") || !dialled(exten) {
                continue;
            }
            let args = split_args(args);
            let queue = args.first().map_or("", |q| q.trim());
            if !queue.is_empty() && !queue.contains('$') {
                queue_calls.push(QueueCall {
                    queue: queue.to_owned(),
                    extension: exten.to_owned(),
                    max_wait: args
                        .get(4)
                        .map(|t| {
                            let mut t = t.trim().to_owned();
                            for (var, value) in set.iter().rev() {
                                t = t.replace(&format!("${{{var}}}"), value);
                            }
                            t
                        })
                        .filter(|t| !t.is_empty()),
                    then: None,
                    file: line.file.clone(),
                    line: line.line,
                });
                pending = Some(queue_calls.len() - 1);
            }
        }
    }
    Dialplan { queue_calls }
}
