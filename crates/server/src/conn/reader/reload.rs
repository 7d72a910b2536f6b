//! Applying a reloaded configuration to a live connection: new limits, re-authentication
//! with the CONNECT it sent, new permissions, and subscriptions the new rules refuse.

use std::sync::atomic::Ordering;
use std::sync::Arc;

use petrel_wire::Parser;

use super::{Reader, Refused};
use crate::auth::Authed;
use crate::client::CloseReason;
use crate::sub::{SubRef, Subscription};

impl Reader<'_> {
    /// Apply the options now in force; `false` when the connection must close.
    pub(super) async fn apply_reload(&mut self, parser: &mut Parser) -> bool {
        let opts = self.client.effective_opts(self.shared.opts());
        self.trace = opts.trace;
        self.auth_required = opts.auth_required();
        self.opts = opts;
        parser.set_limits(self.opts.max_control_line, self.payload_limit());
        if !self.connected {
            return true;
        }
        let authed = if self.auth_required {
            let info = self.connect_info.clone();
            let authed = match info {
                Some(i) => self.authenticate(&i).await,
                None => Err(Refused::Credentials),
            };
            match authed {
                Ok(a) => a,
                Err(Refused::Revoked) => {
                    tracing::debug!(cid = self.client.cid, client = %self.client.addr, "User Authentication Revoked");
                    self.client
                        .err_and_close("User Authentication Revoked", CloseReason::Revocation);
                    return false;
                }
                Err(Refused::Credentials) => {
                    tracing::warn!(
                        cid = self.client.cid,
                        client = %self.client.addr,
                        "Authorization Violation: credentials no longer valid after reload"
                    );
                    self.client
                        .err_and_close("Authorization Violation", CloseReason::AuthFailure);
                    return false;
                }
            }
        } else {
            Authed::default()
        };
        if !self.set_authed(authed) {
            tracing::warn!(
                cid = self.client.cid,
                client = %self.client.addr,
                "Authorization Violation: account changed by reload"
            );
            self.client
                .err_and_close("Authorization Violation", CloseReason::AuthFailure);
            return false;
        }
        parser.set_limits(self.opts.max_control_line, self.payload_limit());
        self.recheck_subscriptions();
        // Over a (new) JWT subscription limit: closed, as nats-server does (which also
        // closes a client exactly at the limit; Petrel lets that one stay).
        let held = self.client.subs.lock().len() as u64;
        if self
            .jwt
            .as_ref()
            .and_then(|j| j.max_subs)
            .is_some_and(|max| held > max)
        {
            self.client.err_and_close(
                "maximum subscriptions exceeded",
                CloseReason::MaxSubscriptionsExceeded,
            );
            return false;
        }
        true
    }

    /// Drop subscriptions the new permissions refuse (each with its -ERR) and refresh the
    /// delivery-time deny check of the others.
    fn recheck_subscriptions(&mut self) {
        let subs: Vec<Arc<Subscription>> = self.client.subs.lock().values().cloned().collect();
        for sub in subs {
            let perms = self.perms.clone();
            let allowed = perms
                .as_ref()
                .is_none_or(|p| p.can_subscribe(&sub.subject, sub.queue.as_deref()));
            if !allowed {
                self.shared.remove_sub(&SubRef(sub.clone()));
                let what = format!(
                    "Permissions Violation for Subscription to \"{}\"",
                    String::from_utf8_lossy(&sub.subject)
                );
                self.violation(&what);
                continue;
            }
            let deny_check = perms.filter(|p| p.needs_delivery_check(&sub.subject));
            let same = match (&deny_check, &sub.deny_check) {
                (None, None) => true,
                (Some(a), Some(b)) => Arc::ptr_eq(a, b),
                _ => false,
            };
            if !same {
                self.replace_subscription(&sub, deny_check);
            }
        }
    }

    /// Swap a subscription for one with a new deny check, keeping its sid and count.
    fn replace_subscription(
        &mut self,
        old: &Arc<Subscription>,
        deny_check: Option<Arc<crate::perms::ClientPerms>>,
    ) {
        let fresh = Subscription::new(
            old.client.clone(),
            old.subject.clone(),
            old.queue.clone(),
            old.sid.clone(),
        );
        fresh
            .max
            .store(old.max.load(Ordering::Acquire), Ordering::Release);
        fresh
            .delivered
            .store(old.delivered.load(Ordering::Acquire), Ordering::Release);
        let new = Arc::new(Subscription {
            deny_check,
            internal: old.internal.clone(),
            ..fresh
        });
        let mut sublist = self.account.sublist.write();
        if sublist.remove(&old.subject, old.queue.as_deref(), &SubRef(old.clone())) {
            let _ = sublist.insert(&new.subject, new.queue.as_deref(), SubRef(new.clone()));
            drop(sublist);
            self.client.subs.lock().insert(new.sid.clone(), new);
        }
    }
}
