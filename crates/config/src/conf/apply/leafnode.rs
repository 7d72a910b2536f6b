//! `leafnodes { ... }` (alias `leaf`), read as nats-server's `parseLeafNodes`,
//! `parseLeafAuthorization` and `parseRemoteLeafNodes` read it: the listener, its
//! authorization (one user, or `users` each bound to an account), TLS, `remotes`,
//! `reconnect`, `min_version`; compression and the 2.11+ extras are accepted and ignored
//! (Petrel's leafnode connections are uncompressed, which every nats-server accepts).

use std::path::PathBuf;

use super::{Applier, ConfigError, Value, ValueKind};
use crate::conf::convert::{boolean, duration, string, type_error};
use crate::{LeafRemote, LeafUrl, LeafUser, LeafnodeOptions};

/// nats-server leafnode keys Petrel accepts and does not act on.
const ACCEPTED: &[&str] = &[
    "compression",
    "isolate_leafnode_interest",
    "isolate",
    "dial_timeout",
    "write_deadline",
    "write_timeout",
];

/// nats-server remote keys Petrel accepts and does not act on.
const REMOTE_ACCEPTED: &[&str] = &[
    "compression",
    "first_info_timeout",
    "dial_timeout",
    "request_isolation",
    "isolate_leafnode_interest",
    "ignore_discovered_servers",
    "jetstream_cluster_migrate",
    "ws_compression",
    "ws_compress",
    "websocket_compression",
    "websocket_compress",
];

impl Applier<'_> {
    /// `leafnodes { ... }`.
    pub(super) fn leafnodes(&mut self, key: &str, v: &Value) -> Result<(), ConfigError> {
        let Some(map) = v.as_map() else {
            return Err(type_error(v, key, "a leafnodes block"));
        };
        let mut l = LeafnodeOptions::default();
        let mut port = 0u16;
        let mut has_port = false;
        for e in map.entries() {
            let (sub, mv) = (e.key.to_ascii_lowercase(), &e.value);
            let name = format!("{key}.{}", e.key);
            match sub.as_str() {
                _ if Self::listener_key(&sub, mv, &name, &mut l.host, &mut port)? => {
                    has_port |= sub != "host" && sub != "net";
                }
                "advertise" | "leafnode_advertise" => {
                    l.advertise = Some(string(mv, &name)?.to_string())
                }
                "no_advertise" => l.no_advertise = boolean(mv, &name)?,
                "authorization" => leaf_authorization(mv, &name, &mut l)?,
                "tls" => l.tls = Some(self.tls_block(mv, &name)?),
                "remotes" => l.remotes = self.remotes(mv, &name)?,
                "reconnect" | "reconnect_delay" | "reconnect_interval" => {
                    l.reconnect = duration(mv, &name)?
                }
                "min_version" | "minimum_version" => {
                    let s = string(mv, &name)?;
                    if crate::parse_version(s).is_none_or(|t| t < (2, 8, 0)) {
                        return Err(ConfigError::invalid(
                            &mv.pos,
                            &name,
                            "minimum version needs to be a version of the form x.y.z, at least 2.8.0",
                        ));
                    }
                    l.min_version = Some(s.to_string());
                }
                _ if ACCEPTED.contains(&sub.as_str()) => {
                    self.warn(&e.key_pos, format!("{name} is accepted and ignored"))
                }
                _ if e.used_as_variable => {}
                _ => return Err(ConfigError::unknown_field(&e.key_pos, &e.key)),
            }
        }
        // nats-server: port 0 or absent means no listener; -1 a free port.
        l.port = match (has_port, port) {
            (false, _) => None,
            (true, 0) if listen_is_random(map) => Some(0),
            (true, 0) => None,
            (true, p) => Some(p),
        };
        self.opts.leafnodes = Some(l);
        Ok(())
    }

    /// `remotes: [ {...}, ... ]`.
    fn remotes(&mut self, v: &Value, key: &str) -> Result<Vec<LeafRemote>, ConfigError> {
        let ValueKind::Array(items) = &v.kind else {
            return Err(type_error(v, key, "a list of remotes"));
        };
        let mut out: Vec<LeafRemote> = Vec::new();
        for item in items {
            let Some(map) = item.as_map() else {
                return Err(type_error(item, key, "a remote block"));
            };
            let mut r = LeafRemote::default();
            for e in map.entries() {
                let (sub, mv) = (e.key.to_ascii_lowercase(), &e.value);
                let name = format!("{key}.{}", e.key);
                match sub.as_str() {
                    "url" | "urls" => r.urls = leaf_urls(mv, &name)?,
                    "account" | "local" => r.account = Some(string(mv, &name)?.to_string()),
                    "credentials" | "creds" => {
                        r.credentials = Some(PathBuf::from(string(mv, &name)?))
                    }
                    "nkey" | "seed" => r.nkey_seed = Some(string(mv, &name)?.to_string()),
                    "tls" => r.tls = Some(self.client_tls_block(mv, &name)?),
                    "hub" => r.hub = boolean(mv, &name)?,
                    "deny_imports" | "deny_import" => r.deny_imports = subjects(mv, &name)?,
                    "deny_exports" | "deny_export" => r.deny_exports = subjects(mv, &name)?,
                    "no_randomize" | "dont_randomize" => r.no_randomize = boolean(mv, &name)?,
                    "ws_no_masking" | "websocket_no_masking" => {
                        r.ws_no_masking = boolean(mv, &name)?
                    }
                    _ if REMOTE_ACCEPTED.contains(&sub.as_str()) => {
                        self.warn(&e.key_pos, format!("{name} is accepted and ignored"))
                    }
                    _ if e.used_as_variable => {}
                    _ => return Err(ConfigError::unknown_field(&e.key_pos, &e.key)),
                }
            }
            if r.credentials.is_some() && r.nkey_seed.is_some() {
                return Err(ConfigError::invalid(
                    &item.pos,
                    key,
                    "Remote leafnode can not have both credentials and nkey configured",
                ));
            }
            if r.urls.is_empty() {
                return Err(ConfigError::invalid(
                    &item.pos,
                    key,
                    "remote leafnode has no url",
                ));
            }
            if out.iter().any(|o| o.urls == r.urls) {
                return Err(ConfigError::invalid(
                    &item.pos,
                    key,
                    format!("duplicate remote {:?}", r.urls),
                ));
            }
            out.push(r);
        }
        Ok(out)
    }
}

/// Whether `listen`/`port` asked for a free port (`-1`).
fn listen_is_random(map: &super::Map) -> bool {
    map.entries().iter().any(|e| {
        let k = e.key.to_ascii_lowercase();
        match &e.value.kind {
            ValueKind::Int(p) => k == "port" && *p < 0,
            ValueKind::String(s) => k == "listen" && s.ends_with(":-1"),
            _ => false,
        }
    })
}

/// `url: "..."` or `urls: [...]`; WebSocket and plain URLs cannot be mixed.
fn leaf_urls(v: &Value, key: &str) -> Result<Vec<LeafUrl>, ConfigError> {
    let items: Vec<&Value> = match &v.kind {
        ValueKind::Array(a) => a.iter().collect(),
        ValueKind::String(_) => vec![v],
        _ => return Err(type_error(v, key, "a URL or a list of URLs")),
    };
    let urls = items
        .into_iter()
        .map(|item| {
            let s = string(item, key)?;
            LeafUrl::parse(s).map_err(|why| ConfigError::invalid(&item.pos, key, why))
        })
        .collect::<Result<Vec<_>, _>>()?;
    if urls.iter().any(|u| u.websocket) && urls.iter().any(|u| !u.websocket) {
        return Err(ConfigError::invalid(
            &v.pos,
            key,
            "remote leaf node configuration cannot have a mix of websocket and non-websocket urls",
        ));
    }
    Ok(urls)
}

/// A subject or a list of subjects.
fn subjects(v: &Value, key: &str) -> Result<Vec<String>, ConfigError> {
    match &v.kind {
        ValueKind::Array(a) => a
            .iter()
            .map(|s| string(s, key).map(str::to_string))
            .collect(),
        _ => Ok(vec![string(v, key)?.to_string()]),
    }
}

/// `leafnodes { authorization { user, password, account, users, timeout } }`.
fn leaf_authorization(v: &Value, key: &str, l: &mut LeafnodeOptions) -> Result<(), ConfigError> {
    let Some(map) = v.as_map() else {
        return Err(type_error(v, key, "a block"));
    };
    for e in map.entries() {
        let (sub, mv) = (e.key.to_ascii_lowercase(), &e.value);
        let name = format!("{key}.{}", e.key);
        match sub.as_str() {
            "user" | "username" => l.user = Some(string(mv, &name)?.to_string()),
            "pass" | "password" => l.password = Some(string(mv, &name)?.to_string()),
            "account" => l.account = Some(string(mv, &name)?.to_string()),
            "timeout" => l.auth_timeout = duration(mv, &name)?,
            "users" => l.users = leaf_users(mv, &name)?,
            _ if e.used_as_variable => {}
            _ => return Err(ConfigError::unknown_field(&e.key_pos, &e.key)),
        }
    }
    if l.user.is_some() && !l.users.is_empty() {
        return Err(ConfigError::invalid(
            &v.pos,
            key,
            "can not have a single user/pass and a users array",
        ));
    }
    Ok(())
}

/// `users: [ {user, password, account}, ... ]`.
fn leaf_users(v: &Value, key: &str) -> Result<Vec<LeafUser>, ConfigError> {
    let ValueKind::Array(items) = &v.kind else {
        return Err(type_error(v, key, "a list of users"));
    };
    let mut out: Vec<LeafUser> = Vec::new();
    for item in items {
        let Some(map) = item.as_map() else {
            return Err(type_error(item, key, "a user block"));
        };
        let mut u = LeafUser {
            user: String::new(),
            password: String::new(),
            account: None,
        };
        for e in map.entries() {
            let (sub, mv) = (e.key.to_ascii_lowercase(), &e.value);
            let name = format!("{key}.{}", e.key);
            match sub.as_str() {
                "user" | "username" => u.user = string(mv, &name)?.to_string(),
                "pass" | "password" => u.password = string(mv, &name)?.to_string(),
                "account" => u.account = Some(string(mv, &name)?.to_string()),
                "proxy_required" => {}
                _ if e.used_as_variable => {}
                _ => return Err(ConfigError::unknown_field(&e.key_pos, &e.key)),
            }
        }
        if out.iter().any(|o| o.user == u.user) {
            return Err(ConfigError::invalid(
                &item.pos,
                key,
                format!(
                    "duplicate user \"{}\" detected in leafnode authorization",
                    u.user
                ),
            ));
        }
        out.push(u);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use crate::load_str;

    #[test]
    fn leafnodes_block() {
        let l = load_str(
            "accounts { A: {} }\nleafnodes { listen: 127.0.0.1:7422\n authorization { users: [{user: u1, password: p1, account: A}, {user: u2, password: p2}], timeout: 1 }\n remotes: [{ url: \"nats-leaf://u:p@hub:7000\", account: A, deny_imports: [\"di.>\"], deny_exports: \"de.>\" }, { urls: [\"ws://hub:8080\"] }]\n reconnect: \"3s\"\n compression: off }",
            "l.conf",
        )
        .unwrap();
        let o = l.options.leafnodes.unwrap();
        assert_eq!(o.port, Some(7422));
        assert_eq!(o.users.len(), 2);
        assert_eq!(o.users[0].account.as_deref(), Some("A"));
        assert_eq!(o.remotes.len(), 2);
        assert_eq!(o.remotes[0].deny_imports, vec!["di.>".to_string()]);
        assert_eq!(o.remotes[0].deny_exports, vec!["de.>".to_string()]);
        assert!(o.remotes[1].urls[0].websocket);
        assert_eq!(o.reconnect.as_secs(), 3);
        assert_eq!(l.warnings.len(), 1, "{:?}", l.warnings);
        let o = load_str("leafnodes { remotes: [{url: \"nats://h\"}] }", "l.conf").unwrap();
        assert_eq!(o.options.leafnodes.unwrap().port, None);
        let o = load_str("leafnodes { port: -1 }", "l.conf").unwrap();
        assert_eq!(o.options.leafnodes.unwrap().port, Some(0));
        for (bad, why) in [
            ("leafnodes { bogus: 1 }", "unknown field"),
            (
                "leafnodes { remotes: [{url: [\"ws://a\", \"nats://b\"]}] }",
                "mix of websocket",
            ),
            (
                "leafnodes { authorization { user: a, password: b, users: [{user: c}] } }",
                "single user",
            ),
            (
                "leafnodes { authorization { users: [{user: a}, {user: a}] } }",
                "duplicate user",
            ),
            (
                "leafnodes { remotes: [{url: \"nats://a\"}, {url: \"nats://a\"}] }",
                "duplicate remote",
            ),
            ("leafnodes { remotes: [{url: \"http://a\"}] }", "scheme"),
            ("leafnodes { min_version: \"2.7.0\" }", "minimum version"),
        ] {
            let e = load_str(bad, "l.conf").unwrap_err().to_string();
            assert!(e.contains(why), "{bad}: {e}");
        }
    }
}
