//! Pull requests (`$JS.API.CONSUMER.MSG.NEXT.<stream>.<consumer>`): the request body, the
//! waiting request, and the status messages nats-server answers with (`404 No Messages`,
//! `408 Request Timeout`, `409 ...`, `100 Idle Heartbeat`).

use std::time::Duration;
use tokio::time::Instant;

use bytes::Bytes;
use serde::Deserialize;

use crate::json::null_default;
use crate::time::deadline;

/// Most pull requests one consumer keeps waiting, whatever its `max_waiting` says
/// (nats-server accepts any): a client cannot make a consumer hold unbounded memory.
pub(crate) const MAX_WAITING: usize = 10_000;

/// The JSON form of a pull request.
#[derive(Debug, Default, Deserialize)]
pub(crate) struct PullBody {
    #[serde(default, deserialize_with = "null_default")]
    pub batch: i64,
    #[serde(default, deserialize_with = "null_default")]
    pub expires: i64,
    #[serde(default, deserialize_with = "null_default")]
    pub no_wait: bool,
    #[serde(default, deserialize_with = "null_default")]
    pub max_bytes: i64,
    #[serde(default, deserialize_with = "null_default")]
    pub idle_heartbeat: i64,
    /// Priority groups (2.11): the group asked for, overflow thresholds, the pin id and
    /// (2.12) the priority.
    #[serde(default, deserialize_with = "null_default")]
    pub group: String,
    #[serde(default, deserialize_with = "null_default")]
    pub min_pending: i64,
    #[serde(default, deserialize_with = "null_default")]
    pub min_ack_pending: i64,
    #[serde(default, deserialize_with = "null_default")]
    pub id: String,
    #[serde(default, deserialize_with = "null_default")]
    pub priority: i64,
}

/// Parses a request body: empty (batch 1), a number (the batch) or JSON. `None` when it is
/// none of these.
pub(crate) fn parse_body(payload: &[u8]) -> Option<PullBody> {
    let p = payload.trim_ascii();
    if p.is_empty() {
        return Some(PullBody {
            batch: 1,
            ..PullBody::default()
        });
    }
    if p[0] == b'{' {
        return serde_json::from_slice(p).ok();
    }
    let n: i64 = std::str::from_utf8(p).ok()?.parse().ok()?;
    Some(PullBody {
        batch: n,
        ..PullBody::default()
    })
}

/// A pull request waiting for messages.
#[derive(Debug, Clone)]
pub(crate) struct Waiting {
    /// Inbox the messages go to.
    pub reply: String,
    /// Messages still wanted.
    pub batch: i64,
    /// Bytes still allowed (0 = no limit).
    pub max_bytes: i64,
    /// Whether the request set `max_bytes`.
    pub has_max_bytes: bool,
    /// When the request ends with `408`.
    pub expires: Option<Instant>,
    /// Answer at once when nothing (more) is available.
    pub no_wait: bool,
    /// Heartbeat interval while waiting.
    pub heartbeat: Option<Duration>,
    /// When the next heartbeat is due.
    pub next_heartbeat: Option<Instant>,
    /// Messages delivered to it so far.
    pub delivered: u64,
    /// Overflow thresholds and the priority (see `priority`).
    pub min_pending: i64,
    pub min_ack_pending: i64,
    pub priority: i64,
    /// Its priority group and the pin id it carries (empty: none).
    pub group: String,
    pub pin_id: String,
}

fn ns(v: i64) -> Option<Duration> {
    u64::try_from(v)
        .ok()
        .filter(|v| *v > 0)
        .map(Duration::from_nanos)
}

impl Waiting {
    /// A waiting request from its body, received at `now`.
    pub fn new(reply: String, body: &PullBody, now: Instant) -> Waiting {
        let heartbeat = ns(body.idle_heartbeat);
        Waiting {
            reply,
            batch: body.batch.max(1),
            max_bytes: body.max_bytes.max(0),
            has_max_bytes: body.max_bytes > 0,
            expires: ns(body.expires).map(|d| deadline(now, d)),
            // With an expiry, no_wait waits for it like any request (nats-server).
            no_wait: body.no_wait && body.expires <= 0,
            heartbeat,
            next_heartbeat: heartbeat.map(|h| deadline(now, h)),
            delivered: 0,
            min_pending: body.min_pending,
            min_ack_pending: body.min_ack_pending,
            priority: body.priority,
            group: body.group.clone(),
            pin_id: body.id.clone(),
        }
    }

    /// The `408 Request Timeout` status with what is left of the request.
    pub fn timeout_status(&self) -> Bytes {
        status_with_pending("408 Request Timeout", self.batch, self.max_bytes)
    }
}

/// A bare status header block: `NATS/1.0 <status>\r\n\r\n`.
pub(crate) fn status(text: &str) -> Bytes {
    Bytes::from(format!("NATS/1.0 {text}\r\n\r\n"))
}

/// A status with `Nats-Pending-Messages` and `Nats-Pending-Bytes`.
pub(crate) fn status_with_pending(text: &str, msgs: i64, bytes: i64) -> Bytes {
    Bytes::from(format!(
        "NATS/1.0 {text}\r\nNats-Pending-Messages: {msgs}\r\nNats-Pending-Bytes: {bytes}\r\n\r\n"
    ))
}

/// The idle heartbeat: `100 Idle Heartbeat` with the last delivered sequences (and the flow
/// control subject while a push consumer is stalled).
pub(crate) fn heartbeat(last_consumer: u64, last_stream: u64, stalled: Option<&str>) -> Bytes {
    let mut s = format!(
        "NATS/1.0 100 Idle Heartbeat\r\nNats-Last-Consumer: {last_consumer}\r\nNats-Last-Stream: {last_stream}\r\n"
    );
    if let Some(fc) = stalled {
        s.push_str("Nats-Consumer-Stalled: ");
        s.push_str(fc);
        s.push_str("\r\n");
    }
    s.push_str("\r\n");
    Bytes::from(s)
}

/// The flow control request sent to a push consumer's deliver subject.
pub(crate) const FLOW_CONTROL_REQUEST: &[u8] = b"NATS/1.0 100 FlowControl Request\r\n\r\n";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bodies() {
        assert_eq!(parse_body(b"").map(|b| b.batch), Some(1));
        assert_eq!(parse_body(b" 3 ").map(|b| b.batch), Some(3));
        let b = parse_body(br#"{"batch":5,"expires":1000,"no_wait":true,"max_bytes":10}"#).unwrap();
        assert_eq!(
            (b.batch, b.expires, b.no_wait, b.max_bytes),
            (5, 1000, true, 10)
        );
        assert!(parse_body(b"{nope").is_none());
        assert!(parse_body(b"abc").is_none());
    }

    #[test]
    fn status_bytes() {
        assert_eq!(
            &status("404 No Messages")[..],
            b"NATS/1.0 404 No Messages\r\n\r\n"
        );
        assert_eq!(
            &status_with_pending("408 Request Timeout", 1, 0)[..],
            &b"NATS/1.0 408 Request Timeout\r\nNats-Pending-Messages: 1\r\nNats-Pending-Bytes: 0\r\n\r\n"[..]
        );
        assert_eq!(
            &heartbeat(2, 2, None)[..],
            &b"NATS/1.0 100 Idle Heartbeat\r\nNats-Last-Consumer: 2\r\nNats-Last-Stream: 2\r\n\r\n"
                [..]
        );
    }
}
