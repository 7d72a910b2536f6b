//! The 2.12 write paths on R3 streams, through async-nats on three in-process nodes: an
//! atomic batch staged on the stream leader is stored by one group entry (all replicas or
//! none), counter totals are computed alike on every replica, so the next leader carries
//! on from the same total, and a repeating schedule keeps firing under the next leader.

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
