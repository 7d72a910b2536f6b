//! A full disk or a failing write loses nothing and needs no restart: the publisher gets an
//! error PubAck, nothing it was refused is ever read, core NATS keeps serving, and once
//! the disk has room again publishes succeed on the same stream. A durable consumer whose
//! state file is lost or damaged restarts without skipping un-acked messages.

use std::sync::Arc;
use std::time::Duration;

use async_nats::jetstream::{self, consumer, stream};
use futures::StreamExt;
use petrel_store::{FaultOp, FaultyBackend, StdBackend};
use petrel_testkit::{spawn_with_store, TestServer};

use crate::support::{config, fetch_within, publish};

async fn server_on(fb: &FaultyBackend) -> TestServer {
    let backend = Arc::new(fb.clone());
    spawn_with_store(|b, dir| b.jetstream(dir).store_backend(backend)).await
}

#[tokio::test]
async fn a_full_disk_refuses_publishes_until_space_returns_without_a_restart() {
    let fb = FaultyBackend::new(StdBackend);
    let s = server_on(&fb).await;
    let nc = async_nats::connect(s.client_url()).await.unwrap();
    let js = jetstream::new(nc.clone());
    let st = js
        .create_stream(stream::Config {
            allow_direct: true,
            ..config("DISK", &["disk.>"])
        })
        .await
        .unwrap();
    let c = st
        .create_consumer(consumer::pull::Config {
            durable_name: Some("C".into()),
            ..Default::default()
        })
        .await
        .unwrap();
    publish(&js, "disk.a", 2).await;

    fb.set_space(Some(0));
    for i in 0..3 {
        let err = js
            .publish("disk.a", format!("refused {i}").into())
            .await
            .unwrap()
            .await
            .expect_err("a publish on a full disk is refused");
        assert!(err.to_string().contains("os error 28"), "{err}");
    }
    // Nothing refused is readable: not by DIRECT.GET, not by the consumer.
    let last = st.direct_get_last_for_subject("disk.a").await.unwrap();
    assert_eq!(last.sequence, 2);
    assert_eq!(&last.payload[..], b"m1");
    // Core NATS keeps serving.
    let mut sub = nc.subscribe("core.x").await.unwrap();
    nc.publish("core.x", "still here".into()).await.unwrap();
    assert_eq!(sub.next().await.unwrap().payload, "still here");

    fb.set_space(None);
    let ack = js
        .publish("disk.a", "after".into())
        .await
        .unwrap()
        .await
        .unwrap();
    assert_eq!(ack.sequence, 3, "the refused messages took no sequence");
    let got: Vec<String> = fetch_within(&c, 10, Duration::from_secs(1))
        .await
        .iter()
        .map(|m| String::from_utf8_lossy(&m.payload).into_owned())
        .collect();
    assert_eq!(got, ["m0", "m1", "after"]);
}

#[tokio::test]
async fn a_failed_fsync_refuses_that_batch_and_the_next_publish_works() {
    let fb = FaultyBackend::new(StdBackend);
    let s = server_on(&fb).await;
    let nc = async_nats::connect(s.client_url()).await.unwrap();
    let js = jetstream::new(nc.clone());
    let st = js.create_stream(config("SYNC", &["sync.>"])).await.unwrap();
    publish(&js, "sync.a", 1).await;
    fb.fail_nth(FaultOp::Sync, 1);
    let err = js
        .publish("sync.a", "lost".into())
        .await
        .unwrap()
        .await
        .expect_err("the fsync failed");
    assert!(err.to_string().contains("injected Sync failure"), "{err}");
    let ack = js
        .publish("sync.a", "ok".into())
        .await
        .unwrap()
        .await
        .unwrap();
    assert_eq!(ack.sequence, 2);
    let info = st.get_info().await.unwrap();
    assert_eq!(info.state.messages, 2);
}

#[tokio::test]
async fn consumer_metadata_goes_through_the_store_io_layer() {
    let fb = FaultyBackend::new(StdBackend);
    let s = server_on(&fb).await;
    let nc = async_nats::connect(s.client_url()).await.unwrap();
    let js = jetstream::new(nc.clone());
    let st = js.create_stream(config("META", &["meta.>"])).await.unwrap();
    // The consumer's meta.json is written through the backend: its rename fails.
    fb.fail_nth(FaultOp::Rename, 1);
    let err = st
        .create_consumer(consumer::pull::Config {
            durable_name: Some("C".into()),
            ..Default::default()
        })
        .await
        .expect_err("writing the consumer's metadata failed");
    assert!(err.to_string().contains("injected Rename failure"), "{err}");
    assert!(st.consumer_info("C").await.is_err(), "nothing half-created");
    st.create_consumer(consumer::pull::Config {
        durable_name: Some("C".into()),
        ..Default::default()
    })
    .await
    .unwrap();
}

/// Runs the lost-state scenario: a durable `deliver_policy: new` consumer gets 5 messages
/// without acking, the server stops, `damage` is done to its state file, the server
/// restarts: all 5 come back (delivered again), none skipped.
async fn state_loss(damage: impl FnOnce(&std::path::Path)) {
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().to_path_buf();
    let s = spawn_with_store(|b, _| b.jetstream(&store)).await;
    let nc = async_nats::connect(s.client_url()).await.unwrap();
    let js = jetstream::new(nc.clone());
    let st = js.create_stream(config("LOSS", &["loss.>"])).await.unwrap();
    let c = st
        .create_consumer(consumer::pull::Config {
            durable_name: Some("C".into()),
            deliver_policy: consumer::DeliverPolicy::New,
            ack_wait: Duration::from_secs(60),
            ..Default::default()
        })
        .await
        .unwrap();
    publish(&js, "loss.a", 5).await;
    assert_eq!(fetch_within(&c, 5, Duration::from_secs(1)).await.len(), 5);
    drop(nc);
    s.shutdown().await;
    let state = store.join("jetstream/$G/streams/LOSS/obs/C/state.json");
    assert!(state.exists());
    damage(&state);

    let s = spawn_with_store(|b, _| b.jetstream(&store)).await;
    let nc = async_nats::connect(s.client_url()).await.unwrap();
    let js = jetstream::new(nc.clone());
    let c: consumer::PullConsumer = js
        .get_stream("LOSS")
        .await
        .unwrap()
        .get_consumer("C")
        .await
        .unwrap();
    let again: Vec<u64> = fetch_within(&c, 10, Duration::from_secs(1))
        .await
        .iter()
        .map(|m| m.info().unwrap().stream_sequence)
        .collect();
    assert_eq!(again, [1, 2, 3, 4, 5], "un-acked messages were skipped");
}

#[tokio::test]
async fn a_corrupt_consumer_state_never_skips_unacked_messages() {
    state_loss(|state| {
        let mut bytes = std::fs::read(state).unwrap();
        bytes[5] ^= 0xff;
        std::fs::write(state, bytes).unwrap();
    })
    .await;
}

#[tokio::test]
async fn a_missing_consumer_state_never_skips_unacked_messages() {
    state_loss(|state| std::fs::remove_file(state).unwrap()).await;
}

/// GETs `/healthz` until its status is `want` (polled, at most 15 s).
async fn healthz_until(s: &TestServer, want: u16) -> serde_json::Value {
    let addr = s.monitor_addr().expect("monitoring on");
    let deadline = tokio::time::Instant::now() + Duration::from_secs(15);
    loop {
        let r = petrel_testkit::http_get(addr, "/healthz").await.unwrap();
        if r.status == want {
            return r.json();
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "/healthz never {want}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test]
async fn healthz_reports_a_full_store_and_recovers_when_space_returns() {
    let fb = FaultyBackend::new(StdBackend);
    let backend = Arc::new(fb.clone());
    let s = spawn_with_store(|b, dir| b.jetstream(dir).store_backend(backend).http_port(0)).await;
    healthz_until(&s, 200).await;
    fb.set_space(Some(0));
    let v = healthz_until(&s, 503).await;
    let error = v["error"].as_str().unwrap();
    assert!(
        error.contains("is not writable") && error.contains("os error 28"),
        "{v}"
    );
    fb.set_space(None);
    healthz_until(&s, 200).await;
}

#[tokio::test]
async fn a_store_that_takes_no_writes_at_start_leaves_core_nats_up_and_healthz_down() {
    let fb = FaultyBackend::new(StdBackend);
    fb.set_space(Some(0));
    let backend = Arc::new(fb.clone());
    let s = spawn_with_store(|b, dir| b.jetstream(dir).store_backend(backend).http_port(0)).await;
    let v = healthz_until(&s, 503).await;
    assert!(
        v["error"].as_str().unwrap().contains("is not writable"),
        "{v}"
    );
    let nc = async_nats::connect(s.client_url()).await.unwrap();
    let mut sub = nc.subscribe("core.x").await.unwrap();
    nc.publish("core.x", "up".into()).await.unwrap();
    assert_eq!(sub.next().await.unwrap().payload, "up");
}
