//! Content-defined chunking for Ferry: FastCDC (v2020, via the pinned
//! `fastcdc` crate) for cut points, BLAKE3 for chunk ids, rayon for
//! parallelism across the files of a tree and across the chunks of a file.
//!
//! Files are streamed through a bounded window, never loaded whole. The same
//! input and parameters always give the same chunks: golden files in
//! `tests/golden/` pin them.

mod cdc;
mod error;
mod scan;

pub use cdc::{hash_lengths, Chunker, WINDOW_MIN};
pub use error::ScanError;
pub use scan::{scan_tree, ScanOptions, ScanStats, ScannedTree};
