//! Decoding group frames: read the reference range from the installed
//! version's file, decompress against it, split by the lengths the manifest
//! gives and verify every chunk. Blocking (runs on the blocking pool).
//!
//! A group that cannot be decoded here (the local file was changed, or the
//! server's reference is wrong) is no error: its chunks are fetched again
//! one by one, and only a failure of those counts.

use std::fs::{File, OpenOptions};
use std::os::unix::fs::{FileExt, OpenOptionsExt};
use std::path::PathBuf;
use std::sync::Mutex;

use ferry_protocol::group::{decompress_into, GroupHeader};
use ferry_protocol::{ChunkId, Manifest, ManifestId};

use super::run::{verify_runs, VerifiedRun};
use crate::error::ClientError;

/// The version a client runs now, as the reference for group frames.
#[derive(Debug)]
pub struct DeltaBase {
    pub manifest: ManifestId,
    /// Per entry of that manifest: the file on disk and its size (files
    /// only).
    files: Vec<Option<(PathBuf, u64)>>,
}

impl DeltaBase {
    /// The files of `manifest` under `tree` (the live `current` tree).
    pub fn new(manifest: &Manifest, tree: &std::path::Path) -> DeltaBase {
        let files = manifest
            .entries
            .iter()
            .map(|e| match &e.kind {
                ferry_protocol::EntryKind::File { size, .. } => Some((tree.join(&e.path), *size)),
                _ => None,
            })
            .collect();
        DeltaBase {
            manifest: manifest.id(),
            files,
        }
    }

    /// Reads the reference bytes a group names into the front of `buf`
    /// and returns their length, or says why not. `buf` only grows (new
    /// bytes zeroed once) and keeps its length between groups, so a kept
    /// buffer is not cleared and zeroed again for every window.
    fn read(&self, h: &GroupHeader, buf: &mut Vec<u8>) -> Result<usize, String> {
        let Some(r) = h.reference else {
            return Ok(0);
        };
        let (path, size) = self
            .files
            .get(r.entry as usize)
            .and_then(Option::as_ref)
            .ok_or_else(|| {
                format!(
                    "reference entry {} is not a file of the installed version",
                    r.entry
                )
            })?;
        if r.offset + u64::from(r.len) > *size {
            return Err(format!(
                "reference range ends past {} bytes of {}",
                size,
                path.display()
            ));
        }
        let f: File = OpenOptions::new()
            .read(true)
            .custom_flags(libc::O_NOFOLLOW)
            .open(path)
            .map_err(|e| format!("{}: {e}", path.display()))?;
        let len = r.len as usize;
        if buf.len() < len {
            ferry_protocol::group::reserve_reusable(buf, len);
            buf.resize(buf.capacity(), 0);
        }
        f.read_exact_at(&mut buf[..len], r.offset)
            .map_err(|e| format!("{}: {e}", path.display()))?;
        Ok(len)
    }
}

/// What became of one group: how many chunks verified (and went to the
/// sink), and those to fetch again as single frames (with the reason).
pub struct GroupOutcome {
    pub verified: usize,
    pub retry: Vec<(ChunkId, u32)>,
    pub problem: Option<String>,
}

/// A reference window and a decoded group, kept between groups.
#[derive(Default)]
struct Scratch {
    reference: Vec<u8>,
    out: Vec<u8>,
}

/// Scratch buffers not in use, at most [`KEPT_SCRATCH`]: one per decode
/// task that may run at once, so a sync does not allocate, zero and fault
/// in fresh buffers group after group (pyarrow: 40,000 page faults with
/// two kept for large groups only). Their size is bounded by the largest
/// group (a 8 MiB window and 4 MiB decoded). [`release_scratch`] frees
/// them when a fetch ends.
static SCRATCH: Mutex<Vec<Scratch>> = Mutex::new(Vec::new());
const KEPT_SCRATCH: usize = 4;

/// Frees the kept scratch buffers (an agent idles between syncs).
pub fn release_scratch() {
    if let Ok(mut kept) = SCRATCH.lock() {
        kept.clear();
    }
}

/// A scratch taken from [`SCRATCH`] (or new), given back when dropped.
struct Pooled {
    scratch: Scratch,
}

impl Pooled {
    /// The kept scratch with the smallest buffers that fit `window` and
    /// `out` bytes, or else the largest, so small groups leave the large
    /// buffers to large groups.
    fn take(window: usize, out: usize) -> Pooled {
        let scratch = SCRATCH
            .lock()
            .ok()
            .and_then(|mut kept| {
                let fits = |s: &Scratch| s.reference.len() >= window && s.out.capacity() >= out;
                let size = |s: &Scratch| s.reference.len() + s.out.capacity();
                let best = (0..kept.len())
                    .filter(|&i| fits(&kept[i]))
                    .min_by_key(|&i| size(&kept[i]))
                    .or_else(|| (0..kept.len()).max_by_key(|&i| size(&kept[i])))?;
                Some(kept.swap_remove(best))
            })
            .unwrap_or_default();
        Pooled { scratch }
    }
}

impl Drop for Pooled {
    fn drop(&mut self) {
        if let Ok(mut kept) = SCRATCH.lock() {
            if kept.len() < KEPT_SCRATCH {
                kept.push(std::mem::take(&mut self.scratch));
            }
        }
    }
}

/// Decodes the group `z` (header already parsed) covering `chunks` and
/// hands every run of chunks that verify to `sink`; only the sink's errors
/// are errors.
pub fn decode_group(
    base: Option<&DeltaBase>,
    header: &GroupHeader,
    z: &[u8],
    chunks: &[(ChunkId, u32)],
    sink: &mut dyn FnMut(VerifiedRun<'_>) -> Result<(), ClientError>,
) -> Result<GroupOutcome, ClientError> {
    let raw_len: u32 = chunks.iter().map(|c| c.1).sum();
    let window = header.reference.map_or(0, |r| r.len as usize);
    let mut pooled = Pooled::take(window, raw_len as usize);
    let scratch = &mut pooled.scratch;
    let all_retry = |problem: String| GroupOutcome {
        verified: 0,
        retry: chunks.to_vec(),
        problem: Some(problem),
    };
    let window = match (header.reference, base) {
        (None, _) => 0,
        (Some(_), None) => {
            return Ok(all_retry(
                "a reference, but this client sent no base version".into(),
            ))
        }
        (Some(_), Some(b)) => match b.read(header, &mut scratch.reference) {
            Ok(n) => n,
            Err(e) => return Ok(all_retry(e)),
        },
    };
    let reference = &scratch.reference[..window];
    if let Err(e) = decompress_into(z, reference, raw_len, &mut scratch.out) {
        return Ok(all_retry(e.to_string()));
    }
    let (runs, failed) = verify_runs(&scratch.out[..raw_len as usize], chunks);
    let mut verified = 0;
    for run in runs {
        verified += run.len();
        sink(run)?;
    }
    Ok(GroupOutcome {
        verified,
        problem: failed.first().map(|(_, e)| e.to_string()),
        retry: failed.into_iter().map(|(c, _)| c).collect(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use ferry_protocol::group::{compress, RefRange};
    use ferry_protocol::{ChunkRef, ChunkerParams, Entry, EntryKind};

    fn decode(
        base: Option<&DeltaBase>,
        header: &GroupHeader,
        z: &[u8],
        chunks: &[(ChunkId, u32)],
    ) -> GroupOutcome {
        decode_group(base, header, z, chunks, &mut |_| Ok(())).unwrap()
    }

    fn base_with(dir: &std::path::Path, data: &[u8]) -> DeltaBase {
        std::fs::write(dir.join("old.bin"), data).unwrap();
        let m = Manifest {
            app: "a".into(),
            version: "1".into(),
            params: ChunkerParams::default(),
            created_at: 0,
            entries: vec![Entry {
                path: "old.bin".into(),
                kind: EntryKind::File {
                    exec: false,
                    size: data.len() as u64,
                    chunks: vec![ChunkRef {
                        id: ChunkId::of(data),
                        len: data.len() as u32,
                    }],
                },
            }],
            entry_point: None,
        };
        DeltaBase::new(&m, dir)
    }

    #[test]
    fn decodes_against_the_local_file_and_retries_what_fails() {
        let dir = tempfile::tempdir().unwrap();
        // Not periodic, so every byte of the reference matters.
        let mut x = 0x9e37_79b9_7f4a_7c15u64;
        let old: Vec<u8> = (0..50_000)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                (x >> 32) as u8
            })
            .collect();
        let base = base_with(dir.path(), &old);
        let mut new = old[1000..41_000].to_vec();
        new[20_000] ^= 1;
        let chunks = [
            (ChunkId::of(&new[..15_000]), 15_000),
            (ChunkId::of(&new[15_000..]), 25_000),
        ];
        let header = GroupHeader {
            count: 2,
            reference: Some(RefRange {
                entry: 0,
                offset: 500,
                len: 45_000,
            }),
        };
        let z = compress(&new, &old[500..45_500], 9).unwrap();
        let out = decode(Some(&base), &header, &z, &chunks);
        assert_eq!(out.verified, 2);
        assert!(out.retry.is_empty() && out.problem.is_none());

        // The local file changed: nothing is trusted, everything is retried.
        let mut changed = old.clone();
        changed[5000..5100].fill(0);
        std::fs::write(dir.path().join("old.bin"), &changed).unwrap();
        let out = decode(Some(&base), &header, &z, &chunks);
        assert!(out.verified < 2);
        assert_eq!(out.verified + out.retry.len(), 2);

        // A reference past the file, or to a non-file, is retried too.
        let far = GroupHeader {
            count: 2,
            reference: Some(RefRange {
                entry: 0,
                offset: 40_000,
                len: 20_000,
            }),
        };
        assert_eq!(decode(Some(&base), &far, &z, &chunks).retry.len(), 2);
        let none = GroupHeader {
            count: 2,
            reference: Some(RefRange {
                entry: 5,
                offset: 0,
                len: 10,
            }),
        };
        assert_eq!(decode(Some(&base), &none, &z, &chunks).retry.len(), 2);
        assert_eq!(decode(None, &header, &z, &chunks).retry.len(), 2);
    }
}
