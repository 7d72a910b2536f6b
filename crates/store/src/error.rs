//! The store's error type.

use std::io;

/// Everything a store operation can fail with.
///
/// The first four variants are the limit refusals of `Discard::New` and `max_msg_size`; the
/// jetstream layer maps them onto the API errors 10077 / 10054.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    /// `max_msgs` reached with `Discard::New`.
    #[error("maximum messages exceeded")]
    MaxMsgs,
    /// `max_bytes` reached with `Discard::New`.
    #[error("maximum bytes exceeded")]
    MaxBytes,
    /// `max_msgs_per_subject` reached with `Discard::New` and `discard_new_per_subject`.
    #[error("maximum messages per subject exceeded")]
    MaxMsgsPerSubject,
    /// The message is larger than `max_msg_size` or than a record can hold.
    #[error("message size exceeds maximum allowed")]
    MsgTooLarge,
    /// The subject is empty or longer than 65535 bytes.
    #[error("invalid subject")]
    InvalidSubject,
    /// The stream name cannot be used as a directory name.
    #[error("invalid stream name {0:?}")]
    InvalidName(String),
    /// `set_first_seq` on a store that holds messages or would reuse sequences.
    #[error("first sequence {requested} not allowed: store has {msgs} messages, last sequence {last_seq}")]
    InvalidFirstSeq {
        /// The requested first sequence.
        requested: u64,
        /// Messages currently stored.
        msgs: u64,
        /// Last sequence assigned so far.
        last_seq: u64,
    },
    /// The stream reached [`crate::MAX_SEQ`]: no sequence is left to assign.
    #[error("stream sequence space exhausted at {}", crate::MAX_SEQ)]
    SequenceExhausted,
    /// An earlier write or fsync failed; the store refuses mutations until it is reopened.
    #[error("store is poisoned by an earlier I/O failure; reopen it")]
    Poisoned,
    /// A record read back from disk failed its checks; its bytes are never served.
    #[error("corrupt record in block {block} at offset {offset}: {reason}")]
    Corrupt {
        /// Block index.
        block: u32,
        /// Byte offset of the record in the block.
        offset: u64,
        /// What check failed.
        reason: &'static str,
    },
    /// An I/O error from the backend.
    #[error("i/o error: {0}")]
    Io(io::Error),
}

impl From<io::Error> for StoreError {
    fn from(e: io::Error) -> Self {
        StoreError::Io(e)
    }
}
