//! Any bytes: client reports and status bodies (both from the network)
//! decode or fail cleanly, and what decodes re-encodes faithfully.
#![no_main]
use ferry_protocol::report::{Report, Status};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(r) = Report::decode(data) {
        assert_eq!(Report::decode(&r.encode()).ok(), Some(r));
    }
    if let Ok(s) = Status::decode(data) {
        assert_eq!(Status::decode(&s.encode()).ok(), Some(s));
    }
});
