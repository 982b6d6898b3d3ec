//! The channel record: which version a channel of an app points at now.
//!
//! ```text
//! record = { 0: format (1), 1: app, 2: channel, 3: sequence, 4: version,
//!            5: manifest id (32 bytes), 6: issued_at (unix s),
//!            ? 7: expires_at (unix s),
//!            ? 8: previous [version, manifest id],
//!            ? 9: ramp [[at (unix s), basis points]...],
//!            ? 10: activate_at (unix s),
//!            ? 11: groups {name: activate_at},
//!            ? 12: min_version, ? 13: paused (true), ? 14: revert (true),
//!            ? 15: note, ? 16: keys [public key (32 bytes) ...] }
//! ```
//!
//! Field 16 rotates the publisher keys: from this record on, the app's keys
//! are exactly the listed ones (1 to 16, ascending, distinct). It must be
//! signed by a key trusted before it (the old one) and by every listed key
//! not trusted before (proof of possession); verifiers then trust the new
//! set and stop trusting the keys it leaves out. See docs/security.md.
//!
//! Fields 8-15 are the rollout policy ([`crate::rollout`]); absent fields
//! mean a broadcast. Booleans are only written when true, so each record has
//! exactly one encoding.
//!
//! The sequence only grows: the server refuses a record whose sequence is not
//! above the stored one, and a client never accepts a lower sequence than it
//! has seen (a replayed old record is a rollback attack).

use std::collections::BTreeMap;

use minicbor::Decoder;

use crate::cbor::{encoder, expect_end, ok, required, MapReader};
use crate::error::DecodeError;
use crate::hash::ManifestId;
use crate::names::{validate_app, validate_channel, validate_version};
use crate::rollout::{Policy, RampStep, Target, MAX_GROUPS, MAX_RAMP_STEPS};
use crate::signed::PublicKey;

/// Most keys a key rotation may name.
pub const MAX_ROTATION_KEYS: usize = 16;

/// Channel record format understood by this build.
pub const CHANNEL_FORMAT: u32 = 1;
/// Largest channel record body accepted.
pub const MAX_CHANNEL_BYTES: usize = 64 * 1024;
const WHAT: &str = "channel record";

/// A channel record (the body that gets signed).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChannelRecord {
    pub app: String,
    pub channel: String,
    pub sequence: u64,
    pub version: String,
    pub manifest_id: ManifestId,
    pub issued_at: u64,
    /// After this time clients refuse the record (protects against a server
    /// that keeps serving a stale record forever).
    pub expires_at: Option<u64>,
    /// Who gets the version when (default: everyone, now).
    pub policy: Policy,
    /// Key rotation: when not empty, the app's publisher keys from this
    /// record on (ascending, distinct).
    pub keys: Vec<PublicKey>,
}

impl ChannelRecord {
    /// Canonical bytes.
    pub fn encode(&self) -> Vec<u8> {
        let p = &self.policy;
        let fields = 7
            + u64::from(self.expires_at.is_some())
            + u64::from(p.previous.is_some())
            + u64::from(!p.ramp.is_empty())
            + u64::from(p.activate_at.is_some())
            + u64::from(!p.groups.is_empty())
            + u64::from(p.min_version.is_some())
            + u64::from(p.paused)
            + u64::from(p.revert)
            + u64::from(p.note.is_some())
            + u64::from(!self.keys.is_empty());
        let mut e = encoder();
        ok(e.map(fields));
        ok(ok(e.u8(0)).u32(CHANNEL_FORMAT));
        ok(ok(e.u8(1)).str(&self.app));
        ok(ok(e.u8(2)).str(&self.channel));
        ok(ok(e.u8(3)).u64(self.sequence));
        ok(ok(e.u8(4)).str(&self.version));
        ok(ok(e.u8(5)).bytes(&self.manifest_id.0));
        ok(ok(e.u8(6)).u64(self.issued_at));
        if let Some(x) = self.expires_at {
            ok(ok(e.u8(7)).u64(x));
        }
        if let Some(t) = &p.previous {
            ok(ok(ok(e.u8(8)).array(2)).str(&t.version));
            ok(e.bytes(&t.manifest_id.0));
        }
        if !p.ramp.is_empty() {
            ok(ok(e.u8(9)).array(p.ramp.len() as u64));
            for s in &p.ramp {
                ok(ok(ok(e.array(2)).u64(s.at)).u32(s.basis_points));
            }
        }
        if let Some(x) = p.activate_at {
            ok(ok(e.u8(10)).u64(x));
        }
        if !p.groups.is_empty() {
            ok(ok(e.u8(11)).map(p.groups.len() as u64));
            for (g, at) in &p.groups {
                ok(ok(e.str(g)).u64(*at));
            }
        }
        if let Some(v) = &p.min_version {
            ok(ok(e.u8(12)).str(v));
        }
        if p.paused {
            ok(ok(e.u8(13)).bool(true));
        }
        if p.revert {
            ok(ok(e.u8(14)).bool(true));
        }
        if let Some(n) = &p.note {
            ok(ok(e.u8(15)).str(n));
        }
        if !self.keys.is_empty() {
            ok(ok(e.u8(16)).array(self.keys.len() as u64));
            for k in &self.keys {
                ok(e.bytes(&k.0));
            }
        }
        e.into_writer()
    }

    /// Decodes and validates a record body.
    pub fn decode(bytes: &[u8]) -> Result<ChannelRecord, DecodeError> {
        if bytes.len() > MAX_CHANNEL_BYTES {
            return Err(DecodeError::TooLarge {
                what: WHAT,
                len: bytes.len(),
                max: MAX_CHANNEL_BYTES,
            });
        }
        let mut d = Decoder::new(bytes);
        let mut r = MapReader::new(&mut d, WHAT)?;
        let (mut format, mut app, mut channel, mut seq, mut version, mut mid, mut issued) =
            (None, None, None, None, None, None, None);
        let mut expires = None;
        let mut policy = Policy::default();
        let mut keys = Vec::new();
        while let Some(k) = r.next_key()? {
            match k {
                0 => format = Some(r.u32()?),
                1 => app = Some(r.str()?),
                2 => channel = Some(r.str()?),
                3 => seq = Some(r.u64()?),
                4 => version = Some(r.str()?),
                5 => mid = Some(ManifestId::from_slice(r.bytes()?)?),
                6 => issued = Some(r.u64()?),
                7 => expires = Some(r.u64()?),
                8 => policy.previous = Some(read_target(&mut r)?),
                9 => policy.ramp = read_ramp(&mut r)?,
                10 => policy.activate_at = Some(r.u64()?),
                11 => policy.groups = read_groups(&mut r)?,
                12 => policy.min_version = Some(r.str()?),
                13 => policy.paused = read_true(&mut r)?,
                14 => policy.revert = read_true(&mut r)?,
                15 => policy.note = Some(r.str()?),
                16 => keys = read_keys(&mut r)?,
                other => return Err(r.unknown(other)),
            }
        }
        expect_end(&d, WHAT)?;
        let format = required(format, WHAT, "format")?;
        if format != CHANNEL_FORMAT {
            return Err(DecodeError::invalid(
                WHAT,
                format!(
                    "format {format} is not supported by this build (expected {CHANNEL_FORMAT})"
                ),
            ));
        }
        let rec = ChannelRecord {
            app: required(app, WHAT, "app")?,
            channel: required(channel, WHAT, "channel")?,
            sequence: required(seq, WHAT, "sequence")?,
            version: required(version, WHAT, "version")?,
            manifest_id: required(mid, WHAT, "manifest id")?,
            issued_at: required(issued, WHAT, "issued_at")?,
            expires_at: expires,
            policy,
            keys,
        };
        if rec.encode() != bytes {
            return Err(DecodeError::invalid(WHAT, "not in canonical encoding"));
        }
        validate_app(&rec.app)?;
        validate_channel(&rec.channel)?;
        validate_version(&rec.version)?;
        let p = &rec.policy;
        for v in p.previous.iter().map(|t| &t.version).chain(&p.min_version) {
            validate_version(v)?;
        }
        for g in p.groups.keys() {
            validate_channel(g)
                .map_err(|e| DecodeError::invalid(WHAT, format!("group name: {e}")))?;
        }
        p.validate().map_err(|e| DecodeError::invalid(WHAT, e))?;
        Ok(rec)
    }

    /// The version and manifest this record points at.
    pub fn target(&self) -> Target {
        Target {
            version: self.version.clone(),
            manifest_id: self.manifest_id,
        }
    }

    /// True when the record has an expiry and `now` (unix seconds) is past it.
    pub fn is_expired(&self, now: u64) -> bool {
        self.expires_at.is_some_and(|x| now > x)
    }
}

fn read_target(r: &mut MapReader<'_, '_>) -> Result<Target, DecodeError> {
    array_of(r, 2, 2, "previous")?;
    let version = r.str()?;
    let manifest_id = ManifestId::from_slice(r.bytes()?)?;
    Ok(Target {
        version,
        manifest_id,
    })
}

fn read_ramp(r: &mut MapReader<'_, '_>) -> Result<Vec<RampStep>, DecodeError> {
    let n = array_of(r, 1, MAX_RAMP_STEPS as u64, "ramp")?;
    (0..n)
        .map(|_| {
            array_of(r, 2, 2, "ramp step")?;
            Ok(RampStep {
                at: r.u64()?,
                basis_points: r.u32()?,
            })
        })
        .collect()
}

fn read_groups(r: &mut MapReader<'_, '_>) -> Result<BTreeMap<String, u64>, DecodeError> {
    let n =
        r.d.map()
            .map_err(|e| r.err(e))?
            .ok_or_else(|| DecodeError::invalid(WHAT, "indefinite-length groups"))?;
    if n == 0 || n > MAX_GROUPS as u64 {
        return Err(DecodeError::invalid(
            WHAT,
            format!("groups must list 1 to {MAX_GROUPS} names"),
        ));
    }
    let mut groups = BTreeMap::new();
    for _ in 0..n {
        let name = r.str()?;
        let at = r.u64()?;
        if groups.insert(name, at).is_some() {
            return Err(DecodeError::invalid(WHAT, "a group is listed twice"));
        }
    }
    Ok(groups)
}

fn read_keys(r: &mut MapReader<'_, '_>) -> Result<Vec<PublicKey>, DecodeError> {
    let n = array_of(r, 1, MAX_ROTATION_KEYS as u64, "keys")?;
    let mut keys: Vec<PublicKey> = Vec::with_capacity(n as usize);
    for _ in 0..n {
        let b = r.bytes()?;
        let k = PublicKey(
            b.try_into()
                .map_err(|_| DecodeError::invalid(WHAT, "a key must be 32 bytes"))?,
        );
        k.validate()
            .map_err(|e| DecodeError::invalid(WHAT, format!("key {k}: {e}")))?;
        if keys.last().is_some_and(|last| last.0 >= k.0) {
            return Err(DecodeError::invalid(
                WHAT,
                "keys must be listed in ascending order, each once",
            ));
        }
        keys.push(k);
    }
    Ok(keys)
}

fn read_true(r: &mut MapReader<'_, '_>) -> Result<bool, DecodeError> {
    r.d.bool().map_err(|e| r.err(e))
}

/// Reads a definite array header with `min..=max` items.
fn array_of(r: &mut MapReader<'_, '_>, min: u64, max: u64, what: &str) -> Result<u64, DecodeError> {
    let n =
        r.d.array()
            .map_err(|e| r.err(e))?
            .ok_or_else(|| DecodeError::invalid(WHAT, format!("indefinite-length {what}")))?;
    if n < min || n > max {
        return Err(DecodeError::invalid(
            WHAT,
            format!("{what} has {n} items (expected {min} to {max})"),
        ));
    }
    Ok(n)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> ChannelRecord {
        ChannelRecord {
            app: "demo".into(),
            channel: "stable".into(),
            sequence: 7,
            version: "1.2.0".into(),
            manifest_id: ManifestId::of(b"m"),
            issued_at: 1_700_000_000,
            expires_at: Some(1_800_000_000),
            policy: Policy::default(),
            keys: Vec::new(),
        }
    }

    fn with_policy() -> ChannelRecord {
        let mut groups = BTreeMap::new();
        groups.insert("branch-a".to_string(), 1_700_100_000);
        groups.insert("branch-b".to_string(), 1_700_200_000);
        ChannelRecord {
            policy: Policy {
                previous: Some(Target {
                    version: "1.1.0".into(),
                    manifest_id: ManifestId::of(b"p"),
                }),
                ramp: vec![
                    RampStep {
                        at: 1_700_000_000,
                        basis_points: 1000,
                    },
                    RampStep {
                        at: 1_700_086_400,
                        basis_points: 10_000,
                    },
                ],
                activate_at: Some(1_700_000_100),
                groups,
                min_version: Some("1.0.0".into()),
                paused: true,
                revert: true,
                note: Some("ops: staged".into()),
            },
            ..sample()
        }
    }

    #[test]
    fn round_trip() {
        let r = sample();
        assert_eq!(ChannelRecord::decode(&r.encode()).unwrap(), r);
        let r2 = ChannelRecord {
            expires_at: None,
            ..sample()
        };
        assert_eq!(ChannelRecord::decode(&r2.encode()).unwrap(), r2);
    }

    #[test]
    fn policy_round_trips_and_is_canonical() {
        let r = with_policy();
        let b = r.encode();
        assert_eq!(ChannelRecord::decode(&b).unwrap(), r);
        // `paused: false` written out would be a second encoding: refused.
        let mut bytes = sample().encode();
        assert_eq!(bytes[0], 0xa8, "a map of 8 fields");
        bytes[0] = 0xa9;
        bytes.extend_from_slice(&[0x0d, 0xf4]); // 13: false
        let err = ChannelRecord::decode(&bytes).unwrap_err();
        assert!(err.to_string().contains("canonical"), "{err}");
    }

    #[test]
    fn rejects_bad_policies() {
        let mut r = with_policy();
        r.policy.ramp[1].at = 1;
        assert!(ChannelRecord::decode(&r.encode()).is_err());
        let mut r = with_policy();
        r.policy.groups.insert("../x".into(), 1);
        assert!(ChannelRecord::decode(&r.encode()).is_err());
        let mut r = with_policy();
        r.policy.min_version = Some("a/b".into());
        assert!(ChannelRecord::decode(&r.encode()).is_err());
    }

    #[test]
    fn rejects_trailing_and_bad_names() {
        let mut b = sample().encode();
        b.push(0);
        assert!(ChannelRecord::decode(&b).is_err());
        let bad = ChannelRecord {
            app: "../x".into(),
            ..sample()
        };
        assert!(ChannelRecord::decode(&bad.encode()).is_err());
    }

    #[test]
    fn expiry() {
        let r = sample();
        assert!(!r.is_expired(1_800_000_000));
        assert!(r.is_expired(1_800_000_001));
    }
}
