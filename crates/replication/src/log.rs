//! [`FileLog`]: a Raft log and vote in one directory. `raft.log` holds the entries as
//! records `[len u32 LE][crc32 u32 LE][entry, postcard]`. An append is written at once and
//! openraft goes on; one fsync round on a blocking thread then covers every append written
//! before it (group commit) and only then tells openraft (`LogFlushed`), which acknowledges
//! nothing before that. Truncations and purges first finish the round, so flushes are
//! reported in the order the file changed. `state.json` holds the vote and the last purged log
//! id, written with the store's one atomic-write rule. Memory holds each entry's offset
//! (8 bytes) and the newest entries decoded, up to [`CACHE_BYTES`] of records: a follower
//! that keeps up is served from memory, an older entry is read back from the file and its
//! CRC checked again. A purge forgets entries and, once more than half of the file is
//! purged, copies the rest into a new file. Recovery reads the file back, stops at the first
//! record that is torn, fails its CRC, does not parse or breaks the index sequence, and
//! truncates the file there: an entry that was never acknowledged may be lost, an
//! acknowledged one never (it was fsynced).

use std::collections::VecDeque;
use std::fmt::Debug;
use std::io;
use std::ops::RangeBounds;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use openraft::storage::{LogFlushed, RaftLogStorage};
use openraft::{LogId, LogState, RaftLogId, RaftLogReader, RaftTypeConfig, StorageError, Vote};
use parking_lot::Mutex;
use petrel_store::{write_atomic, Backend, BackendFile};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

/// The entries' file.
const LOG_FILE: &str = "raft.log";
/// The vote and purge point.
const STATE_FILE: &str = "state.json";
/// Record header: length and CRC32.
const HEADER: usize = 8;
/// Largest record taken back from disk (a length beyond it is corruption).
const MAX_RECORD: usize = 64 * 1024 * 1024;
/// Purged bytes that make a rewrite worth it.
const COMPACT_MIN: u64 = 1024 * 1024;
/// Record bytes of the newest entries kept decoded in memory.
const CACHE_BYTES: usize = 1024 * 1024;

/// What recovery found in the log file.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LogRecovery {
    /// Entries kept.
    pub entries: usize,
    /// Bytes cut from the end (a torn, corrupt or out-of-sequence tail).
    pub cut_bytes: u64,
    /// Why the tail was cut, when it was.
    pub reason: Option<String>,
    /// The cut began at a complete record that is damaged (a CRC or decoding failure, an
    /// out-of-sequence index, an impossible length), not at a torn or zero-filled append:
    /// entries that were fsynced — and possibly acknowledged — may be gone.
    pub damaged: bool,
}

/// `state.json`.
#[derive(Serialize, Deserialize)]
#[serde(bound = "")]
struct State<C: RaftTypeConfig> {
    vote: Option<Vote<C::NodeId>>,
    last_purged: Option<LogId<C::NodeId>>,
}

pub(crate) struct Inner<C: RaftTypeConfig> {
    backend: Arc<dyn Backend>,
    dir: PathBuf,
    file: Arc<dyn BackendFile>,
    /// The index of the first entry kept (`offsets[0]`).
    first: u64,
    /// Where each kept entry's record starts, from `first` on: the only per-entry memory
    /// besides the cache (8 bytes).
    offsets: VecDeque<u64>,
    /// The last entry's log id.
    last: Option<LogId<C::NodeId>>,
    /// The newest entries, decoded, with their record sizes: what followers that keep up
    /// read. Older ones are read back from the file (CRC-checked).
    cache: VecDeque<(C::Entry, usize)>,
    /// Record bytes in `cache`.
    cache_bytes: usize,
    /// The most `cache` may hold ([`CACHE_BYTES`]; tests lower it).
    pub(crate) cache_limit: usize,
    /// Purged bytes that make a rewrite worth it ([`COMPACT_MIN`]; tests lower it).
    pub(crate) compact_min: u64,
    /// Where the next record goes.
    end: u64,
    vote: Option<Vote<C::NodeId>>,
    last_purged: Option<LogId<C::NodeId>>,
}

/// A Raft log and vote on disk, shared by the group's storage and its log readers.
pub struct FileLog<C: RaftTypeConfig> {
    pub(crate) inner: Arc<Mutex<Inner<C>>>,
    flush: Arc<Flush<C>>,
}

impl<C: RaftTypeConfig> Clone for FileLog<C> {
    fn clone(&self) -> Self {
        Self {
            inner: self.inner.clone(),
            flush: self.flush.clone(),
        }
    }
}

/// Appends written and not yet fsynced, and the rounds that fsync them.
struct Flush<C: RaftTypeConfig> {
    /// The waiting appends' callbacks, and whether a round is scheduled.
    queue: Mutex<(Vec<LogFlushed<C>>, bool)>,
    /// Held through a round (fsync, then callbacks) and by truncations and purges.
    round: Mutex<()>,
}

impl<C: RaftTypeConfig> Flush<C> {
    /// Fsyncs and reports every append waiting now (the caller holds `round`). Locks the
    /// log only to take its file.
    fn drain(&self, inner: &Mutex<Inner<C>>) {
        let waiting = std::mem::take(&mut self.queue.lock().0);
        if waiting.is_empty() {
            return;
        }
        let file = inner.lock().file.clone();
        let synced = file.sync();
        for callback in waiting {
            let result = match &synced {
                Ok(()) => Ok(()),
                Err(e) => Err(io::Error::new(e.kind(), e.to_string())),
            };
            callback.log_io_completed(result);
        }
    }

    /// Rounds until nothing waits. Blocking.
    fn rounds(&self, inner: &Mutex<Inner<C>>) {
        loop {
            let _round = self.round.lock();
            {
                let mut q = self.queue.lock();
                if q.0.is_empty() {
                    q.1 = false;
                    return;
                }
            }
            self.drain(inner);
        }
    }
}

fn io_err(e: impl std::fmt::Display) -> io::Error {
    io::Error::other(e.to_string())
}

impl<C> FileLog<C>
where
    C: RaftTypeConfig,
    C::Entry: Serialize + DeserializeOwned + Clone,
{
    /// Opens (or creates) the log in `dir`, recovering what is there.
    pub fn open(backend: Arc<dyn Backend>, dir: &Path) -> io::Result<(Self, LogRecovery)> {
        backend.create_dir_all(dir)?;
        let state: State<C> = match petrel_store::read_all(backend.as_ref(), &dir.join(STATE_FILE))
        {
            Ok(bytes) => serde_json::from_slice(&bytes).map_err(io_err)?,
            Err(e) if e.kind() == io::ErrorKind::NotFound => State {
                vote: None,
                last_purged: None,
            },
            Err(e) => return Err(e),
        };
        let path = dir.join(LOG_FILE);
        let file: Arc<dyn BackendFile> = if backend.exists(&path) {
            Arc::from(backend.open(&path)?)
        } else {
            let f = backend.create(&path)?;
            backend.sync_dir(dir)?;
            Arc::from(f)
        };
        let mut inner = Inner {
            backend: backend.clone(),
            dir: dir.to_path_buf(),
            file,
            first: 0,
            offsets: VecDeque::new(),
            last: None,
            cache: VecDeque::new(),
            cache_bytes: 0,
            cache_limit: CACHE_BYTES,
            compact_min: COMPACT_MIN,
            end: 0,
            vote: state.vote,
            last_purged: state.last_purged,
        };
        let recovery = inner.recover()?;
        if recovery.cut_bytes > 0 {
            tracing::warn!(
                dir = %dir.display(),
                cut_bytes = recovery.cut_bytes,
                reason = recovery.reason.as_deref().unwrap_or(""),
                "Raft log tail cut at recovery"
            );
            if inner.uncommit_vote() {
                inner.save_state()?;
            }
        }
        Ok((
            Self {
                inner: Arc::new(Mutex::new(inner)),
                flush: Arc::new(Flush {
                    queue: Mutex::new((Vec::new(), false)),
                    round: Mutex::new(()),
                }),
            },
            recovery,
        ))
    }

    /// The index of the last entry (or of the last purged one), if any.
    pub fn last_index(&self) -> Option<u64> {
        let inner = self.inner.lock();
        inner
            .last
            .as_ref()
            .or(inner.last_purged.as_ref())
            .map(|l| l.index)
    }

    /// Record bytes of the entries after `index` (all kept ones for `None`).
    pub fn bytes_after(&self, index: Option<u64>) -> u64 {
        let inner = self.inner.lock();
        let from = index.map_or(0, |i| i.saturating_add(1)).max(inner.first);
        let pos = usize::try_from(from - inner.first).unwrap_or(usize::MAX);
        inner
            .offsets
            .get(pos)
            .map_or(0, |off| inner.end.saturating_sub(*off))
    }

    /// When the log is purged past `applied` (a machine that lost its state and found no
    /// snapshot to restore), empties it — entries, purge point and the vote's commitment
    /// (see [`FileLog::open`]) — and says so: the member must then be brought back by a
    /// leader's snapshot. Blocking.
    pub fn forget_purged_past(&self, applied: Option<LogId<C::NodeId>>) -> io::Result<bool> {
        let mut inner = self.inner.lock();
        let Some(purged) = inner.last_purged.clone() else {
            return Ok(false);
        };
        if applied.is_some_and(|a| a.index >= purged.index) {
            return Ok(false);
        }
        inner.file.set_len(0)?;
        inner.file.sync()?;
        inner.end = 0;
        inner.offsets.clear();
        inner.uncache(usize::MAX, true);
        inner.last = None;
        inner.last_purged = None;
        inner.uncommit_vote();
        inner.save_state()?;
        Ok(true)
    }

    /// Runs `f` on the log off the async runtime (it may fsync).
    async fn blocking<T: Send + 'static>(
        &self,
        f: impl FnOnce(&mut Inner<C>) -> io::Result<T> + Send + 'static,
    ) -> io::Result<T> {
        let inner = self.inner.clone();
        tokio::task::spawn_blocking(move || f(&mut inner.lock()))
            .await
            .map_err(io_err)?
    }

    /// [`FileLog::blocking`] for a change of the file's records (a truncation, a purge):
    /// the appends written before it are fsynced and reported first.
    async fn after_flush<T: Send + 'static>(
        &self,
        f: impl FnOnce(&mut Inner<C>) -> io::Result<T> + Send + 'static,
    ) -> io::Result<T> {
        let (inner, flush) = (self.inner.clone(), self.flush.clone());
        tokio::task::spawn_blocking(move || {
            let _round = flush.round.lock();
            flush.drain(&inner);
            f(&mut inner.lock())
        })
        .await
        .map_err(io_err)?
    }
}

impl<C> Inner<C>
where
    C: RaftTypeConfig,
    C::Entry: Serialize + DeserializeOwned + Clone,
{
    /// Reads the records back; cuts the file at the first bad one.
    fn recover(&mut self) -> io::Result<LogRecovery> {
        let size = self.file.size()?;
        let mut off = 0u64;
        let mut report = LogRecovery::default();
        let mut next: Option<u64> = None;
        while off < size {
            match self.read_record(off, size) {
                Ok((entry, len)) => {
                    let index = entry.get_log_id().index;
                    if next.is_some_and(|n| n != index) {
                        report.reason =
                            Some(format!("index {index} after {}", next.unwrap_or(0) - 1));
                        report.damaged = true;
                        break;
                    }
                    next = Some(index + 1);
                    if self.last_purged.as_ref().is_none_or(|p| index > p.index) {
                        self.keep(entry, off, len as usize);
                    }
                    off += len;
                }
                Err((why, damaged)) => {
                    report.reason = Some(why);
                    report.damaged = damaged;
                    break;
                }
            }
        }
        if off < size {
            report.cut_bytes = size - off;
            self.file.set_len(off)?;
            self.file.sync()?;
        }
        self.end = off;
        report.entries = self.offsets.len();
        Ok(report)
    }

    /// The record at `off`: its entry and length, or why it is not a good one and whether
    /// that is damage (see [`LogRecovery::damaged`]) rather than a torn append.
    fn read_record(&self, off: u64, size: u64) -> Result<(C::Entry, u64), (String, bool)> {
        if size - off < HEADER as u64 {
            return Err((format!("torn header at {off}"), false));
        }
        let mut head = [0u8; HEADER];
        self.file
            .read_at(&mut head, off)
            .map_err(|e| (e.to_string(), false))?;
        let len = u32::from_le_bytes([head[0], head[1], head[2], head[3]]) as usize;
        let crc = u32::from_le_bytes([head[4], head[5], head[6], head[7]]);
        if len == 0 {
            // A zero-filled tail: space the file grew by, never written.
            return Err((format!("zero-filled record at {off}"), false));
        }
        if len > MAX_RECORD {
            return Err((format!("oversized record at {off}"), true));
        }
        if (size - off - HEADER as u64) < len as u64 {
            return Err((format!("torn record at {off}"), false));
        }
        let mut body = vec![0u8; len];
        self.file
            .read_at(&mut body, off + HEADER as u64)
            .map_err(|e| (e.to_string(), false))?;
        if crc32fast::hash(&body) != crc {
            return Err((format!("CRC mismatch at {off}"), true));
        }
        let entry =
            postcard::from_bytes(&body).map_err(|e| (format!("bad entry at {off}: {e}"), true))?;
        Ok((entry, (HEADER + len) as u64))
    }

    /// Notes an entry whose record (`len` bytes) starts at `off`, as the newest.
    fn keep(&mut self, entry: C::Entry, off: u64, len: usize) {
        let log_id = entry.get_log_id().clone();
        if self.offsets.is_empty() {
            self.first = log_id.index;
        }
        self.offsets.push_back(off);
        self.last = Some(log_id);
        self.cache.push_back((entry, len));
        self.cache_bytes += len;
        while self.cache_bytes > self.cache_limit && self.cache.len() > 1 {
            self.uncache(1, true);
        }
    }

    /// Drops `n` entries from the cache's oldest end (`front`) or newest end.
    fn uncache(&mut self, n: usize, front: bool) {
        for _ in 0..n.min(self.cache.len()) {
            let dropped = if front {
                self.cache.pop_front()
            } else {
                self.cache.pop_back()
            };
            self.cache_bytes -= dropped.map_or(0, |(_, len)| len);
        }
    }

    /// Un-commits the vote (not saved); whether it was committed. A member whose log lost
    /// entries must not resume leading with its saved vote (openraft restarts a committed
    /// vote for itself as leader, and its shorter log would then overwrite the followers'
    /// committed entries): it stands for election again, which a longer log on a quorum
    /// refuses.
    fn uncommit_vote(&mut self) -> bool {
        match self.vote.as_mut().filter(|v| v.committed) {
            Some(v) => {
                v.committed = false;
                true
            }
            None => false,
        }
    }

    /// The entry at `index` (kept), from the cache or read back from the file.
    fn entry(&self, index: u64) -> io::Result<C::Entry> {
        let pos = usize::try_from(index - self.first).map_err(io_err)?;
        let cached_from = self.offsets.len() - self.cache.len();
        if pos >= cached_from {
            return Ok(self.cache[pos - cached_from].0.clone());
        }
        let (entry, _) = self
            .read_record(self.offsets[pos], self.end)
            .map_err(|(why, _)| io_err(format!("raft log entry {index} unreadable: {why}")))?;
        if entry.get_log_id().index != index {
            return Err(io_err(format!("raft log entry {index} is out of place")));
        }
        Ok(entry)
    }

    /// The kept entries in `range`.
    fn entries(&self, range: impl RangeBounds<u64>) -> io::Result<Vec<C::Entry>> {
        use std::ops::Bound;
        let from = match range.start_bound() {
            Bound::Included(i) => *i,
            Bound::Excluded(i) => i.saturating_add(1),
            Bound::Unbounded => 0,
        }
        .max(self.first);
        let to = match range.end_bound() {
            Bound::Included(i) => i.saturating_add(1),
            Bound::Excluded(i) => *i,
            Bound::Unbounded => u64::MAX,
        }
        .min(self.first + self.offsets.len() as u64);
        (from..to.max(from)).map(|i| self.entry(i)).collect()
    }

    /// Appends `entries`, fsynced.
    #[cfg(test)]
    pub(crate) fn append(&mut self, entries: Vec<C::Entry>) -> io::Result<()> {
        self.write(entries)?;
        self.file.sync()
    }

    /// Writes `entries` after the last one, not fsynced (readable at once).
    fn write(&mut self, entries: Vec<C::Entry>) -> io::Result<()> {
        let mut buf = Vec::new();
        let mut at = Vec::with_capacity(entries.len());
        for e in &entries {
            let body = postcard::to_stdvec(e).map_err(io_err)?;
            let len = u32::try_from(body.len()).map_err(io_err)?;
            at.push((self.end + buf.len() as u64, HEADER + body.len()));
            buf.extend_from_slice(&len.to_le_bytes());
            buf.extend_from_slice(&crc32fast::hash(&body).to_le_bytes());
            buf.extend_from_slice(&body);
        }
        self.file.write_at(&buf, self.end)?;
        self.end += buf.len() as u64;
        for (e, (off, len)) in entries.into_iter().zip(at) {
            self.keep(e, off, len);
        }
        Ok(())
    }

    /// Removes the entries from `index` on (conflicting ones a new leader replaces).
    fn truncate(&mut self, index: u64) -> io::Result<()> {
        let keep = usize::try_from(index.saturating_sub(self.first)).map_err(io_err)?;
        let Some(&off) = self.offsets.get(keep) else {
            return Ok(());
        };
        self.file.set_len(off)?;
        self.file.sync()?;
        self.end = off;
        self.uncache(self.offsets.len() - keep, false);
        self.offsets.truncate(keep);
        self.last = match keep {
            0 => None,
            _ => Some(
                self.entry(self.first + keep as u64 - 1)?
                    .get_log_id()
                    .clone(),
            ),
        };
        Ok(())
    }

    /// Forgets the entries up to `log_id` (in a snapshot now); rewrites the file when
    /// most of it is purged.
    fn purge(&mut self, log_id: LogId<C::NodeId>) -> io::Result<()> {
        self.last_purged = Some(log_id.clone());
        self.save_state()?;
        let drop = usize::try_from((log_id.index + 1).saturating_sub(self.first))
            .map_err(io_err)?
            .min(self.offsets.len());
        let uncached = self.offsets.len() - self.cache.len();
        self.uncache(drop.saturating_sub(uncached), true);
        self.offsets.drain(..drop);
        self.first = self.first.max(log_id.index + 1);
        if self.offsets.is_empty() {
            self.last = None;
        }
        let start = self.offsets.front().copied().unwrap_or(self.end);
        if start >= self.compact_min && start * 2 >= self.end {
            self.rewrite(start)?;
        }
        Ok(())
    }

    /// Copies the records from `start` on into a new file, renamed over the log.
    fn rewrite(&mut self, start: u64) -> io::Result<()> {
        let tmp = self.dir.join(format!("{LOG_FILE}.tmp"));
        let file = self.backend.create(&tmp)?;
        let mut off = start;
        let mut buf = vec![0u8; 1 << 20];
        while off < self.end {
            let n = usize::try_from((self.end - off).min(buf.len() as u64)).map_err(io_err)?;
            self.file.read_at(&mut buf[..n], off)?;
            file.write_at(&buf[..n], off - start)?;
            off += n as u64;
        }
        file.sync()?;
        self.backend.rename(&tmp, &self.dir.join(LOG_FILE))?;
        self.backend.sync_dir(&self.dir)?;
        self.file = Arc::from(file);
        self.end -= start;
        for o in self.offsets.iter_mut() {
            *o -= start;
        }
        Ok(())
    }

    fn save_state(&self) -> io::Result<()> {
        let state = State::<C> {
            vote: self.vote.clone(),
            last_purged: self.last_purged.clone(),
        };
        let bytes = serde_json::to_vec(&state).map_err(io_err)?;
        write_atomic(self.backend.as_ref(), &self.dir, STATE_FILE, &bytes, true)
    }
}

impl<C> RaftLogReader<C> for FileLog<C>
where
    C: RaftTypeConfig,
    C::Entry: Serialize + DeserializeOwned + Clone,
{
    async fn try_get_log_entries<RB: RangeBounds<u64> + Clone + Debug + Send>(
        &mut self,
        range: RB,
    ) -> Result<Vec<C::Entry>, StorageError<C::NodeId>> {
        self.inner
            .lock()
            .entries(range)
            .map_err(|e| StorageError::from(openraft::StorageIOError::read_logs(&e)))
    }
}

impl<C> RaftLogStorage<C> for FileLog<C>
where
    C: RaftTypeConfig,
    C::Entry: Serialize + DeserializeOwned + Clone,
{
    type LogReader = Self;

    async fn get_log_state(&mut self) -> Result<LogState<C>, StorageError<C::NodeId>> {
        let inner = self.inner.lock();
        let last = inner.last.clone().or_else(|| inner.last_purged.clone());
        Ok(LogState {
            last_purged_log_id: inner.last_purged.clone(),
            last_log_id: last,
        })
    }

    async fn get_log_reader(&mut self) -> Self::LogReader {
        self.clone()
    }

    async fn save_vote(&mut self, vote: &Vote<C::NodeId>) -> Result<(), StorageError<C::NodeId>> {
        let vote = vote.clone();
        self.blocking(move |inner| {
            inner.vote = Some(vote);
            inner.save_state()
        })
        .await
        .map_err(|e| StorageError::from(openraft::StorageIOError::write_vote(&e)))
    }

    async fn read_vote(&mut self) -> Result<Option<Vote<C::NodeId>>, StorageError<C::NodeId>> {
        Ok(self.inner.lock().vote.clone())
    }

    async fn append<I>(
        &mut self,
        entries: I,
        callback: LogFlushed<C>,
    ) -> Result<(), StorageError<C::NodeId>>
    where
        I: IntoIterator<Item = C::Entry> + Send,
        I::IntoIter: Send,
    {
        // Written here (into the page cache: readable as openraft requires once this
        // returns), fsynced by a round on a blocking thread that reports it.
        let entries: Vec<C::Entry> = entries.into_iter().collect();
        if let Err(e) = self.inner.lock().write(entries) {
            let err = StorageError::from(openraft::StorageIOError::write_logs(&e));
            callback.log_io_completed(Err(e));
            return Err(err);
        }
        let schedule = {
            let mut q = self.flush.queue.lock();
            q.0.push(callback);
            !std::mem::replace(&mut q.1, true)
        };
        if schedule {
            let (inner, flush) = (self.inner.clone(), self.flush.clone());
            tokio::task::spawn_blocking(move || flush.rounds(&inner));
        }
        Ok(())
    }

    async fn truncate(&mut self, log_id: LogId<C::NodeId>) -> Result<(), StorageError<C::NodeId>> {
        self.after_flush(move |inner| inner.truncate(log_id.index))
            .await
            .map_err(|e| StorageError::from(openraft::StorageIOError::write_logs(&e)))
    }

    async fn purge(&mut self, log_id: LogId<C::NodeId>) -> Result<(), StorageError<C::NodeId>> {
        self.after_flush(move |inner| inner.purge(log_id))
            .await
            .map_err(|e| StorageError::from(openraft::StorageIOError::write_logs(&e)))
    }
}
