//! Fuzz what clients send to consumers: ack subjects (`$JS.ACK...`), ack bodies (`+ACK`,
//! `-NAK` with JSON or Go-duration delays, `+WPI`, `+NXT` with pull bodies, `+TERM`) and pull
//! request bodies, applied to a consumer's ack state. No input may panic.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let [flags, delivered, subject_len, rest @ ..] = data else {
        return;
    };
    let cut = usize::from(*subject_len).min(rest.len());
    let (subject, body) = rest.split_at(cut);
    let subject = String::from_utf8_lossy(subject);
    let subject = if flags & 2 == 0 {
        format!("$JS.ACK.S.C.{subject}")
    } else {
        subject.into_owned()
    };
    petrel_jetstream::fuzzing::ack(&subject, body, flags & 1 == 1, *delivered);
    petrel_jetstream::fuzzing::pull_request(body);
});
