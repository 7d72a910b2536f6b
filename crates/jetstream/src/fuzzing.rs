//! Entry points for the fuzz targets (`tests/fuzz`): the real decoding paths for what
//! clients send, without a server around them. Not part of the supported API.

use std::sync::Arc;

use bytes::Bytes;
use tokio::time::Instant;

use crate::api::{self, ApiRequest};
use crate::consumer::ackmsg::{self, AckKind};
use crate::consumer::acks::Acks;
use crate::consumer::config::AckPolicy;
use crate::consumer::pull::{self, Waiting};
use crate::jetstream::JetStream;

/// Handles one `$JS.API` request exactly as the API task does (decoding, checks, the
/// handler) and returns the reply body, if any. Blocking, like the API task's handlers.
pub fn api_request(js: &Arc<JetStream>, subject: &str, payload: &[u8]) -> Option<Vec<u8>> {
    let req = ApiRequest {
        subject: subject.to_string(),
        reply: Some("_INBOX.fuzz".to_string()),
        payload: Bytes::copy_from_slice(payload),
        headers: None,
        answer: None,
    };
    api::handle(js, &req).map(|r| r.payload.to_vec())
}

/// Parses an ack subject and body and applies them to a consumer's ack state that has
/// `delivered` messages out (every ack kind, `+NXT` bodies as pull requests), as the
/// consumer task does.
pub fn ack(subject: &str, body: &[u8], policy_all: bool, delivered: u8) {
    let policy = if policy_all {
        AckPolicy::All
    } else {
        AckPolicy::Explicit
    };
    let now = Instant::now();
    let mut acks = Acks::new(policy, 30_000_000_000, &[1_000_000_000, 5_000_000_000], 5);
    for seq in 1..=u64::from(delivered) {
        acks.delivered(seq, now, 0);
    }
    let Some(r) = ackmsg::parse_subject(subject) else {
        return;
    };
    match ackmsg::parse_body(body) {
        AckKind::Ack => {
            acks.ack(r.sseq);
        }
        AckKind::Nak(delay) => {
            acks.nak(r.sseq, delay, now);
        }
        AckKind::Progress => acks.in_progress(r.sseq, now),
        AckKind::Term(_) => {
            acks.term(r.sseq);
        }
        AckKind::Next(req) => {
            acks.ack(r.sseq);
            pull_request(&req);
        }
        AckKind::Unknown => {}
    }
    acks.expire(now);
    acks.take_exhausted();
    let _ = acks.next_deadline();
    while acks.next_redelivery().is_some() {}
}

/// Parses a pull request body and makes the waiting request from it.
pub fn pull_request(body: &[u8]) {
    if let Some(req) = pull::parse_body(body) {
        let w = Waiting::new("_INBOX.fuzz".to_string(), &req, Instant::now());
        let _ = w.timeout_status();
    }
}

/// Parses the header values the 2.11/2.12 write paths read from clients: a schedule
/// pattern in a time zone (and its next firings), a `Nats-TTL` and a `Nats-Incr`.
pub fn header_values(pattern: &str, zone: &str, value: &str, at: i64) {
    let zone = crate::cron::zone(zone);
    if let Some(p) = crate::cron::parse(pattern, zone.as_ref()) {
        if let Some((next, _)) = p.next(at, at) {
            let _ = p.next(next, next);
        }
    }
    let _ = crate::ttl::parse(value);
    let _ = crate::counter::parse_incr(value);
}
