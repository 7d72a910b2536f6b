//! The trust boundary: nothing the server emits (PubAcks, API replies, DIRECT.GET replies,
//! pull statuses, deliveries) acts as a client's request, whatever reply subject a client
//! chooses; deliver subjects and transforms cannot point into the server's own subject
//! spaces; delivery cycles across streams are refused.
//!
//! Each test first lets the server's message reach a watcher subscription on the request
//! subject (so it has been routed), then asks the API (which handles requests in order)
//! whether anything happened: no fixed sleeps.

use std::time::Duration;

use async_nats::jetstream::{self, consumer, stream};
use futures::StreamExt;
use petrel_server::{Auth, Permissions, User};
use petrel_testkit::{spawn_with_store, RawClient, TestServer};
use serde_json::{json, Value};

use crate::support::{config, publish, sp};

fn user(name: &str, publish: &[&str], subscribe: &[&str]) -> User {
    User {
        user: name.into(),
        password: Some("pw".into()),
        permissions: Some(Permissions {
            publish: sp(publish, &[]),
            subscribe: sp(subscribe, &[]),
            allow_responses: None,
        }),
        ..User::default()
    }
}

/// JetStream with an unrestricted `admin` and `orders`, who may only publish orders (and
/// fetch from one consumer / read one stream directly).
async fn server() -> TestServer {
    let admin = User {
        user: "admin".into(),
        password: Some("pw".into()),
        ..User::default()
    };
    let orders = user(
        "orders",
        &[
            "orders.>",
            "cfg.>",
            "$JS.API.CONSUMER.MSG.NEXT.ORDERS.PULL",
            "$JS.API.DIRECT.GET.CFG",
        ],
        &["_INBOX.>"],
    );
    spawn_with_store(|b, dir| b.jetstream(dir).auth(Auth::Users(vec![admin, orders]))).await
}

async fn admin(s: &TestServer) -> async_nats::Client {
    async_nats::ConnectOptions::with_user_and_password("admin".into(), "pw".into())
        .connect(s.client_url())
        .await
        .unwrap()
}

async fn raw_orders(s: &TestServer) -> RawClient {
    RawClient::connect_with(
        s.addr(),
        r#"{"verbose":false,"pedantic":false,"headers":true,"user":"orders","pass":"pw"}"#,
    )
    .await
}

/// The ORDERS stream on `orders.>` with a durable pull consumer `PULL` (ack_wait 30 s).
async fn orders_with_pull(js: &jetstream::Context) -> consumer::PullConsumer {
    let st = js
        .create_stream(config("ORDERS", &["orders.>"]))
        .await
        .unwrap();
    st.create_consumer(consumer::pull::Config {
        durable_name: Some("PULL".into()),
        ack_wait: Duration::from_secs(30),
        ..Default::default()
    })
    .await
    .unwrap()
}

/// Waits until a message arrives on the watcher (the server routed it).
async fn seen(watch: &mut async_nats::Subscriber) -> async_nats::Message {
    tokio::time::timeout(Duration::from_secs(5), watch.next())
        .await
        .expect("the server's message never passed the watcher")
        .expect("watcher open")
}

/// `$JS.API.STREAM.INFO.<name>` as raw JSON (so a missing stream shows as an error).
async fn stream_info(nc: &async_nats::Client, name: &str) -> Value {
    let r = nc
        .request(format!("$JS.API.STREAM.INFO.{name}"), "".into())
        .await
        .unwrap();
    serde_json::from_slice(&r.payload).unwrap()
}

#[tokio::test]
async fn a_puback_sent_to_an_api_subject_is_not_a_request() {
    let s = server().await;
    let nc = admin(&s).await;
    let js = jetstream::new(nc.clone());
    js.create_stream(config("ORDERS", &["orders.>"]))
        .await
        .unwrap();
    publish(&js, "orders.new", 3).await;
    let mut watch = nc.subscribe("$JS.API.STREAM.>").await.unwrap();
    nc.flush().await.unwrap();

    let mut o = raw_orders(&s).await;
    o.send(b"PUB orders.x $JS.API.STREAM.DELETE.ORDERS 2\r\nhi\r\nPUB orders.y $JS.API.STREAM.PURGE.ORDERS 2\r\nhi\r\nPING\r\n")
        .await;
    o.expect(b"PONG\r\n").await;
    let first = seen(&mut watch).await;
    let second = seen(&mut watch).await;
    assert_eq!(first.subject.as_str(), "$JS.API.STREAM.DELETE.ORDERS");
    assert_eq!(second.subject.as_str(), "$JS.API.STREAM.PURGE.ORDERS");
    assert_eq!(
        serde_json::from_slice::<Value>(&second.payload).unwrap(),
        json!({"stream": "ORDERS", "seq": 5})
    );
    let info = stream_info(&nc, "ORDERS").await;
    assert!(info.get("error").is_none(), "stream deleted: {info}");
    assert_eq!(info["state"]["messages"], 5, "stream purged: {info}");
}

#[tokio::test]
async fn a_direct_get_reply_is_not_a_stream_update() {
    let s = server().await;
    let nc = admin(&s).await;
    let js = jetstream::new(nc.clone());
    js.create_stream(config("ORDERS", &["orders.>"]))
        .await
        .unwrap();
    js.create_stream(stream::Config {
        allow_direct: true,
        ..config("CFG", &["cfg.>"])
    })
    .await
    .unwrap();
    let mut watch = nc.subscribe("$JS.API.STREAM.UPDATE.ORDERS").await.unwrap();
    nc.flush().await.unwrap();

    // A stored payload that is a valid update of ORDERS, replayed by DIRECT.GET into the
    // update API.
    let evil = json!({"name": "ORDERS", "subjects": ["orders.>"], "max_msgs": 1}).to_string();
    let mut o = raw_orders(&s).await;
    o.send(
        format!(
            "SUB _INBOX.ack 1\r\nPUB cfg.evil _INBOX.ack {}\r\n{evil}\r\n",
            evil.len()
        )
        .as_bytes(),
    )
    .await;
    let ack = o.read_line().await;
    assert!(ack.starts_with("MSG _INBOX.ack 1"), "{ack}");
    o.read_line().await;
    let get = r#"{"seq":1}"#;
    o.send(
        format!(
            "PUB $JS.API.DIRECT.GET.CFG $JS.API.STREAM.UPDATE.ORDERS {}\r\n{get}\r\nPING\r\n",
            get.len()
        )
        .as_bytes(),
    )
    .await;
    o.expect(b"PONG\r\n").await;
    let replayed = seen(&mut watch).await;
    assert_eq!(&replayed.payload[..], evil.as_bytes());
    let info = stream_info(&nc, "ORDERS").await;
    assert_eq!(info["config"]["max_msgs"], -1, "stream updated: {info}");
}

#[tokio::test]
async fn a_pull_status_sent_to_an_api_subject_is_not_a_request() {
    let s = server().await;
    let nc = admin(&s).await;
    let js = jetstream::new(nc.clone());
    orders_with_pull(&js).await;
    let mut watch = nc.subscribe("$JS.API.STREAM.DELETE.ORDERS").await.unwrap();
    nc.flush().await.unwrap();

    let mut o = raw_orders(&s).await;
    let req = r#"{"batch":1,"no_wait":true}"#;
    o.send(
        format!(
            "PUB $JS.API.CONSUMER.MSG.NEXT.ORDERS.PULL $JS.API.STREAM.DELETE.ORDERS {}\r\n{req}\r\nPING\r\n",
            req.len()
        )
        .as_bytes(),
    )
    .await;
    o.expect(b"PONG\r\n").await;
    let status = seen(&mut watch).await;
    assert_eq!(status.status, Some(async_nats::StatusCode::NOT_FOUND));
    let info = stream_info(&nc, "ORDERS").await;
    assert!(info.get("error").is_none(), "stream deleted: {info}");
}

#[tokio::test]
async fn a_status_sent_to_an_ack_subject_acks_nothing() {
    let s = server().await;
    let nc = admin(&s).await;
    let js = jetstream::new(nc.clone());
    let c = orders_with_pull(&js).await;
    publish(&js, "orders.new", 2).await;
    let mut batch = c.fetch().max_messages(2).messages().await.unwrap();
    let m1 = batch.next().await.unwrap().unwrap();
    let m2 = batch.next().await.unwrap().unwrap();
    let ack_subject = m1.reply.clone().unwrap();
    let mut watch = nc.subscribe(ack_subject.to_string()).await.unwrap();
    nc.flush().await.unwrap();

    // Nothing left to pull: the `404 No Messages` status (an empty body, which as an ack
    // body means +ACK) goes to message 1's ack subject.
    let mut o = raw_orders(&s).await;
    let req = r#"{"batch":1,"no_wait":true}"#;
    o.send(
        format!(
            "PUB $JS.API.CONSUMER.MSG.NEXT.ORDERS.PULL {ack_subject} {}\r\n{req}\r\nPING\r\n",
            req.len()
        )
        .as_bytes(),
    )
    .await;
    o.expect(b"PONG\r\n").await;
    let status = seen(&mut watch).await;
    assert!(status.payload.is_empty());
    // A real double ack of the second message: once it is confirmed, every event queued
    // before it (the status, had it been taken) has been applied.
    m2.double_ack().await.unwrap();
    let info = c.clone().info().await.unwrap().clone();
    assert_eq!(info.num_ack_pending, 1, "the status acked message 1");
    assert_eq!(info.ack_floor.stream_sequence, 0);
}

#[tokio::test]
async fn deliver_subjects_in_server_spaces_are_refused() {
    let s = server().await;
    let nc = admin(&s).await;
    let js = jetstream::new(nc.clone());
    js.create_stream(config("ORDERS", &["orders.>"]))
        .await
        .unwrap();
    for ds in [
        "$JS.API.STREAM.DELETE.ORDERS",
        "$JS.ACK.ORDERS.X.1.1.1.0.0",
        "$JS.FC.ORDERS.X.1",
        "$JS.EVENT.ADVISORY.FAKE",
        "$JSC.R.x",
        "$SYS.REQ.SERVER.PING",
        "$KV.bucket.key",
        "$OBJ.bucket.C.x",
        "$NRG.x",
    ] {
        let body = json!({"stream_name": "ORDERS", "config": {"deliver_subject": ds}});
        let r = nc
            .request("$JS.API.CONSUMER.CREATE.ORDERS", body.to_string().into())
            .await
            .unwrap();
        let v: Value = serde_json::from_slice(&r.payload).unwrap();
        assert_eq!(v["error"]["err_code"], 10112, "{ds}: {v}");
    }
}

#[tokio::test]
async fn transforms_into_server_spaces_are_refused() {
    let s = server().await;
    let nc = admin(&s).await;
    for dest in ["$JS.API.>", "$JS.ACK.>", "$SYS.>", "$KV.x.>", "$JSC.>"] {
        let body = json!({"name": "T", "subjects": ["t.>"],
            "subject_transform": {"src": "t.>", "dest": dest}});
        let r = nc
            .request("$JS.API.STREAM.CREATE.T", body.to_string().into())
            .await
            .unwrap();
        let v: Value = serde_json::from_slice(&r.payload).unwrap();
        assert_eq!(v["error"]["err_code"], 10156, "{dest}: {v}");
    }
}

async fn create_push(nc: &async_nats::Client, stream: &str, name: &str, deliver: &str) -> Value {
    let body = json!({"stream_name": stream,
        "config": {"durable_name": name, "deliver_subject": deliver, "ack_policy": "none"}});
    let r = nc
        .request(
            format!("$JS.API.CONSUMER.CREATE.{stream}.{name}"),
            body.to_string().into(),
        )
        .await
        .unwrap();
    serde_json::from_slice(&r.payload).unwrap()
}

async fn put_stream(nc: &async_nats::Client, op: &str, name: &str, subjects: &[&str]) -> Value {
    let body = json!({"name": name, "subjects": subjects});
    let r = nc
        .request(
            format!("$JS.API.STREAM.{op}.{name}"),
            body.to_string().into(),
        )
        .await
        .unwrap();
    serde_json::from_slice(&r.payload).unwrap()
}

#[tokio::test]
async fn delivery_cycles_across_streams_are_refused() {
    let s = server().await;
    let nc = admin(&s).await;
    assert!(put_stream(&nc, "CREATE", "A", &["a.>"])
        .await
        .get("error")
        .is_none());
    assert!(put_stream(&nc, "CREATE", "B", &["b.>"])
        .await
        .get("error")
        .is_none());
    // A feeds B: fine on its own.
    assert!(create_push(&nc, "A", "TOB", "b.in")
        .await
        .get("error")
        .is_none());
    // B feeding A closes the loop.
    let v = create_push(&nc, "B", "TOA", "a.in").await;
    assert_eq!(v["error"]["err_code"], 10081, "{v}");
    // Three streams: B feeds C, so C feeding A closes A -> B -> C -> A.
    assert!(put_stream(&nc, "CREATE", "C", &["c.>"])
        .await
        .get("error")
        .is_none());
    assert!(create_push(&nc, "B", "TOC", "c.in")
        .await
        .get("error")
        .is_none());
    let v = create_push(&nc, "C", "TOA", "a.x").await;
    assert_eq!(v["error"]["err_code"], 10081, "{v}");
    // At stream update: C delivers to "z.in"; A starting to capture "z.>" would close
    // the same loop.
    assert!(create_push(&nc, "C", "TOZ", "z.in")
        .await
        .get("error")
        .is_none());
    let v = put_stream(&nc, "UPDATE", "A", &["a.>", "z.>"]).await;
    assert_eq!(v["error"]["err_code"], 10052, "{v}");
    // ...and a stream starting to capture its own consumer's deliver subject.
    assert!(create_push(&nc, "B", "SELF", "q.in")
        .await
        .get("error")
        .is_none());
    let v = put_stream(&nc, "UPDATE", "B", &["b.>", "q.>"]).await;
    assert_eq!(v["error"]["err_code"], 10052, "{v}");
    // A new stream fed by C with no consumers of its own forms no cycle.
    assert!(put_stream(&nc, "CREATE", "D", &["z.>"])
        .await
        .get("error")
        .is_none());
}

#[tokio::test]
async fn a_pull_request_whose_deliveries_its_stream_captures_is_dropped() {
    let s = server().await;
    let nc = admin(&s).await;
    let js = jetstream::new(nc.clone());
    orders_with_pull(&js).await;
    publish(&js, "orders.new", 3).await;

    // First a request whose deliveries would be stored as new orders (each delivery
    // making a new message to deliver), then an honest one. Requests are served in order,
    // so the honest one gets messages 1-3 only if the first was dropped.
    let mut o = raw_orders(&s).await;
    let evil = r#"{"batch":1000000,"expires":60000000000}"#;
    let honest = r#"{"batch":3,"expires":5000000000}"#;
    o.send(
        format!(
            "SUB _INBOX.mine 1\r\nPUB $JS.API.CONSUMER.MSG.NEXT.ORDERS.PULL orders.loop {}\r\n{evil}\r\nPUB $JS.API.CONSUMER.MSG.NEXT.ORDERS.PULL _INBOX.mine {}\r\n{honest}\r\n",
            evil.len(),
            honest.len()
        )
        .as_bytes(),
    )
    .await;
    for seq in 1..=3 {
        let line = o.read_line().await;
        assert!(
            line.starts_with("MSG orders.new 1 $JS.ACK.ORDERS.PULL.1."),
            "{line}"
        );
        assert!(line.contains(&format!(".{seq}.{seq}.")), "{line}");
        o.read_line().await;
    }
    let info = stream_info(&nc, "ORDERS").await;
    assert_eq!(info["state"]["messages"], 3, "{info}");
}

#[tokio::test]
async fn a_stream_fed_by_another_streams_push_consumer_stores_the_deliveries() {
    let s = server().await;
    let nc = admin(&s).await;
    let js = jetstream::new(nc.clone());
    js.create_stream(config("A", &["a.>"])).await.unwrap();
    let b = js.create_stream(config("B", &["b.>"])).await.unwrap();
    assert!(create_push(&nc, "A", "TOB", "b.in")
        .await
        .get("error")
        .is_none());
    publish(&js, "a.x", 2).await;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    while stream_info(&nc, "B").await["state"]["messages"] != 2 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "B never got A's deliveries"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let m = b.get_raw_message(1).await.unwrap();
    assert_eq!(
        m.subject.as_str(),
        "b.in",
        "stored under the subject it was routed on"
    );
    assert_eq!(&m.payload[..], b"m0");
}
