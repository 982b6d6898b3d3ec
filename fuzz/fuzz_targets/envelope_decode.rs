//! Fuzz target `envelope_decode`: the property is `checks::envelope_decode` (fuzz/checks.rs),
//! which the workspace test tests/fuzz_regressions.rs also runs on stable.
#![no_main]

#[path = "../checks.rs"]
mod checks;

libfuzzer_sys::fuzz_target!(|data: &[u8]| checks::envelope_decode(data));
