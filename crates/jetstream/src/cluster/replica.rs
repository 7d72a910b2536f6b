//! A stream's replica on this node: its group and assignment, its `cluster` info, the
//! operations a leader sends through the group (purge, delete, consumer files), and the
//! publish path of a replicated stream.
//!
//! The leader subscribes the stream's subjects (every replica does until it knows a
//! leader: `interest.rs`); only the leader's ingest task takes the queued messages: it
//! proposes them as one entry
//! (group commit: while a proposal is in flight the queue fills, and the next entry
//! carries all of it), and once the entry is committed — fsynced in the logs of a
//! quorum — and applied (`machine.rs`), it publishes the PubAcks the apply produced.
//! Followers drop what they queued.

use std::sync::{Arc, Weak};
use std::time::Duration;

use bytes::Bytes;
use parking_lot::Mutex;
use petrel_replication::{Data, Group, NodeId};
use petrel_store::PurgeRequest;
use serde::Serialize;

use super::machine::{MsgsReply, StreamOp};
use super::meta::StreamAssignment;
use super::JsCluster;
use crate::errors::ApiError;
use crate::ingest::atomic::Unit;
use crate::port::Port;
use crate::stream::{Inbound, Stream};
use crate::time::now_nanos;

/// Most bytes of messages in one proposal (an AppendEntries carries up to 8 entries and
/// must stay under the routes' 8 MiB limit).
const PROPOSAL_BYTES: usize = 768 * 1024;
/// Most messages in one proposal.
const PROPOSAL_MSGS: usize = 4096;
/// Most proposals of one stream in flight.
const PIPELINE: usize = 4;

/// This node's replica of a stream.
pub(crate) struct Replica {
    pub group: Group,
    pub assignment: Mutex<StreamAssignment>,
    pub cluster: Weak<JsCluster>,
    /// Consumer checkpoints proposed and not yet committed (bounded by
    /// [`MAX_CHECKPOINTS`]: a newer one carries the same state).
    pub checkpoints: std::sync::atomic::AtomicUsize,
    /// Taken out of the stream; waiting for the leader to confirm it may stop.
    pub leaving: std::sync::atomic::AtomicBool,
    /// The leader confirmed this replica is out: the reconcile task removes it.
    pub left: std::sync::atomic::AtomicBool,
    /// This node leads and runs the stream's consumers: it decides retention.
    pub consumers_running: std::sync::atomic::AtomicBool,
    /// Messages retention removes, waiting to go through the group.
    pub removals: Mutex<Removals>,
    /// Source and mirror batches proposed and not yet applied (their proposals outlive a
    /// source task that is stopped), and the signal that they are all done.
    pub sourcing_in_flight: std::sync::atomic::AtomicUsize,
    pub sourcing_settled: tokio::sync::Notify,
    /// Whether this replica subscribes the stream's subjects (see `interest.rs`).
    pub interest: super::interest::Interest,
}

/// Retention removals waiting for a proposal, and whether one is being made.
#[derive(Default)]
pub(crate) struct Removals {
    seqs: std::collections::BTreeSet<u64>,
    proposing: bool,
}

/// Most sequences removed by one entry.
const REMOVALS_PER_ENTRY: usize = 16 * 1024;
/// Pause before proposing removals again that were not committed while still leading.
const REMOVAL_RETRY: Duration = Duration::from_millis(500);

/// Most consumer checkpoints in flight per stream.
const MAX_CHECKPOINTS: usize = 64;

/// `cluster` of a replicated stream's (and its consumers') info and of `/jsz`
/// (nats-server's `ClusterInfo`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ClusterInfo {
    /// The cluster's name.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// The stream group's name.
    pub raft_group: String,
    /// The group's leader (server name), when there is one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub leader: Option<String>,
    /// The other replicas, sorted by name.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub replicas: Vec<PeerInfo>,
}

/// One replica other than the leader.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PeerInfo {
    /// Its server name.
    pub name: String,
    /// Whether it holds every committed entry.
    pub current: bool,
    /// Not heard from lately.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub offline: bool,
    /// Nanoseconds since it was last heard.
    pub active: u64,
    /// Entries it lacks, as the leader sees it.
    #[serde(skip_serializing_if = "crate::json::is_default")]
    pub lag: u64,
    /// Its node id (hex), as nats-server's peer id.
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
                    peer: super::peer_hash(*id),
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
            state: state.to_vec().into(),
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
            state: state.into(),
        };
        self.group.propose(op.encode()).await.is_ok()
    }

    /// Whether this node leads the stream and runs its consumers.
    pub fn runs_consumers(&self) -> bool {
        self.consumers_running
            .load(std::sync::atomic::Ordering::Acquire)
            && self.group.is_leader()
    }

    /// Removes messages retention no longer needs, through the group, in the background
    /// (one proposal at a time carries everything gathered meanwhile). The set holds
    /// sequences of stored messages, so it is bounded by the stream. Removals this node
    /// cannot commit are proposed again while it still leads, dropped once it does not:
    /// the next leader's sweep finds them again.
    pub fn remove(self: &Arc<Self>, seqs: Vec<u64>) {
        let Ok(rt) = tokio::runtime::Handle::try_current() else {
            return;
        };
        {
            let mut r = self.removals.lock();
            r.seqs.extend(seqs);
            if r.proposing {
                return;
            }
            r.proposing = true;
        }
        let me = self.clone();
        rt.spawn(async move {
            loop {
                let seqs: Vec<u64> = {
                    let mut r = me.removals.lock();
                    let seqs: Vec<u64> = r.seqs.iter().take(REMOVALS_PER_ENTRY).copied().collect();
                    if seqs.is_empty() {
                        r.proposing = false;
                        return;
                    }
                    for s in &seqs {
                        r.seqs.remove(s);
                    }
                    seqs
                };
                let op = StreamOp::Remove { seqs };
                if let Err(e) = me.group.propose(op.encode()).await {
                    tracing::debug!(group = %me.group.name, error = %e, "retention removals not committed");
                    if let (true, StreamOp::Remove { seqs }) = (me.runs_consumers(), op) {
                        // Still leading (a stepdown that did not happen): again shortly.
                        me.removals.lock().seqs.extend(seqs);
                        tokio::time::sleep(REMOVAL_RETRY).await;
                        continue;
                    }
                    let mut r = me.removals.lock();
                    r.seqs.clear();
                    r.proposing = false;
                    return;
                }
            }
        });
    }

    /// Stores a sourcing stream's batch through the group (each message's `reply` is its
    /// index, as [`Stream::process_batch`] takes it): the PubAck bodies by index and the
    /// republished copies, once committed and applied here; `None` when not committed.
    pub async fn store_sourced(self: &Arc<Self>, batch: &[Inbound]) -> Option<MsgsReply> {
        let op = super::machine::encode_msgs(now_nanos(), batch);
        let reply = self.propose_sourcing(op).await?;
        postcard::from_bytes(&reply).ok()
    }

    /// Proposes a source task's batch on a task of its own, counted in
    /// `sourcing_in_flight` until applied here: a source task stopped meanwhile (a config
    /// change restarts it) does not cancel it, and the next one waits for it
    /// ([`Replica::sourcing_settled`]) before it looks where to resume.
    async fn propose_sourcing(self: &Arc<Self>, op: Vec<u8>) -> Option<Vec<u8>> {
        use std::sync::atomic::Ordering;
        self.sourcing_in_flight.fetch_add(1, Ordering::AcqRel);
        let me = self.clone();
        let proposal = tokio::spawn(async move {
            let reply = me.group.propose(op).await.ok();
            if me.sourcing_in_flight.fetch_sub(1, Ordering::AcqRel) == 1 {
                me.sourcing_settled.notify_waiters();
            }
            reply
        });
        proposal.await.ok().flatten()
    }

    /// Waits until no source or mirror batch is in flight.
    pub async fn sourcing_settled(&self) {
        use std::sync::atomic::Ordering;
        loop {
            let settled = self.sourcing_settled.notified();
            tokio::pin!(settled);
            settled.as_mut().enable();
            if self.sourcing_in_flight.load(Ordering::Acquire) == 0 {
                return;
            }
            settled.await;
        }
    }

    /// Stores a mirror's batch through the group, with the origin's sequences and times:
    /// as [`Stream::store_mirrored`]; `None` when not committed.
    pub async fn store_mirrored(
        self: &Arc<Self>,
        msgs: Vec<(u64, i64, Inbound)>,
    ) -> Option<(u64, bool)> {
        let msgs = msgs
            .into_iter()
            .map(|(seq, ts, m)| {
                let headers = m.headers.map(|h| Data(h.to_vec()));
                (seq, ts, m.subject, headers, Data(m.payload.to_vec()))
            })
            .collect();
        let reply = self
            .propose_sourcing(StreamOp::Mirrored { msgs }.encode())
            .await?;
        postcard::from_bytes::<Option<(u64, bool)>>(&reply).ok()?
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

/// The ingest task of a replicated stream (see the module comment).
pub(crate) async fn ingest(stream: Arc<Stream>, port: Arc<dyn Port>, replica: Arc<Replica>) {
    let _closer = crate::ingest::CloseOnDrop(stream.queue.clone());
    let in_flight = Arc::new(tokio::sync::Semaphore::new(PIPELINE));
    let mut cmds = Vec::new();
    loop {
        stream
            .queue
            .recv(PROPOSAL_MSGS, PROPOSAL_BYTES, &mut cmds)
            .await;
        let (batch, close) = crate::ingest::split(&mut cmds);
        if !batch.is_empty() && replica.group.is_leader() {
            for unit in stream.sort_batches(batch) {
                let (batch, atomic) = match unit {
                    Unit::Replies(replies) => {
                        port.publish_replies(replies);
                        continue;
                    }
                    Unit::Plain(batch) => (batch, false),
                    Unit::Atomic(batch) => (batch, true),
                };
                // Up to PIPELINE entries in flight: openraft appends (and fsyncs) what
                // has gathered in one go; the queue keeps filling meanwhile.
                let Ok(permit) = in_flight.clone().acquire_owned().await else {
                    return;
                };
                let (s, p, r) = (stream.clone(), port.clone(), replica.clone());
                tokio::spawn(async move {
                    propose_batch(&s, p.as_ref(), &r, batch, atomic).await;
                    drop(permit);
                });
            }
        }
        if let Some(tx) = close {
            // Every proposal in flight ends before the store closes.
            let _ = in_flight.acquire_many(PIPELINE as u32).await;
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
async fn propose_batch(
    stream: &Stream,
    port: &dyn Port,
    replica: &Replica,
    batch: Vec<Inbound>,
    atomic: bool,
) {
    let (batch, refused) = admit(stream, batch, atomic);
    if !refused.is_empty() && !stream.config().no_ack {
        port.publish_replies(refused);
    }
    if batch.is_empty() {
        return;
    }
    let op = if atomic {
        super::machine::encode_atomic(now_nanos(), &batch)
    } else {
        super::machine::encode_msgs(now_nanos(), &batch)
    };
    let mut replies: Vec<Option<String>> = batch.into_iter().map(|m| m.reply).collect();
    let reply = match replica.group.propose(op).await {
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
            Some(Bytes::from(headers.0)),
            Bytes::from(payload.0),
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
            Some((to, Bytes::from(body.0)))
        })
        .collect();
    port.publish_replies(acks);
}

/// The messages of `batch` the account's byte limit leaves room for on this node, the
/// leader (an atomic batch whole or not at all), and the PubAcks of the others: the
/// replicas store what the entry holds without deciding again.
fn admit(
    stream: &Stream,
    batch: Vec<Inbound>,
    atomic: bool,
) -> (Vec<Inbound>, Vec<(String, Bytes)>) {
    if !stream.account_limited() {
        return (batch, Vec::new());
    }
    if atomic {
        if stream.account_room(&batch) == batch.len() {
            return (batch, Vec::new());
        }
        let commit = batch.last().and_then(|m| m.reply.clone());
        let refused = commit.filter(|r| !r.is_empty());
        return (
            Vec::new(),
            refused
                .map(|r| (r, stream.account_refusal()))
                .into_iter()
                .collect(),
        );
    }
    let mut pending = 0;
    let mut refused = Vec::new();
    let kept = batch
        .into_iter()
        .filter_map(|m| {
            if stream.account_fits(&mut pending, &m) {
                return Some(m);
            }
            if let Some(r) = m.reply.filter(|r| !r.is_empty()) {
                refused.push((r, stream.account_refusal()));
            }
            None
        })
        .collect();
    (kept, refused)
}
