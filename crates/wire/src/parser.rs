//! Incremental parser for client → server ops.
//!
//! The parser consumes complete ops from the front of a `BytesMut` and leaves partial data in
//! place for the next read, so any split of the byte stream yields the same ops. A control
//! line is parsed once; while its payload is still arriving only the expected size is kept.
//! The common case — a well-formed upper-case `PUB` whose payload is already in the buffer —
//! takes a fast path (one scan, one split); everything else, errors included, goes through
//! the general path, and a proptest holds the two to the same ops and errors.

use std::ops::Range;

use bytes::{Buf, Bytes, BytesMut};

use crate::op::ClientOp;

/// A protocol error. Every variant closes the connection; [`ParseError::err_text`] says
/// which `-ERR` (if any) nats-server sends first.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum ParseError {
    /// Unknown verb, or a payload not followed by CRLF.
    #[error("unknown protocol operation")]
    UnknownOp,
    /// A control line longer than `max_control_line`.
    #[error("maximum control line exceeded")]
    MaxControlLine,
    /// A declared payload larger than `max_payload`.
    #[error("maximum payload violation")]
    MaxPayload,
    /// Wrong argument count or a bad size; nats-server closes without an `-ERR`.
    #[error("malformed {0} arguments")]
    BadArgs(&'static str),
}

impl ParseError {
    /// The text nats-server sends inside `-ERR '...'` before closing, if any.
    pub fn err_text(self) -> Option<&'static str> {
        match self {
            ParseError::UnknownOp => Some("Unknown Protocol Operation"),
            ParseError::MaxControlLine => Some("maximum control line exceeded"),
            ParseError::MaxPayload => Some("Maximum Payload Violation"),
            ParseError::BadArgs(_) => None,
        }
    }
}

/// A PUB/HPUB whose control line has been read and whose payload is awaited.
#[derive(Debug)]
struct PendingPayload {
    subject: Bytes,
    reply: Option<Bytes>,
    /// Bytes of header block (HPUB) or `None` (PUB).
    hdr_len: Option<usize>,
    size: usize,
}

/// Incremental NATS client-protocol parser. See the module docs.
#[derive(Debug)]
pub struct Parser {
    max_control_line: usize,
    max_payload: usize,
    headers: bool,
    pending: Option<PendingPayload>,
}

/// Verbs a client may send (`MSG` is server-only: a client sending it gets Unknown
/// Protocol Operation).
const VERBS: &[&[u8]] = &[
    b"CONNECT", b"PUB", b"HPUB", b"SUB", b"UNSUB", b"PING", b"PONG", b"INFO", b"+OK", b"-ERR",
];
/// Longest verb.
const MAX_VERB: usize = 7;
/// Blanks allowed between the verb and its arguments.
const MAX_BLANKS: usize = 1024;
/// PING/PONG lines may carry junk nats-server ignores; bound it anyway.
const MAX_PING_LINE: usize = 64 * 1024;

fn is_prefix_ci(partial: &[u8], verb: &[u8]) -> bool {
    partial.len() <= verb.len() && partial.eq_ignore_ascii_case(&verb[..partial.len()])
}

impl Parser {
    /// A parser enforcing the given limits.
    pub fn new(max_control_line: usize, max_payload: usize) -> Self {
        Self {
            max_control_line,
            max_payload,
            headers: true,
            pending: None,
        }
    }

    /// Whether HPUB is allowed (the client sent CONNECT with `headers:true`). nats-server
    /// closes a connection that sends HPUB without it.
    pub fn set_headers(&mut self, allowed: bool) {
        self.headers = allowed;
    }

    /// Change the limits (config reload).
    pub fn set_limits(&mut self, max_control_line: usize, max_payload: usize) {
        self.max_control_line = max_control_line;
        self.max_payload = max_payload;
    }

    /// Take the next complete op from the front of `buf`.
    ///
    /// Returns `Ok(None)` when `buf` holds only part of an op (the bytes stay in `buf`).
    pub fn parse(&mut self, buf: &mut BytesMut) -> Result<Option<ClientOp>, ParseError> {
        match self.peek_pub(buf) {
            Some(at) => Ok(Some(self.take_pub(buf, at))),
            None => self.parse_general(buf),
        }
    }

    /// [`Parser::parse`] without its fast path, for a caller that already found
    /// [`Parser::peek_pub`] to be `None` for this `buf`.
    pub fn parse_general(&mut self, buf: &mut BytesMut) -> Result<Option<ClientOp>, ParseError> {
        loop {
            if let Some(p) = &self.pending {
                let need = p.size + 2;
                if buf.len() < need {
                    return Ok(None);
                }
                if &buf[p.size..need] != b"\r\n" {
                    return Err(ParseError::UnknownOp);
                }
                let data = buf.split_to(p.size).freeze();
                buf.advance(2);
                let Some(p) = self.pending.take() else {
                    return Err(ParseError::UnknownOp);
                };
                return Ok(Some(match p.hdr_len {
                    None => ClientOp::Pub {
                        subject: p.subject,
                        reply: p.reply,
                        payload: data,
                    },
                    Some(hdr_len) => ClientOp::HPub {
                        subject: p.subject,
                        reply: p.reply,
                        data,
                        hdr_len,
                    },
                }));
            }
            let Some((line, args_from)) = self.take_line(buf)? else {
                return Ok(None);
            };
            if let Some(op) = self.control_line(line, args_from)? {
                return Ok(Some(op));
            }
            // A PUB/HPUB control line: loop round for the payload.
        }
    }

    /// The fast path's second half: takes the whole `PUB` that [`Parser::peek_pub`] found
    /// (`at`, for this same `buf`) off in one piece.
    pub fn take_pub(&mut self, buf: &mut BytesMut, at: PubAt) -> ClientOp {
        let frame = buf.split_to(at.len).freeze();
        ClientOp::Pub {
            subject: frame.slice(at.subject),
            reply: at.reply.map(|r| frame.slice(r)),
            payload: frame.slice(at.payload),
        }
    }

    /// The fast path for the common case: where the parts of a whole, well-formed
    /// `PUB subject [reply] size` (line and payload both in `buf`) are, without
    /// taking it off: what [`Parser::parse`] would return next, for a caller that can
    /// use the bytes in place and then advance `buf` by [`PubAt::len`]. `None` for
    /// anything else, and while an op is half read.
    pub fn peek_pub(&self, buf: &[u8]) -> Option<PubAt> {
        let b = buf;
        if self.pending.is_some() || b.len() < 6 || &b[..4] != b"PUB " || is_space(b[4]) {
            return None;
        }
        // The window keeps the line within `max_control_line` (a longer one is an error,
        // left to the general path).
        let window = b.len().min(4 + self.max_control_line + 2);
        let nl = memchr::memchr(b'\n', &b[4..window])? + 4;
        let end = nl - 1;
        if b[end] != b'\r' {
            return None;
        }
        let (subject, reply, size) = pub_args(&b[4..end], 4)?;
        let size = parse_size(&b[size]).filter(|&n| n <= self.max_payload)?;
        let from = nl + 1;
        if b.len() < from + size + 2 || &b[from + size..from + size + 2] != b"\r\n" {
            return None;
        }
        Some(PubAt {
            subject,
            reply,
            payload: from..from + size,
            len: from + size + 2,
        })
    }

    /// Take one complete control line (without CR LF) off the front of `buf`, with the
    /// offset where its arguments start. Checks what nats-server checks while the line is
    /// still arriving: the verb must be one it knows, and the argument bytes (after the
    /// verb and the blanks that follow it) may not exceed `max_control_line`.
    fn take_line(&self, buf: &mut BytesMut) -> Result<Option<(Bytes, usize)>, ParseError> {
        let verb_end = buf
            .iter()
            .take(MAX_VERB + 1)
            .position(|&b| matches!(b, b' ' | b'\t' | b'\r' | b'\n'));
        let verb = &buf[..verb_end.unwrap_or(buf.len().min(MAX_VERB + 1))];
        let ping_pong = verb.len() >= 4
            && (verb[..4].eq_ignore_ascii_case(b"PING") || verb[..4].eq_ignore_ascii_case(b"PONG"));
        if !ping_pong
            && !VERBS
                .iter()
                .any(|v| is_prefix_ci(verb, v) && (verb_end.is_none() || verb.len() == v.len()))
        {
            return Err(ParseError::UnknownOp);
        }
        let Some(verb_end) = verb_end else {
            return Ok(None);
        };
        let mut args_from = verb_end;
        while !ping_pong && args_from < buf.len() && is_space(buf[args_from]) {
            args_from += 1;
            if args_from - verb_end > MAX_BLANKS {
                return Err(ParseError::MaxControlLine);
            }
        }
        let limit = if ping_pong {
            MAX_PING_LINE
        } else {
            self.max_control_line
        };
        let window = buf.len().min(args_from + limit + 2);
        let Some(nl) = memchr::memchr(b'\n', &buf[verb_end..window]).map(|i| i + verb_end) else {
            let mut have = buf.len() - args_from.min(buf.len());
            if buf.last() == Some(&b'\r') {
                have = have.saturating_sub(1);
            }
            if have > limit {
                return Err(ParseError::MaxControlLine);
            }
            return Ok(None);
        };
        let mut end = nl;
        if end > 0 && buf[end - 1] == b'\r' {
            end -= 1;
        }
        if end > args_from.min(end) + limit {
            return Err(ParseError::MaxControlLine);
        }
        let line = buf.split_to(nl + 1).freeze().slice(..end);
        Ok(Some((line, args_from.min(end))))
    }

    /// Parse one control line (without CRLF). `Ok(None)` means a payload follows.
    fn control_line(&mut self, line: Bytes, rest: usize) -> Result<Option<ClientOp>, ParseError> {
        let verb_end = line
            .iter()
            .position(|&b| b == b' ' || b == b'\t')
            .unwrap_or(line.len());
        let verb = &line[..verb_end];
        if verb.len() >= 4 && verb[..4].eq_ignore_ascii_case(b"PING") {
            return Ok(Some(ClientOp::Ping));
        }
        if verb.len() >= 4 && verb[..4].eq_ignore_ascii_case(b"PONG") {
            return Ok(Some(ClientOp::Pong));
        }
        match verb.len() {
            3 if verb.eq_ignore_ascii_case(b"PUB") => {
                let args = Args::split(&line, rest);
                let (subject, reply, size) = match args.len {
                    2 => (args.get(&line, 0), None, args.raw(&line, 1)),
                    3 => (
                        args.get(&line, 0),
                        Some(args.get(&line, 1)),
                        args.raw(&line, 2),
                    ),
                    _ => return Err(ParseError::BadArgs("PUB")),
                };
                let size = parse_size(size).ok_or(ParseError::BadArgs("PUB"))?;
                if size > self.max_payload {
                    return Err(ParseError::MaxPayload);
                }
                self.pending = Some(PendingPayload {
                    subject,
                    reply,
                    hdr_len: None,
                    size,
                });
                Ok(None)
            }
            4 if verb.eq_ignore_ascii_case(b"HPUB") => {
                if !self.headers {
                    // "message headers not supported": closed without -ERR.
                    return Err(ParseError::BadArgs("HPUB"));
                }
                let args = Args::split(&line, rest);
                let (subject, reply, hdr, total) = match args.len {
                    3 => (
                        args.get(&line, 0),
                        None,
                        args.raw(&line, 1),
                        args.raw(&line, 2),
                    ),
                    4 => (
                        args.get(&line, 0),
                        Some(args.get(&line, 1)),
                        args.raw(&line, 2),
                        args.raw(&line, 3),
                    ),
                    _ => return Err(ParseError::BadArgs("HPUB")),
                };
                let hdr = parse_size(hdr).ok_or(ParseError::BadArgs("HPUB"))?;
                let total = parse_size(total).ok_or(ParseError::BadArgs("HPUB"))?;
                if hdr > total {
                    return Err(ParseError::BadArgs("HPUB"));
                }
                if total > self.max_payload {
                    return Err(ParseError::MaxPayload);
                }
                self.pending = Some(PendingPayload {
                    subject,
                    reply,
                    hdr_len: Some(hdr),
                    size: total,
                });
                Ok(None)
            }
            3 if verb.eq_ignore_ascii_case(b"SUB") => {
                let args = Args::split(&line, rest);
                let op = match args.len {
                    2 => ClientOp::Sub {
                        subject: args.get(&line, 0),
                        queue: None,
                        sid: args.get(&line, 1),
                    },
                    3 => ClientOp::Sub {
                        subject: args.get(&line, 0),
                        queue: Some(args.get(&line, 1)),
                        sid: args.get(&line, 2),
                    },
                    _ => return Err(ParseError::BadArgs("SUB")),
                };
                Ok(Some(op))
            }
            5 if verb.eq_ignore_ascii_case(b"UNSUB") => {
                let args = Args::split(&line, rest);
                let op = match args.len {
                    1 => ClientOp::Unsub {
                        sid: args.get(&line, 0),
                        max: None,
                    },
                    // A max that is not a number is ignored (unsubscribe now), as nats-server.
                    2 => ClientOp::Unsub {
                        sid: args.get(&line, 0),
                        max: parse_size(args.raw(&line, 1)).map(|m| m as u64),
                    },
                    0 => return Err(ParseError::UnknownOp),
                    _ => return Err(ParseError::BadArgs("UNSUB")),
                };
                Ok(Some(op))
            }
            7 if verb.eq_ignore_ascii_case(b"CONNECT") => {
                let json = trim(&line, rest);
                Ok(Some(ClientOp::Connect(json)))
            }
            4 if verb.eq_ignore_ascii_case(b"INFO") => Ok(Some(ClientOp::Info)),
            3 if verb.eq_ignore_ascii_case(b"+OK") => Ok(Some(ClientOp::Ok)),
            4 if verb.eq_ignore_ascii_case(b"-ERR") => Ok(Some(ClientOp::Err)),
            _ => Err(ParseError::UnknownOp),
        }
    }
}

/// Where a whole `PUB` lies in the buffer it was found in ([`Parser::peek_pub`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PubAt {
    /// The subject.
    pub subject: Range<usize>,
    /// The reply subject, if any.
    pub reply: Option<Range<usize>>,
    /// The payload.
    pub payload: Range<usize>,
    /// The whole op's length, the CR LF after the payload included.
    pub len: usize,
}

/// `PUB` arguments `subject [reply] size` split at single spaces, as ranges shifted by
/// `at`; `None` for tabs, runs of blanks, a blank at either end or a wrong count (the
/// general path takes those).
fn pub_args(line: &[u8], at: usize) -> Option<PubArgs> {
    let (spaces, n) = two_spaces(line)?;
    let shift = |s: usize, e: usize| s + at..e + at;
    let a = spaces[0];
    let (reply, last) = match n {
        1 => (None, a),
        2 if spaces[1] > a + 1 => (Some(shift(a + 1, spaces[1])), spaces[1]),
        _ => return None,
    };
    if a == 0 || last + 1 >= line.len() {
        return None;
    }
    Some((shift(0, a), reply, shift(last + 1, line.len())))
}

/// Where the (at most two) spaces of `line` are and how many there are; `None` when it
/// holds a tab or more than two spaces. Eight bytes at a time.
fn two_spaces(line: &[u8]) -> Option<([usize; 2], usize)> {
    let mut found = ([0usize; 2], 0usize);
    let note = |pos: usize, found: &mut ([usize; 2], usize)| -> Option<()> {
        let slot = found.0.get_mut(found.1)?;
        *slot = pos;
        found.1 += 1;
        Some(())
    };
    let mut chunks = line.chunks_exact(8);
    for (k, chunk) in chunks.by_ref().enumerate() {
        let mut word = [0u8; 8];
        word.copy_from_slice(chunk);
        let x = u64::from_le_bytes(word);
        if zero_bytes(x ^ (ONES * u64::from(b'\t'))) != 0 {
            return None;
        }
        let mut m = zero_bytes(x ^ (ONES * u64::from(b' ')));
        while m != 0 {
            note(k * 8 + (m.trailing_zeros() / 8) as usize, &mut found)?;
            m &= m - 1;
        }
    }
    let base = line.len() - chunks.remainder().len();
    for (i, &c) in chunks.remainder().iter().enumerate() {
        match c {
            b' ' => note(base + i, &mut found)?,
            b'\t' => return None,
            _ => {}
        }
    }
    (found.1 > 0).then_some(found)
}

/// 0x01 in every byte.
const ONES: u64 = 0x0101_0101_0101_0101;

/// The high bit set in each byte of `v` that is zero, and only there (no carries
/// between bytes: each byte's low seven bits plus 0x7f stays within the byte).
fn zero_bytes(v: u64) -> u64 {
    const LOW7: u64 = 0x7f7f_7f7f_7f7f_7f7f;
    !(((v & LOW7).wrapping_add(LOW7)) | v) & !LOW7
}

/// Subject, reply and size ranges of a `PUB` line.
type PubArgs = (Range<usize>, Option<Range<usize>>, Range<usize>);

/// Whitespace-separated argument ranges of a control line (at most 4 are needed; a fifth
/// only makes the count wrong).
struct Args {
    ranges: [(usize, usize); 5],
    len: usize,
}

impl Args {
    fn split(line: &[u8], from: usize) -> Args {
        let mut ranges = [(0, 0); 5];
        let mut len = 0;
        let mut i = from;
        while i < line.len() {
            while i < line.len() && is_space(line[i]) {
                i += 1;
            }
            if i == line.len() {
                break;
            }
            let start = i;
            while i < line.len() && !is_space(line[i]) {
                i += 1;
            }
            if len < ranges.len() {
                ranges[len] = (start, i);
            }
            len += 1;
        }
        Args { ranges, len }
    }

    fn get(&self, line: &Bytes, i: usize) -> Bytes {
        let (s, e) = self.ranges[i];
        line.slice(s..e)
    }

    /// Argument `i` borrowed (no reference count taken), for sizes.
    fn raw<'a>(&self, line: &'a [u8], i: usize) -> &'a [u8] {
        let (s, e) = self.ranges[i];
        &line[s..e]
    }
}

fn is_space(b: u8) -> bool {
    b == b' ' || b == b'\t'
}

fn trim(line: &Bytes, from: usize) -> Bytes {
    let mut s = from;
    let mut e = line.len();
    while s < e && is_space(line[s]) {
        s += 1;
    }
    while e > s && is_space(line[e - 1]) {
        e -= 1;
    }
    line.slice(s..e)
}

/// Parse a decimal size as nats-server does: digits only, no sign, no overflow.
fn parse_size(b: &[u8]) -> Option<usize> {
    if b.is_empty() || b.len() > 18 {
        return None;
    }
    let mut n: usize = 0;
    for &c in b {
        if !c.is_ascii_digit() {
            return None;
        }
        n = n * 10 + usize::from(c - b'0');
    }
    Some(n)
}

#[cfg(test)]
mod tests;
