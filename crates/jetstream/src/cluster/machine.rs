//! The state machine of a stream group: [`StreamOp`] entries applied to this node's
//! store with the leader's timestamp (so every replica stores the same sequences), the
//! consumer files the followers keep for the next leader, and the applied record
//! (`applied.rs`). A store that does not match its record, fails its read-back check, or
//! holds more than the log (a cut tail) is emptied and rebuilt from the group's snapshot
//! and the log. A snapshot is the archive of the replica's files (store and consumers,
//! one consistent cut); installing one replaces them.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;

use bytes::Bytes;
use parking_lot::Mutex;
use petrel_replication::snapshot::Meta as SnapshotMeta;
use petrel_replication::{
    BasicNode, Data, EntryPayload, GroupEntry, LogId, Machine, MachineSnapshot, NodeId,
    StoredMembership, Unappliable,
};
use petrel_store::{Backend, PurgeRequest};
use serde::{Deserialize, Serialize};

use super::applied::{Applied, AppliedLog};
use super::meta::StreamAssignment;
use crate::jetstream::JetStream;
use crate::republish::Republished;
use crate::stream::{Inbound, Stream};

/// How a replica's store syncs: the Raft log, fsynced before every acknowledgement, is
/// the write-ahead log, so the store is written at once and fsynced every second; after
/// a crash a store that lost its tail disagrees with the applied record and is rebuilt.
pub(super) const REPLICA_SYNC: petrel_store::SyncMode =
    petrel_store::SyncMode::Interval(std::time::Duration::from_secs(1));

/// One entry of a stream group.
#[derive(Debug, Serialize, Deserialize)]
pub(crate) enum StreamOp {
    /// Publishes, stored with the leader's timestamp: subject, headers, payload (written
    /// by [`encode_msgs`]).
    Msgs {
        ts: i64,
        msgs: Vec<(String, Option<Data>, Data)>,
    },
    /// A purge.
    Purge(PurgeRequest),
    /// A message delete.
    Delete { seq: u64, erase: bool },
    /// A durable consumer's `meta.json` (created or updated on the leader).
    ConsumerMeta { name: String, meta: Vec<u8> },
    /// A checkpoint of a durable consumer's `state.json`.
    ConsumerState { name: String, state: Data },
    /// A durable consumer deleted.
    ConsumerDelete { name: String },
    /// Messages the leader's retention (interest, work queue) no longer needs.
    Remove { seqs: Vec<u64> },
    /// A mirror's messages, stored with their origin's sequences and times: sequence,
    /// time, subject, headers, payload.
    Mirrored {
        msgs: Vec<(u64, i64, String, Option<Data>, Data)>,
    },
    /// A committed atomic batch, stored all or none with the leader's timestamp (as
    /// [`StreamOp::Msgs`]; the last message's PubAck names the batch).
    Atomic {
        ts: i64,
        msgs: Vec<(String, Option<Data>, Data)>,
    },
}

impl StreamOp {
    pub(super) fn encode(&self) -> Vec<u8> {
        postcard::to_stdvec(self).unwrap_or_default()
    }
}

/// Encodes a [`StreamOp::Msgs`] straight from the queued messages, into one buffer sized
/// up front (no owned copy of each message first, no regrowth).
pub(super) fn encode_msgs(ts: i64, batch: &[Inbound]) -> Vec<u8> {
    /// Bytes written as one byte string, as [`Data`] is.
    struct Raw<'a>(&'a [u8]);
    impl Serialize for Raw<'_> {
        fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
            s.serialize_bytes(self.0)
        }
    }
    /// [`StreamOp`]'s first variant, borrowed.
    #[derive(Serialize)]
    enum Borrowed<'a> {
        Msgs {
            ts: i64,
            msgs: Vec<(&'a str, Option<Raw<'a>>, Raw<'a>)>,
        },
    }
    let mut size = 32;
    let msgs = batch
        .iter()
        .map(|m| {
            let hdr = m.headers.as_deref();
            size += m.subject.len() + hdr.map_or(0, <[u8]>::len) + m.payload.len() + 16;
            (m.subject.as_str(), hdr.map(Raw), Raw(&m.payload))
        })
        .collect();
    postcard::to_extend(&Borrowed::Msgs { ts, msgs }, Vec::with_capacity(size)).unwrap_or_default()
}

/// The reply of an applied [`StreamOp::Msgs`] or [`StreamOp::Atomic`]: the PubAcks by the
/// message's index, and the republished copies.
fn msgs_reply(acks: Vec<(String, Bytes)>, republished: Vec<Republished>) -> Vec<u8> {
    let reply = MsgsReply {
        acks: acks
            .into_iter()
            .filter_map(|(i, body)| Some((i.parse().ok()?, Data(body.to_vec()))))
            .collect(),
        republish: republished
            .into_iter()
            .map(|r| {
                (
                    r.subject,
                    Data(r.headers.to_vec()),
                    Data(r.payload.to_vec()),
                )
            })
            .collect(),
    };
    postcard::to_stdvec(&reply).unwrap_or_default()
}

/// Encodes a [`StreamOp::Atomic`] of a committed batch.
pub(super) fn encode_atomic(ts: i64, batch: &[Inbound]) -> Vec<u8> {
    let msgs = batch
        .iter()
        .map(|m| {
            (
                m.subject.clone(),
                m.headers.as_ref().map(|h| Data(h.to_vec())),
                Data(m.payload.to_vec()),
            )
        })
        .collect();
    StreamOp::Atomic { ts, msgs }.encode()
}

/// A memory replica's snapshot: its messages (sequence, time, subject, headers, payload)
/// and where its sequences end (the last messages may be deleted).
#[derive(Debug, Serialize, Deserialize)]
pub(super) struct MemorySnapshot {
    last_seq: u64,
    last_ts: i64,
    msgs: Vec<(u64, i64, String, Option<Data>, Data)>,
}

impl MemorySnapshot {
    /// The encoded snapshot of `stream`'s messages, read under its lock. Blocking.
    fn of(stream: &Stream) -> std::io::Result<Vec<u8>> {
        let inner = stream.inner.lock();
        let st = inner.store.state();
        let mut msgs = Vec::new();
        let mut seq = st.first_seq.max(1);
        while let Some(m) = inner
            .store
            .next_by_subject(seq, ">")
            .map_err(std::io::Error::other)?
        {
            seq = m.seq + 1;
            let headers = m.headers.map(|h| Data(h.to_vec()));
            msgs.push((m.seq, m.ts, m.subject, headers, Data(m.payload.to_vec())));
        }
        let snap = MemorySnapshot {
            last_seq: st.last_seq,
            last_ts: st.last_ts,
            msgs,
        };
        postcard::to_stdvec(&snap).map_err(std::io::Error::other)
    }

    /// Appends the messages to an empty store, with their sequences and times.
    fn load(
        self,
        store: &mut dyn petrel_store::StreamStore,
    ) -> Result<(), petrel_store::StoreError> {
        for (seq, ts, subject, headers, payload) in self.msgs {
            store.skip_to(seq, ts)?;
            let headers = headers.map(|h| Bytes::from(h.0));
            store.append(&subject, headers, Bytes::from(payload.0), ts)?;
        }
        store.skip_to(self.last_seq.saturating_add(1), self.last_ts)
    }
}

/// What applying a `Msgs` entry gives its proposer.
#[derive(Debug, Default, Serialize, Deserialize)]
pub(crate) struct MsgsReply {
    /// PubAck bodies by the message's index in the entry.
    pub acks: Vec<(u32, Data)>,
    /// Republished copies: subject, headers, payload.
    pub republish: Vec<(String, Data, Data)>,
}

/// Applies a stream group's entries to the local store.
pub(super) struct StreamMachine {
    pub stream: Arc<Stream>,
    pub backend: Arc<dyn Backend>,
    pub record: AppliedLog,
    pub applied: Mutex<Applied>,
}

impl StreamMachine {
    /// Applies one normal entry; [`Unappliable`] when this Petrel cannot read it, or when
    /// the store took back what it could not write (I/O): this replica would then hold
    /// less than the others, whose PubAcks said stored.
    fn apply_entry(
        &self,
        log_id: LogId<NodeId>,
        data: &[u8],
        pending: &mut BTreeMap<String, Vec<u8>>,
    ) -> Result<Vec<u8>, Unappliable> {
        let stop = |why: String| Unappliable {
            log_id,
            reason: format!("stream {}: {why}", self.stream.name),
        };
        let op = postcard::from_bytes::<StreamOp>(data).map_err(|e| {
            stop(format!(
                "{e} (written by a newer Petrel? upgrade this server)"
            ))
        })?;
        let rollbacks = self.stream.store_rollbacks();
        let reply = self.apply_op(op, pending);
        if self.stream.store_rollbacks() != rollbacks {
            let why =
                "the store could not write it (I/O); restart the server once the disk is fixed";
            return Err(stop(why.to_string()));
        }
        Ok(reply)
    }

    fn apply_op(&self, op: StreamOp, pending: &mut BTreeMap<String, Vec<u8>>) -> Vec<u8> {
        match op {
            StreamOp::Atomic { ts, msgs } => {
                let n = msgs.len();
                let mut batch: Vec<Inbound> = msgs
                    .into_iter()
                    .enumerate()
                    .map(|(i, (subject, headers, payload))| Inbound {
                        subject,
                        reply: (i + 1 == n).then(|| i.to_string()),
                        headers: headers.map(|h| Bytes::from(h.0)),
                        payload: Bytes::from(payload.0),
                    })
                    .collect();
                let mut republished = Vec::new();
                let acks = self.stream.process_atomic(&mut batch, ts, &mut republished);
                msgs_reply(acks, republished)
            }
            StreamOp::Msgs { ts, msgs } => {
                let mut batch: Vec<Inbound> = msgs
                    .into_iter()
                    .enumerate()
                    .map(|(i, (subject, headers, payload))| Inbound {
                        subject,
                        reply: Some(i.to_string()),
                        headers: headers.map(|h| Bytes::from(h.0)),
                        payload: Bytes::from(payload.0),
                    })
                    .collect();
                let mut republished = Vec::new();
                let acks = self
                    .stream
                    .process_batch_at(&mut batch, ts, &mut republished);
                msgs_reply(acks, republished)
            }
            StreamOp::Purge(req) => {
                serde_json::to_vec(&self.stream.purge_local(req)).unwrap_or_default()
            }
            StreamOp::Delete { seq, erase } => {
                serde_json::to_vec(&self.stream.delete_msg_local(seq, erase)).unwrap_or_default()
            }
            StreamOp::Remove { seqs } => {
                self.stream.remove_local(&seqs);
                Vec::new()
            }
            StreamOp::Mirrored { msgs } => {
                let msgs = msgs
                    .into_iter()
                    .map(|(seq, ts, subject, headers, payload)| {
                        let m = Inbound {
                            subject,
                            reply: None,
                            headers: headers.map(|h| Bytes::from(h.0)),
                            payload: Bytes::from(payload.0),
                        };
                        (seq, ts, m)
                    })
                    .collect();
                postcard::to_stdvec(&self.stream.store_mirrored(msgs)).unwrap_or_default()
            }
            op => {
                self.apply_consumer(op, pending);
                Vec::new()
            }
        }
    }

    /// Whether the consumer `name` runs here (this node leads and started it): its own,
    /// newer files win over the group's copies.
    fn running(&self, name: &str) -> bool {
        self.stream.consumers.read().contains_key(name)
    }

    /// A consumer op: every replica keeps the consumer's files as the group committed
    /// them, so the consumer comes back where it was on whichever node leads next. State
    /// checkpoints are only noted in `pending` (the last per consumer is written, durably,
    /// by [`StreamMachine::flush_states`] before the batch is recorded as applied): the
    /// apply is the only writer of a replicated consumer's state, the leader's included.
    fn apply_consumer(&self, op: StreamOp, pending: &mut BTreeMap<String, Vec<u8>>) {
        use crate::consumer::persist;
        let Some(root) = self.stream.dir.as_ref().map(|d| persist::consumers_dir(d)) else {
            return;
        };
        let backend = self.backend.as_ref();
        let done = match op {
            StreamOp::ConsumerMeta { name, meta } if !self.running(&name) => {
                match serde_json::from_slice::<persist::ConsumerMeta>(&meta) {
                    Ok(m) => persist::write_meta(backend, &root.join(name), &m),
                    Err(e) => Err(std::io::Error::other(e)),
                }
            }
            StreamOp::ConsumerState { name, state } => {
                pending.insert(name, state.0);
                Ok(())
            }
            StreamOp::ConsumerDelete { name } => {
                pending.remove(&name);
                if self.running(&name) {
                    Ok(())
                } else {
                    persist::remove(backend, &root.join(name))
                }
            }
            _ => Ok(()),
        };
        if let Err(e) = done {
            tracing::warn!(stream = %self.stream.name, error = %e, "replicating a consumer's files failed");
        }
    }

    /// Writes the noted consumer states, fsynced: the applied record written after them
    /// must never claim a checkpoint a power loss could take back (a running consumer's
    /// memory is ahead of its file; the file only has to hold what was committed).
    fn flush_states(&self, pending: &mut BTreeMap<String, Vec<u8>>) {
        use crate::consumer::persist;
        let Some(root) = self.stream.dir.as_ref().map(|d| persist::consumers_dir(d)) else {
            return;
        };
        for (name, state) in std::mem::take(pending) {
            let dir = root.join(&name);
            if !self.backend.exists(&dir) {
                continue;
            }
            if let Err(e) = persist::write_state(self.backend.as_ref(), &dir, &state, true) {
                tracing::warn!(stream = %self.stream.name, consumer = %name, error = %e,
                    "replicating a consumer's state failed");
            }
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
        if let Err(e) = self.stream.reset(REPLICA_SYNC) {
            tracing::error!(stream = %self.stream.name, error = %e, "resetting the replica store failed");
        }
        if let Err(e) = self.record.clear() {
            tracing::error!(stream = %self.stream.name, error = %e, "clearing the applied record failed");
        }
        *applied = Applied::default();
    }

    fn restored(&self) -> (Option<LogId<NodeId>>, StoredMembership<NodeId, BasicNode>) {
        let a = self.applied.lock();
        (a.log_id, a.membership.clone())
    }

    fn snapshots(&self) -> bool {
        true
    }

    /// A file replica's snapshot is the archive of its files; a memory replica's, its
    /// messages ([`MemorySnapshot`]).
    fn snapshot(&self) -> std::io::Result<Option<MachineSnapshot>> {
        let applied = self.applied.lock();
        let Some(log_id) = applied.log_id else {
            return Ok(None);
        };
        let data = match self.stream.dir.as_ref() {
            Some(dir) => crate::backup::replica_archive(&self.stream, dir)?,
            None => MemorySnapshot::of(&self.stream)?,
        };
        Ok(Some((log_id, applied.membership.clone(), data)))
    }

    fn install(&self, meta: &SnapshotMeta, data: &[u8]) -> std::io::Result<()> {
        let mut applied = self.applied.lock();
        if self.stream.dir.is_some() {
            let backend = self.backend.clone();
            let unpack = |dir: &Path| {
                crate::backup::archive::unpack(data, dir, backend.as_ref()).map(|_| ())
            };
            self.stream
                .replace_files(&unpack, REPLICA_SYNC)
                .map_err(std::io::Error::other)?;
        } else {
            let snap: MemorySnapshot = postcard::from_bytes(data).map_err(std::io::Error::other)?;
            // Moved into the store, not copied.
            self.stream
                .replace_messages(Box::new(|store| snap.load(store)), REPLICA_SYNC)
                .map_err(std::io::Error::other)?;
        }
        applied.log_id = meta.last_log_id;
        applied.membership = meta.last_membership.clone();
        applied.last_seq = self.stream.last_seq();
        self.record.membership(&applied.membership)?;
        if let Some(log_id) = &applied.log_id {
            self.record.record(log_id, applied.last_seq)?;
        }
        Ok(())
    }

    fn apply(&self, entries: Vec<GroupEntry>) -> Result<Vec<Vec<u8>>, Unappliable> {
        let mut out = Vec::with_capacity(entries.len());
        let mut applied = self.applied.lock();
        if self.stream.is_closed() {
            // Shutting down: what is not stored is not recorded as applied either, so
            // the next start applies it again.
            return Ok(vec![Vec::new(); entries.len()]);
        }
        let mut pending = BTreeMap::new();
        // An entry this replica cannot read or store: never skipped (see `Unappliable`).
        let mut unreadable = None;
        for e in entries {
            let reply = match e.payload {
                EntryPayload::Normal(data) => match self.apply_entry(e.log_id, &data, &mut pending)
                {
                    Ok(reply) => reply,
                    // Never skipped: what comes before is recorded, the group stops.
                    Err(u) => {
                        unreadable = Some(u);
                        break;
                    }
                },
                EntryPayload::Membership(m) => {
                    applied.membership = StoredMembership::new(Some(e.log_id), m);
                    if let Err(err) = self.record.membership(&applied.membership) {
                        tracing::warn!(stream = %self.stream.name, error = %err, "recording the membership failed");
                    }
                    Vec::new()
                }
                EntryPayload::Blank => Vec::new(),
            };
            applied.log_id = Some(e.log_id);
            out.push(reply);
        }
        self.flush_states(&mut pending);
        applied.last_seq = self.stream.last_seq();
        if let Some(log_id) = &applied.log_id {
            // Not fsynced: a stale record only makes the next open rebuild from the log.
            if let Err(e) = self.record.record(log_id, applied.last_seq) {
                tracing::warn!(stream = %self.stream.name, error = %e, "recording the applied entry failed");
            }
        }
        match unreadable {
            Some(u) => Err(u),
            None => Ok(out),
        }
    }
}

/// Opens the store of a replica, its applied record and what that says; a store that
/// does not match the record or fails its read-back check is emptied (the log rebuilds
/// it). Blocking.
pub(super) fn open_store(
    js: &JetStream,
    dir: &Path,
    a: &StreamAssignment,
) -> Result<(Arc<Stream>, AppliedLog, Applied), String> {
    let backend = js.config.backend.clone();
    let streams_dir = dir.join("stream");
    backend
        .create_dir_all(&streams_dir)
        .map_err(|e| e.to_string())?;
    let stream = Stream::open(
        a.config.clone(),
        a.created,
        &streams_dir,
        REPLICA_SYNC,
        backend.clone(),
    )
    .map_err(|e| e.to_string())?;
    let (record, applied) = AppliedLog::open(backend, dir).map_err(|e| e.to_string())?;
    let why = if applied.log_id.is_none() {
        (stream.last_seq() != 0).then(|| "no applied record".to_string())
    } else if stream.last_seq() != applied.last_seq {
        Some(format!(
            "the store ends at {}, the applied record at {}",
            stream.last_seq(),
            applied.last_seq
        ))
    } else {
        // Every record is read back once: a corrupt one (a flipped bit the store's
        // checkpointed recovery did not read) makes the replica rebuild from the log.
        stream.scrub()
    };
    let Some(why) = why else {
        return Ok((stream, record, applied));
    };
    tracing::warn!(stream = %a.config.name, "replica store cannot be trusted ({why}); rebuilding it from the log");
    stream.reset(REPLICA_SYNC).map_err(|e| e.to_string())?;
    record.clear().map_err(|e| e.to_string())?;
    Ok((stream, record, Applied::default()))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The owned form a `Msgs` entry had before [`Data`]: logs written then must read back.
    #[derive(Serialize)]
    enum Before {
        Msgs {
            ts: i64,
            msgs: Vec<(String, Option<Vec<u8>>, Vec<u8>)>,
        },
    }

    #[test]
    fn a_borrowed_msgs_entry_decodes_as_the_owned_one_and_matches_old_logs() {
        let batch: Vec<Inbound> = (0..40u8)
            .map(|i| Inbound {
                subject: format!("orders.{i}"),
                reply: Some(format!("_INBOX.{i}")),
                headers: (i % 3 == 0).then(|| Bytes::from(format!("NATS/1.0\r\nX: {i}\r\n\r\n"))),
                payload: Bytes::from(vec![i; usize::from(i) * 9]),
            })
            .collect();
        let ts = -1_234_567_890_123;
        let bytes = encode_msgs(ts, &batch);
        let old = Before::Msgs {
            ts,
            msgs: batch
                .iter()
                .map(|m| {
                    let h = m.headers.as_ref().map(|h| h.to_vec());
                    (m.subject.clone(), h, m.payload.to_vec())
                })
                .collect(),
        };
        assert_eq!(bytes, postcard::to_stdvec(&old).unwrap());
        let Ok(StreamOp::Msgs { ts: back, msgs }) = postcard::from_bytes::<StreamOp>(&bytes) else {
            panic!("not a Msgs entry");
        };
        assert_eq!(back, ts);
        assert_eq!(msgs.len(), batch.len());
        for ((subject, headers, payload), m) in msgs.iter().zip(&batch) {
            assert_eq!(subject, &m.subject);
            assert_eq!(headers.as_ref().map(|h| &h[..]), m.headers.as_deref());
            assert_eq!(&payload[..], &m.payload[..]);
        }
    }

    /// An entry this Petrel cannot read stops the apply there: what came before is stored
    /// and recorded as applied, nothing after it is, and the group is told why.
    #[test]
    fn an_unreadable_entry_stops_the_apply_instead_of_being_skipped() {
        use super::tests_support::{entry, machine, msg};
        let dir = tempfile::tempdir().unwrap();
        let m = machine(dir.path(), Arc::new(petrel_store::StdBackend));
        let stream = m.stream.clone();
        let entries = vec![
            entry(1, encode_msgs(1, &[msg("s.a")])),
            entry(2, vec![0xff, 0xff, 0xff, 0xff, 0x0f]),
            entry(3, encode_msgs(2, &[msg("s.b")])),
        ];
        let err = m
            .apply(entries)
            .expect_err("the unreadable entry stops the apply");
        assert_eq!(err.log_id.index, 2);
        assert!(err.reason.contains("stream S"), "{}", err.reason);
        assert_eq!(stream.last_seq(), 1, "nothing after the entry is stored");
        assert_eq!(m.restored().0.map(|l| l.index), Some(1));
    }
}

#[cfg(test)]
mod io_tests {
    use super::tests_support::*;
    use super::*;
    use petrel_store::{FaultOp, FaultyBackend};

    /// An entry the store fails to write (an I/O error: it rolls back) stops the apply
    /// there: the replica does not record it as applied while the others stored it.
    #[test]
    fn an_entry_the_store_cannot_write_stops_the_apply() {
        let dir = tempfile::tempdir().unwrap();
        let faulty = FaultyBackend::new(petrel_store::StdBackend);
        let backend: Arc<dyn Backend> = Arc::new(faulty.clone());
        let m = machine(dir.path(), backend);
        m.apply(vec![entry(1, encode_msgs(1, &[msg("s.a")]))])
            .expect("stored");
        faulty.fail_from_nth(FaultOp::Write, 1);
        let err = m
            .apply(vec![
                entry(2, encode_msgs(2, &[msg("s.b")])),
                entry(3, encode_msgs(3, &[msg("s.c")])),
            ])
            .expect_err("the failed write stops the apply");
        assert_eq!(err.log_id.index, 2);
        assert!(err.reason.contains("I/O"), "{}", err.reason);
        assert_eq!(m.restored().0.map(|l| l.index), Some(1));
        faulty.clear();
        assert_eq!(m.stream.last_seq(), 1, "nothing of the failed entry stays");
    }
}

#[cfg(test)]
mod tests_support {
    use super::*;

    pub(super) fn entry(index: u64, data: Vec<u8>) -> GroupEntry {
        GroupEntry {
            log_id: LogId::new(petrel_replication::CommittedLeaderId::new(1, 1), index),
            payload: EntryPayload::Normal(Data(data)),
        }
    }

    pub(super) fn msg(subject: &str) -> Inbound {
        Inbound {
            subject: subject.into(),
            reply: None,
            headers: None,
            payload: Bytes::from_static(b"x"),
        }
    }

    /// A machine on stream `S` (`s.>`) under `dir`, fsync-always, on `backend`.
    pub(super) fn machine(dir: &Path, backend: Arc<dyn Backend>) -> StreamMachine {
        let cfg = crate::config::StreamConfig {
            name: "S".into(),
            subjects: vec!["s.>".into()],
            ..Default::default()
        }
        .normalize()
        .expect("a valid config");
        let streams = dir.join("stream");
        backend.create_dir_all(&streams).unwrap();
        let stream = Stream::open(
            cfg,
            1,
            &streams,
            petrel_store::SyncMode::Always,
            backend.clone(),
        )
        .expect("the stream opens");
        let (record, applied) = AppliedLog::open(backend.clone(), dir).unwrap();
        StreamMachine {
            stream,
            backend,
            record,
            applied: Mutex::new(applied),
        }
    }
}
