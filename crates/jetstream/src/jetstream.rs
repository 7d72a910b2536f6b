//! [`JetStream`]: the object the server holds. It owns the streams, subscribes their subjects
//! and the API through the [`Port`] (with the handlers of `handlers.rs`), and runs three kinds of
//! tasks: one ingest task per stream, one `$JS.API` task, one maintenance tick (max_age
//! expiry, dedup expiry, interval fsync).
//!
//! Locks: `streams` is held only for map lookups and updates, never across a
//! call into the [`Port`]; a stream's own mutex is only taken on blocking threads.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Weak};
use std::time::{Duration, Instant};

use parking_lot::{Mutex, RwLock};
use petrel_store::SyncMode;
use tokio::sync::watch;

use crate::api::{self, ApiRequest};
use crate::backlog::{Backlog, Limits};
use crate::config::{StorageType, StreamConfig};
use crate::consumer::persist::StateSync;
use crate::errors::JetStreamError;
use crate::handlers::{ApiHandler, StreamHandler};
use crate::ingest;
use crate::limits::ResourceLimits;
use crate::meta::{self, StreamMeta};
use crate::port::{Accept, Port, SubId};
use crate::stream::Stream;
use crate::time::now_nanos;

/// Subject of every API request.
pub const API_SUBSCRIPTION: &str = "$JS.API.>";
/// Bounds of the API request queue (nats-server's JetStream request queue limit is
/// 10,000): past half the requesting client is stalled, at the limit requests are dropped
/// with a `$JS.EVENT.ADVISORY.API.LIMIT_REACHED` advisory.
const API_LIMITS: Limits = Limits {
    msgs: 10_000,
    bytes: 64 * 1024 * 1024,
};
/// How often the maintenance task runs.
const TICK: Duration = Duration::from_millis(250);
/// How often the store directory is checked for a durable write (a full or read-only
/// volume shows in `/healthz` within this).
const PROBE_EVERY: Duration = Duration::from_secs(5);
/// How long shutdown waits for one stream to drain and close.
const CLOSE_TIMEOUT: Duration = Duration::from_secs(10);

/// Settings of [`JetStream::start`].
#[derive(Debug, Clone)]
pub struct JetStreamConfig {
    /// Root directory; streams live in `<store_dir>/jetstream/<account>/streams/<name>/`.
    pub store_dir: PathBuf,
    /// Server-wide limit on memory-stream bytes (`max_memory_store`), `None` = unlimited.
    pub max_memory: Option<u64>,
    /// Server-wide limit on file-stream bytes (`max_file_store`), `None` = unlimited.
    pub max_file: Option<u64>,
    /// When file stores fsync: `Always` (PubAck after fsync) or on an interval.
    pub sync: SyncMode,
    /// The server's name, for advisories.
    pub server_name: String,
    /// The JetStream domain, named in PubAcks and stream infos.
    pub domain: Option<String>,
    /// The account this JetStream belongs to (`$G` without accounts).
    pub account: String,
    /// The account's own limits.
    pub account_limits: crate::limits::AccountLimits,
    /// The server's JetStreams (one per account), sharing the storage limits; `None`: this
    /// one alone, with `max_memory` / `max_file`.
    pub group: Option<Arc<crate::limits::JsGroup>>,
    /// The I/O layer every file goes through (`StdBackend`; tests inject faults).
    pub backend: Arc<dyn petrel_store::Backend>,
    /// Refuse API requests with fields they do not have (`strict`, nats-server 2.12+'s
    /// default).
    pub strict: bool,
}

impl JetStreamStats {
    /// The numbers of several JetStreams (one per account) as one: counters added, the
    /// server-wide limits kept.
    pub fn combine(self, other: JetStreamStats) -> JetStreamStats {
        JetStreamStats {
            streams: self.streams + other.streams,
            consumers: self.consumers + other.consumers,
            messages: self.messages + other.messages,
            bytes: self.bytes + other.bytes,
            memory: self.memory + other.memory,
            storage: self.storage + other.storage,
            api_total: self.api_total + other.api_total,
            api_errors: self.api_errors + other.api_errors,
            max_memory: self.max_memory.max(other.max_memory),
            max_storage: self.max_storage.max(other.max_storage),
            reserved_memory: self.reserved_memory + other.reserved_memory,
            reserved_storage: self.reserved_storage + other.reserved_storage,
            accounts: self.accounts + other.accounts,
        }
    }
}

/// Numbers for monitoring (`/jsz`, `/varz`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct JetStreamStats {
    /// Number of streams.
    pub streams: u64,
    /// Number of consumers.
    pub consumers: u64,
    /// Messages in all streams.
    pub messages: u64,
    /// Bytes in all streams.
    pub bytes: u64,
    /// Bytes in memory streams.
    pub memory: u64,
    /// Bytes in file streams.
    pub storage: u64,
    /// API requests handled.
    pub api_total: u64,
    /// API requests answered with an error.
    pub api_errors: u64,
    /// The memory limit in force (configured, else 75% of the machine's memory).
    pub max_memory: u64,
    /// The storage limit in force (configured, else 75% of the volume's free space at
    /// start).
    pub max_storage: u64,
    /// Bytes memory streams reserve with `max_bytes`.
    pub reserved_memory: u64,
    /// Bytes file streams reserve with `max_bytes`.
    pub reserved_storage: u64,
    /// Accounts these numbers cover (1 for one JetStream).
    pub accounts: u64,
}

/// JetStream: streams, the API and their tasks.
pub struct JetStream {
    pub(crate) config: JetStreamConfig,
    /// The resource limits in force (configured, else measured at start).
    pub(crate) limits: ResourceLimits,
    /// The server's JetStreams, for the server-wide reservations.
    pub(crate) group: Arc<crate::limits::JsGroup>,
    /// What this account's streams hold, against its byte limits.
    pub(crate) usage: Arc<crate::limits::AccountUsage>,
    pub(crate) port: Arc<dyn Port>,
    pub(crate) streams: RwLock<BTreeMap<String, Arc<Stream>>>,
    /// How many mirrors answer their origin's direct gets (none: no scan per request).
    pub(crate) direct_mirrors: std::sync::atomic::AtomicUsize,
    /// API requests waiting for the API task.
    pub(crate) api: Arc<Backlog<ApiRequest>>,
    /// The `$JS.API.>` subscription.
    api_sub: Mutex<Option<SubId>>,
    /// Why the store directory does not take writes, as of the last probe.
    store_problem: Mutex<Option<String>>,
    pub(crate) api_total: AtomicU64,
    pub(crate) api_errors: AtomicU64,
    closing: AtomicBool,
    shutdown_tx: watch::Sender<bool>,
    pub(crate) runtime: tokio::runtime::Handle,
    /// This object, for tasks that must not keep it alive.
    me: Weak<JetStream>,
    /// Clustered JetStream, when the server runs it.
    pub(crate) cluster: std::sync::OnceLock<Arc<crate::cluster::JsCluster>>,
}

impl std::fmt::Debug for JetStream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("JetStream")
            .field("store_dir", &self.config.store_dir)
            .field("streams", &self.streams.read().len())
            .finish()
    }
}

impl JetStream {
    /// Opens (recovers) every stream under `store_dir`, subscribes `$JS.API.>` and every
    /// stream's subjects through the port, and starts the background tasks. Must be called
    /// inside a tokio runtime. A stream whose metadata or store cannot be read is logged and
    /// skipped, never fatal.
    pub async fn start(
        config: JetStreamConfig,
        port: Arc<dyn Port>,
    ) -> Result<Arc<JetStream>, JetStreamError> {
        let runtime =
            tokio::runtime::Handle::try_current().map_err(|_| JetStreamError::NoRuntime)?;
        let dir = meta::streams_dir(&config.store_dir, &config.account);
        // Snapshots and restores a previous run left behind.
        let staging = meta::account_dir(&config.store_dir, &config.account).join(".backup");
        if config.backend.exists(&staging) {
            let _ = config.backend.remove_dir_all(&staging);
        }
        let sync = config.sync;
        let d = dir.clone();
        let backend = config.backend.clone();
        let recovered = tokio::task::spawn_blocking(move || recover_all(&d, sync, backend))
            .await
            .map_err(|e| JetStreamError::StoreDir {
                path: dir,
                cause: std::io::Error::other(e.to_string()),
            })??;
        let (shutdown_tx, shutdown_rx) = watch::channel(false);
        let group = config.group.clone().unwrap_or_else(|| {
            crate::limits::JsGroup::new(ResourceLimits::resolve(
                config.max_memory,
                config.max_file,
                &config.store_dir,
            ))
        });
        let limits = group.limits();
        let usage = Arc::new(crate::limits::AccountUsage::new(config.account_limits));
        let js = Arc::new_cyclic(|me| JetStream {
            config,
            limits,
            group: group.clone(),
            usage: usage.clone(),
            port,
            streams: RwLock::new(BTreeMap::new()),
            direct_mirrors: std::sync::atomic::AtomicUsize::new(0),
            api: Arc::new(Backlog::new(API_LIMITS)),
            api_sub: Mutex::new(None),
            store_problem: Mutex::new(None),
            api_total: AtomicU64::new(0),
            api_errors: AtomicU64::new(0),
            closing: AtomicBool::new(false),
            shutdown_tx,
            runtime,
            me: me.clone(),
            cluster: std::sync::OnceLock::new(),
        });
        group.join(js.weak());
        let api = ApiHandler {
            js: js.weak(),
            limit_gate: Default::default(),
        };
        let api_sub = js
            .port
            .subscribe(API_SUBSCRIPTION, None, Accept::ClientsOnly, Arc::new(api));
        *js.api_sub.lock() = Some(api_sub);
        for stream in recovered {
            js.register(stream.clone());
            let j = js.clone();
            let _ = tokio::task::spawn_blocking(move || j.recover_consumers(&stream)).await;
        }
        js.runtime.spawn(api_loop(js.clone(), shutdown_rx.clone()));
        js.runtime.spawn(maintenance_loop(js.clone(), shutdown_rx));
        Ok(js)
    }

    /// A weak handle to this object.
    pub(crate) fn weak(&self) -> Weak<JetStream> {
        self.me.clone()
    }

    /// Drains every stream's queue, commits and closes every store, stops the tasks and
    /// removes the subscriptions. Called on server shutdown; idempotent.
    pub async fn shutdown(&self) {
        if self.closing.swap(true, Ordering::AcqRel) {
            return;
        }
        tracing::info!("Initiating JetStream Shutdown...");
        let _ = self.shutdown_tx.send(true);
        let streams: Vec<Arc<Stream>> = self.streams.read().values().cloned().collect();
        for s in streams {
            crate::sourcing::task::stop(self, &s);
            let (j, s2) = (self.me.clone(), s.clone());
            let _ = tokio::task::spawn_blocking(move || {
                if let Some(j) = j.upgrade() {
                    j.close_consumers(&s2, StateSync::Later);
                }
            })
            .await;
            let done = s.request_close();
            if !matches!(tokio::time::timeout(CLOSE_TIMEOUT, done).await, Ok(Ok(()))) {
                tracing::warn!(stream = %s.name, "ingest task did not close the store; closing it directly");
                let s2 = s.clone();
                let _ = tokio::task::spawn_blocking(move || s2.close_store()).await;
            }
        }
        // The consumers' final states were written without an fsync each: one flush of
        // the store's filesystem makes them all durable.
        let (backend, dir) = (self.config.backend.clone(), self.config.store_dir.clone());
        let flush = move || {
            if backend.exists(&dir) {
                backend.sync_fs(&dir)?;
            }
            Ok(())
        };
        let flushed = tokio::task::spawn_blocking(flush).await;
        if let Err(e) = flushed.map_err(std::io::Error::other).and_then(|r| r) {
            tracing::warn!(error = %e, "syncing the store at shutdown failed");
        }
        if let Some(id) = self.api_sub.lock().take() {
            self.port.unsubscribe(id);
        }
        self.api.close();
        let streams: Vec<Arc<Stream>> = self.streams.read().values().cloned().collect();
        for s in streams {
            self.unsubscribe(&s, None);
        }
        tracing::info!("JetStream Shutdown");
    }

    /// Why the store directory did not take a write at the last probe (every 5 s), if it
    /// did not: a full or read-only volume. `/healthz` reports it.
    pub fn store_problem(&self) -> Option<String> {
        self.store_problem.lock().clone()
    }

    /// Records a probe's result, logging each change once.
    fn record_probe(&self, result: std::io::Result<()>) {
        let dir = self.config.store_dir.display();
        let mut problem = self.store_problem.lock();
        match (result, problem.is_some()) {
            (Ok(()), true) => {
                tracing::info!("JetStream store directory {dir} takes writes again");
                *problem = None;
            }
            (Err(e), false) => {
                let why = format!("JetStream store directory {dir} is not writable: {e}");
                tracing::error!("{why}");
                *problem = Some(why);
            }
            _ => {}
        }
    }

    /// Streams, consumers, messages, bytes and API counters, for monitoring. Never blocks on
    /// a store.
    pub fn stats(&self) -> JetStreamStats {
        let mut st = JetStreamStats {
            accounts: 1,
            api_total: self.api_total.load(Ordering::Relaxed),
            api_errors: self.api_errors.load(Ordering::Relaxed),
            max_memory: self.limits.max_memory,
            max_storage: self.limits.max_storage,
            ..JetStreamStats::default()
        };
        for s in self.streams.read().values() {
            match s.storage {
                StorageType::Memory => st.reserved_memory += s.reserved.load(Ordering::Relaxed),
                StorageType::File => st.reserved_storage += s.reserved.load(Ordering::Relaxed),
            }
            let (msgs, bytes) = s.counters();
            st.streams += 1;
            st.consumers += s.consumers.read().len() as u64;
            st.messages += msgs;
            st.bytes += bytes;
            match s.storage {
                StorageType::Memory => st.memory += bytes,
                StorageType::File => st.storage += bytes,
            }
        }
        st
    }

    /// The stream called `name`.
    pub(crate) fn stream(&self, name: &str) -> Option<Arc<Stream>> {
        self.streams.read().get(name).cloned()
    }

    /// Adds a stream: map entry, ingest task, subscriptions on its subjects.
    pub(crate) fn register(&self, stream: Arc<Stream>) {
        if let Some(d) = &self.config.domain {
            let _ = stream.domain.set(d.clone());
        }
        if stream.usage.set(self.usage.clone()).is_ok() {
            let (_, bytes) = stream.counters();
            self.usage.changed(stream.storage, 0, bytes);
        }
        self.streams
            .write()
            .insert(stream.name.clone(), stream.clone());
        self.runtime
            .spawn(ingest::run(stream.clone(), self.port.clone()));
        let subjects = stream.subjects.read().clone();
        self.subscribe(&stream, &subjects);
        crate::sourcing::task::start(self, &stream);
    }

    /// Subscribes `subjects` for `stream`.
    pub(crate) fn subscribe(&self, stream: &Arc<Stream>, subjects: &[String]) {
        for subject in subjects {
            let handler = StreamHandler {
                stream: stream.clone(),
                warn_gate: Default::default(),
            };
            let id = self
                .port
                .subscribe(subject, None, Accept::Everyone, Arc::new(handler));
            stream.subs.lock().push((subject.clone(), id));
        }
    }

    /// Removes the subscriptions of `stream` on `subjects` (all of them with `None`).
    pub(crate) fn unsubscribe(&self, stream: &Stream, subjects: Option<&[String]>) {
        let gone: Vec<SubId> = {
            let mut subs = stream.subs.lock();
            let (gone, keep): (Vec<_>, Vec<_>) = subs
                .drain(..)
                .partition(|(s, _)| subjects.is_none_or(|list| list.contains(s)));
            *subs = keep;
            gone.into_iter().map(|(_, id)| id).collect()
        };
        for id in gone {
            self.port.unsubscribe(id);
        }
    }

    /// Removes `name` from the map and its subscriptions; returns the stream.
    pub(crate) fn unregister(&self, name: &str) -> Option<Arc<Stream>> {
        let stream = self.streams.write().remove(name)?;
        self.unsubscribe(&stream, None);
        Some(stream)
    }
}

/// Opens every stream directory under `dir`. Blocking.
fn recover_all(
    dir: &std::path::Path,
    sync: SyncMode,
    backend: Arc<dyn petrel_store::Backend>,
) -> Result<Vec<Arc<Stream>>, JetStreamError> {
    let io_err = |cause| JetStreamError::StoreDir {
        path: dir.to_path_buf(),
        cause,
    };
    backend.create_dir_all(dir).map_err(io_err)?;
    let mut out = Vec::new();
    for sdir in meta::list_stream_dirs(backend.as_ref(), dir).map_err(io_err)? {
        let name = sdir
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let m: StreamMeta = match meta::read_meta(backend.as_ref(), &sdir) {
            Ok(m) => m,
            Err(e) => {
                tracing::warn!(stream = %name, error = %e, "skipping stream: unreadable metadata");
                continue;
            }
        };
        if m.config.name != name {
            tracing::warn!(stream = %name, config_name = %m.config.name,
                "skipping stream: directory and config name differ");
            continue;
        }
        let config: StreamConfig = match m.config.normalize() {
            Ok(c) => c,
            Err(e) => {
                tracing::warn!(stream = %name, error = %e, "skipping stream: invalid config");
                continue;
            }
        };
        match Stream::open(config, m.created, dir, sync, backend.clone()) {
            // The file store logs what it recovered (once per stream).
            Ok(stream) => {
                out.push(stream);
            }
            Err(e) => {
                tracing::warn!(stream = %name, error = %e, "skipping stream: store failed to open");
            }
        }
    }
    Ok(out)
}

/// Handles API requests one at a time, each on a blocking thread, then publishes the reply
/// and any advisories.
async fn api_loop(js: Arc<JetStream>, mut shutdown: watch::Receiver<bool>) {
    let mut one = Vec::with_capacity(1);
    loop {
        tokio::select! {
            _ = js.api.recv(1, usize::MAX, &mut one) => {}
            _ = shutdown.changed() => break,
        };
        let Some(req) = one.pop() else {
            continue;
        };
        let j = js.clone();
        let handled = tokio::task::spawn_blocking(move || {
            let out = api::handle(&j, &req);
            (req, out)
        })
        .await;
        let (req, out) = match handled {
            Ok((req, Some(out))) => (req, out),
            Ok((_, None)) => continue,
            Err(e) => {
                tracing::error!(error = %e, "API handler failed");
                continue;
            }
        };
        js.api_total.fetch_add(1, Ordering::Relaxed);
        if out.error {
            js.api_errors.fetch_add(1, Ordering::Relaxed);
        }
        if let Some(reply) = req.reply.as_deref().filter(|r| !r.is_empty()) {
            js.port.publish(reply, None, out.headers, out.payload);
            for (headers, payload) in out.more {
                js.port.publish(reply, None, headers, payload);
            }
        }
        for (subject, body) in out.advisories {
            js.port.publish(&subject, None, None, body);
        }
        if let Some(then) = out.then {
            (then.0)();
        }
    }
}

/// Every [`TICK`]: max_age expiry, dedup expiry, and in interval sync mode the fsync.
async fn maintenance_loop(js: Arc<JetStream>, mut shutdown: watch::Receiver<bool>) {
    let mut tick = tokio::time::interval(TICK);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut last_sync = Instant::now();
    let mut last_replica_sync = Instant::now();
    let mut last_probe = Instant::now();
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = shutdown.changed() => break,
        }
        let sync = match js.config.sync {
            SyncMode::Interval(every) if last_sync.elapsed() >= every => {
                last_sync = Instant::now();
                true
            }
            _ => false,
        };
        if last_probe.elapsed() >= PROBE_EVERY {
            last_probe = Instant::now();
            let (backend, dir) = (js.config.backend.clone(), js.config.store_dir.clone());
            let probed = tokio::task::spawn_blocking(move || {
                petrel_store::probe_writable(backend.as_ref(), &dir)
            })
            .await
            .unwrap_or_else(|e| Err(std::io::Error::other(e.to_string())));
            js.record_probe(probed);
        }
        let streams: Vec<Arc<Stream>> = js.streams.read().values().cloned().collect();
        if streams.is_empty() {
            continue;
        }
        // Replicas' stores sync every second whatever the mode (their Raft log is what
        // the PubAck waited for).
        let replica_sync = last_replica_sync.elapsed() >= Duration::from_secs(1);
        if replica_sync {
            last_replica_sync = Instant::now();
        }
        let now = now_nanos();
        let _ = tokio::task::spawn_blocking(move || {
            for s in streams {
                // Replicas, and streams with `persist_mode: async`, every second.
                let every_second = s.replica.get().is_some() || s.persists_async();
                s.maintain(now, sync || (replica_sync && every_second));
            }
        })
        .await;
    }
}
