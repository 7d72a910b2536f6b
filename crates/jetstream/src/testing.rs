//! Test doubles shared by the unit tests: a [`Port`] that records what JetStream publishes.

use std::sync::Arc;

use bytes::Bytes;
use parking_lot::Mutex;

use crate::port::{Accept, Handler, Port, SubId};

/// Records every publish as (subject, headers, payload); subscriptions go nowhere.
#[derive(Default)]
pub(crate) struct RecordingPort {
    pub published: Mutex<Vec<(String, Option<Bytes>, Bytes)>>,
}

impl Port for RecordingPort {
    fn publish(&self, subject: &str, _: Option<&str>, headers: Option<Bytes>, payload: Bytes) {
        self.published
            .lock()
            .push((subject.to_string(), headers, payload));
    }

    fn subscribe(&self, _: &str, _: Option<&str>, _: Accept, _: Arc<dyn Handler>) -> SubId {
        0
    }

    fn unsubscribe(&self, _: SubId) {}
}
