//! `ferry serve`: the deployment server, configured by flags and/or a TOML
//! file (flags win; secrets come from the environment or a file).

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{bail, Context, Result};
use clap::{Args, ValueEnum};
use ferry_protocol::names::validate_app;
use ferry_protocol::PublicKey;
use ferry_server::metrics::Metrics;
use ferry_server::mirror::{Mirror, MirrorConfig};
use ferry_server::{admin, serve, ServerConfig, ServerState};
use ferry_store::{Backend, Store};
use serde::Deserialize;

use super::common::{runtime, shutdown_signal};
use super::publish::parse_duration;

/// Log line format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, Deserialize, Default)]
#[serde(rename_all = "kebab-case")]
pub enum LogFormat {
    /// Human-readable lines.
    #[default]
    Text,
    /// One JSON object per line (for log collectors).
    Json,
}

#[derive(Debug, Args, Default)]
pub struct ServeArgs {
    /// TOML file with any of these options (keys as the flags, e.g.
    /// `max-requests`); flags given here win. The push token is not read
    /// from it: use FERRY_PUSH_TOKEN or `push-token-file`.
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Data directory of the RocksDB store (created if missing).
    #[arg(long, value_name = "DIR")]
    pub data: Option<PathBuf>,
    /// Keep everything in S3 or an S3-compatible service instead of
    /// --data: `s3://BUCKET/PREFIX`; endpoint, region and credentials from
    /// AWS_ENDPOINT_URL, AWS_REGION, AWS_ACCESS_KEY_ID,
    /// AWS_SECRET_ACCESS_KEY. Several servers may share one prefix.
    #[arg(long, value_name = "URL", conflicts_with = "data")]
    pub store: Option<String>,
    /// Address to listen on [default: 127.0.0.1:8470].
    #[arg(long, value_name = "ADDR")]
    pub listen: Option<SocketAddr>,
    /// Bearer token that push and promote must present; without one the
    /// server is read-only. Also from FERRY_PUSH_TOKEN (after the flags,
    /// before the config file's push-token-file).
    #[arg(long, value_name = "TOKEN")]
    pub push_token: Option<String>,
    /// File holding the push token (first line), instead of --push-token.
    #[arg(long, value_name = "FILE", conflicts_with = "push_token")]
    pub push_token_file: Option<PathBuf>,
    /// Accept only this publisher key for an app (repeatable). Apps without
    /// one pin the first key that publishes to them.
    #[arg(long, value_name = "APP=PUBKEY")]
    pub app_key: Vec<String>,
    /// Most connections served at once [default: 1024].
    #[arg(long, value_parser = clap::value_parser!(u32).range(1..=100_000))]
    pub max_connections: Option<u32>,
    /// Most requests handled at once; beyond it clients get 503 with
    /// Retry-After (agents wait and come back) [default: 512].
    #[arg(long, value_parser = clap::value_parser!(u32).range(1..=1_000_000))]
    pub max_requests: Option<u32>,
    /// Seconds to send in Retry-After when busy [default: 5].
    #[arg(long, value_parser = clap::value_parser!(u64).range(1..=3600))]
    pub retry_after: Option<u64>,
    /// PEM certificate chain (leaf first): serve HTTPS, HTTP/2 by ALPN.
    #[arg(long, value_name = "FILE", requires = "tls_key")]
    pub tls_cert: Option<PathBuf>,
    /// PEM private key of --tls-cert.
    #[arg(long, value_name = "FILE", requires = "tls_cert")]
    pub tls_key: Option<PathBuf>,
    /// Seconds HTTP caches may serve a channel record without asking again
    /// (0: they revalidate every time) [default: 10].
    #[arg(long, value_name = "SECONDS", value_parser = clap::value_parser!(u32).range(0..=86_400))]
    pub record_max_age: Option<u32>,
    /// Run as a read-only pull-through mirror of this server (a branch
    /// office cache): missing chunks and manifests are fetched from it,
    /// verified and kept in --data.
    #[arg(long, value_name = "URL")]
    pub mirror_of: Option<String>,
    /// CA file for an https upstream of --mirror-of (default: system CAs).
    #[arg(long, value_name = "FILE")]
    pub mirror_ca: Option<PathBuf>,
    /// How long the mirror serves a channel record before asking the
    /// upstream again [default: 10s].
    #[arg(long, value_name = "DURATION", value_parser = parse_duration)]
    pub mirror_ttl: Option<u64>,
    /// Log format on stderr [default: text].
    #[arg(long, value_enum)]
    pub log_format: Option<LogFormat>,
    /// zstd level of group frames: runs of missing chunks compressed
    /// together against the client's installed version (0: off, single
    /// chunks only). Encoded once per update path, cached, and prepared
    /// when a channel record is published [default: 11].
    #[arg(long, value_parser = clap::value_parser!(i32).range(0..=22))]
    pub group_level: Option<i32>,
    /// zstd level at which prepared groups are encoded again in the
    /// background, one at a time, replacing the cached frames that come out
    /// smaller (0 or not above --group-level: off) [default: 19].
    #[arg(long, value_parser = clap::value_parser!(i32).range(0..=22))]
    pub group_refine_level: Option<i32>,
    /// Compress groups against the client's installed version (off: groups
    /// only share compression context; for benchmarks).
    #[arg(long, hide = true, default_value_t = true, action = clap::ArgAction::Set)]
    pub group_references: bool,
    /// MiB of encoded group frames kept in memory [default: 256].
    #[arg(long, value_parser = clap::value_parser!(u32).range(0..=1_048_576))]
    pub group_cache_mb: Option<u32>,
}

/// The TOML file: every key optional, unknown keys an error naming them.
#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct ServeFile {
    data: Option<PathBuf>,
    store: Option<String>,
    listen: Option<String>,
    /// Refused with a message: secrets do not belong in config files.
    push_token: Option<toml::Value>,
    push_token_file: Option<PathBuf>,
    app_key: Option<Vec<String>>,
    max_connections: Option<u32>,
    max_requests: Option<u32>,
    retry_after: Option<u64>,
    tls_cert: Option<PathBuf>,
    tls_key: Option<PathBuf>,
    record_max_age: Option<u32>,
    mirror_of: Option<String>,
    mirror_ca: Option<PathBuf>,
    mirror_ttl: Option<String>,
    group_level: Option<i32>,
    group_refine_level: Option<i32>,
    group_cache_mb: Option<u32>,
    pub log_format: Option<LogFormat>,
}

/// Loads the config file; relative paths in it are relative to the file.
pub fn load_file(path: &Path) -> Result<ServeFile> {
    let meta = std::fs::metadata(path).with_context(|| format!("config {}", path.display()))?;
    if meta.len() > 1 << 20 {
        bail!("config {}: larger than 1 MiB", path.display());
    }
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("cannot read config {}", path.display()))?;
    let mut f: ServeFile =
        toml::from_str(&text).with_context(|| format!("config {}", path.display()))?;
    if f.push_token.is_some() {
        bail!(
            "config {}: key push-token: secrets do not go in the config file; \
             set FERRY_PUSH_TOKEN or point push-token-file at a file readable only by the server",
            path.display()
        );
    }
    let base = path.parent().unwrap_or(Path::new("."));
    for p in [
        &mut f.data,
        &mut f.push_token_file,
        &mut f.tls_cert,
        &mut f.tls_key,
        &mut f.mirror_ca,
    ]
    .into_iter()
    .flatten()
    {
        if p.is_relative() {
            *p = base.join(&*p);
        }
    }
    Ok(f)
}

/// Where the server keeps its data.
#[derive(Debug, PartialEq, Eq)]
enum Storage {
    /// A RocksDB store in this directory.
    Dir(PathBuf),
    /// An `s3://BUCKET/PREFIX` URL.
    S3(String),
}

/// Everything `ferry serve` runs with, after flags, file and defaults.
#[derive(Debug)]
struct Resolved {
    storage: Storage,
    listen: SocketAddr,
    config: ServerConfig,
    mirror: Option<MirrorConfig>,
    tls: Option<(PathBuf, PathBuf)>,
}

fn read_token_file(p: &Path) -> Result<String> {
    let meta = std::fs::metadata(p).with_context(|| format!("push-token-file {}", p.display()))?;
    if meta.len() > 4096 {
        bail!("push-token-file {}: larger than 4 KiB", p.display());
    }
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        if meta.permissions().mode() & 0o077 != 0 {
            tracing::warn!("{} is readable by other users; `chmod 600` it", p.display());
        }
    }
    let text = std::fs::read_to_string(p)
        .with_context(|| format!("cannot read push-token-file {}", p.display()))?;
    let t = text.lines().next().unwrap_or("").trim().to_string();
    if t.is_empty() {
        bail!("push-token-file {}: empty", p.display());
    }
    Ok(t)
}

/// Flags over file over defaults.
fn resolve(a: ServeArgs) -> Result<Resolved> {
    resolve_with_env(a, std::env::var("FERRY_PUSH_TOKEN").ok())
}

/// Token precedence: --push-token, --push-token-file, FERRY_PUSH_TOKEN,
/// the file's push-token-file.
fn resolve_with_env(a: ServeArgs, env_token: Option<String>) -> Result<Resolved> {
    let f = match &a.config {
        Some(p) => load_file(p)?,
        None => ServeFile::default(),
    };
    // The command line's choice replaces the file's; within one, exactly one.
    let storage = match (a.data, a.store, f.data, f.store) {
        (Some(d), None, ..) => Storage::Dir(d),
        (None, Some(u), ..) => Storage::S3(u),
        (None, None, Some(d), None) => Storage::Dir(d),
        (None, None, None, Some(u)) => Storage::S3(u),
        (None, None, Some(_), Some(_)) => {
            bail!("config keys data and store are alternatives: give one")
        }
        (Some(_), Some(_), ..) => bail!("--data and --store are alternatives: give one"),
        (None, None, None, None) => bail!(
            "--data DIR or --store s3://BUCKET/PREFIX is required \
             (on the command line or in --config)"
        ),
    };
    if let Storage::S3(url) = &storage {
        ferry_store_s3::parse_s3_url(url).map_err(|e| anyhow::anyhow!("--store {e}"))?;
    }
    let listen = match (a.listen, f.listen) {
        (Some(l), _) => l,
        (None, Some(s)) => s
            .parse()
            .map_err(|e| anyhow::anyhow!("config key listen: {s:?}: {e}"))?,
        (None, None) => "127.0.0.1:8470".parse()?,
    };
    let push_token = match (
        a.push_token,
        a.push_token_file,
        env_token,
        f.push_token_file,
    ) {
        (Some(t), ..) => Some(t),
        (None, Some(p), ..) => Some(read_token_file(&p)?),
        (None, None, Some(t), _) if !t.is_empty() => Some(t),
        (None, None, _, Some(p)) => Some(read_token_file(&p)?),
        _ => None,
    };
    if let Some(t) = &push_token {
        if t.len() < 16 {
            tracing::warn!("the push token is short; use at least 16 random characters");
        }
    }
    let specs = if a.app_key.is_empty() {
        f.app_key.unwrap_or_default()
    } else {
        a.app_key
    };
    let mut app_keys: HashMap<String, Vec<PublicKey>> = HashMap::new();
    for spec in &specs {
        let Some((app, key)) = spec.split_once('=') else {
            bail!("--app-key {spec:?}: expected APP=PUBKEY");
        };
        validate_app(app).with_context(|| format!("--app-key {spec:?}"))?;
        let key: PublicKey = key.parse().with_context(|| format!("--app-key {spec:?}"))?;
        app_keys.entry(app.to_string()).or_default().push(key);
    }
    let max_connections = a.max_connections.or(f.max_connections).unwrap_or(1024);
    let max_requests = a.max_requests.or(f.max_requests).unwrap_or(512);
    let retry_after = a.retry_after.or(f.retry_after).unwrap_or(5);
    let record_max_age = a.record_max_age.or(f.record_max_age).unwrap_or(10);
    if !(1..=100_000).contains(&max_connections) {
        bail!("config key max-connections: {max_connections} is not in 1-100000");
    }
    if !(1..=1_000_000).contains(&max_requests) {
        bail!("config key max-requests: {max_requests} is not in 1-1000000");
    }
    if !(1..=3600).contains(&retry_after) {
        bail!("config key retry-after: {retry_after} is not in 1-3600");
    }
    let group_level = a
        .group_level
        .or(f.group_level)
        .unwrap_or(ferry_server::groups::DEFAULT_GROUP_LEVEL);
    if !(0..=22).contains(&group_level) {
        bail!("config key group-level: {group_level} is not in 0-22");
    }
    let group_refine_level = a
        .group_refine_level
        .or(f.group_refine_level)
        .unwrap_or(ferry_server::groups::DEFAULT_REFINE_LEVEL);
    if !(0..=22).contains(&group_refine_level) {
        bail!("config key group-refine-level: {group_refine_level} is not in 0-22");
    }
    let group_cache_mb = a.group_cache_mb.or(f.group_cache_mb).unwrap_or(256);
    if group_cache_mb > 1_048_576 {
        bail!("config key group-cache-mb: {group_cache_mb} is above 1048576");
    }
    if record_max_age > 86_400 {
        bail!("config key record-max-age: {record_max_age} is above 86400");
    }
    let tls = match (a.tls_cert.or(f.tls_cert), a.tls_key.or(f.tls_key)) {
        (Some(c), Some(k)) => Some((c, k)),
        (None, None) => None,
        _ => bail!("--tls-cert and --tls-key go together"),
    };
    let mirror_of = a.mirror_of.or(f.mirror_of);
    let mirror = match mirror_of {
        None => None,
        Some(_) if push_token.is_some() => {
            bail!("a mirror is read-only: --mirror-of cannot be combined with a push token")
        }
        Some(_) if matches!(storage, Storage::S3(_)) => {
            bail!(
                "a mirror keeps its copies in --data; --store cannot be combined with --mirror-of"
            )
        }
        Some(upstream) => {
            let ttl = match a.mirror_ttl {
                Some(t) => t,
                None => match &f.mirror_ttl {
                    Some(s) => parse_duration(s)
                        .map_err(|e| anyhow::anyhow!("config key mirror-ttl: {e}"))?,
                    None => 10,
                },
            };
            Some(MirrorConfig {
                upstream,
                ca: a.mirror_ca.or(f.mirror_ca),
                record_ttl: Duration::from_secs(ttl),
                app_keys: app_keys.clone(),
            })
        }
    };
    Ok(Resolved {
        storage,
        listen,
        config: ServerConfig {
            push_token,
            app_keys,
            max_connections: max_connections as usize,
            max_requests: max_requests as usize,
            retry_after_secs: retry_after,
            record_max_age,
            mirror_of: mirror.as_ref().map(|m| m.upstream.clone()),
            groups: ferry_server::groups::GroupConfig {
                level: group_level,
                refine_level: group_refine_level,
                cache_bytes: (group_cache_mb as usize) << 20,
                plan: ferry_protocol::group_plan::PlanParams {
                    references: a.group_references,
                    ..Default::default()
                },
            },
            ..ServerConfig::default()
        },
        mirror,
        tls,
    })
}

pub fn run(a: ServeArgs) -> Result<ExitCode> {
    let Resolved {
        storage,
        listen,
        mut config,
        mirror,
        tls,
    } = resolve(a)?;
    if let Some((cert, key)) = &tls {
        config.tls = Some(ferry_server::tls::server_config(cert, key)?);
    }
    let (local, data): (Arc<dyn Backend>, Option<PathBuf>) = match storage {
        Storage::Dir(data) => {
            let store = Store::open(&data)
                .with_context(|| format!("cannot open the store in {}", data.display()))?;
            (Arc::new(store), Some(data))
        }
        Storage::S3(url) => {
            let store = ferry_store_s3::ObjectBackend::s3(&url)
                .with_context(|| format!("cannot use the store {url}"))?;
            (Arc::new(store), None)
        }
    };
    let where_ = data.as_ref().map_or_else(
        || "object store".to_string(),
        |d| format!("data {}", d.display()),
    );
    let pushes = config.push_token.is_some();
    let scheme = if config.tls.is_some() {
        "https"
    } else {
        "http"
    };
    let rt = runtime()?;
    rt.block_on(async move {
        let metrics = Arc::new(Metrics::new());
        let backend: Arc<dyn Backend> = match &mirror {
            Some(m) => {
                Arc::new(Mirror::new(local, m.clone(), metrics.clone()).context("--mirror-of")?)
            }
            None => local,
        };
        let state = Arc::new(ServerState::with_metrics(backend, config, metrics));
        let listener = tokio::net::TcpListener::bind(listen)
            .await
            .with_context(|| format!("cannot listen on {listen}"))?;
        let addr = listener.local_addr()?;
        // The admin socket serves `ferry backup`, which needs a data
        // directory; an object store is backed up by the service itself.
        let sock = data.as_ref().map(|d| admin::socket_path(d));
        let admin_task = match sock.as_ref().map(|s| (s, admin::bind(s))) {
            None => None,
            Some((_, Ok(l))) => Some(tokio::spawn(admin::run(l, state.clone()))),
            Some((sock, Err(e))) => {
                tracing::warn!(
                    "admin socket {}: {e}; `ferry backup` will not work while this server runs",
                    sock.display()
                );
                None
            }
        };
        // A fixed line scripts and tests can wait for (port 0 picks a port).
        eprintln!("ferry serve: listening on {scheme}://{addr}");
        tracing::info!(
            "serving ({where_}, pushes {}{})",
            if pushes {
                "enabled"
            } else {
                "disabled: no --push-token"
            },
            mirror
                .as_ref()
                .map(|m| format!(", mirror of {}", m.upstream))
                .unwrap_or_default()
        );
        serve(listener, state, shutdown_signal()).await?;
        if let (Some(t), Some(sock)) = (admin_task, sock) {
            t.abort();
            let _ = std::fs::remove_file(&sock);
        }
        Ok::<_, anyhow::Error>(())
    })?;
    Ok(ExitCode::SUCCESS)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(dir: &Path, text: &str) -> PathBuf {
        let p = dir.join("ferry.toml");
        std::fs::write(&p, text).unwrap();
        p
    }

    const KEY: &str = "d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a";

    #[test]
    fn file_fills_in_and_flags_win() {
        let d = tempfile::tempdir().unwrap();
        std::fs::write(d.path().join("token"), "0123456789abcdef-token\n").unwrap();
        let p = write(
            d.path(),
            &format!(
                "data = \"store\"\nlisten = \"0.0.0.0:9000\"\npush-token-file = \"token\"\n\
                 app-key = [\"demo={KEY}\"]\nmax-requests = 64\nrecord-max-age = 0\n\
                 tls-cert = \"c.pem\"\ntls-key = \"k.pem\"\nlog-format = \"json\"\n"
            ),
        );
        let r = resolve_with_env(
            ServeArgs {
                config: Some(p),
                max_requests: Some(128),
                ..Default::default()
            },
            None,
        )
        .unwrap();
        assert_eq!(r.storage, Storage::Dir(d.path().join("store")));
        assert_eq!(r.listen, "0.0.0.0:9000".parse().unwrap());
        assert_eq!(
            r.config.push_token.as_deref(),
            Some("0123456789abcdef-token")
        );
        assert_eq!(r.config.max_requests, 128, "the flag wins");
        assert_eq!(r.config.record_max_age, 0);
        assert_eq!(r.config.app_keys["demo"].len(), 1);
        assert_eq!(
            r.tls,
            Some((d.path().join("c.pem"), d.path().join("k.pem")))
        );
        // The environment's token wins over the file's, a flag over both.
        let args = || ServeArgs {
            config: Some(d.path().join("ferry.toml")),
            ..Default::default()
        };
        let r = resolve_with_env(args(), Some("from-the-environment-123".into())).unwrap();
        assert_eq!(
            r.config.push_token.as_deref(),
            Some("from-the-environment-123")
        );
        let r = resolve_with_env(
            ServeArgs {
                push_token: Some("from-the-command-line-1".into()),
                ..args()
            },
            Some("from-the-environment-123".into()),
        )
        .unwrap();
        assert_eq!(
            r.config.push_token.as_deref(),
            Some("from-the-command-line-1")
        );
    }

    #[test]
    fn bad_files_name_the_key() {
        let d = tempfile::tempdir().unwrap();
        let cases = [
            ("data = \"x\"\nmax-request = 5\n", "max-request"),
            (
                "data = \"x\"\npush-token = \"s3cret\"\n",
                "FERRY_PUSH_TOKEN",
            ),
            ("data = \"x\"\nlisten = \"nowhere\"\n", "listen"),
            (
                "data = \"x\"\nmirror-of = \"http://a\"\nmirror-ttl = \"soon\"\n",
                "mirror-ttl",
            ),
            ("data = \"x\"\ntls-cert = \"c.pem\"\n", "--tls-key"),
            ("data = \"x\"\nmax-requests = 0\n", "max-requests"),
            ("data = \"x\"\nlog-format = \"xml\"\n", "xml"),
        ];
        for (text, want) in cases {
            let p = write(d.path(), text);
            let e = resolve_with_env(
                ServeArgs {
                    config: Some(p),
                    ..Default::default()
                },
                None,
            )
            .unwrap_err();
            assert!(format!("{e:#}").contains(want), "{text}: {e:#}");
        }
        let e = resolve_with_env(ServeArgs::default(), None).unwrap_err();
        assert!(e.to_string().contains("--data"), "{e}");
    }

    #[test]
    fn data_or_store() {
        let d = tempfile::tempdir().unwrap();
        let args = |p: PathBuf| ServeArgs {
            config: Some(p),
            ..Default::default()
        };
        let p = write(d.path(), "store = \"s3://ferry-bkt/prod\"\n");
        let r = resolve_with_env(args(p.clone()), None).unwrap();
        assert_eq!(r.storage, Storage::S3("s3://ferry-bkt/prod".into()));
        // The command line's choice replaces the file's.
        let r = resolve_with_env(
            ServeArgs {
                data: Some("here".into()),
                ..args(p)
            },
            None,
        )
        .unwrap();
        assert_eq!(r.storage, Storage::Dir("here".into()));
        for (text, want) in [
            ("store = \"s3://b\"\n", "bucket name"),
            ("data = \"x\"\nstore = \"s3://bkt\"\n", "alternatives"),
            (
                "store = \"s3://bkt\"\nmirror-of = \"http://up:8470\"\n",
                "--mirror-of",
            ),
        ] {
            let e = resolve_with_env(args(write(d.path(), text)), None).unwrap_err();
            assert!(format!("{e:#}").contains(want), "{text}: {e:#}");
        }
    }

    #[test]
    fn mirror_is_read_only() {
        let d = tempfile::tempdir().unwrap();
        let p = write(d.path(), "data = \"x\"\nmirror-of = \"http://up:8470\"\n");
        let r = resolve_with_env(
            ServeArgs {
                config: Some(p.clone()),
                ..Default::default()
            },
            None,
        )
        .unwrap();
        let m = r.mirror.unwrap();
        assert_eq!(m.upstream, "http://up:8470");
        assert_eq!(m.record_ttl, Duration::from_secs(10));
        let e = resolve_with_env(
            ServeArgs {
                config: Some(p),
                push_token: Some("a-long-enough-token-1234".into()),
                ..Default::default()
            },
            None,
        )
        .unwrap_err();
        assert!(e.to_string().contains("read-only"), "{e}");
    }
}
