//! Subscriptions as stored in the Sublist.

use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::sync::Arc;

use bytes::Bytes;
use petrel_jetstream::{Accept, Handler};

use crate::client::Client;
use crate::perms::ClientPerms;

/// One subscription of one client.
pub(crate) struct Subscription {
    pub client: Arc<Client>,
    pub subject: Bytes,
    pub queue: Option<Bytes>,
    pub sid: Bytes,
    /// Auto-unsubscribe after this many deliveries (0 = never).
    pub max: AtomicU64,
    pub delivered: AtomicU64,
    /// Set when this (wildcard) subscription overlaps a subscribe deny rule: every
    /// delivery is checked against it.
    pub deny_check: Option<Arc<ClientPerms>>,
    /// For an internal subscription (JetStream): the handler matching messages go to
    /// instead of a socket.
    pub internal: Option<Internal>,
    /// For an account import: what to publish in the other account.
    pub import: Option<Arc<dyn crate::imports::Importer>>,
    /// For a route peer's queue subscription: its members on the peer (`RS+` weight).
    pub weight: AtomicU32,
}

/// The target of an internal subscription: the handler it carries and which publishers
/// it hears.
#[derive(Clone)]
pub(crate) struct Internal {
    pub handler: Arc<dyn Handler>,
    pub accept: Accept,
}

impl Subscription {
    /// A fresh subscription of `client` (no max, no deny check, not internal).
    pub fn new(client: Arc<Client>, subject: Bytes, queue: Option<Bytes>, sid: Bytes) -> Self {
        Self {
            client,
            subject,
            queue,
            sid,
            max: AtomicU64::new(0),
            delivered: AtomicU64::new(0),
            deny_check: None,
            internal: None,
            import: None,
            weight: AtomicU32::new(1),
        }
    }

    /// The `RS+` weight of a route peer's queue subscription (1 for others).
    pub fn weight(&self) -> u32 {
        self.weight.load(Ordering::Relaxed)
    }

    /// Count one delivery. Returns `(deliver, now_done)`: whether to deliver this message
    /// and whether the subscription has reached its maximum with it.
    pub fn take_delivery(&self) -> (bool, bool) {
        let max = self.max.load(Ordering::Acquire);
        let n = self.delivered.fetch_add(1, Ordering::AcqRel) + 1;
        if max == 0 {
            return (true, false);
        }
        (n <= max, n == max)
    }
}

/// Pointer-identity handle used as the Sublist item.
#[derive(Clone)]
pub(crate) struct SubRef(pub Arc<Subscription>);

impl PartialEq for SubRef {
    fn eq(&self, other: &Self) -> bool {
        Arc::ptr_eq(&self.0, &other.0)
    }
}

impl std::ops::Deref for SubRef {
    type Target = Subscription;
    fn deref(&self) -> &Subscription {
        &self.0
    }
}
