//! Wall-clock time in Unix nanoseconds and Go's `time.RFC3339Nano` in UTC (trailing zeros of
//! the fraction trimmed, the zero time as `0001-01-01T00:00:00Z`).

use std::sync::atomic::{AtomicI64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use tokio::time::Instant;

/// Nanoseconds per second.
pub(crate) const SEC: i64 = 1_000_000_000;

/// The longest wait a deadline is set to (about 100 years): a longer delay a client asks
/// for (`-NAK {"delay":9223372036854775807}`, a huge `ack_wait`) means "not in this
/// process's life" and is clamped here instead of overflowing `Instant`.
pub(crate) const MAX_WAIT: Duration = Duration::from_secs(100 * 365 * 86_400);

/// `now + wait`, with `wait` clamped to [`MAX_WAIT`].
pub(crate) fn deadline(now: Instant, wait: Duration) -> Instant {
    let wait = wait.min(MAX_WAIT);
    now.checked_add(wait).unwrap_or(now)
}

/// Lets one caller through per second (rate-limited warnings and advisories).
#[derive(Debug, Default)]
pub(crate) struct OncePerSecond {
    last: AtomicI64,
}

impl OncePerSecond {
    /// `Some(now)` (Unix ns) for the first call in a second, `None` for the others.
    pub fn pass(&self) -> Option<i64> {
        let now = now_nanos();
        let last = self.last.load(Ordering::Relaxed);
        let due = last == 0 || now.saturating_sub(last) >= 1_000_000_000;
        (due && self
            .last
            .compare_exchange(last, now, Ordering::AcqRel, Ordering::Relaxed)
            .is_ok())
        .then_some(now)
    }
}

/// Nanoseconds since the Unix epoch (0 if the clock is before 1970).
pub fn now_nanos() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_nanos()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

/// The Go zero time, used for "no timestamp".
pub const ZERO_TIME: &str = "0001-01-01T00:00:00Z";

/// Formats Unix nanoseconds as RFC3339Nano UTC like Go; 0 means "no time" (Go's zero time).
pub fn rfc3339_nano(ns: i64) -> String {
    if ns == 0 {
        return ZERO_TIME.to_string();
    }
    let secs = ns.div_euclid(1_000_000_000);
    let nanos = ns.rem_euclid(1_000_000_000);
    let days = secs.div_euclid(86_400);
    let sod = secs.rem_euclid(86_400);
    let (y, m, d) = civil_from_days(days);
    let (hh, mm, ss) = (sod / 3600, (sod % 3600) / 60, sod % 60);
    let mut out = format!("{y:04}-{m:02}-{d:02}T{hh:02}:{mm:02}:{ss:02}");
    if nanos != 0 {
        let frac = format!("{nanos:09}");
        out.push('.');
        out.push_str(frac.trim_end_matches('0'));
    }
    out.push('Z');
    out
}

/// Go's `time.Duration.String()`: `0s`, `1.5µs`, `250ms`, `10s`, `1m30s`, `2h0m0s`.
pub fn go_duration(ns: i64) -> String {
    let u = ns.unsigned_abs();
    let sign = if ns < 0 { "-" } else { "" };
    if u == 0 {
        return "0s".into();
    }
    if u < 1_000_000_000 {
        let (unit, scale) = match u {
            0..=999 => ("ns", 1),
            1_000..=999_999 => ("µs", 1_000),
            _ => ("ms", 1_000_000),
        };
        return format!("{sign}{}{unit}", decimal(u, scale));
    }
    let secs = u / 1_000_000_000;
    let (h, m, s) = (secs / 3600, (secs / 60) % 60, secs % 60);
    let seconds = decimal(s * 1_000_000_000 + u % 1_000_000_000, 1_000_000_000);
    match (h, m) {
        (0, 0) => format!("{sign}{seconds}s"),
        (0, m) => format!("{sign}{m}m{seconds}s"),
        (h, m) => format!("{sign}{h}h{m}m{seconds}s"),
    }
}

/// `v / scale` as a decimal without trailing zeros (`scale` a power of ten).
fn decimal(v: u64, scale: u64) -> String {
    let (whole, frac) = (v / scale, v % scale);
    if frac == 0 {
        return whole.to_string();
    }
    let digits = scale.ilog10() as usize;
    let frac = format!("{frac:0digits$}");
    format!("{whole}.{}", frac.trim_end_matches('0'))
}

/// Days since 1970-01-01 to (year, month, day) in the proleptic Gregorian calendar
/// (Howard Hinnant's algorithm).
pub fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (if m <= 2 { y + 1 } else { y }, m, d)
}

/// (year, month, day) to days since 1970-01-01 (inverse of [`civil_from_days`]).
fn days_from_civil(y: i64, m: u32, d: u32) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y.rem_euclid(400);
    let m = i64::from(m);
    let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + i64::from(d) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// Parses RFC 3339 (`2026-11-24T04:33:02.5Z`, `...+02:00`) into Unix nanoseconds.
pub fn parse_rfc3339(s: &str) -> Option<i64> {
    let b = s.as_bytes();
    if b.len() < 20 || b[4] != b'-' || b[7] != b'-' || !matches!(b[10], b'T' | b't' | b' ') {
        return None;
    }
    let num = |r: std::ops::Range<usize>| -> Option<i64> { s.get(r)?.parse().ok() };
    let (y, mo, d) = (num(0..4)?, num(5..7)?, num(8..10)?);
    let (h, mi, se) = (num(11..13)?, num(14..16)?, num(17..19)?);
    if b[13] != b':' || b[16] != b':' || !(1..=12).contains(&mo) || !(1..=31).contains(&d) {
        return None;
    }
    let mut i = 19;
    let mut nanos = 0i64;
    if b.get(i) == Some(&b'.') {
        i += 1;
        let start = i;
        while i < b.len() && b[i].is_ascii_digit() {
            i += 1;
        }
        let frac = &s[start..i];
        if frac.is_empty() {
            return None;
        }
        let digits: String = frac.chars().chain(std::iter::repeat('0')).take(9).collect();
        nanos = digits.parse().ok()?;
    }
    let offset = match b.get(i)? {
        b'Z' | b'z' if i + 1 == b.len() => 0,
        sign @ (b'+' | b'-') if b.len() == i + 6 && b[i + 3] == b':' => {
            let (oh, om) = (num(i + 1..i + 3)?, num(i + 4..i + 6)?);
            (oh * 3600 + om * 60) * if *sign == b'+' { 1 } else { -1 }
        }
        _ => return None,
    };
    let days = days_from_civil(y, mo as u32, d as u32);
    let secs = days * 86_400 + h * 3600 + mi * 60 + se - offset;
    // Times past what Unix nanoseconds can hold (after 2262-04-11) saturate, so "start at
    // year 9999" means "after everything", not a wrap to the beginning.
    Some(
        secs.checked_mul(1_000_000_000)
            .and_then(|n| n.checked_add(nanos))
            .unwrap_or(if secs > 0 { i64::MAX } else { i64::MIN }),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn go_durations() {
        for (ns, want) in [
            (0, "0s"),
            (1, "1ns"),
            (1_500, "1.5µs"),
            (250_000_000, "250ms"),
            (10_000_000_000, "10s"),
            (1_500_000_000, "1.5s"),
            (90_000_000_000, "1m30s"),
            (7_200_000_000_000, "2h0m0s"),
            (3_723_400_000_000, "1h2m3.4s"),
            (-5_000_000_000, "-5s"),
            (i64::MIN, "-2562047h47m16.854775808s"),
        ] {
            assert_eq!(go_duration(ns), want, "{ns}");
        }
    }

    #[test]
    fn parses_rfc3339() {
        for ns in [
            1,
            1_795_494_782_565_404_807,
            1_795_494_782_500_000_000,
            951_782_400_000_000_000,
        ] {
            assert_eq!(parse_rfc3339(&rfc3339_nano(ns)), Some(ns));
        }
        assert_eq!(
            parse_rfc3339("2026-11-24T06:33:02.5+02:00"),
            Some(1_795_494_782_500_000_000)
        );
        assert_eq!(parse_rfc3339("2026-11-24"), None);
        assert_eq!(parse_rfc3339("9999-12-31T23:59:59Z"), Some(i64::MAX));
        assert_eq!(parse_rfc3339("0001-01-01T00:00:00Z"), Some(i64::MIN));
        assert_eq!(parse_rfc3339("2026-13-24T00:00:00Z"), None);
    }

    #[test]
    fn formats_like_go() {
        assert_eq!(rfc3339_nano(0), ZERO_TIME);
        assert_eq!(rfc3339_nano(1), "1970-01-01T00:00:00.000000001Z");
        assert_eq!(
            rfc3339_nano(1_795_494_782_565_404_807),
            "2026-11-24T04:33:02.565404807Z"
        );
        assert_eq!(
            rfc3339_nano(1_795_494_782_500_000_000),
            "2026-11-24T04:33:02.5Z"
        );
        assert_eq!(
            rfc3339_nano(951_782_400_000_000_000),
            "2000-02-29T00:00:00Z"
        );
    }
}
