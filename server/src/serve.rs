//! Accept loop, connection limits, graceful shutdown.

use std::collections::HashMap;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use ferry_protocol::PublicKey;
use ferry_store::Store;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use hyper_util::server::graceful::GracefulShutdown;
use tokio::net::TcpListener;
use tokio::sync::Semaphore;

use crate::router::route;

/// Server settings.
#[derive(Debug, Clone)]
pub struct ServerConfig {
    /// Bearer token for uploads and publishes; `None` disables them.
    pub push_token: Option<String>,
    /// Publisher keys per app. Apps not listed pin the first key that
    /// publishes a manifest for them and refuse every other key afterwards.
    pub app_keys: HashMap<String, Vec<PublicKey>>,
    /// Most connections served at once; more wait in the accept queue.
    pub max_connections: usize,
    /// How long to wait for open requests to finish on shutdown.
    pub shutdown_grace: Duration,
    /// Most requests handled at once; beyond it the server answers 503 with
    /// `Retry-After` instead of queueing without bound.
    pub max_requests: usize,
    /// Seconds sent in `Retry-After` when shedding load.
    pub retry_after_secs: u64,
    /// Group frames of batched fetches.
    pub groups: crate::groups::GroupConfig,
}

impl Default for ServerConfig {
    fn default() -> Self {
        ServerConfig {
            push_token: None,
            app_keys: HashMap::new(),
            max_connections: 1024,
            shutdown_grace: Duration::from_secs(10),
            max_requests: 512,
            retry_after_secs: 5,
            groups: Default::default(),
        }
    }
}

/// What every request handler sees.
pub struct ServerState {
    pub store: Arc<Store>,
    pub config: ServerConfig,
    /// Recently compressed manifests, by (manifest, base): a broadcast
    /// deployment asks for the same one thousands of times.
    pub(crate) manifest_cache: crate::manifest::Cache,
    /// Encoded group frames and indexed transitions.
    pub groups: crate::groups::Groups,
    /// One permit per request in progress (load shedding).
    pub(crate) requests: Arc<Semaphore>,
    /// Requests refused with 503 since start.
    pub shed: std::sync::atomic::AtomicU64,
}

impl ServerState {
    pub fn new(store: Arc<Store>, config: ServerConfig) -> ServerState {
        let requests = Arc::new(Semaphore::new(config.max_requests.max(1)));
        let groups = crate::groups::Groups::new(config.groups);
        ServerState {
            store,
            config,
            manifest_cache: Default::default(),
            groups,
            requests,
            shed: Default::default(),
        }
    }
}

/// Serves HTTP/1.1 and HTTP/2 (prior knowledge) on `listener` until
/// `shutdown` completes, then lets open requests finish (up to the grace
/// period).
pub async fn serve(
    listener: TcpListener,
    state: Arc<ServerState>,
    shutdown: impl Future<Output = ()>,
) -> std::io::Result<()> {
    let limit = Arc::new(Semaphore::new(state.config.max_connections.max(1)));
    let graceful = GracefulShutdown::new();
    let mut builder = auto::Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(Duration::from_secs(30));
    builder
        .http2()
        .timer(TokioTimer::new())
        .max_concurrent_streams(64);
    tokio::pin!(shutdown);
    loop {
        let permit = tokio::select! {
            p = limit.clone().acquire_owned() => match p {
                Ok(p) => p,
                Err(_) => break,
            },
            _ = &mut shutdown => break,
        };
        let (stream, peer) = tokio::select! {
            r = listener.accept() => match r {
                Ok(x) => x,
                Err(e) => {
                    // Out of file descriptors and the like: log, back off, go on.
                    tracing::warn!("accept failed: {e}");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
            _ = &mut shutdown => break,
        };
        let _ = stream.set_nodelay(true);
        let st = state.clone();
        let svc = service_fn(move |req| {
            let st = st.clone();
            async move { Ok::<_, std::convert::Infallible>(route(st, req, peer).await) }
        });
        let conn = builder
            .serve_connection(TokioIo::new(stream), svc)
            .into_owned();
        let conn = graceful.watch(conn);
        tokio::spawn(async move {
            if let Err(e) = conn.await {
                tracing::debug!(%peer, "connection ended: {e}");
            }
            drop(permit);
        });
    }
    drop(listener);
    tracing::info!("shutting down: waiting for open requests");
    tokio::select! {
        _ = graceful.shutdown() => tracing::info!("all connections closed"),
        _ = tokio::time::sleep(state.config.shutdown_grace) => {
            tracing::warn!("gave up waiting for open connections after {:?}", state.config.shutdown_grace);
        }
    }
    Ok(())
}

/// Log line helper: the peer of a request.
pub fn peer_str(p: &SocketAddr) -> String {
    p.to_string()
}
