//! `ferry gc`: drop versions no channel needs and the chunks nothing
//! references any more (see `ferry_store::gc`).

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, Result};
use clap::Args;
use ferry_store::{GcOptions, Store};

use super::common::{human, print_json};
use super::publish::parse_duration;

#[derive(Debug, Args)]
pub struct GcArgs {
    /// Data directory of the store (the server must be stopped).
    #[arg(long, value_name = "DIR")]
    pub data: PathBuf,
    /// Versions kept per channel history and per app, besides every
    /// channel's current version and rollout fallback.
    #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(u32).range(1..=100_000))]
    pub keep: u32,
    /// Unreferenced chunks stored more recently than this stay (a push may
    /// still be uploading them).
    #[arg(long, value_name = "DURATION", default_value = "24h", value_parser = parse_duration)]
    pub grace: u64,
    /// Only report what would be removed.
    #[arg(long)]
    pub dry_run: bool,
    /// Print a JSON summary on stdout.
    #[arg(long)]
    pub json: bool,
}

pub fn run(a: GcArgs) -> Result<ExitCode> {
    if !a.data.join("CURRENT").exists() {
        anyhow::bail!("{} is not a Ferry data directory", a.data.display());
    }
    let store = Store::open(&a.data).with_context(|| {
        format!(
            "cannot open the store in {} (is `ferry serve` running on it? stop it first)",
            a.data.display()
        )
    })?;
    let r = store.gc(GcOptions {
        keep: a.keep as usize,
        grace_secs: a.grace,
        dry_run: a.dry_run,
    })?;
    if a.json {
        print_json(&r)?;
        return Ok(ExitCode::SUCCESS);
    }
    let verb = if a.dry_run { "would remove" } else { "removed" };
    for v in &r.versions_removed {
        println!("{verb} version {v}");
    }
    println!(
        "{} versions kept, {} {verb}; {} chunks kept ({} within the grace period), {} chunks {verb} ({})",
        r.versions_kept,
        r.versions_removed.len(),
        r.chunks_kept,
        r.chunks_in_grace,
        r.chunks_removed,
        human(r.bytes_removed)
    );
    Ok(ExitCode::SUCCESS)
}
