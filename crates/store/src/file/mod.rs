//! `FileStore`: the durable stream store. One directory per stream, append-only block files
//! of CRC-checked records, an in-memory index rebuilt on open, an optional checkpoint for a
//! fast open. The on-disk format and the recovery rules are in `crates/store/FORMAT.md`.
//!
//! Submodules: `record` (encoding), `block` (one block file), `write` (the commit path:
//! markers, compaction, fsync), `recovery` (open), `checkpoint` (`index.chk`), `backend` and
//! `faulty` (the I/O seam).

pub(crate) mod backend;
mod block;
mod checkpoint;
pub(crate) mod faulty;
mod record;
mod recovery;
pub(crate) mod sim;
mod write;

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;

use crate::error::StoreError;
use crate::index::{Entry, Index};
use crate::limits;
use crate::mem::check_first_seq;
use crate::traits::StreamStore;
use crate::types::{
    file_msg_size, normalize_headers, LostData, PurgeRequest, StoreLimits, StoredMsg, StreamState,
};
use backend::{Backend, StdBackend};
use block::{Block, Loc};
use record::{Kind, HEADER_LEN, MAX_RECORD_LEN};

/// When written data reaches stable storage.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SyncMode {
    /// `commit` fsyncs before it returns (Petrel's default: a PubAck means "on disk").
    Always,
    /// `commit` only writes; the caller calls `sync` every given interval (nats-server's
    /// lazy default is 2 minutes).
    Interval(Duration),
}

/// File store settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileStoreConfig {
    /// A new block is started when the next record would take the current one past this size
    /// (default 8 MiB).
    pub block_size: u64,
    /// Durability of `commit` (default `Always`).
    pub sync: SyncMode,
    /// Write `index.chk` from `commit` once this many records (and at least as many as there
    /// are live messages) were written since the last one; 0 = only on `close`. Default 262144.
    pub checkpoint_every: u64,
    /// Store message bodies Snappy-compressed when that saves space (`compression: s2`).
    /// Changing it affects new records; old ones are read either way.
    pub compress: bool,
}

impl Default for FileStoreConfig {
    fn default() -> Self {
        FileStoreConfig {
            block_size: 8 << 20,
            sync: SyncMode::Always,
            checkpoint_every: 1 << 18,
            compress: false,
        }
    }
}

/// What the last open did, for logs and tests.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RecoveryReport {
    /// The checkpoint was valid and used; only bytes written after it were scanned.
    pub from_checkpoint: bool,
    /// Block files found.
    pub blocks: usize,
    /// Records read and verified during the scan.
    pub records_scanned: u64,
    /// Bytes cut from blocks (torn or corrupt records and everything after them).
    pub bytes_truncated: u64,
}

/// The durable stream store; see the module doc and FORMAT.md.
#[derive(Debug)]
pub struct FileStore {
    name: String,
    dir: PathBuf,
    msgs_dir: PathBuf,
    cfg: FileStoreConfig,
    backend: Arc<dyn Backend>,
    index: Index<Loc>,
    limits: StoreLimits,
    blocks: BTreeMap<u32, Block>,
    /// Index of the next block file to create.
    next_block: u32,
    /// Highest floor written to a block, and the block holding it.
    durable_floor: u64,
    floor_block: Option<u32>,
    /// Messages removed since the last commit: (seq, ts), for the floor and tombstones.
    dead: Vec<(u64, i64)>,
    /// An explicit floor moved (purge, first_seq): write a floor at the next commit.
    markers_dirty: bool,
    /// Records to overwrite in place at the next commit.
    erasures: Vec<Loc>,
    /// Blocks whose last live message went away: removal candidates at the next commit.
    emptied: BTreeSet<u32>,
    /// Check that the surviving blocks still record `last_seq` (after recovery cut data).
    highwater_check: bool,
    /// Start a fresh block at the next commit (after a purge of everything).
    force_roll: bool,
    dir_dirty: bool,
    /// An I/O failure could not be rolled back yet: reads are refused (the index may list
    /// what never reached the disk) and every mutation first retries the rollback.
    poisoned: bool,
    /// Length of every block file as of the last successful commit: what a rollback
    /// truncates back to (blocks not listed were created since and are removed).
    committed: BTreeMap<u32, u64>,
    /// Rollbacks so far (see [`StreamStore::rollbacks`]).
    rollbacks: u64,
    lost: Option<LostData>,
    since_checkpoint: u64,
    report: RecoveryReport,
}

/// Stream names become directory names.
fn valid_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 255
        && name != "."
        && name != ".."
        && !name
            .chars()
            .any(|c| c == '/' || c == '\\' || c == '\0' || c.is_whitespace())
}

impl FileStore {
    /// Opens (or creates) the store of stream `name` under `dir` (`<dir>/<name>/`), recovering
    /// everything from its block files. Limits are not stored on disk (they belong to the
    /// stream config): call [`StreamStore::set_limits`] after opening, then
    /// [`StreamStore::expire`] to drop what aged out while the store was closed.
    pub fn open(
        dir: impl AsRef<Path>,
        name: &str,
        config: FileStoreConfig,
    ) -> Result<FileStore, StoreError> {
        Self::open_with_backend(dir, name, config, Arc::new(StdBackend))
    }

    /// [`open`](Self::open) through a custom I/O backend (tests use
    /// [`FaultyBackend`](crate::FaultyBackend)).
    pub fn open_with_backend(
        dir: impl AsRef<Path>,
        name: &str,
        config: FileStoreConfig,
        backend: Arc<dyn Backend>,
    ) -> Result<FileStore, StoreError> {
        if !valid_name(name) {
            return Err(StoreError::InvalidName(name.to_string()));
        }
        let dir = dir.as_ref().join(name);
        let msgs_dir = dir.join("msgs");
        let fresh = !backend.exists(&msgs_dir);
        backend.create_dir_all(&msgs_dir)?;
        if fresh {
            backend.sync_dir(&dir)?;
            if let Some(parent) = dir.parent() {
                backend.sync_dir(parent)?;
            }
        }
        let rec = recovery::recover(backend.as_ref(), name, &dir, &msgs_dir)?;
        let next_block = rec.max_block.saturating_add(1);
        let emptied = rec
            .blocks
            .values()
            .filter(|b| b.live == 0)
            .map(|b| b.index)
            .collect();
        let mut store = FileStore {
            name: name.to_string(),
            dir,
            msgs_dir,
            cfg: config,
            backend,
            index: rec.index,
            limits: StoreLimits::default(),
            blocks: rec.blocks,
            next_block,
            durable_floor: rec.durable_floor,
            floor_block: rec.floor_block,
            dead: Vec::new(),
            markers_dirty: false,
            erasures: Vec::new(),
            emptied,
            highwater_check: true,
            force_roll: false,
            dir_dirty: false,
            poisoned: false,
            committed: BTreeMap::new(),
            rollbacks: 0,
            lost: rec.lost,
            // What the next open would scan again unless a checkpoint is written.
            since_checkpoint: rec.report.records_scanned
                + u64::from(rec.report.bytes_truncated > 0)
                + u64::from(!rec.report.from_checkpoint && rec.report.blocks > 0),
            report: rec.report,
        };
        store.commit()?;
        Ok(store)
    }

    /// The configuration the store was opened with.
    pub fn config(&self) -> &FileStoreConfig {
        &self.cfg
    }

    /// What the last open did (checkpoint used, records scanned, bytes cut).
    pub fn recovery_report(&self) -> &RecoveryReport {
        &self.report
    }

    /// Number of block files.
    pub fn block_count(&self) -> usize {
        self.blocks.len()
    }

    /// Whether an earlier I/O failure poisoned the store.
    pub fn is_poisoned(&self) -> bool {
        self.poisoned
    }

    /// Runs a mutation. When it fails with an I/O error (a full disk, a failed write or
    /// fsync), everything since the last successful commit is rolled back — on disk and in
    /// memory — before the error is returned: no message a caller was told failed can be
    /// read later. If the rollback itself fails the store is poisoned: reads are refused
    /// and the next mutation retries the rollback first, so once the disk works again the
    /// store does too, without a restart.
    fn mutate<T>(
        &mut self,
        f: impl FnOnce(&mut Self) -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        if self.poisoned {
            self.roll_back()?;
        }
        let r = f(self);
        if let Err(StoreError::Io(e)) = &r {
            tracing::error!(stream = %self.name, error = %e,
                "file store i/o failure: rolling back to the last commit");
            // On failure it stays poisoned and says so.
            let _ = self.roll_back();
        }
        r
    }

    /// Puts the files back as of the last commit (truncating what was written since,
    /// removing blocks created since) and reloads the store from them.
    fn roll_back(&mut self) -> Result<(), StoreError> {
        self.poisoned = true;
        self.rollbacks += 1;
        let restore = || -> Result<FileStore, StoreError> {
            for name in self.backend.list(&self.msgs_dir)? {
                let Some(index) = block::parse_block_name(&name) else {
                    continue;
                };
                let path = self.msgs_dir.join(&name);
                match self.committed.get(&index) {
                    Some(len) => {
                        let f = self.backend.open(&path)?;
                        if f.size()? > *len {
                            f.set_len(*len)?;
                            f.sync()?;
                        }
                    }
                    None => self.backend.remove(&path)?,
                }
            }
            self.backend.sync_dir(&self.msgs_dir)?;
            let parent = self.dir.parent().unwrap_or(&self.dir);
            FileStore::open_with_backend(parent, &self.name, self.cfg.clone(), self.backend.clone())
        };
        match restore() {
            Ok(mut fresh) => {
                fresh.limits = self.limits.clone();
                fresh.rollbacks = self.rollbacks;
                *self = fresh;
                tracing::info!(stream = %self.name, msgs = self.index.len(),
                    "file store rolled back to its last commit");
                Ok(())
            }
            Err(e) => {
                tracing::error!(stream = %self.name, error = %e,
                    "file store rollback failed; refusing reads and writes until it succeeds");
                Err(StoreError::Poisoned)
            }
        }
    }

    /// Records the block lengths as of a successful commit.
    fn mark_committed(&mut self) {
        self.committed = self.blocks.iter().map(|(i, b)| (*i, b.written)).collect();
    }

    /// Bookkeeping for a message the index just dropped: block live count, removal
    /// candidate, and the sequence for the next commit's markers.
    fn removed(
        blocks: &mut BTreeMap<u32, Block>,
        emptied: &mut BTreeSet<u32>,
        dead: &mut Vec<(u64, i64)>,
        seq: u64,
        e: &Entry<Loc>,
    ) {
        if let Some(b) = blocks.get_mut(&e.loc.block) {
            b.live = b.live.saturating_sub(1);
            if b.live == 0 {
                emptied.insert(b.index);
            }
        }
        dead.push((seq, e.ts));
    }

    /// Removes one message from the index with all bookkeeping.
    fn remove_seq(&mut self, seq: u64) -> Option<Entry<Loc>> {
        let e = self.index.remove(seq)?;
        Self::removed(&mut self.blocks, &mut self.emptied, &mut self.dead, seq, &e);
        Some(e)
    }

    /// Reads and verifies the record of a live message (none while poisoned: the index
    /// may then list messages that never reached the disk).
    fn read_msg(&self, seq: u64) -> Result<Option<StoredMsg>, StoreError> {
        if self.poisoned {
            return Err(StoreError::Poisoned);
        }
        let Some(e) = self.index.get(seq) else {
            return Ok(None);
        };
        let loc = e.loc;
        let corrupt = |reason: &'static str| {
            tracing::warn!(stream = %self.name, block = loc.block, offset = loc.offset, seq, reason,
                "corrupt record not served");
            StoreError::Corrupt {
                block: loc.block,
                offset: loc.offset,
                reason,
            }
        };
        let block = self
            .blocks
            .get(&loc.block)
            .ok_or_else(|| corrupt("block missing"))?;
        let buf = block.read(loc.offset, loc.len)?;
        let (subject, hdr_len, payload_len) = {
            let r = record::decode(&buf).map_err(corrupt)?;
            if !r.kind.is_msg() || r.seq != seq {
                return Err(corrupt("record does not match the index"));
            }
            if r.kind == Kind::Compressed {
                let subject = std::str::from_utf8(r.subject)
                    .map_err(|_| corrupt("subject is not utf-8"))?
                    .to_string();
                let (body, h) = r.body().map_err(corrupt)?;
                let body = Bytes::from(body);
                return Ok(Some(StoredMsg {
                    seq,
                    ts: e.ts,
                    headers: (h > 0).then(|| body.slice(..h)),
                    payload: body.slice(h..),
                    raw: (h > 0).then(|| body.clone()),
                    subject,
                }));
            }
            let subject = std::str::from_utf8(r.subject)
                .map_err(|_| corrupt("subject is not utf-8"))?
                .to_string();
            (subject, r.headers.len(), r.payload.len())
        };
        let h = HEADER_LEN + subject.len();
        let p = h + hdr_len;
        Ok(Some(StoredMsg {
            seq,
            ts: e.ts,
            headers: (hdr_len > 0).then(|| buf.slice(h..p)),
            payload: buf.slice(p..p + payload_len),
            raw: (hdr_len > 0).then(|| buf.slice(h..p + payload_len)),
            subject,
        }))
    }
}

impl StreamStore for FileStore {
    fn append(
        &mut self,
        subject: &str,
        headers: Option<Bytes>,
        payload: Bytes,
        ts_nanos: i64,
    ) -> Result<(u64, i64), StoreError> {
        self.mutate(|s| {
            if subject.is_empty() || subject.len() > u16::MAX as usize {
                return Err(StoreError::InvalidSubject);
            }
            let headers = normalize_headers(headers);
            let hdr: &[u8] = headers.as_deref().unwrap_or(&[]);
            if record::encoded_len(subject.len(), hdr.len(), payload.len()) > MAX_RECORD_LEN {
                return Err(StoreError::MsgTooLarge);
            }
            limits::check_append(
                &s.index,
                &s.limits,
                subject,
                (hdr.len() + payload.len()) as u64,
            )?;
            let seq = s.index.next_seq()?;
            let packed = if s.cfg.compress {
                record::compress(hdr, &payload)
            } else {
                None
            };
            let len = match &packed {
                Some(blob) => record::encoded_len(subject.len(), 0, blob.len()),
                None => record::encoded_len(subject.len(), hdr.len(), payload.len()),
            };
            let b = s.block_for(len as u64)?;
            let Some(block) = s.blocks.get_mut(&b) else {
                return Err(StoreError::Io(std::io::Error::other("write block missing")));
            };
            let loc = match &packed {
                Some(blob) => block.push_parts(
                    seq,
                    ts_nanos,
                    Kind::Compressed,
                    subject.as_bytes(),
                    hdr.len(),
                    &[blob],
                ),
                None => block.push(seq, ts_nanos, Kind::Msg, subject.as_bytes(), hdr, &payload),
            };
            block.live += 1;
            let size = file_msg_size(subject, Some(hdr), &payload);
            s.index.insert(seq, ts_nanos, subject, size, loc);
            s.since_checkpoint += 1;
            let (blocks, emptied, dead) = (&mut s.blocks, &mut s.emptied, &mut s.dead);
            limits::enforce(&mut s.index, &s.limits, Some(subject), |q, e| {
                Self::removed(blocks, emptied, dead, q, &e)
            });
            Ok((seq, ts_nanos))
        })
    }

    fn commit(&mut self) -> Result<(), StoreError> {
        self.mutate(|s| s.commit_inner())
    }

    fn sync(&mut self) -> Result<(), StoreError> {
        self.mutate(|s| s.sync_files())
    }

    fn get(&self, seq: u64) -> Result<Option<StoredMsg>, StoreError> {
        self.read_msg(seq)
    }

    fn timestamp(&self, seq: u64) -> Option<i64> {
        self.index.get(seq).map(|e| e.ts)
    }

    fn subject_of(&self, seq: u64) -> Option<String> {
        self.index.get(seq).map(|e| e.subject.to_string())
    }

    fn aged(
        &self,
        cutoff_nanos: i64,
        skip: &dyn Fn(u64) -> bool,
        max: usize,
    ) -> Vec<(u64, String)> {
        self.index.aged(cutoff_nanos, skip, max)
    }

    fn last_seq_of_subject_at(&self, subject: &str, max_seq: u64) -> Option<u64> {
        self.index.last_of_subject_at(subject, max_seq)
    }

    fn last_by_subject(&self, subject: &str) -> Result<Option<StoredMsg>, StoreError> {
        match self.index.last_of_subject(subject) {
            Some(seq) => self.read_msg(seq),
            None => Ok(None),
        }
    }

    fn next_by_subject(
        &self,
        from_seq: u64,
        filter: &str,
    ) -> Result<Option<StoredMsg>, StoreError> {
        match self.index.next_matching(from_seq, filter) {
            Some(seq) => self.read_msg(seq),
            None => Ok(None),
        }
    }

    fn delete(&mut self, seq: u64, erase: bool) -> Result<bool, StoreError> {
        self.mutate(|s| {
            let Some(e) = s.remove_seq(seq) else {
                return Ok(false);
            };
            if erase {
                s.erasures.push(e.loc);
            }
            s.commit_inner()?;
            Ok(true)
        })
    }

    fn delete_many(&mut self, seqs: &[u64]) -> Result<u64, StoreError> {
        self.mutate(|s| {
            let n = seqs.iter().filter(|q| s.remove_seq(**q).is_some()).count() as u64;
            if n > 0 {
                s.commit_inner()?;
            }
            Ok(n)
        })
    }

    fn purge(&mut self, req: PurgeRequest) -> Result<u64, StoreError> {
        self.mutate(|s| {
            let (blocks, emptied, dead) = (&mut s.blocks, &mut s.emptied, &mut s.dead);
            let n = limits::purge(&mut s.index, &req, |q, e| {
                Self::removed(blocks, emptied, dead, q, &e)
            });
            s.markers_dirty = true;
            if s.index.len() == 0 {
                s.force_roll = true;
            }
            s.commit_inner()?;
            Ok(n)
        })
    }

    fn expire(&mut self, now_nanos: i64) -> Result<u64, StoreError> {
        self.mutate(|s| {
            let (blocks, emptied, dead) = (&mut s.blocks, &mut s.emptied, &mut s.dead);
            let n = limits::expire(&mut s.index, &s.limits, now_nanos, |q, e| {
                Self::removed(blocks, emptied, dead, q, &e)
            });
            if n > 0 {
                s.commit_inner()?;
            }
            Ok(n)
        })
    }

    fn set_compression(&mut self, on: bool) {
        self.cfg.compress = on;
    }

    fn set_limits(&mut self, new: StoreLimits) -> Result<(), StoreError> {
        self.mutate(|s| {
            s.limits = new;
            let (blocks, emptied, dead) = (&mut s.blocks, &mut s.emptied, &mut s.dead);
            limits::enforce(&mut s.index, &s.limits, None, |q, e| {
                Self::removed(blocks, emptied, dead, q, &e)
            });
            s.commit_inner()
        })
    }

    fn limits(&self) -> &StoreLimits {
        &self.limits
    }

    fn skip_to(&mut self, seq: u64, ts_nanos: i64) -> Result<(), StoreError> {
        if seq > crate::MAX_SEQ {
            return Err(StoreError::SequenceExhausted);
        }
        self.mutate(|s| {
            if seq <= s.index.last_seq().saturating_add(1) {
                return Ok(());
            }
            if s.index.state().msgs == 0 {
                // Nothing live: a floor at `seq` (as `first_seq`), written at the commit.
                s.index.raise_floor(seq, |_, _| {});
                s.markers_dirty = true;
            } else {
                // A tombstone for `seq - 1` keeps `last_seq` across a restart.
                s.index.note_seq(seq - 1, ts_nanos);
                s.dead.push((seq - 1, ts_nanos));
            }
            Ok(())
        })
    }

    fn set_first_seq(&mut self, seq: u64) -> Result<(), StoreError> {
        self.mutate(|s| {
            check_first_seq(&s.index, seq)?;
            if seq > s.index.first_or_next() {
                s.index.raise_floor(seq, |_, _| {});
                s.markers_dirty = true;
                s.commit_inner()?;
            }
            Ok(())
        })
    }

    fn state(&self) -> StreamState {
        let mut st = self.index.state();
        st.lost = self.lost.clone();
        st
    }

    fn rollbacks(&self) -> u64 {
        self.rollbacks
    }

    fn subjects_state(&self, filter: &str) -> BTreeMap<String, u64> {
        self.index.subjects_state(filter)
    }

    fn num_pending(&self, from_seq: u64, filter: &str) -> u64 {
        self.index.num_pending(from_seq, filter)
    }

    fn close(&mut self) -> Result<(), StoreError> {
        self.mutate(|s| {
            s.commit_inner()?;
            s.sync_files()?;
            // Nothing since the last checkpoint (an idle stream): the one on disk is
            // current; rewriting it would cost a file and two fsyncs per stream.
            if s.since_checkpoint > 0 {
                s.write_checkpoint()?;
            }
            Ok(())
        })
    }
}
