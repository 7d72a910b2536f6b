//! Restart recovery, memory storage, bad metadata, interval sync.

use std::time::Duration;

use petrel_jetstream::SyncMode;

use crate::harness::{config, hdrs, Harness};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restart_recovers_streams_messages_and_dedup() {
    let dir = tempfile::tempdir().unwrap();
    let created;
    {
        let h = Harness::start(dir.path()).await;
        let r = h
            .create(r#"{"name":"ORDERS","subjects":["orders.>"],"max_msgs_per_subject":5}"#)
            .await;
        created = r["created"].clone();
        h.create(r#"{"name":"MEM","subjects":["mem"],"storage":"memory"}"#)
            .await;
        h.pub_ack("mem", None, "gone after restart").await;
        for i in 0..10 {
            h.pub_ack(&format!("orders.{}", i % 3), None, &format!("m{i}"))
                .await;
        }
        h.pub_ack("orders.id", Some(&hdrs(&[("Nats-Msg-Id", "abc")])), "once")
            .await;
        h.js.shutdown().await;
        // After shutdown nothing is taken any more.
        h.publish("orders.late", Some("_INBOX.late"), None, b"x");
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert!(h.find("_INBOX.late").is_none());
    }
    let h = Harness::start(dir.path()).await;
    let names = h.request_json("$JS.API.STREAM.NAMES", "").await;
    assert_eq!(names["streams"], serde_json::json!(["ORDERS"]));
    let info = h.request_json("$JS.API.STREAM.INFO.ORDERS", "").await;
    assert_eq!(info["created"], created);
    assert_eq!(info["config"]["max_msgs_per_subject"], 5);
    assert_eq!(info["state"]["messages"], 11);
    assert_eq!(info["state"]["last_seq"], 11);
    // Subscriptions are back and the sequence continues.
    let ack = h.pub_ack("orders.new", None, "after").await;
    assert_eq!(ack["seq"], 12);
    // The dedup window survived the restart.
    let dup = h
        .pub_ack("orders.id", Some(&hdrs(&[("Nats-Msg-Id", "abc")])), "once")
        .await;
    assert_eq!(
        dup,
        serde_json::json!({"stream":"ORDERS","seq":11,"duplicate":true})
    );
    let r = h
        .request_json("$JS.API.STREAM.MSG.GET.ORDERS", r#"{"seq":3}"#)
        .await;
    assert_eq!(r["message"]["subject"], "orders.2");
    h.js.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_metadata_is_skipped() {
    let dir = tempfile::tempdir().unwrap();
    {
        let h = Harness::start(dir.path()).await;
        h.create(r#"{"name":"GOOD","subjects":["good"]}"#).await;
        h.create(r#"{"name":"BAD","subjects":["bad"]}"#).await;
        h.js.shutdown().await;
    }
    let streams = dir.path().join("jetstream/$G/streams");
    std::fs::write(streams.join("BAD/meta.json"), b"\x00garbage").unwrap();
    std::fs::create_dir_all(streams.join("EMPTY")).unwrap();
    let h = Harness::start(dir.path()).await;
    let names = h.request_json("$JS.API.STREAM.NAMES", "").await;
    assert_eq!(names["streams"], serde_json::json!(["GOOD"]));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn memory_storage_counts_memory_bytes() {
    let dir = tempfile::tempdir().unwrap();
    let h = Harness::start(dir.path()).await;
    h.create(r#"{"name":"L","subjects":["l"],"storage":"memory"}"#)
        .await;
    h.pub_ack("l", None, "x0").await;
    let info = h.request_json("$JS.API.STREAM.INFO.L", "").await;
    assert_eq!(info["state"]["bytes"], 19);
    let acct = h.request_json("$JS.API.INFO", "").await;
    assert_eq!(acct["memory"], 19);
    assert_eq!(acct["storage"], 0);
    assert!(!dir.path().join("jetstream/$G/streams/L").exists());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn interval_sync_mode_and_resource_limits() {
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = config(dir.path());
    cfg.sync = SyncMode::Interval(Duration::from_millis(100));
    cfg.max_file = Some(1000);
    let h = Harness::start_with(cfg).await;
    h.create(r#"{"name":"S","subjects":["s"]}"#).await;
    let ack = h.pub_ack("s", None, "lazy").await;
    assert_eq!(ack["seq"], 1);
    tokio::time::sleep(Duration::from_millis(300)).await;
    let r = h
        .request_json(
            "$JS.API.STREAM.CREATE.BIG",
            r#"{"name":"BIG","max_bytes":5000}"#,
        )
        .await;
    assert_eq!(r["error"]["err_code"], 10047);
    h.js.shutdown().await;
    let h = Harness::start(dir.path()).await;
    let info = h.request_json("$JS.API.STREAM.INFO.S", "").await;
    assert_eq!(info["state"]["messages"], 1);
}
