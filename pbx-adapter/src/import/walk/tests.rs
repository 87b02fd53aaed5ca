//! The symbolic walk against a brute-force one: run the dialplan as the
//! PBX would at one instant (one side of each time check, includes tried
//! in order) and check the imported routing sends the call to the same
//! place, for random dialplans and random instants.

use std::path::Path;

use chrono::{DateTime, Duration, Utc};
use chrono_tz::Tz;
use proptest::prelude::*;

use super::*;
use crate::import::conf;

fn plan_of(text: &str) -> (ConfFile, Vec<Problem>) {
    let mut problems = Vec::new();
    let conf = conf::parse_str(
        Path::new("/nonexistent"),
        "extensions.conf",
        text,
        &mut problems,
    );
    (conf, problems)
}

/// Where a call to `exten` in `context` ends at `t`, running one path.
/// `None` when the path meets what the import cannot map.
fn run_at(plan: &Plan<'_>, context: &str, exten: &str, t: DateTime<Utc>) -> Option<Target> {
    let tz = Tz::UTC;
    let holds = |spec: &str| spec.parse::<TimeCondition>().ok().map(|c| c.matches(t, tz));
    // Finds the extension to run, following includes at `t`, each
    // context searched once.
    fn find<'p, 'a>(
        plan: &'p Plan<'a>,
        context: &str,
        exten: &str,
        priority: &Priority,
        t: DateTime<Utc>,
        searched: &mut Vec<String>,
    ) -> Option<Option<(&'p Context<'a>, &'p Extension<'a>)>> {
        if searched.iter().any(|c| c == context) {
            return Some(None);
        }
        searched.push(context.to_owned());
        let Some(ctx) = plan.context(context) else {
            return Some(None);
        };
        if let Some(e) = ctx.own(exten) {
            let has = match priority {
                Priority::Number(n) => e.steps.iter().any(|s| s.priority == *n),
                Priority::Label(l) => e.steps.iter().any(|s| s.label.as_deref() == Some(l)),
            };
            if has {
                return Some(Some((ctx, e)));
            }
        }
        for include in &ctx.includes {
            if let Some(when) = &include.when {
                if !when.parse::<TimeCondition>().ok()?.matches(t, Tz::UTC) {
                    continue;
                }
            }
            if let Some(found) = find(plan, &include.target, exten, priority, t, searched)? {
                return Some(Some(found));
            }
        }
        Some(None)
    }
    let mut at = (context.to_owned(), exten.to_owned(), Priority::Number(1));
    // The last announcement heard before a jump (see `announced`).
    let mut announced: Option<Target> = None;
    let end = |t: Target, announced: &Option<Target>| match (&t, announced) {
        (Target::Closed { sound: None, .. }, Some(a)) => a.clone(),
        _ => t,
    };
    for _ in 0..200 {
        let (ctx_name, exten, priority) = at.clone();
        let Some((ctx, ext)) = find(plan, &ctx_name, &exten, &priority, t, &mut Vec::new())? else {
            let t = Target::Closed {
                place: ctx_name,
                sound: None,
            };
            return Some(end(t, &announced));
        };
        let mut i = match &priority {
            Priority::Number(n) => ext.steps.iter().position(|s| s.priority == *n)?,
            Priority::Label(l) => ext
                .steps
                .iter()
                .position(|s| s.label.as_deref() == Some(l))?,
        };
        let goto = |target: &str| -> Option<(String, String, Priority)> {
            let j = parse_jump(target)?;
            // The channel stays in the context it was sent to, even when
            // an include answered.
            Some((
                j.context.unwrap_or_else(|| ctx_name.clone()),
                j.extension.unwrap_or_else(|| exten.clone()),
                j.priority,
            ))
        };
        let next = loop {
            let Some(step) = ext.steps.get(i) else {
                break None;
            };

            let args = step.args.as_str();
            // The branch taken: `Some(target)` to jump, `Some("")` for the
            // next step.
            let taken: Option<&str> = match step.app.as_str() {
                "queue" => return Some(Target::Queue(split_args(args)[0].trim().to_owned())),
                "hangup" | "busy" | "congestion" | "voicemail" => {
                    return Some(end(closed_at(ctx, ext, i), &announced))
                }
                "background" | "waitexten" => return Some(Target::Menu(ctx.name.clone())),
                "goto" => Some(args),
                "gotoiftime" => {
                    let (spec, rest) = split_condition(args)?;
                    let (tt, ff) = branches(rest);
                    Some(if holds(spec)? { tt } else { ff })
                }
                "execiftime" => {
                    let (spec, rest) = split_condition(args)?;
                    let (name, inner) = app_parts(rest);
                    match (holds(spec)?, name.to_ascii_lowercase().as_str()) {
                        (false, _) => Some(""),
                        (true, "goto") => Some(inner.trim()),
                        (true, "hangup") => return Some(end(closed_at(ctx, ext, i), &announced)),
                        (true, "queue") => {
                            return Some(Target::Queue(split_args(inner)[0].trim().to_owned()))
                        }
                        (true, _) => Some(""),
                    }
                }
                "gotoif" => {
                    let (expr, rest) = split_condition(args)?;
                    let (tt, ff) = branches(rest);
                    match iftime_of(expr) {
                        Some((spec, a, b)) => {
                            let value = if holds(&spec)? { a } else { b };
                            Some(if truthy(&value) { tt } else { ff })
                        }
                        None => Some(ff),
                    }
                }
                _ => Some(""),
            };
            match taken {
                Some("") => {
                    // A gap in the priorities ends the call.
                    if ext
                        .steps
                        .get(i + 1)
                        .is_some_and(|n| n.priority != ext.steps[i].priority + 1)
                    {
                        return Some(end(closed_at(ctx, ext, i), &announced));
                    }
                    i += 1
                }
                Some(target) => {
                    let here = closed_at(ctx, ext, i);
                    if matches!(here, Target::Closed { sound: Some(_), .. }) {
                        announced = Some(here);
                    }
                    break Some(goto(target)?);
                }
                None => return None,
            }
        };
        match next {
            Some(n) => at = n,
            None => return Some(end(closed_at(ctx, ext, ext.steps.len() - 1), &announced)),
        }
    }
    None
}

/// First match over the imported routing.
fn routed_at(routing: &EntryRouting, t: DateTime<Utc>) -> Target {
    routing
        .routes
        .iter()
        .find(|(when, _)| when.iter().any(|c| c.matches(t, Tz::UTC)))
        .map_or(&routing.default, |(_, to)| to)
        .clone()
}

fn entry<'e>(entries: &'e [Entry], context: &str, exten: &str) -> &'e Entry {
    entries
        .iter()
        .find(|e| e.context == context && e.extension == exten)
        .unwrap_or_else(|| panic!("no entry {context},{exten} in {entries:#?}"))
}

fn closed(place: &str) -> Target {
    Target::Closed {
        place: place.to_owned(),
        sound: None,
    }
}

fn q(name: &str) -> Target {
    Target::Queue(name.to_owned())
}

fn specs(routing: &EntryRouting) -> Vec<(Vec<&str>, &Target)> {
    routing
        .routes
        .iter()
        .map(|(w, t)| (w.iter().map(TimeCondition::spec).collect(), t))
        .collect()
}

#[test]
fn a_holiday_check_before_the_hours_keeps_its_precedence() {
    let (conf, _) = plan_of(
        "[from-pstn]\n\
         exten => s,1,GotoIfTime(*,*,25,dec?holiday,s,1)\n\
          same => n,GotoIfTime(09:00-18:00,mon-fri,*,*?open)\n\
          same => n,Playback(after-hours)\n\
          same => n,Hangup()\n\
          same => n(open),Queue(support)\n\
         [holiday]\n\
         exten => s,1,Playback(closed-christmas)\n\
          same => n,Hangup()\n",
    );
    let plan = Plan::new(&conf);
    let entries = plan.entries();
    assert_eq!(entries.len(), 1, "{entries:#?}");
    let e = entry(&entries, "from-pstn", "s");
    let routing = e.routing.as_ref().unwrap();
    assert_eq!(
        specs(routing),
        vec![
            (
                vec!["*,*,25,dec"],
                &Target::Closed {
                    place: "holiday".into(),
                    sound: Some("closed-christmas".into())
                }
            ),
            (vec!["09:00-18:00,mon-fri,*,*"], &q("support")),
        ]
    );
    assert_eq!(
        routing.default,
        Target::Closed {
            place: "from-pstn".into(),
            sound: Some("after-hours".into())
        }
    );
    assert!(e.reaches_queue && e.notes.is_empty(), "{:?}", e.notes);
}

#[test]
fn timed_includes_route_in_order_and_fall_through_to_the_next() {
    let (conf, _) = plan_of(
        "[incoming]\n\
         include => holidays,*,*,1,jan\n\
         include => day,08:30-18:00,mon-fri,*,*\n\
         include => day|09:00-12:00|sat|*|*\n\
         include => night\n\
         [holidays]\n\
         exten => _X.,1,Hangup()\n\
         [day]\n\
         exten => s,1,Queue(sales)\n\
         exten => _X.,1,Goto(day,s,1)\n\
         [night]\n\
         exten => _X.,1,VoiceMail(100@default)\n\
         exten => s,1,Goto(${CALLERID(num)},1)\n",
    );
    let plan = Plan::new(&conf);
    let entries = plan.entries();
    let e = entry(&entries, "incoming", "_X.");
    let routing = e.routing.as_ref().unwrap();
    assert_eq!(
        specs(routing),
        vec![
            (vec!["*,*,1,jan"], &closed("holidays")),
            (
                vec!["08:30-18:00,mon-fri,*,*", "09:00-12:00|sat|*|*"],
                &q("sales")
            ),
        ]
    );
    assert_eq!(routing.default, closed("night"));
    // `s` of the night context jumps through a variable.
    let s = entry(&entries, "incoming", "s");
    let err = s.routing.as_ref().unwrap_err();
    assert!(err.why.contains("dialplan variable"), "{err:?}");
}

#[test]
fn nested_checks_become_conjunctions_and_toggles_are_noted() {
    let (conf, _) = plan_of(
        "[tc]\n\
         exten => 1,1(truestate),GotoIf($[\"${DB(TC/1)}\" = \"true\"]?truegoto)\n\
         exten => 1,n,GotoIfTime(08:00-20:00,mon-sat,*,*?day)\n\
         exten => 1,n,Hangup()\n\
         exten => 1,n(day),GotoIf($[${IFTIME(12:00-14:00,*,*,*?1:0)}]?lunch)\n\
         exten => 1,n,Queue(600)\n\
         exten => 1,n(lunch),Queue(601)\n\
         exten => 1,n(truegoto),Queue(600)\n",
    );
    let plan = Plan::new(&conf);
    let entries = plan.entries();
    let e = entry(&entries, "tc", "1");
    let routing = e.routing.as_ref().unwrap();
    assert_eq!(
        specs(routing),
        vec![
            (vec!["12:00-14:00,mon-sat,*,*"], &q("601")),
            (vec!["08:00-20:00,mon-sat,*,*"], &q("600")),
        ]
    );
    assert_eq!(routing.default, closed("tc-truestate"));
    assert_eq!(e.notes.len(), 1, "{:?}", e.notes);
    assert!(e.notes[0].text.contains("override toggle"), "{:?}", e.notes);
}

#[test]
fn loops_and_zone_mismatches_are_unmapped_with_their_line() {
    let (conf, _) = plan_of(
        "[a]\n\
         exten => s,1,GotoIfTime(09:00-17:00,*,*,*?b,s,1)\n\
         exten => s,n,Goto(a,s,1)\n\
         [b]\n\
         exten => s,1,Queue(x)\n\
         [z]\n\
         exten => s,1,GotoIfTime(09:00-17:00,*,*,*,Europe/Paris?in)\n\
         exten => s,n,Queue(x)\n\
         exten => s,n(in),GotoIfTime(10:00-11:00,*,*,*?b,s,1)\n\
         exten => s,n,Hangup()\n",
    );
    let plan = Plan::new(&conf);
    let entries = plan.entries();
    let a = entry(&entries, "a", "s").routing.as_ref().unwrap_err();
    assert_eq!(a.line, 3, "{a:?}");
    assert!(a.why.contains("loops"), "{a:?}");
    let z = entry(&entries, "z", "s").routing.as_ref().unwrap_err();
    assert_eq!(z.line, 7, "{z:?}");
    assert!(z.why.contains("different time zones"), "{z:?}");
}

#[test]
fn a_jump_without_context_stays_in_the_channel_context() {
    // Asterisk keeps the channel in [in] when [day] answers through the
    // include, so `Goto(s,1)` runs [in]'s own `s`.
    let (conf, _) = plan_of(
        "[in]\n\
         exten => s,1,Hangup()\n\
         include => day\n\
         [day]\n\
         exten => _X.,1,Goto(s,1)\n\
         exten => s,1,Queue(sales)\n",
    );
    let plan = Plan::new(&conf);
    let entries = plan.entries();
    let e = entry(&entries, "in", "_X.");
    assert_eq!(e.routing.as_ref().unwrap().default, closed("in"));
}

#[test]
fn include_loops_gaps_duplicates_and_exec_if_time_hangup() {
    let (conf, _) = plan_of(
        "[entry]\n\
         exten => s,1,Goto(a,s,1)\n\
         exten => 5,1,Goto(a,5,1)\n\
         [a]\n\
         include => b\n\
         include => c\n\
         [b]\n\
         include => a\n\
         [c]\n\
         exten => s,1,ExecIfTime(18:00-07:59,*,*,*?Hangup())\n\
         exten => s,2,Queue(q)\n\
         exten => s,2,Queue(other)\n\
         exten => 5,1,NoOp()\n\
         exten => 5,3,Queue(q)\n",
    );
    let plan = Plan::new(&conf);
    let entries = plan.entries();
    // The include loop is skipped as Asterisk does; the night hangs up;
    // the duplicate priority 2 is the first one.
    let s = entry(&entries, "entry", "s").routing.as_ref().unwrap();
    assert_eq!(specs(s), vec![(vec!["18:00-07:59,*,*,*"], &closed("c"))]);
    assert_eq!(s.default, q("q"));
    // A gap after priority 1 ends the call.
    let five = entry(&entries, "entry", "5").routing.as_ref().unwrap();
    assert_eq!(five.default, closed("c"));
}

#[test]
fn the_most_specific_pattern_wins() {
    let (conf, _) = plan_of(
        "[in]\n\
         exten => _X.,1,Queue(any)\n\
         exten => _08.,1,Queue(free)\n\
         [jump]\n\
         exten => s,1,Goto(in,0812,1)\n",
    );
    let plan = Plan::new(&conf);
    let entries = plan.entries();
    let e = entry(&entries, "jump", "s");
    assert_eq!(e.routing.as_ref().unwrap().default, q("free"));
    assert!(pattern_rank("_08.") < pattern_rank("_X."));
    assert!(pattern_rank("_[1-3]X") < pattern_rank("_NX"));
}

#[test]
fn patterns_match_as_asterisk_reads_them() {
    for (p, e, m) in [
        ("_X.", "0123", true),
        ("_X.", "0", false),
        ("_X!", "0", true),
        ("_NXX", "212", true),
        ("_NXX", "112", false),
        ("_[1-3]Z", "25", true),
        ("_[1-3]Z", "40", false),
        ("600", "600", true),
    ] {
        assert_eq!(pattern_matches(p, e), m, "{p} {e}");
    }
}

// --- Random dialplans --------------------------------------------------

const CONDITIONS: &[&str] = &[
    "09:00-17:00,mon-fri,*,*",
    "22:00-06:00,*,*,*",
    "*,sat-sun,*,*",
    "*,*,25,dec",
    "*,*,1&15,*",
    "08:00-12:00&14:00-18:00,mon&wed&fri,*,*",
    "12:00-13:59,*,*,*",
    "*,*,*,jul-aug",
    "00:00-11:59|*|*|*",
];

#[derive(Debug, Clone)]
enum Op {
    /// GotoIfTime(cond?ctx) or with a false side.
    IfTime(usize, usize, Option<usize>),
    /// GotoIf(${IFTIME(cond?a:b)}?ctx).
    IfTimeFn(usize, bool, usize),
    /// ExecIfTime(cond?Goto(ctx,s,1)).
    ExecIfTime(usize, usize),
    /// ExecIfTime(cond?Hangup()).
    ExecIfTimeHangup(usize),
    /// GotoIf on a variable (walked as false).
    Toggle(usize),
    Queue(usize),
    Hangup,
    Goto(usize),
    Playback(usize),
    Noop,
}

/// An include of a later context, timed by one of [`CONDITIONS`] or not.
type RandomInclude = (usize, Option<usize>);

#[derive(Debug, Clone)]
struct RandomPlan {
    /// Per context: timed/plain includes (target, condition) and steps.
    contexts: Vec<(Vec<RandomInclude>, Vec<Op>)>,
}

/// Targets only point to later contexts, so there is no loop.
fn random_plan() -> impl Strategy<Value = RandomPlan> {
    let n = 5usize;
    let context = |i: usize| {
        let later = (i + 1)..n;
        let has_later = i + 1 < n;
        let target = if has_later {
            (later.clone()).boxed()
        } else {
            Just(i).boxed()
        };
        let cond = 0..CONDITIONS.len();
        let op = prop_oneof![
            3 => (cond.clone(), target.clone(), proptest::option::of(target.clone()))
                .prop_map(|(c, t, f)| Op::IfTime(c, t, f)),
            1 => (cond.clone(), any::<bool>(), target.clone()).prop_map(|(c, v, t)| Op::IfTimeFn(c, v, t)),
            1 => (cond.clone(), target.clone()).prop_map(|(c, t)| Op::ExecIfTime(c, t)),
            1 => cond.clone().prop_map(Op::ExecIfTimeHangup),
            1 => target.clone().prop_map(Op::Toggle),
            1 => (0..3usize).prop_map(Op::Queue),
            1 => Just(Op::Hangup),
            1 => target.clone().prop_map(Op::Goto),
            1 => (0..2usize).prop_map(Op::Playback),
            1 => Just(Op::Noop),
        ];
        let includes = prop::collection::vec((target, proptest::option::of(cond)), 0..=2);
        let ops = prop::collection::vec(op, 0..=5);
        (includes, ops, Just(has_later))
            .prop_map(|(includes, ops, has_later)| {
                // The last context has nothing later to point to.
                if has_later {
                    (includes, ops)
                } else {
                    (
                        Vec::new(),
                        ops.into_iter()
                            .filter(|o| {
                                matches!(
                                    o,
                                    Op::Queue(_)
                                        | Op::Hangup
                                        | Op::Noop
                                        | Op::Playback(_)
                                        | Op::ExecIfTimeHangup(_)
                                )
                            })
                            .collect(),
                    )
                }
            })
            .boxed()
    };
    (0..n)
        .map(context)
        .collect::<Vec<_>>()
        .prop_map(|contexts| RandomPlan { contexts })
}

impl RandomPlan {
    fn render(&self) -> String {
        let mut out = String::new();
        for (i, (includes, ops)) in self.contexts.iter().enumerate() {
            out.push_str(&format!("[c{i}]\n"));
            for (target, cond) in includes {
                match cond {
                    Some(c) => out.push_str(&format!("include => c{target},{}\n", CONDITIONS[*c])),
                    None => out.push_str(&format!("include => c{target}\n")),
                }
            }
            for (k, op) in ops.iter().enumerate() {
                let prio = if k == 0 { "1" } else { "n" };
                let app = match op {
                    Op::IfTime(c, t, None) => format!("GotoIfTime({}?c{t},s,1)", CONDITIONS[*c]),
                    Op::IfTime(c, t, Some(f)) => {
                        format!("GotoIfTime({}?c{t},s,1:c{f},s,1)", CONDITIONS[*c])
                    }
                    Op::IfTimeFn(c, v, t) => {
                        let (a, b) = if *v { ("1", "0") } else { ("", "yes") };
                        format!("GotoIf(${{IFTIME({}?{a}:{b})}}?c{t},s,1)", CONDITIONS[*c])
                    }
                    Op::ExecIfTime(c, t) => {
                        format!("ExecIfTime({}?Goto(c{t},s,1))", CONDITIONS[*c])
                    }
                    Op::ExecIfTimeHangup(c) => format!("ExecIfTime({}?Hangup())", CONDITIONS[*c]),
                    Op::Toggle(t) => format!("GotoIf($[\"${{DB(TC/1)}}\" = \"true\"]?c{t},s,1)"),
                    Op::Queue(n) => format!("Queue(q{n})"),
                    Op::Hangup => "Hangup()".to_owned(),
                    Op::Goto(t) => format!("Goto(c{t},s,1)"),
                    Op::Playback(n) => format!("Playback(sound{n})"),
                    Op::Noop => "NoOp(x)".to_owned(),
                };
                out.push_str(&format!("exten => s,{prio},{app}\n"));
            }
        }
        out
    }
}

fn instant() -> impl Strategy<Value = DateTime<Utc>> {
    let base = "2026-01-01T00:00:00Z".parse::<DateTime<Utc>>().unwrap();
    (0..(366 * 24 * 60i64)).prop_map(move |m| base + Duration::minutes(m))
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 400, ..ProptestConfig::default() })]

    #[test]
    fn the_imported_routing_sends_calls_where_the_dialplan_does(
        plan in random_plan(),
        instants in prop::collection::vec(instant(), 1..=40),
    ) {
        let text = plan.render();
        let (conf, problems) = plan_of(&text);
        prop_assert!(problems.is_empty(), "{problems:?}");
        let walked = Plan::new(&conf);
        let entries = walked.entries();
        let e = entries.iter().find(|e| e.context == "c0").expect("c0 is an entry");
        let routing = match &e.routing {
            Ok(r) => r,
            Err(u) => {
                prop_assert!(false, "unmapped {:?} in\n{}", u, text);
                unreachable!()
            }
        };
        for t in instants {
            let expected = run_at(&walked, "c0", &e.extension, t);
            prop_assert_eq!(Some(routed_at(routing, t)), expected, "at {} in\n{}\nrouting {:#?}", t, text, routing);
        }
    }
}
