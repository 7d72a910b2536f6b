//! What an account's leaf connections are told of its interest. Each connection keeps
//! its own map (subject, queue → members), because each sees a different part of the
//! account ([`LeafLink::sees`]): plain interest is `LS+` on the first subscription and
//! `LS-` after the last; a queue group's `LS+` carries its new total on every change,
//! `LS-` at zero. Changes arrive under the account's Sublist write lock, as do new
//! connections (which get the whole map at once), so nothing is lost or reordered.

use std::collections::HashMap;
use std::sync::Arc;

use bytes::{Bytes, BytesMut};
use parking_lot::RwLock;
use petrel_subject::Sublist;

use super::LeafLink;
use crate::client::Client;
use crate::sub::{SubRef, Subscription};

/// An account's leaf connections and its loop-detection subject.
pub(crate) struct AccountLeafs {
    list: RwLock<Vec<Arc<Client>>>,
    /// `$LDS.<random>`: sent to every leaf; coming back means a loop.
    pub lds: Bytes,
}

impl Default for AccountLeafs {
    fn default() -> Self {
        let id: String = std::iter::repeat_with(fastrand::alphanumeric)
            .take(22)
            .collect();
        Self {
            list: RwLock::new(Vec::new()),
            lds: Bytes::from(format!("$LDS.{id}")),
        }
    }
}

impl AccountLeafs {
    /// `sub`'s weight changed by `delta`: tell each leaf that may see it.
    pub fn changed(&self, sub: &Subscription, delta: i64) {
        let list = self.list.read();
        for leaf in list.iter() {
            let Some(link) = leaf.leaf.get() else {
                continue;
            };
            if !link.sees(leaf, sub) {
                continue;
            }
            let mut buf = BytesMut::new();
            if link.update(&sub.subject, sub.queue.as_ref(), delta, &mut buf) {
                leaf.queue_raw(&buf);
                leaf.flush(false);
            }
        }
    }

    /// Adds `leaf` and queues for it the account's interest it may see (plus the loop
    /// detection subject, and `$JS.<domain>.API.>` when this server's JetStream has a
    /// domain and serves the account: the way in from another domain).
    /// `sublist` is the account's, write-locked by the caller.
    pub fn add(
        &self,
        sublist: &Sublist<SubRef>,
        leaf: &Arc<Client>,
        link: &LeafLink,
        domain_api: Option<&[u8]>,
    ) {
        let mut counts: HashMap<(Bytes, Option<Bytes>), u32> = HashMap::new();
        sublist.for_each(|s| {
            if link.sees(leaf, s) {
                *counts
                    .entry((s.subject.clone(), s.queue.clone()))
                    .or_insert(0) += s.weight();
            }
        });
        let mut buf = BytesMut::new();
        petrel_wire::route::sub(&mut buf, b"", &self.lds, None);
        if let Some(prefix) = domain_api {
            let mut api = prefix.to_vec();
            api.push(b'>');
            petrel_wire::route::sub(&mut buf, b"", &api, None);
        }
        for ((subject, queue), n) in &counts {
            let q = queue.as_ref().map(|q| (&q[..], *n));
            petrel_wire::route::sub(&mut buf, b"", subject, q);
        }
        *link.smap.lock() = counts;
        leaf.queue_raw(&buf);
        leaf.flush(false);
        self.list.write().push(leaf.clone());
    }

    /// Removes `leaf` (it closed).
    pub fn remove(&self, leaf: &Arc<Client>) {
        self.list.write().retain(|c| !Arc::ptr_eq(c, leaf));
    }
}

impl LeafLink {
    /// Applies `delta` members of `subject` (`queue`) to this link's map; appends the
    /// `LS+`/`LS-` the peer needs to `buf` and says whether there is one.
    fn update(
        &self,
        subject: &Bytes,
        queue: Option<&Bytes>,
        delta: i64,
        buf: &mut BytesMut,
    ) -> bool {
        let mut smap = self.smap.lock();
        let key = (subject.clone(), queue.cloned());
        let before = smap.get(&key).copied().unwrap_or(0);
        let after = u32::try_from((i64::from(before) + delta).max(0)).unwrap_or(u32::MAX);
        if after == 0 {
            smap.remove(&key);
        } else {
            smap.insert(key, after);
        }
        match (queue, before, after) {
            (_, b, a) if b == a => false,
            (q, _, 0) => {
                petrel_wire::route::unsub(buf, b"", subject, q.map(|q| &q[..]));
                true
            }
            (Some(q), _, a) => {
                petrel_wire::route::sub(buf, b"", subject, Some((q, a)));
                true
            }
            (None, 0, _) => {
                petrel_wire::route::sub(buf, b"", subject, None);
                true
            }
            (None, _, _) => false,
        }
    }

    /// The peer's subscriptions here (`/leafz` `subscriptions_list`).
    pub fn sub_subjects(&self) -> Vec<String> {
        self.subs
            .lock()
            .keys()
            .map(|(s, q)| match q {
                Some(q) => format!(
                    "{} {}",
                    String::from_utf8_lossy(s),
                    String::from_utf8_lossy(q)
                ),
                None => String::from_utf8_lossy(s).into_owned(),
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;
    use std::sync::Arc;

    use bytes::{Bytes, BytesMut};
    use petrel_wire::route::{parse_leaf, RouteOp};

    use crate::leaf::LeafLink;

    fn link() -> LeafLink {
        let stats = Arc::new(crate::stats::Stats::default());
        let accounts = crate::account::Accounts::new(&petrel_config::Options::default(), &stats);
        LeafLink {
            hub: true,
            solicited: false,
            cluster: String::new(),
            name: "peer".into(),
            remote_id: String::new(),
            remote_account: String::new(),
            account: accounts.global().clone(),
            deny_out: Vec::new(),
            deny_in: Vec::new(),
            smap: parking_lot::Mutex::new(HashMap::new()),
            subs: parking_lot::Mutex::new(HashMap::new()),
            websocket: false,
        }
    }

    proptest::proptest! {
        /// Whatever the order of subscriptions coming and going, the peer's view built
        /// from the `LS+`/`LS-` sent equals the naive count of members.
        #[test]
        fn the_peer_sees_the_member_counts(
            ops in proptest::collection::vec((0usize..3, proptest::option::of(0usize..2), 1u32..4, proptest::bool::ANY), 0..60),
        ) {
            let subjects = ["a", "b.*", "c.>"];
            let queues = ["q1", "q2"];
            let link = link();
            let mut naive: HashMap<(String, Option<String>), i64> = HashMap::new();
            let mut peer: HashMap<(Bytes, Option<Bytes>), u32> = HashMap::new();
            for (s, q, w, add) in ops {
                let subject = Bytes::from(subjects[s]);
                let queue = q.map(|q| Bytes::from(queues[q]));
                let weight = if queue.is_some() { i64::from(w) } else { 1 };
                let key = (subjects[s].to_string(), q.map(|q| queues[q].to_string()));
                let have = naive.get(&key).copied().unwrap_or(0);
                // Only members that exist can go.
                let delta = if add { weight } else if have >= weight { -weight } else { continue };
                *naive.entry(key).or_insert(0) += delta;
                let mut buf = BytesMut::new();
                link.update(&subject, queue.as_ref(), delta, &mut buf);
                while let Some(op) = parse_leaf(&mut buf, 4096, 1024).unwrap() {
                    match op {
                        RouteOp::Sub(s) => {
                            let (q, w) = match s.queue { Some((q, w)) => (Some(q), w), None => (None, 1) };
                            peer.insert((s.subject, q), w);
                        }
                        RouteOp::Unsub(s) => {
                            peer.remove(&(s.subject, s.queue.map(|q| q.0)));
                        }
                        other => panic!("{other:?}"),
                    }
                }
            }
            let want: HashMap<(Bytes, Option<Bytes>), u32> = naive
                .into_iter()
                .filter(|(_, n)| *n > 0)
                .map(|((s, q), n)| {
                    let plain = q.is_none();
                    ((Bytes::from(s), q.map(Bytes::from)), if plain { 1 } else { n as u32 })
                })
                .collect();
            proptest::prop_assert_eq!(peer, want);
        }
    }
}
