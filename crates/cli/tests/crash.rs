//! Crash harness, SIGKILL mode: a file stream takes sync-acked publishes from a few concurrent
//! publishers, the `petrel` process is killed with SIGKILL at a random moment (deterministic
//! xorshift, `CRASH_SEED`), restarted on the same store directory, and every acknowledged
//! message must be back with the same sequence and content. Unacknowledged messages may or may
//! not be there, never with other content; `last_seq` never goes backwards.
//!
//! Knobs: `CRASH_ROUNDS` (default 3), `CRASH_SEED`, `CRASH_PUBLISHERS` (default 4),
//! `CRASH_MAX_DELAY_MS` (longest run before the kill, default 600). The long run is
//! `tests/crash/run.sh`.

#![cfg(unix)]

use std::collections::HashMap;
use std::path::Path;
use std::process::Command;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use async_nats::jetstream::{self, stream};
use bytes::Bytes;
use futures::StreamExt;
use petrel_testkit::{spawn_binary_with, BinaryServer};

const BIN: &str = env!("CARGO_BIN_EXE_petrel");
const STREAM: &str = "CRASH";
/// Bound on every single client operation.
const OP_TIMEOUT: Duration = Duration::from_secs(20);

struct XorShift(u64);

impl XorShift {
    fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.0 = x;
        x
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }
}

fn env_u64(key: &str, default: u64) -> u64 {
    std::env::var(key)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// Subject and payload of the message carrying global counter `n`.
fn message(n: u64) -> (String, Bytes) {
    let subject = format!("crash.{}", n % 7);
    // Vary the size so records straddle different offsets; the content is a pure function of n.
    let pad = "x".repeat((n % 97) as usize);
    (subject, Bytes::from(format!("msg-{n:012}-{pad}")))
}

/// The counter encoded in a payload, if it is one of ours.
fn counter_of(payload: &[u8]) -> Option<u64> {
    let s = std::str::from_utf8(payload).ok()?;
    s.strip_prefix("msg-")?.get(..12)?.parse().ok()
}

fn start(dir: &Path) -> BinaryServer {
    let dir = dir.to_str().expect("utf-8 temp dir");
    spawn_binary_with(Path::new(BIN), &["-js", "-sd", dir]).expect("start petrel")
}

async fn connect(server: &BinaryServer) -> (async_nats::Client, jetstream::Context) {
    let nc = tokio::time::timeout(OP_TIMEOUT, async_nats::connect(server.client_url()))
        .await
        .expect("connect timed out")
        .expect("connect");
    let mut js = jetstream::new(nc.clone());
    js.set_timeout(Duration::from_secs(10));
    (nc, js)
}

async fn last_seq(js: &jetstream::Context) -> (u64, u64) {
    let mut s = tokio::time::timeout(OP_TIMEOUT, js.get_stream(STREAM))
        .await
        .expect("get_stream timed out")
        .expect("get_stream");
    let info = tokio::time::timeout(OP_TIMEOUT, s.info())
        .await
        .expect("info timed out")
        .expect("info");
    (info.state.last_sequence, info.state.messages)
}

/// Fetches one message (a few tries, so a transient error is not taken for a loss).
async fn fetch(stream: &stream::Stream, seq: u64) -> Fetched {
    let mut last = String::new();
    for _ in 0..3 {
        match tokio::time::timeout(OP_TIMEOUT, stream.get_raw_message(seq)).await {
            Ok(Ok(m)) => return Ok((m.subject.to_string(), m.payload)),
            Ok(Err(e)) => last = e.to_string(),
            Err(_) => last = "timed out".into(),
        }
    }
    Err(last)
}

/// A fetched message (subject, payload) or why it could not be fetched.
type Fetched = Result<(String, Bytes), String>;

/// Everything known about the stream's contents.
#[derive(Default)]
struct Ledger {
    /// seq -> counter, for every acknowledged publish.
    acked: HashMap<u64, u64>,
    /// Highest last_seq ever observed (acks included).
    high: u64,
}

/// Checks every sequence in `range`: acked ones must be there with their content, any other
/// present message must be one we published, with its exact content. Returns the acked
/// sequences that are missing or wrong.
async fn verify_range(
    stream: &stream::Stream,
    ledger: &Ledger,
    range: std::ops::RangeInclusive<u64>,
    errors: &mut Vec<String>,
) -> u64 {
    let results: Vec<(u64, Fetched)> = futures::stream::iter(range)
        .map(|seq| async move { (seq, fetch(stream, seq).await) })
        .buffer_unordered(16)
        .collect()
        .await;
    let mut lost = 0;
    for (seq, got) in results {
        let want = ledger.acked.get(&seq).copied();
        match (want, got) {
            (Some(n), Ok((subj, payload))) => {
                if (subj.clone(), payload.clone()) != message(n) {
                    lost += 1;
                    errors.push(format!(
                        "seq {seq}: acked counter {n}, served {subj} {:?}",
                        String::from_utf8_lossy(&payload)
                    ));
                }
            }
            (Some(n), Err(e)) => {
                lost += 1;
                errors.push(format!("seq {seq}: acked counter {n} missing: {e}"));
            }
            (None, Ok((subj, payload))) => {
                let ok = counter_of(&payload)
                    .is_some_and(|n| (subj.clone(), payload.clone()) == message(n));
                if !ok {
                    errors.push(format!(
                        "seq {seq}: unacked message with foreign content {subj} {:?}",
                        String::from_utf8_lossy(&payload)
                    ));
                }
            }
            (None, Err(_)) => {}
        }
    }
    lost
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_never_loses_acknowledged_messages() {
    let rounds = env_u64("CRASH_ROUNDS", 3);
    let seed = env_u64("CRASH_SEED", 0x5EED_C0FF_EE12_3457).max(1);
    let publishers = env_u64("CRASH_PUBLISHERS", 4).max(1);
    let max_delay = env_u64("CRASH_MAX_DELAY_MS", 600).max(20);
    let mut rng = XorShift(seed);
    let dir = tempfile::tempdir().unwrap();
    let started = Instant::now();

    {
        let server = start(dir.path());
        let (_nc, js) = connect(&server).await;
        tokio::time::timeout(
            OP_TIMEOUT,
            js.create_stream(stream::Config {
                name: STREAM.into(),
                subjects: vec!["crash.>".into()],
                storage: stream::StorageType::File,
                ..Default::default()
            }),
        )
        .await
        .expect("create_stream timed out")
        .expect("create_stream");
    }

    let counter = Arc::new(AtomicU64::new(0));
    let mut ledger = Ledger::default();
    let mut errors = Vec::new();
    let mut lost = 0u64;
    // First sequence not yet checked by a per-round scan.
    let mut checked_to = 0u64;

    for round in 1..=rounds {
        let server = start(dir.path());
        let (nc, js) = connect(&server).await;
        // After a restart: the previous round's sequences, all acked ones among them present.
        let (last, _) = last_seq(&js).await;
        if last < ledger.high {
            errors.push(format!(
                "round {round}: last_seq went back from {} to {last}",
                ledger.high
            ));
        }
        ledger.high = ledger.high.max(last);
        let stream = js.get_stream(STREAM).await.expect("get_stream");
        if checked_to < last {
            lost += verify_range(&stream, &ledger, checked_to + 1..=last, &mut errors).await;
            checked_to = last;
        }
        // A sample of older acked messages, every round.
        let mut sample: Vec<u64> = ledger.acked.keys().copied().collect();
        sample.sort_unstable();
        for _ in 0..sample.len().min(32) {
            let seq = sample[rng.below(sample.len() as u64) as usize];
            let n = ledger.acked[&seq];
            match fetch(&stream, seq).await {
                Ok(got) if got == message(n) => {}
                other => {
                    lost += 1;
                    errors.push(format!(
                        "round {round}: sampled seq {seq} (counter {n}): {other:?}"
                    ));
                }
            }
        }

        // Publish until killed.
        let stop = Arc::new(AtomicBool::new(false));
        let acks: Arc<Mutex<Vec<(u64, u64)>>> = Arc::default();
        let mut tasks = Vec::new();
        for _ in 0..publishers {
            let (js, counter, stop, acks) =
                (js.clone(), counter.clone(), stop.clone(), acks.clone());
            tasks.push(tokio::spawn(async move {
                while !stop.load(Ordering::Relaxed) {
                    let n = counter.fetch_add(1, Ordering::Relaxed);
                    let (subject, payload) = message(n);
                    let ack = tokio::time::timeout(OP_TIMEOUT, async {
                        js.publish(subject, payload).await?.await
                    })
                    .await;
                    match ack {
                        Ok(Ok(ack)) => acks.lock().unwrap().push((ack.sequence, n)),
                        _ => break,
                    }
                }
            }));
        }
        let delay = 20 + rng.below(max_delay);
        tokio::time::sleep(Duration::from_millis(delay)).await;
        let status = Command::new("kill")
            .args(["-KILL", &server.pid().to_string()])
            .status()
            .expect("run kill");
        assert!(status.success(), "kill -KILL failed");
        stop.store(true, Ordering::Relaxed);
        for t in &tasks {
            t.abort();
        }
        for t in tasks {
            let _ = t.await;
        }
        // Reaps the child; the next round starts a fresh process on the same directory.
        drop(server);
        drop(stream);
        drop(js);
        drop(nc);

        let acks = std::mem::take(&mut *acks.lock().unwrap());
        let n_acks = acks.len();
        for (seq, n) in acks {
            if let Some(prev) = ledger.acked.insert(seq, n) {
                errors.push(format!("seq {seq} acked twice: counters {prev} and {n}"));
            }
            ledger.high = ledger.high.max(seq);
        }
        println!(
            "round {round}: killed after {delay} ms, {n_acks} acked this round, last_seq >= {}",
            ledger.high
        );
    }

    // Final restart: every acknowledged message ever, and every sequence not checked yet.
    let server = start(dir.path());
    let (_nc, js) = connect(&server).await;
    let (last, msgs) = last_seq(&js).await;
    if last < ledger.high {
        errors.push(format!(
            "final: last_seq went back from {} to {last}",
            ledger.high
        ));
    }
    let stream = js.get_stream(STREAM).await.expect("get_stream");
    if checked_to < last {
        lost += verify_range(&stream, &ledger, checked_to + 1..=last, &mut errors).await;
    }
    let mut all: Vec<(u64, u64)> = ledger.acked.iter().map(|(s, n)| (*s, *n)).collect();
    all.sort_unstable();
    let results: Vec<(u64, u64, Fetched)> = futures::stream::iter(all)
        .map(|(seq, n)| {
            let stream = &stream;
            async move { (seq, n, fetch(stream, seq).await) }
        })
        .buffer_unordered(16)
        .collect()
        .await;
    let mut final_lost = 0u64;
    for (seq, n, got) in results {
        match got {
            Ok(got) if got == message(n) => {}
            other => {
                final_lost += 1;
                errors.push(format!("final: seq {seq} (counter {n}): {other:?}"));
            }
        }
    }
    lost = lost.max(final_lost);
    println!(
        "crash rounds={rounds} acked={} lost={lost} (seed={seed:#x}, last_seq={last}, stored={msgs}, {:.1}s)",
        ledger.acked.len(),
        started.elapsed().as_secs_f64()
    );
    for e in errors.iter().take(50) {
        println!("  {e}");
    }
    assert!(
        errors.is_empty(),
        "{} problems, first: {}",
        errors.len(),
        errors[0]
    );
    assert_eq!(lost, 0);
}
