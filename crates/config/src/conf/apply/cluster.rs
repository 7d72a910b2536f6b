//! `cluster { ... }`, read as nats-server's `parseCluster` reads it: `name`, `listen` or
//! `host`/`port`, `routes`, `authorization`, `tls`, `advertise`, `no_advertise`,
//! `connect_retries`, ping settings; pooling and compression are accepted and a single
//! uncompressed route per peer is used (nats-server negotiates down to it).

use super::{Applier, ConfigError, Value, ValueKind};
use crate::conf::convert::{boolean, duration, string, type_error, unsigned};
use crate::{ClusterOptions, RouteUrl};

/// nats-server cluster keys Petrel accepts and does not act on.
const ACCEPTED: &[&str] = &[
    "pool_size",
    "compression",
    "accounts",
    "connect_backoff",
    "permissions",
    "write_deadline",
    "write_timeout",
    "ping_interval",
    "ping_max",
];

impl Applier<'_> {
    /// `cluster { ... }`.
    pub(super) fn cluster(&mut self, key: &str, v: &Value) -> Result<(), ConfigError> {
        let Some(map) = v.as_map() else {
            return Err(type_error(v, key, "a cluster block"));
        };
        let mut c = ClusterOptions::default();
        for e in map.entries() {
            let (sub, mv) = (e.key.to_ascii_lowercase(), &e.value);
            let name = format!("{key}.{}", e.key);
            match sub.as_str() {
                _ if Self::listener_key(&sub, mv, &name, &mut c.host, &mut c.port)? => {}
                "name" => c.name = Some(cluster_name(mv, &name)?),
                "routes" => c.routes = routes(mv, &name)?,
                "authorization" => self.route_authorization(mv, &name, &mut c)?,
                "tls" => {
                    let t = self.tls_block(mv, &name)?;
                    if t.ca_file.is_none() {
                        return Err(ConfigError::invalid(
                            &e.key_pos,
                            &name,
                            "route TLS needs ca_file to verify the other servers",
                        ));
                    }
                    c.tls = Some(t);
                }
                "advertise" | "cluster_advertise" => {
                    c.advertise = Some(string(mv, &name)?.to_string())
                }
                "no_advertise" => c.no_advertise = boolean(mv, &name)?,
                "connect_retries" => c.connect_retries = unsigned(mv, &name)?,
                _ if ACCEPTED.contains(&sub.as_str()) => self.warn(
                    &e.key_pos,
                    format!("{name} is accepted and ignored: Petrel keeps one uncompressed route per peer, with the client ping settings"),
                ),
                _ if e.used_as_variable => {}
                _ => return Err(ConfigError::unknown_field(&e.key_pos, &e.key)),
            }
        }
        self.opts.cluster = Some(c);
        Ok(())
    }

    /// `cluster { authorization { user, password, timeout } }`.
    fn route_authorization(
        &mut self,
        v: &Value,
        key: &str,
        c: &mut ClusterOptions,
    ) -> Result<(), ConfigError> {
        let Some(map) = v.as_map() else {
            return Err(type_error(v, key, "a block"));
        };
        for e in map.entries() {
            let (sub, mv) = (e.key.to_ascii_lowercase(), &e.value);
            let name = format!("{key}.{}", e.key);
            match sub.as_str() {
                "user" | "username" => c.user = Some(string(mv, &name)?.to_string()),
                "pass" | "password" => c.password = Some(string(mv, &name)?.to_string()),
                "timeout" => c.auth_timeout = duration(mv, &name)?,
                "token" | "users" | "nkey" => {
                    return Err(ConfigError::invalid(
                        &e.key_pos,
                        &name,
                        "Cluster authorization does not allow multiple users or tokens",
                    ))
                }
                _ if e.used_as_variable => {}
                _ => return Err(ConfigError::unknown_field(&e.key_pos, &e.key)),
            }
        }
        Ok(())
    }
}

/// A cluster name: no spaces (nats-server refuses them).
fn cluster_name(v: &Value, key: &str) -> Result<String, ConfigError> {
    let s = string(v, key)?;
    if s.contains(' ') {
        return Err(ConfigError::invalid(
            &v.pos,
            key,
            "cluster name cannot contain spaces or new lines",
        ));
    }
    Ok(s.to_string())
}

/// `routes: [url, ...]` or a single URL.
fn routes(v: &Value, key: &str) -> Result<Vec<RouteUrl>, ConfigError> {
    let items: Vec<&Value> = match &v.kind {
        ValueKind::Array(a) => a.iter().collect(),
        ValueKind::String(_) => vec![v],
        _ => return Err(type_error(v, key, "a list of route URLs")),
    };
    items
        .into_iter()
        .map(|item| {
            let s = string(item, key)?;
            RouteUrl::parse(s).map_err(|why| ConfigError::invalid(&item.pos, key, why))
        })
        .collect()
}

/// Parses `--routes a,b` and the like (comma-separated route URLs).
pub fn parse_route_list(s: &str) -> Result<Vec<RouteUrl>, String> {
    s.split(',')
        .map(str::trim)
        .filter(|r| !r.is_empty())
        .map(RouteUrl::parse)
        .collect()
}

#[cfg(test)]
mod tests {
    use crate::load_str;

    #[test]
    fn cluster_block() {
        let l = load_str(
            "cluster { name: medisync-cluster\n listen: 0.0.0.0:6222\n routes: [nats://nats-1:6222, nats://nats-2:6222]\n authorization { user: r, password: p, timeout: 1 }\n no_advertise: true\n pool_size: 3 }",
            "c.conf",
        )
        .unwrap();
        let c = l.options.cluster.unwrap();
        assert_eq!(c.name.as_deref(), Some("medisync-cluster"));
        assert_eq!(c.port, 6222);
        assert_eq!(c.routes.len(), 2);
        assert_eq!(c.routes[1].host, "nats-2");
        assert_eq!(c.user.as_deref(), Some("r"));
        assert!(c.no_advertise);
        assert_eq!(l.warnings.len(), 1, "{:?}", l.warnings);
        assert!(load_str("cluster { name: \"a b\" }", "c.conf").is_err());
        assert!(load_str("cluster { routes: [\"http://x:1\"] }", "c.conf").is_err());
        assert!(load_str("cluster { bogus: 1 }", "c.conf").is_err());
        let e = load_str("cluster { tls { cert_file: a, key_file: b } }", "c.conf").unwrap_err();
        assert!(e.to_string().contains("needs ca_file"), "{e}");
        let l = load_str(
            "cluster { tls { cert_file: a, key_file: b, ca_file: c, verify: true } }",
            "c.conf",
        )
        .unwrap();
        assert!(l.options.cluster.unwrap().tls.is_some());
        assert!(load_str("cluster { authorization { users: [] } }", "c.conf").is_err());
        let l = load_str("cluster { port: -1 }", "c.conf").unwrap();
        assert_eq!(l.options.cluster.unwrap().port, 0);
    }
}
