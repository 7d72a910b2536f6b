//! `$JS.API` dispatch: subject tokens to handlers, the response envelope
//! (`type` + `error` or payload fields, paging fields where nats-server has them) and
//! `$JS.API.INFO`. Unknown subjects and wrong token counts get no reply at all, as in
//! nats-server 2.9.10.
//!
//! Handlers run on a blocking thread (they take stream locks and may touch the disk) and
//! return an [`ApiResponse`]; the API task publishes it.

mod consumers;
mod direct;
pub(crate) mod level;
mod msgs;
mod pause;
pub(crate) mod streams;

use bytes::Bytes;
use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::errors::ApiError;
use crate::jetstream::JetStream;
use crate::json::encode;

/// A request taken off the `$JS.API.>` subscription.
pub(crate) struct ApiRequest {
    pub subject: String,
    pub reply: Option<String>,
    pub payload: Bytes,
    /// Its header block, if any (`Nats-Required-Api-Level`).
    pub headers: Option<Bytes>,
    /// For a `DIRECT.GET`, the stream picked to answer it when it was received (the
    /// stream itself or a mirror with `mirror_direct`); looked up again when `None`.
    pub answer: Option<std::sync::Arc<crate::stream::Stream>>,
}

impl ApiRequest {
    /// Memory the request holds while queued.
    pub fn size(&self) -> usize {
        self.subject.len()
            + self.reply.as_ref().map_or(0, String::len)
            + self.headers.as_ref().map_or(0, Bytes::len)
            + self.payload.len()
    }
}

/// What to send back.
#[derive(Debug, Default)]
pub(crate) struct ApiResponse {
    /// Header block (direct get replies only).
    pub headers: Option<Bytes>,
    pub payload: Bytes,
    /// Counted in the API error statistics.
    pub error: bool,
    /// Further replies after this one, in order: (headers, payload) (a batched direct get).
    pub more: Vec<(Option<Bytes>, Bytes)>,
    /// Advisories to publish after the reply: (subject, body).
    pub advisories: Vec<(String, Bytes)>,
    /// Work to start once the reply is out (a snapshot's chunks, a restore's receiver).
    pub then: Option<Then>,
}

/// A closure run by the API task after it published the reply.
pub(crate) struct Then(pub Box<dyn FnOnce() + Send>);

impl std::fmt::Debug for Then {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Then")
    }
}

/// Paging fields of list-like responses.
#[derive(Debug, Clone, Copy, Default, Serialize)]
pub(crate) struct Paged {
    pub total: usize,
    pub offset: usize,
    pub limit: usize,
}

/// The response envelope: `type`, then `error` or the paging fields and the body.
#[derive(Serialize)]
pub(crate) struct Envelope<'a, T: Serialize> {
    #[serde(rename = "type")]
    kind: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    error: Option<&'a ApiError>,
    #[serde(flatten, skip_serializing_if = "Option::is_none")]
    paged: Option<Paged>,
    #[serde(flatten, skip_serializing_if = "Option::is_none")]
    body: Option<T>,
}

impl<'a, T: Serialize> Envelope<'a, T> {
    /// `error` and the body both (the few responses nats-server fills beside an error).
    pub(crate) fn new(kind: &str, error: Option<&'a ApiError>, body: T) -> Self {
        Envelope {
            kind: type_name(kind),
            error,
            paged: None,
            body: Some(body),
        }
    }

    /// The response carrying this envelope.
    pub(crate) fn response(&self) -> ApiResponse {
        ApiResponse {
            payload: encode(self),
            error: self.error.is_some(),
            ..ApiResponse::default()
        }
    }
}

/// The full response type string for `kind` (e.g. `stream_create`).
fn type_name(kind: &str) -> String {
    format!("io.nats.jetstream.api.v1.{kind}_response")
}

/// Builds the response for `result`.
pub(crate) fn respond<T: Serialize>(
    kind: &str,
    paged: Option<Paged>,
    result: Result<T, ApiError>,
) -> ApiResponse {
    let (error, body) = match &result {
        Ok(b) => (None, Some(b)),
        Err(e) => (Some(e), None),
    };
    Envelope {
        kind: type_name(kind),
        error,
        paged,
        body,
    }
    .response()
}

/// Parses a request body; an empty (or blank) body gives the default request.
pub(crate) fn parse_body<T: DeserializeOwned + Default>(
    js: &JetStream,
    payload: &[u8],
) -> Result<T, ApiError> {
    if is_empty_request(payload) {
        return Ok(T::default());
    }
    decode(js, payload)
}

/// Decodes a request body. In strict mode (`jetstream { strict: true }`, nats-server
/// 2.12+'s default) a field the request does not have is refused, as 2.15.1 words it
/// (`invalid JSON: json: unknown field "x"`), instead of being ignored.
pub(crate) fn decode<T: DeserializeOwned>(js: &JetStream, payload: &[u8]) -> Result<T, ApiError> {
    let mut unknown: Option<String> = None;
    let mut de = serde_json::Deserializer::from_slice(payload);
    let value: T = serde_ignored::deserialize(&mut de, |path| {
        if unknown.is_none() {
            unknown = Some(field_name(&path));
        }
    })
    .map_err(|_| ApiError::invalid_json())?;
    de.end().map_err(|_| ApiError::invalid_json())?;
    match unknown {
        Some(field) if js.config.strict => Err(ApiError::invalid_json_because(&format!(
            "json: unknown field {field:?}"
        ))),
        _ => Ok(value),
    }
}

/// The last field name of an ignored path (nats-server names only the field).
fn field_name(path: &serde_ignored::Path<'_>) -> String {
    match path {
        serde_ignored::Path::Map { key, .. } => key.clone(),
        other => other.to_string(),
    }
}

/// Whether the body is empty as nats-server's `isEmptyRequest` sees it: blank, an object
/// with no fields (`{}`), or JSON `null` (what async-nats sends for requests without a
/// body: Go decodes `null` into the zero value, so nats-server accepts it too).
pub(crate) fn is_empty_request(payload: &[u8]) -> bool {
    let trimmed = payload.trim_ascii();
    trimmed.is_empty()
        || trimmed == b"null"
        || trimmed == b"{}"
        // An object with a field has a `:`; only field-less ones are parsed here.
        || (trimmed.first() == Some(&b'{')
            && !trimmed.contains(&b':')
            && serde_json::from_slice::<serde_json::Map<String, serde_json::Value>>(trimmed)
                .is_ok_and(|m| m.is_empty()))
}

/// Dispatches one request; `None` means "no such API: send nothing".
pub(crate) fn handle(js: &JetStream, req: &ApiRequest) -> Option<ApiResponse> {
    let tokens: Vec<&str> = req.subject.split('.').collect();
    let rest = match tokens.as_slice() {
        ["$JS", "API", rest @ ..] => rest,
        _ => return None,
    };
    if let Some(refusal) = level::refusal(rest, req.headers.as_deref()) {
        // In a cluster the meta leader says it, once.
        let answers = js.cluster.get().is_none_or(|c| c.is_meta_leader());
        return answers.then_some(refusal);
    }
    if let Some(c) = js.cluster.get() {
        if let Some(decided) = crate::cluster::dispatch(js, c, req, rest) {
            return decided;
        }
    }
    let p = &req.payload[..];
    Some(match rest {
        ["INFO"] => account_info(js),
        ["STREAM", "CREATE", name] => streams::create(js, name, p),
        ["STREAM", "UPDATE", name] => streams::update(js, name, p),
        ["STREAM", "INFO", name] => streams::info(js, name, p),
        ["STREAM", "DELETE", name] => streams::delete(js, name),
        ["STREAM", "NAMES"] => streams::names(js, p),
        ["STREAM", "LIST"] => streams::list(js, p),
        ["STREAM", "PURGE", name] => msgs::purge(js, name, p),
        ["STREAM", "SNAPSHOT", name] => crate::backup::snapshot(js, name, p),
        ["STREAM", "RESTORE", name] => crate::backup::restore(js, name, p),
        ["STREAM", "MSG", "GET", name] => msgs::get(js, name, p),
        ["STREAM", "MSG", "DELETE", name] => msgs::delete(js, name, p),
        // Without clustering there is no leader to move (nats-server's 10010).
        ["STREAM", "LEADER", "STEPDOWN", _] => respond::<()>(
            "stream_leader_stepdown",
            None,
            Err(ApiError::cluster_required()),
        ),
        ["STREAM", "PEER", "REMOVE", _] => respond::<()>(
            "stream_remove_peer",
            None,
            Err(ApiError::cluster_required()),
        ),
        ["CONSUMER", "LEADER", "STEPDOWN", _, _] => respond::<()>(
            "consumer_leader_stepdown",
            None,
            Err(ApiError::cluster_required()),
        ),
        ["CONSUMER", "CREATE", stream] => {
            consumers::create(js, stream, consumers::CreateForm::Ephemeral, p)
        }
        ["CONSUMER", "CREATE", stream, name] => {
            consumers::create(js, stream, consumers::CreateForm::Named(name, None), p)
        }
        ["CONSUMER", "CREATE", stream, name, filter @ ..] => {
            let filter = filter.join(".");
            consumers::create(
                js,
                stream,
                consumers::CreateForm::Named(name, Some(&filter)),
                p,
            )
        }
        ["CONSUMER", "DURABLE", "CREATE", stream, durable] => {
            consumers::create(js, stream, consumers::CreateForm::Durable(durable), p)
        }
        ["CONSUMER", "INFO", stream, name] => consumers::info(js, stream, name),
        ["CONSUMER", "PAUSE", stream, name] => pause::pause(js, stream, name, p),
        ["CONSUMER", "UNPIN", stream, name] => pause::unpin(js, stream, name, p),
        ["CONSUMER", "DELETE", stream, name] => consumers::delete(js, stream, name),
        ["CONSUMER", "NAMES", stream] => consumers::names(js, stream, p),
        ["CONSUMER", "LIST", stream] => consumers::list(js, stream, p),
        ["DIRECT", "GET", name] => {
            let answer = direct(js, req, name)?;
            return msgs::direct_get(&answer, req.headers.as_deref(), p, None);
        }
        ["DIRECT", "GET", name, subject @ ..] if !subject.is_empty() => {
            let answer = direct(js, req, name)?;
            return msgs::direct_get(&answer, req.headers.as_deref(), p, Some(subject.join(".")));
        }
        _ => return None,
    })
}

/// The stream answering a `DIRECT.GET.<name>`: the one picked on arrival, else one picked
/// now; `None` when no stream answers.
fn direct(
    js: &JetStream,
    req: &ApiRequest,
    name: &str,
) -> Option<std::sync::Arc<crate::stream::Stream>> {
    req.answer
        .clone()
        .or_else(|| crate::sourcing::direct::responder(js, name))
}

#[derive(Serialize)]
struct AccountLimits {
    max_memory: i64,
    max_storage: i64,
    max_streams: i64,
    max_consumers: i64,
    max_ack_pending: i64,
    memory_max_stream_bytes: i64,
    storage_max_stream_bytes: i64,
    max_bytes_required: bool,
}

#[derive(Serialize)]
struct ApiStats {
    /// The API level implemented (2.11+; async-nats gates KV limit markers on it).
    level: u32,
    total: u64,
    errors: u64,
}

#[derive(Serialize)]
struct AccountInfo<'a> {
    memory: u64,
    storage: u64,
    /// Sent by 2.10 (the level Petrel advertises); async-nats requires it.
    reserved_memory: u64,
    reserved_storage: u64,
    streams: u64,
    consumers: u64,
    limits: AccountLimits,
    #[serde(skip_serializing_if = "Option::is_none")]
    domain: Option<&'a str>,
    api: ApiStats,
}

/// `$JS.API.INFO`: the account's usage and its limits.
fn account_info(js: &JetStream) -> ApiResponse {
    let st = js.stats();
    let lim = &js.usage.limits();
    let report = crate::limits::AccountLimits::report;
    let info = AccountInfo {
        memory: st.memory,
        storage: st.storage,
        reserved_memory: st.reserved_memory,
        reserved_storage: st.reserved_storage,
        streams: st.streams,
        consumers: st.consumers,
        limits: AccountLimits {
            max_memory: report(lim.max_memory),
            max_storage: report(lim.max_storage),
            max_streams: report(lim.max_streams),
            max_consumers: report(lim.max_consumers),
            max_ack_pending: -1,
            memory_max_stream_bytes: -1,
            storage_max_stream_bytes: -1,
            max_bytes_required: lim.max_bytes_required,
        },
        domain: js.config.domain.as_deref(),
        api: ApiStats {
            level: level::API_LEVEL,
            total: st.api_total,
            errors: st.api_errors,
        },
    };
    respond("account_info", None, Ok(info))
}

#[cfg(test)]
mod body_tests {
    /// Regression: async-nats sends `null` as the body of STREAM.INFO (get_stream).
    #[test]
    fn null_and_blank_bodies_are_empty_requests() {
        assert!(super::is_empty_request(b""));
        assert!(super::is_empty_request(b"  \n"));
        assert!(super::is_empty_request(b"null"));
        assert!(super::is_empty_request(b" null "));
        // nats-server's isEmptyRequest: an object without fields is empty too.
        assert!(super::is_empty_request(b"{}"));
        assert!(super::is_empty_request(b" { } "));
        assert!(!super::is_empty_request(br#"{"seq":1}"#));
    }
}
