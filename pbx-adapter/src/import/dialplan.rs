//! Time conditions and queue calls in `extensions.conf`.
//!
//! Asterisk decides business hours in the dialplan, in two ways, and both
//! become named schedules whose open rules are the conditions as written
//! (so Frontdesk evaluates them exactly as the PBX does, see
//! [`crate::schedule::timespec`]):
//!
//! - `GotoIfTime(times,weekdays,mdays,months[,tz]?iftrue[:iffalse])` in an
//!   `exten =>` or `same =>` line of context `[ctx]` gives schedule
//!   `ctx?iftrue` (or `ctx?:iffalse` when only the false branch is given):
//!   the times when that jump is taken. Several `GotoIfTime` to the same
//!   label add up, as they do on the PBX.
//! - `include => other,times,weekdays,mdays,months[,tz]` in `[ctx]` (or
//!   the pre-1.6 `|` form) gives schedule `ctx>other`: the times when
//!   `[other]` is part of `[ctx]`.
//!
//! A condition that Asterisk would silently half-ignore (`25:00-26:00`) is
//! refused by [`TimeCondition`] and reported with its error text; one that
//! uses dialplan variables cannot be evaluated outside the PBX and is
//! reported too. When a `GotoIfTime` to another label comes first in the
//! same extension (a holiday check before the office hours, say), the
//! later schedule is only right once those times are added as holidays,
//! which the report says.
//!
//! `Queue(name,…)` calls are collected too: they tell which extension
//! dials a named queue, and the fifth argument is how long a caller may
//! wait.

use chrono_tz::Tz;

use crate::schedule::{ScheduleConfig, TimeCondition};

use super::conf::{ConfFile, Line};
use super::queues::split_args;
use super::Problem;

/// A `Queue(name,…)` application in the dialplan.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct QueueCall {
    pub queue: String,
    /// The literal extension it is dialled at (patterns are left out).
    pub extension: String,
    /// The fifth argument: seconds a caller may wait, if given.
    pub max_wait: Option<String>,
    pub file: String,
    pub line: usize,
}

#[derive(Debug, Default)]
pub(crate) struct Dialplan {
    pub schedules: Vec<(String, ScheduleConfig)>,
    pub queue_calls: Vec<QueueCall>,
}

/// Rules collected for one schedule, in order.
#[derive(Default)]
struct Rules {
    specs: Vec<String>,
    zones: Vec<Option<Tz>>,
}

#[derive(Default)]
struct Builder {
    schedules: Vec<(String, Rules)>,
    queue_calls: Vec<QueueCall>,
    problems: Vec<Problem>,
}

/// A `GotoIfTime` already seen in the current extension.
struct Jump {
    key: String,
    file: String,
    line: usize,
}

impl Builder {
    fn problem(&mut self, at: &Line, text: String) {
        self.problems.push(Problem::new(&at.file, at.line, text));
    }

    fn add_rule(&mut self, key: &str, condition: &TimeCondition) {
        let index = match self.schedules.iter().position(|(k, _)| k == key) {
            Some(i) => i,
            None => {
                self.schedules.push((key.to_owned(), Rules::default()));
                self.schedules.len() - 1
            }
        };
        let rules = &mut self.schedules[index].1;
        if !rules.specs.iter().any(|s| s == condition.spec()) {
            rules.specs.push(condition.spec().to_owned());
            rules.zones.push(condition.timezone());
        }
    }

    fn timed_include(&mut self, context: &str, at: &Line) {
        let value = at.value.as_str();
        let Some(split) = value.find([',', '|']) else {
            return; // A plain include: always part of the context.
        };
        let (target, spec) = (value[..split].trim(), value[split + 1..].trim());
        if spec.is_empty() {
            return;
        }
        if spec.contains('$') {
            self.problem(
                at,
                format!(
                    "timed include of `{target}`: condition `{spec}` uses dialplan variables, \
                     which only the PBX can evaluate; not imported"
                ),
            );
            return;
        }
        match spec.parse::<TimeCondition>() {
            Ok(condition) => self.add_rule(&format!("{context}>{target}"), &condition),
            Err(e) => self.problem(
                at,
                format!("timed include of `{target}`: condition `{spec}`: {e}; not imported"),
            ),
        }
    }

    fn goto_if_time(&mut self, context: &str, args: &str, at: &Line, jumps: &mut Vec<Jump>) {
        if args.contains('$') {
            self.problem(
                at,
                format!(
                    "GotoIfTime({args}) uses dialplan variables, which only the PBX can evaluate; \
                     not imported"
                ),
            );
            return;
        }
        let Some((spec, labels)) = args.split_once('?') else {
            self.problem(
                at,
                format!("GotoIfTime({args}) has no `?label`; not imported"),
            );
            return;
        };
        let (if_true, if_false) = labels.split_once(':').unwrap_or((labels, ""));
        let key = match (if_true.trim(), if_false.trim()) {
            ("", "") => {
                self.problem(
                    at,
                    format!("GotoIfTime({args}) jumps nowhere; not imported"),
                );
                return;
            }
            ("", f) => format!("{context}?:{f}"),
            (t, _) => format!("{context}?{t}"),
        };
        let condition = match spec.parse::<TimeCondition>() {
            Ok(c) => c,
            Err(e) => {
                self.problem(
                    at,
                    format!("GotoIfTime condition `{}`: {e}; not imported", spec.trim()),
                );
                return;
            }
        };
        let first_to_key = !jumps.iter().any(|j| j.key == key);
        if let Some(earlier) = jumps.iter().find(|j| j.key != key && first_to_key) {
            let text = format!(
                "`{key}` is only reached when the GotoIfTime at {}:{} (to `{}`) has not jumped \
                 first; those times are not taken out of this schedule (add them as dated \
                 `holidays` if they matter)",
                earlier.file, earlier.line, earlier.key
            );
            self.problem(at, text);
        }
        jumps.push(Jump {
            key: key.clone(),
            file: at.file.clone(),
            line: at.line,
        });
        self.add_rule(&key, &condition);
    }

    fn application(
        &mut self,
        context: &str,
        extension: &str,
        app: &str,
        at: &Line,
        jumps: &mut Vec<Jump>,
    ) {
        let app = app.trim();
        let (name, args) = match app.split_once('(') {
            Some((name, rest)) => (name.trim(), rest.rsplit_once(')').map_or(rest, |(a, _)| a)),
            None => (app, ""),
        };
        match name.to_ascii_lowercase().as_str() {
            "gotoiftime" => self.goto_if_time(context, args, at, jumps),
            "execiftime" => self.problem(
                at,
                format!(
                    "ExecIfTime({args}) runs an application at certain times; not imported \
                     (only GotoIfTime and timed includes become schedules)"
                ),
            ),
            "queue" => {
                let args = split_args(args);
                let queue = args.first().map_or("", |q| q.trim());
                // Patterns and Asterisk's special extensions (`s` start,
                // `i` invalid, `t` timeout, `h` hangup, …) are not dialled.
                const SPECIAL: &[&str] = &["s", "i", "t", "T", "h", "a", "o", "e", "fax", "talk"];
                let literal = !extension.starts_with('_')
                    && !extension.contains('$')
                    && !SPECIAL.contains(&extension);
                if !queue.is_empty() && !queue.contains('$') && literal {
                    self.queue_calls.push(QueueCall {
                        queue: queue.to_owned(),
                        extension: extension.to_owned(),
                        max_wait: args
                            .get(4)
                            .map(|t| t.trim().to_owned())
                            .filter(|t| !t.is_empty()),
                        file: at.file.clone(),
                        line: at.line,
                    });
                }
            }
            _ => {
                if app.to_ascii_uppercase().contains("IFTIME(") {
                    self.problem(
                        at,
                        "the IFTIME() function is not imported (only GotoIfTime and timed \
                         includes become schedules)"
                            .to_owned(),
                    );
                }
            }
        }
    }
}

/// Reads the schedules and queue calls of a dialplan.
pub(crate) fn map(conf: &ConfFile, problems: &mut Vec<Problem>) -> Dialplan {
    let mut b = Builder::default();
    for section in conf.used_sections() {
        let context = section.name.as_str();
        if context.eq_ignore_ascii_case("general") || context.eq_ignore_ascii_case("globals") {
            continue;
        }
        let mut extension: Option<String> = None;
        let mut jumps: Vec<Jump> = Vec::new();
        for line in &section.lines {
            match line.name.to_ascii_lowercase().as_str() {
                "include" => b.timed_include(context, line),
                "exten" => {
                    let parts: Vec<&str> = line.value.splitn(3, ',').collect();
                    let [exten, _priority, app] = parts[..] else {
                        continue;
                    };
                    let exten = exten.trim();
                    if extension.as_deref() != Some(exten) {
                        extension = Some(exten.to_owned());
                        jumps.clear();
                    }
                    b.application(context, exten, app, line, &mut jumps);
                }
                "same" => {
                    let Some(exten) = extension.clone() else {
                        b.problem(line, "`same =>` without an `exten =>` before it".to_owned());
                        continue;
                    };
                    if let Some((_priority, app)) = line.value.split_once(',') {
                        b.application(context, &exten, app, line, &mut jumps);
                    }
                }
                _ => {}
            }
        }
    }
    problems.append(&mut b.problems);
    let schedules = b
        .schedules
        .into_iter()
        .map(|(key, rules)| {
            // When every rule names the same zone, that is the schedule's
            // zone too (holidays are then days there).
            let timezone = match rules.zones.first() {
                Some(Some(tz)) if rules.zones.iter().all(|z| *z == Some(*tz)) => {
                    Some(tz.name().to_owned())
                }
                _ => None,
            };
            (
                key,
                ScheduleConfig {
                    timezone,
                    open: rules.specs,
                    holidays: Vec::new(),
                    holidays_ics: None,
                    ..Default::default()
                },
            )
        })
        .collect();
    Dialplan {
        schedules,
        queue_calls: b.queue_calls,
    }
}
