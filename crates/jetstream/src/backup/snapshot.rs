//! `$JS.API.STREAM.SNAPSHOT.<stream>`: the archive, taken under the stream lock, and its
//! chunked delivery with acks (see the module above).

use std::path::{Path, PathBuf};
use std::sync::Arc;

use bytes::Bytes;
use serde::{Deserialize, Serialize};
use tokio::io::AsyncReadExt;
use tokio::sync::Semaphore;

use super::archive::ArchiveWriter;
use super::{staging_dir, IDLE};
use crate::api::{is_empty_request, respond, ApiResponse, Then};
use crate::config::StreamConfig;
use crate::consumer::persist;
use crate::errors::ApiError;
use crate::jetstream::JetStream;
use crate::port::{Accept, Flow, Handler, Incoming, Port};
use crate::stream::{InfoRequest, StateJson, Stream};

/// Chunk size when the request names none, and its bounds.
const CHUNK: (usize, usize, usize) = (128 * 1024, 1024, 1024 * 1024);
/// Window (bytes in flight) when the request names none, and its bounds.
const WINDOW: (usize, usize, usize) = (8 * 1024 * 1024, 1024, 32 * 1024 * 1024);

#[derive(Debug, Default, Deserialize)]
struct SnapshotRequest {
    #[serde(default)]
    deliver_subject: String,
    #[serde(default)]
    no_consumers: bool,
    #[serde(default)]
    chunk_size: i64,
    #[serde(default)]
    window_size: i64,
    /// nats-server's "check the stream after the snapshot": accepted (every chunk of
    /// Petrel's archive carries a CRC, and a restore verifies them all).
    #[serde(default, rename = "jsck")]
    _jsck: bool,
}

#[derive(Serialize)]
struct SnapshotBody {
    config: StreamConfig,
    state: StateJson,
}

/// `STREAM.SNAPSHOT.<name>`.
pub(crate) fn snapshot(js: &JetStream, name: &str, payload: &[u8]) -> ApiResponse {
    let prepared = (|| {
        if is_empty_request(payload) {
            return Err(ApiError::bad_request());
        }
        let stream = js.stream(name).ok_or_else(ApiError::stream_not_found)?;
        let req: SnapshotRequest = crate::api::decode(js, payload)?;
        if !petrel_subject::is_valid_literal_subject(req.deliver_subject.as_bytes()) {
            return Err(ApiError::snapshot_deliver_subject_invalid());
        }
        let dir = stream
            .dir
            .clone()
            .ok_or_else(|| ApiError::stream_snapshot("memory streams keep no files to snapshot"))?;
        let file = staging_dir(js).join(format!("{}.snap", crate::advisory::next_id()));
        write_archive(&stream, &dir, &file, !req.no_consumers).map_err(|e| {
            let _ = std::fs::remove_file(&file);
            ApiError::stream_snapshot(e)
        })?;
        let (info, _) = stream.info(&InfoRequest::default())?;
        Ok((info, file, req))
    })();
    let (info, file, req) = match prepared {
        Ok(p) => p,
        Err(e) => return respond("stream_snapshot", None, Err::<(), _>(e)),
    };
    tracing::info!(stream = name, "Starting snapshot for stream '$G > {name}'");
    let mut resp = respond(
        "stream_snapshot",
        None,
        Ok(SnapshotBody {
            config: info.config,
            state: info.state,
        }),
    );
    let (port, rt, name) = (js.port.clone(), js.runtime.clone(), name.to_string());
    resp.then = Some(Then(Box::new(move || {
        rt.spawn(async move {
            if let Err(e) = send(port, &name, &file, &req).await {
                tracing::warn!(stream = %name, "Snapshot for stream '$G > {name}' failed: {e}");
            }
            let _ = tokio::fs::remove_file(&file).await;
        });
    })));
    resp
}

/// Writes the stream's files into the archive `file`, holding the stream lock so the cut
/// is consistent. Durable consumers' states are encoded from memory (their files may lag).
fn write_archive(
    stream: &Stream,
    dir: &Path,
    file: &Path,
    with_consumers: bool,
) -> std::io::Result<()> {
    if let Some(parent) = file.parent() {
        std::fs::create_dir_all(parent)?;
    }
    let out = std::io::BufWriter::new(std::fs::File::create(file)?);
    let mut w = ArchiveWriter::new(out)?;
    let backend = stream.backend.as_ref();
    let _inner = stream.inner.lock();
    add_store_files(&mut w, backend, dir)?;
    if with_consumers {
        for c in stream.consumers.read().values() {
            let Some(cdir) = &c.dir else { continue };
            let meta = petrel_store::read_all(backend, &cdir.join("meta.json"))?;
            w.add(&format!("obs/{}/meta.json", c.name), &meta)?;
            let state = persist::encode_state(&c.state.lock());
            w.add(&format!("obs/{}/state.json", c.name), &state)?;
        }
    }
    let out: std::io::BufWriter<std::fs::File> = w.finish()?;
    let file = out.into_inner().map_err(|e| e.into_error())?;
    file.sync_all()
}

/// The archive of a replica's files as they are on disk — the store and the durable
/// consumers' files its group committed — under the stream lock (one consistent cut).
/// Blocking.
pub(crate) fn replica_archive(stream: &Stream, dir: &Path) -> std::io::Result<Vec<u8>> {
    let mut w = ArchiveWriter::new(Vec::new())?;
    let backend = stream.backend.as_ref();
    let _inner = stream.inner.lock();
    add_store_files(&mut w, backend, dir)?;
    let obs = persist::consumers_dir(dir);
    let mut names = list(backend, &obs)?;
    names.sort();
    for name in names {
        for file in ["meta.json", "state.json"] {
            let path = obs.join(&name).join(file);
            if backend.exists(&path) {
                w.add(
                    &format!("obs/{name}/{file}"),
                    &petrel_store::read_all(backend, &path)?,
                )?;
            }
        }
    }
    w.finish()
}

/// The names in `dir` (none when it does not exist).
fn list(backend: &dyn petrel_store::Backend, dir: &Path) -> std::io::Result<Vec<String>> {
    if backend.is_dir(dir) {
        backend.list(dir)
    } else {
        Ok(Vec::new())
    }
}

/// The stream's `meta.json` (if it has one) and block files, in block order.
fn add_store_files<W: std::io::Write>(
    w: &mut ArchiveWriter<W>,
    backend: &dyn petrel_store::Backend,
    dir: &Path,
) -> std::io::Result<()> {
    // A replica's directory has none: its config comes from the meta group.
    let meta = dir.join("meta.json");
    if backend.exists(&meta) {
        w.add("meta.json", &petrel_store::read_all(backend, &meta)?)?;
    }
    let msgs = dir.join("msgs");
    let mut blocks: Vec<(u32, String)> = list(backend, &msgs)?
        .into_iter()
        .filter_map(|n| Some((n.strip_suffix(".blk")?.parse().ok()?, n)))
        .collect();
    blocks.sort();
    for (_, name) in blocks {
        let data = petrel_store::read_all(backend, &msgs.join(&name))?;
        w.add(&format!("msgs/{name}"), &data)?;
    }
    Ok(())
}

/// Frees a window slot per ack, never past the window.
struct Acks {
    slots: Arc<Semaphore>,
    max: usize,
}

impl Handler for Acks {
    fn handle(&self, _msg: Incoming<'_>) -> Flow {
        if self.slots.available_permits() < self.max {
            self.slots.add_permits(1);
        }
        Flow::Ok
    }
}

/// `n` or the default, within bounds.
fn clamp(n: i64, (default, lo, hi): (usize, usize, usize)) -> usize {
    match usize::try_from(n) {
        Ok(0) | Err(_) => default,
        Ok(n) => n.clamp(lo, hi),
    }
}

/// Streams `file` to the deliver subject in chunks, `window / chunk` unacked at most.
async fn send(
    port: Arc<dyn Port>,
    name: &str,
    file: &PathBuf,
    req: &SnapshotRequest,
) -> Result<(), String> {
    let chunk = clamp(req.chunk_size, CHUNK);
    let window = clamp(req.window_size, WINDOW).max(chunk);
    let max = window / chunk;
    let deliver = req.deliver_subject.as_str();
    // Allow the receiver a moment to subscribe.
    for _ in 0..40 {
        if port.has_interest(deliver) {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    let slots = Arc::new(Semaphore::new(max));
    let ack_subject = format!("$JS.SNAPSHOT.ACK.{name}.{}", crate::advisory::next_id());
    let handler = Arc::new(Acks {
        slots: slots.clone(),
        max,
    });
    let sub = port.subscribe(
        &format!("{ack_subject}.>"),
        None,
        Accept::ClientsOnly,
        handler,
    );
    let result = send_chunks(port.as_ref(), deliver, &ack_subject, file, chunk, &slots).await;
    port.unsubscribe(sub);
    let (end, outcome) = match result {
        Ok(true) => (Some("NATS/1.0 204\r\n\r\n".to_string()), Ok(())),
        Ok(false) => (None, Ok(())),
        Err(why) => (Some(format!("NATS/1.0 {why}\r\n\r\n")), Err(why)),
    };
    port.publish(deliver, None, end.map(Bytes::from), Bytes::new());
    if outcome.is_ok() {
        tracing::info!(stream = name, "Completed snapshot for stream '$G > {name}'");
    }
    outcome
}

/// Sends the chunks; `Ok(true)` when a full chunk went out (the end then says `204`), or
/// the status (`408 ...`, `500 ...`) that ends the flow early.
async fn send_chunks(
    port: &dyn Port,
    deliver: &str,
    ack_subject: &str,
    file: &PathBuf,
    chunk: usize,
    slots: &Semaphore,
) -> Result<bool, String> {
    let mut f = tokio::fs::File::open(file)
        .await
        .map_err(|e| format!("500 {e}"))?;
    let mut full = false;
    for index in 1u64.. {
        match tokio::time::timeout(IDLE, slots.acquire()).await {
            Ok(Ok(permit)) => permit.forget(),
            _ => return Err("408 No Flow Response".into()),
        }
        if !port.has_interest(deliver) {
            return Err("408 No Interest".into());
        }
        let mut buf = vec![0u8; chunk];
        let mut n = 0;
        while n < chunk {
            let got = f
                .read(&mut buf[n..])
                .await
                .map_err(|e| format!("500 {e}"))?;
            if got == 0 {
                break;
            }
            n += got;
        }
        buf.truncate(n);
        if n < chunk {
            if n > 0 {
                port.publish(deliver, None, None, Bytes::from(buf));
            }
            return Ok(full);
        }
        let reply = format!("{ack_subject}.{n}.{index}");
        port.publish(deliver, Some(&reply), None, Bytes::from(buf));
        full = true;
    }
    Ok(full)
}
