//! Plain data shared by every store: stored messages, stream state, limits, purge requests,
//! and the per-message byte accounting of nats-server.

use std::time::Duration;

use bytes::Bytes;
use serde::{Deserialize, Serialize};

/// The highest sequence a store ever assigns (`i64::MAX`). Sequences never reach or wrap
/// past `u64::MAX`: `seq + 1` is always safe, a purge or `first_seq` beyond this is
/// clamped or refused, and an append past it fails with [`crate::StoreError::SequenceExhausted`].
pub const MAX_SEQ: u64 = i64::MAX as u64;

/// One message as returned by reads.
#[derive(Debug, Clone)]
pub struct StoredMsg {
    /// Stream sequence.
    pub seq: u64,
    /// Timestamp in Unix nanoseconds, as given to `append`.
    pub ts: i64,
    /// Subject the message was published to.
    pub subject: String,
    /// Raw NATS header block (`NATS/1.0\r\n...`), `None` when the message had no headers.
    pub headers: Option<Bytes>,
    /// Message body.
    pub payload: Bytes,
    /// `headers` then `payload` in one buffer, when the store read them that way (a file
    /// store record): deliveries then send it without copying. Not part of equality.
    pub raw: Option<Bytes>,
}

impl PartialEq for StoredMsg {
    fn eq(&self, o: &Self) -> bool {
        (
            self.seq,
            self.ts,
            &self.subject,
            &self.headers,
            &self.payload,
        ) == (o.seq, o.ts, &o.subject, &o.headers, &o.payload)
    }
}

impl Eq for StoredMsg {}

/// Data cut by recovery because it was torn or corrupt (`state.lost` in StreamInfo).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct LostData {
    /// Sequences known or presumed lost (see FORMAT.md, "Recovery").
    pub msgs: Vec<u64>,
    /// Number of bytes cut from block files.
    pub bytes: u64,
}

/// Stream state as reported in StreamInfo (`state`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct StreamState {
    /// Number of stored messages.
    pub msgs: u64,
    /// Accounted bytes (see [`file_msg_size`] and [`mem_msg_size`]).
    pub bytes: u64,
    /// First live sequence; `last_seq + 1` when empty after use, 0 for a fresh store.
    pub first_seq: u64,
    /// Timestamp of the first live message, 0 when empty.
    pub first_ts: i64,
    /// Last sequence ever assigned (kept when messages are deleted or purged).
    pub last_seq: u64,
    /// Timestamp of the last sequence ever assigned.
    pub last_ts: i64,
    /// Number of distinct subjects with at least one message.
    pub num_subjects: u64,
    /// Interior deletes: `last_seq - first_seq + 1 - msgs` when not empty.
    pub num_deleted: u64,
    /// What the last recovery had to cut, if anything (file store only).
    pub lost: Option<LostData>,
}

/// A purge request (`$JS.API.STREAM.PURGE`). All fields `None` purges everything; `seq` and
/// `keep` of 0 count as not set (as nats-server's `PurgeEx`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PurgeRequest {
    /// Only purge messages whose subject matches this filter (wildcards allowed).
    pub subject: Option<String>,
    /// Only purge messages with a sequence strictly below this one. Without a subject filter and
    /// with a value past `last_seq + 1`, the stream is emptied and restarts at this sequence
    /// (nats-server's `Compact`).
    pub seq: Option<u64>,
    /// Keep this many of the newest matching messages (counted, not by sequence arithmetic).
    pub keep: Option<u64>,
}

/// What to do when a limit is reached.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub enum Discard {
    /// Drop the oldest messages to make room (the default).
    #[default]
    Old,
    /// Refuse the new message.
    New,
}

/// Stream limits, enforced by the store after every append. A value `<= 0` (or a zero
/// `max_age`) means "no limit", as nats-server treats its `-1` defaults.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoreLimits {
    /// Maximum number of messages.
    pub max_msgs: i64,
    /// Maximum accounted bytes.
    pub max_bytes: i64,
    /// Maximum age; enforced by [`crate::StreamStore::expire`].
    pub max_age: Duration,
    /// Maximum messages per subject (KV history); always drops the subject's oldest unless
    /// `discard_new_per_subject` is set with `Discard::New`.
    pub max_msgs_per_subject: i64,
    /// Maximum `len(headers) + len(payload)`.
    pub max_msg_size: i32,
    /// Discard policy for `max_msgs` / `max_bytes`.
    pub discard: Discard,
    /// With `Discard::New`, refuse a message whose subject is at `max_msgs_per_subject`.
    pub discard_new_per_subject: bool,
}

impl Default for StoreLimits {
    fn default() -> Self {
        StoreLimits {
            max_msgs: -1,
            max_bytes: -1,
            max_age: Duration::ZERO,
            max_msgs_per_subject: -1,
            max_msg_size: -1,
            discard: Discard::Old,
            discard_new_per_subject: false,
        }
    }
}

/// Accounted size of a message in a file store, exactly as nats-server counts it:
/// `22 + len(subject) + len(payload) + 8`, plus `4 + len(headers)` when headers exist.
pub fn file_msg_size(subject: &str, headers: Option<&[u8]>, payload: &[u8]) -> u64 {
    file_msg_size_of(subject, headers.map_or(0, <[u8]>::len), payload.len())
}

/// [`file_msg_size`] from the header and payload lengths (0 = no headers).
pub fn file_msg_size_of(subject: &str, headers: usize, payload: usize) -> u64 {
    let hdr = if headers > 0 { 4 + headers as u64 } else { 0 };
    22 + subject.len() as u64 + payload as u64 + 8 + hdr
}

/// Accounted size of a message in a memory store, exactly as nats-server counts it:
/// `len(subject) + len(headers) + len(payload) + 16`.
pub fn mem_msg_size(subject: &str, headers: Option<&[u8]>, payload: &[u8]) -> u64 {
    subject.len() as u64 + headers.map_or(0, |h| h.len() as u64) + payload.len() as u64 + 16
}

/// Turns `Some(empty)` headers into `None`: an empty header block is no header block
/// (nats-server sets the header bit only when `len(hdr) > 0`).
pub(crate) fn normalize_headers(headers: Option<Bytes>) -> Option<Bytes> {
    headers.filter(|h| !h.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_match_nats_server() {
        assert_eq!(file_msg_size("S1", None, b"x0"), 34);
        assert_eq!(file_msg_size("orders.2", None, b"m2"), 40);
        let hdr = vec![b'h'; 51];
        assert_eq!(file_msg_size("$KV.b.k1", Some(&hdr), b""), 93);
        assert_eq!(mem_msg_size("l", None, b"x0"), 19);
    }
}
