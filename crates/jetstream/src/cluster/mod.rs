//! Clustered JetStream (see `docs/design/replicated-jetstream.md`): one [`JsCluster`] per
//! server, shared by every account's [`JetStream`].
//!
//! * the **meta group** `_meta_` (every clustered JetStream node) holds the stream
//!   assignments (`meta.rs`); its leader answers the account-level API and places streams;
//! * each stream runs its own **stream group** on the nodes it is placed on (`replica.rs`):
//!   the leader proposes batches of publishes, every replica applies them to its store,
//!   and the PubAck leaves once a quorum has fsynced the batch;
//! * `api.rs` decides which node answers which request; `transport.rs` carries the Raft
//!   RPCs over the routes.
//!
//! Nodes find each other by heartbeats on `$PRG.HB`. The meta group is bootstrapped once:
//! when no node that is heard has a meta group yet, the node with the smallest server name
//! initializes it with every node it hears, after that set has held still for
//! [`BOOT_STABLE`] and has at least as many nodes as the configured routes; nodes heard
//! later are added by the meta leader.

mod api;
mod applied;
mod interest;
mod machine;
mod meta;
mod peers;
mod placement;
mod reconcile;
pub(crate) mod replica;
mod stepdown;
mod transport;

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Weak};
use std::time::{Duration, Instant};

use bytes::Bytes;
use parking_lot::{Mutex, RwLock};
use petrel_replication::{node_id, Group, NodeId, Registry, Timing};
use petrel_store::Backend;
use serde::{Deserialize, Serialize};
use tokio::sync::{mpsc, watch};

pub(crate) use api::dispatch;
pub(crate) use meta::MetaOp;
use meta::{MetaMachine, MetaState};
use transport::{PortTransport, HEARTBEAT};

use crate::jetstream::JetStream;
use crate::port::{Accept, Flow, Handler, Incoming, Port};

/// How often a node announces itself.
const HEARTBEAT_EVERY: Duration = Duration::from_secs(1);
/// A node not heard for this long is offline (placement skips it).
const OFFLINE_AFTER: Duration = Duration::from_secs(5);
/// How long the set of heard nodes must hold still before the meta group is bootstrapped.
pub const BOOT_STABLE: Duration = Duration::from_secs(1);
/// Most nodes heard at once (the heartbeats of more are ignored).
const MAX_PEERS: usize = 256;
/// Most tags kept of a node, and most characters of each.
const MAX_TAGS: usize = 64;
const MAX_TAG_LEN: usize = 256;
/// Assignment changes waiting to be carried out on this node.
const RECONCILE_QUEUE: usize = 10_000;

/// Settings of [`JsCluster::start`].
#[derive(Clone)]
pub struct ClusterConfig {
    /// The cluster's name (stream infos' `cluster.name`).
    pub cluster_name: String,
    /// This server's name (unique in the cluster).
    pub server_name: String,
    /// JetStream's store directory; groups live under `jetstream/_cluster_/`.
    pub store_dir: PathBuf,
    /// The I/O layer.
    pub backend: Arc<dyn Backend>,
    /// Raft timers.
    pub timing: Timing,
    /// This server's `server_tags` (lower case), for placement.
    pub tags: Vec<String>,
    /// The fewest nodes the cluster has (the configured routes: one may be this node):
    /// the meta group is not bootstrapped with fewer, so nodes whose routes are slow to
    /// connect do not each start a meta group of their own.
    pub min_nodes: usize,
}

/// A node heard through its heartbeats.
#[derive(Debug, Clone)]
struct Peer {
    name: String,
    seen: Instant,
    /// It has a meta group already.
    meta: bool,
    /// Its `server_tags`.
    tags: Vec<String>,
}

/// A heartbeat's body.
#[derive(Serialize, Deserialize)]
struct Beat {
    id: NodeId,
    name: String,
    meta: bool,
    #[serde(default)]
    tags: Vec<String>,
}

/// Clustered JetStream on this server.
pub struct JsCluster {
    pub(crate) config: ClusterConfig,
    pub(crate) me: NodeId,
    pub(crate) transport: Arc<PortTransport>,
    pub(crate) registry: Arc<Registry>,
    pub(crate) meta: Group,
    pub(crate) state: Arc<MetaState>,
    accounts: RwLock<HashMap<String, Weak<JetStream>>>,
    peers: Mutex<HashMap<NodeId, Peer>>,
    shutdown: watch::Sender<bool>,
    port: Arc<dyn Port>,
}

impl std::fmt::Debug for JsCluster {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("JsCluster")
            .field("server", &self.config.server_name)
            .finish()
    }
}

/// Where the groups of `store_dir` live.
pub(crate) fn cluster_dir(store_dir: &Path) -> PathBuf {
    store_dir.join("jetstream").join("_cluster_")
}

impl JsCluster {
    /// Opens the meta group, subscribes the RPC and heartbeat subjects through `port` (the
    /// system account's), and starts the heartbeat, bootstrap and reconcile tasks. Must run
    /// inside a tokio runtime.
    pub async fn start(config: ClusterConfig, port: Arc<dyn Port>) -> std::io::Result<Arc<Self>> {
        let me = node_id(&config.server_name);
        let registry = Arc::new(Registry::default());
        let transport = PortTransport::start(me, port.clone(), registry.clone());
        let state = Arc::new(MetaState::default());
        let (changed, reconcile_rx) = mpsc::channel(RECONCILE_QUEUE);
        let machine = Arc::new(MetaMachine::new(state.clone(), changed));
        let dir = cluster_dir(&config.store_dir).join(meta::GROUP);
        let meta = Group::open(
            meta::GROUP,
            me,
            &dir,
            config.backend.clone(),
            machine,
            transport.clone(),
            config.timing,
        )
        .await?;
        registry.insert(meta.clone());
        let (shutdown, stop) = watch::channel(false);
        let cluster = Arc::new(JsCluster {
            config,
            me,
            transport,
            registry,
            meta,
            state,
            accounts: RwLock::new(HashMap::new()),
            peers: Mutex::new(HashMap::new()),
            shutdown,
            port: port.clone(),
        });
        let heard = Arc::new(Heartbeats(Arc::downgrade(&cluster)));
        port.subscribe(HEARTBEAT, None, Accept::RoutesOnly, heard);
        let stepdown =
            stepdown::MetaStepdown(Arc::downgrade(&cluster), tokio::runtime::Handle::current());
        port.subscribe(
            stepdown::META_STEPDOWN,
            None,
            Accept::ClientsOnly,
            Arc::new(stepdown),
        );
        tokio::spawn(beat_loop(Arc::downgrade(&cluster), stop.clone()));
        tokio::spawn(membership_loop(Arc::downgrade(&cluster), stop.clone()));
        tokio::spawn(reconcile::reconcile_loop(
            Arc::downgrade(&cluster),
            reconcile_rx,
            stop,
        ));
        tracing::info!(
            "JetStream cluster: this node is {} ({:016x})",
            cluster.config.server_name,
            me
        );
        Ok(cluster)
    }

    /// Makes `js` (one account's JetStream) clustered: its API answers through the meta
    /// group and its streams' assignments are carried out.
    pub fn attach(self: &Arc<Self>, js: &Arc<JetStream>) {
        let _ = js.cluster.set(self.clone());
        let account = js.config.account.clone();
        self.accounts
            .write()
            .insert(account.clone(), Arc::downgrade(js));
        for name in self.state.stream_names(&account) {
            self.state.notify(&account, &name);
        }
    }

    /// The JetStream of `account`, if attached.
    pub(crate) fn account(&self, account: &str) -> Option<Arc<JetStream>> {
        self.accounts.read().get(account).and_then(Weak::upgrade)
    }

    /// The server name of the node `id` (this node's, a heard peer's, or a group
    /// member's).
    pub(crate) fn name_of(&self, id: NodeId) -> Option<String> {
        if id == self.me {
            return Some(self.config.server_name.clone());
        }
        if let Some(p) = self.peers.lock().get(&id) {
            return Some(p.name.clone());
        }
        self.meta.members().get(&id).cloned()
    }

    /// The nodes heard recently (this one included), by name.
    pub(crate) fn online(&self) -> BTreeMap<String, NodeId> {
        let mut out: BTreeMap<String, NodeId> = self
            .peers
            .lock()
            .iter()
            .filter(|(_, p)| p.seen.elapsed() < OFFLINE_AFTER)
            .map(|(id, p)| (p.name.clone(), *id))
            .collect();
        out.insert(self.config.server_name.clone(), self.me);
        out
    }

    /// The `server_tags` of the node `id` (this one's, or as its heartbeats said).
    pub(crate) fn tags_of(&self, id: NodeId) -> Vec<String> {
        if id == self.me {
            return self.config.tags.clone();
        }
        self.peers
            .lock()
            .get(&id)
            .map(|p| p.tags.clone())
            .unwrap_or_default()
    }

    /// When `id` was last heard from (`None`: never, or it is this node).
    pub(crate) fn last_heard(&self, id: NodeId) -> Option<Duration> {
        self.peers.lock().get(&id).map(|p| p.seen.elapsed())
    }

    /// The meta leader's server name, if there is one.
    pub fn meta_leader(&self) -> Option<String> {
        self.meta.leader().and_then(|id| self.name_of(id))
    }

    /// Whether this node leads the meta group.
    pub fn is_meta_leader(&self) -> bool {
        self.meta.is_leader()
    }

    /// The meta group as `/jsz` reports it (`meta_cluster`).
    pub fn report(&self) -> MetaReport {
        let members = self.meta.members();
        let leader = self.meta.leader();
        let replicas = members
            .iter()
            .filter(|(id, _)| Some(**id) != leader)
            .map(|(id, name)| {
                let heard = if *id == self.me {
                    Some(Duration::ZERO)
                } else {
                    self.last_heard(*id)
                };
                MetaPeer {
                    name: name.clone(),
                    current: heard.is_some_and(|h| h < OFFLINE_AFTER),
                    offline: heard.is_none_or(|h| h >= OFFLINE_AFTER),
                    active: heard.map_or(0, |h| u64::try_from(h.as_nanos()).unwrap_or(u64::MAX)),
                    peer: peer_hash(*id),
                }
            })
            .collect();
        MetaReport {
            name: self.config.cluster_name.clone(),
            leader: leader.and_then(|id| self.name_of(id)),
            peer: leader.map(peer_hash),
            cluster_size: members.len(),
            replicas,
        }
    }

    /// Why this node's share of clustered JetStream is not healthy, worded as
    /// nats-server's `/healthz`: the meta group stopped here or knows no leader, or a
    /// stream replica placed here is not open yet, stopped (an entry it cannot apply or
    /// store) or knows no leader.
    pub fn health_problem(&self) -> Option<String> {
        if let Some(why) = self.meta.failed() {
            return Some(format!("JetStream meta layer apply error: {why}"));
        }
        if self.meta.leader().is_none() {
            return Some("JetStream has not established contact with a meta leader".into());
        }
        let accounts: Vec<(String, Arc<JetStream>)> = self
            .accounts
            .read()
            .iter()
            .filter_map(|(a, js)| js.upgrade().map(|js| (a.clone(), js)))
            .collect();
        for (account, js) in accounts {
            for a in self.state.streams(&account) {
                if !a.has(self.me) {
                    continue;
                }
                let why = match replica_of(&js, &a) {
                    None => Some("stream not found".to_string()),
                    Some((_, r)) => match r.group.failed() {
                        Some(why) => Some(format!("group node stopped: {why}")),
                        None => r.group.leader().is_none().then(|| "no leader".to_string()),
                    },
                };
                if let Some(why) = why {
                    let name = &a.config.name;
                    return Some(format!(
                        "JetStream stream '{account} > {name}' is not current: {why}"
                    ));
                }
            }
        }
        None
    }

    /// Stops the tasks and every group (logs stay on disk).
    pub async fn shutdown(&self) {
        let _ = self.shutdown.send(true);
        for g in self.registry.all() {
            g.shutdown().await;
        }
    }

    /// Proposes a meta operation and waits for it to be applied here. Leader only.
    pub(crate) async fn propose_meta(&self, op: &MetaOp) -> Result<Vec<u8>, String> {
        let body = serde_json::to_vec(op).map_err(|e| e.to_string())?;
        self.meta.propose(body).await.map_err(|e| e.to_string())
    }

    /// Publishes this node's heartbeat.
    fn beat(&self) {
        let beat = Beat {
            id: self.me,
            name: self.config.server_name.clone(),
            meta: !self.meta.members().is_empty(),
            tags: self.config.tags.clone(),
        };
        let body = serde_json::to_vec(&beat).unwrap_or_default();
        self.port.request(HEARTBEAT, None, None, Bytes::from(body));
    }
}

/// This node's replica of `a` — of `a`'s own group: right after a delete and a new
/// create, the replica of the stream's previous group may still be here.
pub(crate) fn replica_of(
    js: &JetStream,
    a: &meta::StreamAssignment,
) -> Option<(Arc<crate::stream::Stream>, Arc<replica::Replica>)> {
    let stream = js.stream(&a.config.name)?;
    let replica = stream.replica.get().cloned()?;
    (*replica.group.name == *a.group).then_some((stream, replica))
}

/// A node's short id as stream and meta infos show it (`peer`).
pub(crate) fn peer_hash(id: NodeId) -> String {
    format!("{:08x}", id >> 32)
}

/// `/jsz`'s `meta_cluster`.
#[derive(Debug, Clone, Serialize)]
pub struct MetaReport {
    /// The cluster's name.
    pub name: String,
    /// The meta leader's server name.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub leader: Option<String>,
    /// The meta leader's peer id.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub peer: Option<String>,
    /// Members of the meta group.
    pub cluster_size: usize,
    /// The members other than the leader.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub replicas: Vec<MetaPeer>,
}

/// One member of the meta group.
#[derive(Debug, Clone, Serialize)]
pub struct MetaPeer {
    /// Server name.
    pub name: String,
    /// Heard from recently.
    pub current: bool,
    /// Not heard from recently.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub offline: bool,
    /// Nanoseconds since it was last heard.
    pub active: u64,
    /// Its peer id.
    pub peer: String,
}

/// `$PRG.HB`: records who is out there.
struct Heartbeats(Weak<JsCluster>);

impl Handler for Heartbeats {
    fn handle(&self, msg: Incoming<'_>) -> Flow {
        let (Some(c), Ok(beat)) = (
            self.0.upgrade(),
            serde_json::from_slice::<Beat>(&msg.payload),
        ) else {
            return Flow::Ok;
        };
        let mut peers = c.peers.lock();
        let known = peers.contains_key(&beat.id);
        if beat.id != c.me && beat.id == node_id(&beat.name) && (known || peers.len() < MAX_PEERS) {
            peers.insert(
                beat.id,
                Peer {
                    name: beat.name,
                    seen: Instant::now(),
                    meta: beat.meta,
                    // Bounded like the rest of a heartbeat: a few short tags.
                    tags: beat
                        .tags
                        .into_iter()
                        .take(MAX_TAGS)
                        .map(|t| {
                            t.chars()
                                .take(MAX_TAG_LEN)
                                .collect::<String>()
                                .to_lowercase()
                        })
                        .collect(),
                },
            );
        }
        Flow::Ok
    }
}

async fn beat_loop(cluster: Weak<JsCluster>, mut stop: watch::Receiver<bool>) {
    let mut tick = tokio::time::interval(HEARTBEAT_EVERY);
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = stop.changed() => return,
        }
        match cluster.upgrade() {
            Some(c) => c.beat(),
            None => return,
        }
    }
}

/// Bootstraps the meta group, then (on the meta leader) adds every node heard that is
/// not a member yet.
async fn membership_loop(cluster: Weak<JsCluster>, mut stop: watch::Receiver<bool>) {
    let mut tick = tokio::time::interval(Duration::from_millis(250));
    let mut seen: Option<(Vec<String>, Instant)> = None;
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = stop.changed() => return,
        }
        let Some(c) = cluster.upgrade() else { return };
        let members = c.meta.members();
        if members.is_empty() {
            bootstrap(&c, &mut seen).await;
            continue;
        }
        if !c.meta.is_leader() {
            continue;
        }
        let joining: Vec<(String, NodeId)> = c
            .online()
            .into_iter()
            .filter(|(_, id)| !members.contains_key(id))
            .collect();
        for (name, id) in joining {
            match c.meta.add_voter(id, &name).await {
                Ok(()) => tracing::info!("JetStream cluster: {name} joined the meta group"),
                Err(e) => tracing::debug!("JetStream cluster: adding {name} failed: {e}"),
            }
        }
    }
}

/// One bootstrap step: initializes the meta group when this node has the smallest name
/// of a set of nodes that has held still for [`BOOT_STABLE`] and none of which has a
/// meta group yet.
async fn bootstrap(c: &JsCluster, seen: &mut Option<(Vec<String>, Instant)>) {
    let online = c.online();
    let initialized = c
        .peers
        .lock()
        .values()
        .any(|p| p.meta && p.seen.elapsed() < OFFLINE_AFTER);
    if initialized {
        return;
    }
    if online.len() < c.config.min_nodes {
        return;
    }
    let names: Vec<String> = online.keys().cloned().collect();
    let since = match seen {
        Some((set, since)) if *set == names => *since,
        _ => {
            *seen = Some((names, Instant::now()));
            return;
        }
    };
    let smallest = names.first() == Some(&c.config.server_name);
    if !smallest || since.elapsed() < BOOT_STABLE {
        return;
    }
    let members: BTreeMap<NodeId, String> = online.into_iter().map(|(n, id)| (id, n)).collect();
    tracing::info!(
        "JetStream cluster: bootstrapping the meta group with {:?}",
        members.values().collect::<Vec<_>>()
    );
    if let Err(e) = c.meta.initialize(members).await {
        tracing::warn!("JetStream cluster: bootstrapping failed: {e}");
    }
}
