//! The chunk-size tuning suite behind `ferry tune`: replays a version
//! history of an application under each chunker setting and counts what a
//! client would download per update and what the server would store.
//!
//! The model is the protocol's: an update from version i-1 to i downloads
//! the signed manifest of i (compressed against the manifest of i-1, as the
//! server sends it, or whole when that is not smaller) plus, in one chunk
//! stream, every distinct chunk of i that i-1 does not have
//! (zstd-compressed, or raw when that is smaller), each with its frame
//! header. The server stores every distinct
//! chunk of the history once, plus the manifests.

pub mod svg;

use std::collections::HashMap;
use std::fs::File;
use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{Context, Result};
use ferry_chunker::{hash_lengths, scan_tree, Chunker, ScanOptions};
use ferry_protocol::frame::{FRAME_HEADER_LEN, STREAM_HEADER_LEN};
use ferry_protocol::manifest_delta;
use ferry_protocol::signed::KIND_MANIFEST;
use ferry_protocol::{ChunkId, ChunkRef, ChunkerParams, Entry, EntryKind, Manifest, SecretKey};
use rayon::prelude::*;
use serde::Serialize;

/// The server's zstd level for manifests (server/src/manifest.rs).
const MANIFEST_LEVEL: i32 = 9;

/// How files are cut.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Method {
    /// FastCDC with these parameters (what Ferry uses).
    Cdc(ChunkerParams),
    /// Fixed-size blocks (a reference: no resynchronisation after an insert).
    Fixed(u32),
}

impl Method {
    pub fn label(&self) -> String {
        match self {
            Method::Cdc(p) => format!(
                "cdc {}/{}/{}",
                kib(p.min.into()),
                kib(p.avg.into()),
                kib(p.max.into())
            ),
            Method::Fixed(n) => format!("fixed {}", kib((*n).into())),
        }
    }
}

fn kib(n: u64) -> String {
    if n.is_multiple_of(1024) {
        format!("{}K", n / 1024)
    } else {
        n.to_string()
    }
}

/// What one setting (method, zstd level) gives over the whole history.
#[derive(Debug, Clone, Serialize)]
pub struct TuneRow {
    pub method: String,
    pub fixed: bool,
    pub min_chunk: u32,
    pub avg_chunk: u32,
    pub max_chunk: u32,
    pub zstd_level: i32,
    /// Bytes a client downloads for each consecutive update (chunk stream
    /// plus signed manifest), oldest first.
    pub update_bytes: Vec<u64>,
    /// Of those, the signed manifest's share on the wire, per update.
    pub manifest_bytes: Vec<u64>,
    pub total_update_bytes: u64,
    /// Distinct chunks of the whole history, compressed, plus manifests.
    pub store_bytes: u64,
    /// Chunk references in the newest version.
    pub chunks: u64,
    /// Distinct chunks of the whole history.
    pub distinct_chunks: u64,
    /// Chunk + hash throughput over all versions (MiB/s, all cores).
    pub chunk_mib_per_s: f64,
    /// zstd throughput over the distinct chunks (MiB/s, all cores).
    pub compress_mib_per_s: f64,
}

/// One version's tree: its files, read once at the start.
struct Tree {
    root: PathBuf,
    entries: Vec<Entry>,
    bytes: u64,
}

/// Where a chunk's bytes can be read back.
#[derive(Clone)]
struct Place {
    version: usize,
    file: usize,
    offset: u64,
    len: u32,
}

/// A version history loaded for tuning.
pub struct History {
    trees: Vec<Tree>,
}

impl History {
    /// Walks each folder once (as `push` would: validated paths, no
    /// special files), oldest first.
    pub fn load(dirs: &[PathBuf]) -> Result<History> {
        let mut trees = Vec::with_capacity(dirs.len());
        for d in dirs {
            let t = scan_tree(d, &ScanOptions::default())
                .with_context(|| format!("cannot scan {}", d.display()))?;
            trees.push(Tree {
                root: d.clone(),
                bytes: t.stats.bytes,
                entries: t.entries,
            });
        }
        Ok(History { trees })
    }

    pub fn total_bytes(&self) -> u64 {
        self.trees.iter().map(|t| t.bytes).sum()
    }

    /// Evaluates one chunking method at each zstd level.
    pub fn evaluate(&self, method: Method, levels: &[i32]) -> Result<Vec<TuneRow>> {
        let start = Instant::now();
        let mut versions = Vec::with_capacity(self.trees.len());
        for (vi, t) in self.trees.iter().enumerate() {
            versions.push(cut_tree(vi, t, method)?);
        }
        let chunk_secs = start.elapsed().as_secs_f64();

        // Every distinct chunk of the history, with one place to read it.
        let mut places: HashMap<ChunkId, Place> = HashMap::new();
        for v in &versions {
            for (id, p) in &v.places {
                places.entry(*id).or_insert_with(|| p.clone());
            }
        }
        let distinct: Vec<(ChunkId, Place)> = places.into_iter().collect();
        let distinct_raw: u64 = distinct.iter().map(|(_, p)| u64::from(p.len)).sum();

        // The manifest of each update on the wire, as the server sends it.
        let manifest_wire: Vec<u64> = versions
            .windows(2)
            .map(|w| {
                let (old, new) = (&w[0].envelope, &w[1].envelope);
                manifest_delta::encode(new, Some(old), MANIFEST_LEVEL)
                    .map_or(new.len(), |z| z.len().min(new.len())) as u64
            })
            .collect();

        let mut rows = Vec::with_capacity(levels.len());
        for &level in levels {
            let t0 = Instant::now();
            let sizes = self.compressed_sizes(&distinct, level)?;
            let compress_secs = t0.elapsed().as_secs_f64();

            let mut update_bytes = Vec::new();
            let mut manifest_bytes = Vec::new();
            for (w, &wire) in versions.windows(2).zip(&manifest_wire) {
                let (old, new) = (&w[0], &w[1]);
                let chunk_bytes: u64 = new
                    .places
                    .keys()
                    .filter(|id| !old.places.contains_key(id))
                    .map(|id| sizes[id] + FRAME_HEADER_LEN as u64)
                    .sum();
                update_bytes.push(wire + STREAM_HEADER_LEN as u64 + chunk_bytes);
                manifest_bytes.push(wire);
            }
            let (min, avg, max) = match method {
                Method::Cdc(p) => (p.min, p.avg, p.max),
                Method::Fixed(n) => (n, n, n),
            };
            rows.push(TuneRow {
                method: method.label(),
                fixed: matches!(method, Method::Fixed(_)),
                min_chunk: min,
                avg_chunk: avg,
                max_chunk: max,
                zstd_level: level,
                total_update_bytes: update_bytes.iter().sum(),
                update_bytes,
                manifest_bytes,
                store_bytes: sizes.values().sum::<u64>()
                    + versions
                        .iter()
                        .map(|v| v.envelope.len() as u64)
                        .sum::<u64>(),
                chunks: versions.last().map_or(0, |v| v.chunk_refs),
                distinct_chunks: distinct.len() as u64,
                chunk_mib_per_s: mib_per_s(self.total_bytes(), chunk_secs),
                compress_mib_per_s: mib_per_s(distinct_raw, compress_secs),
            });
        }
        Ok(rows)
    }

    /// Compressed size of each distinct chunk, as push would upload it.
    fn compressed_sizes(
        &self,
        distinct: &[(ChunkId, Place)],
        level: i32,
    ) -> Result<HashMap<ChunkId, u64>> {
        distinct
            .par_iter()
            .map(|(id, p)| {
                let t = &self.trees[p.version];
                let path = t.root.join(&t.entries[p.file].path);
                let data = read_at(&path, p.offset, p.len)?;
                let (_, payload) = ferry_protocol::chunk::compress(&data, level);
                Ok((*id, payload.len() as u64))
            })
            .collect()
    }
}

fn mib_per_s(bytes: u64, secs: f64) -> f64 {
    if secs > 0.0 {
        bytes as f64 / (1024.0 * 1024.0) / secs
    } else {
        0.0
    }
}

/// One version cut by one method.
struct Cut {
    places: HashMap<ChunkId, Place>,
    chunk_refs: u64,
    /// The signed manifest envelope, as stored.
    envelope: Vec<u8>,
}

fn cut_tree(vi: usize, tree: &Tree, method: Method) -> Result<Cut> {
    let cdc = match method {
        Method::Cdc(p) => Some(Chunker::new(p)?),
        Method::Fixed(_) => None,
    };
    let cut: Vec<Option<Vec<ChunkRef>>> = tree
        .entries
        .par_iter()
        .with_max_len(1)
        .map(|e| -> Result<Option<Vec<ChunkRef>>> {
            if !matches!(e.kind, EntryKind::File { .. }) {
                return Ok(None);
            }
            let path = tree.root.join(&e.path);
            let f = File::open(&path).with_context(|| format!("cannot read {}", path.display()))?;
            let refs = match (&cdc, method) {
                (Some(c), _) => c.chunk_reader(f),
                (None, Method::Fixed(n)) => fixed_chunks(f, n),
                (None, Method::Cdc(_)) => unreachable!("cdc has a chunker"),
            }
            .with_context(|| format!("cannot read {}", path.display()))?;
            Ok(Some(refs))
        })
        .collect::<Result<_>>()?;

    let mut places = HashMap::new();
    let mut chunk_refs = 0;
    let mut entries = Vec::with_capacity(tree.entries.len());
    for (fi, (e, refs)) in tree.entries.iter().zip(cut).enumerate() {
        let kind = match (&e.kind, refs) {
            (EntryKind::File { exec, .. }, Some(refs)) => {
                let mut offset = 0u64;
                for r in &refs {
                    places.entry(r.id).or_insert(Place {
                        version: vi,
                        file: fi,
                        offset,
                        len: r.len,
                    });
                    offset += u64::from(r.len);
                }
                chunk_refs += refs.len() as u64;
                EntryKind::File {
                    exec: *exec,
                    size: offset,
                    chunks: refs,
                }
            }
            (k, _) => k.clone(),
        };
        entries.push(Entry {
            path: e.path.clone(),
            kind,
        });
    }
    let manifest = Manifest {
        app: "tune".into(),
        version: format!("v{vi}"),
        params: match method {
            Method::Cdc(p) => p,
            Method::Fixed(_) => ChunkerParams::default(),
        },
        created_at: 0,
        entries,
        entry_point: None,
    };
    // A throwaway key: only the envelope's size matters here.
    let key = SecretKey::from_seed([0x7e; 32]);
    let envelope = key.sign(KIND_MANIFEST, manifest.encode()).encode();
    Ok(Cut {
        places,
        chunk_refs,
        envelope,
    })
}

/// Cuts a stream into fixed-size blocks and hashes them.
fn fixed_chunks<R: std::io::Read>(mut r: R, size: u32) -> std::io::Result<Vec<ChunkRef>> {
    let block = size as usize;
    // About 4 MiB at a time (at least one block): bounded memory per file.
    let mut buf = vec![0u8; block * (4usize << 20).div_ceil(block).max(1)];
    let mut out = Vec::new();
    loop {
        let mut filled = 0;
        while filled < buf.len() {
            match r.read(&mut buf[filled..]) {
                Ok(0) => break,
                Ok(n) => filled += n,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        let lens: Vec<u32> = buf[..filled]
            .chunks(block)
            .map(|c| c.len() as u32)
            .collect();
        out.extend(hash_lengths(&buf[..filled], &lens));
        if filled < buf.len() {
            return Ok(out);
        }
    }
}

fn read_at(path: &Path, offset: u64, len: u32) -> Result<Vec<u8>> {
    use std::os::unix::fs::FileExt;
    let f = File::open(path).with_context(|| format!("cannot read {}", path.display()))?;
    let mut buf = vec![0u8; len as usize];
    f.read_exact_at(&mut buf, offset)
        .with_context(|| format!("{} changed while tuning", path.display()))?;
    Ok(buf)
}

/// FastCDC at each average size in KiB (min avg/4, max avg*4).
pub fn cdc_methods(avgs_kib: &[u32]) -> Result<Vec<Method>> {
    let mut out = Vec::new();
    for &a in avgs_kib {
        out.push(Method::Cdc(
            ChunkerParams::with_avg(a * 1024)
                .with_context(|| format!("--avg {a}: not a valid average chunk size"))?,
        ));
    }
    Ok(out)
}

#[cfg(test)]
mod tests;
