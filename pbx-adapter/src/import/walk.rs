//! Where each inbound entry point of a dialplan routes a call, as an
//! ordered routing (spec M3): the dialplan is walked symbolically from the
//! entry, taking both sides of every time check, so the result keeps the
//! PBX's precedence (a holiday check before the office hours stays first)
//! and its default (what happens when no condition holds).
//!
//! What the walk follows, as Asterisk does:
//!
//! - extension lookup: the context's own extensions first (a literal name
//!   before a `_` pattern), then its `include`s in order, a timed include
//!   only while its condition holds; nothing found hangs up;
//! - priorities `1`, `n`, `n+k`, labels `n(open)`, `same =>`;
//! - `Goto([[context,]extension,]priority)`, `GotoIfTime(cond?t[:f])`,
//!   `ExecIfTime(cond?Goto(…))`, `GotoIf(${IFTIME(cond?a:b)}?t[:f])`;
//! - `Queue(name,…)` ends the walk at that queue; `Hangup`, `Busy`,
//!   `Congestion`, `VoiceMail` and falling off the end of an extension
//!   close (the place it closed at names the closure, the last `Playback`
//!   before it is the announcement); `Background`/`WaitExten` (an IVR)
//!   becomes the chatbot menu.
//!
//! A time check inside a branch of another becomes the conjunction of the
//! two ([`TimeCondition::and`]). What cannot be evaluated outside the PBX
//! (a `GotoIf` on a variable, such as FreePBX's override toggles or a
//! caller-ID split) is reported and walked as its "false" side, the side a
//! call takes when nobody toggled anything. What cannot be walked at all (a
//! jump or queue through a variable, a loop, conditions of different zones
//! nested) makes the entry [`Unmapped`], with the line that stopped it.

use std::collections::BTreeSet;

use chrono_tz::Tz;

use crate::schedule::TimeCondition;

use super::conf::{ConfFile, Line};
use super::queues::split_args;
use super::Problem;

/// The deepest jump chain followed before calling it a loop.
const MAX_DEPTH: usize = 64;

/// Where a walk ends.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub(crate) enum Target {
    /// `Queue(name)`.
    Queue(String),
    /// An IVR menu (`Background`, `WaitExten`) in this context.
    Menu(String),
    /// Hung up, or sent to voicemail, in `place` (a context, or
    /// `context-label`); `sound` is the last announcement played there.
    Closed {
        place: String,
        sound: Option<String>,
    },
}

/// An entry whose routing cannot be imported, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Unmapped {
    pub file: String,
    pub line: usize,
    pub why: String,
}

impl Unmapped {
    fn at(at: &Line, why: impl Into<String>) -> Unmapped {
        Unmapped {
            file: at.file.clone(),
            line: at.line,
            why: why.into(),
        }
    }
}

/// Conditions (any holds) and where they route.
pub(crate) type Guarded = (Vec<TimeCondition>, Target);

/// A routing as the walk builds it: `end` is `None` while an extension
/// lookup found nothing (the next include is tried).
#[derive(Debug, Clone, Default)]
pub(crate) struct Flow {
    routes: Vec<Guarded>,
    end: Option<Target>,
}

impl Flow {
    pub fn ends(target: Target) -> Flow {
        Flow {
            routes: Vec::new(),
            end: Some(target),
        }
    }

    /// `self`'s routes, then `rest`.
    pub fn then(mut self, rest: Flow) -> Flow {
        self.routes.extend(rest.routes);
        self.end = rest.end;
        self
    }
}

/// The routing of one entry point: first matching route wins, else
/// `default`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct EntryRouting {
    pub routes: Vec<Guarded>,
    pub default: Target,
}

impl EntryRouting {
    pub fn targets(&self) -> impl Iterator<Item = &Target> {
        self.routes
            .iter()
            .map(|(_, t)| t)
            .chain(std::iter::once(&self.default))
    }
}

/// One walked entry point.
#[derive(Debug, Clone)]
pub(crate) struct Entry {
    pub context: String,
    pub extension: String,
    pub routing: Result<EntryRouting, Unmapped>,
    /// Whether the walk met a queue (so the entry matters for chat).
    pub reaches_queue: bool,
    /// What the walk passed over without an equivalent.
    pub notes: Vec<Problem>,
}

/// `[[context,]extension,]priority`.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Jump {
    context: Option<String>,
    extension: Option<String>,
    priority: Priority,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Priority {
    Number(u32),
    Label(String),
}

#[derive(Debug)]
struct Step<'a> {
    priority: u32,
    label: Option<String>,
    /// Lower case, for matching.
    app: String,
    /// As written, for the report.
    name: String,
    args: String,
    at: &'a Line,
}

#[derive(Debug)]
struct Extension<'a> {
    name: String,
    steps: Vec<Step<'a>>,
}

#[derive(Debug)]
struct Include<'a> {
    target: String,
    /// The condition text of a timed include.
    when: Option<String>,
    at: &'a Line,
}

#[derive(Debug)]
struct Context<'a> {
    name: String,
    includes: Vec<Include<'a>>,
    extensions: Vec<Extension<'a>>,
}

/// A dialplan read for walking.
#[derive(Debug, Default)]
pub(crate) struct Plan<'a> {
    contexts: Vec<Context<'a>>,
    /// `[globals]`: a `${NAME}` of these is replaced by its value, as the
    /// PBX does (unless the dialplan changes it, which the walk cannot see).
    globals: Vec<(String, String)>,
}

/// Extensions Asterisk reserves for events, never dialled by a caller.
const SPECIAL: &[&str] = &["i", "t", "T", "h", "a", "o", "e", "fax", "talk"];

/// `name(args)` of a dialplan application.
pub(crate) fn app_parts(app: &str) -> (&str, &str) {
    let app = app.trim();
    match app.split_once('(') {
        Some((name, rest)) => (name.trim(), rest.rsplit_once(')').map_or(rest, |(a, _)| a)),
        None => (app, ""),
    }
}

/// Splits `priority[(label)]` into a number (relative to `last`) and a label.
fn priority_of(text: &str, last: u32) -> Option<(u32, Option<String>)> {
    let text = text.trim();
    let (head, label) = match text.split_once('(') {
        Some((head, rest)) => (
            head.trim(),
            Some(rest.trim_end_matches(')').trim().to_owned()).filter(|l| !l.is_empty()),
        ),
        None => (text, None),
    };
    let number = match head {
        "n" => last.checked_add(1)?,
        "s" => last,
        h if h.starts_with("n+") => last.checked_add(h[2..].parse::<u32>().ok()?)?,
        h => h.parse().ok()?,
    };
    Some((number, label))
}

impl<'a> Plan<'a> {
    pub fn new(conf: &'a ConfFile) -> Plan<'a> {
        let mut plan = Plan::default();
        for section in conf.used_sections() {
            let name = section.name.as_str();
            if name.eq_ignore_ascii_case("globals") {
                for line in &section.lines {
                    plan.globals
                        .push((line.name.trim().to_owned(), line.value.trim().to_owned()));
                }
                continue;
            }
            if name.eq_ignore_ascii_case("general") {
                continue;
            }
            // `[ctx](+)` and repeated sections add to the first.
            let index = match plan.contexts.iter().position(|c| c.name == name) {
                Some(i) => i,
                None => {
                    plan.contexts.push(Context {
                        name: name.to_owned(),
                        includes: Vec::new(),
                        extensions: Vec::new(),
                    });
                    plan.contexts.len() - 1
                }
            };
            let context = &mut plan.contexts[index];
            let mut last_priority = 0u32;
            let mut last_extension: Option<String> = None;
            for line in &section.lines {
                let (exten, priority, app) = match line.name.to_ascii_lowercase().as_str() {
                    "include" => {
                        let value = line.value.trim();
                        let (target, when) = match value.find([',', '|']) {
                            Some(i) => (&value[..i], Some(value[i + 1..].trim().to_owned())),
                            None => (value, None),
                        };
                        context.includes.push(Include {
                            target: target.trim().to_owned(),
                            when: when.filter(|w| !w.is_empty()),
                            at: line,
                        });
                        continue;
                    }
                    "exten" => {
                        let parts: Vec<&str> = line.value.splitn(3, ',').collect();
                        let [exten, priority, app] = parts[..] else {
                            continue;
                        };
                        (exten.trim().to_owned(), priority, app)
                    }
                    "same" => {
                        let Some(exten) = last_extension.clone() else {
                            continue;
                        };
                        let Some((priority, app)) = line.value.split_once(',') else {
                            continue;
                        };
                        (exten, priority, app)
                    }
                    _ => continue,
                };
                if priority.trim().eq_ignore_ascii_case("hint") {
                    continue;
                }
                let Some((number, label)) = priority_of(priority, last_priority) else {
                    continue;
                };
                last_priority = number;
                last_extension = Some(exten.clone());
                let (app_name, args) = app_parts(app);
                let step = Step {
                    priority: number,
                    label,
                    app: app_name.to_ascii_lowercase(),
                    name: app_name.to_owned(),
                    args: args.to_owned(),
                    at: line,
                };
                match context.extensions.iter_mut().find(|e| e.name == exten) {
                    // Asterisk refuses a priority already in use: the
                    // first one stays.
                    Some(e) if e.steps.iter().any(|s| s.priority == number) => {}
                    Some(e) => e.steps.push(step),
                    None => context.extensions.push(Extension {
                        name: exten,
                        steps: vec![step],
                    }),
                }
            }
        }
        let globals = plan.globals.clone();
        for context in &mut plan.contexts {
            for include in &mut context.includes {
                include.when = include.when.as_deref().map(|w| expand(&globals, w));
            }
            for extension in &mut context.extensions {
                for step in &mut extension.steps {
                    step.args = expand(&globals, &step.args);
                }
                extension.steps.sort_by_key(|s| s.priority);
            }
        }
        plan
    }

    fn context(&self, name: &str) -> Option<&Context<'a>> {
        self.contexts.iter().find(|c| c.name == name)
    }

    /// Contexts named by another context's include or jump.
    fn referenced(&self) -> BTreeSet<String> {
        let mut out = BTreeSet::new();
        for context in &self.contexts {
            for include in &context.includes {
                out.insert(include.target.clone());
            }
            for step in context.extensions.iter().flat_map(|e| &e.steps) {
                for jump in jumps_in(&step.app, &step.args) {
                    if let Some(c) = jump.context {
                        if c != context.name {
                            out.insert(c);
                        }
                    }
                }
                if step.app == "dial" {
                    for part in step.args.split(['&', ',']) {
                        if let Some((_, ctx)) =
                            part.strip_prefix("Local/").and_then(|r| r.split_once('@'))
                        {
                            out.insert(ctx.split('/').next().unwrap_or_default().to_owned());
                        }
                    }
                }
            }
        }
        out
    }

    /// The extensions a caller can dial into `context`: its own and those
    /// of the contexts it includes (transitively); `s` if none.
    fn dialable(&self, context: &str) -> Vec<String> {
        let mut out: Vec<String> = Vec::new();
        let mut seen = BTreeSet::new();
        let mut stack = vec![context.to_owned()];
        while let Some(name) = stack.pop() {
            if !seen.insert(name.clone()) {
                continue;
            }
            let Some(c) = self.context(&name) else {
                continue;
            };
            for e in &c.extensions {
                let plain = e.name.split('/').next().unwrap_or_default();
                if !SPECIAL.contains(&plain) && !out.iter().any(|o| o == plain) {
                    out.push(plain.to_owned());
                }
            }
            stack.extend(c.includes.iter().rev().map(|i| i.target.clone()));
        }
        if out.is_empty() {
            out.push("s".to_owned());
        }
        out
    }

    /// Whether some path from `exten` in `context` (taking every side of
    /// every check, following static jumps and includes) reaches a queue.
    fn may_reach_queue(
        &self,
        context: &str,
        exten: &str,
        seen: &mut BTreeSet<(String, String)>,
    ) -> bool {
        if !seen.insert((context.to_owned(), exten.to_owned())) {
            return false;
        }
        let Some(ctx) = self.context(context) else {
            return false;
        };
        let Some(extension) = ctx.own(exten) else {
            return ctx
                .includes
                .iter()
                .any(|i| self.may_reach_queue(&i.target, exten, seen));
        };
        extension.steps.iter().any(|step| {
            step.app == "queue"
                || jumps_in(&step.app, &step.args).into_iter().any(|j| {
                    let c = j.context.unwrap_or_else(|| context.to_owned());
                    let e = j.extension.unwrap_or_else(|| exten.to_owned());
                    self.may_reach_queue(&c, &e, seen)
                })
        })
    }

    /// Walks every extension of every context that no other context
    /// includes or jumps to (where calls come in).
    pub fn entries(&self) -> Vec<Entry> {
        let referenced = self.referenced();
        let mut out = Vec::new();
        for context in &self.contexts {
            let name = context.name.as_str();
            if referenced.contains(name) || name.starts_with("macro-") || name.starts_with("sub-") {
                continue;
            }
            for extension in self.dialable(name) {
                let mut walker = Walker {
                    plan: self,
                    notes: Vec::new(),
                    reaches_queue: false,
                    path: Vec::new(),
                };
                let routing = walker
                    .lookup(name, &extension, &Priority::Number(1), None)
                    .map(|flow| finish(flow, name));
                // A walk stopped early may not have met the queue it leads to.
                let reaches_queue = walker.reaches_queue
                    || (routing.is_err()
                        && self.may_reach_queue(name, &extension, &mut BTreeSet::new()));
                out.push(Entry {
                    context: name.to_owned(),
                    extension,
                    routing,
                    reaches_queue,
                    notes: walker.notes,
                });
            }
        }
        out
    }
}

/// A flow whose lookup found nothing hangs up there; routes that end
/// where the default does are dropped from the end.
pub(crate) fn finish(flow: Flow, context: &str) -> EntryRouting {
    let default = flow.end.unwrap_or(Target::Closed {
        place: context.to_owned(),
        sound: None,
    });
    let mut routes = flow.routes;
    while routes.last().is_some_and(|(_, t)| *t == default) {
        routes.pop();
    }
    // Neighbours to the same place read as one route.
    let mut merged: Vec<Guarded> = Vec::new();
    for (when, to) in routes {
        match merged.last_mut() {
            Some((w, t)) if *t == to => {
                for c in when {
                    if !w.contains(&c) {
                        w.push(c);
                    }
                }
            }
            _ => merged.push((when, to)),
        }
    }
    EntryRouting {
        routes: merged,
        default,
    }
}

/// `text` with the `${NAME}` of every global variable replaced.
fn expand(globals: &[(String, String)], text: &str) -> String {
    let mut out = text.to_owned();
    for (name, value) in globals {
        out = out.replace(&format!("${{{name}}}"), value);
    }
    out
}

/// Whether Asterisk's `pbx_checkcondition` reads `value` as true.
fn truthy(value: &str) -> bool {
    let v = value.trim();
    if v.is_empty() {
        return false;
    }
    match v.parse::<i64>() {
        Ok(n) => n != 0,
        Err(_) => true,
    }
}

/// `cond` and `true`/`false` values of the one `IFTIME(cond?a:b)` an
/// expression consists of (inside `$[…]` / `${…}` wrappers).
fn iftime_of(expr: &str) -> Option<(String, String, String)> {
    let upper = expr.to_ascii_uppercase();
    let start = upper.find("IFTIME(")?;
    let wrappers = |s: &str| s.chars().all(|c| matches!(c, '$' | '[' | '{' | ' '));
    let closers = |s: &str| s.chars().all(|c| matches!(c, ']' | '}' | ' '));
    let inner = &expr[start + "IFTIME(".len()..];
    let close = inner.rfind(')')?;
    if !wrappers(&expr[..start]) || !closers(&inner[close + 1..]) {
        return None;
    }
    let (cond, values) = inner[..close].split_once('?')?;
    let (a, b) = values.split_once(':').unwrap_or((values, ""));
    Some((cond.trim().to_owned(), a.to_owned(), b.to_owned()))
}

/// Parses one `[[context,]extension,]priority` target.
fn parse_jump(text: &str) -> Option<Jump> {
    let parts: Vec<String> = split_args(text)
        .iter()
        .map(|p| p.trim().to_owned())
        .collect();
    let priority = |p: &str| match p.parse::<u32>() {
        Ok(n) => Priority::Number(n),
        Err(_) => Priority::Label(p.to_owned()),
    };
    match &parts[..] {
        [p] if !p.is_empty() => Some(Jump {
            context: None,
            extension: None,
            priority: priority(p),
        }),
        [e, p] => Some(Jump {
            context: None,
            extension: Some(e.clone()),
            priority: priority(p),
        }),
        [c, e, p] => Some(Jump {
            context: Some(c.clone()),
            extension: Some(e.clone()),
            priority: priority(p),
        }),
        _ => None,
    }
}

/// `condition` and `t[:f]` of `condition?t[:f]`, split at the first `?`
/// outside brackets (an `IFTIME(…?…)` inside the condition has its own).
fn split_condition(args: &str) -> Option<(&str, &str)> {
    let mut depth = 0i32;
    for (i, c) in args.char_indices() {
        match c {
            '(' | '[' | '{' => depth += 1,
            ')' | ']' | '}' => depth -= 1,
            '?' if depth <= 0 => return Some((&args[..i], &args[i + 1..])),
            _ => {}
        }
    }
    None
}

/// `t` and `f` of `…?t[:f]` (either may be empty).
fn branches(labels: &str) -> (&str, &str) {
    let (t, f) = labels.split_once(':').unwrap_or((labels, ""));
    (t.trim(), f.trim())
}

/// Every static jump target an application names (for finding entries).
fn jumps_in(app: &str, args: &str) -> Vec<Jump> {
    let texts: Vec<&str> = match app {
        "goto" => vec![args],
        "gotoif" | "gotoiftime" => match split_condition(args) {
            Some((_, labels)) => {
                let (t, f) = branches(labels);
                vec![t, f]
            }
            None => vec![],
        },
        "execiftime" | "execif" => match split_condition(args) {
            Some((_, inner)) => {
                let (name, inner_args) = app_parts(inner);
                return jumps_in(&name.to_ascii_lowercase(), inner_args);
            }
            None => vec![],
        },
        _ => vec![],
    };
    texts
        .into_iter()
        .filter(|t| !t.is_empty() && !t.contains('$'))
        .filter_map(parse_jump)
        .collect()
}

/// An Asterisk `_` pattern matched against a dialled extension.
fn pattern_matches(pattern: &str, exten: &str) -> bool {
    let Some(p) = pattern.strip_prefix('_') else {
        return pattern == exten;
    };
    fn go(p: &[char], e: &[char]) -> bool {
        let Some((&c, rest)) = p.split_first() else {
            return e.is_empty();
        };
        match c {
            '.' => !e.is_empty() && (1..=e.len()).any(|n| go(rest, &e[n..])),
            '!' => (0..=e.len()).any(|n| go(rest, &e[n..])),
            '[' => {
                let Some(close) = rest.iter().position(|&x| x == ']') else {
                    return false;
                };
                let set = &rest[..close];
                let Some((&x, e_rest)) = e.split_first() else {
                    return false;
                };
                let mut i = 0;
                let mut hit = false;
                while i < set.len() {
                    if i + 2 < set.len() && set[i + 1] == '-' {
                        hit |= set[i] <= x && x <= set[i + 2];
                        i += 3;
                    } else {
                        hit |= set[i] == x;
                        i += 1;
                    }
                }
                hit && go(&rest[close + 1..], e_rest)
            }
            _ => {
                let Some((&x, e_rest)) = e.split_first() else {
                    return false;
                };
                let ok = match c.to_ascii_uppercase() {
                    'X' => x.is_ascii_digit(),
                    'Z' => ('1'..='9').contains(&x),
                    'N' => ('2'..='9').contains(&x),
                    _ => c == x,
                };
                ok && go(rest, e_rest)
            }
        }
    }
    let p: Vec<char> = p.chars().collect();
    let e: Vec<char> = exten.chars().collect();
    go(&p, &e)
}

/// How specific a pattern is, as Asterisk orders them (`ext_cmp`): place
/// by place, a literal character before a `[set]` (smaller first), `N`,
/// `Z`, `X`, then `.` and `!`; the smallest key matches first.
fn pattern_rank(pattern: &str) -> Vec<u32> {
    let mut out = Vec::new();
    let mut chars = pattern.trim_start_matches('_').chars().peekable();
    while let Some(c) = chars.next() {
        out.push(match c.to_ascii_uppercase() {
            'N' => 8,
            'Z' => 9,
            'X' => 10,
            '.' => 1000,
            '!' => 1001,
            '[' => {
                let mut members = 0u32;
                let mut previous = None;
                while let Some(m) = chars.next() {
                    match m {
                        ']' => break,
                        '-' => {
                            if let (Some(a), Some(&b)) = (previous, chars.peek()) {
                                members += (b as u32).saturating_sub(a as u32);
                                chars.next();
                            }
                        }
                        _ => {
                            members += 1;
                            previous = Some(m);
                        }
                    }
                }
                members.max(1)
            }
            _ => 1,
        });
    }
    out
}

impl<'a> Context<'a> {
    /// The context's own extension a dialled `exten` runs: the literal
    /// one, else the most specific matching pattern, as Asterisk orders
    /// them ([`pattern_rank`]). Caller-ID variants (`exten/cid`) are
    /// skipped.
    fn own(&self, exten: &str) -> Option<&Extension<'a>> {
        let plain = |e: &&Extension<'a>| !e.name.contains('/');
        self.extensions
            .iter()
            .filter(plain)
            .find(|e| e.name == exten)
            .or_else(|| {
                self.extensions
                    .iter()
                    .filter(plain)
                    .filter(|e| e.name.starts_with('_') && pattern_matches(&e.name, exten))
                    .min_by_key(|e| pattern_rank(&e.name))
            })
    }
}

struct Walker<'p, 'a> {
    plan: &'p Plan<'a>,
    notes: Vec<Problem>,
    reaches_queue: bool,
    /// (context, extension, `file:line` of the jump) on the current
    /// path, to stop loops.
    path: Vec<(String, String, String)>,
}

impl<'p, 'a> Walker<'p, 'a> {
    fn note(&mut self, at: &Line, text: String) {
        let p = Problem::new(&at.file, at.line, text);
        if !self.notes.contains(&p) {
            self.notes.push(p);
        }
    }

    /// Runs `exten` at `priority` with the channel in `context`: its own
    /// extensions, then its includes. `from` is the line that jumped here,
    /// for errors.
    fn lookup(
        &mut self,
        context: &str,
        exten: &str,
        priority: &Priority,
        from: Option<&'a Line>,
    ) -> Result<Flow, Unmapped> {
        let plan = self.plan;
        if plan.context(context).is_none() {
            return match from {
                Some(at) => Err(Unmapped::at(
                    at,
                    format!("jumps to context [{context}], which the dialplan does not define"),
                )),
                None => Ok(Flow::default()),
            };
        }
        let flow = self.search(context, context, exten, priority, &mut BTreeSet::new())?;
        if let (None, Some(at), Priority::Label(label)) = (&flow.end, from, priority) {
            if flow.routes.is_empty() {
                return Err(Unmapped::at(
                    at,
                    format!("jumps to label `{label}` of `{exten}` in [{context}], which does not exist"),
                ));
            }
        }
        Ok(flow)
    }

    /// Looks `exten` up in `context` (the channel staying in `channel`, as
    /// Asterisk keeps it when an include answers): an own extension with
    /// that priority, else the includes in order, each context searched
    /// once (Asterisk allows include loops and skips repeats).
    fn search(
        &mut self,
        context: &str,
        channel: &str,
        exten: &str,
        priority: &Priority,
        searched: &mut BTreeSet<String>,
    ) -> Result<Flow, Unmapped> {
        let plan = self.plan;
        let Some(ctx) = plan.context(context) else {
            return Ok(Flow::default());
        };
        if !searched.insert(context.to_owned()) {
            return Ok(Flow::default());
        }
        let with_cid = format!("{exten}/");
        if let Some(e) = ctx
            .extensions
            .iter()
            .find(|e| e.name.starts_with(&with_cid))
        {
            let at = e.steps[0].at;
            self.note(
                at,
                format!(
                    "extension `{}` picks a route by the caller's number; a chat has no caller ID, \
                     so only the route for other callers is imported",
                    e.name
                ),
            );
        }
        if let Some(extension) = ctx.own(exten) {
            let index = match priority {
                Priority::Number(n) => extension.steps.iter().position(|s| s.priority == *n),
                Priority::Label(l) => extension
                    .steps
                    .iter()
                    .position(|s| s.label.as_deref() == Some(l)),
            };
            if let Some(i) = index {
                return self.steps(ctx, channel, extension, exten, i);
            }
        }
        let mut flow = Flow::default();
        for include in &ctx.includes {
            if self.path.len() > MAX_DEPTH {
                return Err(Unmapped::at(include.at, "includes nest too deep"));
            }
            // A timed include is only entered while its time holds, so
            // only then does it count as searched.
            let sub = match &include.when {
                None => self.search(&include.target, channel, exten, priority, searched)?,
                Some(_) => {
                    let mut inner = searched.clone();
                    self.search(&include.target, channel, exten, priority, &mut inner)?
                }
            };
            match &include.when {
                None => {
                    flow.routes.extend(sub.routes);
                    if sub.end.is_some() {
                        flow.end = sub.end;
                        return Ok(flow);
                    }
                }
                Some(when) => {
                    let condition = condition(when, include.at, "timed include")?;
                    let guarded = guard(&[condition], sub, include.at)?;
                    flow.routes.extend(guarded.routes);
                }
            }
        }
        Ok(flow)
    }

    /// Follows a jump made in the channel's context `channel`.
    fn jump(
        &mut self,
        channel: &str,
        exten: &str,
        target: &str,
        at: &'a Line,
    ) -> Result<Flow, Unmapped> {
        if target.contains('$') {
            let t = target.replace("${EXTEN}", exten);
            if t.contains('$') || (t != target && exten.starts_with('_')) {
                return Err(Unmapped::at(
                    at,
                    format!(
                        "jumps to `{target}`, chosen through a dialplan variable (or the number \
                         dialled) that only the PBX knows"
                    ),
                ));
            }
            return self.jump(channel, exten, &t, at);
        }
        let Some(jump) = parse_jump(target) else {
            return Err(Unmapped::at(
                at,
                format!("cannot read the jump target `{target}`"),
            ));
        };
        let to_context = jump.context.unwrap_or_else(|| channel.to_owned());
        let to_exten = jump.extension.unwrap_or_else(|| exten.to_owned());
        let key = (
            to_context.clone(),
            to_exten.clone(),
            format!("{}:{}", at.file, at.line),
        );
        if self.path.contains(&key) || self.path.len() > MAX_DEPTH {
            return Err(Unmapped::at(
                at,
                "the dialplan loops back here; not imported",
            ));
        }
        self.path.push(key);
        let flow = self.lookup(&to_context, &to_exten, &jump.priority, Some(at));
        self.path.pop();
        let mut flow = flow?;
        if flow.end.is_none() {
            // Nothing answers at the target: Asterisk hangs up there.
            flow.end = Some(Target::Closed {
                place: to_context,
                sound: None,
            });
        }
        Ok(flow)
    }

    /// The end of the walk an application makes at step `i`, if it is one
    /// that ends it (a queue, a hang-up, voicemail, an IVR menu).
    fn terminal(
        &mut self,
        context: &Context<'a>,
        extension: &Extension<'a>,
        i: usize,
        app: &str,
        name: &str,
        args: &str,
    ) -> Option<Result<Flow, Unmapped>> {
        let at = extension.steps[i].at;
        let closed = || Some(Ok(Flow::ends(closed_at(context, extension, i))));
        match app {
            "queue" => {
                let parts = split_args(args);
                let queue = parts.first().map_or("", |q| q.trim());
                if queue.is_empty() || queue.contains('$') {
                    return Some(Err(Unmapped::at(
                        at,
                        format!("Queue({args}) picks the queue through a dialplan variable; only the PBX knows which"),
                    )));
                }
                if let Some(options) = parts
                    .get(1)
                    .map(|o| o.trim())
                    .filter(|o| !o.is_empty() && !o.contains('$'))
                {
                    self.note(
                        at,
                        format!("Queue() options `{options}` change what a caller hears or may do; they have no chat equivalent"),
                    );
                }
                self.reaches_queue = true;
                Some(Ok(Flow::ends(Target::Queue(queue.to_owned()))))
            }
            "hangup" | "busy" | "congestion" => closed(),
            "voicemail" | "voicemailmain" => {
                self.note(
                    at,
                    format!(
                        "{name}({args}) takes a voice message; the chat shows its closed text and \
                         alternatives instead"
                    ),
                );
                closed()
            }
            "background" | "waitexten" => {
                self.note(
                    at,
                    "an IVR menu: the chat shows the channel's chatbot menu; give it the \
                     options this menu offers callers"
                        .to_owned(),
                );
                Some(Ok(Flow::ends(Target::Menu(context.name.clone()))))
            }
            _ => None,
        }
    }

    /// Runs the steps of one extension from `index`.
    fn steps(
        &mut self,
        context: &Context<'a>,
        channel: &str,
        extension: &Extension<'a>,
        exten: &str,
        index: usize,
    ) -> Result<Flow, Unmapped> {
        for i in index..extension.steps.len() {
            let step = &extension.steps[i];
            // Asterisk runs priority after priority: a gap ends the call.
            if i > index && step.priority != extension.steps[i - 1].priority + 1 {
                return Ok(Flow::ends(closed_at(context, extension, i - 1)));
            }
            let at = step.at;
            let args = step.args.as_str();
            if let Some(end) = self.terminal(context, extension, i, &step.app, &step.name, args) {
                return end;
            }
            match step.app.as_str() {
                "goto" => {
                    let flow = self.jump(channel, exten, args, at)?;
                    return Ok(announced(flow, closed_at(context, extension, i)));
                }
                "gotoiftime" | "execiftime" => {
                    let Some((spec, rest)) = split_condition(args) else {
                        self.note(at, format!("{}({args}) has no `?`; passed over", step.name));
                        continue;
                    };
                    // ExecIfTime(…?Hangup()) and the like end the call
                    // while the condition holds.
                    let mut ends_here = None;
                    let (t, f) = if step.app == "gotoiftime" {
                        branches(rest)
                    } else {
                        let (name, inner) = app_parts(rest);
                        let app = name.to_ascii_lowercase();
                        if app != "goto" {
                            ends_here = self.terminal(context, extension, i, &app, name, inner);
                            if ends_here.is_none() {
                                self.note(
                                    at,
                                    format!("ExecIfTime runs {name}() at certain times; it does not route, so it is passed over"),
                                );
                                continue;
                            }
                        }
                        (inner.trim(), "")
                    };
                    let cond = condition(spec, at, "time condition")?;
                    let if_true = match ends_here {
                        Some(end) => end?,
                        None => self.branch(context, channel, extension, exten, i, t, at)?,
                    };
                    let if_false = self.branch(context, channel, extension, exten, i, f, at)?;
                    return Ok(guard(&[cond], if_true, at)?.then(if_false));
                }
                "gotoif" => {
                    let Some((expr, rest)) = split_condition(args) else {
                        self.note(at, format!("GotoIf({args}) has no `?`; passed over"));
                        continue;
                    };
                    let (t, f) = branches(rest);
                    if let Some((spec, a, b)) = iftime_of(expr) {
                        let (ta, tb) = (truthy(&a), truthy(&b));
                        if ta == tb {
                            let side = if ta { t } else { f };
                            return self.branch(context, channel, extension, exten, i, side, at);
                        }
                        let cond = condition(&spec, at, "IFTIME condition")?;
                        let (when_holds, otherwise) = if ta { (t, f) } else { (f, t) };
                        let if_holds = self.branch(context, channel, extension, exten, i, when_holds, at)?;
                        let if_not = self.branch(context, channel, extension, exten, i, otherwise, at)?;
                        return Ok(guard(&[cond], if_holds, at)?.then(if_not));
                    }
                    // Whether the call is answered yet only decides whether
                    // to answer it: both sides go on to the same place.
                    if expr.contains("CHANNEL(state)") {
                        if !f.is_empty() {
                            return self.branch(context, channel, extension, exten, i, f, at);
                        }
                        continue;
                    }
                    let what = if expr.contains("DB(TC/") || expr.contains("DB(DAYNIGHT/") {
                        "an override toggle (a feature code that forces a time condition open or closed)"
                    } else if expr.to_ascii_uppercase().contains("CALLERID") {
                        "a split by the caller's number, which a chat does not have"
                    } else {
                        "a dialplan expression only the PBX can evaluate"
                    };
                    self.note(
                        at,
                        format!("GotoIf({expr}?…) tests {what}; imported as the path taken when it is false"),
                    );
                    if !f.is_empty() {
                        return self.branch(context, channel, extension, exten, i, f, at);
                    }
                }
                "dial" => self.note(
                    at,
                    format!(
                        "Dial({}) rings phones; a chat cannot, so the routing continues as when nobody answers",
                        split_args(args).first().map_or("", |s| s.trim())
                    ),
                ),
                "set" if args.to_ascii_uppercase().contains("IFTIME(") => self.note(
                    at,
                    "IFTIME() stored in a variable: a route chosen through it is not imported".to_owned(),
                ),
                "answer" | "noop" | "playback" | "wait" | "ringing" | "progress" | "verbose" | "log" | "set"
                | "execif" | "macro" | "gosub" | "gosubif" | "macroif" | "macroexit" | "return"
                | "setmusiconhold" | "queuelog" | "sipaddheader" | "pjsip_header" | "resetcdr"
                | "nocdr" | "userevent" | "mixmonitor" | "monitor" | "startmusiconhold"
                | "stopmusiconhold" | "playtones" | "stopplaytones" | "setcallerpres"
                | "setcidname" | "setcidnum" | "setlanguage" | "tryexec" | "exec" | "dumpchan"
                | "cdr" | "set_var" | "saydigits" | "saynumber" | "sayalpha" | "progresstone" => {}
                _ => self.note(
                    at,
                    format!("application {}() has no chat equivalent; the routing passes over it", step.name),
                ),
            }
        }
        // Past the last priority Asterisk hangs up.
        Ok(Flow::ends(closed_at(
            context,
            extension,
            extension.steps.len().saturating_sub(1),
        )))
    }

    /// One side of a conditional jump: a target, or (empty) the next step.
    #[allow(clippy::too_many_arguments)]
    fn branch(
        &mut self,
        context: &Context<'a>,
        channel: &str,
        extension: &Extension<'a>,
        exten: &str,
        index: usize,
        target: &str,
        at: &'a Line,
    ) -> Result<Flow, Unmapped> {
        if target.is_empty() {
            self.steps(context, channel, extension, exten, index + 1)
        } else {
            let flow = self.jump(channel, exten, target, at)?;
            Ok(announced(flow, closed_at(context, extension, index)))
        }
    }
}

/// How a call that ends at step `index` closes: the place is the context
/// and the label of the nearest labelled step at or before it (`closed`
/// in `GotoIfTime(…?closed)`), the sound the last `Playback` between that
/// label and the end.
fn closed_at(context: &Context<'_>, extension: &Extension<'_>, index: usize) -> Target {
    let mut sound = None;
    let mut label = None;
    for step in extension.steps[..=index.min(extension.steps.len().saturating_sub(1))]
        .iter()
        .rev()
    {
        if sound.is_none() && step.app == "playback" {
            sound = split_args(&step.args).first().map(|s| s.trim().to_owned());
        }
        if let Some(l) = &step.label {
            label = Some(l.clone());
            break;
        }
    }
    // A named extension (`holiday`) tells places apart; `s`, a pattern or
    // a number is where calls come in.
    let name = extension.name.as_str();
    let named = name != "s" && !name.starts_with('_') && !name.bytes().all(|b| b.is_ascii_digit());
    let mut place = context.name.clone();
    if named {
        place = format!("{place}-{name}");
    }
    if let Some(l) = label {
        place = format!("{place}-{l}");
    }
    Target::Closed { place, sound }
}

/// A call that heard an announcement before jumping, and then hangs up
/// where nothing more is played (a FreePBX announcement followed by
/// `app-blackhole`), closes with that announcement and its place.
pub(crate) fn announced(mut flow: Flow, here: Target) -> Flow {
    if !matches!(here, Target::Closed { sound: Some(_), .. }) {
        return flow;
    }
    let silent = |t: &Target| matches!(t, Target::Closed { sound: None, .. });
    for (_, to) in &mut flow.routes {
        if silent(to) {
            *to = here.clone();
        }
    }
    if flow.end.as_ref().is_some_and(silent) {
        flow.end = Some(here);
    }
    flow
}

/// Reads a condition of the walked dialplan.
fn condition(spec: &str, at: &Line, what: &str) -> Result<TimeCondition, Unmapped> {
    if spec.contains('$') {
        return Err(Unmapped::at(
            at,
            format!("{what} `{spec}` uses dialplan variables, which only the PBX can evaluate"),
        ));
    }
    spec.parse::<TimeCondition>()
        .map_err(|e| Unmapped::at(at, format!("{what} `{}`: {e}", spec.trim())))
}

/// `flow` while `when` holds: each route narrowed to when both hold, then
/// the flow's end for the rest of `when`. Nothing is left to fall through.
fn guard(when: &[TimeCondition], flow: Flow, at: &Line) -> Result<Flow, Unmapped> {
    guard_at(when, flow, &at.file, at.line)
}

/// [`guard`] for a check read from `file` (or a table) at `line` (or row).
pub(crate) fn guard_at(
    when: &[TimeCondition],
    flow: Flow,
    file: &str,
    line: usize,
) -> Result<Flow, Unmapped> {
    let mut routes = Vec::new();
    for (inner, to) in flow.routes {
        let mut both = Vec::new();
        for a in when {
            for b in &inner {
                match a.and(b) {
                    Ok(Some(c)) => {
                        if !both.contains(&c) {
                            both.push(c);
                        }
                    }
                    Ok(None) => {}
                    Err(e) => {
                        return Err(Unmapped {
                            file: file.to_owned(),
                            line,
                            why: format!("nested time checks: {e}"),
                        })
                    }
                }
            }
        }
        if !both.is_empty() {
            routes.push((both, to));
        }
    }
    if let Some(end) = flow.end {
        routes.push((when.to_vec(), end));
    }
    Ok(Flow { routes, end: None })
}

/// The zone every condition of a routing names, when they all name the
/// same one.
pub(crate) fn common_zone(routing: &EntryRouting) -> Option<Tz> {
    let mut zones = routing
        .routes
        .iter()
        .flat_map(|(w, _)| w)
        .map(TimeCondition::timezone);
    let first = zones.next()??;
    zones.all(|z| z == Some(first)).then_some(first)
}

#[cfg(test)]
mod tests;
