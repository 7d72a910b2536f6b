//! The `tls { cert_file, key_file, ca_file, verify, timeout, handshake_first }` block.

use std::path::PathBuf;
use std::time::Duration;

use super::convert::{boolean, duration, string, type_error};
use super::error::ConfigError;
use super::value::{Value, ValueKind};
use crate::{HandshakeFirst, TlsOptions};

/// nats-server's default wait for a ClientHello with `handshake_first: auto`.
const AUTO_FALLBACK: Duration = Duration::from_millis(50);

/// TLS keys nats-server has that Petrel accepts and ignores (rustls picks safe defaults).
const IGNORED: &[&str] = &[
    "cipher_suites",
    "curve_preferences",
    "min_version",
    "insecure",
    "pinned_certs",
];

/// Parse a `tls {}` block; `warn` receives keys that are accepted but ignored.
pub(super) fn tls(
    v: &Value,
    key: &str,
    warn: &mut dyn FnMut(&super::value::Pos, String),
) -> Result<TlsOptions, ConfigError> {
    tls_as(v, key, warn, false)
}

/// Parse the `tls {}` block of a connection this server dials (a leafnode remote): a
/// `ca_file` alone will do (no client certificate).
pub(super) fn client_tls(
    v: &Value,
    key: &str,
    warn: &mut dyn FnMut(&super::value::Pos, String),
) -> Result<TlsOptions, ConfigError> {
    tls_as(v, key, warn, true)
}

fn tls_as(
    v: &Value,
    key: &str,
    warn: &mut dyn FnMut(&super::value::Pos, String),
    client: bool,
) -> Result<TlsOptions, ConfigError> {
    let Some(map) = v.as_map() else {
        return Err(type_error(v, key, "a tls block"));
    };
    let (mut cert, mut keyf) = (None, None);
    let mut t = TlsOptions::new("", "");
    for e in map.entries() {
        let name = format!("{key}.{}", e.key);
        let lower = e.key.to_ascii_lowercase();
        match lower.as_str() {
            "cert_file" => cert = Some(PathBuf::from(string(&e.value, &name)?)),
            "key_file" => keyf = Some(PathBuf::from(string(&e.value, &name)?)),
            "ca_file" => t.ca_file = Some(PathBuf::from(string(&e.value, &name)?)),
            "verify" => t.verify = boolean(&e.value, &name)?,
            "verify_and_map" => {
                t.verify = boolean(&e.value, &name)?;
                warn(
                    &e.key_pos,
                    format!(
                        "{name}: mapping certificates to users is not supported yet; verify only"
                    ),
                );
            }
            "timeout" => t.timeout = duration(&e.value, &name)?,
            "handshake_first" | "first" | "immediate" => {
                t.handshake_first = handshake_first(&e.value, &name)?
            }
            _ if IGNORED.contains(&lower.as_str()) => {
                warn(
                    &e.key_pos,
                    format!("{name} is accepted and ignored (rustls defaults apply)"),
                );
            }
            _ if e.used_as_variable => {}
            other => {
                return Err(ConfigError::invalid(
                    &e.key_pos,
                    &name,
                    format!("unknown tls key '{other}'"),
                ))
            }
        }
    }
    match (cert, keyf) {
        (Some(c), Some(k)) => {
            t.cert_file = c;
            t.key_file = k;
            Ok(t)
        }
        (None, None) if client && t.ca_file.is_some() => Ok(t),
        _ => Err(ConfigError::invalid(
            &v.pos,
            key,
            "tls needs both cert_file and key_file",
        )),
    }
}

/// `true | false | "auto" | "<duration>"` (a duration means auto with that wait).
fn handshake_first(v: &Value, key: &str) -> Result<HandshakeFirst, ConfigError> {
    match &v.kind {
        ValueKind::Bool(true) => Ok(HandshakeFirst::On),
        ValueKind::Bool(false) => Ok(HandshakeFirst::Off),
        ValueKind::String(s) if s.eq_ignore_ascii_case("auto") => {
            Ok(HandshakeFirst::Auto(AUTO_FALLBACK))
        }
        ValueKind::String(_) => Ok(HandshakeFirst::Auto(duration(v, key)?)),
        _ => Err(type_error(v, key, "true, false, \"auto\" or a duration")),
    }
}

#[cfg(test)]
mod tests {
    use crate::{load_str, HandshakeFirst};
    use std::time::Duration;

    #[test]
    fn tls_block_forms() {
        let l = load_str(
            "tls { cert_file: /c.pem, key_file: /k.pem, ca_file: /ca.pem, verify: true, timeout: 3, handshake_first: auto, cipher_suites: [] }",
            "t.conf",
        )
        .unwrap();
        let t = l.options.tls.unwrap();
        assert!(t.verify);
        assert_eq!(t.timeout, Duration::from_secs(3));
        assert_eq!(
            t.handshake_first,
            HandshakeFirst::Auto(Duration::from_millis(50))
        );
        assert_eq!(l.warnings.len(), 1, "{:?}", l.warnings);
        let t = load_str(
            "tls { cert_file: c, key_file: k, handshake_first: true }",
            "t.conf",
        )
        .unwrap()
        .options
        .tls
        .unwrap();
        assert_eq!(t.handshake_first, HandshakeFirst::On);
        assert!(load_str("tls { cert_file: c }", "t.conf").is_err());
        assert!(
            load_str("tls { cert_file: c, key_file: k, verify: true }", "t.conf").is_err(),
            "verify needs ca_file"
        );
        assert!(load_str("tls { cert_file: c, key_file: k, bogus: 1 }", "t.conf").is_err());
    }
}
