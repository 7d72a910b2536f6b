//! JSON bodies of `INFO` (server to client) and `CONNECT` (client to server).

use serde::{Deserialize, Serialize};

/// The `INFO` JSON, fields in nats-server's order.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq, Default)]
pub struct ServerInfo {
    /// Server id: 56 characters, starting with `N`.
    pub server_id: String,
    /// Server name (defaults to the id).
    pub server_name: String,
    /// nats-server feature level advertised to clients.
    pub version: String,
    /// Protocol version (1).
    pub proto: u8,
    /// Toolchain (nats-server puts its Go version here).
    pub go: String,
    /// Listen host.
    pub host: String,
    /// Listen port.
    pub port: u16,
    /// Headers supported.
    pub headers: bool,
    /// Clients must authenticate.
    #[serde(default, skip_serializing_if = "is_false")]
    pub auth_required: bool,
    /// Clients must use TLS.
    #[serde(default, skip_serializing_if = "is_false")]
    pub tls_required: bool,
    /// Client certificates are verified.
    #[serde(default, skip_serializing_if = "is_false")]
    pub tls_verify: bool,
    /// Maximum payload accepted.
    pub max_payload: usize,
    /// JetStream enabled.
    #[serde(default, skip_serializing_if = "is_false")]
    pub jetstream: bool,
    /// This connection's id.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub client_id: u64,
    /// This connection's address as seen by the server.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub client_ip: String,
    /// The JetStream API level the server implements (2.11+).
    #[serde(default, skip_serializing_if = "is_zero_u32")]
    pub api_lvl: u32,
    /// Nonce to sign for nkey authentication.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub nonce: String,
    /// Lame duck mode.
    #[serde(default, skip_serializing_if = "is_false")]
    pub ldm: bool,
    /// Client URLs of every node of the cluster (gossip: clients fail over to them); a
    /// WebSocket client is told the nodes' WebSocket URLs here.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub connect_urls: Vec<String>,
    /// The cluster's name.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub cluster: String,
}

fn is_false(b: &bool) -> bool {
    !*b
}

fn is_zero(n: &u64) -> bool {
    *n == 0
}

fn is_zero_u32(n: &u32) -> bool {
    *n == 0
}

/// The `CONNECT` JSON. Absent fields take nats-server's defaults: verbose, pedantic and
/// echo are true unless the client says otherwise. Its `Debug` hides the credentials.
#[derive(Clone, Deserialize, PartialEq, Eq)]
#[serde(default)]
pub struct ConnectInfo {
    /// Answer every op with `+OK`.
    pub verbose: bool,
    /// Strict checks (wildcards in publish subjects).
    pub pedantic: bool,
    /// Client requires TLS.
    pub tls_required: bool,
    /// Receive own publishes.
    pub echo: bool,
    /// Authentication token.
    pub auth_token: Option<String>,
    /// User name.
    pub user: Option<String>,
    /// Password.
    pub pass: Option<String>,
    /// Client name (for logs and monitoring).
    pub name: Option<String>,
    /// Client library language.
    pub lang: Option<String>,
    /// Client library version.
    pub version: Option<String>,
    /// Protocol level: 0 or 1.
    pub protocol: i64,
    /// Client understands HMSG.
    pub headers: bool,
    /// Client wants 503 status messages for requests without responders.
    pub no_responders: bool,
    /// nkey public key.
    pub nkey: Option<String>,
    /// Signature of the nonce.
    pub sig: Option<String>,
    /// User JWT.
    pub jwt: Option<String>,
}

impl std::fmt::Debug for ConnectInfo {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let hidden = |v: &Option<String>| v.as_ref().map(|_| "[REDACTED]");
        f.debug_struct("ConnectInfo")
            .field("verbose", &self.verbose)
            .field("pedantic", &self.pedantic)
            .field("tls_required", &self.tls_required)
            .field("echo", &self.echo)
            .field("auth_token", &hidden(&self.auth_token))
            .field("user", &self.user)
            .field("pass", &hidden(&self.pass))
            .field("name", &self.name)
            .field("lang", &self.lang)
            .field("version", &self.version)
            .field("protocol", &self.protocol)
            .field("headers", &self.headers)
            .field("no_responders", &self.no_responders)
            .field("nkey", &self.nkey)
            .field("sig", &hidden(&self.sig))
            .field("jwt", &hidden(&self.jwt))
            .finish()
    }
}

impl Default for ConnectInfo {
    fn default() -> Self {
        Self {
            verbose: true,
            pedantic: true,
            tls_required: false,
            echo: true,
            auth_token: None,
            user: None,
            pass: None,
            name: None,
            lang: None,
            version: None,
            protocol: 0,
            headers: false,
            no_responders: false,
            nkey: None,
            sig: None,
            jwt: None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn connect_defaults_are_verbose_pedantic_echo() {
        let c: ConnectInfo = serde_json::from_str("{}").unwrap();
        assert!(c.verbose && c.pedantic && c.echo && !c.headers);
        let c: ConnectInfo =
            serde_json::from_str(r#"{"verbose":false,"pedantic":false,"headers":true,"x":1}"#)
                .unwrap();
        assert!(!c.verbose && !c.pedantic && c.headers);
    }

    #[test]
    fn info_omits_empty_fields() {
        let info = ServerInfo {
            server_id: "N".into(),
            version: "2.10.0".into(),
            proto: 1,
            headers: true,
            max_payload: 1024,
            ..ServerInfo::default()
        };
        let s = serde_json::to_string(&info).unwrap();
        assert!(!s.contains("auth_required"));
        assert!(!s.contains("client_id"));
        assert!(s.starts_with(r#"{"server_id":"N","server_name":"","version":"2.10.0""#));
    }
}
