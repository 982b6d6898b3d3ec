//! Chunking invariants: golden cut points, streaming equals the in-memory
//! reference, sizes within bounds, and locality of edits.
//!
//! Regenerate the golden files (only when a change of cut points is
//! intended, e.g. a new fastcdc major) with `FERRY_UPDATE_GOLDEN=1 cargo test
//! -p ferry-chunker --test chunking`.

use std::io::Read;
use std::path::PathBuf;

use ferry_chunker::Chunker;
use ferry_protocol::{ChunkId, ChunkRef, ChunkerParams};
use proptest::prelude::*;

/// splitmix64: a tiny seeded generator, so inputs never depend on a crate's
/// RNG algorithm.
fn random_bytes(seed: u64, len: usize) -> Vec<u8> {
    let mut s = seed;
    let mut out = Vec::with_capacity(len + 8);
    while out.len() < len {
        s = s.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = s;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^= z >> 31;
        out.extend_from_slice(&z.to_le_bytes());
    }
    out.truncate(len);
    out
}

/// Text-like input: words from a small vocabulary, chosen by the seed.
fn text_bytes(seed: u64, len: usize) -> Vec<u8> {
    const WORDS: &[&str] = &[
        "function", "return", "const", "let", "if", "else", "for", "while", "(", ")", "{", "}",
        ";\n", "value", "index", "node", "type", "=", "+", " ", "\n    ", "export", "import",
    ];
    let r = random_bytes(seed, len);
    let mut out = Vec::with_capacity(len + 16);
    let mut i = 0;
    while out.len() < len {
        out.extend_from_slice(WORDS[r[i % r.len()] as usize % WORDS.len()].as_bytes());
        out.push(b' ');
        i += 1;
    }
    out.truncate(len);
    out
}

fn small() -> ChunkerParams {
    ChunkerParams {
        min: 1024,
        avg: 4096,
        max: 16384,
    }
}

/// 16/64/256 KiB: Ferry's first default, pinned by its own golden files.
fn large() -> ChunkerParams {
    ChunkerParams {
        min: 16 * 1024,
        avg: 64 * 1024,
        max: 256 * 1024,
    }
}

fn golden_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/golden")
}

fn render(params: ChunkerParams, chunks: &[ChunkRef]) -> String {
    let mut s = format!("# fastcdc v2020 min/avg/max {params}; offset length blake3\n");
    let mut off = 0u64;
    for c in chunks {
        s.push_str(&format!("{off} {} {}\n", c.len, c.id));
        off += u64::from(c.len);
    }
    s
}

fn check_golden(name: &str, params: ChunkerParams, data: &[u8]) {
    let chunks = Chunker::new(params).unwrap().chunk_bytes(data);
    let text = render(params, &chunks);
    let path = golden_dir().join(format!("{name}.txt"));
    if std::env::var_os("FERRY_UPDATE_GOLDEN").is_some() {
        std::fs::create_dir_all(golden_dir()).unwrap();
        std::fs::write(&path, &text).unwrap();
        return;
    }
    let want = std::fs::read_to_string(&path).unwrap_or_else(|e| {
        panic!(
            "{}: {e} (set FERRY_UPDATE_GOLDEN=1 to create)",
            path.display()
        )
    });
    assert!(
        want == text,
        "cut points of {name} changed: did the fastcdc version or the chunker change?\n\
         (set FERRY_UPDATE_GOLDEN=1 only if the change is intended)"
    );
}

#[test]
fn golden_random_64k_params() {
    check_golden("random-3mib-64k", large(), &random_bytes(1, 3 << 20));
}

#[test]
fn golden_random_default_params() {
    check_golden(
        "random-3mib-default",
        ChunkerParams::default(),
        &random_bytes(1, 3 << 20),
    );
}

#[test]
fn golden_random_small_params() {
    check_golden("random-256kib-small", small(), &random_bytes(2, 256 << 10));
}

#[test]
fn golden_text_64k_params() {
    check_golden("text-2mib-64k", large(), &text_bytes(3, 2 << 20));
}

#[test]
fn golden_text_default_params() {
    check_golden(
        "text-2mib-default",
        ChunkerParams::default(),
        &text_bytes(3, 2 << 20),
    );
}

#[test]
fn golden_zeros_hits_max() {
    check_golden("zeros-1mib-small", small(), &vec![0u8; 1 << 20]);
}

#[test]
fn size_boundaries() {
    let p = small();
    let c = Chunker::new(p).unwrap();
    for len in [
        0,
        1,
        p.min as usize - 1,
        p.min as usize,
        p.min as usize + 1,
        p.avg as usize,
        p.max as usize - 1,
        p.max as usize,
        p.max as usize + 1,
        3 * p.max as usize + 7,
    ] {
        let data = random_bytes(len as u64, len);
        let chunks = c.chunk_bytes(&data);
        assert_eq!(
            chunks.iter().map(|c| c.len as usize).sum::<usize>(),
            len,
            "len {len}"
        );
        if len == 0 {
            assert!(chunks.is_empty());
        }
        if len <= p.min as usize && len > 0 {
            assert_eq!(chunks.len(), 1, "len {len}");
        }
        let streamed = c.chunk_reader(&data[..]).unwrap();
        assert_eq!(streamed, chunks, "len {len}");
    }
}

#[test]
fn invalid_params_refused() {
    assert!(Chunker::new(ChunkerParams {
        min: 63,
        avg: 256,
        max: 1024
    })
    .is_err());
    assert!(Chunker::new(ChunkerParams {
        min: 4096,
        avg: 1024,
        max: 8192
    })
    .is_err());
}

/// Hands out data in small, uneven pieces to exercise the window logic.
struct Trickle<'a> {
    data: &'a [u8],
    step: usize,
    n: usize,
}

impl Read for Trickle<'_> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        self.n += 1;
        let k = (1 + (self.n * 7919) % self.step)
            .min(buf.len())
            .min(self.data.len());
        buf[..k].copy_from_slice(&self.data[..k]);
        self.data = &self.data[k..];
        Ok(k)
    }
}

#[test]
fn streaming_across_many_windows_matches_reference() {
    // Bigger than several windows, fed in odd-sized reads.
    let data = random_bytes(42, 13 << 20);
    let c = Chunker::new(ChunkerParams::default()).unwrap();
    let reference = c.chunk_bytes(&data);
    let streamed = c
        .chunk_reader(Trickle {
            data: &data,
            step: 100_000,
            n: 0,
        })
        .unwrap();
    assert_eq!(streamed, reference);
}

fn arb_params() -> impl Strategy<Value = ChunkerParams> {
    (8u32..12).prop_map(|bits| {
        let avg = 1u32 << bits;
        ChunkerParams {
            min: avg / 4,
            avg,
            max: avg * 4,
        }
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]

    /// Chunks concatenate back to the input, ids are the hashes of the
    /// pieces, every chunk but the last is >= min, all are <= max, and the
    /// streaming path agrees with the in-memory reference.
    #[test]
    fn chunks_reassemble_and_respect_bounds(
        seed in any::<u64>(), len in 0usize..200_000, text in any::<bool>(), params in arb_params(),
        step in 1usize..70_000,
    ) {
        let data = if text { text_bytes(seed, len) } else { random_bytes(seed, len) };
        let c = Chunker::new(params).unwrap();
        let chunks = c.chunk_bytes(&data);
        let mut pos = 0usize;
        for (i, ch) in chunks.iter().enumerate() {
            let piece = &data[pos..pos + ch.len as usize];
            prop_assert_eq!(ch.id, ChunkId::of(piece));
            prop_assert!(ch.len <= params.max);
            if i + 1 < chunks.len() {
                prop_assert!(ch.len >= params.min);
            }
            pos += ch.len as usize;
        }
        prop_assert_eq!(pos, data.len());
        let streamed = c.chunk_reader(Trickle { data: &data, step, n: 0 }).unwrap();
        prop_assert_eq!(streamed, chunks);
    }

    /// Inserting bytes in the middle changes only chunks near the insertion:
    /// chunks ending well before it are identical, and the chunking
    /// resynchronises after it (the tails match).
    #[test]
    fn insertion_is_local(seed in any::<u64>(), insert in proptest::collection::vec(any::<u8>(), 1..2000), text in any::<bool>()) {
        let params = small();
        let len = 400_000;
        let data = if text { text_bytes(seed, len) } else { random_bytes(seed, len) };
        let at = len / 2;
        let mut edited = data[..at].to_vec();
        edited.extend_from_slice(&insert);
        edited.extend_from_slice(&data[at..]);
        let c = Chunker::new(params).unwrap();
        let a = c.chunk_bytes(&data);
        let b = c.chunk_bytes(&edited);
        // Prefix: every chunk that ends before the insertion point is kept.
        let mut off = 0usize;
        for (x, y) in a.iter().zip(&b) {
            if off + x.len as usize > at { break; }
            prop_assert_eq!(x, y);
            off += x.len as usize;
        }
        // Suffix: the last chunks agree, and most of the file is shared.
        let common_tail = a.iter().rev().zip(b.iter().rev()).take_while(|(x, y)| x == y).count();
        let changed = a.len() - common_tail;
        let before = a.iter().scan(0usize, |o, c| { *o += c.len as usize; Some(*o) }).filter(|&e| e <= at).count();
        prop_assert!(changed - before <= 8, "{} chunks changed after the insertion point", changed - before);
    }
}
