//! The publish path: PubAcks, group commit, dedup, expected headers, rollup, limits.

use petrel_jetstream::Flow;
use serde_json::json;

use crate::harness::{hdrs, Harness};

/// While the API task cannot run, requests fill its queue: at 10,000 the next is dropped
/// and the `API.LIMIT_REACHED` advisory (nats-server's) is published in answer, at most
/// once a second.
#[tokio::test]
async fn the_api_queue_is_bounded_and_advises_when_it_drops() {
    let dir = tempfile::tempdir().unwrap();
    let h = Harness::start(dir.path()).await;
    for i in 0..10_000 {
        match h
            .publish("$JS.API.INFO", Some(&format!("r.{i}")), None, b"")
            .as_slice()
        {
            [Flow::Ok] | [Flow::Stall(_)] => {}
            other => panic!("request {i}: {other:?}"),
        }
    }
    let over = h.publish("$JS.API.INFO", Some("r.over"), None, b"");
    let [Flow::Answer(advisory)] = over.as_slice() else {
        panic!("the 10,001st request was taken: {over:?}");
    };
    assert_eq!(advisory.subject, "$JS.EVENT.ADVISORY.API.LIMIT_REACHED");
    let v: serde_json::Value = serde_json::from_slice(&advisory.payload).unwrap();
    assert_eq!(v["type"], "io.nats.jetstream.advisory.v1.api_limit_reached");
    assert_eq!(v["server"], "test");
    // Within the same second, further drops are silent.
    let again = h.publish("$JS.API.INFO", Some("r.again"), None, b"");
    assert!(matches!(again.as_slice(), [Flow::Ok]));
    // The queued requests are all answered.
    h.wait_for("r.9999").await;
}

/// While the ingest task cannot run (one thread, no yield), publishes fill the stream's
/// queue: past half the publisher is told to stall, at 10,000 messages the next one is
/// refused with nats-server 2.11's 429 PubAck; everything taken is stored.
#[tokio::test]
async fn the_ingest_queue_is_bounded_and_refuses_with_429() {
    let dir = tempfile::tempdir().unwrap();
    let h = Harness::start(dir.path()).await;
    h.create(r#"{"name":"Q","subjects":["q.>"]}"#).await;
    let mut stalls = 0;
    for i in 0..10_000 {
        match h
            .publish("q.x", Some(&format!("r.{i}")), None, b"m")
            .as_slice()
        {
            [Flow::Ok] => {}
            [Flow::Stall(_)] => stalls += 1,
            other => panic!("publish {i}: {other:?}"),
        }
    }
    assert_eq!(stalls, 5_000, "every publish past half is told to stall");
    let over = h.publish("q.x", Some("r.over"), None, b"m");
    let [Flow::Answer(refusal)] = over.as_slice() else {
        panic!("the 10,001st publish was taken");
    };
    assert_eq!(refusal.subject, "r.over");
    assert_eq!(
        refusal.headers.as_deref().unwrap(),
        b"NATS/1.0 429 Too Many Requests\r\n\r\n"
    );
    assert_eq!(
        &refusal.payload[..],
        br#"{"error":{"code":429,"err_code":10167,"description":"too many requests"},"stream":"Q","seq":0}"#
    );
    let info = h.wait_messages("Q", 10_000).await;
    assert_eq!(info["state"]["last_seq"], 10_000);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pub_acks_in_order_for_a_burst() {
    let dir = tempfile::tempdir().unwrap();
    let h = Harness::start(dir.path()).await;
    h.create(r#"{"name":"ORDERS","subjects":["orders.>"]}"#)
        .await;
    // A burst queued at once goes through one batch; every publish gets its own ack.
    let inboxes: Vec<String> = (0..200).map(|_| h.new_inbox()).collect();
    for (i, inbox) in inboxes.iter().enumerate() {
        h.publish(&format!("orders.{i}"), Some(inbox), None, b"m");
    }
    for (i, inbox) in inboxes.iter().enumerate() {
        let ack = h.wait_for(inbox).await;
        assert_eq!(
            ack.text(),
            format!(r#"{{"stream":"ORDERS","seq":{}}}"#, i + 1)
        );
    }
    // Without a reply subject the message is stored, no ack.
    h.publish("orders.x", None, None, b"quiet");
    let info = h.wait_messages("ORDERS", 201).await;
    assert_eq!(info["state"]["last_seq"], 201);
    assert_eq!(info["state"]["num_subjects"], 201);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dedup_within_the_window() {
    let dir = tempfile::tempdir().unwrap();
    let h = Harness::start(dir.path()).await;
    h.create(r#"{"name":"ORDERS","subjects":["orders.>"]}"#)
        .await;
    h.pub_ack("orders.1", None, "a").await;
    let id = hdrs(&[("Nats-Msg-Id", "m-1")]);
    let first = h.pub_ack("orders.1", Some(&id), "b").await;
    assert_eq!(first, json!({"stream":"ORDERS","seq":2}));
    let dup = h.request_hdrs("orders.1", Some(id.as_bytes()), b"b").await;
    assert_eq!(
        dup.text(),
        r#"{"stream":"ORDERS","seq":2,"duplicate":true}"#
    );
    let info = h.request_json("$JS.API.STREAM.INFO.ORDERS", "").await;
    assert_eq!(info["state"]["messages"], 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn expected_header_failures() {
    let dir = tempfile::tempdir().unwrap();
    let h = Harness::start(dir.path()).await;
    h.create(r#"{"name":"ORDERS","subjects":["orders.>"]}"#)
        .await;
    h.pub_ack("orders.a", Some(&hdrs(&[("Nats-Msg-Id", "one")])), "1")
        .await;
    h.pub_ack("orders.b", None, "2").await;

    let r = h
        .request_hdrs(
            "orders.a",
            Some(hdrs(&[("Nats-Expected-Last-Sequence", "1")]).as_bytes()),
            b"x",
        )
        .await;
    assert_eq!(
        r.text(),
        r#"{"error":{"code":400,"err_code":10071,"description":"wrong last sequence: 2"},"stream":"ORDERS","seq":0}"#
    );
    let ok = h
        .pub_ack(
            "orders.a",
            Some(&hdrs(&[("Nats-Expected-Last-Sequence", "2")])),
            "x",
        )
        .await;
    assert_eq!(ok["seq"], 3);

    let r = h
        .pub_ack(
            "orders.a",
            Some(&hdrs(&[("Nats-Expected-Last-Subject-Sequence", "1")])),
            "x",
        )
        .await;
    assert_eq!(r["error"]["err_code"], 10071);
    assert_eq!(r["error"]["description"], "wrong last sequence: 3");
    let r = h
        .pub_ack(
            "orders.new",
            Some(&hdrs(&[("Nats-Expected-Last-Subject-Sequence", "0")])),
            "x",
        )
        .await;
    assert_eq!(r["seq"], 4);

    let r = h
        .pub_ack(
            "orders.a",
            Some(&hdrs(&[("Nats-Expected-Stream", "OTHER")])),
            "x",
        )
        .await;
    assert_eq!(
        r["error"],
        json!({"code":400,"err_code":10060,"description":"expected stream does not match"})
    );

    // The last message had no msg id.
    let r = h
        .pub_ack(
            "orders.a",
            Some(&hdrs(&[("Nats-Expected-Last-Msg-Id", "one")])),
            "x",
        )
        .await;
    assert_eq!(
        r["error"],
        json!({"code":400,"err_code":10070,"description":"wrong last msg ID: "})
    );
    h.pub_ack("orders.a", Some(&hdrs(&[("Nats-Msg-Id", "two")])), "x")
        .await;
    let r = h
        .pub_ack(
            "orders.a",
            Some(&hdrs(&[("Nats-Expected-Last-Msg-Id", "two")])),
            "x",
        )
        .await;
    assert_eq!(r["seq"], 6);
    assert_eq!(r["stream"], "ORDERS");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rollup() {
    let dir = tempfile::tempdir().unwrap();
    let h = Harness::start(dir.path()).await;
    h.create(r#"{"name":"NOROLL","subjects":["nr.>"]}"#).await;
    let r = h
        .pub_ack("nr.a", Some(&hdrs(&[("Nats-Rollup", "sub")])), "x")
        .await;
    assert_eq!(
        r["error"],
        json!({"code":500,"err_code":10111,"description":"rollup not permitted"})
    );

    h.create(r#"{"name":"KV","subjects":["kv.>"],"allow_rollup_hdrs":true}"#)
        .await;
    for i in 0..3 {
        h.pub_ack("kv.a", None, &format!("a{i}")).await;
        h.pub_ack("kv.b", None, &format!("b{i}")).await;
    }
    let r = h
        .pub_ack("kv.a", Some(&hdrs(&[("Nats-Rollup", "sub")])), "a-final")
        .await;
    assert_eq!(r["seq"], 7);
    let info = h.request_json("$JS.API.STREAM.INFO.KV", "").await;
    assert_eq!(info["state"]["messages"], 4); // 3 b's + the rollup
    let r = h
        .pub_ack("kv.c", Some(&hdrs(&[("Nats-Rollup", "all")])), "everything")
        .await;
    assert_eq!(r["seq"], 8);
    let info = h.request_json("$JS.API.STREAM.INFO.KV", "").await;
    assert_eq!(info["state"]["messages"], 1);
    assert_eq!(info["state"]["first_seq"], 8);
    let r = h
        .pub_ack("kv.c", Some(&hdrs(&[("Nats-Rollup", "bogus")])), "x")
        .await;
    assert_eq!(r["error"]["err_code"], 10111);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn limits_errors() {
    let dir = tempfile::tempdir().unwrap();
    let h = Harness::start(dir.path()).await;
    h.create(r#"{"name":"M","subjects":["m"],"max_msgs":2,"discard":"new"}"#)
        .await;
    h.pub_ack("m", None, "1").await;
    h.pub_ack("m", None, "2").await;
    let r = h.request("m", "3").await;
    assert_eq!(
        r.text(),
        r#"{"error":{"code":503,"err_code":10077,"description":"maximum messages exceeded"},"stream":"M","seq":0}"#
    );
    h.create(r#"{"name":"B","subjects":["b"],"max_bytes":100,"discard":"new"}"#)
        .await;
    h.pub_ack("b", None, "0123456789").await;
    let r = h.pub_ack("b", None, &"x".repeat(80)).await;
    assert_eq!(r["error"]["description"], "maximum bytes exceeded");
    assert_eq!(r["error"]["err_code"], 10077);
    h.create(
        r#"{"name":"P","subjects":["p.>"],"max_msgs_per_subject":1,"discard":"new","discard_new_per_subject":true}"#,
    )
    .await;
    h.pub_ack("p.a", None, "1").await;
    let r = h.pub_ack("p.a", None, "2").await;
    assert_eq!(
        r["error"]["description"],
        "maximum messages per subject exceeded"
    );
    h.create(r#"{"name":"SZ","subjects":["sz"],"max_msg_size":4}"#)
        .await;
    let r = h.pub_ack("sz", None, "12345").await;
    assert_eq!(
        r["error"],
        json!({"code":400,"err_code":10054,"description":"message size exceeds maximum allowed"})
    );
    // Discard old keeps the newest.
    h.create(r#"{"name":"OLD","subjects":["old"],"max_msgs":2}"#)
        .await;
    for i in 0..5 {
        h.pub_ack("old", None, &i.to_string()).await;
    }
    let info = h.request_json("$JS.API.STREAM.INFO.OLD", "").await;
    assert_eq!(info["state"]["messages"], 2);
    assert_eq!(info["state"]["first_seq"], 4);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sealed_no_ack_and_interest() {
    let dir = tempfile::tempdir().unwrap();
    let h = Harness::start(dir.path()).await;
    h.create(r#"{"name":"S","subjects":["s"]}"#).await;
    h.pub_ack("s", None, "1").await;
    let r = h
        .request_json(
            "$JS.API.STREAM.UPDATE.S",
            r#"{"name":"S","subjects":["s"],"sealed":true}"#,
        )
        .await;
    assert_eq!(r["config"]["sealed"], true);
    assert_eq!(r["config"]["deny_delete"], true);
    let r = h.pub_ack("s", None, "2").await;
    assert_eq!(
        r["error"],
        json!({"code":400,"err_code":10109,"description":"invalid operation on sealed stream"})
    );

    h.create(r#"{"name":"NA","subjects":["na"],"no_ack":true}"#)
        .await;
    h.publish("na", Some("_INBOX.noack"), None, b"x");
    h.wait_messages("NA", 1).await;
    assert!(h.find("_INBOX.noack").is_none());

    // Interest retention without consumers: acked, then gone.
    h.create(r#"{"name":"I","subjects":["i"],"retention":"interest"}"#)
        .await;
    let r = h.pub_ack("i", None, "x").await;
    assert_eq!(r["seq"], 1);
    let info = h.request_json("$JS.API.STREAM.INFO.I", "").await;
    assert_eq!(info["state"]["messages"], 0);
    assert_eq!(info["state"]["first_seq"], 2);
    assert_eq!(info["state"]["last_seq"], 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn max_age_expires_on_the_timer() {
    let dir = tempfile::tempdir().unwrap();
    let h = Harness::start(dir.path()).await;
    let r = h
        .create(r#"{"name":"AGE","subjects":["age"],"max_age":300000000}"#)
        .await;
    assert_eq!(r["config"]["duplicate_window"], 300_000_000);
    h.pub_ack("age", None, "x").await;
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    loop {
        let info = h.request_json("$JS.API.STREAM.INFO.AGE", "").await;
        if info["state"]["messages"] == 0 {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "not expired: {info}");
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn subject_transform_applies_before_storing() {
    let dir = tempfile::tempdir().unwrap();
    let h = Harness::start(dir.path()).await;
    h.create(
        r#"{"name":"T","subjects":["in.>"],"allow_direct":true,"subject_transform":{"src":"in.*","dest":"out.{{wildcard(1)}}"}}"#,
    )
    .await;
    h.pub_ack("in.x", None, "v").await;
    let r = h
        .request_json("$JS.API.STREAM.MSG.GET.T", r#"{"seq":1}"#)
        .await;
    assert_eq!(r["message"]["subject"], "out.x");
}
