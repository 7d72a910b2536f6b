//! `$JS.API.STREAM.RESTORE.<stream>`: the upload subject, its chunk receiver, and the
//! verified unpack that turns the archive into a stream (see the module above).

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use bytes::Bytes;
use serde::{Deserialize, Serialize};
use tokio::io::AsyncWriteExt;
use tokio::sync::mpsc;

use super::{archive, staging_dir, IDLE};
use crate::api::streams::{check_overlap, check_resources};
use crate::api::{is_empty_request, respond, ApiResponse, Then};
use crate::config::{StorageType, StreamConfig};
use crate::errors::ApiError;
use crate::jetstream::JetStream;
use crate::meta::{self, StreamMeta};
use crate::port::{Accept, Flow, Handler, Incoming, SubId};
use crate::stream::{InfoRequest, Stream, StreamInfo};

/// Most upload bytes queued before the receiver writes them (a client that does not wait
/// for its acks cannot make the server hold more).
const MAX_QUEUED: usize = 64 * 1024 * 1024;

#[derive(Debug, Default, Deserialize)]
struct RestoreRequest {
    #[serde(default)]
    config: StreamConfig,
    /// The backed-up stream's state (the `nats` CLI sends it): accepted; the archive
    /// itself says what it holds.
    #[serde(default, rename = "state")]
    _state: Option<serde_json::Value>,
}

#[derive(Serialize)]
struct RestoreBody {
    deliver_subject: String,
}

/// `STREAM.RESTORE.<name>`.
pub(crate) fn restore(js: &JetStream, name: &str, payload: &[u8]) -> ApiResponse {
    let checked = (|| {
        if is_empty_request(payload) {
            return Err(ApiError::bad_request());
        }
        let req: RestoreRequest = crate::api::decode(js, payload)?;
        let mut cfg = req.config;
        if cfg.name.is_empty() {
            cfg.name = name.to_string();
        }
        if cfg.name != name {
            return Err(ApiError::stream_mismatch());
        }
        let cfg = cfg.normalize()?;
        if js.stream(name).is_some() {
            return Err(ApiError::stream_name_exist_restore_failed());
        }
        if cfg.storage == StorageType::Memory {
            return Err(ApiError::stream_restore(
                "snapshots hold file streams; restore with \"storage\": \"file\"",
            ));
        }
        check_overlap(js, &cfg)?;
        crate::cycles::check_stream(js, name, &cfg)?;
        check_resources(js, &cfg, None)?;
        Ok(cfg)
    })();
    let cfg = match checked {
        Ok(c) => c,
        Err(e) => return respond("stream_restore", None, Err::<(), _>(e)),
    };
    let Some(js_arc) = js.weak().upgrade() else {
        return respond(
            "stream_restore",
            None,
            Err::<(), _>(ApiError::stream_restore("shutting down")),
        );
    };
    let id = crate::advisory::next_id();
    let deliver_subject = format!("$JS.SNAPSHOT.RESTORE.{name}.{id}");
    let (tx, rx) = mpsc::unbounded_channel();
    let queued = Arc::new(AtomicUsize::new(0));
    let chunks = Arc::new(Chunks {
        tx,
        queued: queued.clone(),
    });
    let sub = js
        .port
        .subscribe(&deliver_subject, None, Accept::ClientsOnly, chunks);
    tracing::info!(stream = name, "Starting restore for stream '$G > {name}'");
    let mut resp = respond("stream_restore", None, Ok(RestoreBody { deliver_subject }));
    let upload = Upload {
        js: js_arc,
        cfg,
        staging: staging_dir_for(&id),
        sub,
        queued,
    };
    let rt = upload.js.runtime.clone();
    resp.then = Some(Then(Box::new(move || {
        rt.spawn(upload.receive(rx));
    })));
    resp
}

/// Where one restore stages its files, under [`staging_dir`].
fn staging_dir_for(id: &str) -> String {
    format!("{id}.restore")
}

/// One uploaded chunk: its reply subject and bytes.
type Chunk = (Option<String>, Bytes);

/// Queues the client's chunks for the receiver task (never blocks, bounded by bytes).
struct Chunks {
    tx: mpsc::UnboundedSender<Chunk>,
    queued: Arc<AtomicUsize>,
}

/// What one queued chunk counts against [`MAX_QUEUED`]: its bytes, its reply subject and
/// a fixed overhead, so even empty chunks cannot pile up without bound.
fn cost(reply: Option<&str>, payload: usize) -> usize {
    64 + reply.map_or(0, str::len) + payload
}

impl Handler for Chunks {
    fn handle(&self, msg: Incoming<'_>) -> Flow {
        let n = cost(msg.reply, msg.payload.len());
        if self.queued.fetch_add(n, Ordering::AcqRel) + n > MAX_QUEUED {
            // Refused: the receiver sees the gap as a closed channel and fails the restore.
            self.queued.fetch_sub(n, Ordering::AcqRel);
            return Flow::Ok;
        }
        let _ = self
            .tx
            .send((msg.reply.map(str::to_string), msg.payload.clone()));
        Flow::Ok
    }
}

/// A restore in progress.
struct Upload {
    js: Arc<JetStream>,
    cfg: StreamConfig,
    staging: String,
    sub: SubId,
    queued: Arc<AtomicUsize>,
}

impl Upload {
    /// Receives chunks into the staging archive until the empty one, then restores.
    async fn receive(self, mut rx: mpsc::UnboundedReceiver<Chunk>) {
        let dir = staging_dir(&self.js).join(&self.staging);
        let name = self.cfg.name.clone();
        let archive_file = dir.join("archive");
        let outcome = self.collect(&mut rx, &dir, &archive_file).await;
        self.js.port.unsubscribe(self.sub);
        let (reply, body) = match outcome {
            Ok((reply, total)) => {
                let (js, cfg, d) = (self.js.clone(), self.cfg.clone(), dir.clone());
                let done = tokio::task::spawn_blocking(move || install(&js, cfg, &d)).await;
                let result = done.unwrap_or_else(|e| Err(ApiError::stream_restore(e)));
                match &result {
                    Ok(_) => tracing::info!(stream = %name,
                        "Completed restore of {total} bytes for stream '$G > {name}'"),
                    Err(e) => tracing::warn!(stream = %name,
                        "Restore failed for stream '$G > {name}': {}", e.description),
                }
                (Some(reply), respond("stream_create", None, result).payload)
            }
            Err((reply, why)) => {
                tracing::warn!(stream = %name, "Restore failed for stream '$G > {name}': {why}");
                let err = ApiError::stream_restore(why);
                (
                    reply,
                    respond("stream_create", None, Err::<(), _>(err)).payload,
                )
            }
        };
        if let Some(reply) = reply {
            self.js.port.publish(&reply, None, None, body);
        }
        let _ = tokio::fs::remove_dir_all(&dir).await;
    }

    /// Writes the chunks to `file`, acking each; returns the final chunk's reply subject
    /// and the byte count, or the reply to answer (if any) and why it failed.
    async fn collect(
        &self,
        rx: &mut mpsc::UnboundedReceiver<Chunk>,
        dir: &Path,
        file: &PathBuf,
    ) -> Result<(String, u64), (Option<String>, String)> {
        tokio::fs::create_dir_all(dir)
            .await
            .map_err(|e| (None, e.to_string()))?;
        let mut out = tokio::fs::File::create(file)
            .await
            .map_err(|e| (None, e.to_string()))?;
        let mut total = 0u64;
        loop {
            let (reply, data) = match tokio::time::timeout(IDLE, rx.recv()).await {
                Ok(Some(chunk)) => chunk,
                _ => {
                    return Err((
                        None,
                        format!("restore for stream '{}' is stalled", self.cfg.name),
                    ))
                }
            };
            self.queued
                .fetch_sub(cost(reply.as_deref(), data.len()), Ordering::AcqRel);
            let Some(reply) = reply.filter(|r| !r.is_empty()) else {
                return Err((None, "every chunk needs a reply subject".into()));
            };
            if data.is_empty() {
                out.sync_all()
                    .await
                    .map_err(|e| (Some(reply.clone()), e.to_string()))?;
                return Ok((reply, total));
            }
            out.write_all(&data)
                .await
                .map_err(|e| (Some(reply.clone()), e.to_string()))?;
            total += data.len() as u64;
            self.js.port.publish(&reply, None, None, Bytes::new());
        }
    }
}

/// Verifies and unpacks the archive in `dir`, then moves the stream into place and opens it
/// with its consumers. Blocking.
fn install(js: &JetStream, cfg: StreamConfig, dir: &Path) -> Result<StreamInfo, ApiError> {
    let backend = js.config.backend.clone();
    let unpacked = dir.join("stream");
    let input = std::fs::File::open(dir.join("archive")).map_err(ApiError::stream_restore)?;
    archive::unpack(std::io::BufReader::new(input), &unpacked, backend.as_ref())
        .map_err(ApiError::stream_restore)?;
    let old = meta::read_meta(backend.as_ref(), &unpacked).map_err(ApiError::stream_restore)?;
    let name = cfg.name.clone();
    let m = StreamMeta {
        config: cfg.clone(),
        created: old.created,
    };
    meta::write_meta(backend.as_ref(), &unpacked, &m).map_err(ApiError::stream_restore)?;
    if js.stream(&name).is_some() {
        return Err(ApiError::stream_name_exist_restore_failed());
    }
    let streams_dir = meta::streams_dir(&js.config.store_dir, &js.config.account);
    let target = streams_dir.join(&name);
    backend
        .create_dir_all(&streams_dir)
        .and_then(|()| backend.rename(&unpacked, &target))
        .and_then(|()| backend.sync_dir(&streams_dir))
        .map_err(ApiError::stream_restore)?;
    let stream = Stream::open(
        cfg,
        old.created,
        &streams_dir,
        js.config.sync,
        backend.clone(),
    )
    .map_err(|e| {
        let _ = backend.remove_dir_all(&target);
        ApiError::stream_restore(e)
    })?;
    js.register(stream.clone());
    js.recover_consumers(&stream);
    let (info, _) = stream.info(&InfoRequest::default())?;
    Ok(info)
}
