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
pub(crate) struct Wire {
    nodes: Arc<Mutex<HashMap<NodeId, Arc<Registry>>>>,
    pub(crate) down: Arc<Mutex<HashSet<NodeId>>>,
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

/// The last applied entry and membership.
type Applied = (Option<LogId<NodeId>>, StoredMembership<NodeId, BasicNode>);

/// Applied strings, in memory (rebuilt from the log, or a snapshot, on restart); with
/// `snap`, snapshots are the strings as JSON.
#[derive(Default)]
pub(crate) struct Strings {
    pub(crate) data: Mutex<Vec<String>>,
    snap: bool,
    applied: Mutex<Applied>,
    /// Snapshots installed.
    pub(crate) installed: std::sync::atomic::AtomicUsize,
    /// An older machine: entries starting `v2:` are unreadable to it.
    old: bool,
}

impl Machine for Strings {
    fn restored(&self) -> (Option<LogId<NodeId>>, StoredMembership<NodeId, BasicNode>) {
        self.applied.lock().clone()
    }

    fn apply(&self, entries: Vec<GroupEntry>) -> Result<Vec<Vec<u8>>, crate::Unappliable> {
        let mut applied = self.applied.lock();
        let mut out = Vec::new();
        for e in entries {
            let reply = match e.payload {
                EntryPayload::Normal(d) if self.old && d.starts_with(b"v2:") => {
                    return Err(crate::Unappliable {
                        log_id: e.log_id,
                        reason: "a v2 entry".into(),
                    });
                }
                EntryPayload::Normal(d) => {
                    let s = String::from_utf8_lossy(&d).into_owned();
                    self.data.lock().push(s.clone());
                    format!("ok {s}").into_bytes()
                }
                EntryPayload::Membership(m) => {
                    applied.1 = StoredMembership::new(Some(e.log_id), m);
                    Vec::new()
                }
                EntryPayload::Blank => Vec::new(),
            };
            applied.0 = Some(e.log_id);
            out.push(reply);
        }
        Ok(out)
    }

    fn snapshots(&self) -> bool {
        self.snap
    }

    fn snapshot(&self) -> std::io::Result<Option<crate::MachineSnapshot>> {
        let applied = self.applied.lock();
        let data = serde_json::to_vec(&*self.data.lock())?;
        Ok(applied.0.map(|id| (id, applied.1.clone(), data)))
    }

    fn install(&self, meta: &crate::snapshot::Meta, data: &[u8]) -> std::io::Result<()> {
        let mut applied = self.applied.lock();
        *self.data.lock() = serde_json::from_slice(data)?;
        *applied = (meta.last_log_id, meta.last_membership.clone());
        self.installed
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        Ok(())
    }
}

pub(crate) const WAIT: Duration = Duration::from_secs(10);
/// The multi-node tests run one at a time: two at once on a small, loaded machine
/// starve each other's heartbeats into spurious elections.
pub(crate) static SERIAL: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());
// Short, but long enough that a loaded CI machine does not start spurious elections
// in the middle of the writes (it did with 50 ms / 300–600 ms).
pub(crate) const FAST: Timing = Timing {
    heartbeat: Duration::from_millis(100),
    election_min: Duration::from_millis(1000),
    election_max: Duration::from_millis(2000),
    snapshot_bytes: 64 * 1024 * 1024,
    log_keep: 1000,
};

async fn start(wire: &Wire, id: NodeId, dir: &std::path::Path) -> (Group, Arc<Strings>) {
    start_with(wire, id, dir, FAST, false).await
}

/// Opens member `id` from `dir` with an older machine (`v2:` entries unreadable).
async fn start_old(wire: &Wire, id: NodeId, dir: &std::path::Path) -> (Group, Arc<Strings>) {
    let m = Arc::new(Strings {
        old: true,
        ..Strings::default()
    });
    (open_member(wire, id, dir, FAST, m.clone()).await, m)
}

/// Opens member `id` from `dir` with `timing`, its machine taking snapshots when `snap`.
pub(crate) async fn start_with(
    wire: &Wire,
    id: NodeId,
    dir: &std::path::Path,
    timing: Timing,
    snap: bool,
) -> (Group, Arc<Strings>) {
    let m = Arc::new(Strings {
        snap,
        ..Strings::default()
    });
    (open_member(wire, id, dir, timing, m.clone()).await, m)
}

/// Opens member `id` of group `G` from `dir` on `machine` and puts it on the wire.
async fn open_member(
    wire: &Wire,
    id: NodeId,
    dir: &std::path::Path,
    timing: Timing,
    machine: Arc<Strings>,
) -> Group {
    let g = Group::open(
        "G",
        id,
        dir,
        Arc::new(StdBackend),
        machine,
        Arc::new(wire.clone()),
        timing,
    )
    .await
    .expect("the group opens");
    let reg = Arc::new(Registry::default());
    reg.insert(g.clone());
    wire.nodes.lock().insert(id, reg);
    wire.down.lock().remove(&id);
    g
}

pub(crate) async fn write_all(g: &Group, prefix: &str, n: usize) {
    for i in 0..n {
        let reply = g
            .propose(format!("{prefix}{i}").into_bytes())
            .await
            .unwrap_or_else(|e| panic!("{prefix}{i} on {} not committed: {e:?}", g.me));
        assert_eq!(reply, format!("ok {prefix}{i}").into_bytes());
    }
}

pub(crate) async fn applied_everywhere(nodes: &[&Group], index: Option<u64>) {
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

pub(crate) type Nodes = Vec<(Group, Arc<Strings>)>;

/// Three members: their directories, the wire, the nodes and the member names.
pub(crate) type Three = (
    Vec<tempfile::TempDir>,
    Wire,
    Nodes,
    BTreeMap<NodeId, String>,
);

/// Three members 1..=3 on fresh directories, each initialized with the same set (one
/// group, one leader).
async fn three_started() -> Three {
    three_started_with(FAST, false).await
}

/// [`three_started`] with `timing`, the machines taking snapshots when `snap`.
pub(crate) async fn three_started_with(timing: Timing, snap: bool) -> Three {
    let (dirs, wire, nodes, members) = three_fresh_with(timing, snap).await;
    for (g, _) in &nodes {
        g.initialize(members.clone()).await.expect("initialize");
    }
    (dirs, wire, nodes, members)
}

/// The first leader a quorum confirms (right after the start, two nodes may both run and
/// the first winner lose its term to the second).
pub(crate) async fn confirmed_leader(nodes: &Nodes) -> Group {
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        if let Some((g, _)) = nodes.iter().find(|n| n.0.is_leader()) {
            if g.confirm_leader(Duration::from_secs(2)).await {
                return g.clone();
            }
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "no confirmed leader"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_nodes_keep_every_committed_entry_across_a_leader_kill() {
    let _serial = SERIAL.lock().await;
    let (dirs, wire, nodes, members) = three_started().await;
    let lead = confirmed_leader(&nodes).await;
    let first = lead.me;
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
            has_all(m, &want).await;
        }
    }
    // The old leader comes back from its files and catches up, in the same order.
    let (back, m) = start(&wire, first, dirs[(first - 1) as usize].path()).await;
    applied_everywhere(&[&back], last).await;
    has_all(&m, &want).await;
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

/// Waits until `f` holds, at most [`WAIT`].
pub(crate) async fn until(what: &str, f: impl Fn() -> bool) {
    let deadline = tokio::time::Instant::now() + WAIT;
    while !f() {
        assert!(tokio::time::Instant::now() < deadline, "never: {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Waits until `m` applied as many entries as `want` has, then compares them (a leader's
/// metrics may lag its last apply, so the index it reports is not waited for).
pub(crate) async fn has_all(m: &Strings, want: &[String]) {
    until("every entry applied", || m.data.lock().len() >= want.len()).await;
    assert_eq!(*m.data.lock(), want);
}

/// Waits until `g` learns from one of `others` that it is out of the group.
async fn removed(g: &Group, wire: &Wire, others: &[NodeId]) {
    let deadline = tokio::time::Instant::now() + WAIT;
    while !g.was_removed(wire, others).await {
        assert!(
            tokio::time::Instant::now() < deadline,
            "{} never learned it is out",
            g.me
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn membership_grows_and_shrinks_and_the_removed_learn_it() {
    let _serial = SERIAL.lock().await;
    let dirs: Vec<tempfile::TempDir> = (0..4).map(|_| tempfile::tempdir().unwrap()).collect();
    let wire = Wire::default();
    let (one, m1) = start(&wire, 1, dirs[0].path()).await;
    let name = |i: NodeId| (i, format!("n{i}"));
    one.initialize(BTreeMap::from([name(1)])).await.unwrap();
    until("node 1 leads", || one.is_leader()).await;
    write_all(&one, "a", 10).await;
    // R1 → R3: the new members start with no membership and catch up from the log.
    let (two, m2) = start(&wire, 2, dirs[1].path()).await;
    let (three, m3) = start(&wire, 3, dirs[2].path()).await;
    let three_set = BTreeMap::from([name(1), name(2), name(3)]);
    assert_eq!(
        one.converge(&wire, &three_set).await.unwrap(),
        crate::Converged::Changed
    );
    assert_eq!(one.voters(), three_set.keys().copied().collect());
    let voters = Some(three_set.keys().copied().collect());
    until("the new voters are committed", || {
        one.committed_voters() == voters
    })
    .await;
    // Converging again changes nothing; a follower never converges.
    assert_eq!(
        one.converge(&wire, &three_set).await.unwrap(),
        crate::Converged::Nothing
    );
    assert_eq!(two.committed_voters(), None);
    write_all(&one, "b", 5).await;
    let want: Vec<String> = (0..10)
        .map(|i| format!("a{i}"))
        .chain((0..5).map(|i| format!("b{i}")))
        .collect();
    for m in [&m2, &m3] {
        has_all(m, &want).await;
    }
    // Node 3 is still a member: it does not leave.
    assert!(!three.was_removed(&wire, &[1, 2]).await);
    // Replace 3 with 4, then drop the leader itself: it hands over to a member that stays,
    // which finishes the change.
    let (four, m4) = start(&wire, 4, dirs[3].path()).await;
    let target = BTreeMap::from([name(1), name(2), name(4)]);
    one.converge(&wire, &target).await.unwrap();
    removed(&three, &wire, &[1, 2, 4]).await;
    let target = BTreeMap::from([name(2), name(4)]);
    match one.converge(&wire, &target).await.unwrap() {
        crate::Converged::SteppedDown(to) => assert!(to == 2 || to == 4),
        other => panic!("the leader did not hand over: {other:?}"),
    }
    let new = [&two, &four]
        .into_iter()
        .find(|g| g.is_leader())
        .expect("2 or 4 leads")
        .clone();
    assert_eq!(
        new.converge(&wire, &target).await.unwrap(),
        crate::Converged::Changed
    );
    removed(&one, &wire, &[2, 4]).await;
    write_all(&new, "c", 3).await;
    let want: Vec<String> = want
        .into_iter()
        .chain((0..3).map(|i| format!("c{i}")))
        .collect();
    for m in [&m2, &m4] {
        has_all(m, &want).await;
    }
    // The removed members never saw the last writes.
    assert!(m1.data.lock().len() < want.len() && m3.data.lock().len() < want.len());
}

/// Flips a bit in the last record of the Raft log in `dir` (a committed entry).
fn damage_last_record(dir: &std::path::Path) {
    let path = dir.join("raft.log");
    let mut bytes = std::fs::read(&path).unwrap();
    let mut off = 0usize;
    let mut last = 0usize;
    while off + 8 <= bytes.len() {
        last = off;
        off += 8 + u32::from_le_bytes(bytes[off..off + 4].try_into().unwrap()) as usize;
    }
    let at = bytes.len() - 1;
    assert!(at > last + 8, "the last record has a body");
    bytes[at] ^= 0x10;
    std::fs::write(&path, &bytes).unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_member_whose_log_was_damaged_neither_runs_nor_votes_until_caught_up() {
    let _serial = SERIAL.lock().await;
    let (dirs, wire, nodes, _) = three_started().await;
    let lead = confirmed_leader(&nodes).await;
    write_all(&lead, "a", 5).await;
    // C goes down; "b0..b2" are committed by the leader L and B alone.
    let others: Vec<NodeId> = (1..=3).filter(|i| *i != lead.me).collect();
    let (b, c) = (others[0], others[1]);
    let node = |id: NodeId| nodes[(id - 1) as usize].0.clone();
    wire.down.lock().insert(c);
    node(c).shutdown().await;
    write_all(&lead, "b", 3).await;
    until("B has every b", || {
        node(b).metrics().last_log_index >= lead.metrics().last_log_index
    })
    .await;
    // L and B stop; B's last record (b2, committed) is damaged on its disk.
    for id in [lead.me, b] {
        wire.down.lock().insert(id);
        node(id).shutdown().await;
    }
    damage_last_record(dirs[(b - 1) as usize].path());
    // B and C come back without L: B abstains, so neither can lead (B would win C's vote
    // with a log that lacks b2, then overwrite L's copy of it).
    let (b_back, mb) = start(&wire, b, dirs[(b - 1) as usize].path()).await;
    let (c_back, mc) = start(&wire, c, dirs[(c - 1) as usize].path()).await;
    assert!(b_back.abstains(), "B's damaged log makes it abstain");
    assert!(!c_back.abstains());
    let t0 = c_back.metrics().current_term;
    until("C ran for election twice", || {
        c_back.metrics().current_term >= t0 + 2
    })
    .await;
    assert!(!b_back.is_leader() && !c_back.is_leader());
    assert!(b_back.abstains());
    // L returns: it leads (C votes for its longer log), brings B up to date, and B votes
    // again; b2 is everywhere.
    let (l_back, ml) = start(&wire, lead.me, dirs[(lead.me - 1) as usize].path()).await;
    until("B caught up and votes again", || !b_back.abstains()).await;
    let all = [&l_back, &b_back, &c_back];
    until("a leader", || all.iter().any(|g| g.is_leader())).await;
    let now = all
        .into_iter()
        .find(|g| g.is_leader())
        .expect("a leader")
        .clone();
    write_all(&now, "c", 1).await;
    let want: Vec<String> = (0..5)
        .map(|i| format!("a{i}"))
        .chain((0..3).map(|i| format!("b{i}")))
        .chain(std::iter::once("c0".to_string()))
        .collect();
    for m in [&ml, &mb, &mc] {
        has_all(m, &want).await;
    }
}

/// A member whose machine cannot read an entry (an older Petrel) stops there — it never
/// skips the entry and applies what follows — and stops there again when restarted; the
/// other two go on. Run with a machine that reads the entry, it applies everything.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_member_that_cannot_apply_an_entry_stops_rather_than_skipping_it() {
    let _serial = SERIAL.lock().await;
    let (dirs, wire, mut nodes, _) = three_started().await;
    let lead = confirmed_leader(&nodes).await;
    let at = nodes.iter().position(|n| n.0.me != lead.me).unwrap();
    let old_id = nodes[at].0.me;
    let dir = dirs[(old_id - 1) as usize].path();
    // The follower restarts as an older Petrel.
    wire.down.lock().insert(old_id);
    nodes[at].0.shutdown().await;
    nodes[at] = start_old(&wire, old_id, dir).await;
    write_all(&lead, "a", 3).await;
    let reply = lead
        .propose(b"v2:x".to_vec())
        .await
        .expect("v2:x committed");
    assert_eq!(reply, b"ok v2:x");
    write_all(&lead, "b", 3).await;
    let last = lead.metrics().last_applied.map(|l| l.index);
    let others: Vec<&Group> = nodes
        .iter()
        .filter(|n| n.0.me != old_id)
        .map(|n| &n.0)
        .collect();
    applied_everywhere(&others, last).await;
    let (old, m) = &nodes[at];
    until("the old member stops", || old.failed().is_some()).await;
    let why = old.failed().unwrap_or_default();
    assert!(why.contains("a v2 entry"), "{why}");
    assert_eq!(
        *m.data.lock(),
        ["a0", "a1", "a2"],
        "it applied nothing past the entry"
    );
    // Restarted as the same old Petrel, it stops at the same entry again.
    wire.down.lock().insert(old_id);
    old.shutdown().await;
    let (old, m) = start_old(&wire, old_id, dir).await;
    until("the old member stops again", || old.failed().is_some()).await;
    assert_eq!(*m.data.lock(), ["a0", "a1", "a2"]);
    // Upgraded, it applies everything in order.
    wire.down.lock().insert(old_id);
    old.shutdown().await;
    let (new, m) = start(&wire, old_id, dir).await;
    applied_everywhere(&[&new], last).await;
    assert!(new.failed().is_none());
    let want = ["a0", "a1", "a2", "v2:x", "b0", "b1", "b2"];
    assert_eq!(*m.data.lock(), want);
}

/// Three members on fresh directories, not initialized yet.
async fn three_fresh() -> Three {
    three_fresh_with(FAST, false).await
}

/// [`three_fresh`] with `timing`, the machines taking snapshots when `snap`.
async fn three_fresh_with(timing: Timing, snap: bool) -> Three {
    let dirs: Vec<tempfile::TempDir> = (0..3).map(|_| tempfile::tempdir().unwrap()).collect();
    let wire = Wire::default();
    let mut nodes = Vec::new();
    for (i, d) in dirs.iter().enumerate() {
        nodes.push(start_with(&wire, i as NodeId + 1, d.path(), timing, snap).await);
    }
    let members = (1..=3).map(|i| (i, format!("n{i}"))).collect();
    (dirs, wire, nodes, members)
}

/// Members started together with `initialize_led_by` elect the chosen first member in
/// the first term: no split vote (every member initializing at once campaigns at once,
/// and a split first vote costs a whole election timeout).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn members_started_together_elect_the_first_one_in_the_first_term() {
    let _serial = SERIAL.lock().await;
    for first in [2, 3, 1, 2] {
        let (_dirs, _wire, nodes, members) = three_fresh().await;
        let starts = nodes.iter().map(|(g, _)| {
            let (g, members) = (g.clone(), members.clone());
            tokio::spawn(async move { g.initialize_led_by(members, first).await })
        });
        for s in starts.collect::<Vec<_>>() {
            s.await.unwrap().expect("initialized");
        }
        let lead = confirmed_leader(&nodes).await;
        assert_eq!(lead.me, first);
        assert_eq!(
            lead.metrics().current_term,
            1,
            "the first vote was not split"
        );
        write_all(&lead, "a", 2).await;
        for (g, _) in &nodes {
            g.shutdown().await;
        }
    }
}

/// With the chosen first member down, the others start the group themselves once they
/// have waited for it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_others_start_the_group_when_the_first_member_is_down() {
    let _serial = SERIAL.lock().await;
    let (_dirs, wire, nodes, members) = three_fresh().await;
    wire.down.lock().insert(2);
    nodes[1].0.shutdown().await;
    let up = [&nodes[0], &nodes[2]];
    let starts = up.iter().map(|(g, _)| {
        let (g, members) = (g.clone(), members.clone());
        tokio::spawn(async move { g.initialize_led_by(members, 2).await })
    });
    for s in starts.collect::<Vec<_>>() {
        s.await.unwrap().expect("initialized");
    }
    let lead = confirmed_leader(&nodes).await;
    assert_ne!(lead.me, 2);
    write_all(&lead, "a", 2).await;
}
