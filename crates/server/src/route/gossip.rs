//! Gossip: a new route's INFO is passed to the other peers (each dials the servers it does
//! not know yet, so the mesh completes itself), and clients are told every node's client
//! URLs (`connect_urls` in an async INFO) when nodes join, leave or enter lame-duck mode.

use std::sync::atomic::Ordering;
use std::sync::Arc;

use petrel_config::RouteUrl;
use petrel_wire::route::RouteInfo;

use super::{Cluster, Route};

/// Most routes learned through gossip being dialled at once.
const MAX_GOSSIP_DIALS: usize = 256;
use crate::server::Shared;

/// This server's client URLs: the listen address, or every global unicast address of
/// the machine when it listens on all of them (as nats-server).
pub(super) fn own_client_urls(shared: &Shared) -> Vec<String> {
    local_urls(shared.listen)
}

/// `host:port`s reaching a listener bound to `addr` (every global unicast address of the
/// machine when it is bound to all of them).
pub(crate) fn local_urls(addr: std::net::SocketAddr) -> Vec<String> {
    let port = addr.port();
    let ip = addr.ip();
    if !ip.is_unspecified() {
        return vec![petrel_config::join_host_port(&ip.to_string(), port)];
    }
    let mut urls: Vec<String> = if_addrs::get_if_addrs()
        .unwrap_or_default()
        .into_iter()
        .map(|i| i.ip())
        .filter(|ip| !ip.is_loopback() && !ip.is_unspecified() && is_global_unicast(ip))
        .map(|ip| petrel_config::join_host_port(&ip.to_string(), port))
        .collect();
    urls.dedup();
    if urls.is_empty() {
        tracing::error!("Address \"{ip}\" can not be resolved properly");
    }
    urls
}

/// Not multicast, not link-local.
fn is_global_unicast(ip: &std::net::IpAddr) -> bool {
    match ip {
        std::net::IpAddr::V4(v4) => !v4.is_multicast() && !v4.is_link_local() && !v4.is_broadcast(),
        std::net::IpAddr::V6(v6) => !v6.is_multicast() && (v6.segments()[0] & 0xffc0) != 0xfe80,
    }
}

/// The client URLs clients are told: this server's and every peer's not in lame-duck
/// mode; none with `no_advertise` or without a cluster.
pub(crate) fn client_urls(shared: &Shared) -> Vec<String> {
    let Some(cluster) = shared.cluster.get() else {
        return Vec::new();
    };
    if cluster.opts.no_advertise {
        return Vec::new();
    }
    let mut urls = cluster.own_client_urls.clone();
    for r in cluster.routes() {
        let info = r.info.lock();
        if info.ldm {
            continue;
        }
        for u in &info.connect_urls {
            if !urls.contains(u) {
                urls.push(u.clone());
            }
        }
    }
    urls
}

/// The WebSocket URLs clients are told: this server's and every peer's (as
/// [`client_urls`]).
pub(crate) fn ws_urls(shared: &Shared) -> Vec<String> {
    let Some(cluster) = shared.cluster.get() else {
        return Vec::new();
    };
    if cluster.opts.no_advertise {
        return Vec::new();
    }
    let mut urls = shared
        .websocket
        .get()
        .map(|(_, urls, _)| urls.clone())
        .unwrap_or_default();
    for r in cluster.routes() {
        let info = r.info.lock();
        if info.ldm {
            continue;
        }
        for u in &info.ws_connect_urls {
            if !urls.contains(u) {
                urls.push(u.clone());
            }
        }
    }
    urls
}

/// Sends every client that takes async INFOs (CONNECT `protocol` ≥ 1) the current INFO.
pub(crate) fn announce_to_clients(shared: &Shared) {
    if shared.cluster.get().is_some_and(|c| c.opts.no_advertise) {
        return;
    }
    let clients: Vec<_> = shared.clients.lock().values().cloned().collect();
    for c in clients {
        if !c.async_info.load(Ordering::Acquire) || c.is_closed() {
            continue;
        }
        let mut buf = bytes::BytesMut::new();
        petrel_wire::encode::info(&mut buf, &shared.info_for(&c));
        c.queue_raw(&buf);
        if c.mark_dirty() {
            c.flush(false);
        }
    }
}

/// A route was registered: the other peers hear of it (each dials it unless it knows it),
/// and clients get its client URLs.
pub(super) fn route_added(shared: &Shared, cluster: &Cluster, route: &Arc<Route>) {
    let mut info = route.info.lock().clone();
    info.nonce.clear();
    info.ip = route.url.clone();
    let mut buf = bytes::BytesMut::new();
    petrel_wire::route::info(&mut buf, &info);
    for other in cluster.routes() {
        if other.remote_id != route.remote_id {
            other.client.queue_raw(&buf);
            other.client.flush(false);
        }
    }
    if !info.connect_urls.is_empty() || !info.ws_connect_urls.is_empty() {
        announce_to_clients(shared);
    }
}

/// A route went away: clients stop being told its URLs.
pub(super) fn route_removed(shared: &Shared, route: &Route) {
    let info = route.info.lock();
    let had_urls = !info.connect_urls.is_empty() || !info.ws_connect_urls.is_empty();
    drop(info);
    if had_urls {
        announce_to_clients(shared);
    }
}

/// The peer sent a new INFO about itself (its URLs changed, or it entered lame-duck mode).
pub(super) fn peer_updated(shared: &Shared, route: &Route, info: RouteInfo) {
    let changed = {
        let mut old = route.info.lock();
        let changed = old.ldm != info.ldm
            || old.connect_urls != info.connect_urls
            || old.ws_connect_urls != info.ws_connect_urls;
        if info.ldm && !old.ldm {
            tracing::info!(remote = %route.remote_name, "Peer entered lame duck mode");
        }
        *old = info;
        changed
    };
    if changed {
        announce_to_clients(shared);
    }
}

/// A peer told us about another server: dial it unless it is us, already a route, a
/// configured route, or being dialled.
pub(super) fn implicit_route(shared: &Arc<Shared>, cluster: &Arc<Cluster>, info: &RouteInfo) {
    if info.server_id == shared.server_id || cluster.has(&info.server_id) {
        return;
    }
    let Some(mut url) = info
        .ip
        .strip_prefix("nats-route://")
        .map(|s| s.trim_end_matches('/'))
        .and_then(|s| RouteUrl::parse(s).ok())
    else {
        return;
    };
    if cluster.is_configured(&url.host, url.port) || cluster.is_configured(&info.host, info.port) {
        return;
    }
    let key = url.host_port();
    {
        // A peer's INFOs cannot start more dials than this at once.
        let mut dialing = cluster.dialing.lock();
        if dialing.len() >= MAX_GOSSIP_DIALS || !dialing.insert(key.clone()) {
            return;
        }
    }
    if info.auth_required {
        url.user = cluster.opts.user.clone();
        url.pass = cluster.opts.password.clone();
    }
    tracing::debug!(route = %key, remote = %info.server_name, "Dialling a route learned through gossip");
    let (shared2, cluster2) = (shared.clone(), cluster.clone());
    shared.spawn(async move {
        super::solicit(shared2, url, false).await;
        cluster2.dialing.lock().remove(&key);
    });
}
