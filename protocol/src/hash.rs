//! 32-byte BLAKE3 identifiers with hex `Display`/`FromStr`.
//!
//! Distinct newtypes keep a chunk id from being used where a manifest id is
//! expected; both are BLAKE3 of *uncompressed* canonical bytes.

use std::fmt;
use std::str::FromStr;

use crate::error::ParseIdError;

macro_rules! hash_id {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub struct $name(pub [u8; 32]);

        impl $name {
            /// Length of the id in bytes.
            pub const LEN: usize = 32;

            /// BLAKE3 of `data`.
            pub fn of(data: &[u8]) -> Self {
                Self(*blake3::hash(data).as_bytes())
            }

            /// The raw bytes.
            pub fn as_bytes(&self) -> &[u8; 32] {
                &self.0
            }

            /// Builds an id from a slice that must be exactly 32 bytes long.
            pub fn from_slice(bytes: &[u8]) -> Result<Self, ParseIdError> {
                let arr: [u8; 32] = bytes
                    .try_into()
                    .map_err(|_| ParseIdError::Length(bytes.len()))?;
                Ok(Self(arr))
            }

            /// Lowercase hex, 64 characters.
            pub fn to_hex(&self) -> String {
                let mut s = String::with_capacity(64);
                for b in self.0 {
                    s.push(char::from(HEX[(b >> 4) as usize]));
                    s.push(char::from(HEX[(b & 15) as usize]));
                }
                s
            }

            /// A short prefix for logs and messages.
            pub fn short(&self) -> String {
                self.to_hex()[..12].to_string()
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.to_hex())
            }
        }

        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "{}({})", stringify!($name), self.short())
            }
        }

        impl FromStr for $name {
            type Err = ParseIdError;
            fn from_str(s: &str) -> Result<Self, Self::Err> {
                Ok(Self(parse_hex32(s)?))
            }
        }
    };
}

const HEX: &[u8; 16] = b"0123456789abcdef";

/// Parses exactly 64 hex digits (either case) into 32 bytes.
pub fn parse_hex32(s: &str) -> Result<[u8; 32], ParseIdError> {
    let bytes = s.as_bytes();
    if bytes.len() != 64 {
        return Err(ParseIdError::HexLength(bytes.len()));
    }
    let mut out = [0u8; 32];
    for (i, pair) in bytes.chunks_exact(2).enumerate() {
        out[i] = (hex_val(pair[0])? << 4) | hex_val(pair[1])?;
    }
    Ok(out)
}

fn hex_val(c: u8) -> Result<u8, ParseIdError> {
    match c {
        b'0'..=b'9' => Ok(c - b'0'),
        b'a'..=b'f' => Ok(c - b'a' + 10),
        b'A'..=b'F' => Ok(c - b'A' + 10),
        _ => Err(ParseIdError::HexDigit(char::from(c))),
    }
}

hash_id!(
    /// BLAKE3 of a chunk's uncompressed bytes.
    ChunkId
);
hash_id!(
    /// BLAKE3 of a version manifest's canonical body bytes.
    ManifestId
);
hash_id!(
    /// BLAKE3 of a file's chunk list: equal ids mean equal contents.
    FileId
);

/// Splits a byte string of concatenated 32-byte ids into chunk ids.
pub fn ids_from_bytes(bytes: &[u8]) -> Result<Vec<ChunkId>, ParseIdError> {
    if !bytes.len().is_multiple_of(32) {
        return Err(ParseIdError::ListLength(bytes.len()));
    }
    Ok(bytes
        .chunks_exact(32)
        .map(|c| {
            let mut a = [0u8; 32];
            a.copy_from_slice(c);
            ChunkId(a)
        })
        .collect())
}

/// Concatenates ids into one byte string (the wire form of an id list).
pub fn ids_to_bytes(ids: &[ChunkId]) -> Vec<u8> {
    let mut out = Vec::with_capacity(ids.len() * 32);
    for id in ids {
        out.extend_from_slice(&id.0);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hex_round_trip() {
        let id = ChunkId::of(b"hello");
        let back: ChunkId = id.to_hex().parse().unwrap();
        assert_eq!(id, back);
        assert_eq!(
            id.to_hex(),
            "ea8f163db38682925e4491c5e58d4bb3506ef8c14eb78a86e908c5624a67200f"
        );
    }

    #[test]
    fn bad_hex_is_rejected_with_reason() {
        assert!(matches!(
            "abc".parse::<ChunkId>(),
            Err(ParseIdError::HexLength(3))
        ));
        let s = "g".repeat(64);
        assert!(matches!(
            s.parse::<ChunkId>(),
            Err(ParseIdError::HexDigit('g'))
        ));
    }

    #[test]
    fn id_lists() {
        let ids = vec![ChunkId::of(b"a"), ChunkId::of(b"b")];
        assert_eq!(ids_from_bytes(&ids_to_bytes(&ids)).unwrap(), ids);
        assert!(ids_from_bytes(&[0u8; 33]).is_err());
    }
}
