//! openraft's state machine over a Petrel [`Machine`], with its snapshots: a snapshot is
//! what the machine encodes at its last applied entry, kept in the group's `snapshot.bin`
//! (`snapshot.rs`) before openraft purges the log behind it. Installing one (a follower
//! whose next entries were purged on the leader) writes the file first, then hands it to
//! the machine, so a crash in between ends with the machine restoring it when it opens.
//! [`snapshot_loop`] asks for a snapshot once the log behind the last one outgrows
//! [`Timing::snapshot_bytes`](crate::Timing) and the last snapshot's own size.

use std::io::Cursor;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use openraft::storage::{RaftStateMachine, Snapshot, SnapshotMeta};
use openraft::{
    BasicNode, LogId, Raft, RaftSnapshotBuilder, StorageError, StorageIOError, StoredMembership,
};
use petrel_store::Backend;

use crate::group::{GroupConfig, GroupEntry, Machine, NodeId};
use crate::{snapshot, FileLog};

/// How often the log's size is checked against the snapshot threshold.
const CHECK_EVERY: Duration = Duration::from_secs(1);

/// The state machine openraft drives, and its snapshot builder.
#[derive(Clone)]
pub(crate) struct MachineAdapter {
    pub machine: Arc<dyn Machine>,
    pub backend: Arc<dyn Backend>,
    /// The group's log directory (where `snapshot.bin` lives).
    pub dir: PathBuf,
    /// openraft has read its initial state: a snapshot asked for now is to be sent, so its
    /// data is read (before, only its metadata is needed).
    pub booted: Arc<AtomicBool>,
    /// The data size of the last snapshot.
    pub last_size: Arc<AtomicU64>,
}

fn storage_err(e: std::io::Error) -> StorageError<NodeId> {
    StorageError::from(openraft::StorageIOError::write_snapshot(None, &e))
}

impl MachineAdapter {
    /// Runs `f` off the async runtime.
    async fn blocking<T: Send + 'static>(
        &self,
        f: impl FnOnce(&MachineAdapter) -> std::io::Result<T> + Send + 'static,
    ) -> Result<T, StorageError<NodeId>> {
        let me = self.clone();
        tokio::task::spawn_blocking(move || f(&me))
            .await
            .map_err(|e| storage_err(std::io::Error::other(e)))?
            .map_err(storage_err)
    }

    /// The snapshot on disk: its metadata, and its data when `with_data`. A damaged file
    /// counts as none (and is reported): the log or the leader rebuilds what it held.
    fn current(&self, with_data: bool) -> Option<Snapshot<GroupConfig>> {
        let read = if with_data {
            snapshot::read(self.backend.as_ref(), &self.dir)
        } else {
            snapshot::read_meta(self.backend.as_ref(), &self.dir)
                .map(|o| o.map(|(meta, _)| (meta, Vec::new())))
        };
        match read {
            Ok(found) => found.map(|(meta, data)| Snapshot {
                meta,
                snapshot: Box::new(Cursor::new(data)),
            }),
            Err(e) => {
                tracing::error!(dir = %self.dir.display(), error = %e, "raft snapshot unreadable; ignored");
                None
            }
        }
    }

    /// Encodes the machine's state and writes it as the group's snapshot. When the machine
    /// has nothing to give, the last snapshot stands.
    fn build(&self) -> std::io::Result<Snapshot<GroupConfig>> {
        match self.machine.snapshot()? {
            Some((log_id, membership, data)) => {
                let meta = SnapshotMeta {
                    last_log_id: Some(log_id),
                    last_membership: membership,
                    snapshot_id: format!("{}-{}", log_id.leader_id.term, log_id.index),
                };
                snapshot::write(self.backend.as_ref(), &self.dir, &meta, &data)?;
                self.last_size.store(data.len() as u64, Ordering::Relaxed);
                tracing::debug!(dir = %self.dir.display(), index = log_id.index, bytes = data.len(), "raft snapshot written");
                Ok(Snapshot {
                    meta,
                    snapshot: Box::new(Cursor::new(Vec::new())),
                })
            }
            None => self
                .current(false)
                .ok_or_else(|| std::io::Error::other("nothing applied to snapshot")),
        }
    }
}

impl RaftSnapshotBuilder<GroupConfig> for MachineAdapter {
    async fn build_snapshot(&mut self) -> Result<Snapshot<GroupConfig>, StorageError<NodeId>> {
        self.blocking(|a| a.build()).await
    }
}

impl RaftStateMachine<GroupConfig> for MachineAdapter {
    type SnapshotBuilder = Self;

    async fn applied_state(
        &mut self,
    ) -> Result<(Option<LogId<NodeId>>, StoredMembership<NodeId, BasicNode>), StorageError<NodeId>>
    {
        Ok(self.machine.restored())
    }

    async fn apply<I>(&mut self, entries: I) -> Result<Vec<Vec<u8>>, StorageError<NodeId>>
    where
        I: IntoIterator<Item = GroupEntry> + Send,
        I::IntoIter: Send,
    {
        let entries: Vec<GroupEntry> = entries.into_iter().collect();
        let last = entries.last().map(|e| e.log_id).unwrap_or_default();
        let machine = self.machine.clone();
        let applied = tokio::task::spawn_blocking(move || machine.apply(entries)).await;
        let failed = |id, e: std::io::Error| StorageError::from(StorageIOError::apply(id, &e));
        match applied {
            Ok(Ok(replies)) => Ok(replies),
            // openraft stops the group on this node: the entry is not skipped.
            Ok(Err(u)) => {
                tracing::error!(dir = %self.dir.display(), error = %u,
                    "raft group stopped on this node (its other members go on)");
                Err(failed(u.log_id, std::io::Error::other(u.to_string())))
            }
            Err(e) => Err(failed(last, std::io::Error::other(e))),
        }
    }

    async fn get_snapshot_builder(&mut self) -> Self::SnapshotBuilder {
        self.clone()
    }

    async fn begin_receiving_snapshot(
        &mut self,
    ) -> Result<Box<Cursor<Vec<u8>>>, StorageError<NodeId>> {
        Ok(Box::new(Cursor::new(Vec::new())))
    }

    async fn install_snapshot(
        &mut self,
        meta: &SnapshotMeta<NodeId, BasicNode>,
        snapshot: Box<Cursor<Vec<u8>>>,
    ) -> Result<(), StorageError<NodeId>> {
        let meta = meta.clone();
        let data = snapshot.into_inner();
        self.blocking(move |a| {
            snapshot::write(a.backend.as_ref(), &a.dir, &meta, &data)?;
            a.last_size.store(data.len() as u64, Ordering::Relaxed);
            a.machine.install(&meta, &data)?;
            tracing::info!(dir = %a.dir.display(), index = ?meta.last_log_id.map(|l| l.index),
                bytes = data.len(), "raft snapshot installed");
            Ok(())
        })
        .await
    }

    async fn get_current_snapshot(
        &mut self,
    ) -> Result<Option<Snapshot<GroupConfig>>, StorageError<NodeId>> {
        let with_data = self.booted.load(Ordering::Acquire);
        self.blocking(move |a| Ok(a.current(with_data))).await
    }
}

/// Asks `raft` for a snapshot whenever the log behind the last one holds more than
/// `threshold` bytes and more than the last snapshot's size (so building snapshots costs
/// at most about as much as writing the log), until `stopped`.
pub(crate) async fn snapshot_loop(
    raft: Raft<GroupConfig>,
    log: FileLog<GroupConfig>,
    adapter: MachineAdapter,
    threshold: u64,
    stopped: Arc<AtomicBool>,
) {
    loop {
        tokio::time::sleep(CHECK_EVERY).await;
        if stopped.load(Ordering::Acquire) {
            return;
        }
        let m = raft.metrics().borrow().clone();
        if m.running_state.is_err() {
            return;
        }
        let since = m.snapshot.map(|l| l.index);
        if m.last_applied.map(|l| l.index) <= since {
            continue;
        }
        let limit = threshold.max(adapter.last_size.load(Ordering::Relaxed));
        if log.bytes_after(since) >= limit && raft.trigger().snapshot().await.is_err() {
            return;
        }
    }
}
