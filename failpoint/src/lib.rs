//! Named crash and fault points for the crash-safety tests.
//!
//! Production code calls [`hit`] at the places where a crash matters (after
//! a chunk is written, between a journal and a rename, ...) and [`io`]
//! before writes whose failure matters (disk full). Both are compiled in
//! always and are inert unless the process was started with
//! `FERRY_FAILPOINT`, read once:
//!
//! - `NAME:N` — the N-th [`hit`] of point `NAME` (counting from 1) sends the
//!   process SIGKILL: no destructor, no flush, exactly like `kill -9`.
//! - `NAME:N:enospc` — from the N-th call of [`io`] at point `NAME` on, it
//!   returns "No space left on device".
//!
//! `FERRY_FAILPOINT_LOG=FILE` appends every point reached to FILE, one
//! `kill NAME [BYTES]` or `io NAME` line each, in the order reached, so a test can enumerate the points a run passes
//! before choosing where to kill it. When neither variable is set a call
//! costs one atomic load and a branch.

use std::io::Write;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, OnceLock};

/// What `FERRY_FAILPOINT` asked for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Spec {
    pub name: String,
    pub at: u64,
    pub action: Action,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    Kill,
    NoSpace,
}

struct Config {
    spec: Option<Spec>,
    log: Option<Mutex<std::fs::File>>,
}

static CONFIG: OnceLock<Option<Config>> = OnceLock::new();
static HITS: AtomicU64 = AtomicU64::new(0);

/// Parses `NAME:N[:enospc]`.
pub fn parse(s: &str) -> Option<Spec> {
    let mut it = s.trim().splitn(3, ':');
    let name = it.next().filter(|n| !n.is_empty())?.to_string();
    let at: u64 = it.next()?.parse().ok().filter(|n| *n > 0)?;
    let action = match it.next() {
        None | Some("kill") => Action::Kill,
        Some("enospc") => Action::NoSpace,
        Some(_) => return None,
    };
    Some(Spec { name, at, action })
}

fn config() -> Option<&'static Config> {
    CONFIG
        .get_or_init(|| {
            let spec = std::env::var("FERRY_FAILPOINT").ok().and_then(|s| {
                let p = parse(&s);
                if p.is_none() {
                    eprintln!("ferry: ignoring malformed FERRY_FAILPOINT={s:?}");
                }
                p
            });
            let log = std::env::var_os("FERRY_FAILPOINT_LOG").and_then(|p| {
                std::fs::OpenOptions::new()
                    .create(true)
                    .append(true)
                    .open(p)
                    .ok()
                    .map(Mutex::new)
            });
            (spec.is_some() || log.is_some()).then_some(Config { spec, log })
        })
        .as_ref()
}

fn reached(c: &Config, name: &str, action: Action, bytes: Option<u64>) -> Option<u64> {
    if let Some(log) = &c.log {
        if let Ok(mut f) = log.lock() {
            let kind = match action {
                Action::Kill => "kill",
                Action::NoSpace => "io",
            };
            // One write per line: a kill by another thread never leaves
            // half a line (`writeln!` writes piece by piece).
            let line = match bytes {
                Some(b) => format!("{kind} {name} {b}\n"),
                None => format!("{kind} {name}\n"),
            };
            let _ = f.write_all(line.as_bytes());
        }
    }
    let spec = c.spec.as_ref()?;
    if spec.name != name || spec.action != action {
        return None;
    }
    Some(HITS.fetch_add(1, Ordering::SeqCst) + 1)
}

/// A crash point: SIGKILLs the process at the configured hit.
#[inline]
pub fn hit(name: &str) {
    hit_after(name, None)
}

/// A crash point after `bytes` bytes of work (logged, so a test can tell
/// how much was done before a kill).
#[inline]
pub fn hit_bytes(name: &str, bytes: u64) {
    hit_after(name, Some(bytes))
}

fn hit_after(name: &str, bytes: Option<u64>) {
    let Some(c) = config() else { return };
    if let Some(n) = reached(c, name, Action::Kill, bytes) {
        if c.spec.as_ref().is_some_and(|s| s.at == n) {
            // Hold the log while dying, so no other thread is mid-line.
            let _log = c.log.as_ref().map(|l| l.lock());
            kill_self();
        }
    }
}

/// A fault point before a write: "No space left on device" from the
/// configured hit on.
#[inline]
pub fn io(name: &str) -> std::io::Result<()> {
    let Some(c) = config() else { return Ok(()) };
    match reached(c, name, Action::NoSpace, None) {
        Some(n) if c.spec.as_ref().is_some_and(|s| n >= s.at) => {
            Err(std::io::Error::from_raw_os_error(libc::ENOSPC))
        }
        _ => Ok(()),
    }
}

fn kill_self() -> ! {
    // SAFETY: kill(2) on our own pid has no memory-safety preconditions.
    unsafe {
        libc::kill(libc::getpid(), libc::SIGKILL);
    }
    // SIGKILL cannot be caught; this is never reached.
    std::process::abort()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn specs_parse() {
        assert_eq!(
            parse("sync.chunk:3"),
            Some(Spec {
                name: "sync.chunk".into(),
                at: 3,
                action: Action::Kill
            })
        );
        assert_eq!(parse("a:1:enospc").map(|s| s.action), Some(Action::NoSpace));
        assert_eq!(parse("a:0"), None);
        assert_eq!(parse("a"), None);
        assert_eq!(parse(":1"), None);
        assert_eq!(parse("a:1:explode"), None);
    }

    #[test]
    fn inert_without_the_variable() {
        // The test runner does not set FERRY_FAILPOINT.
        if std::env::var_os("FERRY_FAILPOINT").is_none() {
            hit("anything");
            assert!(io("anything").is_ok());
        }
    }
}
