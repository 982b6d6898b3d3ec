//! The local admin socket: `ferry backup` asks a running server for a
//! checkpoint through a Unix socket next to its data directory
//! (`DATA.admin.sock`), because only the process that has the store open
//! can take a consistent checkpoint of it. Who may connect is decided by
//! the socket file's permissions (0600: the server's user, and root).
//!
//! Protocol: one request line `checkpoint <absolute path>\n`; one answer
//! line `ok\n` or `error: <message>\n`.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::{UnixListener, UnixStream};

use crate::serve::ServerState;

/// Longest request line.
const MAX_LINE: usize = 4096;

/// The socket path for a data directory: a sibling, so it is never inside
/// (and never copied with) the store. The directory is resolved first, so
/// the server and `ferry backup` agree however each spelled the path.
pub fn socket_path(data: &Path) -> PathBuf {
    let data = data.canonicalize().unwrap_or_else(|_| data.to_path_buf());
    let mut name = data
        .file_name()
        .map(|n| n.to_os_string())
        .unwrap_or_else(|| "ferry-data".into());
    name.push(".admin.sock");
    data.with_file_name(name)
}

/// Binds the socket (replacing a stale one left by a crash) with mode 0600.
pub fn bind(path: &Path) -> std::io::Result<UnixListener> {
    if path.exists() {
        // A live server answers on it; a dead one's file is stale.
        if std::os::unix::net::UnixStream::connect(path).is_ok() {
            return Err(std::io::Error::new(
                std::io::ErrorKind::AddrInUse,
                format!("{} is in use by another server", path.display()),
            ));
        }
        std::fs::remove_file(path)?;
    }
    let l = UnixListener::bind(path)?;
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))?;
    Ok(l)
}

/// Answers admin requests until the task is dropped.
pub async fn run(listener: UnixListener, state: Arc<ServerState>) {
    loop {
        let stream = match listener.accept().await {
            Ok((s, _)) => s,
            Err(e) => {
                tracing::warn!("admin socket: accept failed: {e}");
                tokio::time::sleep(std::time::Duration::from_millis(200)).await;
                continue;
            }
        };
        let st = state.clone();
        tokio::spawn(async move {
            if let Err(e) = handle(stream, st).await {
                tracing::warn!("admin socket: {e}");
            }
        });
    }
}

async fn handle(stream: UnixStream, st: Arc<ServerState>) -> std::io::Result<()> {
    let (r, mut w) = stream.into_split();
    let mut line = String::new();
    let mut r = BufReader::new(r).take(MAX_LINE as u64);
    r.read_line(&mut line).await?;
    let answer = match line.trim_end_matches('\n').split_once(' ') {
        Some(("checkpoint", path)) => checkpoint(&st, Path::new(path)).await,
        _ => Err("unknown request (expected: checkpoint PATH)".to_string()),
    };
    let text = match answer {
        Ok(()) => "ok\n".to_string(),
        Err(e) => format!("error: {}\n", e.replace('\n', " ")),
    };
    w.write_all(text.as_bytes()).await?;
    w.shutdown().await
}

async fn checkpoint(st: &Arc<ServerState>, out: &Path) -> Result<(), String> {
    if !out.is_absolute() {
        return Err(format!("{} is not an absolute path", out.display()));
    }
    let out = out.to_path_buf();
    let store = st.store.clone();
    let started = std::time::Instant::now();
    let r = tokio::task::spawn_blocking(move || store.checkpoint(&out).map(|_| out))
        .await
        .map_err(|e| e.to_string())?;
    match r {
        Ok(out) => {
            tracing::info!(
                "backup: checkpoint in {} ({} ms)",
                out.display(),
                started.elapsed().as_millis()
            );
            Ok(())
        }
        Err(e) => Err(e.to_string()),
    }
}
