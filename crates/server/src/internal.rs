//! The server side of JetStream's [`Port`], one per account: internal subscriptions in
//! the account's Sublist whose messages go to the [`Handler`] they carry instead of a
//! socket, and publishing from inside the server through the same router clients use — as
//! the account's system client, so nothing published here reaches a subscription that
//! accepts only clients.

use std::sync::{Arc, Weak};

use bytes::{Bytes, BytesMut};
use petrel_jetstream::{Accept, Delivery, Handler, Port, SubId};

use crate::account::Account;
use crate::client::{Client, ClientKind};
use crate::outbound::MsgRef;
use crate::router::{Publisher, Router};
use crate::server::Shared;
use crate::sub::{Internal, SubRef, Subscription};

/// Routes JetStream's publishes and subscriptions through the server.
pub(crate) struct ServerPort {
    shared: Weak<Shared>,
    /// The account it serves.
    account: Arc<Account>,
    /// The internal client every internal subscription and publish belongs to.
    system: Arc<Client>,
    /// The internal client JetStream's own requests come from ([`Port::request`]).
    requester: Arc<Client>,
}

/// Routing contexts for internal publishes kept per worker thread, one per account
/// (so each JetStream task routes with its thread's context and no task waits on another's
/// publish; match caches stay warm).
const THREAD_ROUTERS: usize = 16;

thread_local! {
    static ROUTERS: std::cell::RefCell<Vec<(Weak<Account>, Router)>> =
        const { std::cell::RefCell::new(Vec::new()) };
}

/// Runs `f` with this thread's routing context for `account`. A nested call on the same
/// thread (a handler publishing while a publish is routed) gets a fresh context.
fn with_router<R>(account: &Arc<Account>, f: impl FnOnce(&mut Router) -> R) -> R {
    ROUTERS.with(|cell| {
        let Ok(mut routers) = cell.try_borrow_mut() else {
            return f(&mut Router::new());
        };
        let found = routers
            .iter()
            .position(|(a, _)| std::ptr::eq(a.as_ptr(), Arc::as_ptr(account)));
        let i = match found {
            Some(i) => i,
            None => {
                routers.retain(|(a, _)| a.strong_count() > 0);
                if routers.len() >= THREAD_ROUTERS {
                    routers.remove(0);
                }
                routers.push((Arc::downgrade(account), Router::new()));
                routers.len() - 1
            }
        };
        f(&mut routers[i].1)
    })
}

impl ServerPort {
    pub fn new(shared: &Arc<Shared>, account: Arc<Account>) -> Arc<ServerPort> {
        let requester = Arc::new(Client::new(
            ClientKind::JetStream,
            0,
            std::net::SocketAddr::from(([0, 0, 0, 0], 0)),
            usize::MAX / 4,
            shared.stats.clone(),
            String::new(),
        ));
        requester.set_account(&account);
        Arc::new(ServerPort {
            shared: Arc::downgrade(shared),
            requester,
            system: account.system.clone(),
            account,
        })
    }

    /// Remove every internal subscription (shutdown).
    pub fn clear(&self) {
        let subs: Vec<Arc<Subscription>> = self.system.subs.lock().values().cloned().collect();
        if let Some(shared) = self.shared.upgrade() {
            for sub in subs {
                shared.remove_sub(&SubRef(sub));
            }
        }
    }
}

impl ServerPort {
    /// Routes messages as the system client (`publish` is given the router, the server and
    /// the publisher), then flushes every touched connection once. Internal publishers never
    /// stall; slow consumers are cut off as usual.
    fn route(&self, publish: impl FnOnce(&mut Router, &Shared, Publisher<'_>)) {
        self.route_as(&self.system, publish);
    }

    /// [`ServerPort::route`] as `client`.
    fn route_as(
        &self,
        client: &Arc<Client>,
        publish: impl FnOnce(&mut Router, &Shared, Publisher<'_>),
    ) {
        let Some(shared) = self.shared.upgrade() else {
            return;
        };
        let from = Publisher {
            account: &self.account,
            client,
            echo: true,
            no_responders: false,
            queues: None,
        };
        with_router(&self.account, |router| {
            publish(router, &shared, from);
            router.flush(&shared);
            router.stalled.clear();
        });
    }
}

impl ServerPort {
    /// Publishes one message as `client` (the system client, or JetStream's requester).
    fn publish_one(
        &self,
        client: &Arc<Client>,
        subject: &str,
        reply: Option<&str>,
        headers: Option<Bytes>,
        payload: Bytes,
    ) {
        let (data, hdr_len) = join(headers.as_ref(), &payload);
        let msg = MsgRef {
            subject: subject.as_bytes(),
            reply: reply.map(str::as_bytes),
            hdr_len,
            data: &data,
            owner: Some(&data),
        };
        self.route_as(client, |router, shared, from| {
            router.publish(shared, from, &msg);
        });
    }
}

/// One buffer holding the header block then the payload, and the header length.
fn join(headers: Option<&Bytes>, payload: &Bytes) -> (Bytes, Option<usize>) {
    match headers {
        Some(h) => {
            let mut b = BytesMut::with_capacity(h.len() + payload.len());
            b.extend_from_slice(h);
            b.extend_from_slice(payload);
            (b.freeze(), Some(h.len()))
        }
        None => (payload.clone(), None),
    }
}

impl Port for ServerPort {
    fn publish(&self, subject: &str, reply: Option<&str>, headers: Option<Bytes>, payload: Bytes) {
        self.publish_one(&self.system, subject, reply, headers, payload);
    }

    fn request(&self, subject: &str, reply: Option<&str>, headers: Option<Bytes>, payload: Bytes) {
        self.publish_one(&self.requester, subject, reply, headers, payload);
    }

    fn publish_replies(&self, replies: Vec<(String, Bytes)>) {
        // One flush for the batch: each requester gets all its acks in one write.
        self.route(|router, shared, from| {
            for (subject, payload) in &replies {
                let msg = MsgRef {
                    subject: subject.as_bytes(),
                    reply: None,
                    hdr_len: None,
                    data: payload,
                    owner: Some(payload),
                };
                router.publish(shared, from, &msg);
            }
        });
    }

    fn deliver(&self, msgs: Vec<Delivery>) {
        self.route(|router, shared, from| {
            for m in &msgs {
                let (data, hdr_len) = match (&m.raw, &m.headers) {
                    // Stored contiguously: sent as read, no copy.
                    (Some(raw), Some(h)) => (raw.clone(), Some(h.len())),
                    _ => join(m.headers.as_ref(), &m.payload),
                };
                let msg = MsgRef {
                    subject: m.subject.as_bytes(),
                    reply: m.reply.as_deref().map(str::as_bytes),
                    hdr_len,
                    data: &data,
                    owner: Some(&data),
                };
                router.publish_on(shared, from, m.route.as_bytes(), &msg);
            }
        });
    }

    fn has_interest(&self, subject: &str) -> bool {
        with_router(&self.account, |router| {
            router.has_interest(&self.account, subject.as_bytes())
        })
    }

    fn subscribe(
        &self,
        subject: &str,
        queue: Option<&str>,
        accept: Accept,
        handler: Arc<dyn Handler>,
    ) -> SubId {
        // Ids come from the account: several ports (JetStream's, the system services')
        // share its internal client, whose subscriptions are keyed by id.
        let id = self.account.next_internal_sid();
        if self.shared.strong_count() == 0 {
            return id;
        }
        let sub = Arc::new(Subscription {
            internal: Some(Internal { handler, accept }),
            ..Subscription::new(
                self.system.clone(),
                Bytes::copy_from_slice(subject.as_bytes()),
                queue.map(|q| Bytes::copy_from_slice(q.as_bytes())),
                Bytes::from(id.to_string()),
            )
        });
        if self.account.insert_sub(&sub).is_ok() {
            self.system.subs.lock().insert(sub.sid.clone(), sub);
        } else {
            tracing::warn!(
                subject,
                "JetStream asked for an invalid internal subscription"
            );
        }
        id
    }

    fn unsubscribe(&self, id: SubId) {
        let sid = Bytes::from(id.to_string());
        let Some(sub) = self.system.subs.lock().get(&sid).cloned() else {
            return;
        };
        if let Some(shared) = self.shared.upgrade() {
            shared.remove_sub(&SubRef(sub));
        }
    }
}
