//! The reader: reads into a `BytesMut`, parses ops and applies them — CONNECT and auth,
//! SUB/UNSUB against the Sublist, PUB/HPUB through the router — then wakes every
//! connection it queued bytes for, once per read batch.

use std::collections::HashMap;
use std::sync::atomic::Ordering;
use std::sync::Arc;

use bytes::{Buf, Bytes, BytesMut};
use petrel_subject::{is_valid_literal_subject, is_valid_subject};
use petrel_wire::{encode, ClientOp, ConnectInfo, ParseError, Parser, PubAt};

use crate::account::Account;
use crate::auth::{self, Authed};
use crate::client::{Client, CloseReason};
use crate::outbound::{MsgRef, SHARE_THRESHOLD};
use crate::perms::ClientPerms;
use crate::router::{Publisher, Router};
use crate::server::Shared;
use crate::sub::{SubRef, Subscription};

mod reload;

/// Read buffer growth step.
const READ_BUF: usize = 64 * 1024;
/// Longest a publisher is held back waiting for slow subscribers to drain.
const STALL_MAX: std::time::Duration = std::time::Duration::from_secs(1);
/// Publish permission decisions remembered per connection.
const PUB_CACHE: usize = 1024;

/// Connection options from CONNECT, owned by the reader.
struct ConnOpts {
    verbose: bool,
    pedantic: bool,
    echo: bool,
    headers: bool,
    no_responders: bool,
}

/// Why credentials were refused: a revoked user JWT is told so when it is re-checked
/// (`User Authentication Revoked`); every other refusal is an `Authorization Violation`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Refused {
    Credentials,
    Revoked,
}

struct Reader<'a> {
    shared: &'a Shared,
    client: &'a Arc<Client>,
    /// The account it publishes and subscribes in (`$G` until CONNECT says otherwise).
    account: Arc<Account>,
    router: Router,
    /// The server options this connection last applied (replaced on reload).
    opts: Arc<petrel_config::Options>,
    /// What the client asked for in CONNECT.
    conn: ConnOpts,
    /// The CONNECT as received, to re-authenticate on reload.
    connect_info: Option<ConnectInfo>,
    connected: bool,
    auth_required: bool,
    /// The authenticated user, for logs.
    user: Option<String>,
    /// Permissions of the authenticated user (`None` = unrestricted).
    perms: Option<Arc<ClientPerms>>,
    /// A JWT user's limits and expiry (operator mode).
    jwt: Option<auth::JwtUser>,
    /// The expiry timer is armed.
    expiry_armed: bool,
    /// Publish permission decisions by subject (bounded).
    pub_cache: HashMap<Box<[u8]>, bool>,
    /// Log every inbound op at trace level (`-V`).
    trace: bool,
    /// Messages and bytes received in the current read batch.
    in_msgs: u64,
    in_bytes: u64,
    /// When a permission violation was last logged, and how many were not since.
    last_violation_log: Option<std::time::Instant>,
    violations_suppressed: u64,
}

pub(crate) async fn read_loop<R: super::io::ReadSource>(
    shared: &Arc<Shared>,
    client: &Arc<Client>,
    mut rd: R,
) {
    let opts = client.effective_opts(shared.opts());
    let mut parser = Parser::new(opts.max_control_line, opts.max_payload);
    parser.set_headers(false);
    let mut r = Reader {
        shared,
        client,
        account: shared.accounts.global().clone(),
        router: Router::new(),
        opts: opts.clone(),
        connect_info: None,
        // Before CONNECT nats-server applies its CONNECT defaults: verbose and pedantic on.
        conn: ConnOpts {
            verbose: true,
            pedantic: true,
            echo: true,
            headers: false,
            no_responders: false,
        },
        connected: false,
        auth_required: opts.auth_required(),
        user: None,
        perms: None,
        jwt: None,
        expiry_armed: false,
        pub_cache: HashMap::new(),
        trace: opts.trace,
        in_msgs: 0,
        in_bytes: 0,
        last_violation_log: None,
        violations_suppressed: 0,
    };
    let mut reload = shared.watch_reload();
    let auth_timer = tokio::time::sleep(opts.auth_timeout);
    tokio::pin!(auth_timer);
    let mut buf = BytesMut::with_capacity(READ_BUF);
    'read: loop {
        if buf.capacity() - buf.len() < READ_BUF / 4 {
            buf.reserve(READ_BUF);
        }
        let waiting_auth = r.auth_required && !r.connected;
        let n = tokio::select! {
            biased;
            () = client.cancelled() => break,
            () = &mut auth_timer, if waiting_auth => {
                tracing::debug!(cid = client.cid, client = %client.addr, "Authentication Timeout");
                client.err_and_close("Authentication Timeout", CloseReason::AuthTimeout);
                break;
            }
            Ok(()) = reload.changed() => {
                if !r.apply_reload(&mut parser).await {
                    break;
                }
                r.end_batch();
                continue;
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
            // The hot path: a whole PUB found once; a small one is published in place.
            let parsed = if !r.fast_path() {
                parser.parse(&mut buf)
            } else {
                match parser.peek_pub(&buf) {
                    Some(at) if at.payload.len() < SHARE_THRESHOLD => {
                        r.publish_in_place(&mut buf, at);
                        if client.is_closed() {
                            break 'read;
                        }
                        continue;
                    }
                    Some(at) => Ok(Some(parser.take_pub(&mut buf, at))),
                    None => parser.parse_general(&mut buf),
                }
            };
            match parsed {
                Ok(Some(op)) => {
                    let open = match op {
                        // Authentication may wait for the bcrypt pool: bounded by the
                        // auth timeout like the CONNECT itself.
                        ClientOp::Connect(json) => {
                            r.trace_op(&ClientOp::Connect(json.clone()));
                            let waiting_auth = r.auth_required && !r.connected;
                            let open = tokio::select! {
                                open = r.connect(&json) => open,
                                () = auth_timer.as_mut(), if waiting_auth => {
                                    client.err_and_close("Authentication Timeout", CloseReason::AuthTimeout);
                                    false
                                }
                            };
                            parser.set_limits(r.opts.max_control_line, r.payload_limit());
                            open
                        }
                        op => r.handle(op),
                    };
                    if !open {
                        break 'read;
                    }
                    parser.set_headers(r.conn.headers);
                }
                Ok(None) => break,
                Err(e) => {
                    r.parse_error(e);
                    break 'read;
                }
            }
        }
        r.end_batch();
        r.wait_stalled().await;
    }
    r.end_batch();
}

impl Reader<'_> {
    /// End of a read batch: wake every connection we queued bytes for, add the counters.
    fn end_batch(&mut self) {
        // Counters first, so anyone who sees a delivered message also sees it counted.
        if self.in_msgs > 0 {
            let (m, b) = (self.in_msgs, self.in_bytes);
            self.shared.stats.in_msgs.fetch_add(m, Ordering::Relaxed);
            self.shared.stats.in_bytes.fetch_add(b, Ordering::Relaxed);
            self.client.stats.in_msgs.fetch_add(m, Ordering::Relaxed);
            self.client.stats.in_bytes.fetch_add(b, Ordering::Relaxed);
            self.account.stats.in_msgs.fetch_add(m, Ordering::Relaxed);
            self.account.stats.in_bytes.fetch_add(b, Ordering::Relaxed);
            self.in_msgs = 0;
            self.in_bytes = 0;
        }
        self.router.flush(self.shared);
    }

    /// Stop reading from this publisher until the subscribers it pushed past half of their
    /// `max_pending`, and the JetStream queues it pushed past half full, have drained (at
    /// most [`STALL_MAX`]), so a fast producer is slowed down instead of its consumers
    /// being cut off or its messages refused.
    async fn wait_stalled(&mut self) {
        if self.router.stalled.is_empty() {
            return;
        }
        let deadline = tokio::time::Instant::now() + STALL_MAX;
        for stall in std::mem::take(&mut self.router.stalled) {
            if !stall.is_client(self.client) {
                let _ = tokio::time::timeout_at(deadline, stall.wait()).await;
            }
        }
    }

    /// Queue bytes for this connection itself (+OK, PONG, -ERR).
    fn reply(&mut self, bytes: &[u8]) {
        self.client.queue_raw(bytes);
        self.router.mark(self.client);
    }

    fn ok(&mut self) {
        if self.conn.verbose {
            self.reply(encode::OK);
        }
    }

    fn err(&mut self, text: &str) {
        let mut b = BytesMut::new();
        encode::err(&mut b, text);
        self.reply(&b);
    }

    fn parse_error(&mut self, e: ParseError) {
        let reason = match e {
            ParseError::MaxControlLine => CloseReason::MaxControlLineExceeded,
            ParseError::MaxPayload => CloseReason::MaxPayloadExceeded,
            ParseError::UnknownOp | ParseError::BadArgs(_) => CloseReason::ParseError,
        };
        tracing::debug!(cid = self.client.cid, client = %self.client.addr, error = %e, "Client parser error");
        match e.err_text() {
            Some(text) => self.client.err_and_close(text, reason),
            None => {
                self.client.close(reason);
            }
        }
    }

    /// Whether a `PUB` may skip [`Reader::handle`] (authentication done, no op tracing).
    fn fast_path(&self) -> bool {
        !self.trace && (self.connected || !self.auth_required)
    }

    /// Publishes the small `PUB` found at `at` straight from the read buffer (no `Bytes`
    /// made: everything that keeps so small a message copies it) and advances over it.
    fn publish_in_place(&mut self, buf: &mut BytesMut, at: PubAt) {
        let reply = at.reply.map(|r| &buf[r]);
        self.publish(&buf[at.subject], reply, None, &buf[at.payload], None);
        buf.advance(at.len);
    }

    /// Log an inbound op at trace level (`-V`; credentials redacted).
    fn trace_op(&self, op: &ClientOp) {
        if self.trace {
            let line = super::trace::op_line(op);
            tracing::trace!(
                "{} - cid:{} - <<- [{line}]",
                self.client.addr,
                self.client.cid
            );
        }
    }

    /// Apply one op other than CONNECT; `false` when the connection is closing.
    fn handle(&mut self, op: ClientOp) -> bool {
        self.trace_op(&op);
        if self.auth_required && !self.connected {
            self.auth_violation();
            return false;
        }
        match op {
            // The read loop handles CONNECT (it awaits authentication).
            ClientOp::Connect(_) => return false,
            ClientOp::Pub {
                subject,
                reply,
                payload,
            } => self.publish(&subject, reply.as_deref(), None, &payload, Some(&payload)),
            ClientOp::HPub {
                subject,
                reply,
                data,
                hdr_len,
            } => self.publish(
                &subject,
                reply.as_deref(),
                Some(hdr_len),
                &data,
                Some(&data),
            ),
            ClientOp::Sub {
                subject,
                queue,
                sid,
            } => self.subscribe(subject, queue, sid),
            ClientOp::Unsub { sid, max } => self.unsubscribe(&sid, max),
            ClientOp::Ping => self.reply(encode::PONG),
            ClientOp::Pong => {
                self.client.pings_out.store(0, Ordering::Release);
                self.client.meta.pong_received();
            }
            ClientOp::Ok | ClientOp::Err | ClientOp::Info => {}
        }
        !self.client.is_closed()
    }

    fn auth_violation(&mut self) {
        tracing::warn!(cid = self.client.cid, client = %self.client.addr, "Authorization Violation");
        self.client
            .err_and_close("Authorization Violation", CloseReason::AuthFailure);
    }

    async fn connect(&mut self, json: &[u8]) -> bool {
        let info: ConnectInfo = match serde_json::from_slice(json) {
            Ok(info) => info,
            Err(e) => {
                // serde's message can quote a value (a password sent as a number): log
                // where the JSON is wrong, not what it says.
                tracing::debug!(cid = self.client.cid, client = %self.client.addr,
                    kind = ?e.classify(), line = e.line(), column = e.column(), "Bad CONNECT");
                self.client.close(CloseReason::ParseError);
                return false;
            }
        };
        let info = self.client.complete_connect(info);
        if !(0..=1).contains(&info.protocol) {
            self.client
                .err_and_close("invalid client protocol", CloseReason::ProtocolViolation);
            return false;
        }
        if info.no_responders && !info.headers {
            self.client.err_and_close(
                "no responders requires headers support",
                CloseReason::ProtocolViolation,
            );
            return false;
        }
        let authed = if self.auth_required {
            match self.authenticate(&info).await {
                Ok(a) => a,
                Err(_) => {
                    self.auth_violation();
                    return false;
                }
            }
        } else {
            Authed::default()
        };
        if self.account_full(authed.account.as_deref()) {
            self.client.err_and_close(
                "maximum account active connections exceeded",
                CloseReason::MaxAccountConnectionsExceeded,
            );
            return false;
        }
        if !self.set_authed(authed) {
            self.auth_violation();
            return false;
        }
        self.conn = ConnOpts {
            verbose: info.verbose,
            pedantic: info.pedantic,
            echo: info.echo,
            headers: info.headers,
            no_responders: info.no_responders,
        };
        self.client.headers.store(info.headers, Ordering::Release);
        self.client
            .async_info
            .store(info.protocol >= 1, Ordering::Release);
        *self.client.name.lock() = info.name.clone().unwrap_or_default();
        self.client
            .meta
            .set_client(info.lang.as_deref(), info.version.as_deref());
        self.connect_info = Some(info);
        self.connected = true;
        self.ok();
        if self.client.meta.set_connected() {
            crate::sys::client_connected(self.shared, self.client);
        }
        true
    }

    /// Whether `account` (operator mode) already has as many client connections as its
    /// JWT allows (`conn`; -1 is unlimited).
    fn account_full(&self, account: Option<&str>) -> bool {
        let (Some(trust), Some(name)) = (&self.shared.trust, account) else {
            return false;
        };
        let Some(limit) = trust
            .account(name)
            .and_then(|a| u64::try_from(a.claims.nats.limits.conn).ok())
        else {
            return false;
        };
        let Some(account) = self.shared.accounts.get(name) else {
            return false;
        };
        let open = self
            .shared
            .clients_of(&account)
            .iter()
            .filter(|c| c.cid != self.client.cid)
            .count() as u64;
        open >= limit
    }

    /// Binds the connection to `account` for good.
    fn bind(&self, account: &Arc<Account>) {
        self.client.set_account(account);
        account.stats.total_conns.fetch_add(1, Ordering::Relaxed);
    }

    /// Adopt the identity, account and permissions of an authentication; `false` when its
    /// account does not exist, or differs from the one the connection is bound to (a
    /// reload that moved the user).
    fn set_authed(&mut self, authed: Authed) -> bool {
        let accounts = &self.shared.accounts;
        let account = match &authed.account {
            Some(name) => match accounts.get(name) {
                Some(a) => a.clone(),
                None => return false,
            },
            None => accounts.global().clone(),
        };
        match self.client.account() {
            Some(bound) if !Arc::ptr_eq(&bound, &account) => return false,
            Some(_) => {}
            None => self.bind(&account),
        }
        self.account = account;
        self.perms = authed
            .permissions
            .as_ref()
            .map(|p| Arc::new(ClientPerms::compile(p)));
        self.pub_cache.clear();
        self.user = authed.user;
        self.client.meta.set_user(self.user.as_deref());
        self.client
            .set_response_permission(self.perms.as_ref().and_then(|p| p.responses));
        self.client
            .meta
            .set_user_name(authed.jwt.as_ref().map(|j| j.name.as_str()));
        self.jwt = authed.jwt;
        self.arm_expiry();
        true
    }

    /// The largest payload this connection may publish: the server's `max_payload`, or a
    /// JWT user's lower limit.
    fn payload_limit(&self) -> usize {
        let jwt = self.jwt.as_ref().and_then(|j| j.max_payload);
        jwt.map_or(self.opts.max_payload, |max| {
            usize::try_from(max)
                .unwrap_or(usize::MAX)
                .min(self.opts.max_payload)
        })
    }

    /// Close the connection when its user JWT (or account JWT) expires, as nats-server
    /// does: `-ERR 'User Authentication Expired'`.
    fn arm_expiry(&mut self) {
        let Some(at) = self.jwt.as_ref().and_then(|j| j.expires) else {
            return;
        };
        if std::mem::replace(&mut self.expiry_armed, true) {
            return;
        }
        let secs = u64::try_from(at - crate::operator::unix_now()).unwrap_or(0);
        let client = self.client.clone();
        tokio::spawn(async move {
            tokio::select! {
                () = client.cancelled() => {}
                () = tokio::time::sleep(std::time::Duration::from_secs(secs)) => {
                    tracing::debug!(cid = client.cid, "User Authentication Expired");
                    client.err_and_close("User Authentication Expired", CloseReason::AuthenticationExpired);
                }
            }
        });
    }

    /// Check credentials (bcrypt on the server's bounded pool, off the reactor).
    async fn authenticate(&self, info: &ConnectInfo) -> Result<Authed, Refused> {
        if let Some(trust) = &self.shared.trust {
            return trust
                .login(info, &self.client.nonce, self.client.addr.ip())
                .map_err(|e| {
                    tracing::debug!(cid = self.client.cid, client = %self.client.addr, "JWT login refused: {e}");
                    match e {
                        crate::operator::LoginError::Revoked(_) => Refused::Revoked,
                        _ => Refused::Credentials,
                    }
                });
        }
        auth::check(
            &self.shared.auth_pool,
            self.opts.clone(),
            info.clone(),
            self.client.nonce.clone(),
        )
        .await
        .ok_or(Refused::Credentials)
    }

    /// Publish permission for `subject`: the compiled rules (cached), else a response
    /// permission granted by `allow_responses`.
    fn may_publish(&mut self, subject: &[u8]) -> bool {
        let Some(perms) = &self.perms else {
            return true;
        };
        let allowed = match self.pub_cache.get(subject) {
            Some(&ok) => ok,
            None => {
                let ok = perms.can_publish(subject);
                if self.pub_cache.len() >= PUB_CACHE {
                    self.pub_cache.clear();
                }
                self.pub_cache.insert(subject.into(), ok);
                ok
            }
        };
        allowed || (perms.responses.is_some() && self.client.responses.consume(subject))
    }

    /// Send a permissions `-ERR` (the connection stays open) and log it — at most once a
    /// second per connection, with the count of those not logged since.
    fn violation(&mut self, what: &str) {
        let now = std::time::Instant::now();
        if self
            .last_violation_log
            .is_none_or(|t| now.duration_since(t) >= std::time::Duration::from_secs(1))
        {
            tracing::warn!(
                cid = self.client.cid,
                client = %self.client.addr,
                user = self.user.as_deref().unwrap_or(""),
                suppressed = self.violations_suppressed,
                "{what}"
            );
            self.last_violation_log = Some(now);
            self.violations_suppressed = 0;
        } else {
            self.violations_suppressed += 1;
        }
        self.err(what);
    }

    fn publish(
        &mut self,
        subject: &[u8],
        reply: Option<&[u8]>,
        hdr_len: Option<usize>,
        data: &[u8],
        owner: Option<&Bytes>,
    ) {
        self.in_msgs += 1;
        self.in_bytes += data.len() as u64;
        if !self.may_publish(subject) {
            let what = format!(
                "Permissions Violation for Publish to \"{}\"",
                String::from_utf8_lossy(subject)
            );
            self.violation(&what);
            return;
        }
        if self.conn.pedantic && !is_valid_literal_subject(subject) {
            // Reported, but (as nats-server does) still delivered.
            self.err("Invalid Publish Subject");
        }
        self.ok();
        let from = Publisher {
            account: &self.account,
            client: self.client,
            echo: self.conn.echo,
            no_responders: self.conn.no_responders,
            queues: None,
        };
        let msg = MsgRef {
            subject,
            reply,
            hdr_len,
            data,
            owner,
        };
        self.router.publish(self.shared, from, &msg);
    }

    fn subscribe(&mut self, subject: Bytes, queue: Option<Bytes>, sid: Bytes) {
        if !is_valid_subject(&subject) || queue.as_ref().is_some_and(|q| q.is_empty()) {
            self.err("Invalid Subject");
            return;
        }
        if let Some(p) = &self.perms {
            if !p.can_subscribe(&subject, queue.as_deref()) {
                let s = String::from_utf8_lossy(&subject).into_owned();
                let what = match &queue {
                    Some(q) => format!(
                        "Permissions Violation for Subscription to \"{s}\" using queue \"{}\"",
                        String::from_utf8_lossy(q)
                    ),
                    None => format!("Permissions Violation for Subscription to \"{s}\""),
                };
                self.violation(&what);
                return;
            }
        }
        let deny_check = self
            .perms
            .as_ref()
            .filter(|p| p.needs_delivery_check(&subject))
            .cloned();
        let max = match self.jwt.as_ref().and_then(|j| j.max_subs) {
            Some(n) => usize::try_from(n).unwrap_or(usize::MAX),
            None => self.opts.max_subscriptions,
        };
        {
            let subs = self.client.subs.lock();
            if subs.contains_key(&sid) {
                drop(subs);
                self.ok();
                return;
            }
            if max > 0 && subs.len() >= max {
                drop(subs);
                tracing::debug!(cid = self.client.cid, "Maximum subscriptions exceeded");
                self.err("maximum subscriptions exceeded");
                return;
            }
        }
        // Copied out of the read buffer: a subscription lives long and must not pin it.
        let copy = |b: &Bytes| Bytes::copy_from_slice(b);
        let (subject, queue, sid) = (copy(&subject), queue.as_ref().map(copy), copy(&sid));
        let sub = Arc::new(Subscription {
            deny_check,
            ..Subscription::new(self.client.clone(), subject, queue, sid.clone())
        });
        // A subscription made before CONNECT (no auth) binds the connection to its
        // account: a later CONNECT into another one is refused, so no subscription is left
        // behind in an account the connection does not belong to.
        if self.client.account().is_none() {
            let account = self.account.clone();
            self.bind(&account);
        }
        if self.account.insert_sub(&sub).is_err() {
            self.err("Invalid Subject");
            return;
        }
        self.client.subs.lock().insert(sid, sub);
        self.ok();
    }

    fn unsubscribe(&mut self, sid: &Bytes, max: Option<u64>) {
        let sub = self.client.subs.lock().get(sid).cloned();
        if let Some(sub) = sub {
            match max {
                Some(m) if m > 0 && sub.delivered.load(Ordering::Acquire) < m => {
                    sub.max.store(m, Ordering::Release);
                }
                _ => self.shared.remove_sub(&SubRef(sub)),
            }
        }
        self.ok();
    }
}
