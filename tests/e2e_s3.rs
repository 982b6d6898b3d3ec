//! End to end on S3: two `ferry serve --store s3://...` processes over one
//! bucket (moto on loopback) behave as one service. Skipped with a message
//! when moto is not installed, unless FERRY_REQUIRE_S3_TESTS=1.

#[path = "../store-s3/tests/support/moto.rs"]
mod moto;
mod support;

use std::path::Path;
use std::process::Command;

use support::*;

fn s(p: &Path) -> String {
    p.display().to_string()
}

/// A server on `store` with moto's environment.
fn serve(m: &moto::Moto, root: &Path, store: &str) -> Server {
    let env = m.env();
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let args = [
        "serve",
        "--store",
        store,
        "--listen",
        "127.0.0.1:0",
        "--push-token",
        TOKEN,
    ];
    Server::spawn(&root.join("unused"), &args, &env)
}

fn promote(url: &str, key: &Key, version: &str, note: &str) -> Option<u64> {
    let out = ferry(&[
        "promote",
        "--server",
        url,
        "--app",
        "demo",
        "--channel",
        "stable",
        "--key",
        key.path.to_str().unwrap(),
        "--token",
        TOKEN,
        "--version",
        version,
        "--note",
        note,
        "--json",
    ]);
    if !out.status.success() {
        // Three 409s in a row under this much contention is allowed;
        // what matters is that an accepted record is never lost.
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains("409") || err.contains("sequence"), "{err}");
        return None;
    }
    json(&String::from_utf8_lossy(&out.stdout))["sequence"].as_u64()
}

#[test]
fn two_servers_over_one_bucket_are_one_service() {
    let Some(m) = moto::moto() else { return };
    m.create_bucket("ferry-e2e");
    let t = tempfile::tempdir().unwrap();
    let root = t.path();
    let store = format!("s3://ferry-e2e/run-{}", std::process::id());
    let a = serve(m, root, &store);
    let b = serve(m, root, &store);
    let key = keygen(root, "publisher.key");
    make_v1(&root.join("v1"));
    make_v2(&root.join("v1"), &root.join("v2"));
    let k = s(&key.path);

    // v1 through A, v2 through B (which sees A's chunks and pinned key).
    let p1 = json(&ferry_ok(&push_args(
        &s(&root.join("v1")),
        &a.url,
        "1.0.0",
        &k,
    )));
    assert_eq!(p1["sequence"], 1);
    let p2 = json(&ferry_ok(&push_args(
        &s(&root.join("v2")),
        &b.url,
        "1.1.0",
        &k,
    )));
    assert_eq!(p2["sequence"], 2);
    assert!(
        p2["chunks_uploaded"].as_u64().unwrap() < p1["chunks_uploaded"].as_u64().unwrap(),
        "B knew the chunks A stored: {p2}"
    );

    // Clients of either server get the same tree.
    for (server, inst) in [(&a, "inst-a"), (&b, "inst-b")] {
        let i = s(&root.join(inst));
        let out = json(&ferry_ok(&sync_args(&server.url, &i, &key.public)));
        assert_eq!(out["version"], "1.1.0", "{out}");
        assert_same_tree(&root.join("v2"), &root.join(inst).join("current"));
    }

    // Publishing through both at once loses nothing.
    let accepted: Vec<(u64, String)> = std::thread::scope(|sc| {
        let hs: Vec<_> = (0..6)
            .map(|i| {
                let (url, key) = (if i % 2 == 0 { &a.url } else { &b.url }, &key);
                sc.spawn(move || {
                    let note = format!("racer {i}");
                    promote(url, key, "1.1.0", &note).map(|seq| (seq, note))
                })
            })
            .collect();
        hs.into_iter().filter_map(|h| h.join().unwrap()).collect()
    });
    assert!(!accepted.is_empty());
    let out = ferry_ok(&[
        "history",
        "--server",
        &b.url,
        "--app",
        "demo",
        "--channel",
        "stable",
        "--trust",
        &key.public,
        "--json",
    ]);
    let h: Vec<serde_json::Value> = serde_json::from_str(&out).unwrap();
    let seqs: Vec<u64> = h.iter().map(|e| e["sequence"].as_u64().unwrap()).collect();
    let want: Vec<u64> = (1..=2 + accepted.len() as u64).collect();
    assert_eq!(seqs, want, "one entry per accepted publish, no gaps");
    for (seq, note) in &accepted {
        assert_eq!(h[*seq as usize - 1]["note"], note.as_str(), "{seq}");
    }
    assert!(h.iter().all(|e| e["verified"] == true));
    // And A answers the same current record.
    let cur_a = http_get(&a.url, "/v1/apps/demo/channels/stable", &[]);
    let cur_b = http_get(&b.url, "/v1/apps/demo/channels/stable", &[]);
    assert_eq!(cur_a.status, 200);
    assert_eq!(cur_a.body, cur_b.body);
}

#[test]
fn a_missing_bucket_is_one_clear_error_at_start() {
    let Some(m) = moto::moto() else { return };
    let mut cmd = Command::new(bin());
    cmd.args([
        "serve",
        "--store",
        "s3://no-such-bucket-here/x",
        "--listen",
        "127.0.0.1:0",
    ]);
    for (k, v) in m.env() {
        cmd.env(k, v);
    }
    let out = cmd.output().unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("s3://no-such-bucket-here/x") && err.contains("cannot list"),
        "{err}"
    );
}
