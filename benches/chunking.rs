//! Criterion benchmarks of the ingest path on seeded, reproducible inputs:
//! cut points only (Ferry's search, one thread, and the `fastcdc` crate's
//! `cut` it replaced, as the before figure of the same run), cut points +
//! BLAKE3 on all threads, BLAKE3 alone over the same chunks and over the
//! whole buffer (what `b3sum` does), and zstd compression of chunks.
//! Run with `make bench`; compare runs with criterion's `--save-baseline` /
//! `--baseline`.

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use ferry_chunker::{hash_lengths, Chunker};
use ferry_protocol::ChunkerParams;
use rand::{RngCore, SeedableRng};
use rand_chacha::ChaCha8Rng;

#[path = "../chunker/tests/support/fastcdc_reference.rs"]
mod fastcdc_reference;
use fastcdc_reference::fastcdc_lengths;

fn input(len: usize) -> Vec<u8> {
    let mut v = vec![0u8; len];
    ChaCha8Rng::seed_from_u64(7).fill_bytes(&mut v);
    v
}

fn chunking(c: &mut Criterion) {
    let data = input(32 << 20);
    let mut g = c.benchmark_group("chunking");
    g.throughput(Throughput::Bytes(data.len() as u64));
    g.sample_size(10);
    for avg in [16 * 1024u32, 64 * 1024] {
        let params = ChunkerParams::with_avg(avg).unwrap();
        let chunker = Chunker::new(params).unwrap();
        g.bench_with_input(
            BenchmarkId::new("fastcdc_crate_cut_points", avg),
            &data,
            |b, d| b.iter(|| fastcdc_lengths(params, d).len()),
        );
        g.bench_with_input(BenchmarkId::new("cut_points", avg), &data, |b, d| {
            b.iter(|| chunker.cut_lengths(d).len())
        });
        g.bench_with_input(BenchmarkId::new("cut_and_hash", avg), &data, |b, d| {
            b.iter(|| chunker.chunk_bytes(d).len())
        });
        let lens = chunker.cut_lengths(&data);
        g.bench_with_input(BenchmarkId::new("hash_only", avg), &data, |b, d| {
            b.iter(|| hash_lengths(d, &lens).len())
        });
    }
    g.bench_with_input(BenchmarkId::new("blake3_whole_buffer", 0), &data, |b, d| {
        b.iter(|| {
            let mut h = blake3::Hasher::new();
            h.update_rayon(d);
            h.finalize()
        })
    });
    g.finish();
}

fn compression(c: &mut Criterion) {
    // Half random, half repetitive: roughly a native library.
    let mut data = input(8 << 20);
    for (i, b) in data
        .iter_mut()
        .enumerate()
        .filter(|(i, _)| (i / 65536) % 2 == 0)
    {
        *b = (i / 8) as u8;
    }
    let mut g = c.benchmark_group("zstd");
    g.throughput(Throughput::Bytes(data.len() as u64));
    g.sample_size(10);
    for level in [1, 3, 9] {
        g.bench_with_input(
            BenchmarkId::new("compress_64k_chunks", level),
            &data,
            |b, d| {
                b.iter(|| {
                    d.chunks(64 * 1024)
                        .map(|c| ferry_protocol::chunk::compress(c, level).1.len())
                        .sum::<usize>()
                })
            },
        );
    }
    g.finish();
}

criterion_group!(benches, chunking, compression);
criterion_main!(benches);
