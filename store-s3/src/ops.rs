//! The store's operations over objects, with the RocksDB store's semantics
//! (ferry-store `db.rs`, `ops.rs`, `reports.rs`) but no lock: several
//! servers share one bucket, so every read-check-write that must not race
//! ends in a conditional write (create-only, or compare-and-swap on the
//! object's ETag) and is retried from the read when it conflicts.

use ferry_protocol::report::StatusRow;
use ferry_protocol::{ChannelRecord, ChunkId, Manifest, ManifestId, PublicKey};
use ferry_store::{decode_channel, decode_keys, encode_keys, StoreError};
use object_store::PutMode;

use crate::layout::{last, KeySlot};
use crate::objects::{Core, Put};

/// Compare-and-swap attempts before a publish gives up. Every retry means
/// another record landed in between, and sequences only grow, so a
/// publish either wins or turns stale within a few rounds.
const CAS_ATTEMPTS: usize = 64;

/// What a channel write is for: a publish checks the sequence rule and
/// answers a stale record with an error; a mirror's cache keeps the newer
/// record silently.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum ChannelWrite {
    Publish,
    Cache,
}

impl Core {
    pub async fn has_chunks(&self, ids: &[ChunkId]) -> Result<Vec<bool>, StoreError> {
        let keys = ids.iter().map(|id| self.layout.chunk(id)).collect();
        self.exist_many(keys).await
    }

    // ---- keys ----

    pub async fn key_set(&self, app: &str, slot: KeySlot) -> Result<Vec<PublicKey>, StoreError> {
        match self.get_vec(&self.layout.keys(app, slot)?).await? {
            None => Ok(Vec::new()),
            Some(v) => decode_keys(app, &v),
        }
    }

    /// Trust on first use, create-only: of two servers pinning at once,
    /// one key wins and both answer it.
    pub async fn pin_app_key(
        &self,
        app: &str,
        key: PublicKey,
    ) -> Result<Vec<PublicKey>, StoreError> {
        let current = self.key_set(app, KeySlot::Pinned).await?;
        if !current.is_empty() {
            return Ok(current);
        }
        let path = self.layout.keys(app, KeySlot::Pinned)?;
        match self.put(&path, key.0.to_vec(), PutMode::Create).await? {
            Put::Written => Ok(vec![key]),
            Put::Conflict => self.key_set(app, KeySlot::Pinned).await,
        }
    }

    // ---- manifests and versions ----

    /// Manifest object first, then the version index entry, create-only.
    /// A crash between leaves an unreferenced manifest object (harmless);
    /// a race with another server publishing the same version ends in one
    /// id for it, as with RocksDB.
    pub async fn put_manifest(
        &self,
        envelope: &[u8],
        id: ManifestId,
        manifest: &Manifest,
        cache: bool,
    ) -> Result<bool, StoreError> {
        if !cache {
            let unique: Vec<ChunkId> = manifest.unique_chunks().iter().map(|c| c.id).collect();
            ferry_store::require_chunks(&unique, &self.has_chunks(&unique).await?)?;
        }
        let vkey = self.layout.version(&manifest.app, &manifest.version)?;
        if let Some(existing) = self.get_vec(&vkey).await? {
            return same_version(manifest, id, &existing, cache).map(|()| false);
        }
        let mkey = self.layout.manifest(&id);
        if self
            .put(&mkey, envelope.to_vec(), PutMode::Overwrite)
            .await?
            != Put::Written
        {
            return Err(StoreError::Conflict(format!(
                "manifest {mkey} could not be written"
            )));
        }
        match self.put(&vkey, id.0.to_vec(), PutMode::Create).await? {
            Put::Written => Ok(true),
            Put::Conflict => {
                let existing = self.get_vec(&vkey).await?.unwrap_or_default();
                same_version(manifest, id, &existing, cache).map(|()| false)
            }
        }
    }

    pub async fn get_version(
        &self,
        app: &str,
        version: &str,
    ) -> Result<Option<ManifestId>, StoreError> {
        match self.get_vec(&self.layout.version(app, version)?).await? {
            None => Ok(None),
            Some(v) => ManifestId::from_slice(&v)
                .map(Some)
                .map_err(|e| StoreError::Corrupt(format!("version index {app}/{version}: {e}"))),
        }
    }

    pub async fn list_versions(&self, app: &str) -> Result<Vec<(String, ManifestId)>, StoreError> {
        let listed = self.list(&self.layout.versions_of(app)?).await?;
        let names: Vec<String> = listed.iter().map(|(p, _)| last(p)).collect();
        let values = self
            .get_many(listed.into_iter().map(|(p, _)| p).collect())
            .await?;
        let mut out = Vec::with_capacity(names.len());
        for (version, v) in names.into_iter().zip(values) {
            // Listed, then gone: nothing deletes versions, but be lenient.
            let Some(v) = v else { continue };
            let id = ManifestId::from_slice(&v)
                .map_err(|e| StoreError::Corrupt(format!("version index {app}/{version}: {e}")))?;
            out.push((version, id));
        }
        out.sort_by(|a, b| a.0.as_bytes().cmp(b.0.as_bytes()));
        Ok(out)
    }

    // ---- channels ----

    /// The current record, with the history entry of the record it read
    /// ensured (see `write_channel`).
    pub async fn channel_history(
        &self,
        app: &str,
        channel: &str,
    ) -> Result<Vec<Vec<u8>>, StoreError> {
        // The current record first: whatever the listing then shows is at
        // least as new, so a record missing from it can only be this one.
        let current = self.get_vec(&self.layout.channel(app, channel)?).await?;
        let listed = self.list(&self.layout.history_of(app, channel)?).await?;
        let seqs: Vec<u64> = listed
            .iter()
            .map(|(p, _)| last(p).parse::<u64>())
            .collect::<Result<_, _>>()
            .map_err(|_| StoreError::Corrupt(format!("history of {app}/{channel}: bad key")))?;
        let values = self
            .get_many(listed.into_iter().map(|(p, _)| p).collect())
            .await?;
        let mut out: Vec<(u64, Vec<u8>)> = seqs
            .into_iter()
            .zip(values)
            .filter_map(|(s, v)| v.map(|v| (s, v)))
            .collect();
        if let Some(cur) = current {
            let seq = decode_channel(&cur)?.sequence;
            if !out.iter().any(|(s, _)| *s == seq) {
                out.push((seq, cur));
                out.sort_by_key(|(s, _)| *s);
            }
        }
        Ok(out.into_iter().map(|(_, v)| v).collect())
    }

    pub async fn channels_of(&self, app: &str) -> Result<Vec<(String, Vec<u8>)>, StoreError> {
        let listed = self.list(&self.layout.channels_of(app)?).await?;
        let names: Vec<String> = listed.iter().map(|(p, _)| last(p)).collect();
        let values = self
            .get_many(listed.into_iter().map(|(p, _)| p).collect())
            .await?;
        Ok(names
            .into_iter()
            .zip(values)
            .filter_map(|(n, v)| v.map(|v| (n, v)))
            .collect())
    }

    /// Checks that a record names published versions (as RocksDB does).
    pub async fn check_record_versions(&self, record: &ChannelRecord) -> Result<(), StoreError> {
        let fallback = match &record.policy.previous {
            Some(p) => self.get_version(&record.app, &p.version).await?,
            None => None,
        };
        let version = self.get_version(&record.app, &record.version).await?;
        ferry_store::check_record_versions(record, version, fallback)
    }

    /// Replaces a channel's current record by compare-and-swap.
    ///
    /// Each round: read the current record and its ETag; make sure its
    /// history entry exists (a crash after an earlier swap may have left
    /// it unwritten); apply the sequence rule; write the key sets a
    /// rotation brings (before the record that relies on them); swap
    /// (create-only when there is no record, If-Match the ETag read
    /// otherwise); on a conflict start over from the read. After the swap,
    /// the record's own history entry (create-only).
    ///
    /// So history only ever holds records that were current, and a record
    /// whose entry a crash prevented is added by the next publish and shown
    /// by `channel_history` meanwhile.
    pub async fn write_channel(
        &self,
        envelope: &[u8],
        record: &ChannelRecord,
        trusted_before: &[PublicKey],
        kind: ChannelWrite,
    ) -> Result<(), StoreError> {
        let (app, channel) = (&record.app, &record.channel);
        let ckey = self.layout.channel(app, channel)?;
        for _ in 0..CAS_ATTEMPTS {
            let mode = match self.get(&ckey).await? {
                None => PutMode::Create,
                Some((bytes, version)) => {
                    let cur = decode_channel(&bytes)?;
                    self.put_immutable(
                        &self.layout.history(app, channel, cur.sequence)?,
                        bytes.to_vec(),
                        "history entry",
                    )
                    .await?;
                    if record.sequence <= cur.sequence {
                        return match kind {
                            ChannelWrite::Cache => Ok(()),
                            ChannelWrite::Publish => Err(StoreError::StaleSequence {
                                app: app.clone(),
                                channel: channel.clone(),
                                current: cur.sequence,
                                got: record.sequence,
                            }),
                        };
                    }
                    PutMode::Update(version)
                }
            };
            if kind == ChannelWrite::Publish && !record.keys.is_empty() {
                self.write_rotation(record, trusted_before).await?;
            }
            if self.put(&ckey, envelope.to_vec(), mode).await? == Put::Written {
                let hkey = self.layout.history(app, channel, record.sequence)?;
                return self
                    .put_immutable(&hkey, envelope.to_vec(), "history entry")
                    .await;
            }
        }
        Err(StoreError::Conflict(format!(
            "channel {app}/{channel} kept changing during {CAS_ATTEMPTS} attempts to publish; try again"
        )))
    }

    /// The rotated key set becomes the record's keys; the keys of
    /// `trusted_before` it leaves out join the revoked set (as RocksDB).
    async fn write_rotation(
        &self,
        record: &ChannelRecord,
        trusted_before: &[PublicKey],
    ) -> Result<(), StoreError> {
        let app = &record.app;
        let mut revoked = self.key_set(app, KeySlot::Revoked).await?;
        revoked.extend(trusted_before.iter().filter(|k| !record.keys.contains(k)));
        revoked.retain(|k| !record.keys.contains(k));
        revoked.sort();
        revoked.dedup();
        let rkey = self.layout.keys(app, KeySlot::Rotated)?;
        self.put(&rkey, encode_keys(&record.keys), PutMode::Overwrite)
            .await?;
        let vkey = self.layout.keys(app, KeySlot::Revoked)?;
        if revoked.is_empty() {
            self.delete(&vkey).await
        } else {
            self.put(&vkey, encode_keys(&revoked), PutMode::Overwrite)
                .await
                .map(|_| ())
        }
    }

    // ---- reports ----

    pub async fn report_counts(&self, app: &str) -> Result<Vec<StatusRow>, StoreError> {
        let listed = self.list(&self.layout.reports_of(app)?).await?;
        let values = self
            .get_many(listed.into_iter().map(|(p, _)| p).collect())
            .await?;
        Ok(ferry_store::tally_reports(
            values.iter().flatten().map(|v| &v[..]),
        ))
    }
}

/// An (app, version) already in the index: fine if it is this manifest.
fn same_version(
    manifest: &Manifest,
    id: ManifestId,
    existing: &[u8],
    cache: bool,
) -> Result<(), StoreError> {
    if existing == id.0 {
        return Ok(());
    }
    if cache {
        return Err(StoreError::Conflict(format!(
            "version {} of {} is already cached as another manifest",
            manifest.version, manifest.app
        )));
    }
    Err(StoreError::Conflict(format!(
        "version {} of {} is already published with different contents \
         (manifest {}); versions are immutable, push a new version",
        manifest.version,
        manifest.app,
        ManifestId::from_slice(existing).map_or("?".into(), |m| m.short())
    )))
}
