//! The state machine of a stream group: [`StreamOp`] entries applied to this node's
//! store with the leader's timestamp (so every replica stores the same sequences), the
//! consumer files the followers keep for the next leader, and `applied.json` — the last
//! applied entry and the store's last sequence after it. A store that does not match its
//! record, fails its read-back check, or holds more than the log (a cut tail) is emptied
//! and rebuilt from the log.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use bytes::Bytes;
use parking_lot::Mutex;
use petrel_replication::{
    BasicNode, EntryPayload, GroupEntry, LogId, Machine, NodeId, StoredMembership,
};
use petrel_store::{Backend, PurgeRequest};
use serde::{Deserialize, Serialize};

use super::meta::StreamAssignment;
use crate::jetstream::JetStream;
use crate::stream::{Inbound, Stream};

/// The record of the last applied entry.
const APPLIED: &str = "applied.json";

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
    pub(super) fn encode(&self) -> Vec<u8> {
        postcard::to_stdvec(self).unwrap_or_default()
    }
}

/// What applying a `Msgs` entry gives its proposer.
#[derive(Debug, Default, Serialize, Deserialize)]
pub(super) struct MsgsReply {
    /// PubAck bodies by the message's index in the entry.
    pub acks: Vec<(u32, Vec<u8>)>,
    /// Republished copies: subject, headers, payload.
    pub republish: Vec<(String, Vec<u8>, Vec<u8>)>,
}

/// `applied.json`.
#[derive(Debug, Default, Serialize, Deserialize)]
pub(super) struct Applied {
    log_id: Option<LogId<NodeId>>,
    membership: StoredMembership<NodeId, BasicNode>,
    last_seq: u64,
}

/// Applies a stream group's entries to the local store.
pub(super) struct StreamMachine {
    pub stream: Arc<Stream>,
    pub dir: PathBuf,
    pub backend: Arc<dyn Backend>,
    pub sync: petrel_store::SyncMode,
    pub applied: Mutex<Applied>,
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
pub(super) fn open_store(
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
