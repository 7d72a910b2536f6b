//! Raft RPCs over the server's routes: a request to member `T` for group `G` is published
//! in the system account on `$PRG.<T>.<G>.<op>` with the reply subject
//! `$PRG.R.<me>.<n>` (`T`, `me`: node ids in hex), and each node's heartbeat on
//! `$PRG.HB` tells the others it runs clustered JetStream. Every one of these
//! subscriptions hears only what arrived over a route ([`Accept::RoutesOnly`]), and the
//! server forwards `$PRG.` subjects to routes only from JetStream itself, so no client can
//! inject Raft traffic.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Weak};
use std::time::Duration;

use bytes::Bytes;
use parking_lot::Mutex;
use petrel_replication::{NodeId, Op, Pending, Registry, Transport};
use tokio::sync::{oneshot, Semaphore};

use crate::port::{Accept, Flow, Handler, Incoming, Port};

/// Subject prefix of every Raft RPC.
pub(crate) const PREFIX: &str = "$PRG.";
/// Subject of the heartbeats.
pub(crate) const HEARTBEAT: &str = "$PRG.HB";
/// RPC requests being served at once (past it they are dropped; Raft retries).
const INBOX: usize = 10_000;

/// A node id as it appears in subjects.
pub(crate) fn hex(id: NodeId) -> String {
    format!("{id:016x}")
}

/// The node's side of the RPCs: calls out, replies in, requests served.
pub(crate) struct PortTransport {
    me: NodeId,
    port: Arc<dyn Port>,
    next: AtomicU64,
    pending: Mutex<HashMap<u64, oneshot::Sender<Bytes>>>,
    this: Weak<PortTransport>,
}

impl PortTransport {
    /// Subscribes this node's RPC and reply subjects; requests are served from `registry`
    /// on tasks of the current runtime.
    pub fn start(me: NodeId, port: Arc<dyn Port>, registry: Arc<Registry>) -> Arc<PortTransport> {
        let t = Arc::new_cyclic(|this| PortTransport {
            me,
            port: port.clone(),
            next: AtomicU64::new(1),
            pending: Mutex::new(HashMap::new()),
            this: this.clone(),
        });
        let requests = format!("{PREFIX}{}.>", hex(me));
        let serving = Requests {
            slots: Arc::new(Semaphore::new(INBOX)),
            port: port.clone(),
            registry,
        };
        port.subscribe(&requests, None, Accept::RoutesOnly, Arc::new(serving));
        let replies = format!("{PREFIX}R.{}.*", hex(me));
        port.subscribe(
            &replies,
            None,
            Accept::RoutesOnly,
            Arc::new(Replies(Arc::downgrade(&t))),
        );
        t
    }
}

impl Transport for PortTransport {
    fn call_with(
        &self,
        target: NodeId,
        group: &str,
        op: Op,
        body: Vec<u8>,
        timeout: Duration,
    ) -> Pending {
        let id = self.next.fetch_add(1, Ordering::Relaxed);
        let (tx, rx) = oneshot::channel();
        self.pending.lock().insert(id, tx);
        let subject = format!("{PREFIX}{}.{group}.{}", hex(target), op.token());
        let reply = format!("{PREFIX}R.{}.{id}", hex(self.me));
        self.port
            .request(&subject, Some(&reply), None, Bytes::from(body));
        let this = self.this.clone();
        Box::pin(async move {
            let got = tokio::time::timeout(timeout, rx).await;
            if let Some(t) = this.upgrade() {
                t.pending.lock().remove(&id);
            }
            match got {
                Ok(Ok(body)) => Ok(body.to_vec()),
                Ok(Err(_)) => Err("the transport stopped".into()),
                Err(_) => Err(format!("no reply within {timeout:?}")),
            }
        })
    }
}

/// `$PRG.<me>.<group>.<op>`: serves each request on its own task (straight from the
/// route's reader: no queue hop) and publishes the framed reply; at most [`INBOX`] at once.
struct Requests {
    slots: Arc<Semaphore>,
    port: Arc<dyn Port>,
    registry: Arc<Registry>,
}

impl Handler for Requests {
    fn handle(&self, msg: Incoming<'_>) -> Flow {
        let Some(reply) = msg.reply else {
            return Flow::Ok;
        };
        let mut tokens = msg.subject.splitn(4, '.').skip(2);
        let (Some(group), Some(op)) = (tokens.next(), tokens.next().and_then(Op::parse)) else {
            return Flow::Ok;
        };
        let (Ok(rt), Ok(slot)) = (
            tokio::runtime::Handle::try_current(),
            self.slots.clone().try_acquire_owned(),
        ) else {
            return Flow::Ok;
        };
        let (group, reply, body) = (group.to_string(), reply.to_string(), msg.payload);
        let (port, registry) = (self.port.clone(), self.registry.clone());
        rt.spawn(async move {
            let out = registry.serve(&group, op, &body).await;
            port.request(&reply, None, None, Bytes::from(out));
            drop(slot);
        });
        Flow::Ok
    }
}

/// `$PRG.R.<me>.*`: hands each reply to its caller.
struct Replies(Weak<PortTransport>);

impl Handler for Replies {
    fn handle(&self, msg: Incoming<'_>) -> Flow {
        let id = msg
            .subject
            .rsplit('.')
            .next()
            .and_then(|t| t.parse::<u64>().ok());
        if let (Some(t), Some(id)) = (self.0.upgrade(), id) {
            if let Some(tx) = t.pending.lock().remove(&id) {
                let _ = tx.send(msg.payload);
            }
        }
        Flow::Ok
    }
}
