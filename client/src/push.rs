//! `ferry push`: chunk a folder, upload only the chunks the server lacks (in
//! compressed batches over a few concurrent streams), publish the signed
//! manifest, and optionally promote it.

use std::collections::HashSet;
use std::fs::File;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

use bytes::Bytes;
use ferry_chunker::{scan_tree, ScanOptions, ScannedTree};
use ferry_protocol::chunk::compress;
use ferry_protocol::frame::{encode_end, encode_frame, encode_header};
use ferry_protocol::messages::MAX_IDS_PER_REQUEST;
use ferry_protocol::names::{validate_app, validate_version};
use ferry_protocol::signed::KIND_MANIFEST;
use ferry_protocol::{
    unix_now, ChunkId, ChunkerParams, EntryKind, Manifest, ManifestId, SecretKey,
};
use serde::Serialize;
use tokio::task::JoinSet;

use crate::error::ClientError;
use crate::http::Http;
use crate::progress;
use crate::promote::{promote, PromoteOptions, PromoteReport};

/// What to push.
#[derive(Debug, Clone)]
pub struct PushOptions {
    pub dir: PathBuf,
    pub app: String,
    pub version: String,
    pub params: ChunkerParams,
    pub zstd_level: i32,
    /// Upload streams in flight.
    pub streams: usize,
    /// Raw bytes per upload batch.
    pub batch_bytes: u64,
    pub channel: Option<String>,
    pub expires_in: Option<u64>,
    pub quiet: bool,
    /// The file `ferry run` starts, relative to `dir`.
    pub entry: Option<String>,
}

impl PushOptions {
    pub fn new(dir: PathBuf, app: &str, version: &str) -> Self {
        PushOptions {
            dir,
            app: app.into(),
            version: version.into(),
            params: ChunkerParams::default(),
            zstd_level: ferry_protocol::chunk::DEFAULT_ZSTD_LEVEL,
            streams: 4,
            batch_bytes: 8 << 20,
            channel: None,
            expires_in: None,
            quiet: true,
            entry: None,
        }
    }
}

/// What a push did (the `--json` summary).
#[derive(Debug, Clone, Serialize)]
pub struct PushReport {
    pub app: String,
    pub version: String,
    pub manifest_id: String,
    pub files: u64,
    pub bytes: u64,
    pub chunks: u64,
    pub unique_chunks: u64,
    pub chunks_uploaded: u64,
    pub bytes_uploaded: u64,
    pub raw_bytes_uploaded: u64,
    pub manifest_bytes: u64,
    pub already_published: bool,
    pub channel: Option<String>,
    pub sequence: Option<u64>,
    pub elapsed_ms: u64,
}

/// Where to read one chunk from.
#[derive(Clone)]
struct Source {
    id: ChunkId,
    path: Arc<PathBuf>,
    offset: u64,
    len: u32,
}

pub async fn push(
    http: &Http,
    key: &SecretKey,
    opts: &PushOptions,
) -> Result<PushReport, ClientError> {
    let start = Instant::now();
    validate_app(&opts.app).map_err(|e| ClientError::Usage(e.to_string()))?;
    validate_version(&opts.version).map_err(|e| ClientError::Usage(e.to_string()))?;
    let show = progress::wanted(opts.quiet);

    let tree = scan(&opts.dir, opts.params, show).await?;
    let manifest = Manifest {
        app: opts.app.clone(),
        version: opts.version.clone(),
        params: opts.params,
        created_at: unix_now(),
        entries: tree.entries.clone(),
        entry_point: opts.entry.clone(),
    };
    if let Err(e) = manifest.validate() {
        return Err(match &opts.entry {
            Some(p) if !tree.entries.iter().any(|e| &e.path == p) => ClientError::Usage(format!(
                "--entry {p:?} is not a file of {} (give a path relative to the folder, e.g. bin/app)",
                opts.dir.display()
            )),
            _ => e.into(),
        });
    }
    let existing = published_version(http, &opts.app, &opts.version).await?;
    let (id, already_published, manifest_bytes, uploaded) = match existing {
        Some((id, old))
            if old.entries == manifest.entries
                && old.params == manifest.params
                && old.entry_point == manifest.entry_point =>
        {
            // Same folder, same version: nothing to do but (maybe) promote.
            (id, true, 0, (0, 0, 0))
        }
        Some(_) => {
            return Err(ClientError::Mismatch(format!(
                "version {} of {} is already published with different contents; \
                 versions are immutable, push under a new version number",
                opts.version, opts.app
            )))
        }
        None => {
            let sources = chunk_sources(&opts.dir, &manifest);
            let body = manifest.encode();
            let manifest_bytes = body.len() as u64;
            let expected_id = ManifestId::of(&body);
            let envelope = key.sign(KIND_MANIFEST, body).encode();
            let mut uploaded = (0, 0, 0);
            // Upload what the server lacks, publish; if the server lost a
            // chunk in between (garbage collection of a chunk it had), it
            // answers 422: upload again, at most twice more.
            let mut attempt = 0;
            let id = loop {
                let u = upload_missing(http, &sources, opts, show).await?;
                uploaded = (uploaded.0 + u.0, uploaded.1 + u.1, uploaded.2 + u.2);
                match http.publish_manifest(envelope.clone()).await {
                    Ok(id) => break id,
                    Err(ClientError::Server { status: 422, .. }) if attempt < 2 => {
                        attempt += 1;
                        tracing::warn!("server lacks chunks it had a moment ago; uploading again");
                    }
                    Err(e) => return Err(e),
                }
            };
            if id != expected_id {
                return Err(ClientError::protocol(
                    "manifest publish",
                    "server returned a different manifest id",
                ));
            }
            (id, false, manifest_bytes, uploaded)
        }
    };
    let (chunks_uploaded, raw_bytes_uploaded, bytes_uploaded) = uploaded;

    let mut report = PushReport {
        app: opts.app.clone(),
        version: opts.version.clone(),
        manifest_id: id.to_hex(),
        files: tree.stats.files,
        bytes: tree.stats.bytes,
        chunks: tree.stats.chunks,
        unique_chunks: tree.stats.unique_chunks,
        chunks_uploaded,
        bytes_uploaded,
        raw_bytes_uploaded,
        manifest_bytes,
        already_published,
        channel: None,
        sequence: None,
        elapsed_ms: 0,
    };
    if let Some(channel) = &opts.channel {
        let p: PromoteReport = promote(
            http,
            key,
            &PromoteOptions {
                app: opts.app.clone(),
                channel: channel.clone(),
                version: opts.version.clone(),
                expires_in: opts.expires_in,
                rollout: Default::default(),
                now: None,
            },
        )
        .await?;
        report.channel = Some(p.channel);
        report.sequence = Some(p.sequence);
    }
    report.elapsed_ms = start.elapsed().as_millis() as u64;
    Ok(report)
}

/// The manifest already published for (app, version), if any.
async fn published_version(
    http: &Http,
    app: &str,
    version: &str,
) -> Result<Option<(ManifestId, Manifest)>, ClientError> {
    let bytes = match http.get_version(app, version).await {
        Ok(b) => b,
        Err(ClientError::Server { status: 404, .. }) => return Ok(None),
        Err(e) => return Err(e),
    };
    let env = ferry_protocol::Envelope::decode(&bytes, usize::MAX)?;
    let m = Manifest::decode(&env.body)?;
    Ok(Some((ManifestId::of(&env.body), m)))
}

async fn scan(dir: &Path, params: ChunkerParams, show: bool) -> Result<ScannedTree, ClientError> {
    let total = dir_size_hint(dir);
    let bar = progress::bytes_bar(show, total, "chunking");
    let b2 = bar.clone();
    let opts = ScanOptions {
        params,
        progress: Some(Arc::new(move |n| b2.inc(n))),
    };
    let dir = dir.to_path_buf();
    let tree = tokio::task::spawn_blocking(move || scan_tree(&dir, &opts)).await??;
    bar.finish_and_clear();
    Ok(tree)
}

/// Total size of regular files, for the progress bar only (errors ignored).
fn dir_size_hint(dir: &Path) -> u64 {
    let mut total = 0;
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let Ok(rd) = std::fs::read_dir(&d) else {
            continue;
        };
        for e in rd.flatten() {
            match e.file_type() {
                Ok(t) if t.is_dir() => stack.push(e.path()),
                Ok(t) if t.is_file() => total += e.metadata().map(|m| m.len()).unwrap_or(0),
                _ => {}
            }
        }
    }
    total
}

/// First place each distinct chunk occurs, in file order.
fn chunk_sources(dir: &Path, m: &Manifest) -> Vec<Source> {
    let mut seen = HashSet::new();
    let mut out = Vec::new();
    for e in &m.entries {
        if let EntryKind::File { chunks, .. } = &e.kind {
            let path = Arc::new(dir.join(&e.path));
            let mut off = 0u64;
            for c in chunks {
                if seen.insert(c.id) {
                    out.push(Source {
                        id: c.id,
                        path: path.clone(),
                        offset: off,
                        len: c.len,
                    });
                }
                off += u64::from(c.len);
            }
        }
    }
    out
}

/// Uploads the chunks in batches; returns (chunks, raw bytes, sent bytes).
/// Asks which chunks the server lacks and uploads those.
async fn upload_missing(
    http: &Http,
    sources: &[Source],
    opts: &PushOptions,
    show: bool,
) -> Result<(u64, u64, u64), ClientError> {
    let ids: Vec<ChunkId> = sources.iter().map(|s| s.id).collect();
    let mut missing = HashSet::new();
    for group in ids.chunks(MAX_IDS_PER_REQUEST) {
        missing.extend(http.missing(group).await?);
    }
    let to_send: Vec<Source> = sources
        .iter()
        .filter(|s| missing.contains(&s.id))
        .cloned()
        .collect();
    upload(http, to_send, opts, show).await
}

async fn upload(
    http: &Http,
    to_send: Vec<Source>,
    opts: &PushOptions,
    show: bool,
) -> Result<(u64, u64, u64), ClientError> {
    let raw_total: u64 = to_send.iter().map(|s| u64::from(s.len)).sum();
    let bar = progress::bytes_bar(show, raw_total, "uploading");
    let mut batches: Vec<Vec<Source>> = Vec::new();
    let mut cur = Vec::new();
    let mut cur_bytes = 0u64;
    for s in to_send {
        cur_bytes += u64::from(s.len);
        cur.push(s);
        if cur_bytes >= opts.batch_bytes || cur.len() >= 16_384 {
            batches.push(std::mem::take(&mut cur));
            cur_bytes = 0;
        }
    }
    if !cur.is_empty() {
        batches.push(cur);
    }
    let (mut chunks, mut raw, mut sent) = (0u64, 0u64, 0u64);
    let mut tasks = JoinSet::new();
    let mut queue = batches.into_iter();
    loop {
        while tasks.len() < opts.streams.max(1) {
            let Some(batch) = queue.next() else { break };
            let http = http.clone();
            let level = opts.zstd_level;
            let bar = bar.clone();
            tasks.spawn(async move {
                let n = batch.len() as u64;
                let raw: u64 = batch.iter().map(|s| u64::from(s.len)).sum();
                let body =
                    tokio::task::spawn_blocking(move || encode_batch(&batch, level)).await??;
                let len = body.len() as u64;
                upload_with_retry(&http, body).await?;
                bar.inc(raw);
                Ok::<_, ClientError>((n, raw, len))
            });
        }
        match tasks.join_next().await {
            None => break,
            Some(r) => {
                let (n, r_bytes, s_bytes) = r??;
                chunks += n;
                raw += r_bytes;
                sent += s_bytes;
            }
        }
    }
    bar.finish_and_clear();
    Ok((chunks, raw, sent))
}

async fn upload_with_retry(http: &Http, body: Bytes) -> Result<(), ClientError> {
    let mut delay = std::time::Duration::from_millis(250);
    for attempt in 1.. {
        match http.upload(body.clone()).await {
            Ok(_) => return Ok(()),
            Err(e) if e.is_transient() && attempt < 4 => {
                tracing::warn!("upload failed ({e}); retrying in {delay:?}");
                tokio::time::sleep(delay).await;
                delay *= 2;
            }
            Err(e) => return Err(e),
        }
    }
    unreachable!("the loop returns")
}

/// Reads, re-verifies (the folder may have changed since the scan) and
/// compresses a batch into one chunk stream.
fn encode_batch(batch: &[Source], level: i32) -> Result<Bytes, ClientError> {
    use rayon::prelude::*;
    let frames: Result<Vec<Vec<u8>>, ClientError> = batch
        .par_iter()
        .map(|s| {
            let f = File::open(s.path.as_ref()).map_err(|e| ClientError::io(s.path.as_ref(), e))?;
            let mut data = vec![0u8; s.len as usize];
            f.read_exact_at(&mut data, s.offset)
                .map_err(|e| ClientError::io(s.path.as_ref(), e))?;
            if ChunkId::of(&data) != s.id {
                return Err(ClientError::Mismatch(format!(
                    "{} changed while it was being pushed; push again",
                    s.path.display()
                )));
            }
            let (codec, payload) = compress(&data, level);
            let mut out = Vec::with_capacity(payload.len() + 41);
            encode_frame(&mut out, &s.id, codec, s.len, &payload);
            Ok(out)
        })
        .collect();
    let frames = frames?;
    let mut out = Vec::with_capacity(frames.iter().map(Vec::len).sum::<usize>() + 64);
    encode_header(&mut out);
    for f in frames {
        out.extend_from_slice(&f);
    }
    encode_end(&mut out);
    Ok(Bytes::from(out))
}
