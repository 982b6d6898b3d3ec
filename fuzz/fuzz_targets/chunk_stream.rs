//! Any bytes, fed in two pieces at any split: the stream decoder never
//! panics and agrees with feeding it all at once.
#![no_main]
use ferry_protocol::frame::StreamDecoder;
use libfuzzer_sys::fuzz_target;

fn decode(parts: &[&[u8]]) -> Result<usize, ferry_protocol::FrameError> {
    let mut d = StreamDecoder::new();
    let mut buf = Vec::new();
    let mut n = 0;
    for p in parts {
        buf.extend_from_slice(p);
        while let Some((_, used)) = d.next(&buf)? {
            buf.drain(..used);
            n += 1;
        }
    }
    d.finish(&buf)?;
    Ok(n)
}

fuzz_target!(|data: &[u8]| {
    let whole = decode(&[data]);
    if !data.is_empty() {
        let split = data[0] as usize % data.len();
        assert_eq!(decode(&[&data[..split], &data[split..]]), whole);
    }
});
