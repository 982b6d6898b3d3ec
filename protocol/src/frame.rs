//! The chunk stream: how chunks travel in a batched fetch response and in a
//! push upload. Binary, not CBOR, so a client can verify and write each chunk
//! as it arrives and resume after the last complete frame.
//!
//! ```text
//! stream = "FRYS" version:u8 (1) 0 0 0  frame* end
//! frame  = id:[32] codec:u8 raw_len:u32le payload_len:u32le payload
//! codec  = 0 raw | 1 zstd | 2 group (fetch responses only: see [`crate::group`])
//!        | 0xFE missing (server lacks the id; lengths 0)
//! end    = 32 zero bytes, codec 0xFF, lengths 0
//! ```
//!
//! The decoder works on byte slices with no IO and tells "incomplete" (need
//! more bytes: `Ok(None)`) from "invalid" (`Err`).

use crate::error::FrameError;
use crate::hash::ChunkId;
use crate::params::MAX_MAX;

/// First four bytes of every chunk stream.
pub const STREAM_MAGIC: [u8; 4] = *b"FRYS";
/// Stream format version.
pub const STREAM_VERSION: u8 = 1;
/// Length of the stream header.
pub const STREAM_HEADER_LEN: usize = 8;
/// Length of a frame header.
pub const FRAME_HEADER_LEN: usize = 41;
/// Largest uncompressed chunk a frame may carry.
pub const MAX_RAW_LEN: u32 = MAX_MAX;

const CODEC_GROUP: u8 = 2;
const CODEC_MISSING: u8 = 0xFE;
const CODEC_END: u8 = 0xFF;

/// How a chunk's payload is encoded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum Codec {
    Raw = 0,
    Zstd = 1,
}

impl Codec {
    pub fn from_u8(b: u8) -> Option<Codec> {
        match b {
            0 => Some(Codec::Raw),
            1 => Some(Codec::Zstd),
            _ => None,
        }
    }
}

/// Most a zstd payload may exceed its raw size (zstd's worst-case bound is
/// well inside this); anything larger is not a real compressed chunk.
pub fn max_payload_len(raw_len: u32) -> u64 {
    u64::from(raw_len) + u64::from(raw_len) / 64 + 1024
}

/// One decoded frame, borrowing its payload from the input buffer.
#[derive(Debug, PartialEq, Eq)]
pub enum Frame<'a> {
    Chunk {
        id: ChunkId,
        codec: Codec,
        raw_len: u32,
        payload: &'a [u8],
    },
    /// Several consecutive requested chunks, starting at `first`, in one
    /// payload (`crate::group`): `raw_len` is their total length.
    Group {
        first: ChunkId,
        raw_len: u32,
        payload: &'a [u8],
    },
    /// The sender does not have this chunk.
    Missing { id: ChunkId },
    /// The stream is complete.
    End,
}

/// Writes the stream header.
pub fn encode_header(out: &mut Vec<u8>) {
    out.extend_from_slice(&STREAM_MAGIC);
    out.extend_from_slice(&[STREAM_VERSION, 0, 0, 0]);
}

/// Writes a frame header; the caller appends `payload_len` bytes of payload.
pub fn encode_frame_header(
    out: &mut Vec<u8>,
    id: &ChunkId,
    codec: Codec,
    raw_len: u32,
    payload_len: u32,
) {
    out.extend_from_slice(&id.0);
    out.push(codec as u8);
    out.extend_from_slice(&raw_len.to_le_bytes());
    out.extend_from_slice(&payload_len.to_le_bytes());
}

/// Writes a whole chunk frame.
pub fn encode_frame(out: &mut Vec<u8>, id: &ChunkId, codec: Codec, raw_len: u32, payload: &[u8]) {
    encode_frame_header(out, id, codec, raw_len, payload.len() as u32);
    out.extend_from_slice(payload);
}

/// Writes a "missing" frame.
pub fn encode_missing(out: &mut Vec<u8>, id: &ChunkId) {
    out.extend_from_slice(&id.0);
    out.push(CODEC_MISSING);
    out.extend_from_slice(&[0; 8]);
}

/// Writes a group frame: `header` then the zstd frame `z`.
pub fn encode_group(
    out: &mut Vec<u8>,
    first: &ChunkId,
    raw_len: u32,
    header: &crate::group::GroupHeader,
    z: &[u8],
) {
    out.extend_from_slice(&first.0);
    out.push(CODEC_GROUP);
    out.extend_from_slice(&raw_len.to_le_bytes());
    let len = (crate::group::GROUP_HEADER_LEN + z.len()) as u32;
    out.extend_from_slice(&len.to_le_bytes());
    header.encode(out);
    out.extend_from_slice(z);
}

/// Writes the end frame.
pub fn encode_end(out: &mut Vec<u8>) {
    out.extend_from_slice(&[0; 32]);
    out.push(CODEC_END);
    out.extend_from_slice(&[0; 8]);
}

/// Incremental decoder of one chunk stream.
#[derive(Debug, Default)]
pub struct StreamDecoder {
    header_seen: bool,
    ended: bool,
}

impl StreamDecoder {
    pub fn new() -> Self {
        Self::default()
    }

    /// True once the end frame was decoded.
    pub fn is_ended(&self) -> bool {
        self.ended
    }

    /// Decodes the next frame from the start of `buf`. Returns the frame and
    /// how many bytes it used, `Ok(None)` when `buf` holds only part of it.
    pub fn next<'a>(&mut self, buf: &'a [u8]) -> Result<Option<(Frame<'a>, usize)>, FrameError> {
        if self.ended {
            return if buf.is_empty() {
                Ok(None)
            } else {
                Err(FrameError::TrailingData)
            };
        }
        let mut start = 0;
        if !self.header_seen {
            if buf.len() < STREAM_HEADER_LEN {
                // Check what we have of the magic early, to fail fast.
                let n = buf.len().min(4);
                if buf[..n] != STREAM_MAGIC[..n] {
                    return Err(FrameError::BadMagic);
                }
                return Ok(None);
            }
            if buf[..4] != STREAM_MAGIC {
                return Err(FrameError::BadMagic);
            }
            if buf[4] != STREAM_VERSION {
                return Err(FrameError::BadVersion(buf[4]));
            }
            start = STREAM_HEADER_LEN;
        }
        let rest = &buf[start..];
        if rest.len() < FRAME_HEADER_LEN {
            return Ok(None);
        }
        let id = ChunkId::from_slice(&rest[..32]).map_err(|_| FrameError::Truncated)?;
        let codec = rest[32];
        let raw_len = u32::from_le_bytes([rest[33], rest[34], rest[35], rest[36]]);
        let payload_len = u32::from_le_bytes([rest[37], rest[38], rest[39], rest[40]]);
        let frame = match codec {
            CODEC_END | CODEC_MISSING => {
                if raw_len != 0 || payload_len != 0 {
                    return Err(FrameError::Invalid {
                        id: id.short(),
                        reason: "end or missing frame with nonzero lengths",
                    });
                }
                if codec == CODEC_END {
                    if id.0 != [0; 32] {
                        return Err(FrameError::Invalid {
                            id: id.short(),
                            reason: "end frame with nonzero id",
                        });
                    }
                    self.ended = true;
                    Frame::End
                } else {
                    Frame::Missing { id }
                }
            }
            CODEC_GROUP => {
                use crate::group::{max_group_payload_len, GROUP_HEADER_LEN, MAX_GROUP_RAW};
                if raw_len == 0 || raw_len > MAX_GROUP_RAW {
                    return Err(FrameError::TooLarge {
                        id: id.short(),
                        len: u64::from(raw_len),
                        max: u64::from(MAX_GROUP_RAW),
                    });
                }
                if (payload_len as usize) <= GROUP_HEADER_LEN
                    || u64::from(payload_len) > max_group_payload_len(raw_len)
                {
                    return Err(FrameError::Invalid {
                        id: id.short(),
                        reason: "group payload length does not fit the raw length",
                    });
                }
                let end = FRAME_HEADER_LEN + payload_len as usize;
                if rest.len() < end {
                    return Ok(None);
                }
                Frame::Group {
                    first: id,
                    raw_len,
                    payload: &rest[FRAME_HEADER_LEN..end],
                }
            }
            c => {
                let codec = Codec::from_u8(c).ok_or(FrameError::UnknownCodec {
                    id: id.short(),
                    codec: c,
                })?;
                if raw_len == 0 || raw_len > MAX_RAW_LEN {
                    return Err(FrameError::TooLarge {
                        id: id.short(),
                        len: u64::from(raw_len),
                        max: u64::from(MAX_RAW_LEN),
                    });
                }
                let ok_len = match codec {
                    Codec::Raw => payload_len == raw_len,
                    Codec::Zstd => {
                        payload_len > 0 && u64::from(payload_len) <= max_payload_len(raw_len)
                    }
                };
                if !ok_len {
                    return Err(FrameError::Invalid {
                        id: id.short(),
                        reason: "payload length does not fit the raw length",
                    });
                }
                let end = FRAME_HEADER_LEN + payload_len as usize;
                if rest.len() < end {
                    return Ok(None);
                }
                Frame::Chunk {
                    id,
                    codec,
                    raw_len,
                    payload: &rest[FRAME_HEADER_LEN..end],
                }
            }
        };
        self.header_seen = true;
        let used = start
            + FRAME_HEADER_LEN
            + match &frame {
                Frame::Chunk { payload, .. } | Frame::Group { payload, .. } => payload.len(),
                _ => 0,
            };
        Ok(Some((frame, used)))
    }

    /// Call at end of input with what is left unconsumed: a stream must end
    /// with the end frame and nothing after it.
    pub fn finish(&self, leftover: &[u8]) -> Result<(), FrameError> {
        if !self.ended {
            return Err(FrameError::Truncated);
        }
        if !leftover.is_empty() {
            return Err(FrameError::TrailingData);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests;
