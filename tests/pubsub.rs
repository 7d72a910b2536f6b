//! Publish/subscribe through the async-nats client.

use std::time::Duration;

use futures::StreamExt;
use petrel_testkit::spawn;

#[tokio::test]
async fn ten_thousand_messages_in_order() {
    let s = spawn().await;
    let sub_client = async_nats::connect(s.client_url()).await.unwrap();
    let pub_client = async_nats::connect(s.client_url()).await.unwrap();
    let mut sub = sub_client
        .subscribe("medisync.etl.*.completed")
        .await
        .unwrap();
    sub_client.flush().await.unwrap();
    for i in 0..10_000u32 {
        pub_client
            .publish("medisync.etl.lab.completed", i.to_string().into())
            .await
            .unwrap();
    }
    pub_client.flush().await.unwrap();
    for i in 0..10_000u32 {
        let m = tokio::time::timeout(Duration::from_secs(10), sub.next())
            .await
            .unwrap()
            .unwrap();
        assert_eq!(
            m.payload,
            i.to_string().as_bytes(),
            "message {i} out of order"
        );
        assert_eq!(m.subject.as_str(), "medisync.etl.lab.completed");
    }
    let stats = s.handle().stats();
    assert_eq!(stats.in_msgs, 10_000);
    assert_eq!(stats.out_msgs, 10_000);
}

#[tokio::test]
async fn wildcard_observers_each_get_a_copy() {
    let s = spawn().await;
    let c = async_nats::connect(s.client_url()).await.unwrap();
    let mut all = c.subscribe("*.*").await.unwrap();
    let mut alerts = c.subscribe("SECURITY.ALERTS.*").await.unwrap();
    let mut tail = c.subscribe("SECURITY.>").await.unwrap();
    c.flush().await.unwrap();
    c.publish("SECURITY.ALERTS.login", "x".into())
        .await
        .unwrap();
    c.publish("chat.msg", "y".into()).await.unwrap();
    c.flush().await.unwrap();
    assert_eq!(
        next(&mut alerts).await.subject.as_str(),
        "SECURITY.ALERTS.login"
    );
    assert_eq!(
        next(&mut tail).await.subject.as_str(),
        "SECURITY.ALERTS.login"
    );
    assert_eq!(next(&mut all).await.subject.as_str(), "chat.msg");
}

async fn next(s: &mut async_nats::Subscriber) -> async_nats::Message {
    tokio::time::timeout(Duration::from_secs(5), s.next())
        .await
        .expect("message within 5 s")
        .expect("subscription open")
}

#[tokio::test]
async fn echo_false_skips_own_messages() {
    let s = spawn().await;
    let quiet = async_nats::ConnectOptions::new()
        .no_echo()
        .connect(s.client_url())
        .await
        .unwrap();
    let other = async_nats::connect(s.client_url()).await.unwrap();
    let mut own = quiet.subscribe("echo.test").await.unwrap();
    quiet.flush().await.unwrap();
    quiet.publish("echo.test", "mine".into()).await.unwrap();
    quiet.flush().await.unwrap();
    other.publish("echo.test", "theirs".into()).await.unwrap();
    other.flush().await.unwrap();
    let m = tokio::time::timeout(Duration::from_secs(5), own.next())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(m.payload, "theirs");
    assert!(tokio::time::timeout(Duration::from_millis(200), own.next())
        .await
        .is_err());
}

#[tokio::test]
async fn unsubscribe_after_n_messages() {
    let s = spawn().await;
    // The server's own subscriptions (system services) are counted too.
    let internal = s.handle().stats().subscriptions;
    let c = async_nats::connect(s.client_url()).await.unwrap();
    let mut sub = c.subscribe("limited").await.unwrap();
    sub.unsubscribe_after(3).await.unwrap();
    c.flush().await.unwrap();
    for i in 0..10 {
        c.publish("limited", format!("{i}").into()).await.unwrap();
    }
    c.flush().await.unwrap();
    let mut got = Vec::new();
    while let Ok(Some(m)) = tokio::time::timeout(Duration::from_secs(2), sub.next()).await {
        got.push(String::from_utf8(m.payload.to_vec()).unwrap());
    }
    assert_eq!(got, vec!["0", "1", "2"]);
    assert_eq!(s.handle().stats().subscriptions, internal);
}

#[tokio::test]
async fn large_payload_roundtrip() {
    let s = spawn().await;
    let c = async_nats::connect(s.client_url()).await.unwrap();
    let mut sub = c.subscribe("big").await.unwrap();
    c.flush().await.unwrap();
    let body: Vec<u8> = (0..1_000_000u32).map(|i| (i % 251) as u8).collect();
    c.publish("big", body.clone().into()).await.unwrap();
    let m = tokio::time::timeout(Duration::from_secs(5), sub.next())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(m.payload.len(), body.len());
    assert!(m.payload == body);
}

/// Several publishers at once into one subscriber: every message arrives, and each
/// publisher's messages stay in order (inline writes and the writer task never interleave
/// out of order).
#[tokio::test]
async fn concurrent_publishers_keep_per_publisher_order() {
    let s = spawn().await;
    let sub_client = async_nats::connect(s.client_url()).await.unwrap();
    let mut sub = sub_client.subscribe("order.*").await.unwrap();
    sub_client.flush().await.unwrap();
    const PUBS: usize = 3;
    const N: usize = 3000;
    let mut tasks = Vec::new();
    for p in 0..PUBS {
        let url = s.client_url();
        tasks.push(tokio::spawn(async move {
            let c = async_nats::connect(url).await.unwrap();
            for i in 0..N {
                c.publish(format!("order.{p}"), i.to_string().into())
                    .await
                    .unwrap();
                if i % 500 == 0 {
                    c.flush().await.unwrap();
                }
            }
            c.flush().await.unwrap();
        }));
    }
    let mut next = [0usize; PUBS];
    for _ in 0..PUBS * N {
        let m = tokio::time::timeout(Duration::from_secs(10), sub.next())
            .await
            .unwrap()
            .unwrap();
        let p: usize = m.subject.as_str()[6..].parse().unwrap();
        let i: usize = std::str::from_utf8(&m.payload).unwrap().parse().unwrap();
        assert_eq!(i, next[p], "publisher {p} out of order");
        next[p] += 1;
    }
    for t in tasks {
        t.await.unwrap();
    }
}
