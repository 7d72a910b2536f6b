//! Counter streams (nats-server 2.12, `allow_msg_counter`) through async-nats: `Nats-Incr`
//! increments of any size add up per subject, the PubAck and the stored body carry the
//! total, bad increments and configs get 2.15.1's errors, a counter survives a restart, and
//! a counter stream sourcing two others adds their totals.

use std::time::Duration;

use async_nats::jetstream::{self, stream};
use petrel_testkit::TestServer;
use serde_json::Value;

use crate::support::{config, request_json};

async fn boot(dir: &std::path::Path) -> TestServer {
    let dir = dir.to_path_buf();
    petrel_testkit::spawn_with(move |b| b.jetstream(&dir)).await
}

fn counter_config(name: &str, subjects: &[&str]) -> stream::Config {
    stream::Config {
        allow_message_counter: true,
        ..config(name, subjects)
    }
}

/// The total stored as the newest message of `subject`.
async fn total(stream: &stream::Stream, subject: &str) -> String {
    let m = stream
        .get_last_raw_message_by_subject(subject)
        .await
        .unwrap();
    let v: Value = serde_json::from_slice(&m.payload).unwrap();
    v["val"].as_str().unwrap().to_string()
}

#[tokio::test]
async fn increments_add_up_per_subject_and_bad_ones_get_the_server_errors() {
    let dir = tempfile::tempdir().unwrap();
    let s = boot(dir.path()).await;
    let nc = async_nats::connect(s.client_url()).await.unwrap();
    let js = jetstream::new(nc.clone());
    let stream = js
        .create_stream(counter_config("C", &["c.>"]))
        .await
        .unwrap();
    assert!(stream.cached_info().config.allow_message_counter);
    js.create_stream(config("N", &["n.>"])).await.unwrap();

    // Config errors, as nats-server 2.15.1.
    for (mut cfg, want) in [
        (
            stream::Config {
                discard: stream::DiscardPolicy::New,
                ..counter_config("B", &["b.>"])
            },
            "counter stream cannot use discard new",
        ),
        (
            stream::Config {
                allow_message_ttl: true,
                ..counter_config("B", &["b.>"])
            },
            "counter stream cannot use message TTLs",
        ),
        (
            stream::Config {
                retention: stream::RetentionPolicy::WorkQueue,
                ..counter_config("B", &["b.>"])
            },
            "counter stream can only use limits retention",
        ),
        (
            config("C", &["c.>"]),
            "stream configuration update can not change message counter setting",
        ),
    ] {
        let e = if cfg.name == "C" {
            cfg.allow_message_counter = false;
            js.update_stream(cfg).await.unwrap_err().to_string()
        } else {
            js.create_stream(cfg).await.unwrap_err().to_string()
        };
        assert!(e.contains(want), "{e}");
    }

    let ack = js
        .publish_with_headers("c.a", headers(&[("Nats-Incr", "5")]), "".into())
        .await
        .unwrap()
        .await
        .unwrap();
    assert_eq!(ack.value.as_deref(), Some("5"));
    assert_eq!(
        request_json(&nc, "c.a", &[("Nats-Incr", "-7")], "").await["val"],
        "-2"
    );
    assert_eq!(
        request_json(&nc, "c.a", &[("Nats-Incr", "+3")], "").await["val"],
        "1"
    );
    let big = request_json(
        &nc,
        "c.a",
        &[("Nats-Incr", "123456789012345678901234567890")],
        "",
    )
    .await;
    assert_eq!(big["val"], "123456789012345678901234567891");
    assert_eq!(
        request_json(&nc, "c.b", &[("Nats-Incr", "00012")], "").await["val"],
        "12"
    );
    assert_eq!(
        total(&stream, "c.a").await,
        "123456789012345678901234567891"
    );
    let stored = stream.get_last_raw_message_by_subject("c.a").await.unwrap();
    assert_eq!(
        stored.headers.get("Nats-Incr").map(|v| v.as_str()),
        Some("123456789012345678901234567890")
    );

    for (subject, h, body, code) in [
        ("n.x", vec![("Nats-Incr", "1")], "", 10168),
        ("c.a", vec![("Nats-Incr", "1")], "x", 10170),
        ("c.a", vec![("Nats-Incr", "abc")], "", 10171),
        ("c.a", vec![("Nats-Incr", "1.5")], "", 10171),
        ("c.a", vec![("Nats-Incr", "1_000")], "", 10171),
        (
            "c.a",
            vec![("Nats-Incr", "1"), ("Nats-Rollup", "sub")],
            "",
            10171,
        ),
        (
            "c.a",
            vec![("Nats-Incr", "1"), ("Nats-Expected-Last-Sequence", "3")],
            "",
            10171,
        ),
        ("c.a", vec![], "", 10169),
        ("c.a", vec![("Nats-Incr", "")], "", 10169),
    ] {
        let r = request_json(&nc, subject, &h, body).await;
        assert_eq!(r["error"]["err_code"], code, "{h:?}: {r}");
    }
    // Only sourcing stores a Nats-Stream-Source header: a client claiming one (to have its
    // total taken as a source's) is refused, 10227 as nats-server 2.15.1 does for any
    // stream (for this counter stream it says 10170 first: the body is not empty).
    for (subject, body) in [("c.a", r#"{"val":"100"}"#), ("n.a", "x")] {
        let r = request_json(
            &nc,
            subject,
            &[("Nats-Incr", "100"), ("Nats-Stream-Source", "X 1 > > c.a")],
            body,
        )
        .await;
        assert_eq!(r["error"]["err_code"], 10227, "{r}");
    }
    assert_eq!(
        total(&stream, "c.a").await,
        "123456789012345678901234567891"
    );
    // With a message id, a retried increment counts once.
    let first = request_json(&nc, "c.b", &[("Nats-Incr", "1"), ("Nats-Msg-Id", "m1")], "").await;
    assert_eq!(first["val"], "13");
    let again = request_json(&nc, "c.b", &[("Nats-Incr", "1"), ("Nats-Msg-Id", "m1")], "").await;
    assert_eq!(again["duplicate"], true);
    assert_eq!(total(&stream, "c.b").await, "13");

    // The totals survive a restart.
    nc.drain().await.unwrap();
    s.shutdown().await;
    let s = boot(dir.path()).await;
    let nc = async_nats::connect(s.client_url()).await.unwrap();
    assert_eq!(
        request_json(&nc, "c.b", &[("Nats-Incr", "7")], "").await["val"],
        "20"
    );
}

fn headers(pairs: &[(&str, &str)]) -> async_nats::HeaderMap {
    let mut h = async_nats::HeaderMap::new();
    for (k, v) in pairs {
        h.insert(*k, *v);
    }
    h
}

#[tokio::test]
async fn a_counter_stream_adds_the_totals_of_the_counters_it_sources() {
    let dir = tempfile::tempdir().unwrap();
    let s = boot(dir.path()).await;
    let nc = async_nats::connect(s.client_url()).await.unwrap();
    let js = jetstream::new(nc.clone());
    js.create_stream(counter_config("EU", &["eu.hits"]))
        .await
        .unwrap();
    js.create_stream(counter_config("US", &["us.hits"]))
        .await
        .unwrap();
    for (subject, n) in [("eu.hits", "3"), ("us.hits", "10"), ("eu.hits", "4")] {
        assert!(request_json(&nc, subject, &[("Nats-Incr", n)], "").await["seq"].is_u64());
    }
    let source = |name: &str, from: &str| stream::Source {
        name: name.into(),
        subject_transforms: vec![stream::SubjectTransform {
            source: from.into(),
            destination: "all.hits".into(),
        }],
        ..Default::default()
    };
    let mut global = stream::Config {
        sources: Some(vec![source("EU", "eu.hits"), source("US", "us.hits")]),
        ..counter_config("ALL", &[])
    };
    global.subjects = vec![];
    let all = js.create_stream(global).await.unwrap();
    // EU's 3 and 7, US's 10: the aggregate is 7 + 10.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    loop {
        if let Ok(m) = all.get_last_raw_message_by_subject("all.hits").await {
            let v: Value = serde_json::from_slice(&m.payload).unwrap();
            if v["val"] == "17" {
                let sources: Value =
                    serde_json::from_str(m.headers.get("Nats-Counter-Sources").unwrap().as_str())
                        .unwrap();
                assert_eq!(sources["EU"]["eu.hits"], "7", "{sources}");
                assert_eq!(sources["US"]["us.hits"], "10", "{sources}");
                break;
            }
            assert!(tokio::time::Instant::now() < deadline, "total {v}");
        }
        assert!(tokio::time::Instant::now() < deadline, "no aggregate");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // A new increment at the origin moves the aggregate by its amount.
    request_json(&nc, "us.hits", &[("Nats-Incr", "-4")], "").await;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    loop {
        let m = all
            .get_last_raw_message_by_subject("all.hits")
            .await
            .unwrap();
        let v: Value = serde_json::from_slice(&m.payload).unwrap();
        if v["val"] == "13" {
            break;
        }
        assert!(tokio::time::Instant::now() < deadline, "total {v}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}
