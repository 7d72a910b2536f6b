//! Message-level API: `STREAM.PURGE`, `STREAM.MSG.GET`, `STREAM.MSG.DELETE` and
//! `DIRECT.GET` (both forms; the reply is the raw stored message with `Nats-Stream`,
//! `Nats-Subject`, `Nats-Sequence` and `Nats-Time-Stamp` headers in front of its own).

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use bytes::{BufMut, Bytes, BytesMut};
use petrel_store::{PurgeRequest, StoredMsg, MAX_SEQ};
use serde::{Deserialize, Serialize};

use super::{is_empty_request, parse_body, respond, ApiResponse};
use crate::errors::{self, ApiError};
use crate::jetstream::JetStream;
use crate::json::null_default;
use crate::stream::{MsgGetRequest, Stream};
use crate::time::rfc3339_nano;

#[derive(Debug, Default, Deserialize)]
struct PurgeBody {
    #[serde(default, deserialize_with = "null_default")]
    filter: String,
    #[serde(default, deserialize_with = "null_default")]
    seq: u64,
    #[serde(default, deserialize_with = "null_default")]
    keep: u64,
}

#[derive(Debug, Default, Deserialize)]
struct DeleteBody {
    #[serde(default, deserialize_with = "null_default")]
    seq: u64,
    #[serde(default, deserialize_with = "null_default")]
    no_erase: bool,
}

#[derive(Serialize)]
struct Purged {
    success: bool,
    purged: u64,
}

#[derive(Serialize)]
struct Success {
    success: bool,
}

#[derive(Serialize)]
struct MsgJson {
    subject: String,
    seq: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    hdrs: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    data: Option<String>,
    time: String,
}

#[derive(Serialize)]
struct MsgGetBody {
    message: MsgJson,
}

/// `STREAM.PURGE.<name>`: everything, or by `filter`, below `seq`, keeping `keep`.
pub(super) fn purge(js: &JetStream, name: &str, payload: &[u8]) -> ApiResponse {
    let result = (|| {
        let body: PurgeBody = parse_body(js, payload)?;
        let stream = js.stream(name).ok_or_else(ApiError::stream_not_found)?;
        // Both at once is nats-server's bad request; a sequence past the last one a
        // stream can ever assign would leave it nothing to store.
        if (body.seq > 0 && body.keep > 0) || body.seq > MAX_SEQ {
            return Err(ApiError::bad_request());
        }
        let req = PurgeRequest {
            subject: Some(body.filter).filter(|f| !f.is_empty()),
            seq: Some(body.seq).filter(|s| *s > 0),
            keep: Some(body.keep).filter(|k| *k > 0),
        };
        let purged = stream.purge(req)?;
        Ok(Purged {
            success: true,
            purged,
        })
    })();
    respond("stream_purge", None, result)
}

/// `STREAM.MSG.GET.<name>`: `seq`, `last_by_subj` or `next_by_subj` (+ `seq`).
pub(super) fn get(js: &JetStream, name: &str, payload: &[u8]) -> ApiResponse {
    let result = (|| {
        let stream = js.stream(name).ok_or_else(ApiError::stream_not_found)?;
        if is_empty_request(payload) {
            return Err(ApiError::bad_request());
        }
        let mut req: MsgGetRequest = parse_body(js, payload)?;
        stream.resolve_start_time(&mut req)?;
        let m = stream
            .lookup(&req)?
            .ok_or_else(ApiError::no_message_found)?;
        Ok(MsgGetBody {
            message: MsgJson {
                subject: m.subject,
                seq: m.seq,
                hdrs: m
                    .headers
                    .filter(|h| !h.is_empty())
                    .map(|h| STANDARD.encode(h)),
                data: Some(m.payload)
                    .filter(|p| !p.is_empty())
                    .map(|p| STANDARD.encode(p)),
                time: rfc3339_nano(m.ts),
            },
        })
    })();
    respond("stream_msg_get", None, result)
}

/// `STREAM.MSG.DELETE.<name>`: `{"seq":n,"no_erase":bool}`.
pub(super) fn delete(js: &JetStream, name: &str, payload: &[u8]) -> ApiResponse {
    let result = (|| {
        let stream = js.stream(name).ok_or_else(ApiError::stream_not_found)?;
        if is_empty_request(payload) {
            return Err(ApiError::bad_request());
        }
        let body: DeleteBody = parse_body(js, payload)?;
        stream.delete_msg(body.seq, !body.no_erase)?;
        Ok(Success { success: true })
    })();
    respond("stream_msg_delete", None, result)
}

/// A status-only reply (`NATS/1.0 <code> <text>`, empty payload).
pub(super) fn status(code: u16, text: &str) -> ApiResponse {
    ApiResponse {
        headers: Some(petrel_wire::headers::build(Some((code, text)), &[])),
        error: code >= 400,
        ..ApiResponse::default()
    }
}

/// The raw stored message with the direct-get headers (and `extra` ones, a batch's) in
/// front of its own.
pub(super) fn raw_message(stream: &str, m: StoredMsg, extra: &[(&str, String)]) -> ApiResponse {
    let mut h = BytesMut::with_capacity(160 + m.headers.as_ref().map_or(0, Bytes::len));
    h.put_slice(b"NATS/1.0\r\n");
    let mut put = |k: &str, v: &str| {
        h.put_slice(k.as_bytes());
        h.put_slice(b": ");
        h.put_slice(v.as_bytes());
        h.put_slice(b"\r\n");
    };
    put("Nats-Stream", stream);
    put("Nats-Subject", &m.subject);
    put("Nats-Sequence", &m.seq.to_string());
    put("Nats-Time-Stamp", &rfc3339_nano(m.ts));
    for (k, v) in extra {
        put(k, v);
    }
    // The stored block is `NATS/1.0...\r\n<lines>\r\n`: keep its lines and final blank line.
    let stored_rest = m.headers.as_deref().and_then(|s| {
        s.windows(2)
            .position(|w| w == b"\r\n")
            .map(|i| &s[i + 2..])
            .filter(|rest| rest.ends_with(b"\r\n"))
    });
    match stored_rest {
        Some(rest) if !rest.is_empty() => h.put_slice(rest),
        _ => h.put_slice(b"\r\n"),
    }
    ApiResponse {
        headers: Some(h.freeze()),
        payload: m.payload,
        ..ApiResponse::default()
    }
}

/// `DIRECT.GET.<name>` (JSON body) or `DIRECT.GET.<name>.<subject>` (last for subject),
/// answered from `stream` (the named stream, or a mirror of it with `mirror_direct`, which
/// names itself in `Nats-Stream`).
pub(super) fn direct_get(
    stream: &Stream,
    headers: Option<&[u8]>,
    payload: &[u8],
    last_for: Option<String>,
) -> Option<ApiResponse> {
    if super::level::refused(headers) {
        return Some(status(412, "Required Api Level"));
    }
    let name = stream.name.as_str();
    let mut req = match last_for {
        Some(subject) => MsgGetRequest {
            last_by_subj: subject,
            ..MsgGetRequest::default()
        },
        None if is_empty_request(payload) => return Some(status(408, "Empty Request")),
        None => match serde_json::from_slice(payload) {
            Ok(r) => r,
            Err(_) => return Some(status(408, "Malformed Request")),
        },
    };
    if req.seq == 0
        && req.last_by_subj.is_empty()
        && req.next_by_subj.is_empty()
        && req.multi_last.is_empty()
        && req.start_time.is_none()
    {
        return Some(status(408, "Empty Request"));
    }
    match stream.resolve_start_time(&mut req) {
        Ok(()) => {}
        Err(e) if e.err_code == 10025 => return Some(status(408, "Malformed Request")),
        Err(_) => return Some(status(408, "Bad Request")),
    }
    if !req.multi_last.is_empty() || req.batch > 0 {
        return Some(super::direct::batch(stream, &req));
    }
    Some(match stream.lookup(&req) {
        Ok(Some(m)) if req.no_hdr => ApiResponse {
            payload: m.payload,
            ..ApiResponse::default()
        },
        Ok(Some(m)) => raw_message(name, m, &[]),
        Ok(None) => status(404, "Message Not Found"),
        Err(e) if e.err_code == errors::BAD_REQUEST.err_code => status(408, "Bad Request"),
        Err(e) => {
            tracing::warn!(stream = name, error = %e, "direct get failed");
            status(404, "Message Not Found")
        }
    })
}
