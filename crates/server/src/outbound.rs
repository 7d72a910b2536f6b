//! A connection's outbound queue: small ops are copied into one flat buffer, large payloads
//! are queued as shared `Bytes` chunks, and the writer drains everything with vectored
//! writes. The queue is byte-bounded by `max_pending`.

use std::collections::VecDeque;

use bytes::{BufMut, Bytes, BytesMut};
use petrel_wire::encode;

/// Payloads at least this large are queued by reference instead of copied.
pub(crate) const SHARE_THRESHOLD: usize = 4096;

/// Bytes queued for one connection.
#[derive(Debug, Default)]
pub(crate) struct Outbound {
    flat: BytesMut,
    chunks: VecDeque<Bytes>,
    /// Bytes queued or being written, not yet confirmed written.
    pending: usize,
    /// The writer task has taken bytes and not finished writing them: nobody else may
    /// write to the socket now (order would break).
    pub writing: bool,
    /// Messages and payload bytes queued since the connection opened.
    pub out_msgs: u64,
    pub out_bytes: u64,
}

/// A flat buffer grown past this is released once drained, instead of kept for reuse
/// (a burst to a slow reader must not pin tens of MiB per connection).
const SHRINK_ABOVE: usize = 1024 * 1024;

/// A message to encode as `MSG` or `HMSG`.
pub(crate) struct MsgRef<'a> {
    pub subject: &'a [u8],
    pub reply: Option<&'a [u8]>,
    /// Header block length at the front of `data`, for `HMSG`.
    pub hdr_len: Option<usize>,
    /// Header block and payload.
    pub data: &'a [u8],
    /// The buffer `data` lies in, when it may be queued by reference; `None`: `data` is
    /// copied wherever it is kept (a small publish straight from the read buffer).
    pub owner: Option<&'a Bytes>,
}

impl MsgRef<'_> {
    /// `data[from..]` to keep: a reference into the owner, else a copy.
    pub fn bytes_from(&self, from: usize) -> Bytes {
        let part = &self.data[from..];
        match self.owner {
            Some(owner) => owner.slice_ref(part),
            None => Bytes::copy_from_slice(part),
        }
    }
}

impl Outbound {
    /// Bytes queued and not yet written.
    pub fn pending(&self) -> usize {
        self.pending
    }

    /// Queue raw protocol bytes (`PONG`, `+OK`, `-ERR`, `INFO`).
    pub fn push_raw(&mut self, bytes: &[u8]) {
        self.flat.put_slice(bytes);
        self.pending += bytes.len();
    }

    /// Queue a message for subscription `sid`. `headers` says whether the receiver
    /// understands HMSG; if not, the header block is stripped. Returns the bytes queued.
    pub fn push_msg(&mut self, msg: &MsgRef<'_>, sid: &[u8], headers: bool) -> usize {
        let before = self.flat.len();
        let from = match msg.hdr_len {
            Some(h) if headers => {
                encode::hmsg_line(
                    &mut self.flat,
                    msg.subject,
                    sid,
                    msg.reply,
                    h,
                    msg.data.len(),
                );
                0
            }
            Some(h) => {
                let body = msg.data.len() - h;
                encode::msg_line(&mut self.flat, msg.subject, sid, msg.reply, body);
                h
            }
            None => {
                encode::msg_line(&mut self.flat, msg.subject, sid, msg.reply, msg.data.len());
                0
            }
        };
        self.push_body(before, msg, from)
    }

    /// Queue a message for a route peer as `RMSG`/`HMSG` in `account`, for the queue
    /// groups the peer was chosen for. Returns the bytes queued.
    pub fn push_routed(&mut self, account: &[u8], msg: &MsgRef<'_>, queues: &[&[u8]]) -> usize {
        let before = self.flat.len();
        petrel_wire::route::msg_line(
            &mut self.flat,
            account,
            msg.subject,
            msg.reply,
            queues,
            msg.hdr_len,
            msg.data.len(),
        );
        self.push_body(before, msg, 0)
    }

    /// Appends `msg.data[from..]` and its CRLF after a control line that started at
    /// `before`: a large body by reference, a small one copied.
    fn push_body(&mut self, before: usize, msg: &MsgRef<'_>, from: usize) -> usize {
        let body = &msg.data[from..];
        let queued = self.flat.len() - before + body.len() + 2;
        if body.len() >= SHARE_THRESHOLD {
            let head = self.flat.split().freeze();
            self.chunks.push_back(head);
            self.chunks.push_back(msg.bytes_from(from));
        } else {
            self.flat.put_slice(body);
        }
        self.flat.put_slice(encode::CRLF);
        self.pending += queued;
        self.out_msgs += 1;
        self.out_bytes += msg.data.len() as u64;
        queued
    }

    /// Take everything queued, in order, for one vectored write.
    pub fn take(&mut self, into: &mut VecDeque<Bytes>) {
        into.append(&mut self.chunks);
        if !self.flat.is_empty() {
            into.push_back(self.flat.split().freeze());
        }
    }

    /// Put bytes that could not be written back at the front of the queue.
    pub fn unshift(&mut self, rest: VecDeque<Bytes>) {
        for chunk in rest.into_iter().rev() {
            self.chunks.push_front(chunk);
        }
    }

    /// Record that `n` bytes were written to the socket.
    pub fn written(&mut self, n: usize) {
        self.pending = self.pending.saturating_sub(n);
        if self.pending == 0 && self.flat.capacity() > SHRINK_ABOVE {
            self.flat = BytesMut::new();
        }
    }

    /// Whether nothing is queued.
    #[cfg(test)]
    pub fn is_empty(&self) -> bool {
        self.flat.is_empty() && self.chunks.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn drain(o: &mut Outbound) -> Vec<u8> {
        let mut q = VecDeque::new();
        o.take(&mut q);
        q.iter().flat_map(|b| b.iter().copied()).collect()
    }

    #[test]
    fn small_and_large_payloads_keep_order() {
        let mut o = Outbound::default();
        let small = Bytes::from_static(b"hi");
        let large = Bytes::from(vec![b'x'; SHARE_THRESHOLD]);
        o.push_msg(
            &MsgRef {
                subject: b"a",
                reply: None,
                hdr_len: None,
                data: &small,
                owner: Some(&small),
            },
            b"1",
            true,
        );
        o.push_msg(
            &MsgRef {
                subject: b"b",
                reply: Some(b"r"),
                hdr_len: None,
                data: &large,
                owner: Some(&large),
            },
            b"2",
            true,
        );
        o.push_raw(b"PONG\r\n");
        let total = o.pending();
        let out = drain(&mut o);
        assert_eq!(out.len(), total);
        let mut want = b"MSG a 1 2\r\nhi\r\n".to_vec();
        want.extend_from_slice(format!("MSG b 2 r {SHARE_THRESHOLD}\r\n").as_bytes());
        want.extend_from_slice(&large);
        want.extend_from_slice(b"\r\nPONG\r\n");
        assert_eq!(out, want);
        o.written(total);
        assert_eq!(o.pending(), 0);
        assert!(o.is_empty());
    }

    #[test]
    fn headers_stripped_for_old_clients() {
        let mut o = Outbound::default();
        let data = Bytes::from_static(b"NATS/1.0\r\nA: b\r\n\r\nhi");
        let m = MsgRef {
            subject: b"s",
            reply: None,
            hdr_len: Some(18),
            data: &data,
            owner: Some(&data),
        };
        o.push_msg(&m, b"1", false);
        o.push_msg(&m, b"2", true);
        assert_eq!(
            drain(&mut o),
            b"MSG s 1 2\r\nhi\r\nHMSG s 2 18 20\r\nNATS/1.0\r\nA: b\r\n\r\nhi\r\n".to_vec()
        );
    }
}
