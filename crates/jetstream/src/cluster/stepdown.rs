//! Leader stepdowns: `$JS.API.META.LEADER.STEPDOWN`, asked by a system-account user (only
//! the meta leader answers; other nodes and a leaderless cluster stay silent), and the
//! choice of the member a group's leadership goes to — shared with
//! `STREAM.LEADER.STEPDOWN`: the request's `placement` names a `preferred` server, or a
//! `cluster` and `tags` an online member must match; without one a random online member
//! is chosen, as nats-server does. The answer goes first, the handover follows.

use std::collections::BTreeMap;
use std::sync::Weak;

use bytes::Bytes;
use petrel_replication::NodeId;
use serde::Deserialize;

use super::JsCluster;
use crate::api::streams::Success;
use crate::api::{respond, ApiResponse};
use crate::errors::ApiError;
use crate::port::{Flow, Handler, Incoming};

/// The subject, heard in the system account.
pub(super) const META_STEPDOWN: &str = "$JS.API.META.LEADER.STEPDOWN";

/// The request's body (optional).
#[derive(Deserialize, Default)]
struct StepdownRequest {
    #[serde(default)]
    placement: Option<Placement>,
}

/// Where the leadership should go.
#[derive(Deserialize, Default)]
pub(super) struct Placement {
    #[serde(default)]
    cluster: String,
    #[serde(default)]
    tags: Vec<String>,
    #[serde(default)]
    preferred: String,
}

/// Answers the requests on the meta leader.
pub(super) struct MetaStepdown(pub Weak<JsCluster>, pub tokio::runtime::Handle);

impl Handler for MetaStepdown {
    fn handle(&self, msg: Incoming<'_>) -> Flow {
        let (Some(c), Some(reply)) = (self.0.upgrade(), msg.reply.filter(|r| !r.is_empty())) else {
            return Flow::Ok;
        };
        if !c.is_meta_leader() {
            return Flow::Ok;
        }
        let (reply, payload) = (reply.to_string(), msg.payload);
        self.1.spawn(async move {
            if !c
                .meta
                .confirm_leader(std::time::Duration::from_secs(2))
                .await
            {
                return;
            }
            let (resp, to) = decide(&c, &payload);
            c.port.publish(&reply, None, resp.headers, resp.payload);
            if let Some(to) = to {
                if let Err(e) = c.meta.step_down(c.transport.as_ref(), to).await {
                    tracing::warn!("JetStream cluster: meta leader stepdown failed: {e}");
                }
            }
        });
        Flow::Ok
    }
}

/// The answer, and the member to hand over to.
fn decide(c: &JsCluster, payload: &Bytes) -> (ApiResponse, Option<NodeId>) {
    let target = placement(payload).and_then(|p| target(c, &c.meta.members(), &p));
    let to = target.as_ref().ok().copied();
    let resp = respond(
        "meta_leader_stepdown",
        None,
        target.map(|_| Success { success: true }),
    );
    (resp, to)
}

/// The placement a stepdown request's body asks for (none when the body is not a JSON
/// object or array, which nats-server does not parse).
pub(super) fn placement(payload: &[u8]) -> Result<Placement, ApiError> {
    if !is_object(payload) {
        return Ok(Placement::default());
    }
    serde_json::from_slice::<StepdownRequest>(payload)
        .map(|r| r.placement.unwrap_or_default())
        .map_err(|_| ApiError::invalid_json())
}

/// Whether the body is a JSON object or array (nats-server parses only those).
fn is_object(payload: &[u8]) -> bool {
    payload
        .iter()
        .find(|b| !b.is_ascii_whitespace())
        .is_some_and(|b| *b == b'{' || *b == b'[')
}

/// The online member of `members` (a group's, by id) that `placement` asks for, other
/// than this node.
pub(super) fn target(
    c: &JsCluster,
    members: &BTreeMap<NodeId, String>,
    placement: &Placement,
) -> Result<NodeId, ApiError> {
    if !placement.preferred.is_empty() {
        let found = members.iter().find(|(_, n)| **n == placement.preferred);
        return match found {
            Some((id, _)) if *id == c.me => Err(ApiError::cluster_no_peers(format!(
                "preferred server {:?} is already leader",
                placement.preferred
            ))),
            Some((id, _)) => Ok(*id),
            None => Err(ApiError::cluster_no_peers(format!(
                "preferred server {:?} not known",
                placement.preferred
            ))),
        };
    }
    let online = c.online();
    let fits = |id: NodeId, name: &str| {
        let tags = c.tags_of(id);
        online.contains_key(name)
            && (placement.cluster.is_empty() || placement.cluster == c.config.cluster_name)
            && placement
                .tags
                .iter()
                .all(|t| tags.contains(&t.to_lowercase()))
    };
    let candidates: Vec<NodeId> = members
        .iter()
        .filter(|(id, name)| **id != c.me && fits(**id, name))
        .map(|(id, _)| *id)
        .collect();
    if candidates.is_empty() {
        return Err(ApiError::cluster_no_peers("no replacement peer connected"));
    }
    Ok(candidates[fastrand::usize(..candidates.len())])
}
