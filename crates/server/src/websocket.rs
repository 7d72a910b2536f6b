//! The WebSocket client listener (`websocket {}`): binds, accepts, and hands each
//! connection to `conn::serve_ws` (TLS, the HTTP upgrade, then the NATS protocol).

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use petrel_config::WebSocketOptions;
use tokio::net::TcpListener;

use crate::server::Shared;
use crate::ServerError;

/// Binds the WebSocket listener and starts accepting; returns its address.
pub(crate) async fn start(
    shared: &Arc<Shared>,
    opts: &WebSocketOptions,
) -> Result<SocketAddr, ServerError> {
    // As nats-server: a `tls {}` block wins over `no_tls`.
    let tls = match &opts.tls {
        Some(t) => Some(crate::tls::acceptor(t)?),
        None => None,
    };
    let bind = SocketAddr::new(opts.host, opts.port);
    let listener = TcpListener::bind(bind)
        .await
        .map_err(|cause| ServerError::Bind { addr: bind, cause })?;
    let addr = listener
        .local_addr()
        .map_err(|cause| ServerError::Bind { addr: bind, cause })?;
    let scheme = if tls.is_some() { "wss" } else { "ws" };
    tracing::info!("Listening for websocket clients on {scheme}://{addr}");
    if tls.is_none() {
        tracing::warn!("Websocket not configured with TLS. DO NOT USE IN PRODUCTION!");
    }
    shared.spawn(accept_loop(
        shared.clone(),
        listener,
        Arc::new(opts.clone()),
        tls,
    ));
    Ok(addr)
}

async fn accept_loop(
    shared: Arc<Shared>,
    listener: TcpListener,
    opts: Arc<WebSocketOptions>,
    tls: Option<tokio_rustls::TlsAcceptor>,
) {
    loop {
        let accepted = tokio::select! {
            () = shared.shutdown.cancelled() => break,
            () = shared.accepting_stopped() => break,
            a = listener.accept() => a,
        };
        match accepted {
            Ok((stream, addr)) => {
                shared.spawn(crate::conn::serve_ws(
                    shared.clone(),
                    stream,
                    addr,
                    opts.clone(),
                    tls.clone(),
                ));
            }
            Err(e) => {
                tracing::error!(error = %e, "Error accepting websocket connection");
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        }
    }
}

/// The URLs WebSocket clients are told (`ws_connect_urls`): the advertised address, else
/// the listener's (with the machine's addresses when it listens on all of them).
pub(crate) fn own_urls(opts: &WebSocketOptions, addr: SocketAddr) -> Vec<String> {
    if let Some(a) = &opts.advertise {
        return vec![a.clone()];
    }
    crate::route::local_urls(addr)
}
