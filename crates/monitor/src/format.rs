//! Output conventions copied from nats-server: Go's RFC3339Nano times, Go's
//! `Duration.String`, nats-server's uptime format, integral floats printed without `.0`,
//! and pretty-printed JSON / plain-text error responses.

use std::time::Duration;

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::{Serialize, Serializer};

/// Wall-clock now in Unix nanoseconds.
pub(crate) use petrel_server::now_nanos as now_ns;

/// Whether a field holds its zero value: `skip_serializing_if` for Go's `omitempty`.
pub(crate) fn is_default<T: Default + PartialEq>(v: &T) -> bool {
    *v == T::default()
}

/// Unix nanoseconds as Go's RFC3339Nano in UTC (`2026-11-24T08:52:10.655381959Z`).
pub(crate) fn rfc3339(ns: i64) -> String {
    petrel_server::rfc3339_nano(ns)
}

/// Nanoseconds between two Unix-ns instants as a duration (0 if `to` is before `from`).
pub(crate) fn since(from: i64, to: i64) -> Duration {
    Duration::from_nanos(u64::try_from(to.saturating_sub(from)).unwrap_or(0))
}

/// nats-server's uptime / idle format: whole seconds as `4s`, `1m2s`, `3h1m2s`,
/// `2d3h1m2s`, `1y2d3h1m2s`.
pub(crate) fn uptime(d: Duration) -> String {
    let secs = d.as_secs();
    let (mins, hrs, days) = (secs / 60, secs / 3600, secs / 86_400);
    let years = days / 365;
    let (s, m, h) = (secs % 60, mins % 60, hrs % 24);
    if years > 0 {
        format!("{years}y{}d{h}h{m}m{s}s", days % 365)
    } else if days > 0 {
        format!("{days}d{h}h{m}m{s}s")
    } else if hrs > 0 {
        format!("{hrs}h{m}m{s}s")
    } else if mins > 0 {
        format!("{mins}m{s}s")
    } else {
        format!("{secs}s")
    }
}

/// `int.frac` of `v / 10^prec` with the fraction's trailing zeros trimmed (Go's fmtFrac).
fn frac(v: u128, prec: usize) -> String {
    let p = 10u128.pow(prec as u32);
    let (int, rest) = (v / p, v % p);
    if rest == 0 {
        return int.to_string();
    }
    let digits = format!("{rest:0prec$}");
    format!("{int}.{}", digits.trim_end_matches('0'))
}

/// Go's `time.Duration.String()`: `0s`, `850ns`, `1.5µs`, `506µs`, `1.234ms`, `2.5s`,
/// `1m30s`, `1h0m0s`.
pub(crate) fn go_duration(d: Duration) -> String {
    let ns = d.as_nanos();
    match ns {
        0 => "0s".to_string(),
        1..=999 => format!("{ns}ns"),
        1_000..=999_999 => format!("{}µs", frac(ns, 3)),
        1_000_000..=999_999_999 => format!("{}ms", frac(ns, 6)),
        _ => {
            let secs = ns / 1_000_000_000;
            let (h, m) = (secs / 3600, (secs / 60) % 60);
            let mut out = String::new();
            if h > 0 {
                out.push_str(&format!("{h}h"));
            }
            if h > 0 || m > 0 {
                out.push_str(&format!("{m}m"));
            }
            let s = ns - (secs - secs % 60) * 1_000_000_000;
            out.push_str(&frac(s, 9));
            out.push('s');
            out
        }
    }
}

/// A round-trip time as nats-server shows it: truncated to microseconds under 1 ms.
pub(crate) fn rtt(d: Option<Duration>) -> String {
    let Some(d) = d else {
        return "0s".to_string();
    };
    if d > Duration::from_micros(1) && d < Duration::from_millis(1) {
        go_duration(Duration::from_micros(d.as_micros() as u64))
    } else {
        go_duration(d)
    }
}

/// A float that prints like Go's encoding/json: integral values without `.0`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct GoFloat(pub f64);

impl Serialize for GoFloat {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let v = self.0;
        if v.is_finite() && v.fract() == 0.0 && v.abs() < 1e15 {
            s.serialize_i64(v as i64)
        } else if v.is_finite() {
            s.serialize_f64(v)
        } else {
            s.serialize_i64(0)
        }
    }
}

/// Seconds of a duration as a [`GoFloat`] (`auth_timeout`, `tls_timeout`).
pub(crate) fn secs(d: Duration) -> GoFloat {
    GoFloat(d.as_secs_f64())
}

/// Nanoseconds of a duration, as Go's `time.Duration` serializes.
pub(crate) fn nanos(d: Duration) -> i64 {
    i64::try_from(d.as_nanos()).unwrap_or(i64::MAX)
}

/// A 200 response with `value` as indented JSON (nats-server's `MarshalIndent`).
pub(crate) fn json<T: Serialize>(value: &T) -> Response {
    json_status(StatusCode::OK, value)
}

/// A response with `status` and `value` as indented JSON.
pub(crate) fn json_status<T: Serialize>(status: StatusCode, value: &T) -> Response {
    json_body(status, serde_json::to_vec_pretty(value))
}

/// A response with `status` and `value` as one-line JSON (`/healthz`).
pub(crate) fn json_compact<T: Serialize>(status: StatusCode, value: &T) -> Response {
    json_body(status, serde_json::to_vec(value))
}

fn json_body(status: StatusCode, body: serde_json::Result<Vec<u8>>) -> Response {
    match body {
        Ok(body) => (
            status,
            [(
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/json"),
            )],
            body,
        )
            .into_response(),
        Err(e) => error(
            StatusCode::INTERNAL_SERVER_ERROR,
            &format!("Error marshaling response: {e}"),
        ),
    }
}

/// A plain-text error response, as nats-server's `http.Error`.
pub(crate) fn error(status: StatusCode, text: &str) -> Response {
    (
        status,
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static("text/plain; charset=utf-8"),
        )],
        format!("{text}\n"),
    )
        .into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_print_like_go() {
        let cases = [
            (Duration::ZERO, "0s"),
            (Duration::from_nanos(850), "850ns"),
            (Duration::from_nanos(1_500), "1.5µs"),
            (Duration::from_micros(506), "506µs"),
            (Duration::from_nanos(1_234_567), "1.234567ms"),
            (Duration::from_millis(2_500), "2.5s"),
            (Duration::from_secs(90), "1m30s"),
            (Duration::from_secs(3600), "1h0m0s"),
            (Duration::from_nanos(3_723_000_000_001), "1h2m3.000000001s"),
        ];
        for (d, want) in cases {
            assert_eq!(go_duration(d), want, "{d:?}");
        }
    }

    #[test]
    fn rtt_truncates_to_micros() {
        assert_eq!(rtt(None), "0s");
        assert_eq!(rtt(Some(Duration::from_nanos(506_789))), "506µs");
        assert_eq!(rtt(Some(Duration::from_nanos(1_234_567))), "1.234567ms");
    }

    #[test]
    fn uptime_like_nats_server() {
        assert_eq!(uptime(Duration::from_millis(4_900)), "4s");
        assert_eq!(uptime(Duration::from_secs(62)), "1m2s");
        assert_eq!(uptime(Duration::from_secs(3 * 3600 + 62)), "3h1m2s");
        assert_eq!(uptime(Duration::from_secs(2 * 86_400 + 3600)), "2d1h0m0s");
        assert_eq!(uptime(Duration::from_secs(366 * 86_400)), "1y1d0h0m0s");
    }

    #[test]
    fn floats_like_go_json() {
        let j = |v| serde_json::to_string(&GoFloat(v)).unwrap();
        assert_eq!(j(2.0), "2");
        assert_eq!(j(0.5), "0.5");
        assert_eq!(j(0.36363636363636365), "0.36363636363636365");
        assert_eq!(j(f64::NAN), "0");
    }
}
