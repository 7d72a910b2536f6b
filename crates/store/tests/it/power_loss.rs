//! Crash harness, power-loss mode, on `petrel_store::SimFs` (an in-memory filesystem whose
//! crash keeps only what was fsynced, plus a random prefix of the unsynced writes, the last
//! one possibly torn, and of the unsynced directory changes). The device can also "die"
//! after a random number of mutating operations, so crashes land inside `commit` (between
//! the write and the fsync, mid-compaction, mid-checkpoint...).
//!
//! With `SyncMode::Always`, every append whose `commit` returned Ok (and every delete that
//! returned Ok) must survive the crash exactly; nothing else may be served with foreign
//! content; the store keeps working after reopen.
//!
//! Knobs: `POWER_LOSS_SEED`, `POWER_LOSS_ROUNDS` (default 300). Erasing deletes (which
//! overwrite a record in place) are off by default, see `erase_in_place_*` below.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::PathBuf;
use std::sync::Arc;

use bytes::Bytes;
use petrel_store::{FileStore, FileStoreConfig, SimFs, StoreError, StreamStore, SyncMode};

pub struct XorShift(pub u64);

impl XorShift {
    pub fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.0 = x;
        x
    }
    pub fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }
    pub fn chance(&mut self, percent: u64) -> bool {
        self.below(100) < percent
    }
}

pub fn env_u64(key: &str, default: u64) -> u64 {
    std::env::var(key)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

type Msg = (String, Option<Bytes>, Bytes, i64);

fn random_msg(rng: &mut XorShift, n: u64) -> Msg {
    let subject = format!("p.{}", rng.below(5));
    let headers = rng
        .chance(25)
        .then(|| Bytes::from(format!("NATS/1.0\r\nN: {n}\r\n\r\n")));
    let len = rng.below(300);
    // Half the payloads compress (a stream with compression: s2 stores them compressed).
    let payload = if rng.chance(50) {
        Bytes::from(vec![b'a' + (n % 26) as u8; len as usize])
    } else {
        Bytes::from((0..len).map(|_| rng.next() as u8).collect::<Vec<_>>())
    };
    (subject, headers, payload, n as i64)
}

fn same(m: &petrel_store::StoredMsg, want: &Msg) -> bool {
    (&m.subject, &m.headers, &m.payload, m.ts) == (&want.0, &want.1, &want.2, want.3)
}

/// What the test knows about the stream.
#[derive(Default)]
struct Model {
    /// Every append that returned a sequence: its content (sequences above a recovered
    /// `last_seq` are forgotten, they may be reused).
    appended: HashMap<u64, Msg>,
    /// Durable messages: committed (or seen after a reopen) and not deleted.
    durable: BTreeMap<u64, Msg>,
    /// Deletes that returned Ok.
    deleted: BTreeSet<u64>,
    /// Highest sequence known durable.
    high: u64,
}

/// Checks a freshly reopened store against the model; returns the problems found.
fn verify(s: &FileStore, m: &mut Model, ctx: &str) -> Vec<String> {
    let mut errs = Vec::new();
    let st = s.state();
    if st.last_seq < m.high {
        errs.push(format!(
            "{ctx}: last_seq {} < durable high {}",
            st.last_seq, m.high
        ));
    }
    for (seq, want) in &m.durable {
        match s.get(*seq) {
            Ok(Some(got)) if same(&got, want) => {}
            other => errs.push(format!("{ctx}: committed seq {seq} lost: {other:?}")),
        }
    }
    for seq in &m.deleted {
        if let Ok(Some(_)) = s.get(*seq) {
            errs.push(format!("{ctx}: deleted seq {seq} is back"));
        }
    }
    for seq in 0..=st.last_seq + 2 {
        match s.get(seq) {
            Ok(Some(got)) => match m.appended.get(&seq) {
                Some(want) if same(&got, want) => {
                    // Read back from the disk after a crash: durable from now on.
                    m.durable.insert(seq, want.clone());
                }
                _ => errs.push(format!("{ctx}: seq {seq} served with foreign content")),
            },
            Ok(None) => {}
            Err(StoreError::Corrupt { .. }) => {}
            Err(e) => errs.push(format!("{ctx}: get({seq}) failed: {e}")),
        }
    }
    let mut from = 0;
    while let Ok(Some(got)) = s.next_by_subject(from, "p.*") {
        if m.appended.get(&got.seq).is_none_or(|w| !same(&got, w)) {
            errs.push(format!(
                "{ctx}: next_by_subject served foreign seq {}",
                got.seq
            ));
        }
        from = got.seq + 1;
    }
    m.appended.retain(|seq, _| *seq <= st.last_seq);
    m.high = m.high.max(st.last_seq);
    errs
}

/// Runs `rounds` crash rounds; returns (acked appends, problems).
fn run(seed: u64, rounds: u64, erase: bool, sync: SyncMode) -> (u64, Vec<String>) {
    let mut rng = XorShift(seed.max(1));
    let fs = SimFs::default();
    let root = PathBuf::from("/sim");
    let mut model = Model::default();
    let mut errs = Vec::new();
    let mut acked = 0u64;
    let mut n = 0u64;
    for round in 0..rounds {
        let ctx = format!("seed {seed:#x} round {round}");
        let cfg = FileStoreConfig {
            block_size: [200, 700, 4096][rng.below(3) as usize],
            sync,
            checkpoint_every: [0, 8, 40][rng.below(3) as usize],
            // Compressed and plain records mixed in one store, as after a config update.
            compress: rng.below(2) == 1,
        };
        fs.arm(None);
        let mut s = match FileStore::open_with_backend(&root, "S", cfg, Arc::new(fs.clone())) {
            Ok(s) => s,
            Err(e) => {
                errs.push(format!("{ctx}: reopen failed: {e}"));
                return (acked, errs);
            }
        };
        errs.extend(verify(&s, &mut model, &ctx));
        if !errs.is_empty() {
            return (acked, errs);
        }
        // The device dies after a random number of mutating operations (or the power goes
        // at a quiet moment).
        fs.arm(rng.chance(85).then(|| rng.below(40)));
        let mut clean = false;
        for _ in 0..1 + rng.below(12) {
            let op = rng.below(10);
            if op < 7 {
                let mut batch = Vec::new();
                let mut failed = false;
                for _ in 0..1 + rng.below(4) {
                    n += 1;
                    let msg = random_msg(&mut rng, n);
                    match s.append(&msg.0, msg.1.clone(), msg.2.clone(), msg.3) {
                        Ok((seq, _)) => {
                            if seq <= model.high {
                                errs.push(format!("{ctx}: append reused seq {seq}"));
                            }
                            model.appended.insert(seq, msg.clone());
                            batch.push((seq, msg));
                        }
                        Err(_) => failed = true,
                    }
                }
                if failed || s.commit().is_err() {
                    break;
                }
                for (seq, msg) in batch {
                    model.high = model.high.max(seq);
                    model.durable.insert(seq, msg);
                    acked += 1;
                }
            } else if op < 9 {
                let live: Vec<u64> = model.durable.keys().copied().collect();
                if live.is_empty() {
                    continue;
                }
                let seq = live[rng.below(live.len() as u64) as usize];
                let wipe = erase && rng.chance(50);
                model.durable.remove(&seq);
                match s.delete(seq, wipe) {
                    Ok(true) => {
                        model.deleted.insert(seq);
                    }
                    Ok(false) => errs.push(format!("{ctx}: delete({seq}) found nothing")),
                    Err(_) => break,
                }
            } else {
                clean = s.close().is_ok();
                break;
            }
        }
        if !errs.is_empty() {
            return (acked, errs);
        }
        drop(s);
        // A clean close needs no power loss to be checked, but one may follow anyway.
        if !clean || rng.chance(50) {
            fs.crash(rng.next());
        }
    }
    // After the last crash: everything committed is there and the store still takes writes.
    fs.arm(None);
    let ctx = format!("seed {seed:#x} final");
    let cfg = FileStoreConfig::default();
    match FileStore::open_with_backend(&root, "S", cfg, Arc::new(fs.clone())) {
        Ok(mut s) => {
            errs.extend(verify(&s, &mut model, &ctx));
            let (seq, _) = s
                .append("p.end", None, Bytes::from_static(b"end"), 0)
                .unwrap();
            assert!(seq > model.high, "{ctx}: seq {seq} reused");
            s.commit().unwrap();
            assert_eq!(s.get(seq).unwrap().unwrap().payload, &b"end"[..]);
        }
        Err(e) => errs.push(format!("{ctx}: reopen failed: {e}")),
    }
    (acked, errs)
}

#[test]
fn power_loss_never_loses_committed_appends() {
    let seed = env_u64("POWER_LOSS_SEED", 0xC0DE_D00D_1234_5679);
    let rounds = env_u64("POWER_LOSS_ROUNDS", 200);
    let started = std::time::Instant::now();
    let (acked, errs) = run(seed, rounds, false, SyncMode::Always);
    println!(
        "power-loss rounds={rounds} acked={acked} lost={} seed={seed:#x} ({:.1}s)",
        errs.len(),
        started.elapsed().as_secs_f64()
    );
    assert!(errs.is_empty(), "{}", errs.join("\n"));
}

/// The harness bites: without fsync in `commit`, committed appends do get lost.
#[test]
fn power_loss_model_catches_missing_fsync() {
    let lazy = SyncMode::Interval(std::time::Duration::from_secs(3600));
    let (_, errs) = run(0xBAD5_EED5, 60, false, lazy);
    assert!(
        errs.iter().any(|e| e.contains("lost")),
        "no loss detected without fsync: {errs:?}"
    );
}

/// Erasing deletes overwrite a record in place (FORMAT.md, "Erase"); a power loss between
/// that overwrite and its fsync can tear the record. No committed message may be lost.
#[test]
fn power_loss_with_erasing_deletes() {
    // Regression: a torn in-place erase used to cut every later record of its block,
    // committed ones included (seeds 3-8 lost messages). Tombstones are now durable before
    // the overwrite and recovery skips an isolated damaged record.
    let seed = env_u64("POWER_LOSS_SEED", 8);
    let rounds = env_u64("POWER_LOSS_ROUNDS", 120);
    let (acked, errs) = run(seed, rounds, true, SyncMode::Always);
    println!(
        "power-loss (erase) rounds={rounds} acked={acked} problems={} seed={seed:#x}",
        errs.len()
    );
    assert!(errs.is_empty(), "{}", errs.join("\n"));
}
