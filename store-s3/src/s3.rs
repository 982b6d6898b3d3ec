//! `s3://BUCKET/PREFIX` and the S3 client built from the standard AWS
//! environment (AWS_ENDPOINT_URL, AWS_REGION, AWS_ACCESS_KEY_ID,
//! AWS_SECRET_ACCESS_KEY, AWS_SESSION_TOKEN, ...).

use std::sync::Arc;
use std::time::Duration;

use ferry_store::StoreError;
use object_store::aws::{AmazonS3Builder, S3ConditionalPut};
use object_store::RetryConfig;

use crate::ObjectBackend;

/// A parsed `s3://BUCKET/PREFIX`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct S3Location {
    pub bucket: String,
    /// Without slashes at either end; may be empty.
    pub prefix: String,
}

/// Parses `s3://BUCKET[/PREFIX]`.
pub fn parse_s3_url(url: &str) -> Result<S3Location, String> {
    let rest = url
        .strip_prefix("s3://")
        .ok_or_else(|| format!("{url:?}: expected s3://BUCKET/PREFIX"))?;
    let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
    let bucket_ok = (3..=63).contains(&bucket.len())
        && bucket
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'.' || b == b'-');
    if !bucket_ok {
        return Err(format!(
            "{url:?}: {bucket:?} is not a bucket name (3-63 of a-z, 0-9, '.', '-')"
        ));
    }
    let prefix = prefix.trim_matches('/').to_string();
    if prefix
        .split('/')
        .any(|p| p.is_empty() || p == "." || p == "..")
        && !prefix.is_empty()
    {
        return Err(format!(
            "{url:?}: the prefix has an empty, '.' or '..' part"
        ));
    }
    Ok(S3Location {
        bucket: bucket.to_string(),
        prefix,
    })
}

/// The endpoint the environment names, if any (the S3-specific variable
/// wins, as in the AWS SDKs).
fn env_endpoint() -> Option<String> {
    ["AWS_ENDPOINT_URL_S3", "AWS_ENDPOINT_URL", "AWS_ENDPOINT"]
        .iter()
        .find_map(|k| std::env::var(k).ok().filter(|v| !v.is_empty()))
}

fn is_loopback(endpoint: &str) -> bool {
    let host = endpoint
        .split_once("://")
        .map_or(endpoint, |(_, r)| r)
        .split(['/', ':'])
        .next()
        .unwrap_or("");
    host == "localhost" || host.starts_with("127.") || endpoint.contains("://[::1]")
}

impl ObjectBackend {
    /// A backend on S3 (or a compatible service) configured from the
    /// environment; checks access before returning, so a missing bucket or
    /// bad credentials are one clear error at start.
    pub fn s3(url: &str) -> Result<ObjectBackend, StoreError> {
        let loc = parse_s3_url(url).map_err(StoreError::Unsupported)?;
        // Request signing uses ring (object_store's `ring` feature); TLS
        // uses rustls without a bundled provider, so install ring's. An
        // error only means a provider is already installed.
        let _ = rustls::crypto::ring::default_provider().install_default();
        let mut b = AmazonS3Builder::from_env()
            .with_bucket_name(&loc.bucket)
            // ETag compare-and-swap: `PutMode::Create` sends
            // `If-None-Match: *`, `PutMode::Update` `If-Match: <etag>`.
            .with_conditional_put(S3ConditionalPut::ETagMatch)
            // Fail within seconds rather than the default three minutes:
            // the server's clients retry on their own.
            .with_retry(RetryConfig {
                max_retries: 3,
                retry_timeout: Duration::from_secs(30),
                ..RetryConfig::default()
            });
        if let Some(endpoint) = env_endpoint() {
            if endpoint.starts_with("http://") {
                b = b.with_allow_http(true);
            }
            if is_loopback(&endpoint) {
                b = b.with_virtual_hosted_style_request(false);
            }
        }
        let store = b.build().map_err(|e| StoreError::Object {
            what: "configure the S3 client for".into(),
            key: url.into(),
            message: e.to_string(),
        })?;
        let backend = ObjectBackend::new(Arc::new(store), &loc.prefix)?;
        backend.check_access()?;
        Ok(backend)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_bucket_and_prefix() {
        let l = parse_s3_url("s3://ferry-prod/eu/one/").unwrap();
        assert_eq!(
            (l.bucket.as_str(), l.prefix.as_str()),
            ("ferry-prod", "eu/one")
        );
        assert_eq!(parse_s3_url("s3://bkt").unwrap().prefix, "");
        for bad in [
            "http://b/p",
            "s3://",
            "s3://B/p",
            "s3://b/../x",
            "s3://ok-bucket/a//b",
        ] {
            assert!(parse_s3_url(bad).is_err(), "{bad}");
        }
        assert!(is_loopback("http://127.0.0.1:9000"));
        assert!(is_loopback("http://localhost:9000/"));
        assert!(!is_loopback("https://s3.eu-west-1.amazonaws.com"));
    }
}
