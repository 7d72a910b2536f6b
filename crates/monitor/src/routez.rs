//! `/routez`: the cluster's routes with nats-server's fields (`subs=1` adds each route's
//! subscription list). Petrel keeps one uncompressed route per peer.

use axum::extract::{Query, State};
use axum::response::Response;
use serde::Serialize;

use petrel_server::RouteSnapshot;

use crate::format::{json, rfc3339, rtt, since, uptime};
use crate::query::Params;
use crate::AppState;

#[derive(Serialize)]
struct Routez {
    server_id: String,
    server_name: String,
    now: String,
    num_routes: usize,
    routes: Vec<RouteInfo>,
}

#[derive(Serialize)]
struct RouteInfo {
    rid: u64,
    remote_id: String,
    remote_name: String,
    did_solicit: bool,
    is_configured: bool,
    ip: String,
    port: u16,
    start: String,
    last_activity: String,
    rtt: String,
    uptime: String,
    idle: String,
    pending_size: u64,
    in_msgs: u64,
    out_msgs: u64,
    in_bytes: u64,
    out_bytes: u64,
    subscriptions: usize,
    #[serde(skip_serializing_if = "Option::is_none")]
    subscriptions_list: Option<Vec<String>>,
    compression: &'static str,
}

/// `GET /routez`.
pub(crate) async fn handler(
    State(state): State<AppState>,
    Query(q): Query<Vec<(String, String)>>,
) -> Response {
    state.count_request("/routez");
    let p = Params(q);
    let subs = match p.bool("subs") {
        Ok(s) => s || p.get("subs") == Some("detail"),
        Err(_) if p.get("subs") == Some("detail") => true,
        Err(bad) => return bad.response(),
    };
    let view = state.view();
    let now = petrel_server::now_nanos();
    let routes: Vec<RouteInfo> = view
        .routes()
        .into_iter()
        .map(|r| info(r, now, subs))
        .collect();
    json(&Routez {
        server_id: view.server_id().to_string(),
        server_name: view.server_name().to_string(),
        now: rfc3339(now),
        num_routes: routes.len(),
        routes,
    })
}

fn info(r: RouteSnapshot, now: i64, subs: bool) -> RouteInfo {
    RouteInfo {
        rid: r.rid,
        remote_id: r.remote_id,
        remote_name: r.remote_name,
        did_solicit: r.did_solicit,
        is_configured: r.is_configured,
        ip: r.addr.ip().to_string(),
        port: r.addr.port(),
        start: rfc3339(r.start),
        last_activity: rfc3339(r.last_activity),
        rtt: rtt(r.rtt),
        uptime: uptime(since(r.start, now)),
        idle: uptime(since(r.last_activity, now)),
        pending_size: r.pending_bytes,
        in_msgs: r.in_msgs,
        out_msgs: r.out_msgs,
        in_bytes: r.in_bytes,
        out_bytes: r.out_bytes,
        subscriptions: r.subscriptions.len(),
        subscriptions_list: subs.then_some(r.subscriptions),
        compression: "not supported",
    }
}
