//! Typed calls of the Ferry HTTP API (see docs/protocol.md).

use bytes::Bytes;
use ferry_protocol::channel::MAX_CHANNEL_BYTES;
use ferry_protocol::manifest::MAX_MANIFEST_BYTES;
use ferry_protocol::manifest_delta;
use ferry_protocol::messages::{
    FetchRequest, History, IdList, PublishResponse, UploadResponse, MAX_HISTORY_BODY,
};
use ferry_protocol::report::{Report, Status, MAX_STATUS_BYTES};
use ferry_protocol::{ChunkId, ManifestId};
use http::{header, HeaderValue, Method, Response, StatusCode};
use hyper::body::Incoming;

use crate::error::ClientError;
use crate::http::Http;

pub const CBOR: &str = "application/cbor";
pub const CHUNKS: &str = "application/x-ferry-chunks";
const ENVELOPE_SLACK: u64 = 4096;

/// A channel record as fetched: exact bytes and the ETag.
pub struct FetchedRecord {
    pub bytes: Bytes,
    pub etag: Option<String>,
}

impl Http {
    /// GET the channel record; `None` when the server says 304 (unchanged
    /// since `etag`). A missing channel is an error.
    pub async fn get_channel(
        &self,
        app: &str,
        channel: &str,
        etag: Option<&str>,
    ) -> Result<Option<FetchedRecord>, ClientError> {
        let what = format!("channel record {app}/{channel}");
        let mut extra = Vec::new();
        if let Some(e) = etag.and_then(|e| HeaderValue::from_str(e).ok()) {
            extra.push((header::IF_NONE_MATCH, e));
        }
        let path = format!("/v1/apps/{app}/channels/{channel}");
        let resp = self
            .send(Method::GET, &path, None, &extra, Bytes::new())
            .await?;
        let resp = self.check(resp, &what).await?;
        if resp.status() == StatusCode::NOT_MODIFIED {
            return Ok(None);
        }
        let etag = resp
            .headers()
            .get(header::ETAG)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        let bytes = self
            .read_body(resp, MAX_CHANNEL_BYTES as u64 + ENVELOPE_SLACK, &what)
            .await?;
        Ok(Some(FetchedRecord { bytes, etag }))
    }

    /// GET the current channel record if there is one (for promote).
    pub async fn get_channel_opt(
        &self,
        app: &str,
        channel: &str,
    ) -> Result<Option<Bytes>, ClientError> {
        match self.get_channel(app, channel, None).await {
            Ok(r) => Ok(r.map(|r| r.bytes)),
            Err(ClientError::Server { status: 404, .. }) => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// GET the newest `limit` records of a channel, oldest first.
    pub async fn get_history(
        &self,
        app: &str,
        channel: &str,
        limit: usize,
    ) -> Result<Vec<Vec<u8>>, ClientError> {
        let what = format!("history of {app}/{channel}");
        let path = format!("/v1/apps/{app}/channels/{channel}/history?limit={limit}");
        let resp = self
            .send(Method::GET, &path, None, &[], Bytes::new())
            .await?;
        let resp = self.check(resp, &what).await?;
        let b = self.read_body(resp, MAX_HISTORY_BODY as u64, &what).await?;
        Ok(History::decode(&b)?.records)
    }

    /// POST a report of this client's latest outcome.
    pub async fn post_report(&self, app: &str, report: &Report) -> Result<(), ClientError> {
        let what = "report";
        let resp = self
            .send(
                Method::POST,
                &format!("/v1/apps/{app}/reports"),
                Some(CBOR),
                &[],
                report.encode().into(),
            )
            .await?;
        self.check(resp, what).await?;
        Ok(())
    }

    /// GET the status of an app: channel records and client counts.
    pub async fn get_status(&self, app: &str) -> Result<Status, ClientError> {
        let what = format!("status of {app}");
        let resp = self
            .send(
                Method::GET,
                &format!("/v1/apps/{app}/status"),
                None,
                &[],
                Bytes::new(),
            )
            .await?;
        let resp = self.check(resp, &what).await?;
        let b = self.read_body(resp, MAX_STATUS_BYTES as u64, &what).await?;
        Ok(Status::decode(&b)?)
    }

    /// GET a signed manifest by id.
    pub async fn get_manifest(&self, id: &ManifestId) -> Result<Bytes, ClientError> {
        let what = format!("manifest {}", id.short());
        self.get_envelope(&format!("/v1/manifests/{id}"), &what)
            .await
    }

    /// GET a manifest, offering the server `base` (a manifest this client
    /// has, with its exact envelope bytes) to compress against. Returns the
    /// envelope bytes; the caller checks them as any fetched manifest.
    pub async fn get_manifest_against(
        &self,
        id: &ManifestId,
        base: Option<(&ManifestId, &[u8])>,
    ) -> Result<Bytes, ClientError> {
        let what = format!("manifest {}", id.short());
        let path = match base {
            Some((b, _)) => format!("/v1/manifests/{id}?base={b}"),
            None => format!("/v1/manifests/{id}"),
        };
        let accept = HeaderValue::from_static(manifest_delta::CONTENT_TYPE);
        let resp = self
            .send(
                Method::GET,
                &path,
                None,
                &[(header::ACCEPT, accept)],
                Bytes::new(),
            )
            .await?;
        let resp = self.check(resp, &what).await?;
        let zstd = resp
            .headers()
            .get(header::CONTENT_TYPE)
            .is_some_and(|v| v.as_bytes() == manifest_delta::CONTENT_TYPE.as_bytes());
        let used_base = resp
            .headers()
            .get(manifest_delta::BASE_HEADER)
            .map(|v| v.to_str().unwrap_or("").to_string());
        let body = self
            .read_body(resp, MAX_MANIFEST_BYTES as u64 + ENVELOPE_SLACK, &what)
            .await?;
        if !zstd {
            return Ok(body);
        }
        let dict = match (used_base, base) {
            (None, _) => None,
            (Some(named), Some((b, bytes))) if named == b.to_hex() => Some(bytes),
            (Some(named), _) => {
                return Err(ClientError::protocol(
                    "manifest fetch",
                    format!(
                        "server compressed against manifest {}, which this client did not offer",
                        named.chars().take(64).collect::<String>()
                    ),
                ))
            }
        };
        let body = tokio::task::spawn_blocking({
            let dict = dict.map(<[u8]>::to_vec);
            move || manifest_delta::decode(&body, dict.as_deref())
        })
        .await
        .map_err(|e| ClientError::protocol("manifest fetch", e.to_string()))??;
        Ok(Bytes::from(body))
    }

    /// GET the signed manifest of an app's version.
    pub async fn get_version(&self, app: &str, version: &str) -> Result<Bytes, ClientError> {
        let what = format!("version {version} of {app}");
        self.get_envelope(&format!("/v1/apps/{app}/versions/{version}"), &what)
            .await
    }

    /// GET a manifest envelope, bounded by the largest manifest accepted.
    async fn get_envelope(&self, path: &str, what: &str) -> Result<Bytes, ClientError> {
        let resp = self
            .send(Method::GET, path, None, &[], Bytes::new())
            .await?;
        let resp = self.check(resp, what).await?;
        self.read_body(resp, MAX_MANIFEST_BYTES as u64 + ENVELOPE_SLACK, what)
            .await
    }

    /// POST the ids; returns those the server lacks.
    pub async fn missing(&self, ids: &[ChunkId]) -> Result<Vec<ChunkId>, ClientError> {
        let what = "missing-chunk query";
        let body = IdList { ids: ids.to_vec() }.encode();
        let resp = self
            .send(
                Method::POST,
                "/v1/chunks/missing",
                Some(CBOR),
                &[],
                body.into(),
            )
            .await?;
        let resp = self.check(resp, what).await?;
        let b = self
            .read_body(resp, (ids.len() as u64 + 1) * 32 + 1024, what)
            .await?;
        let list = IdList::decode(&b)?;
        Ok(list.ids)
    }

    /// POST a chunk stream.
    pub async fn upload(&self, stream: Bytes) -> Result<UploadResponse, ClientError> {
        let what = "chunk upload";
        let resp = self
            .send(Method::POST, "/v1/chunks", Some(CHUNKS), &[], stream)
            .await?;
        let resp = self.check(resp, what).await?;
        let b = self.read_body(resp, 1024, what).await?;
        Ok(UploadResponse::decode(&b)?)
    }

    /// PUT a signed manifest envelope.
    pub async fn publish_manifest(&self, envelope: Vec<u8>) -> Result<ManifestId, ClientError> {
        let what = "manifest publish";
        let resp = self
            .send(
                Method::PUT,
                "/v1/manifests",
                Some(CBOR),
                &[],
                envelope.into(),
            )
            .await?;
        let resp = self.check(resp, what).await?;
        let b = self.read_body(resp, 1024, what).await?;
        Ok(PublishResponse::decode(&b)?.manifest_id)
    }

    /// PUT a signed channel record envelope.
    pub async fn publish_channel(
        &self,
        app: &str,
        channel: &str,
        envelope: Vec<u8>,
    ) -> Result<(), ClientError> {
        let what = format!("channel publish {app}/{channel}");
        let resp = self
            .send(
                Method::PUT,
                &format!("/v1/apps/{app}/channels/{channel}"),
                Some(CBOR),
                &[],
                envelope.into(),
            )
            .await?;
        self.check(resp, &what).await?;
        Ok(())
    }

    /// POST a batched fetch; the caller reads the streamed chunk frames.
    pub async fn fetch(&self, req: &FetchRequest) -> Result<Response<Incoming>, ClientError> {
        let what = "chunk fetch";
        let resp = self
            .send(
                Method::POST,
                "/v1/chunks/fetch",
                Some(CBOR),
                &[],
                req.encode().into(),
            )
            .await?;
        self.check(resp, what).await
    }
}
