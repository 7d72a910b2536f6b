//! Fuzz the route protocol parser: no input may panic, and feeding the input in two pieces
//! (split at a fuzzer-chosen offset) must give the same ops and error as feeding it whole.
#![no_main]

mod split;

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| split::check(petrel_wire::route::parse, data));
