//! Any bytes: the channel record decoder (with its rollout policy) never
//! panics; whatever it accepts re-encodes to the same bytes, and the rollout
//! decision on it never panics for any client.
#![no_main]
use ferry_protocol::rollout::{decide, ClientView};
use ferry_protocol::ChannelRecord;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(r) = ChannelRecord::decode(data) {
        assert_eq!(r.encode(), data);
        let now = data.len() as u64 * 1_000_000;
        for installed in [None, Some("0.1"), Some(r.version.as_str())] {
            let _ = decide(
                &r.app,
                &r.target(),
                &r.policy,
                ClientView {
                    client_id: "fuzz-client-0001",
                    group: r.policy.groups.keys().next().map(String::as_str),
                    installed,
                    now,
                },
            );
        }
    }
});
