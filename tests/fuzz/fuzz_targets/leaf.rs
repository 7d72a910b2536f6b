//! Fuzz the leafnode protocol parser (`LS+`/`LS-`/`LMSG` without accounts): no input may
//! panic, and feeding the input in two pieces (split at a fuzzer-chosen offset) must give
//! the same ops and error as feeding it whole.
#![no_main]

use bytes::BytesMut;
use libfuzzer_sys::fuzz_target;
use petrel_wire::route::{parse_leaf, RouteOp, RouteParseError};

fn run(input: &[u8], cut: usize) -> (Vec<RouteOp>, Option<RouteParseError>) {
    let mut ops = Vec::new();
    let mut buf = BytesMut::from(&input[..cut]);
    for part in [None, Some(&input[cut..])] {
        if let Some(rest) = part {
            buf.extend_from_slice(rest);
        }
        loop {
            match parse_leaf(&mut buf, 256, 1024) {
                Ok(Some(op)) => ops.push(op),
                Ok(None) => break,
                Err(e) => return (ops, Some(e)),
            }
        }
    }
    (ops, None)
}

fuzz_target!(|data: &[u8]| {
    if data.is_empty() {
        return;
    }
    let cut = usize::from(data[0]) % data.len();
    let input = &data[1..];
    let cut = cut.min(input.len());
    assert_eq!(run(input, cut), run(input, input.len()));
});
