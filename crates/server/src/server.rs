//! The embeddable server: [`ServerBuilder`] → [`Server::start`] → [`ServerHandle`]; the
//! accept loop, connection registry, INFO template and graceful shutdown.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use parking_lot::{Mutex, RwLock};
use petrel_config::{Auth, JetStreamOptions, Options, OptionsError};
use petrel_wire::ServerInfo;
use tokio::net::TcpListener;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::client::{Client, CloseReason};
use crate::stats::{Stats, StatsSnapshot};
use crate::sub::SubRef;

/// The nats-server feature level Petrel advertises in INFO `version`. Clients enable
/// headers, JetStream and newer APIs by this number.
pub const NATS_COMPAT_VERSION: &str = "2.10.0";
/// Petrel's own version.
pub const PETREL_VERSION: &str = env!("CARGO_PKG_VERSION");

/// Why the server could not start.
#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    /// The options are inconsistent.
    #[error("invalid options: {0}")]
    Options(OptionsError),
    /// The client listener could not be bound.
    #[error("cannot listen on {addr}: {cause}")]
    Bind {
        /// Address asked for.
        addr: SocketAddr,
        /// Underlying error.
        cause: std::io::Error,
    },
    /// Another server holds the store directory, or it cannot be locked.
    #[error(transparent)]
    StoreLock(#[from] crate::store_lock::StoreLockError),
    /// JetStream could not start (its store could not be opened).
    #[error("cannot start JetStream: {0}")]
    JetStream(String),
    /// TLS could not be configured.
    #[error(transparent)]
    Tls(#[from] crate::tls::TlsError),
    /// The account resolver's directory could not be read or created.
    #[error("cannot open the account resolver's directory: {0}")]
    Resolver(std::io::Error),
    /// The JetStream store directory could not be created.
    #[error("cannot create store directory {dir}: {cause}")]
    StoreDir {
        /// Directory asked for.
        dir: PathBuf,
        /// Underlying error.
        cause: std::io::Error,
    },
    /// The leafnode configuration refers to something that does not exist.
    #[error("invalid leafnode configuration: {0}")]
    Leafnode(String),
}

impl From<OptionsError> for ServerError {
    fn from(e: OptionsError) -> Self {
        ServerError::Options(e)
    }
}

/// Whether an I/O error means "this directory takes no writes" (the server then runs
/// without JetStream and says why) rather than a mistake that should stop the start.
fn not_writable(e: &std::io::Error) -> bool {
    use std::io::ErrorKind::{PermissionDenied, ReadOnlyFilesystem, StorageFull};
    matches!(
        e.kind(),
        ReadOnlyFilesystem | StorageFull | PermissionDenied
    )
}

/// State shared by the accept loop and every connection.
pub(crate) struct Shared {
    /// Every account: subject spaces, internal clients, JetStreams.
    pub accounts: crate::account::Accounts,
    /// Operator mode: the trusted operators and account JWTs.
    pub trust: Option<Arc<crate::operator::Trust>>,
    /// The lock on JetStream's store directory, held while any account's JetStream runs.
    pub js_lock: Mutex<Option<crate::store_lock::StoreLock>>,
    /// Why configured JetStream did not start (its store directory takes no writes).
    pub js_down: std::sync::OnceLock<String>,
    /// The server-wide JetStream limits and the store's I/O layer, once JetStream runs
    /// (accounts added later start theirs with them).
    pub js_group: std::sync::OnceLock<(
        Arc<petrel_jetstream::JsGroup>,
        Arc<dyn petrel_store::Backend>,
    )>,
    /// The system account's services.
    pub sys: std::sync::OnceLock<Arc<crate::sys::System>>,
    /// The cluster (routes), when `cluster {}` is configured.
    pub cluster: std::sync::OnceLock<Arc<crate::route::Cluster>>,
    /// Clustered JetStream, when both JetStream and `cluster {}` are configured.
    pub js_cluster: std::sync::OnceLock<Arc<petrel_jetstream::JsCluster>>,
    /// The WebSocket listener's address, this server's WebSocket URLs and whether it
    /// has TLS, when on.
    pub websocket: std::sync::OnceLock<(SocketAddr, Vec<String>, bool)>,
    /// Leafnodes (listener and remotes), when `leafnodes {}` is configured.
    pub leafnodes: std::sync::OnceLock<Arc<crate::leaf::Leafnodes>>,
    /// Options in force; replaced as a whole on reload.
    opts: RwLock<Arc<Options>>,
    /// Bumped by every reload; every connection watches it.
    config_gen: tokio::sync::watch::Sender<u64>,
    /// TLS acceptor and settings, when client TLS is on.
    pub tls: Option<(tokio_rustls::TlsAcceptor, petrel_config::TlsOptions)>,
    pub server_id: String,
    pub server_name: String,
    pub listen: SocketAddr,
    /// `$JS.<domain>.API.` when JetStream runs with a domain (mapped before routing).
    pub js_domain_api: Option<Vec<u8>>,
    pub stats: Arc<Stats>,
    /// Start time, config load time and the monitoring HTTP address.
    pub monitor: crate::monitoring::MonitorState,
    pub clients: Mutex<HashMap<u64, Arc<Client>>>,
    next_cid: AtomicU64,
    pub shutdown: CancellationToken,
    /// Cancelled when the server stops accepting (shutdown or lame-duck mode).
    stop_accept: CancellationToken,
    /// Lame-duck mode is on: INFO says `ldm`, no new clients.
    pub ldm: std::sync::atomic::AtomicBool,
    /// Permits for bcrypt checks (see `auth::check`).
    pub auth_pool: tokio::sync::Semaphore,
    tracker: TaskTracker,
}

impl Shared {
    /// The options in force.
    pub fn opts(&self) -> Arc<Options> {
        self.opts.read().clone()
    }

    /// A receiver that wakes when the configuration is reloaded.
    pub fn watch_reload(&self) -> tokio::sync::watch::Receiver<u64> {
        self.config_gen.subscribe()
    }

    /// Replace the options in force and tell every connection.
    fn reload(&self, opts: Options) {
        *self.opts.write() = Arc::new(opts);
        self.config_gen.send_modify(|g| *g += 1);
    }

    /// Every connection checks its login again (an account JWT changed).
    pub fn recheck_logins(&self) {
        self.config_gen.send_modify(|g| *g += 1);
    }

    /// Resolves when the server stops accepting clients (shutdown or lame-duck mode).
    pub async fn accepting_stopped(&self) {
        self.stop_accept.cancelled().await;
    }

    /// Runs `task` as one of the server's tasks (shutdown waits for it).
    pub fn spawn<F>(&self, task: F)
    where
        F: std::future::Future<Output = ()> + Send + 'static,
    {
        self.tracker.spawn(task);
    }

    pub fn next_cid(&self) -> u64 {
        self.next_cid.fetch_add(1, Ordering::Relaxed) + 1
    }

    /// Add a connection unless that would exceed `max_connections`.
    pub fn register(&self, client: &Arc<Client>) -> bool {
        let mut clients = self.clients.lock();
        if clients.len() >= self.opts().max_connections {
            return false;
        }
        clients.insert(client.cid, client.clone());
        self.stats.total_connections.fetch_add(1, Ordering::Relaxed);
        true
    }

    /// The client connections bound to `account` (the map is copied out first,
    /// docs/LOCKS.md rule 1).
    pub fn clients_of(&self, account: &crate::account::Account) -> Vec<Arc<Client>> {
        let all: Vec<Arc<Client>> = self.clients.lock().values().cloned().collect();
        all.into_iter().filter(|c| c.is_in(account)).collect()
    }

    pub fn unregister(&self, cid: u64) {
        self.clients.lock().remove(&cid);
    }

    /// Remove a subscription from its account's Sublist and from its client.
    pub fn remove_sub(&self, sub: &SubRef) {
        let account = self.accounts.of(&sub.client);
        if account.remove_subs([&sub.0]) > 0 {
            let mut subs = sub.client.subs.lock();
            if subs.get(&sub.sid).is_some_and(|s| Arc::ptr_eq(s, &sub.0)) {
                subs.remove(&sub.sid);
            }
        }
    }

    /// Subscriptions in every account.
    pub fn subscription_count(&self) -> u64 {
        self.accounts.iter().map(|a| a.subscriptions() as u64).sum()
    }

    /// The INFO sent to `client` on accept.
    pub fn info_for(&self, client: &Client) -> ServerInfo {
        let opts = client.effective_opts(self.opts());
        // A WebSocket client is told the WebSocket listener, its TLS and its URLs.
        let ws = self.websocket.get().filter(|_| client.is_websocket());
        let (listen, tls, verify) = match ws {
            Some(w) => (w.0, w.2, false),
            None => (
                self.listen,
                self.tls.is_some(),
                self.tls.as_ref().is_some_and(|(_, t)| t.verify),
            ),
        };
        ServerInfo {
            server_id: self.server_id.clone(),
            server_name: self.server_name.clone(),
            version: NATS_COMPAT_VERSION.to_string(),
            proto: 1,
            go: format!("petrel{PETREL_VERSION}"),
            host: listen.ip().to_string(),
            port: listen.port(),
            headers: true,
            // nats-server: with no_auth_user, credentials are optional.
            auth_required: opts.auth_required() && opts.no_auth_user.is_none(),
            tls_required: tls,
            tls_verify: verify,
            max_payload: opts.max_payload,
            jetstream: self.accounts.jetstreams().next().is_some(),
            client_id: client.cid,
            client_ip: client.addr.ip().to_string(),
            api_lvl: petrel_jetstream::API_LEVEL,
            nonce: client.nonce.clone(),
            ldm: self.ldm.load(Ordering::Acquire),
            connect_urls: if ws.is_some() {
                crate::route::ws_urls(self)
            } else {
                crate::route::client_urls(self)
            },
            cluster: self.cluster.get().map(|c| c.name()).unwrap_or_default(),
        }
    }
}

/// A configured, not yet started server.
pub struct Server {
    opts: Options,
    backend: Arc<dyn petrel_store::Backend>,
    raft_timing: petrel_jetstream::RaftTiming,
}

/// Builder for an embedded [`Server`]; starts from nats-server's defaults with JetStream
/// off and port 4222.
#[derive(Debug, Clone)]
pub struct ServerBuilder {
    opts: Options,
    backend: Arc<dyn petrel_store::Backend>,
    raft_timing: petrel_jetstream::RaftTiming,
}

impl Default for ServerBuilder {
    fn default() -> Self {
        Self {
            opts: Options::default(),
            backend: Arc::new(petrel_store::StdBackend),
            raft_timing: petrel_jetstream::RaftTiming::default(),
        }
    }
}

impl ServerBuilder {
    /// Replace every option.
    pub fn options(mut self, opts: Options) -> Self {
        self.opts = opts;
        self
    }
    /// Interface to listen on.
    pub fn host(mut self, host: std::net::IpAddr) -> Self {
        self.opts.host = host;
        self
    }
    /// Client port; 0 picks a free one.
    pub fn port(mut self, port: u16) -> Self {
        self.opts.port = port;
        self
    }
    /// Server name.
    pub fn server_name(mut self, name: impl Into<String>) -> Self {
        self.opts.server_name = Some(name.into());
        self
    }
    /// Enable JetStream with its store in `dir`.
    pub fn jetstream(mut self, dir: impl Into<PathBuf>) -> Self {
        self.opts.jetstream = Some(JetStreamOptions {
            store_dir: dir.into(),
            ..JetStreamOptions::default()
        });
        self
    }
    /// JetStream's memory and file storage limits in bytes (`max_memory_store`,
    /// `max_file_store`; `None`: nats-server's defaults). Call after [`Self::jetstream`].
    pub fn jetstream_limits(mut self, max_memory: Option<u64>, max_file: Option<u64>) -> Self {
        if let Some(js) = self.opts.jetstream.as_mut() {
            js.max_memory = max_memory;
            js.max_file = max_file;
        }
        self
    }
    /// The JetStream domain (`jetstream { domain }`). Call after [`Self::jetstream`].
    pub fn jetstream_domain(mut self, domain: impl Into<String>) -> Self {
        if let Some(js) = self.opts.jetstream.as_mut() {
            js.domain = Some(domain.into());
        }
        self
    }
    /// Whether JetStream API requests with fields they do not have are refused
    /// (`jetstream { strict }`, on by default as in nats-server 2.12+). Call after
    /// [`Self::jetstream`].
    pub fn jetstream_strict(mut self, strict: bool) -> Self {
        if let Some(js) = self.opts.jetstream.as_mut() {
            js.strict = strict;
        }
        self
    }
    /// Maximum payload.
    pub fn max_payload(mut self, n: usize) -> Self {
        self.opts.max_payload = n;
        self
    }
    /// Slow-consumer threshold.
    pub fn max_pending(mut self, n: usize) -> Self {
        self.opts.max_pending = n;
        self
    }
    /// Connection limit.
    pub fn max_connections(mut self, n: usize) -> Self {
        self.opts.max_connections = n;
        self
    }
    /// Per-connection subscription limit.
    pub fn max_subscriptions(mut self, n: usize) -> Self {
        self.opts.max_subscriptions = n;
        self
    }
    /// Keep-alive interval and unanswered-PING limit.
    pub fn ping(mut self, interval: Duration, max: u32) -> Self {
        self.opts.ping_interval = interval;
        self.opts.ping_max = max;
        self
    }
    /// Time allowed for CONNECT when auth is required.
    pub fn auth_timeout(mut self, d: Duration) -> Self {
        self.opts.auth_timeout = d;
        self
    }
    /// Write deadline.
    pub fn write_deadline(mut self, d: Duration) -> Self {
        self.opts.write_deadline = d;
        self
    }
    /// Require a user and password.
    pub fn user_pass(mut self, user: impl Into<String>, pass: impl Into<String>) -> Self {
        self.opts.auth = Auth::UserPass {
            user: user.into(),
            pass: pass.into(),
        };
        self
    }
    /// Any authentication scheme (users lists, nkeys).
    pub fn auth(mut self, auth: Auth) -> Self {
        self.opts.auth = auth;
        self
    }
    /// Permissions for users without their own.
    pub fn default_permissions(mut self, p: petrel_config::Permissions) -> Self {
        self.opts.default_permissions = Some(p);
        self
    }
    /// Client TLS.
    pub fn tls(mut self, tls: petrel_config::TlsOptions) -> Self {
        self.opts.tls = Some(tls);
        self
    }
    /// Lame-duck mode timing: clients are closed over `duration`, after `grace`.
    pub fn lame_duck(mut self, duration: Duration, grace: Duration) -> Self {
        self.opts.lame_duck_duration = duration;
        self.opts.lame_duck_grace_period = grace;
        self
    }

    /// Monitoring HTTP port (0 picks a free one), served by `petrel-monitor` when it is
    /// started for this server.
    pub fn http_port(mut self, port: u16) -> Self {
        self.opts.http_port = Some(port);
        self
    }
    /// Monitoring HTTP interface (default: the client interface).
    pub fn http_host(mut self, host: std::net::IpAddr) -> Self {
        self.opts.http_host = Some(host);
        self
    }
    /// Serve WebSocket clients (`websocket {}`).
    pub fn websocket(mut self, ws: petrel_config::WebSocketOptions) -> Self {
        self.opts.websocket = Some(ws);
        self
    }
    /// Leafnodes: a listener for spokes and remotes (hubs) to dial.
    pub fn leafnodes(mut self, leafnodes: petrel_config::LeafnodeOptions) -> Self {
        self.opts.leafnodes = Some(leafnodes);
        self
    }

    /// Join a cluster: the route listener and the routes to dial.
    pub fn cluster(mut self, cluster: petrel_config::ClusterOptions) -> Self {
        self.opts.cluster = Some(cluster);
        self
    }
    /// Require a token.
    pub fn token(mut self, token: impl Into<String>) -> Self {
        self.opts.auth = Auth::Token(token.into());
        self
    }
    /// The I/O layer JetStream's files go through (default: the real filesystem). Tests
    /// pass a [`petrel_store::FaultyBackend`] to make writes fail or the disk fill up.
    pub fn store_backend(mut self, backend: Arc<dyn petrel_store::Backend>) -> Self {
        self.backend = backend;
        self
    }
    /// The Raft timers and limits of clustered JetStream's groups (default: heartbeats
    /// every 500 ms, elections after 2–4 s, a snapshot per 64 MiB of log). Tests shorten
    /// them.
    pub fn raft_timing(mut self, timing: petrel_jetstream::RaftTiming) -> Self {
        self.raft_timing = timing;
        self
    }
    /// The configured server.
    pub fn build(self) -> Server {
        Server {
            opts: self.opts,
            backend: self.backend,
            raft_timing: self.raft_timing,
        }
    }
    /// Build and start.
    pub async fn start(self) -> Result<ServerHandle, ServerError> {
        self.build().start().await
    }
}

impl Server {
    /// A builder with default options.
    pub fn builder() -> ServerBuilder {
        ServerBuilder::default()
    }

    /// A server with these options.
    pub fn new(opts: Options) -> Self {
        Self {
            opts,
            backend: Arc::new(petrel_store::StdBackend),
            raft_timing: petrel_jetstream::RaftTiming::default(),
        }
    }

    /// Bind the listener and start accepting clients.
    pub async fn start(self) -> Result<ServerHandle, ServerError> {
        let mut opts = self.opts;
        opts.validate()?;
        let trust = crate::operator::trust(&mut opts)?;
        let server_id = crate::ident::server_id();
        tracing::info!("Starting petrel");
        tracing::info!(
            "  Version:  {PETREL_VERSION} (nats-server protocol level {NATS_COMPAT_VERSION})"
        );
        let server_name = opts
            .server_name
            .clone()
            .unwrap_or_else(|| server_id.clone());
        tracing::info!("  Name:     {server_name}");
        tracing::info!("  ID:       {server_id}");
        if crate::auth::has_plaintext(&opts.auth) {
            tracing::warn!("Plaintext passwords detected, use nkeys or bcrypt");
        }
        // A store directory that takes no writes (a read-only or full volume, a directory
        // the server's user may not write) leaves JetStream unavailable — logged, and
        // reported by /healthz — while core NATS serves; anything else stops the start.
        let js_down = match &opts.jetstream {
            Some(js) => match petrel_store::probe_writable(self.backend.as_ref(), &js.store_dir) {
                Ok(()) => None,
                Err(cause) if not_writable(&cause) => {
                    let why = format!(
                        "JetStream store directory {} is not writable: {cause}",
                        js.store_dir.display()
                    );
                    tracing::error!("{why}; JetStream is unavailable (/healthz reports it)");
                    Some(why)
                }
                Err(cause) => {
                    return Err(ServerError::StoreDir {
                        dir: js.store_dir.clone(),
                        cause,
                    })
                }
            },
            None => None,
        };
        let tls = match &opts.tls {
            Some(t) => Some((crate::tls::acceptor(t)?, t.clone())),
            None => None,
        };
        let bind = SocketAddr::new(opts.host, opts.port);
        let listener = TcpListener::bind(bind)
            .await
            .map_err(|cause| ServerError::Bind { addr: bind, cause })?;
        let listen = listener
            .local_addr()
            .map_err(|cause| ServerError::Bind { addr: bind, cause })?;
        tracing::info!("Listening for client connections on {listen}");
        let stats = Arc::new(Stats::default());
        let accounts = crate::account::Accounts::new(&opts, &stats);
        let shared = Arc::new(Shared {
            accounts,
            trust,
            js_lock: Mutex::new(None),
            js_down: std::sync::OnceLock::new(),
            js_group: std::sync::OnceLock::new(),
            sys: std::sync::OnceLock::new(),
            cluster: std::sync::OnceLock::new(),
            js_cluster: std::sync::OnceLock::new(),
            websocket: std::sync::OnceLock::new(),
            leafnodes: std::sync::OnceLock::new(),
            server_name: opts
                .server_name
                .clone()
                .unwrap_or_else(|| server_id.clone()),
            server_id,
            listen,
            js_domain_api: opts
                .jetstream
                .as_ref()
                .and_then(|js| js.domain.as_deref())
                .map(crate::mapping::domain_prefix),
            stats,
            tls,
            clients: Mutex::new(HashMap::new()),
            next_cid: AtomicU64::new(0),
            shutdown: CancellationToken::new(),
            stop_accept: CancellationToken::new(),
            ldm: std::sync::atomic::AtomicBool::new(false),
            auth_pool: tokio::sync::Semaphore::new(crate::auth::pool_size()),
            tracker: TaskTracker::new(),
            opts: RwLock::new(Arc::new(opts)),
            config_gen: tokio::sync::watch::channel(0).0,
            monitor: crate::monitoring::MonitorState::new(),
        });
        crate::imports::install(&shared.accounts, &shared.opts().accounts);
        for account in shared.accounts.iter() {
            crate::sys::install_account_imports(&shared.accounts, &account);
        }
        let _ = shared.sys.set(crate::sys::start(&shared));
        if let Some(why) = js_down {
            let _ = shared.js_down.set(why);
        } else if let Some(js) = &shared.opts().jetstream {
            tracing::info!("Starting JetStream");
            tracing::info!(
                "  Store Directory: {:?}",
                js.store_dir.display().to_string()
            );
            if let Some(d) = &js.domain {
                tracing::info!("  Domain:          {d}");
            }
            crate::js::start(&shared, js, self.backend.clone(), self.raft_timing).await?;
        }
        if let Some(w) = shared.opts().websocket.clone() {
            let addr = crate::websocket::start(&shared, &w).await?;
            let tls = w.tls.is_some();
            let _ = shared
                .websocket
                .set((addr, crate::websocket::own_urls(&w, addr), tls));
        }
        if let Some(c) = shared.opts().cluster.clone() {
            let (cluster, listener) = crate::route::start(&shared, &c).await?;
            let _ = shared.cluster.set(cluster);
            crate::route::begin(&shared, listener);
        }
        if let Some(l) = shared.opts().leafnodes.clone() {
            let (leafs, listener) = crate::leaf::start(&shared, &l).await?;
            let _ = shared.leafnodes.set(leafs);
            crate::leaf::begin(&shared, listener);
        }
        let accept = tokio::spawn(accept_loop(shared.clone(), listener));
        tracing::info!("Server is ready");
        Ok(ServerHandle {
            shared,
            accept: Some(accept),
        })
    }
}

async fn accept_loop(shared: Arc<Shared>, listener: TcpListener) {
    loop {
        let accepted = tokio::select! {
            () = shared.shutdown.cancelled() => break,
            () = shared.stop_accept.cancelled() => break,
            a = listener.accept() => a,
        };
        match accepted {
            Ok((stream, addr)) => {
                shared
                    .tracker
                    .spawn(crate::conn::serve(shared.clone(), stream, addr));
            }
            Err(e) => {
                // Usually out of file descriptors: back off instead of spinning.
                tracing::error!(error = %e, "Error accepting client connection");
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        }
    }
}

/// [`ServerHandle::reload`] on the shared state (also run by `$SYS.REQ.SERVER.<id>.RELOAD`).
pub(crate) fn reload(shared: &Shared, new: Options) -> Result<(), ServerError> {
    new.validate()?;
    let old = shared.opts();
    let mut merged = new;
    for (what, changed) in [
        (
            "listen address",
            merged.host != old.host || (merged.port != old.port && merged.port != 0),
        ),
        ("tls", merged.tls != old.tls),
        ("jetstream", merged.jetstream != old.jetstream),
        (
            "accounts",
            (merged.accounts != old.accounts && old.operator.is_none())
                || merged.system_account != old.system_account,
        ),
        ("operator", merged.operator != old.operator),
    ] {
        if changed {
            tracing::warn!(
                "Reload: {what} cannot change without a restart; keeping the current setting"
            );
        }
    }
    merged.host = old.host;
    merged.port = old.port;
    merged.tls = old.tls.clone();
    merged.jetstream = old.jetstream.clone();
    merged.accounts = old.accounts.clone();
    merged.system_account = old.system_account.clone();
    merged.operator = old.operator.clone();
    shared.reload(merged);
    shared.monitor.config_loaded();
    tracing::info!("Reloaded server configuration");
    Ok(())
}

/// A running server. Dropping it stops the server without waiting.
pub struct ServerHandle {
    pub(crate) shared: Arc<Shared>,
    accept: Option<JoinHandle<()>>,
}

impl ServerHandle {
    /// The address the listener is bound to.
    pub fn addr(&self) -> SocketAddr {
        self.shared.listen
    }

    /// `nats://host:port` for clients (an unspecified bind address becomes loopback).
    pub fn client_url(&self) -> String {
        let addr = self.shared.listen;
        let host = if addr.ip().is_unspecified() {
            if addr.is_ipv4() {
                "127.0.0.1".to_string()
            } else {
                "[::1]".to_string()
            }
        } else if addr.is_ipv6() {
            format!("[{}]", addr.ip())
        } else {
            addr.ip().to_string()
        };
        format!("nats://{host}:{}", addr.port())
    }

    /// The server id advertised in INFO.
    pub fn server_id(&self) -> &str {
        &self.shared.server_id
    }

    /// The options in force.
    pub fn options(&self) -> Arc<Options> {
        self.shared.opts()
    }

    /// Install what answers the system account's monitoring requests (`$SYS.REQ.SERVER.PING.VARZ`
    /// and the like, and the STATSZ heartbeat); `petrel_monitor::serve_system` does.
    /// `false` if one is installed already.
    pub fn set_monitor_service(&self, service: Arc<dyn crate::sys::MonitorService>) -> bool {
        self.shared
            .sys
            .get()
            .is_some_and(|s| s.set_monitor(service))
    }

    /// Install what `$SYS.REQ.SERVER.<id>.RELOAD` runs (the petrel binary re-reads its
    /// configuration file). `false` if one is installed already.
    pub fn set_reload_hook(&self, hook: crate::sys::ReloadHook) -> bool {
        self.shared.sys.get().is_some_and(|s| s.set_reload(hook))
    }

    /// Apply a new configuration (SIGHUP): authentication, permissions and limits change
    /// for new and existing connections; connections no longer allowed are closed and
    /// subscriptions no longer permitted are dropped. The listen address, TLS and JetStream
    /// settings need a restart (a warning says so).
    pub fn reload(&self, new: Options) -> Result<(), ServerError> {
        reload(&self.shared, new)
    }

    /// Current counters.
    pub fn stats(&self) -> StatsSnapshot {
        let connections = self.shared.clients.lock().len() as u64;
        self.shared
            .stats
            .snapshot(connections, self.shared.subscription_count())
    }

    /// Stop accepting, let every connection flush what is queued (up to the shutdown
    /// grace period), then close them.
    pub async fn shutdown(mut self) {
        self.stop().await;
    }

    /// Lame-duck mode (SIGUSR2, `--signal ldm`): stop accepting, tell every client through
    /// an INFO with `"ldm":true` (clients then reconnect elsewhere), wait the grace period,
    /// close the remaining clients spread over the rest of `lame_duck_duration`, then shut
    /// down as [`ServerHandle::shutdown`] does (JetStream stores flushed and closed).
    pub async fn lame_duck(mut self) {
        let opts = self.shared.opts();
        let (duration, grace) = (opts.lame_duck_duration, opts.lame_duck_grace_period);
        tracing::info!("Entering lame duck mode, stop accepting new clients");
        self.shared.ldm.store(true, Ordering::Release);
        crate::route::lame_duck(&self.shared);
        self.shared.stop_accept.cancel();
        if let Some(accept) = self.accept.take() {
            let _ = accept.await;
        }
        let clients: Vec<Arc<Client>> = self.shared.clients.lock().values().cloned().collect();
        for c in &clients {
            let mut buf = bytes::BytesMut::new();
            petrel_wire::encode::info(&mut buf, &self.shared.info_for(c));
            c.queue_raw(&buf);
            if c.mark_dirty() {
                c.flush(false);
            }
        }
        if !clients.is_empty() {
            tracing::info!(
                "Closing {} existing clients over {:?} after a grace period of {:?}",
                clients.len(),
                duration.saturating_sub(grace),
                grace
            );
            self.sleep_unless_empty(grace).await;
            let spread = duration.saturating_sub(grace);
            let gap = spread / u32::try_from(clients.len()).unwrap_or(u32::MAX).max(1);
            for c in &clients {
                c.close(CloseReason::ServerShutdown);
                if self.shared.clients.lock().is_empty() {
                    break;
                }
                tokio::time::sleep(gap).await;
            }
        }
        self.stop().await;
    }

    /// Sleeps for `d` or until no client is left.
    async fn sleep_unless_empty(&self, d: Duration) {
        let deadline = tokio::time::Instant::now() + d;
        while tokio::time::Instant::now() < deadline {
            if self.shared.clients.lock().is_empty() {
                return;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// The WebSocket listener's address, when it is on.
    pub fn websocket_addr(&self) -> Option<SocketAddr> {
        self.shared.websocket.get().map(|w| w.0)
    }

    /// The route listener's address, when clustering is on.
    pub fn cluster_addr(&self) -> Option<SocketAddr> {
        self.shared.cluster.get().map(|c| c.listen)
    }

    /// The leafnode listener's address, when there is one.
    pub fn leafnode_addr(&self) -> Option<SocketAddr> {
        self.shared.leafnodes.get().and_then(|l| l.listen)
    }

    /// Server names of the registered leafnode connections (both roles).
    pub fn leaf_peers(&self) -> Vec<String> {
        self.shared
            .leafnodes
            .get()
            .map(|l| {
                l.conns()
                    .iter()
                    .filter_map(|c| c.leaf.get().map(|k| k.name.clone()))
                    .collect()
            })
            .unwrap_or_default()
    }

    /// Server ids of the peers with a registered route.
    pub fn route_peers(&self) -> Vec<String> {
        self.shared
            .cluster
            .get()
            .map(|c| c.routes().iter().map(|r| r.remote_id.clone()).collect())
            .unwrap_or_default()
    }

    /// Whether lame-duck mode is on.
    pub fn in_lame_duck_mode(&self) -> bool {
        self.shared.ldm.load(Ordering::Acquire)
    }

    async fn stop(&mut self) {
        self.shared.shutdown.cancel();
        if let Some(accept) = self.accept.take() {
            let _ = accept.await;
        }
        let clients: Vec<Arc<Client>> = self.shared.clients.lock().values().cloned().collect();
        for c in &clients {
            c.close(CloseReason::ServerShutdown);
        }
        crate::route::close_all(&self.shared);
        crate::leaf::close_all(&self.shared);
        self.shared.tracker.close();
        if tokio::time::timeout(
            self.shared.opts().shutdown_grace,
            self.shared.tracker.wait(),
        )
        .await
        .is_err()
        {
            tracing::warn!("Shutdown grace period over with connections still flushing");
        }
        crate::js::shutdown(&self.shared).await;
        tracing::info!("Server Exiting..");
    }
}

impl Drop for ServerHandle {
    fn drop(&mut self) {
        if self.accept.is_some() {
            self.shared.shutdown.cancel();
            for c in self.shared.clients.lock().values() {
                c.close(CloseReason::ServerShutdown);
            }
        }
    }
}
