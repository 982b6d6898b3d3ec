//! End to end: the agent keeps an install current and stops cleanly on
//! SIGTERM; the server sheds load with 503 + Retry-After; `ferry run`
//! starts the entry point and reverts a new version that keeps failing.

mod support;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use support::*;

struct World {
    _tmp: tempfile::TempDir,
    root: PathBuf,
    server: Server,
    key: Key,
}

fn world() -> World {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().to_path_buf();
    let server = Server::start(&root.join("data"));
    let key = keygen(&root, "publisher.key");
    World {
        _tmp: tmp,
        root,
        server,
        key,
    }
}

/// An app whose program prints its version and exits with `code`.
fn make_app(dir: &Path, version: &str, code: i32) {
    let script = format!("#!/bin/sh\necho \"app {version} $*\"\nexit {code}\n");
    write(&dir.join("bin/app"), script.as_bytes());
    set_exec(&dir.join("bin/app"));
    write(&dir.join("VERSION"), version.as_bytes());
    let mut r = rng(3);
    write(&dir.join("lib/data.bin"), &random_bytes(&mut r, 100_000));
}

impl World {
    fn p(&self, rel: &str) -> String {
        self.root.join(rel).display().to_string()
    }

    fn push(&self, version: &str, code: i32) {
        let dir = self.root.join(format!("src-{version}"));
        make_app(&dir, version, code);
        let d = dir.display().to_string();
        let k = self.key.path.display().to_string();
        let mut a = push_args(&d, &self.server.url, version, &k);
        a.extend(["--entry", "bin/app"]);
        ferry_ok(&a);
    }

    fn running(&self, install: &str) -> String {
        std::fs::read_to_string(self.root.join(install).join("current/VERSION")).unwrap_or_default()
    }
}

fn wait_for(what: &str, mut ok: impl FnMut() -> bool) {
    let t = Instant::now();
    while !ok() {
        assert!(t.elapsed() < Duration::from_secs(60), "timed out: {what}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn agent_follows_the_channel_and_stops_on_sigterm() {
    let w = world();
    w.push("1.0.0", 0);
    let config = w.root.join("agent.toml");
    std::fs::write(
        &config,
        format!(
            "server = \"{}\"\napp = \"demo\"\nchannel = \"stable\"\ninstall = \"inst\"\n\
             trust = [\"{}\"]\ninterval = \"1s\"\nstartup-splay = \"0\"\n",
            w.server.url, w.key.public
        ),
    )
    .unwrap();
    let mut agent = Command::new(bin())
        .args(["agent", "--config", config.to_str().unwrap(), "--json"])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    wait_for("first install", || w.running("inst") == "1.0.0");
    w.push("2.0.0", 0);
    wait_for("update", || w.running("inst") == "2.0.0");
    // SIGTERM: a clean exit, quickly.
    let t = Instant::now();
    let st = Command::new("kill")
        .args(["-TERM", &agent.id().to_string()])
        .status()
        .unwrap();
    assert!(st.success());
    let status = agent.wait().unwrap();
    assert!(status.success(), "{status}");
    assert!(t.elapsed() < Duration::from_secs(30));
    let mut out = String::new();
    use std::io::Read;
    agent
        .stdout
        .take()
        .unwrap()
        .read_to_string(&mut out)
        .unwrap();
    let events: Vec<serde_json::Value> = out.lines().map(json).collect();
    assert!(
        events
            .iter()
            .any(|e| e["event"] == "updated" && e["version"] == "2.0.0"),
        "{out}"
    );
    assert!(events.iter().all(|e| e["event"] != "error"), "{out}");
    // The agent reported each check; the operator sees the client on 2.0.0.
    let st = json(&ferry_ok(&[
        "status",
        "--server",
        &w.server.url,
        "--app",
        "demo",
        "--trust",
        &w.key.public,
        "--json",
    ]));
    let ch = &st["channels"][0];
    assert_eq!(ch["channel"], "stable");
    assert_eq!(ch["record"]["version"], "2.0.0");
    assert_eq!(ch["percent_now"], 100.0);
    let v2 = ch["versions"]
        .as_array()
        .unwrap()
        .iter()
        .find(|v| v["version"] == "2.0.0")
        .unwrap_or_else(|| panic!("{st}"));
    assert_eq!(v2["ok"], 1, "{st}");
}

#[test]
fn hooks_run_around_the_switch_and_a_failing_pre_switch_keeps_the_old_version() {
    let w = world();
    w.push("1.0.0", 0);
    let inst = w.p("inst");
    ferry_ok(&sync_args(&w.server.url, &inst, &w.key.public));
    w.push("2.0.0", 0);
    let with_hooks = |hooks: &[String]| {
        let mut a: Vec<String> = sync_args(&w.server.url, &inst, &w.key.public)
            .iter()
            .map(|s| s.to_string())
            .collect();
        for h in hooks {
            a.extend(["--hook".to_string(), h.clone()]);
        }
        a
    };
    let a = with_hooks(&["pre-switch=echo refusing >&2; exit 1".to_string()]);
    let err = ferry_err(&a.iter().map(String::as_str).collect::<Vec<_>>());
    assert!(err.contains("pre-switch hook"), "{err}");
    assert_eq!(w.running("inst"), "1.0.0");
    let log = w.root.join("hooks.log");
    let l = log.display();
    let a = with_hooks(&[
        format!(
            "post-install=echo post-install $FERRY_VERSION $(cat \"$FERRY_TREE/VERSION\") >> {l}"
        ),
        format!("pre-switch=echo pre-switch $FERRY_PREVIOUS_VERSION >> {l}"),
        format!("post-switch=echo post-switch $(cat current/VERSION) >> {l}"),
    ]);
    let s = json(&ferry_ok(&a.iter().map(String::as_str).collect::<Vec<_>>()));
    assert_eq!(s["version"], "2.0.0");
    assert_eq!(
        std::fs::read_to_string(&log).unwrap(),
        "post-install 2.0.0 2.0.0\npre-switch 1.0.0\npost-switch 2.0.0\n"
    );
}

#[test]
fn busy_server_answers_503_with_retry_after() {
    let tmp = tempfile::tempdir().unwrap();
    let server = Server::start_with(
        &tmp.path().join("data"),
        &["--max-requests", "1", "--retry-after", "7"],
    );
    let addr = server.url.trim_start_matches("http://").to_string();
    // Hold the one request slot with a body that never completes, then ask
    // for something else. The holder itself may lose the race for the slot
    // to a probe (and get the 503): then it is replaced.
    use std::io::{Read, Write};
    let hold = || {
        let mut h = std::net::TcpStream::connect(&addr).unwrap();
        h.write_all(
            b"POST /v1/chunks/missing HTTP/1.1\r\nHost: x\r\nContent-Type: application/cbor\r\n\
              Authorization: Bearer test-push-token-0123456789\r\nContent-Length: 100\r\n\r\n",
        )
        .unwrap();
        h.set_read_timeout(Some(Duration::from_millis(20))).unwrap();
        h
    };
    let mut hog = hold();
    let mut seen = String::new();
    let t = Instant::now();
    while t.elapsed() < Duration::from_secs(20) {
        let mut c = std::net::TcpStream::connect(&addr).unwrap();
        c.write_all(
            b"GET /v1/apps/demo/channels/stable HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
        )
        .unwrap();
        seen.clear();
        c.read_to_string(&mut seen).unwrap();
        if seen.starts_with("HTTP/1.1 503") {
            break;
        }
        let mut b = [0u8; 64];
        if matches!(hog.read(&mut b), Ok(n) if n > 0) {
            hog = hold();
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(seen.starts_with("HTTP/1.1 503"), "no 503: {seen}");
    assert!(
        seen.to_ascii_lowercase().contains("retry-after: 7"),
        "{seen}"
    );
    // Health checks are never shed.
    let mut c = std::net::TcpStream::connect(&addr).unwrap();
    c.write_all(b"GET /v1/health HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        .unwrap();
    let mut h = String::new();
    c.read_to_string(&mut h).unwrap();
    assert!(h.starts_with("HTTP/1.1 200"), "{h}");
    drop(hog);
}

#[test]
fn run_starts_the_entry_point_and_reverts_a_crashing_update() {
    let w = world();
    w.push("1.0.0", 0);
    let inst = w.p("inst");
    ferry_ok(&sync_args(&w.server.url, &inst, &w.key.public));
    let run = |extra: &[&str]| {
        let mut a = vec!["run", "--install", &inst, "--max-failures", "2"];
        a.extend(extra);
        ferry(&a)
    };
    let out = run(&["--", "hello", "world"]);
    assert!(out.status.success());
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        "app 1.0.0 hello world\n"
    );

    // 2.0.0 exits 3 at every start: twice on probation, then Ferry goes
    // back to 1.0.0 by itself.
    w.push("2.0.0", 3);
    ferry_ok(&sync_args(&w.server.url, &inst, &w.key.public));
    assert_eq!(w.running("inst"), "2.0.0");
    let first = run(&[]);
    assert_eq!(first.status.code(), Some(3));
    assert_eq!(w.running("inst"), "2.0.0");
    let second = run(&[]);
    assert_eq!(second.status.code(), Some(3));
    let err = String::from_utf8_lossy(&second.stderr);
    assert!(err.contains("switched back to 1.0.0"), "{err}");
    assert_eq!(w.running("inst"), "1.0.0");
    // The bad version is not installed again by the same record...
    let s = json(&ferry_ok(&sync_args(&w.server.url, &inst, &w.key.public)));
    assert_eq!(s["updated"], false);
    assert!(s["decision"].as_str().unwrap().contains("blocked"), "{s}");
    // ...but a fixed release goes through, and once it exits cleanly it is
    // healthy.
    w.push("2.0.1", 0);
    let s = json(&ferry_ok(&sync_args(&w.server.url, &inst, &w.key.public)));
    assert_eq!(s["version"], "2.0.1");
    let ok = run(&[]);
    assert!(ok.status.success());
    let marked = ferry_ok(&["mark-healthy", "--install", &inst]);
    assert!(marked.contains("nothing on probation"), "{marked}");

    // A version without an entry point cannot be run: a clear message.
    let dir = w.root.join("src-3.0.0");
    make_app(&dir, "3.0.0", 0);
    let d = dir.display().to_string();
    let k = w.key.path.display().to_string();
    ferry_ok(&push_args(&d, &w.server.url, "3.0.0", &k));
    ferry_ok(&sync_args(&w.server.url, &inst, &w.key.public));
    let err = ferry_err(&["run", "--install", &inst]);
    assert!(err.contains("no entry point"), "{err}");
    let marked = ferry_ok(&["mark-healthy", "--install", &inst]);
    assert!(marked.contains("3.0.0 marked healthy"), "{marked}");
}
