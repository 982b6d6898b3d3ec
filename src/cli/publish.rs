//! `ferry push` and `ferry promote`: the build server's commands.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{bail, Result};
use clap::Args;
use ferry_client::{PushOptions, Timeouts};

use super::common::{http_client, human, load_secret_key, print_json, runtime, ChunkArgs};

/// Where and as whom to publish.
#[derive(Debug, Args)]
pub struct PublishTarget {
    /// Server URL, e.g. http://deploy.example:8470
    #[arg(long, value_name = "URL")]
    pub server: String,
    /// Application name.
    #[arg(long)]
    pub app: String,
    /// Publisher secret key file (from `ferry keygen`).
    #[arg(long, value_name = "FILE")]
    pub key: PathBuf,
    /// The server's push token.
    #[arg(
        long,
        env = "FERRY_TOKEN",
        value_name = "TOKEN",
        hide_env_values = true
    )]
    pub token: String,
    /// Clients refuse the channel record after this long (e.g. 30d, 12h);
    /// re-promote before then. Default: never expires.
    #[arg(long, value_name = "DURATION", value_parser = parse_duration)]
    pub expires_in: Option<u64>,
    /// CA certificate(s), PEM, that an https:// server must chain to
    /// (instead of the system's CAs).
    #[arg(long, value_name = "FILE")]
    pub ca: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub struct PushArgs {
    /// The build output folder to publish.
    pub dir: PathBuf,
    #[command(flatten)]
    pub target: PublishTarget,
    /// Version string (letters, digits, '.', '_', '-', '+').
    #[arg(long)]
    pub version: String,
    /// Also make this version current on this channel.
    #[arg(long)]
    pub channel: Option<String>,
    /// The program `ferry run` starts, relative to the folder (e.g. bin/app).
    #[arg(long, value_name = "PATH")]
    pub entry: Option<String>,
    /// Print a JSON summary on stdout.
    #[arg(long)]
    pub json: bool,
    #[command(flatten)]
    pub chunking: ChunkArgs,
    /// zstd level for uploaded chunks (1-19).
    #[arg(long, default_value_t = ferry_protocol::chunk::DEFAULT_ZSTD_LEVEL,
          value_parser = clap::value_parser!(i32).range(1..=19))]
    pub zstd_level: i32,
    /// Concurrent upload streams.
    #[arg(long, default_value_t = 4, value_parser = clap::value_parser!(u32).range(1..=64))]
    pub streams: u32,
    /// No progress bars.
    #[arg(long, short)]
    pub quiet: bool,
}

pub fn push(a: PushArgs) -> Result<ExitCode> {
    let key = load_secret_key(&a.target.key)?;
    let http = http_client(
        &a.target.server,
        Timeouts::default(),
        a.target.ca.as_deref(),
    )?
    .with_token(Some(a.target.token.clone()));
    let mut o = PushOptions::new(a.dir.clone(), &a.target.app, &a.version);
    o.params = a.chunking.params()?;
    o.zstd_level = a.zstd_level;
    o.streams = a.streams as usize;
    o.channel = a.channel.clone();
    o.expires_in = a.target.expires_in;
    o.entry = a.entry.clone();
    o.quiet = a.quiet || a.json;
    if !a.dir.is_dir() {
        bail!("{} is not a directory", a.dir.display());
    }
    let r = runtime()?.block_on(ferry_client::push(&http, &key, &o))?;
    if a.json {
        print_json(&r)?;
    } else {
        println!(
            "{} {}: {} files, {} in {} chunks ({} distinct)",
            r.app,
            r.version,
            r.files,
            human(r.bytes),
            r.chunks,
            r.unique_chunks
        );
        if r.already_published {
            println!("already published with the same contents; nothing uploaded");
        } else {
            println!(
                "uploaded {} new chunks ({} raw, {} on the wire); manifest {}",
                r.chunks_uploaded,
                human(r.raw_bytes_uploaded),
                human(r.bytes_uploaded),
                r.manifest_id
            );
        }
        if let (Some(c), Some(s)) = (&r.channel, r.sequence) {
            println!("channel {c} -> {} (sequence {s})", r.version);
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// Parses `90`, `90s`, `15m`, `12h`, `30d` into seconds.
pub fn parse_duration(s: &str) -> Result<u64, String> {
    let s = s.trim();
    let (num, mult) = match s.char_indices().last() {
        Some((i, 's')) => (&s[..i], 1),
        Some((i, 'm')) => (&s[..i], 60),
        Some((i, 'h')) => (&s[..i], 3600),
        Some((i, 'd')) => (&s[..i], 86_400),
        _ => (s, 1),
    };
    let n: u64 = num
        .parse()
        .map_err(|_| format!("{s:?} is not a duration (use e.g. 90s, 15m, 12h, 30d)"))?;
    n.checked_mul(mult)
        .filter(|v| *v > 0)
        .ok_or_else(|| format!("{s:?} is out of range"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        assert_eq!(parse_duration("90"), Ok(90));
        assert_eq!(parse_duration("15m"), Ok(900));
        assert_eq!(parse_duration("30d"), Ok(2_592_000));
        assert!(parse_duration("x").is_err());
        assert!(parse_duration("0s").is_err());
    }
}
