//! In-process Petrel clusters (routes), driven by async-nats connected to different
//! nodes: pub/sub and wildcards across nodes, queue groups exactly once cluster-wide,
//! request/reply and no-responders across nodes, unsubscribe propagation, a node
//! restart, and a client that learns the other nodes from INFO and fails over.

use std::collections::HashMap;
use std::time::Duration;

use futures::StreamExt;
use petrel_testkit::{spawn_cluster, wait_for_routes, TestServer};

pub(crate) const WAIT: Duration = Duration::from_secs(10);

pub(crate) async fn client(node: &TestServer) -> async_nats::Client {
    async_nats::connect(node.client_url())
        .await
        .expect("connect")
}

/// Publishes `subject` from `publisher` until `sub` receives a message (interest crosses
/// routes asynchronously); returns it. Only this subject's messages arrive on `sub`.
pub(crate) async fn until_received(
    publisher: &async_nats::Client,
    sub: &mut async_nats::Subscriber,
    subject: &str,
) -> async_nats::Message {
    until_received_within(publisher, sub, subject, WAIT).await
}

/// [`until_received`] with its own patience (containers starting on a loaded machine).
pub(crate) async fn until_received_within(
    publisher: &async_nats::Client,
    sub: &mut async_nats::Subscriber,
    subject: &str,
    wait: Duration,
) -> async_nats::Message {
    let deadline = tokio::time::Instant::now() + wait;
    loop {
        publisher
            .publish(subject.to_string(), "probe".into())
            .await
            .expect("publish");
        publisher.flush().await.expect("flush");
        if let Ok(Some(m)) = tokio::time::timeout(Duration::from_millis(100), sub.next()).await {
            return m;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "no message on {subject}"
        );
    }
}

/// Drains `sub` until `marker` arrives; returns the payloads before it.
pub(crate) async fn until_marker(sub: &mut async_nats::Subscriber, marker: &str) -> Vec<String> {
    let mut got = Vec::new();
    loop {
        let m = tokio::time::timeout(WAIT, sub.next())
            .await
            .expect("marker in time")
            .expect("subscription open");
        let body = String::from_utf8_lossy(&m.payload).to_string();
        if body == marker {
            return got;
        }
        got.push(body);
    }
}

/// Waits until `sub` (on a plain marker subject) receives a message `publisher` sends
/// after everything else: whatever was routed to that connection before is then queued
/// in its subscriptions, and [`drain_now`] sees all of it without waiting.
pub(crate) async fn settle(
    publisher: &async_nats::Client,
    sub: &mut async_nats::Subscriber,
    subject: &str,
) {
    publisher
        .publish(subject.to_string(), "done".into())
        .await
        .unwrap();
    publisher.flush().await.unwrap();
    loop {
        let m = tokio::time::timeout(WAIT, sub.next())
            .await
            .expect("marker")
            .expect("open");
        if &m.payload[..] == b"done" {
            return;
        }
    }
}

/// The payloads already queued on `sub` (no waiting), probes left out. Unconstrained:
/// tokio's cooperative budget would otherwise report "pending" after 128 messages.
pub(crate) fn drain_now(sub: &mut async_nats::Subscriber) -> Vec<String> {
    use futures::FutureExt;
    let mut got = Vec::new();
    while let Some(Some(m)) = tokio::task::unconstrained(sub.next()).now_or_never() {
        if &m.payload[..] != b"probe" {
            got.push(String::from_utf8_lossy(&m.payload).to_string());
        }
    }
    got
}

#[tokio::test]
async fn messages_and_wildcards_cross_the_cluster() {
    let nodes = spawn_cluster(3).await;
    let (a, b, c) = (
        client(&nodes[0]).await,
        client(&nodes[1]).await,
        client(&nodes[2]).await,
    );
    let mut exact = b.subscribe("medisync.etl.job1.completed").await.unwrap();
    let mut wild = c.subscribe("medisync.etl.*.completed").await.unwrap();
    let mut all = c.subscribe("*.*").await.unwrap();
    b.flush().await.unwrap();
    c.flush().await.unwrap();
    until_received(&a, &mut exact, "medisync.etl.job1.completed").await;
    until_received(&a, &mut all, "SECURITY.ALERTS").await;
    // Interest is in place everywhere now: every message arrives exactly once per sub.
    for i in 0..100 {
        a.publish("medisync.etl.job1.completed", format!("{i}").into())
            .await
            .unwrap();
    }
    a.publish("medisync.etl.job1.completed", "end".into())
        .await
        .unwrap();
    a.flush().await.unwrap();
    let want: Vec<String> = (0..100).map(|i| i.to_string()).collect();
    let got = until_marker(&mut exact, "end").await;
    assert_eq!(
        got.iter()
            .filter(|p| *p != "probe")
            .cloned()
            .collect::<Vec<_>>(),
        want
    );
    let got = until_marker(&mut wild, "end").await;
    assert_eq!(
        got.iter()
            .filter(|p| *p != "probe")
            .cloned()
            .collect::<Vec<_>>(),
        want
    );
    // Headers survive the route (HRMSG).
    let mut headers = async_nats::HeaderMap::new();
    headers.insert("Nats-Msg-Id", "abc");
    a.publish_with_headers("medisync.etl.job2.completed", headers, "h".into())
        .await
        .unwrap();
    let m = tokio::time::timeout(WAIT, wild.next())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        m.headers.unwrap().get("Nats-Msg-Id").unwrap().as_str(),
        "abc"
    );
}

#[tokio::test]
async fn a_queue_group_gets_each_message_once_across_nodes() {
    let nodes = spawn_cluster(3).await;
    let clients = [
        client(&nodes[0]).await,
        client(&nodes[1]).await,
        client(&nodes[2]).await,
    ];
    // Two workers on node 1, two on node 2, none on node 0 (the publisher's); a marker
    // subscription on each worker connection.
    let mut workers = Vec::new();
    for c in [&clients[1], &clients[1], &clients[2], &clients[2]] {
        workers.push(c.queue_subscribe("jobs", "workers".into()).await.unwrap());
    }
    let mut markers = Vec::new();
    for (i, c) in clients[1..].iter().enumerate() {
        let subject = format!("marker.{i}");
        let mut m = c.subscribe(subject.clone()).await.unwrap();
        c.flush().await.unwrap();
        until_received(&clients[0], &mut m, &subject).await;
        markers.push((subject, m));
    }
    // The queue interest went out before the markers' on the same connections.
    queue_exactly_once(&clients[0], &mut workers, &mut markers, 400).await;
}

/// Publishes `n` jobs from `publisher`, waits on every worker connection's marker, and
/// checks that each job reached exactly one worker and that every worker got some.
pub(crate) async fn queue_exactly_once(
    publisher: &async_nats::Client,
    workers: &mut [async_nats::Subscriber],
    markers: &mut [(String, async_nats::Subscriber)],
    n: usize,
) {
    for i in 0..n {
        publisher
            .publish("jobs", format!("{i}").into())
            .await
            .unwrap();
    }
    for (subject, m) in markers.iter_mut() {
        settle(publisher, m, subject).await;
    }
    let mut counts: HashMap<String, usize> = HashMap::new();
    let mut per_worker = Vec::new();
    for w in workers.iter_mut() {
        let got = drain_now(w);
        per_worker.push(got.len());
        for body in got {
            *counts.entry(body).or_default() += 1;
        }
    }
    assert_eq!(
        counts.len(),
        n,
        "every job reached the group: {per_worker:?}"
    );
    assert!(
        counts.values().all(|c| *c == 1),
        "a job reached the group twice"
    );
    assert!(per_worker.iter().all(|k| *k > 0), "{per_worker:?}");
}

#[tokio::test]
async fn queue_members_are_chosen_across_the_cluster() {
    // As nats-server: a client's message goes to a member anywhere in the cluster (not
    // only on the publisher's node), each message to one member.
    let nodes = spawn_cluster(2).await;
    let (a, b) = (client(&nodes[0]).await, client(&nodes[1]).await);
    let mut remote = b.queue_subscribe("work", "q".into()).await.unwrap();
    let mut marker = b.subscribe("work.marker").await.unwrap();
    b.flush().await.unwrap();
    until_received(&a, &mut marker, "work.marker").await;
    let mut local = a.queue_subscribe("work", "q".into()).await.unwrap();
    let mut local_marker = a.subscribe("work.local").await.unwrap();
    a.flush().await.unwrap();
    let n = 200;
    for i in 0..n {
        a.publish("work", format!("{i}").into()).await.unwrap();
    }
    settle(&a, &mut marker, "work.marker").await;
    settle(&a, &mut local_marker, "work.local").await;
    let counts = [drain_now(&mut local).len(), drain_now(&mut remote).len()];
    assert_eq!(counts[0] + counts[1], n, "{counts:?}");
    assert!(
        counts[0] > 0 && counts[1] > 0,
        "both nodes' members work: {counts:?}"
    );
}

/// A service on node 2 answers node 0; unknown subjects get no-responders; once the
/// service unsubscribes, node 0 gets no-responders for it too.
pub(crate) async fn requests(c: &[async_nats::Client; 3]) {
    let mut service = c[2].subscribe("svc.echo").await.unwrap();
    c[2].flush().await.unwrap();
    let responder = {
        let c2 = c[2].clone();
        tokio::spawn(async move {
            while let Some(m) = service.next().await {
                if let Some(reply) = m.reply {
                    c2.publish(reply, m.payload).await.unwrap();
                }
            }
        })
    };
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        match c[0].request("svc.echo", "ping".into()).await {
            Ok(r) => {
                assert_eq!(&r.payload[..], b"ping");
                break;
            }
            Err(e) => assert!(tokio::time::Instant::now() < deadline, "no reply: {e}"),
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    for client in c {
        let err = client.request("svc.nobody", "x".into()).await.unwrap_err();
        assert_eq!(err.kind(), async_nats::RequestErrorKind::NoResponders);
    }
    responder.abort();
    let _ = responder.await;
    c[2].flush().await.unwrap();
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let r = tokio::time::timeout(
            Duration::from_millis(500),
            c[0].request("svc.echo", "x".into()),
        )
        .await;
        if matches!(&r, Ok(Err(e)) if e.kind() == async_nats::RequestErrorKind::NoResponders) {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "interest never went away"
        );
    }
}

#[tokio::test]
async fn requests_and_no_responders_cross_nodes() {
    let nodes = spawn_cluster(3).await;
    let c = [
        client(&nodes[0]).await,
        client(&nodes[1]).await,
        client(&nodes[2]).await,
    ];
    requests(&c).await;
}

#[tokio::test]
async fn unsubscribe_reaches_the_other_nodes() {
    let nodes = spawn_cluster(2).await;
    let (a, b) = (client(&nodes[0]).await, client(&nodes[1]).await);
    let mut sub = b.subscribe("svc.gone").await.unwrap();
    b.flush().await.unwrap();
    until_received(&a, &mut sub, "svc.gone").await;
    sub.unsubscribe().await.unwrap();
    b.flush().await.unwrap();
    // Once node 0 has heard the RS-, a request there finds no responders.
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let r = tokio::time::timeout(
            Duration::from_millis(500),
            a.request("svc.gone", "x".into()),
        )
        .await;
        if let Ok(Err(e)) = r {
            if e.kind() == async_nats::RequestErrorKind::NoResponders {
                break;
            }
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "interest never went away"
        );
    }
}

#[tokio::test]
async fn a_restarted_node_rejoins_and_clients_fail_over() {
    let mut nodes = spawn_cluster(3).await;
    // This client knows only node 2's URL; the INFO tells it about the others.
    let moving = async_nats::ConnectOptions::new()
        .retry_on_initial_connect()
        .connect(nodes[2].client_url())
        .await
        .unwrap();
    let mut sub = moving.subscribe("failover.test").await.unwrap();
    moving.flush().await.unwrap();
    let a = client(&nodes[0]).await;
    until_received(&a, &mut sub, "failover.test").await;
    let gone = nodes.pop().expect("three nodes");
    gone.shutdown().await;
    let rest: Vec<_> = nodes.iter().map(TestServer::handle).collect();
    wait_for_routes(&rest, 1).await;
    // The client reconnects to a node it learned from gossip and resubscribes.
    until_received(&a, &mut sub, "failover.test").await;
    // A new node joins through node 0 and the mesh is full again.
    let seed =
        petrel_testkit::RouteUrl::parse(&nodes[0].handle().cluster_addr().unwrap().to_string())
            .unwrap();
    let joined = petrel_testkit::spawn_with(|b| {
        b.server_name("node-new")
            .cluster(petrel_testkit::ClusterOptions {
                name: Some("petrel-test".into()),
                host: std::net::Ipv4Addr::LOCALHOST.into(),
                port: 0,
                routes: vec![seed],
                ..Default::default()
            })
    })
    .await;
    let all = [nodes[0].handle(), nodes[1].handle(), joined.handle()];
    wait_for_routes(&all, 2).await;
    let mut on_new = client(&joined).await.subscribe("after.join").await.unwrap();
    until_received(&client(&nodes[1]).await, &mut on_new, "after.join").await;
}

/// Creates stream `name` on `subject` through `js`, retrying while the JetStream API's
/// interest is still on its way to this client's node.
pub(crate) async fn create_stream_across(
    js: &async_nats::jetstream::Context,
    name: &str,
    subject: &str,
) -> async_nats::jetstream::stream::Stream {
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let r = js
            .create_stream(async_nats::jetstream::stream::Config {
                name: name.into(),
                subjects: vec![subject.into()],
                ..Default::default()
            })
            .await;
        match r {
            Ok(s) => return s,
            Err(e) => assert!(tokio::time::Instant::now() < deadline, "{e}"),
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// A stream on the JetStream node reached from two other nodes' clients: created through
/// `n1`'s, published to through `n2`'s (PubAcks back), pulled and acked through `n1`'s
/// (deliveries show the stored subject across the route: nats-server's `@` encoding).
pub(crate) async fn jetstream_across(n1: async_nats::Client, n2: async_nats::Client) {
    use async_nats::jetstream::{self, consumer::pull};
    let js1 = jetstream::new(n1.clone());
    let js2 = jetstream::new(n2.clone());
    let created = create_stream_across(&js1, "ORDERS", "orders.>").await;
    assert_eq!(created.cached_info().config.name, "ORDERS");
    for i in 0..20 {
        let ack = js2
            .publish(format!("orders.{i}"), "x".into())
            .await
            .unwrap()
            .await
            .unwrap();
        assert_eq!(ack.sequence, i + 1);
    }
    let consumer = js1
        .get_stream("ORDERS")
        .await
        .unwrap()
        .create_consumer(pull::Config {
            durable_name: Some("worker".into()),
            ..Default::default()
        })
        .await
        .unwrap();
    let mut msgs = consumer.fetch().max_messages(20).messages().await.unwrap();
    let mut subjects = Vec::new();
    while let Some(m) = tokio::time::timeout(WAIT, msgs.next())
        .await
        .expect("deliveries")
    {
        let m = m.unwrap();
        subjects.push(m.subject.to_string());
        m.double_ack().await.unwrap();
    }
    let want: Vec<String> = (0..20).map(|i| format!("orders.{i}")).collect();
    assert_eq!(subjects, want, "stored subjects, in order");
    let mut c = js2
        .get_stream("ORDERS")
        .await
        .unwrap()
        .get_consumer::<pull::Config>("worker")
        .await
        .unwrap();
    assert_eq!(c.info().await.unwrap().ack_floor.stream_sequence, 20);
}

#[tokio::test]
async fn one_jetstream_node_serves_the_whole_cluster() {
    // JetStream on node 0 only (JetStream is not clustered yet): clients of the other
    // nodes reach its API, publish into its stream, pull and ack over the routes.
    let nodes = petrel_testkit::spawn_cluster_with(
        3,
        |b, i, dir| if i == 0 { b.jetstream(dir) } else { b },
    )
    .await;
    jetstream_across(client(&nodes[1]).await, client(&nodes[2]).await).await;
}

#[tokio::test]
async fn interest_stays_exact_under_subscription_churn() {
    use std::collections::BTreeSet;
    // Two clients per node subscribe and unsubscribe at random (plain and queue, some
    // subjects shared across nodes); once they stop, every node's view of each peer's
    // interest (/routez) equals what that peer's clients hold: nothing leaked, nothing lost.
    let nodes = petrel_testkit::spawn_cluster_with(3, |b, _, _| b.http_port(0)).await;
    let mut rng = fastrand::Rng::with_seed(15);
    let mut held: Vec<Vec<BTreeSet<String>>> = vec![vec![BTreeSet::new(); 2]; 3];
    let mut tasks = Vec::new();
    for (node, slots) in nodes.iter().zip(held.iter_mut()) {
        for slot in slots.iter_mut() {
            let client = client(node).await;
            let mut ops = Vec::new();
            for _ in 0..150 {
                ops.push((rng.u8(..8), rng.bool(), rng.u8(..3)));
            }
            // Replay the ops here to know the end state (the client keeps the latest
            // subscription per key; an unsubscribe drops it).
            let mut open: std::collections::HashMap<String, async_nats::Subscriber> =
                std::collections::HashMap::new();
            let mut keys = BTreeSet::new();
            let mut plan = Vec::new();
            for (s, subscribe, q) in ops {
                let key = if q == 0 {
                    format!("stress.{s}")
                } else {
                    format!("stress.{s} g{q}")
                };
                plan.push((key.clone(), subscribe));
                if subscribe {
                    keys.insert(key);
                } else {
                    keys.remove(&key);
                }
            }
            *slot = keys;
            tasks.push(tokio::spawn(async move {
                for (key, subscribe) in plan {
                    if subscribe {
                        if open.contains_key(&key) {
                            continue;
                        }
                        let sub = match key.split_once(' ') {
                            Some((s, q)) => {
                                client.queue_subscribe(s.to_string(), q.to_string()).await
                            }
                            None => client.subscribe(key.clone()).await,
                        };
                        open.insert(key, sub.unwrap());
                    } else if let Some(mut sub) = open.remove(&key) {
                        sub.unsubscribe().await.unwrap();
                    }
                }
                client.flush().await.unwrap();
                (client, open)
            }));
        }
    }
    let mut keep = Vec::new();
    for t in tasks {
        keep.push(t.await.unwrap());
    }
    // Each node's expected interest: the union of its clients' keys.
    let local: Vec<BTreeSet<String>> = held
        .iter()
        .map(|cs| cs.iter().flatten().cloned().collect())
        .collect();
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let mut ok = true;
        let mut seen = Vec::new();
        for node in &nodes {
            let r = petrel_testkit::http_get(node.monitor_addr().unwrap(), "/routez?subs=1")
                .await
                .unwrap();
            let v: serde_json::Value = serde_json::from_str(&r.body).unwrap();
            for route in v["routes"].as_array().unwrap() {
                let peer = nodes
                    .iter()
                    .position(|n| n.handle().server_id() == route["remote_id"].as_str().unwrap())
                    .unwrap();
                let got: BTreeSet<String> = route["subscriptions_list"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .filter_map(|s| s.as_str()?.strip_prefix("$G "))
                    .filter(|s| s.starts_with("stress."))
                    .map(str::to_string)
                    .collect();
                ok &= got == local[peer];
                seen.push((peer, got));
            }
        }
        if ok {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "interest did not converge: want {local:?}, seen {seen:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    drop(keep);
}
