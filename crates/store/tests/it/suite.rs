//! The shared suite: every test is a generic function over a [`Harness`], instantiated by the
//! `suite!` macro for the memory store, the file store, and the file store with tiny blocks
//! and crash-style reopens. Reopens are sprinkled in: they are no-ops for memory.

use std::time::Duration;

use bytes::Bytes;
use petrel_store::{Discard, PurgeRequest, StoreError, StoreLimits, StreamStore};

use crate::harness::{b, File, Harness, Mem, SmallFile};

fn fill<S: StreamStore>(s: &mut S, subjects: &[&str], payload: &str) -> Vec<u64> {
    let mut seqs = Vec::new();
    for (i, subj) in subjects.iter().enumerate() {
        seqs.push(s.append(subj, None, b(payload), 1000 + i as i64).unwrap().0);
    }
    s.commit().unwrap();
    seqs
}

pub fn fresh_state<H: Harness>() {
    let mut h = H::new();
    let s = h.open();
    let st = s.state();
    assert_eq!((st.msgs, st.bytes, st.first_seq, st.last_seq), (0, 0, 0, 0));
    assert_eq!(st.lost, None);
    assert!(s.get(1).unwrap().is_none());
}

pub fn append_get<H: Harness>() {
    let mut h = H::new();
    let mut s = h.open();
    let hdr = b("NATS/1.0\r\nA: b\r\n\r\n");
    assert_eq!(s.append("a.b", None, b("one"), 10).unwrap(), (1, 10));
    assert_eq!(
        s.append("a.c", Some(hdr.clone()), b("two"), 20).unwrap(),
        (2, 20)
    );
    assert_eq!(
        s.append("a.b", Some(Bytes::new()), b(""), 30).unwrap(),
        (3, 30)
    );
    s.commit().unwrap();
    for round in 0..2 {
        let m = s.get(2).unwrap().unwrap();
        assert_eq!((m.seq, m.ts, m.subject.as_str()), (2, 20, "a.c"));
        assert_eq!(m.headers, Some(hdr.clone()));
        assert_eq!(m.payload, b("two"));
        let m3 = s.get(3).unwrap().unwrap();
        assert_eq!((m3.headers, m3.payload.len()), (None, 0), "round {round}");
        assert!(s.get(0).unwrap().is_none());
        assert!(s.get(4).unwrap().is_none());
        let st = s.state();
        assert_eq!(
            (st.msgs, st.first_seq, st.first_ts, st.last_seq, st.last_ts),
            (3, 1, 10, 3, 30)
        );
        assert_eq!(st.num_subjects, 2);
        let want = H::size("a.b", None, b"one")
            + H::size("a.c", Some(&hdr), b"two")
            + H::size("a.b", None, b"");
        assert_eq!(st.bytes, want);
        s = h.reopen(s);
    }
    assert!(matches!(
        s.append("", None, b("x"), 1),
        Err(StoreError::InvalidSubject)
    ));
}

pub fn bytes_match_nats_server<H: Harness>() {
    let mut h = H::new();
    let mut s = h.open();
    fill(&mut s, &["S1", "S1", "S1"], "x0");
    let want = if H::FILE { 102 } else { 3 * 20 };
    assert_eq!(s.state().bytes, want);
    s = h.reopen(s);
    assert_eq!(s.state().bytes, want);
    s.append(
        "$KV.b.k1",
        Some(Bytes::from(vec![b'h'; 51])),
        Bytes::new(),
        5,
    )
    .unwrap();
    let kv = if H::FILE { 93 } else { 8 + 51 + 16 };
    assert_eq!(s.state().bytes, want + kv);
}

pub fn delete_and_erase<H: Harness>() {
    let mut h = H::new();
    let mut s = h.open();
    fill(&mut s, &["a", "b", "c", "d", "e"], "pp");
    assert!(s.delete(3, false).unwrap());
    assert!(!s.delete(3, false).unwrap());
    assert!(!s.delete(99, true).unwrap());
    assert!(s.delete(4, true).unwrap());
    let check = |s: &H::S| {
        let st = s.state();
        assert_eq!(
            (st.msgs, st.first_seq, st.last_seq, st.num_deleted),
            (3, 1, 5, 2)
        );
        assert_eq!(st.bytes, 3 * H::size("a", None, b"pp"));
        assert!(s.get(3).unwrap().is_none());
        assert!(s.get(4).unwrap().is_none());
        assert_eq!(s.get(5).unwrap().unwrap().subject, "e");
    };
    check(&s);
    s = h.reopen(s);
    check(&s);
    assert!(s.delete(1, false).unwrap());
    s = h.reopen(s);
    let st = s.state();
    assert_eq!((st.msgs, st.first_seq, st.num_deleted), (2, 2, 2));
    assert!(s.delete(5, false).unwrap());
    assert!(s.delete(2, false).unwrap());
    s = h.reopen(s);
    let st = s.state();
    assert_eq!(
        (st.msgs, st.first_seq, st.last_seq, st.first_ts),
        (0, 6, 5, 0)
    );
    assert_eq!(s.append("f", None, b("x"), 9).unwrap().0, 6);
}

pub fn subject_queries<H: Harness>() {
    let mut h = H::new();
    let mut s = h.open();
    fill(
        &mut s,
        &[
            "orders.new",
            "orders.paid",
            "users.1",
            "orders.new",
            "orders.x.y",
            "users.2",
        ],
        "v",
    );
    for _ in 0..2 {
        assert_eq!(s.last_by_subject("orders.new").unwrap().unwrap().seq, 4);
        assert!(s.last_by_subject("nope").unwrap().is_none());
        assert_eq!(s.next_by_subject(1, "users.*").unwrap().unwrap().seq, 3);
        assert_eq!(s.next_by_subject(4, "users.*").unwrap().unwrap().seq, 6);
        assert!(s.next_by_subject(7, "users.*").unwrap().is_none());
        assert_eq!(s.next_by_subject(2, "orders.new").unwrap().unwrap().seq, 4);
        assert_eq!(s.next_by_subject(5, "orders.>").unwrap().unwrap().seq, 5);
        assert_eq!(s.next_by_subject(0, ">").unwrap().unwrap().seq, 1);
        assert_eq!(s.next_by_subject(2, "").unwrap().unwrap().seq, 2);
        assert_eq!(s.num_pending(1, "orders.*"), 3);
        assert_eq!(s.num_pending(1, "orders.>"), 4);
        assert_eq!(s.num_pending(4, ">"), 3);
        assert_eq!(s.num_pending(0, "*.1"), 1);
        let ss = s.subjects_state("orders.*");
        assert_eq!(ss.len(), 2);
        assert_eq!(ss["orders.new"], 2);
        assert_eq!(s.subjects_state(">").len(), 5);
        assert_eq!(s.state().num_subjects, 5);
        s = h.reopen(s);
    }
    s.delete(4, false).unwrap();
    assert_eq!(s.last_by_subject("orders.new").unwrap().unwrap().seq, 1);
    assert_eq!(s.subjects_state("orders.new")["orders.new"], 1);
}

pub fn wildcard_scan_many_subjects<H: Harness>() {
    let mut h = H::new();
    let mut s = h.open();
    for i in 0..600 {
        s.append(&format!("noise.{i}"), None, b("n"), i).unwrap();
    }
    s.append("hit.1", None, b("h"), 700).unwrap();
    s.commit().unwrap();
    assert_eq!(s.next_by_subject(1, "hit.*").unwrap().unwrap().seq, 601);
    assert_eq!(s.next_by_subject(1, "*.599").unwrap().unwrap().seq, 600);
    assert!(s.next_by_subject(1, "none.*").unwrap().is_none());
}

pub fn purge_variants<H: Harness>() {
    let mut h = H::new();
    let mut s = h.open();
    let subj = ["a.1", "b.1", "a.2", "b.2", "a.1", "b.1", "a.2", "b.2"];
    fill(&mut s, &subj, "x");
    assert_eq!(
        s.purge(PurgeRequest {
            subject: Some("b.*".into()),
            ..Default::default()
        })
        .unwrap(),
        4
    );
    s = h.reopen(s);
    assert_eq!(s.state().msgs, 4);
    assert_eq!(s.num_pending(0, "b.>"), 0);
    // keep newest 1 of subject a.1 (seqs 1, 5)
    let n = s
        .purge(PurgeRequest {
            subject: Some("a.1".into()),
            keep: Some(1),
            ..Default::default()
        })
        .unwrap();
    assert_eq!(n, 1);
    assert!(s.get(1).unwrap().is_none());
    // subject + seq: a.2 below 7 → seq 3
    let n = s
        .purge(PurgeRequest {
            subject: Some("a.2".into()),
            seq: Some(7),
            ..Default::default()
        })
        .unwrap();
    assert_eq!(n, 1);
    s = h.reopen(s);
    let st = s.state();
    assert_eq!((st.msgs, st.first_seq, st.last_seq), (2, 5, 8));
    // keep all: nothing
    assert_eq!(
        s.purge(PurgeRequest {
            keep: Some(5),
            ..Default::default()
        })
        .unwrap(),
        0
    );
    assert_eq!(
        s.purge(PurgeRequest {
            keep: Some(1),
            ..Default::default()
        })
        .unwrap(),
        1
    );
    assert_eq!(s.state().first_seq, 7);
    // purge all
    assert_eq!(s.purge(PurgeRequest::default()).unwrap(), 1);
    for _ in 0..2 {
        let st = s.state();
        assert_eq!(
            (
                st.msgs,
                st.bytes,
                st.first_seq,
                st.last_seq,
                st.num_subjects
            ),
            (0, 0, 9, 8, 0)
        );
        s = h.reopen(s);
    }
    assert_eq!(s.append("z", None, b("x"), 1).unwrap().0, 9);
}

pub fn purge_seq_compacts<H: Harness>() {
    let mut h = H::new();
    let mut s = h.open();
    fill(&mut s, &["a", "b", "c", "d"], "x");
    assert_eq!(
        s.purge(PurgeRequest {
            seq: Some(3),
            ..Default::default()
        })
        .unwrap(),
        2
    );
    assert_eq!(s.state().first_seq, 3);
    s = h.reopen(s);
    assert_eq!((s.state().first_seq, s.state().msgs), (3, 2));
    // Past the end: empties the stream and restarts at that sequence.
    assert_eq!(
        s.purge(PurgeRequest {
            seq: Some(100),
            ..Default::default()
        })
        .unwrap(),
        2
    );
    s = h.reopen(s);
    let st = s.state();
    assert_eq!((st.msgs, st.first_seq, st.last_seq), (0, 100, 99));
    assert_eq!(s.append("a", None, b("x"), 1).unwrap().0, 100);
}

pub fn first_seq<H: Harness>() {
    let mut h = H::new();
    let mut s = h.open();
    s.set_first_seq(0).unwrap();
    s.set_first_seq(1000).unwrap();
    assert_eq!(s.state().first_seq, 1000);
    s = h.reopen(s);
    assert_eq!((s.state().first_seq, s.state().last_seq), (1000, 999));
    s.set_first_seq(1000).unwrap();
    assert_eq!(s.append("a", None, b("x"), 1).unwrap().0, 1000);
    assert!(matches!(
        s.set_first_seq(5000),
        Err(StoreError::InvalidFirstSeq { .. })
    ));
    s = h.reopen(s);
    assert_eq!(s.get(1000).unwrap().unwrap().subject, "a");
    assert_eq!(s.append("a", None, b("x"), 2).unwrap().0, 1001);
}

pub fn limits_discard_old<H: Harness>() {
    let mut h = H::new();
    let mut s = h.open();
    s.set_limits(StoreLimits {
        max_msgs: 3,
        ..Default::default()
    })
    .unwrap();
    fill(&mut s, &["a", "b", "c", "d", "e"], "x");
    s = h.reopen(s);
    let st = s.state();
    assert_eq!((st.msgs, st.first_seq, st.last_seq), (3, 3, 5));
    let one = H::size("a", None, b"xx");
    s.set_limits(StoreLimits {
        max_bytes: (2 * one) as i64,
        ..Default::default()
    })
    .unwrap();
    assert_eq!(s.state().msgs, 2);
    fill(&mut s, &["f", "g"], "xx");
    s = h.reopen(s);
    let st = s.state();
    assert_eq!((st.msgs, st.first_seq, st.bytes), (2, 6, 2 * one));
    // A message larger than max_bytes pushes everything out, itself included (nats-server).
    s.append("h", None, Bytes::from(vec![0u8; 100]), 1).unwrap();
    assert_eq!(s.state().msgs, 0);
}

pub fn limits_discard_new<H: Harness>() {
    let mut h = H::new();
    let mut s = h.open();
    s.set_limits(StoreLimits {
        max_msgs: 2,
        discard: Discard::New,
        ..Default::default()
    })
    .unwrap();
    fill(&mut s, &["a", "b"], "x");
    assert!(matches!(
        s.append("c", None, b("x"), 1),
        Err(StoreError::MaxMsgs)
    ));
    s = h.reopen(s);
    assert_eq!((s.state().msgs, s.state().last_seq), (2, 2));
    // Bytes: nats-server refuses when bytes + len(hdr + payload) >= max_bytes.
    let one = H::size("a", None, b"x");
    s.set_limits(StoreLimits {
        max_bytes: (2 * one + 2) as i64,
        discard: Discard::New,
        ..Default::default()
    })
    .unwrap();
    s.append("c", None, b("x"), 1).unwrap();
    assert!(matches!(
        s.append("d", None, b("xx"), 1),
        Err(StoreError::MaxBytes)
    ));
    assert!(matches!(
        s.append("d", None, b("x"), 1),
        Err(StoreError::MaxBytes)
    ));
    s.set_limits(StoreLimits {
        max_msg_size: 3,
        ..Default::default()
    })
    .unwrap();
    assert!(matches!(
        s.append("d", Some(b("hh")), b("xx"), 1),
        Err(StoreError::MsgTooLarge)
    ));
    s.append("d", Some(b("h")), b("xx"), 1).unwrap();
    assert_eq!(s.state().msgs, 4);
}

pub fn limits_per_subject<H: Harness>() {
    let mut h = H::new();
    let mut s = h.open();
    s.set_limits(StoreLimits {
        max_msgs_per_subject: 2,
        ..Default::default()
    })
    .unwrap();
    fill(&mut s, &["k.1", "k.2", "k.1", "k.1", "k.2", "k.1"], "v");
    s = h.reopen(s);
    assert_eq!(s.subjects_state(">")["k.1"], 2);
    assert!(s.get(1).unwrap().is_none());
    assert!(s.get(3).unwrap().is_none());
    assert_eq!(s.state().msgs, 4);
    s.set_limits(StoreLimits {
        max_msgs_per_subject: 1,
        ..Default::default()
    })
    .unwrap();
    assert_eq!(s.state().msgs, 2);
    assert_eq!(s.last_by_subject("k.1").unwrap().unwrap().seq, 6);
    // discard new per subject
    s.set_limits(StoreLimits {
        max_msgs_per_subject: 1,
        discard: Discard::New,
        discard_new_per_subject: true,
        ..Default::default()
    })
    .unwrap();
    assert!(matches!(
        s.append("k.1", None, b("v"), 1),
        Err(StoreError::MaxMsgsPerSubject)
    ));
    s.append("k.3", None, b("v"), 1).unwrap();
    // discard new without per-subject: the subject's oldest is replaced, even at max_msgs.
    s.set_limits(StoreLimits {
        max_msgs: 3,
        max_msgs_per_subject: 1,
        discard: Discard::New,
        ..Default::default()
    })
    .unwrap();
    let (seq, _) = s.append("k.1", None, b("v"), 1).unwrap();
    assert_eq!(s.last_by_subject("k.1").unwrap().unwrap().seq, seq);
    assert_eq!(s.state().msgs, 3);
    assert!(matches!(
        s.append("k.9", None, b("v"), 1),
        Err(StoreError::MaxMsgs)
    ));
}

pub fn max_age_expiry<H: Harness>() {
    let mut h = H::new();
    let mut s = h.open();
    s.set_limits(StoreLimits {
        max_age: Duration::from_nanos(100),
        ..Default::default()
    })
    .unwrap();
    for ts in [10, 20, 30, 200, 210] {
        s.append("a", None, b("x"), ts).unwrap();
    }
    s.commit().unwrap();
    assert_eq!(s.expire(100).unwrap(), 0);
    assert_eq!(s.expire(125).unwrap(), 2);
    s = h.reopen(s);
    assert_eq!(s.state().first_seq, 3);
    assert_eq!(s.expire(1000).unwrap(), 3);
    let st = s.state();
    assert_eq!(
        (st.msgs, st.first_seq, st.last_seq, st.last_ts),
        (0, 6, 5, 210)
    );
    s = h.reopen(s);
    assert_eq!(s.state().last_ts, 210);
}

pub fn skip_to<H: Harness>() {
    let mut h = H::new();
    let mut s = h.open();
    // Empty: the skipped sequences are below the first.
    s.skip_to(5, 1).unwrap();
    assert_eq!(s.append("a", None, b("x"), 2).unwrap().0, 5);
    s.append("a", None, b("y"), 3).unwrap();
    s.commit().unwrap();
    // A gap after live messages, durable with the commit.
    s.skip_to(10, 4).unwrap();
    s.skip_to(3, 4).unwrap();
    assert_eq!(s.state().last_seq, 9);
    s.commit().unwrap();
    s = h.reopen(s);
    let st = s.state();
    assert_eq!(
        (st.msgs, st.first_seq, st.last_seq, st.num_deleted),
        (2, 5, 9, 3)
    );
    assert_eq!(s.append("a", None, b("z"), 5).unwrap().0, 10);
    s.commit().unwrap();
    s = h.reopen(s);
    assert_eq!(s.get(10).unwrap().unwrap().payload, b("z"));
    assert!(s.get(8).unwrap().is_none());
    // Everything deleted, then a skip: a new first sequence.
    s.purge(petrel_store::PurgeRequest::default()).unwrap();
    s.skip_to(20, 6).unwrap();
    s.commit().unwrap();
    s = h.reopen(s);
    assert_eq!(s.state().last_seq, 19);
    assert_eq!(s.append("a", None, b("w"), 7).unwrap().0, 20);
    assert!(matches!(
        s.skip_to(u64::MAX, 8),
        Err(StoreError::SequenceExhausted)
    ));
}

pub fn many_messages_reopen<H: Harness>() {
    let mut h = H::new();
    let mut s = h.open();
    for i in 0..300u64 {
        let hdr = (i % 3 == 0).then(|| b("NATS/1.0\r\n\r\n"));
        s.append(
            &format!("s.{}", i % 7),
            hdr,
            Bytes::from(vec![i as u8; (i % 50) as usize]),
            i as i64,
        )
        .unwrap();
        if i % 10 == 0 {
            s.commit().unwrap();
        }
    }
    s.commit().unwrap();
    for seq in (1..=300).step_by(4) {
        s.delete(seq, seq % 8 == 1).unwrap();
    }
    let before = s.state();
    s = h.reopen(s);
    assert_eq!(s.state(), before);
    for seq in 1..=300u64 {
        let i = seq - 1;
        match s.get(seq).unwrap() {
            Some(m) => {
                assert_ne!(seq % 4, 1);
                assert_eq!(m.payload.len() as u64, i % 50);
                assert_eq!(m.subject, format!("s.{}", i % 7));
            }
            None => assert_eq!(seq % 4, 1),
        }
    }
}

macro_rules! suite {
    ($m:ident, $h:ty) => {
        mod $m {
            use super::*;
            #[test]
            fn fresh_state() {
                super::fresh_state::<$h>()
            }
            #[test]
            fn append_get() {
                super::append_get::<$h>()
            }
            #[test]
            fn bytes_match_nats_server() {
                super::bytes_match_nats_server::<$h>()
            }
            #[test]
            fn delete_and_erase() {
                super::delete_and_erase::<$h>()
            }
            #[test]
            fn subject_queries() {
                super::subject_queries::<$h>()
            }
            #[test]
            fn wildcard_scan_many_subjects() {
                super::wildcard_scan_many_subjects::<$h>()
            }
            #[test]
            fn purge_variants() {
                super::purge_variants::<$h>()
            }
            #[test]
            fn purge_seq_compacts() {
                super::purge_seq_compacts::<$h>()
            }
            #[test]
            fn first_seq() {
                super::first_seq::<$h>()
            }
            #[test]
            fn skip_to() {
                super::skip_to::<$h>()
            }
            #[test]
            fn limits_discard_old() {
                super::limits_discard_old::<$h>()
            }
            #[test]
            fn limits_discard_new() {
                super::limits_discard_new::<$h>()
            }
            #[test]
            fn limits_per_subject() {
                super::limits_per_subject::<$h>()
            }
            #[test]
            fn max_age_expiry() {
                super::max_age_expiry::<$h>()
            }
            #[test]
            fn many_messages_reopen() {
                super::many_messages_reopen::<$h>()
            }
        }
    };
}

suite!(mem, Mem);
suite!(file, File);
suite!(file_small_blocks, SmallFile);
