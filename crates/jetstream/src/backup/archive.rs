//! The snapshot archive: a file stream's files (its `meta.json`, block files and durable
//! consumers' `meta.json` / `state.json`) in one byte stream, Snappy-framed. The framing
//! carries a CRC-32C over every chunk of content, so a damaged snapshot is refused while it
//! is read, and an end record with the file count catches a truncated one.
//!
//! ```text
//! "PTRLSNP1" · { 0x01 · path_len u16 · path · data_len u64 · data }* · 0x00 · count u64
//! ```
//! Little-endian; paths are relative to the stream directory, `/`-separated, and only the
//! names Petrel writes are accepted (`meta.json`, `msgs/<n>.blk`,
//! `obs/<consumer>/{meta,state}.json`).

use std::io::{self, Read, Write};
use std::path::Path;

use petrel_store::Backend;

/// First bytes of the (decompressed) archive.
const MAGIC: &[u8; 8] = b"PTRLSNP1";
/// Largest file accepted from an archive (a block holds at most one 256 MiB record).
const MAX_FILE: u64 = 1 << 30;

/// Writes the archive of `files` (relative path, content) to `out`.
pub(crate) struct ArchiveWriter<W: Write> {
    enc: snap::write::FrameEncoder<W>,
    count: u64,
}

impl<W: Write> ArchiveWriter<W> {
    /// Starts an archive.
    pub fn new(out: W) -> io::Result<Self> {
        let mut enc = snap::write::FrameEncoder::new(out);
        enc.write_all(MAGIC)?;
        Ok(ArchiveWriter { enc, count: 0 })
    }

    /// Adds one file.
    pub fn add(&mut self, path: &str, data: &[u8]) -> io::Result<()> {
        let len = u16::try_from(path.len()).map_err(io::Error::other)?;
        self.enc.write_all(&[1])?;
        self.enc.write_all(&len.to_le_bytes())?;
        self.enc.write_all(path.as_bytes())?;
        self.enc.write_all(&(data.len() as u64).to_le_bytes())?;
        self.enc.write_all(data)?;
        self.count += 1;
        Ok(())
    }

    /// Ends the archive and returns the writer.
    pub fn finish(mut self) -> io::Result<W> {
        self.enc.write_all(&[0])?;
        self.enc.write_all(&self.count.to_le_bytes())?;
        self.enc.into_inner().map_err(|e| e.into_error())
    }
}

/// Whether `path` is a file Petrel writes in a stream directory.
fn allowed(path: &str) -> bool {
    let parts: Vec<&str> = path.split('/').collect();
    let name_ok = |s: &str| {
        !s.is_empty()
            && s != "."
            && s != ".."
            && s.len() <= 255
            && !s.contains(['\\', '\0'])
            && !s.chars().any(char::is_whitespace)
    };
    match parts.as_slice() {
        ["meta.json"] => true,
        ["msgs", blk] => blk
            .strip_suffix(".blk")
            .and_then(|n| n.parse::<u32>().ok())
            .is_some_and(|n| n >= 1),
        ["obs", consumer, file] => name_ok(consumer) && matches!(*file, "meta.json" | "state.json"),
        _ => false,
    }
}

fn bad(why: impl Into<String>) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, why.into())
}

/// Reads an archive from `input` and writes its files under `dest` through `backend`
/// (each fsynced); returns how many. Fails on damage, truncation, an unknown path or a
/// file over the size bound, leaving whatever it wrote for the caller to remove.
pub(crate) fn unpack(input: impl Read, dest: &Path, backend: &dyn Backend) -> io::Result<u64> {
    let mut r = snap::read::FrameDecoder::new(input);
    let mut magic = [0u8; 8];
    r.read_exact(&mut magic)
        .map_err(|e| bad(format!("not a snapshot: {e}")))?;
    if &magic != MAGIC {
        return Err(bad("not a Petrel snapshot"));
    }
    let mut count = 0u64;
    loop {
        let mut kind = [0u8; 1];
        r.read_exact(&mut kind)
            .map_err(|_| bad("snapshot is truncated"))?;
        match kind[0] {
            0 => {
                let mut n = [0u8; 8];
                r.read_exact(&mut n)
                    .map_err(|_| bad("snapshot is truncated"))?;
                if u64::from_le_bytes(n) != count {
                    return Err(bad("snapshot file count does not match"));
                }
                return Ok(count);
            }
            1 => {}
            _ => return Err(bad("snapshot record kind unknown")),
        }
        let mut len = [0u8; 2];
        r.read_exact(&mut len)
            .map_err(|_| bad("snapshot is truncated"))?;
        let mut path = vec![0u8; u16::from_le_bytes(len) as usize];
        r.read_exact(&mut path)
            .map_err(|_| bad("snapshot is truncated"))?;
        let path = String::from_utf8(path).map_err(|_| bad("snapshot path is not UTF-8"))?;
        if !allowed(&path) {
            return Err(bad(format!("snapshot holds an unexpected file {path:?}")));
        }
        let mut size = [0u8; 8];
        r.read_exact(&mut size)
            .map_err(|_| bad("snapshot is truncated"))?;
        let size = u64::from_le_bytes(size);
        if size > MAX_FILE {
            return Err(bad(format!("snapshot file {path:?} is too large")));
        }
        let target = dest.join(&path);
        if let Some(dir) = target.parent() {
            backend.create_dir_all(dir)?;
        }
        let file = backend.create(&target)?;
        let mut buf = vec![0u8; 64 * 1024];
        let mut done = 0u64;
        while done < size {
            let n = (size - done).min(buf.len() as u64) as usize;
            r.read_exact(&mut buf[..n])
                .map_err(|_| bad("snapshot is truncated"))?;
            file.write_at(&buf[..n], done)?;
            done += n as u64;
        }
        file.sync()?;
        count += 1;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use petrel_store::StdBackend;

    /// Compressible but varied bytes (a run of one value would decompress the same even
    /// with some bits of its copy offsets flipped).
    fn block() -> Vec<u8> {
        (0..300_000u32)
            .map(|i| ((i % 251) ^ (i / 977)) as u8)
            .collect()
    }

    fn sample() -> Vec<u8> {
        let mut w = ArchiveWriter::new(Vec::new()).unwrap();
        w.add("meta.json", b"{}").unwrap();
        w.add("msgs/1.blk", &block()).unwrap();
        w.add("obs/etl/state.json", b"x").unwrap();
        w.finish().unwrap()
    }

    #[test]
    fn roundtrip() {
        let dir = tempfile::tempdir().unwrap();
        let n = unpack(&sample()[..], dir.path(), &StdBackend).unwrap();
        assert_eq!(n, 3);
        let blk = std::fs::read(dir.path().join("msgs/1.blk")).unwrap();
        assert_eq!(blk, block());
    }

    #[test]
    fn damage_truncation_and_foreign_paths_are_refused() {
        let good = sample();
        for cut in [10, good.len() / 2, good.len() - 1] {
            let dir = tempfile::tempdir().unwrap();
            assert!(
                unpack(&good[..cut], dir.path(), &StdBackend).is_err(),
                "cut {cut}"
            );
        }
        for i in (20..good.len()).step_by(97) {
            let mut bad = good.clone();
            bad[i] ^= 0x40;
            let dir = tempfile::tempdir().unwrap();
            assert!(
                unpack(&bad[..], dir.path(), &StdBackend).is_err(),
                "byte {i}"
            );
        }
        for path in [
            "../x",
            "/etc/passwd",
            "msgs/0.blk",
            "obs/a/b/c",
            "index.chk",
        ] {
            assert!(!allowed(path), "{path}");
        }
    }
}
