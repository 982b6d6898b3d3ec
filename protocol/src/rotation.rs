//! Publisher key rotation, the rules shared by server and client.
//!
//! A channel record with a `keys` field (16) announces the app's publisher
//! keys from then on. It is accepted only if a key trusted before signed it
//! (the normal record check) and every announced key that was not trusted
//! before signed it too (proof of possession: nobody can announce a key they
//! do not hold, and a typo cannot lock a fleet out). A verifier then trusts
//! its base keys (configured or pinned) plus the announced ones, minus every
//! key a rotation left out (revoked), so a retired or stolen key stays
//! distrusted even where it is still configured.

use crate::channel::ChannelRecord;
use crate::signed::{Envelope, PublicKey, KIND_CHANNEL};

/// `(base ∪ rotated) \ revoked`, sorted, each key once.
pub fn effective_keys(
    base: &[PublicKey],
    rotated: &[PublicKey],
    revoked: &[PublicKey],
) -> Vec<PublicKey> {
    let mut keys: Vec<PublicKey> = base
        .iter()
        .chain(rotated)
        .filter(|k| !revoked.contains(k))
        .copied()
        .collect();
    keys.sort();
    keys.dedup();
    keys
}

/// For a record that verified against `trusted`: when it rotates keys,
/// every announced key not in `trusted` must have signed `env` as well.
/// Returns the keys the rotation revokes (those of `trusted` it leaves out).
pub fn check_rotation(
    env: &Envelope,
    rec: &ChannelRecord,
    trusted: &[PublicKey],
) -> Result<Vec<PublicKey>, String> {
    if rec.keys.is_empty() {
        return Ok(Vec::new());
    }
    for k in rec.keys.iter().filter(|k| !trusted.contains(k)) {
        env.verify(KIND_CHANNEL, std::slice::from_ref(k))
            .map_err(|e| {
                format!(
                    "key rotation announces key {k}, which did not sign the record \
                     (the new key must sign it too): {e}"
                )
            })?;
    }
    Ok(trusted
        .iter()
        .filter(|k| !rec.keys.contains(k))
        .copied()
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::signed::SecretKey;
    use crate::ManifestId;

    fn rec(keys: Vec<PublicKey>) -> ChannelRecord {
        ChannelRecord {
            app: "demo".into(),
            channel: "stable".into(),
            sequence: 2,
            version: "1.0.0".into(),
            manifest_id: ManifestId::of(b"m"),
            issued_at: 1,
            expires_at: None,
            policy: Default::default(),
            keys,
        }
    }

    #[test]
    fn rotation_needs_the_new_key_to_sign_and_revokes_the_old() {
        let (old, new) = (SecretKey::from_seed([1; 32]), SecretKey::from_seed([2; 32]));
        let r = rec(vec![new.public()]);
        let mut env = old.sign(KIND_CHANNEL, r.encode());
        let trusted = [old.public()];
        let err = check_rotation(&env, &r, &trusted).unwrap_err();
        assert!(err.contains("did not sign"), "{err}");
        env.cosign(&new);
        assert_eq!(
            check_rotation(&env, &r, &trusted).unwrap(),
            vec![old.public()]
        );
        // Round trip of the field, and canonical order enforced.
        let decoded = ChannelRecord::decode(&r.encode()).unwrap();
        assert_eq!(decoded.keys, vec![new.public()]);
        let mut two = vec![old.public(), new.public()];
        two.sort();
        two.reverse();
        assert!(ChannelRecord::decode(&rec(two).encode()).is_err());
    }

    #[test]
    fn effective_keys_drop_revoked_ones() {
        let k = |b| SecretKey::from_seed([b; 32]).public();
        assert_eq!(
            effective_keys(&[k(1)], &[k(2), k(3)], &[k(1), k(3)]),
            vec![k(2)]
        );
        assert_eq!(effective_keys(&[k(1)], &[], &[]), vec![k(1)]);
    }
}
