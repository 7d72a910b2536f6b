//! `NATS/1.0` header blocks: status messages the server generates and a small reader.

use bytes::{BufMut, Bytes, BytesMut};

/// The no-responders status block for a request on `subject`, byte-exact with
/// nats-server 2.15.1 (2.9.10 sent the bare status line; clients read only the code).
pub fn no_responders(subject: &[u8]) -> Bytes {
    let mut buf = BytesMut::with_capacity(32 + subject.len());
    buf.put_slice(b"NATS/1.0 503\r\nNats-Subject: ");
    buf.put_slice(subject);
    buf.put_slice(b"\r\n\r\n");
    buf.freeze()
}

/// Build a header block: a status line (`NATS/1.0[ code[ description]]`) and headers.
pub fn build(status: Option<(u16, &str)>, headers: &[(&str, &str)]) -> Bytes {
    let mut buf = BytesMut::with_capacity(32);
    buf.put_slice(b"NATS/1.0");
    if let Some((code, desc)) = status {
        buf.put_slice(format!(" {code}").as_bytes());
        if !desc.is_empty() {
            buf.put_u8(b' ');
            buf.put_slice(desc.as_bytes());
        }
    }
    buf.put_slice(b"\r\n");
    for (k, v) in headers {
        buf.put_slice(k.as_bytes());
        buf.put_slice(b": ");
        buf.put_slice(v.as_bytes());
        buf.put_slice(b"\r\n");
    }
    buf.put_slice(b"\r\n");
    buf.freeze()
}

/// A parsed header block.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Headers {
    /// Status code from the first line, if any.
    pub status: Option<u16>,
    /// Status description.
    pub description: String,
    /// Headers in order; a key may repeat.
    pub entries: Vec<(String, String)>,
}

impl Headers {
    /// The first value of `key` (case-sensitive, as NATS clients set them).
    pub fn get(&self, key: &str) -> Option<&str> {
        self.entries
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }

    /// Every value of `key`.
    pub fn get_all<'a>(&'a self, key: &'a str) -> impl Iterator<Item = &'a str> + 'a {
        self.entries
            .iter()
            .filter(move |(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }
}

/// Parse a header block; `None` when it does not start with `NATS/1.0`.
pub fn parse(block: &[u8]) -> Option<Headers> {
    let text = std::str::from_utf8(block).ok()?;
    let mut lines = text.split("\r\n");
    let first = lines.next()?;
    let rest = first.strip_prefix("NATS/1.0")?;
    let mut h = Headers::default();
    let rest = rest.trim_start();
    if !rest.is_empty() {
        let (code, desc) = rest.split_once(' ').unwrap_or((rest, ""));
        h.status = code.parse().ok();
        h.description = desc.trim().to_string();
    }
    for line in lines {
        if line.is_empty() {
            continue;
        }
        if let Some((k, v)) = line.split_once(':') {
            h.entries.push((k.trim().to_string(), v.trim().to_string()));
        }
    }
    Some(h)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_and_multi_value_roundtrip() {
        let block = build(
            Some((408, "Request Timeout")),
            &[("Nats-Pending-Messages", "1"), ("X", "a"), ("X", "b")],
        );
        let h = parse(&block).unwrap();
        assert_eq!(h.status, Some(408));
        assert_eq!(h.description, "Request Timeout");
        assert_eq!(h.get_all("X").collect::<Vec<_>>(), vec!["a", "b"]);
        assert_eq!(
            build(Some((503, "")), &[("Nats-Subject", "a.b")]),
            no_responders(b"a.b")
        );
    }
}
