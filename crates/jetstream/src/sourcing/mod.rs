//! Streams that source or mirror other streams: the configuration and its checks
//! (`config`), one task per source moving messages (`task`), and mirrors answering their
//! origin's direct gets (`direct`); origins in another account or domain are read through
//! their API and a push consumer (`remote`).

pub mod config;
pub(crate) mod direct;
mod remote;
pub(crate) mod task;

pub use config::StreamSource;

/// Whether a message carries `Nats-Stream-Source`: sourcing stored it (a client's is refused
/// before it is queued, so inside the ingest path the header means sourced).
pub(crate) fn sourced(h: &petrel_wire::headers::Headers) -> bool {
    h.get(task::STREAM_SOURCE).is_some()
}
