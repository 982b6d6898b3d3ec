//! `ferry backup --data DIR --out DIR`: a consistent copy of a server's
//! store (a RocksDB checkpoint). While a server runs on DIR it takes the
//! checkpoint itself, asked through its admin socket; otherwise the store
//! is opened here. Either way the copy is then opened read-only and its
//! schema checked before the command reports success.

use std::io::{BufRead, BufReader, Write};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use clap::Args;
use ferry_server::admin;
use ferry_store::Store;
use serde::Serialize;

use super::common::{human, print_json};

#[derive(Debug, Args)]
pub struct BackupArgs {
    /// The server's data directory.
    #[arg(long, value_name = "DIR")]
    pub data: PathBuf,
    /// Where the copy goes: a new directory (its parent must exist). On the
    /// same file system the copy is made of hard links and takes seconds.
    #[arg(long, value_name = "DIR")]
    pub out: PathBuf,
    /// Print a JSON summary on stdout.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Serialize)]
struct BackupReport {
    out: String,
    /// `server` (a running server took it) or `direct`.
    taken_by: &'static str,
    chunks: u64,
    bytes: u64,
    millis: u64,
}

/// `out` made absolute (the server resolves paths in its own cwd).
fn absolute(out: &Path) -> Result<PathBuf> {
    let name = out
        .file_name()
        .with_context(|| format!("--out {}: needs a directory name", out.display()))?;
    let parent = match out.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    };
    let parent = parent
        .canonicalize()
        .with_context(|| format!("--out {}: parent directory", out.display()))?;
    Ok(parent.join(name))
}

fn via_server(sock: &Path, out: &Path) -> Result<Option<()>> {
    let Ok(mut s) = UnixStream::connect(sock) else {
        return Ok(None);
    };
    s.set_read_timeout(Some(Duration::from_secs(3600)))?;
    let path = out.to_str().context("--out: the path is not valid UTF-8")?;
    if path.contains('\n') {
        bail!("--out: the path contains a newline");
    }
    writeln!(s, "checkpoint {path}")?;
    let mut line = String::new();
    BufReader::new(&s).read_line(&mut line)?;
    match line.trim_end() {
        "ok" => Ok(Some(())),
        other => bail!(
            "the server on {} could not take the checkpoint: {}",
            sock.display(),
            other.strip_prefix("error: ").unwrap_or(other)
        ),
    }
}

pub fn run(a: BackupArgs) -> Result<ExitCode> {
    let out = absolute(&a.out)?;
    if out.exists() {
        bail!(
            "--out {}: already exists; give a new directory",
            out.display()
        );
    }
    let start = Instant::now();
    let sock = admin::socket_path(&a.data);
    let taken_by = match via_server(&sock, &out)? {
        Some(()) => "server",
        None => {
            let store = Store::open_existing(&a.data).with_context(|| {
                format!(
                    "cannot open the store in {} (if a server runs on it, its admin socket {} \
                     should answer: is it running as another user?)",
                    a.data.display(),
                    sock.display()
                )
            })?;
            store.checkpoint(&out)?;
            "direct"
        }
    };
    let copy = Store::open_read_only(&out)
        .with_context(|| format!("the backup in {} does not open", out.display()))?;
    let stats = copy.stats()?;
    let r = BackupReport {
        out: out.display().to_string(),
        taken_by,
        chunks: stats.chunks,
        bytes: stats.bytes,
        millis: start.elapsed().as_millis() as u64,
    };
    if a.json {
        print_json(&r)?;
    } else {
        println!(
            "backup of {} in {} ({} chunks, {}; taken by the {}) in {} ms",
            a.data.display(),
            r.out,
            r.chunks,
            human(r.bytes),
            if taken_by == "server" {
                "running server"
            } else {
                "backup command, no server running"
            },
            r.millis
        );
    }
    Ok(ExitCode::SUCCESS)
}
