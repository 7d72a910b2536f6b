//! Work-queue and interest retention on R3 streams, through async-nats on three
//! in-process nodes: the stream leader (where the consumers run) decides what no consumer
//! needs any more and removes it through the group, so every replica drops the same
//! messages; the followers, which run no consumers, never drop anything on their own. After
//! the leader dies, the next one holds exactly what was still needed and its consumers
//! carry on from there.

use std::time::Duration;

use async_nats::jetstream::{self, consumer, stream};
use futures::StreamExt;
use petrel_testkit::TestServer;

use crate::js_cluster::{create, holds, info, publish_acked};

const WAIT: Duration = Duration::from_secs(30);

async fn cluster3() -> Vec<TestServer> {
    petrel_testkit::spawn_cluster_with(3, |b, _, dir| b.jetstream(dir)).await
}

/// A durable pull consumer (explicit acks) on `stream`, created or looked up again,
/// retrying while the stream's leadership moves.
async fn durable(
    js: &jetstream::Context,
    stream: &str,
    name: &str,
    filter: &str,
) -> consumer::PullConsumer {
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        if let Ok(s) = js.get_stream(stream).await {
            let cfg = consumer::pull::Config {
                durable_name: Some(name.into()),
                filter_subject: filter.into(),
                ack_wait: Duration::from_secs(2),
                ..Default::default()
            };
            if let Ok(c) = s.get_or_create_consumer(name, cfg).await {
                return c;
            }
        }
        assert!(tokio::time::Instant::now() < deadline, "no consumer {name}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Fetches until the stream sequences `want` were all delivered, acking each (with
/// confirmation) when `ack(seq)`; every sequence delivered.
async fn take(
    c: &consumer::PullConsumer,
    want: std::ops::RangeInclusive<u64>,
    ack: impl Fn(u64) -> bool,
) -> Vec<u64> {
    let deadline = tokio::time::Instant::now() + WAIT;
    let mut seen = Vec::new();
    while !want.clone().all(|s| seen.contains(&s)) {
        assert!(tokio::time::Instant::now() < deadline, "missing: {seen:?}");
        let Ok(mut batch) = c
            .fetch()
            .max_messages(64)
            .expires(Duration::from_secs(1))
            .messages()
            .await
        else {
            continue;
        };
        while let Some(Ok(m)) = batch.next().await {
            let seq = m.info().unwrap().stream_sequence;
            if !seen.contains(&seq) {
                seen.push(seq);
            }
            if ack(seq) {
                m.double_ack().await.unwrap();
            }
        }
    }
    seen
}

/// Shuts down the node leading `name` (the first node shut down); the others remain.
async fn kill_leader(nodes: &mut Vec<TestServer>, js: &jetstream::Context, name: &str) {
    let leader = info(js, name).await.cluster.unwrap().leader.unwrap();
    // Nodes are named node-<index>; this is the first node removed.
    let at: usize = leader.trim_start_matches("node-").parse().unwrap();
    nodes.remove(at).shutdown().await;
}

/// Kills the leader of `name`; on the next one the stream holds `held` messages from
/// `first` to `last`, and the durable `(consumer, filter)` delivers them up to `until`,
/// none acked before again; once they are acked the stream is empty. A client of the
/// remaining nodes.
async fn next_leader_resumes(
    nodes: &mut Vec<TestServer>,
    js: &jetstream::Context,
    name: &str,
    (first, last, held): (u64, u64, u64),
    (consumer, filter): (&str, &str),
    until: u64,
) -> jetstream::Context {
    kill_leader(nodes, js, name).await;
    let js = jetstream::new(async_nats::connect(nodes[0].client_url()).await.unwrap());
    let i = holds(&js, name, held).await;
    assert_eq!(
        (i.state.first_sequence, i.state.last_sequence),
        (first, last)
    );
    let c = durable(&js, name, consumer, filter).await;
    let seen = take(&c, first..=until, |_| true).await;
    assert!(
        seen.iter().all(|s| *s >= first),
        "acked messages came again: {seen:?}"
    );
    holds(&js, name, 0).await;
    js
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_r3_work_queue_removes_acked_messages_on_every_replica() {
    let mut nodes = cluster3().await;
    let js = jetstream::new(async_nats::connect(nodes[0].client_url()).await.unwrap());
    create(
        &js,
        stream::Config {
            name: "WQ".into(),
            subjects: vec!["wq.>".into()],
            retention: stream::RetentionPolicy::WorkQueue,
            num_replicas: 3,
            ..Default::default()
        },
    )
    .await;
    for i in 1..=20u64 {
        assert_eq!(
            publish_acked(&js, &format!("wq.{i}"), &format!("w{i}"), "x").await,
            i
        );
    }
    let worker = durable(&js, "WQ", "worker", "").await;
    // A work queue takes one consumer per message, as on one node.
    let err = js
        .get_stream("WQ")
        .await
        .unwrap()
        .create_consumer(consumer::pull::Config {
            durable_name: Some("other".into()),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert!(
        err.to_string()
            .contains("multiple non-filtered consumers not allowed on workqueue stream"),
        "{err}"
    );
    take(&worker, 1..=10, |s| s <= 10).await;
    let i = holds(&js, "WQ", 10).await;
    assert_eq!(i.state.first_sequence, 11, "{i:?}");
    // The next leader holds what is still queued, and nothing acked comes again.
    let js = next_leader_resumes(&mut nodes, &js, "WQ", (11, 20, 10), ("worker", ""), 20).await;
    assert_eq!(publish_acked(&js, "wq.21", "w21", "x").await, 21);
    holds(&js, "WQ", 1).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_r3_interest_stream_keeps_what_a_consumer_still_needs() {
    let mut nodes = cluster3().await;
    let js = jetstream::new(async_nats::connect(nodes[0].client_url()).await.unwrap());
    create(
        &js,
        stream::Config {
            name: "INT".into(),
            subjects: vec!["int.>".into()],
            retention: stream::RetentionPolicy::Interest,
            num_replicas: 3,
            ..Default::default()
        },
    )
    .await;
    // Nobody is interested yet: acknowledged, then gone.
    assert_eq!(publish_acked(&js, "int.x", "early", "x").await, 1);
    holds(&js, "INT", 0).await;
    let all = durable(&js, "INT", "all", "int.>").await;
    let xs = durable(&js, "INT", "xs", "int.x").await;
    for i in 2..=11u64 {
        assert_eq!(publish_acked(&js, "int.x", &format!("x{i}"), "x").await, i);
    }
    // Only `all` wants int.y.
    assert_eq!(publish_acked(&js, "int.y", "y12", "y").await, 12);
    take(&all, 2..=12, |_| true).await;
    // `xs` still needs 2..=11; int.y went once `all` acked it.
    holds(&js, "INT", 10).await;
    take(&xs, 2..=6, |s| s <= 6).await;
    let i = holds(&js, "INT", 5).await;
    assert_eq!(i.state.first_sequence, 7, "{i:?}");
    // The followers ran no consumers and removed only what the leader decided: the next
    // leader still has 7..=11 for `xs`.
    let js = next_leader_resumes(&mut nodes, &js, "INT", (7, 12, 5), ("xs", "int.x"), 11).await;
    // With one consumer left, deleting it leaves nothing anybody needs.
    assert_eq!(publish_acked(&js, "int.x", "x13", "x").await, 13);
    holds(&js, "INT", 1).await;
    let s = js.get_stream("INT").await.unwrap();
    s.delete_consumer("xs").await.unwrap();
    // `all` still needs it: delivered (not acked) after `xs` left.
    let all = durable(&js, "INT", "all", "int.>").await;
    take(&all, 13..=13, |_| false).await;
    s.delete_consumer("all").await.unwrap();
    holds(&js, "INT", 0).await;
}

/// Per-message TTLs on an R3 stream with subject delete markers: every replica tracks the
/// timers as it applies the messages, so when the stream leader dies before they are due
/// the next leader removes what is due and stores the marker, through the group.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ttls_and_markers_carry_on_under_the_next_leader() {
    let mut nodes = cluster3().await;
    let js0 = jetstream::new(async_nats::connect(nodes[0].client_url()).await.unwrap());
    create(
        &js0,
        stream::Config {
            name: "SESS".into(),
            subjects: vec!["sess.>".into()],
            num_replicas: 3,
            subject_delete_marker_ttl: Some(Duration::from_secs(8)),
            ..Default::default()
        },
    )
    .await;
    let i = info(&js0, "SESS").await;
    assert!(i.config.allow_message_ttl);
    let leader = i.cluster.unwrap().leader.unwrap();
    // TTLs at the markers' own (a shorter one would be raised to it): sess.a's only
    // message, and sess.b's older one.
    let mut h = async_nats::HeaderMap::new();
    h.insert("Nats-TTL", "8");
    let a = js0
        .publish_with_headers("sess.a", h.clone(), "a".into())
        .await
        .unwrap()
        .await
        .unwrap()
        .sequence;
    js0.publish_with_headers("sess.b", h, "b1".into())
        .await
        .unwrap()
        .await
        .unwrap();
    js0.publish("sess.b", "b2".into())
        .await
        .unwrap()
        .await
        .unwrap();

    let dead: usize = leader.trim_start_matches("node-").parse().unwrap();
    nodes.remove(dead).shutdown().await;
    let js = jetstream::new(async_nats::connect(nodes[0].client_url()).await.unwrap());
    // sess.a's message is replaced by a marker (living 8 s), sess.b keeps its newer one.
    info(&js, "SESS").await;
    let s = js.get_stream("SESS").await.unwrap();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    while !matches!(s.get_last_raw_message_by_subject("sess.a").await, Ok(m) if m.sequence > a) {
        assert!(
            tokio::time::Instant::now() < deadline,
            "no marker for sess.a"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_ne!(
        info(&js, "SESS").await.cluster.unwrap().leader.unwrap(),
        leader
    );
    holds(&js, "SESS", 2).await;
    let m = s.get_last_raw_message_by_subject("sess.a").await.unwrap();
    assert_eq!(
        m.headers.get("Nats-Marker-Reason").map(|v| v.as_str()),
        Some("MaxAge")
    );
    let b = s.get_last_raw_message_by_subject("sess.b").await.unwrap();
    assert_eq!(&b.payload[..], b"b2");
}
