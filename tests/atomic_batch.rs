//! Atomic batch publish (nats-server 2.12, `allow_atomic`) through async-nats: staged
//! messages are answered with an empty reply and stay invisible until the commit stores
//! them all (`eob` commits without storing itself), the commit's PubAck names the batch and
//! its size, bad batches get 2.15.1's errors and leave nothing behind, and a power loss
//! in the middle of a commit leaves the whole batch or none of it.

use async_nats::jetstream::{self, stream};
use petrel_store::SimFs;
use serde_json::Value;

use crate::support::{boot_on_sim, config};

fn atomic_config(name: &str, subjects: &[&str]) -> stream::Config {
    stream::Config {
        allow_atomic_publish: true,
        ..config(name, subjects)
    }
}

fn headers(id: &str, seq: u64, extra: &[(&str, &str)]) -> async_nats::HeaderMap {
    let mut h = async_nats::HeaderMap::new();
    h.insert("Nats-Batch-Id", id);
    h.insert("Nats-Batch-Sequence", seq.to_string().as_str());
    for (k, v) in extra {
        h.insert(*k, *v);
    }
    h
}

/// Publishes one batch message as a request; the reply's body (empty when staged).
async fn send(
    nc: &async_nats::Client,
    subject: &str,
    id: &str,
    seq: u64,
    extra: &[(&str, &str)],
) -> Vec<u8> {
    nc.request_with_headers(subject.to_string(), headers(id, seq, extra), "m".into())
        .await
        .unwrap()
        .payload
        .to_vec()
}

async fn error_code(
    nc: &async_nats::Client,
    subject: &str,
    id: &str,
    seq: u64,
    extra: &[(&str, &str)],
) -> u64 {
    let body = send(nc, subject, id, seq, extra).await;
    let v: Value = serde_json::from_slice(&body).unwrap();
    v["error"]["err_code"]
        .as_u64()
        .unwrap_or_else(|| panic!("no error: {v}"))
}

async fn messages(js: &jetstream::Context, name: &str) -> (u64, u64) {
    let info = js
        .get_stream(name)
        .await
        .unwrap()
        .cached_info()
        .state
        .clone();
    (info.messages, info.last_sequence)
}

#[tokio::test]
async fn a_batch_is_invisible_until_its_commit_stores_all_of_it() {
    let s = petrel_testkit::spawn_jetstream().await;
    let nc = async_nats::connect(s.client_url()).await.unwrap();
    let js = jetstream::new(nc.clone());
    let stream = js
        .create_stream(atomic_config("AB", &["ab.>"]))
        .await
        .unwrap();
    assert!(stream.cached_info().config.allow_atomic_publish);
    js.publish("ab.x", "plain".into())
        .await
        .unwrap()
        .await
        .unwrap();

    for seq in 1..=2 {
        assert!(send(&nc, "ab.a", "b1", seq, &[]).await.is_empty());
    }
    assert_eq!(
        messages(&js, "AB").await,
        (1, 1),
        "staged messages are not stored"
    );
    let ack = js
        .publish_with_headers(
            "ab.b",
            headers("b1", 3, &[("Nats-Batch-Commit", "1")]),
            "m".into(),
        )
        .await
        .unwrap()
        .await
        .unwrap();
    assert_eq!(ack.sequence, 4);
    assert_eq!(ack.batch_id.as_deref(), Some("b1"));
    assert_eq!(ack.batch_size, Some(3));
    let first = stream.get_raw_message(2).await.unwrap();
    assert_eq!(
        first.headers.get("Nats-Batch-Sequence").map(|v| v.as_str()),
        Some("1")
    );
    let last = stream.get_raw_message(4).await.unwrap();
    assert_eq!(
        last.headers.get("Nats-Batch-Commit").map(|v| v.as_str()),
        Some("1")
    );

    // "eob" commits the batch without storing itself; the last stored message says 1.
    assert!(send(&nc, "ab.e", "b2", 1, &[]).await.is_empty());
    let body = send(&nc, "ab.e", "b2", 2, &[("Nats-Batch-Commit", "eob")]).await;
    let v: Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(
        v,
        serde_json::json!({"stream":"AB","seq":5,"batch":"b2","count":1})
    );
    let m = stream.get_raw_message(5).await.unwrap();
    assert_eq!(
        m.headers.get("Nats-Batch-Commit").map(|v| v.as_str()),
        Some("1")
    );

    // A roll-up inside a batch applies with it.
    let mut rolled = atomic_config("AR", &["ar.>"]);
    rolled.allow_rollup = true;
    js.create_stream(rolled).await.unwrap();
    for _ in 0..2 {
        js.publish("ar.a", "old".into())
            .await
            .unwrap()
            .await
            .unwrap();
    }
    assert!(send(&nc, "ar.a", "r", 1, &[("Nats-Rollup", "sub")])
        .await
        .is_empty());
    let body = send(&nc, "ar.b", "r", 2, &[("Nats-Batch-Commit", "1")]).await;
    let v: Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(v["count"], 2, "{v}");
    assert_eq!(messages(&js, "AR").await, (2, 4));
}

#[tokio::test]
async fn bad_batches_get_the_server_errors_and_leave_nothing() {
    let s = petrel_testkit::spawn_jetstream().await;
    let nc = async_nats::connect(s.client_url()).await.unwrap();
    let js = jetstream::new(nc.clone());
    js.create_stream(atomic_config("AB", &["ab.>"]))
        .await
        .unwrap();
    js.create_stream(config("N", &["n.>"])).await.unwrap();
    js.publish("ab.x", "plain".into())
        .await
        .unwrap()
        .await
        .unwrap();

    assert_eq!(
        error_code(&nc, "n.a", "b", 1, &[("Nats-Batch-Commit", "1")]).await,
        10174
    );
    assert_eq!(error_code(&nc, "ab.a", "g", 2, &[]).await, 10176);
    let mut h = async_nats::HeaderMap::new();
    h.insert("Nats-Batch-Id", "noseq");
    let r = nc
        .request_with_headers("ab.a", h, "m".into())
        .await
        .unwrap();
    let v: Value = serde_json::from_slice(&r.payload).unwrap();
    assert_eq!(v["error"]["err_code"], 10175);
    assert_eq!(
        error_code(&nc, "ab.a", &"x".repeat(65), 1, &[]).await,
        10179
    );
    assert_eq!(
        error_code(&nc, "ab.a", "c", 1, &[("Nats-Batch-Commit", "yes")]).await,
        10200
    );
    assert_eq!(
        error_code(&nc, "ab.a", "e", 1, &[("Nats-Batch-Commit", "eob")]).await,
        10176
    );
    assert_eq!(error_code(&nc, "ab.a", "big", 1001, &[]).await, 10199);

    // Refused at the commit: the whole batch goes, nothing of it is stored.
    for (id, first, last, code) in [
        ("u", vec![("Nats-Expected-Last-Msg-Id", "z")], vec![], 10177),
        (
            "d",
            vec![("Nats-Msg-Id", "d1")],
            vec![("Nats-Msg-Id", "d1")],
            10201,
        ),
        (
            "s",
            vec![("Nats-Expected-Last-Subject-Sequence", "0")],
            vec![("Nats-Expected-Last-Subject-Sequence", "0")],
            10164,
        ),
        (
            "q",
            vec![("Nats-Expected-Last-Sequence", "99")],
            vec![],
            10071,
        ),
        (
            "t",
            vec![],
            vec![("Nats-Expected-Last-Sequence", "2")],
            10164,
        ),
        (
            "v",
            vec![],
            vec![
                ("Nats-Expected-Last-Subject-Sequence", "5"),
                ("Nats-Expected-Last-Subject-Sequence-Subject", "ab.x"),
            ],
            10071,
        ),
    ] {
        assert!(send(&nc, "ab.g", id, 1, &first).await.is_empty(), "{id}");
        let mut commit = last.clone();
        commit.push(("Nats-Batch-Commit", "1"));
        assert_eq!(error_code(&nc, "ab.g", id, 2, &commit).await, code, "{id}");
        assert_eq!(messages(&js, "AB").await, (1, 1), "{id} left something");
    }
    // An abandoned batch stays abandoned.
    assert!(send(&nc, "ab.a", "gap", 1, &[]).await.is_empty());
    assert_eq!(error_code(&nc, "ab.a", "gap", 3, &[]).await, 10176);
    assert_eq!(
        error_code(&nc, "ab.a", "gap", 2, &[("Nats-Batch-Commit", "1")]).await,
        10176
    );
    assert_eq!(messages(&js, "AB").await, (1, 1));
}

/// A power loss while a commit is written (the device dies after a few writes, then the
/// disk keeps a random prefix of what was not synced): after the restart the stream holds
/// the whole batch or none of it, and all of it when the commit was acknowledged.
#[tokio::test]
async fn a_power_loss_mid_commit_leaves_all_of_a_batch_or_none() {
    const N: u64 = 40;
    for round in 0..24u64 {
        let fs = SimFs::default();
        let dir = tempfile::tempdir().unwrap();
        let s = boot_on_sim(&fs, dir.path()).await;
        let nc = async_nats::connect(s.client_url()).await.unwrap();
        let js = jetstream::new(nc.clone());
        js.create_stream(atomic_config("P", &["p.>"]))
            .await
            .unwrap();
        js.publish("p.before", "x".into())
            .await
            .unwrap()
            .await
            .unwrap();
        for seq in 1..N {
            assert!(send(&nc, "p.b", "pl", seq, &[]).await.is_empty());
        }
        // Every fourth round lets the commit through; the others kill the device at the
        // commit's write, or at its fsync (the write then survives whole, torn or not at
        // all: a torn batch is what the stream's open must cut).
        fs.arm([None, Some(0), Some(1), Some(1)][round as usize % 4]);
        let commit = send(&nc, "p.b", "pl", N, &[("Nats-Batch-Commit", "1")]).await;
        let acked = serde_json::from_slice::<Value>(&commit)
            .ok()
            .is_some_and(|v| v["count"] == N);
        drop(nc);
        // The device stays dead through the shutdown (a live one would let the store roll
        // the failed commit back itself), then the power goes.
        s.shutdown().await;
        fs.crash(round * 7919 + 17);
        fs.arm(None);

        let s = boot_on_sim(&fs, dir.path()).await;
        let nc = async_nats::connect(s.client_url()).await.unwrap();
        let js = jetstream::new(nc);
        let st = js
            .get_stream("P")
            .await
            .unwrap()
            .cached_info()
            .state
            .clone();
        let batch = st.messages.saturating_sub(1);
        assert!(
            batch == 0 || batch == N,
            "round {round}: {batch} of {N} survived"
        );
        if acked {
            assert_eq!(batch, N, "round {round}: an acknowledged batch was lost");
        }
        s.shutdown().await;
    }
}
