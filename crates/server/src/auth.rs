//! Client authentication against the configured [`Auth`]: single user/password, token, a
//! users list, or nkey users (signature over the INFO nonce); secrets may be plain text or
//! bcrypt hashes (`$2a$...`, `$2b$...`).
//!
//! An unknown user costs what a wrong password costs (the same bcrypt work against a
//! configured hash, the same constant-time comparison), so response times do not tell
//! which user names exist. Nonces come from the operating system's CSPRNG. bcrypt runs on
//! a bounded pool ([`check`]) so a flood of bad CONNECTs cannot take the reactor's threads.

use std::sync::Arc;

use base64::Engine;
use petrel_config::{Auth, Options, Permissions, User};
use petrel_wire::ConnectInfo;
use tokio::sync::Semaphore;

/// How many bcrypt checks run at once: half the cores (at least one), so the reactor
/// always has a core while a flood of CONNECTs is checked.
pub(crate) fn pool_size() -> usize {
    std::thread::available_parallelism().map_or(1, |n| (n.get() / 2).max(1))
}

/// [`authenticate`] for a connection: inline when no bcrypt is involved, else on a
/// blocking thread holding one of `pool`'s permits (connections wait their turn).
pub(crate) async fn check(
    pool: &Semaphore,
    opts: Arc<Options>,
    connect: ConnectInfo,
    nonce: String,
) -> Option<Authed> {
    if !uses_bcrypt(&opts.auth) {
        return authenticate(&opts, &connect, &nonce);
    }
    let _permit = pool.acquire().await.ok()?;
    tokio::task::spawn_blocking(move || authenticate(&opts, &connect, &nonce))
        .await
        .ok()
        .flatten()
}

/// Who authenticated: the user name (for logs), the permissions in force and the account
/// (`None`: the global account).
#[derive(Debug, Default)]
pub(crate) struct Authed {
    pub user: Option<String>,
    pub permissions: Option<Permissions>,
    pub account: Option<String>,
    /// What a user JWT (operator mode) says beyond permissions.
    pub jwt: Option<JwtUser>,
}

/// A JWT user's name, issuer, expiry and connection limits.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct JwtUser {
    /// The JWT's `name`.
    pub name: String,
    /// The key that signed it (the account or one of its signing keys).
    pub issuer: String,
    /// When the user's (or its account's) JWT expires, Unix seconds.
    pub expires: Option<i64>,
    /// Subscriptions allowed.
    pub max_subs: Option<u64>,
    /// Largest payload allowed.
    pub max_payload: Option<u64>,
}

/// Check the CONNECT credentials against `opts`; `None` means Authorization Violation.
/// `nonce` is the one sent in this connection's INFO (empty when none was sent).
pub(crate) fn authenticate(opts: &Options, connect: &ConnectInfo, nonce: &str) -> Option<Authed> {
    let pass = connect.pass.as_deref().unwrap_or("");
    match &opts.auth {
        Auth::None => Some(Authed::default()),
        Auth::UserPass { user, pass: want } => {
            // Both checks always run: a wrong user name costs what a wrong password does.
            let user_ok = ct_eq(connect.user.as_deref().unwrap_or(""), user);
            let pass_ok = secret_matches(want, pass);
            (user_ok & pass_ok).then(|| Authed {
                user: Some(user.clone()),
                ..Authed::default()
            })
        }
        Auth::Token(token) => connect
            .auth_token
            .as_deref()
            .is_some_and(|t| secret_matches(token, t))
            .then(Authed::default),
        Auth::Users(users) => {
            let user = match (&connect.nkey, connect.user.as_deref()) {
                (Some(key), _) => users
                    .iter()
                    .find(|u| u.nkey.as_deref() == Some(key.as_str()))
                    .filter(|u| nkey_signed(u, connect, nonce))?,
                (None, Some(name)) => {
                    match users
                        .iter()
                        .find(|u| u.nkey.is_none() && ct_eq(&u.user, name))
                    {
                        Some(u) => Some(u).filter(|u| {
                            secret_matches(u.password.as_deref().unwrap_or(""), pass)
                        })?,
                        None => {
                            decoy(users, pass);
                            return None;
                        }
                    }
                }
                (None, None) => no_auth_user(opts, users, connect)?,
            };
            Some(Authed {
                user: Some(user.user.clone()),
                permissions: user
                    .permissions
                    .clone()
                    .or_else(|| opts.default_permissions.clone()),
                account: user.account.clone(),
                jwt: None,
            })
        }
    }
}

/// The `no_auth_user` a client that sent no credentials at all is logged in as.
fn no_auth_user<'u>(opts: &Options, users: &'u [User], connect: &ConnectInfo) -> Option<&'u User> {
    let name = opts.no_auth_user.as_deref()?;
    let anonymous = connect.pass.is_none()
        && connect.auth_token.is_none()
        && connect.sig.is_none()
        && connect.jwt.is_none()
        && connect.nkey.is_none();
    users.iter().find(|u| anonymous && u.user == name)
}

/// Whether any configured user authenticates with an nkey (INFO must carry a nonce).
pub(crate) fn needs_nonce(auth: &Auth) -> bool {
    matches!(auth, Auth::Users(users) if users.iter().any(|u| u.nkey.is_some()))
}

/// Verify the CONNECT `sig` (base64url of the nonce signed with the user's seed).
fn nkey_signed(user: &User, connect: &ConnectInfo, nonce: &str) -> bool {
    user.nkey
        .as_deref()
        .is_some_and(|key| signed_nonce(key, connect.sig.as_deref(), nonce))
}

/// Whether `sig` (base64url, or standard base64) is `key`'s signature of `nonce`.
pub(crate) fn signed_nonce(key: &str, sig: Option<&str>, nonce: &str) -> bool {
    let Some(sig) = sig else {
        return false;
    };
    if nonce.is_empty() {
        return false;
    }
    let sig = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(sig.trim_end_matches('='))
        .or_else(|_| base64::engine::general_purpose::STANDARD.decode(sig));
    let Ok(sig) = sig else {
        return false;
    };
    nkeys::KeyPair::from_public_key(key).is_ok_and(|kp| kp.verify(nonce.as_bytes(), &sig).is_ok())
}

/// An unknown user: spend what checking a known user's password would, and fail.
fn decoy(users: &[User], given: &str) {
    let _ = std::hint::black_box(secret_matches(decoy_secret(users), given));
}

/// The secret an unknown user's password is checked against: a configured bcrypt hash
/// when there is one (the costliest check a known user can cause), else a password.
fn decoy_secret(users: &[User]) -> &str {
    users
        .iter()
        .filter_map(|u| u.password.as_deref())
        .find(|p| is_bcrypt(p))
        .or_else(|| users.iter().find_map(|u| u.password.as_deref()))
        .unwrap_or("")
}

/// A fresh nonce for INFO (base64url of 16 bytes from the OS CSPRNG, as nats-server's 22
/// characters); `None` if the OS has no randomness to give (never a predictable nonce).
pub(crate) fn nonce() -> Option<String> {
    let mut bytes = [0u8; 16];
    match getrandom::fill(&mut bytes) {
        Ok(()) => Some(base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)),
        Err(e) => {
            tracing::error!(error = %e, "the operating system's random number generator failed");
            None
        }
    }
}

/// Whether `auth` holds any plain-text secret (nats-server warns about those).
pub(crate) fn has_plaintext(auth: &Auth) -> bool {
    match auth {
        Auth::None => false,
        Auth::UserPass { pass, .. } => !is_bcrypt(pass),
        Auth::Token(t) => !is_bcrypt(t),
        Auth::Users(users) => users
            .iter()
            .any(|u| u.password.as_deref().is_some_and(|p| !is_bcrypt(p))),
    }
}

/// Whether checking `auth` may run bcrypt (slow: keep it off the reactor).
pub(crate) fn uses_bcrypt(auth: &Auth) -> bool {
    match auth {
        Auth::None => false,
        Auth::UserPass { pass, .. } => is_bcrypt(pass),
        Auth::Token(t) => is_bcrypt(t),
        Auth::Users(users) => users
            .iter()
            .any(|u| u.password.as_deref().is_some_and(is_bcrypt)),
    }
}

fn is_bcrypt(s: &str) -> bool {
    s.starts_with("$2a$") || s.starts_with("$2b$") || s.starts_with("$2y$") || s.starts_with("$2x$")
}

/// Compare a configured secret (plain or bcrypt) with what the client sent.
pub(crate) fn secret_matches(configured: &str, given: &str) -> bool {
    if is_bcrypt(configured) {
        bcrypt::verify(given, configured).unwrap_or(false)
    } else {
        ct_eq(configured, given)
    }
}

/// Constant-time comparison: no early exit on the first differing byte nor on a length
/// difference (every byte of the longer string is visited).
pub(crate) fn ct_eq(a: &str, b: &str) -> bool {
    let (a, b) = (a.as_bytes(), b.as_bytes());
    let mut diff = a.len() ^ b.len();
    for i in 0..a.len().max(b.len()) {
        let (x, y) = (
            a.get(i).copied().unwrap_or(0),
            b.get(i).copied().unwrap_or(0),
        );
        diff |= usize::from(x ^ y);
    }
    std::hint::black_box(diff) == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(auth: &Auth, connect: &ConnectInfo) -> bool {
        let opts = Options {
            auth: auth.clone(),
            ..Options::default()
        };
        authenticate(&opts, connect, "").is_some()
    }

    fn connect(user: Option<&str>, pass: Option<&str>, token: Option<&str>) -> ConnectInfo {
        ConnectInfo {
            user: user.map(Into::into),
            pass: pass.map(Into::into),
            auth_token: token.map(Into::into),
            ..ConnectInfo::default()
        }
    }

    #[test]
    fn user_pass_and_token() {
        let up = Auth::UserPass {
            user: "a".into(),
            pass: "b".into(),
        };
        assert!(check(&up, &connect(Some("a"), Some("b"), None)));
        assert!(!check(&up, &connect(Some("a"), Some("c"), None)));
        assert!(!check(&up, &connect(None, None, None)));
        let tok = Auth::Token("s3cret".into());
        assert!(check(&tok, &connect(None, None, Some("s3cret"))));
        assert!(!check(&tok, &connect(None, None, Some("s3cre"))));
        assert!(check(&Auth::None, &connect(None, None, None)));
        assert!(has_plaintext(&up) && !uses_bcrypt(&up));
        assert!(ct_eq("abc", "abc") && !ct_eq("abc", "abcd") && !ct_eq("", "a"));
        assert!(ct_eq("", ""));
    }

    #[test]
    fn nonces_are_distinct_and_22_chars() {
        let (a, b) = (nonce().unwrap(), nonce().unwrap());
        assert_eq!(a.len(), 22);
        assert_ne!(a, b);
    }

    #[test]
    fn users_list_with_bcrypt() {
        let hash = bcrypt::hash("pw-etl", 4).unwrap();
        let users = Auth::Users(vec![
            User {
                user: "etl".into(),
                password: Some(hash),
                ..User::default()
            },
            User {
                user: "api".into(),
                password: Some("plain".into()),
                ..User::default()
            },
        ]);
        assert!(check(&users, &connect(Some("etl"), Some("pw-etl"), None)));
        assert!(!check(&users, &connect(Some("etl"), Some("plain"), None)));
        assert!(check(&users, &connect(Some("api"), Some("plain"), None)));
        assert!(!check(
            &users,
            &connect(Some("nobody"), Some("plain"), None)
        ));
        assert!(!check(&users, &connect(None, Some("plain"), None)));
        assert!(uses_bcrypt(&users) && has_plaintext(&users));
        // An unknown user costs a bcrypt check, like a known one.
        let Auth::Users(list) = &users else {
            unreachable!()
        };
        assert!(is_bcrypt(decoy_secret(list)));
    }

    #[test]
    fn nkey_signature_over_nonce() {
        let kp = nkeys::KeyPair::new_user();
        let opts = Options {
            auth: Auth::Users(vec![User {
                user: kp.public_key(),
                nkey: Some(kp.public_key()),
                ..User::default()
            }]),
            default_permissions: Some(Permissions::default()),
            ..Options::default()
        };
        assert!(needs_nonce(&opts.auth));
        let n = nonce().unwrap();
        let sig =
            base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(kp.sign(n.as_bytes()).unwrap());
        let connect = ConnectInfo {
            nkey: Some(kp.public_key()),
            sig: Some(sig),
            ..ConnectInfo::default()
        };
        let authed = authenticate(&opts, &connect, &n).expect("signed nonce accepted");
        assert!(authed.permissions.is_some(), "default permissions applied");
        assert!(authenticate(&opts, &connect, "another-nonce").is_none());
        let other = nkeys::KeyPair::new_user();
        let forged = ConnectInfo {
            nkey: Some(kp.public_key()),
            sig: Some(
                base64::engine::general_purpose::URL_SAFE_NO_PAD
                    .encode(other.sign(n.as_bytes()).unwrap()),
            ),
            ..ConnectInfo::default()
        };
        assert!(authenticate(&opts, &forged, &n).is_none());
    }
}
