//! Crash harness, power-loss mode. `SimFs` is an in-memory filesystem behind [`Backend`]
//! that remembers, per file, the contents at the last fsync plus the writes since, and per
//! directory the entries at the last directory fsync plus the changes since. A crash keeps
//! only what was fsynced, plus a random prefix of the unsynced writes (the last one of which
//! may be torn) and a random prefix of the unsynced directory changes. The device can also
//! "die" after a random number of mutating operations, so crashes land inside `commit`
//! (between the write and the fsync, mid-compaction, mid-checkpoint...).
//!
//! With `SyncMode::Always`, every append whose `commit` returned Ok (and every delete that
//! returned Ok) must survive the crash exactly; nothing else may be served with foreign
//! content; the store keeps working after reopen.
//!
//! Knobs: `POWER_LOSS_SEED`, `POWER_LOSS_ROUNDS` (default 300). Erasing deletes (which
//! overwrite a record in place) are off by default, see `erase_in_place_*` below.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use bytes::Bytes;
use parking_lot::Mutex;
use petrel_store::{
    Backend, BackendFile, FileStore, FileStoreConfig, StoreError, StreamStore, SyncMode,
};

pub struct XorShift(pub u64);

impl XorShift {
    pub fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.0 = x;
        x
    }
    pub fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }
    pub fn chance(&mut self, percent: u64) -> bool {
        self.below(100) < percent
    }
}

pub fn env_u64(key: &str, default: u64) -> u64 {
    std::env::var(key)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
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

    /// The state after a power loss (see the module doc).
    fn crash_image(&self, rng: &mut XorShift) -> State {
        let mut names = self.durable_names.clone();
        let keep = rng.below(self.ns_log.len() as u64 + 1) as usize;
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
            let keep = rng.below(node.log.len() as u64 + 1) as usize;
            for op in &node.log[..keep] {
                apply(&mut data, op);
            }
            if let Some(FileOp::Write(off, buf)) = node.log.get(keep) {
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
    fn arm(&self, n: Option<u64>) {
        self.st.lock().budget = n;
    }

    /// Power loss: every open file handle goes stale, the disk keeps what the model allows.
    fn crash(&self, rng: &mut XorShift) {
        let mut st = self.st.lock();
        let image = st.crash_image(rng);
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

type Msg = (String, Option<Bytes>, Bytes, i64);

fn random_msg(rng: &mut XorShift, n: u64) -> Msg {
    let subject = format!("p.{}", rng.below(5));
    let headers = rng
        .chance(25)
        .then(|| Bytes::from(format!("NATS/1.0\r\nN: {n}\r\n\r\n")));
    let len = rng.below(300);
    // Half the payloads compress (a stream with compression: s2 stores them compressed).
    let payload = if rng.chance(50) {
        Bytes::from(vec![b'a' + (n % 26) as u8; len as usize])
    } else {
        Bytes::from((0..len).map(|_| rng.next() as u8).collect::<Vec<_>>())
    };
    (subject, headers, payload, n as i64)
}

fn same(m: &petrel_store::StoredMsg, want: &Msg) -> bool {
    (&m.subject, &m.headers, &m.payload, m.ts) == (&want.0, &want.1, &want.2, want.3)
}

/// What the test knows about the stream.
#[derive(Default)]
struct Model {
    /// Every append that returned a sequence: its content (sequences above a recovered
    /// `last_seq` are forgotten, they may be reused).
    appended: HashMap<u64, Msg>,
    /// Durable messages: committed (or seen after a reopen) and not deleted.
    durable: BTreeMap<u64, Msg>,
    /// Deletes that returned Ok.
    deleted: BTreeSet<u64>,
    /// Highest sequence known durable.
    high: u64,
}

/// Checks a freshly reopened store against the model; returns the problems found.
fn verify(s: &FileStore, m: &mut Model, ctx: &str) -> Vec<String> {
    let mut errs = Vec::new();
    let st = s.state();
    if st.last_seq < m.high {
        errs.push(format!(
            "{ctx}: last_seq {} < durable high {}",
            st.last_seq, m.high
        ));
    }
    for (seq, want) in &m.durable {
        match s.get(*seq) {
            Ok(Some(got)) if same(&got, want) => {}
            other => errs.push(format!("{ctx}: committed seq {seq} lost: {other:?}")),
        }
    }
    for seq in &m.deleted {
        if let Ok(Some(_)) = s.get(*seq) {
            errs.push(format!("{ctx}: deleted seq {seq} is back"));
        }
    }
    for seq in 0..=st.last_seq + 2 {
        match s.get(seq) {
            Ok(Some(got)) => match m.appended.get(&seq) {
                Some(want) if same(&got, want) => {
                    // Read back from the disk after a crash: durable from now on.
                    m.durable.insert(seq, want.clone());
                }
                _ => errs.push(format!("{ctx}: seq {seq} served with foreign content")),
            },
            Ok(None) => {}
            Err(StoreError::Corrupt { .. }) => {}
            Err(e) => errs.push(format!("{ctx}: get({seq}) failed: {e}")),
        }
    }
    let mut from = 0;
    while let Ok(Some(got)) = s.next_by_subject(from, "p.*") {
        if m.appended.get(&got.seq).is_none_or(|w| !same(&got, w)) {
            errs.push(format!(
                "{ctx}: next_by_subject served foreign seq {}",
                got.seq
            ));
        }
        from = got.seq + 1;
    }
    m.appended.retain(|seq, _| *seq <= st.last_seq);
    m.high = m.high.max(st.last_seq);
    errs
}

/// Runs `rounds` crash rounds; returns (acked appends, problems).
fn run(seed: u64, rounds: u64, erase: bool, sync: SyncMode) -> (u64, Vec<String>) {
    let mut rng = XorShift(seed.max(1));
    let fs = SimFs::default();
    let root = PathBuf::from("/sim");
    let mut model = Model::default();
    let mut errs = Vec::new();
    let mut acked = 0u64;
    let mut n = 0u64;
    for round in 0..rounds {
        let ctx = format!("seed {seed:#x} round {round}");
        let cfg = FileStoreConfig {
            block_size: [200, 700, 4096][rng.below(3) as usize],
            sync,
            checkpoint_every: [0, 8, 40][rng.below(3) as usize],
            // Compressed and plain records mixed in one store, as after a config update.
            compress: rng.below(2) == 1,
        };
        fs.arm(None);
        let mut s = match FileStore::open_with_backend(&root, "S", cfg, Arc::new(fs.clone())) {
            Ok(s) => s,
            Err(e) => {
                errs.push(format!("{ctx}: reopen failed: {e}"));
                return (acked, errs);
            }
        };
        errs.extend(verify(&s, &mut model, &ctx));
        if !errs.is_empty() {
            return (acked, errs);
        }
        // The device dies after a random number of mutating operations (or the power goes
        // at a quiet moment).
        fs.arm(rng.chance(85).then(|| rng.below(40)));
        let mut clean = false;
        for _ in 0..1 + rng.below(12) {
            let op = rng.below(10);
            if op < 7 {
                let mut batch = Vec::new();
                let mut failed = false;
                for _ in 0..1 + rng.below(4) {
                    n += 1;
                    let msg = random_msg(&mut rng, n);
                    match s.append(&msg.0, msg.1.clone(), msg.2.clone(), msg.3) {
                        Ok((seq, _)) => {
                            if seq <= model.high {
                                errs.push(format!("{ctx}: append reused seq {seq}"));
                            }
                            model.appended.insert(seq, msg.clone());
                            batch.push((seq, msg));
                        }
                        Err(_) => failed = true,
                    }
                }
                if failed || s.commit().is_err() {
                    break;
                }
                for (seq, msg) in batch {
                    model.high = model.high.max(seq);
                    model.durable.insert(seq, msg);
                    acked += 1;
                }
            } else if op < 9 {
                let live: Vec<u64> = model.durable.keys().copied().collect();
                if live.is_empty() {
                    continue;
                }
                let seq = live[rng.below(live.len() as u64) as usize];
                let wipe = erase && rng.chance(50);
                model.durable.remove(&seq);
                match s.delete(seq, wipe) {
                    Ok(true) => {
                        model.deleted.insert(seq);
                    }
                    Ok(false) => errs.push(format!("{ctx}: delete({seq}) found nothing")),
                    Err(_) => break,
                }
            } else {
                clean = s.close().is_ok();
                break;
            }
        }
        if !errs.is_empty() {
            return (acked, errs);
        }
        drop(s);
        // A clean close needs no power loss to be checked, but one may follow anyway.
        if !clean || rng.chance(50) {
            fs.crash(&mut rng);
        }
    }
    // After the last crash: everything committed is there and the store still takes writes.
    fs.arm(None);
    let ctx = format!("seed {seed:#x} final");
    let cfg = FileStoreConfig::default();
    match FileStore::open_with_backend(&root, "S", cfg, Arc::new(fs.clone())) {
        Ok(mut s) => {
            errs.extend(verify(&s, &mut model, &ctx));
            let (seq, _) = s
                .append("p.end", None, Bytes::from_static(b"end"), 0)
                .unwrap();
            assert!(seq > model.high, "{ctx}: seq {seq} reused");
            s.commit().unwrap();
            assert_eq!(s.get(seq).unwrap().unwrap().payload, &b"end"[..]);
        }
        Err(e) => errs.push(format!("{ctx}: reopen failed: {e}")),
    }
    (acked, errs)
}

#[test]
fn power_loss_never_loses_committed_appends() {
    let seed = env_u64("POWER_LOSS_SEED", 0xC0DE_D00D_1234_5679);
    let rounds = env_u64("POWER_LOSS_ROUNDS", 200);
    let started = std::time::Instant::now();
    let (acked, errs) = run(seed, rounds, false, SyncMode::Always);
    println!(
        "power-loss rounds={rounds} acked={acked} lost={} seed={seed:#x} ({:.1}s)",
        errs.len(),
        started.elapsed().as_secs_f64()
    );
    assert!(errs.is_empty(), "{}", errs.join("\n"));
}

/// The harness bites: without fsync in `commit`, committed appends do get lost.
#[test]
fn power_loss_model_catches_missing_fsync() {
    let lazy = SyncMode::Interval(std::time::Duration::from_secs(3600));
    let (_, errs) = run(0xBAD5_EED5, 60, false, lazy);
    assert!(
        errs.iter().any(|e| e.contains("lost")),
        "no loss detected without fsync: {errs:?}"
    );
}

/// Erasing deletes overwrite a record in place (FORMAT.md, "Erase"); a power loss between
/// that overwrite and its fsync can tear the record. No committed message may be lost.
#[test]
fn power_loss_with_erasing_deletes() {
    // Regression: a torn in-place erase used to cut every later record of its block,
    // committed ones included (seeds 3-8 lost messages). Tombstones are now durable before
    // the overwrite and recovery skips an isolated damaged record.
    let seed = env_u64("POWER_LOSS_SEED", 8);
    let rounds = env_u64("POWER_LOSS_ROUNDS", 120);
    let (acked, errs) = run(seed, rounds, true, SyncMode::Always);
    println!(
        "power-loss (erase) rounds={rounds} acked={acked} problems={} seed={seed:#x}",
        errs.len()
    );
    assert!(errs.is_empty(), "{}", errs.join("\n"));
}
