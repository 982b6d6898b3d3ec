//! A small HTTP client over hyper-util: one base URL, pooled connections,
//! timeouts on connect, headers and every body read, and counters of the
//! body bytes moved (what `--json` reports as `bytes_downloaded`).

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use http::{header, HeaderMap, HeaderValue, Method, Request, Response, StatusCode, Uri};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
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

/// A client bound to one server.
#[derive(Clone)]
pub struct Http {
    client: Client<HttpConnector, Full<Bytes>>,
    base: String,
    pub counters: Arc<Counters>,
    timeouts: Timeouts,
    token: Option<String>,
}

const USER_AGENT: &str = concat!("ferry/", env!("CARGO_PKG_VERSION"));

impl Http {
    /// `base` is the server URL, e.g. `http://deploy.example:8080` (a path
    /// prefix is kept). Only `http` is supported by this build.
    pub fn new(base: &str, timeouts: Timeouts) -> Result<Http, ClientError> {
        let bad = |reason: &str| ClientError::InvalidUrl {
            url: base.to_string(),
            reason: reason.to_string(),
        };
        let uri: Uri = base
            .parse()
            .map_err(|e: http::uri::InvalidUri| bad(&e.to_string()))?;
        match uri.scheme_str() {
            Some("http") => {}
            Some("https") => {
                return Err(bad(
                    "https is not supported by this build; use http:// on a trusted network \
                     or behind a TLS-terminating proxy (everything clients run is signed anyway)",
                ))
            }
            _ => return Err(bad("expected http://HOST[:PORT]")),
        }
        if uri.authority().is_none() {
            return Err(bad("no host"));
        }
        if uri.query().is_some() {
            return Err(bad("no query string allowed"));
        }
        let mut connector = HttpConnector::new();
        connector.set_connect_timeout(Some(Duration::from_secs(timeouts.connect)));
        connector.set_nodelay(true);
        let client = Client::builder(TokioExecutor::new())
            .pool_idle_timeout(Duration::from_secs(30))
            .build(connector);
        Ok(Http {
            client,
            base: base.trim_end_matches('/').to_string(),
            counters: Arc::new(Counters::default()),
            timeouts,
            token: None,
        })
    }

    /// Sends `Authorization: Bearer TOKEN` on every request.
    pub fn with_token(mut self, token: Option<String>) -> Self {
        self.token = token;
        self
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
                reason: error_chain(&e),
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
