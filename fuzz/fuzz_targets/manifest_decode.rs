//! Any bytes: decoding never panics, and whatever decodes re-encodes to the
//! same bytes (the encoding is canonical).
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(m) = ferry_protocol::Manifest::decode(data) {
        assert_eq!(m.encode(), data);
    }
    if let Ok(r) = ferry_protocol::ChannelRecord::decode(data) {
        assert_eq!(r.encode(), data);
    }
});
