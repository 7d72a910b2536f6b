//! One leaf connection in either role. As the hub (accepted): INFO first, CONNECT
//! checked and authorized (which binds the account), the `connect_info` INFO, then the
//! interest dump. As the spoke (solicited): the hub's INFO, CONNECT with credentials, the
//! `connect_info` INFO, then the dump. After that both sides apply `LS+`/`LS-` and
//! publish `LMSG`s in the bound account.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use petrel_wire::leaf::LeafInfo;
use petrel_wire::route::{RemoteSub, RouteOp, RouteParseError, RoutedMsg};

use super::handshake::{hub_info, LeafLinkParts};
use super::{LeafLink, Leafnodes, LOOP_DELAY};
use crate::client::{Client, ClientKind, CloseReason};
use crate::conn::io::{ReadSource, WriteSink};
use crate::outbound::MsgRef;
use crate::route::{MAX_LINE, READ_BUF};
use crate::router::{Publisher, Router};
use crate::server::Shared;
use crate::sub::Subscription;

/// Time a spoke waits for the hub's INFO and then its `connect_info` INFO.
const SPOKE_WAIT: Duration = Duration::from_secs(2);
/// Most subscriptions one leaf may hold here.
const MAX_LEAF_SUBS: usize = 1024 * 1024;

/// Which side of the connection this server is.
pub(super) enum Role {
    /// The peer dialled us (we are its hub unless it says `is_hub`); `greeted`: our
    /// INFO already went out (before a TLS handshake).
    Accepted { websocket: bool, greeted: bool },
    /// We dialled the hub of `remotes[remote]`, with the URL's user and password (or
    /// token).
    Solicited {
        remote: usize,
        websocket: bool,
        user: Option<(String, Option<String>)>,
    },
}

/// How a connection ended.
#[derive(Default)]
pub(super) struct Outcome {
    /// It was registered (the handshake completed).
    pub registered: bool,
    /// Wait this long before redialling (a loop, a cluster name clash).
    pub delay: Option<Duration>,
    /// Leafnode URLs the hub told us of.
    pub urls: Vec<String>,
}

/// A leaf connection's shared state.
pub(super) fn leaf_client(shared: &Shared, addr: SocketAddr) -> Arc<Client> {
    let client = Arc::new(Client::new(
        ClientKind::Leaf,
        shared.next_cid(),
        addr,
        shared.opts().max_pending.max(64 * 1024 * 1024),
        shared.stats.clone(),
        crate::auth::nonce().unwrap_or_default(),
    ));
    client.headers.store(true, Ordering::Release);
    client
}

/// Serves a leaf that dialled the leafnode listener.
pub(super) async fn serve_accepted<R: ReadSource, W: WriteSink>(
    shared: Arc<Shared>,
    rd: R,
    wr: W,
    addr: SocketAddr,
    websocket: bool,
) {
    let client = leaf_client(&shared, addr);
    let role = Role::Accepted {
        websocket,
        greeted: false,
    };
    run(&shared, client, rd, wr, role, BytesMut::new()).await;
}

/// Serves a leaf that dialled a TLS leafnode listener: INFO in plain text (with
/// `tls_required`), then the TLS handshake, then the protocol (nats-server's order).
pub(super) async fn serve_accepted_tls(
    shared: Arc<Shared>,
    mut stream: tokio::net::TcpStream,
    addr: SocketAddr,
) {
    use tokio::io::AsyncWriteExt;
    let (Some(leafs), Some((acceptor, t))) = (
        shared.leafnodes.get().cloned(),
        shared.leafnodes.get().and_then(|l| l.tls.clone()),
    ) else {
        return;
    };
    let client = leaf_client(&shared, addr);
    let mut buf = BytesMut::new();
    petrel_wire::leaf::info(&mut buf, &hub_info(&shared, &leafs, &client, true, false));
    if stream.write_all(&buf).await.is_err() {
        return;
    }
    let tls = match tokio::time::timeout(t.timeout, acceptor.accept(stream)).await {
        Ok(Ok(s)) => s,
        Ok(Err(e)) => {
            tracing::error!(leaf = %addr, "Leafnode TLS handshake error: {e}");
            return;
        }
        Err(_) => {
            tracing::error!(leaf = %addr, "Leafnode TLS handshake timeout");
            return;
        }
    };
    let (rd, wr) = tokio::io::split(tls);
    let role = Role::Accepted {
        websocket: false,
        greeted: true,
    };
    run(
        &shared,
        client,
        crate::conn::io::Half(rd),
        crate::conn::io::Half(wr),
        role,
        BytesMut::new(),
    )
    .await;
}

/// The leafnode protocol over a byte stream until it closes; `initial` holds bytes
/// already read from it (the hub's INFO, read before a TLS handshake).
pub(super) async fn run<R: ReadSource, W: WriteSink>(
    shared: &Arc<Shared>,
    client: Arc<Client>,
    rd: R,
    wr: W,
    role: Role,
    initial: BytesMut,
) -> Outcome {
    let Some(leafs) = shared.leafnodes.get().cloned() else {
        return Outcome::default();
    };
    if let Role::Accepted {
        greeted: false,
        websocket,
    } = role
    {
        let mut buf = BytesMut::new();
        let info = hub_info(shared, &leafs, &client, true, websocket);
        petrel_wire::leaf::info(&mut buf, &info);
        client.queue_raw(&buf);
    }
    let writer = tokio::spawn(crate::conn::writer::write_loop(
        shared.clone(),
        client.clone(),
        wr,
    ));
    client.flush(false);
    let mut r = LeafReader {
        shared,
        leafs: &leafs,
        client: &client,
        role,
        connect_sent: false,
        waiting_info: false,
        link: None,
        router: Router::new(),
        in_msgs: 0,
        in_bytes: 0,
        out: Outcome::default(),
    };
    r.run(rd, initial).await;
    client.close(CloseReason::ClientClosed);
    let _ = writer.await;
    r.cleanup();
    r.out
}

/// The reading side of a leaf connection.
pub(super) struct LeafReader<'a> {
    pub(super) shared: &'a Arc<Shared>,
    pub(super) leafs: &'a Arc<Leafnodes>,
    pub(super) client: &'a Arc<Client>,
    pub(super) role: Role,
    /// Spoke: CONNECT went out.
    pub(super) connect_sent: bool,
    /// Spoke: waiting for the hub's `connect_info` INFO.
    pub(super) waiting_info: bool,
    /// Set once registered.
    pub(super) link: Option<Arc<LeafLink>>,
    pub(super) router: Router,
    pub(super) in_msgs: u64,
    pub(super) in_bytes: u64,
    pub(super) out: Outcome,
}

impl LeafReader<'_> {
    async fn run<R: ReadSource>(&mut self, mut rd: R, initial: BytesMut) {
        let client = self.client;
        let wait = match self.role {
            Role::Accepted { .. } => self.leafs.opts.auth_timeout,
            Role::Solicited { .. } => SPOKE_WAIT,
        };
        let handshake = tokio::time::sleep(wait);
        tokio::pin!(handshake);
        let mut buf = initial;
        buf.reserve(READ_BUF);
        // Bytes read before this loop (the hub's INFO, read before TLS) come first.
        if !self.drain(&mut buf, handshake.as_mut()) {
            return;
        }
        loop {
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
                () = &mut handshake, if self.link.is_none() => {
                    self.handshake_timeout();
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
            if !self.drain(&mut buf, handshake.as_mut()) {
                break;
            }
            self.end_batch().await;
        }
    }

    /// Applies every complete op in `buf` (restarting the handshake timer when the spoke
    /// starts waiting for the hub's `connect_info`); `false` ends the connection.
    fn drain(
        &mut self,
        buf: &mut BytesMut,
        mut handshake: std::pin::Pin<&mut tokio::time::Sleep>,
    ) -> bool {
        let max_payload = self.shared.opts().max_payload;
        loop {
            match petrel_wire::route::parse_leaf(buf, MAX_LINE, max_payload) {
                Ok(Some(op)) => {
                    let was_waiting = self.waiting_info;
                    if !self.handle(op) {
                        return false;
                    }
                    if was_waiting != self.waiting_info {
                        handshake
                            .as_mut()
                            .reset(tokio::time::Instant::now() + SPOKE_WAIT);
                    }
                }
                Ok(None) => return true,
                Err(e) => {
                    self.parse_error(e);
                    return false;
                }
            }
        }
    }

    fn handshake_timeout(&mut self) {
        match self.role {
            Role::Accepted { .. } => {
                tracing::debug!(leaf = %self.client.addr, "Leafnode authentication timeout");
                self.client
                    .err_and_close("Authentication Timeout", CloseReason::AuthTimeout);
            }
            Role::Solicited { .. } if self.waiting_info => self.client.err_and_close(
                "Stale Leaf Node Connection - Closing",
                CloseReason::StaleConnection,
            ),
            Role::Solicited { .. } => {
                tracing::warn!(leaf = %self.client.addr, "Leafnode hub sent no INFO");
                self.client.close(CloseReason::StaleConnection);
            }
        }
    }

    fn parse_error(&mut self, e: RouteParseError) {
        tracing::warn!(leaf = %self.client.addr, "Leafnode protocol error: {e}");
        match crate::route::protocol_error(&e, "Maximum Payload Violation") {
            Some((text, reason)) => self.client.err_and_close(text, reason),
            None => {
                self.client.close(CloseReason::ParseError);
            }
        }
    }

    pub(super) fn accepted(&self) -> bool {
        matches!(self.role, Role::Accepted { .. })
    }

    /// Applies one op; `false` ends the connection.
    fn handle(&mut self, op: RouteOp) -> bool {
        // A spoke's first op must be CONNECT (nats-server's expectConnect).
        if self.accepted() && self.link.is_none() && !matches!(op, RouteOp::Connect(_)) {
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
            RouteOp::Err(text) => self.on_err(&text),
            RouteOp::Connect(json) => self.link.is_some() || self.on_connect(&json),
            RouteOp::Info(json) => self.on_info(&json),
            _ if self.link.is_none() => {
                self.client
                    .err_and_close("Authorization Violation", CloseReason::AuthFailure);
                false
            }
            RouteOp::Sub(s) => self.leaf_sub(s),
            RouteOp::Unsub(s) => {
                self.leaf_unsub(&s);
                true
            }
            RouteOp::Msg(m) => {
                self.leaf_msg(m);
                true
            }
        }
    }

    /// A peer's `-ERR`: it closes the connection itself (nats-server's rule), except for
    /// a loop, which ends it here at once.
    fn on_err(&mut self, text: &[u8]) -> bool {
        let text = String::from_utf8_lossy(text);
        tracing::error!(leaf = %self.client.addr, "Leafnode error: {text}");
        if text.contains("Loop detected") || text.contains("same cluster name") {
            self.out.delay = Some(LOOP_DELAY);
        }
        if text.contains("minimum version required") {
            self.out.delay = Some(Duration::from_secs(5));
        }
        if text.contains("Loop detected") {
            self.client.close(CloseReason::ProtocolViolation);
            return false;
        }
        true
    }

    pub(super) fn mark(&mut self) {
        if self.client.mark_dirty() {
            self.client.flush(false);
        }
    }

    /// An INFO. Spoke: the hub's first (answer with CONNECT), its `connect_info` one
    /// (register), or an update (new URLs). Hub: ignored.
    fn on_info(&mut self, json: &[u8]) -> bool {
        let Role::Solicited {
            remote, websocket, ..
        } = self.role
        else {
            return true;
        };
        let Ok(info) = serde_json::from_slice::<LeafInfo>(json) else {
            self.client.close(CloseReason::ProtocolViolation);
            return false;
        };
        let urls = if websocket {
            &info.ws_connect_urls
        } else {
            &info.leafnode_urls
        };
        if !urls.is_empty() {
            self.out.urls = urls.clone();
        }
        if !self.connect_sent {
            if info.client_id == 0 {
                tracing::error!(leaf = %self.client.addr, "Leafnode hub INFO has no client_id: attempted to connect to wrong port");
                self.client.close(CloseReason::ProtocolViolation);
                return false;
            }
            return self.send_connect(remote, websocket, info);
        }
        if self.waiting_info && info.connect_info {
            self.waiting_info = false;
            return self.register_spoke(remote, websocket, &info);
        }
        true
    }

    pub(super) fn register_spoke(
        &mut self,
        remote: usize,
        websocket: bool,
        info: &LeafInfo,
    ) -> bool {
        let Some(r) = self.leafs.opts.remotes.get(remote) else {
            return false;
        };
        let name = r
            .account
            .as_deref()
            .unwrap_or(petrel_config::GLOBAL_ACCOUNT);
        let Some(account) = self.shared.accounts.get(name) else {
            self.client.close(CloseReason::ProtocolViolation);
            return false;
        };
        let bytes = |v: &[String]| v.iter().map(|s| Bytes::from(s.clone())).collect();
        self.register(LeafLinkParts {
            hub: r.hub,
            cluster: info.cluster.clone(),
            name: info.server_name.clone(),
            remote_id: info.server_id.clone(),
            remote_account: info.remote_account.clone(),
            account,
            deny_out: bytes(&r.deny_exports),
            deny_in: bytes(&r.deny_imports),
            websocket,
        });
        true
    }

    /// Binds the connection to its account, sends it the account's interest and lists it.
    pub(super) fn register(&mut self, mut p: LeafLinkParts) {
        let solicited = !self.accepted();
        // As nats-server (`denyAllClientJs`): JetStream's API, KV and object subjects never
        // cross a leaf connection of a client account, either way (each side's JetStream
        // answers its own clients; `$JS.<domain>.API` reaches another domain's).
        if !Arc::ptr_eq(&p.account, self.shared.accounts.system()) {
            for deny in [&mut p.deny_in, &mut p.deny_out] {
                deny.extend(
                    super::JS_DENY
                        .iter()
                        .map(|s| Bytes::from_static(s.as_bytes())),
                );
            }
        }
        let link = Arc::new(LeafLink {
            hub: p.hub,
            solicited,
            cluster: p.cluster,
            name: p.name,
            remote_id: p.remote_id,
            remote_account: p.remote_account,
            account: p.account.clone(),
            deny_out: p.deny_out,
            deny_in: p.deny_in,
            smap: parking_lot::Mutex::new(HashMap::new()),
            subs: parking_lot::Mutex::new(HashMap::new()),
            websocket: p.websocket,
        });
        let _ = self.client.leaf.set(link.clone());
        *self.client.name.lock() = link.name.clone();
        self.client.set_account(&p.account);
        {
            let sublist = p.account.sublist.write();
            let domain_api = self
                .shared
                .js_domain_api
                .as_deref()
                .filter(|_| p.account.jetstream.is_some());
            p.account
                .leafs
                .add(&sublist, self.client, &link, domain_api);
        }
        self.leafs.register(self.client);
        tracing::info!(
            leaf = %self.client.addr,
            remote = %link.name,
            remote_id = %link.remote_id,
            account = %p.account.name,
            hub = link.hub,
            websocket = link.websocket,
            "Leafnode connection created"
        );
        self.link = Some(link);
        self.out.registered = true;
    }

    /// `LS+`: the peer's interest (or a queue group's new total).
    fn leaf_sub(&mut self, s: RemoteSub) -> bool {
        let Some(link) = self.link.clone() else {
            return false;
        };
        if s.subject == link.account.leafs.lds {
            let text = format!(
                "Loop detected for leafnode account=\"{}\". Delaying attempt to reconnect for 30s",
                link.account.name
            );
            tracing::error!(leaf = %self.client.addr, "{text}");
            self.out.delay = Some(LOOP_DELAY);
            self.client
                .err_and_close(&text, CloseReason::ProtocolViolation);
            return false;
        }
        if !petrel_subject::is_valid_subject(&s.subject) {
            self.client.close(CloseReason::ProtocolViolation);
            return false;
        }
        let (queue, weight) = match s.queue {
            Some((q, w)) => (Some(q), w.max(1)),
            None => (None, 1),
        };
        let key = (s.subject.clone(), queue.clone());
        let mut subs = link.subs.lock();
        if let Some(existing) = subs.get(&key) {
            link.account.set_weight(existing, weight);
            return true;
        }
        if subs.len() >= MAX_LEAF_SUBS {
            drop(subs);
            self.client.err_and_close(
                "maximum subscriptions exceeded",
                CloseReason::MaxSubscriptionsExceeded,
            );
            return false;
        }
        let sid = Bytes::from(format!("l{}", subs.len()));
        let sub = Arc::new(Subscription::new(
            self.client.clone(),
            s.subject,
            queue,
            sid,
        ));
        sub.weight.store(weight, Ordering::Relaxed);
        if link.account.insert_sub(&sub).is_ok() {
            subs.insert(key, sub);
        }
        true
    }

    /// `LS-`: the peer lost interest.
    fn leaf_unsub(&mut self, s: &RemoteSub) {
        let Some(link) = &self.link else {
            return;
        };
        let key = (s.subject.clone(), s.queue.as_ref().map(|(q, _)| q.clone()));
        let removed = link.subs.lock().remove(&key);
        if let Some(sub) = removed {
            link.account.remove_subs([&sub]);
        }
    }

    /// `LMSG`: publish in the bound account.
    fn leaf_msg(&mut self, m: RoutedMsg) {
        let Some(link) = &self.link else {
            return;
        };
        self.in_msgs += 1;
        self.in_bytes += m.data.len() as u64;
        if super::denied(&link.deny_in, &m.subject) {
            return;
        }
        let from = Publisher {
            account: &link.account,
            client: self.client,
            echo: true,
            no_responders: false,
            queues: Some(&m.queues),
        };
        let msg = MsgRef {
            subject: &m.subject,
            reply: m.reply.as_deref(),
            hdr_len: m.hdr_len,
            data: &m.data,
            owner: Some(&m.data),
        };
        // A JetStream delivery: shown under the subject after the reply's `@`.
        match crate::route::split_js_deliver(m.reply.as_deref()) {
            Some((reply, shown)) => {
                let shown = MsgRef {
                    subject: shown,
                    reply: Some(reply),
                    ..msg
                };
                self.router
                    .publish_on(self.shared, from, &m.subject, &shown);
            }
            None => self.router.publish(self.shared, from, &msg),
        }
    }

    /// End of a read batch: flush what was published, count it, wait for stalled targets.
    async fn end_batch(&mut self) {
        self.router.flush(self.shared);
        let stalled = std::mem::take(&mut self.router.stalled);
        crate::route::end_batch(
            self.shared,
            self.client,
            &mut self.in_msgs,
            &mut self.in_bytes,
            stalled,
        )
        .await;
    }

    /// The connection ended: forget the peer's interest and unlist it.
    fn cleanup(&mut self) {
        let Some(link) = self.link.take() else {
            return;
        };
        link.account.leafs.remove(self.client);
        let subs: Vec<Arc<Subscription>> = link.subs.lock().drain().map(|(_, s)| s).collect();
        link.account.remove_subs(subs.iter());
        self.leafs.unregister(self.client);
        let reason = self
            .client
            .close_reason()
            .unwrap_or(CloseReason::ClientClosed);
        tracing::info!(leaf = %self.client.addr, remote = %link.name, reason = reason.as_str(), "Leafnode connection closed");
    }
}
