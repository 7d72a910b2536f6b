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
}

criterion_group!(benches, bench);
criterion_main!(benches);
