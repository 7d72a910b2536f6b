//! Stream backup and restore with nats-server's chunked flows, driven from an async-nats
//! connection as `nats stream backup` / `restore` drive them: a snapshot of a file stream
//! with a durable consumer, restored on another server, gives the same messages, consumer
//! and state; a damaged snapshot is refused; bad requests get nats-server's errors.

use std::time::Duration;

use async_nats::jetstream::{self, consumer, stream};
use bytes::Bytes;
use futures::StreamExt;
use petrel_testkit::spawn_jetstream;
use serde_json::{json, Value};

use crate::support::{config, fetch_within};

async fn request(nc: &async_nats::Client, subject: &str, body: Value) -> Value {
    let reply = nc
        .request(subject.to_string(), Bytes::from(body.to_string()))
        .await
        .unwrap();
    serde_json::from_slice(&reply.payload).unwrap()
}

/// Takes a snapshot of `stream` the way the nats CLI does; returns the response and bytes.
async fn backup(nc: &async_nats::Client, stream: &str, chunk: usize) -> (Value, Vec<u8>) {
    let inbox = nc.new_inbox();
    let mut chunks = nc.subscribe(inbox.clone()).await.unwrap();
    let subject = format!("$JS.API.STREAM.SNAPSHOT.{stream}");
    let resp = request(
        nc,
        &subject,
        json!({"deliver_subject": inbox, "chunk_size": chunk}),
    )
    .await;
    let mut data = Vec::new();
    loop {
        let m = tokio::time::timeout(Duration::from_secs(10), chunks.next())
            .await
            .expect("a chunk")
            .unwrap();
        if m.payload.is_empty() {
            break;
        }
        data.extend_from_slice(&m.payload);
        if let Some(reply) = m.reply {
            nc.publish(reply, Bytes::new()).await.unwrap();
        }
    }
    (resp, data)
}

/// Restores `data` as `stream` with `cfg`; returns the final (stream_create) response.
async fn restore(nc: &async_nats::Client, stream: &str, cfg: &Value, data: &[u8]) -> Value {
    let subject = format!("$JS.API.STREAM.RESTORE.{stream}");
    let resp = request(nc, &subject, json!({"config": cfg})).await;
    let deliver = resp["deliver_subject"]
        .as_str()
        .expect("deliver subject")
        .to_string();
    for piece in data.chunks(8 * 1024) {
        let ack = nc
            .request(deliver.clone(), Bytes::copy_from_slice(piece))
            .await
            .unwrap();
        assert!(ack.payload.is_empty(), "chunk ack");
    }
    let done = nc.request(deliver, Bytes::new()).await.unwrap();
    serde_json::from_slice(&done.payload).unwrap()
}

#[tokio::test]
async fn snapshot_restored_on_another_server_has_the_same_messages_and_consumer() {
    let a = spawn_jetstream().await;
    let nc = async_nats::connect(a.client_url()).await.unwrap();
    let js = jetstream::new(nc.clone());
    js.create_stream(stream::Config {
        compression: Some(stream::Compression::S2),
        ..config("ORDERS", &["orders.>"])
    })
    .await
    .unwrap();
    for i in 0..1000 {
        let mut h = async_nats::HeaderMap::new();
        h.insert("Order-Id", i.to_string().as_str());
        js.publish_with_headers(format!("orders.{}", i % 7), h, format!("order {i}").into())
            .await
            .unwrap()
            .await
            .unwrap();
    }
    let shipper = js
        .create_consumer_on_stream(
            consumer::pull::Config {
                durable_name: Some("shipper".into()),
                ..Default::default()
            },
            "ORDERS",
        )
        .await
        .unwrap();
    for m in fetch_within(&shipper, 100, Duration::from_secs(2)).await {
        m.double_ack().await.unwrap();
    }
    let (resp, data) = backup(&nc, "ORDERS", 4096).await;
    assert_eq!(
        resp["type"],
        "io.nats.jetstream.api.v1.stream_snapshot_response"
    );
    assert_eq!(resp["state"]["messages"], 1000, "{resp}");
    assert!(data.len() > 4096, "several chunks");

    let b = spawn_jetstream().await;
    let nc_b = async_nats::connect(b.client_url()).await.unwrap();
    let done = restore(&nc_b, "ORDERS", &resp["config"], &data).await;
    assert_eq!(
        done["type"], "io.nats.jetstream.api.v1.stream_create_response",
        "{done}"
    );
    assert_eq!(done["state"]["messages"], 1000, "{done}");
    let js_b = jetstream::new(nc_b.clone());
    let restored = js_b.get_stream("ORDERS").await.unwrap();
    for seq in [1u64, 500, 1000] {
        let (x, y) = (
            js.get_stream("ORDERS")
                .await
                .unwrap()
                .get_raw_message(seq)
                .await
                .unwrap(),
            restored.get_raw_message(seq).await.unwrap(),
        );
        assert_eq!(
            (x.subject, x.payload, x.headers),
            (y.subject, y.payload, y.headers)
        );
    }
    // The consumer resumes where it was: 100 acked, the next is 101.
    let shipper_b: consumer::PullConsumer = restored.get_consumer("shipper").await.unwrap();
    let next = fetch_within(&shipper_b, 1, Duration::from_secs(2)).await;
    assert_eq!(next[0].payload, "order 100");
    // Publishing continues after the restored sequences.
    let ack = js_b
        .publish("orders.x", "new".into())
        .await
        .unwrap()
        .await
        .unwrap();
    assert_eq!(ack.sequence, 1001);
    // A damaged copy is refused and leaves no stream behind.
    let mut bad = data.clone();
    let mid = bad.len() / 2;
    bad[mid] ^= 0x20;
    let mut cfg = resp["config"].clone();
    cfg["name"] = json!("COPY");
    cfg["subjects"] = json!(["copy.>"]);
    let done = restore(&nc_b, "COPY", &cfg, &bad).await;
    assert_eq!(done["error"]["err_code"], 10062, "{done}");
    assert!(js_b.get_stream("COPY").await.is_err());
}

#[tokio::test]
async fn bad_backup_and_restore_requests_get_nats_server_errors() {
    let s = spawn_jetstream().await;
    let nc = async_nats::connect(s.client_url()).await.unwrap();
    let js = jetstream::new(nc.clone());
    js.create_stream(config("DISK", &["disk"])).await.unwrap();
    js.create_stream(stream::Config {
        storage: stream::StorageType::Memory,
        ..config("MEM", &["mem"])
    })
    .await
    .unwrap();
    let code = |v: Value| v["error"]["err_code"].as_u64().unwrap_or(0);
    let snap = "$JS.API.STREAM.SNAPSHOT";
    assert_eq!(
        code(
            request(
                &nc,
                &format!("{snap}.NOPE"),
                json!({"deliver_subject": "x"})
            )
            .await
        ),
        10059
    );
    assert_eq!(
        code(request(&nc, &format!("{snap}.DISK"), json!({})).await),
        10003
    );
    let no_subject = json!({"no_consumers": true});
    assert_eq!(
        code(request(&nc, &format!("{snap}.DISK"), no_subject).await),
        10015
    );
    assert_eq!(
        code(
            request(
                &nc,
                &format!("{snap}.DISK"),
                json!({"deliver_subject": "a.*"})
            )
            .await
        ),
        10015
    );
    // nats-server 2.15 snapshots memory streams; Petrel's snapshots hold file streams.
    assert_eq!(
        code(request(&nc, &format!("{snap}.MEM"), json!({"deliver_subject": "x"})).await),
        10064
    );
    let empty = nc
        .request(format!("{snap}.DISK"), Bytes::new())
        .await
        .unwrap();
    let v: Value = serde_json::from_slice(&empty.payload).unwrap();
    assert_eq!(code(v), 10003);
    let rest = "$JS.API.STREAM.RESTORE";
    let disk = json!({"name": "DISK", "subjects": ["disk"]});
    assert_eq!(
        code(request(&nc, &format!("{rest}.DISK"), json!({"config": disk})).await),
        10130
    );
    let other = json!({"name": "OTHER"});
    assert_eq!(
        code(request(&nc, &format!("{rest}.DISK"), json!({"config": other})).await),
        10056
    );
    let mem = json!({"name": "M2", "storage": "memory"});
    assert_eq!(
        code(request(&nc, &format!("{rest}.M2"), json!({"config": mem})).await),
        10062
    );
}
