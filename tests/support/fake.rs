//! A fake Ferry server on 127.0.0.1 that answers whatever the test tells it
//! to: the test plays a malicious or broken server or mirror. Plain
//! HTTP/1.1, one request per connection.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// A request as the fake server saw it.
#[derive(Debug, Clone)]
pub struct Req {
    pub method: String,
    /// Path and query.
    pub target: String,
    pub body: Vec<u8>,
}

impl Req {
    pub fn path(&self) -> &str {
        self.target.split('?').next().unwrap_or("")
    }
}

/// What to answer.
pub enum Resp {
    Bytes {
        status: u16,
        content_type: &'static str,
        body: Vec<u8>,
    },
    /// A body that never ends (close-delimited, `piece` repeated until the
    /// client hangs up or 1 GiB went out).
    Endless {
        content_type: &'static str,
        prefix: Vec<u8>,
        piece: Vec<u8>,
    },
}

impl Resp {
    pub fn ok(content_type: &'static str, body: Vec<u8>) -> Resp {
        Resp::Bytes {
            status: 200,
            content_type,
            body,
        }
    }

    pub fn status(status: u16, text: &str) -> Resp {
        Resp::Bytes {
            status,
            content_type: "text/plain",
            body: text.as_bytes().to_vec(),
        }
    }
}

pub type Handler = Arc<dyn Fn(&Req) -> Resp + Send + Sync>;

pub struct FakeServer {
    pub url: String,
    handler: Arc<Mutex<Handler>>,
    stop: Arc<AtomicBool>,
    pub requests: Arc<Mutex<Vec<Req>>>,
}

impl FakeServer {
    pub fn start(handler: Handler) -> FakeServer {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        listener.set_nonblocking(true).unwrap();
        let handler = Arc::new(Mutex::new(handler));
        let stop = Arc::new(AtomicBool::new(false));
        let requests = Arc::new(Mutex::new(Vec::new()));
        let (h, s, r) = (handler.clone(), stop.clone(), requests.clone());
        std::thread::spawn(move || {
            while !s.load(Ordering::Relaxed) {
                match listener.accept() {
                    Ok((conn, _)) => {
                        let (h, r) = (h.lock().unwrap().clone(), r.clone());
                        std::thread::spawn(move || {
                            conn.set_nonblocking(false).ok();
                            conn.set_read_timeout(Some(Duration::from_secs(10))).ok();
                            let _ = serve_one(conn, &h, &r);
                        });
                    }
                    Err(_) => std::thread::sleep(Duration::from_millis(5)),
                }
            }
        });
        FakeServer {
            url,
            handler,
            stop,
            requests,
        }
    }

    /// Answers from now on with `handler`.
    pub fn set(&self, handler: Handler) {
        *self.handler.lock().unwrap() = handler;
    }
}

impl Drop for FakeServer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

fn serve_one(
    conn: std::net::TcpStream,
    handler: &Handler,
    log: &Mutex<Vec<Req>>,
) -> std::io::Result<()> {
    let mut reader = BufReader::new(conn.try_clone()?);
    let mut line = String::new();
    reader.read_line(&mut line)?;
    let mut parts = line.split_whitespace();
    let method = parts.next().unwrap_or("").to_string();
    let target = parts.next().unwrap_or("").to_string();
    let mut len = 0usize;
    loop {
        let mut h = String::new();
        reader.read_line(&mut h)?;
        let h = h.trim_end();
        if h.is_empty() {
            break;
        }
        if let Some((k, v)) = h.split_once(':') {
            if k.eq_ignore_ascii_case("content-length") {
                len = v.trim().parse().unwrap_or(0);
            }
        }
    }
    let mut body = vec![0u8; len];
    reader.read_exact(&mut body)?;
    let req = Req {
        method,
        target,
        body,
    };
    log.lock().unwrap().push(req.clone());
    let mut out = conn;
    match handler(&req) {
        Resp::Bytes {
            status,
            content_type,
            body,
        } => {
            write!(
                out,
                "HTTP/1.1 {status} X\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                body.len()
            )?;
            out.write_all(&body)?;
        }
        Resp::Endless {
            content_type,
            prefix,
            piece,
        } => {
            write!(
                out,
                "HTTP/1.1 200 OK\r\nContent-Type: {content_type}\r\nConnection: close\r\n\r\n"
            )?;
            out.write_all(&prefix)?;
            let mut sent = 0usize;
            while sent < (1 << 30) {
                out.write_all(&piece)?;
                sent += piece.len();
            }
        }
    }
    out.flush()
}
