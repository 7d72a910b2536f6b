//! `operator`, `resolver` and `resolver_preload` (operator mode), read as nats-server's
//! `processConfigFileLine` reads them, and checked at the end as its
//! `validateTrustedOperators` checks them, with its error texts.

use std::path::PathBuf;

use super::{Applier, ConfigError, Value, ValueKind};
use crate::conf::convert::{boolean, string, type_error, unsigned};
use crate::{Auth, OperatorMode, ResolverConfig, TrustedOperator};

/// An inline JWT starts with the base64 of `{"`.
const JWT_PREFIX: &str = "eyJ";

impl Applier<'_> {
    fn operator_mode(&mut self, pos: &super::Pos) -> &mut OperatorMode {
        self.operator_pos.get_or_insert_with(|| pos.clone());
        self.opts.operator.get_or_insert_with(|| OperatorMode {
            operators: Vec::new(),
            resolver: None,
            preload: Vec::new(),
        })
    }

    /// `operator: <jwt or file>` or a list of them.
    pub(super) fn operator(&mut self, key: &str, v: &Value) -> Result<(), ConfigError> {
        let items: Vec<&Value> = match &v.kind {
            ValueKind::String(_) => vec![v],
            ValueKind::Array(a) => a.iter().collect(),
            _ => return Err(type_error(v, key, "a JWT, a file or a list of them")),
        };
        let mut operators = Vec::new();
        for item in items {
            let given = string(item, key)?;
            let op = read_operator(given).map_err(|why| {
                ConfigError::invalid(&item.pos, key, format!("error parsing operator JWT: {why}"))
            })?;
            operators.push(op);
        }
        self.operator_mode(&v.pos).operators = operators;
        Ok(())
    }

    /// `resolver: MEMORY`, `resolver: URL(...)` or `resolver { type, dir, ... }`.
    pub(super) fn resolver(&mut self, key: &str, v: &Value) -> Result<(), ConfigError> {
        let bad = || {
            ConfigError::invalid(
                &v.pos,
                key,
                "error parsing account resolver, should be MEM or  URL(\"url\") or a map containing dir and type state=[FULL|CACHE])",
            )
        };
        let resolver = match &v.kind {
            ValueKind::String(s) => {
                let up = s.trim().to_ascii_uppercase();
                if up.starts_with("MEM") {
                    ResolverConfig::Memory
                } else if up.starts_with("URL") {
                    return Err(ConfigError::invalid(
                        &v.pos,
                        key,
                        "the URL account resolver is not supported: use resolver { type: full, dir: ... } and push account JWTs with nsc or the nats CLI",
                    ));
                } else {
                    return Err(bad());
                }
            }
            ValueKind::Map(m) => {
                let (mut dir, mut kind, mut allow_delete, mut limit) = (None, None, false, 0);
                for e in m.entries() {
                    let name = format!("{key}.{}", e.key);
                    match e.key.to_ascii_lowercase().as_str() {
                        "dir" => dir = Some(string(&e.value, &name)?.to_string()),
                        "type" => kind = Some(string(&e.value, &name)?.to_ascii_uppercase()),
                        "allow_delete" => allow_delete = boolean(&e.value, &name)?,
                        "limit" => limit = unsigned(&e.value, &name)?,
                        "interval" | "timeout" | "ttl" | "hard_delete" => self.warn(
                            &e.key_pos,
                            format!("{name} is not supported yet and is ignored"),
                        ),
                        _ if e.used_as_variable => {}
                        _ => return Err(ConfigError::unknown_field(&e.key_pos, &e.key)),
                    }
                }
                match kind.as_deref() {
                    Some("MEM" | "MEMORY") => ResolverConfig::Memory,
                    Some(k @ ("FULL" | "CACHE")) => {
                        let dir = dir.filter(|d| !d.is_empty()).ok_or_else(|| {
                            ConfigError::invalid(
                                &v.pos,
                                key,
                                "dir has no value and needs to point to a directory",
                            )
                        })?;
                        let path = PathBuf::from(&dir);
                        if path.exists() && !path.is_dir() {
                            return Err(ConfigError::invalid(
                                &v.pos,
                                key,
                                "dir needs to point to an accessible directory",
                            ));
                        }
                        let cache = k == "CACHE";
                        if cache && allow_delete {
                            return Err(ConfigError::invalid(
                                &v.pos,
                                key,
                                "CACHE does not accept allow_delete",
                            ));
                        }
                        ResolverConfig::Dir {
                            dir: path,
                            cache,
                            allow_delete,
                            limit,
                        }
                    }
                    _ => return Err(bad()),
                }
            }
            _ => {
                return Err(ConfigError::invalid(
                    &v.pos,
                    key,
                    "error parsing operator resolver, wrong type",
                ))
            }
        };
        self.operator_mode(&v.pos).resolver = Some(resolver);
        Ok(())
    }

    /// `resolver_preload { <account public key>: <account JWT> }`.
    pub(super) fn resolver_preload(&mut self, key: &str, v: &Value) -> Result<(), ConfigError> {
        let Some(map) = v.as_map() else {
            return Err(ConfigError::invalid(
                &v.pos,
                key,
                "preload should be a map of account_public_key:account_jwt",
            ));
        };
        let mut preload = Vec::new();
        for e in map.entries() {
            let ValueKind::String(jwt) = &e.value.kind else {
                return Err(ConfigError::invalid(
                    &e.value.pos,
                    key,
                    "preload map value should be a string JWT",
                ));
            };
            if petrel_jwt::decode::<petrel_jwt::Account>(jwt).is_err() {
                return Err(ConfigError::invalid(
                    &e.value.pos,
                    key,
                    "invalid account JWT",
                ));
            }
            preload.push((e.key.clone(), jwt.trim().to_string()));
        }
        self.operator_mode(&v.pos).preload = preload;
        Ok(())
    }

    /// nats-server's `validateTrustedOperators`, and the system account taken from the
    /// operator JWT when the file names none.
    pub(super) fn finish_operator(&mut self) -> Result<(), ConfigError> {
        let Some(mode) = &self.opts.operator else {
            return Ok(());
        };
        let Some(pos) = self.operator_pos.clone() else {
            return Ok(());
        };
        let fail = |why: &str| ConfigError::invalid(&pos, "operator", why);
        if mode.operators.is_empty() {
            return Err(fail(
                "resolver preloads only available for trusted operators",
            ));
        }
        let Some(resolver) = &mode.resolver else {
            return Err(fail(
                "operators require an account resolver to be configured",
            ));
        };
        if !self.opts.accounts.is_empty() {
            return Err(fail(
                "operators do not allow Accounts to be configured directly",
            ));
        }
        if !matches!(self.opts.auth, Auth::None) {
            return Err(fail(
                "operators do not allow users to be configured directly",
            ));
        }
        let from_jwt = mode.operators[0].claims.nats.system_account.clone();
        let any_sys = mode
            .operators
            .iter()
            .any(|o| o.claims.nats.system_account.is_some());
        match self.system_account.take().map(|(n, _)| n) {
            Some(sys) => {
                let listed = mode
                    .operators
                    .iter()
                    .any(|o| o.claims.nats.system_account.as_deref() == Some(sys.as_str()));
                if any_sys && !listed {
                    return Err(fail(
                        "system_account in config and operator JWT must be identical",
                    ));
                }
                self.opts.system_account = Some(sys);
            }
            None if from_jwt.is_some() => self.opts.system_account = from_jwt,
            None if matches!(resolver, ResolverConfig::Dir { .. }) => {
                return Err(fail("using nats based account resolver - the system account needs to be specified in configuration or the operator jwt"));
            }
            None => {}
        }
        Ok(())
    }
}

/// An operator JWT given inline or in a (possibly decorated) file; its signature checked.
fn read_operator(given: &str) -> Result<TrustedOperator, String> {
    let text = match std::fs::read_to_string(given) {
        Ok(t) => t,
        Err(_) if given.trim_start().starts_with(JWT_PREFIX) => given.to_string(),
        Err(e) => return Err(format!("open {given}: {e}")),
    };
    let jwt = petrel_jwt::parse_decorated(&text).ok_or("no JWT found")?;
    let claims = petrel_jwt::decode::<petrel_jwt::Operator>(jwt).map_err(|e| e.to_string())?;
    Ok(TrustedOperator {
        jwt: jwt.to_string(),
        claims,
    })
}
