//! openraft's storage conformance suite against [`FileLog`] (with a small in-memory state
//! machine of this test's own), and recovery from torn and corrupt tails.

use std::io::Cursor;
use std::sync::Arc;

use openraft::storage::{RaftStateMachine, Snapshot, SnapshotMeta};
use openraft::testing::{StoreBuilder, Suite};
use openraft::{
    Entry, EntryPayload, LogId, RaftLogReader, RaftSnapshotBuilder, StorageError, StoredMembership,
};
use parking_lot::Mutex;
use petrel_store::{Backend, StdBackend};

use crate::FileLog;

openraft::declare_raft_types!(
    pub Cfg:
        D = String,
        R = (),
);

type Nid = u64;

/// Applied entries, membership and the last snapshot, in memory.
#[derive(Default, Clone)]
pub(crate) struct Sm {
    pub(crate) inner: Arc<Mutex<SmInner>>,
}

#[derive(Default)]
pub(crate) struct SmInner {
    last_applied: Option<LogId<Nid>>,
    membership: StoredMembership<Nid, openraft::BasicNode>,
    pub(crate) data: Vec<String>,
    snapshot: Option<(SnapshotMeta<Nid, openraft::BasicNode>, Vec<u8>)>,
    snapshots: u64,
}

impl SmInner {
    fn encode(&self) -> Vec<u8> {
        serde_json::to_vec(&self.data).unwrap_or_default()
    }
}

impl RaftSnapshotBuilder<Cfg> for Sm {
    async fn build_snapshot(&mut self) -> Result<Snapshot<Cfg>, StorageError<Nid>> {
        let mut s = self.inner.lock();
        s.snapshots += 1;
        let meta = SnapshotMeta {
            last_log_id: s.last_applied,
            last_membership: s.membership.clone(),
            snapshot_id: format!("snap-{}", s.snapshots),
        };
        let bytes = s.encode();
        s.snapshot = Some((meta.clone(), bytes.clone()));
        Ok(Snapshot {
            meta,
            snapshot: Box::new(Cursor::new(bytes)),
        })
    }
}

impl RaftStateMachine<Cfg> for Sm {
    type SnapshotBuilder = Self;

    async fn applied_state(
        &mut self,
    ) -> Result<
        (
            Option<LogId<Nid>>,
            StoredMembership<Nid, openraft::BasicNode>,
        ),
        StorageError<Nid>,
    > {
        let s = self.inner.lock();
        Ok((s.last_applied, s.membership.clone()))
    }

    async fn apply<I>(&mut self, entries: I) -> Result<Vec<()>, StorageError<Nid>>
    where
        I: IntoIterator<Item = Entry<Cfg>> + Send,
        I::IntoIter: Send,
    {
        let mut s = self.inner.lock();
        let mut out = Vec::new();
        for e in entries {
            s.last_applied = Some(e.log_id);
            match e.payload {
                EntryPayload::Blank => {}
                EntryPayload::Normal(d) => s.data.push(d),
                EntryPayload::Membership(m) => {
                    s.membership = StoredMembership::new(Some(e.log_id), m);
                }
            }
            out.push(());
        }
        Ok(out)
    }

    async fn get_snapshot_builder(&mut self) -> Self::SnapshotBuilder {
        self.clone()
    }

    async fn begin_receiving_snapshot(
        &mut self,
    ) -> Result<Box<Cursor<Vec<u8>>>, StorageError<Nid>> {
        Ok(Box::new(Cursor::new(Vec::new())))
    }

    async fn install_snapshot(
        &mut self,
        meta: &SnapshotMeta<Nid, openraft::BasicNode>,
        snapshot: Box<Cursor<Vec<u8>>>,
    ) -> Result<(), StorageError<Nid>> {
        let bytes = snapshot.into_inner();
        let data: Vec<String> = serde_json::from_slice(&bytes).unwrap_or_default();
        let mut s = self.inner.lock();
        s.data = data;
        s.last_applied = meta.last_log_id;
        s.membership = meta.last_membership.clone();
        s.snapshot = Some((meta.clone(), bytes));
        Ok(())
    }

    async fn get_current_snapshot(&mut self) -> Result<Option<Snapshot<Cfg>>, StorageError<Nid>> {
        let s = self.inner.lock();
        Ok(s.snapshot.as_ref().map(|(meta, bytes)| Snapshot {
            meta: meta.clone(),
            snapshot: Box::new(Cursor::new(bytes.clone())),
        }))
    }
}

struct Builder;

impl StoreBuilder<Cfg, FileLog<Cfg>, Sm, tempfile::TempDir> for Builder {
    async fn build(&self) -> Result<(tempfile::TempDir, FileLog<Cfg>, Sm), StorageError<Nid>> {
        let dir = tempfile::tempdir().expect("temporary directory");
        let (log, _) = FileLog::open(Arc::new(StdBackend), dir.path()).expect("open the log");
        Ok((dir, log, Sm::default()))
    }
}

#[test]
#[allow(clippy::result_large_err)]
fn the_file_log_passes_openrafts_storage_suite() -> Result<(), StorageError<Nid>> {
    Suite::test_all(Builder)
}

fn entry(term: u64, index: u64, data: &str) -> Entry<Cfg> {
    Entry {
        log_id: LogId::new(openraft::CommittedLeaderId::new(term, 0), index),
        payload: EntryPayload::Normal(data.to_string()),
    }
}

async fn append(log: &mut FileLog<Cfg>, entries: Vec<Entry<Cfg>>) {
    use openraft::storage::RaftLogStorage;
    // Through the blocking path the suite does not take: the flush callback needs a Raft
    // core, so this writes directly.
    let inner = log.inner.clone();
    tokio::task::spawn_blocking(move || inner.lock().append(entries))
        .await
        .unwrap()
        .unwrap();
    let _ = log.get_log_state().await.unwrap();
}

#[tokio::test]
async fn recovery_keeps_fsynced_entries_and_cuts_a_bad_tail() {
    let dir = tempfile::tempdir().unwrap();
    let backend: Arc<dyn Backend> = Arc::new(StdBackend);
    let (mut log, report) = FileLog::<Cfg>::open(backend.clone(), dir.path()).unwrap();
    assert_eq!(report.entries, 0);
    append(
        &mut log,
        (1..=5).map(|i| entry(1, i, &format!("m{i}"))).collect(),
    )
    .await;
    drop(log);
    let path = dir.path().join("raft.log");
    let full = std::fs::read(&path).unwrap();
    // Reopened whole: every entry back, nothing cut.
    let (mut log, report) = FileLog::<Cfg>::open(backend.clone(), dir.path()).unwrap();
    assert_eq!((report.entries, report.cut_bytes), (5, 0));
    let got = log.try_get_log_entries(1..=5).await.unwrap();
    assert_eq!(got.len(), 5);
    drop(log);
    // A torn last record (a crash mid-write of an unacknowledged append): cut, 4 kept.
    std::fs::write(&path, &full[..full.len() - 3]).unwrap();
    let (_, report) = FileLog::<Cfg>::open(backend.clone(), dir.path()).unwrap();
    assert_eq!(report.entries, 4);
    assert!(
        report.cut_bytes > 0 && report.reason.is_some() && !report.damaged,
        "a torn append is no damage: {report:?}"
    );
    // A zero-filled tail (the file grew, the data never came) is no damage either.
    let mut zeros = full.clone();
    zeros.extend_from_slice(&[0u8; 64]);
    std::fs::write(&path, &zeros).unwrap();
    let (_, report) = FileLog::<Cfg>::open(backend.clone(), dir.path()).unwrap();
    assert_eq!(report.entries, 5);
    assert!(!report.damaged, "{report:?}");
    // A flipped bit in the third record: it and what follows are cut, never served.
    let mut bad = full.clone();
    let third = {
        let mut off = 0usize;
        for _ in 0..2 {
            let len = u32::from_le_bytes(bad[off..off + 4].try_into().unwrap()) as usize;
            off += 8 + len;
        }
        off
    };
    bad[third + 12] ^= 0x01;
    std::fs::write(&path, &bad).unwrap();
    let (mut log, report) = FileLog::<Cfg>::open(backend.clone(), dir.path()).unwrap();
    assert_eq!(report.entries, 2, "{report:?}");
    assert!(
        report.reason.as_deref().unwrap().contains("CRC") && report.damaged,
        "{report:?}"
    );
    assert_eq!(log.try_get_log_entries(..).await.unwrap().len(), 2);
    assert_eq!(
        std::fs::read(&path).unwrap().len(),
        third,
        "the file ends before the bad record"
    );
}

#[tokio::test]
async fn a_log_cut_at_recovery_gives_up_its_committed_vote() {
    use openraft::storage::RaftLogStorage;
    use openraft::{CommittedLeaderId, Vote};
    let dir = tempfile::tempdir().unwrap();
    let backend: Arc<dyn Backend> = Arc::new(StdBackend);
    let (mut log, _) = FileLog::<Cfg>::open(backend.clone(), dir.path()).unwrap();
    append(&mut log, (1..=3).map(|i| entry(1, i, "x")).collect()).await;
    let mut vote = Vote::new(1, 7);
    vote.commit();
    log.save_vote(&vote).await.unwrap();
    drop(log);
    // Reopened whole: the leader's committed vote stands.
    let (mut log, _) = FileLog::<Cfg>::open(backend.clone(), dir.path()).unwrap();
    assert!(log.read_vote().await.unwrap().unwrap().is_committed());
    drop(log);
    // A torn tail: the vote is kept but no longer committed (no leadership resumed
    // with a log that lost entries).
    let path = dir.path().join("raft.log");
    let len = std::fs::metadata(&path).unwrap().len();
    std::fs::OpenOptions::new()
        .write(true)
        .open(&path)
        .unwrap()
        .set_len(len - 2)
        .unwrap();
    let (mut log, report) = FileLog::<Cfg>::open(backend.clone(), dir.path()).unwrap();
    assert_eq!(report.entries, 2);
    let v = log.read_vote().await.unwrap().unwrap();
    assert!(!v.is_committed());
    assert_eq!(v.leader_id, CommittedLeaderId::new(1, 7));
}

/// A step of [`the_file_log_matches_a_naive_model`].
#[derive(Debug, Clone)]
enum Step {
    Append(u8, u16),
    Truncate(u8),
    Purge(u8),
    Reopen,
}

fn step() -> impl proptest::strategy::Strategy<Value = Step> {
    use proptest::prelude::*;
    prop_oneof![
        4 => (1u8..6, 1u16..400).prop_map(|(n, size)| Step::Append(n, size)),
        1 => any::<u8>().prop_map(Step::Truncate),
        1 => any::<u8>().prop_map(Step::Purge),
        1 => Just(Step::Reopen),
    ]
}

proptest::proptest! {
    #![proptest_config(proptest::prelude::ProptestConfig::with_cases(64))]

    /// Appends, truncations, purges (with file rewrites) and reopens, with a cache of a
    /// few hundred bytes so most reads go to the file: every read returns what a plain
    /// list of entries holds.
    #[test]
    fn the_file_log_matches_a_naive_model(steps in proptest::collection::vec(step(), 1..40)) {
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        rt.block_on(run_model(steps));
    }
}

async fn run_model(steps: Vec<Step>) {
    use openraft::storage::RaftLogStorage;
    let dir = tempfile::tempdir().unwrap();
    let backend: Arc<dyn Backend> = Arc::new(StdBackend);
    let open = || {
        let (log, _) = FileLog::<Cfg>::open(backend.clone(), dir.path()).unwrap();
        let mut inner = log.inner.lock();
        (inner.cache_limit, inner.compact_min) = (600, 500);
        drop(inner);
        log
    };
    let mut log = open();
    // The model: kept entries (index, data) and the purge point.
    let mut model: Vec<(u64, String)> = Vec::new();
    let mut purged: Option<u64> = None;
    let mut next = 1u64;
    for s in steps {
        match s {
            Step::Append(n, size) => {
                let batch: Vec<_> = (0..u64::from(n))
                    .map(|i| {
                        (
                            next + i,
                            format!("{}{}", next + i, "x".repeat(usize::from(size))),
                        )
                    })
                    .collect();
                next += u64::from(n);
                append(
                    &mut log,
                    batch.iter().map(|(i, d)| entry(1, *i, d)).collect(),
                )
                .await;
                model.extend(batch);
            }
            Step::Truncate(k) if !model.is_empty() => {
                let at = model[usize::from(k) % model.len()].0;
                log.truncate(LogId::new(openraft::CommittedLeaderId::new(1, 0), at))
                    .await
                    .unwrap();
                model.retain(|(i, _)| *i < at);
                next = at;
            }
            Step::Purge(k) if !model.is_empty() => {
                let upto = model[usize::from(k) % model.len()].0;
                log.purge(LogId::new(openraft::CommittedLeaderId::new(1, 0), upto))
                    .await
                    .unwrap();
                model.retain(|(i, _)| *i > upto);
                purged = Some(upto);
            }
            Step::Reopen => {
                drop(log);
                log = open();
            }
            _ => {}
        }
        let got: Vec<(u64, String)> = log
            .try_get_log_entries(..)
            .await
            .unwrap()
            .into_iter()
            .map(|e| match e.payload {
                EntryPayload::Normal(d) => (e.log_id.index, d),
                _ => unreachable!(),
            })
            .collect();
        assert_eq!(got, model);
        let state = log.get_log_state().await.unwrap();
        let last = model.last().map(|(i, _)| *i).or(purged);
        assert_eq!(state.last_log_id.map(|l| l.index), last);
        assert_eq!(state.last_purged_log_id.map(|l| l.index), purged);
        if let (Some((first, _)), Some((end, _))) = (model.first(), model.last()) {
            let mid = (first + end) / 2;
            let part = log.try_get_log_entries(mid..=*end).await.unwrap();
            assert_eq!(part.len() as u64, end - mid + 1);
        }
    }
}
