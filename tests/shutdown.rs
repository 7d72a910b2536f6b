//! Graceful shutdown flushes what is queued, then closes every connection.

use std::time::Duration;

use petrel_testkit::{spawn, RawClient};

#[tokio::test]
async fn shutdown_flushes_and_closes_clients() {
    let s = spawn().await;
    let mut raw = RawClient::connect_with(s.addr(), r#"{"verbose":false}"#).await;
    raw.send(b"SUB x 1\r\nPING\r\n").await;
    raw.expect(b"PONG\r\n").await;
    let c = async_nats::connect(s.client_url()).await.unwrap();
    for _ in 0..100 {
        c.publish("x", "m".into()).await.unwrap();
    }
    c.flush().await.unwrap();
    let addr = s.addr();
    s.shutdown().await;
    for _ in 0..100 {
        raw.expect(b"MSG x 1 1\r\nm\r\n").await;
    }
    raw.expect_closed().await;
    assert!(tokio::net::TcpStream::connect(addr).await.is_err());
}

#[tokio::test]
async fn client_sees_disconnect_on_shutdown() {
    let s = spawn().await;
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    let c = async_nats::ConnectOptions::new()
        .event_callback(move |e| {
            let tx = tx.clone();
            async move {
                let _ = tx.send(e.to_string());
            }
        })
        .connect(s.client_url())
        .await
        .unwrap();
    let _sub = c.subscribe("y").await.unwrap();
    c.flush().await.unwrap();
    s.shutdown().await;
    let saw_disconnect = tokio::time::timeout(Duration::from_secs(5), async {
        while let Some(ev) = rx.recv().await {
            if ev.contains("disconnected") {
                return true;
            }
        }
        false
    })
    .await
    .unwrap_or(false);
    assert!(saw_disconnect, "client was not told about the shutdown");
}
