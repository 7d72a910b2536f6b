//! `/healthz`.
//!
//! `/healthz` answers `{"status":"ok"}` (200, on one line as nats-server writes it). As nats-server 2.9.10, JetStream is only
//! checked when it is configured: a server configured with JetStream whose JetStream is
//! not running answers 503 `{"status":"unavailable","status_code":503,"error":"JetStream
//! not enabled"}` (or, when its store directory took no writes at start, why); one whose
//! store directory stopped taking writes (a full or read-only volume, probed every 5 s)
//! answers 503 with the system's error; a server without JetStream in its configuration is healthy even with
//! `js-enabled-only=true` (nats-server 2.9.10 answers the same). `js-enabled-only`,
//! `js-enabled` and `js-server-only` are accepted (booleans). Clustered, without those
//! three, it also checks this node's share of JetStream as nats-server does: a meta group
//! that stopped here or knows no leader, a stream replica placed here that is not open,
//! stopped (an entry it could not apply or store) or knows no leader — 503 with
//! nats-server's wording ("JetStream stream 'ACC > NAME' is not current: …").

use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::Response;
use serde::Serialize;

use crate::format::json_compact;
use crate::query::Params;
use crate::AppState;

#[derive(Serialize)]
struct Health {
    status: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    status_code: Option<u16>,
    #[serde(skip_serializing_if = "Option::is_none")]
    error: Option<String>,
}

/// `GET /healthz`.
pub(crate) async fn healthz(
    State(state): State<AppState>,
    Query(q): Query<Vec<(String, String)>>,
) -> Response {
    state.count_request("/healthz");
    let p = Params(q);
    let mut js_only = false;
    for name in ["js-enabled-only", "js-enabled", "js-server-only"] {
        match p.bool(name) {
            Ok(on) => js_only |= on,
            Err(bad) => return bad.response(),
        }
    }
    let view = state.view();
    let problem = view.jetstream_problem().or_else(|| {
        (!js_only)
            .then(|| view.jetstream_cluster_problem())
            .flatten()
    });
    if let Some(why) = problem {
        let code = StatusCode::SERVICE_UNAVAILABLE;
        return json_compact(
            code,
            &Health {
                status: "unavailable",
                status_code: Some(code.as_u16()),
                error: Some(why),
            },
        );
    }
    json_compact(
        StatusCode::OK,
        &Health {
            status: "ok",
            status_code: None,
            error: None,
        },
    )
}
