//! The property each fuzz target checks, one function per target. Shared
//! by the cargo-fuzz targets (`fuzz_targets/*.rs`, nightly, libFuzzer) and
//! by the workspace test `tests/fuzz_regressions.rs`, which runs every
//! function over a seed corpus of real encodings and over every input that
//! once crashed (`fuzz/regressions/TARGET/`) on stable. A function panics
//! when the property fails; decoders must never panic on any input.
#![allow(dead_code)]

use std::io::Cursor;
use std::path::{Component, Path};

use ferry_chunker::Chunker;
use ferry_protocol::chunk::{compress, decode_payload};
use ferry_protocol::frame::{Codec, StreamDecoder};
use ferry_protocol::messages::{FetchRequest, History, IdList, PublishResponse, UploadResponse};
use ferry_protocol::report::{Report, Status};
use ferry_protocol::rollout::{decide, ClientView};
use ferry_protocol::signed::KIND_MANIFEST;
use ferry_protocol::{names, ChannelRecord, ChunkId, ChunkerParams, Envelope, Manifest};

/// A property over one input; panics when it fails.
pub type Check = fn(&[u8]);

/// Every target, by name (the directory names under `fuzz/corpus/` and
/// `fuzz/regressions/`).
pub const TARGETS: &[(&str, Check)] = &[
    ("manifest_decode", manifest_decode),
    ("channel_record_decode", channel_record_decode),
    ("envelope_decode", envelope_decode),
    ("manifest_delta_decode", manifest_delta_decode),
    ("chunk_stream", chunk_stream),
    ("chunk_payload", chunk_payload),
    ("messages_decode", messages_decode),
    ("report_decode", report_decode),
    ("path_validate", path_validate),
    ("chunker_invariants", chunker_invariants),
    ("group_decode", group_decode),
];

/// Manifests: decoding never panics; what decodes is valid, re-encodes to
/// the same bytes, and every path stays inside the install directory.
pub fn manifest_decode(data: &[u8]) {
    if let Ok(m) = Manifest::decode(data) {
        assert_eq!(m.encode(), data, "manifest encoding is not canonical");
        assert!(m.validate().is_ok());
        for e in &m.entries {
            assert_stays_inside(&e.path);
        }
    }
}

/// Channel records: canonical, and the rollout decision on any accepted
/// record never panics for any client.
pub fn channel_record_decode(data: &[u8]) {
    if let Ok(r) = ChannelRecord::decode(data) {
        assert_eq!(r.encode(), data, "record encoding is not canonical");
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
}

/// Signed envelopes: decoding and verification never panic; canonical.
pub fn envelope_decode(data: &[u8]) {
    if let Ok(env) = Envelope::decode(data, 1 << 20) {
        let keys = env.signers();
        let _ = env.verify(KIND_MANIFEST, &keys);
        assert_eq!(env.encode(), data, "envelope encoding is not canonical");
    }
}

/// Compressed manifests, with or without a base: never panic, never yield
/// more than declared.
pub fn manifest_delta_decode(data: &[u8]) {
    use ferry_protocol::manifest_delta::{decode, MAX_DECODED};
    let (base, frame) = data.split_at(data.len() / 3);
    for b in [None, Some(base)] {
        if let Ok(out) = decode(frame, b) {
            assert!(out.len() <= MAX_DECODED);
        }
    }
}

fn decode_stream(parts: &[&[u8]]) -> Result<usize, ferry_protocol::FrameError> {
    let mut d = StreamDecoder::new();
    let mut buf = Vec::new();
    let mut n = 0;
    for p in parts {
        buf.extend_from_slice(p);
        while let Some((_, used)) = d.next(&buf)? {
            assert!(
                used > 0 && used <= buf.len(),
                "frame consumed {used} of {}",
                buf.len()
            );
            buf.drain(..used);
            n += 1;
        }
    }
    d.finish(&buf)?;
    Ok(n)
}

/// Chunk streams, fed whole or in two pieces at any split: never panic,
/// and both ways agree (a network can cut a stream anywhere).
pub fn chunk_stream(data: &[u8]) {
    let whole = decode_stream(&[data]);
    if !data.is_empty() {
        let split = data[0] as usize % data.len();
        assert_eq!(decode_stream(&[&data[..split], &data[split..]]), whole);
    }
}

/// Group frame payloads (header + zstd frame against a reference): parsing
/// and decoding never panic, a decoded group has exactly the declared size,
/// and compressing then decoding against the same reference round-trips.
/// The first input byte picks the reference (a slice of the input itself).
pub fn group_decode(data: &[u8]) {
    use ferry_protocol::group::{compress as gcompress, decompress, GroupHeader, MAX_GROUP_RAW};
    let Some((&pick, rest)) = data.split_first() else {
        return;
    };
    let reference = &rest[..(pick as usize).min(rest.len())];
    if let Ok((h, z)) = GroupHeader::parse(rest) {
        assert!(h.count > 0);
        let raw_len = (h.count % MAX_GROUP_RAW).max(1);
        if let Ok(out) = decompress(z, reference, raw_len) {
            assert_eq!(out.len(), raw_len as usize);
        }
    }
    if !rest.is_empty() && rest.len() <= MAX_GROUP_RAW as usize {
        let z = gcompress(rest, reference, 1).expect("compress");
        let back = decompress(&z, reference, rest.len() as u32).expect("round trip");
        assert_eq!(back, rest);
    }
}

/// Chunk payloads: decoding any (codec, length, payload) never panics and
/// never yields bytes that do not hash to the id or have another length;
/// compressing then decoding gives the input back.
pub fn chunk_payload(data: &[u8]) {
    if data.len() < 5 {
        return;
    }
    let codec = Codec::from_u8(data[0] & 0x01).unwrap_or(Codec::Raw);
    let raw_len = u32::from_le_bytes([data[1], data[2], data[3], data[4]]) % (1 << 20) + 1;
    let payload = &data[5..];
    // Whatever the payload, with the id of some bytes.
    let id = ChunkId::of(payload);
    if let Ok(c) = decode_payload(id, codec, raw_len, payload) {
        assert_eq!(ChunkId::of(c.data()), id);
        assert_eq!(c.data().len() as u32, raw_len);
    }
    // Round trip.
    if !payload.is_empty() {
        let (codec, packed) = compress(payload, 1);
        let c = decode_payload(id, codec, payload.len() as u32, &packed).expect("round trip");
        assert_eq!(c.data(), payload);
    }
}

/// Request and response bodies: never panic; what decodes re-encodes to
/// something that decodes to the same value.
pub fn messages_decode(data: &[u8]) {
    if let Ok(v) = IdList::decode(data) {
        assert_eq!(IdList::decode(&v.encode()).ok(), Some(v));
    }
    if let Ok(v) = FetchRequest::decode(data) {
        assert_eq!(FetchRequest::decode(&v.encode()).ok(), Some(v));
    }
    if let Ok(v) = UploadResponse::decode(data) {
        assert_eq!(UploadResponse::decode(&v.encode()).ok(), Some(v));
    }
    if let Ok(v) = PublishResponse::decode(data) {
        assert_eq!(PublishResponse::decode(&v.encode()).ok(), Some(v));
    }
    if let Ok(v) = History::decode(data) {
        assert_eq!(History::decode(&v.encode()).ok(), Some(v));
    }
}

/// Client reports and status bodies.
pub fn report_decode(data: &[u8]) {
    if let Ok(r) = Report::decode(data) {
        assert_eq!(Report::decode(&r.encode()).ok(), Some(r));
    }
    if let Ok(s) = Status::decode(data) {
        assert_eq!(Status::decode(&s.encode()).ok(), Some(s));
    }
}

/// A path the validator accepts, joined to any directory, names something
/// inside it on every platform Ferry knows.
fn assert_stays_inside(path: &str) {
    assert!(!path.is_empty() && path.len() <= 4096, "{path:?}");
    for c in Path::new(path).components() {
        assert!(
            matches!(c, Component::Normal(_)),
            "{path:?}: component {c:?}"
        );
    }
    for part in path.split('/') {
        assert!(!part.is_empty() && part != "." && part != "..", "{path:?}");
        assert!(part.len() <= 255, "{path:?}");
        assert!(
            !part.contains(['\\', ':']) && !part.chars().any(char::is_control),
            "{path:?}"
        );
        let stem = part.split('.').next().unwrap_or("").to_ascii_uppercase();
        let reserved = ["CON", "PRN", "AUX", "NUL"].contains(&stem.as_str())
            || ((stem.starts_with("COM") || stem.starts_with("LPT"))
                && stem.len() == 4
                && stem.as_bytes()[3].is_ascii_digit()
                && stem.as_bytes()[3] != b'0');
        assert!(!reserved, "{path:?}: Windows device name");
    }
}

/// Names and paths: whatever the validators accept is safe to use as a
/// URL segment (names) or under an install directory (paths).
pub fn path_validate(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if names::validate_rel_path(text).is_ok() {
        assert_stays_inside(text);
    }
    let url_safe = |s: &str| {
        !s.is_empty()
            && s.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"._+-".contains(&b))
            && !s.starts_with('.')
            && s != ".."
    };
    if names::validate_app(text).is_ok() {
        assert!(
            url_safe(text) && text.len() <= names::MAX_NAME_LEN,
            "app {text:?}"
        );
    }
    if names::validate_channel(text).is_ok() {
        assert!(
            url_safe(text) && text.len() <= names::MAX_NAME_LEN,
            "channel {text:?}"
        );
    }
    if names::validate_version(text).is_ok() {
        assert!(
            url_safe(text) && text.len() <= names::MAX_VERSION_LEN,
            "version {text:?}"
        );
    }
}

/// The chunker: for parameters chosen by the first byte, chunks cover the
/// input exactly, in order; every chunk is 1..=max bytes and all but the
/// last at least min; ids are the BLAKE3 of the bytes; streaming through a
/// reader cuts exactly where cutting the whole buffer does.
pub fn chunker_invariants(data: &[u8]) {
    let Some((&sel, input)) = data.split_first() else {
        return;
    };
    let avg = 256u32 << (sel % 7); // 256 B .. 16 KiB
    let params = ChunkerParams {
        min: avg / 4,
        avg,
        max: avg * 4,
    };
    let chunker = Chunker::new(params).expect("valid parameters");
    let lens = chunker.cut_lengths(input);
    assert_eq!(lens.iter().map(|l| *l as usize).sum::<usize>(), input.len());
    for (i, l) in lens.iter().enumerate() {
        assert!(*l >= 1 && *l <= params.max, "chunk {i} is {l} bytes");
        if i + 1 < lens.len() {
            assert!(*l >= params.min, "chunk {i} is {l} bytes, below min");
        }
    }
    let refs = chunker.chunk_bytes(input);
    assert_eq!(refs.len(), lens.len());
    let mut off = 0usize;
    for (r, l) in refs.iter().zip(&lens) {
        assert_eq!(r.len, *l);
        assert_eq!(r.id, ChunkId::of(&input[off..off + *l as usize]));
        off += *l as usize;
    }
    let streamed = chunker.chunk_reader(Cursor::new(input)).expect("in memory");
    assert_eq!(streamed, refs, "streaming cut differently");
}
