//! Fuzz store recovery: write a small stream, damage its block files as the input says
//! (byte overwrites and a truncation), reopen. Opening never panics, every message served
//! is one that was written (same subject and payload), and the store still accepts appends.
#![no_main]

use bytes::Bytes;
use libfuzzer_sys::fuzz_target;
use petrel_store::{FileStore, FileStoreConfig, StreamStore};

fn payload(i: u64) -> Bytes {
    Bytes::from(format!("payload-{i}-{}", "x".repeat((i % 7) as usize)))
}

fuzz_target!(|data: &[u8]| {
    let Ok(dir) = tempfile::tempdir() else {
        return;
    };
    let cfg = FileStoreConfig {
        block_size: 256,
        ..FileStoreConfig::default()
    };
    const N: u64 = 12;
    {
        let Ok(mut s) = FileStore::open(dir.path(), "F", cfg.clone()) else {
            return;
        };
        for i in 1..=N {
            let _ = s.append(&format!("f.{}", i % 3), None, payload(i), i as i64);
        }
        let _ = s.commit();
        if data.first().is_some_and(|b| b & 1 == 1) {
            let _ = s.delete(3, true);
        }
    }
    let msgs = dir.path().join("F").join("msgs");
    let Ok(entries) = std::fs::read_dir(&msgs) else {
        return;
    };
    let mut files: Vec<_> = entries.filter_map(Result::ok).map(|e| e.path()).collect();
    files.sort();
    if files.is_empty() {
        return;
    }
    // Each 4-byte chunk: file selector, offset (2 bytes), new byte value.
    for chunk in data.chunks_exact(4).skip(1) {
        let path = &files[usize::from(chunk[0]) % files.len()];
        let Ok(mut bytes) = std::fs::read(path) else {
            continue;
        };
        if bytes.is_empty() {
            continue;
        }
        let at = usize::from(u16::from_le_bytes([chunk[1], chunk[2]])) % bytes.len();
        if chunk[3] == 0xFF {
            bytes.truncate(at);
        } else {
            bytes[at] = chunk[3];
        }
        let _ = std::fs::write(path, &bytes);
    }
    let Ok(mut s) = FileStore::open(dir.path(), "F", cfg.clone()) else {
        return;
    };
    for seq in 1..=N + 2 {
        if let Ok(Some(m)) = s.get(seq) {
            assert!(seq <= N, "served a sequence never written: {seq}");
            assert_eq!(m.payload, payload(seq), "seq {seq}");
            assert_eq!(m.subject, format!("f.{}", seq % 3), "seq {seq}");
        }
    }
    if s.append("f.after", None, Bytes::from_static(b"after"), 99).is_ok() {
        let _ = s.commit();
    }
});
