//! Operator (JWT) mode as configured: the trusted operators (`operator`), where account
//! JWTs come from (`resolver`) and the ones given in the file (`resolver_preload`).

use std::path::PathBuf;

/// A trusted operator: its JWT and what it says (signature checked when read).
#[derive(Debug, Clone, PartialEq)]
pub struct TrustedOperator {
    /// The JWT as given.
    pub jwt: String,
    /// Its claims.
    pub claims: petrel_jwt::Claims<petrel_jwt::Operator>,
}

/// Where account JWTs come from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ResolverConfig {
    /// `resolver: MEMORY`: the preloaded JWTs only (updates live in memory).
    Memory,
    /// `resolver { type: full|cache, dir }`: `<dir>/<account>.jwt` files, updated by
    /// `$SYS.REQ.CLAIMS.UPDATE` pushes.
    Dir {
        /// The directory.
        dir: PathBuf,
        /// `type: cache` (else `full`).
        cache: bool,
        /// `allow_delete`: `$SYS.REQ.CLAIMS.DELETE` removes JWTs.
        allow_delete: bool,
        /// `limit`: most JWTs kept (0: nats-server's default, 1000).
        limit: u64,
    },
}

/// Operator mode.
#[derive(Debug, Clone, PartialEq)]
pub struct OperatorMode {
    /// The trusted operators.
    pub operators: Vec<TrustedOperator>,
    /// The account resolver (`None` only while the file is read: validation requires one).
    pub resolver: Option<ResolverConfig>,
    /// `resolver_preload`: account public key → account JWT.
    pub preload: Vec<(String, String)>,
}
