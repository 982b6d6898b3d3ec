//! End to end: the server's background pass that re-encodes prepared group
//! frames at a higher level. Clients that sync after it get the same tree
//! for no more bytes than from a server without it.

mod support;

use std::time::{Duration, Instant};

use support::*;

/// Pushes v1, syncs a client, pushes v2 to `server`; returns the install.
fn first_version_installed(
    root: &std::path::Path,
    server: &Server,
    key: &Key,
    name: &str,
) -> String {
    let k = key.path.display().to_string();
    let p = |rel: &str| root.join(rel).display().to_string();
    ferry_ok(&push_args(&p("v1"), &server.url, "1.0.0", &k));
    let inst = p(name);
    ferry_ok(&sync_args(&server.url, &inst, &key.public));
    ferry_ok(&push_args(&p("v2"), &server.url, "1.1.0", &k));
    inst
}

/// Waits until the server logged `n` lines containing `what`.
fn wait_for_log(server: &Server, what: &str, n: usize) {
    let end = Instant::now() + Duration::from_secs(120);
    loop {
        let seen = server
            .log
            .lock()
            .unwrap()
            .iter()
            .filter(|l| l.contains(what))
            .count();
        if seen >= n {
            return;
        }
        assert!(
            Instant::now() < end,
            "the server did not log {n} x {what:?}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn refined_frames_decode_to_the_same_tree_for_no_more_bytes() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path();
    let key = keygen(root, "publisher.key");
    make_v1(&root.join("v1"));
    make_v2(&root.join("v1"), &root.join("v2"));
    let info = [("RUST_LOG", "ferry_server=info")];

    let plain = Server::start_env(&root.join("plain"), &["--group-refine-level", "0"], &info);
    let refined = Server::start_env(&root.join("refined"), &[], &info);
    let a = first_version_installed(root, &plain, &key, "a");
    let b = first_version_installed(root, &refined, &key, "b");
    // Publishing v2 prepares (and refines) three moves: v1 -> v2, and fresh
    // installs of v1 and of v2.
    wait_for_log(&plain, "prepared", 3);
    wait_for_log(&refined, "refined", 3);
    assert!(
        !plain
            .log
            .lock()
            .unwrap()
            .iter()
            .any(|l| l.contains("refined")),
        "--group-refine-level 0 refines nothing"
    );

    let down = |server: &Server, inst: &str| {
        let s = json(&ferry_ok(&sync_args(&server.url, inst, &key.public)));
        assert_eq!(s["version"], "1.1.0");
        s["bytes_downloaded"].as_u64().unwrap()
    };
    // The two servers' manifests differ in their creation times, so their
    // compressed forms may differ by a few bytes.
    let noise = 64;
    let (plain_down, refined_down) = (down(&plain, &a), down(&refined, &b));
    assert!(
        refined_down <= plain_down + noise,
        "update: refined frames cost {refined_down} bytes, plain ones {plain_down}"
    );
    // Fresh installs of v2 (whole files, where level 19 finds more).
    let fresh = |name: &str| root.join(name).display().to_string();
    let (plain_fresh, refined_fresh) = (down(&plain, &fresh("c")), down(&refined, &fresh("d")));
    assert!(
        refined_fresh + noise < plain_fresh,
        "fresh install: refined frames cost {refined_fresh} bytes, plain ones {plain_fresh}"
    );
    for inst in ["a", "b", "c", "d"] {
        assert_same_tree(&root.join("v2"), &root.join(inst).join("current"));
    }
}

#[test]
fn refine_level_is_checked() {
    let tmp = tempfile::tempdir().unwrap();
    let e = ferry_err(&[
        "serve",
        "--data",
        &tmp.path().join("d").display().to_string(),
        "--group-refine-level",
        "23",
    ]);
    assert!(e.contains("group-refine-level"), "{e}");
    std::fs::write(tmp.path().join("ferry.toml"), "group-refine-level = 40\n").unwrap();
    let e = ferry_err(&[
        "serve",
        "--config",
        &tmp.path().join("ferry.toml").display().to_string(),
        "--data",
        &tmp.path().join("d").display().to_string(),
    ]);
    assert!(e.contains("group-refine-level: 40 is not in 0-22"), "{e}");
}
