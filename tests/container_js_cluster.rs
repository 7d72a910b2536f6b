//! docker/compose.js-cluster.yaml: three Petrel containers running replicated JetStream,
//! each on its own volume. Fault rounds on an R3 stream taking acknowledged publishes
//! (with `Nats-Msg-Id`s) through the nodes that stay up: the stream leader cut off the
//! network (`docker network disconnect`), SIGKILLed and started again, paused (SIGSTOP,
//! then SIGCONT), a follower SIGKILLed and started again, every node SIGKILLed at once and
//! started again, and a follower stopped while one bit is flipped in its Raft log and one
//! in its message store. After each fault heals, every acknowledged message is there
//! exactly once, in order, on whichever node leads — after the bit flips, on the damaged
//! node made leader.
//! `#[ignore]`d like tests/container.rs (they need Docker); CI runs one round.
//! `PETREL_JS_CONTAINER_ROUNDS` sets more (`tests/js_faults/run.sh`), and each fault
//! prints how long writes stopped.

use std::time::Duration;

use async_nats::jetstream::{self, stream};

use crate::docker_support::{docker_ok, docker_or_skip, ensure_image, three_nodes_up, wait_health};

const NODES: [&str; 3] = ["nats-1", "nats-2", "nats-3"];
/// Elections (2–4 s), partitions noticed after `ping_max` PINGs, containers on a busy
/// machine.
const WAIT: Duration = Duration::from_secs(60);

async fn connect(port: u16) -> jetstream::Context {
    let nc = async_nats::ConnectOptions::new()
        .retry_on_initial_connect()
        .connect(format!("nats://127.0.0.1:{port}"))
        .await
        .expect("connect");
    jetstream::new(nc)
}

/// The stream's leader (node index), asked through `js` until one is known.
async fn leader(js: &jetstream::Context, name: &str) -> usize {
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        if let Ok(mut s) = js.get_stream(name).await {
            if let Ok(i) = s.info().await {
                if let Some(l) = i.cluster.as_ref().and_then(|c| c.leader.clone()) {
                    return NODES.iter().position(|n| *n == l).expect("a node's name");
                }
            }
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "no leader for {name}"
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

/// Publishes until acknowledged (the id makes a retry a duplicate, never a second copy).
async fn publish_acked(js: &jetstream::Context, i: u64) {
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let mut headers = async_nats::HeaderMap::new();
        headers.insert("Nats-Msg-Id", format!("m{i}").as_str());
        if let Ok(ack) = js
            .publish_with_headers(format!("orders.{i}"), headers, i.to_string().into())
            .await
        {
            // A short wait: the failover figure is measured to within about a second.
            if let Ok(Ok(_)) = tokio::time::timeout(Duration::from_secs(1), ack).await {
                return;
            }
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "m{i} never acknowledged"
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

/// Every message 0..n is stored once, in order, as the leader reports it.
async fn check_all(js: &jetstream::Context, n: u64) {
    let deadline = tokio::time::Instant::now() + WAIT;
    let s = loop {
        if let Ok(mut s) = js.get_stream("ORDERS").await {
            if s.info().await.is_ok_and(|i| i.state.messages == n) {
                break s;
            }
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the stream never held {n}"
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    };
    for seq in 1..=n {
        let m = s.get_raw_message(seq).await.expect("stored");
        assert_eq!(
            &m.payload[..],
            (seq - 1).to_string().as_bytes(),
            "seq {seq}"
        );
    }
}

/// One fault, healed again; what the round did.
#[derive(Debug, Clone, Copy)]
enum Fault {
    PartitionLeader,
    KillLeader,
    PauseLeader,
    KillFollower,
    KillAll,
    FlipFollower,
}

/// Flips one bit in the middle of `path` (a copy on the host).
fn flip_bit(path: &std::path::Path) {
    let mut bytes = std::fs::read(path).unwrap();
    assert!(!bytes.is_empty(), "{} is empty", path.display());
    let at = bytes.len() / 2;
    bytes[at] ^= 0x10;
    std::fs::write(path, bytes).unwrap();
}

/// With `container` stopped: flips a bit in its stream group's Raft log and in its first
/// message block (`docker cp` out, flipped, and back in).
fn flip_bits_in(container: &str) {
    let tmp = tempfile::tempdir().unwrap();
    let root = "/data/jetstream/_cluster_";
    docker_ok(&[
        "cp",
        &format!("{container}:{root}"),
        tmp.path().to_str().unwrap(),
    ]);
    let local = tmp.path().join("_cluster_");
    let group = std::fs::read_dir(&local)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .find(|n| n.starts_with("S-R3F-"))
        .expect("the stream group");
    for file in ["raft/raft.log", "stream/ORDERS/msgs/1.blk"] {
        let path = local.join(&group).join(file);
        flip_bit(&path);
        // `docker cp` writes it owned by root: readable and writable by the server's user.
        std::fs::set_permissions(&path, std::os::unix::fs::PermissionsExt::from_mode(0o666))
            .unwrap();
        let dest = format!("{container}:{root}/{group}/{file}");
        docker_ok(&["cp", path.to_str().unwrap(), &dest]);
    }
}

/// Injects `fault` on node `victim` (`docker` on `container`), publishes messages
/// `from..from + 50` through `through`, heals, and returns how long the first publish after
/// the fault took to be acknowledged.
async fn round(
    project: &crate::docker_support::Project,
    fault: Fault,
    victim: usize,
    through: &jetstream::Context,
    from: u64,
) -> Duration {
    let network = format!("{}_default", project.name);
    let container = project.container(NODES[victim]);
    let all: Vec<String> = NODES.iter().map(|n| project.container(n)).collect();
    match fault {
        Fault::PartitionLeader => {
            docker_ok(&["network", "disconnect", &network, &container]);
        }
        Fault::KillLeader | Fault::KillFollower => {
            docker_ok(&["kill", &container]);
        }
        Fault::PauseLeader => {
            docker_ok(&["kill", "--signal", "STOP", &container]);
        }
        Fault::KillAll => {
            for c in &all {
                docker_ok(&["kill", c]);
            }
            for c in &all {
                docker_ok(&["start", c]);
            }
        }
        Fault::FlipFollower => {
            docker_ok(&["kill", &container]);
            flip_bits_in(&container);
            docker_ok(&["start", &container]);
        }
    }
    let cut = std::time::Instant::now();
    publish_acked(through, from).await;
    let failover = cut.elapsed();
    for i in from + 1..from + 50 {
        publish_acked(through, i).await;
    }
    match fault {
        Fault::PartitionLeader => {
            docker_ok(&[
                "network",
                "connect",
                "--alias",
                NODES[victim],
                &network,
                &container,
            ]);
        }
        Fault::KillLeader | Fault::KillFollower => {
            docker_ok(&["start", &container]);
            wait_health(&container, "healthy", WAIT);
        }
        Fault::PauseLeader => {
            docker_ok(&["kill", "--signal", "CONT", &container]);
        }
        Fault::KillAll => {
            for c in &all {
                wait_health(c, "healthy", WAIT);
            }
        }
        Fault::FlipFollower => {
            wait_health(&container, "healthy", WAIT);
            let log = crate::docker_support::logs(&container);
            assert!(
                log.contains("Raft log tail cut at recovery"),
                "the flipped bit went unnoticed:\n{log}"
            );
            // The damaged replica, repaired from the others, leads and serves it all.
            crate::js_cluster_snapshots::lead(&through.client(), through, "ORDERS", NODES[victim])
                .await;
        }
    }
    failover
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs a Docker engine: cargo test -p petrel-tests -- --ignored (CI runs it)"]
async fn an_r3_stream_loses_no_acked_message_to_partitions_kills_pauses_or_bit_flips() {
    if !docker_or_skip(
        "an_r3_stream_loses_no_acked_message_to_partitions_kills_pauses_or_bit_flips",
    ) {
        return;
    }
    ensure_image();
    let rounds: u64 = std::env::var("PETREL_JS_CONTAINER_ROUNDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1);
    let (project, ports) = three_nodes_up("compose.js-cluster.yaml", WAIT);
    let js: Vec<jetstream::Context> = {
        let mut v = Vec::new();
        for p in ports {
            v.push(connect(p).await);
        }
        v
    };
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let created = js[0]
            .create_stream(stream::Config {
                name: "ORDERS".into(),
                subjects: vec!["orders.>".into()],
                num_replicas: 3,
                ..Default::default()
            })
            .await;
        match created {
            Ok(_) => break,
            Err(e) => assert!(tokio::time::Instant::now() < deadline, "create: {e}"),
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    for i in 0..50 {
        publish_acked(&js[0], i).await;
    }
    let mut next = 50;
    let faults = [
        Fault::PartitionLeader,
        Fault::KillLeader,
        Fault::PauseLeader,
        Fault::KillFollower,
        Fault::KillAll,
        Fault::FlipFollower,
    ];
    for r in 0..rounds {
        for fault in faults {
            let leader = leader(&js[(next as usize / 50) % 3], "ORDERS").await;
            let victim = match fault {
                Fault::KillFollower | Fault::FlipFollower => (leader + 1) % 3,
                _ => leader,
            };
            let through = (victim + 2) % 3;
            // A fresh connection per fault: in one multi-round run a long-lived client of
            // a node that had been SIGKILLed and restarted saw no PubAcks for a minute
            // (under investigation; the server-side checks below use fresh clients too).
            let client = connect(ports[through]).await;
            let failover = round(&project, fault, victim, &client, next).await;
            next += 50;
            check_all(&client, next).await;
            eprintln!(
                "js-container-faults round={r} fault={fault:?} victim={} acked={next} lost=0 duplicates=0 first_ack_after_fault_ms={}",
                NODES[victim],
                failover.as_millis()
            );
        }
    }
    // Every node, the ones faulted included, serves the whole stream to its own clients.
    for p in ports {
        check_all(&connect(p).await, next).await;
    }
}
