//! JetStream consumers through async-nats: durable pull and push, ephemeral cleanup, every
//! deliver policy, acks (nak with delay, term, in-progress), redelivery after ack_wait and
//! backoff, max_deliver with its advisory, max_ack_pending, and the API errors of
//! nats-server for bad configs.

use std::time::{Duration, Instant};

use async_nats::jetstream::consumer::{pull, push, AckPolicy, DeliverPolicy};
use async_nats::jetstream::{self, AckKind};
use futures::StreamExt;
use petrel_testkit::spawn_jetstream;

use crate::support::{config, publish};

/// Fetches up to `n` messages with a no_wait request.
pub(crate) async fn fetch(
    c: &jetstream::consumer::Consumer<pull::Config>,
    n: usize,
) -> Vec<jetstream::Message> {
    let mut msgs = c.fetch().max_messages(n).messages().await.unwrap();
    let mut out = Vec::new();
    while let Some(m) = msgs.next().await {
        out.push(m.unwrap());
    }
    out
}

/// A durable pull consumer with explicit acks.
pub(crate) fn durable(name: &str) -> pull::Config {
    pull::Config {
        durable_name: Some(name.to_string()),
        ack_policy: AckPolicy::Explicit,
        ..Default::default()
    }
}

#[tokio::test]
async fn durable_pull_fetch_ack_and_info() {
    let s = spawn_jetstream().await;
    let js = jetstream::new(async_nats::connect(s.client_url()).await.unwrap());
    let stream = js
        .create_stream(config("ORDERS", &["orders.>"]))
        .await
        .unwrap();
    publish(&js, "orders.new", 5).await;
    let mut c = stream.create_consumer(durable("proc")).await.unwrap();
    assert_eq!(c.info().await.unwrap().num_pending, 5);
    let msgs = fetch(&c, 3).await;
    assert_eq!(msgs.len(), 3);
    for (i, m) in msgs.iter().enumerate() {
        let info = m.info().unwrap();
        assert_eq!(info.stream_sequence, i as u64 + 1);
        assert_eq!(info.consumer_sequence, i as u64 + 1);
        assert_eq!(info.delivered, 1);
        assert_eq!(info.pending, 4 - i as u64);
        assert_eq!(m.subject.as_str(), "orders.new");
        m.double_ack().await.unwrap();
    }
    let info = c.info().await.unwrap();
    assert_eq!(info.delivered.stream_sequence, 3);
    assert_eq!(info.ack_floor.stream_sequence, 3);
    assert_eq!(info.num_ack_pending, 0);
    assert_eq!(info.num_pending, 2);
    // The rest, then an empty no_wait fetch ends at once.
    let rest = fetch(&c, 10).await;
    assert_eq!(rest.len(), 2);
    for m in &rest {
        m.ack().await.unwrap();
    }
    let t = Instant::now();
    assert!(fetch(&c, 10).await.is_empty());
    assert!(t.elapsed() < Duration::from_secs(2));
    // Names, list and delete.
    let names: Vec<String> = stream.consumer_names().map(|n| n.unwrap()).collect().await;
    assert_eq!(names, vec!["proc".to_string()]);
    stream.delete_consumer("proc").await.unwrap();
    assert!(stream.get_consumer::<pull::Config>("proc").await.is_err());
}

#[tokio::test]
async fn pull_messages_stream_waits_for_new_messages() {
    let s = spawn_jetstream().await;
    let js = jetstream::new(async_nats::connect(s.client_url()).await.unwrap());
    let stream = js.create_stream(config("EV", &["ev.*"])).await.unwrap();
    let c = stream.create_consumer(durable("w")).await.unwrap();
    let mut msgs = c.messages().await.unwrap();
    let js2 = js.clone();
    tokio::spawn(async move {
        tokio::time::sleep(Duration::from_millis(200)).await;
        publish(&js2, "ev.a", 3).await;
    });
    for i in 1..=3u64 {
        let m = tokio::time::timeout(Duration::from_secs(5), msgs.next())
            .await
            .unwrap()
            .unwrap()
            .unwrap();
        assert_eq!(m.info().unwrap().stream_sequence, i);
        m.ack().await.unwrap();
    }
}

#[tokio::test]
async fn push_durable_delivers_with_original_subject_and_heartbeats() {
    let s = spawn_jetstream().await;
    let client = async_nats::connect(s.client_url()).await.unwrap();
    let js = jetstream::new(client.clone());
    let stream = js
        .create_stream(config("SEC", &["SECURITY.ALERTS.*"]))
        .await
        .unwrap();
    publish(&js, "SECURITY.ALERTS.login", 2).await;
    let c = stream
        .create_consumer(push::Config {
            durable_name: Some("alerts".into()),
            deliver_subject: "deliver.alerts".into(),
            ack_policy: AckPolicy::Explicit,
            idle_heartbeat: Duration::from_millis(200),
            ..Default::default()
        })
        .await
        .unwrap();
    let mut msgs = c.messages().await.unwrap();
    for i in 1..=2u64 {
        let m = tokio::time::timeout(Duration::from_secs(5), msgs.next())
            .await
            .unwrap()
            .unwrap()
            .unwrap();
        assert_eq!(m.subject.as_str(), "SECURITY.ALERTS.login");
        assert_eq!(m.info().unwrap().stream_sequence, i);
        m.ack().await.unwrap();
    }
    // Heartbeats flow on the raw deliver subject while idle.
    let mut raw = client.subscribe("deliver.alerts").await.unwrap();
    let hb = tokio::time::timeout(Duration::from_secs(3), raw.next())
        .await
        .unwrap()
        .unwrap();
    let status = hb.status.map(|s| s.as_u16());
    assert_eq!(status, Some(100), "idle heartbeat status");
    let h = hb.headers.unwrap();
    assert_eq!(h.get("Nats-Last-Consumer").unwrap().as_str(), "2");
    assert_eq!(h.get("Nats-Last-Stream").unwrap().as_str(), "2");
}

#[tokio::test]
async fn push_waits_for_interest() {
    let s = spawn_jetstream().await;
    let client = async_nats::connect(s.client_url()).await.unwrap();
    let js = jetstream::new(client.clone());
    let stream = js.create_stream(config("P", &["p.>"])).await.unwrap();
    publish(&js, "p.x", 3).await;
    let mut c = stream
        .create_consumer(push::Config {
            durable_name: Some("late".into()),
            deliver_subject: "late.dlv".into(),
            ack_policy: AckPolicy::None,
            ..Default::default()
        })
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;
    let info = c.info().await.unwrap();
    assert_eq!(
        info.delivered.stream_sequence, 0,
        "nothing sent without interest"
    );
    assert!(!info.push_bound);
    let mut sub = client.subscribe("late.dlv").await.unwrap();
    for _ in 0..3 {
        tokio::time::timeout(Duration::from_secs(5), sub.next())
            .await
            .unwrap()
            .unwrap();
    }
    assert!(c.info().await.unwrap().push_bound);
}

#[tokio::test]
async fn queue_push_consumer_spreads_over_group() {
    let s = spawn_jetstream().await;
    let client = async_nats::connect(s.client_url()).await.unwrap();
    let js = jetstream::new(client.clone());
    let stream = js
        .create_stream(config("WF", &["chat.workflow.execute.*"]))
        .await
        .unwrap();
    stream
        .create_consumer(push::Config {
            durable_name: Some("workflow-workers".into()),
            deliver_subject: "wf.dlv".into(),
            deliver_group: Some("workflow-workers".into()),
            ack_policy: AckPolicy::Explicit,
            ..Default::default()
        })
        .await
        .unwrap();
    let mut a = client
        .queue_subscribe("wf.dlv", "workflow-workers".into())
        .await
        .unwrap();
    let mut b = client
        .queue_subscribe("wf.dlv", "workflow-workers".into())
        .await
        .unwrap();
    client.flush().await.unwrap();
    publish(&js, "chat.workflow.execute.run", 40).await;
    let mut seen = std::collections::BTreeSet::new();
    let (mut na, mut nb) = (0, 0);
    while seen.len() < 40 {
        let m = tokio::select! {
            m = a.next() => { na += 1; m }
            m = b.next() => { nb += 1; m }
            _ = tokio::time::sleep(Duration::from_secs(5)) => panic!("only {} delivered", seen.len()),
        }
        .unwrap();
        let reply = m.reply.clone().unwrap();
        let seq: u64 = reply.split('.').nth(5).unwrap().parse().unwrap();
        assert!(seen.insert(seq), "seq {seq} delivered twice");
        client.publish(reply, "+ACK".into()).await.unwrap();
    }
    assert!(na > 0 && nb > 0, "both members got work ({na}/{nb})");
}

#[tokio::test]
async fn ephemeral_consumer_removed_after_inactivity() {
    let s = spawn_jetstream().await;
    let js = jetstream::new(async_nats::connect(s.client_url()).await.unwrap());
    let stream = js.create_stream(config("E", &["e.>"])).await.unwrap();
    let mut c = stream
        .create_consumer(pull::Config {
            inactive_threshold: Duration::from_millis(500),
            ..Default::default()
        })
        .await
        .unwrap();
    let name = c.info().await.unwrap().name.clone();
    assert_eq!(name.len(), 8, "nats-server style ephemeral name {name}");
    assert_eq!(
        c.info().await.unwrap().config.inactive_threshold,
        Duration::from_millis(500)
    );
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        if stream.get_consumer::<pull::Config>(&name).await.is_err() {
            break;
        }
        assert!(Instant::now() < deadline, "ephemeral never removed");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn first_seq_for(stream: &jetstream::stream::Stream, cfg: pull::Config) -> Vec<u64> {
    let c = stream.create_consumer(cfg).await.unwrap();
    fetch(&c, 100)
        .await
        .iter()
        .map(|m| m.info().unwrap().stream_sequence)
        .collect()
}

#[tokio::test]
async fn every_deliver_policy() {
    let s = spawn_jetstream().await;
    let js = jetstream::new(async_nats::connect(s.client_url()).await.unwrap());
    let stream = js.create_stream(config("DP", &["dp.*"])).await.unwrap();
    publish(&js, "dp.a", 2).await; // 1, 2
    publish(&js, "dp.b", 2).await; // 3, 4
    tokio::time::sleep(Duration::from_millis(50)).await;
    let middle = time::OffsetDateTime::now_utc();
    tokio::time::sleep(Duration::from_millis(50)).await;
    publish(&js, "dp.a", 1).await; // 5
    let base = |p: DeliverPolicy| pull::Config {
        deliver_policy: p,
        ack_policy: AckPolicy::None,
        ..Default::default()
    };
    assert_eq!(
        first_seq_for(&stream, base(DeliverPolicy::All)).await,
        vec![1, 2, 3, 4, 5]
    );
    assert_eq!(
        first_seq_for(&stream, base(DeliverPolicy::Last)).await,
        vec![5]
    );
    assert_eq!(
        first_seq_for(&stream, base(DeliverPolicy::New)).await,
        Vec::<u64>::new()
    );
    assert_eq!(
        first_seq_for(
            &stream,
            base(DeliverPolicy::ByStartSequence { start_sequence: 3 })
        )
        .await,
        vec![3, 4, 5]
    );
    assert_eq!(
        first_seq_for(
            &stream,
            base(DeliverPolicy::ByStartTime { start_time: middle })
        )
        .await,
        vec![5]
    );
    let lps = pull::Config {
        filter_subject: "dp.*".into(),
        ..base(DeliverPolicy::LastPerSubject)
    };
    assert_eq!(first_seq_for(&stream, lps).await, vec![4, 5]);
    let filtered = pull::Config {
        filter_subject: "dp.b".into(),
        ..base(DeliverPolicy::All)
    };
    assert_eq!(first_seq_for(&stream, filtered).await, vec![3, 4]);
    // `new` sees what comes after it was created.
    let c = stream
        .create_consumer(base(DeliverPolicy::New))
        .await
        .unwrap();
    publish(&js, "dp.b", 1).await;
    let got: Vec<u64> = fetch(&c, 10)
        .await
        .iter()
        .map(|m| m.info().unwrap().stream_sequence)
        .collect();
    assert_eq!(got, vec![6]);
}

#[tokio::test]
async fn nak_with_delay_redelivers_after_the_delay_not_before() {
    let s = spawn_jetstream().await;
    let js = jetstream::new(async_nats::connect(s.client_url()).await.unwrap());
    let stream = js.create_stream(config("NAK", &["nak.>"])).await.unwrap();
    publish(&js, "nak.x", 1).await;
    let c = stream.create_consumer(durable("n")).await.unwrap();
    let m = fetch(&c, 1).await.remove(0);
    let t = Instant::now();
    m.ack_with(AckKind::Nak(Some(Duration::from_millis(1500))))
        .await
        .unwrap();
    // Nothing before the delay.
    assert!(fetch(&c, 1).await.is_empty());
    let mut msgs = c
        .batch()
        .max_messages(1)
        .expires(Duration::from_secs(10))
        .messages()
        .await
        .unwrap();
    let again = msgs.next().await.unwrap().unwrap();
    assert!(
        t.elapsed() >= Duration::from_millis(1500),
        "redelivered too early: {:?}",
        t.elapsed()
    );
    let info = again.info().unwrap();
    assert_eq!((info.stream_sequence, info.delivered), (1, 2));
    again.ack().await.unwrap();
    // A plain nak redelivers at once.
    publish(&js, "nak.y", 1).await;
    let m = fetch(&c, 1).await.remove(0);
    m.ack_with(AckKind::Nak(None)).await.unwrap();
    let again = fetch(&c, 1).await.remove(0);
    assert_eq!(again.info().unwrap().delivered, 2);
}

#[tokio::test]
async fn ack_wait_expiry_and_in_progress() {
    let s = spawn_jetstream().await;
    let js = jetstream::new(async_nats::connect(s.client_url()).await.unwrap());
    let stream = js.create_stream(config("AW", &["aw"])).await.unwrap();
    publish(&js, "aw", 1).await;
    let c = stream
        .create_consumer(pull::Config {
            ack_wait: Duration::from_millis(800),
            ..durable("aw")
        })
        .await
        .unwrap();
    let m = fetch(&c, 1).await.remove(0);
    // Keep it alive past one ack_wait with +WPI.
    tokio::time::sleep(Duration::from_millis(500)).await;
    m.ack_with(AckKind::Progress).await.unwrap();
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(fetch(&c, 1).await.is_empty(), "+WPI restarted the timer");
    // Not acked: redelivered after ack_wait with delivered = 2 and a new consumer seq.
    let mut msgs = c
        .batch()
        .max_messages(1)
        .expires(Duration::from_secs(5))
        .messages()
        .await
        .unwrap();
    let again = msgs.next().await.unwrap().unwrap();
    let info = again.info().unwrap();
    assert_eq!(
        (info.stream_sequence, info.consumer_sequence, info.delivered),
        (1, 2, 2)
    );
    let mut c = c;
    assert_eq!(c.info().await.unwrap().num_redelivered, 1);
}

#[tokio::test]
async fn backoff_schedule_and_max_deliver_advisory() {
    let s = spawn_jetstream().await;
    let client = async_nats::connect(s.client_url()).await.unwrap();
    let js = jetstream::new(client.clone());
    let stream = js.create_stream(config("BO", &["bo"])).await.unwrap();
    let mut adv = client
        .subscribe("$JS.EVENT.ADVISORY.CONSUMER.MAX_DELIVERIES.BO.b")
        .await
        .unwrap();
    client.flush().await.unwrap();
    publish(&js, "bo", 1).await;
    let c = stream
        .create_consumer(pull::Config {
            backoff: vec![Duration::from_millis(300), Duration::from_millis(900)],
            max_deliver: 3,
            ..durable("b")
        })
        .await
        .unwrap();
    let mut msgs = c
        .batch()
        .max_messages(3)
        .expires(Duration::from_secs(10))
        .messages()
        .await
        .unwrap();
    let mut times = Vec::new();
    let t0 = Instant::now();
    for dc in 1..=3 {
        let m = msgs.next().await.unwrap().unwrap();
        assert_eq!(m.info().unwrap().delivered, dc);
        times.push(t0.elapsed());
    }
    // 1st at once, 2nd after 300 ms, 3rd 900 ms after the 2nd (backoff[1], then the last
    // step). The server times each wait from its own send; the client sees each message a
    // little later, by a different amount, so the gap it measures may be a few ms short.
    let slack = Duration::from_millis(50);
    assert!(times[1] + slack >= Duration::from_millis(300), "{times:?}");
    assert!(
        times[2] - times[1] + slack >= Duration::from_millis(900),
        "{times:?}"
    );
    assert!(times[2] + slack >= Duration::from_millis(1200), "{times:?}");
    let a = tokio::time::timeout(Duration::from_secs(5), adv.next())
        .await
        .unwrap()
        .unwrap();
    let v: serde_json::Value = serde_json::from_slice(&a.payload).unwrap();
    assert_eq!(v["type"], "io.nats.jetstream.advisory.v1.max_deliver");
    assert_eq!(v["stream_seq"], 1);
    assert_eq!(v["deliveries"], 3);
}

#[tokio::test]
async fn term_stops_redelivery_and_sends_advisory() {
    let s = spawn_jetstream().await;
    let client = async_nats::connect(s.client_url()).await.unwrap();
    let js = jetstream::new(client.clone());
    let stream = js.create_stream(config("T", &["t"])).await.unwrap();
    let mut adv = client
        .subscribe("$JS.EVENT.ADVISORY.CONSUMER.MSG_TERMINATED.T.t")
        .await
        .unwrap();
    client.flush().await.unwrap();
    publish(&js, "t", 1).await;
    let mut c = stream
        .create_consumer(pull::Config {
            ack_wait: Duration::from_millis(300),
            ..durable("t")
        })
        .await
        .unwrap();
    let m = fetch(&c, 1).await.remove(0);
    m.ack_with(AckKind::Term).await.unwrap();
    let a = tokio::time::timeout(Duration::from_secs(5), adv.next())
        .await
        .unwrap()
        .unwrap();
    let v: serde_json::Value = serde_json::from_slice(&a.payload).unwrap();
    assert_eq!(v["type"], "io.nats.jetstream.advisory.v1.terminated");
    assert_eq!(v["stream_seq"], 1);
    tokio::time::sleep(Duration::from_millis(600)).await;
    assert!(fetch(&c, 1).await.is_empty());
    assert_eq!(c.info().await.unwrap().num_ack_pending, 0);
}

#[tokio::test]
async fn max_ack_pending_pauses_delivery() {
    let s = spawn_jetstream().await;
    let js = jetstream::new(async_nats::connect(s.client_url()).await.unwrap());
    let stream = js.create_stream(config("MAP", &["map"])).await.unwrap();
    publish(&js, "map", 5).await;
    let c = stream
        .create_consumer(pull::Config {
            max_ack_pending: 2,
            ..durable("m")
        })
        .await
        .unwrap();
    let first = fetch(&c, 5).await;
    assert_eq!(first.len(), 2, "paused at max_ack_pending");
    assert!(fetch(&c, 5).await.is_empty());
    first[0].ack().await.unwrap();
    let more = fetch(&c, 5).await;
    assert_eq!(more.len(), 1);
    assert_eq!(more[0].info().unwrap().stream_sequence, 3);
}

#[tokio::test]
async fn bad_configs_get_nats_server_errors() {
    let s = spawn_jetstream().await;
    let client = async_nats::connect(s.client_url()).await.unwrap();
    let js = jetstream::new(client.clone());
    js.create_stream(config("BAD", &["bad.>"])).await.unwrap();
    let req = |subject: &str, body: &str| {
        let client = client.clone();
        let (subject, body) = (subject.to_string(), body.to_string());
        async move {
            let r = client.request(subject, body.into()).await.unwrap();
            serde_json::from_slice::<serde_json::Value>(&r.payload).unwrap()
        }
    };
    let cases = [
        (
            "$JS.API.CONSUMER.CREATE.BAD.x",
            r#"{"stream_name":"BAD","config":{"durable_name":"x","filter_subject":"bad..b"}}"#,
            10052,
        ),
        (
            "$JS.API.CONSUMER.CREATE.BAD.x",
            r#"{"stream_name":"BAD","config":{"durable_name":"x","deliver_policy":"by_start_sequence"}}"#,
            10094,
        ),
        (
            "$JS.API.CONSUMER.CREATE.BAD.x",
            r#"{"stream_name":"BAD","config":{"durable_name":"x","ack_policy":"explicit","backoff":[1000000000,2000000000]}}"#,
            10116,
        ),
        (
            "$JS.API.CONSUMER.CREATE.BAD.x",
            r#"{"stream_name":"BAD","config":{"durable_name":"x","idle_heartbeat":1000000000}}"#,
            10088,
        ),
        (
            "$JS.API.CONSUMER.CREATE.BAD.x",
            r#"{"stream_name":"BAD","config":{"durable_name":"x","deliver_subject":"d.*"}}"#,
            10079,
        ),
        (
            "$JS.API.CONSUMER.CREATE.BAD.x",
            r#"{"stream_name":"BAD","config":{"durable_name":"x","deliver_subject":"bad.loop"}}"#,
            10081,
        ),
        (
            "$JS.API.CONSUMER.CREATE.BAD.x",
            r#"{"stream_name":"BAD","config":{"durable_name":"x","deliver_subject":"d","flow_control":true}}"#,
            10108,
        ),
        (
            "$JS.API.CONSUMER.CREATE.BAD",
            r#"{"stream_name":"BAD","config":{"durable_name":"x"}}"#,
            10020,
        ),
        (
            "$JS.API.CONSUMER.CREATE.BAD.x.bad.a",
            r#"{"stream_name":"BAD","config":{"durable_name":"x","filter_subject":"bad.b"}}"#,
            10131,
        ),
        (
            "$JS.API.CONSUMER.CREATE.NOPE.x",
            r#"{"stream_name":"NOPE","config":{"durable_name":"x"}}"#,
            10059,
        ),
        ("$JS.API.CONSUMER.CREATE.BAD.x", "{not json", 10025),
        ("$JS.API.CONSUMER.INFO.BAD.missing", "", 10014),
    ];
    for (subject, body, code) in cases {
        let v = req(subject, body).await;
        assert_eq!(v["error"]["err_code"], code, "{subject} {body}: {v}");
    }
    // Updates: allowed fields change, others are refused with 10012.
    let v = req(
        "$JS.API.CONSUMER.CREATE.BAD.u",
        r#"{"stream_name":"BAD","config":{"durable_name":"u","ack_policy":"explicit"}}"#,
    )
    .await;
    assert!(v["error"].is_null(), "{v}");
    let v = req(
        "$JS.API.CONSUMER.CREATE.BAD.u",
        r#"{"stream_name":"BAD","config":{"durable_name":"u","ack_policy":"explicit","max_deliver":4,"description":"d"}}"#,
    )
    .await;
    assert_eq!(v["config"]["max_deliver"], 4, "{v}");
    let v = req(
        "$JS.API.CONSUMER.CREATE.BAD.u",
        r#"{"stream_name":"BAD","config":{"durable_name":"u","ack_policy":"all"}}"#,
    )
    .await;
    assert_eq!(v["error"]["err_code"], 10012, "{v}");
    assert_eq!(v["error"]["description"], "ack policy can not be updated");
    // A pull request on an unknown consumer gets no reply (as nats-server).
    let r = tokio::time::timeout(
        Duration::from_millis(500),
        client.request("$JS.API.CONSUMER.MSG.NEXT.BAD.nope", "".into()),
    )
    .await;
    assert!(r.is_err() || r.unwrap().is_err());
}
