//! Account exports and imports through async-nats, configured as in config/sharing.conf:
//! stream imports (prefix, `to` mapping, unchanged, one way only), service imports (the
//! exporter sees its own subject, a `_R_` reply and `Nats-Request-Info`; singleton and
//! streamed responses), and another account's JetStream through an imported API — as
//! nats-server 2.15.1 behaves on loopback.

use std::time::Duration;

use async_nats::jetstream;
use futures::StreamExt;
use petrel_testkit::TestServer;

use crate::support::{config, login, spawn_config};

async fn server() -> TestServer {
    spawn_config("sharing.conf", |t| t, None, false).await
}

/// sharing.conf plus: OTHER exports the service `cmd.run`, BILLING imports it and also
/// imports ORDERS' stream `cmd.>` (so ORDERS' `cmd.run` messages appear in BILLING).
async fn crossed_server() -> TestServer {
    let edit = |t: String| {
        t.replace(
            "users: [ { user: other, password: \"other-change-me\" } ]",
            "users: [ { user: other, password: \"other-change-me\" } ]\n    exports: [ { service: \"cmd.run\" } ]",
        )
        .replace(
            "{ stream: \"events.>\" }",
            "{ stream: \"events.>\" }\n      { stream: \"cmd.>\" }",
        )
        .replace(
            "{ stream: { account: ORDERS, subject: \"events.>\" }, prefix: \"orders\" }",
            "{ stream: { account: ORDERS, subject: \"events.>\" }, prefix: \"orders\" }\n      { stream: { account: ORDERS, subject: \"cmd.>\" } }\n      { service: { account: OTHER, subject: \"cmd.run\" } }",
        )
    };
    spawn_config("sharing.conf", edit, None, false).await
}

/// Regression: a message a stream import brought into an account was a client's request
/// there, so it went on through that account's service imports (nats-server never lets
/// stream-imported messages reach service imports).
#[tokio::test]
async fn stream_imported_messages_do_not_reach_service_imports() {
    let s = crossed_server().await;
    let orders = login(&s, "orders").await;
    let billing = login(&s, "billing").await;
    let other = login(&s, "other").await;
    let mut run = other.subscribe("cmd.run").await.unwrap();
    let mut seen = billing.subscribe("cmd.run").await.unwrap();
    other.flush().await.unwrap();
    billing.flush().await.unwrap();
    orders
        .publish("cmd.run", "from orders".into())
        .await
        .unwrap();
    orders.flush().await.unwrap();
    // BILLING sees ORDERS' message (the stream import)…
    assert_eq!(&seen.next().await.unwrap().payload[..], b"from orders");
    // …but OTHER's service gets only BILLING's own request.
    billing
        .publish("cmd.run", "from billing".into())
        .await
        .unwrap();
    billing.flush().await.unwrap();
    assert_eq!(&run.next().await.unwrap().payload[..], b"from billing");
}

/// Regression: responses lost their own reply subject on the way back.
#[tokio::test]
async fn responses_keep_their_reply_subject() {
    let s = server().await;
    let orders = login(&s, "orders").await;
    let billing = login(&s, "billing").await;
    let mut price = orders.subscribe("svc.price").await.unwrap();
    orders.flush().await.unwrap();
    let inbox = billing.new_inbox();
    let mut answers = billing.subscribe(inbox.clone()).await.unwrap();
    billing
        .publish_with_reply("price", inbox, "sku".into())
        .await
        .unwrap();
    billing.flush().await.unwrap();
    let m = price.next().await.unwrap();
    orders
        .publish_with_reply(m.reply.unwrap(), "ack.me", "42".into())
        .await
        .unwrap();
    let answer = answers.next().await.unwrap();
    assert_eq!(answer.reply.as_deref(), Some("ack.me"));
}

#[tokio::test]
async fn stream_imports_map_subjects_one_way() {
    let s = server().await;
    let orders = login(&s, "orders").await;
    let billing = login(&s, "billing").await;
    let other = login(&s, "other").await;
    let mut in_billing = billing.subscribe(">").await.unwrap();
    let mut in_orders = orders.subscribe(">").await.unwrap();
    let mut in_other = other.subscribe(">").await.unwrap();
    for c in [&billing, &orders, &other] {
        c.flush().await.unwrap();
    }
    for subject in ["events.x.y", "metrics.cpu", "audit.login", "private.p"] {
        orders.publish(subject, "hi".into()).await.unwrap();
    }
    orders.publish("done", "end".into()).await.unwrap();
    orders.flush().await.unwrap();
    let mut got = Vec::new();
    for _ in 0..3 {
        got.push(in_billing.next().await.unwrap().subject.to_string());
    }
    assert_eq!(got, ["orders.events.x.y", "m.cpu", "audit.login"]);
    // ORDERS saw its own five; the last is the marker.
    let mut own = Vec::new();
    for _ in 0..5 {
        own.push(in_orders.next().await.unwrap().subject.to_string());
    }
    assert_eq!(own.last().map(String::as_str), Some("done"));
    // One way: BILLING publishing under the imported subjects reaches only BILLING.
    billing
        .publish("orders.events.b", "back".into())
        .await
        .unwrap();
    billing.publish("events.b", "back".into()).await.unwrap();
    billing.flush().await.unwrap();
    assert_eq!(
        in_billing.next().await.unwrap().subject.as_str(),
        "orders.events.b"
    );
    orders.publish("marker", "m".into()).await.unwrap();
    orders.flush().await.unwrap();
    // The next thing ORDERS sees is its own marker, not BILLING's messages; OTHER sees
    // nothing of ORDERS at all (its first message is its own).
    assert_eq!(in_orders.next().await.unwrap().subject.as_str(), "marker");
    other.publish("mine", "x".into()).await.unwrap();
    assert_eq!(in_other.next().await.unwrap().subject.as_str(), "mine");
}

#[tokio::test]
async fn service_imports_carry_requests_and_responses() {
    let s = server().await;
    let orders = login(&s, "orders").await;
    let billing = login(&s, "billing").await;
    let mut price = orders.subscribe("svc.>").await.unwrap();
    orders.flush().await.unwrap();
    let asker = billing.new_inbox();
    let mut answers = billing.subscribe(asker.clone()).await.unwrap();
    billing
        .publish_with_reply("price", asker.clone(), "sku-1".into())
        .await
        .unwrap();
    billing.flush().await.unwrap();
    let m = price.next().await.unwrap();
    // The exporter sees its own subject, a reply of the import's own and who asked.
    assert_eq!(m.subject.as_str(), "svc.price");
    let reply = m.reply.clone().unwrap();
    let parts: Vec<&str> = reply.split('.').collect();
    assert_eq!(
        (parts.len(), parts[0], parts[1].len(), parts[2].len()),
        (3, "_R_", 6, 6)
    );
    let info = m
        .headers
        .as_ref()
        .and_then(|h| h.get("Nats-Request-Info"))
        .unwrap();
    let info: serde_json::Value = serde_json::from_str(info.as_str()).unwrap();
    assert_eq!(info["acc"], "BILLING");
    // Singleton: the first response goes back, a second one is dropped.
    orders.publish(reply.clone(), "42".into()).await.unwrap();
    orders.publish(reply, "43".into()).await.unwrap();
    orders.flush().await.unwrap();
    assert_eq!(&answers.next().await.unwrap().payload[..], b"42");
    // The next thing on the inbox is BILLING's own marker, not "43".
    billing.publish(asker, "marker".into()).await.unwrap();
    assert_eq!(&answers.next().await.unwrap().payload[..], b"marker");

    // Streamed: every response reaches the requester's inbox.
    let inbox = billing.new_inbox();
    let mut responses = billing.subscribe(inbox.clone()).await.unwrap();
    billing
        .publish_with_reply("svc.quotes", inbox, "q".into())
        .await
        .unwrap();
    billing.flush().await.unwrap();
    let m = price.next().await.unwrap();
    assert_eq!(m.subject.as_str(), "svc.quotes");
    let reply = m.reply.unwrap();
    for i in 0..3 {
        orders
            .publish(reply.clone(), format!("quote {i}").into())
            .await
            .unwrap();
    }
    for i in 0..3 {
        let r = tokio::time::timeout(Duration::from_secs(5), responses.next())
            .await
            .unwrap()
            .unwrap();
        assert_eq!(r.payload, format!("quote {i}"));
    }
    // Not imported: no responders.
    let e = billing.request("svc.price", "x".into()).await.unwrap_err();
    assert_eq!(e.kind(), async_nats::client::RequestErrorKind::NoResponders);
}

#[tokio::test]
async fn another_accounts_jetstream_through_an_imported_api() {
    let s = server().await;
    let orders = jetstream::new(login(&s, "orders").await);
    orders
        .create_stream(config("ORDERS", &["orders.>"]))
        .await
        .unwrap();
    orders
        .publish("orders.1", "o1".into())
        .await
        .unwrap()
        .await
        .unwrap();
    let billing = jetstream::with_prefix(login(&s, "billing").await, "ORDERS.API");
    let mut stream = billing.get_stream("ORDERS").await.unwrap();
    assert_eq!(stream.info().await.unwrap().state.messages, 1);
    let m = stream.get_raw_message(1).await.unwrap();
    assert_eq!(&m.payload[..], b"o1");
    // BILLING's own JetStream: none (10039), while ORDERS' is reachable.
    let own = jetstream::new(login(&s, "billing").await);
    let e = own.get_stream("ORDERS").await.unwrap_err();
    assert!(e.to_string().contains("10039"), "{e}");
}

/// Regression: a service request nobody in the exporter took waited for its timeout (and
/// its reply mapping for 2 minutes); nats-server answers 503 at once.
#[tokio::test]
async fn a_service_without_responders_answers_no_responders() {
    let s = server().await;
    let billing = login(&s, "billing").await;
    let e = billing.request("price", "sku".into()).await.unwrap_err();
    assert_eq!(e.kind(), async_nats::client::RequestErrorKind::NoResponders);
}

/// Regression (trust boundary): a response came back into the requester's account as the
/// responder's client message, on a reply subject the requester chose — so it could act as
/// a request there (here: the account's `$JS.API`, which answered the responder's own
/// reply subject). Responses now come back as the server's.
#[tokio::test]
async fn a_response_is_never_a_request_in_the_importing_account() {
    let s = server().await;
    let orders = login(&s, "orders").await;
    let billing = login(&s, "billing").await;
    let mut price = orders.subscribe("svc.price").await.unwrap();
    orders.flush().await.unwrap();
    let mut watch = billing.subscribe("_INBOX.watch").await.unwrap();
    billing
        .publish_with_reply("price", "$JS.API.INFO", "sku".into())
        .await
        .unwrap();
    billing.flush().await.unwrap();
    let m = price.next().await.unwrap();
    orders
        .publish_with_reply(m.reply.unwrap(), "_INBOX.watch", "42".into())
        .await
        .unwrap();
    orders.flush().await.unwrap();
    billing
        .publish("_INBOX.watch", "marker".into())
        .await
        .unwrap();
    // Nothing answered the response as an API request: the first message is the marker.
    assert_eq!(&watch.next().await.unwrap().payload[..], b"marker");
}
