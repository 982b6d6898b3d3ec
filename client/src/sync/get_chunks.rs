//! Fetching missing chunks one `GET /v1/chunks/{id}` each, for deployments
//! behind an HTTP cache or CDN (`--fetch get`). Every response is a
//! one-chunk stream that any cache may keep forever (content-addressed,
//! `immutable`), so the second client behind a cache costs the origin
//! nothing. The price: one request per chunk (a few thousand for a large
//! update, ~50 bytes of headers each over HTTP/2) instead of a few batched
//! ones, and no server-side batching. Chunks are verified and written off
//! the async threads exactly as in the batched path.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use ferry_protocol::chunk::decode_payload;
use ferry_protocol::frame::{max_payload_len, Frame, StreamDecoder, MAX_RAW_LEN};
use ferry_protocol::ChunkId;
use http::Method;
use indicatif::ProgressBar;
use tokio::sync::Semaphore;
use tokio::task::JoinSet;

use super::fetch::{FetchStats, Sink};
use super::run::VerifiedRun;
use crate::error::ClientError;
use crate::http::Http;

/// Attempts per chunk before giving up.
const ATTEMPTS: u32 = 4;
/// Requests in flight per configured stream.
const PER_STREAM: usize = 4;

/// Fetches every chunk of `wanted` by GET, `streams * 4` at a time.
pub async fn fetch_by_get(
    http: &Http,
    wanted: Vec<(ChunkId, u32)>,
    streams: usize,
    sink: Sink,
    bar: ProgressBar,
) -> Result<Arc<FetchStats>, ClientError> {
    let stats = Arc::new(FetchStats::default());
    let permits = Arc::new(Semaphore::new(streams.max(1) * PER_STREAM));
    let mut tasks = JoinSet::new();
    for (id, len) in wanted {
        let permit = permits
            .clone()
            .acquire_owned()
            .await
            .map_err(|e| ClientError::Internal(e.to_string()))?;
        // Fail early: a finished task's error stops the others.
        while let Some(r) = tasks.try_join_next() {
            r??;
        }
        let (http, sink, stats, bar) = (http.clone(), sink.clone(), stats.clone(), bar.clone());
        tasks.spawn(async move {
            let _permit = permit;
            one_chunk(&http, id, len, sink, &stats, &bar).await
        });
    }
    while let Some(r) = tasks.join_next().await {
        r??;
    }
    Ok(stats)
}

async fn one_chunk(
    http: &Http,
    id: ChunkId,
    len: u32,
    sink: Sink,
    stats: &FetchStats,
    bar: &ProgressBar,
) -> Result<(), ClientError> {
    let mut failures = 0;
    let body = loop {
        match get(http, &id).await {
            Ok(b) => break b,
            Err(e) if e.is_transient() && failures + 1 < ATTEMPTS => {
                failures += 1;
                stats.retries.fetch_add(1, Ordering::Relaxed);
                let delay = Duration::from_millis(250 << failures);
                tracing::warn!("chunk {}: {e}; retrying in {delay:?}", id.short());
                tokio::time::sleep(delay).await;
            }
            Err(e) => return Err(e),
        }
    };
    tokio::task::spawn_blocking(move || {
        let (codec, raw_len, payload) = single_frame(&body, &id)?;
        if raw_len != len {
            return Err(ClientError::protocol(
                "chunk fetch",
                format!(
                    "chunk {} is {raw_len} bytes, the manifest says {len}",
                    id.short()
                ),
            ));
        }
        let chunk = decode_payload(id, codec, raw_len, payload)?;
        sink(VerifiedRun::single(chunk.as_slice()))
    })
    .await??;
    stats.chunks.fetch_add(1, Ordering::Relaxed);
    stats.raw_bytes.fetch_add(u64::from(len), Ordering::Relaxed);
    bar.inc(u64::from(len));
    Ok(())
}

async fn get(http: &Http, id: &ChunkId) -> Result<bytes::Bytes, ClientError> {
    let what = format!("chunk {}", id.short());
    let resp = http
        .send(
            Method::GET,
            &format!("/v1/chunks/{id}"),
            None,
            &[],
            bytes::Bytes::new(),
        )
        .await?;
    let resp = http.check(resp, &what).await?;
    let max = max_payload_len(MAX_RAW_LEN) + 1024;
    http.read_body(resp, max, &what).await
}

/// The one chunk frame of a `GET /v1/chunks/{id}` answer, which must be
/// the chunk asked for.
fn single_frame<'a>(
    body: &'a [u8],
    want: &ChunkId,
) -> Result<(ferry_protocol::Codec, u32, &'a [u8]), ClientError> {
    let mut d = StreamDecoder::new();
    let mut pos = 0;
    let mut found = None;
    while let Some((frame, used)) = d.next(&body[pos..])? {
        pos += used;
        match frame {
            Frame::Chunk {
                id,
                codec,
                raw_len,
                payload,
            } if id == *want && found.is_none() => found = Some((codec, raw_len, payload)),
            Frame::End => {}
            _ => {
                return Err(ClientError::protocol(
                    "chunk fetch",
                    format!("unexpected frame in the answer for chunk {}", want.short()),
                ))
            }
        }
    }
    d.finish(&body[pos..])?;
    found.ok_or_else(|| {
        ClientError::protocol(
            "chunk fetch",
            format!("the answer for chunk {} holds no chunk", want.short()),
        )
    })
}
