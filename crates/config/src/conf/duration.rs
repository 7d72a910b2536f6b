//! Go duration strings (`time.ParseDuration`): `"2m"`, `"30s"`, `"1h30m"`, `"500ms"`,
//! `"1.5h"`, `"0"`, as nats-server accepts for `ping_interval`, `write_deadline`, etc.

use std::time::Duration;

/// Nanoseconds per unit, longest unit names first so `ms` is not read as `m`.
const UNITS: &[(&str, u128)] = &[
    ("ns", 1),
    ("us", 1_000),
    ("\u{b5}s", 1_000),
    ("\u{3bc}s", 1_000),
    ("ms", 1_000_000),
    ("s", 1_000_000_000),
    ("m", 60_000_000_000),
    ("h", 3_600_000_000_000),
];

/// Parses a Go duration string. Negative durations are refused (no setting takes one).
pub fn parse_go_duration(text: &str) -> Result<Duration, String> {
    let invalid = || format!("invalid duration \"{}\"", text.escape_default());
    let mut s = text;
    if let Some(rest) = s.strip_prefix('+') {
        s = rest;
    } else if let Some(rest) = s.strip_prefix('-') {
        return if !rest.is_empty() && rest.chars().all(|c| c == '0') {
            Ok(Duration::ZERO)
        } else {
            Err(format!(
                "duration \"{}\" must not be negative",
                text.escape_default()
            ))
        };
    }
    if s == "0" {
        return Ok(Duration::ZERO);
    }
    if s.is_empty() {
        return Err(invalid());
    }
    let mut total: u128 = 0;
    while !s.is_empty() {
        let int_len = s.bytes().take_while(u8::is_ascii_digit).count();
        let (int_part, rest) = s.split_at(int_len);
        let (frac_part, rest) = match rest.strip_prefix('.') {
            Some(r) => {
                let n = r.bytes().take_while(u8::is_ascii_digit).count();
                r.split_at(n)
            }
            None => ("", rest),
        };
        if int_part.is_empty() && frac_part.is_empty() {
            return Err(invalid());
        }
        let unit_len = rest
            .char_indices()
            .find(|&(_, c)| c == '.' || c.is_ascii_digit())
            .map_or(rest.len(), |(i, _)| i);
        let (unit, rest) = rest.split_at(unit_len);
        if unit.is_empty() {
            return Err(format!(
                "missing unit in duration \"{}\" (use s, m, h, ms, us or ns)",
                text.escape_default()
            ));
        }
        let Some(&(_, nanos)) = UNITS.iter().find(|(u, _)| *u == unit) else {
            return Err(format!(
                "unknown unit \"{}\" in duration \"{}\"",
                unit.escape_default(),
                text.escape_default()
            ));
        };
        let int: u128 = if int_part.is_empty() {
            0
        } else {
            int_part.parse().map_err(|_| invalid())?
        };
        let mut part = int.checked_mul(nanos).ok_or_else(invalid)?;
        // Only the first 18 fractional digits can matter below a nanosecond.
        let frac = &frac_part[..frac_part.len().min(18)];
        if !frac.is_empty() {
            let digits: u128 = frac.parse().map_err(|_| invalid())?;
            let scale = 10u128.pow(frac.len() as u32);
            part = part
                .checked_add(digits * nanos / scale)
                .ok_or_else(invalid)?;
        }
        total = total.checked_add(part).ok_or_else(invalid)?;
        s = rest;
    }
    // Go durations are int64 nanoseconds.
    let total = u64::try_from(total)
        .ok()
        .filter(|&n| n <= i64::MAX as u64)
        .ok_or_else(|| format!("duration \"{}\" is too large", text.escape_default()))?;
    Ok(Duration::from_nanos(total))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn go_durations() {
        let ok: &[(&str, Duration)] = &[
            ("2m", Duration::from_secs(120)),
            ("30s", Duration::from_secs(30)),
            ("1h30m", Duration::from_secs(5400)),
            ("500ms", Duration::from_millis(500)),
            ("1.5h", Duration::from_secs(5400)),
            (".5s", Duration::from_millis(500)),
            ("1m0.25s", Duration::from_millis(60_250)),
            ("10us", Duration::from_micros(10)),
            ("10\u{b5}s", Duration::from_micros(10)),
            ("7ns", Duration::from_nanos(7)),
            ("0", Duration::ZERO),
            ("+5s", Duration::from_secs(5)),
            ("-0", Duration::ZERO),
        ];
        for (text, want) in ok {
            assert_eq!(parse_go_duration(text).as_ref(), Ok(want), "{text}");
        }
    }

    #[test]
    fn bad_durations() {
        for text in [
            "",
            "5",
            "s",
            "1x",
            "1.s.",
            "-5s",
            "1d",
            "9999999999999999h",
            "1..5s",
            ".",
        ] {
            assert!(parse_go_duration(text).is_err(), "{text:?}");
        }
    }
}
