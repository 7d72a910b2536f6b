//! Model test: random append / delete / purge / limits sequences run against MemStore and
//! FileStore (tiny blocks, random clean or crash reopens), each compared after every step with
//! a naive `BTreeMap<u64, msg>` model.

use std::collections::BTreeMap;
use std::time::Duration;

use bytes::Bytes;
use petrel_store::{
    file_msg_size, mem_msg_size, FileStore, FileStoreConfig, MemStore, PurgeRequest, StoreLimits,
    StreamStore, SyncMode,
};
use proptest::prelude::*;

#[derive(Debug, Clone)]
enum Op {
    Append { subj: u8, len: u8, hdr: bool },
    Commit,
    Delete { pick: u16, erase: bool },
    PurgeAll,
    PurgeSubject { subj: u8, keep: Option<u8> },
    PurgeSeq { pick: u16 },
    PurgeKeep { keep: u8 },
    Limits { max_msgs: u8, per_subject: u8 },
    Reopen { clean: bool },
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        8 => (0u8..4, 0u8..40, any::<bool>()).prop_map(|(subj, len, hdr)| Op::Append { subj, len, hdr }),
        2 => Just(Op::Commit),
        3 => (any::<u16>(), any::<bool>()).prop_map(|(pick, erase)| Op::Delete { pick, erase }),
        1 => Just(Op::PurgeAll),
        1 => (0u8..5, proptest::option::of(0u8..3)).prop_map(|(subj, keep)| Op::PurgeSubject { subj, keep }),
        1 => any::<u16>().prop_map(|pick| Op::PurgeSeq { pick }),
        1 => (0u8..4).prop_map(|keep| Op::PurgeKeep { keep }),
        1 => (0u8..12, 0u8..4).prop_map(|(max_msgs, per_subject)| Op::Limits { max_msgs, per_subject }),
        2 => any::<bool>().prop_map(|clean| Op::Reopen { clean }),
    ]
}

type Msg = (String, Option<Bytes>, Bytes, i64);

#[derive(Default)]
struct Model {
    msgs: BTreeMap<u64, Msg>,
    last: u64,
    last_ts: i64,
    floor: u64,
    max_msgs: u64,
    per_subject: u64,
}

impl Model {
    fn enforce(&mut self, subject: Option<&str>) {
        if self.per_subject > 0 {
            let subjects: Vec<String> = match subject {
                Some(s) => vec![s.to_string()],
                None => self.msgs.values().map(|m| m.0.clone()).collect(),
            };
            for s in subjects {
                loop {
                    let seqs: Vec<u64> = self
                        .msgs
                        .iter()
                        .filter(|(_, m)| m.0 == s)
                        .map(|(q, _)| *q)
                        .collect();
                    if seqs.len() as u64 <= self.per_subject {
                        break;
                    }
                    self.msgs.remove(&seqs[0]);
                }
            }
        }
        while self.max_msgs > 0 && self.msgs.len() as u64 > self.max_msgs {
            self.msgs.pop_first();
        }
    }

    fn purge_matching(&mut self, filter: impl Fn(&str) -> bool, keep: Option<u64>) -> u64 {
        let seqs: Vec<u64> = self
            .msgs
            .iter()
            .filter(|(_, m)| filter(&m.0))
            .map(|(s, _)| *s)
            .collect();
        let n = seqs.len().saturating_sub(keep.unwrap_or(0) as usize);
        for s in &seqs[..n] {
            self.msgs.remove(s);
        }
        n as u64
    }

    fn check<S: StreamStore>(&self, s: &S, file: bool, step: usize) {
        let st = s.state();
        let size = |m: &Msg| {
            if file {
                file_msg_size(&m.0, m.1.as_deref(), &m.2)
            } else {
                mem_msg_size(&m.0, m.1.as_deref(), &m.2)
            }
        };
        let first = match self.msgs.first_key_value() {
            Some((s, _)) => *s,
            None if self.last == 0 => self.floor,
            None => self.last + 1,
        };
        assert_eq!(st.msgs, self.msgs.len() as u64, "step {step}");
        assert_eq!(
            st.bytes,
            self.msgs.values().map(size).sum::<u64>(),
            "step {step}"
        );
        assert_eq!(
            (st.first_seq, st.last_seq, st.last_ts),
            (first, self.last, self.last_ts),
            "step {step}"
        );
        assert_eq!(st.lost, None);
        let mut counts: BTreeMap<String, u64> = BTreeMap::new();
        for m in self.msgs.values() {
            *counts.entry(m.0.clone()).or_default() += 1;
        }
        assert_eq!(s.subjects_state(">"), counts, "step {step}");
        assert_eq!(s.num_pending(0, ""), self.msgs.len() as u64);
        for seq in 0..=self.last + 1 {
            let got = s.get(seq).unwrap();
            let want = self.msgs.get(&seq);
            match (got, want) {
                (None, None) => {}
                (Some(g), Some(w)) => {
                    assert_eq!(
                        (&g.subject, &g.headers, &g.payload, g.ts),
                        (&w.0, &w.1, &w.2, w.3),
                        "seq {seq}"
                    );
                }
                (g, w) => panic!("step {step} seq {seq}: got {g:?} want {w:?}"),
            }
        }
        for subj in counts.keys() {
            let want = self
                .msgs
                .iter()
                .rev()
                .find(|(_, m)| &m.0 == subj)
                .map(|(s, _)| *s);
            assert_eq!(s.last_by_subject(subj).unwrap().map(|m| m.seq), want);
        }
    }
}

fn limits(m: &Model) -> StoreLimits {
    StoreLimits {
        max_msgs: if m.max_msgs == 0 {
            -1
        } else {
            m.max_msgs as i64
        },
        max_msgs_per_subject: if m.per_subject == 0 {
            -1
        } else {
            m.per_subject as i64
        },
        max_age: Duration::ZERO,
        ..StoreLimits::default()
    }
}

fn run(ops: &[Op], always: bool) {
    let dir = tempfile::tempdir().unwrap();
    let cfg = FileStoreConfig {
        block_size: 150,
        sync: if always {
            SyncMode::Always
        } else {
            SyncMode::Interval(Duration::from_secs(60))
        },
        checkpoint_every: 5,
        // Half the cases store compressible bodies compressed (compression: s2).
        compress: ops.len().is_multiple_of(2),
    };
    let mut fs = FileStore::open(dir.path(), "M", cfg.clone()).unwrap();
    let mut ms = MemStore::new();
    let mut m = Model::default();
    let mut ts = 0i64;
    for (step, op) in ops.iter().enumerate() {
        match op {
            Op::Append { subj, len, hdr } => {
                ts += 1;
                let subject = format!("s.{subj}");
                let h = hdr.then(|| Bytes::from(format!("NATS/1.0\r\nX: {ts}\r\n\r\n")));
                let p = Bytes::from(vec![*len; *len as usize]);
                let a = fs.append(&subject, h.clone(), p.clone(), ts).unwrap();
                let b = ms.append(&subject, h.clone(), p.clone(), ts).unwrap();
                m.last += 1;
                m.last_ts = ts;
                assert_eq!(a, (m.last, ts));
                assert_eq!(b, (m.last, ts));
                m.msgs.insert(m.last, (subject.clone(), h, p, ts));
                m.enforce(Some(&subject));
            }
            Op::Commit => fs.commit().unwrap(),
            Op::Delete { pick, erase } => {
                let seq = if m.msgs.is_empty() {
                    u64::from(*pick % 4)
                } else {
                    *m.msgs.keys().nth(*pick as usize % m.msgs.len()).unwrap()
                };
                let want = m.msgs.remove(&seq).is_some();
                assert_eq!(fs.delete(seq, *erase).unwrap(), want);
                assert_eq!(ms.delete(seq, *erase).unwrap(), want);
            }
            Op::PurgeAll => {
                let n = m.msgs.len() as u64;
                m.msgs.clear();
                m.floor = m.floor.max(m.last + 1);
                assert_eq!(fs.purge(PurgeRequest::default()).unwrap(), n);
                assert_eq!(ms.purge(PurgeRequest::default()).unwrap(), n);
            }
            Op::PurgeSubject { subj, keep } => {
                let filter = if *subj == 4 {
                    "s.*".to_string()
                } else {
                    format!("s.{subj}")
                };
                let f2 = filter.clone();
                let n = m.purge_matching(move |s| f2 == "s.*" || s == f2, keep.map(u64::from));
                let req = PurgeRequest {
                    subject: Some(filter),
                    seq: None,
                    keep: keep.map(u64::from),
                };
                assert_eq!(fs.purge(req.clone()).unwrap(), n, "step {step}");
                assert_eq!(ms.purge(req).unwrap(), n);
            }
            Op::PurgeSeq { pick } => {
                let s = u64::from(*pick) % (m.last + 4);
                let n;
                if s == 0 {
                    // `seq: 0` means "not set": purge everything (nats-server).
                    n = m.msgs.len() as u64;
                    m.msgs.clear();
                    m.floor = m.floor.max(m.last + 1);
                } else {
                    let below: Vec<u64> = m.msgs.range(..s).map(|(q, _)| *q).collect();
                    n = below.len() as u64;
                    for q in below {
                        m.msgs.remove(&q);
                    }
                    m.floor = m.floor.max(s);
                    m.last = m.last.max(s - 1);
                }
                let req = PurgeRequest {
                    seq: Some(s),
                    ..Default::default()
                };
                assert_eq!(fs.purge(req.clone()).unwrap(), n, "step {step}");
                assert_eq!(ms.purge(req).unwrap(), n);
            }
            Op::PurgeKeep { keep } => {
                let n = m.purge_matching(|_| true, Some(u64::from(*keep)));
                if *keep == 0 {
                    m.floor = m.floor.max(m.last + 1);
                }
                let req = PurgeRequest {
                    keep: Some(u64::from(*keep)),
                    ..Default::default()
                };
                assert_eq!(fs.purge(req.clone()).unwrap(), n);
                assert_eq!(ms.purge(req).unwrap(), n);
            }
            Op::Limits {
                max_msgs,
                per_subject,
            } => {
                m.max_msgs = u64::from(*max_msgs);
                m.per_subject = u64::from(*per_subject);
                m.enforce(None);
                fs.set_limits(limits(&m)).unwrap();
                ms.set_limits(limits(&m)).unwrap();
            }
            Op::Reopen { clean } => {
                if *clean {
                    fs.close().unwrap();
                } else {
                    fs.commit().unwrap();
                }
                drop(fs);
                fs = FileStore::open(dir.path(), "M", cfg.clone()).unwrap();
                fs.set_limits(limits(&m)).unwrap();
            }
        }
        m.check(&fs, true, step);
        m.check(&ms, false, step);
    }
    fs.commit().unwrap();
    drop(fs);
    let fs = FileStore::open(dir.path(), "M", cfg).unwrap();
    m.check(&fs, true, usize::MAX);
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 128, ..ProptestConfig::default() })]

    #[test]
    fn stores_match_the_model(ops in proptest::collection::vec(op(), 1..80), always in any::<bool>()) {
        run(&ops, always);
    }
}
