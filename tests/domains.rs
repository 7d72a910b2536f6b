//! JetStream domains (`jetstream { domain: hub }`) through async-nats: the API reachable at
//! `$JS.hub.API` (KV included), PubAcks, account and stream infos naming the domain, and
//! another domain getting no responders — as nats-server 2.15.1 on loopback.

use async_nats::jetstream::{self, kv};
use petrel_testkit::{spawn_with_store, TestServer};

use crate::support::config;

async fn hub() -> TestServer {
    spawn_with_store(|b, dir| b.jetstream(dir).jetstream_domain("hub")).await
}

/// The raw JSON reply to an API request.
async fn api(client: &async_nats::Client, subject: &str) -> serde_json::Value {
    let m = client
        .request(subject.to_string(), "".into())
        .await
        .unwrap();
    serde_json::from_slice(&m.payload).unwrap()
}

#[tokio::test]
async fn the_api_answers_under_the_domain_prefix() {
    let s = hub().await;
    let client = async_nats::connect(s.client_url()).await.unwrap();
    let js = jetstream::with_domain(client.clone(), "hub");
    let account = js.query_account().await.unwrap();
    assert_eq!(account.domain.as_deref(), Some("hub"));
    js.create_stream(config("ORDERS", &["orders.>"]))
        .await
        .unwrap();
    let ack = js
        .publish("orders.1", "x".into())
        .await
        .unwrap()
        .await
        .unwrap();
    assert_eq!(
        (ack.stream.as_str(), ack.domain.as_str(), ack.sequence),
        ("ORDERS", "hub", 1)
    );
    // KV through the domain: puts go to `$JS.hub.API.$KV.…`, mapped onto `$KV.…`.
    let bucket = js
        .create_key_value(kv::Config {
            bucket: "cfg".into(),
            ..Default::default()
        })
        .await
        .unwrap();
    bucket.put("k", "v".into()).await.unwrap();
    assert_eq!(bucket.get("k").await.unwrap().as_deref(), Some(&b"v"[..]));
    let plain = jetstream::new(client.clone());
    let local = plain.get_key_value("cfg").await.unwrap();
    assert_eq!(local.get("k").await.unwrap().as_deref(), Some(&b"v"[..]));
    // Pull consumers through the domain.
    let stream = js.get_stream("ORDERS").await.unwrap();
    let consumer: jetstream::consumer::PullConsumer = stream
        .create_consumer(jetstream::consumer::pull::Config {
            durable_name: Some("c".into()),
            ..Default::default()
        })
        .await
        .unwrap();
    let mut batch = consumer.fetch().max_messages(1).messages().await.unwrap();
    use futures::StreamExt;
    let m = batch.next().await.unwrap().unwrap();
    assert_eq!(m.subject.as_str(), "orders.1");
    m.ack().await.unwrap();
}

#[tokio::test]
async fn infos_name_the_domain_as_nats_server_does() {
    let s = hub().await;
    let client = async_nats::connect(s.client_url()).await.unwrap();
    let body = r#"{"name":"D","subjects":["d.>"]}"#;
    let created = client
        .request("$JS.hub.API.STREAM.CREATE.D", body.into())
        .await
        .unwrap();
    let created: serde_json::Value = serde_json::from_slice(&created.payload).unwrap();
    // The create response does not name it; info, list and update do.
    assert!(created.get("domain").is_none(), "{created}");
    assert!(created.get("config").is_some(), "{created}");
    assert_eq!(api(&client, "$JS.API.STREAM.INFO.D").await["domain"], "hub");
    assert_eq!(
        api(&client, "$JS.hub.API.STREAM.LIST").await["streams"][0]["domain"],
        "hub"
    );
    assert_eq!(api(&client, "$JS.hub.API.INFO").await["domain"], "hub");
    let stored = client.request("d.1", "x".into()).await.unwrap();
    assert_eq!(
        &stored.payload[..],
        br#"{"stream":"D","domain":"hub","seq":1}"#
    );
    // Subjects outside nats-server's mapping table, and other domains, reach nobody.
    for subject in ["$JS.hub.API.FOO", "$JS.other.API.INFO"] {
        let e = client.request(subject, "".into()).await.unwrap_err();
        assert_eq!(
            e.kind(),
            async_nats::client::RequestErrorKind::NoResponders,
            "{subject}"
        );
    }
}
