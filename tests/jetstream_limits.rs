//! JetStream stream fields and limits through async-nats, on file and memory storage, with
//! nats-server's API error codes.

use std::time::Duration;

use async_nats::jetstream::{self, context::CreateStreamErrorKind, stream};
use petrel_testkit::spawn_jetstream;

use crate::support::api_code;

const STORAGES: [stream::StorageType; 2] = [stream::StorageType::File, stream::StorageType::Memory];

fn cfg(name: &str, subject: &str, storage: stream::StorageType) -> stream::Config {
    stream::Config {
        name: name.to_string(),
        subjects: vec![subject.to_string()],
        storage,
        ..Default::default()
    }
}

async fn js() -> (petrel_testkit::TestServer, jetstream::Context) {
    let s = spawn_jetstream().await;
    let client = async_nats::connect(s.client_url()).await.unwrap();
    (s, jetstream::new(client))
}

async fn publish(js: &jetstream::Context, subject: &str, body: &str) -> Result<u64, String> {
    match js
        .publish(subject.to_string(), body.to_string().into())
        .await
    {
        Ok(ack) => ack.await.map(|a| a.sequence).map_err(|e| e.to_string()),
        Err(e) => Err(e.to_string()),
    }
}

#[tokio::test]
async fn discard_old_limits_on_both_storages() {
    let (_s, js) = js().await;
    for storage in STORAGES {
        let name = format!("OLD_{storage:?}").to_uppercase();
        let mut st = js
            .create_stream(stream::Config {
                max_messages: 3,
                max_messages_per_subject: 2,
                ..cfg(&name, &format!("{}.>", name.to_lowercase()), storage)
            })
            .await
            .unwrap();
        let p = |s: &str| format!("{}.{s}", name.to_lowercase());
        for (subj, body) in [("a", "1"), ("a", "2"), ("a", "3"), ("b", "4"), ("c", "5")] {
            publish(&js, &p(subj), body).await.unwrap();
        }
        let info = st.info().await.unwrap();
        // Per subject: a keeps 2 and 3; max_msgs 3 then drops the oldest (2).
        assert_eq!(info.state.messages, 3, "{storage:?}");
        assert_eq!(info.state.first_sequence, 3, "{storage:?}");
        assert_eq!(info.state.last_sequence, 5, "{storage:?}");
        assert_eq!(st.get_raw_message(3).await.unwrap().payload, "3");
    }
}

#[tokio::test]
async fn discard_new_and_message_size_errors() {
    let (_s, js) = js().await;
    for storage in STORAGES {
        let name = format!("NEW_{storage:?}").to_uppercase();
        let subject = format!("{}.x", name.to_lowercase());
        js.create_stream(stream::Config {
            max_messages: 1,
            max_message_size: 8,
            discard: stream::DiscardPolicy::New,
            ..cfg(&name, &subject, storage)
        })
        .await
        .unwrap();
        let err = publish(&js, &subject, "way too large").await.unwrap_err();
        assert!(
            err.contains("message size exceeds maximum allowed"),
            "{storage:?}: {err}"
        );
        publish(&js, &subject, "ok").await.unwrap();
        let err = publish(&js, &subject, "no").await.unwrap_err();
        assert!(
            err.contains("maximum messages exceeded"),
            "{storage:?}: {err}"
        );
    }
}

#[tokio::test]
async fn max_age_expires_messages_on_a_timer() {
    let (_s, js) = js().await;
    for storage in STORAGES {
        let name = format!("AGE_{storage:?}").to_uppercase();
        let subject = format!("{}.x", name.to_lowercase());
        let mut st = js
            .create_stream(stream::Config {
                max_age: Duration::from_millis(300),
                ..cfg(&name, &subject, storage)
            })
            .await
            .unwrap();
        publish(&js, &subject, "soon gone").await.unwrap();
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        loop {
            if st.info().await.unwrap().state.messages == 0 {
                break;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "{storage:?}: not expired"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

#[tokio::test]
async fn rollup_sealed_deny_purge_and_first_seq() {
    let (_s, js) = js().await;
    let mut st = js
        .create_stream(stream::Config {
            allow_rollup: true,
            first_sequence: Some(100),
            description: Some("rollup test".into()),
            metadata: [("team".to_string(), "medisync".to_string())].into(),
            ..cfg("ROLL", "roll.>", stream::StorageType::File)
        })
        .await
        .unwrap();
    assert_eq!(publish(&js, "roll.a", "1").await.unwrap(), 100);
    publish(&js, "roll.a", "2").await.unwrap();
    let mut h = async_nats::HeaderMap::new();
    h.insert("Nats-Rollup", "sub");
    js.publish_with_headers("roll.a", h, "3".into())
        .await
        .unwrap()
        .await
        .unwrap();
    let info = st.info().await.unwrap().clone();
    assert_eq!(
        info.state.messages, 1,
        "rollup keeps only the newest of the subject"
    );
    assert_eq!(info.config.description.as_deref(), Some("rollup test"));
    assert_eq!(
        info.config.metadata.get("team").map(String::as_str),
        Some("medisync")
    );
    // nats-server: roll-ups need the purge permission.
    let err = js
        .create_stream(stream::Config {
            allow_rollup: true,
            deny_purge: true,
            ..cfg("ROLL2", "roll2.>", stream::StorageType::File)
        })
        .await
        .unwrap_err();
    assert_eq!(api_code(&err), 10052);
    let dp = js
        .create_stream(stream::Config {
            deny_purge: true,
            ..cfg("NOPURGE", "nopurge.>", stream::StorageType::File)
        })
        .await
        .unwrap();
    assert!(dp.purge().await.is_err(), "deny_purge refuses purge");

    let mut sealed = info.config.clone();
    sealed.sealed = true;
    js.update_stream(sealed).await.unwrap();
    let err = publish(&js, "roll.b", "x").await.unwrap_err();
    assert!(err.contains("sealed"), "{err}");
}

#[tokio::test]
async fn update_rules_and_config_errors() {
    let (_s, js) = js().await;
    js.create_stream(cfg("UPD", "upd.>", stream::StorageType::File))
        .await
        .unwrap();
    // Changing limits is allowed.
    js.update_stream(stream::Config {
        max_messages: 10,
        ..cfg("UPD", "upd.>", stream::StorageType::File)
    })
    .await
    .unwrap();
    // Changing retention is not (10052).
    let err = js
        .update_stream(stream::Config {
            retention: stream::RetentionPolicy::WorkQueue,
            ..cfg("UPD", "upd.>", stream::StorageType::File)
        })
        .await
        .unwrap_err();
    assert_eq!(api_code(&err), 10052);
    // Same name, different config (10058); missing stream update (10059).
    let err = js
        .create_stream(cfg("UPD", "other.>", stream::StorageType::File))
        .await
        .unwrap_err();
    assert_eq!(api_code(&err), 10058);
    let err = js
        .update_stream(cfg("NOPE", "nope", stream::StorageType::File))
        .await
        .unwrap_err();
    // async-nats maps 10059 (stream not found) to its own kind.
    assert_eq!(err.kind(), CreateStreamErrorKind::NotFound);
    // compression: s2 is tests/compression.rs's.
}

#[tokio::test]
async fn purge_variants_get_and_delete() {
    let (_s, js) = js().await;
    let st = js
        .create_stream(cfg("PURGE", "p.>", stream::StorageType::File))
        .await
        .unwrap();
    for i in 0..10 {
        publish(
            &js,
            if i % 2 == 0 { "p.even" } else { "p.odd" },
            &i.to_string(),
        )
        .await
        .unwrap();
    }
    assert_eq!(st.purge().filter("p.even").keep(1).await.unwrap().purged, 4);
    // Left: 2,4,6,8 (odd), 9 (even), 10 (odd); "seq" purges everything below it.
    assert_eq!(st.purge().sequence(4).await.unwrap().purged, 1);
    let last = st.get_last_raw_message_by_subject("p.odd").await.unwrap();
    assert_eq!(last.payload, "9");
    assert!(st.delete_message(10).await.unwrap());
    assert!(st.get_raw_message(10).await.is_err());
    assert!(
        st.delete_message(10).await.is_err(),
        "second delete: sequence not found"
    );
}

#[tokio::test]
async fn expected_headers_errors() {
    let (_s, js) = js().await;
    js.create_stream(cfg("EXP", "exp.>", stream::StorageType::File))
        .await
        .unwrap();
    let send = |k: &'static str, v: &'static str| {
        let js = js.clone();
        async move {
            let mut h = async_nats::HeaderMap::new();
            h.insert(k, v);
            h.insert("Nats-Msg-Id", "m-1");
            js.publish_with_headers("exp.a", h, "x".into())
                .await
                .unwrap()
                .await
        }
    };
    let e = send("Nats-Expected-Stream", "OTHER").await.unwrap_err();
    assert!(
        e.to_string().contains("expected stream does not match"),
        "{e}"
    );
    send("Nats-Expected-Last-Subject-Sequence", "0")
        .await
        .unwrap();
    let mut h = async_nats::HeaderMap::new();
    h.insert("Nats-Expected-Last-Msg-Id", "wrong");
    let e = js
        .publish_with_headers("exp.a", h, "y".into())
        .await
        .unwrap()
        .await
        .unwrap_err();
    assert!(e.to_string().contains("wrong last msg ID: m-1"), "{e}");
    let mut h = async_nats::HeaderMap::new();
    h.insert("Nats-Expected-Last-Subject-Sequence", "0");
    let e = js
        .publish_with_headers("exp.a", h, "z".into())
        .await
        .unwrap()
        .await
        .unwrap_err();
    assert!(e.to_string().contains("wrong last sequence: 1"), "{e}");
}

#[tokio::test]
async fn dedup_window_per_subject_discard_and_direct_disabled() {
    let (s, js) = js().await;
    js.create_stream(stream::Config {
        duplicate_window: Duration::from_millis(300),
        max_messages_per_subject: 1,
        discard: stream::DiscardPolicy::New,
        discard_new_per_subject: true,
        ..cfg("WIN", "win.>", stream::StorageType::File)
    })
    .await
    .unwrap();
    let with_id = |subject: &'static str| {
        let js = js.clone();
        async move {
            let mut h = async_nats::HeaderMap::new();
            h.insert("Nats-Msg-Id", "same");
            js.publish_with_headers(subject, h, "x".into())
                .await
                .unwrap()
                .await
        }
    };
    assert!(!with_id("win.a").await.unwrap().duplicate);
    assert!(with_id("win.a").await.unwrap().duplicate);
    // Per-subject discard new: a second message on win.a is refused...
    let err = publish(&js, "win.a", "again").await.unwrap_err();
    assert!(
        err.contains("maximum messages per subject exceeded"),
        "{err}"
    );
    // ...and after the window the same id is new again (on another subject).
    tokio::time::sleep(Duration::from_millis(800)).await;
    let ack = with_id("win.b").await.unwrap();
    assert!(!ack.duplicate);

    // allow_direct is false: DIRECT.GET gets no reply at all (nats-server 2.9.10).
    let client = async_nats::connect(s.client_url()).await.unwrap();
    let res = tokio::time::timeout(
        Duration::from_millis(500),
        client.request("$JS.API.DIRECT.GET.WIN", r#"{"seq":1}"#.into()),
    )
    .await;
    assert!(
        res.is_err() || res.unwrap().is_err(),
        "no direct-get reply without allow_direct"
    );
}

#[tokio::test]
async fn names_paging_subject_filter_account_info_and_advisory() {
    let (s, js) = js().await;
    let client = async_nats::connect(s.client_url()).await.unwrap();
    let mut advisories = client
        .subscribe("$JS.EVENT.ADVISORY.STREAM.CREATED.>")
        .await
        .unwrap();
    client.flush().await.unwrap();
    for i in 0..5 {
        js.create_stream(cfg(
            &format!("N{i}"),
            &format!("n{i}.>"),
            stream::StorageType::File,
        ))
        .await
        .unwrap();
    }
    let adv = tokio::time::timeout(
        Duration::from_secs(5),
        futures::StreamExt::next(&mut advisories),
    )
    .await
    .unwrap()
    .unwrap();
    let text = String::from_utf8_lossy(&adv.payload).into_owned();
    assert!(
        text.contains("io.nats.jetstream.advisory.v1.stream_action")
            && text.contains("\"action\":\"create\""),
        "{text}"
    );
    let r = client
        .request("$JS.API.STREAM.NAMES", r#"{"subject":"n3.x"}"#.into())
        .await
        .unwrap();
    let v: serde_json::Value = serde_json::from_slice(&r.payload).unwrap();
    assert_eq!(v["streams"], serde_json::json!(["N3"]));
    assert_eq!(v["total"], 1);
    let r = client
        .request("$JS.API.STREAM.NAMES", r#"{"offset":3}"#.into())
        .await
        .unwrap();
    let v: serde_json::Value = serde_json::from_slice(&r.payload).unwrap();
    assert_eq!(v["streams"].as_array().map(Vec::len), Some(2));
    assert_eq!(
        (v["total"].as_u64(), v["offset"].as_u64()),
        (Some(5), Some(3))
    );
    publish(&js, "n0.x", "hello").await.unwrap();
    let account = js.query_account().await.unwrap();
    assert_eq!(account.streams, 5);
    assert!(account.storage > 0, "file usage counted");
}
