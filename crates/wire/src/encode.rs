//! Encoders for server → client ops. They append to a `BytesMut`; payloads are written by
//! the caller (so a shared payload can be queued without a copy).

use bytes::{BufMut, BytesMut};

use crate::info::ServerInfo;

/// `PING\r\n`.
pub const PING: &[u8] = b"PING\r\n";
/// `PONG\r\n`.
pub const PONG: &[u8] = b"PONG\r\n";
/// `+OK\r\n`.
pub const OK: &[u8] = b"+OK\r\n";
/// `\r\n`, the payload terminator.
pub const CRLF: &[u8] = b"\r\n";

/// Append `INFO {json} \r\n` (with nats-server's space before CRLF).
pub fn info(buf: &mut BytesMut, info: &ServerInfo) {
    buf.put_slice(b"INFO ");
    // Serializing a struct of strings, bools and integers cannot fail.
    let json = serde_json::to_vec(info).unwrap_or_default();
    buf.put_slice(&json);
    buf.put_slice(b" \r\n");
}

/// Append `-ERR '<text>'\r\n`.
pub fn err(buf: &mut BytesMut, text: &str) {
    buf.put_slice(b"-ERR '");
    buf.put_slice(text.as_bytes());
    buf.put_slice(b"'\r\n");
}

/// Append `<verb> <subject> <sid> [reply] ` (the part MSG and HMSG share).
fn head(
    buf: &mut BytesMut,
    verb: &[u8],
    subject: &[u8],
    sid: &[u8],
    reply: Option<&[u8]>,
    tail: usize,
) {
    buf.reserve(
        verb.len() + subject.len() + sid.len() + reply.map_or(0, |r| r.len() + 1) + tail + 4,
    );
    buf.put_slice(verb);
    buf.put_slice(subject);
    buf.put_u8(b' ');
    buf.put_slice(sid);
    buf.put_u8(b' ');
    if let Some(r) = reply {
        buf.put_slice(r);
        buf.put_u8(b' ');
    }
}

/// Append the control line of a `MSG` (payload and CRLF follow).
pub fn msg_line(buf: &mut BytesMut, subject: &[u8], sid: &[u8], reply: Option<&[u8]>, len: usize) {
    let mut n = itoa::Buffer::new();
    let len = n.format(len).as_bytes();
    head(buf, b"MSG ", subject, sid, reply, len.len());
    buf.put_slice(len);
    buf.put_slice(CRLF);
}

/// Append the control line of an `HMSG` (header block, payload and CRLF follow).
pub fn hmsg_line(
    buf: &mut BytesMut,
    subject: &[u8],
    sid: &[u8],
    reply: Option<&[u8]>,
    hdr_len: usize,
    total_len: usize,
) {
    let mut a = itoa::Buffer::new();
    let mut b = itoa::Buffer::new();
    let hdr = a.format(hdr_len).as_bytes();
    let total = b.format(total_len).as_bytes();
    head(
        buf,
        b"HMSG ",
        subject,
        sid,
        reply,
        hdr.len() + total.len() + 1,
    );
    buf.put_slice(hdr);
    buf.put_u8(b' ');
    buf.put_slice(total);
    buf.put_slice(CRLF);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encodes_ops() {
        let mut buf = BytesMut::new();
        msg_line(&mut buf, b"foo", b"1", None, 5);
        msg_line(&mut buf, b"foo.bar", b"2", Some(b"r.x"), 2);
        hmsg_line(&mut buf, b"in.box", b"9", None, 16, 16);
        err(&mut buf, "Invalid Subject");
        assert_eq!(
            &buf[..],
            &b"MSG foo 1 5\r\nMSG foo.bar 2 r.x 2\r\nHMSG in.box 9 16 16\r\n-ERR 'Invalid Subject'\r\n"[..]
        );
    }

    #[test]
    fn info_has_space_before_crlf() {
        let mut buf = BytesMut::new();
        info(&mut buf, &ServerInfo::default());
        assert!(buf.starts_with(b"INFO {\"server_id\""));
        assert!(buf.ends_with(b"} \r\n"));
    }
}
