//! `$JS.API.CONSUMER.PAUSE` and `UNPIN` (nats-server 2.11). PAUSE pauses a consumer until
//! a time (nothing is delivered before it; acks, pull requests and heartbeats go on) or,
//! with no time, resumes it. The pause is part of the consumer's config (`pause_until`),
//! so it survives a restart and moves with a replicated consumer. UNPIN ends a priority
//! group's pin (`pinned_client`).

use serde::{Deserialize, Serialize};

use super::consumers::find;
use super::{parse_body, ApiResponse, Envelope};
use crate::advisory;
use crate::errors::ApiError;
use crate::jetstream::JetStream;
use crate::json::null_default;
use crate::time::{now_nanos, parse_rfc3339, rfc3339_nano};

/// The request: a time to pause until; none (or Go's zero time) resumes.
#[derive(Debug, Default, Deserialize)]
struct PauseRequest {
    #[serde(default, deserialize_with = "null_default")]
    pause_until: Option<String>,
}

/// The answer, also beside an error (as nats-server: not paused, zero time).
#[derive(Debug, Default, Serialize)]
struct PauseResponse {
    paused: bool,
    pause_until: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pause_remaining: Option<i64>,
}

/// `CONSUMER.PAUSE.<stream>.<consumer>`.
pub(super) fn pause(js: &JetStream, stream: &str, name: &str, payload: &[u8]) -> ApiResponse {
    let mut advisories = Vec::new();
    let result = set_pause(js, stream, name, payload, &mut advisories);
    let (error, body) = match result {
        Ok(body) => (None, body),
        Err(e) => (
            Some(e),
            PauseResponse {
                pause_until: rfc3339_nano(0),
                ..PauseResponse::default()
            },
        ),
    };
    let mut resp = Envelope::new("consumer_pause", error.as_ref(), body).response();
    resp.advisories = advisories;
    resp
}

fn set_pause(
    js: &JetStream,
    stream: &str,
    name: &str,
    payload: &[u8],
    advisories: &mut Vec<(String, bytes::Bytes)>,
) -> Result<PauseResponse, ApiError> {
    let req: PauseRequest = parse_body(js, payload)?;
    let until = match req.pause_until.as_deref() {
        Some(t) => Some(parse_rfc3339(t).ok_or_else(ApiError::invalid_json)?),
        None => None,
    }
    .filter(|&t| t != i64::MIN);
    let (s, c) = find(js, stream, name)?;
    let now = now_nanos();
    let ahead = until.filter(|&t| t > now);
    {
        let _inner = s.inner.lock();
        let mut st = c.state.lock();
        st.config.pause_until = until.map(rfc3339_nano);
        st.pause_noted = ahead;
        st.dirty = true;
    }
    js.persist_consumer_meta(&c)
        .map_err(ApiError::consumer_create)?;
    c.wake();
    advisories.push(advisory::pause(
        stream,
        name,
        ahead.is_some(),
        until.unwrap_or(0),
    ));
    Ok(PauseResponse {
        paused: ahead.is_some(),
        pause_until: rfc3339_nano(until.unwrap_or(0)),
        pause_remaining: ahead.map(|t| t - now),
    })
}

/// The request of `CONSUMER.UNPIN`: the group whose pin ends.
#[derive(Debug, Default, Deserialize)]
struct UnpinRequest {
    #[serde(default, deserialize_with = "null_default")]
    group: String,
}

/// The (empty) success body of `CONSUMER.UNPIN`.
#[derive(Debug, Serialize)]
struct Unpinned {}

/// `CONSUMER.UNPIN.<stream>.<consumer>` (2.11): ends a priority group's pin, so a client on
/// standby is pinned next.
pub(super) fn unpin(js: &JetStream, stream: &str, name: &str, payload: &[u8]) -> ApiResponse {
    let mut advisories = Vec::new();
    let result = (|| {
        let req: UnpinRequest = parse_body(js, payload)?;
        if req.group.is_empty() {
            return Err(ApiError::invalid_json_because(
                "consumer group not specified",
            ));
        }
        let (_, c) = find(js, stream, name)?;
        {
            let mut st = c.state.lock();
            if !st.config.priority_groups.contains(&req.group) {
                return Err(ApiError::priority_group_unknown());
            }
            if st.pins.remove(&req.group).is_some() {
                advisories.push(advisory::unpinned(stream, name, &req.group, "admin"));
            }
        }
        c.wake();
        Ok(Unpinned {})
    })();
    let mut resp = super::respond("consumer_unpin", None, result);
    resp.advisories = advisories;
    resp
}
