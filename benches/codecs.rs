//! Criterion benchmarks of the wire codecs on seeded inputs: a manifest of
//! 100k chunks (encode, decode with full validation, compressed against its
//! predecessor) and chunk payload compression at the default level, and
//! decompression with hash verification (the client's path).

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use ferry_protocol::{
    manifest_delta, ChunkId, ChunkRef, ChunkerParams, Entry, EntryKind, Manifest,
};
use rand::{RngCore, SeedableRng};
use rand_chacha::ChaCha8Rng;

/// 1,000 files of 100 chunks each, random ids: 100k chunk references.
fn manifest(seed: u64) -> Manifest {
    let mut r = ChaCha8Rng::seed_from_u64(seed);
    let dir = Entry {
        path: "lib".into(),
        kind: EntryKind::Dir,
    };
    let files = (0..1000).map(|f| {
        let chunks: Vec<ChunkRef> = (0..100)
            .map(|_| {
                let mut id = [0u8; 32];
                r.fill_bytes(&mut id);
                ChunkRef {
                    id: ChunkId(id),
                    len: 16384,
                }
            })
            .collect();
        Entry {
            path: format!("lib/module{f:04}.so"),
            kind: EntryKind::File {
                exec: false,
                size: 100 * 16384,
                chunks,
            },
        }
    });
    let entries = std::iter::once(dir).chain(files).collect();
    Manifest {
        app: "bench".into(),
        version: format!("v{seed}"),
        params: ChunkerParams::default(),
        created_at: 0,
        entries,
        entry_point: None,
    }
}

fn manifests(c: &mut Criterion) {
    let old = manifest(1);
    // The next version: 2% of the chunk references changed.
    let mut new = old.clone();
    new.version = "v2".into();
    let mut r = ChaCha8Rng::seed_from_u64(2);
    for e in new.entries.iter_mut().step_by(10) {
        if let EntryKind::File { chunks, .. } = &mut e.kind {
            for c in chunks.iter_mut().step_by(5) {
                r.fill_bytes(&mut c.id.0);
            }
        }
    }
    let bytes = new.encode();
    let old_bytes = old.encode();
    let mut g = c.benchmark_group("manifest_100k_chunks");
    g.throughput(Throughput::Bytes(bytes.len() as u64));
    g.sample_size(20);
    g.bench_function("encode", |b| b.iter(|| new.encode().len()));
    g.bench_function("decode", |b| {
        b.iter(|| Manifest::decode(&bytes).unwrap().entries.len())
    });
    g.bench_function("delta_encode", |b| {
        b.iter(|| {
            manifest_delta::encode(&bytes, Some(&old_bytes), 9)
                .unwrap()
                .len()
        })
    });
    let delta = manifest_delta::encode(&bytes, Some(&old_bytes), 9).unwrap();
    g.bench_function("delta_decode", |b| {
        b.iter(|| {
            manifest_delta::decode(&delta, Some(&old_bytes))
                .unwrap()
                .len()
        })
    });
    g.finish();
}

fn payloads(c: &mut Criterion) {
    // Text-like data: compresses like source files.
    let text: Vec<u8> = (0..4096u32)
        .flat_map(|i| format!("export function f{i}(x) {{ return x * {i}; }}\n").into_bytes())
        .take(16384)
        .collect();
    let level = ferry_protocol::chunk::DEFAULT_ZSTD_LEVEL;
    let mut g = c.benchmark_group("chunk_16k");
    g.throughput(Throughput::Bytes(text.len() as u64));
    g.bench_function("compress_default_level", |b| {
        b.iter(|| ferry_protocol::chunk::compress(&text, level).1.len())
    });
    let (codec, z) = ferry_protocol::chunk::compress(&text, level);
    let id = ferry_protocol::VerifiedChunk::from_data(text.clone()).id();
    g.bench_function("decompress_and_verify", |b| {
        b.iter(|| {
            ferry_protocol::chunk::decode_payload(id, codec, text.len() as u32, &z)
                .unwrap()
                .data()
                .len()
        })
    });
    g.finish();
}

criterion_group!(benches, manifests, payloads);
criterion_main!(benches);
