//! Key-Value and Object Store through async-nats: they are client conventions over streams,
//! direct gets, expected-sequence headers, rollups, purges and ordered push consumers with
//! flow control and heartbeats, so these tests drive all of those together.

use std::time::Duration;

use async_nats::jetstream::{self, kv, object_store};
use futures::{StreamExt, TryStreamExt};
use petrel_testkit::{spawn_jetstream, TestServer};
use tokio::io::AsyncReadExt;

/// A JetStream server and a KV bucket on it keeping `history` values per key.
async fn bucket(name: &str, history: i64) -> (TestServer, kv::Store) {
    let s = spawn_jetstream().await;
    let js = jetstream::new(async_nats::connect(s.client_url()).await.unwrap());
    let kv = js
        .create_key_value(kv::Config {
            bucket: name.into(),
            history,
            ..Default::default()
        })
        .await
        .unwrap();
    (s, kv)
}

#[tokio::test]
async fn kv_put_get_update_delete_purge_keys_history() {
    let (_s, kv) = bucket("agents", 5).await;
    let r1 = kv.put("agent.alpha", "idle".into()).await.unwrap();
    let r2 = kv.put("agent.beta", "busy".into()).await.unwrap();
    assert_eq!((r1, r2), (1, 2));
    assert_eq!(kv.get("agent.alpha").await.unwrap().unwrap(), "idle");
    assert!(kv.get("agent.none").await.unwrap().is_none());
    // Update with the right revision works, with a stale one fails.
    let r3 = kv.update("agent.alpha", "busy".into(), r1).await.unwrap();
    assert_eq!(r3, 3);
    assert!(kv.update("agent.alpha", "x".into(), r1).await.is_err());
    // Create refuses an existing key.
    assert!(kv.create("agent.beta", "again".into()).await.is_err());
    let e = kv.entry("agent.alpha").await.unwrap().unwrap();
    assert_eq!((e.revision, e.value.as_ref()), (3, &b"busy"[..]));
    assert_eq!(
        kv.entry_for_revision("agent.alpha", 1)
            .await
            .unwrap()
            .unwrap()
            .value,
        "idle"
    );
    // History of one key.
    let history: Vec<kv::Entry> = kv
        .history("agent.alpha")
        .await
        .unwrap()
        .try_collect()
        .await
        .unwrap();
    let values: Vec<&[u8]> = history.iter().map(|e| e.value.as_ref()).collect();
    assert_eq!(values, vec![&b"idle"[..], &b"busy"[..]]);
    // Keys, then delete one and purge the other.
    let mut keys: Vec<String> = kv.keys().await.unwrap().try_collect().await.unwrap();
    keys.sort();
    assert_eq!(
        keys,
        vec!["agent.alpha".to_string(), "agent.beta".to_string()]
    );
    kv.delete("agent.beta").await.unwrap();
    assert!(kv.get("agent.beta").await.unwrap().is_none());
    let keys: Vec<String> = kv.keys().await.unwrap().try_collect().await.unwrap();
    assert_eq!(keys, vec!["agent.alpha".to_string()]);
    kv.purge("agent.alpha").await.unwrap();
    assert!(kv.get("agent.alpha").await.unwrap().is_none());
    let history: Vec<kv::Entry> = kv
        .history("agent.alpha")
        .await
        .unwrap()
        .try_collect()
        .await
        .unwrap();
    assert_eq!(history.len(), 1, "purge keeps only the marker");
    assert_eq!(history[0].operation, kv::Operation::Purge);
    // A deleted key can be created again.
    kv.create("agent.beta", "back".into()).await.unwrap();
    let status = kv.status().await.unwrap();
    assert_eq!(status.bucket(), "agents");
    assert_eq!(status.history(), 5);
}

async fn next(w: &mut kv::Watch) -> kv::Entry {
    tokio::time::timeout(Duration::from_secs(5), w.next())
        .await
        .expect("watch stalled")
        .unwrap()
        .unwrap()
}

#[tokio::test]
async fn kv_watch_sees_initial_values_then_updates() {
    let (_s, kv) = bucket("cfg", 3).await;
    kv.put("a", "1".into()).await.unwrap();
    kv.put("a", "2".into()).await.unwrap();
    kv.put("b", "1".into()).await.unwrap();
    // watch_all: only what changes from now on.
    let mut updates = kv.watch_all().await.unwrap();
    // watch_with_history(">"): the latest value of every key first (last per subject).
    let mut watch = kv.watch_with_history(">").await.unwrap();
    let e = next(&mut watch).await;
    assert_eq!(
        (e.key.as_str(), e.value.as_ref(), e.revision),
        ("a", &b"2"[..], 2)
    );
    let e = next(&mut watch).await;
    assert_eq!(
        (e.key.as_str(), e.value.as_ref(), e.revision),
        ("b", &b"1"[..], 3)
    );
    kv.put("c", "new".into()).await.unwrap();
    kv.delete("a").await.unwrap();
    let e = next(&mut watch).await;
    assert_eq!((e.key.as_str(), e.value.as_ref()), ("c", &b"new"[..]));
    let e = next(&mut watch).await;
    assert_eq!((e.key.as_str(), e.operation), ("a", kv::Operation::Delete));
    let e = next(&mut updates).await;
    assert_eq!(
        (e.key.as_str(), e.value.as_ref(), e.revision),
        ("c", &b"new"[..], 4)
    );
    let e = next(&mut updates).await;
    assert_eq!((e.key.as_str(), e.operation), ("a", kv::Operation::Delete));
    // One key only.
    let mut one = kv.watch_with_history("b").await.unwrap();
    assert_eq!(next(&mut one).await.value, "1");
}

#[tokio::test]
async fn object_store_put_get_5mb_list_delete() {
    let s = spawn_jetstream().await;
    let js = jetstream::new(async_nats::connect(s.client_url()).await.unwrap());
    let store = js
        .create_object_store(object_store::Config {
            bucket: "artifacts".into(),
            ..Default::default()
        })
        .await
        .unwrap();
    let data: Vec<u8> = (0..5 * 1024 * 1024u32)
        .map(|i| (i * 7 % 251) as u8)
        .collect();
    let info = store.put("model.bin", &mut data.as_slice()).await.unwrap();
    assert_eq!(info.size, data.len());
    store.put("notes.txt", &mut &b"hello"[..]).await.unwrap();
    let mut obj = store.get("model.bin").await.unwrap();
    let mut back = Vec::new();
    obj.read_to_end(&mut back).await.unwrap();
    assert_eq!(back.len(), data.len());
    assert!(back == data, "object round-trips byte for byte");
    let mut names: Vec<String> = store
        .list()
        .await
        .unwrap()
        .map(|o| o.unwrap().name)
        .collect()
        .await;
    names.sort();
    assert_eq!(
        names,
        vec!["model.bin".to_string(), "notes.txt".to_string()]
    );
    store.delete("model.bin").await.unwrap();
    assert!(store.get("model.bin").await.is_err());
    let info = store.info("notes.txt").await.unwrap();
    assert_eq!(info.size, 5);
    // Chunks of the deleted object are purged from the stream.
    let mut stream = js.get_stream("OBJ_artifacts").await.unwrap();
    let state = stream.info().await.unwrap().state.clone();
    assert!(
        state.bytes < 64 * 1024,
        "chunks purged, {} bytes left",
        state.bytes
    );
}
