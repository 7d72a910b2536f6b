//! The JSON shapes of a stream's API: the `STREAM.INFO` and `MSG.GET` / `DIRECT.GET`
//! request bodies, and the StreamInfo with its state.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::config::StreamConfig;
use crate::json::{is_default, null_default};
use crate::time::rfc3339_nano;

/// Request body of `STREAM.INFO`.
#[derive(Debug, Default, Deserialize)]
pub(crate) struct InfoRequest {
    #[serde(default, deserialize_with = "null_default")]
    pub deleted_details: bool,
    #[serde(default, deserialize_with = "null_default")]
    pub subjects_filter: String,
    #[serde(default, deserialize_with = "null_default")]
    pub offset: usize,
}

/// Request body of `STREAM.MSG.GET` and `DIRECT.GET`.
#[derive(Debug, Default, Deserialize)]
pub(crate) struct MsgGetRequest {
    #[serde(default, deserialize_with = "null_default")]
    pub seq: u64,
    #[serde(default, deserialize_with = "null_default")]
    pub last_by_subj: String,
    #[serde(default, deserialize_with = "null_default")]
    pub next_by_subj: String,
    /// Direct gets (2.11): up to this many messages, then an end-of-batch status.
    #[serde(default, deserialize_with = "null_default")]
    pub batch: i64,
    /// Direct gets: stop a batch before it passes this many bytes.
    #[serde(default, deserialize_with = "null_default")]
    pub max_bytes: i64,
    /// Direct gets: the last message of every subject matching these (2.11).
    #[serde(default, deserialize_with = "null_default")]
    pub multi_last: Vec<String>,
    /// Direct gets with `multi_last`: as of this sequence, or of this time.
    #[serde(default, deserialize_with = "null_default")]
    pub up_to_seq: u64,
    #[serde(default, deserialize_with = "null_default")]
    pub up_to_time: Option<String>,
    /// The first message at or after this time (RFC 3339; 2.11).
    #[serde(default, deserialize_with = "null_default")]
    pub start_time: Option<String>,
    /// Direct gets: the payload alone, without headers (2.11).
    #[serde(default, deserialize_with = "null_default")]
    pub no_hdr: bool,
}

/// `state` of a StreamInfo.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct StateJson {
    pub messages: u64,
    pub bytes: u64,
    pub first_seq: u64,
    pub first_ts: String,
    pub last_seq: u64,
    pub last_ts: String,
    #[serde(skip_serializing_if = "is_default")]
    pub num_subjects: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub subjects: Option<BTreeMap<String, u64>>,
    #[serde(skip_serializing_if = "is_default")]
    pub num_deleted: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub deleted: Option<Vec<u64>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub lost: Option<petrel_store::LostData>,
    pub consumer_count: u64,
}

/// StreamInfo: config, created, state.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct StreamInfo {
    pub config: StreamConfig,
    pub created: String,
    pub state: StateJson,
    /// The JetStream domain, if the server has one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub domain: Option<String>,
    /// Petrel: why the stream stopped taking messages; absent while it works.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub failed: Option<String>,
    /// The state of the mirror.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub mirror: Option<crate::sourcing::task::SourceInfo>,
    /// The state of each source.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub sources: Vec<crate::sourcing::task::SourceInfo>,
    /// The stream group (clustered JetStream only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cluster: Option<crate::cluster::replica::ClusterInfo>,
}

impl StreamInfo {
    /// The info of a stream this node holds no replica of: its config, an empty state.
    pub fn empty(config: StreamConfig, created: i64) -> StreamInfo {
        StreamInfo {
            config,
            created: rfc3339_nano(created),
            state: StateJson {
                messages: 0,
                bytes: 0,
                first_seq: 0,
                first_ts: rfc3339_nano(0),
                last_seq: 0,
                last_ts: rfc3339_nano(0),
                num_subjects: 0,
                subjects: None,
                num_deleted: 0,
                deleted: None,
                lost: None,
                consumer_count: 0,
            },
            domain: None,
            failed: None,
            mirror: None,
            sources: Vec::new(),
            cluster: None,
        }
    }
}
