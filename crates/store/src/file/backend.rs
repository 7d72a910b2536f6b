//! The file I/O backend: every byte the file store reads or writes goes through [`Backend`]
//! and [`BackendFile`], so tests can inject failures ([`super::faulty::FaultyBackend`]) the
//! way redb's fuzzer does.

use std::fmt::Debug;
use std::fs::{self, File, OpenOptions};
use std::io;
use std::path::{Path, PathBuf};

/// An open file. Offsets are absolute; there is no cursor.
pub trait BackendFile: Send + Sync + Debug {
    /// Reads exactly `buf.len()` bytes at `offset` (an error if the file is shorter).
    fn read_at(&self, buf: &mut [u8], offset: u64) -> io::Result<()>;
    /// Writes all of `buf` at `offset`.
    fn write_at(&self, buf: &[u8], offset: u64) -> io::Result<()>;
    /// Current length in bytes.
    fn size(&self) -> io::Result<u64>;
    /// Truncates or extends the file.
    fn set_len(&self, len: u64) -> io::Result<()>;
    /// Flushes the file's data (and the metadata needed to read it) to stable storage.
    fn sync(&self) -> io::Result<()>;
    /// Appends all of `buf` at the end of the file and returns the offset it was written at.
    fn append(&self, buf: &[u8]) -> io::Result<u64> {
        let at = self.size()?;
        self.write_at(buf, at)?;
        Ok(at)
    }
}

/// A filesystem. Paths are absolute (the store joins them under its directory).
pub trait Backend: Send + Sync + Debug {
    /// Creates a directory and its parents.
    fn create_dir_all(&self, path: &Path) -> io::Result<()>;
    /// Opens an existing file for reading and writing.
    fn open(&self, path: &Path) -> io::Result<Box<dyn BackendFile>>;
    /// Creates a file (truncating an existing one) for reading and writing.
    fn create(&self, path: &Path) -> io::Result<Box<dyn BackendFile>>;
    /// Removes a file.
    fn remove(&self, path: &Path) -> io::Result<()>;
    /// Names of the entries in a directory.
    fn list(&self, dir: &Path) -> io::Result<Vec<String>>;
    /// Atomically renames `from` to `to`.
    fn rename(&self, from: &Path, to: &Path) -> io::Result<()>;
    /// Makes a directory's entries (creations, renames, removals) durable.
    fn sync_dir(&self, dir: &Path) -> io::Result<()>;
    /// Makes every write, file and directory change on the filesystem holding `path`
    /// durable at once (`syncfs`): many files written without their own fsync (a clean
    /// shutdown's consumer states) cost one flush instead of one each.
    fn sync_fs(&self, path: &Path) -> io::Result<()>;
    /// Whether a path exists.
    fn exists(&self, path: &Path) -> bool;
    /// Whether a path is a directory.
    fn is_dir(&self, path: &Path) -> bool;
    /// Removes a directory and everything in it (a missing one is not an error).
    fn remove_dir_all(&self, path: &Path) -> io::Result<()>;
}

/// The real filesystem through `std::fs`.
#[derive(Debug, Default, Clone, Copy)]
pub struct StdBackend;

/// A `std::fs::File` behind [`BackendFile`].
#[derive(Debug)]
struct StdFile {
    file: File,
    #[cfg_attr(unix, allow(dead_code))]
    path: PathBuf,
}

#[cfg(unix)]
impl StdFile {
    fn read_exact_at(&self, buf: &mut [u8], offset: u64) -> io::Result<()> {
        std::os::unix::fs::FileExt::read_exact_at(&self.file, buf, offset)
    }

    fn write_all_at(&self, buf: &[u8], offset: u64) -> io::Result<()> {
        std::os::unix::fs::FileExt::write_all_at(&self.file, buf, offset)
    }
}

#[cfg(windows)]
impl StdFile {
    fn read_exact_at(&self, mut buf: &mut [u8], mut offset: u64) -> io::Result<()> {
        use std::os::windows::fs::FileExt;
        while !buf.is_empty() {
            let n = self.file.seek_read(buf, offset)?;
            if n == 0 {
                return Err(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    format!("short read in {}", self.path.display()),
                ));
            }
            buf = &mut buf[n..];
            offset += n as u64;
        }
        Ok(())
    }

    fn write_all_at(&self, mut buf: &[u8], mut offset: u64) -> io::Result<()> {
        use std::os::windows::fs::FileExt;
        while !buf.is_empty() {
            let n = self.file.seek_write(buf, offset)?;
            if n == 0 {
                return Err(io::Error::new(io::ErrorKind::WriteZero, "short write"));
            }
            buf = &buf[n..];
            offset += n as u64;
        }
        Ok(())
    }
}

impl BackendFile for StdFile {
    fn read_at(&self, buf: &mut [u8], offset: u64) -> io::Result<()> {
        self.read_exact_at(buf, offset)
    }

    fn write_at(&self, buf: &[u8], offset: u64) -> io::Result<()> {
        self.write_all_at(buf, offset)
    }

    fn size(&self) -> io::Result<u64> {
        Ok(self.file.metadata()?.len())
    }

    fn set_len(&self, len: u64) -> io::Result<()> {
        self.file.set_len(len)
    }

    fn sync(&self) -> io::Result<()> {
        self.file.sync_data()
    }
}

impl Backend for StdBackend {
    fn create_dir_all(&self, path: &Path) -> io::Result<()> {
        fs::create_dir_all(path)
    }

    fn open(&self, path: &Path) -> io::Result<Box<dyn BackendFile>> {
        let file = OpenOptions::new().read(true).write(true).open(path)?;
        Ok(Box::new(StdFile {
            file,
            path: path.to_path_buf(),
        }))
    }

    fn create(&self, path: &Path) -> io::Result<Box<dyn BackendFile>> {
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(true)
            .open(path)?;
        Ok(Box::new(StdFile {
            file,
            path: path.to_path_buf(),
        }))
    }

    fn remove(&self, path: &Path) -> io::Result<()> {
        fs::remove_file(path)
    }

    fn list(&self, dir: &Path) -> io::Result<Vec<String>> {
        let mut out = Vec::new();
        for entry in fs::read_dir(dir)? {
            let entry = entry?;
            if let Some(name) = entry.file_name().to_str() {
                out.push(name.to_string());
            }
        }
        Ok(out)
    }

    fn rename(&self, from: &Path, to: &Path) -> io::Result<()> {
        fs::rename(from, to)
    }

    #[cfg(unix)]
    fn sync_dir(&self, dir: &Path) -> io::Result<()> {
        File::open(dir)?.sync_all()
    }

    #[cfg(not(unix))]
    fn sync_dir(&self, _dir: &Path) -> io::Result<()> {
        Ok(())
    }

    #[cfg(target_os = "linux")]
    fn sync_fs(&self, path: &Path) -> io::Result<()> {
        rustix::fs::syncfs(File::open(path)?).map_err(io::Error::from)
    }

    #[cfg(not(target_os = "linux"))]
    fn sync_fs(&self, _path: &Path) -> io::Result<()> {
        // No syncfs: the whole system's buffers.
        std::process::Command::new("sync").status().map(drop)
    }

    fn exists(&self, path: &Path) -> bool {
        path.exists()
    }

    fn is_dir(&self, path: &Path) -> bool {
        path.is_dir()
    }

    fn remove_dir_all(&self, path: &Path) -> io::Result<()> {
        match fs::remove_dir_all(path) {
            Err(e) if e.kind() != io::ErrorKind::NotFound => Err(e),
            _ => Ok(()),
        }
    }
}

/// Writes `bytes` to `dir/name` crash-safely through `backend`: a temporary file is
/// written (and fsynced when `sync`), renamed over `name`, and the directory fsynced (when
/// `sync`), so a crash leaves the old file or the new one, never a mix. With `sync` false
/// the new file survives a process crash but may be older after a power loss. The one
/// copy of this rule: block checkpoints, stream metadata and consumer state use it.
pub fn write_atomic(
    backend: &dyn Backend,
    dir: &Path,
    name: &str,
    bytes: &[u8],
    sync: bool,
) -> io::Result<()> {
    backend.create_dir_all(dir)?;
    let tmp = dir.join(format!("{name}.tmp"));
    {
        let f = backend.create(&tmp)?;
        f.write_at(bytes, 0)?;
        if sync {
            f.sync()?;
        }
    }
    backend.rename(&tmp, &dir.join(name))?;
    if sync {
        backend.sync_dir(dir)?;
    }
    Ok(())
}

/// Name of the file [`probe_writable`] writes.
const PROBE: &str = ".petrel-probe";

/// Whether `dir` takes a durable write now: creates it, writes a small file with
/// [`write_atomic`] (fsync, rename, directory fsync) and removes it. Fails on a read-only,
/// full or forbidden directory with the system's error.
pub fn probe_writable(backend: &dyn Backend, dir: &Path) -> io::Result<()> {
    write_atomic(backend, dir, PROBE, b"petrel\n", true)?;
    backend.remove(&dir.join(PROBE))
}

/// Reads a whole file through `backend`.
pub fn read_all(backend: &dyn Backend, path: &Path) -> io::Result<Vec<u8>> {
    let f = backend.open(path)?;
    let len = usize::try_from(f.size()?).map_err(io::Error::other)?;
    let mut buf = vec![0u8; len];
    f.read_at(&mut buf, 0)?;
    Ok(buf)
}
