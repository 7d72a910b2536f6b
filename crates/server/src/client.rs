//! The part of a connection that other tasks touch: its outbound queue, writer wake-up,
//! close signal, delivery flags and counters.

use std::collections::{HashMap, VecDeque};
use std::io::IoSlice;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, OnceLock, Weak};

use bytes::Bytes;
use parking_lot::Mutex;
use tokio::net::TcpStream;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

use crate::account::Account;
use crate::conn::writer::{advance, fill_iov, MAX_IOV};
use crate::monitoring::ConnMeta;
use crate::outbound::{MsgRef, Outbound};
use crate::perms::Responses;
use crate::stats::Stats;
use crate::sub::Subscription;

/// Most bytes a publisher's reader writes inline to one subscriber per batch; more goes
/// through the subscriber's writer task (which runs in parallel).
const INLINE_MAX_BYTES: usize = 32 * 1024;

/// Why a connection was closed (nats-server's `/connz` reason texts).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CloseReason {
    /// The client closed the connection.
    ClientClosed,
    /// No CONNECT within the auth timeout.
    AuthTimeout,
    /// Bad credentials.
    AuthFailure,
    /// Outbound buffer over `max_pending`.
    SlowConsumerPendingBytes,
    /// A write blocked longer than `write_deadline`.
    SlowConsumerWriteDeadline,
    /// Unparsable protocol.
    ParseError,
    /// Too many unanswered PINGs.
    StaleConnection,
    /// A protocol rule was broken (bad CONNECT, protocol version...).
    ProtocolViolation,
    /// Over `max_connections`.
    MaxConnectionsExceeded,
    /// Payload over `max_payload`.
    MaxPayloadExceeded,
    /// Control line over `max_control_line`.
    MaxControlLineExceeded,
    /// The server is shutting down.
    ServerShutdown,
    /// The socket failed.
    WriteError,
    /// The socket failed.
    ReadError,
    /// A plain-text client on a TLS-only server.
    TlsRequired,
    /// The TLS handshake failed or timed out.
    TlsHandshakeError,
    /// The user's (or its account's) JWT expired.
    AuthenticationExpired,
    /// The account revoked the user's JWT.
    Revocation,
    /// Over the account's connection limit (its JWT's `conn`).
    MaxAccountConnectionsExceeded,
    /// Closed by a system account request (`$SYS.REQ.SERVER.<id>.KICK`).
    Kicked,
    /// Holds more subscriptions than its (updated) JWT limits allow.
    MaxSubscriptionsExceeded,
}

impl CloseReason {
    /// nats-server's text for this reason.
    pub fn as_str(self) -> &'static str {
        match self {
            CloseReason::ClientClosed => "Client Closed",
            CloseReason::AuthTimeout => "Authentication Timeout",
            CloseReason::AuthFailure => "Authentication Failure",
            CloseReason::SlowConsumerPendingBytes => "Slow Consumer (Pending Bytes)",
            CloseReason::SlowConsumerWriteDeadline => "Slow Consumer (Write Deadline)",
            CloseReason::ParseError => "Parse Error",
            CloseReason::StaleConnection => "Stale Connection",
            CloseReason::ProtocolViolation => "Protocol Violation",
            CloseReason::MaxConnectionsExceeded => "Maximum Connections Exceeded",
            CloseReason::MaxPayloadExceeded => "Maximum Message Payload Exceeded",
            CloseReason::MaxControlLineExceeded => "Maximum Control Line Exceeded",
            CloseReason::ServerShutdown => "Server Shutdown",
            CloseReason::WriteError => "Write Error",
            CloseReason::ReadError => "Read Error",
            CloseReason::TlsRequired => "Secure Connection - TLS Required",
            CloseReason::TlsHandshakeError => "TLS Handshake Error",
            CloseReason::AuthenticationExpired => "Authentication Expired",
            CloseReason::Revocation => "Credentials Revoked",
            CloseReason::MaxAccountConnectionsExceeded => "Maximum Account Connections Exceeded",
            CloseReason::Kicked => "Kicked",
            CloseReason::MaxSubscriptionsExceeded => "Maximum Subscriptions Exceeded",
        }
    }

    /// Whether the connection was closed as a slow consumer.
    pub fn is_slow_consumer(self) -> bool {
        matches!(
            self,
            CloseReason::SlowConsumerPendingBytes | CloseReason::SlowConsumerWriteDeadline
        )
    }

    /// Whether what is already queued should still be written before closing.
    fn flushes(self) -> bool {
        !matches!(
            self,
            CloseReason::SlowConsumerPendingBytes
                | CloseReason::SlowConsumerWriteDeadline
                | CloseReason::WriteError
                | CloseReason::ClientClosed
        )
    }
}

/// Per-connection counters (inbound; outbound counts live in the outbound queue).
#[derive(Debug, Default)]
pub(crate) struct ClientStats {
    pub in_msgs: AtomicU64,
    pub in_bytes: AtomicU64,
}

/// What is on the other end of a [`Client`] (nats-server's connection kinds; routes and
/// leafnodes come with clustering).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ClientKind {
    /// A client connection: its publishes may be requests (JetStream API, acks).
    Client,
    /// The server itself (JetStream's PubAcks, replies, statuses, advisories,
    /// deliveries): never a request.
    System,
    /// JetStream's own requests (a stream reading an origin in another account or domain
    /// through its API): requests, as a client's are.
    JetStream,
    /// A route to another server of the cluster: what it forwards was published by a
    /// client there (as nats-server treats it); the server's own output is never routed
    /// to request subjects (see `route::forwardable`).
    Route,
    /// A leafnode connection (either role; its [`crate::leaf::LeafLink`] says which):
    /// what it sends was published by clients on the other side.
    Leaf,
}

impl ClientKind {
    /// Whether what this publisher sends may reach request subjects (subscriptions that
    /// accept only clients).
    pub fn may_request(self) -> bool {
        matches!(
            self,
            ClientKind::Client | ClientKind::JetStream | ClientKind::Route | ClientKind::Leaf
        )
    }
}

/// What the WebSocket listener adds to a client's login: credentials from its cookies
/// (filling CONNECT fields it left empty) and the listener's own `authorization`, which
/// replaces the server's for WebSocket clients (nats-server's auth override).
#[derive(Debug, Clone, Default)]
pub(crate) struct WsDefaults {
    pub user: Option<String>,
    pub pass: Option<String>,
    pub token: Option<String>,
    /// The user JWT from the `jwt_cookie` cookie.
    pub jwt: Option<String>,
    /// `websocket { authorization {} }`.
    pub auth: Option<petrel_config::Auth>,
    /// Its `timeout`.
    pub auth_timeout: Option<std::time::Duration>,
    /// `websocket { no_auth_user }`.
    pub no_auth_user: Option<String>,
}

/// Outcome of queueing a message for a client.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Queued {
    /// Queued.
    Ok,
    /// Queued, and the client is past half of `max_pending`: stall the publisher.
    Stall,
    /// Not queued: the client is closed.
    Dropped,
}

/// Shared state of one client connection.
pub(crate) struct Client {
    pub cid: u64,
    pub kind: ClientKind,
    pub addr: SocketAddr,
    out: Mutex<Outbound>,
    wake: Notify,
    /// Signalled when the queue falls back under half of `max_pending`.
    drained: Notify,
    /// The socket, for inline writes (plain TCP).
    direct: OnceLock<Arc<TcpStream>>,
    /// Set while some reader holds this client in its flush list.
    dirty: AtomicBool,
    cancel: CancellationToken,
    /// Set (before `cancel` fires) once closed: what the hot paths read, one atomic load
    /// instead of the token's lock.
    is_closed: AtomicBool,
    closed: Mutex<Option<CloseReason>>,
    /// Client understands HMSG (CONNECT headers:true).
    pub headers: AtomicBool,
    /// Client takes async INFOs (CONNECT `protocol` ≥ 1): cluster URL updates.
    pub async_info: AtomicBool,
    /// PINGs sent without a PONG back.
    pub pings_out: AtomicU32,
    pub max_pending: usize,
    pub stats: ClientStats,
    server_stats: Arc<Stats>,
    /// Subscriptions by sid.
    pub subs: Mutex<HashMap<Bytes, Arc<Subscription>>>,
    /// The name from CONNECT, for logs.
    pub name: Mutex<String>,
    /// Nonce sent in INFO (empty when no nkey users are configured).
    pub nonce: String,
    /// Reply subjects this client may publish to (`allow_responses`).
    pub responses: Responses,
    resp_perm: Mutex<Option<petrel_config::ResponsePermission>>,
    has_resp_perm: AtomicBool,
    /// Start, last activity, RTT, client library, user and TLS, for `/connz`.
    pub meta: ConnMeta,
    /// The account it belongs to, once known (set at CONNECT; accounts outlive clients).
    account: OnceLock<Weak<Account>>,
    /// For a WebSocket client: the listener's default credentials.
    ws: OnceLock<WsDefaults>,
    /// For a leafnode connection, once it is registered: its role, peer and interest.
    pub leaf: OnceLock<Arc<crate::leaf::LeafLink>>,
}

impl Client {
    pub fn new(
        kind: ClientKind,
        cid: u64,
        addr: SocketAddr,
        max_pending: usize,
        server_stats: Arc<Stats>,
        nonce: String,
    ) -> Self {
        Self {
            cid,
            kind,
            addr,
            out: Mutex::new(Outbound::default()),
            wake: Notify::new(),
            drained: Notify::new(),
            direct: OnceLock::new(),
            dirty: AtomicBool::new(false),
            cancel: CancellationToken::new(),
            is_closed: AtomicBool::new(false),
            closed: Mutex::new(None),
            headers: AtomicBool::new(false),
            async_info: AtomicBool::new(false),
            pings_out: AtomicU32::new(0),
            max_pending,
            stats: ClientStats::default(),
            server_stats,
            subs: Mutex::new(HashMap::new()),
            name: Mutex::new(String::new()),
            nonce,
            responses: Responses::default(),
            resp_perm: Mutex::new(None),
            has_resp_perm: AtomicBool::new(false),
            meta: ConnMeta::new(),
            account: OnceLock::new(),
            ws: OnceLock::new(),
            leaf: OnceLock::new(),
        }
    }

    /// Marks this client as a WebSocket one, with its listener's default credentials.
    pub fn set_ws_defaults(&self, d: WsDefaults) {
        let _ = self.ws.set(d);
    }

    /// Whether the client came through the WebSocket listener.
    pub fn is_websocket(&self) -> bool {
        self.ws.get().is_some()
    }

    /// Completes a WebSocket client's CONNECT with the listener's credentials when it
    /// sent none (nats-server's websocket `username`/`password`/`token`, `jwt_cookie`).
    pub fn complete_connect(&self, mut info: petrel_wire::ConnectInfo) -> petrel_wire::ConnectInfo {
        let Some(d) = self.ws.get() else {
            return info;
        };
        let fill = |field: &mut Option<String>, cookie: &Option<String>| {
            if field.as_deref().is_none_or(str::is_empty) {
                if let Some(v) = cookie {
                    *field = Some(v.clone());
                }
            }
        };
        fill(&mut info.user, &d.user);
        fill(&mut info.pass, &d.pass);
        fill(&mut info.auth_token, &d.token);
        fill(&mut info.jwt, &d.jwt);
        info
    }

    /// The options this client logs in with: the server's, or for a WebSocket client of a
    /// listener with its own `authorization` or `no_auth_user`, those instead.
    pub fn effective_opts(&self, opts: Arc<petrel_config::Options>) -> Arc<petrel_config::Options> {
        let Some(ws) = self.ws.get() else {
            return opts;
        };
        if ws.auth.is_none() && ws.no_auth_user.is_none() {
            return opts;
        }
        let mut o = (*opts).clone();
        if let Some(auth) = &ws.auth {
            o.auth = auth.clone();
            o.no_auth_user = None;
        }
        if let Some(user) = &ws.no_auth_user {
            o.no_auth_user = Some(user.clone());
        }
        if let Some(t) = ws.auth_timeout {
            o.auth_timeout = t;
        }
        Arc::new(o)
    }

    /// Binds the client to `account` (once; later calls are ignored).
    pub fn set_account(&self, account: &Arc<Account>) {
        self.set_account_weak(Arc::downgrade(account));
    }

    /// [`Client::set_account`] from a weak handle (an account's own internal client).
    pub fn set_account_weak(&self, account: Weak<Account>) {
        let _ = self.account.set(account);
    }

    /// The account it belongs to, once bound.
    pub fn account(&self) -> Option<Arc<Account>> {
        self.account.get().and_then(Weak::upgrade)
    }

    /// Whether the connection is bound to `account`.
    pub fn is_in(&self, account: &Account) -> bool {
        self.account
            .get()
            .is_some_and(|a| std::ptr::eq(a.as_ptr(), account))
    }

    /// Set (or clear) the `allow_responses` permission of this client.
    pub fn set_response_permission(&self, rp: Option<petrel_config::ResponsePermission>) {
        *self.resp_perm.lock() = rp;
        self.has_resp_perm.store(rp.is_some(), Ordering::Release);
    }

    /// A request with `reply` was delivered to this client: let it answer, if it has
    /// `allow_responses`.
    pub fn grant_response(&self, reply: &[u8]) {
        if !self.has_resp_perm.load(Ordering::Acquire) {
            return;
        }
        if let Some(rp) = *self.resp_perm.lock() {
            self.responses.grant(reply, rp);
        }
    }

    /// Queue raw protocol bytes (the caller arranges the flush). They count toward
    /// `max_pending` like messages: a client that sends PINGs (or provokes -ERRs) without
    /// reading the answers is cut off as a slow consumer, as nats-server does.
    pub fn queue_raw(&self, bytes: &[u8]) {
        let pending = {
            let mut out = self.out.lock();
            out.push_raw(bytes);
            out.pending()
        };
        if pending > self.max_pending {
            self.close_slow(CloseReason::SlowConsumerPendingBytes);
        }
    }

    /// Queue a message for `sid`. The client may have been closed (or have just become a
    /// slow consumer and been closed), or be queued past half of `max_pending`, in which
    /// case the publisher should stall until it drains (nats-server's producer stall).
    pub fn queue_msg(&self, msg: &MsgRef<'_>, sid: &[u8]) -> Queued {
        if self.is_closed() {
            return Queued::Dropped;
        }
        let headers = self.headers.load(Ordering::Relaxed);
        let pending = {
            let mut out = self.out.lock();
            out.push_msg(msg, sid, headers);
            out.pending()
        };
        self.queued(pending)
    }

    /// Queue a message for a route peer (`RMSG`/`HMSG` in `account`, for `queues`).
    pub fn queue_routed(&self, account: &[u8], msg: &MsgRef<'_>, queues: &[&[u8]]) -> Queued {
        if self.is_closed() {
            return Queued::Dropped;
        }
        let pending = {
            let mut out = self.out.lock();
            out.push_routed(account, msg, queues);
            out.pending()
        };
        self.queued(pending)
    }

    /// After queueing: closed as a slow consumer past `max_pending`, a stall past half.
    fn queued(&self, pending: usize) -> Queued {
        if pending > self.max_pending {
            self.close_slow(CloseReason::SlowConsumerPendingBytes);
            return Queued::Dropped;
        }
        if pending > self.stall_above() {
            Queued::Stall
        } else {
            Queued::Ok
        }
    }

    /// Queued bytes above which publishers stall (half of `max_pending`, as nats-server).
    fn stall_above(&self) -> usize {
        self.max_pending / 2
    }

    /// Release publishers waiting in [`Client::wait_drained`] once `pending` is low enough.
    fn release_if_drained(&self, pending: usize) {
        if pending <= self.stall_above() {
            self.drained.notify_waiters();
        }
    }

    /// Wait until this client's queue is back under half of `max_pending` (or it closes).
    pub async fn wait_drained(&self) {
        loop {
            let notified = self.drained.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            if self.is_closed() || self.out.lock().pending() <= self.stall_above() {
                return;
            }
            notified.await;
        }
    }

    /// The writer wrote `n` bytes: account for them and release stalled publishers.
    pub fn written(&self, n: usize) {
        let pending = {
            let mut out = self.out.lock();
            out.written(n);
            out.writing = false;
            out.pending()
        };
        self.release_if_drained(pending);
    }

    /// Close as a slow consumer (no -ERR, nothing more written), count it and log it at
    /// warn with the client's name and pending bytes.
    pub fn close_slow(&self, reason: CloseReason) {
        if self.close(reason) {
            self.server_stats
                .slow_consumers
                .fetch_add(1, Ordering::Relaxed);
            let pending = self.out.lock().pending();
            tracing::warn!(
                cid = self.cid,
                client = %self.addr,
                name = %self.name.lock(),
                pending_bytes = pending,
                max_pending = self.max_pending,
                "Slow Consumer Detected: {}",
                reason.as_str()
            );
        }
    }

    /// Mark this client as needing a flush; `true` if the caller must add it to its flush
    /// list (no other reader has it listed).
    pub fn mark_dirty(&self) -> bool {
        // Already listed (the common case inside a batch): a plain load instead of a
        // read-modify-write. Callers queue under the outbound lock first, so a flusher
        // that cleared the flag before our push also takes our bytes after it.
        if self.dirty.load(Ordering::Acquire) {
            return false;
        }
        !self.dirty.swap(true, Ordering::AcqRel)
    }

    /// Flush what is queued (after [`Client::mark_dirty`] returned `true`): write it
    /// straight to the socket when `inline` is allowed and possible, else wake the writer.
    pub fn flush(&self, inline: bool) {
        // Clear first: a publisher queueing after this point lists the client itself.
        self.dirty.store(false, Ordering::Release);
        if inline && self.try_inline_write() {
            return;
        }
        self.wake.notify_one();
    }

    /// Write the whole (small) queue with non-blocking writes from the caller's thread,
    /// saving the writer task's wake-up. `false` when it could not (TLS, writer busy,
    /// too much queued, socket full); whatever is left stays queued in order.
    fn try_inline_write(&self) -> bool {
        let Some(sock) = self.direct.get() else {
            return false;
        };
        let mut out = self.out.lock();
        if out.writing || out.pending() > INLINE_MAX_BYTES {
            return false;
        }
        let mut queue = VecDeque::new();
        out.take(&mut queue);
        let mut written = 0;
        let mut failed = false;
        while !queue.is_empty() {
            let n = {
                let mut iov = [IoSlice::new(&[]); MAX_IOV];
                let k = fill_iov(&queue, &mut iov);
                sock.try_write_vectored(&iov[..k])
            };
            match n {
                Ok(n) if n > 0 => {
                    written += n;
                    advance(&mut queue, n);
                }
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => break,
                _ => {
                    failed = true;
                    break;
                }
            }
        }
        out.written(written);
        let done = queue.is_empty();
        out.unshift(queue);
        let pending = out.pending();
        drop(out);
        if failed {
            self.close(CloseReason::WriteError);
            return true;
        }
        self.release_if_drained(pending);
        done
    }

    /// Use this socket for inline writes (plain TCP only).
    pub fn set_direct(&self, sock: Arc<TcpStream>) {
        let _ = self.direct.set(sock);
    }

    /// The writer task takes everything queued; until [`Client::written`] nobody else
    /// writes to the socket.
    pub fn take_for_writer(&self, queue: &mut VecDeque<Bytes>) {
        let mut out = self.out.lock();
        out.take(queue);
        if !queue.is_empty() {
            out.writing = true;
        }
    }

    /// Close with `reason`; the first reason wins. Returns whether this call closed it.
    pub fn close(&self, reason: CloseReason) -> bool {
        {
            let mut closed = self.closed.lock();
            if closed.is_some() {
                return false;
            }
            *closed = Some(reason);
        }
        self.is_closed.store(true, Ordering::Release);
        self.cancel.cancel();
        self.drained.notify_waiters();
        true
    }

    /// Queue `-ERR '<text>'` and close after it is written.
    pub fn err_and_close(&self, text: &str, reason: CloseReason) {
        let mut buf = bytes::BytesMut::new();
        petrel_wire::encode::err(&mut buf, text);
        self.queue_raw(&buf);
        self.close(reason);
    }

    pub fn close_reason(&self) -> Option<CloseReason> {
        *self.closed.lock()
    }

    /// Whether queued bytes should be written before the socket is closed.
    pub fn flush_on_close(&self) -> bool {
        self.close_reason().is_some_and(CloseReason::flushes)
    }

    pub fn is_closed(&self) -> bool {
        self.is_closed.load(Ordering::Acquire)
    }

    pub fn cancelled(&self) -> tokio_util::sync::WaitForCancellationFuture<'_> {
        self.cancel.cancelled()
    }

    pub fn notified(&self) -> tokio::sync::futures::Notified<'_> {
        self.wake.notified()
    }

    /// Bytes queued, and messages and bytes queued since the connection opened (for
    /// monitoring).
    pub fn out_counters(&self) -> (u64, u64, u64) {
        let out = self.out.lock();
        (out.pending() as u64, out.out_msgs, out.out_bytes)
    }

    pub fn outbound(&self) -> parking_lot::MutexGuard<'_, Outbound> {
        self.out.lock()
    }
}
