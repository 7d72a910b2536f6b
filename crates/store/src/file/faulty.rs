//! `FaultyBackend`: a [`Backend`] wrapper for tests that fails a chosen operation (the N-th
//! fsync, write, create...) so durability paths can be exercised. A failed write is torn: the
//! first half of the buffer reaches the inner file before the error is returned.

use std::collections::HashMap;
use std::io;
use std::path::Path;
use std::sync::Arc;

use parking_lot::Mutex;

use super::backend::{Backend, BackendFile};

/// The operations a [`FaultyBackend`] counts and can fail.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum FaultOp {
    /// `BackendFile::read_at`.
    Read,
    /// `BackendFile::write_at` (torn: half the bytes are written).
    Write,
    /// `BackendFile::set_len`.
    SetLen,
    /// `BackendFile::sync`.
    Sync,
    /// `Backend::sync_dir`.
    SyncDir,
    /// `Backend::sync_fs`.
    SyncFs,
    /// `Backend::create`.
    Create,
    /// `Backend::open`.
    Open,
    /// `Backend::remove`.
    Remove,
    /// `Backend::rename`.
    Rename,
}

#[derive(Debug, Default)]
struct Plan {
    counts: HashMap<FaultOp, u64>,
    /// (op, fire when the count reaches this, keep failing afterwards)
    armed: Vec<(FaultOp, u64, bool)>,
    /// Bytes writes may still add (`None`: unlimited); a write past it fails with ENOSPC
    /// after writing what fits, as a full disk does.
    space: Option<u64>,
}

impl Plan {
    fn hit(&mut self, op: FaultOp) -> io::Result<()> {
        let c = self.counts.entry(op).or_insert(0);
        *c += 1;
        let now = *c;
        let fire = self
            .armed
            .iter()
            .any(|(o, at, sticky)| *o == op && (now == *at || (*sticky && now >= *at)));
        if fire {
            Err(io::Error::other(format!("injected {op:?} failure #{now}")))
        } else {
            Ok(())
        }
    }
}

/// See the module doc. Clones share the same fault plan, so a test can keep one handle and
/// give another to the store.
#[derive(Debug, Clone)]
pub struct FaultyBackend {
    inner: Arc<dyn Backend>,
    plan: Arc<Mutex<Plan>>,
}

impl FaultyBackend {
    /// Wraps `inner`; nothing fails until armed.
    pub fn new(inner: impl Backend + 'static) -> Self {
        FaultyBackend {
            inner: Arc::new(inner),
            plan: Arc::default(),
        }
    }

    /// The `n`-th call of `op` from now on (1 = the next one) fails, once.
    pub fn fail_nth(&self, op: FaultOp, n: u64) {
        let mut p = self.plan.lock();
        let base = p.counts.get(&op).copied().unwrap_or(0);
        p.armed.push((op, base + n.max(1), false));
    }

    /// Every call of `op` from the `n`-th one on fails.
    pub fn fail_from_nth(&self, op: FaultOp, n: u64) {
        let mut p = self.plan.lock();
        let base = p.counts.get(&op).copied().unwrap_or(0);
        p.armed.push((op, base + n.max(1), true));
    }

    /// Disarms every failure.
    pub fn clear(&self) {
        self.plan.lock().armed.clear();
    }

    /// Limits the bytes writes may still add (`None`: no limit, the disk has room again).
    pub fn set_space(&self, bytes: Option<u64>) {
        self.plan.lock().space = bytes;
    }

    /// How many times `op` was called so far.
    pub fn count(&self, op: FaultOp) -> u64 {
        self.plan.lock().counts.get(&op).copied().unwrap_or(0)
    }

    fn hit(&self, op: FaultOp) -> io::Result<()> {
        self.plan.lock().hit(op)
    }

    fn wrap(&self, file: Box<dyn BackendFile>) -> Box<dyn BackendFile> {
        Box::new(FaultyFile {
            inner: file,
            plan: Arc::clone(&self.plan),
        })
    }
}

#[derive(Debug)]
struct FaultyFile {
    inner: Box<dyn BackendFile>,
    plan: Arc<Mutex<Plan>>,
}

impl BackendFile for FaultyFile {
    fn read_at(&self, buf: &mut [u8], offset: u64) -> io::Result<()> {
        self.plan.lock().hit(FaultOp::Read)?;
        self.inner.read_at(buf, offset)
    }

    fn write_at(&self, buf: &[u8], offset: u64) -> io::Result<()> {
        let mut plan = self.plan.lock();
        if let Err(e) = plan.hit(FaultOp::Write) {
            // A torn write: part of the data lands, then the error.
            let _ = self.inner.write_at(&buf[..buf.len() / 2], offset);
            return Err(e);
        }
        if let Some(space) = plan.space.as_mut() {
            let fits = (*space).min(buf.len() as u64) as usize;
            *space -= fits as u64;
            if fits < buf.len() {
                let _ = self.inner.write_at(&buf[..fits], offset);
                return Err(io::Error::from_raw_os_error(28));
            }
        }
        drop(plan);
        self.inner.write_at(buf, offset)
    }

    fn size(&self) -> io::Result<u64> {
        self.inner.size()
    }

    fn set_len(&self, len: u64) -> io::Result<()> {
        self.plan.lock().hit(FaultOp::SetLen)?;
        self.inner.set_len(len)
    }

    fn sync(&self) -> io::Result<()> {
        self.plan.lock().hit(FaultOp::Sync)?;
        self.inner.sync()
    }
}

impl Backend for FaultyBackend {
    fn create_dir_all(&self, path: &Path) -> io::Result<()> {
        self.inner.create_dir_all(path)
    }

    fn open(&self, path: &Path) -> io::Result<Box<dyn BackendFile>> {
        self.hit(FaultOp::Open)?;
        Ok(self.wrap(self.inner.open(path)?))
    }

    fn create(&self, path: &Path) -> io::Result<Box<dyn BackendFile>> {
        self.hit(FaultOp::Create)?;
        Ok(self.wrap(self.inner.create(path)?))
    }

    fn remove(&self, path: &Path) -> io::Result<()> {
        self.hit(FaultOp::Remove)?;
        self.inner.remove(path)
    }

    fn list(&self, dir: &Path) -> io::Result<Vec<String>> {
        self.inner.list(dir)
    }

    fn rename(&self, from: &Path, to: &Path) -> io::Result<()> {
        self.hit(FaultOp::Rename)?;
        self.inner.rename(from, to)
    }

    fn sync_dir(&self, dir: &Path) -> io::Result<()> {
        self.hit(FaultOp::SyncDir)?;
        self.inner.sync_dir(dir)
    }

    fn sync_fs(&self, path: &Path) -> io::Result<()> {
        self.hit(FaultOp::SyncFs)?;
        self.inner.sync_fs(path)
    }

    fn exists(&self, path: &Path) -> bool {
        self.inner.exists(path)
    }

    fn is_dir(&self, path: &Path) -> bool {
        self.inner.is_dir(path)
    }

    fn remove_dir_all(&self, path: &Path) -> io::Result<()> {
        self.hit(FaultOp::Remove)?;
        self.inner.remove_dir_all(path)
    }
}
