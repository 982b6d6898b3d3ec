use std::path::Path;

use rand::{RngCore, SeedableRng};
use rand_chacha::ChaCha8Rng;

use super::*;

fn random(seed: u64, n: usize) -> Vec<u8> {
    let mut v = vec![0u8; n];
    ChaCha8Rng::seed_from_u64(seed).fill_bytes(&mut v);
    v
}

fn write(dir: &Path, name: &str, data: &[u8]) {
    std::fs::create_dir_all(dir).unwrap();
    std::fs::write(dir.join(name), data).unwrap();
}

/// v0: a 2 MiB file and a small one; v1: 100 bytes inserted in the middle
/// of the big file; v2: identical to v1.
fn history(root: &Path) -> Vec<PathBuf> {
    let big = random(1, 2 << 20);
    let mut edited = big.clone();
    edited.splice(1 << 20..1 << 20, random(2, 100));
    let dirs: Vec<PathBuf> = (0..3).map(|i| root.join(format!("v{i}"))).collect();
    write(&dirs[0], "big.bin", &big);
    write(&dirs[1], "big.bin", &edited);
    write(&dirs[2], "big.bin", &edited);
    for d in &dirs {
        write(d, "small.txt", b"unchanged");
    }
    dirs
}

#[test]
fn cdc_moves_little_after_an_insert_and_fixed_moves_half() {
    let tmp = tempfile::tempdir().unwrap();
    let h = History::load(&history(tmp.path())).unwrap();
    let mut methods = cdc_methods(&[8]).unwrap();
    methods.push(Method::Fixed(8192));
    let rows: Vec<TuneRow> = methods
        .into_iter()
        .flat_map(|m| h.evaluate(m, &[3]).unwrap())
        .collect();
    let (cdc, fixed) = (&rows[0], &rows[1]);
    assert_eq!(cdc.update_bytes.len(), 2, "three versions, two updates");
    // Random data does not compress: bytes moved are about raw chunk sizes.
    assert!(cdc.update_bytes[0] < 100_000, "{:?}", cdc.update_bytes);
    assert!(fixed.update_bytes[0] > 900_000, "{:?}", fixed.update_bytes);
    // An unchanged version costs its manifest and the stream header only.
    for r in &rows {
        assert_eq!(
            r.update_bytes[1],
            r.manifest_bytes[1] + STREAM_HEADER_LEN as u64
        );
        assert!(r.store_bytes >= 2 << 20, "every byte stored once at least");
        assert!(r.chunks > 0 && r.distinct_chunks >= r.chunks);
    }
    let svg = svg::chart(&rows, "test <history>");
    assert!(svg.starts_with("<svg") && svg.contains("polyline"));
    assert!(svg.contains("test &lt;history&gt;"));
}

#[test]
fn every_level_gets_a_row_and_text_compresses() {
    let tmp = tempfile::tempdir().unwrap();
    let text: Vec<u8> = (0..200_000u32)
        .flat_map(|i| format!("line {i} of some text\n").into_bytes())
        .collect();
    write(&tmp.path().join("a"), "t.txt", &text);
    write(&tmp.path().join("b"), "t.txt", &text[1000..]);
    let h = History::load(&[tmp.path().join("a"), tmp.path().join("b")]).unwrap();
    let rows = h
        .evaluate(
            Method::Cdc(ChunkerParams::with_avg(16384).unwrap()),
            &[1, 9],
        )
        .unwrap();
    assert_eq!(
        rows.iter().map(|r| r.zstd_level).collect::<Vec<_>>(),
        [1, 9]
    );
    for r in &rows {
        assert!(r.store_bytes < text.len() as u64 / 2, "text compresses");
        assert!(r.compress_mib_per_s > 0.0 && r.chunk_mib_per_s > 0.0);
    }
}

#[test]
fn bad_average_is_named() {
    let e = cdc_methods(&[0]).unwrap_err();
    assert!(format!("{e:#}").contains("--avg 0"));
}
