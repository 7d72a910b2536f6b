//! JetStream behaviours the official clients depend on, each once found to differ from
//! nats-server: push consumers unbinding when their subscriber goes, KV key listings and
//! watchers that end or idle like on nats-server, pull requests with heartbeats, short
//! batches and abandoned requests, STREAM.INFO's shape, DIRECT.GET without allow_direct,
//! and account limits at stream create.

use std::time::Duration;

use async_nats::jetstream::{self, consumer, kv, stream};
use futures::{StreamExt, TryStreamExt};
use petrel_testkit::{spawn_jetstream, RawClient};

use crate::support::{api_code, config, fetch_within, publish};

/// Waits until `f` holds, checking every 20 ms for up to 5 s.
async fn eventually<F, Fut>(what: &str, mut f: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    for _ in 0..250 {
        if f().await {
            return;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("{what} never happened");
}

#[tokio::test]
async fn push_consumer_unbinds_when_its_subscriber_disconnects() {
    let s = spawn_jetstream().await;
    let admin = jetstream::new(async_nats::connect(s.client_url()).await.unwrap());
    admin
        .create_stream(config("ORDERS", &["orders.>"]))
        .await
        .unwrap();
    let c: consumer::PushConsumer = admin
        .create_consumer_on_stream(
            consumer::push::Config {
                durable_name: Some("shipper".into()),
                deliver_subject: "deliver.shipper".into(),
                ack_policy: consumer::AckPolicy::Explicit,
                ..Default::default()
            },
            "ORDERS",
        )
        .await
        .unwrap();
    let worker = async_nats::connect(s.client_url()).await.unwrap();
    let mut sub = worker.subscribe("deliver.shipper").await.unwrap();
    worker.flush().await.unwrap();
    publish(&admin, "orders.1", 1).await;
    let first = tokio::time::timeout(Duration::from_secs(5), sub.next())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(first.payload, "m0");
    let mut c2 = c.clone();
    assert!(c2.info().await.unwrap().push_bound);
    // The worker's connection goes away: the consumer is unbound at once, even with no
    // message flowing.
    drop(sub);
    drop(worker);
    eventually("push_bound false", || {
        let mut c = c.clone();
        async move { !c.info().await.unwrap().push_bound }
    })
    .await;
    // Published meanwhile, delivered to the next subscriber.
    publish(&admin, "orders.2", 3).await;
    let worker = async_nats::connect(s.client_url()).await.unwrap();
    let mut sub = worker.subscribe("deliver.shipper").await.unwrap();
    let mut got = Vec::new();
    while got.len() < 3 {
        let m = tokio::time::timeout(Duration::from_secs(5), sub.next())
            .await
            .expect("messages published while unbound are delivered")
            .unwrap();
        got.push(String::from_utf8_lossy(&m.payload).into_owned());
    }
    assert_eq!(got, ["m0", "m1", "m2"]);
}

/// A bucket on a fresh server.
async fn bucket(name: &str) -> (petrel_testkit::TestServer, kv::Store) {
    let s = spawn_jetstream().await;
    let js = jetstream::new(async_nats::connect(s.client_url()).await.unwrap());
    let kv = js
        .create_key_value(kv::Config {
            bucket: name.into(),
            history: 3,
            ..Default::default()
        })
        .await
        .unwrap();
    (s, kv)
}

#[tokio::test]
async fn kv_keys_ends_after_deletes_and_purges() {
    let (_s, kv) = bucket("cfg").await;
    for k in ["a", "b", "c", "d"] {
        kv.put(k, "v".into()).await.unwrap();
        kv.put(k, "w".into()).await.unwrap();
    }
    kv.delete("b").await.unwrap();
    kv.purge("d").await.unwrap();
    let keys = tokio::time::timeout(Duration::from_secs(10), async {
        let mut keys: Vec<String> = kv.keys().await.unwrap().try_collect().await.unwrap();
        keys.sort();
        keys
    })
    .await
    .expect("keys() ends");
    assert_eq!(keys, ["a", "c"]);
    // Every key deleted: an empty listing that still ends.
    kv.delete("a").await.unwrap();
    kv.purge("c").await.unwrap();
    let keys: Vec<String> = tokio::time::timeout(Duration::from_secs(10), async {
        kv.keys().await.unwrap().try_collect().await.unwrap()
    })
    .await
    .expect("keys() ends");
    assert!(keys.is_empty(), "{keys:?}");
}

#[tokio::test]
async fn kv_watch_on_a_quiet_bucket_keeps_waiting_then_sees_updates() {
    let (_s, kv) = bucket("quiet").await;
    let mut w = kv.watch_all().await.unwrap();
    // Quiet for longer than the watcher's idle heartbeat (5 s in async-nats); then the
    // first thing the watcher yields is the put: neither an error nor a stray entry came
    // while it idled on heartbeats.
    tokio::time::sleep(Duration::from_secs(6)).await;
    kv.put("k", "v1".into()).await.unwrap();
    let e = tokio::time::timeout(Duration::from_secs(5), w.next())
        .await
        .expect("the watcher sees the put")
        .expect("the watcher is still open")
        .expect("no error from the idle period");
    assert_eq!((e.key.as_str(), e.value.as_ref()), ("k", &b"v1"[..]));
}

/// A durable pull consumer `worker` on stream `JOBS` (`jobs.>`).
async fn pull_worker(js: &jetstream::Context) -> consumer::PullConsumer {
    js.create_stream(config("JOBS", &["jobs.>"])).await.unwrap();
    js.create_consumer_on_stream(
        consumer::pull::Config {
            durable_name: Some("worker".into()),
            ack_policy: consumer::AckPolicy::Explicit,
            ..Default::default()
        },
        "JOBS",
    )
    .await
    .unwrap()
}

#[tokio::test]
async fn pull_request_with_heartbeat_like_nats_py() {
    let s = spawn_jetstream().await;
    let js = jetstream::new(async_nats::connect(s.client_url()).await.unwrap());
    pull_worker(&js).await;
    publish(&js, "jobs.1", 1).await;
    // nats.py's fetch(1, timeout=1, heartbeat=0.1): expires is the timeout less 100 µs.
    let mut raw = RawClient::connect(s.addr()).await;
    raw.send(b"CONNECT {\"headers\":true,\"verbose\":false}\r\nSUB _INBOX.py 1\r\n")
        .await;
    let body = br#"{"batch": 1, "expires": 999900000, "idle_heartbeat": 100000000}"#;
    let publ = format!(
        "PUB $JS.API.CONSUMER.MSG.NEXT.JOBS.worker _INBOX.py {}\r\n",
        body.len()
    );
    raw.send(publ.as_bytes()).await;
    raw.send(body).await;
    raw.send(b"\r\n").await;
    raw.expect(b"MSG jobs.1 1 $JS.ACK.JOBS.worker.1.1.1.").await;
}

#[tokio::test]
async fn short_batch_returns_what_there_is_and_abandoned_requests_take_nothing() {
    let s = spawn_jetstream().await;
    let js = jetstream::new(async_nats::connect(s.client_url()).await.unwrap());
    let c = pull_worker(&js).await;
    publish(&js, "jobs.a", 5).await;
    let got = fetch_within(&c, 10, Duration::from_millis(500)).await;
    assert_eq!(got.len(), 5);
    for m in &got {
        m.ack().await.unwrap();
    }
    // A request left behind (here: long expiry, its inbox unsubscribed, as after a client
    // gave up on a fetch) must not take the next message: the next fetch gets it, on its
    // first delivery (had it gone to the dead inbox, it would wait out ack_wait first).
    let mut raw = RawClient::connect(s.addr()).await;
    raw.send(b"CONNECT {\"headers\":true,\"verbose\":false}\r\nSUB _INBOX.gone 1\r\n")
        .await;
    let body = br#"{"batch":1,"expires":30000000000}"#;
    let publ = format!(
        "PUB $JS.API.CONSUMER.MSG.NEXT.JOBS.worker _INBOX.gone {}\r\n",
        body.len()
    );
    raw.send(publ.as_bytes()).await;
    raw.send(body).await;
    raw.send(b"\r\nUNSUB 1\r\nPING\r\n").await;
    raw.expect(b"PONG\r\n").await;
    publish(&js, "jobs.b", 1).await;
    let next = fetch_within(&c, 1, Duration::from_secs(5)).await;
    assert_eq!(next.len(), 1, "the next fetch gets the message");
    assert_eq!(
        next[0].info().unwrap().delivered,
        1,
        "never sent to the dead inbox"
    );
}

#[tokio::test]
async fn stream_info_omits_subjects_unless_asked() {
    let s = spawn_jetstream().await;
    let nc = async_nats::connect(s.client_url()).await.unwrap();
    let js = jetstream::new(nc.clone());
    js.create_stream(config("EV", &["ev.>"])).await.unwrap();
    publish(&js, "ev.a", 2).await;
    let reply = nc
        .request("$JS.API.STREAM.INFO.EV", "".into())
        .await
        .unwrap();
    let v: serde_json::Value = serde_json::from_slice(&reply.payload).unwrap();
    assert!(v["state"].get("subjects").is_none(), "{v}");
    let reply = nc
        .request(
            "$JS.API.STREAM.INFO.EV",
            r#"{"subjects_filter":">"}"#.into(),
        )
        .await
        .unwrap();
    let v: serde_json::Value = serde_json::from_slice(&reply.payload).unwrap();
    assert_eq!(v["state"]["subjects"]["ev.a"], 2, "{v}");
    // A filter that matches nothing: no empty map either (Go's omitempty).
    let reply = nc
        .request(
            "$JS.API.STREAM.INFO.EV",
            r#"{"subjects_filter":"none"}"#.into(),
        )
        .await
        .unwrap();
    let v: serde_json::Value = serde_json::from_slice(&reply.payload).unwrap();
    assert!(v["state"].get("subjects").is_none(), "{v}");
}

#[tokio::test]
async fn direct_get_needs_allow_direct() {
    let s = spawn_jetstream().await;
    let nc = async_nats::connect(s.client_url()).await.unwrap();
    let js = jetstream::new(nc.clone());
    js.create_stream(config("PLAIN", &["plain"])).await.unwrap();
    publish(&js, "plain", 1).await;
    // As nats-server: no DIRECT.GET responder for a stream without allow_direct, nor for
    // a stream that does not exist — the requester gets the no-responders status.
    for subject in [
        "$JS.API.DIRECT.GET.PLAIN",
        "$JS.API.DIRECT.GET.PLAIN.plain",
        "$JS.API.DIRECT.GET.NOPE",
    ] {
        let err = nc
            .request(subject, r#"{"seq":1}"#.into())
            .await
            .expect_err("no responder");
        assert_eq!(
            err.kind(),
            async_nats::RequestErrorKind::NoResponders,
            "{subject}"
        );
    }
    let mut cfg = config("PLAIN", &["plain"]);
    cfg.allow_direct = true;
    js.update_stream(cfg).await.unwrap();
    let m = js
        .get_stream("PLAIN")
        .await
        .unwrap()
        .direct_get(1)
        .await
        .unwrap();
    assert_eq!(m.payload, "m0");
    // A raw client without no_responders gets nothing back, as from nats-server.
    let mut raw = RawClient::connect(s.addr()).await;
    raw.send(b"CONNECT {\"headers\":true,\"verbose\":false}\r\nSUB _INBOX.d 1\r\n")
        .await;
    raw.send(b"PUB $JS.API.DIRECT.GET.NOPE _INBOX.d 9\r\n{\"seq\":1}\r\nPING\r\n")
        .await;
    raw.expect(b"PONG\r\n").await;
}

#[tokio::test]
async fn streams_reserve_within_the_server_limits() {
    let s = petrel_testkit::spawn_with_store(|b, dir| {
        b.jetstream(dir)
            .jetstream_limits(Some(1 << 20), Some(10 << 20))
    })
    .await;
    let nc = async_nats::connect(s.client_url()).await.unwrap();
    let js = jetstream::new(nc.clone());
    let sized = |name: &str, storage, max_bytes| stream::Config {
        name: name.into(),
        subjects: vec![name.to_lowercase()],
        storage,
        max_bytes,
        ..Default::default()
    };
    let code = |r: Result<_, async_nats::jetstream::context::CreateStreamError>| {
        r.err().map_or(0, |e| api_code(&e))
    };
    let file = stream::StorageType::File;
    let memory = stream::StorageType::Memory;
    assert_eq!(
        code(js.create_stream(sized("HUGE", file, 1 << 60)).await),
        10047
    );
    assert_eq!(
        code(js.create_stream(sized("HUGEM", memory, 2 << 20)).await),
        10028
    );
    // Reservations add up: 6 MiB + 4 MiB fit in 10 MiB, one byte more does not, and an
    // unlimited stream needs one byte of room.
    assert_eq!(code(js.create_stream(sized("A", file, 6 << 20)).await), 0);
    assert_eq!(code(js.create_stream(sized("B", file, 4 << 20)).await), 0);
    assert_eq!(code(js.create_stream(sized("C", file, 1)).await), 10047);
    assert_eq!(code(js.create_stream(sized("D", file, -1)).await), 10047);
    assert_eq!(code(js.create_stream(sized("M", memory, -1)).await), 0);
    // Growing on update is checked; shrinking frees room.
    let grow = js.update_stream(sized("A", file, 7 << 20)).await;
    assert!(grow.is_err(), "{grow:?}");
    js.update_stream(sized("A", file, 5 << 20)).await.unwrap();
    assert_eq!(code(js.create_stream(sized("C", file, 1 << 20)).await), 0);
    let info = nc.request("$JS.API.INFO", "".into()).await.unwrap();
    let v: serde_json::Value = serde_json::from_slice(&info.payload).unwrap();
    assert_eq!(v["reserved_storage"], 10 << 20, "{v}");
}
