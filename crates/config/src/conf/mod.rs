//! nats.conf support: the lexer and parser turn the text into a [`Value`] tree
//! ([`parse_str`], [`parse_file`]; nats-server's `conf` package semantics), and [`apply`]
//! maps that tree onto [`Options`]. [`crate::load_file`] and
//! [`crate::load_str`] chain the two and validate the result.

mod apply;
mod convert;
mod duration;
mod error;
mod lexer;
mod parser;
mod permissions;
mod tls;
mod value;

#[cfg(test)]
mod tests;

pub use apply::apply;
pub use duration::parse_go_duration;
pub use error::ConfigError;
pub use parser::{parse_file, parse_str};
pub use value::{Entry, Map, Pos, Value, ValueKind};

use crate::{Loaded, Options};

/// Applies a parsed file (called `file` in messages) to the default options and validates
/// the result.
pub(crate) fn load_map(map: &Map, file: &str) -> Result<Loaded, ConfigError> {
    let mut options = Options::default();
    let warnings = apply(map, &mut options)?;
    options
        .validate()
        .map_err(|source| ConfigError::Validation {
            file: file.to_string(),
            source,
        })?;
    Ok(Loaded { options, warnings })
}
