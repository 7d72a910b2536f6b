//! Dead-letter subjects, Petrel's own (no NATS server has them; users rebuild them from
//! advisories). A consumer names one in its 2.10 `metadata` map under
//! [`DEAD_LETTER_KEY`], so unmodified clients and the `nats` CLI can set it. When a message
//! exhausts `max_deliver`, or a client terminates it with `+TERM`, the consumer publishes a
//! copy of the stored message — its own headers and payload, plus headers naming where it
//! came from and why — on that subject; a stream capturing the subject is the dead-letter
//! queue. The copy is the server's own message (it never acts as a request), published as
//! the MAX_DELIVERIES / MSG_TERMINATED advisory is.

use std::fmt::Write;

use bytes::Bytes;
use petrel_store::StoredMsg;

use super::config::ConsumerConfig;
use crate::config::StreamConfig;
use crate::errors::ApiError;
use crate::time::rfc3339_nano;

/// The `metadata` key naming a consumer's dead-letter subject.
pub const DEAD_LETTER_KEY: &str = "petrel.dead_letter_subject";

/// Header: the stream the message was stored in.
pub const HDR_STREAM: &str = "Petrel-Dead-Letter-Stream";
/// Header: the consumer that gave up on it.
pub const HDR_CONSUMER: &str = "Petrel-Dead-Letter-Consumer";
/// Header: its stream sequence.
pub const HDR_SEQUENCE: &str = "Petrel-Dead-Letter-Sequence";
/// Header: the subject it was stored under.
pub const HDR_SUBJECT: &str = "Petrel-Dead-Letter-Subject";
/// Header: when it was stored (RFC 3339, UTC).
pub const HDR_TIME: &str = "Petrel-Dead-Letter-Time-Stamp";
/// Header: how many times it was delivered.
pub const HDR_DELIVERIES: &str = "Petrel-Dead-Letter-Deliveries";
/// Header: `max_deliveries` or `terminated`.
pub const HDR_REASON: &str = "Petrel-Dead-Letter-Reason";
/// Header: the reason text a `+TERM <reason>` gave, if any.
pub const HDR_TERM_REASON: &str = "Petrel-Dead-Letter-Term-Reason";

/// Why a message is dead.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Reason {
    /// It reached `max_deliver` without an ack.
    MaxDeliveries,
    /// A client terminated it (`+TERM`, with its reason text).
    Terminated(String),
}

/// A message the consumer gave up on, to copy once its stored form is read.
#[derive(Debug, Clone)]
pub(crate) struct Dead {
    pub sseq: u64,
    pub deliveries: u64,
    pub reason: Reason,
}

/// The consumer's dead-letter subject, if it has one.
pub(crate) fn subject(cfg: &ConsumerConfig) -> Option<&str> {
    cfg.metadata
        .get(DEAD_LETTER_KEY)
        .map(String::as_str)
        .filter(|s| !s.is_empty())
}

/// Refuses (10012, saying what to fix) a dead-letter subject that is not one literal
/// subject, points into the server's own subject spaces, or is captured by the consumer's
/// own stream (every dead message would come back to the consumer that gave up on it).
pub(crate) fn check(cfg: &ConsumerConfig, stream: &StreamConfig) -> Result<(), ApiError> {
    let Some(dl) = subject(cfg) else {
        return Ok(());
    };
    let bad = |why: String| {
        Err(ApiError::consumer_create(format!(
            "metadata {DEAD_LETTER_KEY:?} {dl:?} {why}"
        )))
    };
    if !petrel_subject::is_valid_literal_subject(dl.as_bytes()) {
        return bad("is not a valid subject without wildcards".into());
    }
    if let Some(space) = crate::transform::server_space(dl) {
        return bad(format!("is inside the server's {space:?} subject space"));
    }
    if let Some(own) = stream
        .subjects
        .iter()
        .find(|s| petrel_subject::matches(s.as_bytes(), dl.as_bytes()))
    {
        return bad(format!(
            "is captured by the stream's own subject {own:?}: use a subject another stream captures"
        ));
    }
    Ok(())
}

/// The copy of `msg` for the dead-letter subject: its headers (if any) followed by the
/// dead-letter headers; the payload unchanged.
pub(crate) fn headers(stream: &str, consumer: &str, msg: &StoredMsg, dead: &Dead) -> Bytes {
    let mut h = String::with_capacity(256);
    let (reason, term) = match &dead.reason {
        Reason::MaxDeliveries => ("max_deliveries", None),
        Reason::Terminated(why) => ("terminated", Some(why.as_str())),
    };
    let _ = write!(
        h,
        "{HDR_STREAM}: {stream}\r\n{HDR_CONSUMER}: {consumer}\r\n{HDR_SEQUENCE}: {}\r\n{HDR_SUBJECT}: {}\r\n{HDR_TIME}: {}\r\n{HDR_DELIVERIES}: {}\r\n{HDR_REASON}: {reason}\r\n",
        msg.seq,
        msg.subject,
        rfc3339_nano(msg.ts),
        dead.deliveries,
    );
    if let Some(why) = term.filter(|w| !w.is_empty()) {
        // A header value is one line.
        let one_line: String = why.chars().filter(|c| *c != '\r' && *c != '\n').collect();
        let _ = write!(h, "{HDR_TERM_REASON}: {one_line}\r\n");
    }
    // The publisher's instructions to its stream (roll-ups, expectations, dedup ids) are
    // not instructions to the dead-letter stream: the copy is data.
    let own = msg
        .headers
        .as_ref()
        .map(|hb| crate::hdr::without(hb, is_directive));
    crate::hdr::extend(own.as_ref(), &h)
}

/// Headers a stream acts on when it stores a message.
fn is_directive(name: &str) -> bool {
    name.starts_with("Nats-Expected-")
        || ["Nats-Rollup", "Nats-Msg-Id", "Nats-TTL"]
            .iter()
            .any(|d| name.eq_ignore_ascii_case(d))
}

/// The copies to publish for `dead` messages of `consumer` (subject, headers, payload),
/// read from the store before an ack-removing retention drops them. A message already gone
/// (limits removed it meanwhile) has nothing to copy.
pub(crate) fn copies(
    stream: &str,
    consumer: &str,
    cfg: &ConsumerConfig,
    store: &dyn petrel_store::StreamStore,
    dead: Vec<Dead>,
) -> Vec<(String, Bytes, Bytes)> {
    let Some(dl) = subject(cfg) else {
        return Vec::new();
    };
    dead.into_iter()
        .filter_map(|d| match store.get(d.sseq) {
            Ok(Some(msg)) => {
                let h = headers(stream, consumer, &msg, &d);
                Some((dl.to_string(), h, msg.payload))
            }
            Ok(None) => None,
            Err(e) => {
                tracing::warn!(stream, consumer, seq = d.sseq, error = %e,
                    "dead-letter copy not made: the message cannot be read");
                None
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg(dl: &str) -> ConsumerConfig {
        let mut c = ConsumerConfig::default();
        c.metadata.insert(DEAD_LETTER_KEY.into(), dl.into());
        c
    }

    #[test]
    fn checks_say_what_to_fix() {
        let stream = StreamConfig {
            subjects: vec!["orders.>".into()],
            ..StreamConfig::default()
        };
        assert!(check(&cfg("dlq.orders"), &stream).is_ok());
        assert!(check(&ConsumerConfig::default(), &stream).is_ok());
        for (dl, says) in [
            ("dlq.*", "without wildcards"),
            ("$JS.API.STREAM.DELETE.ORDERS", "subject space"),
            ("orders.dead", "captured by the stream's own subject"),
        ] {
            let e = check(&cfg(dl), &stream).unwrap_err();
            assert_eq!(e.err_code, 10012);
            assert!(e.description.contains(says), "{dl}: {}", e.description);
        }
    }

    #[test]
    fn copy_headers() {
        let msg = StoredMsg {
            seq: 9,
            ts: 1_000_000_000,
            subject: "orders.1".into(),
            headers: Some(Bytes::from_static(b"NATS/1.0\r\nA: b\r\n\r\n")),
            payload: Bytes::from_static(b"x"),
            raw: None,
        };
        let dead = Dead {
            sseq: 9,
            deliveries: 2,
            reason: Reason::Terminated("bad\r\ninput".into()),
        };
        let h = headers("ORDERS", "worker", &msg, &dead);
        assert_eq!(
            &h[..],
            b"NATS/1.0\r\nA: b\r\nPetrel-Dead-Letter-Stream: ORDERS\r\nPetrel-Dead-Letter-Consumer: worker\r\nPetrel-Dead-Letter-Sequence: 9\r\nPetrel-Dead-Letter-Subject: orders.1\r\nPetrel-Dead-Letter-Time-Stamp: 1970-01-01T00:00:01Z\r\nPetrel-Dead-Letter-Deliveries: 2\r\nPetrel-Dead-Letter-Reason: terminated\r\nPetrel-Dead-Letter-Term-Reason: badinput\r\n\r\n"
        );
    }
}
