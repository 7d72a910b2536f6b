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

/// A clean shutdown writes the consumers' states without an fsync each (one flush of the
/// store's filesystem at the end makes them durable, instead of 100,000 fsyncs): a power
/// cut right after the shutdown keeps every ack, and an idle consumer's unchanged state is
/// kept without being rewritten.
#[tokio::test]
async fn consumer_states_survive_a_power_cut_right_after_a_clean_shutdown() {
    use async_nats::jetstream::{self, consumer};
    use petrel_store::SimFs;

    use crate::support::{config, fetch_within, publish};

    let fs = SimFs::default();
    let dir = tempfile::tempdir().unwrap();
    let s = crate::support::boot_on_sim(&fs, dir.path()).await;
    let nc = async_nats::connect(s.client_url()).await.unwrap();
    let js = jetstream::new(nc.clone());
    js.create_stream(config("S", &["s.>"])).await.unwrap();
    publish(&js, "s.x", 10).await;
    let pull = |name: &str| consumer::pull::Config {
        durable_name: Some(name.to_string()),
        ack_policy: consumer::AckPolicy::Explicit,
        ..Default::default()
    };
    let busy: consumer::PullConsumer = js
        .create_consumer_on_stream(pull("BUSY"), "S")
        .await
        .unwrap();
    js.create_consumer_on_stream(pull("IDLE"), "S")
        .await
        .unwrap();
    for m in fetch_within(&busy, 4, Duration::from_secs(2)).await {
        m.double_ack().await.unwrap();
    }
    nc.drain().await.unwrap();
    s.shutdown().await;
    fs.crash_losing_unsynced();

    let s = crate::support::boot_on_sim(&fs, dir.path()).await;
    let nc = async_nats::connect(s.client_url()).await.unwrap();
    let js = jetstream::new(nc);
    let stream = js.get_stream("S").await.unwrap();
    let mut busy: consumer::PullConsumer = stream.get_consumer("BUSY").await.unwrap();
    let info = busy.info().await.unwrap();
    assert_eq!(
        (
            info.ack_floor.stream_sequence,
            info.num_pending,
            info.num_ack_pending
        ),
        (4, 6, 0)
    );
    let mut idle: consumer::PullConsumer = stream.get_consumer("IDLE").await.unwrap();
    let info = idle.info().await.unwrap();
    assert_eq!((info.ack_floor.stream_sequence, info.num_pending), (0, 10));
    s.shutdown().await;
}
