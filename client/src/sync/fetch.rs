//! Fetching missing chunks in a few batched streams. Each stream asks for a
//! contiguous run of ids and must get them back in that order; every chunk
//! is decompressed and hash-checked off the async threads before it is
//! written. A broken stream is retried from the first chunk not received.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use bytes::{Buf, BytesMut};
use ferry_protocol::chunk::decode_payload;
use ferry_protocol::frame::{Frame, StreamDecoder};
use ferry_protocol::messages::{FetchRequest, MAX_IDS_PER_REQUEST};
use ferry_protocol::{ChunkId, ManifestId, VerifiedChunk};
use indicatif::ProgressBar;
use tokio::sync::Semaphore;
use tokio::task::JoinSet;

use crate::error::ClientError;
use crate::http::Http;

/// Receives each verified chunk (called on a blocking thread).
pub type Sink = Arc<dyn Fn(VerifiedChunk) -> Result<(), ClientError> + Send + Sync>;

/// Attempts per stream before giving up.
const ATTEMPTS: u32 = 4;
/// Chunks being verified and written per stream at once.
const IN_FLIGHT: usize = 8;

/// Totals of a fetch.
#[derive(Debug, Default)]
pub struct FetchStats {
    pub chunks: AtomicU64,
    pub raw_bytes: AtomicU64,
    pub retries: AtomicU64,
}

/// Fetches `wanted` (id, expected length) over up to `streams` concurrent
/// requests and hands every verified chunk to `sink`.
pub async fn fetch_chunks(
    http: &Http,
    wanted: Vec<(ChunkId, u32)>,
    have: Option<ManifestId>,
    streams: usize,
    sink: Sink,
    bar: ProgressBar,
) -> Result<Arc<FetchStats>, ClientError> {
    let stats = Arc::new(FetchStats::default());
    if wanted.is_empty() {
        return Ok(stats);
    }
    // Small updates use one request; big ones spread over a few streams,
    // balanced by bytes.
    let total: u64 = wanted.iter().map(|w| u64::from(w.1)).sum();
    let n = (total / (4 << 20)).clamp(1, streams.max(1) as u64) as usize;
    let per = total.div_ceil(n as u64);
    let mut groups: Vec<Vec<(ChunkId, u32)>> = vec![Vec::new()];
    let mut acc = 0u64;
    for w in wanted {
        if acc >= per && groups.len() < n {
            groups.push(Vec::new());
            acc = 0;
        }
        acc += u64::from(w.1);
        if let Some(g) = groups.last_mut() {
            g.push(w);
        }
    }
    let mut tasks = JoinSet::new();
    for g in groups {
        let (http, sink, stats, bar) = (http.clone(), sink.clone(), stats.clone(), bar.clone());
        tasks.spawn(async move { run_stream(&http, g, have, sink, &stats, &bar).await });
    }
    while let Some(r) = tasks.join_next().await {
        r??;
    }
    Ok(stats)
}

/// One stream: requests (in sub-batches of the per-request limit) until all
/// of `ids` arrived, retrying transient failures from where it stopped.
async fn run_stream(
    http: &Http,
    ids: Vec<(ChunkId, u32)>,
    have: Option<ManifestId>,
    sink: Sink,
    stats: &FetchStats,
    bar: &ProgressBar,
) -> Result<(), ClientError> {
    let mut next = 0usize;
    let mut failures = 0u32;
    while next < ids.len() {
        let end = (next + MAX_IDS_PER_REQUEST).min(ids.len());
        let part = &ids[next..end];
        match one_request(http, part, have, &sink, stats, bar).await {
            (got, Ok(())) => {
                next += got;
                failures = 0;
            }
            (got, Err(e)) => {
                next += got;
                failures = if got > 0 { 1 } else { failures + 1 };
                if !e.is_transient() {
                    return Err(e);
                }
                if failures >= ATTEMPTS {
                    return Err(ClientError::GaveUp {
                        what: "chunk fetch".into(),
                        attempts: failures,
                        source: Box::new(e),
                    });
                }
                stats.retries.fetch_add(1, Ordering::Relaxed);
                let delay = Duration::from_millis(250 << failures.min(5));
                tracing::warn!(
                    "chunk stream failed ({e}); resuming after {} chunks in {delay:?}",
                    next
                );
                tokio::time::sleep(delay).await;
            }
        }
    }
    Ok(())
}

/// One fetch request. Returns how many chunks were received *and written*
/// (a prefix of `ids`) along with the outcome.
async fn one_request(
    http: &Http,
    ids: &[(ChunkId, u32)],
    have: Option<ManifestId>,
    sink: &Sink,
    stats: &FetchStats,
    bar: &ProgressBar,
) -> (usize, Result<(), ClientError>) {
    let req = FetchRequest {
        ids: ids.iter().map(|w| w.0).collect(),
        have,
    };
    let resp = match http.fetch(&req).await {
        Ok(r) => r,
        Err(e) => return (0, Err(e)),
    };
    let mut body = resp.into_body();
    let mut buf = BytesMut::new();
    let mut dec = StreamDecoder::new();
    let mut received = 0usize;
    let limiter = Arc::new(Semaphore::new(IN_FLIGHT));
    let mut writers: JoinSet<Result<(), ClientError>> = JoinSet::new();
    let outcome: Result<(), ClientError> = async {
        loop {
            // Decode every complete frame in the buffer.
            while let Some((frame, used)) = dec.next(&buf)? {
                match frame {
                    Frame::Chunk { id, codec, raw_len, payload } => {
                        let Some(&(want, want_len)) = ids.get(received) else {
                            return Err(ClientError::protocol("chunk fetch", "server sent more chunks than asked for"));
                        };
                        if id != want {
                            return Err(ClientError::protocol(
                                "chunk fetch",
                                format!("server sent chunk {} where {} was expected", id.short(), want.short()),
                            ));
                        }
                        if raw_len != want_len {
                            return Err(ClientError::protocol(
                                "chunk fetch",
                                format!("chunk {} is {raw_len} bytes, the manifest says {want_len}", id.short()),
                            ));
                        }
                        let payload = payload.to_vec();
                        received += 1;
                        let permit = limiter.clone().acquire_owned().await.map_err(|e| ClientError::Internal(e.to_string()))?;
                        let sink = sink.clone();
                        writers.spawn_blocking(move || {
                            let _permit = permit;
                            let chunk = decode_payload(id, codec, raw_len, &payload)?;
                            sink(chunk)
                        });
                        stats.chunks.fetch_add(1, Ordering::Relaxed);
                        stats.raw_bytes.fetch_add(u64::from(raw_len), Ordering::Relaxed);
                        bar.inc(u64::from(raw_len));
                    }
                    Frame::Missing { id } => {
                        return Err(ClientError::protocol(
                            "chunk fetch",
                            format!("the server does not have chunk {id}; the version is incomplete there"),
                        ));
                    }
                    Frame::End => {}
                }
                buf.advance(used);
                // Surface write or verification errors early.
                while let Some(r) = writers.try_join_next() {
                    r??;
                }
            }
            match http.next_piece(&mut body, "chunk fetch").await? {
                Some(piece) => buf.extend_from_slice(&piece),
                None => break,
            }
        }
        dec.finish(&buf)?;
        if received != ids.len() {
            return Err(ClientError::protocol(
                "chunk fetch",
                format!("stream ended after {received} of {} chunks", ids.len()),
            ));
        }
        Ok(())
    }
    .await;
    // Wait for every write that was started, so `received` chunks are on disk.
    let mut written_ok = true;
    let mut first_err = None;
    while let Some(r) = writers.join_next().await {
        let r = r.map_err(ClientError::from).and_then(|x| x);
        if let Err(e) = r {
            written_ok = false;
            first_err.get_or_insert(e);
        }
    }
    match (outcome, first_err) {
        (_, Some(e)) => (0, Err(e)),
        (Ok(()), None) => (received, Ok(())),
        (Err(e), None) => (if written_ok { received } else { 0 }, Err(e)),
    }
}
