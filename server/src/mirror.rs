//! `ferry serve --mirror-of URL`: a pull-through mirror for a branch office.
//!
//! It is a [`Backend`] over the local store: a chunk, manifest or version
//! the local store lacks is fetched from the upstream's cacheable GET
//! endpoints, verified, stored, and then served like any other, so every
//! endpoint (including the batched fetch, however it encodes its response)
//! works unchanged. Channel records are re-checked upstream at most every
//! `record_ttl` (a conditional GET) and served from the local copy when the
//! upstream cannot be reached.
//!
//! Verification: a chunk must hash to its id; a manifest envelope's body
//! must hash to its id; records and manifests must be signed envelopes of
//! the right kind for the app and channel asked for, and, when the mirror
//! is configured with `--app-key`s, signed by one of them. Clients verify
//! signatures and hashes themselves, so they need no trust in the mirror.
//!
//! Calls come from blocking threads (the server's store calls run in
//! `spawn_blocking`); upstream requests run on the runtime via its handle.

use std::collections::HashMap;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use ferry_protocol::channel::MAX_CHANNEL_BYTES;
use ferry_protocol::frame::{max_payload_len, Frame, StreamDecoder, MAX_RAW_LEN};
use ferry_protocol::manifest::MAX_MANIFEST_BYTES;
use ferry_protocol::report::{Report, StatusRow};
use ferry_protocol::signed::{KIND_CHANNEL, KIND_MANIFEST};
use ferry_protocol::{ChannelRecord, ChunkId, Envelope, Manifest, ManifestId, PublicKey};
use ferry_store::{Backend, StoreError, StoreStats, StoredChunk};
use http::{header, StatusCode};
use rayon::prelude::*;
use tokio::runtime::Handle;
use tokio::sync::Semaphore;
use tokio::task::JoinSet;

use crate::metrics::Metrics;
use crate::single_flight::Flights;
use crate::upstream::{Upstream, UpstreamError};

/// Envelope overhead on top of a body limit.
const ENVELOPE_SLACK: usize = 4096;
/// Chunks fetched from the upstream at once for one batch.
const FILL_CONCURRENCY: usize = 16;
/// Longest wait for another request's fetch of the same object.
const FLIGHT_WAIT: Duration = Duration::from_secs(120);
/// Upstream timeout for a channel record: the local copy is the fallback,
/// so an agent's check should not hang on a slow upstream.
const RECORD_TIMEOUT: Duration = Duration::from_secs(5);

/// Mirror settings.
#[derive(Debug, Clone)]
pub struct MirrorConfig {
    /// Upstream server URL.
    pub upstream: String,
    /// CA file for an https upstream (else the system roots).
    pub ca: Option<std::path::PathBuf>,
    /// How long a channel record checked upstream is served without asking
    /// again.
    pub record_ttl: Duration,
    /// Publisher keys per app the mirror insists on (optional).
    pub app_keys: HashMap<String, Vec<PublicKey>>,
}

/// The local store with pull-through fills from the upstream.
pub struct Mirror {
    local: Arc<dyn Backend>,
    upstream: Upstream,
    rt: Handle,
    metrics: Arc<Metrics>,
    config: MirrorConfig,
    /// When each channel's record was last asked for upstream.
    checked: Mutex<HashMap<(String, String), Instant>>,
    /// Chunk and manifest fetches in progress (one per object).
    chunk_flights: Flights<ChunkId>,
    manifest_flights: Flights<String>,
    /// Channel record fetches in progress.
    record_flights: Flights<(String, String)>,
}

fn upstream_err(e: impl std::fmt::Display) -> StoreError {
    StoreError::Upstream(e.to_string())
}

impl Mirror {
    /// Must be called inside the tokio runtime that will serve.
    pub fn new(
        local: Arc<dyn Backend>,
        config: MirrorConfig,
        metrics: Arc<Metrics>,
    ) -> Result<Mirror, UpstreamError> {
        let upstream = Upstream::new(&config.upstream, config.ca.as_deref())?;
        Ok(Mirror {
            local,
            upstream,
            rt: Handle::current(),
            metrics,
            config,
            checked: Mutex::new(HashMap::new()),
            chunk_flights: Flights::default(),
            manifest_flights: Flights::default(),
            record_flights: Flights::default(),
        })
    }

    fn check_signature(
        &self,
        app: &str,
        env: &Envelope,
        kind: &'static str,
    ) -> Result<(), StoreError> {
        if let Some(keys) = self.config.app_keys.get(app) {
            env.verify(kind, keys)
                .map_err(|e| upstream_err(format!("{kind} of {app} from the upstream: {e}")))?;
        }
        Ok(())
    }

    /// Fetches, verifies and stores the chunks (waiting for the ones other
    /// requests are fetching already); returns the values by id (absent:
    /// the upstream does not have it either).
    fn fill_chunks(&self, ids: &[ChunkId]) -> Result<HashMap<ChunkId, Vec<u8>>, StoreError> {
        let (mine, others) = self.chunk_flights.claim(ids);
        if !mine.keys.is_empty() {
            self.fetch_and_store_chunks(&mine.keys)?;
        }
        drop(mine);
        for f in others {
            f.wait(FLIGHT_WAIT);
        }
        let values = self.local.get_chunks(ids)?;
        Ok(ids
            .iter()
            .zip(values)
            .filter_map(|(id, v)| v.map(|v| (*id, v)))
            .collect())
    }

    fn fetch_and_store_chunks(&self, ids: &[ChunkId]) -> Result<(), StoreError> {
        let fetched = self
            .rt
            .block_on(get_chunks_concurrently(&self.upstream, ids));
        let mut bodies = Vec::with_capacity(fetched.len());
        for (id, r) in fetched {
            match r {
                Ok(Some(b)) => bodies.push((id, b)),
                Ok(None) => self.metrics.mirror("chunk", "absent"),
                Err(e) => {
                    self.metrics.mirror("chunk", "error");
                    return Err(upstream_err(e));
                }
            }
        }
        let verified: Vec<StoredChunk> = bodies
            .par_iter()
            .map(|(id, body)| parse_one_chunk(id, body))
            .collect::<Result<_, _>>()
            .inspect_err(|_| self.metrics.mirror("chunk", "rejected"))?;
        let stored = self.local.put_chunks(&verified)?;
        self.metrics.chunks_stored(stored);
        for _ in 0..verified.len() {
            self.metrics.mirror("chunk", "filled");
        }
        Ok(())
    }

    /// Fetches a manifest envelope by id (once, however many ask at the
    /// same time), checks it hashes to the id, keeps it.
    fn fill_manifest(&self, id: &ManifestId) -> Result<Option<Vec<u8>>, StoreError> {
        let (mine, others) = self.manifest_flights.claim(&[id.to_hex()]);
        if mine.keys.is_empty() {
            drop(mine);
            for f in others {
                f.wait(FLIGHT_WAIT);
            }
            if let Some(m) = self.local.get_manifest(id)? {
                return Ok(Some(m));
            }
            // The other fetch failed: try ourselves.
            return self.fill_manifest_now(id);
        }
        self.fill_manifest_now(id)
    }

    fn fill_manifest_now(&self, id: &ManifestId) -> Result<Option<Vec<u8>>, StoreError> {
        let path = format!("/v1/manifests/{id}");
        let max = MAX_MANIFEST_BYTES + ENVELOPE_SLACK;
        let a = self
            .rt
            .block_on(
                self.upstream
                    .get(&path, &[(header::ACCEPT, CBOR.into())], max),
            )
            .map_err(|e| {
                self.metrics.mirror("manifest", "error");
                upstream_err(e)
            })?;
        match a.status {
            StatusCode::OK => {}
            StatusCode::NOT_FOUND => {
                self.metrics.mirror("manifest", "absent");
                return Ok(None);
            }
            s => {
                self.metrics.mirror("manifest", "error");
                return Err(upstream_err(format!("GET {path} answered {s}")));
            }
        }
        let (got, _) = self.keep_manifest(&a.body, max)?;
        if got != *id {
            self.metrics.mirror("manifest", "rejected");
            return Err(upstream_err(format!(
                "GET {path} returned manifest {got} instead"
            )));
        }
        self.metrics.mirror("manifest", "filled");
        Ok(Some(a.body.to_vec()))
    }

    /// Decodes and checks a manifest envelope from the upstream and stores it.
    fn keep_manifest(&self, body: &[u8], max: usize) -> Result<(ManifestId, Manifest), StoreError> {
        let bad = |e: String| {
            self.metrics.mirror("manifest", "rejected");
            upstream_err(format!("manifest from the upstream: {e}"))
        };
        let env = Envelope::decode(body, max).map_err(|e| bad(e.to_string()))?;
        if env.kind != KIND_MANIFEST {
            return Err(bad(format!("kind {:?}", env.kind)));
        }
        let m = Manifest::decode(&env.body).map_err(|e| bad(e.to_string()))?;
        self.check_signature(&m.app, &env, KIND_MANIFEST)?;
        let id = ManifestId::of(&env.body);
        self.local.cache_manifest(body, id, &m)?;
        Ok((id, m))
    }

    /// Asks the upstream for a channel's record unless it was asked within
    /// the TTL; keeps a newer one. Upstream trouble is logged, not fatal:
    /// the local copy is served.
    fn refresh_channel(&self, app: &str, channel: &str) {
        let key = (app.to_string(), channel.to_string());
        if self.checked_recently(&key) {
            return;
        }
        // One request asks at a time. The others serve the local copy, or,
        // when there is none yet (a channel's first client), wait for the
        // answer rather than say 404.
        let (mine, others) = self.record_flights.claim(std::slice::from_ref(&key));
        if mine.keys.is_empty() {
            if !matches!(self.local.get_channel(app, channel), Ok(Some(_))) {
                for f in others {
                    f.wait(RECORD_TIMEOUT + Duration::from_secs(1));
                }
            }
            return;
        }
        if self.checked_recently(&key) {
            return; // a flight ended just before this one was claimed
        }
        match self.fetch_channel(app, channel) {
            Ok(result) => self.metrics.mirror("record", result),
            Err(e) => {
                self.metrics.mirror("record", "error");
                tracing::warn!("mirror: channel {app}/{channel}: {e}; serving the local copy");
            }
        }
        // A failure is not retried within the TTL either: a dead upstream
        // is not hammered.
        let mut checked = self.checked.lock().unwrap_or_else(|p| p.into_inner());
        if checked.len() > 100_000 {
            checked.clear();
        }
        checked.insert(key, Instant::now());
        drop(checked);
        drop(mine);
    }

    /// Whether the channel's record was asked for upstream within the TTL.
    fn checked_recently(&self, key: &(String, String)) -> bool {
        let checked = self.checked.lock().unwrap_or_else(|p| p.into_inner());
        checked
            .get(key)
            .is_some_and(|t| t.elapsed() < self.config.record_ttl)
    }

    fn fetch_channel(&self, app: &str, channel: &str) -> Result<&'static str, StoreError> {
        let path = format!("/v1/apps/{app}/channels/{channel}");
        let mut extra = Vec::new();
        if let Some(cur) = self.local.get_channel(app, channel)? {
            extra.push((header::IF_NONE_MATCH, crate::api::etag_of(&cur)));
        }
        let max = MAX_CHANNEL_BYTES + ENVELOPE_SLACK;
        let a = self
            .rt
            .block_on(tokio::time::timeout(
                RECORD_TIMEOUT,
                self.upstream.get(&path, &extra, max),
            ))
            .map_err(|_| upstream_err(format!("GET {path}: no answer within {RECORD_TIMEOUT:?}")))?
            .map_err(upstream_err)?;
        match a.status {
            StatusCode::NOT_MODIFIED => return Ok("unchanged"),
            StatusCode::NOT_FOUND => return Ok("absent"),
            StatusCode::OK => {}
            s => return Err(upstream_err(format!("GET {path} answered {s}"))),
        }
        let env = Envelope::decode(&a.body, max).map_err(|e| upstream_err(e.to_string()))?;
        if env.kind != KIND_CHANNEL {
            return Err(upstream_err(format!("record of kind {:?}", env.kind)));
        }
        let rec = ChannelRecord::decode(&env.body).map_err(|e| upstream_err(e.to_string()))?;
        if rec.app != app || rec.channel != channel {
            return Err(upstream_err(format!(
                "asked for {app}/{channel}, got a record for {}/{}",
                rec.app, rec.channel
            )));
        }
        self.check_signature(app, &env, KIND_CHANNEL)?;
        self.local.cache_channel(&a.body, &rec)?;
        Ok("filled")
    }

    /// Passes a client report on to the upstream, in the background.
    fn forward_report(&self, app: &str, report: &Report) {
        let up = self.upstream.clone();
        let path = format!("/v1/apps/{app}/reports");
        let body = Bytes::from(report.encode());
        let metrics = self.metrics.clone();
        self.rt.spawn(async move {
            match up.post(&path, CBOR, body).await {
                Ok(a) if a.status.is_success() => metrics.mirror("report", "forwarded"),
                Ok(a) => {
                    metrics.mirror("report", "error");
                    tracing::debug!(
                        "mirror: forwarding a report: upstream answered {}",
                        a.status
                    );
                }
                Err(e) => {
                    metrics.mirror("report", "error");
                    tracing::debug!("mirror: forwarding a report: {e}");
                }
            }
        });
    }
}

const CBOR: &str = "application/cbor";

type Fetched = (ChunkId, Result<Option<Bytes>, UpstreamError>);

/// GETs every chunk, [`FILL_CONCURRENCY`] at a time (over HTTP/2 to an
/// https upstream these share one connection).
async fn get_chunks_concurrently(up: &Upstream, ids: &[ChunkId]) -> Vec<Fetched> {
    let permits = Arc::new(Semaphore::new(FILL_CONCURRENCY));
    let mut set = JoinSet::new();
    for id in ids.iter().copied() {
        let up = up.clone();
        let permits = permits.clone();
        set.spawn(async move {
            let _p = permits.acquire_owned().await;
            (id, get_chunk_stream(&up, &id).await)
        });
    }
    let mut out = Vec::with_capacity(ids.len());
    while let Some(r) = set.join_next().await {
        match r {
            Ok(x) => out.push(x),
            Err(e) => tracing::error!("mirror: a chunk fetch task failed: {e}"),
        }
    }
    out
}

/// `GET /v1/chunks/{id}`: the one-frame chunk stream, or `None` on 404.
async fn get_chunk_stream(up: &Upstream, id: &ChunkId) -> Result<Option<Bytes>, UpstreamError> {
    let path = format!("/v1/chunks/{id}");
    let max = max_payload_len(MAX_RAW_LEN) as usize + 1024;
    let a = up.get(&path, &[], max).await?;
    match a.status {
        StatusCode::OK => Ok(Some(a.body)),
        StatusCode::NOT_FOUND => Ok(None),
        s => Err(UpstreamError::Status(path, s)),
    }
}

/// Decodes a one-chunk stream and verifies the chunk against `want`.
fn parse_one_chunk(want: &ChunkId, body: &[u8]) -> Result<StoredChunk, StoreError> {
    let bad = |e: String| upstream_err(format!("chunk {want} from the upstream: {e}"));
    let mut d = StreamDecoder::new();
    let mut pos = 0;
    let mut found = None;
    while let Some((frame, used)) = d.next(&body[pos..]).map_err(|e| bad(e.to_string()))? {
        pos += used;
        match frame {
            Frame::Chunk {
                id,
                codec,
                raw_len,
                payload,
            } if id == *want && found.is_none() => {
                found = Some(
                    StoredChunk::verify(id, codec, raw_len, payload.to_vec())
                        .map_err(|e| bad(e.to_string()))?,
                );
            }
            Frame::End => {}
            _ => return Err(bad("unexpected frame".into())),
        }
    }
    d.finish(&body[pos..]).map_err(|e| bad(e.to_string()))?;
    found.ok_or_else(|| bad("no chunk in the answer".into()))
}

/// Refuses writes a mirror never takes from clients.
fn read_only() -> StoreError {
    StoreError::Unsupported("this server is a read-only mirror; publish to its upstream".into())
}

impl Backend for Mirror {
    fn has_chunks(&self, ids: &[ChunkId]) -> Result<Vec<bool>, StoreError> {
        self.local.has_chunks(ids)
    }
    fn put_chunks(&self, _chunks: &[StoredChunk]) -> Result<u64, StoreError> {
        Err(read_only())
    }
    fn get_chunk(&self, id: &ChunkId) -> Result<Option<Vec<u8>>, StoreError> {
        if let Some(v) = self.local.get_chunk(id)? {
            return Ok(Some(v));
        }
        Ok(self.fill_chunks(std::slice::from_ref(id))?.remove(id))
    }
    fn get_chunks(&self, ids: &[ChunkId]) -> Result<Vec<Option<Vec<u8>>>, StoreError> {
        let mut values = self.local.get_chunks(ids)?;
        let mut missing: Vec<ChunkId> = ids
            .iter()
            .zip(&values)
            .filter(|(_, v)| v.is_none())
            .map(|(id, _)| *id)
            .collect();
        if missing.is_empty() {
            return Ok(values);
        }
        missing.sort_unstable();
        missing.dedup();
        let mut filled = self.fill_chunks(&missing)?;
        for (id, v) in ids.iter().zip(values.iter_mut()) {
            if v.is_none() {
                // Cloned, not removed: an id may repeat in one request.
                *v = filled.get(id).cloned();
            }
        }
        filled.clear();
        Ok(values)
    }
    fn app_keys(&self, app: &str) -> Result<Vec<PublicKey>, StoreError> {
        self.local.app_keys(app)
    }
    fn pin_app_key(&self, _app: &str, _key: PublicKey) -> Result<Vec<PublicKey>, StoreError> {
        Err(read_only())
    }
    fn put_manifest(
        &self,
        _envelope: &[u8],
        _id: ManifestId,
        _manifest: &Manifest,
    ) -> Result<bool, StoreError> {
        Err(read_only())
    }
    fn get_manifest(&self, id: &ManifestId) -> Result<Option<Vec<u8>>, StoreError> {
        if let Some(m) = self.local.get_manifest(id)? {
            return Ok(Some(m));
        }
        self.fill_manifest(id)
    }
    fn get_version(&self, app: &str, version: &str) -> Result<Option<ManifestId>, StoreError> {
        if let Some(id) = self.local.get_version(app, version)? {
            return Ok(Some(id));
        }
        let path = format!("/v1/apps/{app}/versions/{version}");
        let max = MAX_MANIFEST_BYTES + ENVELOPE_SLACK;
        let a = self
            .rt
            .block_on(self.upstream.get(&path, &[], max))
            .map_err(upstream_err)?;
        match a.status {
            StatusCode::OK => {}
            StatusCode::NOT_FOUND => return Ok(None),
            s => return Err(upstream_err(format!("GET {path} answered {s}"))),
        }
        let (id, m) = self.keep_manifest(&a.body, max)?;
        if m.app != app || m.version != version {
            return Err(upstream_err(format!(
                "asked for {app} {version}, got {} {}",
                m.app, m.version
            )));
        }
        self.metrics.mirror("manifest", "filled");
        Ok(Some(id))
    }
    fn list_versions(&self, app: &str) -> Result<Vec<(String, ManifestId)>, StoreError> {
        self.local.list_versions(app)
    }
    fn list_apps(&self) -> Result<Vec<String>, StoreError> {
        self.local.list_apps()
    }
    fn get_channel(&self, app: &str, channel: &str) -> Result<Option<Vec<u8>>, StoreError> {
        self.refresh_channel(app, channel);
        self.local.get_channel(app, channel)
    }
    fn put_channel_rotating(
        &self,
        _envelope: &[u8],
        _record: &ChannelRecord,
        _trusted_before: &[PublicKey],
    ) -> Result<(), StoreError> {
        Err(read_only())
    }
    fn rotated_app_keys(&self, app: &str) -> Result<Vec<PublicKey>, StoreError> {
        self.local.rotated_app_keys(app)
    }
    fn revoked_app_keys(&self, app: &str) -> Result<Vec<PublicKey>, StoreError> {
        self.local.revoked_app_keys(app)
    }
    fn channel_history(&self, app: &str, channel: &str) -> Result<Vec<Vec<u8>>, StoreError> {
        self.local.channel_history(app, channel)
    }
    fn channels_of(&self, app: &str) -> Result<Vec<(String, Vec<u8>)>, StoreError> {
        self.local.channels_of(app)
    }
    fn put_report(&self, app: &str, report: &Report, at: u64) -> Result<(), StoreError> {
        self.local.put_report(app, report, at)?;
        self.forward_report(app, report);
        Ok(())
    }
    fn report_counts(&self, app: &str) -> Result<Vec<StatusRow>, StoreError> {
        self.local.report_counts(app)
    }
    fn cache_manifest(
        &self,
        envelope: &[u8],
        id: ManifestId,
        manifest: &Manifest,
    ) -> Result<(), StoreError> {
        self.local.cache_manifest(envelope, id, manifest)
    }
    fn cache_channel(&self, envelope: &[u8], record: &ChannelRecord) -> Result<(), StoreError> {
        self.local.cache_channel(envelope, record)
    }
    fn stats(&self) -> Result<StoreStats, StoreError> {
        self.local.stats()
    }
    fn checkpoint(&self, out: &Path) -> Result<(), StoreError> {
        self.local.checkpoint(out)
    }
    fn ready(&self) -> Result<(), StoreError> {
        self.local.ready()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ferry_protocol::frame::{encode_end, encode_frame_header, encode_header};
    use ferry_protocol::{Codec, VerifiedChunk};

    fn stream(id: &ChunkId, payload: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        encode_header(&mut out);
        encode_frame_header(
            &mut out,
            id,
            Codec::Raw,
            payload.len() as u32,
            payload.len() as u32,
        );
        out.extend_from_slice(payload);
        encode_end(&mut out);
        out
    }

    #[test]
    fn upstream_chunks_must_hash_to_their_id() {
        let c = VerifiedChunk::from_data(vec![5; 3000]);
        let ok = parse_one_chunk(&c.id(), &stream(&c.id(), c.data())).unwrap();
        assert_eq!(ok.id(), c.id());
        // The right id on other bytes: rejected.
        let e = parse_one_chunk(&c.id(), &stream(&c.id(), &[6; 3000])).unwrap_err();
        assert!(e.to_string().contains("upstream"), "{e}");
        // Another chunk than the one asked for: rejected.
        let d = VerifiedChunk::from_data(vec![7; 3000]);
        assert!(parse_one_chunk(&c.id(), &stream(&d.id(), d.data())).is_err());
        // Truncated: rejected.
        let s = stream(&c.id(), c.data());
        assert!(parse_one_chunk(&c.id(), &s[..s.len() - 10]).is_err());
    }
}
