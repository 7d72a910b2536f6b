//! Message-level API: purge variants, MSG.GET, MSG.DELETE, DIRECT.GET.

use serde_json::json;

use crate::harness::{hdrs, Harness};

async fn kv(h: &Harness, direct: bool) {
    h.create(&format!(
        r#"{{"name":"KV","subjects":["kv.>"],"allow_direct":{direct}}}"#
    ))
    .await;
    for (subj, v) in [
        ("kv.a", "a1"),
        ("kv.b", "b1"),
        ("kv.a", "a2"),
        ("kv.c", "c1"),
        ("kv.a", "a3"),
    ] {
        h.pub_ack(subj, None, v).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn purge_variants() {
    let dir = tempfile::tempdir().unwrap();
    let h = Harness::start(dir.path()).await;
    kv(&h, false).await;
    let r = h
        .request("$JS.API.STREAM.PURGE.KV", r#"{"filter":"kv.a","keep":1}"#)
        .await
        .text();
    assert_eq!(
        r,
        r#"{"type":"io.nats.jetstream.api.v1.stream_purge_response","success":true,"purged":2}"#
    );
    let r = h
        .request_json("$JS.API.STREAM.PURGE.KV", r#"{"seq":4}"#)
        .await;
    assert_eq!(r["purged"], 1); // kv.b at 2
    let r = h
        .request_json("$JS.API.STREAM.PURGE.KV", r#"{"seq":4,"keep":1}"#)
        .await;
    assert_eq!(r["error"]["err_code"], 10003);
    let r = h.request_json("$JS.API.STREAM.PURGE.KV", "").await;
    assert_eq!(r["purged"], 2);
    let info = h.request_json("$JS.API.STREAM.INFO.KV", "").await;
    assert_eq!(info["state"]["messages"], 0);
    assert_eq!(info["state"]["first_seq"], 6);
    assert_eq!(info["state"]["last_seq"], 5);
    let r = h.request_json("$JS.API.STREAM.PURGE.NOPE", "").await;
    assert_eq!(r["error"]["err_code"], 10059);

    h.create(r#"{"name":"DP","subjects":["dp"],"deny_purge":true}"#)
        .await;
    let r = h.request_json("$JS.API.STREAM.PURGE.DP", "").await;
    assert_eq!(
        r["error"],
        json!({"code":500,"err_code":10110,"description":"stream purge not permitted"})
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn msg_get() {
    let dir = tempfile::tempdir().unwrap();
    let h = Harness::start(dir.path()).await;
    kv(&h, false).await;
    let hdr = hdrs(&[("X", "1")]);
    h.pub_ack("kv.h", Some(&hdr), "with headers").await;
    let r = h
        .request_json("$JS.API.STREAM.MSG.GET.KV", r#"{"seq":2}"#)
        .await;
    assert_eq!(
        r["type"],
        "io.nats.jetstream.api.v1.stream_msg_get_response"
    );
    assert_eq!(r["message"]["subject"], "kv.b");
    assert_eq!(r["message"]["seq"], 2);
    assert_eq!(r["message"]["data"], "YjE="); // base64("b1")
    assert!(r["message"].get("hdrs").is_none());
    assert!(r["message"]["time"].as_str().unwrap().ends_with('Z'));
    let r = h
        .request_json("$JS.API.STREAM.MSG.GET.KV", r#"{"last_by_subj":"kv.a"}"#)
        .await;
    assert_eq!(r["message"]["seq"], 5);
    let r = h
        .request_json("$JS.API.STREAM.MSG.GET.KV", r#"{"last_by_subj":"kv.*"}"#)
        .await;
    assert_eq!(r["message"]["seq"], 6);
    assert_eq!(r["message"]["hdrs"], "TkFUUy8xLjANClg6IDENCg0K");
    let r = h
        .request_json(
            "$JS.API.STREAM.MSG.GET.KV",
            r#"{"next_by_subj":"kv.a","seq":2}"#,
        )
        .await;
    assert_eq!(r["message"]["seq"], 3);
    let r = h
        .request("$JS.API.STREAM.MSG.GET.KV", r#"{"seq":99}"#)
        .await
        .text();
    assert_eq!(
        r,
        r#"{"type":"io.nats.jetstream.api.v1.stream_msg_get_response","error":{"code":404,"err_code":10037,"description":"no message found"}}"#
    );
    let r = h
        .request_json(
            "$JS.API.STREAM.MSG.GET.KV",
            r#"{"seq":1,"last_by_subj":"kv.a"}"#,
        )
        .await;
    assert_eq!(r["error"]["err_code"], 10003);
    let r = h.request_json("$JS.API.STREAM.MSG.GET.KV", "").await;
    assert_eq!(r["error"]["err_code"], 10003);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn msg_delete() {
    let dir = tempfile::tempdir().unwrap();
    let h = Harness::start(dir.path()).await;
    kv(&h, false).await;
    let r = h
        .request("$JS.API.STREAM.MSG.DELETE.KV", r#"{"seq":2}"#)
        .await
        .text();
    assert_eq!(
        r,
        r#"{"type":"io.nats.jetstream.api.v1.stream_msg_delete_response","success":true}"#
    );
    let r = h
        .request_json(
            "$JS.API.STREAM.MSG.DELETE.KV",
            r#"{"seq":2,"no_erase":true}"#,
        )
        .await;
    assert_eq!(
        r["error"],
        json!({"code":400,"err_code":10043,"description":"sequence 2 not found"})
    );
    let info = h
        .request_json(
            "$JS.API.STREAM.INFO.KV",
            r#"{"deleted_details":true,"subjects_filter":">"}"#,
        )
        .await;
    assert_eq!(info["state"]["num_deleted"], 1);
    assert_eq!(info["state"]["deleted"], json!([2]));
    assert_eq!(info["state"]["subjects"], json!({"kv.a":3,"kv.c":1}));
    assert_eq!(info["total"], 2);
    assert_eq!(info["limit"], 100000);

    h.create(r#"{"name":"DD","subjects":["dd"],"deny_delete":true}"#)
        .await;
    h.pub_ack("dd", None, "x").await;
    let r = h
        .request_json("$JS.API.STREAM.MSG.DELETE.DD", r#"{"seq":1}"#)
        .await;
    assert_eq!(r["error"]["err_code"], 10057);
    assert_eq!(r["error"]["description"], "message delete not permitted");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn direct_get_hit_miss_and_disabled() {
    let dir = tempfile::tempdir().unwrap();
    let h = Harness::start(dir.path()).await;
    kv(&h, true).await;
    let hdr = hdrs(&[("KV-Operation", "DEL")]);
    h.pub_ack("kv.d", Some(&hdr), "").await;

    let r = h.request("$JS.API.DIRECT.GET.KV", r#"{"seq":2}"#).await;
    let hs = r.header_text();
    assert!(hs.starts_with("NATS/1.0\r\nNats-Stream: KV\r\nNats-Subject: kv.b\r\nNats-Sequence: 2\r\nNats-Time-Stamp: "), "{hs}");
    assert!(hs.ends_with("Z\r\n\r\n"), "{hs}");
    assert_eq!(r.text(), "b1");

    // Subject form: last message for the subject.
    let r = h.request("$JS.API.DIRECT.GET.KV.kv.a", "").await;
    assert!(r.header_text().contains("Nats-Sequence: 5\r\n"));
    assert_eq!(r.text(), "a3");

    // Stored headers follow the synthetic ones.
    let r = h.request("$JS.API.DIRECT.GET.KV.kv.d", "").await;
    let hs = r.header_text();
    assert!(hs.starts_with("NATS/1.0\r\nNats-Stream: KV\r\n"), "{hs}");
    assert!(hs.ends_with("\r\nKV-Operation: DEL\r\n\r\n"), "{hs}");
    assert_eq!(r.text(), "");

    let r = h.request("$JS.API.DIRECT.GET.KV.kv.zzz", "").await;
    assert_eq!(r.header_text(), "NATS/1.0 404 Message Not Found\r\n\r\n");
    assert!(r.payload.is_empty());
    let r = h.request("$JS.API.DIRECT.GET.KV", r#"{"seq":1000}"#).await;
    assert_eq!(r.header_text(), "NATS/1.0 404 Message Not Found\r\n\r\n");

    let r = h.request("$JS.API.DIRECT.GET.KV", "").await;
    assert_eq!(r.header_text(), "NATS/1.0 408 Empty Request\r\n\r\n");
    let r = h.request("$JS.API.DIRECT.GET.KV", "{bad").await;
    assert_eq!(r.header_text(), "NATS/1.0 408 Malformed Request\r\n\r\n");
    // nats-server 2.15.1 (2.9.10 said "Bad Request").
    let r = h.request("$JS.API.DIRECT.GET.KV", r#"{"seq":0}"#).await;
    assert_eq!(r.header_text(), "NATS/1.0 408 Empty Request\r\n\r\n");

    h.create(r#"{"name":"NODIRECT","subjects":["nd"]}"#).await;
    h.pub_ack("nd", None, "x").await;
    h.request_none("$JS.API.DIRECT.GET.NODIRECT", r#"{"seq":1}"#)
        .await;
    h.request_none("$JS.API.DIRECT.GET.NODIRECT.nd", "").await;
}
