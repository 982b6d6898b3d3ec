//! Ed25519 signatures over exact document bytes.
//!
//! ```text
//! envelope = { 0: kind (text), 1: body (bytes), 2: [[public key (32), signature (64)]...] }
//! signed message = "ferry-signature-v1" 0x00 kind 0x00 body
//! ```
//!
//! The signature covers the kind, so a channel record can never be passed off
//! as a manifest or the other way round. A document is accepted when at least
//! one signature is by a trusted key and verifies (`verify_strict`); any bad
//! signature by a trusted key fails the whole document.

use ed25519_dalek::{Signature, Signer, SigningKey, VerifyingKey};
use minicbor::Decoder;

use crate::cbor::{cbor_err, encoder, expect_end, ok, required, MapReader};
use crate::error::{DecodeError, SignatureError};
use crate::hash::parse_hex32;

/// Kind string of a version manifest.
pub const KIND_MANIFEST: &str = "ferry.manifest.v1";
/// Kind string of a channel record.
pub const KIND_CHANNEL: &str = "ferry.channel.v1";
const WHAT: &str = "signed envelope";
const MAX_SIGNATURES: u64 = 16;

/// An Ed25519 public key, shown as 64 hex digits.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct PublicKey(pub [u8; 32]);

impl PublicKey {
    fn verifying(&self) -> Result<VerifyingKey, SignatureError> {
        VerifyingKey::from_bytes(&self.0).map_err(|e| SignatureError::InvalidKey(e.to_string()))
    }

    /// Checks that the bytes are a valid curve point.
    pub fn validate(&self) -> Result<(), SignatureError> {
        self.verifying().map(|_| ())
    }
}

impl std::fmt::Display for PublicKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        for b in self.0 {
            write!(f, "{b:02x}")?;
        }
        Ok(())
    }
}

impl std::fmt::Debug for PublicKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "PublicKey({self})")
    }
}

impl std::str::FromStr for PublicKey {
    type Err = SignatureError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let bytes = parse_hex32(s.trim()).map_err(|e| SignatureError::InvalidKey(e.to_string()))?;
        let k = PublicKey(bytes);
        k.validate()?;
        Ok(k)
    }
}

/// The publisher's secret key.
pub struct SecretKey(SigningKey);

const SECRET_KEY_PREFIX: &str = "ferry-secret-key-v1 ";

impl SecretKey {
    /// From 32 bytes of seed (use a CSPRNG).
    pub fn from_seed(seed: [u8; 32]) -> Self {
        SecretKey(SigningKey::from_bytes(&seed))
    }

    /// The matching public key.
    pub fn public(&self) -> PublicKey {
        PublicKey(self.0.verifying_key().to_bytes())
    }

    /// The key file form: one line, `ferry-secret-key-v1 <64 hex digits>`.
    pub fn to_text(&self) -> String {
        let mut s = String::from(SECRET_KEY_PREFIX);
        for b in self.0.to_bytes() {
            s.push_str(&format!("{b:02x}"));
        }
        s.push('\n');
        s
    }

    /// Parses the key file form.
    pub fn from_text(text: &str) -> Result<Self, SignatureError> {
        let hex = text.trim().strip_prefix(SECRET_KEY_PREFIX).ok_or_else(|| {
            SignatureError::InvalidKey(
                "not a Ferry secret key file (made by `ferry keygen`)".into(),
            )
        })?;
        let seed = parse_hex32(hex).map_err(|e| SignatureError::InvalidKey(e.to_string()))?;
        Ok(SecretKey::from_seed(seed))
    }

    /// Signs `body` as a document of `kind` and wraps it in an envelope.
    pub fn sign(&self, kind: &str, body: Vec<u8>) -> Envelope {
        let sig = self.0.sign(&signed_message(kind, &body));
        Envelope {
            kind: kind.to_string(),
            body,
            signatures: vec![(self.public(), sig.to_bytes())],
        }
    }
}

fn signed_message(kind: &str, body: &[u8]) -> Vec<u8> {
    let mut m = Vec::with_capacity(body.len() + kind.len() + 24);
    m.extend_from_slice(b"ferry-signature-v1\0");
    m.extend_from_slice(kind.as_bytes());
    m.push(0);
    m.extend_from_slice(body);
    m
}

/// A signed document as stored and served.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Envelope {
    pub kind: String,
    pub body: Vec<u8>,
    pub signatures: Vec<(PublicKey, [u8; 64])>,
}

impl Envelope {
    /// Canonical bytes.
    pub fn encode(&self) -> Vec<u8> {
        let mut e = encoder();
        ok(e.map(3));
        ok(ok(e.u8(0)).str(&self.kind));
        ok(ok(e.u8(1)).bytes(&self.body));
        ok(ok(e.u8(2)).array(self.signatures.len() as u64));
        for (k, s) in &self.signatures {
            ok(ok(ok(e.array(2)).bytes(&k.0)).bytes(s));
        }
        e.into_writer()
    }

    /// Decodes an envelope; `max` bounds the whole input.
    pub fn decode(bytes: &[u8], max: usize) -> Result<Envelope, DecodeError> {
        if bytes.len() > max {
            return Err(DecodeError::TooLarge {
                what: WHAT,
                len: bytes.len(),
                max,
            });
        }
        let mut d = Decoder::new(bytes);
        let mut r = MapReader::new(&mut d, WHAT)?;
        let (mut kind, mut body, mut sigs) = (None, None, None);
        while let Some(k) = r.next_key()? {
            match k {
                0 => kind = Some(r.str()?),
                1 => body = Some(r.bytes()?.to_vec()),
                2 => sigs = Some(decode_sigs(r.d)?),
                other => return Err(r.unknown(other)),
            }
        }
        expect_end(&d, WHAT)?;
        let env = Envelope {
            kind: required(kind, WHAT, "kind")?,
            body: required(body, WHAT, "body")?,
            signatures: required(sigs, WHAT, "signatures")?,
        };
        if env.encode() != bytes {
            return Err(DecodeError::invalid(WHAT, "not in canonical encoding"));
        }
        Ok(env)
    }

    /// Adds `key`'s signature over the same kind and body (a document
    /// signed by several keys, e.g. the old and the new key of a rotation).
    pub fn cosign(&mut self, key: &SecretKey) {
        let sig = key.0.sign(&signed_message(&self.kind, &self.body));
        self.signatures.push((key.public(), sig.to_bytes()));
    }

    /// The keys that claim to have signed (not yet verified).
    pub fn signers(&self) -> Vec<PublicKey> {
        self.signatures.iter().map(|(k, _)| *k).collect()
    }

    /// Verifies the document against the trusted keys and returns its body.
    pub fn verify(
        &self,
        expected_kind: &'static str,
        trusted: &[PublicKey],
    ) -> Result<&[u8], SignatureError> {
        if self.kind != expected_kind {
            return Err(SignatureError::WrongKind {
                expected: expected_kind,
                found: self.kind.chars().take(64).collect(),
            });
        }
        let msg = signed_message(&self.kind, &self.body);
        let mut good = false;
        for (key, sig) in &self.signatures {
            if !trusted.contains(key) {
                continue;
            }
            let vk = key.verifying()?;
            let sig = Signature::from_bytes(sig);
            if vk.verify_strict(&msg, &sig).is_err() {
                return Err(SignatureError::Bad {
                    kind: expected_kind,
                    key: key.to_string(),
                });
            }
            good = true;
        }
        if !good {
            let signers: Vec<String> = self.signers().iter().map(|k| k.to_string()).collect();
            return Err(SignatureError::Untrusted {
                kind: expected_kind,
                signers: if signers.is_empty() {
                    "nobody".into()
                } else {
                    signers.join(", ")
                },
            });
        }
        Ok(&self.body)
    }
}

fn decode_sigs(d: &mut Decoder<'_>) -> Result<Vec<(PublicKey, [u8; 64])>, DecodeError> {
    let c = |e| cbor_err(WHAT, e);
    let n = d
        .array()
        .map_err(c)?
        .ok_or_else(|| DecodeError::invalid(WHAT, "indefinite-length signature list"))?;
    if n > MAX_SIGNATURES {
        return Err(DecodeError::invalid(
            WHAT,
            format!("{n} signatures, at most {MAX_SIGNATURES}"),
        ));
    }
    let mut out = Vec::with_capacity(n as usize);
    for _ in 0..n {
        if d.array().map_err(c)? != Some(2) {
            return Err(DecodeError::invalid(
                WHAT,
                "signature must be [key, signature]",
            ));
        }
        let key: [u8; 32] = d
            .bytes()
            .map_err(c)?
            .try_into()
            .map_err(|_| DecodeError::invalid(WHAT, "public key must be 32 bytes"))?;
        let sig: [u8; 64] = d
            .bytes()
            .map_err(c)?
            .try_into()
            .map_err(|_| DecodeError::invalid(WHAT, "signature must be 64 bytes"))?;
        out.push((PublicKey(key), sig));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(n: u8) -> SecretKey {
        SecretKey::from_seed([n; 32])
    }

    #[test]
    fn sign_and_verify() {
        let k = key(1);
        let env = k.sign(KIND_MANIFEST, b"body".to_vec());
        let back = Envelope::decode(&env.encode(), 1024).unwrap();
        assert_eq!(back.verify(KIND_MANIFEST, &[k.public()]).unwrap(), b"body");
    }

    #[test]
    fn other_key_kind_or_body_refused() {
        let k = key(1);
        let env = k.sign(KIND_MANIFEST, b"body".to_vec());
        assert!(matches!(
            env.verify(KIND_MANIFEST, &[key(2).public()]),
            Err(SignatureError::Untrusted { .. })
        ));
        assert!(matches!(
            env.verify(KIND_CHANNEL, &[k.public()]),
            Err(SignatureError::WrongKind { .. })
        ));
        let mut tampered = env.clone();
        tampered.body = b"bodY".to_vec();
        assert!(matches!(
            tampered.verify(KIND_MANIFEST, &[k.public()]),
            Err(SignatureError::Bad { .. })
        ));
        // Relabelling the kind breaks the signature too.
        let mut relabelled = env;
        relabelled.kind = KIND_CHANNEL.into();
        assert!(relabelled.verify(KIND_CHANNEL, &[k.public()]).is_err());
    }

    #[test]
    fn key_text_round_trip() {
        let k = key(9);
        let back = SecretKey::from_text(&k.to_text()).unwrap();
        assert_eq!(back.public(), k.public());
        let pk: PublicKey = k.public().to_string().parse().unwrap();
        assert_eq!(pk, k.public());
        assert!(SecretKey::from_text("nonsense").is_err());
    }

    #[test]
    fn size_limit() {
        let env = key(1).sign(KIND_MANIFEST, vec![0; 100]);
        assert!(matches!(
            Envelope::decode(&env.encode(), 50),
            Err(DecodeError::TooLarge { .. })
        ));
    }
}
