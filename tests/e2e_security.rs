//! End to end, the refusals: wrong token, foreign keys, replayed records,
//! manifests with escaping paths, chunks that do not match their ids.
//! Malicious servers are real servers over a store tampered with directly.

mod support;

use std::path::Path;

use ferry_protocol::signed::{KIND_CHANNEL, KIND_MANIFEST};
use ferry_protocol::{
    unix_now, ChannelRecord, ChunkRef, ChunkerParams, Entry, EntryKind, Manifest, SecretKey,
};
use ferry_store::{Store, StoredChunk};
use support::*;

fn tmp() -> tempfile::TempDir {
    tempfile::tempdir().unwrap()
}

fn s(p: &Path) -> String {
    p.display().to_string()
}

#[test]
fn wrong_token_is_refused_and_nothing_is_stored() {
    let t = tmp();
    let server = Server::start(&t.path().join("data"));
    let key = keygen(t.path(), "k");
    make_v1(&t.path().join("v1"));
    let err = ferry_err(&[
        "push",
        &s(&t.path().join("v1")),
        "--server",
        &server.url,
        "--app",
        "demo",
        "--version",
        "1.0.0",
        "--key",
        &s(&key.path),
        "--token",
        "not-the-token",
    ]);
    assert!(
        err.contains("401") && err.contains("wrong push token"),
        "{err}"
    );
    assert!(err.lines().count() == 1, "error should be one line: {err}");
    let err = ferry_err(&sync_args(
        &server.url,
        &s(&t.path().join("i")),
        &key.public,
    ));
    assert!(err.contains("404"), "{err}");
    server.stop();
    let store = Store::open_read_only(&t.path().join("data")).unwrap();
    let r = store.fsck(&|_| {}).unwrap();
    assert_eq!((r.chunks, r.manifests), (0, 0));
}

#[test]
fn manifest_signed_by_another_key_is_refused_by_server_and_client() {
    let t = tmp();
    let server = Server::start(&t.path().join("data"));
    let a = keygen(t.path(), "a");
    let b = keygen(t.path(), "b");
    make_v1(&t.path().join("v1"));
    make_v2(&t.path().join("v1"), &t.path().join("v2"));
    ferry_ok(&push_args(
        &s(&t.path().join("v1")),
        &server.url,
        "1.0.0",
        &s(&a.path),
    ));
    // The server pinned key a for the app on first use: b is refused.
    let err = ferry_err(&push_args(
        &s(&t.path().join("v2")),
        &server.url,
        "1.1.0",
        &s(&b.path),
    ));
    assert!(
        err.contains("403") && err.contains("not signed by any trusted key"),
        "{err}"
    );
    // A client that trusts only b refuses what a signed, and installs nothing.
    let inst = t.path().join("i");
    let err = ferry_err(&sync_args(&server.url, &s(&inst), &b.public));
    assert!(err.contains("not signed by any trusted key"), "{err}");
    assert!(!inst.join("current").exists());
}

#[test]
fn server_configured_keys_refuse_first_use_of_another() {
    let t = tmp();
    let a = keygen(t.path(), "a");
    let b = keygen(t.path(), "b");
    let spec = format!("demo={}", a.public);
    let server = Server::start_with(&t.path().join("data"), &["--app-key", &spec]);
    make_v1(&t.path().join("v1"));
    let err = ferry_err(&push_args(
        &s(&t.path().join("v1")),
        &server.url,
        "1.0.0",
        &s(&b.path),
    ));
    assert!(err.contains("403"), "{err}");
    ferry_ok(&push_args(
        &s(&t.path().join("v1")),
        &server.url,
        "1.0.0",
        &s(&a.path),
    ));
}

#[test]
fn lower_sequence_is_refused_by_server_and_client() {
    let t = tmp();
    let key = keygen(t.path(), "k");
    make_v1(&t.path().join("v1"));
    make_v2(&t.path().join("v1"), &t.path().join("v2"));
    // Server B stays at sequence 1 (a stale mirror).
    let b = Server::start(&t.path().join("data-b"));
    ferry_ok(&push_args(
        &s(&t.path().join("v1")),
        &b.url,
        "1.0.0",
        &s(&key.path),
    ));
    // Server A moves on to sequence 2.
    let a = Server::start(&t.path().join("data-a"));
    ferry_ok(&push_args(
        &s(&t.path().join("v1")),
        &a.url,
        "1.0.0",
        &s(&key.path),
    ));
    ferry_ok(&push_args(
        &s(&t.path().join("v2")),
        &a.url,
        "1.1.0",
        &s(&key.path),
    ));
    let inst = t.path().join("i");
    let r = json(&ferry_ok(&sync_args(&a.url, &s(&inst), &key.public)));
    assert_eq!(r["sequence"], 2);
    // The client refuses to go back to sequence 1.
    let err = ferry_err(&sync_args(&b.url, &s(&inst), &key.public));
    assert!(
        err.contains("sequence 1") && err.contains("rollback attack"),
        "{err}"
    );
    assert_same_tree(&t.path().join("v2"), &inst.join("current"));

    // The server refuses to store a record that does not raise the sequence.
    let secret = SecretKey::from_text(&std::fs::read_to_string(&key.path).unwrap()).unwrap();
    let rt = tokio::runtime::Runtime::new().unwrap();
    let http = ferry_client::Http::new(&a.url, Default::default())
        .unwrap()
        .with_token(Some(TOKEN.into()));
    let manifest_id = rt.block_on(http.get_version("demo", "1.0.0")).unwrap();
    let env = ferry_protocol::Envelope::decode(&manifest_id, usize::MAX).unwrap();
    let rec = ChannelRecord {
        app: "demo".into(),
        channel: "stable".into(),
        sequence: 2,
        version: "1.0.0".into(),
        manifest_id: ferry_protocol::ManifestId::of(&env.body),
        issued_at: unix_now(),
        expires_at: None,
        policy: Default::default(),
        keys: Vec::new(),
    };
    let bytes = secret.sign(KIND_CHANNEL, rec.encode()).encode();
    let err = rt
        .block_on(http.publish_channel("demo", "stable", bytes))
        .unwrap_err();
    assert!(
        err.to_string().contains("409") && err.to_string().contains("higher"),
        "{err}"
    );
}

/// Publishes `entries` as version 6.6.6 of app demo straight into a store,
/// bypassing the server's validation: what a compromised server would serve.
fn plant_manifest(data: &Path, key: &SecretKey, entries: Vec<Entry>, chunks: &[&[u8]]) {
    let store = Store::open(data).unwrap();
    let stored: Vec<StoredChunk> = chunks
        .iter()
        .map(|c| {
            StoredChunk::from_verified(&ferry_protocol::VerifiedChunk::from_data(c.to_vec()), 3)
        })
        .collect();
    store.put_chunks(&stored).unwrap();
    let m = Manifest {
        app: "demo".into(),
        version: "6.6.6".into(),
        params: ChunkerParams::default(),
        created_at: 0,
        entries,
        entry_point: None,
    };
    let body = m.encode();
    let id = ferry_protocol::ManifestId::of(&body);
    let env = key.sign(KIND_MANIFEST, body).encode();
    store.pin_app_key("demo", key.public()).unwrap();
    store.put_manifest(&env, id, &m).unwrap();
    let rec = ChannelRecord {
        app: "demo".into(),
        channel: "stable".into(),
        sequence: 1,
        version: "6.6.6".into(),
        manifest_id: id,
        issued_at: unix_now(),
        expires_at: None,
        policy: Default::default(),
        keys: Vec::new(),
    };
    let renv = key.sign(KIND_CHANNEL, rec.encode()).encode();
    store.put_channel(&renv, &rec).unwrap();
}

fn file_entry(path: &str, data: &[u8]) -> Entry {
    Entry {
        path: path.into(),
        kind: EntryKind::File {
            exec: false,
            size: data.len() as u64,
            chunks: vec![ChunkRef {
                id: ferry_protocol::ChunkId::of(data),
                len: data.len() as u32,
            }],
        },
    }
}

#[test]
fn manifest_paths_that_escape_are_refused_and_nothing_is_written() {
    let t = tmp();
    let key = keygen(t.path(), "k");
    let secret = SecretKey::from_text(&std::fs::read_to_string(&key.path).unwrap()).unwrap();
    let outside = t.path().join("outside");
    std::fs::create_dir_all(&outside).unwrap();
    let abs = format!("{}/evil", outside.display());
    let payload: &[u8] = b"#!/bin/sh\necho owned\n";
    let cases = vec![
        ("dotdot", vec![file_entry("../evil", payload)]),
        ("absolute", vec![file_entry(&abs, payload)]),
        (
            "symlink-out",
            vec![Entry {
                path: "a".into(),
                kind: EntryKind::Symlink {
                    target: outside.display().to_string(),
                },
            }],
        ),
    ];
    for (name, entries) in cases {
        let data = t.path().join(format!("data-{name}"));
        plant_manifest(&data, &secret, entries, &[payload]);
        let server = Server::start(&data);
        let inst = t.path().join(format!("inst-{name}"));
        let err = ferry_err(&sync_args(&server.url, &s(&inst), &key.public));
        assert!(
            err.contains("path") || err.contains("symlink"),
            "{name}: {err}"
        );
        assert!(
            !inst.join("current").exists(),
            "{name}: something was installed"
        );
        assert_eq!(
            std::fs::read_dir(&outside).unwrap().count(),
            0,
            "{name}: wrote outside"
        );
        assert!(!t.path().join("evil").exists());
        assert!(!inst.join("evil").exists());
    }
}

#[test]
fn chunk_that_does_not_match_its_id_is_refused_by_server_and_client() {
    let t = tmp();
    let key = keygen(t.path(), "k");
    let data = t.path().join("data");
    let server = Server::start(&data);

    // Server side: an upload whose bytes do not hash to the frame's id.
    let rt = tokio::runtime::Runtime::new().unwrap();
    let http = ferry_client::Http::new(&server.url, Default::default())
        .unwrap()
        .with_token(Some(TOKEN.into()));
    let mut body = Vec::new();
    ferry_protocol::frame::encode_header(&mut body);
    let id = ferry_protocol::ChunkId::of(b"the real bytes");
    ferry_protocol::frame::encode_frame(
        &mut body,
        &id,
        ferry_protocol::Codec::Raw,
        9,
        b"fake byte",
    );
    ferry_protocol::frame::encode_end(&mut body);
    let err = rt
        .block_on(http.upload(body.into()))
        .unwrap_err()
        .to_string();
    assert!(err.contains("422") && err.contains("hash"), "{err}");
    assert_eq!(
        rt.block_on(http.missing(&[id])).unwrap(),
        vec![id],
        "bad chunk was stored"
    );

    // Client side: a server whose store holds wrong bytes under an id.
    make_v1(&t.path().join("v1"));
    ferry_ok(&push_args(
        &s(&t.path().join("v1")),
        &server.url,
        "1.0.0",
        &s(&key.path),
    ));
    server.stop();
    tamper_one_chunk(&data);
    let out = ferry(&["fsck", "--data", &s(&data)]);
    assert_eq!(out.status.code(), Some(3), "fsck should find the damage");
    let server = Server::start(&data);
    let inst = t.path().join("i");
    let err = ferry_err(&sync_args(&server.url, &s(&inst), &key.public));
    assert!(err.contains("hash"), "{err}");
    assert!(!inst.join("current").exists());
}

/// Replaces the bytes of the largest stored chunk with other bytes of the
/// same length (raw codec), as disk corruption or a malicious operator would.
fn tamper_one_chunk(data: &Path) {
    let mut opts = rocksdb::Options::default();
    opts.set_compression_type(rocksdb::DBCompressionType::None);
    let names = rocksdb::DB::list_cf(&opts, data).unwrap();
    let cfs: Vec<rocksdb::ColumnFamilyDescriptor> = names
        .iter()
        .map(|n| {
            let mut o = rocksdb::Options::default();
            o.set_compression_type(rocksdb::DBCompressionType::None);
            rocksdb::ColumnFamilyDescriptor::new(n, o)
        })
        .collect();
    let db = rocksdb::DB::open_cf_descriptors(&opts, data, cfs).unwrap();
    let cf = db.cf_handle("chunks.v1").unwrap();
    let (key, raw_len) = db
        .iterator_cf(cf, rocksdb::IteratorMode::Start)
        .map(|r| r.unwrap())
        .map(|(k, v)| (k.to_vec(), u32::from_le_bytes([v[1], v[2], v[3], v[4]])))
        .max_by_key(|(_, l)| *l)
        .unwrap();
    let mut v = vec![0u8];
    v.extend_from_slice(&raw_len.to_le_bytes());
    v.extend(std::iter::repeat_n(0x42u8, raw_len as usize));
    db.put_cf(cf, key, v).unwrap();
    db.flush_cf(cf).unwrap();
}
