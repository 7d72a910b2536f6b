//! Clustered JetStream across three in-process Petrel nodes (each with its own store),
//! driven by async-nats: an R3 stream is placed on all three, its PubAcks come after a
//! quorum stored the message, stream info names the leader and the replicas, and every
//! acknowledged message survives the loss of the leader, with publishes going on through
//! the other nodes.

use std::time::Duration;

use crate::support::free_ports;

use async_nats::jetstream::{self, consumer, stream};
use futures::StreamExt;
use petrel_testkit::TestServer;

/// Long enough for a meta bootstrap plus an election (2–4 s timeouts).
const WAIT: Duration = Duration::from_secs(30);

async fn client(s: &TestServer) -> async_nats::Client {
    async_nats::connect(s.client_url()).await.unwrap()
}

async fn cluster3() -> Vec<TestServer> {
    petrel_testkit::spawn_cluster_with(3, |b, _, dir| b.jetstream(dir).http_port(0)).await
}

/// Creates `cfg` through `js`, retrying while the meta group has no leader yet.
pub(crate) async fn create(js: &jetstream::Context, cfg: stream::Config) -> stream::Stream {
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        match js.create_stream(cfg.clone()).await {
            Ok(s) => return s,
            Err(e) => assert!(tokio::time::Instant::now() < deadline, "create: {e}"),
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Stream info, retrying while the stream's group elects a leader.
pub(crate) async fn info(js: &jetstream::Context, name: &str) -> stream::Info {
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        if let Ok(mut s) = js.get_stream(name).await {
            if let Ok(i) = s.info().await {
                if i.cluster.as_ref().is_some_and(|c| c.leader.is_some()) {
                    return i.clone();
                }
            }
        }
        assert!(tokio::time::Instant::now() < deadline, "no info for {name}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Waits until stream `name` holds `messages` (removals and sourcing happen after the
/// acks that cause them); its info.
pub(crate) async fn holds(js: &jetstream::Context, name: &str, messages: u64) -> stream::Info {
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let i = info(js, name).await;
        if i.state.messages == messages {
            return i;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "{name} holds {} messages, not {messages}: mirror {:?}, sources {:?}",
            i.state.messages,
            i.mirror,
            i.sources
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Publishes `subject` with a `Nats-Msg-Id` until a PubAck comes back (a publish lost in
/// a failover is retried; the id keeps it from being stored twice). Returns the sequence.
pub(crate) async fn publish_acked(
    js: &jetstream::Context,
    subject: &str,
    id: &str,
    body: &str,
) -> u64 {
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let mut headers = async_nats::HeaderMap::new();
        headers.insert("Nats-Msg-Id", id);
        let sent = js
            .publish_with_headers(subject.to_string(), headers, body.to_string().into())
            .await;
        if let Ok(ack) = sent {
            if let Ok(Ok(ack)) = tokio::time::timeout(Duration::from_secs(3), ack).await {
                return ack.sequence;
            }
        }
        assert!(tokio::time::Instant::now() < deadline, "{id} never acked");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_r3_stream_keeps_every_acked_message_when_its_leader_dies() {
    let mut nodes = cluster3().await;
    let js0 = jetstream::new(client(&nodes[0]).await);
    let created = create(
        &js0,
        stream::Config {
            name: "ORDERS".into(),
            subjects: vec!["orders.>".into()],
            num_replicas: 3,
            ..Default::default()
        },
    )
    .await;
    assert_eq!(created.cached_info().config.num_replicas, 3);
    let i = info(&js0, "ORDERS").await;
    let cluster = i.cluster.clone().unwrap();
    assert_eq!(cluster.name.as_deref(), Some("petrel-test"));
    let leader = cluster.leader.clone().unwrap();
    let mut replicas: Vec<String> = cluster.replicas.iter().map(|r| r.name.clone()).collect();
    replicas.push(leader.clone());
    replicas.sort();
    assert_eq!(replicas, vec!["node-0", "node-1", "node-2"]);

    // 100 publishes through node 1, each acked once a quorum stored it.
    let js1 = jetstream::new(client(&nodes[1]).await);
    for i in 0..100u64 {
        let seq = publish_acked(
            &js1,
            &format!("orders.{i}"),
            &format!("a{i}"),
            &format!("m{i}"),
        )
        .await;
        assert_eq!(seq, i + 1);
    }

    // The leader goes away; the two others elect a new one and take publishes.
    let dead: usize = leader.trim_start_matches("node-").parse().unwrap();
    nodes.remove(dead).shutdown().await;
    let survivor = jetstream::new(client(&nodes[0]).await);
    for i in 100..150u64 {
        publish_acked(
            &survivor,
            &format!("orders.{i}"),
            &format!("a{i}"),
            &format!("m{i}"),
        )
        .await;
    }
    let after = info(&survivor, "ORDERS").await;
    let new_leader = after.cluster.as_ref().unwrap().leader.clone().unwrap();
    assert_ne!(new_leader, leader);
    assert_eq!(after.state.messages, 150, "{after:?}");
    assert_eq!(after.state.last_sequence, 150);
    // Every acknowledged message is there once, in order.
    let s = survivor.get_stream("ORDERS").await.unwrap();
    for seq in 1..=150u64 {
        let m = s.get_raw_message(seq).await.unwrap();
        assert_eq!(m.subject.as_str(), format!("orders.{}", seq - 1));
        assert_eq!(&m.payload[..], format!("m{}", seq - 1).as_bytes());
    }
}

/// A node of a cluster whose every node lists all three route ports (its own included),
/// so it can be stopped and started again on the same store and ports.
async fn fixed_node(i: usize, ports: &[u16], dir: &std::path::Path) -> petrel_server::ServerHandle {
    fixed_node_with(i, ports, dir, petrel_server::RaftTiming::default()).await
}

/// [`fixed_node`] with the Raft groups' `timing`.
pub(crate) async fn fixed_node_with(
    i: usize,
    ports: &[u16],
    dir: &std::path::Path,
    timing: petrel_server::RaftTiming,
) -> petrel_server::ServerHandle {
    use petrel_config::{ClusterOptions, RouteUrl};
    petrel_testkit::log_if_asked();
    let routes = ports
        .iter()
        .map(|p| RouteUrl::parse(&format!("127.0.0.1:{p}")).unwrap())
        .collect();
    petrel_server::Server::builder()
        .host(std::net::Ipv4Addr::LOCALHOST.into())
        .port(0)
        .server_name(format!("node-{i}"))
        .cluster(ClusterOptions {
            name: Some("petrel-test".into()),
            host: std::net::Ipv4Addr::LOCALHOST.into(),
            port: ports[i],
            routes,
            ..ClusterOptions::default()
        })
        .jetstream(dir)
        .raft_timing(timing)
        .start()
        .await
        .expect("the node starts")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_whole_r3_cluster_restarts_from_its_files() {
    let dirs: Vec<tempfile::TempDir> = (0..3).map(|_| tempfile::tempdir().unwrap()).collect();
    let ports = free_ports(3);
    let mut nodes = Vec::new();
    for (i, d) in dirs.iter().enumerate() {
        nodes.push(fixed_node(i, &ports, d.path()).await);
    }
    let js = jetstream::new(async_nats::connect(nodes[2].client_url()).await.unwrap());
    create(
        &js,
        stream::Config {
            name: "EVENTS".into(),
            subjects: vec!["events.>".into()],
            num_replicas: 3,
            ..Default::default()
        },
    )
    .await;
    for i in 0..50u64 {
        let seq = publish_acked(
            &js,
            &format!("events.{i}"),
            &format!("e{i}"),
            &format!("v{i}"),
        )
        .await;
        assert_eq!(seq, i + 1);
    }
    // A delete goes through the group: every replica forgets seq 10.
    let s = js.get_stream("EVENTS").await.unwrap();
    assert!(s.delete_message(10).await.unwrap());
    drop(js);
    for n in nodes.drain(..) {
        n.shutdown().await;
    }
    // All three come back from their files: the meta log places the stream again, each
    // replica reopens its store and log, and nothing acknowledged is missing.
    for (i, d) in dirs.iter().enumerate() {
        nodes.push(fixed_node(i, &ports, d.path()).await);
    }
    let js = jetstream::new(async_nats::connect(nodes[0].client_url()).await.unwrap());
    let i = info(&js, "EVENTS").await;
    assert_eq!((i.state.messages, i.state.last_sequence), (49, 50), "{i:?}");
    let s = js.get_stream("EVENTS").await.unwrap();
    for seq in (1..=50u64).filter(|s| *s != 10) {
        let m = s.get_raw_message(seq).await.unwrap();
        assert_eq!(&m.payload[..], format!("v{}", seq - 1).as_bytes());
    }
    assert!(s.get_raw_message(10).await.is_err());
    // A retried publish is still a duplicate after the restart (the dedup window came
    // back with the store); a new one takes the next sequence.
    assert_eq!(publish_acked(&js, "events.49", "e49", "v49").await, 50);
    assert_eq!(publish_acked(&js, "events.new", "n1", "new").await, 51);
    for n in nodes {
        n.shutdown().await;
    }
}

/// Asks `$JS.API.<subject>` for a stepdown: nats-server's `<kind>_leader_stepdown`
/// success, at once.
async fn stepped_down(nc: &async_nats::Client, subject: &str, kind: &str) {
    let resp = nc
        .request(format!("$JS.API.{subject}"), "".into())
        .await
        .unwrap();
    let body: serde_json::Value = serde_json::from_slice(&resp.payload).unwrap();
    let want = format!("io.nats.jetstream.api.v1.{kind}_leader_stepdown_response");
    assert_eq!(body, serde_json::json!({ "type": want, "success": true }));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_stream_leader_serves_consumers_and_steps_down_on_request() {
    use async_nats::jetstream::consumer::pull;
    let nodes = cluster3().await;
    let nc = client(&nodes[1]).await;
    let js = jetstream::new(nc.clone());
    create(
        &js,
        stream::Config {
            name: "JOBS".into(),
            subjects: vec!["jobs.>".into()],
            num_replicas: 3,
            ..Default::default()
        },
    )
    .await;
    for i in 0..20u64 {
        publish_acked(&js, &format!("jobs.{i}"), &format!("j{i}"), "x").await;
    }
    // A durable pull consumer on the stream leader: fetch, ack, and its info counts.
    let info0 = info(&js, "JOBS").await;
    let consumer = js
        .get_stream("JOBS")
        .await
        .unwrap()
        .create_consumer(pull::Config {
            durable_name: Some("worker".into()),
            ..Default::default()
        })
        .await
        .unwrap();
    let mut msgs = consumer.fetch().max_messages(20).messages().await.unwrap();
    let mut got = Vec::new();
    while let Some(m) = tokio::time::timeout(WAIT, msgs.next())
        .await
        .expect("deliveries")
    {
        let m = m.unwrap();
        got.push(m.subject.to_string());
        m.double_ack().await.unwrap();
    }
    let want: Vec<String> = (0..20).map(|i| format!("jobs.{i}")).collect();
    assert_eq!(got, want);
    // The leader hands over to another replica: nats-server's response at once, then a
    // new leader that takes publishes after the old ones.
    let old = info0.cluster.unwrap().leader.unwrap();
    stepped_down(&nc, "STREAM.LEADER.STEPDOWN.JOBS", "stream").await;
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let now = info(&js, "JOBS").await.cluster.unwrap().leader.unwrap();
        if now != old {
            break;
        }
        assert!(tokio::time::Instant::now() < deadline, "{old} still leads");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert_eq!(publish_acked(&js, "jobs.after", "after", "x").await, 21);
    // A preferred replica (nats-server 2.11's placement): that one leads next; refusals
    // as nats-server words them.
    let cluster = info(&js, "JOBS").await.cluster.unwrap();
    let (leader, other) = (cluster.leader.unwrap(), cluster.replicas[0].name.clone());
    let ask = |body: String| {
        let nc = nc.clone();
        async move {
            let resp = nc
                .request("$JS.API.STREAM.LEADER.STEPDOWN.JOBS", body.into())
                .await
                .unwrap();
            serde_json::from_slice::<serde_json::Value>(&resp.payload).unwrap()
        }
    };
    for (body, code, text) in [
        (
            r#"{"placement":{"preferred":"nope"}}"#.to_string(),
            10005,
            "preferred server \"nope\" not known".to_string(),
        ),
        (
            format!(r#"{{"placement":{{"preferred":"{leader}"}}}}"#),
            10005,
            format!("preferred server \"{leader}\" is already leader"),
        ),
        (
            r#"{"placement":"#.to_string(),
            10025,
            "invalid JSON".to_string(),
        ),
    ] {
        let body = ask(body).await;
        assert_eq!(body["error"]["err_code"], code, "{body}");
        let desc = body["error"]["description"].as_str().unwrap();
        assert!(desc.contains(&text), "{desc}");
    }
    let body = ask(format!(r#"{{"placement":{{"preferred":"{other}"}}}}"#)).await;
    assert_eq!(body["success"], true, "{body}");
    let deadline = tokio::time::Instant::now() + WAIT;
    while info(&js, "JOBS").await.cluster.unwrap().leader.as_deref() != Some(&other) {
        assert!(
            tokio::time::Instant::now() < deadline,
            "{other} does not lead"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert_eq!(publish_acked(&js, "jobs.after", "after2", "x").await, 22);
    // A consumer stepdown moves the consumer's leader (with its stream's: consumers run
    // on the stream leader); it carries on from its acks, nothing acked comes again.
    let consumer_leader = |js: jetstream::Context| async move {
        let deadline = tokio::time::Instant::now() + WAIT;
        loop {
            let c: Result<consumer::Consumer<pull::Config>, _> =
                js.get_consumer_from_stream("worker", "JOBS").await;
            if let Ok(mut c) = c {
                if let Ok(i) = c.info().await {
                    if let Some(l) = i.cluster.as_ref().and_then(|c| c.leader.clone()) {
                        return l;
                    }
                }
            }
            assert!(tokio::time::Instant::now() < deadline, "no consumer leader");
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    };
    let before = consumer_leader(js.clone()).await;
    stepped_down(&nc, "CONSUMER.LEADER.STEPDOWN.JOBS.worker", "consumer").await;
    let deadline = tokio::time::Instant::now() + WAIT;
    while consumer_leader(js.clone()).await == before {
        assert!(
            tokio::time::Instant::now() < deadline,
            "{before} still leads worker"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let deadline = tokio::time::Instant::now() + WAIT;
    let next = loop {
        let c: Result<consumer::Consumer<pull::Config>, _> =
            js.get_consumer_from_stream("worker", "JOBS").await;
        if let Ok(c) = c {
            if let Ok(mut batch) = c.fetch().max_messages(1).messages().await {
                if let Ok(Some(Ok(m))) =
                    tokio::time::timeout(Duration::from_secs(3), batch.next()).await
                {
                    break m;
                }
            }
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "worker delivers nothing"
        );
    };
    assert_eq!(
        next.info().unwrap().stream_sequence,
        21,
        "carries on after its acks"
    );
    let resp = nc
        .request("$JS.API.CONSUMER.LEADER.STEPDOWN.JOBS.nope", "".into())
        .await
        .unwrap();
    let body: serde_json::Value = serde_json::from_slice(&resp.payload).unwrap();
    assert_eq!(body["error"]["err_code"], 10014, "{body}");
    // Stepdown of a stream that does not exist: the meta leader's 10059.
    let resp = nc
        .request("$JS.API.STREAM.LEADER.STEPDOWN.NOPE", "".into())
        .await
        .unwrap();
    let body: serde_json::Value = serde_json::from_slice(&resp.payload).unwrap();
    assert_eq!(body["error"]["err_code"], 10059, "{body}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn clustered_api_errors_match_nats_server() {
    let nodes = cluster3().await;
    let nc = client(&nodes[0]).await;
    let js = jetstream::new(nc.clone());
    // R5 on three nodes: no placement (10005).
    let deadline = tokio::time::Instant::now() + WAIT;
    let body = loop {
        let resp = nc
            .request(
                "$JS.API.STREAM.CREATE.FIVE",
                r#"{"name":"FIVE","subjects":["five"],"num_replicas":5}"#.into(),
            )
            .await
            .unwrap();
        let body: serde_json::Value = serde_json::from_slice(&resp.payload).unwrap();
        if body["error"]["err_code"] != 10008 {
            break body;
        }
        assert!(tokio::time::Instant::now() < deadline, "no meta leader");
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    assert_eq!(body["error"]["err_code"], 10005, "{body}");
    assert_eq!(
        body["error"]["description"],
        "no suitable peers for placement"
    );
    create(
        &js,
        stream::Config {
            name: "THREE".into(),
            subjects: vec!["three".into()],
            num_replicas: 3,
            ..Default::default()
        },
    )
    .await;
    // Overlapping subjects (10065), peer removal and scaling refused, the names list.
    let resp = nc
        .request(
            "$JS.API.STREAM.CREATE.OTHER",
            r#"{"name":"OTHER","subjects":["three"],"num_replicas":3}"#.into(),
        )
        .await
        .unwrap();
    let body: serde_json::Value = serde_json::from_slice(&resp.payload).unwrap();
    assert_eq!(body["error"]["err_code"], 10065, "{body}");
    // Worded as a clustered nats-server 2.15.1 does (no stream named).
    assert_eq!(
        body["error"]["description"],
        "subjects overlap with an existing stream"
    );
    // STREAM.PEER.REMOVE's refusals, as nats-server 2.15.1 words them: no body (10003),
    // no such peer (10040) or stream (10059), and no fourth node to take the place (10075).
    let remove = |stream: &'static str, body: &'static str| {
        let nc = nc.clone();
        async move {
            let subject = format!("$JS.API.STREAM.PEER.REMOVE.{stream}");
            let resp = nc.request(subject, body.into()).await.unwrap();
            serde_json::from_slice::<serde_json::Value>(&resp.payload).unwrap()
        }
    };
    assert_eq!(remove("THREE", "").await["error"]["err_code"], 10003);
    assert_eq!(
        remove("THREE", r#"{"peer":""}"#).await["error"]["err_code"],
        10003
    );
    assert_eq!(
        remove("THREE", r#"{"peer":"nope"}"#).await["error"]["err_code"],
        10040
    );
    assert_eq!(
        remove("NONE", r#"{"peer":"node-1"}"#).await["error"]["err_code"],
        10059
    );
    let refused = remove("THREE", r#"{"peer":"node-1"}"#).await;
    assert_eq!(
        refused["type"],
        "io.nats.jetstream.api.v1.stream_remove_peer_response"
    );
    assert_eq!(refused["error"]["err_code"], 10075, "{refused}");
    assert_eq!(refused["error"]["description"], "peer remap failed");
    // R5 on three nodes by update: no placement either (10005).
    let resp = nc
        .request(
            "$JS.API.STREAM.UPDATE.THREE",
            r#"{"name":"THREE","subjects":["three"],"num_replicas":5}"#.into(),
        )
        .await
        .unwrap();
    let body: serde_json::Value = serde_json::from_slice(&resp.payload).unwrap();
    assert_eq!(body["error"]["err_code"], 10005, "{body}");
    let names: Vec<String> = js.stream_names().map(|n| n.unwrap()).collect().await;
    assert_eq!(names, vec!["THREE".to_string()]);
    // /jsz names the meta group: its leader and the two other members.
    let addr = nodes[2].monitor_addr().unwrap();
    let jsz = petrel_testkit::http_get(addr, "/jsz").await.unwrap().json();
    let meta = &jsz["meta_cluster"];
    assert_eq!(meta["name"], "petrel-test", "{jsz}");
    assert_eq!(meta["cluster_size"], 3);
    assert!(meta["leader"].as_str().unwrap().starts_with("node-"));
    assert_eq!(meta["replicas"].as_array().unwrap().len(), 2);
    // Every node is healthy: a meta leader, its replicas open with a leader.
    for node in &nodes {
        let addr = node.monitor_addr().unwrap();
        let deadline = tokio::time::Instant::now() + WAIT;
        loop {
            let r = petrel_testkit::http_get(addr, "/healthz").await.unwrap();
            if r.status == 200 {
                assert_eq!(r.json(), serde_json::json!({"status": "ok"}));
                break;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "unhealthy: {}",
                r.json()
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
    // ... and each replicated stream's group, as stream info does.
    let jsz = petrel_testkit::http_get(addr, "/jsz?streams=true")
        .await
        .unwrap()
        .json();
    let detail = &jsz["account_details"][0]["stream_detail"][0];
    assert_eq!(detail["name"], "THREE", "{jsz}");
    let want = info(&js, "THREE").await.cluster.unwrap();
    assert_eq!(
        detail["cluster"]["leader"].as_str(),
        want.leader.as_deref(),
        "{jsz}"
    );
    assert_eq!(detail["cluster"]["name"], "petrel-test");
    assert!(detail["cluster"]["raft_group"]
        .as_str()
        .unwrap()
        .starts_with("S-R3F-"));
    assert_eq!(
        detail["cluster"]["replicas"].as_array().unwrap().len(),
        2,
        "{jsz}"
    );
    // DIRECT.GET of a stream that does not exist, or does not allow it: the 503 status at
    // once from any node (every node hears `$JS.API.>`; the meta leader answers it).
    for node in &nodes {
        let nc = client(node).await;
        for subject in ["$JS.API.DIRECT.GET.NOPE", "$JS.API.DIRECT.GET.THREE.three"] {
            let err = nc
                .request(subject, r#"{"seq":1}"#.into())
                .await
                .expect_err("no responder");
            assert_eq!(
                err.kind(),
                async_nats::RequestErrorKind::NoResponders,
                "{subject}"
            );
        }
    }
    // New consumer limits that an existing consumer exceeds: refused, naming it (10069).
    // (Retried while the stream's group elects a leader: 10008.)
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let three = js.get_stream("THREE").await.unwrap();
        let wide = consumer::pull::Config {
            durable_name: Some("WIDE".into()),
            max_ack_pending: 500,
            ..Default::default()
        };
        match three.create_consumer(wide).await {
            Ok(_) => break,
            Err(e) => assert!(tokio::time::Instant::now() < deadline, "WIDE: {e}"),
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // Every replica holds the consumer's files (the meta leader may be a follower).
    let deadline = tokio::time::Instant::now() + WAIT;
    while !nodes.iter().all(|n| has_dir_named(n.store_dir(), "WIDE")) {
        assert!(
            tokio::time::Instant::now() < deadline,
            "WIDE not replicated"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let resp = nc
        .request(
            "$JS.API.STREAM.UPDATE.THREE",
            r#"{"name":"THREE","subjects":["three"],"num_replicas":3,"consumer_limits":{"max_ack_pending":100}}"#.into(),
        )
        .await
        .unwrap();
    let body: serde_json::Value = serde_json::from_slice(&resp.payload).unwrap();
    assert_eq!(body["error"]["err_code"], 10069, "{body}");
    assert_eq!(
        body["error"]["description"],
        "change to limits violates consumers: WIDE"
    );
    // A pause asked of any node is done by the stream's leader (2.11's CONSUMER.PAUSE).
    let far = time::OffsetDateTime::from_unix_timestamp(1_900_000_000).unwrap();
    let other = jetstream::new(client(&nodes[2]).await);
    let three = other.get_stream("THREE").await.unwrap();
    assert!(three.pause_consumer("WIDE", far).await.unwrap().paused);
    let mut wide: consumer::PullConsumer = three.get_consumer("WIDE").await.unwrap();
    assert!(wide.info().await.unwrap().paused);
    // Delete through the meta group: gone from every node.
    assert!(js.delete_stream("THREE").await.unwrap().success);
    let names: Vec<String> = js.stream_names().map(|n| n.unwrap()).collect().await;
    assert!(names.is_empty());
}

/// Whether a directory named `name` is somewhere under `root`.
fn has_dir_named(root: &std::path::Path, name: &str) -> bool {
    std::fs::read_dir(root)
        .into_iter()
        .flatten()
        .flatten()
        .any(|e| {
            let p = e.path();
            p.is_dir() && (e.file_name() == name || has_dir_named(&p, name))
        })
}

#[tokio::test]
async fn stepdown_and_peer_removal_without_clustering_are_10010() {
    let server = petrel_testkit::spawn_jetstream().await;
    let nc = client(&server).await;
    for (subject, kind) in [
        ("$JS.API.STREAM.LEADER.STEPDOWN.S", "stream_leader_stepdown"),
        ("$JS.API.STREAM.PEER.REMOVE.S", "stream_remove_peer"),
        (
            "$JS.API.CONSUMER.LEADER.STEPDOWN.S.C",
            "consumer_leader_stepdown",
        ),
    ] {
        let resp = nc.request(subject, "".into()).await.unwrap();
        let body: serde_json::Value = serde_json::from_slice(&resp.payload).unwrap();
        assert_eq!(
            body,
            serde_json::json!({
                "type": format!("io.nats.jetstream.api.v1.{kind}_response"),
                "error": {"code": 503, "err_code": 10010,
                          "description": "JetStream clustering support required"}
            })
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_durable_consumer_carries_on_under_the_next_stream_leader() {
    use async_nats::jetstream::consumer::{pull, AckPolicy};
    use std::collections::BTreeSet;
    let mut nodes = cluster3().await;
    let js = jetstream::new(client(&nodes[0]).await);
    create(
        &js,
        stream::Config {
            name: "TASKS".into(),
            subjects: vec!["tasks.>".into()],
            num_replicas: 3,
            ..Default::default()
        },
    )
    .await;
    for i in 1..=30u64 {
        publish_acked(&js, &format!("tasks.{i}"), &format!("t{i}"), "x").await;
    }
    let config = pull::Config {
        durable_name: Some("worker".into()),
        ack_policy: AckPolicy::Explicit,
        ack_wait: Duration::from_secs(2),
        ..Default::default()
    };
    let consumer = js
        .get_stream("TASKS")
        .await
        .unwrap()
        .create_consumer(config.clone())
        .await
        .unwrap();
    let mut msgs = consumer.fetch().max_messages(10).messages().await.unwrap();
    while let Some(m) = tokio::time::timeout(WAIT, msgs.next())
        .await
        .expect("deliveries")
    {
        m.unwrap().double_ack().await.unwrap();
    }
    // The stream leader (where the consumer runs) dies.
    let leader = info(&js, "TASKS").await.cluster.unwrap().leader.unwrap();
    let dead: usize = leader.trim_start_matches("node-").parse().unwrap();
    nodes.remove(dead).shutdown().await;
    let js = jetstream::new(client(&nodes[0]).await);
    info(&js, "TASKS").await;
    // The new leader runs the consumer from the copy of its files: it exists with its
    // config, every message not acked before the failover is delivered, and none whose
    // ack was confirmed (`double_ack` waits for the state to reach a quorum) comes again
    // (deliveries go in stream order, so one would have come before 11).
    let deadline = tokio::time::Instant::now() + WAIT;
    let consumer = loop {
        if let Ok(c) = js
            .get_stream("TASKS")
            .await
            .unwrap()
            .get_consumer::<pull::Config>("worker")
            .await
        {
            break c;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the consumer is gone"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    assert_eq!(
        consumer.cached_info().config.ack_wait,
        Duration::from_secs(2)
    );
    let mut seen = BTreeSet::new();
    while !(11..=30).all(|i| seen.contains(&i)) {
        assert!(tokio::time::Instant::now() < deadline, "missing: {seen:?}");
        let mut batch = consumer
            .fetch()
            .max_messages(30)
            .expires(Duration::from_secs(1))
            .messages()
            .await
            .unwrap();
        while let Some(m) = batch.next().await {
            let m = m.unwrap();
            let n: u64 = m.subject.trim_start_matches("tasks.").parse().unwrap();
            seen.insert(n);
            m.double_ack().await.unwrap();
        }
    }
    assert!(
        seen.iter().all(|n| *n > 10),
        "acked messages came again: {seen:?}"
    );
}

/// The stream directory and Raft log of `node_dir`'s replica of the one stream group.
fn replica_paths(
    node_dir: &std::path::Path,
    stream: &str,
) -> (std::path::PathBuf, std::path::PathBuf) {
    let root = node_dir.join("jetstream").join("_cluster_");
    let group = std::fs::read_dir(&root)
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| p.file_name().unwrap().to_string_lossy().starts_with("S-"))
        .expect("a stream group directory");
    (
        group.join("stream").join(stream),
        group.join("raft").join("raft.log"),
    )
}

/// Every message of a stopped node's replica, read from its files.
fn stored(stream_dir: &std::path::Path, stream: &str) -> Vec<(u64, String)> {
    use petrel_store::{FileStore, FileStoreConfig, StreamStore};
    let store = FileStore::open(
        stream_dir.parent().unwrap(),
        stream,
        FileStoreConfig::default(),
    )
    .unwrap();
    let st = store.state();
    (st.first_seq..=st.last_seq)
        .filter_map(|seq| store.get(seq).unwrap())
        .map(|m| (m.seq, String::from_utf8_lossy(&m.payload).into_owned()))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn corrupt_replicas_are_cut_and_rebuilt_from_the_group() {
    let dirs: Vec<tempfile::TempDir> = (0..3).map(|_| tempfile::tempdir().unwrap()).collect();
    let ports = free_ports(3);
    let mut nodes = Vec::new();
    for (i, d) in dirs.iter().enumerate() {
        nodes.push(fixed_node(i, &ports, d.path()).await);
    }
    let js = jetstream::new(async_nats::connect(nodes[0].client_url()).await.unwrap());
    create(
        &js,
        stream::Config {
            name: "LEDGER".into(),
            subjects: vec!["ledger.>".into()],
            num_replicas: 3,
            ..Default::default()
        },
    )
    .await;
    for i in 1..=40u64 {
        publish_acked(
            &js,
            &format!("ledger.{i}"),
            &format!("l{i}"),
            &format!("v{i}"),
        )
        .await;
    }
    let leader = info(&js, "LEDGER").await.cluster.unwrap().leader.unwrap();
    let cut: usize = leader.trim_start_matches("node-").parse().unwrap();
    let flipped = (cut + 1) % 3;
    drop(js);
    for n in nodes.drain(..) {
        n.shutdown().await;
    }
    let want: Vec<(u64, String)> = (1..=40).map(|i| (i, format!("v{i}"))).collect();
    // A follower: a flipped bit in its stream's block (read back at start: rebuilt).
    let (s1, _) = replica_paths(dirs[flipped].path(), "LEDGER");
    let block = s1.join("msgs").join("1.blk");
    let mut bytes = std::fs::read(&block).unwrap();
    let mid = bytes.len() / 2;
    bytes[mid] ^= 0x20;
    std::fs::write(&block, &bytes).unwrap();
    // The leader: a torn tail on its Raft log, the last acknowledged message with it.
    // It must not lead again with that log (its saved vote would let it), or the
    // others' copies of that message would be overwritten.
    let (_, log2) = replica_paths(dirs[cut].path(), "LEDGER");
    let len = std::fs::metadata(&log2).unwrap().len();
    let f = std::fs::OpenOptions::new().write(true).open(&log2).unwrap();
    f.set_len(len - 10).unwrap();
    drop(f);
    // Back up: each damaged replica detects it, drops what it cannot trust, and is
    // repaired from the group; publishing goes on.
    for (i, d) in dirs.iter().enumerate() {
        nodes.push(fixed_node(i, &ports, d.path()).await);
    }
    let js = jetstream::new(async_nats::connect(nodes[0].client_url()).await.unwrap());
    info(&js, "LEDGER").await;
    assert_eq!(publish_acked(&js, "ledger.41", "l41", "v41").await, 41);
    drop(js);
    for n in nodes.drain(..) {
        n.shutdown().await;
    }
    // Every replica holds 1..=40 again; 41, acknowledged, is on a quorum at least (the
    // third may not have applied it before the nodes stopped).
    let mut with_41 = 0;
    for d in &dirs {
        let (s, _) = replica_paths(d.path(), "LEDGER");
        let mut got = stored(&s, "LEDGER");
        if got.last() == Some(&(41, "v41".to_string())) {
            got.pop();
            with_41 += 1;
        }
        assert_eq!(got, want, "{}", d.path().display());
    }
    assert!(with_41 >= 2, "41 is on {with_41} replicas");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replica_without_a_leader_answers_10008() {
    let mut nodes = cluster3().await;
    let js = jetstream::new(client(&nodes[0]).await);
    create(
        &js,
        stream::Config {
            name: "LONE".into(),
            subjects: vec!["lone".into()],
            num_replicas: 3,
            ..Default::default()
        },
    )
    .await;
    // The leader and one other replica go: the last one cannot elect anybody.
    let leader = info(&js, "LONE").await.cluster.unwrap().leader.unwrap();
    let dead: usize = leader.trim_start_matches("node-").parse().unwrap();
    let other = (0..3).find(|i| *i != dead).unwrap();
    let last = (0..3).find(|i| *i != dead && *i != other).unwrap();
    let (mut dead_nodes, mut kept) = (Vec::new(), None);
    for (i, n) in nodes.drain(..).enumerate() {
        if i == last {
            kept = Some(n);
        } else {
            dead_nodes.push(n);
        }
    }
    for n in dead_nodes {
        n.shutdown().await;
    }
    let kept = kept.unwrap();
    let nc = client(&kept).await;
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let resp = tokio::time::timeout(
            Duration::from_secs(3),
            nc.request("$JS.API.STREAM.INFO.LONE", "".into()),
        )
        .await;
        if let Ok(Ok(m)) = resp {
            let body: serde_json::Value = serde_json::from_slice(&m.payload).unwrap();
            if body["error"]["err_code"] == 10008 {
                assert_eq!(
                    body["type"],
                    "io.nats.jetstream.api.v1.stream_info_response"
                );
                break;
            }
        }
        assert!(tokio::time::Instant::now() < deadline, "no 10008");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    // A publish finds no interest (only a leader subscribes, as nats-server's): the
    // publisher hears no-responders at once rather than waiting out its timeout.
    let ack = jetstream::new(nc.clone())
        .publish("lone", "x".into())
        .await
        .unwrap();
    let err = tokio::time::timeout(Duration::from_secs(3), ack)
        .await
        .expect("an answer, not a timeout")
        .expect_err("nobody stores it");
    assert_eq!(
        err.kind(),
        jetstream::context::PublishErrorKind::StreamNotFound,
        "{err}"
    );
    // /healthz says why, as nats-server; JetStream itself still runs here.
    let addr = kept.monitor_addr().unwrap();
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let r = petrel_testkit::http_get(addr, "/healthz").await.unwrap();
        if r.status == 503 {
            let body = r.json();
            assert_eq!(body["status"], "unavailable", "{body}");
            let why = body["error"].as_str().unwrap();
            assert!(
                why == "JetStream has not established contact with a meta leader"
                    || why == "JetStream stream '$G > LONE' is not current: no leader",
                "{why}"
            );
            break;
        }
        assert!(tokio::time::Instant::now() < deadline, "still healthy");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let r = petrel_testkit::http_get(addr, "/healthz?js-enabled-only=true")
        .await
        .unwrap();
    assert_eq!(r.status, 200);
}
