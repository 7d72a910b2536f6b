//! Message schedules (nats-server 2.12, `allow_msg_schedules`) through async-nats: a
//! one-off `@at` schedule publishes its message to its target once and is purged, an
//! `@every` schedule repeats until a client purges it, `Nats-Schedule-Source` publishes
//! another subject's newest message, bad schedules get 2.15.1's errors, and a schedule
//! survives a power loss right after its PubAck.

use std::time::{Duration, Instant};

use async_nats::jetstream::{self, message::StreamMessage, stream};
use petrel_store::SimFs;

use crate::support::{boot_on_sim, config, request_json};

fn schedules_config(name: &str, subjects: &[&str]) -> stream::Config {
    stream::Config {
        allow_message_schedules: true,
        ..config(name, subjects)
    }
}

/// `@at` a moment from now.
fn at_in(secs: u64) -> String {
    let t = time::OffsetDateTime::now_utc() + Duration::from_secs(secs);
    let t = t.replace_nanosecond(0).unwrap();
    format!(
        "@at {}",
        t.format(&time::format_description::well_known::Rfc3339)
            .unwrap()
    )
}

/// The newest message on `subject`, waited for (up to 20 s) until `ok` holds for it.
async fn newest_when(
    stream: &stream::Stream,
    subject: &str,
    ok: impl Fn(&StreamMessage) -> bool,
) -> StreamMessage {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        if let Ok(m) = stream.get_last_raw_message_by_subject(subject).await {
            if ok(&m) {
                return m;
            }
        }
        assert!(Instant::now() < deadline, "nothing on {subject} in time");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test]
async fn one_off_and_repeating_schedules_publish_to_their_targets() {
    let s = petrel_testkit::spawn_jetstream().await;
    let nc = async_nats::connect(s.client_url()).await.unwrap();
    let js = jetstream::new(nc.clone());
    let stream = js
        .create_stream(schedules_config("SC", &["sc.>"]))
        .await
        .unwrap();
    // Schedules turn roll-ups on.
    assert!(stream.cached_info().config.allow_rollup);

    let at = at_in(1);
    let ack = request_json(
        &nc,
        "sc.once",
        &[
            ("Nats-Schedule", at.as_str()),
            ("Nats-Schedule-Target", "sc.out"),
            ("X-Keep", "1"),
        ],
        "hello",
    )
    .await;
    assert_eq!(ack["seq"], 1, "{ack}");
    let stored = stream.get_raw_message(1).await.unwrap();
    assert_eq!(
        stored.headers.get("Nats-Rollup").map(|v| v.as_str()),
        Some("sub")
    );
    let fired = newest_when(&stream, "sc.out", |_| true).await;
    assert_eq!(&fired.payload[..], b"hello");
    let h = |k: &str| fired.headers.get(k).map(|v| v.as_str().to_string());
    assert_eq!(h("Nats-Scheduler").as_deref(), Some("sc.once"));
    assert_eq!(h("Nats-Schedule-Next").as_deref(), Some("purge"));
    assert_eq!(h("X-Keep").as_deref(), Some("1"));
    assert_eq!(h("Nats-Schedule"), None);
    // The one-off schedule is gone.
    assert!(stream
        .get_last_raw_message_by_subject("sc.once")
        .await
        .is_err());

    // A repeating schedule, publishing another subject's newest message.
    request_json(&nc, "sc.latest", &[], "v1").await;
    request_json(
        &nc,
        "sc.rep",
        &[
            ("Nats-Schedule", "@every 1s"),
            ("Nats-Schedule-Target", "sc.tick"),
            ("Nats-Schedule-Source", "sc.latest"),
        ],
        "own body",
    )
    .await;
    let first = newest_when(&stream, "sc.tick", |_| true).await.sequence;
    let again = newest_when(&stream, "sc.tick", |m| m.sequence > first).await;
    assert_eq!(&again.payload[..], b"v1");
    let next = again.headers.get("Nats-Schedule-Next").unwrap().to_string();
    assert!(next.ends_with('Z') && next.len() == 20, "{next}");
    // A client stops it by purging it.
    let ack = request_json(
        &nc,
        "sc.stop",
        &[
            ("Nats-Schedule-Next", "purge"),
            ("Nats-Scheduler", "sc.rep"),
        ],
        "",
    )
    .await;
    assert!(ack["seq"].is_u64(), "{ack}");
    assert!(stream
        .get_last_raw_message_by_subject("sc.rep")
        .await
        .is_err());
}

#[tokio::test]
async fn bad_schedules_get_the_server_errors() {
    let s = petrel_testkit::spawn_jetstream().await;
    let nc = async_nats::connect(s.client_url()).await.unwrap();
    let js = jetstream::new(nc.clone());
    js.create_stream(schedules_config("SC", &["sc.>"]))
        .await
        .unwrap();
    js.create_stream(config("N", &["n.>"])).await.unwrap();
    let every = ("Nats-Schedule", "@every 1s");
    for (subject, h, code) in [
        ("n.x", vec![every, ("Nats-Schedule-Target", "n.y")], 10188),
        (
            "sc.x",
            vec![("Nats-Schedule", "bad"), ("Nats-Schedule-Target", "sc.y")],
            10189,
        ),
        (
            "sc.x",
            vec![
                ("Nats-Schedule", "@every 100ms"),
                ("Nats-Schedule-Target", "sc.y"),
            ],
            10189,
        ),
        ("sc.x", vec![every, ("Nats-Schedule-Target", "sc.x")], 10190),
        (
            "sc.x",
            vec![every, ("Nats-Schedule-Target", "other.y")],
            10190,
        ),
        ("sc.x", vec![every, ("Nats-Schedule-Target", "sc.*")], 10190),
        ("sc.x", vec![every], 10190),
        (
            "sc.x",
            vec![
                every,
                ("Nats-Schedule-Target", "sc.y"),
                ("Nats-Schedule-TTL", "abc"),
            ],
            10191,
        ),
        (
            "sc.x",
            vec![
                every,
                ("Nats-Schedule-Target", "sc.y"),
                ("Nats-Schedule-Rollup", "all"),
            ],
            10192,
        ),
        (
            "sc.x",
            vec![
                every,
                ("Nats-Schedule-Target", "sc.y"),
                ("Nats-Schedule-Source", "sc.y"),
            ],
            10203,
        ),
        (
            "sc.x",
            vec![
                every,
                ("Nats-Schedule-Target", "sc.y"),
                ("Nats-Schedule-Time-Zone", "Nope/X"),
            ],
            10223,
        ),
        (
            "sc.x",
            vec![
                ("Nats-Schedule-Next", "2030-01-01T00:00:00Z"),
                ("Nats-Scheduler", "sc.r"),
            ],
            10212,
        ),
        ("sc.x", vec![("Nats-Scheduler", "sc.r")], 10212),
        (
            "sc.x",
            vec![
                every,
                ("Nats-Schedule-Target", "sc.y"),
                ("Nats-Schedule-TTL", "5"),
            ],
            10166,
        ),
    ] {
        let r = request_json(&nc, subject, &h, "").await;
        assert_eq!(r["error"]["err_code"], code, "{h:?}: {r}");
    }
    // A cron pattern in a time zone is a schedule.
    let r = request_json(
        &nc,
        "sc.cron",
        &[
            ("Nats-Schedule", "0 0 9 * * *"),
            ("Nats-Schedule-Target", "sc.y"),
            ("Nats-Schedule-Time-Zone", "Europe/Amsterdam"),
        ],
        "",
    )
    .await;
    assert!(r["seq"].is_u64(), "{r}");
    // Config: not with discard new, and not turned off once on.
    let e = js
        .create_stream(stream::Config {
            discard: stream::DiscardPolicy::New,
            ..schedules_config("B", &["b.>"])
        })
        .await
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("message scheduling cannot use discard new"),
        "{e}"
    );
    let e = js
        .update_stream(config("SC", &["sc.>"]))
        .await
        .unwrap_err()
        .to_string();
    assert!(e.contains("message schedules can not be disabled"), "{e}");
}

/// A power loss right after a schedule's PubAck: after the restart the schedule is still
/// there and fires.
#[tokio::test]
async fn a_schedule_survives_a_power_loss_and_fires_after_the_restart() {
    let fs = SimFs::default();
    let dir = tempfile::tempdir().unwrap();
    let s = boot_on_sim(&fs, dir.path()).await;
    let nc = async_nats::connect(s.client_url()).await.unwrap();
    let js = jetstream::new(nc.clone());
    js.create_stream(schedules_config("P", &["p.>"]))
        .await
        .unwrap();
    let at = at_in(2);
    let ack = request_json(
        &nc,
        "p.sched",
        &[
            ("Nats-Schedule", at.as_str()),
            ("Nats-Schedule-Target", "p.out"),
        ],
        "later",
    )
    .await;
    assert_eq!(ack["seq"], 1);
    fs.crash_losing_unsynced();
    drop(nc);
    s.shutdown().await;
    fs.crash_losing_unsynced();

    let s = boot_on_sim(&fs, dir.path()).await;
    let js = jetstream::new(async_nats::connect(s.client_url()).await.unwrap());
    let stream = js.get_stream("P").await.unwrap();
    let fired = newest_when(&stream, "p.out", |_| true).await;
    assert!(fired.sequence > 1);
    assert!(stream
        .get_last_raw_message_by_subject("p.sched")
        .await
        .is_err());
    s.shutdown().await;
}
