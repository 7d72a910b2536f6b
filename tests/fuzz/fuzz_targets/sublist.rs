//! Fuzz the Sublist against the naive matcher: random inserts, removes and matches.
#![no_main]

use libfuzzer_sys::fuzz_target;
use petrel_subject::{is_valid_subject, matches, Sublist};

fuzz_target!(|data: &[u8]| {
    let alphabet: [&[u8]; 5] = [b"a", b"b", b"*", b">", b""];
    let mut subs: Vec<(Vec<u8>, u32)> = Vec::new();
    let mut list = Sublist::new();
    for (i, chunk) in data.chunks(4).enumerate() {
        let subject: Vec<u8> = chunk
            .iter()
            .map(|b| alphabet[usize::from(*b) % alphabet.len()])
            .collect::<Vec<_>>()
            .join(&b'.');
        match chunk[0] % 3 {
            0 | 1 => {
                let ok = list.insert(&subject, None, i as u32).is_ok();
                assert_eq!(ok, is_valid_subject(&subject));
                if ok {
                    subs.push((subject.clone(), i as u32));
                }
            }
            _ => {
                if let Some(pos) = subs.iter().position(|(s, _)| *s == subject) {
                    let (s, id) = subs.remove(pos);
                    assert!(list.remove(&s, None, &id));
                }
            }
        }
        let literal: Vec<u8> = subject.iter().map(|&b| if b == b'*' || b == b'>' { b'a' } else { b }).collect();
        let mut got: Vec<u32> = list.match_subject(&literal).psubs;
        got.sort_unstable();
        let mut want: Vec<u32> = subs.iter().filter(|(s, _)| !literal.split(|&b| b == b'.').any(<[u8]>::is_empty) && matches(s, &literal)).map(|(_, id)| *id).collect();
        want.sort_unstable();
        assert_eq!(got, want);
    }
});
