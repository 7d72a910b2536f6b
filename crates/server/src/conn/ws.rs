//! WebSocket clients: the HTTP/1.1 upgrade (done here, so the origin checks can refuse
//! with nats-server's 403 before switching protocols), then the NATS protocol in binary
//! frames through `tokio-websockets`. The frames are turned back into a byte stream
//! ([`WsRead`]) and each vectored write becomes one binary frame ([`WsWrite`]), so the
//! ordinary reader and writer tasks serve the connection.

use std::io::{self, IoSlice};

use bytes::{Bytes, BytesMut};
use futures_util::stream::{SplitSink, SplitStream};
use futures_util::{SinkExt, StreamExt};
use petrel_config::WebSocketOptions;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, BufReader};
use tokio_websockets::{Message, WebSocketStream};

use super::io::{ReadSource, WriteSink};
use crate::client::{Client, CloseReason};
use std::sync::Arc;

/// Largest upgrade request accepted.
const MAX_REQUEST: usize = 8 * 1024;
/// The GUID of RFC 6455's accept key.
const WS_GUID: &str = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11";

/// What the upgrade request told us.
pub(crate) struct Upgrade {
    /// Cookies of the request (`jwt_cookie`).
    pub cookies: Vec<(String, String)>,
    /// The path ends in `/leafnode`: a leafnode, not a client (nats-server's rule).
    pub leaf: bool,
}

/// Reads the HTTP upgrade request from `stream`, checks it (and its origin) as nats-server
/// does and answers `101 Switching Protocols`, or the error status and closes.
pub(crate) async fn handshake<S>(
    stream: &mut BufReader<S>,
    opts: &WebSocketOptions,
    tls: bool,
) -> Result<Upgrade, String>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let head = read_head(stream).await?;
    if !stream.buffer().is_empty() {
        return Err("client sent data before handshake is complete".into());
    }
    let mut headers = [httparse::EMPTY_HEADER; 64];
    let mut req = httparse::Request::new(&mut headers);
    let parsed = req.parse(&head).map_err(|e| e.to_string());
    let checked = match parsed {
        Ok(httparse::Status::Complete(_)) => check(&req, opts, tls),
        _ => Err((400, "invalid HTTP request".to_string())),
    };
    match checked {
        Ok((key, upgrade)) => {
            let accept = accept_key(&key);
            let resp = format!(
                "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: {accept}\r\n\r\n"
            );
            stream
                .write_all(resp.as_bytes())
                .await
                .map_err(|e| e.to_string())?;
            Ok(upgrade)
        }
        Err((status, text)) => {
            // As nats-server (Go's http.Error): the status text is the body; the reason
            // goes to the log only.
            let reason = match status {
                403 => "Forbidden",
                405 => "Method Not Allowed",
                _ => "Bad Request",
            };
            let resp = format!(
                "HTTP/1.1 {status} {reason}\r\nContent-Type: text/plain; charset=utf-8\r\nSec-Websocket-Version: 13\r\nX-Content-Type-Options: nosniff\r\nContent-Length: {}\r\n\r\n{reason}\n",
                reason.len() + 1
            );
            let _ = stream.write_all(resp.as_bytes()).await;
            let _ = stream.shutdown().await;
            Err(text)
        }
    }
}

/// The request head, up to the blank line (bytes after it stay in the reader's buffer).
async fn read_head<S: AsyncRead + Unpin>(stream: &mut BufReader<S>) -> Result<Vec<u8>, String> {
    let mut head = Vec::with_capacity(512);
    loop {
        let b = stream.read_u8().await.map_err(|e| e.to_string())?;
        head.push(b);
        if head.ends_with(b"\r\n\r\n") {
            return Ok(head);
        }
        if head.len() > MAX_REQUEST {
            return Err("upgrade request too large".into());
        }
    }
}

fn header<'a>(req: &'a httparse::Request<'_, '_>, name: &str) -> Option<&'a str> {
    req.headers
        .iter()
        .find(|h| h.name.eq_ignore_ascii_case(name))
        .and_then(|h| std::str::from_utf8(h.value).ok())
        .map(str::trim)
}

fn has_token(value: Option<&str>, token: &str) -> bool {
    value.is_some_and(|v| v.split(',').any(|t| t.trim().eq_ignore_ascii_case(token)))
}

/// nats-server's checks of the upgrade request (`wsUpgrade`); the key to answer with.
fn check(
    req: &httparse::Request<'_, '_>,
    opts: &WebSocketOptions,
    tls: bool,
) -> Result<(String, Upgrade), (u16, String)> {
    if req.method != Some("GET") {
        return Err((405, "request method must be GET".into()));
    }
    if header(req, "Host").is_none_or(str::is_empty) {
        return Err((400, "'Host' missing in request".into()));
    }
    if !has_token(header(req, "Upgrade"), "websocket") {
        return Err((400, "invalid value for header 'Upgrade'".into()));
    }
    if !has_token(header(req, "Connection"), "upgrade") {
        return Err((400, "invalid value for header 'Connection'".into()));
    }
    let Some(key) = header(req, "Sec-WebSocket-Key").filter(|k| !k.is_empty()) else {
        return Err((400, "key missing".into()));
    };
    let decoded = {
        use base64::Engine;
        base64::engine::general_purpose::STANDARD.decode(key)
    };
    if decoded.map_or(true, |k| k.len() != 16) {
        return Err((400, "invalid websocket key".into()));
    }
    if !has_token(header(req, "Sec-WebSocket-Version"), "13") {
        return Err((400, "invalid version".into()));
    }
    if let Err(why) = origin_allowed(req, opts, tls) {
        return Err((403, format!("origin not allowed: {why}")));
    }
    let cookies = header(req, "Cookie")
        .map(|c| {
            c.split(';')
                .filter_map(|kv| kv.trim().split_once('='))
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect()
        })
        .unwrap_or_default();
    let leaf = req
        .path
        .is_some_and(|p| p.split('?').next().unwrap_or("").ends_with("/leafnode"));
    Ok((key.to_string(), Upgrade { cookies, leaf }))
}

/// `same_origin` and `allowed_origins` (a request without `Origin` passes, as in
/// nats-server: it does not come from a browser).
fn origin_allowed(
    req: &httparse::Request<'_, '_>,
    opts: &WebSocketOptions,
    tls: bool,
) -> Result<(), String> {
    if !opts.same_origin && opts.allowed_origins.is_empty() {
        return Ok(());
    }
    let origin = header(req, "Origin").or_else(|| header(req, "Sec-WebSocket-Origin"));
    let Some(origin) = origin.filter(|o| !o.is_empty()) else {
        return Ok(());
    };
    let (scheme, host, port) = split_origin(origin).ok_or_else(|| "invalid origin".to_string())?;
    if opts.same_origin {
        let req_host = header(req, "Host").unwrap_or_default();
        let want_port = if tls { "443" } else { "80" };
        let (h, p) = match req_host.rsplit_once(':') {
            Some((h, p)) => (h, p),
            None => (req_host, want_port),
        };
        let want_scheme = if tls { "https" } else { "http" };
        if !scheme.eq_ignore_ascii_case(want_scheme) || !h.eq_ignore_ascii_case(&host) || p != port
        {
            return Err("not same origin".into());
        }
    }
    if !opts.allowed_origins.is_empty() {
        let ok = opts.allowed_origins.iter().any(|a| {
            split_origin(a).is_some_and(|(s, h, p)| {
                s.eq_ignore_ascii_case(&scheme) && h.eq_ignore_ascii_case(&host) && p == port
            })
        });
        if !ok {
            return Err("not in the allowed list".into());
        }
    }
    Ok(())
}

/// `scheme://host[:port]` → (scheme, host, port with the scheme's default).
fn split_origin(o: &str) -> Option<(String, String, String)> {
    let (scheme, rest) = o.split_once("://")?;
    let rest = rest.trim_end_matches('/');
    let default = if scheme.eq_ignore_ascii_case("https") {
        "443"
    } else {
        "80"
    };
    let (host, port) = match rest.rsplit_once(':') {
        Some((h, p)) if !h.is_empty() => (h.to_string(), p.to_string()),
        _ => (rest.to_string(), default.to_string()),
    };
    Some((scheme.to_string(), host, port))
}

/// `base64(sha1(key + GUID))`.
fn accept_key(key: &str) -> String {
    use base64::Engine;
    let digest = ring::digest::digest(
        &ring::digest::SHA1_FOR_LEGACY_USE_ONLY,
        format!("{key}{WS_GUID}").as_bytes(),
    );
    base64::engine::general_purpose::STANDARD.encode(digest.as_ref())
}

/// Turns a handshaken stream into the reader's and writer's halves; the writer's close
/// frame says why `client` closed.
pub(crate) fn split<S>(stream: S, client: Arc<Client>) -> (WsRead<S>, WsWrite<S>)
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    split_stream(tokio_websockets::ServerBuilder::new().serve(stream), client)
}

/// The halves of a WebSocket stream of either role.
pub(crate) fn split_stream<S>(
    ws: WebSocketStream<S>,
    client: Arc<Client>,
) -> (WsRead<S>, WsWrite<S>)
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let (sink, stream) = ws.split();
    (WsRead(stream), WsWrite(sink, client))
}

/// nats-server's close status for a close reason.
fn close_code(reason: CloseReason) -> u16 {
    use CloseReason::*;
    match reason {
        ClientClosed => 1000,
        AuthTimeout
        | AuthFailure
        | SlowConsumerPendingBytes
        | SlowConsumerWriteDeadline
        | MaxAccountConnectionsExceeded
        | MaxConnectionsExceeded
        | MaxControlLineExceeded
        | MaxSubscriptionsExceeded
        | AuthenticationExpired
        | Revocation => 1008,
        TlsHandshakeError => 1015,
        ParseError | ProtocolViolation => 1002,
        MaxPayloadExceeded => 1009,
        WriteError | ReadError | StaleConnection | ServerShutdown => 1001,
        _ => 1011,
    }
}

/// The frames' payloads as a byte stream.
pub(crate) struct WsRead<S>(SplitStream<WebSocketStream<S>>);

/// Each write is one binary frame; the close frame carries the client's close reason.
pub(crate) struct WsWrite<S>(SplitSink<WebSocketStream<S>, Message>, Arc<Client>);

impl<S> ReadSource for WsRead<S>
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    async fn read_into(&mut self, buf: &mut BytesMut) -> io::Result<usize> {
        loop {
            match self.0.next().await {
                None => return Ok(0),
                Some(Err(e)) => return Err(io::Error::other(e)),
                Some(Ok(m)) if m.is_close() => return Ok(0),
                Some(Ok(m)) if m.is_binary() || m.is_text() => {
                    let payload = m.into_payload();
                    if payload.is_empty() {
                        continue;
                    }
                    buf.extend_from_slice(&payload);
                    return Ok(payload.len());
                }
                // Pings are answered by the library; pongs carry nothing for us.
                Some(Ok(_)) => continue,
            }
        }
    }
}

impl<S> WriteSink for WsWrite<S>
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    async fn write_iov(&mut self, iov: &[IoSlice<'_>]) -> io::Result<usize> {
        let total: usize = iov.iter().map(|s| s.len()).sum();
        let mut frame = BytesMut::with_capacity(total);
        for s in iov {
            frame.extend_from_slice(s);
        }
        let frame: Bytes = frame.freeze();
        self.0
            .send(Message::binary(frame))
            .await
            .map_err(io::Error::other)?;
        Ok(total)
    }

    async fn finish(&mut self) -> io::Result<()> {
        let reason = self.1.close_reason().unwrap_or(CloseReason::ClientClosed);
        let code = tokio_websockets::CloseCode::try_from(close_code(reason)).ok();
        let _ = self.0.send(Message::close(code, reason.as_str())).await;
        self.0.close().await.map_err(io::Error::other)
    }
}
