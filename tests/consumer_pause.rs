//! Pausing a consumer (nats-server 2.11 `pause_until`, `$JS.API.CONSUMER.PAUSE`) through
//! async-nats: nothing is delivered before the pause ends, the info says so, a resume (by
//! request or because the time came) delivers what waited and is announced, the pause
//! survives a restart, and bad requests get nats-server's errors.

use std::time::Duration;

use async_nats::jetstream::{self, consumer};
use futures::StreamExt;
use petrel_testkit::TestServer;
use time::OffsetDateTime;

use crate::support::{config, fetch_within, publish};

fn far_future() -> OffsetDateTime {
    OffsetDateTime::from_unix_timestamp(1_900_000_000).unwrap()
}

async fn boot(dir: &std::path::Path) -> TestServer {
    let dir = dir.to_path_buf();
    petrel_testkit::spawn_with(move |b| b.jetstream(&dir)).await
}

#[tokio::test]
async fn a_paused_consumer_delivers_nothing_until_resumed() {
    let dir = tempfile::tempdir().unwrap();
    let s = boot(dir.path()).await;
    let nc = async_nats::connect(s.client_url()).await.unwrap();
    let js = jetstream::new(nc.clone());
    let stream = js.create_stream(config("P", &["p.>"])).await.unwrap();
    publish(&js, "p.x", 3).await;
    // Created paused: the info says so.
    let mut c: consumer::PullConsumer = stream
        .create_consumer(consumer::pull::Config {
            durable_name: Some("C".into()),
            pause_until: Some(far_future()),
            ..Default::default()
        })
        .await
        .unwrap();
    let info = c.info().await.unwrap().clone();
    assert!(info.paused);
    assert!(info
        .pause_remaining
        .is_some_and(|d| d > Duration::from_secs(3600)));
    assert_eq!(info.config.pause_until, Some(far_future()));
    // Nothing is delivered: a no_wait request, with three messages waiting, is answered
    // at once with 404 (regression: it was left until its client gave up).
    let r = nc
        .request(
            "$JS.API.CONSUMER.MSG.NEXT.P.C",
            r#"{"batch":1,"no_wait":true}"#.into(),
        )
        .await
        .unwrap();
    assert_eq!(r.status.map(|s| s.as_u16()), Some(404));

    // The pause survives a restart.
    drop(c);
    nc.drain().await.unwrap();
    s.shutdown().await;
    let s = boot(dir.path()).await;
    let nc = async_nats::connect(s.client_url()).await.unwrap();
    let js = jetstream::new(nc.clone());
    let stream = js.get_stream("P").await.unwrap();
    let mut c: consumer::PullConsumer = stream.get_consumer("C").await.unwrap();
    assert!(c.info().await.unwrap().paused);
    let mut advisories_after = nc
        .subscribe("$JS.EVENT.ADVISORY.CONSUMER.PAUSE.P.C")
        .await
        .unwrap();

    // Resumed by request: the answer, the advisory, and the three messages.
    let resumed = stream.resume_consumer("C").await.unwrap();
    assert!(!resumed.paused);
    let adv = advisories_after.next().await.unwrap();
    let v: serde_json::Value = serde_json::from_slice(&adv.payload).unwrap();
    assert_eq!(v["type"], "io.nats.jetstream.advisory.v1.consumer_pause");
    assert_eq!(
        (v["stream"].as_str(), v["consumer"].as_str()),
        (Some("P"), Some("C"))
    );
    assert_eq!(v["paused"], false);
    assert_eq!(fetch_within(&c, 3, Duration::from_secs(10)).await.len(), 3);
    assert!(!c.info().await.unwrap().paused);

    // Paused by request for a moment: a pull request made meanwhile is served when the
    // pause runs out, and the resume is announced.
    publish(&js, "p.y", 2).await;
    let until = OffsetDateTime::now_utc() + Duration::from_millis(500);
    let paused = stream.pause_consumer("C", until).await.unwrap();
    assert!(paused.paused);
    let v: serde_json::Value =
        serde_json::from_slice(&advisories_after.next().await.unwrap().payload).unwrap();
    assert_eq!(v["paused"], true);
    let got = fetch_within(&c, 2, Duration::from_secs(10)).await;
    assert_eq!(got.len(), 2, "delivered once the pause ended");
    let v: serde_json::Value =
        serde_json::from_slice(&advisories_after.next().await.unwrap().payload).unwrap();
    assert_eq!(v["paused"], false, "{v}");
}

#[tokio::test]
async fn pause_requests_get_nats_server_answers() {
    let s = petrel_testkit::spawn_jetstream().await;
    let nc = async_nats::connect(s.client_url()).await.unwrap();
    let js = jetstream::new(nc.clone());
    let stream = js.create_stream(config("P", &["p.>"])).await.unwrap();
    stream
        .create_consumer(consumer::pull::Config {
            durable_name: Some("C".into()),
            ..Default::default()
        })
        .await
        .unwrap();
    let req = |subject: &'static str, body: &'static str| {
        let nc = nc.clone();
        async move {
            let r = nc.request(subject, body.into()).await.unwrap();
            serde_json::from_slice::<serde_json::Value>(&r.payload).unwrap()
        }
    };
    let v = req(
        "$JS.API.CONSUMER.PAUSE.P.C",
        r#"{"pause_until":"2031-01-01T00:00:00Z"}"#,
    )
    .await;
    assert_eq!(
        v["type"],
        "io.nats.jetstream.api.v1.consumer_pause_response"
    );
    assert_eq!(v["paused"], true);
    assert_eq!(v["pause_until"], "2031-01-01T00:00:00Z");
    assert!(v["pause_remaining"].as_i64().unwrap() > 0);
    // A time already past: not paused, the time kept.
    let v = req(
        "$JS.API.CONSUMER.PAUSE.P.C",
        r#"{"pause_until":"2001-01-01T00:00:00Z"}"#,
    )
    .await;
    assert_eq!(
        (v["paused"].as_bool(), v["pause_until"].as_str()),
        (Some(false), Some("2001-01-01T00:00:00Z"))
    );
    assert!(v.get("pause_remaining").is_none());
    // No body: a resume.
    let v = req("$JS.API.CONSUMER.PAUSE.P.C", "").await;
    assert_eq!(v["pause_until"], "0001-01-01T00:00:00Z");
    for (subject, body, code) in [
        ("$JS.API.CONSUMER.PAUSE.P.NOPE", "{}", 10014),
        ("$JS.API.CONSUMER.PAUSE.NOPE.C", "{}", 10059),
        ("$JS.API.CONSUMER.PAUSE.P.C", "{bad", 10025),
    ] {
        let v = req(subject, body).await;
        assert_eq!(v["error"]["err_code"], code, "{subject}: {v}");
        assert_eq!(
            (v["paused"].as_bool(), v["pause_until"].as_str()),
            (Some(false), Some("0001-01-01T00:00:00Z"))
        );
    }
}
