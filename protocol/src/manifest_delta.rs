//! Manifests on the wire, compressed: zstd, with the client's current
//! manifest envelope as a raw-content dictionary when it has one. An update
//! keeps most entries (unchanged files, unchanged chunk lists) byte for
//! byte, so the new manifest costs little more than its changed entries.
//!
//! The result decodes to the exact signed envelope bytes; the client then
//! checks them as it checks an uncompressed manifest (hash, signature).

use crate::error::DecodeError;
use crate::manifest::MAX_MANIFEST_BYTES;

/// Content type of a compressed manifest envelope.
pub const CONTENT_TYPE: &str = "application/x-ferry-manifest-zstd";
/// Response header naming the manifest whose envelope is the dictionary.
pub const BASE_HEADER: &str = "x-ferry-delta-base";
/// Largest decoded size accepted: a manifest body plus envelope overhead.
pub const MAX_DECODED: usize = MAX_MANIFEST_BYTES + 64 * 1024;
/// Window of 128 MiB: every dictionary and manifest fits in it.
const WINDOW_LOG: u32 = 27;
const WHAT: &str = "compressed manifest";

/// Compresses `envelope` at `level`, against `base` when given.
pub fn encode(envelope: &[u8], base: Option<&[u8]>, level: i32) -> Result<Vec<u8>, DecodeError> {
    let err = |e: std::io::Error| DecodeError::invalid(WHAT, e.to_string());
    let mut c = zstd::bulk::Compressor::with_dictionary(level, base.unwrap_or(&[])).map_err(err)?;
    let span = envelope.len() + base.map_or(0, <[u8]>::len);
    let log = (usize::BITS - span.max(1024).leading_zeros()).min(WINDOW_LOG);
    c.set_parameter(zstd::zstd_safe::CParameter::WindowLog(log))
        .map_err(err)?;
    c.include_contentsize(true).map_err(err)?;
    c.compress(envelope).map_err(err)
}

/// Decompresses what [`encode`] made. Refuses a frame that does not declare
/// its size, declares more than [`MAX_DECODED`], or decodes to another size.
pub fn decode(data: &[u8], base: Option<&[u8]>) -> Result<Vec<u8>, DecodeError> {
    let size = match zstd::zstd_safe::get_frame_content_size(data) {
        Ok(Some(n)) => n,
        Ok(None) => {
            return Err(DecodeError::invalid(
                WHAT,
                "frame does not declare its size",
            ))
        }
        Err(_) => return Err(DecodeError::invalid(WHAT, "not a zstd frame")),
    };
    if size > MAX_DECODED as u64 {
        return Err(DecodeError::TooLarge {
            what: WHAT,
            len: usize::try_from(size).unwrap_or(usize::MAX),
            max: MAX_DECODED,
        });
    }
    let err = |e: std::io::Error| DecodeError::invalid(WHAT, e.to_string());
    let mut d = zstd::bulk::Decompressor::with_dictionary(base.unwrap_or(&[])).map_err(err)?;
    d.set_parameter(zstd::zstd_safe::DParameter::WindowLogMax(WINDOW_LOG))
        .map_err(err)?;
    let out = d.decompress(data, size as usize).map_err(err)?;
    if out.len() as u64 != size {
        return Err(DecodeError::invalid(
            WHAT,
            format!("decoded {} bytes, frame declared {size}", out.len()),
        ));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn envelope(seed: u8, n: usize) -> Vec<u8> {
        (0..n)
            .map(|i| (i as u8).wrapping_mul(31).wrapping_add(seed) ^ (i >> 7) as u8)
            .collect()
    }

    #[test]
    fn round_trips_with_and_without_a_base() {
        let old = envelope(1, 200_000);
        let mut new = old.clone();
        new[100_000..100_050].fill(9);
        for base in [None, Some(&old[..])] {
            let z = encode(&new, base, 9).unwrap();
            assert_eq!(decode(&z, base).unwrap(), new);
        }
        let delta = encode(&new, Some(&old), 9).unwrap();
        assert!(
            delta.len() < 500,
            "a small edit costs little: {}",
            delta.len()
        );
    }

    #[test]
    fn the_wrong_base_fails_or_changes_the_bytes() {
        let old = envelope(1, 50_000);
        let other = envelope(2, 50_000);
        let z = encode(&old, Some(&old), 9).unwrap();
        assert!(decode(&z, Some(&other)).map_or(true, |d| d != old));
    }

    #[test]
    fn garbage_and_undeclared_sizes_are_refused() {
        assert!(decode(b"not zstd at all", None).is_err());
        let mut c = zstd::bulk::Compressor::new(3).unwrap();
        c.include_contentsize(false).unwrap();
        let z = c.compress(b"hello").unwrap();
        assert!(decode(&z, None).is_err());
    }
}
