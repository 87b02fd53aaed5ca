//! Small time-zone helpers shared by the schedule modules.
//!
//! They exist so that every place that turns a local wall-clock time into an
//! instant handles DST the same way: a local time repeated by a fall-back
//! change means its first occurrence, and a local time skipped by a
//! spring-forward change is read with the offset in force before the gap
//! (RFC 5545 §3.3.5), i.e. it lands just after the gap.

use chrono::{DateTime, Duration, LocalResult, NaiveDate, NaiveDateTime, Offset, TimeZone, Utc};
use chrono_tz::Tz;

/// The zone's UTC offset at an instant, in seconds east of UTC.
pub(crate) fn offset_seconds(tz: Tz, at: DateTime<Utc>) -> i64 {
    i64::from(
        tz.offset_from_utc_datetime(&at.naive_utc())
            .fix()
            .local_minus_utc(),
    )
}

/// The instant a local wall-clock time in `tz` denotes (see module docs).
pub(crate) fn resolve_local(tz: Tz, local: NaiveDateTime) -> DateTime<Utc> {
    match tz.from_local_datetime(&local) {
        LocalResult::Single(t) => t.with_timezone(&Utc),
        LocalResult::Ambiguous(first, _) => first.with_timezone(&Utc),
        LocalResult::None => {
            // In a gap: use the offset in force a day earlier, which is the
            // one before the gap (zones never change twice in a day).
            let before = (local - Duration::days(1)).and_utc();
            let offset = offset_seconds(tz, before);
            (local - Duration::seconds(offset)).and_utc()
        }
    }
}

/// The first instant of a local calendar day in `tz`. Where midnight itself
/// is skipped by a DST change, the day starts when the clocks resume.
pub(crate) fn local_day_start(tz: Tz, date: NaiveDate) -> DateTime<Utc> {
    let midnight = date.and_hms_opt(0, 0, 0).unwrap_or_default();
    match tz.from_local_datetime(&midnight) {
        LocalResult::Single(t) => t.with_timezone(&Utc),
        LocalResult::Ambiguous(first, _) => first.with_timezone(&Utc),
        LocalResult::None => first_valid_after(tz, midnight),
    }
}

/// The first instant whose local time is at or after `local`, which lies in
/// a gap: the DST change itself (minute steps; only used for the rare zones
/// that skip midnight).
fn first_valid_after(tz: Tz, local: NaiveDateTime) -> DateTime<Utc> {
    let mut probe = local;
    for _ in 0..(26 * 60) {
        probe += Duration::minutes(1);
        if let LocalResult::Single(t) | LocalResult::Ambiguous(t, _) =
            tz.from_local_datetime(&probe)
        {
            return t.with_timezone(&Utc);
        }
    }
    resolve_local(tz, local)
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono_tz::{America, Europe};

    fn utc(s: &str) -> DateTime<Utc> {
        s.parse().unwrap()
    }

    #[test]
    fn gap_resolves_after_the_gap() {
        // Paris 2026-03-29 02:30 does not exist; 01:00 UTC is the change.
        let local = NaiveDate::from_ymd_opt(2026, 3, 29)
            .unwrap()
            .and_hms_opt(2, 30, 0)
            .unwrap();
        assert_eq!(
            resolve_local(Europe::Paris, local),
            utc("2026-03-29T01:30:00Z")
        );
    }

    #[test]
    fn overlap_resolves_to_the_first_occurrence() {
        // New York 2026-11-01 01:30 happens twice; the first is EDT.
        let local = NaiveDate::from_ymd_opt(2026, 11, 1)
            .unwrap()
            .and_hms_opt(1, 30, 0)
            .unwrap();
        assert_eq!(
            resolve_local(America::New_York, local),
            utc("2026-11-01T05:30:00Z")
        );
    }

    #[test]
    fn day_start_when_midnight_is_skipped() {
        // Havana moved its clocks from 00:00 to 01:00 on 2026-03-08.
        let date = NaiveDate::from_ymd_opt(2026, 3, 8).unwrap();
        let start = local_day_start(chrono_tz::America::Havana, date);
        assert_eq!(start, utc("2026-03-08T05:00:00Z"));
        assert_eq!(
            local_day_start(Europe::Paris, date),
            utc("2026-03-07T23:00:00Z")
        );
    }
}
