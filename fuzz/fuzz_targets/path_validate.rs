//! Fuzz target `path_validate`: the property is `checks::path_validate` (fuzz/checks.rs),
//! which the workspace test tests/fuzz_regressions.rs also runs on stable.
#![no_main]

#[path = "../checks.rs"]
mod checks;

libfuzzer_sys::fuzz_target!(|data: &[u8]| checks::path_validate(data));
