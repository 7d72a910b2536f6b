//! Petrel's configuration as pure data.
//!
//! [`Options`] is the single validated set of settings the server runs with. It is filled
//! from defaults, then a config file, then command-line flags (the binary's overlay), exactly
//! in nats-server's order of precedence. Nothing here touches the network or the runtime.

pub mod conf;
mod options;
mod permissions;

use std::path::Path;

pub use conf::ConfigError;
pub use options::{
    Auth, HandshakeFirst, JetStreamOptions, Options, OptionsError, SyncMode, TlsOptions, User,
    DEFAULT_MAX_CONNECTIONS, DEFAULT_MAX_CONTROL_LINE, DEFAULT_MAX_PAYLOAD, DEFAULT_MAX_PENDING,
    DEFAULT_PORT,
};
pub use permissions::{
    Permissions, ResponsePermission, SubjectPermission, DEFAULT_RESPONSES_EXPIRES,
    DEFAULT_RESPONSES_MAX,
};

/// Options read from a configuration file, with the warnings met on the way (unknown keys,
/// features not supported yet), each as `file:line:col: message`.
#[derive(Debug, Clone, PartialEq)]
pub struct Loaded {
    /// The defaults with the file applied, validated.
    pub options: Options,
    /// Things that were ignored.
    pub warnings: Vec<String>,
}

/// Reads a nats.conf file, applies it to the default [`Options`] and validates them.
pub fn load_file(path: &Path) -> Result<Loaded, ConfigError> {
    conf::load_map(&conf::parse_file(path)?, &path.display().to_string())
}

/// Parses nats.conf text (`name` is used in messages and to resolve relative includes),
/// applies it to the default [`Options`] and validates them. Never panics, whatever the text.
pub fn load_str(text: &str, name: &str) -> Result<Loaded, ConfigError> {
    conf::load_map(&conf::parse_str(text, name)?, name)
}
