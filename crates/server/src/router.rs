//! Message fan-out: Sublist match (through the reader's private cache), delivery into each
//! target's outbound queue, queue-group member choice, auto-unsubscribe, no-responders,
//! and the once-per-read-batch flush of every touched connection.

use std::sync::atomic::Ordering;
use std::sync::Arc;

use bytes::Bytes;
use petrel_jetstream::{Accept, Flow, Incoming, Pressure, ServerMsg};
use petrel_subject::{Admission, MatchCache, SublistResult};

use crate::account::Account;
use crate::client::{Client, ClientKind, Queued};
use crate::imports::Forward;
use crate::outbound::{MsgRef, SHARE_THRESHOLD};
use crate::server::Shared;
use crate::stats::MatchTally;
use crate::sub::{Internal, SubRef};

/// How many imports a message may pass through (A → B → C …).
const MAX_IMPORT_DEPTH: u8 = 4;
/// Most connections a reader flushes inline at the end of a batch.
const INLINE_TARGETS: usize = 4;
/// Match-cache entries per reader.
const CACHE_SIZE: usize = 1024;
/// Payloads handed to internal subscriptions (JetStream queues them) are copied out of the
/// connection's read buffer below this size, so a small queued message never pins a whole
/// buffer; larger ones fill most of the buffer they sit in and are shared.
const DETACH_BELOW: usize = 64 * 1024;

/// What a stalled publisher waits on before reading more (producer stall).
pub(crate) enum Stall {
    /// A subscriber whose outbound queue is past half of `max_pending`.
    Client(Arc<Client>),
    /// A JetStream queue (stream ingest, consumer events, API) past half of its limits.
    Queue(Arc<dyn Pressure>),
}

impl Stall {
    fn same(&self, other: &Stall) -> bool {
        match (self, other) {
            (Stall::Client(a), Stall::Client(b)) => Arc::ptr_eq(a, b),
            (Stall::Queue(a), Stall::Queue(b)) => std::ptr::addr_eq(Arc::as_ptr(a), Arc::as_ptr(b)),
            _ => false,
        }
    }

    /// Waits until the stall is over (or the subscriber closed).
    pub async fn wait(&self) {
        match self {
            Stall::Client(c) => c.wait_drained().await,
            Stall::Queue(p) => loop {
                let notified = p.notify().notified();
                tokio::pin!(notified);
                notified.as_mut().enable();
                if p.relieved() {
                    return;
                }
                notified.await;
            },
        }
    }

    /// Whether this stall is on the connection `client` itself.
    pub fn is_client(&self, client: &Arc<Client>) -> bool {
        matches!(self, Stall::Client(c) if Arc::ptr_eq(c, client))
    }
}

/// How the publishing connection wants its messages handled.
#[derive(Clone, Copy)]
pub(crate) struct Publisher<'a> {
    /// The account it publishes in: only that account's subscriptions hear it.
    pub account: &'a Arc<Account>,
    pub client: &'a Arc<Client>,
    pub echo: bool,
    pub no_responders: bool,
    /// A message from a route: the queue groups the peer chose this server for (only
    /// they get it, and only their local members; nothing goes back out to a route).
    pub queues: Option<&'a [Bytes]>,
}

/// A route peer a publish goes to, with the queue groups it was chosen for.
struct RouteTarget {
    peer: Arc<Client>,
    queues: Vec<Bytes>,
}

/// A reader's routing context: its match cache and the connections to wake at the end of
/// the current read batch.
pub(crate) struct Router {
    cache: MatchCache<SubRef>,
    /// The account whose Sublist `cache` holds results of (a router serves one account;
    /// the cache is cleared if it is handed another).
    cache_account: Option<std::sync::Weak<Account>>,
    /// Keeps subjects looked up only once (inboxes, ack subjects) out of `cache`.
    admission: Admission,
    to_flush: Vec<Arc<Client>>,
    /// Connections queued past half of their `max_pending` and JetStream queues past half
    /// full in this batch: the publisher waits for them to drain before reading more
    /// (producer stall).
    pub stalled: Vec<Stall>,
    /// Messages the server publishes in answer to this publish (an error PubAck for a
    /// refused message, an advisory), sent once the publish is routed.
    answers: Vec<ServerMsg>,
    /// Deliveries since the last flush, added to the server counters once per batch.
    out_msgs: u64,
    out_bytes: u64,
    /// Lookup statistics for `/subsz`, published with the counters.
    tally: MatchTally,
    /// Messages imports hand to other accounts, published after the current publish.
    forwards: Vec<Forward>,
    /// How many imports deep the current publish is (bounded: import cycles end).
    depth: u8,
    /// Route peers the current publish goes to (one `RMSG` each).
    routes: Vec<RouteTarget>,
}

impl Router {
    pub fn new() -> Self {
        Self {
            cache: MatchCache::new(CACHE_SIZE),
            cache_account: None,
            admission: Admission::new(4 * CACHE_SIZE),
            to_flush: Vec::new(),
            stalled: Vec::new(),
            answers: Vec::new(),
            out_msgs: 0,
            out_bytes: 0,
            tally: MatchTally::default(),
            forwards: Vec::new(),
            depth: 0,
            routes: Vec::new(),
        }
    }

    /// Whether a message the server publishes on `subject` would reach any subscription
    /// (internal subscriptions that accept only clients do not count).
    pub fn has_interest(&mut self, account: &Arc<Account>, subject: &[u8]) -> bool {
        let result = self.lookup(account, subject);
        // An import counts when the other account hears it there.
        let hears = |s: &SubRef| {
            s.internal
                .as_ref()
                .is_none_or(|i| i.accept == Accept::Everyone)
                && s.import.as_ref().is_none_or(|i| i.has_interest(subject))
        };
        result.psubs.iter().any(hears)
            || result
                .qsubs
                .iter()
                .any(|(_, group)| group.iter().any(hears))
    }

    fn lookup(&mut self, account: &Arc<Account>, subject: &[u8]) -> Arc<SublistResult<SubRef>> {
        let home = match &self.cache_account {
            Some(a) => std::ptr::eq(a.as_ptr(), Arc::as_ptr(account)),
            None => {
                self.cache_account = Some(Arc::downgrade(account));
                true
            }
        };
        if !home {
            // Another account (an import's destination): looked up, not cached.
            self.tally.lookup(false);
            return Arc::new(account.sublist.read().match_subject(subject));
        }
        let generation = account.generation.load(Ordering::Acquire);
        if let Some(r) = self.cache.get(subject, generation) {
            self.tally.lookup(true);
            return r;
        }
        let r = Arc::new(account.sublist.read().match_subject(subject));
        self.tally.lookup(false);
        self.tally.computed(r.psubs.len() + r.qsubs.len());
        if self.admission.seen_again(subject) {
            self.cache.insert(subject, generation, r.clone());
        }
        r
    }

    /// Remember that `client` has new bytes queued.
    pub fn mark(&mut self, client: &Arc<Client>) {
        if client.mark_dirty() {
            self.to_flush.push(client.clone());
        }
    }

    /// Wake every connection touched since the last call and publish the batch's counters.
    pub fn flush(&mut self, shared: &Shared) {
        if self.out_msgs > 0 {
            shared
                .stats
                .out_msgs
                .fetch_add(self.out_msgs, Ordering::Relaxed);
            shared
                .stats
                .out_bytes
                .fetch_add(self.out_bytes, Ordering::Relaxed);
            self.out_msgs = 0;
            self.out_bytes = 0;
        }
        self.tally.publish(&shared.stats, self.cache.len());
        // A few targets (request/reply, small fan-out): write inline from this reader and
        // save each writer's wake-up; many: let their writers work in parallel.
        let inline = self.to_flush.len() <= INLINE_TARGETS;
        // Last activity for /connz: one clock read for the batch, not one per connection.
        let now = if self.to_flush.is_empty() {
            0
        } else {
            petrel_jetstream::now_nanos()
        };
        for c in self.to_flush.drain(..) {
            c.meta.touch_at(now);
            c.flush(inline);
        }
    }

    /// Deliver `msg` to every matching subscription.
    pub fn publish(&mut self, shared: &Shared, from: Publisher<'_>, msg: &MsgRef<'_>) {
        let mapped = shared
            .js_domain_api
            .as_deref()
            .and_then(|prefix| crate::mapping::map_domain(prefix, msg.subject));
        match mapped {
            Some(subject) => {
                let msg = MsgRef {
                    subject: &subject,
                    ..*msg
                };
                self.publish_on(shared, from, &subject, &msg);
            }
            None => {
                self.publish_on(shared, from, msg.subject, msg);
            }
        }
    }

    /// Deliver `msg` to every subscription matching `route`, showing `msg.subject` in the
    /// `MSG` line (JetStream consumer deliveries keep the stored subject). Returns whether
    /// anything took it.
    pub fn publish_on(
        &mut self,
        shared: &Shared,
        from: Publisher<'_>,
        route: &[u8],
        msg: &MsgRef<'_>,
    ) -> bool {
        let forwards_from = self.forwards.len();
        let result = self.lookup(from.account, route);
        // A mid-sized payload is queued by reference: copy it out of the publisher's read
        // buffer once, so a slow subscriber holding it does not pin the whole buffer.
        let detached;
        let msg = if !result.is_empty() && (SHARE_THRESHOLD..DETACH_BELOW).contains(&msg.data.len())
        {
            detached = Bytes::copy_from_slice(msg.data);
            &MsgRef {
                data: &detached,
                owner: Some(&detached),
                ..*msg
            }
        } else {
            msg
        };
        let mut delivered = false;
        let routes_from = self.routes.len();
        // Route peers hear a client's message once each, and never one that came from a
        // route (one hop), a hub (learned as its spoke) or the server's own output on a
        // request subject.
        let to_routes = shared.cluster.get().is_some()
            && crate::leaf::to_routes(from.client)
            && crate::route::forwardable(from.client.kind, route);
        for sub in &result.psubs {
            match sub.client.kind {
                ClientKind::Route => {
                    if to_routes {
                        self.route_to(&sub.client, None);
                        delivered = true;
                    }
                    continue;
                }
                ClientKind::Leaf => {
                    if crate::leaf::leaf_gets(from.client, &sub.client, route) {
                        self.route_to(&sub.client, None);
                        delivered = true;
                    }
                    continue;
                }
                _ => {}
            }
            if !from.echo && Arc::ptr_eq(&sub.client, from.client) {
                continue;
            }
            delivered |= self.deliver(shared, from, sub, route, msg);
        }
        for (name, group) in &result.qsubs {
            if from
                .queues
                .is_some_and(|qs| !qs.iter().any(|q| q[..] == name[..]))
            {
                continue;
            }
            delivered |= self.deliver_queue(shared, from, name, group, route, msg, to_routes);
        }
        if self.routes.len() > routes_from {
            self.send_routed(from.account, route, msg, routes_from);
        }
        // As nats-server: a request nobody received (no match, or every match declined,
        // denied or full) gets the 503 status when its publisher asked for it.
        if !delivered && from.no_responders {
            if let Some(reply) = msg.reply {
                self.no_responders(from.account, from.client, reply, msg.subject);
            }
        }
        if !self.answers.is_empty() {
            self.send_answers(shared, from.account);
        }
        if self.forwards.len() > forwards_from {
            self.send_forwards(shared, from, forwards_from);
        }
        delivered
    }

    /// Delivers to one member of a queue group. A client's message goes to a member chosen
    /// at random across the cluster, route peers weighted by their members (nats-server's
    /// rule); a message from a route or leaf to a local member, else — the one exception
    /// to one hop — to another peer's member, never back to the sender. Leaf members are
    /// the last resort (nats-server prefers the cluster's own members).
    #[allow(clippy::too_many_arguments)]
    fn deliver_queue(
        &mut self,
        shared: &Shared,
        from: Publisher<'_>,
        name: &[u8],
        group: &[SubRef],
        route: &[u8],
        msg: &MsgRef<'_>,
        to_routes: bool,
    ) -> bool {
        let n = group.len();
        let remote_origin = from.queues.is_some();
        let start = if shared.cluster.get().is_some() && !remote_origin {
            weighted_start(group, to_routes)
        } else {
            fastrand::usize(..n)
        };
        let mut leaf: Option<&SubRef> = None;
        for i in 0..n {
            let sub = &group[(start + i) % n];
            match sub.client.kind {
                ClientKind::Route => {
                    if to_routes && !remote_origin {
                        self.route_to(&sub.client, Some(name));
                        return true;
                    }
                    continue;
                }
                ClientKind::Leaf => {
                    if leaf.is_none() && crate::leaf::leaf_gets(from.client, &sub.client, route) {
                        leaf = Some(sub);
                    }
                    continue;
                }
                _ => {}
            }
            if sub.client.is_closed() || (!from.echo && Arc::ptr_eq(&sub.client, from.client)) {
                continue;
            }
            if self.deliver(shared, from, sub, route, msg) {
                return true;
            }
        }
        // A message from a route or leaf with no local member left: another route
        // peer's member (from a route, or a spoke whose hub we are).
        let other_routes = from.client.kind == ClientKind::Route || to_routes;
        if remote_origin && other_routes && self.pick_route_member(from, name, group) {
            return true;
        }
        if let Some(sub) = leaf {
            self.route_to(&sub.client, Some(name));
            return true;
        }
        false
    }

    /// Sends to a route peer's member of `group` (weighted by members), not the sender.
    fn pick_route_member(&mut self, from: Publisher<'_>, name: &[u8], group: &[SubRef]) -> bool {
        let others = group
            .iter()
            .filter(|s| s.client.kind == ClientKind::Route && !Arc::ptr_eq(&s.client, from.client));
        let total: u64 = others.clone().map(|s| u64::from(s.weight())).sum();
        if total == 0 {
            return false;
        }
        let mut pick = fastrand::u64(..total);
        for sub in others {
            let w = u64::from(sub.weight());
            if pick < w {
                self.route_to(&sub.client, Some(name));
                return true;
            }
            pick -= w;
        }
        false
    }

    /// Adds `peer` to the current publish's route targets (once), with `queue`.
    fn route_to(&mut self, peer: &Arc<Client>, queue: Option<&[u8]>) {
        let t = match self.routes.iter().position(|t| Arc::ptr_eq(&t.peer, peer)) {
            Some(i) => &mut self.routes[i],
            None => {
                self.routes.push(RouteTarget {
                    peer: peer.clone(),
                    queues: Vec::new(),
                });
                self.routes.last_mut().expect("just pushed")
            }
        };
        if let Some(q) = queue {
            t.queues.push(Bytes::copy_from_slice(q));
        }
    }

    /// Queues the current publish for its route targets, on the subject it is routed on.
    /// A message shown under another subject (a JetStream delivery) carries that subject
    /// after an `@` in its `$JS.ACK` reply, as nats-server encodes it.
    fn send_routed(
        &mut self,
        account: &Arc<Account>,
        route: &[u8],
        msg: &MsgRef<'_>,
        start: usize,
    ) {
        let encoded;
        let reply = match msg.reply {
            Some(r)
                if msg.subject != route
                    && crate::route::js_ack_deliver_at(r).is_none()
                    && r.starts_with(b"$JS.ACK.") =>
            {
                let mut b = Vec::with_capacity(r.len() + 1 + msg.subject.len());
                b.extend_from_slice(r);
                b.push(b'@');
                b.extend_from_slice(msg.subject);
                encoded = b;
                Some(&encoded[..])
            }
            r => r,
        };
        let msg = MsgRef {
            subject: route,
            reply,
            ..*msg
        };
        // By index, without draining into a new Vec: no allocation per publish.
        for i in start..self.routes.len() {
            let t = &self.routes[i];
            // Leaf connections are bound to one account: none on the wire (`LMSG`).
            let acc: &[u8] = match t.peer.kind {
                ClientKind::Leaf => b"",
                _ => account.name.as_bytes(),
            };
            let queued = if t.queues.is_empty() {
                t.peer.queue_routed(acc, &msg, &[])
            } else {
                let queues: Vec<&[u8]> = t.queues.iter().map(|q| q.as_ref()).collect();
                t.peer.queue_routed(acc, &msg, &queues)
            };
            let peer = t.peer.clone();
            match queued {
                Queued::Dropped => continue,
                Queued::Stall => self.stall(Stall::Client(peer.clone())),
                Queued::Ok => {}
            }
            self.out_msgs += 1;
            self.out_bytes += msg.data.len() as u64;
            self.mark(&peer);
        }
        self.routes.truncate(start);
    }

    /// Publishes in their accounts what imports took from this publish, keeping the
    /// publisher (a client's message stays a client's). At most [`MAX_IMPORT_DEPTH`]
    /// imports deep, so import cycles end.
    fn send_forwards(&mut self, shared: &Shared, from: Publisher<'_>, start: usize) {
        let forwards: Vec<Forward> = self.forwards.drain(start..).collect();
        if self.depth >= MAX_IMPORT_DEPTH {
            tracing::debug!(dropped = forwards.len(), "import depth reached");
            return;
        }
        self.depth += 1;
        for f in forwards {
            let msg = MsgRef {
                subject: f.shown.as_deref().unwrap_or(&f.subject),
                reply: f.reply.as_deref(),
                hdr_len: f.hdr_len,
                data: &f.data,
                owner: Some(&f.data),
            };
            let to = Publisher {
                account: &f.account,
                client: if f.as_server {
                    &f.account.system
                } else {
                    from.client
                },
                echo: true,
                no_responders: false,
                queues: None,
            };
            let delivered = self.publish_on(shared, to, &f.subject, &msg);
            // A service request nobody in the exporter took: forget its reply mapping and,
            // as nats-server, tell a requester that asked for it (503).
            if let (false, Some(waiting)) = (delivered, &f.request) {
                waiting.forget();
                if from.no_responders {
                    self.no_responders(from.account, from.client, &waiting.reply, msg.subject);
                }
            }
        }
        self.depth -= 1;
    }

    /// Publishes, as the server, what internal handlers answered (refusals, advisories).
    /// An answer has no reply subject, so it cannot be refused with another answer.
    fn send_answers(&mut self, shared: &Shared, account: &Arc<Account>) {
        let system = Publisher {
            account,
            client: &account.system,
            echo: true,
            no_responders: false,
            queues: None,
        };
        for m in std::mem::take(&mut self.answers) {
            let (data, hdr_len) = match &m.headers {
                Some(h) => {
                    let mut b = bytes::BytesMut::with_capacity(h.len() + m.payload.len());
                    b.extend_from_slice(h);
                    b.extend_from_slice(&m.payload);
                    (b.freeze(), Some(h.len()))
                }
                None => (m.payload.clone(), None),
            };
            let answer = MsgRef {
                subject: m.subject.as_bytes(),
                reply: None,
                hdr_len,
                data: &data,
                owner: Some(&data),
            };
            self.publish(shared, system, &answer);
        }
    }

    /// Records a stall for this batch (once per target).
    fn stall(&mut self, stall: Stall) {
        if !self.stalled.iter().any(|s| s.same(&stall)) {
            self.stalled.push(stall);
        }
    }

    /// Delivers `msg` (routed on `route`) to one subscription; `false` when it was not
    /// delivered (denied, over its max, closed, or not heard).
    fn deliver(
        &mut self,
        shared: &Shared,
        from: Publisher<'_>,
        sub: &SubRef,
        route: &[u8],
        msg: &MsgRef<'_>,
    ) -> bool {
        if let Some(import) = &sub.import {
            return self.deliver_import(import.as_ref(), from, route, msg);
        }
        // The trust boundary: what the server emits never reaches a request subject.
        if let Some(internal) = &sub.internal {
            let heard = match internal.accept {
                Accept::Everyone => true,
                Accept::ClientsOnly => from.client.kind.may_request(),
                Accept::RoutesOnly => from.client.kind == ClientKind::Route,
            };
            if !heard {
                return false;
            }
        }
        if sub
            .deny_check
            .as_ref()
            .is_some_and(|p| p.delivery_denied(msg.subject))
        {
            return false;
        }
        let (ok, done) = sub.take_delivery();
        if !ok {
            return false;
        }
        if done {
            shared.remove_sub(sub);
        }
        if let Some(internal) = &sub.internal {
            match deliver_internal(internal, route, msg, from.client.cid) {
                Some(Flow::Ok) => {}
                Some(Flow::Stall(p)) => self.stall(Stall::Queue(p)),
                Some(Flow::Answer(m)) => self.answers.push(m),
                Some(Flow::NoResponders) | None => return false,
            }
            self.out_msgs += 1;
            self.out_bytes += msg.data.len() as u64;
            return true;
        }
        match sub.client.queue_msg(msg, &sub.sid) {
            Queued::Dropped => return false,
            Queued::Stall => self.stall(Stall::Client(sub.client.clone())),
            Queued::Ok => {}
        }
        if let Some(reply) = msg.reply {
            sub.client.grant_response(reply);
        }
        self.out_msgs += 1;
        self.out_bytes += msg.data.len() as u64;
        self.mark(&sub.client);
        true
    }

    /// Hands `msg` to an import (kept out of [`Router::deliver`]'s client path); `false`
    /// when the import does not hear this publisher.
    #[inline(never)]
    fn deliver_import(
        &mut self,
        import: &dyn crate::imports::Importer,
        from: Publisher<'_>,
        route: &[u8],
        msg: &MsgRef<'_>,
    ) -> bool {
        if import.accept() == Accept::ClientsOnly && !from.client.kind.may_request() {
            return false;
        }
        if let Some(f) = import.forward(route, msg, from.client) {
            self.forwards.push(f);
        }
        true
    }

    /// Send the 503 status for a request on `subject` to the publisher's own subscription
    /// on `reply`, if it has one.
    fn no_responders(
        &mut self,
        account: &Arc<Account>,
        client: &Arc<Client>,
        reply: &[u8],
        subject: &[u8],
    ) {
        let result = self.lookup(account, reply);
        let own = result
            .psubs
            .iter()
            .chain(result.qsubs.iter().flat_map(|(_, g)| g.iter()))
            .find(|s| Arc::ptr_eq(&s.client, client));
        if let Some(sub) = own {
            let data = petrel_wire::headers::no_responders(subject);
            let m = MsgRef {
                subject: reply,
                reply: None,
                hdr_len: Some(data.len()),
                data: &data,
                owner: Some(&data),
            };
            if sub.client.queue_msg(&m, &sub.sid) != Queued::Dropped {
                self.mark(client);
            }
        }
    }
}

/// Where a weighted random walk over a queue group starts: each local member weighs 1,
/// each route peer's entry its members (`RS+` weight; 0 when routes are not eligible);
/// leaf members 0 (they are the last resort).
fn weighted_start(group: &[SubRef], to_routes: bool) -> usize {
    let weight = |s: &SubRef| match s.client.kind {
        ClientKind::Route if to_routes => u64::from(s.weight()),
        ClientKind::Route | ClientKind::Leaf => 0,
        _ => 1,
    };
    let total: u64 = group.iter().map(weight).sum();
    if total == 0 {
        return 0;
    }
    let mut pick = fastrand::u64(..total);
    for (i, s) in group.iter().enumerate() {
        let w = weight(s);
        if pick < w {
            return i;
        }
        pick -= w;
    }
    0
}

/// Hands a message to an internal subscription's handler under the subject it was routed
/// on (subjects that are not UTF-8 cannot name a stream and are skipped: `None`). Small
/// payloads are copied out of the publisher's read buffer first ([`DETACH_BELOW`]).
fn deliver_internal(
    internal: &Internal,
    route: &[u8],
    msg: &MsgRef<'_>,
    sender: u64,
) -> Option<Flow> {
    let (Ok(subject), Ok(shown), Ok(reply)) = (
        std::str::from_utf8(route),
        std::str::from_utf8(msg.subject),
        msg.reply.map(std::str::from_utf8).transpose(),
    ) else {
        return None;
    };
    let data = if msg.data.len() < DETACH_BELOW {
        Bytes::copy_from_slice(msg.data)
    } else {
        msg.bytes_from(0)
    };
    let (headers, payload) = match msg.hdr_len {
        Some(h) => (Some(data.slice(..h)), data.slice(h..)),
        None => (None, data),
    };
    Some(internal.handler.handle(Incoming {
        subject,
        shown,
        reply,
        headers,
        payload,
        sender,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use parking_lot::Mutex;
    use petrel_jetstream::Handler;

    #[derive(Default)]
    struct Capture(Mutex<Vec<(String, Option<Bytes>, Bytes)>>);

    impl Handler for Capture {
        fn handle(&self, msg: Incoming<'_>) -> Flow {
            self.0
                .lock()
                .push((msg.subject.to_string(), msg.headers, msg.payload));
            Flow::Ok
        }
    }

    fn inside(b: &Bytes, buf: &Bytes) -> bool {
        let range = buf.as_ptr() as usize..buf.as_ptr() as usize + buf.len();
        range.contains(&(b.as_ptr() as usize))
    }

    #[test]
    fn internal_handlers_get_small_payloads_copied_out_of_the_read_buffer() {
        let cap = Arc::new(Capture::default());
        let internal = Internal {
            handler: cap.clone(),
            accept: Accept::Everyone,
        };
        // A 64 KiB "read buffer" holding a small message with headers, and a large one.
        let buf = Bytes::from(vec![b'x'; 2 * DETACH_BELOW]);
        let small = buf.slice(10..110);
        let large = buf.slice(..DETACH_BELOW + 1);
        for (data, hdr) in [(&small, Some(20)), (&large, None)] {
            let msg = MsgRef {
                subject: b"shown",
                reply: Some(b"r"),
                hdr_len: hdr,
                data,
                owner: Some(data),
            };
            assert!(matches!(
                deliver_internal(&internal, b"routed.on", &msg, 0),
                Some(Flow::Ok)
            ));
        }
        let got = cap.0.lock();
        let (subject, headers, payload) = &got[0];
        assert_eq!(subject, "routed.on", "stored under the routed subject");
        assert_eq!(headers.as_ref().map(Bytes::len), Some(20));
        assert_eq!(payload.len(), 80);
        assert!(!inside(payload, &buf), "small payload pins the read buffer");
        assert!(
            inside(&got[1].2, &buf),
            "a large payload is shared, not copied"
        );
    }
}
