//! Test harnesses: how the shared suite opens and reopens each kind of store.

use std::path::Path;

use bytes::Bytes;
use petrel_store::{
    file_msg_size, mem_msg_size, FileStore, FileStoreConfig, MemStore, StreamStore,
};
use tempfile::TempDir;

/// Opens, and "restarts", one kind of store.
pub trait Harness {
    /// The store under test.
    type S: StreamStore;
    /// A fresh harness (new temp dir for file stores).
    fn new() -> Self;
    /// Opens the store.
    fn open(&mut self) -> Self::S;
    /// Restarts the store: a no-op for memory, close-or-crash then open for files.
    fn reopen(&mut self, s: Self::S) -> Self::S;
    /// The store's byte accounting.
    fn size(subject: &str, hdr: Option<&[u8]>, payload: &[u8]) -> u64;
    /// True for file stores.
    const FILE: bool;
}

/// Memory store.
pub struct Mem;

impl Harness for Mem {
    type S = MemStore;
    const FILE: bool = false;
    fn new() -> Self {
        Mem
    }
    fn open(&mut self) -> MemStore {
        MemStore::new()
    }
    fn reopen(&mut self, s: MemStore) -> MemStore {
        s
    }
    fn size(subject: &str, hdr: Option<&[u8]>, payload: &[u8]) -> u64 {
        mem_msg_size(subject, hdr, payload)
    }
}

/// File store with the default configuration, reopened after a clean close.
pub struct File {
    pub dir: TempDir,
    pub cfg: FileStoreConfig,
    pub clean: bool,
}

impl Harness for File {
    type S = FileStore;
    const FILE: bool = true;
    fn new() -> Self {
        File {
            dir: tempfile::tempdir().unwrap(),
            cfg: FileStoreConfig::default(),
            clean: true,
        }
    }
    fn open(&mut self) -> FileStore {
        FileStore::open(self.dir.path(), "S", self.cfg.clone()).unwrap()
    }
    fn reopen(&mut self, mut s: FileStore) -> FileStore {
        let limits = s.limits().clone();
        if self.clean {
            s.close().unwrap();
        } else {
            s.commit().unwrap();
        }
        drop(s);
        let mut s = self.open();
        s.set_limits(limits).unwrap();
        s
    }
    fn size(subject: &str, hdr: Option<&[u8]>, payload: &[u8]) -> u64 {
        file_msg_size(subject, hdr, payload)
    }
}

/// File store with tiny blocks (many rollovers and removals), reopened as after a crash
/// (committed, never closed: no checkpoint, full scan).
pub struct SmallFile(pub File);

impl Harness for SmallFile {
    type S = FileStore;
    const FILE: bool = true;
    fn new() -> Self {
        let mut f = File::new();
        f.cfg.block_size = 160;
        f.cfg.checkpoint_every = 0;
        f.clean = false;
        SmallFile(f)
    }
    fn open(&mut self) -> FileStore {
        self.0.open()
    }
    fn reopen(&mut self, s: FileStore) -> FileStore {
        self.0.reopen(s)
    }
    fn size(subject: &str, hdr: Option<&[u8]>, payload: &[u8]) -> u64 {
        file_msg_size(subject, hdr, payload)
    }
}

/// `Bytes` from a string.
pub fn b(s: &str) -> Bytes {
    Bytes::copy_from_slice(s.as_bytes())
}

/// Recursively copies a directory.
pub fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        let dst = to.join(e.file_name());
        if e.file_type().unwrap().is_dir() {
            copy_dir(&e.path(), &dst);
        } else {
            std::fs::copy(e.path(), dst).unwrap();
        }
    }
}

/// Block files of stream `S` under `dir`, sorted by index.
pub fn block_files(dir: &Path) -> Vec<std::path::PathBuf> {
    let mut v: Vec<(u32, std::path::PathBuf)> = std::fs::read_dir(dir.join("S").join("msgs"))
        .unwrap()
        .filter_map(|e| {
            let p = e.unwrap().path();
            let n: u32 = p.file_stem()?.to_str()?.parse().ok()?;
            Some((n, p))
        })
        .collect();
    v.sort();
    v.into_iter().map(|(_, p)| p).collect()
}
