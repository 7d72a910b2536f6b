//! `/accountz`: the accounts (`$G`, the system account and every configured one) and, with
//! `acc=NAME`, one account's detail, in nats-server's shapes. An unknown account is a 400
//! with nats-server's text.

use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::Response;
use serde::Serialize;

use crate::format::{error, json, rfc3339};
use crate::query::Params;
use crate::AppState;

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
