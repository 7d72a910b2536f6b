//! What a stream replica has applied: `applied.log`, one 40-byte record per applied batch
//! (log index, term, leader node, the store's last sequence after it, CRC32), appended
//! without fsync — a `write(2)`, no rename, so no filesystem flush per batch — and
//! `membership.json`, rewritten (atomically) only when a membership entry is applied.
//!
//! The Raft log is the write-ahead log: a record that is stale or lost after a crash only
//! makes the replica's store disagree with it, and a disagreeing store is rebuilt from the
//! log. Opening keeps the last good record and rewrites the file when it has grown past
//! [`COMPACT_AT`].

use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use petrel_replication::{BasicNode, LogId, NodeId, StoredMembership};
use petrel_store::{Backend, BackendFile};
use serde::{Deserialize, Serialize};

const LOG: &str = "applied.log";
const MEMBERSHIP: &str = "membership.json";
/// Bytes of one record.
const RECORD: usize = 40;
/// A record file this large is rewritten with its last record when opened.
const COMPACT_AT: u64 = 1 << 20;

/// The last applied entry and membership, and the store's last sequence after it.
#[derive(Debug, Default, Clone)]
pub(super) struct Applied {
    pub log_id: Option<LogId<NodeId>>,
    pub membership: StoredMembership<NodeId, BasicNode>,
    pub last_seq: u64,
}

/// `membership.json`.
#[derive(Serialize, Deserialize)]
struct Membership(StoredMembership<NodeId, BasicNode>);

fn encode(log_id: &LogId<NodeId>, last_seq: u64) -> [u8; RECORD] {
    let mut r = [0u8; RECORD];
    r[0..8].copy_from_slice(&log_id.index.to_le_bytes());
    r[8..16].copy_from_slice(&log_id.leader_id.term.to_le_bytes());
    r[16..24].copy_from_slice(&log_id.leader_id.node_id.to_le_bytes());
    r[24..32].copy_from_slice(&last_seq.to_le_bytes());
    let crc = crc32fast::hash(&r[..32]);
    r[32..36].copy_from_slice(&crc.to_le_bytes());
    r
}

fn decode(r: &[u8]) -> Option<(LogId<NodeId>, u64)> {
    let word = |i: usize| u64::from_le_bytes(r[i..i + 8].try_into().unwrap_or_default());
    let crc = u32::from_le_bytes(r[32..36].try_into().ok()?);
    if crc32fast::hash(&r[..32]) != crc {
        return None;
    }
    let log_id = LogId::new(
        petrel_replication::CommittedLeaderId::new(word(8), word(16)),
        word(0),
    );
    Some((log_id, word(24)))
}

/// The record file of one replica, open for appending.
pub(super) struct AppliedLog {
    backend: Arc<dyn Backend>,
    dir: PathBuf,
    file: Box<dyn BackendFile>,
}

impl AppliedLog {
    /// Reads what `dir` records (the default when nothing usable is there) and opens the
    /// file for appending. Blocking.
    pub fn open(backend: Arc<dyn Backend>, dir: &Path) -> io::Result<(AppliedLog, Applied)> {
        let path = dir.join(LOG);
        let mut applied = Applied::default();
        if let Ok(bytes) = petrel_store::read_all(backend.as_ref(), &dir.join(MEMBERSHIP)) {
            if let Ok(Membership(m)) = serde_json::from_slice(&bytes) {
                applied.membership = m;
            }
        }
        let bytes = petrel_store::read_all(backend.as_ref(), &path).unwrap_or_default();
        // The last whole record that checks out; a torn or corrupt tail is ignored.
        if let Some((log_id, last_seq)) = bytes.chunks_exact(RECORD).rev().find_map(decode) {
            applied.log_id = Some(log_id);
            applied.last_seq = last_seq;
        }
        let keep = bytes.len().is_multiple_of(RECORD) && (bytes.len() as u64) < COMPACT_AT;
        let file = if keep && backend.exists(&path) {
            backend.open(&path)?
        } else {
            let body = applied
                .log_id
                .map(|l| encode(&l, applied.last_seq).to_vec())
                .unwrap_or_default();
            petrel_store::write_atomic(backend.as_ref(), dir, LOG, &body, false)?;
            backend.open(&path)?
        };
        let log = AppliedLog {
            backend,
            dir: dir.to_path_buf(),
            file,
        };
        Ok((log, applied))
    }

    /// Records that everything up to `log_id` is applied and the store ends at `last_seq`.
    pub fn record(&self, log_id: &LogId<NodeId>, last_seq: u64) -> io::Result<()> {
        self.file.append(&encode(log_id, last_seq)).map(|_| ())
    }

    /// Records a newly applied membership.
    pub fn membership(&self, m: &StoredMembership<NodeId, BasicNode>) -> io::Result<()> {
        let body = serde_json::to_vec(&Membership(m.clone())).map_err(io::Error::other)?;
        petrel_store::write_atomic(self.backend.as_ref(), &self.dir, MEMBERSHIP, &body, false)
    }

    /// Forgets everything (the store is being rebuilt from the log).
    pub fn clear(&self) -> io::Result<()> {
        self.file.set_len(0)?;
        let _ = self.backend.remove(&self.dir.join(MEMBERSHIP));
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use petrel_store::StdBackend;

    fn id(term: u64, index: u64) -> LogId<NodeId> {
        LogId::new(petrel_replication::CommittedLeaderId::new(term, 9), index)
    }

    #[test]
    fn the_last_good_record_wins_and_a_torn_one_is_ignored() {
        let dir = tempfile::tempdir().unwrap();
        let backend: Arc<dyn Backend> = Arc::new(StdBackend);
        let (log, a) = AppliedLog::open(backend.clone(), dir.path()).unwrap();
        assert!(a.log_id.is_none());
        log.record(&id(1, 5), 10).unwrap();
        log.record(&id(2, 7), 12).unwrap();
        drop(log);
        let (_, a) = AppliedLog::open(backend.clone(), dir.path()).unwrap();
        assert_eq!((a.log_id, a.last_seq), (Some(id(2, 7)), 12));
        // Half a record more (a crash mid-write) and a flipped bit in the last whole one:
        // the one before stands.
        let path = dir.path().join(LOG);
        let mut bytes = std::fs::read(&path).unwrap();
        bytes[RECORD + 3] ^= 1;
        bytes.extend_from_slice(&[7u8; 13]);
        std::fs::write(&path, &bytes).unwrap();
        let (log, a) = AppliedLog::open(backend.clone(), dir.path()).unwrap();
        assert_eq!((a.log_id, a.last_seq), (Some(id(1, 5)), 10));
        // The file was rewritten with that record alone, and appends go on after it.
        assert_eq!(std::fs::metadata(&path).unwrap().len(), RECORD as u64);
        log.record(&id(3, 9), 20).unwrap();
        log.clear().unwrap();
        drop(log);
        let (_, a) = AppliedLog::open(backend, dir.path()).unwrap();
        assert!(a.log_id.is_none());
    }
}
