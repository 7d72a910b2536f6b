//! Test doubles shared by the unit tests: a [`Port`] that records what JetStream publishes.

use std::sync::Arc;

use bytes::Bytes;
use parking_lot::Mutex;

use crate::config::StreamConfig;
use crate::port::{Accept, Handler, Port, SubId};
use crate::stream::Stream;

/// Opens a stream of `cfg` (normalized here) under `dir` with fsync-always and the real
/// filesystem.
pub(crate) fn open_stream(cfg: StreamConfig, dir: &std::path::Path) -> Arc<Stream> {
    let cfg = cfg.normalize().expect("a valid test config");
    Stream::open(
        cfg,
        1,
        dir,
        petrel_store::SyncMode::Always,
        Arc::new(petrel_store::StdBackend),
    )
    .expect("open the test stream")
}

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
