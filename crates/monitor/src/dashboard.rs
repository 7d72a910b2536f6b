//! `/`: the built-in dashboard, one self-contained HTML page (`dashboard.html`, inline CSS
//! and JavaScript, no external assets) that polls `/varz`, `/connz?subs=1`, `/subsz` and
//! `/jsz?streams=true&consumers=true&config=true` every second. It shows the server's
//! identity, the counters, message and byte rates over the last five minutes (computed from
//! `/varz` counter deltas, drawn on a `<canvas>`), and tables of connections, streams and
//! consumers, and a live view of a subject: the page subscribes over the server's WebSocket
//! listener (the CSP allows exactly that port besides its own origin). Every number carries an `id` or `data-*` attributes with the raw value in
//! `data-value`, so tests (and scrapers) can read it.

use axum::extract::State;
use axum::http::{header, HeaderValue};
use axum::response::{IntoResponse, Response};

use crate::AppState;

/// The page, embedded at compile time.
pub(crate) const HTML: &str = include_str!("dashboard.html");

/// What the page may load: only itself and same-origin JSON (no CDN, works offline), and
/// connect to the WebSocket listener (`{ws}`: its sources, when there is one).
fn csp(ws: &str) -> String {
    format!(
        "default-src 'none'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; \
         connect-src 'self'{ws}; img-src 'self' data:; base-uri 'none'; form-action 'none'"
    )
}

/// `GET /`.
pub(crate) async fn handler(State(state): State<AppState>) -> Response {
    state.count_request("/");
    let ws = state
        .view()
        .websocket_addr()
        .map(|a| format!(" ws://*:{0} wss://*:{0}", a.port()))
        .unwrap_or_default();
    let csp = HeaderValue::from_str(&csp(&ws))
        .unwrap_or_else(|_| HeaderValue::from_static("default-src 'none'"));
    (
        [
            (
                header::CONTENT_TYPE,
                HeaderValue::from_static("text/html; charset=utf-8"),
            ),
            (header::CACHE_CONTROL, HeaderValue::from_static("no-cache")),
            (header::CONTENT_SECURITY_POLICY, csp),
            (
                header::X_CONTENT_TYPE_OPTIONS,
                HeaderValue::from_static("nosniff"),
            ),
        ],
        HTML,
    )
        .into_response()
}

#[cfg(test)]
mod tests {
    use super::HTML;

    #[test]
    fn self_contained() {
        // Nothing loaded from elsewhere: no external scripts, styles, fonts or images. (The
        // SVG namespace is an identifier the cluster drawing needs, not a resource.)
        let html = HTML.replace("\"http://www.w3.org/2000/svg\"", "");
        for bad in [
            "<script src",
            "<link",
            "@import",
            "url(",
            "http://",
            "https://",
            "//cdn",
        ] {
            assert!(!html.contains(bad), "dashboard.html contains {bad:?}");
        }
        assert!(HTML.contains("<canvas id=\"chart-msgs\""));
    }

    #[test]
    fn polls_every_endpoint() {
        for endpoint in [
            "varz: \"varz\"",
            "connz: \"connz?subs=1\"",
            "subsz: \"subsz\"",
            "jsz: \"jsz?streams=true&consumers=true&config=true\"",
            "routez: \"routez\"",
        ] {
            assert!(HTML.contains(endpoint), "{endpoint}");
        }
    }

    #[test]
    fn every_counter_has_an_id() {
        for id in [
            "varz-connections",
            "varz-subscriptions",
            "varz-in-msgs",
            "varz-out-msgs",
            "varz-in-bytes",
            "varz-out-bytes",
            "varz-slow-consumers",
            "rate-in-msgs",
            "rate-out-msgs",
            "rate-in-bytes",
            "rate-out-bytes",
            "jsz-streams",
            "jsz-messages",
            "server-name",
            "server-jetstream",
            "status",
        ] {
            assert!(HTML.contains(&format!("id=\"{id}\"")), "{id}");
        }
    }
}
