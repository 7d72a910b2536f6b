//! Compiled per-user permissions: allow/deny Sublists for publish and subscribe, the
//! delivery-time deny check for wildcard subscriptions that overlap a deny rule, and the
//! temporary response permissions granted by `allow_responses`.

use std::collections::{HashMap, VecDeque};
use std::time::Instant;

use bytes::Bytes;
use parking_lot::Mutex;
use petrel_config::{Permissions, ResponsePermission, SubjectPermission};
use petrel_subject::{is_subset, subjects_collide, Sublist};

/// One rule: a subject (wildcards allowed) and, for subscribe rules, an optional queue.
struct Entry {
    subject: Vec<u8>,
    queue: Option<Vec<u8>>,
}

impl Entry {
    fn parse(entry: &str) -> Entry {
        let mut parts = entry.split_whitespace();
        Entry {
            subject: parts.next().unwrap_or("").as_bytes().to_vec(),
            queue: parts.next().map(|q| q.as_bytes().to_vec()),
        }
    }

    /// Whether every subject `subject` covers is covered by this rule.
    fn covers(&self, subject: &[u8]) -> bool {
        is_subset(subject, &self.subject)
    }

    /// Whether `queue` is this rule's queue (literally, or within its wildcard pattern).
    fn queue_matches(&self, queue: &[u8]) -> bool {
        self.queue
            .as_deref()
            .is_some_and(|q| q == queue || is_subset(queue, q))
    }
}

/// One direction's rules: Sublists for literal publish subjects (fast, cached by the
/// reader) and the entries for subscription subjects, which may hold wildcards.
struct Filter {
    allow: Option<Sublist<u32>>,
    deny: Option<Sublist<u32>>,
    allow_entries: Vec<Entry>,
    deny_entries: Vec<Entry>,
}

impl Filter {
    fn compile(sp: &SubjectPermission) -> Filter {
        let build = |list: &[String]| -> Option<Sublist<u32>> {
            if list.is_empty() {
                return None;
            }
            let mut sl = Sublist::new();
            for (i, entry) in list.iter().enumerate() {
                let e = Entry::parse(entry);
                // Entries were validated by the config crate; a bad one simply never matches.
                let _ = sl.insert(&e.subject, e.queue.as_deref(), i as u32);
            }
            Some(sl)
        };
        Filter {
            allow: build(&sp.allow),
            deny: build(&sp.deny),
            allow_entries: sp.allow.iter().map(|e| Entry::parse(e)).collect(),
            deny_entries: sp.deny.iter().map(|e| Entry::parse(e)).collect(),
        }
    }

    /// nats-server's rule for a literal subject: allowed if an allow entry matches (or
    /// there is no allow list) and no deny entry matches.
    fn permits_literal(&self, subject: &[u8]) -> bool {
        let hit = |sl: &Sublist<u32>| !sl.match_subject(subject).psubs.is_empty();
        self.allow.as_ref().is_none_or(hit) && !self.deny.as_ref().is_some_and(hit)
    }

    /// A subscription (whose subject may hold wildcards) is allowed when it is a subset
    /// of an allow entry — `foo.*` admits `foo.bar` and `foo.*`, never `foo.>` or `>` —
    /// and not a subset of a deny entry (a wildcard that only overlaps a deny entry is
    /// allowed and filtered at delivery). With a queue, queue-qualified entries covering
    /// the subject decide, as in nats-server.
    fn permits_subscription(&self, subject: &[u8], queue: Option<&[u8]>) -> bool {
        let plain = |entries: &[Entry]| {
            entries
                .iter()
                .any(|e| e.queue.is_none() && e.covers(subject))
        };
        let queued = |entries: &[Entry]| {
            entries
                .iter()
                .filter(|e| e.queue.is_some() && e.covers(subject))
                .map(|e| queue.is_some_and(|q| e.queue_matches(q)))
                .reduce(|a, b| a || b)
        };
        let allowed = self.allow.is_none()
            || match (queue, queued(&self.allow_entries)) {
                (Some(_), Some(queue_ok)) => queue_ok,
                _ => plain(&self.allow_entries),
            };
        let denied = self.deny.is_some()
            && (plain(&self.deny_entries)
                || (queue.is_some() && queued(&self.deny_entries) == Some(true)));
        allowed && !denied
    }
}

/// A connection's permissions.
pub(crate) struct ClientPerms {
    publish: Option<Filter>,
    subscribe: Option<Filter>,
    pub responses: Option<ResponsePermission>,
}

impl ClientPerms {
    /// Compile the configured permissions.
    pub fn compile(p: &Permissions) -> ClientPerms {
        ClientPerms {
            publish: p.publish.as_ref().map(Filter::compile),
            subscribe: p.subscribe.as_ref().map(Filter::compile),
            responses: p.allow_responses,
        }
    }

    /// May this connection publish to `subject` (response permissions aside)?
    pub fn can_publish(&self, subject: &[u8]) -> bool {
        self.publish
            .as_ref()
            .is_none_or(|f| f.permits_literal(subject))
    }

    /// May this connection subscribe to `subject` (in `queue`)?
    pub fn can_subscribe(&self, subject: &[u8], queue: Option<&[u8]>) -> bool {
        self.subscribe
            .as_ref()
            .is_none_or(|f| f.permits_subscription(subject, queue))
    }

    /// Whether a (wildcard) subscription on `subject` overlaps a subscribe deny rule, so
    /// each delivery must be checked against the deny list.
    pub fn needs_delivery_check(&self, subject: &[u8]) -> bool {
        self.subscribe.as_ref().is_some_and(|f| {
            f.deny_entries
                .iter()
                .any(|d| subjects_collide(&d.subject, subject))
        })
    }

    /// Whether delivering a message on the literal `subject` is denied.
    pub fn delivery_denied(&self, subject: &[u8]) -> bool {
        self.subscribe
            .as_ref()
            .and_then(|f| f.deny.as_ref())
            .is_some_and(|d| !d.match_subject(subject).psubs.is_empty())
    }
}

/// Reply subjects this connection may answer thanks to `allow_responses`: bounded in
/// count and bytes; past either bound the oldest grants go first (never all at once).
#[derive(Default)]
pub(crate) struct Responses {
    inner: Mutex<Grants>,
}

#[derive(Default)]
struct Grants {
    /// reply -> (responses left, expiry, grant number).
    map: HashMap<Bytes, (usize, Option<Instant>, u64)>,
    /// (reply, grant number) in grant order; a re-granted subject's older entry is stale.
    order: VecDeque<(Bytes, u64)>,
    bytes: usize,
    next: u64,
}

/// Most reply permissions one connection keeps.
const MAX_RESPONSES: usize = 64 * 1024;
/// Most reply-subject bytes one connection keeps.
const MAX_RESPONSE_BYTES: usize = 4 * 1024 * 1024;

impl Grants {
    fn evict_oldest(&mut self) {
        if let Some((reply, n)) = self.order.pop_front() {
            self.bytes -= reply.len();
            if self.map.get(&reply).is_some_and(|g| g.2 == n) {
                self.map.remove(&reply);
            }
        }
    }
}

impl Responses {
    /// Grant a response permission for `reply` (a request was delivered to this client).
    pub fn grant(&self, reply: &[u8], rp: ResponsePermission) {
        let expires = (!rp.expires.is_zero())
            .then(|| Instant::now().checked_add(rp.expires))
            .flatten();
        let mut g = self.inner.lock();
        let reply = Bytes::copy_from_slice(reply);
        let n = g.next;
        g.next += 1;
        g.bytes += reply.len();
        g.order.push_back((reply.clone(), n));
        g.map.insert(reply, (rp.max.max(1), expires, n));
        while g.order.len() > MAX_RESPONSES || g.bytes > MAX_RESPONSE_BYTES {
            g.evict_oldest();
        }
    }

    /// Use one response permission for `subject`, if there is a live one.
    pub fn consume(&self, subject: &[u8]) -> bool {
        let mut g = self.inner.lock();
        let Some((left, expires, _)) = g.map.get_mut(subject) else {
            return false;
        };
        if expires.is_some_and(|e| e <= Instant::now()) {
            g.map.remove(subject);
            return false;
        }
        *left -= 1;
        if *left == 0 {
            g.map.remove(subject);
        }
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn sp(allow: &[&str], deny: &[&str]) -> Option<SubjectPermission> {
        Some(SubjectPermission {
            allow: allow.iter().map(|s| s.to_string()).collect(),
            deny: deny.iter().map(|s| s.to_string()).collect(),
        })
    }

    #[test]
    fn allow_deny_and_wildcards() {
        let p = ClientPerms::compile(&Permissions {
            publish: sp(&["chat.workflow.>"], &["chat.workflow.admin.*"]),
            subscribe: sp(&["chat.>", "jobs q1"], &["chat.secret"]),
            allow_responses: None,
        });
        assert!(p.can_publish(b"chat.workflow.execute.run"));
        assert!(
            !p.can_publish(b"chat.workflow.admin.reset"),
            "deny overrides allow"
        );
        assert!(!p.can_publish(b"other"));
        assert!(p.can_subscribe(b"chat.*", None));
        assert!(p.can_subscribe(b"chat.>", None));
        assert!(!p.can_subscribe(b"chat.secret", None));
        assert!(!p.can_subscribe(b">", None));
        assert!(p.can_subscribe(b"jobs", Some(b"q1")));
        assert!(!p.can_subscribe(b"jobs", Some(b"q2")));
        assert!(!p.can_subscribe(b"jobs", None));
        assert!(p.needs_delivery_check(b"chat.*"));
        assert!(!p.needs_delivery_check(b"chat.a.b"));
        assert!(p.delivery_denied(b"chat.secret"));
        assert!(!p.delivery_denied(b"chat.open"));
    }

    fn subs(allow: &[&str], deny: &[&str]) -> ClientPerms {
        ClientPerms::compile(&Permissions {
            publish: None,
            subscribe: sp(allow, deny),
            allow_responses: None,
        })
    }

    #[test]
    fn wildcard_subscriptions_must_be_subsets_of_an_allow_entry() {
        let p = subs(&["foo.*"], &[]);
        for ok in ["foo.bar", "foo.*"] {
            assert!(p.can_subscribe(ok.as_bytes(), None), "{ok}");
        }
        for bad in ["foo.>", ">", "*.*", "foo.bar.baz", "*.bar", "*"] {
            assert!(!p.can_subscribe(bad.as_bytes(), None), "{bad}");
        }
        let p = subs(&["foo.>"], &[]);
        assert!(p.can_subscribe(b"foo.*", None));
        assert!(p.can_subscribe(b"foo.>", None));
        assert!(!p.can_subscribe(b">", None));
        assert!(!p.can_subscribe(b"*.bar", None));
        let p = subs(&["foo.*.baz"], &[]);
        assert!(p.can_subscribe(b"foo.*.baz", None));
        assert!(!p.can_subscribe(b"foo.*.*", None));
        assert!(!p.can_subscribe(b"foo.>", None));
    }

    #[test]
    fn deny_refuses_subsets_and_filters_overlaps() {
        let p = subs(&[], &["foo.*"]);
        assert!(!p.can_subscribe(b"foo.bar", None));
        assert!(!p.can_subscribe(b"foo.*", None));
        // Only overlapping: allowed, each delivery checked.
        assert!(p.can_subscribe(b"foo.>", None));
        assert!(p.needs_delivery_check(b"foo.>"));
        assert!(p.delivery_denied(b"foo.x"));
        assert!(!p.delivery_denied(b"foo.x.y"));
        assert!(p.can_subscribe(b">", None));
        assert!(p.needs_delivery_check(b">"));
    }

    #[test]
    fn queue_qualified_entries() {
        let p = subs(&["foo.* q1", "bar.* q.*"], &[]);
        assert!(p.can_subscribe(b"foo.bar", Some(b"q1")));
        assert!(!p.can_subscribe(b"foo.>", Some(b"q1")));
        assert!(!p.can_subscribe(b"foo.bar", Some(b"q2")));
        assert!(!p.can_subscribe(b"foo.bar", None));
        assert!(p.can_subscribe(b"bar.x", Some(b"q.a")));
        assert!(!p.can_subscribe(b"bar.x", Some(b"q")));
        let p = subs(&[], &["foo.* q1"]);
        assert!(!p.can_subscribe(b"foo.bar", Some(b"q1")));
        assert!(p.can_subscribe(b"foo.bar", Some(b"q2")));
        assert!(p.can_subscribe(b"foo.bar", None));
    }

    #[test]
    fn responses_are_limited_and_expire() {
        let r = Responses::default();
        r.grant(
            b"_INBOX.1",
            ResponsePermission {
                max: 2,
                expires: Duration::ZERO,
            },
        );
        assert!(r.consume(b"_INBOX.1"));
        assert!(r.consume(b"_INBOX.1"));
        assert!(!r.consume(b"_INBOX.1"));
        r.grant(
            b"_INBOX.2",
            ResponsePermission {
                max: 1,
                expires: Duration::from_nanos(1),
            },
        );
        std::thread::sleep(Duration::from_millis(2));
        assert!(!r.consume(b"_INBOX.2"));
    }

    #[test]
    fn responses_are_bounded_and_evict_the_oldest_first() {
        let r = Responses::default();
        let rp = ResponsePermission {
            max: 1,
            expires: Duration::ZERO,
        };
        for i in 0..MAX_RESPONSES + 10 {
            r.grant(format!("_INBOX.{i}").as_bytes(), rp);
        }
        assert!(!r.consume(b"_INBOX.0"), "oldest evicted");
        assert!(r.consume(format!("_INBOX.{}", MAX_RESPONSES + 9).as_bytes()));
        // Large reply subjects are bounded by bytes.
        let big = vec![b'x'; 1024 * 1024];
        for i in 0..8u8 {
            let mut s = big.clone();
            s[0] = i;
            r.grant(&s, rp);
        }
        assert!(r.inner.lock().bytes <= MAX_RESPONSE_BYTES);
        // A huge expiry does not overflow.
        r.grant(
            b"_INBOX.far",
            ResponsePermission {
                max: 1,
                expires: Duration::MAX,
            },
        );
        assert!(r.consume(b"_INBOX.far"));
    }
}
