//! The publish path: the per-stream ingest task and the batch it stores.
//!
//! The task waits for one message, takes every other one already queued (up to
//! [`MAX_BATCH`]), and hands the batch to a blocking thread that checks the `Nats-*` headers,
//! appends every accepted message, calls `commit()` once (group commit: one write and, with
//! `SyncMode::Always`, one fsync) and only then returns the PubAcks, which the task publishes.
//! A PubAck therefore always means "on disk" (or "written", in interval sync mode).

use std::sync::Arc;

use bytes::Bytes;
use petrel_store::{PurgeRequest, StoreError};
use serde::Serialize;

use crate::backlog::Backlog;
use crate::config::{RetentionPolicy, StorageType};
use crate::consumer::engine::catch;
use crate::dedup::MSG_ID;
use crate::errors::ApiError;
use crate::json::encode;
use crate::port::Port;
use crate::republish::{self, Republished};
use crate::stream::{Cmd, Inbound, Inner, Stream};
use crate::time::now_nanos;

pub(crate) mod atomic;

/// Most messages stored by one commit.
pub const MAX_BATCH: usize = 4096;
/// Most message bytes taken into one commit (the queue refills meanwhile).
const MAX_BATCH_BYTES: usize = 16 * 1024 * 1024;

/// Header: the stream the publisher expects to store the message.
pub const EXPECTED_STREAM: &str = "Nats-Expected-Stream";
/// Header: the stream's last sequence must equal this.
pub const EXPECTED_LAST_SEQ: &str = "Nats-Expected-Last-Sequence";
/// Header: the last sequence of the message's subject must equal this (0 = none).
pub const EXPECTED_LAST_SUBJ_SEQ: &str = "Nats-Expected-Last-Subject-Sequence";
/// Header: the subject (or wildcard) whose last sequence `Nats-Expected-Last-Subject-Sequence`
/// is about, instead of the message's own (2.11).
pub const EXPECTED_LAST_SUBJ_SEQ_SUBJECT: &str = "Nats-Expected-Last-Subject-Sequence-Subject";
/// Header: the `Nats-Msg-Id` of the stream's last message must equal this.
pub const EXPECTED_LAST_MSG_ID: &str = "Nats-Expected-Last-Msg-Id";
/// Header: `sub` or `all`, purge older messages of the subject / stream after storing.
pub const ROLLUP: &str = "Nats-Rollup";

/// Largest header block accepted.
const MAX_HEADER_LEN: usize = u16::MAX as usize;

/// What became of one published message.
#[derive(Debug)]
enum Outcome {
    Stored {
        seq: u64,
        subject: String,
        msg_id: Option<String>,
        /// Its copy to publish after the commit, if the stream republishes it.
        republish: Option<Republished>,
        /// A counter stream's new total.
        total: Option<String>,
    },
    Duplicate(u64),
    Failed(ApiError),
}

#[derive(Serialize)]
struct PubAck<'a> {
    stream: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    domain: Option<&'a str>,
    seq: u64,
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    duplicate: bool,
    /// A counter stream's new total (2.12).
    #[serde(skip_serializing_if = "Option::is_none")]
    val: Option<String>,
    /// The atomic batch this PubAck commits (2.12).
    #[serde(skip_serializing_if = "Option::is_none")]
    batch: Option<&'a str>,
    /// How many messages that batch stored.
    #[serde(skip_serializing_if = "Option::is_none")]
    count: Option<u64>,
}

#[derive(Serialize)]
struct PubAckError<'a> {
    error: &'a ApiError,
    stream: &'a str,
    seq: u64,
}

/// Maps a store refusal of `append` onto the PubAck error nats-server sends.
fn append_error(e: StoreError) -> ApiError {
    match e {
        StoreError::MsgTooLarge => ApiError::message_exceeds_maximum(),
        other => ApiError::store_failed(other),
    }
}

impl Inner {
    /// Checks one message against the headers and the stream, then appends it. A roll-up
    /// purges at once, or — `deferred`, in an atomic batch, whose first commit must hold
    /// all of it — is added there, to be applied after the batch's last append.
    fn try_store(
        &mut self,
        stream: &str,
        m: &Inbound,
        now: i64,
        deferred: Option<&mut Vec<PurgeRequest>>,
    ) -> Result<Outcome, ApiError> {
        if let Some(why) = &self.failed {
            return Err(ApiError::store_failed(format!("stream failed: {why}")));
        }
        #[cfg(test)]
        if m.subject == "panic.now" {
            panic!("injected ingest failure");
        }
        if self.config.sealed {
            return Err(ApiError::stream_sealed());
        }
        if m.headers.as_ref().map_or(0, Bytes::len) > MAX_HEADER_LEN {
            return Err(ApiError::header_exceeds_maximum());
        }
        let subject = match &self.transform {
            Some(t) => t.apply(&m.subject).unwrap_or_else(|| m.subject.clone()),
            None => m.subject.clone(),
        };
        let parsed = m
            .headers
            .as_deref()
            .filter(|h| !h.is_empty())
            .and_then(petrel_wire::headers::parse);
        let mut msg_id = None;
        let mut rollup_all = None;
        let mut ttl = None;
        let mut headers = m.headers.clone();
        let mut payload = m.payload.clone();
        let mut incr = None;
        let mut schedule_rollup = false;
        if let Some(h) = &parsed {
            incr = crate::counter::check(self, h, &m.payload)?;
            schedule_rollup = crate::schedule::check(self, &subject, h)?;
            let non_empty = |k: &str| h.get(k).filter(|v| !v.is_empty());
            if let Some(expected) = non_empty(EXPECTED_STREAM) {
                if expected != stream {
                    return Err(ApiError::stream_not_match());
                }
            }
            if let Some(id) = non_empty(MSG_ID) {
                let window = self.config.duplicate_window;
                if let Some(seq) = self.dedup.check(id, now, window) {
                    return Ok(Outcome::Duplicate(seq));
                }
                msg_id = Some(id.to_string());
            }
            let want = h
                .get(EXPECTED_LAST_SUBJ_SEQ)
                .and_then(|v| v.parse::<u64>().ok());
            let of = non_empty(EXPECTED_LAST_SUBJ_SEQ_SUBJECT);
            if of.is_some() && want.is_none() {
                return Err(ApiError::expected_last_seq_per_subject_missing());
            }
            if let Some(want) = want {
                let have =
                    crate::stream::last_seq_matching(self.store.as_ref(), of.unwrap_or(&subject));
                if have != want {
                    return Err(ApiError::wrong_last_sequence(have));
                }
            }
            if let Some(want) = h.get(EXPECTED_LAST_SEQ).and_then(|v| v.parse::<u64>().ok()) {
                let have = self.store.state().last_seq;
                if have != want {
                    return Err(ApiError::wrong_last_sequence(have));
                }
            }
            if let Some(want) = non_empty(EXPECTED_LAST_MSG_ID) {
                if want != self.last_msg_id {
                    return Err(ApiError::wrong_last_msg_id(&self.last_msg_id));
                }
            }
            if let Some(r) = non_empty(ROLLUP) {
                if !self.config.allow_rollup_hdrs || self.config.deny_purge {
                    return Err(ApiError::rollup_failed("rollup not permitted"));
                }
                rollup_all = match r {
                    "sub" => Some(false),
                    "all" => Some(true),
                    other => {
                        return Err(ApiError::rollup_failed(format!(
                            "rollup value invalid: {other:?}"
                        )))
                    }
                };
            }
        }
        if let Some(h) = &parsed {
            let (checked, raised) = crate::ttl::check(self, h, m.headers.as_ref())?;
            ttl = checked;
            if raised.is_some() {
                headers = raised;
            }
        }
        if schedule_rollup && rollup_all.is_none() {
            // A schedule is its subject's only message.
            rollup_all = Some(false);
            headers = Some(crate::hdr::extend(
                headers.as_ref(),
                &format!("{ROLLUP}: sub\r\n"),
            ));
        }
        let counted = crate::counter::apply(
            self,
            &subject,
            parsed.as_ref(),
            headers.clone(),
            incr,
            &m.payload,
        )?;
        let total = counted.map(|c| {
            headers = c.headers;
            payload = c.payload;
            c.total
        });
        // Republish: the destination, and the subject's last sequence before this one.
        let republish_to = match &self.republish {
            Some((t, _)) => republish::destination(t, stream, &subject)
                .map(|dest| {
                    let last = self.store.last_by_subject(&subject);
                    last.map(|m| (dest, m.map_or(0, |m| m.seq)))
                })
                .transpose()
                .map_err(ApiError::store_failed)?,
            None => None,
        };
        let (seq, ts) = self
            .store
            .append(&subject, headers.clone(), payload.clone(), now)
            .map_err(append_error)?;
        let republish = republish_to.map(|(dest, last_seq)| {
            let stored = republish::Stored {
                stream,
                subject: &subject,
                seq,
                ts,
                last_seq,
                headers: headers.as_ref(),
                payload: &payload,
            };
            let headers_only = self.republish.as_ref().is_some_and(|(_, h)| *h);
            republish::build(&stored, dest, headers_only)
        });
        if self.config.allow_msg_ttl {
            if let Some(h) = &parsed {
                self.ttls.note(seq, ts, h, ttl);
            }
        }
        let ended = if self.config.allow_msg_schedules {
            self.schedules.note(seq, ts, &subject, parsed.as_ref(), ts)
        } else {
            None
        };
        let stored_subject = subject.clone();
        if let Some(id) = &msg_id {
            self.dedup.insert(id, seq, ts);
        }
        self.last_msg_id = msg_id.clone().unwrap_or_default();
        // Everything before this message (of its subject): the same whenever applied.
        let rollup = rollup_all.map(|all| PurgeRequest {
            subject: (!all).then_some(subject),
            seq: Some(seq),
            ..PurgeRequest::default()
        });
        // A one-off schedule that fired is purged.
        let purges = rollup
            .into_iter()
            .chain(ended.map(crate::schedule::purge_of));
        match deferred {
            Some(later) => later.extend(purges),
            None => {
                for req in purges {
                    if let Err(e) = self.store.purge(req) {
                        tracing::warn!(stream, error = %e, "rollup purge failed");
                    }
                }
            }
        }
        Ok(Outcome::Stored {
            seq,
            subject: stored_subject,
            msg_id,
            republish,
            total,
        })
    }
}

impl Stream {
    /// After a commit: tells every consumer about the stored messages (under the stream
    /// lock, so their pending counts never race their reads), marks their counts stale when
    /// limits removed messages, and drops the batch at once from an interest stream nobody
    /// consumes.
    fn notify_consumers(&self, inner: &mut Inner, outcomes: &[Outcome], msgs_before: u64) {
        let new: Vec<(u64, &str)> = outcomes
            .iter()
            .filter_map(|o| match o {
                Outcome::Stored { seq, subject, .. } => Some((*seq, subject.as_str())),
                _ => None,
            })
            .collect();
        let removed = inner.store.state().msgs != msgs_before + new.len() as u64;
        // Whether some consumer's filter matches each new message (one pass, one lock per
        // consumer).
        let mut wanted = vec![false; new.len()];
        let consumers: Vec<_> = self.consumers.read().values().cloned().collect();
        for c in consumers {
            let mut st = c.state.lock();
            let mut woke = removed;
            if removed {
                st.npending_stale = true;
            }
            for (i, (seq, subject)) in new.iter().enumerate() {
                if st.on_stored(*seq, subject) {
                    wanted[i] = true;
                    woke = true;
                }
            }
            drop(st);
            if woke {
                c.wake();
            }
        }
        if inner.config.retention == RetentionPolicy::Interest {
            // A message no consumer's filter matches (none at all, when there is no
            // consumer) has no interest: acked and gone at once.
            let unwanted: Vec<u64> = new
                .iter()
                .zip(&wanted)
                .filter(|(_, w)| !**w)
                .map(|((seq, _), _)| *seq)
                .collect();
            crate::retention::retire(self, inner, unwanted);
        }
    }

    /// The refusal of `m` when storing it would take the account past its byte limit
    /// for this stream's storage (`appended_from`: the store's bytes before this batch).
    /// Never on a replicated stream's apply: its leader decided before proposing
    /// ([`Stream::account_fits`]), and a replica deciding from the usage of the streams
    /// it happens to host would store something else than the others.
    fn over_account_limit(
        &self,
        inner: &Inner,
        m: &Inbound,
        appended_from: u64,
    ) -> Option<ApiError> {
        if self.replica.get().is_some() {
            return None;
        }
        let usage = self.usage.get()?;
        if !usage.limited(self.storage) {
            return None;
        }
        let pending = inner.store.state().bytes.saturating_sub(appended_from);
        usage
            .would_exceed(self.storage, pending, self.stored_size(m))
            .then(ApiError::account_resources_exceeded)
    }

    /// The bytes `m` takes in this stream's store.
    fn stored_size(&self, m: &Inbound) -> u64 {
        let headers = m.headers.as_deref();
        match self.storage {
            StorageType::Memory => petrel_store::mem_msg_size(&m.subject, headers, &m.payload),
            StorageType::File => petrel_store::file_msg_size(&m.subject, headers, &m.payload),
        }
    }

    /// Whether the account's byte limit leaves room for `m` on top of this node's usage
    /// and `pending` (the bytes admitted before it, added to when it fits): a replicated
    /// stream's leader asks before it proposes a message, so every replica stores the
    /// same messages whatever else it hosts.
    pub(crate) fn account_fits(&self, pending: &mut u64, m: &Inbound) -> bool {
        let Some(usage) = self.usage.get().filter(|u| u.limited(self.storage)) else {
            return true;
        };
        let size = self.stored_size(m);
        if usage.would_exceed(self.storage, *pending, size) {
            return false;
        }
        *pending = pending.saturating_add(size);
        true
    }

    /// Whether the account limits the bytes of this stream's storage type.
    pub(crate) fn account_limited(&self) -> bool {
        self.usage.get().is_some_and(|u| u.limited(self.storage))
    }

    /// How many of `msgs`, from the first, [`Stream::account_fits`] admits.
    pub(crate) fn account_room<'a>(&self, msgs: impl IntoIterator<Item = &'a Inbound>) -> usize {
        let mut pending = 0;
        msgs.into_iter()
            .take_while(|m| self.account_fits(&mut pending, m))
            .count()
    }

    /// The PubAck of a message refused for the account's byte limit (10027).
    pub(crate) fn account_refusal(&self) -> Bytes {
        encode(&PubAckError {
            error: &ApiError::account_resources_exceeded(),
            stream: &self.name,
            seq: 0,
        })
    }

    /// Stores a batch with one commit and returns the PubAcks to publish (reply, body);
    /// the replies are taken out of `batch`. The committed messages' republished copies
    /// are added to `republished`. Blocking: run it on a blocking thread.
    pub(crate) fn process_batch(
        &self,
        batch: &mut [Inbound],
        republished: &mut Vec<Republished>,
    ) -> Vec<(String, Bytes)> {
        self.process_batch_at(batch, now_nanos(), republished)
    }

    /// [`Stream::process_batch`] with the time the messages are stored at (a replicated
    /// stream's leader chose it, so every replica decides alike).
    pub(crate) fn process_batch_at(
        &self,
        batch: &mut [Inbound],
        now: i64,
        republished: &mut Vec<Republished>,
    ) -> Vec<(String, Bytes)> {
        let mut inner = self.inner.lock();
        if inner.closed {
            tracing::debug!(stream = %self.name, n = batch.len(), "batch for a closed stream dropped");
            return Vec::new();
        }
        let msgs_before = inner.store.state().msgs;
        let rollbacks = inner.store.rollbacks();
        let last_msg_id = inner.last_msg_id.clone();
        let mut outcomes: Vec<Outcome> = Vec::with_capacity(batch.len());
        let bytes_before = inner.store.state().bytes;
        for m in batch.iter() {
            if let Some(refused) = self.over_account_limit(&inner, m, bytes_before) {
                outcomes.push(Outcome::Failed(refused));
                continue;
            }
            outcomes.push(
                inner
                    .try_store(&self.name, m, now, None)
                    .unwrap_or_else(Outcome::Failed),
            );
            if inner.store.rollbacks() != rollbacks {
                break;
            }
        }
        let stored = outcomes.iter().any(|o| matches!(o, Outcome::Stored { .. }));
        let failure = if inner.store.rollbacks() != rollbacks {
            outcomes.iter().rev().find_map(|o| match o {
                Outcome::Failed(e) => Some(e.clone()),
                _ => None,
            })
        } else if stored {
            inner.store.commit().err().map(ApiError::store_failed)
        } else {
            None
        };
        match failure {
            Some(error) => {
                self.roll_back_batch(&mut inner, &mut outcomes, batch.len(), error, last_msg_id)
            }
            None if stored => {
                self.notify_consumers(&mut inner, &outcomes, msgs_before);
                self.stored.notify_waiters();
                republished.extend(outcomes.iter_mut().filter_map(|o| match o {
                    Outcome::Stored { republish, .. } => republish.take(),
                    _ => None,
                }));
            }
            None => {}
        }
        self.refresh_counters(&inner);
        if inner.config.no_ack {
            return Vec::new();
        }
        drop(inner);
        batch
            .iter_mut()
            .zip(outcomes)
            .filter_map(|(m, o)| {
                let reply = m.reply.take().filter(|r| !r.is_empty())?;
                let body = match o {
                    Outcome::Stored { seq, total, .. } => encode(&PubAck {
                        stream: &self.name,
                        domain: self.domain.get().map(String::as_str),
                        seq,
                        duplicate: false,
                        val: total,
                        batch: None,
                        count: None,
                    }),
                    Outcome::Duplicate(seq) => encode(&PubAck {
                        stream: &self.name,
                        domain: self.domain.get().map(String::as_str),
                        seq,
                        duplicate: true,
                        val: None,
                        batch: None,
                        count: None,
                    }),
                    Outcome::Failed(error) => encode(&PubAckError {
                        error: &error,
                        stream: &self.name,
                        seq: 0,
                    }),
                };
                Some((reply, body))
            })
            .collect()
    }
}

impl Stream {
    /// Stores origin messages `(origin seq, origin time, message)` in a mirror under their
    /// origin sequences and times, with one commit: the sequences between them (deleted at
    /// the origin, or filtered out) become gaps, as in nats-server's mirrors. Messages the
    /// mirror already has are skipped. Returns the origin sequence to read next and whether
    /// a message was refused (limits, I/O: retried later); `None` when the stream is closed.
    /// Blocking.
    pub(crate) fn store_mirrored(&self, msgs: Vec<(u64, i64, Inbound)>) -> Option<(u64, bool)> {
        let mut inner = self.inner.lock();
        if inner.closed {
            return None;
        }
        let first = msgs.first().map_or(0, |m| m.0);
        let msgs_before = inner.store.state().msgs;
        let bytes_before = inner.store.state().bytes;
        let mut outcomes = Vec::new();
        let mut next = first;
        let mut refused = false;
        for (seq, ts, m) in msgs {
            if seq <= inner.store.state().last_seq {
                next = seq + 1;
                continue;
            }
            // The account's byte limits hold for mirrored messages as for published ones.
            if let Some(e) = self.over_account_limit(&inner, &m, bytes_before) {
                tracing::warn!(stream = %self.name, seq, error = %e, "mirrored message refused");
                refused = true;
                break;
            }
            let stored = inner.store.skip_to(seq, ts).and_then(|()| {
                inner
                    .store
                    .append(&m.subject, m.headers.clone(), m.payload.clone(), ts)
            });
            match stored {
                Ok((got, _)) if got == seq => {}
                Ok((got, _)) => {
                    tracing::error!(stream = %self.name, seq, got, "mirror sequence mismatch");
                    refused = true;
                    break;
                }
                Err(e) => {
                    tracing::warn!(stream = %self.name, seq, error = %e, "mirrored message refused");
                    refused = true;
                    break;
                }
            }
            outcomes.push(Outcome::Stored {
                seq,
                subject: m.subject,
                msg_id: None,
                republish: None,
                total: None,
            });
            next = seq + 1;
        }
        if !outcomes.is_empty() {
            if let Err(e) = inner.store.commit() {
                tracing::warn!(stream = %self.name, error = %e, "mirror commit failed; retrying");
                self.refresh_counters(&inner);
                return Some((first, true));
            }
            self.notify_consumers(&mut inner, &outcomes, msgs_before);
            self.stored.notify_waiters();
        }
        self.refresh_counters(&inner);
        Some((next, refused))
    }
}

/// The messages of a batch of commands, and the close request among them (messages
/// after it are dropped: the store closes after those before it).
pub(crate) fn split(
    cmds: &mut Vec<Cmd>,
) -> (Vec<Inbound>, Option<tokio::sync::oneshot::Sender<()>>) {
    let mut batch = Vec::with_capacity(cmds.len());
    let mut close = None;
    for cmd in cmds.drain(..) {
        match cmd {
            Cmd::Msg(m) if close.is_none() => batch.push(m),
            Cmd::Msg(_) => {}
            Cmd::Close(tx) => close = Some(tx),
        }
    }
    (batch, close)
}

/// The ingest task of one stream: batches, stores on a blocking thread, publishes PubAcks.
/// Ends after a [`Cmd::Close`] (having closed the store). However it ends (a panic
/// included), the queue is closed behind it, so nothing waits on a dead task.
pub(crate) async fn run(stream: Arc<Stream>, port: Arc<dyn Port>) {
    if let Some(replica) = stream.replica.get().cloned() {
        return crate::cluster::replica::ingest(stream, port, replica).await;
    }
    let _closer = CloseOnDrop(stream.queue.clone());
    let mut cmds = Vec::new();
    loop {
        stream
            .queue
            .recv(MAX_BATCH, MAX_BATCH_BYTES, &mut cmds)
            .await;
        let (batch, close) = split(&mut cmds);
        for unit in stream.sort_batches(batch) {
            match unit {
                atomic::Unit::Plain(batch) => store_plain(&stream, port.as_ref(), batch).await,
                atomic::Unit::Atomic(batch) => store_committed(&stream, port.as_ref(), batch).await,
                atomic::Unit::Replies(replies) => port.publish_replies(replies),
            }
        }
        if let Some(tx) = close {
            let s = stream.clone();
            if let Err(e) = tokio::task::spawn_blocking(move || s.close_store()).await {
                tracing::error!(stream = %stream.name, error = %e, "closing the store failed");
            }
            let _ = tx.send(());
            return;
        }
    }
}

/// Stores plain messages with one commit and publishes their republished copies and
/// PubAcks.
async fn store_plain(stream: &Arc<Stream>, port: &dyn Port, batch: Vec<Inbound>) {
    if !batch.is_empty() {
        store_with(stream, port, batch, Stream::process_batch).await;
    }
}

/// Stores a committed atomic batch and publishes its copies and its PubAck.
async fn store_committed(stream: &Arc<Stream>, port: &dyn Port, batch: Vec<Inbound>) {
    store_with(stream, port, batch, |s, b, r| {
        s.process_atomic(b, now_nanos(), r)
    })
    .await;
}

/// How a run of messages is stored: the batch, the republished copies it adds to; the
/// PubAcks `(reply, body)`.
type StoreFn = fn(&Stream, &mut [Inbound], &mut Vec<Republished>) -> Vec<(String, Bytes)>;

/// Runs `store` on a blocking thread (a panic fails the stream) and publishes what it
/// returns: the republished copies first, as nats-server, then the PubAcks.
async fn store_with(
    stream: &Arc<Stream>,
    port: &dyn Port,
    mut batch: Vec<Inbound>,
    store: StoreFn,
) {
    let s = stream.clone();
    let stored = tokio::task::spawn_blocking(move || {
        let mut republished = Vec::new();
        let acks = catch(|| store(&s, &mut batch, &mut republished));
        (acks.map(|a| (a, republished)), batch)
    })
    .await;
    match stored {
        Ok((Ok((acks, republished)), _)) => {
            for r in republished {
                port.publish(&r.subject, None, Some(r.headers), r.payload);
            }
            port.publish_replies(acks)
        }
        Ok((Err(why), batch)) => port.publish_replies(stream.fail(&why, batch)),
        Err(e) => tracing::error!(stream = %stream.name, error = %e, "ingest batch lost"),
    }
}

impl Stream {
    /// An I/O failure rolled the store back to its last commit in the middle of a batch:
    /// every message above the store's last sequence is gone, so its publisher gets the
    /// error (never a PubAck for a message nobody can read), as does every message of the
    /// batch not tried yet. Nothing was delivered: consumers are told only after a commit.
    fn roll_back_batch(
        &self,
        inner: &mut Inner,
        outcomes: &mut Vec<Outcome>,
        batch_len: usize,
        error: ApiError,
        last_msg_id: String,
    ) {
        let last = inner.store.state().last_seq;
        tracing::error!(stream = %self.name, error = %error.description, kept_up_to = last,
            "storing a batch failed; its unstored messages are refused");
        for o in outcomes.iter_mut() {
            match o {
                Outcome::Stored { seq, msg_id, .. } if *seq > last => {
                    if let Some(id) = msg_id {
                        inner.dedup.remove(id, *seq);
                    }
                    *o = Outcome::Failed(error.clone());
                }
                // A duplicate of a message that did not survive.
                Outcome::Duplicate(seq) if *seq > last => *o = Outcome::Failed(error.clone()),
                _ => {}
            }
        }
        outcomes.resize_with(batch_len, || Outcome::Failed(error.clone()));
        // The last message is now one of this batch's survivors, or older than the batch.
        inner.last_msg_id = outcomes
            .iter()
            .find_map(|o| match o {
                Outcome::Stored { seq, msg_id, .. } if *seq == last => {
                    Some(msg_id.clone().unwrap_or_default())
                }
                _ => None,
            })
            .unwrap_or(last_msg_id);
    }

    /// A batch panicked while it held the store: what the store holds is no longer
    /// trusted, so the stream refuses every later publish (until the server restarts and
    /// recovery re-reads the store) and the batch's publishers get an error PubAck.
    fn fail(&self, why: &str, batch: Vec<Inbound>) -> Vec<(String, Bytes)> {
        tracing::error!(stream = %self.name,
            "storing a batch failed: {why}; the stream refuses publishes until restarted");
        self.inner.lock().failed = Some(why.to_string());
        let error = ApiError::store_failed(format!("stream failed: {why}"));
        batch
            .into_iter()
            .filter_map(|m| m.reply.filter(|r| !r.is_empty()))
            .map(|reply| {
                let body = encode(&PubAckError {
                    error: &error,
                    stream: &self.name,
                    seq: 0,
                });
                (reply, body)
            })
            .collect()
    }
}

/// Closes a queue when its consuming task ends.
pub(crate) struct CloseOnDrop<T>(pub(crate) Arc<Backlog<T>>);

impl<T> Drop for CloseOnDrop<T> {
    fn drop(&mut self) {
        self.0.close();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::StreamConfig;

    fn msg(subject: &str, reply: &str, headers: Option<&str>) -> Inbound {
        Inbound {
            subject: subject.to_string(),
            reply: Some(reply.to_string()),
            headers: headers.map(|h| Bytes::copy_from_slice(h.as_bytes())),
            payload: Bytes::from_static(b"x"),
        }
    }

    #[test]
    fn one_batch_one_commit_every_ack_in_order() {
        let dir = tempfile::tempdir().unwrap();
        let stream = crate::testing::open_stream(
            StreamConfig {
                name: "S".into(),
                subjects: vec!["s.>".into()],
                ..StreamConfig::default()
            },
            dir.path(),
        );
        let batch = vec![
            msg("s.a", "r1", None),
            msg(
                "s.b",
                "r2",
                Some("NATS/1.0\r\nNats-Expected-Last-Sequence: 7\r\n\r\n"),
            ),
            msg("s.c", "r3", Some("NATS/1.0\r\nNats-Msg-Id: x\r\n\r\n")),
            msg("s.c", "r4", Some("NATS/1.0\r\nNats-Msg-Id: x\r\n\r\n")),
        ];
        let mut batch = batch;
        let acks = stream.process_batch(&mut batch, &mut Vec::new());
        let text: Vec<(String, String)> = acks
            .into_iter()
            .map(|(r, b)| (r, String::from_utf8(b.to_vec()).unwrap()))
            .collect();
        assert_eq!(
            text,
            vec![
                ("r1".into(), r#"{"stream":"S","seq":1}"#.into()),
                (
                    "r2".into(),
                    r#"{"error":{"code":400,"err_code":10071,"description":"wrong last sequence: 1"},"stream":"S","seq":0}"#.into()
                ),
                ("r3".into(), r#"{"stream":"S","seq":2}"#.into()),
                ("r4".into(), r#"{"stream":"S","seq":2,"duplicate":true}"#.into()),
            ]
        );
        assert_eq!(stream.counters().0, 2);
        stream.close_store();
        // A closed stream takes nothing.
        assert!(stream
            .process_batch(&mut [msg("s.a", "r5", None)], &mut Vec::new())
            .is_empty());
    }

    #[tokio::test]
    async fn a_batch_that_panics_fails_the_stream_and_answers_its_publishers() {
        let dir = tempfile::tempdir().unwrap();
        let stream = crate::testing::open_stream(
            StreamConfig {
                name: "S".into(),
                subjects: vec!["s.>".into(), "panic.now".into()],
                ..StreamConfig::default()
            },
            dir.path(),
        );
        let port = Arc::new(crate::testing::RecordingPort::default());
        let task = tokio::spawn(run(stream.clone(), port.clone()));
        let acked = |n: usize| {
            let port = port.clone();
            async move {
                while port.published.lock().len() < n {
                    tokio::task::yield_now().await;
                }
                port.published.lock()[n - 1].clone()
            }
        };
        stream.enqueue(msg("s.a", "r1", None)).unwrap();
        let (subject, _, body) = acked(1).await;
        assert_eq!(
            (subject.as_str(), &body[..]),
            ("r1", &br#"{"stream":"S","seq":1}"#[..])
        );
        stream.enqueue(msg("panic.now", "r2", None)).unwrap();
        let (subject, _, body) = acked(2).await;
        assert_eq!(subject, "r2");
        let text = String::from_utf8(body.to_vec()).unwrap();
        assert!(
            text.contains("stream failed: injected ingest failure"),
            "{text}"
        );
        // The task lives on; the stream refuses until restarted, and says why.
        stream.enqueue(msg("s.b", "r3", None)).unwrap();
        let (_, _, body) = acked(3).await;
        assert!(String::from_utf8_lossy(&body).contains("stream failed"));
        let (info, _) = stream.info(&Default::default()).unwrap();
        assert!(info.failed.is_some());
        assert_eq!(info.state.messages, 1);
        assert!(!task.is_finished());
    }
}
