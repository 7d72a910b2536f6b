//! Stream metadata on disk: `<store_dir>/jetstream/<account>/streams/<name>/meta.json` holds the
//! config and the creation time. It goes through the store's I/O [`Backend`] (so fault
//! injection covers it) with [`petrel_store::write_atomic`]: a temporary file, fsynced,
//! renamed over the old one and the directory fsynced, so a crash leaves either the old or
//! the new file.

use std::io;
use std::path::{Path, PathBuf};

use petrel_store::Backend;
use serde::{Deserialize, Serialize};

use crate::config::StreamConfig;

/// File name of the metadata inside a stream directory.
pub const META_FILE: &str = "meta.json";

/// What `meta.json` holds.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StreamMeta {
    /// The normalized config.
    pub config: StreamConfig,
    /// Creation time, Unix nanoseconds.
    pub created: i64,
}

/// Why a `meta.json` could not be read.
#[derive(Debug, thiserror::Error)]
pub enum MetaError {
    /// Reading failed.
    #[error("read {path}: {cause}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The error.
        cause: io::Error,
    },
    /// The JSON is broken or of the wrong shape.
    #[error("parse {path}: {cause}")]
    Json {
        /// The file.
        path: PathBuf,
        /// The error.
        cause: serde_json::Error,
    },
}

/// The directory of `account`'s JetStream (`<store_dir>/jetstream/<account>`).
pub fn account_dir(store_dir: &Path, account: &str) -> PathBuf {
    store_dir.join("jetstream").join(account)
}

/// The directory holding one directory per stream of `account`.
pub fn streams_dir(store_dir: &Path, account: &str) -> PathBuf {
    account_dir(store_dir, account).join("streams")
}

/// Writes `meta` into `stream_dir` crash-safely (tmp, fsync, rename, fsync dir; the
/// parent directory too, for a new stream directory).
pub fn write_meta(backend: &dyn Backend, stream_dir: &Path, meta: &StreamMeta) -> io::Result<()> {
    let body = serde_json::to_vec_pretty(meta).map_err(io::Error::other)?;
    petrel_store::write_atomic(backend, stream_dir, META_FILE, &body, true)?;
    if let Some(parent) = stream_dir.parent() {
        backend.sync_dir(parent)?;
    }
    Ok(())
}

/// Reads the `meta.json` of `stream_dir`.
pub fn read_meta(backend: &dyn Backend, stream_dir: &Path) -> Result<StreamMeta, MetaError> {
    let path = stream_dir.join(META_FILE);
    let body = petrel_store::read_all(backend, &path).map_err(|cause| MetaError::Io {
        path: path.clone(),
        cause,
    })?;
    serde_json::from_slice(&body).map_err(|cause| MetaError::Json { path, cause })
}

/// Removes a stream's files: first `meta.json` (made durable), then the rest, so a crash
/// half-way leaves a directory that recovery skips rather than a stream with missing blocks.
pub fn remove_stream_dir(backend: &dyn Backend, stream_dir: &Path) -> io::Result<()> {
    match backend.remove(&stream_dir.join(META_FILE)) {
        Ok(()) => backend.sync_dir(stream_dir)?,
        Err(e) if e.kind() == io::ErrorKind::NotFound => {}
        Err(e) => return Err(e),
    }
    backend.remove_dir_all(stream_dir)?;
    if let Some(parent) = stream_dir.parent() {
        backend.sync_dir(parent)?;
    }
    Ok(())
}

/// The stream directories under `streams_dir`, sorted by name.
pub fn list_stream_dirs(backend: &dyn Backend, streams_dir: &Path) -> io::Result<Vec<PathBuf>> {
    let mut out: Vec<PathBuf> = backend
        .list(streams_dir)?
        .into_iter()
        .map(|name| streams_dir.join(name))
        .filter(|p| backend.is_dir(p))
        .collect();
    out.sort();
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn roundtrip_and_bad_file() {
        let dir = tempfile::tempdir().unwrap();
        let sdir = streams_dir(dir.path(), "$G").join("S");
        let meta = StreamMeta {
            config: StreamConfig {
                name: "S".into(),
                ..Default::default()
            }
            .normalize()
            .unwrap(),
            created: 42,
        };
        let b = petrel_store::StdBackend;
        write_meta(&b, &sdir, &meta).unwrap();
        assert_eq!(read_meta(&b, &sdir).unwrap(), meta);
        std::fs::write(sdir.join(META_FILE), b"{not json").unwrap();
        assert!(matches!(read_meta(&b, &sdir), Err(MetaError::Json { .. })));
        assert_eq!(
            list_stream_dirs(&b, &streams_dir(dir.path(), "$G")).unwrap(),
            vec![sdir]
        );
    }
}
