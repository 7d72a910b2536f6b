//! Fuzz the nats.conf parser: any text loads or fails with an error, never a panic.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data) {
        let _ = petrel_config::load_str(text, "fuzz.conf");
    }
});
