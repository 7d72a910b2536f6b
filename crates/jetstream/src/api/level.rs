//! The JetStream API level (nats-server 2.11+): the level this server implements in full,
//! shown in `$JS.API.INFO` (`api.level`) and the client INFO (`api_lvl`), and the
//! `Nats-Required-Api-Level` header a client puts on a request that must not be served by an
//! older server (412, 10185).
//!
//! Level 1 is nats-server 2.11's: per-message TTLs and subject delete markers, consumer
//! pause, priority groups, batched and multi-last direct gets. Level 2 is 2.12's: counters,
//! atomic batch publish, message schedules, `persist_mode: async`. Level 3 and up (2.14's
//! fast batch publish and flow-controlled acks, …) are not claimed.

use super::{respond, ApiResponse};
use crate::errors::ApiError;

/// The API level Petrel implements.
pub const API_LEVEL: u32 = 2;

/// Header: the lowest API level that may serve this request.
pub(crate) const REQUIRED_API_LEVEL: &str = "Nats-Required-Api-Level";

/// Whether a request with this header block must be refused: it names a level above ours,
/// or one that is not a number (as nats-server's `errorOnRequiredApiLevel`).
pub(crate) fn refused(headers: Option<&[u8]>) -> bool {
    let Some(h) = headers
        .filter(|h| !h.is_empty())
        .and_then(petrel_wire::headers::parse)
    else {
        return false;
    };
    match h.get(REQUIRED_API_LEVEL).filter(|v| !v.is_empty()) {
        None => false,
        Some(v) => v.parse::<i64>().map_or(true, |l| l > i64::from(API_LEVEL)),
    }
}

/// The response type of the request at `$JS.API.<rest>` (for its 10185 refusal), `None`
/// for the requests nats-server does not check (direct gets, pull requests).
fn kind(rest: &[&str]) -> Option<&'static str> {
    Some(match rest {
        ["INFO"] => "account_info",
        ["STREAM", "CREATE", _] => "stream_create",
        ["STREAM", "UPDATE", _] => "stream_update",
        ["STREAM", "INFO", _] => "stream_info",
        ["STREAM", "DELETE", _] => "stream_delete",
        ["STREAM", "NAMES"] => "stream_names",
        ["STREAM", "LIST"] => "stream_list",
        ["STREAM", "PURGE", _] => "stream_purge",
        ["STREAM", "SNAPSHOT", _] => "stream_snapshot",
        ["STREAM", "RESTORE", _] => "stream_restore",
        ["STREAM", "MSG", "GET", _] => "stream_msg_get",
        ["STREAM", "MSG", "DELETE", _] => "stream_msg_delete",
        ["STREAM", "LEADER", "STEPDOWN", _] => "stream_leader_stepdown",
        ["STREAM", "PEER", "REMOVE", _] => "stream_remove_peer",
        ["CONSUMER", "LEADER", "STEPDOWN", _, _] => "consumer_leader_stepdown",
        ["CONSUMER", "CREATE", ..] | ["CONSUMER", "DURABLE", "CREATE", _, _] => "consumer_create",
        ["CONSUMER", "INFO", _, _] => "consumer_info",
        ["CONSUMER", "PAUSE", _, _] => "consumer_pause",
        ["CONSUMER", "UNPIN", _, _] => "consumer_unpin",
        ["CONSUMER", "DELETE", _, _] => "consumer_delete",
        ["CONSUMER", "NAMES", _] => "consumer_names",
        ["CONSUMER", "LIST", _] => "consumer_list",
        ["META", "LEADER", "STEPDOWN"] => "meta_leader_stepdown",
        ["SERVER", "REMOVE"] => "meta_server_remove",
        ["ACCOUNT", "PURGE", _] => "account_purge",
        _ => return None,
    })
}

/// The 10185 refusal of a request at `$JS.API.<rest>` that requires a higher level, if
/// it does and is of a kind nats-server checks.
pub(crate) fn refusal(rest: &[&str], headers: Option<&[u8]>) -> Option<ApiResponse> {
    let kind = kind(rest)?;
    if !refused(headers) {
        return None;
    }
    let paged = matches!(
        kind,
        "stream_info" | "stream_names" | "stream_list" | "consumer_names" | "consumer_list"
    )
    .then(super::Paged::default);
    Some(respond::<()>(
        kind,
        paged,
        Err(ApiError::required_api_level()),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn levels_above_ours_and_non_numbers_are_refused() {
        let h = |v: &str| format!("NATS/1.0\r\nNats-Required-Api-Level: {v}\r\n\r\n");
        assert!(!refused(None));
        assert!(!refused(Some(b"NATS/1.0\r\nX: 1\r\n\r\n")));
        assert!(!refused(Some(h("0").as_bytes())));
        assert!(!refused(Some(h("1").as_bytes())));
        assert!(!refused(Some(h("2").as_bytes())));
        assert!(refused(Some(h("3").as_bytes())));
        assert!(refused(Some(h("x").as_bytes())));
    }

    #[test]
    fn the_refusal_has_the_requests_type() {
        let h = b"NATS/1.0\r\nNats-Required-Api-Level: 9\r\n\r\n";
        let r = refusal(&["STREAM", "INFO", "S"], Some(h)).unwrap();
        let v: serde_json::Value = serde_json::from_slice(&r.payload).unwrap();
        assert_eq!(v["type"], "io.nats.jetstream.api.v1.stream_info_response");
        assert_eq!(v["error"]["err_code"], 10185);
        assert_eq!(v["error"]["code"], 412);
        assert_eq!(v["total"], 0);
        assert!(refusal(&["DIRECT", "GET", "S"], Some(h)).is_none());
    }
}
