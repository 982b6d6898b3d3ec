//! Ferry's cut-point search against the reference it replaces: the pinned
//! `fastcdc` crate's `v2020::cut`, called chunk by chunk exactly as Ferry
//! did before it had its own search. Every path (a whole buffer, one chunk
//! at a time, windows cut on several threads, a trickled stream, a scanned
//! file that is read or mapped) must give the crate's cut points, on random,
//! text-like and repetitive inputs and on random parameters.

use std::io::Read;

#[path = "support/fastcdc_reference.rs"]
mod fastcdc_reference;
use fastcdc_reference::fastcdc_lengths;

use ferry_chunker::{scan_tree, Chunker, ScanOptions};
use ferry_protocol::{ChunkId, ChunkerParams, EntryKind};
use proptest::prelude::*;

/// splitmix64 bytes: seeded, independent of any RNG crate.
fn random_bytes(seed: u64, len: usize) -> Vec<u8> {
    let mut s = seed;
    let mut out = Vec::with_capacity(len + 8);
    while out.len() < len {
        s = s.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = s;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        out.extend_from_slice(&(z ^ (z >> 31)).to_le_bytes());
    }
    out.truncate(len);
    out
}

/// Inputs of different character: random, few distinct bytes (many gear
/// hash collisions), short repeated periods (cut points or none at all,
/// repeating), and runs of zeros inside random data.
fn input(kind: u8, seed: u64, len: usize) -> Vec<u8> {
    let r = random_bytes(seed, len);
    match kind % 4 {
        0 => r,
        1 => r.iter().map(|b| b"abc \n"[*b as usize % 5]).collect(),
        2 => {
            let period = 1 + (seed % 97) as usize;
            (0..len).map(|i| r[i % period]).collect()
        }
        _ => r
            .iter()
            .enumerate()
            .map(|(i, b)| if (i / 5000) % 3 == 1 { 0 } else { *b })
            .collect(),
    }
}

/// Any valid even parameters, sized so a test input holds many chunks.
fn arb_params() -> impl Strategy<Value = ChunkerParams> {
    (32u32..4096, 0u32..4, 0u32..6).prop_map(|(min_half, avg_mul, max_mul)| {
        let min = (2 * min_half).max(64);
        let avg = (min << avg_mul).max(256);
        let max = (avg << max_mul).max(1024);
        ChunkerParams { min, avg, max }
    })
}

/// Hands out data in small, uneven pieces.
struct Trickle<'a> {
    data: &'a [u8],
    n: usize,
}

impl Read for Trickle<'_> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        self.n += 1;
        let k = (1 + (self.n * 7919) % 65_537)
            .min(buf.len())
            .min(self.data.len());
        buf[..k].copy_from_slice(&self.data[..k]);
        self.data = &self.data[k..];
        Ok(k)
    }
}

fn lengths(refs: &[ferry_protocol::ChunkRef]) -> Vec<u32> {
    refs.iter().map(|c| c.len).collect()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    /// Whole buffers and single chunks give fastcdc's cut points.
    #[test]
    fn buffer_cut_points_equal_fastcdc(
        params in arb_params(), kind in any::<u8>(), seed in any::<u64>(), len in 0usize..600_000,
    ) {
        let data = input(kind, seed, len);
        let want = fastcdc_lengths(params, &data);
        let c = Chunker::new(params).unwrap();
        prop_assert_eq!(&c.cut_lengths(&data), &want);
        if let Some(&first) = want.first() {
            prop_assert_eq!(c.next_cut(&data) as u32, first);
        }
    }

    /// Chunk ids are the BLAKE3 hashes of the pieces fastcdc cuts, whether
    /// the buffer is cut at once or streamed in odd-sized reads.
    #[test]
    fn chunks_and_streams_equal_fastcdc(
        params in arb_params(), kind in any::<u8>(), seed in any::<u64>(), len in 0usize..300_000,
    ) {
        let data = input(kind, seed, len);
        let want = fastcdc_lengths(params, &data);
        let c = Chunker::new(params).unwrap();
        let chunks = c.chunk_bytes(&data);
        prop_assert_eq!(lengths(&chunks), want);
        let mut pos = 0;
        for ch in &chunks {
            prop_assert_eq!(ch.id, ChunkId::of(&data[pos..pos + ch.len as usize]));
            pos += ch.len as usize;
        }
        let streamed = c.chunk_reader(Trickle { data: &data, n: 0 }).unwrap();
        prop_assert_eq!(streamed, chunks);
    }
}

/// Several windows, each searched on several threads: the stitching of
/// candidate blocks and of windows must not move a cut point.
#[test]
fn big_inputs_equal_fastcdc() {
    for (kind, params) in [
        (0, ChunkerParams::default()),
        (1, ChunkerParams::default()),
        (3, ChunkerParams::with_avg(64 * 1024).unwrap()),
        (
            0,
            ChunkerParams {
                min: 64,
                avg: 256,
                max: 1024,
            },
        ),
        (
            0,
            ChunkerParams {
                min: 1 << 20,
                avg: 2 << 20,
                max: 8 << 20,
            },
        ),
    ] {
        let data = input(kind, 99, 11 << 20 | 12_345);
        let want = fastcdc_lengths(params, &data);
        let c = Chunker::new(params).unwrap();
        assert_eq!(lengths(&c.chunk_bytes(&data)), want, "{params} kind {kind}");
        let streamed = c.chunk_reader(Trickle { data: &data, n: 0 }).unwrap();
        assert_eq!(lengths(&streamed), want, "{params} kind {kind} streamed");
    }
}

/// The scan reads small files and maps big ones: both give fastcdc's cuts.
#[test]
fn scanned_files_equal_fastcdc() {
    let dir = tempfile::tempdir().unwrap();
    let sizes = [
        0usize,
        1,
        5000,
        70_000,
        (1 << 20) - 1,
        1 << 20,
        9 << 20 | 77,
    ];
    for (i, &len) in sizes.iter().enumerate() {
        std::fs::write(
            dir.path().join(format!("f{i}")),
            input(i as u8, i as u64, len),
        )
        .unwrap();
    }
    let params = ChunkerParams::default();
    let tree = scan_tree(
        dir.path(),
        &ScanOptions {
            params,
            progress: None,
        },
    )
    .unwrap();
    for (i, &len) in sizes.iter().enumerate() {
        let e = tree
            .entries
            .iter()
            .find(|e| e.path == format!("f{i}"))
            .unwrap();
        let EntryKind::File { size, chunks, .. } = &e.kind else {
            panic!("f{i} is a file");
        };
        assert_eq!(*size, len as u64);
        let data = input(i as u8, i as u64, len);
        assert_eq!(lengths(chunks), fastcdc_lengths(params, &data), "f{i}");
    }
}
