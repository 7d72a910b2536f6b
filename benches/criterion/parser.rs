//! Parser throughput: a stream of PUBs and a mixed transcript, parsed from one buffer as the
//! reader does, and the reader's in-place path for small PUBs (`peek_pub`, then advance).

use bytes::{Buf, BytesMut};
use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use petrel_wire::Parser;

fn pubs(n: usize, size: usize) -> Vec<u8> {
    let payload = vec![b'x'; size];
    let mut out = Vec::new();
    for i in 0..n {
        out.extend_from_slice(
            format!(
                "PUB medisync.etl.{}.completed _INBOX.r.{i} {size}\r\n",
                i % 8
            )
            .as_bytes(),
        );
        out.extend_from_slice(&payload);
        out.extend_from_slice(b"\r\n");
    }
    out
}

fn parse_all(input: &[u8]) -> usize {
    let mut p = Parser::new(4096, 1 << 20);
    let mut buf = BytesMut::from(input);
    let mut n = 0;
    while let Ok(Some(_)) = p.parse(&mut buf) {
        n += 1;
    }
    n
}

/// The reader's hot path: find each PUB's parts in place, touch them, advance.
fn peek_all(input: &[u8]) -> usize {
    let p = Parser::new(4096, 1 << 20);
    let mut buf = BytesMut::from(input);
    let mut n = 0;
    while let Some(at) = p.peek_pub(&buf) {
        n += buf[at.subject].len() + buf[at.payload].len();
        buf.advance(at.len);
    }
    n
}

fn bench(c: &mut Criterion) {
    let mut g = c.benchmark_group("parser");
    for size in [16usize, 128, 4096] {
        let input = pubs(1000, size);
        g.throughput(Throughput::Elements(1000));
        g.bench_function(format!("pub_{size}B_x1000"), |b| {
            b.iter(|| parse_all(&input))
        });
        g.bench_function(format!("peek_pub_{size}B_x1000"), |b| {
            b.iter(|| peek_all(&input))
        });
    }
    let mixed = b"SUB foo.* q 1\r\nPING\r\nHPUB foo.bar r 22 24\r\nNATS/1.0\r\nA: b\r\nC:\r\n\r\nhi\r\nUNSUB 1 5\r\nPONG\r\n".repeat(200);
    g.throughput(Throughput::Elements(1000));
    g.bench_function("mixed_x1000", |b| b.iter(|| parse_all(&mixed)));
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
