//! docker/compose.js-cluster.yaml: three Petrel containers running replicated JetStream,
//! each on its own volume. A short fault round: an R3 stream takes acknowledged
//! publishes (with `Nats-Msg-Id`s) through a partition of its leader (`docker network
//! disconnect`) and a SIGKILL of the next leader with a restart; after healing every
//! acknowledged message is there exactly once, in order, on whichever node leads.
//! `#[ignore]`d like tests/container.rs (they need Docker); CI runs them. Long runs of
//! more fault kinds belong in a script, not here.

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
            if let Ok(Ok(_)) = tokio::time::timeout(Duration::from_secs(3), ack).await {
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs a Docker engine: cargo test -p petrel-tests -- --ignored (CI runs it)"]
async fn an_r3_stream_loses_no_acked_message_to_a_partition_or_a_kill() {
    if !docker_or_skip("an_r3_stream_loses_no_acked_message_to_a_partition_or_a_kill") {
        return;
    }
    ensure_image();
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
    for i in 0..100 {
        publish_acked(&js[0], i).await;
    }

    // Partition the stream's leader: the other two elect a new one and take publishes
    // through their own clients.
    let first = leader(&js[0], "ORDERS").await;
    let network = format!("{}_default", project.name);
    let cut = project.container(NODES[first]);
    docker_ok(&["network", "disconnect", &network, &cut]);
    let other = (first + 1) % 3;
    for i in 100..200 {
        publish_acked(&js[other], i).await;
    }
    docker_ok(&[
        "network",
        "connect",
        "--alias",
        NODES[first],
        &network,
        &cut,
    ]);
    check_all(&js[other], 200).await;

    // SIGKILL the leader now (no clean shutdown) and start it again.
    let second = leader(&js[other], "ORDERS").await;
    let killed = project.container(NODES[second]);
    docker_ok(&["kill", &killed]);
    let survivor = (second + 1) % 3;
    for i in 200..300 {
        publish_acked(&js[survivor], i).await;
    }
    docker_ok(&["start", &killed]);
    wait_health(&killed, "healthy", WAIT);
    check_all(&js[survivor], 300).await;
    // The restarted node is back in the cluster: its own clients see the whole stream.
    let back = connect(ports[second]).await;
    check_all(&back, 300).await;
}
