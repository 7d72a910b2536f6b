//! One client connection: accept-time checks, the INFO greeting, the reader (this task)
//! and the writer (its own task), and cleanup when either side ends.

pub(crate) mod io;
mod reader;
mod trace;
pub(crate) mod writer;
mod ws;

use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::sync::Arc;

use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;

use crate::client::{Client, ClientKind, CloseReason};
use crate::server::Shared;

/// Serve one accepted TCP connection until it closes.
pub(crate) async fn serve(shared: Arc<Shared>, stream: TcpStream, addr: SocketAddr) {
    let _ = stream.set_nodelay(true);
    let Some(client) = new_client(&shared, addr) else {
        return;
    };
    let cid = client.cid;
    let mut greeting = bytes::BytesMut::new();
    petrel_wire::encode::info(&mut greeting, &shared.info_for(&client));

    if !shared.register(&client) {
        // Over max_connections: greet, refuse, close.
        let mut stream = stream;
        petrel_wire::encode::err(&mut greeting, "maximum connections exceeded");
        let _ = stream.write_all(&greeting).await;
        let _ = stream.shutdown().await;
        tracing::warn!(cid, client = %addr, "Maximum connections exceeded");
        return;
    }
    tracing::debug!(cid, client = %addr, "Client connection created");
    match &shared.tls {
        None => {
            client.queue_raw(&greeting);
            let tcp = io::SharedTcp(Arc::new(stream));
            client.set_direct(tcp.0.clone());
            run(&shared, &client, tcp.clone(), tcp).await;
        }
        Some((acceptor, tls)) => {
            match crate::tls::upgrade(acceptor, tls, stream, &greeting).await {
                Ok((tls_stream, info_pending)) => {
                    client.meta.set_tls(tls_stream.get_ref().1);
                    if info_pending {
                        client.queue_raw(&greeting);
                    }
                    let (rd, wr) = tokio::io::split(tls_stream);
                    run(&shared, &client, io::Half(rd), io::Half(wr)).await;
                }
                Err(reason) => {
                    client.close(reason);
                    tracing::debug!(cid, client = %addr, reason = reason.as_str(), "TLS setup failed");
                }
            }
        }
    }
    cleanup(&shared, &client);
}

/// Serve one accepted WebSocket connection (TLS first when the listener has it, then the
/// HTTP upgrade) until it closes.
pub(crate) async fn serve_ws(
    shared: Arc<Shared>,
    stream: TcpStream,
    addr: SocketAddr,
    ws: Arc<petrel_config::WebSocketOptions>,
    tls: Option<tokio_rustls::TlsAcceptor>,
) {
    let _ = stream.set_nodelay(true);
    let deadline = ws.handshake_timeout;
    match tls {
        Some(acceptor) => {
            let upgraded = tokio::time::timeout(deadline, async {
                let tls_stream = acceptor.accept(stream).await.map_err(|e| e.to_string())?;
                let mut buffered = tokio::io::BufReader::new(tls_stream);
                let up = ws::handshake(&mut buffered, &ws, true).await?;
                Ok::<_, String>((buffered, up))
            })
            .await;
            match upgraded {
                Ok(Ok((s, up))) => serve_upgraded(shared, s, addr, &ws, up).await,
                Ok(Err(why)) => tracing::debug!(client = %addr, "WebSocket upgrade failed: {why}"),
                Err(_) => tracing::debug!(client = %addr, "WebSocket handshake timed out"),
            }
        }
        None => {
            let mut buffered = tokio::io::BufReader::new(stream);
            let up = tokio::time::timeout(deadline, ws::handshake(&mut buffered, &ws, false)).await;
            match up {
                Ok(Ok(up)) => serve_upgraded(shared, buffered, addr, &ws, up).await,
                Ok(Err(why)) => tracing::debug!(client = %addr, "WebSocket upgrade failed: {why}"),
                Err(_) => tracing::debug!(client = %addr, "WebSocket handshake timed out"),
            }
        }
    }
}

/// The NATS protocol over an upgraded WebSocket stream.
async fn serve_upgraded<S>(
    shared: Arc<Shared>,
    stream: S,
    addr: SocketAddr,
    opts: &petrel_config::WebSocketOptions,
    up: ws::Upgrade,
) where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    if up.leaf {
        crate::leaf::serve_ws(shared, stream, addr).await;
        return;
    }
    let Some(client) = new_client(&shared, addr) else {
        return;
    };
    let cookie = |name: &Option<String>| {
        name.as_ref().and_then(|name| {
            up.cookies
                .iter()
                .find(|(k, _)| k == name)
                .map(|(_, v)| v.clone())
        })
    };
    let c = &opts.cookies;
    client.set_ws_defaults(crate::client::WsDefaults {
        user: cookie(&c.user),
        pass: cookie(&c.pass),
        token: cookie(&c.token),
        jwt: cookie(&c.jwt),
        auth: opts.auth.clone(),
        auth_timeout: opts.auth_timeout,
        no_auth_user: opts.no_auth_user.clone(),
    });
    let (rd, wr) = ws::split(stream, client.clone());
    let mut greeting = bytes::BytesMut::new();
    petrel_wire::encode::info(&mut greeting, &shared.info_for(&client));
    if !shared.register(&client) {
        petrel_wire::encode::err(&mut greeting, "maximum connections exceeded");
        let mut wr = wr;
        let _ = io::WriteSink::write_iov(&mut wr, &[std::io::IoSlice::new(&greeting)]).await;
        let _ = io::WriteSink::finish(&mut wr).await;
        return;
    }
    tracing::debug!(cid = client.cid, client = %addr, "WebSocket client connection created");
    client.queue_raw(&greeting);
    run(&shared, &client, rd, wr).await;
    cleanup(&shared, &client);
}

/// An upgraded server-side WebSocket as the reader's and writer's halves (leafnodes).
pub(crate) fn ws_split<S>(stream: S, client: Arc<Client>) -> (ws::WsRead<S>, ws::WsWrite<S>)
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    ws::split(stream, client)
}

/// A client-side WebSocket (a leafnode remote) as the reader's and writer's halves.
pub(crate) fn ws_split_stream<S>(
    ws: tokio_websockets::WebSocketStream<S>,
    client: Arc<Client>,
) -> (ws::WsRead<S>, ws::WsWrite<S>)
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    ws::split_stream(ws, client)
}

/// A client connection's shared state (with its nonce when logins sign one); `None` when
/// no nonce could be made.
fn new_client(shared: &Shared, addr: SocketAddr) -> Option<Arc<Client>> {
    let opts = shared.opts();
    let nonce = if crate::auth::needs_nonce(&opts.auth) || opts.operator.is_some() {
        crate::auth::nonce()?
    } else {
        String::new()
    };
    Some(Arc::new(Client::new(
        ClientKind::Client,
        shared.next_cid(),
        addr,
        opts.max_pending,
        shared.stats.clone(),
        nonce,
    )))
}

/// Run the writer task and the reader until the connection closes.
async fn run<R, W>(shared: &Arc<Shared>, client: &Arc<Client>, rd: R, wr: W)
where
    R: io::ReadSource,
    W: io::WriteSink,
{
    let writer = tokio::spawn(writer::write_loop(shared.clone(), client.clone(), wr));
    client.flush(false);
    reader::read_loop(shared, client, rd).await;
    client.close(CloseReason::ClientClosed);
    let _ = writer.await;
}

/// Drop the connection's subscriptions and registration.
fn cleanup(shared: &Shared, client: &Arc<Client>) {
    let subs = std::mem::take(&mut *client.subs.lock());
    if !subs.is_empty() {
        shared.accounts.of(client).remove_subs(subs.values());
    }
    shared.unregister(client.cid);
    let reason = client.close_reason().unwrap_or(CloseReason::ClientClosed);
    crate::sys::client_disconnected(shared, client, reason);
    if let Some(account) = client.account() {
        let (msgs, bytes) = {
            let out = client.outbound();
            (out.out_msgs, out.out_bytes)
        };
        let st = &account.stats;
        st.closed_out_msgs.fetch_add(msgs, Ordering::Relaxed);
        st.closed_out_bytes.fetch_add(bytes, Ordering::Relaxed);
        if reason.is_slow_consumer() {
            st.slow_consumers.fetch_add(1, Ordering::Relaxed);
        }
    }
    tracing::debug!(cid = client.cid, client = %client.addr, reason = reason.as_str(), "Client connection closed");
}
