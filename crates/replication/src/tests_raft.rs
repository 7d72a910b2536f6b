//! Three openraft nodes on [`FileLog`]s, connected in process: writes commit on a quorum
//! and reach every state machine; after the leader is killed the other two elect a new
//! one and keep every committed entry; the old leader, reopened from its directory,
//! catches up. (The transport over routes comes with the server integration; this checks
//! the log under a real Raft.)

use std::collections::{BTreeSet, HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use openraft::error::{InstallSnapshotError, RPCError, RaftError, RemoteError, Unreachable};
use openraft::network::RPCOption;
use openraft::raft::{
    AppendEntriesRequest, AppendEntriesResponse, InstallSnapshotRequest, InstallSnapshotResponse,
    VoteRequest, VoteResponse,
};
use openraft::{BasicNode, Config, Raft, RaftNetwork, RaftNetworkFactory};
use parking_lot::Mutex;
use petrel_store::StdBackend;

use crate::tests::{Cfg, Sm};
use crate::FileLog;

type Nid = u64;

/// The nodes that are up, by id.
#[derive(Clone, Default)]
struct Router {
    nodes: Arc<Mutex<HashMap<Nid, Raft<Cfg>>>>,
    down: Arc<Mutex<HashSet<Nid>>>,
}

impl Router {
    fn get(&self, id: Nid) -> Result<Raft<Cfg>, Unreachable> {
        let down = self.down.lock().contains(&id);
        match self.nodes.lock().get(&id) {
            Some(r) if !down => Ok(r.clone()),
            _ => Err(Unreachable::new(&std::io::Error::other("node down"))),
        }
    }
}

struct Net {
    target: Nid,
    router: Router,
}

impl RaftNetworkFactory<Cfg> for Router {
    type Network = Net;

    async fn new_client(&mut self, target: Nid, _node: &BasicNode) -> Net {
        Net {
            target,
            router: self.clone(),
        }
    }
}

impl RaftNetwork<Cfg> for Net {
    async fn append_entries(
        &mut self,
        rpc: AppendEntriesRequest<Cfg>,
        _option: RPCOption,
    ) -> Result<AppendEntriesResponse<Nid>, RPCError<Nid, BasicNode, RaftError<Nid>>> {
        let raft = self.router.get(self.target)?;
        raft.append_entries(rpc)
            .await
            .map_err(|e| RPCError::RemoteError(RemoteError::new(self.target, e)))
    }

    async fn install_snapshot(
        &mut self,
        rpc: InstallSnapshotRequest<Cfg>,
        _option: RPCOption,
    ) -> Result<
        InstallSnapshotResponse<Nid>,
        RPCError<Nid, BasicNode, RaftError<Nid, InstallSnapshotError>>,
    > {
        let raft = self.router.get(self.target)?;
        raft.install_snapshot(rpc)
            .await
            .map_err(|e| RPCError::RemoteError(RemoteError::new(self.target, e)))
    }

    async fn vote(
        &mut self,
        rpc: VoteRequest<Nid>,
        _option: RPCOption,
    ) -> Result<VoteResponse<Nid>, RPCError<Nid, BasicNode, RaftError<Nid>>> {
        let raft = self.router.get(self.target)?;
        raft.vote(rpc)
            .await
            .map_err(|e| RPCError::RemoteError(RemoteError::new(self.target, e)))
    }
}

const WAIT: Option<Duration> = Some(Duration::from_secs(10));

async fn start(router: &Router, id: Nid, dir: &std::path::Path) -> (Raft<Cfg>, Sm) {
    let config = Config {
        heartbeat_interval: 50,
        election_timeout_min: 300,
        election_timeout_max: 600,
        ..Config::default()
    }
    .validate()
    .expect("valid config");
    let (log, _) = FileLog::open(Arc::new(StdBackend), dir).expect("open the log");
    let sm = Sm::default();
    let raft = Raft::new(id, Arc::new(config), router.clone(), log, sm.clone())
        .await
        .expect("raft starts");
    router.nodes.lock().insert(id, raft.clone());
    router.down.lock().remove(&id);
    (raft, sm)
}

async fn leader(rafts: &[&Raft<Cfg>]) -> Nid {
    let m = rafts[0]
        .wait(WAIT)
        .metrics(|m| m.current_leader.is_some(), "a leader")
        .await
        .expect("a leader in time");
    m.current_leader.expect("leader")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_nodes_keep_every_committed_entry_across_a_leader_kill() {
    let dirs: Vec<tempfile::TempDir> = (0..3).map(|_| tempfile::tempdir().unwrap()).collect();
    let router = Router::default();
    let mut nodes = Vec::new();
    for (i, d) in dirs.iter().enumerate() {
        nodes.push(start(&router, i as Nid, d.path()).await);
    }
    nodes[0]
        .0
        .initialize(BTreeSet::from([0, 1, 2]))
        .await
        .expect("initialize");
    let first = leader(&[&nodes[0].0]).await;
    let lead = router.get(first).unwrap();
    for i in 0..20 {
        lead.client_write(format!("a{i}")).await.expect("committed");
    }
    // Every node applies the 20 writes (and the membership entries before them).
    let last = lead.metrics().borrow().last_applied.map(|l| l.index);
    for (raft, _) in &nodes {
        raft.wait(WAIT)
            .applied_index_at_least(last, "applied everywhere")
            .await
            .unwrap();
    }
    // Kill the leader: the two others elect a new one and keep going.
    router.down.lock().insert(first);
    let _ = nodes[first as usize].0.shutdown().await;
    let others: Vec<&Raft<Cfg>> = (0..3)
        .filter(|i| *i != first as usize)
        .map(|i| &nodes[i].0)
        .collect();
    let second = others[0]
        .wait(WAIT)
        .metrics(
            |m| m.current_leader.is_some_and(|l| l != first),
            "a new leader",
        )
        .await
        .unwrap()
        .current_leader
        .unwrap();
    let lead = router.get(second).unwrap();
    for i in 0..10 {
        lead.client_write(format!("b{i}")).await.expect("committed");
    }
    let last = lead.metrics().borrow().last_applied.map(|l| l.index);
    let want: Vec<String> = (0..20)
        .map(|i| format!("a{i}"))
        .chain((0..10).map(|i| format!("b{i}")))
        .collect();
    for i in (0..3).filter(|i| *i != first as usize) {
        nodes[i]
            .0
            .wait(WAIT)
            .applied_index_at_least(last, "applied on the survivors")
            .await
            .unwrap();
        assert_eq!(nodes[i].1.inner.lock().data, want);
    }
    // The old leader comes back from its files and catches up, in the same order.
    let (back, sm) = start(&router, first, dirs[first as usize].path()).await;
    back.wait(WAIT)
        .applied_index_at_least(last, "the old leader catches up")
        .await
        .unwrap();
    assert_eq!(sm.inner.lock().data, want);
}
