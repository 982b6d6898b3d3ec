//! Store behaviour on a real RocksDB in a temporary directory.

use ferry_protocol::signed::{KIND_CHANNEL, KIND_MANIFEST};
use ferry_protocol::{
    ChannelRecord, ChunkRef, ChunkerParams, Codec, Entry, EntryKind, Manifest, ManifestId,
    SecretKey, VerifiedChunk,
};

use crate::{Store, StoreError, StoredChunk};

fn chunk(n: u8) -> VerifiedChunk {
    VerifiedChunk::from_data(vec![n; 10_000 + usize::from(n)])
}

fn manifest(version: &str, chunks: &[&VerifiedChunk]) -> Manifest {
    let refs: Vec<ChunkRef> = chunks
        .iter()
        .map(|c| ChunkRef {
            id: c.id(),
            len: c.data().len() as u32,
        })
        .collect();
    Manifest {
        app: "app".into(),
        version: version.into(),
        params: ChunkerParams::default(),
        created_at: 1,
        entries: vec![Entry {
            path: "f".into(),
            kind: EntryKind::File {
                exec: false,
                size: refs.iter().map(|r| u64::from(r.len)).sum(),
                chunks: refs,
            },
        }],
        entry_point: None,
    }
}

fn publish(store: &Store, key: &SecretKey, m: &Manifest) -> Result<bool, StoreError> {
    let env = key.sign(KIND_MANIFEST, m.encode());
    store.put_manifest(&env.encode(), m.id(), m)
}

fn record(m: &Manifest, sequence: u64) -> ChannelRecord {
    ChannelRecord {
        app: m.app.clone(),
        channel: "stable".into(),
        sequence,
        version: m.version.clone(),
        manifest_id: m.id(),
        issued_at: 1,
        expires_at: None,
        policy: Default::default(),
        keys: Vec::new(),
    }
}

fn promote(store: &Store, key: &SecretKey, r: &ChannelRecord) -> Result<(), StoreError> {
    store.put_channel(&key.sign(KIND_CHANNEL, r.encode()).encode(), r)
}

#[test]
fn chunks_round_trip_and_dedupe() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    let (a, b) = (chunk(1), chunk(2));
    let stored = [StoredChunk::from_verified(&a, 3)];
    assert_eq!(store.put_chunks(&stored).unwrap(), 1);
    assert_eq!(
        store.put_chunks(&stored).unwrap(),
        0,
        "second put is a no-op"
    );
    assert_eq!(store.has_chunks(&[a.id(), b.id()]).unwrap(), [true, false]);
    let got = store.get_chunks(&[a.id(), b.id()]).unwrap();
    assert!(got[0].is_some() && got[1].is_none());
    let (codec, raw, payload) = crate::parse_value(&a.id(), got[0].as_ref().unwrap()).unwrap();
    let back = ferry_protocol::chunk::decode_payload(a.id(), codec, raw, payload).unwrap();
    assert_eq!(back.data(), a.data());
}

#[test]
fn a_chunk_under_the_wrong_id_cannot_be_built() {
    let a = chunk(1);
    let wrong = chunk(2).id();
    let r = StoredChunk::verify(wrong, Codec::Raw, a.data().len() as u32, a.data().to_vec());
    assert!(r.is_err());
}

#[test]
fn manifest_needs_all_chunks_and_versions_are_immutable() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    let key = SecretKey::from_seed([7; 32]);
    let (a, b) = (chunk(1), chunk(2));
    let m1 = manifest("1.0", &[&a, &b]);
    store
        .put_chunks(&[StoredChunk::from_verified(&a, 3)])
        .unwrap();
    match publish(&store, &key, &m1) {
        Err(StoreError::MissingChunks { count: 1, .. }) => {}
        other => panic!("expected a missing-chunk error, got {other:?}"),
    }
    store
        .put_chunks(&[StoredChunk::from_verified(&b, 3)])
        .unwrap();
    assert!(publish(&store, &key, &m1).unwrap(), "first publish is new");
    assert!(
        !publish(&store, &key, &m1).unwrap(),
        "same again is a no-op"
    );
    let changed = manifest("1.0", &[&b, &a]);
    assert!(matches!(
        publish(&store, &key, &changed),
        Err(StoreError::Conflict(_))
    ));
    assert_eq!(store.get_version("app", "1.0").unwrap(), Some(m1.id()));
    assert_eq!(store.list_versions("app").unwrap().len(), 1);
}

#[test]
fn channel_sequence_only_grows_and_history_is_kept() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    let key = SecretKey::from_seed([7; 32]);
    let a = chunk(1);
    store
        .put_chunks(&[StoredChunk::from_verified(&a, 3)])
        .unwrap();
    let m = manifest("1.0", &[&a]);
    publish(&store, &key, &m).unwrap();
    let unknown = manifest("2.0", &[&a]);
    assert!(matches!(
        promote(&store, &key, &record(&unknown, 1)),
        Err(StoreError::UnknownManifest(_))
    ));
    promote(&store, &key, &record(&m, 1)).unwrap();
    promote(&store, &key, &record(&m, 2)).unwrap();
    for stale in [1, 2] {
        assert!(matches!(
            promote(&store, &key, &record(&m, stale)),
            Err(StoreError::StaleSequence { current: 2, .. })
        ));
    }
    assert_eq!(store.channel_history("app", "stable").unwrap().len(), 2);
    assert!(store.get_channel("app", "stable").unwrap().is_some());
}

#[test]
fn fsck_is_clean_then_finds_a_damaged_chunk() {
    let dir = tempfile::tempdir().unwrap();
    let key = SecretKey::from_seed([7; 32]);
    let (a, b) = (chunk(1), chunk(2));
    let m = manifest("1.0", &[&a, &b]);
    {
        let store = Store::open(dir.path()).unwrap();
        store.pin_app_key("app", key.public()).unwrap();
        store
            .put_chunks(&[
                StoredChunk::from_verified(&a, 3),
                StoredChunk::from_verified(&b, 3),
            ])
            .unwrap();
        publish(&store, &key, &m).unwrap();
        promote(&store, &key, &record(&m, 1)).unwrap();
        let report = store.fsck(&|_| {}).unwrap();
        assert!(report.is_clean(), "{:?}", report.problems);
        assert_eq!(
            (report.chunks, report.manifests, report.channels),
            (2, 1, 1)
        );

        // Damage one chunk's payload behind the store's back.
        let mut v = store.get_chunk(&a.id()).unwrap().unwrap();
        let last = v.len() - 1;
        v[last] ^= 0xff;
        store
            .db
            .put_cf(store.cf(crate::db::CF_CHUNKS), a.id().0, v)
            .unwrap();
    }
    let store = Store::open_read_only(dir.path()).unwrap();
    let report = store.fsck(&|_| {}).unwrap();
    let text: Vec<String> = report.problems.iter().map(|p| p.to_string()).collect();
    assert!(!report.is_clean());
    assert!(text.iter().any(|p| p.contains("damaged chunk")), "{text:?}");
    assert!(
        text.iter().any(|p| p.contains("chunks missing or damaged")),
        "{text:?}"
    );
}

#[test]
fn read_only_open_of_a_missing_store_says_so() {
    let dir = tempfile::tempdir().unwrap();
    let r = Store::open_read_only(&dir.path().join("nothing"));
    assert!(matches!(r, Err(StoreError::NotFound(_))));
}

#[test]
fn manifest_ids_are_stable() {
    let m = manifest("1.0", &[&chunk(1)]);
    assert_eq!(m.id(), ManifestId::of(&m.encode()));
}

mod gc {
    use super::*;
    use crate::GcOptions;
    use ferry_protocol::rollout::Policy;

    fn gc(store: &Store, keep: usize, grace_secs: u64) -> crate::GcReport {
        store
            .gc(GcOptions {
                keep,
                grace_secs,
                dry_run: false,
            })
            .unwrap()
    }

    fn put(store: &Store, c: &VerifiedChunk) {
        store
            .put_chunks(&[StoredChunk::from_verified(c, 3)])
            .unwrap();
    }

    #[test]
    fn keeps_what_channels_need_and_sweeps_the_rest() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let key = SecretKey::from_seed([7; 32]);
        store.pin_app_key("app", key.public()).unwrap();
        let shared = chunk(100);
        put(&store, &shared);
        let mut ms = Vec::new();
        for i in 1..=5u8 {
            let own = chunk(i);
            put(&store, &own);
            let m = manifest(&format!("{i}.0"), &[&shared, &own]);
            publish(&store, &key, &m).unwrap();
            ms.push(m);
        }
        for (seq, m) in ms[..4].iter().enumerate() {
            promote(&store, &key, &record(m, seq as u64 + 1)).unwrap();
        }
        // beta: 5.0 at a partial rollout, falling back to 3.0.
        let mut beta = record(&ms[4], 1);
        beta.channel = "beta".into();
        beta.policy = Policy {
            previous: Some(record(&ms[2], 0).target()),
            ..Policy::default()
        };
        promote(&store, &key, &beta).unwrap();

        let dry = store
            .gc(GcOptions {
                keep: 1,
                grace_secs: 0,
                dry_run: true,
            })
            .unwrap();
        assert_eq!(dry.versions_removed, ["app 1.0", "app 2.0"]);
        assert!(
            store.get_version("app", "1.0").unwrap().is_some(),
            "dry run"
        );

        let r = gc(&store, 1, 0);
        assert_eq!(r.versions_removed, ["app 1.0", "app 2.0"]);
        assert_eq!(r.chunks_removed, 2);
        assert!(store.get_version("app", "1.0").unwrap().is_none());
        assert!(store.get_version("app", "3.0").unwrap().is_some());
        let ids: Vec<_> = [1u8, 2, 3, 4, 5, 100]
            .iter()
            .map(|n| chunk(*n).id())
            .collect();
        assert_eq!(
            store.has_chunks(&ids).unwrap(),
            [false, false, true, true, true, true]
        );
        let f = store.fsck(&|_| {}).unwrap();
        assert!(f.is_clean(), "{:?}", f.problems);
        // Nothing more to do the second time.
        let again = gc(&store, 1, 0);
        assert!(again.versions_removed.is_empty());
        assert_eq!(again.chunks_removed, 0);
    }

    #[test]
    fn fresh_unreferenced_chunks_wait_for_the_grace_period() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        put(&store, &chunk(9));
        let r = gc(&store, 1, 3600);
        assert_eq!((r.chunks_removed, r.chunks_in_grace), (0, 1));
        let r = gc(&store, 1, 0);
        assert_eq!(r.chunks_removed, 1);
    }

    /// A publisher pushing while gc runs over and over with no grace at
    /// all: every version that got published keeps every chunk it needs.
    #[test]
    fn never_deletes_a_live_chunk_during_a_concurrent_push() {
        let dir = tempfile::tempdir().unwrap();
        let store = std::sync::Arc::new(Store::open(dir.path()).unwrap());
        let key = SecretKey::from_seed([7; 32]);
        store.pin_app_key("app", key.public()).unwrap();
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let collector = {
            let (store, stop) = (store.clone(), stop.clone());
            std::thread::spawn(move || {
                let mut runs = 0;
                while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                    gc(&store, 1000, 0);
                    runs += 1;
                    // A pause between collections: back to back, the
                    // collector took the (unfair) lock again at once and
                    // starved the publisher for minutes on a loaded machine.
                    std::thread::sleep(std::time::Duration::from_micros(100));
                }
                runs
            })
        };
        let mut published = Vec::new();
        let mut retries = 0;
        for i in 0..100u8 {
            let own = chunk(i);
            let m = manifest(&format!("{i}.0"), &[&own]);
            // What `ferry push` does: upload what is missing, publish, and
            // upload again if the server lost a chunk in between.
            loop {
                put(&store, &own);
                match publish(&store, &key, &m) {
                    Ok(_) => break,
                    Err(StoreError::MissingChunks { .. }) => retries += 1,
                    Err(e) => panic!("{e}"),
                }
            }
            published.push(m);
        }
        stop.store(true, std::sync::atomic::Ordering::Relaxed);
        let runs = collector.join().unwrap();
        assert!(runs > 0);
        for m in &published {
            let ids: Vec<_> = m.unique_chunks().iter().map(|c| c.id).collect();
            assert!(
                store.has_chunks(&ids).unwrap().iter().all(|h| *h),
                "{}",
                m.version
            );
        }
        let f = store.fsck(&|_| {}).unwrap();
        assert!(f.is_clean(), "{:?}", f.problems);
        eprintln!("{runs} collections, {retries} re-uploads");
    }
}

#[test]
fn apps_are_listed_once_each_in_order() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    let key = SecretKey::from_seed([7; 32]);
    let c = chunk(1);
    store
        .put_chunks(&[StoredChunk::from_verified(&c, 3)])
        .unwrap();
    for (app, version) in [("zeta", "1"), ("app", "1"), ("app", "2"), ("app-b", "1")] {
        let mut m = manifest(version, &[&c]);
        m.app = app.into();
        publish(&store, &key, &m).unwrap();
    }
    assert_eq!(store.list_apps().unwrap(), ["app", "app-b", "zeta"]);
}

#[test]
fn mirror_caches_manifests_before_chunks_and_only_newer_records() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    let key = SecretKey::from_seed([7; 32]);
    let (a, b) = (chunk(1), chunk(2));
    let m1 = manifest("1", &[&a]);
    let env = key.sign(KIND_MANIFEST, m1.encode()).encode();
    // No chunk present, still kept (the mirror fetches chunks on demand).
    store.cache_manifest(&env, m1.id(), &m1).unwrap();
    store.cache_manifest(&env, m1.id(), &m1).unwrap();
    assert_eq!(store.get_version("app", "1").unwrap(), Some(m1.id()));
    assert_eq!(store.get_manifest(&m1.id()).unwrap().unwrap(), env);
    // Never re-points a version.
    let other = manifest("1", &[&b]);
    let env2 = key.sign(KIND_MANIFEST, other.encode()).encode();
    assert!(matches!(
        store.cache_manifest(&env2, other.id(), &other),
        Err(StoreError::Conflict(_))
    ));
    let sign = |r: &ChannelRecord| key.sign(KIND_CHANNEL, r.encode()).encode();
    let (r5, r3) = (record(&m1, 5), record(&m1, 3));
    store.cache_channel(&sign(&r5), &r5).unwrap();
    store.cache_channel(&sign(&r3), &r3).unwrap();
    assert_eq!(store.get_channel("app", "stable").unwrap(), Some(sign(&r5)));
    assert_eq!(store.channel_history("app", "stable").unwrap().len(), 1);
}

#[test]
fn checkpoint_while_open_is_a_complete_store() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(&dir.path().join("data")).unwrap();
    let key = SecretKey::from_seed([7; 32]);
    let c = chunk(3);
    store
        .put_chunks(&[StoredChunk::from_verified(&c, 3)])
        .unwrap();
    let m = manifest("1", &[&c]);
    store.pin_app_key("app", key.public()).unwrap();
    publish(&store, &key, &m).unwrap();
    let stats = store.stats().unwrap();
    assert!(stats.chunks >= 1 && stats.bytes > 0, "{stats:?}");
    let out = dir.path().join("backup");
    store.checkpoint(&out).unwrap();
    // Written after the checkpoint: not in it.
    store
        .put_chunks(&[StoredChunk::from_verified(&chunk(4), 3)])
        .unwrap();
    let copy = Store::open_read_only(&out).unwrap();
    assert!(copy.get_chunk(&c.id()).unwrap().is_some());
    assert!(copy.get_chunk(&chunk(4).id()).unwrap().is_none());
    assert_eq!(copy.get_version("app", "1").unwrap(), Some(m.id()));
    let r = copy.fsck(&|_| {}).unwrap();
    assert!(r.is_clean(), "{:?}", r.problems);
    assert!(matches!(store.checkpoint(&out), Err(StoreError::Backup(_))));
    assert!(matches!(
        store.checkpoint(&dir.path().join("no/such/parent")),
        Err(StoreError::Backup(_))
    ));
}
