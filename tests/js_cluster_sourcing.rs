//! Mirrors and sources on R3 streams, through async-nats on three in-process nodes: the
//! sourcing stream's leader moves the messages through its group (every replica stores
//! the same ones), reading an origin from its own replica of it, or through the API when
//! its node holds none (an R1 origin on another node). After the leadership moves, the
//! new leader goes on from what the group stored: nothing is taken twice or skipped.

use std::collections::BTreeSet;

use async_nats::jetstream::{self, stream};

use crate::js_cluster::{create, holds, info, publish_acked};
use crate::js_cluster_snapshots::lead;

/// The `Nats-Stream-Source` origin and sequence of every message of `name` (1..=last),
/// asserting none came twice.
async fn sources_of(js: &jetstream::Context, name: &str, last: u64) -> BTreeSet<(String, u64)> {
    let s = js.get_stream(name).await.unwrap();
    let mut seen = BTreeSet::new();
    for seq in 1..=last {
        let m = s.get_raw_message(seq).await.unwrap();
        let h = m
            .headers
            .get("Nats-Stream-Source")
            .expect("a source header");
        let f: Vec<&str> = h.as_str().split(' ').collect();
        let key = (f[0].to_string(), f[1].parse().unwrap());
        assert!(seen.insert(key.clone()), "{key:?} stored twice in {name}");
    }
    seen
}

fn expected(orders: u64, local: u64) -> BTreeSet<(String, u64)> {
    let o = (1..=orders).map(|s| ("ORDERS".to_string(), s));
    o.chain((1..=local).map(|s| ("LOCAL".to_string(), s)))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn r3_mirrors_and_sources_move_every_message_once_across_leader_changes() {
    let nodes = petrel_testkit::spawn_cluster_with(3, |b, _, dir| b.jetstream(dir)).await;
    let nc = async_nats::connect(nodes[0].client_url()).await.unwrap();
    let js = jetstream::new(nc.clone());
    let cfg = |name: &str, subjects: &[&str], replicas| stream::Config {
        name: name.into(),
        subjects: subjects.iter().map(|s| s.to_string()).collect(),
        num_replicas: replicas,
        ..Default::default()
    };
    create(&js, cfg("ORDERS", &["orders.>"], 3)).await;
    create(&js, cfg("LOCAL", &["local.>"], 1)).await;
    let mut mirror = cfg("M", &[], 3);
    mirror.mirror = Some(stream::Source {
        name: "ORDERS".into(),
        ..Default::default()
    });
    create(&js, mirror).await;
    let sourcing = |origins: &[&str]| {
        let mut agg = cfg("AGG", &[], 3);
        agg.sources = Some(
            origins
                .iter()
                .map(|n| stream::Source {
                    name: n.to_string(),
                    ..Default::default()
                })
                .collect(),
        );
        agg
    };
    create(&js, sourcing(&["ORDERS", "LOCAL"])).await;
    for i in 1..=20u64 {
        assert_eq!(
            publish_acked(&js, &format!("orders.{i}"), &format!("o{i}"), "o").await,
            i
        );
    }
    for i in 1..=10u64 {
        assert_eq!(
            publish_acked(&js, &format!("local.{i}"), &format!("l{i}"), "l").await,
            i
        );
    }
    let m = holds(&js, "M", 20).await;
    assert_eq!((m.state.first_sequence, m.state.last_sequence), (1, 20));
    holds(&js, "AGG", 30).await;
    assert_eq!(sources_of(&js, "AGG", 30).await, expected(20, 10));
    // The sourcing streams' leadership moves to a node without a replica of LOCAL: it
    // reads LOCAL through the API and goes on from what the group stored.
    let local_node = info(&js, "LOCAL").await.cluster.unwrap().leader.unwrap();
    let agg_leader = info(&js, "AGG").await.cluster.unwrap().leader.unwrap();
    let target = (0..3)
        .map(|i| format!("node-{i}"))
        .find(|n| *n != local_node && *n != agg_leader)
        .expect("a third node");
    lead(&nc, &js, "AGG", &target).await;
    let m_leader = info(&js, "M").await.cluster.unwrap().leader.unwrap();
    let m_target = (0..3)
        .map(|i| format!("node-{i}"))
        .find(|n| *n != m_leader)
        .unwrap();
    lead(&nc, &js, "M", &m_target).await;
    for i in 21..=30u64 {
        assert_eq!(
            publish_acked(&js, &format!("orders.{i}"), &format!("o{i}"), "o").await,
            i
        );
    }
    for i in 11..=20u64 {
        assert_eq!(
            publish_acked(&js, &format!("local.{i}"), &format!("l{i}"), "l").await,
            i
        );
    }
    let m = holds(&js, "M", 30).await;
    assert_eq!((m.state.first_sequence, m.state.last_sequence), (1, 30));
    let mm = js.get_stream("M").await.unwrap();
    for seq in [1u64, 20, 21, 30] {
        let msg = mm.get_raw_message(seq).await.unwrap();
        assert_eq!(msg.subject.as_str(), format!("orders.{seq}"));
    }
    holds(&js, "AGG", 50).await;
    assert_eq!(sources_of(&js, "AGG", 50).await, expected(30, 20));
    // A new source while an origin takes publishes: the leader's tasks restart, the new
    // ones resume after every batch the old ones had in flight.
    let publisher = {
        let js = js.clone();
        tokio::spawn(async move {
            for i in 31..=130u64 {
                publish_acked(&js, &format!("orders.{i}"), &format!("o{i}"), "o").await;
            }
        })
    };
    create(&js, cfg("EXTRA", &["extra.>"], 3)).await;
    for i in 1..=5u64 {
        publish_acked(&js, &format!("extra.{i}"), &format!("e{i}"), "e").await;
    }
    js.update_stream(sourcing(&["ORDERS", "LOCAL", "EXTRA"]))
        .await
        .unwrap();
    publisher.await.unwrap();
    holds(&js, "AGG", 155).await;
    let mut want = expected(130, 20);
    want.extend((1..=5).map(|s| ("EXTRA".to_string(), s)));
    assert_eq!(sources_of(&js, "AGG", 155).await, want);
    for n in nodes {
        n.shutdown().await;
    }
}
