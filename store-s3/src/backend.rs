//! [`ObjectBackend`]: the synchronous `Backend` over an async object store.
//!
//! The trait is called from blocking threads, some of them the server
//! runtime's `spawn_blocking` threads, where `Runtime::block_on` would
//! panic. So the backend owns a small runtime of its own, spawns each
//! operation onto it and waits for the answer on a std channel.

use std::future::Future;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use ferry_protocol::report::{Report, StatusRow};
use ferry_protocol::{ChannelRecord, ChunkId, Manifest, ManifestId, PublicKey};
use ferry_store::{Backend, StoreError, StoreStats, StoredChunk};
use futures_util::stream::{self, StreamExt, TryStreamExt};
use object_store::{ObjectStore, PutMode};

use crate::layout::{KeySlot, Layout};
use crate::objects::{Core, CONCURRENCY};
use crate::ops::ChannelWrite;

/// How old the chunk count and size may get: counting means listing every
/// chunk object, far too slow for each metrics scrape.
const STATS_EVERY: Duration = Duration::from_secs(60);

/// Ferry's store in an object store (S3, or `InMemory` in tests). Holds
/// no state that matters for correctness, so any number of servers can
/// share one bucket and prefix.
pub struct ObjectBackend {
    core: Arc<Core>,
    /// `Some` until dropped; shut down in the background on drop, which
    /// is allowed inside another runtime (a plain drop is not).
    rt: Option<tokio::runtime::Runtime>,
    stats: Arc<StatsCache>,
    /// `s3://bucket/prefix` or the store's description, for messages.
    name: String,
}

#[derive(Default)]
struct StatsCache {
    value: Mutex<(StoreStats, Option<Instant>)>,
    refreshing: AtomicBool,
}

impl ObjectBackend {
    /// A backend over `store`, keeping everything under `prefix`.
    pub fn new(store: Arc<dyn ObjectStore>, prefix: &str) -> Result<ObjectBackend, StoreError> {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name("ferry-object-store")
            .enable_all()
            .build()
            .map_err(|e| StoreError::Object {
                what: "start the runtime for".into(),
                key: prefix.into(),
                message: e.to_string(),
            })?;
        let name = format!("{store}/{}", prefix.trim_matches('/'));
        Ok(ObjectBackend {
            core: Arc::new(Core {
                store,
                layout: Layout::new(prefix)?,
            }),
            rt: Some(rt),
            stats: Arc::default(),
            name,
        })
    }

    /// What the backend stores into, for logs.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Lists the prefix once: a missing bucket, wrong endpoint or bad
    /// credentials fail here, at start, with one message.
    pub fn check_access(&self) -> Result<(), StoreError> {
        let name = self.name.clone();
        self.run(move |c| async move {
            let root = c.layout.root().clone();
            c.store
                .list_with_delimiter(Some(&root))
                .await
                .map(|_| ())
                .map_err(|e| StoreError::Object {
                    what: "cannot list (check the bucket, AWS_ENDPOINT_URL, AWS_REGION, \
                           the credentials and their permissions)"
                        .into(),
                    key: name,
                    message: e.to_string(),
                })
        })
    }

    /// Runs `f` on the backend's runtime and waits for it on this thread.
    fn run<T, F, Fut>(&self, f: F) -> Result<T, StoreError>
    where
        F: FnOnce(Arc<Core>) -> Fut,
        Fut: Future<Output = Result<T, StoreError>> + Send + 'static,
        T: Send + 'static,
    {
        let (tx, rx) = std::sync::mpsc::sync_channel(1);
        let fut = f(self.core.clone());
        self.runtime().spawn(async move {
            let _ = tx.send(fut.await);
        });
        rx.recv().unwrap_or_else(|_| {
            Err(StoreError::Object {
                what: "request failed (task ended without an answer)".into(),
                key: self.name.clone(),
                message: "see the log".into(),
            })
        })
    }

    fn runtime(&self) -> &tokio::runtime::Runtime {
        // Only `drop` takes it.
        self.rt.as_ref().expect("runtime present until drop")
    }

    /// Starts a recount of chunks in the background when the last one is
    /// older than `STATS_EVERY` and none is running.
    fn refresh_stats(&self) {
        let due = {
            let v = self.stats.value.lock().unwrap_or_else(|p| p.into_inner());
            v.1.is_none_or(|t| t.elapsed() >= STATS_EVERY)
        };
        if !due || self.stats.refreshing.swap(true, Ordering::AcqRel) {
            return;
        }
        let (core, cache) = (self.core.clone(), self.stats.clone());
        self.runtime().spawn(async move {
            let listed = core.list(&core.layout.chunks()).await;
            let mut v = cache.value.lock().unwrap_or_else(|p| p.into_inner());
            match listed {
                Ok(l) => {
                    v.0 = StoreStats {
                        chunks: l.len() as u64,
                        bytes: l.iter().map(|(_, size)| size).sum(),
                    }
                }
                Err(e) => tracing::warn!("store sizes: {e}"),
            }
            v.1 = Some(Instant::now());
            cache.refreshing.store(false, Ordering::Release);
        });
    }
}

impl Drop for ObjectBackend {
    fn drop(&mut self) {
        if let Some(rt) = self.rt.take() {
            rt.shutdown_background();
        }
    }
}

impl Backend for ObjectBackend {
    fn has_chunks(&self, ids: &[ChunkId]) -> Result<Vec<bool>, StoreError> {
        let ids = ids.to_vec();
        self.run(move |c| async move { c.has_chunks(&ids).await })
    }

    /// Chunks are content-addressed: a plain put of the same id writes
    /// equivalent bytes, so only the missing ones are written, in parallel.
    fn put_chunks(&self, chunks: &[StoredChunk]) -> Result<u64, StoreError> {
        let items: Vec<(ChunkId, Vec<u8>)> = chunks.iter().map(|c| (c.id(), c.value())).collect();
        self.run(move |c| async move {
            let ids: Vec<ChunkId> = items.iter().map(|(id, _)| *id).collect();
            let have = c.has_chunks(&ids).await?;
            let todo: Vec<_> = items
                .into_iter()
                .zip(have)
                .filter(|(_, h)| !h)
                .map(|(item, _)| item)
                .collect();
            let new = todo.len() as u64;
            let c2 = &c;
            stream::iter(todo)
                .map(|(id, v)| async move {
                    c2.put(&c2.layout.chunk(&id), v, PutMode::Overwrite)
                        .await
                        .map(|_| ())
                })
                .buffer_unordered(CONCURRENCY)
                .try_collect::<Vec<()>>()
                .await?;
            Ok(new)
        })
    }

    fn get_chunk(&self, id: &ChunkId) -> Result<Option<Vec<u8>>, StoreError> {
        let id = *id;
        self.run(move |c| async move { c.get_vec(&c.layout.chunk(&id)).await })
    }

    fn get_chunks(&self, ids: &[ChunkId]) -> Result<Vec<Option<Vec<u8>>>, StoreError> {
        let ids = ids.to_vec();
        self.run(move |c| async move {
            let keys = ids.iter().map(|id| c.layout.chunk(id)).collect();
            c.get_many(keys).await
        })
    }

    fn app_keys(&self, app: &str) -> Result<Vec<PublicKey>, StoreError> {
        let app = app.to_string();
        self.run(move |c| async move { c.key_set(&app, KeySlot::Pinned).await })
    }

    fn pin_app_key(&self, app: &str, key: PublicKey) -> Result<Vec<PublicKey>, StoreError> {
        let app = app.to_string();
        self.run(move |c| async move { c.pin_app_key(&app, key).await })
    }

    fn rotated_app_keys(&self, app: &str) -> Result<Vec<PublicKey>, StoreError> {
        let app = app.to_string();
        self.run(move |c| async move { c.key_set(&app, KeySlot::Rotated).await })
    }

    fn revoked_app_keys(&self, app: &str) -> Result<Vec<PublicKey>, StoreError> {
        let app = app.to_string();
        self.run(move |c| async move { c.key_set(&app, KeySlot::Revoked).await })
    }

    fn put_manifest(
        &self,
        envelope: &[u8],
        id: ManifestId,
        manifest: &Manifest,
    ) -> Result<bool, StoreError> {
        let (envelope, manifest) = (envelope.to_vec(), manifest.clone());
        self.run(move |c| async move { c.put_manifest(&envelope, id, &manifest, false).await })
    }

    fn get_manifest(&self, id: &ManifestId) -> Result<Option<Vec<u8>>, StoreError> {
        let id = *id;
        self.run(move |c| async move { c.get_vec(&c.layout.manifest(&id)).await })
    }

    fn get_version(&self, app: &str, version: &str) -> Result<Option<ManifestId>, StoreError> {
        let (app, version) = (app.to_string(), version.to_string());
        self.run(move |c| async move { c.get_version(&app, &version).await })
    }

    fn list_versions(&self, app: &str) -> Result<Vec<(String, ManifestId)>, StoreError> {
        let app = app.to_string();
        self.run(move |c| async move { c.list_versions(&app).await })
    }

    fn list_apps(&self) -> Result<Vec<String>, StoreError> {
        self.run(move |c| async move { c.list_dirs(&c.layout.versions()).await })
    }

    fn get_channel(&self, app: &str, channel: &str) -> Result<Option<Vec<u8>>, StoreError> {
        let (app, channel) = (app.to_string(), channel.to_string());
        self.run(move |c| async move { c.get_vec(&c.layout.channel(&app, &channel)?).await })
    }

    fn put_channel_rotating(
        &self,
        envelope: &[u8],
        record: &ChannelRecord,
        trusted_before: &[PublicKey],
    ) -> Result<(), StoreError> {
        let (envelope, record, trusted) =
            (envelope.to_vec(), record.clone(), trusted_before.to_vec());
        self.run(move |c| async move {
            c.check_record_versions(&record).await?;
            c.write_channel(&envelope, &record, &trusted, ChannelWrite::Publish)
                .await
        })
    }

    fn channel_history(&self, app: &str, channel: &str) -> Result<Vec<Vec<u8>>, StoreError> {
        let (app, channel) = (app.to_string(), channel.to_string());
        self.run(move |c| async move { c.channel_history(&app, &channel).await })
    }

    fn channels_of(&self, app: &str) -> Result<Vec<(String, Vec<u8>)>, StoreError> {
        let app = app.to_string();
        self.run(move |c| async move { c.channels_of(&app).await })
    }

    fn put_report(&self, app: &str, report: &Report, at: u64) -> Result<(), StoreError> {
        let app = app.to_string();
        let mut v = at.to_le_bytes().to_vec();
        v.extend_from_slice(&report.encode());
        let client = report.client_id.clone();
        self.run(move |c| async move {
            let key = c.layout.report(&app, &client)?;
            c.put(&key, v, PutMode::Overwrite).await.map(|_| ())
        })
    }

    fn report_counts(&self, app: &str) -> Result<Vec<StatusRow>, StoreError> {
        let app = app.to_string();
        self.run(move |c| async move { c.report_counts(&app).await })
    }

    fn cache_manifest(
        &self,
        envelope: &[u8],
        id: ManifestId,
        manifest: &Manifest,
    ) -> Result<(), StoreError> {
        let (envelope, manifest) = (envelope.to_vec(), manifest.clone());
        self.run(move |c| async move {
            c.put_manifest(&envelope, id, &manifest, true)
                .await
                .map(|_| ())
        })
    }

    fn cache_channel(&self, envelope: &[u8], record: &ChannelRecord) -> Result<(), StoreError> {
        let (envelope, record) = (envelope.to_vec(), record.clone());
        self.run(move |c| async move {
            c.write_channel(&envelope, &record, &[], ChannelWrite::Cache)
                .await
        })
    }

    /// The count and bytes of chunk objects as of the last listing (at
    /// most `STATS_EVERY` old, zero until the first one finished).
    fn stats(&self) -> Result<StoreStats, StoreError> {
        self.refresh_stats();
        let v = self.stats.value.lock().unwrap_or_else(|p| p.into_inner());
        Ok(v.0)
    }

    fn ready(&self) -> Result<(), StoreError> {
        self.check_access()
    }
}
