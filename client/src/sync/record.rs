//! The channel record and the manifest a sync works from: fetched (or
//! re-read on 304), verified against the pinned keys, checked for replay,
//! expiry and mix-and-match.

use ferry_protocol::rollout::Target;
use ferry_protocol::rotation::check_rotation;
use ferry_protocol::signed::{KIND_CHANNEL, KIND_MANIFEST};
use ferry_protocol::{ChannelRecord, Envelope, Manifest, ManifestId, PublicKey};

use super::SyncOptions;
use crate::error::ClientError;
use crate::http::{with_retries, Http};
use crate::install::{InstallState, Layout, Seen};

/// Fetches the channel record (conditionally, when one is kept), verifies
/// it and keeps it. On 304 the kept record is used again: it is re-verified,
/// and its rollout re-evaluated by the caller, since that depends on time.
pub(super) async fn accept_record(
    http: &Http,
    layout: &Layout,
    state: &mut InstallState,
    o: &SyncOptions,
    now: u64,
) -> Result<ChannelRecord, ClientError> {
    let seen = state.seen.get(&o.channel).cloned();
    let kept = std::fs::read(layout.record_file(&o.channel)).ok();
    let etag = match (&seen, &kept) {
        (Some(s), Some(k)) if blake3::hash(k).to_hex().as_str() == s.record_hash => s.etag.clone(),
        _ => None,
    };
    let fetched = with_retries("channel record", || {
        http.get_channel(&o.app, &o.channel, etag.as_deref())
    })
    .await?;
    let (bytes, etag) = match fetched {
        Some(f) => (f.bytes.to_vec(), f.etag),
        None => match kept {
            Some(k) => (k, etag),
            None => {
                return Err(ClientError::protocol(
                    "channel record",
                    "server answered 304 to a request without If-None-Match",
                ))
            }
        },
    };
    let record_hash = blake3::hash(&bytes).to_hex().to_string();
    let env = Envelope::decode(&bytes, usize::MAX)?;
    let mut trusted = state.trusted_keys(&o.trusted);
    if let Err(ferry_protocol::SignatureError::Untrusted { .. }) =
        env.verify(KIND_CHANNEL, &trusted)
    {
        // Perhaps signed by a key announced while this client was away:
        // follow the rotations in the channel's history that the keys it
        // trusts can verify, then check again.
        if follow_rotations(http, state, o, seen.as_ref().map_or(0, |s| s.sequence)).await? {
            trusted = state.trusted_keys(&o.trusted);
        }
    }
    let record = ChannelRecord::decode(env.verify(KIND_CHANNEL, &trusted)?)?;
    check_record(&record, o, seen.as_ref(), &record_hash, now)?;
    if !record.keys.is_empty() {
        let revoked = check_rotation(&env, &record, &trusted)
            .map_err(|e| ClientError::Mismatch(format!("refusing channel record: {e}")))?;
        if state.keys.rotated
            != record
                .keys
                .iter()
                .map(|k| k.to_string())
                .collect::<Vec<_>>()
        {
            tracing::warn!(
                "publisher keys rotated by record {} of {}: now trusting {}",
                record.sequence,
                o.channel,
                record
                    .keys
                    .iter()
                    .map(|k| k.to_string())
                    .collect::<Vec<_>>()
                    .join(", ")
            );
        }
        state.rotate_keys(&record.keys, &revoked, record.sequence, &o.channel);
    }
    if seen.as_ref().map(|s| &s.record_hash) != Some(&record_hash) {
        crate::install::write_atomic(&layout.record_file(&o.channel), &bytes)?;
    }
    state.app = Some(o.app.clone());
    state.channel = Some(o.channel.clone());
    state.seen.insert(
        o.channel.clone(),
        Seen {
            sequence: record.sequence,
            record_hash,
            etag,
            manifest_id: record.manifest_id.to_hex(),
        },
    );
    Ok(record)
}

/// Records of the channel's history looked at when catching up on missed
/// key rotations.
const ROTATION_HISTORY: usize = 1000;

/// Applies, oldest first, every key rotation in the channel's history newer
/// than `after` that the keys trusted at that point verify (each one can
/// hand trust on to the next, as TUF clients walk root metadata). Returns
/// whether any was applied. Records are checked like the current one
/// (signature, app, channel); none of them is installed from.
async fn follow_rotations(
    http: &Http,
    state: &mut InstallState,
    o: &SyncOptions,
    after: u64,
) -> Result<bool, ClientError> {
    let history = match with_retries("channel history", || {
        http.get_history(&o.app, &o.channel, ROTATION_HISTORY)
    })
    .await
    {
        Ok(h) => h,
        Err(e) => {
            tracing::debug!("no history to follow key rotations: {e}");
            return Ok(false);
        }
    };
    let mut applied = false;
    for bytes in history {
        let Ok(env) = Envelope::decode(&bytes, usize::MAX) else {
            continue;
        };
        let trusted = state.trusted_keys(&o.trusted);
        let Ok(body) = env.verify(KIND_CHANNEL, &trusted) else {
            continue;
        };
        let Ok(rec) = ChannelRecord::decode(body) else {
            continue;
        };
        if rec.keys.is_empty()
            || rec.sequence <= after
            || rec.app != o.app
            || rec.channel != o.channel
        {
            continue;
        }
        if let Ok(revoked) = check_rotation(&env, &rec, &trusted) {
            tracing::warn!(
                "following a key rotation missed earlier (record {} of {})",
                rec.sequence,
                o.channel
            );
            state.rotate_keys(&rec.keys, &revoked, rec.sequence, &o.channel);
            applied = true;
        }
    }
    Ok(applied)
}

/// The checks a signed record must pass beyond its signature.
fn check_record(
    rec: &ChannelRecord,
    o: &SyncOptions,
    seen: Option<&Seen>,
    hash: &str,
    now: u64,
) -> Result<(), ClientError> {
    if rec.app != o.app || rec.channel != o.channel {
        return Err(ClientError::Mismatch(format!(
            "server sent the record of {}/{} for {}/{} (mix-and-match)",
            rec.app, rec.channel, o.app, o.channel
        )));
    }
    if let Some(s) = seen {
        if rec.sequence < s.sequence {
            return Err(ClientError::Replay {
                seen: s.sequence,
                got: rec.sequence,
            });
        }
        if rec.sequence == s.sequence && s.record_hash != hash {
            return Err(ClientError::Mismatch(format!(
                "two different records carry sequence {}; refusing both (publisher key misuse?)",
                rec.sequence
            )));
        }
    }
    if rec.is_expired(now) {
        return Err(ClientError::Expired {
            expired_at: rec.expires_at.unwrap_or(0),
            now,
        });
    }
    Ok(())
}

/// The offered version's manifest: from the local cache if an installed
/// version has it, else from the server; checked against its id, the keys
/// and the offer.
pub(super) async fn get_manifest(
    http: &Http,
    layout: &Layout,
    app: &str,
    offer: &Target,
    trusted: &[PublicKey],
    base: Option<ManifestId>,
) -> Result<Manifest, ClientError> {
    let id = offer.manifest_id;
    let path = layout.manifest_file(&id);
    let bytes = match std::fs::read(&path) {
        Ok(b) if ManifestId::of(&Envelope::decode(&b, usize::MAX)?.body) == id => b,
        _ => {
            // Offer the installed version's envelope (checked: a damaged
            // local copy would only make the server's delta undecodable).
            let base = base.and_then(|b| {
                let bytes = std::fs::read(layout.manifest_file(&b)).ok()?;
                let env = Envelope::decode(&bytes, usize::MAX).ok()?;
                (ManifestId::of(&env.body) == b).then_some((b, bytes))
            });
            with_retries("manifest", || {
                http.get_manifest_against(&id, base.as_ref().map(|(b, x)| (b, x.as_slice())))
            })
            .await?
            .to_vec()
        }
    };
    let env = Envelope::decode(&bytes, usize::MAX)?;
    if ManifestId::of(&env.body) != id {
        return Err(ClientError::Mismatch(format!(
            "server sent a manifest that does not hash to {id}"
        )));
    }
    let m = Manifest::decode(env.verify(KIND_MANIFEST, trusted)?)?;
    if m.app != app || m.version != offer.version {
        return Err(ClientError::Mismatch(format!(
            "record names {app} {}, but its manifest is {} {} (mix-and-match)",
            offer.version, m.app, m.version
        )));
    }
    crate::install::write_atomic(&path, &bytes)?;
    Ok(m)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::PathBuf;

    fn opts() -> SyncOptions {
        SyncOptions::new("demo", "stable", PathBuf::from("unused"), vec![])
    }

    fn rec(seq: u64) -> ChannelRecord {
        ChannelRecord {
            app: "demo".into(),
            channel: "stable".into(),
            sequence: seq,
            version: "1.0.0".into(),
            manifest_id: ManifestId::of(b"m"),
            issued_at: 0,
            expires_at: None,
            policy: Default::default(),
            keys: Vec::new(),
        }
    }

    fn seen(seq: u64, hash: &str) -> Seen {
        Seen {
            sequence: seq,
            record_hash: hash.into(),
            etag: None,
            manifest_id: String::new(),
        }
    }

    #[test]
    fn replay_equivocation_expiry_and_mix_and_match() {
        let o = opts();
        assert!(check_record(&rec(5), &o, Some(&seen(5, "h")), "h", 0).is_ok());
        assert!(check_record(&rec(6), &o, Some(&seen(5, "h")), "x", 10).is_ok());
        assert!(matches!(
            check_record(&rec(4), &o, Some(&seen(5, "h")), "x", 10),
            Err(ClientError::Replay { seen: 5, got: 4 })
        ));
        assert!(check_record(&rec(5), &o, Some(&seen(5, "h")), "other", 10).is_err());
        let expired = ChannelRecord {
            expires_at: Some(1),
            ..rec(7)
        };
        assert!(matches!(
            check_record(&expired, &o, None, "h", 10),
            Err(ClientError::Expired { .. })
        ));
        let other_app = ChannelRecord {
            app: "other".into(),
            ..rec(7)
        };
        assert!(matches!(
            check_record(&other_app, &o, None, "h", 10),
            Err(ClientError::Mismatch(_))
        ));
        let other_channel = ChannelRecord {
            channel: "beta".into(),
            ..rec(7)
        };
        assert!(check_record(&other_channel, &o, None, "h", 10).is_err());
    }
}
