//! Account JWT pushes and lookups over `$SYS` (operator mode), as nats-server's resolvers
//! answer them: `$SYS.REQ.ACCOUNT.<acc>.CLAIMS.UPDATE` (and the older
//! `$SYS.ACCOUNT.<acc>.CLAIMS.UPDATE`) for every resolver; `$SYS.REQ.CLAIMS.UPDATE`,
//! `…CLAIMS.LOOKUP` and `$SYS.REQ.CLAIMS.LIST` for a directory resolver.
//!
//! Deliberately stricter than nats-server: a JWT that does not verify against the trusted
//! operators, or that is older than the one held, is refused (nats-server's full resolver
//! stores it and only logs the failure), so a push can neither plant an untrusted account
//! nor roll a revocation back.

use std::sync::Arc;

use serde_json::json;

use super::envelope::{self, ServerInfo};
use super::Task;
use crate::operator::{ResolverError, Stored};
use crate::server::Shared;

impl Task {
    /// A pushed account JWT; `None` (no reply) when this server takes no pushes there.
    pub(super) fn claims_update(
        &self,
        shared: &Arc<Shared>,
        subject_account: Option<String>,
        payload: &[u8],
    ) -> Option<Vec<u8>> {
        let trust = shared.trust.as_ref()?;
        if subject_account.is_none() && !trust.is_directory() {
            return None;
        }
        let jwt = std::str::from_utf8(payload).unwrap_or("").trim();
        let named = subject_account.clone().unwrap_or_else(|| "n/a".into());
        if jwt.is_empty() {
            return Some(self.claim_error(
                shared,
                &named,
                "jwt update error - request body is empty",
            ));
        }
        let Some(key) = petrel_jwt::peek_subject(jwt) else {
            return Some(self.claim_error(
                shared,
                "n/a",
                "jwt update resulted in error - invalid JWT format",
            ));
        };
        if subject_account.as_ref().is_some_and(|a| *a != key) {
            return Some(self.claim_error(
                shared,
                &named,
                "jwt update resulted in error - subject does not match jwt content",
            ));
        }
        if !trust.is_directory() && trust.account(&key).is_none() {
            return Some(self.claim_ok(shared, &key, "jwt update skipped"));
        }
        Some(match trust.update(jwt) {
            Ok(stored) => {
                let key = stored.account.claims.sub.clone();
                apply(shared, stored);
                self.claim_ok(shared, &key, "jwt updated")
            }
            Err(ResolverError::Invalid(why)) => self.claim_error(
                shared,
                &key,
                &format!("jwt update resulted in error - account validation failed: {why}"),
            ),
            Err(e) => {
                self.claim_error(shared, &key, &format!("jwt update resulted in error - {e}"))
            }
        })
    }

    /// `…CLAIMS.LOOKUP`: the JWT itself (empty when unknown); a directory resolver only.
    pub(super) fn claims_lookup(&self, shared: &Shared, account: &str) -> Option<Vec<u8>> {
        let trust = shared.trust.as_ref().filter(|t| t.is_directory())?;
        Some(
            trust
                .account(account)
                .map(|a| a.jwt.clone().into_bytes())
                .unwrap_or_default(),
        )
    }

    /// `$SYS.REQ.CLAIMS.LIST`: every account held; a directory resolver only.
    pub(super) fn claims_list(&self, shared: &Shared) -> Option<Vec<u8>> {
        let trust = shared.trust.as_ref().filter(|t| t.is_directory())?;
        let keys: Vec<String> = trust
            .accounts()
            .iter()
            .map(|a| a.claims.sub.clone())
            .collect();
        let server = ServerInfo::of(shared, self.system.next_seq());
        Some(envelope::with(&server, json!({ "data": keys })))
    }

    /// `$SYS.REQ.CLAIMS.DELETE`: a generic JWT that a trusted operator key signed about
    /// itself, listing `accounts`; their JWTs are set aside and their clients closed with
    /// `Account Authentication Expired`. A directory resolver only.
    pub(super) fn claims_delete(&self, shared: &Shared, payload: &[u8]) -> Option<Vec<u8>> {
        let trust = shared.trust.as_ref().filter(|t| t.is_directory())?;
        let jwt = std::str::from_utf8(payload).unwrap_or("").trim();
        let (by, accounts) = match delete_request(trust, shared, jwt) {
            Ok(r) => r,
            Err((by, why)) => {
                let description = format!("delete accounts request by {by} failed - {why}");
                tracing::error!("{description}");
                return Some(self.claims_reply(
                    shared,
                    json!({ "error": { "code": 500, "description": description } }),
                ));
            }
        };
        let mut failed = Vec::new();
        let mut deleted = 0;
        for key in &accounts {
            match trust.remove(key) {
                Ok(true) => deleted += 1,
                Ok(false) => failed.push(format!("account {key} not found")),
                Err(e) => failed.push(format!("account {key}: {e}")),
            }
            if let Some(account) = shared.accounts.get(key) {
                close_clients(shared, &account);
            }
        }
        reinstall_imports(shared);
        tracing::info!(by, deleted, "account JWTs deleted");
        let reply = if failed.is_empty() {
            json!({ "data": { "code": 200, "message": format!("deleted {deleted} accounts") } })
        } else {
            let description = format!(
                "deleted {deleted} accounts, failed for {} - {}",
                failed.len(),
                failed.join("\n")
            );
            json!({ "error": { "code": 500, "description": description } })
        };
        Some(self.claims_reply(shared, reply))
    }

    fn claims_reply(&self, shared: &Shared, body: serde_json::Value) -> Vec<u8> {
        let server = ServerInfo::of(shared, self.system.next_seq());
        envelope::with(&server, body)
    }

    fn claim_ok(&self, shared: &Shared, account: &str, message: &str) -> Vec<u8> {
        let server = ServerInfo::of(shared, self.system.next_seq());
        envelope::with(
            &server,
            json!({ "data": { "account": account, "code": 200, "message": message } }),
        )
    }

    fn claim_error(&self, shared: &Shared, account: &str, description: &str) -> Vec<u8> {
        tracing::error!("{description} ({account})");
        let server = ServerInfo::of(shared, self.system.next_seq());
        envelope::with(
            &server,
            json!({ "error": { "account": account, "code": 500, "description": description } }),
        )
    }
}

/// Every account's exports and imports as the account JWTs now say: the import
/// subscriptions are removed and installed again (pending responses are kept: they live
/// with the response imports, which stay).
fn reinstall_imports(shared: &Shared) {
    let Some(trust) = &shared.trust else {
        return;
    };
    let mut configs = trust.account_configs();
    for (account, why) in petrel_config::retain_valid_imports(&mut configs) {
        tracing::warn!(%account, "import ignored: {why}");
    }
    for account in shared.accounts.iter() {
        account.remove_imports(crate::account::ImportSubs::Configured);
    }
    crate::imports::install(&shared.accounts, &configs);
}

/// The checks of nats-server's `handleDeleteRequest`: who asks (the JWT's subject) and
/// the accounts to delete, or who asked and why not.
fn delete_request(
    trust: &crate::operator::Trust,
    shared: &Shared,
    jwt: &str,
) -> Result<(String, Vec<String>), (String, String)> {
    let claims = petrel_jwt::decode::<petrel_jwt::Generic>(jwt)
        .map_err(|e| (String::new(), e.to_string()))?;
    let by = claims.sub.clone();
    let fail = |why: &str| Err((by.clone(), why.to_string()));
    if !trust.allows_delete() {
        return fail("delete must be enabled in server config");
    }
    if claims.sub != claims.iss {
        return fail("not self signed");
    }
    if !trust.is_operator_key(&claims.iss) {
        return fail("not trusted");
    }
    let Some(list) = claims.nats.data.get("accounts").and_then(|v| v.as_array()) else {
        return fail("malformed request");
    };
    let mut accounts = Vec::new();
    for entry in list {
        let Some(key) = entry
            .as_str()
            .filter(|k| k.starts_with('A') && nkeys::KeyPair::from_public_key(k).is_ok())
        else {
            return fail("malformed request");
        };
        if key == shared.accounts.system().name {
            return fail("not allowed to delete system account");
        }
        accounts.push(key.to_string());
    }
    Ok((by, accounts))
}

/// Closes every client connection of `account` (its JWT was deleted).
fn close_clients(shared: &Shared, account: &Arc<crate::account::Account>) {
    for c in shared.clients_of(account) {
        c.err_and_close(
            "Account Authentication Expired",
            crate::client::CloseReason::AuthenticationExpired,
        );
    }
}

/// Closes `account`'s newest client connections beyond `limit` (its JWT's `conn`).
fn enforce_conn_limit(shared: &Shared, account: &Arc<crate::account::Account>, limit: usize) {
    let mut mine = shared.clients_of(account);
    mine.sort_by_key(|c| c.cid);
    for c in mine.iter().skip(limit) {
        c.err_and_close(
            "maximum account active connections exceeded",
            crate::client::CloseReason::MaxAccountConnectionsExceeded,
        );
    }
}

/// Put a stored account JWT in force: a new account is created (its JetStream started);
/// a running account's JetStream limits change; every account's imports are installed
/// again as the JWTs now say; every connection re-checks its login, so revoked users,
/// users of removed signing keys and new permissions take effect at once; JetStream turned
/// on starts. (JetStream turned off for a running account stops at the next start.)
fn apply(shared: &Arc<Shared>, stored: Stored) {
    let config = stored.config;
    let js = config
        .jetstream
        .filter(|_| shared.opts().jetstream.is_some());
    let (account, created) = shared.accounts.add(&config.name, js);
    if let (false, Some(rt), Some(limits)) = (created, account.js.get(), &js) {
        rt.js.set_account_limits(crate::js::account_limits(limits));
    }
    reinstall_imports(shared);
    if let Ok(limit) = usize::try_from(stored.account.claims.nats.limits.conn) {
        enforce_conn_limit(shared, &account, limit);
    }
    if created {
        tracing::info!(account = %config.name, "account added from a pushed JWT");
        super::install_account_imports(&shared.accounts, &account);
    }
    // A new account, or one whose JWT now turns JetStream on: its JetStream starts.
    let turned_on = js.is_some()
        && account.js.get().is_none()
        && !Arc::ptr_eq(&account, shared.accounts.system());
    let first = || {
        !account
            .js_starting
            .swap(true, std::sync::atomic::Ordering::AcqRel)
    };
    if shared.js_group.get().is_some() && (created || turned_on) && first() {
        let shared = shared.clone();
        tokio::spawn(async move {
            if let Err(e) = crate::js::start_account(&shared, &account, js).await {
                tracing::error!(account = %account.name, "cannot start JetStream: {e}");
            }
            // Without JetStream yet (off in this JWT, or it failed): a later push may
            // start it.
            if account.js.get().is_none() {
                account
                    .js_starting
                    .store(false, std::sync::atomic::Ordering::Release);
            }
        });
    }
    shared.recheck_logins();
}
