//! `/leafz`: the leafnode connections with nats-server's fields (`subs=1` adds each
//! one's subscription list, `acc=<name>` keeps one account's). Petrel's leafnode
//! connections are uncompressed.

use axum::extract::{Query, State};
use axum::response::Response;
use serde::Serialize;

use petrel_server::LeafSnapshot;

use crate::format::{json, rfc3339, rtt};
use crate::query::Params;
use crate::AppState;

#[derive(Serialize)]
struct Leafz {
    server_id: String,
    now: String,
    leafnodes: usize,
    leafs: Vec<LeafInfo>,
}

#[derive(Serialize)]
struct LeafInfo {
    id: u64,
    name: String,
    is_spoke: bool,
    account: String,
    ip: String,
    port: u16,
    rtt: String,
    in_msgs: u64,
    out_msgs: u64,
    in_bytes: u64,
    out_bytes: u64,
    subscriptions: usize,
    #[serde(skip_serializing_if = "Option::is_none")]
    subscriptions_list: Option<Vec<String>>,
    compression: &'static str,
}

/// `GET /leafz`.
pub(crate) async fn handler(
    State(state): State<AppState>,
    Query(q): Query<Vec<(String, String)>>,
) -> Response {
    state.count_request("/leafz");
    let p = Params(q);
    let subs = match p.bool("subs") {
        Ok(s) => s,
        Err(bad) => return bad.response(),
    };
    let acc = p.get("acc").map(str::to_string);
    let view = state.view();
    let leafs: Vec<LeafInfo> = view
        .leafs()
        .into_iter()
        .filter(|l| acc.as_ref().is_none_or(|a| *a == l.account))
        .map(|l| info(l, subs))
        .collect();
    json(&Leafz {
        server_id: view.server_id().to_string(),
        now: rfc3339(petrel_server::now_nanos()),
        leafnodes: leafs.len(),
        leafs,
    })
}

fn info(l: LeafSnapshot, subs: bool) -> LeafInfo {
    LeafInfo {
        id: l.id,
        name: l.name,
        is_spoke: l.is_spoke,
        account: l.account,
        ip: l.addr.ip().to_string(),
        port: l.addr.port(),
        rtt: rtt(l.rtt),
        in_msgs: l.in_msgs,
        out_msgs: l.out_msgs,
        in_bytes: l.in_bytes,
        out_bytes: l.out_bytes,
        subscriptions: l.subscriptions.len(),
        subscriptions_list: subs.then_some(l.subscriptions),
        compression: "not supported",
    }
}
