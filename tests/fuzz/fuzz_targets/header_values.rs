//! Fuzz the header values the 2.11/2.12 write paths parse: `Nats-Schedule` patterns (`@at`,
//! `@every`, cron) in `Nats-Schedule-Time-Zone` zones and their next firings, `Nats-TTL`
//! and `Nats-Incr`. No input may panic.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let [a, b, t0, t1, t2, t3, rest @ ..] = data else {
        return;
    };
    let (pattern, tail) = rest.split_at(usize::from(*a).min(rest.len()));
    let (zone, value) = tail.split_at(usize::from(*b).min(tail.len()));
    let at = i64::from(i32::from_le_bytes([*t0, *t1, *t2, *t3])) * 1_000_000_000;
    petrel_jetstream::fuzzing::header_values(
        &String::from_utf8_lossy(pattern),
        &String::from_utf8_lossy(zone),
        &String::from_utf8_lossy(value),
        at,
    );
});
