//! What `/leafz` and `/varz` show of leafnodes: one [`LeafSnapshot`] per connection
//! and the listener's and remotes' settings ([`LeafnodeSnapshot`]).

use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::time::Duration;

use super::MonitorView;

/// One leaf connection, for `/leafz`.
#[derive(Debug, Clone)]
pub struct LeafSnapshot {
    /// Connection id.
    pub id: u64,
    /// The peer's server name.
    pub name: String,
    /// This server dialled it (it is the hub's spoke on it).
    pub is_spoke: bool,
    /// The local account it is bound to.
    pub account: String,
    /// The peer's address.
    pub addr: SocketAddr,
    /// RTT of the last answered PING.
    pub rtt: Option<Duration>,
    /// Messages received.
    pub in_msgs: u64,
    /// Messages sent.
    pub out_msgs: u64,
    /// Bytes received.
    pub in_bytes: u64,
    /// Bytes sent.
    pub out_bytes: u64,
    /// The peer's subscriptions held here (`subject [queue]`), sorted.
    pub subscriptions: Vec<String>,
}

/// The leafnode settings, for `/varz`.
#[derive(Debug, Clone)]
pub struct LeafnodeSnapshot {
    /// The listener, when there is one.
    pub addr: Option<SocketAddr>,
    /// Its authorization timeout.
    pub auth_timeout: Duration,
    /// Remotes: local account and `host:port` URLs.
    pub remotes: Vec<(String, Vec<String>)>,
}

impl MonitorView {
    /// Every leaf connection, by id.
    pub fn leafs(&self) -> Vec<LeafSnapshot> {
        let Some(leafs) = self.shared.leafnodes.get() else {
            return Vec::new();
        };
        let mut out: Vec<LeafSnapshot> = leafs
            .conns()
            .iter()
            .filter_map(|c| {
                let link = c.leaf.get()?;
                let (_, out_msgs, out_bytes) = c.out_counters();
                let mut subscriptions = link.sub_subjects();
                subscriptions.sort();
                let rtt = c.meta.rtt_nanos();
                Some(LeafSnapshot {
                    id: c.cid,
                    name: link.name.clone(),
                    is_spoke: link.solicited,
                    account: link.account.name.clone(),
                    addr: c.addr,
                    rtt: (rtt > 0).then(|| Duration::from_nanos(rtt)),
                    in_msgs: c.stats.in_msgs.load(Ordering::Relaxed),
                    out_msgs,
                    in_bytes: c.stats.in_bytes.load(Ordering::Relaxed),
                    out_bytes,
                    subscriptions,
                })
            })
            .collect();
        out.sort_by_key(|l| l.id);
        out
    }

    /// The leafnode settings, when `leafnodes {}` is configured.
    pub fn leafnode_settings(&self) -> Option<LeafnodeSnapshot> {
        let leafs = self.shared.leafnodes.get()?;
        Some(LeafnodeSnapshot {
            addr: leafs.listen,
            auth_timeout: leafs.opts.auth_timeout,
            remotes: leafs
                .opts
                .remotes
                .iter()
                .map(|r| {
                    (
                        r.account
                            .clone()
                            .unwrap_or_else(|| petrel_config::GLOBAL_ACCOUNT.to_string()),
                        r.urls.iter().map(|u| u.host_port()).collect(),
                    )
                })
                .collect(),
        })
    }
}
