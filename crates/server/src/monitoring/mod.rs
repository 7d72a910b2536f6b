//! What the monitoring layer (`petrel-monitor`: `/varz`, `/connz`, `/subsz`, `/jsz`,
//! `/healthz`, `/metrics`) reads from a running server, through [`MonitorView`]: identity
//! and options, counters, per-connection snapshots, Sublist statistics, subscriptions and
//! JetStream reports. The server never serves HTTP itself (the monitor crate sits above
//! it); it keeps the facts and remembers where the monitor listens
//! ([`ServerHandle::monitor_addr`]).

mod accounts;
mod conn;
mod leafs;
mod routes;
mod subs;

use std::net::SocketAddr;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, OnceLock};

use petrel_config::{JetStreamOptions, Options};
use petrel_jetstream::JetStreamStats;

use crate::server::{ServerHandle, Shared};
use crate::stats::StatsSnapshot;

pub use accounts::{AccountSnapshot, AccountStatz, JsAccountReport};
pub use conn::ConnSnapshot;
pub(crate) use conn::{snapshot, ConnMeta};
pub use leafs::{LeafSnapshot, LeafnodeSnapshot};
pub use routes::{ClusterSnapshot, RouteSnapshot};
pub use subs::{SubSnapshot, SublistStats, GLOBAL_ACCOUNT};

/// Server-wide facts kept for monitoring.
#[derive(Debug)]
pub(crate) struct MonitorState {
    /// Start time (Unix ns).
    start: i64,
    /// Last time the configuration was loaded or reloaded (Unix ns).
    config_load: AtomicI64,
    /// Where the monitoring HTTP server listens, once started.
    http_addr: OnceLock<SocketAddr>,
}

impl MonitorState {
    /// State of a server starting now.
    pub fn new() -> Self {
        let now = conn::now_ns();
        Self {
            start: now,
            config_load: AtomicI64::new(now),
            http_addr: OnceLock::new(),
        }
    }

    /// The configuration was (re)loaded just now.
    pub fn config_loaded(&self) {
        self.config_load.store(conn::now_ns(), Ordering::Relaxed);
    }
}

/// A cheap, cloneable, read-only view of a running server for the monitoring layer. It
/// keeps the server's shared state alive while held, but not the server running: it
/// reports [`MonitorView::closed`] once the server shuts down.
#[derive(Clone)]
pub struct MonitorView {
    shared: Arc<Shared>,
}

impl std::fmt::Debug for MonitorView {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MonitorView")
            .field("server_id", &self.shared.server_id)
            .finish()
    }
}

impl ServerHandle {
    /// A read-only view of this server for monitoring (`petrel_monitor::start` takes it).
    pub fn monitor_view(&self) -> MonitorView {
        MonitorView {
            shared: self.shared.clone(),
        }
    }

    /// Where the monitoring HTTP server listens, once one was started for this server.
    pub fn monitor_addr(&self) -> Option<SocketAddr> {
        self.shared.monitor.http_addr.get().copied()
    }
}

impl MonitorView {
    /// The server id advertised in INFO.
    pub fn server_id(&self) -> &str {
        &self.shared.server_id
    }

    /// The server name (the id unless one was configured).
    pub fn server_name(&self) -> &str {
        &self.shared.server_name
    }

    /// The options in force.
    pub fn options(&self) -> Arc<Options> {
        self.shared.opts()
    }

    /// The client listener's address.
    pub fn client_addr(&self) -> SocketAddr {
        self.shared.listen
    }

    /// When the server started (Unix ns).
    pub fn start_time(&self) -> i64 {
        self.shared.monitor.start
    }

    /// When the configuration was last loaded or reloaded (Unix ns).
    pub fn config_load_time(&self) -> i64 {
        self.shared.monitor.config_load.load(Ordering::Relaxed)
    }

    /// Whether client TLS is on, and whether it requires client certificates.
    pub fn tls(&self) -> (bool, bool) {
        match &self.shared.tls {
            Some((_, t)) => (true, t.verify),
            None => (false, false),
        }
    }

    /// Server-wide counters.
    pub fn stats(&self) -> StatsSnapshot {
        let connections = self.shared.clients.lock().len() as u64;
        self.shared
            .stats
            .snapshot(connections, self.shared.subscription_count())
    }

    /// Every open client connection, by connection id; with their subscriptions when
    /// `with_subs`.
    pub fn connections(&self, with_subs: bool) -> Vec<ConnSnapshot> {
        let clients: Vec<_> = self.shared.clients.lock().values().cloned().collect();
        let mut out: Vec<ConnSnapshot> = clients
            .iter()
            .map(|c| conn::snapshot(c, with_subs))
            .collect();
        out.sort_by_key(|c| c.cid);
        out
    }

    /// Sublist statistics (`/subsz`).
    pub fn sublist_stats(&self) -> SublistStats {
        subs::sublist_stats(&self.shared)
    }

    /// Every subscription (internal JetStream ones have cid 0), or only those matching the
    /// literal subject `test`.
    pub fn subscriptions(&self, test: Option<&str>) -> Vec<SubSnapshot> {
        subs::subscriptions(&self.shared, test)
    }

    /// The system account's name.
    pub fn system_account(&self) -> String {
        self.shared.accounts.system().name.clone()
    }

    /// JetStream's settings when it is configured.
    pub fn jetstream_options(&self) -> Option<JetStreamOptions> {
        self.shared.opts().jetstream.clone()
    }

    /// Why configured JetStream cannot take writes, if it cannot: it did not start because
    /// its store directory takes no writes, or its last probe of the directory failed (a
    /// full or read-only volume). `None` when JetStream is not configured or healthy.
    pub fn jetstream_problem(&self) -> Option<String> {
        self.shared.opts().jetstream.as_ref()?;
        if let Some(why) = self.shared.js_down.get() {
            return Some(why.clone());
        }
        // Every account's JetStream shares the store directory: one probe says it all.
        self.shared
            .accounts
            .jetstreams()
            .find_map(|(_, rt)| rt.js.store_problem())
    }

    /// Why this node's share of clustered JetStream (meta group, stream replicas) is not
    /// healthy; `None` when healthy or not clustered.
    pub fn jetstream_cluster_problem(&self) -> Option<String> {
        self.shared.js_cluster.get()?.health_problem()
    }

    /// The JetStream meta group, when JetStream is clustered.
    pub fn jetstream_meta(&self) -> Option<petrel_jetstream::MetaReport> {
        self.shared.js_cluster.get().map(|c| c.report())
    }

    /// JetStream's counters, when it runs. Never blocks.
    pub fn jetstream_stats(&self) -> Option<JetStreamStats> {
        self.shared
            .accounts
            .jetstreams()
            .map(|(_, rt)| rt.js.stats())
            .reduce(JetStreamStats::combine)
    }

    /// Record where the monitoring HTTP server listens (the first call wins).
    pub fn set_monitor_addr(&self, addr: SocketAddr) {
        let _ = self.shared.monitor.http_addr.set(addr);
    }

    /// Where the monitoring HTTP server listens, once set.
    pub fn monitor_addr(&self) -> Option<SocketAddr> {
        self.shared.monitor.http_addr.get().copied()
    }

    /// Whether the server is shutting down.
    pub fn is_closed(&self) -> bool {
        self.shared.shutdown.is_cancelled()
    }

    /// Resolves when the server shuts down.
    pub async fn closed(&self) {
        self.shared.shutdown.cancelled().await;
    }
}
