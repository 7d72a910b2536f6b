//! Moving replicated streams between nodes, on four in-process Petrel nodes configured
//! from a `nats.conf` text (accounts, a system account, routes), driven by async-nats:
//! `STREAM.PEER.REMOVE` replaces a replica (the leader's too) with a node that catches up
//! from the log; `num_replicas` changes by `STREAM.UPDATE` (R1 → R3 → R1) keep every
//! acknowledged message; `placement` picks servers by `server_tags` and cluster name;
//! `META.LEADER.STEPDOWN` from a system-account user moves the meta leadership — with
//! nats-server 2.15.1's answers to bad requests throughout. An account's byte limit on
//! an R3 stream is decided by its leader alone, so every replica stores the same messages.

use std::time::Duration;

use crate::support::{all_there, free_ports};

use async_nats::jetstream;
use petrel_testkit::TestServer;
use serde_json::Value;

const WAIT: Duration = Duration::from_secs(30);

/// Node `i` of a cluster whose every node lists all route ports (its own included).
async fn node(i: usize, routes: &[u16], dir: &std::path::Path) -> TestServer {
    node_with(i, routes, dir, "enabled").await
}

/// [`node`] with account `APP`'s `jetstream` setting.
async fn node_with(i: usize, routes: &[u16], dir: &std::path::Path, app_js: &str) -> TestServer {
    let urls: Vec<String> = routes
        .iter()
        .map(|p| format!("nats://127.0.0.1:{p}"))
        .collect();
    let text = format!(
        r#"
server_name: node-{i}
server_tags: ["AZ:{i}", "cloud:x"]
jetstream {{ store_dir: "{dir}" }}
accounts {{
  SYS {{ users: [{{ user: sys, password: sys }}] }}
  APP {{ jetstream: {app_js}, users: [{{ user: app, password: app }}] }}
}}
system_account: SYS
cluster {{ name: peers, listen: 127.0.0.1:{port}, routes: [{routes}] }}
"#,
        dir = dir.display(),
        port = routes[i],
        routes = urls.join(", "),
        app_js = app_js,
    );
    let loaded = petrel_config::load_str(&text, "peers.conf").expect("the config loads");
    petrel_testkit::spawn_with_store(|b, _| {
        b.options(loaded.options)
            .host(std::net::Ipv4Addr::LOCALHOST.into())
            .port(0)
            .http_port(0)
    })
    .await
}

async fn login(s: &TestServer, user: &str) -> async_nats::Client {
    async_nats::ConnectOptions::with_user_and_password(user.into(), user.into())
        .connect(s.client_url())
        .await
        .expect("log in")
}

/// A JSON API request, retried while the cluster answers 10008 (no leader yet) or not
/// at all.
async fn api(nc: &async_nats::Client, subject: &str, body: &str) -> Value {
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let sent = nc.request(format!("$JS.API.{subject}"), body.to_string().into());
        if let Ok(Ok(m)) = tokio::time::timeout(Duration::from_secs(5), sent).await {
            let v: Value = serde_json::from_slice(&m.payload).expect("a JSON answer");
            if v["error"]["err_code"] != 10008 {
                return v;
            }
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "{subject}: no answer"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// The stream's cluster info once it has a leader and `peers` replicas in all, every
/// one current.
async fn settled(nc: &async_nats::Client, name: &str, peers: usize) -> Value {
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let v = api(nc, &format!("STREAM.INFO.{name}"), "").await;
        let c = &v["cluster"];
        let replicas = c["replicas"].as_array().cloned().unwrap_or_default();
        let current = replicas.iter().all(|r| r["current"] == true);
        if c["leader"].is_string() && replicas.len() + 1 == peers && current {
            return c.clone();
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "{name} never settled: {v}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Every server name in a stream's cluster info.
fn peers_of(cluster: &Value) -> Vec<String> {
    let mut out = vec![cluster["leader"].as_str().unwrap().to_string()];
    for r in cluster["replicas"].as_array().into_iter().flatten() {
        out.push(r["name"].as_str().unwrap().to_string());
    }
    out.sort();
    out
}

/// Publishes `id` (as body and `Nats-Msg-Id`) until acknowledged; the sequence.
async fn publish_acked(js: &jetstream::Context, subject: &str, id: &str) -> u64 {
    crate::js_cluster::publish_acked(js, subject, id, id).await
}

/// The meta leader as a node's `/jsz` reports it.
async fn meta_leader(s: &TestServer) -> Option<String> {
    let addr = s.monitor_addr()?;
    let jsz = petrel_testkit::http_get(addr, "/jsz").await.ok()?.json();
    jsz["meta_cluster"]["leader"].as_str().map(str::to_string)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replicas_move_scale_and_the_meta_leader_steps_down() {
    let ports = free_ports(4);
    let dirs: Vec<tempfile::TempDir> = (0..4).map(|_| tempfile::tempdir().unwrap()).collect();
    let mut nodes = Vec::new();
    for (i, d) in dirs.iter().enumerate() {
        nodes.push(Some(node(i, &ports, d.path()).await));
    }
    fn up(nodes: &[Option<TestServer>], i: usize) -> &TestServer {
        nodes[i].as_ref().expect("the node is up")
    }
    let nc = login(up(&nodes, 0), "app").await;
    let js = jetstream::new(nc.clone());

    // STREAM.PEER.REMOVE of an R3 stream's leader: a fourth node takes its place and
    // catches up; nothing acknowledged is lost.
    let created = api(
        &nc,
        "STREAM.CREATE.MOVE",
        r#"{"name":"MOVE","subjects":["move"],"num_replicas":3}"#,
    )
    .await;
    assert!(created["error"].is_null(), "{created}");
    let before = settled(&nc, "MOVE", 3).await;
    for i in 1..=10u64 {
        assert_eq!(publish_acked(&js, "move", &format!("m{i}")).await, i);
    }
    let old = before["leader"].as_str().unwrap().to_string();
    let asked = api(
        &nc,
        "STREAM.PEER.REMOVE.MOVE",
        &format!(r#"{{"peer":"{old}"}}"#),
    )
    .await;
    assert_eq!(
        asked["type"],
        "io.nats.jetstream.api.v1.stream_remove_peer_response"
    );
    assert_eq!(asked["success"], true, "{asked}");
    let deadline = tokio::time::Instant::now() + WAIT;
    let after = loop {
        let c = settled(&nc, "MOVE", 3).await;
        if !peers_of(&c).contains(&old) {
            break c;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "{old} never left: {c}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    assert_eq!(peers_of(&after).len(), 3);
    for i in 11..=15u64 {
        assert_eq!(publish_acked(&js, "move", &format!("m{i}")).await, i);
    }
    all_there(&js, "MOVE", "m", 15, &[]).await;
    // The peer named is no member now (10040).
    let again = api(
        &nc,
        "STREAM.PEER.REMOVE.MOVE",
        &format!(r#"{{"peer":"{old}"}}"#),
    )
    .await;
    assert_eq!(again["error"]["err_code"], 10040, "{again}");

    // Placement by `server_tags` (matched without regard to case) and cluster name, with
    // nats-server 2.15.1's refusals.
    let tagged = api(
        &nc,
        "STREAM.CREATE.TAGGED",
        r#"{"name":"TAGGED","subjects":["tagged"],"placement":{"tags":["az:3","CLOUD:X"]}}"#,
    )
    .await;
    assert!(tagged["error"].is_null(), "{tagged}");
    assert_eq!(settled(&nc, "TAGGED", 1).await["leader"], "node-3");
    let refused = api(
        &nc,
        "STREAM.CREATE.NOWHERE",
        r#"{"name":"NOWHERE","subjects":["nowhere"],"num_replicas":3,"placement":{"tags":["az:2"]}}"#,
    )
    .await;
    assert_eq!(refused["error"]["err_code"], 10005);
    assert_eq!(
        refused["error"]["description"],
        "no suitable peers for placement, tags not matched ['az:2']"
    );
    let refused = api(
        &nc,
        "STREAM.CREATE.NOWHERE",
        r#"{"name":"NOWHERE","subjects":["nowhere"],"placement":{"cluster":"zz"}}"#,
    )
    .await;
    assert_eq!(
        refused["error"]["description"],
        "no suitable peers for placement"
    );

    // META.LEADER.STEPDOWN, from the system account only.
    let sys = login(up(&nodes, 1), "sys").await;
    let ask = |body: &'static str| {
        let sys = sys.clone();
        async move {
            let m = sys
                .request("$JS.API.META.LEADER.STEPDOWN", body.into())
                .await
                .expect("the meta leader answers");
            serde_json::from_slice::<Value>(&m.payload).unwrap()
        }
    };
    let bad = ask("{bad").await;
    assert_eq!(bad["error"]["err_code"], 10025, "{bad}");
    let unknown = ask(r#"{"placement":{"preferred":"node-9"}}"#).await;
    assert_eq!(unknown["error"]["err_code"], 10005);
    assert_eq!(
        unknown["error"]["description"],
        r#"preferred server "node-9" not known"#
    );
    let untagged = ask(r#"{"placement":{"tags":["az:9"]}}"#).await;
    assert_eq!(
        untagged["error"]["description"],
        "no replacement peer connected"
    );
    let elsewhere = ask(r#"{"placement":{"cluster":"zz"}}"#).await;
    assert_eq!(
        elsewhere["error"]["description"],
        "no replacement peer connected"
    );
    let first = meta_leader(up(&nodes, 1)).await.expect("a meta leader");
    let done = ask("").await;
    assert_eq!(
        done["type"],
        "io.nats.jetstream.api.v1.meta_leader_stepdown_response"
    );
    assert_eq!(done["success"], true, "{done}");
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let now = meta_leader(up(&nodes, 1)).await;
        if now.is_some() && now.as_deref() != Some(first.as_str()) {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "{first} still leads"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }

    // R1 → R3: the two new replicas catch up, and hold everything once the first one is
    // gone; R3 → R1 keeps one of them.
    let created = api(
        &nc,
        "STREAM.CREATE.SCALE",
        r#"{"name":"SCALE","subjects":["scale"],"num_replicas":1}"#,
    )
    .await;
    assert!(created["error"].is_null(), "{created}");
    let one = settled(&nc, "SCALE", 1).await;
    for i in 1..=20u64 {
        assert_eq!(publish_acked(&js, "scale", &format!("s{i}")).await, i);
    }
    let grown = api(
        &nc,
        "STREAM.UPDATE.SCALE",
        r#"{"name":"SCALE","subjects":["scale"],"num_replicas":3}"#,
    )
    .await;
    assert_eq!(grown["config"]["num_replicas"], 3, "{grown}");
    let three = settled(&nc, "SCALE", 3).await;
    let original = one["leader"].as_str().unwrap().to_string();
    assert!(peers_of(&three).contains(&original));
    let gone: usize = original.trim_start_matches("node-").parse().unwrap();
    let other = (0..4).find(|i| *i != gone && peers_of(&three).contains(&format!("node-{i}")));
    let other = other.expect("another replica");
    nodes[gone].take().expect("up").shutdown().await;
    let nc = login(up(&nodes, other), "app").await;
    let js = jetstream::new(nc.clone());
    for i in 21..=25u64 {
        assert_eq!(publish_acked(&js, "scale", &format!("s{i}")).await, i);
    }
    all_there(&js, "SCALE", "s", 25, &[]).await;
    let shrunk = api(
        &nc,
        "STREAM.UPDATE.SCALE",
        r#"{"name":"SCALE","subjects":["scale"],"num_replicas":1}"#,
    )
    .await;
    assert_eq!(shrunk["config"]["num_replicas"], 1, "{shrunk}");
    settled(&nc, "SCALE", 1).await;
    for i in 26..=30u64 {
        assert_eq!(publish_acked(&js, "scale", &format!("s{i}")).await, i);
    }
    all_there(&js, "SCALE", "s", 30, &[]).await;
    for n in nodes.into_iter().flatten() {
        n.shutdown().await;
    }
}

/// The messages `node`'s own replica of `stream` holds, as its `/jsz` reports it.
async fn replica_msgs(node: &TestServer, stream: &str) -> Option<u64> {
    let addr = node.monitor_addr()?;
    let jsz = petrel_testkit::http_get(addr, "/jsz?streams=true")
        .await
        .ok()?
        .json();
    let details = jsz["account_details"].as_array()?;
    details
        .iter()
        .filter_map(|a| a["stream_detail"].as_array())
        .flatten()
        .find(|s| s["name"] == stream)
        .and_then(|s| s["state"]["messages"].as_u64())
}

/// An account's byte limit on an R3 stream is decided once, by the stream's leader: the
/// node whose other streams leave the account less room stores the same messages as the
/// others (each replica used to decide from its own usage: the one hosting `FILL`
/// refused messages the leader had acknowledged, or the reverse), and every PubAck tells
/// what the replicas hold.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_account_limit_on_an_r3_stream_is_decided_once_for_every_replica() {
    let dirs: Vec<tempfile::TempDir> = (0..3).map(|_| tempfile::tempdir().unwrap()).collect();
    let ports = free_ports(3);
    let mut nodes = Vec::new();
    for (i, d) in dirs.iter().enumerate() {
        nodes.push(node_with(i, &ports, d.path(), "{ max_file: 100K }").await);
    }
    let nc = login(&nodes[0], "app").await;
    let js = jetstream::new(nc.clone());
    let fill =
        r#"{"name":"FILL","subjects":["fill"],"num_replicas":1,"placement":{"tags":["AZ:2"]}}"#;
    let v = api(&nc, "STREAM.CREATE.FILL", fill).await;
    assert!(v["error"].is_null(), "{v}");
    settled(&nc, "FILL", 1).await;
    let body = bytes::Bytes::from(vec![b'x'; 1000]);
    for _ in 0..70 {
        js.publish("fill", body.clone())
            .await
            .unwrap()
            .await
            .expect("FILL has room");
    }
    let rep = r#"{"name":"REP","subjects":["rep"],"num_replicas":3}"#;
    let v = api(&nc, "STREAM.CREATE.REP", rep).await;
    assert!(v["error"].is_null(), "{v}");
    settled(&nc, "REP", 3).await;
    let (mut acked, mut refused) = (0, 0);
    for _ in 0..60 {
        match js.publish("rep", body.clone()).await.unwrap().await {
            Ok(_) => acked += 1,
            Err(e) => {
                assert!(e.to_string().contains("10027"), "{e}");
                refused += 1;
            }
        }
    }
    assert_eq!(acked + refused, 60);
    // Every replica ends up with what was acknowledged (a follower may apply a moment
    // after the quorum acknowledged; one that refused on its own would stay short).
    for n in &nodes {
        let deadline = tokio::time::Instant::now() + WAIT;
        loop {
            let held = replica_msgs(n, "REP").await;
            if held == Some(acked) {
                break;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "a replica differs: {held:?} of {acked}"
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
}
