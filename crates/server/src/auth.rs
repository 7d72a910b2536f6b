//! Client authentication against the configured [`Auth`]: single user/password, token, or
//! a users list; secrets may be plain text or bcrypt hashes (`$2a$...`, `$2b$...`).

use petrel_config::Auth;
use petrel_wire::ConnectInfo;

/// Whether the CONNECT credentials satisfy `auth`.
pub(crate) fn check(auth: &Auth, connect: &ConnectInfo) -> bool {
    let pass = connect.pass.as_deref().unwrap_or("");
    match auth {
        Auth::None => true,
        Auth::UserPass { user, pass: want } => {
            connect.user.as_deref().is_some_and(|u| ct_eq(u, user)) && secret_matches(want, pass)
        }
        Auth::Token(token) => connect
            .auth_token
            .as_deref()
            .is_some_and(|t| secret_matches(token, t)),
        Auth::Users(users) => {
            let Some(name) = connect.user.as_deref() else {
                return false;
            };
            users
                .iter()
                .find(|u| ct_eq(&u.user, name))
                .is_some_and(|u| secret_matches(u.password.as_deref().unwrap_or(""), pass))
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
fn secret_matches(configured: &str, given: &str) -> bool {
    if is_bcrypt(configured) {
        bcrypt::verify(given, configured).unwrap_or(false)
    } else {
        ct_eq(configured, given)
    }
}

/// Constant-time comparison (no early exit on the first differing byte).
fn ct_eq(a: &str, b: &str) -> bool {
    let (a, b) = (a.as_bytes(), b.as_bytes());
    if a.len() != b.len() {
        return false;
    }
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

#[cfg(test)]
mod tests {
    use super::*;
    use petrel_config::User;

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
    }

    #[test]
    fn users_list_with_bcrypt() {
        let hash = bcrypt::hash("pw-etl", 4).unwrap();
        let users = Auth::Users(vec![
            User {
                user: "etl".into(),
                password: Some(hash),
            },
            User {
                user: "api".into(),
                password: Some("plain".into()),
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
    }
}
