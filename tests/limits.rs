//! Connection limits: slow consumers, max connections, max subscriptions, auth.

use std::time::Duration;

use petrel_testkit::{spawn_with, RawClient};

const QUIET: &str = r#"{"verbose":false,"pedantic":false}"#;

#[tokio::test]
async fn slow_consumer_is_disconnected_without_err() {
    let s = spawn_with(|b| b.max_pending(64 * 1024).max_payload(16 * 1024)).await;
    // A subscriber that never reads.
    let mut slow = RawClient::connect_with(s.addr(), QUIET).await;
    slow.send(b"SUB flood 1\r\nPING\r\n").await;
    slow.expect(b"PONG\r\n").await;
    let publisher = async_nats::connect(s.client_url()).await.unwrap();
    flood_until_slow_consumer(&s, &publisher, 16 * 1024, 64).await;
    // The slow connection was closed without an -ERR; the publisher is unaffected.
    let received = slow.read_until_closed().await;
    assert!(
        !received.windows(4).any(|w| w == b"-ERR"),
        "slow consumer must not get -ERR"
    );
    publisher.flush().await.unwrap();
    assert_eq!(s.handle().stats().connections, 1);
}

/// Publish `batch` messages of `size` bytes to `flood` at a time until the server counts a
/// slow consumer (fails after 20 s).
async fn flood_until_slow_consumer(
    s: &petrel_testkit::TestServer,
    publisher: &async_nats::Client,
    size: usize,
    batch: usize,
) {
    let body = bytes::Bytes::from(vec![b'x'; size]);
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    while s.handle().stats().slow_consumers == 0 {
        for _ in 0..batch {
            publisher.publish("flood", body.clone()).await.unwrap();
        }
        publisher.flush().await.unwrap();
        assert!(
            std::time::Instant::now() < deadline,
            "slow consumer never detected"
        );
    }
}

#[tokio::test]
async fn max_connections_refused_after_info() {
    let s = spawn_with(|b| b.max_connections(1)).await;
    let _first = RawClient::connect_with(s.addr(), QUIET).await;
    let mut second = RawClient::connect(s.addr()).await;
    second
        .expect(b"-ERR 'maximum connections exceeded'\r\n")
        .await;
    second.expect_closed().await;
    // async-nats sees the refusal as a connection error.
    assert!(async_nats::connect(s.client_url()).await.is_err());
}

#[tokio::test]
async fn max_subscriptions_refuses_extra_sub_and_stays_open() {
    let s = spawn_with(|b| b.max_subscriptions(1)).await;
    let mut c = RawClient::connect_with(s.addr(), QUIET).await;
    c.send(b"SUB foo 1\r\nSUB bar 2\r\nPING\r\n").await;
    c.expect(b"-ERR 'maximum subscriptions exceeded'\r\nPONG\r\n")
        .await;
    c.send(b"PUB bar 2\r\nhi\r\nPUB foo 2\r\nhi\r\nPING\r\n")
        .await;
    c.expect(b"MSG foo 1 2\r\nhi\r\nPONG\r\n").await;
}

#[tokio::test]
async fn user_password_auth() {
    let s = spawn_with(|b| b.user_pass("etl", "s3cret")).await;
    let mut c = RawClient::connect(s.addr()).await;
    c.send(b"PING\r\n").await;
    c.expect(b"-ERR 'Authorization Violation'\r\n").await;
    c.expect_closed().await;
    let mut c = RawClient::connect(s.addr()).await;
    c.send(b"CONNECT {\"user\":\"etl\",\"pass\":\"wrong\"}\r\n")
        .await;
    c.expect(b"-ERR 'Authorization Violation'\r\n").await;
    c.expect_closed().await;
    let ok = async_nats::ConnectOptions::with_user_and_password("etl".into(), "s3cret".into())
        .connect(s.client_url())
        .await
        .unwrap();
    ok.flush().await.unwrap();
    let bad = async_nats::ConnectOptions::with_user_and_password("etl".into(), "nope".into())
        .connect(s.client_url())
        .await;
    assert!(bad.is_err());
}

#[tokio::test]
async fn token_auth() {
    let s = spawn_with(|b| b.token("tok")).await;
    let ok = async_nats::ConnectOptions::with_token("tok".into())
        .connect(s.client_url())
        .await
        .unwrap();
    ok.flush().await.unwrap();
    let mut c = RawClient::connect(s.addr()).await;
    c.send(b"CONNECT {\"auth_token\":\"bad\"}\r\n").await;
    c.expect(b"-ERR 'Authorization Violation'\r\n").await;
    c.expect_closed().await;
}

#[tokio::test]
async fn auth_timeout_closes_silent_connection() {
    let s = spawn_with(|b| b.token("tok").auth_timeout(Duration::from_millis(200))).await;
    let mut c = RawClient::connect(s.addr()).await;
    c.expect(b"-ERR 'Authentication Timeout'\r\n").await;
    c.expect_closed().await;
}

#[tokio::test]
async fn blocked_writer_closed_after_write_deadline() {
    // A huge max_pending so only the write deadline can catch the non-reading client.
    let s = spawn_with(|b| {
        b.max_pending(1 << 30)
            .max_payload(1 << 20)
            .write_deadline(Duration::from_millis(200))
    })
    .await;
    let mut stuck = RawClient::connect_with(s.addr(), QUIET).await;
    stuck.send(b"SUB flood 1\r\nPING\r\n").await;
    stuck.expect(b"PONG\r\n").await;
    let publisher = async_nats::connect(s.client_url()).await.unwrap();
    flood_until_slow_consumer(&s, &publisher, 1 << 20, 8).await;
    assert_eq!(s.handle().stats().slow_consumers, 1);
}

/// Regression: a publisher faster than a (reading) subscriber is slowed down, as
/// nats-server stalls producers, instead of the subscriber being cut off.
#[tokio::test]
async fn fast_publisher_is_stalled_not_its_slow_reader() {
    let s = spawn_with(|b| b.max_pending(256 * 1024).max_payload(64 * 1024)).await;
    let mut sub = tokio::net::TcpStream::connect(s.addr()).await.unwrap();
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    sub.write_all(b"CONNECT {\"verbose\":false}\r\nSUB flood 1\r\nPING\r\n")
        .await
        .unwrap();
    const N: usize = 8000;
    const SIZE: usize = 4096;
    let reader = tokio::spawn(async move {
        // Count payload bytes roughly by total bytes; read slowly.
        let want = N * SIZE;
        let mut got = 0usize;
        let mut buf = vec![0u8; 64 * 1024];
        while got < want {
            let n = sub.read(&mut buf).await.unwrap();
            assert!(n > 0, "subscriber was disconnected after {got} bytes");
            got += n;
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        sub
    });
    let publisher = async_nats::connect(s.client_url()).await.unwrap();
    let body = bytes::Bytes::from(vec![b'z'; SIZE]);
    for _ in 0..N {
        publisher.publish("flood", body.clone()).await.unwrap();
    }
    publisher.flush().await.unwrap();
    tokio::time::timeout(Duration::from_secs(60), reader)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(s.handle().stats().slow_consumers, 0);
}
