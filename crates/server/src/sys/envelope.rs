//! The `server` object every system message carries, and the reply envelopes
//! (`{"server":…,"data":…}`, `"statsz"`, `"error"`), with nats-server's field names.

use serde::Serialize;
use serde_json::{json, Value};

use super::SysReply;
use crate::server::Shared;

/// nats-server's `ServerInfo` of system messages.
#[derive(Debug, Serialize)]
pub(super) struct ServerInfo {
    name: String,
    host: String,
    id: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    domain: Option<String>,
    ver: &'static str,
    jetstream: bool,
    /// Bit 0: system account present; bit 1: JetStream; bit 2: binary stream snapshots.
    flags: u64,
    seq: u64,
    time: String,
}

impl ServerInfo {
    pub fn of(shared: &Shared, seq: u64) -> ServerInfo {
        let opts = shared.opts();
        let jetstream = shared.accounts.jetstreams().next().is_some();
        ServerInfo {
            name: shared.server_name.clone(),
            host: shared.listen.ip().to_string(),
            id: shared.server_id.clone(),
            domain: opts.jetstream.as_ref().and_then(|j| j.domain.clone()),
            ver: crate::server::NATS_COMPAT_VERSION,
            jetstream,
            flags: 1 | if jetstream { 2 } else { 0 },
            seq,
            time: petrel_jetstream::rfc3339_nano(petrel_jetstream::now_nanos()),
        }
    }
}

/// The reply payload for `reply`; `None` when nobody answers (no payload at all).
pub(super) fn wrap(server: &ServerInfo, reply: SysReply) -> Option<Vec<u8>> {
    let v = match reply {
        SysReply::Data(data) => json!({ "server": server, "data": data }),
        SysReply::Statsz(s) => json!({ "server": server, "statsz": s }),
        SysReply::Error(code, description) => {
            json!({ "server": server, "error": { "code": code, "description": description } })
        }
        SysReply::Unknown => return None,
    };
    serde_json::to_vec(&v).ok()
}

/// `{"server":…}` alone (RELOAD's success) or with extra members.
pub(super) fn with(server: &ServerInfo, extra: Value) -> Vec<u8> {
    let mut v = json!({ "server": server });
    if let (Value::Object(m), Value::Object(e)) = (&mut v, extra) {
        m.extend(e);
    }
    serde_json::to_vec(&v).unwrap_or_default()
}
