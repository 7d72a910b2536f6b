//! JetStream advisories (`$JS.EVENT.ADVISORY.>`): stream created, updated, deleted.

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
