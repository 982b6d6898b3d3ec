//! Scanning a folder into manifest entries: the ingest path of `ferry push`.

use std::cell::RefCell;
use std::collections::HashSet;
use std::fs::{self, File, OpenOptions};
use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use ferry_protocol::names::validate_rel_path;
use ferry_protocol::{ChunkRef, ChunkerParams, Entry, EntryKind};
use memmap2::Mmap;
use rayon::prelude::*;

use crate::cdc::{hash_into, Chunker, CutScratch};
use crate::error::ScanError;

/// Files from this size on are mapped and cut window by window on all
/// threads; smaller ones are read into a buffer each thread reuses and cut
/// and hashed on the thread that read them (other files keep the other
/// threads busy). Mapping saves a copy of the bytes but costs page-table
/// set-up and tear-down, which only pays off on big files.
const MAP_MIN: u64 = 1 << 20;

thread_local! {
    /// Read buffer and cut scratch of the small-file path, per thread.
    static SMALL: RefCell<(Vec<u8>, CutScratch)> = RefCell::new(Default::default());
}

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

/// A file's mode bit, size and chunks (`None` for directories and symlinks).
type Chunked = Option<(bool, u64, Vec<ChunkRef>)>;

enum Found {
    File,
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
            Found::File => chunk_file(&chunker, &root.join(rel), &opts.progress).map(Some),
            _ => Ok(None),
        })
        .collect();

    let mut stats = ScanStats::default();
    let mut seen = HashSet::new();
    let mut entries = Vec::with_capacity(found.len());
    for ((path, kind), chunked) in found.into_iter().zip(chunked) {
        let kind = match (kind, chunked?) {
            (Found::File, Some((exec, size, chunks))) => {
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
            (Found::File, None) => unreachable!("every file was chunked"),
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
            // Mode and size come from the open file, on the worker thread.
            out.push((child, Found::File));
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

/// Opens, reads or maps, cuts and hashes one regular file: its exec bit,
/// size and chunks. Never follows a symlink (a file replaced by one after
/// the walk is refused), and the size is what was actually chunked.
fn chunk_file(
    chunker: &Chunker,
    path: &Path,
    progress: &Option<ProgressFn>,
) -> Result<(bool, u64, Vec<ChunkRef>), ScanError> {
    let io_err = |e| ScanError::io(path, e);
    let mut f = open_no_follow(path).map_err(io_err)?;
    let meta = f.metadata().map_err(io_err)?;
    if !meta.is_file() {
        return Err(ScanError::Unsupported {
            path: path.to_path_buf(),
            reason: "no longer a regular file (changed during the scan)".into(),
        });
    }
    let exec = is_exec(&meta);
    let report = |n: u64| {
        if let Some(p) = progress {
            p(n);
        }
    };
    let mut chunks = Vec::new();
    if meta.len() >= MAP_MIN {
        // SAFETY: the map is only read while `f` is open. Like any tool that
        // maps its input (b3sum, ripgrep), a file truncated by another
        // process during the scan can end it with SIGBUS; the scan reads a
        // release folder that nothing should be writing to.
        let map = unsafe { Mmap::map(&f) }.map_err(io_err)?;
        chunker.chunk_slice(&map, true, &mut chunks, report);
    } else {
        // Read at most MAP_MIN bytes into the thread's buffer, so a file that
        // grows while it is read cannot take unbounded memory. No rayon call
        // may run while the buffer is borrowed: a stolen task on this thread
        // would borrow it again.
        let grown = SMALL.with(|small| -> Result<Option<Vec<u8>>, ScanError> {
            let (buf, scratch) = &mut *small.borrow_mut();
            buf.clear();
            (&mut f).take(MAP_MIN).read_to_end(buf).map_err(io_err)?;
            if buf.len() as u64 == MAP_MIN {
                return Ok(Some(buf.clone()));
            }
            report(buf.len() as u64);
            scratch.lens.clear();
            chunker.cut_region(buf, true, false, scratch);
            hash_into(buf, &scratch.lens, false, &mut chunks);
            Ok(None)
        })?;
        if let Some(head) = grown {
            // It grew past the mapping threshold since `fstat`: stream it.
            chunks = chunker
                .chunk_reader(head.as_slice().chain(f))
                .map_err(io_err)?;
            report(chunks.iter().map(|c| u64::from(c.len)).sum());
        }
    }
    let size = chunks.iter().map(|c| u64::from(c.len)).sum();
    Ok((exec, size, chunks))
}

#[cfg(unix)]
fn open_no_follow(path: &Path) -> std::io::Result<File> {
    use std::os::unix::fs::OpenOptionsExt;
    OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NOFOLLOW)
        .open(path)
}

#[cfg(not(unix))]
fn open_no_follow(path: &Path) -> std::io::Result<File> {
    OpenOptions::new().read(true).open(path)
}
