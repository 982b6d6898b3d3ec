//! The storage interface the server is written against. [`Store`] (RocksDB)
//! implements it; another engine (an object store, an in-memory test store)
//! slots in by implementing it too, and the server never names RocksDB.
//!
//! Synchronous on purpose: the server calls it from blocking tasks. Every
//! method is thread-safe.

use std::path::Path;

use ferry_protocol::report::{Report, StatusRow};
use ferry_protocol::{ChannelRecord, ChunkId, Manifest, ManifestId, PublicKey};

use crate::db::Store;
use crate::error::StoreError;
use crate::stored::StoredChunk;

/// Sizes a store reports for metrics and the status page. Estimates are
/// fine: they are read on every scrape, so they must be cheap.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct StoreStats {
    /// Chunks stored (may be an estimate).
    pub chunks: u64,
    /// Bytes the store occupies (payloads and indexes, may be an estimate).
    pub bytes: u64,
}

/// What the server needs from a store. See [`Store`] for the semantics of
/// each method; other implementations must keep them (one test suite).
pub trait Backend: Send + Sync {
    /// For each id, whether the store has that chunk.
    fn has_chunks(&self, ids: &[ChunkId]) -> Result<Vec<bool>, StoreError>;
    /// Stores verified chunks; returns how many were new.
    fn put_chunks(&self, chunks: &[StoredChunk]) -> Result<u64, StoreError>;
    /// The stored value of a chunk (`codec raw_len payload`, see
    /// [`crate::parse_value`]).
    fn get_chunk(&self, id: &ChunkId) -> Result<Option<Vec<u8>>, StoreError>;
    /// Stored values of many chunks, in order.
    fn get_chunks(&self, ids: &[ChunkId]) -> Result<Vec<Option<Vec<u8>>>, StoreError>;

    /// Publisher keys pinned for an app (empty when none yet).
    fn app_keys(&self, app: &str) -> Result<Vec<PublicKey>, StoreError>;
    /// Pins `key` for `app` unless it has one; returns the app's keys.
    fn pin_app_key(&self, app: &str, key: PublicKey) -> Result<Vec<PublicKey>, StoreError>;
    /// The key set the latest key rotation of `app` named (empty: none).
    fn rotated_app_keys(&self, app: &str) -> Result<Vec<PublicKey>, StoreError>;
    /// Keys a key rotation took away from `app` (empty: none).
    fn revoked_app_keys(&self, app: &str) -> Result<Vec<PublicKey>, StoreError>;

    /// Publishes a verified manifest whose chunks are all present; an (app,
    /// version) pair never changes contents. Durable when it returns.
    fn put_manifest(
        &self,
        envelope: &[u8],
        id: ManifestId,
        manifest: &Manifest,
    ) -> Result<bool, StoreError>;
    /// A signed manifest envelope by id.
    fn get_manifest(&self, id: &ManifestId) -> Result<Option<Vec<u8>>, StoreError>;
    /// The manifest id of an app's version.
    fn get_version(&self, app: &str, version: &str) -> Result<Option<ManifestId>, StoreError>;
    /// All published versions of an app with their manifest ids.
    fn list_versions(&self, app: &str) -> Result<Vec<(String, ManifestId)>, StoreError>;
    /// Every app that has a published version, sorted.
    fn list_apps(&self) -> Result<Vec<String>, StoreError>;

    /// The current signed record of a channel.
    fn get_channel(&self, app: &str, channel: &str) -> Result<Option<Vec<u8>>, StoreError>;
    /// Stores a verified record whose sequence is above the current one and
    /// whose versions are published. Durable when it returns.
    fn put_channel(&self, envelope: &[u8], record: &ChannelRecord) -> Result<(), StoreError> {
        self.put_channel_rotating(envelope, record, &[])
    }
    /// Like `put_channel`; a record that rotates keys (its `keys` field,
    /// verified by the caller against `trusted_before`) also becomes the
    /// app's rotated key set, and the keys of `trusted_before` it leaves
    /// out are revoked, atomically with the record.
    fn put_channel_rotating(
        &self,
        envelope: &[u8],
        record: &ChannelRecord,
        trusted_before: &[PublicKey],
    ) -> Result<(), StoreError>;
    /// Every record a channel has had, oldest first.
    fn channel_history(&self, app: &str, channel: &str) -> Result<Vec<Vec<u8>>, StoreError>;
    /// The current record of every channel of `app`, by channel name.
    fn channels_of(&self, app: &str) -> Result<Vec<(String, Vec<u8>)>, StoreError>;

    /// Keeps `report` as the latest word of its client.
    fn put_report(&self, app: &str, report: &Report, at: u64) -> Result<(), StoreError>;
    /// Clients per (channel, version, outcome).
    fn report_counts(&self, app: &str) -> Result<Vec<StatusRow>, StoreError>;

    /// A pull-through mirror keeps a manifest it verified against the
    /// upstream's signature before it has the chunks (they come on demand).
    /// Idempotent; never replaces a version's manifest by another.
    fn cache_manifest(
        &self,
        envelope: &[u8],
        id: ManifestId,
        manifest: &Manifest,
    ) -> Result<(), StoreError>;
    /// A mirror keeps the upstream's current record of a channel (signed,
    /// checked by clients) if its sequence is above the one it has.
    fn cache_channel(&self, envelope: &[u8], record: &ChannelRecord) -> Result<(), StoreError>;

    /// Sizes for metrics and the status page.
    fn stats(&self) -> Result<StoreStats, StoreError>;
    /// A consistent copy of the store in the new directory `out`, taken
    /// while it serves. Engines without one say so.
    fn checkpoint(&self, out: &Path) -> Result<(), StoreError> {
        let _ = out;
        Err(StoreError::Unsupported(
            "this store has no built-in backup; use the storage service's own".into(),
        ))
    }
    /// Whether the store answers (for `/readyz`).
    fn ready(&self) -> Result<(), StoreError> {
        self.stats().map(|_| ())
    }
}

impl Backend for Store {
    fn has_chunks(&self, ids: &[ChunkId]) -> Result<Vec<bool>, StoreError> {
        Store::has_chunks(self, ids)
    }
    fn put_chunks(&self, chunks: &[StoredChunk]) -> Result<u64, StoreError> {
        Store::put_chunks(self, chunks)
    }
    fn get_chunk(&self, id: &ChunkId) -> Result<Option<Vec<u8>>, StoreError> {
        Store::get_chunk(self, id)
    }
    fn get_chunks(&self, ids: &[ChunkId]) -> Result<Vec<Option<Vec<u8>>>, StoreError> {
        Store::get_chunks(self, ids)
    }
    fn app_keys(&self, app: &str) -> Result<Vec<PublicKey>, StoreError> {
        Store::app_keys(self, app)
    }
    fn pin_app_key(&self, app: &str, key: PublicKey) -> Result<Vec<PublicKey>, StoreError> {
        Store::pin_app_key(self, app, key)
    }
    fn put_manifest(
        &self,
        envelope: &[u8],
        id: ManifestId,
        manifest: &Manifest,
    ) -> Result<bool, StoreError> {
        Store::put_manifest(self, envelope, id, manifest)
    }
    fn get_manifest(&self, id: &ManifestId) -> Result<Option<Vec<u8>>, StoreError> {
        Store::get_manifest(self, id)
    }
    fn get_version(&self, app: &str, version: &str) -> Result<Option<ManifestId>, StoreError> {
        Store::get_version(self, app, version)
    }
    fn list_versions(&self, app: &str) -> Result<Vec<(String, ManifestId)>, StoreError> {
        Store::list_versions(self, app)
    }
    fn list_apps(&self) -> Result<Vec<String>, StoreError> {
        Store::list_apps(self)
    }
    fn get_channel(&self, app: &str, channel: &str) -> Result<Option<Vec<u8>>, StoreError> {
        Store::get_channel(self, app, channel)
    }
    fn put_channel_rotating(
        &self,
        envelope: &[u8],
        record: &ChannelRecord,
        trusted_before: &[PublicKey],
    ) -> Result<(), StoreError> {
        Store::put_channel_rotating(self, envelope, record, trusted_before)
    }
    fn rotated_app_keys(&self, app: &str) -> Result<Vec<PublicKey>, StoreError> {
        Store::rotated_app_keys(self, app)
    }
    fn revoked_app_keys(&self, app: &str) -> Result<Vec<PublicKey>, StoreError> {
        Store::revoked_app_keys(self, app)
    }
    fn channel_history(&self, app: &str, channel: &str) -> Result<Vec<Vec<u8>>, StoreError> {
        Store::channel_history(self, app, channel)
    }
    fn channels_of(&self, app: &str) -> Result<Vec<(String, Vec<u8>)>, StoreError> {
        Store::channels_of(self, app)
    }
    fn put_report(&self, app: &str, report: &Report, at: u64) -> Result<(), StoreError> {
        Store::put_report(self, app, report, at)
    }
    fn report_counts(&self, app: &str) -> Result<Vec<StatusRow>, StoreError> {
        Store::report_counts(self, app)
    }
    fn cache_manifest(
        &self,
        envelope: &[u8],
        id: ManifestId,
        manifest: &Manifest,
    ) -> Result<(), StoreError> {
        Store::cache_manifest(self, envelope, id, manifest)
    }
    fn cache_channel(&self, envelope: &[u8], record: &ChannelRecord) -> Result<(), StoreError> {
        Store::cache_channel(self, envelope, record)
    }
    fn stats(&self) -> Result<StoreStats, StoreError> {
        Store::stats(self)
    }
    fn checkpoint(&self, out: &Path) -> Result<(), StoreError> {
        Store::checkpoint(self, out)
    }
}
