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
pub mod timespec;
mod tzutil;

#[cfg(test)]
mod proptests;

use std::fmt;
use std::path::PathBuf;

use chrono::{DateTime, Duration, Utc};
use chrono_tz::Tz;

pub use holidays::{Holiday, HolidayError};
pub use timespec::{Field, TimeCondition, TimeSpecError};

use holidays::HolidaySet;

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
}

/// When a channel is open. Cheap to clone; immutable once built.
#[derive(Debug, Clone)]
pub struct Schedule {
    tz: Tz,
    rules: Vec<TimeCondition>,
    holidays: HolidaySet,
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
}

/// The answer of [`Schedule::explain`]; `Display` gives a sentence for the
/// admin (`frontdesk schedule check`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Decision {
    pub open: bool,
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
        }
    }
}

fn parse_tz(name: &str) -> Result<Tz, ScheduleError> {
    name.parse::<Tz>()
        .map_err(|_| ScheduleError::UnknownTimezone(name.to_owned()))
}

impl Schedule {
    /// Open at all times, in UTC (a channel with no schedule).
    pub fn always_open() -> Schedule {
        Schedule {
            tz: Tz::UTC,
            rules: Vec::new(),
            holidays: HolidaySet::default(),
        }
    }

    /// Builds a schedule, reading `holidays_ics` if given (a relative path
    /// is relative to the current directory).
    pub fn from_config(cfg: &ScheduleConfig) -> Result<Schedule, ScheduleError> {
        let ics = match &cfg.holidays_ics {
            None => None,
            Some(path) => {
                let text =
                    std::fs::read_to_string(path).map_err(|error| ScheduleError::IcsRead {
                        path: path.clone(),
                        error,
                    })?;
                Some((path.display().to_string(), text))
            }
        };
        Self::from_config_with_ics(cfg, ics.as_ref().map(|(n, t)| (n.as_str(), t.as_str())))
    }

    /// Like [`Schedule::from_config`], with the iCalendar text given as
    /// `(file name for messages, text)` instead of read from
    /// `cfg.holidays_ics` (which is ignored).
    pub fn from_config_with_ics(
        cfg: &ScheduleConfig,
        ics: Option<(&str, &str)>,
    ) -> Result<Schedule, ScheduleError> {
        let tz = cfg.timezone.as_deref().map_or(Ok(Tz::UTC), parse_tz)?;
        let rules = cfg
            .open
            .iter()
            .map(|rule| {
                rule.parse::<TimeCondition>()
                    .map_err(|error| ScheduleError::Rule {
                        rule: rule.clone(),
                        error,
                    })
            })
            .collect::<Result<Vec<_>, _>>()?;
        let mut holidays = cfg
            .holidays
            .iter()
            .map(|item| {
                holidays::parse_inline(item, tz).map_err(|error| ScheduleError::Holiday {
                    item: item.clone(),
                    error,
                })
            })
            .collect::<Result<Vec<_>, _>>()?;
        if let Some((file, text)) = ics {
            let name = std::path::Path::new(file)
                .file_name()
                .map_or(file.to_owned(), |n| n.to_string_lossy().into_owned());
            let found = ics::parse_ics(text, tz, &name).map_err(|e| ScheduleError::Ics {
                file: file.to_owned(),
                line: e.line,
                reason: e.reason,
            })?;
            holidays.extend(found);
        }
        Ok(Schedule::new(tz, rules, holidays))
    }

    /// Builds a schedule from parts already parsed (e.g. by an importer).
    pub fn new(tz: Tz, rules: Vec<TimeCondition>, holidays: Vec<Holiday>) -> Schedule {
        Schedule {
            tz,
            rules,
            holidays: HolidaySet::new(holidays),
        }
    }

    /// The schedule's zone (for showing times to the admin and visitor).
    pub fn timezone(&self) -> Tz {
        self.tz
    }

    /// The open rules, in configuration order.
    pub fn rules(&self) -> &[TimeCondition] {
        &self.rules
    }

    /// Number of holiday stretches (after expanding recurrences).
    pub fn holiday_count(&self) -> usize {
        self.holidays.len()
    }

    /// Whether the channel is open at `at`.
    pub fn is_open(&self, at: DateTime<Utc>) -> bool {
        self.holidays.closed_until(at).is_none()
            && (self.rules.is_empty() || self.rules.iter().any(|r| r.matches(at, self.tz)))
    }

    /// Whether the channel is open at `at`, and why.
    pub fn explain(&self, at: DateTime<Utc>) -> Decision {
        let local_time = at.with_timezone(&self.tz);
        let (open, reason) = if let Some(h) = self.holidays.find(at) {
            (
                false,
                Reason::Holiday {
                    label: h.label.clone(),
                },
            )
        } else if self.rules.is_empty() {
            (true, Reason::AlwaysOpen)
        } else if let Some(index) = self.rules.iter().position(|r| r.matches(at, self.tz)) {
            (
                true,
                Reason::Rule {
                    index,
                    spec: self.rules[index].spec().to_owned(),
                },
            )
        } else {
            (
                false,
                Reason::OutsideRules {
                    rules: self.rules.len(),
                },
            )
        };
        Decision {
            open,
            local_time,
            reason,
        }
    }

    /// The earliest instant at or after `at` when the channel is open: `at`
    /// itself if open, otherwise the start of the first open minute (or the
    /// end of a holiday). `None` if it stays closed for
    /// [`NEXT_OPEN_HORIZON_DAYS`] days.
    pub fn next_open(&self, at: DateTime<Utc>) -> Option<DateTime<Utc>> {
        let limit = at + Duration::days(NEXT_OPEN_HORIZON_DAYS);
        // Each rule's earliest match at or after `from`, kept across holiday
        // skips so a rule is only searched again once it has been passed.
        let mut matches: Vec<Option<Option<DateTime<Utc>>>> = vec![None; self.rules.len()];
        let mut from = at;
        while from < limit {
            let candidate = if self.rules.is_empty() {
                from
            } else {
                let mut best: Option<DateTime<Utc>> = None;
                for (rule, cached) in self.rules.iter().zip(matches.iter_mut()) {
                    let found = match *cached {
                        Some(Some(t)) if t >= from => Some(t),
                        Some(None) => None,
                        _ => rule.first_match_from(from, limit, self.tz),
                    };
                    *cached = Some(found);
                    best = match (best, found) {
                        (Some(b), Some(f)) => Some(b.min(f)),
                        (b, f) => b.or(f),
                    };
                }
                best?
            };
            if candidate >= limit {
                return None;
            }
            match self.holidays.closed_until(candidate) {
                Some(end) => from = end,
                None => return Some(candidate),
            }
        }
        None
    }
}

#[cfg(test)]
mod tests;
