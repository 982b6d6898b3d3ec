//! The async primitives every operation is built from: get (with the
//! object's version for compare-and-swap), head, conditional put, list.
//! They run on the backend's own runtime (see `backend.rs`).

use std::sync::Arc;

use bytes::Bytes;
use ferry_store::StoreError;
use futures_util::stream::{self, StreamExt, TryStreamExt};
use object_store::path::Path;
use object_store::{
    GetOptions, ObjectStore, ObjectStoreExt, PutMode, PutOptions, PutPayload, UpdateVersion,
};

use crate::layout::Layout;

/// Requests in flight for one batched call (HEADs of `has_chunks`, GETs
/// of `get_chunks`, listings read back): enough to hide S3's latency,
/// few enough not to be throttled.
pub(crate) const CONCURRENCY: usize = 32;

/// What a conditional put found.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Put {
    Written,
    /// The object exists (create) or changed since it was read (update).
    Conflict,
}

pub(crate) struct Core {
    pub store: Arc<dyn ObjectStore>,
    pub layout: Layout,
}

/// Maps an object store error to the store's, naming object and operation.
pub(crate) fn fail(what: &str, key: &Path, e: object_store::Error) -> StoreError {
    StoreError::Object {
        what: what.into(),
        key: key.to_string(),
        message: e.to_string(),
    }
}

impl Core {
    /// An object's bytes and version, or `None` when absent.
    pub async fn get(&self, key: &Path) -> Result<Option<(Bytes, UpdateVersion)>, StoreError> {
        match self.store.get_opts(key, GetOptions::default()).await {
            Ok(r) => {
                let version = UpdateVersion {
                    e_tag: r.meta.e_tag.clone(),
                    version: r.meta.version.clone(),
                };
                let bytes = r.bytes().await.map_err(|e| fail("read", key, e))?;
                Ok(Some((bytes, version)))
            }
            Err(object_store::Error::NotFound { .. }) => Ok(None),
            Err(e) => Err(fail("read", key, e)),
        }
    }

    pub async fn get_vec(&self, key: &Path) -> Result<Option<Vec<u8>>, StoreError> {
        Ok(self.get(key).await?.map(|(b, _)| b.to_vec()))
    }

    pub async fn exists(&self, key: &Path) -> Result<bool, StoreError> {
        match self.store.head(key).await {
            Ok(_) => Ok(true),
            Err(object_store::Error::NotFound { .. }) => Ok(false),
            Err(e) => Err(fail("check", key, e)),
        }
    }

    pub async fn put(&self, key: &Path, bytes: Vec<u8>, mode: PutMode) -> Result<Put, StoreError> {
        let opts = PutOptions {
            mode,
            ..PutOptions::default()
        };
        match self
            .store
            .put_opts(key, PutPayload::from(bytes), opts)
            .await
        {
            Ok(_) => Ok(Put::Written),
            // NotFound: an If-Match on an object that vanished.
            Err(
                object_store::Error::AlreadyExists { .. }
                | object_store::Error::Precondition { .. }
                | object_store::Error::NotFound { .. },
            ) => Ok(Put::Conflict),
            Err(e) => Err(fail("write", key, e)),
        }
    }

    /// Writes an object that must never change: a conflict is fine when
    /// the object already holds exactly these bytes (a retry, or another
    /// server writing the same thing), an error otherwise.
    pub async fn put_immutable(
        &self,
        key: &Path,
        bytes: Vec<u8>,
        what: &str,
    ) -> Result<(), StoreError> {
        if self.put(key, bytes.clone(), PutMode::Create).await? == Put::Written {
            return Ok(());
        }
        match self.get(key).await? {
            Some((have, _)) if have[..] == bytes[..] => Ok(()),
            _ => Err(StoreError::Corrupt(format!(
                "{what} {key} already holds different bytes; it is written once \
                 (does the storage service honour conditional writes?)"
            ))),
        }
    }

    pub async fn delete(&self, key: &Path) -> Result<(), StoreError> {
        match self.store.delete(key).await {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(()),
            Err(e) => Err(fail("delete", key, e)),
        }
    }

    /// Every object under `prefix/` with its size, sorted by key.
    pub async fn list(&self, prefix: &Path) -> Result<Vec<(Path, u64)>, StoreError> {
        let mut out: Vec<(Path, u64)> = self
            .store
            .list(Some(prefix))
            .map_ok(|m| (m.location, m.size))
            .try_collect()
            .await
            .map_err(|e| fail("list", prefix, e))?;
        out.sort();
        Ok(out)
    }

    /// The names of the "directories" right under `prefix/`, sorted.
    pub async fn list_dirs(&self, prefix: &Path) -> Result<Vec<String>, StoreError> {
        let r = self
            .store
            .list_with_delimiter(Some(prefix))
            .await
            .map_err(|e| fail("list", prefix, e))?;
        let mut out: Vec<String> = r.common_prefixes.iter().map(crate::layout::last).collect();
        out.sort();
        Ok(out)
    }

    /// Reads many objects, `CONCURRENCY` at a time, in order.
    pub async fn get_many(&self, keys: Vec<Path>) -> Result<Vec<Option<Vec<u8>>>, StoreError> {
        stream::iter(keys)
            .map(|k| async move { self.get_vec(&k).await })
            .buffered(CONCURRENCY)
            .try_collect()
            .await
    }

    /// Whether each object exists, `CONCURRENCY` HEADs at a time, in order.
    pub async fn exist_many(&self, keys: Vec<Path>) -> Result<Vec<bool>, StoreError> {
        stream::iter(keys)
            .map(|k| async move { self.exists(&k).await })
            .buffered(CONCURRENCY)
            .try_collect()
            .await
    }
}
