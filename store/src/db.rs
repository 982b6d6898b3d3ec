//! The RocksDB database and its operations.

use std::path::Path;
use std::sync::Mutex;

use ferry_protocol::signed::{KIND_CHANNEL, KIND_MANIFEST};
use ferry_protocol::{ChannelRecord, ChunkId, Envelope, Manifest, ManifestId, PublicKey};
use rocksdb::{
    ColumnFamily, ColumnFamilyDescriptor, DBCompressionType, Direction, IteratorMode, Options,
    WriteBatch, WriteOptions, DB,
};

use crate::error::StoreError;
use crate::keys;
use crate::stored::StoredChunk;

/// Layout version of the database; recorded in the `meta` column family.
pub const SCHEMA_VERSION: u32 = 1;

pub(crate) const CF_CHUNKS: &str = "chunks.v1";
pub(crate) const CF_CHUNK_INDEX: &str = "chunk_index.v1";
pub(crate) const CF_MANIFESTS: &str = "manifests.v1";
pub(crate) const CF_VERSIONS: &str = "versions.v1";
pub(crate) const CF_CHANNELS: &str = "channels.v1";
pub(crate) const CF_HISTORY: &str = "channel_history.v1";
pub(crate) const CF_APP_KEYS: &str = "app_keys.v1";
pub(crate) const CF_REPORTS: &str = "reports.v1";
pub(crate) const CF_META: &str = "meta";
pub(crate) const ALL_CFS: &[&str] = &[
    CF_CHUNKS,
    CF_CHUNK_INDEX,
    CF_MANIFESTS,
    CF_VERSIONS,
    CF_CHANNELS,
    CF_HISTORY,
    CF_APP_KEYS,
    CF_REPORTS,
    CF_META,
];
const META_SCHEMA: &[u8] = b"schema";
/// Ids per multi-get, so a huge query never pins huge buffers at once.
const LOOKUP_BATCH: usize = 4096;

/// Ferry's store. Share it behind an `Arc`; every method is thread-safe.
pub struct Store {
    pub(crate) db: DB,
    path: String,
    /// Serialises read-check-write sequences (publishes, key pinning).
    publish: Mutex<()>,
}

fn base_options() -> Options {
    let mut o = Options::default();
    // Chunks are already zstd-compressed; the rest is small. RocksDB is built
    // without compression libraries, so it must never ask for one.
    o.set_compression_type(DBCompressionType::None);
    o
}

fn cf_descriptors() -> Vec<ColumnFamilyDescriptor> {
    ALL_CFS
        .iter()
        .map(|name| {
            let mut o = base_options();
            if *name == CF_CHUNKS {
                // Large values go to blob files, so compaction does not
                // rewrite chunk payloads again and again.
                o.set_enable_blob_files(true);
                o.set_min_blob_size(4096);
                o.set_blob_compression_type(DBCompressionType::None);
            }
            ColumnFamilyDescriptor::new(*name, o)
        })
        .collect()
}

impl Store {
    /// Opens (creating if needed) the store in directory `path`.
    pub fn open(path: &Path) -> Result<Store, StoreError> {
        let mut opts = base_options();
        opts.create_if_missing(true);
        opts.create_missing_column_families(true);
        let threads = std::thread::available_parallelism().map_or(2, |n| n.get());
        opts.increase_parallelism(threads as i32);
        opts.set_max_open_files(512);
        let db = DB::open_cf_descriptors(&opts, path, cf_descriptors())?;
        let store = Store {
            db,
            path: path.display().to_string(),
            publish: Mutex::new(()),
        };
        store.check_schema(true)?;
        Ok(store)
    }

    /// Opens an existing store read-write; refuses to create one (for
    /// `ferry backup`, where a wrong path must not make an empty store).
    pub fn open_existing(path: &Path) -> Result<Store, StoreError> {
        if !path.join("CURRENT").exists() {
            return Err(StoreError::NotFound(path.display().to_string()));
        }
        Self::open(path)
    }

    /// Opens an existing store without writing anything (for `ferry fsck`).
    /// Works while a server has the store open.
    pub fn open_read_only(path: &Path) -> Result<Store, StoreError> {
        if !path.join("CURRENT").exists() {
            return Err(StoreError::NotFound(path.display().to_string()));
        }
        let opts = base_options();
        let db = DB::open_cf_descriptors_read_only(&opts, path, cf_descriptors(), false)?;
        let store = Store {
            db,
            path: path.display().to_string(),
            publish: Mutex::new(()),
        };
        store.check_schema(false)?;
        Ok(store)
    }

    fn check_schema(&self, write_if_new: bool) -> Result<(), StoreError> {
        let meta = self.cf(CF_META);
        match self.db.get_cf(meta, META_SCHEMA)? {
            Some(v) if v == SCHEMA_VERSION.to_string().as_bytes() => Ok(()),
            Some(v) => Err(StoreError::Schema {
                path: self.path.clone(),
                found: String::from_utf8_lossy(&v).into_owned(),
                expected: SCHEMA_VERSION,
            }),
            None if write_if_new => {
                self.db
                    .put_cf_opt(meta, META_SCHEMA, SCHEMA_VERSION.to_string(), &synced())?;
                Ok(())
            }
            None => Err(StoreError::Schema {
                path: self.path.clone(),
                found: "none".into(),
                expected: SCHEMA_VERSION,
            }),
        }
    }

    pub(crate) fn cf(&self, name: &str) -> &ColumnFamily {
        // Every name in ALL_CFS is opened, so a missing handle is a bug.
        self.db
            .cf_handle(name)
            .unwrap_or_else(|| panic!("column family {name} not opened"))
    }

    // ---- chunks ----

    /// For each id, whether the store has that chunk.
    pub fn has_chunks(&self, ids: &[ChunkId]) -> Result<Vec<bool>, StoreError> {
        let cf = self.cf(CF_CHUNK_INDEX);
        let mut out = Vec::with_capacity(ids.len());
        for group in ids.chunks(LOOKUP_BATCH) {
            for r in self
                .db
                .batched_multi_get_cf(cf, group.iter().map(|i| &i.0[..]), false)
            {
                out.push(r?.is_some());
            }
        }
        Ok(out)
    }

    /// Stores verified chunks in one write batch. Returns how many were new.
    /// Not synced: the WAL is synced by the manifest publish that follows,
    /// which makes everything written before it durable too.
    pub fn put_chunks(&self, chunks: &[StoredChunk]) -> Result<u64, StoreError> {
        // Under the lock, so garbage collection cannot sweep a chunk between
        // "present" and the index write below.
        let _g = self.lock();
        let ids: Vec<ChunkId> = chunks.iter().map(|c| c.id()).collect();
        let have = self.has_chunks(&ids)?;
        let mut batch = WriteBatch::default();
        let mut new = 0;
        let now = ferry_protocol::unix_now();
        for (c, have) in chunks.iter().zip(have) {
            // A chunk uploaded again is fresh again: garbage collection
            // spares chunks younger than its grace period.
            batch.put_cf(self.cf(CF_CHUNK_INDEX), c.id().0, c.index_value(now));
            if have {
                continue;
            }
            batch.put_cf(self.cf(CF_CHUNKS), c.id().0, c.value());
            new += 1;
        }
        ferry_failpoint::hit("store.chunks_before_write");
        self.db.write(batch)?;
        ferry_failpoint::hit("store.chunks_written");
        Ok(new)
    }

    /// The stored value of a chunk (`codec raw_len payload`).
    pub fn get_chunk(&self, id: &ChunkId) -> Result<Option<Vec<u8>>, StoreError> {
        Ok(self.db.get_cf(self.cf(CF_CHUNKS), id.0)?)
    }

    /// Stored values of many chunks, in order.
    pub fn get_chunks(&self, ids: &[ChunkId]) -> Result<Vec<Option<Vec<u8>>>, StoreError> {
        let cf = self.cf(CF_CHUNKS);
        let mut out = Vec::with_capacity(ids.len());
        for r in self
            .db
            .batched_multi_get_cf(cf, ids.iter().map(|i| &i.0[..]), false)
        {
            out.push(r?.map(|v| v.to_vec()));
        }
        Ok(out)
    }

    // ---- publisher keys ----

    /// Keys pinned for an app (empty when none yet).
    pub fn app_keys(&self, app: &str) -> Result<Vec<PublicKey>, StoreError> {
        match self.db.get_cf(self.cf(CF_APP_KEYS), app)? {
            None => Ok(Vec::new()),
            Some(v) => decode_keys(app, &v),
        }
    }

    /// Pins `key` for `app` if the app has no key yet (trust on first use).
    /// Returns the app's keys after the call.
    pub fn pin_app_key(&self, app: &str, key: PublicKey) -> Result<Vec<PublicKey>, StoreError> {
        let _g = self.lock();
        let current = self.app_keys(app)?;
        if !current.is_empty() {
            return Ok(current);
        }
        self.db
            .put_cf_opt(self.cf(CF_APP_KEYS), app, key.0, &synced())?;
        Ok(vec![key])
    }

    /// The key set the latest key rotation of `app` named (empty when
    /// none happened).
    pub fn rotated_app_keys(&self, app: &str) -> Result<Vec<PublicKey>, StoreError> {
        self.keys_at(app, key_slot(app, "rotated"))
    }

    /// Keys a key rotation took away from `app` (empty when none).
    pub fn revoked_app_keys(&self, app: &str) -> Result<Vec<PublicKey>, StoreError> {
        self.keys_at(app, key_slot(app, "revoked"))
    }

    fn keys_at(&self, app: &str, slot: Vec<u8>) -> Result<Vec<PublicKey>, StoreError> {
        match self.db.get_cf(self.cf(CF_APP_KEYS), slot)? {
            None => Ok(Vec::new()),
            Some(v) => decode_keys(app, &v),
        }
    }

    /// Every key that ever legitimately signed for `app`: pinned, rotated
    /// in, and rotated out (old manifests keep their signatures).
    pub fn known_app_keys(&self, app: &str) -> Result<Vec<PublicKey>, StoreError> {
        let mut keys = self.app_keys(app)?;
        keys.extend(self.rotated_app_keys(app)?);
        keys.extend(self.revoked_app_keys(app)?);
        Ok(keys)
    }

    // ---- manifests and versions ----

    /// Publishes a verified manifest: every chunk must be present, and an
    /// (app, version) pair can never be re-pointed at different contents.
    /// Synced: once this returns, the version and its chunks are durable.
    pub fn put_manifest(
        &self,
        envelope: &[u8],
        id: ManifestId,
        manifest: &Manifest,
    ) -> Result<bool, StoreError> {
        // Under the lock: garbage collection holds it too, so a chunk seen
        // present here cannot be swept before the manifest that needs it
        // is written.
        let _g = self.lock();
        let unique: Vec<ChunkId> = manifest.unique_chunks().iter().map(|c| c.id).collect();
        require_chunks(&unique, &self.has_chunks(&unique)?)?;
        let vkey = keys::pair(&manifest.app, &manifest.version);
        if let Some(existing) = self.db.get_cf(self.cf(CF_VERSIONS), &vkey)? {
            if existing == id.0 {
                return Ok(false);
            }
            return Err(StoreError::Conflict(format!(
                "version {} of {} is already published with different contents \
                 (manifest {}); versions are immutable, push a new version",
                manifest.version,
                manifest.app,
                ManifestId::from_slice(&existing).map_or("?".into(), |m| m.short())
            )));
        }
        let mut batch = WriteBatch::default();
        batch.put_cf(self.cf(CF_MANIFESTS), id.0, envelope);
        batch.put_cf(self.cf(CF_VERSIONS), vkey, id.0);
        ferry_failpoint::hit("store.manifest_before_write");
        self.db.write_opt(batch, &synced())?;
        ferry_failpoint::hit("store.manifest_written");
        Ok(true)
    }

    /// A signed manifest envelope by id.
    pub fn get_manifest(&self, id: &ManifestId) -> Result<Option<Vec<u8>>, StoreError> {
        Ok(self.db.get_cf(self.cf(CF_MANIFESTS), id.0)?)
    }

    /// The manifest id of an app's version.
    pub fn get_version(&self, app: &str, version: &str) -> Result<Option<ManifestId>, StoreError> {
        match self
            .db
            .get_cf(self.cf(CF_VERSIONS), keys::pair(app, version))?
        {
            None => Ok(None),
            Some(v) => ManifestId::from_slice(&v)
                .map(Some)
                .map_err(|e| StoreError::Corrupt(format!("version index {app}/{version}: {e}"))),
        }
    }

    /// All published versions of an app with their manifest ids.
    pub fn list_versions(&self, app: &str) -> Result<Vec<(String, ManifestId)>, StoreError> {
        let prefix = keys::pair(app, "");
        let mut out = Vec::new();
        let iter = self.db.iterator_cf(
            self.cf(CF_VERSIONS),
            IteratorMode::From(&prefix, Direction::Forward),
        );
        for item in iter {
            let (k, v) = item?;
            if !k.starts_with(&prefix) {
                break;
            }
            let version = String::from_utf8_lossy(&k[prefix.len()..]).into_owned();
            let id = ManifestId::from_slice(&v)
                .map_err(|e| StoreError::Corrupt(format!("version index {app}/{version}: {e}")))?;
            out.push((version, id));
        }
        Ok(out)
    }

    // ---- channels ----

    /// The current signed record of a channel.
    pub fn get_channel(&self, app: &str, channel: &str) -> Result<Option<Vec<u8>>, StoreError> {
        Ok(self
            .db
            .get_cf(self.cf(CF_CHANNELS), keys::pair(app, channel))?)
    }

    /// Stores a verified channel record if its sequence is above the current
    /// one and the manifest it names is published for that version. Synced.
    pub fn put_channel(&self, envelope: &[u8], record: &ChannelRecord) -> Result<(), StoreError> {
        self.put_channel_rotating(envelope, record, &[])
    }

    /// Like [`Store::put_channel`]; the key set of a record that rotates
    /// keys (its `keys` field, already verified by the caller against
    /// `trusted_before`) is stored as the app's rotated set in the same
    /// atomic batch, and the keys of `trusted_before` it leaves out are
    /// recorded as revoked.
    pub fn put_channel_rotating(
        &self,
        envelope: &[u8],
        record: &ChannelRecord,
        trusted_before: &[PublicKey],
    ) -> Result<(), StoreError> {
        let _g = self.lock();
        let fallback = match &record.policy.previous {
            Some(p) => self.get_version(&record.app, &p.version)?,
            None => None,
        };
        check_record_versions(
            record,
            self.get_version(&record.app, &record.version)?,
            fallback,
        )?;
        let key = keys::pair(&record.app, &record.channel);
        if let Some(current) = self.db.get_cf(self.cf(CF_CHANNELS), &key)? {
            let cur = decode_channel(&current)?;
            if record.sequence <= cur.sequence {
                return Err(StoreError::StaleSequence {
                    app: record.app.clone(),
                    channel: record.channel.clone(),
                    current: cur.sequence,
                    got: record.sequence,
                });
            }
        }
        let mut batch = WriteBatch::default();
        batch.put_cf(self.cf(CF_CHANNELS), key, envelope);
        batch.put_cf(
            self.cf(CF_HISTORY),
            keys::history(&record.app, &record.channel, record.sequence),
            envelope,
        );
        if !record.keys.is_empty() {
            let mut revoked = self.revoked_app_keys(&record.app)?;
            revoked.extend(trusted_before.iter().filter(|k| !record.keys.contains(k)));
            revoked.retain(|k| !record.keys.contains(k));
            revoked.sort();
            revoked.dedup();
            let cf = self.cf(CF_APP_KEYS);
            batch.put_cf(
                cf,
                key_slot(&record.app, "rotated"),
                encode_keys(&record.keys),
            );
            if revoked.is_empty() {
                batch.delete_cf(cf, key_slot(&record.app, "revoked"));
            } else {
                batch.put_cf(cf, key_slot(&record.app, "revoked"), encode_keys(&revoked));
            }
        }
        ferry_failpoint::hit("store.channel_before_write");
        self.db.write_opt(batch, &synced())?;
        ferry_failpoint::hit("store.channel_written");
        Ok(())
    }

    /// Every record a channel has had, oldest first.
    pub fn channel_history(&self, app: &str, channel: &str) -> Result<Vec<Vec<u8>>, StoreError> {
        let prefix = keys::history_prefix(app, channel);
        let mut out = Vec::new();
        let iter = self.db.iterator_cf(
            self.cf(CF_HISTORY),
            IteratorMode::From(&prefix, Direction::Forward),
        );
        for item in iter {
            let (k, v) = item?;
            if !k.starts_with(&prefix) {
                break;
            }
            out.push(v.to_vec());
        }
        Ok(out)
    }

    pub(crate) fn lock(&self) -> std::sync::MutexGuard<'_, ()> {
        // A panic while holding the lock leaves no partial state (writes are
        // batches), so a poisoned lock is safe to keep using.
        self.publish.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// Where an app's rotated or revoked keys live in `app_keys.v1`, beside
/// its pinned ones under the bare name (names never hold a 0 byte).
fn key_slot(app: &str, slot: &str) -> Vec<u8> {
    let mut k = app.as_bytes().to_vec();
    k.push(0);
    k.extend_from_slice(slot.as_bytes());
    k
}

/// Encodes a key set as stored: the keys' bytes back to back.
pub fn encode_keys(keys: &[PublicKey]) -> Vec<u8> {
    keys.iter().flat_map(|k| k.0).collect()
}

pub(crate) fn synced() -> WriteOptions {
    let mut w = WriteOptions::default();
    w.set_sync(true);
    w
}

/// Decodes a stored key set (32 bytes per key); shared by every engine.
pub fn decode_keys(app: &str, v: &[u8]) -> Result<Vec<PublicKey>, StoreError> {
    if v.is_empty() || !v.len().is_multiple_of(32) {
        return Err(StoreError::Corrupt(format!("keys of app {app}")));
    }
    Ok(v.chunks_exact(32)
        .map(|c| {
            let mut a = [0u8; 32];
            a.copy_from_slice(c);
            PublicKey(a)
        })
        .collect())
}

/// Decodes a stored channel envelope's record (signature checked at publish).
pub fn decode_channel(bytes: &[u8]) -> Result<ChannelRecord, StoreError> {
    let env = Envelope::decode(bytes, usize::MAX)
        .map_err(|e| StoreError::Corrupt(format!("stored channel record: {e}")))?;
    if env.kind != KIND_CHANNEL {
        return Err(StoreError::Corrupt(
            "stored channel record has wrong kind".into(),
        ));
    }
    ChannelRecord::decode(&env.body)
        .map_err(|e| StoreError::Corrupt(format!("stored channel record: {e}")))
}

/// Decodes a stored manifest envelope (signature checked at publish).
pub(crate) fn decode_manifest(bytes: &[u8]) -> Result<(Envelope, Manifest), StoreError> {
    let env = Envelope::decode(bytes, usize::MAX)
        .map_err(|e| StoreError::Corrupt(format!("stored manifest: {e}")))?;
    if env.kind != KIND_MANIFEST {
        return Err(StoreError::Corrupt("stored manifest has wrong kind".into()));
    }
    let m = Manifest::decode(&env.body)
        .map_err(|e| StoreError::Corrupt(format!("stored manifest: {e}")))?;
    Ok((env, m))
}

/// A manifest may only be published when the store has every chunk it
/// names: `have` answers `unique` in order. For every store engine.
pub fn require_chunks(unique: &[ChunkId], have: &[bool]) -> Result<(), StoreError> {
    let mut missing = unique
        .iter()
        .zip(have)
        .filter(|(_, h)| !**h)
        .map(|(i, _)| i);
    match missing.next() {
        Some(first) => Err(StoreError::MissingChunks {
            count: 1 + missing.count(),
            first: first.to_hex(),
        }),
        None => Ok(()),
    }
}

/// A record may only name published versions: `version` and `fallback` are
/// the manifest ids the store has for the record's version and for its
/// fallback version (when it names one). For every store engine.
pub fn check_record_versions(
    record: &ChannelRecord,
    version: Option<ManifestId>,
    fallback: Option<ManifestId>,
) -> Result<(), StoreError> {
    match version {
        Some(id) if id == record.manifest_id => {}
        Some(id) => {
            return Err(StoreError::Conflict(format!(
                "record names manifest {} for {} {}, but that version is manifest {}",
                record.manifest_id.short(),
                record.app,
                record.version,
                id.short()
            )))
        }
        None => {
            return Err(StoreError::UnknownManifest(format!(
                "version {} of {}",
                record.version, record.app
            )))
        }
    }
    if let Some(p) = &record.policy.previous {
        if fallback != Some(p.manifest_id) {
            return Err(StoreError::UnknownManifest(format!(
                "fallback version {} of {} (manifest {})",
                p.version,
                record.app,
                p.manifest_id.short()
            )));
        }
    }
    Ok(())
}
