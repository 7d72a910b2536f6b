//! Read-only snapshots of streams and consumers for monitoring (`/jsz`, `/metrics`).
//!
//! [`JetStream::report`] copies what monitoring shows into plain structs: per stream its
//! name, creation time, config and state, and (when asked) per consumer its config,
//! delivered and ack-floor sequences and pending counts. A consumer whose pending count is
//! stale (messages were removed) is refreshed first, exactly as its own task or the API's
//! INFO would do it (`Consumer::fresh_report`).
//!
//! Locks: for each stream the `consumers` map is read and released first, then the
//! stream's `inner` lock is taken, then each consumer's `state` lock under it (the crate's
//! lock order). `inner` can be held across an fsync, so these calls block: run them on a
//! blocking thread (`spawn_blocking`), never on an async worker.

use std::sync::Arc;

use crate::config::StreamConfig;
use crate::consumer::config::ConsumerConfig;
use crate::consumer::Consumer;
use crate::jetstream::JetStream;
use crate::stream::Stream;

/// A stream as monitoring shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StreamReport {
    /// Stream name.
    pub name: String,
    /// Creation time (Unix ns).
    pub created: i64,
    /// Current configuration.
    pub config: StreamConfig,
    /// Messages, bytes and sequences.
    pub state: StreamStateReport,
    /// The stream's consumers, by name (empty unless asked for).
    pub consumers: Vec<ConsumerReport>,
    /// A replicated stream's group: leader and replicas.
    pub cluster: Option<crate::ClusterInfo>,
}

/// A stream's state (the `state` object of a StreamInfo).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct StreamStateReport {
    /// Messages stored.
    pub messages: u64,
    /// Bytes stored.
    pub bytes: u64,
    /// First live sequence.
    pub first_seq: u64,
    /// Time of the first live message (Unix ns, 0 when empty).
    pub first_ts: i64,
    /// Last sequence assigned.
    pub last_seq: u64,
    /// Time of the last message (Unix ns, 0 when none).
    pub last_ts: i64,
    /// Distinct subjects with messages.
    pub num_subjects: u64,
    /// Interior deletes.
    pub num_deleted: u64,
    /// Number of consumers.
    pub consumer_count: u64,
}

/// A consumer and stream sequence pair, with the time of the last activity.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SequencePair {
    /// Consumer sequence.
    pub consumer_seq: u64,
    /// Stream sequence.
    pub stream_seq: u64,
    /// Last delivery (for `delivered`) or ack (for `ack_floor`), Unix ns; 0 = never.
    pub last_active: i64,
}

/// A consumer as monitoring shows it (the numbers of a ConsumerInfo).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConsumerReport {
    /// The stream it reads.
    pub stream_name: String,
    /// Consumer name.
    pub name: String,
    /// Creation time (Unix ns).
    pub created: i64,
    /// Current configuration.
    pub config: ConsumerConfig,
    /// Last delivered sequences.
    pub delivered: SequencePair,
    /// Ack floor.
    pub ack_floor: SequencePair,
    /// Delivered and not yet acknowledged.
    pub num_ack_pending: u64,
    /// Redelivered and not yet acknowledged.
    pub num_redelivered: u64,
    /// Waiting pull requests.
    pub num_waiting: u64,
    /// Messages not yet delivered.
    pub num_pending: u64,
    /// A push consumer with an active subscriber.
    pub push_bound: bool,
    /// Why the consumer stopped working (its task failed repeatedly), if it did.
    pub failed: Option<String>,
    /// Pinned clients: (priority group, pin id, pinned since in Unix ns).
    pub pinned: Vec<(String, String, i64)>,
}

impl JetStream {
    /// The account's own limits.
    pub fn account_limits(&self) -> crate::limits::AccountLimits {
        self.usage.limits()
    }

    /// Replace the account's limits (its JWT was updated): streams and consumers created,
    /// and messages stored, from now on are checked against them.
    pub fn set_account_limits(&self, limits: crate::limits::AccountLimits) {
        self.usage.set_limits(limits);
    }

    /// Every stream (by name), with its consumers when `with_consumers`. Blocking: takes
    /// each stream's store lock (see the module docs).
    pub fn report(&self, with_consumers: bool) -> Vec<StreamReport> {
        let streams: Vec<Arc<Stream>> = self.streams.read().values().cloned().collect();
        streams
            .iter()
            .map(|s| stream_report(s, with_consumers))
            .collect()
    }
}

fn stream_report(stream: &Stream, with_consumers: bool) -> StreamReport {
    let consumers: Vec<Arc<Consumer>> = stream.consumers.read().values().cloned().collect();
    let cluster = stream.replica.get().map(|r| r.cluster_info());
    let inner = stream.inner.lock();
    let st = inner.store.state();
    let reports = if with_consumers {
        consumers.iter().map(|c| c.fresh_report(&inner)).collect()
    } else {
        Vec::new()
    };
    StreamReport {
        name: stream.name.clone(),
        created: stream.created,
        config: inner.config.clone(),
        state: StreamStateReport {
            messages: st.msgs,
            bytes: st.bytes,
            first_seq: st.first_seq,
            first_ts: st.first_ts,
            last_seq: st.last_seq,
            last_ts: st.last_ts,
            num_subjects: st.num_subjects,
            num_deleted: st.num_deleted,
            consumer_count: consumers.len() as u64,
        },
        consumers: reports,
        cluster,
    }
}
