//! Holidays from an iCalendar (RFC 5545) file.
//!
//! Admins usually already have their company's holidays as an `.ics` file
//! (exported from a groupware calendar or a public-holiday feed), so the
//! schedule can read one instead of having the dates typed again.
//!
//! This is a small reader of our own rather than a crate: we only need the
//! `VEVENT`s' start, end and name, we want errors that give the line number
//! and the property that is wrong, and we want time zones resolved through
//! chrono-tz with the same DST rules as the rest of the schedule. The
//! general-purpose crates bring a parser-combinator stack and a full RRULE
//! engine for that (and silently skip what they do not understand).
//!
//! What is read:
//! - line unfolding, parameters (quoted or not), `\,` `\;` `\n` escapes;
//! - `VEVENT` with `DTSTART` as a date (`;VALUE=DATE`, an all-day event,
//!   taken in the schedule's zone) or a date-time (UTC with `Z`, a `TZID`
//!   naming an IANA zone, or floating = the schedule's zone), and `DTEND` or
//!   `DURATION` (none: one day for a date, nothing for a date-time);
//! - yearly recurrences, as holiday feeds write them: `RRULE:FREQ=YEARLY`
//!   with `INTERVAL`, `COUNT`, `UNTIL`, one `BYMONTH`, and one `BYMONTHDAY`
//!   or one ordinal `BYDAY` (`4TH`, `-1MO`), expanded up to the year
//!   2199; `EXDATE`; `RECURRENCE-ID` overrides; `STATUS:CANCELLED`.
//!
//! Anything else that would change which days are closed (another `FREQ`,
//! `RDATE`, an unknown `TZID`) is refused with an error rather than guessed.
//! Other components (`VTIMEZONE`, `VTODO`, `VALARM`) are skipped.

use std::collections::HashMap;

use chrono::{DateTime, Datelike, Duration, NaiveDate, NaiveDateTime, NaiveTime, Utc, Weekday};
use chrono_tz::Tz;

use super::holidays::Holiday;
use super::tzutil::{local_day_start, resolve_local};

/// Recurrences are expanded up to this year.
const HORIZON_YEAR: i32 = 2199;

/// A problem in the file, with the (first physical) line it is on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct IcsError {
    pub line: usize,
    pub reason: String,
}

fn err<T>(line: usize, reason: impl Into<String>) -> Result<T, IcsError> {
    Err(IcsError {
        line,
        reason: reason.into(),
    })
}

struct ContentLine {
    line: usize,
    name: String,
    params: Vec<(String, String)>,
    value: String,
}

impl ContentLine {
    fn param(&self, name: &str) -> Option<&str> {
        self.params
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }
}

/// Joins folded lines; returns each logical line with its first line number.
fn unfold(text: &str) -> Vec<(usize, String)> {
    let mut out: Vec<(usize, String)> = Vec::new();
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    for (i, raw) in text.split('\n').enumerate() {
        let raw = raw.strip_suffix('\r').unwrap_or(raw);
        match (raw.strip_prefix([' ', '\t']), out.last_mut()) {
            (Some(rest), Some((_, last))) => last.push_str(rest),
            _ if raw.trim().is_empty() => {}
            _ => out.push((i + 1, raw.to_owned())),
        }
    }
    out
}

fn parse_content_line(line: usize, s: &str) -> Result<ContentLine, IcsError> {
    let name_end = s.find([';', ':']).unwrap_or(s.len());
    let name = s[..name_end].trim().to_ascii_uppercase();
    if name.is_empty() || name_end == s.len() {
        return err(line, format!("`{s}` is not an iCalendar content line"));
    }
    let mut params = Vec::new();
    let mut rest = &s[name_end..];
    while let Some(after) = rest.strip_prefix(';') {
        let Some(eq) = after.find('=') else {
            return err(line, format!("parameter without `=` in `{s}`"));
        };
        let pname = after[..eq].trim().to_ascii_uppercase();
        let mut value = String::new();
        let mut chars = after[eq + 1..].char_indices();
        let mut in_quotes = false;
        let mut consumed = after.len() - eq - 1;
        for (i, c) in chars.by_ref() {
            match c {
                '"' => in_quotes = !in_quotes,
                ';' | ':' if !in_quotes => {
                    consumed = i;
                    break;
                }
                _ => value.push(c),
            }
        }
        params.push((pname, value));
        rest = &after[eq + 1 + consumed..];
    }
    let Some(value) = rest.strip_prefix(':') else {
        return err(line, format!("missing `:` before the value in `{s}`"));
    };
    Ok(ContentLine {
        line,
        name,
        params,
        value: value.to_owned(),
    })
}

fn unescape_text(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut chars = s.chars();
    while let Some(c) = chars.next() {
        if c != '\\' {
            out.push(c);
            continue;
        }
        match chars.next() {
            Some('n' | 'N') => out.push(' '),
            Some(other) => out.push(other),
            None => out.push('\\'),
        }
    }
    out
}

/// Where a date-time's wall clock is.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Zone {
    Utc,
    Named(Tz),
    /// No zone given: the schedule's.
    Floating,
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum When {
    Date(NaiveDate),
    DateTime(NaiveDateTime, Zone),
}

impl When {
    fn date(&self) -> NaiveDate {
        match self {
            When::Date(d) => *d,
            When::DateTime(dt, _) => dt.date(),
        }
    }

    fn instant(&self, default_tz: Tz) -> DateTime<Utc> {
        match *self {
            When::Date(d) => local_day_start(default_tz, d),
            When::DateTime(local, Zone::Utc) => local.and_utc(),
            When::DateTime(local, Zone::Named(tz)) => resolve_local(tz, local),
            When::DateTime(local, Zone::Floating) => resolve_local(default_tz, local),
        }
    }

    fn on_date(&self, date: NaiveDate) -> When {
        match *self {
            When::Date(_) => When::Date(date),
            When::DateTime(dt, zone) => When::DateTime(date.and_time(dt.time()), zone),
        }
    }
}

/// `TZID` values are IANA names, sometimes behind a vendor prefix such as
/// `/mozilla.org/20050126_1/Europe/Paris`: try each suffix after a `/`.
fn lookup_tzid(tzid: &str) -> Option<Tz> {
    let mut candidate = tzid.trim();
    loop {
        if let Ok(tz) = candidate.parse::<Tz>() {
            return Some(tz);
        }
        candidate = &candidate[candidate.find('/')? + 1..];
    }
}

fn parse_date(s: &str) -> Option<NaiveDate> {
    if s.len() != 8 || !s.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    NaiveDate::from_ymd_opt(
        s[0..4].parse().ok()?,
        s[4..6].parse().ok()?,
        s[6..8].parse().ok()?,
    )
}

fn parse_time(s: &str) -> Option<NaiveTime> {
    if s.len() != 6 || !s.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    // A leap second (60) is read as 59.
    let sec: u32 = s[4..6].parse().ok()?;
    NaiveTime::from_hms_opt(s[0..2].parse().ok()?, s[2..4].parse().ok()?, sec.min(59))
}

/// One `DATE` or `DATE-TIME` value of a property.
fn parse_when_value(prop: &ContentLine, value: &str) -> Result<When, IcsError> {
    let bad = || {
        err(
            prop.line,
            format!(
                "{} value `{value}` is neither a date (YYYYMMDD) nor a date-time (YYYYMMDDTHHMMSS[Z])",
                prop.name
            ),
        )
    };
    let value = value.trim();
    let is_date = prop
        .param("VALUE")
        .is_some_and(|v| v.eq_ignore_ascii_case("DATE"))
        || (value.len() == 8 && !value.contains('T'));
    if is_date {
        return parse_date(value).map(When::Date).map_or_else(bad, Ok);
    }
    let Some((d, t)) = value.split_once('T') else {
        return bad();
    };
    let (t, utc) = match t.strip_suffix('Z') {
        Some(t) => (t, true),
        None => (t, false),
    };
    let (Some(date), Some(time)) = (parse_date(d), parse_time(t)) else {
        return bad();
    };
    let zone = match (utc, prop.param("TZID")) {
        (true, _) => Zone::Utc,
        (false, None) => Zone::Floating,
        (false, Some(tzid)) => match lookup_tzid(tzid) {
            Some(tz) => Zone::Named(tz),
            None => {
                return err(
                    prop.line,
                    format!(
                        "unknown TZID `{tzid}` in {} (expected an IANA zone name)",
                        prop.name
                    ),
                )
            }
        },
    };
    Ok(When::DateTime(date.and_time(time), zone))
}

fn parse_when(prop: &ContentLine) -> Result<When, IcsError> {
    parse_when_value(prop, &prop.value)
}

/// `DURATION`: `P1D`, `P2W`, `PT1H30M`, `P1DT12H`. Returns (days, seconds).
fn parse_duration(prop: &ContentLine) -> Result<(i64, i64), IcsError> {
    let bad = || {
        err(
            prop.line,
            format!(
                "`{}` is not a positive DURATION such as P1D or PT8H",
                prop.value
            ),
        )
    };
    let v = prop.value.trim();
    let Some(body) = v.strip_prefix('P').or_else(|| v.strip_prefix("+P")) else {
        return bad();
    };
    let (mut days, mut secs, mut in_time, mut number) = (0i64, 0i64, false, String::new());
    for c in body.chars() {
        if c.is_ascii_digit() {
            number.push(c);
            continue;
        }
        if c == 'T' && number.is_empty() && !in_time {
            in_time = true;
            continue;
        }
        let Ok(n) = number.parse::<i64>() else {
            return bad();
        };
        number.clear();
        match (c, in_time) {
            ('W', false) => days += 7 * n,
            ('D', false) => days += n,
            ('H', true) => secs += 3600 * n,
            ('M', true) => secs += 60 * n,
            ('S', true) => secs += n,
            _ => return bad(),
        }
    }
    if !number.is_empty() || (days == 0 && secs == 0 && body.is_empty()) {
        return bad();
    }
    Ok((days, secs))
}

/// The supported subset of `RRULE`: yearly on a fixed date or on the nth
/// weekday of a month.
#[derive(Debug, Clone)]
struct YearlyRule {
    interval: i32,
    count: Option<usize>,
    until: Option<When>,
    month: Option<u32>,
    monthday: Option<i32>,
    nth_weekday: Option<(i32, Weekday)>,
}

fn parse_rrule(prop: &ContentLine) -> Result<YearlyRule, IcsError> {
    let unsupported = |what: &str| {
        err(
            prop.line,
            format!(
                "RRULE `{}`: {what}; holiday files support FREQ=YEARLY with INTERVAL, COUNT, UNTIL, one BYMONTH and one BYMONTHDAY or ordinal BYDAY",
                prop.value
            ),
        )
    };
    let mut rule = YearlyRule {
        interval: 1,
        count: None,
        until: None,
        month: None,
        monthday: None,
        nth_weekday: None,
    };
    let mut freq = None;
    for part in prop.value.split(';').filter(|p| !p.is_empty()) {
        let Some((key, value)) = part.split_once('=') else {
            return unsupported(&format!("`{part}` is not KEY=VALUE"));
        };
        let number = |v: &str| v.parse::<i64>().ok();
        match key.to_ascii_uppercase().as_str() {
            "FREQ" => freq = Some(value.to_ascii_uppercase()),
            "INTERVAL" => match number(value) {
                Some(n) if (1..=1000).contains(&n) => rule.interval = n as i32,
                _ => return unsupported(&format!("bad INTERVAL `{value}`")),
            },
            "COUNT" => match number(value) {
                Some(n) if n >= 1 => rule.count = Some(n as usize),
                _ => return unsupported(&format!("bad COUNT `{value}`")),
            },
            "UNTIL" => rule.until = Some(parse_when_value(prop, value)?),
            "BYMONTH" => match number(value) {
                Some(n) if (1..=12).contains(&n) => rule.month = Some(n as u32),
                _ => return unsupported(&format!("BYMONTH `{value}` is not one month")),
            },
            "BYMONTHDAY" => match number(value) {
                Some(n) if n != 0 && (-31..=31).contains(&n) => rule.monthday = Some(n as i32),
                _ => return unsupported(&format!("BYMONTHDAY `{value}` is not one day")),
            },
            "BYDAY" => match parse_ordinal_weekday(value) {
                Some(day) => rule.nth_weekday = Some(day),
                None => {
                    return unsupported(&format!(
                        "BYDAY `{value}` is not one ordinal weekday like 4TH or -1MO"
                    ))
                }
            },
            "WKST" => {}
            other => return unsupported(&format!("{other} is not supported")),
        }
    }
    match freq.as_deref() {
        Some("YEARLY") => {}
        Some(other) => return unsupported(&format!("FREQ={other} is not supported")),
        None => return unsupported("FREQ is missing"),
    }
    if rule.monthday.is_some() && rule.nth_weekday.is_some() {
        return unsupported("BYMONTHDAY and BYDAY together are not supported");
    }
    if rule.nth_weekday.is_some() && rule.month.is_none() {
        return unsupported("BYDAY needs a BYMONTH (the nth weekday of the year is not supported)");
    }
    Ok(rule)
}

fn parse_ordinal_weekday(v: &str) -> Option<(i32, Weekday)> {
    if v.len() < 3 {
        return None;
    }
    let (n, day) = v.split_at(v.len() - 2);
    let n: i32 = n.strip_prefix('+').unwrap_or(n).parse().ok()?;
    let day = match day.to_ascii_uppercase().as_str() {
        "MO" => Weekday::Mon,
        "TU" => Weekday::Tue,
        "WE" => Weekday::Wed,
        "TH" => Weekday::Thu,
        "FR" => Weekday::Fri,
        "SA" => Weekday::Sat,
        "SU" => Weekday::Sun,
        _ => return None,
    };
    (n != 0 && (-5..=5).contains(&n)).then_some((n, day))
}

fn days_in_month(year: i32, month: u32) -> Option<u32> {
    let first = NaiveDate::from_ymd_opt(year, month, 1)?;
    let next = if month == 12 {
        NaiveDate::from_ymd_opt(year + 1, 1, 1)?
    } else {
        NaiveDate::from_ymd_opt(year, month + 1, 1)?
    };
    u32::try_from((next - first).num_days()).ok()
}

impl YearlyRule {
    /// The rule's date in `year`, if that year has one.
    fn date_in(&self, year: i32, start: NaiveDate) -> Option<NaiveDate> {
        let month = self.month.unwrap_or(start.month());
        let len = days_in_month(year, month)? as i32;
        if let Some((n, weekday)) = self.nth_weekday {
            let day = if n > 0 {
                let first = NaiveDate::from_ymd_opt(year, month, 1)?.weekday();
                let offset =
                    (weekday.num_days_from_monday() + 7 - first.num_days_from_monday()) % 7;
                1 + offset as i32 + 7 * (n - 1)
            } else {
                let last = NaiveDate::from_ymd_opt(year, month, len as u32)?.weekday();
                let back = (last.num_days_from_monday() + 7 - weekday.num_days_from_monday()) % 7;
                len - back as i32 - 7 * (-n - 1)
            };
            return (1..=len)
                .contains(&day)
                .then(|| NaiveDate::from_ymd_opt(year, month, day as u32))
                .flatten();
        }
        let day = match self.monthday {
            Some(d) if d < 0 => len + 1 + d,
            Some(d) => d,
            None => start.day() as i32,
        };
        (1..=len)
            .contains(&day)
            .then(|| NaiveDate::from_ymd_opt(year, month, day as u32))
            .flatten()
    }
}

#[derive(Default)]
struct Event {
    line: usize,
    uid: Option<String>,
    summary: Option<String>,
    start: Option<When>,
    end: Option<(usize, When)>,
    duration: Option<(usize, (i64, i64))>,
    rrule: Option<YearlyRule>,
    exdates: Vec<When>,
    recurrence_id: Option<When>,
    cancelled: bool,
}

fn read_events(text: &str) -> Result<Vec<Event>, IcsError> {
    let mut stack: Vec<String> = Vec::new();
    let mut events = Vec::new();
    let mut current: Option<Event> = None;
    let lines = unfold(text);
    let starts_as_calendar = lines
        .first()
        .is_some_and(|(_, l)| l.trim().eq_ignore_ascii_case("BEGIN:VCALENDAR"));
    if !starts_as_calendar {
        return err(
            1,
            "not an iCalendar file (it must start with BEGIN:VCALENDAR)",
        );
    }
    for (line, raw) in lines {
        let prop = parse_content_line(line, &raw)?;
        match prop.name.as_str() {
            "BEGIN" => {
                let component = prop.value.trim().to_ascii_uppercase();
                if component == "VEVENT" && stack.last().map(String::as_str) == Some("VCALENDAR") {
                    current = Some(Event {
                        line,
                        ..Event::default()
                    });
                }
                stack.push(component);
            }
            "END" => {
                let component = prop.value.trim().to_ascii_uppercase();
                if stack.pop().as_deref() != Some(component.as_str()) {
                    return err(
                        line,
                        format!("END:{component} does not close the open component"),
                    );
                }
                if component == "VEVENT" && stack.last().map(String::as_str) == Some("VCALENDAR") {
                    events.extend(current.take());
                }
            }
            _ if stack.last().map(String::as_str) != Some("VEVENT") => {}
            name => {
                let Some(event) = current.as_mut() else {
                    continue;
                };
                match name {
                    "UID" => event.uid = Some(prop.value.clone()),
                    "SUMMARY" => event.summary = Some(unescape_text(&prop.value)),
                    "DTSTART" => event.start = Some(parse_when(&prop)?),
                    "DTEND" => event.end = Some((line, parse_when(&prop)?)),
                    "DURATION" => event.duration = Some((line, parse_duration(&prop)?)),
                    "RRULE" => event.rrule = Some(parse_rrule(&prop)?),
                    "EXDATE" => {
                        for value in prop.value.split(',') {
                            event.exdates.push(parse_when_value(&prop, value)?);
                        }
                    }
                    "RECURRENCE-ID" => event.recurrence_id = Some(parse_when(&prop)?),
                    "STATUS" => {
                        event.cancelled = prop.value.trim().eq_ignore_ascii_case("CANCELLED")
                    }
                    "RDATE" | "EXRULE" => {
                        return err(line, format!("{name} is not supported in a holidays file"))
                    }
                    _ => {}
                }
            }
        }
    }
    if let Some(open) = stack.last() {
        return err(text.lines().count(), format!("missing END:{open}"));
    }
    Ok(events)
}

/// Reads the holidays of an iCalendar text. `source` names the file in the
/// holidays' labels; `default_tz` is the schedule's zone, used for all-day
/// and floating events.
pub(crate) fn parse_ics(
    text: &str,
    default_tz: Tz,
    source: &str,
) -> Result<Vec<Holiday>, IcsError> {
    let mut events = read_events(text)?;
    // An override (RECURRENCE-ID) replaces one occurrence of its series.
    let mut overridden: HashMap<String, Vec<When>> = HashMap::new();
    for e in &events {
        if let (Some(uid), Some(rid)) = (&e.uid, e.recurrence_id) {
            overridden.entry(uid.clone()).or_default().push(rid);
        }
    }
    for e in events.iter_mut().filter(|e| e.recurrence_id.is_none()) {
        if let Some(rids) = e.uid.as_ref().and_then(|uid| overridden.get(uid)) {
            e.exdates.extend(rids.iter().copied());
        }
    }
    let mut out = Vec::new();
    for e in events.iter().filter(|e| !e.cancelled) {
        expand_event(e, default_tz, source, &mut out)?;
    }
    Ok(out)
}

fn expand_event(e: &Event, tz: Tz, source: &str, out: &mut Vec<Holiday>) -> Result<(), IcsError> {
    let Some(start) = e.start else {
        return err(e.line, "VEVENT without DTSTART");
    };
    let name = e.summary.as_deref().unwrap_or("(untitled event)");
    // Length of each occurrence: whole days for dates, seconds otherwise.
    enum Length {
        Days(i64),
        Exact(Duration),
    }
    let length = match (start, e.end, e.duration) {
        (When::Date(_), Some((_, When::Date(end))), _) => {
            Length::Days((end - start.date()).num_days())
        }
        (When::Date(_), Some((line, When::DateTime(..))), _) => {
            return err(line, "DTEND is a date-time but DTSTART is a date")
        }
        (When::DateTime(..), Some((line, When::Date(_))), _) => {
            return err(line, "DTEND is a date but DTSTART is a date-time")
        }
        (When::DateTime(..), Some((_, end)), _) => {
            Length::Exact(end.instant(tz) - start.instant(tz))
        }
        (When::Date(_), None, Some((line, (days, secs)))) => {
            if secs != 0 {
                return err(line, "an all-day event's DURATION must be whole days");
            }
            Length::Days(days)
        }
        (When::Date(_), None, None) => Length::Days(1),
        (When::DateTime(..), None, Some((_, (days, secs)))) => {
            Length::Exact(Duration::days(days) + Duration::seconds(secs))
        }
        (When::DateTime(..), None, None) => Length::Exact(Duration::zero()),
    };
    let length = match length {
        Length::Days(d) if d < 0 => {
            return err(e.end.map_or(e.line, |(l, _)| l), "DTEND is before DTSTART")
        }
        // Some producers write DTEND equal to DTSTART for a one-day event.
        Length::Days(0) => Length::Days(1),
        Length::Exact(d) if d < Duration::zero() => {
            return err(e.end.map_or(e.line, |(l, _)| l), "DTEND is before DTSTART")
        }
        other => other,
    };
    let mut push = |occurrence: When| {
        let (start, end, label) = match (occurrence, &length) {
            (When::Date(d), Length::Days(n)) => {
                let last = d + Duration::days(n - 1);
                let dates = if *n == 1 {
                    d.to_string()
                } else {
                    format!("{d}..{last}")
                };
                let h = Holiday::days(tz, d, last, String::new());
                (h.start, h.end, dates)
            }
            (w, Length::Exact(len)) => {
                let s = w.instant(tz);
                let when = match w {
                    When::DateTime(dt, Zone::Utc) => format!("{} UTC", dt.format("%Y-%m-%d %H:%M")),
                    When::DateTime(dt, Zone::Named(z)) => {
                        format!("{} {z}", dt.format("%Y-%m-%d %H:%M"))
                    }
                    When::DateTime(dt, Zone::Floating) => dt.format("%Y-%m-%d %H:%M").to_string(),
                    When::Date(d) => d.to_string(),
                };
                (s, s + *len, when)
            }
            // Date occurrences always come with day lengths and vice versa.
            (When::DateTime(..), Length::Days(_)) => return,
        };
        out.push(Holiday {
            start,
            end,
            label: format!("{name} ({label}, {source})"),
        });
    };
    let excluded = |w: When| {
        e.exdates.iter().any(|x| match (x, w) {
            (When::Date(d), _) => *d == w.date(),
            (x, w) => x.instant(tz) == w.instant(tz),
        })
    };
    let Some(rule) = &e.rrule else {
        if !excluded(start) {
            push(start);
        }
        return Ok(());
    };
    let before_until = |w: When| match (rule.until, w) {
        (None, _) => true,
        (Some(When::Date(u)), w) => w.date() <= u,
        (Some(u @ When::DateTime(_, zone)), w) => {
            let u = match (zone, w) {
                // A floating UNTIL is in the event's own zone.
                (Zone::Floating, When::DateTime(_, event_zone)) => match u {
                    When::DateTime(dt, _) => When::DateTime(dt, event_zone),
                    other => other,
                },
                _ => u,
            };
            w.instant(tz) <= u.instant(tz)
        }
    };
    let first_date = start.date();
    let mut produced = 0usize;
    let mut year = first_date.year();
    while year <= HORIZON_YEAR {
        let mut dates = Vec::with_capacity(2);
        if year == first_date.year() {
            dates.push(first_date);
        }
        if let Some(d) = rule.date_in(year, first_date) {
            if d > first_date {
                dates.push(d);
            }
        }
        for d in dates {
            let occurrence = start.on_date(d);
            if !before_until(occurrence) || rule.count.is_some_and(|c| produced >= c) {
                return Ok(());
            }
            produced += 1;
            if !excluded(occurrence) {
                push(occurrence);
            }
        }
        year += rule.interval;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono_tz::Europe::Paris;

    fn utc(s: &str) -> DateTime<Utc> {
        s.parse().unwrap()
    }

    fn cal(body: &str) -> String {
        format!("BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//test//EN\r\n{body}END:VCALENDAR\r\n")
    }

    fn parse(body: &str) -> Vec<Holiday> {
        parse_ics(&cal(body), Paris, "test.ics").unwrap_or_else(|e| panic!("{e:?}"))
    }

    fn parse_err(body: &str) -> IcsError {
        match parse_ics(&cal(body), Paris, "test.ics") {
            Ok(h) => panic!("accepted: {h:?}"),
            Err(e) => e,
        }
    }

    #[test]
    fn all_day_event_is_a_local_day() {
        let h = parse(
            "BEGIN:VEVENT\r\nUID:1\r\nDTSTART;VALUE=DATE:20261225\r\nDTEND;VALUE=DATE:20261226\r\nSUMMARY:Christmas\\, Day\r\nEND:VEVENT\r\n",
        );
        assert_eq!(h.len(), 1);
        assert_eq!(h[0].start, utc("2026-12-24T23:00:00Z"));
        assert_eq!(h[0].end, utc("2026-12-25T23:00:00Z"));
        assert_eq!(h[0].label, "Christmas, Day (2026-12-25, test.ics)");
    }

    #[test]
    fn multi_day_and_missing_end() {
        let h = parse(
            "BEGIN:VEVENT\r\nDTSTART;VALUE=DATE:20260803\r\nDTEND;VALUE=DATE:20260815\r\nSUMMARY:Summer closure\r\nEND:VEVENT\r\n\
             BEGIN:VEVENT\r\nDTSTART;VALUE=DATE:20260501\r\nEND:VEVENT\r\n\
             BEGIN:VEVENT\r\nDTSTART;VALUE=DATE:20260714\r\nDURATION:P2D\r\nEND:VEVENT\r\n",
        );
        assert_eq!(h[0].end - h[0].start, Duration::days(12));
        assert!(h[0].label.contains("2026-08-03..2026-08-14"));
        assert_eq!(h[1].start, utc("2026-04-30T22:00:00Z"));
        assert_eq!(h[1].end, utc("2026-05-01T22:00:00Z"));
        assert_eq!(h[2].end - h[2].start, Duration::days(2));
    }

    #[test]
    fn timed_events_in_utc_named_and_floating_zones() {
        let h = parse(
            "BEGIN:VEVENT\r\nDTSTART:20261224T120000Z\r\nDTEND:20261224T170000Z\r\nEND:VEVENT\r\n\
             BEGIN:VEVENT\r\nDTSTART;TZID=America/New_York:20261231T140000\r\nDURATION:PT4H\r\nEND:VEVENT\r\n\
             BEGIN:VEVENT\r\nDTSTART;TZID=\"/mozilla.org/20050126_1/Europe/Paris\":20260601T090000\r\nDTEND;TZID=Europe/Paris:20260601T100000\r\nEND:VEVENT\r\n\
             BEGIN:VEVENT\r\nDTSTART:20260701T090000\r\nDTEND:20260701T1000\r\n 00\r\nEND:VEVENT\r\n",
        );
        assert_eq!(
            (h[0].start, h[0].end),
            (utc("2026-12-24T12:00:00Z"), utc("2026-12-24T17:00:00Z"))
        );
        assert_eq!(
            (h[1].start, h[1].end),
            (utc("2026-12-31T19:00:00Z"), utc("2026-12-31T23:00:00Z"))
        );
        assert_eq!(
            h[1].label,
            "(untitled event) (2026-12-31 14:00 America/New_York, test.ics)"
        );
        assert_eq!(
            (h[2].start, h[2].end),
            (utc("2026-06-01T07:00:00Z"), utc("2026-06-01T08:00:00Z"))
        );
        // Floating: the schedule's zone; the DTEND was folded over two lines.
        assert_eq!(
            (h[3].start, h[3].end),
            (utc("2026-07-01T07:00:00Z"), utc("2026-07-01T08:00:00Z"))
        );
    }

    #[test]
    fn yearly_rules_with_count_until_exdate_and_override() {
        let h = parse(
            "BEGIN:VEVENT\r\nUID:xmas\r\nDTSTART;VALUE=DATE:20241225\r\nRRULE:FREQ=YEARLY;COUNT=4\r\nEXDATE;VALUE=DATE:20251225\r\nSUMMARY:Christmas\r\nEND:VEVENT\r\n",
        );
        let days: Vec<String> = h.iter().map(|h| h.label.clone()).collect();
        assert_eq!(
            days,
            [
                "Christmas (2024-12-25, test.ics)",
                "Christmas (2026-12-25, test.ics)",
                "Christmas (2027-12-25, test.ics)"
            ]
        );
        let h = parse(
            "BEGIN:VEVENT\r\nUID:tg\r\nDTSTART;VALUE=DATE:20241128\r\nRRULE:FREQ=YEARLY;BYMONTH=11;BYDAY=4TH;UNTIL=20271231\r\nSUMMARY:Thanksgiving\r\nEND:VEVENT\r\n\
             BEGIN:VEVENT\r\nUID:tg\r\nRECURRENCE-ID;VALUE=DATE:20261126\r\nSTATUS:CANCELLED\r\nDTSTART;VALUE=DATE:20261126\r\nEND:VEVENT\r\n",
        );
        let labels: Vec<String> = h.iter().map(|h| h.label.clone()).collect();
        assert_eq!(
            labels,
            [
                "Thanksgiving (2024-11-28, test.ics)",
                "Thanksgiving (2025-11-27, test.ics)",
                "Thanksgiving (2027-11-25, test.ics)"
            ]
        );
        let h = parse(
            "BEGIN:VEVENT\r\nDTSTART;VALUE=DATE:20260525\r\nRRULE:FREQ=YEARLY;BYMONTH=5;BYDAY=-1MO;INTERVAL=2;COUNT=2\r\nEND:VEVENT\r\n",
        );
        let labels: Vec<&str> = h.iter().map(|h| h.label.as_str()).collect();
        assert_eq!(
            labels,
            [
                "(untitled event) (2026-05-25, test.ics)",
                "(untitled event) (2028-05-29, test.ics)"
            ]
        );
    }

    #[test]
    fn open_ended_yearly_rule_reaches_the_horizon() {
        let h = parse(
            "BEGIN:VEVENT\r\nDTSTART;VALUE=DATE:20000101\r\nRRULE:FREQ=YEARLY\r\nEND:VEVENT\r\n",
        );
        assert_eq!(h.len(), 200);
        let leap = parse("BEGIN:VEVENT\r\nDTSTART;VALUE=DATE:20240229\r\nRRULE:FREQ=YEARLY;COUNT=2\r\nEND:VEVENT\r\n");
        assert!(leap[1].label.contains("2028-02-29"), "{leap:?}");
    }

    #[test]
    fn components_other_than_vevent_are_skipped() {
        let h = parse(
            "BEGIN:VTIMEZONE\r\nTZID:Europe/Paris\r\nBEGIN:STANDARD\r\nDTSTART:19701025T030000\r\nEND:STANDARD\r\nEND:VTIMEZONE\r\n\
             BEGIN:VEVENT\r\nDTSTART;VALUE=DATE:20261111\r\nBEGIN:VALARM\r\nDTSTART:20200101T000000Z\r\nEND:VALARM\r\nEND:VEVENT\r\n",
        );
        assert_eq!(h.len(), 1);
        assert_eq!(h[0].start, utc("2026-11-10T23:00:00Z"));
    }

    #[test]
    fn errors_name_the_line_and_the_item() {
        let e = parse_err(
            "BEGIN:VEVENT\r\nDTSTART;TZID=Mars/Olympus:20261224T120000\r\nEND:VEVENT\r\n",
        );
        assert_eq!(e.line, 5);
        assert!(e.reason.contains("Mars/Olympus"), "{e:?}");
        let e = parse_err("BEGIN:VEVENT\r\nDTSTART;VALUE=DATE:20261232\r\nEND:VEVENT\r\n");
        assert!(e.reason.contains("20261232"), "{e:?}");
        let e = parse_err(
            "BEGIN:VEVENT\r\nDTSTART;VALUE=DATE:20261224\r\nRRULE:FREQ=WEEKLY\r\nEND:VEVENT\r\n",
        );
        assert!(e.reason.contains("FREQ=WEEKLY"), "{e:?}");
        let e = parse_err("BEGIN:VEVENT\r\nDTSTART;VALUE=DATE:20261224\r\nDTEND;VALUE=DATE:20261220\r\nEND:VEVENT\r\n");
        assert!(e.reason.contains("before"), "{e:?}");
        let e = parse_err(
            "BEGIN:VEVENT\r\nDTSTART;VALUE=DATE:20261224\r\nRRULE:FREQ=YEARLY;BYDAY=2MO\r\nEND:VEVENT\r\n",
        );
        assert!(e.reason.contains("BYDAY needs a BYMONTH"), "{e:?}");
        let e = parse_err("BEGIN:VEVENT\r\nSUMMARY:x\r\nEND:VEVENT\r\n");
        assert!(e.reason.contains("DTSTART"), "{e:?}");
        let e = parse_err("BEGIN:VEVENT\r\nDTSTART;VALUE=DATE:20261224\r\n");
        assert!(
            e.reason.contains("END:VEVENT") || e.reason.contains("END:"),
            "{e:?}"
        );
        let e = parse_err("BEGIN:VEVENT\r\nDTSTART;VALUE=DATE:20261224\r\nRDATE;VALUE=DATE:20271224\r\nEND:VEVENT\r\n");
        assert!(e.reason.contains("RDATE"), "{e:?}");
        assert!(parse_ics("hello", Paris, "x")
            .unwrap_err()
            .reason
            .contains("VCALENDAR"));
    }

    #[test]
    fn duration_forms() {
        let prop = |v: &str| ContentLine {
            line: 1,
            name: "DURATION".into(),
            params: vec![],
            value: v.into(),
        };
        assert_eq!(parse_duration(&prop("P1D")).unwrap(), (1, 0));
        assert_eq!(parse_duration(&prop("P2W")).unwrap(), (14, 0));
        assert_eq!(parse_duration(&prop("P1DT2H30M5S")).unwrap(), (1, 9005));
        assert_eq!(parse_duration(&prop("PT15M")).unwrap(), (0, 900));
        for bad in ["", "P", "-P1D", "P1H", "PT1D", "P1", "1D"] {
            assert!(parse_duration(&prop(bad)).is_err(), "{bad}");
        }
    }

    #[test]
    fn ordinal_weekdays() {
        let rule = |n, d| YearlyRule {
            interval: 1,
            count: None,
            until: None,
            month: Some(11),
            monthday: None,
            nth_weekday: Some((n, d)),
        };
        let start = NaiveDate::from_ymd_opt(2026, 1, 1).unwrap();
        assert_eq!(
            rule(4, Weekday::Thu).date_in(2026, start),
            NaiveDate::from_ymd_opt(2026, 11, 26)
        );
        assert_eq!(
            rule(-1, Weekday::Mon).date_in(2026, start),
            NaiveDate::from_ymd_opt(2026, 11, 30)
        );
        assert_eq!(
            rule(1, Weekday::Sun).date_in(2026, start),
            NaiveDate::from_ymd_opt(2026, 11, 1)
        );
        assert_eq!(rule(5, Weekday::Sat).date_in(2026, start), None);
    }
}
