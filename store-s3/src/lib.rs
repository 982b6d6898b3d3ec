//! Ferry's deployment-server store in an object store: S3 or any
//! S3-compatible service (`ferry serve --store s3://BUCKET/PREFIX`), and
//! `object_store`'s in-memory store in tests, through one implementation
//! of `ferry_store::Backend`.
//!
//! Chunks, manifests and version entries are immutable objects; a
//! channel's current record is replaced by compare-and-swap on its ETag,
//! so several servers over one bucket behave as one. See
//! `docs/storage.md` ("Object store layout") for keys and crash safety.

mod backend;
mod layout;
mod objects;
mod ops;
mod s3;

pub use backend::ObjectBackend;
pub use s3::{parse_s3_url, S3Location};
