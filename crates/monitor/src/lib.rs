//! Petrel's monitoring HTTP server: nats-server's endpoints with nats-server's field names,
//! so dashboards, exporters and the `nats` CLI read Petrel as they read nats-server, plus
//! Prometheus text on `/metrics`.
//!
//! | path | content |
//! |---|---|
//! | `/` | the dashboard: one self-contained HTML page polling the endpoints below |
//! | `/varz` | server options, identity, counters, JetStream config and stats |
//! | `/connz` | open connections (`subs`, `sort`, `limit`, `offset`, `cid`, `auth`, `state`) |
//! | `/subsz`, `/subscriptionsz` | Sublist statistics (`subs`, `test`, `limit`, `offset`) |
//! | `/jsz` | JetStream (`accounts`, `streams`, `consumers`, `config`) |
//! | `/healthz` | `{"status":"ok"}` (`js-enabled-only`, `js-server-only`) |
//! | `/accountz` | the accounts (`$G`, the system account, configured ones); `acc=` one in detail |
//! | `/accstatz` | each account's connections and messages sent and received (`unused=1`, `acc=`) |
//! | `/metrics` | Prometheus text exposition of the same numbers |
//!
//! The crate sits above the server (the server never serves HTTP): [`start`] reads the
//! handle's `http_port` / `http_host` options, binds, records the address in the server
//! (`ServerHandle::monitor_addr`) and serves until the server shuts down. The petrel
//! binary calls it after starting the server; embedders and tests do the same:
//!
//! ```no_run
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! let server = petrel_server::Server::builder().port(0).http_port(0).start().await?;
//! let monitor = petrel_monitor::start(&server).await?;
//! println!("monitoring on {:?}", server.monitor_addr());
//! # drop(monitor); Ok(()) }
//! ```
//!
//! [`router`] / [`api_router`] give the axum router for mounting elsewhere or extending
//! ([`api_router`] leaves `/` free for a page of your own).
//!
//! The dashboard on `/` (`dashboard.html`, embedded at compile time) needs nothing but a
//! browser: inline CSS and JavaScript, no external assets. It polls `/varz`, `/connz`,
//! `/subsz`, `/jsz` and `/accstatz` every second and shows the server's identity and
//! counters, message and byte rates over the last five minutes, and tables of
//! connections, streams, accounts and consumers; endpoint errors appear in its status line.
//!
//! [`serve_system`] answers the system account's `$SYS.REQ` monitoring requests with the
//! same handlers.

mod accountz;
mod connz;
mod dashboard;
mod format;
mod health;
mod jsz;
mod leafz;
mod metrics;
pub mod prom;
mod query;
mod routez;
mod subsz;
mod sys;
mod system;
mod varz;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::Arc;

use axum::http::StatusCode;
use axum::response::Response;
use axum::routing::get;
use axum::Router;
use parking_lot::Mutex;
use petrel_server::{MonitorView, ServerHandle};
pub use system::{serve_system, SystemMonitor};
use tokio::net::TcpListener;
use tokio::task::JoinHandle;

/// Why the monitoring server could not start.
#[derive(Debug, thiserror::Error)]
pub enum MonitorError {
    /// The HTTP listener could not be bound.
    #[error("cannot listen for http monitoring on {addr}: {cause}")]
    Bind {
        /// Address asked for.
        addr: SocketAddr,
        /// Underlying error.
        cause: std::io::Error,
    },
}

/// What every handler shares: the server view and the monitor's own counters.
#[derive(Clone)]
pub struct AppState {
    inner: Arc<Inner>,
}

struct Inner {
    view: MonitorView,
    /// Requests served per path (`/varz`'s `http_req_stats`).
    requests: Mutex<BTreeMap<&'static str, u64>>,
    cpu: Mutex<sys::CpuMeter>,
    /// One heavy collection (connections, subscriptions, streams) at a time, on a blocking
    /// thread: a client polling monitoring hard queues behind itself instead of taking
    /// the reactor's threads (and so the clients' traffic) away.
    heavy: tokio::sync::Semaphore,
}

impl AppState {
    /// State for monitoring the server behind `view`.
    pub fn new(view: MonitorView) -> Self {
        Self {
            inner: Arc::new(Inner {
                view,
                requests: Mutex::new(BTreeMap::new()),
                cpu: Mutex::new(sys::CpuMeter::new()),
                heavy: tokio::sync::Semaphore::new(1),
            }),
        }
    }

    /// The monitored server.
    pub fn view(&self) -> &MonitorView {
        &self.inner.view
    }

    /// Count one request on `path` (shown in `/varz` as `http_req_stats`).
    pub fn count_request(&self, path: &'static str) {
        *self.inner.requests.lock().entry(path).or_insert(0) += 1;
    }

    /// Runs `f` (which reads many connections, subscriptions or streams) on a blocking
    /// thread, one such request at a time; `None` if the server is going away.
    pub(crate) async fn heavy<T: Send + 'static>(
        &self,
        f: impl FnOnce(&MonitorView) -> T + Send + 'static,
    ) -> Option<T> {
        let _permit = self.inner.heavy.acquire().await.ok()?;
        let view = self.inner.view.clone();
        tokio::task::spawn_blocking(move || f(&view)).await.ok()
    }

    fn request_counts(&self) -> BTreeMap<&'static str, u64> {
        self.inner.requests.lock().clone()
    }

    fn cpu_percent(&self) -> f64 {
        self.inner.cpu.lock().sample()
    }
}

/// Every monitoring endpoint except `/`, for routers that serve their own page there.
pub fn api_router(state: AppState) -> Router {
    Router::new()
        .route("/varz", get(varz::handler))
        .route("/connz", get(connz::handler))
        .route("/routez", get(routez::handler))
        .route("/leafz", get(leafz::handler))
        .route("/subsz", get(subsz::handler))
        .route("/subscriptionsz", get(subsz::handler_alias))
        .route("/jsz", get(jsz::handler))
        .route("/healthz", get(health::healthz))
        .route("/accountz", get(accountz::handler))
        .route("/accstatz", get(accountz::accstatz))
        .route("/metrics", get(metrics::handler))
        .fallback(not_found)
        .with_state(state)
}

/// Every endpoint, with the dashboard on `/`.
pub fn router(state: AppState) -> Router {
    api_router(state.clone()).route("/", get(dashboard::handler).with_state(state))
}

/// Serve the monitoring endpoints of `view` on `listener` until the server shuts down.
pub async fn serve(listener: TcpListener, view: MonitorView) -> std::io::Result<()> {
    let app = router(AppState::new(view.clone()));
    axum::serve(listener, app)
        .with_graceful_shutdown(async move { view.closed().await })
        .await
}

/// A running monitoring HTTP server; it stops when the server shuts down.
#[derive(Debug)]
pub struct MonitorServer {
    addr: SocketAddr,
    task: JoinHandle<()>,
}

impl MonitorServer {
    /// The address it listens on.
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// Wait until it has stopped (after the server shut down).
    pub async fn stopped(self) {
        let _ = self.task.await;
    }
}

/// Start monitoring for `server` if its options set `http_port` (`-m`, `http_port:`;
/// 0 picks a free port), on `http_host` (default: the client interface). Logs
/// `Starting http monitor on <addr>` and records the address in the server.
pub async fn start(server: &ServerHandle) -> Result<Option<MonitorServer>, MonitorError> {
    let opts = server.options();
    let Some(port) = opts.http_port else {
        return Ok(None);
    };
    let host = opts.http_host.unwrap_or(opts.host);
    start_on(server.monitor_view(), SocketAddr::new(host, port))
        .await
        .map(Some)
}

/// Start monitoring `view` on `addr` (port 0 picks a free one).
pub async fn start_on(view: MonitorView, addr: SocketAddr) -> Result<MonitorServer, MonitorError> {
    let listener = TcpListener::bind(addr)
        .await
        .map_err(|cause| MonitorError::Bind { addr, cause })?;
    let bound = listener
        .local_addr()
        .map_err(|cause| MonitorError::Bind { addr, cause })?;
    tracing::info!("Starting http monitor on {bound}");
    view.set_monitor_addr(bound);
    let task = tokio::spawn(async move {
        if let Err(e) = serve(listener, view).await {
            tracing::error!(error = %e, "http monitor stopped");
        }
    });
    Ok(MonitorServer { addr: bound, task })
}

/// nats-server's answer to an unknown path.
async fn not_found() -> Response {
    format::error(StatusCode::NOT_FOUND, "404 page not found")
}
