//! Time-based routing: where a chat goes at an instant (spec M3).
//!
//! A PBX does not route by "open hours + holidays" but by an ordered list:
//! a holidays include before a daytime include, a `GotoIfTime` chain,
//! FreePBX time conditions chained one into the next. Each entry is a time
//! condition (or a set of holidays) and a destination; the first that
//! holds wins, and a default applies when none does. A channel's routing
//! is that list, so an imported dialplan keeps its precedence and a
//! holiday rule closes instead of opening.
//!
//! The classic `open` + `holidays` schedule is the two-entry special case
//! (holidays → closed, open rules → the channel's own queue or menu,
//! default closed), compiled by [`super::Schedule`] into the same form.

use std::fmt;
use std::path::PathBuf;

use chrono::{DateTime, Utc};
use chrono_tz::Tz;
use serde::de::{self, Deserializer, MapAccess, Visitor};
use serde::ser::{SerializeMap, Serializer};

use super::holidays::HolidaySet;
use super::{Holiday, TimeCondition};
use crate::QueueExtension;

/// Where a route (or the default) sends a new chat.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Destination {
    /// The channel's own queue (a live channel) or menu (a chatbot one):
    /// what the classic open rules route to. Written `"open"`.
    Open,
    /// A queue by extension. Written `{ queue = "600" }`.
    Queue(QueueExtension),
    /// The channel's chatbot menu. Written `"menu"`.
    Menu,
    /// Closed, with the channel's out-of-hours text (`"closed"`) or one of
    /// its named closures (`{ closed = "christmas" }`).
    Closed(Option<String>),
}

impl Destination {
    /// Whether a chat may start (anything but closed).
    pub fn is_open(&self) -> bool {
        !matches!(self, Destination::Closed(_))
    }
}

impl fmt::Display for Destination {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Destination::Open => f.write_str("the channel's queue or menu"),
            Destination::Queue(q) => write!(f, "queue {q}"),
            Destination::Menu => f.write_str("the chatbot menu"),
            Destination::Closed(None) => f.write_str("closed"),
            Destination::Closed(Some(name)) => write!(f, "closed ({name})"),
        }
    }
}

const DESTINATION_FORMS: &str =
    r#""open", "menu", "closed", { queue = "<extension>" } or { closed = "<closure name>" }"#;

impl serde::Serialize for Destination {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let (key, value) = match self {
            Destination::Open => return s.serialize_str("open"),
            Destination::Menu => return s.serialize_str("menu"),
            Destination::Closed(None) => return s.serialize_str("closed"),
            Destination::Queue(q) => ("queue", q.as_str()),
            Destination::Closed(Some(name)) => ("closed", name.as_str()),
        };
        let mut map = s.serialize_map(Some(1))?;
        map.serialize_entry(key, value)?;
        map.end()
    }
}

impl<'de> serde::Deserialize<'de> for Destination {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct DestinationVisitor;
        impl<'de> Visitor<'de> for DestinationVisitor {
            type Value = Destination;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "a destination: {DESTINATION_FORMS}")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Destination, E> {
                match v {
                    "open" => Ok(Destination::Open),
                    "menu" => Ok(Destination::Menu),
                    "closed" => Ok(Destination::Closed(None)),
                    other => Err(E::custom(format!(
                        "unknown destination `{other}`, expected {DESTINATION_FORMS}"
                    ))),
                }
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Destination, A::Error> {
                let Some((key, value)) = map.next_entry::<String, String>()? else {
                    return Err(de::Error::custom(format!(
                        "empty destination, expected {DESTINATION_FORMS}"
                    )));
                };
                if map.next_key::<String>()?.is_some() {
                    return Err(de::Error::custom(format!(
                        "a destination has one key, expected {DESTINATION_FORMS}"
                    )));
                }
                if value.trim().is_empty() {
                    return Err(de::Error::custom(format!("destination `{key}` is empty")));
                }
                match key.as_str() {
                    "queue" => value.parse().map(Destination::Queue).map_err(|e| {
                        de::Error::custom(format!("destination queue `{value}`: {e}"))
                    }),
                    "closed" => Ok(Destination::Closed(Some(value))),
                    other => Err(de::Error::custom(format!(
                        "unknown destination `{other}`, expected {DESTINATION_FORMS}"
                    ))),
                }
            }
        }
        d.deserialize_any(DestinationVisitor)
    }
}

/// One routing entry as written: time conditions (any holds) or holidays,
/// and where it goes.
#[derive(Debug, Clone, PartialEq, Eq, serde::Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields)]
pub struct RouteConfig {
    /// Asterisk time conditions; the route holds when any does. One string
    /// or a list.
    #[serde(
        default,
        deserialize_with = "one_or_many",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub when: Vec<String>,
    /// Holidays (same forms as the schedule's `holidays`); the route holds
    /// during any of them.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub holidays: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub holidays_ics: Option<PathBuf>,
    pub to: Destination,
}

fn one_or_many<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<String>, D::Error> {
    #[derive(serde::Deserialize)]
    #[serde(untagged)]
    enum OneOrMany {
        One(String),
        Many(Vec<String>),
    }
    match <OneOrMany as serde::Deserialize>::deserialize(d) {
        Ok(OneOrMany::One(s)) => Ok(vec![s]),
        Ok(OneOrMany::Many(v)) => Ok(v),
        Err(_) => Err(de::Error::custom(
            "`when` is a time condition or a list of them",
        )),
    }
}

/// What a route tests.
#[derive(Debug, Clone)]
pub(crate) enum Matcher {
    /// Holds when any condition holds.
    Times(Vec<TimeCondition>),
    Holidays(HolidaySet),
}

/// A compiled routing entry.
#[derive(Debug, Clone)]
pub struct Route {
    pub(crate) when: Matcher,
    pub(crate) to: Destination,
}

/// What made a route hold.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Matched {
    Condition { spec: String },
    Holiday { label: String },
}

impl Route {
    /// A route that holds when any of `conditions` holds.
    pub fn times(conditions: Vec<TimeCondition>, to: Destination) -> Route {
        Route {
            when: Matcher::Times(conditions),
            to,
        }
    }

    /// A route that holds during any of `holidays`.
    pub fn holidays(holidays: Vec<Holiday>, to: Destination) -> Route {
        Route {
            when: Matcher::Holidays(HolidaySet::new(holidays)),
            to,
        }
    }

    pub fn destination(&self) -> &Destination {
        &self.to
    }

    /// Whether the route holds at `at`, and by what.
    pub(crate) fn matched(&self, at: DateTime<Utc>, tz: Tz) -> Option<(usize, Matched)> {
        match &self.when {
            Matcher::Times(conditions) => {
                let index = conditions.iter().position(|c| c.matches(at, tz))?;
                let spec = conditions[index].spec().to_owned();
                Some((index, Matched::Condition { spec }))
            }
            Matcher::Holidays(set) => set.find(at).map(|h| {
                (
                    0,
                    Matched::Holiday {
                        label: h.label.clone(),
                    },
                )
            }),
        }
    }

    pub(crate) fn holds(&self, at: DateTime<Utc>, tz: Tz) -> bool {
        match &self.when {
            Matcher::Times(conditions) => conditions.iter().any(|c| c.matches(at, tz)),
            Matcher::Holidays(set) => set.closed_until(at).is_some(),
        }
    }

    /// The first instant in `(at, limit)` at which whether the route holds
    /// differs from at `at`; `None` if it does not change before `limit`.
    pub(crate) fn next_change(
        &self,
        at: DateTime<Utc>,
        limit: DateTime<Utc>,
        tz: Tz,
    ) -> Option<DateTime<Utc>> {
        let holds = self.holds(at, tz);
        let found = match &self.when {
            Matcher::Holidays(set) if holds => set.closed_until(at),
            Matcher::Holidays(set) => set.next_start_after(at),
            Matcher::Times(conditions) if !holds => conditions
                .iter()
                .filter_map(|c| c.first_match_from(at, limit, tz))
                .min(),
            Matcher::Times(conditions) => {
                // The union's end: the latest end among the conditions that
                // hold, again from there, until none holds.
                let mut u = at;
                loop {
                    let mut end = None;
                    for c in conditions.iter().filter(|c| c.matches(u, tz)) {
                        let stop = c.first_mismatch_from(u, limit, tz)?;
                        end = end.max(Some(stop));
                    }
                    match end {
                        Some(e) if e < limit => u = e,
                        Some(_) => return None,
                        None => break Some(u),
                    }
                }
            }
        };
        found.filter(|t| *t < limit)
    }
}
