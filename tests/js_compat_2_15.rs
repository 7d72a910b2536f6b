//! JetStream API behaviours where nats-server 2.15.1 differs from 2.9.10 and Petrel follows
//! 2.15.1, each found through an official client: consumer filters outside a stream's own
//! subjects (a subject transform stores messages under other subjects), the stream's
//! `consumer_limits` as consumer defaults and bounds, stream updates that would leave
//! consumers above new limits, and 2.11's `Nats-Expected-Last-Subject-Sequence-Subject`.

use async_nats::jetstream::{self, consumer, stream};
use futures::StreamExt;
use petrel_testkit::spawn_jetstream;
use serde_json::Value;

use crate::support::config;

/// A raw `$JS.API` request and its JSON answer.
async fn api(nc: &async_nats::Client, subject: &str, body: &str) -> Value {
    let resp = nc
        .request(subject.to_string(), body.to_string().into())
        .await
        .unwrap();
    serde_json::from_slice(&resp.payload).unwrap()
}

/// The subjects of what one fetch of up to 10 messages from consumer `name` gets, acked.
async fn c_fetch(stream: &stream::Stream, name: &str) -> Vec<String> {
    let c: consumer::PullConsumer = stream.get_consumer(name).await.unwrap();
    let mut got = Vec::new();
    let mut msgs = c
        .fetch()
        .max_messages(10)
        .expires(std::time::Duration::from_secs(1))
        .messages()
        .await
        .unwrap();
    while let Some(m) = msgs.next().await {
        let m = m.unwrap();
        m.ack().await.unwrap();
        got.push(m.subject.to_string());
    }
    got
}

#[tokio::test]
async fn filters_on_a_transformed_stream_match_the_stored_subjects() {
    let s = spawn_jetstream().await;
    let nc = async_nats::connect(s.client_url()).await.unwrap();
    let js = jetstream::new(nc.clone());
    let mut cfg = config("T", &["foo.>"]);
    cfg.subject_transform = Some(stream::SubjectTransform {
        source: "foo.>".into(),
        destination: "bar.>".into(),
    });
    let stream = js.create_stream(cfg).await.unwrap();
    for subject in ["foo.x", "foo.y", "foo.z"] {
        js.publish(subject, "m".into())
            .await
            .unwrap()
            .await
            .unwrap();
    }
    // A filter in the transformed space (how the messages are stored): 2.9 refused it
    // with 10093, 2.15 takes it.
    let c = stream
        .create_consumer(consumer::pull::Config {
            durable_name: Some("X".into()),
            filter_subject: "bar.x".into(),
            ..Default::default()
        })
        .await
        .unwrap();
    drop(c);
    assert_eq!(c_fetch(&stream, "X").await, ["bar.x"]);
    // The same through an update of filter_subjects.
    let updated = stream
        .update_consumer(consumer::pull::Config {
            durable_name: Some("X".into()),
            filter_subjects: vec!["bar.x".into(), "bar.y".into()],
            ..Default::default()
        })
        .await
        .unwrap()
        .cached_info()
        .clone();
    // The first filter passed over bar.y; the new ones take it (and not bar.z).
    assert_eq!(updated.num_pending, 1, "bar.y not yet delivered");
    let next = c_fetch(&stream, "X").await;
    assert_eq!(next, ["bar.y"]);
    // Any valid subject is taken as 2.15 does; an invalid one is 10052.
    let v = api(
        &nc,
        "$JS.API.CONSUMER.CREATE.T.O",
        r#"{"stream_name":"T","config":{"name":"O","filter_subject":"elsewhere.>"}}"#,
    )
    .await;
    assert!(v["error"].is_null(), "{v}");
    let v = api(
        &nc,
        "$JS.API.CONSUMER.CREATE.T.B",
        r#"{"stream_name":"T","config":{"name":"B","filter_subject":"bar..x"}}"#,
    )
    .await;
    assert_eq!(v["error"]["code"], 500, "{v}");
    assert_eq!(v["error"]["err_code"], 10052);
    assert_eq!(v["error"]["description"], "invalid subject");
}

#[tokio::test]
async fn consumer_limits_bound_consumers_and_their_updates() {
    let s = spawn_jetstream().await;
    let nc = async_nats::connect(s.client_url()).await.unwrap();
    let js = jetstream::new(nc.clone());
    let mut cfg = config("L", &["l.>"]);
    cfg.consumer_limits = Some(stream::ConsumerLimits {
        inactive_threshold: std::time::Duration::from_secs(10),
        max_ack_pending: 100,
    });
    let stream = js.create_stream(cfg).await.unwrap();
    // Above the limits: refused as 2.15.1 words it.
    let v = api(
        &nc,
        "$JS.API.CONSUMER.CREATE.L.A",
        r#"{"stream_name":"L","config":{"name":"A","ack_policy":"explicit","max_ack_pending":200}}"#,
    )
    .await;
    assert_eq!(v["error"]["err_code"], 10121, "{v}");
    assert_eq!(
        v["error"]["description"],
        "consumer max ack pending exceeds system limit of 100"
    );
    let v = api(
        &nc,
        "$JS.API.CONSUMER.CREATE.L.A",
        r#"{"stream_name":"L","config":{"name":"A","ack_policy":"explicit","inactive_threshold":90000000000}}"#,
    )
    .await;
    assert_eq!(v["error"]["err_code"], 10153, "{v}");
    assert_eq!(
        v["error"]["description"],
        "consumer inactive threshold exceeds system limit of 10s"
    );
    // The limits are the defaults, for a durable too.
    let mut d = stream
        .create_consumer(consumer::pull::Config {
            durable_name: Some("D".into()),
            ..Default::default()
        })
        .await
        .unwrap();
    let info = d.info().await.unwrap();
    assert_eq!(info.config.max_ack_pending, 100);
    assert_eq!(
        info.config.inactive_threshold,
        std::time::Duration::from_secs(10)
    );
    stream
        .create_consumer(consumer::pull::Config {
            durable_name: Some("SMALL".into()),
            max_ack_pending: 10,
            inactive_threshold: std::time::Duration::from_secs(1),
            ..Default::default()
        })
        .await
        .unwrap();
    // New limits that existing consumers exceed: the update is refused, naming them.
    let update =
        |limits: &str| format!(r#"{{"name":"L","subjects":["l.>"],"consumer_limits":{limits}}}"#);
    let v = api(
        &nc,
        "$JS.API.STREAM.UPDATE.L",
        &update(r#"{"inactive_threshold":5000000000,"max_ack_pending":100}"#),
    )
    .await;
    assert_eq!(v["error"]["code"], 500, "{v}");
    assert_eq!(v["error"]["err_code"], 10069);
    assert_eq!(
        v["error"]["description"],
        "change to limits violates consumers: D"
    );
    let v = api(
        &nc,
        "$JS.API.STREAM.UPDATE.L",
        &update(r#"{"max_ack_pending":5}"#),
    )
    .await;
    assert_eq!(
        v["error"]["description"], "change to limits violates consumers: D, SMALL",
        "{v}"
    );
    // Limits every consumer is within: taken.
    let v = api(
        &nc,
        "$JS.API.STREAM.UPDATE.L",
        &update(r#"{"inactive_threshold":20000000000,"max_ack_pending":1000}"#),
    )
    .await;
    assert!(v["error"].is_null(), "{v}");
    assert_eq!(v["config"]["consumer_limits"]["max_ack_pending"], 1000);
}

#[tokio::test]
async fn expected_last_sequence_of_another_subject() {
    let s = spawn_jetstream().await;
    let nc = async_nats::connect(s.client_url()).await.unwrap();
    let js = jetstream::new(nc.clone());
    js.create_stream(config("E", &["e.>"])).await.unwrap();
    for subject in ["e.a", "e.b", "e.a"] {
        js.publish(subject, "x".into())
            .await
            .unwrap()
            .await
            .unwrap();
    }
    // (sequence, subject it is about) → the PubAck's seq or error code.
    let publish = |seq: Option<&'static str>, of: &'static str| {
        let nc = nc.clone();
        async move {
            let mut h = async_nats::HeaderMap::new();
            if let Some(seq) = seq {
                h.insert("Nats-Expected-Last-Subject-Sequence", seq);
            }
            h.insert("Nats-Expected-Last-Subject-Sequence-Subject", of);
            let r = nc.request_with_headers("e.c", h, "x".into()).await.unwrap();
            let v: Value = serde_json::from_slice(&r.payload).unwrap();
            v["error"]["err_code"]
                .as_u64()
                .unwrap_or_else(|| v["seq"].as_u64().unwrap())
        }
    };
    // e.a's last is 3 (the message itself goes to e.c).
    assert_eq!(publish(Some("3"), "e.a").await, 4);
    assert_eq!(publish(Some("3"), "e.a").await, 5);
    // A wildcard: the newest of every matching subject.
    assert_eq!(publish(Some("5"), "e.*").await, 6);
    assert_eq!(publish(Some("5"), "e.*").await, 10071);
    assert_eq!(publish(Some("0"), "e.none").await, 7);
    // The subject without the sequence.
    assert_eq!(publish(None, "e.a").await, 10193);
}

/// The API level (2.11+): `$JS.API.INFO` and the client INFO say 2 (2.12's features), and
/// a request that requires more (or names no number) is refused with 412 10185 in its own
/// response type, while one that requires 2 is served.
#[tokio::test]
async fn the_api_level_is_shown_and_required_levels_are_honoured() {
    let s = spawn_jetstream().await;
    let mut raw = tokio::net::TcpStream::connect(s.addr()).await.unwrap();
    let mut line = Vec::new();
    loop {
        let b = tokio::io::AsyncReadExt::read_u8(&mut raw).await.unwrap();
        line.push(b);
        if b == b'\n' {
            break;
        }
    }
    let info: Value = serde_json::from_slice(&line[5..]).unwrap();
    assert_eq!(info["api_lvl"], 2, "{info}");

    let nc = async_nats::connect(s.client_url()).await.unwrap();
    let js = jetstream::new(nc.clone());
    let account = js.query_account().await.unwrap();
    assert_eq!(account.requests.level, 2);
    js.create_stream(config("L", &["l.>"])).await.unwrap();
    let ask = |level: &'static str, subject: &'static str| {
        let nc = nc.clone();
        async move {
            let mut h = async_nats::HeaderMap::new();
            h.insert("Nats-Required-Api-Level", level);
            let r = nc
                .request_with_headers(subject, h, "".into())
                .await
                .unwrap();
            serde_json::from_slice::<Value>(&r.payload).unwrap()
        }
    };
    for level in ["3", "x"] {
        let v = ask(level, "$JS.API.STREAM.INFO.L").await;
        assert_eq!(v["type"], "io.nats.jetstream.api.v1.stream_info_response");
        assert_eq!(v["error"]["code"], 412, "{v}");
        assert_eq!(v["error"]["err_code"], 10185);
        assert_eq!(
            v["error"]["description"],
            "JetStream minimum api level required"
        );
    }
    let v = ask("9", "$JS.API.INFO").await;
    assert_eq!(v["type"], "io.nats.jetstream.api.v1.account_info_response");
    assert_eq!(v["error"]["err_code"], 10185);
    let v = ask("2", "$JS.API.STREAM.INFO.L").await;
    assert_eq!(v["config"]["name"], "L", "{v}");
    // A direct get answers with a status instead.
    let mut direct = config("DG", &["dg.>"]);
    direct.allow_direct = true;
    js.create_stream(direct).await.unwrap();
    let mut h = async_nats::HeaderMap::new();
    h.insert("Nats-Required-Api-Level", "9");
    let r = nc
        .request_with_headers("$JS.API.DIRECT.GET.DG", h, r#"{"seq":1}"#.into())
        .await
        .unwrap();
    assert_eq!(r.status.map(|s| s.as_u16()), Some(412));
}

/// `persist_mode: async` (2.12): a single-replica file stream's PubAcks stop waiting for
/// the fsync (the maintenance tick adds it within a second); the mode is shown, fixed at
/// creation, and refused where nats-server 2.15.1 refuses it.
#[tokio::test]
async fn async_persistence_is_a_fixed_single_replica_file_setting() {
    use async_nats::jetstream::stream::{PersistenceMode, StorageType};
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().to_path_buf();
    let s = petrel_testkit::spawn_with(move |b| b.jetstream(&path)).await;
    let nc = async_nats::connect(s.client_url()).await.unwrap();
    let js = jetstream::new(nc.clone());
    let cfg = |name: &str| stream::Config {
        persist_mode: Some(PersistenceMode::Async),
        ..config(name, &[&format!("{}.>", name.to_lowercase())])
    };
    let created = js.create_stream(cfg("FAST")).await.unwrap();
    assert_eq!(
        created.cached_info().config.persist_mode,
        Some(PersistenceMode::Async)
    );
    for (bad, want) in [
        (
            stream::Config {
                storage: StorageType::Memory,
                ..cfg("MEM")
            },
            "async persist mode is only supported on file storage",
        ),
        (
            stream::Config {
                allow_atomic_publish: true,
                ..cfg("ATOM")
            },
            "async persist mode is not supported with atomic batch publish",
        ),
    ] {
        let e = js.create_stream(bad).await.unwrap_err().to_string();
        assert!(e.contains(want), "{e}");
    }
    let e = js
        .update_stream(config("FAST", &["fast.>"]))
        .await
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("stream configuration update can not change persist mode"),
        "{e}"
    );
    for i in 0..10 {
        js.publish("fast.x", format!("{i}").into())
            .await
            .unwrap()
            .await
            .unwrap();
    }
    nc.drain().await.unwrap();
    s.shutdown().await;
    let path = dir.path().to_path_buf();
    let s = petrel_testkit::spawn_with(move |b| b.jetstream(&path)).await;
    let js = jetstream::new(async_nats::connect(s.client_url()).await.unwrap());
    let info = js.get_stream("FAST").await.unwrap().cached_info().clone();
    assert_eq!(info.state.messages, 10);
    assert_eq!(info.config.persist_mode, Some(PersistenceMode::Async));
}

/// Strict API requests (nats-server 2.12+'s default): a field the request does not have is
/// refused, named as 2.15.1 names it, at any depth; `jetstream { strict: false }` ignores
/// it, as 2.9/2.10 did.
#[tokio::test]
async fn unknown_request_fields_are_refused_unless_strict_is_off() {
    let s = spawn_jetstream().await;
    let nc = async_nats::connect(s.client_url()).await.unwrap();
    for (subject, body, field) in [
        (
            "$JS.API.STREAM.CREATE.U",
            r#"{"name":"U","subjects":["u.>"],"bogus":1}"#,
            "bogus",
        ),
        (
            "$JS.API.STREAM.CREATE.U",
            r#"{"name":"U","subjects":["u.>"],"consumer_limits":{"x":1}}"#,
            "x",
        ),
        ("$JS.API.STREAM.INFO.U", r#"{"bogus":1}"#, "bogus"),
    ] {
        let v = api(&nc, subject, body).await;
        assert_eq!(v["error"]["err_code"], 10025, "{v}");
        assert_eq!(
            v["error"]["description"],
            format!("invalid JSON: json: unknown field \"{field}\"")
        );
    }
    let v = api(
        &nc,
        "$JS.API.STREAM.CREATE.U",
        r#"{"name":"U","subjects":["u.>"]}"#,
    )
    .await;
    assert_eq!(v["config"]["name"], "U", "{v}");
    let v = api(
        &nc,
        "$JS.API.CONSUMER.CREATE.U",
        r#"{"stream_name":"U","config":{"durable_name":"D","bogus":2}}"#,
    )
    .await;
    assert_eq!(
        v["error"]["description"], "invalid JSON: json: unknown field \"bogus\"",
        "{v}"
    );

    // Every field nats-server 2.15.1 takes is known: `pedantic` on creates, a consumer's
    // internal `direct`, a snapshot's `jsck`, a restore's `state` (the nats CLI sends it).
    let v = api(
        &nc,
        "$JS.API.STREAM.CREATE.P",
        r#"{"name":"P","subjects":["p.>"],"pedantic":true}"#,
    )
    .await;
    assert_eq!(v["config"]["name"], "P", "{v}");
    let v = api(
        &nc,
        "$JS.API.CONSUMER.CREATE.P.D",
        r#"{"stream_name":"P","config":{"durable_name":"D","direct":false},"pedantic":true}"#,
    )
    .await;
    assert_eq!(v["name"], "D", "{v}");
    let v = api(
        &nc,
        "$JS.API.STREAM.SNAPSHOT.P",
        r#"{"deliver_subject":"snap.in","jsck":true}"#,
    )
    .await;
    assert_eq!(v["config"]["name"], "P", "{v}");
    let v = api(
        &nc,
        "$JS.API.STREAM.RESTORE.R",
        r#"{"config":{"name":"R","subjects":["r.>"]},"state":{"messages":0}}"#,
    )
    .await;
    assert!(v["deliver_subject"].is_string(), "{v}");

    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().to_path_buf();
    let lax = petrel_testkit::spawn_with(move |b| b.jetstream(&path).jetstream_strict(false)).await;
    let nc = async_nats::connect(lax.client_url()).await.unwrap();
    let v = api(
        &nc,
        "$JS.API.STREAM.CREATE.U",
        r#"{"name":"U","subjects":["u.>"],"bogus":1}"#,
    )
    .await;
    assert_eq!(v["config"]["name"], "U", "{v}");
}

/// A `STREAM.MSG.GET.ST` request and its JSON answer.
async fn msg_get(nc: &async_nats::Client, body: String) -> Value {
    api(nc, "$JS.API.STREAM.MSG.GET.ST", &body).await
}

/// MSG.GET and DIRECT.GET by `start_time` (2.11): the first message stored at or after it
/// (of `next_by_subj`, if given), as nats-server 2.15.1 answers.
#[tokio::test]
async fn messages_are_found_by_start_time() {
    let s = spawn_jetstream().await;
    let nc = async_nats::connect(s.client_url()).await.unwrap();
    let js = jetstream::new(nc.clone());
    let mut cfg = config("ST", &["st.>"]);
    cfg.allow_direct = true;
    let stream = js.create_stream(cfg).await.unwrap();
    for (subject, body) in [("st.a", "1"), ("st.b", "2"), ("st.a", "3")] {
        js.publish(subject, body.into())
            .await
            .unwrap()
            .await
            .unwrap();
    }
    let second = stream.get_raw_message(2).await.unwrap().time;
    let t = second
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap();
    let v = msg_get(&nc, format!(r#"{{"start_time":"{t}"}}"#)).await;
    assert_eq!(v["message"]["seq"], 2, "{v}");
    let v = msg_get(
        &nc,
        format!(r#"{{"start_time":"{t}","next_by_subj":"st.a"}}"#),
    )
    .await;
    assert_eq!(v["message"]["seq"], 3, "{v}");
    let v = msg_get(&nc, format!(r#"{{"start_time":"{t}","seq":1}}"#)).await;
    assert_eq!(v["error"]["err_code"], 10003, "{v}");
    let v = msg_get(&nc, r#"{"start_time":"2099-01-01T00:00:00Z"}"#.to_string()).await;
    assert_eq!(v["error"]["err_code"], 10037, "{v}");
    let v = msg_get(&nc, r#"{"start_time":"bad"}"#.to_string()).await;
    assert_eq!(v["error"]["err_code"], 10025, "{v}");
    let r = nc
        .request(
            "$JS.API.DIRECT.GET.ST",
            format!(r#"{{"start_time":"{t}"}}"#).into(),
        )
        .await
        .unwrap();
    assert_eq!(
        r.headers
            .as_ref()
            .and_then(|h| h.get("Nats-Sequence"))
            .map(|v| v.as_str()),
        Some("2")
    );
}
