//! Where account JWTs are kept: in memory only (`resolver: MEMORY`), or one file per
//! account, `<dir>/<account public key>.jwt`, written atomically (`resolver { type: full,
//! dir }`; `cache` keeps them the same way).

use std::path::{Path, PathBuf};
use std::sync::Arc;

use petrel_config::{AccountConfig, ResolverConfig};

use super::AccountJwt;

/// nats-server's default `limit` of a directory resolver.
const DEFAULT_LIMIT: u64 = 1000;

/// Why a pushed account JWT was not stored.
#[derive(Debug, thiserror::Error)]
pub(crate) enum ResolverError {
    /// It does not verify, or no trusted operator issued it.
    #[error("{0}")]
    Invalid(String),
    /// A JWT issued later is held.
    #[error("existing JWT is newer")]
    Older,
    /// It could not be written.
    #[error("{0}")]
    Store(String),
}

/// A stored account JWT and the account it describes.
pub(crate) struct Stored {
    pub config: AccountConfig,
    pub account: Arc<AccountJwt>,
}

pub(super) struct Resolver {
    config: Option<ResolverConfig>,
}

/// Whether `key` is a public account nkey (so `<key>.jwt` names a file in the directory).
fn is_account_key(key: &str) -> bool {
    key.starts_with('A') && nkeys::KeyPair::from_public_key(key).is_ok()
}

impl Resolver {
    pub fn new(config: Option<ResolverConfig>) -> Resolver {
        Resolver { config }
    }

    fn dir(&self) -> Option<(&Path, u64)> {
        match &self.config {
            Some(ResolverConfig::Dir { dir, limit, .. }) => Some((
                dir.as_path(),
                if *limit == 0 { DEFAULT_LIMIT } else { *limit },
            )),
            _ => None,
        }
    }

    pub fn is_directory(&self) -> bool {
        self.dir().is_some()
    }

    /// Whether `$SYS.REQ.CLAIMS.DELETE` may remove JWTs (`allow_delete`).
    pub fn allows_delete(&self) -> bool {
        matches!(
            self.config,
            Some(ResolverConfig::Dir {
                allow_delete: true,
                ..
            })
        )
    }

    /// Set `key`'s JWT file aside as `<key>.jwt.deleted` (nats-server's soft delete).
    pub fn delete(&self, key: &str) -> std::io::Result<()> {
        let Some((dir, _)) = self.dir() else {
            return Ok(());
        };
        if !is_account_key(key) {
            return Err(std::io::Error::other("not an account public key"));
        }
        let from = dir.join(format!("{key}.jwt"));
        std::fs::rename(&from, dir.join(format!("{key}.jwt.deleted")))?;
        petrel_store::Backend::sync_dir(&petrel_store::StdBackend, dir)
    }

    /// Every `<key>.jwt` of the directory (created when missing), as (key, JWT).
    pub fn load(&self) -> std::io::Result<Vec<(String, String)>> {
        let Some((dir, _)) = self.dir() else {
            return Ok(Vec::new());
        };
        std::fs::create_dir_all(dir)?;
        let mut found = Vec::new();
        for entry in std::fs::read_dir(dir)? {
            let path = entry?.path();
            let Some(key) = path
                .file_name()
                .and_then(|n| n.to_str())
                .and_then(|n| n.strip_suffix(".jwt"))
                .filter(|k| is_account_key(k))
            else {
                continue;
            };
            match std::fs::read_to_string(&path) {
                Ok(jwt) => found.push((key.to_string(), jwt.trim().to_string())),
                Err(e) => tracing::warn!(file = %path.display(), "cannot read account JWT: {e}"),
            }
        }
        Ok(found)
    }

    /// Persist `jwt` as `key`'s (a directory resolver; nothing for MEMORY).
    pub fn store(&self, key: &str, jwt: &str) -> std::io::Result<()> {
        let Some((dir, limit)) = self.dir() else {
            return Ok(());
        };
        if !is_account_key(key) {
            return Err(std::io::Error::other("not an account public key"));
        }
        let file = format!("{key}.jwt");
        let path: PathBuf = dir.join(&file);
        if !path.exists() && count_jwts(dir) >= limit {
            return Err(std::io::Error::other(format!(
                "resolver limit of {limit} account JWTs reached"
            )));
        }
        petrel_store::write_atomic(&petrel_store::StdBackend, dir, &file, jwt.as_bytes(), true)
    }
}

fn count_jwts(dir: &Path) -> u64 {
    std::fs::read_dir(dir).map_or(0, |entries| {
        entries
            .filter_map(Result::ok)
            .filter(|e| e.file_name().to_string_lossy().ends_with(".jwt"))
            .count() as u64
    })
}
