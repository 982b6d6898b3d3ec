//! Chunk payloads: zstd compression on the way in, bounded decompression and
//! hash verification on the way out. A [`VerifiedChunk`] can only be made by
//! checking that its bytes hash to its id, so unverified bytes cannot reach
//! a store or an install tree by accident.

use crate::error::ChunkError;
use crate::frame::Codec;
use crate::hash::ChunkId;

/// Chunk bytes whose BLAKE3 equals `id`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifiedChunk {
    id: ChunkId,
    data: Vec<u8>,
}

impl VerifiedChunk {
    /// Hashes `data` and accepts it only if it matches `id`.
    pub fn verify(id: ChunkId, data: Vec<u8>) -> Result<Self, ChunkError> {
        let actual = ChunkId::of(&data);
        if actual != id {
            return Err(ChunkError::HashMismatch {
                id: id.to_hex(),
                actual: actual.to_hex(),
            });
        }
        Ok(VerifiedChunk { id, data })
    }

    /// Hashes fresh bytes (from a local file, say): always verified.
    pub fn from_data(data: Vec<u8>) -> Self {
        VerifiedChunk {
            id: ChunkId::of(&data),
            data,
        }
    }

    pub fn id(&self) -> ChunkId {
        self.id
    }

    pub fn data(&self) -> &[u8] {
        &self.data
    }

    pub fn into_data(self) -> Vec<u8> {
        self.data
    }
}

/// Borrowed chunk bytes whose BLAKE3 equals `id`: what a client hands to
/// its writer when the bytes sit in a larger decoded buffer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct VerifiedSlice<'a> {
    id: ChunkId,
    data: &'a [u8],
}

impl<'a> VerifiedSlice<'a> {
    /// Hashes `data` and accepts it only if it matches `id`.
    pub fn verify(id: ChunkId, data: &'a [u8]) -> Result<Self, ChunkError> {
        let actual = ChunkId::of(data);
        if actual != id {
            return Err(ChunkError::HashMismatch {
                id: id.to_hex(),
                actual: actual.to_hex(),
            });
        }
        Ok(VerifiedSlice { id, data })
    }

    pub fn id(&self) -> ChunkId {
        self.id
    }

    pub fn data(&self) -> &'a [u8] {
        self.data
    }
}

impl VerifiedChunk {
    /// The same bytes, borrowed.
    pub fn as_slice(&self) -> VerifiedSlice<'_> {
        VerifiedSlice {
            id: self.id,
            data: &self.data,
        }
    }
}

/// Decodes a payload (decompressing at most `raw_len` bytes) and verifies it.
pub fn decode_payload(
    id: ChunkId,
    codec: Codec,
    raw_len: u32,
    payload: &[u8],
) -> Result<VerifiedChunk, ChunkError> {
    let data = match codec {
        Codec::Raw => payload.to_vec(),
        Codec::Zstd => zstd::bulk::decompress(payload, raw_len as usize).map_err(|e| {
            ChunkError::Decompress {
                id: id.to_hex(),
                reason: e.to_string(),
            }
        })?,
    };
    if data.len() as u64 != u64::from(raw_len) {
        return Err(ChunkError::LengthMismatch {
            id: id.to_hex(),
            expected: u64::from(raw_len),
            actual: data.len() as u64,
        });
    }
    VerifiedChunk::verify(id, data)
}

/// Compresses with zstd at `level`; keeps the raw bytes when compression
/// does not save anything (already-compressed data).
pub fn compress(data: &[u8], level: i32) -> (Codec, Vec<u8>) {
    match zstd::bulk::compress(data, level) {
        Ok(z) if z.len() < data.len() => (Codec::Zstd, z),
        _ => (Codec::Raw, data.to_vec()),
    }
}

/// Default zstd level for pushed (and so stored and served) chunks. Chunks
/// are compressed once, at push, and downloaded by every client: level 9
/// moves 5-7% fewer bytes than level 3 on real releases for about a quarter
/// of the compression speed (docs/benchmarks.md).
pub const DEFAULT_ZSTD_LEVEL: i32 = 9;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn compress_round_trip() {
        let data = b"hello hello hello hello hello hello hello".repeat(100);
        let (codec, payload) = compress(&data, 3);
        assert_eq!(codec, Codec::Zstd);
        let id = ChunkId::of(&data);
        let v = decode_payload(id, codec, data.len() as u32, &payload).unwrap();
        assert_eq!(v.data(), &data[..]);
    }

    #[test]
    fn incompressible_stays_raw() {
        let data: Vec<u8> = (0..4096u32)
            .map(|i| (i.wrapping_mul(2654435761) >> 13) as u8)
            .collect();
        let (codec, payload) = compress(&data, 3);
        if codec == Codec::Raw {
            assert_eq!(payload, data);
        }
    }

    #[test]
    fn wrong_hash_refused() {
        let data = b"abc".to_vec();
        let err = decode_payload(ChunkId::of(b"abd"), Codec::Raw, 3, &data).unwrap_err();
        assert!(matches!(err, ChunkError::HashMismatch { .. }));
    }

    #[test]
    fn decompression_bomb_bounded() {
        let data = vec![0u8; 1 << 20];
        let (_, z) = compress(&data, 3);
        // Claims a smaller raw length than the payload expands to.
        let err = decode_payload(ChunkId::of(&data), Codec::Zstd, 1000, &z).unwrap_err();
        assert!(matches!(err, ChunkError::Decompress { .. }));
    }
}
