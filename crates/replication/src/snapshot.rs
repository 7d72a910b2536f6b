//! A group's snapshot on disk: `snapshot.bin` in the log's directory, the state a machine
//! built at one applied log id, written whole with the store's atomic-write rule (fsynced
//! before the log is purged up to it). It is what a member sends a follower whose next
//! entries were purged, what a follower keeps after installing one, and what a machine
//! restores itself from when its own state cannot be trusted after a crash.
//!
//! ```text
//! "PTRLRSN1" · meta_len u32 · meta_crc u32 · meta (JSON) · data_len u64 · data_crc u32 · data
//! ```
//! Little-endian; each CRC32 covers the bytes it names, so the metadata can be read (at
//! every start) without the data, and a damaged file is refused, never installed.

use std::io;
use std::path::Path;

use openraft::storage::SnapshotMeta;
use openraft::BasicNode;
use petrel_store::{write_atomic, Backend};

use crate::NodeId;

/// The file, in the group's log directory.
const FILE: &str = "snapshot.bin";
const MAGIC: &[u8; 8] = b"PTRLRSN1";
/// Largest metadata accepted (a membership and a log id).
const MAX_META: u32 = 1 << 20;

/// A snapshot's metadata.
pub type Meta = SnapshotMeta<NodeId, BasicNode>;

fn bad(why: impl Into<String>) -> io::Error {
    io::Error::new(
        io::ErrorKind::InvalidData,
        format!("{FILE}: {}", why.into()),
    )
}

/// Writes the snapshot `meta` / `data` into `dir`, replacing the last one (fsynced).
pub fn write(backend: &dyn Backend, dir: &Path, meta: &Meta, data: &[u8]) -> io::Result<()> {
    let m = serde_json::to_vec(meta).map_err(io::Error::other)?;
    let mut out = Vec::with_capacity(32 + m.len() + data.len());
    out.extend_from_slice(MAGIC);
    out.extend_from_slice(
        &u32::try_from(m.len())
            .map_err(io::Error::other)?
            .to_le_bytes(),
    );
    out.extend_from_slice(&crc32fast::hash(&m).to_le_bytes());
    out.extend_from_slice(&m);
    out.extend_from_slice(&(data.len() as u64).to_le_bytes());
    out.extend_from_slice(&crc32fast::hash(data).to_le_bytes());
    out.extend_from_slice(data);
    write_atomic(backend, dir, FILE, &out, true)
}

/// The last snapshot's metadata and the size of its data, if `dir` holds one.
pub fn read_meta(backend: &dyn Backend, dir: &Path) -> io::Result<Option<(Meta, u64)>> {
    let path = dir.join(FILE);
    if !backend.exists(&path) {
        return Ok(None);
    }
    let file = backend.open(&path)?;
    let size = file.size()?;
    let mut head = [0u8; 16];
    if size < 16 {
        return Err(bad("truncated header"));
    }
    file.read_at(&mut head, 0)?;
    if &head[..8] != MAGIC {
        return Err(bad("not a snapshot"));
    }
    let len = u32::from_le_bytes([head[8], head[9], head[10], head[11]]);
    let crc = u32::from_le_bytes([head[12], head[13], head[14], head[15]]);
    if len > MAX_META || 16 + u64::from(len) + 12 > size {
        return Err(bad("impossible metadata length"));
    }
    let mut m = vec![0u8; len as usize];
    file.read_at(&mut m, 16)?;
    if crc32fast::hash(&m) != crc {
        return Err(bad("metadata CRC mismatch"));
    }
    let meta: Meta = serde_json::from_slice(&m).map_err(|e| bad(e.to_string()))?;
    let mut tail = [0u8; 8];
    file.read_at(&mut tail, 16 + u64::from(len))?;
    let data_len = u64::from_le_bytes(tail);
    if 16 + u64::from(len) + 12 + data_len != size {
        return Err(bad("data length does not match the file"));
    }
    Ok(Some((meta, data_len)))
}

/// The last snapshot (metadata and data, its CRC checked), if `dir` holds one.
pub fn read(backend: &dyn Backend, dir: &Path) -> io::Result<Option<(Meta, Vec<u8>)>> {
    let Some((meta, data_len)) = read_meta(backend, dir)? else {
        return Ok(None);
    };
    let file = backend.open(&dir.join(FILE))?;
    let at = file.size()? - data_len;
    let mut crc = [0u8; 4];
    file.read_at(&mut crc, at - 4)?;
    let mut data = vec![0u8; usize::try_from(data_len).map_err(io::Error::other)?];
    file.read_at(&mut data, at)?;
    if crc32fast::hash(&data) != u32::from_le_bytes(crc) {
        return Err(bad("data CRC mismatch"));
    }
    Ok(Some((meta, data)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use openraft::{CommittedLeaderId, LogId, StoredMembership};
    use petrel_store::StdBackend;

    #[test]
    fn a_snapshot_reads_back_and_any_damage_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let b = StdBackend;
        assert!(read(&b, dir.path()).unwrap().is_none());
        let meta = Meta {
            last_log_id: Some(LogId::new(CommittedLeaderId::new(3, 1), 42)),
            last_membership: StoredMembership::default(),
            snapshot_id: "s-42".into(),
        };
        write(&b, dir.path(), &meta, b"the state").unwrap();
        let (m, n) = read_meta(&b, dir.path()).unwrap().unwrap();
        assert_eq!(
            (m.last_log_id, m.snapshot_id.as_str(), n),
            (meta.last_log_id, "s-42", 9)
        );
        assert_eq!(read(&b, dir.path()).unwrap().unwrap().1, b"the state");
        let path = dir.path().join(FILE);
        let good = std::fs::read(&path).unwrap();
        // Every flipped bit and every truncation is refused.
        for i in 0..good.len() {
            let mut bad = good.clone();
            bad[i] ^= 0x10;
            std::fs::write(&path, &bad).unwrap();
            assert!(read(&b, dir.path()).is_err(), "flip at {i} accepted");
        }
        for n in 0..good.len() {
            std::fs::write(&path, &good[..n]).unwrap();
            assert!(read(&b, dir.path()).is_err(), "cut at {n} accepted");
        }
    }
}
