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

use ferry_protocol::group::{decompress, GroupHeader};
use ferry_protocol::{ChunkId, Manifest, ManifestId, VerifiedChunk};

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

    /// Reads the reference bytes a group names, or says why not.
    fn read(&self, h: &GroupHeader) -> Result<Vec<u8>, String> {
        let Some(r) = h.reference else {
            return Ok(Vec::new());
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
        let mut buf = vec![0u8; r.len as usize];
        f.read_exact_at(&mut buf, r.offset)
            .map_err(|e| format!("{}: {e}", path.display()))?;
        Ok(buf)
    }
}

/// What became of one group: the chunks that verified, and those to fetch
/// again as single frames (with the reason).
pub struct GroupOutcome {
    pub verified: Vec<VerifiedChunk>,
    pub retry: Vec<(ChunkId, u32)>,
    pub problem: Option<String>,
}

/// Decodes the group `z` (header already parsed) covering `chunks`.
pub fn decode_group(
    base: Option<&DeltaBase>,
    header: &GroupHeader,
    z: &[u8],
    chunks: &[(ChunkId, u32)],
) -> GroupOutcome {
    let raw_len: u32 = chunks.iter().map(|c| c.1).sum();
    let all_retry = |problem: String| GroupOutcome {
        verified: Vec::new(),
        retry: chunks.to_vec(),
        problem: Some(problem),
    };
    let reference = match (header.reference, base) {
        (None, _) => Vec::new(),
        (Some(_), None) => {
            return all_retry("a reference, but this client sent no base version".into())
        }
        (Some(_), Some(b)) => match b.read(header) {
            Ok(r) => r,
            Err(e) => return all_retry(e),
        },
    };
    let data = match decompress(z, &reference, raw_len) {
        Ok(d) => d,
        Err(e) => return all_retry(e.to_string()),
    };
    let mut out = GroupOutcome {
        verified: Vec::with_capacity(chunks.len()),
        retry: Vec::new(),
        problem: None,
    };
    let mut at = 0usize;
    for &(id, len) in chunks {
        let piece = data[at..at + len as usize].to_vec();
        at += len as usize;
        match VerifiedChunk::verify(id, piece) {
            Ok(c) => out.verified.push(c),
            Err(e) => {
                out.problem.get_or_insert(e.to_string());
                out.retry.push((id, len));
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use ferry_protocol::group::{compress, RefRange};
    use ferry_protocol::{ChunkRef, ChunkerParams, Entry, EntryKind};

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
        let out = decode_group(Some(&base), &header, &z, &chunks);
        assert_eq!(out.verified.len(), 2);
        assert!(out.retry.is_empty() && out.problem.is_none());

        // The local file changed: nothing is trusted, everything is retried.
        let mut changed = old.clone();
        changed[5000..5100].fill(0);
        std::fs::write(dir.path().join("old.bin"), &changed).unwrap();
        let out = decode_group(Some(&base), &header, &z, &chunks);
        assert!(out.verified.len() < 2);
        assert_eq!(out.verified.len() + out.retry.len(), 2);

        // A reference past the file, or to a non-file, is retried too.
        let far = GroupHeader {
            count: 2,
            reference: Some(RefRange {
                entry: 0,
                offset: 40_000,
                len: 20_000,
            }),
        };
        assert_eq!(decode_group(Some(&base), &far, &z, &chunks).retry.len(), 2);
        let none = GroupHeader {
            count: 2,
            reference: Some(RefRange {
                entry: 5,
                offset: 0,
                len: 10,
            }),
        };
        assert_eq!(decode_group(Some(&base), &none, &z, &chunks).retry.len(), 2);
        assert_eq!(decode_group(None, &header, &z, &chunks).retry.len(), 2);
    }
}
