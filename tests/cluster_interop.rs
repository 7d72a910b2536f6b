//! Mixed meshes: Petrel nodes and real nats-server nodes (2.15.1 from PyPI, Debian's
//! 2.9.10) in one cluster, formed by gossip, checked through async-nats clients on every
//! node: messages and wildcards both ways, headers, a queue group exactly once across
//! the three servers, request/reply, no-responders and unsubscribe propagation.
//!
//! `.ci/run` installs both binaries and sets `PETREL_NATS_SERVER_215`,
//! `PETREL_NATS_SERVER_29` and `PETREL_REQUIRE_NATS_SERVER`; elsewhere a missing binary
//! skips the test with a message.

use std::path::PathBuf;
use std::time::Duration;

use futures::StreamExt;
use petrel_testkit::{spawn_nats_server, ClusterOptions, NatsServer, RouteUrl, TestServer};

use crate::cluster::{requests, until_received, WAIT};

const CLUSTER: &str = "mixed";

pub(crate) fn binary(var: &str) -> Option<PathBuf> {
    let found = std::env::var_os(var)
        .map(PathBuf::from)
        .filter(|p| p.is_file());
    if found.is_none() {
        assert!(
            std::env::var_os("PETREL_REQUIRE_NATS_SERVER").is_none(),
            "PETREL_REQUIRE_NATS_SERVER is set but {var} names no nats-server binary"
        );
        eprintln!("skipped: set {var} to a nats-server binary to run the mixed-cluster test");
    }
    found
}

async fn petrel(name: &str, routes: Vec<String>) -> TestServer {
    let routes = routes
        .iter()
        .map(|r| RouteUrl::parse(r).expect("route url"))
        .collect();
    petrel_testkit::spawn_with(|b| {
        b.server_name(name).cluster(ClusterOptions {
            name: Some(CLUSTER.into()),
            host: std::net::Ipv4Addr::LOCALHOST.into(),
            port: 0,
            routes,
            ..ClusterOptions::default()
        })
    })
    .await
}

fn route_of(p: &TestServer) -> String {
    p.handle().cluster_addr().expect("clustered").to_string()
}

fn nats(bin: &std::path::Path, name: &str, routes: &[String]) -> NatsServer {
    spawn_nats_server(bin, name, Some(CLUSTER), routes, "").expect("start nats-server")
}

/// Waits until every Petrel node has `n` routes.
async fn petrel_routes(nodes: &[&TestServer], n: usize) {
    let handles: Vec<_> = nodes.iter().map(|t| t.handle()).collect();
    petrel_testkit::wait_for_routes(&handles, n).await;
}

async fn connect(url: &str) -> async_nats::Client {
    async_nats::connect(url).await.expect("connect")
}

/// The checks every mixed mesh must pass; `urls` are one client URL per node.
async fn mesh_checks(urls: [String; 3]) {
    let c = [
        connect(&urls[0]).await,
        connect(&urls[1]).await,
        connect(&urls[2]).await,
    ];
    // Every node reaches every other.
    for i in 0..3 {
        for j in 0..3 {
            if i == j {
                continue;
            }
            let subject = format!("mesh.{i}.{j}");
            let mut sub = c[j].subscribe(subject.clone()).await.unwrap();
            c[j].flush().await.unwrap();
            until_received(&c[i], &mut sub, &subject).await;
        }
    }
    // Wildcards and headers.
    let mut wild = c[1].subscribe("medisync.etl.*.completed").await.unwrap();
    c[1].flush().await.unwrap();
    until_received(&c[2], &mut wild, "medisync.etl.x.completed").await;
    let mut headers = async_nats::HeaderMap::new();
    headers.insert("Nats-Msg-Id", "m-1");
    c[2].publish_with_headers("medisync.etl.y.completed", headers, "h".into())
        .await
        .unwrap();
    c[2].flush().await.unwrap();
    let m = tokio::time::timeout(WAIT, wild.next())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        m.headers.unwrap().get("Nats-Msg-Id").unwrap().as_str(),
        "m-1"
    );
    queue_once(&c).await;
    requests(&c).await;
}

/// One worker per node, 300 messages from node 0: each reaches exactly one worker.
async fn queue_once(c: &[async_nats::Client; 3]) {
    let mut workers = Vec::new();
    let mut markers = Vec::new();
    for (i, client) in c.iter().enumerate() {
        workers.push(
            client
                .queue_subscribe("jobs", "workers".into())
                .await
                .unwrap(),
        );
        let subject = format!("jobs.marker.{i}");
        let mut m = client.subscribe(subject.clone()).await.unwrap();
        client.flush().await.unwrap();
        until_received(&c[0], &mut m, &subject).await;
        markers.push((subject, m));
    }
    crate::cluster::queue_exactly_once(&c[0], &mut workers, &mut markers, 300).await;
}

/// nats-server A (seed), nats-server B and a Petrel node both dialling A: gossip makes the
/// full mesh.
async fn one_petrel_two_nats(var: &str) {
    let Some(bin) = binary(var) else { return };
    let a = nats(&bin, "ns-a", &[]);
    let seed = a.route_addr().expect("cluster port");
    let b = nats(&bin, "ns-b", std::slice::from_ref(&seed));
    let p = petrel("petrel-1", vec![seed]).await;
    petrel_routes(&[&p], 2).await;
    mesh_checks([p.client_url(), a.client_url(), b.client_url()]).await;
    mesh_checks([a.client_url(), b.client_url(), p.client_url()]).await;
}

/// Petrel node 1 (seed, with JetStream), a nats-server and Petrel node 2 both dialling it.
async fn two_petrel_one_nats(var: &str) {
    let Some(bin) = binary(var) else { return };
    let p1 = petrel_js("petrel-1").await;
    let seed = route_of(&p1);
    let n = nats(&bin, "ns-a", std::slice::from_ref(&seed));
    let p2 = petrel("petrel-2", vec![seed]).await;
    petrel_routes(&[&p1, &p2], 2).await;
    mesh_checks([n.client_url(), p1.client_url(), p2.client_url()]).await;
    mesh_checks([p2.client_url(), n.client_url(), p1.client_url()]).await;
    // Petrel's JetStream pushes to a client of the nats-server node: deliveries cross
    // the route with the stored subject after the reply's `@`, which nats-server unpacks,
    // and the client's acks come back.
    push_to_nats_server_client(
        connect(&p2.client_url()).await,
        connect(&n.client_url()).await,
    )
    .await;
}

/// A push consumer on Petrel's JetStream delivering to `remote` (a nats-server node's
/// client): the stored subjects arrive, in order, and every ack counts.
async fn push_to_nats_server_client(api: async_nats::Client, remote: async_nats::Client) {
    use async_nats::jetstream::{self, consumer::push};
    let js = jetstream::new(api.clone());
    let mut deliveries = remote.subscribe("push.deliver").await.unwrap();
    remote.flush().await.unwrap();
    let stream = crate::cluster::create_stream_across(&js, "PUSHED", "pushed.>").await;
    let consumer = stream
        .create_consumer(push::Config {
            durable_name: Some("pusher".into()),
            deliver_subject: "push.deliver".into(),
            ack_policy: async_nats::jetstream::consumer::AckPolicy::Explicit,
            ..Default::default()
        })
        .await
        .unwrap();
    for i in 0..20 {
        js.publish(format!("pushed.{i}"), "x".into())
            .await
            .unwrap()
            .await
            .unwrap();
    }
    let mut subjects = Vec::new();
    while subjects.len() < 20 {
        let m = tokio::time::timeout(WAIT, deliveries.next())
            .await
            .expect("delivery")
            .unwrap();
        subjects.push(m.subject.to_string());
        let reply = m.reply.clone().expect("an ack subject");
        assert!(reply.starts_with("$JS.ACK.PUSHED.pusher."), "{reply}");
        remote.publish(reply, "+ACK".into()).await.unwrap();
    }
    remote.flush().await.unwrap();
    let want: Vec<String> = (0..20).map(|i| format!("pushed.{i}")).collect();
    assert_eq!(subjects, want);
    let mut consumer = consumer;
    let deadline = tokio::time::Instant::now() + WAIT;
    while consumer.info().await.unwrap().ack_floor.stream_sequence < 20 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "acks did not all arrive"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// A Petrel node with JetStream in the mixed cluster.
async fn petrel_js(name: &str) -> TestServer {
    petrel_testkit::spawn_with_store(|b, dir| {
        b.server_name(name).jetstream(dir).cluster(ClusterOptions {
            name: Some(CLUSTER.into()),
            host: std::net::Ipv4Addr::LOCALHOST.into(),
            port: 0,
            routes: Vec::new(),
            ..ClusterOptions::default()
        })
    })
    .await
}

#[tokio::test]
async fn petrel_joins_two_nats_servers_2_15() {
    one_petrel_two_nats("PETREL_NATS_SERVER_215").await;
}

#[tokio::test]
async fn petrel_joins_two_nats_servers_2_9() {
    one_petrel_two_nats("PETREL_NATS_SERVER_29").await;
}

#[tokio::test]
async fn a_nats_server_joins_two_petrel_nodes_2_15() {
    two_petrel_one_nats("PETREL_NATS_SERVER_215").await;
}

#[tokio::test]
async fn a_nats_server_joins_two_petrel_nodes_2_9() {
    two_petrel_one_nats("PETREL_NATS_SERVER_29").await;
}
