//! Fuzz target `chunker_invariants`: the property is `checks::chunker_invariants` (fuzz/checks.rs),
//! which the workspace test tests/fuzz_regressions.rs also runs on stable.
#![no_main]

#[path = "../checks.rs"]
mod checks;

libfuzzer_sys::fuzz_target!(|data: &[u8]| checks::chunker_invariants(data));
