//! `/subsz` (and `/subscriptionsz`): Sublist statistics; with `subs=1` also the
//! subscriptions (`test=<subject>`: only those matching that literal subject), paged by
//! `offset` / `limit` (default 1024).
//!
//! As nats-server 2.9.10: without a non-empty subscription list the body is the bare
//! statistics; with one it also carries `server_id`, `now`, `total` (the number returned),
//! `offset`, `limit` and `subscriptions_list`.

use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::Response;
use serde::Serialize;

use petrel_server::SublistStats;

use crate::connz::SubDetail;
use crate::format::{error, json, rfc3339, GoFloat};
use crate::query::{page, Params};
use crate::AppState;

/// Subscriptions per page unless `limit` says otherwise.
const DEFAULT_LIMIT: usize = 1024;

#[derive(Serialize)]
struct Stats {
    num_subscriptions: u64,
    num_cache: u64,
    num_inserts: u64,
    num_removes: u64,
    num_matches: u64,
    cache_hit_rate: GoFloat,
    max_fanout: u64,
    avg_fanout: GoFloat,
}

impl From<SublistStats> for Stats {
    fn from(s: SublistStats) -> Self {
        Stats {
            num_subscriptions: s.num_subscriptions,
            num_cache: s.num_cache,
            num_inserts: s.num_inserts,
            num_removes: s.num_removes,
            num_matches: s.num_matches,
            cache_hit_rate: GoFloat(s.cache_hit_rate),
            max_fanout: s.max_fanout,
            avg_fanout: GoFloat(s.avg_fanout),
        }
    }
}

#[derive(Serialize)]
struct Subsz {
    server_id: String,
    now: String,
    #[serde(flatten)]
    stats: Stats,
    total: usize,
    offset: usize,
    limit: usize,
    subscriptions_list: Vec<SubDetail>,
}

/// Whether `s` is a valid literal (publish) subject.
fn valid_literal(s: &str) -> bool {
    !s.is_empty()
        && s.split('.').all(|t| {
            !t.is_empty() && t != "*" && t != ">" && !t.bytes().any(|b| b.is_ascii_whitespace())
        })
}

/// `GET /subsz`.
pub(crate) async fn handler(state: State<AppState>, q: Query<Vec<(String, String)>>) -> Response {
    respond(state, q, "/subsz").await
}

/// `GET /subscriptionsz` (the same as `/subsz`).
pub(crate) async fn handler_alias(
    state: State<AppState>,
    q: Query<Vec<(String, String)>>,
) -> Response {
    respond(state, q, "/subscriptionsz").await
}

async fn respond(
    State(state): State<AppState>,
    Query(q): Query<Vec<(String, String)>>,
    path: &'static str,
) -> Response {
    state.count_request(path);
    let p = Params(q);
    let parsed = p
        .bool("subs")
        .and_then(|subs| Ok((subs, p.paging(DEFAULT_LIMIT)?)));
    let (subs, (offset, limit)) = match parsed {
        Ok(v) => v,
        Err(bad) => return bad.response(),
    };
    let test = p.get("test");
    if let Some(t) = test {
        if !valid_literal(t) {
            return error(
                StatusCode::BAD_REQUEST,
                &format!("invalid test subject, must be valid publish subject: {t}"),
            );
        }
    }
    let view = state.view();
    let stats = Stats::from(view.sublist_stats());
    if !subs {
        return json(&stats);
    }
    let test_owned = test.map(str::to_string);
    let Some(all) = state
        .heavy(move |v| v.subscriptions(test_owned.as_deref()))
        .await
    else {
        return error(StatusCode::SERVICE_UNAVAILABLE, "server shutting down");
    };
    let list: Vec<SubDetail> = page(all, offset, limit)
        .into_iter()
        .map(|s| SubDetail::of(s, true))
        .collect();
    if list.is_empty() {
        return json(&stats);
    }
    json(&Subsz {
        server_id: view.server_id().to_string(),
        now: rfc3339(crate::format::now_ns()),
        stats,
        total: list.len(),
        offset,
        limit,
        subscriptions_list: list,
    })
}

#[cfg(test)]
mod tests {
    #[test]
    fn test_subject_must_be_literal() {
        assert!(super::valid_literal("foo.bar"));
        for bad in ["", "foo.*", "foo.>", "foo..bar", "a b"] {
            assert!(!super::valid_literal(bad), "{bad:?}");
        }
    }
}
