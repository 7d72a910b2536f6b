//! A bounded per-reader match cache, invalidated by the Sublist's generation, and the
//! admission filter that keeps subjects seen only once out of it.

use std::collections::HashMap;
use std::hash::BuildHasher;
use std::sync::Arc;

use crate::hash::FxBuild;
use crate::sublist::SublistResult;

/// Cache of `subject → match result`, owned by one reader (no locking). Every lookup
/// names the Sublist generation it expects; a different generation empties the cache.
pub struct MatchCache<T> {
    generation: u64,
    max: usize,
    map: HashMap<Box<[u8]>, Arc<SublistResult<T>>, FxBuild>,
}

impl<T> MatchCache<T> {
    /// A cache holding at most `max` subjects.
    pub fn new(max: usize) -> Self {
        Self {
            generation: 0,
            max: max.max(1),
            map: HashMap::default(),
        }
    }

    /// The cached result for `subject`, if still valid for `generation`.
    pub fn get(&mut self, subject: &[u8], generation: u64) -> Option<Arc<SublistResult<T>>> {
        if generation != self.generation {
            self.map.clear();
            self.generation = generation;
            return None;
        }
        self.map.get(subject).cloned()
    }

    /// Remember `result` for `subject`, computed at `generation`. Evicts a quarter of the
    /// entries when full.
    pub fn insert(&mut self, subject: &[u8], generation: u64, result: Arc<SublistResult<T>>) {
        if generation != self.generation {
            self.map.clear();
            self.generation = generation;
        }
        if self.map.len() >= self.max {
            let mut drop = self.max / 4 + 1;
            self.map.retain(|_, _| {
                if drop > 0 {
                    drop -= 1;
                    false
                } else {
                    true
                }
            });
        }
        self.map.insert(subject.into(), result);
    }

    /// Number of cached subjects.
    pub fn len(&self) -> usize {
        self.map.len()
    }

    /// Whether the cache is empty.
    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
    }
}

/// Admission filter for a [`MatchCache`] (a "doorkeeper"): a subject is worth caching once
/// it has been looked up twice recently. Subjects used once — request/reply inboxes,
/// JetStream ack subjects — then never evict entries that are used again. Direct-mapped
/// hashes: a collision only costs one extra Sublist match later.
pub struct Admission {
    slots: Box<[u64]>,
}

impl Admission {
    /// A filter remembering up to `slots` recent subjects (rounded up to a power of two).
    pub fn new(slots: usize) -> Self {
        Self {
            slots: vec![0; slots.max(1).next_power_of_two()].into_boxed_slice(),
        }
    }

    /// Notes a lookup of `subject`; `true` when it was looked up before, so its result
    /// should be cached.
    pub fn seen_again(&mut self, subject: &[u8]) -> bool {
        // Never 0: an empty slot holds 0.
        let h = FxBuild::default().hash_one(subject) | 1;
        let slot = &mut self.slots[(h as usize) & (self.slots.len() - 1)];
        if *slot == h {
            return true;
        }
        *slot = h;
        false
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn admission_on_second_sight() {
        let mut a = Admission::new(64);
        assert!(!a.seen_again(b"orders.new"));
        assert!(a.seen_again(b"orders.new"));
        assert!(a.seen_again(b"orders.new"));
        for i in 0..10 {
            assert!(!a.seen_again(format!("_INBOX.abc.{i}").as_bytes()));
        }
    }

    #[test]
    fn bounded_and_generation_checked() {
        let mut c: MatchCache<u32> = MatchCache::new(8);
        let r = Arc::new(SublistResult::default());
        for i in 0..100u32 {
            c.insert(format!("s.{i}").as_bytes(), 1, r.clone());
            assert!(c.len() <= 8);
        }
        c.insert(b"x", 1, r.clone());
        assert!(c.get(b"x", 1).is_some());
        assert!(c.get(b"x", 2).is_none());
        assert!(c.is_empty());
    }
}
