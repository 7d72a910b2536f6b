//! Raft groups for Petrel's replicated JetStream (see `docs/design/replicated-jetstream.md`),
//! on openraft 0.9:
//!
//! * [`FileLog`]: a Raft log and vote on Petrel's file [`Backend`](petrel_store::Backend)
//!   whose appends are acknowledged to Raft only after they are fsynced (so a commit is a
//!   fsynced majority), and whose recovery checks every record's CRC and cuts the log at
//!   the first bad or torn one, reporting what it cut;
//! * [`Group`]: one running group over a [`Machine`] (what committed entries build) and a
//!   [`Transport`] (how RPCs reach the other members; the server carries them over its
//!   routes);
//! * [`Registry`]: this node's groups, answering the RPCs addressed to them;
//! * [`snapshot`]: a group's snapshot file — a machine's state at one applied entry, which
//!   lets the log be purged behind it and a far-behind follower catch up from it.

mod abstain;
mod adapter;
mod data;
mod group;
mod log;
mod membership;
mod net;
pub mod snapshot;

pub use data::Data;
pub use group::{
    node_id, Group, GroupConfig, GroupEntry, Machine, MachineSnapshot, NodeId, ProposeError,
    Timing, Unappliable,
};
pub use log::{FileLog, LogRecovery};
pub use membership::{leads, Converged};
pub use net::{frame_reply, Op, Pending, Registry, Transport};
pub use openraft::{BasicNode, CommittedLeaderId, EntryPayload, LogId, StoredMembership};

#[cfg(test)]
mod tests;
#[cfg(test)]
mod tests_raft;
#[cfg(test)]
mod tests_snapshot;
