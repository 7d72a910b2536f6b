//! Snapshots and log purging over three in-process members: the log is purged behind
//! snapshots, and a member that was down meanwhile — restarted from its directory with
//! its in-memory state gone, so behind its own purge point — takes the leader's snapshot,
//! then the entries after it, and ends with exactly the leader's state.

use std::sync::atomic::Ordering;

use crate::tests_raft::{
    applied_everywhere, confirmed_leader, has_all, start_with, three_started_with, until,
    write_all, FAST, SERIAL,
};
use crate::Timing;

const SNAPPY: Timing = Timing {
    snapshot_bytes: 512,
    log_keep: 4,
    ..FAST
};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_member_behind_the_purged_log_catches_up_from_a_snapshot() {
    let _serial = SERIAL.lock().await;
    let (dirs, wire, nodes, _) = three_started_with(SNAPPY, true).await;
    let lead = confirmed_leader(&nodes).await;
    write_all(&lead, "a", 60).await;
    // Snapshots are taken and the log purged behind them, on every member.
    for (g, _) in &nodes {
        until("a snapshot and a purge", || {
            let m = g.metrics();
            m.snapshot.is_some() && m.purged.is_some()
        })
        .await;
    }
    let raft_log = |i: usize| {
        std::fs::metadata(dirs[i].path().join("raft.log"))
            .unwrap()
            .len()
    };
    let (down, _) = nodes.iter().find(|n| n.0.me != lead.me).unwrap();
    let down_id = down.me;
    wire.down.lock().insert(down_id);
    down.shutdown().await;
    write_all(&lead, "b", 200).await;
    let leader_index = lead.metrics().last_applied.map(|l| l.index);
    until("the leader purged past the member that is down", || {
        lead.metrics().purged.map(|l| l.index) > down.metrics().last_applied.map(|l| l.index)
    })
    .await;
    let want: Vec<String> = (0..60)
        .map(|i| format!("a{i}"))
        .chain((0..200).map(|i| format!("b{i}")))
        .collect();
    // Back from its directory, its strings gone: the log behind its own purge point is
    // dropped, the leader's snapshot installed, and the rest replicated.
    let (back, m) = start_with(
        &wire,
        down_id,
        dirs[(down_id - 1) as usize].path(),
        SNAPPY,
        true,
    )
    .await;
    applied_everywhere(&[&back], leader_index).await;
    has_all(&m, &want).await;
    // Twice: its own snapshot when it opened (its strings were gone), then the leader's
    // (its own was behind the leader's purge point).
    assert_eq!(m.installed.load(Ordering::Relaxed), 2);
    // More writes reach it through the log, and the logs stay small.
    write_all(&lead, "c", 5).await;
    let want: Vec<String> = want
        .into_iter()
        .chain((0..5).map(|i| format!("c{i}")))
        .collect();
    has_all(&m, &want).await;
    let lead_dir = (lead.me - 1) as usize;
    assert!(
        raft_log(lead_dir) < 16 * 1024,
        "the leader's log was not compacted: {} bytes",
        raft_log(lead_dir)
    );
}
