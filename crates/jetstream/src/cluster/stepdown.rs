//! `$JS.API.META.LEADER.STEPDOWN`, asked by a system-account user: the meta leader hands
//! its leadership to another online member (the `placement`'s `preferred` server, or one
//! matching its `cluster` and `tags`), answering first, as nats-server does. Only the
//! meta leader answers; other nodes and a leaderless cluster stay silent.

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
    let target = (|| {
        let placement = if is_object(payload) {
            serde_json::from_slice::<StepdownRequest>(payload)
                .map_err(|_| ApiError::invalid_json())?
                .placement
        } else {
            None
        };
        target(c, &placement.unwrap_or_default())
    })();
    let to = target.as_ref().ok().copied();
    let resp = respond(
        "meta_leader_stepdown",
        None,
        target.map(|_| Success { success: true }),
    );
    (resp, to)
}

/// Whether the body is a JSON object or array (nats-server parses only those).
fn is_object(payload: &[u8]) -> bool {
    payload
        .iter()
        .find(|b| !b.is_ascii_whitespace())
        .is_some_and(|b| *b == b'{' || *b == b'[')
}

/// The online member `placement` asks for, other than this node.
fn target(c: &JsCluster, placement: &Placement) -> Result<NodeId, ApiError> {
    let members = c.meta.members();
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
