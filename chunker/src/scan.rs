//! Scanning a folder into manifest entries: the ingest path of `ferry push`.

use std::collections::HashSet;
use std::fs::{self, File};
use std::io::{self, Read};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use ferry_protocol::names::validate_rel_path;
use ferry_protocol::{ChunkRef, ChunkerParams, Entry, EntryKind};
use rayon::prelude::*;

use crate::cdc::Chunker;
use crate::error::ScanError;

/// Called with the number of bytes read, from any rayon thread.
pub type ProgressFn = Arc<dyn Fn(u64) + Send + Sync>;

/// How to scan.
#[derive(Clone, Default)]
pub struct ScanOptions {
    pub params: ChunkerParams,
    pub progress: Option<ProgressFn>,
}

/// Counts of a scan.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ScanStats {
    pub files: u64,
    pub dirs: u64,
    pub symlinks: u64,
    pub bytes: u64,
    pub chunks: u64,
    pub unique_chunks: u64,
    pub unique_bytes: u64,
    pub elapsed: Duration,
}

/// The entries of a tree, sorted by path as a manifest wants them.
#[derive(Debug, Clone)]
pub struct ScannedTree {
    pub entries: Vec<Entry>,
    pub stats: ScanStats,
}

/// A file's size and chunks (`None` for directories and symlinks).
type Chunked = Option<(u64, Vec<ChunkRef>)>;

enum Found {
    File { exec: bool },
    Dir,
    Symlink(String),
}

/// Walks `root`, chunks every regular file (in parallel) and returns the
/// entries. Symlinks are recorded, never followed.
pub fn scan_tree(root: &Path, opts: &ScanOptions) -> Result<ScannedTree, ScanError> {
    let start = Instant::now();
    let chunker = Chunker::new(opts.params)?;
    let meta = fs::metadata(root).map_err(|e| ScanError::io(root, e))?;
    if !meta.is_dir() {
        return Err(ScanError::NotADirectory(root.to_path_buf()));
    }
    let mut found = Vec::new();
    walk(root, "", &mut found)?;
    found.sort_by(|a, b| a.0.as_bytes().cmp(b.0.as_bytes()));

    let chunked: Vec<Result<Chunked, ScanError>> = found
        .par_iter()
        .with_max_len(1)
        .map(|(rel, kind)| match kind {
            Found::File { .. } => {
                let path = root.join(rel);
                let f = File::open(&path).map_err(|e| ScanError::io(&path, e))?;
                let reader = Counting {
                    inner: f,
                    progress: opts.progress.clone(),
                };
                let chunks = chunker
                    .chunk_reader(reader)
                    .map_err(|e| ScanError::io(&path, e))?;
                let size = chunks.iter().map(|c| u64::from(c.len)).sum();
                Ok(Some((size, chunks)))
            }
            _ => Ok(None),
        })
        .collect();

    let mut stats = ScanStats::default();
    let mut seen = HashSet::new();
    let mut entries = Vec::with_capacity(found.len());
    for ((path, kind), chunked) in found.into_iter().zip(chunked) {
        let kind = match (kind, chunked?) {
            (Found::File { exec }, Some((size, chunks))) => {
                stats.files += 1;
                stats.bytes += size;
                stats.chunks += chunks.len() as u64;
                for c in &chunks {
                    if seen.insert(c.id) {
                        stats.unique_chunks += 1;
                        stats.unique_bytes += u64::from(c.len);
                    }
                }
                EntryKind::File { exec, size, chunks }
            }
            (Found::Dir, _) => {
                stats.dirs += 1;
                EntryKind::Dir
            }
            (Found::Symlink(target), _) => {
                stats.symlinks += 1;
                EntryKind::Symlink { target }
            }
            (Found::File { .. }, None) => unreachable!("every file was chunked"),
        };
        entries.push(Entry { path, kind });
    }
    stats.elapsed = start.elapsed();
    Ok(ScannedTree { entries, stats })
}

fn walk(root: &Path, rel: &str, out: &mut Vec<(String, Found)>) -> Result<(), ScanError> {
    let dir = if rel.is_empty() {
        root.to_path_buf()
    } else {
        root.join(rel)
    };
    let rd = fs::read_dir(&dir).map_err(|e| ScanError::io(&dir, e))?;
    for item in rd {
        let item = item.map_err(|e| ScanError::io(&dir, e))?;
        let name = item.file_name();
        let full = item.path();
        let name = name
            .to_str()
            .ok_or_else(|| ScanError::NonUtf8(full.clone()))?;
        let child = if rel.is_empty() {
            name.to_string()
        } else {
            format!("{rel}/{name}")
        };
        validate_rel_path(&child).map_err(|e| ScanError::Unsupported {
            path: full.clone(),
            reason: e.to_string(),
        })?;
        let ft = item.file_type().map_err(|e| ScanError::io(&full, e))?;
        if ft.is_dir() {
            out.push((child.clone(), Found::Dir));
            walk(root, &child, out)?;
        } else if ft.is_file() {
            let meta = item.metadata().map_err(|e| ScanError::io(&full, e))?;
            out.push((
                child,
                Found::File {
                    exec: is_exec(&meta),
                },
            ));
        } else if ft.is_symlink() {
            let target = fs::read_link(&full).map_err(|e| ScanError::io(&full, e))?;
            let target = path_to_target(&full, target)?;
            out.push((child, Found::Symlink(target)));
        } else {
            return Err(ScanError::Special(full));
        }
    }
    Ok(())
}

fn path_to_target(link: &Path, target: PathBuf) -> Result<String, ScanError> {
    target
        .to_str()
        .map(str::to_owned)
        .ok_or_else(|| ScanError::NonUtf8(link.to_path_buf()))
}

#[cfg(unix)]
fn is_exec(meta: &fs::Metadata) -> bool {
    use std::os::unix::fs::PermissionsExt;
    meta.permissions().mode() & 0o111 != 0
}

#[cfg(not(unix))]
fn is_exec(_meta: &fs::Metadata) -> bool {
    false
}

/// Reports bytes read to the progress callback.
struct Counting {
    inner: File,
    progress: Option<ProgressFn>,
}

impl Read for Counting {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        if let Some(p) = &self.progress {
            p(n as u64);
        }
        Ok(n)
    }
}
