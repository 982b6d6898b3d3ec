//! The stored form of a chunk: `codec:u8 raw_len:u32le payload`. The payload
//! is what the push client sent (zstd or raw), served as is: no
//! recompression per request.

use ferry_protocol::chunk::decode_payload;
use ferry_protocol::{ChunkError, ChunkId, Codec, VerifiedChunk};

use crate::error::StoreError;

/// A chunk ready to store: its payload was decoded and hashed to `id`.
#[derive(Debug, Clone)]
pub struct StoredChunk {
    id: ChunkId,
    codec: Codec,
    raw_len: u32,
    payload: Vec<u8>,
}

impl StoredChunk {
    /// Decodes the payload, checks its hash and keeps the payload as sent.
    pub fn verify(
        id: ChunkId,
        codec: Codec,
        raw_len: u32,
        payload: Vec<u8>,
    ) -> Result<StoredChunk, ChunkError> {
        decode_payload(id, codec, raw_len, &payload)?;
        Ok(StoredChunk {
            id,
            codec,
            raw_len,
            payload,
        })
    }

    /// Wraps already verified bytes, compressing them at `level`.
    pub fn from_verified(chunk: &VerifiedChunk, level: i32) -> StoredChunk {
        let (codec, payload) = ferry_protocol::chunk::compress(chunk.data(), level);
        StoredChunk {
            id: chunk.id(),
            codec,
            raw_len: chunk.data().len() as u32,
            payload,
        }
    }

    pub fn id(&self) -> ChunkId {
        self.id
    }

    pub fn raw_len(&self) -> u32 {
        self.raw_len
    }

    pub fn payload_len(&self) -> usize {
        self.payload.len()
    }

    /// The stored value, `codec raw_len payload`: what every engine keeps
    /// under the chunk's id (see [`parse_value`]).
    pub fn value(&self) -> Vec<u8> {
        let mut v = Vec::with_capacity(5 + self.payload.len());
        v.push(self.codec as u8);
        v.extend_from_slice(&self.raw_len.to_le_bytes());
        v.extend_from_slice(&self.payload);
        v
    }

    /// `codec (1) || raw len (u32 le) || stored len (u32 le) || stored at
    /// (u64 le, unix s)`.
    pub(crate) fn index_value(&self, stored_at: u64) -> [u8; 17] {
        let mut v = [0u8; 17];
        v[0] = self.codec as u8;
        v[1..5].copy_from_slice(&self.raw_len.to_le_bytes());
        v[5..9].copy_from_slice(&(self.payload.len() as u32).to_le_bytes());
        v[9..17].copy_from_slice(&stored_at.to_le_bytes());
        v
    }
}

/// Splits a stored value into (codec, raw_len, payload) without copying.
pub fn parse_value<'a>(id: &ChunkId, v: &'a [u8]) -> Result<(Codec, u32, &'a [u8]), StoreError> {
    if v.len() < 5 {
        return Err(StoreError::Corrupt(format!("chunk {id}: value too short")));
    }
    let codec = Codec::from_u8(v[0])
        .ok_or_else(|| StoreError::Corrupt(format!("chunk {id}: unknown codec {}", v[0])))?;
    let raw_len = u32::from_le_bytes([v[1], v[2], v[3], v[4]]);
    Ok((codec, raw_len, &v[5..]))
}
