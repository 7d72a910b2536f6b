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

use bytes::BytesMut;
use petrel_wire::leaf::LeafInfo;

use super::conn::{self, Role};
use crate::conn::io::{Half, SharedTcp};
use crate::server::Shared;

/// Time to dial a hub (and for its INFO, TLS handshake or WebSocket upgrade).
const DIAL_TIMEOUT: Duration = Duration::from_secs(2);
/// Most URLs taken from a hub's INFO (the rest are ignored).
const MAX_LEARNED: usize = 32;
/// Longest INFO line taken from a hub.
const MAX_INFO: usize = 64 * 1024;

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
                        .take(MAX_LEARNED)
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
    let (host, port) = petrel_config::split_host_port(hostport);
    Some(LeafUrl {
        host,
        port: port?,
        ..like.clone()
    })
}

/// Dials `url` and serves the connection until it ends: over TCP (TLS after the hub's
/// INFO when either side asks for it) or WebSocket (`wss://`: TLS first).
async fn dial(
    shared: &Arc<Shared>,
    index: usize,
    remote: &LeafRemote,
    url: &LeafUrl,
) -> Result<conn::Outcome, String> {
    let addr = url.host_port();
    let mut stream = tokio::time::timeout(DIAL_TIMEOUT, tokio::net::TcpStream::connect(&addr))
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
    let connector = shared
        .leafnodes
        .get()
        .and_then(|l| l.remote_tls.get(index).cloned().flatten());
    if url.websocket {
        let uri = format!("ws://{addr}{}/leafnode", url.path);
        if !url.tls {
            let ws = ws_upgrade(&uri, stream).await?;
            let (rd, wr) = crate::conn::ws_split_stream(ws, client.clone());
            return Ok(conn::run(shared, client, rd, wr, role, BytesMut::new()).await);
        }
        let tls = tls_connect(connector.as_ref(), &url.host, stream).await?;
        let ws = ws_upgrade(&uri, tls).await?;
        let (rd, wr) = crate::conn::ws_split_stream(ws, client.clone());
        return Ok(conn::run(shared, client, rd, wr, role, BytesMut::new()).await);
    }
    // The hub's INFO comes in plain text; it says whether TLS follows.
    let first = read_info(&mut stream).await?;
    let info = first
        .strip_prefix(b"INFO ")
        .and_then(|j| serde_json::from_slice::<LeafInfo>(trim_crlf(j)).ok())
        .ok_or("the first message was not a leafnode INFO")?;
    if info.tls_required || url.tls || remote.tls.is_some() {
        let tls = tls_connect(connector.as_ref(), &url.host, stream).await?;
        let (rd, wr) = tokio::io::split(tls);
        return Ok(conn::run(shared, client, Half(rd), Half(wr), role, first).await);
    }
    let tcp = SharedTcp(Arc::new(stream));
    Ok(conn::run(shared, client, tcp.clone(), tcp, role, first).await)
}

fn trim_crlf(b: &[u8]) -> &[u8] {
    let end = b
        .iter()
        .rposition(|c| !c.is_ascii_whitespace())
        .map_or(0, |e| e + 1);
    &b[..end]
}

/// Reads the hub's first line (its INFO) and nothing after it.
async fn read_info(stream: &mut tokio::net::TcpStream) -> Result<BytesMut, String> {
    use tokio::io::AsyncReadExt;
    let mut line = BytesMut::with_capacity(1024);
    let read = async {
        loop {
            let b = stream.read_u8().await.map_err(|e| e.to_string())?;
            line.extend_from_slice(&[b]);
            if b == b'\n' {
                return Ok(());
            }
            if line.len() > MAX_INFO {
                return Err("the hub's INFO is too long".to_string());
            }
        }
    };
    tokio::time::timeout(DIAL_TIMEOUT, read)
        .await
        .map_err(|_| "no INFO from the hub".to_string())??;
    Ok(line)
}

/// The TLS handshake with the hub at `host`.
async fn tls_connect<S>(
    connector: Option<&tokio_rustls::TlsConnector>,
    host: &str,
    stream: S,
) -> Result<tokio_rustls::client::TlsStream<S>, String>
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
{
    let connector =
        connector.ok_or("the hub requires TLS: give the remote a tls { ca_file } block")?;
    let name = rustls::pki_types::ServerName::try_from(host.to_string())
        .map_err(|e| format!("invalid TLS name {host}: {e}"))?;
    tokio::time::timeout(DIAL_TIMEOUT, connector.connect(name, stream))
        .await
        .map_err(|_| "TLS handshake timed out".to_string())?
        .map_err(|e| format!("TLS handshake failed: {e}"))
}

/// The WebSocket upgrade to `uri` (frames are masked, as a client's must be).
async fn ws_upgrade<S>(uri: &str, stream: S) -> Result<tokio_websockets::WebSocketStream<S>, String>
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
{
    let builder = tokio_websockets::ClientBuilder::new()
        .uri(uri)
        .map_err(|e| format!("invalid websocket URL {uri}: {e}"))?;
    let (ws, _) = tokio::time::timeout(DIAL_TIMEOUT, builder.connect_on(stream))
        .await
        .map_err(|_| "websocket upgrade timed out".to_string())?
        .map_err(|e| format!("invalid websocket connection: {e}"))?;
    Ok(ws)
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

#[cfg(test)]
mod tests {
    use super::*;

    fn verifies(public: &str, nonce: &str, sig: &str) -> bool {
        let sig = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(sig)
            .expect("base64url signature");
        nkeys::KeyPair::from_public_key(public)
            .expect("public key")
            .verify(nonce.as_bytes(), &sig)
            .is_ok()
    }

    #[test]
    fn creds_and_nkey_remotes_sign_the_hubs_nonce() {
        let addr = SocketAddr::from(([127, 0, 0, 1], 7422));
        let kp = nkeys::KeyPair::new_user();
        let seed = kp.seed().unwrap();
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("edge.creds");
        std::fs::write(&path, petrel_jwt::format_creds("eyJ0.eyJ1.c2ln", &seed)).unwrap();
        let remote = LeafRemote {
            credentials: Some(path),
            ..LeafRemote::default()
        };
        let c = credentials(&remote, "n0nce", addr).unwrap();
        assert_eq!(c.jwt.as_deref(), Some("eyJ0.eyJ1.c2ln"));
        assert!(verifies(
            &kp.public_key(),
            "n0nce",
            c.sig.as_deref().unwrap()
        ));
        let remote = LeafRemote {
            nkey_seed: Some(seed),
            ..LeafRemote::default()
        };
        let c = credentials(&remote, "other", addr).unwrap();
        assert_eq!(c.nkey.as_deref(), Some(kp.public_key().as_str()));
        assert!(verifies(
            &kp.public_key(),
            "other",
            c.sig.as_deref().unwrap()
        ));
        let remote = LeafRemote {
            nkey_seed: Some("SUNOTASEED".into()),
            ..LeafRemote::default()
        };
        assert!(credentials(&remote, "n", addr).is_err());
    }
}
