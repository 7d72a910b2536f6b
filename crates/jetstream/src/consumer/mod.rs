//! Consumers: one [`Consumer`] per durable or ephemeral consumer of a stream.
//!
//! A consumer owns its state ([`State`]: config, the ack bookkeeping of [`acks::Acks`], the
//! read cursor, waiting pull requests, push flow control) and one task (see `engine`) that
//! wakes on events (acks, pull requests, flow-control replies, new messages, timers), reads
//! the stream's store on a blocking thread, and publishes deliveries through the
//! [`crate::Port`].
//!
//! Lock order: the stream's `inner` first, then a consumer's `state`; two consumer states
//! are only ever held together under the stream lock (interest retention).
//!
//! Files: `config` (ConsumerConfig, defaults, checks), `acks` (pending/redelivery rules),
//! `ackmsg` (ack subjects and bodies), `pull` (pull requests and status messages),
//! `engine` (the task and its step), `events` (acks, pull requests, flow control), `persist` (state on disk), `info` (ConsumerInfo),
//! `deadletter` (copies of messages given up on, Petrel's own).

pub(crate) mod ackmsg;
pub(crate) mod acks;
pub mod config;
pub mod deadletter;
pub(crate) mod engine;
pub(crate) mod events;
pub(crate) mod info;
pub(crate) mod persist;
pub(crate) mod priority;
pub(crate) mod pull;
pub(crate) mod registry;

use std::collections::VecDeque;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use tokio::time::Instant;

use bytes::Bytes;
use parking_lot::Mutex;
use petrel_store::{StoreError, StreamStore, MAX_SEQ};
use tokio::sync::Notify;

use crate::backlog::{Backlog, Limits, Pushed};
use crate::port::{Flow, SubId};
use acks::Acks;
use config::{ConsumerConfig, DeliverPolicy};
use pull::Waiting;

/// Flow control starts with this window (bytes delivered and not confirmed).
pub(crate) const FC_INITIAL_WINDOW: u64 = 2 * 1024 * 1024;
/// A stalled push consumer whose flow-control request got no answer for this long sends a
/// new one (a lost reply must not stall delivery for good).
pub(crate) const FC_RESEND: std::time::Duration = std::time::Duration::from_secs(2);
/// Largest flow-control window.
pub(crate) const FC_MAX_WINDOW: u64 = 32 * 1024 * 1024;

/// Bounds of a consumer's event queue (acks, pull requests, flow-control replies): past
/// half, the publishing client is stalled; at the limit, events are dropped (an unapplied
/// ack means a redelivery, a dropped pull request a client-side timeout).
pub(crate) const EVENT_LIMITS: Limits = Limits {
    msgs: 100_000,
    bytes: 32 * 1024 * 1024,
};

/// Something a client sent that the consumer task must handle.
#[derive(Debug)]
pub(crate) enum Event {
    /// A publish to one of the consumer's `$JS.ACK` subjects.
    Ack {
        subject: String,
        reply: Option<String>,
        payload: Bytes,
    },
    /// A pull request.
    Next { reply: String, payload: Bytes },
    /// A reply to a flow-control request.
    FlowControl { subject: String },
}

impl Event {
    /// Memory the event holds while queued.
    fn size(&self) -> usize {
        match self {
            Event::Ack {
                subject,
                reply,
                payload,
            } => subject.len() + reply.as_ref().map_or(0, String::len) + payload.len(),
            Event::Next { reply, payload } => reply.len() + payload.len(),
            Event::FlowControl { subject } => subject.len(),
        }
    }
}

/// Push delivery state.
#[derive(Debug)]
pub(crate) struct Push {
    /// Someone listens on the deliver subject.
    pub active: bool,
    /// When something (message or heartbeat) was last sent to the deliver subject.
    pub last_sent: Instant,
    /// Bytes delivered since the last confirmed flow-control request.
    pub fc_bytes: u64,
    pub fc_window: u64,
    /// Outstanding flow-control request: reply subject and the bytes it confirms.
    pub fc_pending: Option<(String, u64)>,
    /// When the outstanding flow-control request was sent.
    pub fc_sent: Instant,
}

/// Everything mutable about a consumer.
#[derive(Debug)]
pub(crate) struct State {
    pub config: ConsumerConfig,
    /// The end of the pause the consumer is in, as last seen (its resume is announced once).
    pub pause_noted: Option<i64>,
    /// Pinned clients by priority group (`pinned_client`; the leader's memory only).
    pub pins: priority::Pins,
    pub filters: Vec<String>,
    pub acks: Acks,
    /// Next stream sequence to look at for new messages.
    pub cursor: u64,
    /// `last_per_subject` start: stream sequences still to deliver before `cursor`.
    pub lps: VecDeque<u64>,
    /// Messages matching the filter at or after `cursor`, plus `lps`.
    pub npending: u64,
    /// `npending` must be recounted (messages were removed from the stream).
    pub npending_stale: bool,
    pub waiting: VecDeque<Waiting>,
    pub push: Push,
    /// Last time the consumer had interest or a request (inactivity removal).
    pub last_active: Instant,
    /// Wall-clock time of the last delivery (Unix ns), for `last_active` in the info.
    pub last_delivery_wall: i64,
    /// Wall-clock time of the last ack (Unix ns).
    pub last_ack_wall: i64,
    /// Replay `original`: the stored time and send time of the last new message.
    pub replay_mark: Option<(i64, Instant)>,
    /// Changed since the state was last written.
    pub dirty: bool,
    pub last_persist: Instant,
}

impl State {
    /// Whether `subject` passes the filters.
    pub fn matches(&self, subject: &str) -> bool {
        self.filters.is_empty()
            || self
                .filters
                .iter()
                .any(|f| petrel_subject::matches(f.as_bytes(), subject.as_bytes()))
    }

    /// Whether this consumer no longer needs `sseq` (interest retention).
    pub fn done_with(&self, sseq: u64) -> bool {
        self.acks.done_with(sseq, self.cursor) && !self.lps.contains(&sseq)
    }

    /// After messages were removed from the stream (`npending_stale`): moves the cursor
    /// past purged messages, forgets pending deliveries of purged messages and recounts
    /// `npending`. Does nothing when the count is current. Called under the stream lock by
    /// the consumer's step, the API's info and the monitoring report alike.
    pub fn refresh(&mut self, store: &dyn StreamStore) {
        if !self.npending_stale {
            return;
        }
        let first = store.state().first_seq;
        if self.cursor < first {
            self.cursor = first;
        }
        let gone: Vec<u64> = self.acks.pending.range(..first).map(|(s, _)| *s).collect();
        for seq in gone {
            self.acks.forget(seq);
        }
        self.recount(store);
    }

    /// Recounts `npending` from the store.
    pub fn recount(&mut self, store: &dyn StreamStore) {
        let lps = self.lps.len() as u64;
        self.npending = lps + count_from(store, self.cursor, &self.filters);
        self.npending_stale = false;
    }

    /// A message was stored at `seq` on `subject` (called by the ingest path under the
    /// stream lock): counted as pending when it is ahead of the cursor. Returns whether the
    /// consumer's filters match it.
    pub fn on_stored(&mut self, seq: u64, subject: &str) -> bool {
        let matches = self.matches(subject);
        if matches && seq >= self.cursor {
            self.npending += 1;
        }
        matches
    }
}

/// Messages at or after `from` matching any of `filters` (none: all).
pub(crate) fn count_from(store: &dyn StreamStore, from: u64, filters: &[String]) -> u64 {
    if filters.is_empty() {
        return store.num_pending(from, ">");
    }
    filters.iter().map(|f| store.num_pending(from, f)).sum()
}

/// The first stored message at or after `from` matching any of `filters`.
pub(crate) fn next_from(
    store: &dyn StreamStore,
    from: u64,
    filters: &[String],
) -> Result<Option<petrel_store::StoredMsg>, StoreError> {
    if filters.len() <= 1 {
        let f = filters.first().map_or(">", String::as_str);
        return store.next_by_subject(from, f);
    }
    let mut best: Option<petrel_store::StoredMsg> = None;
    for f in filters {
        if let Some(m) = store.next_by_subject(from, f)? {
            if best.as_ref().is_none_or(|b| m.seq < b.seq) {
                best = Some(m);
            }
        }
    }
    Ok(best)
}

/// One consumer.
pub(crate) struct Consumer {
    pub name: String,
    pub stream: String,
    /// Creation time (Unix ns).
    pub created: i64,
    /// The first stream sequence it could deliver when created (kept in its metadata, so a
    /// lost state restarts there).
    pub start_seq: u64,
    pub state: Mutex<State>,
    /// Client events waiting for the task; its notifier also wakes the task for new
    /// messages and config changes.
    events: Arc<Backlog<Event>>,
    /// Internal subscriptions (ack subject, flow control).
    pub subs: Mutex<Vec<SubId>>,
    /// Where its state is persisted (durables of file streams).
    pub dir: Option<PathBuf>,
    closed: AtomicBool,
    /// Set when the task gave up after repeated failures: why.
    pub failed: Mutex<Option<String>>,
}

impl std::fmt::Debug for Consumer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Consumer")
            .field("stream", &self.stream)
            .field("name", &self.name)
            .finish()
    }
}

impl Consumer {
    /// Builds a consumer positioned per its deliver policy on `store`. `config` must be
    /// normalized and checked.
    pub fn new(
        stream: &str,
        config: ConsumerConfig,
        created: i64,
        store: &dyn StreamStore,
        dir: Option<PathBuf>,
    ) -> Result<Consumer, StoreError> {
        let filters = config.filters();
        let (cursor, lps) = start_position(&config, &filters, store)?;
        let mut acks = Acks::new(
            config.ack_policy,
            config.ack_wait,
            &config.backoff,
            config.max_deliver,
        );
        let first = lps.front().copied().unwrap_or(cursor);
        acks.dsseq = first.saturating_sub(1);
        acks.asflr = acks.dsseq;
        let now = Instant::now();
        let mut state = State {
            pause_noted: config.paused_at(crate::time::now_nanos()),
            pins: priority::Pins::new(),
            config,
            filters,
            acks,
            cursor,
            lps,
            npending: 0,
            npending_stale: true,
            waiting: VecDeque::new(),
            push: Push {
                active: false,
                last_sent: now,
                fc_bytes: 0,
                fc_window: FC_INITIAL_WINDOW,
                fc_pending: None,
                fc_sent: now,
            },
            last_active: now,
            last_delivery_wall: 0,
            last_ack_wall: 0,
            replay_mark: None,
            dirty: true,
            last_persist: now,
        };
        state.recount(store);
        Ok(Consumer {
            name: state.config.name.clone(),
            stream: stream.to_string(),
            created,
            start_seq: first,
            state: Mutex::new(state),
            events: Arc::new(Backlog::new(EVENT_LIMITS)),
            subs: Mutex::new(Vec::new()),
            dir,
            closed: AtomicBool::new(false),
            failed: Mutex::new(None),
        })
    }

    /// Queues an event and wakes the task; never blocks. An event that does not fit is
    /// dropped (logged at debug) and the publisher carries on.
    pub fn push_event(&self, ev: Event) -> Flow {
        let size = ev.size();
        match self.events.push(ev, size) {
            Pushed::Ok => Flow::Ok,
            Pushed::Stall => Flow::Stall(self.events.clone()),
            Pushed::Full(_) => {
                tracing::debug!(stream = %self.stream, consumer = %self.name,
                    "consumer event queue full: event dropped");
                Flow::Ok
            }
            Pushed::Closed => Flow::Ok,
        }
    }

    /// Takes every queued event.
    pub fn take_events(&self) -> Vec<Event> {
        let mut out = Vec::new();
        self.events.take(usize::MAX, usize::MAX, &mut out);
        out
    }

    /// What the task sleeps on: events, new messages, config changes, close.
    pub fn notify(&self) -> &Notify {
        self.events.ready()
    }

    /// Wakes the task (new messages, config change).
    pub fn wake(&self) {
        self.notify().notify_one();
    }

    /// Stops the task at its next wake-up; later events are refused.
    pub fn close(&self) {
        self.closed.store(true, Ordering::Release);
        self.events.close();
        self.notify().notify_one();
    }

    /// Whether [`Consumer::close`] was called.
    pub fn is_closed(&self) -> bool {
        self.closed.load(Ordering::Acquire)
    }
}

/// Where a new consumer starts: the cursor and, for `last_per_subject`, the sequences to
/// deliver first.
fn start_position(
    config: &ConsumerConfig,
    filters: &[String],
    store: &dyn StreamStore,
) -> Result<(u64, VecDeque<u64>), StoreError> {
    let st = store.state();
    let after_last = st.last_seq + 1;
    let first = st.first_seq.max(1);
    let mut lps = VecDeque::new();
    let cursor = match config.deliver_policy {
        DeliverPolicy::All => first,
        DeliverPolicy::New => after_last,
        DeliverPolicy::ByStartSequence => config.opt_start_seq.clamp(1, MAX_SEQ),
        DeliverPolicy::Last => {
            let patterns: Vec<&str> = if filters.is_empty() {
                vec![">"]
            } else {
                filters.iter().map(String::as_str).collect()
            };
            let mut last = None;
            for f in patterns {
                if let Some(seq) = last_seq_matching(store, f)? {
                    last = Some(last.map_or(seq, |l: u64| l.max(seq)));
                }
            }
            last.unwrap_or(after_last)
        }
        DeliverPolicy::ByStartTime => {
            let t = config.start_time().unwrap_or(0);
            crate::stream::first_at_or_after(store, first, st.last_seq, t)?
        }
        DeliverPolicy::LastPerSubject => {
            let patterns: Vec<&str> = if filters.is_empty() {
                vec![">"]
            } else {
                filters.iter().map(String::as_str).collect()
            };
            let mut seqs = Vec::new();
            for f in patterns {
                for subject in store.subjects_state(f).keys() {
                    if let Some(m) = store.last_by_subject(subject)? {
                        seqs.push(m.seq);
                    }
                }
            }
            seqs.sort_unstable();
            seqs.dedup();
            lps.extend(seqs);
            after_last
        }
    };
    Ok((cursor, lps))
}

/// The newest sequence whose subject matches `filter`.
fn last_seq_matching(store: &dyn StreamStore, filter: &str) -> Result<Option<u64>, StoreError> {
    if filter == ">" {
        let st = store.state();
        return Ok((st.msgs > 0).then_some(st.last_seq));
    }
    let mut best = None;
    for subject in store.subjects_state(filter).keys() {
        if let Some(m) = store.last_by_subject(subject)? {
            best = Some(best.map_or(m.seq, |b: u64| b.max(m.seq)));
        }
    }
    Ok(best)
}
