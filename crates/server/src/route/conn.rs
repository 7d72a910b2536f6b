//! One route connection: the handshake (CONNECT from the dialling side, INFO both ways,
//! cluster name and authorization checks, self and duplicate detection), registration,
//! and the reader that applies the peer's `RS+`/`RS-` and publishes its `RMSG`s locally.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use petrel_config::RouteUrl;
use petrel_wire::route::{RemoteSub, RouteConnect, RouteInfo, RouteOp, RoutedMsg};
use tokio::net::TcpStream;

use super::{Cluster, Route, MAX_LINE, READ_BUF};
use crate::account::Account;
use crate::client::{Client, ClientKind, CloseReason};
use crate::conn::io::{Half, ReadSource, SharedTcp, WriteSink};
use crate::outbound::MsgRef;
use crate::router::{Publisher, Router};
use crate::server::Shared;
use crate::sub::Subscription;

/// Time a peer has to complete the handshake.
const HANDSHAKE: Duration = Duration::from_secs(10);
/// Most subscriptions one peer may hold here.
const MAX_REMOTE_SUBS: usize = 4 * 1024 * 1024;

/// A peer subscription's key: account, subject, queue.
pub(crate) type SubKey = (Bytes, Bytes, Option<Bytes>);
/// A peer subscription and the account it is in.
pub(crate) type RemoteSubEntry = (Arc<Account>, Arc<Subscription>);

/// How a route connection ended.
pub(super) enum Outcome {
    /// The peer is this server.
    SelfRoute,
    /// It ran; `registered` when it became the peer's route.
    Served {
        remote_id: Option<String>,
        registered: bool,
    },
}

/// This server's route INFO.
pub(super) fn route_info(shared: &Shared, cluster: &Cluster) -> RouteInfo {
    let opts = &cluster.opts;
    let (host, port, ip) = match opts
        .advertise
        .as_deref()
        .map(petrel_config::split_host_port)
    {
        Some((h, p)) => {
            let port = p.unwrap_or(cluster.listen.port());
            (h.clone(), port, format!("nats-route://{h}:{port}/"))
        }
        None => (
            cluster.listen.ip().to_string(),
            cluster.listen.port(),
            String::new(),
        ),
    };
    RouteInfo {
        server_id: shared.server_id.clone(),
        server_name: shared.server_name.clone(),
        version: crate::NATS_COMPAT_VERSION.to_string(),
        // 2: accounts in RS+/RMSG; 3 would promise message tracing.
        proto: 2,
        go: format!("petrel{}", crate::PETREL_VERSION),
        host,
        port,
        headers: true,
        auth_required: opts.user.is_some(),
        tls_required: cluster.tls.is_some(),
        tls_verify: cluster.tls.is_some(),
        max_payload: i64::try_from(shared.opts().max_payload).unwrap_or(i64::MAX),
        ip,
        cluster: cluster.name(),
        dynamic: cluster.is_dynamic(),
        connect_urls: if opts.no_advertise {
            Vec::new()
        } else {
            cluster.own_client_urls.clone()
        },
        ws_connect_urls: match shared.websocket.get() {
            Some((_, urls, _)) if !opts.no_advertise => urls.clone(),
            _ => Vec::new(),
        },
        ldm: shared.ldm.load(Ordering::Acquire),
        ..RouteInfo::default()
    }
}

/// Serves one route connection (accepted, or dialled through `dial`) until it closes.
pub(super) async fn serve(
    shared: Arc<Shared>,
    stream: TcpStream,
    addr: SocketAddr,
    dial: Option<RouteUrl>,
) -> Outcome {
    let not_served = Outcome::Served {
        remote_id: None,
        registered: false,
    };
    let Some(cluster) = shared.cluster.get().cloned() else {
        return not_served;
    };
    let _ = stream.set_nodelay(true);
    let client = route_client(&shared, addr);
    let Some(tls) = cluster.tls.clone() else {
        let tcp = SharedTcp(Arc::new(stream));
        client.set_direct(tcp.0.clone());
        return run_route(&shared, &cluster, &client, tcp.clone(), tcp, dial).await;
    };
    // Routes do TLS first, both ways (as nats-server).
    match &dial {
        Some(url) => {
            let name = tls.server_name(&url.host);
            let up = tls_up(tls.timeout, tls.connector.connect(name, stream), addr).await;
            match up {
                Some(s) => {
                    let (rd, wr) = tokio::io::split(s);
                    run_route(&shared, &cluster, &client, Half(rd), Half(wr), dial).await
                }
                None => not_served,
            }
        }
        None => match tls_up(tls.timeout, tls.acceptor.accept(stream), addr).await {
            Some(s) => {
                let (rd, wr) = tokio::io::split(s);
                run_route(&shared, &cluster, &client, Half(rd), Half(wr), dial).await
            }
            None => not_served,
        },
    }
}

/// A route's TLS handshake under its timeout; failures are logged.
async fn tls_up<S>(
    timeout: Duration,
    handshake: impl std::future::Future<Output = std::io::Result<S>>,
    addr: SocketAddr,
) -> Option<S> {
    match tokio::time::timeout(timeout, handshake).await {
        Ok(Ok(s)) => Some(s),
        Ok(Err(e)) => {
            tracing::error!(route = %addr, "Route TLS handshake failed: {e}");
            None
        }
        Err(_) => {
            tracing::error!(route = %addr, "Route TLS handshake timed out");
            None
        }
    }
}

/// A route connection's shared state.
fn route_client(shared: &Shared, addr: SocketAddr) -> Arc<Client> {
    let client = Arc::new(Client::new(
        ClientKind::Route,
        shared.next_cid(),
        addr,
        shared.opts().max_pending.max(64 * 1024 * 1024),
        shared.stats.clone(),
        String::new(),
    ));
    client.headers.store(true, Ordering::Release);
    client
}

/// The route protocol over a (plain or TLS) byte stream until it closes.
async fn run_route<R: ReadSource, W: WriteSink>(
    shared: &Arc<Shared>,
    cluster: &Arc<Cluster>,
    client: &Arc<Client>,
    rd: R,
    wr: W,
    dial: Option<RouteUrl>,
) -> Outcome {
    let mut hello = BytesMut::new();
    if let Some(url) = &dial {
        petrel_wire::route::connect(
            &mut hello,
            &RouteConnect {
                echo: true,
                user: url.user.clone().or_else(|| cluster.opts.user.clone()),
                pass: url.pass.clone().or_else(|| cluster.opts.password.clone()),
                tls_required: cluster.tls.is_some(),
                headers: true,
                name: shared.server_id.clone(),
                cluster: cluster.name(),
                dynamic: cluster.is_dynamic(),
                ..RouteConnect::default()
            },
        );
    }
    let mut info = route_info(shared, cluster);
    info.nonce = crate::auth::nonce().unwrap_or_default();
    petrel_wire::route::info(&mut hello, &info);
    client.queue_raw(&hello);
    let writer = tokio::spawn(crate::conn::writer::write_loop(
        shared.clone(),
        client.clone(),
        wr,
    ));
    client.flush(false);
    let mut r = RouteReader {
        shared,
        cluster,
        client,
        dial,
        connected: false,
        route: None,
        remote_id: None,
        self_route: false,
        routers: Vec::new(),
        in_msgs: 0,
        in_bytes: 0,
    };
    r.run(rd).await;
    client.close(CloseReason::ClientClosed);
    let _ = writer.await;
    let registered = r.route.is_some();
    r.cleanup();
    if r.self_route {
        return Outcome::SelfRoute;
    }
    Outcome::Served {
        remote_id: r.remote_id,
        registered,
    }
}

/// The reading side of a route.
struct RouteReader<'a> {
    shared: &'a Arc<Shared>,
    cluster: &'a Arc<Cluster>,
    client: &'a Arc<Client>,
    /// The URL this server dialled (`None`: the peer dialled us).
    dial: Option<RouteUrl>,
    /// An accepted route sent its CONNECT.
    connected: bool,
    /// Set once the route is registered.
    route: Option<Arc<Route>>,
    remote_id: Option<String>,
    self_route: bool,
    /// A routing context per account the peer publishes in (a few: searched in order).
    routers: Vec<(Bytes, Arc<Account>, Router)>,
    in_msgs: u64,
    in_bytes: u64,
}

impl RouteReader<'_> {
    async fn run<R: ReadSource>(&mut self, mut rd: R) {
        let client = self.client;
        let handshake = tokio::time::sleep(HANDSHAKE);
        tokio::pin!(handshake);
        let mut buf = BytesMut::with_capacity(READ_BUF);
        let max_payload = self.shared.opts().max_payload.max(8 * 1024 * 1024);
        'read: loop {
            if buf.capacity() - buf.len() < READ_BUF / 4 {
                buf.reserve(READ_BUF);
            }
            let n = tokio::select! {
                biased;
                () = client.cancelled() => break,
                () = self.shared.shutdown.cancelled() => {
                    client.close(CloseReason::ServerShutdown);
                    break;
                }
                () = &mut handshake, if self.route.is_none() => {
                    tracing::debug!(route = %client.addr, "Route handshake timed out");
                    client.err_and_close("Authentication Timeout", CloseReason::AuthTimeout);
                    break;
                }
                n = rd.read_into(&mut buf) => n,
            };
            match n {
                Ok(0) => {
                    client.close(CloseReason::ClientClosed);
                    break;
                }
                Ok(_) => client.meta.touch(),
                Err(_) => {
                    client.close(CloseReason::ReadError);
                    break;
                }
            }
            loop {
                match petrel_wire::route::parse(&mut buf, MAX_LINE, max_payload) {
                    Ok(Some(op)) => {
                        if !self.handle(op) {
                            break 'read;
                        }
                    }
                    Ok(None) => break,
                    Err(e) => {
                        tracing::warn!(route = %client.addr, "Route protocol error: {e}");
                        match super::protocol_error(&e, "Maximum Payload Exceeded") {
                            Some((text, reason)) => client.err_and_close(text, reason),
                            None => {
                                client.close(CloseReason::ParseError);
                            }
                        }
                        break 'read;
                    }
                }
            }
            self.end_batch().await;
        }
    }

    /// Applies one op; `false` ends the connection.
    fn handle(&mut self, op: RouteOp) -> bool {
        // An accepted route's first op must be its CONNECT (nats-server's expectConnect).
        if self.dial.is_none() && !self.connected && !matches!(op, RouteOp::Connect(_)) {
            self.client
                .err_and_close("Authorization Violation", CloseReason::AuthFailure);
            return false;
        }
        match op {
            RouteOp::Ping => {
                self.client.queue_raw(petrel_wire::encode::PONG);
                self.mark();
                true
            }
            RouteOp::Pong => {
                self.client.pings_out.store(0, Ordering::Release);
                self.client.meta.pong_received();
                true
            }
            RouteOp::Ok => true,
            RouteOp::Err(text) => {
                let text = String::from_utf8_lossy(&text);
                if self.route.is_some() {
                    tracing::warn!(route = %self.client.addr, "Route error: {text}");
                } else {
                    // e.g. nats-server 2.10+ trying a dedicated $SYS route first.
                    tracing::debug!(route = %self.client.addr, "Route refused: {text}");
                }
                self.client.close(CloseReason::ProtocolViolation);
                false
            }
            RouteOp::Connect(json) => self.on_connect(&json),
            RouteOp::Info(json) => self.on_info(&json),
            _ if self.route.is_none() => {
                self.client
                    .err_and_close("Authorization Violation", CloseReason::AuthFailure);
                false
            }
            RouteOp::Sub(s) => self.remote_sub(s),
            RouteOp::Unsub(s) => {
                self.remote_unsub(&s);
                true
            }
            RouteOp::Msg(m) => {
                self.routed(m);
                true
            }
        }
    }

    /// The dialling peer's CONNECT: cluster name and credentials.
    fn on_connect(&mut self, json: &[u8]) -> bool {
        if self.dial.is_some() || self.connected {
            return true;
        }
        let Ok(c) = serde_json::from_slice::<RouteConnect>(json) else {
            self.client
                .err_and_close("Invalid Route CONNECT", CloseReason::ProtocolViolation);
            return false;
        };
        if c.lang.is_some() {
            self.client.err_and_close(
                "attempted to connect to route port",
                CloseReason::ProtocolViolation,
            );
            return false;
        }
        if let Some(gw) = &c.gateway {
            let text = format!("Rejecting connection from gateway \"{gw}\" on the Route port");
            self.client
                .err_and_close(&text, CloseReason::ProtocolViolation);
            return false;
        }
        let ours = self.cluster.name();
        if c.cluster != ours && !self.cluster.adopt_name(&c.cluster, c.dynamic) {
            let text = format!(
                "Rejecting connection, cluster name \"{}\" does not match \"{ours}\"",
                c.cluster
            );
            tracing::error!(route = %self.client.addr, "{text}");
            self.client
                .err_and_close(&text, CloseReason::ProtocolViolation);
            return false;
        }
        if !self.authorized(&c) {
            tracing::error!(route = %self.client.addr, "Route authorization violation");
            self.client
                .err_and_close("Authorization Violation", CloseReason::AuthFailure);
            return false;
        }
        *self.client.name.lock() = c.name;
        self.connected = true;
        true
    }

    fn authorized(&self, c: &RouteConnect) -> bool {
        let opts = &self.cluster.opts;
        if opts.user.is_none() && opts.password.is_none() {
            return true;
        }
        // Both checks always run: a wrong user costs what a wrong password does.
        let user_ok = crate::auth::ct_eq(
            c.user.as_deref().unwrap_or(""),
            opts.user.as_deref().unwrap_or(""),
        );
        let pass_ok = crate::auth::secret_matches(
            opts.password.as_deref().unwrap_or(""),
            c.pass.as_deref().unwrap_or(""),
        );
        user_ok & pass_ok
    }

    /// An INFO: the peer's own (first: register), an update of it, or gossip about
    /// another server (dial it).
    fn on_info(&mut self, json: &[u8]) -> bool {
        let Ok(info) = serde_json::from_slice::<RouteInfo>(json) else {
            self.client
                .err_and_close("Invalid Route INFO", CloseReason::ProtocolViolation);
            return false;
        };
        if let Some(route) = &self.route {
            if info.server_id != route.remote_id {
                super::gossip::implicit_route(self.shared, self.cluster, &info);
            } else {
                super::gossip::peer_updated(self.shared, route, info);
            }
            return true;
        }
        if self.dial.is_none() && !self.connected {
            self.client
                .err_and_close("Authorization Violation", CloseReason::AuthFailure);
            return false;
        }
        self.remote_id = Some(info.server_id.clone());
        if info.server_id == self.shared.server_id {
            self.self_route = true;
            tracing::debug!(route = %self.client.addr, "Detected route to self, ignoring");
            self.client.close(CloseReason::ProtocolViolation);
            return false;
        }
        let ours = self.cluster.name();
        if !info.cluster.is_empty()
            && info.cluster != ours
            && !self.cluster.adopt_name(&info.cluster, info.dynamic)
        {
            tracing::error!(route = %self.client.addr, "Cluster name conflict: \"{}\" is not \"{ours}\"", info.cluster);
            self.client.close(CloseReason::ProtocolViolation);
            return false;
        }
        if self.dial.is_none() && info.server_name == self.shared.server_name {
            tracing::error!(
                "Remote server has a duplicate name: \"{}\"",
                info.server_name
            );
            self.client.close(CloseReason::ProtocolViolation);
            return false;
        }
        self.register(info)
    }

    /// Makes this connection the peer's route (unless it already has one), sends it our
    /// interest and tells the rest of the mesh and the clients.
    fn register(&mut self, info: RouteInfo) -> bool {
        let url = if !info.ip.is_empty() {
            info.ip.clone()
        } else {
            let host = match &self.dial {
                Some(u) => u.host.clone(),
                None => self.client.addr.ip().to_string(),
            };
            format!(
                "nats-route://{}/",
                petrel_config::join_host_port(&host, info.port)
            )
        };
        let route = Arc::new(Route {
            client: self.client.clone(),
            remote_id: info.server_id.clone(),
            remote_name: info.server_name.clone(),
            solicited: self.dial.is_some(),
            info: parking_lot::Mutex::new(info.clone()),
            subs: parking_lot::Mutex::new(HashMap::new()),
            since: petrel_jetstream::now_nanos(),
            url,
        });
        if !self.cluster.register(&route) {
            tracing::debug!(remote = %info.server_id, "Detected duplicate remote route");
            self.client.close(CloseReason::ProtocolViolation);
            return false;
        }
        *self.client.name.lock() = info.server_name.clone();
        tracing::info!(remote = %info.server_name, addr = %self.client.addr, "Route connection registered");
        self.shared.accounts.peers.add(self.client);
        for account in self.shared.accounts.iter() {
            account.interest.send_all(&account.name, self.client);
        }
        self.mark();
        if info.jetstream {
            tracing::warn!(
                remote = %info.server_name,
                "The peer runs JetStream: Petrel's JetStream is not clustered yet, run it on one node of the cluster"
            );
        }
        super::gossip::route_added(self.shared, self.cluster, &route);
        self.route = Some(route);
        true
    }

    fn mark(&mut self) {
        if self.client.mark_dirty() {
            self.client.flush(false);
        }
    }

    /// `RS+`: the peer has interest (or a queue group's weight changed).
    fn remote_sub(&mut self, s: RemoteSub) -> bool {
        let Some(route) = &self.route else {
            return false;
        };
        let Some(account) = self
            .shared
            .accounts
            .get(&String::from_utf8_lossy(&s.account))
        else {
            tracing::debug!(account = %String::from_utf8_lossy(&s.account), "Route interest for an unknown account ignored");
            return true;
        };
        let (queue, weight) = match s.queue {
            Some((q, w)) => (Some(q), w.max(1)),
            None => (None, 1),
        };
        let key = (s.account, s.subject.clone(), queue.clone());
        let mut subs = route.subs.lock();
        if let Some((account, existing)) = subs.get(&key) {
            account.set_weight(existing, weight);
            return true;
        }
        if subs.len() >= MAX_REMOTE_SUBS {
            drop(subs);
            tracing::error!(route = %self.client.addr, "Route exceeded {MAX_REMOTE_SUBS} subscriptions");
            self.client.err_and_close(
                "maximum subscriptions exceeded",
                CloseReason::MaxSubscriptionsExceeded,
            );
            return false;
        }
        let sid = Bytes::from(format!("r{}", subs.len()));
        let sub = Arc::new(Subscription::new(
            self.client.clone(),
            s.subject,
            queue,
            sid,
        ));
        sub.weight.store(weight, Ordering::Relaxed);
        if account.insert_sub(&sub).is_ok() {
            subs.insert(key, (account, sub));
        }
        true
    }

    /// `RS-`: the peer lost interest.
    fn remote_unsub(&mut self, s: &RemoteSub) {
        let Some(route) = &self.route else {
            return;
        };
        let key = (
            s.account.clone(),
            s.subject.clone(),
            s.queue.as_ref().map(|(q, _)| q.clone()),
        );
        let removed = route.subs.lock().remove(&key);
        if let Some((account, sub)) = removed {
            account.remove_subs([&sub]);
        }
    }

    /// `RMSG`: publish in the account for local subscribers only.
    fn routed(&mut self, m: RoutedMsg) {
        let at = match self
            .routers
            .iter()
            .position(|(name, _, _)| *name == m.account)
        {
            Some(i) => i,
            None => {
                let name = String::from_utf8_lossy(&m.account);
                let Some(account) = self.shared.accounts.get(&name) else {
                    return;
                };
                self.routers
                    .push((m.account.clone(), account, Router::new()));
                self.routers.len() - 1
            }
        };
        let (_, account, router) = &mut self.routers[at];
        self.in_msgs += 1;
        self.in_bytes += m.data.len() as u64;
        let from = Publisher {
            account,
            client: self.client,
            echo: true,
            no_responders: false,
            queues: Some(&m.queues),
        };
        // A JetStream delivery: shown under the subject after the reply's `@`.
        match super::split_js_deliver(m.reply.as_deref()) {
            Some((reply, shown)) => {
                let msg = MsgRef {
                    subject: shown,
                    reply: Some(reply),
                    hdr_len: m.hdr_len,
                    data: &m.data,
                    owner: Some(&m.data),
                };
                router.publish_on(self.shared, from, &m.subject, &msg);
            }
            None => {
                let msg = MsgRef {
                    subject: &m.subject,
                    reply: m.reply.as_deref(),
                    hdr_len: m.hdr_len,
                    data: &m.data,
                    owner: Some(&m.data),
                };
                router.publish(self.shared, from, &msg);
            }
        }
    }

    /// End of a read batch: flush what was routed, count it, wait for stalled targets.
    async fn end_batch(&mut self) {
        let mut stalled = Vec::new();
        for (_, _, router) in self.routers.iter_mut() {
            router.flush(self.shared);
            stalled.append(&mut router.stalled);
        }
        super::end_batch(
            self.shared,
            self.client,
            &mut self.in_msgs,
            &mut self.in_bytes,
            stalled,
        )
        .await;
    }

    /// The connection ended: forget the peer's interest and, if it was the peer's route,
    /// unregister it.
    fn cleanup(&mut self) {
        let Some(route) = self.route.take() else {
            return;
        };
        self.shared.accounts.peers.remove(self.client);
        let subs: Vec<RemoteSubEntry> = route.subs.lock().drain().map(|(_, v)| v).collect();
        let mut by_account: HashMap<String, (Arc<Account>, Vec<Arc<Subscription>>)> =
            HashMap::new();
        for (account, sub) in subs {
            by_account
                .entry(account.name.clone())
                .or_insert_with(|| (account.clone(), Vec::new()))
                .1
                .push(sub);
        }
        for (account, subs) in by_account.values() {
            account.remove_subs(subs.iter());
        }
        if self.cluster.unregister(&route) {
            let reason = self
                .client
                .close_reason()
                .unwrap_or(CloseReason::ClientClosed);
            tracing::info!(remote = %route.remote_name, reason = reason.as_str(), "Route connection closed");
            super::gossip::route_removed(self.shared, &route);
        }
    }
}
