//! `ConsumerInfo`, the body of CONSUMER.CREATE / INFO / LIST responses, in nats-server's
//! field order.

use serde::Serialize;

use super::config::ConsumerConfig;
use super::Consumer;
use crate::time::{now_nanos, rfc3339_nano};

/// A consumer and stream sequence pair.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct SequenceInfo {
    pub consumer_seq: u64,
    pub stream_seq: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_active: Option<String>,
}

fn is_false(v: &bool) -> bool {
    !*v
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
    #[serde(skip_serializing_if = "is_false")]
    pub push_bound: bool,
    /// Time of the report (2.10).
    pub ts: String,
}

fn active(ns: i64) -> Option<String> {
    (ns > 0).then(|| rfc3339_nano(ns))
}

impl Consumer {
    /// The consumer's info. Takes only the consumer's state lock.
    pub(crate) fn info(&self) -> ConsumerInfo {
        let st = self.state.lock();
        ConsumerInfo {
            stream_name: self.stream.clone(),
            name: self.name.clone(),
            created: rfc3339_nano(self.created),
            config: st.config.clone(),
            delivered: SequenceInfo {
                consumer_seq: st.acks.dseq,
                stream_seq: st.acks.dsseq,
                last_active: active(st.last_delivery_wall),
            },
            ack_floor: SequenceInfo {
                consumer_seq: st.acks.adflr,
                stream_seq: st.acks.asflr,
                last_active: active(st.last_ack_wall),
            },
            num_ack_pending: st.acks.pending.len() as u64,
            num_redelivered: st.acks.num_redelivered(),
            num_waiting: st.waiting.len() as u64,
            num_pending: st.npending,
            push_bound: !st.config.is_pull() && st.push.active,
            ts: rfc3339_nano(now_nanos()),
        }
    }
}
