//! The fuzz targets' properties (`fuzz/checks.rs`) on stable, in the normal
//! test suite: over a seed corpus of real encodings made here, and over
//! every input that ever crashed a target (`fuzz/regressions/TARGET/*`,
//! kept for good). `make fuzz` writes the same seeds to `fuzz/corpus/` (this
//! test with `FERRY_FUZZ_CORPUS=DIR`) before running cargo-fuzz.

#[path = "../fuzz/checks.rs"]
mod checks;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use ferry_protocol::chunk::compress;
use ferry_protocol::frame::{
    encode_end, encode_frame, encode_group, encode_header, encode_missing,
};
use ferry_protocol::group::{GroupHeader, RefRange};
use ferry_protocol::messages::{FetchRequest, History, IdList, PublishResponse, UploadResponse};
use ferry_protocol::report::{Outcome, Report, Status, StatusRow};
use ferry_protocol::rollout::{Policy, RampStep, Target};
use ferry_protocol::signed::{KIND_CHANNEL, KIND_MANIFEST};
use ferry_protocol::{
    manifest_delta, ChannelRecord, ChunkId, ChunkRef, ChunkerParams, Codec, Entry, EntryKind,
    Manifest, ManifestId, SecretKey,
};
use rand::{RngCore, SeedableRng};

fn rand_bytes(seed: u64, n: usize) -> Vec<u8> {
    let mut v = vec![0u8; n];
    rand_chacha::ChaCha8Rng::seed_from_u64(seed).fill_bytes(&mut v);
    v
}

fn sample_manifest(version: &str, n: usize) -> Manifest {
    let mut entries = vec![
        Entry {
            path: "bin".into(),
            kind: EntryKind::Dir,
        },
        Entry {
            path: "bin/app".into(),
            kind: EntryKind::File {
                exec: true,
                size: 3000,
                chunks: vec![
                    ChunkRef {
                        id: ChunkId::of(b"a"),
                        len: 1000,
                    },
                    ChunkRef {
                        id: ChunkId::of(b"b"),
                        len: 2000,
                    },
                ],
            },
        },
        Entry {
            path: "empty".into(),
            kind: EntryKind::File {
                exec: false,
                size: 0,
                chunks: vec![],
            },
        },
        Entry {
            path: "lib".into(),
            kind: EntryKind::Dir,
        },
        Entry {
            path: "lib/link.so".into(),
            kind: EntryKind::Symlink {
                target: "real.so".into(),
            },
        },
    ];
    for i in 0..n {
        entries.push(Entry {
            path: format!("lib/m{i:04}.so"),
            kind: EntryKind::File {
                exec: false,
                size: 64,
                chunks: vec![ChunkRef {
                    id: ChunkId::of(&i.to_le_bytes()),
                    len: 64,
                }],
            },
        });
    }
    entries.sort_by(|a, b| a.path.cmp(&b.path));
    Manifest {
        app: "demo".into(),
        version: version.into(),
        params: ChunkerParams::default(),
        created_at: 1_700_000_000,
        entries,
        entry_point: Some("bin/app".into()),
    }
}

fn sample_record(seq: u64, policy: Policy) -> ChannelRecord {
    ChannelRecord {
        app: "demo".into(),
        channel: "stable".into(),
        sequence: seq,
        version: "2.0.0".into(),
        manifest_id: ManifestId::of(b"m"),
        issued_at: 1_700_000_000,
        expires_at: Some(1_800_000_000),
        policy,
        keys: Vec::new(),
    }
}

/// Real encodings of every format, by target.
fn seeds() -> BTreeMap<&'static str, Vec<Vec<u8>>> {
    let key = SecretKey::from_seed([5; 32]);
    let mut s: BTreeMap<&'static str, Vec<Vec<u8>>> = BTreeMap::new();
    let m1 = sample_manifest("1.0.0", 3);
    let m2 = sample_manifest("1.1.0", 40);
    s.insert("manifest_decode", vec![m1.encode(), m2.encode()]);

    let full = Policy {
        previous: Some(Target {
            version: "1.0.0".into(),
            manifest_id: ManifestId::of(b"p"),
        }),
        ramp: vec![
            RampStep {
                at: 1_700_000_000,
                basis_points: 1000,
            },
            RampStep {
                at: 1_700_086_400,
                basis_points: 10_000,
            },
        ],
        activate_at: Some(1_700_000_100),
        groups: [("branch-a".to_string(), 1_700_000_200)].into(),
        min_version: Some("1.0.0".into()),
        paused: true,
        revert: false,
        note: Some("fuzz seed".into()),
    };
    let records = vec![
        sample_record(1, Policy::default()).encode(),
        sample_record(7, full).encode(),
    ];
    s.insert("channel_record_decode", records.clone());

    let env_m = key.sign(KIND_MANIFEST, m1.encode()).encode();
    let env_r = key.sign(KIND_CHANNEL, records[1].clone()).encode();
    s.insert("envelope_decode", vec![env_m.clone(), env_r]);

    let env_m2 = key.sign(KIND_MANIFEST, m2.encode()).encode();
    let mut deltas = Vec::new();
    for frame in [
        manifest_delta::encode(&env_m2, None, 3).unwrap(),
        manifest_delta::encode(&env_m2, Some(&env_m), 3).unwrap(),
    ] {
        // The target reads the first third as the base.
        let mut pad = env_m.clone();
        pad.resize(frame.len() / 2, 0);
        pad.extend_from_slice(&frame);
        deltas.push(pad);
    }
    s.insert("manifest_delta_decode", deltas);

    let text = b"let value = index; return value; ".repeat(40);
    let (zc, zp) = compress(&text, 3);
    let raw = rand_bytes(1, 300);
    let mut stream = Vec::new();
    encode_header(&mut stream);
    encode_frame(&mut stream, &ChunkId::of(&raw), Codec::Raw, 300, &raw);
    encode_frame(&mut stream, &ChunkId::of(&text), zc, text.len() as u32, &zp);
    encode_missing(&mut stream, &ChunkId::of(b"gone"));
    let header = GroupHeader {
        count: 2,
        reference: Some(RefRange {
            entry: 0,
            offset: 0,
            len: 300,
        }),
    };
    let gz = ferry_protocol::group::compress(&text, &raw, 3).unwrap();
    encode_group(
        &mut stream,
        &ChunkId::of(&text),
        text.len() as u32,
        &header,
        &gz,
    );
    encode_end(&mut stream);
    // Group payloads: first byte = reference length taken from the rest.
    let mut groups = Vec::new();
    for (h, reference) in [
        (header, &raw[..]),
        (
            GroupHeader {
                count: 1,
                reference: None,
            },
            &[][..],
        ),
    ] {
        let z = ferry_protocol::group::compress(&text, reference, 3).unwrap();
        let mut payload = Vec::new();
        h.encode(&mut payload);
        payload.extend_from_slice(&z);
        let mut v = vec![0u8];
        v.extend_from_slice(&payload);
        groups.push(v);
    }
    s.insert("group_decode", groups);
    let mut empty = Vec::new();
    encode_header(&mut empty);
    encode_end(&mut empty);
    s.insert("chunk_stream", vec![stream, empty]);

    let mut payloads = Vec::new();
    for (codec, len, p) in [
        (zc, text.len() as u32, zp.clone()),
        (Codec::Raw, 300, raw.clone()),
    ] {
        let mut v = vec![codec as u8];
        v.extend_from_slice(&len.to_le_bytes());
        v.extend_from_slice(&p);
        payloads.push(v);
    }
    s.insert("chunk_payload", payloads);

    let ids: Vec<ChunkId> = (0..5u8).map(|i| ChunkId::of(&[i])).collect();
    s.insert(
        "messages_decode",
        vec![
            IdList { ids: ids.clone() }.encode(),
            FetchRequest {
                ids: ids.clone(),
                have: Some(ManifestId::of(b"h")),
                want: Some(ManifestId::of(b"w")),
                plain: false,
            }
            .encode(),
            FetchRequest {
                ids,
                have: None,
                want: None,
                plain: true,
            }
            .encode(),
            UploadResponse {
                stored: 3,
                present: 9,
            }
            .encode(),
            PublishResponse {
                manifest_id: ManifestId::of(b"x"),
            }
            .encode(),
            History {
                records: records.clone(),
            }
            .encode(),
        ],
    );

    s.insert(
        "report_decode",
        vec![
            Report {
                client_id: "client-0001".into(),
                channel: "stable".into(),
                version: Some("1.0.0".into()),
                outcome: Outcome::Failed,
                error: Some("network".into()),
                subject: Some("2.0.0".into()),
            }
            .encode(),
            Status {
                channels: records,
                rows: vec![StatusRow {
                    channel: "stable".into(),
                    version: "1.0.0".into(),
                    outcome: Outcome::Ok,
                    clients: 12,
                    last_report_at: 1_700_000_000,
                }],
            }
            .encode(),
        ],
    );

    s.insert(
        "path_validate",
        [
            "bin/app",
            "lib/x.so.1",
            "a/b/c/d",
            "../etc/passwd",
            "/abs",
            "C:/x",
            "a\\b",
            "CON",
            "con.txt",
            "COM1",
            "lpt9.log",
            "a//b",
            "./a",
            "a/.",
            "x\u{7f}y",
            "demo",
            "1.2.3-rc.1+build.5",
            ".hidden",
            "über/datei",
        ]
        .iter()
        .map(|p| p.as_bytes().to_vec())
        .collect(),
    );

    let mut chunker = Vec::new();
    for (sel, seed) in [(0u8, 1u64), (2, 2), (4, 3), (6, 4)] {
        let mut v = vec![sel];
        v.extend(rand_bytes(seed, 20_000));
        chunker.push(v);
    }
    let mut t = vec![1u8];
    t.extend_from_slice(&text);
    chunker.push(t);
    chunker.push(vec![3]);
    s.insert("chunker_invariants", chunker);
    s
}

fn run(name: &str, data: &[u8]) {
    let check = checks::TARGETS
        .iter()
        .find(|(n, _)| *n == name)
        .unwrap_or_else(|| panic!("no fuzz target {name}"))
        .1;
    check(data);
}

#[test]
fn every_target_has_seeds_and_they_pass() {
    let seeds = seeds();
    for (name, _) in checks::TARGETS {
        let list = seeds
            .get(name)
            .unwrap_or_else(|| panic!("no seeds for {name}"));
        assert!(!list.is_empty());
        for (i, data) in list.iter().enumerate() {
            let r = std::panic::catch_unwind(|| run(name, data));
            assert!(r.is_ok(), "{name}: seed {i} fails its own check");
        }
    }
}

fn fuzz_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz")
}

/// Every input that once crashed a target passes now.
#[test]
fn kept_crashing_inputs_pass() {
    let dir = fuzz_dir().join("regressions");
    let mut n = 0;
    for (name, _) in checks::TARGETS {
        let Ok(rd) = std::fs::read_dir(dir.join(name)) else {
            continue;
        };
        for e in rd.flatten() {
            let data = std::fs::read(e.path()).unwrap();
            let r = std::panic::catch_unwind(|| run(name, &data));
            assert!(r.is_ok(), "{name}: {} fails again", e.path().display());
            n += 1;
        }
    }
    eprintln!("{n} kept inputs pass");
}

/// Small mutations of every seed (bit flips, truncations): the cheap part
/// of what the fuzzer does, on stable, every run.
#[test]
fn mutated_seeds_never_panic() {
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(2026);
    for (name, list) in seeds() {
        for data in list {
            for _ in 0..200 {
                let mut d = data.clone();
                if d.is_empty() {
                    break;
                }
                let at = (rng.next_u32() as usize) % d.len();
                match rng.next_u32() % 4 {
                    0 => d[at] ^= 1 << (rng.next_u32() % 8),
                    1 => d.truncate(at),
                    2 => d[at] = rng.next_u32() as u8,
                    _ => {
                        let b = d[at];
                        d.insert(at, b);
                    }
                }
                let r = std::panic::catch_unwind(|| run(name, &d));
                if r.is_err() {
                    let keep = fuzz_dir().join("regressions").join(name);
                    let _ = std::fs::create_dir_all(&keep);
                    let file = keep.join(format!("mutated-{}", blake3::hash(&d).to_hex()));
                    let _ = std::fs::write(&file, &d);
                    panic!("{name}: a mutated seed fails; kept in {}", file.display());
                }
            }
        }
    }
}

/// With `FERRY_FUZZ_CORPUS=DIR`, writes the seeds to DIR/TARGET/ (what
/// `make fuzz` starts libFuzzer from); otherwise does nothing.
#[test]
fn write_seed_corpus() {
    let Some(dir) = std::env::var_os("FERRY_FUZZ_CORPUS") else {
        return;
    };
    for (name, list) in seeds() {
        let d = Path::new(&dir).join(name);
        std::fs::create_dir_all(&d).unwrap();
        for data in list {
            std::fs::write(d.join(blake3::hash(&data).to_hex().as_str()), &data).unwrap();
        }
    }
}
