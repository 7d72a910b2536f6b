//! `/connz`: open client connections with nats-server's fields, sorting and paging.
//!
//! Query: `subs` (`1`/`true`: subject list, `detail`: full subscription objects), `sort`
//! (`cid`, `start`, `subs`, `pending`, `msgs_to`, `msgs_from`, `bytes_to`, `bytes_from`,
//! `last`, `idle`, `uptime`, `rtt`; all but `cid`/`start` largest first), `offset`,
//! `limit` (default 1024), `cid` (one connection), `auth` (show `authorized_user`, and
//! `account` / `name_tag`), `acc` (one account's connections),
//! `state` (`open`, `closed`, `any`; Petrel keeps no closed connections).

use std::cmp::Reverse;

use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::Response;
use serde::Serialize;

use petrel_server::{ConnSnapshot, SubSnapshot};

use crate::format::{error, is_default, json, rfc3339, rtt, since, uptime};
use crate::query::{page, BadParam, Params};
use crate::AppState;

/// Connections per page unless `limit` says otherwise.
const DEFAULT_LIMIT: usize = 1024;

#[derive(Serialize)]
struct Connz {
    server_id: String,
    now: String,
    num_connections: usize,
    total: usize,
    offset: usize,
    limit: usize,
    connections: Vec<ConnInfo>,
}

#[derive(Serialize)]
struct ConnInfo {
    cid: u64,
    kind: &'static str,
    #[serde(rename = "type")]
    kind_type: &'static str,
    ip: String,
    port: u16,
    start: String,
    last_activity: String,
    rtt: String,
    uptime: String,
    idle: String,
    pending_bytes: u64,
    in_msgs: u64,
    out_msgs: u64,
    in_bytes: u64,
    out_bytes: u64,
    subscriptions: u64,
    #[serde(skip_serializing_if = "String::is_empty")]
    name: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    lang: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    version: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    tls_version: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    tls_cipher_suite: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    authorized_user: Option<String>,
    /// With `auth`; left out for `$G`, as nats-server.
    #[serde(skip_serializing_if = "Option::is_none")]
    account: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    subscriptions_list: Option<Vec<String>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    subscriptions_list_detail: Option<Vec<SubDetail>>,
    /// With `auth`: the account's name.
    #[serde(skip_serializing_if = "Option::is_none")]
    name_tag: Option<String>,
}

/// One subscription in `subscriptions_list_detail` (and, with `account`, in `/subsz`).
#[derive(Serialize)]
pub(crate) struct SubDetail {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub account: Option<String>,
    pub subject: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub qgroup: Option<String>,
    pub sid: String,
    pub msgs: u64,
    #[serde(skip_serializing_if = "is_default")]
    pub max: u64,
    pub cid: u64,
}

impl SubDetail {
    /// The detail of `s`; with its account when `with_account`.
    pub fn of(s: SubSnapshot, with_account: bool) -> Self {
        SubDetail {
            account: with_account.then_some(s.account),
            subject: s.subject,
            qgroup: s.queue,
            sid: s.sid,
            msgs: s.msgs,
            max: s.max,
            cid: s.cid,
        }
    }
}

/// How much of the subscriptions to show.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Subs {
    None,
    List,
    Detail,
}

/// The sort orders nats-server accepts on open connections.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum SortBy {
    Cid,
    Start,
    Subs,
    Pending,
    MsgsTo,
    MsgsFrom,
    BytesTo,
    BytesFrom,
    Last,
    Idle,
    Uptime,
    Rtt,
}

impl SortBy {
    fn parse(v: &str) -> Result<SortBy, BadParam> {
        Ok(match v {
            "cid" => SortBy::Cid,
            "start" => SortBy::Start,
            "subs" => SortBy::Subs,
            "pending" => SortBy::Pending,
            "msgs_to" => SortBy::MsgsTo,
            "msgs_from" => SortBy::MsgsFrom,
            "bytes_to" => SortBy::BytesTo,
            "bytes_from" => SortBy::BytesFrom,
            "last" => SortBy::Last,
            "idle" => SortBy::Idle,
            "uptime" => SortBy::Uptime,
            "rtt" => SortBy::Rtt,
            "stop" | "reason" => {
                return Err(BadParam(format!(
                    "sort by {v} only valid on closed connections"
                )))
            }
            _ => return Err(BadParam(format!("invalid sorting option: {v}"))),
        })
    }

    /// Sort `conns` (already in cid order; the sort is stable, so ties stay by cid).
    fn apply(self, conns: &mut [ConnSnapshot], now: i64) {
        match self {
            SortBy::Cid | SortBy::Start => {}
            SortBy::Subs => conns.sort_by_key(|c| Reverse(c.subscriptions)),
            SortBy::Pending => conns.sort_by_key(|c| Reverse(c.pending_bytes)),
            SortBy::MsgsTo => conns.sort_by_key(|c| Reverse(c.out_msgs)),
            SortBy::MsgsFrom => conns.sort_by_key(|c| Reverse(c.in_msgs)),
            SortBy::BytesTo => conns.sort_by_key(|c| Reverse(c.out_bytes)),
            SortBy::BytesFrom => conns.sort_by_key(|c| Reverse(c.in_bytes)),
            SortBy::Last => conns.sort_by_key(|c| Reverse(c.last_activity)),
            SortBy::Idle => conns.sort_by_key(|c| Reverse(since(c.last_activity, now))),
            SortBy::Uptime => conns.sort_by_key(|c| Reverse(since(c.start, now))),
            SortBy::Rtt => conns.sort_by_key(|c| Reverse(c.rtt.unwrap_or_default())),
        }
    }
}

/// The parsed query.
struct Opts {
    subs: Subs,
    sort: SortBy,
    auth: bool,
    offset: usize,
    limit: usize,
    cid: Option<u64>,
    closed_only: bool,
    /// Only this account's connections (`acc`).
    account: Option<String>,
}

fn parse(p: &Params) -> Result<Opts, BadParam> {
    let subs = match p.get("subs") {
        Some("detail") => Subs::Detail,
        _ if p.bool("subs")? => Subs::List,
        _ => Subs::None,
    };
    let sort = p.get("sort").map_or(Ok(SortBy::Cid), SortBy::parse)?;
    let (offset, limit) = p.paging(DEFAULT_LIMIT)?;
    let cid = match p.int("cid", 0)? {
        n if n > 0 => Some(n as u64),
        _ => None,
    };
    let closed_only = match p.get("state") {
        None | Some("open" | "any" | "all") => false,
        Some("closed") => true,
        Some(other) => {
            return Err(BadParam(format!(
                "Error decoding connection state for 'state': {other}"
            )))
        }
    };
    Ok(Opts {
        subs,
        sort,
        auth: p.bool("auth")?,
        offset,
        limit,
        cid,
        closed_only,
        account: p.get("acc").filter(|a| !a.is_empty()).map(str::to_string),
    })
}

/// `None` for an empty list (nats-server omits empty subscription lists).
fn non_empty<T>(v: Vec<T>) -> Option<Vec<T>> {
    (!v.is_empty()).then_some(v)
}

fn info(c: ConnSnapshot, o: &Opts, now: i64) -> ConnInfo {
    let (list, detail) = match o.subs {
        Subs::None => (None, None),
        Subs::List => (Some(c.subs.into_iter().map(|s| s.subject).collect()), None),
        Subs::Detail => (
            None,
            Some(
                c.subs
                    .into_iter()
                    .map(|s| SubDetail::of(s, false))
                    .collect(),
            ),
        ),
    };
    let authorized_user = c.authorized_user.filter(|_| o.auth);
    let account = (o.auth && c.account != petrel_server::GLOBAL_ACCOUNT).then(|| c.account.clone());
    let name_tag = o.auth.then(|| c.account.clone());
    ConnInfo {
        cid: c.cid,
        kind: "Client",
        kind_type: if c.websocket { "websocket" } else { "nats" },
        ip: c.addr.ip().to_string(),
        port: c.addr.port(),
        start: rfc3339(c.start),
        last_activity: rfc3339(c.last_activity),
        rtt: rtt(c.rtt),
        uptime: uptime(since(c.start, now)),
        idle: uptime(since(c.last_activity, now)),
        pending_bytes: c.pending_bytes,
        in_msgs: c.in_msgs,
        out_msgs: c.out_msgs,
        in_bytes: c.in_bytes,
        out_bytes: c.out_bytes,
        subscriptions: c.subscriptions,
        name: c.name,
        lang: c.lang,
        version: c.version,
        tls_version: c.tls_version,
        tls_cipher_suite: c.tls_cipher,
        authorized_user,
        account,
        subscriptions_list: list.and_then(non_empty),
        subscriptions_list_detail: detail.and_then(non_empty),
        name_tag,
    }
}

/// `GET /connz`.
pub(crate) async fn handler(
    State(state): State<AppState>,
    Query(q): Query<Vec<(String, String)>>,
) -> Response {
    state.count_request("/connz");
    let o = match parse(&Params(q)) {
        Ok(o) => o,
        Err(bad) => return bad.response(),
    };
    let view = state.view();
    let now = crate::format::now_ns();
    let with_subs = o.subs != Subs::None;
    let Some(mut conns) = state.heavy(move |v| v.connections(with_subs)).await else {
        return error(StatusCode::SERVICE_UNAVAILABLE, "server shutting down");
    };
    if o.closed_only {
        conns.clear();
    }
    if let Some(acc) = &o.account {
        conns.retain(|c| &c.account == acc);
    }
    let total = conns.len();
    let (offset, limit) = match o.cid {
        Some(cid) => {
            conns.retain(|c| c.cid == cid);
            (0, 1)
        }
        None => (o.offset, o.limit),
    };
    o.sort.apply(&mut conns, now);
    let connections: Vec<ConnInfo> = page(conns, offset, limit)
        .into_iter()
        .map(|c| info(c, &o, now))
        .collect();
    json(&Connz {
        server_id: view.server_id().to_string(),
        now: rfc3339(now),
        num_connections: connections.len(),
        total,
        offset,
        limit,
        connections,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sort_options() {
        assert_eq!(SortBy::parse("msgs_from").ok(), Some(SortBy::MsgsFrom));
        let Err(BadParam(t)) = SortBy::parse("bogus") else {
            panic!("bogus accepted");
        };
        assert_eq!(t, "invalid sorting option: bogus");
        let Err(BadParam(t)) = SortBy::parse("stop") else {
            panic!("stop accepted");
        };
        assert_eq!(t, "sort by stop only valid on closed connections");
    }
}
