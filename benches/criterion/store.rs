//! Store append throughput with group commit (fsync per commit), append without fsync
//! (interval mode), reads, and recovery time.

use bytes::Bytes;
use criterion::{criterion_group, criterion_main, BatchSize, Criterion, Throughput};
use petrel_store::{FileStore, FileStoreConfig, MemStore, StreamStore, SyncMode};

fn config(sync: SyncMode) -> FileStoreConfig {
    FileStoreConfig {
        sync,
        ..FileStoreConfig::default()
    }
}

fn bench(c: &mut Criterion) {
    let payload = Bytes::from(vec![b'p'; 128]);
    let mut g = c.benchmark_group("store");
    g.sample_size(10);
    for (name, batch) in [("group_commit_256", 256u64), ("group_commit_16", 16)] {
        g.throughput(Throughput::Elements(batch));
        g.bench_function(name, |b| {
            let dir = tempfile::tempdir().unwrap();
            let mut s = FileStore::open(dir.path(), "BENCH", config(SyncMode::Always)).unwrap();
            b.iter(|| {
                for _ in 0..batch {
                    s.append("orders.new", None, payload.clone(), 0).unwrap();
                }
                s.commit().unwrap();
            })
        });
    }
    g.throughput(Throughput::Elements(1000));
    g.bench_function("append_no_fsync_x1000", |b| {
        let dir = tempfile::tempdir().unwrap();
        let mut s = FileStore::open(
            dir.path(),
            "BENCH",
            config(SyncMode::Interval(std::time::Duration::from_secs(60))),
        )
        .unwrap();
        b.iter(|| {
            for _ in 0..1000 {
                s.append("orders.new", None, payload.clone(), 0).unwrap();
            }
            s.commit().unwrap();
        })
    });
    g.bench_function("mem_append_x1000", |b| {
        let mut s = MemStore::new();
        b.iter(|| {
            for _ in 0..1000 {
                s.append("orders.new", None, payload.clone(), 0).unwrap();
            }
        })
    });
    g.throughput(Throughput::Elements(50_000));
    g.bench_function("recover_50k", |b| {
        let dir = tempfile::tempdir().unwrap();
        {
            let mut s = FileStore::open(
                dir.path(),
                "BENCH",
                config(SyncMode::Interval(std::time::Duration::from_secs(60))),
            )
            .unwrap();
            for i in 0..50_000u32 {
                s.append(&format!("orders.{}", i % 100), None, payload.clone(), 0)
                    .unwrap();
            }
            s.commit().unwrap();
        }
        b.iter_batched(
            || (),
            |()| FileStore::open(dir.path(), "BENCH", config(SyncMode::Always)).unwrap(),
            BatchSize::PerIteration,
        )
    });
    g.finish();
    compression(c);
}

/// About 1 KiB of JSON (MediSync's lab results).
fn json_record(i: usize) -> Bytes {
    let results: Vec<String> = (0..12)
        .map(|k| {
            format!(
                r#"{{"test":"panel-{k}","value":{},"unit":"mmol/L","flag":"normal"}}"#,
                (i * 7 + k) % 100
            )
        })
        .collect();
    Bytes::from(format!(
        r#"{{"patient":"p-{i}","results":[{}]}}"#,
        results.join(",")
    ))
}

/// `compression: s2` against plain records: append (no fsync) and read of 1 KiB JSON.
fn compression(c: &mut Criterion) {
    let records: Vec<Bytes> = (0..1000).map(json_record).collect();
    let mut g = c.benchmark_group("compression");
    g.sample_size(10);
    g.throughput(Throughput::Elements(1000));
    for compress in [false, true] {
        let cfg = FileStoreConfig {
            compress,
            ..config(SyncMode::Interval(std::time::Duration::from_secs(60)))
        };
        let name = if compress { "s2" } else { "none" };
        g.bench_function(format!("append_1k_json_x1000_{name}"), |b| {
            let dir = tempfile::tempdir().unwrap();
            let mut s = FileStore::open(dir.path(), "BENCH", cfg.clone()).unwrap();
            b.iter(|| {
                for r in &records {
                    s.append("records.lab", None, r.clone(), 0).unwrap();
                }
                s.commit().unwrap();
            })
        });
        g.bench_function(format!("read_1k_json_x1000_{name}"), |b| {
            let dir = tempfile::tempdir().unwrap();
            let mut s = FileStore::open(dir.path(), "BENCH", cfg.clone()).unwrap();
            for r in &records {
                s.append("records.lab", None, r.clone(), 0).unwrap();
            }
            s.commit().unwrap();
            b.iter(|| {
                for seq in 1..=1000 {
                    s.get(seq).unwrap();
                }
            })
        });
    }
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
