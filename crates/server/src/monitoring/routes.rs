//! What `/routez` and `/varz` show of the cluster: one [`RouteSnapshot`] per route and
//! the cluster's settings ([`ClusterSnapshot`]).

use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::time::Duration;

use super::MonitorView;

/// One route, for `/routez`.
#[derive(Debug, Clone)]
pub struct RouteSnapshot {
    /// Connection id.
    pub rid: u64,
    /// The peer's server id.
    pub remote_id: String,
    /// The peer's server name.
    pub remote_name: String,
    /// This server dialled it.
    pub did_solicit: bool,
    /// It is one of the configured routes.
    pub is_configured: bool,
    /// The peer's address.
    pub addr: SocketAddr,
    /// When the route was registered (Unix ns).
    pub start: i64,
    /// Last activity (Unix ns).
    pub last_activity: i64,
    /// RTT of the last answered PING.
    pub rtt: Option<Duration>,
    /// Bytes queued for the peer.
    pub pending_bytes: u64,
    /// Messages and bytes from and to the peer.
    pub in_msgs: u64,
    /// Messages sent to the peer.
    pub out_msgs: u64,
    /// Bytes received.
    pub in_bytes: u64,
    /// Bytes sent.
    pub out_bytes: u64,
    /// The peer's subscriptions held here (`account subject [queue]`), sorted.
    pub subscriptions: Vec<String>,
}

/// The cluster's settings, for `/varz`.
#[derive(Debug, Clone)]
pub struct ClusterSnapshot {
    /// Cluster name in force.
    pub name: String,
    /// Route listener.
    pub addr: SocketAddr,
    /// Configured routes (`nats-route://host:port`).
    pub urls: Vec<String>,
    /// Route authorization timeout.
    pub auth_timeout: Duration,
    /// Client URLs of every node, as clients are told.
    pub connect_urls: Vec<String>,
    /// Distinct peers with a route.
    pub remotes: usize,
    /// WebSocket URLs of every node.
    pub ws_connect_urls: Vec<String>,
}

impl MonitorView {
    /// Every route, by id.
    pub fn routes(&self) -> Vec<RouteSnapshot> {
        let Some(cluster) = self.shared.cluster.get() else {
            return Vec::new();
        };
        let mut out: Vec<RouteSnapshot> = cluster
            .routes()
            .iter()
            .map(|r| {
                let c = &r.client;
                let (pending, out_msgs, out_bytes) = c.out_counters();
                let mut subscriptions: Vec<String> = r
                    .subs
                    .lock()
                    .keys()
                    .map(|(a, s, q)| {
                        let mut line = format!(
                            "{} {}",
                            String::from_utf8_lossy(a),
                            String::from_utf8_lossy(s)
                        );
                        if let Some(q) = q {
                            line.push(' ');
                            line.push_str(&String::from_utf8_lossy(q));
                        }
                        line
                    })
                    .collect();
                subscriptions.sort();
                let info = r.info.lock();
                let rtt = c.meta.rtt_nanos();
                RouteSnapshot {
                    rid: c.cid,
                    remote_id: r.remote_id.clone(),
                    remote_name: r.remote_name.clone(),
                    did_solicit: r.solicited,
                    is_configured: cluster.is_configured(&info.host, info.port)
                        || cluster.is_configured(&c.addr.ip().to_string(), info.port),
                    addr: c.addr,
                    start: r.since,
                    last_activity: c.meta.last_activity(),
                    rtt: (rtt > 0).then(|| Duration::from_nanos(rtt)),
                    pending_bytes: pending,
                    in_msgs: c.stats.in_msgs.load(Ordering::Relaxed),
                    out_msgs,
                    in_bytes: c.stats.in_bytes.load(Ordering::Relaxed),
                    out_bytes,
                    subscriptions,
                }
            })
            .collect();
        out.sort_by_key(|r| r.rid);
        out
    }

    /// The WebSocket listener's address, when it is on.
    pub fn websocket_addr(&self) -> Option<SocketAddr> {
        self.shared.websocket.get().map(|(a, _, _)| *a)
    }

    /// The cluster's settings, when clustering is on.
    pub fn cluster(&self) -> Option<ClusterSnapshot> {
        let cluster = self.shared.cluster.get()?;
        Some(ClusterSnapshot {
            name: cluster.name(),
            addr: cluster.listen,
            urls: cluster
                .opts
                .routes
                .iter()
                .map(|r| format!("nats-route://{}", r.host_port()))
                .collect(),
            auth_timeout: cluster.opts.auth_timeout,
            connect_urls: crate::route::client_urls(&self.shared),
            ws_connect_urls: crate::route::ws_urls(&self.shared),
            remotes: cluster.routes().len(),
        })
    }
}
