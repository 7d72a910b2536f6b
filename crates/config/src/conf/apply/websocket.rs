//! `websocket { ... }` (alias `ws`), read as nats-server's `parseWebsocket` reads it, with
//! its start-up refusal of a listener that has neither TLS nor `no_tls: true`.

use super::{Applier, ConfigError, Value, ValueKind};
use crate::conf::convert::{boolean, duration, string, type_error};
use crate::WebSocketOptions;

/// nats-server websocket keys Petrel accepts and does not act on.
const ACCEPTED: &[&str] = &["compression", "compress", "headers", "ping_interval"];

impl Applier<'_> {
    /// `websocket { ... }`.
    pub(super) fn websocket(&mut self, key: &str, v: &Value) -> Result<(), ConfigError> {
        let Some(map) = v.as_map() else {
            return Err(type_error(v, key, "a websocket block"));
        };
        let mut w = WebSocketOptions::default();
        for e in map.entries() {
            let (sub, mv) = (e.key.to_ascii_lowercase(), &e.value);
            let name = format!("{key}.{}", e.key);
            match sub.as_str() {
                _ if Self::listener_key(&sub, mv, &name, &mut w.host, &mut w.port)? => {}
                "advertise" => w.advertise = Some(string(mv, &name)?.to_string()),
                "no_tls" => w.no_tls = boolean(mv, &name)?,
                "tls" => w.tls = Some(self.tls_block(mv, &name)?),
                "same_origin" => w.same_origin = boolean(mv, &name)?,
                "allowed_origins" | "allowed_origin" | "allow_origins" | "allow_origin"
                | "origins" | "origin" => {
                    w.allowed_origins = match &mv.kind {
                        ValueKind::Array(a) => a
                            .iter()
                            .map(|o| string(o, &name).map(str::to_string))
                            .collect::<Result<_, _>>()?,
                        _ => vec![string(mv, &name)?.to_string()],
                    }
                }
                "handshake_timeout" => {
                    let d = duration(mv, &name)?;
                    if !d.is_zero() {
                        w.handshake_timeout = d;
                    }
                }
                "jwt_cookie" => w.cookies.jwt = Some(string(mv, &name)?.to_string()),
                "user_cookie" => w.cookies.user = Some(string(mv, &name)?.to_string()),
                "pass_cookie" => w.cookies.pass = Some(string(mv, &name)?.to_string()),
                "token_cookie" => w.cookies.token = Some(string(mv, &name)?.to_string()),
                "authorization" | "authentication" => ws_authorization(mv, &name, &mut w)?,
                "no_auth_user" => w.no_auth_user = Some(string(mv, &name)?.to_string()),
                _ if ACCEPTED.contains(&sub.as_str()) => {
                    self.warn(&e.key_pos, format!("{name} is accepted and ignored"))
                }
                _ if e.used_as_variable => {}
                _ => return Err(ConfigError::unknown_field(&e.key_pos, &e.key)),
            }
        }
        if w.tls.is_none() && !w.no_tls {
            return Err(ConfigError::invalid(
                &v.pos,
                key,
                "websocket requires TLS configuration",
            ));
        }
        self.opts.websocket = Some(w);
        self.websocket_pos = Some((key.to_string(), v.pos.clone()));
        Ok(())
    }

    /// Once every user is known (accounts' included): the WebSocket listener's own
    /// credentials cannot coexist with users, as in nats-server.
    pub(super) fn finish_websocket(&mut self) -> Result<(), ConfigError> {
        let has_override = self
            .opts
            .websocket
            .as_ref()
            .is_some_and(|w| w.auth.is_some());
        let Some((key, pos)) = self.websocket_pos.clone() else {
            return Ok(());
        };
        if let Some(user) = self
            .opts
            .websocket
            .as_ref()
            .and_then(|w| w.no_auth_user.clone())
        {
            super::accounts::no_auth_user_known(&self.opts.auth, &user, &pos, &key)?;
        }
        if has_override && matches!(self.opts.auth, crate::Auth::Users(_)) {
            return Err(ConfigError::invalid(
                &pos,
                &key,
                "websocket authentication username not compatible with presence of users/nkeys",
            ));
        }
        Ok(())
    }
}

/// `websocket { authorization { user, password, token, timeout } }`.
fn ws_authorization(v: &Value, key: &str, w: &mut WebSocketOptions) -> Result<(), ConfigError> {
    let Some(map) = v.as_map() else {
        return Err(type_error(v, key, "a block"));
    };
    let (mut user, mut pass, mut token) = (None, None, None);
    for e in map.entries() {
        let (sub, mv) = (e.key.to_ascii_lowercase(), &e.value);
        let name = format!("{key}.{}", e.key);
        match sub.as_str() {
            "user" | "username" => user = Some(string(mv, &name)?.to_string()),
            "pass" | "password" => pass = Some(string(mv, &name)?.to_string()),
            "token" => token = Some(string(mv, &name)?.to_string()),
            "timeout" => w.auth_timeout = Some(duration(mv, &name)?),
            _ if e.used_as_variable => {}
            _ => return Err(ConfigError::unknown_field(&e.key_pos, &e.key)),
        }
    }
    w.auth = match (user, pass, token) {
        (None, None, None) => None,
        (Some(user), pass, None) => Some(crate::Auth::UserPass {
            user,
            pass: pass.unwrap_or_default(),
        }),
        (None, None, Some(t)) => Some(crate::Auth::Token(t)),
        _ => {
            return Err(ConfigError::invalid(
                &v.pos,
                key,
                "websocket authorization takes a user and password, or a token",
            ))
        }
    };
    Ok(())
}

#[cfg(test)]
mod tests {
    use crate::load_str;

    #[test]
    fn websocket_block() {
        let l = load_str(
            "websocket { port: 8080, no_tls: true, same_origin: true, allowed_origins: [\"http://a.example\"], handshake_timeout: \"5s\", compression: true }",
            "w.conf",
        )
        .unwrap();
        let w = l.options.websocket.unwrap();
        assert_eq!((w.port, w.no_tls, w.same_origin), (8080, true, true));
        assert_eq!(w.allowed_origins, ["http://a.example"]);
        assert_eq!(w.handshake_timeout, std::time::Duration::from_secs(5));
        assert_eq!(l.warnings.len(), 1, "{:?}", l.warnings);
        let e = load_str("websocket { port: 8080 }", "w.conf").unwrap_err();
        assert!(
            e.to_string()
                .contains("websocket requires TLS configuration"),
            "{e}"
        );
        assert!(load_str("websocket { port: 8080, no_tls: true, bogus: 1 }", "w.conf").is_err());
        let e = load_str("websocket { no_tls: true, username: a }", "w.conf").unwrap_err();
        assert!(e.to_string().contains("unknown field \"username\""), "{e}");
        let l = load_str(
            "websocket { no_tls: true, authorization { user: b, password: p, timeout: 3 }, user_cookie: u }",
            "w.conf",
        )
        .unwrap();
        let w = l.options.websocket.unwrap();
        assert!(matches!(w.auth, Some(crate::Auth::UserPass { .. })));
        assert_eq!(w.cookies.user.as_deref(), Some("u"));
        let e = load_str(
            "websocket { no_tls: true, authorization { user: b, password: p } }\naccounts { A: { users: [{user: a, password: b}] } }",
            "w.conf",
        )
        .unwrap_err();
        assert!(
            e.to_string()
                .contains("not compatible with presence of users/nkeys"),
            "{e}"
        );
        let users = "authorization { users: [{user: a, password: b}, {user: guest, password: g}] }";
        let ok = format!("{users}\nwebsocket {{ no_tls: true, no_auth_user: guest }}");
        let l = load_str(&ok, "w.conf").unwrap();
        assert_eq!(
            l.options.websocket.unwrap().no_auth_user.as_deref(),
            Some("guest")
        );
        let bad = format!("{users}\nwebsocket {{ no_tls: true, no_auth_user: bob }}");
        let e = load_str(&bad, "w.conf").unwrap_err();
        assert!(
            e.to_string()
                .contains("no_auth_user: \"bob\" not present as user"),
            "{e}"
        );
    }
}
