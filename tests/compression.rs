//! `compression: s2` through async-nats: the stream is created and reported with it, its
//! messages take less disk than a plain stream's, read back byte for byte, survive a
//! restart, and an update can turn compression off (new messages plain, old still read).

use std::path::Path;

use async_nats::jetstream::{self, stream};
use petrel_testkit::spawn_with_store;

use crate::support::{config, fetch_within};

/// About 1 KiB of JSON lab results, as MediSync's ETL publishes them.
fn record(i: usize) -> String {
    let results: Vec<String> = (0..12)
        .map(|k| {
            format!(
                r#"{{"test":"panel-{k}","value":{},"unit":"mmol/L","flag":"normal"}}"#,
                (i * 7 + k) % 100
            )
        })
        .collect();
    format!(r#"{{"patient":"p-{i}","results":[{}]}}"#, results.join(","))
}

fn dir_bytes(dir: &Path) -> u64 {
    std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().metadata().unwrap().len())
        .sum()
}

fn msgs_dir(store: &Path, stream: &str) -> std::path::PathBuf {
    store.join("jetstream/$G/streams").join(stream).join("msgs")
}

#[tokio::test]
async fn s2_streams_store_less_and_read_back_everything() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().to_path_buf();
    let p = path.clone();
    let s = spawn_with_store(move |b, _| b.jetstream(p)).await;
    let js = jetstream::new(async_nats::connect(s.client_url()).await.unwrap());
    let packed = stream::Config {
        compression: Some(stream::Compression::S2),
        ..config("PACKED", &["packed.>"])
    };
    let info = js
        .create_stream(packed.clone())
        .await
        .unwrap()
        .cached_info()
        .clone();
    assert_eq!(info.config.compression, Some(stream::Compression::S2));
    js.create_stream(config("PLAIN", &["plain.>"]))
        .await
        .unwrap();
    for i in 0..300 {
        for subject in ["packed.lab", "plain.lab"] {
            js.publish(subject, record(i).into())
                .await
                .unwrap()
                .await
                .unwrap();
        }
    }
    let (p, c) = (
        dir_bytes(&msgs_dir(&path, "PLAIN")),
        dir_bytes(&msgs_dir(&path, "PACKED")),
    );
    assert!(c * 10 < p * 6, "s2 stream {c} bytes on disk, plain {p}");
    s.shutdown().await;

    // After a restart: every message, byte for byte, then plain ones after an update.
    let p = path.clone();
    let s = spawn_with_store(move |b, _| b.jetstream(p)).await;
    let js = jetstream::new(async_nats::connect(s.client_url()).await.unwrap());
    let mut st = js.get_stream("PACKED").await.unwrap();
    assert_eq!(st.info().await.unwrap().state.messages, 300);
    let off = stream::Config {
        compression: Some(stream::Compression::None),
        ..config("PACKED", &["packed.>"])
    };
    js.update_stream(off).await.unwrap();
    js.publish("packed.lab", record(300).into())
        .await
        .unwrap()
        .await
        .unwrap();
    let c = st
        .create_consumer(jetstream::consumer::pull::Config {
            durable_name: Some("reader".into()),
            ..Default::default()
        })
        .await
        .unwrap();
    let mut seen = 0;
    while seen < 301 {
        let got = fetch_within(&c, 100, std::time::Duration::from_secs(2)).await;
        assert!(!got.is_empty(), "stalled at {seen}");
        for m in got {
            assert_eq!(m.payload, record(seen).as_bytes(), "message {seen}");
            m.ack().await.unwrap();
            seen += 1;
        }
    }
}
