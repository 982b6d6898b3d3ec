//! `ferry agent`: sync on a schedule, as a service.
//!
//! Checks every `interval` with random jitter (so a fleet does not call at
//! the same second), backs off exponentially with jitter on transient
//! errors, waits at least as long as a server's `Retry-After`, switches a
//! staged version at its activation time without contacting the server, and
//! stops cleanly on a signal (a check in progress gets a grace period; the
//! sync is crash-safe either way).

use std::future::Future;
use std::time::Duration;

use ferry_protocol::unix_now;
use serde::Serialize;

use crate::error::ClientError;
use crate::http::Http;
use crate::install::{InstallLock, InstallState, Layout};
use crate::sync::{client_id, switch_due, sync, SyncOptions, SyncReport};
use ferry_protocol::report::{Outcome as ReportOutcome, Report};

/// When to check.
#[derive(Debug, Clone)]
pub struct Schedule {
    pub interval: Duration,
    /// Fraction of the interval to spread checks by (0.2: ±20%).
    pub jitter: f64,
    /// First retry delay after a transient error; doubles per failure.
    pub min_backoff: Duration,
    pub max_backoff: Duration,
    /// The first check happens after a random delay up to this.
    pub startup_splay: Duration,
}

impl Default for Schedule {
    fn default() -> Self {
        Schedule {
            interval: Duration::from_secs(4 * 3600),
            jitter: 0.2,
            min_backoff: Duration::from_secs(5),
            max_backoff: Duration::from_secs(3600),
            startup_splay: Duration::from_secs(60),
        }
    }
}

/// How the last check went, as far as scheduling cares.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Outcome {
    /// Done; the answer may change at `wake_at` (a ramp step or a staged
    /// version's activation) without a new record.
    Ok { wake_at: Option<u64> },
    /// The network or server had a moment; `failures` in a row so far.
    Transient {
        failures: u32,
        retry_after: Option<u64>,
    },
    /// An error that waiting a little will not fix (bad signature, disk).
    Failed,
}

/// The delay before the next check. `r` is uniform in [0, 1): the caller's
/// randomness, so this stays a pure function.
pub fn next_delay(s: &Schedule, outcome: Outcome, now: u64, r: f64) -> Duration {
    let jittered = |d: Duration, frac: f64| {
        let f = 1.0 - frac + 2.0 * frac * r;
        d.mul_f64(f.max(0.0))
    };
    match outcome {
        Outcome::Ok { wake_at } => {
            let normal = jittered(s.interval, s.jitter);
            match wake_at {
                // Activation times are exact: switch at (or just after) them.
                Some(t) if t > now => normal.min(Duration::from_secs(t - now)),
                Some(_) => Duration::ZERO,
                None => normal,
            }
        }
        Outcome::Transient {
            failures,
            retry_after,
        } => {
            let exp = failures.saturating_sub(1).min(20);
            let cap = s.min_backoff.saturating_mul(1u32 << exp).min(s.max_backoff);
            // "Equal jitter": at least half the backoff, spread over the rest.
            let backoff = cap / 2 + (cap / 2).mul_f64(r);
            match retry_after {
                Some(ra) => {
                    let ra = Duration::from_secs(ra);
                    backoff.max(ra + ra.mul_f64(0.5 * r))
                }
                None => backoff,
            }
        }
        Outcome::Failed => jittered(s.interval, s.jitter),
    }
}

/// One line of the agent's log of what it did (JSON lines with `--json`).
#[derive(Debug, Clone, Serialize)]
pub struct AgentEvent {
    pub at: u64,
    pub event: &'static str,
    pub version: Option<String>,
    pub message: String,
    pub next_check_in_s: u64,
}

/// Runs checks until `shutdown` completes. `on_event` sees every outcome.
pub async fn run_agent(
    client: &Http,
    opts: &SyncOptions,
    schedule: &Schedule,
    shutdown: impl Future<Output = ()>,
    mut on_event: impl FnMut(&AgentEvent),
) -> Result<(), ClientError> {
    tokio::pin!(shutdown);
    let mut delay = schedule.startup_splay.mul_f64(random_unit());
    let mut failures = 0u32;
    let mut stage_due: Option<u64> = None;
    loop {
        tokio::select! {
            _ = tokio::time::sleep(delay) => {}
            _ = &mut shutdown => return Ok(()),
        }
        let now = unix_now();
        // A staged version whose time has come switches locally.
        if stage_due.is_some_and(|t| t <= now) {
            stage_due = None;
            let o = opts.clone();
            let r = tokio::task::spawn_blocking(move || -> Result<_, ClientError> {
                let layout = Layout::open(&o.install)?;
                let _lock = InstallLock::acquire(&layout)?;
                let mut state = InstallState::load(&layout)?;
                let v = switch_due(&layout, &mut state, &o, now)?;
                state.save(&layout)?;
                Ok(v)
            })
            .await?;
            match r {
                Ok(Some(v)) => on_event(&event(
                    "switched",
                    Some(v),
                    "staged version activated".into(),
                    Duration::ZERO,
                )),
                Ok(None) => {}
                Err(e) => tracing::warn!("switching the staged version failed: {e}"),
            }
        }
        let http = client.fresh();
        let check = sync(&http, opts);
        tokio::pin!(check);
        let result = tokio::select! {
            r = &mut check => r,
            _ = &mut shutdown => {
                // Let a check in progress finish, within a grace period,
                // and tell the server how it went.
                tracing::info!("stopping: letting the check in progress finish (up to 30 s)");
                if let Ok(r) = tokio::time::timeout(Duration::from_secs(30), check).await {
                    send_report(&http, opts, &r).await;
                    let (kind, version, message) = match &r {
                        Ok(rep) => ok_event(rep),
                        Err(e) => ("error", None, e.to_string()),
                    };
                    on_event(&event(kind, version, message, Duration::ZERO));
                }
                return Ok(());
            }
        };
        send_report(&http, opts, &result).await;
        let (outcome, ev) = match result {
            Ok(r) => {
                failures = 0;
                stage_due = r.activates_at.filter(|_| r.staged);
                let wake_at = [r.activates_at.filter(|_| r.staged), r.recheck_at]
                    .into_iter()
                    .flatten()
                    .min();
                (Outcome::Ok { wake_at }, ok_event(&r))
            }
            Err(e) if e.is_transient() => {
                failures = failures.saturating_add(1);
                let o = Outcome::Transient {
                    failures,
                    retry_after: e.retry_after(),
                };
                (o, ("retry", None, e.to_string()))
            }
            Err(e) => {
                failures = 0;
                (Outcome::Failed, ("error", None, e.to_string()))
            }
        };
        delay = next_delay(schedule, outcome, unix_now(), random_unit());
        on_event(&event(ev.0, ev.1, ev.2, delay));
    }
}

/// Tells the server how the check went (best effort: a report that does
/// not arrive changes nothing on this client). `ferry sync` uses it too.
pub async fn send_report(
    http: &Http,
    opts: &SyncOptions,
    result: &Result<SyncReport, ClientError>,
) {
    let client_id = match result {
        Ok(r) if !r.client_id.is_empty() => r.client_id.clone(),
        _ => match client_id(opts) {
            Some(id) => id,
            None => return,
        },
    };
    let report = match result {
        Ok(r) => Report {
            client_id,
            channel: opts.channel.clone(),
            version: r.version.clone(),
            outcome: if r.staged {
                ReportOutcome::Staged
            } else {
                ReportOutcome::Ok
            },
            error: None,
            subject: r.staged_version.clone(),
        },
        Err(e) => Report {
            client_id,
            channel: opts.channel.clone(),
            version: None,
            outcome: ReportOutcome::Failed,
            error: Some(e.class().to_string()),
            subject: None,
        },
    };
    if let Err(e) = http.post_report(&opts.app, &report).await {
        tracing::debug!("report not delivered: {e}");
    }
}

fn ok_event(r: &SyncReport) -> (&'static str, Option<String>, String) {
    if r.updated {
        (
            "updated",
            r.version.clone(),
            format!(
                "{} -> {}",
                r.previous_version.as_deref().unwrap_or("(nothing)"),
                r.version.as_deref().unwrap_or("?")
            ),
        )
    } else if r.staged {
        (
            "staged",
            r.staged_version.clone(),
            format!("switches at {}", r.activates_at.unwrap_or(0)),
        )
    } else {
        ("checked", r.version.clone(), r.decision.clone())
    }
}

fn event(
    kind: &'static str,
    version: Option<String>,
    message: String,
    next: Duration,
) -> AgentEvent {
    AgentEvent {
        at: unix_now(),
        event: kind,
        version,
        message,
        next_check_in_s: next.as_secs(),
    }
}

/// Uniform in [0, 1) from the OS (no RNG state to seed or share).
fn random_unit() -> f64 {
    let mut b = [0u8; 8];
    if getrandom::getrandom(&mut b).is_err() {
        return 0.5;
    }
    (u64::from_le_bytes(b) >> 11) as f64 / (1u64 << 53) as f64
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s() -> Schedule {
        Schedule {
            interval: Duration::from_secs(3600),
            jitter: 0.2,
            min_backoff: Duration::from_secs(5),
            max_backoff: Duration::from_secs(600),
            startup_splay: Duration::from_secs(60),
        }
    }

    #[test]
    fn interval_is_jittered_within_bounds() {
        let ok = Outcome::Ok { wake_at: None };
        assert_eq!(next_delay(&s(), ok, 0, 0.0), Duration::from_secs(2880));
        assert_eq!(next_delay(&s(), ok, 0, 0.5), Duration::from_secs(3600));
        assert!(next_delay(&s(), ok, 0, 0.999_999) <= Duration::from_secs(4320));
    }

    #[test]
    fn activation_times_wake_the_agent_exactly() {
        let o = Outcome::Ok {
            wake_at: Some(1_000),
        };
        assert_eq!(next_delay(&s(), o, 900, 0.7), Duration::from_secs(100));
        assert_eq!(next_delay(&s(), o, 1_000, 0.7), Duration::ZERO);
        // Far away: the normal interval comes first.
        let far = Outcome::Ok {
            wake_at: Some(100_000),
        };
        assert_eq!(next_delay(&s(), far, 0, 0.5), Duration::from_secs(3600));
    }

    #[test]
    fn backoff_doubles_with_equal_jitter_and_caps() {
        let t = |failures, r| {
            next_delay(
                &s(),
                Outcome::Transient {
                    failures,
                    retry_after: None,
                },
                0,
                r,
            )
        };
        assert_eq!(t(1, 0.0), Duration::from_millis(2500));
        assert_eq!(t(1, 0.999_999).as_secs(), 4);
        assert_eq!(t(2, 0.0), Duration::from_secs(5));
        assert_eq!(t(3, 0.0), Duration::from_secs(10));
        assert_eq!(t(30, 0.0), Duration::from_secs(300));
        assert!(t(30, 0.999_999) <= Duration::from_secs(600));
    }

    #[test]
    fn retry_after_is_a_floor_spread_above() {
        let t = |ra, r| {
            next_delay(
                &s(),
                Outcome::Transient {
                    failures: 1,
                    retry_after: Some(ra),
                },
                0,
                r,
            )
        };
        assert_eq!(t(120, 0.0), Duration::from_secs(120));
        assert_eq!(t(120, 0.5), Duration::from_secs(150));
        // A tiny Retry-After does not shorten the backoff.
        assert!(t(1, 0.0) >= Duration::from_millis(2500));
    }

    #[test]
    fn hard_failures_wait_a_normal_interval() {
        assert_eq!(
            next_delay(&s(), Outcome::Failed, 0, 0.5),
            Duration::from_secs(3600)
        );
    }

    #[test]
    fn random_unit_is_in_range() {
        for _ in 0..100 {
            let r = random_unit();
            assert!((0.0..1.0).contains(&r));
        }
    }
}
