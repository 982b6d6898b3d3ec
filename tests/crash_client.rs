//! Client crash safety: `ferry sync` is killed with SIGKILL at every kind of
//! point of an update (fetching, assembling, fsync, switching) and the disk
//! fills up during one. After every kill `current` must be exactly the old
//! or the new version, and a rerun must finish the update without fetching
//! again any chunk that was already written.
//!
//! The kills are deterministic: `FERRY_FAILPOINT=NAME:N` makes the process
//! SIGKILL itself at the N-th time it reaches crash point NAME (see the
//! `ferry-failpoint` crate). A first run with `FERRY_FAILPOINT_LOG` lists
//! every point an update passes, in order; the trials are spread over it.

mod support;

use std::collections::BTreeMap;
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::Command;

use support::*;

fn s(p: &Path) -> String {
    p.display().to_string()
}

struct Fixture {
    _t: tempfile::TempDir,
    root: PathBuf,
    server: Server,
    key: Key,
    v1: PathBuf,
    v2: PathBuf,
    /// An install at version 1, copied for every trial.
    template: PathBuf,
}

fn push(f: &Fixture, dir: &Path, version: &str) {
    let (d, k) = (s(dir), s(&f.key.path));
    let mut args = push_args(&d, &f.server.url, version, &k);
    args.extend(["--avg-chunk", "4096"]);
    ferry_ok(&args);
}

fn fixture() -> Fixture {
    let t = tempfile::tempdir().unwrap();
    let root = t.path().to_path_buf();
    let server = Server::start(&root.join("data"));
    let key = keygen(&root, "k");
    let (v1, v2) = (root.join("v1"), root.join("v2"));
    make_many_v1(&v1);
    make_many_v2(&v1, &v2);
    let template = root.join("template");
    let f = Fixture {
        _t: t,
        root,
        server,
        key,
        v1,
        v2,
        template,
    };
    push(&f, &f.v1, "1.0.0");
    ferry_ok(&sync_args(&f.server.url, &s(&f.template), &f.key.public));
    assert_same_tree(&f.v1, &f.template.join("current"));
    push(&f, &f.v2, "2.0.0");
    f
}

fn sync_cmd(f: &Fixture, inst: &Path) -> Command {
    let mut c = Command::new(bin());
    c.args(sync_args(&f.server.url, &s(inst), &f.key.public));
    c
}

fn verify_json(inst: &Path) -> serde_json::Value {
    json(&ferry_ok(&["verify", "--install", &s(inst), "--json"]))
}

/// One kill trial.
struct Trial {
    name: String,
    n: u64,
    /// Every chunk had been fetched before the kill.
    fetch_done: bool,
}

/// Picks trials spread over the crash points of a logged run: every hit of
/// a rare point, evenly spaced hits of frequent ones.
fn choose_trials(log: &str) -> Vec<Trial> {
    let mut seen: BTreeMap<&str, u64> = BTreeMap::new();
    let mut all = Vec::new();
    let mut fetched = false;
    for line in log.lines() {
        let Some(point) = line.strip_prefix("kill ") else {
            continue;
        };
        let name = point.split(' ').next().unwrap_or("");
        let n = seen.entry(name).or_default();
        *n += 1;
        all.push(Trial {
            name: name.to_string(),
            n: *n,
            fetch_done: fetched,
        });
        if name == "client.fetched" {
            fetched = true;
        }
    }
    let totals = seen;
    all.into_iter()
        .filter(|t| {
            let total = totals[t.name.as_str()];
            let per = 14u64;
            total <= per || t.n == 1 || t.n == total || t.n % total.div_ceil(per) == 0
        })
        .collect()
}

#[test]
fn sigkill_at_any_point_of_an_update_leaves_old_or_new_and_a_rerun_finishes() {
    let f = fixture();

    // A clean update, logged: what a full run fetches, and every point.
    let probe = f.root.join("probe");
    copy_tree(&f.template, &probe);
    let log_file = f.root.join("points.log");
    let out = sync_cmd(&f, &probe)
        .env("FERRY_FAILPOINT_LOG", &log_file)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let clean = json(&String::from_utf8_lossy(&out.stdout));
    assert_same_tree(&f.v2, &probe.join("current"));
    let total_chunks = clean["chunks_fetched"].as_u64().unwrap();
    let total_raw = clean["bytes_fetched_raw"].as_u64().unwrap();
    let total_down = clean["bytes_downloaded"].as_u64().unwrap();
    assert!(total_chunks >= 60, "update too small to test: {clean}");

    let log = std::fs::read_to_string(&log_file).unwrap();
    let trials = choose_trials(&log);
    let kinds: std::collections::BTreeSet<&str> = trials.iter().map(|t| t.name.as_str()).collect();
    eprintln!("{} kill points over {kinds:?}", trials.len());
    assert!(trials.len() >= 50, "only {} kill points", trials.len());
    for must in [
        "client.chunk_written",
        "client.file_assembled",
        "client.file_linked",
        "client.file_synced",
        "client.write_atomic.before_rename",
        "switch.journaled",
        "switch.exchanged",
        "switch.old_filed",
        "switch.state_saved",
    ] {
        assert!(kinds.contains(must), "no trial at {must}");
    }

    let trials = std::sync::Mutex::new(trials.into_iter().enumerate().collect::<Vec<_>>());
    let (mut old_seen, mut new_seen) = (0, 0);
    std::thread::scope(|sc| {
        let workers: Vec<_> = (0..2)
            .map(|_| {
                sc.spawn(|| {
                    let mut seen = (0, 0);
                    loop {
                        let Some((i, t)) = trials.lock().unwrap().pop() else {
                            return seen;
                        };
                        let new = run_trial(&f, i, &t, (total_chunks, total_raw, total_down));
                        if new {
                            seen.1 += 1;
                        } else {
                            seen.0 += 1;
                        }
                    }
                })
            })
            .collect();
        for w in workers {
            let (o, n) = w.join().unwrap();
            old_seen += o;
            new_seen += n;
        }
    });
    eprintln!("after the kills: {old_seen} times the old version, {new_seen} times the new");
    assert!(old_seen > 0 && new_seen > 0);
}

/// Kills one update at `t`, checks `current`, reruns. Returns whether the
/// kill left the new version live.
fn run_trial(f: &Fixture, i: usize, t: &Trial, (chunks, raw, down): (u64, u64, u64)) -> bool {
    let what = format!("kill at {}:{}", t.name, t.n);
    let inst = f.root.join(format!("trial-{i}"));
    copy_tree(&f.template, &inst);
    // The killed run logs its own points: chunk writes run on several
    // threads (and groups write many chunks at once), so which chunks were
    // on disk at the kill is read from this run, not the clean one.
    let log_file = f.root.join(format!("trial-{i}.log"));
    let out = sync_cmd(f, &inst)
        .env("FERRY_FAILPOINT", format!("{}:{}", t.name, t.n))
        .env("FERRY_FAILPOINT_LOG", &log_file)
        .output()
        .unwrap();
    let (mut chunks_written, mut bytes_written) = (0u64, 0u64);
    for line in std::fs::read_to_string(&log_file)
        .unwrap_or_default()
        .lines()
    {
        if let Some(b) = line.strip_prefix("kill client.chunk_written ") {
            chunks_written += 1;
            bytes_written += b.parse::<u64>().unwrap();
        }
    }
    assert_eq!(
        out.status.signal(),
        Some(9),
        "{what}: the run was not killed there ({}): {}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    // Never a mix: the live tree is exactly one of the two versions.
    let current = inst.join("current");
    let is_new = same_tree(&f.v2, &current);
    assert!(
        is_new || same_tree(&f.v1, &current),
        "{what}: current is neither version 1 nor version 2"
    );
    let expect = if is_new { "2.0.0" } else { "1.0.0" };
    // Half the trials check with `verify` first (which completes an
    // interrupted switch itself), half let the rerun recover.
    if i.is_multiple_of(2) {
        let v = verify_json(&inst);
        assert_eq!(v["version"], expect, "{what}: {v}");
        assert_eq!(v["clean"], true, "{what}: {v}");
    }
    let out = sync_cmd(f, &inst).output().unwrap();
    assert!(
        out.status.success(),
        "{what}: rerun failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let r = json(&String::from_utf8_lossy(&out.stdout));
    assert_eq!(r["version"], "2.0.0", "{what}: {r}");
    assert_same_tree(&f.v2, &current);
    let v = verify_json(&inst);
    assert_eq!(
        (&v["version"], &v["clean"]),
        (&"2.0.0".into(), &true.into())
    );
    // The rerun fetches nothing that was already written.
    let fetched = r["chunks_fetched"].as_u64().unwrap();
    if t.fetch_done || is_new {
        assert_eq!(fetched, 0, "{what}: everything was fetched already: {r}");
    } else {
        assert!(
            fetched + chunks_written <= chunks,
            "{what}: {chunks_written} chunks were written before the kill, the rerun fetched {fetched} of {chunks}"
        );
    }
    // In bytes: nothing already on disk comes over the network again.
    let fetched_raw = r["bytes_fetched_raw"].as_u64().unwrap();
    assert!(
        fetched_raw + bytes_written <= raw,
        "{what}: {bytes_written} bytes were written before the kill, the rerun fetched {fetched_raw} of {raw}"
    );
    assert!(
        r["bytes_downloaded"].as_u64().unwrap() <= down,
        "{what}: {r}"
    );
    // No staging or trash left behind.
    assert_eq!(entries(&inst.join(".ferry/staging")), 0, "{what}");
    std::fs::remove_dir_all(&inst).unwrap();
    is_new
}

fn entries(dir: &Path) -> usize {
    std::fs::read_dir(dir).map(|d| d.count()).unwrap_or(0)
}

#[test]
fn injected_disk_full_fails_clearly_keeps_the_old_version_and_cleans_staging() {
    let f = fixture();
    let inst = f.root.join("full");
    copy_tree(&f.template, &inst);
    let out = sync_cmd(&f, &inst)
        .env("FERRY_FAILPOINT", "client.chunk_write:5:enospc")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("not enough disk space to build 2.0.0")
            && err.contains("No space left on device")
            && err.contains("old version still runs"),
        "{err}"
    );
    assert_eq!(err.trim().lines().count(), 1, "{err}");
    assert_same_tree(&f.v1, &inst.join("current"));
    let v = verify_json(&inst);
    assert_eq!(
        (&v["version"], &v["clean"]),
        (&"1.0.0".into(), &true.into())
    );
    assert_eq!(entries(&inst.join(".ferry/staging")), 0);
    assert_eq!(entries(&inst.join(".ferry/trash")), 0);
    // Space back: the update completes.
    let r = json(&ferry_ok(&sync_args(
        &f.server.url,
        &s(&inst),
        &f.key.public,
    )));
    assert_eq!(r["version"], "2.0.0");
    assert_same_tree(&f.v2, &inst.join("current"));
}

/// A tmpfs mounted for one test, unmounted on drop.
struct Tmpfs(PathBuf);

impl Tmpfs {
    fn mount(dir: &Path, size: &str) -> Result<Tmpfs, String> {
        std::fs::create_dir_all(dir).unwrap();
        let out = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(dir)
            .output()
            .map_err(|e| e.to_string())?;
        if !out.status.success() {
            return Err(String::from_utf8_lossy(&out.stderr).trim().to_string());
        }
        Ok(Tmpfs(dir.to_path_buf()))
    }

    fn resize(&self, size: &str) {
        let st = Command::new("mount")
            .args(["-o", &format!("remount,size={size}")])
            .arg(&self.0)
            .status()
            .unwrap();
        assert!(st.success());
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.0).status();
    }
}

#[test]
fn real_disk_full_on_a_small_tmpfs() {
    let t = tempfile::tempdir().unwrap();
    let mnt = t.path().join("mnt");
    // Version 1 (6.6 MiB) fits; a second full tree beside it does not.
    let fs = match Tmpfs::mount(&mnt, "10m") {
        Ok(m) => m,
        Err(e) => {
            eprintln!(
                "skipping: cannot mount a tmpfs here ({e}); \
                 injected_disk_full_fails_clearly_keeps_the_old_version_and_cleans_staging covers disk full"
            );
            return;
        }
    };
    let server = Server::start(&t.path().join("data"));
    let key = keygen(t.path(), "k");
    let (v1, v2) = (t.path().join("v1"), t.path().join("v2"));
    make_v1(&v1);
    // Version 2 shares nothing with version 1, so staging needs a full tree.
    let mut r = rng(77);
    write(&v2.join("lib/engine.so"), &random_bytes(&mut r, 6 << 20));
    write(&v2.join("README.txt"), b"v2\n");
    ferry_ok(&push_args(&s(&v1), &server.url, "1.0.0", &s(&key.path)));
    let inst = mnt.join("app");
    ferry_ok(&sync_args(&server.url, &s(&inst), &key.public));
    ferry_ok(&push_args(&s(&v2), &server.url, "2.0.0", &s(&key.path)));
    let err = ferry_err(&sync_args(&server.url, &s(&inst), &key.public));
    assert!(
        err.contains("not enough disk space to build 2.0.0") && err.contains("No space left"),
        "{err}"
    );
    assert_same_tree(&v1, &inst.join("current"));
    let v = verify_json(&inst);
    assert_eq!(
        (&v["version"], &v["clean"]),
        (&"1.0.0".into(), &true.into())
    );
    assert_eq!(entries(&inst.join(".ferry/staging")), 0);
    assert_eq!(entries(&inst.join(".ferry/trash")), 0);
    fs.resize("24m");
    let r = json(&ferry_ok(&sync_args(&server.url, &s(&inst), &key.public)));
    assert_eq!(r["version"], "2.0.0");
    assert_same_tree(&v2, &inst.join("current"));
}
