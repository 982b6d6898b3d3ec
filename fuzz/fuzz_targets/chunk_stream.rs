//! Fuzz target `chunk_stream`: the property is `checks::chunk_stream` (fuzz/checks.rs),
//! which the workspace test tests/fuzz_regressions.rs also runs on stable.
#![no_main]

#[path = "../checks.rs"]
mod checks;

libfuzzer_sys::fuzz_target!(|data: &[u8]| checks::chunk_stream(data));
