//! One Raft group: openraft on a [`FileLog`], a Petrel [`Machine`] applying committed
//! entries, and a [`Transport`] carrying the RPCs. Every group has the same openraft type
//! configuration ([`GroupConfig`]): proposals and replies are opaque bytes the machine
//! encodes, so the meta group and every stream group share one network and one codec.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use openraft::error::{ClientWriteError, InitializeError, RaftError};
use openraft::{
    BasicNode, Config, Entry, LogId, Raft, RaftMetrics, SnapshotPolicy, StoredMembership,
};
use petrel_store::Backend;

use crate::abstain::Abstain;
use crate::adapter::{snapshot_loop, MachineAdapter};
use crate::net::{Network, Transport};
use crate::snapshot::Meta;
use crate::FileLog;

/// A node's id in every group: a hash of its server name ([`node_id`]).
pub type NodeId = u64;

openraft::declare_raft_types!(
    /// The openraft configuration of every Petrel group: proposals and replies are bytes
    /// the group's [`Machine`] encodes; a node is named by its server name
    /// (`BasicNode::addr`).
    pub GroupConfig:
        D = crate::Data,
        R = Vec<u8>,
        SnapshotData = std::io::Cursor<Vec<u8>>,
);

/// The id of the server called `name` (FNV-1a, 64 bits; never 0).
pub fn node_id(name: &str) -> NodeId {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in name.as_bytes() {
        h ^= u64::from(*b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    h.max(1)
}

/// A committed entry, as a machine sees it.
pub type GroupEntry = Entry<GroupConfig>;

/// What [`Machine::snapshot`] gives: the last applied entry's id, the membership then, and
/// the encoded state.
pub type MachineSnapshot = (LogId<NodeId>, StoredMembership<NodeId, BasicNode>, Vec<u8>);

/// The state a group's entries build: applies committed entries in order and remembers
/// (durably, as it sees fit) the last one applied and the last membership.
pub trait Machine: Send + Sync + 'static {
    /// The last applied log id and membership, as recovered when the group opens (`None`
    /// and the default membership: apply everything again from the log's start).
    fn restored(&self) -> (Option<LogId<NodeId>>, StoredMembership<NodeId, BasicNode>);

    /// Applies committed entries in order and returns one reply per entry (empty for
    /// blank and membership entries). An entry the machine cannot read (written by a
    /// newer Petrel, say) is never skipped: the machine applies what comes before it,
    /// remembers that as applied and returns [`Unappliable`]; the group then stops on
    /// this node (its other members go on), and stops there again at every start until
    /// the node runs a Petrel that reads the entry. Blocking: called on a blocking thread.
    fn apply(&self, entries: Vec<GroupEntry>) -> Result<Vec<Vec<u8>>, Unappliable>;

    /// Called once the log is open, before [`Machine::restored`], with the index of its
    /// last entry: a machine that applied past it (the log's tail was cut) must go back to
    /// the group's snapshot, or forget what it applied and report `None`. Blocking.
    fn log_opened(&self, _last_index: Option<u64>) {}

    /// Whether the machine builds snapshots ([`Machine::snapshot`]); the log is then
    /// purged behind them. Without, the log keeps every entry.
    fn snapshots(&self) -> bool {
        false
    }

    /// The machine's state as of its last applied entry — that entry's id, the membership
    /// and the encoded state — or `None` when nothing is applied. Blocking.
    fn snapshot(&self) -> std::io::Result<Option<MachineSnapshot>> {
        Ok(None)
    }

    /// Replaces the machine's state with a snapshot's (built by another member's
    /// [`Machine::snapshot`]); everything up to `meta.last_log_id` is then applied.
    /// Blocking.
    fn install(&self, _meta: &Meta, _data: &[u8]) -> std::io::Result<()> {
        Err(std::io::Error::other("this group takes no snapshots"))
    }
}

/// A committed entry a [`Machine`] cannot apply. Skipping it would make this member's
/// state differ from the others' with no one the wiser, so the group stops here instead.
#[derive(Debug, thiserror::Error)]
#[error("raft entry {} (term {}) cannot be applied: {reason}", .log_id.index, .log_id.leader_id.term)]
pub struct Unappliable {
    /// The entry.
    pub log_id: LogId<NodeId>,
    /// Why it cannot be applied.
    pub reason: String,
}

/// Timers and limits of a group (nats-server's are 1 s heartbeats and 4–9 s elections).
#[derive(Debug, Clone, Copy)]
pub struct Timing {
    /// Leader heartbeat.
    pub heartbeat: Duration,
    /// Shortest election timeout.
    pub election_min: Duration,
    /// Longest election timeout.
    pub election_max: Duration,
    /// Log bytes behind the last snapshot that make a new one worth building (when also
    /// past the last snapshot's size).
    pub snapshot_bytes: u64,
    /// Entries kept in the log behind a snapshot, so a follower a little behind catches up
    /// from the log rather than from a snapshot.
    pub log_keep: u64,
}

impl Default for Timing {
    fn default() -> Self {
        Timing {
            heartbeat: Duration::from_millis(500),
            election_min: Duration::from_millis(2000),
            election_max: Duration::from_millis(4000),
            snapshot_bytes: 64 * 1024 * 1024,
            log_keep: 1000,
        }
    }
}

/// Why a proposal was not committed.
#[derive(Debug, thiserror::Error)]
pub enum ProposeError {
    /// This node is not the group's leader (the known leader, if any).
    #[error("not the leader")]
    NotLeader(Option<NodeId>),
    /// The group stopped or failed.
    #[error("raft group failed: {0}")]
    Failed(String),
}

/// One running Raft group on this node.
#[derive(Clone)]
pub struct Group {
    /// The group's name (`_meta_`, or a stream group's).
    pub name: Arc<str>,
    /// This node's id.
    pub me: NodeId,
    raft: Raft<GroupConfig>,
    timing: Timing,
    /// A stepdown is under way: proposals are refused until it ends.
    stepping: Arc<std::sync::atomic::AtomicBool>,
    /// The log was damaged at recovery: no elections, no votes, until caught up.
    pub(crate) abstain: Arc<Abstain>,
    /// The group was shut down (its background tasks end).
    stopped: Arc<AtomicBool>,
}

impl std::fmt::Debug for Group {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Group").field("name", &self.name).finish()
    }
}

impl Group {
    /// Opens (or creates) the group `name` whose log lives in `dir`, on the node `me`.
    /// What the log's recovery cut is logged.
    pub async fn open(
        name: &str,
        me: NodeId,
        dir: &Path,
        backend: Arc<dyn Backend>,
        machine: Arc<dyn Machine>,
        transport: Arc<dyn Transport>,
        timing: Timing,
    ) -> std::io::Result<Group> {
        let (log, mut recovery) = {
            let (dir, backend) = (dir.to_path_buf(), backend.clone());
            tokio::task::spawn_blocking(move || FileLog::open(backend, &dir))
                .await
                .map_err(std::io::Error::other)??
        };
        if let Some(why) = &recovery.reason {
            tracing::warn!(
                group = name,
                kept = recovery.entries,
                cut_bytes = recovery.cut_bytes,
                "raft log recovered with a cut tail: {why}"
            );
        }
        let last = log.last_index();
        let (m, b, d, n) = (
            machine.clone(),
            backend.clone(),
            dir.to_path_buf(),
            name.to_string(),
        );
        let (applied, snapshot_size) = tokio::task::spawn_blocking(move || {
            m.log_opened(last);
            restore_snapshot(m.as_ref(), b.as_ref(), &d, n)
        })
        .await
        .map_err(std::io::Error::other)?;
        if log.forget_purged_past(applied)? {
            // The machine holds less than the log's purge point and no snapshot brought
            // it back: the entries in between are gone here. The member starts from an
            // empty log, as a damaged one: it takes the leader's snapshot and neither
            // runs nor votes until then.
            tracing::warn!(
                group = name,
                "raft log purged past the applied state; waiting for the leader's snapshot"
            );
            recovery.damaged = true;
        }
        let ms = |d: Duration| u64::try_from(d.as_millis()).unwrap_or(u64::MAX);
        let config = Config {
            cluster_name: name.to_string(),
            heartbeat_interval: ms(timing.heartbeat),
            election_timeout_min: ms(timing.election_min),
            election_timeout_max: ms(timing.election_max),
            snapshot_policy: SnapshotPolicy::Never,
            max_in_snapshot_log_to_keep: timing.log_keep,
            max_payload_entries: 64,
            ..Config::default()
        }
        .validate()
        .map_err(std::io::Error::other)?;
        let network = Network {
            group: name.into(),
            transport,
        };
        let adapter = MachineAdapter {
            machine: machine.clone(),
            backend,
            dir: dir.to_path_buf(),
            booted: Arc::default(),
            last_size: Arc::new(snapshot_size.into()),
        };
        let raft = Raft::new(me, Arc::new(config), network, log.clone(), adapter.clone())
            .await
            .map_err(std::io::Error::other)?;
        adapter.booted.store(true, Ordering::Release);
        let abstain = Arc::new(Abstain::default());
        if recovery.damaged {
            abstain.start(raft.clone(), me, name.to_string());
        }
        let stopped = Arc::new(AtomicBool::new(false));
        if machine.snapshots() {
            tokio::spawn(snapshot_loop(
                raft.clone(),
                log,
                adapter,
                timing.snapshot_bytes,
                stopped.clone(),
            ));
        }
        Ok(Group {
            name: name.into(),
            me,
            raft,
            timing,
            stepping: Arc::default(),
            abstain,
            stopped,
        })
    }

    /// Makes `members` (id → server name) the group's first membership, unless it has one
    /// already (every member may call it with the same set).
    pub async fn initialize(&self, members: BTreeMap<NodeId, String>) -> Result<(), String> {
        let nodes: BTreeMap<NodeId, BasicNode> = members
            .into_iter()
            .map(|(id, name)| (id, BasicNode::new(name)))
            .collect();
        match self.raft.initialize(nodes).await {
            Ok(()) | Err(RaftError::APIError(InitializeError::NotAllowed(_))) => Ok(()),
            Err(e) => Err(e.to_string()),
        }
    }

    /// [`Group::initialize`] for a group whose members all start at once: `first`
    /// campaigns at once, the others give it an election timeout (spread by node id) to
    /// win and only then, when they have heard of no leader and voted for no one (`first`
    /// is down), initialize too. Every member campaigning at once splits the first vote
    /// and costs a whole election timeout.
    pub async fn initialize_led_by(
        &self,
        members: BTreeMap<NodeId, String>,
        first: NodeId,
    ) -> Result<(), String> {
        if first != self.me && members.contains_key(&first) {
            let spread =
                self.timing.election_min / 2 * u32::try_from(self.me % 16).unwrap_or(0) / 16;
            let mut metrics = self.raft.metrics();
            let heard = async {
                loop {
                    {
                        let m = metrics.borrow_and_update();
                        if m.current_term > 0 || m.last_log_index.is_some() {
                            return;
                        }
                    }
                    if metrics.changed().await.is_err() {
                        return;
                    }
                }
            };
            if tokio::time::timeout(self.timing.election_min + spread, heard)
                .await
                .is_ok()
            {
                return Ok(());
            }
        }
        self.initialize(members).await
    }

    /// Proposes `data`; returns the leader's machine's reply once it is committed (fsynced
    /// on a quorum) and applied here.
    pub async fn propose(&self, data: Vec<u8>) -> Result<Vec<u8>, ProposeError> {
        if self.stepping.load(std::sync::atomic::Ordering::Acquire) {
            return Err(ProposeError::NotLeader(None));
        }
        match self.raft.client_write(crate::Data(data)).await {
            Ok(resp) => Ok(resp.data),
            Err(RaftError::APIError(ClientWriteError::ForwardToLeader(f))) => {
                Err(ProposeError::NotLeader(f.leader_id))
            }
            Err(e) => Err(ProposeError::Failed(e.to_string())),
        }
    }

    /// Adds `id` (server `name`) as a voter: first as a learner that catches up, then
    /// in the membership. Leader only.
    pub async fn add_voter(&self, id: NodeId, name: &str) -> Result<(), String> {
        self.raft
            .add_learner(id, BasicNode::new(name), true)
            .await
            .map_err(|e| e.to_string())?;
        let mut voters: BTreeSet<NodeId> = self.voters();
        voters.insert(id);
        self.raft
            .change_membership(voters, false)
            .await
            .map(|_| ())
            .map_err(|e| e.to_string())
    }

    /// The current voters.
    pub fn voters(&self) -> BTreeSet<NodeId> {
        self.raft
            .metrics()
            .borrow()
            .membership_config
            .membership()
            .voter_ids()
            .collect()
    }

    /// Every member's id and server name.
    pub fn members(&self) -> BTreeMap<NodeId, String> {
        self.raft
            .metrics()
            .borrow()
            .membership_config
            .membership()
            .nodes()
            .map(|(id, n)| (*id, n.addr.clone()))
            .collect()
    }

    /// The leader this node knows of.
    pub fn leader(&self) -> Option<NodeId> {
        self.raft.metrics().borrow().current_leader
    }

    /// Whether this node still leads the group, confirmed by a quorum now (a heartbeat
    /// round, openraft's read index), with everything committed before applied here:
    /// a leader cut off from the others, which openraft 0.9 keeps as leader until it hears
    /// a higher term, answers `false` (within `timeout`). For reads that must not be stale.
    pub async fn confirm_leader(&self, timeout: Duration) -> bool {
        if !self.is_leader() {
            return false;
        }
        matches!(
            tokio::time::timeout(timeout, self.raft.ensure_linearizable()).await,
            Ok(Ok(_))
        )
    }

    /// Whether this member abstains (its log was damaged and a leader has not yet
    /// caught it up): it neither stands for election nor votes.
    pub fn abstains(&self) -> bool {
        self.abstain.on()
    }

    /// Whether this node leads the group.
    pub fn is_leader(&self) -> bool {
        self.leader() == Some(self.me)
    }

    /// openraft's metrics (term, last log, followers' matched log ids on the leader).
    pub fn metrics(&self) -> RaftMetrics<NodeId, BasicNode> {
        self.raft.metrics().borrow().clone()
    }

    /// Why the group stopped on this node (an entry its machine cannot apply, a storage
    /// failure), or `None` while it runs.
    pub fn failed(&self) -> Option<String> {
        match &self.raft.metrics().borrow().running_state {
            Ok(()) => None,
            Err(fatal) => Some(fatal.to_string()),
        }
    }

    /// A receiver of openraft's metrics, changed on every leader, term or log change.
    pub fn watch(&self) -> tokio::sync::watch::Receiver<RaftMetrics<NodeId, BasicNode>> {
        self.raft.metrics()
    }

    /// Waits until the group knows a leader, at most `timeout`.
    pub async fn wait_leader(&self, timeout: Duration) -> Option<NodeId> {
        self.raft
            .wait(Some(timeout))
            .metrics(|m| m.current_leader.is_some(), "a leader")
            .await
            .ok()
            .and_then(|m| m.current_leader)
    }

    /// Hands the leadership to `to` (an up-to-date voter): the leader stops heartbeats
    /// and proposals, waits until the followers' leader lease (one longest election
    /// timeout) has run out, asks `to` to run, and returns once another node leads or
    /// after two more election timeouts. openraft 0.9 has no leadership transfer; a
    /// follower whose own timer fires first may win instead, which a stepdown allows.
    pub async fn step_down(&self, transport: &dyn Transport, to: NodeId) -> Result<(), String> {
        use std::sync::atomic::Ordering;
        if !self.is_leader() {
            return Err("not the leader".into());
        }
        if self.stepping.swap(true, Ordering::AcqRel) {
            return Err("a stepdown is already under way".into());
        }
        let rt = self.raft.runtime_config();
        rt.heartbeat(false);
        tokio::time::sleep(self.timing.election_max + self.timing.heartbeat).await;
        let asked = self.elect_on(transport, to).await;
        let moved = self
            .raft
            .wait(Some(self.timing.election_max * 2))
            .metrics(
                |m| m.current_leader.is_some_and(|l| l != self.me),
                "a new leader",
            )
            .await
            .is_ok();
        rt.heartbeat(true);
        self.stepping.store(false, Ordering::Release);
        match (moved, asked) {
            (true, _) => Ok(()),
            (false, Err(e)) => Err(e),
            (false, Ok(())) => Err("no other member won an election".into()),
        }
    }

    /// Asks `id` (an up-to-date voter) to start an election now.
    pub async fn elect_on(&self, transport: &dyn Transport, id: NodeId) -> Result<(), String> {
        if id == self.me {
            return self.raft.trigger().elect().await.map_err(|e| e.to_string());
        }
        transport
            .call(id, &self.name, crate::net::Op::Elect, Vec::new())
            .await
            .map(|_| ())
    }

    /// Starts an election on this node now (a remote stepdown request).
    pub async fn elect(&self) -> Result<(), String> {
        self.raft.trigger().elect().await.map_err(|e| e.to_string())
    }

    /// The openraft handle, for the RPC server.
    pub(crate) fn raft(&self) -> &Raft<GroupConfig> {
        &self.raft
    }

    /// Stops the group's tasks (the log stays on disk).
    pub async fn shutdown(&self) {
        self.stopped.store(true, Ordering::Release);
        let _ = self.raft.shutdown().await;
    }
}

/// What `machine` has applied once it is opened, and the size of the group's snapshot:
/// when the snapshot is ahead of the machine (its state was lost or cut, or a crash came
/// between writing an installed snapshot and installing it), it is installed first. A
/// snapshot that cannot be read is reported and left out (the leader sends its own).
/// Blocking.
fn restore_snapshot(
    machine: &dyn Machine,
    backend: &dyn Backend,
    dir: &Path,
    group: String,
) -> (Option<LogId<NodeId>>, u64) {
    let applied = machine.restored().0;
    let (ahead, size) = match crate::snapshot::read_meta(backend, dir) {
        Ok(Some((meta, size))) => (meta.last_log_id > applied, size),
        Ok(None) => (false, 0),
        Err(e) => {
            tracing::error!(group, error = %e, "raft snapshot unreadable; left out");
            (false, 0)
        }
    };
    if !ahead {
        return (applied, size);
    }
    let installed = crate::snapshot::read(backend, dir).and_then(|found| match found {
        Some((meta, data)) => machine.install(&meta, &data).map(|()| meta.last_log_id),
        None => Ok(applied),
    });
    match installed {
        Ok(at) => {
            tracing::info!(group, index = ?at.map(|l| l.index), "state restored from the raft snapshot");
            (at, size)
        }
        Err(e) => {
            tracing::error!(group, error = %e, "restoring the raft snapshot failed");
            (machine.restored().0, 0)
        }
    }
}
