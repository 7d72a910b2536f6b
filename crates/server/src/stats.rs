//! Server-wide counters, updated with relaxed atomics on the hot path, and the per-reader
//! [`MatchTally`] that adds Sublist lookup statistics to them once per read batch.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

/// Live counters.
#[derive(Default, Debug)]
pub(crate) struct Stats {
    pub in_msgs: AtomicU64,
    pub in_bytes: AtomicU64,
    pub out_msgs: AtomicU64,
    pub out_bytes: AtomicU64,
    pub slow_consumers: AtomicU64,
    pub total_connections: AtomicU64,
    /// Sublist lookups (cache hits included), added once per read batch (`/subsz`).
    pub sub_matches: AtomicU64,
    /// Lookups answered by a reader's match cache.
    pub sub_cache_hits: AtomicU64,
    /// Match results computed from the Sublist, and the sum and maximum of their fan-out.
    pub sub_results: AtomicU64,
    pub sub_fanout_total: AtomicU64,
    pub sub_fanout_max: AtomicU64,
    /// Entries held in all readers' match caches (as of each reader's last batch).
    pub sub_cache_entries: AtomicU64,
}

/// A point-in-time copy of the server's counters (for monitoring and tests).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct StatsSnapshot {
    /// Messages received from clients.
    pub in_msgs: u64,
    /// Payload bytes received from clients.
    pub in_bytes: u64,
    /// Messages delivered to clients.
    pub out_msgs: u64,
    /// Payload bytes delivered to clients.
    pub out_bytes: u64,
    /// Connections closed as slow consumers.
    pub slow_consumers: u64,
    /// Connections accepted since start.
    pub total_connections: u64,
    /// Connections open now.
    pub connections: u64,
    /// Subscriptions held now.
    pub subscriptions: u64,
}

impl Stats {
    pub(crate) fn snapshot(&self, connections: u64, subscriptions: u64) -> StatsSnapshot {
        StatsSnapshot {
            in_msgs: self.in_msgs.load(Ordering::Relaxed),
            in_bytes: self.in_bytes.load(Ordering::Relaxed),
            out_msgs: self.out_msgs.load(Ordering::Relaxed),
            out_bytes: self.out_bytes.load(Ordering::Relaxed),
            slow_consumers: self.slow_consumers.load(Ordering::Relaxed),
            total_connections: self.total_connections.load(Ordering::Relaxed),
            connections,
            subscriptions,
        }
    }
}

/// Sublist lookup statistics of one router, kept in plain integers and added to the
/// server's [`Stats`] at the end of each batch (no shared cache line touched per message).
#[derive(Debug, Default)]
pub(crate) struct MatchTally {
    matches: u64,
    cache_hits: u64,
    results: u64,
    fanout_total: u64,
    fanout_max: u64,
    /// Match-cache entries last added to `sub_cache_entries`, and where.
    cache_reported: u64,
    stats: Option<Arc<Stats>>,
}

impl MatchTally {
    /// One lookup; `hit` when the match cache answered it.
    pub fn lookup(&mut self, hit: bool) {
        self.matches += 1;
        self.cache_hits += u64::from(hit);
    }

    /// A result computed from the Sublist, delivering to `fanout` subscriptions/groups.
    pub fn computed(&mut self, fanout: usize) {
        self.results += 1;
        self.fanout_total += fanout as u64;
        self.fanout_max = self.fanout_max.max(fanout as u64);
    }

    /// Add what was counted since the last call to `stats`; `cache_len` is the router's
    /// match-cache size now.
    pub fn publish(&mut self, stats: &Arc<Stats>, cache_len: usize) {
        if self.matches > 0 {
            stats.sub_matches.fetch_add(self.matches, Ordering::Relaxed);
            stats
                .sub_cache_hits
                .fetch_add(self.cache_hits, Ordering::Relaxed);
            self.matches = 0;
            self.cache_hits = 0;
        }
        if self.results > 0 {
            stats.sub_results.fetch_add(self.results, Ordering::Relaxed);
            stats
                .sub_fanout_total
                .fetch_add(self.fanout_total, Ordering::Relaxed);
            stats
                .sub_fanout_max
                .fetch_max(self.fanout_max, Ordering::Relaxed);
            self.results = 0;
            self.fanout_total = 0;
        }
        let len = cache_len as u64;
        if len != self.cache_reported {
            // Wrapping arithmetic: the gauge only ever holds what routers added.
            let delta = len.wrapping_sub(self.cache_reported);
            stats.sub_cache_entries.fetch_add(delta, Ordering::Relaxed);
            self.cache_reported = len;
        }
        if self.stats.is_none() {
            self.stats = Some(stats.clone());
        }
    }
}

impl Drop for MatchTally {
    fn drop(&mut self) {
        if let Some(stats) = &self.stats {
            stats
                .sub_cache_entries
                .fetch_sub(self.cache_reported, Ordering::Relaxed);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tally_publishes_and_releases_cache_entries() {
        let stats = Arc::new(Stats::default());
        let mut t = MatchTally::default();
        t.lookup(false);
        t.computed(3);
        t.lookup(true);
        t.publish(&stats, 5);
        let load = |a: &AtomicU64| a.load(Ordering::Relaxed);
        assert_eq!(load(&stats.sub_matches), 2);
        assert_eq!(load(&stats.sub_cache_hits), 1);
        assert_eq!(load(&stats.sub_fanout_total), 3);
        assert_eq!(load(&stats.sub_fanout_max), 3);
        assert_eq!(load(&stats.sub_cache_entries), 5);
        t.publish(&stats, 2);
        assert_eq!(load(&stats.sub_cache_entries), 2);
        let mut other = MatchTally::default();
        other.publish(&stats, 4);
        assert_eq!(load(&stats.sub_cache_entries), 6);
        drop(t);
        assert_eq!(load(&stats.sub_cache_entries), 4);
    }
}
