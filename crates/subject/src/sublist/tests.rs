//! Sublist unit tests and the property test against the naive matcher.

use super::*;
use crate::token::matches;
use proptest::prelude::*;

/// Plain ids and (queue, ids) groups, sorted for comparison.
type Ids = (Vec<u32>, Vec<(Vec<u8>, Vec<u32>)>);

fn ids(r: &SublistResult<u32>) -> Ids {
    let mut p = r.psubs.clone();
    p.sort_unstable();
    let mut q: Vec<(Vec<u8>, Vec<u32>)> = r
        .qsubs
        .iter()
        .map(|(n, s)| {
            let mut s = s.clone();
            s.sort_unstable();
            (n.to_vec(), s)
        })
        .collect();
    q.sort();
    (p, q)
}

#[test]
fn plain_and_wildcards() {
    let mut s = Sublist::new();
    s.insert(b"foo.bar", None, 1).unwrap();
    s.insert(b"foo.*", None, 2).unwrap();
    s.insert(b"foo.>", None, 3).unwrap();
    s.insert(b">", None, 4).unwrap();
    s.insert(b"*.*", None, 5).unwrap();
    s.insert(b"foo", None, 6).unwrap();
    assert_eq!(ids(&s.match_subject(b"foo.bar")).0, vec![1, 2, 3, 4, 5]);
    assert_eq!(ids(&s.match_subject(b"foo.bar.baz")).0, vec![3, 4]);
    assert_eq!(ids(&s.match_subject(b"foo")).0, vec![4, 6]);
    assert!(s.match_subject(b"foo..bar").is_empty());
    assert_eq!(s.count(), 6);
}

#[test]
fn queue_groups_span_subjects() {
    let mut s = Sublist::new();
    s.insert(b"chat.workflow.execute.*", Some(b"workflow-workers"), 1)
        .unwrap();
    s.insert(b"chat.workflow.execute.*", Some(b"workflow-workers"), 2)
        .unwrap();
    s.insert(b"chat.workflow.>", Some(b"workflow-workers"), 3)
        .unwrap();
    s.insert(b"chat.workflow.execute.run", Some(b"other"), 4)
        .unwrap();
    let r = s.match_subject(b"chat.workflow.execute.run");
    let (_, q) = ids(&r);
    assert_eq!(
        q,
        vec![
            (b"other".to_vec(), vec![4]),
            (b"workflow-workers".to_vec(), vec![1, 2, 3])
        ]
    );
}

#[test]
fn remove_prunes_and_bumps_generation() {
    let mut s = Sublist::new();
    let g0 = s.generation();
    s.insert(b"a.b.c", None, 1).unwrap();
    s.insert(b"a.*.c", Some(b"q"), 2).unwrap();
    assert!(s.generation() > g0);
    assert!(!s.remove(b"a.b.c", None, &9));
    assert!(!s.remove(b"a.b.c", Some(b"q"), &1));
    assert!(s.remove(b"a.b.c", None, &1));
    assert!(s.remove(b"a.*.c", Some(b"q"), &2));
    assert_eq!(s.count(), 0);
    assert!(s.root.is_empty());
    assert!(s.insert(b"a..b", None, 3).is_err());
    assert!(s.insert(b">.a", None, 3).is_err());
    // Only successful changes are counted (monitoring's num_inserts / num_removes).
    assert_eq!((s.inserts(), s.removes()), (2, 2));
}

#[test]
fn for_each_visits_every_subscription() {
    let mut s = Sublist::new();
    for (i, (subject, queue)) in [
        ("a", None),
        ("a.b", None),
        ("a.*", Some(&b"q"[..])),
        ("a.*", Some(&b"q"[..])),
        ("a.>", None),
        (">", None),
        ("*.c.d", None),
    ]
    .into_iter()
    .enumerate()
    {
        s.insert(subject.as_bytes(), queue, i as u32).unwrap();
    }
    let mut seen = Vec::new();
    s.for_each(|&id| seen.push(id));
    seen.sort_unstable();
    assert_eq!(seen, (0..7).collect::<Vec<u32>>());
}

fn token() -> impl Strategy<Value = &'static str> {
    prop_oneof![Just("a"), Just("b"), Just("c"), Just("*"), Just(">")]
}

fn pattern() -> impl Strategy<Value = String> {
    proptest::collection::vec(token(), 1..5).prop_map(|t| t.join("."))
}

fn literal() -> impl Strategy<Value = String> {
    proptest::collection::vec(
        prop_oneof![Just("a"), Just("b"), Just("c"), Just("d")],
        1..6,
    )
    .prop_map(|t| t.join("."))
}

proptest! {
    /// Inserting and removing random subscriptions, the trie answers like a naive scan.
    #[test]
    fn sublist_matches_naive_model(
        subs in proptest::collection::vec((pattern(), proptest::option::of(prop_oneof![Just("q1"), Just("q2")])), 0..40),
        removes in proptest::collection::vec(any::<prop::sample::Index>(), 0..20),
        probes in proptest::collection::vec(literal(), 1..20),
    ) {
        let mut s = Sublist::new();
        let mut model: Vec<(String, Option<&str>, u32)> = Vec::new();
        for (i, (p, q)) in subs.iter().enumerate() {
            let ok = s.insert(p.as_bytes(), q.map(str::as_bytes), i as u32).is_ok();
            prop_assert_eq!(ok, crate::token::is_valid_subject(p.as_bytes()));
            if ok {
                model.push((p.clone(), *q, i as u32));
            }
        }
        for idx in removes {
            if model.is_empty() { break; }
            let (p, q, id) = model.remove(idx.index(model.len()));
            prop_assert!(s.remove(p.as_bytes(), q.map(str::as_bytes), &id));
        }
        prop_assert_eq!(s.count(), model.len());
        for probe in probes {
            let mut want_p: Vec<u32> = Vec::new();
            let mut want_q: Vec<(Vec<u8>, Vec<u32>)> = Vec::new();
            for (p, q, id) in &model {
                if !matches(p.as_bytes(), probe.as_bytes()) { continue; }
                match q {
                    None => want_p.push(*id),
                    Some(q) => match want_q.iter_mut().find(|(n, _)| n == q.as_bytes()) {
                        Some((_, g)) => g.push(*id),
                        None => want_q.push((q.as_bytes().to_vec(), vec![*id])),
                    },
                }
            }
            want_p.sort_unstable();
            for (_, g) in &mut want_q { g.sort_unstable(); }
            want_q.sort();
            let got = ids(&s.match_subject(probe.as_bytes()));
            prop_assert_eq!(got, (want_p, want_q), "probe {}", probe);
        }
    }
}
