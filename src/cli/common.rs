//! Helpers shared by subcommands: keys, runtime, JSON output.

use std::path::Path;

use anyhow::{bail, Context, Result};
use clap::Args;
use ferry_protocol::{ChunkerParams, PublicKey, SecretKey};

/// An HTTP client for `server`, trusting `--ca FILE` (if given) instead of
/// the system's CAs for https.
pub fn http_client(
    server: &str,
    timeouts: ferry_client::Timeouts,
    ca: Option<&Path>,
) -> Result<ferry_client::Http> {
    Ok(ferry_client::Http::with_roots(
        server,
        timeouts,
        &ferry_client::TlsRoots::from_option(ca),
    )?)
}

/// How a client fetches the chunks it lacks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum FetchMode {
    /// A few batched POSTs (fewest requests; not cacheable by HTTP caches).
    #[default]
    Batch,
    /// One GET per chunk, cacheable by nginx or a CDN in front of the server.
    Get,
}

/// A multi-threaded tokio runtime for one command.
pub fn runtime() -> Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")
}

/// Reads a secret key file made by `ferry keygen`.
pub fn load_secret_key(path: &Path) -> Result<SecretKey> {
    let meta = std::fs::metadata(path)
        .with_context(|| format!("cannot read secret key {}", path.display()))?;
    if meta.len() > 4096 {
        bail!(
            "{} is not a Ferry secret key file (too large)",
            path.display()
        );
    }
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        if meta.permissions().mode() & 0o077 != 0 {
            tracing::warn!(
                "{} is readable by other users; `chmod 600` it",
                path.display()
            );
        }
    }
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("cannot read secret key {}", path.display()))?;
    SecretKey::from_text(&text).with_context(|| format!("{}", path.display()))
}

/// `--trust` values: a 64-hex-digit key, or a file with one key per line.
/// Like [`parse_trust`], but no keys at all is fine (commands where
/// verification is optional).
pub fn parse_trust_optional(values: &[String]) -> Result<Vec<PublicKey>> {
    if values.is_empty() {
        return Ok(Vec::new());
    }
    parse_trust(values)
}

pub fn parse_trust(values: &[String]) -> Result<Vec<PublicKey>> {
    let mut out = Vec::new();
    for v in values {
        let v = v.trim();
        if v.len() == 64 && v.chars().all(|c| c.is_ascii_hexdigit()) {
            out.push(v.parse().with_context(|| format!("--trust {v}"))?);
            continue;
        }
        let p = Path::new(v);
        if p.is_file() {
            let text = std::fs::read_to_string(p)
                .with_context(|| format!("cannot read trusted keys from {}", p.display()))?;
            for (n, line) in text.lines().enumerate() {
                let line = line.trim();
                if line.is_empty() || line.starts_with('#') {
                    continue;
                }
                out.push(line.parse().with_context(|| {
                    format!("{} line {}: not a public key", p.display(), n + 1)
                })?);
            }
            continue;
        }
        bail!("--trust {v:?}: expected a public key (64 hex digits, as printed by `ferry keygen`) or a file of them");
    }
    if out.is_empty() {
        bail!("no trusted key given (--trust)");
    }
    Ok(out)
}

/// Prints a value as one line of JSON on stdout.
pub fn print_json<T: serde::Serialize>(v: &T) -> Result<()> {
    println!("{}", serde_json::to_string(v).context("JSON encoding")?);
    Ok(())
}

/// Human-readable byte count.
pub fn human(n: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut v = n as f64;
    let mut u = 0;
    while v >= 1024.0 && u < UNITS.len() - 1 {
        v /= 1024.0;
        u += 1;
    }
    if u == 0 {
        format!("{n} B")
    } else {
        format!("{v:.1} {}", UNITS[u])
    }
}

/// Completes on SIGINT or SIGTERM.
pub async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {},
        _ = term => {},
    }
    tracing::info!("signal received");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn human_sizes() {
        assert_eq!(human(10), "10 B");
        assert_eq!(human(1536), "1.5 KiB");
        assert_eq!(human(5 << 20), "5.0 MiB");
    }

    #[test]
    fn trust_parsing() {
        let k = SecretKey::from_seed([3; 32]).public().to_string();
        assert_eq!(parse_trust(&[k]).unwrap().len(), 1);
        assert!(parse_trust(&["nonsense".into()]).is_err());
        assert!(parse_trust(&[]).is_err());
    }
}

/// Chunker size options shared by `push` and `scan`.
#[derive(Debug, Args)]
pub struct ChunkArgs {
    /// Average chunk size in bytes (min = avg/4, max = avg*4 unless given).
    #[arg(long, value_name = "BYTES")]
    pub avg_chunk: Option<u32>,
    /// Minimum chunk size in bytes.
    #[arg(long, value_name = "BYTES")]
    pub min_chunk: Option<u32>,
    /// Maximum chunk size in bytes.
    #[arg(long, value_name = "BYTES")]
    pub max_chunk: Option<u32>,
}

impl ChunkArgs {
    /// The parameters asked for, validated; defaults where not given.
    pub fn params(&self) -> Result<ChunkerParams> {
        let d = ChunkerParams::default();
        let avg = self.avg_chunk.unwrap_or(d.avg);
        let scaled = self.avg_chunk.is_some();
        let p = ChunkerParams {
            min: self
                .min_chunk
                .unwrap_or(if scaled { avg / 4 } else { d.min }),
            avg,
            max: self
                .max_chunk
                .unwrap_or(if scaled { avg.saturating_mul(4) } else { d.max }),
        };
        p.validate().context("chunk size options")?;
        Ok(p)
    }
}
