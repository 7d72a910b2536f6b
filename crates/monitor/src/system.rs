//! The system account's monitoring requests (`$SYS.REQ.SERVER.PING.VARZ`,
//! `$SYS.REQ.ACCOUNT.<acc>.CONNZ`...) answered by the same handlers as the HTTP
//! endpoints: each request becomes a `GET` on [`crate::api_router`] (in process, no
//! socket), its JSON options become the query string, and the JSON body becomes the
//! reply's `data`. STATSZ is derived from `/varz`.

use std::sync::Arc;

use axum::body::Body;
use axum::http::{Request, StatusCode};
use axum::Router;
use bytes::Bytes;
use petrel_server::{MonitorService, ServerHandle, SysFuture, SysReply};
use serde_json::{json, Map, Value};
use tower::ServiceExt;

use crate::AppState;

/// Answers `$SYS` monitoring requests for one server.
pub struct SystemMonitor {
    router: Router,
}

impl SystemMonitor {
    /// A service over `server`'s monitoring view.
    pub fn new(server: &ServerHandle) -> SystemMonitor {
        SystemMonitor {
            router: crate::api_router(AppState::new(server.monitor_view())),
        }
    }
}

/// Install [`SystemMonitor`] in `server` (the binary and the test kit do); `false` if a
/// monitoring service was installed already.
pub fn serve_system(server: &ServerHandle) -> bool {
    server.set_monitor_service(Arc::new(SystemMonitor::new(server)))
}

impl MonitorService for SystemMonitor {
    fn call(&self, endpoint: &str, account: Option<&str>, options: Bytes) -> SysFuture {
        let router = self.router.clone();
        let endpoint = endpoint.to_string();
        let account = account.map(str::to_string);
        Box::pin(async move { answer(router, &endpoint, account.as_deref(), &options).await })
    }
}

async fn answer(router: Router, endpoint: &str, account: Option<&str>, options: &[u8]) -> SysReply {
    let mut query = match options_query(options) {
        Ok(q) => q,
        Err(why) => return SysReply::Error(400, why),
    };
    let path = match (endpoint, account) {
        ("STATSZ", None) => {
            return match get(router, "/varz", &[]).await {
                Ok(varz) => SysReply::Statsz(statsz(&varz)),
                Err((code, why)) => SysReply::Error(code, why),
            }
        }
        ("VARZ", None) => "/varz",
        ("CONNZ", _) => "/connz",
        ("SUBSZ", None) => "/subsz",
        ("JSZ", _) => "/jsz",
        ("HEALTHZ", None) => "/healthz",
        ("ACCOUNTZ", None) => "/accountz",
        ("INFO", Some(_)) => "/accountz",
        ("STATZ", _) => "/accstatz",
        _ => return SysReply::Unknown,
    };
    if let Some(acc) = account {
        query.retain(|(k, _)| k != "acc");
        query.push(("acc".into(), acc.to_string()));
    }
    match get(router, path, &query).await {
        Ok(v) if endpoint == "INFO" => {
            SysReply::Data(v.get("account_detail").cloned().unwrap_or(Value::Null))
        }
        Ok(v) => SysReply::Data(v),
        Err((code, why)) => SysReply::Error(code, why),
    }
}

/// nats-server's JSON options as this crate's query parameters.
fn options_query(options: &[u8]) -> Result<Vec<(String, String)>, String> {
    if options.iter().all(u8::is_ascii_whitespace) {
        return Ok(Vec::new());
    }
    let map: Map<String, Value> = serde_json::from_slice(options).map_err(|e| e.to_string())?;
    let mut q = Vec::new();
    for (k, v) in map {
        let value = match &v {
            Value::Bool(b) => b.to_string(),
            Value::Number(n) => n.to_string(),
            Value::String(s) => s.clone(),
            Value::Array(a) => a
                .iter()
                .filter_map(Value::as_str)
                .collect::<Vec<_>>()
                .join(","),
            _ => continue,
        };
        let key = match k.as_str() {
            // nats-server's ConnState: 0 open, 1 closed, 2 all.
            "state" => {
                let state = match v.as_i64() {
                    Some(0) => "open",
                    Some(1) => "closed",
                    Some(2) => "all",
                    _ => return Err(format!("json: cannot unmarshal {v} into Go struct field ConnzOptions.state of type server.ConnState")),
                };
                q.push(("state".into(), state.into()));
                continue;
            }
            "subscriptions_detail" if v == Value::Bool(true) => {
                q.push(("subs".into(), "detail".into()));
                continue;
            }
            "subscriptions" => "subs",
            "account" => "acc",
            // STATZ's list of accounts (the first one: `/accstatz` takes one).
            "accounts" if v.is_array() => {
                if let Some(first) = value.split(',').next().filter(|f| !f.is_empty()) {
                    q.push(("acc".into(), first.to_string()));
                }
                continue;
            }
            "include_unused" => "unused",
            "js_enabled_only" => "js-enabled-only",
            "js_server_only" => "js-server-only",
            other => other,
        };
        q.push((key.to_string(), value));
    }
    Ok(q)
}

/// `GET path?query` on the router: the JSON body, or the status and error text.
async fn get(
    router: Router,
    path: &str,
    query: &[(String, String)],
) -> Result<Value, (u16, String)> {
    let qs: Vec<String> = query
        .iter()
        .map(|(k, v)| format!("{}={}", encode(k), encode(v)))
        .collect();
    let uri = if qs.is_empty() {
        path.to_string()
    } else {
        format!("{path}?{}", qs.join("&"))
    };
    let req = Request::get(uri)
        .body(Body::empty())
        .map_err(|e| (500, e.to_string()))?;
    let resp = router
        .oneshot(req)
        .await
        .map_err(|e| (500, e.to_string()))?;
    let status = resp.status();
    let body = axum::body::to_bytes(resp.into_body(), 64 << 20)
        .await
        .map_err(|e| (500, e.to_string()))?;
    if status != StatusCode::OK {
        let text = serde_json::from_slice::<Value>(&body)
            .ok()
            .and_then(|v| v.get("error").and_then(Value::as_str).map(str::to_string))
            .unwrap_or_else(|| String::from_utf8_lossy(&body).trim().to_string());
        return Err((status.as_u16(), text));
    }
    serde_json::from_slice(&body).map_err(|e| (500, e.to_string()))
}

/// Percent-encoding of a query component.
fn encode(s: &str) -> String {
    s.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) {
                char::from(b).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

/// nats-server's `statsz` from `/varz`'s numbers.
fn statsz(varz: &Value) -> Value {
    let n = |k: &str| varz.get(k).cloned().unwrap_or(json!(0));
    let sent = json!({ "msgs": n("out_msgs"), "bytes": n("out_bytes") });
    let received = json!({ "msgs": n("in_msgs"), "bytes": n("in_bytes") });
    let mut s = json!({
        "start": n("start"),
        "mem": n("mem"),
        "cores": n("cores"),
        "cpu": n("cpu"),
        "connections": n("connections"),
        "total_connections": n("total_connections"),
        "active_accounts": 1,
        "subscriptions": n("subscriptions"),
        "sent": sent,
        "sent_to_clients": sent,
        "received": received,
        "received_from_clients": received,
        "slow_consumers": n("slow_consumers"),
        "active_servers": 1,
        "gomaxprocs": n("gomaxprocs"),
    });
    if let (Some(js), Value::Object(m)) = (varz.get("jetstream"), &mut s) {
        if js.get("config").is_some() {
            m.insert("jetstream".into(), js.clone());
        }
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn options_become_query_parameters() {
        let q = options_query(br#"{"subscriptions":true,"limit":5,"sort":"cid"}"#).unwrap();
        assert!(q.contains(&("subs".into(), "true".into())));
        assert!(q.contains(&("limit".into(), "5".into())));
        let d = options_query(br#"{"subscriptions_detail":true}"#).unwrap();
        assert_eq!(d, vec![("subs".to_string(), "detail".to_string())]);
        assert!(options_query(b"{bad").is_err());
        assert!(options_query(b"  ").unwrap().is_empty());
        assert_eq!(encode("a b/$"), "a%20b%2F%24");
    }
}
