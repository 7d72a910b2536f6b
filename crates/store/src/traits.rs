//! The `StreamStore` trait that JetStream talks to.

use std::collections::BTreeMap;

use bytes::Bytes;

use crate::error::StoreError;
use crate::types::{PurgeRequest, StoreLimits, StoredMsg, StreamState};

/// Storage of one stream's messages. Synchronous: run it off the async reactor (a dedicated
/// thread or `spawn_blocking`).
///
/// Writes are buffered: [`append`](Self::append) assigns the sequence and makes the message
/// readable at once, [`commit`](Self::commit) makes everything appended so far durable (per
/// the file store's sync mode). Group commit is many appends, then one commit, then every
/// PubAck. Every other mutation (`delete`, `purge`, `expire`, `set_limits`, `set_first_seq`)
/// commits before it returns.
pub trait StreamStore: Send {
    /// Stores a message with the next sequence and returns `(seq, ts)`. Limits are enforced
    /// right after (discard old) or before (discard new: `MaxMsgs`, `MaxBytes`,
    /// `MaxMsgsPerSubject`; any policy: `MsgTooLarge`), so callers cannot forget them.
    /// `Some(empty)` headers are stored as `None`.
    fn append(
        &mut self,
        subject: &str,
        headers: Option<Bytes>,
        payload: Bytes,
        ts_nanos: i64,
    ) -> Result<(u64, i64), StoreError>;

    /// Makes everything appended so far durable (file store: one write per block touched and
    /// one fsync with `SyncMode::Always`; a write without fsync with `SyncMode::Interval`).
    fn commit(&mut self) -> Result<(), StoreError>;

    /// Forces written data to stable storage (the timer of `SyncMode::Interval`).
    fn sync(&mut self) -> Result<(), StoreError>;

    /// The message with this sequence, if it is stored.
    fn get(&self, seq: u64) -> Result<Option<StoredMsg>, StoreError>;

    /// The timestamp (Unix ns) of the message with this sequence, if it is stored: from
    /// the index, without reading the message.
    fn timestamp(&self, seq: u64) -> Option<i64>;

    /// The subject of the message with this sequence, if it is stored: from the index.
    fn subject_of(&self, seq: u64) -> Option<String>;

    /// Up to `max` stored messages with a timestamp `<= cutoff_nanos` for which `skip` is
    /// false, oldest first, as `(seq, subject)`, from the index; the scan stops at the first
    /// younger message (per-message TTL streams expire `max_age` themselves: a message with
    /// `Nats-TTL: never` stays).
    fn aged(&self, cutoff_nanos: i64, skip: &dyn Fn(u64) -> bool, max: usize)
        -> Vec<(u64, String)>;

    /// The newest message on a literal subject.
    fn last_by_subject(&self, subject: &str) -> Result<Option<StoredMsg>, StoreError>;

    /// The sequence of the newest message on a literal subject at or before `max_seq`,
    /// from the index (multi-last direct gets with `up_to_seq`).
    fn last_seq_of_subject_at(&self, subject: &str, max_seq: u64) -> Option<u64>;

    /// The first message with `seq >= from_seq` whose subject matches `filter` (wildcards
    /// `*` and `>` allowed; empty or `>` matches all).
    fn next_by_subject(&self, from_seq: u64, filter: &str)
        -> Result<Option<StoredMsg>, StoreError>;

    /// Deletes one message; `erase` also overwrites its bytes on disk ("no_erase": false).
    /// Returns whether the message existed.
    fn delete(&mut self, seq: u64, erase: bool) -> Result<bool, StoreError>;

    /// Deletes many messages with one commit (work-queue and interest acks); returns how many
    /// existed. Never erases bytes.
    fn delete_many(&mut self, seqs: &[u64]) -> Result<u64, StoreError>;

    /// Purges messages (see [`PurgeRequest`]); returns how many were removed.
    fn purge(&mut self, req: PurgeRequest) -> Result<u64, StoreError>;

    /// Removes messages older than `max_age` at `now_nanos`; returns how many.
    fn expire(&mut self, now_nanos: i64) -> Result<u64, StoreError>;

    /// Replaces the limits and enforces them at once.
    fn set_limits(&mut self, limits: StoreLimits) -> Result<(), StoreError>;

    /// Store new message bodies compressed when that saves space (`compression: s2`). Stores
    /// that do not compress (memory) ignore it; records already written stay as they are.
    fn set_compression(&mut self, _on: bool) {}

    /// The limits in force.
    fn limits(&self) -> &StoreLimits;

    /// Makes `seq` the next sequence `append` assigns, the ones between `last_seq` and it
    /// being deleted (a mirror keeping its origin's sequence numbers across the origin's
    /// gaps). No-op when `seq <= last_seq + 1`. Durable with the next commit.
    fn skip_to(&mut self, seq: u64, ts_nanos: i64) -> Result<(), StoreError>;

    /// Starts an empty store at `seq` (StreamConfig `first_seq`). Allowed while the store holds
    /// no message and `seq > last_seq`; otherwise `StoreError::InvalidFirstSeq`.
    fn set_first_seq(&mut self, seq: u64) -> Result<(), StoreError>;

    /// Counts, bytes, first/last sequence and time, deletes, lost data.
    fn state(&self) -> StreamState;

    /// Message count per subject for subjects matching `filter`.
    fn subjects_state(&self, filter: &str) -> BTreeMap<String, u64>;

    /// Number of messages with `seq >= from_seq` matching `filter`.
    fn num_pending(&self, from_seq: u64, filter: &str) -> u64;

    /// Commits, syncs and (file store) writes a checkpoint, if anything changed since the
    /// last, for a fast next open. Call it on
    /// clean shutdown; dropping the store without it is a crash as far as the disk is
    /// concerned (committed data is safe; the next open scans the blocks).
    fn close(&mut self) -> Result<(), StoreError>;

    /// How many times an I/O failure rolled the store back to its last commit. When it
    /// moves, every append since the last successful commit is gone (sequences above the
    /// new `last_seq` were never stored).
    fn rollbacks(&self) -> u64 {
        0
    }
}
