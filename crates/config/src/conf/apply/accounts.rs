//! `accounts { NAME: { users, jetstream, default_permissions } }`, `no_auth_user` and
//! `system_account`: accounts become [`AccountConfig`]s, their users join the users list
//! with their account named, and the cross-key rules are checked once everything is read.

use super::{Applier, ConfigError, Value, ValueKind};
use crate::conf::convert::{boolean, limit, string, type_error, unsigned};
use crate::{
    AccountConfig, AccountJetStream, Auth, Export, Import, ImportKind, ResponseType, User,
    DEFAULT_SYSTEM_ACCOUNT, GLOBAL_ACCOUNT,
};

impl Applier<'_> {
    /// `accounts { NAME: { ... }, ... }`.
    pub(super) fn accounts(&mut self, key: &str, v: &Value) -> Result<(), ConfigError> {
        let Some(map) = v.as_map() else {
            return Err(type_error(v, key, "a block of accounts"));
        };
        for e in map.entries() {
            let name = e.key.clone();
            let field = format!("{key}.{name}");
            if name == GLOBAL_ACCOUNT {
                return Err(ConfigError::invalid(
                    &e.key_pos,
                    &field,
                    format!("\"{GLOBAL_ACCOUNT}\" is a Reserved Account"),
                ));
            }
            // As nats-server: an account defined twice is the last definition.
            self.opts.accounts.retain(|a| a.name != name);
            self.account_users
                .retain(|(u, _)| u.account.as_deref() != Some(name.as_str()));
            let Some(body) = e.value.as_map() else {
                return Err(type_error(&e.value, &field, "an account block"));
            };
            let mut account = AccountConfig {
                name: name.clone(),
                ..AccountConfig::default()
            };
            self.account_pos.retain(|(n, _)| n != &name);
            self.account_pos.push((name.clone(), e.key_pos.clone()));
            let mut users = Vec::new();
            let mut defaults = None;
            for f in body.entries() {
                let (sub, mv) = (f.key.to_ascii_lowercase(), &f.value);
                let fname = format!("{field}.{}", f.key);
                match sub.as_str() {
                    "users" => users = self.users(mv, &fname)?,
                    "jetstream" => account.jetstream = account_jetstream(self, mv, &fname)?,
                    "default_permissions" | "default_permission" => {
                        defaults = Some(crate::conf::permissions::permissions(mv, &fname)?);
                    }
                    "exports" => account.exports = exports(self, mv, &fname)?,
                    "imports" => account.imports = imports(self, mv, &fname)?,
                    "mappings" | "maps" | "nkey" | "limits" | "msg_trace" | "trace_dest" => self
                        .warn(
                            &f.key_pos,
                            format!("{fname} is not supported yet and is ignored"),
                        ),
                    _ if f.used_as_variable => {}
                    _ => return Err(ConfigError::unknown_field(&f.key_pos, &f.key)),
                }
            }
            for mut u in users {
                u.account = Some(name.clone());
                if u.permissions.is_none() {
                    u.permissions.clone_from(&defaults);
                }
                self.account_users.push((u, e.key_pos.clone()));
            }
            self.opts.accounts.push(account);
        }
        Ok(())
    }

    /// Adds the accounts' users to the users list and checks imports and exports,
    /// `no_auth_user` and `system_account` against what is configured.
    pub(super) fn finish_accounts(&mut self) -> Result<(), ConfigError> {
        for (name, pos) in &self.account_pos {
            if let Some(acc) = self.opts.accounts.iter().find(|a| &a.name == name) {
                super::imports::check(&self.opts.accounts, acc)
                    .map_err(|why| ConfigError::invalid(pos, "accounts", why))?;
            }
        }
        let account_users = std::mem::take(&mut self.account_users);
        if let Some((_, pos)) = account_users.first() {
            let mut all: Vec<User> = match std::mem::take(&mut self.opts.auth) {
                Auth::None => Vec::new(),
                Auth::Users(users) => users,
                Auth::UserPass { .. } | Auth::Token(_) => {
                    return Err(ConfigError::invalid(
                        pos,
                        "accounts",
                        "can not have a single user/pass or token and account users",
                    ))
                }
            };
            for (u, pos) in account_users {
                if all.iter().any(|o| o.user == u.user) {
                    return Err(ConfigError::invalid(
                        &pos,
                        "accounts",
                        format!("Duplicate user \"{}\" detected", u.user.escape_default()),
                    ));
                }
                all.push(u);
            }
            self.opts.auth = Auth::Users(all);
        }
        if let Some((user, pos)) = &self.no_auth_user {
            no_auth_user_known(&self.opts.auth, user, pos, "no_auth_user")?;
            self.opts.no_auth_user = Some(user.clone());
        }
        if let Some((name, pos)) = &self.system_account {
            let known = name == DEFAULT_SYSTEM_ACCOUNT
                || self.opts.accounts.iter().any(|a| &a.name == name);
            if !known {
                return Err(ConfigError::invalid(
                    pos,
                    "system_account",
                    "error resolving system account: account missing",
                ));
            }
            let with_js = self
                .opts
                .accounts
                .iter()
                .any(|a| &a.name == name && a.jetstream.is_some());
            if with_js {
                return Err(ConfigError::invalid(
                    pos,
                    "system_account",
                    "Not allowed to enable JetStream on the system account",
                ));
            }
            self.opts.system_account = Some(name.clone());
        }
        Ok(())
    }
}

/// An account's `jetstream`: `enabled`/`disabled`, a boolean, or a limits block.
fn account_jetstream(
    a: &mut Applier<'_>,
    v: &Value,
    key: &str,
) -> Result<Option<AccountJetStream>, ConfigError> {
    let map = match &v.kind {
        ValueKind::Bool(on) => return Ok(on.then(AccountJetStream::default)),
        ValueKind::String(s) => {
            return match s.to_ascii_lowercase().as_str() {
                "enabled" | "enable" | "true" => Ok(Some(AccountJetStream::default())),
                "disabled" | "disable" | "false" => Ok(None),
                _ => Err(ConfigError::invalid(
                    &v.pos,
                    key,
                    format!(
                        "Expected 'enabled' or 'disabled' for string value, got '{}'",
                        s.escape_default()
                    ),
                )),
            }
        }
        ValueKind::Map(m) => m,
        _ => return Err(type_error(v, key, "\"enabled\", \"disabled\" or a block")),
    };
    let mut js = AccountJetStream::default();
    for e in map.entries() {
        let (sub, mv) = (e.key.to_ascii_lowercase(), &e.value);
        let name = format!("{key}.{}", e.key);
        match sub.as_str() {
            "max_memory" | "max_mem" | "mem" | "memory" => js.max_memory = limit(mv, &name)?,
            "max_store" | "max_file" | "max_disk" | "store" | "disk" => {
                js.max_file = limit(mv, &name)?;
            }
            "max_streams" | "streams" => js.max_streams = count(mv, &name)?,
            "max_consumers" | "consumers" => js.max_consumers = count(mv, &name)?,
            "max_bytes_required" | "max_stream_bytes" | "max_bytes" => {
                js.max_bytes_required = boolean(mv, &name)?;
            }
            "enabled" | "enable" => {
                if !boolean(mv, &name)? {
                    return Ok(None);
                }
            }
            "max_ack_pending"
            | "mem_max_stream_bytes"
            | "memory_max_stream_bytes"
            | "disk_max_stream_bytes"
            | "store_max_stream_bytes"
            | "cluster_traffic" => a.warn(
                &e.key_pos,
                format!("{name} is not supported yet and is ignored"),
            ),
            _ if e.used_as_variable => {}
            _ => return Err(ConfigError::unknown_field(&e.key_pos, &e.key)),
        }
    }
    Ok(Some(js))
}

/// A count limit: negative means unlimited.
fn count(v: &Value, key: &str) -> Result<Option<u64>, ConfigError> {
    if super::int(v, key)? < 0 {
        return Ok(None);
    }
    unsigned(v, key).map(Some)
}

/// `no_auth_user` / `system_account`: a non-empty name.
pub(super) fn name_value(v: &Value, key: &str) -> Result<String, ConfigError> {
    let s = string(v, key)?;
    if s.is_empty() {
        return Err(type_error(v, key, "a name"));
    }
    Ok(s.to_string())
}

/// `exports: [ {stream: S} | {service: S, response: R}, with optional accounts: [...] ]`.
fn exports(a: &mut Applier<'_>, v: &Value, key: &str) -> Result<Vec<Export>, ConfigError> {
    let Some(items) = v.as_array() else {
        return Err(type_error(v, key, "an array of exports"));
    };
    let mut out = Vec::new();
    for (i, item) in items.iter().enumerate() {
        let name = format!("{key}[{i}]");
        let Some(map) = item.as_map() else {
            return Err(type_error(item, &name, "an export block"));
        };
        let (mut subject, mut service, mut response, mut accounts) = (None, false, None, vec![]);
        for e in map.entries() {
            let (sub, mv) = (e.key.to_ascii_lowercase(), &e.value);
            let field = format!("{name}.{}", e.key);
            match sub.as_str() {
                "stream" => subject = Some(string(mv, &field)?.to_string()),
                "service" => {
                    subject = Some(string(mv, &field)?.to_string());
                    service = true;
                }
                "response" | "response_type" => response = Some(response_type(mv, &field)?),
                "accounts" => accounts = names(mv, &field)?,
                "response_threshold"
                | "threshold"
                | "allow_trace"
                | "account_token_position"
                | "advertise"
                | "latency" => a.warn(
                    &e.key_pos,
                    format!("{field} is not supported yet and is ignored"),
                ),
                _ if e.used_as_variable => {}
                _ => return Err(ConfigError::unknown_field(&e.key_pos, &e.key)),
            }
        }
        let Some(subject) = subject else {
            return Err(ConfigError::invalid(
                &item.pos,
                &name,
                "an export needs a 'stream' or a 'service' subject",
            ));
        };
        if !petrel_subject::is_valid_subject(subject.as_bytes()) {
            return Err(ConfigError::invalid(
                &item.pos,
                &name,
                format!("invalid export subject \"{subject}\""),
            ));
        }
        out.push(Export {
            subject,
            service: service.then(|| response.unwrap_or_default()),
            accounts,
        });
    }
    Ok(out)
}

fn response_type(v: &Value, key: &str) -> Result<ResponseType, ConfigError> {
    let s = string(v, key)?;
    match s.to_ascii_lowercase().as_str() {
        "singleton" | "single" => Ok(ResponseType::Singleton),
        "stream" | "streamed" => Ok(ResponseType::Stream),
        "chunked" | "chunk" => Ok(ResponseType::Chunked),
        _ => Err(ConfigError::invalid(
            &v.pos,
            key,
            format!("Unknown response type: \"{s}\""),
        )),
    }
}

fn names(v: &Value, key: &str) -> Result<Vec<String>, ConfigError> {
    let Some(items) = v.as_array() else {
        return Err(type_error(v, key, "an array of account names"));
    };
    items
        .iter()
        .map(|i| string(i, key).map(str::to_string))
        .collect()
}

/// `imports: [ {stream: {account, subject}, prefix|to} | {service: {account, subject}, to, share} ]`.
fn imports(a: &mut Applier<'_>, v: &Value, key: &str) -> Result<Vec<Import>, ConfigError> {
    let Some(items) = v.as_array() else {
        return Err(type_error(v, key, "an array of imports"));
    };
    let mut out = Vec::new();
    for (i, item) in items.iter().enumerate() {
        let name = format!("{key}[{i}]");
        let Some(map) = item.as_map() else {
            return Err(type_error(item, &name, "an import block"));
        };
        let (mut source, mut service) = (None, false);
        let (mut prefix, mut to, mut share) = (None, None, false);
        for e in map.entries() {
            let (sub, mv) = (e.key.to_ascii_lowercase(), &e.value);
            let field = format!("{name}.{}", e.key);
            match sub.as_str() {
                "stream" | "service" => {
                    service = sub == "service";
                    source = Some(import_source(mv, &field)?);
                }
                "prefix" => prefix = Some(string(mv, &field)?.to_string()),
                "to" => to = Some(string(mv, &field)?.to_string()),
                "share" => share = boolean(mv, &field)?,
                "allow_trace" | "latency" => a.warn(
                    &e.key_pos,
                    format!("{field} is not supported yet and is ignored"),
                ),
                _ if e.used_as_variable => {}
                _ => return Err(ConfigError::unknown_field(&e.key_pos, &e.key)),
            }
        }
        let Some((account, subject)) = source else {
            return Err(ConfigError::invalid(
                &item.pos,
                &name,
                "an import needs a 'stream' or a 'service' source",
            ));
        };
        if !service && prefix.is_some() && to.is_some() {
            return Err(ConfigError::invalid(
                &item.pos,
                &name,
                "Stream import can not have a 'prefix' and a 'to' property",
            ));
        }
        let kind = if service {
            ImportKind::Service { to, share }
        } else {
            ImportKind::Stream { prefix, to }
        };
        out.push(Import {
            account,
            subject,
            kind,
        });
    }
    Ok(out)
}

/// `{account: A, subject: S}`.
fn import_source(v: &Value, key: &str) -> Result<(String, String), ConfigError> {
    let Some(map) = v.as_map() else {
        return Err(type_error(v, key, "a block with 'account' and 'subject'"));
    };
    let (mut account, mut subject) = (None, None);
    for e in map.entries() {
        let field = format!("{key}.{}", e.key);
        match e.key.to_ascii_lowercase().as_str() {
            "account" => account = Some(string(&e.value, &field)?.to_string()),
            "subject" => subject = Some(string(&e.value, &field)?.to_string()),
            _ if e.used_as_variable => {}
            _ => return Err(ConfigError::unknown_field(&e.key_pos, &e.key)),
        }
    }
    match (account, subject) {
        (Some(a), Some(s)) => Ok((a, s)),
        _ => Err(ConfigError::invalid(
            &v.pos,
            key,
            "an import source needs 'account' and 'subject'",
        )),
    }
}

/// nats-server's check of a `no_auth_user` (top level or a listener's): it must be one of
/// the users.
pub(super) fn no_auth_user_known(
    auth: &Auth,
    user: &str,
    pos: &super::Pos,
    key: &str,
) -> Result<(), ConfigError> {
    let Auth::Users(list) = auth else {
        return Err(ConfigError::invalid(
            pos,
            key,
            format!("no_auth_user: \"{user}\" present, but users/nkeys are not defined"),
        ));
    };
    if !list.iter().any(|u| u.user == user) {
        return Err(ConfigError::invalid(
            pos,
            key,
            format!("no_auth_user: \"{user}\" not present as user or nkey in authorization block or account configuration"),
        ));
    }
    Ok(())
}
