//! `/accountz`: the accounts (`$G`, the system account and every configured one) and, with
//! `acc=NAME`, one account's detail, in nats-server's shapes (an unknown account is a 400
//! with nats-server's text); `/accstatz`: each account's connections and traffic.

use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::Response;
use serde::Serialize;

use crate::format::{error, json, rfc3339};
use crate::query::Params;
use crate::AppState;
use petrel_server::MonitorView;

#[derive(Serialize)]
struct Accountz {
    server_id: String,
    now: String,
    system_account: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    accounts: Option<Vec<String>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    account_detail: Option<AccountDetail>,
}

#[derive(Serialize)]
struct AccountDetail {
    account_name: String,
    update_time: String,
    expired: bool,
    complete: bool,
    jetstream_enabled: bool,
    leafnode_connections: u64,
    client_connections: u64,
    subscriptions: u64,
    name_tag: String,
    sublist_stats: SublistStats,
}

#[derive(Serialize)]
struct SublistStats {
    num_subscriptions: u64,
    num_cache: u64,
    num_inserts: u64,
    num_removes: u64,
    num_matches: u64,
    cache_hit_rate: f64,
    max_fanout: u64,
    avg_fanout: f64,
}

/// `GET /accountz`.
pub(crate) async fn handler(
    State(state): State<AppState>,
    Query(q): Query<Vec<(String, String)>>,
) -> Response {
    state.count_request("/accountz");
    let view = state.view();
    let accounts = view.accounts();
    let want = Params(q)
        .get("acc")
        .filter(|a| !a.is_empty())
        .map(str::to_string);
    let account_detail = match &want {
        None => None,
        Some(name) => match accounts.iter().find(|a| &a.name == name) {
            Some(a) => Some(AccountDetail {
                account_name: a.name.clone(),
                update_time: rfc3339(view.start_time()),
                expired: false,
                complete: true,
                jetstream_enabled: a.jetstream_enabled,
                leafnode_connections: 0,
                client_connections: a.client_connections,
                subscriptions: a.subscriptions,
                name_tag: a.name.clone(),
                sublist_stats: SublistStats {
                    num_subscriptions: a.subscriptions,
                    num_cache: 0,
                    num_inserts: a.inserts,
                    num_removes: a.removes,
                    num_matches: 0,
                    cache_hit_rate: 0.0,
                    max_fanout: 0,
                    avg_fanout: 0.0,
                },
            }),
            None => {
                return error(
                    StatusCode::BAD_REQUEST,
                    &format!("Account {name} does not exist"),
                )
            }
        },
    };
    json(&Accountz {
        server_id: view.server_id().to_string(),
        now: rfc3339(crate::format::now_ns()),
        system_account: view.system_account(),
        accounts: want
            .is_none()
            .then(|| accounts.into_iter().map(|a| a.name).collect()),
        account_detail,
    })
}

#[derive(Serialize)]
struct Accstatz {
    server_id: String,
    now: String,
    account_statz: Vec<AccStat>,
}

#[derive(Serialize)]
struct AccStat {
    acc: String,
    name: String,
    conns: u64,
    leafnodes: u64,
    total_conns: u64,
    num_subscriptions: u64,
    sent: Traffic,
    received: Traffic,
    slow_consumers: u64,
}

/// Messages and bytes, and the same through routes, gateways and leafnodes (none yet).
#[derive(Serialize)]
struct Traffic {
    msgs: u64,
    bytes: u64,
    gateways: Counts,
    routes: Counts,
    leafs: Counts,
}

#[derive(Serialize, Default)]
struct Counts {
    msgs: u64,
    bytes: u64,
}

impl Traffic {
    fn of((msgs, bytes): (u64, u64)) -> Self {
        Traffic {
            msgs,
            bytes,
            gateways: Counts::default(),
            routes: Counts::default(),
            leafs: Counts::default(),
        }
    }
}

/// `GET /accstatz`: each account's connections and traffic; accounts without connections
/// only with `unused=1`, one account with `acc=` (as nats-server).
pub(crate) async fn accstatz(
    State(state): State<AppState>,
    Query(q): Query<Vec<(String, String)>>,
) -> Response {
    state.count_request("/accstatz");
    let p = Params(q);
    let unused = match p.bool("unused") {
        Ok(u) => u,
        Err(bad) => return bad.response(),
    };
    let only = p.get("acc").filter(|a| !a.is_empty()).map(str::to_string);
    let view = state.view();
    // Reads every connection's counters: on the heavy-request thread.
    let Some(all) = state.heavy(MonitorView::account_statz).await else {
        return error(StatusCode::SERVICE_UNAVAILABLE, "server shutting down");
    };
    let account_statz = all
        .into_iter()
        .filter(|a| only.as_ref().is_none_or(|o| &a.name == o))
        .filter(|a| unused || only.is_some() || a.conns > 0)
        .map(|a| AccStat {
            acc: a.name.clone(),
            name: a.name,
            conns: a.conns,
            leafnodes: 0,
            total_conns: a.total_conns,
            num_subscriptions: a.subscriptions,
            sent: Traffic::of(a.sent),
            received: Traffic::of(a.received),
            slow_consumers: a.slow_consumers,
        })
        .collect();
    json(&Accstatz {
        server_id: view.server_id().to_string(),
        now: rfc3339(crate::format::now_ns()),
        account_statz,
    })
}
