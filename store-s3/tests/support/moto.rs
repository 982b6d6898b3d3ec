//! A moto S3 server (PyPI `moto[server]`) on loopback for tests, shared by
//! every test of one test binary. Also used by the root package's
//! `tests/e2e_s3.rs` (included by path).
//!
//! Started through moto's `ThreadedMotoServer` on port 0 from a tiny
//! Python wrapper that prints the port it got (no free-port race) and
//! exits when its stdin closes, i.e. when the test process ends: a
//! process-wide server has no other moment to be stopped.

#![allow(dead_code)]

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::process::{Child, Command, Stdio};
use std::sync::{Mutex, OnceLock};
use std::time::Duration;

const WRAPPER: &str = r#"
import logging, sys
from moto.server import ThreadedMotoServer
logging.getLogger("werkzeug").setLevel(logging.ERROR)
s = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
s.start()
print(s.get_host_and_port()[1], flush=True)
sys.stdin.read()
"#;

pub struct Moto {
    pub endpoint: String,
    _child: Mutex<Child>,
}

/// Whether a missing moto must fail the tests (CI sets it).
fn required() -> bool {
    std::env::var("FERRY_REQUIRE_S3_TESTS").is_ok_and(|v| v == "1")
}

fn start() -> Result<Moto, String> {
    let mut child = Command::new("python3")
        .args(["-c", WRAPPER])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| format!("cannot run python3: {e}"))?;
    let mut out = BufReader::new(child.stdout.take().expect("stdout"));
    let mut line = String::new();
    let _ = out.read_line(&mut line);
    let Ok(port) = line.trim().parse::<u16>() else {
        let mut err = String::new();
        if let Some(mut e) = child.stderr.take() {
            let _ = e.read_to_string(&mut err);
        }
        let _ = child.kill();
        let _ = child.wait();
        let last = err.lines().last().unwrap_or("").to_string();
        return Err(format!("moto server did not start: {last}"));
    };
    // Drained so a chatty server never blocks on a full pipe.
    if let Some(mut e) = child.stderr.take() {
        std::thread::spawn(move || std::io::copy(&mut e, &mut std::io::sink()));
    }
    Ok(Moto {
        endpoint: format!("http://127.0.0.1:{port}"),
        _child: Mutex::new(child),
    })
}

/// The shared moto server, or `None` (with a message) when moto is not
/// installed; panics instead when FERRY_REQUIRE_S3_TESTS=1.
pub fn moto() -> Option<&'static Moto> {
    static MOTO: OnceLock<Result<Moto, String>> = OnceLock::new();
    match MOTO.get_or_init(start) {
        Ok(m) => Some(m),
        Err(e) if required() => panic!(
            "{e}; FERRY_REQUIRE_S3_TESTS=1 requires moto \
             (python3 -m pip install 'moto[server]')"
        ),
        Err(e) => {
            eprintln!(
                "SKIPPED: {e}. S3 tests need moto: python3 -m pip install 'moto[server]' \
                 (FERRY_REQUIRE_S3_TESTS=1 makes this a failure)"
            );
            None
        }
    }
}

impl Moto {
    /// Creates a bucket (moto accepts an unsigned `PUT /bucket`).
    pub fn create_bucket(&self, bucket: &str) {
        let addr = self.endpoint.trim_start_matches("http://");
        let mut s = TcpStream::connect(addr).expect("connect to moto");
        s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
        write!(
            s,
            "PUT /{bucket} HTTP/1.1\r\nHost: {addr}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
        )
        .unwrap();
        let mut answer = String::new();
        let _ = s.read_to_string(&mut answer);
        assert!(
            answer.starts_with("HTTP/1.1 200") || answer.starts_with("HTTP/1.0 200"),
            "create bucket {bucket}: {}",
            answer.lines().next().unwrap_or("")
        );
    }

    /// The environment a `ferry serve --store s3://...` needs for moto.
    pub fn env(&self) -> Vec<(&'static str, String)> {
        vec![
            ("AWS_ENDPOINT_URL", self.endpoint.clone()),
            ("AWS_ACCESS_KEY_ID", "test".into()),
            ("AWS_SECRET_ACCESS_KEY", "test".into()),
            ("AWS_REGION", "us-east-1".into()),
        ]
    }
}
