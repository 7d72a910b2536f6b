//! The [`Options`] struct, its defaults (nats-server 2.9 defaults) and validation.

use std::net::{IpAddr, Ipv4Addr};
use std::path::PathBuf;
use std::time::Duration;

/// Default client port, as nats-server.
pub const DEFAULT_PORT: u16 = 4222;
/// Default maximum payload (1 MiB).
pub const DEFAULT_MAX_PAYLOAD: usize = 1024 * 1024;
/// Default maximum control line (4 KiB).
pub const DEFAULT_MAX_CONTROL_LINE: usize = 4096;
/// Default per-connection outbound buffer limit (64 MiB).
pub const DEFAULT_MAX_PENDING: usize = 64 * 1024 * 1024;
/// Default maximum number of client connections.
pub const DEFAULT_MAX_CONNECTIONS: usize = 64 * 1024;

/// How the stream store makes appends durable.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SyncMode {
    /// fsync before every PubAck (group commit batches concurrent appends). Petrel's default.
    Always,
    /// Acknowledge after the write and fsync on this timer (nats-server's default mode).
    Interval(Duration),
}

/// JetStream settings (`-js`, `-sd`, `jetstream {}`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JetStreamOptions {
    /// Directory holding the stream store.
    pub store_dir: PathBuf,
    /// Memory storage limit in bytes (`None` = unlimited).
    pub max_memory: Option<u64>,
    /// File storage limit in bytes (`None` = unlimited).
    pub max_file: Option<u64>,
    /// Durability mode.
    pub sync: SyncMode,
    /// The JetStream domain (`domain`): clients reach this JetStream at
    /// `$JS.<domain>.API` too, and PubAcks and stream infos name it.
    pub domain: Option<String>,
    /// Refuse JetStream API requests with fields they do not have (`strict`; nats-server
    /// 2.12+'s default is on).
    pub strict: bool,
}

impl Default for JetStreamOptions {
    fn default() -> Self {
        Self {
            store_dir: PathBuf::from("./data"),
            max_memory: None,
            max_file: None,
            sync: SyncMode::Always,
            domain: None,
            strict: true,
        }
    }
}

/// When the TLS handshake happens relative to the server's INFO.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum HandshakeFirst {
    /// INFO in plain text first, then the client upgrades (the NATS default).
    #[default]
    Off,
    /// TLS before anything else (clients' `tls_first`).
    On,
    /// Wait this long for a TLS ClientHello; if none comes, send INFO first.
    Auto(Duration),
}

/// Client TLS (`tls {}` / `--tls...`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsOptions {
    /// Server certificate chain (PEM).
    pub cert_file: PathBuf,
    /// Server private key (PEM).
    pub key_file: PathBuf,
    /// CA certificates for verifying client certificates (PEM).
    pub ca_file: Option<PathBuf>,
    /// Require and verify a client certificate (mutual TLS).
    pub verify: bool,
    /// Handshake timeout.
    pub timeout: Duration,
    /// Handshake before INFO.
    pub handshake_first: HandshakeFirst,
}

impl TlsOptions {
    /// TLS with a certificate and key and nats-server's defaults otherwise.
    pub fn new(cert_file: impl Into<PathBuf>, key_file: impl Into<PathBuf>) -> Self {
        Self {
            cert_file: cert_file.into(),
            key_file: key_file.into(),
            ca_file: None,
            verify: false,
            timeout: Duration::from_secs(2),
            handshake_first: HandshakeFirst::Off,
        }
    }
}

/// Client authentication configured for the server.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum Auth {
    /// Anyone may connect.
    #[default]
    None,
    /// A single user and password (`--user/--pass`).
    UserPass {
        /// User name.
        user: String,
        /// Password, plain text or a bcrypt hash.
        pass: String,
    },
    /// A single token (`--auth`).
    Token(String),
    /// A list of users (`authorization { users: [...] }`).
    Users(Vec<User>),
}

impl Auth {
    /// Whether clients must authenticate.
    pub fn required(&self) -> bool {
        !matches!(self, Auth::None)
    }
}

/// One entry of `authorization { users: [...] }`: a user with a password, or an nkey user.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct User {
    /// User name (for an nkey user, its public key).
    pub user: String,
    /// Password, plain text or a bcrypt hash (`None` when the entry has none).
    pub password: Option<String>,
    /// nkey public key (`U...`): the client proves it holds the seed by signing the nonce.
    pub nkey: Option<String>,
    /// This user's permissions (`None`: the `default_permissions`, else unrestricted).
    pub permissions: Option<crate::Permissions>,
    /// The account the user belongs to (`None`: the global account `$G`).
    pub account: Option<String>,
}

/// Every setting the server runs with.
#[derive(Debug, Clone, PartialEq)]
pub struct Options {
    /// Server name (`-n`); defaults to the server id when `None`.
    pub server_name: Option<String>,
    /// `server_tags`: this server's tags (lower case), matched by JetStream's placement.
    pub server_tags: Vec<String>,
    /// Interface to listen on (`-a`).
    pub host: IpAddr,
    /// Client port (`-p`); 0 picks a free port (`-p -1` on the command line).
    pub port: u16,
    /// Monitoring HTTP port (`-m`), served by the monitoring layer.
    pub http_port: Option<u16>,
    /// Monitoring HTTP interface (`http: host:port`); `None` means the same as `host`, as
    /// in nats-server.
    pub http_host: Option<IpAddr>,
    /// Maximum payload of a single message.
    pub max_payload: usize,
    /// Maximum length of a protocol control line.
    pub max_control_line: usize,
    /// Maximum bytes queued for one connection before it is closed as a slow consumer.
    pub max_pending: usize,
    /// Maximum number of concurrent client connections.
    pub max_connections: usize,
    /// Maximum subscriptions per connection (0 = unlimited).
    pub max_subscriptions: usize,
    /// Interval between server PINGs.
    pub ping_interval: Duration,
    /// Outstanding PINGs allowed before the connection is stale.
    pub ping_max: u32,
    /// Time a client has to send CONNECT when authentication is required.
    pub auth_timeout: Duration,
    /// A blocked write longer than this closes the connection as a slow consumer.
    pub write_deadline: Duration,
    /// Authentication.
    pub auth: Auth,
    /// Permissions for users that have none of their own (`authorization { default_permissions }`).
    pub default_permissions: Option<crate::Permissions>,
    /// Client TLS, when enabled.
    pub tls: Option<TlsOptions>,
    /// JetStream, when enabled.
    pub jetstream: Option<JetStreamOptions>,
    /// Configured accounts (`accounts {}`); their users are in [`Auth::Users`].
    pub accounts: Vec<crate::AccountConfig>,
    /// The user a client without credentials is logged in as (`no_auth_user`).
    pub no_auth_user: Option<String>,
    /// The system account (`system_account`; `$SYS` when unset).
    pub system_account: Option<String>,
    /// Operator (JWT) mode: `operator`, `resolver`, `resolver_preload`.
    pub operator: Option<crate::OperatorMode>,
    /// Routes to other nodes (`cluster {}`), when clustering is on.
    pub cluster: Option<crate::ClusterOptions>,
    /// The WebSocket client listener (`websocket {}`), when on.
    pub websocket: Option<crate::WebSocketOptions>,
    /// Leafnodes (`leafnodes {}`): the listener and the remotes.
    pub leafnodes: Option<crate::LeafnodeOptions>,
    /// Debug logging (`-D`).
    pub debug: bool,
    /// Protocol tracing (`-V`).
    pub trace: bool,
    /// Log file (`-l`).
    pub log_file: Option<PathBuf>,
    /// PID file (`-P`).
    pub pid_file: Option<PathBuf>,
    /// How long shutdown waits for connections to flush what they have queued.
    pub shutdown_grace: Duration,
    /// Lame-duck mode: total time over which clients are closed (`lame_duck_duration`).
    pub lame_duck_duration: Duration,
    /// Lame-duck mode: wait before the first client is closed (`lame_duck_grace_period`).
    pub lame_duck_grace_period: Duration,
    /// Write `<exe>_<pid>.ports` with the listen URLs here (`--ports_file_dir`).
    pub ports_file_dir: Option<PathBuf>,
}

impl Default for Options {
    fn default() -> Self {
        Self {
            server_name: None,
            server_tags: Vec::new(),
            host: IpAddr::V4(Ipv4Addr::UNSPECIFIED),
            port: DEFAULT_PORT,
            http_port: None,
            http_host: None,
            max_payload: DEFAULT_MAX_PAYLOAD,
            max_control_line: DEFAULT_MAX_CONTROL_LINE,
            max_pending: DEFAULT_MAX_PENDING,
            max_connections: DEFAULT_MAX_CONNECTIONS,
            max_subscriptions: 0,
            ping_interval: Duration::from_secs(120),
            ping_max: 2,
            auth_timeout: Duration::from_secs(2),
            write_deadline: Duration::from_secs(10),
            auth: Auth::None,
            default_permissions: None,
            tls: None,
            jetstream: None,
            accounts: Vec::new(),
            no_auth_user: None,
            system_account: None,
            operator: None,
            cluster: None,
            websocket: None,
            leafnodes: None,
            debug: false,
            trace: false,
            log_file: None,
            pid_file: None,
            shutdown_grace: Duration::from_secs(5),
            lame_duck_duration: Duration::from_secs(120),
            lame_duck_grace_period: Duration::from_secs(10),
            ports_file_dir: None,
        }
    }
}

/// A setting that cannot be used.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum OptionsError {
    /// max_payload must be positive and fit under max_pending.
    #[error("max_payload ({max_payload}) must be between 1 and max_pending ({max_pending})")]
    MaxPayload {
        /// Configured max_payload.
        max_payload: usize,
        /// Configured max_pending.
        max_pending: usize,
    },
    /// max_control_line must be positive.
    #[error("max_control_line must be positive")]
    MaxControlLine,
    /// ping_interval must be positive.
    #[error("ping_interval must be positive")]
    PingInterval,
    /// TLS `verify` needs a CA file to verify client certificates against.
    #[error("tls verify requires a ca_file")]
    TlsVerifyWithoutCa,
    /// A user without a password or a password without a user.
    #[error("user and password must be given together")]
    UserPass,
    /// The lame-duck grace period must be shorter than the lame-duck duration.
    #[error("lame duck grace period must be strictly lower than lame duck duration")]
    LameDuckGrace,
}

impl Options {
    /// Whether clients must authenticate: configured users, or operator mode (JWTs).
    pub fn auth_required(&self) -> bool {
        self.auth.required() || self.operator.is_some()
    }

    /// Check the settings that nats-server also refuses.
    pub fn validate(&self) -> Result<(), OptionsError> {
        if self.max_payload == 0 || self.max_payload > self.max_pending {
            return Err(OptionsError::MaxPayload {
                max_payload: self.max_payload,
                max_pending: self.max_pending,
            });
        }
        if self.max_control_line == 0 {
            return Err(OptionsError::MaxControlLine);
        }
        if self.ping_interval.is_zero() {
            return Err(OptionsError::PingInterval);
        }
        if self.lame_duck_grace_period >= self.lame_duck_duration {
            return Err(OptionsError::LameDuckGrace);
        }
        if self
            .tls
            .as_ref()
            .is_some_and(|t| t.verify && t.ca_file.is_none())
        {
            return Err(OptionsError::TlsVerifyWithoutCa);
        }
        if let Auth::UserPass { user, pass } = &self.auth {
            if user.is_empty() || pass.is_empty() {
                return Err(OptionsError::UserPass);
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_match_nats_server() {
        let o = Options::default();
        assert_eq!(o.port, 4222);
        assert_eq!(o.max_payload, 1_048_576);
        assert_eq!(o.max_control_line, 4096);
        assert_eq!(o.max_pending, 64 * 1024 * 1024);
        assert_eq!(o.ping_max, 2);
        assert!(o.validate().is_ok());
    }

    #[test]
    fn rejects_payload_over_pending() {
        let o = Options {
            max_payload: 10,
            max_pending: 5,
            ..Options::default()
        };
        assert!(matches!(o.validate(), Err(OptionsError::MaxPayload { .. })));
    }

    #[test]
    fn user_requires_password() {
        let o = Options {
            auth: Auth::UserPass {
                user: "a".into(),
                pass: String::new(),
            },
            ..Options::default()
        };
        assert_eq!(o.validate(), Err(OptionsError::UserPass));
    }
}
