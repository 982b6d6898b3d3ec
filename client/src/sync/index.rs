//! Where each chunk and each whole file can be found locally: the trees of
//! every installed version. Entries are hints; every use re-hashes the bytes.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use ferry_protocol::{ChunkId, FileId, Manifest};

/// Sources kept per chunk or file: a second one covers a damaged first.
const MAX_SOURCES: usize = 2;

/// One place a chunk can be read from.
#[derive(Debug, Clone)]
pub struct ChunkSource {
    pub path: Arc<PathBuf>,
    pub offset: u64,
}

/// Local chunks and files by id.
#[derive(Debug, Default)]
pub struct LocalIndex {
    pub chunks: HashMap<ChunkId, Vec<ChunkSource>>,
    pub files: HashMap<FileId, Vec<Arc<PathBuf>>>,
}

impl LocalIndex {
    /// Adds the tree at `root`, which should hold `manifest`'s version.
    pub fn add_tree(&mut self, root: &Path, manifest: &Manifest) {
        for entry in &manifest.entries {
            let Some(fid) = entry.file_id() else { continue };
            let ferry_protocol::EntryKind::File { chunks, .. } = &entry.kind else {
                continue;
            };
            let path = Arc::new(root.join(&entry.path));
            let fs = self.files.entry(fid).or_default();
            if fs.len() < MAX_SOURCES {
                fs.push(path.clone());
            }
            let mut off = 0u64;
            for c in chunks {
                let srcs = self.chunks.entry(c.id).or_default();
                if srcs.len() < MAX_SOURCES {
                    srcs.push(ChunkSource {
                        path: path.clone(),
                        offset: off,
                    });
                }
                off += u64::from(c.len);
            }
        }
    }
}
