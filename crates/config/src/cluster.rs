//! The `cluster {}` block as data: the route listener, the routes to solicit, route
//! authorization and TLS, and what is advertised to clients.

use std::net::{IpAddr, Ipv4Addr};
use std::time::Duration;

/// nats-server's default cluster port.
pub const DEFAULT_CLUSTER_PORT: u16 = 6222;

/// A route to solicit: `nats://[user:pass@]host:port` (also `nats-route://`, `tls://`).
#[derive(Clone, PartialEq, Eq)]
pub struct RouteUrl {
    /// Host name or address, as written (brackets removed from IPv6 literals).
    pub host: String,
    /// Port (6222 when the URL has none).
    pub port: u16,
    /// Credentials from the URL, sent in the route's CONNECT.
    pub user: Option<String>,
    /// Password from the URL.
    pub pass: Option<String>,
}

impl RouteUrl {
    /// Parses a route URL; the error says what is wrong with it.
    pub fn parse(s: &str) -> Result<Self, String> {
        let u = parse_url(
            s,
            "route",
            &["nats", "nats-route", "tls", "route"],
            DEFAULT_CLUSTER_PORT,
        )?;
        Ok(Self {
            host: u.host,
            port: u.port,
            user: u.user,
            pass: u.pass,
        })
    }

    /// `host:port`, for connecting and logs.
    pub fn host_port(&self) -> String {
        join_host_port(&self.host, self.port)
    }
}

/// A server URL's parts (routes and leafnode remotes share the syntax).
pub(crate) struct UrlParts {
    pub scheme: String,
    pub host: String,
    pub port: u16,
    pub user: Option<String>,
    pub pass: Option<String>,
    /// The path after `host:port` (WebSocket remotes), without a trailing `/`.
    pub path: String,
}

/// Parses `scheme://[user[:pass]@]host[:port][/path]` for one of `schemes` (a missing
/// scheme is the first), `what` naming the URL in errors.
pub(crate) fn parse_url(
    s: &str,
    what: &str,
    schemes: &[&str],
    default_port: u16,
) -> Result<UrlParts, String> {
    let s = s.trim();
    let (scheme, rest) = match s.split_once("://") {
        Some((scheme, rest)) => {
            let scheme = scheme.to_ascii_lowercase();
            if !schemes.contains(&scheme.as_str()) {
                return Err(format!("unsupported {what} URL scheme \"{scheme}\""));
            }
            (scheme, rest)
        }
        None => (schemes[0].to_string(), s),
    };
    let (rest, path) = match rest.find('/') {
        Some(i) => (&rest[..i], rest[i..].trim_end_matches('/')),
        None => (rest, ""),
    };
    let (creds, hostport) = match rest.rsplit_once('@') {
        Some((c, h)) => (Some(c), h),
        None => (None, rest),
    };
    let (user, pass) = match creds {
        Some(c) => match c.split_once(':') {
            Some((u, p)) => (Some(u.to_string()), Some(p.to_string())),
            None => (Some(c.to_string()), None),
        },
        None => (None, None),
    };
    let (host, port) = if let Some(r) = hostport.strip_prefix('[') {
        let (h, p) = r
            .split_once(']')
            .ok_or(format!("unclosed '[' in {what} URL"))?;
        (h, p.strip_prefix(':'))
    } else {
        match hostport.rsplit_once(':') {
            Some((h, p)) => (h, Some(p)),
            None => (hostport, None),
        }
    };
    if host.is_empty() {
        return Err(format!("{what} URL \"{s}\" has no host"));
    }
    let port = match port {
        Some(p) => p
            .parse::<u16>()
            .ok()
            .filter(|p| *p > 0)
            .ok_or_else(|| format!("invalid port in {what} URL \"{s}\""))?,
        None => default_port,
    };
    Ok(UrlParts {
        scheme,
        host: host.to_string(),
        port,
        user,
        pass,
        path: path.to_string(),
    })
}

/// `host[:port]` (an advertise address, a gossiped URL) split: brackets of an IPv6
/// literal removed, the port when there is a valid one.
pub fn split_host_port(s: &str) -> (String, Option<u16>) {
    match s.rsplit_once(':') {
        Some((h, p)) if !h.contains(':') || h.ends_with(']') => {
            (h.trim_matches(['[', ']']).to_string(), p.parse().ok())
        }
        _ => (s.trim_matches(['[', ']']).to_string(), None),
    }
}

/// `host:port`, bracketing an IPv6 literal (`[::1]:6222`).
pub fn join_host_port(host: &str, port: u16) -> String {
    if host.contains(':') {
        format!("[{host}]:{port}")
    } else {
        format!("{host}:{port}")
    }
}

impl std::fmt::Debug for RouteUrl {
    /// Never shows the password.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.user {
            Some(u) => write!(f, "nats://{u}:***@{}", self.host_port()),
            None => write!(f, "nats://{}", self.host_port()),
        }
    }
}

/// Route settings (`cluster {}`, `--cluster`, `--routes`).
#[derive(Debug, Clone, PartialEq)]
pub struct ClusterOptions {
    /// Cluster name; routes with another name are refused. `None`: the first peer's name
    /// is taken (a dynamic name, as nats-server).
    pub name: Option<String>,
    /// Interface for route connections.
    pub host: IpAddr,
    /// Route port (0: a free port).
    pub port: u16,
    /// Routes to solicit.
    pub routes: Vec<RouteUrl>,
    /// Credentials peers must send (`authorization { user, password }`).
    pub user: Option<String>,
    /// Password peers must send.
    pub password: Option<String>,
    /// Time a peer has to send CONNECT.
    pub auth_timeout: Duration,
    /// TLS on every route, both ways (the certificate serves as server and client
    /// certificate; `ca_file` verifies peers).
    pub tls: Option<crate::TlsOptions>,
    /// `host:port` peers and clients are told to use for this node.
    pub advertise: Option<String>,
    /// Do not tell clients about the other nodes' client URLs.
    pub no_advertise: bool,
    /// Extra attempts to connect a route learned through gossip (explicit routes are
    /// tried until they connect, as in nats-server).
    pub connect_retries: u32,
}

impl Default for ClusterOptions {
    fn default() -> Self {
        Self {
            name: None,
            host: IpAddr::V4(Ipv4Addr::UNSPECIFIED),
            port: DEFAULT_CLUSTER_PORT,
            routes: Vec::new(),
            user: None,
            password: None,
            auth_timeout: Duration::from_secs(2),
            tls: None,
            advertise: None,
            no_advertise: false,
            connect_retries: 0,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn route_urls() {
        let u = RouteUrl::parse("nats://ruser:T0p$ecret@nats-1:6222").unwrap();
        assert_eq!((u.host.as_str(), u.port), ("nats-1", 6222));
        assert_eq!(u.user.as_deref(), Some("ruser"));
        assert_eq!(u.pass.as_deref(), Some("T0p$ecret"));
        assert_eq!(format!("{u:?}"), "nats://ruser:***@nats-1:6222");
        let u = RouteUrl::parse("nats-route://[::1]:7000/").unwrap();
        assert_eq!(u.host_port(), "[::1]:7000");
        assert_eq!(RouteUrl::parse("127.0.0.1").unwrap().port, 6222);
        assert_eq!(split_host_port("h:7422"), ("h".into(), Some(7422)));
        assert_eq!(split_host_port("[::1]:7422"), ("::1".into(), Some(7422)));
        assert_eq!(split_host_port("::1"), ("::1".into(), None));
        assert_eq!(split_host_port("h"), ("h".into(), None));
        for bad in [
            "http://a:1",
            "nats://:1",
            "nats://a:0",
            "nats://a:x",
            "nats://[::1",
        ] {
            assert!(RouteUrl::parse(bad).is_err(), "{bad}");
        }
    }
}
