//! JetStream consume scenario `js-consume`: a file stream prefilled (untimed) by the async
//! publisher of `js-pub-async`, a durable pull consumer created over the raw `$JS.API`, and
//! the timed loop of pull requests, deliveries and batched `+ACK`s, checked at the end with
//! `CONSUMER.INFO` until no ack is pending.

use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context, Result};
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;

use crate::args::Args;
use crate::jetstream::{is_js_error, js_api, js_connect, AsyncPublisher};
use crate::protocol::{lossy, parse, sync_ops, Event, Reader, PING, PONG};
use crate::stats::{add_cpu, token, CpuMeter, Report};

const STREAM_DELETE: &[u8] = b"$JS.API.STREAM.DELETE.BENCH_CONSUME";
const STREAM_CREATE: &[u8] = b"$JS.API.STREAM.CREATE.BENCH_CONSUME";
/// Not under `bench.>`: nats-server refuses streams with overlapping subjects, and the
/// js-pub-* stream `BENCH` may exist on the same server.
const STREAM_CONFIG: &[u8] =
    br#"{"name":"BENCH_CONSUME","subjects":["bench_consume.>"],"storage":"file"}"#;
const SUBJECT: &[u8] = b"bench_consume.x";
const CONSUMER_CREATE: &[u8] = b"$JS.API.CONSUMER.CREATE.BENCH_CONSUME.bench";
const CONSUMER_INFO: &[u8] = b"$JS.API.CONSUMER.INFO.BENCH_CONSUME.bench";
const PULL_NEXT: &[u8] = b"$JS.API.CONSUMER.MSG.NEXT.BENCH_CONSUME.bench";
/// Pull requests kept outstanding, so the server has one to fill while the tool acks the
/// deliveries of the other.
const PULLS: usize = 2;
/// Reply subject of the pull requests of slot `k`: `_INBOX.petrelload.pull.<k>` (not
/// matched by the connection's `_INBOX.petrelload.*`), subscribed with sid `PULL_SID + k`.
/// Deliveries keep the stream subject in their `MSG` line: only the sid tells which request
/// they belong to.
const PULL_INBOX: &[u8] = b"_INBOX.petrelload.pull.";
const PULL_SID: usize = 100;
/// `expires` of every pull request; an expired request (status 408) is replaced.
const PULL_EXPIRES: Duration = Duration::from_secs(5);
/// How long the final `CONSUMER.INFO` polls wait for `num_ack_pending` to reach 0.
const SETTLE: Duration = Duration::from_secs(5);
const SETTLE_POLL: Duration = Duration::from_millis(50);

/// The first number after `"key":` in a JSON text (enough for the flat counters of a
/// consumer info response; `key` must be unique in it).
fn json_u64(body: &str, key: &str) -> Option<u64> {
    let pat = format!("\"{key}\":");
    let at = body.find(&pat)? + pat.len();
    let rest = body[at..].trim_start();
    let end = rest
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(rest.len());
    rest[..end].parse().ok()
}

/// Delivery count and stream sequence from a delivery's reply subject:
/// `$JS.ACK.<stream>.<consumer>.<delivered>.<sseq>.<dseq>.<ts>.<pending>` or the 2.10 form
/// with domain and account hash in front of the stream (11 or more tokens).
fn parse_ack_subject(subject: &[u8]) -> Option<(u64, u64)> {
    let rest = subject.strip_prefix(b"$JS.ACK.")?;
    let tokens: Vec<&[u8]> = rest.split(|&b| b == b'.').collect();
    let at = match tokens.len() + 2 {
        9 => 2,
        n if n >= 11 => 4,
        _ => return None,
    };
    let num = |t: &[u8]| std::str::from_utf8(t).ok()?.parse::<u64>().ok();
    Some((num(tokens[at])?, num(tokens[at + 1])?))
}

/// The status code of a JetStream status message (`NATS/1.0 408 Request Timeout` header
/// block, no payload), `None` for a message.
fn status_code(payload: &[u8]) -> Option<&[u8]> {
    let code = payload.strip_prefix(b"NATS/1.0 ")?.get(..3)?;
    code.iter().all(u8::is_ascii_digit).then_some(code)
}

/// Progress of the timed phase.
struct Consume {
    /// Messages to receive: the stream's sequences 1..=n.
    n: u64,
    batch: u64,
    /// Which stream sequences have been received (index 0 unused).
    seen: Vec<bool>,
    received: u64,
    bytes: u64,
    /// Deliveries of a sequence received before (acked again, not counted).
    redelivered: u64,
    /// Per pull slot, how many messages its request in flight may still bring (0: free).
    left: [u64; PULLS],
    pulls: u64,
    /// 408 (request expired) statuses, and every other status ending a request.
    expired: u64,
    other_status: u64,
    first_status: Option<String>,
}

impl Consume {
    /// Appends a pull request to `out` for every free slot while the requests in flight do
    /// not cover every message still missing.
    fn top_up(&mut self, out: &mut Vec<u8>) {
        let mut num = itoa::Buffer::new();
        for slot in 0..PULLS {
            if self.left[slot] > 0 {
                continue;
            }
            let covered: u64 = self.left.iter().sum();
            let want = self.n.saturating_sub(self.received + covered);
            if want == 0 {
                return;
            }
            let batch = want.min(self.batch);
            let body = format!(
                "{{\"batch\":{batch},\"expires\":{}}}",
                PULL_EXPIRES.as_nanos()
            );
            out.extend_from_slice(b"PUB ");
            out.extend_from_slice(PULL_NEXT);
            out.push(b' ');
            out.extend_from_slice(PULL_INBOX);
            out.extend_from_slice(num.format(slot).as_bytes());
            out.push(b' ');
            out.extend_from_slice(num.format(body.len()).as_bytes());
            out.extend_from_slice(b"\r\n");
            out.extend_from_slice(body.as_bytes());
            out.extend_from_slice(b"\r\n");
            self.left[slot] = batch;
            self.pulls += 1;
        }
    }

    /// One message on a pull slot's subscription: a delivery is acked into `out` (`+ACK` to
    /// its reply subject) and counted; a status ends the slot's request (408, 404, 409) or
    /// is skipped (100).
    fn on_msg(
        &mut self,
        subject: &[u8],
        sid: &[u8],
        reply: Option<&[u8]>,
        payload: &[u8],
        out: &mut Vec<u8>,
    ) -> Result<()> {
        let slot = std::str::from_utf8(sid)
            .ok()
            .and_then(|d| d.parse::<usize>().ok())
            .and_then(|d| d.checked_sub(PULL_SID))
            .filter(|&d| d < PULLS)
            .with_context(|| {
                format!(
                    "unexpected message on {} (sid {})",
                    lossy(subject),
                    lossy(sid)
                )
            })?;
        if let Some(code) = status_code(payload) {
            if code == b"100" {
                return Ok(());
            }
            if code == b"408" {
                self.expired += 1;
            } else {
                self.other_status += 1;
                if self.first_status.is_none() {
                    let line = payload.split(|&b| b == b'\r').next().unwrap_or(payload);
                    self.first_status = Some(lossy(line));
                }
            }
            self.left[slot] = 0;
            return Ok(());
        }
        let reply =
            reply.with_context(|| format!("delivery on {} without reply", lossy(subject)))?;
        let (_, seq) = parse_ack_subject(reply)
            .with_context(|| format!("unexpected ack subject {}", lossy(reply)))?;
        out.extend_from_slice(b"PUB ");
        out.extend_from_slice(reply);
        out.extend_from_slice(b" 4\r\n+ACK\r\n");
        self.left[slot] = self.left[slot].saturating_sub(1);
        let seen = usize::try_from(seq)
            .ok()
            .filter(|&s| s >= 1)
            .and_then(|s| self.seen.get_mut(s))
            .with_context(|| format!("stream sequence {seq} outside 1..={}", self.n))?;
        if *seen {
            self.redelivered += 1;
        } else {
            *seen = true;
            self.received += 1;
            self.bytes += payload.len() as u64;
        }
        Ok(())
    }
}

/// Pulls, acks and counts until every message is in, then sends the last acks with a PING
/// and waits for its PONG (the server has read every ack). Returns that instant.
async fn consume(stream: &mut TcpStream, reader: &mut Reader, st: &mut Consume) -> Result<Instant> {
    let mut out: Vec<u8> = Vec::with_capacity(64 * 1024);
    st.top_up(&mut out);
    stream.write_all(&out).await?;
    out.clear();
    while st.received < st.n {
        reader.fill(stream).await?;
        while let Some((ev, used)) = parse(reader.data())? {
            match ev {
                Event::Msg {
                    subject,
                    sid,
                    reply,
                    payload,
                } => st.on_msg(subject, sid, reply, payload, &mut out)?,
                Event::Ping => out.extend_from_slice(PONG),
                Event::Err(e) => bail!("server sent {}", lossy(e)),
                Event::Pong | Event::Ok | Event::Info => {}
            }
            reader.consume(used);
        }
        st.top_up(&mut out);
        if !out.is_empty() {
            stream.write_all(&out).await?;
            out.clear();
        }
    }
    stream.write_all(PING).await?;
    loop {
        while let Some((ev, used)) = parse(reader.data())? {
            let pong = match ev {
                Event::Pong => true,
                Event::Ping => {
                    out.extend_from_slice(PONG);
                    false
                }
                Event::Msg {
                    subject,
                    sid,
                    reply,
                    payload,
                } => {
                    st.on_msg(subject, sid, reply, payload, &mut out)?;
                    false
                }
                Event::Err(e) => bail!("server sent {}", lossy(e)),
                Event::Ok | Event::Info => false,
            };
            reader.consume(used);
            if pong {
                return Ok(Instant::now());
            }
        }
        if !out.is_empty() {
            stream.write_all(&out).await?;
            out.clear();
        }
        reader.fill(stream).await?;
    }
}

/// Polls `CONSUMER.INFO` until `num_ack_pending` is 0 or `SETTLE` has passed; returns the
/// last `num_ack_pending` and `num_pending`.
async fn settle(stream: &mut TcpStream, reader: &mut Reader) -> Result<(u64, u64)> {
    let until = Instant::now() + SETTLE;
    loop {
        let body = js_api(stream, reader, CONSUMER_INFO, b"", b"info").await?;
        if is_js_error(body.as_bytes()) {
            bail!("consumer info failed: {body}");
        }
        let ack_pending = json_u64(&body, "num_ack_pending")
            .with_context(|| format!("no num_ack_pending in consumer info: {body}"))?;
        let pending = json_u64(&body, "num_pending").unwrap_or(0);
        if ack_pending == 0 || Instant::now() >= until {
            return Ok((ack_pending, pending));
        }
        tokio::time::sleep(SETTLE_POLL).await;
    }
}

/// Deletes and recreates the stream `BENCH_CONSUME`, prefills it with `--msgs` messages
/// (async publishes on a second connection, untimed), creates the durable pull consumer
/// `bench`, then times pulling and acking every message.
pub(crate) async fn run_js_consume(a: &Args, tck: u64) -> Result<Report> {
    let n = a.msgs.unwrap_or(200_000);
    let batch = a.pull_batch() as u64;
    let (mut stream, mut reader) = js_connect(&a.server).await?;
    let body = js_api(&mut stream, &mut reader, STREAM_DELETE, b"", b"delete").await?;
    // "stream not found" (404, err_code 10059) is fine: nothing to delete.
    if is_js_error(body.as_bytes()) && !body.contains("\"code\":404") {
        bail!("stream delete failed: {body}");
    }
    let body = js_api(
        &mut stream,
        &mut reader,
        STREAM_CREATE,
        STREAM_CONFIG,
        b"create",
    )
    .await?;
    if is_js_error(body.as_bytes()) {
        bail!("stream create failed: {body}");
    }

    let (pstream, preader) = js_connect(&a.server).await?;
    let prefill_start = Instant::now();
    let out = AsyncPublisher::new(pstream, preader, n, a.inflight)?
        .run(SUBJECT, a.size, a.batch_bytes(), a.timeout)
        .await
        .context("prefill")?;
    let prefill_s = out.done_at.duration_since(prefill_start).as_secs_f64();
    if out.errors > 0 {
        bail!(
            "prefill: {} of {n} PubAcks were errors, first: {}",
            out.errors,
            out.first_error.unwrap_or_default()
        );
    }

    let max_ack_pending = (PULLS as u64 * batch).max(20_000);
    let config = format!(
        "{{\"stream_name\":\"BENCH_CONSUME\",\"config\":{{\"durable_name\":\"bench\",\
         \"name\":\"bench\",\"ack_policy\":\"explicit\",\"deliver_policy\":\"all\",\
         \"max_ack_pending\":{max_ack_pending},\"ack_wait\":30000000000}}}}"
    );
    let body = js_api(
        &mut stream,
        &mut reader,
        CONSUMER_CREATE,
        config.as_bytes(),
        b"consumer",
    )
    .await?;
    if is_js_error(body.as_bytes()) {
        bail!("consumer create failed: {body}");
    }

    let mut subs = Vec::new();
    for slot in 0..PULLS {
        subs.extend_from_slice(b"SUB ");
        subs.extend_from_slice(PULL_INBOX);
        subs.extend_from_slice(format!("{slot} {}\r\n", PULL_SID + slot).as_bytes());
    }
    sync_ops(&mut stream, &mut reader, &subs).await?;

    let count = usize::try_from(n).context("--msgs too large")?;
    let mut st = Consume {
        n,
        batch,
        seen: vec![false; count + 1],
        received: 0,
        bytes: 0,
        redelivered: 0,
        left: [0; PULLS],
        pulls: 0,
        expired: 0,
        other_status: 0,
        first_status: None,
    };
    let cpu = CpuMeter::start(a.server_pid, tck)?;
    let start = Instant::now();
    let deadline = tokio::time::Instant::from_std(start + a.timeout);
    let done_at = tokio::time::timeout_at(deadline, consume(&mut stream, &mut reader, &mut st))
        .await
        .map_err(|_| {
            anyhow!(
                "timeout after {:?}: {} of {n} messages, {} pull requests ({} expired){}",
                a.timeout,
                st.received,
                st.pulls,
                st.expired,
                st.first_status
                    .as_deref()
                    .map(|s| format!(", first status {s:?}"))
                    .unwrap_or_default()
            )
        })?
        .with_context(|| format!("consumer after {} of {n} messages", st.received))?;
    let elapsed = done_at.duration_since(start).as_secs_f64();
    let used = cpu.stop()?;

    let settle_start = Instant::now();
    let (ack_pending, pending) = settle(&mut stream, &mut reader).await?;
    let settle_ms = settle_start.elapsed().as_secs_f64() * 1e3;
    if ack_pending > 0 {
        eprintln!(
            "petrel-load: {ack_pending} acks still pending {settle_ms:.0} ms after the last ack"
        );
    }

    let mut r = Report::new(a.scenario);
    r.add("msgs", n);
    r.add("size", a.size);
    r.add("batch", batch);
    r.add("pulls", PULLS);
    r.add("elapsed_s", format!("{elapsed:.4}"));
    r.add("msgs_per_sec", format!("{:.0}", n as f64 / elapsed));
    r.add(
        "mb_per_sec",
        format!("{:.1}", st.bytes as f64 / elapsed / 1e6),
    );
    r.add("pull_requests", st.pulls);
    r.add("pull_expired", st.expired);
    r.add("pull_other_status", st.other_status);
    r.add("redelivered", st.redelivered);
    r.add("prefill_s", format!("{prefill_s:.3}"));
    add_cpu(&mut r, &used, n, elapsed);
    r.add("ack_pending_end", ack_pending);
    r.add("num_pending_end", pending);
    r.add("ack_settle_ms", format!("{settle_ms:.0}"));
    if let Some(s) = st.first_status {
        r.add("first_status", token(&s));
    }
    Ok(r)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ack_subjects_v1_and_v2() {
        assert_eq!(
            parse_ack_subject(b"$JS.ACK.BENCH_CONSUME.bench.1.42.42.1700000000000000000.7"),
            Some((1, 42))
        );
        assert_eq!(
            parse_ack_subject(b"$JS.ACK.dom.hash.S.c.2.9.8.1700000000000000000.0.rnd"),
            Some((2, 9))
        );
        assert_eq!(parse_ack_subject(b"$JS.ACK.S.c.x.9.8.1.0"), None);
        assert_eq!(parse_ack_subject(b"_INBOX.x"), None);
    }

    #[test]
    fn expired_request_is_replaced_and_redelivery_not_counted() -> Result<()> {
        let mut st = Consume {
            n: 10,
            batch: 4,
            seen: vec![false; 11],
            received: 0,
            bytes: 0,
            redelivered: 0,
            left: [0; PULLS],
            pulls: 0,
            expired: 0,
            other_status: 0,
            first_status: None,
        };
        let mut out = Vec::new();
        st.top_up(&mut out);
        assert_eq!((st.left, st.pulls), ([4, 4], 2));
        let ack = b"$JS.ACK.BENCH_CONSUME.bench.1.1.1.0.9";
        st.on_msg(b"bench_consume.x", b"100", Some(ack), b"xy", &mut out)?;
        st.on_msg(b"bench_consume.x", b"100", Some(ack), b"xy", &mut out)?;
        assert_eq!((st.received, st.redelivered, st.bytes), (1, 1, 2));
        let status = b"NATS/1.0 408 Request Timeout\r\n\r\n";
        st.on_msg(b"_INBOX.petrelload.pull.1", b"101", None, status, &mut out)?;
        assert_eq!((st.left, st.expired), ([2, 0], 1));
        out.clear();
        st.top_up(&mut out);
        // 10 - 1 received - 2 covered by slot 0: a new request for 4 on slot 1.
        assert_eq!((st.left, st.pulls), ([2, 4], 3));
        assert!(out.starts_with(
            b"PUB $JS.API.CONSUMER.MSG.NEXT.BENCH_CONSUME.bench _INBOX.petrelload.pull.1 "
        ));
        assert!(st
            .on_msg(b"bench_consume.x", b"1", Some(ack), b"", &mut out)
            .is_err());
        Ok(())
    }

    #[test]
    fn statuses_and_json_counters() {
        assert_eq!(
            status_code(b"NATS/1.0 408 Request Timeout\r\n\r\n"),
            Some(&b"408"[..])
        );
        assert_eq!(status_code(b"NATS/1.0\r\nX: y\r\n\r\nhi"), None);
        let info = r#"{"num_ack_pending": 3,"num_redelivered":0,"num_pending":12}"#;
        assert_eq!(json_u64(info, "num_ack_pending"), Some(3));
        assert_eq!(json_u64(info, "num_pending"), Some(12));
        assert_eq!(json_u64(info, "num_waiting"), None);
    }
}
