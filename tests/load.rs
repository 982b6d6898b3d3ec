//! Load: N sync clients update at once from one `ferry serve` (the broadcast
//! deployment), on loopback. Clients run in this process through the
//! `ferry-client` library, each with its own connection pool and install
//! directory; the server is the real binary in its own process, so its peak
//! RSS is its own. A client answered 503 waits the server's Retry-After (with
//! jitter) and tries again, as the agent does; anything else is an error.
//!
//! `load_50_clients_update_at_once` runs in the normal suite;
//! `load_1000_clients_update_at_once` is `make load` (ignored otherwise).
//! Both print a summary; the 1000-client figures go in docs/benchmarks.md.

mod support;

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use ferry_client::{ClientError, Http, SyncOptions, Timeouts};
use ferry_protocol::PublicKey;
use rand::Rng;
use support::*;

fn s(p: &Path) -> String {
    p.display().to_string()
}

/// A small app: 40 files of 8 KiB; version 2 rewrites 12 of them.
fn make_app(dir: &Path, version: u64) {
    let mut r = rng(900);
    for i in 0..40 {
        write(
            &dir.join(format!("lib/part{i:02}.bin")),
            &random_bytes(&mut r, 8 * 1024),
        );
    }
    write(
        &dir.join("README.txt"),
        format!("version {version}\n").as_bytes(),
    );
    if version > 1 {
        let mut r = rng(900 + version);
        for i in 0..12 {
            write(
                &dir.join(format!("lib/part{:02}.bin", i * 3)),
                &random_bytes(&mut r, 8 * 1024),
            );
        }
    }
}

/// Peak resident set (VmHWM) of a process, in KiB.
fn peak_rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .unwrap_or(0)
}

/// CPU time (user + system) a process has used, in seconds.
fn cpu_seconds(pid: u32) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // Fields after the command name (which may hold spaces) in parentheses.
    let rest = stat.rsplit_once(')').map_or("", |(_, r)| r);
    let f: Vec<u64> = rest
        .split_whitespace()
        .map(|x| x.parse().unwrap_or(0))
        .collect();
    let ticks = f.get(11).copied().unwrap_or(0) + f.get(12).copied().unwrap_or(0);
    ticks as f64 / 100.0
}

struct Outcome {
    latency: Duration,
    bytes: u64,
    shed: u64,
    error: Option<String>,
}

/// One client: sync until done, honouring 503 + Retry-After.
async fn one_client(url: String, install: PathBuf, key: PublicKey) -> Outcome {
    let start = Instant::now();
    let mut shed = 0;
    let mut bytes = 0;
    let mut o = SyncOptions::new("demo", "stable", install, vec![key]);
    o.quiet = true;
    for attempt in 0..60 {
        let http = match Http::new(&url, Timeouts::default()) {
            Ok(h) => h,
            Err(e) => {
                return Outcome {
                    latency: start.elapsed(),
                    bytes,
                    shed,
                    error: Some(e.to_string()),
                }
            }
        };
        // Boxed: a sync future is large in a debug build, and a thousand
        // of them interleave on two worker threads.
        let r = Box::pin(ferry_client::sync(&http, &o)).await;
        bytes += http.bytes_down();
        match r {
            Ok(r) if r.version.as_deref() == Some("2.0.0") => {
                return Outcome {
                    latency: start.elapsed(),
                    bytes,
                    shed,
                    error: None,
                }
            }
            Ok(r) => {
                return Outcome {
                    latency: start.elapsed(),
                    bytes,
                    shed,
                    error: Some(format!("ended at {:?}", r.version)),
                }
            }
            Err(e) if e.is_transient() && attempt < 59 => {
                let wait = match e.retry_after() {
                    Some(s) => {
                        shed += 1;
                        Duration::from_secs(s)
                    }
                    None => Duration::from_millis(200),
                };
                let jitter = Duration::from_millis(rand::thread_rng().gen_range(0..1000));
                tokio::time::sleep(wait + jitter).await;
            }
            Err(e) => {
                return Outcome {
                    latency: start.elapsed(),
                    bytes,
                    shed,
                    error: Some(describe(&e)),
                }
            }
        }
    }
    unreachable!("the loop returns")
}

fn describe(e: &ClientError) -> String {
    format!("{} ({})", e, e.class())
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

fn run_load(clients: usize, max_requests: u32) {
    let t = tempfile::tempdir().unwrap();
    let root = t.path();
    let data = root.join("data");
    let mr = max_requests.to_string();
    let server = Server::start_with(
        &data,
        &[
            "--max-connections",
            "4096",
            "--max-requests",
            &mr,
            "--retry-after",
            "1",
        ],
    );
    let key = keygen(root, "k");
    let (v1, v2) = (root.join("v1"), root.join("v2"));
    make_app(&v1, 1);
    make_app(&v2, 2);
    ferry_ok(&push_args(&s(&v1), &server.url, "1.0.0", &s(&key.path)));
    // Every client starts at version 1: one real install, copied (hard
    // links: the client never writes into an installed tree).
    let template = root.join("template");
    ferry_ok(&sync_args(&server.url, &s(&template), &key.public));
    let installs: Vec<PathBuf> = (0..clients)
        .map(|i| root.join(format!("c{i:04}")))
        .collect();
    for inst in &installs {
        let st = std::process::Command::new("cp")
            .arg("-al")
            .arg(&template)
            .arg(inst)
            .status()
            .unwrap();
        assert!(st.success());
        // Each install needs its own lock file (flock is per inode).
        std::fs::remove_file(inst.join(".ferry/lock")).unwrap();
    }
    ferry_ok(&push_args(&s(&v2), &server.url, "2.0.0", &s(&key.path)));
    let rss_before = peak_rss_kib(server.pid());
    let cpu_before = cpu_seconds(server.pid());

    // Hundreds of syncs share this process's rayon pool: a worker waiting
    // on its own parallel loop steals parts of the others', nesting frames
    // (deep in a debug build). One sync per process never does this.
    let _ = rayon::ThreadPoolBuilder::new()
        .stack_size(256 << 20)
        .build_global();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .thread_stack_size(16 << 20)
        .build()
        .unwrap();
    let pk: PublicKey = key.public.parse().unwrap();
    let started = Instant::now();
    let done = Arc::new(AtomicU64::new(0));
    let outcomes: Vec<Outcome> = rt.block_on(async {
        let mut set = tokio::task::JoinSet::new();
        for inst in &installs {
            let (url, inst, done) = (server.url.clone(), inst.clone(), done.clone());
            set.spawn(async move {
                let o = one_client(url, inst, pk).await;
                done.fetch_add(1, Ordering::Relaxed);
                o
            });
        }
        let mut out = Vec::new();
        let deadline = tokio::time::sleep(Duration::from_secs(900));
        tokio::pin!(deadline);
        loop {
            tokio::select! {
                r = set.join_next() => match r {
                    Some(r) => out.push(r.expect("client task")),
                    None => break,
                },
                _ = &mut deadline => panic!(
                    "load test over its 15 min bound: {} of {clients} done",
                    done.load(Ordering::Relaxed)
                ),
            }
        }
        out
    });
    let wall = started.elapsed();
    let rss = peak_rss_kib(server.pid());
    let server_cpu = cpu_seconds(server.pid()) - cpu_before;

    // The server still answers, and every install is a verified version 2.
    let health = std::process::Command::new(bin())
        .args(["status", "--server", &server.url, "--app", "demo"])
        .output()
        .unwrap();
    assert!(health.status.success(), "server unhealthy after the load");
    let mut verify_failures = 0;
    for inst in &installs {
        match ferry_client::verify_install(inst) {
            Ok(r) if r.clean && r.version == "2.0.0" => {}
            _ => verify_failures += 1,
        }
    }
    let errors: Vec<&String> = outcomes.iter().filter_map(|o| o.error.as_ref()).collect();
    let mut lat: Vec<Duration> = outcomes.iter().map(|o| o.latency).collect();
    lat.sort();
    let bytes: u64 = outcomes.iter().map(|o| o.bytes).sum();
    let shed: u64 = outcomes.iter().map(|o| o.shed).sum();
    let summary = serde_json::json!({
        "clients": clients,
        "max_requests": max_requests,
        "errors": errors.len(),
        "verify_failures": verify_failures,
        "wall_s": wall.as_secs_f64(),
        "updates_per_s": clients as f64 / wall.as_secs_f64(),
        "bytes_downloaded": bytes,
        "mib_per_s": bytes as f64 / (1 << 20) as f64 / wall.as_secs_f64(),
        "latency_p50_ms": percentile(&lat, 0.50).as_millis() as u64,
        "latency_p99_ms": percentile(&lat, 0.99).as_millis() as u64,
        "latency_max_ms": lat.last().map_or(0, |d| d.as_millis() as u64),
        "answers_503": shed,
        "server_peak_rss_mib_before": rss_before as f64 / 1024.0,
        "server_cpu_s": server_cpu,
        "server_peak_rss_mib": rss as f64 / 1024.0,
        "cores": std::thread::available_parallelism().map_or(0, |n| n.get()),
    });
    println!("load: {summary}");
    if let Some(out) = std::env::var_os("FERRY_LOAD_REPORT") {
        std::fs::write(out, format!("{summary:#}\n")).unwrap();
    }
    assert!(
        errors.is_empty(),
        "{} clients failed, e.g. {:?}",
        errors.len(),
        &errors[..errors.len().min(5)]
    );
    assert_eq!(verify_failures, 0);
    // Bounded memory: far below one copy per client of what they fetched.
    assert!(rss < 1024 * 1024, "server peak RSS {rss} KiB");
}

#[test]
fn load_50_clients_update_at_once() {
    // A tight limit, so some clients meet a 503 and come back.
    run_load(50, 2);
}

#[test]
#[ignore = "long: make load"]
fn load_1000_clients_update_at_once() {
    let env = |k: &str, d: u32| {
        std::env::var(k)
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(d)
    };
    run_load(
        env("FERRY_LOAD_CLIENTS", 1000) as usize,
        env("FERRY_LOAD_MAX_REQUESTS", 64),
    );
}
