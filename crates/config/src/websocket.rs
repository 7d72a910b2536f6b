//! The `websocket {}` block as data: the WebSocket client listener, its TLS, and the
//! origin checks of the HTTP upgrade.

use std::net::{IpAddr, Ipv4Addr};
use std::time::Duration;

use crate::TlsOptions;

/// How long an upgrade may take. nats-server waits for ever by default; Petrel bounds
/// every wait a client controls.
pub const DEFAULT_HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// WebSocket client listener (`websocket {}`).
#[derive(Debug, Clone, PartialEq)]
pub struct WebSocketOptions {
    /// Interface.
    pub host: IpAddr,
    /// Port (0: a free port).
    pub port: u16,
    /// `host:port` advertised to clients (`ws_connect_urls`).
    pub advertise: Option<String>,
    /// Plain WebSocket without TLS (nats-server requires TLS unless this is set).
    pub no_tls: bool,
    /// TLS for the listener.
    pub tls: Option<TlsOptions>,
    /// Refuse upgrades whose `Origin` is not the request's host.
    pub same_origin: bool,
    /// Origins allowed (scheme://host[:port]); empty: any.
    pub allowed_origins: Vec<String>,
    /// Time a client has to complete the HTTP upgrade.
    pub handshake_timeout: Duration,
    /// Cookies whose values fill CONNECT's `jwt`, `user`, `pass` and `auth_token` when
    /// the client leaves them empty (`jwt_cookie`, `user_cookie`, `pass_cookie`,
    /// `token_cookie`).
    pub cookies: WsCookies,
    /// `authorization { user, password | token }`: WebSocket clients log in with these
    /// instead of the server's credentials (nats-server's auth override).
    pub auth: Option<crate::Auth>,
    /// `authorization { timeout }`: the auth timeout of WebSocket clients.
    pub auth_timeout: Option<Duration>,
    /// The user a WebSocket client without credentials logs in as (instead of the
    /// server's `no_auth_user`).
    pub no_auth_user: Option<String>,
}

/// Cookie names of `websocket {}`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct WsCookies {
    /// Fills `jwt`.
    pub jwt: Option<String>,
    /// Fills `user`.
    pub user: Option<String>,
    /// Fills `pass`.
    pub pass: Option<String>,
    /// Fills `auth_token`.
    pub token: Option<String>,
}

impl Default for WebSocketOptions {
    fn default() -> Self {
        Self {
            host: IpAddr::V4(Ipv4Addr::UNSPECIFIED),
            port: 0,
            advertise: None,
            no_tls: false,
            tls: None,
            same_origin: false,
            allowed_origins: Vec::new(),
            handshake_timeout: DEFAULT_HANDSHAKE_TIMEOUT,
            cookies: WsCookies::default(),
            auth: None,
            auth_timeout: None,
            no_auth_user: None,
        }
    }
}
