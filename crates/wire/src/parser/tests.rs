//! Parser unit tests: every op, every error, and the split-at-every-offset property.

use super::*;
use proptest::prelude::*;

fn parse_all(p: &mut Parser, buf: &mut BytesMut) -> Result<Vec<ClientOp>, ParseError> {
    let mut out = Vec::new();
    while let Some(op) = p.parse(buf)? {
        out.push(op);
    }
    Ok(out)
}

fn ops(input: &[u8]) -> Result<Vec<ClientOp>, ParseError> {
    let mut p = Parser::new(4096, 1024 * 1024);
    let mut buf = BytesMut::from(input);
    parse_all(&mut p, &mut buf)
}

fn b(s: &str) -> Bytes {
    Bytes::copy_from_slice(s.as_bytes())
}

const TRANSCRIPT: &[u8] = b"CONNECT {\"verbose\":false,\"headers\":true}\r\n\
PING\r\npong\r\nSUB foo 1\r\nsub foo.* q 2\r\nPUB foo 5\r\nhello\r\n\
PUB foo reply.x 0\r\n\r\nHPUB foo 12 14\r\nNATS/1.0\r\n\r\nhi\r\n\
HPUB foo r 22 24\r\nNATS/1.0\r\nA: b\r\nC:\r\n\r\nhi\r\nUNSUB 1\r\nunsub 2 10\r\n\
Pub\tbar\t 3\r\n\r\n\r\r\n+OK\r\n-ERR 'x'\r\nINFO {}\r\nPING\n";

fn transcript_ops() -> Vec<ClientOp> {
    vec![
        ClientOp::Connect(b("{\"verbose\":false,\"headers\":true}")),
        ClientOp::Ping,
        ClientOp::Pong,
        ClientOp::Sub {
            subject: b("foo"),
            queue: None,
            sid: b("1"),
        },
        ClientOp::Sub {
            subject: b("foo.*"),
            queue: Some(b("q")),
            sid: b("2"),
        },
        ClientOp::Pub {
            subject: b("foo"),
            reply: None,
            payload: b("hello"),
        },
        ClientOp::Pub {
            subject: b("foo"),
            reply: Some(b("reply.x")),
            payload: b(""),
        },
        ClientOp::HPub {
            subject: b("foo"),
            reply: None,
            data: b("NATS/1.0\r\n\r\nhi"),
            hdr_len: 12,
        },
        ClientOp::HPub {
            subject: b("foo"),
            reply: Some(b("r")),
            data: b("NATS/1.0\r\nA: b\r\nC:\r\n\r\nhi"),
            hdr_len: 22,
        },
        ClientOp::Unsub {
            sid: b("1"),
            max: None,
        },
        ClientOp::Unsub {
            sid: b("2"),
            max: Some(10),
        },
        ClientOp::Pub {
            subject: b("bar"),
            reply: None,
            payload: b("\r\n\r"),
        },
        ClientOp::Ok,
        ClientOp::Err,
        ClientOp::Info,
        ClientOp::Ping,
    ]
}

#[test]
fn parses_transcript() {
    assert_eq!(ops(TRANSCRIPT).unwrap(), transcript_ops());
}

/// Feed the transcript in two pieces split at every byte offset, and byte by byte.
#[test]
fn any_split_gives_same_ops() {
    let want = transcript_ops();
    for cut in 0..=TRANSCRIPT.len() {
        let mut p = Parser::new(4096, 1024 * 1024);
        let mut buf = BytesMut::from(&TRANSCRIPT[..cut]);
        let mut got = parse_all(&mut p, &mut buf).unwrap();
        buf.extend_from_slice(&TRANSCRIPT[cut..]);
        got.extend(parse_all(&mut p, &mut buf).unwrap());
        assert_eq!(got, want, "split at {cut}");
        assert!(buf.is_empty());
    }
    let mut p = Parser::new(4096, 1024 * 1024);
    let mut buf = BytesMut::new();
    let mut got = Vec::new();
    for &byte in TRANSCRIPT {
        buf.extend_from_slice(&[byte]);
        got.extend(parse_all(&mut p, &mut buf).unwrap());
    }
    assert_eq!(got, want);
}

#[test]
fn payload_is_zero_copy() {
    let mut p = Parser::new(4096, 1024);
    let mut buf = BytesMut::from(&b"PUB foo 5\r\nhello\r\n"[..]);
    let base = buf.as_ptr() as usize;
    let Some(ClientOp::Pub { payload, .. }) = p.parse(&mut buf).unwrap() else {
        panic!("not a PUB");
    };
    assert_eq!(payload.as_ptr() as usize, base + 11);
}

#[test]
fn errors_match_nats_server() {
    assert_eq!(ops(b"FOO\r\n"), Err(ParseError::UnknownOp));
    assert_eq!(ops(b"MSG foo 1 2\r\nhi\r\n"), Err(ParseError::UnknownOp));
    assert_eq!(ops(b"PUB foo 2\r\nabc\r\n"), Err(ParseError::UnknownOp));
    assert_eq!(ops(b"PUB foo x\r\n"), Err(ParseError::BadArgs("PUB")));
    assert_eq!(ops(b"PUB foo -1\r\n"), Err(ParseError::BadArgs("PUB")));
    assert_eq!(ops(b"PUB a b c 2\r\n"), Err(ParseError::BadArgs("PUB")));
    assert_eq!(ops(b"SUB foo\r\n"), Err(ParseError::BadArgs("SUB")));
    assert_eq!(ops(b"UNSUB\r\n"), Err(ParseError::UnknownOp));
    assert_eq!(ops(b"UNSUB 1 2 3\r\n"), Err(ParseError::BadArgs("UNSUB")));
    assert_eq!(
        ops(b"SUB foo 1 extra 2\r\n"),
        Err(ParseError::BadArgs("SUB"))
    );
    assert_eq!(ops(b"\r\n"), Err(ParseError::UnknownOp));
    assert_eq!(ops(b"   SUB foo 1\r\n"), Err(ParseError::UnknownOp));
    assert_eq!(ops(b"aaaaaaaaaaaa"), Err(ParseError::UnknownOp));
    assert_eq!(ops(b"HPUB foo 10 5\r\n"), Err(ParseError::BadArgs("HPUB")));
    assert_eq!(
        ParseError::UnknownOp.err_text(),
        Some("Unknown Protocol Operation")
    );
    assert_eq!(ParseError::BadArgs("PUB").err_text(), None);
}

#[test]
fn max_payload_checked_on_control_line() {
    let mut p = Parser::new(4096, 100);
    let mut buf = BytesMut::from(&b"PUB foo 101\r\n"[..]);
    assert_eq!(p.parse(&mut buf), Err(ParseError::MaxPayload));
    let mut p = Parser::new(4096, 100);
    let mut buf = BytesMut::from(&b"HPUB foo 12 101\r\n"[..]);
    assert_eq!(p.parse(&mut buf), Err(ParseError::MaxPayload));
    let mut p = Parser::new(4096, 100);
    let mut buf = BytesMut::from(&b"PUB foo 100\r\n"[..]);
    buf.extend_from_slice(&[b'x'; 100]);
    buf.extend_from_slice(b"\r\n");
    assert!(matches!(p.parse(&mut buf), Ok(Some(ClientOp::Pub { .. }))));
}

/// nats-server counts only the argument bytes (after the verb and its blanks) against
/// max_control_line, complete or still arriving.
#[test]
fn max_control_line_counts_argument_bytes() {
    let max = 64;
    let args_ok = format!("{} 1", "a".repeat(max - 2));
    let mut p = Parser::new(max, 1024);
    let mut buf = BytesMut::from(format!("SUB    {args_ok}\r\n").as_bytes());
    assert!(matches!(p.parse(&mut buf), Ok(Some(ClientOp::Sub { .. }))));
    let mut buf = BytesMut::from(format!("SUB {}1 1\r\n", "a".repeat(max - 2)).as_bytes());
    assert_eq!(p.parse(&mut buf), Err(ParseError::MaxControlLine));
    // Still arriving: max argument bytes (plus a CR) wait; one more is an error.
    let mut p = Parser::new(max, 1024);
    let mut buf = BytesMut::from(format!("SUB {}\r", "a".repeat(max)).as_bytes());
    assert_eq!(p.parse(&mut buf), Ok(None));
    buf.extend_from_slice(b"\n");
    assert!(matches!(p.parse(&mut buf), Err(ParseError::BadArgs("SUB"))));
    let mut p = Parser::new(max, 1024);
    let mut buf = BytesMut::from(format!("PUB {}", "a".repeat(max + 1)).as_bytes());
    assert_eq!(p.parse(&mut buf), Err(ParseError::MaxControlLine));
    // PING tolerates trailing junk and blanks, as nats-server does.
    let mut buf = BytesMut::from(format!("PINGX\r\nPING{}\r\n", " ".repeat(5000)).as_bytes());
    let mut p = Parser::new(max, 1024);
    assert_eq!(
        parse_all(&mut p, &mut buf),
        Ok(vec![ClientOp::Ping, ClientOp::Ping])
    );
}

#[test]
fn unsub_with_bad_max_unsubscribes_now() {
    assert_eq!(
        ops(b"UNSUB 1 x\r\n").unwrap(),
        vec![ClientOp::Unsub {
            sid: b("1"),
            max: None
        }]
    );
}

#[test]
fn hpub_refused_without_headers() {
    let mut p = Parser::new(4096, 1024);
    p.set_headers(false);
    let mut buf = BytesMut::from(&b"HPUB foo 12 14\r\n"[..]);
    assert_eq!(p.parse(&mut buf), Err(ParseError::BadArgs("HPUB")));
}

proptest! {
    /// The parser never panics, and a split anywhere gives the same ops and the same error
    /// as the whole input at once.
    #[test]
    fn never_panics_and_split_invariant(data in proptest::collection::vec(prop_oneof![
        4 => any::<u8>(),
        1 => Just(b'\r'), 1 => Just(b'\n'), 1 => Just(b' '),
    ], 0..300), prefix in prop_oneof![Just(""), Just("PUB a 3\r\n"), Just("SUB "), Just("HPUB x 12 14\r\n"), Just("UNSUB ")], cut in 0usize..400) {
        let mut input = prefix.as_bytes().to_vec();
        input.extend_from_slice(&data);
        let run = |cut: usize| {
            let mut p = Parser::new(64, 128);
            let mut buf = BytesMut::from(&input[..cut]);
            let mut ops = Vec::new();
            let step = |p: &mut Parser, buf: &mut BytesMut, ops: &mut Vec<ClientOp>| -> Option<ParseError> {
                loop {
                    match p.parse(buf) {
                        Ok(Some(op)) => ops.push(op),
                        Ok(None) => return None,
                        Err(e) => return Some(e),
                    }
                }
            };
            if let Some(e) = step(&mut p, &mut buf, &mut ops) {
                return (ops, Some(e));
            }
            buf.extend_from_slice(&input[cut..]);
            let e = step(&mut p, &mut buf, &mut ops);
            (ops, e)
        };
        let cut = cut.min(input.len());
        prop_assert_eq!(run(cut), run(input.len()));
    }

    /// Random sequences of valid ops survive a random split.
    #[test]
    fn valid_ops_roundtrip(payloads in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 0..40), 1..8), cut in 0usize..400) {
        let mut wire = Vec::new();
        let mut want = Vec::new();
        for (i, pl) in payloads.iter().enumerate() {
            wire.extend_from_slice(format!("PUB s.{i} {}\r\n", pl.len()).as_bytes());
            wire.extend_from_slice(pl);
            wire.extend_from_slice(b"\r\n");
            want.push(ClientOp::Pub { subject: Bytes::from(format!("s.{i}")), reply: None, payload: Bytes::copy_from_slice(pl) });
        }
        let cut = cut.min(wire.len());
        let mut p = Parser::new(4096, 1024);
        let mut buf = BytesMut::from(&wire[..cut]);
        let mut got = parse_all(&mut p, &mut buf).unwrap();
        buf.extend_from_slice(&wire[cut..]);
        got.extend(parse_all(&mut p, &mut buf).unwrap());
        prop_assert_eq!(got, want);
    }
}

/// Feeds `input` in pieces of `chunk` bytes (1: the fast path for whole PUBs never
/// applies; the whole length: it applies wherever it can), parsing after each piece.
fn fed_in(
    chunk: usize,
    input: &[u8],
    max_line: usize,
    max_payload: usize,
) -> (Vec<ClientOp>, Option<ParseError>) {
    let mut p = Parser::new(max_line, max_payload);
    let mut buf = BytesMut::new();
    let mut ops = Vec::new();
    for piece in input.chunks(chunk.max(1)) {
        buf.extend_from_slice(piece);
        loop {
            match p.parse(&mut buf) {
                Ok(Some(op)) => ops.push(op),
                Ok(None) => break,
                Err(e) => return (ops, Some(e)),
            }
        }
    }
    (ops, None)
}

proptest! {
    /// The fast path for whole PUBs gives exactly what the general path gives, for PUB
    /// lines near every edge: blanks, case, argument counts, sizes, limits, a payload
    /// without its CRLF.
    #[test]
    fn whole_pub_fast_path_matches_the_general_path(
        ops in proptest::collection::vec((
            prop_oneof![Just("PUB"), Just("pub"), Just("PUB "), Just("PUB\t")],
            prop_oneof![Just(" "), Just("\t"), Just("  ")],
            "[a-z.*>]{0,12}",
            proptest::option::of("[a-zA-Z_.]{1,10}"),
            proptest::collection::vec(any::<u8>(), 0..24),
            prop_oneof![4 => Just(0i64), 1 => -2i64..3],
            prop_oneof![4 => Just("\r\n"), 1 => Just("\n"), 1 => Just("x\n"), 1 => Just("")],
            prop_oneof![4 => Just("\r\n"), 1 => Just("\n"), 1 => Just("ab")],
        ), 1..5),
        max_line in prop_oneof![Just(4096usize), 8usize..40],
        max_payload in prop_oneof![Just(1024usize), 0usize..20],
    ) {
        let mut input = Vec::new();
        for (verb, sep, subject, reply, payload, skew, eol, tail) in &ops {
            let size = (payload.len() as i64 + skew).max(0);
            let mut line = format!("{verb}{sep}{subject}");
            if let Some(r) = reply {
                line.push_str(&format!("{sep}{r}"));
            }
            line.push_str(&format!("{sep}{size}{eol}"));
            input.extend_from_slice(line.as_bytes());
            input.extend_from_slice(payload);
            input.extend_from_slice(tail.as_bytes());
        }
        prop_assert_eq!(
            fed_in(1, &input, max_line, max_payload),
            fed_in(input.len(), &input, max_line, max_payload)
        );
    }
}

#[test]
fn a_whole_pub_with_reply_is_taken_in_one_piece() {
    let mut buf = BytesMut::from(&b"PUB a.b _INBOX.1 3\r\nxyz\r\nPING\r\n"[..]);
    let mut p = Parser::new(4096, 1024);
    assert_eq!(
        p.parse(&mut buf),
        Ok(Some(ClientOp::Pub {
            subject: b("a.b"),
            reply: Some(b("_INBOX.1")),
            payload: b("xyz"),
        }))
    );
    assert_eq!(&buf[..], b"PING\r\n");
}

/// The naive model of [`two_spaces`]: a byte at a time.
fn two_spaces_naive(line: &[u8]) -> Option<Vec<usize>> {
    if line.contains(&b'\t') {
        return None;
    }
    let at: Vec<usize> = (0..line.len()).filter(|&i| line[i] == b' ').collect();
    (1..=2).contains(&at.len()).then_some(at)
}

proptest! {
    #[test]
    fn two_spaces_matches_the_byte_by_byte_model(
        line in proptest::collection::vec(
            prop_oneof![Just(b' '), Just(b'\t'), Just(b'a'), Just(0u8), Just(0x80u8),
                Just(0x20u8 ^ 0x80), any::<u8>()],
            0..40,
        )
    ) {
        let fast = two_spaces(&line).map(|(at, n)| at[..n].to_vec());
        prop_assert_eq!(fast, two_spaces_naive(&line));
    }
}

#[test]
fn peek_pub_finds_the_parts_in_place() {
    let p = Parser::new(4096, 1024);
    let buf = b"PUB a.b r.x 3\r\nabc\r\nPING\r\n";
    let at = p.peek_pub(buf).unwrap();
    assert_eq!(&buf[at.subject.clone()], b"a.b");
    assert_eq!(&buf[at.reply.clone().unwrap()], b"r.x");
    assert_eq!(&buf[at.payload.clone()], b"abc");
    assert_eq!(&buf[at.len..], b"PING\r\n");
    for partial in [
        &b"PUB a 3\r\nab"[..],
        b"PUB a\t3\r\nabc\r\n",
        b"PUB a  3\r\nabc\r\n",
    ] {
        assert_eq!(p.peek_pub(partial), None, "{partial:?}");
    }
}
