//! One stream: its config, its store, its dedup window and the channel its ingest task reads.
//!
//! Everything mutable sits behind one mutex ([`Inner`]); it is only taken on blocking threads
//! (the ingest batch, API handlers, the maintenance tick), never on an async worker, because
//! a file store commit fsyncs while holding it. Counters for monitoring are atomics so
//! [`crate::JetStream::stats`] never waits for that lock.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;

use bytes::Bytes;
use parking_lot::{Mutex, RwLock};
use petrel_store::{
    Backend, FileStore, FileStoreConfig, MemStore, PurgeRequest, StoreError, StoredMsg,
    StreamStore, SyncMode,
};
use tokio::sync::oneshot;

use crate::backlog::{Backlog, Limits, Pushed};
use crate::config::{StorageType, StreamConfig};
use crate::consumer::Consumer;
use crate::dedup::Dedup;
use crate::errors::ApiError;
use crate::port::{Flow, SubId};
use crate::time::{now_nanos, rfc3339_nano};
use crate::transform::SubjectTransform;

mod json;
pub(crate) use json::{InfoRequest, MsgGetRequest, StateJson, StreamInfo};

/// A message published on one of the stream's subjects, waiting to be stored.
#[derive(Debug)]
pub(crate) struct Inbound {
    pub subject: String,
    pub reply: Option<String>,
    pub headers: Option<Bytes>,
    pub payload: Bytes,
}

impl Inbound {
    /// Memory the message holds while queued.
    pub fn size(&self) -> usize {
        self.subject.len()
            + self.reply.as_ref().map_or(0, String::len)
            + self.headers.as_ref().map_or(0, Bytes::len)
            + self.payload.len()
    }
}

/// Bounds of a stream's ingest queue (nats-server 2.11+: 10,000 messages / 128 MiB; past
/// half, the publishing client is stalled; at the limit, refused with 429).
pub(crate) const INGEST_LIMITS: Limits = Limits {
    msgs: 10_000,
    bytes: 128 * 1024 * 1024,
};

/// What the ingest task reads.
#[derive(Debug)]
pub(crate) enum Cmd {
    /// Store this message.
    Msg(Inbound),
    /// Store everything queued before this, close the store, answer, stop.
    Close(oneshot::Sender<()>),
}

/// The stream's subject transform and republish transform (checked when the config was).
fn compile_transforms(
    config: &StreamConfig,
) -> (Option<SubjectTransform>, Option<(SubjectTransform, bool)>) {
    let transform = config
        .subject_transform
        .as_ref()
        .and_then(|t| SubjectTransform::new(&t.src, &t.dest).ok());
    let republish = config.republish.as_ref().and_then(|r| {
        let t = SubjectTransform::new(&r.src, &r.dest).ok()?;
        Some((t, r.headers_only))
    });
    (transform, republish)
}

/// The mutable part of a stream.
pub(crate) struct Inner {
    pub config: StreamConfig,
    pub store: Box<dyn StreamStore>,
    pub dedup: Dedup,
    /// `Nats-Msg-Id` of the last stored message ("" when it had none).
    pub last_msg_id: String,
    pub transform: Option<SubjectTransform>,
    /// The republish transform and `headers_only`, if the stream republishes.
    pub republish: Option<(SubjectTransform, bool)>,
    /// The store was closed (stream deleted or server shutting down).
    pub closed: bool,
    /// Why the stream stopped taking messages (storing a batch failed), if it did.
    pub failed: Option<String>,
    /// Per-message TTLs and markers (`allow_msg_ttl` streams; empty otherwise).
    pub ttls: crate::ttl::Ttls,
    /// Message schedules (`allow_msg_schedules` streams; empty otherwise).
    pub schedules: crate::schedule::Schedules,
}

/// One stream.
pub(crate) struct Stream {
    pub name: String,
    pub created: i64,
    pub storage: StorageType,
    /// The stream's directory (file storage only).
    pub dir: Option<PathBuf>,
    /// The I/O layer its files (blocks, metadata, consumer state) go through.
    pub backend: Arc<dyn Backend>,
    pub inner: Mutex<Inner>,
    /// Messages waiting for the ingest task.
    pub queue: Arc<Backlog<Cmd>>,
    /// Internal subscriptions on the stream's subjects: (subject, id).
    pub subs: Mutex<Vec<(String, SubId)>>,
    /// The subjects, readable without the store lock (message routing).
    pub subjects: RwLock<Vec<String>>,
    /// `allow_direct`, readable without the store lock (DIRECT.GET routing).
    pub allow_direct: AtomicBool,
    /// `mirror_direct`, readable without the store lock.
    pub mirror_direct: AtomicBool,
    /// `persist_mode: async`, readable without the store lock (the maintenance tick).
    pub persist_async: AtomicBool,
    /// `allow_atomic`, readable without the store lock (the ingest task stages batches).
    pub allow_atomic: AtomicBool,
    /// Atomic batches being staged (only the ingest task takes it).
    pub staging: Mutex<crate::ingest::atomic::Staging>,
    /// What its `max_bytes` reserves, readable without the store lock (monitoring).
    pub reserved: AtomicU64,
    /// Consumers by name.
    pub consumers: RwLock<BTreeMap<String, Arc<Consumer>>>,
    /// Woken after each commit that stored messages (streams sourcing this one wait on it).
    pub stored: tokio::sync::Notify,
    /// The tasks of this stream's `sources`.
    pub sources: Mutex<Vec<crate::sourcing::task::Running>>,
    /// The origin whose direct gets this mirror answers (`mirror_direct`, caught up).
    pub direct_for: Mutex<Option<String>>,
    /// The server's JetStream domain (set when the stream is registered), for PubAcks and
    /// stream infos.
    pub domain: std::sync::OnceLock<String>,
    /// Its account's usage (set when the stream is registered).
    pub(crate) usage: std::sync::OnceLock<Arc<crate::limits::AccountUsage>>,
    /// This node's replica of a clustered stream (its group), set before registration.
    pub(crate) replica: std::sync::OnceLock<Arc<crate::cluster::replica::Replica>>,
    msgs: AtomicU64,
    bytes: AtomicU64,
}

/// Opens the store of `config` under `streams_dir` (file streams; memory streams have no
/// directory) with its limits, compression and first sequence applied.
fn new_store(
    config: &StreamConfig,
    streams_dir: &Path,
    sync: SyncMode,
    backend: &Arc<dyn Backend>,
) -> Result<(Box<dyn StreamStore>, Option<PathBuf>), StoreError> {
    let (mut store, dir): (Box<dyn StreamStore>, _) = match config.storage {
        StorageType::File => {
            let cfg = FileStoreConfig {
                sync: store_sync(config, sync),
                ..FileStoreConfig::default()
            };
            let fs = FileStore::open_with_backend(streams_dir, &config.name, cfg, backend.clone())?;
            (Box::new(fs), Some(streams_dir.join(&config.name)))
        }
        StorageType::Memory => (Box::new(MemStore::new()), None),
    };
    store.set_limits(config.store_limits())?;
    store.set_compression(config.compresses());
    let state = store.state();
    if config.first_seq > 0 && state.msgs == 0 && state.last_seq == 0 {
        store.set_first_seq(config.first_seq)?;
    }
    Ok((store, dir))
}

/// How often a stream with `persist_mode: async` is fsynced (the maintenance tick does it).
pub(crate) const ASYNC_SYNC_EVERY: std::time::Duration = std::time::Duration::from_secs(1);

/// The sync mode of a stream's file store: the server's, or — `persist_mode: async` —
/// commits written without an fsync, which the maintenance tick adds every second.
fn store_sync(config: &StreamConfig, server: SyncMode) -> SyncMode {
    match (config.persist_mode, server) {
        (crate::config::PersistMode::Async, SyncMode::Always) => {
            SyncMode::Interval(ASYNC_SYNC_EVERY)
        }
        _ => server,
    }
}

/// Writes a stream's files into its (empty) directory ([`Stream::replace_files`]).
pub type FillDir<'a> = dyn Fn(&Path) -> std::io::Result<()> + 'a;

/// Appends a snapshot's messages to an empty store, once (see
/// [`Stream::replace_messages`]): it may move them in.
pub type LoadStore<'a> = Box<dyn FnOnce(&mut dyn StreamStore) -> Result<(), StoreError> + 'a>;

/// Subjects per STREAM.INFO page with `subjects_filter`.
pub(crate) const SUBJECTS_PAGE: usize = 100_000;

/// Maps a store error on a read or an administrative mutation.
fn general(e: StoreError) -> ApiError {
    ApiError::stream_general(e)
}

impl Stream {
    /// Opens (or creates) the store of `config` and builds the stream. `streams_dir` is where
    /// file streams keep their directory. Limits are applied, aged-out messages expired and
    /// the dedup window rebuilt.
    pub fn open(
        config: StreamConfig,
        created: i64,
        streams_dir: &Path,
        sync: SyncMode,
        backend: Arc<dyn Backend>,
    ) -> Result<Arc<Stream>, StoreError> {
        let (mut store, dir) = new_store(&config, streams_dir, sync, &backend)?;
        crate::ingest::atomic::repair_torn_batch(store.as_mut());
        let now = now_nanos();
        let ttls = if config.allow_msg_ttl {
            // The tick expires by age (a `never` message stays).
            crate::ttl::Ttls::rebuild(store.as_ref())
        } else {
            store.expire(now)?;
            crate::ttl::Ttls::default()
        };
        let schedules = if config.allow_msg_schedules {
            crate::schedule::Schedules::rebuild(store.as_ref(), now)
        } else {
            crate::schedule::Schedules::default()
        };
        let (mut dedup, last_msg_id) = Dedup::rebuild(store.as_ref(), now, config.duplicate_window);
        dedup.set_limits(config.max_msgs, config.max_bytes);
        let (transform, republish) = compile_transforms(&config);
        let state = store.state();
        let subjects = RwLock::new(config.subjects.clone());
        let allow_direct = AtomicBool::new(config.allow_direct);
        let mirror_direct = AtomicBool::new(config.mirror_direct);
        let allow_atomic = AtomicBool::new(config.allow_atomic);
        let persist_async =
            AtomicBool::new(config.persist_mode == crate::config::PersistMode::Async);
        let reserved = AtomicU64::new(crate::limits::reservation(&config));
        let stream = Stream {
            name: config.name.clone(),
            created,
            storage: config.storage,
            dir,
            backend,
            inner: Mutex::new(Inner {
                config,
                store,
                dedup,
                last_msg_id,
                transform,
                republish,
                closed: false,
                failed: None,
                ttls,
                schedules,
            }),
            queue: Arc::new(Backlog::new(INGEST_LIMITS)),
            subs: Mutex::new(Vec::new()),
            subjects,
            allow_direct,
            mirror_direct,
            allow_atomic,
            persist_async,
            staging: Mutex::new(Default::default()),
            reserved,
            consumers: RwLock::new(BTreeMap::new()),
            stored: tokio::sync::Notify::new(),
            sources: Mutex::new(Vec::new()),
            direct_for: Mutex::new(None),
            domain: std::sync::OnceLock::new(),
            usage: std::sync::OnceLock::new(),
            replica: std::sync::OnceLock::new(),
            msgs: AtomicU64::new(state.msgs),
            bytes: AtomicU64::new(state.bytes),
        };
        Ok(Arc::new(stream))
    }

    /// Queues a message for the ingest task; never blocks. Returns what the publisher
    /// should do, or — the queue being full — refuses the message with `Err(reply)`: the
    /// publisher gets a `429` PubAck when it asked for one, and nothing is stored. A
    /// message for a stopped stream is dropped (`Err(None)`).
    pub fn enqueue(&self, msg: Inbound) -> Result<Flow, Option<String>> {
        let size = msg.size();
        match self.queue.push(Cmd::Msg(msg), size) {
            Pushed::Ok => Ok(Flow::Ok),
            Pushed::Stall => Ok(Flow::Stall(self.queue.clone())),
            Pushed::Full(Cmd::Msg(m)) => Err(m.reply),
            Pushed::Full(_) | Pushed::Closed => Err(None),
        }
    }

    /// Asks the ingest task to drain, close the store and stop; the receiver fires when done.
    pub fn request_close(&self) -> oneshot::Receiver<()> {
        let (tx, rx) = oneshot::channel();
        self.queue.push_control(Cmd::Close(tx));
        rx
    }

    /// Closes the store (commit, sync, checkpoint); later batches are dropped. Blocking.
    pub fn close_store(&self) {
        let mut inner = self.inner.lock();
        if inner.closed {
            return;
        }
        inner.closed = true;
        if let Err(e) = inner.store.close() {
            tracing::error!(stream = %self.name, error = %e, "closing the stream store failed");
        }
    }

    /// Gives the stream's bytes back to its account (the stream is deleted and closed).
    pub fn release_usage(&self) {
        let _held = self.inner.lock();
        let bytes = self.bytes.swap(0, Ordering::Relaxed);
        if let Some(usage) = self.usage.get() {
            usage.changed(self.storage, bytes, 0);
        }
    }

    /// Empties the stream: its store is closed, its files removed and a new, empty store
    /// opened in their place (a replica rebuilt from its group's log). Blocking.
    pub fn reset(&self, sync: SyncMode) -> Result<(), StoreError> {
        self.reopen(None, None, sync)
    }

    /// Replaces the stream's files with those `fill` writes into its (emptied) directory —
    /// a replica's snapshot — and opens the store from them. Not atomic: a replica that
    /// crashes meanwhile restores the snapshot again when it opens. Blocking.
    pub fn replace_files(&self, fill: &FillDir<'_>, sync: SyncMode) -> Result<(), StoreError> {
        self.reopen(Some(fill), None, sync)
    }

    /// Replaces the stream's messages with those `load` appends to a new, empty store —
    /// a memory replica's snapshot. Blocking.
    pub fn replace_messages(&self, load: LoadStore<'_>, sync: SyncMode) -> Result<(), StoreError> {
        self.reopen(None, Some(load), sync)
    }

    fn reopen(
        &self,
        fill: Option<&FillDir<'_>>,
        load: Option<LoadStore<'_>>,
        sync: SyncMode,
    ) -> Result<(), StoreError> {
        let mut inner = self.inner.lock();
        if let Err(e) = inner.store.close() {
            tracing::warn!(stream = %self.name, error = %e, "closing the store before it is replaced failed");
        }
        let parent = self
            .dir
            .as_ref()
            .and_then(|d| d.parent().map(Path::to_path_buf));
        if let Some(dir) = &self.dir {
            self.backend.remove_dir_all(dir)?;
            if let Some(fill) = fill {
                fill(dir)?;
            }
        }
        let (mut store, _) = new_store(
            &inner.config,
            parent.as_deref().unwrap_or(Path::new("")),
            sync,
            &self.backend,
        )?;
        if let Some(load) = load {
            load(store.as_mut())?;
            store.commit()?;
        }
        inner.store = store;
        inner.ttls = if inner.config.allow_msg_ttl {
            crate::ttl::Ttls::rebuild(inner.store.as_ref())
        } else {
            crate::ttl::Ttls::default()
        };
        inner.schedules = if inner.config.allow_msg_schedules {
            crate::schedule::Schedules::rebuild(inner.store.as_ref(), now_nanos())
        } else {
            crate::schedule::Schedules::default()
        };
        let (mut dedup, last_msg_id) = Dedup::rebuild(
            inner.store.as_ref(),
            now_nanos(),
            inner.config.duplicate_window,
        );
        dedup.set_limits(inner.config.max_msgs, inner.config.max_bytes);
        inner.dedup = dedup;
        inner.last_msg_id = last_msg_id;
        inner.closed = false;
        inner.failed = None;
        self.refresh_counters(&inner);
        Ok(())
    }

    /// Reads every message back (each record's CRC is checked on read): why the store
    /// cannot be trusted, if a message is unreadable or the count disagrees. Blocking.
    pub fn scrub(&self) -> Option<String> {
        let inner = self.inner.lock();
        let st = inner.store.state();
        let mut found = 0u64;
        for seq in st.first_seq..=st.last_seq {
            match inner.store.get(seq) {
                Ok(Some(_)) => found += 1,
                Ok(None) => {}
                Err(e) => return Some(format!("message {seq} unreadable: {e}")),
            }
        }
        (found != st.msgs).then(|| format!("{found} of {} messages readable", st.msgs))
    }

    /// Whether the store was closed. Blocking (takes the store lock).
    pub fn is_closed(&self) -> bool {
        self.inner.lock().closed
    }

    /// The store's last sequence. Blocking (takes the store lock).
    pub fn last_seq(&self) -> u64 {
        self.inner.lock().store.state().last_seq
    }

    /// How many times an I/O failure rolled the store back ([`StreamStore::rollbacks`]).
    pub(crate) fn store_rollbacks(&self) -> u64 {
        self.inner.lock().store.rollbacks()
    }

    /// Messages and bytes as of the last mutation.
    pub fn counters(&self) -> (u64, u64) {
        (
            self.msgs.load(Ordering::Relaxed),
            self.bytes.load(Ordering::Relaxed),
        )
    }

    /// Tells every consumer that messages were removed (their pending counts are recounted
    /// and their cursors moved past purged messages at their next step).
    pub fn removed_messages(&self) {
        for c in self.consumers.read().values() {
            c.state.lock().npending_stale = true;
            c.wake();
        }
    }

    /// Refreshes the monitoring counters from the store.
    pub fn refresh_counters(&self, inner: &Inner) {
        if inner.closed {
            return;
        }
        let st = inner.store.state();
        self.msgs.store(st.msgs, Ordering::Relaxed);
        let old = self.bytes.swap(st.bytes, Ordering::Relaxed);
        if let Some(usage) = self.usage.get() {
            usage.changed(self.storage, old, st.bytes);
        }
    }

    /// The current config. Blocking.
    pub fn config(&self) -> StreamConfig {
        self.inner.lock().config.clone()
    }

    /// Whether one of the stream's subjects matches the literal `subject`; never blocks on
    /// the store.
    pub fn captures(&self, subject: &str) -> bool {
        self.subjects
            .read()
            .iter()
            .any(|p| petrel_subject::matches(p.as_bytes(), subject.as_bytes()))
    }

    /// Builds the StreamInfo. Blocking.
    pub fn info(&self, req: &InfoRequest) -> Result<(StreamInfo, usize), ApiError> {
        let consumers = self.consumers.read().len() as u64;
        let inner = self.inner.lock();
        let st = inner.store.state();
        let mut total = 0;
        let subjects = if req.subjects_filter.is_empty() {
            None
        } else {
            let all = inner.store.subjects_state(&req.subjects_filter);
            total = all.len();
            let page: BTreeMap<String, u64> = all
                .into_iter()
                .skip(req.offset)
                .take(SUBJECTS_PAGE)
                .collect();
            // Go's `omitempty`: an empty map is left out.
            (!page.is_empty()).then_some(page)
        };
        let deleted = if req.deleted_details && st.num_deleted > 0 {
            Some(deleted_seqs(
                inner.store.as_ref(),
                st.first_seq,
                st.last_seq,
            )?)
        } else {
            None
        };
        let state = StateJson {
            messages: st.msgs,
            bytes: st.bytes,
            first_seq: st.first_seq,
            first_ts: rfc3339_nano(st.first_ts),
            last_seq: st.last_seq,
            last_ts: rfc3339_nano(st.last_ts),
            num_subjects: st.num_subjects,
            subjects,
            num_deleted: st.num_deleted,
            deleted,
            lost: st.lost.filter(|l| !l.msgs.is_empty() || l.bytes > 0),
            consumer_count: consumers,
        };
        // One lock of the source tasks for both lists (the lock is not reentrant).
        let running = self.sources.lock();
        Ok((
            StreamInfo {
                config: inner.config.clone(),
                created: rfc3339_nano(self.created),
                state,
                domain: self.domain.get().cloned(),
                failed: inner.failed.clone(),
                mirror: running.iter().find(|r| r.mirror).map(|r| r.info()),
                sources: running
                    .iter()
                    .filter(|r| !r.mirror)
                    .map(|r| r.info())
                    .collect(),
                cluster: self.replica.get().map(|r| r.cluster_info()),
            },
            total,
        ))
    }

    /// Turns a MSG.GET / DIRECT.GET `start_time` (2.11) into the request it stands for: the
    /// first message stored at or after it (matching `next_by_subj`, if given). With a
    /// `seq` or `last_by_subj` it is a bad request; a time that does not parse is invalid
    /// JSON, as Go's decoder says. Blocking.
    pub fn resolve_start_time(&self, req: &mut MsgGetRequest) -> Result<(), ApiError> {
        let Some(t) = req.start_time.take() else {
            return Ok(());
        };
        let at = crate::time::parse_rfc3339(&t)
            .ok_or_else(|| ApiError::invalid_json_because(&format!("parsing time {t:?}")))?;
        if req.seq > 0 || !req.last_by_subj.is_empty() {
            return Err(ApiError::bad_request());
        }
        let inner = self.inner.lock();
        let st = inner.store.state();
        req.seq = first_at_or_after(inner.store.as_ref(), st.first_seq.max(1), st.last_seq, at)
            .map_err(general)?;
        if req.next_by_subj.is_empty() {
            req.next_by_subj = ">".into();
        }
        Ok(())
    }

    /// Finds the message a MSG.GET / DIRECT.GET request asks for. Blocking.
    pub fn lookup(&self, req: &MsgGetRequest) -> Result<Option<StoredMsg>, ApiError> {
        let last = !req.last_by_subj.is_empty();
        let next = !req.next_by_subj.is_empty();
        if (req.seq > 0 && last) || (req.seq == 0 && !last && !next) || (last && next) {
            return Err(ApiError::bad_request());
        }
        let inner = self.inner.lock();
        let store = inner.store.as_ref();
        if last {
            last_matching(store, &req.last_by_subj).map_err(general)
        } else if next {
            store
                .next_by_subject(req.seq.max(1), &req.next_by_subj)
                .map_err(general)
        } else {
            store.get(req.seq).map_err(general)
        }
    }

    /// MSG.DELETE, through the stream group when the stream is replicated. Blocking.
    pub fn delete_msg(&self, seq: u64, erase: bool) -> Result<(), ApiError> {
        match self.replica.get() {
            Some(r) => r.delete_msg(seq, erase),
            None => self.delete_msg_local(seq, erase),
        }
    }

    /// MSG.DELETE on this node's store. Blocking.
    pub fn delete_msg_local(&self, seq: u64, erase: bool) -> Result<(), ApiError> {
        let mut inner = self.inner.lock();
        if inner.config.sealed {
            return Err(ApiError::stream_sealed());
        }
        if inner.config.deny_delete {
            return Err(ApiError::msg_delete_failed("message delete not permitted"));
        }
        if inner.closed {
            return Err(ApiError::stream_not_found());
        }
        let removed = inner
            .store
            .delete(seq, erase)
            .map_err(ApiError::msg_delete_failed)?;
        self.refresh_counters(&inner);
        if removed {
            self.removed_messages();
            Ok(())
        } else {
            Err(ApiError::sequence_not_found(seq))
        }
    }

    /// Removes messages retention no longer needs from this node's store (a replicated
    /// stream's `Remove` entry). Blocking.
    pub(crate) fn remove_local(&self, seqs: &[u64]) {
        let mut inner = self.inner.lock();
        if inner.closed {
            return;
        }
        // No consumer is told: each removed message is one every consumer is done with.
        crate::retention::remove_now(self, &mut inner, seqs);
    }

    /// STREAM.PURGE, through the stream group when the stream is replicated. Blocking.
    pub fn purge(&self, req: PurgeRequest) -> Result<u64, ApiError> {
        match self.replica.get() {
            Some(r) => r.purge(req),
            None => self.purge_local(req),
        }
    }

    /// STREAM.PURGE on this node's store. Blocking.
    pub fn purge_local(&self, req: PurgeRequest) -> Result<u64, ApiError> {
        let mut inner = self.inner.lock();
        if inner.config.sealed {
            return Err(ApiError::stream_sealed());
        }
        if inner.config.deny_purge {
            return Err(ApiError::purge_failed("stream purge not permitted"));
        }
        if inner.closed {
            return Err(ApiError::stream_not_found());
        }
        let n = inner.store.purge(req).map_err(ApiError::purge_failed)?;
        self.refresh_counters(&inner);
        if n > 0 {
            self.removed_messages();
        }
        Ok(n)
    }

    /// Applies an updated (already checked) config: limits, transform. Blocking.
    pub fn apply_config(&self, config: StreamConfig) -> Result<(), ApiError> {
        let mut inner = self.inner.lock();
        inner
            .store
            .set_limits(config.store_limits())
            .map_err(ApiError::stream_update)?;
        inner.store.set_compression(config.compresses());
        (inner.transform, inner.republish) = compile_transforms(&config);
        inner.dedup.set_limits(config.max_msgs, config.max_bytes);
        *self.subjects.write() = config.subjects.clone();
        self.allow_direct
            .store(config.allow_direct, Ordering::Relaxed);
        self.mirror_direct
            .store(config.mirror_direct, Ordering::Relaxed);
        self.allow_atomic
            .store(config.allow_atomic, Ordering::Relaxed);
        self.reserved
            .store(crate::limits::reservation(&config), Ordering::Relaxed);
        if config.allow_msg_ttl && !inner.config.allow_msg_ttl {
            inner.ttls = crate::ttl::Ttls::rebuild(inner.store.as_ref());
        }
        if config.allow_msg_schedules && !inner.config.allow_msg_schedules {
            inner.schedules =
                crate::schedule::Schedules::rebuild(inner.store.as_ref(), now_nanos());
        }
        inner.config = config;
        self.refresh_counters(&inner);
        self.removed_messages();
        Ok(())
    }

    /// Whether the stream's commits are fsynced by the maintenance tick (`persist_mode:
    /// async`) rather than before their PubAcks.
    pub fn persists_async(&self) -> bool {
        self.persist_async.load(Ordering::Relaxed)
    }

    /// The maintenance tick: age expiry, dedup expiry and (lazy sync mode) fsync. Blocking.
    pub fn maintain(&self, now: i64, sync: bool) {
        let mut inner = self.inner.lock();
        if inner.closed {
            return;
        }
        let mut markers = Vec::new();
        let leads = self.replica.get().is_none_or(|r| r.group.is_leader());
        if inner.config.allow_msg_schedules {
            markers = self.fire_schedules(&mut inner, now, leads);
        }
        if inner.config.allow_msg_ttl {
            let expired = self.expire_ttls(&mut inner, now, leads);
            if expired.removed > 0 {
                self.removed_messages();
            }
            markers.extend(expired.markers);
        } else if inner.config.max_age > 0 {
            match inner.store.expire(now) {
                Ok(0) => {}
                Ok(_) => self.removed_messages(),
                Err(e) => tracing::warn!(stream = %self.name, error = %e, "max_age expiry failed"),
            }
        }
        let window = inner.config.duplicate_window;
        inner.dedup.expire(now, window);
        if sync && self.storage == StorageType::File {
            if let Err(e) = inner.store.sync() {
                tracing::error!(stream = %self.name, error = %e, "periodic sync failed");
            }
        }
        self.refresh_counters(&inner);
        drop(inner);
        // Fired schedules and markers, stored by the ingest task (through the group when
        // replicated; a follower's queue drops them); a marker rolls up the expired message
        // it replaces.
        for m in markers {
            if self.enqueue(m).is_err() {
                tracing::debug!(stream = %self.name, "marker not queued; tried again later");
            }
        }
    }
}

/// The sequence of the newest message whose subject matches `filter` (literal or
/// wildcard; 0 for none), from the index alone.
pub(crate) fn last_seq_matching(store: &dyn StreamStore, filter: &str) -> u64 {
    if !filter.split('.').any(|t| t == "*" || t == ">") {
        return store.last_seq_of_subject_at(filter, u64::MAX).unwrap_or(0);
    }
    store
        .subjects_state(filter)
        .keys()
        .filter_map(|subject| store.last_seq_of_subject_at(subject, u64::MAX))
        .max()
        .unwrap_or(0)
}

/// The newest message whose subject matches `filter` (literal or wildcard).
fn last_matching(store: &dyn StreamStore, filter: &str) -> Result<Option<StoredMsg>, StoreError> {
    match last_seq_matching(store, filter) {
        0 => Ok(None),
        seq => store.get(seq),
    }
}

/// The first sequence stored at or after wall time `t` (Unix ns) between `first` and
/// `last` (`last + 1` when none is): a binary search, as times only grow with the
/// sequence (a deleted sequence is looked up at the next one still there).
pub(crate) fn first_at_or_after(
    store: &dyn StreamStore,
    first: u64,
    last: u64,
    t: i64,
) -> Result<u64, petrel_store::StoreError> {
    let (mut lo, mut hi) = (first, last + 1);
    while lo < hi {
        let mid = lo + (hi - lo) / 2;
        match store.next_by_subject(mid, ">")? {
            Some(m) if m.ts < t => lo = m.seq + 1,
            _ => hi = mid,
        }
    }
    Ok(lo)
}

/// The interior deleted sequences between `first` and `last`.
fn deleted_seqs(store: &dyn StreamStore, first: u64, last: u64) -> Result<Vec<u64>, ApiError> {
    let mut out = Vec::new();
    let mut seq = first;
    while seq <= last && seq > 0 {
        match store.next_by_subject(seq, ">").map_err(general)? {
            Some(m) => {
                out.extend(seq..m.seq);
                seq = m.seq + 1;
            }
            None => break,
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn async_persistence_drops_the_fsync_from_the_commit_only() {
        let mut cfg: StreamConfig = serde_json::from_str(r#"{"name":"S"}"#).unwrap();
        assert_eq!(store_sync(&cfg, SyncMode::Always), SyncMode::Always);
        cfg.persist_mode = crate::config::PersistMode::Async;
        assert_eq!(
            store_sync(&cfg, SyncMode::Always),
            SyncMode::Interval(ASYNC_SYNC_EVERY)
        );
        // A server already syncing lazily keeps its own interval.
        let lazy = SyncMode::Interval(std::time::Duration::from_secs(120));
        assert_eq!(store_sync(&cfg, lazy), lazy);
    }
}
