//! `Nats-Msg-Id` deduplication: ids seen within the stream's duplicate window, with the
//! sequence they were stored at. Entries expire oldest first; the window is rebuilt from the
//! store after a restart.

use std::collections::{HashMap, VecDeque};

use petrel_store::StreamStore;

/// Header carrying the message id.
pub const MSG_ID: &str = "Nats-Msg-Id";

/// Upper bound on how many sequences a rebuild walks back.
const REBUILD_SCAN_LIMIT: u64 = 1_000_000;
/// Most ids one stream remembers, whatever its window (a stream with `max_msgs` keeps at
/// most that many).
const MAX_IDS: usize = 1_000_000;
/// Most id bytes one stream remembers (a stream with a smaller `max_bytes` keeps at most
/// that).
const MAX_ID_BYTES: usize = 64 * 1024 * 1024;

/// The ids of one stream: bounded by the window in time and, whatever the window (a
/// `duplicate_window` of 292 years with `max_age` 0 is allowed), by the stream's limits
/// in count and bytes; past them the oldest ids are forgotten first.
#[derive(Debug)]
pub struct Dedup {
    /// id -> (seq, ts).
    ids: HashMap<String, (u64, i64)>,
    /// (ts, id) in insertion order, for expiry.
    order: VecDeque<(i64, String)>,
    /// Bytes of the ids in `order`.
    bytes: usize,
    max_ids: usize,
    max_bytes: usize,
}

impl Default for Dedup {
    fn default() -> Self {
        Dedup {
            ids: HashMap::new(),
            order: VecDeque::new(),
            bytes: 0,
            max_ids: MAX_IDS,
            max_bytes: MAX_ID_BYTES,
        }
    }
}

impl Dedup {
    /// Bounds the ids by the stream's `max_msgs` / `max_bytes` (`<= 0`: unlimited, the
    /// built-in caps apply).
    pub fn set_limits(&mut self, max_msgs: i64, max_bytes: i64) {
        let cap = |v: i64, hard: usize| {
            usize::try_from(v)
                .ok()
                .filter(|v| *v > 0)
                .map_or(hard, |v| v.min(hard))
        };
        self.max_ids = cap(max_msgs, MAX_IDS);
        self.max_bytes = cap(max_bytes, MAX_ID_BYTES);
        self.trim();
    }

    /// Drops ids stored at or before `now - window`.
    pub fn expire(&mut self, now: i64, window: i64) {
        let cutoff = now.saturating_sub(window);
        while self.order.front().is_some_and(|(ts, _)| *ts <= cutoff) {
            self.pop_oldest();
        }
    }

    fn pop_oldest(&mut self) {
        if let Some((ts, id)) = self.order.pop_front() {
            self.bytes -= id.len();
            if self.ids.get(&id).is_some_and(|e| e.1 == ts) {
                self.ids.remove(&id);
            }
        }
    }

    /// Forgets the oldest ids until the limits hold.
    fn trim(&mut self) {
        while self.order.len() > self.max_ids || self.bytes > self.max_bytes {
            self.pop_oldest();
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

    /// Records `id` stored at `seq`, `ts` (forgetting the oldest past the limits).
    pub fn insert(&mut self, id: &str, seq: u64, ts: i64) {
        self.ids.insert(id.to_string(), (seq, ts));
        self.order.push_back((ts, id.to_string()));
        self.bytes += id.len();
        self.trim();
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

    /// Rebuilds the window from the stored messages; returns it with the id of the last
    /// message (for `Nats-Expected-Last-Msg-Id`). The window's start is found from the
    /// index's timestamps (newest backwards, no message read), then its messages are read
    /// oldest first, so the store's read-ahead serves them.
    pub fn rebuild(store: &dyn StreamStore, now: i64, window: i64) -> (Dedup, String) {
        let state = store.state();
        if state.last_seq == 0 {
            return (Dedup::default(), String::new());
        }
        let floor = state
            .first_seq
            .max(state.last_seq.saturating_sub(REBUILD_SCAN_LIMIT))
            .max(1);
        let cutoff = now.saturating_sub(window);
        let mut start = state.last_seq;
        if window > 0 {
            while start > floor && store.timestamp(start - 1).is_none_or(|ts| ts > cutoff) {
                start -= 1;
            }
        }
        let mut d = Dedup::default();
        let mut last_id = String::new();
        for seq in start..=state.last_seq {
            let Ok(Some(m)) = store.get(seq) else {
                continue;
            };
            if window > 0 && m.ts <= cutoff {
                continue;
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
                d.insert(&id, m.seq, m.ts);
            }
        }
        (d, last_id)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rebuild_keeps_the_ids_inside_the_window() {
        use bytes::Bytes;
        use petrel_store::MemStore;
        let mut store = MemStore::new();
        let hdr = |id: &str| {
            Some(Bytes::from(format!(
                "NATS/1.0\r\nNats-Msg-Id: {id}\r\n\r\n"
            )))
        };
        // ts 10..=60: ids on the old one, the middle ones and the last; two without.
        for (ts, h) in [
            (10, hdr("old")),
            (20, None),
            (30, hdr("a")),
            (40, None),
            (50, hdr("b")),
            (60, hdr("last")),
        ] {
            store.append("s", h, Bytes::from_static(b"x"), ts).unwrap();
        }
        store.delete(5, false).unwrap(); // "b" gone: a hole inside the window
        let (mut d, last) = Dedup::rebuild(&store, 70, 45);
        assert_eq!(last, "last");
        assert_eq!(d.len(), 2, "a and last (old is outside, b deleted)");
        assert_eq!(d.check("a", 70, 45), Some(3));
        assert_eq!(d.check("last", 70, 45), Some(6));
        assert_eq!(d.check("old", 70, 45), None);
        // A window of 0 remembers only the last message's id.
        let (d, last) = Dedup::rebuild(&store, 70, 0);
        assert_eq!((d.len(), last.as_str()), (1, "last"));
    }

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

    #[test]
    fn bounded_by_the_stream_limits_whatever_the_window() {
        let mut d = Dedup::default();
        d.set_limits(3, 0);
        for i in 0..10u64 {
            d.insert(&format!("id{i}"), i + 1, 100);
        }
        assert_eq!(d.len(), 3);
        assert_eq!(d.check("id9", 100, i64::MAX), Some(10));
        assert_eq!(d.check("id6", 100, i64::MAX), None);
        d.set_limits(0, 8);
        assert_eq!(d.len(), 2, "8 bytes hold two 3-byte ids");
        d.set_limits(-1, -1);
        for i in 0..(MAX_IDS as u64 + 10) {
            d.insert(&i.to_string(), i + 1, 1);
        }
        assert_eq!(d.len(), MAX_IDS);
    }
}
