//! Republish (`republish {src, dest, headers_only}`): once a batch is committed, each stored
//! message whose subject the republish transform matches is published again by the server
//! on the transformed subject, with nats-server's headers naming where it is stored:
//! `Nats-Stream`, `Nats-Subject`, `Nats-Sequence`, `Nats-Time-Stamp`, `Nats-Last-Sequence`
//! (the previous sequence of the same subject, 0 for its first) and, with `headers_only`,
//! `Nats-Msg-Size` instead of the payload. The copies are the server's own messages: they
//! reach client subscriptions and capturing streams, never a request subject.

use std::fmt::Write;

use bytes::Bytes;

use crate::time::rfc3339_nano;
use crate::transform::SubjectTransform;

/// A stored message to publish again after the commit.
#[derive(Debug, Clone)]
pub(crate) struct Republished {
    pub subject: String,
    pub headers: Bytes,
    pub payload: Bytes,
}

/// Where a stored message goes, if it is republished: the transformed subject, when it is
/// a valid publish subject (nats-server drops the copy otherwise, with a warning).
pub(crate) fn destination(t: &SubjectTransform, stream: &str, subject: &str) -> Option<String> {
    let dest = t.apply(subject)?;
    if petrel_subject::is_valid_literal_subject(dest.as_bytes()) {
        Some(dest)
    } else {
        tracing::warn!(stream, subject = %dest, "republish suppressed: invalid subject");
        None
    }
}

/// What one stored message is (its origin, for the headers).
pub(crate) struct Stored<'a> {
    pub stream: &'a str,
    pub subject: &'a str,
    pub seq: u64,
    pub ts: i64,
    pub last_seq: u64,
    pub headers: Option<&'a Bytes>,
    pub payload: &'a Bytes,
}

/// The copy of `m` for `dest`: its own headers (if any) followed by the republish headers.
pub(crate) fn build(m: &Stored<'_>, dest: String, headers_only: bool) -> Republished {
    let mut h = String::with_capacity(160);
    let _ = write!(
        h,
        "Nats-Stream: {}\r\nNats-Subject: {}\r\nNats-Sequence: {}\r\nNats-Time-Stamp: {}\r\nNats-Last-Sequence: {}\r\n",
        m.stream,
        m.subject,
        m.seq,
        rfc3339_nano(m.ts),
        m.last_seq
    );
    if headers_only {
        let _ = write!(h, "Nats-Msg-Size: {}\r\n", m.payload.len());
    }
    Republished {
        subject: dest,
        headers: crate::hdr::extend(m.headers, &h),
        payload: if headers_only {
            Bytes::new()
        } else {
            m.payload.clone()
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stored<'a>(headers: Option<&'a Bytes>, payload: &'a Bytes) -> Stored<'a> {
        Stored {
            stream: "ORDERS",
            subject: "orders.1",
            seq: 7,
            ts: 1_000_000_000,
            last_seq: 3,
            headers,
            payload,
        }
    }

    #[test]
    fn headers_as_nats_server_writes_them() {
        let payload = Bytes::from_static(b"hello");
        let r = build(&stored(None, &payload), "copy.orders.1".into(), false);
        assert_eq!(r.subject, "copy.orders.1");
        assert_eq!(
            &r.headers[..],
            b"NATS/1.0\r\nNats-Stream: ORDERS\r\nNats-Subject: orders.1\r\nNats-Sequence: 7\r\nNats-Time-Stamp: 1970-01-01T00:00:01Z\r\nNats-Last-Sequence: 3\r\n\r\n"
        );
        assert_eq!(r.payload, payload);
        let own = Bytes::from_static(b"NATS/1.0\r\nA: b\r\n\r\n");
        let r = build(&stored(Some(&own), &payload), "c".into(), true);
        assert!(r
            .headers
            .starts_with(b"NATS/1.0\r\nA: b\r\nNats-Stream: ORDERS\r\n"));
        assert!(r
            .headers
            .ends_with(b"Nats-Last-Sequence: 3\r\nNats-Msg-Size: 5\r\n\r\n"));
        assert!(r.payload.is_empty());
    }
}
