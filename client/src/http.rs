//! A small HTTP client over hyper-util: one base URL, pooled connections,
//! timeouts on connect, headers and every body read, and counters of the
//! body bytes moved (what `--json` reports as `bytes_downloaded`).
//!
//! `https://` URLs go through rustls (ring provider), HTTP/2 when the server
//! offers it by ALPN. The server's certificate must chain to the system's
//! roots or to the CAs of `--ca FILE` ([`TlsRoots`]).

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use http::{header, HeaderMap, HeaderValue, Method, Request, Response, StatusCode, Uri};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper_rustls::{HttpsConnector, HttpsConnectorBuilder};
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;

use crate::error::ClientError;

/// Byte and request counters shared by all requests of one client.
#[derive(Debug, Default)]
pub struct Counters {
    pub body_bytes_down: AtomicU64,
    pub body_bytes_up: AtomicU64,
    pub requests: AtomicU64,
}

/// Timeouts (seconds).
#[derive(Debug, Clone, Copy)]
pub struct Timeouts {
    pub connect: u64,
    /// Waiting for response headers, and between two pieces of a body.
    pub read: u64,
}

impl Default for Timeouts {
    fn default() -> Self {
        Timeouts {
            connect: 10,
            read: 60,
        }
    }
}

/// Which certificate authorities an `https://` server must chain to.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum TlsRoots {
    /// The operating system's store (`/etc/ssl/certs` on Debian; honours
    /// `SSL_CERT_FILE` / `SSL_CERT_DIR`).
    #[default]
    System,
    /// Only the CA certificates in this PEM file (a private CA).
    CaFile(PathBuf),
}

impl TlsRoots {
    /// `--ca FILE` given or not.
    pub fn from_option(ca: Option<&Path>) -> TlsRoots {
        ca.map_or(TlsRoots::System, |p| TlsRoots::CaFile(p.to_path_buf()))
    }

    /// The rustls client configuration for these roots.
    pub fn client_config(&self) -> Result<rustls::ClientConfig, ClientError> {
        let mut roots = rustls::RootCertStore::empty();
        match self {
            TlsRoots::System => {
                let found = rustls_native_certs::load_native_certs();
                let (added, _ignored) = roots.add_parsable_certificates(found.certs);
                if added == 0 {
                    let why = found
                        .errors
                        .first()
                        .map_or("none found".to_string(), |e| e.to_string());
                    return Err(ClientError::Tls(format!(
                        "no usable CA certificates in the system store ({why}); \
                         install ca-certificates or pass --ca FILE"
                    )));
                }
            }
            TlsRoots::CaFile(path) => {
                let certs = read_pem_certs(path)?;
                let (added, ignored) = roots.add_parsable_certificates(certs);
                if added == 0 {
                    return Err(ClientError::Tls(format!(
                        "--ca {}: no usable CA certificate in it ({ignored} rejected)",
                        path.display()
                    )));
                }
            }
        }
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let config = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|e| ClientError::Tls(e.to_string()))?
            .with_root_certificates(roots)
            .with_no_client_auth();
        Ok(config)
    }
}

/// Most bytes read from a `--ca` file (a bundle of a few hundred CAs fits).
const MAX_CA_FILE: u64 = 4 << 20;

fn read_pem_certs(
    path: &Path,
) -> Result<Vec<rustls_pki_types::CertificateDer<'static>>, ClientError> {
    use rustls_pki_types::pem::PemObject;
    let what = |e: String| ClientError::Tls(format!("--ca {}: {e}", path.display()));
    let meta = std::fs::metadata(path).map_err(|e| what(e.to_string()))?;
    if meta.len() > MAX_CA_FILE {
        return Err(what(format!("larger than {MAX_CA_FILE} bytes")));
    }
    let data = std::fs::read(path).map_err(|e| what(e.to_string()))?;
    let certs = rustls_pki_types::CertificateDer::pem_slice_iter(&data)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| what(format!("not a PEM certificate file: {e}")))?;
    if certs.is_empty() {
        return Err(what("no PEM certificate (BEGIN CERTIFICATE) in it".into()));
    }
    Ok(certs)
}

/// A client bound to one server.
#[derive(Clone)]
pub struct Http {
    client: Client<HttpsConnector<HttpConnector>, Full<Bytes>>,
    base: String,
    pub counters: Arc<Counters>,
    timeouts: Timeouts,
    token: Option<String>,
    /// Fetch chunks one cacheable GET each instead of batched POSTs.
    chunk_gets: bool,
}

const USER_AGENT: &str = concat!("ferry/", env!("CARGO_PKG_VERSION"));

impl Http {
    /// `base` is the server URL, e.g. `https://deploy.example:8470` (a path
    /// prefix is kept); `https` servers must chain to the system's roots.
    pub fn new(base: &str, timeouts: Timeouts) -> Result<Http, ClientError> {
        Self::with_roots(base, timeouts, &TlsRoots::System)
    }

    /// Like [`Http::new`], with the CAs an `https` server must chain to.
    pub fn with_roots(
        base: &str,
        timeouts: Timeouts,
        roots: &TlsRoots,
    ) -> Result<Http, ClientError> {
        let bad = |reason: &str| ClientError::InvalidUrl {
            url: base.to_string(),
            reason: reason.to_string(),
        };
        let uri: Uri = base
            .parse()
            .map_err(|e: http::uri::InvalidUri| bad(&e.to_string()))?;
        let https = match uri.scheme_str() {
            Some("http") => false,
            Some("https") => true,
            _ => return Err(bad("expected http://HOST[:PORT] or https://HOST[:PORT]")),
        };
        if uri.authority().is_none() {
            return Err(bad("no host"));
        }
        if uri.query().is_some() {
            return Err(bad("no query string allowed"));
        }
        let mut connector = HttpConnector::new();
        connector.set_connect_timeout(Some(Duration::from_secs(timeouts.connect)));
        connector.set_nodelay(true);
        connector.enforce_http(false);
        // Roots are loaded only for https (reading the system store costs a
        // few ms); a plain-http client gets a config that is never used.
        let tls = if https {
            roots.client_config()?
        } else {
            rustls::ClientConfig::builder_with_provider(Arc::new(
                rustls::crypto::ring::default_provider(),
            ))
            .with_safe_default_protocol_versions()
            .map_err(|e| ClientError::Tls(e.to_string()))?
            .with_root_certificates(rustls::RootCertStore::empty())
            .with_no_client_auth()
        };
        let connector = HttpsConnectorBuilder::new()
            .with_tls_config(tls)
            .https_or_http()
            .enable_http1()
            .enable_http2()
            .wrap_connector(connector);
        let client = Client::builder(TokioExecutor::new())
            .pool_idle_timeout(Duration::from_secs(30))
            .build(connector);
        Ok(Http {
            client,
            base: base.trim_end_matches('/').to_string(),
            counters: Arc::new(Counters::default()),
            timeouts,
            token: None,
            chunk_gets: false,
        })
    }

    /// Sends `Authorization: Bearer TOKEN` on every request.
    pub fn with_token(mut self, token: Option<String>) -> Self {
        self.token = token;
        self
    }

    /// Fetch chunks with `GET /v1/chunks/{id}` (cacheable by any HTTP
    /// cache or CDN) instead of the batched `POST /v1/chunks/fetch`.
    pub fn with_chunk_gets(mut self, on: bool) -> Self {
        self.chunk_gets = on;
        self
    }

    pub fn chunk_gets(&self) -> bool {
        self.chunk_gets
    }

    /// The same client (connection pool, settings) with its own byte and
    /// request counters, e.g. for the next check of an agent.
    pub fn fresh(&self) -> Http {
        Http {
            counters: Arc::new(Counters::default()),
            ..self.clone()
        }
    }

    pub fn base(&self) -> &str {
        &self.base
    }

    pub fn bytes_down(&self) -> u64 {
        self.counters.body_bytes_down.load(Ordering::Relaxed)
    }

    pub fn requests(&self) -> u64 {
        self.counters.requests.load(Ordering::Relaxed)
    }

    /// Sends a request and waits for the response headers.
    pub async fn send(
        &self,
        method: Method,
        path: &str,
        content_type: Option<&str>,
        extra: &[(header::HeaderName, HeaderValue)],
        body: Bytes,
    ) -> Result<Response<Incoming>, ClientError> {
        let url = format!("{}{}", self.base, path);
        let mut b = Request::builder()
            .method(method)
            .uri(&url)
            .header(header::USER_AGENT, USER_AGENT);
        if let Some(ct) = content_type {
            b = b.header(header::CONTENT_TYPE, ct);
        }
        if let Some(t) = &self.token {
            b = b.header(header::AUTHORIZATION, format!("Bearer {t}"));
        }
        for (k, v) in extra {
            b = b.header(k, v);
        }
        self.counters
            .body_bytes_up
            .fetch_add(body.len() as u64, Ordering::Relaxed);
        self.counters.requests.fetch_add(1, Ordering::Relaxed);
        let req = b
            .body(Full::new(body))
            .map_err(|e| ClientError::InvalidUrl {
                url: url.clone(),
                reason: e.to_string(),
            })?;
        let fut = self.client.request(req);
        match tokio::time::timeout(Duration::from_secs(self.timeouts.read), fut).await {
            Err(_) => Err(ClientError::Timeout {
                what: url,
                secs: self.timeouts.read,
            }),
            Ok(Err(e)) => Err(ClientError::Connect {
                url,
                reason: with_tls_hint(error_chain(&e)),
            }),
            Ok(Ok(r)) => Ok(r),
        }
    }

    /// Reads the next piece of a body, with the read timeout; counts bytes.
    pub async fn next_piece(
        &self,
        body: &mut Incoming,
        what: &str,
    ) -> Result<Option<Bytes>, ClientError> {
        loop {
            let f =
                tokio::time::timeout(Duration::from_secs(self.timeouts.read), body.frame()).await;
            let frame = match f {
                Err(_) => {
                    return Err(ClientError::Timeout {
                        what: what.to_string(),
                        secs: self.timeouts.read,
                    })
                }
                Ok(None) => return Ok(None),
                Ok(Some(Err(e))) => {
                    return Err(ClientError::protocol(
                        what,
                        format!("connection broke: {}", error_chain(&e)),
                    ))
                }
                Ok(Some(Ok(frame))) => frame,
            };
            if let Ok(data) = frame.into_data() {
                self.counters
                    .body_bytes_down
                    .fetch_add(data.len() as u64, Ordering::Relaxed);
                return Ok(Some(data));
            }
        }
    }

    /// Reads a whole body of at most `max` bytes.
    pub async fn read_body(
        &self,
        resp: Response<Incoming>,
        max: u64,
        what: &str,
    ) -> Result<Bytes, ClientError> {
        let mut body = resp.into_body();
        let mut out = BytesMut::new();
        while let Some(piece) = self.next_piece(&mut body, what).await? {
            if out.len() as u64 + piece.len() as u64 > max {
                return Err(ClientError::TooLarge {
                    what: what.to_string(),
                    max,
                });
            }
            out.extend_from_slice(&piece);
        }
        Ok(out.freeze())
    }

    /// Turns a non-success response into an error carrying the server's text.
    pub async fn check(
        &self,
        resp: Response<Incoming>,
        what: &str,
    ) -> Result<Response<Incoming>, ClientError> {
        let status = resp.status();
        if status.is_success() || status == StatusCode::NOT_MODIFIED {
            return Ok(resp);
        }
        // Seconds only (the HTTP-date form is not worth a date parser),
        // capped at a day so a hostile server cannot park a client forever.
        let retry_after = resp
            .headers()
            .get(http::header::RETRY_AFTER)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().parse::<u64>().ok())
            .map(|s| s.min(86_400));
        let text = self
            .read_body(resp, 4096, what)
            .await
            .map(|b| String::from_utf8_lossy(&b).trim().to_string())
            .unwrap_or_default();
        Err(ClientError::Server {
            what: what.to_string(),
            status: status.as_u16(),
            message: if text.is_empty() {
                status.canonical_reason().unwrap_or("error").to_string()
            } else {
                text
            },
            retry_after,
        })
    }
}

/// Attempts of one small request (record, manifest) whose connection fails.
pub const REQUEST_ATTEMPTS: u32 = 4;

/// Runs `request` until it succeeds, fails for a reason other than the
/// network (see [`ClientError::is_network`]), or failed
/// [`REQUEST_ATTEMPTS`] times; waits 0.5 s, 1 s, 2 s (plus up to 50%
/// jitter) in between. The last network failure comes back as
/// [`ClientError::GaveUp`].
pub async fn with_retries<T, F, Fut>(what: &str, mut request: F) -> Result<T, ClientError>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<T, ClientError>>,
{
    let mut attempt = 0u32;
    loop {
        attempt += 1;
        match request().await {
            Err(e) if e.is_network() && attempt < REQUEST_ATTEMPTS => {
                let delay = backoff(attempt);
                tracing::warn!("{e}; retrying in {delay:?}");
                tokio::time::sleep(delay).await;
            }
            Err(e) if e.is_network() => {
                return Err(ClientError::GaveUp {
                    what: what.to_string(),
                    attempts: attempt,
                    source: Box::new(e),
                })
            }
            other => return other,
        }
    }
}

/// 250 ms doubled per failure, plus up to 50% jitter (a fleet cut off at
/// once does not come back in step).
pub fn backoff(failures: u32) -> Duration {
    let base = Duration::from_millis(250u64 << failures.min(6));
    let mut r = [0u8; 2];
    let frac = match getrandom::getrandom(&mut r) {
        Ok(()) => f64::from(u16::from_le_bytes(r)) / f64::from(u16::MAX),
        Err(_) => 0.5,
    };
    base + base.mul_f64(0.5 * frac)
}

/// Header map helper for tests and callers.
pub fn headers(pairs: &[(header::HeaderName, &str)]) -> HeaderMap {
    let mut m = HeaderMap::new();
    for (k, v) in pairs {
        if let Ok(v) = HeaderValue::from_str(v) {
            m.insert(k.clone(), v);
        }
    }
    m
}

/// A certificate the client refused gets a hint on what to do about it.
fn with_tls_hint(reason: String) -> String {
    if reason.contains("invalid peer certificate") {
        format!(
            "{reason} (the server's TLS certificate is not trusted: it must chain to the \
             system's CAs or to the CA given with --ca FILE, and name the host in the URL)"
        )
    } else {
        reason
    }
}

fn error_chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut cur = e.source();
    while let Some(c) = cur {
        s.push_str(": ");
        s.push_str(&c.to_string());
        cur = c.source();
    }
    s
}
