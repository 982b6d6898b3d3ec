//! Ferry's deployment-server store: chunks, manifests, version index,
//! channel records (with history) and pinned publisher keys in one RocksDB
//! database with a column family each.
//!
//! Synchronous by design: the server calls it from blocking tasks. Chunks
//! enter only as [`StoredChunk`]s, which can only be built from bytes whose
//! hash was verified, so the store never holds a chunk under a wrong id.
//! See `docs/storage.md` for the layout and the crash-safety argument.

mod backend;
mod db;
mod error;
mod fsck;
mod gc;
mod keys;
mod ops;
mod reports;
mod stored;
#[cfg(test)]
mod tests;

pub use backend::{Backend, StoreStats};
pub use db::{
    check_record_versions, decode_channel, decode_keys, encode_keys, require_chunks, Store,
    SCHEMA_VERSION,
};
pub use error::StoreError;
pub use fsck::{FsckReport, Problem};
pub use gc::{GcOptions, GcReport};
pub use reports::tally_reports;
pub use stored::{parse_value, StoredChunk};
