//! docker/compose.cluster.yaml: three Petrel containers (nats-1..3, seed 004's cluster
//! block) form a mesh; a node cut off with `docker network disconnect` leaves the other two
//! working and rejoins when connected again; a killed node restarts and its clients
//! reconnect; after each fault interest converges again and no message arrives twice.
//! `#[ignore]`d like tests/container.rs (they need Docker); CI runs them.

use std::time::Duration;

use crate::cluster::{drain_now, settle, until_received_within};
use crate::docker_support::{docker_ok, docker_or_skip, ensure_image, three_nodes_up, wait_health};

/// How long routes may take to (re)form: containers start and heal on a machine that may
/// be running the rest of the tests too (a partition is noticed after ping_max PINGs).
const CONVERGE: Duration = Duration::from_secs(40);

async fn connect(port: u16) -> async_nats::Client {
    async_nats::ConnectOptions::new()
        .retry_on_initial_connect()
        .connect(format!("nats://127.0.0.1:{port}"))
        .await
        .expect("connect")
}

/// Every node reaches every other (routes up, interest everywhere).
async fn full_mesh(clients: &[async_nats::Client], tag: &str) {
    for (i, from) in clients.iter().enumerate() {
        for (j, to) in clients.iter().enumerate() {
            if i != j {
                let subject = format!("mesh.{tag}.{i}.{j}");
                let mut sub = to.subscribe(subject.clone()).await.unwrap();
                to.flush().await.unwrap();
                until_received_within(from, &mut sub, &subject, CONVERGE).await;
            }
        }
    }
}

/// `n` numbered messages from `from` reach `sub` (on `to`) exactly once each.
async fn exactly_once(from: &async_nats::Client, to: &async_nats::Client, tag: &str, n: usize) {
    let subject = format!("orders.{tag}");
    let marker = format!("marker.{tag}");
    let mut sub = to.subscribe(subject.clone()).await.unwrap();
    let mut done = to.subscribe(marker.clone()).await.unwrap();
    to.flush().await.unwrap();
    until_received_within(from, &mut done, &marker, CONVERGE).await;
    for i in 0..n {
        from.publish(subject.clone(), i.to_string().into())
            .await
            .unwrap();
    }
    settle(from, &mut done, &marker).await;
    let got = drain_now(&mut sub);
    let want: Vec<String> = (0..n).map(|i| i.to_string()).collect();
    assert_eq!(got, want, "{tag}: every message once, in order");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs a Docker engine: cargo test -p petrel-tests -- --ignored (CI runs it)"]
async fn a_container_cluster_heals_after_a_partition_and_a_restart() {
    if !docker_or_skip("a_container_cluster_heals_after_a_partition_and_a_restart") {
        return;
    }
    ensure_image();
    let (project, ports) = three_nodes_up("compose.cluster.yaml", Duration::from_secs(60));
    let mut clients = Vec::new();
    for p in ports {
        clients.push(connect(p).await);
    }
    full_mesh(&clients, "start").await;
    exactly_once(&clients[0], &clients[2], "start", 500).await;

    // Cut nats-3 off: nats-1 and nats-2 keep serving each other.
    let network = format!("{}_default", project.name);
    let third = project.container("nats-3");
    docker_ok(&["network", "disconnect", &network, &third]);
    exactly_once(&clients[0], &clients[1], "partition", 200).await;
    // Connect it again: its routes come back and interest converges.
    docker_ok(&["network", "connect", "--alias", "nats-3", &network, &third]);
    let healed = [
        clients[0].clone(),
        clients[1].clone(),
        connect(ports[2]).await,
    ];
    full_mesh(&healed, "healed").await;
    exactly_once(&healed[0], &healed[2], "healed", 500).await;

    // Kill nats-2 and start it again: its clients reconnect and resubscribe.
    let second = project.container("nats-2");
    let mut on_two = clients[1].subscribe("after.restart").await.unwrap();
    clients[1].flush().await.unwrap();
    docker_ok(&["kill", &second]);
    docker_ok(&["start", &second]);
    wait_health(&second, "healthy", Duration::from_secs(60));
    until_received_within(&healed[2], &mut on_two, "after.restart", CONVERGE).await;
    full_mesh(&healed, "restarted").await;
    exactly_once(&healed[2], &clients[1], "restarted", 500).await;
}
