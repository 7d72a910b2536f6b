//! A minimal HTTP/1.1 GET for tests of the monitoring endpoints (hyper's client over one
//! TCP connection per request).

use std::net::SocketAddr;

use http_body_util::{BodyExt, Empty};
use hyper::body::Bytes;
use hyper_util::rt::TokioIo;

/// Why a GET failed.
#[derive(Debug, thiserror::Error)]
pub enum HttpError {
    /// The TCP connection could not be made.
    #[error("cannot connect to {addr}: {cause}")]
    Connect {
        /// Address asked for.
        addr: SocketAddr,
        /// Underlying error.
        cause: std::io::Error,
    },
    /// The request or response failed.
    #[error("http: {0}")]
    Http(#[from] hyper::Error),
    /// The request could not be built (bad path).
    #[error("bad request: {0}")]
    Request(#[from] hyper::http::Error),
}

/// A response: status, content type and body text.
#[derive(Debug, Clone)]
pub struct HttpResponse {
    /// Status code.
    pub status: u16,
    /// `Content-Type` header (empty when absent).
    pub content_type: String,
    /// Body, as text (lossy UTF-8).
    pub body: String,
}

impl HttpResponse {
    /// The body parsed as JSON. Panics (failing the test) when it is not JSON.
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.body).unwrap_or_else(|e| panic!("not JSON ({e}): {}", self.body))
    }
}

/// `GET path` (with its query) from `addr`.
pub async fn http_get(addr: SocketAddr, path: &str) -> Result<HttpResponse, HttpError> {
    let stream = tokio::net::TcpStream::connect(addr)
        .await
        .map_err(|cause| HttpError::Connect { addr, cause })?;
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream)).await?;
    let driver = tokio::spawn(conn);
    let req = hyper::Request::get(path)
        .header(hyper::header::HOST, addr.to_string())
        .body(Empty::<Bytes>::new())?;
    let res = sender.send_request(req).await?;
    let status = res.status().as_u16();
    let content_type = res
        .headers()
        .get(hyper::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_string();
    let body = res.into_body().collect().await?.to_bytes();
    driver.abort();
    Ok(HttpResponse {
        status,
        content_type,
        body: String::from_utf8_lossy(&body).into_owned(),
    })
}
