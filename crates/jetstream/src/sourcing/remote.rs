//! Sources and mirrors whose origin is in another account or domain (`external`), read
//! the way nats-server reads them: through the origin's JetStream API (the `api` prefix)
//! an ephemeral push consumer is created that delivers, with flow control and idle
//! heartbeats, on `<deliver prefix>.<random>` (imported into this account); each delivery's
//! ack subject names its origin sequence, time and the messages still pending. Missed
//! deliveries (a delivery-sequence gap, a heartbeat naming a later delivery, silence past
//! three heartbeats) end the consumer and a new one starts after the last message taken,
//! so nothing is taken twice or skipped; a restart resumes the same way.
//!
//! Only replies to the origin's flow control (`$JS.FC.` subjects) are ever published from
//! what arrives: deliveries are data, never requests.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use parking_lot::Mutex;
use petrel_store::StoredMsg;
use serde::Deserialize;
use tokio::sync::{mpsc, oneshot};

use super::config::{External, StreamSource};
use super::task::{last_taken, moved, store_batch, store_mirror, Moved, Task};
use crate::errors::ApiError;
use crate::jetstream::JetStream;
use crate::port::{Accept, Flow, Handler, Incoming, SubId};
use crate::stream::Stream;

/// The origin consumer's idle heartbeat.
const HEARTBEAT: Duration = Duration::from_secs(1);
/// Silence after which the consumer is considered lost (three heartbeats).
const STALE: Duration = Duration::from_secs(3);
/// How long a consumer create may take to be answered.
const CREATE_WAIT: Duration = Duration::from_secs(5);
/// The origin consumer goes away this long after the sourcing stops listening.
const INACTIVE: Duration = Duration::from_secs(10);
/// Pauses between attempts: doubling from the first to the last.
const RETRY_FIRST: Duration = Duration::from_secs(1);
const RETRY_MAX: Duration = Duration::from_secs(30);
/// Bytes of deliveries queued between the router and the task: above the origin's largest
/// flow-control window (32 MiB; flow control is answered only once what came before is
/// stored), so only a sender ignoring flow control fills it. Past it deliveries are
/// dropped, which shows as a gap and restarts the consumer: bounded, and nothing lost.
const QUEUE_BYTES: usize = 64 * 1024 * 1024;
/// Most deliveries stored by one commit.
const BATCH: usize = 256;

/// One delivery as the task receives it.
struct Delivered {
    subject: String,
    reply: Option<String>,
    headers: Option<Bytes>,
    payload: Bytes,
    /// What it counts against [`QUEUE_BYTES`].
    size: usize,
}

/// The deliver subject's handler: queues deliveries for the task, within [`QUEUE_BYTES`].
struct Inbox {
    tx: mpsc::UnboundedSender<Delivered>,
    queued: Arc<AtomicUsize>,
}

impl Handler for Inbox {
    fn handle(&self, msg: Incoming<'_>) -> Flow {
        let size = msg.shown.len()
            + msg.reply.map_or(0, str::len)
            + msg.headers.as_ref().map_or(0, Bytes::len)
            + msg.payload.len();
        if self.queued.fetch_add(size, Ordering::AcqRel) + size > QUEUE_BYTES {
            self.queued.fetch_sub(size, Ordering::AcqRel);
            return Flow::Ok;
        }
        let sent = self.tx.send(Delivered {
            subject: msg.shown.to_string(),
            reply: msg.reply.map(str::to_string),
            headers: msg.headers,
            payload: msg.payload,
            size,
        });
        if sent.is_err() {
            self.queued.fetch_sub(size, Ordering::AcqRel);
        }
        Flow::Ok
    }
}

/// The consumer-create reply's handler.
struct ReplyBox(Mutex<Option<oneshot::Sender<Bytes>>>);

impl Handler for ReplyBox {
    fn handle(&self, msg: Incoming<'_>) -> Flow {
        if let Some(tx) = self.0.lock().take() {
            let _ = tx.send(msg.payload);
        }
        Flow::Ok
    }
}

/// Unsubscribes when dropped.
struct Sub(Arc<dyn crate::port::Port>, SubId);

impl Drop for Sub {
    fn drop(&mut self) {
        self.0.unsubscribe(self.1);
    }
}

/// How a consumer session ended.
enum Ended {
    /// The sourcing stream is gone or closing.
    Closed,
    /// Start a new consumer; `moved` says whether this one moved anything.
    Retry { moved: bool },
}

/// Runs an external source (or mirror) until its stream goes away.
pub(super) async fn run(task: Task) {
    let mut pause = RETRY_FIRST;
    loop {
        let (Some(js), Some(target)) = (task.js.upgrade(), task.target.upgrade()) else {
            return;
        };
        match session(&task, &js, &target).await {
            Ended::Closed => return,
            Ended::Retry { moved } => {
                if moved {
                    pause = RETRY_FIRST;
                }
            }
        }
        drop((js, target));
        tokio::time::sleep(pause).await;
        pause = (pause * 2).min(RETRY_MAX);
    }
}

/// Where the new consumer starts.
enum Start {
    Seq(u64),
    Time(String),
    All,
}

/// After the newest message taken (a mirror: its last sequence), else the source's
/// `opt_start_seq` / `opt_start_time`, else everything. Blocking.
fn start_point(target: &Stream, source: &StreamSource, inames: &[String], mirror: bool) -> Start {
    let last = target.inner.lock().store.state().last_seq;
    if mirror && last > 0 {
        return Start::Seq(last + 1);
    }
    if !mirror {
        if let Some(seq) = last_taken(target, inames) {
            return Start::Seq(seq + 1);
        }
    }
    if source.opt_start_seq > 0 {
        return Start::Seq(source.opt_start_seq);
    }
    match &source.opt_start_time {
        Some(t) => Start::Time(t.clone()),
        None => Start::All,
    }
}

/// The consumer-create request body.
fn create_request(task: &Task, deliver: &str, start: &Start) -> Bytes {
    let mut config = serde_json::json!({
        "deliver_subject": deliver,
        "ack_policy": "none",
        "ack_wait": 22u64 * 3600 * 1_000_000_000,
        "max_deliver": 1,
        "idle_heartbeat": HEARTBEAT.as_nanos() as u64,
        "flow_control": true,
        "inactive_threshold": INACTIVE.as_nanos() as u64,
        "num_replicas": 1,
        "mem_storage": true,
    });
    match start {
        Start::Seq(s) => {
            config["deliver_policy"] = "by_start_sequence".into();
            config["opt_start_seq"] = (*s).into();
        }
        Start::Time(t) => {
            config["deliver_policy"] = "by_start_time".into();
            config["opt_start_time"] = t.clone().into();
        }
        Start::All => config["deliver_policy"] = "all".into(),
    }
    let filters: Vec<&str> = task.filters.iter().map(|f| f.filter.as_str()).collect();
    match filters.as_slice() {
        [">"] => {}
        [one] => config["filter_subject"] = (*one).into(),
        many => config["filter_subjects"] = many.to_vec().into(),
    }
    let body = serde_json::json!({ "stream_name": task.source.name, "config": config });
    Bytes::from(body.to_string())
}

#[derive(Deserialize)]
struct CreateReply {
    #[serde(default)]
    error: Option<ApiError>,
    #[serde(default)]
    name: Option<String>,
}

/// Creates the origin consumer; its name, or why not.
async fn create_consumer(
    task: &Task,
    js: &JetStream,
    ext: &External,
    deliver: &str,
    start: &Start,
) -> Result<String, ApiError> {
    let inbox = format!("_INBOX.{}", crate::advisory::next_id());
    let (tx, rx) = oneshot::channel();
    let handler = Arc::new(ReplyBox(Mutex::new(Some(tx))));
    let id = js.port.subscribe(&inbox, None, Accept::Everyone, handler);
    let _sub = Sub(js.port.clone(), id);
    let subject = format!("{}.CONSUMER.CREATE.{}", ext.api, task.source.name);
    js.port.request(
        &subject,
        Some(&inbox),
        None,
        create_request(task, deliver, start),
    );
    let timed_out =
        || ApiError::stream_general("consumer create for the external source timed out");
    let body = tokio::time::timeout(CREATE_WAIT, rx)
        .await
        .map_err(|_| timed_out())?
        .map_err(|_| timed_out())?;
    let reply: CreateReply = serde_json::from_slice(&body).map_err(|_| ApiError::invalid_json())?;
    if let Some(e) = reply.error {
        return Err(e);
    }
    reply.name.ok_or_else(ApiError::invalid_json)
}

/// One consumer's life: create it, take its deliveries until it is lost.
async fn session(task: &Task, js: &Arc<JetStream>, target: &Arc<Stream>) -> Ended {
    let Some(ext) = task
        .read_via
        .clone()
        .or_else(|| task.source.external.clone())
    else {
        return Ended::Closed;
    };
    super::task::settled(target).await;
    let start = {
        let t = target.clone();
        let (source, inames, mirror) = (task.source.clone(), task.inames.clone(), task.mirror);
        match tokio::task::spawn_blocking(move || start_point(&t, &source, &inames, mirror)).await {
            Ok(s) => s,
            Err(_) => return Ended::Closed,
        }
    };
    let token = crate::advisory::next_id();
    let deliver = match (ext.deliver.is_empty(), task.mirror) {
        (false, true) => format!("{}.M.{token}", ext.deliver),
        (false, false) => format!("{}.S.{token}", ext.deliver),
        (true, true) => format!("$JS.M.{token}"),
        (true, false) => format!("$JS.S.{token}"),
    };
    let (tx, rx) = mpsc::unbounded_channel();
    let queued = Arc::new(AtomicUsize::new(0));
    let inbox = Inbox {
        tx,
        queued: queued.clone(),
    };
    let id = js
        .port
        .subscribe(&deliver, None, Accept::Everyone, Arc::new(inbox));
    let _sub = Sub(js.port.clone(), id);
    let name = match create_consumer(task, js, &ext, &deliver, &start).await {
        Ok(name) => name,
        Err(e) => {
            task.status.lock().error = Some(e);
            return Ended::Retry { moved: false };
        }
    };
    task.status.lock().error = None;
    // Tell the origin at once when this consumer ends, also when the task is aborted (it
    // would drop the consumer once inactive anyway).
    let _delete = DeleteOnDrop(
        js.port.clone(),
        format!("{}.CONSUMER.DELETE.{}.{name}", ext.api, task.source.name),
    );
    follow(task, js, target, Queue { rx, queued }, &name).await
}

/// The task's end of the deliveries queue.
struct Queue {
    rx: mpsc::UnboundedReceiver<Delivered>,
    queued: Arc<AtomicUsize>,
}

impl Queue {
    fn taken(&self, d: Delivered) -> Delivered {
        self.queued.fetch_sub(d.size, Ordering::AcqRel);
        d
    }
}

/// Deletes the origin's consumer when dropped.
struct DeleteOnDrop(Arc<dyn crate::port::Port>, String);

impl Drop for DeleteOnDrop {
    fn drop(&mut self) {
        self.0.request(&self.1, None, None, Bytes::new());
    }
}

/// What a delivery's ack subject says.
struct Meta {
    consumer: String,
    dc: u64,
    sseq: u64,
    dseq: u64,
    ts: i64,
    pending: u64,
}

/// Parses `$JS.ACK.<stream>.<consumer>.<dc>.<sseq>.<dseq>.<ts>.<pending>` (and the v2
/// form with domain and account hash in front and a token after).
fn ack_meta(reply: &str) -> Option<Meta> {
    let t: Vec<&str> = reply.strip_prefix("$JS.ACK.")?.split('.').collect();
    let at = match t.len() {
        7 => 1,
        n if n >= 10 => 3,
        _ => return None,
    };
    Some(Meta {
        consumer: t[at].to_string(),
        dc: t[at + 1].parse().ok()?,
        sseq: t[at + 2].parse().ok()?,
        dseq: t[at + 3].parse().ok()?,
        ts: t[at + 4].parse().ok()?,
        pending: t[at + 5].parse().ok()?,
    })
}

/// A status message (`NATS/1.0 100 ...`): an idle heartbeat or a flow-control request.
fn is_control(d: &Delivered) -> bool {
    d.headers
        .as_deref()
        .is_some_and(|h| h.starts_with(b"NATS/1.0 100"))
}

fn header(d: &Delivered, name: &str) -> Option<String> {
    let h = petrel_wire::headers::parse(d.headers.as_deref()?)?;
    h.get(name).map(str::to_string)
}

/// Takes deliveries until the consumer is lost or the stream closes.
async fn follow(
    task: &Task,
    js: &Arc<JetStream>,
    target: &Arc<Stream>,
    mut queue: Queue,
    consumer: &str,
) -> Ended {
    let (mut dseq, mut sseq, mut moved_any) = (0u64, 0u64, false);
    // What the last delivery said was still pending (control messages say nothing).
    let mut lag = u64::MAX;
    let origin = task.source.origin_id();
    let fc_prefix = format!("$JS.FC.{}.{consumer}.", task.source.name);
    loop {
        let Ok(Some(first)) = tokio::time::timeout(STALE, queue.rx.recv()).await else {
            return Ended::Retry { moved: moved_any };
        };
        let mut batch = vec![queue.taken(first)];
        while batch.len() < BATCH {
            match queue.rx.try_recv() {
                Ok(d) => batch.push(queue.taken(d)),
                Err(_) => break,
            }
        }
        let mut out: Vec<Moved> = Vec::new();
        let mut lost = false;
        // Flow-control answers wait until what came before them is stored.
        let mut answers = Vec::new();
        for d in batch {
            if is_control(&d) {
                lost |= control(&d, dseq, &fc_prefix, &mut answers);
                if lost {
                    break;
                }
                continue;
            }
            let Some(m) = d.reply.as_deref().and_then(ack_meta) else {
                continue;
            };
            if m.consumer != consumer || m.dc > 1 {
                continue;
            }
            if m.sseq <= sseq {
                dseq += u64::from(m.dseq == dseq + 1);
                continue;
            }
            if m.dseq != dseq + 1 {
                lost = true;
                break;
            }
            (dseq, sseq) = (m.dseq, m.sseq);
            lag = m.pending.saturating_sub(1);
            let msg = StoredMsg {
                seq: m.sseq,
                ts: m.ts,
                subject: d.subject,
                headers: d.headers,
                payload: d.payload,
                raw: None,
            };
            out.extend(moved(&origin, msg, &task.filters, task.mirror));
        }
        if !out.is_empty() {
            moved_any = true;
            match store_moved(task, target, out).await {
                // A refused message: start again from the last one taken.
                Some((next, refused)) => {
                    task.report(js, target, lag, next);
                    lost |= refused;
                }
                None => return Ended::Closed,
            }
        } else if !lost && lag != u64::MAX {
            task.report(js, target, lag, sseq + 1);
        }
        for reply in answers {
            js.port.request(&reply, None, None, Bytes::new());
        }
        if lost {
            return Ended::Retry { moved: moved_any };
        }
    }
}

/// Notes the flow-control answer a status message asks for (in `answers`) and checks a
/// heartbeat: `true` when it shows deliveries were missed.
fn control(d: &Delivered, dseq: u64, fc_prefix: &str, answers: &mut Vec<String>) -> bool {
    // Only the origin consumer's own flow-control subjects are answered: nothing that
    // arrives here is a request.
    let fc = |s: &str| s.starts_with(fc_prefix);
    if let Some(reply) = d.reply.as_deref().filter(|r| fc(r)) {
        answers.push(reply.to_string());
        return false;
    }
    let last = header(d, "Nats-Last-Consumer").and_then(|v| v.parse::<u64>().ok());
    if last.is_some_and(|l| l != dseq) {
        return true;
    }
    answers.extend(header(d, "Nats-Consumer-Stalled").filter(|s| fc(s)));
    false
}

/// Stores what was moved (one commit): the origin sequence to go on from and whether a
/// message was refused; `None` when the stream is closed.
async fn store_moved(task: &Task, target: &Arc<Stream>, out: Vec<Moved>) -> Option<(u64, bool)> {
    if task.mirror {
        return store_mirror(target, out).await;
    }
    let js = task.js.upgrade()?;
    let last = out.last().map_or(0, |m| m.origin_seq);
    let (resume, _) = store_batch(&js, target, &task.source.name, out).await?;
    Some((resume.min(last + 1), resume <= last))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ack_subjects_name_the_origin_position() {
        let m = ack_meta("$JS.ACK.O.c1.1.42.7.1700000000000000000.3").unwrap();
        assert_eq!(
            (m.consumer.as_str(), m.dc, m.sseq, m.dseq, m.pending),
            ("c1", 1, 42, 7, 3)
        );
        assert_eq!(m.ts, 1_700_000_000_000_000_000);
        let v2 = ack_meta("$JS.ACK.hub.ACCHASH.O.c1.1.42.7.17.3.tok").unwrap();
        assert_eq!((v2.consumer.as_str(), v2.sseq), ("c1", 42));
        assert!(ack_meta("$JS.ACK.O.c1.1.42").is_none());
        assert!(ack_meta("orders.1").is_none());
    }
}
