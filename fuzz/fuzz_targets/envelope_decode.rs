//! Any bytes: envelope decoding and verification never panic.
#![no_main]
use ferry_protocol::signed::KIND_MANIFEST;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(env) = ferry_protocol::Envelope::decode(data, 1 << 20) {
        let keys = env.signers();
        let _ = env.verify(KIND_MANIFEST, &keys);
        assert_eq!(env.encode(), data);
    }
});
