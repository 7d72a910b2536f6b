//! Fuzz-style recovery: write a store, corrupt random bytes (deterministic xorshift), reopen,
//! a few hundred times. Opening must never panic and every message served must be one that
//! was appended, byte for byte.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use bytes::Bytes;
use petrel_store::{FileStore, FileStoreConfig, StreamStore};

use crate::harness::copy_dir;

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

type Known = HashMap<u64, (String, Option<Bytes>, Bytes)>;

fn build(dir: &Path, cfg: &FileStoreConfig, rng: &mut XorShift, clean: bool) -> Known {
    let mut s = FileStore::open(dir, "F", cfg.clone()).unwrap();
    let mut known = Known::new();
    for i in 0..80u64 {
        let subject = format!("f.{}", rng.below(6));
        let hdr = (rng.below(3) == 0).then(|| Bytes::from(format!("NATS/1.0\r\nI: {i}\r\n\r\n")));
        let payload = Bytes::from(
            (0..rng.below(40))
                .map(|_| rng.next() as u8)
                .collect::<Vec<_>>(),
        );
        let (seq, _) = s
            .append(&subject, hdr.clone(), payload.clone(), i as i64)
            .unwrap();
        known.insert(seq, (subject, hdr, payload));
        if rng.below(5) == 0 {
            s.commit().unwrap();
        }
        if rng.below(9) == 0 {
            let victim = 1 + rng.below(seq);
            s.delete(victim, rng.below(2) == 0).unwrap();
        }
    }
    s.commit().unwrap();
    if clean {
        s.close().unwrap();
    }
    known
}

fn files(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                stack.push(p);
            } else {
                out.push(p);
            }
        }
    }
    out.sort();
    out
}

fn verify(s: &FileStore, known: &Known, iter: usize) {
    let st = s.state();
    assert!(st.msgs <= known.len() as u64, "iter {iter}");
    let mut served = 0;
    for seq in 0..=st.last_seq + 2 {
        if let Ok(Some(m)) = s.get(seq) {
            let (subj, hdr, payload) = known
                .get(&seq)
                .unwrap_or_else(|| panic!("iter {iter}: unknown seq {seq}"));
            assert_eq!(
                (&m.subject, &m.headers, &m.payload),
                (subj, hdr, payload),
                "iter {iter} seq {seq}"
            );
            served += 1;
        }
    }
    assert!(served <= st.msgs, "iter {iter}");
    for f in 0..6 {
        if let Ok(Some(m)) = s.last_by_subject(&format!("f.{f}")) {
            assert_eq!(known[&m.seq].2, m.payload);
        }
    }
    let mut from = 0;
    while let Ok(Some(m)) = s.next_by_subject(from, "f.*") {
        assert_eq!(known[&m.seq].2, m.payload, "iter {iter}");
        from = m.seq + 1;
    }
}

#[test]
fn random_corruption_never_panics_or_serves_bad_data() {
    let base = tempfile::tempdir().unwrap();
    // STORE_FUZZ_SEED / STORE_FUZZ_ITERS override the defaults for longer local soaks.
    let env = |k: &str, d: u64| {
        std::env::var(k)
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(d)
    };
    let mut rng = XorShift(env("STORE_FUZZ_SEED", 0x9E37_79B9_7F4A_7C15).max(1));
    let iters = env("STORE_FUZZ_ITERS", 150) as usize;
    let cfg = FileStoreConfig {
        block_size: 400,
        ..FileStoreConfig::default()
    };
    for (variant, clean) in [(0, true), (1, false)] {
        let pristine = base.path().join(format!("pristine{variant}"));
        let known = build(&pristine, &cfg, &mut rng, clean);
        let all = files(&pristine);
        for iter in 0..iters {
            let work = base.path().join(format!("w{variant}-{iter}"));
            copy_dir(&pristine, &work);
            for _ in 0..1 + rng.below(4) {
                let rel = all[rng.below(all.len() as u64) as usize]
                    .strip_prefix(&pristine)
                    .unwrap()
                    .to_path_buf();
                let path = work.join(rel);
                let mut data = std::fs::read(&path).unwrap();
                if data.is_empty() {
                    continue;
                }
                match rng.below(4) {
                    0 => {
                        let cut = rng.below(data.len() as u64) as usize;
                        data.truncate(cut);
                    }
                    1 => {
                        let at = rng.below(data.len() as u64) as usize;
                        let n = (1 + rng.below(40) as usize).min(data.len() - at);
                        data[at..at + n].fill(0);
                    }
                    _ => {
                        let at = rng.below(data.len() as u64) as usize;
                        data[at] ^= 1 + rng.below(255) as u8;
                    }
                }
                std::fs::write(&path, &data).unwrap();
            }
            let mut s = FileStore::open(&work, "F", cfg.clone()).unwrap();
            verify(&s, &known, iter);
            // The recovered store keeps working and reopens cleanly.
            let (seq, _) = s
                .append("f.new", None, Bytes::from_static(b"after"), 1)
                .unwrap();
            s.commit().unwrap();
            assert!(seq > s.state().first_seq.saturating_sub(1));
            drop(s);
            let s = FileStore::open(&work, "F", cfg.clone()).unwrap();
            assert_eq!(
                s.get(seq).unwrap().unwrap().payload,
                Bytes::from_static(b"after")
            );
            std::fs::remove_dir_all(&work).unwrap();
        }
    }
}
