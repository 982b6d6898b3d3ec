//! Offline consistency check of a store: every chunk decodes and hashes to
//! its key, the index agrees with the chunks, every manifest is intact,
//! signed by its app's pinned key and has all its chunks, and every version
//! and channel entry points at something that exists. Reads only.

use std::collections::HashSet;

use ferry_protocol::chunk::decode_payload;
use ferry_protocol::signed::{KIND_CHANNEL, KIND_MANIFEST};
use ferry_protocol::{ChunkId, ManifestId};
use rocksdb::IteratorMode;

use crate::db::{
    decode_channel, decode_keys, decode_manifest, Store, CF_APP_KEYS, CF_CHANNELS, CF_CHUNKS,
    CF_CHUNK_INDEX, CF_MANIFESTS, CF_VERSIONS,
};
use crate::error::StoreError;
use crate::keys::split_pair;
use crate::stored::parse_value;

/// One problem found, in words an operator can act on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem(pub String);

impl std::fmt::Display for Problem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// What fsck looked at and what it found.
#[derive(Debug, Clone, Default)]
pub struct FsckReport {
    pub chunks: u64,
    pub chunk_bytes: u64,
    pub stored_bytes: u64,
    pub manifests: u64,
    pub versions: u64,
    pub channels: u64,
    pub problems: Vec<Problem>,
}

impl FsckReport {
    pub fn is_clean(&self) -> bool {
        self.problems.is_empty()
    }

    fn bad(&mut self, s: String) {
        self.problems.push(Problem(s));
    }
}

impl Store {
    /// Checks the whole store. `progress` is called after each chunk.
    pub fn fsck(&self, progress: &dyn Fn(u64)) -> Result<FsckReport, StoreError> {
        let mut r = FsckReport::default();

        let mut present: HashSet<ChunkId> = HashSet::new();
        for item in self.db.iterator_cf(self.cf(CF_CHUNKS), IteratorMode::Start) {
            let (k, v) = item?;
            r.chunks += 1;
            progress(r.chunks);
            let Ok(id) = ChunkId::from_slice(&k) else {
                r.bad(format!("chunk key of {} bytes is not an id", k.len()));
                continue;
            };
            r.stored_bytes += v.len() as u64;
            match parse_value(&id, &v) {
                Err(e) => r.bad(e.to_string()),
                Ok((codec, raw_len, payload)) => {
                    match decode_payload(id, codec, raw_len, payload) {
                        Err(e) => r.bad(format!("damaged chunk: {e}")),
                        Ok(_) => {
                            r.chunk_bytes += u64::from(raw_len);
                            present.insert(id);
                        }
                    }
                }
            }
        }
        let mut indexed = 0u64;
        for item in self
            .db
            .iterator_cf(self.cf(CF_CHUNK_INDEX), IteratorMode::Start)
        {
            let (k, _) = item?;
            indexed += 1;
            match ChunkId::from_slice(&k) {
                Ok(id) if present.contains(&id) => {}
                Ok(id) => r.bad(format!(
                    "index lists chunk {id} but its data is missing or damaged"
                )),
                Err(_) => r.bad("index key is not an id".into()),
            }
        }
        if indexed < r.chunks {
            r.bad(format!(
                "{} chunks are stored but not indexed",
                r.chunks - indexed
            ));
        }

        let mut manifests: HashSet<ManifestId> = HashSet::new();
        for item in self
            .db
            .iterator_cf(self.cf(CF_MANIFESTS), IteratorMode::Start)
        {
            let (k, v) = item?;
            r.manifests += 1;
            let Ok(id) = ManifestId::from_slice(&k) else {
                r.bad("manifest key is not an id".into());
                continue;
            };
            let (env, m) = match decode_manifest(&v) {
                Ok(x) => x,
                Err(e) => {
                    r.bad(format!("manifest {id}: {e}"));
                    continue;
                }
            };
            if ManifestId::of(&env.body) != id {
                r.bad(format!("manifest {id}: body does not hash to its id"));
                continue;
            }
            match self.known_app_keys(&m.app) {
                Ok(keys) if !keys.is_empty() => {
                    if let Err(e) = env.verify(KIND_MANIFEST, &keys) {
                        r.bad(format!("manifest {id} ({} {}): {e}", m.app, m.version));
                    }
                }
                Ok(_) => r.bad(format!("manifest {id}: app {} has no pinned key", m.app)),
                Err(e) => r.bad(e.to_string()),
            }
            let missing = m
                .unique_chunks()
                .iter()
                .filter(|c| !present.contains(&c.id))
                .count();
            if missing > 0 {
                r.bad(format!(
                    "manifest {id} ({} {}): {missing} chunks missing or damaged",
                    m.app, m.version
                ));
            }
            manifests.insert(id);
        }

        for item in self
            .db
            .iterator_cf(self.cf(CF_VERSIONS), IteratorMode::Start)
        {
            let (k, v) = item?;
            r.versions += 1;
            let name = split_pair(&k).map_or("?".into(), |(a, v)| format!("{a} {v}"));
            match ManifestId::from_slice(&v) {
                Ok(id) if manifests.contains(&id) => {}
                _ => r.bad(format!("version {name} points at a missing manifest")),
            }
        }

        for item in self
            .db
            .iterator_cf(self.cf(CF_CHANNELS), IteratorMode::Start)
        {
            let (k, v) = item?;
            r.channels += 1;
            let name = split_pair(&k).map_or("?".into(), |(a, c)| format!("{a}/{c}"));
            match decode_channel(&v) {
                Err(e) => r.bad(format!("channel {name}: {e}")),
                Ok(rec) => {
                    if !manifests.contains(&rec.manifest_id) {
                        r.bad(format!(
                            "channel {name} points at missing manifest {}",
                            rec.manifest_id
                        ));
                    }
                    let keys = self.known_app_keys(&rec.app).unwrap_or_default();
                    let env = ferry_protocol::Envelope::decode(&v, usize::MAX);
                    if let Ok(env) = env {
                        if let Err(e) = env.verify(KIND_CHANNEL, &keys) {
                            r.bad(format!("channel {name}: {e}"));
                        }
                    }
                }
            }
        }

        for item in self
            .db
            .iterator_cf(self.cf(CF_APP_KEYS), IteratorMode::Start)
        {
            let (k, v) = item?;
            let app = String::from_utf8_lossy(&k).into_owned();
            if let Err(e) = decode_keys(&app, &v) {
                r.bad(e.to_string());
            }
        }
        Ok(r)
    }
}
