//! Raft snapshots of replicated streams, on three in-process nodes whose groups snapshot
//! every few KiB of log and keep only a few entries behind: the log is purged, a replica
//! that was down meanwhile comes back behind the leader's purge point and is caught up
//! from a snapshot of the leader's files (messages, a delete, a durable consumer's acks),
//! and an R1 stream whose log is purged grows to R3 — its new replicas start from a
//! snapshot. Each is then made leader and serves every acknowledged message, and the
//! consumer carries on without redelivering a confirmed ack.

use std::path::{Path, PathBuf};
use std::time::Duration;

use async_nats::jetstream::{self, consumer, stream};
use futures::StreamExt;

use crate::js_cluster::{create, fixed_node_with, info, publish_acked};
use crate::js_cluster_faults::SNAPPY;
use crate::support::{all_there, free_ports};

const WAIT: Duration = Duration::from_secs(30);

/// The directory of the stream group whose name starts with `prefix` on a node.
fn group_dir(store: &Path, prefix: &str) -> PathBuf {
    let root = store.join("jetstream").join("_cluster_");
    std::fs::read_dir(&root)
        .unwrap()
        .filter_map(Result::ok)
        .map(|e| e.path())
        .find(|p| {
            p.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.starts_with(prefix))
        })
        .unwrap_or_else(|| panic!("no group {prefix}* in {}", root.display()))
}

/// The index of the last entry a replica recorded as applied (`applied.log`).
fn applied_index(group: &Path) -> u64 {
    let bytes = std::fs::read(group.join("applied.log")).unwrap();
    let last = &bytes[bytes.len() - 40..];
    u64::from_le_bytes(last[..8].try_into().unwrap())
}

/// The log index the group's log is purged up to on a node (0 when not purged).
fn purged_index(group: &Path) -> u64 {
    let state: serde_json::Value =
        serde_json::from_slice(&std::fs::read(group.join("raft/state.json")).unwrap()).unwrap();
    state["last_purged"]["index"].as_u64().unwrap_or(0)
}

/// Waits until `f` holds, at most [`WAIT`].
async fn until(what: &str, f: impl Fn() -> bool) {
    let deadline = tokio::time::Instant::now() + WAIT;
    while !f() {
        assert!(tokio::time::Instant::now() < deadline, "never: {what}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Makes `name` lead the stream (a preferred stepdown, repeated until it holds).
pub(crate) async fn lead(
    nc: &async_nats::Client,
    js: &jetstream::Context,
    stream: &str,
    name: &str,
) {
    let deadline = tokio::time::Instant::now() + WAIT * 2;
    loop {
        let c = info(js, stream).await.cluster.unwrap();
        let current = c
            .replicas
            .iter()
            .find(|p| p.name == name)
            .map(|p| p.current);
        if c.leader.as_deref() == Some(name) {
            return;
        }
        if current == Some(true) {
            let body = format!(r#"{{"placement":{{"preferred":"{name}"}}}}"#);
            let _ = nc
                .request(
                    format!("$JS.API.STREAM.LEADER.STEPDOWN.{stream}"),
                    body.into(),
                )
                .await;
            tokio::time::sleep(Duration::from_secs(6)).await;
        } else {
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "{name} never leads {stream}"
        );
    }
}

/// A follower of `stream` (its name and node index) and the leader's node index.
async fn follower_and_leader(js: &jetstream::Context, stream: &str) -> (String, usize, usize) {
    let cluster = info(js, stream).await.cluster.unwrap();
    let index = |name: &str| -> usize { name.trim_start_matches("node-").parse().unwrap() };
    let gone = cluster.replicas[0].name.clone();
    let leader = index(&cluster.leader.unwrap());
    (gone.clone(), index(&gone), leader)
}

/// Fetches `n` messages from the consumer and acks each with confirmation; their stream
/// sequences.
async fn take(c: &consumer::PullConsumer, n: usize) -> Vec<u64> {
    let mut msgs = c.fetch().max_messages(n).messages().await.unwrap();
    let mut seqs = Vec::new();
    while let Some(m) = tokio::time::timeout(WAIT, msgs.next())
        .await
        .expect("deliveries")
    {
        let m = m.unwrap();
        seqs.push(m.info().unwrap().stream_sequence);
        m.double_ack().await.unwrap();
    }
    seqs
}

async fn publish_range(
    js: &jetstream::Context,
    stream: &str,
    range: std::ops::RangeInclusive<u64>,
) {
    for seq in range {
        let subject = format!("{}.{seq}", stream.to_lowercase());
        let id = format!("{stream}-{seq}");
        let got = publish_acked(js, &subject, &id, &format!("{stream}{seq}")).await;
        assert_eq!(got, seq);
    }
}

/// Three nodes on their own stores whose groups snapshot every few KiB of log, and a
/// client of the first.
struct Snappy {
    dirs: Vec<tempfile::TempDir>,
    ports: Vec<u16>,
    nodes: Vec<Option<petrel_server::ServerHandle>>,
    nc: async_nats::Client,
    js: jetstream::Context,
}

impl Snappy {
    async fn start() -> Snappy {
        let dirs: Vec<tempfile::TempDir> = (0..3).map(|_| tempfile::tempdir().unwrap()).collect();
        let ports = free_ports(3);
        let mut nodes = Vec::new();
        for (i, d) in dirs.iter().enumerate() {
            nodes.push(Some(fixed_node_with(i, &ports, d.path(), SNAPPY).await));
        }
        let nc = async_nats::connect(nodes[0].as_ref().unwrap().client_url())
            .await
            .unwrap();
        let js = jetstream::new(nc.clone());
        Snappy {
            dirs,
            ports,
            nodes,
            nc,
            js,
        }
    }

    /// Shuts down a follower of `stream` (Raft group `group`).
    async fn stop_follower(&mut self, stream: &str, group: &str) -> Down {
        let (name, index, leader) = follower_and_leader(&self.js, stream).await;
        self.nodes[index].take().unwrap().shutdown().await;
        let applied = applied_index(&group_dir(self.dirs[index].path(), group));
        Down {
            name,
            index,
            leader,
            applied,
        }
    }

    /// Once the leader's log of `group` is purged past what `down` applied (a snapshot
    /// taken), starts `down` again and makes it lead `stream`.
    async fn rejoin_behind_purge(&mut self, stream: &str, group: &str, down: &Down) {
        let leader_group = group_dir(self.dirs[down.leader].path(), group);
        until(
            "the leader's log purged past the replica that is down",
            || purged_index(&leader_group) > down.applied,
        )
        .await;
        assert!(leader_group.join("raft/snapshot.bin").exists());
        let (i, dir) = (down.index, self.dirs[down.index].path());
        self.nodes[i] = Some(fixed_node_with(i, &self.ports, dir, SNAPPY).await);
        lead(&self.nc, &self.js, stream, &down.name).await;
    }

    async fn shutdown(self) {
        for n in self.nodes.into_iter().flatten() {
            n.shutdown().await;
        }
    }
}

/// A follower shut down: its name and node index, the leader's index, and the last entry
/// it had applied.
struct Down {
    name: String,
    index: usize,
    leader: usize,
    applied: u64,
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replicas_behind_a_purged_log_catch_up_from_snapshots() {
    let mut cl = Snappy::start().await;
    let (nc, js) = (cl.nc.clone(), cl.js.clone());
    let config = |name: &str, replicas| stream::Config {
        name: name.into(),
        subjects: vec![format!("{}.>", name.to_lowercase())],
        num_replicas: replicas,
        ..Default::default()
    };
    let s = create(&js, config("SNAP", 3)).await;
    let c = s
        .create_consumer(consumer::pull::Config {
            durable_name: Some("C".into()),
            ..Default::default()
        })
        .await
        .unwrap();
    publish_range(&js, "SNAP", 1..=60).await;
    assert_eq!(take(&c, 30).await, (1..=30).collect::<Vec<_>>());
    // A follower goes down; the rest goes on, the log is snapshotted and purged past it.
    let group = raft_group(&nc, "SNAP").await;
    let down = cl.stop_follower("SNAP", &group).await;
    publish_range(&js, "SNAP", 61..=400).await;
    assert!(s.delete_message(100).await.unwrap());
    assert_eq!(take(&c, 20).await, (31..=50).collect::<Vec<_>>());
    // Back: it takes the leader's snapshot, then leads and serves it all.
    cl.rejoin_behind_purge("SNAP", &group, &down).await;
    all_there(&js, "SNAP", "SNAP", 400, &[100]).await;
    assert_eq!(
        publish_acked(&js, "snap.401", "SNAP-401", "SNAP401").await,
        401
    );
    // The consumer resumes after the last confirmed ack: nothing redelivered or skipped.
    let c: consumer::PullConsumer = s.get_consumer("C").await.unwrap();
    assert_eq!(take(&c, 5).await, (51..=55).collect::<Vec<_>>());

    // An R1 stream with a purged log grows to R3: the new replicas start from snapshots.
    let one = create(&js, config("ONE", 1)).await;
    publish_range(&js, "ONE", 1..=300).await;
    let host = info(&js, "ONE").await.cluster.unwrap().leader.unwrap();
    let h: usize = host.trim_start_matches("node-").parse().unwrap();
    let one_group = group_dir(cl.dirs[h].path(), "S-R1F-");
    until("the R1 log purged", || purged_index(&one_group) > 8).await;
    drop(one);
    js.update_stream(config("ONE", 3)).await.unwrap();
    let newcomer = (0..3).find(|i| *i != h).unwrap();
    lead(&nc, &js, "ONE", &format!("node-{newcomer}")).await;
    all_there(&js, "ONE", "ONE", 300, &[]).await;
    assert_eq!(
        publish_acked(&js, "one.301", "ONE-301", "ONE301").await,
        301
    );
    cl.shutdown().await;
}

/// The Raft group of `stream`, from its info.
async fn raft_group(nc: &async_nats::Client, stream: &str) -> String {
    let reply = nc
        .request(format!("$JS.API.STREAM.INFO.{stream}"), "".into())
        .await
        .unwrap();
    let v: serde_json::Value = serde_json::from_slice(&reply.payload).unwrap();
    v["cluster"]["raft_group"].as_str().unwrap().to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_memory_replica_catches_up_from_a_snapshot_of_its_messages() {
    let mut cl = Snappy::start().await;
    let (nc, js) = (cl.nc.clone(), cl.js.clone());
    let s = create(
        &js,
        stream::Config {
            name: "MEM".into(),
            subjects: vec!["mem.>".into()],
            num_replicas: 3,
            storage: stream::StorageType::Memory,
            ..Default::default()
        },
    )
    .await;
    publish_range(&js, "MEM", 1..=50).await;
    let group = raft_group(&nc, "MEM").await;
    // A follower goes down (its memory store with it); the log is snapshotted (the
    // messages themselves) and purged past it.
    let down = cl.stop_follower("MEM", &group).await;
    publish_range(&js, "MEM", 51..=300).await;
    // Deletes in the middle and at the end: the snapshot keeps where sequences end.
    assert!(s.delete_message(100).await.unwrap());
    assert!(s.delete_message(300).await.unwrap());
    cl.rejoin_behind_purge("MEM", &group, &down).await;
    let i = info(&js, "MEM").await;
    assert_eq!(
        (
            i.state.messages,
            i.state.first_sequence,
            i.state.last_sequence
        ),
        (298, 1, 300),
        "{i:?}"
    );
    all_there(&js, "MEM", "MEM", 299, &[100]).await;
    assert_eq!(
        publish_acked(&js, "mem.301", "MEM-301", "MEM301").await,
        301
    );
    cl.shutdown().await;
}
