//! Fuzz the JWT reader with what clients and pushes send: user JWTs in CONNECT, account
//! JWTs in `$SYS.REQ.CLAIMS.UPDATE`, creds and operator files. No input may panic.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let _ = petrel_jwt::decode::<petrel_jwt::User>(&text);
    let _ = petrel_jwt::decode::<petrel_jwt::Account>(&text);
    let _ = petrel_jwt::decode::<petrel_jwt::Operator>(&text);
    let _ = petrel_jwt::peek_subject(&text);
    let _ = petrel_jwt::parse_creds(&text);
    let _ = petrel_jwt::parse_decorated(&text);
});
