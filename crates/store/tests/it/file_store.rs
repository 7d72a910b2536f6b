//! FileStore specifics: recovery (torn tails, flipped bits, zeroed records), durability
//! (group commit, sync modes, poisoning through `FaultyBackend`), checkpoints, block
//! rollover and removal, erasure on disk.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use petrel_store::{
    FaultOp, FaultyBackend, FileStore, FileStoreConfig, LostData, PurgeRequest, StdBackend,
    StoreError, StoreLimits, StreamStore, SyncMode,
};

use crate::harness::{b, block_files, copy_dir};

fn small(block_size: u64) -> FileStoreConfig {
    FileStoreConfig {
        block_size,
        ..FileStoreConfig::default()
    }
}

fn open(dir: &Path, cfg: &FileStoreConfig) -> FileStore {
    FileStore::open(dir, "S", cfg.clone()).unwrap()
}

fn payload(i: u64) -> Bytes {
    Bytes::from(format!("payload-{i}"))
}

/// Appends `n` messages `m.<i % 3>` / `payload-<i>`, one commit, and returns the store.
fn write_n(dir: &Path, cfg: &FileStoreConfig, n: u64) -> FileStore {
    let mut s = open(dir, cfg);
    for i in 1..=n {
        s.append(&format!("m.{}", i % 3), None, payload(i), i as i64)
            .unwrap();
    }
    s.commit().unwrap();
    s
}

/// (offset, len) of every record in a block file.
fn records(path: &Path) -> Vec<(usize, usize)> {
    let data = std::fs::read(path).unwrap();
    let mut out = Vec::new();
    let mut at = 0;
    while at + 4 <= data.len() {
        let len = u32::from_le_bytes(data[at..at + 4].try_into().unwrap()) as usize;
        out.push((at, len));
        at += len;
    }
    out
}

fn expect_msg(s: &FileStore, seq: u64) {
    let m = s.get(seq).unwrap().unwrap();
    assert_eq!(m.payload, payload(seq));
    assert_eq!(m.subject, format!("m.{}", seq % 3));
}

#[test]
fn invalid_names_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    for name in ["", "a/b", "..", "a b", "x\\y"] {
        assert!(matches!(
            FileStore::open(dir.path(), name, FileStoreConfig::default()),
            Err(StoreError::InvalidName(_))
        ));
    }
}

#[test]
fn reopen_restores_tombstones_across_blocks() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = small(200);
    let mut s = write_n(dir.path(), &cfg, 50);
    assert!(s.block_count() > 5);
    for seq in [3, 7, 20, 21, 33] {
        assert!(s.delete(seq, false).unwrap());
    }
    let before = s.state();
    drop(s); // crash: no checkpoint
    let s = open(dir.path(), &cfg);
    assert!(!s.recovery_report().from_checkpoint);
    assert_eq!(s.state(), before);
    for seq in 1..=50 {
        if [3, 7, 20, 21, 33].contains(&seq) {
            assert!(s.get(seq).unwrap().is_none());
        } else {
            expect_msg(&s, seq);
        }
    }
}

#[test]
fn torn_tail_with_checkpoint_reports_loss() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = FileStoreConfig::default();
    let mut s = write_n(dir.path(), &cfg, 10);
    s.close().unwrap();
    drop(s);
    let blk = block_files(dir.path()).pop().unwrap();
    let (_, last_len) = *records(&blk).last().unwrap();
    let len = std::fs::metadata(&blk).unwrap().len();
    std::fs::OpenOptions::new()
        .write(true)
        .open(&blk)
        .unwrap()
        .set_len(len - 5)
        .unwrap();
    let mut s = open(dir.path(), &cfg);
    assert!(!s.recovery_report().from_checkpoint);
    assert_eq!(s.recovery_report().bytes_truncated, last_len as u64 - 5);
    let st = s.state();
    assert_eq!((st.msgs, st.last_seq), (9, 10));
    assert_eq!(
        st.lost,
        Some(LostData {
            msgs: vec![10],
            bytes: last_len as u64 - 5
        })
    );
    for seq in 1..=9 {
        expect_msg(&s, seq);
    }
    assert!(s.get(10).unwrap().is_none());
    assert_eq!(s.append("m.2", None, payload(11), 11).unwrap().0, 11);
    s.commit().unwrap();
    drop(s);
    // The loss was accounted for: the next open sees a clean log and reuses no sequence.
    let s = open(dir.path(), &cfg);
    assert_eq!(s.state().lost, None);
    assert_eq!(s.state().last_seq, 11);
}

#[test]
fn torn_tail_without_checkpoint() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = FileStoreConfig::default();
    drop(write_n(dir.path(), &cfg, 10));
    let blk = block_files(dir.path()).pop().unwrap();
    let (off, _) = *records(&blk).last().unwrap();
    // Keep the header of the last record (it names seq 10), lose its tail.
    std::fs::OpenOptions::new()
        .write(true)
        .open(&blk)
        .unwrap()
        .set_len(off as u64 + 30)
        .unwrap();
    let s = open(dir.path(), &cfg);
    let st = s.state();
    assert_eq!((st.msgs, st.last_seq), (9, 10));
    assert_eq!(
        st.lost,
        Some(LostData {
            msgs: vec![10],
            bytes: 30
        })
    );
    drop(s);
    // Only 3 bytes left of the last record: nothing says which sequence it was.
    std::fs::OpenOptions::new()
        .write(true)
        .open(&blk)
        .unwrap()
        .set_len(off as u64 + 3)
        .unwrap();
    let s = open(dir.path(), &cfg);
    assert_eq!(s.state().msgs, 9);
    assert_eq!(
        s.state().lost,
        Some(LostData {
            msgs: vec![],
            bytes: 3
        })
    );
}

#[test]
fn zeroed_record_is_cut_and_later_records_are_reported() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = FileStoreConfig::default();
    drop(write_n(dir.path(), &cfg, 5));
    let blk = block_files(dir.path()).pop().unwrap();
    let recs = records(&blk);
    let mut data = std::fs::read(&blk).unwrap();
    let (off, len) = recs[2];
    data[off..off + len].fill(0);
    std::fs::write(&blk, &data).unwrap();
    let s = open(dir.path(), &cfg);
    let st = s.state();
    assert_eq!((st.msgs, st.first_seq, st.last_seq), (2, 1, 5));
    let lost = st.lost.unwrap();
    assert_eq!(lost.msgs, vec![3, 4, 5]);
    assert_eq!(lost.bytes, (data.len() - off) as u64);
    expect_msg(&s, 1);
    expect_msg(&s, 2);
    for seq in 3..=5 {
        assert!(s.get(seq).unwrap().is_none());
    }
}

/// Flips one bit in every byte of a small block, with and without a checkpoint: opening never
/// panics, and no message whose record was damaged is ever returned.
#[test]
fn flipped_bit_in_any_byte_is_detected() {
    let base = tempfile::tempdir().unwrap();
    let cfg = FileStoreConfig::default();
    for with_checkpoint in [false, true] {
        let pristine = base.path().join(format!("p{with_checkpoint}"));
        let mut s = write_n(&pristine, &cfg, 4);
        if with_checkpoint {
            s.close().unwrap();
        }
        drop(s);
        let blk = block_files(&pristine).pop().unwrap();
        let recs = records(&blk);
        let data = std::fs::read(&blk).unwrap();
        for i in 0..data.len() {
            let work = base.path().join(format!("w{with_checkpoint}-{i}"));
            copy_dir(&pristine, &work);
            let wblk = work.join("S").join("msgs").join(blk.file_name().unwrap());
            let mut d = data.clone();
            d[i] ^= 1 << (i % 8);
            std::fs::write(&wblk, &d).unwrap();
            let damaged = recs.iter().position(|(o, l)| i >= *o && i < o + l).unwrap() as u64 + 1;
            let s = open(&work, &cfg);
            for seq in 1..=4u64 {
                match s.get(seq) {
                    Ok(Some(m)) => {
                        assert_ne!(seq, damaged, "byte {i}: damaged record served");
                        assert_eq!(m.payload, payload(seq), "byte {i}");
                    }
                    Ok(None) => assert!(seq >= damaged, "byte {i}: seq {seq} lost"),
                    Err(StoreError::Corrupt { .. }) => assert_eq!(seq, damaged, "byte {i}"),
                    Err(e) => panic!("byte {i}: {e}"),
                }
            }
            if !with_checkpoint {
                // The damaged record alone is skipped when intact records follow it; when
                // the damage makes the rest unreadable (e.g. its length), the block is cut.
                let msgs = s.state().msgs;
                assert!(msgs == 3 || msgs == damaged - 1, "byte {i}: {msgs} left");
                assert!(s.state().lost.is_some());
            }
            drop(s);
            std::fs::remove_dir_all(&work).unwrap();
        }
    }
}

/// A store on a fault-injecting backend holding messages 1..=3, committed.
fn faulty_with_three(dir: &std::path::Path, cfg: &FileStoreConfig) -> (FileStore, FaultyBackend) {
    let fb = FaultyBackend::new(StdBackend);
    let mut s = FileStore::open_with_backend(dir, "S", cfg.clone(), Arc::new(fb.clone())).unwrap();
    for i in 1..=3 {
        s.append("m.0", None, payload(i), 1).unwrap();
    }
    s.commit().unwrap();
    (s, fb)
}

#[test]
fn a_failed_fsync_rolls_back_the_commit_and_the_store_carries_on() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = FileStoreConfig::default();
    let (mut s, fb) = faulty_with_three(dir.path(), &cfg);
    fb.fail_nth(FaultOp::Sync, 1);
    s.append("m.0", None, payload(4), 1).unwrap();
    assert!(matches!(s.commit(), Err(StoreError::Io(_))));
    // Rolled back: message 4 never existed, nothing is lost, the store works.
    assert!(!s.is_poisoned());
    assert!(s.get(4).unwrap().is_none());
    assert_eq!(s.state().last_seq, 3);
    assert!(s.state().lost.is_none());
    assert_eq!(s.append("m.0", None, payload(5), 1).unwrap().0, 4);
    s.commit().unwrap();
    drop(s);
    let s = open(dir.path(), &cfg);
    for seq in 1..=3 {
        assert_eq!(s.get(seq).unwrap().unwrap().payload, payload(seq));
    }
    assert_eq!(s.get(4).unwrap().unwrap().payload, payload(5));
    assert!(s.state().lost.is_none());
}

#[test]
fn a_torn_write_rolls_back_to_the_committed_prefix() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = FileStoreConfig::default();
    let (mut s, fb) = faulty_with_three(dir.path(), &cfg);
    fb.fail_nth(FaultOp::Write, 1);
    for i in 4..=6 {
        s.append("m.0", None, payload(i), 1).unwrap();
    }
    assert!(matches!(s.commit(), Err(StoreError::Io(_))));
    assert_eq!(s.state().msgs, 3);
    for seq in 4..=6 {
        assert!(s.get(seq).unwrap().is_none(), "phantom {seq}");
    }
    assert_eq!(s.append("m.0", None, payload(7), 1).unwrap().0, 4);
    s.commit().unwrap();
    drop(s);
    let s = open(dir.path(), &cfg);
    assert_eq!(s.state().msgs, 4);
    assert!(
        s.state().lost.is_none(),
        "the torn bytes were cut by the rollback"
    );
    assert_eq!(s.get(4).unwrap().unwrap().payload, payload(7));
}

#[test]
fn a_full_disk_refuses_until_space_returns_then_works_without_reopening() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = FileStoreConfig {
        block_size: 4096,
        ..FileStoreConfig::default()
    };
    let (mut s, fb) = faulty_with_three(dir.path(), &cfg);
    fb.set_space(Some(100));
    for i in 4..=10 {
        s.append("m.0", None, payload(i), 1).unwrap();
    }
    let e = s.commit().unwrap_err();
    assert!(
        e.to_string().contains("No space left") || e.to_string().contains("os error 28"),
        "{e}"
    );
    assert_eq!(s.state().last_seq, 3);
    // Still full: every try fails and rolls back, reads keep serving what is committed.
    s.append("m.0", None, payload(11), 1).unwrap();
    assert!(s.commit().is_err());
    assert_eq!(s.get(3).unwrap().unwrap().payload, payload(3));
    // Space is back: the same store object takes writes again.
    fb.set_space(None);
    for i in 12..=14 {
        s.append("m.0", None, payload(i), 1).unwrap();
    }
    s.commit().unwrap();
    assert_eq!(s.state().msgs, 6);
    drop(s);
    let s = open(dir.path(), &cfg);
    assert_eq!(s.state().msgs, 6);
    assert_eq!(s.get(6).unwrap().unwrap().payload, payload(14));
    assert!(s.state().lost.is_none());
}

#[test]
fn a_rollback_that_fails_poisons_reads_until_a_later_one_succeeds() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = FileStoreConfig::default();
    let (mut s, fb) = faulty_with_three(dir.path(), &cfg);
    // Writes fail and so does truncating the torn bytes away.
    fb.fail_from_nth(FaultOp::Write, 1);
    fb.fail_from_nth(FaultOp::SetLen, 1);
    s.append("m.0", None, payload(4), 1).unwrap();
    assert!(matches!(s.commit(), Err(StoreError::Io(_))));
    assert!(s.is_poisoned());
    // Message 4 is in the index but never reached the disk: nothing is served.
    assert!(matches!(s.get(4), Err(StoreError::Poisoned)));
    assert!(matches!(s.get(1), Err(StoreError::Poisoned)));
    assert!(matches!(
        s.append("m.0", None, payload(5), 1),
        Err(StoreError::Poisoned)
    ));
    fb.clear();
    // The next mutation retries the rollback, then does its work.
    assert_eq!(s.append("m.0", None, payload(6), 1).unwrap().0, 4);
    s.commit().unwrap();
    assert!(!s.is_poisoned());
    assert_eq!(s.get(4).unwrap().unwrap().payload, payload(6));
}

#[test]
fn group_commit_is_one_write_and_one_fsync() {
    let dir = tempfile::tempdir().unwrap();
    let fb = FaultyBackend::new(StdBackend);
    let mut s = FileStore::open_with_backend(
        dir.path(),
        "S",
        FileStoreConfig::default(),
        Arc::new(fb.clone()),
    )
    .unwrap();
    let count = |op| fb.count(op);
    for round in 0..2 {
        let (w, sy, sd) = (
            count(FaultOp::Write),
            count(FaultOp::Sync),
            count(FaultOp::SyncDir),
        );
        for i in 0..100 {
            s.append("m.1", None, payload(i), i as i64).unwrap();
        }
        s.commit().unwrap();
        assert_eq!(count(FaultOp::Write) - w, 1, "round {round}");
        assert_eq!(count(FaultOp::Sync) - sy, 1, "round {round}");
        // A new block file (round 0) also fsyncs the directory.
        assert_eq!(
            count(FaultOp::SyncDir) - sd,
            u64::from(round == 0),
            "round {round}"
        );
    }
}

#[test]
fn interval_mode_syncs_on_the_timer_only() {
    let dir = tempfile::tempdir().unwrap();
    let fb = FaultyBackend::new(StdBackend);
    let cfg = FileStoreConfig {
        sync: SyncMode::Interval(Duration::from_secs(1)),
        ..FileStoreConfig::default()
    };
    let mut s = FileStore::open_with_backend(dir.path(), "S", cfg, Arc::new(fb.clone())).unwrap();
    let sy = fb.count(FaultOp::Sync);
    s.append("m.1", None, payload(1), 1).unwrap();
    s.commit().unwrap();
    assert_eq!(fb.count(FaultOp::Sync), sy);
    s.sync().unwrap();
    assert_eq!(fb.count(FaultOp::Sync), sy + 1);
    assert_eq!(s.config().sync, SyncMode::Interval(Duration::from_secs(1)));
}

#[test]
fn checkpoint_used_when_valid() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = small(300);
    let mut s = write_n(dir.path(), &cfg, 40);
    s.delete(5, false).unwrap();
    s.delete(17, true).unwrap();
    let before = s.state();
    s.close().unwrap();
    drop(s);
    let mut s = open(dir.path(), &cfg);
    let r = s.recovery_report().clone();
    assert!(r.from_checkpoint);
    assert_eq!(r.records_scanned, 0);
    assert_eq!(s.state(), before);
    expect_msg(&s, 40);
    // Written after the checkpoint: only that tail is scanned.
    for i in 41..=45 {
        s.append(&format!("m.{}", i % 3), None, payload(i), i as i64)
            .unwrap();
    }
    s.commit().unwrap();
    s.delete(2, false).unwrap();
    let before = s.state();
    drop(s);
    let s = open(dir.path(), &cfg);
    let r = s.recovery_report();
    assert!(r.from_checkpoint);
    assert!(r.records_scanned >= 6 && r.records_scanned <= 8, "{r:?}");
    assert_eq!(s.state(), before);
    for seq in (1..=45).filter(|s| ![2, 5, 17].contains(s)) {
        expect_msg(&s, seq);
    }
}

#[test]
fn checkpoint_survives_removed_blocks() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = small(200);
    let mut s = write_n(dir.path(), &cfg, 40);
    s.close().unwrap();
    let blocks = s.block_count();
    s.purge(PurgeRequest {
        seq: Some(20),
        ..Default::default()
    })
    .unwrap();
    assert!(s.block_count() < blocks);
    let before = s.state();
    drop(s);
    let s = open(dir.path(), &cfg);
    assert!(s.recovery_report().from_checkpoint);
    assert_eq!(s.state(), before);
    for seq in 20..=40 {
        expect_msg(&s, seq);
    }
}

#[test]
fn checkpoint_ignored_when_corrupt_or_stale() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = FileStoreConfig::default();
    let mut s = write_n(dir.path(), &cfg, 10);
    s.close().unwrap();
    let before = s.state();
    drop(s);
    let chk = dir.path().join("S").join("index.chk");
    let mut data = std::fs::read(&chk).unwrap();
    data[20] ^= 0x40;
    std::fs::write(&chk, &data).unwrap();
    let mut s = open(dir.path(), &cfg);
    assert!(!s.recovery_report().from_checkpoint);
    assert_eq!(s.recovery_report().records_scanned, 10);
    assert_eq!(s.state(), before);
    assert!(!chk.exists(), "an unusable checkpoint is removed");
    s.close().unwrap();
    drop(s);
    // Stale: the last record differs from the one the checkpoint recorded.
    let blk = block_files(dir.path()).pop().unwrap();
    let mut d = std::fs::read(&blk).unwrap();
    let n = d.len();
    d[n - 6] ^= 1;
    std::fs::write(&blk, &d).unwrap();
    let s = open(dir.path(), &cfg);
    assert!(!s.recovery_report().from_checkpoint);
    assert_eq!(s.state().msgs, 9);
    assert_eq!(s.state().lost.as_ref().unwrap().msgs, vec![10]);
}

#[test]
fn corrupt_record_behind_a_valid_checkpoint_is_an_error_not_data() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = FileStoreConfig::default();
    let mut s = write_n(dir.path(), &cfg, 3);
    s.close().unwrap();
    drop(s);
    let blk = block_files(dir.path()).pop().unwrap();
    let (off, len) = records(&blk)[0];
    let mut d = std::fs::read(&blk).unwrap();
    d[off + len - 6] ^= 0x10;
    std::fs::write(&blk, &d).unwrap();
    let s = open(dir.path(), &cfg);
    assert!(s.recovery_report().from_checkpoint);
    assert!(matches!(s.get(1), Err(StoreError::Corrupt { .. })));
    expect_msg(&s, 2);
    expect_msg(&s, 3);
}

#[test]
fn rollover_and_removal_of_emptied_blocks() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = small(200);
    let mut s = write_n(dir.path(), &cfg, 40);
    let n = s.block_count();
    assert!(n >= 8, "{n} blocks");
    for f in block_files(dir.path()) {
        assert!(std::fs::metadata(f).unwrap().len() <= 200);
    }
    // Empty the second block: it goes away (tombstones may start a new block meanwhile).
    let files = block_files(dir.path());
    let second = records(&files[1]).len() as u64;
    let first = records(&files[0]).len() as u64;
    for seq in first + 1..=first + second {
        assert!(files[1].exists());
        s.delete(seq, false).unwrap();
    }
    assert!(!files[1].exists());
    assert!(files[0].exists());
    let before = s.state();
    drop(s);
    let mut s = open(dir.path(), &cfg);
    assert_eq!(s.state(), before);
    assert!(s.get(first + 1).unwrap().is_none());
    s.purge(PurgeRequest::default()).unwrap();
    assert_eq!(s.block_count(), 1);
    drop(s);
    let s = open(dir.path(), &cfg);
    let st = s.state();
    assert_eq!((st.msgs, st.first_seq, st.last_seq), (0, 41, 40));
    assert_eq!(s.block_count(), 1);
}

#[test]
fn limits_keep_block_count_bounded() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = small(512);
    let mut s = open(dir.path(), &cfg);
    s.set_limits(StoreLimits {
        max_msgs_per_subject: 1,
        ..Default::default()
    })
    .unwrap();
    for i in 0..2000u64 {
        s.append(&format!("kv.{}", i % 5), None, payload(i), i as i64)
            .unwrap();
        if i % 7 == 0 {
            s.commit().unwrap();
        }
    }
    s.commit().unwrap();
    assert!(s.block_count() <= 4, "{} blocks", s.block_count());
    let before = s.state();
    assert_eq!(before.msgs, 5);
    drop(s);
    let mut s = open(dir.path(), &cfg);
    assert_eq!(s.state(), before);
    s.set_limits(StoreLimits {
        max_msgs: 10,
        ..Default::default()
    })
    .unwrap();
    for i in 0..1000u64 {
        s.append("q", None, payload(i), i as i64).unwrap();
        s.commit().unwrap();
    }
    assert!(s.block_count() <= 4, "{} blocks", s.block_count());
    assert_eq!(s.state().msgs, 10);
}

#[test]
fn erase_overwrites_bytes_on_disk() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = FileStoreConfig::default();
    let mut s = open(dir.path(), &cfg);
    s.append("secret.subject", None, b("top-secret-payload"), 1)
        .unwrap();
    s.append("other", None, b("keep"), 2).unwrap();
    s.commit().unwrap();
    assert!(s.delete(1, true).unwrap());
    let blk = block_files(dir.path()).pop().unwrap();
    let data = std::fs::read(&blk).unwrap();
    let has = |needle: &[u8]| data.windows(needle.len()).any(|w| w == needle);
    assert!(!has(b"top-secret-payload"));
    assert!(!has(b"secret.subject"));
    assert!(has(b"keep"));
    drop(s);
    let s = open(dir.path(), &cfg);
    assert!(s.state().lost.is_none());
    assert!(s.get(1).unwrap().is_none());
    assert_eq!(s.get(2).unwrap().unwrap().payload, b("keep"));
}

#[test]
fn empty_trailing_block_keeps_the_sequence() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = FileStoreConfig::default();
    let mut s = write_n(dir.path(), &cfg, 5);
    s.purge(PurgeRequest::default()).unwrap();
    drop(s);
    let last = block_files(dir.path()).pop().unwrap();
    let n: u32 = last.file_stem().unwrap().to_str().unwrap().parse().unwrap();
    std::fs::write(last.with_file_name(format!("{}.blk", n + 1)), b"").unwrap();
    let mut s = open(dir.path(), &cfg);
    assert_eq!(s.state().last_seq, 5);
    assert_eq!(s.append("m.0", None, payload(6), 6).unwrap().0, 6);
}

#[test]
fn cut_at_a_record_boundary_is_caught_by_the_checkpoint() {
    // Unsynced writes can vanish exactly at a record boundary: no bad record to see, but the
    // checkpoint knew a later sequence.
    let dir = tempfile::tempdir().unwrap();
    let cfg = FileStoreConfig::default();
    let mut s = write_n(dir.path(), &cfg, 10);
    s.close().unwrap();
    drop(s);
    let blk = block_files(dir.path()).pop().unwrap();
    let (off, _) = *records(&blk).last().unwrap();
    std::fs::OpenOptions::new()
        .write(true)
        .open(&blk)
        .unwrap()
        .set_len(off as u64)
        .unwrap();
    let mut s = open(dir.path(), &cfg);
    let st = s.state();
    assert_eq!((st.msgs, st.last_seq), (9, 10));
    assert_eq!(
        st.lost,
        Some(LostData {
            msgs: vec![10],
            bytes: 0
        })
    );
    assert_eq!(s.append("m.2", None, payload(11), 11).unwrap().0, 11);
}

/// A message with headers is read as one buffer (`raw`: headers then payload) that the
/// header and payload views point into, so a delivery sends it without a copy.
#[test]
fn headers_and_payload_are_read_contiguously() {
    let dir = tempfile::tempdir().unwrap();
    let mut s = open(dir.path(), &FileStoreConfig::default());
    let hdr = Bytes::from_static(b"NATS/1.0\r\nA: b\r\n\r\n");
    s.append("h.1", Some(hdr.clone()), Bytes::from_static(b"body"), 1)
        .unwrap();
    s.append("h.2", None, Bytes::from_static(b"plain"), 2)
        .unwrap();
    s.commit().unwrap();
    let m = s.get(1).unwrap().unwrap();
    let raw = m.raw.clone().expect("contiguous");
    assert_eq!(&raw[..], b"NATS/1.0\r\nA: b\r\n\r\nbody");
    let h = m.headers.clone().unwrap();
    assert_eq!(h.as_ptr(), raw.as_ptr(), "headers are a view of raw");
    assert_eq!(
        m.payload.as_ptr(),
        raw[h.len()..].as_ptr(),
        "so is the payload"
    );
    assert!(
        s.get(2).unwrap().unwrap().raw.is_none(),
        "no headers: nothing to join"
    );
}

/// A memory store joins a headered message once, when it is stored: every read shares it.
#[test]
fn memory_store_keeps_headered_messages_contiguous() {
    let mut s = petrel_store::MemStore::new();
    let hdr = Bytes::from_static(b"NATS/1.0\r\nA: b\r\n\r\n");
    s.append("h.1", Some(hdr), Bytes::from_static(b"body"), 1)
        .unwrap();
    let (a, b) = (s.get(1).unwrap().unwrap(), s.get(1).unwrap().unwrap());
    let raw = a.raw.clone().expect("contiguous");
    assert_eq!(&raw[..], b"NATS/1.0\r\nA: b\r\n\r\nbody");
    assert_eq!(
        b.raw.unwrap().as_ptr(),
        raw.as_ptr(),
        "reads share one buffer"
    );
    assert_eq!(a.headers.unwrap().as_ptr(), raw.as_ptr());
}

#[test]
fn closing_an_idle_store_keeps_its_checkpoint_without_rewriting_it() {
    let dir = tempfile::tempdir().unwrap();
    let fb = FaultyBackend::new(StdBackend);
    let open = || {
        FileStore::open_with_backend(
            dir.path(),
            "S",
            FileStoreConfig::default(),
            Arc::new(fb.clone()),
        )
        .unwrap()
    };
    let mut s = open();
    for i in 0..10 {
        s.append("m.1", None, payload(i), i as i64).unwrap();
    }
    s.commit().unwrap();
    let renames = fb.count(FaultOp::Rename);
    s.close().unwrap();
    assert_eq!(
        fb.count(FaultOp::Rename) - renames,
        1,
        "a changed store writes its checkpoint"
    );
    drop(s);
    // Reopened from the checkpoint, nothing changed: closing writes nothing.
    let mut s = open();
    assert!(s.recovery_report().from_checkpoint);
    let (renames, syncs) = (fb.count(FaultOp::Rename), fb.count(FaultOp::Sync));
    s.close().unwrap();
    assert_eq!(fb.count(FaultOp::Rename) - renames, 0);
    assert_eq!(fb.count(FaultOp::Sync) - syncs, 0);
    drop(s);
    // The kept checkpoint is still current; one more message makes the next close write.
    let mut s = open();
    assert!(s.recovery_report().from_checkpoint);
    assert_eq!(s.state().msgs, 10);
    s.append("m.1", None, payload(10), 10).unwrap();
    s.commit().unwrap();
    let renames = fb.count(FaultOp::Rename);
    s.close().unwrap();
    assert_eq!(fb.count(FaultOp::Rename) - renames, 1);
    drop(s);
    let s = open();
    assert!(s.recovery_report().from_checkpoint);
    assert_eq!(s.state().msgs, 11);
}
