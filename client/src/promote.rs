//! `ferry promote`, `pause`, `resume`: publish a new signed channel record
//! whose sequence is one above the current one.

use std::collections::BTreeMap;

use ferry_protocol::names::{validate_app, validate_channel, validate_version};
use ferry_protocol::rollout::{Policy, RampStep, Target, FULL};
use ferry_protocol::signed::KIND_CHANNEL;
use ferry_protocol::version_order::is_older;
use ferry_protocol::{unix_now, ChannelRecord, Envelope, Manifest, ManifestId, SecretKey};
use serde::Serialize;

use crate::error::ClientError;
use crate::http::Http;

/// How the new version reaches clients; everything empty is a broadcast.
#[derive(Debug, Clone, Default)]
pub struct RolloutOptions {
    /// Share of clients, in basis points (`--percent 10` is 1000).
    pub percent: Option<u32>,
    /// Ramp of percentages (basis points), one step per `every`.
    pub ramp: Vec<u32>,
    /// Seconds between ramp steps.
    pub every: Option<u64>,
    pub activate_at: Option<u64>,
    pub groups: BTreeMap<String, u64>,
    pub min_version: Option<String>,
    /// Force (`Some(true)`) or forbid (`Some(false)`) the revert mark;
    /// `None`: a revert exactly when the version is older than the current.
    pub revert: Option<bool>,
    pub note: Option<String>,
}

#[derive(Debug, Clone)]
pub struct PromoteOptions {
    pub app: String,
    pub channel: String,
    pub version: String,
    /// Seconds until clients refuse the record (none: never expires).
    pub expires_in: Option<u64>,
    pub rollout: RolloutOptions,
    /// The clock (unix seconds); `None` reads the system clock.
    pub now: Option<u64>,
}

#[derive(Debug, Clone, Serialize)]
pub struct PromoteReport {
    pub app: String,
    pub channel: String,
    pub version: String,
    pub manifest_id: String,
    pub sequence: u64,
    pub previous_version: Option<String>,
    pub expires_at: Option<u64>,
    /// What clients outside the rollout are offered.
    pub fallback_version: Option<String>,
    pub revert: bool,
    pub paused: bool,
    /// Ramp as (unix time, percent).
    pub ramp: Vec<(u64, f64)>,
    pub activate_at: Option<u64>,
    pub groups: BTreeMap<String, u64>,
    pub min_version: Option<String>,
}

impl PromoteReport {
    pub(crate) fn of(r: &ChannelRecord, previous_version: Option<String>) -> Self {
        let p = &r.policy;
        PromoteReport {
            app: r.app.clone(),
            channel: r.channel.clone(),
            version: r.version.clone(),
            manifest_id: r.manifest_id.to_hex(),
            sequence: r.sequence,
            previous_version,
            expires_at: r.expires_at,
            fallback_version: p.previous.as_ref().map(|t| t.version.clone()),
            revert: p.revert,
            paused: p.paused,
            ramp: p
                .ramp
                .iter()
                .map(|s| (s.at, f64::from(s.basis_points) / 100.0))
                .collect(),
            activate_at: p.activate_at,
            groups: p.groups.clone(),
            min_version: p.min_version.clone(),
        }
    }
}

fn usage(e: impl ToString) -> ClientError {
    ClientError::Usage(e.to_string())
}

/// Builds the policy of a promote from the options and the record it
/// replaces.
fn policy_for(
    o: &PromoteOptions,
    current: Option<&ChannelRecord>,
    now: u64,
) -> Result<Policy, ClientError> {
    let r = &o.rollout;
    if r.percent.is_some() && !r.ramp.is_empty() {
        return Err(usage("give either --percent or --ramp, not both"));
    }
    if r.ramp.len() > 1 && r.every.is_none() {
        return Err(usage("--ramp with several steps needs --every DURATION"));
    }
    if r.every.is_some() && r.ramp.is_empty() {
        return Err(usage("--every only applies to --ramp"));
    }
    if r.percent
        .into_iter()
        .chain(r.ramp.iter().copied())
        .any(|bp| bp > FULL)
    {
        return Err(usage("a percentage is above 100"));
    }
    for w in r.ramp.windows(2) {
        if w[1] < w[0] {
            return Err(usage("--ramp percentages must not go down"));
        }
    }
    if let Some(min) = &r.min_version {
        validate_version(min).map_err(usage)?;
        if is_older(&o.version, min) {
            return Err(usage(format!(
                "--min-version {min} is newer than the version promoted ({}); clients could never satisfy it",
                o.version
            )));
        }
    }
    for g in r.groups.keys() {
        validate_channel(g).map_err(|e| usage(format!("group name: {e}")))?;
    }
    // The first step is in force from the start (time 0) unless an
    // activation time is given, so a client whose clock runs a little
    // behind the publisher's does not see 0% at first.
    let start = r.activate_at.unwrap_or(now);
    let first = r.activate_at.unwrap_or(0);
    let ramp: Vec<RampStep> = match (r.percent, r.ramp.as_slice()) {
        (Some(bp), _) => vec![RampStep {
            at: first,
            basis_points: bp,
        }],
        (None, steps) => steps
            .iter()
            .enumerate()
            .map(|(i, bp)| RampStep {
                at: if i == 0 {
                    first
                } else {
                    start.saturating_add(r.every.unwrap_or(0).saturating_mul(i as u64))
                },
                basis_points: *bp,
            })
            .collect(),
    };
    let revert = match (r.revert, current) {
        (Some(x), _) => x,
        (None, Some(c)) => is_older(&o.version, &c.version),
        (None, None) => false,
    };
    let previous = if revert {
        // Clients outside a revert's sample must not be offered the version
        // being reverted away from.
        None
    } else {
        current.and_then(|c| fallback_after(c, &o.version, now))
    };
    let policy = Policy {
        previous,
        ramp,
        activate_at: r.activate_at,
        groups: r.groups.clone(),
        min_version: r.min_version.clone(),
        paused: false,
        revert,
        note: r.note.clone(),
    };
    policy.validate().map_err(usage)?;
    Ok(policy)
}

/// The version clients outside a new rollout keep being offered: the
/// current record's own version when its rollout has completed, else its
/// fallback (a half-done rollout is not a stable base).
fn fallback_after(c: &ChannelRecord, new_version: &str, now: u64) -> Option<Target> {
    if c.version == new_version {
        return c.policy.previous.clone();
    }
    let p = &c.policy;
    let done = !p.paused
        && p.basis_points_at(now) == FULL
        && p.activate_at.is_none_or(|t| t <= now)
        && p.groups.values().all(|t| *t <= now);
    if done {
        Some(c.target())
    } else {
        p.previous.clone()
    }
}

pub async fn promote(
    http: &Http,
    key: &SecretKey,
    o: &PromoteOptions,
) -> Result<PromoteReport, ClientError> {
    validate_app(&o.app).map_err(usage)?;
    validate_channel(&o.channel).map_err(usage)?;
    validate_version(&o.version).map_err(usage)?;
    let env_bytes = http.get_version(&o.app, &o.version).await?;
    let env = Envelope::decode(&env_bytes, usize::MAX)?;
    let manifest = Manifest::decode(&env.body)?;
    if manifest.app != o.app || manifest.version != o.version {
        return Err(ClientError::Mismatch(format!(
            "server returned the manifest of {} {} for {} {}",
            manifest.app, manifest.version, o.app, o.version
        )));
    }
    let manifest_id = ManifestId::of(&env.body);
    publish_next(http, key, &o.app, &o.channel, |current| {
        let now = o.now.unwrap_or_else(unix_now);
        Ok(ChannelRecord {
            app: o.app.clone(),
            channel: o.channel.clone(),
            sequence: 0,
            version: o.version.clone(),
            manifest_id,
            issued_at: now,
            expires_at: o.expires_in.map(|s| now.saturating_add(s)),
            policy: policy_for(o, current, now)?,
            keys: Vec::new(),
        })
    })
    .await
}

/// `ferry pause` / `ferry resume`: the current record again with `paused`
/// set or cleared. Expiry is kept unless `expires_in` is given.
pub async fn set_paused(
    http: &Http,
    key: &SecretKey,
    app: &str,
    channel: &str,
    paused: bool,
    expires_in: Option<u64>,
    note: Option<String>,
) -> Result<PromoteReport, ClientError> {
    validate_app(app).map_err(usage)?;
    validate_channel(channel).map_err(usage)?;
    publish_next(http, key, app, channel, |current| {
        let Some(c) = current else {
            return Err(usage(format!(
                "channel {app}/{channel} has no record yet; promote a version first"
            )));
        };
        if c.policy.paused == paused {
            return Err(usage(format!(
                "the rollout of {} on {app}/{channel} is already {}",
                c.version,
                if paused { "paused" } else { "running" }
            )));
        }
        let now = unix_now();
        let mut r = c.clone();
        r.issued_at = now;
        r.keys = Vec::new();
        r.policy.paused = paused;
        r.policy.note = note.clone();
        if let Some(s) = expires_in {
            r.expires_at = Some(now.saturating_add(s));
        }
        Ok(r)
    })
    .await
}

/// `ferry rotate-key`: the channel's current record again (same version and
/// rollout), announcing `new_keys` (plus the signing key with `keep_old`)
/// as the app's publisher keys. Signed by the old key, which clients and
/// the server trust now, and by every new key (proof of possession).
#[allow(clippy::too_many_arguments)]
pub async fn rotate_keys(
    http: &Http,
    old: &SecretKey,
    new_keys: &[SecretKey],
    keep_old: bool,
    app: &str,
    channel: &str,
    expires_in: Option<u64>,
    note: Option<String>,
) -> Result<PromoteReport, ClientError> {
    validate_app(app).map_err(usage)?;
    validate_channel(channel).map_err(usage)?;
    if new_keys.is_empty() {
        return Err(usage("name at least one new key (--new-key)"));
    }
    let mut keys: Vec<_> = new_keys.iter().map(|k| k.public()).collect();
    if keep_old {
        keys.push(old.public());
    }
    keys.sort();
    keys.dedup();
    if keys.len() > ferry_protocol::channel::MAX_ROTATION_KEYS {
        return Err(usage(format!(
            "at most {} keys",
            ferry_protocol::channel::MAX_ROTATION_KEYS
        )));
    }
    let cosigners: Vec<&SecretKey> = new_keys
        .iter()
        .filter(|k| k.public() != old.public())
        .collect();
    publish_signed(http, old, &cosigners, app, channel, |current| {
        let Some(c) = current else {
            return Err(usage(format!(
                "channel {app}/{channel} has no record yet; promote a version first"
            )));
        };
        let now = unix_now();
        let mut r = c.clone();
        r.issued_at = now;
        r.keys = keys.clone();
        r.policy.note = note.clone();
        if let Some(s) = expires_in {
            r.expires_at = Some(now.saturating_add(s));
        }
        Ok(r)
    })
    .await
}

/// Reads the current record, builds the next with `make`, signs it with the
/// next sequence and publishes it. Two publishers racing: the loser gets
/// 409 and tries again on the new current record.
async fn publish_next(
    http: &Http,
    key: &SecretKey,
    app: &str,
    channel: &str,
    make: impl Fn(Option<&ChannelRecord>) -> Result<ChannelRecord, ClientError>,
) -> Result<PromoteReport, ClientError> {
    publish_signed(http, key, &[], app, channel, make).await
}

/// [`publish_next`], with the record signed by `cosigners` as well.
async fn publish_signed(
    http: &Http,
    key: &SecretKey,
    cosigners: &[&SecretKey],
    app: &str,
    channel: &str,
    make: impl Fn(Option<&ChannelRecord>) -> Result<ChannelRecord, ClientError>,
) -> Result<PromoteReport, ClientError> {
    for attempt in 0..3 {
        let current = match http.get_channel_opt(app, channel).await? {
            None => None,
            Some(b) => {
                let env = Envelope::decode(&b, usize::MAX)?;
                Some(ChannelRecord::decode(&env.body)?)
            }
        };
        let mut record = make(current.as_ref())?;
        record.sequence = current.as_ref().map_or(1, |c| c.sequence + 1);
        let mut envelope = key.sign(KIND_CHANNEL, record.encode());
        for c in cosigners {
            envelope.cosign(c);
        }
        let envelope = envelope.encode();
        match http.publish_channel(app, channel, envelope).await {
            Ok(()) => return Ok(PromoteReport::of(&record, current.map(|c| c.version))),
            Err(ClientError::Server { status: 409, .. }) if attempt < 2 => continue,
            Err(e) => return Err(e),
        }
    }
    unreachable!("the loop returns")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn opts(version: &str, rollout: RolloutOptions) -> PromoteOptions {
        PromoteOptions {
            app: "demo".into(),
            channel: "stable".into(),
            version: version.into(),
            expires_in: None,
            rollout,
            now: Some(1000),
        }
    }

    fn record(version: &str, policy: Policy) -> ChannelRecord {
        ChannelRecord {
            app: "demo".into(),
            channel: "stable".into(),
            sequence: 3,
            version: version.into(),
            manifest_id: ManifestId::of(version.as_bytes()),
            issued_at: 0,
            expires_at: None,
            policy,
            keys: Vec::new(),
        }
    }

    #[test]
    fn ramp_steps_start_at_activation() {
        let o = opts(
            "2",
            RolloutOptions {
                ramp: vec![1000, 5000, FULL],
                every: Some(86_400),
                activate_at: Some(5000),
                ..Default::default()
            },
        );
        let p = policy_for(&o, None, 1000).unwrap();
        let at: Vec<u64> = p.ramp.iter().map(|s| s.at).collect();
        assert_eq!(at, vec![5000, 91_400, 177_800]);
        // Without an activation time the first step holds from the start,
        // the next ones count from the promote.
        let o = opts(
            "2",
            RolloutOptions {
                ramp: vec![1000, FULL],
                every: Some(100),
                ..Default::default()
            },
        );
        let at: Vec<u64> = policy_for(&o, None, 1000)
            .unwrap()
            .ramp
            .iter()
            .map(|s| s.at)
            .collect();
        assert_eq!(at, vec![0, 1100]);
    }

    #[test]
    fn fallback_is_the_last_completed_rollout() {
        let done = record("1", Policy::default());
        let p = policy_for(&opts("2", RolloutOptions::default()), Some(&done), 1000).unwrap();
        assert_eq!(p.previous.unwrap().version, "1");
        let half = record(
            "2",
            Policy {
                previous: Some(done.target()),
                ramp: vec![RampStep {
                    at: 0,
                    basis_points: 1000,
                }],
                ..Policy::default()
            },
        );
        let p = policy_for(&opts("3", RolloutOptions::default()), Some(&half), 1000).unwrap();
        assert_eq!(p.previous.unwrap().version, "1");
        // Raising the same version's percentage keeps its fallback.
        let p = policy_for(&opts("2", RolloutOptions::default()), Some(&half), 1000).unwrap();
        assert_eq!(p.previous.unwrap().version, "1");
    }

    #[test]
    fn an_older_version_is_a_revert_without_fallback() {
        let cur = record("2", Policy::default());
        let p = policy_for(&opts("1", RolloutOptions::default()), Some(&cur), 1000).unwrap();
        assert!(p.revert);
        assert!(p.previous.is_none());
    }

    #[test]
    fn refuses_contradictions() {
        let both = RolloutOptions {
            percent: Some(10),
            ramp: vec![10],
            ..Default::default()
        };
        assert!(policy_for(&opts("2", both), None, 0).is_err());
        let no_every = RolloutOptions {
            ramp: vec![10, 20],
            ..Default::default()
        };
        assert!(policy_for(&opts("2", no_every), None, 0).is_err());
        let min_above = RolloutOptions {
            min_version: Some("3".into()),
            ..Default::default()
        };
        assert!(policy_for(&opts("2", min_above), None, 0).is_err());
    }
}
