//! Per-message TTLs and subject delete markers (nats-server 2.11) through async-nats: a
//! message published with `Nats-TTL` goes when it is due, `never` outlives `max_age`, bad
//! values and TTLs on streams without `allow_msg_ttl` get 2.15.1's errors, a subject's last
//! message is replaced by a marker that expires in turn, timers survive a restart, and KV
//! per-key TTLs and limit markers work through the client's KV API.

use std::time::{Duration, Instant};

use async_nats::jetstream::{self, kv, message::PublishMessage as Publish, stream};
use futures::StreamExt;
use petrel_testkit::TestServer;

use crate::support::{config, request_json};

async fn boot(dir: &std::path::Path) -> TestServer {
    let dir = dir.to_path_buf();
    petrel_testkit::spawn_with(move |b| b.jetstream(&dir)).await
}

/// A TTL stream's config.
fn ttl_config(name: &str, subjects: &[&str]) -> stream::Config {
    stream::Config {
        allow_message_ttl: true,
        ..config(name, subjects)
    }
}

/// Waits (up to 20 s) until `check` holds.
async fn until<F, Fut>(what: &str, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = Instant::now() + Duration::from_secs(20);
    while !check().await {
        assert!(Instant::now() < deadline, "timed out waiting until {what}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Whether the stream still holds message `seq`.
async fn holds(stream: &stream::Stream, seq: u64) -> bool {
    stream.get_raw_message(seq).await.is_ok()
}

#[tokio::test]
async fn a_message_goes_when_its_ttl_is_due_and_bad_ttls_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let s = boot(dir.path()).await;
    let nc = async_nats::connect(s.client_url()).await.unwrap();
    let js = jetstream::new(nc.clone());
    let stream = js.create_stream(ttl_config("T", &["t.>"])).await.unwrap();
    assert!(stream.cached_info().config.allow_message_ttl);
    js.create_stream(config("N", &["n.>"])).await.unwrap();

    // As nats-server 2.15.1: a TTL where TTLs are off, then malformed ones.
    let r = request_json(&nc, "n.a", &[("Nats-TTL", "5")], "x").await;
    assert_eq!(r["error"]["err_code"], 10166, "{r}");
    assert_eq!(r["error"]["description"], "per-message TTL is disabled");
    for bad in ["0", "500ms", "-1", "abc"] {
        let r = request_json(&nc, "t.a", &[("Nats-TTL", bad)], "x").await;
        assert_eq!(r["error"]["err_code"], 10165, "{bad}: {r}");
        assert_eq!(r["error"]["description"], "invalid per-message TTL");
    }
    // Turning TTLs off again is refused.
    let mut off = config("T", &["t.>"]);
    off.allow_message_ttl = false;
    let err = js.update_stream(off).await.unwrap_err();
    assert!(
        err.to_string()
            .contains("message TTL status can not be disabled"),
        "{err}"
    );

    let short = js
        .send_publish(
            "t.short",
            Publish::build()
                .ttl(Duration::from_secs(1))
                .payload("s".into()),
        )
        .await
        .unwrap()
        .await
        .unwrap()
        .sequence;
    let long = js
        .send_publish(
            "t.long",
            Publish::build()
                .ttl(Duration::from_secs(3600))
                .payload("l".into()),
        )
        .await
        .unwrap()
        .await
        .unwrap()
        .sequence;
    let stored = stream.get_raw_message(short).await.unwrap();
    assert_eq!(
        stored.headers.get("Nats-TTL").map(|v| v.as_str()),
        Some("1")
    );
    until("the 1 s message is gone", || holds_not(&stream, short)).await;
    // The hour-long one, stored after it, is still there.
    assert!(holds(&stream, long).await);
}

async fn holds_not(stream: &stream::Stream, seq: u64) -> bool {
    !holds(stream, seq).await
}

#[tokio::test]
async fn never_outlives_max_age_and_timers_survive_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let s = boot(dir.path()).await;
    let nc = async_nats::connect(s.client_url()).await.unwrap();
    let js = jetstream::new(nc.clone());
    let mut cfg = ttl_config("A", &["a.>"]);
    cfg.max_age = Duration::from_secs(2);
    js.create_stream(cfg).await.unwrap();
    let never = request_json(&nc, "a.keep", &[("Nats-TTL", "never")], "x").await;
    let never = never["seq"].as_u64().unwrap();
    let plain = request_json(&nc, "a.plain", &[], "x").await["seq"]
        .as_u64()
        .unwrap();
    let timed = request_json(&nc, "a.timed", &[("Nats-TTL", "1")], "x").await["seq"]
        .as_u64()
        .unwrap();

    // The TTL'd message's timer is rebuilt from the store after a restart.
    nc.drain().await.unwrap();
    s.shutdown().await;
    let s = boot(dir.path()).await;
    let nc = async_nats::connect(s.client_url()).await.unwrap();
    let js = jetstream::new(nc.clone());
    let stream = js.get_stream("A").await.unwrap();
    until("the 1 s message is gone after the restart", || {
        holds_not(&stream, timed)
    })
    .await;
    until("max_age removed the plain message", || {
        holds_not(&stream, plain)
    })
    .await;
    // Older than max_age, yet kept: its TTL is never.
    assert!(holds(&stream, never).await);
    nc.drain().await.unwrap();
    s.shutdown().await;
    // Also after a restart, whose own expiry pass must not drop it either.
    let s = boot(dir.path()).await;
    let nc = async_nats::connect(s.client_url()).await.unwrap();
    let js = jetstream::new(nc);
    let stream = js.get_stream("A").await.unwrap();
    assert!(holds(&stream, never).await);
}

#[tokio::test]
async fn a_subjects_last_message_is_replaced_by_a_marker_that_expires() {
    let dir = tempfile::tempdir().unwrap();
    let s = boot(dir.path()).await;
    let nc = async_nats::connect(s.client_url()).await.unwrap();
    let js = jetstream::new(nc.clone());
    let mut cfg = config("M", &["m.>"]);
    cfg.subject_delete_marker_ttl = Some(Duration::from_secs(2));
    let mut stream = js.create_stream(cfg).await.unwrap();
    // Markers turn TTLs and roll-ups on.
    let info = stream.info().await.unwrap().config.clone();
    assert!(info.allow_message_ttl && info.allow_rollup);
    for (ttl, err) in [(0, "must be at least 1 second")] {
        let mut bad = config("B", &["b.>"]);
        bad.subject_delete_marker_ttl = Some(Duration::from_millis(ttl + 500));
        let e = js.create_stream(bad).await.unwrap_err();
        assert!(e.to_string().contains(err), "{e}");
    }

    // A TTL below the markers' is raised to theirs (header rewritten), as nats-server.
    let ack = request_json(&nc, "m.a", &[("Nats-TTL", "1")], "x").await;
    let first = ack["seq"].as_u64().unwrap();
    let stored = stream.get_raw_message(first).await.unwrap();
    assert_eq!(
        stored.headers.get("Nats-TTL").map(|v| v.as_str()),
        Some("2")
    );
    // Another subject with two messages, one with a TTL: removing the older one leaves
    // the newer, so no marker there.
    let keep = request_json(&nc, "m.b", &[("Nats-TTL", "2")], "x").await["seq"]
        .as_u64()
        .unwrap();
    request_json(&nc, "m.b", &[], "x").await;

    until("m.a's message is replaced by a marker", || async {
        matches!(stream.get_last_raw_message_by_subject("m.a").await, Ok(m) if m.sequence > first)
    })
    .await;
    let m = stream.get_last_raw_message_by_subject("m.a").await.unwrap();
    assert_eq!(
        m.headers.get("Nats-Marker-Reason").map(|v| v.as_str()),
        Some("MaxAge")
    );
    assert_eq!(m.headers.get("Nats-TTL").map(|v| v.as_str()), Some("2s"));
    assert_eq!(
        m.headers.get("Nats-Rollup").map(|v| v.as_str()),
        Some("sub")
    );
    assert!(m.payload.is_empty());
    until("m.b's TTL'd message is gone", || holds_not(&stream, keep)).await;
    // The marker expires in turn, leaving no marker of its own: m.b's plain message is all
    // that is left.
    until("the marker expired", || async {
        let info = js.get_stream("M").await.unwrap();
        info.cached_info().state.messages == 1
    })
    .await;
    assert!(stream.get_last_raw_message_by_subject("m.a").await.is_err());
    assert!(stream.get_last_raw_message_by_subject("m.b").await.is_ok());
}

#[tokio::test]
async fn kv_keys_with_a_ttl_expire_and_watchers_see_the_limit_marker() {
    let dir = tempfile::tempdir().unwrap();
    let s = boot(dir.path()).await;
    let nc = async_nats::connect(s.client_url()).await.unwrap();
    let js = jetstream::new(nc.clone());
    let kv = js
        .create_key_value(kv::Config {
            bucket: "sessions".into(),
            history: 5,
            limit_markers: Some(Duration::from_secs(2)),
            ..Default::default()
        })
        .await
        .unwrap();
    let mut watch = kv.watch("user.*").await.unwrap();
    kv.create_with_ttl("user.1", "alice".into(), Duration::from_secs(1))
        .await
        .unwrap();
    kv.put("user.2", "bob".into()).await.unwrap();
    // A key created with a TTL cannot be created again while it lives.
    assert!(kv
        .create_with_ttl("user.1", "again".into(), Duration::from_secs(1))
        .await
        .is_err());

    let mut seen = Vec::new();
    while seen.len() < 3 {
        let e = tokio::time::timeout(Duration::from_secs(20), watch.next())
            .await
            .expect("a watch update")
            .unwrap()
            .unwrap();
        seen.push((e.key.clone(), e.operation));
    }
    assert_eq!(seen[2], ("user.1".to_string(), kv::Operation::Purge));
    assert!(kv.get("user.1").await.unwrap().is_none());
    assert_eq!(
        kv.get("user.2").await.unwrap().as_deref(),
        Some(&b"bob"[..])
    );
    // Gone, so it can be created again.
    kv.create("user.1", "carol".into()).await.unwrap();
    // A purge with a TTL leaves a purge marker that expires too.
    kv.purge_with_ttl("user.2", Duration::from_secs(1))
        .await
        .unwrap();
    let stream = js.get_stream("KV_sessions").await.unwrap();
    until("user.2's purge marker expired", || async {
        stream
            .get_last_raw_message_by_subject("$KV.sessions.user.2")
            .await
            .is_err()
    })
    .await;
}
