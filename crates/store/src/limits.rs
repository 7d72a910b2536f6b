//! Limit enforcement, purge selection and age expiry, written once against [`Index`] and
//! used by both stores. Each function removes entries from the index and hands every removed
//! entry to `on_remove`, where the store does its own bookkeeping (block live counts,
//! tombstones); the semantics follow nats-server's filestore/memstore.

use crate::error::StoreError;
use crate::index::{Entry, Index};
use crate::subject::is_match_all;
use crate::types::{Discard, PurgeRequest, StoreLimits};

/// `i64` limit as an optional `u64` (`<= 0` = no limit).
fn limit(v: i64) -> Option<u64> {
    u64::try_from(v).ok().filter(|v| *v > 0)
}

/// Checks an incoming message against `max_msg_size` and the `Discard::New` limits, before it
/// is stored. `raw_len` is `len(headers) + len(payload)`; the checks mirror nats-server's
/// `storeRawMsg`, including its quirks (`>=` on bytes, raw length compared with accounted
/// bytes, and a subject at its per-subject limit replacing rather than adding a message).
pub(crate) fn check_append<L>(
    idx: &Index<L>,
    limits: &StoreLimits,
    subject: &str,
    raw_len: u64,
) -> Result<(), StoreError> {
    if let Ok(max) = u64::try_from(limits.max_msg_size) {
        if max > 0 && raw_len > max {
            return Err(StoreError::MsgTooLarge);
        }
    }
    if limits.discard != Discard::New {
        return Ok(());
    }
    let mut at_subject_limit = None;
    if let Some(mmp) = limit(limits.max_msgs_per_subject) {
        if idx.subject_count(subject) >= mmp {
            if limits.discard_new_per_subject {
                return Err(StoreError::MaxMsgsPerSubject);
            }
            at_subject_limit = idx.first_of_subject(subject);
        }
    }
    if let Some(max) = limit(limits.max_msgs) {
        if idx.len() >= max && at_subject_limit.is_none() {
            return Err(StoreError::MaxMsgs);
        }
    }
    if let Some(max) = limit(limits.max_bytes) {
        if idx.bytes() + raw_len >= max {
            let replaced = at_subject_limit
                .and_then(|s| idx.get(s))
                .map_or(0, |e| e.size);
            if at_subject_limit.is_none() || replaced <= raw_len {
                return Err(StoreError::MaxBytes);
            }
        }
    }
    Ok(())
}

/// Drops messages over the limits after an append of `subject` (or, with `None`, after the
/// limits changed): the subject's oldest over `max_msgs_per_subject`, then, with
/// `Discard::Old`, the stream's oldest while over `max_msgs` or `max_bytes`.
pub(crate) fn enforce<L>(
    idx: &mut Index<L>,
    limits: &StoreLimits,
    subject: Option<&str>,
    mut on_remove: impl FnMut(u64, Entry<L>),
) {
    if let Some(mmp) = limit(limits.max_msgs_per_subject) {
        match subject {
            Some(subj) => {
                while idx.subject_count(subj) > mmp {
                    let Some(seq) = idx.first_of_subject(subj) else {
                        break;
                    };
                    if let Some(e) = idx.remove(seq) {
                        on_remove(seq, e);
                    }
                }
            }
            None => {
                for seq in idx.over_subject_limit(mmp) {
                    if let Some(e) = idx.remove(seq) {
                        on_remove(seq, e);
                    }
                }
            }
        }
    }
    if limits.discard != Discard::Old {
        return;
    }
    let max_msgs = limit(limits.max_msgs);
    let max_bytes = limit(limits.max_bytes);
    loop {
        let over =
            max_msgs.is_some_and(|m| idx.len() > m) || max_bytes.is_some_and(|m| idx.bytes() > m);
        if !over {
            break;
        }
        let Some((seq, _)) = idx.first() else { break };
        if let Some(e) = idx.remove(seq) {
            on_remove(seq, e);
        }
    }
}

/// Purges per `req` (see [`PurgeRequest`]); returns how many messages went.
pub(crate) fn purge<L>(
    idx: &mut Index<L>,
    req: &PurgeRequest,
    mut on_remove: impl FnMut(u64, Entry<L>),
) -> u64 {
    let all = req.subject.as_deref().is_none_or(is_match_all);
    // 0 means "not set" for both, as in nats-server's PurgeEx.
    let below = req.seq.filter(|s| *s > 0);
    let keep = req.keep.filter(|k| *k > 0);
    if all && keep.is_none() {
        let floor = below.unwrap_or(idx.last_seq().saturating_add(1));
        let before = idx.len();
        idx.raise_floor(floor, &mut on_remove);
        return before - idx.len();
    }
    let filter = req.subject.as_deref().unwrap_or("");
    let matching = idx.matching_seqs(filter);
    let mut max_purge = matching.len();
    if let Some(keep) = keep {
        max_purge = matching.len().saturating_sub(keep as usize);
    }
    let mut n = 0;
    for seq in matching.into_iter().take(max_purge) {
        if below.is_some_and(|b| seq >= b) {
            break;
        }
        if let Some(e) = idx.remove(seq) {
            on_remove(seq, e);
            n += 1;
        }
    }
    n
}

/// Removes messages with `ts <= now - max_age`, oldest first, stopping at the first younger
/// one (timestamps are expected to grow with sequences, as in nats-server).
pub(crate) fn expire<L>(
    idx: &mut Index<L>,
    limits: &StoreLimits,
    now_nanos: i64,
    mut on_remove: impl FnMut(u64, Entry<L>),
) -> u64 {
    if limits.max_age.is_zero() {
        return 0;
    }
    let age = i64::try_from(limits.max_age.as_nanos()).unwrap_or(i64::MAX);
    let cutoff = now_nanos.saturating_sub(age);
    let mut n = 0;
    while let Some((seq, e)) = idx.first() {
        if e.ts > cutoff {
            break;
        }
        if let Some(e) = idx.remove(seq) {
            on_remove(seq, e);
            n += 1;
        }
    }
    n
}
