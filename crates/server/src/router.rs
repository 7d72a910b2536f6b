//! Message fan-out: Sublist match (through the reader's private cache), delivery into each
//! target's outbound queue, queue-group member choice, auto-unsubscribe, no-responders,
//! and the once-per-read-batch flush of every touched connection.

use std::sync::atomic::Ordering;
use std::sync::Arc;

use bytes::Bytes;
use petrel_subject::{Admission, MatchCache, SublistResult};
use petrel_wire::headers::NO_RESPONDERS;

use crate::client::{Client, Queued};
use crate::outbound::MsgRef;
use crate::server::Shared;
use crate::stats::MatchTally;
use crate::sub::{Internal, SubRef};

/// Most connections a reader flushes inline at the end of a batch.
const INLINE_TARGETS: usize = 4;
/// Match-cache entries per reader.
const CACHE_SIZE: usize = 1024;

/// How the publishing connection wants its messages handled.
#[derive(Clone, Copy)]
pub(crate) struct Publisher<'a> {
    pub client: &'a Arc<Client>,
    pub echo: bool,
    pub no_responders: bool,
}

/// A reader's routing context: its match cache and the connections to wake at the end of
/// the current read batch.
pub(crate) struct Router {
    cache: MatchCache<SubRef>,
    /// Keeps subjects looked up only once (inboxes, ack subjects) out of `cache`.
    admission: Admission,
    to_flush: Vec<Arc<Client>>,
    /// Connections queued past half of their `max_pending` in this batch: the publisher
    /// waits for them to drain before reading more (producer stall).
    pub stalled: Vec<Arc<Client>>,
    /// Deliveries since the last flush, added to the server counters once per batch.
    out_msgs: u64,
    out_bytes: u64,
    /// Lookup statistics for `/subsz`, published with the counters.
    tally: MatchTally,
}

impl Router {
    pub fn new() -> Self {
        Self {
            cache: MatchCache::new(CACHE_SIZE),
            admission: Admission::new(4 * CACHE_SIZE),
            to_flush: Vec::new(),
            stalled: Vec::new(),
            out_msgs: 0,
            out_bytes: 0,
            tally: MatchTally::default(),
        }
    }

    /// Whether any subscription matches `subject`.
    pub fn has_interest(&mut self, shared: &Shared, subject: &[u8]) -> bool {
        !self.lookup(shared, subject).is_empty()
    }

    fn lookup(&mut self, shared: &Shared, subject: &[u8]) -> Arc<SublistResult<SubRef>> {
        let generation = shared.generation.load(Ordering::Acquire);
        if let Some(r) = self.cache.get(subject, generation) {
            self.tally.lookup(true);
            return r;
        }
        let r = Arc::new(shared.sublist.read().match_subject(subject));
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
        self.publish_on(shared, from, msg.subject, msg);
    }

    /// Deliver `msg` to every subscription matching `route`, showing `msg.subject` in the
    /// `MSG` line (JetStream consumer deliveries keep the stored subject).
    pub fn publish_on(
        &mut self,
        shared: &Shared,
        from: Publisher<'_>,
        route: &[u8],
        msg: &MsgRef<'_>,
    ) {
        let result = self.lookup(shared, route);
        for sub in &result.psubs {
            if !from.echo && Arc::ptr_eq(&sub.client, from.client) {
                continue;
            }
            self.deliver(shared, sub, msg);
        }
        for (_, group) in &result.qsubs {
            let n = group.len();
            let start = fastrand::usize(..n);
            for i in 0..n {
                let sub = &group[(start + i) % n];
                if sub.client.is_closed() || (!from.echo && Arc::ptr_eq(&sub.client, from.client)) {
                    continue;
                }
                if self.deliver(shared, sub, msg) {
                    break;
                }
            }
        }
        if result.is_empty() && from.no_responders {
            if let Some(reply) = msg.reply {
                self.no_responders(shared, from.client, reply);
            }
        }
    }

    fn deliver(&mut self, shared: &Shared, sub: &SubRef, msg: &MsgRef<'_>) -> bool {
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
            deliver_internal(internal, msg);
            self.out_msgs += 1;
            self.out_bytes += msg.data.len() as u64;
            return true;
        }
        match sub.client.queue_msg(msg, &sub.sid) {
            Queued::Dropped => return false,
            Queued::Stall => {
                if !self.stalled.iter().any(|c| Arc::ptr_eq(c, &sub.client)) {
                    self.stalled.push(sub.client.clone());
                }
            }
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

    /// Send the 503 status to the publisher's own subscription on `reply`, if it has one.
    fn no_responders(&mut self, shared: &Shared, client: &Arc<Client>, reply: &[u8]) {
        let result = self.lookup(shared, reply);
        let own = result
            .psubs
            .iter()
            .chain(result.qsubs.iter().flat_map(|(_, g)| g.iter()))
            .find(|s| Arc::ptr_eq(&s.client, client));
        if let Some(sub) = own {
            let data = Bytes::from_static(NO_RESPONDERS);
            let m = MsgRef {
                subject: reply,
                reply: None,
                hdr_len: Some(NO_RESPONDERS.len()),
                data: &data,
            };
            if sub.client.queue_msg(&m, &sub.sid) != Queued::Dropped {
                self.mark(client);
            }
        }
    }
}

/// Hand a message to an internal subscriber (subjects that are not UTF-8 cannot name a
/// stream and are skipped).
fn deliver_internal(internal: &Internal, msg: &MsgRef<'_>) {
    let Some(sink) = internal.sink.get() else {
        return;
    };
    let (Ok(subject), Ok(reply)) = (
        std::str::from_utf8(msg.subject),
        msg.reply.map(std::str::from_utf8).transpose(),
    ) else {
        return;
    };
    let (headers, payload) = match msg.hdr_len {
        Some(h) => (Some(msg.data.slice(..h)), msg.data.slice(h..)),
        None => (None, msg.data.clone()),
    };
    sink.deliver(internal.id, subject, reply, headers, payload);
}
