//! Sublist insert and match, with and without the per-reader match cache.

use std::sync::Arc;

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use petrel_subject::{MatchCache, Sublist};

fn populated(n: usize) -> Sublist<u32> {
    let mut s = Sublist::new();
    for i in 0..n {
        let subj = format!("svc.{}.{}.events", i % 100, i);
        s.insert(subj.as_bytes(), None, i as u32).unwrap();
    }
    s.insert(b"svc.*.*.events", None, 1_000_000).unwrap();
    s.insert(b"svc.>", Some(b"workers"), 1_000_001).unwrap();
    s.insert(b"*.*", None, 1_000_002).unwrap();
    s
}

fn bench(c: &mut Criterion) {
    let mut g = c.benchmark_group("sublist");
    g.throughput(Throughput::Elements(1));
    g.bench_function("insert_remove_10k", |b| {
        b.iter(|| {
            let mut s = Sublist::new();
            for i in 0..10_000u32 {
                s.insert(format!("a.{}.{}", i % 37, i).as_bytes(), None, i)
                    .unwrap();
            }
            for i in 0..10_000u32 {
                s.remove(format!("a.{}.{}", i % 37, i).as_bytes(), None, &i);
            }
            s
        })
    });
    let s = populated(10_000);
    g.bench_function("match_literal_10k_subs", |b| {
        b.iter(|| s.match_subject(b"svc.42.4242.events"))
    });
    g.bench_function("match_miss_10k_subs", |b| {
        b.iter(|| s.match_subject(b"other.subject.here"))
    });
    let mut cache: MatchCache<u32> = MatchCache::new(1024);
    let generation = s.generation();
    cache.insert(
        b"svc.42.4242.events",
        generation,
        Arc::new(s.match_subject(b"svc.42.4242.events")),
    );
    g.bench_function("match_cached", |b| {
        b.iter(|| cache.get(b"svc.42.4242.events", generation))
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
