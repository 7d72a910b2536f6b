//! Helpers shared by the JetStream tests: a stream config and acknowledged publishes.

use async_nats::jetstream::{self, stream};

/// A stream config with a name and subjects, defaults otherwise.
pub(crate) fn config(name: &str, subjects: &[&str]) -> stream::Config {
    stream::Config {
        name: name.to_string(),
        subjects: subjects.iter().map(|s| s.to_string()).collect(),
        ..Default::default()
    }
}

/// Publishes every payload to `subject`, each waiting for its PubAck.
pub(crate) async fn publish_all<I>(js: &jetstream::Context, subject: &str, payloads: I)
where
    I: IntoIterator<Item = String>,
{
    for p in payloads {
        js.publish(subject.to_string(), p.into())
            .await
            .unwrap()
            .await
            .unwrap();
    }
}

/// Publishes `n` messages (`m0`, `m1`, ...) to `subject`, each waiting for its PubAck.
pub(crate) async fn publish(js: &jetstream::Context, subject: &str, n: usize) {
    publish_all(js, subject, (0..n).map(|i| format!("m{i}"))).await;
}
