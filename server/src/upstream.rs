//! The mirror's HTTP client for its upstream server: GETs with a size limit
//! and timeouts, `http://` or `https://` (rustls, system roots or a given CA
//! file). Only the cacheable GET endpoints are used, so a mirror works with
//! any upstream whatever its batched-fetch encoding.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use http::{header, Request, StatusCode, Uri};
use http_body_util::{BodyExt, Full};
use hyper_rustls::{HttpsConnector, HttpsConnectorBuilder};
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;

/// Seconds to wait for a connection, for headers, and between body pieces.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
const READ_TIMEOUT: Duration = Duration::from_secs(60);

/// Why an upstream request failed.
#[derive(Debug, thiserror::Error)]
pub enum UpstreamError {
    #[error("upstream URL {0:?}: {1}")]
    Url(String, String),
    #[error("upstream TLS: {0}")]
    Tls(String),
    #[error("upstream {0}: {1}")]
    Request(String, String),
    #[error("upstream {0}: no answer within {1:?}")]
    Timeout(String, Duration),
    #[error("upstream {0}: answered {1}")]
    Status(String, StatusCode),
    #[error("upstream {0}: body larger than {1} bytes")]
    TooLarge(String, usize),
}

/// An upstream answer that was read completely.
pub struct Answer {
    pub status: StatusCode,
    pub body: Bytes,
}

/// A client bound to the upstream's base URL.
#[derive(Clone)]
pub struct Upstream {
    client: Client<HttpsConnector<HttpConnector>, Full<Bytes>>,
    base: String,
}

impl Upstream {
    /// `ca`: PEM file of the CAs the upstream's certificate must chain to;
    /// `None`: the system's roots.
    pub fn new(base: &str, ca: Option<&Path>) -> Result<Upstream, UpstreamError> {
        let uri: Uri = base
            .parse()
            .map_err(|e: http::uri::InvalidUri| UpstreamError::Url(base.into(), e.to_string()))?;
        let https = match uri.scheme_str() {
            Some("http") => false,
            Some("https") => true,
            _ => {
                return Err(UpstreamError::Url(
                    base.into(),
                    "expected http://HOST[:PORT] or https://HOST[:PORT]".into(),
                ))
            }
        };
        if uri.authority().is_none() || uri.query().is_some() {
            return Err(UpstreamError::Url(
                base.into(),
                "expected a host and no query".into(),
            ));
        }
        let roots = if https {
            roots(ca)?
        } else {
            rustls::RootCertStore::empty()
        };
        let tls = rustls::ClientConfig::builder_with_provider(Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .map_err(|e| UpstreamError::Tls(e.to_string()))?
        .with_root_certificates(roots)
        .with_no_client_auth();
        let mut http = HttpConnector::new();
        http.set_connect_timeout(Some(CONNECT_TIMEOUT));
        http.set_nodelay(true);
        http.enforce_http(false);
        let connector = HttpsConnectorBuilder::new()
            .with_tls_config(tls)
            .https_or_http()
            .enable_http1()
            .enable_http2()
            .wrap_connector(http);
        let client = Client::builder(TokioExecutor::new())
            .pool_idle_timeout(Duration::from_secs(60))
            .build(connector);
        Ok(Upstream {
            client,
            base: base.trim_end_matches('/').to_string(),
        })
    }

    /// GET `path`; any status is returned, the body read up to `max` bytes.
    pub async fn get(
        &self,
        path: &str,
        extra: &[(header::HeaderName, String)],
        max: usize,
    ) -> Result<Answer, UpstreamError> {
        self.send(http::Method::GET, path, extra, Bytes::new(), None, max)
            .await
    }

    /// POST `body` (for forwarding client reports).
    pub async fn post(
        &self,
        path: &str,
        content_type: &str,
        body: Bytes,
    ) -> Result<Answer, UpstreamError> {
        self.send(
            http::Method::POST,
            path,
            &[],
            body,
            Some(content_type),
            4096,
        )
        .await
    }

    async fn send(
        &self,
        method: http::Method,
        path: &str,
        extra: &[(header::HeaderName, String)],
        body: Bytes,
        content_type: Option<&str>,
        max: usize,
    ) -> Result<Answer, UpstreamError> {
        let url = format!("{}{}", self.base, path);
        let mut b = Request::builder().method(method).uri(&url).header(
            header::USER_AGENT,
            concat!("ferry-mirror/", env!("CARGO_PKG_VERSION")),
        );
        if let Some(ct) = content_type {
            b = b.header(header::CONTENT_TYPE, ct);
        }
        for (k, v) in extra {
            b = b.header(k, v);
        }
        let req = b
            .body(Full::new(body))
            .map_err(|e| UpstreamError::Url(url.clone(), e.to_string()))?;
        let resp = match tokio::time::timeout(READ_TIMEOUT, self.client.request(req)).await {
            Err(_) => return Err(UpstreamError::Timeout(url, READ_TIMEOUT)),
            Ok(Err(e)) => return Err(UpstreamError::Request(url, chain(&e))),
            Ok(Ok(r)) => r,
        };
        let (parts, mut body) = resp.into_parts();
        let mut out = BytesMut::new();
        loop {
            let frame = match tokio::time::timeout(READ_TIMEOUT, body.frame()).await {
                Err(_) => return Err(UpstreamError::Timeout(url, READ_TIMEOUT)),
                Ok(None) => break,
                Ok(Some(Err(e))) => return Err(UpstreamError::Request(url, chain(&e))),
                Ok(Some(Ok(f))) => f,
            };
            if let Ok(d) = frame.into_data() {
                if out.len() + d.len() > max {
                    return Err(UpstreamError::TooLarge(url, max));
                }
                out.extend_from_slice(&d);
            }
        }
        Ok(Answer {
            status: parts.status,
            body: out.freeze(),
        })
    }
}

fn roots(ca: Option<&Path>) -> Result<rustls::RootCertStore, UpstreamError> {
    use rustls_pki_types::pem::PemObject;
    let mut roots = rustls::RootCertStore::empty();
    let certs = match ca {
        Some(p) => rustls_pki_types::CertificateDer::pem_file_iter(p)
            .and_then(|it| it.collect::<Result<Vec<_>, _>>())
            .map_err(|e| UpstreamError::Tls(format!("--mirror-ca {}: {e}", p.display())))?,
        None => rustls_native_certs::load_native_certs().certs,
    };
    let (added, _) = roots.add_parsable_certificates(certs);
    if added == 0 {
        return Err(UpstreamError::Tls(match ca {
            Some(p) => format!("--mirror-ca {}: no usable CA certificate", p.display()),
            None => "no usable CA certificate in the system store".into(),
        }));
    }
    Ok(roots)
}

fn chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut cur = e.source();
    while let Some(c) = cur {
        s.push_str(": ");
        s.push_str(&c.to_string());
        cur = c.source();
    }
    s
}
