//! The channel record: which version a channel of an app points at now.
//!
//! ```text
//! record = { 0: format (1), 1: app, 2: channel, 3: sequence, 4: version,
//!            5: manifest id (32 bytes), 6: issued_at (unix s),
//!            ? 7: expires_at (unix s) }
//! ```
//!
//! The sequence only grows: the server refuses a record whose sequence is not
//! above the stored one, and a client never accepts a lower sequence than it
//! has seen (a replayed old record is a rollback attack).

use minicbor::Decoder;

use crate::cbor::{encoder, expect_end, ok, required, MapReader};
use crate::error::DecodeError;
use crate::hash::ManifestId;
use crate::names::{validate_app, validate_channel, validate_version};

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
}

impl ChannelRecord {
    /// Canonical bytes.
    pub fn encode(&self) -> Vec<u8> {
        let mut e = encoder();
        ok(e.map(if self.expires_at.is_some() { 8 } else { 7 }));
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
        };
        if rec.encode() != bytes {
            return Err(DecodeError::invalid(WHAT, "not in canonical encoding"));
        }
        validate_app(&rec.app)?;
        validate_channel(&rec.channel)?;
        validate_version(&rec.version)?;
        Ok(rec)
    }

    /// True when the record has an expiry and `now` (unix seconds) is past it.
    pub fn is_expired(&self, now: u64) -> bool {
        self.expires_at.is_some_and(|x| now > x)
    }
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
