//! Fetching missing chunks in a few batched streams. Each stream asks for a
//! contiguous run of ids and must get them back in that order, one frame per
//! chunk or several in a group frame; every chunk is decompressed and
//! hash-checked off the async threads before it is written. A broken stream
//! is retried from the first chunk not received; the chunks of a group that
//! does not decode against the local files are asked for again singly.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use bytes::{Buf, BytesMut};
use ferry_protocol::chunk::decode_payload;
use ferry_protocol::frame::{Frame, StreamDecoder};
use ferry_protocol::group::GroupHeader;
use ferry_protocol::messages::{FetchRequest, MAX_IDS_PER_REQUEST};
use ferry_protocol::{ChunkId, ManifestId};
use indicatif::ProgressBar;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio::task::JoinSet;

use super::group::{decode_group, DeltaBase};
use super::run::VerifiedRun;

use crate::error::ClientError;
use crate::http::Http;

/// Receives each run of verified chunks (called on a blocking thread).
pub type Sink = Arc<dyn Fn(VerifiedRun<'_>) -> Result<(), ClientError> + Send + Sync>;

/// Attempts per stream before giving up.
const ATTEMPTS: u32 = 4;
/// KiB of payloads, decoded chunks and group references being verified and
/// written at once, across all streams: bounds the client's memory however
/// large the groups are. 16 MiB lets two large groups (4 MiB decoded
/// against an 8 MiB reference) decode at once, which is what two cores
/// use; more only raises the peak RSS (measured on pyarrow).
const DECODE_BUDGET_KIB: usize = 16 * 1024;

/// Decode tasks at once, across all streams, per core. Small chunks fit
/// the byte budget by the hundred; without this bound each waiting task
/// took a blocking thread of its own (40-odd threads on two cores for
/// pyarrow), and they only took turns on the cores and kept more memory.
const DECODE_TASKS_PER_CORE: usize = 2;

/// Totals of a fetch.
#[derive(Debug, Default)]
pub struct FetchStats {
    pub chunks: AtomicU64,
    pub raw_bytes: AtomicU64,
    pub retries: AtomicU64,
    /// Chunks that arrived in group frames.
    pub grouped: AtomicU64,
    /// Chunks of groups that did not decode here, fetched again singly.
    pub refetched: AtomicU64,
}

/// What the fetched chunks are for: the manifest being built (`want`) and
/// the version installed now (`base`, the reference of group frames).
#[derive(Clone, Default)]
pub struct FetchContext {
    pub want: Option<ManifestId>,
    pub base: Option<Arc<DeltaBase>>,
}

/// Fetches `wanted` (id, expected length) over up to `streams` concurrent
/// requests and hands every verified chunk to `sink`. `cells` (empty, or
/// one per wanted id: its file and
/// [`GROUP_CELL`](ferry_protocol::group::GROUP_CELL) of file offset) says
/// where a stream may begin: only where the cell changes, so no group the
/// server prepared is cut in two.
pub async fn fetch_chunks(
    http: &Http,
    wanted: Vec<(ChunkId, u32)>,
    cells: &[u64],
    ctx: FetchContext,
    streams: usize,
    sink: Sink,
    bar: ProgressBar,
) -> Result<Arc<FetchStats>, ClientError> {
    if http.chunk_gets() {
        return super::get_chunks::fetch_by_get(http, wanted, streams, sink, bar).await;
    }
    let stats = Arc::new(FetchStats::default());
    if wanted.is_empty() {
        return Ok(stats);
    }
    let groups = split_streams(wanted, cells, streams);
    let cores = std::thread::available_parallelism().map_or(2, |n| n.get());
    let budget = Arc::new(Semaphore::new(DECODE_BUDGET_KIB));
    let slots = Arc::new(Semaphore::new(DECODE_TASKS_PER_CORE * cores));
    let mut tasks = JoinSet::new();
    for g in groups {
        let s = Stream {
            http: http.clone(),
            ctx: ctx.clone(),
            sink: sink.clone(),
            stats: stats.clone(),
            bar: bar.clone(),
            budget: budget.clone(),
            slots: slots.clone(),
        };
        tasks.spawn(async move { s.run(g).await });
    }
    let result: Result<(), ClientError> = async {
        while let Some(r) = tasks.join_next().await {
            r??;
        }
        Ok(())
    }
    .await;
    // The first failure ends the fetch: the other streams are aborted, not
    // waited for.
    drop(tasks);
    super::group::release_scratch();
    result.map(|()| stats)
}

/// A decode task's share of the slots and of the byte budget.
type Reserved = (OwnedSemaphorePermit, OwnedSemaphorePermit);

/// One stream of requests and what it shares with the others.
struct Stream {
    http: Http,
    ctx: FetchContext,
    sink: Sink,
    stats: Arc<FetchStats>,
    bar: ProgressBar,
    budget: Arc<Semaphore>,
    slots: Arc<Semaphore>,
}

impl Stream {
    /// Fetches `ids`, then, one by one, the chunks of groups that did not
    /// decode here.
    async fn run(&self, ids: Vec<(ChunkId, u32)>) -> Result<(), ClientError> {
        let retry = self.fetch_all(&ids, false).await?;
        if !retry.is_empty() {
            self.stats
                .refetched
                .fetch_add(retry.len() as u64, Ordering::Relaxed);
            let again = self.fetch_all(&retry, true).await?;
            if !again.is_empty() {
                return Err(ClientError::protocol(
                    "chunk fetch",
                    "the server sent a group frame to a request for single chunks",
                ));
            }
        }
        Ok(())
    }

    /// Requests (in sub-batches of the per-request limit) until all of
    /// `ids` arrived, retrying transient failures from where it stopped.
    /// Returns the chunks of groups to fetch again singly.
    async fn fetch_all(
        &self,
        ids: &[(ChunkId, u32)],
        plain: bool,
    ) -> Result<Vec<(ChunkId, u32)>, ClientError> {
        let mut next = 0usize;
        let mut failures = 0u32;
        let mut retry = Vec::new();
        while next < ids.len() {
            let end = (next + MAX_IDS_PER_REQUEST).min(ids.len());
            let part = &ids[next..end];
            let (got, outcome) = self.one_request(part, plain, &mut retry).await;
            next += got;
            match outcome {
                Ok(()) => failures = 0,
                Err(e) => {
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
                    self.stats.retries.fetch_add(1, Ordering::Relaxed);
                    let delay = Duration::from_millis(250 << failures.min(5));
                    tracing::warn!(
                        "chunk stream failed ({e}); resuming after {next} chunks in {delay:?}"
                    );
                    tokio::time::sleep(delay).await;
                }
            }
        }
        Ok(retry)
    }

    /// One fetch request. Returns how many chunks of `ids` were received
    /// *and written* (a prefix), along with the outcome; chunks of groups
    /// that did not decode are appended to `retry`.
    async fn one_request(
        &self,
        ids: &[(ChunkId, u32)],
        plain: bool,
        retry: &mut Vec<(ChunkId, u32)>,
    ) -> (usize, Result<(), ClientError>) {
        let req = FetchRequest {
            ids: ids.iter().map(|w| w.0).collect(),
            have: self.ctx.base.as_ref().map(|b| b.manifest),
            want: self.ctx.want.filter(|_| !plain),
            plain,
        };
        let resp = match self.http.fetch(&req).await {
            Ok(r) => r,
            Err(e) => return (0, Err(e)),
        };
        let mut body = resp.into_body();
        let mut buf = BytesMut::new();
        let mut dec = StreamDecoder::new();
        let mut received = 0usize;
        let mut writers: JoinSet<Result<Vec<(ChunkId, u32)>, ClientError>> = JoinSet::new();
        let outcome: Result<(), ClientError> = async {
            loop {
                // Decode every complete frame in the buffer.
                while let Some((frame, used)) = dec.next(&buf)? {
                    match frame {
                        Frame::Chunk { id, codec, raw_len, payload } => {
                            expect_at(ids, received, &id, raw_len)?;
                            received += 1;
                            let payload = payload.to_vec();
                            let permit = self.reserve(payload.len() + raw_len as usize).await?;
                            let sink = self.sink.clone();
                            writers.spawn_blocking(move || {
                                let _permit = permit;
                                let chunk = decode_payload(id, codec, raw_len, &payload)?;
                                sink(VerifiedRun::single(chunk.as_slice()))?;
                                Ok(Vec::new())
                            });
                            self.count(1, u64::from(raw_len));
                        }
                        Frame::Group { first, raw_len, payload } => {
                            if plain {
                                return Err(ClientError::protocol(
                                    "chunk fetch",
                                    "the server sent a group frame to a request for single chunks",
                                ));
                            }
                            let (header, z) = GroupHeader::parse(payload)?;
                            let n = header.count as usize;
                            let Some(chunks) = ids.get(received..received + n) else {
                                return Err(ClientError::protocol("chunk fetch", "a group frame covers more chunks than were asked for"));
                            };
                            expect_at(ids, received, &first, chunks[0].1)?;
                            let sum: u64 = chunks.iter().map(|c| u64::from(c.1)).sum();
                            if sum != u64::from(raw_len) {
                                return Err(ClientError::protocol(
                                    "chunk fetch",
                                    format!("group at {} is {raw_len} bytes, its {n} chunks are {sum}", first.short()),
                                ));
                            }
                            received += n;
                            let chunks = chunks.to_vec();
                            let z = z.to_vec();
                            let reference = header.reference.map_or(0, |r| r.len as usize);
                            let permit = self.reserve(z.len() + raw_len as usize + reference).await?;
                            let (sink, base) = (self.sink.clone(), self.ctx.base.clone());
                            writers.spawn_blocking(move || {
                                let _permit = permit;
                                let out = decode_group(base.as_deref(), &header, &z, &chunks, &mut |c| sink(c))?;
                                if let Some(p) = &out.problem {
                                    tracing::warn!(
                                        "group at {}: {} of {n} chunks fetched again one by one ({} verified): {p}",
                                        first.short(),
                                        out.retry.len(),
                                        out.verified
                                    );
                                }
                                Ok(out.retry)
                            });
                            self.stats.grouped.fetch_add(n as u64, Ordering::Relaxed);
                            self.count(n as u64, u64::from(raw_len));
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
                        retry.extend(r??);
                    }
                }
                match self.http.next_piece(&mut body, "chunk fetch").await? {
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
        let mut first_err = None;
        while let Some(r) = writers.join_next().await {
            match r.map_err(ClientError::from).and_then(|x| x) {
                Ok(again) => retry.extend(again),
                Err(e) => {
                    first_err.get_or_insert(e);
                }
            }
        }
        match (outcome, first_err) {
            (_, Some(e)) => (0, Err(e)),
            (Ok(()), None) => (received, Ok(())),
            (Err(e), None) => (received, Err(e)),
        }
    }

    /// Waits until a decode task may start: a slot free and `bytes` in the
    /// decode budget. The task holds both until it ends.
    async fn reserve(&self, bytes: usize) -> Result<Reserved, ClientError> {
        let closed = |e: tokio::sync::AcquireError| ClientError::Internal(e.to_string());
        let slot = self.slots.clone().acquire_owned().await.map_err(closed)?;
        let kib = (bytes / 1024).clamp(1, DECODE_BUDGET_KIB) as u32;
        let bytes = self
            .budget
            .clone()
            .acquire_many_owned(kib)
            .await
            .map_err(closed)?;
        Ok((slot, bytes))
    }

    fn count(&self, chunks: u64, raw: u64) {
        self.stats.chunks.fetch_add(chunks, Ordering::Relaxed);
        self.stats.raw_bytes.fetch_add(raw, Ordering::Relaxed);
        self.bar.inc(raw);
    }
}

/// The runs of `wanted` the streams ask for: one for small updates, else
/// up to `streams` balanced by bytes, each starting where `cells` changes.
fn split_streams(
    wanted: Vec<(ChunkId, u32)>,
    cells: &[u64],
    streams: usize,
) -> Vec<Vec<(ChunkId, u32)>> {
    let total: u64 = wanted.iter().map(|w| u64::from(w.1)).sum();
    let n = (total / (4 << 20)).clamp(1, streams.max(1) as u64) as usize;
    let per = total.div_ceil(n as u64);
    let mut groups: Vec<Vec<(ChunkId, u32)>> = vec![Vec::new()];
    let mut acc = 0u64;
    for (k, w) in wanted.into_iter().enumerate() {
        let boundary = k == 0 || cells.len() <= k || cells[k] != cells[k - 1];
        if acc >= per && groups.len() < n && boundary {
            groups.push(Vec::new());
            acc = 0;
        }
        acc += u64::from(w.1);
        if let Some(g) = groups.last_mut() {
            g.push(w);
        }
    }
    groups
}

/// Checks that the frame at position `at` is the chunk asked for there.
fn expect_at(
    ids: &[(ChunkId, u32)],
    at: usize,
    id: &ChunkId,
    raw_len: u32,
) -> Result<(), ClientError> {
    let Some(&(want, want_len)) = ids.get(at) else {
        return Err(ClientError::protocol(
            "chunk fetch",
            "server sent more chunks than asked for",
        ));
    };
    if *id != want {
        return Err(ClientError::protocol(
            "chunk fetch",
            format!(
                "server sent chunk {} where {} was expected",
                id.short(),
                want.short()
            ),
        ));
    }
    if raw_len != want_len {
        return Err(ClientError::protocol(
            "chunk fetch",
            format!(
                "chunk {} is {raw_len} bytes, the manifest says {want_len}",
                id.short()
            ),
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn streams_are_balanced_and_begin_only_where_the_cell_changes() {
        // 96 chunks of 256 KiB (24 MiB): three streams of about 8 MiB.
        let wanted: Vec<(ChunkId, u32)> = (0..96u32)
            .map(|i| (ChunkId::of(&i.to_le_bytes()), 256 << 10))
            .collect();
        let free = split_streams(wanted.clone(), &[], 3);
        assert_eq!(free.iter().map(Vec::len).collect::<Vec<_>>(), [32, 32, 32]);
        // Cells of 5 chunks: a stream may begin only at a multiple of 5.
        let cells: Vec<u64> = (0..96u64).map(|k| k / 5).collect();
        let aligned = split_streams(wanted.clone(), &cells, 3);
        assert_eq!(aligned.len(), 3);
        let mut start = 0;
        for g in &aligned {
            assert_eq!(start % 5, 0, "a stream begins mid-cell at {start}");
            start += g.len();
        }
        assert_eq!(start, 96);
        assert_eq!(aligned.concat(), wanted);
        // Small updates: one request.
        assert_eq!(split_streams(wanted[..8].to_vec(), &cells, 3).len(), 1);
    }
}
