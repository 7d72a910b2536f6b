//! `/varz`: identity, options, counters, the cluster and JetStream's config and stats, in
//! nats-server 2.9.10's field order (gateway, leaf, mqtt and websocket are empty objects:
//! Petrel has none of them).

use std::collections::BTreeMap;
use std::path::Path;

use axum::extract::State;
use axum::response::Response;
use serde::Serialize;

use petrel_server::{JetStreamOptions, JetStreamStats, MonitorView};

use crate::format::{is_default, json, nanos, rfc3339, secs, since, uptime, GoFloat};
use crate::{sys, AppState};

#[derive(Serialize)]
struct Varz {
    server_id: String,
    server_name: String,
    version: &'static str,
    proto: u32,
    go: String,
    host: String,
    port: u16,
    #[serde(skip_serializing_if = "is_default")]
    auth_required: bool,
    #[serde(skip_serializing_if = "is_default")]
    tls_required: bool,
    #[serde(skip_serializing_if = "is_default")]
    tls_verify: bool,
    max_connections: usize,
    #[serde(skip_serializing_if = "is_default")]
    max_subscriptions: usize,
    ping_interval: i64,
    ping_max: u32,
    http_host: String,
    http_port: u16,
    http_base_path: &'static str,
    https_port: u16,
    auth_timeout: GoFloat,
    max_control_line: usize,
    max_payload: usize,
    max_pending: usize,
    cluster: ClusterVarz,
    gateway: Empty,
    leaf: LeafVarz,
    mqtt: Empty,
    websocket: WsVarz,
    jetstream: JetStreamVarz,
    tls_timeout: GoFloat,
    write_deadline: i64,
    start: String,
    now: String,
    uptime: String,
    mem: u64,
    cores: usize,
    gomaxprocs: usize,
    cpu: GoFloat,
    connections: u64,
    total_connections: u64,
    routes: u64,
    remotes: u64,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    connect_urls: Vec<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    ws_connect_urls: Vec<String>,
    leafnodes: u64,
    in_msgs: u64,
    out_msgs: u64,
    in_bytes: u64,
    out_bytes: u64,
    slow_consumers: u64,
    subscriptions: u64,
    http_req_stats: BTreeMap<&'static str, u64>,
    config_load_time: String,
    system_account: String,
}

/// `{}`.
#[derive(Serialize)]
struct Empty {}

/// `websocket` of `/varz` (nats-server's fields, each left out when empty): `{}` when off.
#[derive(Serialize, Default)]
struct WsVarz {
    #[serde(skip_serializing_if = "Option::is_none")]
    host: Option<String>,
    #[serde(skip_serializing_if = "is_default")]
    port: u16,
    #[serde(skip_serializing_if = "Option::is_none")]
    advertise: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    jwt_cookie: Option<String>,
    #[serde(skip_serializing_if = "is_default")]
    handshake_timeout: i64,
    #[serde(skip_serializing_if = "Option::is_none")]
    auth_timeout: Option<GoFloat>,
    #[serde(skip_serializing_if = "is_default")]
    no_tls: bool,
    #[serde(skip_serializing_if = "is_default")]
    same_origin: bool,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    allowed_origins: Vec<String>,
}

fn websocket(view: &MonitorView, opts: &petrel_server::Options) -> WsVarz {
    let (Some(w), Some(addr)) = (&opts.websocket, view.websocket_addr()) else {
        return WsVarz::default();
    };
    WsVarz {
        host: Some(addr.ip().to_string()),
        port: addr.port(),
        advertise: w.advertise.clone(),
        jwt_cookie: w.cookies.jwt.clone(),
        handshake_timeout: nanos(w.handshake_timeout),
        auth_timeout: w.auth_timeout.map(secs),
        no_tls: w.tls.is_none(),
        same_origin: w.same_origin,
        allowed_origins: w.allowed_origins.clone(),
    }
}

/// `leaf` of `/varz` (nats-server's fields, each left out when empty): `{}` without
/// leafnodes.
#[derive(Serialize, Default)]
struct LeafVarz {
    #[serde(skip_serializing_if = "Option::is_none")]
    host: Option<String>,
    #[serde(skip_serializing_if = "is_default")]
    port: u16,
    #[serde(skip_serializing_if = "Option::is_none")]
    auth_timeout: Option<GoFloat>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    remotes: Vec<LeafRemoteVarz>,
}

/// One remote in `leaf.remotes`.
#[derive(Serialize)]
struct LeafRemoteVarz {
    local_account: String,
    urls: Vec<String>,
}

fn leaf(view: &MonitorView) -> LeafVarz {
    let Some(l) = view.leafnode_settings() else {
        return LeafVarz::default();
    };
    LeafVarz {
        host: l.addr.map(|a| a.ip().to_string()),
        port: l.addr.map_or(0, |a| a.port()),
        auth_timeout: l.addr.map(|_| secs(l.auth_timeout)),
        remotes: l
            .remotes
            .into_iter()
            .map(|(local_account, urls)| LeafRemoteVarz {
                local_account,
                urls,
            })
            .collect(),
    }
}

/// `cluster` of `/varz`: `{}` without a cluster.
#[derive(Serialize, Default)]
struct ClusterVarz {
    #[serde(skip_serializing_if = "Option::is_none")]
    name: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    addr: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    cluster_port: Option<u16>,
    #[serde(skip_serializing_if = "Option::is_none")]
    auth_timeout: Option<GoFloat>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    urls: Vec<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    tls_timeout: Option<GoFloat>,
}

/// `jetstream` of `/varz`: `{}` when JetStream is off.
#[derive(Serialize)]
struct JetStreamVarz {
    #[serde(skip_serializing_if = "Option::is_none")]
    config: Option<JsConfig>,
    #[serde(skip_serializing_if = "Option::is_none")]
    stats: Option<JsStats>,
}

/// JetStream's limits and store directory (also `/jsz`'s `config`).
#[derive(Serialize, Default)]
pub(crate) struct JsConfig {
    pub max_memory: u64,
    pub max_storage: u64,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub store_dir: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub domain: Option<String>,
}

impl JsConfig {
    /// The limits JetStream enforces (configured, else nats-server's defaults measured at
    /// its start) and its store directory.
    pub fn of(js: &JetStreamOptions, st: &JetStreamStats) -> Self {
        JsConfig {
            max_memory: st.max_memory,
            max_storage: st.max_storage,
            store_dir: store_dir(&js.store_dir),
            domain: js.domain.clone(),
        }
    }
}

/// Where streams live, as nats-server names it (`<store_dir>/jetstream`).
fn store_dir(dir: &Path) -> String {
    let dir = std::path::absolute(dir).unwrap_or_else(|_| dir.to_path_buf());
    dir.join("jetstream").display().to_string()
}

/// JetStream usage numbers shared by `/varz` (`stats`) and `/jsz` (top level).
#[derive(Serialize, Default)]
pub(crate) struct JsStats {
    pub memory: u64,
    pub storage: u64,
    pub reserved_memory: u64,
    pub reserved_storage: u64,
    pub accounts: u64,
    pub ha_assets: u64,
    pub api: ApiStats,
}

/// API request counters.
#[derive(Serialize, Default)]
pub(crate) struct ApiStats {
    pub total: u64,
    pub errors: u64,
}

impl JsStats {
    /// Usage of the running JetStreams (every account's together).
    pub fn of(st: &JetStreamStats) -> Self {
        JsStats {
            memory: st.memory,
            storage: st.storage,
            reserved_memory: st.reserved_memory,
            reserved_storage: st.reserved_storage,
            accounts: st.accounts,
            api: ApiStats {
                total: st.api_total,
                errors: st.api_errors,
            },
            ..JsStats::default()
        }
    }
}

fn jetstream(view: &MonitorView) -> JetStreamVarz {
    match (view.jetstream_options(), view.jetstream_stats()) {
        (Some(opts), Some(st)) => JetStreamVarz {
            config: Some(JsConfig::of(&opts, &st)),
            stats: Some(JsStats::of(&st)),
        },
        _ => JetStreamVarz {
            config: None,
            stats: None,
        },
    }
}

/// `GET /varz`.
pub(crate) async fn handler(State(state): State<AppState>) -> Response {
    state.count_request("/varz");
    let view = state.view();
    let opts = view.options();
    let now = crate::format::now_ns();
    let st = view.stats();
    let listen = view.client_addr();
    let (tls_required, tls_verify) = view.tls();
    let http = view.monitor_addr();
    let cores = sys::cores();
    let cluster = view.cluster();
    let route_count = view.routes().len() as u64;
    let varz = Varz {
        server_id: view.server_id().to_string(),
        server_name: view.server_name().to_string(),
        version: petrel_server::NATS_COMPAT_VERSION,
        proto: 1,
        go: format!("petrel{}", petrel_server::PETREL_VERSION),
        host: listen.ip().to_string(),
        port: listen.port(),
        auth_required: opts.auth.required(),
        tls_required,
        tls_verify,
        max_connections: opts.max_connections,
        max_subscriptions: opts.max_subscriptions,
        ping_interval: nanos(opts.ping_interval),
        ping_max: opts.ping_max,
        http_host: http.map_or_else(
            || opts.http_host.unwrap_or(opts.host).to_string(),
            |a| a.ip().to_string(),
        ),
        http_port: http.map_or(opts.http_port.unwrap_or(0), |a| a.port()),
        http_base_path: "",
        https_port: 0,
        auth_timeout: secs(opts.auth_timeout),
        max_control_line: opts.max_control_line,
        max_payload: opts.max_payload,
        max_pending: opts.max_pending,
        cluster: cluster
            .as_ref()
            .map_or_else(ClusterVarz::default, |c| ClusterVarz {
                name: Some(c.name.clone()),
                addr: Some(c.addr.ip().to_string()),
                cluster_port: Some(c.addr.port()),
                auth_timeout: Some(secs(c.auth_timeout)),
                urls: c.urls.clone(),
                tls_timeout: Some(GoFloat(2.0)),
            }),
        gateway: Empty {},
        leaf: leaf(view),
        mqtt: Empty {},
        websocket: websocket(view, &opts),
        jetstream: jetstream(view),
        tls_timeout: secs(
            opts.tls
                .as_ref()
                .map_or(std::time::Duration::from_secs(2), |t| t.timeout),
        ),
        write_deadline: nanos(opts.write_deadline),
        start: rfc3339(view.start_time()),
        now: rfc3339(now),
        uptime: uptime(since(view.start_time(), now)),
        mem: sys::rss_bytes(),
        cores,
        gomaxprocs: cores,
        cpu: GoFloat(state.cpu_percent()),
        connections: st.connections,
        total_connections: st.total_connections,
        routes: route_count,
        remotes: cluster.as_ref().map_or(0, |c| c.remotes as u64),
        ws_connect_urls: cluster
            .as_ref()
            .map(|c| c.ws_connect_urls.clone())
            .unwrap_or_default(),
        connect_urls: cluster.map(|c| c.connect_urls).unwrap_or_default(),
        leafnodes: view.leafs().len() as u64,
        in_msgs: st.in_msgs,
        out_msgs: st.out_msgs,
        in_bytes: st.in_bytes,
        out_bytes: st.out_bytes,
        slow_consumers: st.slow_consumers,
        subscriptions: st.subscriptions,
        http_req_stats: state.request_counts(),
        config_load_time: rfc3339(view.config_load_time()),
        system_account: view.system_account(),
    };
    json(&varz)
}
