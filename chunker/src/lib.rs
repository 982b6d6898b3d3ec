//! Content-defined chunking for Ferry: FastCDC v2020 cut points (exactly
//! those of the pinned `fastcdc` crate, found by a faster search of our own:
//! `gear.rs`), BLAKE3 for chunk ids, rayon for parallelism across the files
//! of a tree, and across the cut-point search and the chunks of a big file.
//!
//! Small files are read into a reused buffer, big ones mapped and processed
//! a bounded window at a time; streams go through a bounded window. The same
//! input and parameters always give the same chunks: golden files in
//! `tests/golden/` pin them.

mod cdc;
mod error;
mod gear;
mod scan;

pub use cdc::{hash_lengths, Chunker, WINDOW_MIN};
pub use error::ScanError;
pub use scan::{scan_tree, ScanOptions, ScanStats, ScannedTree};
