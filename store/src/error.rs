use thiserror::Error;

/// Errors of the store. Conflicts and missing data are distinct variants so
/// the server can map them to precise HTTP statuses.
#[derive(Debug, Error)]
pub enum StoreError {
    #[error("RocksDB: {0}")]
    Db(#[from] rocksdb::Error),
    #[error("store at {path} has schema version {found}, this build understands {expected}")]
    Schema {
        path: String,
        found: String,
        expected: u32,
    },
    #[error("no store at {0} (run `ferry serve --data {0}` once to create it)")]
    NotFound(String),
    #[error("{0}")]
    Conflict(String),
    #[error("{count} chunks referenced by the manifest are not on the server (first: {first})")]
    MissingChunks { count: usize, first: String },
    #[error("{0} is not on the server")]
    UnknownManifest(String),
    #[error("channel {app}/{channel} is at sequence {current}; a new record needs a higher one, got {got}")]
    StaleSequence {
        app: String,
        channel: String,
        current: u64,
        got: u64,
    },
    #[error("stored data is corrupt: {0}")]
    Corrupt(String),
    #[error("backup: {0}")]
    Backup(String),
    #[error("{0}")]
    Unsupported(String),
    #[error("mirror upstream: {0}")]
    Upstream(String),
    /// A request to an object store (S3) failed; names the object and the
    /// operation so an operator can tell a permission from a network fault.
    #[error("object store: {what} {key}: {message}")]
    Object {
        what: String,
        key: String,
        message: String,
    },
}
