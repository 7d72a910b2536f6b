//! Pull-request statuses and push flow control at the protocol level (a core client reading
//! the status headers): `404 No Messages`, `408 Request Timeout` with pending counts, the
//! `409` refusals, `100 Idle Heartbeat`, and flow control stalling delivery until the client
//! answers (and asking again when the answer is lost).

use std::time::{Duration, Instant};

use async_nats::jetstream;
use async_nats::jetstream::consumer::{pull, push, AckPolicy};
use futures::StreamExt;
use petrel_testkit::spawn_jetstream;

use crate::support::config;

/// Sends one pull request; returns the subscription on its inbox.
async fn send_pull(
    client: &async_nats::Client,
    consumer: &str,
    body: &str,
) -> async_nats::Subscriber {
    let inbox = client.new_inbox();
    let sub = client.subscribe(inbox.clone()).await.unwrap();
    client
        .publish_with_reply(
            format!("$JS.API.CONSUMER.MSG.NEXT.PULL.{consumer}"),
            inbox,
            body.to_string().into(),
        )
        .await
        .unwrap();
    sub
}

/// Sends one pull request and returns the first message on its inbox.
async fn pull_once(
    client: &async_nats::Client,
    consumer: &str,
    body: &str,
    wait: Duration,
) -> async_nats::Message {
    let mut sub = send_pull(client, consumer, body).await;
    tokio::time::timeout(wait, sub.next())
        .await
        .expect("no answer")
        .unwrap()
}

fn status(m: &async_nats::Message) -> (u16, String) {
    (
        m.status.map(|s| s.as_u16()).unwrap_or(0),
        m.description.clone().unwrap_or_default(),
    )
}

#[tokio::test]
async fn pull_status_messages_match_nats_server() {
    let s = spawn_jetstream().await;
    let client = async_nats::connect(s.client_url()).await.unwrap();
    let js = jetstream::new(client.clone());
    let stream = js.create_stream(config("PULL", &["pull.>"])).await.unwrap();
    stream
        .create_consumer(pull::Config {
            durable_name: Some("c".into()),
            ack_policy: AckPolicy::Explicit,
            max_waiting: 1,
            max_batch: 2,
            ..Default::default()
        })
        .await
        .unwrap();
    let sec = Duration::from_secs(3);
    let m = pull_once(&client, "c", r#"{"batch":1,"no_wait":true}"#, sec).await;
    assert_eq!(status(&m), (404, "No Messages".into()));
    let m = pull_once(&client, "c", r#"{"batch":5}"#, sec).await;
    assert_eq!(status(&m), (409, "Exceeded MaxRequestBatch of 2".into()));
    let t = Instant::now();
    let m = pull_once(&client, "c", r#"{"batch":1,"expires":300000000}"#, sec).await;
    assert!(t.elapsed() >= Duration::from_millis(300));
    assert_eq!(status(&m), (408, "Request Timeout".into()));
    let h = m.headers.unwrap();
    assert_eq!(h.get("Nats-Pending-Messages").unwrap().as_str(), "1");
    assert_eq!(h.get("Nats-Pending-Bytes").unwrap().as_str(), "0");
    // Heartbeats while waiting; too large a heartbeat is refused.
    let m = pull_once(
        &client,
        "c",
        r#"{"batch":1,"expires":1000000000,"idle_heartbeat":200000000}"#,
        sec,
    )
    .await;
    assert_eq!(status(&m), (100, "Idle Heartbeat".into()));
    let m = pull_once(
        &client,
        "c",
        r#"{"batch":1,"expires":300000000,"idle_heartbeat":200000000}"#,
        sec,
    )
    .await;
    assert_eq!(
        status(&m),
        (400, "Bad Request - heartbeat value too large".into())
    );
    // max_waiting 1: a second waiting request is refused.
    let mut first = send_pull(&client, "c", r#"{"batch":1,"expires":2000000000}"#).await;
    let m = pull_once(&client, "c", r#"{"batch":1,"expires":2000000000}"#, sec).await;
    assert_eq!(status(&m), (409, "Exceeded MaxWaiting".into()));
    // The waiting one gets the next message.
    js.publish("pull.a", "x".repeat(100).into())
        .await
        .unwrap()
        .await
        .unwrap();
    let m = tokio::time::timeout(sec, first.next())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(m.subject.as_str(), "pull.a");
    assert!(m.reply.unwrap().starts_with("$JS.ACK.PULL.c.1.1.1."));
    // A message larger than the request's max_bytes.
    js.publish("pull.a", "y".repeat(100).into())
        .await
        .unwrap()
        .await
        .unwrap();
    let m = pull_once(
        &client,
        "c",
        r#"{"batch":1,"max_bytes":50,"expires":1000000000}"#,
        sec,
    )
    .await;
    assert_eq!(status(&m), (409, "Message Size Exceeds MaxBytes".into()));
    // Pull on a push consumer.
    stream
        .create_consumer(push::Config {
            durable_name: Some("p".into()),
            deliver_subject: "p.dlv".into(),
            ..Default::default()
        })
        .await
        .unwrap();
    let m = pull_once(&client, "p", "", sec).await;
    assert_eq!(status(&m), (409, "Consumer is push based".into()));
}

#[tokio::test]
async fn flow_control_stalls_until_answered_and_asks_again() {
    let s = spawn_jetstream().await;
    let client = async_nats::connect(s.client_url()).await.unwrap();
    let js = jetstream::new(client.clone());
    let stream = js.create_stream(config("FC", &["fc.>"])).await.unwrap();
    let chunk = bytes::Bytes::from(vec![b'z'; 100 * 1024]);
    for _ in 0..40 {
        js.publish("fc.data", chunk.clone())
            .await
            .unwrap()
            .await
            .unwrap();
    }
    let mut sub = client.subscribe("fcd.dlv").await.unwrap();
    client.flush().await.unwrap();
    stream
        .create_consumer(push::Config {
            durable_name: Some("fc".into()),
            deliver_subject: "fcd.dlv".into(),
            flow_control: true,
            idle_heartbeat: Duration::from_secs(1),
            ..Default::default()
        })
        .await
        .unwrap();
    let mut data = 0;
    let mut fc_requests = Vec::new();
    // Read without answering: delivery stops at the window (2 MiB) and a second request
    // comes once the first went unanswered for a while.
    let deadline = Instant::now() + Duration::from_secs(6);
    while fc_requests.len() < 2 && Instant::now() < deadline {
        let Ok(Some(m)) = tokio::time::timeout(Duration::from_millis(500), sub.next()).await else {
            continue;
        };
        if m.status.map(|s| s.as_u16()) == Some(100) {
            if let Some(reply) = m.reply {
                fc_requests.push(reply.to_string());
            }
        } else {
            data += 1;
        }
    }
    assert_eq!(
        fc_requests.len(),
        2,
        "a lost flow-control reply is asked again"
    );
    assert!(
        data < 40,
        "delivery stalled at the window ({data} delivered)"
    );
    assert!(data >= 10);
    client
        .publish(fc_requests[1].clone(), "".into())
        .await
        .unwrap();
    while data < 40 {
        let m = tokio::time::timeout(Duration::from_secs(5), sub.next())
            .await
            .expect("delivery resumed")
            .unwrap();
        match (m.status.map(|s| s.as_u16()), m.reply) {
            (Some(100), Some(reply)) => client.publish(reply, "".into()).await.unwrap(),
            (Some(_), _) => {}
            _ => data += 1,
        }
    }
}
