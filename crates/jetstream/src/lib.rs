//! JetStream for Petrel: streams on a crash-safe store, the `$JS.API` handlers and the API
//! error table.
//!
//! The server owns a [`JetStream`]; JetStream uses the [`Port`] to publish like an internal
//! client and to subscribe with a [`Handler`] the router calls for every matching message.
//! Handlers only queue the message in a bounded queue (`backlog`: past half full the
//! publishing client is stalled, when full the message is refused) and JetStream's own
//! tasks do the work. The API, ack, flow-control and pull-request subscriptions accept only
//! messages a client published ([`Accept::ClientsOnly`]): nothing the server emits can act
//! as a request.
//!
//! * one **ingest task per stream** takes every queued message, checks the `Nats-*` headers
//!   (dedup, expected stream/sequences/msg id, rollup), appends them, commits once (group
//!   commit, on a blocking thread) and then publishes every PubAck;
//! * one **API task** answers `$JS.API.>` requests (INFO, STREAM.*, DIRECT.GET) on blocking
//!   threads, one at a time, and publishes stream advisories;
//! * one **maintenance tick** expires `max_age`, ages the dedup window and, with
//!   [`petrel_store::SyncMode::Interval`], fsyncs.
//!
//! * one **task per consumer** applies acks and pull requests, redelivers after ack_wait /
//!   backoff / nak delays, and delivers to push subscribers or waiting pull requests.
//!
//! Streams persist in `<store_dir>/jetstream/<account>/streams/<name>/` (`meta.json` plus the file
//! store's blocks, durable consumers under `obs/<consumer>/`); memory streams are not
//! persisted.
//!
//! Modules: [`errors`] (the API error table and [`JetStreamError`]), `config` (StreamConfig),
//! [`port`] (the server interface), `handlers` (the internal subscriptions' handlers),
//! `backlog` (bounded queues), `stream` / `ingest` (one stream and its publish path), `api` (request dispatch and
//! handlers), `meta` (metadata files), `dedup`, `transform`, `advisory`, `json` (Go-style
//! JSON), `time` (RFC3339Nano), `monitor` (read-only stream/consumer reports for monitoring).

#![warn(missing_docs)]

mod advisory;
mod api;
mod backlog;
mod backup;
mod cluster;
pub mod config;
pub mod consumer;
mod counter;
mod cron;
mod cycles;
mod dedup;
mod disabled;
pub mod errors;
#[doc(hidden)]
pub mod fuzzing;
mod handlers;
mod hdr;
mod ingest;
mod jetstream;
mod json;
pub mod limits;
mod meta;
mod monitor;
pub mod port;
mod republish;
mod retention;
mod schedule;
pub mod sourcing;
mod stream;
#[cfg(test)]
mod testing;
mod time;
mod transform;
mod ttl;

pub use advisory::next_id as advisory_id;
pub use api::level::API_LEVEL;
pub use cluster::replica::{ClusterInfo, PeerInfo};
pub use cluster::{ClusterConfig, JsCluster, MetaPeer, MetaReport};
pub use config::StreamConfig;
pub use disabled::NotEnabled;
pub use errors::{ApiError, JetStreamError};
pub use jetstream::{JetStream, JetStreamConfig, JetStreamStats, API_SUBSCRIPTION};
pub use limits::{AccountLimits, JsGroup, ResourceLimits};
pub use monitor::{ConsumerReport, SequencePair, StreamReport, StreamStateReport};
pub use petrel_replication::Timing as RaftTiming;
pub use petrel_store::SyncMode;
pub use port::{Accept, Delivery, Flow, Handler, Incoming, Port, Pressure, ServerMsg, SubId};
pub use time::{civil_from_days, now_nanos, rfc3339_nano};
