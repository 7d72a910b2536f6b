//! kill -9 with a durable consumer mid-work: after the restart the consumer resumes where it
//! left off (acked messages are not delivered again once their ack was confirmed and the
//! state had time to be written), un-acked ones come back with their delivery count, and
//! every published message is eventually acked exactly as the at-least-once promise says.

#![cfg(unix)]

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use async_nats::jetstream::consumer::{pull, AckPolicy};
use async_nats::jetstream::{self, stream, AckKind};
use futures::StreamExt;
use petrel_testkit::{spawn_binary_with, BinaryServer};

const BIN: &str = env!("CARGO_BIN_EXE_petrel");

fn start(dir: &Path) -> BinaryServer {
    let dir = dir.to_str().expect("utf-8 temp dir");
    spawn_binary_with(Path::new(BIN), &["-js", "-sd", dir]).expect("start petrel")
}

async fn fetch(
    c: &jetstream::consumer::Consumer<pull::Config>,
    n: usize,
) -> Vec<jetstream::Message> {
    let mut msgs = c
        .batch()
        .max_messages(n)
        .expires(Duration::from_millis(500))
        .messages()
        .await
        .unwrap();
    let mut out = Vec::new();
    while let Some(m) = msgs.next().await {
        out.push(m.unwrap());
    }
    out
}

#[tokio::test]
async fn durable_consumer_survives_kill_9() {
    let store = tempfile::tempdir().unwrap();
    let server = start(store.path());
    let js = jetstream::new(async_nats::connect(server.client_url()).await.unwrap());
    let stream = js
        .create_stream(stream::Config {
            name: "WORK".into(),
            subjects: vec!["work.>".into()],
            ..Default::default()
        })
        .await
        .unwrap();
    for i in 0..100 {
        js.publish("work.item", format!("{i}").into())
            .await
            .unwrap()
            .await
            .unwrap();
    }
    let cfg = pull::Config {
        durable_name: Some("worker".into()),
        ack_policy: AckPolicy::Explicit,
        ack_wait: Duration::from_secs(1),
        ..Default::default()
    };
    let c = stream.create_consumer(cfg).await.unwrap();
    for m in fetch(&c, 50).await {
        m.double_ack().await.unwrap();
    }
    // Ten delivered and never acked.
    assert_eq!(fetch(&c, 10).await.len(), 10);
    // Let the state reach the file (written within 20 ms of a change), then SIGKILL.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let status = Command::new("kill")
        .args(["-KILL", &server.pid().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    drop(server);

    let server = start(store.path());
    let js = jetstream::new(async_nats::connect(server.client_url()).await.unwrap());
    let stream = js.get_stream("WORK").await.unwrap();
    let c: jetstream::consumer::Consumer<pull::Config> =
        stream.get_consumer("worker").await.unwrap();
    let mut acked = std::collections::BTreeSet::new();
    let mut redelivered = std::collections::BTreeSet::new();
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while acked.len() < 50 {
        assert!(
            std::time::Instant::now() < deadline,
            "consumer stalled with {} acked",
            acked.len()
        );
        let batch = fetch(&c, 20).await;
        for m in batch {
            let info = m.info().unwrap();
            assert!(
                info.stream_sequence > 50,
                "seq {} was acked before the kill",
                info.stream_sequence
            );
            if info.delivered > 1 {
                redelivered.insert(info.stream_sequence);
            }
            m.ack_with(AckKind::Ack).await.unwrap();
            acked.insert(info.stream_sequence);
        }
    }
    assert_eq!(acked, (51..=100).collect());
    // The ten un-acked ones were redelivered (delivery count restored from disk).
    assert_eq!(redelivered, (51..=60).collect());
}
