//! Typed readers of [`Value`]s for [`apply`](super::apply): strings, booleans, integers
//! (also from strings like `"1G"`), ports, `host:port` addresses, durations and sync modes,
//! each failing with a positioned [`ConfigError`] naming the key.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::time::Duration;

use super::duration::parse_go_duration;
use super::error::ConfigError;
use super::lexer::parse_int_text;
use super::value::{Pos, Value, ValueKind};
use crate::{SyncMode, DEFAULT_PORT};

/// `store_dir` given both at the top level and in `jetstream {}`.
pub(super) fn duplicate_store_dir(pos: &Pos, key: &str, other: &Pos) -> ConfigError {
    ConfigError::invalid(
        pos,
        key,
        format!("duplicate 'store_dir' configuration (also set at {other})"),
    )
}

/// Keys whose values are secrets: never echoed in an error (errors are printed and
/// logged).
fn is_secret_key(key: &str) -> bool {
    let last = key.rsplit('.').next().unwrap_or(key);
    let k = last.to_ascii_lowercase();
    ["password", "pass", "token", "seed", "jwt", "secret", "key"]
        .iter()
        .any(|s| k == *s || k.ends_with(&format!("_{s}")))
}

/// A "expected X, found Y" error for `v` (a secret's value is not shown).
pub(super) fn type_error(v: &Value, key: &str, expected: &str) -> ConfigError {
    if is_secret_key(key) {
        let found = format!("{} (value not shown)", v.type_name());
        return ConfigError::invalid(&v.pos, key, format!("expected {expected}, found {found}"));
    }
    let found = match &v.kind {
        ValueKind::String(s) => format!("a string (\"{}\")", s.escape_default()),
        ValueKind::Int(i) => format!("an integer ({i})"),
        ValueKind::Float(f) => format!("a float ({f})"),
        ValueKind::Bool(b) => format!("a boolean ({b})"),
        _ => v.type_name().to_string(),
    };
    ConfigError::invalid(&v.pos, key, format!("expected {expected}, found {found}"))
}

pub(super) fn string<'v>(v: &'v Value, key: &str) -> Result<&'v str, ConfigError> {
    v.as_str().ok_or_else(|| type_error(v, key, "a string"))
}

pub(super) fn boolean(v: &Value, key: &str) -> Result<bool, ConfigError> {
    v.as_bool()
        .ok_or_else(|| type_error(v, key, "true or false"))
}

/// An integer, also accepted as a string holding one (`"4222"`, `"1G"`).
pub(super) fn int(v: &Value, key: &str) -> Result<i64, ConfigError> {
    match &v.kind {
        ValueKind::Int(i) => Ok(*i),
        ValueKind::String(s) => parse_int_text(s).ok_or_else(|| type_error(v, key, "an integer")),
        _ => Err(type_error(v, key, "an integer")),
    }
}

/// A non-negative integer that fits `T`.
pub(super) fn unsigned<T: TryFrom<i64>>(v: &Value, key: &str) -> Result<T, ConfigError> {
    let i = int(v, key)?;
    if i < 0 {
        return Err(ConfigError::invalid(
            &v.pos,
            key,
            format!("expected a non-negative integer, found {i}"),
        ));
    }
    T::try_from(i).map_err(|_| ConfigError::invalid(&v.pos, key, format!("{i} is too big")))
}

/// A non-negative integer no larger than `max`.
pub(super) fn bounded(v: &Value, key: &str, max: u64) -> Result<usize, ConfigError> {
    let n: u64 = unsigned(v, key)?;
    if n > max {
        return Err(ConfigError::invalid(
            &v.pos,
            key,
            format!("{n} is too big (at most {max})"),
        ));
    }
    usize::try_from(n).map_err(|_| ConfigError::invalid(&v.pos, key, format!("{n} is too big")))
}

/// A storage limit: negative means unlimited (nats-server's `-1`).
pub(super) fn limit(v: &Value, key: &str) -> Result<Option<u64>, ConfigError> {
    let i = int(v, key)?;
    Ok(u64::try_from(i).ok())
}

/// A port number as nats-server reads it: -1 (random) to 65535.
pub(super) fn port_number(v: &Value, key: &str, p: i64) -> Result<i32, ConfigError> {
    if (-1..=i64::from(u16::MAX)).contains(&p) {
        Ok(p as i32)
    } else {
        Err(ConfigError::invalid(
            &v.pos,
            key,
            format!("port {p} is out of range (-1 to 65535)"),
        ))
    }
}

/// Client port: -1 picks a free port (0), 0 means the default, as in nats-server.
pub(super) fn client_port(p: i32) -> u16 {
    match p {
        -1 => 0,
        0 => DEFAULT_PORT,
        p => u16::try_from(p).unwrap_or(DEFAULT_PORT),
    }
}

/// Monitoring port: 0 disables monitoring, -1 picks a free port, as in nats-server.
pub(super) fn monitor_port(p: i32) -> Option<u16> {
    match p {
        0 => None,
        -1 => Some(0),
        p => u16::try_from(p).ok(),
    }
}

/// `host:port`, `[v6]:port`, `:port`, a port number, or a string holding one.
pub(super) fn host_port(v: &Value, key: &str) -> Result<(Option<IpAddr>, i32), ConfigError> {
    let s = match &v.kind {
        ValueKind::Int(p) => return Ok((None, port_number(v, key, *p)?)),
        ValueKind::String(s) => s.as_str(),
        _ => return Err(type_error(v, key, "a port or \"host:port\"")),
    };
    if let Ok(p) = s.trim().parse::<i64>() {
        return Ok((None, port_number(v, key, p)?));
    }
    let bad = || {
        ConfigError::invalid(
            &v.pos,
            key,
            format!("could not parse address \"{}\"", s.escape_default()),
        )
    };
    let (host, port) = if let Some(rest) = s.strip_prefix('[') {
        let (h, p) = rest.split_once(']').ok_or_else(bad)?;
        (h, p.strip_prefix(':').ok_or_else(bad)?)
    } else {
        let (h, p) = s.rsplit_once(':').ok_or_else(bad)?;
        if h.contains(':') {
            return Err(bad());
        }
        (h, p)
    };
    let port: i64 = port.parse().map_err(|_| {
        ConfigError::invalid(
            &v.pos,
            key,
            format!("could not parse port \"{}\"", port.escape_default()),
        )
    })?;
    let port = port_number(v, key, port)?;
    let host = if host.is_empty() {
        None
    } else {
        Some(ip(host, &v.pos, key)?)
    };
    Ok((host, port))
}

/// An IP address; `localhost` is the IPv4 loopback and an empty host is every interface.
pub(super) fn ip(host: &str, pos: &Pos, key: &str) -> Result<IpAddr, ConfigError> {
    let h = host.trim().trim_start_matches('[').trim_end_matches(']');
    if h.is_empty() {
        return Ok(IpAddr::V4(Ipv4Addr::UNSPECIFIED));
    }
    if h.eq_ignore_ascii_case("localhost") {
        return Ok(IpAddr::V4(Ipv4Addr::LOCALHOST));
    }
    if h == "::" {
        return Ok(IpAddr::V6(Ipv6Addr::UNSPECIFIED));
    }
    h.parse().map_err(|_| {
        ConfigError::invalid(
            pos,
            key,
            format!(
                "expected an IP address, found \"{}\" (host names are not supported)",
                host.escape_default()
            ),
        )
    })
}

/// A duration: a Go duration string, or a number of seconds. An unquoted `2m` (which
/// nats.conf reads as the integer 2,000,000) is taken as the duration it looks like.
pub(super) fn duration(v: &Value, key: &str) -> Result<Duration, ConfigError> {
    let bad = |msg: String| ConfigError::invalid(&v.pos, key, msg);
    match &v.kind {
        ValueKind::String(s) => parse_go_duration(s).map_err(bad),
        ValueKind::Int(i) => {
            if let Some(d) = v.raw.as_deref().and_then(|r| parse_go_duration(r).ok()) {
                return Ok(d);
            }
            u64::try_from(*i)
                .map(Duration::from_secs)
                .map_err(|_| bad(format!("duration must not be negative, found {i}")))
        }
        ValueKind::Float(f) => Duration::try_from_secs_f64(*f).map_err(|_| {
            bad(format!(
                "expected a non-negative number of seconds, found {f}"
            ))
        }),
        _ => Err(type_error(
            v,
            key,
            "a duration such as \"2m\" or \"30s\", or a number of seconds",
        )),
    }
}

/// `sync_interval`: `"always"` or a positive duration.
pub(super) fn sync_mode(v: &Value, key: &str) -> Result<SyncMode, ConfigError> {
    if v.as_str().is_some_and(|s| s.eq_ignore_ascii_case("always")) {
        return Ok(SyncMode::Always);
    }
    let d = duration(v, key)?;
    if d.is_zero() {
        return Err(ConfigError::invalid(
            &v.pos,
            key,
            "expected \"always\" or a positive duration",
        ));
    }
    Ok(SyncMode::Interval(d))
}

/// A JetStream domain: empty for none; else it must make `$JS.<domain>.API.>` a valid
/// subject and hold no `.`, `*` or `>` (nats-server's checks and texts).
pub(super) fn domain(v: &Value, key: &str) -> Result<Option<String>, ConfigError> {
    let d = string(v, key)?;
    if d.is_empty() {
        return Ok(None);
    }
    let derived = format!("$JS.{d}.API.>");
    if !petrel_subject::is_valid_subject(derived.as_bytes()) {
        return Err(ConfigError::invalid(
            &v.pos,
            key,
            format!("invalid domain name: derived {derived:?} is not a valid subject"),
        ));
    }
    if d.contains(['.', '*', '>']) {
        return Err(ConfigError::invalid(
            &v.pos,
            key,
            "invalid domain name: may not contain ., * or >",
        ));
    }
    Ok(Some(d.to_string()))
}
