//! `petrel-load`: a raw-protocol NATS load generator for side-by-side runs of Petrel and
//! nats-server.
//!
//! The tool speaks the NATS text protocol over TCP itself so that it is not the bottleneck:
//! publishers write pre-encoded `PUB` batches with one large write each, subscribers parse
//! `MSG`/`HMSG` control lines with `memchr` straight out of a reused read buffer and only
//! count messages and bytes (no allocation per message).
//!
//! Flow control, identical for every server under test:
//! - every publish batch ends with `PING`, and at most `--max-pings` batches may be without
//!   their `PONG`, so the server never holds more than a few batches of unread input;
//! - the publisher never runs more than `--window` bytes ahead of the slowest subscriber, so
//!   no subscriber's outbound queue in the server gets near the 64 MiB `max_pending` limit
//!   (`--window 0` turns this off to stress the server's slow-consumer handling).
//!
//! The last line of output is machine readable: `RESULT key=value ...`.

use std::process::ExitCode;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context, Result};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::{Notify, Semaphore};
use tokio::task::JoinSet;

const USAGE: &str = "\
usage: petrel-load --scenario <pubsub|fanout|queue|reqrep|js-pub-sync|js-pub-async> [options]

options:
  --server <host:port>   server address (default 127.0.0.1:4222)
  --msgs <n>             messages to publish, or requests for reqrep
                         (default 2000000; reqrep 20000; js-pub-sync 20000;
                         js-pub-async 200000)
  --size <bytes>         payload size (default 128)
  --subs <k>             subscribers for fanout / queue members for queue (default 4)
  --timeout <secs>       give up after this long (default 60)
  --server-pid <pid>     measure the server's CPU time from /proc/<pid>/stat
  --batch <bytes>        bytes of PUBs per write, each followed by PING (default 262144)
  --max-pings <n>        publish batches allowed without their PONG (default 4)
  --window <bytes>       max bytes the publisher runs ahead of the slowest subscriber
                         (default 8388608; 0 = unlimited)
  --warmup <n>           reqrep, js-pub-sync: untimed requests before measuring
                         (default 1000)
  --inflight <n>         js-pub-async: max publishes without their PubAck (default 256)
  --threads <n>          tokio worker threads (default 1: current-thread runtime)
  -h, --help             this text

The last line printed is `RESULT key=value ...` (status=ok or status=failed).";

/// Control lines longer than this are a protocol error (nats-server's default is 4 KiB).
const MAX_LINE: usize = 64 * 1024;
const READ_BUF: usize = 1 << 20;
const CONNECT: &[u8] =
    b"CONNECT {\"verbose\":false,\"pedantic\":false,\"headers\":true,\"name\":\"petrel-load\"}\r\nPING\r\n";
const PING: &[u8] = b"PING\r\n";
const PONG: &[u8] = b"PONG\r\n";
const INBOX_PREFIX: &[u8] = b"_INBOX.petrelload.";

// ---------------------------------------------------------------------------------------
// Command line
// ---------------------------------------------------------------------------------------

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Scenario {
    PubSub,
    Fanout,
    Queue,
    ReqRep,
    JsPubSync,
    JsPubAsync,
}

impl Scenario {
    fn parse(s: &str) -> Result<Self> {
        Ok(match s {
            "pubsub" => Self::PubSub,
            "fanout" => Self::Fanout,
            "queue" => Self::Queue,
            "reqrep" => Self::ReqRep,
            "js-pub-sync" => Self::JsPubSync,
            "js-pub-async" => Self::JsPubAsync,
            other => bail!(
                "unknown scenario {other:?} (pubsub, fanout, queue, reqrep, js-pub-sync, \
                 js-pub-async)"
            ),
        })
    }

    fn name(self) -> &'static str {
        match self {
            Self::PubSub => "pubsub",
            Self::Fanout => "fanout",
            Self::Queue => "queue",
            Self::ReqRep => "reqrep",
            Self::JsPubSync => "js-pub-sync",
            Self::JsPubAsync => "js-pub-async",
        }
    }
}

#[derive(Debug)]
struct Args {
    scenario: Scenario,
    server: String,
    msgs: Option<u64>,
    size: usize,
    subs: usize,
    timeout: Duration,
    server_pid: Option<u32>,
    batch: usize,
    max_pings: usize,
    window: usize,
    warmup: u64,
    inflight: usize,
    threads: usize,
}

fn parse_num<T: std::str::FromStr>(value: &str, flag: &str) -> Result<T> {
    value
        .replace('_', "")
        .parse()
        .map_err(|_| anyhow!("{flag}: invalid number {value:?}"))
}

impl Args {
    /// `Ok(None)` means help was asked for.
    fn parse(mut it: impl Iterator<Item = String>) -> Result<Option<Self>> {
        let mut a = Args {
            scenario: Scenario::PubSub,
            server: "127.0.0.1:4222".into(),
            msgs: None,
            size: 128,
            subs: 4,
            timeout: Duration::from_secs(60),
            server_pid: None,
            batch: 256 * 1024,
            max_pings: 4,
            window: 8 << 20,
            warmup: 1000,
            inflight: 256,
            threads: 1,
        };
        let mut scenario_seen = false;
        while let Some(arg) = it.next() {
            let (flag, inline) = match arg.split_once('=') {
                Some((f, v)) if f.starts_with("--") => (f.to_string(), Some(v.to_string())),
                _ => (arg.clone(), None),
            };
            if flag == "-h" || flag == "--help" {
                return Ok(None);
            }
            let mut value = || -> Result<String> {
                match &inline {
                    Some(v) => Ok(v.clone()),
                    None => it.next().with_context(|| format!("{flag} needs a value")),
                }
            };
            match flag.as_str() {
                "--scenario" => {
                    a.scenario = Scenario::parse(&value()?)?;
                    scenario_seen = true;
                }
                "--server" => a.server = value()?,
                "--msgs" => a.msgs = Some(parse_num(&value()?, &flag)?),
                "--size" => a.size = parse_num(&value()?, &flag)?,
                "--subs" => a.subs = parse_num(&value()?, &flag)?,
                "--timeout" => {
                    let v = value()?;
                    let secs: f64 = parse_num(v.trim_end_matches('s'), &flag)?;
                    if !(secs > 0.0 && secs < 1e6) {
                        bail!("--timeout must be a positive number of seconds");
                    }
                    a.timeout = Duration::from_secs_f64(secs);
                }
                "--server-pid" => a.server_pid = Some(parse_num(&value()?, &flag)?),
                "--batch" => a.batch = parse_num(&value()?, &flag)?,
                "--max-pings" => a.max_pings = parse_num(&value()?, &flag)?,
                "--window" => a.window = parse_num(&value()?, &flag)?,
                "--warmup" => a.warmup = parse_num(&value()?, &flag)?,
                "--inflight" => a.inflight = parse_num(&value()?, &flag)?,
                "--threads" => a.threads = parse_num(&value()?, &flag)?,
                other => bail!("unknown flag {other:?}"),
            }
        }
        if !scenario_seen {
            bail!("--scenario is required");
        }
        if a.subs == 0 {
            bail!("--subs must be at least 1");
        }
        if a.max_pings == 0 {
            bail!("--max-pings must be at least 1");
        }
        if a.inflight == 0 {
            bail!("--inflight must be at least 1");
        }
        if a.msgs == Some(0) {
            bail!("--msgs must be at least 1");
        }
        Ok(Some(a))
    }
}

// ---------------------------------------------------------------------------------------
// Protocol: read buffer and server-op parser
// ---------------------------------------------------------------------------------------

/// A reused read buffer: bytes `start..end` are received and not yet parsed.
struct Reader {
    buf: Vec<u8>,
    start: usize,
    end: usize,
}

impl Reader {
    fn new() -> Self {
        Self {
            buf: vec![0; READ_BUF],
            start: 0,
            end: 0,
        }
    }

    fn data(&self) -> &[u8] {
        &self.buf[self.start..self.end]
    }

    fn consume(&mut self, n: usize) {
        self.start += n;
    }

    /// One read from `r` into the free tail (compacting or growing first). EOF is an error:
    /// the server never closes a healthy connection during a run.
    async fn fill<R: AsyncRead + Unpin>(&mut self, r: &mut R) -> Result<usize> {
        if self.start == self.end {
            self.start = 0;
            self.end = 0;
        } else if self.buf.len() - self.end < READ_BUF / 4 {
            self.buf.copy_within(self.start..self.end, 0);
            self.end -= self.start;
            self.start = 0;
        }
        if self.end == self.buf.len() {
            // One op larger than the buffer (big payloads): grow.
            let len = self.buf.len() * 2;
            self.buf.resize(len, 0);
        }
        let n = r.read(&mut self.buf[self.end..]).await?;
        if n == 0 {
            bail!("server closed the connection");
        }
        self.end += n;
        Ok(n)
    }
}

/// One server op, borrowing from the read buffer.
#[derive(Debug)]
enum Event<'a> {
    Msg {
        subject: &'a [u8],
        reply: Option<&'a [u8]>,
        /// Everything after the control line: header block (HMSG) and payload.
        payload: &'a [u8],
    },
    Ping,
    Pong,
    Ok,
    Info,
    Err(&'a [u8]),
}

fn parse_len(digits: &[u8]) -> Result<usize> {
    if digits.is_empty() || digits.len() > 12 {
        bail!("bad length {:?}", String::from_utf8_lossy(digits));
    }
    let mut n = 0usize;
    for &d in digits {
        if !d.is_ascii_digit() {
            bail!("bad length {:?}", String::from_utf8_lossy(digits));
        }
        n = n * 10 + usize::from(d - b'0');
    }
    Ok(n)
}

/// Space-separated fields of `args` into `out`; returns how many (at most 5 are expected).
fn split_fields<'a>(args: &'a [u8], out: &mut [&'a [u8]; 5]) -> Result<usize> {
    let mut n = 0;
    let mut from = 0;
    for sp in memchr::memchr_iter(b' ', args).chain(std::iter::once(args.len())) {
        if sp > from {
            if n == out.len() {
                bail!("too many fields in {:?}", String::from_utf8_lossy(args));
            }
            out[n] = &args[from..sp];
            n += 1;
        }
        from = sp + 1;
    }
    Ok(n)
}

/// Parses one op from the front of `data`: `Ok(None)` if more bytes are needed, else the
/// op and the number of bytes it used.
fn parse(data: &[u8]) -> Result<Option<(Event<'_>, usize)>> {
    let Some(nl) = memchr::memchr(b'\n', data) else {
        if data.len() > MAX_LINE {
            bail!("control line longer than {MAX_LINE} bytes");
        }
        return Ok(None);
    };
    let line = match data[..nl].last() {
        Some(b'\r') => &data[..nl - 1],
        _ => &data[..nl],
    };
    let after = nl + 1;
    let (is_msg, hmsg) = match line.first() {
        Some(b'M') if line.starts_with(b"MSG ") => (true, false),
        Some(b'H') if line.starts_with(b"HMSG ") => (true, true),
        _ => (false, false),
    };
    if is_msg {
        let mut f: [&[u8]; 5] = [&[]; 5];
        let n = split_fields(&line[if hmsg { 5 } else { 4 }..], &mut f)?;
        // MSG subject sid [reply] len / HMSG subject sid [reply] hdr_len total_len
        let reply = match (hmsg, n) {
            (false, 3) | (true, 4) => None,
            (false, 4) | (true, 5) => Some(f[2]),
            _ => bail!("malformed op {:?}", String::from_utf8_lossy(line)),
        };
        let len = parse_len(f[n - 1])?;
        let need = after + len + 2;
        if data.len() < need {
            return Ok(None);
        }
        if &data[after + len..need] != b"\r\n" {
            bail!("payload of {len} bytes not followed by CRLF");
        }
        let ev = Event::Msg {
            subject: f[0],
            reply,
            payload: &data[after..after + len],
        };
        return Ok(Some((ev, need)));
    }
    let ev = if line.eq_ignore_ascii_case(b"PING") {
        Event::Ping
    } else if line.eq_ignore_ascii_case(b"PONG") {
        Event::Pong
    } else if line.starts_with(b"+OK") {
        Event::Ok
    } else if line.starts_with(b"INFO") {
        Event::Info
    } else if line.starts_with(b"-ERR") {
        Event::Err(line)
    } else {
        bail!("unexpected op {:?}", String::from_utf8_lossy(line));
    };
    Ok(Some((ev, after)))
}

fn lossy(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// Reads until `PONG`, answering server PINGs. `-ERR` is an error.
async fn wait_pong(stream: &mut TcpStream, reader: &mut Reader) -> Result<()> {
    loop {
        while let Some((ev, used)) = parse(reader.data())? {
            let (pong, ping) = match ev {
                Event::Pong => (true, false),
                Event::Ping => (false, true),
                Event::Err(e) => bail!("server sent {}", lossy(e)),
                Event::Msg { .. } | Event::Ok | Event::Info => (false, false),
            };
            reader.consume(used);
            if ping {
                stream.write_all(PONG).await?;
            }
            if pong {
                return Ok(());
            }
        }
        reader.fill(stream).await?;
    }
}

/// Connects, reads INFO, sends CONNECT + PING and waits for the PONG.
async fn connect(addr: &str) -> Result<(TcpStream, Reader)> {
    let mut stream = TcpStream::connect(addr)
        .await
        .with_context(|| format!("connecting to {addr}"))?;
    stream.set_nodelay(true)?;
    let mut reader = Reader::new();
    loop {
        if let Some((ev, used)) = parse(reader.data())? {
            match ev {
                Event::Info => {
                    reader.consume(used);
                    break;
                }
                Event::Err(e) => bail!("server sent {} instead of INFO", lossy(e)),
                other => bail!("expected INFO, got {other:?}"),
            }
        }
        reader.fill(&mut stream).await?;
    }
    stream.write_all(CONNECT).await?;
    wait_pong(&mut stream, &mut reader).await?;
    Ok((stream, reader))
}

/// Sends `ops` followed by PING and waits for the PONG, so the server has applied `ops`.
async fn sync_ops(stream: &mut TcpStream, reader: &mut Reader, ops: &[u8]) -> Result<()> {
    let mut buf = ops.to_vec();
    buf.extend_from_slice(PING);
    stream.write_all(&buf).await?;
    wait_pong(stream, reader).await
}

// ---------------------------------------------------------------------------------------
// Measurements
// ---------------------------------------------------------------------------------------

fn clk_tck() -> u64 {
    std::process::Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .and_then(|s| s.trim().parse().ok())
        .filter(|&t| t > 0)
        .unwrap_or(100)
}

/// utime + stime of a process (all its threads), in clock ticks.
fn cpu_ticks(pid: &str) -> Result<u64> {
    let path = format!("/proc/{pid}/stat");
    let stat = std::fs::read_to_string(&path).with_context(|| format!("reading {path}"))?;
    // The command name (field 2) may contain spaces and parentheses: skip past the last ')'.
    let rest = stat
        .rfind(')')
        .map(|i| &stat[i + 1..])
        .with_context(|| format!("malformed {path}"))?;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // fields[0] is field 3 (state); utime is field 14, stime field 15.
    let get = |i: usize| -> Result<u64> {
        fields
            .get(i)
            .and_then(|v| v.parse().ok())
            .with_context(|| format!("malformed {path}"))
    };
    Ok(get(11)? + get(12)?)
}

/// Resident and peak resident memory of a process in MB (VmRSS, VmHWM), if readable.
fn memory_mb(pid: &str) -> Option<(f64, f64)> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let kb = |key: &str| -> Option<f64> {
        let line = status.lines().find(|l| l.starts_with(key))?;
        line[key.len()..]
            .trim()
            .trim_end_matches("kB")
            .trim()
            .parse()
            .ok()
    };
    Some((kb("VmRSS:")? / 1024.0, kb("VmHWM:")? / 1024.0))
}

/// Machine-wide busy (user+nice+system+irq+softirq) and steal ticks from `/proc/stat`.
fn host_ticks() -> Option<(u64, u64)> {
    let stat = std::fs::read_to_string("/proc/stat").ok()?;
    let line = stat.lines().find(|l| l.starts_with("cpu "))?;
    let v: Vec<u64> = line
        .split_whitespace()
        .skip(1)
        .map(|x| x.parse().unwrap_or(0))
        .collect();
    // user nice system idle iowait irq softirq steal ...
    let busy = v.iter().take(3).sum::<u64>() + v.get(5).unwrap_or(&0) + v.get(6).unwrap_or(&0);
    Some((busy, *v.get(7).unwrap_or(&0)))
}

/// CPU seconds used by the server (if `--server-pid`), by this tool, and by everything
/// else on the machine (interference from other work skews a run: it is reported).
struct CpuMeter {
    server_pid: Option<String>,
    tck: f64,
    server0: u64,
    self0: u64,
    host0: Option<(u64, u64)>,
}

struct CpuUsed {
    server_s: Option<f64>,
    tool_s: f64,
    /// Machine-wide busy seconds not used by the server or this tool, and steal seconds.
    other_s: Option<(f64, f64)>,
    /// Server VmRSS and VmHWM (MB) at the end of the measured phase.
    server_mem: Option<(f64, f64)>,
}

impl CpuMeter {
    fn start(server_pid: Option<u32>, tck: u64) -> Result<Self> {
        let server_pid = server_pid.map(|p| p.to_string());
        let server0 = match &server_pid {
            Some(p) => cpu_ticks(p).context("--server-pid")?,
            None => 0,
        };
        Ok(Self {
            server_pid,
            tck: tck as f64,
            server0,
            self0: cpu_ticks("self")?,
            host0: host_ticks(),
        })
    }

    fn stop(&self) -> Result<CpuUsed> {
        let server_s = match &self.server_pid {
            Some(p) => Some(cpu_ticks(p)?.saturating_sub(self.server0) as f64 / self.tck),
            None => None,
        };
        let tool_s = cpu_ticks("self")?.saturating_sub(self.self0) as f64 / self.tck;
        let other_s = match (self.host0, host_ticks(), server_s) {
            (Some((b0, s0)), Some((b1, s1)), Some(srv)) => {
                let busy = b1.saturating_sub(b0) as f64 / self.tck;
                Some((
                    (busy - srv - tool_s).max(0.0),
                    s1.saturating_sub(s0) as f64 / self.tck,
                ))
            }
            _ => None,
        };
        Ok(CpuUsed {
            server_s,
            tool_s,
            other_s,
            server_mem: self.server_pid.as_deref().and_then(memory_mb),
        })
    }
}

/// Key/value results, printed for people and then as one `RESULT` line.
struct Report {
    fields: Vec<(&'static str, String)>,
}

impl Report {
    fn new(scenario: Scenario) -> Self {
        Self {
            fields: vec![
                ("scenario", scenario.name().into()),
                ("status", "ok".into()),
            ],
        }
    }

    fn add(&mut self, key: &'static str, value: impl ToString) {
        self.fields.push((key, value.to_string()));
    }

    fn print(&self) {
        for (k, v) in &self.fields {
            println!("{k:>20}: {v}");
        }
        let line: Vec<String> = self
            .fields
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect();
        println!("RESULT {}", line.join(" "));
    }
}

// ---------------------------------------------------------------------------------------
// Throughput scenarios: pubsub, fanout, queue
// ---------------------------------------------------------------------------------------

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
        let per_batch = (a.batch / one.len()).max(1) as u64;
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

async fn run_throughput(a: &Args, tck: u64) -> Result<Report> {
    let msgs = a.msgs.unwrap_or(2_000_000);
    let (subs, queue) = match a.scenario {
        Scenario::PubSub => (1, None),
        Scenario::Fanout => (a.subs, None),
        Scenario::Queue => (a.subs, Some("workers")),
        Scenario::ReqRep | Scenario::JsPubSync | Scenario::JsPubAsync => {
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
    for i in 0..subs {
        let (mut stream, mut reader) = connect(&a.server).await?;
        let sub = match queue {
            Some(q) => format!("SUB {subject} {q} 1\r\n"),
            None => format!("SUB {subject} 1\r\n"),
        };
        sync_ops(&mut stream, &mut reader, sub.as_bytes()).await?;
        tasks.spawn(subscriber(stream, reader, i, progress.clone()));
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

fn add_cpu(r: &mut Report, used: &CpuUsed, delivered: u64, elapsed: f64) {
    if let Some(s) = used.server_s {
        r.add("server_cpu_s", format!("{s:.2}"));
        r.add(
            "cpu_ns_per_msg",
            format!("{:.0}", s * 1e9 / delivered as f64),
        );
        r.add("server_cpu_util", format!("{:.2}", s / elapsed));
    }
    if let Some((other, steal)) = used.other_s {
        r.add("other_cpu_s", format!("{other:.2}"));
        r.add("steal_s", format!("{steal:.2}"));
    }
    if let Some((rss, hwm)) = used.server_mem {
        r.add("server_rss_mb", format!("{rss:.1}"));
        r.add("server_peak_rss_mb", format!("{hwm:.1}"));
    }
    r.add("tool_cpu_s", format!("{:.2}", used.tool_s));
    r.add("tool_cpu_util", format!("{:.2}", used.tool_s / elapsed));
}

// ---------------------------------------------------------------------------------------
// Request/reply
// ---------------------------------------------------------------------------------------

/// Answers every request on `svc` with its own payload, one write per read batch.
async fn responder(mut stream: TcpStream, mut reader: Reader) -> Result<()> {
    let mut out = Vec::with_capacity(64 * 1024);
    let mut len = itoa::Buffer::new();
    loop {
        reader.fill(&mut stream).await?;
        while let Some((ev, used)) = parse(reader.data())? {
            match ev {
                Event::Msg {
                    reply: Some(reply),
                    payload,
                    ..
                } => {
                    out.extend_from_slice(b"PUB ");
                    out.extend_from_slice(reply);
                    out.push(b' ');
                    out.extend_from_slice(len.format(payload.len()).as_bytes());
                    out.extend_from_slice(b"\r\n");
                    out.extend_from_slice(payload);
                    out.extend_from_slice(b"\r\n");
                }
                Event::Ping => out.extend_from_slice(PONG),
                Event::Err(e) => bail!("server sent {}", lossy(e)),
                Event::Msg { reply: None, .. } | Event::Pong | Event::Ok | Event::Info => {}
            }
            reader.consume(used);
        }
        if !out.is_empty() {
            stream.write_all(&out).await?;
            out.clear();
        }
    }
}

struct Requester {
    stream: TcpStream,
    reader: Reader,
    /// `PUB <subject> ` of every request.
    head: Vec<u8>,
    req: Vec<u8>,
    expect: Vec<u8>,
    payload: Vec<u8>,
    pongs_owed: usize,
}

impl Requester {
    /// Sends request `i` and waits for its reply (messages for other inboxes are ignored).
    /// Returns whether the reply's payload contains `"error"` (a JetStream error response).
    async fn request(&mut self, i: u64) -> Result<bool> {
        let mut num = itoa::Buffer::new();
        let id = num.format(i);
        self.expect.clear();
        self.expect.extend_from_slice(INBOX_PREFIX);
        self.expect.extend_from_slice(id.as_bytes());
        self.req.clear();
        for _ in 0..std::mem::take(&mut self.pongs_owed) {
            self.req.extend_from_slice(PONG);
        }
        self.req.extend_from_slice(&self.head);
        self.req.extend_from_slice(&self.expect);
        self.req.push(b' ');
        self.req
            .extend_from_slice(num.format(self.payload.len()).as_bytes());
        self.req.extend_from_slice(b"\r\n");
        self.req.extend_from_slice(&self.payload);
        self.req.extend_from_slice(b"\r\n");
        self.stream.write_all(&self.req).await?;
        loop {
            while let Some((ev, used)) = parse(self.reader.data())? {
                let (matched, error) = match ev {
                    Event::Msg {
                        subject, payload, ..
                    } if subject == self.expect.as_slice() => (true, is_js_error(payload)),
                    Event::Msg { .. } => (false, false),
                    Event::Ping => {
                        self.pongs_owed += 1;
                        (false, false)
                    }
                    Event::Err(e) => bail!("server sent {}", lossy(e)),
                    Event::Pong | Event::Ok | Event::Info => (false, false),
                };
                self.reader.consume(used);
                if matched {
                    return Ok(error);
                }
            }
            self.reader.fill(&mut self.stream).await?;
        }
    }
}

fn percentile(sorted: &[u64], q: f64) -> f64 {
    let rank = ((q * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len());
    sorted[rank - 1] as f64 / 1e3
}

async fn run_reqrep(a: &Args, tck: u64) -> Result<Report> {
    let n = a.msgs.unwrap_or(20_000);
    let (mut rs, mut rr) = connect(&a.server).await?;
    sync_ops(&mut rs, &mut rr, b"SUB svc 1\r\n").await?;
    let mut responder = tokio::spawn(responder(rs, rr));

    let (mut stream, mut reader) = connect(&a.server).await?;
    let mut sub = b"SUB ".to_vec();
    sub.extend_from_slice(INBOX_PREFIX);
    sub.extend_from_slice(b"* 1\r\n");
    sync_ops(&mut stream, &mut reader, &sub).await?;
    let mut q = Requester {
        stream,
        reader,
        head: b"PUB svc ".to_vec(),
        req: Vec::with_capacity(a.size + 128),
        expect: Vec::with_capacity(64),
        payload: vec![b'x'; a.size],
        pongs_owed: 0,
    };

    let deadline = tokio::time::Instant::now() + a.timeout;
    let mut lat: Vec<u64> = Vec::with_capacity(usize::try_from(n).unwrap_or(0));
    let mut cpu: Option<CpuMeter> = None;
    let mut start = Instant::now();
    let work = async {
        for i in 0..a.warmup {
            q.request(i).await.context("warm-up request")?;
        }
        cpu = Some(CpuMeter::start(a.server_pid, tck)?);
        start = Instant::now();
        for i in 0..n {
            let t0 = Instant::now();
            q.request(a.warmup + i).await.context("requester")?;
            lat.push(t0.elapsed().as_nanos() as u64);
        }
        Ok::<_, anyhow::Error>(())
    };
    tokio::select! {
        r = work => r?,
        r = &mut responder => match r {
            Ok(Err(e)) => return Err(e.context("responder")),
            Ok(Ok(())) => bail!("responder ended"),
            Err(e) => bail!("responder task failed: {e}"),
        },
        _ = tokio::time::sleep_until(deadline) => bail!(
            "timeout after {:?}: {} of {n} requests answered", a.timeout, lat.len()
        ),
    }
    let elapsed = start.elapsed().as_secs_f64();
    let used = cpu
        .as_ref()
        .map(CpuMeter::stop)
        .context("cpu meter not started")??;
    responder.abort();

    lat.sort_unstable();
    let mean = lat.iter().sum::<u64>() as f64 / lat.len() as f64 / 1e3;
    let mut r = Report::new(a.scenario);
    r.add("msgs", n);
    r.add("size", a.size);
    r.add("elapsed_s", format!("{elapsed:.4}"));
    r.add("req_per_sec", format!("{:.0}", n as f64 / elapsed));
    // Each request is two deliveries: the request to the responder and the reply back.
    r.add(
        "delivered_per_sec",
        format!("{:.0}", 2.0 * n as f64 / elapsed),
    );
    r.add("mean_us", format!("{mean:.1}"));
    r.add("p50_us", format!("{:.1}", percentile(&lat, 0.50)));
    r.add("p90_us", format!("{:.1}", percentile(&lat, 0.90)));
    r.add("p99_us", format!("{:.1}", percentile(&lat, 0.99)));
    r.add("p999_us", format!("{:.1}", percentile(&lat, 0.999)));
    r.add("max_us", format!("{:.1}", percentile(&lat, 1.0)));
    add_cpu(&mut r, &used, 2 * n, elapsed);
    if let Some(s) = used.server_s {
        r.add("cpu_ns_per_req", format!("{:.0}", s * 1e9 / n as f64));
    }
    Ok(r)
}

// ---------------------------------------------------------------------------------------
// JetStream publish: js-pub-sync, js-pub-async
// ---------------------------------------------------------------------------------------

const JS_STREAM_CREATE: &[u8] = b"$JS.API.STREAM.CREATE.BENCH";
const JS_STREAM_CONFIG: &[u8] = br#"{"name":"BENCH","subjects":["bench.>"],"storage":"file"}"#;
const JS_SUBJECT: &[u8] = b"bench.x";

/// A JetStream API response or PubAck that reports an error.
fn is_js_error(payload: &[u8]) -> bool {
    memchr::memmem::find(payload, b"\"error\"").is_some()
}

/// Connects and subscribes to `_INBOX.petrelload.*` (every reply of this connection).
async fn js_connect(addr: &str) -> Result<(TcpStream, Reader)> {
    let (mut stream, mut reader) = connect(addr).await?;
    let mut sub = b"SUB ".to_vec();
    sub.extend_from_slice(INBOX_PREFIX);
    sub.extend_from_slice(b"* 1\r\n");
    sync_ops(&mut stream, &mut reader, &sub).await?;
    Ok((stream, reader))
}

/// Creates the file stream `BENCH` on `bench.>` with a raw API request and checks the
/// response (the caller's connection must be subscribed to `_INBOX.petrelload.*`).
async fn js_create_stream(stream: &mut TcpStream, reader: &mut Reader) -> Result<()> {
    let inbox = [INBOX_PREFIX, b"create"].concat();
    let mut req = b"PUB ".to_vec();
    req.extend_from_slice(JS_STREAM_CREATE);
    req.push(b' ');
    req.extend_from_slice(&inbox);
    req.extend_from_slice(format!(" {}\r\n", JS_STREAM_CONFIG.len()).as_bytes());
    req.extend_from_slice(JS_STREAM_CONFIG);
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
                    if is_js_error(body.as_bytes()) {
                        bail!("stream create failed: {body}");
                    }
                    return Ok(());
                }
            }
            reader.fill(stream).await?;
        }
    };
    tokio::time::timeout(Duration::from_secs(10), work)
        .await
        .map_err(|_| anyhow!("no response to the stream create request within 10 s"))?
}

/// One publisher, each `PUB bench.x <inbox> <size>` waits for its PubAck before the next.
async fn run_js_sync(a: &Args, tck: u64) -> Result<Report> {
    let n = a.msgs.unwrap_or(20_000);
    let (mut stream, mut reader) = js_connect(&a.server).await?;
    js_create_stream(&mut stream, &mut reader).await?;
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

    lat.sort_unstable();
    let mean = lat.iter().sum::<u64>() as f64 / lat.len() as f64 / 1e3;
    let mut r = Report::new(a.scenario);
    r.add("msgs", n);
    r.add("size", a.size);
    r.add("ack_errors", errors);
    r.add("elapsed_s", format!("{elapsed:.4}"));
    r.add("acked_per_sec", format!("{:.0}", n as f64 / elapsed));
    r.add("mean_us", format!("{mean:.1}"));
    r.add("p50_us", format!("{:.1}", percentile(&lat, 0.50)));
    r.add("p90_us", format!("{:.1}", percentile(&lat, 0.90)));
    r.add("p99_us", format!("{:.1}", percentile(&lat, 0.99)));
    r.add("p999_us", format!("{:.1}", percentile(&lat, 0.999)));
    r.add("max_us", format!("{:.1}", percentile(&lat, 1.0)));
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

/// One publisher with at most `--inflight` publishes without their PubAck; each publish has
/// its own reply subject `_INBOX.petrelload.<i>` under the connection's wildcard inbox.
async fn run_js_async(a: &Args, tck: u64) -> Result<Report> {
    let n = a.msgs.unwrap_or(200_000);
    let count = usize::try_from(n).context("--msgs too large")?;
    let (mut stream, mut reader) = js_connect(&a.server).await?;
    js_create_stream(&mut stream, &mut reader).await?;

    let (mut rd, mut wr) = stream.into_split();
    let permits = Arc::new(Semaphore::new(a.inflight));
    let owed = Arc::new(AtomicUsize::new(0));
    let sent_at: Arc<Vec<OnceLock<Instant>>> =
        Arc::new((0..count).map(|_| OnceLock::new()).collect());
    let state = Arc::new(std::sync::Mutex::new(AckState {
        acked: vec![false; count],
        count: 0,
        errors: 0,
        first_error: None,
        lat: Vec::with_capacity(count),
    }));
    let all_acked = Arc::new(Notify::new());
    let cpu = CpuMeter::start(a.server_pid, tck)?;
    let start = Instant::now();
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

    let payload = vec![b'x'; a.size];
    let lost = || anyhow!("publisher connection lost");
    let writer = async {
        let mut buf: Vec<u8> = Vec::with_capacity(a.batch + a.size + 128);
        let mut num = itoa::Buffer::new();
        let mut len = itoa::Buffer::new();
        let size = len.format(a.size).to_owned();
        // Bytes of one PUB (an upper bound: the id has at most 20 digits).
        let per_pub =
            (4 + JS_SUBJECT.len() + 1 + INBOX_PREFIX.len() + 20 + 1 + size.len() + 2 + a.size + 2)
                as u64;
        let mut next = 0u64;
        while next < n {
            // Wait for one free slot, then take every other free one (one write for all).
            permits.acquire().await.map_err(|_| lost())?.forget();
            let mut take = 1u64;
            while next + take < n && take * per_pub < a.batch as u64 {
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
                buf.extend_from_slice(JS_SUBJECT);
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
    let deadline = tokio::time::Instant::from_std(start + a.timeout);
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
            bail!("timeout after {:?}: {c} of {n} PubAcks ({errs} errors)", a.timeout)
        }
    }
    let elapsed = start.elapsed().as_secs_f64();
    let used = cpu.stop()?;
    acks.abort();

    let mut st = state.lock().map_err(|_| anyhow!("ack state poisoned"))?;
    let errors = st.errors;
    let first_error = st.first_error.take();
    let mut lat = std::mem::take(&mut st.lat);
    drop(st);
    lat.sort_unstable();
    let mut r = Report::new(a.scenario);
    r.add("msgs", n);
    r.add("size", a.size);
    r.add("inflight", a.inflight);
    r.add("ack_errors", errors);
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
    if let Some(e) = first_error {
        eprintln!("petrel-load: first error PubAck: {e}");
        let token: String = e
            .chars()
            .map(|c| if c.is_whitespace() { '_' } else { c })
            .collect();
        r.add("first_ack_error", token);
    }
    Ok(r)
}

// ---------------------------------------------------------------------------------------

async fn run(a: &Args) -> Result<Report> {
    let tck = clk_tck();
    // Setup (connects, subscriptions) gets a few seconds on top of the measured phase.
    let budget = a.timeout + Duration::from_secs(10);
    let fut = async {
        match a.scenario {
            Scenario::ReqRep => run_reqrep(a, tck).await,
            Scenario::JsPubSync => run_js_sync(a, tck).await,
            Scenario::JsPubAsync => run_js_async(a, tck).await,
            _ => run_throughput(a, tck).await,
        }
    };
    tokio::time::timeout(budget, fut)
        .await
        .map_err(|_| anyhow!("run did not finish within {budget:?}"))?
}

fn main() -> ExitCode {
    let args = match Args::parse(std::env::args().skip(1)) {
        Ok(Some(a)) => a,
        Ok(None) => {
            println!("{USAGE}");
            return ExitCode::SUCCESS;
        }
        Err(e) => {
            eprintln!("petrel-load: {e:#}\n\n{USAGE}");
            return ExitCode::from(2);
        }
    };
    let rt = if args.threads <= 1 {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
    } else {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(args.threads)
            .enable_all()
            .build()
    };
    let rt = match rt {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("petrel-load: starting the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let res = rt.block_on(run(&args));
    rt.shutdown_timeout(Duration::from_millis(100));
    match res {
        Ok(report) => {
            report.print();
            ExitCode::SUCCESS
        }
        Err(e) => {
            let msg = format!("{e:#}");
            eprintln!("petrel-load: {}: {msg}", args.scenario.name());
            let token: String = msg
                .chars()
                .map(|c| if c.is_whitespace() { '_' } else { c })
                .collect();
            println!(
                "RESULT scenario={} status=failed error={token}",
                args.scenario.name()
            );
            ExitCode::FAILURE
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_msg_hmsg_and_control_ops() -> Result<()> {
        let data = b"MSG a.b 1 5\r\nhello\r\nMSG a 2 _INBOX.x 0\r\n\r\nHMSG s 3 12 14\r\nNATS/1.0\r\n\r\nhi\r\nPING\r\n-ERR 'x'\r\n";
        let mut at = 0;
        let mut seen = Vec::new();
        while let Some((ev, used)) = parse(&data[at..])? {
            seen.push(format!("{ev:?}"));
            at += used;
        }
        assert_eq!(at, data.len());
        assert_eq!(seen.len(), 5);
        assert!(seen[1].contains("reply: Some([95"), "{}", seen[1]);
        assert!(seen[4].starts_with("Err"));
        Ok(())
    }

    #[test]
    fn incomplete_input_waits() -> Result<()> {
        assert!(parse(b"MSG a 1 5\r\nhel")?.is_none());
        assert!(parse(b"MSG a 1 5\r\nhello\r")?.is_none());
        assert!(parse(b"PIN")?.is_none());
        assert!(parse(b"MSG a 1 5\r\nhelloXX").is_err());
        assert!(parse(b"MSG a 1\r\n").is_err());
        Ok(())
    }

    #[test]
    fn percentiles() {
        let v: Vec<u64> = (1..=100).map(|i| i * 1000).collect();
        assert_eq!(percentile(&v, 0.5), 50.0);
        assert_eq!(percentile(&v, 0.99), 99.0);
        assert_eq!(percentile(&v, 1.0), 100.0);
    }
}
