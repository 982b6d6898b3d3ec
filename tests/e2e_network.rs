//! Network faults between `ferry sync` and a real server, injected by a TCP
//! proxy (tests/support/proxy.rs): connections cut mid-stream and during
//! the record request, a server that stalls, a slow server, and one that
//! never answers again. The client retries with backoff, resumes from the
//! last complete chunk, and gives a clear error when it gives up.

mod support;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use support::proxy::{Fault, Proxy};
use support::*;

fn s(p: &Path) -> String {
    p.display().to_string()
}

struct Fixture {
    _t: tempfile::TempDir,
    root: PathBuf,
    _server: Server,
    proxy: Proxy,
    key: Key,
    v1: PathBuf,
    v2: PathBuf,
    template: PathBuf,
    /// A clean update through the proxy: its report and the proxy's
    /// server-to-client byte count.
    clean: serde_json::Value,
    clean_wire: u64,
}

fn fixture() -> Fixture {
    fixture_with(&[])
}

fn fixture_with(server_args: &[&str]) -> Fixture {
    let t = tempfile::tempdir().unwrap();
    let root = t.path().to_path_buf();
    let server = Server::start_with(&root.join("data"), server_args);
    let key = keygen(&root, "k");
    let (v1, v2) = (root.join("v1"), root.join("v2"));
    make_many_v1(&v1);
    make_many_v2(&v1, &v2);
    let push = |dir: &Path, v: &str| {
        let (d, k) = (s(dir), s(&key.path));
        let mut a = push_args(&d, &server.url, v, &k);
        a.extend(["--avg-chunk", "4096"]);
        ferry_ok(&a);
    };
    push(&v1, "1.0.0");
    let template = root.join("template");
    ferry_ok(&sync_args(&server.url, &s(&template), &key.public));
    push(&v2, "2.0.0");
    let proxy = Proxy::start(&server.url);
    let probe = root.join("probe");
    copy_tree(&template, &probe);
    let clean = json(&ferry_ok(&sync_args(&proxy.url, &s(&probe), &key.public)));
    assert_same_tree(&v2, &probe.join("current"));
    let clean_wire = proxy.down();
    proxy.reset();
    Fixture {
        _t: t,
        root,
        _server: server,
        proxy,
        key,
        v1,
        v2,
        template,
        clean,
        clean_wire,
    }
}

impl Fixture {
    fn install(&self, name: &str) -> PathBuf {
        let inst = self.root.join(name);
        copy_tree(&self.template, &inst);
        inst
    }

    fn sync(&self, inst: &Path, extra: &[&str]) -> std::process::Output {
        Command::new(bin())
            .args(sync_args(&self.proxy.url, &s(inst), &self.key.public))
            .args(extra)
            .env("RUST_LOG", "warn")
            .output()
            .unwrap()
    }

    fn clean(&self, field: &str) -> u64 {
        self.clean[field].as_u64().unwrap()
    }
}

fn ok_report(out: &std::process::Output) -> serde_json::Value {
    assert!(
        out.status.success(),
        "sync failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    json(&String::from_utf8_lossy(&out.stdout))
}

/// Two cuts inside the chunk stream (the bulk of the bytes): the client
/// resumes after the last complete frame, fetches no chunk twice, and pays
/// at most the two frames that were cut. Returns the extra bytes.
fn cut_twice(f: &Fixture) -> i64 {
    let inst = f.install("cut");
    f.proxy.fault_at(f.clean_wire * 45 / 100, Fault::Cut);
    f.proxy.fault_at(f.clean_wire * 75 / 100, Fault::Cut);
    let out = f.sync(&inst, &[]);
    let r = ok_report(&out);
    let log = String::from_utf8_lossy(&out.stderr);
    assert_eq!(
        log.matches("chunk stream failed").count(),
        2,
        "two cuts, two resumes: {log}"
    );
    assert!(log.contains("resuming after"), "{log}");
    assert_same_tree(&f.v2, &inst.join("current"));
    assert_eq!(r["chunks_fetched"], f.clean["chunks_fetched"], "{r}");
    assert_eq!(r["bytes_fetched_raw"], f.clean["bytes_fetched_raw"], "{r}");
    r["bytes_downloaded"].as_u64().unwrap() as i64 - f.clean("bytes_downloaded") as i64
}

#[test]
fn connections_cut_mid_stream_resume_from_the_last_complete_chunk() {
    // Single-chunk frames: a cut costs at most the chunk in flight (16 KiB
    // max at these settings, plus its frame header).
    let f = fixture_with(&["--group-level", "0"]);
    let extra = cut_twice(&f);
    assert!(
        extra <= 2 * (16 * 1024 + 64),
        "{extra} bytes more than a clean update"
    );
}

#[test]
fn connections_cut_mid_stream_resume_from_the_last_complete_group() {
    // Group frames (the default): a cut costs at most the group in flight,
    // which covers at most one 1 MiB cell of one file and is never larger
    // than its chunks sent singly.
    let f = fixture();
    assert!(
        f.clean["chunks_grouped"].as_u64().unwrap() > 0,
        "{}",
        f.clean
    );
    let extra = cut_twice(&f);
    assert!(
        extra <= 2 * ((1 << 20) + 1024),
        "{extra} bytes more than a clean update"
    );
}

#[test]
fn a_cut_during_the_record_request_is_retried() {
    let f = fixture();
    let inst = f.install("cut-record");
    f.proxy.fault_at(10, Fault::Cut);
    let out = f.sync(&inst, &[]);
    let r = ok_report(&out);
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("retrying in"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(r["version"], "2.0.0");
    assert_same_tree(&f.v2, &inst.join("current"));
}

#[test]
fn a_stalled_server_times_out_and_the_client_resumes() {
    let f = fixture();
    let inst = f.install("stall");
    f.proxy.fault_at(f.clean_wire / 2, Fault::Stall);
    let t0 = Instant::now();
    let out = f.sync(&inst, &["--timeout", "1"]);
    let r = ok_report(&out);
    let log = String::from_utf8_lossy(&out.stderr);
    assert!(t0.elapsed() >= Duration::from_secs(1));
    assert!(
        log.contains("no answer from the server within 1 s"),
        "{log}"
    );
    assert_eq!(r["chunks_fetched"], f.clean["chunks_fetched"], "{r}");
    assert_same_tree(&f.v2, &inst.join("current"));
}

#[test]
fn a_slow_server_is_slow_but_not_an_error() {
    let f = fixture();
    let inst = f.install("slow");
    // About 2 s for the whole update; every piece arrives well within the
    // 1 s read timeout.
    f.proxy.slow((f.clean_wire / 2).max(64 * 1024));
    let t0 = Instant::now();
    let r = ok_report(&f.sync(&inst, &["--timeout", "1"]));
    assert!(
        t0.elapsed() >= Duration::from_millis(1500),
        "{:?}",
        t0.elapsed()
    );
    assert_eq!(r["chunks_fetched"], f.clean["chunks_fetched"], "{r}");
    assert_same_tree(&f.v2, &inst.join("current"));
}

#[test]
fn a_server_that_stops_answering_gets_a_clear_error_and_the_old_version_stays() {
    let f = fixture();
    let inst = f.install("dead");
    f.proxy.stall_all_from(f.clean_wire / 2);
    let t0 = Instant::now();
    let out = f.sync(&inst, &["--timeout", "1"]);
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    let last = err.trim().lines().last().unwrap_or("");
    assert!(
        last.starts_with("ferry: error: chunk fetch: gave up after 4 attempts")
            && last.contains("no answer from the server within 1 s"),
        "{err}"
    );
    // Four attempts of 1 s with 0.5 + 1 + 2 s of backoff between them.
    assert!(t0.elapsed() >= Duration::from_secs(7), "{:?}", t0.elapsed());
    assert_same_tree(&f.v1, &inst.join("current"));
    // The partial tree is kept: the next run resumes it.
    f.proxy.reset();
    let r = ok_report(&f.sync(&inst, &[]));
    assert_eq!(r["resumed"], true, "{r}");
    assert!(
        r["chunks_fetched"].as_u64().unwrap() < f.clean("chunks_fetched"),
        "{r}"
    );
    assert_same_tree(&f.v2, &inst.join("current"));
}

#[test]
fn an_unreachable_server_is_retried_then_named_in_the_error() {
    let t = tempfile::tempdir().unwrap();
    let key = keygen(t.path(), "k");
    // A port nothing listens on.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let url = format!("http://127.0.0.1:{port}");
    let inst = s(&t.path().join("i"));
    let err = ferry_err(&sync_args(&url, &inst, &key.public));
    assert!(
        err.contains("channel record: gave up after 4 attempts: cannot reach")
            && err.contains(&url),
        "{err}"
    );
}
