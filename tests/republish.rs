//! Stream republish through async-nats: copies with nats-server's headers after the
//! commit, headers-only copies, a stream capturing the copies, KV republish, and the
//! configurations nats-server refuses (a destination that loops back, an invalid transform)
//! plus the ones Petrel refuses besides (a destination in the server's own subject spaces,
//! a loop through another stream).

use std::time::Duration;

use async_nats::jetstream::{self, kv, stream};
use futures::StreamExt;
use petrel_testkit::spawn_jetstream;

use crate::support::config;

fn republishing(name: &str, subjects: &[&str], src: &str, dest: &str) -> stream::Config {
    stream::Config {
        republish: Some(stream::Republish {
            source: src.into(),
            destination: dest.into(),
            headers_only: false,
        }),
        ..config(name, subjects)
    }
}

async fn next(sub: &mut async_nats::Subscriber) -> async_nats::Message {
    tokio::time::timeout(Duration::from_secs(5), sub.next())
        .await
        .expect("a republished copy")
        .expect("subscription open")
}

fn header<'a>(m: &'a async_nats::Message, name: &str) -> &'a str {
    m.headers
        .as_ref()
        .and_then(|h| h.get(name))
        .map(|v| v.as_str())
        .unwrap_or_else(|| panic!("no {name} in {:?}", m.headers))
}

#[tokio::test]
async fn stored_messages_are_republished_with_their_origin() {
    let s = spawn_jetstream().await;
    let nc = async_nats::connect(s.client_url()).await.unwrap();
    let js = jetstream::new(nc.clone());
    js.create_stream(republishing("ORDERS", &["orders.>"], "orders.>", "copy.>"))
        .await
        .unwrap();
    // A stream may capture the copies (they come from the server, not a client).
    js.create_stream(config("COPIES", &["copy.>"]))
        .await
        .unwrap();
    let mut sub = nc.subscribe("copy.>").await.unwrap();
    nc.flush().await.unwrap();
    let mut headers = async_nats::HeaderMap::new();
    headers.insert("Order-Kind", "rush");
    let ack = js
        .publish_with_headers("orders.1", headers, "first".into())
        .await
        .unwrap()
        .await
        .unwrap();
    js.publish("orders.2", "second".into())
        .await
        .unwrap()
        .await
        .unwrap();
    js.publish("orders.1", "third".into())
        .await
        .unwrap()
        .await
        .unwrap();

    let m = next(&mut sub).await;
    assert_eq!(m.subject.as_str(), "copy.1");
    assert_eq!(m.payload, "first");
    assert_eq!(header(&m, "Order-Kind"), "rush");
    assert_eq!(header(&m, "Nats-Stream"), "ORDERS");
    assert_eq!(header(&m, "Nats-Subject"), "orders.1");
    assert_eq!(header(&m, "Nats-Sequence"), ack.sequence.to_string());
    assert_eq!(header(&m, "Nats-Last-Sequence"), "0");
    let ts = header(&m, "Nats-Time-Stamp");
    assert!(ts.ends_with('Z') && ts.contains('T'), "{ts}");
    let m = next(&mut sub).await;
    assert_eq!(
        (m.subject.as_str(), header(&m, "Nats-Last-Sequence")),
        ("copy.2", "0")
    );
    let m = next(&mut sub).await;
    assert_eq!(m.subject.as_str(), "copy.1");
    assert_eq!(header(&m, "Nats-Sequence"), "3");
    // The previous message on the same subject: gap detection for light clients.
    assert_eq!(header(&m, "Nats-Last-Sequence"), "1");
    let mut copies = js.get_stream("COPIES").await.unwrap();
    assert_eq!(copies.info().await.unwrap().state.messages, 3);
}

#[tokio::test]
async fn headers_only_copies_carry_the_size() {
    let s = spawn_jetstream().await;
    let nc = async_nats::connect(s.client_url()).await.unwrap();
    let js = jetstream::new(nc.clone());
    let mut cfg = republishing("LOGS", &["logs.*"], "logs.*", "meta.{{wildcard(1)}}");
    cfg.republish.as_mut().unwrap().headers_only = true;
    js.create_stream(cfg).await.unwrap();
    let mut sub = nc.subscribe("meta.*").await.unwrap();
    nc.flush().await.unwrap();
    js.publish("logs.api", "0123456789".into())
        .await
        .unwrap()
        .await
        .unwrap();
    let m = next(&mut sub).await;
    assert_eq!(m.subject.as_str(), "meta.api");
    assert!(m.payload.is_empty());
    assert_eq!(header(&m, "Nats-Msg-Size"), "10");
}

#[tokio::test]
async fn kv_republish() {
    let s = spawn_jetstream().await;
    let nc = async_nats::connect(s.client_url()).await.unwrap();
    let js = jetstream::new(nc.clone());
    let kv = js
        .create_key_value(kv::Config {
            bucket: "settings".into(),
            republish: Some(stream::Republish {
                source: ">".into(),
                destination: "changes.>".into(),
                headers_only: false,
            }),
            ..Default::default()
        })
        .await
        .unwrap();
    let mut sub = nc.subscribe("changes.>").await.unwrap();
    nc.flush().await.unwrap();
    kv.put("theme", "dark".into()).await.unwrap();
    let m = next(&mut sub).await;
    assert_eq!(m.subject.as_str(), "changes.$KV.settings.theme");
    assert_eq!(m.payload, "dark");
    assert_eq!(header(&m, "Nats-Stream"), "KV_settings");
}

/// The error code and description of a refused stream create.
async fn refused(js: &jetstream::Context, cfg: stream::Config) -> (u64, String) {
    let e = js.create_stream(cfg).await.expect_err("refused");
    match e.kind() {
        jetstream::context::CreateStreamErrorKind::JetStream(j) => {
            // Display: "<description> (code <code>, error code <err_code>)".
            let text = j.to_string();
            let description = text.split(" (code ").next().unwrap_or_default();
            (j.error_code().0, description.to_string())
        }
        other => panic!("{other:?}"),
    }
}

#[tokio::test]
async fn republish_configs_nats_server_refuses_and_loops() {
    let s = spawn_jetstream().await;
    let js = jetstream::new(async_nats::connect(s.client_url()).await.unwrap());
    let (code, text) = refused(&js, republishing("A", &["a.>"], "a.>", "a.copy.>")).await;
    assert_eq!(code, 10052);
    assert_eq!(
        text,
        "stream configuration for republish destination forms a cycle"
    );
    let (code, text) = refused(&js, republishing("A", &["a.*"], "a.*", "x.{{wildcard(2)}}")).await;
    assert_eq!(code, 10052);
    assert_eq!(
        text,
        "stream configuration for republish with transform from 'a.*' to 'x.{{wildcard(2)}}' not valid"
    );
    // Into the server's own spaces: a copy must never act as an API request.
    let (code, text) = refused(&js, republishing("A", &["a.>"], "a.>", "$JS.API.>")).await;
    assert_eq!(code, 10052);
    assert!(
        text.ends_with("inside the server's \"$JS.>\" subject space"),
        "{text}"
    );
    // Two streams republishing into each other would circulate every message for ever.
    js.create_stream(republishing("A", &["a.>"], "a.>", "b.from-a.>"))
        .await
        .unwrap();
    let (code, text) = refused(&js, republishing("B", &["b.>"], "b.>", "a.from-b.>")).await;
    assert_eq!(code, 10052);
    assert!(
        text.contains("republish destination forms a cycle"),
        "{text}"
    );
    js.create_stream(republishing("B", &["b.>"], "b.>", "c.>"))
        .await
        .unwrap();
}
