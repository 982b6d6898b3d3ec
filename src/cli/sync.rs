//! `ferry sync`, `ferry rollback`, `ferry verify`: the client machine's commands.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Result;
use clap::Args;
use ferry_client::hooks::Hook;
use ferry_client::{SyncOptions, Timeouts, UnchangedFiles};

use super::common::{http_client, human, parse_trust, print_json, runtime, FetchMode};
use super::publish::parse_duration;

#[derive(Debug, Args)]
pub struct SyncArgs {
    /// Server URL, e.g. http://deploy.example:8470
    #[arg(long, value_name = "URL")]
    pub server: String,
    /// Application name.
    #[arg(long)]
    pub app: String,
    /// Channel to follow.
    #[arg(long)]
    pub channel: String,
    /// Install directory (current/, versions/, .ferry/ live here).
    #[arg(long, value_name = "DIR")]
    pub install: PathBuf,
    /// Publisher public key to trust (repeatable), or a file of keys.
    #[arg(long, value_name = "PUBKEY", required = true)]
    pub trust: Vec<String>,
    /// Previous versions to keep for rollback.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u32).range(0..=100))]
    pub keep: u32,
    /// Concurrent fetch streams (3 keeps an update within 5 requests).
    #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(u32).range(1..=32))]
    pub streams: u32,
    /// Seconds without progress before a request is abandoned.
    #[arg(long, default_value_t = 60, value_parser = clap::value_parser!(u64).range(1..=3600))]
    pub timeout: u64,
    /// Print a JSON summary on stdout.
    #[arg(long)]
    pub json: bool,
    /// No progress bars.
    #[arg(long, short)]
    pub quiet: bool,
    /// Rollout group of this client (groups can have their own activation
    /// time).
    #[arg(long, value_name = "NAME")]
    pub group: Option<String>,
    /// File holding this machine's client id (created when absent); default:
    /// an id kept in the install directory.
    #[arg(long, value_name = "FILE")]
    pub client_id_file: Option<PathBuf>,
    /// Run COMMAND at POINT: post-install (tree complete, not live),
    /// pre-switch (a failure keeps the old version) or post-switch
    /// (repeatable; e.g. --hook pre-switch='systemctl stop myapp').
    #[arg(long, value_name = "POINT=COMMAND")]
    pub hook: Vec<Hook>,
    /// Seconds a hook may run before it is killed (and counts as failed).
    #[arg(long, default_value = "60s", value_name = "DURATION", value_parser = parse_duration)]
    pub hook_timeout: u64,
    /// Hard-link files that did not change from the installed version,
    /// even with post-install or pre-switch hooks (the default without
    /// them). Much faster updates and no second copy on disk, but the live
    /// and the kept versions share those files, so an application that
    /// edits its own install tree in place changes its rollback copy too
    /// (docs/storage.md). Reflinks (btrfs, XFS) are used where possible.
    #[arg(long, conflicts_with = "copy_unchanged")]
    pub link_unchanged: bool,
    /// Copy files that did not change instead of hard-linking them, so
    /// every kept version owns its files (the default when post-install
    /// or pre-switch hooks are given).
    #[arg(long)]
    pub copy_unchanged: bool,
    /// Do not tell the server the outcome. By default an update, a staged
    /// version or a failure is reported (what `ferry status` counts); an
    /// up-to-date check sends nothing.
    #[arg(long)]
    pub no_report: bool,
    /// The clock, in unix seconds (tests).
    #[arg(long, hide = true)]
    pub now: Option<u64>,
    /// How to fetch chunks: batch (fewest requests) or get (one cacheable
    /// GET each, for servers behind nginx or a CDN).
    #[arg(long, value_enum, default_value = "batch")]
    pub fetch: FetchMode,
    /// CA certificate(s), PEM, that an https:// server must chain to
    /// (instead of the system's CAs).
    #[arg(long, value_name = "FILE")]
    pub ca: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub struct RollbackArgs {
    /// Install directory.
    #[arg(long, value_name = "DIR")]
    pub install: PathBuf,
    /// Print a JSON summary on stdout.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct VerifyArgs {
    /// Install directory.
    #[arg(long, value_name = "DIR")]
    pub install: PathBuf,
    /// Rebuild damaged or missing files (needs --server and --trust).
    #[arg(long, requires_all = ["server", "trust"])]
    pub repair: bool,
    /// Server URL (for --repair).
    #[arg(long, value_name = "URL")]
    pub server: Option<String>,
    /// Publisher public key to trust (for --repair).
    #[arg(long, value_name = "PUBKEY")]
    pub trust: Vec<String>,
    /// CA certificate(s), PEM, that an https:// server must chain to
    /// (instead of the system's CAs).
    #[arg(long, value_name = "FILE")]
    pub ca: Option<PathBuf>,

    /// Print a JSON summary on stdout.
    #[arg(long)]
    pub json: bool,
}

fn timeouts(read: u64) -> Timeouts {
    Timeouts {
        read,
        ..Timeouts::default()
    }
}

pub fn sync(a: SyncArgs) -> Result<ExitCode> {
    let trusted = parse_trust(&a.trust)?;
    let http = http_client(&a.server, timeouts(a.timeout), a.ca.as_deref())?
        .with_chunk_gets(a.fetch == FetchMode::Get);
    let mut o = SyncOptions::new(&a.app, &a.channel, a.install.clone(), trusted);
    o.keep = a.keep as usize;
    o.streams = a.streams as usize;
    o.quiet = a.quiet || a.json;
    o.group = a.group.clone();
    o.client_id_file = a.client_id_file.clone();
    o.now = a.now;
    o.hooks = a.hook.clone();
    o.hook_timeout = std::time::Duration::from_secs(a.hook_timeout);
    o.unchanged = unchanged_files(a.link_unchanged, a.copy_unchanged);
    if let Some(g) = &a.group {
        ferry_protocol::names::validate_channel(g)
            .map_err(|e| anyhow::anyhow!("--group {g:?}: {e}"))?;
    }
    let r = runtime()?.block_on(async {
        let r = ferry_client::sync(&http, &o).await;
        let worth_telling = r.as_ref().map_or(true, |r| r.updated || r.staged);
        if worth_telling && !a.no_report {
            ferry_client::agent::send_report(&http, &o, &r).await;
        }
        r
    })?;
    if a.json {
        print_json(&r)?;
    } else if r.updated {
        println!(
            "{} {} -> {}: downloaded {} ({} chunks), reused {} local chunks ({}), version size {}",
            r.app,
            r.previous_version.as_deref().unwrap_or("(nothing)"),
            r.version.as_deref().unwrap_or("?"),
            human(r.bytes_downloaded),
            r.built.chunks_fetched,
            r.built.chunks_reused,
            human(r.built.bytes_reused),
            human(r.version_bytes)
        );
    } else if r.staged {
        println!(
            "{}: staged {} (downloaded {}); it switches at {}",
            r.app,
            r.staged_version.as_deref().unwrap_or("?"),
            human(r.bytes_downloaded),
            r.activates_at.map_or("?".into(), super::time::format_time)
        );
    } else {
        println!(
            "{} stays at {}: {} ({} downloaded)",
            r.app,
            r.version.as_deref().unwrap_or("(nothing)"),
            r.decision,
            human(r.bytes_downloaded)
        );
    }
    Ok(ExitCode::SUCCESS)
}

pub fn rollback(a: RollbackArgs) -> Result<ExitCode> {
    let r = ferry_client::rollback(&a.install)?;
    if a.json {
        print_json(&r)?;
    } else {
        println!(
            "rolled back to {} (from {})",
            r.version,
            r.previous_version.as_deref().unwrap_or("nothing")
        );
    }
    Ok(ExitCode::SUCCESS)
}

pub fn verify(a: VerifyArgs) -> Result<ExitCode> {
    let r = if a.repair {
        let server = a.server.as_deref().unwrap_or_default();
        let trusted = parse_trust(&a.trust)?;
        let http = http_client(server, Timeouts::default(), a.ca.as_deref())?;
        runtime()?.block_on(ferry_client::repair_install(
            &http, &a.install, &trusted, 4, a.json,
        ))?
    } else {
        ferry_client::verify_install(&a.install)?
    };
    if a.json {
        print_json(&r)?;
    } else {
        for p in &r.damaged {
            println!("damaged: {}: {}", p.path, p.problem);
        }
        for p in &r.extra {
            println!("extra (not in the manifest, left alone): {p}");
        }
        for p in &r.repaired {
            println!("repaired: {p}");
        }
        println!(
            "{} {}: {} files, {}: {}",
            r.install,
            r.version,
            r.files,
            human(r.bytes),
            if r.clean { "ok" } else { "DAMAGED" }
        );
    }
    Ok(if r.clean {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(3)
    })
}

/// The `--link-unchanged` / `--copy-unchanged` choice (neither: automatic).
pub fn unchanged_files(link: bool, copy: bool) -> UnchangedFiles {
    match (link, copy) {
        (true, _) => UnchangedFiles::Link,
        (_, true) => UnchangedFiles::Copy,
        _ => UnchangedFiles::Auto,
    }
}
