//! `compression: s2`: compressible bodies are stored Snappy-compressed, read back byte for
//! byte (from the write buffer, after a reopen from a checkpoint and after a full scan), cost
//! the same accounted bytes as plain ones, share a store with plain records, and a flipped
//! byte in a compressed record is detected and never served.

use bytes::Bytes;
use petrel_store::{FileStore, FileStoreConfig, StreamStore, SyncMode};

fn config(compress: bool) -> FileStoreConfig {
    FileStoreConfig {
        sync: SyncMode::Always,
        checkpoint_every: 0,
        compress,
        ..FileStoreConfig::default()
    }
}

/// A record as MediSync's ETL publishes them: about 1 KiB of JSON lab results.
fn body(i: usize) -> Bytes {
    let results: Vec<String> = (0..12)
        .map(|k| {
            format!(
                r#"{{"test":"panel-{k}","value":{},"unit":"mmol/L","flag":"normal","lab":"central"}}"#,
                (i * 7 + k) % 100
            )
        })
        .collect();
    Bytes::from(format!(
        r#"{{"patient":"p-{i}","ward":"cardiology","results":[{}]}}"#,
        results.join(",")
    ))
}

fn fill(store: &mut FileStore, n: usize) {
    for i in 0..n {
        let headers = (i % 3 == 0).then(|| Bytes::from(format!("NATS/1.0\r\nN: {i}\r\n\r\n")));
        store
            .append(
                &format!("records.{}", i % 4),
                headers,
                body(i),
                i as i64 + 1,
            )
            .unwrap();
    }
    store.commit().unwrap();
}

fn disk_bytes(dir: &std::path::Path) -> u64 {
    std::fs::read_dir(dir.join("S").join("msgs"))
        .unwrap()
        .map(|e| e.unwrap().metadata().unwrap().len())
        .sum()
}

#[test]
fn compressed_bodies_read_back_and_account_like_plain_ones() {
    let plain_dir = tempfile::tempdir().unwrap();
    let packed_dir = tempfile::tempdir().unwrap();
    let mut plain = FileStore::open(plain_dir.path(), "S", config(false)).unwrap();
    let mut packed = FileStore::open(packed_dir.path(), "S", config(true)).unwrap();
    fill(&mut plain, 500);
    fill(&mut packed, 500);
    assert_eq!(plain.state(), packed.state(), "same accounting");
    let (p, c) = (disk_bytes(plain_dir.path()), disk_bytes(packed_dir.path()));
    eprintln!(
        "1 KiB JSON records on disk: plain {p} bytes, s2 {c} bytes ({:.2}x)",
        p as f64 / c as f64
    );
    // Per-record Snappy: about 1 KiB of JSON shrinks to well under 60%.
    assert!(c * 10 < p * 6, "compressed {c} bytes vs plain {p}");
    for seq in [1, 2, 3, 250, 500] {
        assert_eq!(
            packed.get(seq).unwrap(),
            plain.get(seq).unwrap(),
            "seq {seq}"
        );
    }
    // Plain records after compressed ones (compression turned off by an update).
    packed.set_compression(false);
    fill(&mut packed, 10);
    packed.close().unwrap();
    // Reopen from the checkpoint, then from a full scan.
    for scan in [false, true] {
        if scan {
            std::fs::remove_file(packed_dir.path().join("S").join("index.chk")).unwrap();
        }
        let s = FileStore::open(packed_dir.path(), "S", config(true)).unwrap();
        assert_eq!(s.state().msgs, 510);
        assert_eq!(s.get(250).unwrap(), plain.get(250).unwrap());
        assert_eq!(s.get(505).unwrap().unwrap().payload, body(4));
    }
}

#[test]
fn a_flipped_byte_in_a_compressed_record_is_never_served() {
    let dir = tempfile::tempdir().unwrap();
    let mut s = FileStore::open(dir.path(), "S", config(true)).unwrap();
    fill(&mut s, 3);
    s.close().unwrap();
    let block = dir.path().join("S").join("msgs").join("1.blk");
    let mut bytes = std::fs::read(&block).unwrap();
    // Inside the first record's compressed body.
    bytes[80] ^= 0x01;
    std::fs::write(&block, bytes).unwrap();
    std::fs::remove_file(dir.path().join("S").join("index.chk")).unwrap();
    let s = FileStore::open(dir.path(), "S", config(true)).unwrap();
    assert!(
        s.get(1).map_or(true, |m| m.is_none()),
        "damaged message not served"
    );
    assert_eq!(
        s.get(2).unwrap().unwrap().payload,
        body(1),
        "the records after it survive"
    );
    assert!(s.state().lost.is_some(), "the loss is reported");
}
