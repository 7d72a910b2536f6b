//! The meta group's state: which streams exist in which account, with which config, on
//! which peers. Entries are JSON [`MetaOp`]s; applying one updates the map and queues the
//! stream for this node's reconcile task (open, reconfigure or remove its replica). The
//! state lives in memory: after a restart the whole meta log is applied again.

use std::collections::BTreeMap;

use parking_lot::{Mutex, RwLock};
use petrel_replication::{
    BasicNode, EntryPayload, GroupEntry, LogId, Machine, NodeId, StoredMembership, Unappliable,
};
use serde::{Deserialize, Serialize};
use tokio::sync::mpsc;

use crate::config::StreamConfig;

/// The meta group's name.
pub(crate) const GROUP: &str = "_meta_";

/// Where a stream lives.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(crate) struct StreamAssignment {
    pub account: String,
    pub config: StreamConfig,
    /// Creation time (Unix ns), the same on every replica.
    pub created: i64,
    /// The stream group's name (unique per creation).
    pub group: String,
    /// The replicas: (node id, server name).
    pub peers: Vec<(NodeId, String)>,
    /// The replicas placed after the stream was created (a scale-up or a removed peer's
    /// replacement): they join the running group instead of initializing it.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub added: Vec<NodeId>,
}

impl StreamAssignment {
    /// Whether `id` holds a replica.
    pub fn has(&self, id: NodeId) -> bool {
        self.peers.iter().any(|(p, _)| *p == id)
    }

    /// Moves the replicas to `peers`; those not among them before count as added.
    pub fn set_peers(&mut self, peers: Vec<(NodeId, String)>) {
        for (id, _) in &peers {
            if !self.has(*id) && !self.added.contains(id) {
                self.added.push(*id);
            }
        }
        self.peers = peers;
    }
}

/// One change to the assignments.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "op")]
// Named for what they change: consumer and peer operations join them later.
#[allow(clippy::enum_variant_names)]
pub(crate) enum MetaOp {
    /// A new stream (refused when the name is taken).
    AddStream(StreamAssignment),
    /// A stream's new config, and with `peers` its new replicas (a scale or a peer
    /// removal).
    UpdateStream {
        account: String,
        config: StreamConfig,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        peers: Option<Vec<(NodeId, String)>>,
    },
    /// A stream removed.
    DeleteStream { account: String, name: String },
}

/// Every assignment, by (account, stream).
#[derive(Default)]
pub(crate) struct MetaState {
    streams: RwLock<BTreeMap<(String, String), StreamAssignment>>,
    /// Where applied changes are queued for the reconcile task.
    changed: Mutex<Option<mpsc::Sender<(String, String)>>>,
}

impl MetaState {
    /// The assignment of `account`'s stream `name`.
    pub fn stream(&self, account: &str, name: &str) -> Option<StreamAssignment> {
        self.streams
            .read()
            .get(&(account.to_string(), name.to_string()))
            .cloned()
    }

    /// Every stream of `account`, by name.
    pub fn streams(&self, account: &str) -> Vec<StreamAssignment> {
        self.streams
            .read()
            .values()
            .filter(|a| a.account == account)
            .cloned()
            .collect()
    }

    /// Whether some stream of `account` answers `DIRECT.GET.<name>`: the stream itself
    /// with `allow_direct`, or a mirror of it with `mirror_direct`.
    pub fn answers_direct(&self, account: &str, name: &str) -> bool {
        self.streams.read().values().any(|a| {
            a.account == account
                && ((a.config.name == name && a.config.allow_direct)
                    || (a.config.mirror_direct
                        && a.config.mirror.as_ref().is_some_and(|m| m.name == name)))
        })
    }

    /// The names of `account`'s streams.
    pub fn stream_names(&self, account: &str) -> Vec<String> {
        self.streams(account)
            .into_iter()
            .map(|a| a.config.name)
            .collect()
    }

    /// How many streams each node holds a replica of.
    pub fn load(&self) -> BTreeMap<NodeId, usize> {
        let mut out = BTreeMap::new();
        for a in self.streams.read().values() {
            for (id, _) in &a.peers {
                *out.entry(*id).or_default() += 1;
            }
        }
        out
    }

    /// Queues `account`'s stream `name` for the reconcile task. Called from blocking
    /// threads (apply) and async ones (attach): never waits.
    pub fn notify(&self, account: &str, name: &str) {
        if let Some(tx) = self.changed.lock().as_ref() {
            if tx
                .try_send((account.to_string(), name.to_string()))
                .is_err()
            {
                tracing::error!(
                    account,
                    stream = name,
                    "reconcile queue full; change dropped"
                );
            }
        }
    }

    /// Applies one op; returns the reply (empty, or an error text).
    fn apply(&self, op: MetaOp) -> Vec<u8> {
        let (key, reply) = {
            let mut streams = self.streams.write();
            match op {
                MetaOp::AddStream(a) => {
                    let key = (a.account.clone(), a.config.name.clone());
                    if streams.contains_key(&key) {
                        (key, b"exists".to_vec())
                    } else {
                        streams.insert(key.clone(), a);
                        (key, Vec::new())
                    }
                }
                MetaOp::UpdateStream {
                    account,
                    config,
                    peers,
                } => {
                    let key = (account, config.name.clone());
                    match streams.get_mut(&key) {
                        Some(a) => {
                            a.config = config;
                            if let Some(peers) = peers {
                                a.set_peers(peers);
                            }
                            (key, Vec::new())
                        }
                        None => (key, b"not found".to_vec()),
                    }
                }
                MetaOp::DeleteStream { account, name } => {
                    let key = (account, name);
                    match streams.remove(&key) {
                        Some(_) => (key, Vec::new()),
                        None => (key, b"not found".to_vec()),
                    }
                }
            }
        };
        if reply.is_empty() {
            self.notify(&key.0, &key.1);
        }
        reply
    }
}

/// The meta group's [`Machine`].
pub(crate) struct MetaMachine {
    state: std::sync::Arc<MetaState>,
}

impl MetaMachine {
    pub fn new(
        state: std::sync::Arc<MetaState>,
        changed: mpsc::Sender<(String, String)>,
    ) -> MetaMachine {
        *state.changed.lock() = Some(changed);
        MetaMachine { state }
    }
}

impl Machine for MetaMachine {
    fn restored(&self) -> (Option<LogId<NodeId>>, StoredMembership<NodeId, BasicNode>) {
        // In memory only: everything is applied again from the log.
        (None, StoredMembership::default())
    }

    fn apply(&self, entries: Vec<GroupEntry>) -> Result<Vec<Vec<u8>>, Unappliable> {
        let mut out = Vec::with_capacity(entries.len());
        for e in entries {
            let reply = match e.payload {
                EntryPayload::Normal(data) => match serde_json::from_slice::<MetaOp>(&data) {
                    Ok(op) => self.state.apply(op),
                    // Never skipped: the meta group stops on this node.
                    Err(err) => {
                        return Err(Unappliable {
                            log_id: e.log_id,
                            reason: format!(
                                "meta: {err} (written by a newer Petrel? upgrade this server)"
                            ),
                        })
                    }
                },
                EntryPayload::Membership(_) | EntryPayload::Blank => Vec::new(),
            };
            out.push(reply);
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn assignment(name: &str, peers: &[u64]) -> StreamAssignment {
        StreamAssignment {
            account: "$G".into(),
            config: StreamConfig {
                name: name.into(),
                subjects: vec![format!("{name}.>")],
                ..StreamConfig::default()
            },
            created: 1,
            group: format!("S-{name}"),
            peers: peers.iter().map(|p| (*p, format!("n{p}"))).collect(),
            added: Vec::new(),
        }
    }

    #[test]
    fn ops_apply_in_order_and_queue_their_stream() {
        let state = MetaState::default();
        let (tx, mut rx) = mpsc::channel(16);
        *state.changed.lock() = Some(tx);
        assert!(state
            .apply(MetaOp::AddStream(assignment("A", &[1, 2, 3])))
            .is_empty());
        // The same name again is refused, and nothing is queued for it.
        assert_eq!(
            state.apply(MetaOp::AddStream(assignment("A", &[1]))),
            b"exists"
        );
        assert!(state
            .apply(MetaOp::AddStream(assignment("B", &[2])))
            .is_empty());
        assert_eq!(state.stream_names("$G"), vec!["A", "B"]);
        assert_eq!(state.load(), BTreeMap::from([(1, 1), (2, 2), (3, 1)]));
        let mut changed = state.stream("$G", "A").unwrap().config;
        changed.max_msgs = 10;
        let update = MetaOp::UpdateStream {
            account: "$G".into(),
            config: changed.clone(),
            peers: None,
        };
        assert!(state.apply(update).is_empty());
        assert_eq!(state.stream("$G", "A").unwrap().config.max_msgs, 10);
        // New replicas: 2 is replaced by 4, which counts as added (it joins the group).
        let moved = MetaOp::UpdateStream {
            account: "$G".into(),
            config: changed,
            peers: Some(vec![(1, "n1".into()), (3, "n3".into()), (4, "n4".into())]),
        };
        assert!(state.apply(moved).is_empty());
        let a = state.stream("$G", "A").unwrap();
        assert!(a.has(4) && !a.has(2));
        assert_eq!(a.added, vec![4]);
        let gone = MetaOp::DeleteStream {
            account: "$G".into(),
            name: "A".into(),
        };
        assert!(state.apply(gone.clone()).is_empty());
        assert_eq!(state.apply(gone), b"not found");
        assert!(state.stream("$G", "A").is_none());
        let mut queued = Vec::new();
        while let Ok((_, name)) = rx.try_recv() {
            queued.push(name);
        }
        assert_eq!(queued, vec!["A", "B", "A", "A", "A"]);
    }

    #[test]
    fn a_meta_op_survives_its_json_round_trip() {
        let op = MetaOp::AddStream(assignment("ORDERS", &[7, 8, 9]));
        let back: MetaOp = serde_json::from_slice(&serde_json::to_vec(&op).unwrap()).unwrap();
        match back {
            MetaOp::AddStream(a) => assert_eq!(a, assignment("ORDERS", &[7, 8, 9])),
            other => panic!("{other:?}"),
        }
    }
}
