//! `ferry serve`: the deployment server.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::{bail, Context, Result};
use clap::Args;
use ferry_protocol::names::validate_app;
use ferry_protocol::PublicKey;
use ferry_server::{serve, ServerConfig, ServerState};
use ferry_store::Store;

use super::common::{runtime, shutdown_signal};

#[derive(Debug, Args)]
pub struct ServeArgs {
    /// Data directory of the RocksDB store (created if missing).
    #[arg(long, value_name = "DIR")]
    pub data: PathBuf,
    /// Address to listen on.
    #[arg(long, value_name = "ADDR", default_value = "127.0.0.1:8470")]
    pub listen: SocketAddr,
    /// Bearer token that push and promote must present; without one the
    /// server is read-only.
    #[arg(
        long,
        env = "FERRY_PUSH_TOKEN",
        value_name = "TOKEN",
        hide_env_values = true
    )]
    pub push_token: Option<String>,
    /// Accept only this publisher key for an app (repeatable). Apps without
    /// one pin the first key that publishes to them.
    #[arg(long, value_name = "APP=PUBKEY")]
    pub app_key: Vec<String>,
    /// Most connections served at once.
    #[arg(long, default_value_t = 1024, value_parser = clap::value_parser!(u32).range(1..=100_000))]
    pub max_connections: u32,
    /// Most requests handled at once; beyond it clients get 503 with
    /// Retry-After (agents wait and come back).
    #[arg(long, default_value_t = 512, value_parser = clap::value_parser!(u32).range(1..=1_000_000))]
    pub max_requests: u32,
    /// Seconds to send in Retry-After when busy.
    #[arg(long, default_value_t = 5, value_parser = clap::value_parser!(u64).range(1..=3600))]
    pub retry_after: u64,
    /// zstd level of group frames: runs of missing chunks compressed
    /// together against the client's installed version (0: off, single
    /// chunks only). Encoded once per update path, cached, and prepared
    /// when a channel record is published.
    #[arg(long, default_value_t = ferry_server::groups::DEFAULT_GROUP_LEVEL,
          value_parser = clap::value_parser!(i32).range(0..=22))]
    pub group_level: i32,
    /// Compress groups against the client's installed version (off: groups
    /// only share compression context; for benchmarks).
    #[arg(long, hide = true, default_value_t = true, action = clap::ArgAction::Set)]
    pub group_references: bool,
    /// MiB of encoded group frames kept in memory.
    #[arg(long, default_value_t = 256, value_parser = clap::value_parser!(u32).range(0..=1_048_576))]
    pub group_cache_mb: u32,
}

pub fn run(a: ServeArgs) -> Result<ExitCode> {
    let mut app_keys: HashMap<String, Vec<PublicKey>> = HashMap::new();
    for spec in &a.app_key {
        let Some((app, key)) = spec.split_once('=') else {
            bail!("--app-key {spec:?}: expected APP=PUBKEY");
        };
        validate_app(app).with_context(|| format!("--app-key {spec:?}"))?;
        let key: PublicKey = key.parse().with_context(|| format!("--app-key {spec:?}"))?;
        app_keys.entry(app.to_string()).or_default().push(key);
    }
    if let Some(t) = &a.push_token {
        if t.len() < 16 {
            tracing::warn!("the push token is short; use at least 16 random characters");
        }
    }
    let store = Store::open(&a.data)
        .with_context(|| format!("cannot open the store in {}", a.data.display()))?;
    let state = Arc::new(ServerState::new(
        Arc::new(store),
        ServerConfig {
            push_token: a.push_token.clone(),
            app_keys,
            max_connections: a.max_connections as usize,
            max_requests: a.max_requests as usize,
            retry_after_secs: a.retry_after,
            groups: ferry_server::groups::GroupConfig {
                level: a.group_level,
                cache_bytes: (a.group_cache_mb as usize) << 20,
                plan: ferry_protocol::group_plan::PlanParams {
                    references: a.group_references,
                    ..Default::default()
                },
            },
            ..ServerConfig::default()
        },
    ));
    let rt = runtime()?;
    rt.block_on(async move {
        let listener = tokio::net::TcpListener::bind(a.listen)
            .await
            .with_context(|| format!("cannot listen on {}", a.listen))?;
        let addr = listener.local_addr()?;
        // A fixed line scripts and tests can wait for (port 0 picks a port).
        eprintln!("ferry serve: listening on http://{addr}");
        tracing::info!(
            "serving (data {}, pushes {})",
            a.data.display(),
            if a.push_token.is_some() {
                "enabled"
            } else {
                "disabled: no --push-token"
            }
        );
        serve(listener, state, shutdown_signal()).await?;
        Ok::<_, anyhow::Error>(())
    })?;
    Ok(ExitCode::SUCCESS)
}
