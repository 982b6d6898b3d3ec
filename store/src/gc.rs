//! Garbage collection: drop versions no channel needs any more, then the
//! chunks no remaining version references.
//!
//! A version is kept when any channel's current record names it (as its
//! version or as the fallback of a partial rollout), when it is among the
//! last `keep` distinct versions of a channel's history, or among the
//! `keep` most recently published versions of its app. A chunk is removed
//! only when no kept manifest references it **and** it was stored (or
//! uploaded again) more than `grace` seconds ago, so the chunks of a push
//! still uploading are safe. The whole mark-and-sweep runs under the store's
//! publish lock: no manifest can be published, and no chunk found present
//! by an upload, between the mark and the sweep.

use std::collections::{BTreeMap, BTreeSet, HashSet};

use ferry_protocol::{unix_now, ChannelRecord, ChunkId, Envelope, Manifest, ManifestId};
use rocksdb::{IteratorMode, WriteBatch};
use serde::Serialize;

use crate::db::{
    synced, Store, CF_CHANNELS, CF_CHUNKS, CF_CHUNK_INDEX, CF_HISTORY, CF_MANIFESTS, CF_VERSIONS,
};
use crate::error::StoreError;
use crate::keys;

/// What to keep.
#[derive(Debug, Clone, Copy)]
pub struct GcOptions {
    /// Versions per channel history and per app kept besides the current.
    pub keep: usize,
    /// Unreferenced chunks younger than this (seconds) stay.
    pub grace_secs: u64,
    /// Report only; change nothing.
    pub dry_run: bool,
}

/// What a collection removed (or would remove).
#[derive(Debug, Clone, Default, Serialize)]
pub struct GcReport {
    pub versions_kept: u64,
    /// `app version` of each version removed.
    pub versions_removed: Vec<String>,
    pub chunks_kept: u64,
    pub chunks_removed: u64,
    /// Stored (compressed) bytes of the removed chunks.
    pub bytes_removed: u64,
    /// Unreferenced chunks spared because they are younger than the grace.
    pub chunks_in_grace: u64,
    pub dry_run: bool,
}

const SWEEP_BATCH: usize = 4096;

impl Store {
    /// Runs a collection (see the module docs). Blocks publishes while it
    /// runs.
    pub fn gc(&self, o: GcOptions) -> Result<GcReport, StoreError> {
        let _g = self.lock();
        let mut r = GcReport {
            dry_run: o.dry_run,
            ..GcReport::default()
        };
        // Every published version: app -> [(version, manifest id)].
        let mut versions: BTreeMap<String, Vec<(String, ManifestId)>> = BTreeMap::new();
        for item in self
            .db
            .iterator_cf(self.cf(CF_VERSIONS), IteratorMode::Start)
        {
            let (k, v) = item?;
            let (app, version) = keys::split_pair(&k)
                .ok_or_else(|| StoreError::Corrupt("version index key".into()))?;
            let id = ManifestId::from_slice(&v)
                .map_err(|e| StoreError::Corrupt(format!("version index {app}/{version}: {e}")))?;
            versions.entry(app).or_default().push((version, id));
        }
        let live = self.live_versions(&versions, o.keep)?;

        // Mark: chunks of kept manifests. Sweep the versions not kept.
        let mut referenced: HashSet<ChunkId> = HashSet::new();
        let mut batch = WriteBatch::default();
        for (app, list) in &versions {
            for (version, id) in list {
                if live.contains(&(app.clone(), version.clone())) {
                    r.versions_kept += 1;
                    let m = self.manifest_body(id)?;
                    referenced.extend(m.unique_chunks().iter().map(|c| c.id));
                } else {
                    r.versions_removed.push(format!("{app} {version}"));
                    batch.delete_cf(self.cf(CF_VERSIONS), keys::pair(app, version));
                    batch.delete_cf(self.cf(CF_MANIFESTS), id.0);
                }
            }
        }
        if !o.dry_run && !r.versions_removed.is_empty() {
            self.db.write_opt(batch, &synced())?;
        }

        // Sweep chunks.
        let cutoff = unix_now().saturating_sub(o.grace_secs);
        let mut batch = WriteBatch::default();
        let mut pending = 0usize;
        for item in self
            .db
            .iterator_cf(self.cf(CF_CHUNK_INDEX), IteratorMode::Start)
        {
            let (k, v) = item?;
            let id = ChunkId::from_slice(&k)
                .map_err(|e| StoreError::Corrupt(format!("chunk index key: {e}")))?;
            if referenced.contains(&id) {
                r.chunks_kept += 1;
                continue;
            }
            // Index values of older builds carry no time: count as old.
            let stored_at = v
                .get(9..17)
                .and_then(|b| b.try_into().ok())
                .map_or(0, u64::from_le_bytes);
            if stored_at > cutoff {
                r.chunks_in_grace += 1;
                r.chunks_kept += 1;
                continue;
            }
            r.chunks_removed += 1;
            r.bytes_removed += v
                .get(5..9)
                .and_then(|b| b.try_into().ok())
                .map_or(0, |b| u64::from(u32::from_le_bytes(b)));
            batch.delete_cf(self.cf(CF_CHUNKS), id.0);
            batch.delete_cf(self.cf(CF_CHUNK_INDEX), id.0);
            pending += 1;
            if pending >= SWEEP_BATCH {
                if !o.dry_run {
                    self.db.write_opt(std::mem::take(&mut batch), &synced())?;
                }
                batch = WriteBatch::default();
                pending = 0;
            }
        }
        if !o.dry_run && pending > 0 {
            self.db.write_opt(batch, &synced())?;
        }
        if !o.dry_run && r.chunks_removed > 0 {
            // Reclaim the space now rather than at some later compaction.
            self.db
                .compact_range_cf(self.cf(CF_CHUNKS), None::<&[u8]>, None::<&[u8]>);
            self.db
                .compact_range_cf(self.cf(CF_CHUNK_INDEX), None::<&[u8]>, None::<&[u8]>);
        }
        Ok(r)
    }

    /// (app, version) pairs that must stay.
    fn live_versions(
        &self,
        versions: &BTreeMap<String, Vec<(String, ManifestId)>>,
        keep: usize,
    ) -> Result<BTreeSet<(String, String)>, StoreError> {
        let mut live = BTreeSet::new();
        let add_record = |live: &mut BTreeSet<(String, String)>, rec: &ChannelRecord| {
            live.insert((rec.app.clone(), rec.version.clone()));
            if let Some(p) = &rec.policy.previous {
                live.insert((rec.app.clone(), p.version.clone()));
            }
        };
        for item in self
            .db
            .iterator_cf(self.cf(CF_CHANNELS), IteratorMode::Start)
        {
            let (_, v) = item?;
            add_record(&mut live, &decode_record(&v)?);
        }
        // History windows, newest first per channel.
        let mut per_channel: BTreeMap<(String, String), Vec<ChannelRecord>> = BTreeMap::new();
        for item in self
            .db
            .iterator_cf(self.cf(CF_HISTORY), IteratorMode::Start)
        {
            let (_, v) = item?;
            let rec = decode_record(&v)?;
            per_channel
                .entry((rec.app.clone(), rec.channel.clone()))
                .or_default()
                .push(rec);
        }
        for records in per_channel.values() {
            let mut seen = BTreeSet::new();
            for rec in records.iter().rev() {
                if seen.len() >= keep {
                    break;
                }
                seen.insert(rec.version.clone());
                add_record(&mut live, rec);
            }
        }
        // The most recently published versions of each app.
        for (app, list) in versions {
            let mut dated: Vec<(u64, &String)> = Vec::with_capacity(list.len());
            for (version, id) in list {
                dated.push((self.manifest_body(id)?.created_at, version));
            }
            dated.sort_by(|a, b| b.cmp(a));
            for (_, v) in dated.into_iter().take(keep) {
                live.insert((app.clone(), v.clone()));
            }
        }
        Ok(live)
    }

    fn manifest_body(&self, id: &ManifestId) -> Result<Manifest, StoreError> {
        let env = self.get_manifest(id)?.ok_or_else(|| {
            StoreError::Corrupt(format!("manifest {} is indexed but missing", id.short()))
        })?;
        let env = Envelope::decode(&env, usize::MAX)
            .map_err(|e| StoreError::Corrupt(format!("manifest {}: {e}", id.short())))?;
        Manifest::decode(&env.body)
            .map_err(|e| StoreError::Corrupt(format!("manifest {}: {e}", id.short())))
    }
}

fn decode_record(envelope: &[u8]) -> Result<ChannelRecord, StoreError> {
    let env = Envelope::decode(envelope, usize::MAX)
        .map_err(|e| StoreError::Corrupt(format!("channel record: {e}")))?;
    ChannelRecord::decode(&env.body)
        .map_err(|e| StoreError::Corrupt(format!("channel record: {e}")))
}
