//! Server crash safety: `ferry serve` is killed with SIGKILL at every write
//! of a push (deterministic failpoints in the upload handler and the store)
//! and at evenly spread moments of a large push. After each kill the store
//! passes `ferry fsck`, no version is visible whose chunks are not all
//! present, and re-running the push completes it: a client then installs
//! exactly the pushed tree. A push that reported success survives a kill
//! right after it.

mod support;

use std::os::unix::process::ExitStatusExt;
use std::path::Path;
use std::time::Instant;

use std::process::Command;

use support::*;

fn s(p: &Path) -> String {
    p.display().to_string()
}

struct Apps {
    t: tempfile::TempDir,
    key: Key,
}

impl Apps {
    fn new() -> Apps {
        let t = tempfile::tempdir().unwrap();
        let key = keygen(t.path(), "k");
        make_many_v1(&t.path().join("v1"));
        make_many_v2(&t.path().join("v1"), &t.path().join("v2"));
        make_v1(&t.path().join("big"));
        Apps { t, key }
    }

    fn dir(&self, name: &str) -> String {
        s(&self.t.path().join(name))
    }

    fn push(&self, url: &str, tree: &str, version: &str) -> std::process::Output {
        let (d, k) = (self.dir(tree), s(&self.key.path));
        let mut args = push_args(&d, url, version, &k);
        args.extend(["--avg-chunk", "4096"]);
        Command::new(bin()).args(&args).output().unwrap()
    }

    /// fsck is clean, and a fresh client installs exactly `tree` as the
    /// channel's version.
    fn check(&self, data: &Path, url: &str, tree: &str, what: &str) {
        let out = ferry(&["fsck", "--data", &s(data)]);
        assert!(
            out.status.success(),
            "{what}: fsck found damage:\n{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        let inst = tempfile::tempdir().unwrap();
        let i = s(&inst.path().join("i"));
        ferry_ok(&sync_args(url, &i, &self.key.public));
        assert_same_tree(&self.t.path().join(tree), &inst.path().join("i/current"));
    }
}

#[test]
fn sigkill_at_every_write_of_a_push_then_fsck_is_clean_and_the_push_completes() {
    let apps = Apps::new();
    // (point, hit, the push it belongs to)
    let points: &[(&str, u64)] = &[
        ("server.upload_verified", 1),
        ("store.chunks_before_write", 1),
        ("store.chunks_written", 1),
        ("store.manifest_before_write", 1),
        ("store.manifest_written", 1),
        ("store.channel_before_write", 1),
        ("store.channel_written", 1),
        // The second push (an update) of the same server.
        ("server.upload_verified", 2),
        ("store.chunks_before_write", 2),
        ("store.chunks_written", 2),
        ("store.manifest_before_write", 2),
        ("store.manifest_written", 2),
        ("store.channel_before_write", 2),
        ("store.channel_written", 2),
    ];
    for &(point, n) in points {
        let what = format!("kill at {point}:{n}");
        let data = apps
            .t
            .path()
            .join(format!("data-{}-{n}", point.replace('.', "-")));
        let spec = format!("{point}:{n}");
        let mut server = Server::start_env(&data, &[], &[("FERRY_FAILPOINT", &spec)]);
        let first = apps.push(&server.url, "v1", "1.0.0");
        let killed_first = !first.status.success();
        if !killed_first {
            let second = apps.push(&server.url, "v2", "2.0.0");
            assert!(!second.status.success(), "{what}: the second push survived");
        }
        let st = server.wait_exit(30).expect("server still running");
        assert_eq!(st.signal(), Some(9), "{what}: {st}");
        assert_eq!(killed_first, n == 1, "{what}");

        // Restart over the same data: fsck clean, pushes complete.
        let out = ferry(&["fsck", "--data", &s(&data)]);
        assert!(
            out.status.success(),
            "{what}: fsck after the kill: {}",
            String::from_utf8_lossy(&out.stdout)
        );
        let server = Server::start(&data);
        let r = apps.push(&server.url, "v1", "1.0.0");
        assert!(
            r.status.success(),
            "{what}: re-push: {}",
            String::from_utf8_lossy(&r.stderr)
        );
        if n == 1 {
            apps.check(&data, &server.url, "v1", &what);
        }
        let r = apps.push(&server.url, "v2", "2.0.0");
        assert!(
            r.status.success(),
            "{what}: re-push: {}",
            String::from_utf8_lossy(&r.stderr)
        );
        apps.check(&data, &server.url, "v2", &what);
        server.stop();
    }
}

#[test]
fn sigkill_at_spread_moments_of_a_large_push() {
    let apps = Apps::new();
    // How long a clean push takes here.
    let data = apps.t.path().join("data-probe");
    let server = Server::start(&data);
    let t0 = Instant::now();
    assert!(apps.push(&server.url, "big", "1.0.0").status.success());
    let clean = t0.elapsed();
    server.stop();
    let trials = 12u32;
    let mut survived = 0;
    for i in 0..trials {
        let what = format!("kill {i}/{trials} into the push");
        let data = apps.t.path().join(format!("data-timed-{i}"));
        let mut server = Server::start(&data);
        let url = server.url.clone();
        // From 1/6 to twice a clean push: the last ones finish first.
        let delay = clean * (i + 1) / 6;
        let pusher = std::thread::spawn({
            let (d, k) = (apps.dir("big"), s(&apps.key.path));
            move || {
                let mut args = push_args(&d, &url, "1.0.0", &k);
                args.extend(["--avg-chunk", "4096"]);
                Command::new(bin()).args(&args).output().unwrap()
            }
        });
        std::thread::sleep(delay);
        server.kill();
        let out = pusher.join().unwrap();
        if out.status.success() {
            survived += 1;
        }
        let fsck = ferry(&["fsck", "--data", &s(&data)]);
        assert!(
            fsck.status.success(),
            "{what}: {}",
            String::from_utf8_lossy(&fsck.stdout)
        );
        let server = Server::start(&data);
        if out.status.success() {
            // Reported published: it survived the kill.
            apps.check(&data, &server.url, "big", &what);
        }
        let r = apps.push(&server.url, "big", "1.0.0");
        assert!(
            r.status.success(),
            "{what}: re-push: {}",
            String::from_utf8_lossy(&r.stderr)
        );
        apps.check(&data, &server.url, "big", &what);
        server.stop();
    }
    eprintln!("{survived} of {trials} pushes finished before the kill ({clean:?} per push)");
}

#[test]
fn a_successful_push_survives_an_immediate_sigkill() {
    let apps = Apps::new();
    let data = apps.t.path().join("data");
    let mut server = Server::start(&data);
    let out = apps.push(&server.url, "v1", "1.0.0");
    assert!(out.status.success());
    // No graceful shutdown, no flush: killed right after success.
    server.kill();
    let server = Server::start(&data);
    apps.check(&data, &server.url, "v1", "after the kill");
}
