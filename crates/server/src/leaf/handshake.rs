//! The leafnode handshake documents: this server's INFO as a hub, a spoke's CONNECT
//! checked and authorized in nats-server's order (which binds the account), and the
//! CONNECT this server sends as a spoke with its remote's credentials.

use std::net::SocketAddr;
use std::sync::Arc;

use bytes::{Bytes, BytesMut};
use petrel_wire::leaf::{LeafConnect, LeafInfo};

use super::conn::{LeafReader, Role};
use super::Leafnodes;
use crate::account::Account;
use crate::client::{Client, CloseReason};
use crate::server::Shared;

/// This server's INFO for a leaf (the first one, with a nonce, or the `connect_info` one).
pub(super) fn hub_info(
    shared: &Shared,
    leafs: &Leafnodes,
    client: &Client,
    first: bool,
    websocket: bool,
) -> LeafInfo {
    let listen = leafs
        .listen
        .unwrap_or_else(|| SocketAddr::from(([127, 0, 0, 1], 0)));
    let (host, port) = match leafs.opts.advertise.as_deref() {
        Some(a) => {
            let (h, p) = petrel_config::split_host_port(a);
            (h, p.unwrap_or(listen.port()))
        }
        None => (listen.ip().to_string(), listen.port()),
    };
    let url = petrel_config::join_host_port(&host, port);
    let tls = leafs.tls.as_ref().filter(|_| !websocket);
    LeafInfo {
        server_id: shared.server_id.clone(),
        server_name: shared.server_name.clone(),
        version: crate::NATS_COMPAT_VERSION.to_string(),
        proto: 1,
        host,
        port,
        headers: true,
        auth_required: true,
        max_payload: i64::try_from(shared.opts().max_payload).unwrap_or(i64::MAX),
        ip: url.clone(),
        client_id: client.cid,
        nonce: if first {
            client.nonce.clone()
        } else {
            String::new()
        },
        cluster: shared.cluster.get().map(|c| c.name()).unwrap_or_default(),
        info_on_connect: true,
        leafnode_urls: vec![url],
        tls_required: tls.is_some(),
        tls_verify: tls.is_some_and(|(_, t)| t.verify),
        ..LeafInfo::default()
    }
}

/// The cluster name this server gives as a leaf's origin: its cluster's, else its name.
pub(super) fn own_cluster(shared: &Shared) -> String {
    shared
        .cluster
        .get()
        .map(|c| c.name())
        .unwrap_or_else(|| shared.server_name.clone())
}

impl LeafReader<'_> {
    /// Refuses the connection with `text`.
    pub(super) fn refuse(&mut self, text: &str) -> bool {
        tracing::error!(leaf = %self.client.addr, "Leafnode refused: {text}");
        self.client
            .err_and_close(text, CloseReason::ProtocolViolation);
        false
    }

    /// Hub side: the spoke's CONNECT, checked in nats-server's order.
    pub(super) fn on_connect(&mut self, json: &[u8]) -> bool {
        if !self.accepted() {
            return true;
        }
        let Ok(c) = serde_json::from_slice::<LeafConnect>(json) else {
            self.client
                .err_and_close("Authorization Violation", CloseReason::AuthFailure);
            return false;
        };
        let Some(account) = self.authorize(&c) else {
            tracing::error!(leaf = %self.client.addr, "Leafnode authorization violation");
            self.client
                .err_and_close("Authorization Violation", CloseReason::AuthFailure);
            return false;
        };
        if c.account.is_some() || c.new_account.is_some() {
            self.client
                .err_and_close("Authorization Violation", CloseReason::AuthFailure);
            return false;
        }
        if c.lang.is_some() {
            return self.refuse("attempted to connect to leaf node port");
        }
        if c.cluster.contains(' ') {
            return self.refuse("cluster name cannot contain spaces");
        }
        if self
            .shared
            .cluster
            .get()
            .is_some_and(|cl| !c.cluster.is_empty() && cl.name() == c.cluster)
        {
            return self.refuse("remote leafnode has same cluster name");
        }
        if let Some(gw) = &c.gateway {
            return self.refuse(&format!(
                "Rejecting connection from gateway \"{gw}\" on the leafnode port"
            ));
        }
        let Role::Accepted { websocket, .. } = self.role else {
            return false;
        };
        let mut info = hub_info(self.shared, self.leafs, self.client, false, websocket);
        info.connect_info = true;
        info.remote_account = account.name.clone();
        let mut buf = BytesMut::new();
        petrel_wire::leaf::info(&mut buf, &info);
        self.client.queue_raw(&buf);
        if let Some(min) = &self.leafs.opts.min_version {
            if version_below(&c.version, min) {
                return self.refuse(&format!(
                    "connection rejected since minimum version required is \"{min}\""
                ));
            }
        }
        let deny_pub = c.deny_pub.iter().map(|s| Bytes::from(s.clone())).collect();
        self.register(LeafLinkParts {
            hub: !c.is_hub,
            cluster: c.cluster.clone(),
            name: c.name.clone(),
            remote_id: c.server_id.clone(),
            remote_account: c.remote_account.clone(),
            account,
            deny_out: deny_pub,
            deny_in: Vec::new(),
            websocket,
        });
        true
    }

    /// The account a spoke's CONNECT logs into (nats-server's `isLeafNodeAuthorized`):
    /// the listener's own user or users, else the server's client users, else (no auth
    /// at all) the listener's `account` or `$G`.
    pub(super) fn authorize(&self, c: &LeafConnect) -> Option<Arc<Account>> {
        let opts = &self.leafs.opts;
        let accounts = &self.shared.accounts;
        let bind = |name: Option<&String>| match name {
            Some(n) => accounts.get(n),
            None => Some(accounts.global().clone()),
        };
        let user = c.user.as_deref().unwrap_or("");
        let pass = c.pass.as_deref().unwrap_or("");
        if let Some(want) = &opts.user {
            let ok = crate::auth::ct_eq(user, want)
                & crate::auth::secret_matches(opts.password.as_deref().unwrap_or(""), pass);
            return ok.then(|| bind(opts.account.as_ref())).flatten();
        }
        if !opts.users.is_empty() {
            let u = opts
                .users
                .iter()
                .find(|u| crate::auth::ct_eq(&u.user, user))?;
            return crate::auth::secret_matches(&u.password, pass)
                .then(|| bind(u.account.as_ref()))
                .flatten();
        }
        let server = self.shared.opts();
        if self.shared.trust.is_some() {
            // Operator-mode leafs (user JWTs) are not supported yet.
            return None;
        }
        if matches!(server.auth, petrel_config::Auth::None) {
            return bind(opts.account.as_ref());
        }
        let connect = petrel_wire::ConnectInfo {
            user: c.user.clone(),
            pass: c.pass.clone(),
            auth_token: c.auth_token.clone(),
            nkey: c.nkey.clone(),
            sig: c.sig.clone(),
            jwt: c.jwt.clone(),
            ..petrel_wire::ConnectInfo::default()
        };
        let authed = crate::auth::authenticate(&server, &connect, &self.client.nonce)?;
        bind(authed.account.as_ref())
    }

    /// Spoke: CONNECT with this remote's credentials; registers at once when the hub
    /// will not answer with a `connect_info` INFO (older servers).
    pub(super) fn send_connect(&mut self, remote: usize, websocket: bool, info: LeafInfo) -> bool {
        let Some(r) = self.leafs.opts.remotes.get(remote) else {
            return false;
        };
        let account = r
            .account
            .clone()
            .unwrap_or_else(|| petrel_config::GLOBAL_ACCOUNT.to_string());
        let mut c = LeafConnect {
            version: crate::NATS_COMPAT_VERSION.to_string(),
            server_id: self.shared.server_id.clone(),
            name: self.shared.server_name.clone(),
            cluster: own_cluster(self.shared),
            headers: true,
            is_hub: r.hub,
            deny_pub: r.deny_imports.clone(),
            remote_account: account,
            ..LeafConnect::default()
        };
        match super::remote::credentials(r, &info.nonce, self.client.addr) {
            Ok(creds) => creds.apply(&mut c),
            Err(e) => {
                tracing::error!(leaf = %self.client.addr, "Leafnode credentials: {e}");
                self.client.close(CloseReason::AuthFailure);
                return false;
            }
        }
        // The dialled URL's user and password, or token.
        if let Role::Solicited {
            user: Some((u, p)), ..
        } = &self.role
        {
            match p {
                Some(p) => {
                    c.user = Some(u.clone());
                    c.pass = Some(p.clone());
                }
                None => {
                    c.auth_token = Some(u.clone());
                    c.user = Some(u.clone());
                }
            }
        }
        let mut buf = BytesMut::new();
        petrel_wire::leaf::connect(&mut buf, &c);
        self.client.queue_raw(&buf);
        self.mark();
        self.connect_sent = true;
        *self.client.name.lock() = info.server_name.clone();
        if info.info_on_connect {
            self.waiting_info = true;
            true
        } else {
            self.register_spoke(remote, websocket, &info)
        }
    }
}

/// What a registration needs besides the connection.
pub(super) struct LeafLinkParts {
    pub(super) hub: bool,
    pub(super) cluster: String,
    pub(super) name: String,
    pub(super) remote_id: String,
    pub(super) remote_account: String,
    pub(super) account: Arc<Account>,
    pub(super) deny_out: Vec<Bytes>,
    pub(super) deny_in: Vec<Bytes>,
    pub(super) websocket: bool,
}

/// Whether `version` (`x.y.z`) is below `min` (an absent or unreadable one is).
pub(super) fn version_below(version: &str, min: &str) -> bool {
    match (
        petrel_config::parse_version(version),
        petrel_config::parse_version(min),
    ) {
        (Some(v), Some(m)) => v < m,
        _ => true,
    }
}

#[cfg(test)]
mod tests {
    use super::version_below;

    #[test]
    fn minimum_versions() {
        assert!(version_below("2.9.10", "2.10.0"));
        assert!(!version_below("2.10.0", "2.10.0"));
        assert!(!version_below("2.15.1", "2.10.0"));
        assert!(version_below("", "2.8.0"));
    }
}
