//! The route (server-to-server) protocol of nats-server: ops a peer sends
//! (`INFO`, `CONNECT`, `PING`, `PONG`, `+OK`, `-ERR`, `RS+`, `RS-`, `RMSG`, `HMSG`),
//! parsed from a buffer one at a time, and encoders for the ones a server sends. Payloads
//! are zero-copy slices of the read buffer. The leafnode-origin forms (`LS+`, `LS-`,
//! `LMSG` with an origin) are sent only to route peers that ask for them with `lnoc`,
//! which Petrel does not. Leafnode connections use the same ops without an account
//! ([`parse_leaf`]; the encoders with an empty account).

use bytes::{BufMut, Bytes, BytesMut};

/// One op from a route peer. Messages with headers are `HMSG` on routes (the client op's
/// name with the route arguments); `HRMSG` is read too.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RouteOp {
    /// `INFO {json}`.
    Info(Bytes),
    /// `CONNECT {json}`.
    Connect(Bytes),
    /// `PING`.
    Ping,
    /// `PONG`.
    Pong,
    /// `+OK`.
    Ok,
    /// `-ERR <text>`.
    Err(Bytes),
    /// `RS+ <account> <subject> [<queue> <weight>]`: the peer has interest.
    Sub(RemoteSub),
    /// `RS- <account> <subject> [<queue>]`: the peer lost interest.
    Unsub(RemoteSub),
    /// `RMSG`/`HMSG`: a message for this server's subscribers.
    Msg(RoutedMsg),
}

/// The subject of `RS+`/`RS-`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RemoteSub {
    /// Account name.
    pub account: Bytes,
    /// Subject, wildcards allowed.
    pub subject: Bytes,
    /// Queue group, with its weight (members on the peer; 1 when not given).
    pub queue: Option<(Bytes, u32)>,
}

/// A routed message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RoutedMsg {
    /// Account name.
    pub account: Bytes,
    /// Subject.
    pub subject: Bytes,
    /// Reply subject.
    pub reply: Option<Bytes>,
    /// Queue groups the sender chose this server for.
    pub queues: Vec<Bytes>,
    /// Length of the header block at the start of `data` (`HMSG`).
    pub hdr_len: Option<usize>,
    /// Headers and payload.
    pub data: Bytes,
}

/// Why the bytes are not a route op.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RouteParseError {
    /// A control line longer than the limit.
    #[error("maximum control line exceeded")]
    ControlLine,
    /// A payload over the limit.
    #[error("maximum payload exceeded")]
    Payload,
    /// An op this protocol does not have.
    #[error("unknown protocol operation")]
    Unknown,
    /// A known op with arguments that do not parse.
    #[error("invalid arguments")]
    BadArgs,
}

/// Parses the next complete op from `buf`, removing its bytes; `Ok(None)` when more bytes
/// are needed.
pub fn parse(
    buf: &mut BytesMut,
    max_line: usize,
    max_payload: usize,
) -> Result<Option<RouteOp>, RouteParseError> {
    parse_as(buf, max_line, max_payload, false)
}

/// Parses the next op of a leafnode connection: `LS+ <subject>[ <queue> <weight>]`,
/// `LS- <subject>[ <queue>]`, `LMSG`/`HMSG` without an account (the connection is bound
/// to one), given as [`RouteOp::Sub`], [`RouteOp::Unsub`] and [`RouteOp::Msg`] with an
/// empty account; the other ops as on routes.
pub fn parse_leaf(
    buf: &mut BytesMut,
    max_line: usize,
    max_payload: usize,
) -> Result<Option<RouteOp>, RouteParseError> {
    parse_as(buf, max_line, max_payload, true)
}

fn parse_as(
    buf: &mut BytesMut,
    max_line: usize,
    max_payload: usize,
    leaf: bool,
) -> Result<Option<RouteOp>, RouteParseError> {
    let Some(eol) = memchr::memchr(b'\n', buf) else {
        return if buf.len() > max_line {
            Err(RouteParseError::ControlLine)
        } else {
            Ok(None)
        };
    };
    if eol > max_line {
        return Err(RouteParseError::ControlLine);
    }
    let line_end = if eol > 0 && buf[eol - 1] == b'\r' {
        eol - 1
    } else {
        eol
    };
    let line = &buf[..line_end];
    let (verb, rest) = match line.iter().position(|b| *b == b' ' || *b == b'\t') {
        Some(i) => (&line[..i], trim(&line[i + 1..])),
        None => (line, &[][..]),
    };
    let verb = verb.to_ascii_uppercase();
    let is_msg = match verb.as_slice() {
        b"HMSG" => true,
        b"RMSG" | b"HRMSG" => !leaf,
        b"LMSG" => leaf,
        _ => false,
    };
    let accounted = usize::from(!leaf);
    let needs = match is_msg {
        true => msg_size(rest, verb[0] == b'H', accounted)?,
        false => None,
    };
    if let Some((total, _)) = needs {
        if total > max_payload {
            return Err(RouteParseError::Payload);
        }
        if buf.len() < eol + 1 + total + 2 {
            return Ok(None);
        }
    }
    let line = buf.split_to(eol + 1).freeze();
    let rest = line.slice_ref(trim(line.get(verb.len()..line_end).unwrap_or_default()));
    let op = match verb.as_slice() {
        b"PING" => RouteOp::Ping,
        b"PONG" => RouteOp::Pong,
        b"+OK" => RouteOp::Ok,
        b"-ERR" => RouteOp::Err(rest),
        b"INFO" => RouteOp::Info(rest),
        b"CONNECT" => RouteOp::Connect(rest),
        b"RS+" if !leaf => RouteOp::Sub(remote_sub(&rest, true, true)?),
        b"RS-" if !leaf => RouteOp::Unsub(remote_sub(&rest, false, true)?),
        b"LS+" if leaf => RouteOp::Sub(remote_sub(&rest, true, false)?),
        b"LS-" if leaf => RouteOp::Unsub(remote_sub(&rest, false, false)?),
        _ if is_msg => {
            let (total, hdr) = needs.ok_or(RouteParseError::BadArgs)?;
            let body = buf.split_to(total + 2).freeze();
            if &body[total..] != b"\r\n" {
                return Err(RouteParseError::BadArgs);
            }
            RouteOp::Msg(routed(&rest, hdr, body.slice(..total), accounted)?)
        }
        _ => return Err(RouteParseError::Unknown),
    };
    Ok(Some(op))
}

fn trim(b: &[u8]) -> &[u8] {
    let start = b
        .iter()
        .position(|c| !c.is_ascii_whitespace())
        .unwrap_or(b.len());
    let end = b
        .iter()
        .rposition(|c| !c.is_ascii_whitespace())
        .map_or(start, |e| e + 1);
    &b[start..end.max(start)]
}

fn fields(b: &Bytes) -> Vec<Bytes> {
    b.split(|c| *c == b' ' || *c == b'\t')
        .filter(|f| !f.is_empty())
        .map(|f| b.slice_ref(f))
        .collect()
}

fn number(b: &[u8]) -> Result<usize, RouteParseError> {
    if b.is_empty() || b.len() > 12 || !b.iter().all(u8::is_ascii_digit) {
        return Err(RouteParseError::BadArgs);
    }
    std::str::from_utf8(b)
        .ok()
        .and_then(|s| s.parse().ok())
        .ok_or(RouteParseError::BadArgs)
}

/// `(total, header length)` from the end of an `RMSG`/`HMSG` line (`accounted`: 1 when
/// an account comes before the subject).
fn msg_size(
    rest: &[u8],
    headers: bool,
    accounted: usize,
) -> Result<Option<(usize, Option<usize>)>, RouteParseError> {
    let mut back = rest
        .rsplit(|c| *c == b' ' || *c == b'\t')
        .filter(|f| !f.is_empty());
    let (last, before) = (back.next(), back.next());
    let min = if headers { 3 } else { 2 } + accounted;
    if back.count() + 2 < min {
        return Err(RouteParseError::BadArgs);
    }
    let (Some(last), Some(before)) = (last, before) else {
        return Err(RouteParseError::BadArgs);
    };
    let total = number(last)?;
    let hdr = if headers {
        let h = number(before)?;
        if h > total {
            return Err(RouteParseError::BadArgs);
        }
        Some(h)
    } else {
        None
    };
    Ok(Some((total, hdr)))
}

/// `RS±`/`LS±` arguments; `accounted`: an account comes first (routes). On leafnode
/// connections a queue `LS+` must carry its weight (nats-server: 1 or 3 arguments).
fn remote_sub(
    rest: &Bytes,
    with_weight: bool,
    accounted: bool,
) -> Result<RemoteSub, RouteParseError> {
    let mut f = fields(rest);
    let account = match accounted {
        true if !f.is_empty() => f.remove(0),
        true => return Err(RouteParseError::BadArgs),
        false => Bytes::new(),
    };
    let queue = match (f.len(), with_weight) {
        (1, _) => None,
        (2, false) => Some((f[1].clone(), 1)),
        (2, true) if accounted => Some((f[1].clone(), 1)),
        (3, true) => {
            let w = u32::try_from(number(&f[2])?).map_err(|_| RouteParseError::BadArgs)?;
            Some((f[1].clone(), w))
        }
        _ => return Err(RouteParseError::BadArgs),
    };
    Ok(RemoteSub {
        account,
        subject: f[0].clone(),
        queue,
    })
}

/// The fields between account/subject and the sizes: `<reply>`, `+ <reply> <queues…>`
/// or `| <queues…>`. The common forms (no queues) allocate nothing. `a` is 1 when an
/// account comes first (routes), 0 on leafnode connections.
fn routed(
    rest: &Bytes,
    hdr: Option<usize>,
    data: Bytes,
    a: usize,
) -> Result<RoutedMsg, RouteParseError> {
    let mut it = rest
        .split(|c| *c == b' ' || *c == b'\t')
        .filter(|f| !f.is_empty());
    let mut first = [&[][..]; 6];
    let mut n = 0;
    for f in it.by_ref() {
        first[n] = f;
        n += 1;
        if n == first.len() {
            break;
        }
    }
    let sizes = if hdr.is_some() { 2 } else { 1 };
    if n < first.len() {
        // Everything fit: account, subject, [reply | + reply | |], sizes.
        if n < 1 + a + sizes {
            return Err(RouteParseError::BadArgs);
        }
        let middle = &first[1 + a..n - sizes];
        let (reply, queues) = match middle {
            [] => (None, Vec::new()),
            [r] if *r != b"+" && *r != b"|" => (Some(rest.slice_ref(r)), Vec::new()),
            [plus, r, qs @ ..] if *plus == b"+" => (
                Some(rest.slice_ref(r)),
                qs.iter().map(|q| rest.slice_ref(q)).collect(),
            ),
            [bar, qs @ ..] if *bar == b"|" => {
                (None, qs.iter().map(|q| rest.slice_ref(q)).collect())
            }
            _ => return Err(RouteParseError::BadArgs),
        };
        return Ok(RoutedMsg {
            account: if a == 1 {
                rest.slice_ref(first[0])
            } else {
                Bytes::new()
            },
            subject: rest.slice_ref(first[a]),
            reply,
            queues,
            hdr_len: hdr,
            data,
        });
    }
    // Many queue groups: the general form.
    let f = fields(rest);
    let middle = &f[1 + a..f.len() - sizes];
    let (reply, queues) = match middle {
        [plus, r, qs @ ..] if plus.as_ref() == b"+" => (Some(r.clone()), qs.to_vec()),
        [bar, qs @ ..] if bar.as_ref() == b"|" => (None, qs.to_vec()),
        _ => return Err(RouteParseError::BadArgs),
    };
    Ok(RoutedMsg {
        account: if a == 1 { f[0].clone() } else { Bytes::new() },
        subject: f[a].clone(),
        reply,
        queues,
        hdr_len: hdr,
        data,
    })
}

/// Appends `RS+ <account> <subject>[ <queue> <weight>]\r\n`, or on a leafnode
/// connection (an empty `account`) `LS+ <subject>[ <queue> <weight>]\r\n`.
pub fn sub(buf: &mut BytesMut, account: &[u8], subject: &[u8], queue: Option<(&[u8], u32)>) {
    buf.put_slice(if account.is_empty() { b"LS+ " } else { b"RS+ " });
    account_subject(buf, account, subject);
    if let Some((q, w)) = queue {
        buf.put_u8(b' ');
        buf.put_slice(q);
        buf.put_u8(b' ');
        buf.put_slice(itoa::Buffer::new().format(w).as_bytes());
    }
    buf.put_slice(b"\r\n");
}

/// Appends `RS- <account> <subject>[ <queue>]\r\n` (`LS- …` for an empty `account`).
pub fn unsub(buf: &mut BytesMut, account: &[u8], subject: &[u8], queue: Option<&[u8]>) {
    buf.put_slice(if account.is_empty() { b"LS- " } else { b"RS- " });
    account_subject(buf, account, subject);
    if let Some(q) = queue {
        buf.put_u8(b' ');
        buf.put_slice(q);
    }
    buf.put_slice(b"\r\n");
}

fn account_subject(buf: &mut BytesMut, account: &[u8], subject: &[u8]) {
    if !account.is_empty() {
        buf.put_slice(account);
        buf.put_u8(b' ');
    }
    buf.put_slice(subject);
}

/// Appends the control line of an `RMSG` (no headers) or `HMSG` (headers: `hdr_len` is
/// the header block's length); the data and CRLF follow. An empty `account` gives the
/// leafnode form (`LMSG`, or `HMSG` without an account).
pub fn msg_line(
    buf: &mut BytesMut,
    account: &[u8],
    subject: &[u8],
    reply: Option<&[u8]>,
    queues: &[&[u8]],
    hdr_len: Option<usize>,
    total: usize,
) {
    buf.reserve(
        account.len()
            + subject.len()
            + reply.map_or(0, |r| r.len() + 3)
            + queues.iter().map(|q| q.len() + 1).sum::<usize>()
            + 32,
    );
    buf.put_slice(match (hdr_len.is_some(), account.is_empty()) {
        (true, _) => b"HMSG ",
        (false, false) => b"RMSG ",
        (false, true) => b"LMSG ",
    });
    account_subject(buf, account, subject);
    buf.put_u8(b' ');
    match (reply, queues.is_empty()) {
        (Some(r), true) => {
            buf.put_slice(r);
            buf.put_u8(b' ');
        }
        (Some(r), false) => {
            buf.put_slice(b"+ ");
            buf.put_slice(r);
            buf.put_u8(b' ');
        }
        (None, false) => buf.put_slice(b"| "),
        (None, true) => {}
    }
    for q in queues {
        buf.put_slice(q);
        buf.put_u8(b' ');
    }
    let mut n = itoa::Buffer::new();
    if let Some(h) = hdr_len {
        buf.put_slice(n.format(h).as_bytes());
        buf.put_u8(b' ');
    }
    buf.put_slice(n.format(total).as_bytes());
    buf.put_slice(b"\r\n");
}

/// The route `INFO` JSON (nats-server's `Info` as routes use it). Unknown fields are
/// ignored and absent ones take their defaults, so any nats-server version parses.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(default)]
pub struct RouteInfo {
    /// Server id.
    pub server_id: String,
    /// Server name.
    pub server_name: String,
    /// nats-server version level.
    pub version: String,
    /// Protocol level.
    pub proto: i32,
    /// Toolchain.
    pub go: String,
    /// Route listen host.
    pub host: String,
    /// Route listen port.
    pub port: u16,
    /// Headers supported.
    pub headers: bool,
    /// Routes must authenticate.
    #[serde(skip_serializing_if = "is_false")]
    pub auth_required: bool,
    /// Routes must use TLS.
    #[serde(skip_serializing_if = "is_false")]
    pub tls_required: bool,
    /// Route certificates are verified.
    #[serde(skip_serializing_if = "is_false")]
    pub tls_verify: bool,
    /// Maximum payload.
    pub max_payload: i64,
    /// JetStream enabled (Petrel says `false` on routes: its JetStream is not clustered).
    #[serde(skip_serializing_if = "is_false")]
    pub jetstream: bool,
    /// `nats-route://host:port/` to reach this server (advertise, or gossip).
    #[serde(skip_serializing_if = "String::is_empty")]
    pub ip: String,
    /// Nonce (not signed by routes).
    #[serde(skip_serializing_if = "String::is_empty")]
    pub nonce: String,
    /// Cluster name.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub cluster: String,
    /// The cluster name was generated, not configured.
    #[serde(rename = "cluster_dynamic", skip_serializing_if = "is_false")]
    pub dynamic: bool,
    /// Client URLs of this server.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub connect_urls: Vec<String>,
    /// WebSocket client URLs of this server.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub ws_connect_urls: Vec<String>,
    /// Lame-duck mode.
    #[serde(skip_serializing_if = "is_false")]
    pub ldm: bool,
    /// Route pool size (absent: one route, no pool).
    #[serde(skip_serializing_if = "is_zero")]
    pub route_pool_size: i64,
    /// Pool index of this connection.
    #[serde(skip_serializing_if = "is_zero")]
    pub route_pool_idx: i64,
    /// Account of a per-account route.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub route_account: String,
    /// Compression mode (absent: not supported).
    #[serde(skip_serializing_if = "String::is_empty")]
    pub compression: String,
    /// Gossip mode of a forwarded INFO.
    #[serde(skip_serializing_if = "is_zero_u8")]
    pub gossip_mode: u8,
    /// Gateway URL (gateways are not supported: only read).
    #[serde(skip_serializing_if = "String::is_empty")]
    pub gateway_url: String,
    /// Leafnode URL of the server.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub leafnode_urls: Vec<String>,
    /// The server's JetStream domain.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub domain: String,
}

/// The route `CONNECT` JSON.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(default)]
pub struct RouteConnect {
    /// Always true for routes.
    pub echo: bool,
    /// Always false for routes.
    pub verbose: bool,
    /// Always false for routes.
    pub pedantic: bool,
    /// Route user.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub user: Option<String>,
    /// Route password.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pass: Option<String>,
    /// TLS in use.
    pub tls_required: bool,
    /// Headers supported.
    pub headers: bool,
    /// The soliciting server's id.
    pub name: String,
    /// Its cluster name.
    pub cluster: String,
    /// Its cluster name was generated.
    #[serde(rename = "cluster_dynamic", skip_serializing_if = "is_false")]
    pub dynamic: bool,
    /// Leafnode-origin cluster support (Petrel does not ask for `LS+`).
    #[serde(skip_serializing_if = "is_false")]
    pub lnoc: bool,
    /// Set by a gateway that dialled the route port by mistake.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub gateway: Option<String>,
    /// Set by a client that dialled the route port by mistake.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub lang: Option<String>,
}

fn is_false(b: &bool) -> bool {
    !*b
}

fn is_zero(n: &i64) -> bool {
    *n == 0
}

fn is_zero_u8(n: &u8) -> bool {
    *n == 0
}

/// Appends `INFO <json>\r\n` for a route.
pub fn info(buf: &mut BytesMut, info: &RouteInfo) {
    json_op(buf, b"INFO ", info);
}

/// Appends `CONNECT <json>\r\n`.
pub fn connect(buf: &mut BytesMut, c: &RouteConnect) {
    json_op(buf, b"CONNECT ", c);
}

/// Appends `<verb><json>\r\n` (the handshake documents of routes and leafnodes: structs
/// of strings, numbers, bools and JSON values, which always serialize).
pub(crate) fn json_op(buf: &mut BytesMut, verb: &[u8], value: &impl serde::Serialize) {
    buf.put_slice(verb);
    buf.put_slice(&serde_json::to_vec(value).unwrap_or_default());
    buf.put_slice(b"\r\n");
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    fn all(input: &[u8]) -> Vec<RouteOp> {
        let mut buf = BytesMut::from(input);
        let mut ops = Vec::new();
        while let Some(op) = parse(&mut buf, 4096, 1 << 20).unwrap() {
            ops.push(op);
        }
        assert!(buf.is_empty(), "left: {buf:?}");
        ops
    }

    #[test]
    fn parses_what_nats_server_sends() {
        let ops = all(b"INFO {\"a\":1} \r\nPING\r\nRS+ $G foo.*\r\nRS+ $G bar q 3\r\nRS- $G bar q\r\nRMSG $G foo.x 5\r\nhello\r\nRMSG $G foo.x _INBOX.1 2\r\nhi\r\nRMSG $G foo + _R q1 q2 0\r\n\r\nRMSG $G foo | q1 1\r\nx\r\nHMSG $G foo r 12 14\r\nNATS/1.0\r\n\r\nab\r\n");
        assert_eq!(ops[0], RouteOp::Info(Bytes::from_static(b"{\"a\":1}")));
        assert_eq!(ops[1], RouteOp::Ping);
        let RouteOp::Sub(s) = &ops[3] else { panic!() };
        assert_eq!(s.queue, Some((Bytes::from_static(b"q"), 3)));
        let RouteOp::Unsub(s) = &ops[4] else { panic!() };
        assert_eq!(
            s.queue.as_ref().map(|q| q.0.clone()),
            Some(Bytes::from_static(b"q"))
        );
        let RouteOp::Msg(m) = &ops[6] else { panic!() };
        assert_eq!(m.reply.as_deref(), Some(&b"_INBOX.1"[..]));
        assert_eq!(&m.data[..], b"hi");
        let RouteOp::Msg(m) = &ops[7] else { panic!() };
        assert_eq!((m.reply.as_deref(), m.queues.len()), (Some(&b"_R"[..]), 2));
        let RouteOp::Msg(m) = &ops[8] else { panic!() };
        assert_eq!((m.reply.is_none(), m.queues.len()), (true, 1));
        let RouteOp::Msg(m) = &ops[9] else { panic!() };
        assert_eq!((m.hdr_len, m.data.len()), (Some(12), 14));
    }

    #[test]
    fn encoders_round_trip() {
        let mut b = BytesMut::new();
        sub(&mut b, b"$G", b"a.>", Some((b"q", 2)));
        unsub(&mut b, b"$G", b"a.>", None);
        msg_line(&mut b, b"A", b"s", Some(b"r"), &[b"q1"], None, 2);
        b.put_slice(b"hi\r\n");
        msg_line(&mut b, b"A", b"s", None, &[b"q1"], Some(12), 12);
        b.put_slice(b"NATS/1.0\r\n\r\n\r\n");
        msg_line(&mut b, b"A", b"s", None, &[], None, 0);
        b.put_slice(b"\r\n");
        let ops = all(&b);
        assert_eq!(ops.len(), 5);
        let RouteOp::Msg(m) = &ops[2] else { panic!() };
        assert_eq!(
            (m.reply.as_deref(), &m.queues[0][..]),
            (Some(&b"r"[..]), &b"q1"[..])
        );
        let RouteOp::Msg(m) = &ops[3] else { panic!() };
        assert_eq!((m.reply.as_deref(), m.hdr_len), (None, Some(12)));
    }

    #[test]
    fn incomplete_and_bad_input() {
        let mut b = BytesMut::from(&b"RMSG $G foo 5\r\nhel"[..]);
        assert_eq!(parse(&mut b, 4096, 100), Ok(None));
        b.put_slice(b"lo\r\n");
        assert!(matches!(
            parse(&mut b, 4096, 100),
            Ok(Some(RouteOp::Msg(_)))
        ));
        for bad in [
            &b"RMSG $G 5\r\n"[..],
            b"RMSG $G foo x\r\n",
            b"HMSG $G f 9 3\r\n",
            b"RS+ a\r\n",
            b"XX\r\n",
            b"RMSG $G f 1\r\nab\r\n",
            b"RS+ a b q x\r\n",
        ] {
            let mut b = BytesMut::from(bad);
            assert!(parse(&mut b, 4096, 100).is_err(), "{bad:?}");
        }
        let mut b = BytesMut::from(&b"RMSG $G foo 500\r\n"[..]);
        assert_eq!(parse(&mut b, 4096, 100), Err(RouteParseError::Payload));
        let mut b = BytesMut::from(&[b'x'; 5000][..]);
        assert_eq!(parse(&mut b, 4096, 100), Err(RouteParseError::ControlLine));
    }

    /// Parses `input` with `parse` fed in two pieces split at `cut`: the ops and the
    /// error (limits: 64-byte lines, 32-byte payloads).
    pub(crate) fn split_run(
        parse: fn(&mut BytesMut, usize, usize) -> Result<Option<RouteOp>, RouteParseError>,
        input: &[u8],
        cut: usize,
    ) -> (Vec<RouteOp>, Option<RouteParseError>) {
        let mut ops = Vec::new();
        let mut buf = BytesMut::from(&input[..cut]);
        for part in [None, Some(&input[cut..])] {
            if let Some(rest) = part {
                buf.extend_from_slice(rest);
            }
            loop {
                match parse(&mut buf, 64, 32) {
                    Ok(Some(op)) => ops.push(op),
                    Ok(None) => break,
                    Err(e) => return (ops, Some(e)),
                }
            }
        }
        (ops, None)
    }

    fn run(input: &[u8], cut: usize) -> (Vec<RouteOp>, Option<RouteParseError>) {
        split_run(parse, input, cut)
    }

    proptest::proptest! {
        /// However the bytes are split, the same ops and error come out.
        #[test]
        fn any_split_parses_the_same(
            parts in proptest::collection::vec(proptest::sample::select(vec![
                "RS+ $G a.b\r\n", "RS+ A q.* grp 3\r\n", "RS- $G a.b\r\n", "PING\r\n",
                "RMSG $G s r 2\r\nhi\r\n", "HMSG $G s | q 12 12\r\nNATS/1.0\r\n\r\n\r\n",
                "RMSG $G s + r q 0\r\n\r\n", "INFO {}\r\n", "X\r\n", "RMSG $G s 99\r\n", "RS+\r\n",
            ]), 0..8),
            cut in 0usize..400,
        ) {
            let input: Vec<u8> = parts.concat().into_bytes();
            let cut = cut.min(input.len());
            proptest::prop_assert_eq!(run(&input, cut), run(&input, input.len()));
        }
    }
}
