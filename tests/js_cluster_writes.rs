//! The 2.12 write paths on R3 streams, through async-nats on three in-process nodes: an
//! atomic batch staged on the stream leader is stored by one group entry (all replicas or
//! none), counter totals are computed alike on every replica, so the next leader carries
//! on from the same total, and a repeating schedule keeps firing under the next leader.
//! A stream deleted and created again at once takes publishes as soon as the create is
//! answered.

use std::time::Duration;

use async_nats::jetstream::{self, stream};
use petrel_testkit::TestServer;
use serde_json::Value;

use crate::js_cluster::{create, holds, info};

async fn cluster3() -> Vec<TestServer> {
    petrel_testkit::spawn_cluster_with(3, |b, _, dir| b.jetstream(dir)).await
}

/// A request with these headers, retried while the stream's leadership settles; the reply
/// body.
async fn request(nc: &async_nats::Client, subject: &str, h: &[(&str, &str)]) -> Vec<u8> {
    let mut headers = async_nats::HeaderMap::new();
    for (k, v) in h {
        headers.insert(*k, *v);
    }
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        let sent = nc.request_with_headers(subject.to_string(), headers.clone(), "".into());
        if let Ok(Ok(r)) = tokio::time::timeout(Duration::from_secs(3), sent).await {
            return r.payload.to_vec();
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "no reply on {subject}"
        );
    }
}

/// Waits for a fired message on `sch.tick` newer than `seq`; its sequence.
async fn fired_after(stream: &stream::Stream, seq: u64) -> u64 {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        if let Ok(m) = stream.get_last_raw_message_by_subject("sch.tick").await {
            if m.sequence > seq {
                return m.sequence;
            }
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "nothing fired after {seq}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn atomic_batches_counters_and_schedules_replicate() {
    let mut nodes = cluster3().await;
    let nc = async_nats::connect(nodes[0].client_url()).await.unwrap();
    let js = jetstream::new(nc.clone());
    create(
        &js,
        stream::Config {
            name: "AB".into(),
            subjects: vec!["ab.>".into()],
            num_replicas: 3,
            allow_atomic_publish: true,
            ..Default::default()
        },
    )
    .await;
    create(
        &js,
        stream::Config {
            name: "CNT".into(),
            subjects: vec!["cnt.>".into()],
            num_replicas: 3,
            allow_message_counter: true,
            ..Default::default()
        },
    )
    .await;
    create(
        &js,
        stream::Config {
            name: "SCH".into(),
            subjects: vec!["sch.>".into()],
            num_replicas: 3,
            allow_message_schedules: true,
            ..Default::default()
        },
    )
    .await;
    info(&js, "AB").await;
    let leader = info(&js, "CNT").await.cluster.unwrap().leader.unwrap();
    let sch_leader = info(&js, "SCH").await.cluster.unwrap().leader.unwrap();
    request(
        &nc,
        "sch.every",
        &[
            ("Nats-Schedule", "@every 1s"),
            ("Nats-Schedule-Target", "sch.tick"),
        ],
    )
    .await;
    let sch = js.get_stream("SCH").await.unwrap();
    let before = fired_after(&sch, 0).await;
    // The schedule stream's leader hands over; the next one keeps firing.
    let r = request(&nc, "$JS.API.STREAM.LEADER.STEPDOWN.SCH", &[]).await;
    let v: Value = serde_json::from_slice(&r).unwrap();
    assert_eq!(v["success"], true, "{v}");
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    while info(&js, "SCH").await.cluster.unwrap().leader.unwrap() == sch_leader {
        assert!(tokio::time::Instant::now() < deadline, "no new leader");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let sch = js.get_stream("SCH").await.unwrap();
    let settled = fired_after(&sch, before).await;
    fired_after(&sch, settled).await;

    for seq in 1..=4u64 {
        let seq_s = seq.to_string();
        let mut h = vec![
            ("Nats-Batch-Id", "rb"),
            ("Nats-Batch-Sequence", seq_s.as_str()),
        ];
        if seq == 4 {
            h.push(("Nats-Batch-Commit", "1"));
        }
        let body = request(&nc, "ab.x", &h).await;
        if seq < 4 {
            assert!(body.is_empty(), "{}", String::from_utf8_lossy(&body));
        } else {
            let v: Value = serde_json::from_slice(&body).unwrap();
            assert_eq!(v["batch"], "rb", "{v}");
            assert_eq!(v["count"], 4, "{v}");
        }
    }
    holds(&js, "AB", 4).await;
    // Message ids keep a retried increment from counting twice.
    for n in ["5", "7"] {
        request(&nc, "cnt.hits", &[("Nats-Incr", n), ("Nats-Msg-Id", n)]).await;
    }

    // The leader of CNT goes; the next one has the batch and the total.
    let dead: usize = leader.trim_start_matches("node-").parse().unwrap();
    nodes.remove(dead).shutdown().await;
    let nc = async_nats::connect(nodes[0].client_url()).await.unwrap();
    let js = jetstream::new(nc.clone());
    let after = info(&js, "CNT").await;
    assert_ne!(after.cluster.unwrap().leader.unwrap(), leader);
    let v: Value = serde_json::from_slice(
        &request(&nc, "cnt.hits", &[("Nats-Incr", "1"), ("Nats-Msg-Id", "1")]).await,
    )
    .unwrap();
    assert_eq!(v["val"], "13", "{v}");
    let ab = holds(&js, "AB", 4).await;
    assert_eq!(ab.state.last_sequence, 4);
}

/// The create of a stream deleted a moment before answers once the new group has a
/// leader — not the old group's replica, still on the node — and the group's first
/// member campaigns alone (no split first vote): a publish sent right after the answer,
/// through any node, is acknowledged without a retry.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stream_created_again_right_after_its_delete_takes_publishes_at_once() {
    let nodes = cluster3().await;
    let mut clients = Vec::new();
    for n in &nodes {
        let nc = async_nats::connect(n.client_url()).await.unwrap();
        clients.push(jetstream::new(nc));
    }
    let cfg = stream::Config {
        name: "AGAIN".into(),
        subjects: vec!["again.>".into()],
        num_replicas: 3,
        ..Default::default()
    };
    create(&clients[0], cfg.clone()).await;
    for round in 0..6usize {
        let js = &clients[round % 3];
        let ack = js
            .publish(format!("again.{round}"), "x".into())
            .await
            .expect("published");
        let ack = tokio::time::timeout(Duration::from_secs(5), ack)
            .await
            .unwrap_or_else(|_| panic!("round {round}: no PubAck"))
            .unwrap_or_else(|e| panic!("round {round}: {e}"));
        assert_eq!(ack.sequence, 1, "round {round}");
        js.delete_stream("AGAIN").await.expect("deleted");
        js.create_stream(cfg.clone())
            .await
            .expect("created again at once");
    }
}
