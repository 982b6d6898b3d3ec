//! One test suite for every `Backend`: the RocksDB `Store`, `ObjectBackend`
//! over object_store's `InMemory`, and `ObjectBackend` over a real S3 API
//! (moto on loopback; skipped with a message when moto is absent, unless
//! FERRY_REQUIRE_S3_TESTS=1).
//!
//! Each case gets two handles on one store (`a`, `b`): for the object
//! backends two independent instances over the same bucket and prefix, as
//! two servers would be; for RocksDB, which one process owns, one store.

mod support;

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Barrier, OnceLock};

use ferry_protocol::report::{Outcome, Report};
use ferry_protocol::rollout::Policy;
use ferry_protocol::signed::{KIND_CHANNEL, KIND_MANIFEST};
use ferry_protocol::{
    ChannelRecord, ChunkRef, ChunkerParams, Entry, EntryKind, Manifest, SecretKey, VerifiedChunk,
};
use ferry_store::{decode_channel, Backend, Store, StoreError, StoredChunk};
use ferry_store_s3::ObjectBackend;
use object_store::aws::AmazonS3Builder;
use object_store::memory::InMemory;

struct Fixture {
    a: Arc<dyn Backend>,
    b: Arc<dyn Backend>,
    _dir: Option<tempfile::TempDir>,
}

fn rocks() -> Option<Fixture> {
    let dir = tempfile::tempdir().unwrap();
    let s: Arc<dyn Backend> = Arc::new(Store::open(dir.path()).unwrap());
    Some(Fixture {
        a: s.clone(),
        b: s,
        _dir: Some(dir),
    })
}

fn memory() -> Option<Fixture> {
    let mem = Arc::new(InMemory::new());
    Some(Fixture {
        a: Arc::new(ObjectBackend::new(mem.clone(), "some/prefix").unwrap()),
        b: Arc::new(ObjectBackend::new(mem, "/some/prefix/").unwrap()),
        _dir: None,
    })
}

const BUCKET: &str = "ferry-conformance";

fn s3_backend(endpoint: &str, prefix: &str) -> ObjectBackend {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let store = AmazonS3Builder::new()
        .with_endpoint(endpoint)
        .with_allow_http(true)
        .with_bucket_name(BUCKET)
        .with_region("us-east-1")
        .with_access_key_id("test")
        .with_secret_access_key("test")
        .build()
        .unwrap();
    let b = ObjectBackend::new(Arc::new(store), prefix).unwrap();
    b.check_access().unwrap();
    b
}

fn moto() -> Option<Fixture> {
    let m = support::moto::moto()?;
    static BUCKET_MADE: OnceLock<()> = OnceLock::new();
    BUCKET_MADE.get_or_init(|| m.create_bucket(BUCKET));
    // One prefix per case: the cases share the bucket.
    static N: AtomicUsize = AtomicUsize::new(0);
    let prefix = format!(
        "t{}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    );
    Some(Fixture {
        a: Arc::new(s3_backend(&m.endpoint, &prefix)),
        b: Arc::new(s3_backend(&m.endpoint, &prefix)),
        _dir: None,
    })
}

/// Runs every case against one kind of store.
macro_rules! suite {
    ($name:ident, $make:path) => {
        mod $name {
            use super::*;
            fn run(case: fn(&Fixture)) {
                if let Some(f) = $make() {
                    case(&f);
                }
            }
            #[test]
            fn empty_store() {
                run(cases::empty_store)
            }
            #[test]
            fn chunks_round_trip() {
                run(cases::chunks_round_trip)
            }
            #[test]
            fn versions_are_immutable() {
                run(cases::versions_are_immutable)
            }
            #[test]
            fn channel_sequence_grows_and_history_is_kept() {
                run(cases::channel_sequence_grows_and_history_is_kept)
            }
            #[test]
            fn racing_publishes_one_winner_per_sequence() {
                run(cases::racing_publishes_one_winner_per_sequence)
            }
            #[test]
            fn racing_increasing_publishes_lose_nothing() {
                run(cases::racing_increasing_publishes_lose_nothing)
            }
            #[test]
            fn keys_pin_rotate_revoke() {
                run(cases::keys_pin_rotate_revoke)
            }
            #[test]
            fn report_counts() {
                run(cases::report_counts)
            }
            #[test]
            fn mirror_caches() {
                run(cases::mirror_caches)
            }
        }
    };
}

suite!(rocksdb, rocks);
suite!(in_memory, memory);
suite!(s3_moto, moto);

fn chunk(n: u8) -> VerifiedChunk {
    VerifiedChunk::from_data(vec![n; 10_000 + usize::from(n)])
}

fn manifest(app: &str, version: &str, chunks: &[&VerifiedChunk]) -> Manifest {
    let refs: Vec<ChunkRef> = chunks
        .iter()
        .map(|c| ChunkRef {
            id: c.id(),
            len: c.data().len() as u32,
        })
        .collect();
    Manifest {
        app: app.into(),
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

fn key() -> SecretKey {
    SecretKey::from_seed([7; 32])
}

fn put(s: &dyn Backend, c: &VerifiedChunk) {
    s.put_chunks(&[StoredChunk::from_verified(c, 3)]).unwrap();
}

fn publish(s: &dyn Backend, m: &Manifest) -> Result<bool, StoreError> {
    let env = key().sign(KIND_MANIFEST, m.encode());
    s.put_manifest(&env.encode(), m.id(), m)
}

/// Chunks and a published manifest for `app` `version`.
fn published(s: &dyn Backend, app: &str, version: &str, n: u8) -> Manifest {
    let c = chunk(n);
    put(s, &c);
    let m = manifest(app, version, &[&c]);
    publish(s, &m).unwrap();
    m
}

fn record(m: &Manifest, channel: &str, sequence: u64) -> ChannelRecord {
    ChannelRecord {
        app: m.app.clone(),
        channel: channel.into(),
        sequence,
        version: m.version.clone(),
        manifest_id: m.id(),
        issued_at: 1,
        expires_at: None,
        policy: Default::default(),
        keys: Vec::new(),
    }
}

fn signed(r: &ChannelRecord) -> Vec<u8> {
    key().sign(KIND_CHANNEL, r.encode()).encode()
}

fn promote(s: &dyn Backend, r: &ChannelRecord) -> Result<(), StoreError> {
    s.put_channel(&signed(r), r)
}

fn seqs(envs: &[Vec<u8>]) -> Vec<u64> {
    envs.iter()
        .map(|e| decode_channel(e).unwrap().sequence)
        .collect()
}

mod cases {
    use super::*;

    pub fn empty_store(f: &Fixture) {
        let s = &*f.a;
        assert!(s.list_apps().unwrap().is_empty());
        assert!(s.get_channel("app", "stable").unwrap().is_none());
        assert!(s.channel_history("app", "stable").unwrap().is_empty());
        assert!(s.channels_of("app").unwrap().is_empty());
        assert!(s.app_keys("app").unwrap().is_empty());
        assert!(s.rotated_app_keys("app").unwrap().is_empty());
        assert!(s.list_versions("app").unwrap().is_empty());
        assert!(s.report_counts("app").unwrap().is_empty());
        s.ready().unwrap();
        s.stats().unwrap();
    }

    pub fn chunks_round_trip(f: &Fixture) {
        let (a, b) = (&*f.a, &*f.b);
        let (c1, c2, c3) = (chunk(1), chunk(2), chunk(3));
        let stored = [
            StoredChunk::from_verified(&c1, 3),
            StoredChunk::from_verified(&c2, 3),
        ];
        assert_eq!(a.put_chunks(&stored).unwrap(), 2);
        assert_eq!(b.put_chunks(&stored[..1]).unwrap(), 0, "already there");
        assert_eq!(
            b.has_chunks(&[c3.id(), c1.id(), c2.id()]).unwrap(),
            [false, true, true]
        );
        let got = b.get_chunks(&[c2.id(), c3.id(), c1.id()]).unwrap();
        assert!(got[1].is_none());
        for (c, v) in [(&c2, &got[0]), (&c1, &got[2])] {
            let v = v.as_ref().unwrap();
            assert_eq!(*v, StoredChunk::from_verified(c, 3).value());
            let (codec, raw, payload) = ferry_store::parse_value(&c.id(), v).unwrap();
            let back = ferry_protocol::chunk::decode_payload(c.id(), codec, raw, payload).unwrap();
            assert_eq!(back.data(), c.data());
        }
        assert!(a.get_chunk(&c3.id()).unwrap().is_none());
        assert!(a.get_chunk(&c1.id()).unwrap().is_some());
        let many: Vec<_> = (0..100u8).map(|n| chunk(n).id()).collect();
        let have = a.has_chunks(&many).unwrap();
        assert_eq!(
            have.iter().filter(|h| **h).count(),
            2,
            "of ids 0-99, 1 and 2"
        );
    }

    pub fn versions_are_immutable(f: &Fixture) {
        let (a, b) = (&*f.a, &*f.b);
        let c1 = chunk(1);
        let m = manifest("zeta", "1.0", &[&c1]);
        assert!(matches!(
            publish(a, &m),
            Err(StoreError::MissingChunks { count: 1, .. })
        ));
        put(a, &c1);
        assert!(publish(a, &m).unwrap(), "new");
        assert!(!publish(b, &m).unwrap(), "same again: no change");
        let c2 = chunk(2);
        put(b, &c2);
        let other = manifest("zeta", "1.0", &[&c2]);
        let e = publish(b, &other).unwrap_err();
        assert!(matches!(e, StoreError::Conflict(_)), "{e}");
        assert_eq!(a.get_version("zeta", "1.0").unwrap(), Some(m.id()));
        let env = b.get_manifest(&m.id()).unwrap().unwrap();
        assert_eq!(env, key().sign(KIND_MANIFEST, m.encode()).encode());
        assert!(b.get_manifest(&other.id()).unwrap().is_none());
        published(a, "zeta", "2.0", 3);
        published(b, "alpha", "0.1", 4);
        assert_eq!(a.list_apps().unwrap(), ["alpha", "zeta"]);
        let vs = b.list_versions("zeta").unwrap();
        let names: Vec<&str> = vs.iter().map(|(v, _)| v.as_str()).collect();
        assert_eq!(names, ["1.0", "2.0"]);
        assert_eq!(vs[0].1, m.id());
        assert!(a.get_version("zeta", "3.0").unwrap().is_none());
    }

    pub fn channel_sequence_grows_and_history_is_kept(f: &Fixture) {
        let (a, b) = (&*f.a, &*f.b);
        let m1 = published(a, "app", "1.0", 1);
        let m2 = published(a, "app", "2.0", 2);
        let r1 = record(&m1, "stable", 1);
        promote(a, &r1).unwrap();
        let r2 = record(&m2, "stable", 5);
        promote(b, &r2).unwrap();
        for stale in [5, 4, 1] {
            match promote(a, &record(&m1, "stable", stale)) {
                Err(StoreError::StaleSequence { current, got, .. }) => {
                    assert_eq!((current, got), (5, stale))
                }
                other => panic!("sequence {stale}: {other:?}"),
            }
        }
        assert_eq!(a.get_channel("app", "stable").unwrap(), Some(signed(&r2)));
        let h = b.channel_history("app", "stable").unwrap();
        assert_eq!(h, [signed(&r1), signed(&r2)]);
        // Versions a record names must be published, with that manifest.
        let mut unknown = record(&m1, "stable", 6);
        unknown.version = "9.9".into();
        assert!(matches!(
            promote(a, &unknown),
            Err(StoreError::UnknownManifest(_))
        ));
        let mut wrong = record(&m1, "stable", 6);
        wrong.manifest_id = m2.id();
        assert!(matches!(promote(a, &wrong), Err(StoreError::Conflict(_))));
        let mut fallback = record(&m2, "beta", 1);
        fallback.policy = Policy {
            previous: Some(record(&m1, "beta", 0).target()),
            ..Policy::default()
        };
        promote(b, &fallback).unwrap();
        let mut bad_fallback = record(&m2, "beta", 2);
        bad_fallback.policy.previous = Some(unknown.target());
        assert!(matches!(
            promote(b, &bad_fallback),
            Err(StoreError::UnknownManifest(_))
        ));
        let chans = a.channels_of("app").unwrap();
        let names: Vec<&str> = chans.iter().map(|(n, _)| n.as_str()).collect();
        assert_eq!(names, ["beta", "stable"]);
        assert_eq!(chans[1].1, signed(&r2));
        assert!(a.channels_of("other").unwrap().is_empty());
    }

    pub fn racing_publishes_one_winner_per_sequence(f: &Fixture) {
        const THREADS: usize = 6;
        const ROUNDS: u64 = 8;
        let m = published(&*f.a, "app", "1.0", 1);
        let barrier = Arc::new(Barrier::new(THREADS));
        let wins: Vec<Vec<u64>> = std::thread::scope(|s| {
            let hs: Vec<_> = (0..THREADS)
                .map(|t| {
                    let store = if t % 2 == 0 { f.a.clone() } else { f.b.clone() };
                    let (barrier, m) = (barrier.clone(), &m);
                    s.spawn(move || {
                        let mut won = Vec::new();
                        for seq in 1..=ROUNDS {
                            let mut r = record(m, "stable", seq);
                            r.issued_at = t as u64 + 1;
                            barrier.wait();
                            match promote(&*store, &r) {
                                Ok(()) => won.push(seq),
                                Err(StoreError::StaleSequence { .. }) => {}
                                Err(e) => panic!("thread {t}, sequence {seq}: {e}"),
                            }
                        }
                        won
                    })
                })
                .collect();
            hs.into_iter().map(|h| h.join().unwrap()).collect()
        });
        let mut all: Vec<u64> = wins.iter().flatten().copied().collect();
        all.sort();
        let want: Vec<u64> = (1..=ROUNDS).collect();
        assert_eq!(all, want, "exactly one winner per sequence");
        let h = f.b.channel_history("app", "stable").unwrap();
        assert_eq!(seqs(&h), want, "history complete");
        // Each history entry is the winner's record.
        for (seq, env) in (1..=ROUNDS).zip(&h) {
            let t = wins.iter().position(|w| w.contains(&seq)).unwrap();
            assert_eq!(decode_channel(env).unwrap().issued_at, t as u64 + 1);
        }
    }

    pub fn racing_increasing_publishes_lose_nothing(f: &Fixture) {
        const THREADS: usize = 6;
        const EACH: usize = 8;
        let m = published(&*f.a, "app", "1.0", 1);
        let next = AtomicU64::new(1);
        let won: Vec<u64> = std::thread::scope(|s| {
            let hs: Vec<_> = (0..THREADS)
                .map(|t| {
                    let store = if t % 2 == 0 { f.a.clone() } else { f.b.clone() };
                    let (next, m) = (&next, &m);
                    s.spawn(move || {
                        let mut won = Vec::new();
                        for _ in 0..EACH {
                            let seq = next.fetch_add(1, Ordering::SeqCst);
                            match promote(&*store, &record(m, "stable", seq)) {
                                Ok(()) => won.push(seq),
                                Err(StoreError::StaleSequence { current, .. }) => {
                                    assert!(current > seq)
                                }
                                Err(e) => panic!("sequence {seq}: {e}"),
                            }
                        }
                        won
                    })
                })
                .collect();
            hs.into_iter().flat_map(|h| h.join().unwrap()).collect()
        });
        let mut won = won;
        won.sort();
        assert!(!won.is_empty());
        let h = f.a.channel_history("app", "stable").unwrap();
        assert_eq!(seqs(&h), won, "every accepted record is in the history");
        let cur = decode_channel(&f.b.get_channel("app", "stable").unwrap().unwrap()).unwrap();
        assert_eq!(cur.sequence, *won.last().unwrap());
    }

    pub fn keys_pin_rotate_revoke(f: &Fixture) {
        let (a, b) = (&*f.a, &*f.b);
        let (k1, k2) = (key().public(), SecretKey::from_seed([8; 32]).public());
        assert_eq!(a.pin_app_key("app", k1).unwrap(), [k1]);
        assert_eq!(b.pin_app_key("app", k2).unwrap(), [k1], "first pin stays");
        assert_eq!(b.app_keys("app").unwrap(), [k1]);
        assert!(b.app_keys("other").unwrap().is_empty());
        let m = published(a, "app", "1.0", 1);
        let mut r = record(&m, "stable", 1);
        r.keys = vec![k2];
        a.put_channel_rotating(&signed(&r), &r, &[k1]).unwrap();
        assert_eq!(b.rotated_app_keys("app").unwrap(), [k2]);
        assert_eq!(b.revoked_app_keys("app").unwrap(), [k1]);
        assert_eq!(b.app_keys("app").unwrap(), [k1], "pinned set unchanged");
        // A stale rotation changes nothing.
        let mut stale = record(&m, "stable", 1);
        stale.keys = vec![k1];
        assert!(b
            .put_channel_rotating(&signed(&stale), &stale, &[k2])
            .is_err());
        assert_eq!(a.rotated_app_keys("app").unwrap(), [k2]);
        // Rotating back un-revokes k1 and revokes k2.
        let mut back = record(&m, "stable", 2);
        back.keys = vec![k1];
        b.put_channel_rotating(&signed(&back), &back, &[k2])
            .unwrap();
        assert_eq!(a.rotated_app_keys("app").unwrap(), [k1]);
        assert_eq!(a.revoked_app_keys("app").unwrap(), [k2]);
        // Both again: nothing revoked any more.
        let mut both = record(&m, "stable", 3);
        both.keys = vec![k1, k2];
        a.put_channel_rotating(&signed(&both), &both, &[k1])
            .unwrap();
        assert!(b.revoked_app_keys("app").unwrap().is_empty());
    }

    pub fn report_counts(f: &Fixture) {
        let (a, b) = (&*f.a, &*f.b);
        let rep = |id: &str, version: &str, outcome| Report {
            client_id: id.into(),
            channel: "stable".into(),
            version: Some(version.into()),
            outcome,
            error: None,
            subject: None,
        };
        a.put_report("app", &rep("client-0001", "1.0", Outcome::Ok), 10)
            .unwrap();
        b.put_report("app", &rep("client-0002", "1.0", Outcome::Ok), 20)
            .unwrap();
        a.put_report("app", &rep("client-0003", "1.0", Outcome::Failed), 30)
            .unwrap();
        // A client's next report replaces its last.
        b.put_report("app", &rep("client-0003", "2.0", Outcome::Ok), 40)
            .unwrap();
        a.put_report("other", &rep("client-0009", "1.0", Outcome::Ok), 50)
            .unwrap();
        let rows = b.report_counts("app").unwrap();
        let got: Vec<(String, u64, u64)> = rows
            .iter()
            .map(|r| (r.version.clone(), r.clients, r.last_report_at))
            .collect();
        assert_eq!(got, [("1.0".into(), 2, 20), ("2.0".into(), 1, 40)]);
        assert!(rows.iter().all(|r| r.outcome == Outcome::Ok));
    }

    pub fn mirror_caches(f: &Fixture) {
        let (a, b) = (&*f.a, &*f.b);
        // A mirror keeps a manifest before it has the chunks.
        let c1 = chunk(1);
        let m = manifest("app", "1.0", &[&c1]);
        let env = key().sign(KIND_MANIFEST, m.encode()).encode();
        a.cache_manifest(&env, m.id(), &m).unwrap();
        b.cache_manifest(&env, m.id(), &m).unwrap();
        assert_eq!(b.get_version("app", "1.0").unwrap(), Some(m.id()));
        assert_eq!(b.get_manifest(&m.id()).unwrap(), Some(env));
        let other = manifest("app", "1.0", &[&chunk(2)]);
        let oenv = key().sign(KIND_MANIFEST, other.encode()).encode();
        assert!(matches!(
            a.cache_manifest(&oenv, other.id(), &other),
            Err(StoreError::Conflict(_))
        ));
        // Channel records: only newer ones replace, silently.
        let (r2, r1, r3) = (
            record(&m, "stable", 2),
            record(&m, "stable", 1),
            record(&m, "stable", 3),
        );
        a.cache_channel(&signed(&r2), &r2).unwrap();
        b.cache_channel(&signed(&r1), &r1).unwrap();
        assert_eq!(a.get_channel("app", "stable").unwrap(), Some(signed(&r2)));
        b.cache_channel(&signed(&r3), &r3).unwrap();
        assert_eq!(a.get_channel("app", "stable").unwrap(), Some(signed(&r3)));
        assert_eq!(seqs(&a.channel_history("app", "stable").unwrap()), [2, 3]);
    }
}
