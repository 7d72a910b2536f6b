//! Atomic batch publish (nats-server 2.12, `allow_atomic`): messages with `Nats-Batch-Id`
//! and `Nats-Batch-Sequence` 1, 2, … are staged by the ingest task (each answered with an
//! empty reply) until the one with `Nats-Batch-Commit: 1` (or `eob`, itself not stored),
//! and then stored all or none: checked first, appended under one lock hold, roll-ups
//! applied after the last append, and made durable by one commit whose PubAck names the
//! batch and its size. Nothing of a batch reaches the disk before that commit has all of
//! it; a torn write of it (power loss) is cut when the stream opens
//! ([`repair_torn_batch`]), so a batch is wholly visible or not at all.
//!
//! Staging is in memory and bounded (1,000 messages and 16 MiB a batch, 50 batches and
//! 64 MiB a stream, 10 s without a message abandons a batch); a batch whose staging was
//! lost (restart, new leader) is refused as incomplete at its commit, and its publisher
//! sends it again.

use std::collections::{HashMap, HashSet};
use std::time::{Duration, Instant};

use bytes::Bytes;
use petrel_store::{PurgeRequest, StreamStore};

use super::{
    Outcome, PubAck, PubAckError, EXPECTED_LAST_MSG_ID, EXPECTED_LAST_SEQ, EXPECTED_LAST_SUBJ_SEQ,
    EXPECTED_LAST_SUBJ_SEQ_SUBJECT,
};
use crate::dedup::MSG_ID;
use crate::errors::ApiError;
use crate::json::encode;
use crate::republish::Republished;
use crate::stream::{Inbound, Inner, Stream};

/// Header: the batch a message belongs to.
pub const BATCH_ID: &str = "Nats-Batch-Id";
/// Header: the message's place in its batch, from 1.
pub const BATCH_SEQ: &str = "Nats-Batch-Sequence";
/// Header: `1` (store the batch with this message) or `eob` (without it).
pub const BATCH_COMMIT: &str = "Nats-Batch-Commit";

/// Most messages in a batch (nats-server's default).
pub(crate) const MAX_MSGS: u64 = 1000;
/// Most batches open on one stream (nats-server's default).
const MAX_INFLIGHT: usize = 50;
/// A batch without a message for this long is abandoned (nats-server's default).
const TIMEOUT: Duration = Duration::from_secs(10);
/// Most bytes one batch stages.
const MAX_BATCH_BYTES: usize = 16 * 1024 * 1024;
/// Most bytes a stream stages over all its batches.
const MAX_STAGED_BYTES: usize = 64 * 1024 * 1024;
/// Longest batch id.
const MAX_ID_LEN: usize = 64;

/// The batch id of a message, if it has one (a byte search first: most messages have no
/// headers, and most headers no batch).
pub(crate) fn batch_id(m: &Inbound) -> Option<String> {
    if !may_be_batched(m) {
        return None;
    }
    let h = m.headers.as_deref()?;
    let parsed = petrel_wire::headers::parse(h)?;
    parsed
        .get(BATCH_ID)
        .filter(|v| !v.is_empty())
        .map(str::to_string)
}

/// Whether a message's headers mention `Nats-Batch-Id` at all (a byte search).
fn may_be_batched(m: &Inbound) -> bool {
    m.headers
        .as_deref()
        .is_some_and(|h| memchr::memmem::find(h, BATCH_ID.as_bytes()).is_some())
}

/// One batch being staged.
#[derive(Debug)]
struct Staged {
    msgs: Vec<Inbound>,
    bytes: usize,
    touched: Instant,
}

/// The batches a stream is staging.
#[derive(Debug, Default)]
pub(crate) struct Staging {
    batches: HashMap<String, Staged>,
    bytes: usize,
}

/// What staging a message decided.
#[derive(Debug)]
pub(crate) enum Step {
    /// Staged; the reply (if any) gets an empty message.
    Staged(Option<String>),
    /// Refused (the batch abandoned); the reply gets this error.
    Refused(Option<String>, ApiError),
    /// The batch is complete: store these messages, the last one carrying the reply.
    Commit(Vec<Inbound>),
}

impl Staging {
    /// Forgets a batch.
    fn drop_batch(&mut self, id: &str) {
        if let Some(b) = self.batches.remove(id) {
            self.bytes -= b.bytes;
        }
    }

    /// Stages message `m` of batch `id` (checks in nats-server 2.15's order).
    pub(crate) fn stage(
        &mut self,
        allowed: bool,
        id: String,
        mut m: Inbound,
        now: Instant,
    ) -> Step {
        let reply = m.reply.clone().filter(|r| !r.is_empty());
        let refuse = |e: ApiError| Step::Refused(reply.clone(), e);
        if !allowed {
            return refuse(ApiError::atomic_disabled());
        }
        if id.len() > MAX_ID_LEN {
            return refuse(ApiError::atomic_invalid_id());
        }
        let Some(h) = m.headers.as_deref().and_then(petrel_wire::headers::parse) else {
            return refuse(ApiError::atomic_missing_seq());
        };
        let Some(seq) = h.get(BATCH_SEQ).and_then(|v| v.parse::<u64>().ok()) else {
            return refuse(ApiError::atomic_missing_seq());
        };
        let commit = h.get(BATCH_COMMIT);
        let eob = commit == Some("eob");
        let size = if eob { seq.saturating_sub(1) } else { seq };
        if !self.batches.contains_key(&id) {
            if seq != 1 {
                return refuse(if size > MAX_MSGS {
                    ApiError::atomic_too_large(MAX_MSGS)
                } else {
                    ApiError::atomic_incomplete()
                });
            }
            self.batches
                .retain(|_, b| now.duration_since(b.touched) < TIMEOUT);
            self.bytes = self.batches.values().map(|b| b.bytes).sum();
            if self.batches.len() >= MAX_INFLIGHT {
                return refuse(ApiError::atomic_too_many_inflight());
            }
            self.batches.insert(
                id.clone(),
                Staged {
                    msgs: Vec::new(),
                    bytes: 0,
                    touched: now,
                },
            );
        }
        if commit.is_some_and(|c| c != "1" && c != "eob") {
            self.drop_batch(&id);
            return refuse(ApiError::atomic_invalid_commit());
        }
        if h.get(crate::api::level::REQUIRED_API_LEVEL).is_some() {
            if crate::api::level::refused(m.headers.as_deref()) {
                self.drop_batch(&id);
                return refuse(ApiError::required_api_level());
            }
            m.headers = m
                .headers
                .as_ref()
                .map(|b| crate::hdr::without(b, |k| k == crate::api::level::REQUIRED_API_LEVEL));
        }
        let Some(b) = self.batches.get_mut(&id) else {
            return refuse(ApiError::atomic_incomplete());
        };
        let stale = now.duration_since(b.touched) >= TIMEOUT;
        if stale || seq != b.msgs.len() as u64 + 1 || (seq == 1 && eob) {
            self.drop_batch(&id);
            return refuse(ApiError::atomic_incomplete());
        }
        if size > MAX_MSGS {
            self.drop_batch(&id);
            return refuse(ApiError::atomic_too_large(MAX_MSGS));
        }
        let bytes = m.size();
        if b.bytes + bytes > MAX_BATCH_BYTES {
            self.drop_batch(&id);
            return refuse(ApiError::atomic_too_large(MAX_MSGS));
        }
        if self.bytes + bytes > MAX_STAGED_BYTES {
            self.drop_batch(&id);
            return refuse(ApiError::atomic_too_many_inflight());
        }
        b.touched = now;
        if commit.is_none() {
            b.bytes += bytes;
            self.bytes += bytes;
            m.reply = None;
            b.msgs.push(m);
            return Step::Staged(reply);
        }
        let mut msgs = std::mem::take(&mut b.msgs);
        self.drop_batch(&id);
        if eob {
            // The end-of-batch message is not stored: the last one says it committed.
            if let Some(last) = msgs.last_mut() {
                last.headers = Some(crate::hdr::extend(
                    last.headers.as_ref(),
                    &format!("{BATCH_COMMIT}: 1\r\n"),
                ));
            }
        } else {
            msgs.push(m);
        }
        if let Some(last) = msgs.last_mut() {
            last.reply = reply;
        }
        Step::Commit(msgs)
    }
}

/// A run of an ingest batch, in order.
#[derive(Debug)]
pub(crate) enum Unit {
    /// Messages stored as usual.
    Plain(Vec<Inbound>),
    /// A committed atomic batch.
    Atomic(Vec<Inbound>),
    /// Answers to staged or refused batch messages.
    Replies(Vec<(String, Bytes)>),
}

impl Stream {
    /// Splits what the ingest task took into runs: plain messages, and atomic batch
    /// messages staged (answered at once) or, at a commit, the batch to store.
    pub(crate) fn sort_batches(&self, batch: Vec<Inbound>) -> Vec<Unit> {
        // The publish path: nothing is parsed or allocated for a run without batches.
        if !batch.iter().any(may_be_batched) {
            return vec![Unit::Plain(batch)];
        }
        let ids: Vec<Option<String>> = batch.iter().map(batch_id).collect();
        let allowed = self.allow_atomic.load(std::sync::atomic::Ordering::Relaxed);
        let now = Instant::now();
        let mut units = Vec::new();
        let mut plain = Vec::new();
        let mut staging = self.staging.lock();
        for (m, id) in batch.into_iter().zip(ids) {
            let Some(id) = id else {
                plain.push(m);
                continue;
            };
            if !plain.is_empty() {
                units.push(Unit::Plain(std::mem::take(&mut plain)));
            }
            match staging.stage(allowed, id, m, now) {
                Step::Staged(reply) => {
                    units.extend(reply.map(|r| Unit::Replies(vec![(r, Bytes::new())])));
                }
                Step::Refused(reply, error) => {
                    let body = encode(&PubAckError {
                        error: &error,
                        stream: &self.name,
                        seq: 0,
                    });
                    units.extend(reply.map(|r| Unit::Replies(vec![(r, body)])));
                }
                Step::Commit(msgs) => units.push(Unit::Atomic(msgs)),
            }
        }
        if !plain.is_empty() {
            units.push(Unit::Plain(plain));
        }
        units
    }
}

impl Inner {
    /// The checks of a whole batch before any of it is stored: headers a batch cannot
    /// honour (10177), message ids seen before (10201), expectations about the stream or
    /// a subject the batch itself changes before that message (10164), and the others
    /// against the stream as it is (10071), so a refused batch leaves no trace (a refusal
    /// found only while appending takes the appended messages back as deletes).
    fn check_atomic(&mut self, batch: &[Inbound], now: i64) -> Result<(), ApiError> {
        let mut ids = HashSet::new();
        let mut touched: Vec<String> = Vec::new();
        let window = self.config.duplicate_window;
        for (i, m) in batch.iter().enumerate() {
            let subject = match &self.transform {
                Some(t) => t.apply(&m.subject).unwrap_or_else(|| m.subject.clone()),
                None => m.subject.clone(),
            };
            let h = m.headers.as_deref().and_then(petrel_wire::headers::parse);
            if let Some(h) = &h {
                let non_empty = |k: &str| h.get(k).filter(|v| !v.is_empty());
                if non_empty(EXPECTED_LAST_MSG_ID).is_some() {
                    return Err(ApiError::atomic_unsupported_header(EXPECTED_LAST_MSG_ID));
                }
                if let Some(id) = non_empty(MSG_ID) {
                    if !ids.insert(id.to_string()) || self.dedup.check(id, now, window).is_some() {
                        return Err(ApiError::atomic_duplicate_msg_id());
                    }
                }
                let number = |k: &str| h.get(k).and_then(|v| v.parse::<u64>().ok());
                if let Some(want) = number(EXPECTED_LAST_SEQ) {
                    let have = self.store.state().last_seq;
                    if i > 0 {
                        return Err(ApiError::wrong_last_sequence_constant());
                    }
                    if have != want {
                        return Err(ApiError::wrong_last_sequence(have));
                    }
                }
                if let Some(want) = number(EXPECTED_LAST_SUBJ_SEQ) {
                    let of = non_empty(EXPECTED_LAST_SUBJ_SEQ_SUBJECT).unwrap_or(&subject);
                    if touched
                        .iter()
                        .any(|t| petrel_subject::matches(of.as_bytes(), t.as_bytes()))
                    {
                        return Err(ApiError::wrong_last_sequence_constant());
                    }
                    let have = crate::stream::last_seq_matching(self.store.as_ref(), of);
                    if have != want {
                        return Err(ApiError::wrong_last_sequence(have));
                    }
                }
            }
            touched.push(subject);
        }
        Ok(())
    }
}

impl Stream {
    /// Stores a committed batch (every message or none) and returns the PubAck of its last
    /// message, which names the batch and its size. Blocking.
    pub(crate) fn process_atomic(
        &self,
        batch: &mut [Inbound],
        now: i64,
        republished: &mut Vec<Republished>,
    ) -> Vec<(String, Bytes)> {
        let reply = batch
            .last_mut()
            .and_then(|m| m.reply.take())
            .filter(|r| !r.is_empty());
        let id = batch.first().and_then(batch_id).unwrap_or_default();
        let mut inner = self.inner.lock();
        if inner.closed {
            return Vec::new();
        }
        let stored = self.store_atomic(&mut inner, batch, now, republished);
        self.refresh_counters(&inner);
        let no_ack = inner.config.no_ack;
        drop(inner);
        let Some(reply) = reply.filter(|_| !no_ack) else {
            return Vec::new();
        };
        let body = match stored {
            Ok(seq) => encode(&PubAck {
                stream: &self.name,
                domain: self.domain.get().map(String::as_str),
                seq,
                duplicate: false,
                val: None,
                batch: Some(&id),
                count: Some(batch.len() as u64),
            }),
            Err(error) => encode(&PubAckError {
                error: &error,
                stream: &self.name,
                seq: 0,
            }),
        };
        vec![(reply, body)]
    }

    /// Checks, appends and commits a batch; on any failure nothing of it stays.
    fn store_atomic(
        &self,
        inner: &mut Inner,
        batch: &[Inbound],
        now: i64,
        republished: &mut Vec<Republished>,
    ) -> Result<u64, ApiError> {
        inner.check_atomic(batch, now)?;
        let msgs_before = inner.store.state().msgs;
        let bytes_before = inner.store.state().bytes;
        let rollbacks = inner.store.rollbacks();
        let last_msg_id = inner.last_msg_id.clone();
        let mut deferred = Vec::new();
        let mut outcomes = Vec::with_capacity(batch.len());
        let mut failure = None;
        for m in batch {
            let tried = match self.over_account_limit(inner, m, bytes_before) {
                Some(refused) => Err(refused),
                None => inner.try_store(&self.name, m, now, Some(&mut deferred)),
            };
            match tried {
                Ok(Outcome::Duplicate(_)) => failure = Some(ApiError::atomic_duplicate_msg_id()),
                Ok(o) => outcomes.push(o),
                Err(e) => failure = Some(e),
            }
            if inner.store.rollbacks() != rollbacks {
                failure = Some(ApiError::store_failed("storage failure"));
            }
            if failure.is_some() {
                break;
            }
        }
        if failure.is_none() {
            failure = commit_with_rollups(inner.store.as_mut(), deferred, rollbacks).err();
        }
        if let Some(error) = failure {
            undo(inner, &outcomes, last_msg_id, rollbacks);
            return Err(error);
        }
        self.notify_consumers(inner, &outcomes, msgs_before);
        self.stored.notify_waiters();
        republished.extend(outcomes.iter_mut().filter_map(|o| match o {
            Outcome::Stored { republish, .. } => republish.take(),
            _ => None,
        }));
        Ok(outcomes
            .iter()
            .filter_map(|o| match o {
                Outcome::Stored { seq, .. } => Some(*seq),
                _ => None,
            })
            .max()
            .unwrap_or(0))
    }
}

/// The batch's roll-ups (each purge commits: the first one writes the whole batch), then
/// its commit.
fn commit_with_rollups(
    store: &mut dyn StreamStore,
    rollups: Vec<PurgeRequest>,
    rollbacks: u64,
) -> Result<(), ApiError> {
    for req in rollups {
        if let Err(e) = store.purge(req) {
            if store.rollbacks() != rollbacks {
                return Err(ApiError::store_failed(e));
            }
            tracing::warn!(error = %e, "rollup purge in an atomic batch failed");
        }
    }
    store.commit().map_err(ApiError::store_failed)?;
    if store.rollbacks() != rollbacks {
        return Err(ApiError::store_failed("storage failure"));
    }
    Ok(())
}

/// Takes back what a failed batch appended: a store that rolled back to its last commit
/// has already dropped it; otherwise its messages are deleted before anything reads them.
fn undo(inner: &mut Inner, outcomes: &[Outcome], last_msg_id: String, rollbacks: u64) {
    let appended: Vec<u64> = outcomes
        .iter()
        .filter_map(|o| match o {
            Outcome::Stored { seq, msg_id, .. } => {
                if let Some(id) = msg_id {
                    inner.dedup.remove(id, *seq);
                }
                Some(*seq)
            }
            _ => None,
        })
        .collect();
    inner.last_msg_id = last_msg_id;
    if inner.store.rollbacks() == rollbacks && !appended.is_empty() {
        if let Err(e) = inner.store.delete_many(&appended) {
            tracing::error!(error = %e, "removing a refused atomic batch failed");
        }
    }
}

/// Cuts a batch whose commit did not reach the disk whole (power loss mid-write keeps a
/// prefix of it): the newest messages carrying a batch id without `Nats-Batch-Commit`.
/// Returns how many were cut. Run when a stream opens.
pub(crate) fn repair_torn_batch(store: &mut dyn StreamStore) -> u64 {
    // The newest message still stored: a torn write leaves the sequences it claimed
    // (reported lost) above it.
    let st = store.state();
    let mut last = st.last_seq;
    while last > st.first_seq && store.timestamp(last).is_none() {
        last -= 1;
    }
    let Ok(Some(m)) = store.get(last) else {
        return 0;
    };
    let Some(h) = m.headers.as_deref().and_then(petrel_wire::headers::parse) else {
        return 0;
    };
    let (Some(id), None) = (h.get(BATCH_ID), h.get(BATCH_COMMIT)) else {
        return 0;
    };
    let id = id.to_string();
    let mut torn = Vec::new();
    let mut seq = last;
    while seq > 0 && torn.len() as u64 <= MAX_MSGS {
        match store.get(seq) {
            Ok(Some(m)) => {
                let same = m
                    .headers
                    .as_deref()
                    .and_then(petrel_wire::headers::parse)
                    .is_some_and(|h| h.get(BATCH_ID) == Some(id.as_str()));
                if !same {
                    break;
                }
                torn.push(seq);
            }
            _ => break,
        }
        seq -= 1;
    }
    match store.delete_many(&torn) {
        Ok(n) => {
            tracing::warn!(batch = %id, cut = n, "a torn atomic batch was cut from the stream");
            n
        }
        Err(e) => {
            tracing::error!(batch = %id, error = %e, "cutting a torn atomic batch failed");
            0
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn msg(id: &str, seq: u64, commit: Option<&str>) -> Inbound {
        let mut h = format!("NATS/1.0\r\n{BATCH_ID}: {id}\r\n{BATCH_SEQ}: {seq}\r\n");
        if let Some(c) = commit {
            h.push_str(&format!("{BATCH_COMMIT}: {c}\r\n"));
        }
        h.push_str("\r\n");
        Inbound {
            subject: "b.x".into(),
            reply: Some(format!("r{seq}")),
            headers: Some(Bytes::from(h)),
            payload: Bytes::from_static(b"m"),
        }
    }

    fn code(step: Step) -> u16 {
        match step {
            Step::Refused(_, e) => e.err_code,
            other => panic!("not refused: {other:?}"),
        }
    }

    #[test]
    fn a_batch_commits_in_order_and_eob_is_not_stored() {
        let mut s = Staging::default();
        let t = Instant::now();
        assert!(
            matches!(s.stage(true, "a".into(), msg("a", 1, None), t), Step::Staged(Some(r)) if r == "r1")
        );
        assert!(matches!(
            s.stage(true, "a".into(), msg("a", 2, None), t),
            Step::Staged(_)
        ));
        match s.stage(true, "a".into(), msg("a", 3, Some("eob")), t) {
            Step::Commit(msgs) => {
                assert_eq!(msgs.len(), 2);
                assert_eq!(msgs[1].reply.as_deref(), Some("r3"));
                assert!(msgs[0].reply.is_none());
                let h = petrel_wire::headers::parse(msgs[1].headers.as_deref().unwrap()).unwrap();
                assert_eq!(h.get(BATCH_COMMIT), Some("1"));
            }
            other => panic!("{other:?}"),
        }
        assert!(s.batches.is_empty() && s.bytes == 0);
    }

    #[test]
    fn gaps_bad_commits_and_timeouts_abandon_the_batch() {
        let mut s = Staging::default();
        let t = Instant::now();
        assert_eq!(
            code(s.stage(false, "a".into(), msg("a", 1, None), t)),
            10174
        );
        assert_eq!(
            code(s.stage(true, "x".repeat(65), msg("a", 1, None), t)),
            10179
        );
        assert_eq!(code(s.stage(true, "a".into(), msg("a", 2, None), t)), 10176);
        assert_eq!(
            code(s.stage(true, "a".into(), msg("a", 1001, None), t)),
            10199
        );
        assert_eq!(
            code(s.stage(true, "a".into(), msg("a", 1, Some("eob")), t)),
            10176
        );
        assert_eq!(
            code(s.stage(true, "a".into(), msg("a", 1, Some("yes")), t)),
            10200
        );
        s.stage(true, "b".into(), msg("b", 1, None), t);
        assert_eq!(code(s.stage(true, "b".into(), msg("b", 3, None), t)), 10176);
        // Abandoned: what follows is incomplete too.
        assert_eq!(code(s.stage(true, "b".into(), msg("b", 2, None), t)), 10176);
        s.stage(true, "c".into(), msg("c", 1, None), t);
        let late = t + TIMEOUT;
        assert_eq!(
            code(s.stage(true, "c".into(), msg("c", 2, Some("1")), late)),
            10176
        );
        assert!(s.batches.is_empty());
    }

    #[test]
    fn a_torn_batch_at_the_tail_is_cut_and_a_committed_one_kept() {
        use petrel_store::MemStore;
        let mut store = MemStore::new();
        let append = |store: &mut MemStore, m: Inbound| {
            store.append(&m.subject, m.headers, m.payload, 1).unwrap();
        };
        append(&mut store, msg("a", 1, None));
        append(&mut store, msg("a", 2, Some("1")));
        assert_eq!(repair_torn_batch(&mut store), 0);
        // A power loss kept the first two of a three-message batch.
        append(&mut store, msg("b", 1, None));
        append(&mut store, msg("b", 2, None));
        // The third was torn: its sequence is gone, the stream's last sequence past it.
        append(&mut store, msg("b", 3, None));
        assert!(store.delete(5, false).unwrap());
        assert_eq!(repair_torn_batch(&mut store), 2);
        let st = store.state();
        assert_eq!((st.msgs, st.last_seq), (2, 5));
        assert!(store.get(2).unwrap().is_some());
    }

    #[test]
    fn open_batches_are_bounded() {
        let mut s = Staging::default();
        let t = Instant::now();
        for i in 0..MAX_INFLIGHT {
            let id = format!("b{i}");
            assert!(matches!(
                s.stage(true, id.clone(), msg(&id, 1, None), t),
                Step::Staged(_)
            ));
        }
        assert_eq!(code(s.stage(true, "z".into(), msg("z", 1, None), t)), 10210);
        // Abandoned ones make room.
        let later = t + TIMEOUT;
        assert!(matches!(
            s.stage(true, "z".into(), msg("z", 1, None), later),
            Step::Staged(_)
        ));
        assert_eq!(s.batches.len(), 1);
    }
}
