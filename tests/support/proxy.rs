//! A fault-injecting TCP proxy on 127.0.0.1 for network-fault tests: it
//! forwards every connection to the real server and, on the server-to-client
//! side, cuts or stalls the connection that carries a given byte (counted
//! over all connections), or slows everything down.

use std::io::{Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    /// Close both directions, as a dropped link or a dying middlebox does.
    Cut,
    /// Stop forwarding and hold the connection open (a hung server).
    Stall,
}

#[derive(Default)]
struct Plan {
    /// Server-to-client bytes forwarded so far, over all connections.
    down: u64,
    /// (at byte, fault), ascending: each fires once.
    events: Vec<(u64, Fault)>,
    /// Once `down` reaches this, every connection stalls at once.
    stall_all_from: Option<u64>,
    /// Bytes per second over all connections (0 = unlimited).
    rate: u64,
}

pub struct Proxy {
    pub url: String,
    plan: Arc<Mutex<Plan>>,
    stop: Arc<AtomicBool>,
    pub connections: Arc<AtomicU64>,
}

impl Proxy {
    /// A proxy in front of `server_url` (`http://127.0.0.1:PORT`).
    pub fn start(server_url: &str) -> Proxy {
        let upstream = server_url
            .strip_prefix("http://")
            .expect("http URL")
            .trim_end_matches('/')
            .to_string();
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        listener.set_nonblocking(true).unwrap();
        let plan = Arc::new(Mutex::new(Plan::default()));
        let stop = Arc::new(AtomicBool::new(false));
        let connections = Arc::new(AtomicU64::new(0));
        let (p, s, c) = (plan.clone(), stop.clone(), connections.clone());
        std::thread::spawn(move || {
            while !s.load(Ordering::Relaxed) {
                match listener.accept() {
                    Ok((client, _)) => {
                        client.set_nonblocking(false).unwrap();
                        c.fetch_add(1, Ordering::Relaxed);
                        let Ok(server) = TcpStream::connect(&upstream) else {
                            continue;
                        };
                        spawn_pair(client, server, p.clone(), s.clone());
                    }
                    Err(_) => std::thread::sleep(Duration::from_millis(5)),
                }
            }
        });
        Proxy {
            url,
            plan,
            stop,
            connections,
        }
    }

    /// Server-to-client bytes forwarded so far.
    pub fn down(&self) -> u64 {
        self.plan.lock().unwrap().down
    }

    /// Clears every fault and the byte count.
    pub fn reset(&self) {
        *self.plan.lock().unwrap() = Plan::default();
    }

    /// `fault` on the connection carrying the `at`-th byte from now.
    pub fn fault_at(&self, at: u64, fault: Fault) {
        let mut p = self.plan.lock().unwrap();
        let at = p.down + at;
        p.events.push((at, fault));
        p.events.sort_by_key(|e| e.0);
    }

    /// From the `at`-th byte from now on, nothing gets through any more.
    pub fn stall_all_from(&self, at: u64) {
        let mut p = self.plan.lock().unwrap();
        p.stall_all_from = Some(p.down + at);
    }

    /// Limits the server-to-client rate (bytes per second, all connections).
    pub fn slow(&self, rate: u64) {
        self.plan.lock().unwrap().rate = rate;
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

fn spawn_pair(client: TcpStream, server: TcpStream, plan: Arc<Mutex<Plan>>, stop: Arc<AtomicBool>) {
    let (c2, s2) = (client.try_clone().unwrap(), server.try_clone().unwrap());
    // Client to server: plain copy.
    std::thread::spawn(move || {
        let (mut from, mut to) = (c2, s2);
        let mut buf = [0u8; 16 * 1024];
        while let Ok(n) = from.read(&mut buf) {
            if n == 0 || to.write_all(&buf[..n]).is_err() {
                break;
            }
        }
        let _ = to.shutdown(Shutdown::Write);
    });
    // Server to client: faults applied here.
    std::thread::spawn(move || {
        let (mut from, mut to) = (server, client);
        let mut buf = [0u8; 4096];
        loop {
            let n = match from.read(&mut buf) {
                Ok(0) | Err(_) => break,
                Ok(n) => n,
            };
            let (keep, fault, rate) = {
                let mut p = plan.lock().unwrap();
                let stall_all = p.stall_all_from.is_some_and(|a| p.down + n as u64 > a);
                let next = p.events.first().copied();
                match next {
                    Some((at, f)) if p.down + n as u64 > at => {
                        p.events.remove(0);
                        let keep = (at - p.down.min(at)) as usize;
                        p.down += keep as u64;
                        (keep, Some(f), p.rate)
                    }
                    _ if stall_all => {
                        let keep = (p.stall_all_from.unwrap_or(0).saturating_sub(p.down)) as usize;
                        let keep = keep.min(n);
                        p.down += keep as u64;
                        (keep, Some(Fault::Stall), p.rate)
                    }
                    _ => {
                        p.down += n as u64;
                        (n, None, p.rate)
                    }
                }
            };
            if to.write_all(&buf[..keep]).is_err() {
                break;
            }
            match fault {
                Some(Fault::Cut) => {
                    let _ = to.shutdown(Shutdown::Both);
                    let _ = from.shutdown(Shutdown::Both);
                    return;
                }
                Some(Fault::Stall) => {
                    // Hold the connection until the client gives up on it.
                    let _ = to.set_read_timeout(Some(Duration::from_millis(100)));
                    let mut probe = [0u8; 1];
                    let end = Instant::now() + Duration::from_secs(120);
                    while Instant::now() < end && !stop.load(Ordering::Relaxed) {
                        match to.peek(&mut probe) {
                            Ok(0) => break,
                            Err(e)
                                if e.kind() == std::io::ErrorKind::WouldBlock
                                    || e.kind() == std::io::ErrorKind::TimedOut => {}
                            _ => {}
                        }
                        std::thread::sleep(Duration::from_millis(50));
                    }
                    let _ = to.shutdown(Shutdown::Both);
                    let _ = from.shutdown(Shutdown::Both);
                    return;
                }
                None => {}
            }
            if rate > 0 {
                std::thread::sleep(Duration::from_secs_f64(keep as f64 / rate as f64));
            }
        }
        let _ = to.shutdown(Shutdown::Write);
    });
}
