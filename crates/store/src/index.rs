//! The in-memory message index shared by `MemStore` and `FileStore`.
//!
//! `Index<L>` keeps every live message's metadata by sequence (`L` is where the body lives:
//! the bytes themselves for the memory store, a block location for the file store), a
//! per-subject ordered set of sequences (so the first, last and count of a subject are
//! O(log n)), the byte total, and the stream's sequence bookkeeping (`floor`, `last_seq`).

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Arc;

use crate::subject::{is_literal, is_match_all, subject_matches};
use crate::types::StreamState;

/// How many messages `next_matching` scans linearly before it switches to the per-subject sets.
const LINEAR_SCAN: usize = 256;

/// Metadata of one live message.
#[derive(Debug, Clone)]
pub(crate) struct Entry<L> {
    /// Timestamp (Unix ns).
    pub(crate) ts: i64,
    /// Subject, shared with the subject map.
    pub(crate) subject: Arc<str>,
    /// Accounted bytes.
    pub(crate) size: u64,
    /// Where the body is.
    pub(crate) loc: L,
}

/// See the module doc.
#[derive(Debug)]
pub(crate) struct Index<L> {
    msgs: BTreeMap<u64, Entry<L>>,
    subjects: HashMap<Arc<str>, BTreeSet<u64>>,
    bytes: u64,
    /// Every sequence below `floor` is gone (purge / first_seq / compact).
    floor: u64,
    last_seq: u64,
    last_ts: i64,
}

impl<L> Default for Index<L> {
    fn default() -> Self {
        Index {
            msgs: BTreeMap::new(),
            subjects: HashMap::new(),
            bytes: 0,
            floor: 0,
            last_seq: 0,
            last_ts: 0,
        }
    }
}

impl<L> Index<L> {
    /// Number of live messages.
    pub(crate) fn len(&self) -> u64 {
        self.msgs.len() as u64
    }

    /// Accounted bytes of live messages.
    pub(crate) fn bytes(&self) -> u64 {
        self.bytes
    }

    /// The sequence the next append gets, unless the sequence space is used up.
    pub(crate) fn next_seq(&self) -> Result<u64, crate::StoreError> {
        match self.last_seq.checked_add(1) {
            Some(seq) if seq <= crate::MAX_SEQ => Ok(seq),
            _ => Err(crate::StoreError::SequenceExhausted),
        }
    }

    /// Last sequence ever assigned.
    pub(crate) fn last_seq(&self) -> u64 {
        self.last_seq
    }

    /// Timestamp of the last sequence.
    pub(crate) fn last_ts(&self) -> i64 {
        self.last_ts
    }

    /// Raises `last_seq` (and `last_ts` with it) when `seq` is past it.
    pub(crate) fn note_seq(&mut self, seq: u64, ts: i64) {
        if seq > self.last_seq {
            self.last_seq = seq;
            self.last_ts = ts;
        }
    }

    /// Adds a live message. `seq` must be past `last_seq` (callers guarantee it).
    pub(crate) fn insert(&mut self, seq: u64, ts: i64, subject: &str, size: u64, loc: L) {
        let subj: Arc<str> = match self.subjects.get_key_value(subject) {
            Some((k, _)) => Arc::clone(k),
            None => Arc::from(subject),
        };
        self.subjects
            .entry(Arc::clone(&subj))
            .or_default()
            .insert(seq);
        self.bytes += size;
        self.msgs.insert(
            seq,
            Entry {
                ts,
                subject: subj,
                size,
                loc,
            },
        );
        self.note_seq(seq, ts);
    }

    /// Metadata of a live message.
    pub(crate) fn get(&self, seq: u64) -> Option<&Entry<L>> {
        self.msgs.get(&seq)
    }

    /// Removes a live message, returning its metadata.
    pub(crate) fn remove(&mut self, seq: u64) -> Option<Entry<L>> {
        let e = self.msgs.remove(&seq)?;
        if let Some(set) = self.subjects.get_mut(&*e.subject) {
            set.remove(&seq);
            if set.is_empty() {
                self.subjects.remove(&*e.subject);
            }
        }
        self.bytes = self.bytes.saturating_sub(e.size);
        Some(e)
    }

    /// Oldest live message.
    pub(crate) fn first(&self) -> Option<(u64, &Entry<L>)> {
        self.msgs.first_key_value().map(|(s, e)| (*s, e))
    }

    /// The sequence every earlier one is gone below: the first live sequence, or
    /// `last_seq + 1` when empty (never below the floor).
    pub(crate) fn first_or_next(&self) -> u64 {
        match self.msgs.first_key_value() {
            Some((s, _)) => *s,
            None => self.floor.max(self.last_seq.saturating_add(1)),
        }
    }

    /// Removes every message below `floor` and remembers the floor; a floor past
    /// `last_seq + 1` moves `last_seq` to `floor - 1` (keeping `last_ts`).
    pub(crate) fn raise_floor(&mut self, floor: u64, mut on_remove: impl FnMut(u64, Entry<L>)) {
        // The next sequence may be MAX_SEQ at most.
        let floor = floor.min(crate::MAX_SEQ);
        while let Some((&seq, _)) = self.msgs.first_key_value() {
            if seq >= floor {
                break;
            }
            if let Some(e) = self.remove(seq) {
                on_remove(seq, e);
            }
        }
        self.floor = self.floor.max(floor);
        if floor > 0 && floor - 1 > self.last_seq {
            self.last_seq = floor - 1;
        }
    }

    /// The highest floor applied so far.
    pub(crate) fn floor(&self) -> u64 {
        self.floor
    }

    /// All live messages in order.
    pub(crate) fn iter(&self) -> impl Iterator<Item = (u64, &Entry<L>)> {
        self.msgs.iter().map(|(s, e)| (*s, e))
    }

    /// Up to `max` live messages with a timestamp `<= cutoff` for which `skip` is false,
    /// oldest first, as `(seq, subject)`; the scan stops at the first younger message.
    pub(crate) fn aged(
        &self,
        cutoff: i64,
        skip: &dyn Fn(u64) -> bool,
        max: usize,
    ) -> Vec<(u64, String)> {
        self.msgs
            .iter()
            .take_while(|(_, e)| e.ts <= cutoff)
            .filter(|(seq, _)| !skip(**seq))
            .take(max)
            .map(|(seq, e)| (*seq, e.subject.to_string()))
            .collect()
    }

    /// Number of live messages on a literal subject.
    pub(crate) fn subject_count(&self, subject: &str) -> u64 {
        self.subjects.get(subject).map_or(0, |s| s.len() as u64)
    }

    /// Oldest live sequence of a literal subject.
    pub(crate) fn first_of_subject(&self, subject: &str) -> Option<u64> {
        self.subjects.get(subject).and_then(|s| s.first().copied())
    }

    /// Newest live sequence of a literal subject.
    pub(crate) fn last_of_subject(&self, subject: &str) -> Option<u64> {
        self.subjects.get(subject).and_then(|s| s.last().copied())
    }

    /// Newest live sequence of a literal subject at or before `max`.
    pub(crate) fn last_of_subject_at(&self, subject: &str, max: u64) -> Option<u64> {
        self.subjects
            .get(subject)
            .and_then(|s| s.range(..=max).next_back().copied())
    }

    /// Every subject with more than `max` messages, with the sequences over the limit (oldest).
    pub(crate) fn over_subject_limit(&self, max: u64) -> Vec<u64> {
        let mut out = Vec::new();
        for set in self.subjects.values() {
            let n = set.len() as u64;
            if n > max {
                out.extend(set.iter().take((n - max) as usize).copied());
            }
        }
        out.sort_unstable();
        out
    }

    /// First live sequence `>= from` whose subject matches `filter`.
    pub(crate) fn next_matching(&self, from: u64, filter: &str) -> Option<u64> {
        if is_match_all(filter) {
            return self.msgs.range(from..).next().map(|(s, _)| *s);
        }
        if is_literal(filter) {
            return self.subjects.get(filter)?.range(from..).next().copied();
        }
        let mut scanned = 0;
        for (seq, e) in self.msgs.range(from..) {
            if subject_matches(filter, &e.subject) {
                return Some(*seq);
            }
            scanned += 1;
            if scanned == LINEAR_SCAN {
                break;
            }
        }
        if scanned < LINEAR_SCAN {
            return None;
        }
        self.subjects
            .iter()
            .filter(|(s, _)| subject_matches(filter, s))
            .filter_map(|(_, set)| set.range(from..).next().copied())
            .min()
    }

    /// Number of live messages `>= from` matching `filter`.
    pub(crate) fn num_pending(&self, from: u64, filter: &str) -> u64 {
        let count = |set: &BTreeSet<u64>| match set.first() {
            Some(f) if *f >= from => set.len() as u64,
            _ => set.range(from..).count() as u64,
        };
        if is_match_all(filter) {
            let first = match self.msgs.first_key_value() {
                Some((f, _)) if *f < from => *f,
                Some(_) => return self.len(),
                None => return 0,
            };
            if from > self.last_seq {
                return 0;
            }
            // Count whichever side of `from` is shorter.
            return if from - first < self.last_seq - from {
                self.len() - self.msgs.range(..from).count() as u64
            } else {
                self.msgs.range(from..).count() as u64
            };
        }
        if is_literal(filter) {
            return self.subjects.get(filter).map_or(0, count);
        }
        self.subjects
            .iter()
            .filter(|(s, _)| subject_matches(filter, s))
            .map(|(_, set)| count(set))
            .sum()
    }

    /// Per-subject message counts for subjects matching `filter`.
    pub(crate) fn subjects_state(&self, filter: &str) -> BTreeMap<String, u64> {
        self.subjects
            .iter()
            .filter(|(s, _)| subject_matches(filter, s))
            .map(|(s, set)| (s.to_string(), set.len() as u64))
            .collect()
    }

    /// Live sequences whose subject matches `filter`, ascending.
    pub(crate) fn matching_seqs(&self, filter: &str) -> Vec<u64> {
        if is_match_all(filter) {
            return self.msgs.keys().copied().collect();
        }
        if is_literal(filter) {
            return self
                .subjects
                .get(filter)
                .map(|s| s.iter().copied().collect())
                .unwrap_or_default();
        }
        let mut out: Vec<u64> = self
            .subjects
            .iter()
            .filter(|(s, _)| subject_matches(filter, s))
            .flat_map(|(_, set)| set.iter().copied())
            .collect();
        out.sort_unstable();
        out
    }

    /// The stream state (without `lost`, which only the file store knows).
    pub(crate) fn state(&self) -> StreamState {
        let msgs = self.len();
        let (first_seq, first_ts) = match self.first() {
            Some((s, e)) => (s, e.ts),
            None if self.last_seq == 0 => (self.floor, 0),
            None => (self.last_seq.saturating_add(1), 0),
        };
        let num_deleted = if msgs > 0 {
            (self.last_seq.saturating_sub(first_seq) + 1).saturating_sub(msgs)
        } else {
            0
        };
        StreamState {
            msgs,
            bytes: self.bytes,
            first_seq,
            first_ts,
            last_seq: self.last_seq,
            last_ts: self.last_ts,
            num_subjects: self.subjects.len() as u64,
            num_deleted,
            lost: None,
        }
    }
}
