//! Read endpoints: channel records, manifests, versions, single chunks.

use std::sync::Arc;

use ferry_protocol::frame::{encode_end, encode_frame_header, encode_header};
use ferry_protocol::messages::{History, MAX_HISTORY_RECORDS};
use ferry_protocol::names::{validate_app, validate_channel, validate_version};
use ferry_protocol::ChunkId;
use ferry_store::Backend;
use http::{header, HeaderMap, Response, StatusCode};

use crate::body::{empty, full, RespBody};
use crate::error::ApiError;
use crate::serve::ServerState;

pub const CBOR: &str = "application/cbor";
pub const CHUNKS: &str = "application/x-ferry-chunks";
const IMMUTABLE: &str = "public, max-age=31536000, immutable";

/// Runs a store call on the blocking pool.
pub async fn blocking<T, F>(st: &Arc<ServerState>, f: F) -> Result<T, ApiError>
where
    T: Send + 'static,
    F: FnOnce(&dyn Backend) -> Result<T, ApiError> + Send + 'static,
{
    let store = st.store.clone();
    tokio::task::spawn_blocking(move || f(store.as_ref())).await?
}

pub fn health() -> Response<RespBody> {
    Response::builder()
        .header(header::CONTENT_TYPE, "text/plain")
        .body(full("ok\n"))
        .unwrap_or_else(|_| Response::new(empty()))
}

fn ok(content_type: &str) -> http::response::Builder {
    Response::builder()
        .status(StatusCode::OK)
        .header(header::CONTENT_TYPE, content_type)
}

fn build(b: http::response::Builder, body: RespBody) -> Result<Response<RespBody>, ApiError> {
    b.body(body).map_err(ApiError::internal)
}

/// ETag of a channel record: a short hash of its exact bytes.
pub fn etag_of(bytes: &[u8]) -> String {
    format!("\"{}\"", &blake3::hash(bytes).to_hex()[..32])
}

pub fn etag_matches(headers: &HeaderMap, etag: &str) -> bool {
    headers
        .get_all(header::IF_NONE_MATCH)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|t| {
            let t = t.trim();
            t == "*" || t == etag || t.strip_prefix("W/") == Some(etag)
        })
}

pub async fn get_channel(
    st: Arc<ServerState>,
    app: &str,
    channel: &str,
    headers: &HeaderMap,
) -> Result<Response<RespBody>, ApiError> {
    validate_app(app).map_err(|e| ApiError::bad_request(e.to_string()))?;
    validate_channel(channel).map_err(|e| ApiError::bad_request(e.to_string()))?;
    let (a, c) = (app.to_string(), channel.to_string());
    let rec = blocking(&st, move |s| Ok(s.get_channel(&a, &c)?)).await?;
    let Some(rec) = rec else {
        return Err(ApiError::not_found(format!(
            "app {app} has no channel {channel} (promote a version to it first)"
        )));
    };
    let etag = etag_of(&rec);
    // A short max-age lets an HTTP cache answer a fleet's checks; a new
    // record reaches clients within that time. 0: caches revalidate always.
    let cache = match st.config.record_max_age {
        0 => "public, no-cache".to_string(),
        n => format!("public, max-age={n}"),
    };
    let b = Response::builder()
        .header(header::ETAG, &etag)
        .header(header::CACHE_CONTROL, cache);
    if etag_matches(headers, &etag) {
        return build(b.status(StatusCode::NOT_MODIFIED), empty());
    }
    build(
        b.status(StatusCode::OK).header(header::CONTENT_TYPE, CBOR),
        full(rec),
    )
}

pub async fn get_version(
    st: Arc<ServerState>,
    app: &str,
    version: &str,
) -> Result<Response<RespBody>, ApiError> {
    validate_app(app).map_err(|e| ApiError::bad_request(e.to_string()))?;
    validate_version(version).map_err(|e| ApiError::bad_request(e.to_string()))?;
    let (a, v) = (app.to_string(), version.to_string());
    let found = blocking(&st, move |s| {
        let Some(id) = s.get_version(&a, &v)? else {
            return Ok(None);
        };
        Ok(s.get_manifest(&id)?.map(|m| (id, m)))
    })
    .await?;
    let (id, m) =
        found.ok_or_else(|| ApiError::not_found(format!("app {app} has no version {version}")))?;
    // A version never changes contents once published: cacheable forever.
    build(
        ok(CBOR)
            .header("x-ferry-manifest-id", id.to_hex())
            .header(header::CACHE_CONTROL, IMMUTABLE)
            .header(header::ETAG, format!("\"{id}\"")),
        full(m),
    )
}

/// Versions of an app, one `version manifest-id` line each (for operators).
pub async fn list_versions(
    st: Arc<ServerState>,
    app: &str,
) -> Result<Response<RespBody>, ApiError> {
    validate_app(app).map_err(|e| ApiError::bad_request(e.to_string()))?;
    let a = app.to_string();
    let list = blocking(&st, move |s| Ok(s.list_versions(&a)?)).await?;
    let mut text = String::new();
    for (v, id) in list {
        text.push_str(&format!("{v} {id}\n"));
    }
    build(ok("text/plain; charset=utf-8"), full(text))
}

/// Every record of a channel, oldest first (`?limit=N`: the newest N,
/// default 100, at most 10,000), as the exact signed envelopes.
pub async fn get_history(
    st: Arc<ServerState>,
    app: &str,
    channel: &str,
    query: Option<&str>,
) -> Result<Response<RespBody>, ApiError> {
    validate_app(app).map_err(|e| ApiError::bad_request(e.to_string()))?;
    validate_channel(channel).map_err(|e| ApiError::bad_request(e.to_string()))?;
    let mut limit = 100usize;
    for (k, v) in query
        .unwrap_or("")
        .split('&')
        .filter(|p| !p.is_empty())
        .map(|p| p.split_once('=').unwrap_or((p, "")))
    {
        match k {
            "limit" => {
                limit = v
                    .parse()
                    .ok()
                    .filter(|n| (1..=MAX_HISTORY_RECORDS).contains(n))
                    .ok_or_else(|| {
                        ApiError::bad_request(format!(
                            "limit must be a number from 1 to {MAX_HISTORY_RECORDS}"
                        ))
                    })?
            }
            other => {
                return Err(ApiError::bad_request(format!(
                    "unknown query parameter {:?}",
                    other.chars().take(40).collect::<String>()
                )))
            }
        }
    }
    let (a, c) = (app.to_string(), channel.to_string());
    let mut records = blocking(&st, move |s| Ok(s.channel_history(&a, &c)?)).await?;
    if records.is_empty() {
        return Err(ApiError::not_found(format!(
            "channel {app}/{channel} has no records"
        )));
    }
    let skip = records.len().saturating_sub(limit);
    records.drain(..skip);
    build(ok(CBOR), full(History { records }.encode()))
}

/// One chunk as a one-frame chunk stream; immutable, so any HTTP cache or
/// CDN can keep it.
pub async fn get_chunk(
    st: Arc<ServerState>,
    id: &str,
    headers: &HeaderMap,
) -> Result<Response<RespBody>, ApiError> {
    let id: ChunkId = id
        .parse()
        .map_err(|e| ApiError::bad_request(format!("chunk id: {e}")))?;
    let etag = format!("\"{id}\"");
    // Content-addressed: a cache revalidating its copy needs no read.
    if etag_matches(headers, &etag) {
        return build(
            Response::builder()
                .status(StatusCode::NOT_MODIFIED)
                .header(header::CACHE_CONTROL, IMMUTABLE)
                .header(header::ETAG, etag),
            empty(),
        );
    }
    let v = blocking(&st, move |s| Ok(s.get_chunk(&id)?)).await?;
    let v = v.ok_or_else(|| ApiError::not_found(format!("no chunk {id}")))?;
    let out = frame_from_stored(&id, &v, true)?;
    build(
        ok(CHUNKS)
            .header(header::CACHE_CONTROL, IMMUTABLE)
            .header(header::ETAG, etag),
        full(out),
    )
}

/// Encodes a stored chunk value as a frame (with stream header and end
/// frame when `whole_stream`).
pub fn frame_from_stored(
    id: &ChunkId,
    value: &[u8],
    whole_stream: bool,
) -> Result<Vec<u8>, ApiError> {
    let (codec, raw_len, payload) =
        ferry_store::parse_value(id, value).map_err(ApiError::internal)?;
    let mut out = Vec::with_capacity(payload.len() + 64);
    if whole_stream {
        encode_header(&mut out);
    }
    encode_frame_header(&mut out, id, codec, raw_len, payload.len() as u32);
    out.extend_from_slice(payload);
    if whole_stream {
        encode_end(&mut out);
    }
    Ok(out)
}
