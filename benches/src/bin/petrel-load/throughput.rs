//! Throughput scenarios `pubsub`, `fanout` and `queue`: subscribers that count deliveries,
//! a batching publisher with PING/PONG and window flow control, and the run that checks
//! for losses and duplicates.

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context, Result};
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;
use tokio::sync::{Notify, Semaphore};
use tokio::task::JoinSet;

use crate::args::{Args, Scenario};
use crate::protocol::{connect, lossy, parse, sync_ops, Event, Reader, PING, PONG};
use crate::stats::{add_cpu, CpuMeter, CpuUsed, Report};

/// Delivery counters shared by the subscribers, the publisher and the main task.
struct Progress {
    per_sub: Vec<AtomicU64>,
    total: AtomicU64,
    bytes: AtomicU64,
    target: u64,
    queue: bool,
    done_at: OnceLock<Instant>,
    /// Signalled once when `total` reaches `target`.
    done: Notify,
    /// Signalled whenever a subscriber made progress (the publisher's window waits on it).
    advanced: Notify,
}

impl Progress {
    fn new(subs: usize, target: u64, queue: bool) -> Self {
        Self {
            per_sub: (0..subs).map(|_| AtomicU64::new(0)).collect(),
            total: AtomicU64::new(0),
            bytes: AtomicU64::new(0),
            target,
            queue,
            done_at: OnceLock::new(),
            done: Notify::new(),
            advanced: Notify::new(),
        }
    }

    fn record(&self, sub: usize, msgs: u64, bytes: u64) {
        self.per_sub[sub].fetch_add(msgs, Ordering::Relaxed);
        self.bytes.fetch_add(bytes, Ordering::Relaxed);
        let total = self.total.fetch_add(msgs, Ordering::AcqRel) + msgs;
        if total >= self.target && self.done_at.set(Instant::now()).is_ok() {
            self.done.notify_one();
        }
        self.advanced.notify_one();
    }

    /// Messages the slowest receiver has got: the group total for a queue group (members
    /// share the stream), the minimum over subscribers otherwise.
    fn slowest(&self) -> u64 {
        if self.queue {
            self.total.load(Ordering::Acquire)
        } else {
            self.per_sub
                .iter()
                .map(|c| c.load(Ordering::Acquire))
                .min()
                .unwrap_or(0)
        }
    }
}

enum Outcome {
    /// The publisher got the PONG after its last batch at this instant.
    Published(Instant),
}

async fn subscriber(
    mut stream: TcpStream,
    mut reader: Reader,
    idx: usize,
    progress: Arc<Progress>,
) -> Result<Outcome> {
    let res = async {
        loop {
            reader.fill(&mut stream).await?;
            let (mut msgs, mut bytes, mut pings) = (0u64, 0u64, 0usize);
            while let Some((ev, used)) = parse(reader.data())? {
                match ev {
                    Event::Msg { payload, .. } => {
                        msgs += 1;
                        bytes += payload.len() as u64;
                    }
                    Event::Ping => pings += 1,
                    Event::Err(e) => bail!("server sent {}", lossy(e)),
                    Event::Pong | Event::Ok | Event::Info => {}
                }
                reader.consume(used);
            }
            for _ in 0..pings {
                stream.write_all(PONG).await?;
            }
            if msgs > 0 {
                progress.record(idx, msgs, bytes);
            }
        }
    }
    .await;
    res.with_context(|| {
        format!(
            "subscriber {idx} (after {} msgs)",
            progress.per_sub[idx].load(Ordering::Relaxed)
        )
    })
}

struct PubPlan {
    batch: Vec<u8>,
    per_batch: u64,
    last: Vec<u8>,
    last_count: u64,
    full_batches: u64,
    window_msgs: u64,
    max_pings: usize,
}

impl PubPlan {
    fn new(a: &Args, subject: &str, msgs: u64) -> Self {
        let mut one = format!("PUB {subject} {}\r\n", a.size).into_bytes();
        one.extend(std::iter::repeat_n(b'x', a.size));
        one.extend_from_slice(b"\r\n");
        let per_batch = (a.batch_bytes() / one.len()).max(1) as u64;
        let encode = |count: u64| {
            let mut b = Vec::with_capacity(one.len() * count as usize + PING.len());
            for _ in 0..count {
                b.extend_from_slice(&one);
            }
            b.extend_from_slice(PING);
            b
        };
        let last_count = msgs % per_batch;
        // The MSG a subscriber gets is about as long as the PUB we send.
        let window_msgs = if a.window == 0 {
            u64::MAX
        } else {
            ((a.window / one.len()) as u64).max(2 * per_batch)
        };
        Self {
            batch: encode(per_batch),
            per_batch,
            last: encode(last_count),
            last_count,
            full_batches: msgs / per_batch,
            window_msgs,
            max_pings: a.max_pings,
        }
    }
}

/// Reads the publisher connection: each PONG returns a flow-control permit.
async fn pong_loop(
    rd: &mut tokio::net::tcp::OwnedReadHalf,
    reader: &mut Reader,
    permits: &Semaphore,
    pongs_owed: &AtomicUsize,
) -> Result<()> {
    loop {
        reader.fill(rd).await?;
        while let Some((ev, used)) = parse(reader.data())? {
            match ev {
                Event::Pong => permits.add_permits(1),
                Event::Ping => {
                    pongs_owed.fetch_add(1, Ordering::Relaxed);
                }
                Event::Err(e) => bail!("server sent {}", lossy(e)),
                Event::Msg { .. } | Event::Ok | Event::Info => {}
            }
            reader.consume(used);
        }
    }
}

async fn publisher(
    stream: TcpStream,
    mut reader: Reader,
    plan: PubPlan,
    progress: Arc<Progress>,
) -> Result<Outcome> {
    let (mut rd, mut wr) = stream.into_split();
    let permits = Arc::new(Semaphore::new(plan.max_pings));
    let owed = Arc::new(AtomicUsize::new(0));
    let pongs = {
        let (permits, owed) = (permits.clone(), owed.clone());
        tokio::spawn(async move {
            let res = pong_loop(&mut rd, &mut reader, &permits, &owed).await;
            // Wake the writer if it waits for a PONG that will never come.
            permits.close();
            res
        })
    };
    let lost = || anyhow!("publisher connection lost");
    let res = async {
        let mut sent = 0u64;
        let batches = plan.full_batches + u64::from(plan.last_count > 0);
        for b in 0..batches {
            let (buf, count) = if b < plan.full_batches {
                (&plan.batch, plan.per_batch)
            } else {
                (&plan.last, plan.last_count)
            };
            while (sent + count).saturating_sub(progress.slowest()) > plan.window_msgs {
                progress.advanced.notified().await;
            }
            permits.acquire().await.map_err(|_| lost())?.forget();
            for _ in 0..owed.swap(0, Ordering::Relaxed) {
                wr.write_all(PONG).await?;
            }
            wr.write_all(buf).await?;
            sent += count;
        }
        // Every batch's PONG is back: the server has processed every PUB.
        let all = u32::try_from(plan.max_pings).unwrap_or(u32::MAX);
        permits
            .acquire_many(all)
            .await
            .map_err(|_| lost())?
            .forget();
        Ok::<_, anyhow::Error>(Instant::now())
    }
    .await;
    let res = match res {
        Ok(t) => Ok(Outcome::Published(t)),
        Err(e) if permits.is_closed() => match pongs.await {
            Ok(Err(read_err)) => Err(read_err),
            _ => Err(e),
        },
        Err(e) => Err(e),
    };
    res.context("publisher")
}

pub(crate) async fn run_throughput(a: &Args, tck: u64) -> Result<Report> {
    let msgs = a.msgs.unwrap_or(2_000_000);
    let (subs, queue) = match a.scenario {
        Scenario::PubSub => (1, None),
        Scenario::Fanout => (a.subs, None),
        Scenario::Queue => (a.subs, Some("workers")),
        Scenario::ReqRep | Scenario::JsPubSync | Scenario::JsPubAsync | Scenario::JsConsume => {
            unreachable!("not a throughput scenario")
        }
    };
    let subject = format!("bench.{}", a.scenario.name());
    let target = if queue.is_some() {
        msgs
    } else {
        msgs * subs as u64
    };
    let progress = Arc::new(Progress::new(subs, target, queue.is_some()));

    let mut tasks: JoinSet<Result<Outcome>> = JoinSet::new();
    let sub_server = a.sub_server.as_deref().unwrap_or(&a.server);
    for i in 0..subs {
        let (mut stream, mut reader) = connect(sub_server).await?;
        let sub = match queue {
            Some(q) => format!("SUB {subject} {q} 1\r\n"),
            None => format!("SUB {subject} 1\r\n"),
        };
        sync_ops(&mut stream, &mut reader, sub.as_bytes()).await?;
        tasks.spawn(subscriber(stream, reader, i, progress.clone()));
    }
    if a.sub_server.is_some() {
        // The subscriptions reach the publisher's node over a route asynchronously.
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    let (pstream, preader) = connect(&a.server).await?;
    let plan = PubPlan::new(a, &subject, msgs);

    let cpu = CpuMeter::start(a.server_pid, tck)?;
    let start = Instant::now();
    let deadline = tokio::time::Instant::from_std(start + a.timeout);
    tasks.spawn(publisher(pstream, preader, plan, progress.clone()));

    let mut published_at: Option<Instant> = None;
    let mut used: Option<CpuUsed> = None;
    while used.is_none() || published_at.is_none() {
        tokio::select! {
            _ = progress.done.notified(), if used.is_none() => {
                if progress.done_at.get().is_some() {
                    used = Some(cpu.stop()?);
                }
            }
            r = tasks.join_next() => match r {
                Some(Ok(Ok(Outcome::Published(t)))) => published_at = Some(t),
                Some(Ok(Err(e))) => {
                    return Err(e.context(format!(
                        "delivered {} of {target}",
                        progress.total.load(Ordering::Relaxed)
                    )))
                }
                Some(Err(e)) => return Err(anyhow!("task failed: {e}")),
                None => bail!("every task ended before the run completed"),
            },
            _ = tokio::time::sleep_until(deadline) => bail!(
                "timeout after {:?}: delivered {} of {target} (per subscriber {:?}), publisher {}",
                a.timeout,
                progress.total.load(Ordering::Relaxed),
                progress.per_sub.iter().map(|c| c.load(Ordering::Relaxed)).collect::<Vec<_>>(),
                if published_at.is_some() { "done" } else { "still sending" },
            ),
        }
    }
    let (Some(used), Some(published_at), Some(&done_at)) =
        (used, published_at, progress.done_at.get())
    else {
        unreachable!("loop ends only when all are set");
    };

    // Let stragglers arrive, then check for duplicates / losses.
    tokio::time::sleep(Duration::from_millis(200)).await;
    let counts: Vec<u64> = progress
        .per_sub
        .iter()
        .map(|c| c.load(Ordering::Relaxed))
        .collect();
    let total: u64 = counts.iter().sum();
    if let Some(Ok(Err(e))) = tasks.try_join_next() {
        return Err(e.context("after the run"));
    }
    tasks.abort_all();
    if queue.is_some() {
        if total != msgs {
            bail!("queue group received {total} messages, expected exactly {msgs} ({counts:?})");
        }
    } else if counts.iter().any(|&c| c != msgs) {
        bail!("subscribers received {counts:?}, expected {msgs} each");
    }

    let elapsed = done_at.duration_since(start).as_secs_f64();
    let pub_elapsed = published_at.duration_since(start).as_secs_f64();
    let bytes = progress.bytes.load(Ordering::Relaxed);
    let mut r = Report::new(a.scenario);
    r.add("msgs", msgs);
    r.add("size", a.size);
    r.add("subs", subs);
    r.add("delivered", total);
    r.add("elapsed_s", format!("{elapsed:.4}"));
    r.add(
        "published_per_sec",
        format!("{:.0}", msgs as f64 / pub_elapsed),
    );
    r.add(
        "delivered_per_sec",
        format!("{:.0}", total as f64 / elapsed),
    );
    r.add("mb_per_sec", format!("{:.1}", bytes as f64 / elapsed / 1e6));
    if queue.is_some() {
        r.add(
            "per_member",
            counts
                .iter()
                .map(|c| c.to_string())
                .collect::<Vec<_>>()
                .join(","),
        );
    }
    add_cpu(&mut r, &used, total, elapsed);
    Ok(r)
}
