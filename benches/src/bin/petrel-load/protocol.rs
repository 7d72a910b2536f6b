//! NATS text protocol on the client side: the reused read buffer, the server-op parser
//! (`MSG`/`HMSG`/`PING`/...), and the connect / PING-PONG sync helpers shared by every
//! scenario.

use anyhow::{bail, Context, Result};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// Control lines longer than this are a protocol error (nats-server's default is 4 KiB).
const MAX_LINE: usize = 64 * 1024;
const READ_BUF: usize = 1 << 20;
const CONNECT: &[u8] =
    b"CONNECT {\"verbose\":false,\"pedantic\":false,\"headers\":true,\"name\":\"petrel-load\"}\r\nPING\r\n";
pub(crate) const PING: &[u8] = b"PING\r\n";
pub(crate) const PONG: &[u8] = b"PONG\r\n";
pub(crate) const INBOX_PREFIX: &[u8] = b"_INBOX.petrelload.";

/// A reused read buffer: bytes `start..end` are received and not yet parsed.
pub(crate) struct Reader {
    buf: Vec<u8>,
    start: usize,
    end: usize,
}

impl Reader {
    pub(crate) fn new() -> Self {
        Self {
            buf: vec![0; READ_BUF],
            start: 0,
            end: 0,
        }
    }

    pub(crate) fn data(&self) -> &[u8] {
        &self.buf[self.start..self.end]
    }

    pub(crate) fn consume(&mut self, n: usize) {
        self.start += n;
    }

    /// One read from `r` into the free tail (compacting or growing first). EOF is an error:
    /// the server never closes a healthy connection during a run.
    pub(crate) async fn fill<R: AsyncRead + Unpin>(&mut self, r: &mut R) -> Result<usize> {
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
pub(crate) enum Event<'a> {
    Msg {
        subject: &'a [u8],
        /// The subscription the message was delivered to.
        sid: &'a [u8],
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
pub(crate) fn parse(data: &[u8]) -> Result<Option<(Event<'_>, usize)>> {
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
            sid: f[1],
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

pub(crate) fn lossy(b: &[u8]) -> String {
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
pub(crate) async fn connect(addr: &str) -> Result<(TcpStream, Reader)> {
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
pub(crate) async fn sync_ops(
    stream: &mut TcpStream,
    reader: &mut Reader,
    ops: &[u8],
) -> Result<()> {
    let mut buf = ops.to_vec();
    buf.extend_from_slice(PING);
    stream.write_all(&buf).await?;
    wait_pong(stream, reader).await
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
}
