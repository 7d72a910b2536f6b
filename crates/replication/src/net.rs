//! The RPCs between group members: [`Transport`] is what the server provides (request and
//! reply over its routes), [`Network`] is openraft's side of it, and [`Registry`] answers
//! the RPCs that arrive for this node's groups. Bodies are openraft's requests and
//! responses in postcard; a reply's first byte says whether the callee answered (0) or
//! could not (1, then a UTF-8 reason).

use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use openraft::error::{InstallSnapshotError, RPCError, RaftError, RemoteError, Unreachable};
use openraft::network::RPCOption;
use openraft::raft::{
    AppendEntriesRequest, AppendEntriesResponse, InstallSnapshotRequest, InstallSnapshotResponse,
    VoteRequest, VoteResponse,
};
use openraft::{BasicNode, RaftNetwork, RaftNetworkFactory};
use parking_lot::RwLock;
use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::group::{Group, GroupConfig, NodeId};

/// The RPCs a group member sends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    /// AppendEntries (also the heartbeat).
    Append,
    /// RequestVote.
    Vote,
    /// InstallSnapshot (one chunk).
    Snapshot,
    /// Start an election now (a leader stepping down in favour of the callee).
    Elect,
    /// The callee's committed voters, if it leads (a removed member asking whether it
    /// may stop).
    Members,
}

impl Op {
    /// The op's token in a subject.
    pub fn token(self) -> &'static str {
        match self {
            Op::Append => "AE",
            Op::Vote => "V",
            Op::Snapshot => "SNAP",
            Op::Elect => "EL",
            Op::Members => "MB",
        }
    }

    /// The op named by a subject token.
    pub fn parse(token: &str) -> Option<Op> {
        Some(match token {
            "AE" => Op::Append,
            "V" => Op::Vote,
            "SNAP" => Op::Snapshot,
            "EL" => Op::Elect,
            "MB" => Op::Members,
            _ => return None,
        })
    }
}

/// A reply on its way back.
pub type Pending = Pin<Box<dyn Future<Output = Result<Vec<u8>, String>> + Send>>;

/// Carries one RPC to `target`'s copy of `group` and brings back its reply (as
/// [`Registry::serve`] produced it), or why it could not.
pub trait Transport: Send + Sync + 'static {
    /// Sends `body` and waits at most `timeout` for the reply.
    fn call_with(
        &self,
        target: NodeId,
        group: &str,
        op: Op,
        body: Vec<u8>,
        timeout: Duration,
    ) -> Pending;
}

impl dyn Transport {
    /// [`Transport::call_with`] with a 2-second timeout.
    pub fn call(&self, target: NodeId, group: &str, op: Op, body: Vec<u8>) -> Pending {
        self.call_with(target, group, op, body, Duration::from_secs(2))
    }
}

fn encode<T: Serialize>(v: &T) -> Vec<u8> {
    postcard::to_stdvec(v).unwrap_or_default()
}

/// Frames the callee's answer: `0` then the body, or `1` then why it could not answer.
pub fn frame_reply(answer: Result<Vec<u8>, String>) -> Vec<u8> {
    let (tag, mut rest) = match answer {
        Ok(body) => (0u8, body),
        Err(why) => (1u8, why.into_bytes()),
    };
    rest.insert(0, tag);
    rest
}

pub(crate) fn unframe(reply: &[u8]) -> Result<&[u8], String> {
    match reply.split_first() {
        Some((0, body)) => Ok(body),
        Some((_, why)) => Err(String::from_utf8_lossy(why).into_owned()),
        None => Err("empty reply".into()),
    }
}

/// openraft's network for one group: every client calls through the shared transport.
#[derive(Clone)]
pub(crate) struct Network {
    pub group: Arc<str>,
    pub transport: Arc<dyn Transport>,
}

/// A client to one member.
pub(crate) struct Client {
    target: NodeId,
    net: Network,
}

impl RaftNetworkFactory<GroupConfig> for Network {
    type Network = Client;

    async fn new_client(&mut self, target: NodeId, _node: &BasicNode) -> Client {
        Client {
            target,
            net: self.clone(),
        }
    }
}

type RpcResult<T, E> = Result<T, RPCError<NodeId, BasicNode, RaftError<NodeId, E>>>;

impl Client {
    async fn call<
        Req: Serialize,
        Resp: DeserializeOwned,
        E: DeserializeOwned + std::error::Error,
    >(
        &self,
        op: Op,
        req: &Req,
        option: &RPCOption,
    ) -> RpcResult<Resp, E> {
        let unreachable =
            |why: String| RPCError::Unreachable(Unreachable::new(&std::io::Error::other(why)));
        let reply = self
            .net
            .transport
            .call_with(
                self.target,
                &self.net.group,
                op,
                encode(req),
                option.hard_ttl(),
            )
            .await
            .map_err(unreachable)?;
        let body = unframe(&reply).map_err(unreachable)?;
        let answer: Result<Resp, RaftError<NodeId, E>> =
            postcard::from_bytes(body).map_err(|e| unreachable(format!("bad reply: {e}")))?;
        answer.map_err(|e| RPCError::RemoteError(RemoteError::new(self.target, e)))
    }
}

impl RaftNetwork<GroupConfig> for Client {
    async fn append_entries(
        &mut self,
        rpc: AppendEntriesRequest<GroupConfig>,
        option: RPCOption,
    ) -> RpcResult<AppendEntriesResponse<NodeId>, openraft::error::Infallible> {
        self.call(Op::Append, &rpc, &option).await
    }

    async fn install_snapshot(
        &mut self,
        rpc: InstallSnapshotRequest<GroupConfig>,
        option: RPCOption,
    ) -> RpcResult<InstallSnapshotResponse<NodeId>, InstallSnapshotError> {
        self.call(Op::Snapshot, &rpc, &option).await
    }

    async fn vote(
        &mut self,
        rpc: VoteRequest<NodeId>,
        option: RPCOption,
    ) -> RpcResult<VoteResponse<NodeId>, openraft::error::Infallible> {
        self.call(Op::Vote, &rpc, &option).await
    }
}

/// The largest snapshot a member takes from another (it is received into memory).
const MAX_SNAPSHOT: u64 = 4 << 30;

/// This node's groups by name, answering the RPCs addressed to them.
#[derive(Default)]
pub struct Registry {
    groups: RwLock<HashMap<String, Group>>,
}

impl Registry {
    /// Adds (or replaces) a group.
    pub fn insert(&self, group: Group) {
        self.groups.write().insert(group.name.to_string(), group);
    }

    /// Removes a group; returns it.
    pub fn remove(&self, name: &str) -> Option<Group> {
        self.groups.write().remove(name)
    }

    /// The group called `name`.
    pub fn get(&self, name: &str) -> Option<Group> {
        self.groups.read().get(name).cloned()
    }

    /// Every group.
    pub fn all(&self) -> Vec<Group> {
        self.groups.read().values().cloned().collect()
    }

    /// Answers one RPC for `group`: the framed reply to send back.
    pub async fn serve(&self, group: &str, op: Op, body: &[u8]) -> Vec<u8> {
        let Some(g) = self.get(group) else {
            return frame_reply(Err(format!("no group {group} here")));
        };
        frame_reply(serve_one(&g, op, body).await)
    }
}

async fn serve_one(g: &Group, op: Op, body: &[u8]) -> Result<Vec<u8>, String> {
    let bad = |e: postcard::Error| format!("bad request: {e}");
    let raft = g.raft();
    Ok(match op {
        Op::Append => {
            let req: AppendEntriesRequest<GroupConfig> = postcard::from_bytes(body).map_err(bad)?;
            g.abstain.heard(req.leader_commit.map(|l| l.index));
            encode(&raft.append_entries(req).await)
        }
        Op::Vote => {
            let req: VoteRequest<NodeId> = postcard::from_bytes(body).map_err(bad)?;
            if g.abstains() {
                // Refused without looking: this member may have lost committed entries.
                let refused: Result<VoteResponse<NodeId>, RaftError<NodeId>> = Ok(VoteResponse {
                    vote: req.vote,
                    vote_granted: false,
                    last_log_id: None,
                });
                return Ok(encode(&refused));
            }
            encode(&raft.vote(req).await)
        }
        Op::Snapshot => {
            let req: InstallSnapshotRequest<GroupConfig> =
                postcard::from_bytes(body).map_err(bad)?;
            // Chunks are written at their offset into one buffer: a peer's offset must not
            // make it grow past what a snapshot may be.
            let end = req.offset.checked_add(req.data.len() as u64);
            if end.is_none_or(|e| e > MAX_SNAPSHOT) {
                return Err(format!("snapshot chunk past {MAX_SNAPSHOT} bytes refused"));
            }
            encode(&raft.install_snapshot(req).await)
        }
        Op::Elect => {
            g.elect().await?;
            Vec::new()
        }
        Op::Members => encode(
            &g.committed_voters()
                .map(|v| v.into_iter().collect::<Vec<_>>()),
        ),
    })
}
