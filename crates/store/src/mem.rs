//! `MemStore`: the memory-storage stream store (StreamConfig `storage: "memory"`).

use std::collections::BTreeMap;

use bytes::Bytes;

use crate::error::StoreError;
use crate::index::Index;
use crate::limits;
use crate::traits::StreamStore;
use crate::types::{
    mem_msg_size, normalize_headers, PurgeRequest, StoreLimits, StoredMsg, StreamState,
};

/// A message body held in memory.
#[derive(Debug, Clone)]
struct Body {
    headers: Option<Bytes>,
    payload: Bytes,
    /// `headers` then `payload` in one buffer (joined once at append, so deliveries of a
    /// headered message need no copy); `None` without headers.
    raw: Option<Bytes>,
}

/// A stream store that keeps everything in memory. Byte accounting follows nats-server's
/// memory store: `len(subject) + len(headers) + len(payload) + 16`.
#[derive(Debug, Default)]
pub struct MemStore {
    index: Index<Body>,
    limits: StoreLimits,
}

impl MemStore {
    /// An empty store with no limits.
    pub fn new() -> Self {
        Self::default()
    }

    fn msg(&self, seq: u64) -> Option<StoredMsg> {
        let e = self.index.get(seq)?;
        Some(StoredMsg {
            seq,
            ts: e.ts,
            subject: e.subject.to_string(),
            headers: e.loc.headers.clone(),
            payload: e.loc.payload.clone(),
            raw: e.loc.raw.clone(),
        })
    }
}

impl StreamStore for MemStore {
    fn append(
        &mut self,
        subject: &str,
        headers: Option<Bytes>,
        payload: Bytes,
        ts_nanos: i64,
    ) -> Result<(u64, i64), StoreError> {
        if subject.is_empty() || subject.len() > u16::MAX as usize {
            return Err(StoreError::InvalidSubject);
        }
        let headers = normalize_headers(headers);
        let hdr_len = headers.as_ref().map_or(0, |h| h.len() as u64);
        limits::check_append(
            &self.index,
            &self.limits,
            subject,
            hdr_len + payload.len() as u64,
        )?;
        let size = mem_msg_size(subject, headers.as_deref(), &payload);
        let seq = self.index.next_seq()?;
        let body = match headers {
            Some(h) => {
                let mut joined = bytes::BytesMut::with_capacity(h.len() + payload.len());
                joined.extend_from_slice(&h);
                joined.extend_from_slice(&payload);
                let raw = joined.freeze();
                Body {
                    headers: Some(raw.slice(..h.len())),
                    payload: raw.slice(h.len()..),
                    raw: Some(raw),
                }
            }
            None => Body {
                headers: None,
                payload,
                raw: None,
            },
        };
        self.index.insert(seq, ts_nanos, subject, size, body);
        limits::enforce(&mut self.index, &self.limits, Some(subject), |_, _| {});
        Ok((seq, ts_nanos))
    }

    fn commit(&mut self) -> Result<(), StoreError> {
        Ok(())
    }

    fn sync(&mut self) -> Result<(), StoreError> {
        Ok(())
    }

    fn get(&self, seq: u64) -> Result<Option<StoredMsg>, StoreError> {
        Ok(self.msg(seq))
    }

    fn timestamp(&self, seq: u64) -> Option<i64> {
        self.index.get(seq).map(|e| e.ts)
    }

    fn subject_of(&self, seq: u64) -> Option<String> {
        self.index.get(seq).map(|e| e.subject.to_string())
    }

    fn aged(
        &self,
        cutoff_nanos: i64,
        skip: &dyn Fn(u64) -> bool,
        max: usize,
    ) -> Vec<(u64, String)> {
        self.index.aged(cutoff_nanos, skip, max)
    }

    fn last_seq_of_subject_at(&self, subject: &str, max_seq: u64) -> Option<u64> {
        self.index.last_of_subject_at(subject, max_seq)
    }

    fn last_by_subject(&self, subject: &str) -> Result<Option<StoredMsg>, StoreError> {
        Ok(self
            .index
            .last_of_subject(subject)
            .and_then(|s| self.msg(s)))
    }

    fn next_by_subject(
        &self,
        from_seq: u64,
        filter: &str,
    ) -> Result<Option<StoredMsg>, StoreError> {
        Ok(self
            .index
            .next_matching(from_seq, filter)
            .and_then(|s| self.msg(s)))
    }

    fn delete(&mut self, seq: u64, _erase: bool) -> Result<bool, StoreError> {
        Ok(self.index.remove(seq).is_some())
    }

    fn delete_many(&mut self, seqs: &[u64]) -> Result<u64, StoreError> {
        Ok(seqs
            .iter()
            .filter(|s| self.index.remove(**s).is_some())
            .count() as u64)
    }

    fn purge(&mut self, req: PurgeRequest) -> Result<u64, StoreError> {
        Ok(limits::purge(&mut self.index, &req, |_, _| {}))
    }

    fn expire(&mut self, now_nanos: i64) -> Result<u64, StoreError> {
        Ok(limits::expire(
            &mut self.index,
            &self.limits,
            now_nanos,
            |_, _| {},
        ))
    }

    fn set_limits(&mut self, limits: StoreLimits) -> Result<(), StoreError> {
        self.limits = limits;
        limits::enforce(&mut self.index, &self.limits, None, |_, _| {});
        Ok(())
    }

    fn limits(&self) -> &StoreLimits {
        &self.limits
    }

    fn skip_to(&mut self, seq: u64, ts_nanos: i64) -> Result<(), StoreError> {
        if seq > crate::MAX_SEQ {
            return Err(StoreError::SequenceExhausted);
        }
        if seq > self.index.last_seq().saturating_add(1) {
            if self.index.state().msgs == 0 {
                self.index.raise_floor(seq, |_, _| {});
            } else {
                self.index.note_seq(seq - 1, ts_nanos);
            }
        }
        Ok(())
    }

    fn set_first_seq(&mut self, seq: u64) -> Result<(), StoreError> {
        check_first_seq(&self.index, seq)?;
        if seq > self.index.first_or_next() {
            self.index.raise_floor(seq, |_, _| {});
        }
        Ok(())
    }

    fn state(&self) -> StreamState {
        self.index.state()
    }

    fn subjects_state(&self, filter: &str) -> BTreeMap<String, u64> {
        self.index.subjects_state(filter)
    }

    fn num_pending(&self, from_seq: u64, filter: &str) -> u64 {
        self.index.num_pending(from_seq, filter)
    }

    fn close(&mut self) -> Result<(), StoreError> {
        Ok(())
    }
}

/// `set_first_seq` precondition shared by both stores.
/// `seq == 0` is accepted as "no first sequence" (callers pass the config value as is).
pub(crate) fn check_first_seq<L>(index: &Index<L>, seq: u64) -> Result<(), StoreError> {
    if seq == 0 {
        return Ok(());
    }
    if index.len() > 0 || seq <= index.last_seq() || seq > crate::MAX_SEQ {
        return Err(StoreError::InvalidFirstSeq {
            requested: seq,
            msgs: index.len(),
            last_seq: index.last_seq(),
        });
    }
    Ok(())
}
