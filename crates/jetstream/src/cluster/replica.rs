//! A stream's replica on this node: its stream group, the machine that applies the
//! group's entries to the local store, the publish path of a replicated stream, and the
//! reconcile task that opens and removes replicas as the meta group assigns them.
//!
//! Every replica subscribes the stream's subjects (a publish reaches each of them once);
//! only the leader's ingest task takes the queued messages: it proposes them as one entry
//! (group commit: while a proposal is in flight the queue fills, and the next entry
//! carries all of it), and once the entry is committed — fsynced in the logs of a
//! quorum — and applied, it publishes the PubAcks the apply produced. Followers drop what
//! they queued. Apply runs the same checks (dedup, expected headers, limits) with the
//! leader's timestamp, so every replica stores the same sequences.
//!
//! The Raft log is the write-ahead log: `applied.json` records the last applied entry and
//! the store's last sequence after it. A replica whose store does not match it on open (a
//! crash between the two writes) rebuilds its store from the log.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Weak};
use std::time::Duration;

use bytes::Bytes;
use parking_lot::Mutex;
use petrel_replication::{
    BasicNode, EntryPayload, Group, GroupEntry, LogId, Machine, NodeId, StoredMembership,
};
use petrel_store::{Backend, PurgeRequest};
use serde::{Deserialize, Serialize};
use tokio::sync::{mpsc, watch};

use super::meta::StreamAssignment;
use super::{cluster_dir, JsCluster};
use crate::errors::ApiError;
use crate::jetstream::JetStream;
use crate::port::Port;
use crate::stream::{Cmd, Inbound, Stream};
use crate::time::now_nanos;

/// Most bytes of messages in one proposal (an AppendEntries carries up to 8 entries and
/// must stay under the routes' 8 MiB limit).
const PROPOSAL_BYTES: usize = 768 * 1024;
/// Most messages in one proposal.
const PROPOSAL_MSGS: usize = 4096;
/// The record of the last applied entry.
const APPLIED: &str = "applied.json";

/// This node's replica of a stream.
pub(crate) struct Replica {
    pub group: Group,
    pub assignment: Mutex<StreamAssignment>,
    pub cluster: Weak<JsCluster>,
    /// Consumer checkpoints proposed and not yet committed (bounded by
    /// [`MAX_CHECKPOINTS`]: a newer one carries the same state).
    checkpoints: std::sync::atomic::AtomicUsize,
}

/// Most consumer checkpoints in flight per stream.
const MAX_CHECKPOINTS: usize = 64;

/// `cluster` of a stream info (nats-server's `ClusterInfo`).
#[derive(Debug, Clone, Serialize)]
pub(crate) struct ClusterInfo {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// The stream group's name.
    pub raft_group: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub leader: Option<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub replicas: Vec<PeerInfo>,
}

/// One replica other than the leader.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct PeerInfo {
    pub name: String,
    pub current: bool,
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub offline: bool,
    /// Nanoseconds since it was last heard.
    pub active: u64,
    #[serde(skip_serializing_if = "crate::json::is_default")]
    pub lag: u64,
    pub peer: String,
}

impl Replica {
    /// The group's view for a stream info: leader and the other replicas (with their lag
    /// as the leader sees it), sorted by name.
    pub fn cluster_info(&self) -> ClusterInfo {
        let cluster = self.cluster.upgrade();
        let m = self.group.metrics();
        let leader = m.current_leader;
        let name_of = |id: NodeId| {
            cluster
                .as_ref()
                .and_then(|c| c.name_of(id))
                .unwrap_or_else(|| format!("{id:016x}"))
        };
        let last = m.last_log_index.unwrap_or(0);
        let matched = m.replication.clone().unwrap_or_default();
        let mut replicas: Vec<PeerInfo> = self
            .assignment
            .lock()
            .peers
            .iter()
            .filter(|(id, _)| Some(*id) != leader)
            .map(|(id, name)| {
                let heard = cluster.as_ref().and_then(|c| {
                    if *id == c.me {
                        Some(Duration::ZERO)
                    } else {
                        c.last_heard(*id)
                    }
                });
                let at = matched.get(id).copied().flatten().map_or(0, |l| l.index);
                let lag = if m.state.is_leader() {
                    last.saturating_sub(at)
                } else {
                    0
                };
                PeerInfo {
                    name: name.clone(),
                    current: lag == 0 && heard.is_some_and(|h| h < Duration::from_secs(5)),
                    offline: heard.is_none_or(|h| h >= Duration::from_secs(5)),
                    active: heard.map_or(0, |h| u64::try_from(h.as_nanos()).unwrap_or(u64::MAX)),
                    lag,
                    peer: format!("{:08x}", id >> 32),
                }
            })
            .collect();
        replicas.sort_by(|a, b| a.name.cmp(&b.name));
        ClusterInfo {
            name: cluster.as_ref().map(|c| c.config.cluster_name.clone()),
            raft_group: self.group.name.to_string(),
            leader: leader.map(name_of),
            replicas,
        }
    }

    /// Proposes `op` and waits for this node's apply of it; from a blocking thread (an
    /// API handler). The reply is the apply's.
    fn propose_blocking(&self, op: &StreamOp) -> Result<Vec<u8>, ApiError> {
        if !self.group.is_leader() {
            return Err(ApiError::cluster_not_available());
        }
        let body = op.encode();
        let handle = tokio::runtime::Handle::current();
        handle
            .block_on(self.group.propose(body))
            .map_err(|_| ApiError::cluster_not_available())
    }

    /// Tells the followers about a durable consumer's metadata (created or updated here,
    /// the leader). From a blocking thread.
    pub fn consumer_meta(&self, name: &str, meta: &crate::consumer::persist::ConsumerMeta) {
        let Ok(meta) = serde_json::to_vec(meta) else {
            return;
        };
        let op = StreamOp::ConsumerMeta {
            name: name.to_string(),
            meta,
        };
        if let Err(e) = self.propose_blocking(&op) {
            tracing::warn!(consumer = name, error = %e.description, "consumer not replicated");
        }
    }

    /// Tells the followers a durable consumer was deleted. From a blocking thread.
    pub fn consumer_deleted(&self, name: &str) {
        let op = StreamOp::ConsumerDelete {
            name: name.to_string(),
        };
        if let Err(e) = self.propose_blocking(&op) {
            tracing::warn!(consumer = name, error = %e.description, "consumer delete not replicated");
        }
    }

    /// Sends the followers a checkpoint of a durable consumer's state, in the background
    /// (skipped while [`MAX_CHECKPOINTS`] are in flight).
    pub fn checkpoint(self: &Arc<Self>, name: &str, state: &[u8]) {
        use std::sync::atomic::Ordering;
        if !self.group.is_leader() {
            return;
        }
        let Ok(rt) = tokio::runtime::Handle::try_current() else {
            return;
        };
        if self.checkpoints.fetch_add(1, Ordering::AcqRel) >= MAX_CHECKPOINTS {
            self.checkpoints.fetch_sub(1, Ordering::AcqRel);
            return;
        }
        let op = StreamOp::ConsumerState {
            name: name.to_string(),
            state: state.to_vec(),
        };
        let me = self.clone();
        rt.spawn(async move {
            let _ = me.group.propose(op.encode()).await;
            me.checkpoints.fetch_sub(1, Ordering::AcqRel);
        });
    }

    /// Proposes a checkpoint of a durable consumer's state and waits for its commit;
    /// whether it was committed.
    pub async fn checkpoint_wait(&self, name: &str, state: Vec<u8>) -> bool {
        let op = StreamOp::ConsumerState {
            name: name.to_string(),
            state,
        };
        self.group.propose(op.encode()).await.is_ok()
    }

    /// A purge through the group: every replica purges at the same point.
    pub fn purge(&self, req: PurgeRequest) -> Result<u64, ApiError> {
        let reply = self.propose_blocking(&StreamOp::Purge(req))?;
        serde_json::from_slice::<Result<u64, ApiError>>(&reply)
            .map_err(|_| ApiError::cluster_not_available())?
    }

    /// A message delete through the group.
    pub fn delete_msg(&self, seq: u64, erase: bool) -> Result<(), ApiError> {
        let reply = self.propose_blocking(&StreamOp::Delete { seq, erase })?;
        serde_json::from_slice::<Result<(), ApiError>>(&reply)
            .map_err(|_| ApiError::cluster_not_available())?
    }
}

/// One entry of a stream group.
#[derive(Debug, Serialize, Deserialize)]
pub(crate) enum StreamOp {
    /// Publishes, stored with the leader's timestamp.
    Msgs {
        ts: i64,
        msgs: Vec<(String, Option<Vec<u8>>, Vec<u8>)>,
    },
    /// A purge.
    Purge(PurgeRequest),
    /// A message delete.
    Delete { seq: u64, erase: bool },
    /// A durable consumer's `meta.json` (created or updated on the leader).
    ConsumerMeta { name: String, meta: Vec<u8> },
    /// A checkpoint of a durable consumer's `state.json`.
    ConsumerState { name: String, state: Vec<u8> },
    /// A durable consumer deleted.
    ConsumerDelete { name: String },
}

impl StreamOp {
    fn encode(&self) -> Vec<u8> {
        postcard::to_stdvec(self).unwrap_or_default()
    }
}

/// What applying a `Msgs` entry gives its proposer.
#[derive(Debug, Default, Serialize, Deserialize)]
struct MsgsReply {
    /// PubAck bodies by the message's index in the entry.
    acks: Vec<(u32, Vec<u8>)>,
    /// Republished copies: subject, headers, payload.
    republish: Vec<(String, Vec<u8>, Vec<u8>)>,
}

/// `applied.json`.
#[derive(Debug, Default, Serialize, Deserialize)]
struct Applied {
    log_id: Option<LogId<NodeId>>,
    membership: StoredMembership<NodeId, BasicNode>,
    last_seq: u64,
}

/// Applies a stream group's entries to the local store.
struct StreamMachine {
    stream: Arc<Stream>,
    dir: PathBuf,
    backend: Arc<dyn Backend>,
    sync: petrel_store::SyncMode,
    applied: Mutex<Applied>,
}

impl StreamMachine {
    fn save(&self, applied: &Applied) {
        let Ok(bytes) = serde_json::to_vec(applied) else {
            return;
        };
        // Not fsynced: a stale record only makes the next open rebuild from the log.
        if let Err(e) =
            petrel_store::write_atomic(self.backend.as_ref(), &self.dir, APPLIED, &bytes, false)
        {
            tracing::warn!(stream = %self.stream.name, error = %e, "recording the applied entry failed");
        }
    }

    fn apply_op(&self, op: StreamOp) -> Vec<u8> {
        match op {
            StreamOp::Msgs { ts, msgs } => {
                let mut batch: Vec<Inbound> = msgs
                    .into_iter()
                    .enumerate()
                    .map(|(i, (subject, headers, payload))| Inbound {
                        subject,
                        reply: Some(i.to_string()),
                        headers: headers.map(Bytes::from),
                        payload: Bytes::from(payload),
                    })
                    .collect();
                let mut republished = Vec::new();
                let acks = self
                    .stream
                    .process_batch_at(&mut batch, ts, &mut republished);
                let reply = MsgsReply {
                    acks: acks
                        .into_iter()
                        .filter_map(|(i, body)| Some((i.parse().ok()?, body.to_vec())))
                        .collect(),
                    republish: republished
                        .into_iter()
                        .map(|r| (r.subject, r.headers.to_vec(), r.payload.to_vec()))
                        .collect(),
                };
                postcard::to_stdvec(&reply).unwrap_or_default()
            }
            StreamOp::Purge(req) => {
                serde_json::to_vec(&self.stream.purge_local(req)).unwrap_or_default()
            }
            StreamOp::Delete { seq, erase } => {
                serde_json::to_vec(&self.stream.delete_msg_local(seq, erase)).unwrap_or_default()
            }
            op => {
                self.apply_consumer(op);
                Vec::new()
            }
        }
    }

    /// A consumer op: followers keep the leader's consumer files, so the consumer comes
    /// back where it was when one of them leads. The leader (whose consumer wrote its
    /// own, newer files) skips it.
    fn apply_consumer(&self, op: StreamOp) {
        use crate::consumer::persist;
        let leading = self
            .stream
            .replica
            .get()
            .is_some_and(|r| r.group.is_leader());
        let Some(root) = self.stream.dir.as_ref().map(|d| persist::consumers_dir(d)) else {
            return;
        };
        let backend = self.backend.as_ref();
        let done = match op {
            StreamOp::ConsumerMeta { name, meta } if !leading => {
                match serde_json::from_slice::<persist::ConsumerMeta>(&meta) {
                    Ok(m) => persist::write_meta(backend, &root.join(name), &m),
                    Err(e) => Err(std::io::Error::other(e)),
                }
            }
            StreamOp::ConsumerState { name, state } if !leading => {
                let dir = root.join(name);
                if backend.exists(&dir) {
                    persist::write_state(backend, &dir, &state, false)
                } else {
                    Ok(())
                }
            }
            StreamOp::ConsumerDelete { name }
                if !self.stream.consumers.read().contains_key(&name) =>
            {
                persist::remove(backend, &root.join(name))
            }
            _ => Ok(()),
        };
        if let Err(e) = done {
            tracing::warn!(stream = %self.stream.name, error = %e, "replicating a consumer's files failed");
        }
    }
}

impl Machine for StreamMachine {
    fn log_opened(&self, last_index: Option<u64>) {
        let mut applied = self.applied.lock();
        let Some(at) = applied.log_id.map(|l| l.index) else {
            return;
        };
        if last_index.is_some_and(|last| last >= at) {
            return;
        }
        // The log was cut below what the store holds (a torn or corrupt tail): the store
        // is rebuilt from the entries the group sends, never trusted past the log.
        tracing::warn!(stream = %self.stream.name, applied = at, log_ends = ?last_index,
            "replica log ends before its last applied entry; rebuilding the store");
        if let Err(e) = self.stream.reset(self.sync) {
            tracing::error!(stream = %self.stream.name, error = %e, "resetting the replica store failed");
        }
        let _ = self.backend.remove(&self.dir.join(APPLIED));
        *applied = Applied::default();
    }

    fn restored(&self) -> (Option<LogId<NodeId>>, StoredMembership<NodeId, BasicNode>) {
        let a = self.applied.lock();
        (a.log_id, a.membership.clone())
    }

    fn apply(&self, entries: Vec<GroupEntry>) -> Vec<Vec<u8>> {
        let mut out = Vec::with_capacity(entries.len());
        let mut applied = self.applied.lock();
        if self.stream.is_closed() {
            // Shutting down: what is not stored is not recorded as applied either, so
            // the next start applies it again.
            return vec![Vec::new(); entries.len()];
        }
        for e in entries {
            let reply = match e.payload {
                EntryPayload::Normal(data) => match postcard::from_bytes::<StreamOp>(&data) {
                    Ok(op) => self.apply_op(op),
                    Err(err) => {
                        tracing::error!(stream = %self.stream.name, index = e.log_id.index,
                            error = %err, "unreadable stream entry skipped");
                        Vec::new()
                    }
                },
                EntryPayload::Membership(m) => {
                    applied.membership = StoredMembership::new(Some(e.log_id), m);
                    Vec::new()
                }
                EntryPayload::Blank => Vec::new(),
            };
            applied.log_id = Some(e.log_id);
            out.push(reply);
        }
        applied.last_seq = self.stream.last_seq();
        self.save(&applied);
        out
    }
}

/// Opens the store of a replica and what it had applied; a store that does not match
/// its record is emptied (the log rebuilds it). Blocking.
fn open_store(
    js: &JetStream,
    dir: &Path,
    a: &StreamAssignment,
) -> Result<(Arc<Stream>, Applied), String> {
    let backend = js.config.backend.clone();
    let streams_dir = dir.join("stream");
    backend
        .create_dir_all(&streams_dir)
        .map_err(|e| e.to_string())?;
    let stream = Stream::open(
        a.config.clone(),
        a.created,
        &streams_dir,
        js.config.sync,
        backend.clone(),
    )
    .map_err(|e| e.to_string())?;
    let applied: Applied = petrel_store::read_all(backend.as_ref(), &dir.join(APPLIED))
        .ok()
        .and_then(|b| serde_json::from_slice(&b).ok())
        .unwrap_or_default();
    if applied.log_id.is_some() && stream.last_seq() == applied.last_seq {
        // Every record is read back once: a corrupt one (a flipped bit the store's
        // checkpointed recovery did not read) makes the replica rebuild from the log.
        let Some(why) = stream.scrub() else {
            return Ok((stream, applied));
        };
        tracing::warn!(stream = %a.config.name, "replica store failed its check ({why}); rebuilding it from the log");
        stream.reset(js.config.sync).map_err(|e| e.to_string())?;
        let _ = backend.remove(&dir.join(APPLIED));
        return Ok((stream, Applied::default()));
    }
    if stream.last_seq() != 0 || applied.log_id.is_some() {
        tracing::warn!(stream = %a.config.name, store_last = stream.last_seq(), applied_last = applied.last_seq,
            "replica store does not match its applied record; rebuilding it from the log");
        stream.reset(js.config.sync).map_err(|e| e.to_string())?;
        let _ = backend.remove(&dir.join(APPLIED));
    }
    Ok((stream, Applied::default()))
}

/// Opens this node's replica of `a` and starts its group.
async fn open(c: &Arc<JsCluster>, js: &Arc<JetStream>, a: StreamAssignment) -> Result<(), String> {
    let dir = cluster_dir(&c.config.store_dir).join(&a.group);
    let (j, d, a2) = (js.clone(), dir.clone(), a.clone());
    let (stream, applied) = tokio::task::spawn_blocking(move || open_store(&j, &d, &a2))
        .await
        .map_err(|e| e.to_string())??;
    let machine = Arc::new(StreamMachine {
        stream: stream.clone(),
        dir: dir.clone(),
        backend: js.config.backend.clone(),
        sync: js.config.sync,
        applied: Mutex::new(applied),
    });
    let group = Group::open(
        &a.group,
        c.me,
        &dir.join("raft"),
        js.config.backend.clone(),
        machine,
        c.transport.clone(),
        c.config.timing,
    )
    .await
    .map_err(|e| e.to_string())?;
    c.registry.insert(group.clone());
    let members = a.peers.iter().cloned().collect();
    let replica = Arc::new(Replica {
        group: group.clone(),
        assignment: Mutex::new(a.clone()),
        cluster: Arc::downgrade(c),
        checkpoints: Default::default(),
    });
    let _ = stream.replica.set(replica);
    js.register(stream.clone());
    tokio::spawn(follow_leadership(
        Arc::downgrade(js),
        Arc::downgrade(&stream),
        group.clone(),
    ));
    group.initialize(members).await?;
    tracing::info!(stream = %a.config.name, group = %a.group, "stream replica started");
    Ok(())
}

/// Runs the stream's durable consumers on this node while it leads the stream's group:
/// recovered from their files (the followers' copies, kept by the group) when it becomes
/// leader, stopped (state written) when it stops leading.
async fn follow_leadership(js: Weak<JetStream>, stream: Weak<Stream>, group: Group) {
    let mut metrics = group.watch();
    let mut leading = false;
    loop {
        let now = metrics.borrow().current_leader == Some(group.me);
        if now != leading {
            leading = now;
            let (Some(j), Some(s)) = (js.upgrade(), stream.upgrade()) else {
                return;
            };
            tracing::info!(stream = %s.name, leader = now, "JetStream cluster: stream leadership changed");
            let _ = tokio::task::spawn_blocking(move || {
                if s.is_closed() {
                    return;
                }
                if now {
                    j.recover_consumers(&s);
                } else {
                    j.close_consumers(&s);
                    s.consumers.write().clear();
                }
            })
            .await;
        }
        if metrics.changed().await.is_err() {
            return;
        }
    }
}

/// Stops this node's replica of `stream` and removes its files.
async fn remove(c: &JsCluster, js: &Arc<JetStream>, stream: Arc<Stream>, replica: Arc<Replica>) {
    js.unregister(&stream.name);
    let _ = tokio::time::timeout(Duration::from_secs(10), stream.request_close()).await;
    replica.group.shutdown().await;
    c.registry.remove(&replica.group.name);
    stream.release_usage();
    let dir = cluster_dir(&c.config.store_dir).join(&*replica.group.name);
    let backend = js.config.backend.clone();
    let _ = tokio::task::spawn_blocking(move || backend.remove_dir_all(&dir)).await;
    tracing::info!(stream = %stream.name, "stream replica removed");
}

/// Carries out one assignment change on this node.
async fn reconcile(c: &Arc<JsCluster>, account: &str, name: &str) {
    let Some(js) = c.account(account) else {
        tracing::debug!(account, stream = name, "reconcile: account not attached");
        return;
    };
    let _one = c.reconciling.lock().await;
    tracing::debug!(account, stream = name, "reconcile");
    let want = c.state.stream(account, name).filter(|a| a.has(c.me));
    let have = js
        .stream(name)
        .and_then(|s| s.replica.get().cloned().map(|r| (s, r)));
    match (want, have) {
        (Some(a), Some((s, r))) if *r.group.name == *a.group => {
            if s.config() != a.config {
                let (cfg, s2) = (a.config.clone(), s.clone());
                let old = s.config();
                let applied = tokio::task::spawn_blocking(move || s2.apply_config(cfg)).await;
                if matches!(applied, Ok(Ok(()))) {
                    let added: Vec<String> = a
                        .config
                        .subjects
                        .iter()
                        .filter(|x| !old.subjects.contains(x))
                        .cloned()
                        .collect();
                    let removed: Vec<String> = old
                        .subjects
                        .iter()
                        .filter(|x| !a.config.subjects.contains(x))
                        .cloned()
                        .collect();
                    js.unsubscribe(&s, Some(&removed));
                    js.subscribe(&s, &added);
                }
            }
            *r.assignment.lock() = a;
        }
        (want, Some((s, r))) => {
            remove(c, &js, s, r).await;
            if let Some(a) = want {
                if let Err(e) = open(c, &js, a).await {
                    tracing::error!(stream = name, "opening the stream replica failed: {e}");
                }
            }
        }
        (Some(a), None) => {
            if let Err(e) = open(c, &js, a).await {
                tracing::error!(stream = name, "opening the stream replica failed: {e}");
            }
        }
        (None, None) => {}
    }
}

/// Takes assignment changes off the queue, one at a time.
pub(super) async fn reconcile_loop(
    cluster: Weak<JsCluster>,
    mut rx: mpsc::Receiver<(String, String)>,
    mut stop: watch::Receiver<bool>,
) {
    loop {
        let (account, name) = tokio::select! {
            got = rx.recv() => match got { Some(k) => k, None => return },
            _ = stop.changed() => return,
        };
        let Some(c) = cluster.upgrade() else { return };
        reconcile(&c, &account, &name).await;
    }
}

/// The ingest task of a replicated stream (see the module comment).
pub(crate) async fn ingest(stream: Arc<Stream>, port: Arc<dyn Port>, replica: Arc<Replica>) {
    let _closer = crate::ingest::CloseOnDrop(stream.queue.clone());
    let mut cmds = Vec::new();
    loop {
        stream
            .queue
            .recv(PROPOSAL_MSGS, PROPOSAL_BYTES, &mut cmds)
            .await;
        let mut batch = Vec::with_capacity(cmds.len());
        let mut close = None;
        for cmd in cmds.drain(..) {
            match cmd {
                Cmd::Msg(m) if close.is_none() => batch.push(m),
                Cmd::Msg(_) => {}
                Cmd::Close(tx) => close = Some(tx),
            }
        }
        if !batch.is_empty() && replica.group.is_leader() {
            propose_batch(&stream, port.as_ref(), &replica, batch).await;
        }
        if let Some(tx) = close {
            let s = stream.clone();
            let _ = tokio::task::spawn_blocking(move || s.close_store()).await;
            let _ = tx.send(());
            return;
        }
    }
}

/// Proposes one batch and, once applied, publishes its republished copies and PubAcks.
/// A batch the group does not commit (leadership lost) gets no PubAck: its publishers
/// time out and retry, and their `Nats-Msg-Id`s keep a retry from storing twice.
async fn propose_batch(stream: &Stream, port: &dyn Port, replica: &Replica, batch: Vec<Inbound>) {
    let mut replies = Vec::with_capacity(batch.len());
    let msgs = batch
        .into_iter()
        .map(|m| {
            replies.push(m.reply);
            (m.subject, m.headers.map(|h| h.to_vec()), m.payload.to_vec())
        })
        .collect();
    let op = StreamOp::Msgs {
        ts: now_nanos(),
        msgs,
    };
    let reply = match replica.group.propose(op.encode()).await {
        Ok(r) => r,
        Err(e) => {
            tracing::debug!(stream = %stream.name, error = %e, "batch not committed");
            return;
        }
    };
    let Ok(reply) = postcard::from_bytes::<MsgsReply>(&reply) else {
        return;
    };
    for (subject, headers, payload) in reply.republish {
        port.publish(
            &subject,
            None,
            Some(Bytes::from(headers)),
            Bytes::from(payload),
        );
    }
    let acks = reply
        .acks
        .into_iter()
        .filter_map(|(i, body)| {
            let to = replies
                .get_mut(i as usize)?
                .take()
                .filter(|r| !r.is_empty())?;
            Some((to, Bytes::from(body)))
        })
        .collect();
    port.publish_replies(acks);
}
