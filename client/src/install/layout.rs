//! Paths inside an install directory.

use std::path::{Path, PathBuf};

use ferry_protocol::ManifestId;

use crate::error::ClientError;

/// The paths of one install directory.
#[derive(Debug, Clone)]
pub struct Layout {
    pub root: PathBuf,
}

impl Layout {
    /// Uses `root` (made absolute), creating the directory skeleton.
    pub fn create(root: &Path) -> Result<Layout, ClientError> {
        std::fs::create_dir_all(root).map_err(|e| ClientError::io(root, e))?;
        let root = root.canonicalize().map_err(|e| ClientError::io(root, e))?;
        let l = Layout { root };
        for d in [
            l.meta(),
            l.manifests(),
            l.records(),
            l.staging_root(),
            l.versions(),
            l.trash(),
        ] {
            std::fs::create_dir_all(&d).map_err(|e| ClientError::io(&d, e))?;
        }
        Ok(l)
    }

    /// Opens an existing install directory (for verify and rollback).
    pub fn open(root: &Path) -> Result<Layout, ClientError> {
        let root = root
            .canonicalize()
            .map_err(|e| ClientError::install(root, format!("cannot open: {e}")))?;
        let l = Layout { root };
        if !l.state_file().exists() {
            return Err(ClientError::install(
                &l.root,
                "not a Ferry install directory (no .ferry/state.json); run `ferry sync` first",
            ));
        }
        Ok(l)
    }

    pub fn current(&self) -> PathBuf {
        self.root.join("current")
    }
    pub fn versions(&self) -> PathBuf {
        self.root.join("versions")
    }
    pub fn version_dir(&self, version: &str) -> PathBuf {
        self.versions().join(version)
    }
    pub fn meta(&self) -> PathBuf {
        self.root.join(".ferry")
    }
    pub fn state_file(&self) -> PathBuf {
        self.meta().join("state.json")
    }
    pub fn journal(&self) -> PathBuf {
        self.meta().join("switch.json")
    }
    pub fn lock_file(&self) -> PathBuf {
        self.meta().join("lock")
    }
    pub fn manifests(&self) -> PathBuf {
        self.meta().join("manifests")
    }
    pub fn manifest_file(&self, id: &ManifestId) -> PathBuf {
        self.manifests().join(format!("{id}.cbor"))
    }
    pub fn records(&self) -> PathBuf {
        self.meta().join("records")
    }
    /// The newest accepted record of a channel (a validated channel name).
    pub fn record_file(&self, channel: &str) -> PathBuf {
        self.records().join(format!("{channel}.cbor"))
    }
    pub fn staging_root(&self) -> PathBuf {
        self.meta().join("staging")
    }
    pub fn staging(&self, id: &ManifestId) -> PathBuf {
        self.staging_root().join(id.to_hex())
    }
    pub fn trash(&self) -> PathBuf {
        self.meta().join("trash")
    }

    /// Moves a tree into the trash (atomic, so no half-deleted tree is ever
    /// visible where it was) and deletes it there.
    pub fn discard(&self, path: &Path) -> Result<(), ClientError> {
        if std::fs::symlink_metadata(path).is_err() {
            return Ok(());
        }
        let name = format!(
            "{}-{}-{}",
            path.file_name().and_then(|n| n.to_str()).unwrap_or("x"),
            std::process::id(),
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_nanos())
                .unwrap_or(0)
        );
        let dest = self.trash().join(name);
        std::fs::rename(path, &dest).map_err(|e| ClientError::io(path, e))?;
        ferry_failpoint::hit("client.discarded");
        self.empty_trash();
        Ok(())
    }

    /// Deletes whatever is in the trash; failures are only logged.
    pub fn empty_trash(&self) {
        if let Ok(rd) = std::fs::read_dir(self.trash()) {
            for e in rd.flatten() {
                let p = e.path();
                let r = if p.is_dir() && !p.is_symlink() {
                    std::fs::remove_dir_all(&p)
                } else {
                    std::fs::remove_file(&p)
                };
                if let Err(err) = r {
                    tracing::warn!("could not delete {}: {err}", p.display());
                }
            }
        }
    }
}
