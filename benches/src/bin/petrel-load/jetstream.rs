//! JetStream publish scenarios `js-pub-sync` and `js-pub-async`: stream creation over the
//! raw `$JS.API`, PubAck matching by per-publish inbox, and the in-flight-limited async
//! publisher.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context, Result};
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;
use tokio::sync::{Notify, Semaphore};

use crate::args::Args;
use crate::protocol::{connect, lossy, parse, sync_ops, Event, Reader, INBOX_PREFIX, PONG};
use crate::reqrep::Requester;
use crate::stats::{add_cpu, add_latency, percentile, token, CpuMeter, Report};

const JS_STREAM_CREATE: &[u8] = b"$JS.API.STREAM.CREATE.BENCH";
const JS_SUBJECT: &[u8] = b"bench.x";

/// A JetStream API response or PubAck that reports an error.
pub(crate) fn is_js_error(payload: &[u8]) -> bool {
    memchr::memmem::find(payload, b"\"error\"").is_some()
}

/// Connects and subscribes to `_INBOX.petrelload.*` (every reply of this connection).
pub(crate) async fn js_connect(addr: &str) -> Result<(TcpStream, Reader)> {
    let (mut stream, mut reader) = connect(addr).await?;
    let mut sub = b"SUB ".to_vec();
    sub.extend_from_slice(INBOX_PREFIX);
    sub.extend_from_slice(b"* 1\r\n");
    sync_ops(&mut stream, &mut reader, &sub).await?;
    Ok((stream, reader))
}

/// Sends one `$JS.API` request `body` to `api` with the reply subject
/// `_INBOX.petrelload.<tag>` and returns the response body (the caller's connection must be
/// subscribed to `_INBOX.petrelload.*`; messages to other inboxes are skipped). The caller
/// checks the response for errors.
pub(crate) async fn js_api(
    stream: &mut TcpStream,
    reader: &mut Reader,
    api: &[u8],
    body: &[u8],
    tag: &[u8],
) -> Result<String> {
    let inbox = [INBOX_PREFIX, tag].concat();
    let mut req = b"PUB ".to_vec();
    req.extend_from_slice(api);
    req.push(b' ');
    req.extend_from_slice(&inbox);
    req.extend_from_slice(format!(" {}\r\n", body.len()).as_bytes());
    req.extend_from_slice(body);
    req.extend_from_slice(b"\r\n");
    stream.write_all(&req).await?;
    let work = async {
        loop {
            while let Some((ev, used)) = parse(reader.data())? {
                let response = match ev {
                    Event::Msg {
                        subject, payload, ..
                    } if subject == inbox.as_slice() => Some(lossy(payload)),
                    Event::Ping => {
                        stream.write_all(PONG).await?;
                        None
                    }
                    Event::Err(e) => bail!("server sent {}", lossy(e)),
                    Event::Msg { .. } | Event::Pong | Event::Ok | Event::Info => None,
                };
                reader.consume(used);
                if let Some(body) = response {
                    return Ok(body);
                }
            }
            reader.fill(stream).await?;
        }
    };
    tokio::time::timeout(Duration::from_secs(10), work)
        .await
        .map_err(|_| anyhow!("no response to {} within 10 s", lossy(api)))?
}

/// Creates the file stream `BENCH` on `bench.>` with `replicas` replicas with a raw API
/// request and checks the response (the caller's connection must be subscribed to
/// `_INBOX.petrelload.*`). A cluster without a meta leader yet (10008, or no answer) is
/// asked again, for up to 30 s.
async fn js_create_stream(stream: &mut TcpStream, reader: &mut Reader, replicas: u8) -> Result<()> {
    let config = format!(
        r#"{{"name":"BENCH","subjects":["bench.>"],"storage":"file","num_replicas":{replicas}}}"#
    );
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    loop {
        let body = match js_api(
            stream,
            reader,
            JS_STREAM_CREATE,
            config.as_bytes(),
            b"create",
        )
        .await
        {
            Ok(body) => body,
            // A cluster still electing its meta leader may not answer at all.
            Err(e) if std::time::Instant::now() < deadline => {
                eprintln!("stream create: {e}; asking again");
                continue;
            }
            Err(e) => return Err(e),
        };
        if !is_js_error(body.as_bytes()) {
            return Ok(());
        }
        if !body.contains("10008") || std::time::Instant::now() > deadline {
            bail!("stream create failed: {body}");
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

/// One publisher, each `PUB bench.x <inbox> <size>` waits for its PubAck before the next.
pub(crate) async fn run_js_sync(a: &Args, tck: u64) -> Result<Report> {
    let n = a.msgs.unwrap_or(20_000);
    let (mut stream, mut reader) = js_connect(&a.server).await?;
    js_create_stream(&mut stream, &mut reader, a.replicas).await?;
    let mut head = b"PUB ".to_vec();
    head.extend_from_slice(JS_SUBJECT);
    head.push(b' ');
    let mut q = Requester {
        stream,
        reader,
        head,
        req: Vec::with_capacity(a.size + 128),
        expect: Vec::with_capacity(64),
        payload: vec![b'x'; a.size],
        pongs_owed: 0,
    };

    let deadline = tokio::time::Instant::now() + a.timeout;
    let mut lat: Vec<u64> = Vec::with_capacity(usize::try_from(n).unwrap_or(0));
    let mut errors = 0u64;
    let mut cpu: Option<CpuMeter> = None;
    let mut start = Instant::now();
    let work = async {
        for i in 0..a.warmup {
            if q.request(i).await.context("warm-up publish")? {
                errors += 1;
            }
        }
        cpu = Some(CpuMeter::start(a.server_pid, tck)?);
        start = Instant::now();
        for i in 0..n {
            let t0 = Instant::now();
            if q.request(a.warmup + i).await.context("publisher")? {
                errors += 1;
            }
            lat.push(t0.elapsed().as_nanos() as u64);
        }
        Ok::<_, anyhow::Error>(())
    };
    tokio::select! {
        r = work => r?,
        _ = tokio::time::sleep_until(deadline) => bail!(
            "timeout after {:?}: {} of {n} publishes acknowledged", a.timeout, lat.len()
        ),
    }
    let elapsed = start.elapsed().as_secs_f64();
    let used = cpu
        .as_ref()
        .map(CpuMeter::stop)
        .context("cpu meter not started")??;

    let mut r = Report::new(a.scenario);
    r.add("msgs", n);
    r.add("size", a.size);
    r.add("ack_errors", errors);
    r.add("elapsed_s", format!("{elapsed:.4}"));
    r.add("acked_per_sec", format!("{:.0}", n as f64 / elapsed));
    add_latency(&mut r, &mut lat);
    add_cpu(&mut r, &used, n, elapsed);
    Ok(r)
}

/// PubAck bookkeeping shared by the async publisher's writer and reader.
struct AckState {
    /// Which publishes have their PubAck (duplicates are an error).
    acked: Vec<bool>,
    count: u64,
    errors: u64,
    first_error: Option<String>,
    /// Latency of every PubAck, from the write of its publish's batch.
    lat: Vec<u64>,
}

/// Reads PubAcks on `_INBOX.petrelload.<i>`, returns a permit for each and records errors.
async fn js_ack_loop(
    rd: &mut tokio::net::tcp::OwnedReadHalf,
    reader: &mut Reader,
    permits: &Semaphore,
    pongs_owed: &AtomicUsize,
    sent_at: &[OnceLock<Instant>],
    state: &std::sync::Mutex<AckState>,
    all_acked: &Notify,
) -> Result<()> {
    let n = sent_at.len() as u64;
    loop {
        reader.fill(rd).await?;
        let now = Instant::now();
        let mut st = state.lock().map_err(|_| anyhow!("ack state poisoned"))?;
        let mut acks = 0usize;
        while let Some((ev, used)) = parse(reader.data())? {
            match ev {
                // A late answer to the stream create (in a cluster every node answers
                // 10008 while there is no meta leader): not a PubAck.
                Event::Msg { subject, .. } if subject.ends_with(b".create") => {}
                Event::Msg {
                    subject, payload, ..
                } => {
                    let id = subject
                        .strip_prefix(INBOX_PREFIX)
                        .and_then(|d| std::str::from_utf8(d).ok())
                        .and_then(|d| d.parse::<u64>().ok())
                        .filter(|&i| i < n)
                        .with_context(|| format!("unexpected reply subject {}", lossy(subject)))?;
                    let slot = &mut st.acked[id as usize];
                    if *slot {
                        bail!("duplicate PubAck for publish {id}");
                    }
                    *slot = true;
                    st.count += 1;
                    acks += 1;
                    if let Some(t) = sent_at[id as usize].get() {
                        st.lat.push(now.duration_since(*t).as_nanos() as u64);
                    }
                    if is_js_error(payload) {
                        st.errors += 1;
                        if st.first_error.is_none() {
                            st.first_error = Some(lossy(payload));
                        }
                    }
                }
                Event::Ping => {
                    pongs_owed.fetch_add(1, Ordering::Relaxed);
                }
                Event::Err(e) => bail!("server sent {}", lossy(e)),
                Event::Pong | Event::Ok | Event::Info => {}
            }
            reader.consume(used);
        }
        let done = st.count == n;
        drop(st);
        permits.add_permits(acks);
        if done {
            all_acked.notify_one();
        }
    }
}

/// The in-flight-limited async publisher of `js-pub-async` (also the untimed prefill of
/// `js-consume`): set up by `new` (per-publish bookkeeping allocated), started by `run`, so
/// a caller can start its clock after the allocations.
pub(crate) struct AsyncPublisher {
    stream: TcpStream,
    reader: Reader,
    n: u64,
    permits: Arc<Semaphore>,
    owed: Arc<AtomicUsize>,
    sent_at: Arc<Vec<OnceLock<Instant>>>,
    state: Arc<std::sync::Mutex<AckState>>,
    all_acked: Arc<Notify>,
}

/// What `AsyncPublisher::run` saw.
pub(crate) struct AsyncOutcome {
    /// When the last PubAck was in.
    pub(crate) done_at: Instant,
    /// PubAcks that contain `"error"`, and the first of them.
    pub(crate) errors: u64,
    pub(crate) first_error: Option<String>,
    /// Latency of every PubAck in nanoseconds, unsorted.
    pub(crate) lat: Vec<u64>,
}

impl AsyncPublisher {
    /// `stream` must be subscribed to `_INBOX.petrelload.*` (see `js_connect`) and be used
    /// for nothing else; `n` publishes, at most `inflight` of them without their PubAck.
    pub(crate) fn new(stream: TcpStream, reader: Reader, n: u64, inflight: usize) -> Result<Self> {
        let count = usize::try_from(n).context("--msgs too large")?;
        Ok(Self {
            stream,
            reader,
            n,
            permits: Arc::new(Semaphore::new(inflight)),
            owed: Arc::new(AtomicUsize::new(0)),
            sent_at: Arc::new((0..count).map(|_| OnceLock::new()).collect()),
            state: Arc::new(std::sync::Mutex::new(AckState {
                acked: vec![false; count],
                count: 0,
                errors: 0,
                first_error: None,
                lat: Vec::with_capacity(count),
            })),
            all_acked: Arc::new(Notify::new()),
        })
    }

    /// Publishes `size`-byte payloads to `subject`, each with its own reply subject
    /// `_INBOX.petrelload.<i>` under the connection's wildcard inbox, in writes of up to
    /// `batch` bytes, until every PubAck is in or `timeout` has passed.
    pub(crate) async fn run(
        self,
        subject: &[u8],
        size: usize,
        batch: usize,
        timeout: Duration,
    ) -> Result<AsyncOutcome> {
        let Self {
            stream,
            mut reader,
            n,
            permits,
            owed,
            sent_at,
            state,
            all_acked,
        } = self;
        let start = Instant::now();
        let (mut rd, mut wr) = stream.into_split();
        let mut acks = {
            let (permits, owed, sent_at, state, all_acked) = (
                permits.clone(),
                owed.clone(),
                sent_at.clone(),
                state.clone(),
                all_acked.clone(),
            );
            tokio::spawn(async move {
                let res = js_ack_loop(
                    &mut rd,
                    &mut reader,
                    &permits,
                    &owed,
                    &sent_at,
                    &state,
                    &all_acked,
                )
                .await;
                permits.close();
                res
            })
        };

        let payload = vec![b'x'; size];
        let lost = || anyhow!("publisher connection lost");
        let writer = async {
            let mut buf: Vec<u8> = Vec::with_capacity(batch + size + 128);
            let mut num = itoa::Buffer::new();
            let mut len = itoa::Buffer::new();
            let size = len.format(size).to_owned();
            // Bytes of one PUB (an upper bound: the id has at most 20 digits).
            let per_pub = (4
                + subject.len()
                + 1
                + INBOX_PREFIX.len()
                + 20
                + 1
                + size.len()
                + 2
                + payload.len()
                + 2) as u64;
            let mut next = 0u64;
            while next < n {
                // Wait for one free slot, then take every other free one (one write for all).
                permits.acquire().await.map_err(|_| lost())?.forget();
                let mut take = 1u64;
                while next + take < n && take * per_pub < batch as u64 {
                    match permits.try_acquire() {
                        Ok(p) => p.forget(),
                        Err(_) => break,
                    }
                    take += 1;
                }
                buf.clear();
                for _ in 0..owed.swap(0, Ordering::Relaxed) {
                    buf.extend_from_slice(PONG);
                }
                let now = Instant::now();
                for i in next..next + take {
                    buf.extend_from_slice(b"PUB ");
                    buf.extend_from_slice(subject);
                    buf.push(b' ');
                    buf.extend_from_slice(INBOX_PREFIX);
                    buf.extend_from_slice(num.format(i).as_bytes());
                    buf.push(b' ');
                    buf.extend_from_slice(size.as_bytes());
                    buf.extend_from_slice(b"\r\n");
                    buf.extend_from_slice(&payload);
                    buf.extend_from_slice(b"\r\n");
                    let _ = sent_at[i as usize].set(now);
                }
                next += take;
                wr.write_all(&buf).await?;
            }
            // Keep answering PINGs until the last PubAck is in.
            loop {
                tokio::select! {
                    _ = all_acked.notified() => return Ok::<_, anyhow::Error>(()),
                    _ = tokio::time::sleep(Duration::from_millis(100)) => {
                        for _ in 0..owed.swap(0, Ordering::Relaxed) {
                            wr.write_all(PONG).await?;
                        }
                    }
                }
            }
        };
        let deadline = tokio::time::Instant::from_std(start + timeout);
        let progress = |state: &std::sync::Mutex<AckState>| {
            state.lock().map(|s| (s.count, s.errors)).unwrap_or((0, 0))
        };
        tokio::select! {
            r = writer => {
                if let Err(e) = r {
                    if permits.is_closed() {
                        if let Ok(Err(read_err)) = (&mut acks).await {
                            return Err(read_err.context("publisher"));
                        }
                    }
                    return Err(e.context("publisher"));
                }
            }
            r = &mut acks => match r {
                Ok(Err(e)) => {
                    let (c, _) = progress(&state);
                    return Err(e.context(format!("ack reader after {c} of {n} PubAcks")));
                }
                Ok(Ok(())) => bail!("ack reader ended"),
                Err(e) => bail!("ack reader failed: {e}"),
            },
            _ = tokio::time::sleep_until(deadline) => {
                let (c, errs) = progress(&state);
                bail!("timeout after {timeout:?}: {c} of {n} PubAcks ({errs} errors)")
            }
        }
        let done_at = Instant::now();
        acks.abort();

        let mut st = state.lock().map_err(|_| anyhow!("ack state poisoned"))?;
        Ok(AsyncOutcome {
            done_at,
            errors: st.errors,
            first_error: st.first_error.take(),
            lat: std::mem::take(&mut st.lat),
        })
    }
}

/// One publisher with at most `--inflight` publishes without their PubAck; each publish has
/// its own reply subject `_INBOX.petrelload.<i>` under the connection's wildcard inbox.
pub(crate) async fn run_js_async(a: &Args, tck: u64) -> Result<Report> {
    let n = a.msgs.unwrap_or(200_000);
    let (mut stream, mut reader) = js_connect(&a.server).await?;
    js_create_stream(&mut stream, &mut reader, a.replicas).await?;
    let publisher = AsyncPublisher::new(stream, reader, n, a.inflight)?;
    let cpu = CpuMeter::start(a.server_pid, tck)?;
    let start = Instant::now();
    let out = publisher
        .run(JS_SUBJECT, a.size, a.batch_bytes(), a.timeout)
        .await?;
    let elapsed = out.done_at.duration_since(start).as_secs_f64();
    let used = cpu.stop()?;

    let mut lat = out.lat;
    lat.sort_unstable();
    let mut r = Report::new(a.scenario);
    r.add("msgs", n);
    r.add("size", a.size);
    r.add("inflight", a.inflight);
    r.add("ack_errors", out.errors);
    r.add("elapsed_s", format!("{elapsed:.4}"));
    r.add("acked_per_sec", format!("{:.0}", n as f64 / elapsed));
    r.add(
        "mb_per_sec",
        format!("{:.1}", (n as f64 * a.size as f64) / elapsed / 1e6),
    );
    if !lat.is_empty() {
        r.add("ack_p50_us", format!("{:.1}", percentile(&lat, 0.50)));
        r.add("ack_p99_us", format!("{:.1}", percentile(&lat, 0.99)));
        r.add("ack_max_us", format!("{:.1}", percentile(&lat, 1.0)));
    }
    add_cpu(&mut r, &used, n, elapsed);
    if let Some(e) = out.first_error {
        eprintln!("petrel-load: first error PubAck: {e}");
        r.add("first_ack_error", token(&e));
    }
    Ok(r)
}
