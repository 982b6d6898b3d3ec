//! `ferry tune`: which chunker setting moves the fewest bytes for this
//! application's real version history. See `crate::tune` for the model.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{bail, Context, Result};
use clap::Args;

use super::common::{human, print_json};
use crate::tune::{cdc_methods, svg, History, Method, TuneRow};

#[derive(Debug, Args)]
pub struct TuneArgs {
    /// Version folders of one application, oldest first (at least two).
    #[arg(required = true, num_args = 2.., value_name = "DIR")]
    pub dirs: Vec<PathBuf>,
    /// FastCDC average chunk sizes to try, in KiB (min = avg/4, max = avg*4).
    #[arg(long, value_delimiter = ',', default_value = "4,8,16,32,64,128",
          value_parser = clap::value_parser!(u32).range(1..=4096))]
    pub avg: Vec<u32>,
    /// Fixed-size block sizes to try as a reference, in KiB (0 for none).
    #[arg(long, value_delimiter = ',', default_value = "64",
          value_parser = clap::value_parser!(u32).range(0..=16384))]
    pub fixed: Vec<u32>,
    /// zstd levels to try for chunk payloads.
    #[arg(long, value_delimiter = ',', default_value = "3,9",
          value_parser = clap::value_parser!(i32).range(1..=19))]
    pub levels: Vec<i32>,
    /// Write an SVG chart of bytes per update against chunk size.
    #[arg(long, value_name = "FILE")]
    pub plot: Option<PathBuf>,
    /// Print the rows as JSON on stdout instead of a table.
    #[arg(long)]
    pub json: bool,
}

pub fn run(a: TuneArgs) -> Result<ExitCode> {
    for d in &a.dirs {
        if !d.is_dir() {
            bail!("{} is not a directory", d.display());
        }
    }
    let mut methods = cdc_methods(&a.avg)?;
    methods.extend(
        a.fixed
            .iter()
            .filter(|&&k| k > 0)
            .map(|&k| Method::Fixed(k * 1024)),
    );
    let history = History::load(&a.dirs)?;
    if !a.json {
        eprintln!(
            "tuning over {} versions, {} in all: {} settings x {} zstd levels",
            a.dirs.len(),
            human(history.total_bytes()),
            methods.len(),
            a.levels.len()
        );
    }
    let mut rows = Vec::new();
    for m in methods {
        rows.extend(history.evaluate(m, &a.levels)?);
    }
    if let Some(path) = &a.plot {
        let title = format!("bytes per update, {} versions", a.dirs.len());
        std::fs::write(path, svg::chart(&rows, &title))
            .with_context(|| format!("cannot write {}", path.display()))?;
    }
    if a.json {
        print_json(&rows)?;
    } else {
        print_table(&rows);
    }
    Ok(ExitCode::SUCCESS)
}

fn print_table(rows: &[TuneRow]) {
    let best = rows.iter().map(|r| r.total_update_bytes).min().unwrap_or(0);
    println!(
        "{:<20} {:>4} {:>14} {:>12} {:>12} {:>9} {:>11} {:>10} {:>9}",
        "chunking",
        "zstd",
        "update bytes",
        "manifest",
        "store",
        "chunks",
        "distinct",
        "chunk MB/s",
        "zstd MB/s"
    );
    for r in rows {
        let mark = if r.total_update_bytes == best {
            "*"
        } else {
            " "
        };
        println!(
            "{:<20} {:>4} {:>13}{mark} {:>12} {:>12} {:>9} {:>11} {:>10.0} {:>9.0}",
            r.method,
            r.zstd_level,
            r.total_update_bytes,
            r.manifest_bytes.last().copied().unwrap_or(0),
            r.store_bytes,
            r.chunks,
            r.distinct_chunks,
            r.chunk_mib_per_s,
            r.compress_mib_per_s
        );
    }
    println!(
        "update bytes: sum over the {} updates of chunk data + signed manifest; \
         manifest: its bytes on the wire in the last update; chunks: newest version; \
         * fewest bytes",
        rows.first().map_or(0, |r| r.update_bytes.len())
    );
}
