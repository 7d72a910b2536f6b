//! `/jsz`: JetStream's config and usage; `accounts=true` adds the account details,
//! `streams=true` each stream's state, `consumers=true` each consumer's numbers,
//! `config=true` the stream and consumer configs (consumers imply streams, streams imply
//! accounts, as in nats-server). The per-stream part reads the stores on a blocking
//! thread.

use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::Response;
use serde::Serialize;

use petrel_server::{ConsumerConfig, JsAccountReport, SequencePair, StreamConfig, StreamReport};

use crate::format::{error, is_default, json, rfc3339};
use crate::query::{BadParam, Params};
use crate::varz::{ApiStats, JsConfig, JsStats};
use crate::AppState;

#[derive(Serialize)]
struct Jsz {
    server_id: String,
    now: String,
    #[serde(skip_serializing_if = "is_default")]
    disabled: bool,
    config: JsConfig,
    #[serde(flatten)]
    usage: JsStats,
    streams: u64,
    consumers: u64,
    messages: u64,
    bytes: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    meta_cluster: Option<petrel_server::MetaReport>,
    #[serde(skip_serializing_if = "Option::is_none")]
    account_details: Option<Vec<AccountDetail>>,
}

#[derive(Serialize)]
struct AccountDetail {
    name: String,
    id: String,
    memory: u64,
    storage: u64,
    reserved_memory: u64,
    reserved_storage: u64,
    accounts: u64,
    ha_assets: u64,
    api: ApiStats,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    stream_detail: Vec<StreamDetail>,
}

#[derive(Serialize)]
struct StreamDetail {
    name: String,
    created: String,
    cluster: Cluster,
    #[serde(skip_serializing_if = "Option::is_none")]
    config: Option<StreamConfig>,
    state: StreamState,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    consumer_detail: Vec<ConsumerDetail>,
}

/// A stream's `cluster`: this server for a stream of its own, else its group's view.
#[derive(Serialize)]
#[serde(untagged)]
enum Cluster {
    Local { leader: String },
    Group(petrel_server::ClusterInfo),
}

#[derive(Serialize)]
struct StreamState {
    messages: u64,
    bytes: u64,
    first_seq: u64,
    first_ts: String,
    last_seq: u64,
    last_ts: String,
    #[serde(skip_serializing_if = "is_default")]
    num_subjects: u64,
    #[serde(skip_serializing_if = "is_default")]
    num_deleted: u64,
    consumer_count: u64,
}

#[derive(Serialize)]
struct ConsumerDetail {
    stream_name: String,
    name: String,
    created: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    config: Option<ConsumerConfig>,
    delivered: Sequence,
    ack_floor: Sequence,
    num_ack_pending: u64,
    num_redelivered: u64,
    num_waiting: u64,
    num_pending: u64,
    #[serde(skip_serializing_if = "is_default")]
    push_bound: bool,
}

#[derive(Serialize)]
struct Sequence {
    consumer_seq: u64,
    stream_seq: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    last_active: Option<String>,
}

impl From<SequencePair> for Sequence {
    fn from(p: SequencePair) -> Self {
        Sequence {
            consumer_seq: p.consumer_seq,
            stream_seq: p.stream_seq,
            last_active: (p.last_active > 0).then(|| rfc3339(p.last_active)),
        }
    }
}

/// What the query asks for.
struct Opts {
    /// Only this account (`acc`).
    account: Option<String>,
    accounts: bool,
    streams: bool,
    consumers: bool,
    config: bool,
}

fn parse(p: &Params) -> Result<Opts, BadParam> {
    let consumers = p.bool("consumers")?;
    let streams = p.bool("streams")? || consumers;
    let account = p.get("acc").filter(|a| !a.is_empty()).map(str::to_string);
    Ok(Opts {
        accounts: p.bool("accounts")? || streams || account.is_some(),
        account,
        streams,
        consumers,
        config: p.bool("config")?,
    })
}

fn stream_detail(r: StreamReport, leader: &str, config: bool) -> StreamDetail {
    StreamDetail {
        name: r.name,
        created: rfc3339(r.created),
        cluster: match r.cluster {
            Some(group) => Cluster::Group(group),
            None => Cluster::Local {
                leader: leader.to_string(),
            },
        },
        config: config.then_some(r.config),
        state: StreamState {
            messages: r.state.messages,
            bytes: r.state.bytes,
            first_seq: r.state.first_seq,
            first_ts: rfc3339(r.state.first_ts),
            last_seq: r.state.last_seq,
            last_ts: rfc3339(r.state.last_ts),
            num_subjects: r.state.num_subjects,
            num_deleted: r.state.num_deleted,
            consumer_count: r.state.consumer_count,
        },
        consumer_detail: r
            .consumers
            .into_iter()
            .map(|c| ConsumerDetail {
                stream_name: c.stream_name,
                name: c.name,
                created: rfc3339(c.created),
                config: config.then_some(c.config),
                delivered: c.delivered.into(),
                ack_floor: c.ack_floor.into(),
                num_ack_pending: c.num_ack_pending,
                num_redelivered: c.num_redelivered,
                num_waiting: c.num_waiting,
                num_pending: c.num_pending,
                push_bound: c.push_bound,
            })
            .collect(),
    }
}

/// One account's entry in `account_details`: its usage, its limits as `reserved_*`
/// (nats-server shows "no limit" as Go's -1 in a uint64) and its streams.
fn account_detail(r: JsAccountReport, leader: &str, config: bool) -> AccountDetail {
    AccountDetail {
        id: r.name.clone(),
        name: r.name,
        memory: r.stats.memory,
        storage: r.stats.storage,
        reserved_memory: r.limits.max_memory.unwrap_or(u64::MAX),
        reserved_storage: r.limits.max_storage.unwrap_or(u64::MAX),
        accounts: 0,
        ha_assets: 0,
        api: ApiStats {
            total: r.stats.api_total,
            errors: r.stats.api_errors,
        },
        stream_detail: r
            .streams
            .into_iter()
            .map(|s| stream_detail(s, leader, config))
            .collect(),
    }
}

/// `GET /jsz`.
pub(crate) async fn handler(
    State(state): State<AppState>,
    Query(q): Query<Vec<(String, String)>>,
) -> Response {
    state.count_request("/jsz");
    let o = match parse(&Params(q)) {
        Ok(o) => o,
        Err(bad) => return bad.response(),
    };
    let view = state.view().clone();
    let now = rfc3339(crate::format::now_ns());
    let (Some(opts), Some(st)) = (view.jetstream_options(), view.jetstream_stats()) else {
        return json(&Jsz {
            server_id: view.server_id().to_string(),
            now,
            disabled: true,
            config: JsConfig::default(),
            usage: JsStats::default(),
            streams: 0,
            consumers: 0,
            messages: 0,
            bytes: 0,
            meta_cluster: None,
            account_details: None,
        });
    };
    let usage = JsStats::of(&st);
    let account_details = if o.accounts {
        let (acc, streams, with_consumers) = (o.account.clone(), o.streams, o.consumers);
        let fetched = state
            .heavy(move |v| v.jetstream_accounts(acc.as_deref(), streams, with_consumers))
            .await;
        let Some(reports) = fetched else {
            return error(
                StatusCode::INTERNAL_SERVER_ERROR,
                "Error reading streams: server shutting down",
            );
        };
        let leader = view.server_name().to_string();
        Some(
            reports
                .into_iter()
                .map(|r| account_detail(r, &leader, o.config))
                .collect(),
        )
    } else {
        None
    };
    json(&Jsz {
        server_id: view.server_id().to_string(),
        now,
        disabled: false,
        config: JsConfig::of(&opts, &st),
        usage,
        streams: st.streams,
        consumers: st.consumers,
        messages: st.messages,
        bytes: st.bytes,
        meta_cluster: view.jetstream_meta(),
        account_details,
    })
}
