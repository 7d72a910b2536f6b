//! What every listener block shares (`cluster {}`, `websocket {}`, and the top level's
//! `tls`): `listen` / `host` / `port` (`-1` for a free port) and the `tls {}` block with
//! its warnings.

use std::net::IpAddr;

use super::{Applier, ConfigError, Value, ValueKind};
use crate::conf::convert::{host_port, ip, port_number, string, type_error};
use crate::TlsOptions;

impl Applier<'_> {
    /// Applies `listen`, `host`/`net` or `port` of a listener block to `host`/`port`;
    /// `false` when `sub` is none of them.
    pub(super) fn listener_key(
        sub: &str,
        mv: &Value,
        name: &str,
        host: &mut IpAddr,
        port: &mut u16,
    ) -> Result<bool, ConfigError> {
        match sub {
            "listen" => {
                let (h, p) = host_port(mv, name)?;
                if let Some(h) = h {
                    *host = h;
                }
                *port = u16::try_from(p).unwrap_or(0);
            }
            "host" | "net" => *host = ip(string(mv, name)?, &mv.pos, name)?,
            "port" => {
                let p = match &mv.kind {
                    ValueKind::Int(p) => port_number(mv, name, *p)?,
                    _ => return Err(type_error(mv, name, "a port number")),
                };
                *port = u16::try_from(p).unwrap_or(0);
            }
            _ => return Ok(false),
        }
        Ok(true)
    }

    /// A client-side `tls {}` block (a certificate is optional), its ignored keys
    /// reported as warnings.
    pub(super) fn client_tls_block(
        &mut self,
        mv: &Value,
        name: &str,
    ) -> Result<TlsOptions, ConfigError> {
        let mut warnings = Vec::new();
        let t = crate::conf::tls::client_tls(mv, name, &mut |pos, msg| {
            warnings.push((pos.clone(), msg))
        })?;
        for (pos, msg) in warnings {
            self.warn(&pos, msg);
        }
        Ok(t)
    }

    /// A `tls {}` block, its ignored keys reported as warnings.
    pub(super) fn tls_block(&mut self, mv: &Value, name: &str) -> Result<TlsOptions, ConfigError> {
        let mut warnings = Vec::new();
        let t = crate::conf::tls::tls(mv, name, &mut |pos, msg| warnings.push((pos.clone(), msg)))?;
        for (pos, msg) in warnings {
            self.warn(&pos, msg);
        }
        Ok(t)
    }
}
