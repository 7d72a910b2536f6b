//! Petrel's configuration as pure data.
//!
//! [`Options`] is the single validated set of settings the server runs with. It is filled
//! from defaults, then a config file, then command-line flags (the binary's overlay), exactly
//! in nats-server's order of precedence. The file is nats.conf or, for a `.toml` file, TOML
//! with the same keys ([`load_file`]). Nothing here touches the network or the runtime.

mod accounts;
mod cluster;
pub mod conf;
mod leafnode;
mod operator;
mod options;
mod permissions;
mod websocket;

use std::path::Path;

pub use accounts::{
    AccountConfig, AccountJetStream, Export, Import, ImportKind, ResponseType,
    DEFAULT_SYSTEM_ACCOUNT, GLOBAL_ACCOUNT,
};
pub use cluster::{
    join_host_port, split_host_port, ClusterOptions, RouteUrl, DEFAULT_CLUSTER_PORT,
};
pub use conf::{parse_route_list, retain_valid_imports, ConfigError};
pub use leafnode::{
    parse_version, LeafRemote, LeafUrl, LeafUser, LeafnodeOptions, DEFAULT_LEAFNODE_PORT,
};
pub use operator::{OperatorMode, ResolverConfig, TrustedOperator};
pub use options::{
    Auth, HandshakeFirst, JetStreamOptions, Options, OptionsError, SyncMode, TlsOptions, User,
    DEFAULT_MAX_CONNECTIONS, DEFAULT_MAX_CONTROL_LINE, DEFAULT_MAX_PAYLOAD, DEFAULT_MAX_PENDING,
    DEFAULT_PORT,
};
pub use permissions::{
    Permissions, ResponsePermission, SubjectPermission, DEFAULT_RESPONSES_EXPIRES,
    DEFAULT_RESPONSES_MAX,
};
pub use websocket::{WebSocketOptions, WsCookies, DEFAULT_HANDSHAKE_TIMEOUT};

/// Options read from a configuration file, with the warnings met on the way (unknown keys,
/// features not supported yet), each as `file:line:col: message`.
#[derive(Debug, Clone, PartialEq)]
pub struct Loaded {
    /// The defaults with the file applied, validated.
    pub options: Options,
    /// Things that were ignored.
    pub warnings: Vec<String>,
}

/// Reads a configuration file, applies it to the default [`Options`] and validates them.
/// The format follows the extension: `.toml` (any case) is TOML, anything else nats.conf.
/// Both formats take the same keys.
pub fn load_file(path: &Path) -> Result<Loaded, ConfigError> {
    let name = path.display().to_string();
    if is_toml_path(path) {
        let text = std::fs::read_to_string(path).map_err(|cause| ConfigError::Read {
            path: name.clone(),
            cause,
        })?;
        return load_toml_str(&text, &name);
    }
    conf::load_map(&conf::parse_file(path)?, &name)
}

/// Whether [`load_file`] reads `path` as TOML: its extension is `toml`, in any case.
pub fn is_toml_path(path: &Path) -> bool {
    path.extension()
        .is_some_and(|ext| ext.eq_ignore_ascii_case("toml"))
}

/// Parses nats.conf text (`name` is used in messages and to resolve relative includes),
/// applies it to the default [`Options`] and validates them. Never panics, whatever the text.
pub fn load_str(text: &str, name: &str) -> Result<Loaded, ConfigError> {
    conf::load_map(&conf::parse_str(text, name)?, name)
}

/// Parses TOML text with the same keys as nats.conf (`name` is used in messages), applies
/// it to the default [`Options`] and validates them. Syntax errors are
/// [`ConfigError::Syntax`] with `name:line:col`. Never panics, whatever the text.
pub fn load_toml_str(text: &str, name: &str) -> Result<Loaded, ConfigError> {
    conf::load_map(&conf::parse_toml_str(text, name)?, name)
}
