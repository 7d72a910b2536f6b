//! Petrel's broker runtime.
//!
//! [`Server`] binds the client listener and runs one reader task and one writer task per
//! connection. The reader parses ops ([`petrel_wire::Parser`]), keeps the connection's
//! subscriptions in the shared [`petrel_subject::Sublist`] and fans each publish out to
//! the matching subscribers' outbound buffers; at the end of every read batch it wakes
//! each subscriber's writer once, and the writer sends everything queued with one
//! vectored write.
//!
//! Embedding:
//! ```no_run
//! # async fn run() -> Result<(), petrel_server::ServerError> {
//! let server = petrel_server::Server::builder().port(0).start().await?;
//! println!("connect to {}", server.client_url());
//! server.shutdown().await;
//! # Ok(()) }
//! ```
//!
//! Monitoring: the server keeps the numbers (counters, per-connection snapshots, Sublist
//! statistics, JetStream reports) and hands them out read-only through
//! [`ServerHandle::monitor_view`]; the `petrel-monitor` crate serves them over HTTP
//! (`/varz`, `/connz`, `/jsz`, `/metrics`...) when `http_port` is set.

mod account;
mod auth;
mod client;
mod conn;
mod ident;
mod imports;
mod internal;
mod js;
mod leaf;
mod mapping;
mod monitoring;
mod operator;
mod outbound;
mod perms;
mod route;
mod router;
mod server;
mod stats;
mod store_lock;
mod sub;
mod sys;
mod tls;
mod websocket;

pub use client::CloseReason;
pub use monitoring::{
    AccountSnapshot, AccountStatz, ClusterSnapshot, ConnSnapshot, JsAccountReport, LeafSnapshot,
    LeafnodeSnapshot, MonitorView, RouteSnapshot, SubSnapshot, SublistStats, GLOBAL_ACCOUNT,
};
pub use petrel_config::{
    Auth, ClusterOptions, HandshakeFirst, JetStreamOptions, LeafRemote, LeafUrl, LeafUser,
    LeafnodeOptions, Options, Permissions, ResponsePermission, RouteUrl, SubjectPermission,
    TlsOptions, User, WebSocketOptions, WsCookies,
};
/// Calendar date (year, month, day) of a day count since 1970-01-01, shared with the
/// binary's log timestamps.
pub use petrel_jetstream::civil_from_days;
/// Timers and limits of clustered JetStream's Raft groups ([`ServerBuilder::raft_timing`]).
pub use petrel_jetstream::RaftTiming;
/// JetStream types monitoring reads through [`MonitorView`], the wall clock in Unix ns and
/// Go's RFC3339Nano format.
pub use petrel_jetstream::{
    consumer::config::ConsumerConfig, now_nanos, rfc3339_nano, AccountLimits, ClusterInfo,
    ConsumerReport, JetStreamStats, MetaPeer, MetaReport, SequencePair, StreamConfig, StreamReport,
    StreamStateReport,
};
pub use server::{
    Server, ServerBuilder, ServerError, ServerHandle, NATS_COMPAT_VERSION, PETREL_VERSION,
};
pub use stats::StatsSnapshot;
pub use store_lock::StoreLockError;
pub use sys::{MonitorService, ReloadHook, SysFuture, SysReply};
pub use tls::TlsError;
