//! Any bytes, with or without a base: decoding a compressed manifest never
//! panics and never yields more than it declared.
#![no_main]
use ferry_protocol::manifest_delta::{decode, MAX_DECODED};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let (base, frame) = data.split_at(data.len() / 3);
    for b in [None, Some(base)] {
        if let Ok(out) = decode(frame, b) {
            assert!(out.len() <= MAX_DECODED);
        }
    }
});
