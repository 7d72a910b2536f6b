//! Server-wide counters, updated with relaxed atomics on the hot path.

use std::sync::atomic::{AtomicU64, Ordering};

/// Live counters.
#[derive(Default, Debug)]
pub(crate) struct Stats {
    pub in_msgs: AtomicU64,
    pub in_bytes: AtomicU64,
    pub out_msgs: AtomicU64,
    pub out_bytes: AtomicU64,
    pub slow_consumers: AtomicU64,
    pub total_connections: AtomicU64,
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
