//! Accept loop, connection limits, TLS handshakes, graceful shutdown.

use std::collections::HashMap;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use ferry_protocol::PublicKey;
use ferry_store::Backend;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use hyper_util::server::graceful::GracefulShutdown;
use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tokio_rustls::TlsAcceptor;

use crate::metered::Metered;
use crate::metrics::Metrics;
use crate::router::route;

/// Time a client gets to complete the TLS handshake.
const TLS_HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

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
    /// `max-age` of channel records for HTTP caches (seconds; 0: caches
    /// must revalidate every time).
    pub record_max_age: u32,
    /// TLS certificate and key (from [`crate::tls::server_config`]); `None`
    /// serves plain HTTP/1.1 and h2c.
    pub tls: Option<Arc<rustls::ServerConfig>>,
    /// The upstream URL when this server is a pull-through mirror (shown on
    /// the status page).
    pub mirror_of: Option<String>,
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
            record_max_age: 10,
            tls: None,
            mirror_of: None,
            groups: Default::default(),
        }
    }
}

/// What every request handler sees.
pub struct ServerState {
    /// The store, behind the metrics wrapper (and the mirror, if any).
    pub store: Arc<dyn Backend>,
    /// The same store without the metrics wrapper, for background work
    /// (preparing and refining group frames) whose reads serve no
    /// response and must not count as served.
    pub(crate) background_store: Arc<dyn Backend>,
    pub config: ServerConfig,
    /// Recently compressed manifests, by (manifest, base): a broadcast
    /// deployment asks for the same one thousands of times.
    pub(crate) manifest_cache: crate::manifest::Cache,
    /// Encoded group frames and indexed transitions.
    pub groups: crate::groups::Groups,
    /// One permit per request in progress (load shedding).
    pub(crate) requests: Arc<Semaphore>,
    /// Prometheus metrics of this process.
    pub metrics: Arc<Metrics>,
    /// When the server started (status page).
    pub started: std::time::SystemTime,
}

impl ServerState {
    pub fn new(store: Arc<dyn Backend>, config: ServerConfig) -> ServerState {
        Self::with_metrics(store, config, Arc::new(Metrics::new()))
    }

    /// With metrics shared with the store's layers (a mirror counts its
    /// fills in them).
    pub fn with_metrics(
        store: Arc<dyn Backend>,
        config: ServerConfig,
        metrics: Arc<Metrics>,
    ) -> ServerState {
        let requests = Arc::new(Semaphore::new(config.max_requests.max(1)));
        let background_store = store.clone();
        let store: Arc<dyn Backend> = Arc::new(Metered {
            inner: store,
            metrics: metrics.clone(),
        });
        let groups = crate::groups::Groups::new(config.groups);
        ServerState {
            store,
            background_store,
            config,
            manifest_cache: Default::default(),
            groups,
            requests,
            metrics,
            started: std::time::SystemTime::now(),
        }
    }
}

/// Counts a connection as open until dropped.
struct OpenConnection(Arc<Metrics>);

impl OpenConnection {
    fn new(m: &Arc<Metrics>) -> OpenConnection {
        m.connection_opened();
        OpenConnection(m.clone())
    }
}

impl Drop for OpenConnection {
    fn drop(&mut self) {
        self.0.connection_closed();
    }
}

/// Serves HTTP/1.1 and HTTP/2 (prior knowledge, or ALPN `h2` with TLS) on
/// `listener` until `shutdown` completes, then lets open requests finish (up
/// to the grace period).
pub async fn serve(
    listener: TcpListener,
    state: Arc<ServerState>,
    shutdown: impl Future<Output = ()>,
) -> std::io::Result<()> {
    let limit = Arc::new(Semaphore::new(state.config.max_connections.max(1)));
    let graceful = GracefulShutdown::new();
    let tls = state.config.tls.clone().map(TlsAcceptor::from);
    let mut builder = auto::Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(Duration::from_secs(30));
    builder
        .http2()
        .timer(TokioTimer::new())
        .max_concurrent_streams(64);
    let builder = Arc::new(builder);
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
        let open = OpenConnection::new(&state.metrics);
        let Some(tls) = tls.clone() else {
            let conn = builder
                .serve_connection(TokioIo::new(stream), svc)
                .into_owned();
            let conn = graceful.watch(conn);
            tokio::spawn(async move {
                if let Err(e) = conn.await {
                    tracing::debug!(%peer, "connection ended: {e}");
                }
                drop((permit, open));
            });
            continue;
        };
        // The handshake runs in the connection's task, so a slow client
        // cannot hold up the accept loop.
        let builder = builder.clone();
        let watcher = graceful.watcher();
        let metrics = state.metrics.clone();
        tokio::spawn(async move {
            let stream = match tokio::time::timeout(TLS_HANDSHAKE_TIMEOUT, tls.accept(stream)).await
            {
                Ok(Ok(s)) => s,
                Ok(Err(e)) => {
                    metrics.tls_failure();
                    tracing::debug!(%peer, "TLS handshake failed: {e}");
                    return;
                }
                Err(_) => {
                    metrics.tls_failure();
                    tracing::debug!(%peer, "TLS handshake timed out");
                    return;
                }
            };
            let conn = builder
                .serve_connection(TokioIo::new(stream), svc)
                .into_owned();
            if let Err(e) = watcher.watch(conn).await {
                tracing::debug!(%peer, "connection ended: {e}");
            }
            drop((permit, open));
        });
    }
    drop(listener);
    state.groups.stop();
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
