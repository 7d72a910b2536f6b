//! System events, with nats-server's payloads: `$SYS.ACCOUNT.<acc>.CONNECT` when a
//! client's CONNECT is accepted, `$SYS.ACCOUNT.<acc>.DISCONNECT` when any client
//! connection closes (`$G` for one that never logged in), `$SYS.SERVER.<id>.CLIENT.AUTH.ERR`
//! when credentials are refused, and the `$SYS.SERVER.<id>.STATSZ` heartbeat.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use serde::Serialize;
use serde_json::json;

use super::envelope::ServerInfo;
use super::{SysReply, Task};
use crate::client::{Client, CloseReason};
use crate::server::Shared;

/// How often STATSZ is published (nats-server: every 10 s).
pub(super) const STATSZ_INTERVAL: Duration = Duration::from_secs(10);
/// The first STATSZ goes out this soon after start; the gap then doubles up to
/// [`STATSZ_INTERVAL`] (nats-server's ramp: 0.25 s, then 1, 2, 4, 8, 10 s).
const STATSZ_FIRST: Duration = Duration::from_millis(250);

/// The wait before the STATSZ after one sent `previous` after the last (`None`: the
/// first).
pub(super) fn next_statsz(previous: Option<Duration>) -> Duration {
    match previous {
        None => STATSZ_FIRST,
        Some(d) if d < Duration::from_secs(1) => Duration::from_secs(1),
        Some(d) => (d * 2).min(STATSZ_INTERVAL),
    }
}

/// nats-server's `ClientInfo` of events.
#[derive(Debug, Serialize)]
pub(super) struct ClientInfo {
    start: String,
    host: String,
    id: u64,
    acc: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    user: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    name: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    lang: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    ver: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    rtt: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    stop: Option<String>,
    kind: &'static str,
    client_type: &'static str,
}

/// A message count and its bytes.
#[derive(Debug, Serialize)]
pub(super) struct Counts {
    msgs: u64,
    bytes: u64,
}

/// An event for the system task.
pub(super) enum Event {
    Connect(ClientInfo),
    Disconnect {
        client: ClientInfo,
        sent: Counts,
        received: Counts,
        reason: &'static str,
        /// Refused credentials: an AUTH.ERR event goes first.
        auth_error: bool,
    },
}

fn info(shared: &Shared, client: &Arc<Client>, stopped: bool) -> ClientInfo {
    let snap = crate::monitoring::snapshot(client, false);
    let now = petrel_jetstream::now_nanos();
    ClientInfo {
        start: petrel_jetstream::rfc3339_nano(snap.start),
        host: snap.addr.ip().to_string(),
        id: snap.cid,
        acc: shared.accounts.of(client).name.clone(),
        user: snap.authorized_user.unwrap_or_default(),
        name: snap.name,
        lang: snap.lang,
        ver: snap.version,
        rtt: stopped
            .then(|| {
                snap.rtt
                    .map(|d| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX))
            })
            .flatten(),
        stop: stopped.then(|| petrel_jetstream::rfc3339_nano(now)),
        kind: "Client",
        client_type: "nats",
    }
}

/// `client` completed CONNECT.
pub(crate) fn client_connected(shared: &Shared, client: &Arc<Client>) {
    if let Some(sys) = shared.sys.get() {
        sys.event(Event::Connect(info(shared, client, false)));
    }
}

/// `client` closed.
pub(crate) fn client_disconnected(shared: &Shared, client: &Arc<Client>, reason: CloseReason) {
    let Some(sys) = shared.sys.get() else {
        return;
    };
    let snap = crate::monitoring::snapshot(client, false);
    sys.event(Event::Disconnect {
        client: info(shared, client, true),
        sent: Counts {
            msgs: snap.out_msgs,
            bytes: snap.out_bytes,
        },
        received: Counts {
            msgs: snap.in_msgs,
            bytes: snap.in_bytes,
        },
        reason: reason.as_str(),
        auth_error: reason == CloseReason::AuthFailure,
    });
}

impl Task {
    /// Publish an event on its account's subject.
    pub(super) fn publish_event(&self, shared: &Shared, e: Event) {
        let server = ServerInfo::of(shared, self.system.next_seq());
        let timestamp = petrel_jetstream::rfc3339_nano(petrel_jetstream::now_nanos());
        let id = petrel_jetstream::advisory_id();
        let (subject, body) = match e {
            Event::Connect(client) => (
                format!("$SYS.ACCOUNT.{}.CONNECT", client.acc),
                json!({
                    "type": "io.nats.server.advisory.v1.client_connect",
                    "id": id, "timestamp": timestamp, "server": server, "client": client,
                }),
            ),
            Event::Disconnect {
                client,
                sent,
                received,
                reason,
                auth_error,
            } => {
                let body = json!({
                    "type": "io.nats.server.advisory.v1.client_disconnect",
                    "id": id, "timestamp": timestamp, "server": server, "client": client,
                    "sent": sent, "received": received, "reason": reason,
                });
                if auth_error {
                    let subject = format!("$SYS.SERVER.{}.CLIENT.AUTH.ERR", shared.server_id);
                    if let Ok(b) = serde_json::to_vec(&body) {
                        self.send(&subject, b);
                    }
                }
                (format!("$SYS.ACCOUNT.{}.DISCONNECT", client.acc), body)
            }
        };
        if let Ok(body) = serde_json::to_vec(&body) {
            self.send(&subject, body);
        }
    }

    /// The STATSZ heartbeat (when monitoring is installed).
    pub(super) async fn statsz(&self) {
        let Some(shared) = self.shared.upgrade() else {
            return;
        };
        let Some(monitor) = self.system.monitor() else {
            return;
        };
        let reply = monitor.call("STATSZ", None, Bytes::new()).await;
        if matches!(reply, SysReply::Statsz(_)) {
            if let Some(body) = self.wrapped(&shared, reply) {
                let subject = format!("$SYS.SERVER.{}.STATSZ", shared.server_id);
                self.send(&subject, body);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statsz_ramps_up_like_nats_server() {
        let mut gaps = vec![next_statsz(None)];
        for _ in 0..6 {
            gaps.push(next_statsz(gaps.last().copied()));
        }
        let secs: Vec<f64> = gaps.iter().map(Duration::as_secs_f64).collect();
        assert_eq!(secs, vec![0.25, 1.0, 2.0, 4.0, 8.0, 10.0, 10.0]);
    }
}
