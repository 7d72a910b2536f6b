//! Raft groups for Petrel's replicated JetStream (see `docs/design/replicated-jetstream.md`),
//! on openraft 0.9. This crate holds what consensus needs from the disk: [`FileLog`], a
//! Raft log and vote on Petrel's file [`Backend`](petrel_store::Backend) whose appends
//! are acknowledged to Raft only after they are fsynced (so a commit is a fsynced
//! majority), and whose recovery checks every record's CRC and cuts the log at the first
//! bad or torn one, reporting what it cut.
//!
//! The state machines (streams, consumers, the meta group) and the transport over routes
//! come next; nothing in the server uses this crate yet.

mod log;

pub use log::{FileLog, LogRecovery};

#[cfg(test)]
mod tests;
#[cfg(test)]
mod tests_raft;
