//! Run Petrel inside tests.
//!
//! * [`spawn`] starts an in-process server on a free loopback port with a temporary store
//!   directory (removed on drop) and hands back its URL:
//!   ```no_run
//!   # async fn t() -> Result<(), Box<dyn std::error::Error>> {
//!   let server = petrel_testkit::spawn().await;
//!   let client = async_nats::connect(server.client_url()).await?;
//!   # Ok(()) }
//!   ```
//! * [`spawn_with_monitor`] / [`spawn_jetstream_with_monitor`] also serve the monitoring
//!   endpoints (`/varz`, `/connz`, `/jsz`, `/metrics`...) on a free port
//!   ([`TestServer::monitor_url`]); so does any spawn whose builder sets `http_port`.
//!   [`http_get`] fetches one of them.
//! * [`spawn_binary`] starts the `petrel` executable as a child process on a free port and
//!   kills it on drop (the same thing other languages' test fixtures do).
//! * [`spawn_cluster`] starts several in-process servers joined by routes (a full mesh
//!   once it returns).
//! * [`spawn_nats_server`] starts a real nats-server (found by [`find_nats_server`]) on
//!   free ports, optionally in a cluster with Petrel nodes (mixed meshes).
//! * [`RawClient`] speaks the protocol byte by byte for exact-bytes tests.

mod binary;
mod certs;
mod cluster;
mod http;
mod nats_server;
mod raw;

use petrel_server::ServerHandle;

pub use binary::{find_binary, spawn_binary, spawn_binary_with, BinaryServer, SpawnError};
pub use certs::{CertError, TestCerts};
pub use cluster::{spawn_cluster, spawn_cluster_with, wait_for_routes};
pub use http::{http_get, HttpError, HttpResponse};
pub use nats_server::{
    find_nats_server, spawn_nats_server, spawn_nats_server_with, NatsServer, NatsServerError,
};
/// The server types tests configure through [`spawn_with`], so a test needs no direct
/// dependency on `petrel-server`.
pub use petrel_server::{
    Auth, ClusterOptions, LeafRemote, LeafUrl, LeafUser, LeafnodeOptions, Permissions,
    ResponsePermission, RouteUrl, ServerBuilder, SubjectPermission, TlsOptions, User,
    WebSocketOptions, WsCookies,
};
pub use raw::RawClient;

/// Every Rust example of the README, compiled as a doctest so the README stays true.
#[cfg(doctest)]
#[doc = include_str!("../../../README.md")]
pub struct ReadmeExamples;

/// An in-process server for one test. Stops (without waiting) when dropped.
pub struct TestServer {
    handle: Option<ServerHandle>,
    store: tempfile::TempDir,
}

impl TestServer {
    /// `nats://127.0.0.1:<port>`.
    pub fn client_url(&self) -> String {
        self.handle().client_url()
    }

    /// The bound address.
    pub fn addr(&self) -> std::net::SocketAddr {
        self.handle().addr()
    }

    /// Where the monitoring endpoints are served, when monitoring is on.
    pub fn monitor_addr(&self) -> Option<std::net::SocketAddr> {
        self.handle().monitor_addr()
    }

    /// `http://127.0.0.1:<port>` of the monitoring endpoints. Panics when the server was
    /// spawned without monitoring.
    pub fn monitor_url(&self) -> String {
        let addr = self
            .monitor_addr()
            .expect("spawned without monitoring: use spawn_with_monitor or http_port(0)");
        format!("http://{addr}")
    }

    /// The temporary store directory.
    pub fn store_dir(&self) -> &std::path::Path {
        self.store.path()
    }

    /// The running server.
    pub fn handle(&self) -> &ServerHandle {
        // Only `shutdown` takes the handle, and it consumes `self`.
        self.handle
            .as_ref()
            .expect("server handle present until shutdown")
    }

    /// `nats-route://127.0.0.1:<port>` of the route listener, when clustering is on.
    pub fn route_url(&self) -> Option<String> {
        self.handle()
            .cluster_addr()
            .map(|a| format!("nats-route://{a}"))
    }

    /// `nats-leaf://127.0.0.1:<port>` of the leafnode listener, when there is one.
    pub fn leaf_url(&self) -> Option<String> {
        self.handle()
            .leafnode_addr()
            .map(|a| format!("nats-leaf://127.0.0.1:{}", a.port()))
    }

    /// Shut down gracefully, flushing every connection.
    pub async fn shutdown(mut self) {
        if let Some(h) = self.handle.take() {
            h.shutdown().await;
        }
    }

    /// Lame-duck mode (as SIGUSR2): stop accepting, tell clients, close them over the
    /// configured lame-duck duration, then shut down.
    pub async fn lame_duck(mut self) {
        if let Some(h) = self.handle.take() {
            h.lame_duck().await;
        }
    }
}

/// With `PETREL_TEST_LOG` set (a `tracing` filter such as `info` or
/// `petrel_jetstream=debug`), the servers' logs go to stderr (once per test binary).
pub fn log_if_asked() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        if let Ok(filter) = std::env::var("PETREL_TEST_LOG") {
            let _ = tracing_subscriber::fmt()
                .with_env_filter(tracing_subscriber::EnvFilter::new(filter))
                .with_writer(std::io::stderr)
                .try_init();
        }
    });
}

/// Start a server on `127.0.0.1:0` with defaults.
pub async fn spawn() -> TestServer {
    spawn_with(|b| b).await
}

/// Start a server on `127.0.0.1:0` with JetStream on, its store in the temporary
/// directory.
pub async fn spawn_jetstream() -> TestServer {
    spawn_with_store(|b, dir| b.jetstream(dir)).await
}

/// Start a server on `127.0.0.1:0` with monitoring on a free port
/// ([`TestServer::monitor_url`]).
pub async fn spawn_with_monitor() -> TestServer {
    spawn_with(|b| b.http_port(0)).await
}

/// Start a server on `127.0.0.1:0` with JetStream (temporary store) and monitoring on a
/// free port.
pub async fn spawn_jetstream_with_monitor() -> TestServer {
    spawn_with_store(|b, dir| b.jetstream(dir).http_port(0)).await
}

/// Start a server on `127.0.0.1:0` after `configure` adjusts the builder.
pub async fn spawn_with(configure: impl FnOnce(ServerBuilder) -> ServerBuilder) -> TestServer {
    spawn_with_store(|b, _| configure(b)).await
}

/// Like [`spawn_with`], also handing `configure` the temporary store directory. When the
/// builder sets `http_port`, the monitoring endpoints are started too.
pub async fn spawn_with_store(
    configure: impl FnOnce(ServerBuilder, &std::path::Path) -> ServerBuilder,
) -> TestServer {
    log_if_asked();
    let store = tempfile::tempdir().expect("create a temporary store directory");
    let builder = petrel_server::Server::builder()
        .host(std::net::Ipv4Addr::LOCALHOST.into())
        .port(0);
    let builder = configure(builder, store.path());
    let handle = builder
        .start()
        .await
        .expect("start an in-process petrel server");
    petrel_monitor::start(&handle)
        .await
        .expect("start the monitoring endpoints");
    petrel_monitor::serve_system(&handle);
    TestServer {
        handle: Some(handle),
        store,
    }
}
