//! Operator (JWT) mode: the trusted operators, the account JWTs they signed (from
//! `resolver_preload` and, with a directory resolver, `<dir>/<account>.jwt`), and logins
//! with user JWTs. Accounts are named by their public keys; an account JWT becomes the
//! same [`AccountConfig`] a configured account is (JetStream limits, exports, imports),
//! so everything after login works as with configured accounts.
//!
//! Checks, as nats-server's: an account JWT is signed by a trusted operator or one of
//! its signing keys (only a signing key under `strict_signing_key_usage`) and has not
//! expired; a user JWT is signed by its account or one of the account's signing keys
//! (`issuer_account` names the account then), has not expired, is not revoked by the
//! account, and the client signed the INFO nonce with the user's key (unless the JWT is a
//! bearer token the account allows). A scoped signing key's template replaces the user's
//! own permissions and limits.

mod claims;
mod resolver;

use std::collections::BTreeMap;
use std::sync::Arc;

use parking_lot::RwLock;
use petrel_config::{AccountConfig, OperatorMode, TrustedOperator};
use petrel_jwt::{Account as AccountClaims, Claims, SigningKey, User as UserClaims};
use petrel_wire::ConnectInfo;

pub(crate) use resolver::{ResolverError, Stored};

use crate::auth::Authed;

/// A verified account JWT.
#[derive(Debug)]
pub(crate) struct AccountJwt {
    pub jwt: String,
    pub claims: Claims<AccountClaims>,
}

/// Why a JWT login was refused (the client only ever hears "Authorization Violation").
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub(crate) enum LoginError {
    #[error("no user JWT in CONNECT")]
    NoJwt,
    #[error("user JWT: {0}")]
    Jwt(#[from] petrel_jwt::JwtError),
    #[error("user JWT expired or not yet valid")]
    UserExpired,
    #[error("account {0} is unknown")]
    UnknownAccount(String),
    #[error("account {0} JWT expired")]
    AccountExpired(String),
    #[error("user JWT issuer {0} is not the account nor one of its signing keys")]
    Issuer(String),
    #[error("user {0} is revoked")]
    Revoked(String),
    #[error("bearer tokens are not allowed by account {0}")]
    BearerDisallowed(String),
    #[error("nonce signature missing or invalid")]
    Signature,
    #[error("client connections (STANDARD) are not among the user's allowed connection types")]
    ConnectionType,
    #[error("the client's address is not in the user's src list")]
    Source,
}

/// The trusted operators and the account JWTs in force.
pub(crate) struct Trust {
    operators: Vec<TrustedOperator>,
    resolver: resolver::Resolver,
    accounts: RwLock<BTreeMap<String, Arc<AccountJwt>>>,
}

/// Unix seconds now.
pub(crate) fn unix_now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
}

impl Trust {
    /// The operators of `mode`, and every account JWT its resolver and preloads hold that
    /// verifies (the others are logged and left out).
    pub fn load(mode: &OperatorMode) -> std::io::Result<Trust> {
        let resolver = resolver::Resolver::new(mode.resolver.clone());
        let trust = Trust {
            operators: mode.operators.clone(),
            resolver,
            accounts: RwLock::new(BTreeMap::new()),
        };
        let mut found: Vec<(String, String)> = trust.resolver.load()?;
        found.extend(mode.preload.iter().cloned());
        for (key, jwt) in found {
            match trust.verify_account(&jwt) {
                Ok(claims) if claims.sub == key => {
                    trust.keep_newer(jwt, claims);
                }
                Ok(claims) => tracing::warn!(
                    account = %key,
                    "account JWT is for {}, not for the key it is stored under; ignored",
                    claims.sub
                ),
                Err(e) => tracing::warn!(account = %key, "account JWT refused: {e}"),
            }
        }
        // Preloads reach the directory too, so pushes and lookups see them.
        for a in trust.accounts.read().values() {
            trust.resolver.store(&a.claims.sub, &a.jwt)?;
        }
        Ok(trust)
    }

    /// Keeps `claims` unless a JWT issued later is already held; whether it was kept.
    fn keep_newer(&self, jwt: String, claims: Claims<AccountClaims>) -> bool {
        let mut accounts = self.accounts.write();
        if accounts
            .get(&claims.sub)
            .is_some_and(|held| held.claims.iat > claims.iat)
        {
            return false;
        }
        accounts.insert(claims.sub.clone(), Arc::new(AccountJwt { jwt, claims }));
        true
    }

    /// The account JWT of `key`, if one is held.
    pub fn account(&self, key: &str) -> Option<Arc<AccountJwt>> {
        self.accounts.read().get(key).cloned()
    }

    /// Every account JWT held.
    pub fn accounts(&self) -> Vec<Arc<AccountJwt>> {
        self.accounts.read().values().cloned().collect()
    }

    /// The accounts the held JWTs describe (private exports opened to the importers
    /// that hold activation tokens).
    pub fn account_configs(&self) -> Vec<AccountConfig> {
        let held = self.accounts.read();
        let all: Vec<&Claims<AccountClaims>> = held.values().map(|a| &a.claims).collect();
        let now = unix_now();
        all.iter()
            .map(|c| {
                let mut config = claims::account_config(c);
                claims::private_exports(&mut config, c, &all, now);
                config
            })
            .collect()
    }

    /// Decode `jwt` as an account JWT and check it was issued by a trusted operator
    /// (or a signing key of one) and has not expired.
    pub fn verify_account(&self, jwt: &str) -> Result<Claims<AccountClaims>, String> {
        let claims = petrel_jwt::decode::<AccountClaims>(jwt).map_err(|e| e.to_string())?;
        let trusted = self.operators.iter().any(|op| {
            let nats = &op.claims.nats;
            let by_signing_key = nats.signing_keys.contains(&claims.iss);
            let by_identity = op.claims.sub == claims.iss && !nats.strict_signing_key_usage;
            by_signing_key || by_identity
        });
        if !trusted {
            return Err(format!("account JWT issuer {} is not trusted", claims.iss));
        }
        if claims.expired(unix_now()) {
            return Err("account JWT has expired".into());
        }
        Ok(claims)
    }

    /// Store a pushed account JWT: verified, newer than the one held, persisted by a
    /// directory resolver. Returns its claims.
    pub fn update(&self, jwt: &str) -> Result<Stored, ResolverError> {
        let claims = self.verify_account(jwt).map_err(ResolverError::Invalid)?;
        if self
            .account(&claims.sub)
            .is_some_and(|held| held.claims.iat > claims.iat)
        {
            return Err(ResolverError::Older);
        }
        self.resolver
            .store(&claims.sub, jwt)
            .map_err(|e| ResolverError::Store(e.to_string()))?;
        let key = claims.sub.clone();
        self.keep_newer(jwt.to_string(), claims);
        let held = self.account(&key).ok_or(ResolverError::Older)?;
        Ok(Stored {
            config: claims::account_config(&held.claims),
            account: held,
        })
    }

    /// Whether `$SYS.REQ.CLAIMS.DELETE` is allowed (`allow_delete` of a directory
    /// resolver).
    pub fn allows_delete(&self) -> bool {
        self.resolver.allows_delete()
    }

    /// Whether `key` is a trusted operator's identity or signing key.
    pub fn is_operator_key(&self, key: &str) -> bool {
        self.operators
            .iter()
            .any(|op| op.claims.sub == key || op.claims.nats.signing_keys.iter().any(|k| k == key))
    }

    /// Forget `key`'s account JWT (its file is set aside): its users can no longer log
    /// in. `false` when it was not held.
    pub fn remove(&self, key: &str) -> std::io::Result<bool> {
        if self.accounts.write().remove(key).is_none() {
            return Ok(false);
        }
        self.resolver.delete(key)?;
        Ok(true)
    }

    /// Whether account JWTs may be pushed and looked up over `$SYS` (a directory
    /// resolver; MEMORY updates accounts it already holds only).
    pub fn is_directory(&self) -> bool {
        self.resolver.is_directory()
    }

    /// Check a CONNECT's user JWT and nonce signature; what the user may do.
    pub fn login(
        &self,
        connect: &ConnectInfo,
        nonce: &str,
        peer: std::net::IpAddr,
    ) -> Result<Authed, LoginError> {
        let now = unix_now();
        let jwt = connect.jwt.as_deref().ok_or(LoginError::NoJwt)?;
        let user = petrel_jwt::decode::<UserClaims>(jwt)?;
        if user.expired(now) {
            return Err(LoginError::UserExpired);
        }
        let account_key = user
            .nats
            .issuer_account
            .clone()
            .unwrap_or_else(|| user.iss.clone());
        let account = self
            .account(&account_key)
            .ok_or_else(|| LoginError::UnknownAccount(account_key.clone()))?;
        if account.claims.expired(now) {
            return Err(LoginError::AccountExpired(account_key));
        }
        let scope = if user.iss == account_key {
            None
        } else {
            match account.claims.nats.signing_key(&user.iss) {
                Some(SigningKey::Scoped(s)) => Some(s.template.clone()),
                Some(SigningKey::Key(_)) => None,
                None => return Err(LoginError::Issuer(user.iss.clone())),
            }
        };
        if account.claims.nats.is_revoked(&user.sub, user.iat) {
            return Err(LoginError::Revoked(user.sub.clone()));
        }
        let limits = scope.unwrap_or_else(|| user.nats.limits.clone());
        let types = &limits.allowed_connection_types;
        if !types.is_empty() && !types.iter().any(|t| t.eq_ignore_ascii_case("STANDARD")) {
            return Err(LoginError::ConnectionType);
        }
        if !limits.src.is_empty() && !limits.src.iter().any(|c| claims::in_cidr(peer, c)) {
            return Err(LoginError::Source);
        }
        if limits.bearer_token {
            if account.claims.nats.limits.disallow_bearer {
                return Err(LoginError::BearerDisallowed(account_key));
            }
        } else if !crate::auth::signed_nonce(&user.sub, connect.sig.as_deref(), nonce) {
            return Err(LoginError::Signature);
        }
        let permissions = claims::permissions(&limits.permissions)
            .or_else(|| claims::permissions(&account.claims.nats.default_permissions));
        let expires = [user.exp, account.claims.exp]
            .into_iter()
            .flatten()
            .filter(|&e| e > 0)
            .min();
        Ok(Authed {
            user: Some(user.sub.clone()),
            permissions,
            account: Some(account_key),
            jwt: Some(crate::auth::JwtUser {
                name: user.name.clone(),
                issuer: user.iss.clone(),
                expires,
                max_subs: tighter(limits.subs, account.claims.nats.limits.subs),
                max_payload: tighter(limits.payload, account.claims.nats.limits.payload),
            }),
        })
    }
}

/// Operator mode's [`Trust`], when `opts` configure it; the accounts its JWTs describe
/// join `opts.accounts` (imports nats-server would refuse are dropped, with a warning).
pub(crate) fn trust(
    opts: &mut petrel_config::Options,
) -> Result<Option<Arc<Trust>>, crate::server::ServerError> {
    let Some(mode) = &opts.operator else {
        return Ok(None);
    };
    let trust = Trust::load(mode).map_err(crate::server::ServerError::Resolver)?;
    for op in &mode.operators {
        tracing::info!(
            "Trusted Operators\n  Name: {}\n  Public key: {}",
            op.claims.name,
            op.claims.sub
        );
    }
    opts.accounts = trust.account_configs();
    for (account, why) in petrel_config::retain_valid_imports(&mut opts.accounts) {
        tracing::warn!(%account, "import ignored: {why}");
    }
    tracing::info!("Managing {} accounts from JWTs", opts.accounts.len());
    Ok(Some(Arc::new(trust)))
}

/// A JWT limit as a bound: -1 (and 0) are unlimited.
fn positive(n: i64) -> Option<u64> {
    u64::try_from(n).ok().filter(|&n| n > 0)
}

/// The tighter of a user's and its account's limit (nats-server applies both).
fn tighter(user: i64, account: i64) -> Option<u64> {
    match (positive(user), positive(account)) {
        (Some(u), Some(a)) => Some(u.min(a)),
        (u, a) => u.or(a),
    }
}

#[cfg(test)]
mod tests;
