//! The file store's write path: choosing and rolling the write block, deletion markers
//! (floors and tombstones), removal of emptied blocks, in-place erasure, and `commit` / `sync`.
//!
//! `commit` runs, in order: roll (after a purge of everything), deletion markers, removal plan
//! (which may add carried-over markers), one write per block with pending bytes, erasures,
//! fsync (always with `SyncMode::Always`, and before any block removal in every mode) —
//! the commit point — then removal of emptied blocks (oldest first, then a directory
//! fsync) and the periodic checkpoint, whose failures are logged and retried later. A
//! failure before the commit point rolls the store back (see `FileStore::mutate`).

use std::mem;

use super::block::{block_file_name, Block};
use super::record::{self, Kind, OVERHEAD};
use super::{FileStore, SyncMode};
use crate::error::StoreError;

impl FileStore {
    /// Index of the write block (the newest), if any.
    pub(super) fn write_index(&self) -> Option<u32> {
        self.blocks.keys().next_back().copied()
    }

    /// Creates the next block file and makes it the write block.
    fn roll(&mut self) -> Result<u32, StoreError> {
        // A write block left without live messages (only markers) becomes a candidate now.
        if let Some((i, b)) = self.blocks.last_key_value() {
            if b.live == 0 {
                self.emptied.insert(*i);
            }
        }
        let index = self.next_block;
        let path = self.msgs_dir.join(block_file_name(index));
        let file = self.backend.create(&path)?;
        self.blocks.insert(index, Block::new(index, file, 0));
        self.next_block += 1;
        self.dir_dirty = true;
        tracing::debug!(stream = %self.name, block = index, "new block");
        Ok(index)
    }

    /// The block a record of `len` bytes goes to: the write block, or a new one when the
    /// record would take a non-empty write block past `block_size`.
    pub(super) fn block_for(&mut self, len: u64) -> Result<u32, StoreError> {
        match self.blocks.last_key_value() {
            Some((i, b)) if b.size() == 0 || b.size() + len <= self.cfg.block_size => Ok(*i),
            _ => self.roll(),
        }
    }

    /// Appends a bodiless marker record (tombstone or floor) to the write block.
    fn push_marker(&mut self, kind: Kind, seq: u64, ts: i64) -> Result<u32, StoreError> {
        let b = self.block_for(OVERHEAD as u64)?;
        if let Some(block) = self.blocks.get_mut(&b) {
            block.push(seq, ts, kind, &[], &[], &[]);
        }
        self.since_checkpoint += 1;
        Ok(b)
    }

    /// Writes a floor for everything below the first live sequence when it moved, and a
    /// tombstone for every other message removed since the last commit.
    fn emit_deletion_markers(&mut self) -> Result<(), StoreError> {
        if !self.markers_dirty && self.dead.is_empty() {
            return Ok(());
        }
        self.markers_dirty = false;
        // Before any sequence was assigned only an explicit floor (first_seq, purge) counts:
        // "everything below 1 is gone" would change what a fresh store reports.
        let floor = if self.index.last_seq() == 0 {
            self.index.floor()
        } else {
            self.index.first_or_next()
        };
        if floor > self.durable_floor {
            let b = self.push_marker(Kind::Floor, floor, self.index.last_ts())?;
            self.durable_floor = floor;
            self.floor_block = Some(b);
        }
        for (seq, ts) in mem::take(&mut self.dead) {
            if seq >= self.durable_floor {
                self.push_marker(Kind::Tombstone, seq, ts)?;
            }
        }
        Ok(())
    }

    /// Picks the blocks to remove (no live message, not the write block) and first writes
    /// whatever they hold that is still needed: tombstones for messages of surviving blocks,
    /// the newest floor, and a tombstone for `last_seq` if no survivor covers it any more.
    fn plan_removals(&mut self) -> Result<Vec<u32>, StoreError> {
        if self.emptied.is_empty() && !self.highwater_check {
            return Ok(Vec::new());
        }
        let write = self.write_index();
        let blocks = &self.blocks;
        let empty = |i: &u32| blocks.get(i).is_some_and(|b| b.live == 0);
        let doomed: Vec<u32> = self
            .emptied
            .iter()
            .filter(|i| Some(**i) != write && empty(i))
            .copied()
            .collect();
        // Only an empty write block stays a candidate (for when it stops being written).
        self.emptied.retain(|i| Some(*i) == write && empty(i));
        if doomed.is_empty() && !self.highwater_check {
            return Ok(doomed);
        }
        self.highwater_check = false;
        // Message ranges of the survivors, in block order (ranges grow with the index).
        let ranges: Vec<(u64, u64)> = self
            .blocks
            .values()
            .filter(|b| !doomed.contains(&b.index))
            .filter_map(|b| b.msg_range)
            .collect();
        let in_survivor = |seq: u64| {
            let i = ranges.partition_point(|(first, _)| *first <= seq);
            i > 0 && ranges[i - 1].1 >= seq
        };
        let mut carry = Vec::new();
        for i in &doomed {
            if let Some(b) = self.blocks.get(i) {
                carry.extend(
                    b.tombs
                        .iter()
                        .filter(|(seq, _)| *seq >= self.durable_floor && in_survivor(*seq))
                        .copied(),
                );
            }
        }
        for (seq, ts) in carry {
            self.push_marker(Kind::Tombstone, seq, ts)?;
        }
        if self.durable_floor > 0 && self.floor_block.is_some_and(|b| doomed.contains(&b)) {
            let b = self.push_marker(Kind::Floor, self.durable_floor, self.index.last_ts())?;
            self.floor_block = Some(b);
        }
        let covered = self
            .blocks
            .values()
            .filter(|b| !doomed.contains(&b.index))
            .map(|b| b.max_seq)
            .max()
            .unwrap_or(0);
        let last = self.index.last_seq();
        if covered < last {
            self.push_marker(Kind::Tombstone, last, self.index.last_ts())?;
        }
        Ok(doomed)
    }

    /// Overwrites the records queued by `delete(.., erase = true)` (skipping removed blocks).
    fn apply_erasures(&mut self, doomed: &[u32]) -> Result<(), StoreError> {
        for loc in mem::take(&mut self.erasures) {
            if doomed.contains(&loc.block) {
                continue;
            }
            let Some(block) = self.blocks.get_mut(&loc.block) else {
                continue;
            };
            let mut buf = block.read(loc.offset, loc.len)?.to_vec();
            if let Err(reason) = record::erase(&mut buf) {
                tracing::warn!(stream = %self.name, block = loc.block, offset = loc.offset, reason,
                    "record to erase failed its checks; left as is");
                continue;
            }
            block.invalidate_reads();
            block.file.write_at(&buf, loc.offset)?;
            block.needs_sync = true;
            if let Some(last) = block.last.as_mut().filter(|l| l.offset == loc.offset) {
                let mut crc = [0u8; 4];
                crc.copy_from_slice(&buf[buf.len() - 4..]);
                last.crc = u32::from_le_bytes(crc);
            }
        }
        Ok(())
    }

    /// fsyncs every block written since the last sync, and the directory after creations.
    pub(super) fn sync_files(&mut self) -> Result<(), StoreError> {
        for b in self.blocks.values_mut().filter(|b| b.needs_sync) {
            b.file.sync()?;
            b.needs_sync = false;
        }
        if self.dir_dirty {
            self.backend.sync_dir(&self.msgs_dir)?;
            self.dir_dirty = false;
        }
        Ok(())
    }

    /// Removes block files, oldest first, then makes the removals durable. Runs after the
    /// commit is durable: a failure is logged and the blocks stay candidates for the next
    /// commit.
    fn remove_blocks(&mut self, doomed: Vec<u32>) {
        if doomed.is_empty() {
            return;
        }
        let mut removed = Vec::new();
        for i in doomed {
            match self.backend.remove(&self.msgs_dir.join(block_file_name(i))) {
                Ok(()) => {
                    self.blocks.remove(&i);
                    removed.push(i);
                }
                Err(e) => {
                    tracing::warn!(stream = %self.name, block = i, error = %e,
                        "removing an emptied block failed; will retry");
                    self.emptied.insert(i);
                }
            }
        }
        tracing::debug!(stream = %self.name, blocks = ?removed, "removed emptied blocks");
        if let Err(e) = self.backend.sync_dir(&self.msgs_dir) {
            tracing::warn!(stream = %self.name, error = %e, "syncing the block directory failed");
            self.dir_dirty = true;
        }
    }

    /// See the module doc.
    pub(super) fn commit_inner(&mut self) -> Result<(), StoreError> {
        if mem::take(&mut self.force_roll)
            && self
                .blocks
                .last_key_value()
                .is_some_and(|(_, b)| b.size() > 0)
        {
            self.roll()?;
        }
        self.emit_deletion_markers()?;
        let doomed = self.plan_removals()?;
        let write = self.write_index();
        for b in self.blocks.values_mut() {
            b.flush()?;
            if Some(b.index) != write {
                b.release_buffer();
            }
        }
        let erasing = !self.erasures.is_empty();
        if erasing {
            // The tombstones must be durable before any record is overwritten in place: a
            // write torn by a crash then only damages a message that is deleted anyway
            // (and recovery skips a damaged record that valid records follow).
            self.sync_files()?;
            self.apply_erasures(&doomed)?;
        }
        if self.cfg.sync == SyncMode::Always || !doomed.is_empty() || erasing {
            self.sync_files()?;
        }
        // Committed: what follows only tidies up, and its failures are retried later.
        self.mark_committed();
        self.remove_blocks(doomed);
        let every = self.cfg.checkpoint_every;
        if every > 0 && self.since_checkpoint >= every.max(self.index.len()) {
            if let Err(e) = self.write_checkpoint() {
                tracing::warn!(stream = %self.name, error = %e,
                    "writing the checkpoint failed; recovery will scan more");
            }
        }
        Ok(())
    }
}
