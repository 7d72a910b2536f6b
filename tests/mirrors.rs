//! Mirrors through async-nats: the same messages under the same sequence numbers (gaps
//! included), following the origin, resuming after a restart, KV mirrors, and
//! nats-server's mirror configuration errors.

use std::time::Duration;

use async_nats::jetstream::{self, kv, stream};
use petrel_testkit::{spawn_jetstream, spawn_with_store};

use crate::support::{api_code, config, publish};

fn mirror_of(name: &str, origin: &str) -> stream::Config {
    stream::Config {
        name: name.into(),
        mirror: Some(stream::Source {
            name: origin.into(),
            ..Default::default()
        }),
        ..Default::default()
    }
}

/// Waits until `stream`'s last sequence is `last`; returns its state.
async fn wait_last(js: &jetstream::Context, stream: &str, last: u64) -> stream::State {
    let mut s = js.get_stream(stream).await.unwrap();
    for _ in 0..250 {
        let st = s.info().await.unwrap().state.clone();
        if st.last_sequence >= last {
            assert_eq!(st.last_sequence, last);
            return st;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("{stream} never reached sequence {last}");
}

#[tokio::test]
async fn a_mirror_keeps_the_origin_sequences_and_follows_it() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().to_path_buf();
    {
        let p = path.clone();
        let s = spawn_with_store(move |b, _| b.jetstream(p)).await;
        let js = jetstream::new(async_nats::connect(s.client_url()).await.unwrap());
        js.create_stream(config("ORDERS", &["orders.>"]))
            .await
            .unwrap();
        publish(&js, "orders.a", 20).await;
        let orders = js.get_stream("ORDERS").await.unwrap();
        for seq in [1, 2, 7, 15] {
            orders.delete_message(seq).await.unwrap();
        }
        js.create_stream(mirror_of("BACKUP", "ORDERS"))
            .await
            .unwrap();
        let st = wait_last(&js, "BACKUP", 20).await;
        assert_eq!((st.messages, st.first_sequence), (16, 3));
        let backup = js.get_stream("BACKUP").await.unwrap();
        for seq in [3, 8, 20] {
            let (a, b) = (
                orders.get_raw_message(seq).await.unwrap(),
                backup.get_raw_message(seq).await.unwrap(),
            );
            assert_eq!(
                (a.subject, a.payload, a.time),
                (b.subject, b.payload, b.time)
            );
        }
        assert!(
            backup.get_raw_message(7).await.is_err(),
            "a gap stays a gap"
        );
        publish(&js, "orders.b", 5).await;
        wait_last(&js, "BACKUP", 25).await;
        let mut b = js.get_stream("BACKUP").await.unwrap();
        let info = b.info().await.unwrap();
        assert_eq!(
            info.mirror.as_ref().map(|m| m.name.as_str()),
            Some("ORDERS")
        );
        s.shutdown().await;
    }
    let p = path.clone();
    let s = spawn_with_store(move |b, _| b.jetstream(p)).await;
    let js = jetstream::new(async_nats::connect(s.client_url()).await.unwrap());
    publish(&js, "orders.c", 3).await;
    let st = wait_last(&js, "BACKUP", 28).await;
    assert_eq!(st.messages, 24, "16 + 5 + 3, nothing twice");
}

#[tokio::test]
async fn kv_mirror_bucket_reads_the_origin_keys() {
    let s = spawn_jetstream().await;
    let js = jetstream::new(async_nats::connect(s.client_url()).await.unwrap());
    let origin = js
        .create_key_value(kv::Config {
            bucket: "config".into(),
            history: 5,
            ..Default::default()
        })
        .await
        .unwrap();
    origin.put("feature.x", "on".into()).await.unwrap();
    origin.put("feature.x", "off".into()).await.unwrap();
    js.create_key_value(kv::Config {
        bucket: "config_replica".into(),
        mirror: Some(stream::Source {
            name: "config".into(),
            ..Default::default()
        }),
        ..Default::default()
    })
    .await
    .unwrap();
    wait_last(&js, "KV_config_replica", 2).await;
    // The mirror keeps the origin's key subjects and revisions; nats.go reads a mirrored
    // bucket with the origin's prefix (async-nats does so only for external mirrors).
    let replica = js.get_stream("KV_config_replica").await.unwrap();
    assert!(replica.cached_info().config.mirror_direct);
    let m = replica
        .direct_get_last_for_subject("$KV.config.feature.x")
        .await
        .unwrap();
    assert_eq!((m.payload.as_ref(), m.sequence), (&b"off"[..], 2));
}

#[tokio::test]
async fn mirror_configs_nats_server_refuses() {
    let s = spawn_jetstream().await;
    let js = jetstream::new(async_nats::connect(s.client_url()).await.unwrap());
    let with_subjects = stream::Config {
        subjects: vec!["x".into()],
        ..mirror_of("M", "O")
    };
    assert_eq!(
        api_code(&js.create_stream(with_subjects).await.unwrap_err()),
        10034
    );
    let with_sources = stream::Config {
        sources: Some(vec![stream::Source {
            name: "S".into(),
            ..Default::default()
        }]),
        ..mirror_of("M", "O")
    };
    assert_eq!(
        api_code(&js.create_stream(with_sources).await.unwrap_err()),
        10031
    );
    let mut both = mirror_of("M", "O");
    if let Some(m) = both.mirror.as_mut() {
        m.start_sequence = Some(5);
        m.start_time = Some(time::OffsetDateTime::now_utc());
    }
    assert_eq!(api_code(&js.create_stream(both).await.unwrap_err()), 10032);
    assert_eq!(
        api_code(&js.create_stream(mirror_of("M", "a.b")).await.unwrap_err()),
        10142
    );
    js.create_stream(config("O", &["o.>"])).await.unwrap();
    js.create_stream(mirror_of("M", "O")).await.unwrap();
    let e = js.update_stream(mirror_of("M", "OTHER")).await.unwrap_err();
    assert!(e.to_string().contains("10055"), "{e}");
}

/// One `DIRECT.GET.<stream>` by sequence: (`Nats-Stream`, `Nats-Sequence` or status).
async fn direct_get(client: &async_nats::Client, stream: &str, seq: u64) -> (String, String) {
    let subject = format!("$JS.API.DIRECT.GET.{stream}");
    let body = format!(r#"{{"seq":{seq}}}"#);
    let m = client.request(subject, body.into()).await.unwrap();
    let h = m.headers.unwrap_or_default();
    let get = |k: &str| h.get(k).map(|v| v.to_string()).unwrap_or_default();
    match m.status {
        Some(s) if s.as_u16() != 200 => (String::new(), s.as_u16().to_string()),
        _ => (get("Nats-Stream"), get("Nats-Sequence")),
    }
}

#[tokio::test]
async fn a_mirror_answers_the_origins_direct_gets() {
    let s = spawn_jetstream().await;
    let client = async_nats::connect(s.client_url()).await.unwrap();
    let js = jetstream::new(client.clone());
    js.create_stream(stream::Config {
        allow_direct: true,
        ..config("O", &["o.>"])
    })
    .await
    .unwrap();
    publish(&js, "o.a", 5).await;
    // As nats-server: a mirror takes mirror_direct from its origin's allow_direct.
    let m = js.create_stream(mirror_of("M", "O")).await.unwrap();
    assert!(m.cached_info().config.mirror_direct);
    wait_last(&js, "M", 5).await;
    // The origin and its caught-up mirror form one queue group: both answer.
    let mut seen = std::collections::BTreeSet::new();
    for _ in 0..500 {
        let (stream, seq) = direct_get(&client, "O", 1).await;
        assert_eq!(seq, "1");
        seen.insert(stream);
        if seen.len() == 2 {
            break;
        }
    }
    assert_eq!(seen, ["M".to_string(), "O".to_string()].into());
    // The mirror still answers for the origin once it is gone.
    js.delete_stream("O").await.unwrap();
    assert_eq!(direct_get(&client, "O", 2).await, ("M".into(), "2".into()));
    assert_eq!(
        direct_get(&client, "O", 9).await,
        (String::new(), "404".into())
    );
    // Mirrors of a stream that does not exist (yet) keep what they were given; without a
    // mirror, mirror_direct is refused.
    let lone = js.create_stream(mirror_of("M2", "NOPE")).await.unwrap();
    assert!(!lone.cached_info().config.mirror_direct);
    let wrong = stream::Config {
        mirror_direct: true,
        ..config("M3", &["m3"])
    };
    let e = js.create_stream(wrong).await.unwrap_err();
    assert_eq!(api_code(&e), 10052);
    assert!(
        e.to_string()
            .contains("stream has no mirror but does have mirror direct"),
        "{e}"
    );
}
