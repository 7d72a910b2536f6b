//! In-process clusters: `n` servers on loopback joined by routes. The first node is the
//! seed every other one dials; gossip completes the mesh.

use std::time::Duration;

use petrel_server::{ClusterOptions, RouteUrl, ServerBuilder, ServerHandle};

use crate::{spawn_with_store, TestServer};

/// How long [`spawn_cluster`] waits for the full mesh.
const MESH_TIMEOUT: Duration = Duration::from_secs(15);

/// Starts `n` servers in one cluster (`petrel-test`) and waits until every node has a
/// route to every other.
pub async fn spawn_cluster(n: usize) -> Vec<TestServer> {
    spawn_cluster_with(n, |b, _, _| b).await
}

/// Like [`spawn_cluster`]; `configure` adjusts each node's builder, given the node's
/// index and its temporary store directory.
pub async fn spawn_cluster_with(
    n: usize,
    configure: impl Fn(ServerBuilder, usize, &std::path::Path) -> ServerBuilder,
) -> Vec<TestServer> {
    let mut nodes: Vec<TestServer> = Vec::with_capacity(n);
    let mut seed: Option<RouteUrl> = None;
    for i in 0..n {
        let cluster = ClusterOptions {
            name: Some("petrel-test".into()),
            host: std::net::Ipv4Addr::LOCALHOST.into(),
            port: 0,
            routes: seed.iter().cloned().collect(),
            ..ClusterOptions::default()
        };
        let node = spawn_with_store(|b, dir| {
            configure(b.server_name(format!("node-{i}")).cluster(cluster), i, dir)
        })
        .await;
        if seed.is_none() {
            let addr = node
                .handle()
                .cluster_addr()
                .expect("the first node has a route listener");
            seed = Some(RouteUrl::parse(&addr.to_string()).expect("a socket address parses"));
        }
        nodes.push(node);
    }
    let handles: Vec<&ServerHandle> = nodes.iter().map(TestServer::handle).collect();
    wait_for_routes(&handles, n - 1).await;
    nodes
}

/// Waits until each of `servers` has `routes` registered routes (panics after 15 s).
pub async fn wait_for_routes(servers: &[&ServerHandle], routes: usize) {
    let deadline = tokio::time::Instant::now() + MESH_TIMEOUT;
    loop {
        if servers.iter().all(|s| s.route_peers().len() == routes) {
            return;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "cluster did not form: routes per node {:?}",
            servers
                .iter()
                .map(|s| s.route_peers().len())
                .collect::<Vec<_>>()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}
