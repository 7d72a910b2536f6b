//! `/subsz` data: Sublist statistics ([`SublistStats`]) and subscription snapshots
//! ([`SubSnapshot`]) for `/subsz?subs=1` and `/connz?subs=1`.

use std::cmp::Ordering as CmpOrdering;
use std::sync::atomic::Ordering;
use std::sync::Arc;

use crate::client::Client;
use crate::server::Shared;
use crate::sub::{SubRef, Subscription};

pub use petrel_config::GLOBAL_ACCOUNT;

/// Sublist statistics in nats-server's `/subsz` terms.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct SublistStats {
    /// Subscriptions held (internal JetStream ones included).
    pub num_subscriptions: u64,
    /// Entries in the readers' match caches.
    pub num_cache: u64,
    /// Subscriptions inserted since start.
    pub num_inserts: u64,
    /// Subscriptions removed since start.
    pub num_removes: u64,
    /// Lookups since start (cache hits included).
    pub num_matches: u64,
    /// Share of lookups answered by a match cache (0..=1).
    pub cache_hit_rate: f64,
    /// Largest fan-out (subscriptions plus queue groups) of a computed match.
    pub max_fanout: u64,
    /// Average fan-out of computed matches.
    pub avg_fanout: f64,
}

/// One subscription as monitoring shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SubSnapshot {
    /// The account it is in.
    pub account: String,
    /// Subject (may hold wildcards).
    pub subject: String,
    /// Queue group, if any.
    pub queue: Option<String>,
    /// Subscription id on its connection.
    pub sid: String,
    /// Messages delivered.
    pub msgs: u64,
    /// Auto-unsubscribe limit (0 = none).
    pub max: u64,
    /// Connection id (0 = the server's internal client, e.g. JetStream).
    pub cid: u64,
}

impl SubSnapshot {
    pub(crate) fn of(sub: &Subscription) -> Self {
        let text = |b: &[u8]| String::from_utf8_lossy(b).into_owned();
        SubSnapshot {
            account: sub
                .client
                .account()
                .map_or_else(|| GLOBAL_ACCOUNT.to_string(), |a| a.name.clone()),
            subject: text(&sub.subject),
            queue: sub.queue.as_deref().map(text),
            sid: text(&sub.sid),
            msgs: sub.delivered.load(Ordering::Relaxed),
            max: sub.max.load(Ordering::Relaxed),
            cid: sub.client.cid,
        }
    }
}

/// Numeric sids in numeric order, others after them in byte order.
pub(crate) fn sid_order(a: &str, b: &str) -> CmpOrdering {
    match (a.parse::<u64>(), b.parse::<u64>()) {
        (Ok(x), Ok(y)) => x.cmp(&y),
        (Ok(_), Err(_)) => CmpOrdering::Less,
        (Err(_), Ok(_)) => CmpOrdering::Greater,
        (Err(_), Err(_)) => a.cmp(b),
    }
}

/// The Sublist's counters plus the routers' lookup statistics.
pub(crate) fn sublist_stats(shared: &Shared) -> SublistStats {
    let (mut count, mut inserts, mut removes) = (0, 0, 0);
    for account in shared.accounts.iter() {
        let sl = account.sublist.read();
        count += sl.count() as u64;
        inserts += sl.inserts();
        removes += sl.removes();
    }
    let st = &shared.stats;
    let load = |a: &std::sync::atomic::AtomicU64| a.load(Ordering::Relaxed);
    let matches = load(&st.sub_matches);
    let hits = load(&st.sub_cache_hits);
    let results = load(&st.sub_results);
    let ratio = |n: u64, d: u64| if d == 0 { 0.0 } else { n as f64 / d as f64 };
    SublistStats {
        num_subscriptions: count,
        num_cache: load(&st.sub_cache_entries),
        num_inserts: inserts,
        num_removes: removes,
        num_matches: matches,
        cache_hit_rate: ratio(hits, matches),
        max_fanout: load(&st.sub_fanout_max),
        avg_fanout: ratio(load(&st.sub_fanout_total), results),
    }
}

/// Every subscription, or those matching the literal subject `test`; ordered by
/// connection, then sid. The full list is read connection by connection (each one's own
/// lock, briefly), never by walking the Sublist under its lock, so a large `/subsz` cannot
/// hold up SUB, UNSUB or publishers' lookups.
pub(crate) fn subscriptions(shared: &Shared, test: Option<&str>) -> Vec<SubSnapshot> {
    let mut out = Vec::new();
    match test {
        Some(subject) => {
            for account in shared.accounts.iter() {
                let r = account.sublist.read().match_subject(subject.as_bytes());
                let mut add = |s: &SubRef| out.push(SubSnapshot::of(s));
                r.psubs.iter().for_each(&mut add);
                r.qsubs.iter().flat_map(|(_, g)| g).for_each(&mut add);
            }
        }
        None => {
            let mut clients: Vec<Arc<Client>> = shared.clients.lock().values().cloned().collect();
            clients.extend(shared.accounts.iter().map(|a| a.system.clone()));
            for c in clients {
                let subs: Vec<Arc<Subscription>> = c.subs.lock().values().cloned().collect();
                out.extend(subs.iter().map(|s| SubSnapshot::of(s)));
            }
        }
    }
    out.sort_by(|a, b| {
        a.cid
            .cmp(&b.cid)
            .then_with(|| sid_order(&a.sid, &b.sid))
            .then_with(|| a.subject.cmp(&b.subject))
    });
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sids_sort_numerically() {
        let mut v = vec!["10", "2", "b", "1", "a"];
        v.sort_by(|a, b| sid_order(a, b));
        assert_eq!(v, ["1", "2", "10", "a", "b"]);
    }
}
