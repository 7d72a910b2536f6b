//! JetStream streams through async-nats: create/info/list/delete, publish with PubAck,
//! dedup and expected-headers, limits, purge, message get, direct get, errors with
//! nats-server's codes, and recovery after a restart.

use async_nats::jetstream::{self, stream};
use futures::StreamExt;
use petrel_testkit::{spawn_jetstream, spawn_with_store};

use crate::support::{config, publish_all};

#[tokio::test]
async fn create_publish_ack_and_info() {
    let s = spawn_jetstream().await;
    let client = async_nats::connect(s.client_url()).await.unwrap();
    assert!(client.server_info().jetstream);
    let js = jetstream::new(client);
    let mut stream = js
        .create_stream(config("MEDISYNC", &["medisync.etl.*.completed"]))
        .await
        .unwrap();
    for i in 1..=5u64 {
        let ack = js
            .publish("medisync.etl.lab.completed", format!("job {i}").into())
            .await
            .unwrap()
            .await
            .unwrap();
        assert_eq!(ack.stream, "MEDISYNC");
        assert_eq!(ack.sequence, i);
        assert!(!ack.duplicate);
    }
    let info = stream.info().await.unwrap();
    assert_eq!(info.state.messages, 5);
    assert_eq!(info.state.first_sequence, 1);
    assert_eq!(info.state.last_sequence, 5);
    let msg = stream.get_raw_message(3).await.unwrap();
    assert_eq!(msg.payload, "job 3");
    assert_eq!(msg.subject.as_str(), "medisync.etl.lab.completed");
    let names: Vec<String> = js.stream_names().map(|n| n.unwrap()).collect().await;
    assert_eq!(names, vec!["MEDISYNC".to_string()]);
    js.delete_stream("MEDISYNC").await.unwrap();
    assert!(js.get_stream("MEDISYNC").await.is_err());
}

#[tokio::test]
async fn dedup_and_expected_headers() {
    let s = spawn_jetstream().await;
    let js = jetstream::new(async_nats::connect(s.client_url()).await.unwrap());
    js.create_stream(config("ORDERS", &["orders.>"]))
        .await
        .unwrap();
    let mut h = async_nats::HeaderMap::new();
    h.insert("Nats-Msg-Id", "order-1");
    let first = js
        .publish_with_headers("orders.new", h.clone(), "a".into())
        .await
        .unwrap()
        .await
        .unwrap();
    let again = js
        .publish_with_headers("orders.new", h, "a".into())
        .await
        .unwrap()
        .await
        .unwrap();
    assert_eq!(first.sequence, 1);
    assert_eq!(again.sequence, 1);
    assert!(again.duplicate);
    let mut h = async_nats::HeaderMap::new();
    h.insert("Nats-Expected-Last-Sequence", "7");
    let err = js
        .publish_with_headers("orders.new", h, "b".into())
        .await
        .unwrap()
        .await
        .unwrap_err();
    assert_eq!(
        err.kind(),
        jetstream::context::PublishErrorKind::WrongLastSequence
    );
}

#[tokio::test]
async fn overlapping_subjects_and_replicas_are_refused_like_nats_server() {
    let s = spawn_jetstream().await;
    let js = jetstream::new(async_nats::connect(s.client_url()).await.unwrap());
    js.create_stream(config("ORDERS", &["orders.>"]))
        .await
        .unwrap();
    let err = js
        .create_stream(config("SHIPPING", &["orders.new"]))
        .await
        .unwrap_err();
    let jetstream::context::CreateStreamErrorKind::JetStream(e) = err.kind() else {
        panic!("expected an API error, got {err}");
    };
    assert_eq!(e.error_code().0, 10065);
    assert!(
        e.to_string().contains("ORDERS"),
        "the error names the other stream: {e}"
    );
    let err = js
        .create_stream(stream::Config {
            num_replicas: 3,
            ..config("R3", &["r3"])
        })
        .await
        .unwrap_err();
    let jetstream::context::CreateStreamErrorKind::JetStream(e) = err.kind() else {
        panic!("expected an API error, got {err}");
    };
    assert_eq!(e.error_code().0, 10074);
}

#[tokio::test]
async fn discard_new_limit_and_purge() {
    let s = spawn_jetstream().await;
    let js = jetstream::new(async_nats::connect(s.client_url()).await.unwrap());
    let mut stream = js
        .create_stream(stream::Config {
            max_messages: 2,
            discard: stream::DiscardPolicy::New,
            ..config("LIMITED", &["limited.*"])
        })
        .await
        .unwrap();
    js.publish("limited.a", "1".into())
        .await
        .unwrap()
        .await
        .unwrap();
    js.publish("limited.b", "2".into())
        .await
        .unwrap()
        .await
        .unwrap();
    let err = js
        .publish("limited.c", "3".into())
        .await
        .unwrap()
        .await
        .unwrap_err();
    assert!(
        err.to_string().contains("maximum messages exceeded"),
        "{err}"
    );
    let purged = stream.purge().await.unwrap();
    assert_eq!(purged.purged, 2);
    assert_eq!(stream.info().await.unwrap().state.messages, 0);
}

#[tokio::test]
async fn direct_get_by_subject() {
    let s = spawn_jetstream().await;
    let js = jetstream::new(async_nats::connect(s.client_url()).await.unwrap());
    let stream = js
        .create_stream(stream::Config {
            allow_direct: true,
            ..config("KVISH", &["kv.>"])
        })
        .await
        .unwrap();
    js.publish("kv.a", "v1".into())
        .await
        .unwrap()
        .await
        .unwrap();
    js.publish("kv.a", "v2".into())
        .await
        .unwrap()
        .await
        .unwrap();
    let m = stream.direct_get_last_for_subject("kv.a").await.unwrap();
    assert_eq!(m.payload, "v2");
    assert_eq!(m.sequence, 2);
    assert!(stream.direct_get_last_for_subject("kv.none").await.is_err());
}

#[tokio::test]
async fn streams_and_messages_survive_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().to_path_buf();
    {
        let p = path.clone();
        let s = spawn_with_store(move |b, _| b.jetstream(p)).await;
        let js = jetstream::new(async_nats::connect(s.client_url()).await.unwrap());
        js.create_stream(config("DURABLE", &["durable.>"]))
            .await
            .unwrap();
        publish_all(&js, "durable.x", (0..10).map(|i| i.to_string())).await;
        s.shutdown().await;
    }
    let p = path.clone();
    let s = spawn_with_store(move |b, _| b.jetstream(p)).await;
    let js = jetstream::new(async_nats::connect(s.client_url()).await.unwrap());
    let mut stream = js.get_stream("DURABLE").await.unwrap();
    let info = stream.info().await.unwrap();
    assert_eq!(info.state.messages, 10);
    let ack = js
        .publish("durable.x", "after".into())
        .await
        .unwrap()
        .await
        .unwrap();
    assert_eq!(ack.sequence, 11);
}
