//! A [`Backend`] wrapper that counts chunks read for responses and chunks
//! stored, whatever handler (single GET, batched fetch, upload) asked. It
//! sits outermost, so the handlers need no metrics calls of their own.

use std::path::Path;
use std::sync::Arc;

use ferry_protocol::report::{Report, StatusRow};
use ferry_protocol::{ChannelRecord, ChunkId, Manifest, ManifestId, PublicKey};
use ferry_store::{Backend, StoreError, StoreStats, StoredChunk};

use crate::metrics::Metrics;

pub struct Metered {
    pub inner: Arc<dyn Backend>,
    pub metrics: Arc<Metrics>,
}

impl Backend for Metered {
    fn has_chunks(&self, ids: &[ChunkId]) -> Result<Vec<bool>, StoreError> {
        self.inner.has_chunks(ids)
    }
    fn put_chunks(&self, chunks: &[StoredChunk]) -> Result<u64, StoreError> {
        self.metrics.upload_batch(chunks.len());
        let n = self.inner.put_chunks(chunks)?;
        self.metrics.chunks_stored(n);
        Ok(n)
    }
    fn get_chunk(&self, id: &ChunkId) -> Result<Option<Vec<u8>>, StoreError> {
        let v = self.inner.get_chunk(id)?;
        if let Some(v) = &v {
            self.metrics.chunks_served(1, v.len() as u64);
        }
        Ok(v)
    }
    fn get_chunks(&self, ids: &[ChunkId]) -> Result<Vec<Option<Vec<u8>>>, StoreError> {
        let vs = self.inner.get_chunks(ids)?;
        let (n, bytes) = vs
            .iter()
            .flatten()
            .fold((0u64, 0u64), |(n, b), v| (n + 1, b + v.len() as u64));
        self.metrics.chunks_served(n, bytes);
        Ok(vs)
    }
    fn app_keys(&self, app: &str) -> Result<Vec<PublicKey>, StoreError> {
        self.inner.app_keys(app)
    }
    fn pin_app_key(&self, app: &str, key: PublicKey) -> Result<Vec<PublicKey>, StoreError> {
        self.inner.pin_app_key(app, key)
    }
    fn put_manifest(
        &self,
        envelope: &[u8],
        id: ManifestId,
        manifest: &Manifest,
    ) -> Result<bool, StoreError> {
        self.inner.put_manifest(envelope, id, manifest)
    }
    fn get_manifest(&self, id: &ManifestId) -> Result<Option<Vec<u8>>, StoreError> {
        self.inner.get_manifest(id)
    }
    fn get_version(&self, app: &str, version: &str) -> Result<Option<ManifestId>, StoreError> {
        self.inner.get_version(app, version)
    }
    fn list_versions(&self, app: &str) -> Result<Vec<(String, ManifestId)>, StoreError> {
        self.inner.list_versions(app)
    }
    fn list_apps(&self) -> Result<Vec<String>, StoreError> {
        self.inner.list_apps()
    }
    fn get_channel(&self, app: &str, channel: &str) -> Result<Option<Vec<u8>>, StoreError> {
        self.inner.get_channel(app, channel)
    }
    fn put_channel_rotating(
        &self,
        envelope: &[u8],
        record: &ChannelRecord,
        trusted_before: &[PublicKey],
    ) -> Result<(), StoreError> {
        self.inner
            .put_channel_rotating(envelope, record, trusted_before)
    }
    fn rotated_app_keys(&self, app: &str) -> Result<Vec<PublicKey>, StoreError> {
        self.inner.rotated_app_keys(app)
    }
    fn revoked_app_keys(&self, app: &str) -> Result<Vec<PublicKey>, StoreError> {
        self.inner.revoked_app_keys(app)
    }
    fn channel_history(&self, app: &str, channel: &str) -> Result<Vec<Vec<u8>>, StoreError> {
        self.inner.channel_history(app, channel)
    }
    fn channels_of(&self, app: &str) -> Result<Vec<(String, Vec<u8>)>, StoreError> {
        self.inner.channels_of(app)
    }
    fn put_report(&self, app: &str, report: &Report, at: u64) -> Result<(), StoreError> {
        self.inner.put_report(app, report, at)
    }
    fn report_counts(&self, app: &str) -> Result<Vec<StatusRow>, StoreError> {
        self.inner.report_counts(app)
    }
    fn cache_manifest(
        &self,
        envelope: &[u8],
        id: ManifestId,
        manifest: &Manifest,
    ) -> Result<(), StoreError> {
        self.inner.cache_manifest(envelope, id, manifest)
    }
    fn cache_channel(&self, envelope: &[u8], record: &ChannelRecord) -> Result<(), StoreError> {
        self.inner.cache_channel(envelope, record)
    }
    fn stats(&self) -> Result<StoreStats, StoreError> {
        self.inner.stats()
    }
    fn checkpoint(&self, out: &Path) -> Result<(), StoreError> {
        self.inner.checkpoint(out)
    }
    fn ready(&self) -> Result<(), StoreError> {
        self.inner.ready()
    }
}
