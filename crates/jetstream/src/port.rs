//! The port between JetStream and the server's router. JetStream is an internal client:
//! it subscribes to subjects and publishes messages through this trait, and the server
//! calls [`crate::JetStream::on_message`] for every message matching one of those
//! subscriptions. The router never depends on this crate.

use bytes::Bytes;

/// Identifies one internal subscription.
pub type SubId = u64;

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

    /// Subscribe JetStream to `subject` (wildcards allowed), optionally in a queue group.
    /// Matching messages arrive through `JetStream::on_message` with this id.
    fn subscribe(&self, subject: &str, queue: Option<&str>) -> SubId;

    /// Remove an internal subscription.
    fn unsubscribe(&self, id: SubId);
}
