//! `/jsz`: JetStream's config and usage; `accounts=true` adds the account details,
//! `streams=true` each stream's state, `consumers=true` each consumer's numbers,
//! `config=true` the stream and consumer configs (consumers imply streams, streams imply
//! accounts, as in nats-server). The per-stream part reads the stores on a blocking
//! thread.

use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::Response;
use serde::Serialize;

use petrel_server::{ConsumerConfig, SequencePair, StreamConfig, StreamReport};

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
    account_details: Option<Vec<AccountDetail>>,
}

#[derive(Serialize)]
struct AccountDetail {
    name: &'static str,
    id: &'static str,
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

#[derive(Serialize)]
struct Cluster {
    leader: String,
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
    accounts: bool,
    streams: bool,
    consumers: bool,
    config: bool,
}

fn parse(p: &Params) -> Result<Opts, BadParam> {
    let consumers = p.bool("consumers")?;
    let streams = p.bool("streams")? || consumers;
    Ok(Opts {
        accounts: p.bool("accounts")? || streams,
        streams,
        consumers,
        config: p.bool("config")?,
    })
}

fn stream_detail(r: StreamReport, leader: &str, config: bool) -> StreamDetail {
    StreamDetail {
        name: r.name,
        created: rfc3339(r.created),
        cluster: Cluster {
            leader: leader.to_string(),
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
            account_details: None,
        });
    };
    let reports = if o.streams {
        let with_consumers = o.consumers;
        match state
            .heavy(move |v| v.jetstream_report(with_consumers))
            .await
        {
            Some(r) => r.unwrap_or_default(),
            None => {
                return error(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "Error reading streams: server shutting down",
                )
            }
        }
    } else {
        Vec::new()
    };
    let usage = JsStats::of(&st);
    let account_details = o.accounts.then(|| {
        let leader = view.server_name().to_string();
        vec![AccountDetail {
            name: petrel_server::GLOBAL_ACCOUNT,
            id: petrel_server::GLOBAL_ACCOUNT,
            memory: st.memory,
            storage: st.storage,
            // nats-server shows "no reservation" as Go's -1 in a uint64.
            reserved_memory: u64::MAX,
            reserved_storage: u64::MAX,
            accounts: 0,
            ha_assets: 0,
            api: ApiStats {
                total: st.api_total,
                errors: st.api_errors,
            },
            stream_detail: reports
                .into_iter()
                .map(|r| stream_detail(r, &leader, o.config))
                .collect(),
        }]
    });
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
        account_details,
    })
}
