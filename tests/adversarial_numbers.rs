//! Every number a client sends is range-checked: sequences never reach or wrap past
//! u64::MAX, delays and times that overflow are clamped (or refused with nats-server's
//! error), and nothing a client sends can panic a consumer or stream.

use std::time::Duration;

use async_nats::jetstream::{self, consumer};
use futures::StreamExt;
use petrel_testkit::{spawn_jetstream, RawClient, TestServer};
use serde_json::{json, Value};

use crate::support::{config, fetch_within, publish};

const U64: u64 = u64::MAX;

async fn api(nc: &async_nats::Client, subject: &str, body: Value) -> Value {
    let r = nc
        .request(subject.to_string(), body.to_string().into())
        .await
        .unwrap();
    serde_json::from_slice(&r.payload).unwrap()
}

async fn setup() -> (TestServer, async_nats::Client, jetstream::Context) {
    let s = spawn_jetstream().await;
    let nc = async_nats::connect(s.client_url()).await.unwrap();
    let js = jetstream::new(nc.clone());
    (s, nc, js)
}

#[tokio::test]
async fn sequences_cannot_be_pushed_to_u64_max() {
    let (_s, nc, js) = setup().await;
    let r = api(
        &nc,
        "$JS.API.STREAM.CREATE.S",
        json!({"name": "S", "subjects": ["s.>"], "first_seq": U64}),
    )
    .await;
    assert_eq!(r["error"]["err_code"], 10052, "{r}");
    assert_eq!(
        r["error"]["description"],
        "first sequence can not be larger than 9223372036854775807"
    );
    js.create_stream(config("S", &["s.>"])).await.unwrap();
    publish(&js, "s.a", 2).await;
    let r = api(&nc, "$JS.API.STREAM.PURGE.S", json!({"seq": U64})).await;
    assert_eq!(r["error"]["err_code"], 10003, "{r}");
    // The largest allowed compaction leaves exactly one sequence, then refuses cleanly.
    let max = i64::MAX as u64;
    let r = api(&nc, "$JS.API.STREAM.PURGE.S", json!({"seq": max})).await;
    assert_eq!(r["purged"], 2, "{r}");
    let ack = js
        .publish("s.a", "last".into())
        .await
        .unwrap()
        .await
        .unwrap();
    assert_eq!(ack.sequence, max);
    let err = js
        .publish("s.a", "one too many".into())
        .await
        .unwrap()
        .await
        .unwrap_err();
    assert!(
        err.to_string().contains("sequence space exhausted"),
        "{err}"
    );
    // A consumer created on it works (no wrap in its cursor).
    let st = js.get_stream("S").await.unwrap();
    let c = st
        .create_consumer(consumer::pull::Config {
            durable_name: Some("C".into()),
            ..Default::default()
        })
        .await
        .unwrap();
    let mut msgs = c
        .fetch()
        .max_messages(5)
        .expires(Duration::from_millis(300))
        .messages()
        .await
        .unwrap();
    let m = msgs.next().await.unwrap().unwrap();
    assert_eq!(m.info().unwrap().stream_sequence, max);
    m.ack().await.unwrap();
}

/// Delivers message 1 of a fresh stream to a pull consumer and returns it.
async fn one_delivery(
    js: &jetstream::Context,
    ack_policy: consumer::AckPolicy,
) -> (consumer::PullConsumer, jetstream::Message) {
    let st = js.create_stream(config("N", &["n.>"])).await.unwrap();
    let c = st
        .create_consumer(consumer::pull::Config {
            durable_name: Some("C".into()),
            ack_policy,
            ack_wait: Duration::from_secs(30),
            ..Default::default()
        })
        .await
        .unwrap();
    publish(js, "n.a", 1).await;
    let mut msgs = c.fetch().max_messages(1).messages().await.unwrap();
    let m = msgs.next().await.unwrap().unwrap();
    (c, m)
}

async fn fetch_one(c: &consumer::PullConsumer) -> jetstream::Message {
    let mut got = fetch_within(c, 1, Duration::from_secs(5)).await;
    got.pop().expect("a message")
}

#[tokio::test]
async fn a_nak_delay_out_of_gos_range_is_a_plain_nak() {
    let (_s, nc, js) = setup().await;
    let (c, m) = one_delivery(&js, consumer::AckPolicy::Explicit).await;
    let reply = m.reply.clone().unwrap();
    nc.publish(reply.clone(), "-NAK 10000000000000000000s".into())
        .await
        .unwrap();
    // Redelivered at once, like nats-server's "bad NAK delay value" plain NAK.
    let again = fetch_one(&c).await;
    assert_eq!(again.info().unwrap().delivered, 2);
    assert_eq!(&again.payload[..], b"m0");
}

#[tokio::test]
async fn a_nak_delay_of_292_years_parks_the_message_and_the_consumer_carries_on() {
    let (_s, nc, js) = setup().await;
    let (c, m) = one_delivery(&js, consumer::AckPolicy::Explicit).await;
    let reply = m.reply.clone().unwrap();
    let nak = format!(r#"-NAK {{"delay":{}}}"#, i64::MAX);
    nc.request(reply.to_string(), nak.into()).await.unwrap();
    // Redeliveries come before new messages: the new one arriving first shows the NAKed
    // message is parked, and the consumer is alive.
    publish(&js, "n.b", 1).await;
    let next = fetch_one(&c).await;
    assert_eq!(next.subject.as_str(), "n.b");
    let info = c.clone().info().await.unwrap().clone();
    assert_eq!(info.num_ack_pending, 2);
}

#[tokio::test]
async fn forged_ack_all_subjects_cannot_move_the_ack_floor() {
    let (_s, nc, js) = setup().await;
    let st = js.create_stream(config("N", &["n.>"])).await.unwrap();
    let c = st
        .create_consumer(consumer::pull::Config {
            durable_name: Some("C".into()),
            ack_policy: consumer::AckPolicy::All,
            ack_wait: Duration::from_secs(30),
            ..Default::default()
        })
        .await
        .unwrap();
    publish(&js, "n.a", 2).await;
    let mut msgs = c.fetch().max_messages(2).messages().await.unwrap();
    let m1 = msgs.next().await.unwrap().unwrap();
    let _m2 = msgs.next().await.unwrap().unwrap();
    for forged in [
        format!("$JS.ACK.N.C.1.{U64}.{U64}.0.0"),
        format!("$JS.ACK.N.C.1.{}.1.0.0", i64::MAX),
        format!("$JS.ACK.N.C.1.1.{U64}.0.0"),
    ] {
        nc.publish(forged, "+ACK".into()).await.unwrap();
    }
    // The real double ack of message 1 is confirmed after the forged acks were applied:
    // had one of them acked "everything up to i64::MAX", message 2 would be acked too.
    m1.double_ack().await.unwrap();
    let info = c.clone().info().await.unwrap().clone();
    assert_eq!(info.ack_floor.stream_sequence, 1, "{info:?}");
    assert_eq!(info.ack_floor.consumer_sequence, 1, "{info:?}");
    assert_eq!(info.num_ack_pending, 1);
}

#[tokio::test]
async fn start_times_and_sequences_out_of_range_are_clamped() {
    let (_s, nc, js) = setup().await;
    js.create_stream(config("T", &["t.>"])).await.unwrap();
    publish(&js, "t.a", 3).await;
    // Year 9999 is after everything (nats-server overflows and replays the stream).
    let r = api(
        &nc,
        "$JS.API.CONSUMER.CREATE.T.LATE",
        json!({"stream_name": "T", "config": {"durable_name": "LATE",
            "deliver_policy": "by_start_time", "opt_start_time": "9999-12-31T23:59:59Z"}}),
    )
    .await;
    assert_eq!(r["num_pending"], 0, "{r}");
    assert_eq!(r["config"]["opt_start_time"], "9999-12-31T23:59:59Z");
    let r = api(
        &nc,
        "$JS.API.CONSUMER.CREATE.T.EARLY",
        json!({"stream_name": "T", "config": {"durable_name": "EARLY",
            "deliver_policy": "by_start_time", "opt_start_time": "0001-01-01T00:00:00Z"}}),
    )
    .await;
    assert_eq!(r["num_pending"], 3, "{r}");
    let r = api(
        &nc,
        "$JS.API.CONSUMER.CREATE.T.FAR",
        json!({"stream_name": "T", "config": {"durable_name": "FAR",
            "deliver_policy": "by_start_sequence", "opt_start_seq": U64}}),
    )
    .await;
    assert!(r.get("error").is_none(), "{r}");
    assert_eq!(r["num_pending"], 0);
}

#[tokio::test]
async fn negative_limits_get_nats_server_2_15_errors_or_defaults() {
    let (_s, nc, _js) = setup().await;
    let r = api(
        &nc,
        "$JS.API.STREAM.CREATE.L",
        json!({"name": "L", "max_msgs": -5, "max_bytes": -5, "max_msg_size": -5,
            "max_msgs_per_subject": -5, "max_consumers": -5}),
    )
    .await;
    for f in [
        "max_msgs",
        "max_bytes",
        "max_msg_size",
        "max_msgs_per_subject",
        "max_consumers",
    ] {
        assert_eq!(r["config"][f], -1, "{f}: {r}");
    }
    let r = api(
        &nc,
        "$JS.API.STREAM.CREATE.A",
        json!({"name": "A", "max_age": -1}),
    )
    .await;
    assert_eq!(
        r["error"]["description"], "max age can not be negative",
        "{r}"
    );
    for (cfg, code) in [
        (json!({"durable_name": "X", "ack_wait": -1}), 10183),
        (
            json!({"durable_name": "X", "backoff": [1000000000, -1], "max_deliver": 5}),
            10184,
        ),
    ] {
        let r = api(
            &nc,
            "$JS.API.CONSUMER.CREATE.L.X",
            json!({"stream_name": "L", "config": cfg}),
        )
        .await;
        assert_eq!(r["error"]["err_code"], code, "{r}");
    }
    let r = api(
        &nc,
        "$JS.API.CONSUMER.CREATE.L.Y",
        json!({"stream_name": "L", "config": {"durable_name": "Y", "max_deliver": -5,
            "max_ack_pending": -5, "max_waiting": -5, "max_batch": -5, "max_expires": -1,
            "inactive_threshold": -1}}),
    )
    .await;
    assert!(r.get("error").is_none(), "{r}");
    assert_eq!(r["config"]["max_deliver"], -1);
    assert_eq!(r["config"]["max_ack_pending"], -1);
    assert_eq!(r["config"]["max_waiting"], 512);
}

#[tokio::test]
async fn huge_pull_request_numbers_get_statuses_not_panics() {
    let (s, _nc, js) = setup().await;
    let st = js.create_stream(config("P", &["p.>"])).await.unwrap();
    st.create_consumer(consumer::pull::Config {
        durable_name: Some("C".into()),
        ..Default::default()
    })
    .await
    .unwrap();
    let mut raw = RawClient::connect_with(s.addr(), r#"{"verbose":false,"headers":true}"#).await;
    raw.send(b"SUB r 1\r\n").await;
    let max = i64::MAX;
    let hb = format!(r#"{{"batch":1,"idle_heartbeat":{max},"expires":1000000000}}"#);
    raw.send(
        format!(
            "PUB $JS.API.CONSUMER.MSG.NEXT.P.C r {}\r\n{hb}\r\n",
            hb.len()
        )
        .as_bytes(),
    )
    .await;
    raw.expect(
        b"HMSG r 1 56 56\r\nNATS/1.0 400 Bad Request - heartbeat value too large\r\n\r\n\r\n",
    )
    .await;
    // Batch and expiry at the top of their range: the request waits; a message arrives.
    let big = format!(r#"{{"batch":{max},"expires":{max}}}"#);
    raw.send(
        format!(
            "PUB $JS.API.CONSUMER.MSG.NEXT.P.C r {}\r\n{big}\r\n",
            big.len()
        )
        .as_bytes(),
    )
    .await;
    publish(&js, "p.x", 1).await;
    let line = raw.read_line().await;
    assert!(line.starts_with("MSG p.x 1 $JS.ACK.P.C.1.1.1."), "{line}");
}
