//! The spoke role's dialling: each `remotes` entry keeps one connection to its hub,
//! trying its URLs (and those the hub told of) in turn, over TCP or WebSocket
//! (`ws://`: an HTTP upgrade to `<path>/leafnode`, masked frames as a client sends), and
//! redialling after `reconnect` (after a failed dial, up to twice that), or 30 s after a
//! loop. Credentials: the URL's user and password or token, an nkey seed or a `.creds`
//! file, whose key signs the hub's nonce.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use base64::Engine;
use petrel_config::{LeafRemote, LeafUrl};
use petrel_wire::leaf::LeafConnect;

use super::conn::{self, Role};
use crate::conn::io::SharedTcp;
use crate::server::Shared;

/// Time to dial a hub.
const DIAL_TIMEOUT: Duration = Duration::from_secs(2);

/// Keeps remote `index` connected until shutdown.
pub(super) async fn solicit(shared: Arc<Shared>, index: usize) {
    let Some(leafs) = shared.leafnodes.get().cloned() else {
        return;
    };
    let Some(remote) = leafs.opts.remotes.get(index).cloned() else {
        return;
    };
    let reconnect = leafs.opts.reconnect.max(Duration::from_millis(10));
    let mut configured = remote.urls.clone();
    if !remote.no_randomize {
        fastrand::shuffle(&mut configured);
    }
    let mut learned: Vec<LeafUrl> = Vec::new();
    let mut attempt = 0u64;
    while !shared.shutdown.is_cancelled() {
        let candidates: Vec<&LeafUrl> = learned.iter().chain(configured.iter()).collect();
        let url = candidates[usize::try_from(attempt).unwrap_or(0) % candidates.len()].clone();
        attempt += 1;
        let wait = match dial(&shared, index, &remote, &url).await {
            Ok(out) => {
                if !out.urls.is_empty() {
                    learned = out
                        .urls
                        .iter()
                        .filter_map(|u| discovered(u, &remote.urls[0]))
                        .filter(|u| !configured.contains(u))
                        .collect();
                }
                if out.registered {
                    attempt = 0;
                }
                out.delay.unwrap_or(reconnect)
            }
            Err(e) => {
                if attempt == 1 || attempt.is_multiple_of(60) {
                    tracing::error!(
                        "Error trying to connect as leafnode to remote server \"{}\" (attempt {attempt}): {e}",
                        url.host_port()
                    );
                }
                reconnect + reconnect.mul_f64(fastrand::f64())
            }
        };
        tokio::select! {
            () = shared.shutdown.cancelled() => break,
            () = tokio::time::sleep(wait) => {}
        }
    }
}

/// A URL the hub told of (`host:port`), with the scheme and credentials of the first
/// configured one.
fn discovered(hostport: &str, like: &LeafUrl) -> Option<LeafUrl> {
    let (host, port) = hostport.rsplit_once(':')?;
    Some(LeafUrl {
        host: host.trim_matches(['[', ']']).to_string(),
        port: port.parse().ok()?,
        ..like.clone()
    })
}

/// Dials `url` and serves the connection until it ends.
async fn dial(
    shared: &Arc<Shared>,
    index: usize,
    remote: &LeafRemote,
    url: &LeafUrl,
) -> Result<conn::Outcome, String> {
    if url.tls || remote.tls.is_some() {
        return Err("TLS on leafnode remotes is not supported yet".into());
    }
    let addr = url.host_port();
    let stream = tokio::time::timeout(DIAL_TIMEOUT, tokio::net::TcpStream::connect(&addr))
        .await
        .map_err(|_| "timed out".to_string())?
        .map_err(|e| e.to_string())?;
    let _ = stream.set_nodelay(true);
    let peer = stream
        .peer_addr()
        .unwrap_or_else(|_| SocketAddr::from(([0, 0, 0, 0], 0)));
    let client = conn::leaf_client(shared, peer);
    let user = url.user.clone().map(|u| (u, url.pass.clone()));
    let role = Role::Solicited {
        remote: index,
        websocket: url.websocket,
        user,
    };
    if !url.websocket {
        let tcp = SharedTcp(Arc::new(stream));
        return Ok(conn::run(shared, client, tcp.clone(), tcp, role).await);
    }
    let uri = format!("ws://{addr}{}/leafnode", url.path);
    let builder = tokio_websockets::ClientBuilder::new()
        .uri(&uri)
        .map_err(|e| format!("invalid websocket URL {uri}: {e}"))?;
    let (ws, _) = tokio::time::timeout(DIAL_TIMEOUT, builder.connect_on(stream))
        .await
        .map_err(|_| "websocket upgrade timed out".to_string())?
        .map_err(|e| format!("invalid websocket connection: {e}"))?;
    let (rd, wr) = crate::conn::ws_split_stream(ws, client.clone());
    Ok(conn::run(shared, client, rd, wr, role).await)
}

/// What a remote signs the hub's nonce with.
#[derive(Default)]
pub(super) struct Creds {
    jwt: Option<String>,
    nkey: Option<String>,
    sig: Option<String>,
}

impl Creds {
    /// Puts them in the CONNECT.
    pub fn apply(self, c: &mut LeafConnect) {
        c.jwt = self.jwt;
        c.nkey = self.nkey;
        c.sig = self.sig;
    }
}

/// The remote's `credentials` (user JWT, signature) or `nkey` (public key, signature)
/// for the hub's `nonce`.
pub(super) fn credentials(r: &LeafRemote, nonce: &str, addr: SocketAddr) -> Result<Creds, String> {
    let sign = |seed: &str| -> Result<(String, String), String> {
        let kp =
            nkeys::KeyPair::from_seed(seed.trim()).map_err(|e| format!("invalid seed: {e}"))?;
        let sig = kp
            .sign(nonce.as_bytes())
            .map_err(|e| format!("cannot sign: {e}"))?;
        Ok((
            kp.public_key(),
            base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(sig),
        ))
    };
    if let Some(path) = &r.credentials {
        let text = std::fs::read_to_string(path)
            .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
        let creds = petrel_jwt::parse_creds(&text)
            .map_err(|e| format!("invalid credentials file {}: {e}", path.display()))?;
        let (_, sig) = sign(&creds.seed)?;
        tracing::debug!(leaf = %addr, "Leafnode CONNECT signed with {}", path.display());
        return Ok(Creds {
            jwt: Some(creds.jwt),
            nkey: None,
            sig: Some(sig),
        });
    }
    if let Some(seed) = &r.nkey_seed {
        let (key, sig) = sign(seed)?;
        return Ok(Creds {
            jwt: None,
            nkey: Some(key),
            sig: Some(sig),
        });
    }
    Ok(Creds::default())
}
