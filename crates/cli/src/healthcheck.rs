//! `petrel --healthcheck`: probes a running server's `/healthz` over plain HTTP and exits 0
//! when it answers 200, 1 otherwise, printing why. It lets a container image without a
//! shell or curl declare a `HEALTHCHECK` (`["/petrel", "--healthcheck"]`); the server's
//! flags stay nats-server's.

use std::io::{Read, Write};
use std::net::{TcpStream, ToSocketAddrs};
use std::time::Duration;

use anyhow::{bail, Context, Result};

/// How long the whole probe may take.
const TIMEOUT: Duration = Duration::from_secs(3);

/// The URL probed without `--healthcheck_url`: the monitoring port (`-m`, default 8222)
/// on the loopback interface.
pub fn default_url(http_port: Option<&str>) -> String {
    let port = http_port.filter(|p| !p.is_empty() && *p != "-1" && *p != "0");
    format!("http://127.0.0.1:{}/healthz", port.unwrap_or("8222"))
}

/// `http://host:port/path` split into (host, port, path).
fn parse(url: &str) -> Result<(String, u16, String)> {
    let rest = url
        .strip_prefix("http://")
        .with_context(|| format!("{url:?} is not an http:// URL"))?;
    let (authority, path) = match rest.find('/') {
        Some(i) => (&rest[..i], &rest[i..]),
        None => (rest, "/healthz"),
    };
    let (host, port) = match authority.rsplit_once(':') {
        Some((h, p)) => (
            h,
            p.parse().with_context(|| format!("bad port in {url:?}"))?,
        ),
        None => (authority, 80),
    };
    Ok((
        host.trim_matches(['[', ']']).to_string(),
        port,
        path.to_string(),
    ))
}

/// Probes `url`; `Ok` with the body when it answers 200.
pub fn probe(url: &str) -> Result<String> {
    let (host, port, path) = parse(url)?;
    let addr = (host.as_str(), port)
        .to_socket_addrs()
        .with_context(|| format!("cannot resolve {host}"))?
        .next()
        .with_context(|| format!("no address for {host}"))?;
    let mut s = TcpStream::connect_timeout(&addr, TIMEOUT)
        .with_context(|| format!("cannot connect to {addr}"))?;
    s.set_read_timeout(Some(TIMEOUT))?;
    s.set_write_timeout(Some(TIMEOUT))?;
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n"
    )?;
    let mut reply = Vec::new();
    s.take(64 * 1024)
        .read_to_end(&mut reply)
        .context("reading the answer")?;
    let text = String::from_utf8_lossy(&reply);
    let status: u16 = text
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .context("not an HTTP answer")?;
    let body = text
        .split("\r\n\r\n")
        .nth(1)
        .unwrap_or("")
        .trim()
        .to_string();
    if status != 200 {
        bail!("{url} answered {status}: {body}");
    }
    Ok(body)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls() {
        assert_eq!(
            parse("http://petrel:8222/healthz").unwrap(),
            ("petrel".into(), 8222, "/healthz".into())
        );
        assert_eq!(
            parse("http://[::1]:9/x").unwrap(),
            ("::1".into(), 9, "/x".into())
        );
        assert!(parse("https://a:1/").is_err());
        assert_eq!(default_url(None), "http://127.0.0.1:8222/healthz");
        assert_eq!(default_url(Some("9000")), "http://127.0.0.1:9000/healthz");
    }
}
