//! One Asterisk time condition: `times,weekdays,mdays,months[,timezone]`.
//!
//! This is the text an admin writes after `include => context,` or inside
//! `GotoIfTime(...)`. The semantics follow Asterisk's `main/pbx_timing.c`
//! exactly, because admins copy their PBX's conditions and must get the same
//! open/closed answers from Frontdesk as from their PBX:
//!
//! - fields are split on `,` and `|` (the pre-1.6 separator) alike, even
//!   mixed in one condition; missing trailing fields, an empty field and
//!   `*` all mean "any";
//! - a field is an `&`-separated list of items, each a single value or a
//!   `start-end` range; ranges are cyclic, so `fri-mon`, `25-5`, `nov-feb`
//!   and `22:00-02:00` wrap around;
//! - the end minute of a time range is included: `09:00-17:00` is open during
//!   the minute 17:00-17:01; `22:00-22:00` is that single minute, not a day;
//! - weekdays are `sun`..`sat` or the numbers `1`..`7` with **1 = Sunday**;
//!   months are `jan`..`dec` or `1`..`12`; names are case-insensitive and must
//!   be exactly three letters (`monday` is not a weekday for Asterisk);
//! - every field is tested against the same local date and minute, so
//!   `22:00-02:00,fri` is open during Friday's first two hours and last two
//!   hours, not from Friday night into Saturday;
//! - the fifth field is an IANA time zone, also in the `TZ` variable's
//!   form with a leading colon (`:Europe/Paris`); without it the
//!   schedule's zone is used (Asterisk uses the server's zone). Local time
//!   is taken from the instant, so a local time skipped by a DST change
//!   never matches and one repeated by a DST change matches twice.
//!
//! Where Asterisk logs a warning and silently skips an item (`25:00-26:00`,
//! `mon-funday`, `32`, an unknown time zone, a stray `&`), we refuse the whole
//! condition with a [`TimeSpecError`] naming the item: a condition that
//! silently lost an item would answer differently from what the admin wrote.
//! We never accept an item with a meaning different from Asterisk's.

use std::fmt;
use std::str::FromStr;

use chrono::{DateTime, Datelike, Duration, NaiveDate, NaiveDateTime, Timelike, Utc};
use chrono_tz::Tz;

use super::tzutil::offset_seconds;

const MINUTES_PER_DAY: usize = 24 * 60;
const MASK_WORDS: usize = MINUTES_PER_DAY.div_ceil(64);

/// Which part of a time condition an error is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Field {
    Time,
    Weekday,
    MonthDay,
    Month,
}

impl Field {
    fn expected(self) -> &'static str {
        match self {
            Field::Time => "expected HH:MM between 00:00 and 23:59",
            Field::Weekday => "expected sun, mon, tue, wed, thu, fri, sat or 1-7 (1 = Sunday)",
            Field::MonthDay => "expected a day of the month between 1 and 31",
            Field::Month => "expected jan, feb, ..., dec or 1-12",
        }
    }
}

impl fmt::Display for Field {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Field::Time => "time",
            Field::Weekday => "weekday",
            Field::MonthDay => "day of month",
            Field::Month => "month",
        })
    }
}

/// Why a time condition was refused. Every message names the bad item.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TimeSpecError {
    #[error("empty time condition (write `*` for always)")]
    Empty,
    #[error("{count} fields in `{spec}`; expected times,weekdays,mdays,months[,timezone]")]
    TooManyFields { spec: String, count: usize },
    #[error("`{0}`: a time zone field needs `,` separators (Asterisk ignores a fifth `|` field)")]
    TimezoneWithPipe(String),
    #[error("{}", invalid_item_message(*field, item, element))]
    InvalidItem {
        field: Field,
        /// The value that could not be read (may be empty).
        item: String,
        /// The whole `&`-separated element it belongs to, which Asterisk
        /// would silently skip.
        element: String,
    },
    #[error("unknown time zone `{0}` (expected an IANA name such as Europe/Paris)")]
    UnknownTimezone(String),
}

fn invalid_item_message(field: Field, item: &str, element: &str) -> String {
    let what = if element.is_empty() {
        format!("empty {field} item (a stray `&`?)")
    } else if item == element {
        format!("invalid {field} `{item}`")
    } else if item.is_empty() {
        format!("invalid {field} range `{element}`: missing value")
    } else {
        format!("invalid {field} `{item}` in `{element}`")
    };
    format!(
        "{what}: {}; Asterisk would silently skip it",
        field.expected()
    )
}

/// The set of minutes of a day (0 = 00:00 .. 1439 = 23:59) a condition allows.
#[derive(Clone, PartialEq, Eq)]
struct MinuteMask([u64; MASK_WORDS]);

impl MinuteMask {
    fn empty() -> Self {
        MinuteMask([0; MASK_WORDS])
    }

    fn full() -> Self {
        let mut m = Self::empty();
        for minute in 0..MINUTES_PER_DAY {
            m.set(minute);
        }
        m
    }

    fn set(&mut self, minute: usize) {
        self.0[minute / 64] |= 1 << (minute % 64);
    }

    fn get(&self, minute: usize) -> bool {
        self.0[minute / 64] & (1 << (minute % 64)) != 0
    }

    /// The first minute at or after `from` that is allowed (or, with
    /// `allowed` false, not allowed), if any on this day. The inverted last
    /// word has its bits past minute 1439 set; the range check drops them.
    fn next_from(&self, from: usize, allowed: bool) -> Option<usize> {
        if from >= MINUTES_PER_DAY {
            return None;
        }
        let word_of = |i: usize| if allowed { self.0[i] } else { !self.0[i] };
        let mut word = from / 64;
        let mut bits = word_of(word) & (u64::MAX << (from % 64));
        loop {
            if bits != 0 {
                let minute = word * 64 + bits.trailing_zeros() as usize;
                return (minute < MINUTES_PER_DAY).then_some(minute);
            }
            word += 1;
            if word == MASK_WORDS {
                return None;
            }
            bits = word_of(word);
        }
    }
}

impl fmt::Debug for MinuteMask {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let count = (0..MINUTES_PER_DAY).filter(|&m| self.get(m)).count();
        write!(f, "MinuteMask({count} minutes)")
    }
}

/// A parsed Asterisk time condition. Build it with [`str::parse`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TimeCondition {
    spec: String,
    minutes: MinuteMask,
    /// Bit 0 = Sunday (as `tm_wday`).
    weekdays: u32,
    /// Bit 0 = the 1st.
    mdays: u32,
    /// Bit 0 = January.
    months: u32,
    timezone: Option<Tz>,
}

const WEEKDAY_NAMES: [&str; 7] = ["sun", "mon", "tue", "wed", "thu", "fri", "sat"];
const MONTH_NAMES: [&str; 12] = [
    "jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec",
];

impl FromStr for TimeCondition {
    type Err = TimeSpecError;

    fn from_str(input: &str) -> Result<Self, Self::Err> {
        let spec = input.trim();
        if spec.is_empty() {
            return Err(TimeSpecError::Empty);
        }
        // Like Asterisk's `ast_build_timing`: fields are split on `|` and
        // `,` alike (the two may be mixed), and a fifth field is the zone
        // only when every separator is a comma (Asterisk takes the zone
        // after the fourth comma, and ignores a fifth field otherwise).
        let fields: Vec<&str> = spec.split(['|', ',']).collect();
        if fields.len() > 5 {
            return Err(TimeSpecError::TooManyFields {
                spec: spec.to_owned(),
                count: fields.len(),
            });
        }
        if fields.len() == 5 && spec.contains('|') {
            return Err(TimeSpecError::TimezoneWithPipe(spec.to_owned()));
        }
        let field = |i: usize| fields.get(i).copied().unwrap_or("*");
        let timezone = match fields.get(4).copied() {
            None | Some("") => None,
            Some(name) => Some(parse_zone(name)?),
        };
        Ok(TimeCondition {
            spec: spec.to_owned(),
            minutes: parse_times(field(0))?,
            weekdays: parse_cyclic(field(1), 7, &WEEKDAY_NAMES, Field::Weekday)?,
            mdays: parse_cyclic(field(2), 31, &[], Field::MonthDay)?,
            months: parse_cyclic(field(3), 12, &MONTH_NAMES, Field::Month)?,
            timezone,
        })
    }
}

/// A condition's zone as Asterisk reads it: an IANA name, optionally with
/// the leading `:` of the `TZ` variable's form (`:Europe/Paris`), which
/// Asterisk's tz loader skips.
fn parse_zone(name: &str) -> Result<Tz, TimeSpecError> {
    let bare = name.strip_prefix(':').unwrap_or(name);
    bare.parse::<Tz>()
        .map_err(|_| TimeSpecError::UnknownTimezone(name.to_owned()))
}

/// `HH:MM` with one or two digits each, as Asterisk's `sscanf("%2d:%2d")`
/// reads it; surrounding blanks are allowed (Asterisk skips them too).
fn parse_hhmm(item: &str, element: &str) -> Result<usize, TimeSpecError> {
    let err = || TimeSpecError::InvalidItem {
        field: Field::Time,
        item: item.to_owned(),
        element: element.to_owned(),
    };
    let (h, m) = item.trim().split_once(':').ok_or_else(err)?;
    let number = |s: &str| -> Option<usize> {
        let digits = (1..=2).contains(&s.len()) && s.bytes().all(|b| b.is_ascii_digit());
        digits.then(|| s.parse().ok()).flatten()
    };
    match (number(h), number(m)) {
        (Some(h), Some(m)) if h <= 23 && m <= 59 => Ok(h * 60 + m),
        _ => Err(err()),
    }
}

fn parse_times(field: &str) -> Result<MinuteMask, TimeSpecError> {
    if field.is_empty() || field == "*" {
        return Ok(MinuteMask::full());
    }
    let mut mask = MinuteMask::empty();
    for element in field.split('&') {
        let (start, end) = match element.split_once('-') {
            None => {
                let minute = parse_hhmm(element, element)?;
                (minute, minute)
            }
            Some((a, b)) => (parse_hhmm(a, element)?, parse_hhmm(b, element)?),
        };
        // Like Asterisk: walk from start to end, wrapping at midnight, and
        // include the end minute.
        let mut minute = start;
        while minute != end {
            mask.set(minute);
            minute = (minute + 1) % MINUTES_PER_DAY;
        }
        mask.set(end);
    }
    Ok(mask)
}

/// Weekdays, days of month and months: `*`, or `&`-separated items that are
/// a value or a cyclic `start-end` range. Returns a bitmask, bit 0 = value 1.
fn parse_cyclic(
    field: &str,
    max: usize,
    names: &[&str],
    kind: Field,
) -> Result<u32, TimeSpecError> {
    if field.is_empty() || field == "*" {
        return Ok((1 << max) - 1);
    }
    let lookup = |item: &str, element: &str| -> Result<usize, TimeSpecError> {
        if let Some(i) = names.iter().position(|n| n.eq_ignore_ascii_case(item)) {
            return Ok(i);
        }
        let numeric = (1..=2).contains(&item.len()) && item.bytes().all(|b| b.is_ascii_digit());
        match item.parse::<usize>() {
            Ok(n) if numeric && (1..=max).contains(&n) => Ok(n - 1),
            _ => Err(TimeSpecError::InvalidItem {
                field: kind,
                item: item.to_owned(),
                element: element.to_owned(),
            }),
        }
    };
    let mut mask = 0u32;
    for element in field.split('&') {
        let (mut start, end) = match element.split_once('-') {
            None => {
                let i = lookup(element, element)?;
                (i, i)
            }
            Some((a, b)) => (lookup(a, element)?, lookup(b, element)?),
        };
        mask |= 1 << end;
        while start != end {
            mask |= 1 << start;
            start = (start + 1) % max;
        }
    }
    Ok(mask)
}

/// Runs of set bits in `0..len` as inclusive `(start, end)` pairs.
fn runs(len: usize, set: impl Fn(usize) -> bool) -> Vec<(usize, usize)> {
    let mut out = Vec::new();
    let mut i = 0;
    while i < len {
        if set(i) {
            let start = i;
            while i + 1 < len && set(i + 1) {
                i += 1;
            }
            out.push((start, i));
        }
        i += 1;
    }
    out
}

/// A weekday, month-day or month bitmask as a condition field (`*` when
/// every value is allowed).
fn cyclic_field(mask: u32, max: usize, name: impl Fn(usize) -> String) -> String {
    if mask == (1 << max) - 1 {
        return "*".to_owned();
    }
    let items: Vec<String> = runs(max, |i| mask & (1 << i) != 0)
        .into_iter()
        .map(|(a, b)| {
            if a == b {
                name(a)
            } else {
                format!("{}-{}", name(a), name(b))
            }
        })
        .collect();
    items.join("&")
}

/// Why two conditions cannot be combined into one.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("`{0}` and `{1}` are read in different time zones, so both holding at once is no single condition")]
pub struct ZoneMismatch(pub String, pub String);

impl TimeCondition {
    /// The condition as written (trimmed).
    pub fn spec(&self) -> &str {
        &self.spec
    }

    /// The condition that holds exactly when both hold (a nested time
    /// check in the dialplan), or `None` when they never hold together.
    /// Both must be read in the same zone.
    pub fn and(&self, other: &TimeCondition) -> Result<Option<TimeCondition>, ZoneMismatch> {
        if self.timezone != other.timezone {
            return Err(ZoneMismatch(self.spec.clone(), other.spec.clone()));
        }
        let mut minutes = MinuteMask::empty();
        for (word, (a, b)) in minutes
            .0
            .iter_mut()
            .zip(self.minutes.0.iter().zip(&other.minutes.0))
        {
            *word = a & b;
        }
        let weekdays = self.weekdays & other.weekdays;
        let mdays = self.mdays & other.mdays;
        let months = self.months & other.months;
        if minutes.next_from(0, true).is_none() || weekdays == 0 || mdays == 0 || months == 0 {
            return Ok(None);
        }
        let times = if minutes == MinuteMask::full() {
            "*".to_owned()
        } else {
            let hhmm = |m: usize| format!("{:02}:{:02}", m / 60, m % 60);
            runs(MINUTES_PER_DAY, |m| minutes.get(m))
                .into_iter()
                .map(|(a, b)| format!("{}-{}", hhmm(a), hhmm(b)))
                .collect::<Vec<_>>()
                .join("&")
        };
        let mut spec = [
            times,
            cyclic_field(weekdays, 7, |i| WEEKDAY_NAMES[i].to_owned()),
            cyclic_field(mdays, 31, |i| (i + 1).to_string()),
            cyclic_field(months, 12, |i| MONTH_NAMES[i].to_owned()),
        ]
        .join(",");
        if let Some(tz) = self.timezone {
            spec.push(',');
            spec.push_str(tz.name());
        }
        let combined = TimeCondition {
            spec,
            minutes,
            weekdays,
            mdays,
            months,
            timezone: self.timezone,
        };
        Ok(Some(combined))
    }

    /// The condition's own time zone (fifth field), if it has one.
    pub fn timezone(&self) -> Option<Tz> {
        self.timezone
    }

    /// The zone this condition is evaluated in, given the schedule's zone.
    pub fn effective_timezone(&self, default_tz: Tz) -> Tz {
        self.timezone.unwrap_or(default_tz)
    }

    fn date_matches(&self, date: NaiveDate) -> bool {
        self.months & (1 << date.month0()) != 0
            && self.mdays & (1 << date.day0()) != 0
            && self.weekdays & (1 << date.weekday().num_days_from_sunday()) != 0
    }

    /// Whether a local wall-clock time satisfies every field (seconds are
    /// ignored, as Asterisk works by the minute).
    pub fn matches_local(&self, local: NaiveDateTime) -> bool {
        self.date_matches(local.date())
            && self
                .minutes
                .get((local.hour() * 60 + local.minute()) as usize)
    }

    /// Whether the condition holds at `at`, with `default_tz` used when the
    /// condition names no zone of its own.
    pub fn matches(&self, at: DateTime<Utc>, default_tz: Tz) -> bool {
        let tz = self.effective_timezone(default_tz);
        self.matches_local(at.with_timezone(&tz).naive_local())
    }

    /// The earliest instant in `[from, limit)` at which the condition holds.
    pub(crate) fn first_match_from(
        &self,
        from: DateTime<Utc>,
        limit: DateTime<Utc>,
        default_tz: Tz,
    ) -> Option<DateTime<Utc>> {
        self.first_from(from, limit, default_tz, true)
    }

    /// The earliest instant in `[from, limit)` at which the condition does
    /// not hold (where a routing rule stops deciding).
    pub(crate) fn first_mismatch_from(
        &self,
        from: DateTime<Utc>,
        limit: DateTime<Utc>,
        default_tz: Tz,
    ) -> Option<DateTime<Utc>> {
        self.first_from(from, limit, default_tz, false)
    }

    /// The earliest instant in `[from, limit)` at which whether the
    /// condition holds equals `holds`.
    ///
    /// Walks one local day (or one constant-offset stretch of it, when a DST
    /// change falls inside the day) at a time and uses the minute mask to
    /// jump straight to the first allowed minute, so a year costs a few
    /// hundred steps, not half a million.
    fn first_from(
        &self,
        from: DateTime<Utc>,
        limit: DateTime<Utc>,
        default_tz: Tz,
        holds: bool,
    ) -> Option<DateTime<Utc>> {
        let tz = self.effective_timezone(default_tz);
        let mut u = from;
        while u < limit {
            let offset = offset_seconds(tz, u);
            let to_local = |t: DateTime<Utc>| t.naive_utc() + Duration::seconds(offset);
            let local = to_local(u);
            let date = local.date();
            // End of this local day if the offset stays the same ...
            let midnight = date.succ_opt()?.and_hms_opt(0, 0, 0)?;
            let mut segment_end = (midnight - Duration::seconds(offset)).and_utc();
            // ... or the offset change inside it, found by bisection on whole
            // seconds (zone transitions fall on whole seconds).
            if offset_seconds(tz, segment_end - Duration::seconds(1)) != offset {
                let (mut lo, mut hi) = (u.timestamp(), segment_end.timestamp() - 1);
                while hi - lo > 1 {
                    let mid = lo + (hi - lo) / 2;
                    let mid_offset =
                        DateTime::from_timestamp(mid, 0).map(|t| offset_seconds(tz, t));
                    if mid_offset == Some(offset) {
                        lo = mid;
                    } else {
                        hi = mid;
                    }
                }
                segment_end = DateTime::from_timestamp(hi, 0)?;
            }
            if !self.date_matches(date) && !holds {
                return Some(u);
            }
            if self.date_matches(date) {
                let first = (local.hour() * 60 + local.minute()) as usize;
                if let Some(minute) = self.minutes.next_from(first, holds) {
                    let start_local = date.and_hms_opt(0, 0, 0)? + Duration::minutes(minute as i64);
                    if start_local < to_local(segment_end) {
                        let start = (start_local - Duration::seconds(offset)).and_utc();
                        return Some(start.max(u));
                    }
                }
            }
            u = segment_end;
        }
        None
    }
}

impl fmt::Display for TimeCondition {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.spec)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn cond(s: &str) -> TimeCondition {
        s.parse().unwrap_or_else(|e| panic!("{s}: {e}"))
    }

    /// A UTC instant given as local wall-clock time in UTC (zone-free tests).
    fn at(y: i32, mo: u32, d: u32, h: u32, mi: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(y, mo, d, h, mi, 0).unwrap()
    }

    fn open(c: &TimeCondition, t: DateTime<Utc>) -> bool {
        c.matches(t, Tz::UTC)
    }

    // 2026-11-27 is a Friday.
    #[test]
    fn wrapping_time_range_is_tested_against_the_same_day() {
        let c = cond("22:00-02:00,fri,*,*");
        assert!(open(&c, at(2026, 11, 27, 0, 0)));
        assert!(open(&c, at(2026, 11, 27, 1, 59)));
        assert!(open(&c, at(2026, 11, 27, 2, 0)), "end minute is inclusive");
        assert!(!open(&c, at(2026, 11, 27, 2, 1)));
        assert!(!open(&c, at(2026, 11, 27, 21, 59)));
        assert!(open(&c, at(2026, 11, 27, 22, 0)));
        assert!(open(&c, at(2026, 11, 27, 23, 59)));
        // Saturday's early hours are not Friday night.
        assert!(!open(&c, at(2026, 11, 28, 0, 30)));
        assert!(!open(&c, at(2026, 11, 26, 23, 0)));
    }

    #[test]
    fn end_minute_is_inclusive_to_the_whole_minute() {
        let c = cond("09:00-17:00,*,*,*");
        assert!(!open(&c, at(2026, 1, 5, 8, 59)));
        assert!(open(&c, at(2026, 1, 5, 9, 0)));
        assert!(open(&c, at(2026, 1, 5, 17, 0)));
        assert!(open(
            &c,
            Utc.with_ymd_and_hms(2026, 1, 5, 17, 0, 59).unwrap()
        ));
        assert!(!open(&c, at(2026, 1, 5, 17, 1)));
    }

    #[test]
    fn same_start_and_end_is_one_minute_not_a_day() {
        let c = cond("22:00-22:00");
        assert!(open(&c, at(2026, 1, 5, 22, 0)));
        assert!(!open(&c, at(2026, 1, 5, 22, 1)));
        assert!(!open(&c, at(2026, 1, 5, 21, 59)));
        let single = cond("12:30,*,*,*");
        assert!(open(&single, at(2026, 1, 5, 12, 30)));
        assert!(!open(&single, at(2026, 1, 5, 12, 31)));
    }

    #[test]
    fn star_and_empty_fields_mean_any() {
        for spec in ["*", "*,*,*,*", ",,,", ",,,,", "*|*|*|*", "", "*,,*"] {
            if spec.is_empty() {
                assert_eq!(spec.parse::<TimeCondition>(), Err(TimeSpecError::Empty));
                continue;
            }
            let c = cond(spec);
            assert!(open(&c, at(2026, 2, 28, 0, 0)), "{spec}");
            assert!(open(&c, at(2026, 7, 31, 23, 59)), "{spec}");
        }
    }

    #[test]
    fn missing_trailing_fields_mean_any() {
        let c = cond("09:00-10:00");
        assert!(open(&c, at(2026, 3, 1, 9, 30)));
        let c = cond("09:00-10:00,sun");
        assert!(open(&c, at(2026, 3, 1, 9, 30)));
        assert!(!open(&c, at(2026, 3, 2, 9, 30)));
    }

    #[test]
    fn weekday_ranges_wrap_and_names_are_case_insensitive() {
        let c = cond("*,FRI-Mon,*,*");
        // 2026-11-27 Fri .. 2026-11-30 Mon.
        for d in 27..=30 {
            assert!(open(&c, at(2026, 11, d, 12, 0)), "day {d}");
        }
        for d in 24..=26 {
            assert!(!open(&c, at(2026, 11, d, 12, 0)), "day {d}");
        }
    }

    #[test]
    fn numeric_weekdays_count_from_sunday() {
        // Asterisk maps "1" to the first name, "sun".
        let c = cond("*,1,*,*");
        assert!(open(&c, at(2026, 11, 29, 12, 0))); // Sunday
        assert!(!open(&c, at(2026, 11, 30, 12, 0))); // Monday
        let c = cond("*,2-6,*,*"); // mon-fri
        assert!(open(&c, at(2026, 11, 30, 12, 0)));
        assert!(open(&c, at(2026, 11, 27, 12, 0)));
        assert!(!open(&c, at(2026, 11, 28, 12, 0)));
        assert_eq!(cond("*,7,*,*"), cond("*,sat,*,*").with_spec("*,7,*,*"));
    }

    #[test]
    fn month_day_ranges_wrap() {
        let c = cond("*,*,25-5,*");
        assert!(open(&c, at(2026, 1, 25, 0, 0)));
        assert!(open(&c, at(2026, 1, 31, 0, 0)));
        assert!(open(&c, at(2026, 2, 1, 0, 0)));
        assert!(open(&c, at(2026, 2, 5, 23, 59)));
        assert!(!open(&c, at(2026, 2, 6, 0, 0)));
        assert!(!open(&c, at(2026, 2, 24, 0, 0)));
    }

    #[test]
    fn month_ranges_wrap_and_accept_numbers() {
        let c = cond("*,*,*,nov-feb");
        for m in [11, 12, 1, 2] {
            assert!(open(&c, at(2026, m, 10, 0, 0)), "month {m}");
        }
        for m in 3..=10 {
            assert!(!open(&c, at(2026, m, 10, 0, 0)), "month {m}");
        }
        assert_eq!(cond("*,*,*,11-2").months, c.months);
        assert_eq!(cond("*,*,*,dec").months, 1 << 11);
    }

    #[test]
    fn ampersand_lists_combine_items() {
        let c = cond("09:00-12:00&14:00-18:00,mon&wed&fri-sat,1&15,jan&jul");
        // 2026-01-01 is a Thursday: the 1st of January, but not a listed day.
        assert!(!open(&c, at(2026, 1, 1, 9, 0)));
        // 2026-07-15 is a Wednesday.
        assert!(open(&c, at(2026, 7, 15, 11, 0)));
        assert!(!open(&c, at(2026, 7, 15, 13, 0)));
        assert!(open(&c, at(2026, 7, 15, 14, 0)));
        // 2026-07-01 is a Wednesday too; 2026-07-02 is not the 1st/15th.
        assert!(open(&c, at(2026, 7, 1, 18, 0)));
        assert!(!open(&c, at(2026, 7, 2, 10, 0)));
        // 2026-08-15 is a Saturday but August is not listed.
        assert!(!open(&c, at(2026, 8, 15, 10, 0)));
    }

    #[test]
    fn every_field_must_hold_on_the_same_date() {
        // The 13th and a Friday: 2026-11-13 is one.
        let c = cond("*,fri,13,*");
        assert!(open(&c, at(2026, 11, 13, 8, 0)));
        assert!(!open(&c, at(2026, 11, 20, 8, 0)));
        assert!(!open(&c, at(2026, 12, 13, 8, 0)));
    }

    #[test]
    fn pipe_separators_like_old_asterisk() {
        assert_eq!(
            cond("09:00-17:00|mon-fri|*|*").with_spec(""),
            cond("09:00-17:00,mon-fri,*,*").with_spec("")
        );
    }

    #[test]
    fn mixed_separators_split_like_asterisk() {
        let both = cond("09:00-17:00|mon-fri,*|*");
        assert_eq!(
            both.with_spec(""),
            cond("09:00-17:00,mon-fri,*,*").with_spec("")
        );
    }

    #[test]
    fn a_zone_may_start_with_the_tz_variable_colon() {
        let c = cond("09:00-17:00,mon-fri,*,*,:America/New_York");
        assert_eq!(c.timezone(), Some(chrono_tz::America::New_York));
        assert_eq!(
            invalid("*,*,*,*,:Mars/Olympus"),
            TimeSpecError::UnknownTimezone(":Mars/Olympus".into())
        );
    }

    #[test]
    fn blanks_around_times_are_accepted_like_sscanf() {
        assert_eq!(
            cond("9:00 - 17:0,*,*,*").minutes,
            cond("09:00-17:00,*,*,*").minutes
        );
    }

    #[test]
    fn fifth_field_is_the_condition_time_zone() {
        let c = cond("09:00-17:00,mon-fri,*,*,America/New_York");
        assert_eq!(c.timezone(), Some(chrono_tz::America::New_York));
        // 2026-11-30 14:00 UTC is 09:00 in New York (EST).
        assert!(c.matches(at(2026, 11, 30, 14, 0), chrono_tz::Europe::Paris));
        assert!(!c.matches(at(2026, 11, 30, 13, 59), chrono_tz::Europe::Paris));
        let no_zone = cond("09:00-17:00,mon-fri,*,*,");
        assert_eq!(no_zone.timezone(), None);
    }

    fn invalid(spec: &str) -> TimeSpecError {
        match spec.parse::<TimeCondition>() {
            Ok(c) => panic!("{spec} was accepted: {c:?}"),
            Err(e) => e,
        }
    }

    fn assert_invalid_item(spec: &str, field: Field, item: &str, element: &str) {
        let err = invalid(spec);
        assert_eq!(
            err,
            TimeSpecError::InvalidItem {
                field,
                item: item.into(),
                element: element.into()
            },
            "{spec}"
        );
        let msg = err.to_string();
        assert!(
            msg.contains(&format!("`{item}`")) || item.is_empty(),
            "{msg}"
        );
    }

    #[test]
    fn items_asterisk_would_skip_are_rejected_by_name() {
        assert_invalid_item("25:00-26:00,*,*,*", Field::Time, "25:00", "25:00-26:00");
        assert_invalid_item("09:00-24:00,*,*,*", Field::Time, "24:00", "09:00-24:00");
        assert_invalid_item("09:60,*,*,*", Field::Time, "09:60", "09:60");
        assert_invalid_item("0900-1700,*,*,*", Field::Time, "0900", "0900-1700");
        assert_invalid_item("09:00-,*,*,*", Field::Time, "", "09:00-");
        assert_invalid_item("09:00-17:00&,*,*,*", Field::Time, "", "");
        assert_invalid_item("*&09:00,*,*,*", Field::Time, "*", "*");
        assert_invalid_item("*,mon-funday,*,*", Field::Weekday, "funday", "mon-funday");
        assert_invalid_item("*,monday,*,*", Field::Weekday, "monday", "monday");
        assert_invalid_item("*,0,*,*", Field::Weekday, "0", "0");
        assert_invalid_item("*,8,*,*", Field::Weekday, "8", "8");
        assert_invalid_item("*, mon,*,*", Field::Weekday, " mon", " mon");
        assert_invalid_item(
            "*,mon-wed-fri,*,*",
            Field::Weekday,
            "wed-fri",
            "mon-wed-fri",
        );
        assert_invalid_item("*,*,32,*", Field::MonthDay, "32", "32");
        assert_invalid_item("*,*,0,*", Field::MonthDay, "0", "0");
        assert_invalid_item("*,*,1-32,*", Field::MonthDay, "32", "1-32");
        assert_invalid_item("*,*,123,*", Field::MonthDay, "123", "123");
        assert_invalid_item("*,*,*,13", Field::Month, "13", "13");
        assert_invalid_item("*,*,*,january", Field::Month, "january", "january");
        assert_invalid_item("*,*,mon,*", Field::MonthDay, "mon", "mon");
        assert_invalid_item("*,sat&&sun,*,*", Field::Weekday, "", "");
    }

    #[test]
    fn structural_errors_are_named() {
        assert_eq!(
            invalid("*,*,*,*,Mars/Olympus"),
            TimeSpecError::UnknownTimezone("Mars/Olympus".into())
        );
        assert!(invalid("*,*,*,*,Mars/Olympus")
            .to_string()
            .contains("Mars/Olympus"));
        assert!(matches!(
            invalid("*,*,*,*,UTC,x"),
            TimeSpecError::TooManyFields { count: 6, .. }
        ));
        assert!(matches!(
            invalid("*|*,*,*,UTC"),
            TimeSpecError::TimezoneWithPipe(_)
        ));
        assert!(matches!(
            invalid("*|*|*|*|UTC"),
            TimeSpecError::TimezoneWithPipe(_)
        ));
        assert_eq!(invalid("   "), TimeSpecError::Empty);
    }

    #[test]
    fn display_is_the_spec() {
        assert_eq!(
            cond(" 09:00-17:00,mon-fri,*,* ").to_string(),
            "09:00-17:00,mon-fri,*,*"
        );
    }

    #[test]
    fn first_match_jumps_to_the_next_allowed_minute() {
        let c = cond("09:00-17:00,mon-fri,*,*");
        let limit = at(2027, 1, 1, 0, 0);
        // Saturday 2026-11-28 10:00 -> Monday 09:00.
        assert_eq!(
            c.first_match_from(at(2026, 11, 28, 10, 0), limit, Tz::UTC),
            Some(at(2026, 11, 30, 9, 0))
        );
        // Inside an open minute: the instant itself.
        let t = Utc.with_ymd_and_hms(2026, 11, 30, 17, 0, 30).unwrap();
        assert_eq!(c.first_match_from(t, limit, Tz::UTC), Some(t));
        // Never: 30 February.
        let never = cond("*,*,30,feb");
        assert_eq!(
            never.first_match_from(at(2026, 1, 1, 0, 0), limit, Tz::UTC),
            None
        );
    }

    #[test]
    fn minute_mask_search() {
        let mut m = MinuteMask::empty();
        assert_eq!(m.next_from(0, true), None);
        assert_eq!(m.next_from(5, false), Some(5));
        m.set(1439);
        m.set(64);
        assert_eq!(m.next_from(0, true), Some(64));
        assert_eq!(m.next_from(64, true), Some(64));
        assert_eq!(m.next_from(65, true), Some(1439));
        assert_eq!(m.next_from(1440, true), None);
        assert_eq!(m.next_from(64, false), Some(65));
        assert_eq!(m.next_from(1439, false), None);
        let full = MinuteMask::full();
        assert_eq!(full.next_from(1439, true), Some(1439));
        // The inverted last word's bits past the day are not minutes.
        assert_eq!(full.next_from(0, false), None);
    }

    #[test]
    fn first_mismatch_is_where_the_condition_stops() {
        let limit = at(2027, 1, 1, 0, 0);
        let day = cond("09:00-17:59,mon-fri,*,*");
        // Friday 2026-11-27 10:00 → 18:00 the same day.
        assert_eq!(
            day.first_mismatch_from(at(2026, 11, 27, 10, 0), limit, Tz::UTC),
            Some(at(2026, 11, 27, 18, 0))
        );
        // Already not holding: at once.
        let sat = at(2026, 11, 28, 10, 0);
        assert_eq!(day.first_mismatch_from(sat, limit, Tz::UTC), Some(sat));
        // Holding across midnight until the weekday field stops it.
        let weekend = cond("*,sat-sun,*,*");
        assert_eq!(
            weekend.first_mismatch_from(sat, limit, Tz::UTC),
            Some(at(2026, 11, 30, 0, 0))
        );
        assert_eq!(
            cond("*,*,*,*").first_mismatch_from(sat, limit, Tz::UTC),
            None
        );
    }

    impl TimeCondition {
        fn with_spec(mut self, spec: &str) -> Self {
            spec.clone_into(&mut self.spec);
            self
        }
    }
}
