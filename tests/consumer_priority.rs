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
    let js = jetstream::new(nc);
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
    // Five pending: a request waiting for ten gets nothing before it expires.
    assert_eq!(fetch(&c, 5, 10, 0).await, 0);
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
