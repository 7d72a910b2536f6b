//! A raw-protocol client for byte-exact tests: send bytes, expect bytes.

use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// How long `expect*` waits before failing the test.
const EXPECT_TIMEOUT: Duration = Duration::from_secs(5);

/// A TCP connection speaking raw NATS protocol.
pub struct RawClient {
    stream: TcpStream,
    buf: Vec<u8>,
    /// The server's INFO line (its JSON).
    info: String,
}

impl RawClient {
    /// Connect and read the server's `INFO` line.
    pub async fn connect(addr: std::net::SocketAddr) -> RawClient {
        let stream = TcpStream::connect(addr).await.expect("connect to server");
        let mut c = RawClient {
            stream,
            buf: Vec::new(),
            info: String::new(),
        };
        let info = c.read_line().await;
        assert!(info.starts_with("INFO {"), "expected INFO, got {info:?}");
        c.info = info["INFO ".len()..].to_string();
        c
    }

    /// The server's INFO, parsed.
    pub fn info(&self) -> serde_json::Value {
        serde_json::from_str(&self.info).expect("INFO is JSON")
    }

    /// Connect, read INFO, and send `CONNECT {connect_json}` followed by `PING`, waiting
    /// for the `PONG`.
    pub async fn connect_with(addr: std::net::SocketAddr, connect_json: &str) -> RawClient {
        let mut c = Self::connect(addr).await;
        c.send(format!("CONNECT {connect_json}\r\nPING\r\n").as_bytes())
            .await;
        c.expect(b"PONG\r\n").await;
        c
    }

    /// Send raw bytes.
    pub async fn send(&mut self, bytes: &[u8]) {
        self.stream.write_all(bytes).await.expect("write to server");
    }

    async fn fill(&mut self) -> usize {
        let mut chunk = [0u8; 65536];
        let n = tokio::time::timeout(EXPECT_TIMEOUT, self.stream.read(&mut chunk))
            .await
            .unwrap_or_else(|_| {
                panic!(
                    "timed out; received so far: {:?}",
                    String::from_utf8_lossy(&self.buf)
                )
            })
            .unwrap_or(0);
        self.buf.extend_from_slice(&chunk[..n]);
        n
    }

    /// Read until exactly `want` has arrived at the front of the stream; fail otherwise.
    pub async fn expect(&mut self, want: &[u8]) {
        while self.buf.len() < want.len() {
            if self.fill().await == 0 {
                break;
            }
        }
        let n = want.len().min(self.buf.len());
        assert_eq!(
            String::from_utf8_lossy(&self.buf[..n]),
            String::from_utf8_lossy(want),
            "unexpected bytes from server"
        );
        assert!(self.buf.len() >= want.len(), "connection closed early");
        self.buf.drain(..want.len());
    }

    /// Read one line (without CRLF).
    pub async fn read_line(&mut self) -> String {
        loop {
            if let Some(pos) = self.buf.windows(2).position(|w| w == b"\r\n") {
                let line = String::from_utf8_lossy(&self.buf[..pos]).into_owned();
                self.buf.drain(..pos + 2);
                return line;
            }
            if self.fill().await == 0 {
                panic!(
                    "connection closed; pending: {:?}",
                    String::from_utf8_lossy(&self.buf)
                );
            }
        }
    }

    /// Expect the server to close the connection with nothing more sent.
    pub async fn expect_closed(&mut self) {
        loop {
            if !self.buf.is_empty() {
                panic!(
                    "expected close, got {:?}",
                    String::from_utf8_lossy(&self.buf)
                );
            }
            if self.fill().await == 0 {
                return;
            }
        }
    }

    /// Read everything until the server closes the connection (within 10 s).
    pub async fn read_until_closed(&mut self) -> Vec<u8> {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        let mut chunk = vec![0u8; 65536];
        loop {
            match tokio::time::timeout_at(deadline, self.stream.read(&mut chunk)).await {
                Err(_) => panic!("connection not closed within 10 s"),
                Ok(Ok(0)) | Ok(Err(_)) => return std::mem::take(&mut self.buf),
                Ok(Ok(n)) => self.buf.extend_from_slice(&chunk[..n]),
            }
        }
    }

    /// Read everything until the server closes the connection or `d` passes, whichever
    /// comes first (for tests that only care about what the server logs).
    pub async fn read_until_closed_or(&mut self, d: Duration) -> Vec<u8> {
        let deadline = tokio::time::Instant::now() + d;
        let mut chunk = vec![0u8; 65536];
        while let Ok(Ok(n)) = tokio::time::timeout_at(deadline, self.stream.read(&mut chunk)).await
        {
            if n == 0 {
                break;
            }
            self.buf.extend_from_slice(&chunk[..n]);
        }
        std::mem::take(&mut self.buf)
    }

    /// Expect nothing to arrive within `d` (the connection stays open and quiet).
    pub async fn expect_nothing(&mut self, d: Duration) {
        let mut chunk = [0u8; 1024];
        match tokio::time::timeout(d, self.stream.read(&mut chunk)).await {
            Err(_) => assert!(
                self.buf.is_empty(),
                "unexpected {:?}",
                String::from_utf8_lossy(&self.buf)
            ),
            Ok(Ok(0)) => panic!("connection closed"),
            Ok(Ok(n)) => panic!("unexpected {:?}", String::from_utf8_lossy(&chunk[..n])),
            Ok(Err(e)) => panic!("read error {e}"),
        }
    }

    /// Everything received so far and not yet consumed.
    pub fn buffered(&self) -> &[u8] {
        &self.buf
    }

    /// The underlying stream (to shut down or drop a half).
    pub fn stream(&mut self) -> &mut TcpStream {
        &mut self.stream
    }
}
