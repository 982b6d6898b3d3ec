//! `GET /v1/manifests/{id}`: the signed envelope as stored, or, for a client
//! that accepts it, zstd-compressed against the manifest it already has
//! (`?base=ID`). Compression runs on the blocking pool; results are cached
//! because a broadcast deployment asks for the same pair again and again.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use ferry_protocol::manifest_delta::{self, BASE_HEADER, CONTENT_TYPE};
use ferry_protocol::ManifestId;
use http::{header, HeaderMap, Response, StatusCode};

use crate::api::{blocking, CBOR};
use crate::body::{full, RespBody};
use crate::error::ApiError;
use crate::serve::ServerState;

const IMMUTABLE: &str = "public, max-age=31536000, immutable";
/// zstd level for manifests: fast enough per request, cached anyway.
const LEVEL: i32 = 9;
/// Cached compressed manifests kept at most (then the cache starts over).
const CACHE_ENTRIES: usize = 64;

type Key = (ManifestId, Option<ManifestId>);

/// Compressed manifests by (manifest, base); `None` body: not smaller.
#[derive(Default)]
pub struct Cache(Mutex<HashMap<Key, Option<(Bytes, bool)>>>);

impl Cache {
    fn get(&self, k: &Key) -> Option<Option<(Bytes, bool)>> {
        self.0.lock().ok()?.get(k).cloned()
    }

    fn put(&self, k: Key, v: Option<(Bytes, bool)>) {
        if let Ok(mut m) = self.0.lock() {
            if m.len() >= CACHE_ENTRIES {
                m.clear();
            }
            m.insert(k, v);
        }
    }
}

fn accepts_compressed(headers: &HeaderMap) -> bool {
    headers
        .get_all(header::ACCEPT)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|t| t.split(';').next().map(str::trim) == Some(CONTENT_TYPE))
}

fn parse_base(query: Option<&str>) -> Result<Option<ManifestId>, ApiError> {
    let Some(q) = query else { return Ok(None) };
    let mut base = None;
    for pair in q.split('&').filter(|p| !p.is_empty()) {
        match pair.split_once('=') {
            Some(("base", v)) => {
                base = Some(
                    v.parse()
                        .map_err(|e| ApiError::bad_request(format!("base manifest id: {e}")))?,
                )
            }
            _ => {
                return Err(ApiError::bad_request(format!(
                    "unknown query parameter {:?} (only base=MANIFEST_ID)",
                    pair.chars().take(64).collect::<String>()
                )))
            }
        }
    }
    Ok(base)
}

pub async fn get_manifest(
    st: Arc<ServerState>,
    id: &str,
    query: Option<&str>,
    headers: &HeaderMap,
) -> Result<Response<RespBody>, ApiError> {
    let id: ManifestId = id
        .parse()
        .map_err(|e| ApiError::bad_request(format!("manifest id: {e}")))?;
    let base = parse_base(query)?.filter(|b| *b != id);
    let compressed = accepts_compressed(headers);
    let want_base = base.filter(|_| compressed);
    let (m, b) = blocking(&st, move |s| {
        let m = s.get_manifest(&id)?;
        let b = match want_base {
            Some(b) => s.get_manifest(&b)?,
            None => None,
        };
        Ok((m, b))
    })
    .await?;
    let m = Bytes::from(m.ok_or_else(|| ApiError::not_found(format!("no manifest {id}")))?);
    let plain = || {
        Response::builder()
            .status(StatusCode::OK)
            .header(header::CONTENT_TYPE, CBOR)
            .header(header::CACHE_CONTROL, IMMUTABLE)
            .header(header::VARY, "accept")
            .header(header::ETAG, format!("\"{id}\""))
    };
    if !compressed {
        return plain().body(full(m)).map_err(ApiError::internal);
    }
    // A base the server does not have is no error: compress without one.
    let key = (id, b.as_ref().and(want_base));
    let packed = match st.manifest_cache.get(&key) {
        Some(v) => v,
        None => {
            let m = m.clone();
            let v = tokio::task::spawn_blocking(move || {
                let z = manifest_delta::encode(&m, b.as_deref(), LEVEL).ok()?;
                (z.len() < m.len()).then(|| (Bytes::from(z), b.is_some()))
            })
            .await?;
            st.manifest_cache.put(key, v.clone());
            v
        }
    };
    let Some((body, used_base)) = packed else {
        return plain().body(full(m)).map_err(ApiError::internal);
    };
    let mut r = Response::builder()
        .status(StatusCode::OK)
        .header(header::CONTENT_TYPE, CONTENT_TYPE)
        .header(header::CACHE_CONTROL, IMMUTABLE)
        .header(header::VARY, "accept");
    r = match (used_base, key.1) {
        (true, Some(b)) => r
            .header(BASE_HEADER, b.to_hex())
            .header(header::ETAG, format!("\"{id}.z.{}\"", b.short())),
        _ => r.header(header::ETAG, format!("\"{id}.z\"")),
    };
    r.body(full(body)).map_err(ApiError::internal)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base_query_is_strict() {
        assert_eq!(parse_base(None).unwrap(), None);
        let id = ManifestId([7; 32]);
        assert_eq!(
            parse_base(Some(&format!("base={}", id.to_hex()))).unwrap(),
            Some(id)
        );
        assert!(parse_base(Some("base=zz")).is_err());
        assert!(parse_base(Some("other=1")).is_err());
    }

    #[test]
    fn accept_parsing() {
        let mut h = HeaderMap::new();
        assert!(!accepts_compressed(&h));
        h.insert(
            header::ACCEPT,
            format!("application/cbor, {CONTENT_TYPE};q=1")
                .parse()
                .unwrap(),
        );
        assert!(accepts_compressed(&h));
    }
}
