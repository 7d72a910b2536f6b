//! Leafnodes over nats-server's leafnode protocol, in both roles: the listener that
//! spokes dial (this server is their hub) and the `remotes` this server dials (it is
//! their spoke, or with `hub: true` their hub). Each connection is a [`Client`] of kind
//! `Leaf` bound to one account on each side, with a [`LeafLink`] saying its role and
//! peer. What crosses it:
//!
//! - interest: every account tells each of its leafs, through the leaf's own map of
//!   subjects (`LS+` on the first subscription, `LS-` after the last, a queue group's
//!   new total on every change), what that leaf may see ([`LeafLink::sees`]): a spoke
//!   learns everything of the hub's account (local, routed and other leafs' interest,
//!   minus its own cluster's); a hub learns only the spoke's own (local clients and the
//!   spoke's own spokes);
//! - messages: `LMSG` to each leaf with interest ([`leaf_gets`]), never back to where
//!   they came from nor to a leaf of the same cluster; from a spoke they go on to the
//!   hub's routes, from a hub only to local clients and the spoke's own spokes;
//! - loops: each account sends its own `$LDS.<id>` subject; seeing it come back means a
//!   cycle, and the connection is closed with nats-server's `Loop detected` error.
//!
//! No compression (Petrel's hub INFO offers none and its CONNECT asks for none), no
//! message tracing (`proto` 1), no gateways.

mod conn;
mod handshake;
mod interest;
mod remote;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use parking_lot::Mutex;
use petrel_config::LeafnodeOptions;
use tokio::net::TcpListener;

use crate::account::Account;
use crate::client::{Client, ClientKind, CloseReason};
use crate::server::Shared;
use crate::sub::Subscription;

pub(crate) use interest::AccountLeafs;

/// Subjects that never cross a client account's leaf connection (nats-server's
/// `denyAllClientJs`).
const JS_DENY: [&str; 3] = ["$JS.API.>", "$KV.>", "$OBJ.>"];

/// nats-server's delay before redialling after a loop or a cluster name clash.
const LOOP_DELAY: Duration = Duration::from_secs(30);

/// The leafnode side of the server: the listener (when configured) and every leaf
/// connection, registered.
pub(crate) struct Leafnodes {
    pub opts: LeafnodeOptions,
    /// The listener's address (hub role), when there is one.
    pub listen: Option<SocketAddr>,
    /// Registered connections, both roles.
    conns: Mutex<Vec<Arc<Client>>>,
    /// TLS of the listener.
    pub tls: Option<(tokio_rustls::TlsAcceptor, petrel_config::TlsOptions)>,
    /// TLS of each remote (by index), when it has a `tls {}` block.
    pub remote_tls: Vec<Option<tokio_rustls::TlsConnector>>,
}

/// A subject and queue group (the key of a leaf connection's interest maps).
pub(crate) type SubKey = (Bytes, Option<Bytes>);

/// One registered leaf connection: its role, peer and the interest exchanged.
pub(crate) struct LeafLink {
    /// This server acts as the hub on this connection.
    pub hub: bool,
    /// This server dialled it (a remote).
    pub solicited: bool,
    /// The peer's cluster (its server name without one): the origin of its interest.
    pub cluster: String,
    /// The peer's server name and id.
    pub name: String,
    pub remote_id: String,
    /// The peer's account for this connection (as it said).
    pub remote_account: String,
    /// The local account the connection is bound to.
    pub account: Arc<Account>,
    /// Subjects the peer does not receive from us (its `deny_imports`, our
    /// `deny_exports`).
    pub deny_out: Vec<Bytes>,
    /// Subjects we do not take from the peer (our `deny_imports`): not asked for with
    /// `LS+`, dropped if sent.
    pub deny_in: Vec<Bytes>,
    /// What this side told the peer: subject and queue → members.
    smap: Mutex<HashMap<SubKey, u32>>,
    /// The peer's `LS+` subscriptions here.
    pub subs: Mutex<HashMap<SubKey, Arc<Subscription>>>,
    /// Through WebSocket.
    pub websocket: bool,
}

impl LeafLink {
    /// Whether the peer may be told of `sub`, a subscription of this link's account.
    pub fn sees(&self, me: &Arc<Client>, sub: &Subscription) -> bool {
        if Arc::ptr_eq(&sub.client, me) || denied(&self.deny_in, &sub.subject) {
            return false;
        }
        match sub.client.kind {
            // A route peer's interest is its own: a spoke hears of it through us, a hub
            // does not (one hop, as nats-server).
            ClientKind::Route => self.hub,
            ClientKind::Leaf => match sub.client.leaf.get() {
                Some(src) => (src.hub || self.hub) && !same_cluster(&src.cluster, &self.cluster),
                None => false,
            },
            _ => true,
        }
    }
}

fn same_cluster(a: &str, b: &str) -> bool {
    !a.is_empty() && a == b
}

/// Whether `subject` matches one of `patterns`.
/// Every leaf message is checked against the connection's lists (the JetStream subjects
/// at least), so a pattern whose literal first byte differs from the subject's is passed
/// over without tokenizing either.
pub(crate) fn denied(patterns: &[Bytes], subject: &[u8]) -> bool {
    patterns.iter().any(|p| {
        let literal_mismatch = match (p.first(), subject.first()) {
            (Some(b'*' | b'>'), _) => false,
            (a, b) => a != b,
        };
        !literal_mismatch
            && (petrel_subject::matches(p, subject) || petrel_subject::is_subset(subject, p))
    })
}

/// Whether route peers hear of `sub`: local interest and that of spokes this server is
/// the hub of; not a route peer's (one hop) nor a hub's (learned as its spoke).
pub(crate) fn reaches_routes(sub: &Subscription) -> bool {
    match sub.client.kind {
        ClientKind::Route => false,
        ClientKind::Leaf => sub.client.leaf.get().is_some_and(|l| l.hub),
        _ => true,
    }
}

/// Whether a message on `subject` published by `from` goes to the leaf connection
/// `target` (which has interest): never back to its source or a leaf of the same
/// cluster; from a route or a hub only to spokes of this server; the server's own output
/// never to request subjects elsewhere.
pub(crate) fn leaf_gets(from: &Arc<Client>, target: &Arc<Client>, subject: &[u8]) -> bool {
    let Some(t) = target.leaf.get() else {
        return false;
    };
    if Arc::ptr_eq(from, target) || denied(&t.deny_out, subject) {
        return false;
    }
    match from.kind {
        ClientKind::Route => t.hub,
        ClientKind::Leaf => match from.leaf.get() {
            Some(src) => (src.hub || t.hub) && !same_cluster(&src.cluster, &t.cluster),
            None => false,
        },
        kind => crate::route::forwardable(kind, subject),
    }
}

/// Whether a message from `from` may go on to route peers.
pub(crate) fn to_routes(from: &Client) -> bool {
    match from.kind {
        ClientKind::Route => false,
        ClientKind::Leaf => from.leaf.get().is_some_and(|l| l.hub),
        _ => true,
    }
}

impl Leafnodes {
    /// Every registered leaf connection (a snapshot).
    pub fn conns(&self) -> Vec<Arc<Client>> {
        self.conns.lock().clone()
    }

    /// Registers `client`; an accepted leaf that repeats another's server name, cluster
    /// and accounts replaces it (nats-server's duplicate rule: the old one is told).
    fn register(&self, client: &Arc<Client>) {
        let mut conns = self.conns.lock();
        if let Some(new) = client.leaf.get().filter(|l| !l.solicited) {
            conns.retain(|c| {
                let dup = c.leaf.get().is_some_and(|o| {
                    !o.solicited
                        && o.name == new.name
                        && o.cluster == new.cluster
                        && o.account.name == new.account.name
                        && !o.remote_account.is_empty()
                        && o.remote_account == new.remote_account
                });
                if dup {
                    c.err_and_close(
                        "Duplicate Remote LeafNode Connection",
                        CloseReason::ProtocolViolation,
                    );
                }
                !dup
            });
        }
        conns.push(client.clone());
    }

    fn unregister(&self, client: &Arc<Client>) {
        self.conns.lock().retain(|c| !Arc::ptr_eq(c, client));
    }
}

/// Binds the leafnode listener (when `port` is set) and checks the remotes; [`begin`]
/// starts them once the leafnodes are in `shared`.
pub(crate) async fn start(
    shared: &Arc<Shared>,
    opts: &LeafnodeOptions,
) -> Result<(Arc<Leafnodes>, Option<TcpListener>), crate::ServerError> {
    let listener = match opts.port {
        Some(port) => {
            let bind = SocketAddr::new(opts.host, port);
            let l = TcpListener::bind(bind)
                .await
                .map_err(|cause| crate::ServerError::Bind { addr: bind, cause })?;
            Some(l)
        }
        None => None,
    };
    let listen = match &listener {
        Some(l) => Some(l.local_addr().map_err(|cause| crate::ServerError::Bind {
            addr: SocketAddr::new(opts.host, 0),
            cause,
        })?),
        None => None,
    };
    let tls = match &opts.tls {
        Some(t) => Some((crate::tls::acceptor(t)?, t.clone())),
        None => None,
    };
    let remote_tls = opts
        .remotes
        .iter()
        .map(|r| r.tls.as_ref().map(crate::tls::connector).transpose())
        .collect::<Result<Vec<_>, _>>()?;
    let leafs = Arc::new(Leafnodes {
        opts: opts.clone(),
        listen,
        conns: Mutex::new(Vec::new()),
        tls,
        remote_tls,
    });
    if let Some(addr) = listen {
        tracing::info!("Listening for leafnode connections on {addr}");
    }
    for r in &opts.remotes {
        let account = r
            .account
            .as_deref()
            .unwrap_or(petrel_config::GLOBAL_ACCOUNT);
        if shared.accounts.get(account).is_none() {
            return Err(crate::ServerError::Leafnode(format!(
                "cannot find local account \"{account}\" specified in leafnode remote"
            )));
        }
    }
    Ok((leafs, listener))
}

/// Starts accepting spokes on `listener` and dialling every remote, once [`start`]'s
/// result is in `shared` (a task started before would find no leafnodes there).
pub(crate) fn begin(shared: &Arc<Shared>, listener: Option<TcpListener>) {
    let Some(leafs) = shared.leafnodes.get() else {
        return;
    };
    if let Some(l) = listener {
        shared.spawn(accept_loop(shared.clone(), l, leafs.tls.is_some()));
    }
    for i in 0..leafs.opts.remotes.len() {
        shared.spawn(remote::solicit(shared.clone(), i));
    }
}

async fn accept_loop(shared: Arc<Shared>, listener: TcpListener, tls: bool) {
    loop {
        let accepted = tokio::select! {
            () = shared.shutdown.cancelled() => break,
            a = listener.accept() => a,
        };
        match accepted {
            Ok((stream, addr)) if tls => {
                let _ = stream.set_nodelay(true);
                shared.spawn(conn::serve_accepted_tls(shared.clone(), stream, addr));
            }
            Ok((stream, addr)) => {
                let _ = stream.set_nodelay(true);
                let tcp = crate::conn::io::SharedTcp(Arc::new(stream));
                shared.spawn(conn::serve_accepted(
                    shared.clone(),
                    tcp.clone(),
                    tcp,
                    addr,
                    false,
                ));
            }
            Err(e) => {
                tracing::error!(error = %e, "Error accepting leafnode connection");
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        }
    }
}

/// Serves a leaf that came through the WebSocket listener (a path ending in
/// `/leafnode`); closed at once without a leafnode listener, as nats-server does.
pub(crate) async fn serve_ws<S>(shared: Arc<Shared>, stream: S, addr: SocketAddr)
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    if shared.leafnodes.get().is_none_or(|l| l.listen.is_none()) {
        tracing::debug!(client = %addr, "WebSocket leafnode refused: no leafnode listener");
        return;
    }
    let client = conn::leaf_client(&shared, addr);
    let (rd, wr) = crate::conn::ws_split(stream, client.clone());
    let role = conn::Role::Accepted {
        websocket: true,
        greeted: false,
    };
    conn::run(&shared, client, rd, wr, role, bytes::BytesMut::new()).await;
}

/// Closes every leaf connection (shutdown).
pub(crate) fn close_all(shared: &Shared) {
    if let Some(l) = shared.leafnodes.get() {
        for c in l.conns() {
            c.close(CloseReason::ServerShutdown);
        }
    }
}

#[cfg(test)]
mod tests {
    use bytes::Bytes;

    use super::denied;

    #[test]
    fn deny_lists_match_subjects_and_narrower_subscriptions() {
        let p: Vec<Bytes> = ["$JS.API.>", "di.>", "*.secret"]
            .iter()
            .map(|s| Bytes::from_static(s.as_bytes()))
            .collect();
        for s in ["$JS.API.INFO", "di.x.y", "a.secret", "di.*", "$JS.API.>"] {
            assert!(denied(&p, s.as_bytes()), "{s}");
        }
        for s in [
            "orders.new",
            "$KV.b.k",
            "dix.y",
            "di",
            ">",
            "*.*",
            "$JS.hub.API.INFO",
        ] {
            assert!(!denied(&p, s.as_bytes()), "{s}");
        }
        assert!(!denied(&[], b"anything"));
    }
}
