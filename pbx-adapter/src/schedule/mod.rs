//! Business hours: when a chat channel is open (spec M3, H1–H5).
//!
//! A channel follows the PBX's own schedule so admins configure nothing
//! twice: its open rules are Asterisk time conditions
//! (`times,weekdays,mdays,months[,timezone]`, see [`timespec`]) evaluated
//! exactly as Asterisk evaluates them, so a condition copied from
//! `extensions.conf` gives the same open/closed answer in Frontdesk as on
//! the PBX. On top of that come holidays ([`holidays`]: inline dates and an
//! iCalendar file, [`ics`]) that close the channel whatever the rules say.
//!
//! - No open rule at all means always open (a channel without a schedule).
//! - The schedule has an IANA time zone; conditions without a fifth field
//!   use it, and whole-day holidays are days in it. A condition's own zone
//!   overrides it for that condition only.
//! - DST: every answer starts from the instant, converted to local time, so
//!   local times skipped in spring never match and local times repeated in
//!   autumn match both times, like Asterisk on a server in that zone.
//! - [`Schedule::next_open`] runs on every widget page view, so it jumps
//!   day by day (and holiday by holiday), never minute by minute.

pub mod holidays;
mod ics;
pub mod routing;
pub mod timespec;
mod tzutil;

#[cfg(test)]
mod proptests;

use std::fmt;
use std::path::{Path, PathBuf};

use chrono::{DateTime, Duration, Utc};
use chrono_tz::Tz;

pub use holidays::{Holiday, HolidayError};
pub use routing::{Destination, Matched, Route, RouteConfig};
pub use timespec::{Field, TimeCondition, TimeSpecError, ZoneMismatch};

/// How far [`Schedule::next_open`] looks ahead.
pub const NEXT_OPEN_HORIZON_DAYS: i64 = 400;

/// A channel's schedule as written in the configuration.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Deserialize, serde::Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct ScheduleConfig {
    /// IANA zone such as `Europe/Paris`; UTC when absent.
    pub timezone: Option<String>,
    /// Asterisk time conditions; open when any holds. Empty = always open.
    pub open: Vec<String>,
    /// `YYYY-MM-DD` or `YYYY-MM-DD..YYYY-MM-DD` (inclusive), optionally
    /// followed by a name: `2026-12-25 Christmas`.
    pub holidays: Vec<String>,
    /// An iCalendar file whose events are holidays.
    pub holidays_ics: Option<PathBuf>,
    /// Time-based routing, first match wins (replaces `open` and
    /// `holidays`, which are its two-entry special case).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub routes: Vec<RouteConfig>,
    /// Where a chat goes when no route holds; closed when absent.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub default: Option<Destination>,
}

impl ScheduleConfig {
    /// Whether the schedule names a holidays file on the server (its own
    /// or a route's).
    pub fn names_a_file(&self) -> bool {
        self.holidays_ics.is_some() || self.routes.iter().any(|r| r.holidays_ics.is_some())
    }
}

/// Why a schedule could not be built. Every message names the bad item.
#[derive(Debug, thiserror::Error)]
pub enum ScheduleError {
    #[error("unknown time zone `{0}` (expected an IANA name such as Europe/Paris)")]
    UnknownTimezone(String),
    #[error("open rule `{rule}`: {error}")]
    Rule { rule: String, error: TimeSpecError },
    #[error("holiday `{item}`: {error}")]
    Holiday { item: String, error: HolidayError },
    #[error("cannot read holidays file {}: {error}", path.display())]
    IcsRead {
        path: PathBuf,
        error: std::io::Error,
    },
    #[error("holidays file {file}, line {line}: {reason}")]
    Ics {
        file: String,
        line: usize,
        reason: String,
    },
    #[error("`routes` replaces `open`, `holidays` and `holidays_ics`: write them as routes")]
    RoutesWithOpen,
    #[error("`default` needs `routes` (without routes, open rules decide)")]
    DefaultWithoutRoutes,
    #[error("route #{route} needs either `when` or `holidays`/`holidays_ics`, not {what}")]
    RouteMatcher { route: usize, what: &'static str },
    #[error("route #{route}: {error}")]
    Route {
        route: usize,
        error: Box<ScheduleError>,
    },
}

/// Where a channel's chats go, and so when it is open. Cheap to clone;
/// immutable once built.
#[derive(Debug, Clone)]
pub struct Schedule {
    tz: Tz,
    routes: Vec<Route>,
    default: Destination,
    /// Built from `open` + `holidays`: explanations speak of open rules.
    classic: bool,
}

/// Why a schedule is open or closed at an instant.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reason {
    /// The schedule has no open rules.
    AlwaysOpen,
    /// Open: the first rule that holds (`index` counts from 0).
    Rule { index: usize, spec: String },
    /// Closed by a holiday, whatever the rules say.
    Holiday { label: String },
    /// Closed: none of the `rules` open rules holds.
    OutsideRules { rules: usize },
    /// Route `index` (from 0) holds, by `matched`.
    Route { index: usize, matched: Matched },
    /// None of the `routes` routes holds: the default applies.
    Default { routes: usize },
}

/// The answer of [`Schedule::explain`]; `Display` gives a sentence for the
/// admin (`frontdesk schedule check`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Decision {
    pub open: bool,
    /// Where a chat started now goes.
    pub destination: Destination,
    /// The instant asked about, in the schedule's zone.
    pub local_time: DateTime<Tz>,
    pub reason: Reason,
}

impl fmt::Display for Decision {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} at {} ({}): ",
            if self.open { "open" } else { "closed" },
            self.local_time.format("%a %Y-%m-%d %H:%M %Z"),
            self.local_time.timezone().name()
        )?;
        match &self.reason {
            Reason::AlwaysOpen => f.write_str("no open rules, so always open"),
            Reason::Rule { index, spec } => write!(f, "open rule #{} `{spec}` holds", index + 1),
            Reason::Holiday { label } => write!(f, "holiday {label}"),
            Reason::OutsideRules { rules } => {
                write!(f, "outside all {rules} open rule(s)")
            }
            Reason::Route { index, matched } => {
                match matched {
                    Matched::Condition { spec } => write!(f, "route #{} `{spec}` holds", index + 1),
                    Matched::Holiday { label } => write!(f, "route #{} holiday {label}", index + 1),
                }?;
                write!(f, ", so {}", self.destination)
            }
            Reason::Default { routes } => write!(
                f,
                "none of the {routes} route(s) holds, so the default: {}",
                self.destination
            ),
        }
    }
}

fn parse_tz(name: &str) -> Result<Tz, ScheduleError> {
    name.parse::<Tz>()
        .map_err(|_| ScheduleError::UnknownTimezone(name.to_owned()))
}

/// Reads a holidays file: `(file name for messages, text)`.
fn read_ics(path: &Path) -> Result<(String, String), ScheduleError> {
    let text = std::fs::read_to_string(path).map_err(|error| ScheduleError::IcsRead {
        path: path.to_owned(),
        error,
    })?;
    Ok((path.display().to_string(), text))
}

/// Parses time conditions, naming the bad one.
fn parse_rules(rules: &[String]) -> Result<Vec<TimeCondition>, ScheduleError> {
    rules
        .iter()
        .map(|rule| {
            rule.parse::<TimeCondition>()
                .map_err(|error| ScheduleError::Rule {
                    rule: rule.clone(),
                    error,
                })
        })
        .collect()
}

/// Parses inline holidays and an iCalendar text into one list.
fn parse_holidays(
    items: &[String],
    ics: Option<(&str, &str)>,
    tz: Tz,
) -> Result<Vec<Holiday>, ScheduleError> {
    let mut holidays = items
        .iter()
        .map(|item| {
            holidays::parse_inline(item, tz).map_err(|error| ScheduleError::Holiday {
                item: item.clone(),
                error,
            })
        })
        .collect::<Result<Vec<_>, _>>()?;
    if let Some((file, text)) = ics {
        let name = Path::new(file)
            .file_name()
            .map_or(file.to_owned(), |n| n.to_string_lossy().into_owned());
        let found = ics::parse_ics(text, tz, &name).map_err(|e| ScheduleError::Ics {
            file: file.to_owned(),
            line: e.line,
            reason: e.reason,
        })?;
        holidays.extend(found);
    }
    Ok(holidays)
}

/// Compiles one written route (numbered from 1 in errors).
fn compile_route(route: &RouteConfig, tz: Tz) -> Result<Route, ScheduleError> {
    let has_holidays = !route.holidays.is_empty() || route.holidays_ics.is_some();
    match (route.when.is_empty(), has_holidays) {
        (false, false) => Ok(Route::times(parse_rules(&route.when)?, route.to.clone())),
        (true, true) => {
            let ics = route.holidays_ics.as_deref().map(read_ics).transpose()?;
            let ics = ics.as_ref().map(|(n, t)| (n.as_str(), t.as_str()));
            let holidays = parse_holidays(&route.holidays, ics, tz)?;
            Ok(Route::holidays(holidays, route.to.clone()))
        }
        (true, false) => Err(ScheduleError::RouteMatcher {
            route: 0,
            what: "neither",
        }),
        (false, true) => Err(ScheduleError::RouteMatcher {
            route: 0,
            what: "both",
        }),
    }
}

impl Schedule {
    /// Open at all times, in UTC (a channel with no schedule).
    pub fn always_open() -> Schedule {
        Schedule::new(Tz::UTC, Vec::new(), Vec::new())
    }

    /// Builds a schedule, reading holidays files if given (a relative path
    /// is relative to the current directory).
    pub fn from_config(cfg: &ScheduleConfig) -> Result<Schedule, ScheduleError> {
        let ics = cfg.holidays_ics.as_deref().map(read_ics).transpose()?;
        Self::from_config_with_ics(cfg, ics.as_ref().map(|(n, t)| (n.as_str(), t.as_str())))
    }

    /// Like [`Schedule::from_config`], with the top-level iCalendar text
    /// given as `(file name for messages, text)` instead of read from
    /// `cfg.holidays_ics` (which is ignored). Routes' files are read.
    pub fn from_config_with_ics(
        cfg: &ScheduleConfig,
        ics: Option<(&str, &str)>,
    ) -> Result<Schedule, ScheduleError> {
        let tz = cfg.timezone.as_deref().map_or(Ok(Tz::UTC), parse_tz)?;
        if cfg.routes.is_empty() {
            if cfg.default.is_some() {
                return Err(ScheduleError::DefaultWithoutRoutes);
            }
            let rules = parse_rules(&cfg.open)?;
            let holidays = parse_holidays(&cfg.holidays, ics, tz)?;
            return Ok(Schedule::new(tz, rules, holidays));
        }
        if !cfg.open.is_empty() || !cfg.holidays.is_empty() || cfg.holidays_ics.is_some() {
            return Err(ScheduleError::RoutesWithOpen);
        }
        let routes = cfg
            .routes
            .iter()
            .enumerate()
            .map(|(i, route)| {
                compile_route(route, tz).map_err(|error| match error {
                    ScheduleError::RouteMatcher { what, .. } => {
                        ScheduleError::RouteMatcher { route: i + 1, what }
                    }
                    error => ScheduleError::Route {
                        route: i + 1,
                        error: Box::new(error),
                    },
                })
            })
            .collect::<Result<Vec<_>, _>>()?;
        let default = cfg.default.clone().unwrap_or(Destination::Closed(None));
        Ok(Schedule::routed(tz, routes, default))
    }

    /// The classic schedule from parts already parsed (e.g. by an
    /// importer): holidays close, else any open rule opens, else closed
    /// (always open without rules).
    pub fn new(tz: Tz, rules: Vec<TimeCondition>, holidays: Vec<Holiday>) -> Schedule {
        let mut routes = Vec::new();
        if !holidays.is_empty() {
            routes.push(Route::holidays(holidays, Destination::Closed(None)));
        }
        let default = if rules.is_empty() {
            Destination::Open
        } else {
            routes.push(Route::times(rules, Destination::Open));
            Destination::Closed(None)
        };
        Schedule {
            tz,
            routes,
            default,
            classic: true,
        }
    }

    /// A routing schedule: the first route that holds decides, else
    /// `default`.
    pub fn routed(tz: Tz, routes: Vec<Route>, default: Destination) -> Schedule {
        Schedule {
            tz,
            routes,
            default,
            classic: false,
        }
    }

    /// The schedule's zone (for showing times to the admin and visitor).
    pub fn timezone(&self) -> Tz {
        self.tz
    }

    /// The routes, in precedence order.
    pub fn routes(&self) -> &[Route] {
        &self.routes
    }

    /// Where a chat goes when no route holds.
    pub fn default_destination(&self) -> &Destination {
        &self.default
    }

    /// Every destination this schedule can route to.
    pub fn destinations(&self) -> impl Iterator<Item = &Destination> {
        self.routes
            .iter()
            .map(Route::destination)
            .chain([&self.default])
    }

    /// The index of the route that decides at `at` (`routes().len()` for
    /// the default).
    fn deciding(&self, at: DateTime<Utc>) -> usize {
        self.routes
            .iter()
            .position(|r| r.holds(at, self.tz))
            .unwrap_or(self.routes.len())
    }

    /// Where a chat started at `at` goes.
    pub fn destination_at(&self, at: DateTime<Utc>) -> &Destination {
        self.routes
            .get(self.deciding(at))
            .map_or(&self.default, Route::destination)
    }

    /// Whether the channel is open at `at`.
    pub fn is_open(&self, at: DateTime<Utc>) -> bool {
        self.destination_at(at).is_open()
    }

    /// Whether the channel is open at `at`, where a chat goes, and why.
    pub fn explain(&self, at: DateTime<Utc>) -> Decision {
        let local_time = at.with_timezone(&self.tz);
        let matched = self
            .routes
            .iter()
            .enumerate()
            .find_map(|(i, r)| r.matched(at, self.tz).map(|m| (i, m)));
        let (destination, reason) = match matched {
            Some((index, (within, matched))) => {
                let destination = self.routes[index].to.clone();
                let reason = match matched {
                    Matched::Holiday { label } if self.classic => Reason::Holiday { label },
                    Matched::Condition { spec } if self.classic => Reason::Rule {
                        index: within,
                        spec,
                    },
                    matched => Reason::Route { index, matched },
                };
                (destination, reason)
            }
            None => {
                let reason = match self.routes.last() {
                    _ if !self.classic => Reason::Default {
                        routes: self.routes.len(),
                    },
                    Some(Route {
                        when: routing::Matcher::Times(rules),
                        ..
                    }) => Reason::OutsideRules { rules: rules.len() },
                    _ => Reason::AlwaysOpen,
                };
                (self.default.clone(), reason)
            }
        };
        Decision {
            open: destination.is_open(),
            destination,
            local_time,
            reason,
        }
    }

    /// The earliest instant at or after `at` when the channel is open: `at`
    /// itself if open, otherwise the instant the first open route starts
    /// to decide (or the default takes over). `None` if it stays closed
    /// for [`NEXT_OPEN_HORIZON_DAYS`] days.
    ///
    /// Jumps from change to change: when route k decides, only the routes
    /// before it (by starting to hold) and route k itself (by stopping)
    /// can change the answer. Each route's next change is kept while it
    /// still lies ahead, so a route is searched again only once passed.
    pub fn next_open(&self, at: DateTime<Utc>) -> Option<DateTime<Utc>> {
        if !self.destinations().any(Destination::is_open) {
            return None;
        }
        let limit = at + Duration::days(NEXT_OPEN_HORIZON_DAYS);
        let mut changes: Vec<Option<Option<DateTime<Utc>>>> = vec![None; self.routes.len()];
        let mut t = at;
        while t < limit {
            let k = self.deciding(t);
            let decided = self.routes.get(k).map_or(&self.default, Route::destination);
            if decided.is_open() {
                return Some(t);
            }
            let relevant = (k + 1).min(self.routes.len());
            let mut next: Option<DateTime<Utc>> = None;
            for (route, cached) in self.routes[..relevant].iter().zip(&mut changes) {
                let change = match *cached {
                    Some(Some(c)) if c > t => Some(c),
                    Some(None) => None,
                    _ => route.next_change(t, limit, self.tz),
                };
                *cached = Some(change);
                next = match (next, change) {
                    (Some(a), Some(b)) => Some(a.min(b)),
                    (a, b) => a.or(b),
                };
            }
            t = next?;
        }
        None
    }
}

#[cfg(test)]
mod tests;
