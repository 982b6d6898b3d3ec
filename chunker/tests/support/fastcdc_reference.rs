//! The cut points Ferry had before its own search, shared by the reference
//! tests (chunker/tests/reference.rs) and the chunking bench
//! (benches/chunking.rs, through `#[path]`).

use fastcdc::v2020::{cut, select_masks, Normalization};
use ferry_protocol::ChunkerParams;

/// fastcdc 5.0.0's `v2020::cut` called chunk by chunk, normalization level 1.
pub fn fastcdc_lengths(p: ChunkerParams, data: &[u8]) -> Vec<u32> {
    let (min, avg, max) = (p.min as usize, p.avg as usize, p.max as usize);
    let (ms, ml) = select_masks(avg, Normalization::Level1);
    let mut out = Vec::new();
    let mut pos = 0;
    while pos < data.len() {
        let (_, len) = cut(&data[pos..], min, avg, max, ms, ml, ms << 1, ml << 1);
        out.push(len as u32);
        pos += len;
    }
    out
}
