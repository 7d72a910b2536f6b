//! A member whose Raft log was found damaged at recovery (fsynced entries cut: a flipped
//! bit, a bad record — not a torn, unacknowledged append) may have lost entries a quorum
//! acknowledged. Raft assumes it did not: such a member would vote for, or win as, a
//! candidate missing those entries, and the new leader would overwrite the copies left on
//! the others. So it abstains — it does not stand for election and refuses every vote —
//! until a leader elected without it has brought it up to that leader's commit index.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;

use openraft::Raft;

use crate::group::{GroupConfig, NodeId};

/// Whether a member abstains, and the highest commit index a leader announced to it.
#[derive(Debug, Default)]
pub(crate) struct Abstain {
    on: AtomicBool,
    /// The leaders' commit index + 1 (0: no leader heard yet).
    commit: AtomicU64,
}

impl Abstain {
    /// Whether the member abstains now.
    pub fn on(&self) -> bool {
        self.on.load(Ordering::Acquire)
    }

    /// An AppendEntries from a leader said `commit` is committed.
    pub fn heard(&self, commit: Option<u64>) {
        if self.on() {
            let next = commit.map_or(1, |c| c.saturating_add(2));
            self.commit.fetch_max(next, Ordering::AcqRel);
        }
    }

    /// Starts abstaining on `raft` (member `me`); a task ends it once the member has
    /// applied what a leader announced as committed.
    pub fn start(self: &Arc<Self>, raft: Raft<GroupConfig>, me: NodeId, group: String) {
        self.on.store(true, Ordering::Release);
        raft.runtime_config().elect(false);
        tracing::warn!(
            group,
            "raft log damaged at recovery: this member neither runs nor votes until a leader has caught it up"
        );
        let me_abstain = self.clone();
        tokio::spawn(async move {
            let mut metrics = raft.metrics();
            loop {
                let done = {
                    let m = metrics.borrow();
                    let heard = me_abstain.commit.load(Ordering::Acquire);
                    let applied = m.last_applied.map_or(1, |l| l.index + 2);
                    let led = m.current_leader.is_some_and(|l| l != me);
                    // Alone, there is nobody to learn from: it goes on with what it has.
                    let voters: Vec<NodeId> =
                        m.membership_config.membership().voter_ids().collect();
                    voters == [me] || (led && heard > 0 && applied >= heard)
                };
                if done {
                    me_abstain.on.store(false, Ordering::Release);
                    raft.runtime_config().elect(true);
                    tracing::info!(group, "caught up from the leader: voting again");
                    return;
                }
                if metrics.changed().await.is_err() {
                    return;
                }
            }
        });
    }
}
