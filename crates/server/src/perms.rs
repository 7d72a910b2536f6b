//! Compiled per-user permissions: allow/deny Sublists for publish and subscribe, the
//! delivery-time deny check for wildcard subscriptions that overlap a deny rule, and the
//! temporary response permissions granted by `allow_responses`.

use std::collections::HashMap;
use std::time::Instant;

use bytes::Bytes;
use parking_lot::Mutex;
use petrel_config::{Permissions, ResponsePermission, SubjectPermission};
use petrel_subject::{subjects_collide, Sublist};

/// One direction's rules as Sublists (queue-qualified entries become queue entries).
struct Filter {
    allow: Option<Sublist<u32>>,
    deny: Option<Sublist<u32>>,
    /// Deny subjects, for the overlap test on wildcard subscriptions.
    deny_subjects: Vec<Vec<u8>>,
}

impl Filter {
    fn compile(sp: &SubjectPermission) -> Filter {
        let build = |list: &[String]| -> Option<Sublist<u32>> {
            if list.is_empty() {
                return None;
            }
            let mut sl = Sublist::new();
            for (i, entry) in list.iter().enumerate() {
                let mut parts = entry.split_whitespace();
                let subject = parts.next().unwrap_or("");
                // Entries were validated by the config crate; a bad one simply never matches.
                let _ = sl.insert(
                    subject.as_bytes(),
                    parts.next().map(str::as_bytes),
                    i as u32,
                );
            }
            Some(sl)
        };
        Filter {
            allow: build(&sp.allow),
            deny: build(&sp.deny),
            deny_subjects: sp
                .deny
                .iter()
                .filter_map(|d| d.split_whitespace().next())
                .map(|d| d.as_bytes().to_vec())
                .collect(),
        }
    }

    /// nats-server's rule: allowed if an allow entry matches (or there is no allow list)
    /// and no deny entry matches. With a queue, queue-qualified entries decide when present.
    fn permits(&self, subject: &[u8], queue: Option<&[u8]>) -> bool {
        let hit = |sl: &Sublist<u32>| {
            let r = sl.match_subject(subject);
            match queue {
                Some(q) if !r.qsubs.is_empty() => r.qsubs.iter().any(|(name, _)| &name[..] == q),
                _ => !r.psubs.is_empty(),
            }
        };
        if let Some(allow) = &self.allow {
            if !hit(allow) {
                return false;
            }
        }
        match &self.deny {
            Some(deny) => !hit(deny),
            None => true,
        }
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
            .is_none_or(|f| f.permits(subject, None))
    }

    /// May this connection subscribe to `subject` (in `queue`)?
    pub fn can_subscribe(&self, subject: &[u8], queue: Option<&[u8]>) -> bool {
        self.subscribe
            .as_ref()
            .is_none_or(|f| f.permits(subject, queue))
    }

    /// Whether a (wildcard) subscription on `subject` overlaps a subscribe deny rule, so
    /// each delivery must be checked against the deny list.
    pub fn needs_delivery_check(&self, subject: &[u8]) -> bool {
        self.subscribe
            .as_ref()
            .is_some_and(|f| f.deny_subjects.iter().any(|d| subjects_collide(d, subject)))
    }

    /// Whether delivering a message on the literal `subject` is denied.
    pub fn delivery_denied(&self, subject: &[u8]) -> bool {
        self.subscribe
            .as_ref()
            .and_then(|f| f.deny.as_ref())
            .is_some_and(|d| !d.match_subject(subject).psubs.is_empty())
    }
}

/// Reply subjects this connection may answer thanks to `allow_responses`.
#[derive(Default)]
pub(crate) struct Responses {
    map: Mutex<HashMap<Bytes, (usize, Option<Instant>)>>,
}

/// Most reply permissions one connection keeps; older ones are dropped beyond this.
const MAX_RESPONSES: usize = 64 * 1024;

impl Responses {
    /// Grant a response permission for `reply` (a request was delivered to this client).
    pub fn grant(&self, reply: &[u8], rp: ResponsePermission) {
        let expires = (!rp.expires.is_zero()).then(|| Instant::now() + rp.expires);
        let mut map = self.map.lock();
        if map.len() >= MAX_RESPONSES {
            let now = Instant::now();
            map.retain(|_, (_, exp)| exp.is_none_or(|e| e > now));
            if map.len() >= MAX_RESPONSES {
                map.clear();
            }
        }
        map.insert(Bytes::copy_from_slice(reply), (rp.max.max(1), expires));
    }

    /// Use one response permission for `subject`, if there is a live one.
    pub fn consume(&self, subject: &[u8]) -> bool {
        let mut map = self.map.lock();
        let Some((left, expires)) = map.get_mut(subject) else {
            return false;
        };
        if expires.is_some_and(|e| e <= Instant::now()) {
            map.remove(subject);
            return false;
        }
        *left -= 1;
        if *left == 0 {
            map.remove(subject);
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
}
