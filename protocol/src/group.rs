//! Group frames: a run of consecutive requested chunks sent as one zstd
//! frame, optionally compressed against a *reference*: a byte range of a
//! file of the version the client runs now (`have` in the fetch request).
//!
//! Chunks of a rebuilt native library or an edited text file are new, but
//! they resemble the old file around the same place. A zstd frame with that
//! old range as a raw-content prefix (`--patch-from`, but local and bounded)
//! costs a fraction of the chunks compressed one by one, and the client
//! already holds the reference bytes. Without a reference, a group still
//! shares compression context across small chunks.
//!
//! ```text
//! group payload = count:u32le  ref_entry:u32le  ref_offset:u64le  ref_len:u32le  zstd frame
//! ```
//!
//! - `count` consecutive chunks of the request, starting at the frame's id;
//!   the frame's `raw_len` is the sum of their lengths.
//! - `ref_entry` = 0xFFFFFFFF: no reference (`ref_offset` and `ref_len` 0).
//!   Otherwise an index into the entries of the client's `have` manifest;
//!   that entry is a file with `ref_offset + ref_len <= size`, and
//!   `1 <= ref_len <= MAX_REF_LEN`.
//! - The zstd frame declares its content size, equal to `raw_len`, and a
//!   window of at most 2^[`WINDOW_LOG_MAX`]; it decodes with the reference
//!   bytes as a raw-content prefix.
//!
//! The receiver splits the decoded bytes by the lengths it asked for and
//! verifies every chunk against its id, as for any other frame.

use crate::error::FrameError;

/// Bytes of the group header inside the payload.
pub const GROUP_HEADER_LEN: usize = 20;
/// Largest decoded size of one group.
pub const MAX_GROUP_RAW: u32 = 4 << 20;
/// The grid of file offsets Ferry's server cuts groups on (its default
/// `PlanParams::unit`). A client that splits its missing ids over several
/// requests splits them where a file or a cell of this grid changes, so
/// every group it is sent is one the server prepared at publish time (a
/// request that starts mid-cell gets a group compressed on demand).
pub const GROUP_CELL: u64 = 1 << 20;
/// Largest reference range.
pub const MAX_REF_LEN: u32 = 8 << 20;
/// Largest window a group frame may use (16 MiB: reference + content).
pub const WINDOW_LOG_MAX: u32 = 24;
const NO_REF: u32 = u32::MAX;

/// A byte range of a file in the client's current version.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct RefRange {
    /// Index of the file's entry in the `have` manifest.
    pub entry: u32,
    pub offset: u64,
    pub len: u32,
}

/// The fixed part of a group payload.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GroupHeader {
    pub count: u32,
    pub reference: Option<RefRange>,
}

impl GroupHeader {
    /// Writes the header; the zstd frame follows.
    pub fn encode(&self, out: &mut Vec<u8>) {
        let (entry, offset, len) = match self.reference {
            Some(r) => (r.entry, r.offset, r.len),
            None => (NO_REF, 0, 0),
        };
        out.extend_from_slice(&self.count.to_le_bytes());
        out.extend_from_slice(&entry.to_le_bytes());
        out.extend_from_slice(&offset.to_le_bytes());
        out.extend_from_slice(&len.to_le_bytes());
    }

    /// Splits a group payload into its header and zstd frame.
    pub fn parse(payload: &[u8]) -> Result<(GroupHeader, &[u8]), FrameError> {
        let bad = FrameError::Group;
        if payload.len() <= GROUP_HEADER_LEN {
            return Err(bad("group payload shorter than its header"));
        }
        let u32_at = |i: usize| {
            u32::from_le_bytes([payload[i], payload[i + 1], payload[i + 2], payload[i + 3]])
        };
        let count = u32_at(0);
        let entry = u32_at(4);
        let mut off = [0u8; 8];
        off.copy_from_slice(&payload[8..16]);
        let offset = u64::from_le_bytes(off);
        let len = u32_at(16);
        if count == 0 {
            return Err(bad("group of zero chunks"));
        }
        let reference = if entry == NO_REF {
            if offset != 0 || len != 0 {
                return Err(bad("group without a reference has a reference range"));
            }
            None
        } else {
            if len == 0 || len > MAX_REF_LEN {
                return Err(bad("group reference length out of range"));
            }
            if offset.checked_add(u64::from(len)).is_none() {
                return Err(bad("group reference range overflows"));
            }
            Some(RefRange { entry, offset, len })
        };
        Ok((
            GroupHeader { count, reference },
            &payload[GROUP_HEADER_LEN..],
        ))
    }
}

/// Most a group payload may exceed its raw size.
pub fn max_group_payload_len(raw_len: u32) -> u64 {
    crate::frame::max_payload_len(raw_len) + GROUP_HEADER_LEN as u64
}

/// Maps a zstd error code to a fixed message (zstd's own text adds nothing
/// a user can act on).
fn zerr(what: &'static str) -> impl Fn(usize) -> FrameError {
    move |_code| FrameError::Group(what)
}

/// Compresses `raw` at `level` against `reference` (may be empty).
pub fn compress(raw: &[u8], reference: &[u8], level: i32) -> Result<Vec<u8>, FrameError> {
    use zstd::zstd_safe::{CCtx, CParameter};
    let err = zerr("zstd could not compress the group");
    let mut c = CCtx::create();
    let span = (raw.len() + reference.len()).max(1 << 10);
    let log = (usize::BITS - (span - 1).leading_zeros()).clamp(10, WINDOW_LOG_MAX);
    c.set_parameter(CParameter::CompressionLevel(level))
        .map_err(&err)?;
    c.set_parameter(CParameter::WindowLog(log)).map_err(&err)?;
    c.set_parameter(CParameter::ContentSizeFlag(true))
        .map_err(&err)?;
    c.set_parameter(CParameter::ChecksumFlag(false))
        .map_err(&err)?;
    if !reference.is_empty() {
        c.ref_prefix(reference).map_err(&err)?;
    }
    let mut out = Vec::with_capacity(zstd::zstd_safe::compress_bound(raw.len()));
    c.compress2(&mut out, raw).map_err(&err)?;
    Ok(out)
}

/// Grows a buffer that is reused group after group to hold `len` bytes:
/// to a multiple of 256 KiB, not to twice its size (which would keep up to
/// twice a window alive in every kept buffer) nor to exactly `len` (the
/// next group, a few KiB longer, would move it to fresh pages, a page fault
/// per 4 KiB). Keeps nothing: the contents are about to be overwritten.
pub fn reserve_reusable(buf: &mut Vec<u8>, len: usize) {
    const STEP: usize = 256 * 1024;
    if buf.capacity() < len {
        *buf = Vec::with_capacity(len.next_multiple_of(STEP));
    }
}

/// Decodes a group's zstd frame against `reference` into exactly `raw_len`
/// bytes. Refuses frames that do not declare that size or want a larger
/// window than [`WINDOW_LOG_MAX`].
pub fn decompress(frame: &[u8], reference: &[u8], raw_len: u32) -> Result<Vec<u8>, FrameError> {
    let mut out = Vec::new();
    decompress_into(frame, reference, raw_len, &mut out)?;
    Ok(out)
}

/// [`decompress`] into `out` (cleared first), so a client decoding many
/// groups can reuse one buffer: a fresh multi-MiB buffer costs a page
/// fault per 4 KiB.
pub fn decompress_into(
    frame: &[u8],
    reference: &[u8],
    raw_len: u32,
    out: &mut Vec<u8>,
) -> Result<(), FrameError> {
    use zstd::zstd_safe::{DCtx, DParameter};
    let bad = FrameError::Group;
    match zstd::zstd_safe::get_frame_content_size(frame) {
        Ok(Some(n)) if n == u64::from(raw_len) => {}
        Ok(Some(_)) => {
            return Err(bad(
                "group frame declares another size than the frame header",
            ))
        }
        _ => {
            return Err(bad(
                "group payload is not a zstd frame with a declared size",
            ))
        }
    }
    let err = zerr("group frame does not decode against its reference");
    let mut d = DCtx::create();
    d.set_parameter(DParameter::WindowLogMax(WINDOW_LOG_MAX))
        .map_err(&err)?;
    if !reference.is_empty() {
        d.ref_prefix(reference).map_err(&err)?;
    }
    out.clear();
    reserve_reusable(out, raw_len as usize);
    d.decompress(out, frame).map_err(&err)?;
    if out.len() != raw_len as usize {
        return Err(bad("group frame decoded to another size"));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Incompressible on its own (xorshift), so only a reference helps.
    fn data(seed: u32, n: usize) -> Vec<u8> {
        let mut x = 0x9e37_79b9_7f4a_7c15u64 ^ u64::from(seed);
        (0..n)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                (x >> 32) as u8
            })
            .collect()
    }

    #[test]
    fn header_round_trip_and_checks() {
        for reference in [
            None,
            Some(RefRange {
                entry: 3,
                offset: 1 << 33,
                len: 4096,
            }),
        ] {
            let h = GroupHeader {
                count: 7,
                reference,
            };
            let mut b = Vec::new();
            h.encode(&mut b);
            b.push(0x28);
            let (back, rest) = GroupHeader::parse(&b).unwrap();
            assert_eq!(back, h);
            assert_eq!(rest, &[0x28]);
        }
        let mut b = Vec::new();
        GroupHeader {
            count: 0,
            reference: None,
        }
        .encode(&mut b);
        b.push(0);
        assert!(GroupHeader::parse(&b).is_err(), "zero chunks");
        assert!(
            GroupHeader::parse(&b[..GROUP_HEADER_LEN]).is_err(),
            "no frame"
        );
        let mut b = Vec::new();
        GroupHeader {
            count: 1,
            reference: Some(RefRange {
                entry: 0,
                offset: 0,
                len: MAX_REF_LEN + 1,
            }),
        }
        .encode(&mut b);
        b.push(0);
        assert!(GroupHeader::parse(&b).is_err(), "reference too long");
    }

    #[test]
    fn a_reference_makes_a_similar_group_cheap() {
        let old = data(1, 300_000);
        let mut new = old[1000..201_000].to_vec();
        new[50_000..50_100].fill(7);
        let plain = compress(&new, &[], 9).unwrap();
        let delta = compress(&new, &old, 9).unwrap();
        assert!(
            delta.len() * 20 < plain.len(),
            "{} vs {}",
            delta.len(),
            plain.len()
        );
        assert_eq!(decompress(&delta, &old, new.len() as u32).unwrap(), new);
        assert_eq!(decompress(&plain, &[], new.len() as u32).unwrap(), new);
    }

    #[test]
    fn wrong_reference_or_size_is_refused() {
        let old = data(1, 100_000);
        let new = old[..60_000].to_vec();
        let z = compress(&new, &old, 9).unwrap();
        let other = data(2, 100_000);
        assert!(decompress(&z, &other, 60_000).map_or(true, |d| d != new));
        assert!(decompress(&z, &old, 59_999).is_err());
        assert!(decompress(b"garbage", &old, 10).is_err());
    }
}
