//! Property tests against an independent reference.
//!
//! Random conditions are generated as structured items, rendered to the
//! Asterisk text the admin would write, and parsed by the real parser. The
//! reference evaluator never looks at our bitmasks: it tests each local
//! minute directly against the items (a range `a-b` with `a > b` wraps), and
//! finds the next opening by stepping minute by minute. Routing lists are
//! checked the same way against a first-match loop over the models.

use chrono::{DateTime, Datelike, Duration, NaiveDate, NaiveDateTime, Timelike, Utc};
use chrono_tz::Tz;
use proptest::prelude::*;

use super::{Destination, Holiday, Route, Schedule, TimeCondition};

const ZONES: [Tz; 5] = [
    Tz::UTC,
    chrono_tz::Europe::Paris,
    chrono_tz::America::New_York,
    // Half-hour DST change and a half-hour offset.
    chrono_tz::Australia::Lord_Howe,
    chrono_tz::Asia::Kolkata,
];

/// DST changes of 2026 to sample instants around.
const TRANSITIONS: [&str; 6] = [
    "2026-03-29T01:00:00Z", // Paris spring
    "2026-10-25T01:00:00Z", // Paris autumn
    "2026-03-08T07:00:00Z", // New York spring
    "2026-11-01T06:00:00Z", // New York autumn
    "2026-04-04T15:00:00Z", // Lord Howe autumn (Southern hemisphere)
    "2026-10-03T15:30:00Z", // Lord Howe spring
];

#[derive(Debug, Clone, Copy)]
enum Item {
    One(u32),
    Range(u32, u32),
}

impl Item {
    fn contains(self, x: u32) -> bool {
        match self {
            Item::One(a) => x == a,
            Item::Range(a, b) if a <= b => a <= x && x <= b,
            Item::Range(a, b) => x >= a || x <= b,
        }
    }
}

/// A field: `None` is "any" (rendered `*` or empty).
type FieldModel = Option<Vec<Item>>;

#[derive(Debug, Clone)]
struct Model {
    times: FieldModel,
    weekdays: FieldModel,
    mdays: FieldModel,
    months: FieldModel,
    tz: Option<Tz>,
    /// Rendering choices that must not change the meaning.
    use_names: bool,
    empty_any: bool,
}

impl Model {
    fn field_matches(field: &FieldModel, x: u32) -> bool {
        field
            .as_ref()
            .is_none_or(|items| items.iter().any(|i| i.contains(x)))
    }

    fn matches_local(&self, local: NaiveDateTime) -> bool {
        Self::field_matches(&self.times, local.hour() * 60 + local.minute())
            && Self::field_matches(&self.weekdays, local.weekday().num_days_from_sunday())
            && Self::field_matches(&self.mdays, local.day0())
            && Self::field_matches(&self.months, local.month0())
    }

    fn render(&self) -> String {
        const DAYS: [&str; 7] = ["Sun", "mon", "TUE", "wed", "thu", "Fri", "sat"];
        const MONTHS: [&str; 12] = [
            "jan", "Feb", "mar", "apr", "MAY", "jun", "jul", "aug", "sep", "oct", "nov", "dec",
        ];
        let any = if self.empty_any { "" } else { "*" };
        let field = |f: &FieldModel, one: &dyn Fn(u32) -> String| match f {
            None => any.to_owned(),
            Some(items) => items
                .iter()
                .map(|i| match *i {
                    Item::One(a) => one(a),
                    Item::Range(a, b) => format!("{}-{}", one(a), one(b)),
                })
                .collect::<Vec<_>>()
                .join("&"),
        };
        let time = |m: u32| format!("{:02}:{:02}", m / 60, m % 60);
        let named = |names: &'static [&'static str]| {
            let use_names = self.use_names;
            move |i: u32| {
                if use_names {
                    names[i as usize].to_owned()
                } else {
                    (i + 1).to_string()
                }
            }
        };
        let mut fields = vec![
            field(&self.times, &time),
            field(&self.weekdays, &named(&DAYS)),
            field(&self.mdays, &|d| (d + 1).to_string()),
            field(&self.months, &named(&MONTHS)),
        ];
        if let Some(tz) = self.tz {
            fields.push(tz.name().to_owned());
        }
        fields.join(",")
    }
}

fn items(max: u32, count: std::ops::RangeInclusive<usize>) -> impl Strategy<Value = Vec<Item>> {
    prop::collection::vec(
        prop_oneof![
            (0..max).prop_map(Item::One),
            (0..max, 0..max).prop_map(|(a, b)| Item::Range(a, b)),
        ],
        count,
    )
}

fn field(max: u32, any_weight: u32) -> impl Strategy<Value = FieldModel> {
    prop_oneof![
        any_weight => Just(None),
        10 - any_weight => items(max, 1..=3).prop_map(Some),
    ]
}

/// Times: often within 00:00-04:00, where the DST changes happen.
fn times_field() -> impl Strategy<Value = FieldModel> {
    prop_oneof![
        2 => Just(None),
        4 => items(24 * 60, 1..=3).prop_map(Some),
        4 => items(4 * 60, 1..=2).prop_map(Some),
    ]
}

fn model() -> impl Strategy<Value = Model> {
    (
        times_field(),
        field(7, 5),
        field(31, 7),
        field(12, 7),
        prop_oneof![3 => Just(None), 1 => prop::sample::select(&ZONES[..]).prop_map(Some)],
        any::<bool>(),
        any::<bool>(),
    )
        .prop_map(
            |(times, weekdays, mdays, months, tz, use_names, empty_any)| Model {
                times,
                weekdays,
                mdays,
                months,
                tz,
                use_names,
                empty_any,
            },
        )
}

/// Whole local days in the schedule's zone, around the sampled instants.
fn holidays() -> impl Strategy<Value = Vec<(u32, u32)>> {
    prop::collection::vec((0u32..730, 0u32..4), 0..=4)
}

#[derive(Debug, Clone)]
struct Case {
    tz: Tz,
    rules: Vec<Model>,
    holidays: Vec<(u32, u32)>,
}

fn case() -> impl Strategy<Value = Case> {
    (
        prop::sample::select(&ZONES[..]),
        prop::collection::vec(model(), 0..=3),
        holidays(),
    )
        .prop_map(|(tz, rules, holidays)| Case {
            tz,
            rules,
            holidays,
        })
}

fn base_date() -> NaiveDate {
    NaiveDate::from_ymd_opt(2026, 1, 1).unwrap()
}

/// An instant in 2026-2027, often close to a DST change, at any second.
fn instant() -> impl Strategy<Value = DateTime<Utc>> {
    let start = base_date().and_hms_opt(0, 0, 0).unwrap().and_utc();
    prop_oneof![
            1 => (0i64..730 * 86_400).prop_map(move |s| start + Duration::seconds(s)),
            2 =>
    (prop::sample::select(&TRANSITIONS[..]), -86_400i64..6 * 3_600).prop_map(
                |(t, s)| t.parse::<DateTime<Utc>>().unwrap() + Duration::seconds(s)
            ),
        ]
}

struct Built {
    schedule: Schedule,
    reference: Reference,
}

struct Reference {
    tz: Tz,
    rules: Vec<Model>,
    holidays: Vec<(DateTime<Utc>, DateTime<Utc>)>,
}

impl Reference {
    fn is_open(&self, t: DateTime<Utc>) -> bool {
        if self.holidays.iter().any(|(s, e)| *s <= t && t < *e) {
            return false;
        }
        self.rules.is_empty()
            || self.rules.iter().any(|r| {
                let tz = r.tz.unwrap_or(self.tz);
                r.matches_local(t.with_timezone(&tz).naive_local())
            })
    }

    /// `t` if open, else the first open minute after it, stepping by minute.
    fn next_open(&self, t: DateTime<Utc>, window: Duration) -> Option<DateTime<Utc>> {
        if self.is_open(t) {
            return Some(t);
        }
        let secs = t.timestamp();
        let mut m = DateTime::from_timestamp(secs - secs.rem_euclid(60) + 60, 0)?;
        while m < t + window {
            if self.is_open(m) {
                return Some(m);
            }
            m += Duration::minutes(1);
        }
        None
    }
}

fn build(case: &Case) -> Built {
    let rules: Vec<TimeCondition> = case
        .rules
        .iter()
        .map(|m| {
            let spec = m.render();
            spec.parse()
                .unwrap_or_else(|e| panic!("`{spec}` from {m:?} refused: {e}"))
        })
        .collect();
    let holidays = holiday_days(case.tz, &case.holidays);
    let reference = Reference {
        tz: case.tz,
        rules: case.rules.clone(),
        holidays: holidays.iter().map(|h| (h.start, h.end)).collect(),
    };
    Built {
        schedule: Schedule::new(case.tz, rules, holidays),
        reference,
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 200, ..ProptestConfig::default() })]

    #[test]
    fn is_open_agrees_with_the_reference(
        case in case(),
        instants in prop::collection::vec(instant(), 1..=24),
    ) {
        let built = build(&case);
        for t in instants {
            prop_assert_eq!(
                built.schedule.is_open(t),
                built.reference.is_open(t),
                "at {} with rules {:?}",
                t,
                case.rules.iter().map(Model::render).collect::<Vec<_>>()
            );
            prop_assert_eq!(built.schedule.explain(t).open, built.reference.is_open(t));
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 400, ..ProptestConfig::default() })]

    #[test]
    fn next_open_is_the_earliest_open_minute(case in case(), t in instant()) {
        let built = build(&case);
        let window = Duration::days(20);
        let expected = built.reference.next_open(t, window);
        let got = built.schedule.next_open(t);
        let rendered: Vec<String> = case.rules.iter().map(Model::render).collect();
        match expected {
            Some(e) => prop_assert_eq!(got, Some(e), "from {} with rules {:?}", t, rendered),
            // Nothing in the brute-force window: the answer, if any, is
            // later and really open.
            None => if let Some(g) = got {
                prop_assert!(g >= t + window, "{} from {} with rules {:?}", g, t, rendered);
                prop_assert!(built.reference.is_open(g));
                prop_assert!(g < t + Duration::days(super::NEXT_OPEN_HORIZON_DAYS));
            },
        }
    }
}

/// What a random route tests: conditions (any holds) or whole-day holidays.
#[derive(Debug, Clone)]
enum RouteModel {
    Times(Vec<Model>),
    Holidays(Vec<(u32, u32)>),
}

const DESTINATIONS: [fn() -> Destination; 4] = [
    || Destination::Queue("600".parse().unwrap()),
    || Destination::Menu,
    || Destination::Closed(None),
    || Destination::Closed(Some("holiday".into())),
];

#[derive(Debug, Clone)]
struct RoutingCase {
    tz: Tz,
    routes: Vec<(RouteModel, usize)>,
    default: usize,
}

fn routing_case() -> impl Strategy<Value = RoutingCase> {
    let route = (
        prop_oneof![
            3 => prop::collection::vec(model(), 1..=2).prop_map(RouteModel::Times),
            1 => prop::collection::vec((0u32..730, 0u32..4), 1..=3).prop_map(RouteModel::Holidays),
        ],
        0..DESTINATIONS.len(),
    );
    (
        prop::sample::select(&ZONES[..]),
        prop::collection::vec(route, 0..=4),
        0..DESTINATIONS.len(),
    )
        .prop_map(|(tz, routes, default)| RoutingCase {
            tz,
            routes,
            default,
        })
}

fn holiday_days(tz: Tz, days: &[(u32, u32)]) -> Vec<Holiday> {
    days.iter()
        .map(|&(start, len)| {
            let first = base_date() + Duration::days(i64::from(start));
            let last = first + Duration::days(i64::from(len));
            Holiday::days(tz, first, last, format!("{first}..{last}"))
        })
        .collect()
}

impl RoutingCase {
    fn build(&self) -> Schedule {
        let routes = self
            .routes
            .iter()
            .map(|(when, to)| {
                let to = DESTINATIONS[*to]();
                match when {
                    RouteModel::Times(models) => {
                        let conditions =
                            models.iter().map(|m| m.render().parse().unwrap()).collect();
                        Route::times(conditions, to)
                    }
                    RouteModel::Holidays(days) => Route::holidays(holiday_days(self.tz, days), to),
                }
            })
            .collect();
        Schedule::routed(self.tz, routes, DESTINATIONS[self.default]())
    }

    /// First match by brute force over the models.
    fn destination(&self, t: DateTime<Utc>) -> Destination {
        let holds = |when: &RouteModel| match when {
            RouteModel::Times(models) => models.iter().any(|m| {
                let tz = m.tz.unwrap_or(self.tz);
                m.matches_local(t.with_timezone(&tz).naive_local())
            }),
            RouteModel::Holidays(days) => holiday_days(self.tz, days)
                .iter()
                .any(|h| h.start <= t && t < h.end),
        };
        let index = self
            .routes
            .iter()
            .find(|(when, _)| holds(when))
            .map_or(self.default, |(_, to)| *to);
        DESTINATIONS[index]()
    }

    fn next_open(&self, t: DateTime<Utc>, window: Duration) -> Option<DateTime<Utc>> {
        if self.destination(t).is_open() {
            return Some(t);
        }
        let secs = t.timestamp();
        let mut m = DateTime::from_timestamp(secs - secs.rem_euclid(60) + 60, 0)?;
        while m < t + window {
            if self.destination(m).is_open() {
                return Some(m);
            }
            m += Duration::minutes(1);
        }
        None
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 300, ..ProptestConfig::default() })]

    #[test]
    fn routing_destination_is_the_first_match(
        case in routing_case(),
        instants in prop::collection::vec(instant(), 1..=24),
    ) {
        let schedule = case.build();
        for t in instants {
            let expected = case.destination(t);
            prop_assert_eq!(schedule.destination_at(t), &expected, "at {} in {:?}", t, case);
            let decision = schedule.explain(t);
            prop_assert_eq!(&decision.destination, &expected);
            prop_assert_eq!(decision.open, expected.is_open());
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 150, ..ProptestConfig::default() })]

    #[test]
    fn routing_next_open_is_the_earliest_open_minute(case in routing_case(), t in instant()) {
        let schedule = case.build();
        let window = Duration::days(10);
        let got = schedule.next_open(t);
        match case.next_open(t, window) {
            Some(e) => prop_assert_eq!(got, Some(e), "from {} in {:?}", t, case),
            None => if let Some(g) = got {
                prop_assert!(g >= t + window, "{} from {} in {:?}", g, t, case);
                prop_assert!(case.destination(g).is_open());
            },
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 300, ..ProptestConfig::default() })]

    /// A nested time check (one condition inside another's branch) is
    /// imported as their conjunction, rendered back into Asterisk's syntax.
    #[test]
    fn and_holds_exactly_when_both_hold(
        a in model(),
        b in model(),
        zone in prop::sample::select(&ZONES[..]),
        instants in prop::collection::vec(instant(), 1..=24),
    ) {
        let b = Model { tz: a.tz, ..b };
        let (ca, cb) = (a.render().parse::<TimeCondition>().unwrap(), b.render().parse::<TimeCondition>().unwrap());
        let both = ca.and(&cb).expect("same zone");
        for t in instants {
            let expected = ca.matches(t, zone) && cb.matches(t, zone);
            let got = both.as_ref().is_some_and(|c| c.matches(t, zone));
            prop_assert_eq!(got, expected, "at {} with {} and {} → {:?}", t, ca.spec(), cb.spec(), both.as_ref().map(TimeCondition::spec));
            if let Some(c) = &both {
                let reparsed: TimeCondition = c.spec().parse().unwrap();
                prop_assert_eq!(&reparsed, c);
            }
        }
    }
}
