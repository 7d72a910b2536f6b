//! Counter streams (`allow_msg_counter`, nats-server 2.12): every message is an increment
//! (`Nats-Incr: <integer>`, no payload) of its subject's counter, and the server stores it
//! with the running total as its body (`{"val":"<total>"}`) and returns the total in the
//! PubAck (`"val"`). Totals are integers of any size, as Go's `big.Int`.
//!
//! A counter stream that sources other counter streams adds their totals: a sourced message
//! carries its origin's total, and the difference from the last total seen from that origin
//! and subject (kept in the `Nats-Counter-Sources` header of the newest message) is the
//! increment, so the sum stays right however the sourced messages arrive.

use std::collections::BTreeMap;
use std::str::FromStr;

use bytes::Bytes;
use num_bigint::BigInt;
use petrel_wire::headers::Headers;
use serde::Deserialize;

use crate::errors::ApiError;
use crate::ingest::{
    EXPECTED_LAST_MSG_ID, EXPECTED_LAST_SEQ, EXPECTED_LAST_SUBJ_SEQ,
    EXPECTED_LAST_SUBJ_SEQ_SUBJECT, EXPECTED_STREAM, ROLLUP,
};
use crate::stream::Inner;

/// Header: the increment.
pub const INCR: &str = "Nats-Incr";
/// Header: the last total taken from each source, by origin stream and subject.
pub const COUNTER_SOURCES: &str = "Nats-Counter-Sources";

/// The body of a counter message.
#[derive(Deserialize)]
struct CounterValue {
    val: String,
}

/// Origin stream → subject → last total taken from it.
type Sources = BTreeMap<String, BTreeMap<String, String>>;

/// Parses an increment or total: an optional sign and decimal digits (as Go's
/// `big.Int.SetString(s, 10)`: no spaces, no `_`, no other base).
fn parse(v: &str) -> Option<BigInt> {
    let digits = v.strip_prefix(['+', '-']).unwrap_or(v);
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    BigInt::from_str(v).ok()
}

/// [`parse`] for the fuzz target.
pub(crate) fn parse_incr(v: &str) -> Option<String> {
    parse(v).map(|n| n.to_string())
}

/// The first checks of a published message's `Nats-Incr` (before any other header, as
/// nats-server): a malformed one is 10171; unless the message was sourced (stored as it
/// is), one on a stream without counters is 10168, one with a payload 10170, and one beside
/// a roll-up or an expectation header 10171. Returns the increment.
pub(crate) fn check(
    inner: &Inner,
    h: &Headers,
    payload: &[u8],
) -> Result<Option<BigInt>, ApiError> {
    let Some(value) = h.get(INCR).filter(|v| !v.is_empty()) else {
        return Ok(None);
    };
    let incr = parse(value).ok_or_else(ApiError::counter_incr_invalid)?;
    if crate::sourcing::sourced(h) {
        return Ok(Some(incr));
    }
    if !inner.config.allow_msg_counter {
        return Err(ApiError::counter_disabled());
    }
    if !payload.is_empty() {
        return Err(ApiError::counter_has_payload());
    }
    let present = |k: &str| h.get(k).is_some_and(|v| !v.is_empty());
    let number = |k: &str| h.get(k).is_some_and(|v| v.parse::<u64>().is_ok());
    if [
        ROLLUP,
        EXPECTED_STREAM,
        EXPECTED_LAST_MSG_ID,
        EXPECTED_LAST_SUBJ_SEQ_SUBJECT,
    ]
    .into_iter()
    .any(present)
        || number(EXPECTED_LAST_SEQ)
        || number(EXPECTED_LAST_SUBJ_SEQ)
    {
        return Err(ApiError::counter_incr_invalid());
    }
    Ok(Some(incr))
}

/// A counter message as it is stored: its headers, its body and the new total.
pub(crate) struct Counted {
    pub headers: Option<Bytes>,
    pub payload: Bytes,
    pub total: String,
}

/// Applies the increment of a message on `subject` to the subject's counter (counter
/// streams only: `Ok(None)` elsewhere). A message without an increment is 10169; a
/// counter whose stored state does not parse is 10172 ("broken").
pub(crate) fn apply(
    inner: &Inner,
    subject: &str,
    h: Option<&Headers>,
    headers: Option<Bytes>,
    incr: Option<BigInt>,
    payload: &[u8],
) -> Result<Option<Counted>, ApiError> {
    if !inner.config.allow_msg_counter {
        return Ok(None);
    }
    let Some(mut incr) = incr else {
        return Err(ApiError::counter_incr_missing());
    };
    let broken = |_| ApiError::counter_broken();
    let (mut total, mut sources) = match inner.store.last_by_subject(subject) {
        Ok(Some(last)) => {
            let v: CounterValue = serde_json::from_slice(&last.payload).map_err(broken)?;
            let total = parse(&v.val).ok_or_else(ApiError::counter_broken)?;
            let sources: Sources = match last
                .headers
                .as_deref()
                .and_then(petrel_wire::headers::parse)
                .and_then(|lh| lh.get(COUNTER_SOURCES).map(str::to_string))
            {
                Some(json) => serde_json::from_str(&json).map_err(broken)?,
                None => Sources::new(),
            };
            (total, sources)
        }
        Ok(None) => (BigInt::default(), Sources::new()),
        Err(e) => return Err(ApiError::store_failed(e)),
    };
    let mut headers = headers;
    if let Some(source) = h.and_then(|h| h.get(crate::sourcing::task::STREAM_SOURCE)) {
        // A sourced total: the increment is its change since the last one from there.
        let fields: Vec<&str> = source.split(' ').collect();
        let origin = fields[0].to_string();
        let origin_subject = fields.get(4).unwrap_or(&subject).to_string();
        let v: CounterValue = serde_json::from_slice(payload).map_err(broken)?;
        let sourced = parse(&v.val).ok_or_else(ApiError::counter_broken)?;
        let seen = sources.entry(origin).or_default();
        let previous = seen
            .get(&origin_subject)
            .and_then(|p| parse(p))
            .unwrap_or_default();
        seen.insert(origin_subject, sourced.to_string());
        incr = sourced - previous;
        headers = Some(crate::hdr::set(headers.as_ref(), INCR, &incr.to_string()));
    }
    total += incr;
    if !sources.is_empty() {
        let json = serde_json::to_string(&sources).map_err(broken)?;
        headers = Some(crate::hdr::set(headers.as_ref(), COUNTER_SOURCES, &json));
    }
    let total = total.to_string();
    Ok(Some(Counted {
        headers,
        payload: Bytes::from(format!("{{\"val\":\"{total}\"}}")),
        total,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn increments_parse_as_go_big_ints() {
        assert_eq!(parse("5"), Some(BigInt::from(5)));
        assert_eq!(parse("+3"), Some(BigInt::from(3)));
        assert_eq!(parse("-7"), Some(BigInt::from(-7)));
        assert_eq!(parse("00012"), Some(BigInt::from(12)));
        assert_eq!(parse("-0"), Some(BigInt::from(0)));
        assert_eq!(
            parse("123456789012345678901234567890").map(|v| v.to_string()),
            Some("123456789012345678901234567890".to_string())
        );
        for bad in ["", "+", "-", "abc", "1.5", "0x10", "1_000", " 5", "5 "] {
            assert_eq!(parse(bad), None, "{bad}");
        }
    }
}
