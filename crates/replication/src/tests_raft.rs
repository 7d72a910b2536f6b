//! Three [`Group`]s on [`FileLog`]s, their RPCs carried in process through a [`Transport`]
//! and answered by each node's [`Registry`] (the same path the server takes, minus the
//! routes): writes commit on a quorum and reach every machine; after the leader is killed
//! the other two elect a new one and keep every committed entry; the old leader, reopened
//! from its directory, catches up; a leader hands over to a chosen member.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use openraft::{BasicNode, EntryPayload, LogId, StoredMembership};
use parking_lot::Mutex;
use petrel_store::StdBackend;

use crate::{Group, GroupEntry, Machine, NodeId, Op, Pending, Registry, Timing, Transport};

/// The nodes that are up: their registries.
#[derive(Clone, Default)]
struct Wire {
    nodes: Arc<Mutex<HashMap<NodeId, Arc<Registry>>>>,
    down: Arc<Mutex<HashSet<NodeId>>>,
}

impl Transport for Wire {
    fn call_with(
        &self,
        target: NodeId,
        group: &str,
        op: Op,
        body: Vec<u8>,
        _timeout: Duration,
    ) -> Pending {
        let reg = if self.down.lock().contains(&target) {
            None
        } else {
            self.nodes.lock().get(&target).cloned()
        };
        let group = group.to_string();
        Box::pin(async move {
            match reg {
                Some(r) => Ok(r.serve(&group, op, &body).await),
                None => Err("node down".into()),
            }
        })
    }
}

/// Applied strings, in memory (rebuilt from the log on restart).
#[derive(Default)]
struct Strings {
    data: Mutex<Vec<String>>,
}

impl Machine for Strings {
    fn restored(&self) -> (Option<LogId<NodeId>>, StoredMembership<NodeId, BasicNode>) {
        (None, StoredMembership::default())
    }

    fn apply(&self, entries: Vec<GroupEntry>) -> Vec<Vec<u8>> {
        entries
            .into_iter()
            .map(|e| match e.payload {
                EntryPayload::Normal(d) => {
                    let s = String::from_utf8_lossy(&d).into_owned();
                    self.data.lock().push(s.clone());
                    format!("ok {s}").into_bytes()
                }
                _ => Vec::new(),
            })
            .collect()
    }
}

const WAIT: Duration = Duration::from_secs(10);
// Short, but long enough that a loaded CI machine does not start spurious elections
// in the middle of the writes (it did with 50 ms / 300–600 ms).
const FAST: Timing = Timing {
    heartbeat: Duration::from_millis(100),
    election_min: Duration::from_millis(1000),
    election_max: Duration::from_millis(2000),
};

async fn start(wire: &Wire, id: NodeId, dir: &std::path::Path) -> (Group, Arc<Strings>) {
    let m = Arc::new(Strings::default());
    let g = Group::open(
        "G",
        id,
        dir,
        Arc::new(StdBackend),
        m.clone(),
        Arc::new(wire.clone()),
        FAST,
    )
    .await
    .expect("the group opens");
    let reg = Arc::new(Registry::default());
    reg.insert(g.clone());
    wire.nodes.lock().insert(id, reg);
    wire.down.lock().remove(&id);
    (g, m)
}

async fn write_all(g: &Group, prefix: &str, n: usize) {
    for i in 0..n {
        let reply = g
            .propose(format!("{prefix}{i}").into_bytes())
            .await
            .expect("committed");
        assert_eq!(reply, format!("ok {prefix}{i}").into_bytes());
    }
}

async fn applied_everywhere(nodes: &[&Group], index: Option<u64>) {
    for g in nodes {
        let deadline = tokio::time::Instant::now() + WAIT;
        while g.metrics().last_applied.map(|l| l.index) < index {
            assert!(
                tokio::time::Instant::now() < deadline,
                "{} never applied {index:?}",
                g.me
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_nodes_keep_every_committed_entry_across_a_leader_kill() {
    let dirs: Vec<tempfile::TempDir> = (0..3).map(|_| tempfile::tempdir().unwrap()).collect();
    let wire = Wire::default();
    let mut nodes = Vec::new();
    for (i, d) in dirs.iter().enumerate() {
        nodes.push(start(&wire, i as NodeId + 1, d.path()).await);
    }
    let members: BTreeMap<NodeId, String> = (1..=3).map(|i| (i, format!("n{i}"))).collect();
    // Every member initializes with the same set: one group, one leader.
    for (g, _) in &nodes {
        g.initialize(members.clone()).await.expect("initialize");
    }
    let first = nodes[0].0.wait_leader(WAIT).await.expect("a leader");
    let lead = nodes[(first - 1) as usize].0.clone();
    assert!(lead.is_leader());
    assert_eq!(lead.members(), members);
    write_all(&lead, "a", 20).await;
    let last = lead.metrics().last_applied.map(|l| l.index);
    applied_everywhere(&nodes.iter().map(|n| &n.0).collect::<Vec<_>>(), last).await;
    // A follower refuses proposals and names the leader.
    let follower = nodes.iter().find(|n| n.0.me != first).unwrap();
    match follower.0.propose(b"x".to_vec()).await {
        Err(crate::ProposeError::NotLeader(Some(l))) => assert_eq!(l, first),
        other => panic!("a follower took a proposal: {other:?}"),
    }
    // Kill the leader: the two others elect a new one and keep going.
    wire.down.lock().insert(first);
    lead.shutdown().await;
    let others: Vec<Group> = nodes
        .iter()
        .filter(|n| n.0.me != first)
        .map(|n| n.0.clone())
        .collect();
    let deadline = tokio::time::Instant::now() + WAIT;
    let second = loop {
        if let Some(l) = others[0].leader().filter(|l| *l != first) {
            break l;
        }
        assert!(tokio::time::Instant::now() < deadline, "no new leader");
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    let lead = others.iter().find(|g| g.me == second).unwrap().clone();
    write_all(&lead, "b", 10).await;
    let last = lead.metrics().last_applied.map(|l| l.index);
    let want: Vec<String> = (0..20)
        .map(|i| format!("a{i}"))
        .chain((0..10).map(|i| format!("b{i}")))
        .collect();
    applied_everywhere(&others.iter().collect::<Vec<_>>(), last).await;
    for (g, m) in &nodes {
        if g.me != first {
            assert_eq!(*m.data.lock(), want);
        }
    }
    // The old leader comes back from its files and catches up, in the same order.
    let (back, m) = start(&wire, first, dirs[(first - 1) as usize].path()).await;
    applied_everywhere(&[&back], last).await;
    assert_eq!(*m.data.lock(), want);
    // Stepdown: the leader asks another member to run; it wins (its log is as long).
    let target = others.iter().find(|g| g.me != second).unwrap().me;
    lead.step_down(&wire, target).await.expect("stepped down");
    assert_ne!(lead.leader(), Some(second));
    assert!(!lead.is_leader());
    // The new leader takes writes; every member applies them after the earlier ones.
    let now = others
        .iter()
        .find(|g| g.is_leader())
        .expect("a leader")
        .clone();
    write_all(&now, "c", 3).await;
}
