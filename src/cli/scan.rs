//! `ferry scan`: the ingest path of `push` (walk, chunk, hash) without the
//! network; reports what a push of the folder would hold and how fast the
//! chunker ran, so it can be compared with `b3sum` on the same files.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{bail, Result};
use clap::Args;
use ferry_chunker::{scan_tree, ScanOptions};
use serde::Serialize;

use super::common::{human, print_json, ChunkArgs};

#[derive(Debug, Args)]
pub struct ScanArgs {
    /// The folder to chunk and hash.
    pub dir: PathBuf,
    #[command(flatten)]
    pub chunking: ChunkArgs,
    /// Print a JSON summary on stdout.
    #[arg(long)]
    pub json: bool,
    /// Print the distinct chunk ids instead, one per line (for load tests
    /// and cache warming: each is a `GET /v1/chunks/{id}` after a push).
    #[arg(long, conflicts_with = "json")]
    pub list_chunks: bool,
}

#[derive(Debug, Serialize)]
struct ScanSummary {
    files: u64,
    dirs: u64,
    symlinks: u64,
    bytes: u64,
    chunks: u64,
    unique_chunks: u64,
    unique_bytes: u64,
    min_chunk: u32,
    avg_chunk: u32,
    max_chunk: u32,
    seconds: f64,
    mib_per_second: f64,
}

pub fn run(a: ScanArgs) -> Result<ExitCode> {
    if !a.dir.is_dir() {
        bail!("{} is not a directory", a.dir.display());
    }
    let params = a.chunking.params()?;
    let opts = ScanOptions {
        params,
        progress: None,
    };
    let tree = scan_tree(&a.dir, &opts)?;
    if a.list_chunks {
        let mut seen = std::collections::HashSet::new();
        for e in &tree.entries {
            if let ferry_protocol::EntryKind::File { chunks, .. } = &e.kind {
                for c in chunks {
                    if seen.insert(c.id) {
                        println!("{}", c.id);
                    }
                }
            }
        }
        return Ok(ExitCode::SUCCESS);
    }
    let s = tree.stats;
    let seconds = s.elapsed.as_secs_f64();
    let summary = ScanSummary {
        files: s.files,
        dirs: s.dirs,
        symlinks: s.symlinks,
        bytes: s.bytes,
        chunks: s.chunks,
        unique_chunks: s.unique_chunks,
        unique_bytes: s.unique_bytes,
        min_chunk: params.min,
        avg_chunk: params.avg,
        max_chunk: params.max,
        seconds,
        mib_per_second: if seconds > 0.0 {
            s.bytes as f64 / (1024.0 * 1024.0) / seconds
        } else {
            0.0
        },
    };
    if a.json {
        print_json(&summary)?;
    } else {
        println!(
            "{}: {} files, {} in {} chunks ({} distinct, {}); {:.2} s, {:.0} MiB/s",
            a.dir.display(),
            summary.files,
            human(summary.bytes),
            summary.chunks,
            summary.unique_chunks,
            human(summary.unique_bytes),
            seconds,
            summary.mib_per_second
        );
    }
    Ok(ExitCode::SUCCESS)
}
