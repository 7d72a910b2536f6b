//! The ack bookkeeping of one consumer, free of I/O: delivered sequences, the ack floor, the
//! pending (delivered, un-acked) set with delivery counts and deadlines, the redelivery
//! queue, and what every ack body does to them. Time comes in as arguments, so the rules are
//! unit-tested without clocks.

use std::cmp::Reverse;
use std::collections::{BTreeMap, BTreeSet, BinaryHeap};
use std::time::Duration;
use tokio::time::Instant;

use super::config::AckPolicy;
use crate::time::deadline;

/// One delivered, un-acked message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Pending {
    /// Consumer sequence of its latest delivery.
    pub dseq: u64,
    /// Wall-clock time of its latest delivery (Unix ns).
    pub ts: i64,
    /// Deliveries so far.
    pub dc: u64,
    /// When it is redelivered if not acked.
    pub deadline: Instant,
}

/// Sequences, floor, pending set and redelivery queue.
#[derive(Debug)]
pub(crate) struct Acks {
    pub policy: AckPolicy,
    ack_wait: Duration,
    backoff: Vec<Duration>,
    pub max_deliver: i64,
    /// Last consumer sequence assigned (`delivered.consumer_seq`).
    pub dseq: u64,
    /// Highest stream sequence delivered (`delivered.stream_seq`).
    pub dsseq: u64,
    /// Ack floor: consumer and stream sequence.
    pub adflr: u64,
    pub asflr: u64,
    pub pending: BTreeMap<u64, Pending>,
    /// Due for redelivery, oldest stream sequence first.
    pub rdq: BTreeSet<u64>,
    timers: BinaryHeap<Reverse<(Instant, u64)>>,
}

fn ns(v: i64) -> Duration {
    Duration::from_nanos(u64::try_from(v).unwrap_or(0))
}

impl Acks {
    /// Empty state; `ack_wait` and `backoff` in ns.
    pub fn new(policy: AckPolicy, ack_wait: i64, backoff: &[i64], max_deliver: i64) -> Acks {
        Acks {
            policy,
            ack_wait: ns(ack_wait),
            backoff: backoff.iter().map(|b| ns(*b)).collect(),
            max_deliver,
            dseq: 0,
            dsseq: 0,
            adflr: 0,
            asflr: 0,
            pending: BTreeMap::new(),
            rdq: BTreeSet::new(),
            timers: BinaryHeap::new(),
        }
    }

    /// Applies an updated ack_wait / backoff / max_deliver.
    pub fn reconfigure(&mut self, ack_wait: i64, backoff: &[i64], max_deliver: i64) {
        self.ack_wait = ns(ack_wait);
        self.backoff = backoff.iter().map(|b| ns(*b)).collect();
        self.max_deliver = max_deliver;
    }

    /// How long the `dc`-th delivery waits for its ack (backoff step or ack_wait).
    pub fn wait_for(&self, dc: u64) -> Duration {
        if self.backoff.is_empty() {
            return self.ack_wait;
        }
        let i = (dc.saturating_sub(1) as usize).min(self.backoff.len() - 1);
        self.backoff[i]
    }

    /// Records a delivery of `sseq` (first or repeated); returns `(dseq, dc)`.
    pub fn delivered(&mut self, sseq: u64, now: Instant, wall: i64) -> (u64, u64) {
        self.dseq = self.dseq.saturating_add(1);
        let dseq = self.dseq;
        self.dsseq = self.dsseq.max(sseq);
        if self.policy == AckPolicy::None {
            self.adflr = dseq;
            self.asflr = self.dsseq;
            return (dseq, 1);
        }
        let dc = self
            .pending
            .get(&sseq)
            .map_or(0, |p| p.dc)
            .saturating_add(1);
        let deadline = deadline(now, self.wait_for(dc));
        self.pending.insert(
            sseq,
            Pending {
                dseq,
                ts: wall,
                dc,
                deadline,
            },
        );
        self.timers.push(Reverse((deadline, sseq)));
        self.update_floor();
        (dseq, dc)
    }

    /// The next message due for redelivery. Call [`Acks::take_exhausted`] first: what is
    /// queued then has deliveries left.
    pub fn next_redelivery(&mut self) -> Option<u64> {
        self.rdq.pop_first()
    }

    /// Drops every queued redelivery that reached max_deliver; returns `(sseq, dc)` of each
    /// (an advisory is due for every one).
    pub fn take_exhausted(&mut self) -> Vec<(u64, u64)> {
        if self.max_deliver <= 0 {
            return Vec::new();
        }
        let max = self.max_deliver as u64;
        let gone: Vec<(u64, u64)> = self
            .rdq
            .iter()
            .filter_map(|s| {
                self.pending
                    .get(s)
                    .filter(|p| p.dc >= max)
                    .map(|p| (*s, p.dc))
            })
            .collect();
        for (s, _) in &gone {
            self.rdq.remove(s);
            self.pending.remove(s);
        }
        if !gone.is_empty() {
            self.update_floor();
        }
        gone
    }

    /// Forgets `sseq` (its message is gone from the stream).
    pub fn forget(&mut self, sseq: u64) {
        self.rdq.remove(&sseq);
        if self.pending.remove(&sseq).is_some() {
            self.update_floor();
        }
    }

    /// Moves every pending message past its deadline to the redelivery queue.
    pub fn expire(&mut self, now: Instant) {
        while let Some(Reverse((at, sseq))) = self.timers.peek().copied() {
            if at > now {
                break;
            }
            self.timers.pop();
            if let Some(p) = self.pending.get(&sseq) {
                if p.deadline <= now {
                    self.rdq.insert(sseq);
                }
            }
        }
    }

    /// The earliest deadline still relevant.
    pub fn next_deadline(&mut self) -> Option<Instant> {
        while let Some(Reverse((at, sseq))) = self.timers.peek().copied() {
            match self.pending.get(&sseq) {
                Some(p) if p.deadline == at && !self.rdq.contains(&sseq) => return Some(at),
                _ => {
                    self.timers.pop();
                }
            }
        }
        None
    }

    /// `+ACK`: returns the stream sequences newly acked (ascending). With ack policy all,
    /// an ack past the last delivered sequence (a forged ack subject) is ignored, as
    /// nats-server 2.15 does.
    pub fn ack(&mut self, sseq: u64) -> Vec<u64> {
        let acked = match self.policy {
            AckPolicy::None => Vec::new(),
            AckPolicy::Explicit => match self.pending.remove(&sseq) {
                Some(_) => vec![sseq],
                None => Vec::new(),
            },
            AckPolicy::All if sseq > self.dsseq => Vec::new(),
            AckPolicy::All => {
                let keep = self.pending.split_off(&(sseq.saturating_add(1)));
                let acked: Vec<u64> = std::mem::replace(&mut self.pending, keep)
                    .into_keys()
                    .collect();
                acked
            }
        };
        for s in &acked {
            self.rdq.remove(s);
        }
        if !acked.is_empty() {
            self.update_floor();
        }
        acked
    }

    /// `-NAK` (with an optional delay): redeliver now or after `delay`. Returns whether the
    /// message was pending.
    pub fn nak(&mut self, sseq: u64, delay: Option<Duration>, now: Instant) -> bool {
        let Some(p) = self.pending.get_mut(&sseq) else {
            return false;
        };
        match delay.filter(|d| !d.is_zero()) {
            Some(d) => {
                p.deadline = deadline(now, d);
                self.timers.push(Reverse((p.deadline, sseq)));
                self.rdq.remove(&sseq);
            }
            None => {
                self.rdq.insert(sseq);
            }
        }
        true
    }

    /// `+WPI`: restart the ack timer of `sseq`.
    pub fn in_progress(&mut self, sseq: u64, now: Instant) {
        let wait = match self.pending.get(&sseq) {
            Some(p) => self.wait_for(p.dc),
            None => return,
        };
        if let Some(p) = self.pending.get_mut(&sseq) {
            p.deadline = deadline(now, wait);
            self.timers.push(Reverse((p.deadline, sseq)));
        }
    }

    /// `+TERM`: stop redelivering `sseq`; returns its pending entry.
    pub fn term(&mut self, sseq: u64) -> Option<Pending> {
        let p = self.pending.remove(&sseq)?;
        self.rdq.remove(&sseq);
        self.update_floor();
        Some(p)
    }

    /// Whether this consumer is done with `sseq`: delivered (or skipped) and not pending.
    /// `cursor` is the next stream sequence the consumer would look at.
    pub fn done_with(&self, sseq: u64, cursor: u64) -> bool {
        sseq < cursor && !self.pending.contains_key(&sseq)
    }

    /// Messages redelivered and still un-acked.
    pub fn num_redelivered(&self) -> u64 {
        self.pending.values().filter(|p| p.dc > 1).count() as u64
    }

    fn update_floor(&mut self) {
        match self.pending.first_key_value() {
            None => {
                self.adflr = self.dseq;
                self.asflr = self.dsseq;
            }
            Some((sseq, p)) => {
                self.asflr = sseq.saturating_sub(1);
                self.adflr = p.dseq.saturating_sub(1).min(self.dseq);
            }
        }
    }

    /// Restores pending entries read from disk; deadlines from the stored delivery times.
    pub fn restore_pending(&mut self, entries: &[(u64, u64, i64, u64)], now: Instant, wall: i64) {
        for &(sseq, dseq, ts, dc) in entries {
            let wait = self.wait_for(dc.max(1));
            let age = ns(wall.saturating_sub(ts));
            let deadline = deadline(now, wait.saturating_sub(age));
            self.pending.insert(
                sseq,
                Pending {
                    dseq,
                    ts,
                    dc: dc.max(1),
                    deadline,
                },
            );
            self.timers.push(Reverse((deadline, sseq)));
        }
        self.update_floor();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SEC: i64 = 1_000_000_000;

    #[test]
    fn explicit_ack_nak_term_and_floor() {
        let t0 = Instant::now();
        let mut a = Acks::new(AckPolicy::Explicit, 30 * SEC, &[], 3);
        for s in 1..=3 {
            a.delivered(s, t0, 0);
        }
        assert_eq!((a.adflr, a.asflr), (0, 0));
        assert_eq!(a.ack(2), vec![2]);
        assert_eq!(a.ack(2), Vec::<u64>::new(), "double ack acks nothing");
        assert_eq!((a.adflr, a.asflr), (0, 0));
        assert_eq!(a.ack(1), vec![1]);
        assert_eq!((a.adflr, a.asflr), (2, 2));
        assert!(a.nak(3, None, t0));
        assert_eq!(a.next_redelivery(), Some(3));
        assert_eq!(a.delivered(3, t0, 0), (4, 2));
        assert_eq!(a.num_redelivered(), 1);
        assert_eq!(a.term(3).map(|p| p.dc), Some(2));
        assert_eq!((a.adflr, a.asflr), (4, 3));
        assert!(a.pending.is_empty());
    }

    #[test]
    fn ack_all_covers_everything_below() {
        let t0 = Instant::now();
        let mut a = Acks::new(AckPolicy::All, SEC, &[], -1);
        for s in [2, 4, 6] {
            a.delivered(s, t0, 0);
        }
        assert_eq!(a.ack(4), vec![2, 4]);
        assert_eq!(a.pending.keys().copied().collect::<Vec<_>>(), vec![6]);
    }

    #[test]
    fn deadlines_backoff_and_max_deliver() {
        let t0 = Instant::now();
        let mut a = Acks::new(AckPolicy::Explicit, SEC, &[SEC, 5 * SEC], 2);
        a.delivered(1, t0, 0);
        assert_eq!(a.next_deadline(), Some(t0 + Duration::from_secs(1)));
        a.expire(t0 + Duration::from_millis(999));
        assert!(a.rdq.is_empty());
        a.expire(t0 + Duration::from_secs(1));
        assert!(a.take_exhausted().is_empty());
        assert_eq!(a.next_redelivery(), Some(1));
        let t1 = t0 + Duration::from_secs(1);
        a.delivered(1, t1, 0);
        assert_eq!(a.next_deadline(), Some(t1 + Duration::from_secs(5)));
        a.expire(t1 + Duration::from_secs(5));
        assert_eq!(a.take_exhausted(), vec![(1, 2)]);
        assert_eq!(a.next_redelivery(), None);
        assert!(a.pending.is_empty());
        assert_eq!(a.next_deadline(), None);
    }

    #[test]
    fn nak_delay_and_wpi_move_the_deadline() {
        let t0 = Instant::now();
        let mut a = Acks::new(AckPolicy::Explicit, SEC, &[], -1);
        a.delivered(1, t0, 0);
        a.nak(1, Some(Duration::from_secs(3)), t0);
        a.expire(t0 + Duration::from_secs(2));
        assert!(a.rdq.is_empty(), "not before the delay");
        assert_eq!(a.next_deadline(), Some(t0 + Duration::from_secs(3)));
        a.expire(t0 + Duration::from_secs(3));
        assert_eq!(a.next_redelivery(), Some(1));
        let t1 = t0 + Duration::from_secs(3);
        a.delivered(1, t1, 0);
        a.in_progress(1, t1 + Duration::from_millis(900));
        a.expire(t1 + Duration::from_millis(1500));
        assert!(a.rdq.is_empty(), "+WPI restarted the timer");
        a.expire(t1 + Duration::from_millis(1900));
        assert_eq!(a.rdq.len(), 1);
    }
}

#[cfg(test)]
mod model {
    //! The ack rules against a naive model: a map of pending stream sequences to their
    //! delivery counts, and a queue of the ones due again.
    use super::*;
    use proptest::prelude::*;
    use std::collections::BTreeMap as Map;

    #[derive(Debug, Clone)]
    enum Op {
        DeliverNew,
        Redeliver,
        Ack(u8),
        Nak(u8),
        Term(u8),
        Expire(u8),
    }

    fn op() -> impl Strategy<Value = Op> {
        prop_oneof![
            3 => Just(Op::DeliverNew),
            2 => Just(Op::Redeliver),
            2 => any::<u8>().prop_map(Op::Ack),
            1 => any::<u8>().prop_map(Op::Nak),
            1 => any::<u8>().prop_map(Op::Term),
            1 => any::<u8>().prop_map(Op::Expire),
        ]
    }

    proptest! {
        #[test]
        fn explicit_acks_match_the_model(ops in proptest::collection::vec(op(), 1..200), max_deliver in prop_oneof![Just(-1i64), 1i64..5]) {
            let t0 = Instant::now();
            let mut a = Acks::new(AckPolicy::Explicit, 1_000_000_000, &[], max_deliver);
            let mut pending: Map<u64, u64> = Map::new();
            let mut due: std::collections::BTreeSet<u64> = Default::default();
            let (mut next_seq, mut dseq, mut clock) = (1u64, 0u64, 0u64);
            for op in ops {
                let now = t0 + Duration::from_millis(clock);
                match op {
                    Op::DeliverNew => {
                        let (d, dc) = a.delivered(next_seq, now, 0);
                        dseq += 1;
                        prop_assert_eq!((d, dc), (dseq, 1));
                        pending.insert(next_seq, 1);
                        next_seq += 1;
                    }
                    Op::Redeliver => {
                        // The model: due messages at max_deliver are dropped, the rest
                        // come back in stream order.
                        let exhausted: Vec<(u64, u64)> = due
                            .iter()
                            .filter(|s| max_deliver > 0 && pending[*s] >= max_deliver as u64)
                            .map(|s| (*s, pending[s]))
                            .collect();
                        prop_assert_eq!(a.take_exhausted(), exhausted.clone());
                        for (s, _) in &exhausted {
                            due.remove(s);
                            pending.remove(s);
                        }
                        let got = a.next_redelivery();
                        prop_assert_eq!(got, due.pop_first());
                        if let Some(s) = got {
                            let dc = pending[&s] + 1;
                            let (d, got_dc) = a.delivered(s, now, 0);
                            dseq += 1;
                            prop_assert_eq!((d, got_dc), (dseq, dc));
                            pending.insert(s, dc);
                        }
                    }
                    Op::Ack(i) => {
                        let s = u64::from(i) % next_seq.max(1);
                        let acked = a.ack(s);
                        let was = pending.remove(&s).is_some();
                        due.remove(&s);
                        prop_assert_eq!(acked, if was { vec![s] } else { vec![] });
                    }
                    Op::Nak(i) => {
                        let s = u64::from(i) % next_seq.max(1);
                        prop_assert_eq!(a.nak(s, None, now), pending.contains_key(&s));
                        if pending.contains_key(&s) {
                            due.insert(s);
                        }
                    }
                    Op::Term(i) => {
                        let s = u64::from(i) % next_seq.max(1);
                        prop_assert_eq!(a.term(s).is_some(), pending.remove(&s).is_some());
                        due.remove(&s);
                    }
                    Op::Expire(ms) => {
                        clock += u64::from(ms) * 10;
                        a.expire(t0 + Duration::from_millis(clock));
                        // Every delivery waits 1 s: due once the clock passed it. The model
                        // only checks that nothing expired early and the queue is a subset.
                        for s in &a.rdq {
                            prop_assert!(pending.contains_key(s));
                        }
                        due = a.rdq.clone();
                    }
                }
                let keys: Vec<u64> = a.pending.keys().copied().collect();
                let model: Vec<u64> = pending.keys().copied().collect();
                prop_assert_eq!(keys, model);
                prop_assert!(a.rdq.iter().all(|s| pending.contains_key(s)));
                let want_floor = pending.keys().next().map_or(a.dsseq, |f| f - 1);
                prop_assert_eq!(a.asflr, want_floor);
                prop_assert_eq!(a.num_redelivered(), pending.values().filter(|dc| **dc > 1).count() as u64);
            }
        }
    }
}
