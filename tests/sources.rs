//! Streams that source other streams, through async-nats: aggregation with headers naming
//! the origin, filters and subject transforms, an origin that appears later, a restart
//! without duplicates or gaps, KV buckets sourcing other buckets, and nats-server's
//! configuration errors.

use std::collections::BTreeSet;
use std::time::Duration;

use async_nats::jetstream::{self, kv, stream};
use petrel_testkit::{spawn_jetstream, spawn_with_store};

use crate::support::{api_code, config, publish};

fn source(name: &str) -> stream::Source {
    stream::Source {
        name: name.into(),
        ..Default::default()
    }
}

fn sourcing(name: &str, sources: Vec<stream::Source>) -> stream::Config {
    stream::Config {
        name: name.into(),
        sources: Some(sources),
        ..Default::default()
    }
}

/// Waits until `stream` holds `n` messages.
async fn wait_count(js: &jetstream::Context, stream: &str, n: u64) -> stream::Info {
    let mut s = js.get_stream(stream).await.unwrap();
    for _ in 0..250 {
        let info = s.info().await.unwrap().clone();
        if info.state.messages >= n {
            assert_eq!(info.state.messages, n, "no more than {n}");
            return info;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("{stream} never reached {n} messages");
}

/// Every (origin, origin seq) of the sourced messages, checking none repeats.
async fn origins(js: &jetstream::Context, stream: &str, n: u64) -> BTreeSet<(String, u64)> {
    let s = js.get_stream(stream).await.unwrap();
    let mut seen = BTreeSet::new();
    for seq in 1..=n {
        let m = s.get_raw_message(seq).await.unwrap();
        let h = m.headers.get("Nats-Stream-Source").expect("source header");
        let f: Vec<&str> = h.as_str().split(' ').collect();
        assert!(
            seen.insert((f[0].to_string(), f[1].parse().unwrap())),
            "duplicate {h}"
        );
    }
    seen
}

#[tokio::test]
async fn a_stream_aggregates_its_sources() {
    let s = spawn_jetstream().await;
    let js = jetstream::new(async_nats::connect(s.client_url()).await.unwrap());
    js.create_stream(config("EU", &["orders.eu.>"]))
        .await
        .unwrap();
    js.create_stream(config("US", &["orders.us.>"]))
        .await
        .unwrap();
    publish(&js, "orders.eu.paris", 100).await;
    publish(&js, "orders.us.nyc", 100).await;
    js.create_stream(sourcing("ALL", vec![source("EU"), source("US")]))
        .await
        .unwrap();
    publish(&js, "orders.eu.paris", 50).await;
    let info = wait_count(&js, "ALL", 250).await;
    assert_eq!(info.sources.len(), 2, "{:?}", info.sources);
    let seen = origins(&js, "ALL", 250).await;
    assert_eq!(seen.iter().filter(|(o, _)| o == "EU").count(), 150);
    let m = js
        .get_stream("ALL")
        .await
        .unwrap()
        .get_raw_message(1)
        .await
        .unwrap();
    assert!(m.subject.starts_with("orders."), "{}", m.subject);
    // Lag settles at zero once everything is taken.
    let mut all = js.get_stream("ALL").await.unwrap();
    for _ in 0..100 {
        let info = all.info().await.unwrap();
        if info
            .sources
            .iter()
            .all(|s| s.lag == 0 && s.active.is_some())
        {
            return;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("lag never reached 0");
}

#[tokio::test]
async fn filters_transforms_and_an_origin_that_comes_later() {
    let s = spawn_jetstream().await;
    let nc = async_nats::connect(s.client_url()).await.unwrap();
    let js = jetstream::new(nc.clone());
    let eu_only = stream::Source {
        subject_transforms: vec![stream::SubjectTransform {
            source: "orders.eu.*".into(),
            destination: "eu.{{wildcard(1)}}".into(),
        }],
        ..source("LATER")
    };
    js.create_stream(sourcing("EU", vec![eu_only]))
        .await
        .unwrap();
    let mut eu = js.get_stream("EU").await.unwrap();
    let info = eu.info().await.unwrap();
    assert_eq!(info.sources[0].name, "LATER");
    // As nats-server 2.15 reports a missing origin.
    let raw = nc
        .request("$JS.API.STREAM.INFO.EU", "".into())
        .await
        .unwrap();
    let v: serde_json::Value = serde_json::from_slice(&raw.payload).unwrap();
    let src = &v["sources"][0];
    assert_eq!(src["error"]["err_code"], 10059, "{v}");
    assert!(
        src["active"] == -1 || src["active"].as_i64() > Some(0),
        "{v}"
    );
    js.create_stream(config("LATER", &["orders.>"]))
        .await
        .unwrap();
    publish(&js, "orders.eu.rome", 3).await;
    publish(&js, "orders.us.nyc", 3).await;
    wait_count(&js, "EU", 3).await;
    let m = eu.get_raw_message(1).await.unwrap();
    assert_eq!(m.subject.as_str(), "eu.rome");
}

#[tokio::test]
async fn a_restart_resumes_without_duplicates_or_gaps() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().to_path_buf();
    {
        let p = path.clone();
        let s = spawn_with_store(move |b, _| b.jetstream(p)).await;
        let js = jetstream::new(async_nats::connect(s.client_url()).await.unwrap());
        js.create_stream(config("SRC", &["src.>"])).await.unwrap();
        js.create_stream(sourcing("AGG", vec![source("SRC")]))
            .await
            .unwrap();
        publish(&js, "src.a", 200).await;
        wait_count(&js, "AGG", 200).await;
        s.shutdown().await;
    }
    let p = path.clone();
    let s = spawn_with_store(move |b, _| b.jetstream(p)).await;
    let js = jetstream::new(async_nats::connect(s.client_url()).await.unwrap());
    publish(&js, "src.b", 100).await;
    wait_count(&js, "AGG", 300).await;
    let seen = origins(&js, "AGG", 300).await;
    let seqs: Vec<u64> = seen.iter().map(|(_, s)| *s).collect();
    assert_eq!(seqs, (1..=300).collect::<Vec<_>>());
}

#[tokio::test]
async fn kv_bucket_sourcing_other_buckets() {
    let s = spawn_jetstream().await;
    let js = jetstream::new(async_nats::connect(s.client_url()).await.unwrap());
    for bucket in ["site_a", "site_b"] {
        let kv = js
            .create_key_value(kv::Config {
                bucket: bucket.into(),
                ..Default::default()
            })
            .await
            .unwrap();
        kv.put(format!("{bucket}.status"), "up".into())
            .await
            .unwrap();
    }
    // As nats.go configures KV sources: each bucket's subjects mapped into the aggregate's.
    let from = |b: &str| stream::Source {
        subject_transforms: vec![stream::SubjectTransform {
            source: format!("$KV.{b}.>"),
            destination: "$KV.sites.>".into(),
        }],
        ..source(b)
    };
    let sites = js
        .create_key_value(kv::Config {
            bucket: "sites".into(),
            sources: Some(vec![from("site_a"), from("site_b")]),
            ..Default::default()
        })
        .await
        .unwrap();
    wait_count(&js, "KV_sites", 2).await;
    let v = sites.get("site_b.status").await.unwrap();
    assert_eq!(v.as_deref(), Some(&b"up"[..]));
}

#[tokio::test]
async fn source_configs_nats_server_refuses() {
    let s = spawn_jetstream().await;
    let js = jetstream::new(async_nats::connect(s.client_url()).await.unwrap());
    let dup = sourcing("D", vec![source("X"), source("X")]);
    assert_eq!(api_code(&js.create_stream(dup).await.unwrap_err()), 10140);
    let both = stream::Source {
        filter_subject: Some("a.>".into()),
        subject_transforms: vec![stream::SubjectTransform {
            source: "a.>".into(),
            destination: "b.>".into(),
        }],
        ..source("X")
    };
    assert_eq!(
        api_code(
            &js.create_stream(sourcing("D", vec![both]))
                .await
                .unwrap_err()
        ),
        10144
    );
    let bad_name = source("a.b");
    assert_eq!(
        api_code(
            &js.create_stream(sourcing("D", vec![bad_name]))
                .await
                .unwrap_err()
        ),
        10141
    );
    let external = stream::Source {
        external: Some(stream::External {
            api_prefix: "$JS.other.API".into(),
            delivery_prefix: None,
        }),
        ..source("X")
    };
    // An external origin is taken (reached through its API; tests/external_sources.rs).
    let d = js
        .create_stream(sourcing("D", vec![external]))
        .await
        .unwrap();
    let ext = d.cached_info().config.sources.as_ref().unwrap()[0]
        .external
        .clone();
    assert_eq!(ext.map(|e| e.api_prefix).as_deref(), Some("$JS.other.API"));
    js.delete_stream("D").await.unwrap();
    // Two streams sourcing each other with subjects that overlap: a cycle.
    js.create_stream(stream::Config {
        sources: Some(vec![source("B")]),
        ..config("A", &["a.>"])
    })
    .await
    .unwrap();
    let b = stream::Config {
        sources: Some(vec![source("A")]),
        ..config("B", &["b.>"])
    };
    let e = js.create_stream(b).await.unwrap_err();
    assert_eq!(api_code(&e), 10052);
}
