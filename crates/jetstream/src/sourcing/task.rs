//! One task per source of a stream: it reads the origin stream's store from where the
//! stream left off, keeps what the source's filters match (transformed), and stores it in
//! the sourcing stream with a `Nats-Stream-Source: <origin> <seq> <filter> <dest> <subject>`
//! header — the same header nats-server writes, which is also how the task finds where to
//! resume after a restart (the newest message from this source), so nothing is taken twice
//! or skipped. It wakes on the origin's commits, and waits (reporting `stream not found`)
//! while the origin does not exist.

use std::collections::BTreeSet;
use std::sync::{Arc, Weak};
use std::time::Duration;

use parking_lot::Mutex;
use petrel_store::StoredMsg;
use tokio::time::Instant;

use super::config::{Filter, StreamSource};
use crate::errors::ApiError;
use crate::jetstream::JetStream;
use crate::republish::Republished;
use crate::stream::{Inbound, Stream};

/// Header naming a sourced message's origin.
pub const STREAM_SOURCE: &str = "Nats-Stream-Source";
/// Most origin messages moved by one commit.
const BATCH: usize = 256;
/// How often a waiting task looks again without a wake-up.
const RETRY: Duration = Duration::from_secs(1);

/// What `STREAM.INFO` reports of one source.
#[derive(Debug, Default)]
pub(crate) struct Status {
    /// Origin messages matching the source not taken yet.
    pub lag: u64,
    /// The origin sequence it has read up to.
    pub seq: u64,
    /// When the source last moved a message or found nothing to move.
    pub active: Option<Instant>,
    /// Why it cannot move messages, if it cannot.
    pub error: Option<ApiError>,
}

/// A running source of a stream.
pub(crate) struct Running {
    /// It is the stream's `mirror` (else one of its `sources`).
    pub mirror: bool,
    pub source: StreamSource,
    pub status: Arc<Mutex<Status>>,
    handle: tokio::task::JoinHandle<()>,
}

/// A source in `STREAM.INFO` (nats-server's StreamSourceInfo).
#[derive(Debug, Clone, serde::Serialize)]
pub(crate) struct SourceInfo {
    name: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    filter_subject: String,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    subject_transforms: Vec<crate::config::SubjectTransformConfig>,
    #[serde(skip_serializing_if = "Option::is_none")]
    external: Option<super::config::External>,
    lag: u64,
    /// The origin sequence read up to (2.11+).
    #[serde(skip_serializing_if = "crate::json::is_default")]
    seq: u64,
    /// Nanoseconds since the source last looked at its origin; -1 before it did.
    active: i64,
    #[serde(skip_serializing_if = "Option::is_none")]
    error: Option<ApiError>,
}

impl Running {
    /// Its state for `STREAM.INFO`.
    pub fn info(&self) -> SourceInfo {
        let st = self.status.lock();
        SourceInfo {
            name: self.source.name.clone(),
            filter_subject: self.source.filter_subject.clone(),
            subject_transforms: self.source.subject_transforms.clone(),
            external: self.source.external.clone(),
            lag: st.lag,
            seq: st.seq,
            active: st.active.map_or(-1, |t| {
                i64::try_from(t.elapsed().as_nanos()).unwrap_or(i64::MAX)
            }),
            error: st.error.clone(),
        }
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        self.handle.abort();
    }
}

/// (Re)starts the source tasks of `stream` (its mirror, or its sources) for its config.
/// A replicated stream's run on its leader only (started with its consumers), each
/// reading its origin from this node's replica of it, or through the API when this node
/// has none.
pub(crate) fn start(js: &JetStream, stream: &Arc<Stream>) {
    let config = stream.config();
    let mirror = config.mirror.is_some();
    let sources = config.mirror.into_iter().chain(config.sources);
    let mut running = stream.sources.lock();
    running.clear();
    super::direct::set_ready(js, stream, None);
    if stream.replica.get().is_some_and(|r| !r.runs_consumers()) {
        return;
    }
    for source in sources {
        let read_via = (stream.replica.get().is_some()
            && source.external.is_none()
            && js.stream(&source.name).is_none())
        .then(own_api);
        let status = Arc::new(Mutex::new(Status::default()));
        let task = Task {
            js: js.weak(),
            target: Arc::downgrade(stream),
            inames: source
                .filters()
                .iter()
                .map(|f| format!("{} {} {}", source.origin_id(), f.filter, f.dest))
                .collect(),
            filters: source.filters(),
            source: source.clone(),
            status: status.clone(),
            taken: BTreeSet::new(),
            mirror,
            read_via: read_via.clone(),
        };
        let handle = if source.external.is_some() || read_via.is_some() {
            js.runtime.spawn(super::remote::run(task))
        } else {
            js.runtime.spawn(task.run())
        };
        running.push(Running {
            mirror,
            source,
            status,
            handle,
        });
    }
}

/// How a replicated stream's leader reads an origin of its own account that has no
/// replica on its node: through the account's JetStream API.
fn own_api() -> super::config::External {
    super::config::External {
        api: "$JS.API".into(),
        // Outside the server's subject spaces (deliveries there are refused).
        deliver: "_INBOX.petrel-source".into(),
    }
}

/// On a replicated stream, waits for the batches a stopped task of it still has in
/// flight: they are applied before the next task looks where to resume.
pub(super) async fn settled(target: &Stream) {
    if let Some(r) = target.replica.get().cloned() {
        r.sourcing_settled().await;
    }
}

/// Stops them (stream deleted or closing).
pub(crate) fn stop(js: &JetStream, stream: &Stream) {
    stream.sources.lock().clear();
    super::direct::set_ready(js, stream, None);
}

pub(super) struct Task {
    pub(super) js: Weak<JetStream>,
    pub(super) target: Weak<Stream>,
    pub(super) source: StreamSource,
    pub(super) filters: Vec<Filter>,
    /// `<origin> <filter> <dest>` of each filter, as its source headers name it.
    pub(super) inames: Vec<String>,
    pub(super) status: Arc<Mutex<Status>>,
    /// Origin sequences above the resume point already stored (a batch stored past a
    /// refused message); skipped when the refused one is retried.
    taken: BTreeSet<u64>,
    /// A mirror: origin sequences, times and headers kept as they are.
    pub(super) mirror: bool,
    /// The API the origin is read through when it is in this account but has no replica
    /// on this node (a replicated stream's leader); `external` otherwise.
    pub(super) read_via: Option<super::config::External>,
}

/// One origin message ready for the sourcing stream.
pub(super) struct Moved {
    pub(super) origin_seq: u64,
    pub(super) origin_ts: i64,
    pub(super) inbound: Inbound,
}

impl Task {
    /// Records progress for `STREAM.INFO` (`next` is the next origin sequence to read),
    /// and for a mirror whether it has caught up enough to answer direct gets.
    pub(super) fn report(&self, js: &JetStream, target: &Stream, lag: u64, next: u64) {
        {
            let mut st = self.status.lock();
            st.lag = lag;
            st.seq = next.saturating_sub(1);
            st.active = Some(Instant::now());
        }
        if self.mirror {
            super::direct::set_ready(js, target, Some((&self.source.name, lag)));
        }
    }

    async fn run(mut self) {
        let mut next: Option<u64> = None;
        loop {
            let (Some(js), Some(target)) = (self.js.upgrade(), self.target.upgrade()) else {
                return;
            };
            let Some(origin) = js.stream(&self.source.name) else {
                if target.replica.get().is_some() && self.source.external.is_none() {
                    // The origin's replica left this node: read it through the API.
                    self.read_via = Some(own_api());
                    drop((js, target));
                    return super::remote::run(self).await;
                }
                self.status.lock().error = Some(ApiError::stream_not_found());
                drop((js, target));
                tokio::time::sleep(RETRY).await;
                continue;
            };
            self.status.lock().error = None;
            let woken = origin.stored.notified();
            tokio::pin!(woken);
            woken.as_mut().enable();
            let from = match next {
                Some(n) => n,
                None => {
                    settled(&target).await;
                    let (t, o, s, i) = (
                        target.clone(),
                        origin.clone(),
                        self.source.clone(),
                        self.inames.clone(),
                    );
                    let mirror = self.mirror;
                    let start = move || start_seq(&t, &o, &s, &i, mirror);
                    match tokio::task::spawn_blocking(start).await {
                        Ok(n) => n,
                        Err(_) => return,
                    }
                }
            };
            let (o, filters, taken) = (origin.clone(), self.filters.clone(), self.taken.clone());
            let mirror = self.mirror;
            let read =
                tokio::task::spawn_blocking(move || read(&o, from, &filters, &taken, mirror)).await;
            let Ok(Ok((batch, after, lag))) = read else {
                tokio::time::sleep(RETRY).await;
                continue;
            };
            if batch.is_empty() {
                next = Some(after);
                self.report(&js, &target, lag, after);
                drop((js, target));
                let _ = tokio::time::timeout(RETRY, woken).await;
                continue;
            }
            if self.mirror {
                match store_mirror(&target, batch).await {
                    Some((resume, refused)) => {
                        next = Some(resume);
                        self.report(&js, &target, lag, resume);
                        if refused {
                            drop((js, target));
                            tokio::time::sleep(RETRY).await;
                        }
                        continue;
                    }
                    _ => return,
                }
            }
            match store_batch(&js, &target, &self.source.name, batch).await {
                Some((resume, stored)) => {
                    self.taken.retain(|s| *s >= resume);
                    self.taken
                        .extend(stored.into_iter().filter(|s| *s >= resume));
                    next = Some(resume.min(after));
                    self.report(&js, &target, lag, resume.min(after));
                }
                // The sourcing stream is closed: deleted or shutting down.
                _ => return,
            }
        }
    }
}

/// Where to start reading the origin: after the newest message this source stored, else
/// the source's `opt_start_seq` / `opt_start_time`, else the origin's first message.
fn start_seq(
    target: &Stream,
    origin: &Stream,
    source: &StreamSource,
    inames: &[String],
    mirror: bool,
) -> u64 {
    // A mirror holds its origin's sequences: it goes on after its own last one.
    let last = target.inner.lock().store.state().last_seq;
    if mirror && last > 0 {
        return last + 1;
    }
    if let Some(seq) = (!mirror).then(|| last_taken(target, inames)).flatten() {
        return seq + 1;
    }
    if source.opt_start_seq > 0 {
        return source.opt_start_seq;
    }
    let inner = origin.inner.lock();
    let first = inner.store.state().first_seq.max(1);
    let Some(t) = source
        .opt_start_time
        .as_deref()
        .and_then(crate::time::parse_rfc3339)
    else {
        return first;
    };
    let mut seq = first;
    while let Ok(Some(m)) = inner.store.next_by_subject(seq, ">") {
        if m.ts >= t {
            return m.seq;
        }
        seq = m.seq + 1;
    }
    seq
}

/// The origin sequence of the newest message of the sourcing stream that came from the
/// source (any of its `inames`).
pub(super) fn last_taken(target: &Stream, inames: &[String]) -> Option<u64> {
    let inner = target.inner.lock();
    let st = inner.store.state();
    let mut seq = st.last_seq;
    while seq >= st.first_seq.max(1) {
        if let Ok(Some(m)) = inner.store.get(seq) {
            let found = m.headers.as_deref().and_then(|h| source_header(h, inames));
            if let Some(origin_seq) = found {
                return Some(origin_seq);
            }
        }
        seq -= 1;
    }
    None
}

/// The origin sequence in a `Nats-Stream-Source` header of one of `inames`, if `headers`
/// has one.
fn source_header(headers: &[u8], inames: &[String]) -> Option<u64> {
    let h = petrel_wire::headers::parse(headers)?;
    let value = h.get(STREAM_SOURCE)?;
    let f: Vec<&str> = value.split(' ').collect();
    let (name, seq, filter, dest) = (f.first()?, f.get(1)?, f.get(2)?, f.get(3)?);
    let iname = format!("{name} {filter} {dest}");
    inames.contains(&iname).then(|| seq.parse().ok())?
}

/// Up to [`BATCH`] origin messages from `from` that the filters match, not yet `taken`;
/// returns them, the sequence after the last one read, and the lag.
fn read(
    origin: &Stream,
    from: u64,
    filters: &[Filter],
    taken: &BTreeSet<u64>,
    mirror: bool,
) -> Result<(Vec<Moved>, u64, u64), petrel_store::StoreError> {
    let inner = origin.inner.lock();
    let mut seq = from.max(inner.store.state().first_seq);
    let mut out = Vec::new();
    while out.len() < BATCH {
        let Some(m) = inner.store.next_by_subject(seq, ">")? else {
            break;
        };
        seq = m.seq + 1;
        if taken.contains(&m.seq) {
            continue;
        }
        if let Some(moved) = moved(&origin.name, m, filters, mirror) {
            out.push(moved);
        }
    }
    let lag = match filters {
        [f] => inner.store.num_pending(seq, &f.filter),
        _ => inner
            .store
            .state()
            .last_seq
            .saturating_sub(seq.saturating_sub(1)),
    };
    Ok((out, seq, lag))
}

/// The message as the sourcing stream stores it, if a filter matches.
pub(super) fn moved(origin: &str, m: StoredMsg, filters: &[Filter], mirror: bool) -> Option<Moved> {
    let f = filters
        .iter()
        .find(|f| petrel_subject::matches(f.filter.as_bytes(), m.subject.as_bytes()))?;
    let subject = f
        .transform
        .as_ref()
        .and_then(|t| t.apply(&m.subject))
        .unwrap_or_else(|| m.subject.clone());
    if mirror {
        return Some(Moved {
            origin_seq: m.seq,
            origin_ts: m.ts,
            inbound: Inbound {
                subject,
                reply: None,
                headers: m.headers,
                payload: m.payload,
            },
        });
    }
    let header = format!(
        "{STREAM_SOURCE}: {origin} {} {} {} {}\r\n",
        m.seq, f.filter, f.dest, m.subject
    );
    let own = m.headers.as_ref().map(|h| {
        crate::hdr::without(h, |name| {
            name.eq_ignore_ascii_case(STREAM_SOURCE) || name.starts_with("Nats-Expected-")
        })
    });
    Some(Moved {
        origin_seq: m.seq,
        origin_ts: m.ts,
        inbound: Inbound {
            subject,
            reply: None,
            headers: Some(crate::hdr::extend(own.as_ref(), &header)),
            payload: m.payload,
        },
    })
}

/// Stores a batch in the sourcing stream (one commit; through the group when the stream
/// is replicated) and publishes its republished copies. Returns the origin sequence to
/// read from next (the first refused one, else past the batch) and the origin sequences
/// stored; `None` when the stream is closed. A batch the group did not commit (this node
/// stopped leading) is read again after a pause, unless the task is stopped meanwhile.
pub(super) async fn store_batch(
    js: &JetStream,
    target: &Arc<Stream>,
    origin: &str,
    batch: Vec<Moved>,
) -> Option<(u64, Vec<u64>)> {
    let seqs: Vec<u64> = batch.iter().map(|m| m.origin_seq).collect();
    let mut inbound: Vec<Inbound> = batch
        .into_iter()
        .enumerate()
        .map(|(i, mut m)| {
            m.inbound.reply = Some(i.to_string());
            m.inbound
        })
        .collect();
    let (acks, republished) = match target.replica.get().cloned() {
        Some(r) => {
            // The leader decides what the account's byte limit leaves room for.
            let room = target.account_room(&inbound);
            let refused: Vec<(String, bytes::Bytes)> = (room..inbound.len())
                .map(|i| (i.to_string(), target.account_refusal()))
                .collect();
            inbound.truncate(room);
            if inbound.is_empty() {
                return Some(outcome(&target.name, origin, &seqs, refused));
            }
            let Some(reply) = r.store_sourced(&inbound).await else {
                tokio::time::sleep(RETRY).await;
                return Some((seqs.first().copied().unwrap_or(0), Vec::new()));
            };
            let acks = reply.acks.into_iter();
            let republished = reply
                .republish
                .into_iter()
                .map(|(subject, h, p)| Republished {
                    subject,
                    headers: bytes::Bytes::from(h.0),
                    payload: bytes::Bytes::from(p.0),
                });
            let acks = acks.map(|(i, b)| (i.to_string(), bytes::Bytes::from(b.0)));
            (acks.chain(refused).collect(), republished.collect())
        }
        None => {
            let t = target.clone();
            let stored = tokio::task::spawn_blocking(move || {
                if t.inner.lock().closed {
                    return None;
                }
                let mut republished = Vec::new();
                let acks = t.process_batch(&mut inbound, &mut republished);
                Some((acks, republished))
            })
            .await;
            stored.ok().flatten()?
        }
    };
    if acks.is_empty() {
        return None;
    }
    for r in republished {
        js.port
            .publish(&r.subject, None, Some(r.headers), r.payload);
    }
    Some(outcome(&target.name, origin, &seqs, acks))
}

/// What the PubAck bodies of a sourced batch say: the origin sequence to read from next
/// and the origin sequences stored.
fn outcome(
    target: &str,
    origin: &str,
    seqs: &[u64],
    acks: Vec<(String, bytes::Bytes)>,
) -> (u64, Vec<u64>) {
    let mut resume = seqs.last().map_or(0, |s| s + 1);
    let mut stored = Vec::new();
    for (reply, body) in acks {
        let Some(seq) = reply.parse::<usize>().ok().and_then(|i| seqs.get(i)) else {
            continue;
        };
        if body.windows(8).any(|w| w == b"\"error\":") {
            if *seq < resume {
                tracing::warn!(stream = %target, source = origin, seq,
                    "sourced message refused: {}", String::from_utf8_lossy(&body));
                resume = *seq;
            }
        } else {
            stored.push(*seq);
        }
    }
    (resume, stored)
}

/// Stores a mirror's batch with its origin's sequences (through the group when the
/// mirror is replicated): the origin sequence to go on from and whether a message was
/// refused (a batch the group did not commit counts as refused: read again after a
/// pause); `None` when the stream is closed.
pub(super) async fn store_mirror(target: &Arc<Stream>, batch: Vec<Moved>) -> Option<(u64, bool)> {
    let first = batch.first().map_or(0, |m| m.origin_seq);
    let batch: Vec<_> = batch
        .into_iter()
        .map(|m| (m.origin_seq, m.origin_ts, m.inbound))
        .collect();
    if let Some(r) = target.replica.get().cloned() {
        // The leader decides what the account's byte limit leaves room for.
        let mut batch = batch;
        let room = target.account_room(batch.iter().map(|m| &m.2));
        let cut = room < batch.len();
        if cut {
            tracing::warn!(stream = %target.name, seq = batch[room].0,
                "mirrored message refused: the account's storage limit is reached");
            batch.truncate(room);
        }
        if batch.is_empty() {
            return Some((first, true));
        }
        return match r.store_mirrored(batch).await {
            Some((next, refused)) => Some((next, refused || cut)),
            None if target.is_closed() => None,
            None => Some((first, true)),
        };
    }
    let t = target.clone();
    tokio::task::spawn_blocking(move || t.store_mirrored(batch))
        .await
        .ok()
        .flatten()
}

/// A header value as bytes (for tests).
#[cfg(test)]
fn header_block(value: &str) -> bytes::Bytes {
    bytes::Bytes::from(format!("NATS/1.0\r\n{STREAM_SOURCE}: {value}\r\n\r\n"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_its_own_source_header() {
        let h = header_block("ORDERS 42 orders.> > orders.1");
        let mine = ["ORDERS orders.> >".to_string()];
        assert_eq!(source_header(&h, &mine), Some(42));
        assert_eq!(source_header(&h, &["OTHER orders.> >".to_string()]), None);
        assert_eq!(source_header(&header_block("ORDERS x"), &mine), None);
    }
}
