//! Interest and work-queue retention: which messages no consumer needs any more, and how
//! they leave the stream. On one node they are deleted from the store at once; on a
//! replicated stream only the leader — which runs the consumers — decides, and the
//! removals go through the stream's group (`StreamOp::Remove`), so every replica drops the
//! same messages. A new leader sweeps the whole stream once its consumers run, which
//! catches removals its predecessor decided but never committed.

use std::sync::Arc;

use crate::config::RetentionPolicy;
use crate::consumer::Consumer;
use crate::stream::{Inner, Stream};

/// Whether `seq` (on `subject`) is no longer needed, given the states of the stream's
/// consumers: under work-queue retention once the consumer it belongs to is done with it,
/// under interest retention once every interested consumer is (at once when none is).
pub(crate) fn unneeded(
    retention: RetentionPolicy,
    states: &[parking_lot::MutexGuard<'_, crate::consumer::State>],
    seq: u64,
    subject: &str,
) -> bool {
    match retention {
        RetentionPolicy::Limits => false,
        RetentionPolicy::Workqueue => states
            .iter()
            .any(|s| s.matches(subject) && s.done_with(seq)),
        RetentionPolicy::Interest => !states
            .iter()
            .any(|s| s.matches(subject) && !s.done_with(seq)),
    }
}

/// Every stored message no consumer needs any more (the sweep after a consumer left or
/// a new leader started its consumers). With the stream lock held.
pub(crate) fn sweep(stream: &Stream, inner: &Inner) -> Vec<u64> {
    let retention = inner.config.retention;
    if retention == RetentionPolicy::Limits {
        return Vec::new();
    }
    let consumers: Vec<Arc<Consumer>> = stream.consumers.read().values().cloned().collect();
    let states: Vec<_> = consumers.iter().map(|c| c.state.lock()).collect();
    let mut gone = Vec::new();
    let mut seq = 1;
    while let Ok(Some(m)) = inner.store.next_by_subject(seq, ">") {
        seq = m.seq + 1;
        if unneeded(retention, &states, m.seq, &m.subject) {
            gone.push(m.seq);
        }
    }
    gone
}

/// Removes `seqs` as retention decided: from this node's store, or through the group
/// when the stream is replicated (only its leader decides; a follower never does).
pub(crate) fn retire(stream: &Stream, inner: &mut Inner, seqs: Vec<u64>) {
    if seqs.is_empty() {
        return;
    }
    match stream.replica.get() {
        Some(r) => r.remove(seqs),
        None => remove_now(stream, inner, &seqs),
    }
}

/// Deletes `seqs` from this node's store (those already gone are skipped).
pub(crate) fn remove_now(stream: &Stream, inner: &mut Inner, seqs: &[u64]) {
    match inner.store.delete_many(seqs) {
        Ok(_) => stream.refresh_counters(inner),
        Err(e) => {
            tracing::warn!(stream = %stream.name, error = %e, "removing unneeded messages failed")
        }
    }
}

/// Whether this node decides retention for `stream`: always on one node; on a replicated
/// stream only while it leads and runs the consumers.
pub(crate) fn decides(stream: &Stream) -> bool {
    stream.replica.get().is_none_or(|r| r.runs_consumers())
}

/// After a consumer left or a new leader started its consumers: removes every message
/// nobody needs any more. Blocking.
pub(crate) fn cleanup(stream: &Stream) {
    let mut inner = stream.inner.lock();
    if inner.closed || !decides(stream) {
        return;
    }
    let gone = sweep(stream, &inner);
    retire(stream, &mut inner, gone);
}
