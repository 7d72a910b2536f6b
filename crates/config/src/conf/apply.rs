//! Maps a parsed nats.conf tree onto [`Options`], key by key, as nats-server's
//! `processConfigFileLine` does: keys are case-insensitive, a known key with a value of the
//! wrong type is an error (with the value's position), an unknown key is an error as in
//! nats-server (`unknown field "x"`), and nats-server features Petrel does not have yet
//! are warnings.

use std::net::{IpAddr, Ipv4Addr};
use std::path::PathBuf;
use std::time::Duration;

use super::convert::{
    boolean, bounded, client_port, domain, duplicate_store_dir, duration, host_port, int, ip,
    limit, monitor_port, port_number, string, sync_mode, type_error, unsigned,
};
use super::error::ConfigError;
use super::value::{Map, Pos, Value, ValueKind};
use crate::{Auth, Options, User};

mod accounts;
mod cluster;
mod leafnode;
pub use cluster::parse_route_list;
mod imports;
mod listener;
mod websocket;
pub use imports::retain_valid_imports;
mod operator;

/// nats-server top-level keys Petrel does not implement yet (reported, then ignored).
const NOT_YET: &[&str] = &[
    "gateway",
    "mqtt",
    "https",
    "https_port",
    "http_base_path",
    "client_advertise",
    "logtime",
    "logtime_utc",
    "syslog",
    "remote_syslog",
    "trace_verbose",
    "trace_headers",
    "mappings",
    "maps",
    "no_system_account",
    "max_traced_msg_len",
    "max_sub_tokens",
    "prof_port",
    "no_header_support",
    "disable_sublist_cache",
    "no_sublist_cache",
    "connect_error_reports",
    "reconnect_error_reports",
    "write_timeout",
    "logfile_size_limit",
    "log_size_limit",
    "logfile_max_num",
    "log_max_num",
    "ocsp",
    "default_js_domain",
    "default_sentinel",
    "prof_block_rate",
    "proxy_protocol",
    "max_subscription_tokens",
    "resolver_tls",
    "resolver_pinned_accounts",
    "no_system",
    "no_sys_acc",
    "trusted",
    "trusted_keys",
    "server_metadata",
    "feature_flags",
    "ocsp_cache",
    "no_fast_producer_stall",
    "max_closed_clients",
    "proxies",
];

/// Auth timeouts above this draw a warning, as in nats-server.
const HIGH_AUTH_TIMEOUT: Duration = Duration::from_secs(60);

/// Applies every entry of `root` to `opts` and returns the warnings.
pub fn apply(root: &Map, opts: &mut Options) -> Result<Vec<String>, ConfigError> {
    let mut a = Applier {
        opts,
        warnings: Vec::new(),
        top_store_dir: None,
        js_store_dir: None,
        account_users: Vec::new(),
        account_pos: Vec::new(),
        no_auth_user: None,
        system_account: None,
        operator_pos: None,
        websocket_pos: None,
    };
    for e in root.entries() {
        a.top_level(&e.key, &e.key_pos, &e.value, e.used_as_variable)?;
    }
    a.finish()?;
    Ok(a.warnings)
}

struct Applier<'o> {
    opts: &'o mut Options,
    warnings: Vec<String>,
    /// A top-level `store_dir`, applied to JetStream at the end.
    top_store_dir: Option<(PathBuf, Pos)>,
    /// Where a `jetstream { store_dir }` was set.
    js_store_dir: Option<Pos>,
    /// Users of `accounts {}` (with where their account is), added to the users at the end.
    account_users: Vec<(User, Pos)>,
    /// Where each account was defined (imports and exports are checked at the end).
    account_pos: Vec<(String, Pos)>,
    /// `no_auth_user` and `system_account`, checked at the end.
    no_auth_user: Option<(String, Pos)>,
    system_account: Option<(String, Pos)>,
    /// Where operator mode was first configured (its errors point there).
    operator_pos: Option<Pos>,
    /// Where `websocket {}` was (its checks against the users run at the end).
    websocket_pos: Option<(String, Pos)>,
}

/// `server_tags`: an array of strings or one comma-separated string, lower-cased (tags
/// match without regard to case, as nats-server's).
fn server_tags(v: &Value, key: &str) -> Result<Vec<String>, ConfigError> {
    let items: Vec<&Value> = match &v.kind {
        ValueKind::Array(items) => items.iter().collect(),
        _ => vec![v],
    };
    let mut tags = Vec::new();
    for item in items {
        for tag in string(item, key)?.split(',') {
            let tag = tag.trim().to_lowercase();
            if !tag.is_empty() && !tags.contains(&tag) {
                tags.push(tag);
            }
        }
    }
    Ok(tags)
}

impl Applier<'_> {
    fn warn(&mut self, pos: &Pos, msg: impl AsRef<str>) {
        self.warnings.push(format!("{pos}: {}", msg.as_ref()));
    }

    fn top_level(
        &mut self,
        key: &str,
        key_pos: &Pos,
        v: &Value,
        used_as_variable: bool,
    ) -> Result<(), ConfigError> {
        let k = key.to_ascii_lowercase();
        let o = &mut *self.opts;
        match k.as_str() {
            "listen" => {
                let (host, port) = host_port(v, key)?;
                o.host = host.unwrap_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED));
                o.port = client_port(port);
            }
            "port" => o.port = client_port(port_number(v, key, int(v, key)?)?),
            "host" | "net" => o.host = ip(string(v, key)?, &v.pos, key)?,
            "server_name" => {
                let name = string(v, key)?;
                if name.contains(' ') {
                    return Err(ConfigError::invalid(
                        &v.pos,
                        key,
                        "server name cannot contain spaces",
                    ));
                }
                o.server_name = Some(name.to_string());
            }
            "server_tags" => o.server_tags = server_tags(v, key)?,
            "http" => {
                let (host, port) = host_port(v, key)?;
                o.http_host = host;
                o.http_port = monitor_port(port);
            }
            "http_port" | "monitor_port" => {
                o.http_port = monitor_port(port_number(v, key, int(v, key)?)?);
            }
            "max_payload" => o.max_payload = bounded(v, key, i32::MAX as u64)?,
            "max_control_line" => o.max_control_line = bounded(v, key, i32::MAX as u64)?,
            "max_pending" => o.max_pending = unsigned(v, key)?,
            "max_connections" | "max_conn" => o.max_connections = unsigned(v, key)?,
            "max_subscriptions" | "max_subs" => o.max_subscriptions = unsigned(v, key)?,
            "ping_interval" => o.ping_interval = duration(v, key)?,
            "ping_max" => o.ping_max = unsigned(v, key)?,
            "write_deadline" => o.write_deadline = duration(v, key)?,
            "lame_duck_duration" => o.lame_duck_duration = duration(v, key)?,
            "lame_duck_grace_period" => o.lame_duck_grace_period = duration(v, key)?,
            "ports_file_dir" => o.ports_file_dir = Some(PathBuf::from(string(v, key)?)),
            "debug" => o.debug = boolean(v, key)?,
            "trace" => o.trace = boolean(v, key)?,
            "logfile" | "log_file" => o.log_file = Some(PathBuf::from(string(v, key)?)),
            "pidfile" | "pid_file" => o.pid_file = Some(PathBuf::from(string(v, key)?)),
            "store_dir" | "storedir" => {
                if let Some(pos) = &self.js_store_dir {
                    return Err(duplicate_store_dir(&v.pos, key, pos));
                }
                self.top_store_dir = Some((PathBuf::from(string(v, key)?), v.pos.clone()));
            }
            "jetstream" => self.jetstream(key, v)?,
            "cluster" => self.cluster(key, v)?,
            "websocket" | "ws" => self.websocket(key, v)?,
            "leafnodes" | "leaf" => self.leafnodes(key, v)?,
            "authorization" => self.authorization(key, v)?,
            "accounts" => self.accounts(key, v)?,
            "operator" | "operators" | "roots" | "root" | "root_operators" | "root_operator" => {
                self.operator(key, v)?;
            }
            "resolver" | "account_resolver" | "accounts_resolver" => self.resolver(key, v)?,
            "resolver_preload" => self.resolver_preload(key, v)?,
            "no_auth_user" => {
                self.no_auth_user = Some((accounts::name_value(v, key)?, v.pos.clone()));
            }
            "system_account" | "system" => {
                self.system_account = Some((accounts::name_value(v, key)?, v.pos.clone()));
            }
            "tls" => self.opts.tls = Some(self.tls_block(v, key)?),
            _ if NOT_YET.contains(&k.as_str()) => {
                self.warn(
                    key_pos,
                    format!("{key} is not supported yet and is ignored"),
                );
            }
            // Entries only there to be referenced as `$VARIABLE`s are not settings.
            _ if used_as_variable => {}
            _ => return Err(ConfigError::unknown_field(key_pos, key)),
        }
        Ok(())
    }

    /// `jetstream: enabled|disabled|true|false` or `jetstream { ... }`.
    fn jetstream(&mut self, key: &str, v: &Value) -> Result<(), ConfigError> {
        let map = match &v.kind {
            ValueKind::Bool(on) => {
                self.enable_jetstream(*on);
                return Ok(());
            }
            ValueKind::String(s) => {
                let on = match s.to_ascii_lowercase().as_str() {
                    "enabled" | "enable" | "true" => true,
                    "disabled" | "disable" | "false" => false,
                    _ => {
                        return Err(ConfigError::invalid(
                            &v.pos,
                            key,
                            format!(
                                "expected \"enabled\" or \"disabled\", found \"{}\"",
                                s.escape_default()
                            ),
                        ))
                    }
                };
                self.enable_jetstream(on);
                return Ok(());
            }
            ValueKind::Map(m) => m,
            _ => {
                return Err(type_error(
                    v,
                    key,
                    "true/false, \"enabled\"/\"disabled\" or a block",
                ));
            }
        };
        let mut js = self.opts.jetstream.clone().unwrap_or_default();
        let mut enabled = true;
        for e in map.entries() {
            let (sub, mv) = (e.key.to_ascii_lowercase(), &e.value);
            let name = format!("{key}.{}", e.key);
            match sub.as_str() {
                "store_dir" | "store" | "storedir" => {
                    js.store_dir = PathBuf::from(string(mv, &name)?);
                    if let Some((_, pos)) = &self.top_store_dir {
                        return Err(duplicate_store_dir(&mv.pos, &name, pos));
                    }
                    self.js_store_dir = Some(mv.pos.clone());
                }
                "max_mem" | "max_memory_store" | "max_mem_store" => {
                    js.max_memory = limit(mv, &name)?
                }
                "max_file" | "max_file_store" => js.max_file = limit(mv, &name)?,
                "sync_interval" | "sync" => js.sync = sync_mode(mv, &name)?,
                "enabled" | "enable" => enabled = boolean(mv, &name)?,
                "disabled" | "disable" => enabled = !boolean(mv, &name)?,
                "domain" => js.domain = domain(mv, &name)?,
                "strict" => js.strict = boolean(mv, &name)?,
                "key"
                | "ek"
                | "encryption_key"
                | "prev_key"
                | "prev_ek"
                | "prev_encryption_key"
                | "cipher"
                | "limits"
                | "unique_tag"
                | "extension_hint"
                | "max_outstanding_catchup"
                | "max_buffered_size"
                | "max_buffered_msgs"
                | "request_queue_limit"
                | "info_queue_limit"
                | "meta_compact"
                | "meta_compact_size"
                | "meta_compact_sync"
                | "max_concurrent_io"
                | "tpm" => {
                    self.warn(
                        &e.key_pos,
                        format!("{name} is not supported yet and is ignored"),
                    );
                }
                _ if e.used_as_variable => {}
                _ => return Err(ConfigError::unknown_field(&e.key_pos, &e.key)),
            }
        }
        self.opts.jetstream = enabled.then_some(js);
        Ok(())
    }

    fn enable_jetstream(&mut self, on: bool) {
        self.opts.jetstream = if on {
            Some(self.opts.jetstream.clone().unwrap_or_default())
        } else {
            None
        };
    }

    /// `authorization { user, password, token, timeout, users: [...] }`.
    fn authorization(&mut self, key: &str, v: &Value) -> Result<(), ConfigError> {
        let Some(map) = v.as_map() else {
            return Err(type_error(v, key, "a block"));
        };
        let (mut user, mut pass, mut token) = (None::<String>, None::<String>, None::<String>);
        let mut users: Option<Vec<User>> = None;
        for e in map.entries() {
            let (sub, mv) = (e.key.to_ascii_lowercase(), &e.value);
            let name = format!("{key}.{}", e.key);
            match sub.as_str() {
                "user" | "username" => user = Some(string(mv, &name)?.to_string()),
                "pass" | "password" => pass = Some(string(mv, &name)?.to_string()),
                "token" => token = Some(string(mv, &name)?.to_string()),
                "timeout" => {
                    let t = duration(mv, &name)?;
                    if t > HIGH_AUTH_TIMEOUT {
                        self.warn(
                            &mv.pos,
                            format!(
                                "{name} of {t:?} is high, consider keeping it under 60 seconds"
                            ),
                        );
                    }
                    self.opts.auth_timeout = t;
                }
                "users" => users = Some(self.users(mv, &name)?),
                "default_permissions" | "default_permission" => {
                    self.opts.default_permissions =
                        Some(super::permissions::permissions(mv, &name)?);
                }
                "permissions" | "auth_callout" | "auth_hook" | "proxy_required" => {
                    self.warn(
                        &e.key_pos,
                        format!("{name} is not supported yet and is ignored"),
                    );
                }
                _ if e.used_as_variable => {}
                _ => return Err(ConfigError::unknown_field(&e.key_pos, &e.key)),
            }
        }
        let has_user = user.is_some() || pass.is_some();
        if has_user && token.is_some() {
            return Err(ConfigError::invalid(
                &v.pos,
                key,
                "cannot have both a user/password and a token",
            ));
        }
        if let Some(users) = users {
            if has_user {
                return Err(ConfigError::invalid(
                    &v.pos,
                    key,
                    "cannot have both a single user/password and a users array",
                ));
            }
            if token.is_some() {
                return Err(ConfigError::invalid(
                    &v.pos,
                    key,
                    "cannot have both a token and a users array",
                ));
            }
            if !users.is_empty() {
                self.opts.auth = Auth::Users(users);
                return Ok(());
            }
        }
        self.opts.auth = match (token, has_user) {
            (Some(t), _) => Auth::Token(t),
            (None, true) => Auth::UserPass {
                user: user.unwrap_or_default(),
                pass: pass.unwrap_or_default(),
            },
            (None, false) => Auth::None,
        };
        Ok(())
    }

    /// `users: [ { user, password, ... }, ... ]`.
    fn users(&mut self, v: &Value, key: &str) -> Result<Vec<User>, ConfigError> {
        let Some(items) = v.as_array() else {
            return Err(type_error(v, key, "an array of user blocks"));
        };
        let mut users: Vec<User> = Vec::new();
        for (i, item) in items.iter().enumerate() {
            let name = format!("{key}[{i}]");
            let Some(map) = item.as_map() else {
                return Err(type_error(
                    item,
                    &name,
                    "a block with 'user' and 'password'",
                ));
            };
            let (mut user, mut password, mut nkey) = (None, None, None::<String>);
            let mut permissions = None;
            for e in map.entries() {
                let (sub, mv) = (e.key.to_ascii_lowercase(), &e.value);
                let field = format!("{name}.{}", e.key);
                match sub.as_str() {
                    "user" | "username" => user = Some(string(mv, &field)?.to_string()),
                    "pass" | "password" => password = Some(string(mv, &field)?.to_string()),
                    "nkey" => {
                        let key = string(mv, &field)?;
                        if !(key.len() == 56 && key.starts_with('U')) {
                            return Err(ConfigError::invalid(
                                &mv.pos,
                                &field,
                                "expected a user nkey (56 characters starting with 'U')",
                            ));
                        }
                        nkey = Some(key.to_string());
                    }
                    "permission" | "permissions" => {
                        permissions = Some(super::permissions::permissions(mv, &field)?);
                    }
                    "authorization"
                    | "account"
                    | "allowed_connection_types"
                    | "connection_types"
                    | "clients"
                    | "proxy_required" => {
                        self.warn(
                            &e.key_pos,
                            format!("{field} is not supported yet and is ignored"),
                        );
                    }
                    _ if e.used_as_variable => {}
                    _ => return Err(ConfigError::unknown_field(&e.key_pos, &e.key)),
                }
            }
            let Some(user) = user.or_else(|| nkey.clone()) else {
                return Err(ConfigError::invalid(
                    &item.pos,
                    &name,
                    "a user entry needs a 'user' or an 'nkey'",
                ));
            };
            if users.iter().any(|u| u.user == user) {
                return Err(ConfigError::invalid(
                    &item.pos,
                    &name,
                    format!("duplicate user \"{}\"", user.escape_default()),
                ));
            }
            users.push(User {
                user,
                password,
                nkey,
                permissions,
                account: None,
            });
        }
        Ok(users)
    }

    /// Settles what depends on several keys.
    fn finish(&mut self) -> Result<(), ConfigError> {
        self.finish_operator()?;
        self.finish_accounts()?;
        self.finish_websocket()?;
        if let Some((dir, pos)) = self.top_store_dir.take() {
            match &mut self.opts.jetstream {
                Some(js) => js.store_dir = dir,
                None => self.warn(
                    &pos,
                    "store_dir is set but jetstream is not enabled; ignored",
                ),
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::conf::parse_str;
    use crate::{SyncMode, DEFAULT_PORT};
    use std::net::Ipv6Addr;

    fn apply_str(text: &str) -> Result<(Options, Vec<String>), ConfigError> {
        let map = parse_str(text, "a.conf")?;
        let mut o = Options::default();
        let w = apply(&map, &mut o)?;
        Ok((o, w))
    }

    fn ok(text: &str) -> (Options, Vec<String>) {
        apply_str(text).unwrap_or_else(|e| panic!("{text:?}: {e}"))
    }

    #[test]
    fn listen_forms() {
        let (o, _) = ok("listen: 127.0.0.1:4333");
        assert_eq!((o.host, o.port), (IpAddr::V4(Ipv4Addr::LOCALHOST), 4333));
        let (o, _) = ok("host: 10.0.0.1\nlisten: \":5222\"");
        assert_eq!((o.host, o.port), (IpAddr::V4(Ipv4Addr::UNSPECIFIED), 5222));
        let (o, _) = ok("listen: 6222");
        assert_eq!(o.port, 6222);
        let (o, _) = ok("listen: \"[::1]:4222\"");
        assert_eq!(o.host, IpAddr::V6(Ipv6Addr::LOCALHOST));
        let (o, _) = ok("listen: localhost:4222");
        assert_eq!(o.host, IpAddr::V4(Ipv4Addr::LOCALHOST));
        assert!(apply_str("listen: example.com:4222").is_err());
        assert!(apply_str("listen: 1.2.3.4:99999").is_err());
    }

    #[test]
    fn ports_follow_nats_server() {
        assert_eq!(ok("port: -1").0.port, 0);
        assert_eq!(ok("port: 0").0.port, DEFAULT_PORT);
        assert_eq!(ok("port: \"4999\"").0.port, 4999);
        assert_eq!(ok("http_port: 8222").0.http_port, Some(8222));
        assert_eq!(ok("monitor_port: -1").0.http_port, Some(0));
        let (o, _) = ok("http: \"127.0.0.1:8333\"");
        assert_eq!(
            (o.http_host, o.http_port),
            (Some(IpAddr::V4(Ipv4Addr::LOCALHOST)), Some(8333))
        );
        assert_eq!(ok("http: 8444").0.http_port, Some(8444));
    }

    #[test]
    fn lifecycle_keys() {
        let (o, warnings) = ok(
            "lame_duck_duration: 30s\nlame_duck_grace_period: \"5s\"\nports_file_dir: \"/tmp/ports\"",
        );
        assert!(warnings.is_empty(), "{warnings:?}");
        assert_eq!(o.lame_duck_duration, Duration::from_secs(30));
        assert_eq!(o.lame_duck_grace_period, Duration::from_secs(5));
        assert_eq!(o.ports_file_dir, Some(PathBuf::from("/tmp/ports")));
        let mut bad = o.clone();
        bad.lame_duck_grace_period = bad.lame_duck_duration;
        assert_eq!(bad.validate(), Err(crate::OptionsError::LameDuckGrace));
    }

    #[test]
    fn durations_for_keys() {
        let (o, _) = ok("ping_interval: \"2m\"\nwrite_deadline: 30s");
        assert_eq!(o.ping_interval, Duration::from_secs(120));
        assert_eq!(o.write_deadline, Duration::from_secs(30));
        assert_eq!(
            ok("ping_interval: 45").0.ping_interval,
            Duration::from_secs(45)
        );
        assert_eq!(
            ok("ping_interval: 2m").0.ping_interval,
            Duration::from_secs(120)
        );
        assert_eq!(
            ok("ping_interval: 1h30m").0.ping_interval,
            Duration::from_secs(5400)
        );
        assert_eq!(
            ok("write_deadline: \"500ms\"").0.write_deadline,
            Duration::from_millis(500)
        );
        assert_eq!(
            ok("write_deadline: 1.5").0.write_deadline,
            Duration::from_millis(1500)
        );
        assert!(apply_str("ping_interval: \"soon\"").is_err());
        assert!(apply_str("ping_interval: -5").is_err());
        assert!(apply_str("ping_interval: [1]").is_err());
    }

    #[test]
    fn jetstream_forms() {
        assert!(ok("jetstream: enabled").0.jetstream.is_some());
        assert!(ok("jetstream: true").0.jetstream.is_some());
        assert!(ok("jetstream: false").0.jetstream.is_none());
        assert!(ok("jetstream: \"disabled\"").0.jetstream.is_none());
        assert!(apply_str("jetstream: maybe").is_err());
        let (o, _) = ok("jetstream { store_dir: /js, max_memory_store: 1GB, max_file_store: \"2G\", sync_interval: \"2s\" }");
        let js = o.jetstream.expect("js");
        assert_eq!(js.store_dir, PathBuf::from("/js"));
        assert_eq!(js.max_memory, Some(1 << 30));
        assert_eq!(js.max_file, Some(2_000_000_000));
        assert_eq!(js.sync, SyncMode::Interval(Duration::from_secs(2)));
        let js = ok("jetstream { sync: always, max_mem: -1 }")
            .0
            .jetstream
            .expect("js");
        assert_eq!((js.sync, js.max_memory), (SyncMode::Always, None));
        assert!(ok("jetstream { enabled: false }").0.jetstream.is_none());
        let js = ok("store_dir: /top\njetstream: enabled")
            .0
            .jetstream
            .expect("js");
        assert_eq!(js.store_dir, PathBuf::from("/top"));
        assert!(apply_str("store_dir: /a\njetstream { store_dir: /b }").is_err());
        let (o, w) = ok("jetstream { domain: hub, cipher: aes }");
        assert_eq!(w.len(), 1, "{w:?}");
        assert_eq!(o.jetstream.expect("js").domain.as_deref(), Some("hub"));
        assert!(apply_str("jetstream { domain: hub, bogus: 1 }").is_err());
        for (bad, why) in [
            ("a.b", "may not contain ., * or >"),
            ("\"a b\"", "is not a valid subject"),
        ] {
            let e = apply_str(&format!("jetstream {{ domain: {bad} }}")).unwrap_err();
            assert!(e.to_string().contains(why), "{bad}: {e}");
        }
    }

    #[test]
    fn authorization_forms() {
        let (o, _) = ok("authorization { user: a, password: b, timeout: 3 }");
        assert_eq!(
            o.auth,
            Auth::UserPass {
                user: "a".into(),
                pass: "b".into()
            }
        );
        assert_eq!(o.auth_timeout, Duration::from_secs(3));
        let (o, _) = ok("authorization { token: s3cr3t, timeout: 0.5 }");
        assert_eq!(o.auth, Auth::Token("s3cr3t".into()));
        assert_eq!(o.auth_timeout, Duration::from_millis(500));
        assert!(apply_str("authorization { user: a, password: b, token: c }").is_err());
        assert!(apply_str("authorization { user: a, password: b, users: [] }").is_err());
        assert!(apply_str("authorization: yes").is_err());
        assert!(apply_str("authorization { users: [ { user: a }, { user: a } ] }").is_err());
        assert!(apply_str("authorization { users: [ 5 ] }").is_err());
        let nkey = "UDXU4RCSJNZOIQHZNWXHXORDPRTGNJAHAHFRGZNEEJCPQTT2M7NLCNF4";
        let (o, _) = ok(&format!(
            "authorization {{ users: [ {{user: a, password: b, permissions: {{publish: \"x.>\"}}}}, {{nkey: {nkey}}} ] }}"
        ));
        let Auth::Users(users) = o.auth else {
            panic!("users expected");
        };
        assert_eq!(users[0].user, "a");
        assert_eq!(users[0].password.as_deref(), Some("b"));
        assert_eq!(
            users[0]
                .permissions
                .as_ref()
                .and_then(|p| p.publish.as_ref())
                .map(|p| p.allow.clone()),
            Some(vec!["x.>".to_string()])
        );
        assert_eq!(users[1].nkey.as_deref(), Some(nkey));
        assert!(apply_str("authorization { users: [ {nkey: UABC} ] }").is_err());
        let (_, w) = ok("authorization { timeout: 90 }");
        assert!(w.iter().any(|w| w.contains("is high")), "{w:?}");
    }

    #[test]
    fn warnings_and_type_errors() {
        let (_, w) = ok("gateway { port: 7222 }\nV: 2\nmax_payload: $V\n");
        assert_eq!(
            w,
            ["a.conf:1:1: gateway is not supported yet and is ignored"]
        );
        let e = apply_str("foo: 1").err().map(|e| e.to_string());
        assert_eq!(e.as_deref(), Some("a.conf:1:1: unknown field \"foo\""));
        let e = apply_str("debug: true\nport: abc")
            .err()
            .map(|e| e.to_string());
        assert_eq!(
            e.as_deref(),
            Some("a.conf:2:7: port: expected an integer, found a string (\"abc\")")
        );
        assert!(apply_str("debug: 1").is_err());
        assert!(apply_str("server_name: \"a b\"").is_err());
        let (o, _) = apply_str("server_tags: [\"AZ:1\", \"cloud:aws\", \"az:1\"]").unwrap();
        assert_eq!(o.server_tags, vec!["az:1", "cloud:aws"]);
        let (o, _) = apply_str("server_tags: \"a, b\"").unwrap();
        assert_eq!(o.server_tags, vec!["a", "b"]);
        assert!(apply_str("server_tags: 7").is_err());
        assert!(apply_str("max_payload: -1").is_err());
        assert!(apply_str("max_payload: 3G").is_err());
        assert!(apply_str("ping_max: 1.5").is_err());
        assert!(apply_str("log_file: [a]").is_err());
        let (o, _) = ok("MAX_CONN: 10\nmax_subs: 5\nmax_pending: 1MB\nmax_control_line: 2KB\npidfile: /p\nlogfile: /l\ntrace: on");
        assert_eq!((o.max_connections, o.max_subscriptions), (10, 5));
        assert_eq!((o.max_pending, o.max_control_line), (1 << 20, 2048));
        assert_eq!(o.pid_file, Some(PathBuf::from("/p")));
        assert_eq!(o.log_file, Some(PathBuf::from("/l")));
        assert!(o.trace);
    }
}
