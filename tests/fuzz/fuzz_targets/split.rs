//! Shared by the route and leafnode parser targets: parse an input fed whole or in two
//! pieces; both must give the same ops and error.

use bytes::BytesMut;
use petrel_wire::route::{RouteOp, RouteParseError};

/// A route-protocol parser (`parse` or `parse_leaf`).
pub type Parser = fn(&mut BytesMut, usize, usize) -> Result<Option<RouteOp>, RouteParseError>;

fn run(parse: Parser, input: &[u8], cut: usize) -> (Vec<RouteOp>, Option<RouteParseError>) {
    let mut ops = Vec::new();
    let mut buf = BytesMut::from(&input[..cut]);
    for part in [None, Some(&input[cut..])] {
        if let Some(rest) = part {
            buf.extend_from_slice(rest);
        }
        loop {
            match parse(&mut buf, 256, 1024) {
                Ok(Some(op)) => ops.push(op),
                Ok(None) => break,
                Err(e) => return (ops, Some(e)),
            }
        }
    }
    (ops, None)
}

/// The fuzz body: the first byte picks the split point of the rest.
pub fn check(parse: Parser, data: &[u8]) {
    if data.is_empty() {
        return;
    }
    let cut = usize::from(data[0]) % data.len();
    let input = &data[1..];
    let cut = cut.min(input.len());
    assert_eq!(run(parse, input, cut), run(parse, input, input.len()));
}
