//! Harness for end-to-end tests: the real `ferry` binary, a real server on
//! 127.0.0.1 port 0 over a real RocksDB store in a temporary directory, and
//! seeded generated application trees.

#![allow(dead_code)]

pub mod fake;
pub mod proxy;

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use rand::{Rng, RngCore, SeedableRng};
use rand_chacha::ChaCha8Rng;

pub const TOKEN: &str = "test-push-token-0123456789";

pub fn bin() -> &'static str {
    env!("CARGO_BIN_EXE_ferry")
}

/// Runs `ferry ARGS`.
pub fn ferry(args: &[&str]) -> Output {
    Command::new(bin())
        .args(args)
        .env_remove("FERRY_TOKEN")
        .env_remove("FERRY_PUSH_TOKEN")
        .output()
        .expect("run ferry")
}

/// Runs `ferry ARGS`, asserts success, returns stdout.
pub fn ferry_ok(args: &[&str]) -> String {
    let out = ferry(args);
    assert!(
        out.status.success(),
        "ferry {args:?} failed ({}):\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Runs `ferry ARGS`, asserts failure, returns stderr.
pub fn ferry_err(args: &[&str]) -> String {
    let out = ferry(args);
    assert!(
        !out.status.success(),
        "ferry {args:?} should have failed; stdout:\n{}",
        String::from_utf8_lossy(&out.stdout)
    );
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// Parses the one JSON object a `--json` command prints.
pub fn json(stdout: &str) -> serde_json::Value {
    serde_json::from_str(stdout.trim()).unwrap_or_else(|e| panic!("not JSON ({e}): {stdout}"))
}

/// A running `ferry serve`.
pub struct Server {
    child: Child,
    pub url: String,
    pub data: PathBuf,
    /// Every stderr line after the "listening on" line.
    pub log: std::sync::Arc<std::sync::Mutex<Vec<String>>>,
}

impl Server {
    pub fn start(data: &Path) -> Server {
        Self::start_with(data, &[])
    }

    pub fn start_with(data: &Path, extra: &[&str]) -> Server {
        Self::start_env(data, extra, &[])
    }

    /// Starts a server with extra environment variables (failpoints).
    pub fn start_env(data: &Path, extra: &[&str], env: &[(&str, &str)]) -> Server {
        let d = data.display().to_string();
        let mut args = vec![
            "serve",
            "--data",
            &d,
            "--listen",
            "127.0.0.1:0",
            "--push-token",
            TOKEN,
        ];
        args.extend_from_slice(extra);
        Self::spawn(data, &args, env)
    }

    /// A read-only pull-through mirror of `upstream` over `data`.
    pub fn mirror(data: &Path, upstream: &str, extra: &[&str]) -> Server {
        let d = data.display().to_string();
        let mut args = vec![
            "serve",
            "--data",
            &d,
            "--listen",
            "127.0.0.1:0",
            "--mirror-of",
            upstream,
        ];
        args.extend_from_slice(extra);
        Self::spawn(data, &args, &[])
    }

    /// `ferry ARGS` (a serve command) with extra environment variables;
    /// `data` is only remembered.
    pub fn spawn(data: &Path, args: &[&str], env: &[(&str, &str)]) -> Server {
        let mut cmd = Command::new(bin());
        cmd.args(args)
            .env_remove("FERRY_TOKEN")
            .env_remove("FERRY_PUSH_TOKEN")
            .env("RUST_LOG", "warn")
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        for (k, v) in env {
            cmd.env(k, v);
        }
        let mut child = cmd.spawn().expect("spawn ferry serve");
        let stderr = child.stderr.take().expect("stderr");
        let (tx, rx) = mpsc::channel();
        let log = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let log2 = log.clone();
        std::thread::spawn(move || {
            let mut sent = false;
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                if !sent {
                    if let Some(url) = line.strip_prefix("ferry serve: listening on ") {
                        let _ = tx.send(url.trim().to_string());
                        sent = true;
                        continue;
                    }
                }
                eprintln!("[server] {line}");
                log2.lock().unwrap().push(line);
            }
        });
        let url = rx
            .recv_timeout(Duration::from_secs(30))
            .expect("server did not report its address");
        Server {
            child,
            url,
            data: data.to_path_buf(),
            log,
        }
    }

    /// The port the server listens on.
    pub fn port(&self) -> u16 {
        self.url.rsplit(':').next().unwrap().parse().unwrap()
    }

    /// Kills the server (SIGKILL) in place, e.g. to test offline clients.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// The server's process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Waits (up to `secs`) for the server to exit by itself, e.g. killed
    /// by a failpoint; `None` if it is still running.
    pub fn wait_exit(&mut self, secs: u64) -> Option<std::process::ExitStatus> {
        let end = std::time::Instant::now() + Duration::from_secs(secs);
        while std::time::Instant::now() < end {
            if let Ok(Some(st)) = self.child.try_wait() {
                return Some(st);
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        None
    }

    /// Stops the server (SIGKILL) and waits for it.
    pub fn stop(mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A publisher key pair in `dir`.
pub struct Key {
    pub path: PathBuf,
    pub public: String,
}

pub fn keygen(dir: &Path, name: &str) -> Key {
    let path = dir.join(name);
    let out = ferry_ok(&["keygen", "--secret-key", path.to_str().unwrap()]);
    Key {
        path,
        public: out.trim().lines().last().unwrap().to_string(),
    }
}

pub fn rng(seed: u64) -> ChaCha8Rng {
    ChaCha8Rng::seed_from_u64(seed)
}

/// Random bytes (incompressible, like a native library).
pub fn random_bytes(r: &mut ChaCha8Rng, len: usize) -> Vec<u8> {
    let mut v = vec![0u8; len];
    r.fill_bytes(&mut v);
    v
}

/// Text-like bytes (compressible, like source or JS).
pub fn text_bytes(r: &mut ChaCha8Rng, len: usize) -> Vec<u8> {
    const WORDS: &[&str] = &[
        "let", "const", "function", "return", "value", "(", ")", "{", "}", ";\n", "=", "index",
    ];
    let mut out = Vec::with_capacity(len + 16);
    while out.len() < len {
        out.extend_from_slice(WORDS[r.gen_range(0..WORDS.len())].as_bytes());
        out.push(b' ');
    }
    out.truncate(len);
    out
}

pub fn write(path: &Path, data: &[u8]) {
    if let Some(p) = path.parent() {
        std::fs::create_dir_all(p).unwrap();
    }
    std::fs::write(path, data).unwrap();
}

#[cfg(unix)]
pub fn set_exec(path: &Path) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o755)).unwrap();
}

/// Version 1 of a sample app: a large "library", an executable, text files,
/// a nested dir, an empty dir and a symlink.
pub fn make_v1(dir: &Path) {
    let mut r = rng(1);
    write(&dir.join("lib/engine.so"), &random_bytes(&mut r, 6 << 20));
    write(&dir.join("bin/app"), &random_bytes(&mut r, 300_000));
    set_exec(&dir.join("bin/app"));
    for i in 0..12 {
        write(
            &dir.join(format!("share/doc/page{i}.txt")),
            &text_bytes(&mut r, 2_000 + i * 997),
        );
    }
    write(&dir.join("README.txt"), b"Sample app, version 1\n");
    write(&dir.join("empty.cfg"), b"");
    std::fs::create_dir_all(dir.join("var/empty")).unwrap();
    std::os::unix::fs::symlink("engine.so", dir.join("lib/engine.so.1")).unwrap();
}

/// Version 2: 64 KiB in the middle of the library rewritten, README
/// changed, one file added.
pub fn make_v2(v1: &Path, dir: &Path) {
    copy_tree(v1, dir);
    let lib = dir.join("lib/engine.so");
    let mut data = std::fs::read(&lib).unwrap();
    let mid = data.len() / 2;
    let mut r = rng(2);
    let patch = random_bytes(&mut r, 64 * 1024);
    data[mid..mid + patch.len()].copy_from_slice(&patch);
    std::fs::write(&lib, &data).unwrap();
    write(&dir.join("README.txt"), b"Sample app, version 2\n");
    write(
        &dir.join("share/new-feature.txt"),
        &text_bytes(&mut r, 5_000),
    );
}

/// Version 1 of the many-files app: many small files so an update fetches
/// enough chunks to kill it at many places in between.
pub fn make_many_v1(dir: &Path) {
    let mut r = rng(51);
    for i in 0..24 {
        write(
            &dir.join(format!("lib/mod{i:02}.bin")),
            &random_bytes(&mut r, 40 * 1024),
        );
    }
    for i in 0..10 {
        write(
            &dir.join(format!("share/page{i}.txt")),
            &text_bytes(&mut r, 3_000 + i * 501),
        );
    }
    write(&dir.join("bin/app"), &random_bytes(&mut r, 20_000));
    set_exec(&dir.join("bin/app"));
    std::fs::create_dir_all(dir.join("var/empty")).unwrap();
    std::os::unix::fs::symlink("mod00.bin", dir.join("lib/current.bin")).unwrap();
}

/// Version 2: half the modules rewritten, two pages edited, one added, one
/// removed.
pub fn make_many_v2(v1: &Path, dir: &Path) {
    copy_tree(v1, dir);
    let mut r = rng(52);
    for i in 0..12 {
        write(
            &dir.join(format!("lib/mod{i:02}.bin")),
            &random_bytes(&mut r, 40 * 1024),
        );
    }
    write(&dir.join("share/page1.txt"), &text_bytes(&mut r, 4_000));
    write(&dir.join("share/page2.txt"), &text_bytes(&mut r, 4_500));
    write(&dir.join("share/new.txt"), &text_bytes(&mut r, 6_000));
    std::fs::remove_file(dir.join("share/page9.txt")).unwrap();
}

/// Copies a tree preserving symlinks and modes.
pub fn copy_tree(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    let st = Command::new("cp")
        .arg("-a")
        .arg(format!("{}/.", from.display()))
        .arg(to)
        .status()
        .unwrap();
    assert!(st.success());
}

/// Asserts two trees are identical: same paths, types, contents, symlink
/// targets and exec bits.
pub fn assert_same_tree(a: &Path, b: &Path) {
    let la = listing(a);
    let lb = listing(b);
    assert_eq!(la, lb, "trees {} and {} differ", a.display(), b.display());
}

/// Whether two trees are identical (see [`assert_same_tree`]).
pub fn same_tree(a: &Path, b: &Path) -> bool {
    a.is_dir() && b.is_dir() && listing(a) == listing(b)
}

/// Every path under `root` with its type and content hash (or link target).
pub fn listing(root: &Path) -> Vec<(String, String)> {
    use std::os::unix::fs::PermissionsExt;
    let mut out = Vec::new();
    let mut stack = vec![PathBuf::new()];
    while let Some(rel) = stack.pop() {
        let dir = root.join(&rel);
        let mut items: Vec<_> = std::fs::read_dir(&dir)
            .unwrap()
            .map(|e| e.unwrap())
            .collect();
        items.sort_by_key(|e| e.file_name());
        for e in items {
            let r = rel.join(e.file_name());
            let m = std::fs::symlink_metadata(e.path()).unwrap();
            let desc = if m.file_type().is_symlink() {
                format!("link {}", std::fs::read_link(e.path()).unwrap().display())
            } else if m.is_dir() {
                stack.push(r.clone());
                "dir".to_string()
            } else {
                let data = std::fs::read(e.path()).unwrap();
                format!(
                    "file {} {} exec={}",
                    data.len(),
                    blake3::hash(&data).to_hex(),
                    m.permissions().mode() & 0o111 != 0
                )
            };
            out.push((r.display().to_string(), desc));
        }
    }
    out.sort();
    out
}

/// Arguments of `ferry sync` for the test app.
pub fn sync_args<'a>(url: &'a str, install: &'a str, trust: &'a str) -> Vec<&'a str> {
    vec![
        "sync",
        "--server",
        url,
        "--app",
        "demo",
        "--channel",
        "stable",
        "--install",
        install,
        "--trust",
        trust,
        "--json",
        "--quiet",
    ]
}

/// Arguments of `ferry push` for the test app.
pub fn push_args<'a>(dir: &'a str, url: &'a str, version: &'a str, key: &'a str) -> Vec<&'a str> {
    vec![
        "push",
        dir,
        "--server",
        url,
        "--app",
        "demo",
        "--version",
        version,
        "--key",
        key,
        "--token",
        TOKEN,
        "--channel",
        "stable",
        "--json",
        "--quiet",
    ]
}

/// An HTTP answer read by [`http_get`].
#[derive(Debug)]
pub struct HttpAnswer {
    pub status: u16,
    /// Lower-case names.
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl HttpAnswer {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

/// A plain HTTP/1.1 GET over a new connection (`url` is http://HOST:PORT).
/// Test helper: no TLS, no chunked bodies.
pub fn http_get(url: &str, path: &str, headers: &[(&str, &str)]) -> HttpAnswer {
    use std::io::{Read, Write};
    let host = url.strip_prefix("http://").expect("http:// URL");
    let mut s = std::net::TcpStream::connect(host).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    let mut req = format!("GET {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n");
    for (k, v) in headers {
        req.push_str(&format!("{k}: {v}\r\n"));
    }
    req.push_str("\r\n");
    s.write_all(req.as_bytes()).unwrap();
    let mut raw = Vec::new();
    s.read_to_end(&mut raw).unwrap();
    let split = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .expect("end of headers");
    let head = String::from_utf8_lossy(&raw[..split]).into_owned();
    let mut lines = head.split("\r\n");
    let status = lines
        .next()
        .and_then(|l| l.split(' ').nth(1))
        .and_then(|c| c.parse().ok())
        .expect("status line");
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_string()))
        .collect();
    assert!(
        !headers
            .iter()
            .any(|(k, v)| k == "transfer-encoding" && v.contains("chunked")),
        "http_get does not decode chunked bodies"
    );
    HttpAnswer {
        status,
        headers,
        body: raw[split + 4..].to_vec(),
    }
}
