//! Consumers and retention through async-nats: work-queue removal and its consumer rules,
//! interest removal once every consumer acked, durable state across a restart, and the
//! MediSync worker pattern (manual ack, max deliver 5, failures then success, a poison
//! message terminated).

use std::time::Duration;

use async_nats::jetstream::consumer::{pull, AckPolicy, DeliverPolicy};
use async_nats::jetstream::stream::RetentionPolicy;
use async_nats::jetstream::{self, AckKind};
use futures::StreamExt;
use petrel_testkit::{spawn_jetstream, spawn_with_store};

use crate::consumers::{durable, fetch};
use crate::support::{config, publish};

async fn messages(stream: &mut jetstream::stream::Stream) -> u64 {
    stream.info().await.unwrap().state.messages
}

#[tokio::test]
async fn work_queue_removes_acked_and_enforces_consumer_rules() {
    let s = spawn_jetstream().await;
    let js = jetstream::new(async_nats::connect(s.client_url()).await.unwrap());
    let mut stream = js
        .create_stream(jetstream::stream::Config {
            retention: RetentionPolicy::WorkQueue,
            ..config("JOBS", &["jobs.>"])
        })
        .await
        .unwrap();
    publish(&js, "jobs.a", 3).await;
    let c = stream.create_consumer(durable("workers")).await.unwrap();
    for m in fetch(&c, 2).await {
        m.double_ack().await.unwrap();
    }
    assert_eq!(messages(&mut stream).await, 1, "acked work is removed");
    // A second unfiltered consumer, overlapping filters, deliver policy and ack rules.
    let err = stream.create_consumer(durable("other")).await.unwrap_err();
    assert!(err.to_string().contains("10099"), "{err}");
    let err = stream
        .create_consumer(pull::Config {
            filter_subject: "jobs.a".into(),
            ..durable("filtered")
        })
        .await
        .unwrap_err();
    assert!(err.to_string().contains("10100"), "{err}");
    let raw_err = |body: &'static str| {
        let client = async_nats::connect(s.client_url());
        async move {
            let client = client.await.unwrap();
            let r = client
                .request("$JS.API.CONSUMER.CREATE.JOBS.x", body.into())
                .await
                .unwrap();
            let v: serde_json::Value = serde_json::from_slice(&r.payload).unwrap();
            v["error"]["err_code"].as_u64().unwrap_or(0)
        }
    };
    assert_eq!(
        raw_err(r#"{"stream_name":"JOBS","config":{"durable_name":"x","ack_policy":"none"}}"#)
            .await,
        10084
    );
    assert_eq!(
        raw_err(r#"{"stream_name":"JOBS","config":{"durable_name":"x","ack_policy":"all"}}"#).await,
        10098
    );
    // The last message is still there for the one consumer.
    let rest = fetch(&c, 5).await;
    assert_eq!(rest.len(), 1);
    rest[0].double_ack().await.unwrap();
    assert_eq!(messages(&mut stream).await, 0);
}

#[tokio::test]
async fn interest_stream_removes_once_every_consumer_acked() {
    let s = spawn_jetstream().await;
    let js = jetstream::new(async_nats::connect(s.client_url()).await.unwrap());
    let mut stream = js
        .create_stream(jetstream::stream::Config {
            retention: RetentionPolicy::Interest,
            ..config("INT", &["int.>"])
        })
        .await
        .unwrap();
    // No consumers: stored (sequence assigned) and dropped at once.
    publish(&js, "int.a", 1).await;
    assert_eq!(messages(&mut stream).await, 0);
    let a = stream.create_consumer(durable("a")).await.unwrap();
    let b = stream.create_consumer(durable("b")).await.unwrap();
    publish(&js, "int.a", 2).await;
    assert_eq!(messages(&mut stream).await, 2);
    for m in fetch(&a, 2).await {
        m.double_ack().await.unwrap();
    }
    assert_eq!(messages(&mut stream).await, 2, "b has not acked yet");
    let bm = fetch(&b, 2).await;
    bm[0].double_ack().await.unwrap();
    assert_eq!(messages(&mut stream).await, 1);
    // Deleting b (the only one still holding seq 3) releases it.
    stream.delete_consumer("b").await.unwrap();
    assert_eq!(messages(&mut stream).await, 0);
}

#[tokio::test]
async fn durable_consumer_resumes_after_restart() {
    let store = tempfile::tempdir().unwrap();
    let dir = store.path().to_path_buf();
    {
        let p = dir.clone();
        let s = spawn_with_store(move |b, _| b.jetstream(p)).await;
        let js = jetstream::new(async_nats::connect(s.client_url()).await.unwrap());
        let stream = js.create_stream(config("R", &["r.>"])).await.unwrap();
        publish(&js, "r.x", 10).await;
        let c = stream.create_consumer(durable("keep")).await.unwrap();
        for m in fetch(&c, 4).await {
            m.double_ack().await.unwrap();
        }
        // Delivered, not acked: must come back after the restart.
        assert_eq!(fetch(&c, 2).await.len(), 2);
        s.shutdown().await;
    }
    let p = dir.clone();
    let s = spawn_with_store(move |b, _| b.jetstream(p)).await;
    let js = jetstream::new(async_nats::connect(s.client_url()).await.unwrap());
    let stream = js.get_stream("R").await.unwrap();
    let mut c: jetstream::consumer::Consumer<pull::Config> =
        stream.get_consumer("keep").await.unwrap();
    let info = c.info().await.unwrap();
    assert_eq!(info.delivered.stream_sequence, 6);
    assert_eq!(info.ack_floor.stream_sequence, 4);
    assert_eq!(info.num_ack_pending, 2);
    assert_eq!(info.num_pending, 4);
    // The two un-acked come back once their ack_wait (30 s) is over, so nak-free check:
    // new messages continue at 7.
    let next = fetch(&c, 1).await;
    assert_eq!(next[0].info().unwrap().stream_sequence, 7);
    assert_eq!(next[0].info().unwrap().consumer_sequence, 7);
}

/// The MediSync worker: durable, manual ack, deliver all, max deliver 5; the handler fails
/// twice (nak with a short delay) then succeeds; a poison message is terminated.
#[tokio::test]
async fn medisync_style_worker() {
    let s = spawn_jetstream().await;
    let client = async_nats::connect(s.client_url()).await.unwrap();
    let js = jetstream::new(client.clone());
    let stream = js
        .create_stream(config("MEDISYNC", &["medisync.etl.*.completed"]))
        .await
        .unwrap();
    let mut terminated = client
        .subscribe("$JS.EVENT.ADVISORY.CONSUMER.MSG_TERMINATED.MEDISYNC.etl-worker")
        .await
        .unwrap();
    client.flush().await.unwrap();
    js.publish("medisync.etl.lab.completed", "job-1".into())
        .await
        .unwrap()
        .await
        .unwrap();
    js.publish("medisync.etl.lab.completed", "poison".into())
        .await
        .unwrap()
        .await
        .unwrap();
    let mut c = stream
        .create_consumer(pull::Config {
            durable_name: Some("etl-worker".into()),
            ack_policy: AckPolicy::Explicit,
            deliver_policy: DeliverPolicy::All,
            max_deliver: 5,
            ack_wait: Duration::from_secs(30),
            ..Default::default()
        })
        .await
        .unwrap();
    let mut msgs = c.messages().await.unwrap();
    let mut attempts = 0;
    let mut done = false;
    let mut poisoned = false;
    while !(done && poisoned) {
        let m = tokio::time::timeout(Duration::from_secs(10), msgs.next())
            .await
            .expect("worker starved")
            .unwrap()
            .unwrap();
        match &m.payload[..] {
            b"poison" => {
                m.ack_with(AckKind::Term).await.unwrap();
                poisoned = true;
            }
            _ => {
                attempts += 1;
                assert_eq!(m.info().unwrap().delivered, attempts);
                if attempts <= 2 {
                    m.ack_with(AckKind::Nak(Some(Duration::from_millis(200))))
                        .await
                        .unwrap();
                } else {
                    m.double_ack().await.unwrap();
                    done = true;
                }
            }
        }
    }
    assert_eq!(attempts, 3);
    let adv = tokio::time::timeout(Duration::from_secs(5), terminated.next())
        .await
        .unwrap()
        .unwrap();
    let v: serde_json::Value = serde_json::from_slice(&adv.payload).unwrap();
    assert_eq!(v["stream_seq"], 2);
    let info = c.info().await.unwrap();
    assert_eq!(info.num_ack_pending, 0);
    assert_eq!(info.num_pending, 0);
    assert_eq!(info.ack_floor.stream_sequence, 2);
}
