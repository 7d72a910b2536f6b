//! `Nats-Msg-Id` deduplication: ids seen within the stream's duplicate window, with the
//! sequence they were stored at. Entries expire oldest first; the window is rebuilt from the
//! store after a restart.

use std::collections::{HashMap, VecDeque};

use petrel_store::StreamStore;

/// Header carrying the message id.
pub const MSG_ID: &str = "Nats-Msg-Id";

/// Upper bound on how many sequences a rebuild walks back.
const REBUILD_SCAN_LIMIT: u64 = 1_000_000;

/// The ids of one stream.
#[derive(Debug, Default)]
pub struct Dedup {
    /// id -> (seq, ts).
    ids: HashMap<String, (u64, i64)>,
    /// (ts, id) in insertion order, for expiry.
    order: VecDeque<(i64, String)>,
}

impl Dedup {
    /// Drops ids stored at or before `now - window`.
    pub fn expire(&mut self, now: i64, window: i64) {
        let cutoff = now.saturating_sub(window);
        while let Some((ts, _)) = self.order.front() {
            if *ts > cutoff {
                break;
            }
            if let Some((ts, id)) = self.order.pop_front() {
                if self.ids.get(&id).is_some_and(|e| e.1 == ts) {
                    self.ids.remove(&id);
                }
            }
        }
    }

    /// The sequence `id` was stored at, if within the window.
    pub fn check(&mut self, id: &str, now: i64, window: i64) -> Option<u64> {
        if window <= 0 {
            return None;
        }
        self.expire(now, window);
        self.ids.get(id).map(|e| e.0)
    }

    /// Records `id` stored at `seq`, `ts`.
    pub fn insert(&mut self, id: &str, seq: u64, ts: i64) {
        self.ids.insert(id.to_string(), (seq, ts));
        self.order.push_back((ts, id.to_string()));
    }

    /// Forgets `id` if it points at `seq` (its store failed).
    pub fn remove(&mut self, id: &str, seq: u64) {
        if self.ids.get(id).is_some_and(|e| e.0 == seq) {
            self.ids.remove(id);
        }
    }

    /// Number of ids held.
    #[cfg(test)]
    pub fn len(&self) -> usize {
        self.ids.len()
    }

    /// Whether no id is held.
    #[cfg(test)]
    pub fn is_empty(&self) -> bool {
        self.ids.is_empty()
    }

    /// Rebuilds the window from the stored messages (newest backwards until older than the
    /// window); returns it with the id of the last message (for `Nats-Expected-Last-Msg-Id`).
    pub fn rebuild(store: &dyn StreamStore, now: i64, window: i64) -> (Dedup, String) {
        let mut found = Vec::new();
        let mut last_id = String::new();
        let state = store.state();
        let cutoff = now.saturating_sub(window);
        let mut seq = state.last_seq;
        let floor = state
            .first_seq
            .max(state.last_seq.saturating_sub(REBUILD_SCAN_LIMIT));
        while seq >= floor && seq > 0 {
            if let Ok(Some(m)) = store.get(seq) {
                if m.ts <= cutoff && window > 0 {
                    break;
                }
                let id = m
                    .headers
                    .as_deref()
                    .and_then(petrel_wire::headers::parse)
                    .and_then(|h| h.get(MSG_ID).map(str::to_string))
                    .filter(|id| !id.is_empty());
                if seq == state.last_seq {
                    last_id = id.clone().unwrap_or_default();
                }
                if let Some(id) = id {
                    found.push((id, m.seq, m.ts));
                }
                if window <= 0 {
                    break;
                }
            }
            seq -= 1;
        }
        let mut d = Dedup::default();
        for (id, seq, ts) in found.into_iter().rev() {
            d.insert(&id, seq, ts);
        }
        (d, last_id)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn window() {
        let mut d = Dedup::default();
        d.insert("a", 1, 100);
        d.insert("b", 2, 200);
        assert_eq!(d.check("a", 150, 100), Some(1));
        assert_eq!(d.check("a", 200, 100), None);
        assert_eq!(d.check("b", 250, 100), Some(2));
        assert_eq!(d.len(), 1);
        d.remove("b", 2);
        assert!(d.is_empty());
    }
}
