//! Building a version's tree in staging: the local phase (reuse what is on
//! disk) and the fetch of what is missing run at the same time, then every
//! written file is fsynced.
//!
//! A fresh build knows what it must fetch before it reads a byte: every
//! chunk no installed version has. Those are fetched while the local phase
//! runs; a fetched chunk waits for its file's local phase before it is
//! written. Chunks the local phase finds damaged on disk are fetched after
//! it. A resumed build first sees what its partial files hold, then
//! fetches.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;
use std::time::Instant;

use ferry_protocol::group::GROUP_CELL;
use ferry_protocol::{ChunkId, Entry};

use super::build::{FileJob, LocalStats, Pos, Staging};
use super::fetch::{self, FetchContext, FetchStats};
use super::index::LocalIndex;
use super::run::VerifiedRun;
use crate::error::ClientError;
use crate::http::Http;
use crate::progress;

/// Counts of a tree build (part of the `--json` summary of a sync).
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct Built {
    pub chunks_fetched: u64,
    /// Of those, chunks that came in group frames (several chunks in one
    /// zstd frame, usually compressed against the installed version).
    pub chunks_grouped: u64,
    pub bytes_fetched_raw: u64,
    pub chunks_reused: u64,
    pub bytes_reused: u64,
    /// Unchanged files hard-linked from the installed version.
    pub files_linked: u64,
}

/// Builds the files `jobs` (and the dirs and symlinks of `entries`) under
/// `root`: local phase and fetch, then fsync of everything written.
#[allow(clippy::too_many_arguments)]
pub(crate) async fn build_tree(
    http: &Http,
    root: PathBuf,
    jobs: Vec<FileJob>,
    entries: &[Entry],
    index: LocalIndex,
    ctx: FetchContext,
    streams: usize,
    quiet: bool,
    link_unchanged: bool,
) -> Result<Built, ClientError> {
    let fresh = !root.exists();
    let staging = Arc::new(Staging::new(root, jobs, link_unchanged));
    let entries: Arc<Vec<Entry>> = Arc::new(entries.to_vec());
    let stats = Arc::new(LocalStats::default());
    let early = if fresh {
        nowhere_local(&staging.jobs, &index)
    } else {
        HashMap::new()
    };
    let order = job_order(staging.jobs.len(), &early);

    let t = Instant::now();
    let (st, en, ss) = (staging.clone(), entries.clone(), stats.clone());
    let local = tokio::task::spawn_blocking(move || {
        let r = st
            .make_dirs(&en)
            .and_then(|()| st.build_local(&index, &ss, order));
        if r.is_err() {
            st.abort();
        }
        r
    });
    let early = Arc::new(early);
    let fetching = fetch_into(http, &staging, early.clone(), ctx.clone(), streams, quiet);
    let (local, fetched) = tokio::join!(local, fetching);
    // The local phase's error first: a fetch stopped by it says less.
    let pending = local??;
    tracing::debug!("local phase and early fetch: {:?}", t.elapsed());
    let mut fstats = vec![fetched?];

    // What the local phase found damaged (or a resumed build still lacks).
    let rest: HashMap<ChunkId, Vec<Pos>> = pending
        .into_iter()
        .filter(|(id, _)| !early.contains_key(id))
        .collect();
    if !rest.is_empty() {
        let t = Instant::now();
        fstats.push(fetch_into(http, &staging, Arc::new(rest), ctx, streams, quiet).await?);
        tracing::debug!("fetch after the local phase: {:?}", t.elapsed());
    }
    ferry_failpoint::hit("client.fetched");

    let (st, en) = (staging.clone(), entries.clone());
    let t = Instant::now();
    tokio::task::spawn_blocking(move || st.finalize(&en)).await??;
    tracing::debug!("finalize (modes, fsync): {:?}", t.elapsed());
    ferry_failpoint::hit("client.finalized");
    let sum = |f: fn(&FetchStats) -> u64| fstats.iter().map(|s| f(s)).sum::<u64>();
    Ok(Built {
        chunks_fetched: sum(|s| s.chunks.load(Relaxed)),
        chunks_grouped: sum(|s| s.grouped.load(Relaxed)),
        bytes_fetched_raw: sum(|s| s.raw_bytes.load(Relaxed)),
        chunks_reused: stats.chunks_reused.load(Relaxed),
        bytes_reused: stats.bytes_reused.load(Relaxed),
        files_linked: stats.files_linked.load(Relaxed),
    })
}

/// Every position of every chunk that no installed version has.
fn nowhere_local(jobs: &[FileJob], index: &LocalIndex) -> HashMap<ChunkId, Vec<Pos>> {
    let mut out: HashMap<ChunkId, Vec<Pos>> = HashMap::new();
    for (j, job) in jobs.iter().enumerate() {
        for (i, c) in job.chunks.iter().enumerate() {
            if !index.chunks.contains_key(&c.id) {
                out.entry(c.id).or_default().push((j, i));
            }
        }
    }
    out
}

/// Files the fetch writes to first (in file order, as the fetch goes),
/// then the others.
fn job_order(jobs: usize, early: &HashMap<ChunkId, Vec<Pos>>) -> Vec<usize> {
    let mut fetched = vec![false; jobs];
    for pos in early.values() {
        for &(j, _) in pos {
            fetched[j] = true;
        }
    }
    let (mut first, rest): (Vec<usize>, Vec<usize>) = (0..jobs).partition(|&j| fetched[j]);
    first.extend(rest);
    first
}

/// Fetches the chunks of `pending` and writes each at its positions.
async fn fetch_into(
    http: &Http,
    staging: &Arc<Staging>,
    pending: Arc<HashMap<ChunkId, Vec<Pos>>>,
    ctx: FetchContext,
    streams: usize,
    quiet: bool,
) -> Result<Arc<FetchStats>, ClientError> {
    let mut wanted: Vec<(ChunkId, u32)> = pending
        .iter()
        .map(|(id, pos)| (*id, staging.jobs[pos[0].0].chunks[pos[0].1].len))
        .collect();
    // File order keeps each stream's writes local.
    wanted.sort_by_key(|(id, _)| pending.get(id).map(|p| p[0]));
    let cells: Vec<u64> = wanted
        .iter()
        .map(|(id, _)| {
            let (j, i) = pending[id][0];
            ((j as u64) << 32) | (staging.jobs[j].offsets[i] / GROUP_CELL)
        })
        .collect();
    let total: u64 = wanted.iter().map(|w| u64::from(w.1)).sum();
    let bar = progress::bytes_bar(progress::wanted(quiet), total, "fetching");
    let st = staging.clone();
    let sink: fetch::Sink = Arc::new(move |run: VerifiedRun<'_>| {
        ferry_failpoint::io("client.chunk_write").map_err(|e| ClientError::io(&st.root, e))?;
        st.write_run(&run, |id| pending.get(&id).map(Vec::as_slice))?;
        ferry_failpoint::hit_bytes("client.chunk_written", run.data().len() as u64);
        Ok(())
    });
    let t = Instant::now();
    let stats = fetch::fetch_chunks(http, wanted, &cells, ctx, streams, sink, bar.clone()).await;
    bar.finish_and_clear();
    tracing::debug!("fetch: {:?}", t.elapsed());
    stats
}
