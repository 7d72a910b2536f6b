//! `SimFs`: an in-memory filesystem behind [`Backend`] for crash tests. It remembers, per
//! file, the contents at the last fsync plus the writes since, and per directory the
//! entries at the last directory fsync plus the changes since. [`SimFs::crash`] (a power
//! loss) keeps only what was fsynced, plus a random prefix of the unsynced writes (the
//! last one possibly torn) and of the unsynced directory changes; every handle opened
//! before goes stale. [`SimFs::arm`] makes the device die after a number of mutating
//! operations, so a crash can land inside a commit.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use parking_lot::Mutex;

use super::backend::{Backend, BackendFile};

/// The random choices of a crash (xorshift64).
struct Rng(u64);

impl Rng {
    fn below(&mut self, n: u64) -> u64 {
        let mut x = self.0;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.0 = x;
        x % n.max(1)
    }
    fn chance(&mut self, percent: u64) -> bool {
        self.below(100) < percent
    }
}

type Ino = u64;

#[derive(Debug, Clone)]
enum FileOp {
    Write(u64, Vec<u8>),
    SetLen(u64),
}

fn apply(data: &mut Vec<u8>, op: &FileOp) {
    match op {
        FileOp::Write(off, buf) => {
            let end = *off as usize + buf.len();
            if data.len() < end {
                data.resize(end, 0);
            }
            data[*off as usize..end].copy_from_slice(buf);
        }
        FileOp::SetLen(len) => data.resize(*len as usize, 0),
    }
}

#[derive(Debug, Default, Clone)]
struct Inode {
    data: Vec<u8>,
    synced: Vec<u8>,
    /// Writes since the last fsync, in order.
    log: Vec<FileOp>,
}

#[derive(Debug, Clone)]
enum NsOp {
    Link(PathBuf, Ino),
    Unlink(PathBuf),
    Rename(PathBuf, PathBuf, Ino),
}

#[derive(Debug, Default)]
struct State {
    generation: u64,
    inodes: HashMap<Ino, Inode>,
    names: BTreeMap<PathBuf, Ino>,
    durable_names: BTreeMap<PathBuf, Ino>,
    /// Directory changes not yet made durable: (directory, change).
    ns_log: Vec<(PathBuf, NsOp)>,
    dirs: BTreeSet<PathBuf>,
    next_ino: Ino,
    /// Mutating operations left before the device dies; `None` = never.
    budget: Option<u64>,
    dead: bool,
}

/// A random number below `n`, or 0 without a generator (keep nothing unsynced).
fn below(rng: &mut Option<&mut Rng>, n: u64) -> u64 {
    rng.as_mut().map_or(0, |r| r.below(n))
}

fn parent(p: &Path) -> PathBuf {
    p.parent().map(Path::to_path_buf).unwrap_or_default()
}

fn dead() -> io::Error {
    io::Error::other("simulated power loss: device gone")
}

impl State {
    /// Accounts one mutating operation; fails once the device is dead.
    fn mutate(&mut self) -> io::Result<()> {
        if self.dead {
            return Err(dead());
        }
        match &mut self.budget {
            Some(0) => {
                self.dead = true;
                Err(dead())
            }
            Some(n) => {
                *n -= 1;
                Ok(())
            }
            None => Ok(()),
        }
    }

    fn file_op(&mut self, ino: Ino, op: FileOp) -> io::Result<()> {
        self.mutate()?;
        let inode = self.inodes.get_mut(&ino).ok_or_else(dead)?;
        apply(&mut inode.data, &op);
        inode.log.push(op);
        Ok(())
    }

    /// The state after a power loss (see the module doc); with no `rng`, the harshest
    /// one: nothing written since its last sync survives.
    fn crash_image(&self, mut rng: Option<&mut Rng>) -> State {
        let mut names = self.durable_names.clone();
        let keep = below(&mut rng, self.ns_log.len() as u64 + 1) as usize;
        for (_, op) in &self.ns_log[..keep] {
            match op {
                NsOp::Link(p, ino) => {
                    names.insert(p.clone(), *ino);
                }
                NsOp::Unlink(p) => {
                    names.remove(p);
                }
                NsOp::Rename(from, to, ino) => {
                    names.remove(from);
                    names.insert(to.clone(), *ino);
                }
            }
        }
        let mut inodes = HashMap::new();
        let live: BTreeSet<Ino> = names.values().copied().collect();
        for ino in live {
            let Some(node) = self.inodes.get(&ino) else {
                continue;
            };
            let mut data = node.synced.clone();
            let keep = below(&mut rng, node.log.len() as u64 + 1) as usize;
            for op in &node.log[..keep] {
                apply(&mut data, op);
            }
            if let (Some(FileOp::Write(off, buf)), Some(rng)) = (node.log.get(keep), rng.as_mut()) {
                if !buf.is_empty() && rng.chance(50) {
                    let torn = rng.below(buf.len() as u64) as usize;
                    apply(&mut data, &FileOp::Write(*off, buf[..torn].to_vec()));
                }
            }
            inodes.insert(
                ino,
                Inode {
                    synced: data.clone(),
                    data,
                    log: Vec::new(),
                },
            );
        }
        State {
            generation: self.generation + 1,
            inodes,
            durable_names: names.clone(),
            names,
            ns_log: Vec::new(),
            dirs: self.dirs.clone(),
            next_ino: self.next_ino,
            budget: None,
            dead: false,
        }
    }
}

/// See the module doc. Clones share the filesystem.
#[derive(Debug, Clone, Default)]
pub struct SimFs {
    st: Arc<Mutex<State>>,
}

impl SimFs {
    /// The device dies after `n` more mutating operations (`None`: never).
    pub fn arm(&self, n: Option<u64>) {
        self.st.lock().budget = n;
    }

    /// Power loss: every open file handle goes stale, the disk keeps what the model allows
    /// (the random choices follow `seed`).
    pub fn crash(&self, seed: u64) {
        let mut st = self.st.lock();
        let image = st.crash_image(Some(&mut Rng(seed.max(1))));
        *st = image;
    }

    /// The harshest power loss: the disk keeps only what was synced.
    pub fn crash_losing_unsynced(&self) {
        let mut st = self.st.lock();
        let image = st.crash_image(None);
        *st = image;
    }
}

#[derive(Debug)]
struct SimFile {
    st: Arc<Mutex<State>>,
    ino: Ino,
    generation: u64,
}

impl SimFile {
    fn with<T>(&self, f: impl FnOnce(&mut State) -> io::Result<T>) -> io::Result<T> {
        let mut st = self.st.lock();
        if st.generation != self.generation {
            return Err(io::Error::other("stale handle from before the crash"));
        }
        f(&mut st)
    }
}

impl BackendFile for SimFile {
    fn read_at(&self, buf: &mut [u8], offset: u64) -> io::Result<()> {
        self.with(|st| {
            let data = &st.inodes.get(&self.ino).ok_or_else(dead)?.data;
            let end = offset as usize + buf.len();
            if end > data.len() {
                return Err(io::Error::new(io::ErrorKind::UnexpectedEof, "short read"));
            }
            buf.copy_from_slice(&data[offset as usize..end]);
            Ok(())
        })
    }

    fn write_at(&self, buf: &[u8], offset: u64) -> io::Result<()> {
        self.with(|st| st.file_op(self.ino, FileOp::Write(offset, buf.to_vec())))
    }

    fn size(&self) -> io::Result<u64> {
        self.with(|st| Ok(st.inodes.get(&self.ino).ok_or_else(dead)?.data.len() as u64))
    }

    fn set_len(&self, len: u64) -> io::Result<()> {
        self.with(|st| st.file_op(self.ino, FileOp::SetLen(len)))
    }

    fn sync(&self) -> io::Result<()> {
        self.with(|st| {
            st.mutate()?;
            let node = st.inodes.get_mut(&self.ino).ok_or_else(dead)?;
            node.synced = node.data.clone();
            node.log.clear();
            Ok(())
        })
    }
}

impl Backend for SimFs {
    fn create_dir_all(&self, path: &Path) -> io::Result<()> {
        let mut st = self.st.lock();
        for p in path.ancestors() {
            st.dirs.insert(p.to_path_buf());
        }
        Ok(())
    }

    fn open(&self, path: &Path) -> io::Result<Box<dyn BackendFile>> {
        let st = self.st.lock();
        let ino = *st
            .names
            .get(path)
            .ok_or_else(|| io::Error::new(io::ErrorKind::NotFound, path.display().to_string()))?;
        Ok(Box::new(SimFile {
            st: Arc::clone(&self.st),
            ino,
            generation: st.generation,
        }))
    }

    fn create(&self, path: &Path) -> io::Result<Box<dyn BackendFile>> {
        let mut st = self.st.lock();
        st.mutate()?;
        let ino = match st.names.get(path) {
            Some(&ino) => {
                let node = st.inodes.get_mut(&ino).ok_or_else(dead)?;
                apply(&mut node.data, &FileOp::SetLen(0));
                node.log.push(FileOp::SetLen(0));
                ino
            }
            None => {
                let ino = st.next_ino;
                st.next_ino += 1;
                st.inodes.insert(ino, Inode::default());
                st.names.insert(path.to_path_buf(), ino);
                st.ns_log
                    .push((parent(path), NsOp::Link(path.to_path_buf(), ino)));
                ino
            }
        };
        Ok(Box::new(SimFile {
            st: Arc::clone(&self.st),
            ino,
            generation: st.generation,
        }))
    }

    fn remove(&self, path: &Path) -> io::Result<()> {
        let mut st = self.st.lock();
        st.mutate()?;
        st.names
            .remove(path)
            .ok_or_else(|| io::Error::new(io::ErrorKind::NotFound, path.display().to_string()))?;
        st.ns_log
            .push((parent(path), NsOp::Unlink(path.to_path_buf())));
        Ok(())
    }

    fn list(&self, dir: &Path) -> io::Result<Vec<String>> {
        let st = self.st.lock();
        let files = st.names.keys().filter(|p| p.parent() == Some(dir));
        let dirs = st.dirs.iter().filter(|p| p.parent() == Some(dir));
        Ok(files
            .chain(dirs)
            .filter_map(|p| p.file_name()?.to_str().map(str::to_string))
            .collect())
    }

    fn rename(&self, from: &Path, to: &Path) -> io::Result<()> {
        let mut st = self.st.lock();
        st.mutate()?;
        let ino = st
            .names
            .remove(from)
            .ok_or_else(|| io::Error::new(io::ErrorKind::NotFound, from.display().to_string()))?;
        st.names.insert(to.to_path_buf(), ino);
        st.ns_log.push((
            parent(to),
            NsOp::Rename(from.to_path_buf(), to.to_path_buf(), ino),
        ));
        Ok(())
    }

    fn sync_fs(&self, _path: &Path) -> io::Result<()> {
        // One simulated device: everything written and renamed becomes durable.
        let mut st = self.st.lock();
        st.mutate()?;
        let st = &mut *st;
        for node in st.inodes.values_mut() {
            node.synced = node.data.clone();
            node.log.clear();
        }
        st.durable_names = st.names.clone();
        st.ns_log.clear();
        Ok(())
    }

    fn sync_dir(&self, dir: &Path) -> io::Result<()> {
        let mut st = self.st.lock();
        st.mutate()?;
        let st = &mut *st;
        st.durable_names.retain(|p, _| p.parent() != Some(dir));
        for (p, ino) in &st.names {
            if p.parent() == Some(dir) {
                st.durable_names.insert(p.clone(), *ino);
            }
        }
        st.ns_log.retain(|(d, _)| d != dir);
        Ok(())
    }

    fn exists(&self, path: &Path) -> bool {
        let st = self.st.lock();
        st.names.contains_key(path) || st.dirs.contains(path)
    }

    fn is_dir(&self, path: &Path) -> bool {
        self.st.lock().dirs.contains(path)
    }

    fn remove_dir_all(&self, path: &Path) -> io::Result<()> {
        let mut st = self.st.lock();
        st.mutate()?;
        let gone: Vec<PathBuf> = st
            .names
            .keys()
            .filter(|p| p.starts_with(path))
            .cloned()
            .collect();
        for p in gone {
            st.names.remove(&p);
            st.ns_log.push((parent(&p), NsOp::Unlink(p.clone())));
        }
        st.dirs.retain(|d| !d.starts_with(path));
        Ok(())
    }
}
