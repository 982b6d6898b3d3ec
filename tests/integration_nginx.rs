//! nginx as a caching reverse proxy in front of two Ferry servers (an
//! origin and a mirror of it), with the configuration of
//! docs/nginx/ferry-cache.conf as shipped: a second client's chunks come
//! from nginx's cache, and no Ferry server reads a chunk for it.
//!
//! Needs Debian's nginx (`apt-get install nginx-light`); where it is
//! absent the test says so and passes. `make test-integration` runs it.

mod support;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use support::*;

const CONF: &str = include_str!("../docs/nginx/ferry-cache.conf");

fn s(p: &Path) -> String {
    p.display().to_string()
}

fn nginx_binary() -> Option<PathBuf> {
    ["/usr/sbin/nginx", "/usr/local/sbin/nginx", "/usr/bin/nginx"]
        .iter()
        .map(PathBuf::from)
        .find(|p| p.exists())
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

struct Nginx(Child);

impl Drop for Nginx {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Starts nginx on `port` with the shipped config pointed at the two
/// servers and at a cache directory under `dir`.
fn start_nginx(bin: &Path, dir: &Path, port: u16, origin: u16, mirror: u16) -> Nginx {
    // Workers may run as another user (nobody when started as root).
    for d in ["cache", "tmp", "logs"] {
        std::fs::create_dir_all(dir.join(d)).unwrap();
    }
    let open = |p: &Path| {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(p, std::fs::Permissions::from_mode(0o777)).unwrap();
    };
    open(dir);
    for d in ["cache", "tmp", "logs"] {
        open(&dir.join(d));
    }
    let conf = CONF
        .replace("/var/cache/nginx/ferry", &s(&dir.join("cache")))
        .replace("127.0.0.1:8471", &format!("127.0.0.1:{origin}"))
        .replace("127.0.0.1:8472", &format!("127.0.0.1:{mirror}"))
        .replace("listen 8470;", &format!("listen 127.0.0.1:{port};"));
    assert_ne!(conf, CONF);
    let tmp = s(&dir.join("tmp"));
    let main = format!(
        "worker_processes 1;\npid {pid};\nevents {{ worker_connections 256; }}\n\
         http {{\n  log_format cache '$request_method $uri $status $upstream_cache_status';\n  \
         access_log {log} cache;\n  client_body_temp_path {tmp}/body;\n  \
         proxy_temp_path {tmp}/proxy;\n  fastcgi_temp_path {tmp}/fastcgi;\n  \
         uwsgi_temp_path {tmp}/uwsgi;\n  scgi_temp_path {tmp}/scgi;\n\
         {conf}\n}}\n",
        pid = s(&dir.join("nginx.pid")),
        log = s(&dir.join("logs/access.log")),
    );
    let path = dir.join("nginx.conf");
    std::fs::write(&path, main).unwrap();
    let child = Command::new(bin)
        .args(["-e", &s(&dir.join("logs/error.log"))])
        .args(["-p", &s(dir), "-c", &s(&path), "-g", "daemon off;"])
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("start nginx");
    let start = Instant::now();
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "nginx did not start; error log:\n{}",
            std::fs::read_to_string(dir.join("logs/error.log")).unwrap_or_default()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    Nginx(child)
}

/// A counter from a server's /metrics.
fn metric(url: &str, name: &str) -> f64 {
    let text = http_get(url, "/metrics", &[]).text();
    text.lines()
        .find(|l| l.starts_with(name) && l[name.len()..].starts_with(' '))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
        .unwrap_or(0.0)
}

/// (chunk GETs, of which HITs) in the access log lines after `from`.
fn chunk_gets(log: &Path, from: usize) -> (usize, usize, usize) {
    let text = std::fs::read_to_string(log).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    let gets: Vec<&&str> = lines[from.min(lines.len())..]
        .iter()
        .filter(|l| l.starts_with("GET /v1/chunks/"))
        .collect();
    let hits = gets.iter().filter(|l| l.ends_with(" HIT")).count();
    (gets.len(), hits, lines.len())
}

#[test]
fn second_client_is_served_from_the_nginx_cache() {
    let Some(bin) = nginx_binary() else {
        eprintln!(
            "SKIPPED second_client_is_served_from_the_nginx_cache: nginx is not installed \
             (apt-get install nginx-light)"
        );
        return;
    };
    let t = tempfile::tempdir().unwrap();
    let origin = Server::start(&t.path().join("origin"));
    let mirror = Server::mirror(&t.path().join("mirror"), &origin.url, &[]);
    let port = free_port();
    let ng = t.path().join("nginx");
    let _nginx = start_nginx(&bin, &ng, port, origin.port(), mirror.port());
    let proxy = format!("http://127.0.0.1:{port}");

    // Publish through the proxy (writes go to the origin).
    let key = keygen(t.path(), "k");
    make_v1(&t.path().join("v1"));
    ferry_ok(&push_args(
        &s(&t.path().join("v1")),
        &proxy,
        "1.0.0",
        &s(&key.path),
    ));

    let log = ng.join("logs/access.log");
    let sync_get = |install: &str| {
        let mut a = sync_args(&proxy, install, &key.public);
        a.extend(["--fetch", "get"]);
        json(&ferry_ok(&a))
    };
    let (_, _, mark) = chunk_gets(&log, 0);
    let first = sync_get(&s(&t.path().join("client-1")));
    assert_eq!(first["version"], "1.0.0");
    let (gets1, hits1, mark) = {
        // nginx writes the log line after the response: give it a moment.
        std::thread::sleep(Duration::from_millis(200));
        chunk_gets(&log, mark)
    };
    assert!(gets1 > 10, "client 1 fetched chunks by GET: {gets1}");
    assert_eq!(hits1, 0, "nothing was cached yet");

    let served_before = metric(&origin.url, "ferry_chunks_served_total")
        + metric(&mirror.url, "ferry_chunks_served_total");
    let second = sync_get(&s(&t.path().join("client-2")));
    assert_eq!(second["version"], "1.0.0");
    assert_same_tree(
        &t.path().join("v1"),
        &t.path().join("client-2").join("current"),
    );
    std::thread::sleep(Duration::from_millis(200));
    let (gets2, hits2, _) = chunk_gets(&log, mark);
    assert_eq!(gets2, gets1, "client 2 asked for the same chunks");
    assert_eq!(hits2, gets2, "every chunk of client 2 came from the cache");
    let served_after = metric(&origin.url, "ferry_chunks_served_total")
        + metric(&mirror.url, "ferry_chunks_served_total");
    assert_eq!(
        served_after, served_before,
        "no Ferry server read a chunk for client 2"
    );
    // Both servers took part in client 1's reads.
    assert!(
        metric(
            &mirror.url,
            "ferry_mirror_fills_total{kind=\"chunk\",result=\"filled\"}"
        ) > 0.0
    );
    assert!(metric(&origin.url, "ferry_chunks_served_total") > 0.0);
}

#[test]
fn the_documented_config_is_the_tested_one() {
    let doc = include_str!("../docs/operations.md");
    assert!(
        doc.contains(&format!("```nginx\n{CONF}```")),
        "docs/operations.md must show docs/nginx/ferry-cache.conf verbatim"
    );
}
