//! Parsing what clients publish to a delivery's reply subject:
//! `$JS.ACK.<stream>.<consumer>.<delivered>.<sseq>.<dseq>.<ts>.<pending>` and the bodies
//! `+ACK`, `-NAK [delay]`, `+WPI`, `+NXT [request]`, `+TERM [reason]`.

use std::time::Duration;

use serde::Deserialize;

/// The sequences an ack subject carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct AckRef {
    /// Delivery count of the delivery being acked.
    pub dc: u64,
    /// Stream sequence.
    pub sseq: u64,
    /// Consumer sequence.
    pub dseq: u64,
}

/// Parses an ack subject (9 tokens, or the 2.10 v2 form with domain and account hash).
/// Sequences no stream can hold (past [`petrel_store::MAX_SEQ`]) make it invalid.
pub(crate) fn parse_subject(subject: &str) -> Option<AckRef> {
    parse_tokens(subject)
        .filter(|r| r.sseq <= petrel_store::MAX_SEQ && r.dseq <= petrel_store::MAX_SEQ)
}

fn parse_tokens(subject: &str) -> Option<AckRef> {
    let rest = subject.strip_prefix("$JS.ACK.")?;
    // From the end: v1 is `<stream>.<consumer>.<dc>.<sseq>.<dseq>.<ts>.<pending>`; v2 adds a
    // domain and an account hash in front and a token at the end.
    let mut back = rest.rsplitn(6, '.');
    let (_pending, _ts) = (back.next()?, back.next()?);
    let (dseq, sseq, dc) = (back.next()?, back.next()?, back.next()?);
    let head = back.next()?;
    if head.bytes().filter(|b| *b == b'.').count() != 1 {
        return parse_v2(rest);
    }
    Some(AckRef {
        dc: dc.parse().ok()?,
        sseq: sseq.parse().ok()?,
        dseq: dseq.parse().ok()?,
    })
}

/// The v2 form: `<domain>.<hash>.<stream>.<consumer>.<dc>.<sseq>.<dseq>.<ts>.<pending>[.<token>...]`.
fn parse_v2(rest: &str) -> Option<AckRef> {
    let mut t = rest.split('.');
    if t.clone().count() < 9 {
        return None;
    }
    let mut t = t.by_ref().skip(4);
    let mut num = || t.next()?.parse::<u64>().ok();
    Some(AckRef {
        dc: num()?,
        sseq: num()?,
        dseq: num()?,
    })
}

/// Builds the v1 ack subject of a delivery.
pub(crate) fn ack_subject(
    stream: &str,
    consumer: &str,
    dc: u64,
    sseq: u64,
    dseq: u64,
    ts: i64,
    pending: u64,
) -> String {
    let mut out = String::with_capacity(8 + stream.len() + consumer.len() + 64);
    out.push_str("$JS.ACK.");
    out.push_str(stream);
    out.push('.');
    out.push_str(consumer);
    let mut buf = itoa::Buffer::new();
    for n in [dc, sseq, dseq] {
        out.push('.');
        out.push_str(buf.format(n));
    }
    out.push('.');
    out.push_str(buf.format(ts));
    out.push('.');
    out.push_str(buf.format(pending));
    out
}

/// What an ack body asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum AckKind {
    /// `+ACK`, `+OK` or empty.
    Ack,
    /// `-NAK`, optionally delayed.
    Nak(Option<Duration>),
    /// `+WPI`: still working.
    Progress,
    /// `+NXT`: ack, then a pull request with this body.
    Next(Vec<u8>),
    /// `+TERM`: never redeliver; the reason, if given.
    Term(String),
    /// Anything else: ignored, as nats-server does.
    Unknown,
}

#[derive(Deserialize)]
struct NakDelay {
    #[serde(default)]
    delay: i64,
}

/// Parses an ack body.
pub(crate) fn parse_body(body: &[u8]) -> AckKind {
    let b = body;
    if b.is_empty() || b == b"+ACK" || b == b"+OK" {
        return AckKind::Ack;
    }
    if let Some(rest) = b.strip_prefix(b"-NAK") {
        let rest = rest.trim_ascii();
        if rest.is_empty() {
            return AckKind::Nak(None);
        }
        let delay = if rest.starts_with(b"{") {
            serde_json::from_slice::<NakDelay>(rest)
                .ok()
                .and_then(|d| u64::try_from(d.delay).ok())
                .map(Duration::from_nanos)
        } else {
            std::str::from_utf8(rest).ok().and_then(parse_go_duration)
        };
        return AckKind::Nak(delay.filter(|d| !d.is_zero()));
    }
    if b == b"+WPI" {
        return AckKind::Progress;
    }
    if let Some(rest) = b.strip_prefix(b"+NXT") {
        return AckKind::Next(rest.trim_ascii().to_vec());
    }
    if let Some(rest) = b.strip_prefix(b"+TERM") {
        let reason = String::from_utf8_lossy(rest.trim_ascii()).into_owned();
        return AckKind::Term(reason);
    }
    AckKind::Unknown
}

/// Parses a Go duration such as `1.5s`, `300ms` or `2m10s`. Like Go's
/// `time.ParseDuration`, anything longer than `i64::MAX` nanoseconds (about 292 years) is
/// an error (a NAK with such a delay is a plain NAK, as in nats-server).
pub(crate) fn parse_go_duration(s: &str) -> Option<Duration> {
    let mut rest = s.trim();
    if rest.is_empty() {
        return None;
    }
    let mut total = 0f64;
    while !rest.is_empty() {
        let num_len = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .unwrap_or(rest.len());
        let n: f64 = rest[..num_len].parse().ok()?;
        rest = &rest[num_len..];
        let unit_len = rest
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(rest.len());
        let mult = match &rest[..unit_len] {
            "ns" => 1e-9,
            "us" | "µs" => 1e-6,
            "ms" => 1e-3,
            "s" => 1.0,
            "m" => 60.0,
            "h" => 3600.0,
            _ => return None,
        };
        rest = &rest[unit_len..];
        total += n * mult;
    }
    if total > i64::MAX as f64 / 1e9 {
        return None;
    }
    Duration::try_from_secs_f64(total).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn subjects() {
        let built = ack_subject("ORDERS", "dur1", 2, 5, 7, 1795494782565404807, 3);
        assert_eq!(built, "$JS.ACK.ORDERS.dur1.2.5.7.1795494782565404807.3");
        assert_eq!(
            parse_subject(&built),
            Some(AckRef {
                dc: 2,
                sseq: 5,
                dseq: 7
            })
        );
        assert_eq!(
            parse_subject("$JS.ACK.ORDERS.dur1.2.5.7.1795494782565404807.3"),
            Some(AckRef {
                dc: 2,
                sseq: 5,
                dseq: 7
            })
        );
        assert_eq!(
            parse_subject("$JS.ACK._.hash.S.c.1.2.3.4.5.tok"),
            Some(AckRef {
                dc: 1,
                sseq: 2,
                dseq: 3
            })
        );
        assert_eq!(parse_subject("$JS.ACK.S.c.x.2.3.4.5"), None);
        assert_eq!(parse_subject("$JS.ACK.S.c.1.2"), None);
        let huge = "$JS.ACK.S.c.1.18446744073709551615.18446744073709551615.0.0";
        assert_eq!(parse_subject(huge), None);
    }

    #[test]
    fn bodies() {
        assert_eq!(parse_body(b""), AckKind::Ack);
        assert_eq!(parse_body(b"+ACK"), AckKind::Ack);
        assert_eq!(parse_body(b"-NAK"), AckKind::Nak(None));
        assert_eq!(
            parse_body(br#"-NAK {"delay": 2000000000}"#),
            AckKind::Nak(Some(Duration::from_secs(2)))
        );
        assert_eq!(
            parse_body(b"-NAK 1.5s"),
            AckKind::Nak(Some(Duration::from_millis(1500)))
        );
        assert_eq!(parse_body(b"+WPI"), AckKind::Progress);
        assert_eq!(
            parse_body(b"+NXT {\"batch\":2}"),
            AckKind::Next(b"{\"batch\":2}".to_vec())
        );
        assert_eq!(parse_body(b"+TERM"), AckKind::Term(String::new()));
        assert_eq!(
            parse_body(b"+TERM bad input"),
            AckKind::Term("bad input".into())
        );
        assert_eq!(parse_body(b"what"), AckKind::Unknown);
        assert_eq!(parse_go_duration("2m10s"), Some(Duration::from_secs(130)));
        assert_eq!(parse_go_duration("x"), None);
        // Out of Go's range: a plain NAK.
        assert_eq!(parse_go_duration("10000000000000000000s"), None);
        assert_eq!(
            parse_body(b"-NAK 10000000000000000000s"),
            AckKind::Nak(None)
        );
        assert_eq!(parse_body(b"-NAK 3000000000000000h"), AckKind::Nak(None));
        assert_eq!(parse_body(b"-NAK -5s"), AckKind::Nak(None));
        assert_eq!(
            parse_body(br#"-NAK {"delay":9223372036854775807}"#),
            AckKind::Nak(Some(Duration::from_nanos(i64::MAX as u64)))
        );
        assert_eq!(parse_body(br#"-NAK {"delay":-1}"#), AckKind::Nak(None));
        assert_eq!(parse_body(br#"-NAK {"delay":1e30}"#), AckKind::Nak(None));
    }
}
