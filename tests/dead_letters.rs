//! Dead-letter subjects (Petrel's own), driven by async-nats: MediSync's worker pattern —
//! nak-with-delay retries, max_deliver 5, term on poison — ends with the poison message
//! and the one that never succeeded in a dead-letter stream, with headers saying where
//! each came from and why; bad dead-letter subjects are refused saying what to fix.

use std::collections::HashMap;
use std::time::Duration;

use async_nats::jetstream::{self, consumer, stream, AckKind};
use petrel_testkit::spawn_jetstream;

use crate::support::{config, fetch_within};

const KEY: &str = "petrel.dead_letter_subject";

fn worker_config(dead_letters: &str) -> consumer::pull::Config {
    consumer::pull::Config {
        durable_name: Some("etl".into()),
        ack_policy: consumer::AckPolicy::Explicit,
        ack_wait: Duration::from_millis(700),
        max_deliver: 5,
        metadata: HashMap::from([(KEY.to_string(), dead_letters.to_string())]),
        ..Default::default()
    }
}

fn header<'a>(m: &'a jetstream::message::StreamMessage, name: &str) -> &'a str {
    m.headers
        .get(name)
        .map(|v| v.as_str())
        .unwrap_or_else(|| panic!("no {name} in {:?}", m.headers))
}

#[tokio::test]
async fn medisync_worker_ends_with_poison_in_the_dead_letter_stream() {
    let s = spawn_jetstream().await;
    let nc = async_nats::connect(s.client_url()).await.unwrap();
    let js = jetstream::new(nc.clone());
    js.create_stream(stream::Config {
        retention: stream::RetentionPolicy::WorkQueue,
        ..config("RECORDS", &["records.ingest.>"])
    })
    .await
    .unwrap();
    js.create_stream(config("DLQ", &["dlq.>"])).await.unwrap();
    let worker = js
        .create_consumer_on_stream(worker_config("dlq.records"), "RECORDS")
        .await
        .unwrap();
    for (subject, body) in [
        ("records.ingest.lab", "good"),
        ("records.ingest.lab", "flaky"),
        ("records.ingest.pharmacy", "poison"),
        ("records.ingest.lab", "hopeless"),
    ] {
        js.publish(subject, body.into())
            .await
            .unwrap()
            .await
            .unwrap();
    }
    let mut advisories = nc
        .subscribe("$JS.EVENT.ADVISORY.CONSUMER.MAX_DELIVERIES.>")
        .await
        .unwrap();
    let mut flaky_failures = 0;
    let mut done = std::collections::BTreeSet::new();
    for _ in 0..60 {
        if done.len() == 4 {
            break;
        }
        for m in fetch_within(&worker, 10, Duration::from_millis(300)).await {
            let body = String::from_utf8_lossy(&m.payload).into_owned();
            match body.as_str() {
                "good" => m.ack().await.unwrap(),
                "flaky" if flaky_failures < 2 => {
                    flaky_failures += 1;
                    m.ack_with(AckKind::Nak(Some(Duration::from_millis(100))))
                        .await
                        .unwrap();
                    continue;
                }
                "flaky" => m.ack().await.unwrap(),
                "poison" => {
                    // +TERM with a reason, as nats.go's TermWithReason sends it.
                    let reply = m.reply.clone().unwrap();
                    nc.publish(reply, "+TERM schema validation failed".into())
                        .await
                        .unwrap();
                }
                // Never acked: redelivered after ack_wait until max_deliver.
                "hopeless" => {
                    let info = m.info().unwrap();
                    if info.delivered < 5 {
                        continue;
                    }
                }
                other => panic!("unexpected {other}"),
            }
            done.insert(body);
        }
    }
    // The worker keeps asking for work; past its last ack_wait the exhausted message is
    // given up on (as nats-server, when the consumer next looks for something to deliver).
    let _ = fetch_within(&worker, 1, Duration::from_millis(1500)).await;
    tokio::time::timeout(
        Duration::from_secs(5),
        futures::StreamExt::next(&mut advisories),
    )
    .await
    .expect("MAX_DELIVERIES advisory");
    let dlq = js.get_stream("DLQ").await.unwrap();
    let mut dead = Vec::new();
    for _ in 0..100 {
        if let Ok(m) = dlq.get_raw_message(dead.len() as u64 + 1).await {
            dead.push(m);
            if dead.len() == 2 {
                break;
            }
        } else {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
    let bodies: Vec<_> = dead.iter().map(|m| m.payload.clone()).collect();
    assert_eq!(dead.len(), 2, "two dead letters: {bodies:?}");
    let poison = dead.iter().find(|m| m.payload == "poison").expect("poison");
    let hopeless = dead
        .iter()
        .find(|m| m.payload == "hopeless")
        .expect("hopeless");
    let p = poison;
    assert_eq!(p.subject.as_str(), "dlq.records");
    assert_eq!(header(p, "Petrel-Dead-Letter-Stream"), "RECORDS");
    assert_eq!(header(p, "Petrel-Dead-Letter-Consumer"), "etl");
    assert_eq!(header(p, "Petrel-Dead-Letter-Sequence"), "3");
    assert_eq!(
        header(p, "Petrel-Dead-Letter-Subject"),
        "records.ingest.pharmacy"
    );
    assert_eq!(header(p, "Petrel-Dead-Letter-Deliveries"), "1");
    assert_eq!(header(p, "Petrel-Dead-Letter-Reason"), "terminated");
    assert_eq!(
        header(p, "Petrel-Dead-Letter-Term-Reason"),
        "schema validation failed"
    );
    let h = hopeless;
    assert_eq!(header(h, "Petrel-Dead-Letter-Reason"), "max_deliveries");
    assert_eq!(header(h, "Petrel-Dead-Letter-Deliveries"), "5");
    assert_eq!(header(h, "Petrel-Dead-Letter-Sequence"), "4");
    // The work queue is empty: every message was acked, terminated or given up on.
    let mut records = js.get_stream("RECORDS").await.unwrap();
    let info = records.info().await.unwrap();
    assert_eq!(
        info.state.messages, 1,
        "the max-delivered message stays, as on nats-server"
    );
}

#[tokio::test]
async fn bad_dead_letter_subjects_are_refused_saying_why() {
    let s = spawn_jetstream().await;
    let js = jetstream::new(async_nats::connect(s.client_url()).await.unwrap());
    js.create_stream(config("RECORDS", &["records.>"]))
        .await
        .unwrap();
    js.create_stream(config("DLQ", &["dlq.>"])).await.unwrap();
    for (subject, says) in [
        ("dlq.*", "without wildcards"),
        ("$JS.API.STREAM.PURGE.RECORDS", "subject space"),
        ("records.dead", "captured by the stream's own subject"),
    ] {
        let e = js
            .create_consumer_on_stream(worker_config(subject), "RECORDS")
            .await
            .expect_err(subject);
        let text = e.to_string();
        assert!(
            text.contains("10012") && text.contains(says),
            "{subject}: {text}"
        );
    }
    js.create_consumer_on_stream(worker_config("dlq.records"), "RECORDS")
        .await
        .unwrap();
    // The DLQ's own consumer sending its dead letters back to RECORDS closes a loop.
    let e = js
        .create_consumer_on_stream(worker_config("records.retry"), "DLQ")
        .await
        .expect_err("loop");
    assert!(e.to_string().contains("forms a cycle"), "{e}");
}

/// Regression: a dead-letter copy kept the publisher's instructions to its stream
/// (`Nats-Rollup`, `Nats-Expected-*`, `Nats-Msg-Id`), so the dead-letter stream acted on
/// them — a rolled-up poison message purged the dead letters before it on its subject.
#[tokio::test]
async fn dead_letter_copies_carry_no_instructions_for_the_dead_letter_stream() {
    let s = spawn_jetstream().await;
    let js = jetstream::new(async_nats::connect(s.client_url()).await.unwrap());
    let rollups = |c: stream::Config| stream::Config {
        allow_rollup: true,
        ..c
    };
    js.create_stream(rollups(config("IN", &["in.>"])))
        .await
        .unwrap();
    js.create_stream(rollups(config("DLQ", &["dlq.>"])))
        .await
        .unwrap();
    let worker = js
        .create_consumer_on_stream(worker_config("dlq.in"), "IN")
        .await
        .unwrap();
    for body in ["first", "second"] {
        let mut headers = async_nats::HeaderMap::new();
        headers.insert("Nats-Rollup", "sub");
        js.publish_with_headers(format!("in.{body}"), headers, body.into())
            .await
            .unwrap()
            .await
            .unwrap();
        let m = fetch_within(&worker, 1, Duration::from_secs(5)).await;
        m[0].ack_with(AckKind::Term).await.unwrap();
    }
    let dlq = js.get_stream("DLQ").await.unwrap();
    for _ in 0..250 {
        let mut d = dlq.clone();
        if d.info().await.unwrap().state.messages >= 2 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let second = dlq.get_raw_message(2).await.unwrap();
    assert!(
        second.headers.get("Nats-Rollup").is_none(),
        "{:?}",
        second.headers
    );
    let first = dlq.get_raw_message(1).await.unwrap();
    assert_eq!(
        &first.payload[..],
        b"first",
        "the second copy rolled the first up"
    );
}
