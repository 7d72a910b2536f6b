//! `ConsumerInfo`, the body of CONSUMER.CREATE / INFO / LIST responses, in nats-server's
//! field order.

use serde::Serialize;

use super::config::ConsumerConfig;
use super::Consumer;
use crate::json::is_default;
use crate::monitor::{ConsumerReport, SequencePair};
use crate::stream::Inner;
use crate::time::{now_nanos, rfc3339_nano};

/// A consumer and stream sequence pair.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct SequenceInfo {
    pub consumer_seq: u64,
    pub stream_seq: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_active: Option<String>,
}

/// What INFO reports about a consumer.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct ConsumerInfo {
    pub stream_name: String,
    pub name: String,
    pub created: String,
    pub config: ConsumerConfig,
    pub delivered: SequenceInfo,
    pub ack_floor: SequenceInfo,
    pub num_ack_pending: u64,
    pub num_redelivered: u64,
    pub num_waiting: u64,
    pub num_pending: u64,
    /// A replicated stream's group (its consumers run on its leader and their state goes
    /// through its group): set by [`ConsumerInfo::clustered`].
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cluster: Option<crate::cluster::replica::ClusterInfo>,
    #[serde(skip_serializing_if = "is_default")]
    pub push_bound: bool,
    /// Paused by `pause_until` (2.11), and for how much longer (ns).
    #[serde(skip_serializing_if = "is_default")]
    pub paused: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pause_remaining: Option<i64>,
    /// Time of the report (2.10).
    pub ts: String,
    /// The consumer's priority groups (2.11).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub priority_groups: Vec<super::priority::GroupState>,
    /// Petrel: why the consumer stopped (its task failed repeatedly); absent while it works.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub failed: Option<String>,
}

fn active(ns: i64) -> Option<String> {
    (ns > 0).then(|| rfc3339_nano(ns))
}

impl From<SequencePair> for SequenceInfo {
    fn from(p: SequencePair) -> Self {
        SequenceInfo {
            consumer_seq: p.consumer_seq,
            stream_seq: p.stream_seq,
            last_active: active(p.last_active),
        }
    }
}

impl ConsumerInfo {
    /// With the `cluster` of `stream`'s group when it is replicated.
    pub(crate) fn clustered(mut self, stream: &crate::stream::Stream) -> Self {
        self.cluster = stream.replica.get().map(|r| r.cluster_info());
        self
    }
}

impl From<ConsumerReport> for ConsumerInfo {
    fn from(r: ConsumerReport) -> Self {
        let now = now_nanos();
        let pause_end = r.config.paused_at(now);
        let priority_groups = r
            .config
            .priority_groups
            .iter()
            .map(|g| {
                let pin = r.pinned.iter().find(|(group, ..)| group == g);
                super::priority::GroupState {
                    group: g.clone(),
                    pinned_client_id: pin.map(|(_, id, _)| id.clone()),
                    pinned_ts: rfc3339_nano(pin.map_or(0, |(.., since)| *since)),
                }
            })
            .collect();
        ConsumerInfo {
            stream_name: r.stream_name,
            name: r.name,
            created: rfc3339_nano(r.created),
            config: r.config,
            delivered: r.delivered.into(),
            ack_floor: r.ack_floor.into(),
            num_ack_pending: r.num_ack_pending,
            num_redelivered: r.num_redelivered,
            num_waiting: r.num_waiting,
            num_pending: r.num_pending,
            cluster: None,
            push_bound: r.push_bound,
            paused: pause_end.is_some(),
            pause_remaining: pause_end.map(|t| t - now),
            ts: rfc3339_nano(now),
            priority_groups,
            failed: r.failed,
        }
    }
}

impl Consumer {
    /// The numbers of a ConsumerInfo as they are now (the pending count as of the last
    /// refresh). Takes only the consumer's state lock.
    pub(crate) fn report(&self) -> ConsumerReport {
        let st = self.state.lock();
        ConsumerReport {
            stream_name: self.stream.clone(),
            name: self.name.clone(),
            created: self.created,
            config: st.config.clone(),
            delivered: SequencePair {
                consumer_seq: st.acks.dseq,
                stream_seq: st.acks.dsseq,
                last_active: st.last_delivery_wall,
            },
            ack_floor: SequencePair {
                consumer_seq: st.acks.adflr,
                stream_seq: st.acks.asflr,
                last_active: st.last_ack_wall,
            },
            num_ack_pending: st.acks.pending.len() as u64,
            num_redelivered: st.acks.num_redelivered(),
            num_waiting: st.waiting.len() as u64,
            num_pending: st.npending,
            push_bound: !st.config.is_pull() && st.push.active,
            failed: self.failed.lock().clone(),
            pinned: st
                .pins
                .iter()
                .map(|(group, pin)| (group.clone(), pin.id.clone(), pin.since))
                .collect(),
        }
    }

    /// The report with an up-to-date pending count: refreshes the state first (see
    /// [`super::State::refresh`]). Called with the stream's `inner` lock held.
    pub(crate) fn fresh_report(&self, inner: &Inner) -> ConsumerReport {
        if !inner.closed {
            self.state.lock().refresh(inner.store.as_ref());
        }
        self.report()
    }

    /// The consumer's info (pending count as of the last refresh).
    pub(crate) fn info(&self) -> ConsumerInfo {
        self.report().into()
    }
}
