//! One server per store directory: `<store_dir>/petrel.lock` is held with an operating
//! system file lock (released when the process ends, even on `kill -9`) and names the
//! holder's pid, so a second server pointed at the same directory refuses to start instead
//! of recovering, and then writing, streams the first one is using.

use std::fs::{File, OpenOptions, TryLockError};
use std::io::{Read, Seek, Write};
use std::path::{Path, PathBuf};

/// File name of the lock in the store directory.
const LOCK_FILE: &str = "petrel.lock";

/// Why the store directory could not be locked.
#[derive(Debug, thiserror::Error)]
pub enum StoreLockError {
    /// Another process holds the lock.
    #[error("store directory {} is in use by another server{}: stop it, or give this server another store directory", dir.display(), holder.map(|p| format!(" (pid {p})")).unwrap_or_default())]
    InUse {
        /// The store directory.
        dir: PathBuf,
        /// The holder's pid, as it wrote it.
        holder: Option<u32>,
    },
    /// The lock file could not be opened or locked.
    #[error("cannot lock store directory {}: {cause}", dir.display())]
    Io {
        /// The store directory.
        dir: PathBuf,
        /// The I/O error.
        cause: std::io::Error,
    },
}

/// The held lock; dropping it releases the directory.
#[derive(Debug)]
pub(crate) struct StoreLock {
    _file: File,
}

impl StoreLock {
    /// Locks `dir` for this process.
    pub fn acquire(dir: &Path) -> Result<StoreLock, StoreLockError> {
        let io = |cause| StoreLockError::Io {
            dir: dir.to_path_buf(),
            cause,
        };
        let mut file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(dir.join(LOCK_FILE))
            .map_err(io)?;
        match file.try_lock() {
            Ok(()) => {}
            Err(TryLockError::WouldBlock) => {
                let mut text = String::new();
                let _ = file.read_to_string(&mut text);
                return Err(StoreLockError::InUse {
                    dir: dir.to_path_buf(),
                    holder: text.trim().parse().ok(),
                });
            }
            Err(TryLockError::Error(e)) => return Err(io(e)),
        }
        file.set_len(0).map_err(io)?;
        file.rewind().map_err(io)?;
        writeln!(file, "{}", std::process::id()).map_err(io)?;
        Ok(StoreLock { _file: file })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_second_holder_is_refused_with_the_first_ones_pid() {
        let dir = tempfile::tempdir().unwrap();
        let first = StoreLock::acquire(dir.path()).unwrap();
        let e = StoreLock::acquire(dir.path()).unwrap_err().to_string();
        assert!(e.contains(&format!("(pid {})", std::process::id())), "{e}");
        assert!(e.contains("is in use by another server"), "{e}");
        drop(first);
        StoreLock::acquire(dir.path()).expect("released on drop");
    }
}
