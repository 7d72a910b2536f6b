//! Clustering over nats-server's route protocol: the route listener, the routes this
//! server solicits (explicit ones until they connect, gossiped ones a few times), one
//! registered connection per peer server (duplicates closed as nats-server does), and the
//! rule for what crosses a route. A route is a [`Client`] of kind `Route`: its outbound
//! queue and writer task are a client's; its reader (`conn`) speaks the route ops. Peers
//! learn local interest from [`Interest`] (`RS+`/`RS-`) and receive messages as `RMSG`
//! from the router; `gossip` keeps clients' `connect_urls` and the mesh complete.
//!
//! Petrel negotiates down to what every nats-server version speaks: one connection per
//! peer (no `route_pool_size` in its INFO), no compression (no `compression` field), no
//! leafnode-origin ops (no `lnoc`), account names in every `RS+`/`RMSG`.

mod conn;
mod gossip;
mod interest;

use std::collections::{HashMap, HashSet};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use parking_lot::{Mutex, RwLock};
use petrel_config::{ClusterOptions, RouteUrl};
use petrel_wire::route::RouteInfo;
use tokio::net::TcpListener;
use tokio::sync::Notify;

use crate::client::{Client, ClientKind, CloseReason};
use crate::server::Shared;

pub(crate) use gossip::{client_urls, local_urls, ws_urls};
pub(crate) use interest::{Interest, Peers};

/// Wait between attempts to connect a route (nats-server's `DEFAULT_ROUTE_CONNECT`).
const CONNECT_DELAY: Duration = Duration::from_secs(1);
/// Time to dial a route.
const DIAL_TIMEOUT: Duration = Duration::from_secs(1);

/// The cluster this server is part of.
pub(crate) struct Cluster {
    pub opts: ClusterOptions,
    /// The route listener's address.
    pub listen: SocketAddr,
    name: RwLock<String>,
    dynamic: AtomicBool,
    /// Registered routes by the peer's server id.
    routes: Mutex<HashMap<String, Arc<Route>>>,
    /// `host:port`s being dialled for gossiped routes (one attempt each at a time).
    dialing: Mutex<HashSet<String>>,
    /// Signalled when a route goes away (a solicit loop waiting behind a duplicate).
    pub changed: Notify,
    /// This server's client URLs (advertised to peers and clients).
    pub own_client_urls: Vec<String>,
    /// TLS for every route, when configured.
    pub tls: Option<Arc<RouteTls>>,
}

/// Route TLS: the acceptor for peers that dial us, the connector for those we dial.
pub(crate) struct RouteTls {
    pub acceptor: tokio_rustls::TlsAcceptor,
    pub connector: tokio_rustls::TlsConnector,
    pub timeout: Duration,
    /// The first host name among the configured routes: the name checked in a peer's
    /// certificate when it is dialled at an address learned through gossip (as
    /// nats-server's saved route TLS name).
    pub gossip_name: Option<String>,
}

impl RouteTls {
    /// The name a peer at `host` must present in its certificate.
    pub fn server_name(&self, host: &str) -> rustls::pki_types::ServerName<'static> {
        use rustls::pki_types::ServerName;
        let name = match (host.parse::<std::net::IpAddr>(), &self.gossip_name) {
            (Ok(_), Some(n)) => n.as_str(),
            _ => host,
        };
        ServerName::try_from(name.to_string()).unwrap_or_else(|_| {
            ServerName::try_from("invalid.invalid".to_string()).expect("a valid name")
        })
    }
}

/// One registered route.
pub(crate) struct Route {
    pub client: Arc<Client>,
    pub remote_id: String,
    pub remote_name: String,
    /// This server dialled it (else the peer did).
    pub solicited: bool,
    /// The peer's latest INFO.
    pub info: Mutex<RouteInfo>,
    /// The peer's subscriptions, by account, subject and queue.
    pub subs: Mutex<HashMap<conn::SubKey, conn::RemoteSubEntry>>,
    /// When the route was registered (Unix ns, for `/routez`).
    pub since: i64,
    /// The peer's route URL as this server would dial it.
    pub url: String,
}

impl Cluster {
    /// The cluster name in force (a dynamic one may change to a peer's).
    pub fn name(&self) -> String {
        self.name.read().clone()
    }

    /// Whether the name was generated rather than configured.
    pub fn is_dynamic(&self) -> bool {
        self.dynamic.load(Ordering::Acquire)
    }

    /// Takes `name` from a peer (nats-server's rule for dynamic names).
    fn adopt_name(&self, name: &str, peer_dynamic: bool) -> bool {
        let mut ours = self.name.write();
        if !self.is_dynamic() || (peer_dynamic && ours.as_str() >= name) {
            return false;
        }
        tracing::info!("Cluster name updated to {name}");
        *ours = name.to_string();
        if !peer_dynamic {
            self.dynamic.store(false, Ordering::Release);
        }
        true
    }

    /// Every registered route (a snapshot).
    pub fn routes(&self) -> Vec<Arc<Route>> {
        self.routes.lock().values().cloned().collect()
    }

    /// Whether a route to the server `id` is registered.
    fn has(&self, id: &str) -> bool {
        self.routes.lock().contains_key(id)
    }

    /// Registers `route` unless the peer already has one (the new one is then refused).
    fn register(&self, route: &Arc<Route>) -> bool {
        let mut routes = self.routes.lock();
        if routes.contains_key(&route.remote_id) {
            return false;
        }
        routes.insert(route.remote_id.clone(), route.clone());
        true
    }

    /// Removes `route` if it is the registered one for its peer.
    fn unregister(&self, route: &Arc<Route>) -> bool {
        let mut routes = self.routes.lock();
        let ours = routes
            .get(&route.remote_id)
            .is_some_and(|r| Arc::ptr_eq(r, route));
        if ours {
            routes.remove(&route.remote_id);
        }
        drop(routes);
        self.changed.notify_waiters();
        ours
    }

    /// Whether `host:port` is one of the configured routes.
    pub fn is_configured(&self, host: &str, port: u16) -> bool {
        self.opts
            .routes
            .iter()
            .any(|r| r.port == port && r.host.eq_ignore_ascii_case(host))
    }
}

/// Whether a message published by a `kind` publisher on `subject` may go to route peers:
/// the server's own output (PubAcks, replies, advisories, deliveries) never goes to the
/// request subjects of JetStream's API, acks and flow control or the system account's
/// requests on another node, where it would arrive as a client's request; `$PRG.` (Raft
/// RPCs, heard only from routes) goes to peers only when JetStream sends it.
pub(crate) fn forwardable(kind: ClientKind, subject: &[u8]) -> bool {
    // Raft RPCs of replicated JetStream leave only from JetStream itself.
    if subject.starts_with(b"$PRG.") {
        return kind == ClientKind::JetStream;
    }
    if kind.may_request() {
        return true;
    }
    const REQUEST_SPACES: &[&[u8]] = &[b"$JS.API.", b"$JS.ACK.", b"$JS.FC.", b"$SYS.REQ."];
    if REQUEST_SPACES.iter().any(|p| subject.starts_with(p)) {
        return false;
    }
    // `$JS.<domain>.API.…`
    match subject.strip_prefix(b"$JS.") {
        Some(rest) => !rest
            .iter()
            .position(|b| *b == b'.')
            .is_some_and(|i| rest[i..].starts_with(b".API.")),
        None => true,
    }
}

/// Where the `@<subject>` suffix of a routed JetStream delivery's reply starts
/// (`$JS.ACK.<stream>.<consumer>.<delivered>.<sseq>.<cseq>.<tm>.<pending>@<subject>`: the
/// first `@` after the eighth dot), as nats-server's `jsAckDeliverIdx`.
pub(crate) fn js_ack_deliver_at(reply: &[u8]) -> Option<usize> {
    if !reply.starts_with(b"$JS.ACK.") {
        return None;
    }
    let mut dots = 0;
    for (i, b) in reply.iter().enumerate() {
        match b {
            b'.' => dots += 1,
            b'@' if dots >= 8 => return Some(i),
            _ => {}
        }
    }
    None
}

/// The `-ERR` text and close reason for a route or leaf protocol error (`payload`: the
/// text for an oversized message, which differs between the two); `None`: close without a
/// word, as nats-server does on bad arguments.
pub(crate) fn protocol_error(
    e: &petrel_wire::route::RouteParseError,
    payload: &'static str,
) -> Option<(&'static str, CloseReason)> {
    use petrel_wire::route::RouteParseError as E;
    match e {
        E::ControlLine => Some((
            "Maximum Control Line Exceeded",
            CloseReason::MaxControlLineExceeded,
        )),
        E::Payload => Some((payload, CloseReason::MaxPayloadExceeded)),
        E::Unknown => Some(("Unknown Protocol Operation", CloseReason::ParseError)),
        E::BadArgs => None,
    }
}

/// Longest control line on a route or leaf connection (an `RMSG` lists queue groups).
pub(crate) const MAX_LINE: usize = 64 * 1024;
/// Read buffer size of route and leaf readers.
pub(crate) const READ_BUF: usize = 64 * 1024;
/// Longest a route or leaf reader waits for stalled subscribers per batch.
const STALL_MAX: Duration = Duration::from_secs(1);

/// The end of a route or leaf reader's batch: its inbound counts (`msgs`, `bytes`, then
/// zeroed) go to the server's and the connection's counters, and the reader waits (at
/// most [`STALL_MAX`] in all) for the connections the batch stalled on.
pub(crate) async fn end_batch(
    shared: &Shared,
    client: &Client,
    msgs: &mut u64,
    bytes: &mut u64,
    stalled: Vec<crate::router::Stall>,
) {
    if *msgs > 0 {
        shared.stats.in_msgs.fetch_add(*msgs, Ordering::Relaxed);
        shared.stats.in_bytes.fetch_add(*bytes, Ordering::Relaxed);
        client.stats.in_msgs.fetch_add(*msgs, Ordering::Relaxed);
        client.stats.in_bytes.fetch_add(*bytes, Ordering::Relaxed);
        *msgs = 0;
        *bytes = 0;
    }
    if stalled.is_empty() {
        return;
    }
    let deadline = tokio::time::Instant::now() + STALL_MAX;
    for stall in stalled {
        let _ = tokio::time::timeout_at(deadline, stall.wait()).await;
    }
}

/// A routed (or leaf) JetStream delivery's reply split at its `@`: the `$JS.ACK` reply
/// and the subject the delivery is shown under.
pub(crate) fn split_js_deliver(reply: Option<&[u8]>) -> Option<(&[u8], &[u8])> {
    let r = reply?;
    let i = js_ack_deliver_at(r).filter(|&i| i + 1 < r.len())?;
    Some((&r[..i], &r[i + 1..]))
}

/// Binds the route listener; [`begin`] starts accepting routes and dialling the
/// configured ones once the cluster is in `shared`.
pub(crate) async fn start(
    shared: &Arc<Shared>,
    opts: &ClusterOptions,
) -> Result<(Arc<Cluster>, TcpListener), crate::ServerError> {
    let bind = SocketAddr::new(opts.host, opts.port);
    let listener = TcpListener::bind(bind)
        .await
        .map_err(|cause| crate::ServerError::Bind { addr: bind, cause })?;
    let listen = listener
        .local_addr()
        .map_err(|cause| crate::ServerError::Bind { addr: bind, cause })?;
    let (name, dynamic) = match &opts.name {
        Some(n) => (n.clone(), false),
        None => (crate::ident::server_id()[..22].to_string(), true),
    };
    tracing::info!("Cluster name is {name}");
    if dynamic {
        tracing::warn!("Cluster name was dynamically generated, consider setting one");
    }
    tracing::info!("Listening for route connections on {listen}");
    let tls = match &opts.tls {
        Some(t) => Some(Arc::new(RouteTls {
            acceptor: crate::tls::acceptor(t)?,
            connector: crate::tls::connector(t)?,
            timeout: t.timeout,
            gossip_name: opts
                .routes
                .iter()
                .map(|r| r.host.clone())
                .find(|h| h.parse::<std::net::IpAddr>().is_err()),
        })),
        None => None,
    };
    let cluster = Arc::new(Cluster {
        opts: opts.clone(),
        listen,
        name: RwLock::new(name),
        dynamic: AtomicBool::new(dynamic),
        routes: Mutex::new(HashMap::new()),
        dialing: Mutex::new(HashSet::new()),
        changed: Notify::new(),
        own_client_urls: gossip::own_client_urls(shared),
        tls,
    });
    Ok((cluster, listener))
}

/// Starts accepting routes on `listener` and dialling the configured ones, once
/// [`start`]'s cluster is in `shared` (a task started before would find no cluster and
/// drop its connection or end at once).
pub(crate) fn begin(shared: &Arc<Shared>, listener: TcpListener) {
    let Some(cluster) = shared.cluster.get() else {
        return;
    };
    shared.spawn(accept_loop(shared.clone(), listener));
    for url in &cluster.opts.routes {
        shared.spawn(solicit(shared.clone(), url.clone(), true));
    }
}

async fn accept_loop(shared: Arc<Shared>, listener: TcpListener) {
    loop {
        let accepted = tokio::select! {
            () = shared.shutdown.cancelled() => break,
            a = listener.accept() => a,
        };
        match accepted {
            Ok((stream, addr)) => {
                let served = conn::serve(shared.clone(), stream, addr, None);
                shared.spawn(async move {
                    served.await;
                });
            }
            Err(e) => {
                tracing::error!(error = %e, "Error accepting route connection");
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        }
    }
}

/// Dials `url` until a route through it is registered and then again whenever it is
/// lost (explicit routes), or up to `connect_retries + 1` times (gossiped routes). While
/// the peer is reachable through another connection (it dialled us too), waits.
async fn solicit(shared: Arc<Shared>, url: RouteUrl, explicit: bool) {
    let Some(cluster) = shared.cluster.get().cloned() else {
        return;
    };
    let attempts = if explicit {
        u32::MAX
    } else {
        cluster.opts.connect_retries.saturating_add(1)
    };
    let mut failures = 0u32;
    let mut peer: Option<String> = None;
    while !shared.shutdown.is_cancelled() && failures < attempts {
        if let Some(id) = &peer {
            wait_until_gone(&shared, &cluster, id).await;
            if shared.shutdown.is_cancelled() {
                break;
            }
        }
        let addr = url.host_port();
        let dialed =
            tokio::time::timeout(DIAL_TIMEOUT, tokio::net::TcpStream::connect(&addr)).await;
        match dialed {
            Ok(Ok(stream)) => {
                let remote = stream.peer_addr().unwrap_or_else(|_| cluster.listen);
                tracing::debug!(route = %addr, "Route connection created");
                match conn::serve(shared.clone(), stream, remote, Some(url.clone())).await {
                    conn::Outcome::SelfRoute => return,
                    conn::Outcome::Served {
                        remote_id,
                        registered,
                    } => {
                        if registered {
                            failures = 0;
                        } else {
                            failures = failures.saturating_add(1);
                        }
                        peer = remote_id;
                        if !explicit && registered {
                            return;
                        }
                    }
                }
            }
            Ok(Err(e)) => {
                failures = failures.saturating_add(1);
                log_dial_error(&addr, failures, &e.to_string());
            }
            Err(_) => {
                failures = failures.saturating_add(1);
                log_dial_error(&addr, failures, "timed out");
            }
        }
        tokio::select! {
            () = shared.shutdown.cancelled() => break,
            () = tokio::time::sleep(jittered(CONNECT_DELAY)) => {}
        }
    }
}

/// Errors on the first attempt and every 60th after, as nats-server reports them.
fn log_dial_error(addr: &str, attempt: u32, why: &str) {
    if attempt == 1 || attempt.is_multiple_of(60) {
        tracing::error!("Error trying to connect to route {addr} (attempt {attempt}): {why}");
    } else {
        tracing::debug!("Error trying to connect to route {addr} (attempt {attempt}): {why}");
    }
}

/// Waits while a route to `id` is registered (through a connection the peer dialled).
async fn wait_until_gone(shared: &Shared, cluster: &Cluster, id: &str) {
    loop {
        let changed = cluster.changed.notified();
        tokio::pin!(changed);
        changed.as_mut().enable();
        if !cluster.has(id) {
            return;
        }
        tokio::select! {
            () = shared.shutdown.cancelled() => return,
            () = changed => {}
        }
    }
}

/// `d` plus up to a quarter of it, so two servers that dialled each other at once do not
/// keep colliding.
fn jittered(d: Duration) -> Duration {
    d + d.mul_f64(fastrand::f64() / 4.0)
}

/// Lame-duck mode: tell every peer (its clients then stop being sent this server's URLs).
pub(crate) fn lame_duck(shared: &Shared) {
    let Some(cluster) = shared.cluster.get() else {
        return;
    };
    let info = RouteInfo {
        ldm: true,
        ..conn::route_info(shared, cluster)
    };
    let mut buf = bytes::BytesMut::new();
    petrel_wire::route::info(&mut buf, &info);
    for r in cluster.routes() {
        r.client.queue_raw(&buf);
        r.client.flush(false);
    }
}

/// Closes every route (shutdown).
pub(crate) fn close_all(shared: &Shared) {
    if let Some(cluster) = shared.cluster.get() {
        for r in cluster.routes() {
            r.client.close(CloseReason::ServerShutdown);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn js_ack_replies_carry_the_delivered_subject() {
        let r = b"$JS.ACK.S.C.1.2.3.1700000000.0@orders.new";
        assert_eq!(js_ack_deliver_at(r), Some(r.len() - "@orders.new".len()));
        assert_eq!(js_ack_deliver_at(b"$JS.ACK.S@x.C.1.2.3.4.0"), None);
        assert_eq!(js_ack_deliver_at(b"_INBOX.a@b"), None);
    }

    #[test]
    fn server_output_never_reaches_remote_request_subjects() {
        for s in [
            &b"$JS.API.STREAM.DELETE.X"[..],
            b"$JS.hub.API.INFO",
            b"$JS.ACK.S.C.1.1.1.1.0",
            b"$SYS.REQ.SERVER.PING",
            b"$JS.FC.a.b",
        ] {
            assert!(!forwardable(ClientKind::System, s), "{s:?}");
            assert!(forwardable(ClientKind::Client, s));
            assert!(forwardable(ClientKind::Route, s));
        }
        for s in [
            &b"orders.new"[..],
            b"_INBOX.x",
            b"$JS.EVENT.ADVISORY.API",
            b"$KV.b.k",
            b"$JSAPI",
        ] {
            assert!(forwardable(ClientKind::System, s), "{s:?}");
        }
    }
}
