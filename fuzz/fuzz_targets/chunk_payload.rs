//! Fuzz target `chunk_payload`: the property is `checks::chunk_payload` (fuzz/checks.rs),
//! which the workspace test tests/fuzz_regressions.rs also runs on stable.
#![no_main]

#[path = "../checks.rs"]
mod checks;

libfuzzer_sys::fuzz_target!(|data: &[u8]| checks::chunk_payload(data));
