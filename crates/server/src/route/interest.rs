//! What an account's route peers are told about its subscriptions: one `RS+` when a
//! subject (or queue group) gains its first local subscription, `RS+` with the new weight
//! when a queue group's membership changes, `RS-` when the last one goes; and the whole
//! set for a peer that just connected. Subscriptions of route peers are not counted (their
//! interest is the peer's own, one hop).

use std::collections::HashMap;
use std::sync::Arc;

use bytes::{Bytes, BytesMut};
use parking_lot::{Mutex, RwLock};

use crate::client::Client;

/// The connected route peers (their connections), told of interest changes.
#[derive(Default)]
pub(crate) struct Peers {
    list: RwLock<Vec<Arc<Client>>>,
}

impl Peers {
    /// Whether any peer is connected.
    pub fn any(&self) -> bool {
        !self.list.read().is_empty()
    }

    pub(super) fn add(&self, peer: &Arc<Client>) {
        self.list.write().push(peer.clone());
    }

    pub(super) fn remove(&self, peer: &Arc<Client>) {
        self.list.write().retain(|p| !Arc::ptr_eq(p, peer));
    }

    /// Queues `bytes` for every peer and wakes their writers.
    fn broadcast(&self, bytes: &[u8]) {
        for p in self.list.read().iter() {
            p.queue_raw(bytes);
            p.flush(false);
        }
    }
}

/// Local subscriptions per subject and queue group.
#[derive(Default)]
pub(crate) struct Interest {
    counts: Mutex<HashMap<(Bytes, Option<Bytes>), u32>>,
}

impl Interest {
    /// Local interest in `subject` (in `queue`) changed by `delta` members (a leaf's
    /// queue subscription counts its weight); tells the peers when that changes what
    /// they know. Called under the account's Sublist write lock, so changes reach the
    /// peers in the order they happened.
    pub fn changed(
        &self,
        account: &str,
        peers: &Peers,
        subject: &Bytes,
        queue: Option<&Bytes>,
        delta: i64,
    ) {
        let mut counts = self.counts.lock();
        let key = (subject.clone(), queue.cloned());
        let n = counts.entry(key.clone()).or_insert(0);
        let before = *n;
        let after = u32::try_from((i64::from(before) + delta).max(0)).unwrap_or(u32::MAX);
        *n = after;
        if after == 0 {
            counts.remove(&key);
        }
        if !peers.any() || before == after {
            return;
        }
        let mut buf = BytesMut::new();
        match (queue, after) {
            (_, 0) => petrel_wire::route::unsub(
                &mut buf,
                account.as_bytes(),
                subject,
                queue.map(|q| &q[..]),
            ),
            (Some(q), w) => {
                petrel_wire::route::sub(&mut buf, account.as_bytes(), subject, Some((q, w)))
            }
            (None, _) if before == 0 => {
                petrel_wire::route::sub(&mut buf, account.as_bytes(), subject, None)
            }
            (None, _) => return,
        }
        peers.broadcast(&buf);
    }

    /// Queues every `RS+` of this account for a peer that just connected (under the same
    /// lock as [`Interest::changed`], so no change is lost or reordered).
    pub fn send_all(&self, account: &str, peer: &Client) {
        let counts = self.counts.lock();
        if counts.is_empty() {
            return;
        }
        let mut buf = BytesMut::new();
        for ((subject, queue), n) in counts.iter() {
            let q = queue.as_ref().map(|q| (&q[..], *n));
            petrel_wire::route::sub(&mut buf, account.as_bytes(), subject, q);
        }
        peer.queue_raw(&buf);
    }
}
