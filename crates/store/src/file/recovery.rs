//! Opening a file store: rebuild the index from the block files (from a valid checkpoint plus
//! the bytes written after it, or by a full scan), truncate a block at its first bad record,
//! and report what was cut. Never panics on disk content; see FORMAT.md, "Recovery".

use std::collections::BTreeMap;
use std::path::Path;
use std::time::{Duration, Instant};

use super::backend::{Backend, BackendFile};
use super::block::{block_file_name, parse_block_name, Block, LastRecord, Loc};
use super::checkpoint::{self, Checkpoint};
use super::record::{self, Kind, RecordRef, HEADER_LEN, OVERHEAD};
use super::RecoveryReport;
use crate::error::StoreError;
use crate::index::Index;
use crate::types::{file_msg_size_of, LostData};

/// Bytes read from a block file at a time.
const CHUNK: usize = 1 << 20;
/// Lost sequences listed at most (the byte count is always exact).
const MAX_LOST_LISTED: u64 = 1_000_000;
/// Interval between progress lines during long scans.
const PROGRESS_EVERY: Duration = Duration::from_secs(1);

/// What recovery hands to `FileStore::open`.
pub(super) struct Recovered {
    pub(super) index: Index<Loc>,
    pub(super) blocks: BTreeMap<u32, Block>,
    pub(super) durable_floor: u64,
    pub(super) floor_block: Option<u32>,
    pub(super) lost: Option<LostData>,
    pub(super) report: RecoveryReport,
    /// Highest block index on disk or in the checkpoint (indexes are never reused).
    pub(super) max_block: u32,
}

/// Sequences cut by truncation, resolved once the next surviving message is seen.
#[derive(Default)]
struct LostTracker {
    /// (first possibly lost sequence, last sequence the torn record's header claimed)
    open: Option<(u64, Option<u64>)>,
    msgs: Vec<u64>,
    bytes: u64,
}

impl LostTracker {
    fn push_range(&mut self, from: u64, to: u64) {
        for seq in from..=to {
            if self.msgs.len() as u64 >= MAX_LOST_LISTED {
                return;
            }
            self.msgs.push(seq);
        }
    }

    fn on_message(&mut self, seq: u64) {
        if let Some((from, _)) = self.open.take() {
            if seq > from {
                self.push_range(from, seq - 1);
            }
        }
    }

    /// A block was cut at a bad record; `from` is the first sequence after the last good
    /// record, `evidence` the highest sequence known to have been in the cut bytes.
    fn truncated(&mut self, from: u64, bytes: u64, evidence: Option<u64>) {
        self.bytes += bytes;
        let (from, prev) = self.open.map_or((from, None), |(f, h)| (f, h));
        self.open = Some((from, evidence.max(prev)));
    }
}

/// The rebuild state: applies verified records in log order.
struct Rebuild {
    index: Index<Loc>,
    blocks: BTreeMap<u32, Block>,
    durable_floor: u64,
    floor_block: Option<u32>,
    lost: LostTracker,
    records: u64,
}

impl Rebuild {
    fn apply(
        &mut self,
        block: u32,
        loc: Loc,
        crc: u32,
        r: &RecordRef<'_>,
    ) -> Result<(), &'static str> {
        if r.seq > crate::MAX_SEQ.saturating_add(1) {
            return Err("sequence out of range");
        }
        match r.kind {
            Kind::Msg | Kind::Compressed | Kind::Erased => {
                if r.seq == 0 || r.seq <= self.index.last_seq() {
                    return Err("message sequence not increasing");
                }
                let subject = if r.kind.is_msg() {
                    Some(std::str::from_utf8(r.subject).map_err(|_| "subject is not utf-8")?)
                } else {
                    None
                };
                self.lost.on_message(r.seq);
                match subject {
                    Some(subject) => {
                        let size = file_msg_size_of(subject, r.plain.0, r.plain.1);
                        self.index.insert(r.seq, r.ts, subject, size, loc);
                        if let Some(b) = self.blocks.get_mut(&block) {
                            b.live += 1;
                        }
                    }
                    None => self.index.note_seq(r.seq, r.ts),
                }
            }
            Kind::Tombstone => {
                self.index.note_seq(r.seq, r.ts);
                if let Some(e) = self.index.remove(r.seq) {
                    if let Some(b) = self.blocks.get_mut(&e.loc.block) {
                        b.live = b.live.saturating_sub(1);
                    }
                }
            }
            Kind::Floor => {
                if r.seq == 0 {
                    return Err("floor of zero");
                }
                self.index.note_seq(r.seq - 1, r.ts);
                let blocks = &mut self.blocks;
                self.index.raise_floor(r.seq, |_, e| {
                    if let Some(b) = blocks.get_mut(&e.loc.block) {
                        b.live = b.live.saturating_sub(1);
                    }
                });
                if r.seq >= self.durable_floor {
                    self.durable_floor = r.seq;
                    self.floor_block = Some(block);
                }
            }
        }
        let last = LastRecord {
            offset: loc.offset,
            len: loc.len,
            crc,
        };
        if let Some(b) = self.blocks.get_mut(&block) {
            b.note(r.kind, r.seq, r.ts, last);
        }
        self.records += 1;
        Ok(())
    }
}

/// What a block scan hands to its caller.
enum Scanned<'a, 'b> {
    /// A record that passed every check.
    Record {
        offset: u64,
        rec: &'a [u8],
        r: &'b RecordRef<'a>,
    },
    /// A damaged record that intact records follow, skipped on its own.
    Skipped {
        offset: u64,
        bytes: u64,
        seq: Option<u64>,
    },
}

/// Where a block scan stopped.
struct ScanEnd {
    /// End of the last good record.
    end: u64,
    /// The first bad record: (offset, reason, sequence its header claims if it is a message).
    bad: Option<(u64, &'static str, Option<u64>)>,
}

/// Reads records from `start` to `file_len`, handing each verified one to `apply`; stops at
/// the first record that fails a check (or that `apply` rejects).
fn scan_block(
    file: &dyn BackendFile,
    start: u64,
    file_len: u64,
    mut apply: impl FnMut(Scanned<'_, '_>) -> Result<(), &'static str>,
) -> std::io::Result<ScanEnd> {
    let mut buf: Vec<u8> = Vec::new();
    let mut buf_off = start;
    let mut pos = start;
    // Makes `buf` hold [pos, pos + need); the caller checked `pos + need <= file_len`.
    let ensure = |buf: &mut Vec<u8>, buf_off: &mut u64, pos: u64, need: usize| {
        if pos + need as u64 <= *buf_off + buf.len() as u64 {
            return Ok(());
        }
        let n = (need.max(CHUNK) as u64).min(file_len - pos) as usize;
        buf.clear();
        buf.resize(n, 0);
        file.read_at(buf, pos)?;
        *buf_off = pos;
        Ok::<(), std::io::Error>(())
    };
    while pos < file_len {
        let remaining = file_len - pos;
        let need = (HEADER_LEN as u64).min(remaining) as usize;
        ensure(&mut buf, &mut buf_off, pos, need)?;
        let at = (pos - buf_off) as usize;
        // A message record's header names its sequence (plain or compressed).
        let hint = (need == HEADER_LEN && matches!(buf[at + 20], 0 | 0x08)).then(|| {
            let mut s = [0u8; 8];
            s.copy_from_slice(&buf[at + 4..at + 12]);
            u64::from_le_bytes(s)
        });
        let bad = |reason| ScanEnd {
            end: pos,
            bad: Some((pos, reason, hint)),
        };
        if remaining < OVERHEAD as u64 {
            return Ok(bad("truncated record"));
        }
        let len = match record::read_len(&buf[at..]) {
            Ok(len) => len,
            Err(reason) => return Ok(bad(reason)),
        };
        if len as u64 > remaining {
            return Ok(bad("record runs past the end of the block"));
        }
        ensure(&mut buf, &mut buf_off, pos, len)?;
        let at = (pos - buf_off) as usize;
        let rec = &buf[at..at + len];
        let decoded = record::decode(rec);
        if decoded.is_err() && valid_record_at(file, pos + len as u64, file_len) {
            // A damaged record (a torn in-place erase, a flipped bit) that intact records
            // follow: skip it alone instead of cutting the rest of the block.
            let _ = apply(Scanned::Skipped {
                offset: pos,
                bytes: len as u64,
                seq: hint,
            });
            pos += len as u64;
            continue;
        }
        let verdict = decoded.and_then(|r| {
            apply(Scanned::Record {
                offset: pos,
                rec,
                r: &r,
            })
        });
        if let Err(reason) = verdict {
            return Ok(bad(reason));
        }
        pos += len as u64;
    }
    Ok(ScanEnd {
        end: pos,
        bad: None,
    })
}

/// Whether a record that passes every check starts at `pos` (used to decide that a bad
/// record is an isolated damage, not a torn tail).
fn valid_record_at(file: &dyn BackendFile, pos: u64, file_len: u64) -> bool {
    if pos + OVERHEAD as u64 > file_len {
        return false;
    }
    let mut head = [0u8; OVERHEAD];
    if file.read_at(&mut head, pos).is_err() {
        return false;
    }
    let Ok(len) = record::read_len(&head) else {
        return false;
    };
    if pos + len as u64 > file_len {
        return false;
    }
    let mut rec = vec![0u8; len];
    file.read_at(&mut rec, pos).is_ok() && record::decode(&rec).is_ok()
}

/// Largest cut region searched for surviving records (evidence of lost sequences).
const MAX_SALVAGE: u64 = 64 << 20;

/// Looks through the bytes after a bad record for records that still verify, and returns the
/// highest sequence they cover (`>= min`). Only evidence for the loss report and for never
/// reusing sequences: nothing found here is ever served.
fn salvage_max_seq(file: &dyn BackendFile, bad: u64, file_len: u64, min: u64) -> Option<u64> {
    let start = bad + 1;
    if start >= file_len || file_len - start > MAX_SALVAGE {
        return None;
    }
    let mut buf = vec![0u8; (file_len - start) as usize];
    file.read_at(&mut buf, start).ok()?;
    let mut best: Option<u64> = None;
    let mut i = 0usize;
    while i + OVERHEAD <= buf.len() {
        let found = record::read_len(&buf[i..])
            .ok()
            .filter(|len| i + len <= buf.len())
            .and_then(|len| record::decode(&buf[i..i + len]).ok().map(|r| (len, r)));
        match found {
            Some((len, r)) => {
                let covers = if r.kind == Kind::Floor {
                    r.seq.saturating_sub(1)
                } else {
                    r.seq
                };
                if covers >= min {
                    best = best.max(Some(covers));
                }
                i += len;
            }
            None => i += 1,
        }
    }
    best
}

/// Block files on disk, sorted by index.
fn list_blocks(backend: &dyn Backend, name: &str, msgs_dir: &Path) -> Result<Vec<u32>, StoreError> {
    let mut out = Vec::new();
    for f in backend.list(msgs_dir)? {
        match parse_block_name(&f) {
            Some(i) => out.push(i),
            None => tracing::warn!(stream = %name, file = %f, "ignoring unknown file in msgs/"),
        }
    }
    out.sort_unstable();
    Ok(out)
}

/// See the module doc.
pub(super) fn recover(
    backend: &dyn Backend,
    name: &str,
    dir: &Path,
    msgs_dir: &Path,
) -> Result<Recovered, StoreError> {
    let started = Instant::now();
    let indexes = list_blocks(backend, name, msgs_dir)?;
    let mut files: BTreeMap<u32, (Box<dyn BackendFile>, u64)> = BTreeMap::new();
    for i in &indexes {
        let f = backend.open(&msgs_dir.join(block_file_name(*i)))?;
        let len = f.size()?;
        files.insert(*i, (f, len));
    }
    let ck = checkpoint::load(backend, name, dir)?;
    let ck_last = ck.as_ref().map(|c| c.last_seq);
    let usable = ck.filter(|c| checkpoint::matches(c, &files, name));
    if usable.is_none() {
        checkpoint::remove_stale(backend, dir)?;
    }
    let mut rb = Rebuild {
        index: Index::default(),
        blocks: BTreeMap::new(),
        durable_floor: 0,
        floor_block: None,
        lost: LostTracker::default(),
        records: 0,
    };
    let mut starts: BTreeMap<u32, u64> = BTreeMap::new();
    let mut missing: Vec<u32> = Vec::new();
    let from_checkpoint = usable.is_some();
    let mut max_block = indexes.last().copied().unwrap_or(0);
    if let Some(c) = usable {
        max_block = max_block.max(c.blocks.last().map_or(0, |b| b.index));
        missing = load_checkpoint(&mut rb, c, &files, &mut starts);
    }
    let total = files.len();
    let mut report = RecoveryReport {
        from_checkpoint,
        blocks: total,
        ..RecoveryReport::default()
    };
    let mut last_progress = Instant::now();
    for (done, (&i, (file, len))) in files.iter().enumerate() {
        let len = *len;
        let start = starts.get(&i).copied().unwrap_or(0);
        rb.blocks
            .entry(i)
            .or_insert_with(|| Block::new(i, Box::new(NoFile), 0));
        let end = scan_block(file.as_ref(), start, len, |ev| match ev {
            Scanned::Record { offset, rec, r } => {
                let mut crc = [0u8; 4];
                crc.copy_from_slice(&rec[rec.len() - 4..]);
                let loc = Loc {
                    block: i,
                    offset,
                    len: rec.len() as u32,
                };
                rb.apply(i, loc, u32::from_le_bytes(crc), r)
            }
            Scanned::Skipped { offset, bytes, seq } => {
                let from = rb.index.last_seq().saturating_add(1);
                tracing::warn!(stream = %name, block = %msgs_dir.join(block_file_name(i)).display(),
                    offset, bytes, seq = ?seq, "skipping a damaged record (intact records follow)");
                // The damaged header's sequence is only evidence when it is the one expected.
                rb.lost.truncated(from, bytes, seq.filter(|s| *s == from));
                report.bytes_truncated += bytes;
                Ok(())
            }
        })?;
        if let Some((offset, reason, hint)) = end.bad {
            let cut = len - offset;
            let from = rb.index.last_seq().saturating_add(1);
            tracing::warn!(stream = %name, block = %msgs_dir.join(block_file_name(i)).display(),
                offset, bytes_cut = cut, first_seq_cut = from, reason,
                "truncating block at its first bad record");
            let salvaged = salvage_max_seq(file.as_ref(), offset, len, from);
            let evidence = hint.filter(|h| *h == from).max(salvaged);
            file.set_len(offset)?;
            file.sync()?;
            rb.lost.truncated(from, cut, evidence);
            report.bytes_truncated += cut;
        }
        if let Some(b) = rb.blocks.get_mut(&i) {
            b.written = end.end;
        }
        if last_progress.elapsed() >= PROGRESS_EVERY {
            last_progress = Instant::now();
            tracing::info!(stream = %name, block = i, done = done + 1, total,
                msgs = rb.index.len(), "recovering stream");
        }
    }
    for (i, (file, _)) in files {
        if let Some(b) = rb.blocks.get_mut(&i) {
            b.file = file;
        }
    }
    report.records_scanned = rb.records;
    drop_missing(&mut rb, &missing, name);
    let lost = finish_lost(&mut rb, ck_last);
    if let Some(l) = &lost {
        tracing::warn!(stream = %name, lost_msgs = l.msgs.len(), lost_bytes = l.bytes,
            first_lost = ?l.msgs.first(), last_lost = ?l.msgs.last(), "recovery lost data");
    }
    tracing::info!(stream = %name, msgs = rb.index.len(), bytes = rb.index.bytes(),
        first_seq = rb.index.first_or_next(), last_seq = rb.index.last_seq(), blocks = total,
        from_checkpoint, elapsed_ms = started.elapsed().as_millis() as u64, "stream recovered");
    Ok(Recovered {
        index: rb.index,
        blocks: rb.blocks,
        durable_floor: rb.durable_floor,
        floor_block: rb.floor_block,
        lost,
        report,
        max_block,
    })
}

/// A stand-in file handle for blocks being rebuilt; the real handle is put in at the end.
#[derive(Debug)]
struct NoFile;

impl BackendFile for NoFile {
    fn read_at(&self, _: &mut [u8], _: u64) -> std::io::Result<()> {
        Err(std::io::Error::other("no file"))
    }
    fn write_at(&self, _: &[u8], _: u64) -> std::io::Result<()> {
        Err(std::io::Error::other("no file"))
    }
    fn size(&self) -> std::io::Result<u64> {
        Ok(0)
    }
    fn set_len(&self, _: u64) -> std::io::Result<()> {
        Err(std::io::Error::other("no file"))
    }
    fn sync(&self) -> std::io::Result<()> {
        Err(std::io::Error::other("no file"))
    }
}

/// Seeds the rebuild from a validated checkpoint; returns the checkpointed blocks that no
/// longer exist on disk.
fn load_checkpoint(
    rb: &mut Rebuild,
    c: Checkpoint,
    files: &BTreeMap<u32, (Box<dyn BackendFile>, u64)>,
    starts: &mut BTreeMap<u32, u64>,
) -> Vec<u32> {
    let mut missing = Vec::new();
    for cb in &c.blocks {
        if !files.contains_key(&cb.index) {
            missing.push(cb.index);
            continue;
        }
        let mut b = Block::new(cb.index, Box::new(NoFile), cb.len);
        b.msg_range = cb.msg_range;
        b.max_seq = cb.max_seq;
        b.max_ts = cb.max_ts;
        b.tombs = cb.tombs.clone();
        b.last = cb.last;
        rb.blocks.insert(cb.index, b);
        starts.insert(cb.index, cb.len);
    }
    for m in &c.msgs {
        let Some(subject) = c.subjects.get(m.subject as usize) else {
            continue;
        };
        let size = m.size;
        let loc = Loc {
            block: m.block,
            offset: m.offset,
            len: m.len,
        };
        rb.index.insert(m.seq, m.ts, subject, size, loc);
        if let Some(b) = rb.blocks.get_mut(&m.block) {
            b.live += 1;
        }
    }
    rb.index.note_seq(c.last_seq, c.last_ts);
    rb.index.raise_floor(c.floor, |_, _| {});
    rb.durable_floor = c.durable_floor;
    rb.floor_block = c.floor_block;
    missing
}

/// Drops index entries whose block was removed after the checkpoint. The store removes a
/// block only when none of its messages is live, and a death whose marker went away with
/// another removed block is not re-recorded, so such entries are dead, not lost.
fn drop_missing(rb: &mut Rebuild, missing: &[u32], name: &str) {
    if missing.is_empty() {
        return;
    }
    let gone: Vec<u64> = rb
        .index
        .iter()
        .filter(|(_, e)| missing.contains(&e.loc.block))
        .map(|(s, _)| s)
        .collect();
    for seq in &gone {
        rb.index.remove(*seq);
    }
    tracing::debug!(stream = %name, msgs = gone.len(), blocks = ?missing,
        "dropped checkpointed entries of blocks removed since the checkpoint");
}

/// Closes an open lost range (using the checkpoint's last sequence, the torn header and
/// salvaged records as evidence), raises `last_seq` past it so sequences are never reused,
/// and builds the report.
fn finish_lost(rb: &mut Rebuild, ck_last: Option<u64>) -> Option<LostData> {
    // A checkpoint that knew later sequences than the blocks hold means data went missing
    // even without a bad record (e.g. unsynced writes cut at a record boundary).
    if rb.lost.open.is_none() {
        if let Some(c) = ck_last.filter(|c| *c > rb.index.last_seq()) {
            rb.lost.open = Some((rb.index.last_seq().saturating_add(1), Some(c)));
        }
    }
    if let Some((from, hint)) = rb.lost.open.take() {
        let end = hint.into_iter().chain(ck_last).max().unwrap_or(0);
        if end >= from {
            rb.lost.push_range(from, end);
            let ts = rb.index.last_ts();
            rb.index.note_seq(end, ts);
        }
    }
    if rb.lost.bytes == 0 && rb.lost.msgs.is_empty() {
        return None;
    }
    rb.lost.msgs.sort_unstable();
    rb.lost.msgs.dedup();
    Some(LostData {
        msgs: std::mem::take(&mut rb.lost.msgs),
        bytes: rb.lost.bytes,
    })
}
