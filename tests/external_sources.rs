//! Sources and mirrors of a stream in another account (`external`), configured as in
//! config/cross-account-sourcing.conf, through async-nats: every origin message arrives
//! once, in order, with nats-server's `Nats-Stream-Source` header (the origin named with
//! the hash of its API prefix); a mirror keeps the origin's sequences; both resume after
//! a restart without duplicates or gaps; KV buckets source across accounts too; bad
//! `external` blocks get nats-server's errors.

use std::time::Duration;

use async_nats::jetstream::{self, kv, stream};
use petrel_testkit::TestServer;

use crate::support::{api_code, config, login, publish, spawn_config};

async fn server(store: &std::path::Path) -> TestServer {
    spawn_config("cross-account-sourcing.conf", |t| t, Some(store), false).await
}

async fn js_of(s: &TestServer, user: &str) -> jetstream::Context {
    jetstream::new(login(s, user).await)
}

fn external() -> Option<stream::External> {
    Some(stream::External {
        api_prefix: "ORDERS.API".into(),
        delivery_prefix: Some("deliver.billing".into()),
    })
}

/// The server, both accounts' JetStream, and the stream ORDERS (`orders.>`) in ORDERS.
async fn with_orders(
    store: &std::path::Path,
) -> (TestServer, jetstream::Context, jetstream::Context) {
    let s = server(store).await;
    let orders = js_of(&s, "orders").await;
    let billing = js_of(&s, "billing").await;
    orders
        .create_stream(config("ORDERS", &["orders.>"]))
        .await
        .unwrap();
    (s, orders, billing)
}

/// A stream `name` sourcing ORDERS from the ORDERS account.
fn sourcing_orders(name: &str) -> stream::Config {
    stream::Config {
        name: name.into(),
        sources: Some(vec![stream::Source {
            name: "ORDERS".into(),
            external: external(),
            ..Default::default()
        }]),
        ..Default::default()
    }
}

/// Waits until `stream` holds `n` messages.
async fn wait_messages(js: &jetstream::Context, stream: &str, n: u64) {
    let mut s = js.get_stream(stream).await.unwrap();
    for _ in 0..500 {
        if s.info().await.unwrap().state.messages >= n {
            assert_eq!(
                s.cached_info().state.messages,
                n,
                "{stream}: more than expected"
            );
            return;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!(
        "{stream} never reached {n} messages: {:?}",
        s.cached_info().state
    );
}

#[tokio::test]
async fn a_stream_sources_and_mirrors_another_accounts_stream() {
    let dir = tempfile::tempdir().unwrap();
    let (s, orders, billing) = with_orders(dir.path()).await;
    publish(&orders, "orders.new", 10).await;
    billing.create_stream(sourcing_orders("ALL")).await.unwrap();
    billing
        .create_stream(stream::Config {
            name: "COPY".into(),
            mirror: Some(stream::Source {
                name: "ORDERS".into(),
                external: external(),
                ..Default::default()
            }),
            ..Default::default()
        })
        .await
        .unwrap();
    wait_messages(&billing, "ALL", 10).await;
    wait_messages(&billing, "COPY", 10).await;
    let all = billing.get_stream("ALL").await.unwrap();
    let first = all.get_raw_message(1).await.unwrap();
    let source = first.headers.get("Nats-Stream-Source").unwrap().to_string();
    let parts: Vec<&str> = source.split(' ').collect();
    assert!(
        parts[0].starts_with("ORDERS:") && parts[0].len() == "ORDERS:".len() + 8,
        "{source}"
    );
    assert_eq!(&parts[1..], ["1", ">", ">", "orders.new"]);
    // The mirror keeps the origin's sequences.
    let copy = billing.get_stream("COPY").await.unwrap();
    assert_eq!(copy.get_raw_message(7).await.unwrap().sequence, 7);
    // Following: new origin messages arrive.
    publish(&orders, "orders.paid", 5).await;
    wait_messages(&billing, "ALL", 15).await;
    wait_messages(&billing, "COPY", 15).await;
    // The status shows the external origin.
    let mut all = billing.get_stream("ALL").await.unwrap();
    let info = all.info().await.unwrap();
    let src = &info.sources[0];
    assert_eq!((src.name.as_str(), src.lag), ("ORDERS", 0));
    s.shutdown().await;

    // After a restart: what was published meanwhile arrives, nothing twice.
    let s = server(dir.path()).await;
    let orders = js_of(&s, "orders").await;
    let billing = js_of(&s, "billing").await;
    publish(&orders, "orders.late", 3).await;
    wait_messages(&billing, "ALL", 18).await;
    wait_messages(&billing, "COPY", 18).await;
    let copy = billing.get_stream("COPY").await.unwrap();
    let m = copy.get_raw_message(18).await.unwrap();
    assert_eq!(m.subject.as_str(), "orders.late");
}

#[tokio::test]
async fn a_kv_bucket_sources_another_accounts_bucket() {
    let dir = tempfile::tempdir().unwrap();
    let s = server(dir.path()).await;
    let orders = js_of(&s, "orders").await;
    let billing = js_of(&s, "billing").await;
    let prices = orders
        .create_key_value(kv::Config {
            bucket: "prices".into(),
            ..Default::default()
        })
        .await
        .unwrap();
    prices.put("sku1", "10".into()).await.unwrap();
    prices.put("sku2", "20".into()).await.unwrap();
    let local = billing
        .create_key_value(kv::Config {
            bucket: "prices_copy".into(),
            sources: Some(vec![stream::Source {
                name: "prices".into(),
                external: external(),
                // As nats.go sets it up (async-nats keeps the origin's key subjects).
                subject_transforms: vec![stream::SubjectTransform {
                    source: "$KV.prices.>".into(),
                    destination: "$KV.prices_copy.>".into(),
                }],
                ..Default::default()
            }]),
            ..Default::default()
        })
        .await
        .unwrap();
    wait_messages(&billing, "KV_prices_copy", 2).await;
    let v = local.get("sku2").await.unwrap();
    assert_eq!(v.as_deref(), Some(&b"20"[..]));
}

#[tokio::test]
async fn bad_external_blocks_are_refused_as_nats_server_does() {
    let dir = tempfile::tempdir().unwrap();
    let s = server(dir.path()).await;
    let billing = js_of(&s, "billing").await;
    let with = |api: &str, deliver: &str| stream::Config {
        name: "X".into(),
        sources: Some(vec![stream::Source {
            name: "ORDERS".into(),
            external: Some(stream::External {
                api_prefix: api.into(),
                delivery_prefix: Some(deliver.into()),
            }),
            ..Default::default()
        }]),
        ..Default::default()
    };
    let code = |e| api_code(&e);
    assert_eq!(
        code(
            billing
                .create_stream(with("$JS.API", "d"))
                .await
                .unwrap_err()
        ),
        10021
    );
    assert_eq!(
        code(
            billing
                .create_stream(with("ORDERS.API", "d.*"))
                .await
                .unwrap_err()
        ),
        10024
    );
    assert_eq!(
        code(
            billing
                .create_stream(with("ORDERS.*", "d"))
                .await
                .unwrap_err()
        ),
        10052
    );
}

/// Regression (trust boundary): what arrives on the deliver subject is data. A client of
/// the sourcing account that learns the deliver subject and sends a fake flow-control
/// request whose reply is an API subject does not make the source publish there.
#[tokio::test]
async fn a_fake_flow_control_request_is_not_answered_on_an_api_subject() {
    let dir = tempfile::tempdir().unwrap();
    let (s, orders, billing) = with_orders(dir.path()).await;
    billing.create_stream(sourcing_orders("ALL")).await.unwrap();
    let spy = login(&s, "billing").await;
    let mut seen = spy.subscribe("deliver.billing.>").await.unwrap();
    spy.flush().await.unwrap();
    // The consumer's idle heartbeat shows the deliver subject.
    let hb = tokio::time::timeout(Duration::from_secs(10), futures::StreamExt::next(&mut seen))
        .await
        .expect("a heartbeat on the deliver subject")
        .unwrap();
    // Anything published on the API subject the fakes name is seen here.
    let mut api = spy.subscribe("$JS.API.STREAM.DELETE.>").await.unwrap();
    spy.flush().await.unwrap();
    // A status message as the origin's consumer sends them, with an API reply subject
    // (async-nats cannot publish a status line: raw protocol).
    let mut raw = petrel_testkit::RawClient::connect_with(
        s.addr(),
        r#"{"user":"billing","pass":"billing-change-me","headers":true,"verbose":false}"#,
    )
    .await;
    let hdr = "NATS/1.0 100 FlowControl Request\r\n\r\n";
    let stalled = "NATS/1.0 100 Idle Heartbeat\r\nNats-Last-Consumer: 0\r\nNats-Consumer-Stalled: $JS.API.STREAM.DELETE.ALL\r\n\r\n";
    let mut ops = format!(
        "HPUB {} $JS.API.STREAM.DELETE.ALL {} {}\r\n{hdr}\r\n",
        hb.subject,
        hdr.len(),
        hdr.len()
    );
    ops += &format!(
        "HPUB {} {} {}\r\n{stalled}\r\nPING\r\n",
        hb.subject,
        stalled.len(),
        stalled.len()
    );
    raw.send(ops.as_bytes()).await;
    raw.expect(b"PONG\r\n").await;
    publish(&orders, "orders.after", 1).await;
    wait_messages(&billing, "ALL", 1).await;
    // Nothing was published on the API subject before the spy's own marker.
    spy.publish("$JS.API.STREAM.DELETE.MARKER", "".into())
        .await
        .unwrap();
    let first = futures::StreamExt::next(&mut api).await.unwrap();
    assert_eq!(first.subject.as_str(), "$JS.API.STREAM.DELETE.MARKER");
    assert!(
        billing.get_stream("ALL").await.is_ok(),
        "the stream was deleted"
    );
    // Regression: the origin's consumer outlived the sourcing stream (an import counted as
    // interest forever, and an aborted task never deleted it).
    billing.delete_stream("ALL").await.unwrap();
    let mut origin = orders.get_stream("ORDERS").await.unwrap();
    for _ in 0..250 {
        if origin.info().await.unwrap().state.consumer_count == 0 {
            return;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("the origin's consumer is still there");
}
