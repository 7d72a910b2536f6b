//! Batched and multi-last direct gets (nats-server 2.11), byte-compatible with 2.15.1:
//! `batch` from a sequence (optionally one subject, within `max_bytes`), `multi_last` as of
//! a sequence or a time, `no_hdr`, each message with `Nats-Num-Pending` and
//! `Nats-Last-Sequence`, and the `204 EOB` status that ends the batch.

use async_nats::jetstream;
use futures::StreamExt;
use petrel_testkit::spawn_jetstream;

use crate::support::config;

/// One reply: (status, Nats-Sequence or EOB's Nats-Last-Sequence, Nats-Num-Pending,
/// payload).
type Reply = (Option<u16>, String, String, String);

/// Sends a direct get of `body` and collects the replies up to the end-of-batch (or a
/// lone status; a single message when the request is not a batch).
async fn get(nc: &async_nats::Client, body: &str) -> Vec<Reply> {
    let single = !body.contains("batch") && !body.contains("multi_last");
    let inbox = nc.new_inbox();
    let mut sub = nc.subscribe(inbox.clone()).await.unwrap();
    nc.publish_with_reply("$JS.API.DIRECT.GET.D", inbox, body.to_string().into())
        .await
        .unwrap();
    let mut out = Vec::new();
    while let Some(m) = sub.next().await {
        let h = |k: &str| {
            m.headers
                .as_ref()
                .and_then(|h| h.get(k))
                .map(|v| v.to_string())
                .unwrap_or_default()
        };
        let status = m.status.map(|s| s.as_u16());
        let seq = if status == Some(204) {
            h("Nats-Last-Sequence")
        } else {
            h("Nats-Sequence")
        };
        out.push((
            status,
            seq,
            h("Nats-Num-Pending"),
            String::from_utf8_lossy(&m.payload).into(),
        ));
        if status.is_some() || single {
            break;
        }
    }
    out
}

fn r(status: Option<u16>, seq: &str, pending: &str, payload: &str) -> Reply {
    (status, seq.into(), pending.into(), payload.into())
}

#[tokio::test]
async fn batches_and_multi_last_direct_gets() {
    let s = spawn_jetstream().await;
    let nc = async_nats::connect(s.client_url()).await.unwrap();
    let js = jetstream::new(nc.clone());
    let mut cfg = config("D", &["d.>"]);
    cfg.allow_direct = true;
    js.create_stream(cfg).await.unwrap();
    for (i, subject) in ["d.a", "d.b", "d.a", "d.c", "d.b"].iter().enumerate() {
        js.publish(*subject, format!("m{}", i + 1).into())
            .await
            .unwrap()
            .await
            .unwrap();
    }
    let eob = |last: &str, pending: &str| r(Some(204), last, pending, "");
    assert_eq!(
        get(&nc, r#"{"seq":2,"batch":2}"#).await,
        [
            r(None, "2", "3", "m2"),
            r(None, "3", "2", "m3"),
            eob("3", "2")
        ]
    );
    assert_eq!(
        get(&nc, r#"{"seq":1,"batch":5,"next_by_subj":"d.b"}"#).await,
        [
            r(None, "2", "1", "m2"),
            r(None, "5", "0", "m5"),
            eob("5", "0")
        ]
    );
    // max_bytes counts subject, headers and payload (6 bytes each here).
    assert_eq!(
        get(&nc, r#"{"seq":1,"batch":5,"max_bytes":13}"#)
            .await
            .len(),
        3
    );
    assert_eq!(
        get(&nc, r#"{"multi_last":["d.*"]}"#).await,
        [
            r(None, "3", "2", "m3"),
            r(None, "4", "1", "m4"),
            r(None, "5", "0", "m5"),
            eob("5", "0")
        ]
    );
    assert_eq!(
        get(&nc, r#"{"multi_last":["d.*"],"up_to_seq":3}"#).await,
        [
            r(None, "2", "1", "m2"),
            r(None, "3", "0", "m3"),
            eob("3", "0")
        ]
    );
    // As of a time after everything, with repeated filters: each subject's last once.
    let far = r#"{"multi_last":["d.*","d.*","d.a"],"up_to_time":"2999-01-01T00:00:00Z"}"#;
    assert_eq!(get(&nc, far).await.len(), 4);
    assert_eq!(
        get(&nc, r#"{"multi_last":["d.*"],"batch":2}"#).await,
        [
            r(None, "3", "2", "m3"),
            r(None, "4", "1", "m4"),
            eob("4", "1")
        ]
    );
    // no_hdr: the payload alone.
    let plain = get(&nc, r#"{"seq":2,"no_hdr":true}"#).await;
    let m = &plain[0];
    assert_eq!((m.0, m.1.as_str(), m.3.as_str()), (None, "", "m2"));
    // Statuses as 2.15.1.
    for (body, code) in [
        (r#"{"multi_last":["d.zz"]}"#, 404),
        (
            r#"{"multi_last":["d.*"],"up_to_time":"2001-01-01T00:00:00Z"}"#,
            404,
        ),
        (r#"{"seq":9,"batch":2}"#, 404),
        (r#"{"batch":2}"#, 408),
        (r#"{"seq":1,"batch":2,"last_by_subj":"d.a"}"#, 408),
        (r#"{"multi_last":["d.*"],"up_to_time":"yesterday"}"#, 408),
    ] {
        let got = get(&nc, body).await;
        assert_eq!(got.len(), 1, "{body}");
        assert_eq!(got[0].0, Some(code), "{body}");
    }
}
