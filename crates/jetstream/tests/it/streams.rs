//! Stream administration over `$JS.API`: create, info, update, delete, names, list, errors.

use serde_json::{json, Value};

use crate::harness::Harness;

const ORDERS_CONFIG: &str = r#""config":{"name":"ORDERS","subjects":["orders.\u003e"],"retention":"limits","max_consumers":-1,"max_msgs":-1,"max_bytes":-1,"max_age":0,"max_msgs_per_subject":-1,"max_msg_size":-1,"discard":"old","storage":"file","num_replicas":1,"duplicate_window":120000000000,"allow_direct":false,"mirror_direct":false,"sealed":false,"deny_delete":false,"deny_purge":false,"allow_rollup_hdrs":false}"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn create_response_is_byte_exact() {
    let dir = tempfile::tempdir().unwrap();
    let h = Harness::start(dir.path()).await;
    let r = h
        .request(
            "$JS.API.STREAM.CREATE.ORDERS",
            r#"{"name":"ORDERS","subjects":["orders.>"]}"#,
        )
        .await
        .text();
    let created = r
        .split(r#""created":""#)
        .nth(1)
        .and_then(|s| s.split('"').next())
        .unwrap()
        .to_string();
    assert!(
        created.ends_with('Z') && created.starts_with("20"),
        "{created}"
    );
    let want = format!(
        r#"{{"type":"io.nats.jetstream.api.v1.stream_create_response",{ORDERS_CONFIG},"created":"{created}","state":{{"messages":0,"bytes":0,"first_seq":0,"first_ts":"0001-01-01T00:00:00Z","last_seq":0,"last_ts":"0001-01-01T00:00:00Z","consumer_count":0}},"did_create":true}}"#
    );
    assert_eq!(r, want);
    // The advisory went out.
    let adv = h
        .wait_for("$JS.EVENT.ADVISORY.STREAM.CREATED.ORDERS")
        .await
        .json();
    assert_eq!(adv["type"], "io.nats.jetstream.advisory.v1.stream_action");
    assert_eq!(adv["stream"], "ORDERS");
    assert_eq!(adv["action"], "create");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn create_is_idempotent_and_refuses_a_different_config() {
    let dir = tempfile::tempdir().unwrap();
    let h = Harness::start(dir.path()).await;
    h.create(r#"{"name":"ORDERS","subjects":["orders.>"]}"#)
        .await;
    let again = h
        .request_json(
            "$JS.API.STREAM.CREATE.ORDERS",
            r#"{"name":"ORDERS","subjects":["orders.>"],"max_msgs":-1}"#,
        )
        .await;
    assert!(again.get("error").is_none(), "{again}");
    assert!(again.get("did_create").is_none());
    let r = h
        .request(
            "$JS.API.STREAM.CREATE.ORDERS",
            r#"{"name":"ORDERS","subjects":["other.>"]}"#,
        )
        .await
        .text();
    assert_eq!(
        r,
        r#"{"type":"io.nats.jetstream.api.v1.stream_create_response","error":{"code":400,"err_code":10058,"description":"stream name already in use with a different configuration"}}"#
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn create_errors() {
    let dir = tempfile::tempdir().unwrap();
    let h = Harness::start(dir.path()).await;
    let err = |v: Value| {
        (
            v["error"]["code"].clone(),
            v["error"]["err_code"].clone(),
            v["error"]["description"].clone(),
        )
    };
    let r = h
        .request_json(
            "$JS.API.STREAM.CREATE.R3",
            r#"{"name":"R3","num_replicas":3}"#,
        )
        .await;
    assert_eq!(
        err(r),
        (
            json!(500),
            json!(10074),
            json!("replicas > 1 not supported in non-clustered mode")
        )
    );
    let r = h.request("$JS.API.STREAM.CREATE.BAD", "{nope").await.text();
    assert_eq!(
        r,
        r#"{"type":"io.nats.jetstream.api.v1.stream_create_response","error":{"code":400,"err_code":10025,"description":"invalid JSON"}}"#
    );
    let r = h
        .request_json("$JS.API.STREAM.CREATE.A", r#"{"name":"B"}"#)
        .await;
    assert_eq!(r["error"]["err_code"], 10056);
    let r = h
        .request_json(
            "$JS.API.STREAM.CREATE.S2",
            r#"{"name":"S2","compression":"s2"}"#,
        )
        .await;
    assert_eq!(r["config"]["compression"], "s2", "{r}");
    let r = h
        .request_json(
            "$JS.API.STREAM.CREATE.API",
            r#"{"name":"API","subjects":["$JS.API.>"]}"#,
        )
        .await;
    assert_eq!(
        err(r),
        (
            json!(500),
            json!(10052),
            json!("subjects that overlap with jetstream api require no-ack to be true")
        )
    );
    // nats-server 2.15.1's other subject-space rules.
    for (subjects, text) in [
        (
            r#"[">"]"#,
            "capturing all subjects requires no-ack to be true",
        ),
        (
            r#"["$SYS.REQ.>"]"#,
            "subjects that overlap with system api require no-ack to be true",
        ),
        (
            r#"["$JSC.x"]"#,
            "subjects that overlap with jetstream api require no-ack to be true",
        ),
    ] {
        let r = h
            .request_json(
                "$JS.API.STREAM.CREATE.NS",
                &format!(r#"{{"name":"NS","subjects":{subjects}}}"#),
            )
            .await;
        assert_eq!(r["error"]["description"], text, "{subjects}");
    }
    // Allowed: advisories, account events, and anything with no_ack.
    h.create(r#"{"name":"ADV","subjects":["$JS.EVENT.ADVISORY.>"]}"#)
        .await;
    h.create(r#"{"name":"ACC","subjects":["$SYS.ACCOUNT.>"]}"#)
        .await;
    h.create(r#"{"name":"APILOG","subjects":["$JS.API.>"],"no_ack":true}"#)
        .await;
    // 2.10 fields are kept when set.
    let r = h
        .create(r#"{"name":"NEW","compression":"none","first_seq":10,"metadata":{"a":"b"}}"#)
        .await;
    assert_eq!(r["config"]["compression"], "none");
    assert_eq!(r["config"]["first_seq"], 10);
    assert_eq!(r["config"]["metadata"]["a"], "b");
    assert_eq!(r["state"]["first_seq"], 10);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn overlap_error_names_the_other_stream() {
    let dir = tempfile::tempdir().unwrap();
    let h = Harness::start(dir.path()).await;
    h.create(r#"{"name":"ORDERS","subjects":["orders.>"]}"#)
        .await;
    let r = h
        .request(
            "$JS.API.STREAM.CREATE.MORE",
            r#"{"name":"MORE","subjects":["orders.new"]}"#,
        )
        .await
        .text();
    assert_eq!(
        r,
        r#"{"type":"io.nats.jetstream.api.v1.stream_create_response","error":{"code":400,"err_code":10065,"description":"subjects overlap with an existing stream (ORDERS)"}}"#
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn info_update_delete() {
    let dir = tempfile::tempdir().unwrap();
    let h = Harness::start(dir.path()).await;
    let missing = h.request("$JS.API.STREAM.INFO.NOPE", "").await.text();
    assert_eq!(
        missing,
        r#"{"type":"io.nats.jetstream.api.v1.stream_info_response","error":{"code":404,"err_code":10059,"description":"stream not found"},"total":0,"offset":0,"limit":0}"#
    );
    h.create(r#"{"name":"ORDERS","subjects":["orders.>"]}"#)
        .await;
    let bad = h.request("$JS.API.STREAM.INFO.ORDERS", "{x").await.text();
    assert_eq!(
        bad,
        r#"{"type":"io.nats.jetstream.api.v1.stream_info_response","error":{"code":400,"err_code":10025,"description":"invalid JSON"},"total":0,"offset":0,"limit":0}"#
    );
    let info = h.request("$JS.API.STREAM.INFO.ORDERS", "").await.text();
    assert!(
        info.starts_with(r#"{"type":"io.nats.jetstream.api.v1.stream_info_response","total":0,"offset":0,"limit":0,"config":"#),
        "{info}"
    );

    // Update: retention change refused, other changes applied and resubscribed.
    let r = h
        .request_json(
            "$JS.API.STREAM.UPDATE.ORDERS",
            r#"{"name":"ORDERS","subjects":["orders.>"],"retention":"workqueue"}"#,
        )
        .await;
    assert_eq!(r["error"]["code"], 500);
    assert_eq!(r["error"]["err_code"], 10052);
    assert_eq!(
        r["error"]["description"],
        "stream configuration update can not change retention policy"
    );
    let r = h
        .request_json("$JS.API.STREAM.UPDATE.NOPE", r#"{"name":"NOPE"}"#)
        .await;
    assert_eq!(r["error"]["err_code"], 10059);
    let r = h
        .request_json(
            "$JS.API.STREAM.UPDATE.ORDERS",
            r#"{"name":"ORDERS","subjects":["shipped.>"],"max_msgs":10}"#,
        )
        .await;
    assert_eq!(r["type"], "io.nats.jetstream.api.v1.stream_update_response");
    assert_eq!(r["config"]["max_msgs"], 10);
    h.wait_for("$JS.EVENT.ADVISORY.STREAM.UPDATED.ORDERS").await;
    let subs = h.subscribed();
    assert!(subs.contains(&"shipped.>".to_string()), "{subs:?}");
    assert!(!subs.contains(&"orders.>".to_string()), "{subs:?}");
    let ack = h.pub_ack("shipped.1", None, "x").await;
    assert_eq!(ack["seq"], 1);

    // Delete.
    let r = h.request("$JS.API.STREAM.DELETE.ORDERS", "").await.text();
    assert_eq!(
        r,
        r#"{"type":"io.nats.jetstream.api.v1.stream_delete_response","success":true}"#
    );
    h.wait_for("$JS.EVENT.ADVISORY.STREAM.DELETED.ORDERS").await;
    assert!(!dir.path().join("jetstream/$G/streams/ORDERS").exists());
    let r = h.request_json("$JS.API.STREAM.DELETE.ORDERS", "").await;
    assert_eq!(r["error"]["err_code"], 10059);
    let subs = h.subscribed();
    assert_eq!(subs, vec!["$JS.API.>".to_string()]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn names_and_list_paging_and_filters() {
    let dir = tempfile::tempdir().unwrap();
    let h = Harness::start(dir.path()).await;
    let empty = h.request("$JS.API.STREAM.NAMES", "").await.text();
    assert_eq!(
        empty,
        r#"{"type":"io.nats.jetstream.api.v1.stream_names_response","total":0,"offset":0,"limit":1024,"streams":[]}"#
    );
    for i in 0..5 {
        h.create(&format!(
            r#"{{"name":"S{i}","subjects":["s{i}.>"],"storage":"memory"}}"#
        ))
        .await;
    }
    h.create(r#"{"name":"KV_b","subjects":["$KV.b.>"],"storage":"memory"}"#)
        .await;
    let r = h.request_json("$JS.API.STREAM.NAMES", "").await;
    assert_eq!(r["total"], 6);
    assert_eq!(r["streams"][0], "KV_b");
    let r = h
        .request_json("$JS.API.STREAM.NAMES", r#"{"offset":4}"#)
        .await;
    assert_eq!(
        (r["total"].clone(), r["offset"].clone()),
        (json!(6), json!(4))
    );
    assert_eq!(r["streams"], json!(["S3", "S4"]));
    let r = h
        .request_json("$JS.API.STREAM.NAMES", r#"{"subject":"$KV.*.>"}"#)
        .await;
    assert_eq!(r["streams"], json!(["KV_b"]));
    assert_eq!(r["total"], 1);
    let r = h
        .request_json("$JS.API.STREAM.LIST", r#"{"offset":1,"subject":"s2.x"}"#)
        .await;
    assert_eq!(r["type"], "io.nats.jetstream.api.v1.stream_list_response");
    assert_eq!(
        (r["total"].clone(), r["limit"].clone()),
        (json!(1), json!(256))
    );
    assert_eq!(r["streams"], json!([]));
    let r = h.request_json("$JS.API.STREAM.LIST", "").await;
    assert_eq!(r["streams"].as_array().unwrap().len(), 6);
    assert_eq!(r["streams"][1]["config"]["name"], "S0");
    assert_eq!(r["streams"][1]["config"]["storage"], "memory");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn account_info_and_unknown_subjects() {
    let dir = tempfile::tempdir().unwrap();
    let h = Harness::start(dir.path()).await;
    let r = h.request("$JS.API.INFO", "").await.text();
    // 2.9.10's verified body plus the reserved_* fields 2.10 adds (async-nats needs them)
    // and 2.11's api.level (2.15.1 shows `"api":{"level":5,"total":..,"errors":..}`).
    assert_eq!(
        r,
        r#"{"type":"io.nats.jetstream.api.v1.account_info_response","memory":0,"storage":0,"reserved_memory":0,"reserved_storage":0,"streams":0,"consumers":0,"limits":{"max_memory":-1,"max_storage":-1,"max_streams":-1,"max_consumers":-1,"max_ack_pending":-1,"memory_max_stream_bytes":-1,"storage_max_stream_bytes":-1,"max_bytes_required":false},"api":{"level":2,"total":0,"errors":0}}"#
    );
    h.request_none("$JS.API.STREAM.CREATE.bad.name", r#"{"name":"bad"}"#)
        .await;
    h.request_none("$JS.API.NOPE", "").await;
    h.create(r#"{"name":"ORDERS","subjects":["orders.>"]}"#)
        .await;
    h.pub_ack("orders.1", None, "x0").await;
    let r = h.request_json("$JS.API.INFO", "").await;
    assert_eq!(r["streams"], 1);
    assert_eq!(r["storage"], 22 + 8 + 2 + 8);
    assert!(r["api"]["total"].as_u64().unwrap() >= 3);
    let stats = h.js.stats();
    assert_eq!((stats.streams, stats.messages, stats.bytes), (1, 1, 40));
}
