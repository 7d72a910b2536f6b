//! `$SYS.REQ.…` requests: which subjects mean what, and their answers.

use std::sync::Arc;

use bytes::Bytes;
use petrel_config::ResponseType;
use serde_json::json;

use super::envelope::{self, ServerInfo};
use super::{Job, SysReply, Task};
use crate::account::{Account, Accounts};
use crate::server::Shared;

/// Server-wide monitoring endpoints (`$SYS.REQ.SERVER.PING.<EP>`, `.<id>.<EP>`).
const SERVER_ENDPOINTS: &[&str] = &[
    "STATSZ", "VARZ", "CONNZ", "SUBSZ", "JSZ", "HEALTHZ", "IDZ", "ACCOUNTZ",
];
/// Per-account endpoints (`$SYS.REQ.ACCOUNT.<acc>.<EP>`).
const ACCOUNT_ENDPOINTS: &[&str] = &["CONNZ", "JSZ", "INFO", "STATZ"];

/// A request the system account answers.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum Request {
    /// A server-wide endpoint (`PING` alone is STATSZ).
    Server(String),
    /// `RELOAD` this server.
    Reload,
    /// Close a client (`KICK`).
    Kick,
    /// Tell a client this server is going away (`LDM`: an INFO with `ldm`).
    Ldm,
    /// An endpoint about one account.
    Account(String, String),
    /// `$SYS.REQ.ACCOUNT.PING.<EP>`: every account.
    AccountPing(String),
    /// Who the requester is.
    UserInfo,
    /// A pushed account JWT (the subject's account, when it names one).
    ClaimsUpdate(Option<String>),
    /// An account's JWT.
    ClaimsLookup(String),
    /// Every account JWT held.
    ClaimsList,
    /// Remove account JWTs (a generic JWT the operator signed, listing them).
    ClaimsDelete,
}

impl Request {
    /// What `subject` asks for, if this server answers it.
    pub fn parse(subject: &str, server_id: &str) -> Option<Request> {
        let t: Vec<&str> = subject.split('.').collect();
        let known = |list: &[&str], ep: &str| list.contains(&ep);
        match t.as_slice() {
            ["$SYS", "REQ", "SERVER", "PING"] => Some(Request::Server("STATSZ".into())),
            ["$SYS", "REQ", "SERVER", "PING", ep] if known(SERVER_ENDPOINTS, ep) => {
                Some(Request::Server((*ep).into()))
            }
            ["$SYS", "REQ", "SERVER", id, "RELOAD"] if *id == server_id => Some(Request::Reload),
            ["$SYS", "REQ", "SERVER", id, "KICK"] if *id == server_id => Some(Request::Kick),
            ["$SYS", "REQ", "SERVER", id, "LDM"] if *id == server_id => Some(Request::Ldm),
            ["$SYS", "REQ", "SERVER", id, ep]
                if *id == server_id && known(SERVER_ENDPOINTS, ep) =>
            {
                Some(Request::Server((*ep).into()))
            }
            ["$SYS", "REQ", "ACCOUNT", "PING", ep @ ("STATZ" | "CONNZ")] => {
                Some(Request::AccountPing((*ep).into()))
            }
            ["$SYS", "REQ", "ACCOUNT", acc, ep] if known(ACCOUNT_ENDPOINTS, ep) => {
                Some(Request::Account((*acc).into(), (*ep).into()))
            }
            ["$SYS", "REQ", "ACCOUNT", acc, "CLAIMS", "UPDATE"]
            | ["$SYS", "ACCOUNT", acc, "CLAIMS", "UPDATE"] => {
                Some(Request::ClaimsUpdate(Some((*acc).into())))
            }
            ["$SYS", "REQ", "ACCOUNT", acc, "CLAIMS", "LOOKUP"] => {
                Some(Request::ClaimsLookup((*acc).into()))
            }
            ["$SYS", "REQ", "CLAIMS", "UPDATE"] => Some(Request::ClaimsUpdate(None)),
            ["$SYS", "REQ", "CLAIMS", "LIST"] => Some(Request::ClaimsList),
            ["$SYS", "REQ", "CLAIMS", "DELETE"] => Some(Request::ClaimsDelete),
            ["$SYS", "REQ", "USER", "INFO"] | ["$SYS", "REQ", "USER", _, "INFO"] => {
                Some(Request::UserInfo)
            }
            _ => None,
        }
    }
}

impl Task {
    /// Answer one request (nothing is sent without a reply subject).
    pub(super) async fn request(&self, shared: &Arc<Shared>, job: Job) {
        let Some(req) = Request::parse(&job.subject, &shared.server_id) else {
            return;
        };
        let Some(reply) = job.reply.clone() else {
            return;
        };
        if !filter_matches(shared, &job.payload) {
            return;
        }
        let payload = match req {
            Request::Server(ep) if ep == "IDZ" => serde_json::to_vec(&json!({
                "name": shared.server_name,
                "host": shared.listen.ip().to_string(),
                "id": shared.server_id,
            }))
            .ok(),
            Request::Server(ep) => self.monitored(shared, &ep, None, job.payload).await,
            Request::AccountPing(ep) => self.monitored(shared, &ep, None, job.payload).await,
            Request::Account(acc, ep) => {
                if shared.accounts.get(&acc).is_none() {
                    self.wrapped(
                        shared,
                        SysReply::Error(500, format!("Account {acc} does not exist")),
                    )
                } else {
                    self.monitored(shared, &ep, Some(&acc), job.payload).await
                }
            }
            Request::UserInfo => self.wrapped(shared, user_info(shared, job.sender)),
            Request::Reload => Some(self.reload(shared)),
            Request::Kick | Request::Ldm => self.client_action(shared, &req, &job.payload),
            Request::ClaimsUpdate(acc) => self.claims_update(shared, acc, &job.payload),
            Request::ClaimsLookup(acc) => self.claims_lookup(shared, &acc),
            Request::ClaimsList => self.claims_list(shared),
            Request::ClaimsDelete => self.claims_delete(shared, &job.payload),
        };
        if let Some(p) = payload {
            self.send(&reply, p);
        }
    }

    /// `reply` in the envelope, with this server's info.
    pub(super) fn wrapped(&self, shared: &Shared, reply: SysReply) -> Option<Vec<u8>> {
        envelope::wrap(&ServerInfo::of(shared, self.system.next_seq()), reply)
    }

    /// A monitoring endpoint, from the installed [`super::MonitorService`].
    async fn monitored(
        &self,
        shared: &Shared,
        endpoint: &str,
        account: Option<&str>,
        options: Bytes,
    ) -> Option<Vec<u8>> {
        let monitor = self.system.monitor()?;
        let reply = monitor.call(endpoint, account, options).await;
        self.wrapped(shared, reply)
    }

    /// `KICK` / `LDM` `{"cid":N}`: close the client, or send it a lame-duck INFO. No reply
    /// to a body without a cid (nats-server's too).
    fn client_action(&self, shared: &Shared, req: &Request, body: &[u8]) -> Option<Vec<u8>> {
        #[derive(serde::Deserialize)]
        struct Target {
            cid: u64,
        }
        let Ok(Target { cid }) = serde_json::from_slice::<Target>(body) else {
            tracing::debug!("system request without a client id ignored");
            return None;
        };
        let client = shared.clients.lock().get(&cid).cloned();
        let server = ServerInfo::of(shared, self.system.next_seq());
        let Some(client) = client else {
            let why = if *req == Request::Kick {
                "no such client or leafnode id"
            } else {
                "no such client id"
            };
            return Some(envelope::with(
                &server,
                json!({ "error": { "code": 500, "description": why } }),
            ));
        };
        if *req == Request::Kick {
            tracing::info!(cid, "client kicked by a system account request");
            client.close(crate::client::CloseReason::Kicked);
        } else {
            let mut info = shared.info_for(&client);
            info.ldm = true;
            let mut buf = bytes::BytesMut::new();
            petrel_wire::encode::info(&mut buf, &info);
            client.queue_raw(&buf);
            if client.mark_dirty() {
                client.flush(false);
            }
        }
        Some(envelope::with(&server, json!({})))
    }

    /// `RELOAD`: the embedder's reload hook (the petrel binary re-reads its file).
    fn reload(&self, shared: &Shared) -> Vec<u8> {
        let server = ServerInfo::of(shared, self.system.next_seq());
        let outcome = self.system.reload.get().map(|hook| {
            hook().and_then(|opts| crate::server::reload(shared, opts).map_err(|e| e.to_string()))
        });
        match outcome {
            Some(Ok(())) => envelope::with(&server, json!({})),
            Some(Err(why)) => envelope::with(
                &server,
                json!({ "error": { "code": 500, "description": why } }),
            ),
            None => envelope::with(
                &server,
                json!({ "error": { "code": 500, "description": "config reload not supported by this embedding" } }),
            ),
        }
    }
}

/// Whether the request's filter (`server_name`, `host`, `cluster`, `domain`, `tags` of
/// nats-server's EventFilterOptions, sent by the `nats` CLI) selects this server; a server
/// it does not select stays silent.
fn filter_matches(shared: &Shared, payload: &[u8]) -> bool {
    let Ok(serde_json::Value::Object(o)) = serde_json::from_slice::<serde_json::Value>(payload)
    else {
        return true;
    };
    let given = |k: &str| o.get(k).and_then(|v| v.as_str()).filter(|s| !s.is_empty());
    let domain = shared
        .opts()
        .jetstream
        .as_ref()
        .and_then(|j| j.domain.clone());
    let host = shared.listen.ip().to_string();
    given("server_name").is_none_or(|n| n == shared.server_name)
        && given("host").is_none_or(|h| h == host)
        && given("cluster").is_none()
        && given("domain").is_none_or(|d| Some(d) == domain.as_deref())
        && o.get("tags")
            .and_then(|t| t.as_array())
            .is_none_or(|t| t.is_empty())
}

/// `USER.INFO`: the requesting connection's user and account.
fn user_info(shared: &Shared, sender: u64) -> SysReply {
    let client = shared.clients.lock().get(&sender).cloned();
    let Some(client) = client else {
        return SysReply::Error(500, "requester not found".into());
    };
    let account = shared.accounts.of(&client).name.clone();
    let user = client.meta.user().unwrap_or_default();
    // Operator mode: the account JWT's name; else the account's own.
    let account_name = shared
        .trust
        .as_ref()
        .and_then(|t| t.account(&account))
        .map_or_else(|| account.clone(), |a| a.claims.name.clone());
    let mut data = json!({
        "user": user,
        "account": account,
        "account_name": account_name,
    });
    if let (Some(name), serde_json::Value::Object(m)) = (client.meta.user_name(), &mut data) {
        m.insert("user_name".into(), name.into());
    }
    SysReply::Data(data)
}

/// The service imports every account but the system account gets, so its clients can ask
/// about themselves: local subject → the system account's subject for this account.
pub(crate) fn install_account_imports(accounts: &Accounts, account: &Arc<Account>) {
    let system = accounts.system();
    if Arc::ptr_eq(system, account) {
        return;
    }
    let acc = &account.name;
    let user_info = format!("$SYS.REQ.USER.{acc}.INFO");
    let connz = format!("$SYS.REQ.ACCOUNT.{acc}.CONNZ");
    let statz = format!("$SYS.REQ.ACCOUNT.{acc}.STATZ");
    for (local, remote, share) in [
        ("$SYS.REQ.USER.INFO", user_info.as_str(), true),
        ("$SYS.REQ.SERVER.PING.CONNZ", connz.as_str(), false),
        ("$SYS.REQ.ACCOUNT.PING.CONNZ", connz.as_str(), false),
        ("$SYS.REQ.ACCOUNT.PING.STATZ", statz.as_str(), false),
    ] {
        crate::imports::service(
            account,
            system,
            local,
            remote,
            (ResponseType::Singleton, share),
            crate::account::ImportSubs::System,
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn subjects() {
        let p = |s| Request::parse(s, "NID");
        assert_eq!(
            p("$SYS.REQ.SERVER.PING"),
            Some(Request::Server("STATSZ".into()))
        );
        assert_eq!(
            p("$SYS.REQ.SERVER.PING.VARZ"),
            Some(Request::Server("VARZ".into()))
        );
        assert_eq!(
            p("$SYS.REQ.SERVER.NID.CONNZ"),
            Some(Request::Server("CONNZ".into()))
        );
        assert_eq!(p("$SYS.REQ.SERVER.OTHER.CONNZ"), None);
        assert_eq!(p("$SYS.REQ.SERVER.NID.RELOAD"), Some(Request::Reload));
        assert_eq!(p("$SYS.REQ.SERVER.NID.KICK"), Some(Request::Kick));
        assert_eq!(p("$SYS.REQ.SERVER.PING.KICK"), None);
        assert_eq!(p("$SYS.REQ.SERVER.PING.NOPE"), None);
        assert_eq!(
            p("$SYS.REQ.ACCOUNT.APP.INFO"),
            Some(Request::Account("APP".into(), "INFO".into()))
        );
        assert_eq!(
            p("$SYS.REQ.ACCOUNT.PING.STATZ"),
            Some(Request::AccountPing("STATZ".into()))
        );
        assert_eq!(
            p("$SYS.REQ.ACCOUNT.A1.CLAIMS.UPDATE"),
            Some(Request::ClaimsUpdate(Some("A1".into())))
        );
        assert_eq!(
            p("$SYS.ACCOUNT.A1.CLAIMS.UPDATE"),
            Some(Request::ClaimsUpdate(Some("A1".into())))
        );
        assert_eq!(p("$SYS.REQ.CLAIMS.LIST"), Some(Request::ClaimsList));
        assert_eq!(p("$SYS.REQ.USER.APP.INFO"), Some(Request::UserInfo));
        assert_eq!(p("$SYS.REQ.USER.INFO"), Some(Request::UserInfo));
        assert_eq!(p("$SYS.REQ.ACCOUNT.APP.NOPE"), None);
    }
}
