//! What operations need beyond publishing and serving: the list of apps,
//! sizes for metrics, a consistent checkpoint for backups, and the writes of
//! a pull-through mirror (which receives manifests before their chunks).

use std::path::Path;

use ferry_protocol::{ChannelRecord, Manifest, ManifestId};
use rocksdb::checkpoint::Checkpoint;
use rocksdb::{Direction, IteratorMode, WriteBatch};

use crate::backend::StoreStats;
use crate::db::{
    decode_channel, synced, Store, ALL_CFS, CF_CHANNELS, CF_CHUNK_INDEX, CF_HISTORY, CF_MANIFESTS,
    CF_VERSIONS,
};
use crate::error::StoreError;
use crate::keys;

impl Store {
    /// Every app with a published version, sorted (one seek per app).
    pub fn list_apps(&self) -> Result<Vec<String>, StoreError> {
        let mut out = Vec::new();
        let mut from: Vec<u8> = Vec::new();
        loop {
            let mut iter = self.db.iterator_cf(
                self.cf(CF_VERSIONS),
                IteratorMode::From(&from, Direction::Forward),
            );
            let Some(item) = iter.next() else { break };
            let (k, _) = item?;
            let Some((app, _)) = keys::split_pair(&k) else {
                return Err(StoreError::Corrupt("version index key without app".into()));
            };
            // The next app starts after every `app 0x00 ...` key.
            from = app.as_bytes().to_vec();
            from.push(1);
            out.push(app);
        }
        Ok(out)
    }

    /// Chunk count (RocksDB's estimate of the index's keys) and the bytes of
    /// live table and blob files: cheap enough for every metrics scrape.
    pub fn stats(&self) -> Result<StoreStats, StoreError> {
        let chunks = self
            .db
            .property_int_value_cf(self.cf(CF_CHUNK_INDEX), "rocksdb.estimate-num-keys")?
            .unwrap_or(0);
        let mut bytes = 0;
        for name in ALL_CFS {
            let cf = self.cf(name);
            for prop in [
                "rocksdb.live-sst-files-size",
                "rocksdb.total-blob-file-size",
            ] {
                bytes += self.db.property_int_value_cf(cf, prop)?.unwrap_or(0);
            }
            bytes += self
                .db
                .property_int_value_cf(cf, "rocksdb.cur-size-all-mem-tables")?
                .unwrap_or(0);
        }
        Ok(StoreStats { chunks, bytes })
    }

    /// A RocksDB checkpoint in `out` (which must not exist; its parent must):
    /// hard links of the immutable table and blob files on the same file
    /// system, copies elsewhere, and a flushed memtable, so the copy holds
    /// every write acknowledged before the call. Safe while serving.
    pub fn checkpoint(&self, out: &Path) -> Result<(), StoreError> {
        if out.exists() {
            return Err(StoreError::Backup(format!(
                "{} already exists; a checkpoint goes into a new directory",
                out.display()
            )));
        }
        match out.parent() {
            Some(p) if p.as_os_str().is_empty() || p.is_dir() => {}
            _ => {
                return Err(StoreError::Backup(format!(
                    "the parent directory of {} does not exist",
                    out.display()
                )))
            }
        }
        // A publish in progress finishes first: the copy never holds half
        // of one (they are single batches anyway; this makes it obvious).
        let _g = self.lock();
        let cp = Checkpoint::new(&self.db)?;
        cp.create_checkpoint(out)?;
        Ok(())
    }

    /// Keeps a manifest a mirror verified against the upstream's signature,
    /// before its chunks arrive. Never re-points a version.
    pub fn cache_manifest(
        &self,
        envelope: &[u8],
        id: ManifestId,
        manifest: &Manifest,
    ) -> Result<(), StoreError> {
        let _g = self.lock();
        let vkey = keys::pair(&manifest.app, &manifest.version);
        let mut batch = WriteBatch::default();
        match self.db.get_cf(self.cf(CF_VERSIONS), &vkey)? {
            Some(existing) if existing != id.0 => {
                return Err(StoreError::Conflict(format!(
                    "version {} of {} is already cached as another manifest",
                    manifest.version, manifest.app
                )))
            }
            Some(_) => {}
            None => batch.put_cf(self.cf(CF_VERSIONS), vkey, id.0),
        }
        batch.put_cf(self.cf(CF_MANIFESTS), id.0, envelope);
        self.db.write(batch)?;
        Ok(())
    }

    /// Keeps the upstream's record of a channel if it is newer than ours.
    pub fn cache_channel(&self, envelope: &[u8], record: &ChannelRecord) -> Result<(), StoreError> {
        let _g = self.lock();
        let key = keys::pair(&record.app, &record.channel);
        if let Some(current) = self.db.get_cf(self.cf(CF_CHANNELS), &key)? {
            if decode_channel(&current)?.sequence >= record.sequence {
                return Ok(());
            }
        }
        let mut batch = WriteBatch::default();
        batch.put_cf(self.cf(CF_CHANNELS), key, envelope);
        batch.put_cf(
            self.cf(CF_HISTORY),
            keys::history(&record.app, &record.channel, record.sequence),
            envelope,
        );
        self.db.write_opt(batch, &synced())?;
        Ok(())
    }
}
