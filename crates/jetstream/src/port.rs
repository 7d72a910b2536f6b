//! The port between JetStream and the server's router. JetStream is an internal client:
//! it publishes through this trait and subscribes with a [`Handler`] that the router calls
//! for every matching message (nats-server's `sysSubscribe` pattern: the subscription
//! carries its handler). The router never depends on this crate's internals.
//!
//! The trust boundary lives here: each subscription says which publishers may reach it
//! ([`Accept`]). JetStream's request subjects (the API, acks, flow-control replies, pull
//! requests) accept only messages a client published; nothing the server emits itself —
//! PubAcks, API replies, pull statuses, advisories, deliveries — can act as a request.

use std::sync::Arc;

use bytes::Bytes;
use tokio::sync::Notify;

/// Identifies one internal subscription.
pub type SubId = u64;

/// A consumer delivery: routed on `route` (a push consumer's deliver subject or a pull
/// request's reply inbox) while the `MSG` line shows the stored `subject`.
#[derive(Debug, Clone)]
pub struct Delivery {
    /// Subject the message is routed on.
    pub route: String,
    /// Subject shown to the receiver.
    pub subject: String,
    /// Reply subject (the `$JS.ACK...` subject), if any.
    pub reply: Option<String>,
    /// Full `NATS/1.0` header block, if any.
    pub headers: Option<Bytes>,
    /// Body.
    pub payload: Bytes,
    /// `headers` then `payload` in one buffer, when the store had them so (sent as is,
    /// no copy); `None` otherwise.
    pub raw: Option<Bytes>,
}

/// Which publishers an internal subscription hears.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Accept {
    /// Only messages published by a client connection: requests, acks, flow-control
    /// replies. Messages the server publishes itself never reach the subscription.
    ClientsOnly,
    /// Every message, the server's own included (a stream capturing advisories or another
    /// stream's deliveries).
    Everyone,
    /// Only messages that arrived over a route from another server of the cluster (the
    /// Raft RPCs of replicated JetStream): nothing a local client or the server itself
    /// publishes reaches the subscription.
    RoutesOnly,
}

/// One message handed to an internal subscription's [`Handler`].
#[derive(Debug)]
pub struct Incoming<'a> {
    /// The subject it was routed on (what the subscription matched).
    pub subject: &'a str,
    /// The subject the message shows (a consumer delivery's stored subject; else the
    /// same as `subject`).
    pub shown: &'a str,
    /// Its reply subject, if any.
    pub reply: Option<&'a str>,
    /// The raw `NATS/1.0` header block, if any.
    pub headers: Option<Bytes>,
    /// Body.
    pub payload: Bytes,
    /// The connection id of the client that published it (0: published inside the
    /// server).
    pub sender: u64,
}

/// A queue that can ask its publishers to slow down: it is "pressed" past half of its
/// limits and [`Pressure::notify`] fires when it falls back under half.
pub trait Pressure: Send + Sync {
    /// Whether the queue is back under half of its limits.
    fn relieved(&self) -> bool;
    /// Notified (all waiters) when the queue falls back under half of its limits.
    fn notify(&self) -> &Notify;
}

/// A message the server publishes in answer to a handled one (an error PubAck for a
/// refused publish, an advisory), sent by the router right after the publish that caused
/// it.
#[derive(Debug, Clone)]
pub struct ServerMsg {
    /// Subject to publish on.
    pub subject: String,
    /// Full `NATS/1.0` header block, if any.
    pub headers: Option<Bytes>,
    /// Body.
    pub payload: Bytes,
}

/// What a handler asks of the publisher after taking a message.
#[derive(Clone)]
pub enum Flow {
    /// Carry on.
    Ok,
    /// The message was queued, but the queue is past half full: the publishing client
    /// should stop reading until it drains (like the core producer stall).
    Stall(Arc<dyn Pressure>),
    /// The message was refused; publish this (as the server) in answer.
    Answer(ServerMsg),
    /// Nobody here answers this subject (a DIRECT.GET for a stream without
    /// `allow_direct`): the message counts as not delivered, so a requester that asked for
    /// no-responders statuses gets `503` as when no subscription matches.
    NoResponders,
}

impl std::fmt::Debug for Flow {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Flow::Ok => f.write_str("Ok"),
            Flow::Stall(_) => f.write_str("Stall"),
            Flow::Answer(m) => write!(f, "Answer({})", m.subject),
            Flow::NoResponders => f.write_str("NoResponders"),
        }
    }
}

/// Receives the messages of one internal subscription.
pub trait Handler: Send + Sync + 'static {
    /// Called on the publisher's task for every matching message: must not block and
    /// must not publish (it queues work for JetStream's own tasks).
    fn handle(&self, msg: Incoming<'_>) -> Flow;
}

/// What JetStream needs from the server.
pub trait Port: Send + Sync + 'static {
    /// Publish a message from the server (fan-out and queue groups apply; no subscription
    /// with [`Accept::ClientsOnly`] hears it). `headers` is a full `NATS/1.0` header block.
    fn publish(&self, subject: &str, reply: Option<&str>, headers: Option<Bytes>, payload: Bytes);

    /// Publish replies (e.g. every PubAck of one group commit) to their subjects, letting the
    /// server flush each connection once for the whole batch.
    fn publish_replies(&self, replies: Vec<(String, Bytes)>) {
        for (subject, payload) in replies {
            self.publish(&subject, None, None, payload);
        }
    }

    /// Publish a request JetStream itself makes (a stream reading an origin in another
    /// account or domain through its API, flow-control replies to the origin's consumer).
    /// Unlike [`Port::publish`] it reaches subscriptions that accept only clients. The
    /// default publishes as [`Port::publish`] does.
    fn request(&self, subject: &str, reply: Option<&str>, headers: Option<Bytes>, payload: Bytes) {
        self.publish(subject, reply, headers, payload);
    }

    /// Route consumer deliveries (one flush for the batch). The default publishes each on
    /// its route subject.
    fn deliver(&self, msgs: Vec<Delivery>) {
        for m in msgs {
            self.publish(&m.route, m.reply.as_deref(), m.headers, m.payload);
        }
    }

    /// Whether a message the server publishes on the literal `subject` would reach anyone
    /// (a client, or an internal subscription that accepts the server's messages): push
    /// consumers deliver only while someone listens, pull requests are dropped when their
    /// inbox is gone.
    fn has_interest(&self, _subject: &str) -> bool {
        true
    }

    /// Subscribe `handler` to `subject` (wildcards allowed), optionally in a queue group,
    /// hearing the publishers `accept` allows.
    fn subscribe(
        &self,
        subject: &str,
        queue: Option<&str>,
        accept: Accept,
        handler: Arc<dyn Handler>,
    ) -> SubId;

    /// Remove an internal subscription.
    fn unsubscribe(&self, id: SubId);
}
