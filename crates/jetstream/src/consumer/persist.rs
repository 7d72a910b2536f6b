//! A durable consumer on disk: `<stream dir>/obs/<name>/meta.json` (config and creation
//! time, written crash-safely like the stream's) and `state.json` (delivered sequences, ack
//! floor, cursor and the pending set with delivery counts).
//!
//! `state.json` is one JSON line followed by a line with the CRC32 of the JSON in hex; a file
//! whose CRC does not match (or whose numbers do not hold together) is reported and ignored.
//! The state is rewritten
//! after changes (at most every 20 ms) through a temporary file and a rename, without
//! fsync: it survives a process crash; after a power loss it may be older, which again only
//! causes redeliveries. Clean shutdown writes every changed state without an fsync each
//! (an unchanged one is left as it is on disk) and then syncs the store's filesystem once
//! (`syncfs`): 100,000 consumers cost one flush, not 100,000. Every file goes through the store's I/O
//! [`Backend`] (`petrel_store::write_atomic`), so fault injection covers it. A consumer
//! whose state is missing or unusable restarts from the `start_seq` its metadata recorded:
//! messages may be delivered again, none is skipped.

use std::io;
use std::path::{Path, PathBuf};
use tokio::time::Instant;

use petrel_store::Backend;
use serde::{Deserialize, Serialize};

use super::config::ConsumerConfig;
use super::State;

const META_FILE: &str = "meta.json";
const STATE_FILE: &str = "state.json";

/// What `meta.json` holds.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct ConsumerMeta {
    pub config: ConsumerConfig,
    pub created: i64,
    /// The first stream sequence the consumer could deliver when it was created. When its
    /// state is lost, it restarts here: messages may be delivered again, none is skipped.
    /// 0 (files from before this field): the stream's first sequence.
    #[serde(default)]
    pub start_seq: u64,
}

/// What `state.json` holds.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct SavedState {
    /// Delivered: consumer and stream sequence.
    pub delivered: (u64, u64),
    /// Ack floor: consumer and stream sequence.
    pub ack_floor: (u64, u64),
    pub cursor: u64,
    #[serde(default)]
    pub lps: Vec<u64>,
    /// (stream seq, consumer seq, delivery time ns, deliveries).
    #[serde(default)]
    pub pending: Vec<(u64, u64, i64, u64)>,
}

/// Directory of the consumers of a stream.
pub(crate) fn consumers_dir(stream_dir: &Path) -> PathBuf {
    stream_dir.join("obs")
}

/// Serializes the state with its CRC line.
pub(crate) fn encode_state(st: &State) -> Vec<u8> {
    let saved = SavedState {
        delivered: (st.acks.dseq, st.acks.dsseq),
        ack_floor: (st.acks.adflr, st.acks.asflr),
        cursor: st.cursor,
        lps: st.lps.iter().copied().collect(),
        pending: st
            .acks
            .pending
            .iter()
            .map(|(s, p)| (*s, p.dseq, p.ts, p.dc))
            .collect(),
    };
    let mut body = serde_json::to_vec(&saved).unwrap_or_default();
    let crc = crc32fast::hash(&body);
    body.extend_from_slice(format!("\n{crc:08x}\n").as_bytes());
    body
}

/// Why a state file was not used.
#[derive(Debug, thiserror::Error)]
pub(crate) enum StateError {
    #[error("checksum mismatch or truncated file ({0} bytes)")]
    Corrupt(usize),
    #[error("unreadable JSON: {0}")]
    Json(serde_json::Error),
    #[error("inconsistent: {0}")]
    Inconsistent(&'static str),
}

/// Decodes a state file and checks that it is self-consistent.
pub(crate) fn decode_state(bytes: &[u8]) -> Result<SavedState, StateError> {
    let text = bytes.strip_suffix(b"\n").unwrap_or(bytes);
    let Some(nl) = text.iter().rposition(|b| *b == b'\n') else {
        return Err(StateError::Corrupt(bytes.len()));
    };
    let (body, crc_line) = (&text[..nl], &text[nl + 1..]);
    if crc_line != format!("{:08x}", crc32fast::hash(body)).as_bytes() {
        return Err(StateError::Corrupt(bytes.len()));
    }
    let saved: SavedState = serde_json::from_slice(body).map_err(StateError::Json)?;
    saved.check().map_err(StateError::Inconsistent)?;
    Ok(saved)
}

impl SavedState {
    /// Every sequence within what a stream can hold, floors at or below what was
    /// delivered, pending entries between floor and delivered.
    fn check(&self) -> Result<(), &'static str> {
        let max = petrel_store::MAX_SEQ;
        let (dseq, dsseq) = self.delivered;
        let (adflr, asflr) = self.ack_floor;
        if dseq > max || dsseq > max || self.cursor > max.saturating_add(1) {
            return Err("sequence out of range");
        }
        if adflr > dseq || asflr > dsseq {
            return Err("ack floor past delivered");
        }
        let pending_ok = self
            .pending
            .iter()
            .all(|&(sseq, pdseq, _, dc)| sseq > asflr && sseq <= dsseq && pdseq <= dseq && dc > 0);
        if !pending_ok || self.lps.iter().any(|s| *s > max) {
            return Err("pending entry outside delivered range");
        }
        Ok(())
    }
}

/// How a batch of consumer states is made durable.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum StateSync {
    /// Each file fsynced as it is written.
    Each,
    /// Written without fsync; the caller syncs the filesystem once afterwards.
    Later,
}

/// Whether `state.json` in `dir` already holds exactly `bytes` (an idle consumer's state,
/// written by its last checkpoint): reading it back is far cheaper than replacing the file.
pub(crate) fn on_disk(backend: &dyn Backend, dir: &Path, bytes: &[u8]) -> bool {
    petrel_store::read_all(backend, &dir.join(STATE_FILE)).is_ok_and(|have| have == bytes)
}

/// Writes `state.json` (tmp + rename; fsync when `sync`).
pub(crate) fn write_state(
    backend: &dyn Backend,
    dir: &Path,
    bytes: &[u8],
    sync: bool,
) -> io::Result<()> {
    petrel_store::write_atomic(backend, dir, STATE_FILE, bytes, sync)
}

/// Writes `meta.json` durably.
pub(crate) fn write_meta(backend: &dyn Backend, dir: &Path, meta: &ConsumerMeta) -> io::Result<()> {
    let body = serde_json::to_vec_pretty(meta).map_err(io::Error::other)?;
    petrel_store::write_atomic(backend, dir, META_FILE, &body, true)?;
    // The consumer's own directory entry, in the consumers directory.
    match dir.parent() {
        Some(parent) => backend.sync_dir(parent),
        None => Ok(()),
    }
}

/// One consumer found on disk.
pub(crate) struct Found {
    pub dir: PathBuf,
    pub meta: ConsumerMeta,
    pub state: Option<SavedState>,
}

/// Reads every consumer directory of a stream; unreadable ones are logged and skipped.
pub(crate) fn read_all(backend: &dyn Backend, stream_dir: &Path, stream: &str) -> Vec<Found> {
    let root = consumers_dir(stream_dir);
    let Ok(names) = backend.list(&root) else {
        return Vec::new();
    };
    let mut dirs: Vec<PathBuf> = names
        .into_iter()
        .map(|n| root.join(n))
        .filter(|p| backend.is_dir(p))
        .collect();
    dirs.sort();
    let mut out = Vec::new();
    for dir in dirs {
        let meta: ConsumerMeta = match petrel_store::read_all(backend, &dir.join(META_FILE))
            .map_err(|e| e.to_string())
            .and_then(|b| serde_json::from_slice(&b).map_err(|e| e.to_string()))
        {
            Ok(m) => m,
            Err(e) => {
                tracing::warn!(stream, dir = %dir.display(), error = %e,
                    "skipping consumer: unreadable metadata");
                continue;
            }
        };
        let state = match petrel_store::read_all(backend, &dir.join(STATE_FILE)) {
            Ok(bytes) => match decode_state(&bytes) {
                Ok(s) => Some(s),
                Err(e) => {
                    tracing::warn!(stream, consumer = %meta.config.name, error = %e,
                        start_seq = meta.start_seq,
                        "consumer state unusable; restarting it from its first sequence (messages may be delivered again, none is skipped)");
                    None
                }
            },
            Err(e) if e.kind() == io::ErrorKind::NotFound => None,
            Err(e) => {
                tracing::warn!(stream, consumer = %meta.config.name, error = %e,
                    start_seq = meta.start_seq,
                    "consumer state unreadable; restarting it from its first sequence");
                None
            }
        };
        out.push(Found { dir, meta, state });
    }
    out
}

/// A consumer whose state is missing or unusable: starts over at `start_seq` (never
/// before the stream's first message), delivering everything from there.
pub(crate) fn restart_from(st: &mut State, start_seq: u64, stream_first: u64) {
    let from = start_seq.max(stream_first).max(1);
    st.cursor = from;
    st.lps.clear();
    st.acks.dsseq = from - 1;
    st.acks.asflr = from - 1;
    st.npending_stale = true;
    st.dirty = true;
}

/// Puts a saved state into a freshly built consumer state.
pub(crate) fn restore(st: &mut State, saved: &SavedState, now: Instant, wall: i64) {
    st.acks.dseq = saved.delivered.0;
    st.acks.dsseq = saved.delivered.1;
    st.acks.adflr = saved.ack_floor.0;
    st.acks.asflr = saved.ack_floor.1;
    st.cursor = saved.cursor;
    st.lps = saved.lps.iter().copied().collect();
    st.acks.restore_pending(&saved.pending, now, wall);
    st.npending_stale = true;
    st.dirty = false;
}

/// Removes a consumer's directory.
pub(crate) fn remove(backend: &dyn Backend, dir: &Path) -> io::Result<()> {
    backend.remove_dir_all(dir)?;
    match dir.parent() {
        Some(parent) if backend.exists(parent) => backend.sync_dir(parent),
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn crc_catches_every_flipped_byte() {
        let saved = SavedState {
            delivered: (5, 9),
            ack_floor: (3, 7),
            cursor: 10,
            lps: vec![],
            pending: vec![(8, 4, 123, 2), (9, 5, 456, 1)],
        };
        let mut body = serde_json::to_vec(&saved).unwrap();
        let crc = crc32fast::hash(&body);
        body.extend_from_slice(format!("\n{crc:08x}\n").as_bytes());
        assert_eq!(decode_state(&body).unwrap(), saved);
        for i in 0..body.len() {
            let mut bad = body.clone();
            bad[i] ^= 0x20;
            assert!(decode_state(&bad).is_err(), "flip at {i} not caught");
        }
        for n in 0..body.len() - 1 {
            assert!(
                decode_state(&body[..n]).is_err(),
                "truncation at {n} not caught"
            );
        }
    }
}
