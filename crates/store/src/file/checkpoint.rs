//! The checkpoint file `index.chk`: the stream state, every block's summary and the full
//! message index, with its own CRC. Written atomically (temp file, fsync, rename, directory
//! fsync) on `close` and periodically from `commit`; used on open only when its CRC is valid
//! and every block it lists still ends, at the recorded length, with the recorded record.
//! Layout in FORMAT.md.

use std::collections::{BTreeMap, HashMap};
use std::path::Path;

use super::backend::{Backend, BackendFile};
use super::block::LastRecord;
use super::record;
use super::FileStore;
use crate::error::StoreError;

const MAGIC: &[u8; 8] = b"PTRLCHK\x01";
const VERSION: u32 = 1;
/// File name of the checkpoint in the stream directory.
pub(super) const FILE: &str = "index.chk";
/// Encoded size of one message entry.
const MSG_LEN: usize = 8 + 8 + 4 + 4 + 8 + 4 + 8;

/// One block as the checkpoint saw it.
#[derive(Debug)]
pub(super) struct CkBlock {
    pub(super) index: u32,
    pub(super) len: u64,
    pub(super) last: Option<LastRecord>,
    pub(super) msg_range: Option<(u64, u64)>,
    pub(super) max_seq: u64,
    pub(super) max_ts: i64,
    pub(super) tombs: Vec<(u64, i64)>,
}

/// One live message.
#[derive(Debug)]
pub(super) struct CkMsg {
    pub(super) seq: u64,
    pub(super) ts: i64,
    pub(super) subject: u32,
    pub(super) block: u32,
    pub(super) offset: u64,
    pub(super) len: u32,
    pub(super) size: u64,
}

/// A decoded checkpoint.
#[derive(Debug)]
pub(super) struct Checkpoint {
    pub(super) last_seq: u64,
    pub(super) last_ts: i64,
    pub(super) floor: u64,
    pub(super) durable_floor: u64,
    pub(super) floor_block: Option<u32>,
    pub(super) blocks: Vec<CkBlock>,
    pub(super) subjects: Vec<String>,
    pub(super) msgs: Vec<CkMsg>,
}

/// Bounds-checked little-endian reader.
struct Cur<'a> {
    b: &'a [u8],
    pos: usize,
}

impl<'a> Cur<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], &'static str> {
        let end = self.pos.checked_add(n).ok_or("length overflow")?;
        let s = self.b.get(self.pos..end).ok_or("truncated checkpoint")?;
        self.pos = end;
        Ok(s)
    }
    fn u8(&mut self) -> Result<u8, &'static str> {
        Ok(self.take(1)?[0])
    }
    fn u16(&mut self) -> Result<u16, &'static str> {
        let mut a = [0u8; 2];
        a.copy_from_slice(self.take(2)?);
        Ok(u16::from_le_bytes(a))
    }
    fn u32(&mut self) -> Result<u32, &'static str> {
        let mut a = [0u8; 4];
        a.copy_from_slice(self.take(4)?);
        Ok(u32::from_le_bytes(a))
    }
    fn u64(&mut self) -> Result<u64, &'static str> {
        let mut a = [0u8; 8];
        a.copy_from_slice(self.take(8)?);
        Ok(u64::from_le_bytes(a))
    }
    fn i64(&mut self) -> Result<i64, &'static str> {
        Ok(self.u64()? as i64)
    }
    /// A count whose entries take at least `min` bytes each: refuses counts the rest of the
    /// buffer cannot hold (no huge allocation from a bad count).
    fn count(&mut self, n: u64, min: usize) -> Result<usize, &'static str> {
        let n = usize::try_from(n).map_err(|_| "count overflow")?;
        if n.saturating_mul(min) > self.b.len() - self.pos {
            return Err("count exceeds checkpoint size");
        }
        Ok(n)
    }
}

fn decode(b: &[u8]) -> Result<Checkpoint, &'static str> {
    if b.len() < MAGIC.len() + 8 {
        return Err("too short");
    }
    let body = b.len() - 4;
    let mut crc = [0u8; 4];
    crc.copy_from_slice(&b[body..]);
    if crc32fast::hash(&b[..body]) != u32::from_le_bytes(crc) {
        return Err("crc mismatch");
    }
    let mut c = Cur {
        b: &b[..body],
        pos: 0,
    };
    if c.take(MAGIC.len())? != MAGIC {
        return Err("bad magic");
    }
    if c.u32()? != VERSION {
        return Err("unknown version");
    }
    let last_seq = c.u64()?;
    let last_ts = c.i64()?;
    let floor = c.u64()?;
    let durable_floor = c.u64()?;
    let max_floor = crate::MAX_SEQ.saturating_add(1);
    if last_seq > crate::MAX_SEQ || floor > max_floor || durable_floor > max_floor {
        return Err("sequence out of range");
    }
    let floor_block = Some(c.u32()?).filter(|i| *i > 0);
    let nblocks = c.u32()?;
    let nblocks = c.count(u64::from(nblocks), 4 + 8 + 1 + 16 + 1 + 16 + 16 + 4)?;
    let mut blocks: Vec<CkBlock> = Vec::with_capacity(nblocks);
    for _ in 0..nblocks {
        let index = c.u32()?;
        if blocks.last().is_some_and(|p| p.index >= index) || index == 0 {
            return Err("block indexes not increasing");
        }
        let len = c.u64()?;
        let has_last = c.u8()?;
        let (offset, rlen, rcrc) = (c.u64()?, c.u32()?, c.u32()?);
        let last = (has_last == 1).then_some(LastRecord {
            offset,
            len: rlen,
            crc: rcrc,
        });
        let has_range = c.u8()?;
        let (first, lastm) = (c.u64()?, c.u64()?);
        let max_seq = c.u64()?;
        let max_ts = c.i64()?;
        let ntombs = c.u32()?;
        let ntombs = c.count(u64::from(ntombs), 16)?;
        let mut tombs = Vec::with_capacity(ntombs);
        for _ in 0..ntombs {
            tombs.push((c.u64()?, c.i64()?));
        }
        blocks.push(CkBlock {
            index,
            len,
            last,
            msg_range: (has_range == 1).then_some((first, lastm)),
            max_seq,
            max_ts,
            tombs,
        });
    }
    let nsubj = c.u32()?;
    let nsubj = c.count(u64::from(nsubj), 2)?;
    let mut subjects = Vec::with_capacity(nsubj);
    for _ in 0..nsubj {
        let n = c.u16()? as usize;
        let s = std::str::from_utf8(c.take(n)?).map_err(|_| "subject not utf-8")?;
        subjects.push(s.to_string());
    }
    let nmsgs = c.u64()?;
    let nmsgs = c.count(nmsgs, MSG_LEN)?;
    let lens: HashMap<u32, u64> = blocks.iter().map(|b| (b.index, b.len)).collect();
    let mut msgs: Vec<CkMsg> = Vec::with_capacity(nmsgs);
    for _ in 0..nmsgs {
        let m = CkMsg {
            seq: c.u64()?,
            ts: c.i64()?,
            subject: c.u32()?,
            block: c.u32()?,
            offset: c.u64()?,
            len: c.u32()?,
            size: c.u64()?,
        };
        if msgs.last().is_some_and(|p| p.seq >= m.seq) || m.seq == 0 || m.seq > last_seq {
            return Err("message sequences not increasing");
        }
        if m.subject as usize >= subjects.len() {
            return Err("subject id out of range");
        }
        let blen = lens.get(&m.block).ok_or("message in unknown block")?;
        if m.offset
            .checked_add(u64::from(m.len))
            .is_none_or(|end| end > *blen)
            || (m.len as usize) < record::OVERHEAD
        {
            return Err("message location out of range");
        }
        msgs.push(m);
    }
    if c.pos != body {
        return Err("trailing bytes");
    }
    if floor_block.is_some_and(|f| !lens.contains_key(&f)) {
        return Err("floor block unknown");
    }
    Ok(Checkpoint {
        last_seq,
        last_ts,
        floor,
        durable_floor,
        floor_block,
        blocks,
        subjects,
        msgs,
    })
}

/// Reads and decodes `index.chk`; `None` when absent or invalid (logged).
pub(super) fn load(
    backend: &dyn Backend,
    name: &str,
    dir: &Path,
) -> Result<Option<Checkpoint>, StoreError> {
    let path = dir.join(FILE);
    if !backend.exists(&path) {
        return Ok(None);
    }
    let read = || -> std::io::Result<Vec<u8>> {
        let f = backend.open(&path)?;
        let len = usize::try_from(f.size()?).map_err(std::io::Error::other)?;
        let mut buf = vec![0u8; len];
        f.read_at(&mut buf, 0)?;
        Ok(buf)
    };
    let buf = match read() {
        Ok(b) => b,
        Err(e) => {
            tracing::warn!(stream = %name, error = %e, "checkpoint unreadable; full scan");
            return Ok(None);
        }
    };
    match decode(&buf) {
        Ok(c) => Ok(Some(c)),
        Err(reason) => {
            tracing::warn!(stream = %name, reason, "checkpoint invalid; full scan");
            Ok(None)
        }
    }
}

/// Does the checkpoint still describe the block files? Every listed block that exists must be
/// at least as long as recorded and end, at the recorded length, with the recorded record;
/// blocks not listed must be newer than every listed one.
pub(super) fn matches(
    c: &Checkpoint,
    files: &BTreeMap<u32, (Box<dyn BackendFile>, u64)>,
    name: &str,
) -> bool {
    let stale = |why: &str| {
        tracing::info!(stream = %name, why, "checkpoint stale; full scan");
        false
    };
    let max_listed = c.blocks.last().map_or(0, |b| b.index);
    for cb in &c.blocks {
        let Some((file, len)) = files.get(&cb.index) else {
            continue;
        };
        if *len < cb.len {
            return stale("block shorter than checkpointed");
        }
        match cb.last {
            None if cb.len != 0 => return stale("no last record"),
            None => {}
            Some(l) => {
                if l.len as usize > record::MAX_RECORD_LEN
                    || l.offset.checked_add(u64::from(l.len)) != Some(cb.len)
                {
                    return stale("last record does not end the block");
                }
                let mut buf = vec![0u8; l.len as usize];
                if file.read_at(&mut buf, l.offset).is_err() {
                    return stale("last record unreadable");
                }
                if record::decode(&buf).is_err() || buf[buf.len() - 4..] != l.crc.to_le_bytes() {
                    return stale("last record differs");
                }
            }
        }
    }
    let listed: std::collections::HashSet<u32> = c.blocks.iter().map(|b| b.index).collect();
    if files
        .keys()
        .any(|i| !listed.contains(i) && *i <= max_listed)
    {
        return stale("unlisted older block");
    }
    true
}

/// Removes a checkpoint that was not used, so it can never match later by accident.
pub(super) fn remove_stale(backend: &dyn Backend, dir: &Path) -> Result<(), StoreError> {
    let path = dir.join(FILE);
    if backend.exists(&path) {
        backend.remove(&path)?;
        backend.sync_dir(dir)?;
    }
    Ok(())
}

fn put_u32(o: &mut Vec<u8>, v: u32) {
    o.extend_from_slice(&v.to_le_bytes());
}

fn put_u64(o: &mut Vec<u8>, v: u64) {
    o.extend_from_slice(&v.to_le_bytes());
}

impl FileStore {
    fn encode_checkpoint(&self) -> Vec<u8> {
        let mut o = Vec::with_capacity(64 + self.index.len() as usize * MSG_LEN);
        o.extend_from_slice(MAGIC);
        put_u32(&mut o, VERSION);
        put_u64(&mut o, self.index.last_seq());
        put_u64(&mut o, self.index.last_ts() as u64);
        put_u64(&mut o, self.index.floor());
        put_u64(&mut o, self.durable_floor);
        put_u32(&mut o, self.floor_block.unwrap_or(0));
        put_u32(&mut o, self.blocks.len() as u32);
        for b in self.blocks.values() {
            put_u32(&mut o, b.index);
            put_u64(&mut o, b.written);
            let l = b.last.unwrap_or(LastRecord {
                offset: 0,
                len: 0,
                crc: 0,
            });
            o.push(u8::from(b.last.is_some()));
            put_u64(&mut o, l.offset);
            put_u32(&mut o, l.len);
            put_u32(&mut o, l.crc);
            let (first, last) = b.msg_range.unwrap_or((0, 0));
            o.push(u8::from(b.msg_range.is_some()));
            put_u64(&mut o, first);
            put_u64(&mut o, last);
            put_u64(&mut o, b.max_seq);
            put_u64(&mut o, b.max_ts as u64);
            put_u32(&mut o, b.tombs.len() as u32);
            for (seq, ts) in &b.tombs {
                put_u64(&mut o, *seq);
                put_u64(&mut o, *ts as u64);
            }
        }
        let mut ids: HashMap<&str, u32> = HashMap::new();
        let mut subjects: Vec<&str> = Vec::new();
        for (_, e) in self.index.iter() {
            if !ids.contains_key(&*e.subject) {
                ids.insert(&e.subject, subjects.len() as u32);
                subjects.push(&e.subject);
            }
        }
        put_u32(&mut o, subjects.len() as u32);
        for s in &subjects {
            o.extend_from_slice(&(s.len() as u16).to_le_bytes());
            o.extend_from_slice(s.as_bytes());
        }
        put_u64(&mut o, self.index.len());
        for (seq, e) in self.index.iter() {
            put_u64(&mut o, seq);
            put_u64(&mut o, e.ts as u64);
            put_u32(&mut o, ids.get(&*e.subject).copied().unwrap_or(0));
            put_u32(&mut o, e.loc.block);
            put_u64(&mut o, e.loc.offset);
            put_u32(&mut o, e.loc.len);
            put_u64(&mut o, e.size);
        }
        let crc = crc32fast::hash(&o);
        put_u32(&mut o, crc);
        o
    }

    /// Writes `index.chk` atomically. Every pending record is written first.
    pub(super) fn write_checkpoint(&mut self) -> Result<(), StoreError> {
        for b in self.blocks.values_mut() {
            b.flush()?;
        }
        let buf = self.encode_checkpoint();
        super::backend::write_atomic(self.backend.as_ref(), &self.dir, FILE, &buf, true)?;
        self.since_checkpoint = 0;
        tracing::debug!(stream = %self.name, bytes = buf.len(), msgs = self.index.len(), "checkpoint written");
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn garbage_never_panics() {
        assert!(decode(&[]).is_err());
        assert!(decode(&[0u8; 64]).is_err());
        let mut x = 0x2545F4914F6CDD1Du64;
        for n in 0..2000usize {
            let mut b = Vec::with_capacity(n % 300);
            for _ in 0..n % 300 {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                b.push(x as u8);
            }
            if b.len() >= 8 {
                b[..8].copy_from_slice(MAGIC);
            }
            if b.len() >= 16 {
                let body = b.len() - 4;
                let crc = crc32fast::hash(&b[..body]);
                b[body..].copy_from_slice(&crc.to_le_bytes());
            }
            let _ = decode(&b);
        }
    }
}
