//! Batched direct gets (nats-server 2.11): `DIRECT.GET` with `batch` (the messages from
//! `seq`, optionally only those on `next_by_subj`, within `max_bytes`) or `multi_last` (the
//! last message of every matching subject as of `up_to_seq` / `up_to_time`). Each message
//! carries `Nats-Num-Pending` and `Nats-Last-Sequence`; a `204 EOB` status ends the batch.

use bytes::Bytes;
use petrel_store::{StoredMsg, StreamStore};

use super::msgs::{raw_message, status};
use super::ApiResponse;
use crate::stream::{MsgGetRequest, Stream};
use crate::time::parse_rfc3339;

/// Most messages, bytes and `multi_last` filters of one batched direct get, whatever the
/// request says (a request cannot make the server build an unbounded reply: the client
/// asks again from where the batch ended).
const MAX_BATCH: usize = 10_000;
const MAX_BATCH_BYTES: i64 = 8 * 1024 * 1024;
const MAX_FILTERS: usize = 1024;

/// One batch: its messages (each with the count still pending after it) and what the
/// end-of-batch status says.
struct Batch {
    msgs: Vec<(StoredMsg, u64)>,
    pending: u64,
    up_to: Option<u64>,
}

/// Answers a batched direct get from `stream`.
pub(super) fn batch(stream: &Stream, req: &MsgGetRequest) -> ApiResponse {
    let bad_time = req
        .up_to_time
        .as_deref()
        .is_some_and(|t| parse_rfc3339(t).is_none());
    if bad_time {
        // A time Go cannot decode fails nats-server's JSON parse.
        return status(408, "Malformed Request");
    }
    if !req.last_by_subj.is_empty() || req.multi_last.len() > MAX_FILTERS {
        return status(408, "Bad Request");
    }
    let found = {
        let inner = stream.inner.lock();
        let store = inner.store.as_ref();
        if req.multi_last.is_empty() {
            from_seq(store, req)
        } else {
            multi_last(store, req)
        }
    };
    let b = match found {
        Ok(b) if !b.msgs.is_empty() => b,
        Ok(_) if req.multi_last.is_empty() => return status(404, "Message Not Found"),
        Ok(_) => return status(404, "No Results"),
        Err(e) => {
            tracing::warn!(stream = %stream.name, error = %e, "direct get failed");
            return status(404, "Message Not Found");
        }
    };
    let mut replies = Vec::with_capacity(b.msgs.len() + 1);
    let mut last = 0;
    for (m, pending) in b.msgs {
        let seq = m.seq;
        let r = if req.no_hdr {
            (None, m.payload)
        } else {
            let extra = [
                ("Nats-Num-Pending", pending.to_string()),
                ("Nats-Last-Sequence", last.to_string()),
            ];
            let r = raw_message(&stream.name, m, &extra);
            (r.headers, r.payload)
        };
        replies.push(r);
        last = seq;
    }
    let mut eob = format!(
        "NATS/1.0 204 EOB\r\nNats-Num-Pending: {}\r\nNats-Last-Sequence: {last}\r\n",
        b.pending
    );
    if let Some(up_to) = b.up_to {
        eob.push_str(&format!("Nats-UpTo-Sequence: {up_to}\r\n"));
    }
    eob.push_str("\r\n");
    replies.push((Some(Bytes::from(eob)), Bytes::new()));
    let mut replies = replies.into_iter();
    let (headers, payload) = replies.next().unwrap_or_default();
    ApiResponse {
        headers,
        payload,
        more: replies.collect(),
        ..ApiResponse::default()
    }
}

/// Up to `batch` messages from `seq` (on `next_by_subj` when set), within `max_bytes`.
fn from_seq(
    store: &dyn StreamStore,
    req: &MsgGetRequest,
) -> Result<Batch, petrel_store::StoreError> {
    let filter = if req.next_by_subj.is_empty() {
        ">"
    } else {
        req.next_by_subj.as_str()
    };
    let want = usize::try_from(req.batch).unwrap_or(1).clamp(1, MAX_BATCH);
    let max_bytes = match req.max_bytes {
        n if n > 0 => n.min(MAX_BATCH_BYTES),
        _ => MAX_BATCH_BYTES,
    };
    let (mut msgs, mut bytes, mut seq) = (Vec::new(), 0i64, req.seq.max(1));
    while msgs.len() < want {
        let Some(m) = store.next_by_subject(seq, filter)? else {
            break;
        };
        let size = msg_size(&m);
        if !msgs.is_empty() && bytes + size > max_bytes {
            break;
        }
        bytes += size;
        seq = m.seq + 1;
        msgs.push(m);
    }
    let after = msgs
        .last()
        .map_or(0, |m| store.num_pending(m.seq + 1, filter));
    let n = msgs.len() as u64;
    let msgs = msgs
        .into_iter()
        .enumerate()
        .map(|(i, m)| (m, after + n - 1 - i as u64))
        .collect();
    Ok(Batch {
        msgs,
        pending: after,
        up_to: None,
    })
}

/// The last message of every subject matching `multi_last`, as of `up_to_seq` /
/// `up_to_time` (the stream's last sequence by default), oldest first, up to `batch`.
fn multi_last(
    store: &dyn StreamStore,
    req: &MsgGetRequest,
) -> Result<Batch, petrel_store::StoreError> {
    let state = store.state();
    let up_to = match (req.up_to_seq, req.up_to_time.as_deref()) {
        (s, _) if s > 0 => s.min(state.last_seq),
        // The last one at or before `t`: the one before the first one after it.
        (_, Some(t)) => {
            let after = parse_rfc3339(t).unwrap_or(i64::MIN).saturating_add(1);
            let first = state.first_seq.max(1);
            crate::stream::first_at_or_after(store, first, state.last_seq, after)?.saturating_sub(1)
        }
        _ => state.last_seq,
    };
    let filters: std::collections::BTreeSet<&String> = req.multi_last.iter().collect();
    let mut seqs = std::collections::BTreeSet::new();
    for filter in filters {
        for subject in store.subjects_state(filter).keys() {
            if let Some(seq) = store.last_seq_of_subject_at(subject, up_to) {
                seqs.insert(seq);
            }
        }
    }
    let total = seqs.len() as u64;
    let want = usize::try_from(req.batch)
        .ok()
        .filter(|b| *b > 0)
        .unwrap_or(MAX_BATCH)
        .min(MAX_BATCH);
    let mut msgs = Vec::new();
    let mut bytes = 0;
    for (i, seq) in seqs.into_iter().take(want).enumerate() {
        if let Some(m) = store.get(seq)? {
            bytes += msg_size(&m);
            if !msgs.is_empty() && bytes > MAX_BATCH_BYTES {
                break;
            }
            msgs.push((m, total - 1 - i as u64));
        }
    }
    let pending = total - msgs.len() as u64;
    Ok(Batch {
        msgs,
        pending,
        up_to: Some(up_to),
    })
}

/// What `max_bytes` counts of a message: subject, headers and payload.
fn msg_size(m: &StoredMsg) -> i64 {
    (m.subject.len() + m.headers.as_ref().map_or(0, Bytes::len) + m.payload.len()) as i64
}
