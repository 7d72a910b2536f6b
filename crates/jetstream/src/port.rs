//! The port between JetStream and the server's router. JetStream is an internal client:
//! it subscribes to subjects and publishes messages through this trait, and the server
//! calls [`crate::JetStream::on_message`] for every message matching one of those
//! subscriptions. The router never depends on this crate.

use bytes::Bytes;

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
}

/// What JetStream needs from the server.
pub trait Port: Send + Sync + 'static {
    /// Publish a message as if a client had published it (fan-out, queue groups and
    /// no-responders apply). `headers` is a full `NATS/1.0` header block.
    fn publish(&self, subject: &str, reply: Option<&str>, headers: Option<Bytes>, payload: Bytes);

    /// Publish replies (e.g. every PubAck of one group commit) to their subjects, letting the
    /// server flush each connection once for the whole batch.
    fn publish_replies(&self, replies: Vec<(String, Bytes)>) {
        for (subject, payload) in replies {
            self.publish(&subject, None, None, payload);
        }
    }

    /// Route consumer deliveries (one flush for the batch). The default publishes each on
    /// its route subject.
    fn deliver(&self, msgs: Vec<Delivery>) {
        for m in msgs {
            self.publish(&m.route, m.reply.as_deref(), m.headers, m.payload);
        }
    }

    /// Whether any subscription (client or internal) matches the literal `subject`: push
    /// consumers deliver only while someone listens, pull requests are dropped when their
    /// inbox is gone.
    fn has_interest(&self, _subject: &str) -> bool {
        true
    }

    /// Subscribe JetStream to `subject` (wildcards allowed), optionally in a queue group.
    /// Matching messages arrive through `JetStream::on_message` with this id.
    fn subscribe(&self, subject: &str, queue: Option<&str>) -> SubId;

    /// Remove an internal subscription.
    fn unsubscribe(&self, id: SubId);
}
