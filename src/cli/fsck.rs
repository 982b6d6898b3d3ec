//! `ferry fsck`: offline check of a server's store.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, Result};
use clap::Args;
use ferry_store::Store;
use serde::Serialize;

use super::common::{human, print_json};

#[derive(Debug, Args)]
pub struct FsckArgs {
    /// Data directory of the store.
    #[arg(long, value_name = "DIR")]
    pub data: PathBuf,
    /// Print a JSON summary instead of text.
    #[arg(long)]
    pub json: bool,
}

#[derive(Serialize)]
struct Summary {
    chunks: u64,
    chunk_bytes: u64,
    stored_bytes: u64,
    manifests: u64,
    versions: u64,
    channels: u64,
    problems: Vec<String>,
    clean: bool,
}

pub fn run(a: FsckArgs) -> Result<ExitCode> {
    let store = Store::open_read_only(&a.data)
        .with_context(|| format!("cannot open the store in {}", a.data.display()))?;
    let r = store.fsck(&|_| {})?;
    let s = Summary {
        chunks: r.chunks,
        chunk_bytes: r.chunk_bytes,
        stored_bytes: r.stored_bytes,
        manifests: r.manifests,
        versions: r.versions,
        channels: r.channels,
        problems: r.problems.iter().map(|p| p.to_string()).collect(),
        clean: r.is_clean(),
    };
    if a.json {
        print_json(&s)?;
    } else {
        println!(
            "checked {} chunks ({} raw, {} stored), {} manifests, {} versions, {} channels",
            s.chunks,
            human(s.chunk_bytes),
            human(s.stored_bytes),
            s.manifests,
            s.versions,
            s.channels
        );
        for p in &s.problems {
            println!("problem: {p}");
        }
        println!("{}", if s.clean { "clean" } else { "DAMAGED" });
    }
    Ok(if s.clean {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(3)
    })
}
