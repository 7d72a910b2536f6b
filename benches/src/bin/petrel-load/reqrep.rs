//! Request/reply scenario `reqrep`: an echoing responder and the one-at-a-time `Requester`
//! (also used by `js-pub-sync`), with latency percentiles.

use std::time::Instant;

use anyhow::{bail, Context, Result};
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;

use crate::args::Args;
use crate::jetstream::is_js_error;
use crate::protocol::{connect, lossy, parse, sync_ops, Event, Reader, INBOX_PREFIX, PONG};
use crate::stats::{add_cpu, add_latency, CpuMeter, Report};

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

pub(crate) struct Requester {
    pub(crate) stream: TcpStream,
    pub(crate) reader: Reader,
    /// `PUB <subject> ` of every request.
    pub(crate) head: Vec<u8>,
    pub(crate) req: Vec<u8>,
    pub(crate) expect: Vec<u8>,
    pub(crate) payload: Vec<u8>,
    pub(crate) pongs_owed: usize,
}

impl Requester {
    /// Sends request `i` and waits for its reply (messages for other inboxes are ignored).
    /// Returns whether the reply's payload contains `"error"` (a JetStream error response).
    pub(crate) async fn request(&mut self, i: u64) -> Result<bool> {
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

pub(crate) async fn run_reqrep(a: &Args, tck: u64) -> Result<Report> {
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
    add_latency(&mut r, &mut lat);
    add_cpu(&mut r, &used, 2 * n, elapsed);
    if let Some(s) = used.server_s {
        r.add("cpu_ns_per_req", format!("{:.0}", s * 1e9 / n as f64));
    }
    Ok(r)
}
