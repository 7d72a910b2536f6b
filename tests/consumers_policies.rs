//! Consumer options not covered elsewhere, through async-nats: ack policy `all`,
//! `filter_subjects`, `replay_policy: original`, `+NXT` (ack and pull the next message on
//! the ack's reply subject), and an ephemeral push consumer removed without interest.

use std::time::{Duration, Instant};

use async_nats::jetstream;
use async_nats::jetstream::consumer::{pull, push, AckPolicy, ReplayPolicy};
use futures::StreamExt;
use petrel_testkit::spawn_jetstream;

use crate::consumers::{durable, fetch};
use crate::support::{config, publish};

fn seqs(msgs: &[jetstream::Message]) -> Vec<u64> {
    msgs.iter()
        .map(|m| m.info().unwrap().stream_sequence)
        .collect()
}

#[tokio::test]
async fn ack_all_acks_everything_below() {
    let s = spawn_jetstream().await;
    let js = jetstream::new(async_nats::connect(s.client_url()).await.unwrap());
    let stream = js.create_stream(config("ALL", &["all"])).await.unwrap();
    publish(&js, "all", 4).await;
    let mut c = stream
        .create_consumer(pull::Config {
            ack_policy: AckPolicy::All,
            ..durable("all")
        })
        .await
        .unwrap();
    let msgs = fetch(&c, 3).await;
    assert_eq!(seqs(&msgs), vec![1, 2, 3]);
    msgs[2].double_ack().await.unwrap();
    let info = c.info().await.unwrap();
    assert_eq!(info.num_ack_pending, 0);
    assert_eq!(info.ack_floor.stream_sequence, 3);
    assert_eq!(info.num_pending, 1);
}

#[tokio::test]
async fn filter_subjects_select_several_subjects() {
    let s = spawn_jetstream().await;
    let js = jetstream::new(async_nats::connect(s.client_url()).await.unwrap());
    let stream = js.create_stream(config("FS", &["fs.>"])).await.unwrap();
    for subject in ["fs.a", "fs.b", "fs.c", "fs.b", "fs.a"] {
        publish(&js, subject, 1).await;
    }
    let mut c = stream
        .create_consumer(pull::Config {
            filter_subjects: vec!["fs.a".into(), "fs.c".into()],
            ..durable("ac")
        })
        .await
        .unwrap();
    assert_eq!(c.info().await.unwrap().num_pending, 3);
    assert_eq!(seqs(&fetch(&c, 10).await), vec![1, 3, 5]);
}

#[tokio::test]
async fn replay_original_keeps_the_gaps() {
    let s = spawn_jetstream().await;
    let js = jetstream::new(async_nats::connect(s.client_url()).await.unwrap());
    let stream = js.create_stream(config("RP", &["rp"])).await.unwrap();
    publish(&js, "rp", 1).await;
    tokio::time::sleep(Duration::from_millis(400)).await;
    publish(&js, "rp", 1).await;
    let c = stream
        .create_consumer(pull::Config {
            replay_policy: ReplayPolicy::Original,
            ..durable("rp")
        })
        .await
        .unwrap();
    let mut msgs = c
        .batch()
        .max_messages(2)
        .expires(Duration::from_secs(5))
        .messages()
        .await
        .unwrap();
    msgs.next().await.unwrap().unwrap();
    let first = Instant::now();
    msgs.next().await.unwrap().unwrap();
    // The server holds the second back by the original 400 ms gap (client-side slack).
    assert!(
        first.elapsed() >= Duration::from_millis(350),
        "replayed after {:?}",
        first.elapsed()
    );
}

#[tokio::test]
async fn next_ack_pulls_the_next_message_to_the_reply() {
    let s = spawn_jetstream().await;
    let client = async_nats::connect(s.client_url()).await.unwrap();
    let js = jetstream::new(client.clone());
    let stream = js.create_stream(config("NXT", &["nxt"])).await.unwrap();
    publish(&js, "nxt", 3).await;
    let mut c = stream.create_consumer(durable("nxt")).await.unwrap();
    let first = fetch(&c, 1).await.remove(0);
    let inbox = client.new_inbox();
    let mut sub = client.subscribe(inbox.clone()).await.unwrap();
    client
        .publish_with_reply(first.reply.clone().unwrap(), inbox, "+NXT".into())
        .await
        .unwrap();
    let next = tokio::time::timeout(Duration::from_secs(5), sub.next())
        .await
        .unwrap()
        .unwrap();
    assert!(
        next.reply.unwrap().starts_with("$JS.ACK.NXT.nxt.1.2.2."),
        "the next message, delivered to the +NXT reply"
    );
    let info = c.info().await.unwrap();
    assert_eq!(info.ack_floor.stream_sequence, 1, "+NXT acked the first");
    assert_eq!(info.num_ack_pending, 1);
}

#[tokio::test]
async fn ephemeral_push_consumer_removed_without_interest() {
    let s = spawn_jetstream().await;
    let js = jetstream::new(async_nats::connect(s.client_url()).await.unwrap());
    let stream = js.create_stream(config("EP", &["ep"])).await.unwrap();
    let mut c = stream
        .create_consumer(push::Config {
            deliver_subject: "ep.nobody".into(),
            inactive_threshold: Duration::from_millis(500),
            ..Default::default()
        })
        .await
        .unwrap();
    let name = c.info().await.unwrap().name.clone();
    let deadline = Instant::now() + Duration::from_secs(5);
    while stream.get_consumer::<push::Config>(&name).await.is_ok() {
        assert!(
            Instant::now() < deadline,
            "ephemeral push consumer never removed"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}
