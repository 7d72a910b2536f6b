//! Configuration files: the nats.conf lexer and parser turn the text into a [`Value`] tree
//! ([`parse_str`], [`parse_file`]; nats-server's `conf` package semantics), TOML is read
//! into the same tree ([`parse_toml_str`]), and [`apply`] maps that tree onto [`Options`],
//! so both formats share one set of keys. [`crate::load_file`], [`crate::load_str`] and
//! [`crate::load_toml_str`] chain the two and validate the result.

mod apply;
pub use apply::{parse_route_list, retain_valid_imports};
mod convert;
mod duration;
mod error;
mod lexer;
mod parser;
mod permissions;
mod tls;
mod toml_input;
mod value;

#[cfg(test)]
mod tests;
#[cfg(test)]
mod tests_accounts;
#[cfg(test)]
mod tests_examples;
#[cfg(test)]
mod tests_toml;

pub use apply::apply;
pub use duration::parse_go_duration;
pub use error::ConfigError;
pub use parser::{parse_file, parse_str};
pub use toml_input::parse_toml_str;
pub use value::{Entry, Map, Pos, Value, ValueKind};

use crate::{Loaded, Options};

/// Applies a parsed file (called `file` in messages) to the default options and validates
/// the result.
pub(crate) fn load_map(map: &Map, file: &str) -> Result<Loaded, ConfigError> {
    let mut options = Options::default();
    let warnings = apply(map, &mut options)?;
    options
        .validate()
        .map_err(|cause| ConfigError::Validation {
            file: file.to_string(),
            cause,
        })?;
    Ok(Loaded { options, warnings })
}
