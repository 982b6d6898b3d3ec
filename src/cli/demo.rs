//! `ferry demo`: the whole path on one machine. A server on 127.0.0.1 over a
//! temporary RocksDB store, two generated versions of a sample app pushed
//! (the second rewrites part of a large library and adds a file), a client
//! synced through both, and what moved on the wire.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::{Context, Result};
use clap::Args;
use ferry_client::{Http, PushOptions, SyncOptions, Timeouts};
use ferry_protocol::SecretKey;
use ferry_server::{serve, ServerConfig, ServerState};
use ferry_store::Store;
use rand::{Rng, RngCore, SeedableRng};
use rand_chacha::ChaCha8Rng;

use super::common::human;

#[derive(Debug, Args)]
pub struct DemoArgs {
    /// Work in this directory and keep it (default: a temporary one, deleted).
    #[arg(long, value_name = "DIR")]
    pub dir: Option<PathBuf>,
    /// Size of the sample app's large library, in MiB.
    #[arg(long, default_value_t = 24, value_parser = clap::value_parser!(u32).range(1..=4096))]
    pub lib_mib: u32,
}

pub fn run(a: DemoArgs) -> Result<ExitCode> {
    let tmp;
    let root = match &a.dir {
        Some(d) => {
            std::fs::create_dir_all(d).with_context(|| format!("cannot create {}", d.display()))?;
            d.clone()
        }
        None => {
            tmp = tempfile::tempdir().context("cannot create a temporary directory")?;
            tmp.path().to_path_buf()
        }
    };
    println!("Ferry demo: everything local, in {}", root.display());
    let (v1, v2) = (root.join("build-1.0.0"), root.join("build-1.1.0"));
    make_sample_app(&v1, &v2, a.lib_mib as usize)?;
    super::common::runtime()?.block_on(demo(&root, &v1, &v2))?;
    Ok(ExitCode::SUCCESS)
}

async fn demo(root: &Path, v1: &Path, v2: &Path) -> Result<()> {
    let token = "demo-token-not-secret";
    let store = Store::open(&root.join("server-data")).context("opening the demo store")?;
    let state = Arc::new(ServerState::new(
        Arc::new(store),
        ServerConfig {
            push_token: Some(token.into()),
            ..ServerConfig::default()
        },
    ));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let url = format!("http://{}", listener.local_addr()?);
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(serve(listener, state, async {
        let _ = stop_rx.await;
    }));
    println!(
        "server      {url} (RocksDB store in {})",
        root.join("server-data").display()
    );

    let mut seed = [0u8; 32];
    rand::rngs::OsRng.fill_bytes(&mut seed);
    let key = SecretKey::from_seed(seed);
    println!("publisher   key {}", key.public());
    let install = root.join("client");
    let mut sync_opts =
        SyncOptions::new("sampleapp", "stable", install.clone(), vec![key.public()]);
    sync_opts.streams = 4;
    for (dir, version) in [(v1, "1.0.0"), (v2, "1.1.0")] {
        let pusher = Http::new(&url, Timeouts::default())?.with_token(Some(token.into()));
        let mut o = PushOptions::new(dir.to_path_buf(), "sampleapp", version);
        o.channel = Some("stable".into());
        let p = ferry_client::push(&pusher, &key, &o).await?;
        println!(
            "push        {version}: {} files, {}; uploaded {} new chunks, {} compressed",
            p.files,
            human(p.bytes),
            p.chunks_uploaded,
            human(p.bytes_uploaded)
        );
        let client = Http::new(&url, Timeouts::default())?;
        let s = ferry_client::sync(&client, &sync_opts).await?;
        let pct = 100.0 * s.bytes_downloaded as f64 / s.version_bytes.max(1) as f64;
        println!(
            "sync        {} -> {}: downloaded {} = {pct:.1}% of the {} version ({} chunks fetched, {} reused locally)",
            s.previous_version.as_deref().unwrap_or("(empty)"),
            s.version.as_deref().unwrap_or("?"),
            human(s.bytes_downloaded),
            human(s.version_bytes),
            s.built.chunks_fetched,
            s.built.chunks_reused,
        );
    }
    let client = Http::new(&url, Timeouts::default())?;
    let s = ferry_client::sync(&client, &sync_opts).await?;
    println!(
        "sync        up to date: {} request, {} of body",
        s.requests,
        human(s.bytes_downloaded)
    );
    let check = ferry_client::verify_install(&install)?;
    println!(
        "verify      {}: {} files, {}",
        install.join("current").display(),
        check.files,
        if check.clean { "intact" } else { "DAMAGED" }
    );
    let _ = stop_tx.send(());
    server.await??;
    Ok(())
}

/// Version 1: an executable, a large library (half random, half
/// structured), docs. Version 2: 512 KiB of the library rewritten in the
/// middle, the README changed, one file added.
fn make_sample_app(v1: &Path, v2: &Path, lib_mib: usize) -> Result<()> {
    let mut r = ChaCha8Rng::seed_from_u64(2024);
    let mut files: Vec<(String, Vec<u8>, bool)> = Vec::new();
    let mut exe = vec![0u8; 2 << 20];
    r.fill_bytes(&mut exe);
    files.push(("bin/sampleapp".into(), exe, true));
    let mut lib = Vec::with_capacity(lib_mib << 20);
    while lib.len() < lib_mib << 20 {
        let mut block = vec![0u8; 64 * 1024];
        if r.gen_bool(0.5) {
            r.fill_bytes(&mut block);
        } else {
            let k: u8 = r.gen();
            for (i, b) in block.iter_mut().enumerate() {
                *b = ((i / 8) as u8) ^ k;
            }
        }
        lib.extend_from_slice(&block);
    }
    files.push(("lib/libengine.so".into(), lib, false));
    for i in 0..40 {
        let words = [
            "ferry", "chunk", "version", "update", "client", "server", "delta",
        ];
        let text: String = (0..200 + i * 37)
            .map(|_| words[r.gen_range(0..words.len())])
            .collect::<Vec<_>>()
            .join(" ");
        files.push((
            format!("share/doc/topic-{i:02}.txt"),
            text.into_bytes(),
            false,
        ));
    }
    files.push(("README.md".into(), b"# Sample app 1.0.0\n".to_vec(), false));
    write_tree(v1, &files)?;

    for f in files.iter_mut() {
        if f.0 == "lib/libengine.so" {
            let mid = f.1.len() / 2;
            let end = (mid + (512 << 10)).min(f.1.len());
            r.fill_bytes(&mut f.1[mid..end]);
        }
        if f.0 == "README.md" {
            f.1 = b"# Sample app 1.1.0\n\nNow with a new feature.\n".to_vec();
        }
    }
    files.push((
        "share/whats-new.txt".into(),
        b"Faster, smaller updates.\n".to_vec(),
        false,
    ));
    write_tree(v2, &files)
}

fn write_tree(root: &Path, files: &[(String, Vec<u8>, bool)]) -> Result<()> {
    for (rel, data, exec) in files {
        let p = root.join(rel);
        if let Some(d) = p.parent() {
            std::fs::create_dir_all(d)?;
        }
        std::fs::write(&p, data).with_context(|| format!("writing {}", p.display()))?;
        #[cfg(unix)]
        if *exec {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o755))?;
        }
    }
    Ok(())
}
