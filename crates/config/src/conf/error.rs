//! [`ConfigError`]: everything that can go wrong loading a nats.conf or TOML file, each error
//! displayed as `file:line:col: what was expected` when it has a position.

use std::io;

use super::value::Pos;
use crate::OptionsError;

/// A configuration file that could not be read, parsed or applied.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The top-level file could not be read.
    #[error("{path}: cannot read: {cause}")]
    Read {
        /// The path as given.
        path: String,
        /// The I/O error.
        cause: io::Error,
    },
    /// The text is not valid nats.conf (or, for a TOML file, TOML) syntax.
    #[error("{pos}: {msg}")]
    Syntax {
        /// Where the problem was found.
        pos: Pos,
        /// What was expected.
        msg: String,
    },
    /// A `$NAME` reference that is neither defined in an enclosing block nor in the
    /// environment.
    #[error("{pos}: unknown variable '${name}' (not defined in an enclosing block nor in the environment)")]
    UnknownVariable {
        /// Where the reference was.
        pos: Pos,
        /// The variable's name, without `$`.
        name: String,
    },
    /// Environment variables that refer to each other in a loop.
    #[error("{pos}: variable reference cycle through '${name}'")]
    VariableCycle {
        /// Where the reference was.
        pos: Pos,
        /// The variable met twice.
        name: String,
    },
    /// An `include` whose file could not be read.
    #[error("{pos}: cannot include '{path}': {cause}")]
    Include {
        /// Where the `include` was.
        pos: Pos,
        /// The path of the included file (relative paths joined to the including file's
        /// directory).
        path: String,
        /// The I/O error.
        cause: io::Error,
    },
    /// A key neither nats-server nor Petrel knows (a typo), as nats-server reports it.
    #[error("{pos}: unknown field \"{key}\"")]
    UnknownField {
        /// Where the key was.
        pos: Pos,
        /// The key as written.
        key: String,
    },
    /// A known key with a value of the wrong type or out of range.
    #[error("{pos}: {key}: {msg}")]
    Invalid {
        /// Where the value was.
        pos: Pos,
        /// The key, dotted for nested keys (`jetstream.max_mem`).
        key: String,
        /// What was expected.
        msg: String,
    },
    /// The resulting options are refused by [`crate::Options::validate`].
    #[error("{file}: {cause}")]
    Validation {
        /// The configuration file.
        file: String,
        /// Why the options are refused.
        cause: OptionsError,
    },
}

impl ConfigError {
    /// An unknown key at `pos`.
    pub(crate) fn unknown_field(pos: &Pos, key: &str) -> Self {
        ConfigError::UnknownField {
            pos: pos.clone(),
            key: key.to_string(),
        }
    }

    /// The position the error refers to, when it has one.
    pub fn pos(&self) -> Option<&Pos> {
        match self {
            ConfigError::Syntax { pos, .. }
            | ConfigError::UnknownVariable { pos, .. }
            | ConfigError::VariableCycle { pos, .. }
            | ConfigError::Include { pos, .. }
            | ConfigError::UnknownField { pos, .. }
            | ConfigError::Invalid { pos, .. } => Some(pos),
            ConfigError::Read { .. } | ConfigError::Validation { .. } => None,
        }
    }

    pub(crate) fn syntax(pos: Pos, msg: impl Into<String>) -> Self {
        ConfigError::Syntax {
            pos,
            msg: msg.into(),
        }
    }

    pub(crate) fn invalid(pos: &Pos, key: &str, msg: impl Into<String>) -> Self {
        ConfigError::Invalid {
            pos: pos.clone(),
            key: key.to_string(),
            msg: msg.into(),
        }
    }
}
