//! Changing where a stream's replicas are: the meta leader computes the new peer set
//! (`num_replicas` changed by `STREAM.UPDATE`, or `STREAM.PEER.REMOVE`) and commits it in
//! the assignment; then, on each node:
//!
//! * the stream leader moves its group's voters to the assignment ([`converge_loop`]):
//!   new replicas catch up from the log as learners before they vote; a leader that is
//!   taken out hands over to a replica that stays;
//! * a replica taken out keeps running (its vote may still be needed to commit the
//!   change) until the leader says it is out ([`leave_loop`]), then the reconcile task
//!   removes it.

use std::collections::BTreeMap;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Weak};
use std::time::Duration;

use petrel_replication::{Converged, NodeId};
use serde::Deserialize;

use super::meta::{MetaOp, StreamAssignment};
use super::replica::Replica;
use super::JsCluster;
use crate::api::streams::Success;
use crate::api::{respond, ApiResponse};
use crate::config::StreamConfig;
use crate::errors::ApiError;
use crate::stream::Stream;

/// How often a stream leader compares its group's voters with the assignment.
const CONVERGE_EVERY: Duration = Duration::from_secs(1);
/// How often a replica taken out asks whether it may stop.
const LEAVE_EVERY: Duration = Duration::from_millis(500);

/// While the stream is open: on its leader, moves the group's voters to the assignment.
pub(super) async fn converge_loop(c: Weak<JsCluster>, stream: Weak<Stream>) {
    let mut tick = tokio::time::interval(CONVERGE_EVERY);
    loop {
        tick.tick().await;
        let (Some(c), Some(s)) = (c.upgrade(), stream.upgrade()) else {
            return;
        };
        if s.is_closed() {
            return;
        }
        let Some(r) = s.replica.get().cloned() else {
            return;
        };
        if !r.group.is_leader() {
            continue;
        }
        let target: BTreeMap<NodeId, String> = r.assignment.lock().peers.iter().cloned().collect();
        match r.group.converge(c.transport.as_ref(), &target).await {
            Ok(Converged::Nothing) => {}
            Ok(Converged::Changed) => tracing::info!(
                stream = %s.name,
                replicas = ?target.values().collect::<Vec<_>>(),
                "JetStream cluster: stream replicas changed"
            ),
            Ok(Converged::SteppedDown(_)) => tracing::info!(
                stream = %s.name,
                "JetStream cluster: leader taken out of the stream; handed over"
            ),
            Err(e) => tracing::warn!(stream = %s.name, "changing the stream's replicas: {e}"),
        }
    }
}

/// On a replica taken out of its stream: waits until the leader's committed voters no
/// longer hold this node (or the assignment takes it back), then has the reconcile task
/// remove it.
pub(super) async fn leave_loop(c: Weak<JsCluster>, account: String, r: Arc<Replica>) {
    let name = r.assignment.lock().config.name.clone();
    loop {
        tokio::time::sleep(LEAVE_EVERY).await;
        let Some(c) = c.upgrade() else { return };
        let a = c.state.stream(&account, &name);
        let same = a.as_ref().is_some_and(|a| *a.group == *r.group.name);
        if !same || a.as_ref().is_some_and(|a| a.has(c.me)) {
            // Deleted, recreated or taken back: the reconcile task decides.
            r.leaving.store(false, Ordering::Release);
            c.state.notify(&account, &name);
            return;
        }
        let others: Vec<NodeId> = a.iter().flat_map(|a| a.peers.iter().map(|p| p.0)).collect();
        if r.group.was_removed(c.transport.as_ref(), &others).await {
            r.left.store(true, Ordering::Release);
            c.state.notify(&account, &name);
            return;
        }
    }
}

/// The peer set of `a` with `n` replicas: the current ones (when shrinking, the stream
/// leader first, then the online ones), plus new ones placed on the least loaded online
/// members that fit `cfg`'s placement. From a blocking thread (asks the replicas who leads).
pub(super) fn scaled(
    c: &JsCluster,
    a: &StreamAssignment,
    cfg: &StreamConfig,
    n: usize,
) -> Result<Vec<(NodeId, String)>, ApiError> {
    let mut peers = a.peers.clone();
    if n <= peers.len() {
        let leader = super::api::block_on(stream_leader(c, a));
        let online = c.online();
        peers.sort_by_key(|(id, name)| (Some(*id) != leader, !online.contains_key(name)));
        peers.truncate(n);
        return Ok(peers);
    }
    let skip: Vec<NodeId> = peers.iter().map(|p| p.0).collect();
    peers.extend(super::placement::place(c, n - peers.len(), cfg, &skip)?);
    Ok(peers)
}

/// Which replica of `a` leads its group, asking them all at once (a second at most).
async fn stream_leader(c: &JsCluster, a: &StreamAssignment) -> Option<NodeId> {
    if let Some(g) = c.registry.get(&a.group) {
        if g.is_leader() {
            return Some(c.me);
        }
    }
    let mut asks = tokio::task::JoinSet::new();
    for (id, _) in a.peers.iter().filter(|(id, _)| *id != c.me) {
        let (t, id, group) = (c.transport.clone(), *id, a.group.clone());
        asks.spawn(async move {
            petrel_replication::leads(t.as_ref(), id, &group, Duration::from_secs(1))
                .await
                .then_some(id)
        });
    }
    while let Some(answer) = asks.join_next().await {
        if let Ok(Some(id)) = answer {
            return Some(id);
        }
    }
    None
}

/// `STREAM.PEER.REMOVE`'s body.
#[derive(Deserialize)]
struct RemoveRequest {
    #[serde(default)]
    peer: String,
}

/// `STREAM.PEER.REMOVE.<name>` on the meta leader: replaces the named replica (server
/// name or peer id) with another online member; refused (10075) when there is none, as
/// nats-server.
pub(super) fn remove_peer(c: &JsCluster, account: &str, name: &str, payload: &[u8]) -> ApiResponse {
    let result = (|| {
        if crate::api::is_empty_request(payload) {
            return Err(ApiError::bad_request());
        }
        let req: RemoveRequest =
            serde_json::from_slice(payload).map_err(|_| ApiError::invalid_json())?;
        if req.peer.is_empty() {
            return Err(ApiError::bad_request());
        }
        let a = c
            .state
            .stream(account, name)
            .ok_or_else(ApiError::stream_not_found)?;
        let gone = a
            .peers
            .iter()
            .find(|(id, n)| *n == req.peer || super::peer_hash(*id) == req.peer)
            .map(|p| p.0)
            .ok_or_else(ApiError::cluster_peer_not_member)?;
        let skip: Vec<NodeId> = a.peers.iter().map(|p| p.0).collect();
        let replacement =
            super::placement::place(c, 1, &a.config, &skip).map_err(|_| ApiError::peer_remap())?;
        let peers: Vec<(NodeId, String)> = a
            .peers
            .iter()
            .filter(|(id, _)| *id != gone)
            .cloned()
            .chain(replacement)
            .collect();
        let op = MetaOp::UpdateStream {
            account: account.to_string(),
            config: a.config.clone(),
            peers: Some(peers),
        };
        super::api::block_on(c.propose_meta(&op)).map_err(|_| ApiError::cluster_not_available())?;
        Ok(Success { success: true })
    })();
    respond("stream_remove_peer", None, result)
}
