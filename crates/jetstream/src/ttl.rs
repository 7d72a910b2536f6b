//! Per-message TTLs (`Nats-TTL`, nats-server 2.11) and subject delete markers.
//!
//! A stream with `allow_msg_ttl` keeps [`Ttls`] beside its store: when each message with a
//! TTL is due, which messages never expire (`Nats-TTL: never`, exempt from `max_age` too)
//! and which are markers. The maintenance tick ([`Stream::expire_ttls`]) removes what is due,
//! by TTL or by `max_age`. With `subject_delete_marker_ttl`, the last message of a subject is
//! not deleted but replaced by a marker (`Nats-Marker-Reason: MaxAge`, `Nats-TTL`,
//! `Nats-Rollup: sub`: the roll-up removes the expired message when the marker is stored, so
//! a replicated stream's replicas all do it through the group), unless it was a marker itself.
//! [`Ttls`] lives in memory and is rebuilt from the stored headers when the stream opens, so
//! timers survive a restart and a change of leader.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};

use bytes::Bytes;
use petrel_store::StreamStore;
use petrel_wire::headers::Headers;

use crate::errors::ApiError;
use crate::ingest::ROLLUP;
use crate::stream::{Inbound, Inner, Stream};
use crate::time::go_duration;
use crate::time::SEC;

/// Header: the message's time to live.
pub const MSG_TTL: &str = "Nats-TTL";
/// Header: why a subject delete marker was stored.
pub const MARKER_REASON: &str = "Nats-Marker-Reason";
/// Header of a KV purge (`KV-Operation: PURGE`), a marker too.
const KV_OPERATION: &str = "KV-Operation";
/// How long a proposed marker is waited for before it is proposed again.
const PROPOSAL_WAIT: i64 = 2 * SEC;
/// Most messages one tick removes by `max_age` (the next tick goes on).
const MAX_AGED_PER_TICK: usize = 100_000;

/// A message's time to live.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Ttl {
    /// Removed this many seconds after it was stored.
    Secs(i64),
    /// Never removed by age.
    Never,
}

/// Parses a `Nats-TTL` value as nats-server 2.15 does: `never` (any case), a Go duration
/// of at least a second (whole seconds kept: `1.5s` is 1), or a count of seconds (`0`
/// being none). Anything else is 10165.
pub(crate) fn parse(value: &str) -> Result<Option<Ttl>, ApiError> {
    if value.eq_ignore_ascii_case("never") {
        return Ok(Some(Ttl::Never));
    }
    if value == "0" {
        // A Go duration of zero: under a second.
        return Err(ApiError::message_ttl_invalid());
    }
    if let Some(d) = crate::consumer::ackmsg::parse_go_duration(value) {
        let secs = i64::try_from(d.as_secs()).map_err(|_| ApiError::message_ttl_invalid())?;
        return match secs {
            0 => Err(ApiError::message_ttl_invalid()),
            s => Ok(Some(Ttl::Secs(s))),
        };
    }
    match value.parse::<i64>() {
        Ok(0) => Ok(None),
        Ok(s) if s > 0 => Ok(Some(Ttl::Secs(s))),
        _ => Err(ApiError::message_ttl_invalid()),
    }
}

/// The TTL of a published message with headers `h`, checked against the stream: a TTL on a
/// stream without `allow_msg_ttl` is 10166 (unless the message was sourced: it keeps its
/// headers), a bad one 10165. With markers, a TTL shorter than the markers' is raised to
/// theirs (a marker could otherwise be missed), and the header block to store says so.
pub(crate) fn check(
    inner: &Inner,
    h: &Headers,
    block: Option<&Bytes>,
) -> Result<(Option<Ttl>, Option<Bytes>), ApiError> {
    let Some(value) = h.get(MSG_TTL).filter(|v| !v.is_empty()) else {
        return Ok((None, None));
    };
    let ttl = parse(value)?;
    if ttl.is_some() && !inner.config.allow_msg_ttl {
        if crate::sourcing::sourced(h) {
            return Ok((None, None));
        }
        return Err(ApiError::message_ttl_disabled());
    }
    let marker_secs = inner.config.subject_delete_marker_ttl / SEC;
    match (ttl, block) {
        (Some(Ttl::Secs(s)), Some(block))
            if marker_secs > 0 && s < marker_secs && inner.config.max_msgs_per_subject != 1 =>
        {
            let kept = crate::hdr::without(block, |k| k.eq_ignore_ascii_case(MSG_TTL));
            let raised = crate::hdr::extend(Some(&kept), &format!("{MSG_TTL}: {marker_secs}\r\n"));
            Ok((Some(Ttl::Secs(marker_secs)), Some(raised)))
        }
        _ => Ok((ttl, None)),
    }
}

/// Whether a message with headers `h` is a marker: its removal leaves no marker behind.
fn is_marker(h: &Headers) -> bool {
    h.get(MARKER_REASON).is_some_and(|v| !v.is_empty())
        || h.get(KV_OPERATION).is_some_and(|v| v == "PURGE")
}

/// The TTL bookkeeping of one stream (see the module doc).
#[derive(Debug, Default)]
pub(crate) struct Ttls {
    /// `(due time, seq)` of every message with a TTL.
    due: BTreeSet<(i64, u64)>,
    /// Messages that never expire.
    never: BTreeSet<u64>,
    /// Subject delete markers and KV purges.
    markers: HashSet<u64>,
    /// Expired last messages whose marker is on its way through the group, and when it
    /// was proposed.
    proposed: HashMap<u64, i64>,
    /// How many `never` and marker entries the last sweep kept.
    swept: usize,
}

/// Entries beyond what the last sweep kept before the next sweep.
const SWEEP_SLACK: usize = 1024;

impl Ttls {
    /// Drops the `never` and marker entries of messages the store no longer holds (a
    /// roll-up, a purge or a limit removed them), once they have doubled since the last
    /// sweep: without it a KV bucket whose keys keep being replaced would keep an entry for
    /// every marker it ever had.
    fn sweep(&mut self, holds: impl Fn(u64) -> bool) {
        if self.never.len() + self.markers.len() <= self.swept * 2 + SWEEP_SLACK {
            return;
        }
        self.never.retain(|seq| holds(*seq));
        self.markers.retain(|seq| holds(*seq));
        self.proposed.retain(|seq, _| holds(*seq));
        self.swept = self.never.len() + self.markers.len();
    }

    /// Notes a stored message (`ts`: its time) with headers `h` and its checked TTL.
    pub(crate) fn note(&mut self, seq: u64, ts: i64, h: &Headers, ttl: Option<Ttl>) {
        match ttl {
            Some(Ttl::Secs(s)) => {
                self.due
                    .insert((ts.saturating_add(s.saturating_mul(SEC)), seq));
            }
            Some(Ttl::Never) => {
                self.never.insert(seq);
            }
            None => {}
        }
        if is_marker(h) {
            self.markers.insert(seq);
        }
    }

    /// Reads every stored message's headers back (a stream with `allow_msg_ttl` opening).
    pub(crate) fn rebuild(store: &dyn StreamStore) -> Ttls {
        let mut ttls = Ttls::default();
        let mut seq = store.state().first_seq;
        loop {
            match store.next_by_subject(seq, ">") {
                Ok(Some(m)) => {
                    let h = m.headers.as_deref().and_then(petrel_wire::headers::parse);
                    if let Some(h) = h {
                        let ttl = h.get(MSG_TTL).and_then(|v| parse(v).ok().flatten());
                        ttls.note(m.seq, m.ts, &h, ttl);
                    }
                    seq = m.seq + 1;
                }
                Ok(None) => break,
                Err(e) => {
                    // The scrub and the store's own recovery report it; the message's
                    // timer is lost with it.
                    tracing::warn!(seq, error = %e, "message unreadable while rebuilding TTLs");
                    seq += 1;
                }
            }
        }
        ttls
    }

    /// Takes the sequences whose TTL is due at `now`.
    fn take_due(&mut self, now: i64) -> Vec<u64> {
        let later = self.due.split_off(&(now.saturating_add(1), 0));
        let due = std::mem::replace(&mut self.due, later);
        due.into_iter().map(|(_, seq)| seq).collect()
    }

    /// Forgets sequences the store no longer holds.
    fn forget(&mut self, seqs: &[u64]) {
        for seq in seqs {
            self.never.remove(seq);
            self.markers.remove(seq);
            self.proposed.remove(seq);
        }
    }
}

/// What one tick decided for a TTL stream.
#[derive(Debug, Default)]
pub(crate) struct Expired {
    /// Removed from the store now.
    pub removed: u64,
    /// Markers to store (each rolls its subject up).
    pub markers: Vec<Inbound>,
}

/// A subject delete marker for `subject`, living `ttl_nanos`.
fn marker(subject: &str, ttl_nanos: i64) -> Inbound {
    let headers = format!(
        "NATS/1.0\r\n{MARKER_REASON}: MaxAge\r\n{MSG_TTL}: {}\r\n{ROLLUP}: sub\r\n\r\n",
        go_duration(ttl_nanos)
    );
    Inbound {
        subject: subject.to_string(),
        reply: None,
        headers: Some(Bytes::from(headers)),
        payload: Bytes::new(),
    }
}

impl Stream {
    /// Removes what TTLs and `max_age` made due at `now` from a stream with
    /// `allow_msg_ttl`, and decides the markers to store (returned, for the caller to store
    /// once the lock is released). `leads`: this node may store markers (a replicated
    /// stream's followers leave a subject's last message for the leader's marker).
    pub(crate) fn expire_ttls(&self, inner: &mut Inner, now: i64, leads: bool) -> Expired {
        let store = inner.store.as_ref();
        inner.ttls.sweep(|seq| store.timestamp(seq).is_some());
        let mut due = inner.ttls.take_due(now);
        if inner.config.max_age > 0 {
            let cutoff = now.saturating_sub(inner.config.max_age);
            let never = &inner.ttls.never;
            let aged = inner
                .store
                .aged(cutoff, &|seq| never.contains(&seq), MAX_AGED_PER_TICK);
            due.extend(aged.into_iter().map(|(seq, _)| seq));
        }
        due.sort_unstable();
        due.dedup();
        // Due messages by subject, oldest first.
        let mut by_subject: BTreeMap<String, Vec<u64>> = BTreeMap::new();
        for seq in due {
            if let Some(subject) = inner.store.subject_of(seq) {
                by_subject.entry(subject).or_default().push(seq);
            }
        }
        let marker_ttl = inner.config.subject_delete_marker_ttl;
        let mut delete = Vec::new();
        let mut out = Expired::default();
        for (subject, seqs) in by_subject {
            let newest = seqs[seqs.len() - 1];
            let all = inner.store.subjects_state(&subject).get(&subject).copied()
                == Some(seqs.len() as u64);
            if marker_ttl == 0 || !all || inner.ttls.markers.contains(&newest) {
                delete.extend(seqs);
                continue;
            }
            // The subject's last message: a marker takes its place.
            let waited = inner.ttls.proposed.get(&newest).copied();
            if leads && waited.is_none_or(|t| now - t >= PROPOSAL_WAIT) {
                inner.ttls.proposed.insert(newest, now);
                out.markers.push(marker(&subject, marker_ttl));
            }
            // Looked at again until the marker has rolled them up.
            for seq in seqs {
                inner
                    .ttls
                    .due
                    .insert((now.saturating_add(PROPOSAL_WAIT), seq));
            }
        }
        if !delete.is_empty() {
            match inner.store.delete_many(&delete) {
                Ok(n) => out.removed = n,
                Err(e) => tracing::warn!(stream = %self.name, error = %e, "TTL expiry failed"),
            }
            inner.ttls.forget(&delete);
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_as_nats_server() {
        assert_eq!(parse("never").unwrap(), Some(Ttl::Never));
        assert_eq!(parse("NEVER").unwrap(), Some(Ttl::Never));
        assert_eq!(parse("1s").unwrap(), Some(Ttl::Secs(1)));
        assert_eq!(parse("1.5s").unwrap(), Some(Ttl::Secs(1)));
        assert_eq!(parse("1h").unwrap(), Some(Ttl::Secs(3600)));
        assert_eq!(parse("5").unwrap(), Some(Ttl::Secs(5)));
        assert_eq!(parse("00").unwrap(), None);
        for bad in [
            "0",
            "500ms",
            "-1",
            "-1s",
            "abc",
            "1x",
            "99999999999999999999",
        ] {
            assert_eq!(parse(bad).unwrap_err().err_code, 10165, "{bad}");
        }
    }

    #[test]
    fn due_ones_are_taken_in_time_order() {
        let h = petrel_wire::headers::parse(b"NATS/1.0\r\nNats-TTL: 1\r\n\r\n").unwrap();
        let mut t = Ttls::default();
        t.note(2, 10 * SEC, &h, Some(Ttl::Secs(1)));
        t.note(1, 5 * SEC, &h, Some(Ttl::Secs(10)));
        t.note(3, 0, &h, Some(Ttl::Never));
        assert!(t.take_due(11 * SEC - 1).is_empty());
        assert_eq!(t.take_due(11 * SEC), vec![2]);
        assert_eq!(t.take_due(i64::MAX), vec![1]);
        assert!(t.never.contains(&3));
    }

    #[test]
    fn entries_of_removed_messages_are_swept_once_they_pile_up() {
        let marker =
            petrel_wire::headers::parse(b"NATS/1.0\r\nKV-Operation: PURGE\r\n\r\n").unwrap();
        let mut t = Ttls::default();
        let n = SWEEP_SLACK as u64 + 10;
        for seq in 1..=n {
            t.note(seq, 0, &marker, None);
        }
        // Only the last ten are still stored.
        t.sweep(|seq| seq > n - 10);
        assert_eq!(t.markers.len(), 10);
        // Below the slack nothing is looked up.
        t.note(n + 1, 0, &marker, None);
        t.sweep(|_| panic!("swept too early"));
    }

    #[test]
    fn markers_are_known() {
        let m =
            petrel_wire::headers::parse(b"NATS/1.0\r\nNats-Marker-Reason: MaxAge\r\n\r\n").unwrap();
        let p = petrel_wire::headers::parse(b"NATS/1.0\r\nKV-Operation: PURGE\r\n\r\n").unwrap();
        let d = petrel_wire::headers::parse(b"NATS/1.0\r\nKV-Operation: DEL\r\n\r\n").unwrap();
        assert!(is_marker(&m) && is_marker(&p) && !is_marker(&d));
    }

    #[test]
    fn a_marker_says_why_and_rolls_up() {
        let m = marker("kv.a", 300 * SEC);
        assert_eq!(
            m.headers.as_deref(),
            Some(&b"NATS/1.0\r\nNats-Marker-Reason: MaxAge\r\nNats-TTL: 5m0s\r\nNats-Rollup: sub\r\n\r\n"[..])
        );
        assert!(m.payload.is_empty() && m.reply.is_none());
    }
}
