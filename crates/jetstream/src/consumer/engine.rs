//! The consumer task and its step.
//!
//! The task sleeps until an event, a new message, or the next deadline (redelivery, pull
//! request expiry, heartbeat, inactivity, state write), then runs one step on a blocking
//! thread: with the stream lock and then the consumer's state lock it applies acks and pull
//! requests, moves expired messages to the redelivery queue, picks what to deliver (due
//! redeliveries first, then `last_per_subject` starts, then new messages) and builds the
//! deliveries. Publishing happens after the locks are released.

use std::sync::{Arc, Weak};
use std::time::Duration;
use tokio::time::Instant;

use bytes::Bytes;
use petrel_store::{StoredMsg, StreamStore};

use super::ackmsg;
use super::config::{AckPolicy, ReplayPolicy};
use super::deadletter::{self, Dead, Reason};
use super::events::{expire_requests, handle_event, push_status};
use super::priority;
use super::pull;
use super::{next_from, Consumer, State, FC_RESEND};
use crate::advisory;
use crate::config::RetentionPolicy;
use crate::jetstream::JetStream;
use crate::port::{Delivery, Port};
use crate::stream::{Inner, Stream};
use crate::time::{deadline, now_nanos};

/// Most messages one step delivers before it lets others take the stream lock.
const MAX_STEP: usize = 2048;
/// How often a push consumer without interest looks again.
const INTEREST_POLL: Duration = Duration::from_millis(50);
/// Minimum gap between two writes of a durable's state.
const PERSIST_EVERY: Duration = Duration::from_millis(20);
/// Longest sleep when nothing is due.
const IDLE: Duration = Duration::from_secs(60);

/// What one step produced.
#[derive(Default)]
pub(crate) struct StepOut {
    pub deliveries: Vec<Delivery>,
    pub replies: Vec<(String, Bytes)>,
    pub advisories: Vec<(String, Bytes)>,
    /// Messages given up on this step, for the dead-letter subject.
    pub dead: Vec<Dead>,
    /// Dead-letter copies to publish: (subject, headers, payload).
    pub dead_letters: Vec<(String, Bytes, Bytes)>,
    /// Wake at this time even without events.
    pub wake: Option<Instant>,
    /// More work is ready now.
    pub again: bool,
    /// Serialized state to write.
    pub persist: Option<Vec<u8>>,
    /// The same state, for a replicated stream's followers (sent by the task).
    pub checkpoint: Option<Vec<u8>>,
    /// The consumer was inactive past its threshold: delete it.
    pub expired: bool,
}

impl StepOut {
    pub(super) fn wake_at(&mut self, at: Instant) {
        self.wake = Some(self.wake.map_or(at, |w| w.min(at)));
    }
}

/// Consecutive failed steps after which a consumer is stopped and marked failed.
const MAX_FAILURES: u32 = 3;

/// Runs the consumer until it is closed or removed for inactivity. A step that panics is
/// caught and logged with the consumer's name; the task retries with a growing pause and,
/// after [`MAX_FAILURES`] failures in a row, stops: the consumer is unsubscribed, refuses
/// events and reports why in its info (`failed`), instead of living on as a zombie.
pub(crate) async fn run(
    consumer: Arc<Consumer>,
    stream: Arc<Stream>,
    port: Arc<dyn Port>,
    js: Weak<JetStream>,
) {
    let mut failures = 0;
    loop {
        if consumer.is_closed() {
            return;
        }
        let out = match guarded_step(&consumer, &stream, &port).await {
            Ok(mut out) => {
                replicate(&consumer, &stream, &mut out).await;
                failures = 0;
                out
            }
            Err(why) => {
                failures += 1;
                tracing::error!(stream = %consumer.stream, consumer = %consumer.name, failures,
                    "consumer step failed: {why}");
                if failures >= MAX_FAILURES {
                    give_up(&consumer, &js, why);
                    return;
                }
                tokio::time::sleep(Duration::from_millis(100 << failures)).await;
                continue;
            }
        };
        if !out.deliveries.is_empty() {
            port.deliver(out.deliveries);
        }
        if !out.replies.is_empty() {
            port.publish_replies(out.replies);
        }
        for (subject, headers, payload) in out.dead_letters {
            port.publish(&subject, None, Some(headers), payload);
        }
        for (subject, body) in out.advisories {
            port.publish(&subject, None, None, body);
        }
        if out.expired {
            if let Some(js) = js.upgrade() {
                tracing::debug!(stream = %consumer.stream, consumer = %consumer.name,
                    "removing inactive consumer");
                let j = js.clone();
                let (sn, cn) = (consumer.stream.clone(), consumer.name.clone());
                let _ = tokio::task::spawn_blocking(move || j.remove_consumer(&sn, &cn)).await;
            }
            return;
        }
        if out.again {
            tokio::task::yield_now().await;
            continue;
        }
        let wake = out.wake.unwrap_or_else(|| Instant::now() + IDLE);
        tokio::select! {
            _ = consumer.notify().notified() => {}
            _ = tokio::time::sleep_until(wake) => {}
        }
    }
}

/// One step, inline when it cannot block (see [`step_inline`]) or on a blocking thread,
/// with a panic turned into `Err(message)`.
async fn guarded_step(
    consumer: &Arc<Consumer>,
    stream: &Arc<Stream>,
    port: &Arc<dyn Port>,
) -> Result<StepOut, String> {
    let inline = catch(|| step_inline(consumer, stream, port.as_ref()))?;
    if let Some(mut out) = inline {
        if let (Some(bytes), Some(dir)) = (out.persist.take(), consumer.dir.clone()) {
            let (c, s) = (consumer.clone(), stream.clone());
            let _ = tokio::task::spawn_blocking(move || save(&c, &s, &dir, &bytes)).await;
        }
        return Ok(out);
    }
    let (c, s, p) = (consumer.clone(), stream.clone(), port.clone());
    tokio::task::spawn_blocking(move || {
        catch(|| {
            let out = step(&s, &mut s.inner.lock(), &c, p.as_ref(), Instant::now());
            if let (Some(bytes), Some(dir)) = (&out.persist, &c.dir) {
                save(&c, &s, dir, bytes);
            }
            out
        })
    })
    .await
    .map_err(|e| e.to_string())?
}

/// Runs `f`, turning a panic into its message.
pub(crate) fn catch<T>(f: impl FnOnce() -> T) -> Result<T, String> {
    std::panic::catch_unwind(std::panic::AssertUnwindSafe(f)).map_err(|p| {
        p.downcast_ref::<&str>()
            .map(|s| s.to_string())
            .or_else(|| p.downcast_ref::<String>().cloned())
            .unwrap_or_else(|| "panic".to_string())
    })
}

/// Stops a consumer whose steps keep failing: marked failed (reported in its info),
/// unsubscribed, its events refused. Deleting it still works.
fn give_up(consumer: &Consumer, js: &Weak<JetStream>, why: String) {
    tracing::error!(stream = %consumer.stream, consumer = %consumer.name,
        "consumer stopped after {MAX_FAILURES} failed steps; delete and recreate it");
    *consumer.failed.lock() = Some(format!("stopped after repeated failures: {why}"));
    if let Some(js) = js.upgrade() {
        js.stop_consumer(consumer);
    } else {
        consumer.close();
    }
}

/// Writes the consumer's state file, logging a failure.
fn save(c: &Consumer, stream: &Stream, dir: &std::path::Path, bytes: &[u8]) {
    if let Err(e) = super::persist::write_state(stream.backend.as_ref(), dir, bytes, false) {
        tracing::warn!(stream = %c.stream, consumer = %c.name, error = %e,
            "writing consumer state failed");
    }
}

/// A replicated stream's followers keep a copy of a durable consumer's state, for the
/// next leader. An ack that asked for a reply (`AckSync`, `double_ack`) is answered only
/// once the state recording it is committed on a quorum: an acknowledged ack survives the
/// leader's loss. Checkpoints without such acks go out in the background.
async fn replicate(c: &Consumer, stream: &Stream, out: &mut StepOut) {
    let (Some(r), Some(state)) = (stream.replica.get(), out.checkpoint.take()) else {
        return;
    };
    if out.replies.is_empty() {
        r.checkpoint(&c.name, &state);
    } else if !r.checkpoint_wait(&c.name, state).await {
        // Not committed (the leadership moved): no ack reply; the client retries the ack
        // against the next leader.
        out.replies.clear();
    }
}

/// Runs the step on the calling (async) thread when that cannot block: the stream lock is
/// free right now (no commit in progress) and the stream keeps messages on ack (limits
/// retention: the step only reads the store). Saves a blocking-pool hop per step.
fn step_inline(c: &Consumer, stream: &Stream, port: &dyn Port) -> Option<StepOut> {
    let mut inner = stream.inner.try_lock()?;
    if inner.closed || inner.config.retention != RetentionPolicy::Limits {
        return None;
    }
    Some(step(stream, &mut inner, c, port, Instant::now()))
}

/// Whether the consumer is paused (`pause_until` still ahead): then nothing is delivered
/// and the step runs again when the pause ends. The first step past it announces the
/// resume (the advisory nats-server sends when a pause runs out).
fn paused(c: &Consumer, st: &mut State, now: Instant, wall: i64, out: &mut StepOut) -> bool {
    if let Some(end) = st.config.paused_at(wall) {
        st.pause_noted = Some(end);
        let left = u64::try_from(end - wall).unwrap_or(0);
        out.wake_at(deadline(now, Duration::from_nanos(left)));
        return true;
    }
    if let Some(end) = st.pause_noted.take() {
        out.advisories
            .push(advisory::pause(&c.stream, &c.name, false, end));
    }
    false
}

/// One step: events, timers, deliveries, with the stream lock held by the caller.
pub(crate) fn step(
    stream: &Stream,
    inner: &mut Inner,
    c: &Consumer,
    port: &dyn Port,
    now: Instant,
) -> StepOut {
    let events = c.take_events();
    let mut out = StepOut::default();
    if inner.closed {
        return out;
    }
    let wall = now_nanos();
    let retention = inner.config.retention;
    let mut st = c.state.lock();
    let mut acked: Vec<u64> = Vec::new();
    for ev in events {
        handle_event(c, &mut st, ev, now, wall, &mut acked, &mut out);
    }
    st.refresh(inner.store.as_ref());
    st.acks.expire(now);
    for (sseq, dc) in st.acks.take_exhausted() {
        out.advisories
            .push(advisory::max_deliveries(&c.stream, &c.name, sseq, dc));
        out.dead.push(Dead {
            sseq,
            deliveries: dc,
            reason: Reason::MaxDeliveries,
        });
        st.dirty = true;
    }
    if !out.dead.is_empty() {
        // Read before retention removes them below.
        let dead = std::mem::take(&mut out.dead);
        out.dead_letters =
            deadletter::copies(&c.stream, &c.name, &st.config, inner.store.as_ref(), dead);
    }
    expire_requests(&mut st, now, &mut out);
    priority::expire_pins(&mut st, now, (&c.stream, &c.name), &mut out);
    if paused(c, &mut st, now, wall, &mut out) {
        end_no_wait(&mut st, &mut out);
    } else {
        deliver(c, inner, &mut st, port, now, wall, &mut acked, &mut out);
    }
    heartbeats(&mut st, now, &mut out);
    // Retention: drop what every consumer is done with.
    if !acked.is_empty() && retention != RetentionPolicy::Limits {
        drop(st);
        remove_acked(stream, inner, c, retention, &acked);
        st = c.state.lock();
    }
    if let Some(at) = st.acks.next_deadline() {
        out.wake_at(at);
    }
    inactivity(&mut st, port, now, &mut out);
    // On a replicated stream an ack reply waits for the state: write it now.
    let confirm = !out.replies.is_empty() && stream.replica.get().is_some();
    if st.dirty && c.dir.is_some() {
        if confirm || now.duration_since(st.last_persist) >= PERSIST_EVERY {
            let state = super::persist::encode_state(&st);
            // A replicated stream's consumer files are written by the group's apply
            // alone (durably, on every replica): the checkpoint goes to the group.
            if stream.replica.get().is_some() {
                out.checkpoint = Some(state);
            } else {
                out.persist = Some(state);
            }
            st.dirty = false;
            st.last_persist = now;
        } else {
            out.wake_at(st.last_persist + PERSIST_EVERY);
        }
    }
    out
}

/// A message to send: from the store, with its delivery count decided later.
struct Candidate {
    msg: StoredMsg,
    redelivery: bool,
}

/// Delivers what the consumer may deliver now.
#[allow(clippy::too_many_arguments)]
fn deliver(
    c: &Consumer,
    inner: &mut Inner,
    st: &mut State,
    port: &dyn Port,
    now: Instant,
    wall: i64,
    acked: &mut Vec<u64>,
    out: &mut StepOut,
) {
    let push = !st.config.is_pull();
    if push {
        let was = st.push.active;
        st.push.active = port.has_interest(&st.config.deliver_subject);
        if st.push.active {
            st.last_active = now;
            if !was {
                st.push.last_sent = now;
            }
        }
    }
    let store = inner.store.as_ref();
    let mut sent = 0usize;
    loop {
        if sent >= MAX_STEP {
            out.again = true;
            break;
        }
        // The pull request served next (priority groups may pass over the first).
        let mut serve = 0;
        // Who gets the next message?
        if push {
            if !st.push.active {
                if st.npending > 0 || !st.acks.rdq.is_empty() {
                    out.wake_at(now + INTEREST_POLL);
                }
                break;
            }
            if st.config.flow_control && st.push.fc_bytes >= st.push.fc_window {
                // Stalled until the client answers; ask again if the answer got lost.
                let resend_at = st.push.fc_sent + FC_RESEND;
                if resend_at <= now {
                    st.push.fc_pending = None;
                    send_flow_control(c, st, now, out);
                } else {
                    out.wake_at(resend_at);
                }
                break;
            }
        } else {
            // Drop requests whose inbox is gone.
            while let Some(w) = st.waiting.front() {
                if port.has_interest(&w.reply) {
                    break;
                }
                st.waiting.pop_front();
            }
            if st.waiting.is_empty() {
                break;
            }
            let (pending, ack_pending) = (st.npending, st.acks.pending.len() as u64);
            let policy = st.config.priority_policy;
            let pins = &st.pins;
            let Some(i) = priority::next_request(policy, &st.waiting, pending, ack_pending, pins)
            else {
                break;
            };
            if !port.has_interest(&st.waiting[i].reply) {
                st.waiting.remove(i);
                continue;
            }
            serve = i;
        }
        let Some(cand) = next_candidate(c, st, store) else {
            break;
        };
        let Candidate { msg, redelivery } = cand;
        let size = msg.headers.as_ref().map_or(0, Bytes::len) + msg.payload.len();
        let dc_next = st.acks.pending.get(&msg.seq).map_or(1, |p| p.dc + 1);
        let reply = ackmsg::ack_subject(
            &c.stream,
            &c.name,
            dc_next,
            msg.seq,
            st.acks.dseq + 1,
            msg.ts,
            st.npending,
        );
        // What max_bytes counts (nats-server): subject, ack subject, headers, payload.
        let wire_size = msg.subject.len() + reply.len() + size;
        // Replay original: hold new messages back by their original gaps.
        if !redelivery && st.config.replay_policy == ReplayPolicy::Original {
            if let Some((last_ts, sent_at)) = st.replay_mark {
                let gap = Duration::from_nanos(u64::try_from(msg.ts - last_ts).unwrap_or(0));
                if sent_at + gap > now {
                    out.wake_at(sent_at + gap);
                    unread(st, &msg);
                    break;
                }
            }
        }
        let mut pin = None;
        let route = if push {
            st.config.deliver_subject.clone()
        } else {
            let w = st.waiting.get_mut(serve).expect("checked above");
            if w.has_max_bytes && wire_size as i64 > w.max_bytes {
                let w = st.waiting.remove(serve).expect("checked above");
                let status = pull::status_with_pending(
                    "409 Message Size Exceeds MaxBytes",
                    w.batch,
                    w.max_bytes,
                );
                push_status(out, w.reply, status);
                if redelivery {
                    st.acks.rdq.insert(msg.seq);
                } else {
                    unread(st, &msg);
                }
                continue;
            }
            // The delivery is certain now: pin its client (pinned_client) if none is.
            pin = priority::pin_for(st, serve, now, wall, (&c.stream, &c.name), out);
            let w = st.waiting.get_mut(serve).expect("checked above");
            w.batch -= 1;
            w.delivered += 1;
            if w.has_max_bytes {
                w.max_bytes -= wire_size as i64;
            }
            w.next_heartbeat = w.heartbeat.map(|h| deadline(now, h));
            let route = w.reply.clone();
            if w.batch <= 0 || (w.has_max_bytes && w.max_bytes <= 0) {
                st.waiting.remove(serve);
            }
            route
        };
        if !redelivery {
            st.replay_mark = Some((msg.ts, now));
        }
        let (dseq, dc) = st.acks.delivered(msg.seq, now, wall);
        debug_assert_eq!((dseq, dc), (st.acks.dseq, dc_next));
        if st.config.ack_policy == AckPolicy::None {
            acked.push(msg.seq);
        }
        st.dirty = true;
        st.last_delivery_wall = wall;
        let (headers, payload, raw) = if st.config.headers_only {
            (
                Some(headers_only(msg.headers.as_ref(), msg.payload.len())),
                Bytes::new(),
                None,
            )
        } else {
            (msg.headers, msg.payload, msg.raw)
        };
        // A pinned client's deliveries carry its pin id.
        let (headers, raw) = match &pin {
            Some(id) => (Some(priority::with_pin_header(headers.as_ref(), id)), None),
            None => (headers, raw),
        };
        out.deliveries.push(Delivery {
            route,
            subject: msg.subject,
            reply: Some(reply),
            headers,
            payload,
            raw,
        });
        sent += 1;
        if push {
            st.push.last_sent = now;
            if st.config.flow_control {
                st.push.fc_bytes += size as u64;
                if st.push.fc_pending.is_none() && st.push.fc_bytes >= st.push.fc_window / 2 {
                    send_flow_control(c, st, now, out);
                }
            }
        }
    }
    // no_wait requests that could not be filled end now.
    if !push {
        end_no_wait(st, out);
    }
}

/// Ends the `no_wait` pull requests that could not be filled (`404`, or `408` with what is
/// left when some messages went out).
fn end_no_wait(st: &mut State, out: &mut StepOut) {
    let mut i = 0;
    while i < st.waiting.len() {
        if st.waiting[i].no_wait {
            let w = st.waiting.remove(i).expect("index checked");
            let status = if w.delivered == 0 {
                pull::status("404 No Messages")
            } else {
                w.timeout_status()
            };
            push_status(out, w.reply, status);
            continue;
        }
        i += 1;
    }
}

/// Sends a flow-control request covering every byte delivered so far.
fn send_flow_control(c: &Consumer, st: &mut State, now: Instant, out: &mut StepOut) {
    let fc = format!(
        "$JS.FC.{}.{}.{}",
        c.stream,
        c.name,
        &advisory::next_id()[..4]
    );
    st.push.fc_pending = Some((fc.clone(), st.push.fc_bytes));
    st.push.fc_sent = now;
    out.deliveries.push(Delivery {
        route: st.config.deliver_subject.clone(),
        subject: st.config.deliver_subject.clone(),
        reply: Some(fc),
        headers: Some(Bytes::from_static(pull::FLOW_CONTROL_REQUEST)),
        payload: Bytes::new(),
        raw: None,
    });
}

/// Puts a new message back (it was read but not delivered).
fn unread(st: &mut State, msg: &StoredMsg) {
    if st.lps.is_empty() && msg.seq < st.cursor {
        st.cursor = msg.seq;
        st.npending += 1;
    }
}

/// The next message to deliver: a due redelivery, a `last_per_subject` start, or the next
/// new message. `None` when nothing may be delivered now.
fn next_candidate(c: &Consumer, st: &mut State, store: &dyn StreamStore) -> Option<Candidate> {
    // Exhausted deliveries were taken out earlier in the step (`take_exhausted`).
    while let Some(seq) = st.acks.next_redelivery() {
        match store.get(seq) {
            Ok(Some(msg)) => {
                return Some(Candidate {
                    msg,
                    redelivery: true,
                })
            }
            _ => st.acks.forget(seq),
        }
    }
    let max_pending = st.config.max_ack_pending;
    if st.config.ack_policy != AckPolicy::None
        && max_pending > 0
        && st.acks.pending.len() as i64 >= max_pending
    {
        return None;
    }
    while let Some(seq) = st.lps.pop_front() {
        st.npending = st.npending.saturating_sub(1);
        if let Ok(Some(msg)) = store.get(seq) {
            return Some(Candidate {
                msg,
                redelivery: false,
            });
        }
    }
    match next_from(store, st.cursor, &st.filters) {
        Ok(Some(msg)) => {
            st.cursor = msg.seq + 1;
            st.npending = st.npending.saturating_sub(1);
            Some(Candidate {
                msg,
                redelivery: false,
            })
        }
        Ok(None) => {
            // Nothing at or after the cursor: skip past the stream's end.
            let last = store.state().last_seq;
            if st.cursor <= last {
                st.cursor = last + 1;
            }
            st.npending = 0;
            None
        }
        Err(e) => {
            tracing::warn!(stream = %c.stream, consumer = %c.name, seq = st.cursor, error = %e,
                "consumer skipped an unreadable message");
            st.cursor += 1;
            st.npending = st.npending.saturating_sub(1);
            None
        }
    }
}

/// The headers of a `headers_only` delivery: the stored ones plus `Nats-Msg-Size`.
fn headers_only(stored: Option<&Bytes>, size: usize) -> Bytes {
    crate::hdr::extend(stored, &format!("Nats-Msg-Size: {size}\r\n"))
}

/// Idle heartbeats: push consumers with interest, and pull requests that asked for them.
fn heartbeats(st: &mut State, now: Instant, out: &mut StepOut) {
    let (last_c, last_s) = (st.acks.dseq, st.acks.dsseq);
    if !st.config.is_pull() {
        if st.config.idle_heartbeat <= 0 || !st.push.active {
            return;
        }
        let hb = Duration::from_nanos(st.config.idle_heartbeat.unsigned_abs());
        if deadline(st.push.last_sent, hb) <= now {
            let stalled = st
                .push
                .fc_pending
                .as_ref()
                .filter(|_| st.push.fc_bytes >= st.push.fc_window)
                .map(|(s, _)| s.as_str());
            let status = pull::heartbeat(last_c, last_s, stalled);
            push_status(out, st.config.deliver_subject.clone(), status);
            st.push.last_sent = now;
        }
        out.wake_at(deadline(st.push.last_sent, hb));
        return;
    }
    for w in st.waiting.iter_mut() {
        let (Some(hb), Some(due)) = (w.heartbeat, w.next_heartbeat) else {
            continue;
        };
        if due <= now {
            push_status(out, w.reply.clone(), pull::heartbeat(last_c, last_s, None));
            w.next_heartbeat = Some(deadline(now, hb));
            out.wake_at(deadline(now, hb));
        } else {
            out.wake_at(due);
        }
    }
}

/// Inactivity: a consumer with an inactive threshold and no interest (push) or no waiting
/// requests (pull) for that long is removed.
fn inactivity(st: &mut State, port: &dyn Port, now: Instant, out: &mut StepOut) {
    let threshold = st.config.inactive_threshold;
    if threshold <= 0 {
        return;
    }
    let active = if st.config.is_pull() {
        !st.waiting.is_empty()
    } else {
        st.push.active || port.has_interest(&st.config.deliver_subject)
    };
    if active {
        st.last_active = now;
    }
    let limit = Duration::from_nanos(threshold as u64);
    let due = deadline(st.last_active, limit);
    if due <= now {
        out.expired = true;
    } else if active && !st.config.is_pull() {
        // Interest can go away without an event: look again.
        out.wake_at(now + limit.min(Duration::from_secs(1)));
    } else {
        out.wake_at(due);
    }
}

/// Interest and work-queue retention: removes acked messages nobody needs any more.
fn remove_acked(
    stream: &Stream,
    inner: &mut Inner,
    me: &Consumer,
    retention: RetentionPolicy,
    acked: &[u64],
) {
    let gone: Vec<u64> = match retention {
        RetentionPolicy::Workqueue => acked.to_vec(),
        RetentionPolicy::Interest => {
            let consumers: Vec<Arc<Consumer>> = stream
                .consumers
                .read()
                .values()
                .filter(|o| !std::ptr::eq(o.as_ref(), me))
                .cloned()
                .collect();
            let states: Vec<_> = consumers.iter().map(|o| o.state.lock()).collect();
            acked
                .iter()
                .copied()
                .filter(|&seq| match inner.store.get(seq) {
                    Ok(Some(m)) => crate::retention::unneeded(retention, &states, seq, &m.subject),
                    _ => false,
                })
                .collect()
        }
        RetentionPolicy::Limits => Vec::new(),
    };
    crate::retention::retire(stream, inner, gone);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{StorageType, StreamConfig};
    use crate::consumer::config::ConsumerConfig;
    use crate::consumer::Event;
    use crate::testing::RecordingPort;

    #[tokio::test(start_paused = true)]
    async fn a_step_that_keeps_panicking_stops_the_consumer_instead_of_a_zombie() {
        let dir = tempfile::tempdir().unwrap();
        let stream = crate::testing::open_stream(
            StreamConfig {
                name: "S".into(),
                storage: StorageType::Memory,
                ..StreamConfig::default()
            },
            dir.path(),
        );
        let mut ccfg = ConsumerConfig {
            durable_name: "C".into(),
            ..ConsumerConfig::default()
        };
        ccfg.set_defaults(&stream.config());
        let consumer = Arc::new(
            Consumer::new("S", ccfg, 1, stream.inner.lock().store.as_ref(), None).unwrap(),
        );
        let task = tokio::spawn(run(
            consumer.clone(),
            stream.clone(),
            Arc::new(RecordingPort::default()),
            Weak::new(),
        ));
        // A poison event before every step: the steps fail back to back (a single failed
        // step drops its events and the consumer carries on).
        for _ in 0..50 {
            if task.is_finished() {
                break;
            }
            consumer.push_event(Event::Ack {
                subject: "$JS.ACK.S.C.1.1.1.0.0".into(),
                reply: None,
                payload: Bytes::from_static(b"+PANIC"),
            });
            tokio::time::sleep(Duration::from_millis(150)).await;
        }
        task.await.expect("the task ends instead of dying");
        let failed = consumer.failed.lock().clone().expect("marked failed");
        assert!(failed.contains("injected step failure"), "{failed}");
        assert!(consumer.info().failed.is_some());
        // Events are refused, not queued for a dead task.
        consumer.push_event(Event::FlowControl {
            subject: "x".into(),
        });
        assert!(consumer.take_events().is_empty());
    }
}
