//! Request/reply with timeouts and no-responders.

use std::time::Duration;

use futures::StreamExt;
use petrel_testkit::spawn;

#[tokio::test]
async fn request_reply_roundtrip() {
    let s = spawn().await;
    let server_side = async_nats::connect(s.client_url()).await.unwrap();
    let mut svc = server_side.subscribe("agent.tools.search").await.unwrap();
    server_side.flush().await.unwrap();
    let responder = tokio::spawn(async move {
        for _ in 0..3 {
            let req = svc.next().await.unwrap();
            let reply = req.reply.unwrap();
            let mut body = b"re:".to_vec();
            body.extend_from_slice(&req.payload);
            server_side.publish(reply, body.into()).await.unwrap();
        }
        server_side.flush().await.unwrap();
    });
    let client = async_nats::ConnectOptions::new()
        .request_timeout(Some(Duration::from_secs(5)))
        .connect(s.client_url())
        .await
        .unwrap();
    for q in ["a", "b", "c"] {
        let resp = client
            .request("agent.tools.search", q.into())
            .await
            .unwrap();
        assert_eq!(resp.payload, format!("re:{q}"));
    }
    responder.await.unwrap();
}

#[tokio::test]
async fn no_responders_fails_fast() {
    let s = spawn().await;
    let client = async_nats::ConnectOptions::new()
        .request_timeout(Some(Duration::from_secs(5)))
        .connect(s.client_url())
        .await
        .unwrap();
    let start = std::time::Instant::now();
    let err = client.request("nobody.home", "x".into()).await.unwrap_err();
    assert_eq!(err.kind(), async_nats::RequestErrorKind::NoResponders);
    assert!(
        start.elapsed() < Duration::from_secs(4),
        "503 must arrive before the timeout"
    );
}

#[tokio::test]
async fn request_times_out_when_responder_is_silent() {
    let s = spawn().await;
    let silent = async_nats::connect(s.client_url()).await.unwrap();
    let _sub = silent.subscribe("slow.service").await.unwrap();
    silent.flush().await.unwrap();
    let client = async_nats::ConnectOptions::new()
        .request_timeout(Some(Duration::from_millis(300)))
        .connect(s.client_url())
        .await
        .unwrap();
    let err = client
        .request("slow.service", "x".into())
        .await
        .unwrap_err();
    assert_eq!(err.kind(), async_nats::RequestErrorKind::TimedOut);
}
