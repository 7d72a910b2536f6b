//! Interest and work-queue retention: which messages no consumer needs any more, and how
//! they leave the stream. On one node they are deleted from the store at once; on a
//! replicated stream only the leader — which runs the consumers — decides, and the
//! removals go through the stream's group (`StreamOp::Remove`), so every replica drops the
//! same messages. A new leader sweeps the whole stream once its consumers run, which
//! catches removals its predecessor decided but never committed; that sweep removes only
//! what a consumer it recovered is done with (ephemeral consumers, and those of memory
//! streams, do not move with the leadership: their messages are kept, never read as
//! "nobody is interested").

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

/// Which sweep: after a consumer left (every message no remaining consumer needs), or by a
/// new leader (only messages some recovered consumer is done with and none still needs).
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum Sweep {
    ConsumerLeft,
    NewLeader,
}

/// Every stored message no consumer needs any more (see [`Sweep`]). With the stream lock
/// held.
pub(crate) fn sweep(stream: &Stream, inner: &Inner, kind: Sweep) -> Vec<u64> {
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
        let claimed = kind == Sweep::ConsumerLeft
            || states
                .iter()
                .any(|s| s.matches(&m.subject) && s.done_with(m.seq));
        if claimed && unneeded(retention, &states, m.seq, &m.subject) {
            gone.push(m.seq);
        }
    }
    gone
}

/// Removes `seqs` as retention decided: from this node's store, or through the group
/// when the stream is replicated. Only a node that [`decides`] removes anything: a
/// follower, or a leader still starting its consumers, sees no consumers and would read
/// that as "nobody is interested".
pub(crate) fn retire(stream: &Stream, inner: &mut Inner, seqs: Vec<u64>) {
    if seqs.is_empty() || !decides(stream) {
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
fn decides(stream: &Stream) -> bool {
    stream.replica.get().is_none_or(|r| r.runs_consumers())
}

/// After a consumer left or a new leader started its consumers: removes what nobody
/// needs any more (see [`Sweep`]). Blocking.
pub(crate) fn cleanup(stream: &Stream, kind: Sweep) {
    let mut inner = stream.inner.lock();
    if inner.closed || !decides(stream) {
        return;
    }
    let gone = sweep(stream, &inner, kind);
    retire(stream, &mut inner, gone);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{StorageType, StreamConfig};
    use crate::consumer::config::ConsumerConfig;

    /// An interest stream holding `a.1`, `b.2`, `a.3` and a consumer on `a.*` that is
    /// done with sequence 1 (when `consumer`).
    fn stream(dir: &std::path::Path, consumer: bool) -> Arc<Stream> {
        let s = crate::testing::open_stream(
            StreamConfig {
                name: "S".into(),
                subjects: vec!["a.*".into(), "b.*".into()],
                retention: RetentionPolicy::Interest,
                storage: StorageType::Memory,
                ..StreamConfig::default()
            },
            dir,
        );
        {
            let mut inner = s.inner.lock();
            for subject in ["a.1", "b.2", "a.3"] {
                let (p, t) = (bytes::Bytes::from_static(b"x"), 0);
                inner.store.append(subject, None, p, t).unwrap();
            }
        }
        if consumer {
            let mut cfg = ConsumerConfig {
                durable_name: "C".into(),
                filter_subject: "a.*".into(),
                ..ConsumerConfig::default()
            };
            cfg.set_defaults(&s.config());
            let c = Consumer::new("S", cfg, 1, s.inner.lock().store.as_ref(), None).unwrap();
            c.state.lock().cursor = 2;
            s.consumers.write().insert("C".into(), Arc::new(c));
        }
        s
    }

    #[test]
    fn a_new_leader_removes_only_what_a_consumer_it_has_is_done_with() {
        let dir = tempfile::tempdir().unwrap();
        // No consumer: nobody is interested, yet a new leader may just not have the
        // consumers that are (ephemeral ones stay behind): it keeps everything.
        let s = stream(dir.path(), false);
        let inner = s.inner.lock();
        assert_eq!(sweep(&s, &inner, Sweep::ConsumerLeft), vec![1, 2, 3]);
        assert!(sweep(&s, &inner, Sweep::NewLeader).is_empty());
        drop(inner);
        // A consumer done with 1: both remove 1; 3 is still needed; only the sweep after
        // a consumer left reads b.2 (no consumer's filter) as unwanted.
        let s = stream(dir.path(), true);
        let inner = s.inner.lock();
        assert_eq!(sweep(&s, &inner, Sweep::ConsumerLeft), vec![1, 2]);
        assert_eq!(sweep(&s, &inner, Sweep::NewLeader), vec![1]);
    }
}
