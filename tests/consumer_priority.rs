//! Priority groups of pull consumers (nats-server 2.11/2.12) through async-nats and raw
//! pull requests: `overflow` serves a request only while the consumer is behind by its
//! `min_pending`/`min_ack_pending`, `prioritized` serves the lowest `priority` first, and
//! configs and requests that break the rules get nats-server's errors and statuses.

use std::time::Duration;

use async_nats::jetstream::{self, consumer};
use futures::StreamExt;
use petrel_testkit::spawn_jetstream;
use serde_json::Value;

use crate::support::{config, publish};

/// How many messages one fetch of up to `n` in group `jobs` with these thresholds gets.
async fn fetch(c: &consumer::PullConsumer, n: usize, min_pending: usize, min_ack: usize) -> usize {
    let mut fetch = c
        .fetch()
        .max_messages(n)
        .expires(Duration::from_millis(500))
        .group("jobs");
    if min_pending > 0 {
        fetch = fetch.min_pending(min_pending);
    }
    if min_ack > 0 {
        fetch = fetch.min_ack_pending(min_ack);
    }
    let mut msgs = fetch.messages().await.unwrap();
    let mut got = 0;
    while let Some(m) = msgs.next().await {
        m.unwrap();
        got += 1;
    }
    got
}

#[tokio::test]
async fn overflow_serves_a_request_only_past_its_threshold() {
    let s = spawn_jetstream().await;
    let nc = async_nats::connect(s.client_url()).await.unwrap();
    let js = jetstream::new(nc.clone());
    let stream = js.create_stream(config("O", &["o.>"])).await.unwrap();
    publish(&js, "o.x", 5).await;
    let c: consumer::PullConsumer = stream
        .create_consumer(consumer::pull::Config {
            durable_name: Some("W".into()),
            priority_policy: consumer::PriorityPolicy::Overflow,
            priority_groups: vec!["jobs".into()],
            ..Default::default()
        })
        .await
        .unwrap();
    // Five pending: a no_wait request waiting for ten is answered 404 at once.
    let r = nc
        .request(
            "$JS.API.CONSUMER.MSG.NEXT.O.W",
            r#"{"batch":5,"group":"jobs","min_pending":10,"no_wait":true}"#.into(),
        )
        .await
        .unwrap();
    assert_eq!(r.status.map(|s| s.as_u16()), Some(404));
    // At three: served while five, four and three are pending.
    assert_eq!(fetch(&c, 5, 3, 0).await, 3);
    // Three awaiting acks: the last two go to a request that asks for that.
    assert_eq!(fetch(&c, 5, 0, 3).await, 2);
    let info = stream
        .get_consumer::<consumer::pull::Config>("W")
        .await
        .unwrap()
        .cached_info()
        .clone();
    assert_eq!(info.priority_groups.len(), 1);
    assert_eq!(info.priority_groups[0].group, "jobs");
}

#[tokio::test]
async fn prioritized_serves_the_lowest_priority_first() {
    let s = spawn_jetstream().await;
    let nc = async_nats::connect(s.client_url()).await.unwrap();
    let js = jetstream::new(nc.clone());
    js.create_stream(config("Q", &["q.>"])).await.unwrap();
    let v: Value = serde_json::from_slice(
        &nc.request(
            "$JS.API.CONSUMER.CREATE.Q.P",
            r#"{"stream_name":"Q","config":{"durable_name":"P","ack_policy":"explicit","priority_policy":"prioritized","priority_groups":["g"]}}"#.into(),
        )
        .await
        .unwrap()
        .payload,
    )
    .unwrap();
    assert_eq!(v["config"]["priority_policy"], "prioritized", "{v}");
    let mut low = nc.subscribe("inbox.low").await.unwrap();
    let mut high = nc.subscribe("inbox.high").await.unwrap();
    let pull = |inbox: &'static str, priority: u8| {
        let body =
            format!(r#"{{"batch":1,"expires":5000000000,"group":"g","priority":{priority}}}"#);
        nc.publish_with_reply("$JS.API.CONSUMER.MSG.NEXT.Q.P", inbox, body.into())
    };
    pull("inbox.low", 5).await.unwrap();
    pull("inbox.high", 1).await.unwrap();
    nc.flush().await.unwrap();
    // Both wait (the consumer answers the requests in order): the first message goes to
    // the priority-1 request although the priority-5 one came first, the second to it.
    publish(&js, "q.x", 1).await;
    let first = high.next().await.unwrap();
    assert_eq!(first.subject.as_str(), "q.x");
    publish(&js, "q.x", 1).await;
    let second = low.next().await.unwrap();
    assert_eq!(second.subject.as_str(), "q.x");
}

#[tokio::test]
async fn priority_configs_and_requests_get_nats_server_errors() {
    let s = spawn_jetstream().await;
    let nc = async_nats::connect(s.client_url()).await.unwrap();
    let js = jetstream::new(nc.clone());
    js.create_stream(config("G", &["g.>"])).await.unwrap();
    let create = |cfg: &'static str| {
        let nc = nc.clone();
        async move {
            let body = format!(r#"{{"stream_name":"G","config":{cfg}}}"#);
            let r = nc
                .request("$JS.API.CONSUMER.CREATE.G", body.into())
                .await
                .unwrap();
            serde_json::from_slice::<Value>(&r.payload).unwrap()["error"]["err_code"].clone()
        }
    };
    assert_eq!(create(r#"{"priority_policy":"overflow"}"#).await, 10159);
    assert_eq!(create(r#"{"priority_groups":["a"]}"#).await, 10196);
    assert_eq!(
        create(r#"{"priority_policy":"overflow","priority_groups":[""]}"#).await,
        10161
    );
    assert_eq!(
        create(r#"{"priority_policy":"overflow","priority_groups":["bad group!"]}"#).await,
        10162
    );
    assert_eq!(
        create(r#"{"priority_policy":"overflow","priority_groups":["aaaaaaaaaaaaaaaaa"]}"#).await,
        10162
    );
    assert_eq!(
        create(r#"{"deliver_subject":"d.x","priority_policy":"overflow","priority_groups":["a"]}"#)
            .await,
        10178
    );
    assert_eq!(
        create(r#"{"priority_policy":"bogus","priority_groups":["a"]}"#).await,
        10025
    );
    // Requests: the 400 statuses nats-server 2.15.1 answers with.
    let v: Value = serde_json::from_slice(
        &nc.request(
            "$JS.API.CONSUMER.CREATE.G.O",
            r#"{"stream_name":"G","config":{"durable_name":"O","ack_policy":"explicit","priority_policy":"overflow","priority_groups":["jobs"]}}"#.into(),
        )
        .await
        .unwrap()
        .payload,
    )
    .unwrap();
    assert!(v["error"].is_null(), "{v}");
    for (body, status) in [
        (r#"{"batch":1}"#, "Bad Request - Priority Group missing"),
        (
            r#"{"batch":1,"group":"nope"}"#,
            "Bad Request - Invalid Priority Group",
        ),
        (
            r#"{"batch":1,"group":"jobs","id":"x"}"#,
            "Bad Request - Not a Pinned Client Priority consumer",
        ),
    ] {
        let r = nc
            .request("$JS.API.CONSUMER.MSG.NEXT.G.O", body.into())
            .await
            .unwrap();
        let st = r.status.map(|s| s.as_u16());
        assert_eq!(
            (st, r.description.as_deref()),
            (Some(400), Some(status)),
            "{body}"
        );
    }
}

#[tokio::test]
async fn pinned_client_serves_one_client_until_unpinned() {
    let s = spawn_jetstream().await;
    let nc = async_nats::connect(s.client_url()).await.unwrap();
    let js = jetstream::new(nc.clone());
    let stream = js.create_stream(config("PIN", &["pin.>"])).await.unwrap();
    let mut c: consumer::PullConsumer = stream
        .create_consumer(consumer::pull::Config {
            durable_name: Some("I".into()),
            priority_policy: consumer::PriorityPolicy::PinnedClient,
            priority_groups: vec!["a".into()],
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(
        c.info().await.unwrap().config.priority_timeout,
        Duration::from_secs(120)
    );
    let mut advisories = nc
        .subscribe("$JS.EVENT.ADVISORY.CONSUMER.*.PIN.I")
        .await
        .unwrap();
    let pull = || {
        c.stream()
            .group("a")
            .expires(Duration::from_secs(1))
            .heartbeat(Duration::from_millis(400))
            .messages()
    };
    let mut one = pull().await.unwrap();
    let mut two = pull().await.unwrap();
    publish(&js, "pin.x", 6).await;
    // All six go to one client: the pinned one, their Nats-Pin-Id its pin.
    let (mut got, mut pins) = ([0usize; 2], std::collections::BTreeSet::new());
    while got[0] + got[1] < 6 {
        let (i, m) = tokio::select! {
            Some(m) = one.next() => (0, m),
            Some(m) = two.next() => (1, m),
        };
        let m = m.unwrap();
        pins.insert(
            m.headers
                .as_ref()
                .and_then(|h| h.get("Nats-Pin-Id"))
                .unwrap()
                .to_string(),
        );
        m.ack().await.unwrap();
        got[i] += 1;
    }
    assert!(got == [6, 0] || got == [0, 6], "{got:?}");
    assert_eq!(pins.len(), 1);
    let pin = pins.into_iter().next().unwrap();
    let v: Value = serde_json::from_slice(&advisories.next().await.unwrap().payload).unwrap();
    assert_eq!(
        v["type"],
        "io.nats.jetstream.advisory.v1.consumer_group_pinned"
    );
    assert_eq!(v["pinned_id"], pin.as_str());
    let info = c.info().await.unwrap().clone();
    assert_eq!(
        info.priority_groups[0].pinned_client_id.as_deref(),
        Some(pin.as_str())
    );

    // An unpin is announced; the next message pins a client again, with a new id.
    stream.unpin_consumer("I", "a").await.unwrap();
    let v: Value = serde_json::from_slice(&advisories.next().await.unwrap().payload).unwrap();
    assert_eq!(
        (v["type"].as_str(), v["reason"].as_str()),
        (
            Some("io.nats.jetstream.advisory.v1.consumer_group_unpinned"),
            Some("admin")
        )
    );
    publish(&js, "pin.x", 1).await;
    let v: Value = serde_json::from_slice(&advisories.next().await.unwrap().payload).unwrap();
    assert_eq!(
        v["type"],
        "io.nats.jetstream.advisory.v1.consumer_group_pinned"
    );
    assert_ne!(v["pinned_id"], pin.as_str());

    // Refusals: an unknown group (10160), no group (10025), a wrong pin id (423).
    let err = |v: Value| v["error"]["err_code"].clone();
    let unpin = |body: &'static str| {
        let nc = nc.clone();
        async move {
            let r = nc
                .request("$JS.API.CONSUMER.UNPIN.PIN.I", body.into())
                .await
                .unwrap();
            serde_json::from_slice::<Value>(&r.payload).unwrap()
        }
    };
    assert_eq!(err(unpin(r#"{"group":"zz"}"#).await), 10160);
    assert_eq!(err(unpin("{}").await), 10025);
    let r = nc
        .request(
            "$JS.API.CONSUMER.MSG.NEXT.PIN.I",
            r#"{"batch":1,"group":"a","id":"WRONG"}"#.into(),
        )
        .await
        .unwrap();
    assert_eq!(
        (r.status.map(|s| s.as_u16()), r.description.as_deref()),
        (Some(423), Some("Nats-Pin-Id mismatch"))
    );
}

#[tokio::test]
async fn a_pin_ends_when_its_client_stops_pulling() {
    let s = spawn_jetstream().await;
    let nc = async_nats::connect(s.client_url()).await.unwrap();
    let js = jetstream::new(nc.clone());
    let stream = js.create_stream(config("PT", &["pt.>"])).await.unwrap();
    stream
        .create_consumer(consumer::pull::Config {
            durable_name: Some("T".into()),
            priority_policy: consumer::PriorityPolicy::PinnedClient,
            priority_groups: vec!["a".into()],
            priority_timeout: Duration::from_millis(500),
            ..Default::default()
        })
        .await
        .unwrap();
    let mut advisories = nc
        .subscribe("$JS.EVENT.ADVISORY.CONSUMER.*.PT.T")
        .await
        .unwrap();
    publish(&js, "pt.x", 1).await;
    // (A delivery keeps the stored subject: it comes on the inbox, not as a reply.)
    let mut inbox = nc.subscribe("inbox.pt").await.unwrap();
    let body = r#"{"batch":1,"group":"a"}"#;
    nc.publish_with_reply("$JS.API.CONSUMER.MSG.NEXT.PT.T", "inbox.pt", body.into())
        .await
        .unwrap();
    let m = inbox.next().await.unwrap();
    let pin = m.headers.as_ref().and_then(|h| h.get("Nats-Pin-Id"));
    assert!(pin.is_some());
    let v: Value = serde_json::from_slice(&advisories.next().await.unwrap().payload).unwrap();
    assert_eq!(
        v["type"],
        "io.nats.jetstream.advisory.v1.consumer_group_pinned"
    );
    // No more pulls: the pin runs out.
    let v: Value = serde_json::from_slice(&advisories.next().await.unwrap().payload).unwrap();
    assert_eq!(
        (v["type"].as_str(), v["reason"].as_str()),
        (
            Some("io.nats.jetstream.advisory.v1.consumer_group_unpinned"),
            Some("timeout")
        )
    );
}

/// Regression: a delivery refused by the request's `max_bytes` (409) used to pin the
/// request's client anyway; that pin, held by nobody, kept every other request waiting
/// until `priority_timeout`.
#[tokio::test]
async fn a_refused_delivery_pins_nobody() {
    let s = spawn_jetstream().await;
    let nc = async_nats::connect(s.client_url()).await.unwrap();
    let js = jetstream::new(nc.clone());
    let stream = js.create_stream(config("PB", &["pb.>"])).await.unwrap();
    stream
        .create_consumer(consumer::pull::Config {
            durable_name: Some("B".into()),
            priority_policy: consumer::PriorityPolicy::PinnedClient,
            priority_groups: vec!["a".into()],
            ..Default::default()
        })
        .await
        .unwrap();
    js.publish("pb.x", vec![b'x'; 100].into())
        .await
        .unwrap()
        .await
        .unwrap();
    let r = nc
        .request(
            "$JS.API.CONSUMER.MSG.NEXT.PB.B",
            r#"{"batch":1,"group":"a","max_bytes":10}"#.into(),
        )
        .await
        .unwrap();
    assert_eq!(r.status.map(|s| s.as_u16()), Some(409));
    let mut inbox = nc.subscribe("inbox.pb").await.unwrap();
    let body = r#"{"batch":1,"group":"a","expires":5000000000}"#;
    nc.publish_with_reply("$JS.API.CONSUMER.MSG.NEXT.PB.B", "inbox.pb", body.into())
        .await
        .unwrap();
    let m = inbox.next().await.unwrap();
    assert_eq!(m.subject.as_str(), "pb.x", "{:?}", m.status);
    assert!(m
        .headers
        .as_ref()
        .and_then(|h| h.get("Nats-Pin-Id"))
        .is_some());
}
