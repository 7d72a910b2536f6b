//! JetStream advisories (`$JS.EVENT.ADVISORY.>`): stream and consumer actions, and the
//! per-message consumer events (nak, term, max deliveries).

use bytes::Bytes;
use serde::Serialize;

use crate::json::encode;
use crate::time::{now_nanos, rfc3339_nano};

/// Type of the stream action advisory.
pub const STREAM_ACTION_TYPE: &str = "io.nats.jetstream.advisory.v1.stream_action";

/// What happened to a stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StreamAction {
    /// Created (`CREATED`, action `create`).
    Create,
    /// Updated (`UPDATED`, action `modify`).
    Modify,
    /// Deleted (`DELETED`, action `delete`).
    Delete,
}

impl StreamAction {
    fn subject_token(self) -> &'static str {
        match self {
            StreamAction::Create => "CREATED",
            StreamAction::Modify => "UPDATED",
            StreamAction::Delete => "DELETED",
        }
    }

    fn action(self) -> &'static str {
        match self {
            StreamAction::Create => "create",
            StreamAction::Modify => "modify",
            StreamAction::Delete => "delete",
        }
    }
}

#[derive(Serialize)]
struct StreamActionAdvisory<'a> {
    #[serde(rename = "type")]
    kind: &'static str,
    id: String,
    timestamp: String,
    stream: &'a str,
    action: &'static str,
}

/// A random 22-character base62 id, shaped like a NUID.
pub fn next_id() -> String {
    const ALPHABET: &[u8] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";
    (0..22)
        .map(|_| char::from(ALPHABET[fastrand::usize(..ALPHABET.len())]))
        .collect()
}

/// The (subject, body) of a stream action advisory.
pub fn stream_action(stream: &str, action: StreamAction) -> (String, Bytes) {
    let subject = format!(
        "$JS.EVENT.ADVISORY.STREAM.{}.{stream}",
        action.subject_token()
    );
    let body = encode(&StreamActionAdvisory {
        kind: STREAM_ACTION_TYPE,
        id: next_id(),
        timestamp: rfc3339_nano(now_nanos()),
        stream,
        action: action.action(),
    });
    (subject, body)
}

/// Type of the consumer action advisory.
pub const CONSUMER_ACTION_TYPE: &str = "io.nats.jetstream.advisory.v1.consumer_action";

#[derive(Serialize)]
struct ConsumerActionAdvisory<'a> {
    #[serde(rename = "type")]
    kind: &'static str,
    id: String,
    timestamp: String,
    stream: &'a str,
    consumer: &'a str,
    action: &'static str,
}

/// The (subject, body) of a consumer created (`true`) or deleted (`false`) advisory.
pub fn consumer_action(stream: &str, consumer: &str, created: bool) -> (String, Bytes) {
    let (token, action) = if created {
        ("CREATED", "create")
    } else {
        ("DELETED", "delete")
    };
    let subject = format!("$JS.EVENT.ADVISORY.CONSUMER.{token}.{stream}.{consumer}");
    let body = encode(&ConsumerActionAdvisory {
        kind: CONSUMER_ACTION_TYPE,
        id: next_id(),
        timestamp: rfc3339_nano(now_nanos()),
        stream,
        consumer,
        action,
    });
    (subject, body)
}

#[derive(Serialize)]
struct MsgAdvisory<'a> {
    #[serde(rename = "type")]
    kind: &'static str,
    id: String,
    timestamp: String,
    stream: &'a str,
    consumer: &'a str,
    consumer_seq: u64,
    stream_seq: u64,
    deliveries: u64,
    #[serde(skip_serializing_if = "str::is_empty")]
    reason: &'a str,
}

fn msg_advisory(
    token: &str,
    kind: &'static str,
    stream: &str,
    consumer: &str,
    seqs: (u64, u64, u64),
    reason: &str,
) -> (String, Bytes) {
    let subject = format!("$JS.EVENT.ADVISORY.CONSUMER.{token}.{stream}.{consumer}");
    let body = encode(&MsgAdvisory {
        kind,
        id: next_id(),
        timestamp: rfc3339_nano(now_nanos()),
        stream,
        consumer,
        consumer_seq: seqs.0,
        stream_seq: seqs.1,
        deliveries: seqs.2,
        reason,
    });
    (subject, body)
}

/// `MSG_NAKED`: a delivery was negatively acknowledged.
pub fn nak(stream: &str, consumer: &str, dseq: u64, sseq: u64, dc: u64) -> (String, Bytes) {
    msg_advisory(
        "MSG_NAKED",
        "io.nats.jetstream.advisory.v1.nak",
        stream,
        consumer,
        (dseq, sseq, dc),
        "",
    )
}

/// `MSG_TERMINATED`: a delivery was terminated with `+TERM`.
pub fn terminated(
    stream: &str,
    consumer: &str,
    dseq: u64,
    sseq: u64,
    dc: u64,
    reason: &str,
) -> (String, Bytes) {
    msg_advisory(
        "MSG_TERMINATED",
        "io.nats.jetstream.advisory.v1.terminated",
        stream,
        consumer,
        (dseq, sseq, dc),
        reason,
    )
}

#[derive(Serialize)]
struct MaxDeliverAdvisory<'a> {
    #[serde(rename = "type")]
    kind: &'static str,
    id: String,
    timestamp: String,
    stream: &'a str,
    consumer: &'a str,
    stream_seq: u64,
    deliveries: u64,
}

/// `MAX_DELIVERIES`: a message reached max_deliver and will not be delivered again.
pub fn max_deliveries(stream: &str, consumer: &str, sseq: u64, dc: u64) -> (String, Bytes) {
    let subject = format!("$JS.EVENT.ADVISORY.CONSUMER.MAX_DELIVERIES.{stream}.{consumer}");
    let body = encode(&MaxDeliverAdvisory {
        kind: "io.nats.jetstream.advisory.v1.max_deliver",
        id: next_id(),
        timestamp: rfc3339_nano(now_nanos()),
        stream,
        consumer,
        stream_seq: sseq,
        deliveries: dc,
    });
    (subject, body)
}

#[derive(Serialize)]
struct PauseAdvisory<'a> {
    #[serde(rename = "type")]
    kind: &'static str,
    id: String,
    timestamp: String,
    stream: &'a str,
    consumer: &'a str,
    paused: bool,
    pause_until: String,
}

/// `CONSUMER.PAUSE`: a consumer was paused until `until` (Unix ns; 0 for none), or resumed
/// (by request, or because that time came).
pub fn pause(stream: &str, consumer: &str, paused: bool, until: i64) -> (String, Bytes) {
    let subject = format!("$JS.EVENT.ADVISORY.CONSUMER.PAUSE.{stream}.{consumer}");
    let body = encode(&PauseAdvisory {
        kind: "io.nats.jetstream.advisory.v1.consumer_pause",
        id: next_id(),
        timestamp: rfc3339_nano(now_nanos()),
        stream,
        consumer,
        paused,
        pause_until: rfc3339_nano(until),
    });
    (subject, body)
}

#[derive(Serialize)]
struct GroupAdvisory<'a> {
    #[serde(rename = "type")]
    kind: String,
    id: String,
    timestamp: String,
    stream: &'a str,
    consumer: &'a str,
    group: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pinned_id: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    reason: Option<&'a str>,
}

/// `CONSUMER.PINNED`: a client was pinned for a priority group.
pub fn pinned(stream: &str, consumer: &str, group: &str, pin: &str) -> (String, Bytes) {
    group_advisory("PINNED", "pinned", stream, consumer, group, Some(pin), None)
}

/// `CONSUMER.UNPINNED`: a group's pin ended (`admin` or `timeout`).
pub fn unpinned(stream: &str, consumer: &str, group: &str, reason: &str) -> (String, Bytes) {
    group_advisory(
        "UNPINNED",
        "unpinned",
        stream,
        consumer,
        group,
        None,
        Some(reason),
    )
}

/// A priority group advisory: `$JS.EVENT.ADVISORY.CONSUMER.<event>.<stream>.<consumer>`,
/// type `consumer_group_<kind>`.
fn group_advisory(
    event: &str,
    kind: &str,
    stream: &str,
    consumer: &str,
    group: &str,
    pinned_id: Option<&str>,
    reason: Option<&str>,
) -> (String, Bytes) {
    let subject = format!("$JS.EVENT.ADVISORY.CONSUMER.{event}.{stream}.{consumer}");
    let body = encode(&GroupAdvisory {
        kind: format!("io.nats.jetstream.advisory.v1.consumer_group_{kind}"),
        id: next_id(),
        timestamp: rfc3339_nano(now_nanos()),
        stream,
        consumer,
        group,
        pinned_id,
        reason,
    });
    (subject, body)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shape() {
        let (subj, body) = stream_action("ORDERS", StreamAction::Modify);
        assert_eq!(subj, "$JS.EVENT.ADVISORY.STREAM.UPDATED.ORDERS");
        let v: serde_json::Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(v["type"], STREAM_ACTION_TYPE);
        assert_eq!(v["action"], "modify");
        assert_eq!(v["id"].as_str().unwrap().len(), 22);
    }
}
