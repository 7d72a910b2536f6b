//! `/metrics`: the server's counters, JetStream usage and every stream's and consumer's
//! numbers in the Prometheus text format. Names start with `petrel_`; counters end in
//! `_total`; per-account numbers carry an `account` label, streams `account` and `stream`,
//! consumers `account`, `stream` and `consumer` (stream names are unique per account only).
//!
//! | metric | type |
//! |---|---|
//! | `petrel_info{server_id,server_name,version,nats_version}` (always 1) | gauge |
//! | `petrel_start_time_seconds`, `petrel_uptime_seconds` | gauge |
//! | `petrel_connections`, `petrel_subscriptions` | gauge |
//! | `petrel_connections_total` (accepted since start) | counter |
//! | `petrel_in_msgs_total`, `petrel_out_msgs_total`, `petrel_in_bytes_total`, `petrel_out_bytes_total` | counter |
//! | `petrel_slow_consumers_total` | counter |
//! | `petrel_routes` (route connections), `petrel_route_remotes` (peer servers) | gauge |
//! | `petrel_leafnodes` (leafnode connections, both roles) | gauge |
//! | `petrel_jetstream_enabled` | gauge |
//! | `petrel_jetstream_streams`, `_consumers`, `_messages`, `_bytes`, `_memory_bytes`, `_storage_bytes` | gauge |
//! | `petrel_jetstream_api_requests_total`, `petrel_jetstream_api_errors_total` | counter |
//! | `petrel_account_connections`, `petrel_account_subscriptions` `{account}` | gauge |
//! | `petrel_account_connections_total`, `_in_msgs_total`, `_out_msgs_total`, `_in_bytes_total`, `_out_bytes_total`, `_slow_consumers_total` `{account}` | counter |
//! | `petrel_stream_messages`, `_bytes`, `_first_seq`, `_last_seq`, `_consumers` `{account,stream}` | gauge |
//! | `petrel_consumer_num_pending`, `_num_ack_pending`, `_num_redelivered`, `_num_waiting`, `_delivered_stream_seq`, `_ack_floor_stream_seq` `{account,stream,consumer}` | gauge |

use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};

use petrel_server::{AccountStatz, ConsumerReport, MonitorView, StreamReport};

use crate::format::{error, since};
use crate::prom::{Kind, PromWriter, CONTENT_TYPE};
use crate::AppState;

/// `GET /metrics`.
pub(crate) async fn handler(State(state): State<AppState>) -> Response {
    state.count_request("/metrics");
    let view = state.view().clone();
    let read = |v: &MonitorView| {
        let streams: Vec<Owned> = v
            .jetstream_accounts(None, true, true)
            .into_iter()
            .flat_map(|a| {
                let name = a.name;
                a.streams.into_iter().map(move |s| (name.clone(), s))
            })
            .collect();
        (streams, v.account_statz())
    };
    let Some((streams, accounts)) = state.heavy(read).await else {
        return error(
            StatusCode::INTERNAL_SERVER_ERROR,
            "Error reading streams: server shutting down",
        );
    };
    let body = render(&view, &accounts, &streams);
    ([(header::CONTENT_TYPE, CONTENT_TYPE)], body).into_response()
}

/// A stream with its account.
type Owned = (String, StreamReport);

/// The exposition body.
fn render(view: &MonitorView, accounts: &[AccountStatz], streams: &[Owned]) -> String {
    let mut w = PromWriter::new();
    server(&mut w, view);
    account_metrics(&mut w, accounts);
    let routes = view.routes().len() as u64;
    let remotes = view.cluster().map_or(0, |c| c.remotes as u64);
    w.single("petrel_routes", "Route connections.", Kind::Gauge, routes);
    w.single(
        "petrel_route_remotes",
        "Servers of the cluster with a route.",
        Kind::Gauge,
        remotes,
    );
    w.single(
        "petrel_leafnodes",
        "Leafnode connections (both roles).",
        Kind::Gauge,
        view.leafs().len() as u64,
    );
    let js = view.jetstream_stats();
    w.single(
        "petrel_jetstream_enabled",
        "1 when JetStream is running.",
        Kind::Gauge,
        u64::from(js.is_some()),
    );
    if let Some(js) = js {
        for (name, help, v) in [
            ("petrel_jetstream_streams", "Streams.", js.streams),
            ("petrel_jetstream_consumers", "Consumers.", js.consumers),
            (
                "petrel_jetstream_messages",
                "Messages in all streams.",
                js.messages,
            ),
            ("petrel_jetstream_bytes", "Bytes in all streams.", js.bytes),
            (
                "petrel_jetstream_memory_bytes",
                "Bytes in memory streams.",
                js.memory,
            ),
            (
                "petrel_jetstream_storage_bytes",
                "Bytes in file streams.",
                js.storage,
            ),
        ] {
            w.single(name, help, Kind::Gauge, v);
        }
        w.single(
            "petrel_jetstream_api_requests_total",
            "JetStream API requests handled.",
            Kind::Counter,
            js.api_total,
        );
        w.single(
            "petrel_jetstream_api_errors_total",
            "JetStream API requests answered with an error.",
            Kind::Counter,
            js.api_errors,
        );
    }
    if !streams.is_empty() {
        stream_metrics(&mut w, streams);
        consumer_metrics(&mut w, streams);
    }
    w.finish()
}

/// Each account's connections, subscriptions and traffic.
fn account_metrics(w: &mut PromWriter, accounts: &[AccountStatz]) {
    type Get = fn(&AccountStatz) -> u64;
    let families: [(&str, &str, Kind, Get); 8] = [
        (
            "petrel_account_connections",
            "Client connections open in the account.",
            Kind::Gauge,
            |a| a.conns,
        ),
        (
            "petrel_account_subscriptions",
            "Subscriptions in the account.",
            Kind::Gauge,
            |a| a.subscriptions,
        ),
        (
            "petrel_account_connections_total",
            "Client connections of the account since start.",
            Kind::Counter,
            |a| a.total_conns,
        ),
        (
            "petrel_account_in_msgs_total",
            "Messages the account's connections published.",
            Kind::Counter,
            |a| a.received.0,
        ),
        (
            "petrel_account_in_bytes_total",
            "Payload bytes the account's connections published.",
            Kind::Counter,
            |a| a.received.1,
        ),
        (
            "petrel_account_out_msgs_total",
            "Messages sent to the account's connections.",
            Kind::Counter,
            |a| a.sent.0,
        ),
        (
            "petrel_account_out_bytes_total",
            "Payload bytes sent to the account's connections.",
            Kind::Counter,
            |a| a.sent.1,
        ),
        (
            "petrel_account_slow_consumers_total",
            "The account's connections closed as slow consumers.",
            Kind::Counter,
            |a| a.slow_consumers,
        ),
    ];
    for (name, help, kind, get) in families {
        w.family(name, help, kind);
        for a in accounts {
            w.sample(name, &[("account", &a.name)], get(a));
        }
    }
}

/// Identity, uptime and the core counters.
fn server(w: &mut PromWriter, view: &MonitorView) {
    let now = crate::format::now_ns();
    w.family(
        "petrel_info",
        "Server identity (the value is always 1).",
        Kind::Gauge,
    );
    w.sample(
        "petrel_info",
        &[
            ("server_id", view.server_id()),
            ("server_name", view.server_name()),
            ("version", petrel_server::PETREL_VERSION),
            ("nats_version", petrel_server::NATS_COMPAT_VERSION),
        ],
        1u64,
    );
    w.single(
        "petrel_start_time_seconds",
        "Start time of the server, seconds since the Unix epoch.",
        Kind::Gauge,
        view.start_time() as f64 / 1e9,
    );
    w.single(
        "petrel_uptime_seconds",
        "Seconds since the server started.",
        Kind::Gauge,
        since(view.start_time(), now).as_secs_f64(),
    );
    let st = view.stats();
    w.single(
        "petrel_connections",
        "Client connections open now.",
        Kind::Gauge,
        st.connections,
    );
    w.single(
        "petrel_connections_total",
        "Client connections accepted since start.",
        Kind::Counter,
        st.total_connections,
    );
    w.single(
        "petrel_subscriptions",
        "Subscriptions held now (JetStream's internal ones included).",
        Kind::Gauge,
        st.subscriptions,
    );
    for (name, help, v) in [
        (
            "petrel_in_msgs_total",
            "Messages received from clients.",
            st.in_msgs,
        ),
        (
            "petrel_out_msgs_total",
            "Messages delivered to clients.",
            st.out_msgs,
        ),
        (
            "petrel_in_bytes_total",
            "Payload bytes received from clients.",
            st.in_bytes,
        ),
        (
            "petrel_out_bytes_total",
            "Payload bytes delivered to clients.",
            st.out_bytes,
        ),
        (
            "petrel_slow_consumers_total",
            "Connections closed as slow consumers.",
            st.slow_consumers,
        ),
    ] {
        w.single(name, help, Kind::Counter, v);
    }
}

fn stream_metrics(w: &mut PromWriter, streams: &[Owned]) {
    type Get = fn(&StreamReport) -> u64;
    let families: [(&str, &str, Get); 5] = [
        (
            "petrel_stream_messages",
            "Messages stored in the stream.",
            |s| s.state.messages,
        ),
        ("petrel_stream_bytes", "Bytes stored in the stream.", |s| {
            s.state.bytes
        }),
        (
            "petrel_stream_first_seq",
            "First sequence in the stream.",
            |s| s.state.first_seq,
        ),
        (
            "petrel_stream_last_seq",
            "Last sequence in the stream.",
            |s| s.state.last_seq,
        ),
        ("petrel_stream_consumers", "Consumers of the stream.", |s| {
            s.state.consumer_count
        }),
    ];
    for (name, help, get) in families {
        w.family(name, help, Kind::Gauge);
        for (account, s) in streams {
            w.sample(name, &[("account", account), ("stream", &s.name)], get(s));
        }
    }
}

fn consumer_metrics(w: &mut PromWriter, streams: &[Owned]) {
    type Get = fn(&ConsumerReport) -> u64;
    let families: [(&str, &str, Get); 6] = [
        (
            "petrel_consumer_num_pending",
            "Messages not yet delivered to the consumer.",
            |c| c.num_pending,
        ),
        (
            "petrel_consumer_num_ack_pending",
            "Messages delivered and not yet acknowledged.",
            |c| c.num_ack_pending,
        ),
        (
            "petrel_consumer_num_redelivered",
            "Messages redelivered and not yet acknowledged.",
            |c| c.num_redelivered,
        ),
        (
            "petrel_consumer_num_waiting",
            "Pull requests waiting.",
            |c| c.num_waiting,
        ),
        (
            "petrel_consumer_delivered_stream_seq",
            "Stream sequence of the last delivery.",
            |c| c.delivered.stream_seq,
        ),
        (
            "petrel_consumer_ack_floor_stream_seq",
            "Stream sequence of the ack floor.",
            |c| c.ack_floor.stream_seq,
        ),
    ];
    for (name, help, get) in families {
        w.family(name, help, Kind::Gauge);
        for (account, s) in streams {
            for c in &s.consumers {
                let labels = [
                    ("account", account.as_str()),
                    ("stream", &s.name),
                    ("consumer", &c.name),
                ];
                w.sample(name, &labels, get(c));
            }
        }
    }
}
