//! Stream storage for Petrel's JetStream: the [`StreamStore`] trait, an in-memory
//! [`MemStore`] and a durable [`FileStore`].
//!
//! The store is synchronous; run it off the async reactor. Appends are buffered and made
//! durable by one [`StreamStore::commit`] (group commit: many appends, one write and one
//! fsync, then every PubAck). Limits ([`StoreLimits`]) are enforced inside the store after
//! every append. Byte accounting matches nats-server ([`file_msg_size`], [`mem_msg_size`]).
//!
//! The file store keeps one directory per stream with append-only block files of
//! self-checking records (length, sequence, timestamp, lengths, bytes, CRC-32 over all of
//! it). Open rebuilds the index from the blocks (or from a valid checkpoint plus what was
//! written after it), truncates a block at its first bad record and reports the loss in
//! [`StreamState::lost`]. After a failed write or fsync the store is poisoned until reopened.
//! The format is specified byte by byte in `crates/store/FORMAT.md`.
//!
//! What it is not: it keeps no consumer state, does no deduplication (`Nats-Msg-Id`) and no
//! expected-sequence checks; those live in the jetstream crate.
//!
//! ```
//! use bytes::Bytes;
//! use petrel_store::{FileStore, FileStoreConfig, StreamStore};
//!
//! # fn main() -> Result<(), petrel_store::StoreError> {
//! let dir = tempfile::tempdir()?;
//! let mut store = FileStore::open(dir.path(), "ORDERS", FileStoreConfig::default())?;
//! let (seq, _ts) = store.append("orders.new", None, Bytes::from_static(b"x0"), 1)?;
//! store.commit()?; // durable: now send the PubAck
//! assert_eq!(store.get(seq)?.map(|m| m.payload), Some(Bytes::from_static(b"x0")));
//! assert_eq!(store.state().bytes, 22 + 10 + 2 + 8);
//! store.close()?;
//! # Ok(())
//! # }
//! ```

mod error;
mod file;
mod index;
mod limits;
mod mem;
mod subject;
mod traits;
mod types;

pub use error::StoreError;
pub use file::backend::{probe_writable, read_all, write_atomic, Backend, BackendFile, StdBackend};
pub use file::faulty::{FaultOp, FaultyBackend};
pub use file::sim::SimFs;
pub use file::{FileStore, FileStoreConfig, RecoveryReport, SyncMode};
pub use mem::MemStore;
pub use subject::subject_matches;
pub use traits::StreamStore;
pub use types::{
    file_msg_size, mem_msg_size, Discard, LostData, PurgeRequest, StoreLimits, StoredMsg,
    StreamState, MAX_SEQ,
};
