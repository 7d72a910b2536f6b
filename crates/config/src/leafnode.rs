//! The `leafnodes {}` block as data: the leafnode listener (hub role) with its
//! authorization, and the remotes this server solicits (spoke role).

use std::net::{IpAddr, Ipv4Addr};
use std::path::PathBuf;
use std::time::Duration;

use crate::cluster::parse_url;

/// nats-server's default leafnode port (also the port of a remote URL without one).
pub const DEFAULT_LEAFNODE_PORT: u16 = 7422;

/// `x.y.z` (a leading `v` and a `-suffix` allowed) as numbers: nats-server versions as
/// `min_version` and a leaf's CONNECT give them.
pub fn parse_version(s: &str) -> Option<(u32, u32, u32)> {
    let mut it = s
        .trim_start_matches('v')
        .split(['.', '-'])
        .map(|p| p.parse().ok());
    Some((it.next()??, it.next()??, it.next()??))
}

/// A remote's URL: `nats-leaf://`, `nats://`, `tls://`, `ws://` or `wss://`.
#[derive(Clone, PartialEq, Eq)]
pub struct LeafUrl {
    /// `ws://` or `wss://`: the leaf protocol inside WebSocket frames.
    pub websocket: bool,
    /// `tls://` or `wss://`: TLS even if the hub does not ask for it.
    pub tls: bool,
    /// Host name or address.
    pub host: String,
    /// Port (7422 when the URL has none).
    pub port: u16,
    /// User (or token, without a password) from the URL.
    pub user: Option<String>,
    /// Password from the URL.
    pub pass: Option<String>,
    /// WebSocket path prefix (`/leafnode` is appended).
    pub path: String,
}

impl LeafUrl {
    /// Parses a remote URL; the error says what is wrong with it.
    pub fn parse(s: &str) -> Result<Self, String> {
        let schemes = ["nats-leaf", "nats", "tls", "ws", "wss", "leafnode"];
        let u = parse_url(s, "leafnode", &schemes, DEFAULT_LEAFNODE_PORT)?;
        Ok(Self {
            websocket: u.scheme.starts_with("ws"),
            tls: u.scheme == "tls" || u.scheme == "wss",
            host: u.host,
            port: u.port,
            user: u.user,
            pass: u.pass,
            path: u.path,
        })
    }

    /// `host:port`, for connecting, logs and `/varz`.
    pub fn host_port(&self) -> String {
        crate::join_host_port(&self.host, self.port)
    }
}

impl std::fmt::Debug for LeafUrl {
    /// Never shows credentials.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let scheme = if self.websocket { "ws" } else { "nats-leaf" };
        match &self.user {
            Some(_) => write!(f, "{scheme}://***@{}", self.host_port()),
            None => write!(f, "{scheme}://{}", self.host_port()),
        }
    }
}

/// One `remotes` entry: a hub this server connects to, bound to one local account.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct LeafRemote {
    /// The hub's URLs, tried in turn.
    pub urls: Vec<LeafUrl>,
    /// The local account the connection is bound to (`$G` when unset).
    pub account: Option<String>,
    /// A `.creds` file (user JWT and seed) to sign the hub's nonce with.
    pub credentials: Option<PathBuf>,
    /// A user nkey seed to sign the hub's nonce with.
    pub nkey_seed: Option<String>,
    /// TLS for this remote.
    pub tls: Option<crate::TlsOptions>,
    /// This side acts as the hub on the connection.
    pub hub: bool,
    /// Subjects not received from the hub.
    pub deny_imports: Vec<String>,
    /// Subjects not sent to the hub.
    pub deny_exports: Vec<String>,
    /// Keep the URLs in the configured order.
    pub no_randomize: bool,
    /// Ask the hub not to expect masked WebSocket frames.
    pub ws_no_masking: bool,
}

/// A user of the leafnode listener's own authorization (`users: [...]`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LeafUser {
    /// User name.
    pub user: String,
    /// Password.
    pub password: String,
    /// Account the leaf is bound to (`$G` when unset).
    pub account: Option<String>,
}

/// Leafnode settings (`leafnodes {}`).
#[derive(Debug, Clone, PartialEq)]
pub struct LeafnodeOptions {
    /// Interface of the leafnode listener.
    pub host: IpAddr,
    /// Listener port; `None`: no listener (only remotes).
    pub port: Option<u16>,
    /// `host[:port]` told to leafs and route peers.
    pub advertise: Option<String>,
    /// Do not gossip this server's leafnode URL.
    pub no_advertise: bool,
    /// The single user leafs must log in as.
    pub user: Option<String>,
    /// Its password.
    pub password: Option<String>,
    /// The account that user (or, without any auth, every leaf) is bound to.
    pub account: Option<String>,
    /// Several users, each bound to an account.
    pub users: Vec<LeafUser>,
    /// Time a leaf has to send CONNECT.
    pub auth_timeout: Duration,
    /// TLS on the listener.
    pub tls: Option<crate::TlsOptions>,
    /// Hubs to connect to.
    pub remotes: Vec<LeafRemote>,
    /// Wait before reconnecting a remote.
    pub reconnect: Duration,
    /// Refuse leafs older than this version (`major.minor.patch`).
    pub min_version: Option<String>,
}

impl Default for LeafnodeOptions {
    fn default() -> Self {
        Self {
            host: IpAddr::V4(Ipv4Addr::UNSPECIFIED),
            port: None,
            advertise: None,
            no_advertise: false,
            user: None,
            password: None,
            account: None,
            users: Vec::new(),
            auth_timeout: Duration::from_secs(2),
            tls: None,
            remotes: Vec::new(),
            reconnect: Duration::from_secs(1),
            min_version: None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn leaf_urls() {
        let u = LeafUrl::parse("nats-leaf://u:p@hub:7000").unwrap();
        assert_eq!((u.host.as_str(), u.port, u.websocket), ("hub", 7000, false));
        assert_eq!(format!("{u:?}"), "nats-leaf://***@hub:7000");
        let u = LeafUrl::parse("ws://127.0.0.1/base/").unwrap();
        assert_eq!(
            (u.port, u.websocket, u.path.as_str()),
            (7422, true, "/base")
        );
        assert!(LeafUrl::parse("wss://h:1").unwrap().tls);
        assert_eq!(LeafUrl::parse("hub").unwrap().port, 7422);
        for bad in ["http://a:1", "nats://:1", "nats://a:0", "ws://[::1"] {
            assert!(LeafUrl::parse(bad).is_err(), "{bad}");
        }
    }
}
