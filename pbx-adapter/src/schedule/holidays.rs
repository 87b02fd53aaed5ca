//! Holidays: stretches of time when the channel is closed whatever the open
//! rules say.
//!
//! Every holiday, whether written inline in the config (`2026-12-25`,
//! `2026-12-24..2026-12-26 Christmas`) or read from an iCalendar file, is
//! turned into a half-open UTC interval once, when the schedule is built.
//! Whole days are taken in the schedule's time zone, from the first instant
//! of the first day to the first instant of the day after the last, so a day
//! on which the clocks change is 23 or 25 hours long, as it should be.
//! Lookups are then a binary search over merged intervals, which keeps
//! `is_open` and `next_open` cheap.

use std::fmt;

use chrono::{DateTime, NaiveDate, Utc};
use chrono_tz::Tz;

use super::tzutil::local_day_start;

/// One closed stretch, `[start, end)`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Holiday {
    pub start: DateTime<Utc>,
    pub end: DateTime<Utc>,
    /// What the admin will recognise: the dates or event as written, its
    /// name, and where it came from.
    pub label: String,
}

impl Holiday {
    /// A holiday covering the local days `first..=last` in `tz`.
    pub fn days(tz: Tz, first: NaiveDate, last: NaiveDate, label: String) -> Holiday {
        let after = last.succ_opt().unwrap_or(last);
        Holiday {
            start: local_day_start(tz, first),
            end: local_day_start(tz, after),
            label,
        }
    }

    pub fn contains(&self, at: DateTime<Utc>) -> bool {
        self.start <= at && at < self.end
    }
}

impl fmt::Display for Holiday {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.label)
    }
}

/// Why an inline holiday was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HolidayError {
    #[error("`{0}` is not a date; expected YYYY-MM-DD")]
    NotADate(String),
    #[error("range ends on {end}, before it starts on {start}")]
    Backwards { start: NaiveDate, end: NaiveDate },
}

/// Strict `YYYY-MM-DD` (chrono's parser would also take `2026-1-5`).
pub(crate) fn parse_iso_date(s: &str) -> Result<NaiveDate, HolidayError> {
    let b = s.as_bytes();
    let shape_ok = b.len() == 10
        && b.iter().enumerate().all(|(i, c)| match i {
            4 | 7 => *c == b'-',
            _ => c.is_ascii_digit(),
        });
    let num = |r: std::ops::Range<usize>| s[r].parse::<u32>().ok();
    shape_ok
        .then(|| {
            let year = i32::try_from(num(0..4)?).ok()?;
            NaiveDate::from_ymd_opt(year, num(5..7)?, num(8..10)?)
        })
        .flatten()
        .ok_or_else(|| HolidayError::NotADate(s.to_owned()))
}

/// An inline holiday: `YYYY-MM-DD` or `YYYY-MM-DD..YYYY-MM-DD` (inclusive),
/// optionally followed by blanks and a name.
pub(crate) fn parse_inline(item: &str, tz: Tz) -> Result<Holiday, HolidayError> {
    let item = item.trim();
    let (dates, name) = match item.split_once(char::is_whitespace) {
        Some((dates, name)) => (dates, Some(name.trim())),
        None => (item, None),
    };
    let (first, last) = match dates.split_once("..") {
        Some((a, b)) => (parse_iso_date(a)?, parse_iso_date(b)?),
        None => {
            let d = parse_iso_date(dates)?;
            (d, d)
        }
    };
    if last < first {
        return Err(HolidayError::Backwards {
            start: first,
            end: last,
        });
    }
    let label = match name {
        Some(name) => format!("{name} ({dates})"),
        None => dates.to_owned(),
    };
    Ok(Holiday::days(tz, first, last, label))
}

/// All holidays of a schedule, ready for lookups.
#[derive(Debug, Clone, Default)]
pub(crate) struct HolidaySet {
    /// Sorted by start, possibly overlapping; used to name the holiday.
    items: Vec<Holiday>,
    /// Sorted, disjoint and non-adjacent; used for the open/closed answer.
    merged: Vec<(DateTime<Utc>, DateTime<Utc>)>,
}

impl HolidaySet {
    pub(crate) fn new(mut items: Vec<Holiday>) -> HolidaySet {
        items.retain(|h| h.start < h.end);
        items.sort_by_key(|h| (h.start, h.end));
        let mut merged: Vec<(DateTime<Utc>, DateTime<Utc>)> = Vec::new();
        for h in &items {
            match merged.last_mut() {
                Some((_, end)) if h.start <= *end => *end = (*end).max(h.end),
                _ => merged.push((h.start, h.end)),
            }
        }
        HolidaySet { items, merged }
    }

    /// If `at` falls in a holiday, the instant the closed stretch (all
    /// overlapping or back-to-back holidays together) ends.
    pub(crate) fn closed_until(&self, at: DateTime<Utc>) -> Option<DateTime<Utc>> {
        let i = self.merged.partition_point(|(start, _)| *start <= at);
        let (_, end) = *self.merged.get(i.checked_sub(1)?)?;
        (at < end).then_some(end)
    }

    /// The start of the first closed stretch that begins after `at`.
    pub(crate) fn next_start_after(&self, at: DateTime<Utc>) -> Option<DateTime<Utc>> {
        let i = self.merged.partition_point(|(start, _)| *start <= at);
        self.merged.get(i).map(|(start, _)| *start)
    }

    /// The first holiday (by start) that covers `at`.
    pub(crate) fn find(&self, at: DateTime<Utc>) -> Option<&Holiday> {
        self.closed_until(at)?;
        let upto = self.items.partition_point(|h| h.start <= at);
        self.items[..upto].iter().find(|h| h.contains(at))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono_tz::Europe::Paris;

    fn utc(s: &str) -> DateTime<Utc> {
        s.parse().unwrap()
    }

    #[test]
    fn inline_date_is_a_local_day() {
        let h = parse_inline("2026-12-25", Paris).unwrap();
        assert_eq!(h.start, utc("2026-12-24T23:00:00Z"));
        assert_eq!(h.end, utc("2026-12-25T23:00:00Z"));
        assert_eq!(h.label, "2026-12-25");
    }

    #[test]
    fn inline_range_with_name() {
        let h = parse_inline(" 2026-12-24..2026-12-26  Christmas break ", Paris).unwrap();
        assert_eq!(h.start, utc("2026-12-23T23:00:00Z"));
        assert_eq!(h.end, utc("2026-12-26T23:00:00Z"));
        assert_eq!(h.label, "Christmas break (2026-12-24..2026-12-26)");
    }

    #[test]
    fn dst_days_are_23_and_25_hours() {
        let spring = parse_inline("2026-03-29", Paris).unwrap();
        assert_eq!(spring.end - spring.start, chrono::Duration::hours(23));
        let autumn = parse_inline("2026-10-25", Paris).unwrap();
        assert_eq!(autumn.end - autumn.start, chrono::Duration::hours(25));
    }

    #[test]
    fn bad_inline_holidays_are_named() {
        for bad in [
            "2026-13-01",
            "2026-02-30",
            "26-12-25",
            "2026-1-5",
            "christmas",
            "",
        ] {
            let err = parse_inline(bad, Paris).unwrap_err();
            assert!(
                err.to_string().contains(&format!("`{}`", bad.trim())),
                "{err}"
            );
        }
        assert_eq!(
            parse_inline("2026-12-26..2026-12-24", Paris).unwrap_err(),
            HolidayError::Backwards {
                start: NaiveDate::from_ymd_opt(2026, 12, 26).unwrap(),
                end: NaiveDate::from_ymd_opt(2026, 12, 24).unwrap()
            }
        );
    }

    #[test]
    fn set_merges_overlapping_and_adjacent_holidays() {
        let set = HolidaySet::new(vec![
            parse_inline("2026-12-26 Boxing Day", Paris).unwrap(),
            parse_inline("2026-12-25 Christmas", Paris).unwrap(),
            parse_inline("2027-01-01", Paris).unwrap(),
        ]);
        assert_eq!(
            set.closed_until(utc("2026-12-25T10:00:00Z")),
            Some(utc("2026-12-26T23:00:00Z"))
        );
        assert_eq!(
            set.find(utc("2026-12-26T10:00:00Z")).unwrap().label,
            "Boxing Day (2026-12-26)"
        );
        assert_eq!(set.closed_until(utc("2026-12-26T23:00:00Z")), None);
        assert_eq!(set.closed_until(utc("2026-12-24T22:59:59Z")), None);
        assert!(set.find(utc("2026-12-28T10:00:00Z")).is_none());
        assert_eq!(
            set.next_start_after(utc("2026-12-25T10:00:00Z")),
            Some(utc("2026-12-31T23:00:00Z"))
        );
        assert_eq!(set.next_start_after(utc("2027-01-01T10:00:00Z")), None);
    }
}
