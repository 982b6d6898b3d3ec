//! Rollout policy of a channel record, and the one function every client
//! uses to decide what the record offers it.
//!
//! The server hands the same signed record to every client (so any HTTP
//! cache can serve it); each client evaluates it against its own persistent
//! random id, group, installed version and clock. Nothing here reads a clock
//! or a file: `now` is a parameter, which is what makes the rules testable.

use std::collections::BTreeMap;

use crate::hash::ManifestId;
use crate::version_order::{compare_versions, is_older};

/// 100% in basis points.
pub const FULL: u32 = 10_000;
/// Most ramp steps a record may carry.
pub const MAX_RAMP_STEPS: usize = 32;
/// Most groups with their own activation time.
pub const MAX_GROUPS: usize = 256;
/// Longest note.
pub const MAX_NOTE_LEN: usize = 1024;

/// A version and the manifest that defines it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    pub version: String,
    pub manifest_id: ManifestId,
}

/// From `at` (unix seconds) on, `basis_points`/10000 of clients are in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RampStep {
    pub at: u64,
    pub basis_points: u32,
}

/// How a record's version reaches clients. The default is a broadcast:
/// everyone, now.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Policy {
    /// What clients outside the rollout are offered (the channel's version
    /// before this rollout). They never move backwards to it.
    pub previous: Option<Target>,
    /// Percentage over time, steps ascending by time. Empty: 100% from the
    /// activation time.
    pub ramp: Vec<RampStep>,
    /// Default switch time for clients in no listed group (none: now).
    pub activate_at: Option<u64>,
    /// Per-group switch times.
    pub groups: BTreeMap<String, u64>,
    /// Clients below this version update at once, whatever the rollout; no
    /// client rolls back below it.
    pub min_version: Option<String>,
    /// No new client adopts the version; those that did keep it.
    pub paused: bool,
    /// A server-side rollback: clients accept this version even though it is
    /// older than what they run.
    pub revert: bool,
    /// Free text for the history (who and why).
    pub note: Option<String>,
}

impl Policy {
    /// Percentage (basis points) in force at `now`: the latest step at or
    /// before `now`, 0 before the first step, 100% with no steps.
    pub fn basis_points_at(&self, now: u64) -> u32 {
        if self.ramp.is_empty() {
            return FULL;
        }
        self.ramp
            .iter()
            .take_while(|s| s.at <= now)
            .last()
            .map_or(0, |s| s.basis_points)
    }

    /// When a client of `group` switches (0: at once).
    pub fn activation_for(&self, group: Option<&str>) -> u64 {
        group
            .and_then(|g| self.groups.get(g).copied())
            .or(self.activate_at)
            .unwrap_or(0)
    }

    /// The first ramp step after `now`, when the answer may change.
    pub fn next_ramp_step(&self, now: u64) -> Option<u64> {
        self.ramp.iter().map(|s| s.at).find(|at| *at > now)
    }

    /// Structural checks shared by the decoder and the publisher.
    pub fn validate(&self) -> Result<(), String> {
        if self.ramp.len() > MAX_RAMP_STEPS {
            return Err(format!("more than {MAX_RAMP_STEPS} ramp steps"));
        }
        for w in self.ramp.windows(2) {
            if w[1].at <= w[0].at {
                return Err("ramp steps must have increasing times".into());
            }
        }
        if let Some(s) = self.ramp.iter().find(|s| s.basis_points > FULL) {
            return Err(format!(
                "ramp step of {} basis points is above 100%",
                s.basis_points
            ));
        }
        if self.groups.len() > MAX_GROUPS {
            return Err(format!("more than {MAX_GROUPS} groups"));
        }
        if self.note.as_ref().is_some_and(|n| n.len() > MAX_NOTE_LEN) {
            return Err(format!("note longer than {MAX_NOTE_LEN} bytes"));
        }
        Ok(())
    }
}

/// Where a client stands in a rollout: the inputs of [`decide`].
#[derive(Debug, Clone, Copy)]
pub struct ClientView<'a> {
    /// Persistent random id of this client.
    pub client_id: &'a str,
    pub group: Option<&'a str>,
    /// Version in `current/`, if any.
    pub installed: Option<&'a str>,
    pub now: u64,
}

/// Why a decision came out as it did (shown to users, logged by agents).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reason {
    /// The client runs the offered version.
    UpToDate,
    /// In the rollout sample (or a broadcast).
    Rollout,
    /// Below the minimum version: at once, whatever the rollout says.
    BelowMinimum(String),
    /// A server-side rollback.
    Revert,
    /// Outside the sample at the percentage in force.
    OutsideRollout { basis_points: u32 },
    /// The rollout is paused and this client had not adopted it.
    Paused,
    /// The client runs a newer version than offered, and this is no revert.
    NewerInstalled,
    /// Nothing installed yet and the version activates later: the fallback
    /// now, the new version staged at the next check.
    BeforeActivation,
}

/// What a record offers one client.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Decision {
    /// The version to install, or none (stay).
    pub install: Option<Target>,
    /// When to switch to it: at or before `now` means at once; later means
    /// download and stage now, switch then.
    pub activate_at: u64,
    pub reason: Reason,
    /// When the decision may change without a new record (next ramp step
    /// or activation time), so agents can check again then.
    pub recheck_at: Option<u64>,
}

/// The client's bucket in 0..10000 for this app and version: a hash of
/// (client id, app, version), so raising the percentage keeps everyone
/// already in, and each release draws a new sample.
pub fn bucket(client_id: &str, app: &str, version: &str) -> u32 {
    let mut h = blake3::Hasher::new();
    h.update(b"ferry-rollout-v1\0");
    for part in [client_id, app, version] {
        h.update(&(part.len() as u64).to_le_bytes());
        h.update(part.as_bytes());
    }
    let d = h.finalize();
    let x = u64::from_le_bytes(d.as_bytes()[..8].try_into().unwrap_or([0; 8]));
    (x % u64::from(FULL)) as u32
}

/// Decides what `target` under `policy` (of the record of `app`) offers the
/// client `c`. Pure: the same inputs give the same answer on every machine.
pub fn decide(app: &str, target: &Target, policy: &Policy, c: ClientView<'_>) -> Decision {
    let stay = |reason, recheck_at| Decision {
        install: None,
        activate_at: 0,
        reason,
        recheck_at,
    };
    let go = |t: &Target, activate_at, reason, recheck_at| Decision {
        install: Some(t.clone()),
        activate_at,
        reason,
        recheck_at,
    };
    if c.installed == Some(target.version.as_str()) {
        return stay(Reason::UpToDate, None);
    }
    if let Some(min) = &policy.min_version {
        if c.installed.is_none_or(|v| is_older(v, min)) {
            return go(target, 0, Reason::BelowMinimum(min.clone()), None);
        }
    }
    let activation = policy.activation_for(c.group);
    // A client staging ahead of its activation counts the percentage it
    // will be at when it switches.
    let at = c.now.max(activation);
    let bp = policy.basis_points_at(at);
    let recheck = policy
        .next_ramp_step(at)
        .or((activation > c.now).then_some(activation));
    let in_sample = !policy.paused && bucket(c.client_id, app, &target.version) < bp;
    if in_sample {
        if c.installed.is_none() && activation > c.now {
            if let Some(p) = &policy.previous {
                // Check again at once: the next check stages the new version.
                return go(p, 0, Reason::BeforeActivation, Some(c.now));
            }
        }
        if policy.revert {
            return go(target, activation, Reason::Revert, recheck);
        }
        if c.installed
            .is_some_and(|v| compare_versions(v, &target.version).is_gt())
        {
            return stay(Reason::NewerInstalled, None);
        }
        return go(target, activation, Reason::Rollout, recheck);
    }
    let reason = if policy.paused {
        Reason::Paused
    } else {
        Reason::OutsideRollout { basis_points: bp }
    };
    let recheck = if policy.paused { None } else { recheck };
    match &policy.previous {
        Some(p) if c.installed == Some(p.version.as_str()) => stay(reason, recheck),
        Some(p) if c.installed.is_none_or(|v| is_older(v, &p.version)) => go(p, 0, reason, recheck),
        _ => stay(reason, recheck),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(v: &str) -> Target {
        Target {
            version: v.into(),
            manifest_id: ManifestId::of(v.as_bytes()),
        }
    }

    fn view<'a>(id: &'a str, installed: Option<&'a str>, now: u64) -> ClientView<'a> {
        ClientView {
            client_id: id,
            group: None,
            installed,
            now,
        }
    }

    fn ids(n: usize) -> Vec<String> {
        (0..n).map(|i| format!("client-{i:05}")).collect()
    }

    fn ramp(steps: &[(u64, u32)]) -> Vec<RampStep> {
        steps
            .iter()
            .map(|&(at, basis_points)| RampStep { at, basis_points })
            .collect()
    }

    #[test]
    fn broadcast_offers_everyone_now() {
        let d = decide("app", &t("2"), &Policy::default(), view("a", Some("1"), 5));
        assert_eq!(d.install, Some(t("2")));
        assert_eq!(d.activate_at, 0);
        assert_eq!(d.reason, Reason::Rollout);
        let d = decide("app", &t("2"), &Policy::default(), view("a", Some("2"), 5));
        assert_eq!(d.install, None);
        assert_eq!(d.reason, Reason::UpToDate);
    }

    #[test]
    fn raising_the_percentage_keeps_the_first_sample() {
        let policy = |bp| Policy {
            previous: Some(t("1")),
            ramp: ramp(&[(0, bp)]),
            ..Policy::default()
        };
        let clients = ids(4000);
        let chosen = |bp| -> Vec<&String> {
            clients
                .iter()
                .filter(|id| {
                    decide("app", &t("2"), &policy(bp), view(id, Some("1"), 10)).install
                        == Some(t("2"))
                })
                .collect()
        };
        let ten = chosen(1000);
        let fifty = chosen(5000);
        assert!(ten.iter().all(|id| fifty.contains(id)));
        let share = |n: usize| n as f64 / clients.len() as f64;
        assert!((share(ten.len()) - 0.10).abs() < 0.02, "{}", ten.len());
        assert!((share(fifty.len()) - 0.50).abs() < 0.03, "{}", fifty.len());
        assert_eq!(chosen(FULL).len(), clients.len());
        assert!(chosen(0).is_empty());
    }

    #[test]
    fn a_new_release_draws_a_new_sample() {
        let clients = ids(2000);
        let pick = |v: &str| -> Vec<bool> {
            clients
                .iter()
                .map(|id| bucket(id, "app", v) < 1000)
                .collect()
        };
        let (a, b) = (pick("2"), pick("3"));
        let both = a.iter().zip(&b).filter(|(x, y)| **x && **y).count();
        // Independent 10% samples overlap in about 1% of clients.
        assert!(both < 60, "{both}");
    }

    #[test]
    fn outside_the_sample_gets_previous_but_never_goes_back() {
        let p = Policy {
            previous: Some(t("1")),
            ramp: ramp(&[(0, 0)]),
            ..Policy::default()
        };
        let fresh = decide("app", &t("2"), &p, view("a", None, 1));
        assert_eq!(fresh.install, Some(t("1")));
        let old = decide("app", &t("2"), &p, view("a", Some("0.9"), 1));
        assert_eq!(old.install, Some(t("1")));
        let on_prev = decide("app", &t("2"), &p, view("a", Some("1"), 1));
        assert_eq!(on_prev.install, None);
        assert_eq!(on_prev.reason, Reason::OutsideRollout { basis_points: 0 });
        let ahead = decide("app", &t("2"), &p, view("a", Some("1.5"), 1));
        assert_eq!(ahead.install, None);
    }

    #[test]
    fn ramp_follows_the_clock() {
        let p = Policy {
            previous: Some(t("1")),
            ramp: ramp(&[(100, 1000), (200, 5000), (300, FULL)]),
            ..Policy::default()
        };
        assert_eq!(p.basis_points_at(99), 0);
        assert_eq!(p.basis_points_at(100), 1000);
        assert_eq!(p.basis_points_at(250), 5000);
        assert_eq!(p.basis_points_at(10_000), FULL);
        let clients = ids(500);
        let at = |now| {
            clients
                .iter()
                .filter(|id| {
                    decide("app", &t("2"), &p, view(id, Some("1"), now))
                        .install
                        .is_some()
                })
                .count()
        };
        assert!(at(150) < at(250) && at(250) < at(300));
        assert_eq!(at(300), clients.len());
        let d = decide("app", &t("2"), &p, view("x", Some("1"), 150));
        assert_eq!(d.recheck_at, Some(200));
    }

    #[test]
    fn groups_switch_at_their_own_time() {
        let mut groups = BTreeMap::new();
        groups.insert("branch-a".to_string(), 1000);
        groups.insert("branch-b".to_string(), 2000);
        let p = Policy {
            activate_at: Some(3000),
            groups,
            ..Policy::default()
        };
        let at = |g: Option<&str>| {
            decide(
                "app",
                &t("2"),
                &p,
                ClientView {
                    client_id: "c",
                    group: g,
                    installed: Some("1"),
                    now: 500,
                },
            )
        };
        assert_eq!(at(Some("branch-a")).activate_at, 1000);
        assert_eq!(at(Some("branch-b")).activate_at, 2000);
        assert_eq!(at(Some("unknown")).activate_at, 3000);
        assert_eq!(at(None).activate_at, 3000);
        assert_eq!(at(None).install, Some(t("2")), "staged ahead");
        assert_eq!(at(Some("branch-a")).recheck_at, Some(1000));
        // A client with nothing installed gets the fallback first.
        let with_prev = Policy {
            previous: Some(t("1")),
            ..p.clone()
        };
        let fresh = decide("app", &t("2"), &with_prev, view("c", None, 500));
        assert_eq!(fresh.install, Some(t("1")));
        assert_eq!(fresh.activate_at, 0);
        assert_eq!(fresh.reason, Reason::BeforeActivation);
        assert_eq!(fresh.recheck_at, Some(500));
    }

    #[test]
    fn minimum_version_overrides_rollout_and_activation() {
        let p = Policy {
            ramp: ramp(&[(0, 0)]),
            activate_at: Some(1_000_000),
            min_version: Some("1.5".into()),
            ..Policy::default()
        };
        let d = decide("app", &t("2"), &p, view("a", Some("1.4"), 1));
        assert_eq!(d.install, Some(t("2")));
        assert_eq!(d.activate_at, 0);
        assert_eq!(d.reason, Reason::BelowMinimum("1.5".into()));
        let d = decide("app", &t("2"), &p, view("a", Some("1.5"), 1));
        assert_eq!(d.install, None);
    }

    #[test]
    fn pause_keeps_adopters_and_stops_the_rest() {
        let p = Policy {
            previous: Some(t("1")),
            paused: true,
            ..Policy::default()
        };
        let adopted = decide("app", &t("2"), &p, view("a", Some("2"), 1));
        assert_eq!(adopted.install, None);
        let other = decide("app", &t("2"), &p, view("a", Some("1"), 1));
        assert_eq!(other.install, None);
        assert_eq!(other.reason, Reason::Paused);
    }

    #[test]
    fn revert_moves_clients_back_and_plain_records_do_not() {
        let plain = Policy::default();
        let d = decide("app", &t("1"), &plain, view("a", Some("2"), 1));
        assert_eq!(d.install, None);
        assert_eq!(d.reason, Reason::NewerInstalled);
        let revert = Policy {
            revert: true,
            ..Policy::default()
        };
        let d = decide("app", &t("1"), &revert, view("a", Some("2"), 1));
        assert_eq!(d.install, Some(t("1")));
        assert_eq!(d.reason, Reason::Revert);
    }

    #[test]
    fn validation() {
        let bad = Policy {
            ramp: ramp(&[(5, 10), (5, 20)]),
            ..Policy::default()
        };
        assert!(bad.validate().is_err());
        let bad = Policy {
            ramp: ramp(&[(5, FULL + 1)]),
            ..Policy::default()
        };
        assert!(bad.validate().is_err());
        assert!(Policy::default().validate().is_ok());
    }
}
