//! Per-account views for monitoring: `/accountz` ([`AccountSnapshot`]) and the accounts
//! of `/jsz` ([`JsAccountReport`]).

use petrel_jetstream::{AccountLimits, JetStreamStats, StreamReport};

use super::MonitorView;

/// One account as `/accountz?acc=` shows it.
#[derive(Debug, Clone, PartialEq)]
pub struct AccountSnapshot {
    /// Its name.
    pub name: String,
    /// Whether JetStream runs for it.
    pub jetstream_enabled: bool,
    /// Client connections in it.
    pub client_connections: u64,
    /// Its subscriptions (internal ones included).
    pub subscriptions: u64,
    /// Subscriptions inserted and removed since start.
    pub inserts: u64,
    /// See `inserts`.
    pub removes: u64,
}

/// One account's traffic for `/accstatz`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AccountStatz {
    /// The account.
    pub name: String,
    /// Client connections open now.
    pub conns: u64,
    /// Client connections since start.
    pub total_conns: u64,
    /// Its subscriptions.
    pub subscriptions: u64,
    /// Messages and bytes its connections were sent.
    pub sent: (u64, u64),
    /// Messages and bytes its connections published.
    pub received: (u64, u64),
    /// Its connections closed as slow consumers.
    pub slow_consumers: u64,
}

/// One account's JetStream for `/jsz?accounts=1`.
#[derive(Debug, Clone)]
pub struct JsAccountReport {
    /// The account.
    pub name: String,
    /// Its counters.
    pub stats: JetStreamStats,
    /// Its limits.
    pub limits: AccountLimits,
    /// Its streams, when asked for.
    pub streams: Vec<StreamReport>,
}

impl MonitorView {
    /// Every account, by name.
    pub fn accounts(&self) -> Vec<AccountSnapshot> {
        let clients: Vec<_> = self.shared.clients.lock().values().cloned().collect();
        self.shared
            .accounts
            .iter()
            .map(|a| {
                let sl = a.sublist.read();
                let connections = clients.iter().filter(|c| c.is_in(&a)).count() as u64;
                AccountSnapshot {
                    name: a.name.clone(),
                    jetstream_enabled: a.js.get().is_some(),
                    client_connections: connections,
                    subscriptions: sl.count() as u64,
                    inserts: sl.inserts(),
                    removes: sl.removes(),
                }
            })
            .collect()
    }

    /// Every account's traffic.
    pub fn account_statz(&self) -> Vec<AccountStatz> {
        use std::sync::atomic::Ordering::Relaxed;
        let clients: Vec<_> = self.shared.clients.lock().values().cloned().collect();
        self.shared
            .accounts
            .iter()
            .map(|a| {
                let mine: Vec<_> = clients.iter().filter(|c| c.is_in(&a)).collect();
                let (mut msgs, mut bytes) = (
                    a.stats.closed_out_msgs.load(Relaxed),
                    a.stats.closed_out_bytes.load(Relaxed),
                );
                for c in &mine {
                    let out = c.outbound();
                    msgs += out.out_msgs;
                    bytes += out.out_bytes;
                }
                AccountStatz {
                    name: a.name.clone(),
                    conns: mine.len() as u64,
                    total_conns: a.stats.total_conns.load(Relaxed),
                    subscriptions: a.subscriptions() as u64,
                    sent: (msgs, bytes),
                    received: (
                        a.stats.in_msgs.load(Relaxed),
                        a.stats.in_bytes.load(Relaxed),
                    ),
                    slow_consumers: a.stats.slow_consumers.load(Relaxed),
                }
            })
            .collect()
    }

    /// Each account's JetStream (only `account` when given), with its streams when
    /// `streams` (and their consumers when `with_consumers`). Blocking when `streams`:
    /// call it from `spawn_blocking`.
    pub fn jetstream_accounts(
        &self,
        account: Option<&str>,
        streams: bool,
        with_consumers: bool,
    ) -> Vec<JsAccountReport> {
        self.shared
            .accounts
            .jetstreams()
            .filter(|(a, _)| account.is_none_or(|want| a.name == want))
            .map(|(a, rt)| JsAccountReport {
                name: a.name.clone(),
                stats: rt.js.stats(),
                limits: rt.js.account_limits(),
                streams: if streams {
                    rt.js.report(with_consumers)
                } else {
                    Vec::new()
                },
            })
            .collect()
    }
}
