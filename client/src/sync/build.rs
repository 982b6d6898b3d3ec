//! Building a tree in a staging directory: files that exist unchanged in an
//! installed version are cloned or copied, other files are assembled from
//! local chunk ranges, and what is left is reported as pending for the
//! fetcher. Every byte that lands in staging was hashed against its chunk id
//! first (or, for copies, right after, before it counts as done).

use std::collections::HashMap;
use std::fs::{self, File, OpenOptions};
use std::os::unix::fs::{FileExt, MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex};

use ferry_protocol::{ChunkId, ChunkRef, Entry, EntryKind, FileId};
use rayon::prelude::*;

use super::handles::OpenFiles;
use super::index::LocalIndex;
use super::run::VerifiedRun;
use super::writeback;
use crate::error::ClientError;
use crate::install::fsync_dir;

/// A file to build.
#[derive(Debug, Clone)]
pub struct FileJob {
    pub rel: String,
    pub size: u64,
    pub exec: bool,
    pub chunks: Vec<ChunkRef>,
    pub offsets: Vec<u64>,
    pub file_id: FileId,
}

impl FileJob {
    pub fn from_entry(e: &Entry) -> Option<FileJob> {
        let EntryKind::File { exec, size, chunks } = &e.kind else {
            return None;
        };
        let mut offsets = Vec::with_capacity(chunks.len());
        let mut off = 0u64;
        for c in chunks {
            offsets.push(off);
            off += u64::from(c.len);
        }
        Some(FileJob {
            rel: e.path.clone(),
            size: *size,
            exec: *exec,
            chunks: chunks.clone(),
            offsets,
            file_id: e.file_id()?,
        })
    }
}

/// (job index, chunk index) of a chunk still to be written.
pub type Pos = (usize, usize);

/// Counts of the local phase.
#[derive(Debug, Default)]
pub struct LocalStats {
    pub chunks_reused: AtomicU64,
    pub bytes_reused: AtomicU64,
    pub files_cloned: AtomicU64,
    pub files_linked: AtomicU64,
}

/// The staging tree of one build.
pub struct Staging {
    pub root: PathBuf,
    pub jobs: Vec<FileJob>,
    /// Hard-link verified unchanged files instead of copying them.
    pub link_unchanged: bool,
    /// Per job: the file is a hard link to an installed version's file
    /// (set by the local phase). Its data is durable already and nothing
    /// writes to it, so `finalize` does not fsync it.
    linked: Vec<AtomicBool>,
    /// Per job: the local phase is done with the file, so fetched chunks
    /// may be written into it (the fetch starts before the local phase
    /// ends). Waiters sleep on `gate`.
    ready: Vec<AtomicBool>,
    gate: (Mutex<()>, Condvar),
    /// The local phase failed: nobody waits for a file any more.
    aborted: AtomicBool,
    /// Reflinks may work here (cleared at the first refusal that is the
    /// file system's, so ext4 pays for one failed attempt, not one per
    /// file).
    reflinks: AtomicBool,
    /// Write handles of files that fetched chunks go to.
    open_files: OpenFiles,
    /// Per job: bytes of fetched chunks still to be written, and written
    /// so far (to start each file's write-back early, see [`writeback`]).
    unfetched: Vec<AtomicU64>,
    fetched: Vec<AtomicU64>,
    /// Per job: held while a fetched range is written. ext4 takes the
    /// inode's lock for every buffered write and a second writer spins on
    /// it while the first copies (5-10% of pyarrow's samples); waiting here
    /// sleeps instead and leaves the core to a decode task.
    writing: Vec<Mutex<()>>,
}

impl Staging {
    pub fn new(root: PathBuf, jobs: Vec<FileJob>, link_unchanged: bool) -> Staging {
        let flags = || jobs.iter().map(|_| AtomicBool::new(false)).collect();
        let (linked, ready) = (flags(), flags());
        let counters = || jobs.iter().map(|_| AtomicU64::new(0)).collect();
        let (unfetched, fetched) = (counters(), counters());
        let writing = jobs.iter().map(|_| Mutex::new(())).collect();
        Staging {
            root,
            jobs,
            link_unchanged,
            linked,
            ready,
            gate: (Mutex::new(()), Condvar::new()),
            aborted: AtomicBool::new(false),
            reflinks: AtomicBool::new(true),
            open_files: OpenFiles::default(),
            unfetched,
            fetched,
            writing,
        }
    }

    fn dest(&self, job: usize) -> PathBuf {
        self.root.join(&self.jobs[job].rel)
    }

    /// Creates the directories of `entries` under the staging root (making
    /// way for them if an interrupted run left something else there).
    pub fn make_dirs(&self, entries: &[Entry]) -> Result<(), ClientError> {
        fs::create_dir_all(&self.root).map_err(|e| ClientError::io(&self.root, e))?;
        for e in entries {
            if matches!(e.kind, EntryKind::Dir) {
                let p = self.root.join(&e.path);
                match fs::symlink_metadata(&p) {
                    Ok(m) if m.is_dir() => continue,
                    Ok(_) => fs::remove_file(&p).map_err(|err| ClientError::io(&p, err))?,
                    Err(_) => {}
                }
                fs::create_dir(&p).map_err(|err| ClientError::io(&p, err))?;
            }
        }
        Ok(())
    }

    /// Local phase: reuse what is on disk; returns the pending positions of
    /// every chunk that must be fetched. Jobs are started in `order`
    /// (files the running fetch writes to first); every job in it is
    /// marked ready when done, and all waiters are released on an error.
    pub fn build_local(
        &self,
        index: &LocalIndex,
        stats: &LocalStats,
        order: Vec<usize>,
    ) -> Result<HashMap<ChunkId, Vec<Pos>>, ClientError> {
        let per_job: Result<Vec<(usize, Vec<usize>)>, ClientError> = order
            .into_iter()
            .par_bridge()
            .map(|j| {
                let r = self.build_one(j, index, stats);
                match &r {
                    Ok(missing) => {
                        let job = &self.jobs[j];
                        let bytes = missing.iter().map(|&i| u64::from(job.chunks[i].len)).sum();
                        self.unfetched[j].store(bytes, Ordering::Relaxed);
                        self.mark_ready(j);
                    }
                    Err(_) => self.abort(),
                }
                r.map(|idxs| (j, idxs))
            })
            .collect();
        let mut per_job = per_job?;
        // File order, whatever order the threads finished in: a chunk's
        // first position decides where the fetch asks for it.
        per_job.sort_unstable_by_key(|(j, _)| *j);
        let mut pending: HashMap<ChunkId, Vec<Pos>> = HashMap::new();
        for (j, idxs) in per_job {
            for i in idxs {
                pending
                    .entry(self.jobs[j].chunks[i].id)
                    .or_default()
                    .push((j, i));
            }
        }
        Ok(pending)
    }

    fn mark_ready(&self, j: usize) {
        self.ready[j].store(true, Ordering::Release);
        let _g = self.gate.0.lock();
        self.gate.1.notify_all();
    }

    /// Releases every waiter: the build failed.
    pub fn abort(&self) {
        self.aborted.store(true, Ordering::Release);
        let _g = self.gate.0.lock();
        self.gate.1.notify_all();
    }

    /// Waits until the local phase is done with job `j`.
    fn wait_ready(&self, j: usize) -> Result<(), ClientError> {
        let stop = || self.ready[j].load(Ordering::Acquire) || self.aborted.load(Ordering::Acquire);
        if !stop() {
            let mut g = self
                .gate
                .0
                .lock()
                .map_err(|_| ClientError::Internal("staging gate poisoned".into()))?;
            while !stop() {
                g = self
                    .gate
                    .1
                    .wait(g)
                    .map_err(|_| ClientError::Internal("staging gate poisoned".into()))?;
            }
        }
        if self.ready[j].load(Ordering::Acquire) {
            Ok(())
        } else {
            Err(ClientError::Internal(
                "the local phase failed; no chunk is written".into(),
            ))
        }
    }

    fn build_one(
        &self,
        j: usize,
        index: &LocalIndex,
        stats: &LocalStats,
    ) -> Result<Vec<usize>, ClientError> {
        let job = &self.jobs[j];
        let dest = self.dest(j);
        let mut done = vec![false; job.chunks.len()];
        // A file left by an interrupted run is resumed, unless it is a hard
        // link (`link_unchanged`): that inode is an installed version's too
        // and is never written to.
        let resumed = matches!(fs::symlink_metadata(&dest), Ok(m) if m.is_file() && m.nlink() == 1);
        if !resumed {
            if fs::symlink_metadata(&dest).is_ok() {
                remove_any(&dest)?;
            }
            if let Some(srcs) = index.files.get(&job.file_id) {
                match self.reuse_file(j, srcs, &dest, stats) {
                    Reused::Linked => return Ok(Vec::new()),
                    Reused::Cloned => {
                        stats.files_cloned.fetch_add(1, Ordering::Relaxed);
                    }
                    Reused::Nothing => {}
                }
            }
        }
        let f = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&dest)
            .map_err(|e| ClientError::io(&dest, e))?;
        let len = f.metadata().map_err(|e| ClientError::io(&dest, e))?.len();
        if len != job.size {
            f.set_len(job.size).map_err(|e| ClientError::io(&dest, e))?;
        }
        // What is already in place (a clone, or a resumed partial build)?
        if len > 0 {
            let mut buf = Vec::new();
            for (i, c) in job.chunks.iter().enumerate() {
                if job.offsets[i] + u64::from(c.len) > len {
                    break;
                }
                if read_at(&f, &mut buf, job.offsets[i], c.len).is_ok() && ChunkId::of(&buf) == c.id
                {
                    done[i] = true;
                    stats.chunks_reused.fetch_add(1, Ordering::Relaxed);
                    stats
                        .bytes_reused
                        .fetch_add(u64::from(c.len), Ordering::Relaxed);
                }
            }
        }
        // Fill the rest from local chunk ranges.
        let mut reader = SourceReader::default();
        let mut buf = Vec::new();
        for (i, c) in job.chunks.iter().enumerate() {
            if done[i] {
                continue;
            }
            let Some(srcs) = index.chunks.get(&c.id) else {
                continue;
            };
            for s in srcs {
                if reader.read(&s.path, s.offset, c.len, &mut buf).is_ok()
                    && ChunkId::of(&buf) == c.id
                {
                    f.write_all_at(&buf, job.offsets[i])
                        .map_err(|e| ClientError::io(&dest, e))?;
                    done[i] = true;
                    stats.chunks_reused.fetch_add(1, Ordering::Relaxed);
                    stats
                        .bytes_reused
                        .fetch_add(u64::from(c.len), Ordering::Relaxed);
                    break;
                }
            }
        }
        // What is in place goes to the disk while the rest is fetched.
        if job.size > 0 {
            writeback::start(&f);
        }
        ferry_failpoint::hit("client.file_assembled");
        Ok(done
            .iter()
            .enumerate()
            .filter(|(_, d)| !**d)
            .map(|(i, _)| i)
            .collect())
    }

    /// Puts an installed copy of job `j`'s unchanged file at `dest`: a
    /// reflink where the file system has them, else (`link_unchanged`) a
    /// hard link to an intact copy, else a copy. A clone or copy is
    /// verified by the caller like any partial file; a link is verified
    /// before it is made.
    fn reuse_file(
        &self,
        j: usize,
        srcs: &[Arc<PathBuf>],
        dest: &Path,
        stats: &LocalStats,
    ) -> Reused {
        let job = &self.jobs[j];
        if self.reflinks.load(Ordering::Relaxed) {
            for src in srcs {
                match reflink(src, dest) {
                    Ok(()) => return Reused::Cloned,
                    Err(e) if reflink_unsupported(&e) => {
                        self.reflinks.store(false, Ordering::Relaxed);
                        break;
                    }
                    Err(_) => {}
                }
            }
        }
        if self.link_unchanged {
            for src in srcs {
                if link_if_intact(src, dest, job) {
                    ferry_failpoint::hit("client.file_linked");
                    self.linked[j].store(true, Ordering::Relaxed);
                    stats.files_linked.fetch_add(1, Ordering::Relaxed);
                    stats
                        .chunks_reused
                        .fetch_add(job.chunks.len() as u64, Ordering::Relaxed);
                    stats.bytes_reused.fetch_add(job.size, Ordering::Relaxed);
                    return Reused::Linked;
                }
            }
        }
        for src in srcs {
            if copy_regular(src, dest).is_ok() {
                return Reused::Cloned;
            }
        }
        Reused::Nothing
    }

    /// Writes a run of verified chunks at their pending positions
    /// (`positions` of each id). Chunks that follow each other in the file
    /// as in the run go out in one write.
    pub fn write_run<'p>(
        &self,
        run: &VerifiedRun<'_>,
        positions: impl Fn(ChunkId) -> Option<&'p [Pos]>,
    ) -> Result<(), ClientError> {
        // (file, file offset, start and end in the run's bytes)
        let mut merged: Option<(usize, u64, usize, usize)> = None;
        for (id, start, piece) in run.pieces() {
            let Some(&[(j, i), ref more @ ..]) = positions(id) else {
                return Err(ClientError::protocol(
                    "chunk fetch",
                    "server sent a chunk nobody asked for",
                ));
            };
            let at = self.jobs[j].offsets[i];
            match &mut merged {
                Some((mj, off, from, to))
                    if *mj == j && *to == start && *off + (*to - *from) as u64 == at =>
                {
                    *to += piece.len()
                }
                _ => {
                    if let Some((mj, off, from, to)) = merged.take() {
                        self.write_range(mj, off, &run.data()[from..to])?;
                    }
                    merged = Some((j, at, start, start + piece.len()));
                }
            }
            for &(j, i) in more {
                self.write_range(j, self.jobs[j].offsets[i], piece)?;
            }
        }
        if let Some((j, off, from, to)) = merged {
            self.write_range(j, off, &run.data()[from..to])?;
        }
        Ok(())
    }

    /// Writes verified bytes at `offset` of job `j`'s file.
    fn write_range(&self, j: usize, offset: u64, data: &[u8]) -> Result<(), ClientError> {
        self.wait_ready(j)?;
        if self.linked[j].load(Ordering::Acquire) {
            // The inode is an installed version's too: never written.
            return Err(ClientError::Internal(format!(
                "a fetched chunk is due in {}, a file linked from the installed version",
                self.jobs[j].rel
            )));
        }
        let f = self
            .open_files
            .get(j, || OpenOptions::new().write(true).open(self.dest(j)))
            .map_err(|e| ClientError::io(self.dest(j), e))?;
        {
            let _writing = self.writing[j].lock().unwrap_or_else(|p| p.into_inner());
            f.write_all_at(data, offset)
                .map_err(|e| ClientError::io(self.dest(j), e))?;
        }
        let len = data.len() as u64;
        let before = self.fetched[j].fetch_add(len, Ordering::Relaxed);
        // A chunk written twice (a stream retried) must not wrap.
        let left = self.unfetched[j]
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |u| {
                Some(u.saturating_sub(len))
            })
            .unwrap_or(0)
            .saturating_sub(len);
        if left == 0 || writeback::crosses_step(before, len) {
            writeback::start(&f);
        }
        Ok(())
    }

    /// Sets modes, fsyncs every file written here (not hard links to an
    /// installed version's files), creates symlinks, fsyncs directories.
    pub fn finalize(&self, entries: &[Entry]) -> Result<(), ClientError> {
        self.open_files.clear();
        let written: Vec<usize> = (0..self.jobs.len())
            .filter(|&j| !self.linked[j].load(Ordering::Relaxed))
            .collect();
        for_each_waiting(&written, |&j| {
            let dest = self.dest(j);
            let mode = if self.jobs[j].exec { 0o755 } else { 0o644 };
            fs::set_permissions(&dest, fs::Permissions::from_mode(mode))
                .map_err(|e| ClientError::io(&dest, e))?;
            let f = File::open(&dest).map_err(|e| ClientError::io(&dest, e))?;
            f.sync_all().map_err(|e| ClientError::io(&dest, e))?;
            ferry_failpoint::hit("client.file_synced");
            Ok::<(), ClientError>(())
        })?;
        for e in entries {
            if let EntryKind::Symlink { target } = &e.kind {
                let p = self.root.join(&e.path);
                if fs::symlink_metadata(&p).is_ok() {
                    remove_any(&p)?;
                }
                std::os::unix::fs::symlink(target, &p).map_err(|err| ClientError::io(&p, err))?;
            }
        }
        let mut dirs: Vec<PathBuf> = entries
            .iter()
            .filter(|e| matches!(e.kind, EntryKind::Dir))
            .map(|e| self.root.join(&e.path))
            .collect();
        dirs.push(self.root.clone());
        for_each_waiting(&dirs, |d| fsync_dir(d))
    }
}

/// Threads for work that mostly waits on the disk (fsync): more than the
/// cores, so the device has several writes queued at once.
const IO_THREADS: usize = 8;

/// Runs `f` on every item from [`IO_THREADS`] threads; the first error
/// stops the others from starting new items.
fn for_each_waiting<T: Sync>(
    items: &[T],
    f: impl Fn(&T) -> Result<(), ClientError> + Sync,
) -> Result<(), ClientError> {
    let next = std::sync::atomic::AtomicUsize::new(0);
    let failed = AtomicBool::new(false);
    let first_err = Mutex::new(None);
    std::thread::scope(|s| {
        for _ in 0..IO_THREADS.min(items.len()) {
            s.spawn(|| loop {
                if failed.load(Ordering::Relaxed) {
                    return;
                }
                let i = next.fetch_add(1, Ordering::Relaxed);
                let Some(item) = items.get(i) else { return };
                if let Err(e) = f(item) {
                    failed.store(true, Ordering::Relaxed);
                    if let Ok(mut slot) = first_err.lock() {
                        slot.get_or_insert(e);
                    }
                    return;
                }
            });
        }
    });
    match first_err.into_inner() {
        Ok(Some(e)) => Err(e),
        _ => Ok(()),
    }
}

/// Removes a file, symlink or directory tree.
pub fn remove_any(p: &Path) -> Result<(), ClientError> {
    let m = fs::symlink_metadata(p).map_err(|e| ClientError::io(p, e))?;
    let r = if m.is_dir() {
        fs::remove_dir_all(p)
    } else {
        fs::remove_file(p)
    };
    r.map_err(|e| ClientError::io(p, e))
}

fn read_at(f: &File, buf: &mut Vec<u8>, offset: u64, len: u32) -> std::io::Result<()> {
    buf.resize(len as usize, 0);
    f.read_exact_at(buf, offset)
}

/// Keeps the last source file open: consecutive chunks usually come from
/// the same old file.
#[derive(Default)]
struct SourceReader {
    open: Option<(Arc<PathBuf>, File)>,
}

impl SourceReader {
    fn read(
        &mut self,
        path: &Arc<PathBuf>,
        offset: u64,
        len: u32,
        buf: &mut Vec<u8>,
    ) -> std::io::Result<()> {
        let reuse = matches!(&self.open, Some((p, _)) if Arc::ptr_eq(p, path) || p == path);
        if !reuse {
            self.open = Some((path.clone(), File::open(path.as_ref())?));
        }
        match &self.open {
            Some((_, f)) => read_at(f, buf, offset, len),
            None => Err(std::io::Error::other("no source open")),
        }
    }
}

/// Hard-links `src` at `dest` when it is a regular file with the job's
/// size and mode whose every chunk hashes to the manifest's id, so nothing
/// is ever written to it afterwards (no chunk is pending, the mode is
/// already right). False, and nothing at `dest`, otherwise.
fn link_if_intact(src: &Path, dest: &Path, job: &FileJob) -> bool {
    let Ok(m) = fs::symlink_metadata(src) else {
        return false;
    };
    let mode = if job.exec { 0o755 } else { 0o644 };
    if !m.is_file() || m.len() != job.size || m.permissions().mode() & 0o7777 != mode {
        return false;
    }
    let Ok(f) = File::open(src) else {
        return false;
    };
    let mut buf = Vec::new();
    let intact =
        job.chunks.iter().zip(&job.offsets).all(|(c, &off)| {
            read_at(&f, &mut buf, off, c.len).is_ok() && ChunkId::of(&buf) == c.id
        });
    intact && fs::hard_link(src, dest).is_ok()
}

/// What `reuse_file` put at the destination.
#[derive(Debug, PartialEq, Eq)]
enum Reused {
    /// A reflink or a copy (to be verified).
    Cloned,
    /// A hard link to a verified file (done).
    Linked,
    Nothing,
}

/// Clones `src` to a new file `dest` sharing its extents (btrfs, XFS); on
/// failure nothing is left at `dest`.
fn reflink(src: &Path, dest: &Path) -> std::io::Result<()> {
    let from = File::open(src)?;
    if !from.metadata()?.is_file() {
        return Err(std::io::Error::other("not a regular file"));
    }
    let to = OpenOptions::new().write(true).create_new(true).open(dest)?;
    let r = ficlone(&from, &to);
    if r.is_err() {
        drop(to);
        let _ = fs::remove_file(dest);
    }
    r
}

/// The file system (or this pair of directories) cannot reflink at all,
/// as opposed to this one source failing.
fn reflink_unsupported(e: &std::io::Error) -> bool {
    matches!(
        e.raw_os_error(),
        Some(libc::EOPNOTSUPP | libc::EXDEV | libc::EINVAL | libc::ENOTTY | libc::ENOSYS)
    )
}

/// Copies the regular file `src` to `dest` (`copy_file_range` in the
/// kernel).
fn copy_regular(src: &Path, dest: &Path) -> std::io::Result<()> {
    if !fs::symlink_metadata(src)?.is_file() {
        return Err(std::io::Error::other("not a regular file"));
    }
    fs::copy(src, dest).map(|_| ())
}

fn ficlone(from: &File, to: &File) -> std::io::Result<()> {
    use std::os::fd::AsRawFd;
    /// `FICLONE` from linux/fs.h: `_IOW(0x94, 9, int)`.
    const FICLONE: libc::c_ulong = 0x4004_9409;
    // SAFETY: both descriptors are open files owned by the caller.
    let r = unsafe { libc::ioctl(to.as_raw_fd(), FICLONE as _, from.as_raw_fd()) };
    if r == 0 {
        Ok(())
    } else {
        Err(std::io::Error::last_os_error())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sync::run::verify_runs;

    fn job(rel: &str, parts: &[&[u8]]) -> FileJob {
        let mut offsets = Vec::new();
        let mut size = 0u64;
        for p in parts {
            offsets.push(size);
            size += p.len() as u64;
        }
        FileJob {
            rel: rel.into(),
            size,
            exec: false,
            chunks: parts
                .iter()
                .map(|p| ChunkRef {
                    id: ChunkId::of(p),
                    len: p.len() as u32,
                })
                .collect(),
            offsets,
            file_id: FileId([0; 32]),
        }
    }

    /// Runs merge into one write only where the file continues as the run
    /// does; every position of a chunk is written, whatever the order.
    #[test]
    fn runs_land_at_every_position_of_their_chunks() {
        let dir = tempfile::tempdir().unwrap();
        let c: Vec<Vec<u8>> = (0..4u8)
            .map(|i| vec![i + 1; 1000 + 7 * i as usize])
            .collect();
        // a = c0 c1 c2 c0, b = c3
        let jobs = vec![job("a", &[&c[0], &c[1], &c[2], &c[0]]), job("b", &[&c[3]])];
        let staging = Staging::new(dir.path().to_path_buf(), jobs, false);
        let mut pending: HashMap<ChunkId, Vec<Pos>> = HashMap::new();
        for (j, job) in staging.jobs.iter().enumerate() {
            File::create(staging.dest(j))
                .unwrap()
                .set_len(job.size)
                .unwrap();
            for (i, r) in job.chunks.iter().enumerate() {
                pending.entry(r.id).or_default().push((j, i));
            }
            staging.mark_ready(j);
        }
        let positions = |id: ChunkId| pending.get(&id).map(Vec::as_slice);
        // One run in file order across both files, one out of order.
        let ids = |idx: &[usize]| -> Vec<(ChunkId, u32)> {
            idx.iter()
                .map(|&i| (ChunkId::of(&c[i]), c[i].len() as u32))
                .collect()
        };
        for order in [&[0, 1, 3][..], &[2, 1][..]] {
            let buf: Vec<u8> = order.iter().flat_map(|&i| c[i].clone()).collect();
            let (runs, failed) = verify_runs(&buf, &ids(order));
            assert!(failed.is_empty());
            staging.write_run(&runs[0], positions).unwrap();
        }
        let want_a = [&c[0][..], &c[1], &c[2], &c[0]].concat();
        assert_eq!(fs::read(dir.path().join("a")).unwrap(), want_a);
        assert_eq!(fs::read(dir.path().join("b")).unwrap(), c[3]);

        // A chunk nobody asked for is refused.
        let stray = b"stray".to_vec();
        let (runs, _) = verify_runs(&stray, &[(ChunkId::of(&stray), 5)]);
        let err = staging.write_run(&runs[0], positions).unwrap_err();
        assert!(err.to_string().contains("nobody asked for"), "{err}");
    }
}
