//! One block file (`msgs/<index>.blk`): its handle, the buffered bytes not yet written, and
//! the per-block summary the store needs for compaction and checkpoints.

use std::io;

use bytes::Bytes;
use parking_lot::Mutex;

use super::backend::BackendFile;
use super::record::{self, Kind};

/// File name of block `index`.
pub(crate) fn block_file_name(index: u32) -> String {
    format!("{index}.blk")
}

/// Block index from a file name (`"12.blk"` → 12); `None` for anything else.
pub(crate) fn parse_block_name(name: &str) -> Option<u32> {
    let stem = name.strip_suffix(".blk")?;
    if stem.is_empty() || !stem.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    stem.parse().ok().filter(|i| *i > 0)
}

/// Location of a message record.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Loc {
    /// Block index.
    pub(crate) block: u32,
    /// Byte offset of the record in the block.
    pub(crate) offset: u64,
    /// Record length.
    pub(crate) len: u32,
}

/// The last record of a block, used to validate a checkpoint against the file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct LastRecord {
    pub(crate) offset: u64,
    pub(crate) len: u32,
    pub(crate) crc: u32,
}

/// Smallest file read of [`Block::read`] (read-ahead for sequential consumers).
pub(crate) const READ_AHEAD: u64 = 64 * 1024;

/// One block file. See the module doc.
#[derive(Debug)]
pub(crate) struct Block {
    pub(crate) index: u32,
    pub(crate) file: Box<dyn BackendFile>,
    /// Bytes handed to the file so far (the file's length).
    pub(crate) written: u64,
    /// Encoded records waiting for `commit` (they go at offset `written`).
    pub(crate) pending: Vec<u8>,
    /// Live messages whose record is in this block.
    pub(crate) live: u64,
    /// First and last sequence of the message (or erased) records in this block.
    pub(crate) msg_range: Option<(u64, u64)>,
    /// Highest sequence any record here covers (a floor `f` covers `f - 1`), with its time.
    pub(crate) max_seq: u64,
    pub(crate) max_ts: i64,
    /// Tombstones held here: (deleted sequence, its timestamp).
    pub(crate) tombs: Vec<(u64, i64)>,
    /// Read-ahead window: file offset and the bytes read there.
    pub(crate) read_cache: Mutex<Option<(u64, Bytes)>>,
    /// The last record, for checkpoint validation.
    pub(crate) last: Option<LastRecord>,
    /// Written since the last fsync.
    pub(crate) needs_sync: bool,
}

impl Block {
    /// An empty block summary around an open file of `len` bytes.
    pub(crate) fn new(index: u32, file: Box<dyn BackendFile>, len: u64) -> Self {
        Block {
            index,
            file,
            written: len,
            pending: Vec::new(),
            live: 0,
            msg_range: None,
            max_seq: 0,
            max_ts: 0,
            tombs: Vec::new(),
            read_cache: Mutex::new(None),
            last: None,
            needs_sync: false,
        }
    }

    /// Logical size: written plus pending bytes.
    pub(crate) fn size(&self) -> u64 {
        self.written + self.pending.len() as u64
    }

    /// Updates the summary for a record of `kind` at `offset` (`crc` is its stored CRC).
    pub(crate) fn note(&mut self, kind: Kind, seq: u64, ts: i64, last: LastRecord) {
        let covers = match kind {
            Kind::Msg | Kind::Compressed | Kind::Erased => {
                self.msg_range = Some(match self.msg_range {
                    Some((first, _)) => (first, seq),
                    None => (seq, seq),
                });
                seq
            }
            Kind::Tombstone => {
                self.tombs.push((seq, ts));
                seq
            }
            Kind::Floor => seq.saturating_sub(1),
        };
        if covers >= self.max_seq {
            self.max_seq = covers;
            self.max_ts = ts;
        }
        self.last = Some(last);
    }

    /// Encodes a record into the pending buffer and updates the summary; returns its offset.
    pub(crate) fn push(
        &mut self,
        seq: u64,
        ts: i64,
        kind: Kind,
        subject: &[u8],
        headers: &[u8],
        payload: &[u8],
    ) -> Loc {
        self.push_parts(seq, ts, kind, subject, headers.len(), &[headers, payload])
    }

    /// Appends a record whose `hdr_len` field is `hdr_len` and whose body after the subject
    /// is `parts` (see [`record::encode_parts`]); returns its location.
    pub(crate) fn push_parts(
        &mut self,
        seq: u64,
        ts: i64,
        kind: Kind,
        subject: &[u8],
        hdr_len: usize,
        parts: &[&[u8]],
    ) -> Loc {
        let offset = self.size();
        let start = self.pending.len();
        record::encode_parts(&mut self.pending, seq, ts, kind, subject, hdr_len, parts);
        let len = self.pending.len() - start;
        let mut crc = [0u8; 4];
        crc.copy_from_slice(&self.pending[self.pending.len() - 4..]);
        let last = LastRecord {
            offset,
            len: len as u32,
            crc: u32::from_le_bytes(crc),
        };
        self.note(kind, seq, ts, last);
        Loc {
            block: self.index,
            offset,
            len: len as u32,
        }
    }

    /// Reads `len` bytes at `offset`, from the pending buffer, the read-ahead window or the
    /// file. A file read fetches at least [`READ_AHEAD`] bytes and keeps them, so a consumer
    /// reading in sequence costs one system call per window instead of one per message; the
    /// returned bytes share the window (no copy).
    pub(crate) fn read(&self, offset: u64, len: u32) -> io::Result<Bytes> {
        let len = len as usize;
        if offset >= self.written {
            let start = (offset - self.written) as usize;
            return self
                .pending
                .get(start..start + len)
                .map(Bytes::copy_from_slice)
                .ok_or_else(|| io::Error::new(io::ErrorKind::UnexpectedEof, "past pending data"));
        }
        let end = offset + len as u64;
        let mut cache = self.read_cache.lock();
        if let Some((at, data)) = cache.as_ref() {
            if offset >= *at && end <= at + data.len() as u64 {
                let start = (offset - at) as usize;
                return Ok(data.slice(start..start + len));
            }
        }
        if end > self.written {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "record past the written data",
            ));
        }
        let window = (self.written - offset).min(READ_AHEAD.max(len as u64)) as usize;
        let mut buf = vec![0u8; window];
        self.file.read_at(&mut buf, offset)?;
        let data = Bytes::from(buf);
        let out = data.slice(..len);
        *cache = Some((offset, data));
        Ok(out)
    }

    /// Drops the read-ahead window (its bytes were overwritten in place).
    pub(crate) fn invalidate_reads(&self) {
        *self.read_cache.lock() = None;
    }

    /// Frees the pending buffer's memory (a block that is no longer written to: every block
    /// the store ever wrote stays in memory as a summary, and must not keep its last
    /// batch's capacity with it).
    pub(crate) fn release_buffer(&mut self) {
        if self.pending.is_empty() && self.pending.capacity() > 0 {
            self.pending = Vec::new();
        }
    }

    /// Writes the pending buffer with one write. Returns whether anything was written.
    pub(crate) fn flush(&mut self) -> io::Result<bool> {
        if self.pending.is_empty() {
            return Ok(false);
        }
        self.file.write_at(&self.pending, self.written)?;
        self.written += self.pending.len() as u64;
        self.pending.clear();
        self.needs_sync = true;
        Ok(true)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names() {
        assert_eq!(parse_block_name(&block_file_name(12)), Some(12));
        assert_eq!(parse_block_name("0.blk"), None);
        assert_eq!(parse_block_name("x.blk"), None);
        assert_eq!(parse_block_name("12.blk.tmp"), None);
        assert_eq!(parse_block_name("+1.blk"), None);
    }

    #[test]
    fn a_released_block_keeps_no_buffer() {
        use super::super::backend::{Backend, StdBackend};
        let dir = tempfile::tempdir().unwrap();
        let file = StdBackend.create(&dir.path().join("1.blk")).unwrap();
        let mut b = Block::new(1, file, 0);
        b.push(1, 1, Kind::Msg, b"s", &[], &vec![7u8; 4 * 1024 * 1024]);
        // The write block keeps its buffer for the next batch...
        assert!(b.flush().unwrap());
        assert!(b.pending.capacity() >= 4 * 1024 * 1024);
        // ...a block no longer written to gives it back.
        b.release_buffer();
        assert_eq!(b.pending.capacity(), 0);
    }
}
