//! Changing who is in a group: the leader moves the voters to a target set (new members
//! first catch up as learners, then one joint-consensus change), and a member that was
//! taken out learns it from the leader ([`Op::Members`](crate::Op::Members)) before it
//! stops, so it never leaves while the old configuration still needs its vote.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use openraft::BasicNode;

use crate::group::{Group, NodeId};
use crate::net::{Op, Transport};

/// How long a new member may take to catch up before the change is tried again later.
const CATCH_UP: Duration = Duration::from_secs(30);

/// What one step of [`Group::converge`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Converged {
    /// The voters are the target already (or this node does not lead).
    Nothing,
    /// The voters changed to the target.
    Changed,
    /// This leader is not in the target: it handed the leadership to this member, which
    /// carries on.
    SteppedDown(NodeId),
}

impl Group {
    /// On the leader: makes `target` (id → server name) the voters. New members are
    /// added as learners and caught up from the log first; then one membership change
    /// (joint consensus) replaces the voters, removed members dropped entirely. A leader
    /// that is not in `target` hands the leadership to a member that is, which converges
    /// in its turn. Idempotent: call it whenever the target or the leadership changes.
    pub async fn converge(
        &self,
        transport: &dyn Transport,
        target: &BTreeMap<NodeId, String>,
    ) -> Result<Converged, String> {
        if !self.is_leader() || target.is_empty() {
            return Ok(Converged::Nothing);
        }
        let voters = self.voters();
        let wanted: BTreeSet<NodeId> = target.keys().copied().collect();
        if voters == wanted {
            return Ok(Converged::Nothing);
        }
        if !wanted.contains(&self.me) {
            let Some(to) = wanted.iter().copied().find(|id| voters.contains(id)) else {
                return Err("no member of the target is a voter to hand over to".into());
            };
            self.step_down(transport, to).await?;
            return Ok(Converged::SteppedDown(to));
        }
        let members = self.members();
        for (id, name) in target {
            if members.contains_key(id) {
                continue;
            }
            let added = self.raft().add_learner(*id, BasicNode::new(name), true);
            match tokio::time::timeout(CATCH_UP, added).await {
                Ok(Ok(_)) => {}
                Ok(Err(e)) => return Err(format!("adding {name}: {e}")),
                Err(_) => return Err(format!("{name} did not catch up within {CATCH_UP:?}")),
            }
        }
        self.raft()
            .change_membership(wanted, false)
            .await
            .map_err(|e| e.to_string())?;
        Ok(Converged::Changed)
    }

    /// On the leader: the voters of a membership that is committed and not joint
    /// (`None` on a follower, or while a change is under way).
    pub fn committed_voters(&self) -> Option<BTreeSet<NodeId>> {
        let m = self.metrics();
        if m.current_leader != Some(self.me) {
            return None;
        }
        let config = &m.membership_config;
        let committed = match (config.log_id(), m.last_applied) {
            (None, _) => true,
            (Some(at), Some(applied)) => at.index <= applied.index,
            (Some(_), None) => false,
        };
        let joint = config.membership().get_joint_config().len() > 1;
        (committed && !joint).then(|| config.membership().voter_ids().collect())
    }

    /// Whether this node was taken out of the group: one of `others` leads it and its
    /// committed voters do not include this node. A removed member asks instead of
    /// waiting to hear it, because the leader stops sending to it as soon as the new
    /// membership is appended.
    pub async fn was_removed(&self, transport: &dyn Transport, others: &[NodeId]) -> bool {
        for id in others.iter().copied().filter(|id| *id != self.me) {
            let Ok(reply) = transport
                .call(id, &self.name, Op::Members, Vec::new())
                .await
            else {
                continue;
            };
            let Ok(body) = crate::net::unframe(&reply) else {
                continue;
            };
            if let Ok(Some(voters)) = postcard::from_bytes::<Option<Vec<NodeId>>>(body) {
                return !voters.contains(&self.me);
            }
        }
        false
    }
}

/// Whether the member `id` of `group` leads it with a settled membership (asked over
/// `transport`, waiting at most `timeout`): how a node outside the group finds its leader.
pub async fn leads(transport: &dyn Transport, id: NodeId, group: &str, timeout: Duration) -> bool {
    let Ok(reply) = transport
        .call_with(id, group, Op::Members, Vec::new(), timeout)
        .await
    else {
        return false;
    };
    crate::net::unframe(&reply)
        .ok()
        .and_then(|body| postcard::from_bytes::<Option<Vec<NodeId>>>(body).ok())
        .flatten()
        .is_some()
}
