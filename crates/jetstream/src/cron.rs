//! Message schedule patterns (nats-server 2.12's `Nats-Schedule`): `@at <RFC 3339>` (once),
//! `@every <Go duration>` (at least a second), the predefined `@yearly`, `@monthly`,
//! `@weekly`, `@daily`/`@midnight`, `@hourly`, and six-field cron expressions (`second
//! minute hour day-of-month month day-of-week`, with `*`/`?`, lists, ranges, steps and
//! month/day names), evaluated in UTC or a named time zone (`Nats-Schedule-Time-Zone`,
//! cron patterns only). As in cron, when both day fields are restricted a day matching
//! either one fires; when one is `*`, both must match.

use jiff::civil::{Date, DateTime, Time};
use jiff::tz::TimeZone;
use jiff::Timestamp;

use crate::time::SEC;

/// A parsed schedule.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Pattern {
    /// Once, at this time (Unix ns).
    At(i64),
    /// Repeating, this many nanoseconds apart.
    Every(i64),
    /// Repeating, when the fields match.
    Cron(Box<Cron>),
}

/// The fields of a cron pattern as bit sets, and the zone they are read in.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Cron {
    seconds: u64,
    minutes: u64,
    hours: u64,
    days: u64,
    months: u64,
    weekdays: u64,
    /// Whether either day field was `*` (then both must match).
    any_day_star: bool,
    zone: TimeZone,
}

/// How far ahead a cron pattern is searched before it is called impossible.
const SEARCH_YEARS: i16 = 5;

const MONTHS: [&str; 12] = [
    "jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec",
];
const WEEKDAYS: [&str; 7] = ["sun", "mon", "tue", "wed", "thu", "fri", "sat"];

/// Parses a pattern; `zone` is the `Nats-Schedule-Time-Zone` (only cron patterns take
/// one). `None`: not a valid pattern.
pub(crate) fn parse(pattern: &str, zone: Option<&TimeZone>) -> Option<Pattern> {
    if let Some(at) = pattern.strip_prefix("@at ") {
        if zone.is_some() {
            return None;
        }
        return crate::time::parse_rfc3339(at).map(Pattern::At);
    }
    if let Some(every) = pattern.strip_prefix("@every ") {
        if zone.is_some() {
            return None;
        }
        let d = crate::consumer::ackmsg::parse_go_duration(every)?;
        let ns = i64::try_from(d.as_nanos()).ok()?;
        return (ns >= SEC).then_some(Pattern::Every(ns));
    }
    let expanded = match pattern {
        "@yearly" | "@annually" => "0 0 0 1 1 *",
        "@monthly" => "0 0 0 1 * *",
        "@weekly" => "0 0 0 * * 0",
        "@daily" | "@midnight" => "0 0 0 * * *",
        "@hourly" => "0 0 * * * *",
        other => other,
    };
    let fields: Vec<&str> = expanded.split_whitespace().collect();
    let [s, mi, h, d, mo, w] = fields.as_slice() else {
        return None;
    };
    let (days, day_star) = field(d, 1, 31, &[])?;
    let (weekdays, weekday_star) = field(w, 0, 6, &WEEKDAYS)?;
    Some(Pattern::Cron(Box::new(Cron {
        seconds: field(s, 0, 59, &[])?.0,
        minutes: field(mi, 0, 59, &[])?.0,
        hours: field(h, 0, 23, &[])?.0,
        days,
        months: field(mo, 1, 12, &MONTHS)?.0,
        weekdays,
        any_day_star: day_star || weekday_star,
        zone: zone.cloned().unwrap_or(TimeZone::UTC),
    })))
}

/// One cron field: a comma-separated list of `*`, `?`, `n`, `a-b`, each with an optional
/// `/step` (`n/step` runs to the field's end). Names count from `lo`. Returns the bits
/// and whether the field was an unstepped `*`.
fn field(text: &str, lo: u32, hi: u32, names: &[&str]) -> Option<(u64, bool)> {
    let mut bits = 0u64;
    let mut star = false;
    for part in text.split(',') {
        let (range, step) = match part.split_once('/') {
            Some((r, s)) => (r, Some(s.parse::<u32>().ok().filter(|s| *s > 0)?)),
            None => (part, None),
        };
        let value = |v: &str| -> Option<u32> {
            let lower = v.to_ascii_lowercase();
            match names.iter().position(|n| *n == lower) {
                Some(i) => u32::try_from(i).ok().map(|i| i + lo),
                None => v.parse().ok(),
            }
        };
        let (start, end) = if range == "*" || range == "?" {
            star |= step.is_none_or(|s| s == 1);
            (lo, hi)
        } else {
            match range.split_once('-') {
                Some((a, b)) => (value(a)?, value(b)?),
                None if step.is_some() => (value(range)?, hi),
                None => {
                    let v = value(range)?;
                    (v, v)
                }
            }
        };
        if start < lo || end > hi || start > end {
            return None;
        }
        let step = step.unwrap_or(1);
        let mut v = start;
        while v <= end {
            bits |= 1 << v;
            v += step;
        }
    }
    Some((bits, star))
}

impl Cron {
    /// Whether the schedule fires on this day.
    fn day_matches(&self, d: Date) -> bool {
        let dom = self.days & (1 << d.day()) != 0;
        let dow = self.weekdays & (1 << d.weekday().to_sunday_zero_offset()) != 0;
        if self.any_day_star {
            dom && dow
        } else {
            dom || dow
        }
    }

    /// The first firing strictly after `after_ns`.
    fn next_after(&self, after_ns: i64) -> Option<i64> {
        let after = Timestamp::from_nanosecond(i128::from(after_ns)).ok()?;
        let start = after.to_zoned(self.zone.clone()).datetime();
        let last_year = start.year().checked_add(SEARCH_YEARS)?;
        let mut day = start.date();
        while day.year() <= last_year {
            if self.months & (1 << day.month()) != 0 && self.day_matches(day) {
                if let Some(t) = self.first_in_day(day, after) {
                    return Some(t);
                }
            }
            day = day.tomorrow().ok()?;
        }
        None
    }

    /// The first matching second of `day` after `after` (a civil time skipped by a DST
    /// change fires at the instant it maps to).
    fn first_in_day(&self, day: Date, after: Timestamp) -> Option<i64> {
        for h in (0..24).filter(|h| self.hours & (1 << h) != 0) {
            for m in (0..60).filter(|m| self.minutes & (1 << m) != 0) {
                for s in (0..60).filter(|s| self.seconds & (1 << s) != 0) {
                    let time = Time::new(h, m, s, 0).ok()?;
                    let at = DateTime::from_parts(day, time)
                        .to_zoned(self.zone.clone())
                        .ok()?
                        .timestamp();
                    if at > after {
                        return i64::try_from(at.as_nanosecond()).ok();
                    }
                }
            }
        }
        None
    }
}

impl Pattern {
    /// When a schedule stored at `ts` next fires, seen at `now` (Unix ns), and whether it
    /// repeats. A repeating schedule that would have fired in the past (a restart) fires
    /// once, one period from now, as nats-server does; `None`: never again.
    pub(crate) fn next(&self, ts: i64, now: i64) -> Option<(i64, bool)> {
        match self {
            Pattern::At(at) => Some((*at, false)),
            Pattern::Every(every) => {
                let round = |t: i64| (t + SEC / 2).div_euclid(SEC) * SEC;
                let mut next = round(ts).saturating_add(*every);
                if next < now {
                    next = round(now).saturating_add(*every);
                }
                Some((next, true))
            }
            Pattern::Cron(c) => {
                let next = c.next_after(ts)?;
                let next = if next < now { c.next_after(now)? } else { next };
                Some((next, true))
            }
        }
    }
}

/// The zone named by a `Nats-Schedule-Time-Zone` value (IANA names).
pub(crate) fn zone(name: &str) -> Option<TimeZone> {
    if name.is_empty() {
        return None;
    }
    TimeZone::get(name).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ns(s: &str) -> i64 {
        crate::time::parse_rfc3339(s).unwrap()
    }

    fn next(pattern: &str, zone: Option<&str>, after: &str) -> String {
        let z = zone.map(|z| super::zone(z).unwrap());
        let p = parse(pattern, z.as_ref()).unwrap_or_else(|| panic!("{pattern}"));
        let (t, _) = p.next(ns(after), ns(after)).unwrap();
        crate::time::rfc3339_nano(t)
    }

    #[test]
    fn at_and_every() {
        assert_eq!(
            parse("@at 2030-01-02T03:04:05Z", None),
            Some(Pattern::At(ns("2030-01-02T03:04:05Z")))
        );
        assert_eq!(parse("@every 1m30s", None), Some(Pattern::Every(90 * SEC)));
        assert_eq!(parse("@every 500ms", None), None);
        assert_eq!(parse("@at nope", None), None);
        let utc = TimeZone::UTC;
        assert_eq!(parse("@every 5s", Some(&utc)), None);
        // Rounded to the second, then one period on; skipped ahead when in the past.
        let p = parse("@every 10s", None).unwrap();
        let t = ns("2030-01-01T00:00:00.4Z");
        assert_eq!(p.next(t, t), Some((t - 400_000_000 + 10 * SEC, true)));
        let later = t + 3600 * SEC;
        assert_eq!(
            p.next(t, later),
            Some((later - 400_000_000 + 10 * SEC, true))
        );
    }

    #[test]
    fn cron_fields() {
        let at = "2030-01-01T00:00:00Z";
        assert_eq!(next("*/15 * * * * *", None, at), "2030-01-01T00:00:15Z");
        assert_eq!(next("0 30 9 * * mon-fri", None, at), "2030-01-01T09:30:00Z");
        assert_eq!(next("0 0 0 1 * *", None, at), "2030-02-01T00:00:00Z");
        assert_eq!(next("@weekly", None, at), "2030-01-06T00:00:00Z");
        assert_eq!(next("@hourly", None, at), "2030-01-01T01:00:00Z");
        assert_eq!(next("0 0 12 29 feb ?", None, at), "2032-02-29T12:00:00Z");
        // Both day fields restricted: either one (the 15th, or a Friday).
        assert_eq!(next("0 0 0 15 * 5", None, at), "2030-01-04T00:00:00Z");
        // In a zone: 09:00 in New York is 14:00 UTC in winter.
        assert_eq!(
            next("0 0 9 * * *", Some("America/New_York"), at),
            "2030-01-01T14:00:00Z"
        );
        for bad in [
            "* * * * *",
            "60 * * * * *",
            "0 0 0 0 * *",
            "a * * * * *",
            "*/0 * * * * *",
            "5-1 * * * * *",
        ] {
            assert_eq!(parse(bad, None), None, "{bad}");
        }
        assert!(parse("0 0 0 30 2 *", None)
            .unwrap()
            .next(ns(at), ns(at))
            .is_none());
        assert!(zone("Not/AZone").is_none());
    }

    /// The naive model: the first second after `after` whose UTC fields match.
    fn naive(c: &Cron, after: i64, limit: i64) -> Option<i64> {
        let mut t = (after.div_euclid(SEC) + 1) * SEC;
        while t <= after + limit {
            let z = Timestamp::from_nanosecond(i128::from(t))
                .unwrap()
                .to_zoned(TimeZone::UTC);
            let dt = z.datetime();
            let hit = c.seconds & (1 << dt.second()) != 0
                && c.minutes & (1 << dt.minute()) != 0
                && c.hours & (1 << dt.hour()) != 0
                && c.months & (1 << dt.month()) != 0
                && c.day_matches(dt.date());
            if hit {
                return Some(t);
            }
            t += SEC;
        }
        None
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(64))]
        #[test]
        fn cron_agrees_with_a_second_by_second_scan(
            secs in proptest::collection::vec(0u32..60, 1..4),
            mins in proptest::collection::vec(0u32..60, 1..4),
            hour_step in 1u32..4,
            after in 1_900_000_000i64..2_000_000_000i64,
        ) {
            let list = |v: &[u32]| v.iter().map(u32::to_string).collect::<Vec<_>>().join(",");
            let pattern = format!("{} {} */{hour_step} * * *", list(&secs), list(&mins));
            let Some(Pattern::Cron(c)) = parse(&pattern, None) else {
                panic!("{pattern} did not parse");
            };
            let after = after * SEC;
            // Every matching hour has a match: within hour_step hours and an hour.
            let limit = i64::from(hour_step + 1) * 3600 * SEC;
            proptest::prop_assert_eq!(c.next_after(after), naive(&c, after, limit), "{}", pattern);
        }
    }
}
